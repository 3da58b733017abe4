/*
 * A QueryResponse job (TEEP-DIGEST 1.10 step 3): authenticate the agent (or learn its key from
 * a verified EAT), check the answer against the QueryRequest session, attest, plan, and sign
 * the Update. Also an Error answering a QueryRequest.
 *
 * Reactions, in the order they are checked:
 *   invalid COSE / TEEP, bad signature, unknown device, expired or foreign token -> 204 drop;
 *   a data item the QueryRequest asked for is missing, or a SUIT report nonce != token
 *     -> Update with err-code ERR_PERMANENT_ERROR (TP 7.1: "drop and send an Update carrying
 *        err-code");
 *   attestation fails (signature, nonce, claims, cnf, expiry, claim policy) -> Update with
 *     err-code ERR_ATTESTATION_REQUIRED and err-msg "attestation failed" (TEEP-DIGEST 1.9,
 *     "decision cases after attestation"), the device's status attestation_failed, nothing
 *     installed;
 *   nothing to do -> 204; otherwise a signed Update (stored envelopes, byte-exact).
 * An Error from the agent: ERR_UNSUPPORTED_CIPHER_SUITES / _FRESHNESS_MECHANISMS /
 * _MSG_VERSION -> a new QueryRequest when a common choice exists (else 204);
 * ERR_ATTESTATION_REQUIRED -> 204 (this TAM has no attestation of its own); others -> 204,
 * recorded in the device history.
 */
#include <string.h>

#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tam/suit.h"
#include "worker.h"

void wk_job_drop(struct wk_job *j, const char *reason)
{
    j->status = 204;
    j->outcome = "dropped";
    j->reason = reason;
    j->w->n.dropped++;
}

uint64_t wk_job_arrival_ms(const struct wk_job *j)
{
    /* The token's validity is judged when the message reached the gateway, not when a worker
     * (perhaps after a crash and a reclaim) gets to it. */
    return j->job.received_ms != 0 && j->job.received_ms <= j->now_ms ? j->job.received_ms
                                                                      : j->now_ms;
}

int wk_job_agent_alg(const struct wk_job *j, const struct tam_cose_msg *cose)
{
    for (unsigned i = 0; i < cose->nsigners; i++) {
        int wire = 0;
        if (tam_tenant_key_for_alg(j->tenant->t, cose->signers[i].alg, &wire) != NULL) {
            return wire;
        }
    }
    return 0;
}

/* The key that signs for j->kid: registered in the config file, or in the device record. */
static int sender_key(struct wk_job *j, const struct tam_key **key, struct tam_key **owned)
{
    *owned = NULL;
    *key = wk_tenant_device_key(j->tenant, j->kid);
    if (*key != NULL) {
        return TAM_OK;
    }
    struct wk_device d;
    wk_device_from_reply(j->pre.device, &d);
    int err = wk_device_key(j, &d, owned);
    *key = *owned;
    return err == TAM_OK ? TAM_OK : TAM_ENOTFOUND;
}

int wk_job_verify_sender(struct wk_job *j, const struct tam_cose_msg *cose)
{
    if (!j->has_kid) {
        return TAM_ENOTFOUND;
    }
    if (j->job.verified) {
        /* The gateway verified it. Only a key from the config file is taken along (free),
         * for the device record; importing the record's key would cost a point check. */
        j->sender_key = wk_tenant_device_key(j->tenant, j->kid);
        return TAM_OK;
    }
    const struct tam_key *key = NULL;
    struct tam_key *owned = NULL;
    int err = sender_key(j, &key, &owned);
    if (err == TAM_OK) {
        err = tam_cose_verify_any(cose, key, NULL) == TAM_OK ? TAM_OK : TAM_ESIG;
    }
    if (err == TAM_OK && owned != NULL) {
        j->learned = owned; /* kept for the job: type/pub of the record */
        owned = NULL;
    }
    j->sender_key = err == TAM_OK ? key : NULL;
    tam_key_destroy(owned);
    return err;
}

/* ---- answers ---- */

static int sign_reply(struct wk_job *j, int alg, const struct tam_teep_msg *msg)
{
    tam_buf_reset(&j->body);
    int err = tam_sess_sign1(j->tenant->t, alg, msg, &j->body);
    if (err == TAM_ECOSE_ALG || err == TAM_EINVAL) {
        tam_log(TAM_LOG_ERROR, "event=sign_failed tenant=%s alg=%d err=%s", j->tenant->t->id, alg,
                tam_errname(err));
        wk_job_drop(j, "cannot sign the answer");
        return TAM_OK;
    }
    if (err == TAM_OK) {
        j->status = 200;
    }
    return err;
}

static int error_update(struct wk_job *j, int alg, uint32_t code, const char *msg,
                        const char *outcome)
{
    struct tam_teep_msg u;
    tam_teep_msg_init(&u, TAM_TEEP_UPDATE);
    u.has_err_code = true;
    u.err_code = code;
    u.has_err_msg = true;
    u.err_msg = tam_bytes_of(msg, strlen(msg));
    j->outcome = outcome;
    j->w->n.error_updates++;
    return sign_reply(j, alg, &u);
}

static bool device_known(const struct wk_job *j)
{
    return j->has_kid && (j->job.verified || j->sender_key != NULL);
}

static int reject(struct wk_job *j, int alg, const char *why)
{
    j->w->n.attest_failed++;
    j->reason = why;
    if (device_known(j) && !j->learning) {
        struct tam_store_history h = {.ms = j->now_ms, .event = "attestation-failed"};
        wk_device_attestation_failed(j);
        wk_device_history(j, &h);
    }
    return error_update(j, alg, TAM_TEEP_ERR_ATTESTATION_REQUIRED, "attestation failed",
                        "attestation-failed");
}

/* TP 4.3: with a token in the QueryRequest every SUIT report carries it as its nonce. */
static bool reports_ok(struct wk_job *j, const struct tam_teep_msg *m)
{
    for (uint32_t i = 0; m->has_suit_reports && i < m->n_suit_reports; i++) {
        struct tam_suit_report r;
        const char *why = NULL;
        if (tam_suit_report_decode(m->suit_reports[i].ptr, m->suit_reports[i].len, &j->arena, &r,
                                   &why) != TAM_OK ||
            !r.has_nonce || r.nonce.len != TAM_TOKEN_LEN ||
            !tam_ct_equal(r.nonce.ptr, j->sess.token, TAM_TOKEN_LEN)) {
            return false;
        }
    }
    return true;
}

/* ---- authentication ---- */

/*
 * A new device may be learned only while the tenant is under max_devices (registration
 * through the admin API checks the same limit). Workers learning devices at the same moment
 * may overshoot by at most one device each.
 */
static int check_device_limit(struct wk_job *j)
{
    struct wk_device d;
    wk_device_from_reply(j->pre.device, &d);
    uint32_t max = j->tenant->t->max_devices;
    if (d.exists || max == 0) {
        return TAM_OK;
    }
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, j->tenant->t->id, "devices");
    redisReply *r = wk_cmd(j->w, j->w->cmd, "SCARD %s", key);
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    bool full = r->type == REDIS_REPLY_INTEGER && r->integer >= (long long)max;
    freeReplyObject(r);
    if (full) {
        wk_job_drop(j, "the tenant's max_devices limit is reached");
        return TAM_EDENIED;
    }
    return TAM_OK;
}

/* An unknown device in `attested` enrollment: its key comes from the verified EAT's cnf. */
static int learn(struct wk_job *j, const struct tam_cose_msg *cose, const struct tam_teep_msg *m,
                 struct wk_attest *at)
{
    const struct tam_tenant *t = j->tenant->t;
    const char *why = NULL;
    if (t->enrollment != TAM_ENROLL_ATTESTED || m->type != TAM_TEEP_QUERY_RESPONSE ||
        (j->sess.data_items & TAM_TEEP_DATA_ATTESTATION) == 0) {
        wk_job_drop(j, "unknown device");
        return TAM_EDENIED;
    }
    if (wk_attest_verify(j, m, at, &why) != TAM_OK ||
        wk_attest_cnf_key(&at->c, &j->learned, &why) != TAM_OK) {
        wk_job_drop(j, why);
        return TAM_EDENIED;
    }
    if (tam_cose_verify_any(cose, j->learned, NULL) != TAM_OK) {
        wk_job_drop(j, "signature does not verify with the cnf key");
        return TAM_EDENIED;
    }
    memcpy(j->kid, tam_key_kid(j->learned), TAM_KID_LEN);
    j->has_kid = true;
    j->learning = true;
    j->sender_key = j->learned;
    /* When the message named this kid, the prefetch already read its record: no round trip. */
    bool prefetched = j->job.has_device && j->pre.device != NULL &&
                      memcmp(j->job.device_kid, j->kid, TAM_KID_LEN) == 0;
    int err = prefetched ? TAM_OK : wk_device_fetch(j);
    return err == TAM_OK ? check_device_limit(j) : err;
}

static int authenticate(struct wk_job *j, const struct tam_cose_msg *cose,
                        const struct tam_teep_msg *m, struct wk_attest *at)
{
    if (j->job.has_device) {
        memcpy(j->kid, j->job.device_kid, TAM_KID_LEN);
        j->has_kid = true;
    }
    int err = wk_job_verify_sender(j, cose);
    if (err == TAM_ESIG) {
        wk_job_drop(j, "signature does not verify");
        return TAM_EDENIED;
    }
    if (err == TAM_ENOTFOUND && j->job.has_device && !j->job.verified) {
        j->has_kid = false; /* a kid nobody registered: maybe a device to learn */
    }
    return err == TAM_ENOTFOUND ? learn(j, cose, m, at) : err;
}

/* ---- Error from the agent ---- */

static int new_query(struct wk_job *j, int alg, bool single_suite)
{
    const struct tam_tenant *t = j->tenant->t;
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    int err = tam_random(rand, sizeof(rand));
    if (err != TAM_OK) {
        return err;
    }
    struct tam_sess ns;
    tam_sess_new_query(&ns, t, rand, j->now_ms);
    ns.has_device = j->has_kid;
    memcpy(ns.device_kid, j->kid, TAM_KID_LEN);
    struct tam_teep_msg qr;
    tam_sess_query_request(&ns, &qr);
    if (single_suite) {
        qr.supported_suites.n = 1;
        tam_teep_suite_single(&qr.supported_suites.v[0], TAM_TEEP_COSE_SIGN1, alg);
    }
    err = sign_reply(j, alg, &qr);
    if (err == TAM_OK && j->status == 200) {
        wk_session_store(j, &ns, NULL, (uint64_t)t->session_ttl_s * 1000u);
        j->outcome = "query-request";
        j->w->n.query_requests++;
    }
    return err;
}

static int pick_suite(const struct wk_job *j, const struct tam_teep_msg *m, int *alg)
{
    int64_t algs[4];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        const struct tam_key *k = j->tenant->t->tam_keys[i];
        if (k == NULL) {
            continue;
        }
        /* The tenant's preferred id first, then the other id of the same algorithm. */
        int64_t pref = tam_tenant_wire_alg(j->tenant->t, tam_key_type(k));
        int64_t other = pref == TAM_ALG_ES256    ? TAM_ALG_ESP256
                        : pref == TAM_ALG_ESP256 ? TAM_ALG_ES256
                        : pref == TAM_ALG_EDDSA  ? TAM_ALG_ED25519
                                                 : TAM_ALG_EDDSA;
        algs[n++] = pref;
        algs[n++] = other;
    }
    int64_t picked = 0;
    if (!m->has_supported_suites ||
        tam_teep_suites_pick_sign1(&m->supported_suites, algs, n, &picked) != TAM_OK) {
        return TAM_ENOTFOUND;
    }
    *alg = (int)picked;
    return TAM_OK;
}

static bool has_u64(const uint64_t *v, uint32_t n, uint64_t x)
{
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] == x) {
            return true;
        }
    }
    return false;
}

static bool has_u32(const uint32_t *v, uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] == x) {
            return true;
        }
    }
    return false;
}

static int on_error(struct wk_job *j, const struct tam_teep_msg *m, int alg)
{
    uint32_t code = m->err_code;
    if (j->has_kid) {
        struct tam_store_history h = {.ms = j->now_ms, .event = "agent-error", .err_code = code};
        wk_device_history(j, &h);
    }
    j->status = 204;
    j->outcome = "agent-error";
    j->reason = tam_teep_err_name(code);
    int picked = 0;
    switch (code) {
    case TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES:
        return pick_suite(j, m, &picked) == TAM_OK ? new_query(j, picked, true) : TAM_OK;
    case TAM_TEEP_ERR_UNSUPPORTED_FRESHNESS_MECHANISMS:
        return m->has_freshness && has_u64(m->freshness, m->n_freshness, TAM_TEEP_FRESHNESS_NONCE)
                   ? new_query(j, alg, false)
                   : TAM_OK;
    case TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION:
        return m->has_versions && has_u32(m->versions, m->n_versions, 0) ? new_query(j, alg, false)
                                                                         : TAM_OK;
    case TAM_TEEP_ERR_ATTESTATION_REQUIRED:
        j->reason = "agent wants TAM attestation; none configured";
        return TAM_OK;
    default:
        return TAM_OK;
    }
}

/* ---- planning and the Update ---- */

static int device_input(struct wk_job *j, struct tam_plan_device *dev)
{
    struct wk_device d;
    wk_device_from_reply(j->pre.device, &d);
    memset(dev, 0, sizeof(*dev));
    dev->has_kid = true;
    memcpy(dev->kid, j->kid, TAM_KID_LEN);
    const char *why = NULL;
    struct tam_bytes *labels = NULL;
    struct tam_plan_installed *inst = NULL;
    if (tam_store_labels_parse((const char *)d.labels.ptr, d.labels.len, &j->arena, &labels,
                               &dev->n_labels, &why) != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=device_labels_invalid tenant=%s reason=\"%s\"",
                j->tenant->t->id, why);
    }
    int err = tam_store_installed_decode(d.installed.ptr, d.installed.len, &j->arena, &inst,
                                         &dev->n_installed, &why);
    if (err == TAM_ENOMEM) {
        return err;
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=device_installed_invalid tenant=%s reason=\"%s\"",
                j->tenant->t->id, why);
    }
    dev->labels = labels;
    dev->installed = inst;
    return TAM_OK;
}

static int sent_session(struct wk_job *j, const struct tam_plan *plan, int alg, const uint8_t *tok)
{
    const struct tam_tenant *t = j->tenant->t;
    struct tam_sess s;
    memset(&s, 0, sizeof(s));
    s.kind = TAM_SESS_UPDATE;
    memcpy(s.tenant, t->id, sizeof(s.tenant));
    s.numbering = j->sess.numbering;
    memcpy(s.token, tok, TAM_TOKEN_LEN);
    s.created_ms = j->now_ms;
    s.expires_ms = j->now_ms + (uint64_t)t->update_ttl_s * 1000u;
    s.has_device = true;
    memcpy(s.device_kid, j->kid, TAM_KID_LEN);
    s.alg = alg;
    s.n_manifests = plan->n_entries;
    for (uint32_t i = 0; i < plan->n_entries; i++) {
        memcpy(s.manifest_digest[i], plan->entries[i].manifest->digest, TAM_SHA256_LEN);
    }
    struct tam_buf sent;
    tam_buf_init(&sent, 4u << 20);
    int err = tam_store_sent_encode(plan, &sent);
    if (err == TAM_OK) {
        wk_session_store(j, &s, &sent, (uint64_t)t->update_ttl_s * 1000u);
    }
    tam_buf_finish(&sent);
    return err;
}

static int send_update(struct wk_job *j, const struct tam_plan *plan, int alg)
{
    uint8_t tok[TAM_TOKEN_LEN];
    int err = tam_random(tok, sizeof(tok));
    struct tam_teep_msg u;
    tam_teep_msg_init(&u, TAM_TEEP_UPDATE);
    u.has_token = true;
    u.token = tam_bytes_of(tok, sizeof(tok));
    if (err == TAM_OK && plan->n_entries > 0) {
        u.manifest_list = tam_arena_array(&j->arena, plan->n_entries, sizeof(*u.manifest_list));
        err = u.manifest_list == NULL ? TAM_ENOMEM : TAM_OK;
    }
    for (uint32_t i = 0; err == TAM_OK && i < plan->n_entries; i++) {
        const struct wk_entry *e = plan->entries[i].manifest->user;
        u.manifest_list[i] = e->c.envelope; /* shipped byte-exact */
    }
    u.has_manifest_list = plan->n_entries > 0;
    u.n_manifest_list = plan->n_entries;
    tam_plan_fill_update(plan, &u);
    if (err == TAM_OK) {
        err = sign_reply(j, alg, &u);
    }
    if (err == TAM_OK && j->status == 200) {
        err = sent_session(j, plan, alg, tok);
        j->outcome = "update";
        j->w->n.updates++;
    }
    return err;
}

static int plan_update(struct wk_job *j, const struct tam_teep_msg *m, int alg,
                       const struct wk_catalog *cat, const struct tam_eat_claims *claims)
{
    struct tam_plan_device dev;
    int err = device_input(j, &dev);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_plan_query q;
    tam_plan_query_from_msg(m, (j->sess.data_items & TAM_TEEP_DATA_TRUSTED_COMPONENTS) != 0, &q);
    struct tam_plan_input in = {
        .n_catalogue = cat->n_manifests,
        .catalogue = cat->manifests,
        .policy = &cat->policy.plan,
        .device = &dev,
        .query = &q,
        .max_manifests = TAM_SESS_MAX_MANIFESTS,
    };
    struct tam_plan plan;
    const char *why = NULL;
    err = tam_plan_compute(&in, &j->arena, &plan, &why);
    if (err == TAM_ENOMEM) {
        return err;
    }
    if (err != TAM_OK) {
        wk_job_drop(j, why); /* the device's lists are malformed */
        return TAM_OK;
    }
    wk_device_refresh(j, claims, claims != NULL);
    j->w->n.attest_ok += claims != NULL;
    j->w->n.keys_learned += j->learning;
    if (tam_plan_is_empty(&plan)) {
        j->status = 204;
        j->outcome = "nothing";
        j->w->n.nothing++;
        return TAM_OK;
    }
    return send_update(j, &plan, alg);
}

int wk_query_run(struct wk_job *j)
{
    struct tam_cose_msg cose;
    struct tam_teep_msg m;
    const char *why = NULL;
    if (j->sess.kind != TAM_SESS_QUERY) {
        wk_job_drop(j, "the token names no QueryRequest");
        return TAM_OK;
    }
    if (tam_cose_parse(j->job.message.ptr, j->job.message.len, &cose, &why) != TAM_OK ||
        cose.detached ||
        tam_teep_decode(cose.payload.ptr, cose.payload.len, j->sess.numbering, &j->arena, &m,
                        &why) != TAM_OK) {
        wk_job_drop(j, why);
        return TAM_OK;
    }
    int alg = wk_job_agent_alg(j, &cose);
    struct wk_attest at;
    memset(&at, 0, sizeof(at));
    int err = alg == 0 ? TAM_EDENIED : authenticate(j, &cose, &m, &at);
    if (alg == 0) {
        wk_job_drop(j, "no algorithm in common with the agent");
    }
    if (err != TAM_OK) {
        return err == TAM_EDENIED ? TAM_OK : err;
    }
    err = tam_sess_check_answer(&j->sess, &m, wk_job_arrival_ms(j), &why);
    if (err == TAM_ETEEP) {
        j->reason = why;
        return error_update(j, alg, TAM_TEEP_ERR_PERMANENT_ERROR, "missing requested data item",
                            "missing-item");
    }
    if (err != TAM_OK) {
        wk_job_drop(j, why);
        return TAM_OK;
    }
    if (m.type == TAM_TEEP_ERROR) {
        return on_error(j, &m, alg);
    }
    if (!reports_ok(j, &m)) {
        j->reason = "SUIT report nonce does not match the token";
        return error_update(j, alg, TAM_TEEP_ERR_PERMANENT_ERROR, "SUIT report nonce mismatch",
                            "report-nonce");
    }
    struct wk_catalog *cat = NULL;
    err = wk_catalog_get(j, &cat);
    if (err != TAM_OK) {
        return err;
    }
    if ((j->sess.data_items & TAM_TEEP_DATA_ATTESTATION) == 0) {
        return plan_update(j, &m, alg, cat, NULL);
    }
    err = at.checked ? TAM_OK : wk_attest_verify(j, &m, &at, &why);
    if (err == TAM_OK) {
        err = wk_attest_check(j, &at, &cat->policy.attestation, &why);
    }
    return err == TAM_OK ? plan_update(j, &m, alg, cat, &at.c) : reject(j, alg, why);
}
