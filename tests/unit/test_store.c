/* Redis record codecs (store.h): installed lists, component records, policy, sent plans. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/cbor.h"
#include "tam/err.h"
#include "tam/store.h"
#include "tam/suit.h"
#include "testutil.h"

static struct tam_arena g_arena;

static void setup(void)
{
    tam_arena_init(&g_arena, 4096, 64u << 20);
}

static void teardown(void)
{
    tam_arena_finish(&g_arena);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct tam_teep_component_id id2(const char *a, const char *b)
{
    struct tam_teep_component_id id;
    memset(&id, 0, sizeof(id));
    id.seg[0] = tam_bytes_of(a, strlen(a));
    id.n = 1;
    if (b != NULL) {
        id.seg[1] = tam_bytes_of(b, strlen(b));
        id.n = 2;
    }
    return id;
}

static bool id_eq(const struct tam_teep_component_id *a, const struct tam_teep_component_id *b)
{
    return tam_plan_id_eq(a, b);
}

/* ---- component ids ---- */

Test(store, id_roundtrip_and_field)
{
    struct tam_teep_component_id id = id2("TEEP-Device", "ta");
    struct tam_buf b;
    tam_buf_init(&b, 1024);
    cr_assert_eq(tam_store_id_encode(&id, &b), TAM_OK);
    struct tam_teep_component_id back;
    cr_assert_eq(tam_store_id_decode(b.data, b.len, &back, NULL), TAM_OK);
    cr_assert(id_eq(&id, &back));
    cr_assert_eq(back.raw.len, b.len);

    struct tam_buf f;
    tam_buf_init(&f, 1024);
    cr_assert_eq(tam_store_component_field(&id, 3, &f), TAM_OK);
    /* [h'TEEP-Device', h'ta'] = 82 4B 54.. 42 74 61 */
    cr_assert_str_eq((const char *)f.data, "824b544545502d446576696365427461/3");
    tam_buf_finish(&b);
    tam_buf_finish(&f);
}

Test(store, id_rejects_empty_and_non_bstr)
{
    struct tam_teep_component_id id;
    const char *why = NULL;
    static const uint8_t empty[] = {0x80};
    static const uint8_t text[] = {0x81, 0x61, 0x41};
    cr_assert_eq(tam_store_id_decode(empty, sizeof(empty), &id, &why), TAM_EINVAL);
    cr_assert_eq(tam_store_id_decode(text, sizeof(text), &id, &why), TAM_EINVAL);
    struct tam_teep_component_id none;
    memset(&none, 0, sizeof(none));
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_store_id_encode(&none, &b), TAM_EINVAL);
    tam_buf_finish(&b);
}

/* ---- installed list ---- */

Test(store, installed_roundtrip)
{
    struct tam_plan_installed v[2];
    memset(v, 0, sizeof(v));
    v[0].component = id2("a", "ta");
    v[0].has_manifest_id = true;
    v[0].manifest_id = id2("a", "suit");
    v[0].sequence = 7;
    memset(v[0].digest, 0xaa, 32);
    v[1].component = id2("b", NULL);
    v[1].sequence = 1;
    memset(v[1].digest, 0x11, 32);
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_store_installed_encode(v, 2, &b), TAM_OK);
    struct tam_plan_installed *out = NULL;
    uint32_t n = 0;
    cr_assert_eq(tam_store_installed_decode(b.data, b.len, &g_arena, &out, &n, NULL), TAM_OK);
    cr_assert_eq(n, 2);
    cr_assert(id_eq(&out[0].component, &v[0].component));
    cr_assert(out[0].has_manifest_id);
    cr_assert(id_eq(&out[0].manifest_id, &v[0].manifest_id));
    cr_assert_eq(out[0].sequence, 7);
    cr_assert_eq(memcmp(out[0].digest, v[0].digest, 32), 0);
    cr_assert_not(out[1].has_manifest_id);
    cr_assert_eq(out[1].sequence, 1);

    /* Deterministic: encoding the decoded list gives the same bytes. */
    struct tam_buf again;
    tam_buf_init(&again, 4096);
    cr_assert_eq(tam_store_installed_encode(out, n, &again), TAM_OK);
    cr_assert_eq(again.len, b.len);
    cr_assert_eq(memcmp(again.data, b.data, b.len), 0);
    tam_buf_finish(&b);
    tam_buf_finish(&again);
}

Test(store, installed_empty_and_malformed)
{
    struct tam_plan_installed *out = (void *)1;
    uint32_t n = 99;
    cr_assert_eq(tam_store_installed_decode(NULL, 0, &g_arena, &out, &n, NULL), TAM_OK);
    cr_assert_null(out);
    cr_assert_eq(n, 0);
    static const uint8_t empty[] = {0x80};
    cr_assert_eq(tam_store_installed_decode(empty, 1, &g_arena, &out, &n, NULL), TAM_OK);
    cr_assert_eq(n, 0);
    /* [[[h'61'], null, 1, h'00']]: digest of 1 byte */
    static const uint8_t short_digest[] = {0x81, 0x84, 0x81, 0x41, 0x61, 0xf6, 0x01, 0x41, 0x00};
    const char *why = NULL;
    cr_assert_eq(
        tam_store_installed_decode(short_digest, sizeof(short_digest), &g_arena, &out, &n, &why),
        TAM_EINVAL);
    cr_assert_not_null(why);
    cr_assert_eq(n, 0);
    static const uint8_t map[] = {0xa0};
    cr_assert_eq(tam_store_installed_decode(map, 1, &g_arena, &out, &n, &why), TAM_EINVAL);
    static const uint8_t trailing[] = {0x80, 0x00};
    cr_assert_neq(tam_store_installed_decode(trailing, 2, &g_arena, &out, &n, &why), TAM_OK);
}

Test(store, installed_bounded)
{
    uint32_t n = TAM_STORE_MAX_INSTALLED + 1;
    struct tam_plan_installed *v = tam_calloc(n, sizeof(*v));
    for (uint32_t i = 0; i < n; i++) {
        v[i].component = id2("x", NULL);
    }
    struct tam_buf b;
    tam_buf_init(&b, 64u << 20);
    cr_assert_eq(tam_store_installed_encode(v, n, &b), TAM_ETOOBIG);
    /* A hand-made oversized list is refused by the decoder as well. */
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &b);
    tam_cbor_open_array(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        tam_cbor_open_array(&w, 4);
        tam_cbor_open_array(&w, 1);
        tam_cbor_put_bstr(&w, "x", 1);
        tam_cbor_put_null(&w);
        tam_cbor_put_uint(&w, 1);
        uint8_t d[32] = {0};
        tam_cbor_put_bstr(&w, d, 32);
    }
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    struct tam_plan_installed *out = NULL;
    uint32_t got = 0;
    cr_assert_eq(tam_store_installed_decode(b.data, b.len, &g_arena, &out, &got, NULL),
                 TAM_ETOOBIG);
    tam_free(v);
    tam_buf_finish(&b);
}

/* ---- component records ---- */

static void uri_record(struct tam_store_component *c, const uint8_t *env, size_t len)
{
    memset(c, 0, sizeof(*c));
    c->component = id2("TEEP-Device", "ta");
    c->has_manifest_id = true;
    c->manifest_id = id2("TEEP-Device", "suit");
    c->sequence = 3;
    c->has_digest = true;
    memset(c->digest, 0x5a, 32);
    c->envelope = tam_bytes_of(env, len);
}

Test(store, component_roundtrip_envelope)
{
    static const uint8_t env[] = {0xa1, 0x02, 0x40};
    struct tam_store_component c, d;
    uri_record(&c, env, sizeof(env));
    c.n_deps = 1;
    c.deps[0] = id2("dep", "suit");
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_store_component_encode(&c, &b), TAM_OK);
    const char *why = NULL;
    cr_assert_eq(tam_store_component_decode(b.data, b.len, &d, &why), TAM_OK, "%s", why);
    cr_assert(id_eq(&d.component, &c.component));
    cr_assert(id_eq(&d.manifest_id, &c.manifest_id));
    cr_assert_eq(d.sequence, 3);
    cr_assert_eq(memcmp(d.digest, c.digest, 32), 0);
    cr_assert_eq(d.n_deps, 1);
    cr_assert(id_eq(&d.deps[0], &c.deps[0]));
    cr_assert_eq(d.envelope.len, sizeof(env));
    cr_assert(tam_store_component_ready(&d));
    struct tam_plan_manifest m;
    int user = 0;
    cr_assert_eq(tam_store_component_manifest(&d, &user, &m), TAM_OK);
    cr_assert_eq(m.sequence, 3);
    cr_assert_eq(m.user, &user);
    cr_assert_eq(m.n_deps, 1);
    tam_buf_finish(&b);
}

Test(store, component_tam_built_record)
{
    static const uint8_t bin[] = "Hello, Secure World!";
    struct tam_store_component c, d;
    memset(&c, 0, sizeof(c));
    c.component = id2("TEEP-Device", "ta");
    c.sequence = 1;
    c.binary = tam_bytes_of(bin, 20);
    c.delivery = TAM_STORE_DELIVERY_URI;
    c.uri = tam_bytes_of("https://example.org/x.ta", 24);
    c.has_vendor_id = true;
    memset(c.vendor_id, 0xc0, 16);
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_store_component_encode(&c, &b), TAM_OK);
    cr_assert_eq(tam_store_component_decode(b.data, b.len, &d, NULL), TAM_OK);
    cr_assert_not(tam_store_component_ready(&d));
    cr_assert_eq(d.delivery, TAM_STORE_DELIVERY_URI);
    cr_assert_eq(d.uri.len, 24);
    cr_assert_eq(d.binary.len, 20);
    cr_assert(d.has_vendor_id);
    cr_assert_not(d.has_class_id);
    struct tam_plan_manifest m;
    cr_assert_eq(tam_store_component_manifest(&d, NULL, &m), TAM_EINVAL);

    /* A uri delivery without uri, a binary without delivery, an envelope without digest. */
    c.uri = tam_bytes_of(NULL, 0);
    tam_buf_reset(&b);
    cr_assert_eq(tam_store_component_encode(&c, &b), TAM_EINVAL);
    c.delivery = TAM_STORE_DELIVERY_NONE;
    cr_assert_eq(tam_store_component_encode(&c, &b), TAM_EINVAL);
    static const uint8_t env[] = {0xa0};
    uri_record(&c, env, 1);
    c.has_digest = false;
    cr_assert_eq(tam_store_component_encode(&c, &b), TAM_EINVAL);
    tam_buf_finish(&b);
}

Test(store, component_decode_rejects_garbage)
{
    struct tam_store_component c;
    const char *why = NULL;
    static const uint8_t not_map[] = {0x80};
    cr_assert_eq(tam_store_component_decode(not_map, 1, &c, &why), TAM_EINVAL);
    /* {1: [h'61'], 3: 1}: neither envelope nor binary */
    static const uint8_t bare[] = {0xa2, 0x01, 0x81, 0x41, 0x61, 0x03, 0x01};
    cr_assert_eq(tam_store_component_decode(bare, sizeof(bare), &c, &why), TAM_EINVAL);
    cr_assert_not_null(strstr(why, "neither"));
    static const uint8_t junk[] = {0xff, 0x00};
    cr_assert_neq(tam_store_component_decode(junk, 2, &c, &why), TAM_OK);
}

/* ---- policy ---- */

static int parse(const char *json, struct tam_store_policy *p, char *why)
{
    return tam_store_policy_parse(json, strlen(json), &g_arena, p, why, 256);
}

Test(store, policy_full_document)
{
    const char *json =
        "{\"requested\": \"deny\","
        " \"rules\": ["
        "  {\"match\": {}, \"install\": [{\"component_id\": [\"54454550\", \"7461\"],"
        "    \"min_sequence\": 3}]},"
        "  {\"match\": {\"labels\": [\"beta\", \"eu\"]},"
        "   \"remove\": [{\"component_id\": [\"6f6c64\"]}]},"
        "  {\"match\": {\"device\": \"" /* 32 bytes */
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"}}"
        " ],"
        " \"attestation\": {\"oemids\": [12345, \"894823\"], \"hwmodels\": [\"6d6f64656c\"],"
        "   \"hwversions\": [\"1.3.4\"], \"min_dbgstat\": 2}}";
    struct tam_store_policy p;
    char why[256];
    cr_assert_eq(parse(json, &p, why), TAM_OK, "%s", why);
    cr_assert(p.plan.deny_requested);
    cr_assert_eq(p.plan.n_rules, 3);
    const struct tam_plan_rule *r = p.plan.rules;
    cr_assert_eq(r[0].match, TAM_PLAN_MATCH_ALL);
    cr_assert_eq(r[0].n_install, 1);
    cr_assert_eq(r[0].install[0].component.n, 2);
    cr_assert_eq(memcmp(r[0].install[0].component.seg[0].ptr, "TEEP", 4), 0);
    cr_assert(r[0].install[0].has_min_sequence);
    cr_assert_eq(r[0].install[0].min_sequence, 3);
    cr_assert_eq(r[1].match, TAM_PLAN_MATCH_LABELS);
    cr_assert_eq(r[1].n_labels, 2);
    cr_assert_eq(memcmp(r[1].labels[1].ptr, "eu", 2), 0);
    cr_assert_eq(r[1].n_remove, 1);
    cr_assert_eq(memcmp(r[1].remove[0].seg[0].ptr, "old", 3), 0);
    cr_assert_eq(r[2].match, TAM_PLAN_MATCH_DEVICE);
    cr_assert_eq(r[2].kid[31], 0x1f);
    cr_assert_eq(p.attestation.n_oemids, 2);
    cr_assert(p.attestation.oemids[0].is_pen);
    cr_assert_eq(p.attestation.oemids[0].pen, 12345);
    cr_assert_eq(p.attestation.oemids[1].id.len, 3);
    cr_assert_eq(p.attestation.n_hwmodels, 1);
    cr_assert_eq(p.attestation.hwmodels[0].len, 5);
    cr_assert_str_eq(p.attestation.hwversions[0], "1.3.4");
    cr_assert_eq(p.attestation.min_dbgstat, 2);
}

Test(store, policy_defaults)
{
    struct tam_store_policy p;
    char why[256];
    cr_assert_eq(parse("{}", &p, why), TAM_OK);
    cr_assert_eq(p.plan.n_rules, 0);
    cr_assert_not(p.plan.deny_requested);
    cr_assert_eq(p.attestation.n_hwmodels, 0);
    cr_assert_eq(parse("{\"rules\": [{}]}", &p, why), TAM_OK, "%s", why);
    cr_assert_eq(p.plan.rules[0].match, TAM_PLAN_MATCH_ALL);
}

Test(store, policy_errors_name_the_member)
{
    static const struct {
        const char *json;
        const char *why;
    } cases[] = {
        {"[]", "not a JSON object"},
        {"{\"rule\": []}", "unknown member \"rule\""},
        {"{\"requested\": \"maybe\"}", "requested:"},
        {"{\"rules\": [{\"install\": [{\"component_id\": [\"zz\"]}]}]}",
         "rules[0].install[0].component_id[0]: "},
        {"{\"rules\": [{}, {\"install\": [{\"component_id\": []}]}]}",
         "rules[1].install[0].component_id: "},
        {"{\"rules\": [{\"install\": [{\"component_id\": [\"61\"], \"min_sequence\": -1}]}]}",
         "rules[0].install[0].min_sequence: "},
        {"{\"rules\": [{\"match\": {\"labels\": [\"a\"], \"device\": \"00\"}}]}",
         "labels and device are exclusive"},
        {"{\"rules\": [{\"match\": {\"device\": \"0011\"}}]}", "rules[0].match.device: "},
        {"{\"rules\": [{\"match\": {\"labels\": [\"a,b\"]}}]}", "rules[0].match.labels[0]: "},
        {"{\"rules\": [{\"remove\": [{\"component_id\": [\"61\"], \"x\": 1}]}]}",
         "rules[0].remove[0]: unknown member"},
        {"{\"attestation\": {\"oemids\": [\"0102\"]}}", "attestation.oemids[0]: "},
        {"{\"attestation\": {\"min_dbgstat\": 9}}", "attestation.min_dbgstat: "},
        {"{\"a\": 1, \"a\": 2}", "invalid JSON"},
        {"{", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct tam_store_policy p;
        char why[256];
        cr_assert_neq(parse(cases[i].json, &p, why), TAM_OK, "%s", cases[i].json);
        cr_assert_not_null(strstr(why, cases[i].why), "%s -> %s", cases[i].json, why);
        cr_assert_eq(p.plan.n_rules, 0);
    }
}

Test(store, policy_bounds)
{
    struct tam_buf b;
    tam_buf_init(&b, 4u << 20);
    cr_assert_eq(tam_buf_append_str(&b, "{\"rules\": ["), TAM_OK);
    for (int i = 0; i <= TAM_PLAN_MAX_RULES; i++) {
        cr_assert_eq(tam_buf_append_str(&b, i > 0 ? ",{}" : "{}"), TAM_OK);
    }
    cr_assert_eq(tam_buf_append_str(&b, "]}"), TAM_OK);
    struct tam_store_policy p;
    char why[256];
    cr_assert_eq(tam_store_policy_parse((const char *)b.data, b.len, &g_arena, &p, why, 256),
                 TAM_ETOOBIG);
    cr_assert_not_null(strstr(why, "rules"));
    tam_buf_finish(&b);
}

/* ---- labels ---- */

Test(store, labels)
{
    struct tam_bytes *l = NULL;
    uint32_t n = 0;
    cr_assert_eq(tam_store_labels_parse("beta,eu", 7, &g_arena, &l, &n, NULL), TAM_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(l[0].len, 4);
    cr_assert_eq(memcmp(l[1].ptr, "eu", 2), 0);
    cr_assert_eq(tam_store_labels_parse("", 0, &g_arena, &l, &n, NULL), TAM_OK);
    cr_assert_eq(n, 0);
    cr_assert_eq(tam_store_labels_parse("a,,b", 4, &g_arena, &l, &n, NULL), TAM_EINVAL);
    cr_assert_eq(tam_store_labels_parse("a,", 2, &g_arena, &l, &n, NULL), TAM_EINVAL);
}

/* ---- sent plan ---- */

Test(store, sent_plan_roundtrip_applies_like_the_original)
{
    static const uint8_t d1[32] = {1}, d2[32] = {2};
    struct tam_plan_manifest cat[2];
    memset(cat, 0, sizeof(cat));
    cat[0].component = id2("app", "ta");
    cat[0].manifest_id = id2("app", "suit");
    cat[0].sequence = 2;
    memcpy(cat[0].digest, d1, 32);
    struct tam_teep_component_id dep = id2("lib", "suit");
    cat[0].n_deps = 1;
    cat[0].deps = &dep;
    cat[1].component = id2("lib", "ta");
    cat[1].manifest_id = id2("lib", "suit");
    cat[1].sequence = 1;
    memcpy(cat[1].digest, d2, 32);
    struct tam_plan_install inst = {.component = id2("app", "ta")};
    struct tam_teep_component_id gone = id2("old", "ta");
    struct tam_plan_rule rule = {.n_install = 1, .install = &inst, .n_remove = 1, .remove = &gone};
    struct tam_plan_policy pol = {.n_rules = 1, .rules = &rule};
    struct tam_plan_installed rec;
    memset(&rec, 0, sizeof(rec));
    rec.component = id2("old", "ta");
    rec.has_manifest_id = true;
    rec.manifest_id = id2("old", "suit");
    rec.sequence = 1;
    struct tam_plan_device dev = {.n_installed = 1, .installed = &rec};
    struct tam_plan_input in = {.n_catalogue = 2, .catalogue = cat, .policy = &pol, .device = &dev};
    struct tam_plan plan;
    const char *why = NULL;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &plan, &why), TAM_OK, "%s", why);
    cr_assert_eq(plan.n_entries, 2);
    cr_assert_eq(plan.n_unlink, 1);

    struct tam_buf b;
    tam_buf_init(&b, 1u << 20);
    cr_assert_eq(tam_store_sent_encode(&plan, &b), TAM_OK);
    struct tam_plan back;
    cr_assert_eq(tam_store_sent_decode(b.data, b.len, &g_arena, &back, &why), TAM_OK);
    cr_assert_eq(back.n_entries, 2);
    cr_assert_eq(back.n_unlink, 1);
    cr_assert_not_null(back.unlink_component[0]);
    cr_assert_eq(back.entries[1].manifest->n_deps, 1);

    struct tam_plan_installed *a = NULL, *c = NULL;
    uint32_t na = 0, nc = 0;
    cr_assert_eq(tam_plan_apply_success(&plan, &rec, 1, &g_arena, &a, &na), TAM_OK);
    cr_assert_eq(tam_plan_apply_success(&back, &rec, 1, &g_arena, &c, &nc), TAM_OK);
    struct tam_buf ea, ec;
    tam_buf_init(&ea, 4096);
    tam_buf_init(&ec, 4096);
    cr_assert_eq(tam_store_installed_encode(a, na, &ea), TAM_OK);
    cr_assert_eq(tam_store_installed_encode(c, nc, &ec), TAM_OK);
    cr_assert_eq(na, 2);
    cr_assert_eq(ea.len, ec.len);
    cr_assert_eq(memcmp(ea.data, ec.data, ea.len), 0);

    /* A failed dependency drops its dependent too, from the decoded plan as well. */
    struct tam_bytes failed = tam_bytes_of(d2, 32);
    cr_assert_eq(tam_plan_apply_error(&back, &rec, 1, &failed, 1, &g_arena, &c, &nc), TAM_OK);
    cr_assert_eq(nc, 1); /* only the old record stays */

    static const uint8_t bad[] = {0x82, 0x80};
    cr_assert_neq(tam_store_sent_decode(bad, sizeof(bad), &g_arena, &back, &why), TAM_OK);
    tam_buf_finish(&b);
    tam_buf_finish(&ea);
    tam_buf_finish(&ec);
}

/* ---- history ---- */

Test(store, history_entry_is_compact_json)
{
    struct tam_store_history h = {.ms = 1700000000123ull,
                                  .event = "error",
                                  .err_code = TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED,
                                  .installed = 1,
                                  .failed = 2,
                                  .detail = "x\"y"};
    struct tam_buf b;
    tam_buf_init(&b, 1024);
    cr_assert_eq(tam_store_history_encode(&h, &b), TAM_OK);
    cr_assert_eq(tam_buf_append(&b, "", 1), TAM_OK);
    cr_assert_str_eq((const char *)b.data,
                     "{\"detail\":\"x\\\"y\",\"err\":\"ERR_MANIFEST_PROCESSING_FAILED\","
                     "\"event\":\"error\",\"failed\":2,\"installed\":1,\"ms\":1700000000123}");
    tam_buf_finish(&b);
}
