#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/err.h"
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

struct vec {
    uint8_t *bytes;
    size_t len;
    struct tam_cose_msg msg;
};

static void parse_vector(const char *name, struct vec *v)
{
    v->bytes = tu_load_hex(name, &v->len);
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(v->bytes, v->len, &v->msg, &why), TAM_OK, "%s: %s", name, why);
}

static const char *const sign1_vectors[][3] = {
    /* vector, signing key (public), expected alg */
    {"derived_sign1_esp256_teep_query_request", "tam_p256.pub.pem", "-9"},
    {"derived_sign1_esp256_teep26_query_request", "tam_p256.pub.pem", "-9"},
    {"derived_sign1_ed25519_teep_query_request", "tam_ed25519.pub.pem", "-19"},
    {"derived_sign1_ed25519_teep26_query_request", "tam_ed25519.pub.pem", "-19"},
    {"derived_sign1_ed25519_teep_update", "tam_ed25519.pub.pem", "-19"},
    {"derived_sign1_ed25519_teep26_update", "tam_ed25519.pub.pem", "-19"},
};

Test(cose, derived_sign1_vectors_verify_and_tbs_matches)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(sign1_vectors); i++) {
        char name[128];
        snprintf(name, sizeof(name), "%s.hex", sign1_vectors[i][0]);
        struct vec v;
        parse_vector(name, &v);
        cr_assert_eq(v.msg.kind, TAM_COSE_SIGN1);
        cr_assert(v.msg.tagged);
        cr_assert_eq(v.msg.signers[0].alg, (int)strtol(sign1_vectors[i][2], NULL, 10));
        struct tam_key *key = load_key(sign1_vectors[i][1]);
        cr_assert_eq(v.msg.signers[0].kid.len, TAM_KID_LEN);
        cr_assert_eq(memcmp(v.msg.signers[0].kid.ptr, tam_key_kid(key), TAM_KID_LEN), 0);

        snprintf(name, sizeof(name), "%s.tbs.hex", sign1_vectors[i][0]);
        size_t tlen;
        uint8_t *tbs = tu_load_hex(name, &tlen);
        struct tam_buf b;
        tam_buf_init(&b, 1 << 20);
        cr_assert_eq(tam_cose_tbs(&b, &v.msg, 0, NULL, NULL), TAM_OK);
        cr_assert_eq(b.len, tlen);
        cr_assert_eq(memcmp(b.data, tbs, tlen), 0, "%s: ToBeSigned bytes", name);

        cr_assert_eq(tam_cose_verify(&v.msg, 0, key, NULL, NULL), TAM_OK, "%s", name);
        cr_assert_eq(tam_cose_verify_any(&v.msg, key, NULL), TAM_OK);
        /* The other TAM key must not verify it. */
        struct tam_key *other = load_key("agent_p256.pub.pem");
        cr_assert_neq(tam_cose_verify_any(&v.msg, other, NULL), TAM_OK);
        /* A flipped payload byte breaks the signature. */
        ((uint8_t *)v.msg.payload.ptr)[3] ^= 1;
        cr_assert_eq(tam_cose_verify(&v.msg, 0, key, NULL, NULL), TAM_ESIG);
        tam_key_destroy(other);
        tam_key_destroy(key);
        tam_buf_finish(&b);
        tam_free(tbs);
        tam_free(v.bytes);
    }
}

Test(cose, ed25519_sign1_is_reproduced_byte_exact)
{
    const char *names[] = {"derived_sign1_ed25519_teep26_query_request.hex",
                           "derived_sign1_ed25519_teep_update.hex"};
    struct tam_key *key = load_key("tam_ed25519.priv.pem");
    for (size_t i = 0; i < 2; i++) {
        struct vec v;
        parse_vector(names[i], &v);
        struct tam_buf out;
        tam_buf_init(&out, 1 << 20);
        struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
        cr_assert_eq(tam_cose_sign1(&out, key, TAM_ALG_ED25519, &v.msg.payload, &opts), TAM_OK);
        cr_assert_eq(out.len, v.len);
        cr_assert_eq(memcmp(out.data, v.bytes, v.len), 0, "%s", names[i]);
        tam_buf_finish(&out);
        tam_free(v.bytes);
    }
    tam_key_destroy(key);
}

Test(cose, cose_sign_two_signers_vectors)
{
    const char *names[] = {"derived_sign_esp256_ed25519_teep_query_request.hex",
                           "derived_sign_esp256_ed25519_teep26_query_request.hex"};
    struct tam_key *p256 = load_key("tam_p256.pub.pem");
    struct tam_key *ed = load_key("tam_ed25519.pub.pem");
    for (size_t i = 0; i < 2; i++) {
        struct vec v;
        parse_vector(names[i], &v);
        cr_assert_eq(v.msg.kind, TAM_COSE_SIGN);
        cr_assert_eq(v.msg.nsigners, 2);
        cr_assert_eq(v.msg.signers[0].alg, TAM_ALG_ESP256);
        cr_assert_eq(v.msg.signers[1].alg, TAM_ALG_ED25519);
        cr_assert_eq(tam_cose_verify(&v.msg, 0, p256, NULL, NULL), TAM_OK);
        cr_assert_eq(tam_cose_verify(&v.msg, 1, ed, NULL, NULL), TAM_OK);
        cr_assert_eq(tam_cose_verify(&v.msg, 0, ed, NULL, NULL), TAM_ECOSE_ALG);
        cr_assert_eq(tam_cose_verify_any(&v.msg, ed, NULL), TAM_OK);
        cr_assert_eq(tam_cose_verify_any(&v.msg, p256, NULL), TAM_OK);
        tam_free(v.bytes);
    }
    tam_key_destroy(p256);
    tam_key_destroy(ed);
}

Test(cose, legacy_libteep_es256_vectors_verify)
{
    const char *const v[][2] = {
        {"legacy_libteep_query_request_cose.hex", "tam_p256.pub.pem"},
        {"legacy_libteep_update_cose.hex", "tam_p256.pub.pem"},
        {"legacy_libteep_query_response_cose.hex", "agent_p256.pub.pem"},
        {"legacy_libteep_teep_success_cose.hex", "agent_p256.pub.pem"},
        {"legacy_libteep_teep_error_cose.hex", "agent_p256.pub.pem"},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(v); i++) {
        struct vec m;
        parse_vector(v[i][0], &m);
        cr_assert_eq(m.msg.signers[0].alg, TAM_ALG_ES256);
        cr_assert_eq(m.msg.signers[0].kid.len, 0);
        struct tam_key *key = load_key(v[i][1]);
        cr_assert_eq(tam_cose_verify_any(&m.msg, key, NULL), TAM_OK, "%s", v[i][0]);
        tam_key_destroy(key);
        tam_free(m.bytes);
    }
}

Test(cose, sign_verify_round_trips)
{
    const char *privs[] = {"tam_p256.priv.pem", "tam_ed25519.priv.pem"};
    const int algs[][2] = {{TAM_ALG_ESP256, TAM_ALG_ES256}, {TAM_ALG_ED25519, TAM_ALG_EDDSA}};
    struct tam_bytes payload = tam_bytes_of("hello teep", 10);
    for (int k = 0; k < 2; k++) {
        struct tam_key *key = load_key(privs[k]);
        for (int a = 0; a < 2; a++) {
            for (int flags = 0; flags < 4; flags++) {
                struct tam_cose_sign_opts opts = {.tagged = flags & 1, .detached = flags & 2};
                struct tam_buf out;
                tam_buf_init(&out, 4096);
                cr_assert_eq(tam_cose_sign1(&out, key, algs[k][a], &payload, &opts), TAM_OK);
                struct tam_cose_msg m;
                cr_assert_eq(tam_cose_parse(out.data, out.len, &m, NULL), TAM_OK);
                cr_assert_eq(m.tagged, opts.tagged);
                cr_assert_eq(m.detached, opts.detached);
                cr_assert_eq(m.signers[0].alg, algs[k][a]);
                cr_assert_eq(tam_cose_verify(&m, 0, key, &payload, NULL), TAM_OK);
                struct tam_bytes wrong = tam_bytes_of("hello teeq", 10);
                if (opts.detached) {
                    cr_assert_eq(tam_cose_verify(&m, 0, key, &wrong, NULL), TAM_ESIG);
                    cr_assert_eq(tam_cose_verify(&m, 0, key, NULL, NULL), TAM_EINVAL);
                }
                tam_buf_finish(&out);
            }
        }
        tam_key_destroy(key);
    }
}

Test(cose, cose_sign_creation_verifies_for_each_key)
{
    struct tam_key *keys[2] = {load_key("tam_p256.priv.pem"), load_key("tam_ed25519.priv.pem")};
    const int algs[2] = {TAM_ALG_ESP256, TAM_ALG_ED25519};
    struct tam_bytes payload = tam_bytes_of("\x82\x01\xa0", 3);
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    cr_assert_eq(tam_cose_sign(&out, (const struct tam_key *const *)keys, algs, 2, &payload, &opts),
                 TAM_OK);
    cr_assert_eq(out.data[0], 0xd8);
    cr_assert_eq(out.data[1], 98);
    struct tam_cose_msg m;
    cr_assert_eq(tam_cose_parse(out.data, out.len, &m, NULL), TAM_OK);
    cr_assert_eq(m.nsigners, 2);
    cr_assert_eq(m.body_protected.len, 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(tam_cose_verify(&m, (unsigned)i, keys[i], NULL, NULL), TAM_OK);
        cr_assert_eq(memcmp(m.signers[i].kid.ptr, tam_key_kid(keys[i]), TAM_KID_LEN), 0);
    }
    tam_buf_finish(&out);
    tam_key_destroy(keys[0]);
    tam_key_destroy(keys[1]);
}

/* Parses a hex message and returns tam_cose_parse's result; the reason must be given. */
static int parse_rc(const char *hex)
{
    size_t len;
    uint8_t *b = tu_hex(hex, &len);
    struct tam_cose_msg m;
    const char *why = NULL;
    int err = tam_cose_parse(b, len, &m, &why);
    if (err != TAM_OK) {
        cr_assert_not_null(why, "%s", hex);
    }
    tam_free(b);
    return err;
}

Test(cose, structural_rules)
{
    /* 18([<<{1:-9}>>, {}, h'01', h'00']) is fine. */
    cr_assert_eq(parse_rc("d2 84 43a10128 a0 4101 4100"), TAM_OK);
    cr_assert_eq(parse_rc("84 43a10128 a0 4101 4100"), TAM_OK, "untagged");
    cr_assert_eq(parse_rc("d1 84 43a10128 a0 4101 4100"), TAM_ECOSE, "COSE_Mac0 tag");
    cr_assert_eq(parse_rc("d2 83 43a10128 a0 4101"), TAM_ECOSE, "3 elements");
    cr_assert_eq(parse_rc("d2 84 a10128 a0 4101 4100"), TAM_ECOSE, "protected not bstr");
    cr_assert_eq(parse_rc("d2 84 4101 a0 4101 4100"), TAM_ECOSE, "protected not a map");
    cr_assert_eq(parse_rc("d2 84 43a10128 80 4101 4100"), TAM_ECOSE, "unprotected not a map");
    cr_assert_eq(parse_rc("d2 84 43a10128 a0 01 4100"), TAM_ECOSE, "payload int");
    cr_assert_eq(parse_rc("d2 84 43a10128 a0 4101 00"), TAM_ECOSE, "signature int");
    cr_assert_eq(parse_rc("d2 84 43a10128 a10128 4101 4100"), TAM_ECOSE, "alg in both buckets");
    cr_assert_eq(parse_rc("d2 84 40 a10128 4101 4100"), TAM_ECOSE, "alg unprotected");
    cr_assert_eq(parse_rc("d2 84 44a1016161 a0 4101 4100"), TAM_ECOSE_ALG, "alg text");
    cr_assert_eq(parse_rc("d2 84 43a10128 a10401 4101 4100"), TAM_ECOSE, "kid not bstr");
    /* crit [1] with alg: understood. crit [99] with 99 present: unknown -> reject. */
    cr_assert_eq(parse_rc("d2 84 46a201280281 01 a0 4101 4100"), TAM_OK);
    cr_assert_eq(parse_rc("d2 84 4aa3012802811863 1863 00 a0 4101 4100"), TAM_ECOSE_CRIT);
    cr_assert_eq(parse_rc("d2 84 45a2012802 80 a0 4101 4100"), TAM_ECOSE, "crit empty");
    cr_assert_eq(parse_rc("d2 84 43a10128 a1028101 4101 4100"), TAM_ECOSE, "crit unprotected");
    cr_assert_eq(parse_rc("d2 84 43a10128 a0 4101 4100 00"), TAM_ECOSE, "trailing byte");
    /* COSE_Sign with a malformed signer and with too many signers. */
    cr_assert_eq(parse_rc("d862 84 40 a0 4101 81 82 43a10128 a0"), TAM_ECOSE);
    cr_assert_eq(parse_rc("d862 84 40 a0 4101 80"), TAM_ECOSE, "no signers");
    cr_assert_eq(parse_rc("d862 84 40 a0 4101 85 8343a10128a04100 8343a10128a04100 "
                          "8343a10128a04100 8343a10128a04100 8343a10128a04100"),
                 TAM_ECOSE, "five signers");
}

Test(cose, signature_length_and_alg_mismatch)
{
    struct tam_key *key = load_key("tam_p256.priv.pem");
    struct tam_bytes payload = tam_bytes_of("x", 1);
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_cose_sign_opts opts = {.tagged = true};
    cr_assert_eq(tam_cose_sign1(&out, key, TAM_ALG_ED25519, &payload, &opts), TAM_ECOSE_ALG);
    tam_buf_reset(&out);
    cr_assert_eq(tam_cose_sign1(&out, key, TAM_ALG_ESP256, &payload, &opts), TAM_OK);
    struct tam_cose_msg m;
    cr_assert_eq(tam_cose_parse(out.data, out.len, &m, NULL), TAM_OK);
    m.signers[0].signature.len = 63;
    cr_assert_eq(tam_cose_verify(&m, 0, key, NULL, NULL), TAM_ESIG);
    tam_buf_finish(&out);
    tam_key_destroy(key);
}
