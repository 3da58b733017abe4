/*
 * Attestation of a QueryResponse (TEEP-DIGEST 1.9, 7): the attestation-payload is an EAT in
 * the TEEP profile. Which model it follows is decided by who signed it:
 *   - an attester key of the tenant: Evidence checked by the TAM itself (background-check
 *     model with the TAM as the Verifier): eat_nonce must equal the QueryRequest challenge;
 *   - otherwise a Verifier key of the tenant: an Attestation Result (passport model):
 *     eat_nonce must equal the QueryRequest token.
 * Attester keys are tried first, so a key listed in both lists counts as an attester key.
 * An attestation-payload-format other than the TEEP EAT media type is Evidence for an
 * external Verifier, which this TAM does not have: refused.
 */
#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"
#include "worker.h"

#define EAT_MEDIA_TYPE      "application/eat+cwt"
#define EAT_MEDIA_TYPE_TEEP EAT_MEDIA_TYPE "; eat_profile=" TAM_EAT_PROFILE_TEEP

static bool text_is(struct tam_bytes t, const char *s)
{
    size_t n = strlen(s);
    return t.len == n && memcmp(t.ptr, s, n) == 0;
}

static bool format_ok(const struct tam_teep_msg *m)
{
    if (!m->has_attestation_payload_format) {
        return true;
    }
    return text_is(m->attestation_payload_format, EAT_MEDIA_TYPE_TEEP) ||
           text_is(m->attestation_payload_format, EAT_MEDIA_TYPE);
}

int wk_attest_verify(struct wk_job *j, const struct tam_teep_msg *m, struct wk_attest *a,
                     const char **why)
{
    memset(a, 0, sizeof(*a));
    if (!m->has_attestation_payload || m->attestation_payload.len == 0) {
        return tam_fail(why, "no attestation-payload", TAM_EEAT);
    }
    if (!format_ok(m)) {
        return tam_fail(why, "attestation-payload-format needs an external Verifier", TAM_EEAT);
    }
    const struct wk_tenant *t = j->tenant;
    const uint8_t *p = m->attestation_payload.ptr;
    size_t len = m->attestation_payload.len;
    int err = TAM_ESIG;
    if (t->attester.n > 0) {
        err = tam_eat_verify(p, len, (const struct tam_key *const *)t->attester.v, t->attester.n,
                             &a->c, why);
    }
    if (err == TAM_ESIG && t->verifier.n > 0) {
        err = tam_eat_verify(p, len, (const struct tam_key *const *)t->verifier.v, t->verifier.n,
                             &a->c, why);
        a->passport = err == TAM_OK;
    }
    if (err == TAM_ESIG) {
        return tam_fail(why, "no trusted attester or verifier key verifies the EAT", err);
    }
    a->checked = err == TAM_OK;
    return err;
}

int wk_attest_check(struct wk_job *j, const struct wk_attest *a, const struct tam_eat_policy *pol,
                    const char **why)
{
    struct tam_eat_expect e = {
        .cnf_kid = tam_bytes_of(j->kid, TAM_KID_LEN),
        .profile = TAM_EAT_PROFILE_TEEP,
        .now = (int64_t)(j->now_ms / 1000),
        .skew = WK_CLOCK_SKEW_S,
    };
    if (a->passport) {
        e.nonce = tam_bytes_of(j->sess.token, TAM_TOKEN_LEN);
    } else if (j->sess.challenge_len > 0) {
        e.nonce = tam_bytes_of(j->sess.challenge, j->sess.challenge_len);
    } else {
        return tam_fail(why, "Evidence without a challenge to bind it", TAM_EEAT);
    }
    int err = tam_eat_check_teep(&a->c, &e, why);
    if (err != TAM_OK) {
        return err;
    }
    /* The profile requires manifests (272); deployed agents put them under 273 (eat.h). */
    if ((a->c.present & (TAM_EAT_HAS_MANIFESTS | TAM_EAT_HAS_MEASUREMENTS)) == 0) {
        return tam_fail(why, "manifests claim (272) missing", TAM_EEAT);
    }
    return pol != NULL ? tam_eat_check_policy(&a->c, pol, why) : TAM_OK;
}

static bool map_bytes(const struct tam_cbor_item *m, int64_t key, size_t len, struct tam_bytes *b)
{
    return tam_cbor_get_bytes(tam_cbor_map_get_int(m, key), b) && b->len == len;
}

/* EC2 P-256 (x||y) or OKP Ed25519 (x) from a public COSE_Key map (checked by the EAT decoder). */
static int import_cose_key(const struct tam_cbor_item *m, struct tam_key **out)
{
    int64_t kty = 0, crv = 0;
    struct tam_bytes x, y;
    if (m->type != TAM_CBOR_MAP || !tam_cbor_get_int(tam_cbor_map_get_int(m, 1), &kty) ||
        !tam_cbor_get_int(tam_cbor_map_get_int(m, -1), &crv)) {
        return TAM_EKEY;
    }
    if (kty == 2 && crv == 1 && map_bytes(m, -2, 32, &x) && map_bytes(m, -3, 32, &y)) {
        uint8_t pub[64];
        memcpy(pub, x.ptr, 32);
        memcpy(pub + 32, y.ptr, 32);
        return tam_key_from_raw_public(TAM_KEY_P256, pub, sizeof(pub), out);
    }
    if (kty == 1 && crv == 6 && map_bytes(m, -2, 32, &x)) {
        return tam_key_from_raw_public(TAM_KEY_ED25519, x.ptr, x.len, out);
    }
    return TAM_EKEY;
}

int wk_attest_cnf_key(const struct tam_eat_claims *c, struct tam_key **out, const char **why)
{
    *out = NULL;
    if (c->cnf_form != TAM_EAT_CNF_COSE_KEY) {
        return tam_fail(why, "cnf holds no COSE_Key: the agent key cannot be learned", TAM_EKEY);
    }
    static const struct tam_cbor_limits lim = {.max_size = 1024, .max_depth = 2, .max_items = 32};
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(c->cnf_key.ptr, c->cnf_key.len, &lim, &doc, why);
    if (err == TAM_OK) {
        err = import_cose_key(tam_cbor_root(&doc), out);
    }
    tam_cbor_doc_finish(&doc);
    if (err == TAM_OK && (c->cnf_kid_len != TAM_KID_LEN ||
                          memcmp(tam_key_kid(*out), c->cnf_kid, TAM_KID_LEN) != 0)) {
        err = TAM_EKEY;
    }
    if (err != TAM_OK) {
        tam_key_destroy(*out);
        *out = NULL;
        return tam_fail(why, "cnf COSE_Key cannot be imported", err);
    }
    return TAM_OK;
}
