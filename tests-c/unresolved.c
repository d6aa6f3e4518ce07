/*
 * tests-c/unresolved.c: libsslsess in a process whose libssl lacks one of
 * the OPENSSL_3.0.0 functions libsslsess forwards to (tests-c/unresolved.sh
 * hides it with tests-c/hide_dlvsym.c).
 *
 *   unresolved remove   SSL_CTX_remove_session is missing
 *   unresolved new      SSL_CTX_new is missing
 *
 * A call that needs the missing function fails as documented for a
 * failure (0 or NULL, one error on OpenSSL's queue naming the function);
 * the others keep working; sessions that leave the cache are still
 * reported to the remove callback; sslsess_is_active() says 0; nothing
 * crashes or leaks (the script also runs this under valgrind).
 */
#define _GNU_SOURCE
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

static int removed; /* remove callbacks */

static void count_removed(SSL_CTX *ctx, SSL_SESSION *s)
{
    (void)ctx;
    (void)s;
    removed++;
}

/* Whether the queue holds exactly one error, ERR_LIB_SSL /
 * ERR_R_INTERNAL_ERROR, whose text names `function`; clears the queue. */
static int one_internal_error_naming(const char *function)
{
    struct popped_error e = pop_error_saying(function);
    int ok = e.ssl_and_says && ERR_GET_REASON(e.code) == ERR_R_INTERNAL_ERROR;
    if (!ok)
        printf("#   error: lib %d reason %d text '%s'\n", ERR_GET_LIB(e.code),
               ERR_GET_REASON(e.code), e.text);
    ok = ok && ERR_peek_error() == 0;
    ERR_clear_error();
    return ok;
}

static SSL_SESSION *session_with_id(unsigned char first)
{
    unsigned char id[32] = {first, 0x5e, 0x55};
    SSL_SESSION *s = new_session_with_id(id, sizeof id, TLS1_2_VERSION);
    if (s == NULL) {
        fprintf(stderr, "cannot make a session\n");
        exit(2);
    }
    return s;
}

static void without_remove(void)
{
    SECTION("libssl without SSL_CTX_remove_session");
    CHECK(sslsess_active() == 0, "sslsess_is_active() is 0 (got %d)", sslsess_active());

    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    CHECK(ctx != NULL && ERR_peek_error() == 0, "SSL_CTX_new still works, and queues nothing");
    if (ctx == NULL)
        return;
    SSL_CTX_sess_set_remove_cb(ctx, count_removed);
    SSL_SESSION *a = session_with_id(1), *b = session_with_id(2), *c = session_with_id(3);

    CHECK(SSL_CTX_add_session(ctx, a) == 1 && SSL_CTX_sess_number(ctx) == 1,
          "SSL_CTX_add_session still adds (returns 1, 1 cached)");
    CHECK(ERR_peek_error() == 0, "the add queues nothing");

    for (int round = 1; round <= 2; round++) {
        CHECK(SSL_CTX_remove_session(ctx, a) == 0,
              "SSL_CTX_remove_session returns 0, call %d: it cannot mark the session", round);
        CHECK(one_internal_error_naming("SSL_CTX_remove_session"),
              "... with one error, ERR_LIB_SSL / ERR_R_INTERNAL_ERROR, naming the "
              "missing function (call %d)",
              round);
    }

    CHECK(SSL_CTX_sess_number(ctx) == 0, "the failed remove still took the session out (%ld cached)",
          SSL_CTX_sess_number(ctx));
    CHECK(removed == 2, "... and each call reported it to the remove callback, as libssl does (%d)",
          removed);

    /* Evictions need the same function to mark their victims; the adds
     * themselves do not fail for it, and the limit holds. */
    SSL_CTX_sess_set_cache_size(ctx, 2);
    int added = SSL_CTX_add_session(ctx, a) + SSL_CTX_add_session(ctx, b) + SSL_CTX_add_session(ctx, c);
    CHECK(added == 3 && SSL_CTX_sess_number(ctx) == 2 && SSL_CTX_sess_cache_full(ctx) == 1,
          "three adds into a cache of 2 return 1 each and evict one (added %d, %ld cached, "
          "%ld evicted)",
          added, SSL_CTX_sess_number(ctx), SSL_CTX_sess_cache_full(ctx));
    CHECK(ERR_peek_error() == 0, "... and queue nothing");
    CHECK(removed == 3, "the evicted session went to the remove callback (%d callbacks)", removed);

    SSL_CTX_free(ctx);
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_SESSION_free(c);
}

static void without_new(void)
{
    SECTION("libssl without SSL_CTX_new");
    CHECK(sslsess_active() == 0, "sslsess_is_active() is 0 (got %d)", sslsess_active());
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    CHECK(ctx == NULL, "SSL_CTX_new returns NULL");
    CHECK(one_internal_error_naming("SSL_CTX_new"),
          "... with one error, ERR_LIB_SSL / ERR_R_INTERNAL_ERROR, naming the missing function");
    SSL_CTX_free(ctx);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "";
    if (strcmp(which, "remove") == 0)
        without_remove();
    else if (strcmp(which, "new") == 0)
        without_new();
    else {
        fprintf(stderr, "usage: unresolved remove|new\n");
        return 2;
    }
    /* Not check_summary(): it names the library by sslsess_is_active(),
     * which is 0 here by design. */
    printf("unresolved: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
