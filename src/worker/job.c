/*
 * One job from decode to result: prefetch, idempotency, the kind's handler, the commit.
 *
 * Idempotency (a job carries its token: TP 1.8 makes the token single-use). Before any work
 * the result of an earlier run of the same token is looked up (tam:{jobs}:done:<token>); if
 * present it is sent again, with the current job id, and nothing else happens. After a run
 * the state writes and then `SET done <result> NX EX 86400` go out in one pipeline: the first
 * run to set the key wins; a loser undoes its own session writes and sends the winner's
 * result, so one token never yields two different Updates. Writes that must not be repeated
 * (a report's installed list) are guarded separately in the device's slot (devstore.c).
 *
 * Redis Cluster: the done key lives in the {jobs} slot, the device keys in the device's slot
 * and the session keys in the token's slot; every command (and every Lua script) touches one
 * slot only, so the commit pipeline works against a cluster-aware proxy; with plain hiredis
 * against a cluster the pipeline would need per-slot routing (MOVED), which is not done:
 * deploy a single Redis (or Sentinel), as DEPS.md 5 recommends.
 */
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "worker.h"

static void job_init(struct wk_job *j, struct worker *w)
{
    memset(j, 0, sizeof(*j));
    j->w = w;
    j->now_ms = wk_now_ms();
    j->pending_idx = -1;
    tam_arena_init(&j->arena, 64u << 10, 256u << 20);
    tam_buf_init(&j->body, WK_BODY_MAX);
    wk_batch_init(&j->commit);
    wk_batch_init(&j->undo);
    wk_batch_init(&j->apply);
}

static void job_finish(struct wk_job *j)
{
    redisReply *r[] = {j->pre.done, j->pre.version, j->pre.device, j->pre.sent, j->pre.stamp};
    wk_replies_free(r, 5);
    tam_key_destroy(j->learned);
    tam_arena_finish(&j->arena);
    tam_buf_finish(&j->body);
    wk_batch_finish(&j->commit);
    wk_batch_finish(&j->undo);
    wk_batch_finish(&j->apply);
}

static int decode(struct wk_job *j, const uint8_t *raw, size_t len, const char **why)
{
    int err = tam_job_decode(raw, len, &j->job, why);
    if (err == TAM_OK) {
        err = tam_sess_decode(j->job.session.ptr, j->job.session.len, &j->sess, why);
    }
    if (err == TAM_OK && strcmp(j->sess.tenant, j->job.tenant) != 0) {
        *why = "job and session name different tenants";
        err = TAM_EINVAL;
    }
    if (err == TAM_OK) {
        j->tenant = wk_tenant_find(j->w, j->job.tenant);
        j->remote = j->tenant == NULL && wk_rtenants_serves(j->w, j->job.tenant);
    }
    return err;
}

/* The device whose record the job needs up front, when the job already names it. */
static const uint8_t *known_kid(const struct wk_job *j)
{
    if (j->job.kind == TAM_JOB_REPORT && j->sess.has_device) {
        return j->sess.device_kid;
    }
    return j->job.has_device ? j->job.device_kid : NULL;
}

/*
 * The prefetch commands of one job, appended to the pipeline; *n counts them. A tenant from
 * Redis is resolved after the prefetch, so its job reads what a known tenant's would, plus
 * the stamp (rev) of its record.
 */
static int prefetch_append(struct wk_job *j, redisReply ***slots, int *n)
{
    redisContext *c = j->w->cmd;
    char key[TAM_KEY_MAX + 8];
    tam_key_job_done(key, j->sess.token, TAM_TOKEN_LEN);
    int ok = redisAppendCommand(c, "GET %s", key) == REDIS_OK;
    slots[(*n)++] = &j->pre.done;
    bool served = j->tenant != NULL || j->remote;
    const char *tenant = j->job.tenant;
    if (j->remote) {
        ok = ok && wk_rtenant_append_stamp(c, tenant) == TAM_OK;
        slots[(*n)++] = &j->pre.stamp;
    }
    if (served && j->job.kind == TAM_JOB_QUERY_RESPONSE) {
        tam_key_tenant(key, tenant, "catalog_version");
        ok = ok && redisAppendCommand(c, "GET %s", key) == REDIS_OK;
        slots[(*n)++] = &j->pre.version;
    }
    const uint8_t *kid = known_kid(j);
    if (served && kid != NULL) {
        ok = ok && wk_device_append_get(c, tenant, kid) == TAM_OK;
        slots[(*n)++] = &j->pre.device;
    }
    if (served && j->job.kind == TAM_JOB_REPORT) {
        tam_key_session(key, j->sess.token, TAM_TOKEN_LEN);
        ok = ok && redisAppendCommand(c, "GET %s:plan", key) == REDIS_OK;
        slots[(*n)++] = &j->pre.sent;
    }
    return ok ? TAM_OK : TAM_EUNAVAIL;
}

/*
 * One round trip for the whole batch: done key, catalogue version, device record and sent
 * plan of every job.
 */
static int prefetch_all(struct worker *w, struct wk_job *jobs, struct wk_item *items, size_t n)
{
    redisReply ***slots = tam_calloc(5 * n + 1, sizeof(*slots));
    if (slots == NULL) {
        return TAM_ENOMEM;
    }
    int count = 0, err = wk_drain(w);
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        if (items[i].rc == TAM_OK) {
            err = prefetch_append(&jobs[i], slots, &count);
        }
    }
    for (int i = 0; i < count && err == TAM_OK; i++) {
        void *r = NULL;
        err = redisGetReply(w->cmd, &r) == REDIS_OK ? TAM_OK : TAM_EUNAVAIL;
        *slots[i] = r;
    }
    if (err != TAM_OK) {
        w->n.redis_errors++;
    }
    tam_free(slots);
    return err;
}
static int encode_result(const struct wk_job *j, struct tam_buf *out)
{
    struct tam_job_result r;
    memset(&r, 0, sizeof(r));
    memcpy(r.id, j->job.id, TAM_JOB_ID_LEN);
    r.status = j->status;
    r.body = tam_bytes_of(j->body.data, j->status == 200 ? j->body.len : 0);
    const char *o = j->outcome != NULL ? j->outcome : "?";
    r.outcome = tam_bytes_of(o, strlen(o));
    return tam_job_result_encode(&r, out);
}

/* An earlier run's result, re-addressed to this job. */
static int readdress(const struct wk_job *j, struct tam_bytes prev, struct tam_buf *out)
{
    struct tam_job_result r;
    const char *why = NULL;
    int err = tam_job_result_decode(prev.ptr, prev.len, &r, &why);
    if (err == TAM_OK) {
        memcpy(r.id, j->job.id, TAM_JOB_ID_LEN);
        tam_buf_reset(out);
        err = tam_job_result_encode(&r, out);
    }
    return err;
}

static int lost_race(struct wk_job *j, struct tam_buf *result)
{
    j->w->n.lost_races++;
    redisReply *undo[WK_BATCH_MAX];
    if (j->undo.n > 0 && wk_batch_exec(j->w, &j->undo, undo) == TAM_OK) {
        wk_replies_free(undo, j->undo.n);
    }
    char key[TAM_KEY_MAX];
    tam_key_job_done(key, j->sess.token, TAM_TOKEN_LEN);
    redisReply *r = wk_cmd(j->w, j->w->cmd, "GET %s", key);
    struct tam_bytes prev;
    int err = wk_reply_bytes(r, &prev) ? readdress(j, prev, result) : TAM_EREDIS;
    if (r != NULL) {
        freeReplyObject(r);
    }
    j->outcome = "duplicate";
    return err;
}

/* Appends SET done NX after the job's state writes: the commit of one job. */
static void commit_queue(struct wk_job *j, const struct tam_buf *result)
{
    char key[TAM_KEY_MAX];
    tam_key_job_done(key, j->sess.token, TAM_TOKEN_LEN);
    const struct tam_bytes set_done[] = {
        WK_STR("SET"), WK_STR(key),  tam_bytes_of(result->data, result->len),
        WK_STR("NX"),  WK_STR("EX"), WK_STR(WK_NUM_STR(WK_DONE_TTL_S))};
    wk_batch_spans(&j->commit, 6, set_done);
}

/* The replies of one job's commit: state writes applied, then who set the done key. */
static int commit_check(struct wk_job *j, redisReply **rep, uint32_t n, struct tam_buf *result)
{
    int err = TAM_OK;
    for (uint32_t i = 0; i + 1 < n && err == TAM_OK; i++) {
        if (!wk_reply_ok(rep[i])) {
            tam_log(TAM_LOG_ERROR, "event=redis_reply_error step=commit msg=\"%.120s\"",
                    rep[i] != NULL ? rep[i]->str : "");
            err = TAM_EREDIS;
        }
    }
    const redisReply *done = n > 0 ? rep[n - 1] : NULL;
    bool won = err == TAM_OK && done != NULL && done->type == REDIS_REPLY_STATUS;
    bool lost = err == TAM_OK && done != NULL && done->type == REDIS_REPLY_NIL;
    if (won && j->pending_idx >= 0) {
        err = wk_pending_dropped(j, rep[j->pending_idx]);
    } else if (lost) {
        err = lost_race(j, result);
    } else if (!won && err == TAM_OK) {
        err = TAM_EREDIS;
    }
    return err;
}

/* One pipeline with the commits of every job of the batch that computed a result. */
static void commit_all(struct worker *w, struct wk_job *jobs, struct wk_item *items, size_t n)
{
    struct wk_batch *b[WK_CHUNK] = {0};
    uint32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].rc == TAM_OK && jobs[i].needs_commit) {
            commit_queue(&jobs[i], &items[i].result);
            b[i] = &jobs[i].commit;
            total += b[i]->n;
        }
    }
    redisReply **rep = tam_calloc(total + 1u, sizeof(*rep));
    int err = rep == NULL ? TAM_ENOMEM : wk_batches_exec(w, b, n, rep);
    uint32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != NULL) {
            items[i].rc =
                err != TAM_OK ? err : commit_check(&jobs[i], rep + at, b[i]->n, &items[i].result);
            at += b[i]->n;
        }
    }
    if (rep != NULL) {
        wk_replies_free(rep, total);
    }
    tam_free(rep);
}

/* The job's result, encoded; its state writes and done key are then due. */
static int finish_result(struct wk_job *j, struct tam_buf *result)
{
    tam_buf_reset(result);
    int err = encode_result(j, result);
    j->needs_commit = err == TAM_OK;
    return err;
}

static int run(struct wk_job *j, struct tam_buf *result)
{
    struct tam_bytes prev;
    if (wk_reply_bytes(j->pre.done, &prev) && readdress(j, prev, result) == TAM_OK) {
        j->w->n.duplicates++;
        j->outcome = "duplicate";
        return TAM_OK;
    }
    int err = j->remote ? wk_rtenant_resolve(j) : TAM_OK;
    if (err != TAM_OK) {
        return err;
    }
    if (j->tenant == NULL) {
        j->status = 500;
        j->outcome = j->tenant_invalid ? "tenant-invalid" : "tenant-unknown";
        j->reason = j->tenant_invalid ? "the tenant's record in Redis does not load"
                                      : "no such tenant (configuration file or Redis)";
    } else if (j->job.kind == TAM_JOB_QUERY_RESPONSE) {
        err = wk_query_run(j);
    } else {
        err = wk_report_run(j);
    }
    return err == TAM_OK && !j->apply_queued ? finish_result(j, result) : err;
}

/*
 * One pipeline with the first attempt of every report apply the batch queued, then each
 * report's result: a report costs no round trip of its own unless it meets a conflict.
 */
static void apply_all(struct worker *w, struct wk_job *jobs, struct wk_item *items, size_t n)
{
    struct wk_batch *b[WK_CHUNK] = {0};
    redisReply *rep[WK_CHUNK] = {0};
    uint32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].rc == TAM_OK && jobs[i].apply_queued) {
            b[i] = &jobs[i].apply; /* one command each */
            total++;
        }
    }
    if (total == 0) {
        return;
    }
    int err = wk_batches_exec(w, b, n, rep);
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != NULL) {
            int rc = err != TAM_OK ? err : wk_report_applied(&jobs[i], rep[k++]);
            items[i].rc = rc == TAM_OK ? finish_result(&jobs[i], &items[i].result) : rc;
        }
    }
    wk_replies_free(rep, total);
}

static void log_job(const struct wk_job *j, const char *entry_id, uint64_t t0, int err)
{
    char id[2 * TAM_JOB_ID_LEN + 1], dev[17] = "-", reason[200] = "";
    tam_hex_encode(j->job.id, TAM_JOB_ID_LEN, id);
    if (j->has_kid) {
        tam_hex_encode(j->kid, 8, dev);
    }
    if (j->reason != NULL) {
        char q[160];
        (void)snprintf(reason, sizeof(reason), " reason=%s",
                       tam_log_quote(j->reason, strlen(j->reason), q, sizeof(q)));
    }
    uint64_t us = wk_mono_us() - t0;
    tam_log(err == TAM_OK ? TAM_LOG_INFO : TAM_LOG_WARN,
            "event=job job=%s entry=%s tenant=%s device=%s kind=%s outcome=%s status=%u "
            "ms=%llu.%03llu%s%s%s",
            id, entry_id, j->job.tenant, dev, j->job.kind == TAM_JOB_REPORT ? "report" : "query",
            err == TAM_OK ? (j->outcome != NULL ? j->outcome : "?") : "retry", j->status,
            (unsigned long long)(us / 1000), (unsigned long long)(us % 1000), reason,
            err != TAM_OK ? " err=" : "", err != TAM_OK ? tam_errname(err) : "");
}

void wk_jobs_process(struct worker *w, struct wk_item *items, size_t n)
{
    uint64_t t0 = wk_mono_us();
    struct wk_job *jobs = tam_calloc(n, sizeof(*jobs));
    for (size_t i = 0; i < n; i++) {
        items[i].rc = jobs != NULL ? TAM_OK : TAM_ENOMEM;
        items[i].reply_to[0] = '\0';
        tam_buf_init(&items[i].result, WK_BODY_MAX + 4096);
    }
    if (jobs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        job_init(&jobs[i], w);
        const char *why = "?";
        if (items[i].raw.len == 0 ||
            decode(&jobs[i], items[i].raw.ptr, items[i].raw.len, &why) != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=job_invalid entry=%s reason=\"%s\"", items[i].id,
                    items[i].raw.len == 0 ? "no job field" : why);
            items[i].rc = TAM_EINVAL;
            continue;
        }
        (void)snprintf(items[i].reply_to, sizeof(items[i].reply_to), "%s", jobs[i].job.reply_to);
    }
    int err = prefetch_all(w, jobs, items, n);
    for (size_t i = 0; i < n; i++) {
        if (items[i].rc == TAM_OK) {
            items[i].rc = err != TAM_OK ? err : run(&jobs[i], &items[i].result);
        }
    }
    apply_all(w, jobs, items, n);
    commit_all(w, jobs, items, n);
    for (size_t i = 0; i < n; i++) {
        if (items[i].rc != TAM_EINVAL) {
            log_job(&jobs[i], items[i].id, t0, items[i].rc);
        }
        job_finish(&jobs[i]);
    }
    tam_free(jobs);
    wk_rtenants_gc(w); /* no job points at a retired tenant any more */
}
