/*
 * HTTP/1.1 keep-alive client pool (see tam/httpc.h for the contract).
 *
 * Ownership: the pool owns connections and operations. Every connection and every operation
 * owns one uv handle (the TCP handle, the timeout timer) and is freed only in that handle's
 * close callback, so a pointer stays valid for the rest of the callback stack in which it was
 * closed. The pool itself is freed when the last handle (including the `kick` timer, closed by
 * tam_httpc_pool_close) has closed, so closing is always asynchronous.
 *
 * An operation is bound to at most one connection and a connection carries at most one
 * operation. A response is delivered only after the whole read batch in which it completed
 * was processed, so bytes arriving behind it (junk, close_notify, EOF) are seen first and
 * the connection is not reused when they are bad.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "../net/write_now.h"
#include "httpc_internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

#define DEFAULT_MAX_CONNS  8u
#define LIMIT_MAX_CONNS    100000u
#define DEFAULT_TIMEOUT_MS 30000u
#define DEFAULT_MAX_BODY   (1024u * 1024u)
#define DEFAULT_MAX_HDRS   (16u * 1024u)
#define DEFAULT_MAX_QUEUE  65536u

static void dispatch(struct tam_httpc_pool *p);
static void conn_close(struct httpc_conn *c);
static void fail_conn_op(struct httpc_conn *c, int err);

/* ---- lists ---- */

static void list_init(struct httpc_list *l)
{
    l->prev = l;
    l->next = l;
}

static bool list_empty(const struct httpc_list *l)
{
    return l->next == l;
}

static void list_insert_after(struct httpc_list *at, struct httpc_list *e)
{
    e->prev = at;
    e->next = at->next;
    at->next->prev = e;
    at->next = e;
}

static void list_remove(struct httpc_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    list_init(e);
}

/* Moves every element of `from` to `to` (which must be empty), leaving `from` empty. */
static void list_move_all(struct httpc_list *from, struct httpc_list *to)
{
    list_init(to);
    if (list_empty(from)) {
        return;
    }
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    list_init(from);
}

/* ---- pool lifetime ---- */

static void maybe_finish(struct tam_httpc_pool *p)
{
    if (!p->closing || p->n_handles > 0 || p->resolving) {
        return;
    }
    tam_httpc_closed_fn cb = p->close_cb;
    void *arg = p->close_arg;
    tam_httpc__tls_ctx_destroy(p->tls_ctx);
    tam_free(p->host_hdr);
    tam_free(p->tls_name);
    tam_free(p);
    if (cb != NULL) {
        cb(arg);
    }
}

static void on_handle_closed_pool(uv_handle_t *h)
{
    struct tam_httpc_pool *p = h->data;
    p->n_handles--;
    maybe_finish(p);
}

/* ---- operations ---- */

static void on_op_closed(uv_handle_t *h)
{
    struct httpc_op *op = tam_container_of(h, struct httpc_op, timer);
    struct tam_httpc_pool *p = op->pool;
    tam_buf_finish(&op->out);
    tam_buf_finish(&op->hdrs);
    tam_buf_finish(&op->body);
    tam_free(op);
    p->n_handles--;
    maybe_finish(p);
}

static bool is_resolve_error(int err)
{
    return err == TAM_ENOTFOUND || err == TAM_EUNAVAIL;
}

static void count_error(struct tam_httpc_stats *s, const struct httpc_op *op, int err)
{
    if (err == TAM_ETIMEOUT) {
        s->err_timeout++;
    } else if (err == TAM_ETLS || err == TAM_ETLS_VERIFY) {
        s->err_tls++;
        s->err_tls_verify += err == TAM_ETLS_VERIFY;
    } else if (err == TAM_EPROTO) {
        s->err_proto++;
    } else if (err == TAM_ETOOBIG) {
        s->err_toobig++;
    } else if (err == UV_ECANCELED) {
        s->err_canceled++;
    } else if (is_resolve_error(err) && op->phase == PHASE_QUEUED) {
        s->err_resolve++;
    } else if (op->phase == PHASE_CONNECTING) {
        s->err_connect++;
    } else {
        s->err_io++;
    }
}

/* Runs the operation's callback exactly once, then releases the operation. */
static void op_complete(struct httpc_op *op, int err, const struct tam_httpc_resp *resp)
{
    if (op->done) {
        return;
    }
    struct tam_httpc_pool *p = op->pool;
    op->done = true;
    uv_timer_stop(&op->timer);
    if (err == TAM_OK) {
        p->stats.responses += op->kind == OP_REQUEST;
    } else {
        count_error(&p->stats, op, err);
    }
    if (op->kind == OP_REQUEST) {
        op->done_cb(op->arg, err, err == TAM_OK ? resp : NULL);
    } else {
        op->conn_cb(op->arg, err);
    }
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

static void queue_remove(struct tam_httpc_pool *p, struct httpc_op *op)
{
    list_remove(&op->link);
    op->queued = false;
    p->stats.queued--;
}

static void queue_push(struct tam_httpc_pool *p, struct httpc_op *op, bool front)
{
    if (front) {
        list_insert_after(&p->queue, &op->link);
    } else {
        list_insert_after(p->queue.prev, &op->link);
    }
    op->queued = true;
    op->phase = PHASE_QUEUED;
    p->stats.queued++;
}

/* Fails every queued operation; ops queued by the callbacks stay queued. */
static void fail_queue(struct tam_httpc_pool *p, int err)
{
    struct httpc_list local;
    list_move_all(&p->queue, &local);
    p->stats.queued = 0;
    while (!list_empty(&local)) {
        struct httpc_op *op = tam_container_of(local.next, struct httpc_op, link);
        list_remove(&op->link);
        op->queued = false;
        op_complete(op, err, NULL);
    }
}

static void on_op_timeout(uv_timer_t *t)
{
    struct httpc_op *op = tam_container_of(t, struct httpc_op, timer);
    struct tam_httpc_pool *p = op->pool;
    if (op->queued) {
        queue_remove(p, op);
    } else if (op->conn != NULL) {
        /* The connection may still answer later; it cannot be reused, so close it. */
        struct httpc_conn *c = op->conn;
        c->op = NULL;
        op->conn = NULL;
        conn_close(c);
    }
    op_complete(op, TAM_ETIMEOUT, NULL);
    dispatch(p);
}

static int op_create(struct tam_httpc_pool *p, enum httpc_op_kind kind, uint32_t timeout_ms,
                     struct httpc_op **out)
{
    struct httpc_op *op = tam_calloc(1, sizeof(*op));
    if (op == NULL) {
        return TAM_ENOMEM;
    }
    op->pool = p;
    op->kind = kind;
    list_init(&op->link);
    tam_buf_init(&op->out, p->max_req_body + 64u * 1024u);
    tam_buf_init(&op->hdrs, p->max_header_bytes);
    tam_buf_init(&op->body, p->max_body);
    int err = uv_timer_init(p->loop, &op->timer);
    if (err < 0) {
        tam_free(op);
        return err;
    }
    p->n_handles++;
    uint64_t ms = timeout_ms != 0 ? timeout_ms : p->timeout_ms;
    err = uv_timer_start(&op->timer, on_op_timeout, ms, 0);
    (void)err; /* cannot fail: the callback is set */
    *out = op;
    return TAM_OK;
}

/* Releases an operation that was never handed to the user (its callback must not run). */
static void op_discard(struct httpc_op *op)
{
    op->done = true;
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, on_op_closed);
}

/* ---- connections: lifetime ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct httpc_conn *c = tam_container_of(h, struct httpc_conn, tcp);
    struct tam_httpc_pool *p = c->pool;
    tam_httpc__tls_free(c);
    tam_free(c);
    p->n_handles--;
    maybe_finish(p);
}

static void conn_close(struct httpc_conn *c)
{
    if (c->state == CONN_CLOSING) {
        return;
    }
    struct tam_httpc_pool *p = c->pool;
    if (c->idle) {
        list_remove(&c->idle_link);
        c->idle = false;
        p->stats.conns_idle--;
    }
    list_remove(&c->link);
    c->state = CONN_CLOSING;
    p->n_conns--;
    p->stats.conns_active--;
    p->stats.conns_closed++;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void conn_make_idle(struct httpc_conn *c)
{
    struct tam_httpc_pool *p = c->pool;
    c->idle = true;
    /* LIFO: the most recently used connection is the least likely to be stale. */
    list_insert_after(&p->idle, &c->idle_link);
    p->stats.conns_idle++;
}

static struct httpc_conn *idle_pop(struct tam_httpc_pool *p)
{
    if (list_empty(&p->idle)) {
        return NULL;
    }
    struct httpc_conn *c = tam_container_of(p->idle.next, struct httpc_conn, idle_link);
    list_remove(&c->idle_link);
    c->idle = false;
    p->stats.conns_idle--;
    return c;
}

/* ---- writing ---- */

struct httpc_write {
    uv_write_t req;
    struct httpc_conn *conn;
    uint8_t data[];
};

static void on_write(uv_write_t *req, int status)
{
    struct httpc_write *w = tam_container_of(req, struct httpc_write, req);
    struct httpc_conn *c = w->conn;
    tam_free(w);
    /* On UV_ECANCELED the connection is closing; it is still allocated until close_cb. */
    if (status < 0 && c->state != CONN_CLOSING) {
        if (c->op != NULL) {
            fail_conn_op(c, status);
        } else {
            conn_close(c);
        }
    }
}

int tam_httpc__conn_write(struct httpc_conn *c, const uint8_t *data, size_t len)
{
    int err = tam_net_write_now((uv_stream_t *)&c->tcp, &data, &len);
    if (err != 0 || len == 0) {
        return err;
    }
    /* A private copy of the rest: the source may be released (timeout) before libuv is done
     * with it. */
    struct httpc_write *w = tam_malloc(sizeof(*w) + len);
    if (w == NULL) {
        return TAM_ENOMEM;
    }
    w->conn = c;
    memcpy(w->data, data, len);
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)len);
    err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (err < 0) {
        tam_free(w);
    }
    return err;
}

static void conn_send(struct httpc_conn *c)
{
    struct httpc_op *op = c->op;
    struct tam_httpc_pool *p = c->pool;
    llhttp_init(&c->parser, HTTP_RESPONSE, &p->settings);
    c->parser.data = c;
    c->parse_err = TAM_OK;
    c->resp_done = false;
    op->phase = PHASE_SENT;
    int err = c->ssl != NULL ? tam_httpc__tls_write(c, op->out.data, op->out.len)
                             : tam_httpc__conn_write(c, op->out.data, op->out.len);
    if (err < 0) {
        fail_conn_op(c, err);
    }
}

static void conn_assign(struct httpc_conn *c, struct httpc_op *op)
{
    c->op = op;
    op->conn = c;
    op->reused = true;
    c->pool->stats.conns_reused++;
    conn_send(c);
}

/* TCP connect (and TLS handshake) done: run the bound operation. */
static void conn_established(struct httpc_conn *c)
{
    struct tam_httpc_pool *p = c->pool;
    struct httpc_op *op = c->op;
    c->state = CONN_READY;
    p->stats.conns_established++;
    p->addr_pref = c->addr_idx;
    if (op->kind == OP_CONNECT) {
        c->op = NULL;
        op->conn = NULL;
        conn_make_idle(c);
        op_complete(op, TAM_OK, NULL);
        dispatch(p);
        return;
    }
    conn_send(c);
}

/* ---- errors on a connection ---- */

static bool retryable(const struct httpc_op *op, int err)
{
    return op->kind == OP_REQUEST && op->reused && !op->got_bytes && !op->retried &&
           (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE);
}

/* The connection is dead: close it, then retry or fail its operation. */
static void fail_conn_op(struct httpc_conn *c, int err)
{
    struct tam_httpc_pool *p = c->pool;
    struct httpc_op *op = c->op;
    c->op = NULL;
    conn_close(c);
    if (op == NULL) {
        return;
    }
    op->conn = NULL;
    if (retryable(op, err) && !p->closing) {
        tam_log(TAM_LOG_DEBUG, "event=httpc_retry_stale err=%s", tam_errname(err));
        op->retried = true;
        op->need_fresh = true;
        op->reused = false;
        p->stats.retries++;
        queue_push(p, op, true);
        dispatch(p);
        return;
    }
    op_complete(op, err == UV_EOF ? TAM_EPROTO : err, NULL);
    dispatch(p);
}

/* ---- reading ---- */

/* Feeds response bytes to llhttp; sets c->resp_done when the response is complete. */
static int conn_feed(struct httpc_conn *c, const char *data, size_t len)
{
    c->op->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) {
        return TAM_OK;
    }
    if (e == HPE_PAUSED && c->resp_done) {
        if (llhttp_get_error_pos(&c->parser) != data + len) {
            c->no_reuse = true; /* bytes after the response: never reuse this connection */
        }
        return TAM_OK;
    }
    if (c->parse_err != TAM_OK) {
        return c->parse_err;
    }
    tam_log(TAM_LOG_DEBUG, "event=httpc_bad_response reason=%s", llhttp_errno_name(e));
    return TAM_EPROTO;
}

/* Plaintext from the peer: the response of the in-flight request, or junk. */
static int conn_input(struct httpc_conn *c, const char *data, size_t len)
{
    if (c->op == NULL) {
        return TAM_EPROTO; /* unsolicited bytes on an idle connection */
    }
    if (c->resp_done) {
        c->no_reuse = true;
        return TAM_OK;
    }
    return conn_feed(c, data, len);
}

static void finish_response(struct httpc_conn *c)
{
    struct tam_httpc_pool *p = c->pool;
    struct httpc_op *op = c->op;
    c->op = NULL;
    op->conn = NULL;
    struct tam_httpc_resp resp = {
        .status = llhttp_get_status_code(&c->parser),
        .body = tam_bytes_of(op->body.data, op->body.len),
        .reused = op->reused,
        .retried = op->retried,
        .hdrs_ = (const char *)op->hdrs.data,
        .hdrs_len_ = op->hdrs.len,
    };
    bool keep = !c->no_reuse && !p->no_reuse && llhttp_should_keep_alive(&c->parser);
    if (keep) {
        conn_make_idle(c);
    } else {
        conn_close(c);
    }
    op_complete(op, TAM_OK, &resp);
    dispatch(p);
}

/* EOF or a read error. */
static void conn_read_error(struct httpc_conn *c, int err)
{
    if (c->op == NULL) {
        c->pool->stats.conns_closed_idle += c->state == CONN_READY;
        conn_close(c);
        return;
    }
    if (err == UV_EOF && c->state == CONN_READY && c->op->got_bytes && !c->resp_done) {
        /* Completes a body delimited by the connection close; no effect otherwise. */
        (void)llhttp_finish(&c->parser);
    }
    if (c->resp_done) {
        c->no_reuse = true;
        finish_response(c);
        return;
    }
    fail_conn_op(c, c->state == CONN_HANDSHAKE && err == UV_EOF ? TAM_ETLS : err);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct httpc_conn *c = tam_container_of(h, struct httpc_conn, tcp);
    /* One buffer per pool: libuv consumes it in the read callback that follows at once. */
    *buf = uv_buf_init(c->pool->rbuf, sizeof(c->pool->rbuf));
}

static void tls_on_data(struct httpc_conn *c, const char *data, size_t len)
{
    struct tam_httpc_pool *p = c->pool;
    int r = tam_httpc__tls_input(c, data, len);
    if (r == TAM_OK && c->state == CONN_HANDSHAKE) {
        r = tam_httpc__tls_handshake(c);
        if (r == 0) {
            return; /* waiting for more handshake bytes */
        }
        if (r == 1) {
            conn_established(c);
            if (c->state != CONN_READY) {
                return;
            }
            r = TAM_OK; /* drain what followed the handshake (e.g. session tickets) */
        }
    }
    while (r == TAM_OK && c->state == CONN_READY) {
        int n = tam_httpc__tls_read(c, p->pbuf, sizeof(p->pbuf));
        if (n == 0) {
            break;
        }
        r = n > 0 ? conn_input(c, p->pbuf, (size_t)n) : n;
    }
    if (c->state == CONN_CLOSING) {
        return;
    }
    if (r < 0) {
        conn_read_error(c, r);
    } else if (c->op != NULL && c->resp_done) {
        finish_response(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct httpc_conn *c = tam_container_of(s, struct httpc_conn, tcp);
    if (c->state == CONN_CLOSING || nread == 0) {
        return;
    }
    if (nread < 0) {
        conn_read_error(c, (int)nread);
        return;
    }
    if (c->ssl != NULL) {
        tls_on_data(c, buf->base, (size_t)nread);
        return;
    }
    int err = conn_input(c, buf->base, (size_t)nread);
    if (err < 0) {
        conn_read_error(c, err);
    } else if (c->op != NULL && c->resp_done) {
        finish_response(c);
    }
}

/* ---- llhttp callbacks (never call user code from here) ---- */

static int hdr_append(llhttp_t *ps, const char *at, size_t len)
{
    struct httpc_conn *c = ps->data;
    int err = tam_buf_append(&c->op->hdrs, at, len);
    if (err != TAM_OK) {
        c->parse_err = err;
        return -1;
    }
    return 0;
}

static int hdr_terminate(llhttp_t *ps)
{
    return hdr_append(ps, "", 1);
}

static int on_headers_complete(llhttp_t *ps)
{
    struct httpc_conn *c = ps->data;
    if ((ps->flags & F_CONTENT_LENGTH) && ps->content_length > c->pool->max_body) {
        c->parse_err = TAM_ETOOBIG; /* refuse early instead of buffering up to the limit */
        return -1;
    }
    return c->op->is_head ? 1 : 0;
}

static int on_body(llhttp_t *ps, const char *at, size_t len)
{
    struct httpc_conn *c = ps->data;
    int err = tam_buf_append(&c->op->body, at, len);
    if (err != TAM_OK) {
        c->parse_err = err;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *ps)
{
    struct httpc_conn *c = ps->data;
    int status = llhttp_get_status_code(ps);
    if (status >= 100 && status < 200 && status != 101) {
        /* An interim response (100 Continue, 103 Early Hints): wait for the final one. */
        tam_buf_reset(&c->op->hdrs);
        return 0;
    }
    c->resp_done = true;
    return HPE_PAUSED;
}

static void settings_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_header_field = hdr_append;
    s->on_header_field_complete = hdr_terminate;
    s->on_header_value = hdr_append;
    s->on_header_value_complete = hdr_terminate;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* ---- connecting ---- */

static void on_connect(uv_connect_t *req, int status)
{
    struct httpc_conn *c = tam_container_of(req, struct httpc_conn, connect_req);
    struct tam_httpc_pool *p = c->pool;
    if (c->state == CONN_CLOSING) {
        return; /* UV_ECANCELED: closed by a timeout or the pool */
    }
    struct httpc_op *op = c->op;
    if (status < 0 && op->addr_tries + 1 < p->n_addrs && !p->closing) {
        /* Try the host's next address with a fresh handle. */
        op->addr_tries++;
        c->op = NULL;
        op->conn = NULL;
        conn_close(c);
        queue_push(p, op, true);
        op->need_fresh = true;
        dispatch(p);
        return;
    }
    if (status < 0) {
        fail_conn_op(c, status);
        return;
    }
    (void)uv_tcp_nodelay(&c->tcp, 1); /* DEPS.md 8.3: Nagle + delayed ACK stall requests */
    int err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (err == 0 && c->ssl != NULL) {
        c->state = CONN_HANDSHAKE;
        op->phase = PHASE_HANDSHAKE;
        err = tam_httpc__tls_handshake(c);
        err = err > 0 ? TAM_ETLS : err; /* cannot finish before the server spoke */
    }
    if (err < 0) {
        fail_conn_op(c, err);
    } else if (c->ssl == NULL) {
        conn_established(c);
    }
}

/* Opens a new connection for `op` (which is no longer queued). */
static void open_conn(struct tam_httpc_pool *p, struct httpc_op *op)
{
    struct httpc_conn *c = tam_calloc(1, sizeof(*c));
    int err = c == NULL ? TAM_ENOMEM : uv_tcp_init(p->loop, &c->tcp);
    if (err < 0) {
        tam_free(c);
        op_complete(op, err, NULL);
        return;
    }
    c->pool = p;
    c->state = CONN_CONNECTING;
    c->op = op;
    op->conn = c;
    op->phase = PHASE_CONNECTING;
    op->need_fresh = false;
    list_init(&c->idle_link);
    list_insert_after(&p->conns, &c->link);
    p->n_handles++;
    p->n_conns++;
    p->stats.conns_active++;
    p->stats.conns_opened++;
    c->addr_idx = (p->addr_pref + op->addr_tries) % p->n_addrs;
    err = p->tls_ctx != NULL ? tam_httpc__tls_start(c) : TAM_OK;
    if (err == TAM_OK) {
        const struct sockaddr *sa = (const struct sockaddr *)&p->addrs[c->addr_idx];
        err = uv_tcp_connect(&c->connect_req, &c->tcp, sa, on_connect);
    }
    if (err < 0) {
        fail_conn_op(c, err);
    }
}

/* ---- name resolution ---- */

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct tam_httpc_pool *p = tam_container_of(req, struct tam_httpc_pool, gai);
    p->resolving = false;
    for (struct addrinfo *ai = res; ai != NULL && p->n_addrs < HTTPC_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(p->addrs[0])) {
            memcpy(&p->addrs[p->n_addrs], ai->ai_addr, ai->ai_addrlen);
            set_port(&p->addrs[p->n_addrs], p->url.port);
            p->n_addrs++;
        }
    }
    uv_freeaddrinfo(res);
    if (p->closing) {
        maybe_finish(p);
        return;
    }
    if (p->n_addrs == 0) {
        int err = status == UV_EAI_NONAME || status == 0 ? TAM_ENOTFOUND : TAM_EUNAVAIL;
        tam_log(TAM_LOG_WARN, "event=httpc_resolve_failed err=%s", uv_err_name(status));
        fail_queue(p, err);
        return;
    }
    dispatch(p);
}

static void resolve_start(struct tam_httpc_pool *p)
{
    if (p->resolving) {
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    int err = uv_getaddrinfo(p->loop, &p->gai, on_resolved, p->url.host, NULL, &hints);
    if (err < 0) {
        fail_queue(p, TAM_EUNAVAIL);
        return;
    }
    p->resolving = true;
}

/* ---- dispatch ---- */

static void dispatch_once(struct tam_httpc_pool *p)
{
    if (p->n_addrs == 0) {
        if (!list_empty(&p->queue)) {
            resolve_start(p);
        }
        return;
    }
    while (!p->closing && !list_empty(&p->queue)) {
        struct httpc_op *op = tam_container_of(p->queue.next, struct httpc_op, link);
        bool can_open = p->n_conns < p->max_conns;
        if (op->kind == OP_CONNECT) {
            queue_remove(p, op);
            if (can_open) {
                open_conn(p, op);
            } else {
                op_complete(op, TAM_EUNAVAIL, NULL);
            }
            continue;
        }
        struct httpc_conn *c = op->need_fresh && can_open ? NULL : idle_pop(p);
        if (c != NULL) {
            queue_remove(p, op);
            conn_assign(c, op);
        } else if (can_open) {
            queue_remove(p, op);
            open_conn(p, op);
        } else {
            break;
        }
    }
}

/* Re-entrant calls (from callbacks run by dispatch itself) just ask for another round. */
static void dispatch(struct tam_httpc_pool *p)
{
    if (p->closing) {
        return;
    }
    if (p->dispatching) {
        p->redispatch = true;
        return;
    }
    p->dispatching = true;
    do {
        p->redispatch = false;
        dispatch_once(p);
    } while (p->redispatch && !p->closing);
    p->dispatching = false;
}

static void on_kick(uv_timer_t *t)
{
    dispatch(t->data);
}

static int submit(struct tam_httpc_pool *p, struct httpc_op *op)
{
    if (p->stats.queued >= p->max_queue) {
        op_discard(op);
        return TAM_EUNAVAIL;
    }
    queue_push(p, op, false);
    /* Dispatch from the loop so a callback never runs inside the submitting call. */
    (void)uv_timer_start(&p->kick, on_kick, 0, 0); /* cannot fail: not closing, cb set */
    return TAM_OK;
}

/* ---- public API ---- */

int tam_httpc_request(struct tam_httpc_pool *p, const struct tam_httpc_req *req,
                      tam_httpc_done_fn cb, void *arg)
{
    if (p == NULL || req == NULL || cb == NULL) {
        return TAM_EINVAL;
    }
    if (p->closing) {
        return UV_ECANCELED;
    }
    struct httpc_op *op = NULL;
    int err = op_create(p, OP_REQUEST, req->timeout_ms, &op);
    if (err != TAM_OK) {
        return err;
    }
    op->done_cb = cb;
    op->arg = arg;
    err = tam_httpc__build_request(&op->out, p, req, &op->is_head);
    if (err != TAM_OK) {
        op_discard(op);
        return err;
    }
    err = submit(p, op);
    if (err == TAM_OK) {
        p->stats.requests++;
    }
    return err;
}

int tam_httpc_connect(struct tam_httpc_pool *p, tam_httpc_conn_fn cb, void *arg)
{
    if (p == NULL || cb == NULL) {
        return TAM_EINVAL;
    }
    if (p->closing) {
        return UV_ECANCELED;
    }
    struct httpc_op *op = NULL;
    int err = op_create(p, OP_CONNECT, 0, &op);
    if (err != TAM_OK) {
        return err;
    }
    op->conn_cb = cb;
    op->arg = arg;
    return submit(p, op);
}

void tam_httpc_pool_stats(const struct tam_httpc_pool *p, struct tam_httpc_stats *out)
{
    *out = p->stats;
}

void tam_httpc_pool_close(struct tam_httpc_pool *p, tam_httpc_closed_fn cb, void *arg)
{
    if (p == NULL || p->closing) {
        return;
    }
    p->closing = true;
    p->close_cb = cb;
    p->close_arg = arg;
    uv_close((uv_handle_t *)&p->kick, on_handle_closed_pool);
    if (p->resolving) {
        (void)uv_cancel((uv_req_t *)&p->gai); /* on_resolved still runs */
    }
    fail_queue(p, UV_ECANCELED);
    while (!list_empty(&p->conns)) {
        struct httpc_conn *c = tam_container_of(p->conns.next, struct httpc_conn, link);
        struct httpc_op *op = c->op;
        c->op = NULL;
        conn_close(c);
        if (op != NULL) {
            op->conn = NULL;
            op_complete(op, UV_ECANCELED, NULL);
        }
    }
}

static int literal_addr(struct tam_httpc_pool *p)
{
    const struct tam_httpc_url *u = &p->url;
    int err = 0;
    if (u->family == AF_INET) {
        err = uv_ip4_addr(u->host, u->port, (struct sockaddr_in *)(void *)&p->addrs[0]);
    } else if (u->family == AF_INET6) {
        err = uv_ip6_addr(u->host, u->port, (struct sockaddr_in6 *)(void *)&p->addrs[0]);
    } else {
        return TAM_OK; /* a name: resolved on first use */
    }
    p->n_addrs = err == 0 ? 1 : 0;
    return err == 0 ? TAM_OK : TAM_EINVAL;
}

static int host_header(struct tam_httpc_pool *p)
{
    const struct tam_httpc_url *u = &p->url;
    struct tam_buf b;
    tam_buf_init(&b, TAM_HTTPC_HOST_MAX + 16);
    bool v6 = u->family == AF_INET6;
    int err = tam_buf_printf(&b, "%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
    if (err == TAM_OK && u->port != (u->tls ? 443 : 80)) {
        err = tam_buf_printf(&b, ":%u", (unsigned)u->port);
    }
    if (err == TAM_OK) {
        err = tam_buf_append(&b, "", 1);
    }
    size_t len = 0;
    p->host_hdr = err == TAM_OK ? (char *)tam_buf_take(&b, &len) : NULL;
    tam_buf_finish(&b);
    return err;
}

static int pool_configure(struct tam_httpc_pool *p, const struct tam_httpc_opts *o)
{
    p->max_conns = o->max_conns != 0 ? o->max_conns : DEFAULT_MAX_CONNS;
    p->timeout_ms = o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->max_body = o->max_body != 0 ? o->max_body : DEFAULT_MAX_BODY;
    p->max_header_bytes = o->max_header_bytes != 0 ? o->max_header_bytes : DEFAULT_MAX_HDRS;
    p->max_req_body = o->max_req_body != 0 ? o->max_req_body : DEFAULT_MAX_BODY;
    p->max_queue = o->max_queue != 0 ? o->max_queue : DEFAULT_MAX_QUEUE;
    p->no_reuse = o->no_reuse;
    if (p->max_conns > LIMIT_MAX_CONNS || p->max_req_body > (1u << 30)) {
        return TAM_EINVAL;
    }
    int err = tam_httpc_url_parse(o->url, &p->url);
    if (err == TAM_OK) {
        err = literal_addr(p);
    }
    if (err == TAM_OK) {
        err = host_header(p);
    }
    if (err == TAM_OK && p->url.tls) {
        const char *name = o->tls_server_name != NULL ? o->tls_server_name : p->url.host;
        p->tls_name = tam_strdup(name);
        err = p->tls_name == NULL ? TAM_ENOMEM : tam_httpc__tls_ctx_create(o, &p->tls_ctx);
    }
    return err;
}

int tam_httpc_pool_create(uv_loop_t *loop, const struct tam_httpc_opts *opts,
                          struct tam_httpc_pool **out)
{
    *out = NULL;
    if (loop == NULL || opts == NULL) {
        return TAM_EINVAL;
    }
    struct tam_httpc_pool *p = tam_calloc(1, sizeof(*p));
    if (p == NULL) {
        return TAM_ENOMEM;
    }
    p->loop = loop;
    list_init(&p->queue);
    list_init(&p->conns);
    list_init(&p->idle);
    settings_init(&p->settings);
    int err = pool_configure(p, opts);
    if (err == TAM_OK) {
        err = uv_timer_init(loop, &p->kick);
    }
    if (err < 0) {
        tam_httpc__tls_ctx_destroy(p->tls_ctx);
        tam_free(p->host_hdr);
        tam_free(p->tls_name);
        tam_free(p);
        return err;
    }
    p->kick.data = p;
    p->n_handles = 1;
    *out = p;
    return TAM_OK;
}
