/*
 * The admin listener: /healthz (the process runs), /readyz (Redis connected, listener
 * up, not draining), /metrics (Prometheus text of this process). With --procs N every
 * gateway process binds the admin port too (SO_REUSEPORT), so a scrape sees one process;
 * tam_gw_info{id=...} says which.
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/metrics.h"

#define METRICS_MAX (1u << 20)

static const char *const class_names[6] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

static void text(struct tam_http_request *req, int status, const char *ctype, const void *body,
                 size_t len)
{
    const struct tam_http_header h[] = {{"Content-Type", ctype},
                                        {"X-Content-Type-Options", "nosniff"},
                                        {"Cache-Control", "no-store"}};
    (void)tam_http_respond(req, status, h, TAM_ARRAY_LEN(h), body, len);
}

/* The writer keeps the first error (sticky): callers check it once at the end. */
static void put_counter(struct tam_metrics_writer *w, const char *name, const char *help,
                        const struct tam_metrics_label *l, size_t n, uint64_t v)
{
    int err = tam_metrics_counter(w, name, help, l, n, v);
    (void)err;
}

static void put_gauge(struct tam_metrics_writer *w, const char *name, const char *help,
                      const struct tam_metrics_label *l, size_t n, double v)
{
    int err = tam_metrics_gauge(w, name, help, l, n, v);
    (void)err;
}

static void put_histogram(struct tam_metrics_writer *w, const char *name, const char *help,
                          const struct tam_metrics_label *l, size_t n, const double *bounds,
                          const uint64_t *counts, size_t nb, double sum, uint64_t count)
{
    int err = tam_metrics_histogram(w, name, help, l, n, bounds, counts, nb, sum, count);
    (void)err;
}

static int http_metrics(struct tam_metrics_writer *w, const struct tam_http_stats *s)
{
    put_gauge(w, "tam_http_connections", "Open TEEP connections.", NULL, 0, (double)s->conns_open);
    put_counter(w, "tam_http_connections_accepted_total", "TEEP connections accepted.", NULL, 0,
                s->conns_accepted);
    put_counter(w, "tam_http_requests_total", "Requests dispatched.", NULL, 0, s->requests);
    for (int c = 2; c <= 5; c++) {
        struct tam_metrics_label l = {"class", class_names[c]};
        put_counter(w, "tam_http_responses_total", "Responses by status class.", &l, 1,
                    s->responses[c]);
    }
    const struct {
        const char *reason;
        uint64_t v;
    } drops[] = {
        {"max_connections", s->drop_max_conns}, {"header_timeout", s->drop_header_timeout},
        {"body_timeout", s->drop_body_timeout}, {"write_timeout", s->drop_write_timeout},
        {"too_big", s->drop_too_big},           {"header_limit", s->drop_header_limit},
        {"bad_request", s->drop_bad_request},   {"tls", s->drop_tls},
        {"shutdown", s->drop_shutdown},         {"aborted", s->aborted},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(drops); i++) {
        struct tam_metrics_label l = {"reason", drops[i].reason};
        put_counter(w, "tam_http_drops_total", "Connections or requests dropped.", &l, 1,
                    drops[i].v);
    }
    put_counter(w, "tam_http_idle_closed_total", "Idle keep-alive closes.", NULL, 0,
                s->idle_closed);
    put_counter(w, "tam_http_tls_handshakes_total", "TLS handshakes.", NULL, 0, s->tls_handshakes);
    put_counter(w, "tam_http_bytes_in_total", "Bytes received.", NULL, 0, s->bytes_in);
    return tam_metrics_counter(w, "tam_http_bytes_out_total", "Bytes sent.", NULL, 0, s->bytes_out);
}

static int status_metrics(struct tam_metrics_writer *w, const struct tam_gw_stats *s)
{
    static const int list[TAM_GW_N_STATUS] = TAM_GW_STATUS_LIST;
    for (size_t i = 0; i < TAM_GW_N_STATUS; i++) {
        char code[8];
        (void)snprintf(code, sizeof(code), "%d", list[i]);
        struct tam_metrics_label l = {"code", code};
        put_counter(w, "tam_gw_responses_total",
                    "TEEP listener answers given by the gateway, by status.", &l, 1, s->status[i]);
    }
    return tam_metrics_writer_error(w);
}

static const char *type_label(int t)
{
    return t == 0 ? "unknown" : tam_teep_type_name((enum tam_teep_type)t);
}

static int teep_metrics(struct tam_metrics_writer *w, const struct tam_gw_stats *s)
{
    for (int t = 0; t < TAM_GW_TYPES; t++) {
        for (int o = 0; o < TAM_GW_OUT_COUNT_; o++) {
            /* Accepted answers of the three kinds always appear; other pairs once seen. */
            bool always =
                o == TAM_GW_OUT_ACCEPTED &&
                (t == TAM_TEEP_QUERY_RESPONSE || t == TAM_TEEP_SUCCESS || t == TAM_TEEP_ERROR);
            if (s->msgs[t][o] == 0 && !always) {
                continue;
            }
            struct tam_metrics_label l[] = {{"type", type_label(t)},
                                            {"outcome", tam_gw_outcome_name(o)}};
            put_counter(w, "tam_teep_messages_total",
                        "TEEP messages received, by type and outcome.", l, 2, s->msgs[t][o]);
        }
    }
    return tam_metrics_writer_error(w);
}

static int job_metrics(struct tam_metrics_writer *w, const struct tam_gw *gw)
{
    const struct tam_gw_stats *s = &gw->stats;
    put_counter(w, "tam_teep_sessions_created_total", "QueryRequests issued (sessions stored).",
                NULL, 0, s->sessions_created);
    put_gauge(w, "tam_gw_pending_requests", "Requests waiting for a worker result in this process.",
              NULL, 0, (double)gw->n_pending);
    struct tam_metrics_label l = {"kind", "query_response"};
    put_counter(w, "tam_gw_jobs_enqueued_total", "Jobs put on the job stream.", &l, 1,
                s->jobs_enqueued[TAM_JOB_QUERY_RESPONSE]);
    l.value = "report";
    put_counter(w, "tam_gw_jobs_enqueued_total", "Jobs put on the job stream.", &l, 1,
                s->jobs_enqueued[TAM_JOB_REPORT]);
    put_counter(w, "tam_gw_job_timeouts_total", "Jobs without a result in time.", NULL, 0,
                s->job_timeouts);
    put_counter(w, "tam_gw_results_total", "Results delivered to a waiting request.", NULL, 0,
                s->results);
    put_counter(w, "tam_gw_results_late_total", "Results with no waiting request (timed out).",
                NULL, 0, s->results_late);
    put_counter(w, "tam_gw_results_malformed_total", "Undecodable results.", NULL, 0,
                s->results_bad);
    put_counter(w, "tam_gw_unverified_jobs_total",
                "QueryResponses passed on unverified (attested enrollment).", NULL, 0,
                s->unverified_jobs);
    put_counter(w, "tam_gw_reloads_total", "Successful reloads.", NULL, 0, s->reloads);
    return tam_metrics_counter(w, "tam_gw_reload_failures_total", "Rejected reloads.", NULL, 0,
                               s->reload_failures);
}

static int redis_metrics(struct tam_metrics_writer *w, const struct tam_gw *gw)
{
    struct tam_redis_stats st;
    memset(&st, 0, sizeof(st));
    if (gw->rc != NULL) {
        tam_redis_stats_add(&st, tam_redis_get_stats(gw->rc));
    }
    put_histogram(w, "tam_redis_command_duration_seconds",
                  "Redis command latency (command connection).", NULL, 0, tam_redis_latency_le,
                  st.bucket, TAM_REDIS_LATENCY_BUCKETS, st.sum_seconds, st.count);
    put_counter(w, "tam_redis_errors_total", "Redis error replies.", NULL, 0, st.errors);
    put_counter(w, "tam_redis_timeouts_total", "Redis command timeouts.", NULL, 0, st.timeouts);
    put_counter(w, "tam_redis_unavailable_total", "Redis commands failed while disconnected.", NULL,
                0, st.unavailable);
    put_gauge(w, "tam_redis_connected", "1 when the command connection is up.", NULL, 0,
              gw->rc != NULL && tam_redis_connected(gw->rc) ? 1.0 : 0.0);
    return tam_metrics_counter(w, "tam_gw_keycache_hits_total", "Device key cache hits.", NULL, 0,
                               gw->keys.hits);
}

int tam_gw_metrics_render(const struct tam_gw *gw, struct tam_buf *out)
{
    struct tam_metrics_writer w;
    tam_metrics_writer_init(&w, out);
    struct tam_metrics_label id = {"id", gw->id};
    put_gauge(&w, "tam_gw_info", "This gateway process.", &id, 1, 1.0);
    put_gauge(&w, "tam_gw_ready", "1 when /readyz answers 200.", NULL, 0,
              tam_gw_ready(gw) ? 1.0 : 0.0);
    if (gw->api != NULL) {
        (void)http_metrics(&w, tam_http_server_stats(gw->api));
    }
    (void)status_metrics(&w, &gw->stats);
    (void)teep_metrics(&w, &gw->stats);
    (void)job_metrics(&w, gw);
    (void)redis_metrics(&w, gw);
    put_counter(&w, "tam_gw_keycache_misses_total", "Device key cache misses.", NULL, 0,
                gw->keys.misses);
    return tam_metrics_writer_error(&w);
}

/* Workers XDEL every job they finish, so the stream's length is the work not yet done. */
static const char queue_lua[] = "return {redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2])}";

struct metrics_req {
    struct tam_gw *gw;
    struct tam_http_request *req;
};

static void queue_metrics(struct tam_metrics_writer *w, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER) {
        return; /* Redis unavailable: no queue samples rather than wrong ones */
    }
    put_gauge(w, "tam_jobs_pending",
              "Jobs in the Redis stream not yet finished by a worker (all gateways).", NULL, 0,
              (double)r->element[0]->integer);
    put_gauge(w, "tam_jobs_dead", "Jobs in the dead-letter stream (all gateways).", NULL, 0,
              (double)r->element[1]->integer);
}

static void on_queue_depth(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct metrics_req *m = privdata;
    struct tam_buf out;
    tam_buf_init(&out, METRICS_MAX);
    int err = tam_gw_metrics_render(m->gw, &out);
    struct tam_metrics_writer w;
    tam_metrics_writer_init(&w, &out);
    queue_metrics(&w, status == TAM_OK ? reply : NULL);
    err = err != TAM_OK ? err : tam_metrics_writer_error(&w);
    if (err != TAM_OK) {
        text(m->req, 500, "text/plain; charset=utf-8", "metrics failed\n", 15);
    } else {
        text(m->req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    }
    tam_buf_finish(&out);
    tam_free(m);
}

static void metrics(struct tam_gw *gw, struct tam_http_request *req)
{
    struct metrics_req *m = tam_malloc(sizeof(*m));
    if (m == NULL) {
        text(req, 503, "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    *m = (struct metrics_req){gw, req};
    if (gw->rc == NULL || tam_redis_command(gw->rc, on_queue_depth, m, "EVAL %s 2 %s %s", queue_lua,
                                            TAM_KEY_JOBS, TAM_KEY_JOBS_DEAD) != TAM_OK) {
        on_queue_depth(NULL, TAM_EUNAVAIL, NULL, m);
    }
}

static void admin_api(struct tam_gw *gw, struct tam_http_request *req)
{
    if (gw->adm != NULL) {
        tam_admin_handle(req, gw->adm);
        return;
    }
    static const char body[] = "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\","
                               "\"status\":503,\"detail\":\"no key-encryption key configured "
                               "(kek-file)\"}";
    text(req, 503, "application/problem+json", body, sizeof(body) - 1);
}

void tam_gw_admin_handle(struct tam_http_request *req, void *ctx)
{
    struct tam_gw *gw = ctx;
    const char *m = tam_http_request_method(req);
    const char *t = tam_http_request_target(req);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    if (tam_admin_handles(t)) {
        admin_api(gw, req);
    } else if (strcmp(t, "/healthz") != 0 && strcmp(t, "/readyz") != 0 && strcmp(t, "/metrics") != 0) {
        text(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
    } else if (!get) {
        (void)tam_http_respond_405(req, "GET, HEAD");
    } else if (strcmp(t, "/healthz") == 0) {
        text(req, 200, "text/plain; charset=utf-8", "ok\n", 3);
    } else if (strcmp(t, "/readyz") == 0) {
        bool ready = tam_gw_ready(gw);
        text(req, ready ? 200 : 503, "text/plain; charset=utf-8", ready ? "ready\n" : "not ready\n",
             ready ? 6 : 10);
    } else {
        metrics(gw, req);
    }
}
