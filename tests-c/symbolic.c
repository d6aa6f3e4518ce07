/*
 * tests-c/symbolic.c: under a -Bsymbolic libssl, an application's removes
 * and flushes reach libssl's own cache (README, Compatibility).
 *
 * Such a libssl binds its own SSL_CTX_add_session: the sessions its
 * handshakes store stay in its own cache, which libsslsess does not hold.
 * SSL_CTX_remove_session and SSL_CTX_flush_sessions from the application
 * reach libsslsess, which must forward them to libssl, or the session stays
 * there and resumes. symbolic.sh runs this with LD_LIBRARY_PATH at the
 * relinked libssl.so.3, once with libsslsess preloaded and once without it
 * (the reference): the same CHECKs hold in both.
 *
 * Server and client in one process over BIO pairs (tls_fixture.h), TLS 1.2
 * session ids and TLS 1.3 stateful tickets (SSL_OP_NO_TICKET, one ticket).
 * The remove callback logs the id of every session it gets: a session must
 * be reported exactly once (libsslsess once reported it a second time after
 * libssl's own remove had).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "check.h"
#include "tls_fixture.h"

#include <dlfcn.h>
#include <openssl/err.h>
#include <string.h>

static EVP_PKEY *key;
static X509 *cert;

/* The remove callback's log: the id of each session reported. */
#define MAX_REMOVED 64
static struct {
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned int len;
} removed[MAX_REMOVED];
static int n_removed;

static void remove_cb(SSL_CTX *ctx, SSL_SESSION *s)
{
    (void)ctx;
    if (n_removed < MAX_REMOVED) {
        unsigned int len = 0;
        const unsigned char *id = SSL_SESSION_get_id(s, &len);
        memcpy(removed[n_removed].id, id, len);
        removed[n_removed].len = len;
    }
    n_removed++;
}

/* Calls of the remove callback for s's id. */
static int reported(const SSL_SESSION *s)
{
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    int n = 0;
    for (int i = 0; i < n_removed && i < MAX_REMOVED; i++)
        n += removed[i].len == len && memcmp(removed[i].id, id, len) == 0;
    return n;
}

/* The server end of a scenario's first connection, kept: its protocol
 * version is the one SSL_has_matching_session_id looks up with (a new
 * SSL's is TLS 1.3 whatever the bounds). */
static SSL *probe;

/* Is s's id cached in the probe's context, as SSL_has_matching_session_id
 * sees it? */
static int has_id(const SSL_SESSION *s)
{
    unsigned int len = 0;
    const unsigned char *id = SSL_SESSION_get_id(s, &len);
    return probe != NULL ? SSL_has_matching_session_id(probe, id, len) : -1;
}

struct conn {
    int ok, reused;
    SSL_SESSION *client, *server; /* references, or NULL */
};

/* One connection, client offering `offer` (may be NULL): handshake, TLS 1.3
 * tickets taken in, clean shutdown of both ends (so libssl keeps the
 * session), both freed. */
static void connect_once(SSL_CTX *cctx, SSL_CTX *sctx, SSL_SESSION *offer, int tls13, struct conn *out)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
    memset(out, 0, sizeof *out);
    if (tls_pair_join(c, s) && (offer == NULL || SSL_set_session(c, offer) == 1) && tls_pair_handshake(c, s)
        && (!tls13 || tls_pair_take_tickets(c))) {
        out->ok = 1;
        out->reused = SSL_session_reused(s);
        out->client = SSL_get1_session(c);
        out->server = SSL_get1_session(s);
        SSL_shutdown(c);
        SSL_shutdown(s);
    }
    SSL_free(c);
    if (probe == NULL && out->ok)
        probe = s;
    else
        SSL_free(s);
    ERR_clear_error();
}

static void release(struct conn *c)
{
    SSL_SESSION_free(c->client);
    SSL_SESSION_free(c->server);
    c->client = c->server = NULL;
}

/* Sessions A and B cached by libssl itself; A removed, then the rest
 * flushed. Offering B after A's removal resumes: the cache still works,
 * and A's full handshake is the removal's doing. */
static void scenario(int tls13)
{
    const char *p = tls13 ? "TLS 1.3 stateful tickets" : "TLS 1.2 session ids";
    int version = tls13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    printf("# %s\n", p);
    SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_use_certificate(sctx, cert);
    SSL_CTX_use_PrivateKey(sctx, key);
    SSL_CTX_set_min_proto_version(sctx, version);
    SSL_CTX_set_max_proto_version(sctx, version);
    SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(sctx, 1);
    SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"symbolic", 8);
    SSL_CTX_sess_set_remove_cb(sctx, remove_cb);
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    struct conn a, b, a_again, b_again, a_after_flush, b_after_flush;
    connect_once(cctx, sctx, NULL, tls13, &a);
    connect_once(cctx, sctx, NULL, tls13, &b);
    long own = libssl_own_ctrl(sctx, SSL_CTRL_SESS_NUMBER);
    CHECK(a.ok && b.ok && a.server != NULL && b.server != NULL && own == 2 && SSL_CTX_sess_number(sctx) == 2
              && has_id(a.server) == 1,
          "%s: two full handshakes; their sessions are in libssl's own cache (libssl counts %ld)", p, own);

    /* Remove. */
    n_removed = 0;
    int r = a.server != NULL ? SSL_CTX_remove_session(sctx, a.server) : -1;
    CHECK(r == 1, "%s: SSL_CTX_remove_session(A) finds A in libssl's own cache (returns %d)", p, r);
    CHECK(a.server != NULL && reported(a.server) == 1 && n_removed == 1,
          "%s: the remove callback is called exactly once, for A (%d for A, %d in all)", p,
          a.server != NULL ? reported(a.server) : -1, n_removed);
    own = libssl_own_ctrl(sctx, SSL_CTRL_SESS_NUMBER);
    CHECK(own == 1 && SSL_CTX_sess_number(sctx) == 1 && a.server != NULL && has_id(a.server) == 0
              && b.server != NULL && has_id(b.server) == 1 && SSL_SESSION_is_resumable(a.server) == 0,
          "%s: A left libssl's own cache (libssl counts %ld) and is non-resumable", p, own);
    connect_once(cctx, sctx, a.client, tls13, &a_again);
    connect_once(cctx, sctx, b.client, tls13, &b_again);
    CHECK(a_again.ok && !a_again.reused, "%s: a client offering the removed A gets a full handshake", p);
    CHECK(b_again.ok && b_again.reused, "%s: a client offering B still resumes", p);

    /* Flush: B, A's new session, and (TLS 1.3) the ticket B's resumption
     * issued. */
    own = libssl_own_ctrl(sctx, SSL_CTRL_SESS_NUMBER);
    n_removed = 0;
    SSL_CTX_flush_sessions(sctx, 0);
    CHECK(own == (tls13 ? 3 : 2) && libssl_own_ctrl(sctx, SSL_CTRL_SESS_NUMBER) == 0 && SSL_CTX_sess_number(sctx) == 0
              && b.server != NULL && has_id(b.server) == 0,
          "%s: SSL_CTX_flush_sessions(ctx, 0) empties libssl's own cache (%ld sessions before)", p, own);
    CHECK(n_removed == own && b.server != NULL && reported(b.server) == 1 && a_again.server != NULL
              && reported(a_again.server) == 1,
          "%s: the flush calls the remove callback exactly once per session (%d calls for %ld sessions)", p,
          n_removed, own);
    connect_once(cctx, sctx, a_again.client, tls13, &a_after_flush);
    connect_once(cctx, sctx, b.client, tls13, &b_after_flush);
    CHECK(a_after_flush.ok && !a_after_flush.reused && b_after_flush.ok && !b_after_flush.reused,
          "%s: clients offering flushed sessions get full handshakes", p);
    release(&a), release(&b), release(&a_again), release(&b_again);
    release(&a_after_flush), release(&b_after_flush);
    SSL_free(probe);
    probe = NULL;
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

int main(void)
{
    if (!make_self_signed("localhost", &key, &cert)) {
        fprintf(stderr, "symbolic: cannot make a key and certificate\n");
        return 2;
    }
    scenario(0);
    scenario(1);
    X509_free(cert);
    EVP_PKEY_free(key);
    return check_summary("symbolic");
}
