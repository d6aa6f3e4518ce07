/*
 * tests-c/check.h: the small harness every C suite uses.
 *
 * The same program runs three ways: linked ahead of libssl, with libsslsess
 * LD_PRELOADed, and against plain libssl (the reference). under_sslsess()
 * tells which.
 *
 *   CHECK(cond, fmt, ...)        must hold with libsslsess AND plain libssl.
 *   CHECK_PAGES(cond, fmt, ...)  what the man pages / issues promise, where
 *                                libssl 3.0 is known to differ (README,
 *                                "Compatibility"): must hold with libsslsess;
 *                                against plain libssl a failure is reported as
 *                                a difference and does not fail the run.
 *   check_summary("suite")       prints "suite: N passed, N failed" and
 *                                returns the exit status.
 *   sslsess_active(), new_session_with_id(id, len, version)
 *                                sslsess_is_active() or -1 when libsslsess
 *                                is absent; a session to cache.
 *   libssl_own_symbol(name), libssl_own_ctrl(ctx, cmd)
 *                                libssl's own definitions, past libsslsess's
 *                                exports: what libssl itself holds.
 */
#ifndef SSLSESS_TESTS_CHECK_H
#define SSLSESS_TESTS_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_UNUSED __attribute__((unused))

/* sslsess_is_active() when libsslsess is in this process, else -1. */
static CHECK_UNUSED int sslsess_active(void)
{
    int (*active)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "sslsess_is_active");
    return active != NULL ? active() : -1;
}

/* 1 when libsslsess serves the session calls in this process. */
static CHECK_UNUSED int under_sslsess(void)
{
    static int known = -1;
    if (known < 0)
        known = sslsess_active() == 1;
    return known;
}

/* A new session with `id` (`len` bytes) under protocol `version`, or NULL
 * (nothing leaked). */
static CHECK_UNUSED SSL_SESSION *new_session_with_id(const unsigned char *id, unsigned int len,
                                                     int version)
{
    SSL_SESSION *s = SSL_SESSION_new();
    if (s != NULL
        && (SSL_SESSION_set1_id(s, id, len) != 1 || SSL_SESSION_set_protocol_version(s, version) != 1)) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return s;
}

/* An error taken off the queue (the oldest): its packed code (0: the
 * queue was empty), and whether it is libssl's (ERR_LIB_SSL) with a text
 * that contains `text`. */
struct popped_error {
    unsigned long code;
    const char *text; /* "" if it has none */
    int ssl_and_says;
};

static CHECK_UNUSED struct popped_error pop_error_saying(const char *text)
{
    const char *data = NULL;
    int flags = 0;
    struct popped_error p = {ERR_get_error_all(NULL, NULL, NULL, &data, &flags), "", 0};
    if (data != NULL && (flags & ERR_TXT_STRING))
        p.text = data;
    p.ssl_and_says = p.code != 0 && ERR_GET_LIB(p.code) == ERR_LIB_SSL && strstr(p.text, text) != NULL;
    return p;
}

/* libssl's own definition of `name` (not libsslsess's export of it), or
 * NULL: what libssl itself answers. */
static CHECK_UNUSED void *libssl_own_symbol(const char *name)
{
    void *libssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_NOLOAD);
    return libssl != NULL ? dlsym(libssl, name) : NULL;
}

/* libssl's own SSL_CTX_ctrl(ctx, cmd, 0, NULL): what libssl's own cache
 * and counters hold; -1 if libssl is not found. */
static CHECK_UNUSED long libssl_own_ctrl(SSL_CTX *ctx, int cmd)
{
    static long (*real)(SSL_CTX *, int, long, void *);
    if (real == NULL)
        real = (long (*)(SSL_CTX *, int, long, void *))libssl_own_symbol("SSL_CTX_ctrl");
    return real ? real(ctx, cmd, 0, NULL) : -1;
}

static int check_passed, check_failed, check_differs;

static CHECK_UNUSED void check_at(int ok, int pages_only, const char *file, int line,
                                  const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        check_passed++;
        printf("ok      ");
    } else if (pages_only && !under_sslsess()) {
        check_differs++;
        printf("DIFFERS (libssl 3.0) ");
    } else {
        check_failed++;
        printf("FAILED  %s:%d: ", file, line);
    }
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#define CHECK(cond, ...) check_at(!!(cond), 0, __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_PAGES(cond, ...) check_at(!!(cond), 1, __FILE__, __LINE__, __VA_ARGS__)

/* A section header, to keep the output readable. */
#define SECTION(name) printf("# %s\n", (name))

static CHECK_UNUSED int check_summary(const char *suite)
{
    const char *who = under_sslsess() ? "libsslsess" : "plain libssl (reference)";
    printf("# %s against %s", suite, who);
    if (check_differs)
        printf(": %d place(s) where libssl 3.0 differs from the pages", check_differs);
    printf("\n%s: %d passed, %d failed\n", suite, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
