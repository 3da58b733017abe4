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
 * Queues the prefetch commands of one job on b; slots[*n..] get where their replies go. A
 * tenant from Redis is resolved after the prefetch, so its job reads what a known tenant's
 * would, plus the stamp (rev) of its record.
 */
static void prefetch_queue(struct wk_job *j, struct wk_batch *b, redisReply ***slots, int *n)
{
    char key[TAM_KEY_MAX + 8];
    tam_key_job_done(key, j->sess.token, TAM_TOKEN_LEN);
    wk_batch_addf(b, "GET %s", key);
    slots[(*n)++] = &j->pre.done;
    bool served = j->tenant != NULL || j->remote;
    const char *tenant = j->job.tenant;
    if (j->remote) {
        wk_rtenant_queue_stamp(b, tenant);
        slots[(*n)++] = &j->pre.stamp;
    }
    if (served && j->job.kind == TAM_JOB_QUERY_RESPONSE) {
        tam_key_tenant(key, tenant, "catalog_version");
        wk_batch_addf(b, "GET %s", key);
        slots[(*n)++] = &j->pre.version;
    }
    const uint8_t *kid = known_kid(j);
    if (served && kid != NULL) {
        wk_device_queue_get(b, tenant, kid);
        slots[(*n)++] = &j->pre.device;
    }
    if (served && j->job.kind == TAM_JOB_REPORT) {
        tam_key_session(key, j->sess.token, TAM_TOKEN_LEN);
        wk_batch_addf(b, "GET %s:plan", key);
        slots[(*n)++] = &j->pre.sent;
    }
}

/*
 * A chunk of jobs from its prefetch to its acknowledgement. Passes overlap by one: the
 * commit of pass N is written as soon as pass N + 1's prefetch is answered (w->ready ->
 * w->inflight), so Redis executes it while this worker runs pass N + 1's crypto; its replies
 * are read between pass N + 1's jobs as soon as they are there (or before any other use of
 * the connection: wk_drain), and pass N's results and acknowledgements go out then.
 *
 * Once they are out, pass N + 2 is looked ahead when its entries are already there: its
 * prefetch is written (w->ahead) and Redis answers it while pass N + 1 still runs, so the
 * next pass starts without a round trip (wk_queue_look_ahead). The owed replies stay in
 * order: pass N's acknowledgements, then pass N + 2's prefetch, then pass N + 1's commit,
 * which is only written when pass N + 2 starts.
 *
 * Pass N + 1's reads are executed before pass N's writes (its commit, and with a look-ahead
 * its reports' applies), just as the jobs of one pass all read before any of them writes:
 * two jobs of one device in consecutive passes are handled as they would be in one (the
 * done key's SET NX, the reports' compare-and-set). A device's next message never meets the
 * state before its last one this way: the last one's result is only sent once its pass's
 * commit was read, and a pass is only looked ahead after that.
 *
 * After its run a pass never uses its jobs' tenants (commit and acknowledgement only need
 * what the jobs copied), so retired tenants are freed at the end of every run.
 */
struct wk_pass {
    size_t n;
    uint64_t t0;
    bool prefetch_sent;                             /* looked ahead, or being run */
    int slots_n;                                    /* prefetch replies still owed */
    redisReply **slots[WK_PREFETCH_MAX * WK_CHUNK]; /* where they go */
    uint32_t owed;                                  /* commit replies, once sent */
    uint32_t got;                                   /* of which received, in rep */
    redisReply **rep;
    bool failed;         /* the commit could not be sent or read */
    bool sent[WK_CHUNK]; /* the job's commit went out */
    struct wk_item items[WK_CHUNK];
    struct wk_job jobs[WK_CHUNK];
};

static void commit_append(struct worker *w, struct wk_pass *p);

/* Writes the pass's prefetch: done key, catalogue version, device record, sent plan. */
static int prefetch_send(struct worker *w, struct wk_pass *p)
{
    struct wk_batch b;
    wk_batch_init(&b);
    p->slots_n = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].rc == TAM_OK) {
            prefetch_queue(&p->jobs[i], &b, p->slots, &p->slots_n);
        }
    }
    int err = b.overflow ? TAM_ENOMEM : wk_batch_append(w->cmd, &b);
    wk_batch_finish(&b);
    p->prefetch_sent = err == TAM_OK;
    p->slots_n = p->prefetch_sent ? p->slots_n : 0;
    return err == TAM_OK ? wk_flush(w) : err;
}

/* Reads the replies of the pass's prefetch into its jobs. */
static int prefetch_receive(struct worker *w, struct wk_pass *p)
{
    int err = TAM_OK;
    for (int i = 0; i < p->slots_n && err == TAM_OK; i++) {
        void *r = NULL;
        err = w->cmd != NULL && redisGetReply(w->cmd, &r) == REDIS_OK ? TAM_OK : TAM_EUNAVAIL;
        *p->slots[i] = r;
    }
    p->slots_n = 0; /* after an error the connection is dropped: nothing is owed any more */
    return err;
}

/*
 * One round trip for the whole pass, or none when it was looked ahead (wk_jobs_look_ahead).
 * The previous pass's commit, when one is ready, is written once these reads are answered
 * and left in flight (see struct wk_pass).
 */
static int prefetch_all(struct worker *w, struct wk_pass *p)
{
    int err = wk_drain(w);
    if (err == TAM_OK && !p->prefetch_sent) {
        err = prefetch_send(w, p);
    }
    if (err == TAM_OK) {
        err = prefetch_receive(w, p);
    }
    /* Sent only now: Redis answers a read's commands after executing all of them. */
    if (err == TAM_OK && w->ready != NULL) {
        commit_append(w, w->ready);
        w->inflight = w->ready;
        w->ready = NULL;
        w->n.overlapped++;
        err = wk_flush(w);
    }
    if (err != TAM_OK) {
        w->n.redis_errors++;
    }
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

/*
 * Appends the commits of every job of the pass that computed a result; the replies are read
 * by pass_complete. A job whose commands overflowed is not sent and retried later.
 */
static void commit_append(struct worker *w, struct wk_pass *p)
{
    redisContext *c = w->cmd;
    p->owed = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct wk_job *j = &p->jobs[i];
        if (p->items[i].rc != TAM_OK || !j->needs_commit) {
            continue;
        }
        commit_queue(j, &p->items[i].result);
        if (j->commit.overflow) {
            p->items[i].rc = TAM_ENOMEM;
            continue;
        }
        if (wk_batch_append(c, &j->commit) != TAM_OK) {
            p->failed = true;
            wk_poison(w);
            return;
        }
        p->sent[i] = true;
        p->owed += j->commit.n;
    }
    p->got = 0;
    p->rep = tam_calloc(p->owed + 1u, sizeof(*p->rep));
    p->failed = p->failed || p->rep == NULL;
}

/* One reply: waited for, or only if it has arrived (*r NULL when it has not). */
static int next_reply(redisContext *c, bool wait, void **r)
{
    if (!wait) {
        return wk_reply_take(c, r);
    }
    return c != NULL && redisGetReply(c, r) == REDIS_OK ? TAM_OK : TAM_EUNAVAIL;
}

/*
 * Receives the pass's commit replies: all of them (wait), or only those that have arrived,
 * without waiting: Redis answers a long pipeline in several writes, and the worker runs
 * the next jobs meanwhile. True when none is still owed (or the pass failed).
 */
static bool commit_receive(struct worker *w, struct wk_pass *p, bool wait)
{
    while (!p->failed && p->got < p->owed) {
        void *r = NULL;
        int err = next_reply(w->cmd, wait, &r);
        if (err != TAM_OK) {
            w->n.redis_errors++;
            p->failed = true;
        } else if (r == NULL) {
            return false;
        } else {
            p->rep[p->got++] = r;
        }
    }
    return true;
}

/*
 * Receives every commit reply of the pass, then checks each job's: a check may use the
 * connection itself (a lost race reads the winner's result), so nothing may be owed then.
 */
static void commit_read(struct worker *w, struct wk_pass *p)
{
    (void)commit_receive(w, p, true);
    redisReply **rep = p->rep;
    uint32_t got = p->got;
    if (got < p->owed) {
        wk_poison(w);
    }
    uint32_t at = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->sent[i]) {
            struct wk_job *j = &p->jobs[i];
            p->items[i].rc = p->failed
                                 ? TAM_EUNAVAIL
                                 : commit_check(j, rep + at, j->commit.n, &p->items[i].result);
            at += j->commit.n;
        } else if (p->failed && p->items[i].rc == TAM_OK && p->jobs[i].needs_commit) {
            p->items[i].rc = TAM_EUNAVAIL;
        }
    }
    if (rep != NULL) {
        wk_replies_free(rep, got);
    }
    tam_free(rep);
    p->rep = NULL;
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
static void apply_all(struct worker *w, struct wk_pass *p)
{
    struct wk_job *jobs = p->jobs;
    struct wk_item *items = p->items;
    size_t n = p->n;
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

static void pass_free(struct wk_pass *p)
{
    for (size_t i = 0; i < p->n; i++) {
        job_finish(&p->jobs[i]);
        tam_buf_finish(&p->items[i].result);
    }
    if (p->rep != NULL) {
        wk_replies_free(p->rep, p->got);
        tam_free(p->rep);
    }
    tam_free(p);
}

/* Commit replies read and checked: results out, entries acknowledged, the pass freed. */
static void pass_complete(struct worker *w, struct wk_pass *p)
{
    commit_read(w, p);
    tam_log_hold(); /* the pass's job lines in one write */
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].rc != TAM_EINVAL) {
            log_job(&p->jobs[i], p->items[i].id, p->t0, p->items[i].rc);
        }
        /* Failed ones stay pending: XAUTOCLAIM retries them after claim-idle. */
        w->n.failed += p->items[i].rc != TAM_OK;
    }
    tam_log_release();
    wk_queue_ack(w, p->items, p->n);
    pass_free(p);
}

void wk_jobs_collect(struct worker *w, bool wait)
{
    struct wk_pass *p = w->inflight;
    if (p == NULL || !commit_receive(w, p, wait)) {
        return;
    }
    w->inflight = NULL; /* before its checks, which may use the connection */
    pass_complete(w, p);
}

void wk_jobs_commit(struct worker *w)
{
    (void)wk_drain(w);
    struct wk_pass *p = w->ready;
    if (p == NULL) {
        return;
    }
    w->ready = NULL;
    commit_append(w, p);
    w->inflight = p;
    wk_jobs_collect(w, true);
}

/* A pass with its own copy of the entries (the stream reply they came in is freed first). */
static struct wk_pass *pass_new(struct worker *w, const struct wk_item *items, size_t n)
{
    struct wk_pass *p = tam_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->n = n;
    p->t0 = wk_mono_us();
    for (size_t i = 0; i < n; i++) {
        struct wk_item *it = &p->items[i];
        struct wk_job *j = &p->jobs[i];
        *it = items[i];
        job_init(j, w);
        tam_buf_init(&it->result, WK_BODY_MAX + 4096);
        it->reply_to[0] = '\0';
        uint8_t *raw = it->raw.len > 0 ? tam_arena_alloc(&j->arena, it->raw.len) : NULL;
        if (raw != NULL) {
            memcpy(raw, it->raw.ptr, it->raw.len);
        }
        it->raw = tam_bytes_of(raw, raw != NULL ? it->raw.len : 0);
        it->rc = raw != NULL || items[i].raw.len == 0 ? TAM_OK : TAM_ENOMEM;
    }
    return p;
}

static void pass_decode(struct wk_pass *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct wk_item *it = &p->items[i];
        const char *why = "?";
        if (it->rc != TAM_OK) {
            continue;
        }
        if (it->raw.len == 0 || decode(&p->jobs[i], it->raw.ptr, it->raw.len, &why) != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=job_invalid entry=%s reason=\"%s\"", it->id,
                    it->raw.len == 0 ? "no job field" : why);
            it->rc = TAM_EINVAL;
            continue;
        }
        (void)snprintf(it->reply_to, sizeof(it->reply_to), "%s", p->jobs[i].job.reply_to);
    }
}

static void pass_run(struct worker *w, struct wk_pass *p)
{
    int err = prefetch_all(w, p);
    for (size_t i = 0; i < p->n; i++) {
        if (p->items[i].rc == TAM_OK) {
            p->items[i].rc = err != TAM_OK ? err : run(&p->jobs[i], &p->items[i].result);
        }
        /* The previous pass's results go out as soon as they can, in one write with the next
         * pass's prefetch when that is looked ahead now. */
        w->hold_writes = true;
        wk_jobs_collect(w, false);
        wk_queue_look_ahead(w);
        w->hold_writes = false;
        if (w->cmd != NULL && w->cmd->err == 0) {
            (void)wk_flush(w); /* an error is logged and counted there */
        }
    }
    apply_all(w, p);
    /* After its run a pass never uses its jobs' tenants: retired ones can go now. */
    wk_rtenants_gc(w);
    if (w->ready != NULL) {
        wk_jobs_commit(w); /* prefetch failed before the last pass's commit went out */
    }
    w->ready = p;
}

/* A decoded pass of the entries; NULL without memory (the entries stay pending, retried). */
static struct wk_pass *pass_take(struct worker *w, const struct wk_item *items, size_t n)
{
    struct wk_pass *p = n > 0 ? pass_new(w, items, n) : NULL;
    if (p != NULL) {
        pass_decode(p);
    }
    return p;
}

void wk_jobs_process(struct worker *w, const struct wk_item *items, size_t n)
{
    struct wk_pass *p = pass_take(w, items, n);
    if (p != NULL) {
        pass_run(w, p);
    }
}

void wk_jobs_look_ahead(struct worker *w, const struct wk_item *items, size_t n)
{
    struct wk_pass *p = w->ahead == NULL ? pass_take(w, items, n) : NULL;
    if (p == NULL) {
        return;
    }
    (void)prefetch_send(w, p); /* on an error: sent again, or failed, when the pass runs */
    w->ahead = p;
    w->n.looked_ahead++;
}

bool wk_jobs_run_ahead(struct worker *w)
{
    struct wk_pass *p = w->ahead;
    if (p == NULL) {
        return false;
    }
    w->ahead = NULL;
    pass_run(w, p);
    return true;
}

void wk_jobs_receive_ahead(struct worker *w)
{
    if (w->ahead != NULL && w->ahead->slots_n > 0 && prefetch_receive(w, w->ahead) != TAM_OK) {
        w->n.redis_errors++;
    }
}

void wk_jobs_drop_ahead(struct worker *w)
{
    if (w->ahead != NULL) {
        pass_free(w->ahead); /* its entries stay pending and are reclaimed */
        w->ahead = NULL;
    }
}
