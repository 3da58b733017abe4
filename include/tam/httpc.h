/*
 * HTTP/1.1 client pool on a libuv loop, for tam-agent (a TEEP device fleet and load
 * generator driving any TAM over HTTP or HTTPS).
 *
 * One pool targets one URL (http://host[:port][/path] or https://...). It keeps up to
 * `max_conns` keep-alive connections; a request goes to an idle connection if there is one,
 * else to a new connection while fewer than `max_conns` exist, else it waits in a FIFO
 * queue. One request in flight per connection (no pipelining). Host names are resolved once
 * with uv_getaddrinfo when first needed and cached for the pool's lifetime (up to 8 addresses,
 * tried in order on connect failure; the one that worked is preferred afterwards). A failed
 * resolution fails the queued operations and is tried again by the next one. IP literals
 * are never resolved. Open connections keep uv_run() alive until tam_httpc_pool_close().
 *
 * TEEP/HTTP client rules (TEEP-DIGEST section 2) that this module follows: redirects are
 * never followed (a 3xx is just delivered), cookies are ignored, no HTTP-level session.
 * tam_httpc_teep_post() builds the exact TEEP request.
 *
 * Stale keep-alive connections: a request that fails on a connection taken from the idle
 * list (peer closed it, reset, TLS close_notify) before any response byte arrived is sent
 * again ONCE on a fresh connection (resp->retried tells). Like browsers, this can deliver a
 * non-idempotent POST twice if the server processed it and then closed without answering.
 *
 * Callbacks never run inside tam_httpc_request()/tam_httpc_connect(); they run from the loop.
 * The caller must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)): libuv does not (DEPS.md 8.2).
 * Single-threaded: every call happens on the loop's thread.
 */
#ifndef TAM_HTTPC_H
#define TAM_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tam/common.h"

#define TAM_TEEP_MEDIA_TYPE "application/teep+cbor"

/* ---- URL parsing (pure) ---- */

#define TAM_HTTPC_HOST_MAX 256
#define TAM_HTTPC_PATH_MAX 2048

struct tam_httpc_url {
    bool tls;                      /* https */
    int family;                    /* AF_INET / AF_INET6 for an IP literal, 0 for a name */
    uint16_t port;                 /* explicit or 80 / 443 */
    char host[TAM_HTTPC_HOST_MAX]; /* without the [] of an IPv6 literal */
    char path[TAM_HTTPC_PATH_MAX]; /* origin-form: "/..." with the query; "/" if absent */
};

/*
 * Parses an absolute http/https URL. Rejects userinfo (user@), IPv6 zone ids, bad ports,
 * characters outside the printable ASCII range and anything too long (TAM_EINVAL).
 * A fragment (#...) is dropped.
 */
TAM_MUST_CHECK int tam_httpc_url_parse(const char *url, struct tam_httpc_url *out);

/* ---- pool ---- */

struct tam_httpc_pool; /* opaque */

struct tam_httpc_opts {
    const char *url;         /* required; copied */
    unsigned max_conns;      /* connections at once (connecting+busy+idle); 0 = 8, max 100000 */
    uint32_t timeout_ms;     /* default per-operation timeout; 0 = 30000 (see below) */
    size_t max_body;         /* response body ceiling; 0 = 1 MiB */
    size_t max_header_bytes; /* response header names+values ceiling; 0 = 16 KiB */
    size_t max_req_body;     /* request body ceiling; 0 = 1 MiB */
    size_t max_queue;        /* operations waiting for a connection; 0 = 65536 */
    bool no_reuse;           /* send "Connection: close"; each connection serves one request */
    /* https only: */
    const char *ca_file;         /* required: PEM file of trusted CAs (loaded at create) */
    const char *tls_server_name; /* name to verify and send as SNI; NULL = the URL host */
    bool tls13_only;             /* refuse TLS 1.2 (default accepts TLS 1.2 and 1.3) */
};

/*
 * Creates a pool on `loop` (borrowed; must outlive the pool). Returns TAM_OK and *out,
 * TAM_EINVAL (bad URL or options), TAM_ECONFIG (https without ca_file, unreadable CA file),
 * TAM_ETLS (wolfSSL setup) or TAM_ENOMEM. Opens nothing yet. Release with
 * tam_httpc_pool_close().
 *
 * For an https URL with an IP literal host, the certificate must carry that text as a DNS
 * name or CN; otherwise set tls_server_name to the certificate's name.
 */
TAM_MUST_CHECK int tam_httpc_pool_create(uv_loop_t *loop, const struct tam_httpc_opts *opts,
                                         struct tam_httpc_pool **out);

typedef void (*tam_httpc_closed_fn)(void *arg);

/*
 * Starts closing: every queued or in-flight operation completes with UV_ECANCELED (inside
 * this call), every connection is closed, and `cb` (may be NULL) runs from the loop once
 * every handle is released; the pool is freed right before cb. After cb, the pool has no
 * handles left on the loop (uv_loop_close() can return 0). NULL pool: nothing happens.
 * Calling it again while closing is ignored. Safe to call from inside any pool callback.
 */
void tam_httpc_pool_close(struct tam_httpc_pool *p, tam_httpc_closed_fn cb, void *arg);

/* ---- requests ---- */

struct tam_httpc_header {
    const char *name;  /* token; Content-Length, Transfer-Encoding, Connection, Upgrade
                          are rejected (the pool writes them) */
    const char *value; /* no CR, LF or NUL */
};

struct tam_httpc_req {
    const char *method; /* NULL = "POST" */
    const char *path;   /* NULL = the URL's path; else origin-form starting with '/' */
    const struct tam_httpc_header *headers; /* n_headers entries, at most 64 */
    size_t n_headers;
    struct tam_bytes body; /* Content-Length is sent for a body and for POST/PUT/PATCH */
    uint32_t timeout_ms;   /* 0 = the pool's timeout_ms */
};

/*
 * A response, borrowed: valid only during the callback. `status` is the final status code
 * (1xx interim responses are skipped). Header lookups: tam_httpc_resp_header*().
 */
struct tam_httpc_resp {
    int status;
    struct tam_bytes body;
    bool reused;       /* sent on a connection taken from the idle list */
    bool retried;      /* sent a second time after a stale idle connection failed */
    const char *hdrs_; /* private: packed "name\0value\0" pairs */
    size_t hdrs_len_;  /* private */
};

/*
 * err == 0: resp is the response (any status, including 3xx/4xx/5xx).
 * err < 0: resp is NULL; err is one of
 *   TAM_ETIMEOUT      no complete response within the timeout (the connection is closed)
 *   TAM_ETOOBIG       response body or header block above the configured ceiling
 *   TAM_EPROTO        malformed response, or the connection closed before it was complete
 *   TAM_ETLS          TLS handshake or record failure
 *   TAM_ETLS_VERIFY   server certificate not trusted, or host name mismatch
 *   TAM_ENOTFOUND     the host name does not resolve (TAM_EUNAVAIL: other resolver errors)
 *   -errno            socket errors, e.g. -ECONNREFUSED, -ECONNRESET, -ENETUNREACH
 *   UV_ECANCELED      the pool was closed
 */
typedef void (*tam_httpc_done_fn)(void *arg, int err, const struct tam_httpc_resp *resp);

/*
 * Queues a request. Everything in `req` is copied (serialized) before this returns.
 * The timeout counts from this call (queueing + connect + TLS + response).
 * Returns TAM_OK, after which `cb` runs exactly once, later, from the loop. Or returns an
 * error and cb never runs: TAM_EINVAL (bad method/path/header), TAM_ETOOBIG (body above
 * max_req_body), TAM_EUNAVAIL (queue full), UV_ECANCELED (closing), TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_httpc_request(struct tam_httpc_pool *p, const struct tam_httpc_req *req,
                                     tam_httpc_done_fn cb, void *arg);

/*
 * TEEP/HTTP request (TEEP-DIGEST 2): POST to the URL path with
 * "Accept: application/teep+cbor"; an empty body opens a session, a non-empty body is sent
 * with "Content-Type: application/teep+cbor". The TAM answers 200 + body (next message) or
 * 204 (session done); checking that is the caller's job.
 */
TAM_MUST_CHECK int tam_httpc_teep_post(struct tam_httpc_pool *p, struct tam_bytes body,
                                       tam_httpc_done_fn cb, void *arg);

/* Value of the first header named `name` (case-insensitive), NUL-terminated; NULL if absent. */
const char *tam_httpc_resp_header(const struct tam_httpc_resp *r, const char *name);
/* Iterates headers in arrival order: start with *pos = 0; false at the end. */
bool tam_httpc_resp_header_next(const struct tam_httpc_resp *r, size_t *pos, const char **name,
                                const char **value);

/* ---- connections without a request (tam-agent idle mode) ---- */

typedef void (*tam_httpc_conn_fn)(void *arg, int err);

/*
 * Opens one new connection (TCP, plus the TLS handshake for https) and leaves it idle in
 * the pool, where it stays open until the peer closes it, a request uses it or the pool
 * closes. cb runs exactly once from the loop: 0 once established, or an error as for
 * requests (TAM_EUNAVAIL when max_conns connections already exist). The pool's timeout_ms
 * bounds the connect. Same return contract as tam_httpc_request().
 * Idle mode: create the pool with max_conns >= N and call this N times; watch
 * tam_httpc_stats.conns_active / conns_closed_idle.
 */
TAM_MUST_CHECK int tam_httpc_connect(struct tam_httpc_pool *p, tam_httpc_conn_fn cb, void *arg);

/* ---- counters ---- */

struct tam_httpc_stats {
    uint64_t conns_opened;      /* TCP connects started */
    uint64_t conns_established; /* connects that completed (with the TLS handshake) */
    uint64_t conns_reused;      /* requests sent on a connection from the idle list */
    uint64_t conns_closed;      /* connections closed, for any reason */
    uint64_t conns_closed_idle; /* idle connections closed by the peer */
    uint64_t requests;          /* requests accepted by tam_httpc_request() */
    uint64_t responses;         /* responses delivered (any status) */
    uint64_t retries;           /* stale-connection retries */
    uint64_t err_connect;       /* TCP connect failures (refused, unreachable, ...) */
    uint64_t err_tls;           /* TLS failures, verification included */
    uint64_t err_tls_verify;    /* of which certificate / host name verification */
    uint64_t err_timeout;
    uint64_t err_proto; /* malformed or truncated responses */
    uint64_t err_toobig;
    uint64_t err_io;       /* socket errors on established connections */
    uint64_t err_resolve;  /* operations failed by name resolution */
    uint64_t err_canceled; /* operations canceled by tam_httpc_pool_close() */
    unsigned conns_active; /* gauge: connections not closing */
    unsigned conns_idle;   /* gauge */
    size_t queued;         /* gauge: operations waiting for a connection */
    int last_tls_error;    /* raw wolfSSL error of the latest TLS failure, 0 if none */
};

void tam_httpc_pool_stats(const struct tam_httpc_pool *p, struct tam_httpc_stats *out);

#endif
