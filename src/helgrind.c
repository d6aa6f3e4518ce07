/*
 * src/helgrind.c: helgrind's client requests for src/sync.rs, compiled only
 * with the `helgrind` feature (the stress suite's helgrind run). Outside
 * valgrind each is a few instructions that do nothing.
 */
#include <stddef.h>
#include <valgrind/helgrind.h>

void sslsess_hg_lock_acquired(const void *lock, int exclusive)
{
    ANNOTATE_RWLOCK_ACQUIRED(lock, exclusive);
}

/* helgrind knows whether the lock is held shared or exclusive. */
void sslsess_hg_lock_releasing(const void *lock)
{
    ANNOTATE_RWLOCK_RELEASED(lock, 1);
}

void sslsess_hg_disable_checking(const void *start, size_t len)
{
    VALGRIND_HG_DISABLE_CHECKING(start, len);
}
