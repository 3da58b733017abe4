/* SUIT reports (draft-ietf-suit-report-18): decode, encode, sign, legacy layouts. */
#include <criterion/criterion.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/err.h"
#include "tam/suit.h"
#include "testutil.h"

static struct tam_arena arena;

static void setup(void)
{
    tam_arena_init(&arena, 4096, 1 << 20);
}

static void teardown(void)
{
    tam_arena_finish(&arena);
}

TestSuite(suit_report, .init = setup, .fini = teardown);

static struct tam_key *load_key(const char *name)
{
    size_t len;
    char *pem = tu_load_text(name, &len);
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(pem, len, &key), TAM_OK, "%s", name);
    tam_free(pem);
    return key;
}

static bool bytes_eq(struct tam_bytes b, const void *p, size_t n)
{
    return b.len == n && (n == 0 || memcmp(b.ptr, p, n) == 0);
}

static bool str_eq(struct tam_bytes b, const char *s)
{
    return bytes_eq(b, s, strlen(s));
}

static const uint8_t digest32[32] = {
    0xa7, 0xfd, 0x65, 0x93, 0xea, 0xc3, 0x2e, 0xb4, 0xbe, 0x57, 0x82, 0x78, 0xe6, 0x54, 0x0c, 0x5c,
    0x09, 0xcf, 0xd7, 0xd4, 0xd2, 0x34, 0x97, 0x30, 0x54, 0x83, 0x3b, 0x2b, 0x93, 0x03, 0x06, 0x09,
};

static const char ref_uri[] = "https://tam.example/personalisation";

static struct tam_suit_report success_report(void)
{
    struct tam_suit_report r = {
        .reference_uri = tam_bytes_of(ref_uri, sizeof(ref_uri) - 1),
        .manifest_digest = {.alg = -16, .bytes = tam_bytes_of(digest32, 32)},
        .success = true,
    };
    return r;
}

Test(suit_report, exact_encoding_of_a_minimal_report)
{
    struct tam_suit_report r = {
        .reference_uri = tam_bytes_of("u", 1),
        .manifest_digest = {.alg = -16, .bytes = tam_bytes_of(digest32, 32)},
        .success = true,
    };
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_OK);
    /* {3: [], 4: true, 99: ["u", [-16, h'..']]} with keys in deterministic order. */
    size_t n;
    uint8_t *want = tu_hex("A3038004F51863826175822F5820", &n);
    cr_assert_eq(out.len, n + 32);
    cr_assert_eq(memcmp(out.data, want, n), 0);
    cr_assert_eq(memcmp(out.data + n, digest32, 32), 0);
    tam_free(want);
    tam_buf_finish(&out);
}

Test(suit_report, bare_success_round_trip)
{
    static const uint8_t nonce[16] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                      0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
    struct tam_suit_report r = success_report();
    r.has_nonce = true;
    r.nonce = tam_bytes_of(nonce, sizeof(nonce));
    r.has_capability = true;
    r.capability_report = tam_bytes_of("\xa1\x01\x80", 3); /* {1: []} */
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_OK);

    struct tam_suit_report d;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(out.data, out.len, &arena, &d, &why), TAM_OK, "%s", why);
    cr_assert(!d.is_signed);
    cr_assert(d.success);
    cr_assert(str_eq(d.reference_uri, ref_uri));
    cr_assert_eq(d.manifest_digest.alg, -16);
    cr_assert(bytes_eq(d.manifest_digest.bytes, digest32, 32));
    cr_assert(d.has_nonce && bytes_eq(d.nonce, nonce, sizeof(nonce)));
    cr_assert_eq(d.nrecords, 0);
    cr_assert(d.has_capability && bytes_eq(d.capability_report, "\xa1\x01\x80", 3));
    cr_assert(bytes_eq(d.report, out.data, out.len));

    struct tam_buf again;
    tam_buf_init(&again, 4096);
    cr_assert_eq(tam_suit_report_encode(&d, &again), TAM_OK);
    cr_assert_eq(again.len, out.len);
    cr_assert_eq(memcmp(again.data, out.data, out.len), 0);
    tam_buf_finish(&again);
    tam_buf_finish(&out);
}

#define FAIL_URI "https://example.org/missing.ta"

/* properties {21: uri}, system claims {0: [h'00'], 14: 20} */
static struct tam_suit_report failure_report(struct tam_suit_record recs[2], struct tam_buf *props,
                                             struct tam_buf *sys)
{
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, props);
    tam_cbor_open_map(&w, 1);
    tam_cbor_put_uint(&w, 21);
    tam_cbor_put_str(&w, FAIL_URI);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    tam_cbor_writer_init(&w, sys);
    tam_cbor_open_map(&w, 2);
    tam_cbor_put_uint(&w, 0);
    tam_cbor_open_array(&w, 1);
    tam_cbor_put_bstr(&w, "\x00", 1);
    tam_cbor_put_uint(&w, 14);
    tam_cbor_put_uint(&w, 20);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);

    memset(recs, 0, 2 * sizeof(recs[0]));
    recs[0].manifest_id_len = 1;
    recs[0].manifest_id[0] = 1;
    recs[0].section = TAM_SUIT_INSTALL;
    recs[0].offset = 66;
    recs[0].component_index = 0;
    recs[0].properties = tam_bytes_of(props->data, props->len);
    recs[1].is_system = true;
    recs[1].raw = tam_bytes_of(sys->data, sys->len);

    struct tam_suit_report r = success_report();
    r.success = false;
    r.records = recs;
    r.nrecords = 2;
    r.result_code = -1;
    r.result_record = recs[0];
    r.result_reason = TAM_SUIT_REASON_CONDITION_FAILED;
    return r;
}

static void check_failure(const struct tam_suit_report *d)
{
    cr_assert(!d->success);
    cr_assert_eq(d->result_code, -1);
    cr_assert_eq(d->result_reason, 10);
    cr_assert_str_eq(tam_suit_reason_name(d->result_reason), "condition-failed");
    cr_assert_eq(d->nrecords, 2);
    const struct tam_suit_record *r0 = &d->records[0];
    cr_assert(!r0->is_system);
    cr_assert_eq(r0->manifest_id_len, 1);
    cr_assert_eq(r0->manifest_id[0], 1);
    cr_assert_eq(r0->section, 20);
    cr_assert_eq(r0->offset, 66);
    cr_assert_eq(r0->component_index, 0);
    cr_assert(r0->params.has_uri && str_eq(r0->params.uri, FAIL_URI));
    const struct tam_suit_record *r1 = &d->records[1];
    cr_assert(r1->is_system);
    cr_assert_eq(r1->system_component_id.n, 1);
    cr_assert(bytes_eq(r1->system_component_id.seg[0], "\x00", 1));
    cr_assert(r1->params.has_image_size && r1->params.image_size == 20);
    cr_assert_eq(d->result_record.section, 20);
    cr_assert(bytes_eq(d->result_record.raw, r0->raw.ptr, r0->raw.len));
}

Test(suit_report, failure_with_records_round_trip)
{
    struct tam_suit_record recs[2];
    struct tam_buf props, sys, out, again;
    tam_buf_init(&props, 256);
    tam_buf_init(&sys, 256);
    tam_buf_init(&out, 4096);
    tam_buf_init(&again, 4096);
    struct tam_suit_report r = failure_report(recs, &props, &sys);
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_OK);
    struct tam_suit_report d;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(out.data, out.len, &arena, &d, &why), TAM_OK, "%s", why);
    check_failure(&d);
    cr_assert_eq(tam_suit_report_encode(&d, &again), TAM_OK);
    cr_assert_eq(again.len, out.len);
    cr_assert_eq(memcmp(again.data, out.data, out.len), 0);
    /* Records need an arena. */
    cr_assert_eq(tam_suit_report_decode(out.data, out.len, NULL, &d, &why), TAM_EINVAL);
    tam_buf_finish(&props);
    tam_buf_finish(&sys);
    tam_buf_finish(&out);
    tam_buf_finish(&again);
}

static void signed_round_trip(const char *priv_name, const char *pub_name, int alg)
{
    struct tam_key *priv = load_key(priv_name);
    struct tam_key *pub = load_key(pub_name);
    struct tam_key *other = load_key("tam_p256.pub.pem");
    struct tam_suit_record recs[2];
    struct tam_buf props, sys, out, bare;
    tam_buf_init(&props, 256);
    tam_buf_init(&sys, 256);
    tam_buf_init(&out, 4096);
    tam_buf_init(&bare, 4096);
    struct tam_suit_report r = failure_report(recs, &props, &sys);
    cr_assert_eq(tam_suit_report_encode_signed(&r, priv, alg, &out), TAM_OK);
    cr_assert_eq(out.data[0], 0xd2); /* tag 18 */
    struct tam_suit_report d;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(out.data, out.len, &arena, &d, &why), TAM_OK, "%s", why);
    cr_assert(d.is_signed);
    cr_assert_eq(d.cose.kind, TAM_COSE_SIGN1);
    cr_assert_eq(d.cose.signers[0].alg, alg);
    check_failure(&d);
    cr_assert_eq(tam_cose_verify_any(&d.cose, pub, NULL), TAM_OK);
    cr_assert_neq(tam_cose_verify_any(&d.cose, other, NULL), TAM_OK);
    cr_assert_eq(tam_suit_report_encode(&r, &bare), TAM_OK);
    cr_assert(bytes_eq(d.report, bare.data, bare.len));
    tam_buf_finish(&props);
    tam_buf_finish(&sys);
    tam_buf_finish(&out);
    tam_buf_finish(&bare);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
    tam_key_destroy(other);
}

Test(suit_report, signed_round_trip_p256)
{
    signed_round_trip("agent_p256.priv.pem", "agent_p256.pub.pem", TAM_ALG_ESP256);
}

Test(suit_report, signed_round_trip_ed25519)
{
    signed_round_trip("tam_ed25519.priv.pem", "tam_ed25519.pub.pem", TAM_ALG_ED25519);
}

Test(suit_report, legacy_teep_appendix_f_layouts_are_rejected)
{
    const char *names[] = {"teep_suit_report_success_legacy.derived.hex",
                           "teep_suit_report_failure_legacy.derived.hex"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        size_t len;
        uint8_t *b = tu_load_hex(names[i], &len);
        struct tam_suit_report d;
        const char *why = NULL;
        cr_assert_eq(tam_suit_report_decode(b, len, &arena, &d, &why), TAM_ESUIT, "%s", names[i]);
        cr_assert_not_null(why);
        cr_assert_not_null(strstr(why, "obsolete"), "%s: %s", names[i], why);
        tam_free(b);
    }
}

static void expect(const char *hex, int want, const char *needle)
{
    size_t len;
    uint8_t *b = tu_hex(hex, &len);
    struct tam_suit_report d;
    const char *why = NULL;
    int err = tam_suit_report_decode(b, len, &arena, &d, &why);
    cr_assert_eq(err, want, "%s: %s (%s)", hex, tam_errname(err), why ? why : "-");
    cr_assert_not_null(why, "%s", hex);
    if (needle != NULL) {
        cr_assert_not_null(strstr(why, needle), "%s: %s", hex, why);
    }
    tam_free(b);
}

#define REF  \
    "1863"   \
    "826175" \
    "822F4100" /* 99: ["u", [-16, h'00']] */

Test(suit_report, malformed_reports)
{
    expect("FF", TAM_ECBOR, NULL);
    expect("A2"
           "0380" REF,
           TAM_ESUIT, "result"); /* no result */
    expect("A2"
           "04F5" REF,
           TAM_ESUIT, "records"); /* no records */
    expect("A2"
           "0380"
           "04F5",
           TAM_ESUIT, "suit-reference"); /* no reference */
    expect("A3"
           "0380"
           "04F4" REF,
           TAM_ESUIT, "true or"); /* result false */
    expect("A3"
           "038101"
           "04F5" REF,
           TAM_ESUIT, "record"); /* record is a uint */
    expect("A3"
           "038180"
           "04F5" REF,
           TAM_ESUIT, "SUIT_Record"); /* short record */
    expect("A3"
           "0381A0"
           "04F5" REF,
           TAM_ESUIT, "system-component-id");
    expect("A3"
           "0380"
           "04A105 01" REF,
           TAM_ESUIT, "result-reason"); /* incomplete failure */
    expect("A3"
           "0380"
           "04F5"
           "1863 8161 75",
           TAM_ESUIT, "suit-reference");
    expect("A4"
           "0201"
           "0380"
           "04F5" REF,
           TAM_ESUIT, "nonce");
    expect("D1"
           "84 40 A0 40 40",
           TAM_ESUIT, "Mac0");
    expect("D0"
           "83 40 A0 40",
           TAM_ESUIT, "encrypted");
    expect("D2"
           "84 43A10126 A0 F6 4140",
           TAM_ESUIT, "payload");  /* detached Sign1 */
    expect("80", TAM_ECOSE, NULL); /* not a COSE_Sign1 */
    expect("82"
           "0102",
           TAM_ECOSE, NULL);
}

Test(suit_report, valid_minimal_and_extensions_ignored)
{
    size_t len;
    /* {3: [], 4: true, 9: "ext", 99: [...]} */
    uint8_t *b = tu_hex("A4"
                        "0380"
                        "04F5"
                        "0963657874" REF,
                        &len);
    struct tam_suit_report d;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(b, len, &arena, &d, &why), TAM_OK, "%s", why);
    cr_assert(d.success);
    cr_assert(str_eq(d.reference_uri, "u"));
    cr_assert_eq(d.manifest_digest.bytes.len, 1);
    tam_free(b);
}

Test(suit_report, too_many_records)
{
    struct tam_buf b;
    tam_buf_init(&b, 1 << 16);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &b);
    tam_cbor_open_map(&w, 3);
    tam_cbor_put_uint(&w, 3);
    tam_cbor_open_array(&w, TAM_SUIT_MAX_RECORDS + 1);
    for (int i = 0; i < TAM_SUIT_MAX_RECORDS + 1; i++) {
        tam_cbor_open_array(&w, 5);
        tam_cbor_open_array(&w, 0);
        tam_cbor_put_uint(&w, 20);
        tam_cbor_put_uint(&w, 0);
        tam_cbor_put_uint(&w, 0);
        tam_cbor_open_map(&w, 0);
    }
    tam_cbor_put_uint(&w, 4);
    tam_cbor_put_bool(&w, true);
    tam_cbor_put_uint(&w, 99);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_str(&w, "u");
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_int(&w, -16);
    tam_cbor_put_bstr(&w, digest32, 32);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    struct tam_suit_report d;
    const char *why = NULL;
    cr_assert_eq(tam_suit_report_decode(b.data, b.len, &arena, &d, &why), TAM_ETOOBIG);
    tam_buf_finish(&b);
}

Test(suit_report, encode_rejects_bad_raw_parts)
{
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_suit_record rec = {.section = 20, .properties = tam_bytes_of("\x80", 1)};
    struct tam_suit_report r = success_report();
    r.records = &rec;
    r.nrecords = 1;
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_EINVAL); /* properties not a map */
    rec.properties = tam_bytes_of(NULL, 0);
    rec.is_system = true;
    rec.raw = tam_bytes_of("\xa1", 1); /* truncated map */
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_EINVAL);
    r.nrecords = 0;
    r.has_capability = true;
    r.capability_report = tam_bytes_of("\xff", 1);
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_EINVAL);
    cr_assert_eq(out.len, 0);
    r.has_capability = false;
    rec.is_system = false;
    r.records = &rec;
    r.nrecords = 1; /* empty properties encode as {} */
    cr_assert_eq(tam_suit_report_encode(&r, &out), TAM_OK);
    tam_buf_finish(&out);
}

Test(suit_report, reason_names)
{
    static const char *const want[] = {
        "ok",
        "cbor-parse",
        "cose-unsupported",
        "alg-unsupported",
        "unauthorised",
        "command-unsupported",
        "component-unsupported",
        "component-unauthorised",
        "parameter-unsupported",
        "severing-unsupported",
        "condition-failed",
        "operation-failed",
        "invoke-pending",
    };
    for (uint64_t i = 0; i < TAM_ARRAY_LEN(want); i++) {
        cr_assert_str_eq(tam_suit_reason_name(i), want[i]);
    }
    cr_assert_str_eq(tam_suit_reason_name(13), "unknown");
    cr_assert_str_eq(tam_suit_reason_name(UINT64_MAX), "unknown");
}
