/*
 * tests-c/self_signed.h: an in-memory P-256 key and self-signed certificate
 * for the programs that run TLS servers in-process (handshake test bed,
 * stress test, benchmark). No files, no CLI.
 */
#ifndef SSLSESS_TESTS_SELF_SIGNED_H
#define SSLSESS_TESTS_SELF_SIGNED_H

#include <openssl/evp.h>
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

#endif
