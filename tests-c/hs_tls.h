/*
 * tests-c/hs_tls.h: the machinery of the handshake test bed (handshake.c).
 *
 * TLS client and server in one process over a BIO pair, with an in-memory
 * key and self-signed certificate; session, callback and statistics facts
 * printed as deterministic lines "[scenario] phase: fact" (no pointers, no
 * times: sessions are named S1, S2, ... by their id, in the order the run
 * first meets them; "S-" is a session with an empty id).
 */
#ifndef SSLSESS_TESTS_HS_TLS_H
#define SSLSESS_TESTS_HS_TLS_H

#include <openssl/ssl.h>
#include <stdint.h>

/* --- Output ------------------------------------------------------------ */

/* Starts a scenario: its tag (printf-style, e.g. "unclean-close-%s"),
 * fresh session names, counters, external cache, connection numbering.
 * Returns the tag (valid until the next hs_begin). */
const char *hs_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends it: frees the external cache. */
void hs_end(void);
/* The current scenario's tag. */
const char *hs_tag(void);
/* Sets this thread's phase ("conn 3", "setup", "free server", ...). */
void hs_phase(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "[tag] phase: fact". */
void hs_fact(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "expected-difference: [tag] fact" (a fact the script does not diff
 * because libsslsess deliberately differs from libssl 3.0 there). */
void hs_expected_difference(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Callbacks count but print nothing while this is set (threads, bulk runs). */
void hs_set_quiet(int quiet);

/* The name of a session by its id: 0 for an empty id, else 1, 2, ... */
int hs_label(const unsigned char *id, unsigned len);
int hs_label_of(const SSL_SESSION *s);
/* "S3", "S-" or "none" (NULL). */
const char *hs_name(const SSL_SESSION *s, char buf[16]);

/* --- Contexts ------------------------------------------------------------ */

enum hs_proto { HS_TLS12 = 1, HS_TLS13 = 2, HS_TLS11 = 3 /* with @SECLEVEL=0 */ };

void hs_init_credentials(void);
void hs_free_credentials(void);
/* A server context with the test certificate, session id context "hs",
 * both bounds at proto, and options added. */
SSL_CTX *hs_server_ctx(const char *name, enum hs_proto proto, uint64_t options);
/* A context made with TLS_method() and the server's settings, for both
 * roles at once. */
SSL_CTX *hs_dual_ctx(const char *name, enum hs_proto proto, uint64_t options);
/* A client context, both bounds at proto, no verification. */
SSL_CTX *hs_client_ctx(const char *name, enum hs_proto proto);
/* The name given at creation ("?" for an unknown context). */
const char *hs_ctx_name(const SSL_CTX *ctx);
/* SSL_CTX_free under the phase "free NAME" (remove callbacks of the final
 * flush print there). NULL is ignored. */
void hs_ctx_free(SSL_CTX *ctx);
/* The usual end of a scenario: hs_ctx_free of each context given, in that
 * order (the list ends with NULL), then hs_end. */
void hs_free_and_end(SSL_CTX *ctx, ...) __attribute__((sentinel));

/* --- Callbacks ----------------------------------------------------------- */

#define HS_CB_NEW 1
#define HS_CB_REMOVE 2

/* Sets the printing new/remove callbacks on ctx. With alt, a second set of
 * functions (printed "new_cb(alt)"), to tell which context's fired. */
void hs_set_callbacks(SSL_CTX *ctx, int which, int alt);

/* An application's external cache, fed by the new-session callback and
 * read by the get-session callback:
 *   HS_EXT_REF: new_cb keeps a reference (returns 1); get_cb returns that
 *               object and leaves *copy at 1 (libssl takes its own ref);
 *   HS_EXT_DER: new_cb stores i2d bytes (returns 0); get_cb returns a fresh
 *               d2i object and sets *copy = 0 (libssl takes it over).
 * Entries stay when libssl removes the session. */
enum hs_ext { HS_EXT_NONE = 0, HS_EXT_REF, HS_EXT_DER };
const char *hs_ext_name(enum hs_ext e);
/* Sets ctx's get-session callback to the external cache's (and makes its
 * new-session callback store into it). alt as for hs_set_callbacks. */
void hs_set_ext_cache(SSL_CTX *ctx, enum hs_ext mode, int alt);
/* The application get-session callback functions, to compare with
 * SSL_CTX_sess_get_get_cb. */
typedef SSL_SESSION *(*hs_get_cb_fn)(SSL *, const unsigned char *, int, int *);
hs_get_cb_fn hs_get_cb_main(void);
/* When set, the get callback moves each session it returns to time
 * now - age (0 = leave the time alone). */
void hs_ext_set_age(long age);

/* What the callbacks saw in this scenario (thread-safe counters). */
struct hs_counts {
    int new_server, new_client, removed, get_calls, get_found;
    int removed_labels[512];
    int n_removed_labels;
};
void hs_counts_get(struct hs_counts *out);

/* --- Connections --------------------------------------------------------- */

struct hs_conn_opts {
    const char *sni;   /* server name the client sends (NULL: none) */
    int unclean;       /* free both ends without SSL_shutdown */
    int quiet;         /* print nothing about this connection */
    SSL_CTX *switch_to; /* SSL_set_SSL_CTX(server, switch_to) before the handshake */
    int dup_server;    /* the server is SSL_dup of the SSL made from sctx */
    /* Reuse: when *reuse_client / *reuse_server are set, SSL_clear them and
     * use them instead of new ones; when reuse_client / reuse_server are
     * given, keep the connection's SSLs there instead of freeing them. */
    SSL **reuse_client, **reuse_server;
    int forged_record; /* after the exchange, the server gets a forged record
                          (fatal alert both ways) */
    int renegotiate;   /* after the exchange, the client renegotiates:
                          1 SSL_renegotiate, 2 SSL_renegotiate_abbreviated */
};

struct hs_conn {
    int number;                 /* connection number in the scenario */
    int ok;                     /* handshake and data exchange succeeded */
    int client_reused, server_reused;
    int renegotiated;           /* the renegotiation finished */
    int server_has_match;       /* SSL_has_matching_session_id(server, its id) */
    int client_has_match;       /* likewise on the client */
    SSL_SESSION *client_session; /* SSL_get1_session of the client (or NULL) */
    SSL_SESSION *server_session; /* SSL_get1_session of the server (or NULL) */
};

/* One connection: client (from cctx, offering `offer` when not NULL) and
 * server (from sctx) over a BIO pair: handshake, one byte each way (the
 * client reads TLS 1.3 tickets), shutdown, free. Prints one line about it
 * unless quiet. Returns out->ok. */
int hs_connect(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer,
               const struct hs_conn_opts *opts, struct hs_conn *out);
/* Frees the sessions an hs_conn holds. */
void hs_conn_release(struct hs_conn *c);

/* Switches to the context given as argument when the client asks for
 * "switch.example" (SSL_set_SSL_CTX), printing that it did. */
void hs_set_sni_switch(SSL_CTX *from, SSL_CTX *to);

/* --- Statistics ------------------------------------------------------- */

struct hs_stats {
    long number, connect, connect_good, connect_reneg, accept, accept_good,
        accept_reneg, hits, cb_hits, misses, timeouts, cache_full;
};
void hs_stats_get(SSL_CTX *ctx, struct hs_stats *out);
/* Prints "stats NAME: number=.. connect=.. ... cache_full=..". */
void hs_print_stats(SSL_CTX *ctx);

#endif
