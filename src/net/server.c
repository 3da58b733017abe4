/*
 * Server object: configuration, connection registry, counters, certificate swap and the
 * graceful shutdown state machine. Shutdown is complete when the listener, every
 * connection and every server timer have run their close callbacks; only then does
 * on_done fire and may the memory go.
 */
#include <signal.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

void tam_net_process_init(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN; /* DEPS.md 8.2: a peer reset during uv_write must not kill us */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGPIPE, &sa, NULL);
}

const char *tam_net__errname(int err)
{
    return (err > TAM_ERR_FIRST_ && err < TAM_ERR_LAST_) ? tam_errname(err) : uv_err_name(err);
}

void tam_http_limits_default(struct tam_http_limits *l)
{
    l->header_bytes = 8192;
    l->header_count = 64;
    l->url_bytes = 4096;
    l->body_bytes = 1024u * 1024u;
    l->header_timeout_ms = 10000;
    l->body_timeout_ms = 30000;
    l->idle_timeout_ms = 60000;
    l->write_timeout_ms = 30000;
    l->linger_ms = 2000;
    l->max_connections = 10000;
    l->write_queue_bytes = 1024u * 1024u;
    l->pipeline_bytes = 64u * 1024u;
}

#define TAM_DEFAULT_FIELD(l, d, f) ((l)->f = (l)->f != 0 ? (l)->f : (d).f)

static void fill_limits(struct tam_http_limits *l, const struct tam_http_limits *in)
{
    struct tam_http_limits d;
    tam_http_limits_default(&d);
    *l = *in;
    TAM_DEFAULT_FIELD(l, d, header_bytes);
    TAM_DEFAULT_FIELD(l, d, header_count);
    TAM_DEFAULT_FIELD(l, d, url_bytes);
    TAM_DEFAULT_FIELD(l, d, body_bytes);
    TAM_DEFAULT_FIELD(l, d, header_timeout_ms);
    TAM_DEFAULT_FIELD(l, d, body_timeout_ms);
    TAM_DEFAULT_FIELD(l, d, idle_timeout_ms);
    TAM_DEFAULT_FIELD(l, d, write_timeout_ms);
    TAM_DEFAULT_FIELD(l, d, linger_ms);
    TAM_DEFAULT_FIELD(l, d, max_connections);
    TAM_DEFAULT_FIELD(l, d, write_queue_bytes);
    TAM_DEFAULT_FIELD(l, d, pipeline_bytes);
}

static void free_server(struct tam_http_server *srv)
{
    tam_tls_ctx_unref(srv->tls);
    tam_free(srv->name);
    tam_free(srv->unix_path);
    tam_free(srv);
}

static int init_server(struct tam_http_server *srv, struct uv_loop_s *loop,
                       const struct tam_http_server_config *cfg)
{
    srv->loop = loop;
    fill_limits(&srv->limits, &cfg->limits);
    srv->handler = cfg->handler;
    srv->handler_ctx = cfg->handler_ctx;
    srv->no_date = cfg->no_date;
    srv->is_unix = cfg->unix_path != NULL;
    srv->date_at = -1;
    srv->name = tam_strdup(cfg->name != NULL ? cfg->name : "http");
    srv->unix_path = srv->is_unix ? tam_strdup(cfg->unix_path) : NULL;
    if (srv->name == NULL || (srv->is_unix && srv->unix_path == NULL)) {
        return TAM_ENOMEM;
    }
    if (cfg->tls != NULL) {
        srv->tls = tam_tls_ctx_ref(cfg->tls);
    }
    return TAM_OK;
}

int tam_http_server_create(struct uv_loop_s *loop, const struct tam_http_server_config *cfg,
                           struct tam_http_server **out)
{
    if (loop == NULL || cfg == NULL || cfg->handler == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    struct tam_http_server *srv = tam_calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return TAM_ENOMEM;
    }
    int err = init_server(srv, loop, cfg);
    if (err == TAM_OK) {
        err = tam_net__listen(srv, cfg);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=listen_failed srv=%s err=%s", srv->name ? srv->name : "?",
                tam_net__errname(err));
        /* A listener handle, if one was opened, is closed by the loop; memory follows. */
        srv->draining = true;
        srv->destroy_requested = true;
        srv->done_fired = srv->handles == 0;
        tam_net__listener_close(srv);
        if (srv->handles == 0) {
            free_server(srv);
        }
        return err;
    }
    *out = srv;
    return TAM_OK;
}

uint16_t tam_http_server_port(const struct tam_http_server *srv)
{
    return srv->port;
}

const struct tam_http_stats *tam_http_server_stats(const struct tam_http_server *srv)
{
    return &srv->stats;
}

int tam_http_server_set_tls(struct tam_http_server *srv, struct tam_tls_ctx *ctx)
{
    if (srv->tls == NULL || ctx == NULL) {
        return TAM_EINVAL;
    }
    struct tam_tls_ctx *old = srv->tls;
    srv->tls = tam_tls_ctx_ref(ctx);
    tam_tls_ctx_unref(old); /* open connections hold their own references */
    tam_log(TAM_LOG_INFO, "event=tls_reload srv=%s", srv->name);
    return TAM_OK;
}

const char *tam_net__server_date(struct tam_http_server *srv)
{
    time_t now = time(NULL);
    if ((int64_t)now != srv->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        /* The C locale's day and month names are the English ones RFC 9110 wants. */
        (void)strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_at = (int64_t)now;
    }
    return srv->date;
}

/* ---- Registry and shutdown ---- */

static void on_deadline_closed(uv_handle_t *h)
{
    tam_net__server_handle_closed(h->data);
}

static void check_done(struct tam_http_server *srv)
{
    if (!srv->draining || srv->conns != NULL || srv->listener_open || srv->done_fired) {
        return;
    }
    if (srv->deadline_open) {
        srv->deadline_open = false;
        uv_close((uv_handle_t *)&srv->deadline, on_deadline_closed);
        return;
    }
    if (srv->handles > 0) {
        return;
    }
    srv->done_fired = true;
    tam_log(TAM_LOG_INFO, "event=shutdown_done srv=%s", srv->name);
    srv->in_done = true;
    if (srv->on_done != NULL) {
        srv->on_done(srv, srv->done_arg); /* may call tam_http_server_destroy */
    }
    srv->in_done = false;
    if (srv->destroy_requested) {
        free_server(srv);
    }
}

void tam_net__server_conn_added(struct tam_http_server *srv, struct tam_net_conn *c)
{
    c->srv = srv;
    c->id = ++srv->next_conn_id;
    c->prev = NULL;
    c->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->stats.conns_open++;
    srv->stats.conns_accepted++;
}

void tam_net__server_conn_gone(struct tam_http_server *srv, struct tam_net_conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    srv->stats.conns_open--;
    srv->stats.conns_closed++;
    check_done(srv);
}

void tam_net__server_handle_closed(struct tam_http_server *srv)
{
    srv->handles--;
    check_done(srv);
}

static void on_deadline(uv_timer_t *t)
{
    struct tam_http_server *srv = t->data;
    for (struct tam_net_conn *c = srv->conns; c != NULL; c = c->next) {
        if (c->phase == TAM_NET_CLOSED) {
            continue;
        }
        if (c->phase != TAM_NET_LINGER) {
            srv->stats.drop_shutdown++;
        }
        tam_net__conn_close(c, "shutdown deadline"); /* unlinks only in its close callback */
    }
    check_done(srv);
}

/* A later call may only bring the deadline forward. */
static void arm_deadline(struct tam_http_server *srv, uint32_t ms)
{
    uint64_t at = uv_now(srv->loop) + ms;
    if (!srv->deadline_open) {
        uv_timer_init(srv->loop, &srv->deadline);
        srv->deadline.data = srv;
        srv->deadline_open = true;
        srv->handles++;
    } else if (at >= srv->deadline_at) {
        return;
    }
    srv->deadline_at = at;
    uv_timer_start(&srv->deadline, on_deadline, ms, 0);
}

void tam_http_server_shutdown(struct tam_http_server *srv, uint32_t deadline_ms,
                              tam_http_done_fn on_done, void *arg)
{
    if (srv->done_fired) {
        return;
    }
    if (!srv->draining) {
        srv->draining = true;
        srv->on_done = on_done;
        srv->done_arg = arg;
        tam_log(TAM_LOG_INFO, "event=shutdown srv=%s deadline_ms=%u open=%llu", srv->name,
                deadline_ms, (unsigned long long)srv->stats.conns_open);
        tam_net__listener_close(srv);
        for (struct tam_net_conn *c = srv->conns; c != NULL; c = c->next) {
            tam_net__conn_drain(c);
        }
    }
    if (srv->conns != NULL) {
        arm_deadline(srv, deadline_ms);
    }
    check_done(srv);
}

void tam_http_server_destroy(struct tam_http_server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->done_fired && !srv->in_done) {
        free_server(srv);
        return;
    }
    srv->destroy_requested = true;
    tam_http_server_shutdown(srv, 0, NULL, NULL); /* no-op once done; freed after on_done */
}
