/*
 * Receiving a TAM message: COSE verification against the trusted TAM keys, TEEP
 * decoding, dispatch to the QueryRequest and Update handlers, and the signing of
 * every answer (COSE_Sign1 with the device key, kid in the unprotected header).
 */
#include <string.h>

#include "core.h"
#include "tam/alloc.h"
#include "tam/cose.h"
#include "tam/err.h"

#define ARENA_CHUNK (16u << 10)
#define ARENA_MAX   (8u << 20)

const char *tam_agent_fail_name(enum tam_agent_fail f)
{
    static const char *const names[] = {
        "ok",          "bad_cose", "bad_signature", "decode",   "unexpected",
        "unsupported", "manifest", "fetch",         "internal",
    };
    return (size_t)f < TAM_ARRAY_LEN(names) ? names[f] : "?";
}

static void set_fail(struct tam_agent_step *s, enum tam_agent_fail f, const char *why)
{
    if (s->fail == TAM_AGENT_OK) {
        s->fail = f;
        s->why = why;
    }
}

/* ---- answers ---- */

int ag_reply_alg(const struct tam_agent_device *dev, int peer_alg)
{
    if (peer_alg != 0 && tam_key_alg_ok(dev->key, peer_alg)) {
        return peer_alg; /* TP 8.1: the selected suite is used in both directions */
    }
    bool legacy = dev->profile->numbering == TAM_TEEP_DRAFT12;
    if (tam_key_type(dev->key) == TAM_KEY_P256) {
        return legacy ? TAM_ALG_ES256 : TAM_ALG_ESP256;
    }
    return legacy ? TAM_ALG_EDDSA : TAM_ALG_ED25519;
}

int ag_sign_reply(struct tam_agent_device *dev, int alg, const struct tam_teep_msg *m,
                  struct tam_buf *reply)
{
    struct tam_buf payload;
    tam_buf_init(&payload, TAM_AGENT_MAX_MSG);
    int err = tam_teep_encode(m, dev->profile->numbering, &payload);
    size_t mark = reply->len;
    if (err == TAM_OK) {
        struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
        struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
        err = tam_cose_sign1(reply, dev->key, alg, &p, &opts);
    }
    if (err == TAM_OK && (dev->faults & TAM_AGENT_FAULT_BAD_SIGNATURE) && reply->len > mark) {
        reply->data[reply->len - 1] ^= 0x01; /* the signature is the last item */
    }
    tam_buf_finish(&payload);
    return err;
}

/* Adds the lists an Error must carry for some codes (TP 4.6). */
static int error_extras(struct tam_agent_step *s, uint32_t code, int alg, struct tam_teep_msg *m)
{
    if (code == TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES) {
        m->has_supported_suites = true;
        m->supported_suites.n = 1;
        tam_teep_suite_single(&m->supported_suites.v[0], TAM_TEEP_COSE_SIGN1, alg);
    } else if (code == TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION) {
        m->versions = tam_arena_alloc(&s->arena, sizeof(uint32_t));
        if (m->versions == NULL) {
            return TAM_ENOMEM;
        }
        m->has_versions = true;
        m->n_versions = 1; /* version 0 = this specification */
    } else if (code == TAM_TEEP_ERR_UNSUPPORTED_FRESHNESS_MECHANISMS) {
        m->freshness = tam_arena_alloc(&s->arena, sizeof(uint64_t));
        if (m->freshness == NULL) {
            return TAM_ENOMEM;
        }
        m->has_freshness = true;
        m->n_freshness = 1; /* FRESHNESS_NONCE */
    }
    return TAM_OK;
}

int ag_send_error(struct tam_agent_step *s, uint32_t code, const char *text, int alg,
                  struct tam_buf *reply, struct tam_agent_outcome *o)
{
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, TAM_TEEP_ERROR);
    if (s->decoded && s->msg.has_token) {
        m.has_token = true;
        m.token = s->msg.token;
    }
    if (text != NULL && *text != '\0') {
        size_t n = strlen(text);
        m.has_err_msg = true;
        m.err_msg = tam_bytes_of(text, n > TAM_TEEP_MSG_MAX ? TAM_TEEP_MSG_MAX : n);
    }
    m.has_err_code = true;
    m.err_code = code;
    int err = error_extras(s, code, alg, &m);
    err = err == TAM_OK ? ag_sign_reply(s->dev, alg, &m, reply) : err;
    if (err == TAM_OK) {
        o->sent = TAM_TEEP_ERROR;
        o->err_code = code;
        o->alg = alg;
    }
    return err;
}

/* ---- step 1 ---- */

static bool kid_fits(const struct tam_cose_signer *sg, const struct tam_key *k)
{
    return sg->kid.len == 0 ||
           (sg->kid.len == TAM_KID_LEN && memcmp(sg->kid.ptr, tam_key_kid(k), TAM_KID_LEN) == 0);
}

static bool verify_tam(struct tam_agent_step *s, const struct tam_cose_msg *cm)
{
    const struct tam_agent_profile *p = s->dev->profile;
    if (p->skip_tam_verify) {
        s->tam_alg = cm->signers[0].alg;
        return true;
    }
    /*
     * A COSE_Sign carries one signature per TAM algorithm: try first the ones in the
     * device key's own algorithm (what a single-algorithm Agent would verify, and the
     * cheaper one for an Ed25519 fleet), then the others.
     */
    for (unsigned n = 0; n < 2 * cm->nsigners; n++) {
        const struct tam_cose_signer *sg = &cm->signers[n % cm->nsigners];
        bool mine = tam_key_alg_ok(s->dev->key, sg->alg);
        if (mine != (n < cm->nsigners)) {
            continue;
        }
        unsigned i = n % cm->nsigners;
        for (size_t k = 0; k < p->n_tam_keys; k++) {
            const struct tam_key *key = p->tam_keys[k];
            if (!tam_key_alg_ok(key, sg->alg) || !kid_fits(sg, key)) {
                continue;
            }
            if (tam_cose_verify(cm, i, key, NULL, NULL) == TAM_OK) {
                s->tam_alg = sg->alg;
                return true;
            }
        }
    }
    return false;
}

static void decode_payload(struct tam_agent_step *s, const struct tam_cose_msg *cm)
{
    const char *why = NULL;
    int err = tam_teep_decode(cm->payload.ptr, cm->payload.len, s->dev->profile->numbering,
                              &s->arena, &s->msg, &why);
    s->decoded = err == TAM_OK;
    if (!s->decoded) {
        set_fail(s, TAM_AGENT_DECODE, why != NULL ? why : "not a TEEP message");
    }
}

static void check_type(struct tam_agent_step *s)
{
    enum tam_teep_type t = s->msg.type;
    if (t != TAM_TEEP_QUERY_REQUEST && t != TAM_TEEP_UPDATE) {
        set_fail(s, TAM_AGENT_UNEXPECTED, "an Agent accepts only QueryRequest and Update");
    } else if (s->expect != 0 && t != s->expect) {
        set_fail(s, TAM_AGENT_UNEXPECTED, "not the expected message type");
    }
}

static int step_new(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                    struct tam_agent_step **out)
{
    if (len > TAM_AGENT_MAX_MSG || (msg == NULL && len > 0)) {
        return TAM_ETOOBIG;
    }
    struct tam_agent_step *s = tam_calloc(1, sizeof(*s));
    if (s == NULL) {
        return TAM_ENOMEM;
    }
    s->input = tam_malloc(len > 0 ? len : 1);
    if (s->input == NULL) {
        tam_free(s);
        return TAM_ENOMEM;
    }
    if (len > 0) {
        memcpy(s->input, msg, len);
    }
    s->input_len = len;
    s->dev = dev;
    tam_arena_init(&s->arena, ARENA_CHUNK, ARENA_MAX);
    *out = s;
    return TAM_OK;
}

static int handle_typed(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                        enum tam_teep_type expect, struct tam_agent_step **out)
{
    struct tam_agent_step *s;
    int err = step_new(dev, msg, len, &s);
    if (err != TAM_OK) {
        return err;
    }
    s->expect = expect;
    struct tam_cose_msg cm;
    const char *why = NULL;
    if (tam_cose_parse(s->input, s->input_len, &cm, &why) != TAM_OK || cm.detached) {
        set_fail(s, TAM_AGENT_BAD_COSE, why != NULL ? why : "detached payload");
    } else {
        s->multi = cm.kind == TAM_COSE_SIGN;
        if (!verify_tam(s, &cm)) {
            set_fail(s, TAM_AGENT_BAD_SIGNATURE, "no trusted TAM key verifies the message");
        }
        /* Decoded even when unauthenticated, only to echo the token in our Error. */
        decode_payload(s, &cm);
    }
    if (s->fail == TAM_AGENT_OK) {
        check_type(s);
    }
    if (s->fail == TAM_AGENT_OK && s->msg.type == TAM_TEEP_UPDATE) {
        err = ag_prepare_update(s);
    }
    if (err != TAM_OK) {
        tam_agent_step_destroy(s);
        return err;
    }
    *out = s;
    return TAM_OK;
}

int tam_agent_handle(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                     struct tam_agent_step **out)
{
    *out = NULL;
    return handle_typed(dev, msg, len, 0, out);
}

/* ---- fetches ---- */

size_t tam_agent_step_fetch_count(const struct tam_agent_step *s)
{
    return s->nfetch;
}

const char *tam_agent_step_fetch_uri(const struct tam_agent_step *s, size_t i)
{
    return i < s->nfetch ? s->fetch[i].uri : NULL;
}

int tam_agent_step_supply(struct tam_agent_step *s, size_t i, const uint8_t *data, size_t len)
{
    if (i >= s->nfetch || s->fetch[i].supplied) {
        return TAM_EINVAL;
    }
    if (len > TAM_AGENT_MAX_PAYLOAD) {
        s->fetch[i].failed = true;
        return TAM_ETOOBIG;
    }
    uint8_t *copy = tam_malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        return TAM_ENOMEM;
    }
    if (len > 0) {
        memcpy(copy, data, len);
    }
    s->fetch[i].data = copy;
    s->fetch[i].len = len;
    s->fetch[i].supplied = true;
    s->fetch[i].failed = false;
    return TAM_OK;
}

void tam_agent_step_fetch_failed(struct tam_agent_step *s, size_t i)
{
    if (i < s->nfetch && !s->fetch[i].supplied) {
        s->fetch[i].failed = true;
    }
}

/* ---- step 2 ---- */

static void outcome_init(const struct tam_agent_step *s, struct tam_agent_outcome *o)
{
    memset(o, 0, sizeof(*o));
    o->sign_multi = s->multi;
    if (!s->decoded) {
        return;
    }
    o->received = s->msg.type;
    if (s->msg.has_token && s->msg.token.len <= sizeof(o->token)) {
        o->token_len = s->msg.token.len;
        memcpy(o->token, s->msg.token.ptr, s->msg.token.len);
    }
    if (s->msg.type == TAM_TEEP_QUERY_REQUEST) {
        o->data_items = s->msg.data_item_requested;
        o->challenge_len = s->msg.has_challenge ? s->msg.challenge.len : 0;
    }
}

static int answer_invalid(struct tam_agent_step *s, struct tam_buf *reply,
                          struct tam_agent_outcome *o)
{
    if (s->dev->profile->drop_invalid) {
        return TAM_OK;
    }
    /* TP 1.5 / 7.2: the Agent answers an invalid message with an Error. */
    int alg = ag_reply_alg(s->dev, s->fail == TAM_AGENT_BAD_SIGNATURE ? 0 : s->tam_alg);
    return ag_send_error(s, TAM_TEEP_ERR_PERMANENT_ERROR, s->why, alg, reply, o);
}

int tam_agent_step_finish(struct tam_agent_step *s, int64_t now, struct tam_buf *reply,
                          struct tam_agent_outcome *o)
{
    outcome_init(s, o);
    if (s->finished) {
        o->fail = TAM_AGENT_INTERNAL;
        o->why = "step already finished";
        return TAM_EINVAL;
    }
    s->finished = true;
    int err;
    if (s->fail != TAM_AGENT_OK) {
        err = answer_invalid(s, reply, o);
    } else if (s->msg.type == TAM_TEEP_QUERY_REQUEST) {
        err = ag_answer_query(s, now, reply, o);
    } else {
        err = ag_apply_update(s, reply, o);
    }
    if (o->fail == TAM_AGENT_OK && s->fail != TAM_AGENT_OK) {
        o->fail = s->fail;
        o->why = s->why;
    }
    if (err != TAM_OK) {
        o->fail = TAM_AGENT_INTERNAL;
        o->why = tam_strerror(err);
        o->sent = 0;
    }
    return err;
}

void tam_agent_step_destroy(struct tam_agent_step *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nfetch; i++) {
        tam_free(s->fetch[i].uri);
        tam_free(s->fetch[i].data);
    }
    tam_free(s->jobs);
    tam_arena_finish(&s->arena);
    tam_free(s->input);
    tam_free(s);
}

/* ---- one-call forms ---- */

static int run_sync(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                    enum tam_teep_type expect, int64_t now, tam_agent_fetch_fn fetch, void *arg,
                    struct tam_buf *reply, struct tam_agent_outcome *o)
{
    struct tam_agent_step *s = NULL;
    memset(o, 0, sizeof(*o));
    int err = handle_typed(dev, msg, len, expect, &s);
    if (err != TAM_OK) {
        o->fail = TAM_AGENT_INTERNAL;
        o->why = tam_strerror(err);
        return err;
    }
    for (size_t i = 0; i < s->nfetch; i++) {
        struct tam_buf got;
        tam_buf_init(&got, TAM_AGENT_MAX_PAYLOAD);
        if (fetch != NULL && fetch(arg, s->fetch[i].uri, &got) == TAM_OK &&
            tam_agent_step_supply(s, i, got.data, got.len) == TAM_OK) {
            tam_buf_finish(&got);
            continue;
        }
        tam_agent_step_fetch_failed(s, i);
        tam_buf_finish(&got);
    }
    err = tam_agent_step_finish(s, now, reply, o);
    tam_agent_step_destroy(s);
    return err;
}

int tam_agent_on_message(struct tam_agent_device *dev, const uint8_t *msg, size_t len, int64_t now,
                         tam_agent_fetch_fn fetch, void *arg, struct tam_buf *reply,
                         struct tam_agent_outcome *outcome)
{
    return run_sync(dev, msg, len, 0, now, fetch, arg, reply, outcome);
}

int tam_agent_on_query_request(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                               int64_t now, struct tam_buf *reply,
                               struct tam_agent_outcome *outcome)
{
    return run_sync(dev, msg, len, TAM_TEEP_QUERY_REQUEST, now, NULL, NULL, reply, outcome);
}

int tam_agent_on_update(struct tam_agent_device *dev, const uint8_t *msg, size_t len, int64_t now,
                        tam_agent_fetch_fn fetch, void *arg, struct tam_buf *reply,
                        struct tam_agent_outcome *outcome)
{
    return run_sync(dev, msg, len, TAM_TEEP_UPDATE, now, fetch, arg, reply, outcome);
}

int tam_agent_build_error(struct tam_agent_device *dev, struct tam_bytes token, uint32_t err_code,
                          const char *err_msg, int alg, struct tam_buf *reply)
{
    if (token.len > TAM_TEEP_TOKEN_MAX) {
        return TAM_EINVAL;
    }
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, TAM_TEEP_ERROR);
    if (token.len > 0) {
        m.has_token = true;
        m.token = token;
    }
    if (err_msg != NULL && *err_msg != '\0') {
        size_t n = strlen(err_msg);
        m.has_err_msg = true;
        m.err_msg = tam_bytes_of(err_msg, n > TAM_TEEP_MSG_MAX ? TAM_TEEP_MSG_MAX : n);
    }
    m.has_err_code = true;
    m.err_code = err_code;
    return ag_sign_reply(dev, alg != 0 ? alg : ag_reply_alg(dev, 0), &m, reply);
}
