/*
 * tests-c/hide_dlvsym.c: an LD_PRELOAD shim for tests-c/unresolved.sh.
 *
 * Interposes dlvsym, through which libsslsess finds libssl's own functions,
 * and answers NULL for the one named in SSLSESS_TEST_HIDE, as a libssl
 * without that OPENSSL_3.0.0 symbol would. Every other lookup goes to
 * libssl.so.3 itself: forwarded with RTLD_NEXT, glibc would search past this
 * shim rather than past libsslsess, and find libsslsess's own exports.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

void *dlvsym(void *handle, const char *name, const char *version)
{
    static void *(*real)(void *, const char *, const char *);
    if (real == NULL)
        real = (void *(*)(void *, const char *, const char *))dlsym(RTLD_NEXT, "dlvsym");
    const char *hide = getenv("SSLSESS_TEST_HIDE");
    if (hide != NULL && strcmp(name, hide) == 0)
        return NULL;
    if (handle == RTLD_NEXT) {
        handle = dlopen("libssl.so.3", RTLD_LAZY | RTLD_NOLOAD);
        if (handle == NULL)
            return NULL;
    }
    return real(handle, name, version);
}
