/*
 * The job stream (keys.h): consumer group "workers" on tam:{jobs}:stream.
 *
 *   XGROUP CREATE tam:{jobs}:stream workers 0 MKSTREAM      at start (BUSYGROUP ignored).
 *       From 0, not $: jobs a gateway queued before any worker ever ran are not skipped;
 *       processed entries are deleted (XDEL), so "0" replays nothing already done.
 *   XREADGROUP GROUP workers <id> COUNT <worker-batch> BLOCK 1000 STREAMS ... >
 *       sent one batch ahead (read_batch), so the next jobs are on their way while this
 *       batch is processed.
 *   XAUTOCLAIM ... <id> <claim-idle> 0-0 COUNT <worker-batch>  every claim-idle/2 (0.5..5 s):
 *       jobs of dead (or stuck) workers. Redis 7 answers [next, entries, deleted ids].
 *   XPENDING ... <first> <last> <n> <id>: delivery counts of claimed entries; above
 *       job-attempts the entry goes to tam:{jobs}:dead (fields job, reason, entry,
 *       deliveries, worker), is acknowledged and deleted, and is logged and counted.
 *   After a job: XADD <reply_to> MAXLEN ~ 10000 * result <bytes>, then XACK and XDEL, in one
 *       pipeline: a job is acknowledged only once its result is handed back.
 *
 * Autoscaling gauge (no HTTP listener here): XLEN tam:{jobs}:stream counts jobs not yet
 * finished (entries are deleted when done); XPENDING tam:{jobs}:stream workers gives the
 * in-flight count and per-consumer load; XLEN tam:{jobs}:dead the poison jobs.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"

#include "tam/err.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "worker.h"

#define ENTRY_ID_MAX 48

static void drop_connections(struct worker *w)
{
    wk_jobs_commit(w); /* on a lost connection: the passes fail, their entries stay pending */
    wk_jobs_drop_ahead(w);
    w->deferred = 0;
    w->read_ahead = false;
    if (w->cmd != NULL) {
        redisFree(w->cmd);
    }
    if (w->blk != NULL) {
        redisFree(w->blk);
    }
    w->cmd = NULL;
    w->blk = NULL;
}

static bool connected(const struct worker *w)
{
    return w->cmd != NULL && w->blk != NULL && w->cmd->err == 0 && w->blk->err == 0;
}

static int ensure_group(struct worker *w)
{
    redisReply *r =
        wk_cmd(w, w->cmd, "XGROUP CREATE %s %s 0 MKSTREAM", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP);
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    int err = TAM_OK;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        tam_log(TAM_LOG_ERROR, "event=xgroup_failed msg=\"%.120s\"", r->str);
        err = TAM_EREDIS;
    }
    freeReplyObject(r);
    return err;
}

static int connect_all(struct worker *w)
{
    drop_connections(w);
    uint32_t t = (uint32_t)w->cfg->redis_timeout_ms;
    int err = tam_redis_sync_connect(w->redis_addr, t, &w->cmd);
    if (err == TAM_OK) {
        err = tam_redis_sync_connect(w->redis_addr, t, &w->blk);
    }
    if (err == TAM_OK) {
        /* The blocking connection waits BLOCK ms for data: its socket timeout must exceed it. */
        uint64_t ms = WK_BLOCK_MS + w->cfg->redis_timeout_ms;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        err = redisSetTimeout(w->blk, tv) == REDIS_OK ? TAM_OK : TAM_EUNAVAIL;
    }
    if (err == TAM_OK) {
        err = ensure_group(w);
    }
    if (err != TAM_OK) {
        drop_connections(w);
        return err;
    }
    tam_log(TAM_LOG_INFO, "event=redis_connected worker=%s", w->id);
    return TAM_OK;
}

static bool entry_id(const redisReply *e, char *out)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= ENTRY_ID_MAX) {
        return false;
    }
    memcpy(out, e->element[0]->str, e->element[0]->len);
    out[e->element[0]->len] = '\0';
    return true;
}

/* The `job` field of an entry; empty when absent. */
static struct tam_bytes entry_job(const redisReply *e)
{
    const redisReply *f = e->element[1];
    for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len == 3 && memcmp(k->str, "job", 3) == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING) {
            return tam_bytes_of(f->element[i + 1]->str, f->element[i + 1]->len);
        }
    }
    return tam_bytes_of(NULL, 0);
}

/*
 * Results, then one XACK and one XDEL for every finished item, written at once; their replies
 * are read later (wk_drain), so the next XREADGROUP overlaps with this round trip.
 */
void wk_queue_ack(struct worker *w, struct wk_item *items, size_t n)
{
    struct tam_bytes ack[3 + WK_CHUNK] = {WK_STR("XACK"), WK_STR(TAM_KEY_JOBS),
                                          WK_STR(TAM_KEY_JOBS_GROUP)};
    struct tam_bytes del[2 + WK_CHUNK] = {WK_STR("XDEL"), WK_STR(TAM_KEY_JOBS)};
    size_t nack = 3, ndel = 2;
    if (wk_drain(w) != TAM_OK) {
        return;
    }
    struct wk_batch b;
    wk_batch_init(&b);
    for (size_t i = 0; i < n && i < WK_CHUNK; i++) {
        if (items[i].rc != TAM_OK) {
            continue;
        }
        if (items[i].reply_to[0] != '\0') {
            wk_batch_addf(&b, "XADD %s MAXLEN ~ %d * result %b", items[i].reply_to,
                          WK_RESULTS_MAXLEN, items[i].result.data, items[i].result.len);
        }
        ack[nack++] = WK_STR(items[i].id);
        del[ndel++] = WK_STR(items[i].id);
    }
    if (nack > 3) {
        wk_batch_spans(&b, nack, ack);
        wk_batch_spans(&b, ndel, del);
        if (!b.overflow && wk_batch_append(w->cmd, &b) == TAM_OK &&
            wk_flush_deferred(w, b.n) == TAM_OK) {
            w->n.done += (uint64_t)(nack - 3);
        }
    }
    wk_batch_finish(&b);
}

static void dead_letter(struct worker *w, const char *id, struct tam_bytes job, long long count,
                        const char *reason)
{
    struct wk_batch b;
    wk_batch_init(&b);
    wk_batch_addf(&b, "XADD %s MAXLEN ~ %d * job %b reason %s entry %s deliveries %lld worker %s",
                  TAM_KEY_JOBS_DEAD, WK_DEAD_MAXLEN, job.ptr != NULL ? job.ptr : (const void *)"",
                  job.len, reason, id, count, w->id);
    wk_batch_addf(&b, "XACK %s %s %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP, id);
    wk_batch_addf(&b, "XDEL %s %s", TAM_KEY_JOBS, id);
    redisReply *rep[3];
    if (wk_batch_exec(w, &b, rep) == TAM_OK) {
        wk_replies_free(rep, 3);
        w->n.dead++;
        tam_log(TAM_LOG_ERROR, "event=job_dead entry=%s deliveries=%lld reason=\"%s\"", id, count,
                reason);
    }
    wk_batch_finish(&b);
}

/*
 * A worker holding a large batch must keep its entries from looking abandoned: past half of
 * claim-idle since they were read, each entry is re-claimed (XCLAIM ... JUSTID, which resets
 * the idle time without counting a delivery) just before it is processed. Another worker can
 * only have claimed it once it was idle for claim-idle, so its idle time is at most
 * held - claim-idle, while ours is held: min-idle = held - claim-idle/2 tells them apart. If
 * the XCLAIM returns nothing the entry is now another worker's, and this one skips it.
 */
static bool still_ours(struct worker *w, const char *id, uint64_t held_ms)
{
    if (held_ms < w->cfg->claim_idle_ms / 2) {
        return true;
    }
    redisReply *r =
        wk_cmd(w, w->cmd, "XCLAIM %s %s %s %llu %s JUSTID", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP, w->id,
               (unsigned long long)(held_ms - w->cfg->claim_idle_ms / 2), id);
    bool ours = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1;
    if (r != NULL) {
        freeReplyObject(r);
    }
    if (!ours) {
        tam_log(TAM_LOG_WARN, "event=job_taken_over entry=%s held_ms=%llu", id,
                (unsigned long long)held_ms);
    }
    return ours;
}

/*
 * Processes entries[from..to) as one batch of jobs: ownership and attempts checked, then
 * wk_jobs_process (which acknowledges them later). deliveries NULL: first delivery.
 */
static size_t take_chunk(struct worker *w, const redisReply *entries, size_t from, size_t to,
                         const long long *deliveries, uint64_t taken_ms,
                         struct wk_item items[WK_CHUNK])
{
    size_t n = 0;
    uint64_t held = wk_mono_us() / 1000 - taken_ms;
    for (size_t i = from; i < to; i++) {
        struct wk_item *it = &items[n];
        memset(it, 0, sizeof(*it));
        long long d = deliveries != NULL ? deliveries[i] : 1;
        if (d == LLONG_MAX || !entry_id(entries->element[i], it->id) ||
            !still_ours(w, it->id, held)) {
            continue; /* LLONG_MAX: claimed, but no longer pending for this worker */
        }
        w->n.jobs++;
        it->raw = entry_job(entries->element[i]);
        if (d > (long long)w->cfg->job_attempts) {
            dead_letter(w, it->id, it->raw, d, "attempts exhausted");
            continue;
        }
        n++;
    }
    return n;
}

static void process_chunk(struct worker *w, const redisReply *entries, size_t from, size_t to,
                          const long long *deliveries, uint64_t taken_ms)
{
    struct wk_item items[WK_CHUNK];
    size_t n = take_chunk(w, entries, from, to, deliveries, taken_ms, items);
    if (n > 0) {
        wk_jobs_process(w, items, n);
    }
}

/* taken_ms: when the entries became ours (at the latest); monotonic. */
static void process_entries(struct worker *w, const redisReply *entries,
                            const long long *deliveries, uint64_t taken_ms)
{
    for (size_t i = 0; i < entries->elements; i += WK_CHUNK) {
        size_t to = i + WK_CHUNK < entries->elements ? i + WK_CHUNK : entries->elements;
        process_chunk(w, entries, i, to, deliveries, taken_ms);
    }
}

/*
 * XREADGROUP on blk is sent one batch ahead: as soon as a batch arrives the next read goes
 * out, so the worker processes batch N while Redis already queues (or blocks for) batch
 * N + 1, and a busy worker never waits a round trip for its next jobs. The read-ahead holds
 * at most one extra batch in this worker's pending list; it is always read and processed,
 * also when stopping.
 */
static bool send_read(struct worker *w)
{
    char count[16], block[16];
    (void)snprintf(count, sizeof(count), "%u", w->cfg->worker_batch);
    (void)snprintf(block, sizeof(block), "%d", WK_BLOCK_MS);
    const char *argv[] = {"XREADGROUP", "GROUP", TAM_KEY_JOBS_GROUP, w->id,        "COUNT", count,
                          "BLOCK",      block,   "STREAMS",          TAM_KEY_JOBS, ">"};
    int done = 0;
    if (redisAppendCommandArgv(w->blk, 11, argv, NULL) != REDIS_OK) {
        return false;
    }
    while (!done) {
        if (redisBufferWrite(w->blk, &done) != REDIS_OK) {
            return false;
        }
    }
    w->read_ahead = true;
    w->read_sent_ms = wk_mono_us() / 1000; /* Redis may hand out the entries from now on */
    return true;
}

static redisReply *receive_read(struct worker *w)
{
    void *r = NULL;
    w->read_ahead = false;
    if (redisGetReply(w->blk, &r) != REDIS_OK) {
        w->n.redis_errors++;
        tam_log(TAM_LOG_WARN, "event=redis_error worker=%s err=%d msg=\"%.80s\"", w->id,
                w->blk->err, w->blk->errstr);
        return NULL;
    }
    return r;
}

/* The entries of a read's reply: processed now, or (ahead) taken as the next batch. */
static void handle_read(struct worker *w, const redisReply *r, bool ahead)
{
    if (r->type == REDIS_REPLY_ERROR) {
        tam_log(TAM_LOG_WARN, "event=xreadgroup_failed msg=\"%.120s\"", r->str);
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            (void)ensure_group(w);
        }
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
               r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2) {
        const redisReply *entries = r->element[0]->element[1];
        if (entries->type == REDIS_REPLY_ARRAY) {
            uint64_t taken_ms = w->read_sent_ms;
            if (!*w->stop) {
                (void)send_read(w);
            }
            if (!ahead) {
                process_entries(w, entries, NULL, taken_ms);
            } else {
                /* COUNT <= WK_CHUNK; any entry beyond stays pending and is reclaimed */
                struct wk_item items[WK_CHUNK];
                size_t to = entries->elements < WK_CHUNK ? entries->elements : WK_CHUNK;
                wk_jobs_look_ahead(w, items, take_chunk(w, entries, 0, to, NULL, taken_ms, items));
            }
        }
    }
}

static void read_batch(struct worker *w)
{
    if (wk_jobs_run_ahead(w)) {
        return;
    }
    if (!w->read_ahead && !send_read(w)) {
        wk_jobs_commit(w);
        return;
    }
    if (w->ready != NULL && !wk_reply_ready(w->blk)) {
        wk_jobs_commit(w); /* no next batch to send its commit with: the results go out now */
    }
    redisReply *r = receive_read(w);
    if (r != NULL) {
        handle_read(w, r, false);
        freeReplyObject(r);
    }
}

/*
 * Called between the jobs of a batch: once the previous batch is complete (its commit read,
 * its acknowledgements written), the next read's entries, if they are already there, become
 * the next batch and its prefetch goes out now (wk_jobs_look_ahead). One read is one batch
 * only when worker-batch <= WK_CHUNK; larger reads are processed chunk by chunk as before.
 */
void wk_queue_look_ahead(struct worker *w)
{
    if (w->ahead != NULL || w->inflight != NULL || !w->read_ahead || *w->stop ||
        w->cfg->worker_batch > WK_CHUNK || !wk_reply_ready(w->blk)) {
        return;
    }
    redisReply *r = receive_read(w);
    if (r != NULL) {
        handle_read(w, r, true);
        freeReplyObject(r);
    }
}

/* ---- reclaiming jobs of dead workers ---- */

static long long pending_count(const redisReply *p, const char *id)
{
    for (size_t i = 0; p != NULL && p->type == REDIS_REPLY_ARRAY && i < p->elements; i++) {
        const redisReply *e = p->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements == 4 &&
            e->element[0]->type == REDIS_REPLY_STRING && strcmp(e->element[0]->str, id) == 0 &&
            e->element[3]->type == REDIS_REPLY_INTEGER) {
            return e->element[3]->integer;
        }
    }
    return 0;
}

static void ack_deleted(struct worker *w, const redisReply *deleted)
{
    for (size_t i = 0; deleted->type == REDIS_REPLY_ARRAY && i < deleted->elements; i++) {
        if (deleted->element[i]->type == REDIS_REPLY_STRING) {
            redisReply *r = wk_cmd(w, w->cmd, "XACK %s %s %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP,
                                   deleted->element[i]->str);
            if (r != NULL) {
                freeReplyObject(r);
            }
        }
    }
}

static void process_claimed(struct worker *w, const redisReply *entries)
{
    char first[ENTRY_ID_MAX], last[ENTRY_ID_MAX];
    if (!entry_id(entries->element[0], first) ||
        !entry_id(entries->element[entries->elements - 1], last)) {
        return;
    }
    redisReply *p =
        wk_cmd(w, w->cmd, "XPENDING %s %s %s %s %llu %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP, first,
               last, (unsigned long long)entries->elements + 64, w->id);
    long long *counts = tam_calloc(entries->elements + 1, sizeof(*counts));
    if (p == NULL || counts == NULL) {
        tam_free(counts);
        if (p != NULL) {
            freeReplyObject(p);
        }
        return;
    }
    for (size_t i = 0; i < entries->elements; i++) {
        char id[ENTRY_ID_MAX];
        counts[i] = entry_id(entries->element[i], id) ? pending_count(p, id) : 0;
        /* 0: no longer pending for us (another worker took it meanwhile): skipped. */
        counts[i] = counts[i] > 0 ? counts[i] : LLONG_MAX;
        if (counts[i] != LLONG_MAX) {
            w->n.claimed++;
            tam_log(TAM_LOG_INFO, "event=job_claimed entry=%s deliveries=%lld", id, counts[i]);
        }
    }
    freeReplyObject(p);
    process_entries(w, entries, counts, wk_mono_us() / 1000);
    tam_free(counts);
}

/* Returns true when a full batch was claimed (more may be waiting). */
static bool claim(struct worker *w)
{
    redisReply *r =
        wk_cmd(w, w->cmd, "XAUTOCLAIM %s %s %s %llu 0-0 COUNT %u", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP,
               w->id, (unsigned long long)w->cfg->claim_idle_ms, w->cfg->worker_batch);
    if (r == NULL) {
        return false;
    }
    bool full = false;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[1];
        full = entries->elements >= w->cfg->worker_batch;
        if (entries->elements > 0) {
            process_claimed(w, entries);
        }
        if (r->elements >= 3) {
            ack_deleted(w, r->element[2]);
        }
    } else if (r->type == REDIS_REPLY_ERROR) {
        tam_log(TAM_LOG_WARN, "event=xautoclaim_failed msg=\"%.120s\"", r->str);
    }
    freeReplyObject(r);
    return full;
}

static uint64_t claim_period_ms(const struct worker *w)
{
    uint64_t p = w->cfg->claim_idle_ms / 2;
    return p < 500 ? 500 : (p > 5000 ? 5000 : p);
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

void wk_counters_log(const struct worker *w)
{
    const struct wk_counters *c = &w->n;
    tam_log(TAM_LOG_INFO,
            "event=counters worker=%s jobs=%llu done=%llu failed=%llu dead=%llu claimed=%llu "
            "duplicates=%llu lost_races=%llu dropped=%llu updates=%llu error_updates=%llu "
            "nothing=%llu query_requests=%llu attest_ok=%llu attest_failed=%llu "
            "keys_learned=%llu reports=%llu reports_dropped=%llu manifests_built=%llu "
            "catalog_loads=%llu tenant_loads=%llu redis_errors=%llu overlapped=%llu "
            "looked_ahead=%llu",
            w->id, (unsigned long long)c->jobs, (unsigned long long)c->done,
            (unsigned long long)c->failed, (unsigned long long)c->dead,
            (unsigned long long)c->claimed, (unsigned long long)c->duplicates,
            (unsigned long long)c->lost_races, (unsigned long long)c->dropped,
            (unsigned long long)c->updates, (unsigned long long)c->error_updates,
            (unsigned long long)c->nothing, (unsigned long long)c->query_requests,
            (unsigned long long)c->attest_ok, (unsigned long long)c->attest_failed,
            (unsigned long long)c->keys_learned, (unsigned long long)c->reports,
            (unsigned long long)c->reports_dropped, (unsigned long long)c->manifests_built,
            (unsigned long long)c->catalog_loads, (unsigned long long)c->tenant_loads,
            (unsigned long long)c->redis_errors, (unsigned long long)c->overlapped,
            (unsigned long long)c->looked_ahead);
}

int wk_queue_run(struct worker *w)
{
    uint64_t backoff = 100;
    while (!*w->stop) {
        if (*w->dump) {
            *w->dump = 0;
            wk_counters_log(w);
        }
        if (!connected(w)) {
            if (connect_all(w) != TAM_OK) {
                tam_log(TAM_LOG_WARN, "event=redis_unavailable worker=%s retry_ms=%llu", w->id,
                        (unsigned long long)backoff);
                sleep_ms(backoff);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 100;
            w->next_claim_ms = 0;
        }
        uint64_t now = wk_mono_us() / 1000;
        if (now >= w->next_claim_ms) {
            bool more = claim(w);
            w->next_claim_ms = more ? now : now + claim_period_ms(w);
        }
        read_batch(w);
    }
    while ((w->ahead != NULL || w->read_ahead) && connected(w)) {
        read_batch(w); /* jobs the read-ahead took are ours: finish them too */
    }
    wk_jobs_commit(w);
    (void)wk_drain(w);
    drop_connections(w);
    return TAM_OK;
}
