/*
 * tests-c/conformance.c: the C conformance suite of libsslsess.
 *
 * One CHECK per statement of the two seed pages (SSL_set_session(3),
 * SSL_CTX_add_session(3): ../shared/seeds/) and of the behaviour issue 2
 * asks for. The same program runs three ways (tests-c/conformance.sh):
 * linked ahead of libssl, plain with libsslsess LD_PRELOADed, and plain
 * against libssl alone as the reference; the two libsslsess runs also under
 * valgrind memcheck.
 *
 * Reference counts are observed exactly: every session the suite makes
 * carries a tracker in its ex_data, and an ex_data free callback counts how
 * often the SSL_SESSION itself was freed (0 = still referenced, 1 = freed
 * once). The remove-session callback logs every call with the session's
 * resumability at that moment.
 *
 * Also the README's own claims (Compatibility): a remove callback that
 * calls back into the cache during a remove, an eviction, a flush and
 * SSL_CTX_free; ex_data free callbacks that call into the cache while
 * SSL_CTX_free runs; SSL_CTX_sessions() left empty; SSL_SESSION_set1_id on
 * a cached session; one session cached by two contexts;
 * SSL_SESSION_set_time/_set_timeout re-sorting for eviction; a flush on a
 * context without a remove callback. What libssl 3.0 cannot do (it
 * deadlocks or corrupts its list) runs under libsslsess only and is listed
 * as "skip" in the reference run.
 *
 *   conformance                  the whole suite
 *   conformance --trace-case     one add and one remove (for SSLSESS_LOG)
 *   conformance --trace-case-closed-stderr   the same, stderr a pipe nobody reads
 *   conformance --reentrant-learning   removes from an SSL_SESSION ex_data
 *                                callback (its thread, and another thread it
 *                                waits for) while libsslsess learns the flag
 *   conformance --count-probes   the sessions an SSL_SESSION ex_data callback
 *                                sees made and freed besides the program's
 *                                own, around one add and one remove
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"
#include "tls_fixture.h"

#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Session trackers: count frees of each SSL_SESSION.                        */

typedef struct {
    char name[24];
    int frees; /* atomic */
} trk_t;

#define MAX_TRACKERS 4096
static trk_t trackers[MAX_TRACKERS];
static int trackers_used; /* atomic */
static int trk_index = -1;

static void trk_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                        void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL)
        __atomic_add_fetch(&((trk_t *)ptr)->frees, 1, __ATOMIC_SEQ_CST);
}

static int frees(const trk_t *t)
{
    return __atomic_load_n(&t->frees, __ATOMIC_SEQ_CST);
}

static trk_t *trk_of(const SSL_SESSION *s)
{
    return (trk_t *)SSL_SESSION_get_ex_data(s, trk_index);
}

/* Attaches a new tracker to s (a session made here or by a handshake). */
static trk_t *track(SSL_SESSION *s, const char *name)
{
    int i = __atomic_fetch_add(&trackers_used, 1, __ATOMIC_SEQ_CST);
    if (i >= MAX_TRACKERS) {
        fprintf(stderr, "conformance: out of trackers\n");
        abort();
    }
    trk_t *t = &trackers[i];
    snprintf(t->name, sizeof t->name, "%s", name);
    SSL_SESSION_set_ex_data(s, trk_index, t);
    return t;
}

/* The protocol version of a connection made from a TLS_method() context
 * before any handshake (what SSL_has_matching_session_id looks up with). */
static int VER;
/* A base time far in the past: sessions with crafted expiries. */
#define T0 1000000L

/* A session with a 32-byte id made of `tag` and `n`, protocol version ver,
 * time tm and timeout to, tracked under `name`. */
static SSL_SESSION *mk_session(const char *name, int tag, int n, int ver, long tm, long to)
{
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    memset(id, tag, sizeof id);
    id[0] = (unsigned char)(n & 0xff);
    id[1] = (unsigned char)((n >> 8) & 0xff);
    SSL_SESSION *s = new_session_with_id(id, sizeof id, ver);
    if (s == NULL) {
        fprintf(stderr, "conformance: cannot make a session\n");
        abort();
    }
    SSL_SESSION_set_time(s, tm);
    SSL_SESSION_set_timeout(s, to);
    track(s, name);
    return s;
}

/* A session of version VER that will not expire during the run. */
static SSL_SESSION *mk(const char *name, int tag, int n)
{
    return mk_session(name, tag, n, VER, (long)time(NULL), 100000);
}

/* ------------------------------------------------------------------------ */
/* The remove-session callback's log.                                        */

typedef struct {
    SSL_CTX *ctx;
    SSL_SESSION *s;
    trk_t *t;
    int resumable;
} rm_event;

#define MAX_EVENTS 8192
static rm_event rmlog[MAX_EVENTS];
static int rmn; /* events logged (under rmlock) */
static pthread_mutex_t rmlock = PTHREAD_MUTEX_INITIALIZER;

static void rm_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    pthread_mutex_lock(&rmlock);
    if (rmn < MAX_EVENTS) {
        rm_event *e = &rmlog[rmn];
        e->ctx = ctx;
        e->s = s;
        e->t = trk_of(s);
        e->resumable = SSL_SESSION_is_resumable(s);
    }
    rmn++;
    pthread_mutex_unlock(&rmlock);
}

static int rm_count(void)
{
    pthread_mutex_lock(&rmlock);
    int n = rmn;
    pthread_mutex_unlock(&rmlock);
    return n;
}

static void rm_reset(void)
{
    pthread_mutex_lock(&rmlock);
    rmn = 0;
    pthread_mutex_unlock(&rmlock);
}

/* Calls of the remove callback for tracker t (or for ctx, if t is NULL). */
static int rm_calls_for(const trk_t *t, const SSL_CTX *ctx)
{
    int n = 0, i, total = rm_count();
    for (i = 0; i < total && i < MAX_EVENTS; i++)
        if ((t == NULL || rmlog[i].t == t) && (ctx == NULL || rmlog[i].ctx == ctx))
            n++;
    return n;
}

static SSL_CTX *new_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        fprintf(stderr, "conformance: SSL_CTX_new failed\n");
        abort();
    }
    SSL_CTX_sess_set_remove_cb(ctx, rm_cb);
    return ctx;
}

/* Is `id` of s cached in ctx, as SSL_has_matching_session_id sees it? */
static int has_id(SSL_CTX *ctx, const SSL_SESSION *s)
{
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    SSL *ssl = SSL_new(ctx);
    int r = SSL_has_matching_session_id(ssl, id, len);
    SSL_free(ssl);
    return r;
}

/* Pushes a recognisable error, to see that a call leaves the queue alone. */
#define SENTINEL_REASON 42
static void push_sentinel(void)
{
    ERR_clear_error();
    ERR_raise(ERR_LIB_USER, SENTINEL_REASON);
}

/* 1 when the queue holds exactly the sentinel; clears the queue. */
static int only_sentinel(void)
{
    unsigned long e = ERR_get_error();
    int ok = ERR_GET_LIB(e) == ERR_LIB_USER && ERR_GET_REASON(e) == SENTINEL_REASON
             && ERR_peek_error() == 0;
    ERR_clear_error();
    return ok;
}

/* The synonyms, found at run time: libssl 3.0 no longer exports them. */
typedef int (*sess_fn)(SSL_CTX *, SSL_SESSION *);
static sess_fn syn_add, syn_remove;

/* ------------------------------------------------------------------------ */
/* SSL_CTX_add_session(3)                                                    */

static void test_add_session(void)
{
    SECTION("SSL_CTX_add_session(3): adding");
    SSL_CTX *ctx = new_ctx();
    rm_reset();

    SSL_SESSION *c = mk("c", 0x11, 1);
    trk_t *tc = trk_of(c);
    push_sentinel();
    CHECK(SSL_CTX_add_session(ctx, c) == 1,
          "SSL_CTX_add_session: adding a new session c returns 1 (\"the operation succeeded\")");
    CHECK(only_sentinel(), "SSL_CTX_add_session: a successful add leaves the error queue untouched");
    CHECK(SSL_CTX_sess_number(ctx) == 1, "SSL_CTX_add_session: c is cached (SSL_CTX_sess_number == 1)");
    CHECK(has_id(ctx, c) == 1, "SSL_CTX_add_session: c is cached (SSL_has_matching_session_id)");
    SSL_SESSION_free(c);
    CHECK(frees(tc) == 0,
          "SSL_CTX_add_session: reference count of c incremented by 1 (after the application's "
          "SSL_SESSION_free, c is still alive)");
    CHECK(rm_count() == 0, "SSL_CTX_add_session: adding calls no remove callback");
    CHECK(SSL_SESSION_is_resumable(c) == 1, "SSL_CTX_add_session: c stays resumable while cached");
    CHECK(SSL_CTX_remove_session(ctx, c) == 1, "SSL_CTX_remove_session: removing cached c returns 1");
    CHECK(frees(tc) == 1,
          "SSL_CTX_add_session: incremented by exactly 1 (removal releases the cache's one "
          "reference: c freed exactly once)");

    SECTION("SSL_CTX_add_session(3): same session id, another object");
    rm_reset();
    SSL_SESSION *old = mk("old", 0x12, 1);
    SSL_SESSION *nw = mk("new", 0x12, 1); /* same id and version: same key */
    trk_t *told = trk_of(old), *tnew = trk_of(nw);
    CHECK(SSL_CTX_add_session(ctx, old) == 1, "SSL_CTX_add_session: the first object returns 1");
    push_sentinel();
    CHECK(SSL_CTX_add_session(ctx, nw) == 1,
          "SSL_CTX_add_session: same session id in a different SSL_SESSION object: replaced, returns 1");
    CHECK(only_sentinel(), "SSL_CTX_add_session: replacing leaves the error queue untouched");
    CHECK(SSL_CTX_sess_number(ctx) == 1,
          "SSL_CTX_add_session: \"the old session is removed and replaced by the new session\" "
          "(one entry)");
    CHECK(frees(told) == 0, "SSL_CTX_add_session: the old object is still alive while the application holds it");
    SSL_SESSION_free(old);
    CHECK(frees(told) == 1,
          "SSL_CTX_add_session: \"the old session is removed by calling SSL_SESSION_free\" (the "
          "cache's reference released: old freed exactly once)");
    CHECK(rm_count() == 0, "SSL_CTX_add_session: replacing calls no remove callback");
    SSL_SESSION_free(nw);
    CHECK(frees(tnew) == 0, "SSL_CTX_add_session: the new object is cached (alive after the application's free)");
    CHECK(has_id(ctx, nw) == 1, "SSL_CTX_add_session: the new object's id is cached");
    CHECK(SSL_CTX_remove_session(ctx, nw) == 1, "SSL_CTX_add_session: the new object is the cached one (remove returns 1)");
    CHECK(frees(tnew) == 1, "SSL_CTX_add_session: the new object was referenced once by the cache");

    SECTION("SSL_CTX_add_session(3): old session not marked non-resumable");
    old = mk("old2", 0x13, 1);
    nw = mk("new2", 0x13, 1);
    told = trk_of(old);
    SSL_CTX_add_session(ctx, old);
    SSL_CTX_add_session(ctx, nw);
    CHECK(SSL_SESSION_is_resumable(old) == 1,
          "SSL_CTX_add_session: the replaced session is not made non-resumable (libssl 3.0)");
    SSL_SESSION_free(old);
    CHECK(frees(told) == 1, "SSL_CTX_add_session: the replaced session is freed once its last holder lets go");
    SSL_CTX_remove_session(ctx, nw);
    SSL_SESSION_free(nw);

    SECTION("SSL_CTX_add_session(3): the identical object again");
    rm_reset();
    SSL_SESSION *d = mk("dup", 0x14, 1);
    trk_t *td = trk_of(d);
    CHECK(SSL_CTX_add_session(ctx, d) == 1, "SSL_CTX_add_session: first add returns 1");
    push_sentinel();
    CHECK(SSL_CTX_add_session(ctx, d) == 0,
          "SSL_CTX_add_session: the identical SSL_SESSION object again is a no-op returning 0");
    CHECK(only_sentinel(),
          "SSL_CTX_add_session: the duplicate add's 0 is not an error (error queue untouched)");
    ERR_clear_error();
    SSL_CTX_add_session(ctx, d);
    CHECK(ERR_peek_error() == 0, "SSL_CTX_add_session: the duplicate add queues no error (ERR_peek_error() == 0)");
    CHECK(SSL_CTX_sess_number(ctx) == 1, "SSL_CTX_add_session: the duplicate add leaves one entry");
    CHECK(rm_count() == 0, "SSL_CTX_add_session: the duplicate add calls no remove callback");
    SSL_SESSION_free(d);
    CHECK(frees(td) == 0, "SSL_CTX_add_session: the duplicate add took no extra reference away (alive)");
    CHECK(SSL_CTX_remove_session(ctx, d) == 1, "SSL_CTX_add_session: the session is still cached after the no-op");
    CHECK(frees(td) == 1,
          "SSL_CTX_add_session: the duplicate adds left no extra reference (freed exactly once on removal)");

    SECTION("SSL_CTX_add_session(3): a session with an empty id");
    rm_reset();
    SSL_SESSION *e = SSL_SESSION_new();
    SSL_SESSION_set_protocol_version(e, VER);
    trk_t *te = track(e, "empty-id");
    long before = SSL_CTX_sess_number(ctx);
    CHECK(SSL_CTX_add_session(ctx, e) == 1, "SSL_CTX_add_session: a session with an empty id is accepted (returns 1, as libssl 3.0)");
    CHECK(SSL_CTX_sess_number(ctx) == before + 1, "SSL_CTX_add_session: the empty-id session is counted");
    push_sentinel();
    CHECK(SSL_CTX_remove_session(ctx, e) == 0, "SSL_CTX_remove_session: a session with an empty id returns 0");
    CHECK(only_sentinel(), "SSL_CTX_remove_session: the empty-id 0 queues no error");
    CHECK(rm_count() == 0, "SSL_CTX_remove_session: an empty id calls no remove callback (nothing happens)");
    CHECK(SSL_CTX_sess_number(ctx) == before + 1, "SSL_CTX_remove_session: an empty id removes nothing");
    SSL_SESSION_free(e);
    CHECK(frees(te) == 0, "SSL_CTX_remove_session: an empty id keeps the cache's reference");
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(frees(te) == 1, "SSL_CTX_free: the empty-id session's cache reference is released");
    CHECK(rm_calls_for(te, NULL) == 1, "SSL_CTX_free: the empty-id session is reported to the remove callback");
}

/* ------------------------------------------------------------------------ */
/* SSL_CTX_remove_session(3)                                                 */

static void test_remove_session(void)
{
    SECTION("SSL_CTX_remove_session(3): a cached session");
    SSL_CTX *ctx = new_ctx();
    rm_reset();
    SSL_SESSION *c = mk("c", 0x21, 1);
    trk_t *tc = trk_of(c);
    SSL_CTX_add_session(ctx, c);
    push_sentinel();
    CHECK(SSL_CTX_remove_session(ctx, c) == 1, "SSL_CTX_remove_session: removing a cached session returns 1");
    CHECK(only_sentinel(), "SSL_CTX_remove_session: a successful remove leaves the error queue untouched");
    CHECK(SSL_CTX_sess_number(ctx) == 0, "SSL_CTX_remove_session: \"removes the session c from the context\" (none left)");
    CHECK(has_id(ctx, c) == 0, "SSL_CTX_remove_session: c's id is no longer cached");
    CHECK(frees(tc) == 0, "SSL_CTX_remove_session: c alive while the application still holds it");
    CHECK(rm_count() == 1 && rmlog[0].s == c && rmlog[0].ctx == ctx,
          "SSL_CTX_remove_session: the remove callback is called once, with (ctx, c)");
    CHECK(rm_count() == 1 && rmlog[0].resumable == 0,
          "SSL_CTX_remove_session: c is already non-resumable when the remove callback runs");
    CHECK(SSL_SESSION_is_resumable(c) == 0, "SSL_CTX_remove_session: c is made non-resumable (SSL_SESSION_is_resumable == 0)");
    SSL_SESSION_free(c);
    CHECK(frees(tc) == 1, "SSL_CTX_remove_session: \"SSL_SESSION_free() is called once for c\" (freed exactly once with the application's own free)");

    SECTION("SSL_CTX_remove_session(3): a session that is not cached");
    rm_reset();
    SSL_SESSION *a = mk("absent", 0x22, 1);
    trk_t *ta = trk_of(a);
    SSL_SESSION *other = mk("other", 0x23, 1);
    SSL_CTX_add_session(ctx, other);
    push_sentinel();
    CHECK(SSL_CTX_remove_session(ctx, a) == 0,
          "SSL_CTX_remove_session: returns 0 when \"the session was not found in the cache\"");
    CHECK(only_sentinel(), "SSL_CTX_remove_session: the absent remove's 0 is not an error (error queue untouched)");
    ERR_clear_error();
    SSL_CTX_remove_session(ctx, a);
    CHECK(ERR_peek_error() == 0, "SSL_CTX_remove_session: absent remove queues no error (ERR_peek_error() == 0)");
    CHECK(SSL_CTX_sess_number(ctx) == 1, "SSL_CTX_remove_session: removing an absent session leaves the cache alone");
    CHECK(rm_calls_for(ta, ctx) == 2 && rmlog[0].s == a,
          "SSL_CTX_remove_session: the remove callback is called with the absent session too (once per call)");
    CHECK(SSL_SESSION_is_resumable(a) == 0, "SSL_CTX_remove_session: the absent session is made non-resumable too");
    CHECK(frees(ta) == 0, "SSL_CTX_remove_session: an absent session loses no reference");
    SSL_SESSION_free(a);
    CHECK(frees(ta) == 1, "SSL_CTX_remove_session: the absent session freed once by its only holder");

    SECTION("SSL_CTX_remove_session(3): another object with the cached session's key");
    rm_reset();
    trk_t *tother = trk_of(other);
    SSL_SESSION *same_key = mk("same-key", 0x23, 1);
    trk_t *tsk = trk_of(same_key);
    CHECK(SSL_CTX_remove_session(ctx, same_key) == 1,
          "SSL_CTX_remove_session: the entry with c's key is removed even when it is another object (returns 1)");
    CHECK(SSL_CTX_sess_number(ctx) == 0, "SSL_CTX_remove_session: the cached object left the cache");
    CHECK(rm_count() == 1 && rmlog[0].s == same_key,
          "SSL_CTX_remove_session: the remove callback gets the object passed, not the cached one");
    CHECK(SSL_SESSION_is_resumable(same_key) == 0, "SSL_CTX_remove_session: the object passed is made non-resumable");
    CHECK(SSL_SESSION_is_resumable(other) == 1, "SSL_CTX_remove_session: the cached object is not marked (libssl 3.0)");
    SSL_SESSION_free(other);
    CHECK(frees(tother) == 1, "SSL_CTX_remove_session: the cached object's cache reference was released");
    SSL_SESSION_free(same_key);
    CHECK(frees(tsk) == 1, "SSL_CTX_remove_session: the object passed loses no reference");

    SECTION("SSL_CTX_add_session(3): NOTES, SSL_SESS_CACHE_NO_INTERNAL_STORE");
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_SESSION *n = mk("no-store", 0x24, 1);
    trk_t *tn = trk_of(n);
    CHECK(SSL_CTX_add_session(ctx, n) == 1,
          "SSL_CTX_add_session: with SSL_SESS_CACHE_NO_INTERNAL_STORE \"the application can use "
          "SSL_CTX_add_session() directly\" (returns 1)");
    CHECK(SSL_CTX_sess_number(ctx) == 1, "NO_INTERNAL_STORE: the session added by the application is cached (SSL_CTX_sess_number)");
    CHECK(has_id(ctx, n) == 1, "NO_INTERNAL_STORE: the session added by the application is cached (SSL_has_matching_session_id)");
    SSL_SESSION_free(n);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(frees(tn) == 1 && rm_calls_for(tn, NULL) == 1, "NO_INTERNAL_STORE: SSL_CTX_free releases the application's session");
}

/* ------------------------------------------------------------------------ */
/* SSL_add_session / SSL_remove_session                                      */

static void test_synonyms(void)
{
    SECTION("SSL_CTX_add_session(3): synonyms SSL_add_session / SSL_remove_session");
    syn_add = (sess_fn)dlsym(RTLD_DEFAULT, "SSL_add_session");
    syn_remove = (sess_fn)dlsym(RTLD_DEFAULT, "SSL_remove_session");
    CHECK((syn_add != NULL) == under_sslsess() && (syn_remove != NULL) == under_sslsess(),
          "SSL_add_session/SSL_remove_session are present exactly when libsslsess is in place");
    CHECK_PAGES(syn_add != NULL && syn_remove != NULL,
                "\"SSL_add_session() and SSL_remove_session() are synonyms\": both exist (libssl 3.0 dropped them)");
    if (syn_add == NULL || syn_remove == NULL)
        return;
    SSL_CTX *ctx = new_ctx();
    rm_reset();
    SSL_SESSION *s = mk("syn", 0x31, 1);
    trk_t *ts = trk_of(s);
    CHECK(syn_add(ctx, s) == 1, "SSL_add_session: a new session returns 1 like SSL_CTX_add_session");
    CHECK(syn_add(ctx, s) == 0 && ERR_peek_error() == 0, "SSL_add_session: the identical object again returns 0, no error");
    CHECK(SSL_CTX_add_session(ctx, s) == 0, "SSL_add_session: shares SSL_CTX_add_session's cache (duplicate seen)");
    SSL_SESSION_free(s);
    CHECK(frees(ts) == 0, "SSL_add_session: reference count of c incremented by 1");
    CHECK(syn_remove(ctx, s) == 1, "SSL_remove_session: a cached session returns 1");
    CHECK(frees(ts) == 1 && rm_count() == 1, "SSL_remove_session: SSL_SESSION_free called once for c, remove callback once");
    SSL_SESSION *a = mk("syn-absent", 0x32, 1);
    CHECK(syn_remove(ctx, a) == 0 && ERR_peek_error() == 0, "SSL_remove_session: an absent session returns 0, no error");
    CHECK(SSL_SESSION_is_resumable(a) == 0 && rm_count() == 2, "SSL_remove_session: the absent session is made non-resumable and reported");
    SSL_SESSION_free(a);
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* SSL_set_session(3) without a handshake                                    */

static void test_set_session(void)
{
    SECTION("SSL_set_session(3)");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_sess_set_remove_cb(ctx, rm_cb);
    rm_reset();
    SSL *ssl = SSL_new(ctx);
    SSL_SESSION *s1 = mk("set-1", 0x41, 1), *s2 = mk("set-2", 0x41, 2);
    trk_t *t1 = trk_of(s1), *t2 = trk_of(s2);

    push_sentinel();
    CHECK(SSL_set_session(ssl, s1) == 1, "SSL_set_session: returns 1, \"the operation succeeded\"");
    CHECK(only_sentinel(), "SSL_set_session: success leaves the error queue untouched");
    SSL_SESSION_free(s1);
    CHECK(frees(t1) == 0, "SSL_set_session: \"the reference count of session is incremented by 1\" (alive after the application's free)");
    CHECK(SSL_get_session(ssl) == s1,
          "SSL_set_session: \"is only useful for TLS/SSL clients\": the client SSL will use it (SSL_get_session before connect)");
    CHECK(SSL_set_session(ssl, s2) == 1, "SSL_set_session: setting another session returns 1");
    CHECK(frees(t1) == 1,
          "SSL_set_session: \"If there is already a session set inside ssl ... SSL_SESSION_free() will be called for that session\" (freed once)");
    CHECK(rm_count() == 0, "SSL_set_session: a session set on a connection that never connected is not removed from any cache");
    CHECK(SSL_get_session(ssl) == s2, "SSL_set_session: the new session is the one set");
    SSL_SESSION_free(s2);
    CHECK(frees(t2) == 0, "SSL_set_session: the second session is held by ssl");
    CHECK(SSL_set_session(ssl, s2) == 1 && frees(t2) == 0,
          "SSL_set_session: setting the session already set returns 1 and keeps it");
    CHECK(SSL_set_session(ssl, NULL) == 1, "SSL_set_session: NULL returns 1");
    CHECK(SSL_get_session(ssl) == NULL, "SSL_set_session: NULL clears the session");
    CHECK(frees(t2) == 1, "SSL_set_session: NULL releases the previous session (freed once)");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Handshakes in memory (BIO pairs): SSL_connect, reuse, NO_INTERNAL_STORE    */

static EVP_PKEY *hs_key;
static X509 *hs_cert;

static int make_cert(void)
{
    return make_self_signed("localhost", &hs_key, &hs_cert);
}

/* TLS 1.2 without tickets: the server keeps sessions in its cache by id. */
static SSL_CTX *server_ctx(long mode)
{
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(s, hs_cert);
    SSL_CTX_use_PrivateKey(s, hs_key);
    SSL_CTX_set_max_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_options(s, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"conformance", 11);
    SSL_CTX_set_session_cache_mode(s, mode);
    SSL_CTX_sess_set_remove_cb(s, rm_cb);
    return s;
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    return c;
}

/*
 * A client of cctx and a server of sctx over a BIO pair, stepped at most
 * `rounds` times. `set` (may be NULL) is set on the client with
 * SSL_set_session before connecting; with drop_own the caller's reference
 * is released right after. Returns 1 when both sides finished the
 * handshake, 0 when they are still in it, -1 on failure (*c, *s freed).
 */
static int connect_pair(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *set, int drop_own, int rounds, SSL **cp,
                        SSL **sp)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    int cdone = 0, sdone = 0, i;
    *cp = *sp = NULL;
    if (!tls_pair_join(c, s))
        goto fail;
    if (set != NULL) {
        SSL_set_session(c, set);
        if (drop_own)
            SSL_SESSION_free(set);
    }
    for (i = 0; i < rounds && !(cdone && sdone); i++) {
        if (!cdone) {
            int r = SSL_connect(c);
            if (r == 1)
                cdone = 1;
            else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ && SSL_get_error(c, r) != SSL_ERROR_WANT_WRITE)
                goto fail;
        }
        if (!sdone) {
            int r = SSL_accept(s);
            if (r == 1)
                sdone = 1;
            else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ && SSL_get_error(s, r) != SSL_ERROR_WANT_WRITE)
                goto fail;
        }
    }
    ERR_clear_error();
    *cp = c;
    *sp = s;
    return cdone && sdone;
fail:
    ERR_print_errors_fp(stdout);
    SSL_free(c);
    SSL_free(s);
    return -1;
}

/*
 * One complete handshake (see connect_pair), both sides then shut down
 * cleanly. Returns the client connection (the caller frees it) or NULL;
 * *server_sess, if not NULL, gets the server's session (a reference).
 */
static SSL *handshake(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *set, int drop_own,
                      SSL_SESSION **server_sess)
{
    SSL *c, *s;
    int r = connect_pair(cctx, sctx, set, drop_own, 100, &c, &s);
    if (r != 1) {
        SSL_free(c);
        SSL_free(s);
        return NULL;
    }
    SSL_shutdown(c);
    SSL_shutdown(s);
    if (server_sess != NULL)
        *server_sess = SSL_get1_session(s);
    SSL_free(s);
    ERR_clear_error();
    return c;
}

/* The client's session (a reference the caller frees) of one full handshake
 * (see handshake; the client connection is freed), or NULL if it failed;
 * *server_sess as for handshake. */
static SSL_SESSION *client_session(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION **server_sess)
{
    SSL *c = handshake(cctx, sctx, NULL, 0, server_sess);
    SSL_SESSION *sess = c != NULL ? SSL_get1_session(c) : NULL;
    SSL_free(c);
    return sess;
}

/* Connections whose session libssl 3.0 calls "bad": the handshake finished
 * and no close_notify was sent. libssl removes such a session from the
 * session context's cache (calling SSL_CTX_remove_session through its PLT,
 * so libsslsess's) when the connection gets another session or is freed. */
static void test_bad_sessions(SSL_CTX *cctx, SSL_CTX *sctx)
{
    SSL *c, *s;
    SECTION("SSL_set_session(3) and SSL_free on connections without a clean shutdown");
    if (connect_pair(cctx, sctx, NULL, 0, 1, &c, &s) == 0) {
        SSL_SESSION *mid = SSL_get_session(s);
        trk_t *tmid = mid ? track(mid, "mid-handshake") : NULL;
        rm_reset();
        CHECK(tmid != NULL && SSL_set_session(s, NULL) == 1 && rm_count() == 0 && frees(tmid) == 1,
              "SSL_set_session in the middle of a handshake: the previous session is freed, not removed from the cache");
    } else {
        CHECK(0, "bad sessions: cannot stop a handshake half-way");
    }
    SSL_free(c);
    SSL_free(s);

    long n0 = SSL_CTX_sess_number(sctx);
    if (connect_pair(cctx, sctx, NULL, 0, 100, &c, &s) == 1) {
        SSL_SESSION *done = SSL_get_session(s);
        trk_t *tdone = track(done, "no-shutdown");
        CHECK(SSL_CTX_sess_number(sctx) == n0 + 1,
              "bad sessions: the server cached the finished handshake's session");
        rm_reset();
        CHECK(SSL_set_session(s, NULL) == 1, "SSL_set_session on a connection that never sent close_notify returns 1");
        CHECK(rm_count() == 1 && rmlog[0].s == done && rmlog[0].ctx == sctx && rmlog[0].resumable == 0,
              "SSL_set_session: libssl removes the connection's \"bad\" session from the cache (remove callback, non-resumable)");
        CHECK(SSL_CTX_sess_number(sctx) == n0 && frees(tdone) == 1,
              "SSL_set_session: the bad session left the cache and was freed once (cache and connection references)");
    } else {
        CHECK(0, "bad sessions: handshake failed");
    }
    SSL_free(c);
    SSL_free(s);

    n0 = SSL_CTX_sess_number(sctx);
    if (connect_pair(cctx, sctx, NULL, 0, 100, &c, &s) == 1) {
        trk_t *tfree = track(SSL_get_session(s), "freed-unclean");
        CHECK(SSL_CTX_sess_number(sctx) == n0 + 1, "bad sessions: the server cached the session");
        rm_reset();
        SSL_free(s);
        s = NULL;
        CHECK(rm_count() == 1 && rmlog[0].t == tfree && SSL_CTX_sess_number(sctx) == n0 && frees(tfree) == 1,
              "SSL_free without a clean shutdown: the session is removed from the cache and freed once");
    } else {
        CHECK(0, "bad sessions: handshake failed");
    }
    SSL_free(c);
    SSL_free(s);
}

static void test_handshakes(void)
{
    SECTION("SSL_set_session(3) and SSL_connect (in-memory TLS 1.2 handshakes)");
    if (!make_cert()) {
        CHECK(0, "handshakes: cannot make a test certificate");
        return;
    }
    SSL_CTX *cctx = client_ctx();
    SSL_CTX *sctx = server_ctx(SSL_SESS_CACHE_SERVER);
    rm_reset();

    /* The same ssl already used for a connection. */
    SSL *c0 = handshake(cctx, sctx, NULL, 0, NULL);
    CHECK(c0 != NULL, "handshake: a full handshake completes");
    if (c0 != NULL) {
        SSL_SESSION *own = SSL_get_session(c0);
        trk_t *town = track(own, "connection");
        CHECK(SSL_set_session(c0, NULL) == 1 && frees(town) == 1,
              "SSL_set_session: \"because the same ssl was already used for a connection, "
              "SSL_SESSION_free() will be called for that session\" (freed once)");
        SSL_free(c0);
    }
    CHECK(SSL_CTX_sess_number(sctx) == 1, "handshake: the server cached the new session (SSL_CTX_sess_number == 1)");

    /* Reused. */
    SSL_SESSION *sa = client_session(cctx, sctx, NULL);
    if (sa == NULL) {
        CHECK(0, "handshake: cannot get a client session");
        goto out;
    }
    trk_t *ta = track(sa, "client-a");
    long hits0 = SSL_CTX_sess_hits(sctx), misses0 = SSL_CTX_sess_misses(sctx);
    long cbhits0 = SSL_CTX_sess_cb_hits(sctx);
    SSL *c2 = handshake(cctx, sctx, sa, 1, NULL);
    CHECK(c2 != NULL, "handshake: the resuming handshake completes");
    if (c2 != NULL) {
        CHECK(SSL_session_reused(c2) == 1,
              "SSL_set_session: \"Whether the session was reused can be queried with SSL_session_reused\" (reused: 1)");
        CHECK(SSL_get_session(c2) == sa && frees(ta) == 0,
              "SSL_set_session: a reused session keeps the reference SSL_set_session took");
        CHECK(SSL_CTX_sess_hits(sctx) == hits0 + 1, "statistics: the resumption counts one hit (SSL_CTX_sess_hits)");
        CHECK(SSL_CTX_sess_misses(sctx) == misses0, "statistics: a cache hit is no miss (SSL_CTX_sess_misses)");
        CHECK(SSL_CTX_sess_cb_hits(sctx) == cbhits0, "statistics: a cache hit is no callback hit (SSL_CTX_sess_cb_hits)");
        SSL_free(c2);
        CHECK(frees(ta) == 1, "SSL_set_session: the reused session is released with the connection (freed once)");
    }

    /* Not reused. */
    SSL_SESSION *sb = client_session(cctx, sctx, NULL);
    if (sb == NULL) {
        CHECK(0, "handshake: cannot get a second client session");
        goto out;
    }
    trk_t *tb = track(sb, "client-b");
    SSL_CTX_flush_sessions(sctx, 0);
    CHECK(SSL_CTX_sess_number(sctx) == 0, "handshake: flushing the server's cache empties it");
    misses0 = SSL_CTX_sess_misses(sctx);
    SSL *c4 = handshake(cctx, sctx, sb, 1, NULL);
    CHECK(c4 != NULL, "handshake: the handshake with an unknown session completes");
    if (c4 != NULL) {
        CHECK(SSL_session_reused(c4) == 0, "SSL_set_session: SSL_session_reused tells the session was not reused (0)");
        CHECK(frees(tb) == 1,
              "SSL_set_session: \"If the session is not reused, the reference count is decremented again during SSL_connect()\"");
        CHECK(SSL_get_session(c4) != NULL && SSL_get_session(c4) != sb, "SSL_set_session: the connection got a new session instead");
        CHECK(SSL_CTX_sess_misses(sctx) == misses0 + 1, "statistics: the unknown session counts one miss (SSL_CTX_sess_misses)");
        SSL_free(c4);
    }

    /* NO_INTERNAL_STORE / NO_INTERNAL_LOOKUP. */
    SSL_CTX *nctx = server_ctx(SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_SESSION *ss = NULL;
    SSL_SESSION *sc = client_session(cctx, nctx, &ss);
    if (sc == NULL || ss == NULL) {
        CHECK(0, "handshake: NO_INTERNAL_STORE server handshake failed");
        SSL_SESSION_free(sc);
        SSL_SESSION_free(ss);
        SSL_CTX_free(nctx);
        goto out;
    }
    CHECK(SSL_CTX_sess_number(nctx) == 0,
          "NO_INTERNAL_STORE: \"the internal cache will not be populated automatically by new sessions\"");
    CHECK(SSL_CTX_add_session(nctx, ss) == 1 && SSL_CTX_sess_number(nctx) == 1,
          "NO_INTERNAL_STORE: the application adds the server's session with SSL_CTX_add_session");
    SSL *c6 = handshake(cctx, nctx, sc, 0, NULL);
    CHECK(c6 != NULL && SSL_session_reused(c6) == 1,
          "NO_INTERNAL_STORE: \"the internal cache will be searched automatically for session-resume requests\" (resumed)");
    SSL_free(c6);
    SSL_CTX_set_session_cache_mode(nctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE
                                             | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    SSL *c7 = handshake(cctx, nctx, sc, 0, NULL);
    CHECK(c7 != NULL && SSL_session_reused(c7) == 0,
          "NO_INTERNAL_STORE: the lookup \"can be surpressed by SSL_SESS_CACHE_NO_INTERNAL_LOOKUP\" (not resumed)");
    SSL_free(c7);
    trk_t *tss = track(ss, "server-session");
    SSL_SESSION_free(ss);
    SSL_SESSION_free(sc);
    rm_reset();
    SSL_CTX_free(nctx);
    CHECK(frees(tss) == 1, "NO_INTERNAL_STORE: SSL_CTX_free releases the session the application added");
    test_bad_sessions(cctx, sctx);
out:
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* README, Compatibility and Limits: SSL_CTX_sessions() returns libssl's own
 * hash table, which libsslsess leaves empty (the handshake's sessions go to
 * libsslsess's cache too): a program that walks it sees nothing. Against
 * plain libssl the table holds every cached session. (libssl 3.0 declares
 * no lh_SSL_SESSION_* functions: the usual macro defines them.) */
DEFINE_LHASH_OF(SSL_SESSION);

static int walked;
static void count_walked(SSL_SESSION *s)
{
    (void)s;
    walked++;
}

static void test_sessions_table(void)
{
    SECTION("SSL_CTX_sessions: libssl's own hash table");
    SSL_CTX *cctx = client_ctx();
    SSL_CTX *sctx = server_ctx(SSL_SESS_CACHE_SERVER);
    SSL_SESSION *server_sess = NULL;
    SSL_SESSION *client_sess = hs_cert != NULL ? client_session(cctx, sctx, &server_sess) : NULL;
    SSL_SESSION *a = mk("table-a", 0x4d, 1), *b = mk("table-b", 0x4d, 2);
    SSL_CTX_add_session(sctx, a);
    SSL_CTX_add_session(sctx, b);
    long number = SSL_CTX_sess_number(sctx);
    LHASH_OF(SSL_SESSION) *table = SSL_CTX_sessions(sctx);
    unsigned long items = table != NULL ? lh_SSL_SESSION_num_items(table) : 0;
    walked = 0;
    if (table != NULL)
        lh_SSL_SESSION_doall(table, count_walked);
    CHECK(client_sess != NULL && server_sess != NULL && number == 3,
          "SSL_CTX_sessions: the server cached a handshake's session and two added ones (SSL_CTX_sess_number 3, "
          "got %ld)",
          number);
    CHECK(table != NULL, "SSL_CTX_sessions returns a table (not NULL)");
    if (under_sslsess())
        CHECK(items == 0 && walked == 0,
              "README: SSL_CTX_sessions() is libssl's own table, which libsslsess leaves empty: no items, a walk "
              "visits none, with 3 sessions cached (got %lu items, %d visited)",
              items, walked);
    else
        CHECK(items == (unsigned long)number && walked == number,
              "SSL_CTX_sessions: plain libssl's table holds every cached session (%lu items, %d visited)", items,
              walked);
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_SESSION_free(server_sess);
    SSL_SESSION_free(client_sess);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* ------------------------------------------------------------------------ */
/* SSL_CTX_flush_sessions and SSL_SESSION_set_time                           */

static void test_flush(void)
{
    SECTION("SSL_CTX_flush_sessions");
    SSL_CTX *ctx = new_ctx();
    /* expiries T0+300, +100, +400, +200, +500, added in this order */
    static const long to[] = {300, 100, 400, 200, 500};
    SSL_SESSION *s[5];
    trk_t *t[5];
    int i;
    for (i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "flush-%ld", to[i]);
        s[i] = mk_session(name, 0x51, i, VER, T0, to[i]);
        t[i] = trk_of(s[i]);
        SSL_CTX_add_session(ctx, s[i]);
        SSL_SESSION_free(s[i]);
    }
    rm_reset();
    push_sentinel();
    SSL_CTX_flush_sessions(ctx, T0 + 250);
    CHECK(only_sentinel(), "SSL_CTX_flush_sessions: flushing leaves the error queue untouched");
    CHECK(SSL_CTX_sess_number(ctx) == 3, "SSL_CTX_flush_sessions(ctx, t): removes exactly the sessions expired at t (2 of 5)");
    CHECK(rm_count() == 2 && rmlog[0].t == t[1] && rmlog[1].t == t[3],
          "SSL_CTX_flush_sessions: each is reported to the remove callback, in expiry order (+100, then +200)");
    CHECK(rm_count() == 2 && rmlog[0].resumable == 0 && rmlog[1].resumable == 0,
          "SSL_CTX_flush_sessions: each is non-resumable when reported");
    CHECK(frees(t[1]) == 1 && frees(t[3]) == 1 && frees(t[0]) == 0 && frees(t[2]) == 0 && frees(t[4]) == 0,
          "SSL_CTX_flush_sessions: the flushed sessions' cache references are released, the others kept");
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 400);
    CHECK(rm_count() == 1 && rmlog[0].t == t[0] && SSL_CTX_sess_number(ctx) == 2,
          "SSL_CTX_flush_sessions: expired means t > time + timeout (time+timeout == t stays)");
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 401);
    CHECK(rm_count() == 1 && rmlog[0].t == t[2], "SSL_CTX_flush_sessions: one second later it is expired");
    SSL_SESSION *live = mk("flush-live", 0x52, 1); /* expires long after T0+500 */
    trk_t *tlive = trk_of(live);
    SSL_CTX_add_session(ctx, live);
    rm_reset();
    SSL_CTX_flush_sessions(ctx, 0);
    CHECK(SSL_CTX_sess_number(ctx) == 0, "SSL_CTX_flush_sessions(ctx, 0): removes every session, expired or not");
    CHECK(rm_count() == 2 && rmlog[0].t == t[4] && rmlog[1].t == tlive,
          "SSL_CTX_flush_sessions(ctx, 0): each reported to the remove callback, in expiry order");
    CHECK(rm_count() == 2 && rmlog[0].resumable == 0 && rmlog[1].resumable == 0,
          "SSL_CTX_flush_sessions(ctx, 0): each made non-resumable");
    CHECK(frees(t[4]) == 1 && frees(tlive) == 0 && SSL_SESSION_is_resumable(live) == 0,
          "SSL_CTX_flush_sessions(ctx, 0): cache references released (the application's kept)");
    SSL_SESSION_free(live);
    CHECK(frees(tlive) == 1, "SSL_CTX_flush_sessions(ctx, 0): the cache held exactly one reference");
    rm_reset();
    SSL_CTX_flush_sessions(ctx, 0);
    CHECK(rm_count() == 0, "SSL_CTX_flush_sessions: flushing an empty cache calls nothing");

    SECTION("SSL_SESSION_set_time / set_timeout on a cached session");
    SSL_SESSION *p = mk_session("p", 0x53, 1, VER, T0, 100);
    SSL_SESSION *q = mk_session("q", 0x53, 2, VER, T0, 200);
    SSL_SESSION *r = mk_session("r", 0x53, 3, VER, T0, 300);
    trk_t *tp = trk_of(p), *tq = trk_of(q), *tr = trk_of(r);
    SSL_CTX_add_session(ctx, p);
    SSL_CTX_add_session(ctx, q);
    SSL_CTX_add_session(ctx, r);
    SSL_SESSION_set_time(r, T0 - 1000); /* expiry now T0-700, the earliest */
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 50);
    CHECK(rm_count() == 1 && rmlog[0].t == tr && SSL_CTX_sess_number(ctx) == 2,
          "SSL_SESSION_set_time on a cached session re-sorts it: flush removes it by its new time");
    SSL_SESSION_set_timeout(q, 10); /* expiry now T0+10 */
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 50);
    CHECK(rm_count() == 1 && rmlog[0].t == tq && SSL_CTX_sess_number(ctx) == 1,
          "SSL_SESSION_set_timeout on a cached session re-sorts it: flush removes it by its new timeout");
    SSL_SESSION_set_time(p, T0 + 1000000);
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 150);
    CHECK(rm_count() == 0 && SSL_CTX_sess_number(ctx) == 1,
          "SSL_SESSION_set_time to later keeps a cached session from expiring");
    SSL_SESSION_free(p);
    SSL_SESSION_free(q);
    SSL_SESSION_free(r);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(frees(tp) == 1 && frees(tq) == 1 && frees(tr) == 1, "set_time/set_timeout: every session freed exactly once");
}

/* ------------------------------------------------------------------------ */
/* Cache size and eviction                                                   */

typedef struct {
    SSL_SESSION *s;
    trk_t *t;
    long expiry;
    int cached;
    int evicted;
} entry_t;

/*
 * Adds e to ctx and checks the evictions that add caused against a model:
 * each evicted session must have been the earliest-expiring cached one.
 * Returns the number of evictions; *model_ok is cleared on a mismatch.
 */
static int add_and_model(SSL_CTX *ctx, entry_t *all, int n, entry_t *e, int *model_ok,
                         int *self_evicted)
{
    int before = rm_count(), i, j;
    if (SSL_CTX_add_session(ctx, e->s) != 1)
        *model_ok = 0;
    e->cached = 1;
    int after = rm_count();
    for (i = before; i < after; i++) {
        entry_t *ev = NULL, *min = NULL;
        for (j = 0; j < n; j++) {
            if (all[j].t == rmlog[i].t)
                ev = &all[j];
            if (all[j].cached && (min == NULL || all[j].expiry < min->expiry))
                min = &all[j];
        }
        if (ev == NULL || !ev->cached || ev != min || rmlog[i].resumable != 0)
            *model_ok = 0;
        if (ev == e)
            *self_evicted = 1;
        if (ev != NULL) {
            ev->cached = 0;
            ev->evicted++;
        }
    }
    int cached = 0;
    for (j = 0; j < n; j++)
        cached += all[j].cached;
    if (SSL_CTX_sess_number(ctx) != cached)
        *model_ok = 0;
    return after - before;
}

static void test_cache_size(void)
{
    SECTION("cache size: defaults and controls");
    SSL_CTX *ctx = new_ctx();
    CHECK(SSL_CTX_sess_get_cache_size(ctx) == 20480, "cache size: the default is 20480 (SSL_CTX_sess_get_cache_size)");
    CHECK(SSL_CTX_sess_set_cache_size(ctx, 4) == 20480, "SSL_CTX_sess_set_cache_size returns the previous size");
    CHECK(SSL_CTX_sess_get_cache_size(ctx) == 4, "SSL_CTX_sess_get_cache_size returns the size set");
    CHECK(SSL_CTX_sess_set_cache_size(ctx, -1) == 0 && SSL_CTX_sess_get_cache_size(ctx) == 4,
          "SSL_CTX_sess_set_cache_size: a negative size is refused (returns 0, size unchanged), as libssl");

    SECTION("cache size: eviction of the session that expires first");
    /* Expiries chosen so that insertion order and expiry order differ and
     * no new session is ever the earliest-expiring one. */
    static const long exp_[] = {5000, 2000, 8000, 3000, 4000, 6000, 9000};
    static const char *names[] = {"A", "B", "C", "D", "E", "F", "G"};
    enum { N = 7 };
    entry_t all[N];
    int i, model_ok = 1, self_evicted = 0, evictions = 0, filled_evictions = 0;
    long filled_number = 0;
    memset(all, 0, sizeof all);
    for (i = 0; i < N; i++) {
        all[i].s = mk_session(names[i], 0x61, i, VER, T0, exp_[i]);
        all[i].t = trk_of(all[i].s);
        all[i].expiry = T0 + exp_[i];
    }
    rm_reset();
    long full0 = SSL_CTX_sess_cache_full(ctx);
    for (i = 0; i < 4; i++) {
        filled_evictions += add_and_model(ctx, all, N, &all[i], &model_ok, &self_evicted);
        CHECK(SSL_CTX_sess_number(ctx) <= 4, "cache size 4: never more than 4 sessions (after adding %s)", names[i]);
    }
    filled_number = SSL_CTX_sess_number(ctx);
    evictions = filled_evictions;
    CHECK_PAGES(filled_number == 4 && filled_evictions == 0,
                "cache size N=4: the cache holds up to N sessions (4 added, 4 cached, none evicted; got %ld cached)",
                filled_number);
    for (i = 4; i < 6; i++) {
        evictions += add_and_model(ctx, all, N, &all[i], &model_ok, &self_evicted);
        CHECK(SSL_CTX_sess_number(ctx) <= 4, "cache size 4: never more than 4 sessions (after adding %s)", names[i]);
    }
    CHECK_PAGES(SSL_CTX_sess_number(ctx) == 4, "cache size N=4: a full cache stays at N (got %ld)", SSL_CTX_sess_number(ctx));
    CHECK(rm_count() >= 1 && rmlog[0].t == all[1].t,
          "cache size: the first session evicted is B, the one that expires first (not A, the oldest added)");
    CHECK(model_ok, "cache size: every eviction took the earliest-expiring cached session, reported it non-resumable");
    CHECK(!self_evicted, "cache size: adding never evicts the session being added");
    CHECK(SSL_CTX_sess_cache_full(ctx) - full0 == evictions && evictions == rm_count(),
          "SSL_CTX_sess_cache_full counts each eviction (%d), each reported to the remove callback", evictions);
    CHECK(evictions > 0, "cache size: adding beyond the size evicts");
    for (i = 0; i < 6; i++)
        SSL_SESSION_free(all[i].s);
    int freed_ok = 1;
    for (i = 0; i < 6; i++)
        if (frees(all[i].t) != (all[i].cached ? 0 : 1) || all[i].evicted > 1)
            freed_ok = 0;
    CHECK(freed_ok, "cache size: an evicted session's cache reference is released once, the cached ones kept");

    SECTION("cache size: lowering the size");
    long number = SSL_CTX_sess_number(ctx);
    int events = rm_count();
    SSL_CTX_sess_set_cache_size(ctx, 2);
    CHECK(SSL_CTX_sess_number(ctx) == number && rm_count() == events,
          "cache size: lowering the size evicts nothing until the next add");
    evictions = add_and_model(ctx, all, N, &all[6], &model_ok, &self_evicted);
    SSL_SESSION_free(all[6].s);
    CHECK(model_ok && !self_evicted && evictions >= 1,
          "cache size: the next add evicts the earliest-expiring sessions down to the new size");
    CHECK_PAGES(SSL_CTX_sess_number(ctx) == 2, "cache size N=2: holds 2 after the next add (got %ld)", SSL_CTX_sess_number(ctx));
    rm_reset();
    SSL_CTX_free(ctx);
    freed_ok = 1;
    for (i = 0; i < N; i++)
        if (frees(all[i].t) != 1)
            freed_ok = 0;
    CHECK(freed_ok, "cache size: every session freed exactly once in the end");

    SECTION("cache size 0: unbounded");
    ctx = new_ctx();
    SSL_CTX_sess_set_cache_size(ctx, 0);
    rm_reset();
    for (i = 0; i < 100; i++) {
        SSL_SESSION *s = mk("unbounded", 0x62, i);
        SSL_CTX_add_session(ctx, s);
        SSL_SESSION_free(s);
    }
    CHECK(SSL_CTX_sess_number(ctx) == 100 && SSL_CTX_sess_cache_full(ctx) == 0 && rm_count() == 0,
          "cache size 0 is unbounded: 100 sessions cached, none evicted");
    SSL_CTX_free(ctx);
    CHECK(rm_count() == 100, "SSL_CTX_free: the remove callback is called for each of the 100 sessions");
}

/* ------------------------------------------------------------------------ */
/* SSL_has_matching_session_id, SSL_CTX_sess_number, contexts               */

static void test_matching_and_contexts(void)
{
    SECTION("SSL_has_matching_session_id");
    SSL_CTX *ctx = new_ctx();
    SSL *ssl = SSL_new(ctx);
    SSL_SESSION *s = mk("match", 0x71, 1);
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    unsigned char buf[SSL_MAX_SSL_SESSION_ID_LENGTH + 1];
    memcpy(buf, id, len);
    buf[len] = 0x71;
    CHECK(SSL_has_matching_session_id(ssl, buf, len) == 0, "SSL_has_matching_session_id: false before the session is cached");
    SSL_CTX_add_session(ctx, s);
    push_sentinel();
    CHECK(SSL_has_matching_session_id(ssl, buf, len) == 1,
          "SSL_has_matching_session_id: true for a cached id (same protocol version)");
    CHECK(only_sentinel(), "SSL_has_matching_session_id: leaves the error queue untouched");
    buf[5] ^= 0xff;
    CHECK(SSL_has_matching_session_id(ssl, buf, len) == 0, "SSL_has_matching_session_id: false for an absent id");
    buf[5] ^= 0xff;
    CHECK(SSL_has_matching_session_id(ssl, buf, len - 1) == 0, "SSL_has_matching_session_id: false for a prefix of a cached id");
    CHECK(SSL_has_matching_session_id(ssl, buf, len + 1) == 0,
          "SSL_has_matching_session_id: false for an id longer than 32 bytes");
    SSL_SESSION *o = mk_session("other-version", 0x72, 1, VER == TLS1_2_VERSION ? TLS1_1_VERSION : TLS1_2_VERSION,
                                (long)time(NULL), 1000);
    SSL_CTX_add_session(ctx, o);
    CHECK(has_id(ctx, o) == 0,
          "SSL_has_matching_session_id: false for an id cached under another protocol version");
    CHECK(SSL_CTX_sess_number(ctx) == 2, "SSL_CTX_sess_number: counts the cached sessions (2)");
    SSL_SESSION *same_id_other_version = mk_session("v2", 0x71, 1, VER == TLS1_2_VERSION ? TLS1_1_VERSION : TLS1_2_VERSION,
                                                    (long)time(NULL), 1000);
    CHECK(SSL_CTX_add_session(ctx, same_id_other_version) == 1 && SSL_CTX_sess_number(ctx) == 3,
          "SSL_CTX_add_session: the same id under another protocol version is another session");
    SSL_SESSION_free(same_id_other_version);
    SSL_SESSION_free(o);
    SSL_SESSION_free(s);
    SSL_free(ssl);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(rm_count() == 3, "SSL_CTX_free: three sessions reported");

    SECTION("SSL_CTX_free");
    ctx = new_ctx();
    trk_t *t[5];
    int i, ok = 1;
    for (i = 0; i < 5; i++) {
        SSL_SESSION *x = mk("ctx-free", 0x73, i);
        t[i] = trk_of(x);
        SSL_CTX_add_session(ctx, x);
        SSL_SESSION_free(x);
    }
    rm_reset();
    SSL_CTX_free(ctx);
    for (i = 0; i < 5; i++)
        if (frees(t[i]) != 1)
            ok = 0;
    CHECK(ok, "SSL_CTX_free releases every reference the cache holds (5 sessions freed exactly once)");
    ok = rm_count() == 5;
    for (i = 0; ok && i < 5; i++)
        if (rm_calls_for(t[i], NULL) != 1)
            ok = 0;
    CHECK(ok, "SSL_CTX_free calls the remove callback once per cached session, as libssl's SSL_CTX_free");

    SECTION("two contexts kept apart");
    SSL_CTX *a = new_ctx(), *b = new_ctx();
    /* One SSL_SESSION object per SSL_CTX, as SSL_set_session(3)'s NOTES ask. */
    SSL_SESSION *sa = mk("ctx-a", 0x74, 1), *sb = mk("ctx-b", 0x74, 1);
    trk_t *ta = trk_of(sa), *tb = trk_of(sb);
    CHECK(SSL_CTX_add_session(a, sa) == 1 && SSL_CTX_add_session(b, sb) == 1,
          "two contexts: the same id is added to each (1 and 1)");
    CHECK(SSL_CTX_sess_number(a) == 1 && SSL_CTX_sess_number(b) == 1, "two contexts: each counts its own session");
    rm_reset();
    CHECK(SSL_CTX_remove_session(a, sa) == 1, "two contexts: removing from the first returns 1");
    CHECK(has_id(a, sb) == 0 && has_id(b, sb) == 1 && SSL_CTX_sess_number(b) == 1,
          "two contexts: removing from one leaves the other's session cached");
    CHECK(rm_count() == 1 && rmlog[0].ctx == a,
          "two contexts (one SSL_SESSION object per SSL_CTX, as SSL_set_session(3)'s NOTES ask): only the first "
          "context's remove callback saw the removal");
    SSL_SESSION_free(sa);
    SSL_SESSION_free(sb);
    CHECK(frees(ta) == 1 && frees(tb) == 0, "two contexts: the second context still holds its reference");
    SSL_CTX_flush_sessions(a, 0);
    CHECK(SSL_CTX_sess_number(b) == 1, "two contexts: flushing one leaves the other alone");
    SSL_CTX_free(a);
    CHECK(frees(tb) == 0 && SSL_CTX_sess_number(b) == 1, "two contexts: freeing one leaves the other alone");
    SSL_CTX_free(b);
    CHECK(frees(tb) == 1, "two contexts: the second context released its session when freed");
}

/* ------------------------------------------------------------------------ */
/* A remove callback that calls back into the cache                         */

/*
 * README: "No lock of libsslsess is held while an application callback
 * runs": a remove callback may call SSL_CTX_add_session,
 * SSL_CTX_remove_session and SSL_CTX_sess_number on its own context while
 * a remove, an eviction, a flush or SSL_CTX_free reports a session. libssl
 * 3.0 calls it after unlocking only in SSL_CTX_remove_session; during
 * eviction, flush and SSL_CTX_free it holds the context's lock and
 * re-entering deadlocks, so those cases run under libsslsess only.
 *
 * The first top-level call of reenter_cb adds re.add, removes re.remove and
 * notes SSL_CTX_sess_number around both; the calls those cause (nested
 * evictions and removes) are only logged.
 */
typedef struct {
    SSL_CTX *ctx;        /* the context whose callback re-enters */
    SSL_SESSION *add;    /* added from inside the first call */
    SSL_SESSION *remove; /* removed from inside the first call */
    int armed;           /* re-enter at the next top-level call */
    int depth;           /* 1 inside the re-entering calls */
    int entered;         /* times the re-entering calls ran */
    trk_t *first;        /* the session whose report re-entered */
    long number_before, number_between, number_after;
    int add_ret, remove_ret;
} reenter_t;

static reenter_t re;

static void reenter_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    rm_cb(ctx, s);
    if (ctx != re.ctx || !re.armed || re.depth > 0)
        return;
    re.armed = 0;
    re.depth++;
    re.first = trk_of(s);
    re.number_before = SSL_CTX_sess_number(ctx);
    re.add_ret = SSL_CTX_add_session(ctx, re.add);
    re.number_between = SSL_CTX_sess_number(ctx);
    re.remove_ret = SSL_CTX_remove_session(ctx, re.remove);
    re.number_after = SSL_CTX_sess_number(ctx);
    re.entered++;
    re.depth--;
}

/* A context whose remove callback will re-enter once, as described above. */
static SSL_CTX *reenter_ctx(SSL_SESSION *add, SSL_SESSION *remove)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        fprintf(stderr, "conformance: SSL_CTX_new failed\n");
        abort();
    }
    SSL_CTX_sess_set_remove_cb(ctx, reenter_cb);
    memset(&re, 0, sizeof re);
    re.ctx = ctx;
    re.add = add;
    re.remove = remove;
    re.armed = 1;
    return ctx;
}

/* A deadlock fails the suite with a line that says so, not a timeout. */
static void on_deadlock(int sig)
{
    static const char msg[] = "FAILED  remove callback re-entering the cache: no progress in 60 s (deadlock?)\n";
    (void)sig;
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0)
        _exit(3);
    _exit(3);
}

static void test_reentrant_callbacks(void)
{
    int i;
    signal(SIGALRM, on_deadlock);
    alarm(60);

    SECTION("remove callback re-entering the cache: during SSL_CTX_remove_session");
    SSL_SESSION *a = mk("re-rm-a", 0xc1, 1), *b = mk("re-rm-b", 0xc1, 2), *x = mk("re-rm-x", 0xc1, 3);
    trk_t *ta = trk_of(a), *tb = trk_of(b), *tx = trk_of(x);
    SSL_CTX *ctx = reenter_ctx(x, b);
    SSL_CTX_add_session(ctx, a);
    SSL_CTX_add_session(ctx, b);
    rm_reset();
    CHECK(SSL_CTX_remove_session(ctx, a) == 1 && re.entered == 1 && re.first == ta,
          "re-entrant remove: SSL_CTX_remove_session returns 1; its remove callback called back into the cache");
    CHECK(re.number_before == 1,
          "re-entrant remove: inside the callback the removed session no longer counts (SSL_CTX_sess_number 1, got %ld)",
          re.number_before);
    CHECK(re.add_ret == 1 && re.number_between == 2,
          "re-entrant remove: SSL_CTX_add_session from the callback returns 1 and counts (2, got %d / %ld)", re.add_ret,
          re.number_between);
    CHECK(re.remove_ret == 1 && re.number_after == 1,
          "re-entrant remove: SSL_CTX_remove_session from the callback returns 1 and counts (1, got %d / %ld)",
          re.remove_ret, re.number_after);
    CHECK(SSL_CTX_sess_number(ctx) == 1 && has_id(ctx, x) == 1 && has_id(ctx, a) == 0 && has_id(ctx, b) == 0,
          "re-entrant remove: afterwards exactly the session added from the callback is cached");
    CHECK(rm_count() == 2 && rm_calls_for(ta, ctx) == 1 && rm_calls_for(tb, ctx) == 1,
          "re-entrant remove: the outer and the nested remove each reported their session once");
    SSL_SESSION_free(a);
    SSL_SESSION_free(b);
    SSL_SESSION_free(x);
    CHECK(frees(ta) == 1 && frees(tb) == 1 && frees(tx) == 0,
          "re-entrant remove: both removed sessions freed once, the one added from the callback still cached");
    SSL_CTX_free(ctx);
    CHECK(frees(tx) == 1, "re-entrant remove: the session added from the callback is freed once with its context");

    SECTION("remove callback re-entering the cache: during eviction, flush and SSL_CTX_free");
    if (!under_sslsess()) {
        static const char *const cases[] = {"eviction", "SSL_CTX_flush_sessions", "SSL_CTX_free"};
        for (i = 0; i < 3; i++)
            printf("skip    re-entrant remove callback during %s: libssl 3.0 runs the callback under the "
                   "context's lock, so re-entering deadlocks; libsslsess only, not counted\n",
                   cases[i]);
        alarm(0);
        return;
    }

    /* Eviction: size 3 holding A, B, C; adding D evicts A; its callback adds
     * X (which evicts B in turn) and removes C. */
    SSL_SESSION *ev[5];
    trk_t *tev[5];
    static const char *const evn[] = {"re-ev-A", "re-ev-B", "re-ev-C", "re-ev-D", "re-ev-X"};
    for (i = 0; i < 5; i++) {
        ev[i] = mk_session(evn[i], 0xc2, i, VER, T0, 100 * (i + 1));
        tev[i] = trk_of(ev[i]);
    }
    ctx = reenter_ctx(ev[4], ev[2]);
    SSL_CTX_sess_set_cache_size(ctx, 3);
    for (i = 0; i < 3; i++)
        SSL_CTX_add_session(ctx, ev[i]);
    rm_reset();
    long full0 = SSL_CTX_sess_cache_full(ctx);
    CHECK(SSL_CTX_add_session(ctx, ev[3]) == 1 && re.entered == 1 && re.first == tev[0],
          "re-entrant eviction: adding D to a full cache returns 1; the callback for A (evicted) called back into the cache");
    CHECK(re.number_before == 3,
          "re-entrant eviction: inside the callback the evicted session no longer counts (3, got %ld)", re.number_before);
    CHECK(re.add_ret == 1 && re.number_between == 3,
          "re-entrant eviction: an add from the callback returns 1 and evicts in turn, the cache stays at 3 (got %d / %ld)",
          re.add_ret, re.number_between);
    CHECK(re.remove_ret == 1 && re.number_after == 2,
          "re-entrant eviction: a remove from the callback returns 1 and counts (2, got %d / %ld)", re.remove_ret,
          re.number_after);
    CHECK(SSL_CTX_sess_number(ctx) == 2 && has_id(ctx, ev[3]) == 1 && has_id(ctx, ev[4]) == 1 && has_id(ctx, ev[0]) == 0
              && has_id(ctx, ev[1]) == 0 && has_id(ctx, ev[2]) == 0,
          "re-entrant eviction: afterwards D and X are cached, A, B and C are not");
    CHECK(SSL_CTX_sess_cache_full(ctx) - full0 == 2,
          "re-entrant eviction: SSL_CTX_sess_cache_full counts both evictions (A, then B by the nested add)");
    CHECK(rm_count() == 3 && rmlog[0].t == tev[0] && rmlog[1].t == tev[1] && rmlog[2].t == tev[2]
              && !rmlog[0].resumable && !rmlog[1].resumable && !rmlog[2].resumable,
          "re-entrant eviction: the callback saw A, then B (nested eviction), then C (nested remove), each non-resumable");
    for (i = 0; i < 5; i++)
        SSL_SESSION_free(ev[i]);
    CHECK(frees(tev[0]) == 1 && frees(tev[1]) == 1 && frees(tev[2]) == 1 && frees(tev[3]) == 0 && frees(tev[4]) == 0,
          "re-entrant eviction: A, B, C freed once; D and X held by the cache");
    SSL_CTX_free(ctx);
    CHECK(frees(tev[3]) == 1 && frees(tev[4]) == 1, "re-entrant eviction: D and X freed once with their context");

    /* Flush: F1, F2 expired, L1, L2 live; the callback for F1 adds X and
     * removes L2. */
    SSL_SESSION *f1 = mk_session("re-fl-F1", 0xc3, 1, VER, T0, 100), *f2 = mk_session("re-fl-F2", 0xc3, 2, VER, T0, 200);
    SSL_SESSION *l1 = mk("re-fl-L1", 0xc3, 3), *l2 = mk("re-fl-L2", 0xc3, 4), *fx = mk("re-fl-X", 0xc3, 5);
    trk_t *tf1 = trk_of(f1), *tf2 = trk_of(f2), *tl1 = trk_of(l1), *tl2 = trk_of(l2), *tfx = trk_of(fx);
    ctx = reenter_ctx(fx, l2);
    SSL_CTX_add_session(ctx, f1);
    SSL_CTX_add_session(ctx, f2);
    SSL_CTX_add_session(ctx, l1);
    SSL_CTX_add_session(ctx, l2);
    rm_reset();
    SSL_CTX_flush_sessions(ctx, T0 + 250);
    CHECK(re.entered == 1 && re.first == tf1,
          "re-entrant flush: the callback for F1 (expires first) called back into the cache");
    CHECK(re.number_before >= 2 && re.number_before <= 3,
          "re-entrant flush: inside the callback F1 no longer counts (2 or 3, got %ld)", re.number_before);
    CHECK(re.add_ret == 1 && re.number_between == re.number_before + 1,
          "re-entrant flush: an add from the callback returns 1 and counts one more");
    CHECK(re.remove_ret == 1 && re.number_after == re.number_between - 1,
          "re-entrant flush: a remove from the callback returns 1 and counts one less");
    CHECK(SSL_CTX_sess_number(ctx) == 2 && has_id(ctx, l1) == 1 && has_id(ctx, fx) == 1 && has_id(ctx, f1) == 0
              && has_id(ctx, f2) == 0 && has_id(ctx, l2) == 0,
          "re-entrant flush: afterwards L1 and X are cached, F1, F2 and L2 are not");
    CHECK(rm_count() == 3 && rm_calls_for(tf1, ctx) == 1 && rm_calls_for(tf2, ctx) == 1 && rm_calls_for(tl2, ctx) == 1
              && rmlog[0].t == tf1,
          "re-entrant flush: F1, F2 and L2 each reported once, F1 first");
    SSL_SESSION_free(f1);
    SSL_SESSION_free(f2);
    SSL_SESSION_free(l1);
    SSL_SESSION_free(l2);
    SSL_SESSION_free(fx);
    CHECK(frees(tf1) == 1 && frees(tf2) == 1 && frees(tl2) == 1 && frees(tl1) == 0 && frees(tfx) == 0,
          "re-entrant flush: F1, F2, L2 freed once; L1 and X held by the cache");
    SSL_CTX_free(ctx);
    CHECK(frees(tl1) == 1 && frees(tfx) == 1, "re-entrant flush: L1 and X freed once with their context");

    /* SSL_CTX_free: G1, G2 cached; the first callback adds X and removes G2.
     * The application keeps its references until the context is gone. */
    SSL_SESSION *g1 = mk("re-free-G1", 0xc4, 1), *g2 = mk("re-free-G2", 0xc4, 2), *gx = mk("re-free-X", 0xc4, 3);
    trk_t *tg1 = trk_of(g1), *tg2 = trk_of(g2), *tgx = trk_of(gx);
    ctx = reenter_ctx(gx, g2);
    SSL_CTX_add_session(ctx, g1);
    SSL_CTX_add_session(ctx, g2);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(re.entered == 1, "re-entrant SSL_CTX_free: the callback called back into the cache of the context being freed");
    CHECK(re.number_before <= 1 && re.add_ret == 1 && re.number_between == re.number_before + 1
              && re.number_after == re.number_between - re.remove_ret,
          "re-entrant SSL_CTX_free: counts follow the calls (%ld, add %d -> %ld, remove %d -> %ld)", re.number_before,
          re.add_ret, re.number_between, re.remove_ret, re.number_after);
    CHECK(rm_calls_for(tg1, ctx) == 1 && rm_calls_for(tg2, ctx) == (re.remove_ret == 1 ? 1 : 2),
          "re-entrant SSL_CTX_free: each session reported once by SSL_CTX_free, G2 once more by the nested remove if "
          "it had already left the cache");
    CHECK(frees(tg1) == 0 && frees(tg2) == 0 && frees(tgx) == 0,
          "re-entrant SSL_CTX_free: the application's references are intact");
    SSL_SESSION_free(g1);
    SSL_SESSION_free(g2);
    SSL_SESSION_free(gx);
    CHECK(frees(tg1) == 1 && frees(tg2) == 1 && frees(tgx) == 1,
          "re-entrant SSL_CTX_free: every session, the one added while the context died included, freed exactly once");
    alarm(0);
}

/* ------------------------------------------------------------------------ */
/* SSL_SESSION_set1_id on a cached session                                  */

static void test_set1_id(void)
{
    SECTION("SSL_SESSION_set1_id on a cached session");
    SSL_CTX *ctx = new_ctx();
    SSL *ssl = SSL_new(ctx);
    SSL_SESSION *s1 = mk("set1id-1", 0xd1, 1), *s2 = mk("set1id-2", 0xd1, 2);
    trk_t *t1 = trk_of(s1), *t2 = trk_of(s2);
    unsigned char old1[SSL_MAX_SSL_SESSION_ID_LENGTH], new1[SSL_MAX_SSL_SESSION_ID_LENGTH],
        new2[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s1, &len);
    if (len != sizeof old1) {
        CHECK(0, "set1_id: unexpected id length %u", len);
        return;
    }
    memcpy(old1, id, len);
    memset(new1, 0xd2, sizeof new1);
    memset(new2, 0xd3, sizeof new2);
    SSL_CTX_add_session(ctx, s1);
    SSL_CTX_add_session(ctx, s2);
    push_sentinel();
    CHECK(SSL_SESSION_set1_id(s1, new1, sizeof new1) == 1 && SSL_SESSION_set1_id(s2, new2, sizeof new2) == 1,
          "SSL_SESSION_set1_id on two cached sessions returns 1 (no crash)");
    CHECK(only_sentinel(), "SSL_SESSION_set1_id on a cached session queues no error");
    CHECK(SSL_CTX_sess_number(ctx) == 2, "SSL_SESSION_set1_id: the cache still counts both sessions");
    CHECK(SSL_has_matching_session_id(ssl, new1, sizeof new1) == 0,
          "SSL_SESSION_set1_id: the new id is not found in the cache (the entry is not re-keyed)");
    CHECK(SSL_has_matching_session_id(ssl, old1, sizeof old1) == 0,
          "SSL_SESSION_set1_id: the old id is not found either (libssl 3.0's stale hash entry matches nothing)");
    rm_reset();
    CHECK(SSL_CTX_remove_session(ctx, s1) == 0 && SSL_CTX_sess_number(ctx) == 2,
          "SSL_CTX_remove_session with the re-keyed object looks up its new id: 0, the entry stays");
    CHECK(rm_count() == 1 && rmlog[0].s == s1 && SSL_SESSION_is_resumable(s1) == 0,
          "SSL_CTX_remove_session with the re-keyed object: still reported and made non-resumable, as libssl");
    /* Another object carrying s1's old id (same tag and number). */
    SSL_SESSION *o1 = mk("set1id-old-id", 0xd1, 1);
    int r = SSL_CTX_remove_session(ctx, o1);
    CHECK_PAGES(r == 0 && SSL_CTX_sess_number(ctx) == 2,
                "README: a re-keyed entry matches neither id, as in libssl: an object with the old id does not "
                "remove it (got %d, %ld left)",
                r, SSL_CTX_sess_number(ctx));
    SSL_SESSION_free(o1);
    SSL_SESSION_free(s1);
    CHECK_PAGES(frees(t1) == 0, "SSL_SESSION_set1_id: the cache still holds the re-keyed session");
    CHECK(SSL_has_matching_session_id(ssl, old1, sizeof old1) == 0 && SSL_has_matching_session_id(ssl, new1, sizeof new1) == 0,
          "SSL_SESSION_set1_id: neither id matches");
    SSL_SESSION_free(s2);
    CHECK(frees(t2) == 0, "SSL_SESSION_set1_id: the other re-keyed session is still held by the cache");
    SSL_free(ssl);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(frees(t1) == 1 && frees(t2) == 1, "SSL_SESSION_set1_id: after SSL_CTX_free both sessions were freed exactly once");
    CHECK(rm_calls_for(t1, NULL) == 1, "SSL_SESSION_set1_id: SSL_CTX_free reports each re-keyed session it still held, once");
    CHECK(rm_calls_for(t2, NULL) == 1, "SSL_SESSION_set1_id: SSL_CTX_free reports the re-keyed session it still held, once");
}

/* ------------------------------------------------------------------------ */
/* One SSL_SESSION cached by two contexts                                   */

static void test_shared_session(void)
{
    SECTION("one SSL_SESSION object cached by two contexts");
    if (!under_sslsess()) {
        printf("skip    one session in two contexts' caches: libssl 3.0 corrupts the first context's list "
               "(README, Compatibility); libsslsess only, not counted\n");
        return;
    }
    SSL_CTX *a = new_ctx(), *b = new_ctx();
    SSL_SESSION *s = mk("shared-1", 0xe1, 1), *u = mk("shared-2", 0xe1, 2), *w = mk("shared-3", 0xe1, 3);
    trk_t *ts = trk_of(s), *tu = trk_of(u), *tw = trk_of(w);
    rm_reset();
    CHECK(SSL_CTX_add_session(a, s) == 1 && SSL_CTX_add_session(b, s) == 1,
          "shared session: adding one object to two contexts returns 1 and 1");
    CHECK(SSL_CTX_add_session(a, s) == 0 && SSL_CTX_add_session(b, s) == 0,
          "shared session: adding it again to each is a duplicate (0 and 0)");
    SSL_SESSION_free(s);
    CHECK(frees(ts) == 0 && SSL_CTX_sess_number(a) == 1 && SSL_CTX_sess_number(b) == 1,
          "shared session: each context counts it, and it is alive after the application's free");
    CHECK(SSL_CTX_remove_session(a, s) == 1, "shared session: removing it from the first context returns 1");
    CHECK(has_id(a, s) == 0 && SSL_CTX_sess_number(a) == 0 && has_id(b, s) == 1 && SSL_CTX_sess_number(b) == 1,
          "shared session: removing it from one context leaves it cached in the other");
    CHECK(frees(ts) == 0, "shared session: the other context's reference keeps it alive (each cache holds its own)");
    CHECK(rm_count() == 1 && rmlog[0].ctx == a, "shared session: only the first context's remove callback saw the removal");

    /* set_time re-sorts it in both caches. */
    SSL_CTX_add_session(a, u);
    SSL_CTX_add_session(b, u);
    SSL_SESSION_free(u);
    SSL_SESSION_set_time(u, T0); /* expires at T0 + 100000 */
    rm_reset();
    SSL_CTX_flush_sessions(a, T0 + 100001);
    CHECK(rm_count() == 1 && rmlog[0].t == tu && SSL_CTX_sess_number(a) == 0 && has_id(b, u) == 1 && frees(tu) == 0,
          "shared session: SSL_SESSION_set_time re-sorted it in the first cache; flushing that one leaves it in the other");
    SSL_CTX_flush_sessions(b, T0 + 100001);
    CHECK(rm_count() == 2 && rmlog[1].t == tu && rmlog[1].ctx == b && SSL_CTX_sess_number(b) == 1 && frees(tu) == 1,
          "shared session: ... and in the second cache: flushed there too, then freed exactly once");

    /* Freeing the contexts one after the other. */
    SSL_CTX_add_session(a, w);
    SSL_CTX_add_session(b, w);
    SSL_SESSION_free(w);
    rm_reset();
    SSL_CTX_free(a);
    CHECK(frees(tw) == 0 && frees(ts) == 0 && has_id(b, w) == 1,
          "shared session: freeing the first context leaves the sessions the second one holds alive and cached");
    SSL_CTX_free(b);
    CHECK(frees(ts) == 1 && frees(tw) == 1,
          "shared session: freed exactly once after both contexts let go of it");
    CHECK(rm_calls_for(tw, NULL) == 2 && rm_calls_for(ts, NULL) == 1,
          "shared session: each SSL_CTX_free reported the sessions its own cache held");
}

/* ------------------------------------------------------------------------ */
/* SSL_SESSION_set_time / set_timeout and eviction order                    */

static void test_resort_eviction(void)
{
    SECTION("SSL_SESSION_set_time / set_timeout on a cached session: eviction order");
    SSL_CTX *ctx = new_ctx();
    SSL_SESSION *p = mk_session("ev-p", 0x56, 1, VER, T0, 100), *q = mk_session("ev-q", 0x56, 2, VER, T0, 200);
    SSL_SESSION *r = mk_session("ev-r", 0x56, 3, VER, T0, 300), *x = mk_session("ev-x", 0x56, 4, VER, T0, 5000);
    trk_t *tp = trk_of(p), *tq = trk_of(q), *tr = trk_of(r), *tx = trk_of(x);
    SSL_CTX_add_session(ctx, p);
    SSL_CTX_add_session(ctx, q);
    SSL_CTX_add_session(ctx, r);
    SSL_SESSION_set_time(p, T0 + 1000); /* p: T0+1100, now the latest of the three */
    SSL_SESSION_set_timeout(r, 10);     /* r: T0+10, now the earliest */
    SSL_CTX_sess_set_cache_size(ctx, 2);
    rm_reset();
    CHECK(SSL_CTX_add_session(ctx, x) == 1, "eviction after re-sorting: adding x to an over-full cache returns 1");
    CHECK(rm_count() >= 2 && rmlog[0].t == tr,
          "eviction follows SSL_SESSION_set_timeout: r, given the shortest timeout, is evicted first");
    CHECK(rm_count() >= 2 && rmlog[1].t == tq,
          "eviction follows SSL_SESSION_set_time: q goes next, before p, which was given a later time");
    CHECK(rm_calls_for(tx, NULL) == 0, "eviction after re-sorting: the session added is not evicted");
    SSL_SESSION_free(p);
    SSL_SESSION_free(q);
    SSL_SESSION_free(r);
    SSL_SESSION_free(x);
    CHECK(frees(tr) == 1 && frees(tq) == 1, "eviction after re-sorting: r and q freed once");
    SSL_CTX_free(ctx);
    CHECK(frees(tp) == 1 && frees(tx) == 1, "eviction after re-sorting: every session freed exactly once");
}

/* ------------------------------------------------------------------------ */
/* SSL_CTX_flush_sessions without a remove callback                          */

/* SSL_SESSION_set1_id on a session the server has cached: a client that
 * offers the old id must get a full handshake, as with plain libssl (whose
 * stale hash entry matches nothing), not a server that answers with the
 * session under its new id (the client then fails the handshake). */
static void test_rekeyed_session_not_served(void)
{
    SECTION("a cached session re-keyed with SSL_SESSION_set1_id is not served under its old id");
    SSL_CTX *cctx = client_ctx();
    SSL_CTX *sctx = server_ctx(SSL_SESS_CACHE_SERVER);
    SSL_SESSION *server_sess = NULL;
    SSL_SESSION *client_sess = client_session(cctx, sctx, &server_sess);
    CHECK(client_sess != NULL && server_sess != NULL,
          "set1_id handshake: a full handshake leaves a client session and a cached server session");
    if (client_sess != NULL && server_sess != NULL) {
        unsigned char other[SSL_MAX_SSL_SESSION_ID_LENGTH];
        memset(other, 0x5a, sizeof other);
        CHECK(SSL_SESSION_set1_id(server_sess, other, sizeof other) == 1,
              "set1_id handshake: the server's cached session gets another id");
        SSL *c2 = handshake(cctx, sctx, client_sess, 0, NULL);
        CHECK(c2 != NULL && SSL_session_reused(c2) == 0,
              "set1_id handshake: the client offering the old id gets a full handshake, not a failed one");
        SSL_free(c2);
    }
    ERR_clear_error();
    SSL_SESSION_free(client_sess);
    SSL_SESSION_free(server_sess);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

/* An application's SSL_CTX ex_data index registered after libsslsess's
 * (libsslsess registers at the first SSL_CTX_new): its free callback runs
 * after libsslsess's during SSL_CTX_free and may still call into the cache.
 * It must see an empty cache, never freed memory (the valgrind runs of this
 * suite would report an invalid read). */
static int late_free_calls;
static long late_number = -1;
static void late_ex_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)ad, (void)idx, (void)argl, (void)argp;
    if (ptr != NULL) {
        late_free_calls++;
        late_number = SSL_CTX_sess_number((SSL_CTX *)parent);
    }
}

static void test_late_ex_data_free_callback(void)
{
    SECTION("an application's ex_data free callback may call into the cache while the context is freed");
    int idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, late_ex_data_free);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL_SESSION *s = mk("late-free", 0x4c, 1);
    CHECK(idx >= 0 && SSL_CTX_add_session(ctx, s) == 1 && SSL_CTX_set_ex_data(ctx, idx, ctx) == 1,
          "late ex_data: a context with a cached session and the application's ex_data");
    SSL_CTX_free(ctx);
    CHECK(late_free_calls == 1 && late_number == 0,
          "late ex_data: the application's free callback ran and saw an empty cache (%d call, number %ld)",
          late_free_calls, late_number);
    ERR_clear_error();
    SSL_SESSION_free(s);
}

/* README, Compatibility: calls into the cache while the context is being
 * freed, from another SSL_CTX ex_data free callback. SSL_CTX_free flushes
 * the cache, then runs the ex_data free callbacks in index order.
 * libsslsess registers its index at the first SSL_CTX_new, and from its own
 * free callback on the context answers "being freed". So the callback of
 * an index registered after that (a higher index, as here) gets 0 and that
 * error from every call, and the calls change nothing; the callback of an
 * index registered before the first SSL_CTX_new (main registers one first
 * thing) runs before libsslsess's, finds the cache whole, and its calls work
 * as on a live context: what it adds is released with the cache. libssl
 * 3.0 works on the half-freed context either way (what is added there is
 * never freed), so this runs under libsslsess only. */
struct dying_call {
    long ret;        /* the return value (SSL_CTX_sess_number: the count) */
    int error;       /* the call queued an error */
    int being_freed; /* ... from libssl, saying the SSL_CTX is being freed */
};

struct dying_calls {
    int runs;
    SSL_SESSION *add, *remove; /* what the callback adds and removes */
    int flush;                 /* also call SSL_CTX_flush_sessions(ctx, 0) */
    struct dying_call added, number, removed, flushed;
};

static int early_ctx_index = -1; /* registered in main, before any SSL_CTX_new */

/* What the call just made queued; clears the queue. */
static void note_error(struct dying_call *c)
{
    struct popped_error e = pop_error_saying("the SSL_CTX is being freed");
    c->error = e.code != 0;
    c->being_freed = e.ssl_and_says;
    ERR_clear_error();
}

static void dying_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    struct dying_calls *d = ptr;
    SSL_CTX *ctx = parent;
    (void)ad, (void)idx, (void)argl, (void)argp;
    if (d == NULL)
        return;
    d->runs++;
    ERR_clear_error();
    d->added.ret = SSL_CTX_add_session(ctx, d->add);
    note_error(&d->added);
    d->number.ret = SSL_CTX_sess_number(ctx);
    note_error(&d->number);
    d->removed.ret = SSL_CTX_remove_session(ctx, d->remove);
    note_error(&d->removed);
    if (d->flush) {
        SSL_CTX_flush_sessions(ctx, 0);
        note_error(&d->flushed);
    }
}

static void test_calls_while_ctx_freed(void)
{
    SECTION("calls into the cache from ex_data free callbacks while SSL_CTX_free runs");
    if (!under_sslsess()) {
        printf("skip    calls into a context being freed: libssl 3.0 works on the half-freed context (an add "
               "there is never freed); libsslsess only, not counted\n");
        return;
    }
    int late_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, dying_free_cb);
    SSL_CTX *ctx = new_ctx();
    SSL_SESSION *cached = mk("dying-cached", 0x4e, 1);
    SSL_SESSION *early_add = mk("dying-early-add", 0x4e, 2), *early_rm = mk("dying-early-rm", 0x4e, 3);
    SSL_SESSION *late_add = mk("dying-late-add", 0x4e, 4), *late_rm = mk("dying-late-rm", 0x4e, 5);
    trk_t *tcached = trk_of(cached), *tea = trk_of(early_add), *ter = trk_of(early_rm);
    trk_t *tla = trk_of(late_add), *tlr = trk_of(late_rm);
    struct dying_calls early = {.add = early_add, .remove = early_rm};
    struct dying_calls late = {.add = late_add, .remove = late_rm, .flush = 1};
    CHECK(early_ctx_index >= 0 && late_index > early_ctx_index && SSL_CTX_add_session(ctx, cached) == 1
              && SSL_CTX_set_ex_data(ctx, early_ctx_index, &early) == 1
              && SSL_CTX_set_ex_data(ctx, late_index, &late) == 1,
          "dying context: a context with a cached session and two application ex_data indices, registered "
          "before (%d) and after (%d) the first SSL_CTX_new",
          early_ctx_index, late_index);
    SSL_SESSION_free(cached);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(late.runs == 1 && late.added.ret == 0 && late.added.error && late.added.being_freed,
          "README: SSL_CTX_add_session from a later free callback answers 0 with an error (\"the SSL_CTX is being "
          "freed\") (got %ld, error %d, being freed %d)",
          late.added.ret, late.added.error, late.added.being_freed);
    CHECK(late.removed.ret == 0 && late.removed.error && late.removed.being_freed,
          "README: SSL_CTX_remove_session from a later free callback answers 0 with an error (\"the SSL_CTX is "
          "being freed\") (got %ld, error %d, being freed %d)",
          late.removed.ret, late.removed.error, late.removed.being_freed);
    CHECK(late.number.ret == 0 && late.number.error && late.number.being_freed,
          "README: SSL_CTX_sess_number from a later free callback answers 0 with an error (got %ld, error %d, "
          "being freed %d)",
          late.number.ret, late.number.error, late.number.being_freed);
    CHECK(late.flushed.error && late.flushed.being_freed,
          "README: SSL_CTX_flush_sessions from a later free callback queues the same error");
    CHECK(rm_calls_for(tla, NULL) == 0 && rm_calls_for(tlr, NULL) == 0 && SSL_SESSION_is_resumable(late_rm) == 1
              && frees(tla) == 0 && frees(tlr) == 0,
          "dying context: the refused calls changed nothing (no remove callback, the session to remove still "
          "resumable)");
    SSL_SESSION_free(late_add);
    SSL_SESSION_free(late_rm);
    CHECK(frees(tla) == 1 && frees(tlr) == 1,
          "dying context: the refused add took no reference (both sessions freed once by the application's free)");
    CHECK(early.runs == 1 && early.added.ret == 1 && !early.added.error && early.number.ret == 1
              && !early.number.error,
          "README: a free callback that runs before libsslsess's finds the cache whole: SSL_CTX_add_session "
          "returns 1, SSL_CTX_sess_number counts it (got %ld, %ld; errors %d, %d)",
          early.added.ret, early.number.ret, early.added.error, early.number.error);
    CHECK(early.removed.ret == 0 && !early.removed.error && rm_calls_for(ter, NULL) == 1
              && SSL_SESSION_is_resumable(early_rm) == 0,
          "dying context, earlier callback: removing an absent session works as on a live context (0, no error, "
          "reported, non-resumable)");
    CHECK(frees(tcached) == 1 && rm_calls_for(tcached, NULL) == 1,
          "dying context: the session cached before SSL_CTX_free was flushed, reported and freed once");
    SSL_SESSION_free(early_add);
    SSL_SESSION_free(early_rm);
    CHECK(frees(tea) == 1 && frees(ter) == 1,
          "README: what the earlier callback added was released with the cache (freed exactly once)");
    ERR_clear_error();
}

/* libsslsess marks removed and evicted sessions non-resumable through
 * libssl's SSL_CTX_remove_session on marker contexts (README, "How it
 * works"): at most 16, made on first use and never freed. They are
 * SSL_CTXs, so an application's SSL_CTX ex_data callbacks see them made;
 * the remove callback still runs once per removal, with the application's
 * context, on a session already non-resumable. */
static int marker_news, marker_frees;

static void count_ctx_new(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    __atomic_fetch_add(&marker_news, 1, __ATOMIC_RELAXED);
}

static void count_ctx_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent, (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    __atomic_fetch_add(&marker_frees, 1, __ATOMIC_RELAXED);
}

#define MARKER_THREADS 20
#define MARKER_SESSIONS 10

struct marker_job {
    SSL_CTX *ctx;
    int thread;
    int removed;
};

static void *marker_remover(void *arg)
{
    struct marker_job *j = arg;
    for (int i = 0; i < MARKER_SESSIONS; i++) {
        SSL_SESSION *s = mk("marker", 0x6d, j->thread * 100 + i);
        if (SSL_CTX_add_session(j->ctx, s) == 1)
            j->removed += SSL_CTX_remove_session(j->ctx, s);
        SSL_SESSION_free(s);
    }
    return NULL;
}

static void test_marker_contexts(void)
{
    SECTION("removes from many threads: the remove callback, and the contexts an ex_data callback sees");
    int idx = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL_CTX, 0, NULL, count_ctx_new, NULL, count_ctx_free);
    SSL_CTX *ctx = new_ctx();
    rm_reset();
    pthread_t th[MARKER_THREADS];
    struct marker_job jobs[MARKER_THREADS];
    int started = 0, removed = 0;
    for (int i = 0; i < MARKER_THREADS; i++) {
        jobs[i] = (struct marker_job){ctx, i, 0};
        if (pthread_create(&th[i], NULL, marker_remover, &jobs[i]) == 0)
            started++;
        else
            break;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        removed += jobs[i].removed;
    }
    int want = started * MARKER_SESSIONS, unmarked = 0;
    for (int i = 0; i < rm_count() && i < MAX_EVENTS; i++)
        unmarked += rmlog[i].resumable != 0;
    CHECK(idx >= 0 && started == MARKER_THREADS && removed == want,
          "markers: %d threads each added and removed %d sessions (%d removed)", started, MARKER_SESSIONS, removed);
    CHECK(rm_count() == want && rm_calls_for(NULL, ctx) == want && unmarked == 0,
          "markers: the remove callback ran once per removal (%d of %d), always with the application's context, "
          "on a session already non-resumable (%d were not)",
          rm_count(), want, unmarked);
    int extra = __atomic_load_n(&marker_news, __ATOMIC_RELAXED) - 1;
    if (under_sslsess())
        CHECK(extra >= 0 && extra <= 16,
              "README: an application's SSL_CTX ex_data new callback sees at most 16 marker contexts besides its "
              "own (%d)",
              extra);
    else
        CHECK(extra == 0, "markers: plain libssl makes no context but the application's (%d more)", extra);
    rm_reset();
    SSL_CTX_free(ctx);
    CHECK(__atomic_load_n(&marker_frees, __ATOMIC_RELAXED) == 1,
          "markers: SSL_CTX_free runs the ex_data free callback once, for the application's context (markers live on)");
}

/* The server's lookup hands a cached session to libssl, which then
 * "imports" it with SSL_CTX_add_session. Plain libssl found it in its own
 * hash and adds nothing; if another connection consumed the session in
 * between (TLS 1.3 anti-replay removes it), the import must not put it back,
 * or a second connection would resume it too. Drives libsslsess's lookup
 * callback directly (the one libssl's own SSL_CTX_sess_get_get_cb returns),
 * in the order two racing connections can produce. */
static void test_import_after_consumed(void)
{
    SECTION("the server lookup's import cannot bring back a consumed session");
    if (!under_sslsess()) {
        printf("skip    (libsslsess's lookup callback only)\n");
        return;
    }
    typedef SSL_SESSION *(*get_cb_t)(SSL *, const unsigned char *, int, int *);
    get_cb_t (*libssl_get_get_cb)(SSL_CTX *) =
        (get_cb_t (*)(SSL_CTX *))libssl_own_symbol("SSL_CTX_sess_get_get_cb");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *b = SSL_new(ctx);
    get_cb_t lookup = libssl_get_get_cb ? libssl_get_get_cb(ctx) : NULL;
    CHECK(lookup != NULL, "libssl calls a get-session callback installed by libsslsess");
    if (lookup != NULL) {
        unsigned char id[32];
        memset(id, 7, sizeof id);
        SSL_SESSION *s = new_session_with_id(id, sizeof id, SSL_version(b));
        SSL_SESSION_set_timeout(s, 300);
        CHECK(SSL_CTX_add_session(ctx, s) == 1, "import race: session cached");
        int copy = 1;
        SSL_SESSION *served = lookup(b, id, (int)sizeof id, &copy);
        CHECK(served == s && copy == 0, "import race: B's lookup is served the session (reference handed over)");
        CHECK(SSL_CTX_remove_session(ctx, s) == 1, "import race: A consumes it (remove returns 1)");
        CHECK(SSL_CTX_add_session(ctx, served) == 0 && SSL_CTX_sess_number(ctx) == 0,
              "import race: B's import is a no-op, as plain libssl's internal hit (nothing re-added)");
        CHECK(SSL_CTX_remove_session(ctx, served) == 0,
              "import race: B's anti-replay remove returns 0, so B cannot resume it too");
        SSL_SESSION_free(served);
        SSL_SESSION_free(s);
    }
    SSL_free(b);
    SSL_CTX_free(ctx);
}

static void test_flush_without_callback(void)
{
    SECTION("SSL_CTX_flush_sessions on a context without a remove callback");
    enum { M = 200 };
    SSL_CTX *ctx = SSL_CTX_new(TLS_method()); /* no remove callback */
    SSL_SESSION *s[M];
    trk_t *t[M];
    long to[M];
    int i, expected_left = 0;
    if (ctx == NULL) {
        CHECK(0, "flush without a callback: SSL_CTX_new failed");
        return;
    }
    for (i = 0; i < M; i++) {
        to[i] = (long)((i * 37) % M) * 10; /* a permutation of 0, 10, ..., 1990 */
        s[i] = mk_session("nocb", 0x57, i, VER, T0, to[i]);
        t[i] = trk_of(s[i]);
        SSL_CTX_add_session(ctx, s[i]);
        if (to[i] >= 1000)
            expected_left++;
        if (i % 2) /* the cache's reference is the only one for odd i */
            SSL_SESSION_free(s[i]);
    }
    SSL_CTX_flush_sessions(ctx, T0 + 1000);
    CHECK(expected_left == 100 && SSL_CTX_sess_number(ctx) == expected_left,
          "flush without a callback: exactly the sessions expired at t are removed (%ld of %d left, %d expected)",
          SSL_CTX_sess_number(ctx), M, expected_left);
    int freed_ok = 1, kept_ok = 1, marked_ok = 1, lookup_ok = 1;
    for (i = 0; i < M; i++) {
        int expired = to[i] < 1000;
        if (frees(t[i]) != (expired && i % 2 ? 1 : 0)) {
            if (expired)
                freed_ok = 0;
            else
                kept_ok = 0;
        }
        if (i % 2 == 0) {
            if (SSL_SESSION_is_resumable(s[i]) != !expired)
                marked_ok = 0;
            if (has_id(ctx, s[i]) != !expired)
                lookup_ok = 0;
        }
    }
    CHECK(freed_ok, "flush without a callback: the expired sessions the cache alone held are freed exactly once");
    CHECK(kept_ok, "flush without a callback: no session still cached or held by the application is freed");
    CHECK(marked_ok, "flush without a callback: the flushed sessions are made non-resumable, the others are not");
    CHECK(lookup_ok, "flush without a callback: the flushed ids are no longer found, the others are");
    SSL_CTX_flush_sessions(ctx, T0 + 1000);
    CHECK(SSL_CTX_sess_number(ctx) == expected_left, "flush without a callback: flushing again at the same t removes nothing");
    SSL_CTX_flush_sessions(ctx, 0);
    CHECK(SSL_CTX_sess_number(ctx) == 0, "flush without a callback: SSL_CTX_flush_sessions(ctx, 0) removes the rest");
    freed_ok = 1;
    marked_ok = 1;
    for (i = 0; i < M; i++) {
        if (frees(t[i]) != (i % 2 ? 1 : 0))
            freed_ok = 0;
        if (i % 2 == 0 && SSL_SESSION_is_resumable(s[i]) != 0)
            marked_ok = 0;
    }
    CHECK(freed_ok && marked_ok,
          "flush without a callback: after flushing everything, every cache reference was released once and every "
          "session the application holds is non-resumable");
    for (i = 0; i < M; i += 2)
        SSL_SESSION_free(s[i]);
    freed_ok = 1;
    for (i = 0; i < M; i++)
        if (frees(t[i]) != 1)
            freed_ok = 0;
    CHECK(freed_ok, "flush without a callback: every session freed exactly once in the end");
    SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* SSL_CTX_ctrl: other controls still reach libssl                          */

static void test_ctrl(void)
{
    SECTION("SSL_CTX_ctrl: other controls still go to libssl");
    SSL_CTX *ctx = new_ctx();
    CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_SERVER, "session cache mode: the default is SSL_SESS_CACHE_SERVER");
    CHECK(SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_BOTH) == SSL_SESS_CACHE_SERVER,
          "SSL_CTX_set_session_cache_mode returns the previous mode");
    CHECK(SSL_CTX_get_session_cache_mode(ctx) == SSL_SESS_CACHE_BOTH, "SSL_CTX_get_session_cache_mode returns the mode set");
    long t = SSL_CTX_get_timeout(ctx);
    CHECK(t == 7200, "SSL_CTX_get_timeout: the default is 7200 s (TLS_method)");
    CHECK(SSL_CTX_set_timeout(ctx, 123) == t && SSL_CTX_get_timeout(ctx) == 123,
          "SSL_CTX_set_timeout returns the previous timeout and is unaffected");
    CHECK(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) == 1 && SSL_CTX_get_max_proto_version(ctx) == TLS1_2_VERSION,
          "SSL_CTX_set/get_max_proto_version (SSL_CTX_ctrl) reach libssl");
    uint64_t opts = SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    CHECK((opts & SSL_OP_NO_TICKET) && (SSL_CTX_get_options(ctx) & SSL_OP_NO_TICKET), "SSL_CTX_set_options still works");
    CHECK(SSL_CTX_sess_number(ctx) == 0 && SSL_CTX_sess_cache_full(ctx) == 0 && SSL_CTX_sess_hits(ctx) == 0
              && SSL_CTX_sess_misses(ctx) == 0 && SSL_CTX_sess_cb_hits(ctx) == 0 && SSL_CTX_sess_accept(ctx) == 0,
          "statistics of a fresh context are 0");
    SSL_SESSION *s = mk("ctrl", 0x81, 1);
    SSL_CTX_add_session(ctx, s);
    CHECK(SSL_CTX_ctrl(ctx, SSL_CTRL_SESS_NUMBER, 0, NULL) == 1, "SSL_CTX_ctrl(SSL_CTRL_SESS_NUMBER) counts the cache");
    SSL_SESSION_free(s);
    SSL_CTX_free(ctx);
    CHECK(SSL_CTX_get_session_cache_mode(NULL) == 0,
          "SSL_CTX_ctrl with a NULL ctx, a control libssl answers: 0 as libssl (no crash)");
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Errors: NULL arguments                                                    */

/* Checks the queue holds exactly one error from `call`, as the issue asks. */
static void expect_null_error(const char *call, const char *what, int returned_ok)
{
    const char *file = NULL, *func = NULL, *data = NULL;
    int line = 0, flags = 0;
    CHECK(returned_ok, "%s with NULL %s: returns 0 / NULL / nothing, no crash", call, what);
    unsigned long e = ERR_get_error_all(&file, &line, &func, &data, &flags);
    CHECK(e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == ERR_R_PASSED_NULL_PARAMETER,
          "%s with NULL %s: queues ERR_LIB_SSL / ERR_R_PASSED_NULL_PARAMETER (got lib %d, reason %d)", call, what,
          ERR_GET_LIB(e), ERR_GET_REASON(e));
    CHECK(func != NULL && strcmp(func, call) == 0, "%s with NULL %s: the error names the function (got \"%s\")", call,
          what, func ? func : "(none)");
    CHECK(ERR_peek_error() == 0, "%s with NULL %s: exactly one error queued", call, what);
    ERR_clear_error();
}

static SSL_SESSION *(*null_get_cb)(SSL *, const unsigned char *, int, int *);
static SSL_SESSION *dummy_get_cb(SSL *ssl, const unsigned char *id, int len, int *copy)
{
    (void)ssl, (void)id, (void)len, (void)copy;
    return NULL;
}

static void test_null_arguments(void)
{
    SECTION("errors: NULL arguments");
    static const char *const calls[] = {
        "SSL_CTX_add_session (ctx, session)", "SSL_add_session (ctx, session)",
        "SSL_CTX_remove_session (ctx, session)", "SSL_remove_session (ctx, session)",
        "SSL_CTX_flush_sessions (ctx)", "SSL_set_session (ssl)", "SSL_has_matching_session_id (ssl, id)",
        "SSL_CTX_ctrl (ctx, session statistics)", "SSL_CTX_sess_set_get_cb (ctx)", "SSL_CTX_sess_get_get_cb (ctx)",
        "SSL_SESSION_set_time (session)", "SSL_SESSION_set_timeout (session)",
    };
    if (!under_sslsess()) {
        size_t i;
        for (i = 0; i < sizeof calls / sizeof calls[0]; i++)
            printf("skip    NULL %s: libsslsess only (libssl 3.0 crashes or queues nothing); not counted\n", calls[i]);
        return;
    }
    SSL_CTX *ctx = new_ctx();
    SSL *ssl = SSL_new(ctx);
    SSL_SESSION *s = mk("null", 0x91, 1);
    unsigned char id[4] = {1, 2, 3, 4};
    ERR_clear_error();
    rm_reset();

    expect_null_error("SSL_CTX_add_session", "ctx", SSL_CTX_add_session(NULL, s) == 0);
    expect_null_error("SSL_CTX_add_session", "session", SSL_CTX_add_session(ctx, NULL) == 0);
    expect_null_error("SSL_CTX_remove_session", "ctx", SSL_CTX_remove_session(NULL, s) == 0);
    expect_null_error("SSL_CTX_remove_session", "session", SSL_CTX_remove_session(ctx, NULL) == 0);
    if (syn_add != NULL && syn_remove != NULL) {
        expect_null_error("SSL_add_session", "ctx", syn_add(NULL, s) == 0);
        expect_null_error("SSL_add_session", "session", syn_add(ctx, NULL) == 0);
        expect_null_error("SSL_remove_session", "ctx", syn_remove(NULL, s) == 0);
        expect_null_error("SSL_remove_session", "session", syn_remove(ctx, NULL) == 0);
    } else {
        CHECK(0, "SSL_add_session/SSL_remove_session missing under libsslsess");
    }
    SSL_CTX_flush_sessions(NULL, 0);
    expect_null_error("SSL_CTX_flush_sessions", "ctx", 1);
    expect_null_error("SSL_set_session", "ssl", SSL_set_session(NULL, s) == 0);
    CHECK(SSL_set_session(NULL, s) == 0 && ERR_peek_error() != 0,
          "SSL_set_session: 0 = \"The operation failed; check the error stack to find out the reason\" (reason queued)");
    ERR_clear_error();
    expect_null_error("SSL_has_matching_session_id", "ssl", SSL_has_matching_session_id(NULL, id, sizeof id) == 0);
    expect_null_error("SSL_has_matching_session_id", "id", SSL_has_matching_session_id(ssl, NULL, sizeof id) == 0);
    expect_null_error("SSL_CTX_ctrl", "ctx (SSL_CTX_sess_number)", SSL_CTX_sess_number(NULL) == 0);
    expect_null_error("SSL_CTX_ctrl", "ctx (SSL_CTX_sess_cache_full)", SSL_CTX_sess_cache_full(NULL) == 0);
    SSL_CTX_sess_set_get_cb(NULL, dummy_get_cb);
    expect_null_error("SSL_CTX_sess_set_get_cb", "ctx", 1);
    null_get_cb = SSL_CTX_sess_get_get_cb(NULL);
    expect_null_error("SSL_CTX_sess_get_get_cb", "ctx", null_get_cb == NULL);
    expect_null_error("SSL_SESSION_set_time", "session", SSL_SESSION_set_time(NULL, 5) == 0);
    expect_null_error("SSL_SESSION_set_timeout", "session", SSL_SESSION_set_timeout(NULL, 5) == 0);

    CHECK(rm_count() == 0 && SSL_CTX_sess_number(ctx) == 0 && SSL_SESSION_is_resumable(s) == 1,
          "errors: the NULL calls changed nothing (no callback, nothing cached, session still resumable)");
    SSL_CTX_sess_set_get_cb(ctx, dummy_get_cb);
    CHECK(SSL_CTX_sess_get_get_cb(ctx) == dummy_get_cb && ERR_peek_error() == 0,
          "SSL_CTX_sess_get_get_cb returns the application's get-session callback");
    SSL_SESSION_free(s);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
}

/* SSL_CTX_new with a NULL method: libssl's own check, in every run. */
static void test_ctx_new_null(void)
{
    SECTION("errors: SSL_CTX_new / SSL_CTX_new_ex with a NULL method");
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(NULL);
    unsigned long e = ERR_get_error();
    CHECK(c == NULL && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_NULL_SSL_METHOD_PASSED
              && ERR_peek_error() == 0,
          "SSL_CTX_new(NULL): NULL, exactly one error (ERR_LIB_SSL, SSL_R_NULL_SSL_METHOD_PASSED), as libssl");
    ERR_clear_error();
    c = SSL_CTX_new_ex(NULL, NULL, NULL);
    e = ERR_get_error();
    CHECK(c == NULL && ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_NULL_SSL_METHOD_PASSED
              && ERR_peek_error() == 0,
          "SSL_CTX_new_ex(NULL, NULL, NULL): NULL, exactly one error, as libssl");
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Several threads at once                                                   */

#define THREADS 4
#define PER_THREAD 100

typedef struct {
    int n;
    SSL_CTX *a, *b;
    int bad_add, bad_match, bad_remove, bad_absent;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    SSL *sa = SSL_new(w->a), *sb = SSL_new(w->b);
    int i;
    for (i = 0; i < PER_THREAD; i++) {
        SSL_SESSION *x = mk("thread-a", 0xa0 + w->n, i), *y = mk("thread-b", 0xa0 + w->n, i);
        unsigned int len = 0;
        const unsigned char *id = SSL_SESSION_get_id(x, &len);
        if (SSL_CTX_add_session(w->a, x) != 1 || SSL_CTX_add_session(w->b, y) != 1)
            w->bad_add++;
        if (SSL_has_matching_session_id(sa, id, len) != 1 || SSL_has_matching_session_id(sb, id, len) != 1)
            w->bad_match++;
        if (i % 2 == 0) {
            if (SSL_CTX_remove_session(w->a, x) != 1)
                w->bad_remove++;
            if (SSL_has_matching_session_id(sa, id, len) != 0 || SSL_has_matching_session_id(sb, id, len) != 1)
                w->bad_match++;
            if (SSL_CTX_remove_session(w->a, x) != 0)
                w->bad_absent++;
        }
        SSL_SESSION_free(x);
        SSL_SESSION_free(y);
    }
    SSL_free(sa);
    SSL_free(sb);
    return NULL;
}

static void test_threads(void)
{
    SECTION("several threads at once");
    SSL_CTX *a = new_ctx(), *b = new_ctx();
    worker_t w[THREADS];
    pthread_t th[THREADS];
    int i, started = 0, first = trackers_used;
    rm_reset();
    memset(w, 0, sizeof w);
    for (i = 0; i < THREADS; i++) {
        w[i].n = i;
        w[i].a = a;
        w[i].b = b;
        if (pthread_create(&th[i], NULL, worker, &w[i]) == 0)
            started++;
    }
    for (i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    CHECK(started == THREADS, "threads: %d threads started", THREADS);
    int bad_add = 0, bad_match = 0, bad_remove = 0, bad_absent = 0;
    for (i = 0; i < started; i++) {
        bad_add += w[i].bad_add;
        bad_match += w[i].bad_match;
        bad_remove += w[i].bad_remove;
        bad_absent += w[i].bad_absent;
    }
    CHECK(bad_add == 0, "threads: every concurrent add returned 1");
    CHECK(bad_match == 0, "threads: every concurrent SSL_has_matching_session_id answered right");
    CHECK(bad_remove == 0 && bad_absent == 0, "threads: every concurrent remove returned 1, then 0 when absent");
    CHECK(SSL_CTX_sess_number(a) == THREADS * PER_THREAD / 2 && SSL_CTX_sess_number(b) == THREADS * PER_THREAD,
          "threads: exact counts afterwards (%ld and %ld)", SSL_CTX_sess_number(a), SSL_CTX_sess_number(b));
    CHECK(rm_calls_for(NULL, a) == THREADS * PER_THREAD && rm_calls_for(NULL, b) == 0,
          "threads: the remove callback ran once per remove call, on the right context");
    int alive = 0, bad = 0;
    for (i = first; i < trackers_used; i++) {
        if (frees(&trackers[i]) == 0)
            alive++;
        else if (frees(&trackers[i]) != 1)
            bad++;
    }
    CHECK(alive == THREADS * PER_THREAD * 3 / 2 && bad == 0, "threads: exactly the cached sessions are alive (%d)", alive);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    alive = 0, bad = 0;
    for (i = first; i < trackers_used; i++)
        if (frees(&trackers[i]) != 1)
            bad++;
    CHECK(bad == 0, "threads: after SSL_CTX_free every session was freed exactly once");
    CHECK(rm_calls_for(NULL, a) == THREADS * PER_THREAD * 3 / 2 && rm_calls_for(NULL, b) == THREADS * PER_THREAD,
          "threads: SSL_CTX_free reported every remaining session to the remove callback");
}

/* ------------------------------------------------------------------------ */

/* For SSLSESS_LOG=debug: one add and one remove, nothing else. */
static int trace_case(void)
{
    SSL_CTX *ctx = new_ctx();
    SSL_SESSION *s = mk("trace", 0xee, 1);
    int added = SSL_CTX_add_session(ctx, s);
    int removed = SSL_CTX_remove_session(ctx, s);
    SSL_SESSION_free(s);
    SSL_CTX_free(ctx);
    printf("trace-case: add=%d remove=%d\n", added, removed);
    return added == 1 && removed == 1 ? 0 : 1;
}

/* The first session that leaves a cache makes libsslsess learn where
 * libssl keeps the not-resumable flag, on probe sessions whose creation
 * runs the application's SSL_SESSION ex_data "new" callback. This one
 * removes another session meanwhile, the first time from its own thread (a
 * remove inside the first one's learning), the second time from a thread
 * it starts and waits for: neither may wait for that learning (a deadlock)
 * nor fail. Run in a process of its own (learning happens once). */
static SSL_CTX *inner_ctx;
static SSL_SESSION *inner_session[2];
static int inner_removed[2] = {-1, -1};
static int inner_calls;

static void *remove_second_inner(void *arg)
{
    (void)arg;
    inner_removed[1] = SSL_CTX_remove_session(inner_ctx, inner_session[1]);
    return NULL;
}

static void remove_inner_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    if (inner_ctx == NULL)
        return;
    int call = inner_calls++;
    if (call == 0) {
        inner_removed[0] = SSL_CTX_remove_session(inner_ctx, inner_session[0]);
    } else if (call == 1) {
        pthread_t other;
        if (pthread_create(&other, NULL, remove_second_inner, NULL) == 0)
            pthread_join(other, NULL);
    }
}

static int reentrant_learning_case(void)
{
    SSL_CTX *ctx = new_ctx();
    SSL_SESSION *outer = mk("outer", 0xe1, 1);
    SSL_SESSION *inner[2] = {mk("inner", 0xe2, 1), mk("inner", 0xe3, 1)};
    int added = SSL_CTX_add_session(ctx, outer) + SSL_CTX_add_session(ctx, inner[0])
                + SSL_CTX_add_session(ctx, inner[1]);
    if (SSL_SESSION_get_ex_new_index(0, NULL, remove_inner_cb, NULL, NULL) < 0)
        return 2;
    inner_session[0] = inner[0];
    inner_session[1] = inner[1];
    inner_ctx = ctx;
    int outer_removed = SSL_CTX_remove_session(ctx, outer);
    inner_ctx = NULL;
    printf("reentrant-learning: added=%d outer=%d inner=%d,%d resumable=%d,%d,%d reported=%d left=%ld\n",
           added, outer_removed, inner_removed[0], inner_removed[1], SSL_SESSION_is_resumable(outer),
           SSL_SESSION_is_resumable(inner[0]), SSL_SESSION_is_resumable(inner[1]), rm_count(),
           SSL_CTX_sess_number(ctx));
    int ok = added == 3 && outer_removed == 1 && inner_removed[0] == 1 && inner_removed[1] == 1
             && SSL_SESSION_is_resumable(outer) == 0 && SSL_SESSION_is_resumable(inner[0]) == 0
             && SSL_SESSION_is_resumable(inner[1]) == 0 && rm_count() == 3
             && SSL_CTX_sess_number(ctx) == 0;
    SSL_SESSION_free(outer);
    SSL_SESSION_free(inner[0]);
    SSL_SESSION_free(inner[1]);
    SSL_CTX_free(ctx);
    return ok ? 0 : 1;
}

/* The SSL_SESSION ex_data callbacks see every session made and freed,
 * libsslsess's probes included (README, compatibility table: two, made and
 * freed once when the first session leaves a cache, unless
 * SSLSESS_MARK_VIA_LIBSSL=1). Prints what they saw besides the one session
 * this case makes; conformance.sh compares it with each configuration. */
static int probe_news, probe_frees;

static void count_session_new(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                              void *argp)
{
    (void)parent, (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    __atomic_fetch_add(&probe_news, 1, __ATOMIC_RELAXED);
}

static void count_session_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                               void *argp)
{
    (void)parent, (void)ptr, (void)ad, (void)idx, (void)argl, (void)argp;
    __atomic_fetch_add(&probe_frees, 1, __ATOMIC_RELAXED);
}

static int count_probes_case(void)
{
    if (SSL_SESSION_get_ex_new_index(0, NULL, count_session_new, NULL, count_session_free) < 0)
        return 2;
    SSL_CTX *ctx = new_ctx();
    SSL_SESSION *s = mk("probes", 0xe4, 1);
    int added = SSL_CTX_add_session(ctx, s);
    int removed = SSL_CTX_remove_session(ctx, s);
    int resumable = SSL_SESSION_is_resumable(s);
    SSL_SESSION_free(s);
    SSL_CTX_free(ctx);
    int news = __atomic_load_n(&probe_news, __ATOMIC_RELAXED);
    int frees = __atomic_load_n(&probe_frees, __ATOMIC_RELAXED);
    printf("count-probes: add=%d remove=%d resumable=%d made=%d freed=%d\n", added, removed, resumable,
           news - 1, frees - 1);
    return added == 1 && removed == 1 && resumable == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    trk_index = SSL_SESSION_get_ex_new_index(0, NULL, NULL, NULL, trk_free_cb);
    /* Before the first SSL_CTX_new, where libsslsess registers its own. */
    early_ctx_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, dying_free_cb);
    if (trk_index < 0) {
        fprintf(stderr, "conformance: no ex_data index\n");
        return 2;
    }
    {
        SSL_CTX *ctx = SSL_CTX_new(TLS_method());
        SSL *ssl = ctx ? SSL_new(ctx) : NULL;
        VER = ssl ? SSL_version(ssl) : TLS1_3_VERSION;
        SSL_free(ssl);
        SSL_CTX_free(ctx);
    }
    if (argc > 1 && strcmp(argv[1], "--trace-case") == 0)
        return trace_case();
    if (argc > 1 && strcmp(argv[1], "--reentrant-learning") == 0)
        return reentrant_learning_case();
    if (argc > 1 && strcmp(argv[1], "--count-probes") == 0)
        return count_probes_case();
    if (argc > 1 && strcmp(argv[1], "--trace-case-closed-stderr") == 0) {
        /* As a server whose stderr reader is gone: SIGPIPE ignored, every
         * write to stderr fails with EPIPE. */
        int p[2];
        signal(SIGPIPE, SIG_IGN);
        if (pipe(p) != 0 || close(p[0]) != 0 || dup2(p[1], 2) < 0)
            return 2;
        close(p[1]);
        return trace_case();
    }

    printf("# conformance: %s, libssl %s\n",
           under_sslsess() ? "libsslsess in place" : "plain libssl (reference)", OpenSSL_version(OPENSSL_VERSION));
    test_add_session();
    test_remove_session();
    test_synonyms();
    test_set_session();
    test_handshakes();
    test_sessions_table();
    test_rekeyed_session_not_served();
    test_late_ex_data_free_callback();
    test_calls_while_ctx_freed();
    test_flush();
    test_cache_size();
    test_matching_and_contexts();
    test_reentrant_callbacks();
    test_set1_id();
    test_shared_session();
    test_resort_eviction();
    test_import_after_consumed();
    test_flush_without_callback();
    test_ctrl();
    test_null_arguments();
    test_ctx_new_null();
    test_threads();
    test_marker_contexts();

    EVP_PKEY_free(hs_key);
    X509_free(hs_cert);
    return check_summary("conformance");
}
