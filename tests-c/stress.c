/*
 * tests-c/stress.c: threads hammering two shared server contexts, then
 * checking that the books balance (issue 4, item 4).
 *
 *   stress THREADS OPS HANDSHAKES [CACHE_SIZE]
 *
 * Each thread runs OPS operations on two server contexts (A: TLS 1.2
 * session ids; B: TLS 1.3 stateful tickets with anti-replay, so the server
 * removes every session it resumes), both with a small cache so that adds
 * evict: adding and removing its own synthetic sessions (times and timeouts
 * spread so that some are expired), flushing with times that expire some of
 * them, looking ids up with SSL_has_matching_session_id, and HANDSHAKES real
 * resumed (or, when the session is gone, full) handshakes over memory BIOs.
 * A remove callback and an SSL_SESSION ex_data free callback count
 * everything that leaves a cache and every session freed.
 *
 * Afterwards, single-threaded, for each context:
 *   number == adds(1) + sessions the handshakes cached (new-session cb)
 *             - removes(1) - evictions(cache_full) - flushed (remove cb
 *             during flush calls) - sessions resumed over TLS 1.3 (each
 *             such resumption removed its session from the cache);
 *   every explicit remove call reported exactly one remove callback;
 *   the final flush reports `number` distinct sessions, and exactly the
 *   synthetic ones SSL_has_matching_session_id finds;
 * and after SSL_CTX_free of everything, every SSL_SESSION created (counted
 * by an ex_data new callback, which runs for SSL_SESSION_new and for
 * libssl's internal copies) was freed exactly once.
 *
 * Against plain libssl (the reference run) a session is never put in two
 * caches and a cached session's time is never changed: libssl 3.0 keeps one
 * list link per session (two caches corrupt each other) and re-sorts a
 * session under a lock it finds without holding one. libsslsess allows both,
 * so under libsslsess the threads also do those.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include "tls_fixture.h"
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"

#define MAX_THREADS 16
#define POOL 160         /* synthetic sessions per thread */
#define MAX_TRACKED (1 << 20)

static void die(const char *what)
{
    fprintf(stderr, "stress: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

/* --- Every SSL_SESSION created and freed -------------------------------- */

static int sess_idx = -1;
static atomic_long created, freed_total, freed_untracked, tracked_overflow;
static atomic_int *freed_times; /* by serial */

static void sess_new_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                        void *argp)
{
    (void)parent, (void)ptr, (void)argl, (void)argp;
    long serial = atomic_fetch_add(&created, 1);
    if (serial >= MAX_TRACKED) {
        atomic_fetch_add(&tracked_overflow, 1);
        return;
    }
    CRYPTO_set_ex_data(ad, idx, (void *)(uintptr_t)(serial + 1));
}

static int sess_dup_cb(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx,
                       long argl, void *argp)
{
    (void)from, (void)argl, (void)argp;
    /* A copy keeps the serial its own new callback gave it. */
    *from_d = CRYPTO_get_ex_data(to, idx);
    return 1;
}

static void sess_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                         void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    atomic_fetch_add(&freed_total, 1);
    if (ptr == NULL) {
        atomic_fetch_add(&freed_untracked, 1);
        return;
    }
    atomic_fetch_add(&freed_times[(uintptr_t)ptr - 1], 1);
}

/* --- Per-context books -------------------------------------------------- */

enum phase { PH_NONE, PH_ADD, PH_REMOVE, PH_FLUSH, PH_HS, PH_FINAL };
static __thread enum phase phase;

struct books {
    const char *name;
    SSL_CTX *ctx, *client;
    int version;
    long limit;
    /* from return values and counts of the calls */
    atomic_long adds_new, adds_dup, remove_calls, removes_found, flush_calls;
    atomic_long hs_full, hs_resumed, hs_failed;
    /* from callbacks, by what the calling thread was doing */
    atomic_long cb_add, cb_remove, cb_flush, cb_hs, cb_final, cb_other, new_cb;
    /* the final flush */
    SSL_SESSION **final_seen;
    long final_n, final_cap;
};

static struct books books[2];

static struct books *books_of(SSL_CTX *ctx)
{
    for (int i = 0; i < 2; i++)
        if (books[i].ctx == ctx)
            return &books[i];
    return NULL;
}

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    struct books *b = books_of(ctx);
    if (b == NULL) {
        fprintf(stderr, "stress: remove callback for an unknown context\n");
        abort();
    }
    switch (phase) {
    case PH_ADD: atomic_fetch_add(&b->cb_add, 1); break;
    case PH_REMOVE: atomic_fetch_add(&b->cb_remove, 1); break;
    case PH_FLUSH: atomic_fetch_add(&b->cb_flush, 1); break;
    case PH_HS: atomic_fetch_add(&b->cb_hs, 1); break;
    case PH_FINAL:
        atomic_fetch_add(&b->cb_final, 1);
        if (b->final_n < b->final_cap)
            b->final_seen[b->final_n++] = s;
        break;
    default: atomic_fetch_add(&b->cb_other, 1); break;
    }
}

static int new_session_cb(SSL *ssl, SSL_SESSION *s)
{
    (void)s;
    struct books *b = books_of(SSL_get_SSL_CTX(ssl));
    if (b != NULL)
        atomic_fetch_add(&b->new_cb, 1);
    return 0; /* not keeping the extra reference */
}

/* --- Keys, contexts, handshakes ------------------------------------------ */

static EVP_PKEY *server_key;
static X509 *server_cert;

static void make_key_and_cert(void)
{
    if (!make_self_signed("stress", &server_key, &server_cert))
        die("key and certificate");
}

static void setup_books(struct books *b, const char *name, int version, long limit)
{
    b->name = name;
    b->version = version;
    b->limit = limit;
    b->ctx = SSL_CTX_new(TLS_server_method());
    b->client = SSL_CTX_new(TLS_client_method());
    if (b->ctx == NULL || b->client == NULL || SSL_CTX_use_certificate(b->ctx, server_cert) != 1
        || SSL_CTX_use_PrivateKey(b->ctx, server_key) != 1)
        die("contexts");
    SSL_CTX_set_min_proto_version(b->ctx, version);
    SSL_CTX_set_max_proto_version(b->ctx, version);
    SSL_CTX_set_min_proto_version(b->client, version);
    SSL_CTX_set_max_proto_version(b->client, version);
    SSL_CTX_set_options(b->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(b->ctx, 1);
    if (version == TLS1_3_VERSION)
        SSL_CTX_set_max_early_data(b->ctx, 16384); /* anti-replay: single-use tickets */
    SSL_CTX_set_session_id_context(b->ctx, (const unsigned char *)"stress", 6);
    /* No auto-flush: every flush is one the threads asked for. */
    SSL_CTX_set_session_cache_mode(b->ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR);
    SSL_CTX_sess_set_cache_size(b->ctx, limit);
    SSL_CTX_sess_set_remove_cb(b->ctx, remove_cb);
    SSL_CTX_sess_set_new_cb(b->ctx, new_session_cb);
}

/* A handshake on b, resuming *sess if set; *sess becomes the session to
 * resume next. Returns 1 resumed, 0 full, -1 failed. The server SSL is
 * kept in *keep (the previous one freed) for lookups. */
static int handshake(struct books *b, SSL_SESSION **sess, SSL **keep)
{
    int tls13 = b->version == TLS1_3_VERSION;
    SSL *c = SSL_new(b->client), *s = SSL_new(b->ctx);
    if (!tls_pair_join(c, s))
        die("SSL_new / BIO pair");
    int ok = 1;
    if (*sess != NULL && SSL_set_session(c, *sess) != 1)
        ok = 0;
    ok = ok && tls_pair_handshake(c, s);
    if (ok && tls13)
        ok = tls_pair_take_tickets(c);
    int reused = ok ? SSL_session_reused(s) : 0;
    if (ok && (tls13 || !reused)) {
        SSL_SESSION_free(*sess);
        *sess = SSL_get1_session(c);
    }
    if (ok) {
        SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    } else {
        ERR_print_errors_fp(stderr);
    }
    SSL_free(c);
    if (ok && keep != NULL) {
        SSL_free(*keep);
        *keep = s;
    } else {
        SSL_free(s);
    }
    ERR_clear_error();
    return ok ? reused : -1;
}

/* --- Threads ---------------------------------------------------------------- */

struct worker {
    int id, ops, handshakes;
    uint64_t rng;
    SSL_SESSION *pool[POOL];
    int home[POOL];       /* the context (0 = A, 1 = B) a session goes to */
    SSL_SESSION *client[2]; /* session to resume, per context */
    SSL *probe[2];        /* last server SSL, per context, for lookups */
    long lookups, lookup_false_hits;
};

static uint64_t rnd(struct worker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static long now_s(void)
{
    return (long)time(NULL);
}

static void random_id(struct worker *w, unsigned char id[32])
{
    for (int k = 0; k < 32; k += 8) {
        uint64_t r = rnd(w);
        memcpy(id + k, &r, 8);
    }
}

static void make_pool(struct worker *w)
{
    for (int i = 0; i < POOL; i++) {
        unsigned char id[32];
        random_id(w, id);
        w->home[i] = (int)(rnd(w) % 2);
        int version = books[w->home[i]].version;
        if (rnd(w) % 4 == 0) /* a quarter under the other context's version */
            version = books[!w->home[i]].version;
        SSL_SESSION *s = new_session_with_id(id, 32, version);
        if (s == NULL)
            die("cannot make a session");
        /* expiry spread over now - 600 .. now + 600 */
        SSL_SESSION_set_time(s, now_s() - (long)(rnd(w) % 600));
        SSL_SESSION_set_timeout(s, 1 + (long)(rnd(w) % 600));
        w->pool[i] = s;
    }
}

static void one_handshake(struct worker *w, int which)
{
    struct books *b = &books[which];
    /* Now and then the client's session is removed from the server's cache
     * through the client's own copy (same id, another object). */
    if (w->client[which] != NULL && rnd(w) % 8 == 0) {
        phase = PH_REMOVE;
        long r = SSL_CTX_remove_session(b->ctx, w->client[which]);
        phase = PH_NONE;
        atomic_fetch_add(&b->remove_calls, 1);
        atomic_fetch_add(&b->removes_found, r);
    }
    phase = PH_HS;
    int r = handshake(b, &w->client[which], &w->probe[which]);
    phase = PH_NONE;
    if (r < 0)
        atomic_fetch_add(&b->hs_failed, 1);
    else if (r == 0)
        atomic_fetch_add(&b->hs_full, 1);
    else
        atomic_fetch_add(&b->hs_resumed, 1);
}

/* The main thread's probes (see main), made before the workers start. */
static SSL *first_probe[2];

static void one_op(struct worker *w)
{
    int pick = (int)(rnd(w) % POOL);
    SSL_SESSION *s = w->pool[pick];
    int which = w->home[pick];
    /* libsslsess only: a session in both caches. */
    if (under_sslsess() && rnd(w) % 4 == 0)
        which = !which;
    struct books *b = &books[which];
    unsigned r = (unsigned)(rnd(w) % 100);
    if (r < 45) {
        phase = PH_ADD;
        int added = SSL_CTX_add_session(b->ctx, s);
        phase = PH_NONE;
        atomic_fetch_add(added == 1 ? &b->adds_new : &b->adds_dup, 1);
    } else if (r < 70) {
        phase = PH_REMOVE;
        long found = SSL_CTX_remove_session(b->ctx, s);
        phase = PH_NONE;
        atomic_fetch_add(&b->remove_calls, 1);
        atomic_fetch_add(&b->removes_found, found);
        if (found == 1 && !under_sslsess()) {
            /* Not cached anywhere now (it has one home): safe to re-time. */
            SSL_SESSION_set_time(s, now_s() - (long)(rnd(w) % 600));
        }
    } else if (r < 72) {
        phase = PH_FLUSH;
        SSL_CTX_flush_sessions(b->ctx, now_s() - 600 + (long)(rnd(w) % 600));
        phase = PH_NONE;
        atomic_fetch_add(&b->flush_calls, 1);
    } else if (r < 76) {
        if (under_sslsess()) /* re-sorting a session that may be cached */
            SSL_SESSION_set_time(s, now_s() - (long)(rnd(w) % 600));
    } else {
        /* Lookups only read the probe: workers may share one. */
        SSL *probe = w->probe[which] != NULL ? w->probe[which] : first_probe[which];
        unsigned int len;
        const unsigned char *id = SSL_SESSION_get_id(s, &len);
        (void)SSL_has_matching_session_id(probe, id, len); /* either answer is fine */
        unsigned char unknown[32];
        random_id(w, unknown);
        w->lookups += 2;
        w->lookup_false_hits += SSL_has_matching_session_id(probe, unknown, 32) != 0;
    }
}

static pthread_barrier_t start;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    pthread_barrier_wait(&start);
    int every = w->handshakes > 0 ? w->ops / w->handshakes : 0;
    int done_hs = 0;
    for (int i = 0; i < w->ops; i++) {
        if (every > 0 && i % every == 0 && done_hs < w->handshakes) {
            one_handshake(w, (int)(rnd(w) % 2));
            done_hs++;
        } else {
            one_op(w);
        }
    }
    for (int k = 0; k < 2; k++) {
        SSL_free(w->probe[k]);
        w->probe[k] = NULL;
    }
    return NULL;
}

/* --- Checks ------------------------------------------------------------------ */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (SSL_SESSION *const *)a, y = (uintptr_t) * (SSL_SESSION *const *)b;
    return x < y ? -1 : x > y;
}

static int in_sorted(SSL_SESSION **v, long n, SSL_SESSION *s)
{
    return bsearch(&s, v, (size_t)n, sizeof(*v), cmp_ptr) != NULL;
}

static void check_context(struct books *b, struct worker *w, int nthreads, SSL *probe)
{
    char sect[64];
    snprintf(sect, sizeof(sect), "context %s", b->name);
    SECTION(sect);
    long number = SSL_CTX_sess_number(b->ctx), full = SSL_CTX_sess_cache_full(b->ctx);
    long tls13_resumed = b->version == TLS1_3_VERSION ? b->hs_resumed : 0;
    long entered = b->adds_new + b->new_cb;
    long left = b->removes_found + full + b->cb_flush + tls13_resumed;
    printf("# adds %ld (+%ld duplicate), cached by handshakes %ld, removes %ld of %ld calls,"
           " evictions %ld, flushed %ld in %ld flushes, handshakes %ld resumed + %ld full\n",
           (long)b->adds_new, (long)b->adds_dup, (long)b->new_cb, (long)b->removes_found,
           (long)b->remove_calls, full, (long)b->cb_flush, (long)b->flush_calls,
           (long)b->hs_resumed, (long)b->hs_full);

    CHECK(b->hs_failed == 0, "%s: no handshake failed (%ld failed)", b->name, (long)b->hs_failed);
    CHECK(number == entered - left,
          "%s: cached %ld == adds %ld + handshake adds %ld - removes %ld - evictions %ld"
          " - flushed %ld - TLS 1.3 resumptions %ld (= %ld)",
          b->name, number, (long)b->adds_new, (long)b->new_cb, (long)b->removes_found, full,
          (long)b->cb_flush, tls13_resumed, entered - left);
    CHECK(number <= b->limit, "%s: cached %ld within the size %ld", b->name, number, b->limit);
    CHECK(b->cb_remove == b->remove_calls,
          "%s: one remove callback per remove call (%ld callbacks, %ld calls)", b->name,
          (long)b->cb_remove, (long)b->remove_calls);
    if (b->version == TLS1_3_VERSION)
        CHECK(b->cb_add + b->cb_hs >= full + tls13_resumed,
              "%s: remove callbacks in adds and handshakes %ld >= evictions %ld + resumptions %ld",
              b->name, (long)(b->cb_add + b->cb_hs), full, tls13_resumed);
    else
        CHECK(b->cb_add + b->cb_hs == full,
              "%s: remove callbacks in adds and handshakes %ld == evictions %ld", b->name,
              (long)(b->cb_add + b->cb_hs), full);
    CHECK(b->cb_other == 0, "%s: no remove callback outside the calls (%ld)", b->name,
          (long)b->cb_other);
    CHECK(full > 0, "%s: the small cache evicted (%ld)", b->name, full);
    CHECK(b->adds_new > 0 && b->removes_found > 0, "%s: adds and removes took effect", b->name);

    /* What lookups find, before the final flush says what is cached. */
    int found[MAX_THREADS][POOL];
    long found_n = 0;
    for (int t = 0; t < nthreads; t++)
        for (int i = 0; i < POOL; i++) {
            unsigned int len;
            const unsigned char *id = SSL_SESSION_get_id(w[t].pool[i], &len);
            found[t][i] = SSL_has_matching_session_id(probe, id, len);
            found_n += found[t][i];
        }

    b->final_cap = number + 16;
    b->final_seen = calloc((size_t)b->final_cap, sizeof(SSL_SESSION *));
    phase = PH_FINAL;
    SSL_CTX_flush_sessions(b->ctx, 0);
    phase = PH_NONE;
    CHECK(b->cb_final == number, "%s: the final flush reported %ld sessions, %ld were counted",
          b->name, (long)b->cb_final, number);
    CHECK(SSL_CTX_sess_number(b->ctx) == 0, "%s: empty after the final flush", b->name);
    long n = b->final_n, dups = 0;
    qsort(b->final_seen, (size_t)n, sizeof(SSL_SESSION *), cmp_ptr);
    for (long i = 1; i < n; i++)
        dups += b->final_seen[i] == b->final_seen[i - 1];
    CHECK(dups == 0, "%s: the final flush reported each session once (%ld repeats)", b->name,
          dups);

    long mismatched = 0, expected_n = 0;
    for (int t = 0; t < nthreads; t++)
        for (int i = 0; i < POOL; i++) {
            SSL_SESSION *s = w[t].pool[i];
            int expected = in_sorted(b->final_seen, n, s)
                           && SSL_SESSION_get_protocol_version(s) == b->version;
            expected_n += expected;
            mismatched += expected != found[t][i];
        }
    CHECK(mismatched == 0,
          "%s: SSL_has_matching_session_id found exactly the cached synthetic sessions of its"
          " version (%ld found, %ld cached, %ld mismatches)",
          b->name, found_n, expected_n, mismatched);
    free(b->final_seen);
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    int ops = argc > 2 ? atoi(argv[2]) : 20000;
    int handshakes = argc > 3 ? atoi(argv[3]) : 200;
    long limit = argc > 4 ? atol(argv[4]) : 32;
    if (nthreads < 1 || nthreads > MAX_THREADS || ops < 1 || handshakes < 0 || limit < 2)
        die("usage: stress THREADS(1-16) OPS HANDSHAKES [CACHE_SIZE]");

    freed_times = calloc(MAX_TRACKED, sizeof(*freed_times));
    if (freed_times == NULL)
        die("out of memory");
    sess_idx = SSL_SESSION_get_ex_new_index(0, NULL, sess_new_cb, sess_dup_cb, sess_free_cb);
    if (sess_idx < 0)
        die("SSL_SESSION_get_ex_new_index");

    printf("# stress: %d threads x %d operations, %d handshakes each, cache size %ld, %s\n",
           nthreads, ops, handshakes, limit, under_sslsess() ? "libsslsess" : "plain libssl");
    make_key_and_cert();
    setup_books(&books[0], "A (TLS 1.2)", TLS1_2_VERSION, limit);
    setup_books(&books[1], "B (TLS 1.3)", TLS1_3_VERSION, limit);

    /* Probes for the final lookups, and for the workers' lookups until
     * they have probes of their own (without handshakes, never): server
     * SSLs that finished a handshake (so they carry the protocol version).
     * Their sessions are counted as any other handshake's. */
    for (int k = 0; k < 2; k++) {
        SSL_SESSION *cs = NULL;
        phase = PH_HS;
        int r = handshake(&books[k], &cs, &first_probe[k]);
        phase = PH_NONE;
        if (r != 0)
            die("first handshake");
        atomic_fetch_add(&books[k].hs_full, 1);
        SSL_SESSION_free(cs);
    }

    static struct worker w[MAX_THREADS];
    uint64_t seed;
    if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
        die("RAND_bytes");
    printf("# seed %llu\n", (unsigned long long)seed);
    for (int t = 0; t < nthreads; t++) {
        w[t] = (struct worker){.id = t, .ops = ops, .handshakes = handshakes,
                               .rng = seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1)};
        if (w[t].rng == 0)
            w[t].rng = 1;
        make_pool(&w[t]);
    }

    pthread_t tid[MAX_THREADS];
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker_main, &w[t]) != 0)
            die("pthread_create");
    for (int t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    pthread_barrier_destroy(&start);

    SECTION("lookups");
    long lookups = 0, false_hits = 0, resumed = 0;
    for (int t = 0; t < nthreads; t++) {
        lookups += w[t].lookups;
        false_hits += w[t].lookup_false_hits;
    }
    CHECK(lookups > 0 && false_hits == 0,
          "lookups ran, and none of an id never cached found one (%ld of %ld)", false_hits, lookups);
    for (int k = 0; k < 2; k++)
        resumed += books[k].hs_resumed;
    if (handshakes >= 10)
        CHECK(resumed > 0, "handshakes resumed sessions from the shared caches (%ld)", resumed);

    for (int k = 0; k < 2; k++)
        check_context(&books[k], w, nthreads, first_probe[k]);

    SECTION("every session freed exactly once");
    for (int k = 0; k < 2; k++)
        SSL_free(first_probe[k]);
    for (int t = 0; t < nthreads; t++) {
        for (int i = 0; i < POOL; i++)
            SSL_SESSION_free(w[t].pool[i]);
        for (int k = 0; k < 2; k++)
            SSL_SESSION_free(w[t].client[k]);
    }
    for (int k = 0; k < 2; k++) {
        SSL_CTX_free(books[k].ctx);
        SSL_CTX_free(books[k].client);
        CHECK(books[k].cb_other == 0, "%s: SSL_CTX_free of the flushed cache reported nothing",
              books[k].name);
    }
    long twice = 0, never = 0, n = atomic_load(&created);
    for (long i = 0; i < n && i < MAX_TRACKED; i++) {
        int f = atomic_load(&freed_times[i]);
        never += f == 0;
        twice += f > 1;
    }
    CHECK(tracked_overflow == 0, "every session was tracked");
    CHECK(freed_untracked == 0, "no untracked session was freed (%ld)", (long)freed_untracked);
    CHECK(freed_total == n, "sessions freed %ld == sessions created %ld", (long)freed_total, n);
    CHECK(never == 0, "no session left unfreed (%ld)", never);
    CHECK(twice == 0, "no session freed twice (%ld)", twice);

    EVP_PKEY_free(server_key);
    X509_free(server_cert);
    free(freed_times);
    return check_summary("stress");
}
