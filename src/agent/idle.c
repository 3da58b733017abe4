/*
 * Idle mode: open N keep-alive connections (TCP, plus TLS for https) and hold
 * them, to measure a gateway's memory per idle connection. At most 256 connects
 * are in flight at once, so the listener's accept backlog is not flooded. Holds
 * for --duration seconds (0: until SIGINT or SIGTERM), then reports how many were
 * established, failed, and closed by the server while held.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

#define CONNECTS_IN_FLIGHT 256

struct idle {
    struct ag_fleet f;
    uv_loop_t *loop;
    const struct ag_opts *o;
    unsigned target;
    unsigned issued;
    unsigned pending;
    unsigned established;
    unsigned failed;
    uint64_t errors[AG_ERR_N];
    uint64_t t0;
    double connect_s;
    bool all_issued;
    bool holding;
    bool done;
    bool progress;
    uv_timer_t timer;
    uv_signal_t sigint;
    uv_signal_t sigterm;
};

static void issue(struct idle *d);

static void hold_done(struct idle *d)
{
    uv_timer_stop(&d->timer);
    uv_signal_stop(&d->sigint);
    uv_signal_stop(&d->sigterm);
    d->done = true;
}

static void on_hold_tick(uv_timer_t *t)
{
    struct idle *d = t->data;
    struct tam_httpc_stats hs;
    tam_httpc_pool_stats(d->f.pool, &hs);
    if (d->progress) {
        fprintf(stderr, "\r%7.1fs  open %u  closed by server %llu   ",
                (double)(uv_hrtime() - d->t0) / 1e9, hs.conns_active,
                (unsigned long long)hs.conns_closed_idle);
        fflush(stderr);
    }
    if (d->o->duration_s > 0 &&
        uv_hrtime() - d->t0 >= (uint64_t)((d->o->duration_s + d->connect_s) * 1e9)) {
        hold_done(d);
    }
}

static void start_hold(struct idle *d)
{
    d->holding = true;
    d->connect_s = (double)(uv_hrtime() - d->t0) / 1e9;
    tam_log(TAM_LOG_INFO, "event=idle_open established=%u failed=%u seconds=%.2f", d->established,
            d->failed, d->connect_s);
    if (d->progress) {
        fprintf(stderr, "tam-agent idle: %u of %u connections open in %.2fs, holding\n",
                d->established, d->target, d->connect_s);
    }
    uv_timer_start(&d->timer, on_hold_tick, 1000, 1000);
}

static void on_connected(void *arg, int err)
{
    struct idle *d = arg;
    d->pending--;
    if (err == TAM_OK) {
        d->established++;
    } else {
        d->failed++;
        d->errors[ag_err_of_httpc(err)]++;
    }
    if (!d->done) {
        issue(d);
    }
    if (d->all_issued && d->pending == 0 && !d->holding && !d->done) {
        start_hold(d);
    }
}

static void issue(struct idle *d)
{
    while (d->issued < d->target && d->pending < CONNECTS_IN_FLIGHT) {
        d->issued++;
        int err = tam_httpc_connect(d->f.pool, on_connected, d);
        if (err != TAM_OK) {
            d->failed++;
            d->errors[ag_err_of_httpc(err)]++;
            continue;
        }
        d->pending++;
    }
    d->all_issued = d->issued == d->target;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct idle *d = h->data;
    tam_log(TAM_LOG_INFO, "event=signal signal=%d", signum);
    hold_done(d);
}

static void report(struct idle *d, const struct tam_httpc_stats *hs)
{
    if (d->o->json) {
        json_t *errs = json_object();
        for (int i = 1; i < AG_ERR_N; i++) {
            if (d->errors[i] > 0) {
                json_object_set_new(errs, ag_err_name((enum ag_err)i),
                                    json_integer((json_int_t)d->errors[i]));
            }
        }
        json_t *root = json_pack(
            "{s:s, s:s, s:i, s:i, s:i, s:i, s:I, s:f, s:o}", "mode", "idle", "url", d->o->url,
            "connections", (int)d->target, "established", (int)d->established, "failed",
            (int)d->failed, "open_at_end", (int)hs->conns_active, "closed_by_server",
            (json_int_t)hs->conns_closed_idle, "connect_s", d->connect_s, "errors", errs);
        if (root != NULL) {
            json_dumpf(root, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fputc('\n', stdout);
            json_decref(root);
        }
        return;
    }
    printf("tam-agent idle  %s\n", d->o->url);
    printf("  connections %u requested, %u established, %u failed, %u open at the end, %llu "
           "closed by the server\n",
           d->target, d->established, d->failed, hs->conns_active,
           (unsigned long long)hs->conns_closed_idle);
    printf("  connect time %.2fs\n", d->connect_s);
    for (int i = 1; i < AG_ERR_N; i++) {
        if (d->errors[i] > 0) {
            printf("  error %-18s %llu\n", ag_err_name((enum ag_err)i),
                   (unsigned long long)d->errors[i]);
        }
    }
}

int ag_run_idle(const struct ag_opts *o)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return 2;
    }
    struct idle d;
    memset(&d, 0, sizeof(d));
    d.loop = &loop;
    d.o = o;
    d.target = o->connections;
    d.progress = o->progress == 1 || (o->progress < 0 && isatty(STDERR_FILENO));
    int rc = 2;
    if (ag_fleet_init(&d.f, &loop, o, 1, o->connections) == TAM_OK) {
        uv_timer_init(&loop, &d.timer);
        d.timer.data = &d;
        uv_signal_init(&loop, &d.sigint);
        uv_signal_init(&loop, &d.sigterm);
        d.sigint.data = &d;
        d.sigterm.data = &d;
        uv_signal_start(&d.sigint, on_signal, SIGINT);
        uv_signal_start(&d.sigterm, on_signal, SIGTERM);
        d.t0 = uv_hrtime();
        issue(&d);
        if (d.all_issued && d.pending == 0) {
            start_hold(&d);
        }
        ag_run_until(&loop, &d.done);
        if (d.progress) {
            fputc('\n', stderr);
        }
        struct tam_httpc_stats hs;
        tam_httpc_pool_stats(d.f.pool, &hs);
        report(&d, &hs);
        rc = d.established == d.target ? 0 : 1;
        uv_close((uv_handle_t *)&d.timer, NULL);
        uv_close((uv_handle_t *)&d.sigint, NULL);
        uv_close((uv_handle_t *)&d.sigterm, NULL);
    }
    ag_fleet_finish(&d.f);
    uv_loop_close(&loop);
    return rc;
}
