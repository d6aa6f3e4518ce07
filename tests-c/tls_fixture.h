/*
 * tests-c/tls_fixture.h: what the programs that run TLS client and server
 * in one process (handshake test bed, stress test, benchmark) share: an
 * in-memory P-256 key and self-signed certificate, and a client/server pair
 * joined by a BIO pair. No files, no sockets, no CLI.
 */
#ifndef SSLSESS_TESTS_TLS_FIXTURE_H
#define SSLSESS_TESTS_TLS_FIXTURE_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Sets *key and *cert (subject and issuer CN=cn, valid from an hour ago for
 * a day); returns 1, or 0 with both NULL on failure. */
static __attribute__((unused)) int make_self_signed(const char *cn, EVP_PKEY **key, X509 **cert)
{
    *key = EVP_EC_gen("P-256");
    *cert = X509_new();
    if (*key != NULL && *cert != NULL) {
        X509_set_version(*cert, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(*cert), 1);
        X509_gmtime_adj(X509_getm_notBefore(*cert), -3600);
        X509_gmtime_adj(X509_getm_notAfter(*cert), 86400);
        X509_set_pubkey(*cert, *key);
        X509_NAME *name = X509_get_subject_name(*cert);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
        X509_set_issuer_name(*cert, name);
        if (X509_sign(*cert, *key, EVP_sha256()) > 0)
            return 1;
    }
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return 0;
}

/* Joins client c and server s over a new BIO pair; 1, or 0 on failure. */
static __attribute__((unused)) int tls_pair_join(SSL *c, SSL *s)
{
    BIO *bc = NULL, *bs = NULL;
    if (c == NULL || s == NULL || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
        return 0;
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    return 1;
}

/* Steps both ends' handshakes until both finish (at most 50 rounds); 1 when
 * they did, 0 on an error or when they do not. */
static __attribute__((unused)) int tls_pair_handshake(SSL *c, SSL *s)
{
    int cdone = 0, sdone = 0;
    for (int round = 0; !(cdone && sdone); round++) {
        if (round > 50)
            return 0;
        SSL *side[2] = {c, s};
        int *done[2] = {&cdone, &sdone};
        for (int i = 0; i < 2; i++) {
            if (*done[i])
                continue;
            int r = SSL_do_handshake(side[i]);
            if (r == 1)
                *done[i] = 1;
            else if (SSL_get_error(side[i], r) != SSL_ERROR_WANT_READ)
                return 0;
        }
    }
    return 1;
}

/* TLS 1.3: the client takes in the NewSessionTicket(s) the server sent
 * after the handshake (a read that finds no application data); 1, or 0. */
static __attribute__((unused)) int tls_pair_take_tickets(SSL *c)
{
    unsigned char byte;
    int r = SSL_read(c, &byte, 1);
    return r <= 0 && SSL_get_error(c, r) == SSL_ERROR_WANT_READ;
}

#endif
