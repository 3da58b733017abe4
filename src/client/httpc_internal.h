/* Shared between the files of the HTTP client (httpc*.c); not a public header. */
#ifndef TAM_HTTPC_INTERNAL_H
#define TAM_HTTPC_INTERNAL_H

#include <wolfssl/options.h> /* must come first among the wolfSSL headers (DEPS.md 3) */
#include <wolfssl/ssl.h>

#include <llhttp.h>
#include <sys/socket.h>

#include "tam/buf.h"
#include "tam/httpc.h"

#define HTTPC_MAX_ADDRS 8
#define HTTPC_READ_BUF  (64u * 1024u)
#define HTTPC_PLAIN_BUF (16u * 1024u)

/* Intrusive circular doubly linked list (the head is a sentinel). */
struct httpc_list {
    struct httpc_list *prev;
    struct httpc_list *next;
};

enum httpc_op_kind {
    OP_REQUEST,
    OP_CONNECT,
};

enum httpc_op_phase {
    PHASE_QUEUED,
    PHASE_CONNECTING, /* TCP connect */
    PHASE_HANDSHAKE,  /* TLS handshake */
    PHASE_SENT,       /* request written, waiting for the response */
};

/* One operation: a request or a bare connect. Freed when its timer handle has closed. */
struct httpc_op {
    struct httpc_list link; /* in pool->queue while queued */
    struct tam_httpc_pool *pool;
    struct httpc_conn *conn; /* bound connection, or NULL */
    uv_timer_t timer;
    enum httpc_op_kind kind;
    enum httpc_op_phase phase;
    tam_httpc_done_fn done_cb;
    tam_httpc_conn_fn conn_cb;
    void *arg;
    struct tam_buf out;  /* the serialized request */
    struct tam_buf hdrs; /* response headers, packed "name\0value\0" */
    struct tam_buf body; /* response body */
    unsigned addr_tries;
    bool is_head;
    bool queued;
    bool got_bytes; /* some response byte arrived */
    bool reused;
    bool retried;
    bool need_fresh;
    bool done;
};

enum httpc_conn_state {
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_READY,
    CONN_CLOSING,
};

struct httpc_conn {
    struct httpc_list link;      /* pool->conns while not closing */
    struct httpc_list idle_link; /* pool->idle while idle */
    struct tam_httpc_pool *pool;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    enum httpc_conn_state state;
    struct httpc_op *op; /* in flight, or NULL when idle */
    llhttp_t parser;
    int parse_err;
    unsigned addr_idx;
    bool idle;
    bool resp_done; /* the parser finished the response; delivered after the read batch */
    bool no_reuse;  /* close after the current response */
    WOLFSSL *ssl;
    struct tam_buf tls_in; /* ciphertext received, not yet consumed by wolfSSL */
    size_t tls_in_off;
    struct tam_buf tls_out; /* ciphertext produced by wolfSSL, flushed with uv_write */
};

struct tam_httpc_pool {
    uv_loop_t *loop;
    struct tam_httpc_url url;
    char *host_hdr; /* "host[:port]" for the Host header */
    char *tls_name; /* name verified in the server certificate */
    unsigned max_conns;
    uint32_t timeout_ms;
    size_t max_body;
    size_t max_header_bytes;
    size_t max_req_body;
    size_t max_queue;
    bool no_reuse;
    WOLFSSL_CTX *tls_ctx;
    uv_timer_t kick; /* runs dispatch from the loop; also keeps close asynchronous */
    uv_getaddrinfo_t gai;
    struct sockaddr_storage addrs[HTTPC_MAX_ADDRS];
    unsigned n_addrs;
    unsigned addr_pref;
    bool resolving;
    bool closing;
    bool dispatching;
    bool redispatch;
    struct httpc_list queue;
    struct httpc_list conns;
    struct httpc_list idle;
    unsigned n_conns; /* connections not closing */
    size_t n_handles; /* open uv handles: kick + connections + op timers */
    tam_httpc_closed_fn close_cb;
    void *close_arg;
    llhttp_settings_t settings;
    struct tam_httpc_stats stats;
    char rbuf[HTTPC_READ_BUF];
    char pbuf[HTTPC_PLAIN_BUF];
};

/* httpc_msg.c: request serialization (pure). */
int tam_httpc__build_request(struct tam_buf *out, const struct tam_httpc_pool *p,
                             const struct tam_httpc_req *req, bool *is_head);

/* httpc_tls.c: wolfSSL glue. Results are TAM_OK or TAM_ETLS / TAM_ETLS_VERIFY / -errno. */
int tam_httpc__tls_ctx_create(const struct tam_httpc_opts *o, WOLFSSL_CTX **out);
void tam_httpc__tls_ctx_destroy(WOLFSSL_CTX *ctx);
int tam_httpc__tls_start(struct httpc_conn *c);
/* Appends received ciphertext for wolfSSL to consume. */
int tam_httpc__tls_input(struct httpc_conn *c, const char *data, size_t len);
/* 1 = handshake done, 0 = waiting for input, < 0 = error. */
int tam_httpc__tls_handshake(struct httpc_conn *c);
/* > 0 = plaintext bytes, 0 = need more input, UV_EOF = close_notify, < 0 = error. */
int tam_httpc__tls_read(struct httpc_conn *c, char *buf, size_t cap);
int tam_httpc__tls_write(struct httpc_conn *c, const uint8_t *data, size_t len);
void tam_httpc__tls_free(struct httpc_conn *c);

/* httpc.c: writes bytes to the connection's socket (a copy is queued). */
int tam_httpc__conn_write(struct httpc_conn *c, const uint8_t *data, size_t len);

#endif
