/*
 * benches/cachebench.c: the workloads of `make bench` (benches/run.sh).
 *
 * Linked to libssl only; benches/run.sh runs it as is (plain libssl) and
 * with LD_PRELOAD=libsslsess, interleaved, and compares. Each run
 * measures one workload group and prints "RESULT <name> <value>" lines:
 *
 *   cachebench ops THREADS [N]          cache calls on one SSL_CTX holding N
 *                                       (100000) sessions: add, dupadd, remove,
 *                                       flush, churn (ops per second)
 *   cachebench churn THREADS [N]        the churn row alone (for profiling)
 *   cachebench hs 12|13 SESSIONS THREADS HANDSHAKES
 *                                       resumed handshakes per second over
 *                                       memory BIOs (TLS 1.2 session id or
 *                                       TLS 1.3 stateful tickets), HANDSHAKES
 *                                       per thread in one timed chunk after
 *                                       an untimed one (for hand runs; `make
 *                                       bench` uses hs-step; before 013e9bd
 *                                       there was no untimed chunk, so the
 *                                       README's older hand runs of hs
 *                                       included OpenSSL's per-thread set-up)
 *   cachebench hs-step 12|13 SESSIONS THREADS HANDSHAKES CHUNKS IN_FD OUT_FD
 *                                       the same set-up, then CHUNKS timed
 *                                       chunks of HANDSHAKES per thread, each
 *                                       when a byte arrives on IN_FD; a byte
 *                                       on OUT_FD when set up and after each
 *                                       chunk; checks and exits when IN_FD
 *                                       ends. `make bench` runs a plain and a
 *                                       libsslsess process so, taking turns
 *                                       chunk by chunk (benches/lockstep.py);
 *                                       prints "CHUNK hs <i> <rate>" per chunk
 *   cachebench mem [N]                  resident bytes per cached session
 *   cachebench cg-ops N [OTHERS]        N adds + N removes inside
 *                                       cg_region_ops (for callgrind
 *                                       --toggle-collect), with OTHERS (0)
 *                                       sessions cached throughout
 *   cachebench cg-churn N [SIZE]        N adds into a full cache of SIZE
 *                                       (1000), one eviction each, inside
 *                                       cg_region_churn
 *   cachebench cg-hs 12|13 N            N resumed handshakes inside
 *                                       cg_region_hs
 *
 * Only the cache calls (or the handshakes) are timed: sessions, keys and
 * contexts are made before the clock starts. Threads work on disjoint
 * session sets of the same SSL_CTX and start together at a barrier; the
 * time is the wall time from the first thread's start to the last one's end,
 * except for a single thread, where it is the thread's CPU time (so that
 * other processes on a shared machine do not count). hs's and hs-step's
 * threads live through all their chunks and start each at a barrier.
 * Every run checks that the calls did what they should (counts, resumption),
 * and exits non-zero otherwise: a benchmark of a broken run means nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#include <openssl/err.h>
#include "check.h"
#include "tls_fixture.h"
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAX_THREADS 64

static void die(const char *what)
{
    fprintf(stderr, "cachebench: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The clock a thread reads for its own start and end. With one thread it
 * is that thread's CPU time: on a shared machine, time spent descheduled
 * while another process runs is no cost of the calls measured. With more
 * threads it is wall time, since waiting for each other (on a lock) is. */
static int single_thread;

static double clock_s(void)
{
    return single_thread ? cpu_s() : now_s();
}

static void result(const char *name, double value)
{
    printf("RESULT %s %.6g\n", name, value);
    fflush(stdout);
}

/* --- Synthetic sessions ------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64, seeded from RAND_bytes: random ids without paying for
     * 100,000 calls into the DRBG. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Sessions with random 32-byte ids, all with the same time and timeout:
 * as sessions made within the same second. (Made across a second boundary,
 * later ones would expire later; a re-added earlier one then makes libssl
 * walk its expiry list, which would turn duplicate add into a lottery.) */
static SSL_SESSION **make_sessions(int n, int version)
{
    long t = (long)time(NULL);
    SSL_SESSION **s = calloc((size_t)n, sizeof(*s));
    if (s == NULL)
        die("out of memory");
    if (rng_state == 0 && RAND_bytes((unsigned char *)&rng_state, sizeof(rng_state)) != 1)
        die("RAND_bytes");
    for (int i = 0; i < n; i++) {
        unsigned char id[32];
        for (int k = 0; k < 32; k += 8) {
            uint64_t r = rng_next();
            memcpy(id + k, &r, 8);
        }
        s[i] = new_session_with_id(id, sizeof(id), version);
        if (s[i] == NULL || SSL_SESSION_set_time(s[i], t) == 0)
            die("cannot make a session");
    }
    return s;
}

static void free_sessions(SSL_SESSION **s, int n)
{
    for (int i = 0; i < n; i++)
        SSL_SESSION_free(s[i]);
    free(s);
}

static SSL_CTX *cache_ctx(long size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("SSL_CTX_new");
    SSL_CTX_sess_set_cache_size(ctx, size);
    return ctx;
}

/* --- Threads ------------------------------------------------------------ */

enum op { OP_ADD, OP_DUPADD, OP_REMOVE, OP_FLUSH, OP_CHURN };

struct job {
    SSL_CTX *ctx;
    SSL_SESSION **s;
    int from, to;
    enum op op;
    long sum; /* sum of return values */
    pthread_barrier_t *start;
    double t0, t1; /* this thread's start and end */
};

static void *cache_worker(void *arg)
{
    struct job *j = arg;
    long sum = 0;
    pthread_barrier_wait(j->start);
    j->t0 = clock_s();
    switch (j->op) {
    case OP_ADD:
    case OP_DUPADD:
    case OP_CHURN:
        for (int i = j->from; i < j->to; i++)
            sum += SSL_CTX_add_session(j->ctx, j->s[i]);
        break;
    case OP_REMOVE:
        for (int i = j->from; i < j->to; i++)
            sum += SSL_CTX_remove_session(j->ctx, j->s[i]);
        break;
    case OP_FLUSH:
        SSL_CTX_flush_sessions(j->ctx, 0);
        break;
    }
    j->t1 = clock_s();
    j->sum = sum;
    return NULL;
}

/* Time of a group of threads: first start to last end (each thread reads
 * the clock itself: the main thread may not run at all while they work).
 * One thread: its CPU time (see clock_s). */
static double span(double t0, double t1, double *first, double *last)
{
    if (t0 < *first)
        *first = t0;
    if (t1 > *last)
        *last = t1;
    return *last - *first;
}

/* Runs `op` on T threads over n sessions split in T slices; returns the
 * wall time and the sum of the calls' return values. */
static double run_op(int threads, SSL_CTX *ctx, SSL_SESSION **s, int n, enum op op, long *sum)
{
    pthread_t tid[MAX_THREADS];
    struct job jobs[MAX_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct job){ctx, s, (int)((long)n * t / threads),
                               (int)((long)n * (t + 1) / threads), op, 0, &start, 0, 0};
        if (pthread_create(&tid[t], NULL, cache_worker, &jobs[t]) != 0)
            die("pthread_create");
    }
    pthread_barrier_wait(&start);
    double first = 1e300, last = -1e300, dt = 0;
    *sum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        *sum += jobs[t].sum;
        dt = span(jobs[t].t0, jobs[t].t1, &first, &last);
    }
    pthread_barrier_destroy(&start);
    return dt;
}

static void expect(long got, long want, const char *what)
{
    if (got != want) {
        fprintf(stderr, "cachebench: %s: got %ld, expected %ld\n", what, got, want);
        exit(3);
    }
}

/* --- ops ------------------------------------------------------------------ */

/* The size of the churn row's cache (and cg-churn's by default). */
#define CHURN_CACHE 1000

/* Churn: a cache of CHURN_CACHE, every add past it evicts one. */
static void churn(int threads, SSL_SESSION **s, int n)
{
    long sum;
    SSL_CTX *ctx = cache_ctx(CHURN_CACHE);
    double t = run_op(threads, ctx, s, n, OP_CHURN, &sum);
    expect(sum, n, "churn: sessions added");
    if (SSL_CTX_sess_number(ctx) > CHURN_CACHE || SSL_CTX_sess_cache_full(ctx) < n - CHURN_CACHE)
        die("churn: the cache did not stay within its size");
    result("churn", n / t);
    SSL_CTX_free(ctx);
}

static int cmd_ops(int threads, int n)
{
    SSL_SESSION **s = make_sessions(n, TLS1_2_VERSION);
    long sum;
    /* Warm-up, untimed: the allocator has served a cache of this size
     * before, as in a server that has been running for a while. */
    SSL_CTX *ctx = cache_ctx(2L * n);
    run_op(threads, ctx, s, n, OP_ADD, &sum);
    run_op(threads, ctx, s, n, OP_REMOVE, &sum);
    SSL_CTX_free(ctx);

    /* A bound above n (as a real server has one), never reached. */
    ctx = cache_ctx(2L * n);

    double t = run_op(threads, ctx, s, n, OP_ADD, &sum);
    expect(sum, n, "add: sessions added");
    expect(SSL_CTX_sess_number(ctx), n, "add: cache size");
    result("add", n / t);

    t = run_op(threads, ctx, s, n, OP_DUPADD, &sum);
    expect(sum, 0, "duplicate add: return values");
    expect(SSL_CTX_sess_number(ctx), n, "duplicate add: cache size");
    result("dupadd", n / t);

    t = run_op(threads, ctx, s, n, OP_REMOVE, &sum);
    expect(sum, n, "remove: sessions removed");
    expect(SSL_CTX_sess_number(ctx), 0, "remove: cache size");
    result("remove", n / t);

    /* Flush of a full cache: every thread calls flush(ctx, 0) at once. */
    run_op(1, ctx, s, n, OP_ADD, &sum);
    expect(sum, n, "flush: refill");
    t = run_op(threads, ctx, s, n, OP_FLUSH, &sum);
    expect(SSL_CTX_sess_number(ctx), 0, "flush: cache size");
    result("flush", n / t);
    SSL_CTX_free(ctx);

    churn(threads, s, n);
    free_sessions(s, n);
    return 0;
}

/* The churn row alone (for profiling it), without the warm-up of 'ops'
 * (its ratios to plain libssl can differ from the bench's row). */
static int cmd_churn(int threads, int n)
{
    SSL_SESSION **s = make_sessions(n, TLS1_2_VERSION);
    churn(threads, s, n);
    free_sessions(s, n);
    return 0;
}

/* --- mem ------------------------------------------------------------------ */

static long rss_bytes(void)
{
    long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &size, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static int cmd_mem(int n)
{
    SSL_SESSION **s = make_sessions(n, TLS1_2_VERSION);
    /* Warm up: whatever the first add or remove initialises once per
     * process is not a per-session cost. */
    SSL_SESSION **w = make_sessions(1, TLS1_2_VERSION);
    SSL_CTX *warm = cache_ctx(0);
    SSL_CTX_add_session(warm, w[0]);
    SSL_CTX_remove_session(warm, w[0]);
    SSL_CTX_free(warm);
    free_sessions(w, 1);

    SSL_CTX *ctx = cache_ctx(0);
    malloc_trim(0);
    long before = rss_bytes();
    long added = 0;
    for (int i = 0; i < n; i++)
        added += SSL_CTX_add_session(ctx, s[i]);
    malloc_trim(0);
    long after = rss_bytes();
    expect(added, n, "mem: sessions added");
    expect(SSL_CTX_sess_number(ctx), n, "mem: cache size");
    result("mem", (double)(after - before) / n);
    SSL_CTX_free(ctx);
    free_sessions(s, n);
    return 0;
}

/* --- Handshakes ------------------------------------------------------------ */

static EVP_PKEY *server_key;
static X509 *server_cert;

static void make_key_and_cert(void)
{
    if (!make_self_signed("cachebench", &server_key, &server_cert))
        die("key and certificate");
}

static SSL_CTX *server_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_use_certificate(ctx, server_cert) != 1
        || SSL_CTX_use_PrivateKey(ctx, server_key) != 1)
        die("server context");
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    /* TLS 1.2: session ids; TLS 1.3: stateful tickets (the ticket is the
     * cache key). One ticket per handshake. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"cachebench", 10);
    return ctx;
}

static SSL_CTX *client_ctx(int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        die("client context");
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    return ctx;
}

/* One handshake between a fresh client and server over a BIO pair,
 * resuming *sess when set. Afterwards *sess is the session to resume next
 * time (TLS 1.3: the ticket just received). Returns 1 when the server
 * resumed, 0 for a full handshake; exits on failure. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION **sess, int tls13)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    if (!tls_pair_join(c, s))
        die("SSL_new / BIO pair");
    if (*sess != NULL && SSL_set_session(c, *sess) != 1)
        die("SSL_set_session");
    if (!tls_pair_handshake(c, s))
        die("handshake does not finish");
    if (tls13 && !tls_pair_take_tickets(c))
        die("client read of the ticket");
    int reused = SSL_session_reused(s);
    if (tls13 || !reused) {
        SSL_SESSION_free(*sess);
        *sess = SSL_get1_session(c);
        if (*sess == NULL)
            die("no client session");
    }
    /* As after a clean close: neither side's session is "bad". */
    SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c);
    SSL_free(s);
    return reused;
}

struct hsjob {
    SSL_CTX *sctx, *cctx;
    SSL_SESSION *sess;
    int tls13, count, not_resumed;
    pthread_barrier_t *start, *done;
    double t0, t1;
};

static void prefill(SSL_CTX *sctx, int n, int version)
{
    if (n <= 0)
        return;
    SSL_SESSION **s = make_sessions(n, version);
    long added = 0;
    for (int i = 0; i < n; i++)
        added += SSL_CTX_add_session(sctx, s[i]);
    expect(added, n, "prefill: sessions added");
    free_sessions(s, n); /* the cache keeps its references */
}

/* What hs and hs-step share: the contexts, a cache of SESSIONS sessions
 * (THREADS of them real, the others synthetic), and per thread a real
 * session to resume, warmed up. */
struct hsbench {
    SSL_CTX *sctx, *cctx;
    int threads;
    long want, cached; /* sessions the cache should hold; held after set-up */
    struct hsjob jobs[MAX_THREADS];
};

static void hs_setup(struct hsbench *b, int proto, int sessions, int threads, int count)
{
    int tls13 = proto == 13, version = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    make_key_and_cert();
    b->sctx = server_ctx(version);
    b->cctx = client_ctx(version);
    b->threads = threads;
    if (tls13) {
        /* libssl 3.0 keeps a stateful TLS 1.3 session after resuming it
         * unless anti-replay is on (it is with early data enabled): then
         * the server removes the session it resumes (single-use tickets)
         * and caches the new ticket, and the cache keeps its size. No
         * early data is sent. */
        SSL_CTX_set_max_early_data(b->sctx, 16384);
    }
    prefill(b->sctx, sessions - threads, version);

    for (int t = 0; t < threads; t++) {
        b->jobs[t] = (struct hsjob){.sctx = b->sctx, .cctx = b->cctx, .tls13 = tls13,
                                    .count = count};
        /* The real session, then a warm-up of resumed handshakes. */
        if (handshake(b->sctx, b->cctx, &b->jobs[t].sess, tls13))
            die("first handshake resumed");
        for (int i = 0; i < 50; i++)
            if (!handshake(b->sctx, b->cctx, &b->jobs[t].sess, tls13))
                die("warm-up handshake not resumed");
    }
    b->cached = SSL_CTX_sess_number(b->sctx);
    b->want = sessions > threads ? sessions : threads;
}

/* The checks after the timed handshakes (every one resumed; a note if the
 * cache did not hold what it should); returns the sessions cached. */
static long hs_check(struct hsbench *b)
{
    int not_resumed = 0;
    for (int t = 0; t < b->threads; t++)
        not_resumed += b->jobs[t].not_resumed;
    expect(not_resumed, 0, "handshakes that did not resume");
    long cached_after = SSL_CTX_sess_number(b->sctx);
    if (b->cached != b->want || cached_after != b->want)
        fprintf(stderr, "cachebench: note: %ld then %ld sessions cached, expected %ld\n",
                b->cached, cached_after, b->want);
    return cached_after;
}

static void hs_free(struct hsbench *b)
{
    for (int t = 0; t < b->threads; t++)
        SSL_SESSION_free(b->jobs[t].sess);
    SSL_CTX_free(b->sctx);
    SSL_CTX_free(b->cctx);
}

/* The rate of a group's handshakes: all threads' count over first start
 * to last end (one thread: its CPU time, see clock_s). */
static double hs_rate(struct hsbench *b)
{
    double first = 1e300, last = -1e300, dt = 0;
    for (int t = 0; t < b->threads; t++)
        dt = span(b->jobs[t].t0, b->jobs[t].t1, &first, &last);
    return (double)b->jobs[0].count * b->threads / dt;
}

/* Set by the main thread before it releases the workers for the last time. */
static int hs_stop;

/* A worker of hs and hs-step: lives through every chunk, so that thread
 * creation (and OpenSSL's per-thread state) stays out of the chunks. Each
 * round: wait for the release, COUNT handshakes, wait for the others. */
static void *hs_worker(void *arg)
{
    struct hsjob *j = arg;
    for (;;) {
        pthread_barrier_wait(j->start);
        if (hs_stop)
            return NULL;
        j->t0 = clock_s();
        for (int i = 0; i < j->count; i++)
            j->not_resumed += !handshake(j->sctx, j->cctx, &j->sess, j->tls13);
        j->t1 = clock_s();
        pthread_barrier_wait(j->done);
    }
}

/* The workers of one run and the barriers that release and collect them. */
struct hsteam {
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start, done;
};

/* One chunk: release the workers, wait for all of them, the rate. */
static double hs_chunk(struct hsbench *b, struct hsteam *team)
{
    pthread_barrier_wait(&team->start);
    pthread_barrier_wait(&team->done);
    return hs_rate(b);
}

/* Starts a worker per thread and runs one untimed chunk: the new threads'
 * first handshakes set up OpenSSL's per-thread state (its random
 * generators), a cost the first timed chunk would otherwise carry. */
static void hs_team_start(struct hsbench *b, struct hsteam *team)
{
    pthread_barrier_init(&team->start, NULL, (unsigned)b->threads + 1);
    pthread_barrier_init(&team->done, NULL, (unsigned)b->threads + 1);
    for (int t = 0; t < b->threads; t++) {
        b->jobs[t].start = &team->start;
        b->jobs[t].done = &team->done;
        if (pthread_create(&team->tid[t], NULL, hs_worker, &b->jobs[t]) != 0)
            die("pthread_create");
    }
    hs_chunk(b, team);
}

static void hs_team_stop(struct hsbench *b, struct hsteam *team)
{
    hs_stop = 1;
    pthread_barrier_wait(&team->start);
    for (int t = 0; t < b->threads; t++)
        pthread_join(team->tid[t], NULL);
    pthread_barrier_destroy(&team->start);
    pthread_barrier_destroy(&team->done);
}

/* One timed chunk of COUNT handshakes per thread (for hand runs). */
static int cmd_hs(int proto, int sessions, int threads, int count)
{
    struct hsbench b;
    struct hsteam team;
    hs_setup(&b, proto, sessions, threads, count);
    hs_team_start(&b, &team);
    double rate = hs_chunk(&b, &team);
    hs_team_stop(&b, &team);
    long cached = hs_check(&b);
    result("hs", rate);
    result("cached", (double)cached);
    hs_free(&b);
    return 0;
}

/* --- Handshakes in lockstep (hs-step) ------------------------------------ */

/* The baton: one byte over a pipe. Returns 0 at end of file. */
static int baton_take(int fd)
{
    char c;
    for (;;) {
        ssize_t r = read(fd, &c, 1);
        if (r >= 0)
            return r == 1;
        if (errno != EINTR)
            die("lockstep: read of the baton");
    }
}

static void baton_pass(int fd)
{
    char c = 1;
    while (write(fd, &c, 1) != 1)
        if (errno != EINTR)
            die("lockstep: write of the baton");
}

/* CHUNKS timed chunks of COUNT handshakes per thread, each when the driver
 * (benches/lockstep.py) hands the baton over IN_FD, each answered over
 * OUT_FD: the driver runs a plain and a libsslsess process so, one chunk
 * at a time, and the two sides' chunks i run next to each other in time. */
static int cmd_hs_step(int proto, int sessions, int threads, int count, int chunks, int in,
                       int out)
{
    struct hsbench b;
    hs_setup(&b, proto, sessions, threads, count);
    double *rates = calloc((size_t)chunks, sizeof(*rates));
    if (rates == NULL)
        die("out of memory");

    struct hsteam team;
    hs_team_start(&b, &team);
    baton_pass(out);
    for (int i = 0; i < chunks; i++) {
        if (!baton_take(in))
            die("lockstep: the driver closed the baton pipe early");
        rates[i] = hs_chunk(&b, &team);
        baton_pass(out);
    }
    /* The driver closes the pipe when both sides have run every chunk: tear
     * down only then, not while the other side times its last chunk. */
    if (baton_take(in))
        die("lockstep: a baton after the last chunk");
    hs_team_stop(&b, &team);
    long cached = hs_check(&b);
    for (int i = 0; i < chunks; i++)
        printf("CHUNK hs %d %.6g\n", i, rates[i]);
    result("cached", (double)cached);
    free(rates);
    hs_free(&b);
    return 0;
}

/* --- callgrind regions (their names are what --toggle-collect selects) --- */

__attribute__((noinline)) void cg_region_ops(SSL_CTX *ctx, SSL_SESSION **s, int n, long *sum)
{
    for (int i = 0; i < n; i++)
        *sum += SSL_CTX_add_session(ctx, s[i]);
    for (int i = 0; i < n; i++)
        *sum += SSL_CTX_remove_session(ctx, s[i]);
}

__attribute__((noinline)) void cg_region_churn(SSL_CTX *ctx, SSL_SESSION **s, int n, long *sum)
{
    for (int i = 0; i < n; i++)
        *sum += SSL_CTX_add_session(ctx, s[i]);
}

__attribute__((noinline)) int cg_region_hs(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION **sess,
                                           int tls13, int n)
{
    int resumed = 0;
    for (int i = 0; i < n; i++)
        resumed += handshake(sctx, cctx, sess, tls13);
    return resumed;
}

/* N adds then N removes, with OTHERS sessions cached throughout (added
 * before the counted region): the counts per operation at 0 and at 100,000
 * others show whether an operation's cost grows with the cache. */
static int cmd_cg_ops(int n, int others)
{
    if (others < 0)
        die("cg-ops: bad number of other sessions");
    SSL_SESSION **s = make_sessions(n + others, TLS1_2_VERSION);
    /* What the first add and remove set up once per process is not a
     * per-operation cost: done before the counted region. */
    SSL_CTX *ctx = cache_ctx(0);
    SSL_CTX_add_session(ctx, s[0]);
    SSL_CTX_remove_session(ctx, s[0]);
    SSL_CTX_free(ctx);
    ctx = cache_ctx(2L * (n + others));
    long sum = 0;
    for (int i = 0; i < others; i++)
        sum += SSL_CTX_add_session(ctx, s[n + i]);
    expect(sum, others, "cg-ops: others added");
    sum = 0;
    cg_region_ops(ctx, s, n, &sum);
    expect(sum, 2L * n, "cg-ops: adds + removes");
    expect(SSL_CTX_sess_number(ctx), others, "cg-ops: others still cached");
    SSL_CTX_free(ctx);
    free_sessions(s, n + others);
    return 0;
}

/* N adds into a cache of SIZE (already full): an eviction per add. */
static int cmd_cg_churn(int n, int size)
{
    if (size < 1)
        die("cg-churn: bad cache size");
    SSL_SESSION **s = make_sessions(n + size, TLS1_2_VERSION);
    SSL_CTX *ctx = cache_ctx(0); /* one-time set-up out of the count */
    SSL_CTX_add_session(ctx, s[0]);
    SSL_CTX_remove_session(ctx, s[0]);
    SSL_CTX_free(ctx);
    ctx = cache_ctx(size);
    long sum = 0;
    for (int i = 0; i < size; i++)
        sum += SSL_CTX_add_session(ctx, s[i]);
    long full = SSL_CTX_sess_cache_full(ctx);
    cg_region_churn(ctx, s + size, n, &sum);
    expect(sum, (long)size + n, "cg-churn: adds");
    expect(SSL_CTX_sess_cache_full(ctx) - full, n, "cg-churn: evictions in the counted adds");
    SSL_CTX_free(ctx);
    free_sessions(s, n + size);
    return 0;
}

static int cmd_cg_hs(int proto, int n)
{
    int tls13 = proto == 13, version = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    make_key_and_cert();
    SSL_CTX *sctx = server_ctx(version), *cctx = client_ctx(version);
    SSL_SESSION *sess = NULL;
    handshake(sctx, cctx, &sess, tls13);
    handshake(sctx, cctx, &sess, tls13);
    expect(cg_region_hs(sctx, cctx, &sess, tls13, n), n, "cg-hs: resumed handshakes");
    SSL_SESSION_free(sess);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    return 0;
}

static int arg(int argc, char **argv, int i, int dflt)
{
    return i < argc ? atoi(argv[i]) : dflt;
}

/* The THREADS argument at argv[i]: 1 to MAX_THREADS, or the run dies. */
static int threads_arg(int argc, char **argv, int i)
{
    int threads = arg(argc, argv, i, 1);
    if (threads < 1 || threads > MAX_THREADS)
        die("bad thread count");
    single_thread = threads == 1;
    return threads;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    printf("LIB %s\n", under_sslsess() ? "sslsess" : "plain");
    if (strcmp(cmd, "ops") == 0 || strcmp(cmd, "churn") == 0) {
        int threads = threads_arg(argc, argv, 2);
        int n = arg(argc, argv, 3, 100000);
        return strcmp(cmd, "ops") == 0 ? cmd_ops(threads, n) : cmd_churn(threads, n);
    }
    if (strcmp(cmd, "hs") == 0 && argc >= 6) {
        int threads = threads_arg(argc, argv, 4), count = arg(argc, argv, 5, 2000);
        if (count < 1)
            die("hs: bad handshake count");
        return cmd_hs(arg(argc, argv, 2, 12), arg(argc, argv, 3, 1), threads, count);
    }
    if (strcmp(cmd, "hs-step") == 0 && argc >= 9) {
        int threads = threads_arg(argc, argv, 4), count = arg(argc, argv, 5, 0),
            chunks = arg(argc, argv, 6, 0);
        if (count < 1 || chunks < 1)
            die("hs-step: bad handshake or chunk count");
        return cmd_hs_step(arg(argc, argv, 2, 12), arg(argc, argv, 3, 1), threads, count, chunks,
                           arg(argc, argv, 7, -1), arg(argc, argv, 8, -1));
    }
    if (strcmp(cmd, "mem") == 0)
        return cmd_mem(arg(argc, argv, 2, 100000));
    if (strcmp(cmd, "cg-ops") == 0)
        return cmd_cg_ops(arg(argc, argv, 2, 10000), arg(argc, argv, 3, 0));
    if (strcmp(cmd, "cg-churn") == 0)
        return cmd_cg_churn(arg(argc, argv, 2, 10000), arg(argc, argv, 3, CHURN_CACHE));
    if (strcmp(cmd, "cg-hs") == 0)
        return cmd_cg_hs(arg(argc, argv, 2, 12), arg(argc, argv, 3, 200));
    fprintf(stderr, "usage: cachebench ops|churn THREADS [N] | hs 12|13 SESSIONS THREADS HANDSHAKES"
                    " | hs-step 12|13 SESSIONS THREADS HANDSHAKES CHUNKS IN_FD OUT_FD"
                    " | mem [N] | cg-ops N [OTHERS] | cg-churn N [SIZE] | cg-hs 12|13 N\n");
    return 2;
}
