/*
 * tam-agent tests.
 *
 * 1. The pure device core (include/tam/agent.h) against messages built with the
 *    project's own TAM-side code (tam/session.h builds and signs QueryRequests and
 *    Updates with the tests/vectors TAM keys) and the spec's SUIT vectors. The
 *    core's sources are compiled into this test (h2o's t/00unit habit), because
 *    they belong to the tam-agent program, not to a project library.
 * 2. The tam-agent program itself, run as a subprocess against real HTTP servers
 *    (tests/unit/httpc_server.py, and a tiny in-test server for 5xx answers):
 *    load mode sessions, rate limiting, retries with backoff, timeouts, JSON
 *    output, idle connections. TEEP end to end needs the real tamd (integration).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/cose.h"
#include "tam/eat.h"
#include "tam/err.h"
#include "tam/session.h"
#include "tam/suit.h"
#include "testutil.h"

/* The core under test. */
#include "../../src/agent/device.c"
#include "../../src/agent/ids.c"
#include "../../src/agent/query.c"
#include "../../src/agent/step.c"
#include "../../src/agent/update.c"

#define NOW 1767225600 /* 2026-01-01, seconds */

static struct tam_key *load_key(const char *name)
{
    size_t len;
    char *pem = tu_load_text(name, &len);
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(pem, len, &key), TAM_OK, "%s", name);
    tam_free(pem);
    return key;
}

static struct tam_key *gen_key(enum tam_key_type type)
{
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_generate(type, &k), TAM_OK);
    return k;
}

/* A TAM tenant (the TAM side, from the project's session code), trust and one device. */
struct fx {
    enum tam_teep_numbering num;
    struct tam_tenant *tenant;
    struct tam_key *tam_pub[2];
    struct tam_key *signer;
    struct tam_key *attester;
    const struct tam_key *tam_keys[2];
    const struct tam_key *signer_keys[1];
    struct tam_agent_vcache *vcache;
    struct tam_agent_profile prof;
    struct tam_agent_device *dev;
};

static void fx_init(struct fx *f, enum tam_teep_numbering num, enum tam_key_type dev_type)
{
    memset(f, 0, sizeof(*f));
    f->num = num;
    f->tenant = tam_tenant_create("demo");
    cr_assert_not_null(f->tenant);
    f->tenant->numbering = num;
    f->tenant->legacy_alg_ids = num == TAM_TEEP_DRAFT12;
    f->tenant->tam_keys[0] = load_key("tam_p256.priv.pem");
    f->tenant->tam_keys[1] = load_key("tam_ed25519.priv.pem");
    f->tam_pub[0] = load_key("tam_p256.pub.pem");
    f->tam_pub[1] = load_key("tam_ed25519.pub.pem");
    f->signer = load_key("suit_example_key_p256.pub.pem");
    f->attester = gen_key(TAM_KEY_ED25519);
    f->tam_keys[0] = f->tam_pub[0];
    f->tam_keys[1] = f->tam_pub[1];
    f->signer_keys[0] = f->signer;
    cr_assert_eq(tam_agent_vcache_create(8, &f->vcache), TAM_OK);
    f->prof.numbering = num;
    f->prof.tam_keys = f->tam_keys;
    f->prof.n_tam_keys = 2;
    f->prof.signer_keys = f->signer_keys;
    f->prof.n_signer_keys = 1;
    f->prof.attester = f->attester;
    f->prof.dbgstat = TAM_EAT_DBG_DISABLED_SINCE_BOOT;
    f->prof.vcache = f->vcache;
    cr_assert_eq(tam_agent_device_create(&f->prof, gen_key(dev_type), NULL, 0, &f->dev), TAM_OK);
}

static void fx_finish(struct fx *f)
{
    tam_agent_device_destroy(f->dev);
    tam_agent_vcache_destroy(f->vcache);
    tam_key_destroy(f->tam_pub[0]);
    tam_key_destroy(f->tam_pub[1]);
    tam_key_destroy(f->signer);
    tam_key_destroy(f->attester);
    tam_tenant_unref(f->tenant);
}

/* A signed first QueryRequest from the tenant (COSE_Sign with both TAM keys). */
static void make_qr(struct fx *f, bool attest, struct tam_sess *s, struct tam_buf *out)
{
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    cr_assert_eq(tam_random(rand, sizeof(rand)), TAM_OK);
    f->tenant->attestation = attest ? TAM_ATTEST_REQUIRED : TAM_ATTEST_NONE;
    tam_sess_new_query(s, f->tenant, rand, (uint64_t)NOW * 1000);
    struct tam_teep_msg qr;
    tam_sess_query_request(s, &qr);
    tam_buf_init(out, 1u << 20);
    cr_assert_eq(tam_sess_sign_query_request(f->tenant, &qr, out), TAM_OK);
}

/* Verifies a device answer (COSE_Sign1 by the device key, kid = its thumbprint), decodes it. */
static void open_reply(struct fx *f, const struct tam_buf *reply, struct tam_arena *a,
                       struct tam_teep_msg *m)
{
    struct tam_cose_msg cm;
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(reply->data, reply->len, &cm, &why), TAM_OK, "%s", why);
    cr_assert_eq(cm.kind, TAM_COSE_SIGN1);
    cr_assert_eq(cm.signers[0].kid.len, TAM_KID_LEN);
    const struct tam_key *dk = tam_agent_device_key(f->dev);
    cr_assert_eq(memcmp(cm.signers[0].kid.ptr, tam_key_kid(dk), TAM_KID_LEN), 0);
    cr_assert_eq(tam_cose_verify(&cm, 0, dk, NULL, NULL), TAM_OK);
    cr_assert_eq(tam_teep_decode(cm.payload.ptr, cm.payload.len, f->num, a, m, &why), TAM_OK, "%s",
                 why);
}

/* An Update from the tenant, COSE_Sign1 in alg. */
static void make_update(struct fx *f, int alg, const uint8_t *token, const struct tam_bytes *envs,
                        size_t n, const struct tam_teep_component_id *unneeded, size_t nu,
                        struct tam_buf *out)
{
    struct tam_teep_msg u;
    tam_teep_msg_init(&u, TAM_TEEP_UPDATE);
    if (token != NULL) {
        u.has_token = true;
        u.token = tam_bytes_of(token, TAM_TOKEN_LEN);
    }
    u.has_manifest_list = n > 0;
    u.n_manifest_list = (uint32_t)n;
    u.manifest_list = (struct tam_bytes *)envs;
    u.has_unneeded = nu > 0;
    u.n_unneeded = (uint32_t)nu;
    u.unneeded = (struct tam_teep_component_id *)unneeded;
    tam_buf_init(out, 1u << 20);
    cr_assert_eq(tam_sess_sign1(f->tenant, alg, &u, out), TAM_OK);
}

static int p256_alg(const struct fx *f)
{
    return f->num == TAM_TEEP_DRAFT12 ? TAM_ALG_ES256 : TAM_ALG_ESP256;
}

static uint8_t *find(uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static const enum tam_teep_numbering all_nums[] = {TAM_TEEP_RFC, TAM_TEEP_DRAFT, TAM_TEEP_DRAFT12};

/* ---- QueryRequest -> QueryResponse ---- */

static void check_query_response(enum tam_teep_numbering num, enum tam_key_type type)
{
    struct fx f;
    fx_init(&f, num, type);
    struct tam_sess s;
    struct tam_buf qr, reply;
    make_qr(&f, true, &s, &qr);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_OK, "%s", o.why);
    cr_assert_eq(o.received, TAM_TEEP_QUERY_REQUEST);
    cr_assert(o.sign_multi);
    cr_assert_eq(o.sent, TAM_TEEP_QUERY_RESPONSE);
    cr_assert(o.attested);
    bool legacy = num == TAM_TEEP_DRAFT12;
    int want_alg = type == TAM_KEY_P256 ? (legacy ? TAM_ALG_ES256 : TAM_ALG_ESP256)
                                        : (legacy ? TAM_ALG_EDDSA : TAM_ALG_ED25519);
    cr_assert_eq(o.alg, want_alg);

    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert_eq(m.type, TAM_TEEP_QUERY_RESPONSE);
    cr_assert(m.has_token && m.token.len == TAM_TOKEN_LEN);
    cr_assert_eq(memcmp(m.token.ptr, s.token, TAM_TOKEN_LEN), 0);
    const char *why = NULL;
    cr_assert_eq(tam_sess_check_answer(&s, &m, (uint64_t)NOW * 1000 + 5, &why), TAM_OK, "%s", why);
    cr_assert(m.has_tc_list && m.n_tc_list == 1); /* the agent itself */
    cr_assert_eq(m.has_selected_suite, legacy);

    /* The Evidence: attester signature, nonce = challenge, cnf = device kid, TEEP profile. */
    cr_assert(m.has_attestation_payload);
    struct tam_eat_claims c;
    const struct tam_key *att[1] = {f.attester};
    cr_assert_eq(
        tam_eat_verify(m.attestation_payload.ptr, m.attestation_payload.len, att, 1, &c, &why),
        TAM_OK, "%s", why);
    struct tam_eat_expect e = {
        .nonce = tam_bytes_of(s.challenge, s.challenge_len),
        .cnf_kid = tam_bytes_of(tam_key_kid(tam_agent_device_key(f.dev)), TAM_KID_LEN),
        .profile = TAM_EAT_PROFILE_TEEP,
        .require_manifests = true,
        .now = NOW,
        .skew = 5,
    };
    cr_assert_eq(tam_eat_check_teep(&c, &e, &why), TAM_OK, "%s", why);
    cr_assert_eq(c.cnf_form, TAM_EAT_CNF_COSE_KEY);
    cr_assert_eq(c.ueid.len, 17);
    cr_assert_eq(c.dbgstat, TAM_EAT_DBG_DISABLED_SINCE_BOOT);
    tam_arena_finish(&a);
    tam_buf_finish(&qr);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, query_response_all_numberings_and_keys)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(all_nums); i++) {
        check_query_response(all_nums[i], TAM_KEY_P256);
        check_query_response(all_nums[i], TAM_KEY_ED25519);
    }
}

Test(agent, query_request_vector_without_attestation_sign1)
{
    /* The spec's QueryRequest (TP App. D.1) signed with COSE_Sign1 by tam_ed25519. */
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_ED25519);
    size_t len;
    uint8_t *qr = tu_load_hex("derived_sign1_ed25519_teep26_query_request.hex", &len);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr, len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_OK, "%s", o.why);
    cr_assert_not(o.sign_multi);
    cr_assert_eq(o.sent, TAM_TEEP_QUERY_RESPONSE);
    cr_assert_eq(o.alg, TAM_ALG_ED25519);
    cr_assert_eq(o.data_items, 3);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    /* No challenge in the vector: the token is the eat_nonce (passport-style freshness). */
    struct tam_eat_claims c;
    const struct tam_key *att[1] = {f.attester};
    cr_assert_eq(
        tam_eat_verify(m.attestation_payload.ptr, m.attestation_payload.len, att, 1, &c, NULL),
        TAM_OK);
    cr_assert_eq(c.nonce.len, m.token.len);
    cr_assert_eq(memcmp(c.nonce.ptr, m.token.ptr, m.token.len), 0);
    cr_assert(m.has_selected_version && m.selected_version == 0);
    tam_arena_finish(&a);
    tam_buf_finish(&reply);
    tam_free(qr);
    fx_finish(&f);
}

Test(agent, bad_tam_signature_is_answered_with_error)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    struct tam_sess s;
    struct tam_buf qr, reply;
    make_qr(&f, true, &s, &qr);
    /* Change the token inside the payload: neither signature verifies any more. */
    uint8_t *tok = find(qr.data, qr.len, s.token, TAM_TOKEN_LEN);
    cr_assert_not_null(tok);
    tok[0] ^= 0x40;
    s.token[0] ^= 0x40;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_BAD_SIGNATURE);
    cr_assert_eq(o.sent, TAM_TEEP_ERROR);
    cr_assert_eq(o.err_code, TAM_TEEP_ERR_PERMANENT_ERROR);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert_eq(m.type, TAM_TEEP_ERROR);
    cr_assert_eq(m.err_code, TAM_TEEP_ERR_PERMANENT_ERROR);
    cr_assert(m.has_token && memcmp(m.token.ptr, s.token, TAM_TOKEN_LEN) == 0);
    tam_arena_finish(&a);

    /* With drop_invalid nothing is sent. */
    f.prof.drop_invalid = true;
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_BAD_SIGNATURE);
    cr_assert_eq(o.sent, 0);
    cr_assert_eq(reply.len, 0);
    tam_buf_finish(&qr);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, untrusted_tam_key_and_garbage)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    struct tam_key *other = gen_key(TAM_KEY_P256);
    f.tam_keys[0] = other;
    f.prof.n_tam_keys = 1; /* trusts only a key the TAM does not use */
    struct tam_sess s;
    struct tam_buf qr, reply;
    make_qr(&f, false, &s, &qr);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_message(f.dev, qr.data, qr.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_BAD_SIGNATURE);
    static const uint8_t junk[] = {0xff, 0x00, 0x12};
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_message(f.dev, junk, sizeof(junk), NOW, NULL, NULL, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_BAD_COSE);
    cr_assert_eq(o.sent, TAM_TEEP_ERROR);
    tam_key_destroy(other);
    tam_buf_finish(&qr);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, unsupported_suite_version_and_wrong_type)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    struct tam_sess s;
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX] = {1, 2, 3};
    tam_sess_new_query(&s, f.tenant, rand, 0);
    struct tam_teep_msg qr;
    tam_sess_query_request(&s, &qr);
    qr.supported_suites.n = 1;
    tam_teep_suite_single(&qr.supported_suites.v[0], TAM_TEEP_COSE_SIGN1, -35); /* ES384 */
    struct tam_buf msg, reply;
    tam_buf_init(&msg, 1u << 20);
    cr_assert_eq(tam_sess_sign1(f.tenant, TAM_ALG_ESP256, &qr, &msg), TAM_OK);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_query_request(f.dev, msg.data, msg.len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_UNSUPPORTED);
    cr_assert_eq(o.err_code, TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert(m.has_supported_suites);
    cr_assert(tam_teep_suites_has_alg(&m.supported_suites, TAM_TEEP_COSE_SIGN1, TAM_ALG_ESP256));

    /* versions without 0. */
    static uint32_t v7[1] = {7};
    tam_sess_query_request(&s, &qr);
    qr.has_versions = true;
    qr.n_versions = 1;
    qr.versions = v7;
    tam_buf_reset(&msg);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_sess_sign1(f.tenant, TAM_ALG_ESP256, &qr, &msg), TAM_OK);
    cr_assert_eq(tam_agent_on_query_request(f.dev, msg.data, msg.len, NOW, &reply, &o), TAM_OK);
    cr_assert_eq(o.err_code, TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION);

    /* A QueryRequest handed to on_update is refused. */
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, msg.data, msg.len, NOW, NULL, NULL, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_UNEXPECTED);
    cr_assert_eq(o.sent, TAM_TEEP_ERROR);
    tam_arena_finish(&a);
    tam_buf_finish(&msg);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

/* ---- Update ---- */

static const char hello[] = "Hello, Secure World!";

static void check_update_integrated(enum tam_teep_numbering num)
{
    struct fx f;
    fx_init(&f, num, TAM_KEY_P256);
    size_t elen;
    uint8_t *env = tu_load_hex("teep_suit_integrated.hex", &elen);
    struct tam_bytes envs[1] = {tam_bytes_of(env, elen)};
    uint8_t token[TAM_TOKEN_LEN];
    memset(token, 0xa5, sizeof(token));
    struct tam_buf up, reply;
    make_update(&f, p256_alg(&f), token, envs, 1, NULL, 0, &up);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_OK, "%s", o.why);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS);
    cr_assert_eq(o.n_installed, 1);
    cr_assert_eq(o.alg, p256_alg(&f));

    /* The store: "Hello, Secure World!", sequence 3, the manifest's digest. */
    struct tam_suit_envelope e;
    cr_assert_eq(tam_suit_parse(env, elen, &e, NULL), TAM_OK);
    uint8_t digest[TAM_SHA256_LEN];
    tam_suit_manifest_digest(&e, digest);
    cr_assert_eq(tam_agent_device_tc_count(f.dev), 1);
    struct tam_agent_tc_info tc;
    cr_assert(tam_agent_device_tc_at(f.dev, 0, &tc));
    cr_assert_eq(tc.sequence, 3);
    cr_assert(tc.has_payload && tc.payload.len == strlen(hello));
    cr_assert_eq(memcmp(tc.payload.ptr, hello, strlen(hello)), 0);
    cr_assert_eq(memcmp(tc.manifest_digest, digest, TAM_SHA256_LEN), 0);
    cr_assert(tam_agent_device_tc_find(f.dev, e.manifest_component_id.raw, true, &tc));
    cr_assert(tam_agent_device_tc_find(f.dev, e.components[0].raw, false, &tc));

    /* The Success and its SUIT report: nonce = token, reference digest = manifest digest. */
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert_eq(m.type, TAM_TEEP_SUCCESS);
    cr_assert(m.has_token && memcmp(m.token.ptr, token, TAM_TOKEN_LEN) == 0);
    cr_assert(m.has_suit_reports && m.n_suit_reports == 1);
    struct tam_suit_report r;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(m.suit_reports[0].ptr, m.suit_reports[0].len, &a, &r, &why),
                 TAM_OK, "%s", why);
    cr_assert(r.has_nonce && r.nonce.len == TAM_TOKEN_LEN);
    cr_assert_eq(memcmp(r.nonce.ptr, token, TAM_TOKEN_LEN), 0);
    cr_assert_eq(r.manifest_digest.alg, TAM_ALG_SHA256);
    cr_assert_eq(memcmp(r.manifest_digest.bytes.ptr, digest, TAM_SHA256_LEN), 0);
    cr_assert(r.success);
    cr_assert_not(r.is_signed);

    /* The same envelope again (a TAM that has not yet recorded the Success sends it once
     * more): the manifest already runs, so it succeeds without a second install. */
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS);
    cr_assert_eq(o.n_installed, 0);
    cr_assert_eq(o.n_failed, 0);
    cr_assert_eq(tam_agent_device_tc_count(f.dev), 1);

    /* unneeded-manifest-list unlinks it. */
    struct tam_teep_component_id un;
    cr_assert_eq(
        ag_id_to_teep(e.manifest_component_id.raw.ptr, e.manifest_component_id.raw.len, &un),
        TAM_OK);
    tam_buf_finish(&up);
    make_update(&f, p256_alg(&f), token, NULL, 0, &un, 1, &up);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS);
    cr_assert_eq(o.n_unlinked, 1);
    cr_assert_eq(tam_agent_device_tc_count(f.dev), 0);
    open_reply(&f, &reply, &a, &m);
    cr_assert_not(m.has_suit_reports);

    tam_arena_finish(&a);
    tam_buf_finish(&up);
    tam_buf_finish(&reply);
    tam_free(env);
    fx_finish(&f);
}

Test(agent, update_integrated_rollback_unlink_all_numberings)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(all_nums); i++) {
        check_update_integrated(all_nums[i]);
    }
}

static void expect_manifest_error(struct fx *f, const struct tam_buf *up, uint64_t reason)
{
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_update(f->dev, up->data, up->len, NOW, NULL, NULL, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_ERROR);
    cr_assert_eq(o.err_code, TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(f, &reply, &a, &m);
    struct tam_suit_report r;
    cr_assert_eq(tam_suit_report_decode(m.suit_reports[0].ptr, m.suit_reports[0].len, &a, &r, NULL),
                 TAM_OK);
    cr_assert_not(r.success);
    cr_assert_eq(r.result_reason, reason, "reason %llu", (unsigned long long)r.result_reason);
    cr_assert_eq(tam_agent_device_tc_count(f->dev), 0);
    tam_arena_finish(&a);
    tam_buf_finish(&reply);
}

Test(agent, bad_manifest_signature_and_digest)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_ED25519);
    size_t elen;
    uint8_t *env = tu_load_hex("teep_suit_integrated.hex", &elen);
    struct tam_suit_envelope e;
    cr_assert_eq(tam_suit_parse(env, elen, &e, NULL), TAM_OK);
    /* Flip a bit of the COSE signature inside the auth block. */
    uint8_t *bad = tam_malloc(elen);
    memcpy(bad, env, elen);
    size_t sig_at = (size_t)(e.auth[0].ptr - env) + e.auth[0].len - 1;
    bad[sig_at] ^= 0x01;
    struct tam_bytes envs[1] = {tam_bytes_of(bad, elen)};
    struct tam_buf up;
    make_update(&f, TAM_ALG_ED25519, NULL, envs, 1, NULL, 0, &up);
    expect_manifest_error(&f, &up, TAM_SUIT_REASON_UNAUTHORISED);
    tam_buf_finish(&up);

    /* A byte of the manifest changed (in the vendor id): digest mismatch. */
    memcpy(bad, env, elen);
    static const uint8_t vendor[4] = {0xc0, 0xdd, 0xd5, 0xf1};
    uint8_t *at = find(bad, elen, vendor, sizeof(vendor));
    cr_assert_not_null(at);
    at[2] ^= 0x01;
    make_update(&f, TAM_ALG_ED25519, NULL, envs, 1, NULL, 0, &up);
    expect_manifest_error(&f, &up, TAM_SUIT_REASON_UNAUTHORISED);
    tam_buf_finish(&up);

    /* A trusted signer other than the one that signed. */
    struct tam_key *other = gen_key(TAM_KEY_P256);
    f.signer_keys[0] = other;
    envs[0] = tam_bytes_of(env, elen);
    make_update(&f, TAM_ALG_ED25519, NULL, envs, 1, NULL, 0, &up);
    expect_manifest_error(&f, &up, TAM_SUIT_REASON_UNAUTHORISED);
    tam_buf_finish(&up);

    /* Not an envelope at all. */
    static const uint8_t junk[] = {0xa1, 0x01, 0x02};
    envs[0] = tam_bytes_of(junk, sizeof(junk));
    make_update(&f, TAM_ALG_ED25519, NULL, envs, 1, NULL, 0, &up);
    expect_manifest_error(&f, &up, TAM_SUIT_REASON_CBOR_PARSE);
    tam_buf_finish(&up);
    tam_key_destroy(other);
    tam_free(bad);
    tam_free(env);
    fx_finish(&f);
}

struct fetch_ctx {
    int calls;
    const char *want_uri;
    const uint8_t *data;
    size_t len;
};

static int fetch_cb(void *arg, const char *uri, struct tam_buf *out)
{
    struct fetch_ctx *c = arg;
    c->calls++;
    if (c->data == NULL || strcmp(uri, c->want_uri) != 0) {
        return TAM_ENOTFOUND;
    }
    return tam_buf_append(out, c->data, c->len);
}

Test(agent, update_uri_fetch)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_DRAFT, TAM_KEY_P256);
    size_t elen, blen;
    uint8_t *env = tu_load_hex("teep_suit_uri.hex", &elen);
    uint8_t *bin = tu_load_hex("teep_tc_binary_8d82573a.raw.hex", &blen);
    struct tam_bytes envs[1] = {tam_bytes_of(env, elen)};
    struct tam_buf up, reply;
    make_update(&f, TAM_ALG_ESP256, NULL, envs, 1, NULL, 0, &up);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    const char *uri = "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta";

    /* The step API lists the URI. */
    struct tam_agent_step *st = NULL;
    cr_assert_eq(tam_agent_handle(f.dev, up.data, up.len, &st), TAM_OK);
    cr_assert_eq(tam_agent_step_fetch_count(st), 1);
    cr_assert_str_eq(tam_agent_step_fetch_uri(st, 0), uri);
    tam_agent_step_destroy(st);

    /* Wrong bytes: image digest mismatch. */
    struct fetch_ctx c = {.want_uri = uri, .data = (const uint8_t *)"nope", .len = 4};
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, fetch_cb, &c, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_ERROR);
    cr_assert_eq(o.fail, TAM_AGENT_MANIFEST);
    /* Fetch failure. */
    c.data = NULL;
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, fetch_cb, &c, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.fail, TAM_AGENT_FETCH);
    cr_assert_eq(o.err_code, TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED);
    /* The real binary. */
    c.data = bin;
    c.len = blen;
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, fetch_cb, &c, &reply, &o),
                 TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS, "%s", o.why);
    cr_assert_eq(c.calls, 3);
    struct tam_agent_tc_info tc;
    cr_assert(tam_agent_device_tc_at(f.dev, 0, &tc));
    cr_assert(tc.has_payload && tc.payload.len == blen);
    cr_assert(tc.has_image_digest);
    cr_assert_eq(memcmp(tc.payload.ptr, hello, blen), 0);
    tam_buf_finish(&up);
    tam_buf_finish(&reply);
    tam_free(env);
    tam_free(bin);
    fx_finish(&f);
}

Test(agent, have_binary_skips_fetch)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    size_t elen;
    uint8_t *env = tu_load_hex("teep_suit_uri.hex", &elen);
    struct tam_suit_envelope e;
    cr_assert_eq(tam_suit_parse(env, elen, &e, NULL), TAM_OK);
    struct tam_bytes seg[8];
    size_t n = 0;
    cr_assert_eq(tam_agent_id_segments(e.components[0].raw, seg, 8, &n), TAM_OK);
    cr_assert_eq(
        tam_agent_device_request(f.dev, seg, n, true, 3, true, tam_bytes_of(hello, strlen(hello))),
        TAM_OK);
    struct tam_bytes envs[1] = {tam_bytes_of(env, elen)};
    struct tam_buf up, reply;
    make_update(&f, TAM_ALG_ESP256, NULL, envs, 1, NULL, 0, &up);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS, "%s", o.why);
    tam_buf_finish(&up);
    tam_buf_finish(&reply);
    tam_free(env);
    fx_finish(&f);
}

Test(agent, scenario_requested_and_unneeded_lists)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    size_t elen;
    uint8_t *env = tu_load_hex("teep_suit_integrated.hex", &elen);
    struct tam_suit_envelope e;
    cr_assert_eq(tam_suit_parse(env, elen, &e, NULL), TAM_OK);
    struct tam_bytes seg[8], mseg[8];
    size_t n = 0, mn = 0;
    cr_assert_eq(tam_agent_id_segments(e.components[0].raw, seg, 8, &n), TAM_OK);
    cr_assert_eq(tam_agent_id_segments(e.manifest_component_id.raw, mseg, 8, &mn), TAM_OK);
    cr_assert_eq(tam_agent_device_request(f.dev, seg, n, true, 2, false, tam_bytes_of(NULL, 0)),
                 TAM_OK);
    cr_assert_eq(tam_agent_device_unrequest(f.dev, mseg, mn), TAM_OK);
    cr_assert_eq(tam_agent_device_request(f.dev, seg, n, false, 0, true, tam_bytes_of(NULL, 0)),
                 TAM_EINVAL); /* have-binary needs the sequence */

    struct tam_sess s;
    struct tam_buf qr, reply;
    make_qr(&f, false, &s, &qr);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    cr_assert_not(o.attested);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert(m.has_requested_tc_list && m.n_requested_tc_list == 1);
    cr_assert_eq(m.requested_tc_list[0].id.n, n);
    cr_assert(m.requested_tc_list[0].has_seq && m.requested_tc_list[0].seq == 2);
    cr_assert_not(m.has_unneeded); /* nothing installed yet */
    cr_assert_not(m.has_attestation_payload);

    /* Install it: the request disappears, the unneeded entry appears. */
    struct tam_bytes envs[1] = {tam_bytes_of(env, elen)};
    struct tam_buf up;
    make_update(&f, TAM_ALG_ESP256, NULL, envs, 1, NULL, 0, &up);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS);
    tam_buf_finish(&qr);
    make_qr(&f, false, &s, &qr);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    open_reply(&f, &reply, &a, &m);
    cr_assert_not(m.has_requested_tc_list);
    cr_assert(m.has_unneeded && m.n_unneeded == 1);
    cr_assert_eq(m.unneeded[0].n, mn);
    cr_assert(m.has_tc_list && m.n_tc_list == 2);
    cr_assert(m.tc_list[1].has_image_digest);
    tam_arena_finish(&a);
    tam_buf_finish(&up);
    tam_buf_finish(&qr);
    tam_buf_finish(&reply);
    tam_free(env);
    fx_finish(&f);
}

Test(agent, update_with_unknown_err_code_and_tam_built_manifest)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_ED25519);
    /* A manifest built and signed by the project's SUIT builder with an Ed25519 signer. */
    struct tam_key *sp = gen_key(TAM_KEY_ED25519);
    f.signer_keys[0] = sp;
    struct tam_bytes cid[2] = {tam_bytes_of("sp", 2), tam_bytes_of("app.ta", 6)};
    struct tam_suit_build_params p = {
        .kind = TAM_SUIT_BUILD_INTEGRATED,
        .component_id = cid,
        .ncomponent_id = 2,
        .sequence = 7,
        .payload = tam_bytes_of("payload-bytes", 13),
    };
    struct tam_buf env;
    tam_buf_init(&env, 1u << 20);
    cr_assert_eq(tam_suit_build(&p, sp, TAM_ALG_ED25519, &env), TAM_OK);
    struct tam_teep_msg u;
    tam_teep_msg_init(&u, TAM_TEEP_UPDATE);
    struct tam_bytes envs[1] = {tam_bytes_of(env.data, env.len)};
    u.has_manifest_list = true;
    u.n_manifest_list = 1;
    u.manifest_list = envs;
    u.has_err_code = true;
    u.err_code = TAM_TEEP_ERR_UNKNOWN_BASE + 200;
    struct tam_buf up, reply;
    tam_buf_init(&up, 1u << 20);
    cr_assert_eq(tam_sess_sign1(f.tenant, TAM_ALG_ED25519, &u, &up), TAM_OK);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS, "%s", o.why);
    cr_assert(o.has_tam_err);
    cr_assert_eq(o.tam_err_code, TAM_TEEP_ERR_UNKNOWN_BASE + 200);
    cr_assert_str_eq(tam_teep_err_name(o.tam_err_code), "unknown");
    struct tam_agent_tc_info tc;
    cr_assert(tam_agent_device_tc_at(f.dev, 0, &tc));
    cr_assert_eq(tc.sequence, 7);
    cr_assert_eq(tc.payload.len, 13);

    /* The verification cache: a second device receiving the same envelope is a cache hit. */
    uint64_t hits, misses;
    tam_agent_vcache_stats(f.vcache, &hits, &misses);
    cr_assert_eq(hits, 0);
    cr_assert_eq(misses, 1);
    tam_agent_device_reset(f.dev);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_update(f.dev, up.data, up.len, NOW, NULL, NULL, &reply, &o), TAM_OK);
    cr_assert_eq(o.sent, TAM_TEEP_SUCCESS);
    tam_agent_vcache_stats(f.vcache, &hits, &misses);
    cr_assert_eq(hits, 1);
    tam_key_destroy(sp);
    tam_buf_finish(&env);
    tam_buf_finish(&up);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, faults_break_what_they_say)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_RFC, TAM_KEY_P256);
    struct tam_sess s;
    struct tam_buf qr, reply;
    make_qr(&f, true, &s, &qr);
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    tam_agent_device_set_faults(f.dev, TAM_AGENT_FAULT_BAD_NONCE);
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    struct tam_eat_claims c;
    const struct tam_key *att[1] = {f.attester};
    cr_assert_eq(
        tam_eat_verify(m.attestation_payload.ptr, m.attestation_payload.len, att, 1, &c, NULL),
        TAM_OK);
    struct tam_eat_expect e = {.nonce = tam_bytes_of(s.challenge, s.challenge_len), .now = NOW};
    cr_assert_eq(tam_eat_check_teep(&c, &e, NULL), TAM_EEAT);

    tam_agent_device_set_faults(f.dev, TAM_AGENT_FAULT_UNTRUSTED_ATTESTER);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    open_reply(&f, &reply, &a, &m);
    cr_assert_eq(
        tam_eat_verify(m.attestation_payload.ptr, m.attestation_payload.len, att, 1, &c, NULL),
        TAM_ESIG);

    tam_agent_device_set_faults(f.dev, TAM_AGENT_FAULT_BAD_SIGNATURE);
    tam_buf_reset(&reply);
    cr_assert_eq(tam_agent_on_query_request(f.dev, qr.data, qr.len, NOW, &reply, &o), TAM_OK);
    struct tam_cose_msg cm;
    cr_assert_eq(tam_cose_parse(reply.data, reply.len, &cm, NULL), TAM_OK);
    cr_assert_eq(tam_cose_verify(&cm, 0, tam_agent_device_key(f.dev), NULL, NULL), TAM_ESIG);
    tam_arena_finish(&a);
    tam_buf_finish(&qr);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, build_error_with_unknown_code)
{
    struct fx f;
    fx_init(&f, TAM_TEEP_DRAFT, TAM_KEY_ED25519);
    uint8_t token[16] = {9};
    struct tam_buf reply;
    tam_buf_init(&reply, 4096);
    cr_assert_eq(tam_agent_build_error(f.dev, tam_bytes_of(token, 16),
                                       TAM_TEEP_ERR_UNKNOWN_BASE + 250, "odd", 0, &reply),
                 TAM_OK);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1u << 20);
    struct tam_teep_msg m;
    open_reply(&f, &reply, &a, &m);
    cr_assert_eq(m.type, TAM_TEEP_ERROR);
    cr_assert_eq(m.err_code, TAM_TEEP_ERR_UNKNOWN_BASE + 250);
    tam_arena_finish(&a);
    tam_buf_finish(&reply);
    fx_finish(&f);
}

Test(agent, component_id_text_and_seeded_keys)
{
    struct tam_buf enc, txt;
    tam_buf_init(&enc, 1024);
    tam_buf_init(&txt, 1024);
    cr_assert_eq(
        tam_agent_id_parse("TEEP-Device/SecureFS/h:8d82573a926d4754935332dc29997f74/ta", &enc),
        TAM_OK);
    cr_assert_eq(tam_agent_id_format(tam_bytes_of(enc.data, enc.len), &txt), TAM_OK);
    cr_assert_str_eq((const char *)txt.data,
                     "TEEP-Device/SecureFS/h:8d82573a926d4754935332dc29997f74/ta");
    /* Same bytes as the component id of the spec's manifests. */
    size_t elen;
    uint8_t *env = tu_load_hex("teep_suit_integrated.hex", &elen);
    struct tam_suit_envelope e;
    cr_assert_eq(tam_suit_parse(env, elen, &e, NULL), TAM_OK);
    cr_assert_eq(enc.len, e.components[0].raw.len);
    cr_assert_eq(memcmp(enc.data, e.components[0].raw.ptr, enc.len), 0);
    tam_buf_reset(&enc);
    cr_assert_eq(tam_agent_id_parse("a/h:zz", &enc), TAM_EINVAL);
    cr_assert_eq(tam_agent_id_parse("", &enc), TAM_EINVAL);

    for (int t = TAM_KEY_P256; t <= TAM_KEY_ED25519; t++) {
        struct tam_key *k1, *k2, *k3;
        cr_assert_eq(tam_agent_key_from_seed(t, (const uint8_t *)"s", 1, 5, &k1), TAM_OK);
        cr_assert_eq(tam_agent_key_from_seed(t, (const uint8_t *)"s", 1, 5, &k2), TAM_OK);
        cr_assert_eq(tam_agent_key_from_seed(t, (const uint8_t *)"s", 1, 6, &k3), TAM_OK);
        cr_assert(tam_key_has_private(k1));
        cr_assert_eq(memcmp(tam_key_kid(k1), tam_key_kid(k2), TAM_KID_LEN), 0);
        cr_assert_neq(memcmp(tam_key_kid(k1), tam_key_kid(k3), TAM_KID_LEN), 0);
        uint8_t sig[64];
        size_t sl;
        int alg = tam_key_default_alg(k1);
        cr_assert_eq(tam_sign(k1, alg, (const uint8_t *)"m", 1, sig, &sl), TAM_OK);
        cr_assert_eq(tam_verify(k2, alg, (const uint8_t *)"m", 1, sig, sl), TAM_OK);
        tam_key_destroy(k1);
        tam_key_destroy(k2);
        tam_key_destroy(k3);
    }
    tam_free(env);
    tam_buf_finish(&enc);
    tam_buf_finish(&txt);
}

/* ======================================================================== */
/* 2. The tam-agent program against real HTTP servers                       */
/* ======================================================================== */

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *agent_path(void)
{
    static char path[4096];
    const char *root = getenv("TAM_BUILD_ROOT");
    snprintf(path, sizeof(path), "%s/src/agent/tam-agent", root != NULL ? root : ".");
    return path;
}

struct run {
    int status; /* exit status */
    char out[1 << 16];
    size_t len;
};

/* Runs tam-agent with args (NULL-terminated), collecting stdout; stderr is discarded. */
static void run_agent(struct run *r, const char *const *args)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = agent_path();
    for (size_t i = 0; args[i] != NULL && n < 63; i++) {
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        int dn = open("/dev/null", O_WRONLY);
        if (getenv("AGENT_TEST_STDERR") == NULL) {
            dup2(dn, 2);
        }
        close(fds[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    r->len = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    for (;;) {
        cr_assert_gt(poll(&pfd, 1, 30000), 0, "tam-agent hangs");
        ssize_t got = read(fds[0], r->out + r->len, sizeof(r->out) - 1 - r->len);
        if (got <= 0) {
            break;
        }
        r->len += (size_t)got;
    }
    r->out[r->len] = '\0';
    close(fds[0]);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "tam-agent crashed: %s", r->out);
    r->status = WEXITSTATUS(st);
}

static json_t *run_json(struct run *r, const char *const *args)
{
    run_agent(r, args);
    json_error_t e;
    json_t *j = json_loads(r->out, 0, &e);
    cr_assert_not_null(j, "not JSON: %s (%s)", r->out, e.text);
    return j;
}

static double jnum(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "no number %s", key);
    return json_number_value(v);
}

static long long jerr(json_t *j, const char *kind)
{
    json_t *v = json_object_get(json_object_get(j, "errors"), kind);
    return v != NULL ? json_integer_value(v) : 0;
}

/* ---- tests/unit/httpc_server.py ---- */

struct pysrv {
    pid_t pid;
    int port;
};

static void pysrv_start(struct pysrv *s)
{
    char script[4096];
    const char *root = getenv("TAM_SOURCE_ROOT");
    snprintf(script, sizeof(script), "%s/tests/unit/httpc_server.py", root != NULL ? root : ".");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        execl("/usr/bin/python3", "python3", "-u", script, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[64] = {0};
    size_t len = 0;
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
        cr_assert_gt(poll(&pfd, 1, 15000), 0, "test server did not start");
        ssize_t r = read(fds[0], line + len, sizeof(line) - 1 - len);
        cr_assert_gt(r, 0);
        len += (size_t)r;
    }
    close(fds[0]);
    cr_assert_eq(sscanf(line, "%d", &s->port), 1);
    s->pid = pid;
}

static void pysrv_stop(struct pysrv *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
}

static const char *url(char *buf, size_t cap, int port, const char *path)
{
    snprintf(buf, cap, "http://127.0.0.1:%d%s", port, path);
    return buf;
}

Test(agent_cli, help_and_usage_errors)
{
    struct run r;
    const char *help[] = {"--help", NULL};
    run_agent(&r, help);
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(strstr(r.out, "Usage: tam-agent"));
    const char *bad[] = {"load", "--bogus", NULL};
    run_agent(&r, bad);
    cr_assert_eq(r.status, 2);
    const char *nourl[] = {"load", NULL};
    run_agent(&r, nourl);
    cr_assert_eq(r.status, 2);
    const char *badnum[] = {"load", "--url", "http://127.0.0.1:1/", "--devices", "x", NULL};
    run_agent(&r, badnum);
    cr_assert_eq(r.status, 2);
}

Test(agent_cli, load_json_shape_closed_loop)
{
    struct pysrv s;
    pysrv_start(&s);
    char u[128];
    struct run r;
    const char *args[] = {"load",        "--url",      url(u, sizeof(u), s.port, "/empty"),
                          "--devices",   "10",         "--concurrency",
                          "4",           "--duration", "1",
                          "--no-verify", "--json",     NULL};
    json_t *j = run_json(&r, args);
    cr_assert_eq(r.status, 0);
    cr_assert_gt(jnum(j, "sessions_per_s"), 10);
    cr_assert_gt(jnum(j, "messages_per_s"), 10);
    cr_assert_eq(jnum(j, "sessions_failed"), 0);
    cr_assert_eq(jnum(j, "concurrency"), 4);
    /* The client's own CPU over the window: some, and at most all cores for the window. */
    cr_assert_gt(jnum(j, "cpu_s"), 0);
    cr_assert_leq(jnum(j, "cpu_s"), jnum(j, "window_s") * (double)sysconf(_SC_NPROCESSORS_ONLN));
    json_t *lat = json_object_get(j, "latency_ms");
    static const char *types[] = {"query_request", "query_response", "update_result", "error",
                                  "session"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(types); i++) {
        json_t *t = json_object_get(lat, types[i]);
        cr_assert_not_null(t, "%s", types[i]);
        static const char *ps[] = {"p50", "p90", "p99", "p999"};
        for (size_t k = 0; k < 4; k++) {
            (void)jnum(t, ps[k]);
        }
    }
    json_t *qr = json_object_get(lat, "query_request");
    cr_assert_gt(jnum(qr, "count"), 10);
    cr_assert_leq(jnum(qr, "p50"), jnum(qr, "p99"));
    cr_assert_leq(jnum(qr, "p99"), jnum(qr, "p999"));
    cr_assert(json_is_object(json_object_get(j, "errors")));
    cr_assert_eq(json_object_size(json_object_get(j, "errors")), 0);
    /* Keep-alive: 4 connections served every session. */
    json_t *counts = json_object_get(j, "counts");
    cr_assert_leq(jnum(counts, "conns_opened"), 4);
    json_decref(j);
    pysrv_stop(&s);
}

Test(agent_cli, rate_limit_is_accurate)
{
    struct pysrv s;
    pysrv_start(&s);
    char u[128];
    struct run r;
    const char *args[] = {"load",        "--url",      url(u, sizeof(u), s.port, "/empty"),
                          "--devices",   "20",         "--rate",
                          "100",         "--duration", "2",
                          "--no-verify", "--json",     NULL};
    json_t *j = run_json(&r, args);
    cr_assert_eq(r.status, 0);
    double n = jnum(j, "sessions_ok");
    double rate = jnum(j, "sessions_per_s");
    cr_assert(n >= 190 && n <= 202, "sessions %.0f", n);
    cr_assert(rate >= 95 && rate <= 101, "rate %.1f", rate);
    json_decref(j);
    pysrv_stop(&s);
}

Test(agent_cli, timeouts_4xx_3xx_and_content_type)
{
    struct pysrv s;
    pysrv_start(&s);
    char u[128];
    struct run r;
    const char *slow[] = {"load",
                          "--url",
                          url(u, sizeof(u), s.port, "/slow?ms=400"),
                          "--devices",
                          "1",
                          "--duration",
                          "0.2",
                          "--timeout-ms",
                          "100",
                          "--retries",
                          "0",
                          "--no-verify",
                          "--json",
                          NULL};
    json_t *j = run_json(&r, slow);
    cr_assert_eq(r.status, 1); /* no session succeeded */
    cr_assert_geq(jerr(j, "timeout"), 1);
    cr_assert_eq(jnum(j, "sessions_ok"), 0);
    json_decref(j);

    const char *nf[] = {"load",      "--url",       url(u, sizeof(u), s.port, "/nothere"),
                        "--devices", "1",           "--duration",
                        "0.2",       "--no-verify", "--json",
                        NULL};
    j = run_json(&r, nf);
    cr_assert_geq(jerr(j, "http_4xx"), 1);
    cr_assert_eq(jnum(json_object_get(j, "counts"), "retries"), 0); /* 4xx: never retried */
    json_decref(j);

    const char *redir[] = {"load",      "--url",       url(u, sizeof(u), s.port, "/redirect"),
                           "--devices", "1",           "--duration",
                           "0.2",       "--no-verify", "--json",
                           NULL};
    j = run_json(&r, redir);
    cr_assert_geq(jerr(j, "http_3xx"), 1); /* redirects are not followed */
    json_decref(j);

    const char *big[] = {"load",      "--url",       url(u, sizeof(u), s.port, "/big?n=10"),
                         "--devices", "1",           "--duration",
                         "0.2",       "--no-verify", "--json",
                         NULL};
    j = run_json(&r, big);
    cr_assert_geq(jerr(j, "content_type"), 1);
    json_decref(j);
    pysrv_stop(&s);
}

Test(agent_cli, idle_connections_are_held)
{
    struct pysrv s;
    pysrv_start(&s);
    char u[128];
    struct run r;
    const char *args[] = {
        "idle",   "--url", url(u, sizeof(u), s.port, "/"), "--connections", "25", "--duration", "1",
        "--json", NULL};
    json_t *j = run_json(&r, args);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(jnum(j, "established"), 25);
    cr_assert_eq(jnum(j, "open_at_end"), 25);
    cr_assert_eq(jnum(j, "failed"), 0);
    json_decref(j);
    pysrv_stop(&s);

    /* Nobody listening: every connect fails, exit status 1. */
    const char *refused[] = {"idle",          "--url",  "http://127.0.0.1:1/",
                             "--connections", "3",      "--duration",
                             "0.1",           "--json", NULL};
    j = run_json(&r, refused);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(jnum(j, "failed"), 3);
    cr_assert_eq(jerr(j, "connect"), 3);
    json_decref(j);
}

Test(agent_cli, conformance_against_a_non_tam_fails_cleanly)
{
    struct pysrv s;
    pysrv_start(&s);
    char u[128], key[4096];
    snprintf(key, sizeof(key), "%s", tu_vector_path("tam_p256.pub.pem"));
    struct run r;
    const char *args[] = {
        "conformance", "--url",  url(u, sizeof(u), s.port, "/empty"),       "--tam-key",
        key,           "--only", "first_contact,replay,unknown_error_code", NULL};
    run_agent(&r, args);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.out, "FAIL first_contact: empty POST answered with HTTP 204"), "%s",
                       r.out);
    cr_assert_not_null(strstr(r.out, "\n0 passed, 3 failed\n"), "%s", r.out);
    pysrv_stop(&s);
}

Test(agent_cli, keys_export_is_reproducible_with_a_seed)
{
    char d1[] = "/tmp/tam-agent-keys-XXXXXX";
    char d2[] = "/tmp/tam-agent-keys-XXXXXX";
    cr_assert_not_null(mkdtemp(d1));
    cr_assert_not_null(mkdtemp(d2));
    struct run r;
    const char *a1[] = {"keys",  "--seed", "fleet-1",       "--devices", "3",
                        "--alg", "mixed",  "--export-keys", d1,          NULL};
    const char *a2[] = {"keys",  "--seed", "fleet-1",       "--devices", "3",
                        "--alg", "mixed",  "--export-keys", d2,          NULL};
    run_agent(&r, a1);
    cr_assert_eq(r.status, 0);
    run_agent(&r, a2);
    cr_assert_eq(r.status, 0);
    static const char *files[] = {"devices.txt", "device-000000.pub.pem", "device-000002.pub.pem",
                                  "attester.pub.pem", "attester.priv.pem"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(files); i++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof(p1), "%s/%s", d1, files[i]);
        snprintf(p2, sizeof(p2), "%s/%s", d2, files[i]);
        size_t l1, l2;
        uint8_t *b1 = tu_read_file(p1, &l1);
        uint8_t *b2 = tu_read_file(p2, &l2);
        cr_assert(l1 == l2 && memcmp(b1, b2, l1) == 0, "%s differs", files[i]);
        if (i == 1) {
            struct tam_key *k = NULL;
            cr_assert_eq(tam_key_from_pem((const char *)b1, l1, &k), TAM_OK);
            tam_key_destroy(k);
        }
        tam_free(b1);
        tam_free(b2);
        unlink(p1);
        unlink(p2);
    }
    rmdir(d1);
    rmdir(d2);
}

/*
 * ---- a tiny in-test HTTP server (a thread, real sockets) ----
 * Mode FLAKY answers 503 to the first fail_first requests (-1: always), then 204.
 * Mode ADMIN plays the admin API: it records every request and answers device
 * registrations with 201 {"kid"} (409 "already registered" for the second one) and
 * GET /v1/tenants/demo with the tenant (TAM key, manifest key, numbering "draft").
 */

enum { FLAKY, ADMIN };

struct flaky {
    int mode;
    int lfd;
    int port;
    int fail_first;
    int nreq;
    double t_ms[16];
    char line[16][128];  /* request lines */
    char auth[16][128];  /* Authorization headers */
    char body[16][1024]; /* request bodies */
    pthread_t th;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The value of a header in a request head (case-insensitive name), copied into out. */
static void head_value(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            v += strspn(v, " ");
            size_t len = strcspn(v, "\r");
            len = len < cap - 1 ? len : cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
    }
}

/* Reads one request: head into head[], the Content-Length body into body[]. */
static bool read_request(int fd, char *head, size_t hcap, char *body, size_t bcap)
{
    size_t len = 0;
    while (len < hcap - 1) {
        ssize_t n = read(fd, head + len, 1);
        if (n <= 0) {
            return false;
        }
        len++;
        head[len] = '\0';
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }
    char cl[32];
    head_value(head, "Content-Length", cl, sizeof(cl));
    size_t want = (size_t)strtoul(cl, NULL, 10);
    size_t got = 0;
    while (got < want) {
        char sink[512];
        char *dst = got < bcap - 1 ? body + got : sink;
        size_t room = got < bcap - 1 ? bcap - 1 - got : sizeof(sink);
        ssize_t n = read(fd, dst, want - got < room ? want - got : room);
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    body[got < bcap - 1 ? got : bcap - 1] = '\0';
    return true;
}

/* The admin answers; the TAM key is tests/vectors/tam_p256.pub.pem. */
static void admin_answer(struct flaky *f, const char *line, char *out, size_t cap)
{
    static const char reg[] = "{\"kid\":\"00\",\"status\":\"registered\"}";
    static const char dup[] = "{\"status\":409,\"detail\":\"device x is already registered\"}";
    if (strncmp(line, "POST /v1/tenants/demo/devices ", 30) == 0) {
        bool second = strstr(f->line[0], "devices") != NULL && f->nreq == 2;
        const char *b = second ? dup : reg;
        snprintf(out, cap,
                 "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 second ? "409 Conflict" : "201 Created", strlen(b), b);
        return;
    }
    if (strncmp(line, "GET /v1/tenants/demo ", 21) == 0) {
        size_t plen;
        char *pem = tu_load_text("tam_p256.pub.pem", &plen);
        json_t *k = json_pack("{s:s}", "public_pem", pem);
        json_t *t = json_pack("{s:s, s:s, s:[O], s:[O]}", "id", "demo", "numbering", "draft",
                              "tam_keys", k, "manifest_keys", k);
        char *js = json_dumps(t, JSON_COMPACT);
        snprintf(out, cap,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 strlen(js), js);
        free(js);
        json_decref(t);
        json_decref(k);
        tam_free(pem);
        return;
    }
    snprintf(out, cap, "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}

static void *flaky_main(void *arg)
{
    struct flaky *f = arg;
    static char head[8192], body[8192], out[16384];
    for (;;) {
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0) {
            return NULL;
        }
        while (read_request(c, head, sizeof(head), body, sizeof(body))) {
            int i = f->nreq < 16 ? f->nreq : 15;
            f->t_ms[i] = mono_ms();
            size_t ll = strcspn(head, "\r");
            snprintf(f->line[i], sizeof(f->line[i]), "%.*s", (int)ll, head);
            head_value(head, "Authorization", f->auth[i], sizeof(f->auth[i]));
            size_t bl = strlen(body);
            bl = bl < sizeof(f->body[i]) - 1 ? bl : sizeof(f->body[i]) - 1;
            memcpy(f->body[i], body, bl);
            f->body[i][bl] = '\0';
            f->nreq++;
            if (f->mode == ADMIN) {
                admin_answer(f, f->line[i], out, sizeof(out));
            } else {
                bool fail = f->fail_first < 0 || f->nreq <= f->fail_first;
                snprintf(out, sizeof(out), "%s",
                         fail ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                              : "HTTP/1.1 204 No Content\r\n\r\n");
            }
            if (write(c, out, strlen(out)) < 0 || f->mode == ADMIN) {
                break; /* the admin side serves one request per connection */
            }
        }
        close(c);
    }
}

static void flaky_start(struct flaky *f, int mode, int fail_first)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->fail_first = fail_first;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(f->lfd, 16), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &len), 0);
    f->port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&f->th, NULL, flaky_main, f), 0);
}

static void flaky_stop(struct flaky *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    close(f->lfd);
    pthread_join(f->th, NULL);
}

Test(agent_cli, retries_5xx_with_exponential_backoff)
{
    struct flaky f;
    flaky_start(&f, FLAKY, -1);
    char u[128];
    struct run r;
    const char *args[] = {"load",
                          "--url",
                          url(u, sizeof(u), f.port, "/tam"),
                          "--devices",
                          "1",
                          "--duration",
                          "0.05",
                          "--retries",
                          "3",
                          "--backoff-ms",
                          "100",
                          "--backoff-max-ms",
                          "1000",
                          "--no-verify",
                          "--json",
                          NULL};
    json_t *j = run_json(&r, args);
    flaky_stop(&f);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(jerr(j, "http_5xx"), 1);
    cr_assert_eq(jnum(json_object_get(j, "counts"), "retries"), 3);
    cr_assert_eq(f.nreq, 4, "requests %d", f.nreq);
    /* Delays in [d/2, d] for d = 100, 200, 400 ms: never earlier; later only by scheduling. */
    double lo[3] = {45, 95, 195}, hi[3] = {300, 450, 700};
    for (int i = 0; i < 3; i++) {
        double gap = f.t_ms[i + 1] - f.t_ms[i];
        cr_assert(gap >= lo[i] && gap <= hi[i], "retry %d after %.1f ms", i + 1, gap);
    }
    json_decref(j);

    /* Two 503s, then success: the session succeeds after 2 retries. */
    flaky_start(&f, FLAKY, 2);
    const char *args2[] = {"load",
                           "--url",
                           url(u, sizeof(u), f.port, "/tam"),
                           "--devices",
                           "1",
                           "--duration",
                           "0.05",
                           "--backoff-ms",
                           "10",
                           "--no-verify",
                           "--json",
                           NULL};
    j = run_json(&r, args2);
    flaky_stop(&f);
    cr_assert_eq(r.status, 0);
    cr_assert_eq(jnum(j, "sessions_failed"), 0);
    cr_assert_geq(jnum(j, "sessions_ok"), 1);
    cr_assert_eq(jnum(json_object_get(j, "counts"), "retries"), 2);
    cr_assert_eq(json_object_size(json_object_get(j, "errors")), 0);
    json_decref(j);
}

Test(agent_cli, enrollment_and_tenant_from_the_admin_api)
{
    struct flaky adm;
    flaky_start(&adm, ADMIN, 0);
    struct pysrv s;
    pysrv_start(&s);
    char tok[] = "/tmp/tam-agent-token-XXXXXX";
    int fd = mkstemp(tok);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "  s3cret-token\n", 15), 15);
    close(fd);
    char u[128], a[128];
    snprintf(a, sizeof(a), "http://127.0.0.1:%d", adm.port);
    struct run r;
    const char *args[] = {"load",    "--url",     url(u, sizeof(u), s.port, "/empty"),
                          "--admin", a,           "--token-file",
                          tok,       "--enroll",  "--tenant",
                          "demo",    "--devices", "3",
                          "--label", "group=a",   "--duration",
                          "0.2",     "--json",    NULL};
    json_t *j = run_json(&r, args);
    flaky_stop(&adm);
    pysrv_stop(&s);
    unlink(tok);
    cr_assert_eq(adm.nreq, 4, "admin requests %d", adm.nreq);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(adm.line[i], "POST /v1/tenants/demo/devices HTTP/1.1");
        cr_assert_str_eq(adm.auth[i], "Bearer s3cret-token");
        json_t *b = json_loads(adm.body[i], 0, NULL);
        cr_assert_not_null(b, "%s", adm.body[i]);
        const char *pem = json_string_value(json_object_get(b, "public_pem"));
        struct tam_key *k = NULL;
        cr_assert_eq(tam_key_from_pem(pem, strlen(pem), &k), TAM_OK);
        cr_assert_not(tam_key_has_private(k));
        tam_key_destroy(k);
        json_t *labels = json_object_get(b, "labels");
        cr_assert(json_is_array(labels) && json_array_size(labels) == 1);
        cr_assert_str_eq(json_string_value(json_array_get(labels, 0)), "group=a");
        json_decref(b);
    }
    /* No --tam-key, --tc-signer-key or --numbering: all three came from the tenant. */
    cr_assert_str_eq(adm.line[3], "GET /v1/tenants/demo HTTP/1.1");
    cr_assert_str_eq(json_string_value(json_object_get(j, "numbering")), "draft");
    cr_assert_eq(r.status, 0);
    json_decref(j);
}
