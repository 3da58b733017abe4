/*
 * A REPORT job: the agent's Success or Error answering an Update (TEEP-DIGEST 1.10 step 4, 5).
 *
 * Every SUIT report must carry the Update's token as its nonce and name, by its reference
 * digest, a manifest that Update carried; otherwise the message is dropped with no state
 * change (TP 7.1), logged and counted. Reports inside a COSE_Sign1 are taken as they are:
 * the TEEP message around them is already authenticated by the agent's key, and the TAM
 * has no separate report key of the device.
 *
 * Success: the Update's plan (tam:s:{token}:plan) is applied to the installed list;
 * Error ERR_MANIFEST_PROCESSING_FAILED: applied except the manifests the reports name as
 * failed (and what depends on them); other Errors: history only. Both at most once per token
 * (wk_device_apply_queue). The first attempt of every report of a batch goes out in one
 * pipeline with the others (job.c); a conflict is retried on its own. The answer to the
 * agent is always 204.
 */
#include <string.h>

#include "tam/err.h"
#include "tam/log.h"
#include "tam/suit.h"
#include "worker.h"

#define APPLY_RETRIES 8

struct report_state {
    struct tam_plan plan;
    uint32_t n_failed;
    struct tam_bytes failed[TAM_SESS_MAX_MANIFESTS];
};

static bool digest_sent(const struct tam_sess *s, const struct tam_suit_digest *d)
{
    if (d->alg != TAM_ALG_SHA256 || d->bytes.len != TAM_SHA256_LEN) {
        return false;
    }
    for (uint32_t i = 0; i < s->n_manifests; i++) {
        if (memcmp(s->manifest_digest[i], d->bytes.ptr, TAM_SHA256_LEN) == 0) {
            return true;
        }
    }
    return false;
}

/* NULL when every report is acceptable, else the reason to drop the message. */
static const char *check_reports(struct wk_job *j, const struct tam_teep_msg *m,
                                 struct report_state *st)
{
    for (uint32_t i = 0; m->has_suit_reports && i < m->n_suit_reports; i++) {
        struct tam_suit_report r;
        const char *why = NULL;
        if (tam_suit_report_decode(m->suit_reports[i].ptr, m->suit_reports[i].len, &j->arena, &r,
                                   &why) != TAM_OK) {
            return why != NULL ? why : "malformed SUIT report";
        }
        if (!r.has_nonce || r.nonce.len != TAM_TOKEN_LEN ||
            !tam_ct_equal(r.nonce.ptr, j->sess.token, TAM_TOKEN_LEN)) {
            return "SUIT report nonce does not match the Update token";
        }
        if (!digest_sent(&j->sess, &r.manifest_digest)) {
            return "SUIT report names a manifest the Update did not carry";
        }
        if (!r.success && st->n_failed < TAM_SESS_MAX_MANIFESTS) {
            st->failed[st->n_failed++] = r.manifest_digest.bytes;
        }
    }
    return NULL;
}

static void load_plan(struct wk_job *j, struct report_state *st)
{
    struct tam_bytes b;
    memset(&st->plan, 0, sizeof(st->plan));
    if (!wk_reply_bytes(j->pre.sent, &b)) {
        tam_log(TAM_LOG_WARN, "event=sent_plan_missing tenant=%s", j->tenant->t->id);
        return;
    }
    const char *why = NULL;
    if (tam_store_sent_decode(b.ptr, b.len, &j->arena, &st->plan, &why) != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=sent_plan_invalid tenant=%s reason=\"%s\"", j->tenant->t->id,
                why);
    }
}

/* The new installed list into out; *change false when it stays as it is. */
static int compute(struct wk_job *j, const struct tam_teep_msg *m, const struct report_state *st,
                   const struct tam_bytes *old, struct tam_buf *out, bool *change)
{
    struct tam_plan_installed *inst = NULL, *res = NULL;
    uint32_t n_inst = 0, n_res = 0;
    const char *why = NULL;
    int err = tam_store_installed_decode(old->ptr, old->len, &j->arena, &inst, &n_inst, &why);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=device_installed_invalid tenant=%s reason=\"%s\"",
                j->tenant->t->id, why);
        return err == TAM_ENOMEM ? err : TAM_OK; /* leave a broken record alone */
    }
    bool success = m->type == TAM_TEEP_SUCCESS;
    bool partial =
        m->type == TAM_TEEP_ERROR && m->err_code == TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED;
    *change = (success && !tam_plan_is_empty(&st->plan)) || (partial && st->plan.n_entries > 0);
    if (!*change) {
        return TAM_OK;
    }
    if (success) {
        err = tam_plan_apply_success(&st->plan, inst, n_inst, &j->arena, &res, &n_res);
    } else {
        err = tam_plan_apply_error(&st->plan, inst, n_inst, st->failed, st->n_failed, &j->arena,
                                   &res, &n_res);
    }
    if (err == TAM_OK) {
        err = tam_store_installed_encode(res, n_res, out);
    }
    if (err != TAM_OK && err != TAM_ENOMEM) {
        tam_log(TAM_LOG_ERROR, "event=apply_failed tenant=%s err=%s", j->tenant->t->id,
                tam_errname(err));
        *change = false;
        err = TAM_OK;
    }
    return err;
}

static void history_of(const struct wk_job *j, const struct tam_teep_msg *m,
                       const struct report_state *st, struct tam_store_history *h)
{
    memset(h, 0, sizeof(*h));
    h->ms = j->now_ms;
    h->failed = st->n_failed;
    if (m->type == TAM_TEEP_SUCCESS) {
        h->event = "success";
        h->installed = st->plan.n_entries;
        h->unlinked = st->plan.n_unlink;
        return;
    }
    h->event = "error";
    h->err_code = m->err_code;
    if (m->err_code == TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED) {
        h->installed = st->plan.n_entries > st->n_failed ? st->plan.n_entries - st->n_failed : 0;
    }
}

/* What a report job keeps between its queued apply and the reply (in the job's arena). */
struct wk_report {
    struct tam_teep_msg m;
    struct report_state st;
    struct tam_store_history h;
};

/* Queues the compare-and-set of the installed list against the record in j->pre.device. */
static int queue_apply(struct wk_job *j, const struct wk_report *r, struct wk_batch *b)
{
    struct wk_device d;
    wk_device_from_reply(j->pre.device, &d);
    struct tam_buf next;
    tam_buf_init(&next, 16u << 20);
    bool change = false;
    int err = compute(j, &r->m, &r->st, &d.installed, &next, &change);
    if (err == TAM_OK) {
        err = wk_device_apply_queue(j, &d.installed, &next, change, &r->h, b);
    }
    tam_buf_finish(&next);
    return err;
}

/* One more attempt after a conflict, on its own: a fresh read of the device, then the apply. */
static int apply_again(struct wk_job *j)
{
    int err = wk_device_fetch(j);
    struct wk_batch b;
    wk_batch_init(&b);
    err = err == TAM_OK ? queue_apply(j, j->report, &b) : err;
    redisReply *r = NULL;
    err = err == TAM_OK ? wk_batch_exec(j->w, &b, &r) : err;
    wk_batch_finish(&b);
    if (err != TAM_OK) {
        return err;
    }
    int rc = wk_device_applied(r);
    freeReplyObject(r);
    return rc;
}

int wk_report_applied(struct wk_job *j, const redisReply *reply)
{
    int rc = wk_device_applied(reply);
    /* -1: another report of the device changed its installed list first: recompute. */
    for (int attempt = 1; rc == -1 && attempt < APPLY_RETRIES; attempt++) {
        rc = apply_again(j);
    }
    if (rc < 0) {
        return rc == -1 ? TAM_EREDIS : rc;
    }
    const struct tam_teep_msg *m = &j->report->m;
    j->outcome = rc == 1 ? "recorded" : "already-recorded";
    j->status = 204;
    j->reason = m->type == TAM_TEEP_ERROR ? tam_teep_err_name(m->err_code) : NULL;
    j->w->n.reports++;
    char skey[TAM_KEY_MAX];
    tam_key_session(skey, j->sess.token, TAM_TOKEN_LEN);
    wk_batch_addf(&j->commit, "DEL %s:plan", skey);
    return TAM_OK;
}

static int decode(struct wk_job *j, struct tam_cose_msg *cose, struct tam_teep_msg *m)
{
    const char *why = NULL;
    if (j->sess.kind != TAM_SESS_UPDATE || !j->sess.has_device) {
        wk_job_drop(j, "the token names no Update");
        return TAM_EDENIED;
    }
    memcpy(j->kid, j->sess.device_kid, TAM_KID_LEN);
    j->has_kid = true;
    if (j->job.has_device && memcmp(j->job.device_kid, j->sess.device_kid, TAM_KID_LEN) != 0) {
        wk_job_drop(j, "the sender is not the device the Update went to");
        return TAM_EDENIED;
    }
    if (tam_cose_parse(j->job.message.ptr, j->job.message.len, cose, &why) != TAM_OK ||
        cose->detached ||
        tam_teep_decode(cose->payload.ptr, cose->payload.len, j->sess.numbering, &j->arena, m,
                        &why) != TAM_OK) {
        wk_job_drop(j, why);
        return TAM_EDENIED;
    }
    int err = wk_job_verify_sender(j, cose);
    if (err == TAM_ESIG || err == TAM_ENOTFOUND) {
        wk_job_drop(j, err == TAM_ESIG ? "signature does not verify" : "device key unknown");
        return TAM_EDENIED;
    }
    if (err == TAM_OK && tam_sess_check_answer(&j->sess, m, wk_job_arrival_ms(j), &why) != TAM_OK) {
        wk_job_drop(j, why);
        return TAM_EDENIED;
    }
    return err;
}

int wk_report_run(struct wk_job *j)
{
    struct wk_report *r = tam_arena_alloc(&j->arena, sizeof(*r));
    if (r == NULL) {
        return TAM_ENOMEM;
    }
    memset(r, 0, sizeof(*r));
    struct tam_cose_msg cose;
    int err = decode(j, &cose, &r->m);
    if (err != TAM_OK) {
        return err == TAM_EDENIED ? TAM_OK : err;
    }
    const char *bad = check_reports(j, &r->m, &r->st);
    if (bad != NULL) {
        j->w->n.reports_dropped++;
        wk_job_drop(j, bad);
        return TAM_OK;
    }
    load_plan(j, &r->st);
    history_of(j, &r->m, &r->st, &r->h);
    j->report = r;
    err = queue_apply(j, r, &j->apply);
    j->apply_queued = err == TAM_OK;
    return err;
}
