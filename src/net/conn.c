/*
 * Connection lifecycle: reading, the one-request-at-a-time state machine, the write pump
 * with its queue ceiling, timers, graceful and immediate close. A connection's memory is
 * released only in the last close callback, so every path below may close it and keep
 * using the pointer until it returns to the loop.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "write_now.h"

struct wreq {
    uv_write_t req;
    struct tam_net_conn *c;
    size_t len;
    uint8_t data[]; /* the copied bytes when the caller asked for a copy */
};

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void conn_kick(struct tam_net_conn *c);

static const struct tam_http_limits *limits(const struct tam_net_conn *c)
{
    return &c->srv->limits;
}

static bool is_closed(const struct tam_net_conn *c)
{
    return c->phase == TAM_NET_CLOSED;
}

static bool can_parse(const struct tam_net_conn *c)
{
    return c->phase == TAM_NET_IDLE || c->phase == TAM_NET_HEADERS || c->phase == TAM_NET_BODY;
}

static void on_closed(uv_handle_t *h)
{
    struct tam_net_conn *c = h->data;
    if (--c->open_handles > 0) {
        return;
    }
    tam_net__request_free(c->req); /* only a request still being parsed is left here */
    c->req = NULL;
    tam_net__tls_free(c);
    tam_buf_finish(&c->in);
    tam_buf_finish(&c->out);
    tam_net__server_conn_gone(c->srv, c); /* may free the server: touch it no more */
    tam_free(c);
}

void tam_net__conn_close(struct tam_net_conn *c, const char *why)
{
    if (is_closed(c)) {
        return;
    }
    bool handler = c->phase == TAM_NET_HANDLER;
    c->phase = TAM_NET_CLOSED;
    tam_log(TAM_LOG_DEBUG, "event=conn_close srv=%s conn=%llu reason=%s", c->srv->name,
            (unsigned long long)c->id, why);
    if (handler) {
        tam_net__request_abort(c); /* runs the handler's on_abort */
    }
    uv_close((uv_handle_t *)&c->timer, on_closed);
    uv_close(&c->h.handle, on_closed);
}

static void on_timer(uv_timer_t *t)
{
    struct tam_net_conn *c = t->data;
    struct tam_http_stats *st = &c->srv->stats;
    const char *why = "linger done";
    switch (c->timer_kind) {
    case TAM_NET_T_HEADER:
        st->drop_header_timeout++;
        why = "header timeout";
        break;
    case TAM_NET_T_BODY:
        st->drop_body_timeout++;
        why = "body timeout";
        break;
    case TAM_NET_T_WRITE:
        st->drop_write_timeout++;
        why = "write timeout";
        break;
    case TAM_NET_T_IDLE:
        st->idle_closed++;
        why = "idle";
        break;
    default:
        break;
    }
    if (c->timer_kind != TAM_NET_T_IDLE && c->timer_kind != TAM_NET_T_LINGER) {
        tam_log(TAM_LOG_INFO, "event=conn_timeout srv=%s conn=%llu reason=\"%s\"", c->srv->name,
                (unsigned long long)c->id, why);
    }
    c->timer_kind = TAM_NET_T_NONE;
    tam_net__conn_close(c, why);
}

void tam_net__conn_arm(struct tam_net_conn *c, enum tam_net_timer kind, uint32_t ms)
{
    if (is_closed(c)) {
        return;
    }
    c->timer_kind = kind;
    if (kind == TAM_NET_T_NONE) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* Reading runs unless input is backed up, the write queue is over its ceiling, or the
 * peer is done; while lingering it always runs, to drain and discard. */
static bool want_read(const struct tam_net_conn *c)
{
    if (is_closed(c) || c->eof) {
        return false;
    }
    if (c->phase == TAM_NET_LINGER) {
        return true;
    }
    size_t queued = uv_stream_get_write_queue_size(&c->h.stream);
    return c->in.len < limits(c)->pipeline_bytes && queued <= limits(c)->write_queue_bytes;
}

static void update_reading(struct tam_net_conn *c)
{
    bool want = want_read(c);
    if (want && !c->reading) {
        int err = uv_read_start(&c->h.stream, on_alloc, on_read);
        if (err != 0) {
            tam_net__conn_close(c, uv_err_name(err));
            return;
        }
        c->reading = true;
    } else if (!want && c->reading && !is_closed(c)) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
    }
}

bool tam_net__conn_rx_wanted(const struct tam_net_conn *c)
{
    return !is_closed(c) && c->phase != TAM_NET_LINGER && !c->eof &&
           c->in.len < limits(c)->pipeline_bytes;
}

static void buf_consume(struct tam_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

/* Parses buffered input while the connection is between requests or inside one. */
static void conn_process(struct tam_net_conn *c)
{
    if (c->in_process) {
        return;
    }
    c->in_process = true;
    while (can_parse(c) && c->in.len > 0) {
        size_t used = tam_net__parse(c, (const char *)c->in.data, c->in.len);
        buf_consume(&c->in, used);
        if (used == 0) {
            break;
        }
    }
    c->in_process = false;
}

/* Plaintext from the socket or from TLS. Parsed in place when nothing is queued ahead
 * of it; whatever the parser leaves (pipelined requests) is buffered. */
void tam_net__conn_rx(struct tam_net_conn *c, const char *data, size_t len)
{
    if (can_parse(c) && c->in.len == 0 && !c->in_process) {
        c->in_process = true;
        size_t used = tam_net__parse(c, data, len);
        c->in_process = false;
        data += used;
        len -= used;
    }
    if (len == 0 || is_closed(c) || c->phase == TAM_NET_LINGER) {
        return;
    }
    if (tam_buf_append(&c->in, data, len) != TAM_OK) {
        tam_net__conn_close(c, "input overflow");
        return;
    }
    conn_process(c);
}

/* Runs after every event: parse what is buffered, decrypt more if TLS, adjust reading. */
static void conn_kick(struct tam_net_conn *c)
{
    if (c->kicking || is_closed(c)) {
        return;
    }
    c->kicking = true;
    conn_process(c);
    if (c->tls != NULL && !is_closed(c)) {
        tam_net__tls_drain(c);
    }
    if (!is_closed(c)) {
        update_reading(c);
    }
    c->kicking = false;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct tam_net_conn *c = h->data;
    buf->base = c->srv->rbuf;
    buf->len = sizeof(c->srv->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct tam_net_conn *c = s->data;
    if (n == 0 || is_closed(c)) {
        return;
    }
    if (n < 0) {
        if (n == UV_EOF) {
            tam_net__conn_eof(c);
        } else {
            tam_net__conn_close(c, uv_err_name((int)n));
        }
        return;
    }
    c->srv->stats.bytes_in += (uint64_t)n;
    if (c->phase == TAM_NET_LINGER) {
        return; /* draining before close: discard */
    }
    if (c->tls != NULL) {
        tam_net__tls_rx(c, buf->base, (size_t)n);
    } else {
        tam_net__conn_rx(c, buf->base, (size_t)n);
    }
    conn_kick(c);
}

/* The peer will send no more. A request the handler holds is aborted (the client gave
 * up, as nginx assumes); a response being written is finished, then the conn closes. */
void tam_net__conn_eof(struct tam_net_conn *c)
{
    c->eof = true;
    switch (c->phase) {
    case TAM_NET_FLUSH:
        c->keep_alive = false;
        update_reading(c);
        break;
    case TAM_NET_LINGER:
        if (c->shutdown_done) {
            tam_net__conn_close(c, "peer done");
        }
        break;
    case TAM_NET_HANDLER:
        tam_net__conn_close(c, "peer gone before response");
        break;
    default:
        tam_net__conn_close(c, "peer closed");
        break;
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct tam_net_conn *c = tam_container_of(req, struct tam_net_conn, shutdown_req);
    if (is_closed(c)) {
        return;
    }
    c->shutdown_done = true;
    if (status < 0 || c->eof) {
        tam_net__conn_close(c, status < 0 ? uv_err_name(status) : "done");
    }
}

void tam_net__conn_finish(struct tam_net_conn *c)
{
    if (is_closed(c) || c->phase == TAM_NET_LINGER) {
        return;
    }
    if (c->phase == TAM_NET_HANDLER) {
        tam_net__conn_close(c, "finish while handling");
        return;
    }
    if (c->tls != NULL) {
        tam_net__tls_close_notify(c);
    }
    c->phase = TAM_NET_LINGER;
    c->in.len = 0;
    int err = uv_shutdown(&c->shutdown_req, &c->h.stream, on_shutdown);
    if (err != 0) {
        tam_net__conn_close(c, uv_err_name(err));
        return;
    }
    tam_net__conn_arm(c, TAM_NET_T_LINGER, limits(c)->linger_ms);
    update_reading(c);
}

static void response_done(struct tam_net_conn *c)
{
    c->out_off = 0;
    if (c->out.cap > TAM_NET_PLAIN_SLICE) {
        tam_buf_finish(&c->out); /* do not keep a big response's memory while idle */
    } else {
        tam_buf_reset(&c->out);
    }
    if (!c->keep_alive || c->srv->draining || c->eof) {
        tam_net__conn_finish(c);
        return;
    }
    c->phase = TAM_NET_IDLE;
    tam_net__conn_arm(c, TAM_NET_T_IDLE, limits(c)->idle_timeout_ms);
}

/*
 * Hands slices of the response to the transport while libuv's queue is under the ceiling.
 * Slices the socket takes at once are written directly (tam_net__conn_write); once it is
 * full, queued writes complete only in a later loop iteration (their callbacks free the
 * TLS copies), so one run also stops after queueing a ceiling's worth; the callbacks
 * resume it. Bytes held in write requests thus stay below about twice the ceiling plus a
 * slice, whatever the response size.
 */
static void pump(struct tam_net_conn *c)
{
    size_t slice = c->tls != NULL ? TAM_NET_TLS_SLICE : TAM_NET_PLAIN_SLICE;
    size_t ceiling = limits(c)->write_queue_bytes;
    size_t queued_before = c->queued; /* on_write cannot run during this loop */
    while (c->phase == TAM_NET_FLUSH && c->out_off < c->out.len &&
           c->queued - queued_before < ceiling) {
        if (uv_stream_get_write_queue_size(&c->h.stream) > ceiling) {
            return; /* resumed from on_write as the queue drains */
        }
        size_t n = c->out.len - c->out_off;
        n = n < slice ? n : slice;
        const uint8_t *p = c->out.data + c->out_off;
        int err =
            c->tls != NULL ? tam_net__tls_write(c, p, n) : tam_net__conn_write(c, p, n, false);
        if (err != 0) {
            tam_net__conn_close(c, "write failed");
            return;
        }
        c->out_off += n;
    }
}

/* Hands out more of the response; ends it once all is handed out and written. */
static void flush(struct tam_net_conn *c)
{
    pump(c);
    if (c->phase == TAM_NET_FLUSH && c->out_off == c->out.len && c->writes_pending == 0) {
        response_done(c);
    }
}

static void after_write(struct tam_net_conn *c)
{
    if (c->phase == TAM_NET_FLUSH) {
        tam_net__conn_arm(c, TAM_NET_T_WRITE, limits(c)->write_timeout_ms);
        flush(c);
    }
    conn_kick(c);
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = tam_container_of(req, struct wreq, req);
    struct tam_net_conn *c = w->c;
    c->writes_pending--;
    c->queued -= w->len;
    c->srv->stats.write_queued -= w->len;
    if (status == 0) {
        c->srv->stats.bytes_out += w->len;
    }
    tam_free(w);
    if (is_closed(c)) {
        return;
    }
    if (status < 0) {
        tam_net__conn_close(c, uv_err_name(status));
        return;
    }
    after_write(c);
}

int tam_net__conn_write(struct tam_net_conn *c, const void *p, size_t n, bool copy)
{
    if (is_closed(c)) {
        return UV_ECANCELED;
    }
    if (c->writes_pending == 0) { /* else the queued writes go first */
        const uint8_t *at = p;
        size_t left = n;
        int err = tam_net_write_now(&c->h.stream, &at, &left);
        if (err != 0) {
            return err;
        }
        c->srv->stats.bytes_out += (uint64_t)(n - left);
        p = at;
        n = left;
        if (n == 0) {
            return 0;
        }
    }
    struct wreq *w = tam_malloc(sizeof(*w) + (copy ? n : 0));
    if (w == NULL) {
        return TAM_ENOMEM;
    }
    w->c = c;
    w->len = n;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    if (copy) {
        memcpy(w->data, p, n);
        b.base = (char *)w->data;
    }
    int err = uv_write(&w->req, &c->h.stream, &b, 1, on_write);
    if (err != 0) {
        tam_free(w);
        return err;
    }
    c->writes_pending++;
    c->queued += n;
    c->srv->stats.write_queued += n;
    return 0;
}

void tam_net__conn_start_response(struct tam_net_conn *c, bool keep_alive)
{
    c->phase = TAM_NET_FLUSH;
    c->keep_alive = keep_alive;
    c->out_off = 0;
    tam_net__conn_arm(c, TAM_NET_T_WRITE, limits(c)->write_timeout_ms);
    flush(c); /* a response the socket took at once ends here */
    conn_kick(c);
}

/* Shutdown started: idle connections go now, busy ones after their response. */
void tam_net__conn_drain(struct tam_net_conn *c)
{
    if (c->phase == TAM_NET_IDLE) {
        tam_net__conn_close(c, "shutdown");
    }
}

static void set_peer(struct tam_net_conn *c)
{
    int len = (int)sizeof(c->peer_addr);
    (void)snprintf(c->peer, sizeof(c->peer), "unix");
    if (c->srv->is_unix ||
        uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&c->peer_addr, &len) != 0) {
        return;
    }
    c->has_peer_addr = true;
    char ip[INET6_ADDRSTRLEN] = "";
    if (c->peer_addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&c->peer_addr;
        uv_ip6_name(a, ip, sizeof(ip));
        (void)snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&c->peer_addr;
        uv_ip4_name(a, ip, sizeof(ip));
        (void)snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    }
}

/* c->h is initialised and accepted; the server has linked and counted it. */
void tam_net__conn_accepted(struct tam_http_server *srv, struct tam_net_conn *c)
{
    c->h.handle.data = c;
    uv_timer_init(srv->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->phase = TAM_NET_IDLE;
    tam_buf_init(&c->in, (size_t)srv->limits.pipeline_bytes + TAM_NET_READ_BUF);
    tam_buf_init(&c->out, SIZE_MAX / 2);
    tam_net__parser_init(c);
    set_peer(c);
    if (!srv->is_unix) {
        (void)uv_tcp_nodelay(&c->h.tcp, 1); /* DEPS.md 8.3: Nagle + delayed ACK stalls */
    }
    tam_log(TAM_LOG_DEBUG, "event=conn_open srv=%s conn=%llu peer=%s tls=%d", srv->name,
            (unsigned long long)c->id, c->peer, srv->tls != NULL);
    if (srv->tls != NULL && tam_net__tls_new(c, srv->tls) != 0) {
        tam_net__conn_close(c, "tls setup failed");
        return;
    }
    tam_net__conn_arm(c, TAM_NET_T_HEADER, srv->limits.header_timeout_ms);
    update_reading(c);
}
