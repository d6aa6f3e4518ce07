/*
 * src/helgrind.c: helgrind's client requests for src/sync.rs, compiled only
 * with the `helgrind` feature (`make helgrind`). Outside valgrind each is a
 * few instructions that do nothing.
 */
#include <stddef.h>
#include <valgrind/helgrind.h>

void sslsess_hg_happens_after(const void *object)
{
    ANNOTATE_HAPPENS_AFTER(object);
}

void sslsess_hg_happens_before(const void *object)
{
    ANNOTATE_HAPPENS_BEFORE(object);
}

void sslsess_hg_disable_checking(const void *start, size_t len)
{
    VALGRIND_HG_DISABLE_CHECKING(start, len);
}
