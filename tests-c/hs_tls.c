/*
 * tests-c/hs_tls.c: the machinery of the handshake test bed (see hs_tls.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hs_tls.h"
#include "tls_fixture.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- Output ------------------------------------------------------------ */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char tag[96];
static __thread char phase[64];
static int quiet;
static int conn_counter;

const char *hs_tag(void) { return tag; }

void hs_set_quiet(int q)
{
    pthread_mutex_lock(&lock);
    quiet = q;
    pthread_mutex_unlock(&lock);
}

static int is_quiet(void)
{
    pthread_mutex_lock(&lock);
    int q = quiet;
    pthread_mutex_unlock(&lock);
    return q;
}

void hs_phase(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(phase, sizeof phase, fmt, ap);
    va_end(ap);
}

static void vfact(const char *prefix, const char *fmt, va_list ap)
{
    pthread_mutex_lock(&lock);
    printf("%s[%s] %s: ", prefix, tag, phase[0] ? phase : "-");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    pthread_mutex_unlock(&lock);
}

void hs_fact(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfact("", fmt, ap);
    va_end(ap);
}

void hs_expected_difference(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfact("expected-difference: ", fmt, ap);
    va_end(ap);
}

/* Session names. */
struct label {
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned len;
};
static struct label labels[4096];
static int n_labels;

int hs_label(const unsigned char *id, unsigned len)
{
    if (len == 0 || id == NULL)
        return 0;
    if (len > SSL_MAX_SSL_SESSION_ID_LENGTH)
        len = SSL_MAX_SSL_SESSION_ID_LENGTH;
    pthread_mutex_lock(&lock);
    int found = -1;
    for (int i = 0; i < n_labels; i++)
        if (labels[i].len == len && memcmp(labels[i].id, id, len) == 0) {
            found = i + 1;
            break;
        }
    if (found < 0 && n_labels < (int)(sizeof labels / sizeof labels[0])) {
        memcpy(labels[n_labels].id, id, len);
        labels[n_labels].len = len;
        found = ++n_labels;
    }
    pthread_mutex_unlock(&lock);
    return found < 0 ? 9999 : found;
}

int hs_label_of(const SSL_SESSION *s)
{
    unsigned len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    return hs_label(id, len);
}

const char *hs_name(const SSL_SESSION *s, char buf[16])
{
    if (s == NULL)
        return "none";
    int l = hs_label_of(s);
    if (l == 0)
        snprintf(buf, 16, "S-");
    else
        snprintf(buf, 16, "S%d", l);
    return buf;
}

struct ctx_name {
    const SSL_CTX *ctx;
    char name[24];
};
static struct ctx_name ctx_names[64];

/* --- Counters ------------------------------------------------------------ */

static struct hs_counts counts;

void hs_counts_get(struct hs_counts *out)
{
    pthread_mutex_lock(&lock);
    *out = counts;
    pthread_mutex_unlock(&lock);
}

static void count(int *field, int add_label)
{
    pthread_mutex_lock(&lock);
    (*field)++;
    if (add_label >= 0 && counts.n_removed_labels < 512)
        counts.removed_labels[counts.n_removed_labels++] = add_label;
    pthread_mutex_unlock(&lock);
}

/* --- External cache ---------------------------------------------------- */

struct ext_entry {
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned len;
    SSL_SESSION *ref;      /* HS_EXT_REF */
    unsigned char *der;    /* HS_EXT_DER */
    int der_len;
};
static struct ext_entry ext[1024];
static int n_ext;
static enum hs_ext ext_mode;
static long ext_age;

const char *hs_ext_name(enum hs_ext e)
{
    switch (e) {
    case HS_EXT_NONE: return "noext";
    case HS_EXT_REF: return "extref";
    case HS_EXT_DER: return "extder";
    }
    return "?";
}

void hs_ext_set_age(long age) { ext_age = age; }

static void ext_clear(void)
{
    for (int i = 0; i < n_ext; i++) {
        SSL_SESSION_free(ext[i].ref);
        OPENSSL_free(ext[i].der);
    }
    memset(ext, 0, sizeof ext);
    n_ext = 0;
    ext_mode = HS_EXT_NONE;
    ext_age = 0;
}

/* Stores sess; returns what new_cb must return. */
static int ext_store(SSL_SESSION *sess)
{
    unsigned len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    int keep = 0;
    pthread_mutex_lock(&lock);
    if (ext_mode != HS_EXT_NONE && n_ext < (int)(sizeof ext / sizeof ext[0]) && len > 0) {
        struct ext_entry *e = &ext[n_ext++];
        memcpy(e->id, id, len);
        e->len = len;
        if (ext_mode == HS_EXT_REF) {
            e->ref = sess;
            keep = 1;
        } else {
            e->der_len = i2d_SSL_SESSION(sess, NULL);
            if (e->der_len > 0) {
                e->der = OPENSSL_malloc(e->der_len);
                unsigned char *p = e->der;
                i2d_SSL_SESSION(sess, &p);
            }
        }
    }
    pthread_mutex_unlock(&lock);
    return keep;
}

/* Returns a session for id per the mode (and sets *copy), or NULL. */
static SSL_SESSION *ext_fetch(const unsigned char *id, int len, int *copy)
{
    SSL_SESSION *found = NULL;
    pthread_mutex_lock(&lock);
    for (int i = n_ext - 1; i >= 0 && found == NULL; i--) {
        struct ext_entry *e = &ext[i];
        if ((int)e->len != len || memcmp(e->id, id, len) != 0)
            continue;
        if (e->ref != NULL) {
            found = e->ref; /* *copy stays 1: libssl takes its own reference */
        } else if (e->der != NULL) {
            const unsigned char *p = e->der;
            found = d2i_SSL_SESSION(NULL, &p, e->der_len);
            if (found != NULL)
                *copy = 0; /* libssl takes over this reference */
        }
    }
    long age = ext_age;
    pthread_mutex_unlock(&lock);
    if (found != NULL && age > 0)
        SSL_SESSION_set_time(found, (long)time(NULL) - age);
    return found;
}

/* --- Callbacks ----------------------------------------------------------- */

static const char *role(SSL *ssl) { return SSL_is_server(ssl) ? "server" : "client"; }

static int new_cb_common(SSL *ssl, SSL_SESSION *sess, const char *which)
{
    char b[16];
    count(SSL_is_server(ssl) ? &counts.new_server : &counts.new_client, -1);
    if (!is_quiet())
        hs_fact("%s new_cb%s %s (ssl ctx %s)", role(ssl), which, hs_name(sess, b),
                hs_ctx_name(SSL_get_SSL_CTX(ssl)));
    return SSL_is_server(ssl) ? ext_store(sess) : 0;
}

static int new_cb_main(SSL *ssl, SSL_SESSION *sess) { return new_cb_common(ssl, sess, ""); }
static int new_cb_alt(SSL *ssl, SSL_SESSION *sess) { return new_cb_common(ssl, sess, "(alt)"); }

static void remove_cb_common(SSL_CTX *ctx, SSL_SESSION *sess, const char *which)
{
    char b[16];
    count(&counts.removed, hs_label_of(sess));
    if (!is_quiet())
        hs_fact("remove_cb%s on %s: %s resumable=%d", which, hs_ctx_name(ctx), hs_name(sess, b),
                SSL_SESSION_is_resumable(sess));
}

static void remove_cb_main(SSL_CTX *ctx, SSL_SESSION *sess) { remove_cb_common(ctx, sess, ""); }
static void remove_cb_alt(SSL_CTX *ctx, SSL_SESSION *sess) { remove_cb_common(ctx, sess, "(alt)"); }

static SSL_SESSION *get_cb_common(SSL *ssl, const unsigned char *id, int len, int *copy,
                                  const char *which)
{
    char b[16];
    int copy_in = *copy;
    count(&counts.get_calls, -1);
    SSL_SESSION *s = ext_fetch(id, len, copy);
    if (s != NULL)
        count(&counts.get_found, -1);
    if (!is_quiet()) {
        int l = hs_label(id, (unsigned)len);
        if (l == 0)
            snprintf(b, sizeof b, "S-");
        else
            snprintf(b, sizeof b, "S%d", l);
        hs_fact("get_cb%s on %s: %s copy-in=%d -> %s%s", which,
                hs_ctx_name(SSL_get_SSL_CTX(ssl)), b, copy_in,
                s ? "found" : "not found",
                s ? (*copy ? " (copy=1)" : " (copy=0)") : "");
    }
    return s;
}

static SSL_SESSION *get_cb_main(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    return get_cb_common(ssl, id, len, copy, "");
}

static SSL_SESSION *get_cb_alt(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    return get_cb_common(ssl, id, len, copy, "(alt)");
}

hs_get_cb_fn hs_get_cb_main(void) { return get_cb_main; }

void hs_set_callbacks(SSL_CTX *ctx, int which, int alt)
{
    if (which & HS_CB_NEW)
        SSL_CTX_sess_set_new_cb(ctx, alt ? new_cb_alt : new_cb_main);
    if (which & HS_CB_REMOVE)
        SSL_CTX_sess_set_remove_cb(ctx, alt ? remove_cb_alt : remove_cb_main);
}

void hs_set_ext_cache(SSL_CTX *ctx, enum hs_ext mode, int alt)
{
    pthread_mutex_lock(&lock);
    ext_mode = mode;
    pthread_mutex_unlock(&lock);
    if (mode != HS_EXT_NONE)
        SSL_CTX_sess_set_get_cb(ctx, alt ? get_cb_alt : get_cb_main);
}

/* --- Scenario boundaries ----------------------------------------------- */

/* Sessions expire at creation second + timeout, so which of two sessions
 * expires first (the order of evictions and of remove callbacks) depends on
 * whether a second boundary falls between their creations. The reference
 * and libsslsess runs must see the same seconds pattern: each scenario
 * starts early in a second, waiting for the next one when less than
 * HS_SECOND_GUARD_MS (default 300; more under valgrind, which is slower)
 * remains of the current one. 100 ms was not always enough on a VM that
 * stalls now and then: one CI run saw a 4-connection TLS 1.3 scenario
 * cross a second boundary in one run and not in the other. */
static void start_early_in_a_second(void)
{
    static long guard_ms = -1;
    if (guard_ms < 0) {
        const char *env = getenv("HS_SECOND_GUARD_MS");
        guard_ms = env != NULL ? atol(env) : 300;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long left_ms = 1000 - now.tv_nsec / 1000000;
    if (left_ms < guard_ms) {
        struct timespec wait = {0, (left_ms + 1) * 1000000L};
        nanosleep(&wait, NULL);
    }
}

const char *hs_begin(const char *fmt, ...)
{
    start_early_in_a_second();
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&lock);
    vsnprintf(tag, sizeof tag, fmt, ap);
    va_end(ap);
    n_labels = 0;
    memset(&counts, 0, sizeof counts);
    conn_counter = 0;
    quiet = 0;
    memset(ctx_names, 0, sizeof ctx_names); /* the last scenario freed its contexts */
    pthread_mutex_unlock(&lock);
    ext_clear();
    hs_phase("setup");
    return tag;
}

void hs_end(void)
{
    ext_clear();
    hs_phase("-");
}

/* --- Credentials and contexts ------------------------------------------- */

static EVP_PKEY *key;
static X509 *cert;

void hs_init_credentials(void)
{
    if (!make_self_signed("localhost", &key, &cert)) {
        fprintf(stderr, "handshake: cannot make a key and certificate\n");
        exit(2);
    }
}

void hs_free_credentials(void)
{
    X509_free(cert);
    EVP_PKEY_free(key);
}


static void name_ctx(const SSL_CTX *ctx, const char *name)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof ctx_names / sizeof ctx_names[0]; i++)
        if (ctx_names[i].ctx == NULL) {
            ctx_names[i].ctx = ctx;
            snprintf(ctx_names[i].name, sizeof ctx_names[i].name, "%s", name);
            break;
        }
    pthread_mutex_unlock(&lock);
}

const char *hs_ctx_name(const SSL_CTX *ctx)
{
    const char *n = "?";
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof ctx_names / sizeof ctx_names[0]; i++)
        if (ctx != NULL && ctx_names[i].ctx == ctx) {
            n = ctx_names[i].name;
            break;
        }
    pthread_mutex_unlock(&lock);
    return n;
}

static int version_of(enum hs_proto p)
{
    return p == HS_TLS13 ? TLS1_3_VERSION : p == HS_TLS11 ? TLS1_1_VERSION : TLS1_2_VERSION;
}

static void fail_setup(const char *what)
{
    fprintf(stderr, "handshake: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static SSL_CTX *server_like_ctx(const SSL_METHOD *method, const char *name, enum hs_proto proto,
                                uint64_t options)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        fail_setup("SSL_CTX_new (server)");
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        fail_setup("loading the certificate");
    SSL_CTX_set_min_proto_version(ctx, version_of(proto));
    SSL_CTX_set_max_proto_version(ctx, version_of(proto));
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hs", 2);
    SSL_CTX_set_options(ctx, options);
    if (proto == HS_TLS11 && SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1)
        fail_setup("SSL_CTX_set_cipher_list");
    name_ctx(ctx, name);
    return ctx;
}

SSL_CTX *hs_server_ctx(const char *name, enum hs_proto proto, uint64_t options)
{
    return server_like_ctx(TLS_server_method(), name, proto, options);
}

SSL_CTX *hs_dual_ctx(const char *name, enum hs_proto proto, uint64_t options)
{
    SSL_CTX *ctx = server_like_ctx(TLS_method(), name, proto, options);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

SSL_CTX *hs_client_ctx(const char *name, enum hs_proto proto)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        fail_setup("SSL_CTX_new (client)");
    SSL_CTX_set_min_proto_version(ctx, version_of(proto));
    SSL_CTX_set_max_proto_version(ctx, version_of(proto));
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (proto == HS_TLS11 && SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0") != 1)
        fail_setup("SSL_CTX_set_cipher_list");
    name_ctx(ctx, name);
    return ctx;
}

void hs_ctx_free(SSL_CTX *ctx)
{
    if (ctx == NULL)
        return;
    hs_phase("free %s", hs_ctx_name(ctx));
    SSL_CTX_free(ctx);
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < sizeof ctx_names / sizeof ctx_names[0]; i++)
        if (ctx_names[i].ctx == ctx)
            ctx_names[i].ctx = NULL;
    pthread_mutex_unlock(&lock);
    hs_phase("-");
}

void hs_free_and_end(SSL_CTX *ctx, ...)
{
    va_list ap;
    va_start(ap, ctx);
    for (; ctx != NULL; ctx = va_arg(ap, SSL_CTX *))
        hs_ctx_free(ctx);
    va_end(ap);
    hs_end();
}

/* --- Servername switch ------------------------------------------------- */

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (n != NULL && strcmp(n, "switch.example") == 0) {
        SSL_CTX *to = arg;
        SSL_CTX *now = SSL_set_SSL_CTX(ssl, to);
        if (!is_quiet())
            hs_fact("servername cb: switched to %s (%s)", hs_ctx_name(to),
                    now == to ? "ok" : "FAILED");
    }
    return SSL_TLSEXT_ERR_OK;
}

void hs_set_sni_switch(SSL_CTX *from, SSL_CTX *to)
{
    SSL_CTX_set_tlsext_servername_callback(from, sni_cb);
    SSL_CTX_set_tlsext_servername_arg(from, to);
}

/* --- Connections --------------------------------------------------------- */

/* One handshake step; 0 on a real error. */
static int step(SSL *ssl, int *done)
{
    if (*done)
        return 1;
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        *done = 1;
        return 1;
    }
    int e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Reads one byte; 0 on failure. */
static int read_byte(SSL *ssl)
{
    char b;
    for (int i = 0; i < 8; i++) {
        int r = SSL_read(ssl, &b, 1);
        if (r == 1)
            return 1;
        int e = SSL_get_error(ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return 0;
    }
    return 0;
}

static void describe_errors(char *buf, size_t size)
{
    unsigned long e;
    size_t used = 0;
    buf[0] = 0;
    while ((e = ERR_get_error()) != 0) {
        const char *lib = ERR_lib_error_string(e);
        const char *reason = ERR_reason_error_string(e);
        int n = snprintf(buf + used, size - used, "%s%s:%s", used ? ", " : "",
                         lib ? lib : "?", reason ? reason : "?");
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

static int has_match(SSL *ssl, SSL_SESSION *sess)
{
    if (sess == NULL)
        return -1;
    unsigned len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &len);
    if (len == 0)
        return -1;
    return SSL_has_matching_session_id(ssl, id, len);
}

int hs_connect(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer,
               const struct hs_conn_opts *opts, struct hs_conn *out)
{
    static const struct hs_conn_opts defaults;
    if (opts == NULL)
        opts = &defaults;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&lock);
    out->number = ++conn_counter;
    pthread_mutex_unlock(&lock);
    hs_phase("conn %d", out->number);
    char offered[16], b1[16], b2[16], errs[512];

    ERR_clear_error();
    SSL *c, *s;
    if (opts->reuse_client != NULL && *opts->reuse_client != NULL) {
        c = *opts->reuse_client;
        hs_fact("SSL_clear(client) = %d", SSL_clear(c));
    } else {
        c = SSL_new(cctx);
    }
    if (opts->reuse_server != NULL && *opts->reuse_server != NULL) {
        s = *opts->reuse_server;
        hs_fact("SSL_clear(server) = %d", SSL_clear(s));
    } else {
        s = SSL_new(sctx);
        if (s != NULL && opts->switch_to != NULL)
            SSL_set_SSL_CTX(s, opts->switch_to);
        if (s != NULL && opts->dup_server) {
            SSL *d = SSL_dup(s);
            SSL_free(s);
            s = d;
        }
    }
    if (!tls_pair_join(c, s))
        fail_setup("creating a connection");
    if (offer != NULL && SSL_set_session(c, offer) != 1)
        fail_setup("SSL_set_session");
    if (opts->sni != NULL)
        SSL_set_tlsext_host_name(c, opts->sni);
    /* What the client offers (also a session kept across SSL_clear). */
    SSL_SESSION *offered_session = SSL_get_session(c);
    int offered_resumable = offered_session ? SSL_SESSION_is_resumable(offered_session) : -1;
    if (offered_session != NULL)
        hs_name(offered_session, offered);

    int cd = 0, sd = 0, ok = 1;
    for (int i = 0; i < 64 && ok && !(cd && sd); i++)
        ok = step(c, &cd) && step(s, &sd);
    ok = ok && cd && sd;
    ok = ok && SSL_write(s, "s", 1) == 1 && read_byte(c);
    ok = ok && SSL_write(c, "c", 1) == 1 && read_byte(s);
    if (ok && opts->renegotiate) {
        int r = opts->renegotiate == 2 ? SSL_renegotiate_abbreviated(c) : SSL_renegotiate(c);
        for (int i = 0; i < 64 && r == 1 && SSL_renegotiate_pending(c); i++) {
            char b;
            int hc = SSL_do_handshake(c);
            if (hc != 1 && SSL_get_error(c, hc) != SSL_ERROR_WANT_READ &&
                SSL_get_error(c, hc) != SSL_ERROR_WANT_WRITE)
                break;
            int rs = SSL_read(s, &b, 1);
            if (rs <= 0 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ &&
                SSL_get_error(s, rs) != SSL_ERROR_WANT_WRITE)
                break;
        }
        out->renegotiated = r == 1 && !SSL_renegotiate_pending(c);
        ok = ok && SSL_write(s, "s", 1) == 1 && read_byte(c);
        ok = ok && SSL_write(c, "c", 1) == 1 && read_byte(s);
        if (!opts->quiet)
            hs_fact("renegotiation (%s): started=%d finished=%d client-reused=%d server-reused=%d",
                    opts->renegotiate == 2 ? "abbreviated" : "full", r, out->renegotiated,
                    SSL_session_reused(c), SSL_session_reused(s));
    }
    out->ok = ok;
    if (ok && opts->forged_record) {
        /* An application-data record the server cannot decrypt: it sends a
         * fatal alert, which the client then reads. */
        static const unsigned char junk[] = {0x17, 0x03, 0x03, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o'};
        char b;
        BIO_write(SSL_get_wbio(c), junk, sizeof junk);
        int r = SSL_read(s, &b, 1);
        int rs = SSL_get_error(s, r);
        r = SSL_read(c, &b, 1);
        int rc = SSL_get_error(c, r);
        if (!opts->quiet)
            hs_fact("forged record: server SSL_get_error=%d, client SSL_get_error=%d", rs, rc);
    }
    out->client_reused = SSL_session_reused(c);
    out->server_reused = SSL_session_reused(s);
    out->client_session = SSL_get1_session(c);
    out->server_session = SSL_get1_session(s);
    out->server_has_match = has_match(s, out->server_session);
    out->client_has_match = has_match(c, out->client_session);
    const char *version = SSL_get_version(s);
    describe_errors(errs, sizeof errs);

    if (!opts->unclean) {
        SSL_shutdown(c);
        SSL_shutdown(s);
    }
    hs_phase("conn %d free", out->number);
    if (opts->reuse_server != NULL)
        *opts->reuse_server = s;
    else
        SSL_free(s);
    if (opts->reuse_client != NULL)
        *opts->reuse_client = c;
    else
        SSL_free(c);
    char errs_after[512];
    describe_errors(errs_after, sizeof errs_after);
    hs_phase("conn %d", out->number);

    if (!opts->quiet) {
        char offer_desc[48];
        if (offered_session != NULL)
            snprintf(offer_desc, sizeof offer_desc, "%s(resumable=%d)", offered,
                     offered_resumable);
        else
            snprintf(offer_desc, sizeof offer_desc, "none");
        hs_fact("%s %s offered=%s client-reused=%d server-reused=%d server-session=%s "
                "client-session=%s server-has-match=%d client-has-match=%d",
                ok ? "ok" : "FAILED", version, offer_desc, out->client_reused,
                out->server_reused, hs_name(out->server_session, b1),
                hs_name(out->client_session, b2), out->server_has_match,
                out->client_has_match);
        if (errs[0])
            hs_fact("error queue after the handshake: %s", errs);
        if (errs_after[0])
            hs_fact("error queue after SSL_free: %s", errs_after);
    }
    hs_phase("-");
    return ok;
}

void hs_conn_release(struct hs_conn *c)
{
    SSL_SESSION_free(c->client_session);
    SSL_SESSION_free(c->server_session);
    c->client_session = c->server_session = NULL;
}

/* --- Statistics ------------------------------------------------------- */

void hs_stats_get(SSL_CTX *ctx, struct hs_stats *o)
{
    o->number = SSL_CTX_sess_number(ctx);
    o->connect = SSL_CTX_sess_connect(ctx);
    o->connect_good = SSL_CTX_sess_connect_good(ctx);
    o->connect_reneg = SSL_CTX_sess_connect_renegotiate(ctx);
    o->accept = SSL_CTX_sess_accept(ctx);
    o->accept_good = SSL_CTX_sess_accept_good(ctx);
    o->accept_reneg = SSL_CTX_sess_accept_renegotiate(ctx);
    o->hits = SSL_CTX_sess_hits(ctx);
    o->cb_hits = SSL_CTX_sess_cb_hits(ctx);
    o->misses = SSL_CTX_sess_misses(ctx);
    o->timeouts = SSL_CTX_sess_timeouts(ctx);
    o->cache_full = SSL_CTX_sess_cache_full(ctx);
}

void hs_print_stats(SSL_CTX *ctx)
{
    struct hs_stats s;
    hs_stats_get(ctx, &s);
    hs_fact("stats %s: number=%ld connect=%ld connect_good=%ld connect_renegotiate=%ld "
            "accept=%ld accept_good=%ld accept_renegotiate=%ld hits=%ld cb_hits=%ld "
            "misses=%ld timeouts=%ld cache_full=%ld",
            hs_ctx_name(ctx), s.number, s.connect, s.connect_good, s.connect_reneg, s.accept,
            s.accept_good, s.accept_reneg, s.hits, s.cb_hits, s.misses, s.timeouts,
            s.cache_full);
}
