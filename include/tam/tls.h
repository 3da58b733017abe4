/*
 * TLS server contexts (wolfSSL) for the HTTP server core. A context is immutable once
 * built and reference counted: the server holds one reference, each TLS connection holds
 * one for its lifetime. A certificate reload builds a new context from the files and
 * hands it to tam_http_server_set_tls(); connections that were already open keep the old
 * one, which is freed when the last of them closes.
 *
 * Only src/net/tls.c includes the wolfSSL TLS API; the per-connection TLS state is
 * internal to src/net.
 */
#ifndef TAM_TLS_H
#define TAM_TLS_H

#include <stdbool.h>

#include "tam/common.h"

struct tam_tls_ctx;

struct tam_tls_options {
    const char *cert_file; /* PEM certificate chain, leaf first (required) */
    const char *key_file;  /* PEM private key matching the leaf (required) */
    bool allow_tls12;      /* false (default): TLS 1.3 only; true: TLS 1.2 with ECDHE+AEAD too */
};

/*
 * Builds a server context from PEM files. Returns 0 and *out with one reference,
 * TAM_EINVAL for missing options, TAM_EKEY if the certificate or key cannot be loaded or
 * do not match, TAM_ECRYPTO for other wolfSSL failures, TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_tls_ctx_create(const struct tam_tls_options *opt, struct tam_tls_ctx **out);

/* Adds a reference; returns ctx. */
struct tam_tls_ctx *tam_tls_ctx_ref(struct tam_tls_ctx *ctx);

/* Drops a reference; the context is freed with the last one. NULL-safe. */
void tam_tls_ctx_unref(struct tam_tls_ctx *ctx);

/*
 * Frees wolfCrypt's per-thread ECC cache (FP_ECC, built into Debian's wolfSSL) for the
 * calling thread. A loop thread that served TLS calls it before it exits; the thread that
 * drops the last context reference needs not (wolfSSL_Cleanup frees its own cache).
 */
void tam_tls_thread_cleanup(void);

/* Whether TLS 1.2 is accepted by this context. */
bool tam_tls_ctx_allows_tls12(const struct tam_tls_ctx *ctx);

#endif
