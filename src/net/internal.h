/*
 * Shared between the files of src/net only. The layers inside a connection are:
 * listener.c (accept) -> conn.c (lifecycle, read/write, timers) -> tls.c (optional
 * ciphertext <-> plaintext) -> http_parse.c (llhttp glue) -> the handler, whose answer
 * goes through http_response.c back into conn.c's write pump.
 */
#ifndef TAM_NET_INTERNAL_H
#define TAM_NET_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <llhttp.h>
#include <uv.h>

#include "tam/buf.h"
#include "tam/http.h"
#include "tam/tls.h"

#define TAM_NET_READ_BUF    ((size_t)64 * 1024) /* one uv read, shared per server */
#define TAM_NET_PLAIN_SLICE ((size_t)64 * 1024) /* plaintext per uv_write on plain connections */
#define TAM_NET_TLS_SLICE   ((size_t)16 * 1024) /* plaintext per wolfSSL_write: one TLS record */
#define TAM_NET_PEER_LEN    64

struct tam_net_tls; /* tls.c: per-connection wolfSSL state */

enum tam_net_phase {
    TAM_NET_IDLE,    /* waiting for the first byte of a request */
    TAM_NET_HEADERS, /* request line and headers arriving */
    TAM_NET_BODY,    /* body arriving */
    TAM_NET_HANDLER, /* request dispatched; waiting for tam_http_respond */
    TAM_NET_FLUSH,   /* response being written */
    TAM_NET_LINGER,  /* final response written, FIN sent, input drained until EOF/timer */
    TAM_NET_CLOSED,  /* uv_close called; memory freed in the last close callback */
};

enum tam_net_timer {
    TAM_NET_T_NONE,
    TAM_NET_T_HEADER,
    TAM_NET_T_BODY,
    TAM_NET_T_IDLE,
    TAM_NET_T_WRITE,
    TAM_NET_T_LINGER,
};

/* A header as two offsets into tam_http_request.text (NUL-terminated strings there). */
struct tam_net_hdr {
    uint32_t name;
    uint32_t value;
};

struct tam_http_request {
    struct tam_net_conn *conn; /* NULL once responded or aborted */
    unsigned refs;
    bool dispatched;
    bool responded;
    bool aborted;
    bool close_after;
    bool tls;
    uint8_t method; /* llhttp_method_t */
    uint8_t minor;
    uint64_t conn_id;
    struct tam_buf text; /* target NUL (name NUL value NUL)*, bounded by header_bytes */
    struct tam_net_hdr *hdrs;
    uint32_t nhdrs;
    uint32_t hdr_cap;
    struct tam_buf body;
    tam_http_abort_fn on_abort;
    void *abort_arg;
    struct sockaddr_storage peer_addr;
    bool has_peer_addr;
    char peer[TAM_NET_PEER_LEN];
};

enum tam_net_span {
    TAM_NET_SPAN_NONE,
    TAM_NET_SPAN_URL,
    TAM_NET_SPAN_FIELD,
    TAM_NET_SPAN_VALUE,
};

struct tam_net_conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    struct tam_http_server *srv;
    struct tam_net_conn *prev, *next; /* srv->conns */
    struct tam_net_tls *tls;          /* owned; NULL on plain connections */
    uint64_t id;
    enum tam_net_phase phase;
    enum tam_net_timer timer_kind;
    unsigned open_handles;
    unsigned writes_pending;
    size_t queued; /* bytes in this connection's pending uv_write requests */
    /* Parsing. */
    llhttp_t parser;
    struct tam_http_request *req; /* being parsed (owned) or dispatched (borrowed) */
    enum tam_net_span span;
    int fail_status;    /* HTTP status a parser callback chose when failing */
    size_t raw_headers; /* bytes fed while in the header phase (whitespace floods) */
    bool msg_done;
    bool keep_alive;   /* for the response being produced */
    bool head;         /* current request is HEAD: no body in the response */
    struct tam_buf in; /* plaintext received but not parsed yet */
    /* Writing. */
    struct tam_buf out; /* the response being written */
    size_t out_off;
    /* State flags. */
    bool reading;
    bool in_process;
    bool kicking;
    bool eof;           /* peer sent FIN (or TLS close_notify) */
    bool shutdown_done; /* our FIN went out */
    struct sockaddr_storage peer_addr;
    bool has_peer_addr;
    char peer[TAM_NET_PEER_LEN];
};

struct tam_http_server {
    uv_loop_t *loop;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } listener;
    uv_timer_t deadline;
    bool is_unix;
    bool listener_open;
    bool deadline_open;
    bool draining;
    bool destroy_requested;
    bool done_fired;
    bool in_done;
    bool no_date;
    unsigned handles; /* open uv handles owned by the server itself (not connections) */
    uint16_t port;
    char *unix_path;
    char *name;
    struct tam_tls_ctx *tls;
    struct tam_http_limits limits;
    tam_http_handler_fn handler;
    void *handler_ctx;
    tam_http_done_fn on_done;
    void *done_arg;
    struct tam_net_conn *conns;
    uint64_t next_conn_id;
    struct tam_http_stats stats;
    int64_t date_at; /* the second date was rendered for */
    uint64_t deadline_at;
    char date[40];
    char rbuf[TAM_NET_READ_BUF];  /* shared: libuv pairs each alloc with its read callback */
    char pbuf[TAM_NET_TLS_SLICE]; /* shared: decrypted bytes, handed on before the next read */
};

/* conn.c */
void tam_net__conn_accepted(struct tam_http_server *srv, struct tam_net_conn *c);
void tam_net__conn_rx(struct tam_net_conn *c, const char *data, size_t len);
bool tam_net__conn_rx_wanted(const struct tam_net_conn *c);
void tam_net__conn_eof(struct tam_net_conn *c);
void tam_net__conn_close(struct tam_net_conn *c, const char *why);
/* Ends the connection gracefully: FIN after pending writes, then drain input (linger). */
void tam_net__conn_finish(struct tam_net_conn *c);
void tam_net__conn_start_response(struct tam_net_conn *c, bool keep_alive);
void tam_net__conn_drain(struct tam_net_conn *c);
int tam_net__conn_write(struct tam_net_conn *c, const void *p, size_t n, bool copy);
void tam_net__conn_arm(struct tam_net_conn *c, enum tam_net_timer kind, uint32_t ms);

/* http_parse.c */
void tam_net__parser_init(struct tam_net_conn *c);
/* Parses len bytes; returns how many were consumed (the rest waits for the next request). */
size_t tam_net__parse(struct tam_net_conn *c, const char *data, size_t len);

/* http_request.c */
/* ASCII case-insensitive comparison (locale independent); 0 when equal. */
int tam_net__ascii_casecmp(const char *a, const char *b);
int tam_net__request_new(struct tam_net_conn *c, struct tam_http_request **out);
void tam_net__request_free(struct tam_http_request *req);
void tam_net__request_abort(struct tam_net_conn *c);

/* http_response.c */
/* Builds a server-generated response (errors, 100 Continue) and starts writing it. */
void tam_net__respond_error(struct tam_net_conn *c, int status);
int tam_net__write_continue(struct tam_net_conn *c);
int tam_net__plain_write(struct tam_net_conn *c, const void *p, size_t n);

/* server.c */
/* A name for any error in our space: TAM_E* or a -errno/libuv code. */
const char *tam_net__errname(int err);
void tam_net__server_conn_added(struct tam_http_server *srv, struct tam_net_conn *c);
/* The last handle of c closed: unlink, count, maybe finish a shutdown (may free srv). */
void tam_net__server_conn_gone(struct tam_http_server *srv, struct tam_net_conn *c);
/* A server-owned handle (listener, deadline timer, a refused connection) closed. */
void tam_net__server_handle_closed(struct tam_http_server *srv);
const char *tam_net__server_date(struct tam_http_server *srv);

/* listener.c */
int tam_net__listen(struct tam_http_server *srv, const struct tam_http_server_config *cfg);
void tam_net__listener_close(struct tam_http_server *srv);

/* tls.c */
int tam_net__tls_new(struct tam_net_conn *c, struct tam_tls_ctx *ctx);
void tam_net__tls_free(struct tam_net_conn *c);
void tam_net__tls_rx(struct tam_net_conn *c, const char *data, size_t len);
void tam_net__tls_drain(struct tam_net_conn *c);
int tam_net__tls_write(struct tam_net_conn *c, const void *p, size_t n);
void tam_net__tls_close_notify(struct tam_net_conn *c);

#endif
