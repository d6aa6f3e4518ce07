/*
 * tests-c/synonyms.c: a C program that calls SSL_add_session and
 * SSL_remove_session (the synonyms the old pages name and libssl 3.0 no
 * longer has) with nothing but include/sslsess.h, linked ahead of libssl.
 * It includes ONLY "sslsess.h": the header alone must declare them (and
 * bring <openssl/ssl.h>, which brings stdio). <openssl/ssl.h> does not bring
 * <openssl/err.h>, so the errors the NULL calls queue are checked in
 * conformance.c, not here.
 *
 * Ends with "synonyms: N passed, N failed", like every runner.
 */
#include "sslsess.h"

static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok)
        passed++;
    else
        failed++;
    printf("%s%s\n", ok ? "ok      " : "FAILED  ", what);
}

static int freed; /* frees of sessions carrying a tracker */
static void count_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL)
        freed++;
}

static int removed;
static void count_remove(SSL_CTX *ctx, SSL_SESSION *s)
{
    (void)ctx, (void)s;
    removed++;
}

int main(void)
{
    int idx = SSL_SESSION_get_ex_new_index(0, NULL, NULL, NULL, count_free);
    static int tracker;
    unsigned char id[32];

    check(sslsess_is_active() == 1, "sslsess_is_active() == 1 (linked ahead of libssl)");
    check(sslsess_version() != NULL && sslsess_version()[0] != '\0', "sslsess_version() is a version string");

    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_sess_set_remove_cb(ctx, count_remove);
    SSL_SESSION *s = SSL_SESSION_new();
    for (unsigned i = 0; i < sizeof id; i++)
        id[i] = (unsigned char)(i * 7 + 1);
    SSL_SESSION_set1_id(s, id, sizeof id);
    SSL_SESSION_set_ex_data(s, idx, &tracker);

    check(SSL_add_session(ctx, s) == 1, "SSL_add_session: a new session returns 1");
    check(SSL_CTX_sess_number(ctx) == 1, "SSL_add_session: the session is cached (SSL_CTX_sess_number == 1)");
    check(SSL_add_session(ctx, s) == 0, "SSL_add_session: the identical object again returns 0");
    check(SSL_CTX_add_session(ctx, s) == 0, "SSL_add_session: same cache as SSL_CTX_add_session");
    SSL_SESSION_free(s);
    check(freed == 0, "SSL_add_session: the cache holds a reference");
    check(SSL_remove_session(ctx, s) == 1, "SSL_remove_session: a cached session returns 1");
    check(freed == 1 && removed == 1, "SSL_remove_session: SSL_SESSION_free called once, remove callback once");
    check(SSL_CTX_sess_number(ctx) == 0, "SSL_remove_session: the cache is empty");

    SSL_SESSION *a = SSL_SESSION_new();
    SSL_SESSION_set1_id(a, id, sizeof id);
    check(SSL_remove_session(ctx, a) == 0, "SSL_remove_session: an absent session returns 0");
    check(SSL_SESSION_is_resumable(a) == 0 && removed == 2,
          "SSL_remove_session: the absent session is made non-resumable and reported");
    check(SSL_add_session(ctx, a) == 1 && SSL_CTX_remove_session(ctx, a) == 1,
          "SSL_add_session then SSL_CTX_remove_session: the same cache");
    SSL_SESSION_free(a);

    check(SSL_add_session(NULL, s) == 0, "SSL_add_session(NULL, s) returns 0, no crash");
    check(SSL_add_session(ctx, NULL) == 0, "SSL_add_session(ctx, NULL) returns 0, no crash");
    check(SSL_remove_session(NULL, s) == 0, "SSL_remove_session(NULL, s) returns 0, no crash");
    check(SSL_remove_session(ctx, NULL) == 0, "SSL_remove_session(ctx, NULL) returns 0, no crash");
    check(SSL_CTX_sess_number(ctx) == 0 && removed == 3, "the NULL calls changed nothing");

    SSL_CTX_free(ctx);
    printf("synonyms: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
