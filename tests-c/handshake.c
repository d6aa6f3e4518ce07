/*
 * tests-c/handshake.c: the handshake test bed (issue 3, item 4).
 *
 * Real TLS 1.2 and 1.3 handshakes and resumptions, client and server in one
 * process over BIO pairs, through scenarios that each start from fresh
 * contexts. Every observable fact (resumption results, callback call
 * sequences, SSL_has_matching_session_id, statistics) is printed as one
 * deterministic line "[scenario] phase: fact". handshake.sh runs this
 * program against plain libssl (the reference), linked to libsslsess and
 * with libsslsess preloaded, and diffs the fact lines scenario by scenario:
 * the same program must print the same facts.
 *
 * Where libsslsess deliberately differs (its cache holds N sessions, libssl
 * 3.0's N-1) the program prints library-independent statements as facts
 * and the raw figures as "expected-difference:" lines, which the script
 * shows but does not diff.
 *
 * The CHECKs at the end of each scenario are the few things that must hold
 * in every run, whichever library.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"
#include <dlfcn.h>
#include "hs_tls.h"

#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

/* Under libsslsess the sessions are in libsslsess's cache and libssl's own
 * table stays empty: proof that the resumptions above were served by
 * libsslsess (through its get-session callback), not by libssl. */
static void check_served_by(SSL_CTX *ctx, const char *what)
{
    long own = libssl_own_ctrl(ctx, SSL_CTRL_SESS_NUMBER);
    long reported = SSL_CTX_sess_number(ctx);
    hs_expected_difference("%s: libssl's own table holds %ld, SSL_CTX_sess_number says %ld", what,
                           own, reported);
    if (under_sslsess())
        CHECK(own == 0 && reported > 0, "%s: sessions held by libsslsess, none by libssl (%ld, %ld)",
              what, own, reported);
    else
        CHECK(own == reported, "%s: plain libssl's table is what SSL_CTX_sess_number says", what);
}

static const char *proto_name(enum hs_proto p)
{
    return p == HS_TLS13 ? "tls13" : p == HS_TLS11 ? "tls11" : "tls12";
}

static void describe_get_get_cb(SSL_CTX *ctx)
{
    hs_get_cb_fn f = SSL_CTX_sess_get_get_cb(ctx);
    hs_fact("SSL_CTX_sess_get_get_cb(%s) = %s", hs_ctx_name(ctx),
            f == NULL ? "NULL" : f == hs_get_cb_main() ? "the application's callback" : "ANOTHER function");
}

/* Sets the time of a (server) session to now - age. */
static void age_session(SSL_SESSION *s, long age)
{
    if (s != NULL)
        SSL_SESSION_set_time(s, (long)time(NULL) - age);
}

static int is_fresh(SSL_SESSION *s)
{
    return s != NULL && SSL_SESSION_get_time(s) >= (long)time(NULL) - 50;
}

/* ------------------------------------------------------------------------
 * TLS 1.2 session ids: server SSL_OP_NO_TICKET.
 */
static void scn_tls12_session_id(void)
{
    hs_begin("tls12-session-id");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(c, HS_CB_NEW | HS_CB_REMOVE, 0);
    describe_get_get_cb(s);
    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c1.client_session, NULL, &c3);
    hs_connect(c, s, NULL, NULL, &c4);
    hs_print_stats(s);
    hs_print_stats(c);
    /* An id nobody issued. */
    SSL *probe = SSL_new(s);
    unsigned char bogus[32];
    memset(bogus, 0xab, sizeof bogus);
    hs_fact("SSL_has_matching_session_id(unknown id) = %d",
            SSL_has_matching_session_id(probe, bogus, sizeof bogus));
    SSL_free(probe);
    CHECK(c2.client_reused == 1 && c2.server_reused == 1, "tls12 session-id: conn 2 resumed");
    check_served_by(s, "tls12 session-id");
    CHECK(c3.client_reused == 1, "tls12 session-id: conn 3 resumed the same session again");
    CHECK(c2.server_has_match == 1, "tls12 session-id: the server's session is cached");
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(s, c, NULL);
}

/* TLS 1.2 tickets: the server caches nothing. */
static void scn_tls12_tickets(void)
{
    hs_begin("tls12-tickets");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, 0);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c2.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.client_reused == 1, "tls12 tickets: conn 2 resumed");
    CHECK(SSL_CTX_sess_number(s) == 0, "tls12 tickets: the server caches nothing");
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* TLS 1.3 stateful tickets (how: "no-ticket", "remove-cb" or
 * "early-data"): a chain of resumptions, and a replayed ticket. */
static void scn_tls13_stateful(const char *how)
{
    const char *t = hs_begin("tls13-stateful-%s", how);
    int no_ticket = strcmp(how, "no-ticket") == 0;
    SSL_CTX *s = hs_server_ctx("server", HS_TLS13, no_ticket ? SSL_OP_NO_TICKET : 0);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS13);
    hs_set_callbacks(s, HS_CB_NEW, 0);
    if (strcmp(how, "remove-cb") == 0 || no_ticket)
        hs_set_callbacks(s, HS_CB_REMOVE, 0);
    if (strcmp(how, "early-data") == 0)
        SSL_CTX_set_max_early_data(s, 1024);
    struct hs_conn c1, c2, c3, c4, c5, c6;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c1.client_session, NULL, &c3); /* replay: must not resume */
    hs_connect(c, s, c2.client_session, NULL, &c4);
    hs_connect(c, s, c4.client_session, NULL, &c5);
    hs_connect(c, s, c4.client_session, NULL, &c6); /* replay */
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.client_reused == 1 && c2.server_reused == 1, "tls13 stateful (%s): conn 2 resumed", how);
    check_served_by(s, t);
    /* libssl 3.0 removes the resumed session (anti-replay: a ticket
     * resumes once) only when early data is enabled, not for
     * SSL_OP_NO_TICKET or a remove callback alone. */
    if (strcmp(how, "early-data") == 0) {
        CHECK(c3.client_reused == 0 && c3.server_reused == 0,
              "tls13 stateful (%s): anti-replay, the same ticket a second time is not resumed", how);
        CHECK(c6.client_reused == 0, "tls13 stateful (%s): second replay not resumed", how);
    }
    CHECK(c4.client_reused == 1 && c5.client_reused == 1,
          "tls13 stateful (%s): later tickets resume", how);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_conn_release(&c4), hs_conn_release(&c5), hs_conn_release(&c6);
    hs_free_and_end(s, c, NULL);
}

/* TLS 1.3 default (stateless) tickets: a ticket resumes twice, nothing is
 * cached. */
static void scn_tls13_stateless(void)
{
    hs_begin("tls13-stateless");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS13, 0);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS13);
    hs_set_callbacks(s, HS_CB_NEW, 0);
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c1.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.client_reused == 1 && c3.client_reused == 1, "tls13 stateless: a ticket resumes twice");
    CHECK(SSL_CTX_sess_number(s) == 0, "tls13 stateless: the server caches nothing");
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * Every cache mode on the server, without and with an external cache.
 */
struct mode {
    const char *name;
    long bits;
};
static const struct mode modes[] = {
    {"off", SSL_SESS_CACHE_OFF},
    {"client", SSL_SESS_CACHE_CLIENT},
    {"server", SSL_SESS_CACHE_SERVER},
    {"both", SSL_SESS_CACHE_BOTH},
    {"no-auto-clear", SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_AUTO_CLEAR},
    {"no-internal-lookup", SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP},
    {"no-internal-store", SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE},
    {"no-internal", SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL},
    {"update-time", SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_UPDATE_TIME},
    {"no-internal-lookup+update-time",
     SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP | SSL_SESS_CACHE_UPDATE_TIME},
    {"no-internal-store+update-time",
     SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_STORE | SSL_SESS_CACHE_UPDATE_TIME},
};

static void scn_mode(enum hs_proto proto, int antireplay, const struct mode *m, enum hs_ext e)
{
    const char *t = hs_begin("mode-%s-%s%s-%s", m->name, proto_name(proto),
                             antireplay ? "-antireplay" : "", hs_ext_name(e));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    if (antireplay)
        SSL_CTX_set_max_early_data(s, 1024);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    long old = SSL_CTX_set_session_cache_mode(s, m->bits);
    hs_fact("set mode: old=%ld now=%ld", old, SSL_CTX_get_session_cache_mode(s));
    hs_set_ext_cache(s, e, 0);
    if (e == HS_EXT_DER)
        hs_ext_set_age(100);
    describe_get_get_cb(s);
    if (e != HS_EXT_NONE)
        CHECK(SSL_CTX_sess_get_get_cb(s) == hs_get_cb_main(),
              "%s: SSL_CTX_sess_get_get_cb returns the application's callback", t);
    else
        CHECK(SSL_CTX_sess_get_get_cb(s) == NULL, "%s: SSL_CTX_sess_get_get_cb returns NULL", t);

    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, s, NULL, NULL, &c1);
    /* The server's session 100 s older: shows whether a later add
     * refreshes it (UPDATE_TIME). */
    age_session(c1.server_session, 100);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    if (proto == HS_TLS12 && c2.server_reused)
        hs_fact("resumed server session time: %s", is_fresh(c2.server_session) ? "now" : "kept");
    hs_connect(c, s, c1.client_session, NULL, &c3);
    hs_connect(c, s, c2.client_session ? c2.client_session : c1.client_session, NULL, &c4);
    hs_print_stats(s);
    hs_print_stats(c);
    struct hs_counts k;
    hs_counts_get(&k);
    hs_fact("callbacks: new(server)=%d remove=%d get=%d get-found=%d", k.new_server, k.removed,
            k.get_calls, k.get_found);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * Expired sessions are not resumed and are removed.
 *   how "set-time": the server's session moved 10000 s into the past;
 *   how "ctx-timeout": SSL_CTX_set_timeout(server, 1), then 5 s into the past;
 *   ext: the session also comes from an external cache (NO_INTERNAL_LOOKUP
 *   when lookup_via_cb).
 */
static void scn_expired(enum hs_proto proto, const char *how, enum hs_ext e, int lookup_via_cb)
{
    const char *t = hs_begin("expired-%s-%s-%s%s", how, proto_name(proto), hs_ext_name(e),
                             lookup_via_cb ? "-no-internal-lookup" : "");
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_ext_cache(s, e, 0);
    if (lookup_via_cb)
        SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    int ctx_timeout = strcmp(how, "ctx-timeout") == 0;
    if (ctx_timeout)
        SSL_CTX_set_timeout(s, 1);
    long age = ctx_timeout ? 5 : 10000;
    if (e == HS_EXT_DER)
        hs_ext_set_age(age);
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_fact("server session timeout: %ld", c1.server_session ? SSL_SESSION_get_timeout(c1.server_session) : -1);
    age_session(c1.server_session, age);
    if (ctx_timeout) /* later sessions must outlive a slow (valgrind) run */
        SSL_CTX_set_timeout(s, 7200);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c2.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.client_reused == 0 && c2.server_reused == 0, "%s: an expired session is not resumed", t);
    CHECK(SSL_CTX_sess_timeouts(s) >= 1, "%s: counted in timeouts", t);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * A servername callback switches the connection to a second context; the
 * session context stays the first. variant: "same" (both contexts in
 * SERVER mode), "second-off" (the second context's mode is OFF), "ext"
 * (external cache on the first context, NO_INTERNAL_LOOKUP).
 */
static void scn_sni(enum hs_proto proto, const char *variant)
{
    const char *t = hs_begin("sni-switch-%s-%s", proto_name(proto), variant);
    SSL_CTX *a = hs_server_ctx("server-first", proto, SSL_OP_NO_TICKET);
    SSL_CTX *b = hs_server_ctx("server-second", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(a, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(b, HS_CB_NEW | HS_CB_REMOVE, 1);
    hs_set_sni_switch(a, b);
    if (strcmp(variant, "second-off") == 0)
        SSL_CTX_set_session_cache_mode(b, SSL_SESS_CACHE_OFF);
    if (strcmp(variant, "second-has-get-cb") == 0) {
        /* Only the second context has an external cache, consulted only
         * when the second context is the session context. (DER copies: one
         * object imported into two contexts corrupts libssl 3.0's lists.) */
        hs_set_ext_cache(b, HS_EXT_DER, 1);
        SSL_CTX_set_session_cache_mode(b, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    }
    if (strcmp(variant, "other-sid-ctx") == 0)
        SSL_CTX_set_session_id_context(b, (const unsigned char *)"other", 5);
    if (strcmp(variant, "antireplay") == 0)
        SSL_CTX_set_max_early_data(a, 1024);
    if (strcmp(variant, "ext") == 0) {
        hs_set_ext_cache(a, HS_EXT_DER, 0);
        SSL_CTX_set_session_cache_mode(a, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    }
    struct hs_conn_opts o = {.sni = "switch.example"};
    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, a, NULL, &o, &c1);
    hs_connect(c, a, c1.client_session, &o, &c2);
    hs_connect(c, a, c2.client_session, &o, &c3);
    /* The same session offered to the second context directly: its own
     * cache is a different one. */
    hs_connect(c, b, c3.client_session, NULL, &c4);
    hs_print_stats(a);
    hs_print_stats(b);
    hs_print_stats(c);
    if (strcmp(variant, "second-off") != 0 && strcmp(variant, "other-sid-ctx") != 0)
        CHECK(c2.client_reused == 1 && c2.server_reused == 1,
              "%s: resumes from the first (session) context", t);
    if (strcmp(variant, "same") == 0)
        check_served_by(a, t);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(a, b, c, NULL);
}

/* ------------------------------------------------------------------------
 * Client-side caching (SSL_SESS_CACHE_CLIENT or BOTH on the client).
 * kind: "session-id" (TLS 1.2, server NO_TICKET), "ticket" (TLS 1.2
 * tickets), "tls13".
 */
static void scn_client_cache(const char *kind, long client_mode)
{
    enum hs_proto proto = strcmp(kind, "tls13") == 0 ? HS_TLS13 : HS_TLS12;
    const char *t = hs_begin("client-cache-%s-%s", kind,
                             client_mode == SSL_SESS_CACHE_BOTH ? "both" : "client");
    SSL_CTX *s = hs_server_ctx("server", proto,
                               strcmp(kind, "session-id") == 0 ? SSL_OP_NO_TICKET : 0);
    SSL_CTX *c = hs_client_ctx("client", proto);
    SSL_CTX_set_session_cache_mode(c, client_mode);
    hs_set_callbacks(c, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_fact("client number=%ld", SSL_CTX_sess_number(c));
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_fact("client number=%ld", SSL_CTX_sess_number(c));
    hs_connect(c, s, c2.client_session, NULL, &c3);
    hs_connect(c, s, NULL, NULL, &c4);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(SSL_CTX_sess_number(c) > 0, "%s: the client context caches sessions", t);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * A connection freed without a clean shutdown: its session leaves both
 * caches.
 */
static void scn_unclean(enum hs_proto proto)
{
    hs_begin("unclean-close-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(c, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn_opts unclean = {.unclean = 1};
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, &unclean, &c2);
    hs_connect(c, s, c2.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * Cache size 1: identical in both libraries (each holds one session).
 */
static void scn_cache_size_1(enum hs_proto proto)
{
    const char *t = hs_begin("cache-size-1-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_fact("set cache size: old=%ld", SSL_CTX_sess_set_cache_size(s, 1));
    struct hs_conn conns[4], again[4];
    for (int i = 0; i < 4; i++) {
        hs_connect(c, s, NULL, NULL, &conns[i]);
        hs_fact("number=%ld cache_full=%ld", SSL_CTX_sess_number(s), SSL_CTX_sess_cache_full(s));
    }
    for (int i = 3; i >= 0; i--)
        hs_connect(c, s, conns[i].client_session, NULL, &again[i]);
    hs_print_stats(s);
    CHECK(again[3].client_reused == 1, "%s: the newest session resumes", t);
    CHECK(again[2].client_reused == 0, "%s: an evicted session does not", t);
    for (int i = 0; i < 4; i++)
        hs_conn_release(&conns[i]), hs_conn_release(&again[i]);
    hs_free_and_end(s, c, NULL);
}

/*
 * Cache size 3 with 5 clients: libssl 3.0 holds size-1 = 2 sessions,
 * libsslsess 3 (a deliberate difference). The facts are statements that
 * hold for the library in use; the raw figures are expected differences.
 */
static void scn_cache_size_n(enum hs_proto proto)
{
    enum { SIZE = 3, CLIENTS = 5 };
    const char *t = hs_begin("cache-size-%d-%s", SIZE, proto_name(proto));
    const int capacity = under_sslsess() ? SIZE : SIZE - 1;
    hs_expected_difference("capacity of a cache of size %d: %d (%s)", SIZE, capacity,
                           under_sslsess() ? "libsslsess: size" : "libssl 3.0: size-1");
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL_CTX_set_num_tickets(s, 1);
    /* TLS 1.3: anti-replay removes each resumed ticket before its
     * replacement is added, so resumptions evict nothing. */
    SSL_CTX_set_max_early_data(s, 1024);
    SSL_CTX_sess_set_cache_size(s, SIZE);
    hs_set_quiet(1);
    struct hs_conn conns[CLIENTS], again[CLIENTS];
    int labels[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        struct hs_conn_opts q = {.quiet = 1};
        hs_connect(c, s, NULL, &q, &conns[i]);
        labels[i] = hs_label_of(conns[i].server_session);
    }
    struct hs_stats st;
    hs_stats_get(s, &st);
    struct hs_counts k;
    hs_counts_get(&k);
    const int evictions = CLIENTS - capacity;
    int in_order = k.n_removed_labels == evictions;
    for (int i = 0; in_order && i < evictions; i++)
        in_order = k.removed_labels[i] == labels[i];
    hs_fact("after %d new sessions: number == capacity: %s", CLIENTS,
            st.number == capacity ? "yes" : "no");
    hs_fact("cache_full == %d - capacity: %s", CLIENTS, st.cache_full == evictions ? "yes" : "no");
    hs_fact("remove_cb called for exactly the oldest %d - capacity sessions, oldest first: %s",
            CLIENTS, in_order ? "yes" : "no");
    hs_expected_difference("number=%ld cache_full=%ld removed=%d", st.number, st.cache_full,
                           k.n_removed_labels);
    CHECK(st.number == capacity, "%s: holds capacity sessions", t);
    CHECK_PAGES(st.number == SIZE, "%s: holds SSL_CTX_sess_set_cache_size sessions (%ld)", t,
                st.number);
    /* The newest `capacity` resume; then the most recently evicted one
     * does not. */
    int resumed_all = 1;
    for (int i = evictions; i < CLIENTS; i++) {
        struct hs_conn_opts q = {.quiet = 1};
        hs_connect(c, s, conns[i].client_session, &q, &again[i]);
        resumed_all &= again[i].client_reused == 1 && again[i].server_reused == 1;
    }
    struct hs_conn_opts q = {.quiet = 1};
    struct hs_conn evicted;
    hs_connect(c, s, conns[evictions - 1].client_session, &q, &evicted);
    hs_set_quiet(0);
    hs_fact("the newest capacity sessions all resume: %s", resumed_all ? "yes" : "no");
    hs_fact("the most recently evicted session does not resume: %s",
            evicted.client_reused == 0 ? "yes" : "no");
    hs_stats_get(s, &st);
    hs_fact("hits == capacity: %s", st.hits == capacity ? "yes" : "no");
    hs_expected_difference("hits=%ld", st.hits);
    CHECK(resumed_all, "%s: the newest capacity sessions resume", t);
    hs_set_quiet(1);
    for (int i = 0; i < CLIENTS; i++) {
        hs_conn_release(&conns[i]);
        if (i >= evictions)
            hs_conn_release(&again[i]);
    }
    hs_conn_release(&evicted);
    hs_ctx_free(s);
    hs_ctx_free(c);
    hs_set_quiet(0);
    hs_end();
}

/* ------------------------------------------------------------------------
 * Auto-flush: at the 256th good handshake libssl flushes the session
 * context's expired sessions (unless NO_AUTO_CLEAR): an expired session
 * still cached is removed there. 300 connections, mostly resumptions.
 */
static void scn_autoflush(const struct mode *m)
{
    hs_begin("autoflush-%s", m->name);
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL_CTX_set_session_cache_mode(s, m->bits);
    struct hs_conn c1, c2;
    hs_connect(c, s, NULL, NULL, &c1);
    age_session(c1.server_session, 10000); /* expired, still cached */
    hs_connect(c, s, NULL, NULL, &c2);
    int resumed = 0, n = 0;
    struct hs_conn_opts q = {.quiet = 1};
    while (SSL_CTX_sess_accept_good(s) < 300) {
        struct hs_conn r;
        hs_connect(c, s, c2.client_session, &q, &r);
        resumed += r.client_reused;
        n++;
        hs_conn_release(&r);
        if (!r.ok)
            break;
    }
    hs_fact("%d resumption connections, %d resumed", n, resumed);
    hs_print_stats(s);
    hs_conn_release(&c1), hs_conn_release(&c2);
    hs_free_and_end(s, c, NULL);
}

/* ------------------------------------------------------------------------
 * Two threads doing handshakes on a shared server context: only
 * order-independent totals are printed.
 */
enum { THREAD_RESUMES = 15, RACE_ROUNDS = 12 };

struct worker {
    SSL_CTX *server;
    enum hs_proto proto;
    int full_ok, resumed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    SSL_CTX *c = hs_client_ctx("client-thread", w->proto);
    struct hs_conn_opts q = {.quiet = 1};
    struct hs_conn first;
    w->full_ok = hs_connect(c, w->server, NULL, &q, &first);
    SSL_SESSION *offer = first.client_session;
    SSL_SESSION_up_ref(offer);
    hs_conn_release(&first);
    for (int i = 0; i < THREAD_RESUMES; i++) {
        struct hs_conn r;
        hs_connect(c, w->server, offer, &q, &r);
        w->resumed += r.client_reused;
        /* TLS 1.3 stateful tickets resume once: move to the next one. */
        if (w->proto == HS_TLS13 && r.client_session != NULL) {
            SSL_SESSION_free(offer);
            offer = r.client_session;
            SSL_SESSION_up_ref(offer);
        }
        hs_conn_release(&r);
    }
    SSL_SESSION_free(offer);
    hs_ctx_free(c);
    return NULL;
}

static void scn_threads(enum hs_proto proto)
{
    const char *t = hs_begin("threads-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_quiet(1);
    struct worker w[2] = {{.server = s, .proto = proto}, {.server = s, .proto = proto}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    hs_phase("totals");
    struct hs_counts k;
    hs_counts_get(&k);
    hs_fact("full handshakes ok: %d of 2; resumed: %d of %d", w[0].full_ok + w[1].full_ok,
            w[0].resumed + w[1].resumed, 2 * THREAD_RESUMES);
    hs_fact("callbacks: new(server)=%d remove=%d", k.new_server, k.removed);
    hs_print_stats(s);
    CHECK(w[0].resumed + w[1].resumed == 2 * THREAD_RESUMES, "%s: every resumption resumed", t);
    hs_ctx_free(s);
    hs_set_quiet(0);
    hs_end();
}

/* Two threads race to resume one stateful TLS 1.3 ticket: exactly one
 * resumes, every round. */
struct racer {
    SSL_CTX *server, *client;
    SSL_SESSION *offer;
    pthread_barrier_t *barrier;
    int resumed;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct hs_conn_opts q = {.quiet = 1};
    struct hs_conn conn;
    pthread_barrier_wait(r->barrier);
    hs_connect(r->client, r->server, r->offer, &q, &conn);
    r->resumed = conn.server_reused;
    hs_conn_release(&conn);
    return NULL;
}

static void scn_race(void)
{
    hs_begin("threads-tls13-anti-replay-race");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS13, SSL_OP_NO_TICKET);
    SSL_CTX_set_max_early_data(s, 1024); /* anti-replay */
    SSL_CTX *c1 = hs_client_ctx("client-a", HS_TLS13), *c2 = hs_client_ctx("client-b", HS_TLS13);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL_CTX_set_num_tickets(s, 1);
    hs_set_quiet(1);
    int exactly_once = 0;
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    for (int round = 0; round < RACE_ROUNDS; round++) {
        struct hs_conn_opts q = {.quiet = 1};
        struct hs_conn first;
        hs_connect(c1, s, NULL, &q, &first);
        struct racer r[2] = {
            {.server = s, .client = c1, .offer = first.client_session, .barrier = &barrier},
            {.server = s, .client = c2, .offer = first.client_session, .barrier = &barrier},
        };
        pthread_t th[2];
        for (int i = 0; i < 2; i++)
            pthread_create(&th[i], NULL, racer_main, &r[i]);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        exactly_once += r[0].resumed + r[1].resumed == 1;
        hs_conn_release(&first);
    }
    pthread_barrier_destroy(&barrier);
    struct hs_stats st;
    hs_stats_get(s, &st);
    struct hs_counts k;
    hs_counts_get(&k);
    hs_set_quiet(0);
    hs_phase("totals");
    hs_fact("rounds where exactly one racer resumed: %d of %d", exactly_once, RACE_ROUNDS);
    /* Order-independent totals (misses and cb_hits depend on who wins). */
    hs_fact("number=%ld hits=%ld accept=%ld accept_good=%ld timeouts=%ld new(server)=%d", st.number,
            st.hits, st.accept, st.accept_good, st.timeouts, k.new_server);
    CHECK(exactly_once == RACE_ROUNDS, "anti-replay race: a ticket resumes exactly once per round");
    hs_set_quiet(1);
    hs_ctx_free(s);
    hs_ctx_free(c1);
    hs_ctx_free(c2);
    hs_set_quiet(0);
    hs_end();
}

/* ------------------------------------------------------------------------
 * Session-id resumption on older protocols (TLS 1.1, @SECLEVEL=0): another
 * protocol version in the cache key.
 */
static void scn_tls11(void)
{
    hs_begin("tls11-session-id");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS11, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS11);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_connect(c, s, c1.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c1.ok == 1, "tls11: the handshake works here");
    CHECK(c2.client_reused == 1, "tls11: conn 2 resumed");
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* The application sets a get-session callback, then NULL: the getter
 * follows, and resumption from the internal cache keeps working. */
static void scn_get_get_cb(void)
{
    hs_begin("get-get-cb");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    describe_get_get_cb(s);
    SSL_CTX_sess_set_get_cb(s, hs_get_cb_main());
    describe_get_get_cb(s);
    CHECK(SSL_CTX_sess_get_get_cb(s) == hs_get_cb_main(),
          "SSL_CTX_sess_get_get_cb returns the callback the application set");
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    SSL_CTX_sess_set_get_cb(s, NULL);
    describe_get_get_cb(s);
    CHECK(SSL_CTX_sess_get_get_cb(s) == NULL, "SSL_CTX_sess_get_get_cb returns NULL once reset");
    hs_connect(c, s, c1.client_session, NULL, &c2);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL_LOOKUP);
    hs_connect(c, s, c1.client_session, NULL, &c3); /* no lookup at all */
    hs_print_stats(s);
    CHECK(c2.client_reused == 1, "get-get-cb: resumes after the callback is reset to NULL");
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* A server session copied (i2d/d2i) into a second context with
 * SSL_CTX_add_session, then removed from the first. (The same object in
 * two contexts corrupts libssl 3.0's lists: its SSL_CTX_free then loops.) */
static void scn_two_contexts(enum hs_proto proto)
{
    hs_begin("two-contexts-%s", proto_name(proto));
    SSL_CTX *a = hs_server_ctx("server-a", proto, SSL_OP_NO_TICKET);
    SSL_CTX *b = hs_server_ctx("server-b", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(a, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(b, HS_CB_NEW | HS_CB_REMOVE, 1);
    struct hs_conn c1, c2, c3, c4;
    char n[16];
    hs_connect(c, a, NULL, NULL, &c1);
    unsigned char der[4096], *w = der;
    const unsigned char *r = der;
    int der_len = i2d_SSL_SESSION(c1.server_session, NULL);
    SSL_SESSION *copy = NULL;
    if (der_len > 0 && der_len <= (int)sizeof der && i2d_SSL_SESSION(c1.server_session, &w) == der_len)
        copy = d2i_SSL_SESSION(NULL, &r, der_len);
    hs_fact("SSL_CTX_add_session(server-b, copy of %s) = %d", hs_name(c1.server_session, n),
            copy ? SSL_CTX_add_session(b, copy) : -1);
    SSL_SESSION_free(copy);
    hs_fact("server-b number=%ld", SSL_CTX_sess_number(b));
    hs_connect(c, b, c1.client_session, NULL, &c2);
    hs_phase("remove");
    hs_fact("SSL_CTX_remove_session(server-a, %s) = %d", hs_name(c1.server_session, n),
            SSL_CTX_remove_session(a, c1.server_session));
    hs_fact("server-a number=%ld server-b number=%ld", SSL_CTX_sess_number(a),
            SSL_CTX_sess_number(b));
    hs_connect(c, b, c1.client_session, NULL, &c3);
    hs_connect(c, a, c1.client_session, NULL, &c4);
    hs_print_stats(a);
    hs_print_stats(b);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(a, b, c, NULL);
}

/* SSL_SESSION_set1_id on a session the server has cached (README,
 * Compatibility): the entry is found under neither id, so a client offering
 * the old id and one offering the new id both get a full handshake (libssl
 * 3.0's stale hash entry matches nothing). The new id is the old one's
 * complement: libssl's hash reads only an id's first four bytes, and would
 * find the session under a new id that shares them. The client offering the
 * new id has a copy of its session carrying that id. */
static void scn_set1_id(void)
{
    const char *t = hs_begin("set1-id-rekeyed-tls12");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, NULL, &c1);
    unsigned char old_id[SSL_MAX_SSL_SESSION_ID_LENGTH], new_id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned len = 0;
    const unsigned char *id = c1.server_session ? SSL_SESSION_get_id(c1.server_session, &len) : NULL;
    if (id == NULL || len == 0 || len > sizeof old_id) {
        CHECK(0, "%s: the first handshake left no server session with an id", t);
        hs_conn_release(&c1);
        hs_free_and_end(s, c, NULL);
        return;
    }
    memcpy(old_id, id, len);
    for (unsigned i = 0; i < len; i++)
        new_id[i] = (unsigned char)~old_id[i];
    char n[16];
    hs_phase("set1_id");
    hs_name(c1.server_session, n);
    hs_label(new_id, len); /* names the new id S2 */
    int set = SSL_SESSION_set1_id(c1.server_session, new_id, len);
    hs_fact("SSL_SESSION_set1_id(server's %s, S2) = %d", n, set);
    SSL *probe = SSL_new(s);
    hs_fact("SSL_has_matching_session_id: old id %d, new id %d", SSL_has_matching_session_id(probe, old_id, len),
            SSL_has_matching_session_id(probe, new_id, len));
    SSL_free(probe);
    hs_fact("number=%ld", SSL_CTX_sess_number(s));
    SSL_SESSION *renamed = SSL_SESSION_dup(c1.client_session);
    hs_fact("client's copy renamed to S2: %d",
            renamed != NULL && SSL_SESSION_set1_id(renamed, new_id, len) == 1);
    hs_phase("-");
    hs_connect(c, s, c1.client_session, NULL, &c2); /* offers the old id */
    hs_connect(c, s, renamed, NULL, &c3);           /* offers the new id */
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.ok && c2.client_reused == 0 && c2.server_reused == 0,
          "%s: a client offering the old id gets a full handshake", t);
    CHECK(c3.ok && c3.client_reused == 0 && c3.server_reused == 0,
          "%s: a client offering the new id gets a full handshake", t);
    SSL_SESSION_free(renamed);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* The server SSL is moved to a second context before the handshake
 * (SSL_set_SSL_CTX), optionally then duplicated with SSL_dup (whose copy
 * is created from the second context). */
static void scn_switch_before(enum hs_proto proto, int dup)
{
    hs_begin("switch-before-handshake-%s%s", proto_name(proto), dup ? "-ssl-dup" : "");
    SSL_CTX *a = hs_server_ctx("server-first", proto, SSL_OP_NO_TICKET);
    SSL_CTX *b = hs_server_ctx("server-second", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(a, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(b, HS_CB_NEW | HS_CB_REMOVE, 1);
    struct hs_conn_opts o = {.switch_to = b, .dup_server = dup};
    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, a, NULL, &o, &c1);
    hs_connect(c, a, c1.client_session, &o, &c2);
    hs_connect(c, a, c2.client_session, &o, &c3);
    hs_connect(c, b, c3.client_session, NULL, &c4);
    hs_print_stats(a);
    hs_print_stats(b);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(a, b, c, NULL);
}

/* A server requesting client certificates with an empty session id
 * context: libssl does not cache its sessions. */
static void scn_verify_peer_no_sid_ctx(void)
{
    hs_begin("verify-peer-empty-sid-ctx");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    SSL_CTX_set_session_id_context(s, (const unsigned char *)"", 0);
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, NULL, &c2);
    hs_print_stats(s);
    hs_print_stats(c);
    hs_conn_release(&c1), hs_conn_release(&c2);
    hs_free_and_end(s, c, NULL);
}

/* The same SSL objects reused with SSL_clear: the client offers the
 * session it kept. */
static void scn_ssl_clear_reuse(enum hs_proto proto)
{
    const char *t = hs_begin("ssl-clear-reuse-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL *cs = NULL, *ss = NULL;
    struct hs_conn_opts o = {.reuse_client = &cs, .reuse_server = &ss};
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, &o, &c1);
    hs_connect(c, s, NULL, &o, &c2);
    hs_connect(c, s, NULL, &o, &c3);
    hs_phase("free ssl");
    SSL_free(ss);
    SSL_free(cs);
    hs_phase("-");
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c2.client_reused == 1, "%s: a reused client SSL resumes its kept session", t);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* A fatal alert (forged record) removes the session from both caches. */
static void scn_fatal_alert(enum hs_proto proto)
{
    hs_begin("fatal-alert-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(c, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn_opts forged = {.forged_record = 1};
    struct hs_conn c1, c2, c3, c4;
    hs_connect(c, s, NULL, NULL, &c1);
    hs_connect(c, s, c1.client_session, &forged, &c2);
    hs_connect(c, s, c1.client_session, NULL, &c3);
    hs_connect(c, s, c2.client_session, NULL, &c4);
    hs_print_stats(s);
    hs_print_stats(c);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(s, c, NULL);
}

/* TLS 1.2 renegotiation, full (a new session) or abbreviated (resumes
 * the current one through the server's lookup). */
static void scn_renegotiation(int kind)
{
    const char *t = hs_begin("renegotiation-tls12-%s", kind == 2 ? "abbreviated" : "full");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12,
                               SSL_OP_NO_TICKET | SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    hs_set_callbacks(c, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn_opts reneg = {.renegotiate = kind};
    struct hs_conn c1, c2, c3;
    hs_connect(c, s, NULL, &reneg, &c1);
    hs_connect(c, s, c1.client_session, &reneg, &c2);
    hs_connect(c, s, c2.client_session, NULL, &c3);
    hs_print_stats(s);
    hs_print_stats(c);
    CHECK(c1.renegotiated == 1 && c2.renegotiated == 1, "%s: renegotiations finish", t);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3);
    hs_free_and_end(s, c, NULL);
}

/* Eviction order follows expiry as changed by SSL_SESSION_set_time and
 * SSL_SESSION_set_timeout on cached sessions, not the order of adding.
 * How many adds it takes to evict depends on the capacity (size vs
 * size-1): the facts name the sessions evicted, in order. */
static void scn_eviction_order(void)
{
    enum { SIZE = 4, CONNS = 7 };
    hs_begin("eviction-order-tls12");
    SSL_CTX *s = hs_server_ctx("server", HS_TLS12, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", HS_TLS12);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL_CTX_sess_set_cache_size(s, SIZE);
    struct hs_conn conns[CONNS];
    struct hs_conn_opts q = {.quiet = 1};
    hs_set_quiet(1);
    for (int i = 0; i < 3; i++) {
        hs_connect(c, s, NULL, &q, &conns[i]);
        hs_label_of(conns[i].server_session); /* names it S<i+1> */
    }
    /* S2 expires in 6200 s, S3 in 3000 s; S1 in 7200 s. */
    age_session(conns[1].server_session, 1000);
    SSL_SESSION_set_timeout(conns[2].server_session, 3000);
    for (int i = 3; i < CONNS; i++) {
        hs_connect(c, s, NULL, &q, &conns[i]);
        hs_label_of(conns[i].server_session);
    }
    hs_set_quiet(0);
    struct hs_counts k;
    hs_counts_get(&k);
    const int capacity = under_sslsess() ? SIZE : SIZE - 1;
    hs_fact("evictions == %d - capacity: %s", CONNS, k.n_removed_labels == CONNS - capacity ? "yes" : "no");
    for (int i = 0; i < 3 && i < k.n_removed_labels; i++)
        hs_fact("eviction %d: S%d", i + 1, k.removed_labels[i]);
    hs_expected_difference("evictions=%d", k.n_removed_labels);
    CHECK(k.n_removed_labels >= 3 && k.removed_labels[0] == 3 && k.removed_labels[1] == 2 &&
              k.removed_labels[2] == 1,
          "eviction order: earliest expiry first (S3, S2, S1)");
    hs_set_quiet(1);
    for (int i = 0; i < CONNS; i++)
        hs_conn_release(&conns[i]);
    hs_ctx_free(s);
    hs_ctx_free(c);
    hs_set_quiet(0);
    hs_end();
}

/* One SSL_CTX (TLS_method, mode BOTH) for both ends: client and server
 * sessions share one cache, and with TLS 1.2 session ids the same key. */
static void scn_shared_ctx(enum hs_proto proto)
{
    hs_begin("one-ctx-both-roles-%s", proto_name(proto));
    SSL_CTX *x = hs_dual_ctx("shared", proto, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_BOTH);
    hs_set_callbacks(x, HS_CB_NEW | HS_CB_REMOVE, 0);
    struct hs_conn c1, c2, c3, c4;
    hs_connect(x, x, NULL, NULL, &c1);
    hs_fact("number=%ld", SSL_CTX_sess_number(x));
    hs_connect(x, x, c1.client_session, NULL, &c2);
    hs_connect(x, x, c2.client_session, NULL, &c3);
    hs_connect(x, x, c1.client_session, NULL, &c4);
    hs_print_stats(x);
    hs_conn_release(&c1), hs_conn_release(&c2), hs_conn_release(&c3), hs_conn_release(&c4);
    hs_free_and_end(x, NULL);
}

/* The application frees its contexts while SSLs still hold them: the
 * contexts (and their caches) die with the last SSL. */
static void scn_ssl_outlives_ctx(enum hs_proto proto)
{
    const char *t = hs_begin("ssl-outlives-ctx-%s", proto_name(proto));
    SSL_CTX *s = hs_server_ctx("server", proto, SSL_OP_NO_TICKET);
    SSL_CTX *c = hs_client_ctx("client", proto);
    hs_set_callbacks(s, HS_CB_NEW | HS_CB_REMOVE, 0);
    SSL *cs = NULL, *ss = NULL;
    struct hs_conn_opts o = {.reuse_client = &cs, .reuse_server = &ss};
    struct hs_conn c1, c2;
    hs_connect(c, s, NULL, &o, &c1);
    hs_print_stats(s);
    hs_phase("SSL_CTX_free(server) while in use");
    SSL_CTX_free(s);
    SSL_CTX_free(c);
    hs_phase("-");
    hs_connect(NULL, NULL, NULL, &o, &c2); /* the SSLs, cleared and reused */
    hs_fact("server ctx stats through the SSL:");
    hs_print_stats(SSL_get_SSL_CTX(ss));
    hs_phase("SSL_free(server)");
    SSL_free(ss);
    hs_phase("SSL_free(client)");
    SSL_free(cs);
    hs_phase("-");
    CHECK(c2.client_reused == 1, "%s: resumes on a context the application already freed", t);
    hs_conn_release(&c1), hs_conn_release(&c2);
    hs_end();
}

/* ------------------------------------------------------------------------ */

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    hs_init_credentials();

    scn_tls12_session_id();
    scn_tls12_tickets();
    scn_tls13_stateful("no-ticket");
    scn_tls13_stateful("remove-cb");
    scn_tls13_stateful("early-data");
    scn_tls13_stateless();

    for (int p = 0; p < 3; p++)
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            for (int e = HS_EXT_NONE; e <= HS_EXT_DER; e++)
                scn_mode(p == 0 ? HS_TLS12 : HS_TLS13, p == 2, &modes[i], (enum hs_ext)e);

    for (int p = HS_TLS12; p <= HS_TLS13; p++) {
        scn_expired((enum hs_proto)p, "set-time", HS_EXT_NONE, 0);
        scn_expired((enum hs_proto)p, "ctx-timeout", HS_EXT_NONE, 0);
        scn_expired((enum hs_proto)p, "set-time", HS_EXT_REF, 0);
        scn_expired((enum hs_proto)p, "set-time", HS_EXT_REF, 1);
        scn_expired((enum hs_proto)p, "set-time", HS_EXT_DER, 1);
    }

    for (int p = HS_TLS12; p <= HS_TLS13; p++) {
        scn_sni((enum hs_proto)p, "same");
        scn_sni((enum hs_proto)p, "second-off");
        scn_sni((enum hs_proto)p, "ext");
    }
    scn_sni(HS_TLS13, "antireplay");
    scn_sni(HS_TLS12, "second-has-get-cb");
    scn_sni(HS_TLS13, "second-has-get-cb");
    scn_sni(HS_TLS12, "other-sid-ctx");
    scn_sni(HS_TLS13, "other-sid-ctx");

    scn_tls11();
    scn_get_get_cb();
    scn_verify_peer_no_sid_ctx();
    scn_set1_id();
    for (int p = HS_TLS12; p <= HS_TLS13; p++) {
        scn_two_contexts((enum hs_proto)p);
        scn_switch_before((enum hs_proto)p, 0);
        scn_switch_before((enum hs_proto)p, 1);
        scn_ssl_clear_reuse((enum hs_proto)p);
        scn_fatal_alert((enum hs_proto)p);
        scn_shared_ctx((enum hs_proto)p);
        scn_ssl_outlives_ctx((enum hs_proto)p);
    }

    scn_client_cache("session-id", SSL_SESS_CACHE_CLIENT);
    scn_client_cache("ticket", SSL_SESS_CACHE_CLIENT);
    scn_client_cache("tls13", SSL_SESS_CACHE_CLIENT);
    scn_client_cache("session-id", SSL_SESS_CACHE_BOTH);
    scn_client_cache("tls13", SSL_SESS_CACHE_BOTH);

    scn_unclean(HS_TLS12);
    scn_unclean(HS_TLS13);

    scn_cache_size_1(HS_TLS12);
    scn_cache_size_1(HS_TLS13);
    scn_cache_size_n(HS_TLS12);
    scn_cache_size_n(HS_TLS13);
    scn_eviction_order();
    scn_renegotiation(1);
    scn_renegotiation(2);

    scn_autoflush(&modes[2]); /* server */
    scn_autoflush(&modes[4]); /* server | no-auto-clear */
    scn_autoflush(&modes[3]); /* both */

    scn_threads(HS_TLS12);
    scn_threads(HS_TLS13);
    scn_race();

    hs_free_credentials();
    return check_summary("handshake");
}
