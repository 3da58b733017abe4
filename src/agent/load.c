/*
 * Load mode: D devices, at most C sessions in flight. Closed loop by default (a
 * slot starts the next session as soon as its previous one ends); with --rate R
 * an open-loop schedule starts floor(R * t) sessions by time t (a 1 ms timer),
 * limited by C and by idle devices -- starts that find every slot busy are
 * dropped (rate_missed) once the backlog exceeds C, so a slow TAM cannot cause a
 * burst later. A device runs one session at a time (a FIFO of idle devices).
 * After --duration the run stops starting sessions and drains the ones in
 * flight (bounded by their timeouts and retries).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

struct load {
    struct ag_fleet f;
    uv_loop_t *loop;
    const struct ag_opts *o;
    struct ag_session *slots;
    unsigned nslots;
    unsigned *free_slots;
    unsigned nfree;
    size_t *queue; /* idle device indices, a ring */
    size_t qhead;
    size_t qlen;
    unsigned active;
    uint64_t t0; /* ns */
    double cpu0; /* process CPU seconds at t0 */
    uint64_t t_end;
    uint64_t t_stop;
    uint64_t t_drain;
    uint64_t started; /* rate mode schedule */
    uint64_t last_progress;
    uint64_t last_ok;
    uv_timer_t tick;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    bool stopping;
    bool done;
    bool progress;
    struct ag_run_info ri;
};

static void launch(struct load *l);

static void complete(struct load *l)
{
    if (l->done) {
        return;
    }
    l->ri.total_s = (double)(uv_hrtime() - l->t0) / 1e9;
    if (l->f.pool != NULL) {
        tam_httpc_pool_stats(l->f.pool, &l->ri.http);
    }
    uv_timer_stop(&l->tick);
    uv_signal_stop(&l->sigint);
    uv_signal_stop(&l->sigterm);
    if (l->progress) {
        fputc('\n', stderr);
    }
    l->done = true;
}

static void progress_line(struct load *l, uint64_t now)
{
    const struct ag_stats *st = &l->f.stats;
    double t = (double)(now - l->t0) / 1e9;
    double dt = (double)(now - l->last_progress) / 1e9;
    double rate = dt > 0 ? (double)(st->sessions_ok - l->last_ok) / dt : 0;
    fprintf(stderr, "\r%7.1fs  sessions %llu (%.0f/s)  messages %llu  errors %llu  in flight %u   ",
            t, (unsigned long long)st->sessions_ok, rate, (unsigned long long)st->messages,
            (unsigned long long)ag_errors_total(st), l->active);
    fflush(stderr);
    l->last_progress = now;
    l->last_ok = st->sessions_ok;
}

/* CPU seconds of this process: a load generator on the machine it measures shares its cores,
 * so the report says how much of them it took. */
static double process_cpu_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) {
        return 0;
    }
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void stop(struct load *l, uint64_t now)
{
    if (l->stopping) {
        return;
    }
    l->stopping = true;
    l->t_stop = now;
    l->ri.window_s = (double)(now - l->t0) / 1e9;
    l->ri.win_sessions = l->f.stats.sessions_ok;
    l->ri.win_messages = l->f.stats.messages;
    l->ri.cpu_s = process_cpu_s() - l->cpu0;
    const struct ag_opts *o = l->o;
    uint64_t drain_ms = (uint64_t)o->timeout_ms * (o->retries + 1) +
                        (uint64_t)o->backoff_max_ms * o->retries + 1000;
    drain_ms = drain_ms > 120000 ? 120000 : drain_ms;
    l->t_drain = now + drain_ms * 1000000u;
}

/* The drain took too long: cancel what is left. */
static void abort_rest(struct load *l)
{
    l->f.closing = true;
    for (unsigned i = 0; i < l->nslots; i++) {
        ag_session_abort(&l->slots[i]);
    }
    if (l->f.pool != NULL) {
        tam_httpc_pool_stats(l->f.pool, &l->ri.http);
        tam_httpc_pool_close(l->f.pool, NULL, NULL); /* cancels in-flight requests */
        l->f.pool = NULL;
    }
}

static void on_session_done(struct ag_session *s, void *arg)
{
    struct load *l = arg;
    l->queue[(l->qhead + l->qlen) % l->f.ndev] = s->dev_idx;
    l->qlen++;
    l->free_slots[l->nfree++] = (unsigned)(s - l->slots);
    l->active--;
    if (l->stopping) {
        if (l->active == 0) {
            complete(l);
        }
        return;
    }
    if (l->o->rate <= 0) {
        launch(l);
    }
}

static void launch(struct load *l)
{
    if (l->nfree == 0 || l->qlen == 0 || l->stopping) {
        return;
    }
    struct ag_session *s = &l->slots[l->free_slots[--l->nfree]];
    size_t dev = l->queue[l->qhead];
    l->qhead = (l->qhead + 1) % l->f.ndev;
    l->qlen--;
    l->active++;
    ag_session_start(s, dev, on_session_done, l);
}

static void schedule(struct load *l, uint64_t now)
{
    double due = l->o->rate * (double)(now - l->t0) / 1e9;
    uint64_t want = (uint64_t)floor(due);
    uint64_t backlog = want > l->started ? want - l->started : 0;
    if (backlog > l->nslots) {
        l->f.stats.rate_missed += backlog - l->nslots;
        l->started += backlog - l->nslots;
        backlog = l->nslots;
    }
    while (backlog > 0 && l->nfree > 0 && l->qlen > 0) {
        launch(l);
        l->started++;
        backlog--;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct load *l = t->data;
    uint64_t now = uv_hrtime();
    if (!l->stopping && now >= l->t_end) {
        stop(l, now);
    }
    if (!l->stopping && l->o->rate > 0) {
        schedule(l, now);
    }
    if (l->progress && now - l->last_progress >= 1000000000u) {
        progress_line(l, now);
    }
    if (l->stopping && l->active > 0 && now >= l->t_drain) {
        abort_rest(l);
    }
    if (l->stopping && l->active == 0) {
        complete(l);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct load *l = h->data;
    tam_log(TAM_LOG_INFO, "event=signal signal=%d", signum);
    uint64_t now = uv_hrtime();
    if (l->stopping) {
        l->t_drain = now; /* a second signal: cancel the drain */
    }
    stop(l, now);
}

static int prepare(struct load *l)
{
    const struct ag_opts *o = l->o;
    unsigned c = o->concurrency;
    if (c == 0) {
        /* Open loop needs room for the sessions a slow TAM keeps in flight. */
        size_t cap = o->rate > 0 ? 4096 : 64;
        c = (unsigned)(o->devices < cap ? o->devices : cap);
    }
    l->nslots = c < o->devices ? c : (unsigned)o->devices;
    int err = ag_fleet_init(&l->f, l->loop, o, o->devices, l->nslots);
    for (size_t i = 0; err == TAM_OK && i < l->f.ndev; i++) {
        err = ag_fleet_scenario(&l->f, l->f.devs[i]);
    }
    err = err == TAM_OK ? ag_fleet_admin(&l->f) : err;
    if (err != TAM_OK) {
        return err;
    }
    l->slots = tam_calloc(l->nslots, sizeof(*l->slots));
    l->free_slots = tam_calloc(l->nslots, sizeof(*l->free_slots));
    l->queue = tam_calloc(l->f.ndev, sizeof(*l->queue));
    if (l->slots == NULL || l->free_slots == NULL || l->queue == NULL) {
        return TAM_ENOMEM;
    }
    for (unsigned i = 0; i < l->nslots; i++) {
        ag_session_init(&l->slots[i], &l->f);
        l->free_slots[l->nfree++] = l->nslots - 1 - i;
    }
    for (size_t i = 0; i < l->f.ndev; i++) {
        l->queue[l->qlen++] = i;
    }
    l->ri.concurrency = l->nslots;
    return TAM_OK;
}

static void start(struct load *l)
{
    const struct ag_opts *o = l->o;
    uv_timer_init(l->loop, &l->tick);
    l->tick.data = l;
    uv_signal_init(l->loop, &l->sigint);
    uv_signal_init(l->loop, &l->sigterm);
    l->sigint.data = l;
    l->sigterm.data = l;
    uv_signal_start(&l->sigint, on_signal, SIGINT);
    uv_signal_start(&l->sigterm, on_signal, SIGTERM);
    uv_update_time(l->loop);
    l->t0 = uv_hrtime();
    l->cpu0 = process_cpu_s();
    l->last_progress = l->t0;
    l->t_end = l->t0 + (uint64_t)(o->duration_s * 1e9);
    uv_timer_start(&l->tick, on_tick, o->rate > 0 ? 1 : 20, o->rate > 0 ? 1 : 20);
    if (o->rate <= 0) {
        while (l->nfree > 0 && l->qlen > 0) {
            launch(l);
        }
    }
}

static void cleanup(struct load *l)
{
    if (l->tick.data != NULL) {
        uv_close((uv_handle_t *)&l->tick, NULL);
        uv_close((uv_handle_t *)&l->sigint, NULL);
        uv_close((uv_handle_t *)&l->sigterm, NULL);
    }
    for (unsigned i = 0; l->slots != NULL && i < l->nslots; i++) {
        ag_session_close(&l->slots[i]);
    }
    ag_fleet_finish(&l->f); /* runs the loop until every handle is closed */
    tam_free(l->slots);
    tam_free(l->free_slots);
    tam_free(l->queue);
}

int ag_run_load(const struct ag_opts *o)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return 2;
    }
    struct load *l = tam_calloc(1, sizeof(*l));
    if (l == NULL) {
        uv_loop_close(&loop);
        return 2;
    }
    l->loop = &loop;
    l->o = o;
    l->progress = o->progress == 1 || (o->progress < 0 && isatty(STDERR_FILENO));
    int rc = 2;
    if (prepare(l) == TAM_OK) {
        start(l);
        ag_run_until(&loop, &l->done);
        if (o->json) {
            ag_report_json(stdout, &l->f, &l->ri);
        } else {
            ag_report_text(stdout, &l->f, &l->ri);
        }
        rc = l->f.stats.sessions_ok > 0 ? 0 : 1;
    }
    cleanup(l);
    tam_free(l);
    if (uv_loop_close(&loop) != 0) {
        tam_log(TAM_LOG_WARN, "event=loop_not_empty");
    }
    return rc;
}
