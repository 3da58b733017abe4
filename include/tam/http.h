/*
 * HTTP/1.1 server core (L3): one libuv loop, llhttp (strict mode) parsing, optional wolfSSL
 * TLS, bounded everything. The gateway (tamd) and its admin listener are built on it; the
 * TEEP logic lives in the request handler, not here.
 *
 * Model:
 * - A server owns one listener (TCP host:port or a Unix socket path) and its connections.
 *   All calls happen on the loop's thread; nothing here is thread-safe.
 * - Each connection serves one request at a time: once a request is complete the parser
 *   pauses, the handler runs, and parsing of pipelined bytes resumes only after the
 *   response has been fully written. Bytes that arrive meanwhile are buffered up to
 *   limits.pipeline_bytes, then reading stops (backpressure).
 * - The handler answers synchronously or later with tam_http_respond(), exactly once.
 *   If the client goes away first (reset, timeout, shutdown deadline, or a FIN while the
 *   handler holds its request, which is taken as "client gave up" as nginx does), the
 *   request's on_abort callback fires and the late tam_http_respond() only frees it.
 * - Keep-alive per HTTP/1.1 (1.0 only with "Connection: keep-alive"); Connection: close,
 *   errors and shutdown close after the response: FIN once written, then input is drained
 *   for limits.linger_ms so the client reads the response instead of a reset.
 * - Server-generated answers (always followed by close): 400 malformed (llhttp strict
 *   mode: bare CR, Content-Length with Transfer-Encoding, bad method...), missing or
 *   duplicate Host in HTTP/1.1; 413 body over the limit (Content-Length checked before the
 *   body is read, chunked while it arrives); 431 too many or too large headers; 414 long
 *   target; 417 an Expect other than 100-continue; 505 not HTTP/1.x.
 *   "Expect: 100-continue" gets "HTTP/1.1 100 Continue" as soon as the headers pass the
 *   limits (or the 413 without reading the body).
 * - Connection limit: over max_connections a new connection is accepted and closed at
 *   once (counted in drop_max_conns); accepting never pauses, so capacity returns as soon
 *   as any connection closes (no low-water mark needed).
 */
#ifndef TAM_HTTP_H
#define TAM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/common.h"

struct sockaddr;
struct uv_loop_s; /* uv_loop_t */
struct tam_tls_ctx;
struct tam_http_server;
struct tam_http_request;

/*
 * Limits and timeouts. A zero field means "use the default" (tam_http_limits_default()).
 * Timeouts are in milliseconds.
 */
struct tam_http_limits {
    uint32_t header_bytes;      /* request line + header names/values: 8192, else 431 */
    uint32_t header_count;      /* 64, else 431 */
    uint32_t url_bytes;         /* request target: 4096, else 414 */
    uint32_t body_bytes;        /* 1 MiB (Content-Length or chunked), else 413 */
    uint32_t header_timeout_ms; /* 10000: headers complete within this after the first
                                   byte (slowloris); also bounds the TLS handshake and a
                                   fresh connection's wait for its first request */
    uint32_t body_timeout_ms;   /* 30000: whole body after the headers */
    uint32_t idle_timeout_ms;   /* 60000: keep-alive wait for the next request */
    uint32_t write_timeout_ms;  /* 30000: a response must make progress within this */
    uint32_t linger_ms;         /* 2000: after a closing response, drain input this long */
    uint32_t max_connections;   /* 10000: accepted connections beyond are closed at once */
    uint32_t write_queue_bytes; /* 1 MiB: above this, stop writing/reading until drained */
    uint32_t pipeline_bytes;    /* 64 KiB: unparsed input buffered while a request waits */
};

/* Fills every field with its default. */
void tam_http_limits_default(struct tam_http_limits *l);

/*
 * Counters for metrics (single-threaded, plain integers). "gauge" fields go up and down,
 * the rest only increase. Bytes are on the wire (ciphertext on TLS listeners).
 */
struct tam_http_stats {
    uint64_t conns_open; /* gauge: accepted and not yet fully closed */
    uint64_t conns_accepted;
    uint64_t conns_closed;
    uint64_t requests;     /* dispatched to the handler */
    uint64_t responses[6]; /* by status class: [2] = 2xx ... [5] = 5xx ([0],[1] unused) */
    uint64_t bytes_in;
    uint64_t bytes_out;    /* handed to the kernel */
    uint64_t write_queued; /* gauge: bytes in libuv write requests not yet completed */
    uint64_t tls_handshakes;
    uint64_t aborted;        /* client went away while the handler held the request */
    uint64_t drop_max_conns; /* accepted and closed at once: over max_connections */
    uint64_t drop_header_timeout;
    uint64_t drop_body_timeout;
    uint64_t drop_write_timeout;
    uint64_t idle_closed;       /* keep-alive idle timeout (normal, not an error) */
    uint64_t drop_too_big;      /* 413 */
    uint64_t drop_header_limit; /* 431 and 414 */
    uint64_t drop_bad_request;  /* 400, 417, 505 */
    uint64_t drop_tls;          /* handshake or record failure */
    uint64_t drop_shutdown;     /* closed by the shutdown deadline */
};

/* A response header supplied by the handler; both strings borrowed for the call only. */
struct tam_http_header {
    const char *name;
    const char *value;
};

/*
 * Called once per complete request, on the loop thread. The handler receives one
 * reference to req and must eventually call tam_http_respond() on it exactly once (which
 * consumes that reference), either before returning or later from any loop callback.
 */
typedef void (*tam_http_handler_fn)(struct tam_http_request *req, void *ctx);

/*
 * Called at most once when the connection is gone before the response was given (peer
 * closed or reset, a timeout, or the shutdown deadline). req stays valid: the handler
 * still owes its tam_http_respond() (it may call it from inside this callback); that
 * call then only releases the request and returns -ECONNABORTED.
 */
typedef void (*tam_http_abort_fn)(struct tam_http_request *req, void *arg);

/* Fires once when a shutdown has closed the listener, every connection and every timer. */
typedef void (*tam_http_done_fn)(struct tam_http_server *srv, void *arg);

struct tam_http_server_config {
    const char *host;      /* numeric IPv4/IPv6 address, no brackets ("::1"); NULL = "127.0.0.1" */
    uint16_t port;         /* 0 = ephemeral; see tam_http_server_port() */
    const char *unix_path; /* non-NULL: listen on this Unix socket instead (a stale
                              socket file there is removed first) */
    int backlog;           /* listen() backlog; 0 = 511 */
    bool no_reuseport;     /* false (default): SO_REUSEPORT, so N processes share a port */
    bool no_date;          /* false (default): responses carry a Date header */
    const char *name;      /* label in log lines ("api", "admin"); NULL = "http" */
    struct tam_tls_ctx *tls; /* borrowed; the server takes its own reference; NULL = plain */
    struct tam_http_limits limits;
    tam_http_handler_fn handler; /* required */
    void *handler_ctx;
};

/* Ignores SIGPIPE (libuv does not): call once at process start, before serving. */
void tam_net_process_init(void);

/*
 * Creates the server, binds and listens (SO_REUSEADDR and, unless disabled, SO_REUSEPORT
 * are set before bind). Returns 0, TAM_EINVAL for a bad config, or a -errno from the
 * socket calls (e.g. -EADDRINUSE). *out is set only on success.
 */
TAM_MUST_CHECK int tam_http_server_create(struct uv_loop_s *loop,
                                          const struct tam_http_server_config *cfg,
                                          struct tam_http_server **out);

/* The bound TCP port (useful with port 0); 0 for a Unix socket listener. */
uint16_t tam_http_server_port(const struct tam_http_server *srv);

/*
 * Certificate reload: connections accepted from now on use ctx (the server takes a
 * reference and drops its old one); existing connections keep the context they started
 * with until they close. Returns TAM_EINVAL on a plain (non-TLS) server or if ctx is NULL.
 */
TAM_MUST_CHECK int tam_http_server_set_tls(struct tam_http_server *srv, struct tam_tls_ctx *ctx);

/* Borrowed; valid until tam_http_server_destroy(). */
const struct tam_http_stats *tam_http_server_stats(const struct tam_http_server *srv);

/*
 * Graceful shutdown: closes the listener at once (new connections are refused), closes
 * idle keep-alive connections at once, lets requests being received or handled finish
 * (their responses carry Connection: close) and closes each connection after its
 * response. After deadline_ms every remaining connection is closed (pending requests
 * are aborted). on_done (may be NULL) fires when no handle of the server is left; call
 * tam_http_server_destroy() then (it may be called from on_done). A second call only
 * shortens the deadline if the new one is earlier.
 */
void tam_http_server_shutdown(struct tam_http_server *srv, uint32_t deadline_ms,
                              tam_http_done_fn on_done, void *arg);

/*
 * Frees the server. NULL-safe. If handles are still open, it starts (or hurries) a
 * shutdown with a zero deadline and the memory is released once the loop has run the
 * close callbacks; a pending on_done still fires first.
 */
void tam_http_server_destroy(struct tam_http_server *srv);

/* ---- Requests (all pointers returned are borrowed from req and live as long as it) ---- */

const char *tam_http_request_method(const struct tam_http_request *req); /* "POST" */
const char *tam_http_request_target(const struct tam_http_request *req); /* raw, "/tam?x" */
/* First header with this name (ASCII case-insensitive), or NULL. Values have OWS trimmed. */
const char *tam_http_request_header(const struct tam_http_request *req, const char *name);
size_t tam_http_request_header_count(const struct tam_http_request *req);
/* Returns TAM_EINVAL if i is out of range. */
TAM_MUST_CHECK int tam_http_request_header_at(const struct tam_http_request *req, size_t i,
                                              const char **name, const char **value);
struct tam_bytes tam_http_request_body(const struct tam_http_request *req);
int tam_http_request_version_minor(const struct tam_http_request *req); /* 0 or 1 */
uint64_t tam_http_request_conn_id(const struct tam_http_request *req);
/* Peer address as "1.2.3.4:5", "[::1]:5" or "unix"; the sockaddr is NULL for Unix peers. */
const char *tam_http_request_peer(const struct tam_http_request *req);
const struct sockaddr *tam_http_request_peer_addr(const struct tam_http_request *req);
bool tam_http_request_is_tls(const struct tam_http_request *req);
/* True once the connection went away before the response; the response will be dropped. */
bool tam_http_request_aborted(const struct tam_http_request *req);

/* Registers the abort callback (replacing any previous one); arg is borrowed. */
void tam_http_request_on_abort(struct tam_http_request *req, tam_http_abort_fn fn, void *arg);
/* Asks for the connection to close after this request's response. */
void tam_http_request_close_after(struct tam_http_request *req);

/*
 * Extra references keep req (headers, body) readable beyond tam_http_respond(); the
 * memory is released when the handler's reference (consumed by tam_http_respond) and
 * every extra reference are gone.
 */
struct tam_http_request *tam_http_request_ref(struct tam_http_request *req);
void tam_http_request_unref(struct tam_http_request *req); /* NULL-safe */

/*
 * Sends the response and consumes the handler's reference; call exactly once per request.
 * status: 200..599. headers (n entries, may be NULL when n is 0) are copied verbatim after
 * the status line; their names must be tokens and values must not contain CR, LF or NUL;
 * Content-Length, Transfer-Encoding and Connection are set by the server and refused
 * here. body/len are copied (borrowed for the call). 204 and 304 carry no body and no
 * Content-Length; a HEAD request gets the Content-Length but no body.
 * Returns 0; -ECONNABORTED if the connection was already gone (nothing sent); TAM_EINVAL
 * for invalid arguments (a 500 is sent instead) or on a second call for the same request.
 * The result is informational (not TAM_MUST_CHECK): the request is consumed either way.
 */
int tam_http_respond(struct tam_http_request *req, int status,
                     const struct tam_http_header *headers, size_t n, const void *body, size_t len);
/* tam_http_respond(req, status, NULL, 0, NULL, 0). */
int tam_http_respond_status(struct tam_http_request *req, int status);
/* 405 Method Not Allowed with "Allow: <allow>" (e.g. "POST"), empty body. */
int tam_http_respond_405(struct tam_http_request *req, const char *allow);

/* The reason phrase for a status code ("OK", "Content Too Large", ...); never NULL. */
const char *tam_http_reason(int status);

#endif
