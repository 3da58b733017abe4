/*
 * TLS for the HTTP client: a wolfSSL client over the libuv stream with custom IO callbacks
 * (the DEPS.md 3 pattern, client side). Ciphertext read from the socket is appended to
 * conn->tls_in and handed to wolfSSL by on_tls_recv; ciphertext wolfSSL produces is
 * collected in conn->tls_out by on_tls_send and written with one uv_write per operation.
 */
#include <wolfssl/options.h> /* before any other wolfSSL header (DEPS.md 3) */

#include <string.h>
#include <sys/socket.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "httpc_internal.h"
#include "tam/err.h"
#include "tam/log.h"

/* Ciphertext buffers: one TLS record is at most ~16.7 KiB; reads are drained eagerly. */
#define TLS_IN_MAX (1024u * 1024u)

static int on_tls_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct httpc_conn *c = ctx;
    size_t avail = c->tls_in.len - c->tls_in_off;
    if (avail == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    size_t n = (size_t)sz < avail ? (size_t)sz : avail;
    memcpy(buf, c->tls_in.data + c->tls_in_off, n);
    c->tls_in_off += n;
    if (c->tls_in_off == c->tls_in.len) {
        tam_buf_reset(&c->tls_in);
        c->tls_in_off = 0;
    }
    return (int)n;
}

static int on_tls_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    struct httpc_conn *c = ctx;
    if (sz < 0 || tam_buf_append(&c->tls_out, buf, (size_t)sz) != TAM_OK) {
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    return sz;
}

int tam_httpc__tls_ctx_create(const struct tam_httpc_opts *o, WOLFSSL_CTX **out)
{
    *out = NULL;
    if (o->ca_file == NULL) {
        return TAM_ECONFIG;
    }
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        return TAM_ETLS;
    }
    WOLFSSL_METHOD *m = o->tls13_only ? wolfTLSv1_3_client_method() : wolfSSLv23_client_method();
    WOLFSSL_CTX *ctx = m != NULL ? wolfSSL_CTX_new(m) : NULL;
    if (ctx == NULL) {
        wolfSSL_Cleanup();
        return TAM_ENOMEM;
    }
    int err = TAM_OK;
    if (!o->tls13_only && wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        err = TAM_ETLS;
    } else if (wolfSSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != WOLFSSL_SUCCESS) {
        tam_log(TAM_LOG_WARN, "event=httpc_ca_load_failed");
        err = TAM_ECONFIG;
    }
    if (err != TAM_OK) {
        wolfSSL_CTX_free(ctx);
        wolfSSL_Cleanup();
        return err;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    wolfSSL_CTX_SetIORecv(ctx, on_tls_recv);
    wolfSSL_CTX_SetIOSend(ctx, on_tls_send);
    *out = ctx;
    return TAM_OK;
}

void tam_httpc__tls_ctx_destroy(WOLFSSL_CTX *ctx)
{
    if (ctx == NULL) {
        return;
    }
    wolfSSL_CTX_free(ctx);
    wolfSSL_Cleanup(); /* reference counted by wolfSSL; pairs with wolfSSL_Init above */
}

/* Certificate and host-name verification failures, as opposed to other TLS errors. */
static bool is_verify_error(int e)
{
    switch (e) {
    case ASN_NO_SIGNER_E:
    case ASN_BEFORE_DATE_E:
    case ASN_AFTER_DATE_E:
    case ASN_SIG_CONFIRM_E:
    case ASN_SIG_OID_E:
    case ASN_SELF_SIGNED_E:
    case ASN_PATHLEN_SIZE_E:
    case ASN_PATHLEN_INV_E:
    case DOMAIN_NAME_MISMATCH:
    case IPADDR_MISMATCH:
    case VERIFY_CERT_ERROR:
    case NO_PEER_CERT:
    case CRL_CERT_REVOKED:
        return true;
    default:
        return false;
    }
}

/* Sends what wolfSSL produced; an empty tls_out is a no-op. */
static int tls_flush(struct httpc_conn *c)
{
    if (c->tls_out.len == 0) {
        return TAM_OK;
    }
    int err = tam_httpc__conn_write(c, c->tls_out.data, c->tls_out.len);
    tam_buf_reset(&c->tls_out);
    return err;
}

/* Maps the result of a failed wolfSSL call: 0 = would block, else a TAM/uv code. */
static int tls_error(struct httpc_conn *c, int ret)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == WOLFSSL_ERROR_ZERO_RETURN || e == ZERO_RETURN || e == SOCKET_PEER_CLOSED_E) {
        return UV_EOF;
    }
    c->pool->stats.last_tls_error = e;
    char msg[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)(e < 0 ? -e : e), msg, sizeof(msg));
    tam_log(TAM_LOG_DEBUG, "event=httpc_tls_error code=%d reason=\"%s\"", e, msg);
    return is_verify_error(e) ? TAM_ETLS_VERIFY : TAM_ETLS;
}

int tam_httpc__tls_start(struct httpc_conn *c)
{
    struct tam_httpc_pool *p = c->pool;
    tam_buf_init(&c->tls_in, TLS_IN_MAX);
    /* Requests are bounded by max_req_body; allow record overhead on top. */
    tam_buf_init(&c->tls_out, 2 * (p->max_req_body + 64u * 1024u));
    c->ssl = wolfSSL_new(p->tls_ctx);
    if (c->ssl == NULL) {
        return TAM_ENOMEM;
    }
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    if (wolfSSL_check_domain_name(c->ssl, p->tls_name) != WOLFSSL_SUCCESS) {
        return TAM_ETLS;
    }
    /* SNI carries a DNS name only (RFC 6066 3), never an IP literal. */
    bool literal = p->tls_name == p->url.host && p->url.family != 0;
    size_t nl = strlen(p->tls_name);
    if (!literal && nl <= 255 &&
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, p->tls_name, (unsigned short)nl) !=
            WOLFSSL_SUCCESS) {
        return TAM_ETLS;
    }
    return TAM_OK;
}

int tam_httpc__tls_input(struct httpc_conn *c, const char *data, size_t len)
{
    return tam_buf_append(&c->tls_in, data, len) == TAM_OK ? TAM_OK : TAM_ETLS;
}

int tam_httpc__tls_handshake(struct httpc_conn *c)
{
    int ret = wolfSSL_connect(c->ssl);
    int err = tls_flush(c);
    if (err != TAM_OK) {
        return err;
    }
    if (ret == WOLFSSL_SUCCESS) {
        return 1;
    }
    err = tls_error(c, ret);
    /* A peer closing during the handshake is a TLS failure, not a stale connection. */
    return err == UV_EOF ? TAM_ETLS : err;
}

int tam_httpc__tls_read(struct httpc_conn *c, char *buf, size_t cap)
{
    int ret = wolfSSL_read(c->ssl, buf, (int)cap);
    int err = tls_flush(c); /* reading may answer a key update */
    if (ret > 0) {
        return err != TAM_OK ? err : ret;
    }
    return err != TAM_OK ? err : tls_error(c, ret);
}

int tam_httpc__tls_write(struct httpc_conn *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t n = len - off > (1u << 30) ? (1u << 30) : len - off;
        int ret = wolfSSL_write(c->ssl, data + off, (int)n);
        if (ret <= 0) {
            int err = tls_error(c, ret);
            return err == 0 || err == UV_EOF ? TAM_ETLS : err;
        }
        off += (size_t)ret;
    }
    return tls_flush(c);
}

void tam_httpc__tls_free(struct httpc_conn *c)
{
    if (c->ssl != NULL) {
        wolfSSL_free(c->ssl);
        c->ssl = NULL;
    }
    tam_buf_finish(&c->tls_in);
    tam_buf_finish(&c->tls_out);
}
