/*
 * Answering a QueryRequest (TP 4.3, 7.2): choose the cipher suite, then build
 * the QueryResponse with the items the TAM asked for -- EAT Evidence, tc-list,
 * SUIT reports -- plus what the device's scenario wants (requested-tc-list,
 * unneeded-manifest-list).
 */
#include <string.h>

#include "core.h"
#include "tam/cbor.h"
#include "tam/err.h"

/* The Agent itself, always installed: ["tam-agent", "agent"]. */
static const uint8_t builtin_id[] = {0x82, 0x49, 't',  'a', 'm', '-', 'a', 'g', 'e',
                                     'n',  't',  0x45, 'a', 'g', 'e', 'n', 't'};
static const char builtin_uri[] = "urn:tamgate:tam-agent:0.1";
#define CF_CBOR 60    /* CoAP Content-Format application/cbor */
#define PEN_DOC 32473 /* the documentation PEN (RFC 5612) */

static void builtin_digest(uint8_t out[TAM_SHA256_LEN])
{
    tam_sha256(builtin_uri, sizeof(builtin_uri) - 1, out);
}

/* An encoded SUIT_Digest [-16, h'<32 bytes>'] in the arena. */
static bool suit_digest(struct tam_arena *a, const uint8_t d[TAM_SHA256_LEN], struct tam_bytes *out)
{
    uint8_t *p = tam_arena_alloc(a, 4 + TAM_SHA256_LEN);
    if (p == NULL) {
        return false;
    }
    p[0] = 0x82; /* array(2) */
    p[1] = 0x2f; /* -16 (SHA-256) */
    p[2] = 0x58; /* bstr, one-byte length */
    p[3] = TAM_SHA256_LEN;
    memcpy(p + 4, d, TAM_SHA256_LEN);
    *out = tam_bytes_of(p, 4 + TAM_SHA256_LEN);
    return true;
}

int ag_encode_report(const uint8_t digest[TAM_SHA256_LEN], struct tam_bytes ref_uri,
                     struct tam_bytes nonce, bool ok, uint64_t reason, int64_t section,
                     struct tam_arena *arena, struct tam_bytes *out)
{
    struct tam_suit_report r;
    memset(&r, 0, sizeof(r));
    r.reference_uri = ref_uri;
    r.manifest_digest.alg = TAM_ALG_SHA256;
    r.manifest_digest.bytes = tam_bytes_of(digest, TAM_SHA256_LEN);
    r.has_nonce = nonce.len > 0;
    r.nonce = nonce;
    r.success = ok;
    if (!ok) {
        r.result_code = (int64_t)reason;
        r.result_reason = reason;
        r.result_record.section = section;
    }
    struct tam_buf b;
    tam_buf_init(&b, 64u << 10);
    int err = tam_suit_report_encode(&r, &b);
    uint8_t *p = err == TAM_OK ? tam_arena_alloc(arena, b.len) : NULL;
    if (err == TAM_OK && p == NULL) {
        err = TAM_ENOMEM;
    }
    if (err == TAM_OK) {
        memcpy(p, b.data, b.len);
        *out = tam_bytes_of(p, b.len);
    }
    tam_buf_finish(&b);
    return err;
}

/* ---- EAT Evidence ---- */

/* The manifests claim body: SUIT_Reference [uri, SUIT_Digest] describing the agent. */
static bool agent_reference(struct tam_arena *a, struct tam_bytes *out)
{
    uint8_t d[TAM_SHA256_LEN];
    builtin_digest(d);
    struct tam_buf b;
    tam_buf_init(&b, 256);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &b);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_str(&w, builtin_uri);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_int(&w, TAM_ALG_SHA256);
    tam_cbor_put_bstr(&w, d, sizeof(d));
    uint8_t *p = tam_cbor_writer_finish(&w) == TAM_OK ? tam_arena_alloc(a, b.len) : NULL;
    if (p != NULL) {
        memcpy(p, b.data, b.len);
        *out = tam_bytes_of(p, b.len);
    }
    tam_buf_finish(&b);
    return p != NULL;
}

/* eat_nonce: the challenge (background check), else the token (TEEP-DIGEST 1.8). */
static struct tam_bytes pick_nonce(const struct tam_teep_msg *q)
{
    if (q->has_challenge) {
        return q->challenge;
    }
    if (q->has_token) {
        return q->token;
    }
    return tam_bytes_of(NULL, 0);
}

static void identity_claims(const struct tam_agent_device *dev, struct tam_eat_claims *c)
{
    const struct tam_agent_profile *p = dev->profile;
    c->ueid = tam_bytes_of(dev->ueid, dev->ueid_len);
    c->oemid = p->oemid;
    if (!c->oemid.is_pen && c->oemid.id.len == 0) {
        c->oemid.is_pen = true;
        c->oemid.pen = PEN_DOC;
    }
    static const char model[] = "tam-agent-sim";
    c->hwmodel = p->hwmodel.len > 0 ? p->hwmodel : tam_bytes_of(model, sizeof(model) - 1);
    const char *hwv = p->hwversion != NULL ? p->hwversion : "1.0";
    c->hwversion = tam_bytes_of(hwv, strlen(hwv));
    c->present |= TAM_EAT_HAS_UEID | TAM_EAT_HAS_OEMID | TAM_EAT_HAS_HWMODEL |
                  TAM_EAT_HAS_HWVERSION | TAM_EAT_HAS_PROFILE | TAM_EAT_HAS_IAT;
    if (p->dbgstat >= 0 && p->dbgstat <= TAM_EAT_DBG_DISABLED_FULLY_PERMANENTLY) {
        c->dbgstat = (uint8_t)p->dbgstat;
        c->present |= TAM_EAT_HAS_DBGSTAT;
    }
    c->profile = tam_bytes_of(TAM_EAT_PROFILE_TEEP, strlen(TAM_EAT_PROFILE_TEEP));
}

static int build_evidence(struct tam_agent_step *s, int64_t now, struct tam_buf *eat)
{
    struct tam_agent_device *dev = s->dev;
    struct tam_eat_claims c;
    memset(&c, 0, sizeof(c));
    identity_claims(dev, &c);
    c.iat = now;
    struct tam_bytes nonce = pick_nonce(&s->msg);
    uint8_t bad[TAM_EAT_NONCE_MAX];
    if (dev->faults & TAM_AGENT_FAULT_BAD_NONCE) {
        size_t n = nonce.len >= TAM_EAT_NONCE_MIN ? nonce.len : 16;
        memset(bad, 0x5a, sizeof(bad));
        if (nonce.len >= TAM_EAT_NONCE_MIN) {
            memcpy(bad, nonce.ptr, n);
        }
        bad[0] ^= 0xff;
        nonce = tam_bytes_of(bad, n);
    }
    if (nonce.len > 0) {
        c.nonce = nonce;
        c.present |= TAM_EAT_HAS_NONCE;
    }
    struct tam_buf key;
    tam_buf_init(&key, 256);
    int err = tam_key_cose_public(dev->key, &key);
    c.cnf_form = TAM_EAT_CNF_COSE_KEY;
    c.cnf_key = tam_bytes_of(key.data, key.len);
    c.present |= TAM_EAT_HAS_CNF | TAM_EAT_HAS_MANIFESTS;
    c.n_manifests = 1;
    c.manifests[0].content_format = CF_CBOR;
    c.manifests[0].body_is_cbor = true;
    if (err == TAM_OK && !agent_reference(&s->arena, &c.manifests[0].body)) {
        err = TAM_ENOMEM;
    }
    const struct tam_key *signer =
        (dev->faults & TAM_AGENT_FAULT_UNTRUSTED_ATTESTER) ? dev->key : dev->profile->attester;
    err = err == TAM_OK ? tam_eat_build(&c, signer, 0, eat) : err;
    tam_buf_finish(&key);
    return err;
}

/* ---- tc-list, requested-tc-list, unneeded-manifest-list ---- */

static int tc_entry(struct tam_agent_step *s, const uint8_t *cid, size_t cid_len,
                    const uint8_t *image_digest, bool has_seq, uint64_t seq, struct tam_teep_tc *tc)
{
    memset(tc, 0, sizeof(*tc));
    if (ag_id_to_teep(cid, cid_len, &tc->id) != TAM_OK) {
        return TAM_EINVAL;
    }
    if (s->dev->profile->numbering == TAM_TEEP_DRAFT12) {
        tc->has_seq = has_seq; /* draft-12 tc-info carries the sequence, no digest */
        tc->seq = seq;
        return TAM_OK;
    }
    if (image_digest != NULL) {
        if (!suit_digest(&s->arena, image_digest, &tc->image_digest)) {
            return TAM_ENOMEM;
        }
        tc->has_image_digest = true;
    }
    return TAM_OK;
}

static int add_tc_list(struct tam_agent_step *s, struct tam_teep_msg *r)
{
    struct tam_agent_device *dev = s->dev;
    r->tc_list = tam_arena_array(&s->arena, dev->ntcs + 1, sizeof(*r->tc_list));
    if (r->tc_list == NULL) {
        return TAM_ENOMEM;
    }
    uint8_t d[TAM_SHA256_LEN];
    builtin_digest(d);
    int err = tc_entry(s, builtin_id, sizeof(builtin_id), d, true, 1, &r->tc_list[0]);
    for (size_t i = 0; err == TAM_OK && i < dev->ntcs; i++) {
        const struct ag_tc *tc = &dev->tcs[i];
        err = tc_entry(s, tc->cid, tc->cid_len, tc->has_image_digest ? tc->image_digest : NULL,
                       true, tc->sequence, &r->tc_list[i + 1]);
    }
    r->has_tc_list = true;
    r->n_tc_list = (uint32_t)dev->ntcs + 1;
    return err;
}

static bool request_satisfied(struct tam_agent_device *dev, const struct ag_want *w)
{
    const struct ag_tc *tc = ag_tc_by_cid(dev, w->id, w->id_len);
    return tc != NULL && (!w->has_seq || tc->sequence >= w->seq);
}

static int add_requests(struct tam_agent_step *s, struct tam_teep_msg *r)
{
    struct tam_agent_device *dev = s->dev;
    size_t n = 0;
    if (dev->nreq > 0) {
        r->requested_tc_list = tam_arena_array(&s->arena, dev->nreq, sizeof(*r->requested_tc_list));
        if (r->requested_tc_list == NULL) {
            return TAM_ENOMEM;
        }
    }
    for (size_t i = 0; i < dev->nreq; i++) {
        const struct ag_want *w = &dev->req[i];
        if (request_satisfied(dev, w)) {
            continue; /* RequestTA of an installed TC does nothing (TP 7.2) */
        }
        struct tam_teep_req_tc *e = &r->requested_tc_list[n++];
        if (ag_id_to_teep(w->id, w->id_len, &e->id) != TAM_OK) {
            return TAM_EINVAL;
        }
        e->has_seq = w->has_seq;
        e->seq = w->seq;
        e->has_have_binary = w->have_binary;
        e->have_binary = w->have_binary;
    }
    r->has_requested_tc_list = n > 0;
    r->n_requested_tc_list = (uint32_t)n;
    return TAM_OK;
}

static int add_unneeded(struct tam_agent_step *s, struct tam_teep_msg *r)
{
    struct tam_agent_device *dev = s->dev;
    size_t n = 0;
    if (dev->nunreq > 0) {
        r->unneeded = tam_arena_array(&s->arena, dev->nunreq, sizeof(*r->unneeded));
        if (r->unneeded == NULL) {
            return TAM_ENOMEM;
        }
    }
    for (size_t i = 0; i < dev->nunreq; i++) {
        const struct ag_want *w = &dev->unreq[i];
        if (ag_tc_by_mcid(dev, w->id, w->id_len) == NULL) {
            continue; /* nothing installed under that manifest: nothing to unrequest */
        }
        if (ag_id_to_teep(w->id, w->id_len, &r->unneeded[n++]) != TAM_OK) {
            return TAM_EINVAL;
        }
    }
    r->has_unneeded = n > 0;
    r->n_unneeded = (uint32_t)n;
    return TAM_OK;
}

int ag_installed_reports(struct tam_agent_device *dev, struct tam_bytes nonce,
                         struct tam_arena *arena, struct tam_teep_msg *m)
{
    if (dev->ntcs == 0) {
        return TAM_OK; /* an empty list cannot be sent */
    }
    m->suit_reports = tam_arena_array(arena, dev->ntcs, sizeof(*m->suit_reports));
    if (m->suit_reports == NULL) {
        return TAM_ENOMEM;
    }
    int err = TAM_OK;
    for (size_t i = 0; i < dev->ntcs && err == TAM_OK; i++) {
        const struct ag_tc *tc = &dev->tcs[i];
        const char *u = tc->reference_uri != NULL ? tc->reference_uri : "";
        struct tam_bytes uri = tam_bytes_of(u, strlen(u));
        err = ag_encode_report(tc->manifest_digest, uri, nonce, true, 0, 0, arena,
                               &m->suit_reports[i]);
    }
    m->has_suit_reports = true;
    m->n_suit_reports = (uint32_t)dev->ntcs;
    return err;
}

/* ---- negotiation ---- */

static bool has_u32(const uint32_t *v, uint32_t n, uint32_t x)
{
    for (uint32_t i = 0; i < n; i++) {
        if (v[i] == x) {
            return true;
        }
    }
    return false;
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

/* TAM_OK and *alg, or the Error code to send. */
static uint32_t negotiate(const struct tam_agent_step *s, int64_t *alg, const char **why)
{
    const struct tam_teep_msg *q = &s->msg;
    int64_t mine[2];
    if (tam_key_type(s->dev->key) == TAM_KEY_P256) {
        mine[0] = TAM_ALG_ESP256;
        mine[1] = TAM_ALG_ES256;
    } else {
        mine[0] = TAM_ALG_ED25519;
        mine[1] = TAM_ALG_EDDSA;
    }
    if (!q->has_supported_suites ||
        tam_teep_suites_pick_sign1(&q->supported_suites, mine, 2, alg) != TAM_OK) {
        *why = "no offered cipher suite fits the device key";
        return TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES;
    }
    if (q->has_versions && !has_u32(q->versions, q->n_versions, 0)) {
        *why = "only version 0 is supported";
        return TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION;
    }
    if (q->has_freshness && !has_u64(q->freshness, q->n_freshness, TAM_TEEP_FRESHNESS_NONCE)) {
        *why = "only the nonce freshness mechanism is supported";
        return TAM_TEEP_ERR_UNSUPPORTED_FRESHNESS_MECHANISMS;
    }
    if ((q->data_item_requested & TAM_TEEP_DATA_ATTESTATION) && q->has_challenge &&
        q->challenge.len > TAM_EAT_NONCE_MAX) {
        *why = "challenge longer than an eat_nonce can be";
        return TAM_TEEP_ERR_PERMANENT_ERROR;
    }
    return 0;
}

static int add_evidence(struct tam_agent_step *s, int64_t now, struct tam_teep_msg *r,
                        struct tam_buf *eat, struct tam_agent_outcome *o)
{
    const struct tam_agent_device *dev = s->dev;
    if (!(s->msg.data_item_requested & TAM_TEEP_DATA_ATTESTATION) ||
        (dev->faults & TAM_AGENT_FAULT_NO_EVIDENCE) || dev->profile->attester == NULL) {
        return TAM_OK;
    }
    int err = build_evidence(s, now, eat);
    if (err != TAM_OK) {
        return err;
    }
    r->has_attestation_payload = true;
    r->attestation_payload = tam_bytes_of(eat->data, eat->len);
    const char *fmt = dev->profile->eat_format;
    if (fmt != NULL && *fmt != '\0') {
        r->has_attestation_payload_format = true;
        r->attestation_payload_format = tam_bytes_of(fmt, strlen(fmt));
    }
    o->attested = true;
    return TAM_OK;
}

static int build_response(struct tam_agent_step *s, int64_t alg, int64_t now,
                          struct tam_teep_msg *r, struct tam_buf *eat, struct tam_agent_outcome *o)
{
    const struct tam_teep_msg *q = &s->msg;
    tam_teep_msg_init(r, TAM_TEEP_QUERY_RESPONSE);
    if (q->has_token) {
        r->has_token = true;
        r->token = q->token;
    }
    if (q->has_versions) {
        r->has_selected_version = true; /* version 0 */
    }
    if (s->dev->profile->numbering == TAM_TEEP_DRAFT12) {
        r->has_selected_suite = true;
        tam_teep_suite_single(&r->selected_suite, TAM_TEEP_COSE_SIGN1, alg);
    }
    int err = add_evidence(s, now, r, eat, o);
    if (err == TAM_OK && (q->data_item_requested & TAM_TEEP_DATA_TRUSTED_COMPONENTS)) {
        err = add_tc_list(s, r);
    }
    if (err == TAM_OK && (q->data_item_requested & TAM_TEEP_DATA_SUIT_REPORTS)) {
        struct tam_bytes nonce = q->has_token ? q->token : tam_bytes_of(NULL, 0);
        err = ag_installed_reports(s->dev, nonce, &s->arena, r);
    }
    err = err == TAM_OK ? add_requests(s, r) : err;
    return err == TAM_OK ? add_unneeded(s, r) : err;
}

int ag_answer_query(struct tam_agent_step *s, int64_t now, struct tam_buf *reply,
                    struct tam_agent_outcome *o)
{
    int64_t alg = 0;
    const char *why = NULL;
    uint32_t code = negotiate(s, &alg, &why);
    if (code != 0) {
        o->fail = TAM_AGENT_UNSUPPORTED;
        o->why = why;
        int ealg = alg != 0 ? (int)alg : ag_reply_alg(s->dev, s->tam_alg);
        return ag_send_error(s, code, why, ealg, reply, o);
    }
    struct tam_teep_msg r;
    struct tam_buf eat;
    tam_buf_init(&eat, TAM_EAT_MAX_SIZE);
    int err = build_response(s, alg, now, &r, &eat, o);
    err = err == TAM_OK ? ag_sign_reply(s->dev, (int)alg, &r, reply) : err;
    if (err == TAM_OK) {
        o->sent = TAM_TEEP_QUERY_RESPONSE;
        o->alg = (int)alg;
    }
    tam_buf_finish(&eat);
    return err;
}
