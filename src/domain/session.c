#include "tam/session.h"

#include <string.h>

#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/err.h"

/* Session record map keys (our own format, stored in Redis only). */
enum {
    K_KIND = 1,
    K_TENANT = 2,
    K_NUMBERING = 3,
    K_TOKEN = 4,
    K_CREATED = 5,
    K_EXPIRES = 6,
    K_DATA_ITEMS = 7,
    K_CHALLENGE = 8,
    K_DEVICE = 9,
    K_ALG = 10,
    K_MANIFESTS = 11,
};

int tam_sess_encode(const struct tam_sess *s, struct tam_buf *out)
{
    unsigned pairs =
        7 + (s->challenge_len > 0) + s->has_device + (s->alg != 0) + (s->n_manifests > 0);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_map(&w, pairs);
    tam_cbor_put_uint(&w, K_KIND);
    tam_cbor_put_uint(&w, s->kind);
    tam_cbor_put_uint(&w, K_TENANT);
    tam_cbor_put_str(&w, s->tenant);
    tam_cbor_put_uint(&w, K_NUMBERING);
    tam_cbor_put_uint(&w, s->numbering);
    tam_cbor_put_uint(&w, K_TOKEN);
    tam_cbor_put_bstr(&w, s->token, TAM_TOKEN_LEN);
    tam_cbor_put_uint(&w, K_CREATED);
    tam_cbor_put_uint(&w, s->created_ms);
    tam_cbor_put_uint(&w, K_EXPIRES);
    tam_cbor_put_uint(&w, s->expires_ms);
    tam_cbor_put_uint(&w, K_DATA_ITEMS);
    tam_cbor_put_uint(&w, s->data_items);
    if (s->challenge_len > 0) {
        tam_cbor_put_uint(&w, K_CHALLENGE);
        tam_cbor_put_bstr(&w, s->challenge, s->challenge_len);
    }
    if (s->has_device) {
        tam_cbor_put_uint(&w, K_DEVICE);
        tam_cbor_put_bstr(&w, s->device_kid, TAM_KID_LEN);
    }
    if (s->alg != 0) {
        tam_cbor_put_uint(&w, K_ALG);
        tam_cbor_put_int(&w, s->alg);
    }
    if (s->n_manifests > 0) {
        tam_cbor_put_uint(&w, K_MANIFESTS);
        tam_cbor_open_array(&w, s->n_manifests);
        for (uint32_t i = 0; i < s->n_manifests; i++) {
            tam_cbor_put_bstr(&w, s->manifest_digest[i], TAM_SHA256_LEN);
        }
    }
    return tam_cbor_writer_finish(&w);
}

static bool get_fixed(const struct tam_cbor_item *map, int64_t key, uint8_t *dst, size_t len)
{
    struct tam_bytes b;
    if (!tam_cbor_get_bytes(tam_cbor_map_get_int(map, key), &b) || b.len != len) {
        return false;
    }
    memcpy(dst, b.ptr, len);
    return true;
}

static int decode_optional(const struct tam_cbor_item *m, struct tam_sess *s, const char **why)
{
    struct tam_bytes b;
    const struct tam_cbor_item *it = tam_cbor_map_get_int(m, K_CHALLENGE);
    if (it != NULL) {
        if (!tam_cbor_get_bytes(it, &b) || b.len == 0 || b.len > TAM_CHALLENGE_MAX) {
            return tam_fail(why, "session: bad challenge", TAM_EINVAL);
        }
        memcpy(s->challenge, b.ptr, b.len);
        s->challenge_len = (uint32_t)b.len;
    }
    if (tam_cbor_map_get_int(m, K_DEVICE) != NULL) {
        if (!get_fixed(m, K_DEVICE, s->device_kid, TAM_KID_LEN)) {
            return tam_fail(why, "session: bad device kid", TAM_EINVAL);
        }
        s->has_device = true;
    }
    int64_t alg = 0;
    it = tam_cbor_map_get_int(m, K_ALG);
    if (it != NULL && (!tam_cbor_get_int(it, &alg) || alg < -65536 || alg > 65536)) {
        return tam_fail(why, "session: bad alg", TAM_EINVAL);
    }
    s->alg = (int)alg;
    it = tam_cbor_map_get_int(m, K_MANIFESTS);
    if (it == NULL) {
        return TAM_OK;
    }
    if (it->type != TAM_CBOR_ARRAY || it->count > TAM_SESS_MAX_MANIFESTS) {
        return tam_fail(why, "session: bad manifest list", TAM_EINVAL);
    }
    const struct tam_cbor_item *d = tam_cbor_first(it);
    for (uint32_t i = 0; i < it->count; i++, d = tam_cbor_next(d)) {
        if (!tam_cbor_get_bytes(d, &b) || b.len != TAM_SHA256_LEN) {
            return tam_fail(why, "session: bad manifest digest", TAM_EINVAL);
        }
        memcpy(s->manifest_digest[i], b.ptr, TAM_SHA256_LEN);
    }
    s->n_manifests = it->count;
    return TAM_OK;
}

int tam_sess_decode(const uint8_t *buf, size_t len, struct tam_sess *s, const char **why)
{
    memset(s, 0, sizeof(*s));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    static const struct tam_cbor_limits lim = {.max_size = 4096, .max_depth = 4, .max_items = 64};
    int err = tam_cbor_decode(buf, len, &lim, &doc, why);
    const struct tam_cbor_item *m = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
    uint64_t kind = 0, num = 0;
    struct tam_bytes tenant = {0};
    if (err == TAM_OK &&
        (m->type != TAM_CBOR_MAP || !tam_cbor_get_uint(tam_cbor_map_get_int(m, K_KIND), &kind) ||
         (kind != TAM_SESS_QUERY && kind != TAM_SESS_UPDATE) ||
         !tam_cbor_get_text(tam_cbor_map_get_int(m, K_TENANT), &tenant) ||
         tenant.len > TAM_TENANT_ID_MAX ||
         !tam_cbor_get_uint(tam_cbor_map_get_int(m, K_NUMBERING), &num) || num > TAM_TEEP_DRAFT12 ||
         !get_fixed(m, K_TOKEN, s->token, TAM_TOKEN_LEN) ||
         !tam_cbor_get_uint(tam_cbor_map_get_int(m, K_CREATED), &s->created_ms) ||
         !tam_cbor_get_uint(tam_cbor_map_get_int(m, K_EXPIRES), &s->expires_ms) ||
         !tam_cbor_get_uint(tam_cbor_map_get_int(m, K_DATA_ITEMS), &s->data_items))) {
        err = tam_fail(why, "session: missing or malformed field", TAM_EINVAL);
    }
    if (err == TAM_OK) {
        s->kind = (enum tam_sess_kind)kind;
        s->numbering = (enum tam_teep_numbering)num;
        memcpy(s->tenant, tenant.ptr, tenant.len);
        err = decode_optional(m, s, why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

void tam_sess_new_query(struct tam_sess *s, const struct tam_tenant *t, const uint8_t *rand,
                        uint64_t now_ms)
{
    memset(s, 0, sizeof(*s));
    s->kind = TAM_SESS_QUERY;
    memcpy(s->tenant, t->id, sizeof(s->tenant));
    s->numbering = t->numbering;
    memcpy(s->token, rand, TAM_TOKEN_LEN);
    s->created_ms = now_ms;
    s->expires_ms = now_ms + (uint64_t)t->session_ttl_s * 1000;
    s->data_items = TAM_TEEP_DATA_TRUSTED_COMPONENTS;
    if (t->attestation == TAM_ATTEST_REQUIRED) {
        s->data_items |= TAM_TEEP_DATA_ATTESTATION;
        uint32_t n = t->challenge_len;
        n = n < 8 ? 8 : (n > TAM_CHALLENGE_MAX ? TAM_CHALLENGE_MAX : n);
        memcpy(s->challenge, rand + TAM_TOKEN_LEN, n);
        s->challenge_len = n;
    }
}

void tam_sess_query_request(const struct tam_sess *s, struct tam_teep_msg *qr)
{
    tam_teep_msg_init(qr, TAM_TEEP_QUERY_REQUEST);
    qr->has_token = true;
    qr->token = tam_bytes_of(s->token, TAM_TOKEN_LEN);
    if (s->challenge_len > 0) {
        /* Background-check model with the nonce mechanism: the agent copies it into eat_nonce. */
        qr->has_challenge = true;
        qr->challenge = tam_bytes_of(s->challenge, s->challenge_len);
    }
    qr->has_supported_suites = true;
    tam_teep_suites_default(s->numbering, &qr->supported_suites);
    qr->has_supported_profiles = true;
    tam_teep_profiles_default(s->numbering, &qr->supported_profiles);
    qr->has_data_item_requested = true;
    qr->data_item_requested = s->data_items;
}

static int encode_msg(const struct tam_tenant *t, const struct tam_teep_msg *msg,
                      struct tam_buf *payload)
{
    tam_buf_init(payload, 4u << 20);
    int err = tam_teep_encode(msg, t->numbering, payload);
    if (err != TAM_OK) {
        tam_buf_finish(payload);
    }
    return err;
}

int tam_sess_sign_query_request(const struct tam_tenant *t, const struct tam_teep_msg *qr,
                                struct tam_buf *out)
{
    struct tam_buf payload;
    int err = encode_msg(t, qr, &payload);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    const struct tam_key *keys[2];
    int algs[2];
    unsigned n = 0;
    for (int i = 0; i < 2 && !(t->sign1_only && n == 1); i++) {
        if (t->tam_keys[i] != NULL) {
            keys[n] = t->tam_keys[i];
            algs[n++] = tam_tenant_wire_alg(t, tam_key_type(t->tam_keys[i]));
        }
    }
    if (n == 0) {
        err = TAM_EKEY;
    } else if (n == 1) {
        err = tam_cose_sign1(out, keys[0], algs[0], &p, &opts);
    } else {
        err = tam_cose_sign(out, keys, algs, n, &p, &opts);
    }
    tam_buf_finish(&payload);
    return err;
}

int tam_sess_sign1(const struct tam_tenant *t, int alg, const struct tam_teep_msg *msg,
                   struct tam_buf *out)
{
    int wire_alg = 0;
    const struct tam_key *key = tam_tenant_key_for_alg(t, alg, &wire_alg);
    if (key == NULL) {
        return TAM_ECOSE_ALG;
    }
    struct tam_buf payload;
    int err = encode_msg(t, msg, &payload);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    err = tam_cose_sign1(out, key, wire_alg, &p, &opts);
    tam_buf_finish(&payload);
    return err;
}

static bool token_matches(const struct tam_sess *s, const struct tam_teep_msg *m)
{
    return m->has_token && m->token.len == TAM_TOKEN_LEN &&
           tam_ct_equal(m->token.ptr, s->token, TAM_TOKEN_LEN);
}

static int check_query_response(const struct tam_sess *s, const struct tam_teep_msg *m,
                                const char **why)
{
    if ((s->data_items & TAM_TEEP_DATA_ATTESTATION) && !m->has_attestation_payload) {
        return tam_fail(why, "attestation requested but no attestation-payload", TAM_ETEEP);
    }
    if ((s->data_items & TAM_TEEP_DATA_TRUSTED_COMPONENTS) && !m->has_tc_list) {
        return tam_fail(why, "trusted-components requested but no tc-list", TAM_ETEEP);
    }
    if ((s->data_items & TAM_TEEP_DATA_EXTENSIONS) && !m->has_ext_list) {
        return tam_fail(why, "extensions requested but no ext-list", TAM_ETEEP);
    }
    return TAM_OK;
}

int tam_sess_check_answer(const struct tam_sess *s, const struct tam_teep_msg *msg, uint64_t now_ms,
                          const char **why)
{
    if (now_ms >= s->expires_ms) {
        return tam_fail(why, "token expired", TAM_EEXPIRED);
    }
    if (!token_matches(s, msg)) {
        return tam_fail(why, "token does not match the request", TAM_ETEEP_TYPE);
    }
    if (msg->type == TAM_TEEP_ERROR) {
        return TAM_OK; /* an Error may answer either request */
    }
    if (s->kind == TAM_SESS_QUERY) {
        if (msg->type != TAM_TEEP_QUERY_RESPONSE) {
            return tam_fail(why, "a QueryRequest is answered by QueryResponse or Error",
                            TAM_ETEEP_TYPE);
        }
        return check_query_response(s, msg, why);
    }
    if (msg->type != TAM_TEEP_SUCCESS) {
        return tam_fail(why, "an Update is answered by Success or Error", TAM_ETEEP_TYPE);
    }
    return TAM_OK;
}
