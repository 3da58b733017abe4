#include <criterion/criterion.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/cose.h"
#include "tam/err.h"
#include "tam/job.h"
#include "tam/session.h"
#include "testutil.h"

static struct tam_key *load_key(const char *name)
{
    size_t len;
    char *pem = tu_load_text(name, &len);
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(pem, len, &key), TAM_OK, "%s", name);
    tam_free(pem);
    return key;
}

static struct tam_tenant *demo_tenant(enum tam_teep_numbering num)
{
    struct tam_tenant *t = tam_tenant_create("demo");
    cr_assert_not_null(t);
    t->numbering = num;
    t->tam_keys[0] = load_key("tam_p256.priv.pem");
    t->tam_keys[1] = load_key("tam_ed25519.priv.pem");
    return t;
}

static void fill_rand(uint8_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r[i] = (uint8_t)(i * 7 + 1);
    }
}

Test(tenant, ids_and_algorithms)
{
    cr_assert(tam_tenant_id_valid("demo", 4));
    cr_assert(tam_tenant_id_valid("sp-1_a", 6));
    cr_assert_not(tam_tenant_id_valid("", 0));
    cr_assert_not(tam_tenant_id_valid("..", 2));
    cr_assert_not(tam_tenant_id_valid("a/b", 3));
    cr_assert_not(tam_tenant_id_valid("A", 1));
    cr_assert_not(tam_tenant_id_valid("-x", 2));
    char longid[80];
    memset(longid, 'a', sizeof(longid));
    cr_assert_not(tam_tenant_id_valid(longid, 64));
    cr_assert_null(tam_tenant_create("../x"));
    struct tam_tenant *t = demo_tenant(TAM_TEEP_RFC);
    cr_assert_eq(tam_tenant_wire_alg(t, TAM_KEY_P256), TAM_ALG_ESP256);
    t->legacy_alg_ids = true;
    cr_assert_eq(tam_tenant_wire_alg(t, TAM_KEY_ED25519), TAM_ALG_EDDSA);
    int wire = 0;
    cr_assert_eq(tam_tenant_key_for_alg(t, TAM_ALG_ES256, &wire), t->tam_keys[0]);
    cr_assert_eq(wire, TAM_ALG_ES256);
    cr_assert_eq(tam_tenant_key_for_alg(t, TAM_ALG_ED25519, &wire), t->tam_keys[1]);
    cr_assert_null(tam_tenant_key_for_alg(t, -35, &wire));
    tam_tenant_unref(tam_tenant_ref(t));
    tam_tenant_unref(t);
}

Test(session, record_round_trip)
{
    struct tam_tenant *t = demo_tenant(TAM_TEEP_DRAFT);
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    fill_rand(rand, sizeof(rand));
    struct tam_sess s;
    tam_sess_new_query(&s, t, rand, 1000);
    cr_assert_eq(s.challenge_len, 32);
    cr_assert_eq(s.expires_ms, 1000 + 300 * 1000);
    cr_assert_eq(s.data_items, TAM_TEEP_DATA_ATTESTATION | TAM_TEEP_DATA_TRUSTED_COMPONENTS);
    s.kind = TAM_SESS_UPDATE;
    s.has_device = true;
    memset(s.device_kid, 0x42, TAM_KID_LEN);
    s.alg = TAM_ALG_ED25519;
    s.n_manifests = 2;
    memset(s.manifest_digest[1], 0x77, TAM_SHA256_LEN);
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_sess_encode(&s, &b), TAM_OK);
    struct tam_sess d;
    cr_assert_eq(tam_sess_decode(b.data, b.len, &d, NULL), TAM_OK);
    cr_assert_eq(memcmp(&d, &s, sizeof(s)), 0, "decoded record equals the original");
    for (size_t cut = 0; cut < b.len; cut++) {
        const char *why = NULL;
        cr_assert_neq(tam_sess_decode(b.data, cut, &d, &why), TAM_OK);
    }
    tam_buf_finish(&b);
    tam_tenant_unref(t);
}

/* The first QueryRequest verifies with either TAM key and decodes to the session's values. */
Test(session, first_query_request_signed_for_both_suites)
{
    enum tam_teep_numbering nums[] = {TAM_TEEP_RFC, TAM_TEEP_DRAFT, TAM_TEEP_DRAFT12};
    for (size_t n = 0; n < 3; n++) {
        struct tam_tenant *t = demo_tenant(nums[n]);
        t->sign1_only = nums[n] == TAM_TEEP_DRAFT12;
        t->legacy_alg_ids = nums[n] == TAM_TEEP_DRAFT12;
        uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
        fill_rand(rand, sizeof(rand));
        struct tam_sess s;
        tam_sess_new_query(&s, t, rand, 0);
        struct tam_teep_msg qr;
        tam_sess_query_request(&s, &qr);
        struct tam_buf out;
        tam_buf_init(&out, 8192);
        cr_assert_eq(tam_sess_sign_query_request(t, &qr, &out), TAM_OK);
        struct tam_cose_msg m;
        cr_assert_eq(tam_cose_parse(out.data, out.len, &m, NULL), TAM_OK);
        if (t->sign1_only) {
            cr_assert_eq(m.kind, TAM_COSE_SIGN1);
            cr_assert_eq(m.signers[0].alg, TAM_ALG_ES256);
        } else {
            cr_assert_eq(m.kind, TAM_COSE_SIGN);
            cr_assert_eq(tam_cose_verify_any(&m, t->tam_keys[1], NULL), TAM_OK);
        }
        cr_assert_eq(tam_cose_verify_any(&m, t->tam_keys[0], NULL), TAM_OK);
        struct tam_arena arena;
        tam_arena_init(&arena, 1024, 1 << 20);
        struct tam_teep_msg d;
        cr_assert_eq(tam_teep_decode(m.payload.ptr, m.payload.len, nums[n], &arena, &d, NULL),
                     TAM_OK);
        cr_assert_eq(d.type, TAM_TEEP_QUERY_REQUEST);
        cr_assert_eq(d.token.len, TAM_TOKEN_LEN);
        cr_assert_eq(memcmp(d.token.ptr, s.token, TAM_TOKEN_LEN), 0);
        cr_assert_eq(d.challenge.len, s.challenge_len);
        cr_assert_eq(d.data_item_requested, 3);
        tam_arena_finish(&arena);
        tam_buf_finish(&out);
        tam_tenant_unref(t);
    }
}

Test(session, answers_accepted_and_dropped)
{
    struct tam_tenant *t = demo_tenant(TAM_TEEP_RFC);
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    fill_rand(rand, sizeof(rand));
    struct tam_sess s;
    tam_sess_new_query(&s, t, rand, 0);
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, TAM_TEEP_QUERY_RESPONSE);
    m.has_token = true;
    m.token = tam_bytes_of(s.token, TAM_TOKEN_LEN);
    m.has_attestation_payload = true;
    m.has_tc_list = true;
    const char *why = NULL;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_OK);
    cr_assert_eq(tam_sess_check_answer(&s, &m, s.expires_ms, &why), TAM_EEXPIRED);
    m.has_attestation_payload = false;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_ETEEP);
    cr_assert_str_eq(why, "attestation requested but no attestation-payload");
    m.type = TAM_TEEP_SUCCESS;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_ETEEP_TYPE);
    m.type = TAM_TEEP_ERROR;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_OK);
    uint8_t other[TAM_TOKEN_LEN] = {0};
    m.token = tam_bytes_of(other, TAM_TOKEN_LEN);
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_ETEEP_TYPE);
    s.kind = TAM_SESS_UPDATE;
    m.token = tam_bytes_of(s.token, TAM_TOKEN_LEN);
    m.type = TAM_TEEP_SUCCESS;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_OK);
    m.type = TAM_TEEP_QUERY_RESPONSE;
    cr_assert_eq(tam_sess_check_answer(&s, &m, 10, &why), TAM_ETEEP_TYPE);
    tam_tenant_unref(t);
}

Test(job, job_and_result_round_trip)
{
    struct tam_job j = {
        .kind = TAM_JOB_QUERY_RESPONSE, .received_ms = 12345, .verified = true, .has_device = true};
    memset(j.id, 9, TAM_JOB_ID_LEN);
    memset(j.device_kid, 3, TAM_KID_LEN);
    memcpy(j.tenant, "demo", 5);
    memcpy(j.reply_to, "tam:{gw:1}:results", 19);
    j.message = tam_bytes_of("\xd2\x84", 2);
    j.session = tam_bytes_of("\xa0", 1);
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_job_encode(&j, &b), TAM_OK);
    struct tam_job d;
    cr_assert_eq(tam_job_decode(b.data, b.len, &d, NULL), TAM_OK);
    cr_assert_eq(memcmp(d.id, j.id, TAM_JOB_ID_LEN), 0);
    cr_assert_str_eq(d.tenant, "demo");
    cr_assert_str_eq(d.reply_to, "tam:{gw:1}:results");
    cr_assert(d.verified && d.has_device);
    cr_assert_eq(d.message.len, 2);
    cr_assert_eq(d.received_ms, 12345);
    for (size_t cut = 0; cut < b.len; cut++) {
        cr_assert_neq(tam_job_decode(b.data, cut, &d, NULL), TAM_OK);
    }
    struct tam_job_result r = {.status = 200};
    memset(r.id, 9, TAM_JOB_ID_LEN);
    r.body = tam_bytes_of("abc", 3);
    r.outcome = tam_bytes_of("update", 6);
    tam_buf_reset(&b);
    cr_assert_eq(tam_job_result_encode(&r, &b), TAM_OK);
    struct tam_job_result rd;
    cr_assert_eq(tam_job_result_decode(b.data, b.len, &rd, NULL), TAM_OK);
    cr_assert_eq(rd.status, 200);
    cr_assert_eq(rd.body.len, 3);
    r.status = 42;
    tam_buf_reset(&b);
    cr_assert_eq(tam_job_result_encode(&r, &b), TAM_OK);
    cr_assert_eq(tam_job_result_decode(b.data, b.len, &rd, NULL), TAM_EINVAL, "bad status");
    tam_buf_finish(&b);
}
