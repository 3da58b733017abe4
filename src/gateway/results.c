/*
 * Worker results. Each gateway process owns one result stream, tam:{gw:<id>}:results
 * (<id> = hostname-pid-random, so no two processes share one). A dedicated Redis
 * connection loops XREAD BLOCK on it; each entry's `result` field is a tam_job_result that
 * is matched by job id to the HTTP request waiting in the pending table. Unknown ids
 * (timed out, or from a previous incarnation) are counted and ignored. Consumed entries
 * are trimmed, and the stream carries an expiry so a crashed gateway's stream goes away.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

#define RETRY_MS    200
#define LAST_ID_MAX 48

struct tam_gw_results {
    struct tam_gw *gw;
    struct tam_redis *rb;
    uv_timer_t retry;
    char last_id[LAST_ID_MAX];
    bool reading; /* an XREAD is in flight */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
};

/* ---- pending table ---- */

static uint32_t id_hash(const uint8_t id[TAM_JOB_ID_LEN])
{
    /* Job ids are random: their first bytes are a good hash. */
    return (uint32_t)id[0] | (uint32_t)id[1] << 8 | (uint32_t)id[2] << 16 | (uint32_t)id[3] << 24;
}

int tam_gw_pending_init(struct tam_gw *gw)
{
    gw->pending = tam_calloc(TAM_GW_PENDING_BUCKETS, sizeof(*gw->pending));
    return gw->pending != NULL ? TAM_OK : TAM_ENOMEM;
}

void tam_gw_pending_finish(struct tam_gw *gw)
{
    tam_free(gw->pending);
    gw->pending = NULL;
}

void tam_gw_pending_add(struct tam_gw *gw, struct tam_gw_wait *w)
{
    w->hash = id_hash(w->id);
    struct tam_gw_wait **b = &gw->pending[w->hash % TAM_GW_PENDING_BUCKETS];
    w->next = *b;
    *b = w;
    gw->n_pending++;
}

void tam_gw_pending_remove(struct tam_gw *gw, struct tam_gw_wait *w)
{
    for (struct tam_gw_wait **pp = &gw->pending[w->hash % TAM_GW_PENDING_BUCKETS]; *pp != NULL;
         pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            gw->n_pending--;
            return;
        }
    }
}

struct tam_gw_wait *tam_gw_pending_take(struct tam_gw *gw, const uint8_t id[TAM_JOB_ID_LEN])
{
    uint32_t h = id_hash(id);
    for (struct tam_gw_wait *w = gw->pending[h % TAM_GW_PENDING_BUCKETS]; w != NULL; w = w->next) {
        if (w->hash == h && memcmp(w->id, id, TAM_JOB_ID_LEN) == 0) {
            tam_gw_pending_remove(gw, w);
            return w;
        }
    }
    return NULL;
}

struct tam_gw_wait *tam_gw_pending_pop(struct tam_gw *gw)
{
    for (size_t i = 0; gw->n_pending > 0 && i < TAM_GW_PENDING_BUCKETS; i++) {
        struct tam_gw_wait *w = gw->pending[i];
        if (w != NULL) {
            tam_gw_pending_remove(gw, w);
            return w;
        }
    }
    return NULL;
}

/* ---- the reader ---- */

static void read_next(struct tam_gw_results *res);

static void dispatch(struct tam_gw *gw, const redisReply *fields)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || strcmp(k->str, "result") != 0 ||
            v->type != REDIS_REPLY_STRING) {
            continue;
        }
        struct tam_job_result r;
        const char *why = "";
        if (tam_job_result_decode((const uint8_t *)v->str, v->len, &r, &why) != TAM_OK) {
            gw->stats.results_bad++;
            tam_log(TAM_LOG_WARN, "event=result_malformed why=%s", why);
            continue;
        }
        struct tam_gw_wait *w = tam_gw_pending_take(gw, r.id);
        if (w == NULL) {
            gw->stats.results_late++;
            tam_log(TAM_LOG_INFO, "event=result_late status=%u", r.status);
            continue;
        }
        tam_gw_message_result(gw, w, &r);
    }
}

/* Reply shape: [[key, [[id, [field, value, ...]], ...]]] or nil on timeout. */
static void handle_entries(struct tam_gw_results *res, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
        return;
    }
    const redisReply *stream = reply->element[0];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
        stream->element[1]->type != REDIS_REPLY_ARRAY) {
        return;
    }
    const redisReply *entries = stream->element[1];
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= LAST_ID_MAX) {
            continue;
        }
        memcpy(res->last_id, e->element[0]->str, e->element[0]->len);
        res->last_id[e->element[0]->len] = '\0';
        if (e->element[1]->type == REDIS_REPLY_ARRAY) {
            dispatch(res->gw, e->element[1]);
        }
    }
}

static void on_housekeeping(struct tam_redis *r, int status, const redisReply *reply, void *priv)
{
    if (status != TAM_OK) {
        tam_log(TAM_LOG_DEBUG, "event=results_trim_failed err=%s", tam_errname(status));
    }
}

/* Trims what was read and renews the expiry (on the command connection: never blocked). */
static void housekeeping(struct tam_gw_results *res)
{
    struct tam_gw *gw = res->gw;
    int err = tam_redis_command(gw->rc, on_housekeeping, NULL, "XTRIM %s MINID %s", gw->results_key,
                                res->last_id);
    if (err == TAM_OK) {
        err = tam_redis_command(gw->rc, on_housekeeping, NULL, "EXPIRE %s %s", gw->results_key,
                                TAM_GW_RESULTS_EXPIRE_S);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_DEBUG, "event=results_trim_failed err=%s", tam_errname(err));
    }
}

static void on_retry(uv_timer_t *t)
{
    read_next(t->data);
}

static void on_xread(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw_results *res = privdata;
    res->reading = false;
    if (res->stopping) {
        return;
    }
    if (status != TAM_OK) {
        /* Disconnected or timed out: the client reconnects by itself; poll again soon. */
        uv_timer_start(&res->retry, on_retry, RETRY_MS, 0);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        handle_entries(res, reply);
        housekeeping(res);
    }
    read_next(res);
}

static void read_next(struct tam_gw_results *res)
{
    if (res->stopping || res->reading) {
        return;
    }
    uint32_t timeout = TAM_GW_RESULTS_BLOCK_MS + res->gw->cfg.redis_timeout_ms;
    int err = tam_redis_command_timeout(
        res->rb, timeout, on_xread, res, "XREAD COUNT %s BLOCK %d STREAMS %s %s",
        TAM_GW_RESULTS_COUNT, TAM_GW_RESULTS_BLOCK_MS, res->gw->results_key, res->last_id);
    if (err != TAM_OK) {
        uv_timer_start(&res->retry, on_retry, RETRY_MS, 0);
        return;
    }
    res->reading = true;
}

static void on_state(struct tam_redis *r, enum tam_redis_state state, int err, void *data)
{
    struct tam_gw_results *res = data;
    tam_log(state == TAM_REDIS_CONNECTED ? TAM_LOG_INFO : TAM_LOG_WARN,
            "event=redis_%s conn=results err=%s",
            state == TAM_REDIS_CONNECTED ? "connected" : "disconnected", tam_errname(err));
    if (state == TAM_REDIS_CONNECTED) {
        uv_timer_stop(&res->retry);
        read_next(res);
    }
}

static void on_retry_closed(uv_handle_t *h)
{
    struct tam_gw_results *res = h->data;
    void (*done)(void *) = res->done;
    void *arg = res->done_arg;
    tam_free(res);
    if (done != NULL) {
        done(arg);
    }
}

int tam_gw_results_create(struct tam_gw *gw, struct tam_gw_results **out)
{
    struct tam_gw_results *res = tam_calloc(1, sizeof(*res));
    if (res == NULL) {
        return TAM_ENOMEM;
    }
    res->gw = gw;
    memcpy(res->last_id, "0", 2); /* the stream is ours alone: everything in it is for us */
    uv_timer_init(gw->loop, &res->retry);
    res->retry.data = res;
    struct tam_redis_opts o = {
        .command_timeout_ms = TAM_GW_RESULTS_BLOCK_MS + (uint32_t)gw->cfg.redis_timeout_ms,
        .connect_timeout_ms = (uint32_t)gw->cfg.redis_timeout_ms,
        .name = "redis-results",
    };
    int err = tam_redis_create(gw->loop, gw->redis_addr, &o, on_state, res, &res->rb);
    if (err != TAM_OK) {
        uv_close((uv_handle_t *)&res->retry, on_retry_closed);
        return err;
    }
    *out = res;
    return TAM_OK;
}

void tam_gw_results_stop(struct tam_gw_results *res, void (*done)(void *arg), void *arg)
{
    res->stopping = true;
    res->done = done;
    res->done_arg = arg;
    tam_redis_destroy(res->rb); /* fails the blocked XREAD at once */
    res->rb = NULL;
    uv_close((uv_handle_t *)&res->retry, on_retry_closed);
}

const struct tam_redis_stats *tam_gw_results_redis_stats(const struct tam_gw_results *res)
{
    return tam_redis_get_stats(res->rb);
}

bool tam_gw_results_connected(const struct tam_gw_results *res)
{
    return res->rb != NULL && tam_redis_connected(res->rb);
}
