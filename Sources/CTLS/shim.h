// libssl for the main listener's in-process TLS (HTTPServer/TLS.swift). What Swift cannot import from the
// headers — function-like macros, the option bits, the ALPN callback — is wrapped here as static inline
// functions; the policy (versions, ciphers) is written once, in spc_tls_server_ctx_new.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <time.h>

/// ALPN (RFC 7301): the server speaks HTTP/1.1 only. A client offering it gets it; a client offering only
/// other protocols (h2 alone) is refused with the no_application_protocol alert instead of being answered in a
/// protocol it did not ask for.
static inline int spc_tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                      const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char http11[] = { 8, 'h', 't', 't', 'p', '/', '1', '.', '1' };
    unsigned char *selected = NULL;
    unsigned char selectedLength = 0;
    if (SSL_select_next_proto(&selected, &selectedLength, http11, sizeof http11, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        *outlen = selectedLength;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/// A server context: TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE key exchange with AEAD ciphers (Mozilla's
/// "intermediate" list without the finite-field DHE suites), so no RC4/3DES/CBC-SHA1/export/NULL suite is ever
/// chosen; no renegotiation, no compression; partial writes and moving write buffers, as the event loop needs.
static inline SSL_CTX *spc_tls_server_ctx_new(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        || !SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                         "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                         "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE
                             | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, spc_tls_alpn_select, NULL);
    return ctx;
}

/// The leaf certificate's notAfter as Unix seconds (0 when unknown).
static inline long long spc_tls_ctx_not_after(SSL_CTX *ctx) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    struct tm t;
    if (!cert || !ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t)) return 0;
    return (long long)timegm(&t);
}

/// The leaf certificate's subject, one line (RFC 2253), into buf; 0 on failure.
static inline int spc_tls_ctx_subject(SSL_CTX *ctx, char *buf, int size) {
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (!cert || size <= 0) return 0;
    BIO *bio = BIO_new(BIO_s_mem());
    if (!bio) return 0;
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    int n = BIO_read(bio, buf, size - 1);
    BIO_free(bio);
    if (n < 0) n = 0;
    buf[n] = 0;
    return n;
}

static inline int spc_err_reason(unsigned long code) { return ERR_GET_REASON(code); }
static inline int spc_err_lib(unsigned long code) { return ERR_GET_LIB(code); }
