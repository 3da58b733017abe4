/*
 * ProcessTeepMessage (TEEP-DIGEST 1.5, 1.10): a non-empty POST is one TEEP message on a
 * session, matched by its token only. The steps, each an asynchronous hop at most:
 *
 *   COSE parse -> device key by kid (cache / HMGET; kidless agents: the tenant's
 *   registered keys, bounded) -> signature -> TEEP decode (tenant numbering) ->
 *   GET tam:s:{token} -> session checks -> DEL (claims the token: exactly one request
 *   wins) -> XADD a job -> QueryResponse: wait for the worker's result; Success/Error
 *   after an Update: 204 once the job is stored.
 *
 * Anything invalid is dropped as the spec says: counted, logged without secrets, and
 * answered 204 so the peer learns nothing. 503 only when the TAM cannot answer (Redis
 * unavailable, no worker result in time).
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"

#define ARENA_CHUNK 4096u
#define ARENA_MAX   (1u << 20)
#define JOB_MAX     ((size_t)80 << 20)
#define KIDLESS_MAX 64u

struct tam_gw_msg {
    struct tam_gw_work work; /* the verification step, run from the loop */
    struct tam_gw *gw;
    struct tam_http_request *req;
    struct tam_tenant *tenant; /* reference */
    uint64_t received_ms;
    struct tam_cose_msg cose; /* spans into the request body */
    int type;                 /* decoded TEEP type, 0 before */
    bool decoded;
    bool has_kid;
    uint8_t kid[TAM_KID_LEN];
    bool verified;
    struct tam_gw_devkey *key;     /* reference, once found */
    uint8_t (*cands)[TAM_KID_LEN]; /* kidless: candidate device kids */
    uint32_t n_cands, next_cand;
    struct tam_arena arena;
    struct tam_teep_msg teep;
    uint8_t *record; /* the session record as stored */
    size_t record_len;
    struct tam_sess sess;
    enum tam_job_kind kind;
    struct tam_gw_wait wait;
    uv_timer_t timer;
    bool timer_open;    /* initialised and not yet closed */
    bool timer_closing; /* uv_close called, callback pending */
    bool xadd_inflight; /* on_xadd still to come: it must find m alive */
    bool answered;      /* the HTTP answer was given */
};

static void process_payload(struct tam_gw_msg *m);
static void lookup_session(struct tam_gw_msg *m);

/* ---- lifetime and answers ---- */

static void msg_free(struct tam_gw_msg *m)
{
    tam_gw_devkey_unref(m->key);
    tam_tenant_unref(m->tenant);
    tam_arena_finish(&m->arena);
    tam_free(m->cands);
    tam_free(m->record);
    tam_free(m);
}

static void maybe_free(struct tam_gw_msg *m)
{
    if (m->answered && !m->xadd_inflight && !m->timer_closing) {
        msg_free(m);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct tam_gw_msg *m = h->data;
    m->timer_closing = false;
    maybe_free(m);
}

/* The answer has been given: release m once no callback can reach it any more. */
static void msg_done(struct tam_gw_msg *m)
{
    m->answered = true;
    if (m->timer_open) {
        m->timer_open = false;
        m->timer_closing = true;
        uv_close((uv_handle_t *)&m->timer, on_timer_closed);
    }
    maybe_free(m);
}

static void log_outcome(const struct tam_gw_msg *m, enum tam_gw_outcome o, const char *why)
{
    int level = o == TAM_GW_OUT_ACCEPTED ? TAM_LOG_DEBUG : TAM_LOG_INFO;
    if (level > tam_log_threshold) {
        return;
    }
    char dev[2 * TAM_KID_LEN + 1] = "-";
    if (m->has_kid) {
        tam_hex_encode(m->kid, TAM_KID_LEN, dev);
    }
    char q[160];
    tam_log(level, "event=teep_message conn=%llu tenant=%s device=%s type=%s outcome=%s why=%s",
            (unsigned long long)tam_http_request_conn_id(m->req), m->tenant->id, dev,
            m->type != 0 ? tam_teep_type_name((enum tam_teep_type)m->type) : "unknown",
            tam_gw_outcome_name(o), tam_log_quote(why, strlen(why), q, sizeof(q)));
}

/* Drops an invalid message: counted, logged, 204 (the peer learns nothing). */
static void drop(struct tam_gw_msg *m, enum tam_gw_outcome o, const char *why)
{
    tam_gw_count(m->gw, m->type, o);
    log_outcome(m, o, why != NULL ? why : "");
    tam_gw_respond_status(m->gw, m->req, 204);
    msg_done(m);
}

/* The TAM cannot answer now (Redis, memory): 503. */
static void unavailable(struct tam_gw_msg *m, enum tam_gw_outcome o, int err)
{
    tam_gw_count(m->gw, m->type, o);
    log_outcome(m, o, tam_errname(err));
    tam_gw_respond_status(m->gw, m->req, 503);
    msg_done(m);
}

/* ---- signature ---- */

static bool decode(struct tam_gw_msg *m, const char **why)
{
    if (m->decoded) {
        return true;
    }
    if (m->cose.detached) {
        *why = "detached payload";
        return false;
    }
    int err = tam_teep_decode(m->cose.payload.ptr, m->cose.payload.len, m->tenant->numbering,
                              &m->arena, &m->teep, why);
    if (err != TAM_OK) {
        return false;
    }
    m->decoded = true;
    m->type = (int)m->teep.type;
    return true;
}

/* No key for the message: attested enrollment passes a QueryResponse on unverified. */
static void unknown_key(struct tam_gw_msg *m)
{
    const char *why = "no key for kid";
    if (m->tenant->enrollment == TAM_ENROLL_ATTESTED && decode(m, &why) &&
        m->teep.type == TAM_TEEP_QUERY_RESPONSE) {
        /* The worker verifies it with the key the EAT's cnf names. */
        m->gw->stats.unverified_jobs++;
        m->verified = false;
        lookup_session(m);
        return;
    }
    drop(m, TAM_GW_OUT_UNKNOWN_KID, why);
}

static void verified(struct tam_gw_msg *m)
{
    const char *why = "";
    m->verified = true;
    /* Counted after the signature, so nobody can spend another device's budget. */
    if (m->key != NULL && !tam_gw_rate_allow(&m->key->tokens, &m->key->bucket_ms,
                                             m->tenant->rps_per_device, uv_now(m->gw->loop))) {
        tam_gw_count(m->gw, m->type, TAM_GW_OUT_RATE_LIMITED);
        log_outcome(m, TAM_GW_OUT_RATE_LIMITED, "rps_per_device");
        tam_gw_respond_429(m->gw, m->req);
        msg_done(m);
        return;
    }
    if (!decode(m, &why)) {
        drop(m, TAM_GW_OUT_TEEP, why);
        return;
    }
    lookup_session(m);
}

static void verify_step(struct tam_gw_work *w)
{
    struct tam_gw_msg *m = tam_container_of(w, struct tam_gw_msg, work);
    if (tam_cose_verify_any(&m->cose, m->key->key, NULL) != TAM_OK) {
        drop(m, TAM_GW_OUT_SIGNATURE, "signature");
        return;
    }
    verified(m);
}

static void on_key(struct tam_gw *gw, struct tam_gw_devkey *key, int err, void *arg)
{
    struct tam_gw_msg *m = arg;
    if (err == TAM_ENOTFOUND) {
        unknown_key(m);
        return;
    }
    if (err != TAM_OK) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
        return;
    }
    m->key = key;
    tam_gw_defer(gw, &m->work, verify_step);
}

static void try_next_candidate(struct tam_gw_msg *m);

/* One kidless candidate, run from the work queue: every try costs a verification. */
static void candidate_step(struct tam_gw_work *w)
{
    struct tam_gw_msg *m = tam_container_of(w, struct tam_gw_msg, work);
    if (tam_cose_verify_any(&m->cose, m->key->key, NULL) == TAM_OK) {
        m->has_kid = true;
        memcpy(m->kid, m->key->kid, TAM_KID_LEN);
        verified(m);
        return;
    }
    tam_gw_devkey_unref(m->key);
    m->key = NULL;
    try_next_candidate(m);
}

static void on_candidate_key(struct tam_gw *gw, struct tam_gw_devkey *key, int err, void *arg)
{
    struct tam_gw_msg *m = arg;
    if (err != TAM_OK && err != TAM_ENOTFOUND) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
        return;
    }
    if (key == NULL) {
        try_next_candidate(m);
        return;
    }
    m->key = key;
    tam_gw_defer(gw, &m->work, candidate_step);
}

static void try_next_candidate(struct tam_gw_msg *m)
{
    if (m->next_cand >= m->n_cands) {
        unknown_key(m);
        return;
    }
    const uint8_t *kid = m->cands[m->next_cand++];
    tam_gw_devkey_lookup(m->gw, m->tenant->id, kid, on_candidate_key, m);
}

static void on_candidates(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw_msg *m = privdata;
    if (status != TAM_OK || reply->type != REDIS_REPLY_ARRAY) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, status == TAM_OK ? TAM_EREDIS : status);
        return;
    }
    size_t n = reply->elements < KIDLESS_MAX ? reply->elements : KIDLESS_MAX;
    m->cands = tam_calloc(n + 1, sizeof(*m->cands));
    if (m->cands == NULL) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, TAM_ENOMEM);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = reply->element[i];
        struct tam_buf b;
        tam_buf_init(&b, TAM_KID_LEN);
        if (e->type == REDIS_REPLY_STRING && e->len == 2 * TAM_KID_LEN &&
            tam_hex_decode(e->str, e->len, &b) == TAM_OK && b.len == TAM_KID_LEN) {
            memcpy(m->cands[m->n_cands++], b.data, TAM_KID_LEN);
        }
        tam_buf_finish(&b);
    }
    try_next_candidate(m);
}

/*
 * Older agents send no kid: try the tenant's registered device keys, at most
 * max_kidless_tries of them (SRANDMEMBER returns distinct members; all of them when the
 * set is that small, which is the deployment this fallback is meant for).
 */
static void kidless(struct tam_gw_msg *m)
{
    uint32_t tries = m->tenant->max_kidless_tries;
    tries = tries > KIDLESS_MAX ? KIDLESS_MAX : tries;
    if (tries == 0) {
        unknown_key(m);
        return;
    }
    char set[TAM_KEY_MAX];
    tam_key_tenant(set, m->tenant->id, "devices");
    int err = tam_redis_command(m->gw->rc, on_candidates, m, "SRANDMEMBER %s %u", set, tries);
    if (err != TAM_OK) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
    }
}

/* The kid of the message: the first signer with a 32-byte kid. */
static void find_kid(struct tam_gw_msg *m, bool *any_kid)
{
    *any_kid = false;
    for (unsigned i = 0; i < m->cose.nsigners; i++) {
        const struct tam_bytes *k = &m->cose.signers[i].kid;
        *any_kid = *any_kid || k->len > 0;
        if (k->len == TAM_KID_LEN) {
            memcpy(m->kid, k->ptr, TAM_KID_LEN);
            m->has_kid = true;
            return;
        }
    }
}

/* ---- session ---- */

static void enqueue(struct tam_gw_msg *m);

static void on_claim(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw_msg *m = privdata;
    if (status != TAM_OK || reply->type != REDIS_REPLY_INTEGER) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, status == TAM_OK ? TAM_EREDIS : status);
        return;
    }
    if (reply->integer != 1) {
        drop(m, TAM_GW_OUT_REPLAY, "token already consumed");
        return;
    }
    enqueue(m);
}

/* Session checks on the stored record; on success claims the token. */
static void check_session(struct tam_gw_msg *m)
{
    const char *why = "";
    if (tam_sess_decode(m->record, m->record_len, &m->sess, &why) != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=session_corrupt tenant=%s why=%s", m->tenant->id, why);
        drop(m, TAM_GW_OUT_UNKNOWN_TOKEN, "corrupt session record");
        return;
    }
    if (strcmp(m->sess.tenant, m->tenant->id) != 0) {
        drop(m, TAM_GW_OUT_TENANT, "session of another tenant");
        return;
    }
    int err = tam_sess_check_answer(&m->sess, &m->teep, tam_gw_now_ms(), &why);
    if (err == TAM_EEXPIRED) {
        drop(m, TAM_GW_OUT_EXPIRED, why);
        return;
    }
    if (err != TAM_OK && err != TAM_ETEEP) {
        /* TAM_ETEEP (a requested item is missing) still goes to the worker: it answers
           with an Update carrying err-code (TEEP-DIGEST 1.10 step 3). */
        drop(m, TAM_GW_OUT_WRONG_TYPE, why);
        return;
    }
    char key[TAM_KEY_MAX];
    tam_key_session(key, m->sess.token, TAM_TOKEN_LEN);
    err = tam_redis_command(m->gw->rc, on_claim, m, "DEL %s", key);
    if (err != TAM_OK) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
    }
}

static void on_session(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw_msg *m = privdata;
    if (status != TAM_OK) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, status);
        return;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        drop(m, TAM_GW_OUT_UNKNOWN_TOKEN, "unknown, expired or consumed token");
        return;
    }
    m->record = tam_malloc(reply->len + 1);
    if (m->record == NULL) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, TAM_ENOMEM);
        return;
    }
    memcpy(m->record, reply->str, reply->len);
    m->record_len = reply->len;
    check_session(m);
}

static void lookup_session(struct tam_gw_msg *m)
{
    if (!m->teep.has_token || m->teep.token.len != TAM_TOKEN_LEN) {
        /* Every request this TAM sends carries a 16-byte token. */
        drop(m, TAM_GW_OUT_UNKNOWN_TOKEN, "no token of ours");
        return;
    }
    char key[TAM_KEY_MAX];
    size_t klen = tam_key_session(key, m->teep.token.ptr, TAM_TOKEN_LEN);
    const char *argv[] = {"GET", key};
    const size_t lens[] = {3, klen};
    int err = tam_redis_command_argv(m->gw->rc, on_session, m, 2, argv, lens);
    if (err != TAM_OK) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
    }
}

/* ---- jobs ---- */

static void on_job_timeout(uv_timer_t *t)
{
    struct tam_gw_msg *m = t->data;
    struct tam_gw *gw = m->gw;
    tam_gw_pending_remove(gw, &m->wait);
    gw->stats.job_timeouts++;
    /* A late result finds no entry and is ignored. */
    unavailable(m, TAM_GW_OUT_TIMEOUT, TAM_ETIMEOUT);
}

static void on_xadd(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw_msg *m = privdata;
    struct tam_gw *gw = m->gw;
    bool ok = status == TAM_OK && reply->type == REDIS_REPLY_STRING;
    int err = status == TAM_OK ? TAM_EREDIS : status;
    m->xadd_inflight = false;
    if (ok) {
        gw->stats.jobs_enqueued[m->kind]++;
    }
    if (m->answered) {
        maybe_free(m); /* the result (or the timeout) came first */
        return;
    }
    if (m->kind == TAM_JOB_QUERY_RESPONSE) {
        if (!ok) {
            /* The result cannot come: the job was never stored. */
            tam_gw_pending_remove(gw, &m->wait);
            unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
        }
        return; /* the answer comes with the result (or the timer) */
    }
    if (!ok) {
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
        return;
    }
    tam_gw_count(gw, m->type, TAM_GW_OUT_ACCEPTED);
    log_outcome(m, TAM_GW_OUT_ACCEPTED, "report");
    tam_gw_respond_status(gw, m->req, 204);
    msg_done(m);
}

static int build_job(struct tam_gw_msg *m, struct tam_buf *out)
{
    struct tam_job job;
    memset(&job, 0, sizeof(job));
    memcpy(job.id, m->wait.id, TAM_JOB_ID_LEN);
    job.kind = m->kind;
    (void)snprintf(job.tenant, sizeof(job.tenant), "%s", m->tenant->id);
    if (m->kind == TAM_JOB_QUERY_RESPONSE) {
        size_t n = strlen(m->gw->results_key);
        if (n >= sizeof(job.reply_to)) {
            return TAM_ETOOBIG; /* cannot happen: ids are short */
        }
        memcpy(job.reply_to, m->gw->results_key, n + 1);
    }
    job.received_ms = m->received_ms;
    job.verified = m->verified;
    /* Unverified (attested enrollment), the kid header only tells the worker which record to
     * prefetch: the one it learns from the EAT's cnf when that kid is its key's thumbprint. */
    job.has_device = m->has_kid;
    memcpy(job.device_kid, m->kid, TAM_KID_LEN);
    job.message = tam_http_request_body(m->req);
    job.session = tam_bytes_of(m->record, m->record_len);
    return tam_job_encode(&job, out);
}

/*
 * Success, or an Error answering an Update, is a report (204 once stored). A QueryResponse,
 * or an Error answering a QueryRequest (e.g. ERR_UNSUPPORTED_CIPHER_SUITES: the worker
 * decides whether to send a new QueryRequest), needs the worker's answer.
 */
static enum tam_job_kind job_kind(const struct tam_gw_msg *m)
{
    if (m->teep.type == TAM_TEEP_SUCCESS ||
        (m->teep.type == TAM_TEEP_ERROR && m->sess.kind == TAM_SESS_UPDATE)) {
        return TAM_JOB_REPORT;
    }
    return TAM_JOB_QUERY_RESPONSE;
}

static int start_wait(struct tam_gw_msg *m)
{
    int err = uv_timer_init(m->gw->loop, &m->timer);
    if (err != 0) {
        return err;
    }
    m->timer.data = m;
    m->timer_open = true;
    tam_gw_pending_add(m->gw, &m->wait);
    return uv_timer_start(&m->timer, on_job_timeout, m->gw->cfg.job_timeout_ms, 0);
}

static void enqueue(struct tam_gw_msg *m)
{
    m->kind = job_kind(m);
    int err = tam_random(m->wait.id, TAM_JOB_ID_LEN);
    struct tam_buf job;
    tam_buf_init(&job, JOB_MAX);
    if (err == TAM_OK) {
        err = build_job(m, &job);
    }
    if (err == TAM_OK && m->kind == TAM_JOB_QUERY_RESPONSE) {
        /* In the table before the XADD: the result may overtake the XADD reply. */
        err = start_wait(m);
    }
    if (err == TAM_OK) {
        const char *argv[] = {"XADD", TAM_KEY_JOBS,          "MAXLEN", "~", TAM_GW_JOBS_MAXLEN, "*",
                              "job",  (const char *)job.data};
        const size_t lens[] = {4,      strlen(TAM_KEY_JOBS), 6, 1, strlen(TAM_GW_JOBS_MAXLEN), 1, 3,
                               job.len};
        err = tam_redis_command_argv(m->gw->rc, on_xadd, m, 8, argv, lens);
        m->xadd_inflight = err == TAM_OK;
    }
    tam_buf_finish(&job);
    if (err != TAM_OK) {
        if (m->timer_open) {
            tam_gw_pending_remove(m->gw, &m->wait);
        }
        unavailable(m, TAM_GW_OUT_UNAVAILABLE, err);
    }
}

static void respond_result(struct tam_gw_msg *m, const struct tam_job_result *r)
{
    struct tam_gw *gw = m->gw;
    int status = r->status;
    if (status == 200 && r->body.len > 0) {
        tam_gw_respond_teep(gw, m->req, r->body.ptr, r->body.len);
    } else if (status == 204 || (status >= 500 && status <= 599)) {
        tam_gw_respond_status(gw, m->req, status);
    } else {
        tam_log(TAM_LOG_WARN, "event=result_invalid status=%d len=%zu", status, r->body.len);
        tam_gw_respond_status(gw, m->req, 503);
    }
}

void tam_gw_message_result(struct tam_gw *gw, struct tam_gw_wait *w, const struct tam_job_result *r)
{
    struct tam_gw_msg *m = tam_container_of(w, struct tam_gw_msg, wait);
    uv_timer_stop(&m->timer);
    gw->stats.results++;
    tam_gw_count(gw, m->type, TAM_GW_OUT_ACCEPTED);
    if (tam_log_threshold >= TAM_LOG_INFO) {
        char q[64];
        tam_log(TAM_LOG_INFO, "event=teep_result conn=%llu tenant=%s status=%u outcome=%s",
                (unsigned long long)tam_http_request_conn_id(m->req), m->tenant->id, r->status,
                tam_log_quote(r->outcome.ptr, r->outcome.len, q, sizeof(q)));
    }
    respond_result(m, r);
    msg_done(m);
}

void tam_gw_message_fail_all(struct tam_gw *gw)
{
    struct tam_gw_wait *w;
    while ((w = tam_gw_pending_pop(gw)) != NULL) {
        struct tam_gw_msg *m = tam_container_of(w, struct tam_gw_msg, wait);
        uv_timer_stop(&m->timer);
        unavailable(m, TAM_GW_OUT_TIMEOUT, TAM_EUNAVAIL);
    }
}

/* ---- entry ---- */

static void process_payload(struct tam_gw_msg *m)
{
    const char *why = "";
    struct tam_bytes body = tam_http_request_body(m->req);
    if (tam_cose_parse(body.ptr, body.len, &m->cose, &why) != TAM_OK) {
        drop(m, TAM_GW_OUT_COSE, why);
        return;
    }
    bool any_kid = false;
    find_kid(m, &any_kid);
    if (m->has_kid) {
        tam_gw_devkey_lookup(m->gw, m->tenant->id, m->kid, on_key, m);
    } else if (!any_kid) {
        kidless(m);
    } else {
        unknown_key(m); /* a kid that is not an RFC 9679 thumbprint */
    }
}

void tam_gw_message(struct tam_gw *gw, struct tam_http_request *req, struct tam_tenant *t)
{
    struct tam_gw_msg *m = tam_calloc(1, sizeof(*m));
    if (m == NULL) {
        tam_gw_respond_status(gw, req, 503);
        tam_tenant_unref(t);
        return;
    }
    m->gw = gw;
    m->req = req;
    m->tenant = t;
    m->received_ms = tam_gw_now_ms();
    tam_arena_init(&m->arena, ARENA_CHUNK, ARENA_MAX);
    process_payload(m);
}
