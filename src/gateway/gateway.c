/*
 * One gateway on one loop: the TEEP listener (HTTP or HTTPS), the admin listener, the
 * Redis command connection and the result reader, the tenant registry. Requests are
 * routed here (TEEP-DIGEST 2) and handed to connect.c or message.c.
 */
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tam/tstore.h"
#include "tam/tls.h"

#define ADMIN_SHUTDOWN_MS 1000u
#define TEEP_MEDIA        "application/teep+cbor"

static const int status_list[TAM_GW_N_STATUS] = TAM_GW_STATUS_LIST;

uint64_t tam_gw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *tam_gw_outcome_name(enum tam_gw_outcome o)
{
    static const char *const names[TAM_GW_OUT_COUNT_] = {
        "accepted",           "dropped_cose",          "dropped_unknown_kid", "dropped_signature",
        "dropped_teep",       "dropped_unknown_token", "dropped_tenant",      "dropped_expired",
        "dropped_wrong_type", "dropped_replay",        "unavailable",         "timeout",
        "rate_limited",
    };
    return (unsigned)o < TAM_GW_OUT_COUNT_ ? names[o] : "?";
}

void tam_gw_count(struct tam_gw *gw, int type, enum tam_gw_outcome o)
{
    if (type < 0 || type >= TAM_GW_TYPES) {
        type = 0;
    }
    gw->stats.msgs[type][o]++;
}

static void count_status(struct tam_gw *gw, int status)
{
    for (size_t i = 0; i < TAM_GW_N_STATUS; i++) {
        if (status_list[i] == status) {
            gw->stats.status[i]++;
            return;
        }
    }
}

/*
 * RFC 9205 4.13 headers: on every answer (harmless without content), after an optional
 * first header (Content-Type or Allow). Never Cache-Control (TEEP-DIGEST 2).
 */
static void respond(struct tam_gw *gw, struct tam_http_request *req, int status,
                    const char *first_name, const char *first_value, const uint8_t *body,
                    size_t len)
{
    const struct tam_http_header h[] = {
        {first_name, first_value},
        {"X-Content-Type-Options", "nosniff"},
        {"Content-Security-Policy", "default-src 'none'"},
        {"Referrer-Policy", "no-referrer"},
    };
    size_t skip = first_name == NULL ? 1 : 0;
    count_status(gw, status);
    (void)tam_http_respond(req, status, h + skip, TAM_ARRAY_LEN(h) - skip, body, len);
}

void tam_gw_respond_status(struct tam_gw *gw, struct tam_http_request *req, int status)
{
    respond(gw, req, status, NULL, NULL, NULL, 0);
}

void tam_gw_respond_teep(struct tam_gw *gw, struct tam_http_request *req, const uint8_t *body,
                         size_t len)
{
    respond(gw, req, 200, "Content-Type", TEEP_MEDIA, body, len);
}

void tam_gw_respond_429(struct tam_gw *gw, struct tam_http_request *req)
{
    respond(gw, req, 429, "Retry-After", "1", NULL, 0);
}

static void respond_405(struct tam_gw *gw, struct tam_http_request *req)
{
    respond(gw, req, 405, "Allow", "POST", NULL, 0);
}

/* ---- deferred CPU work ---- */

static void run_work(struct tam_gw *gw, size_t max)
{
    for (size_t i = 0; i < max && gw->work_head != NULL; i++) {
        struct tam_gw_work *w = gw->work_head;
        gw->work_head = w->next;
        if (gw->work_head == NULL) {
            gw->work_tail = NULL;
        }
        gw->n_work--;
        w->fn(w); /* may queue more work */
    }
}

static void on_work_idle(uv_idle_t *h)
{
    struct tam_gw *gw = h->data;
    run_work(gw, TAM_GW_WORK_BATCH);
    if (gw->work_head == NULL) {
        uv_idle_stop(h);
    }
}

void tam_gw_defer(struct tam_gw *gw, struct tam_gw_work *w, void (*fn)(struct tam_gw_work *w))
{
    w->fn = fn;
    w->next = NULL;
    if (gw->work_tail != NULL) {
        gw->work_tail->next = w;
    } else {
        gw->work_head = w;
    }
    gw->work_tail = w;
    gw->n_work++;
    (void)uv_idle_start(&gw->work_idle, on_work_idle);
}

/* ---- TEEP listener ---- */

/* A TEEP request for a known tenant: method and header checks, then the TEEP flows. */
static void dispatch(struct tam_gw *gw, struct tam_http_request *req, struct tam_tenant *t)
{
    int status = 0;
    if (strcmp(tam_http_request_method(req), "POST") != 0) {
        status = 405;
    } else if (!tam_gw_accept_ok(tam_http_request_header(req, "Accept"))) {
        status = 406;
    } else if (tam_http_request_body(req).len > 0 &&
               !tam_gw_content_type_ok(tam_http_request_header(req, "Content-Type"))) {
        status = 415;
    }
    if (status == 405) {
        respond_405(gw, req);
    } else if (status != 0) {
        tam_gw_respond_status(gw, req, status);
    }
    if (status != 0) {
        tam_tenant_unref(t);
    } else if (tam_http_request_body(req).len == 0) {
        tam_gw_connect(gw, req, t);
    } else {
        tam_gw_message(gw, req, t);
    }
}

static void on_tenant(struct tam_gw *gw, struct tam_tenant *t, int err, void *arg)
{
    struct tam_http_request *req = arg;
    if (t != NULL) {
        dispatch(gw, req, t);
    } else {
        tam_gw_respond_status(gw, req, err == TAM_OK ? 404 : 503);
    }
}

/*
 * The tenant a request addresses: configuration-file tenants first, then the admin API's
 * (Redis). Unknown tenants and non-TAM paths get 404.
 */
static void on_api_request(struct tam_http_request *req, void *ctx)
{
    struct tam_gw *gw = ctx;
    char id[TAM_TENANT_ID_MAX + 1];
    enum tam_gw_route r = tam_gw_route_parse(tam_http_request_target(req), id);
    if (r == TAM_GW_ROUTE_DEFAULT) {
        (void)snprintf(id, sizeof(id), "%s", gw->cfg.default_tenant);
    }
    if (r == TAM_GW_ROUTE_NONE || id[0] == '\0') {
        tam_gw_respond_status(gw, req, 404);
        return;
    }
    struct tam_tenant *t = tam_gw_tenants_get(gw->tenants, id);
    if (t != NULL || gw->rtenants == NULL) {
        on_tenant(gw, t, TAM_OK, req);
        return;
    }
    tam_gw_rtenants_lookup(gw->rtenants, id, on_tenant, req);
}

/* ---- Redis ---- */

static void on_group(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    if (status == TAM_EREDIS && strncmp(reply->str, "BUSYGROUP", 9) != 0) {
        tam_log(TAM_LOG_WARN, "event=job_group_failed err=%s", reply->str);
    }
}

static void on_operator_token(void *arg, int err, const char *token)
{
    struct tam_gw *gw = arg;
    if (err != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=operator_token_failed err=%s", tam_errname(err));
        return;
    }
    gw->operator_ensured = true;
    if (token == NULL) {
        return; /* one exists already (shown once, when it was created) */
    }
    char buf[TAM_CONFIG_STR_MAX + 32];
    const char *path = tam_gw_secret_path(&gw->cfg, TAM_GW_SECRET_OPERATOR_TOKEN, buf, sizeof(buf));
    err = path != NULL ? tam_gw_write_token_file(path, token) : TAM_ECONFIG;
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=operator_token_unsaved path=\"%s\" err=%s",
                path != NULL ? path : "", tam_errname(err));
        return;
    }
    tam_log(TAM_LOG_INFO, "event=operator_token_created path=\"%s\"", path);
    (void)fprintf(stderr, "tamd: operator token written to %s\n", path);
}

static void on_rc_state(struct tam_redis *r, enum tam_redis_state state, int err, void *data)
{
    struct tam_gw *gw = data;
    if (state != TAM_REDIS_CONNECTED) {
        tam_log(TAM_LOG_WARN, "event=redis_disconnected conn=commands err=%s", tam_errname(err));
        return;
    }
    tam_log(TAM_LOG_INFO, "event=redis_connected conn=commands");
    /* Jobs stored before any worker started must not be skipped: create the group at 0. */
    if (tam_redis_command(r, on_group, NULL, "XGROUP CREATE %s %s 0 MKSTREAM", TAM_KEY_JOBS,
                          TAM_KEY_JOBS_GROUP) != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=job_group_failed err=submit");
    }
    tam_gw_devkeys_register(gw);
    if (gw->adm != NULL && !gw->operator_ensured &&
        tam_tstore_operator_ensure(r, on_operator_token, gw) != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=operator_token_failed err=submit");
    }
}

/* ---- creation ---- */

static void make_id(struct tam_gw *gw)
{
    char host[64] = "host";
    (void)gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_';
        *p = ok ? *p : '_';
    }
    uint8_t rnd[4] = {0};
    if (tam_random(rnd, sizeof(rnd)) != TAM_OK) {
        memset(rnd, 0, sizeof(rnd)); /* the pid still tells processes on one host apart */
    }
    char hex[9];
    tam_hex_encode(rnd, sizeof(rnd), hex);
    (void)snprintf(gw->id, sizeof(gw->id), "%.48s-%ld-%s", host, (long)getpid(), hex);
    tam_key_results(gw->results_key, gw->id);
}

static void fill_limits(const struct tam_config *c, struct tam_http_limits *l)
{
    tam_http_limits_default(l);
    l->header_bytes = (uint32_t)c->max_header_bytes;
    l->header_count = c->max_headers;
    l->body_bytes = (uint32_t)c->max_body;
    l->header_timeout_ms = (uint32_t)c->header_timeout_ms;
    l->body_timeout_ms = (uint32_t)c->body_timeout_ms;
    l->idle_timeout_ms = (uint32_t)c->idle_timeout_ms;
    l->write_timeout_ms = (uint32_t)c->write_timeout_ms;
    l->max_connections = c->max_connections;
    l->write_queue_bytes = (uint32_t)c->write_queue;
}

/* A numeric host for the listener: resolves a configured name once, at startup. */
static int numeric_host(const struct tam_addr *a, char *out, size_t outsz)
{
    if (a->kind != TAM_ADDR_HOST) {
        (void)snprintf(out, outsz, "%s", a->host);
        return TAM_OK;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(a->host, NULL, &hints, &res) != 0 || res == NULL) {
        return TAM_ECONFIG;
    }
    int rc =
        getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)outsz, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc == 0 ? TAM_OK : TAM_ECONFIG;
}

static int listen_on(struct tam_gw *gw, const struct tam_addr *a, const char *name,
                     struct tam_http_server_config *sc, struct tam_http_server **out)
{
    char host[TAM_ADDR_HOST_MAX];
    sc->name = name;
    sc->handler_ctx = gw;
    if (a->kind == TAM_ADDR_UNIX) {
        sc->unix_path = a->path;
    } else {
        int err = numeric_host(a, host, sizeof(host));
        if (err != TAM_OK) {
            tam_log(TAM_LOG_ERROR, "event=listen_failed srv=%s err=resolve", name);
            return err;
        }
        sc->host = host;
        sc->port = a->port;
    }
    int err = tam_http_server_create(gw->loop, sc, out);
    if (err == TAM_OK) {
        char buf[TAM_ADDR_HOST_MAX + 16];
        tam_log(TAM_LOG_INFO, "event=listening srv=%s addr=%s port=%u tls=%d", name,
                tam_config_format_addr(a, buf, sizeof(buf)), tam_http_server_port(*out),
                sc->tls != NULL);
    }
    return err;
}

/* A TLS context for one listener (NULL when cert is empty: plain HTTP). */
static int make_tls_for(const struct tam_config *c, const char *cert, const char *key,
                        struct tam_tls_ctx **out)
{
    *out = NULL;
    if (cert[0] == '\0') {
        return TAM_OK;
    }
    struct tam_tls_options o = {
        .cert_file = cert,
        .key_file = key,
        .allow_tls12 = c->tls_min_version == TAM_CONFIG_TLS_1_2,
    };
    int err = tam_tls_ctx_create(&o, out);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=tls_failed cert=%s err=%s", cert, tam_errname(err));
    }
    return err;
}

static int make_tls(const struct tam_config *c, struct tam_tls_ctx **out)
{
    return make_tls_for(c, c->tls_cert, c->tls_key, out);
}

static int make_admin_tls(const struct tam_config *c, struct tam_tls_ctx **out)
{
    return make_tls_for(c, c->admin_tls_cert, c->admin_tls_key, out);
}

static int start_listeners(struct tam_gw *gw)
{
    struct tam_http_server_config sc;
    memset(&sc, 0, sizeof(sc));
    fill_limits(&gw->cfg, &sc.limits);
    sc.handler = on_api_request;
    sc.tls = gw->tls;
    int err = listen_on(gw, &gw->cfg.listen, "api", &sc, &gw->api);
    if (err != TAM_OK) {
        return err;
    }
    memset(&sc, 0, sizeof(sc));
    tam_http_limits_default(&sc.limits);
    sc.limits.max_connections = 256;
    /* Component uploads are the largest admin bodies; without the admin API, 64 KiB. */
    sc.limits.body_bytes = gw->adm != NULL ? (uint32_t)tam_admin_body_limit(gw->adm) : 64u << 10;
    sc.limits.header_timeout_ms = 5000;
    sc.handler = tam_gw_admin_handle;
    sc.tls = gw->admin_tls;
    return listen_on(gw, &gw->cfg.admin_listen, "admin", &sc, &gw->admin);
}

static int start_redis(struct tam_gw *gw)
{
    struct tam_redis_opts o = {
        .command_timeout_ms = (uint32_t)gw->cfg.redis_timeout_ms,
        .connect_timeout_ms = (uint32_t)gw->cfg.redis_timeout_ms,
        .max_inflight = TAM_GW_REDIS_INFLIGHT,
        .name = "redis",
    };
    int err = tam_redis_create(gw->loop, gw->redis_addr, &o, on_rc_state, gw, &gw->rc);
    if (err == TAM_OK) {
        err = tam_gw_results_create(gw, &gw->results);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=redis_failed addr=%s err=%s", gw->redis_addr,
                tam_errname(err));
    }
    return err;
}

/* The admin API needs the KEK (tenants' keys are sealed under it); without one, /v1 is 503. */
static int start_admin(struct tam_gw *gw)
{
    tam_gw_secrets_load(&gw->cfg, &gw->secrets);
    if (!gw->secrets.have_kek) {
        return TAM_OK;
    }
    struct tam_admin_opts o = {.kek = gw->secrets.kek, .worker_seal_pub = gw->secrets.worker_pub};
    int err = tam_admin_create(gw->loop, gw->rc, &o, &gw->adm);
    if (err == TAM_OK) {
        err = tam_gw_rtenants_create(gw, &gw->rtenants);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=admin_failed err=%s", tam_errname(err));
    }
    return err;
}

static int build_tenants(struct tam_gw *gw, const struct tam_config *cfg,
                         struct tam_gw_tenants **out)
{
    struct tam_buf msg;
    tam_buf_init(&msg, 1024);
    int err = tam_gw_tenants_build(cfg, out, &msg);
    if (err != TAM_OK) {
        char q[600];
        tam_log(TAM_LOG_ERROR, "event=tenants_failed err=%s msg=%s", tam_errname(err),
                tam_log_quote(msg.data, msg.len, q, sizeof(q)));
    }
    tam_buf_finish(&msg);
    return err;
}

int tam_gw_check_config(const struct tam_config *cfg)
{
    struct tam_gw_tenants *reg = NULL;
    struct tam_tls_ctx *tls = NULL;
    int err = build_tenants(NULL, cfg, &reg);
    if (err == TAM_OK) {
        err = make_tls(cfg, &tls);
    }
    tam_tls_ctx_unref(tls);
    tls = NULL;
    if (err == TAM_OK) {
        err = make_admin_tls(cfg, &tls);
    }
    tam_gw_tenants_destroy(reg);
    tam_tls_ctx_unref(tls);
    return err;
}

int tam_gw_create(uv_loop_t *loop, struct tam_config *cfg, const char *redis_addr,
                  struct tam_gw **out)
{
    struct tam_gw *gw = tam_calloc(1, sizeof(*gw));
    if (gw == NULL) {
        tam_config_finish(cfg);
        return TAM_ENOMEM;
    }
    gw->loop = loop;
    gw->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    (void)snprintf(gw->redis_addr, sizeof(gw->redis_addr), "%s",
                   redis_addr != NULL ? redis_addr : gw->cfg.redis);
    make_id(gw);
    int err = uv_idle_init(loop, &gw->work_idle);
    gw->work_idle.data = gw;
    gw->work_open = err == 0;
    if (err == TAM_OK) {
        err = build_tenants(gw, &gw->cfg, &gw->tenants);
    }
    if (err == TAM_OK) {
        err = make_tls(&gw->cfg, &gw->tls);
    }
    if (err == TAM_OK) {
        err = make_admin_tls(&gw->cfg, &gw->admin_tls);
    }
    if (err == TAM_OK) {
        err = tam_gw_keycache_init(&gw->keys, TAM_GW_KEYCACHE_MAX, TAM_GW_KEYCACHE_TTL_MS);
    }
    if (err == TAM_OK) {
        err = tam_gw_pending_init(gw);
    }
    if (err == TAM_OK) {
        err = start_redis(gw);
    }
    if (err == TAM_OK) {
        err = start_admin(gw);
    }
    if (err == TAM_OK) {
        err = start_listeners(gw);
    }
    if (err != TAM_OK) {
        tam_gw_destroy(gw);
        return err;
    }
    tam_log(TAM_LOG_INFO, "event=gateway_started id=%s tenants=%zu redis=%s", gw->id,
            tam_gw_tenants_count(gw->tenants), gw->redis_addr);
    *out = gw;
    return TAM_OK;
}

/* ---- readiness, reload, shutdown ---- */

bool tam_gw_ready(const struct tam_gw *gw)
{
    return !gw->draining && gw->api != NULL && gw->rc != NULL && tam_redis_connected(gw->rc) &&
           gw->results != NULL && tam_gw_results_connected(gw->results);
}

static void warn_restart_needed(const struct tam_config *o, const struct tam_config *n)
{
    char a[300], b[300];
    tam_config_format_addr(&o->listen, a, sizeof(a));
    tam_config_format_addr(&n->listen, b, sizeof(b));
    bool listen = strcmp(a, b) != 0;
    tam_config_format_addr(&o->admin_listen, a, sizeof(a));
    tam_config_format_addr(&n->admin_listen, b, sizeof(b));
    bool changed = listen || strcmp(a, b) != 0 || strcmp(o->redis, n->redis) != 0 ||
                   (o->tls_cert[0] == '\0') != (n->tls_cert[0] == '\0') ||
                   (o->admin_tls_cert[0] == '\0') != (n->admin_tls_cert[0] == '\0') ||
                   o->max_body != n->max_body || o->max_connections != n->max_connections ||
                   o->procs != n->procs;
    if (changed) {
        tam_log(TAM_LOG_WARN, "event=reload_partial msg=\"listeners, limits, redis and procs "
                              "change only with a restart\"");
    }
}

int tam_gw_reload(struct tam_gw *gw)
{
    struct tam_config nc;
    struct tam_buf msg;
    tam_buf_init(&msg, 1024);
    int err = tam_config_reload(&gw->cfg, &nc, &msg);
    if (err != TAM_OK) {
        char q[600];
        tam_log(TAM_LOG_ERROR, "event=reload_failed err=%s msg=%s", tam_errname(err),
                tam_log_quote(msg.data, msg.len, q, sizeof(q)));
    }
    tam_buf_finish(&msg);
    struct tam_gw_tenants *reg = NULL;
    struct tam_tls_ctx *tls = NULL, *admin_tls = NULL;
    if (err == TAM_OK) {
        err = build_tenants(gw, &nc, &reg);
    }
    if (err == TAM_OK && gw->tls != NULL) {
        err = make_tls(&nc, &tls);
    }
    if (err == TAM_OK && gw->admin_tls != NULL) {
        err = make_admin_tls(&nc, &admin_tls);
    }
    if (err != TAM_OK) {
        gw->stats.reload_failures++;
        tam_tls_ctx_unref(tls);
        tam_gw_tenants_destroy(reg);
        tam_config_finish(&nc);
        tam_log(TAM_LOG_WARN, "event=reload_rejected msg=\"keeping the running configuration\"");
        return err;
    }
    if (tls != NULL) {
        if (tam_http_server_set_tls(gw->api, tls) != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=tls_reload_failed");
        }
        tam_tls_ctx_unref(gw->tls);
        gw->tls = tls;
    }
    if (admin_tls != NULL) {
        if (tam_http_server_set_tls(gw->admin, admin_tls) != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=tls_reload_failed srv=admin");
        }
        tam_tls_ctx_unref(gw->admin_tls);
        gw->admin_tls = admin_tls;
    }
    warn_restart_needed(&gw->cfg, &nc);
    tam_gw_tenants_destroy(gw->tenants); /* requests in flight hold their own tenant refs */
    gw->tenants = reg;
    tam_config_finish(&gw->cfg);
    gw->cfg = nc;
    tam_log_configure(gw->cfg.log_level, (enum tam_log_format)gw->cfg.log_format, NULL);
    gw->stats.reloads++;
    if (tam_redis_connected(gw->rc)) {
        tam_gw_devkeys_register(gw);
    }
    tam_log(TAM_LOG_INFO, "event=reloaded tenants=%zu tls=%d", tam_gw_tenants_count(gw->tenants),
            gw->tls != NULL);
    return TAM_OK;
}

static void finish_done(struct tam_gw *gw)
{
    tam_log(TAM_LOG_INFO, "event=gateway_stopped id=%s", gw->id);
    if (gw->on_done != NULL) {
        gw->on_done(gw, gw->done_arg);
    }
}

static void on_work_closed(uv_handle_t *h)
{
    finish_done(h->data); /* the last handle of the gateway: on_done may free it */
}

static void on_results_stopped(void *arg)
{
    struct tam_gw *gw = arg;
    gw->results = NULL;
    tam_admin_destroy(gw->adm); /* its requests in flight are answered by the Redis failure */
    gw->adm = NULL;
    tam_redis_destroy(gw->rc); /* fails whatever is still in flight; its callbacks answer */
    gw->rc = NULL;
    gw->work_open = false;
    uv_close((uv_handle_t *)&gw->work_idle, on_work_closed);
}

static void on_results_deleted(struct tam_redis *r, int status, const redisReply *reply,
                               void *privdata)
{
    struct tam_gw *gw = privdata;
    tam_gw_results_stop(gw->results, on_results_stopped, gw);
}

static void on_admin_done(struct tam_http_server *srv, void *arg)
{
    struct tam_gw *gw = arg;
    gw->admin_done = true;
    /* Every TEEP connection is gone: queued work and waiting requests answer no one. */
    run_work(gw, SIZE_MAX);
    tam_gw_message_fail_all(gw);
    if (tam_redis_command(gw->rc, on_results_deleted, gw, "DEL %s", gw->results_key) != TAM_OK) {
        tam_gw_results_stop(gw->results, on_results_stopped, gw);
    }
}

static void on_api_done(struct tam_http_server *srv, void *arg)
{
    struct tam_gw *gw = arg;
    gw->api_done = true;
    /* The admin listener stays up while the TEEP listener drains: /readyz says 503. */
    tam_http_server_shutdown(gw->admin, ADMIN_SHUTDOWN_MS, on_admin_done, gw);
}

void tam_gw_shutdown(struct tam_gw *gw, void (*on_done)(struct tam_gw *, void *), void *arg)
{
    if (gw->draining) {
        return;
    }
    gw->draining = true;
    gw->on_done = on_done;
    gw->done_arg = arg;
    tam_log(TAM_LOG_INFO, "event=gateway_draining id=%s waiting=%zu deadline_ms=%llu", gw->id,
            gw->n_pending, (unsigned long long)gw->cfg.shutdown_timeout_ms);
    tam_http_server_shutdown(gw->api, (uint32_t)gw->cfg.shutdown_timeout_ms, on_api_done, gw);
}

static void free_gw(struct tam_gw *gw)
{
    tam_gw_pending_finish(gw);
    tam_gw_keycache_finish(&gw->keys);
    tam_gw_tenants_destroy(gw->tenants);
    tam_gw_rtenants_destroy(gw->rtenants); /* after the Redis client: no callback is left */
    tam_tls_ctx_unref(gw->tls);
    tam_tls_ctx_unref(gw->admin_tls);
    tam_gw_secrets_finish(&gw->secrets);
    tam_config_finish(&gw->cfg);
    tam_free(gw);
}

static void on_work_closed_free(uv_handle_t *h)
{
    free_gw(h->data);
}

void tam_gw_destroy(struct tam_gw *gw)
{
    if (gw == NULL) {
        return;
    }
    tam_http_server_destroy(gw->api);
    tam_http_server_destroy(gw->admin);
    if (gw->results != NULL) {
        tam_gw_results_stop(gw->results, NULL, NULL);
    }
    tam_admin_destroy(gw->adm);
    gw->adm = NULL;
    tam_redis_destroy(gw->rc);
    if (gw->work_open) {
        /* Not shut down (a failed start): the memory goes once the handle is closed. */
        gw->work_open = false;
        uv_close((uv_handle_t *)&gw->work_idle, on_work_closed_free);
        return;
    }
    free_gw(gw);
}
