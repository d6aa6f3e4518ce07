/* sni_server.c: a small, unmodified libssl server (built with build_plain,
 * linked to libssl only) whose servername callback switches the connection
 * to a second SSL_CTX with SSL_set_SSL_CTX, as virtual-host servers do.
 *
 *   sni_server PORT CERT KEY OTHER_CERT OTHER_KEY CONNS TLS(1.2|1.3)
 *
 * Listens on 127.0.0.1:PORT and serves CONNS connections. Both contexts
 * have SSL_OP_NO_TICKET (TLS 1.2: session ids; TLS 1.3: stateful tickets),
 * so resumption depends on the server's session cache, which belongs to the
 * SESSION context: the "default" context each SSL is created from, even
 * after the switch to "other". Per connection it prints one line (context
 * served, resumed or not); at the end it prints both contexts' statistics.
 * stdout is the same with plain libssl and with libsslsess preloaded; the
 * context pointers go to stderr (to match them against SSLSESS_LOG=debug).
 *
 * Bounded: alarm(60) ends it, accept waits at most 10 s, socket reads and
 * writes time out after 10 s.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static SSL_CTX *ctx_default, *ctx_other;
static int switched;

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name != NULL && strcmp(name, "other") == 0) {
        if (SSL_set_SSL_CTX(ssl, ctx_other) != ctx_other)
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        switched++;
        /* stderr, unbuffered like libsslsess's trace: shows where the
         * switch falls relative to the session lookup. */
        fprintf(stderr, "sni_server: servername callback: switched to ctx other\n");
    }
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *make_ctx(const char *cert, const char *key, int version)
{
    static const unsigned char sid_ctx[] = "sni_server";
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL
        || !SSL_CTX_set_min_proto_version(ctx, version)
        || !SSL_CTX_set_max_proto_version(ctx, version)
        || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
        || !SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
        ERR_print_errors_fp(stderr);
        exit(2);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    return ctx;
}

static void print_stats(const char *name, SSL_CTX *ctx)
{
    printf("stats %s: number=%ld hits=%ld misses=%ld timeouts=%ld cb_hits=%ld"
           " accept=%ld accept_good=%ld cache_full=%ld\n",
           name, SSL_CTX_sess_number(ctx), SSL_CTX_sess_hits(ctx),
           SSL_CTX_sess_misses(ctx), SSL_CTX_sess_timeouts(ctx),
           SSL_CTX_sess_cb_hits(ctx), SSL_CTX_sess_accept(ctx),
           SSL_CTX_sess_accept_good(ctx), SSL_CTX_sess_cache_full(ctx));
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: %s PORT CERT KEY OTHER_CERT OTHER_KEY CONNS 1.2|1.3\n",
                argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    int conns = atoi(argv[6]);
    int version = strcmp(argv[7], "1.3") == 0 ? TLS1_3_VERSION : TLS1_2_VERSION;

    alarm(60);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    ctx_default = make_ctx(argv[2], argv[3], version);
    ctx_other = make_ctx(argv[4], argv[5], version);
    SSL_CTX_set_tlsext_servername_callback(ctx_default, servername_cb);
    fprintf(stderr, "sni_server: contexts default=%p other=%p\n",
            (void *)ctx_default, (void *)ctx_other);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0
        || bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 8) != 0) {
        perror("sni_server: listen");
        return 2;
    }

    int resumed = 0, failed = 0;
    for (int i = 0; i < conns; i++) {
        struct pollfd pfd = { .fd = lfd, .events = POLLIN };
        if (poll(&pfd, 1, 10000) != 1) {
            fprintf(stderr, "sni_server: no connection within 10 s\n");
            failed++;
            break;
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            perror("sni_server: accept");
            failed++;
            continue;
        }
        struct timeval tv = { .tv_sec = 10 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

        SSL *ssl = SSL_new(ctx_default);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            printf("conn %d: handshake failed\n", i);
            ERR_print_errors_fp(stderr);
            failed++;
        } else {
            SSL_CTX *now = SSL_get_SSL_CTX(ssl);
            int reused = SSL_session_reused(ssl);
            resumed += reused;
            printf("conn %d: %s servername=%s ctx=%s reused=%d\n", i,
                   SSL_get_version(ssl),
                   SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)
                       ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : "(none)",
                   now == ctx_other ? "other" : now == ctx_default ? "default" : "?",
                   reused);
            /* Clean shutdown: close_notify, then wait for the peer's close
             * (or EOF) so TLS 1.3 clients read their tickets first. */
            if (SSL_shutdown(ssl) == 0) {
                char buf[256];
                while (SSL_read(ssl, buf, sizeof buf) > 0)
                    ;
            }
        }
        ERR_clear_error();
        SSL_free(ssl);
        close(fd);
    }
    close(lfd);

    printf("resumed %d of %d connections, %d switched to ctx other, %d failed\n",
           resumed, conns, switched, failed);
    print_stats("default", ctx_default);
    print_stats("other", ctx_other);
    SSL_CTX_free(ctx_other);
    SSL_CTX_free(ctx_default);
    return failed ? 1 : 0;
}
