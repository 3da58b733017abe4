/*
 * wolfSSL on the libuv loop with custom I/O callbacks (DEPS.md 3): ciphertext read by
 * libuv is appended to a per-connection buffer that the recv callback hands to wolfSSL
 * (WANT_READ when empty); the send callback copies wolfSSL's records into uv_write
 * requests. Plaintext leaves through tam_net__conn_rx; responses enter through
 * tam_net__tls_write one record at a time, so the write pump's queue ceiling bounds what
 * is buffered. The only file that includes the wolfSSL TLS API.
 */
#include <wolfssl/options.h> /* must come first: it carries the library's build flags */

#include <wolfssl/ssl.h>

#include <wolfssl/openssl/evp.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

/* Ciphertext buffered per connection: a partial record plus what one read may add while
 * decrypting is paused for backpressure. */
#define TLS_IN_MAX (2 * TAM_NET_READ_BUF + (size_t)32 * 1024)

/* TLS 1.3 suites, then TLS 1.2 ECDHE with AEAD only (used when allow_tls12). */
static const char cipher_list[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct tam_tls_ctx {
    WOLFSSL_CTX *ctx;
    unsigned refs;
    bool tls12;
};

struct tam_net_tls {
    WOLFSSL *ssl;
    struct tam_tls_ctx *ctx; /* one reference, held for the connection's lifetime */
    struct tam_buf in;       /* ciphertext not yet consumed by wolfSSL */
    size_t in_off;
    bool handshake_done;
    bool failed;
};

/* ---- Contexts ---- */

/*
 * wolfSSL_CTX_check_private_key() accepts a mismatched EC key in this build (5.5.4), so
 * the pair is checked by signing a probe with the key and verifying it with the leaf
 * certificate's public key.
 */
static bool key_matches_cert(WOLFSSL_CTX *w)
{
    static const unsigned char probe[] = "tamgate key/certificate check";
    WOLFSSL_X509 *leaf = wolfSSL_CTX_get0_certificate(w);
    WOLFSSL_EVP_PKEY *priv = wolfSSL_CTX_get0_privatekey(w);
    WOLFSSL_EVP_PKEY *pub = leaf != NULL ? wolfSSL_X509_get_pubkey(leaf) : NULL;
    WOLFSSL_EVP_MD_CTX *md = wolfSSL_EVP_MD_CTX_new();
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    bool ok = priv != NULL && pub != NULL && md != NULL &&
              wolfSSL_EVP_DigestSignInit(md, NULL, wolfSSL_EVP_sha256(), NULL, priv) == 1 &&
              wolfSSL_EVP_DigestSignUpdate(md, probe, sizeof(probe)) == 1 &&
              wolfSSL_EVP_DigestSignFinal(md, sig, &siglen) == 1;
    if (md != NULL) {
        wolfSSL_EVP_MD_CTX_free(md);
    }
    md = ok ? wolfSSL_EVP_MD_CTX_new() : NULL;
    ok = md != NULL &&
         wolfSSL_EVP_DigestVerifyInit(md, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
         wolfSSL_EVP_DigestVerifyUpdate(md, probe, sizeof(probe)) == 1 &&
         wolfSSL_EVP_DigestVerifyFinal(md, sig, siglen) == 1;
    if (md != NULL) {
        wolfSSL_EVP_MD_CTX_free(md);
    }
    wolfSSL_EVP_PKEY_free(pub); /* NULL-safe */
    return ok;
}

static int load_ctx(WOLFSSL_CTX *w, const struct tam_tls_options *opt)
{
    int min = opt->allow_tls12 ? WOLFSSL_TLSV1_2 : WOLFSSL_TLSV1_3;
    if (wolfSSL_CTX_SetMinVersion(w, min) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(w, cipher_list) != WOLFSSL_SUCCESS) {
        return TAM_ECRYPTO;
    }
    if (wolfSSL_CTX_use_certificate_chain_file(w, opt->cert_file) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_file(w, opt->key_file, WOLFSSL_FILETYPE_PEM) !=
            WOLFSSL_SUCCESS ||
        wolfSSL_CTX_check_private_key(w) != WOLFSSL_SUCCESS || !key_matches_cert(w)) {
        return TAM_EKEY;
    }
    wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_NONE, NULL); /* no client certificates */
    return TAM_OK;
}

int tam_tls_ctx_create(const struct tam_tls_options *opt, struct tam_tls_ctx **out)
{
    if (opt == NULL || opt->cert_file == NULL || opt->key_file == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        return TAM_ECRYPTO;
    }
    struct tam_tls_ctx *t = tam_calloc(1, sizeof(*t));
    WOLFSSL_CTX *w = wolfSSL_CTX_new(wolfTLS_server_method());
    int err = (t == NULL || w == NULL) ? TAM_ENOMEM : load_ctx(w, opt);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=tls_ctx_failed cert=%s err=%s", opt->cert_file,
                tam_net__errname(err));
        wolfSSL_CTX_free(w);
        tam_free(t);
        wolfSSL_Cleanup();
        return err;
    }
    t->ctx = w;
    t->refs = 1;
    t->tls12 = opt->allow_tls12;
    *out = t;
    return TAM_OK;
}

struct tam_tls_ctx *tam_tls_ctx_ref(struct tam_tls_ctx *ctx)
{
    ctx->refs++;
    return ctx;
}

void tam_tls_ctx_unref(struct tam_tls_ctx *ctx)
{
    if (ctx == NULL || --ctx->refs > 0) {
        return;
    }
    wolfSSL_CTX_free(ctx->ctx);
    tam_free(ctx);
    wolfSSL_Cleanup(); /* balances the wolfSSL_Init of tam_tls_ctx_create */
}

void tam_tls_thread_cleanup(void)
{
#if defined(HAVE_ECC) && defined(FP_ECC)
    wc_ecc_fp_free(); /* the fixed-point table is thread-local */
#endif
}

bool tam_tls_ctx_allows_tls12(const struct tam_tls_ctx *ctx)
{
    return ctx->tls12;
}

/* ---- Per-connection I/O callbacks ---- */

static int on_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct tam_net_tls *t = ((struct tam_net_conn *)arg)->tls;
    size_t avail = t->in.len - t->in_off;
    if (avail == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, t->in.data + t->in_off, n);
    t->in_off += n;
    return (int)n;
}

static int on_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct tam_net_conn *c = arg;
    if (sz <= 0) {
        return 0;
    }
    if (tam_net__conn_write(c, buf, (size_t)sz, true) != 0) {
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    return sz;
}

int tam_net__tls_new(struct tam_net_conn *c, struct tam_tls_ctx *ctx)
{
    struct tam_net_tls *t = tam_calloc(1, sizeof(*t));
    if (t == NULL) {
        return TAM_ENOMEM;
    }
    t->ssl = wolfSSL_new(ctx->ctx);
    if (t->ssl == NULL) {
        tam_free(t);
        return TAM_ENOMEM;
    }
    wolfSSL_SSLSetIORecv(t->ssl, on_recv);
    wolfSSL_SSLSetIOSend(t->ssl, on_send);
    wolfSSL_SetIOReadCtx(t->ssl, c);
    wolfSSL_SetIOWriteCtx(t->ssl, c);
    tam_buf_init(&t->in, TLS_IN_MAX);
    t->ctx = tam_tls_ctx_ref(ctx);
    c->tls = t;
    return TAM_OK;
}

void tam_net__tls_free(struct tam_net_conn *c)
{
    struct tam_net_tls *t = c->tls;
    if (t == NULL) {
        return;
    }
    wolfSSL_free(t->ssl);
    tam_buf_finish(&t->in);
    tam_tls_ctx_unref(t->ctx);
    tam_free(t);
    c->tls = NULL;
}

/* ---- Handshake, records ---- */

static void tls_failed(struct tam_net_conn *c, int e)
{
    char msg[96];
    wolfSSL_ERR_error_string_n((unsigned long)e, msg, sizeof(msg));
    tam_log(TAM_LOG_INFO, "event=tls_error srv=%s conn=%llu err=%d msg=\"%s\" handshake=%d",
            c->srv->name, (unsigned long long)c->id, e, msg, c->tls->handshake_done);
    c->srv->stats.drop_tls++;
    c->tls->failed = true;
    if (c->tls->handshake_done) {
        tam_net__conn_close(c, "tls record error");
    } else {
        tam_net__conn_finish(c); /* let an alert go out, then FIN */
    }
}

static void handshake(struct tam_net_conn *c)
{
    struct tam_net_tls *t = c->tls;
    int r = wolfSSL_accept(t->ssl);
    if (r == WOLFSSL_SUCCESS) {
        t->handshake_done = true;
        c->srv->stats.tls_handshakes++;
        tam_log(TAM_LOG_DEBUG, "event=tls_handshake srv=%s conn=%llu version=%s cipher=%s",
                c->srv->name, (unsigned long long)c->id, wolfSSL_get_version(t->ssl),
                wolfSSL_get_cipher_name(t->ssl));
        return;
    }
    int e = wolfSSL_get_error(t->ssl, r);
    if (e != WOLFSSL_ERROR_WANT_READ && e != WOLFSSL_ERROR_WANT_WRITE) {
        tls_failed(c, e);
    }
}

static void compact(struct tam_net_tls *t)
{
    if (t->in_off == 0) {
        return;
    }
    size_t rest = t->in.len - t->in_off;
    if (rest > 0) {
        memmove(t->in.data, t->in.data + t->in_off, rest);
    }
    t->in.len = rest;
    t->in_off = 0;
}

void tam_net__tls_rx(struct tam_net_conn *c, const char *data, size_t len)
{
    struct tam_net_tls *t = c->tls;
    if (t->failed) {
        return;
    }
    compact(t);
    if (tam_buf_append(&t->in, data, len) != TAM_OK) {
        tam_net__conn_close(c, "tls input overflow");
        return;
    }
    if (!t->handshake_done) {
        handshake(c);
    }
}

/* Decrypts buffered records into the connection while it accepts input. */
void tam_net__tls_drain(struct tam_net_conn *c)
{
    struct tam_net_tls *t = c->tls;
    if (!t->handshake_done || t->failed) {
        return;
    }
    while (tam_net__conn_rx_wanted(c)) {
        int r = wolfSSL_read(t->ssl, c->srv->pbuf, (int)sizeof(c->srv->pbuf));
        if (r > 0) {
            tam_net__conn_rx(c, c->srv->pbuf, (size_t)r);
            continue;
        }
        int e = wolfSSL_get_error(t->ssl, r);
        if (e == WOLFSSL_ERROR_ZERO_RETURN) {
            tam_net__conn_eof(c); /* close_notify */
        } else if (e != WOLFSSL_ERROR_WANT_READ) {
            tls_failed(c, e);
        }
        break;
    }
    if (c->tls != NULL) {
        compact(t);
    }
}

int tam_net__tls_write(struct tam_net_conn *c, const void *p, size_t n)
{
    struct tam_net_tls *t = c->tls;
    if (t->failed || !t->handshake_done) {
        return TAM_EPROTO;
    }
    int r = wolfSSL_write(t->ssl, p, (int)n);
    if (r == (int)n) {
        return TAM_OK;
    }
    tam_log(TAM_LOG_INFO, "event=tls_write_failed srv=%s conn=%llu err=%d", c->srv->name,
            (unsigned long long)c->id, wolfSSL_get_error(t->ssl, r));
    return TAM_ECRYPTO;
}

void tam_net__tls_close_notify(struct tam_net_conn *c)
{
    struct tam_net_tls *t = c->tls;
    if (t->handshake_done && !t->failed) {
        (void)wolfSSL_shutdown(t->ssl); /* sends close_notify; not waiting for the peer's */
    }
}
