/* SUIT envelopes: parse/index, digest and signature checks, building. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/err.h"
#include "tam/suit.h"
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

static uint8_t *parse_vector(const char *name, struct tam_suit_envelope *env, size_t *len)
{
    uint8_t *b = tu_load_hex(name, len);
    const char *why = NULL;
    int err = tam_suit_parse(b, *len, env, &why);
    cr_assert_eq(err, TAM_OK, "%s: %s (%s)", name, tam_errname(err), why ? why : "");
    return b;
}

static bool bytes_eq(struct tam_bytes b, const void *p, size_t n)
{
    return b.len == n && (n == 0 || memcmp(b.ptr, p, n) == 0);
}

static bool str_eq(struct tam_bytes b, const char *s)
{
    return bytes_eq(b, s, strlen(s));
}

static bool hex_eq(struct tam_bytes b, const char *hex)
{
    size_t n;
    uint8_t *h = tu_hex(hex, &n);
    bool eq = bytes_eq(b, h, n);
    tam_free(h);
    return eq;
}

static const char *const signed_vectors[] = {
    "teep_suit_uri.hex",
    "teep_suit_integrated.hex",
    "teep_suit_personalization.hex",
    "suit_manifest_example0.hex",
    "suit_manifest_example1.hex",
    "suit_manifest_example2.hex",
    "suit_manifest_example2.severed.hex",
    "suit_manifest_example3.hex",
    "suit_manifest_example4.hex",
    "suit_manifest_example5.hex",
    "suit_td_example0_dependent.hex",
    "suit_td_example1_process.hex",
    "suit_td_example2_integrated.hex",
};

Test(suit, every_vector_parses_digest_checks_and_verifies)
{
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    struct tam_key *other = load_key("tam_p256.pub.pem");
    for (size_t i = 0; i < TAM_ARRAY_LEN(signed_vectors); i++) {
        struct tam_suit_envelope env;
        size_t len;
        uint8_t *b = parse_vector(signed_vectors[i], &env, &len);
        cr_assert_eq(env.version, 1);
        cr_assert_eq(env.nauth, 1, "%s", signed_vectors[i]);
        cr_assert_eq(tam_suit_check_digest(&env), TAM_OK, "%s", signed_vectors[i]);
        const struct tam_key *anchors[] = {other, key};
        cr_assert_eq(tam_suit_verify(&env, anchors, 2), TAM_OK, "%s", signed_vectors[i]);
        cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_ESIG, "%s", signed_vectors[i]);
        uint8_t md[TAM_SHA256_LEN];
        tam_suit_manifest_digest(&env, md);
        cr_assert(bytes_eq(env.digest.bytes, md, sizeof(md)));
        cr_assert_eq(env.digest.alg, -16);
        bool tagged = strncmp(signed_vectors[i], "suit_", 5) == 0;
        cr_assert_eq(env.tagged, tagged, "%s", signed_vectors[i]);
        tam_free(b);
    }
    tam_key_destroy(key);
    tam_key_destroy(other);
}

Test(suit, detached_payload_is_the_content_of_auth0)
{
    /* The vectors sign the encoded SUIT_Digest (auth[0]'s content), not the bstr around it. */
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    struct tam_suit_envelope env;
    size_t len;
    uint8_t *b = parse_vector("teep_suit_uri.hex", &env, &len);
    struct tam_cose_msg msg;
    cr_assert_eq(tam_cose_parse(env.auth[0].ptr, env.auth[0].len, &msg, NULL), TAM_OK);
    cr_assert(msg.detached);
    cr_assert_eq(msg.signers[0].alg, TAM_ALG_ESP256);
    cr_assert_eq(tam_cose_verify(&msg, 0, key, &env.digest_bstr, NULL), TAM_OK);
    cr_assert_eq(env.digest_bstr.ptr[0], 0x82); /* the array itself, no bstr head */
    struct tam_bytes with_head = {env.digest_bstr.ptr - 2, env.digest_bstr.len + 2};
    cr_assert_eq(with_head.ptr[0], 0x58);
    cr_assert_eq(tam_cose_verify(&msg, 0, key, &with_head, NULL), TAM_ESIG);
    tam_free(b);
    tam_key_destroy(key);
}

Test(suit, unsigned_examples_parse_but_do_not_verify)
{
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    const char *names[] = {"suit_manifest_example0.unsigned.hex",
                           "suit_manifest_example2.severed.unsigned.hex"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        struct tam_suit_envelope env;
        size_t len;
        uint8_t *b = parse_vector(names[i], &env, &len);
        cr_assert_eq(env.nauth, 0);
        cr_assert_eq(tam_suit_check_digest(&env), TAM_OK);
        const struct tam_key *anchors[] = {key};
        cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_ESIG);
        tam_free(b);
    }
    tam_key_destroy(key);
}

#define TC_UUID   "8D82573A926D4754935332DC29997F74"
#define VENDOR_ID "C0DDD5F15243566087DB4F5B0AA26C2F"
#define CLASS_ID  "DB42F7093D8C55BAA8C5265FC5820F4E"
#define TC_DIGEST "8CF71AC86AF31BE184EC7A05A411A8C3A14FD9B77A30D046397481469468ECE8"
#define URI_TA    "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"
#define URI_SUIT  "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.suit"

static void check_tc_component(const struct tam_suit_component_id *id, const char *last)
{
    cr_assert_eq(id->n, 4);
    cr_assert(str_eq(id->seg[0], "TEEP-Device"));
    cr_assert(str_eq(id->seg[1], "SecureFS"));
    cr_assert(hex_eq(id->seg[2], TC_UUID));
    cr_assert(str_eq(id->seg[3], last));
}

static void check_teep_common(const struct tam_suit_envelope *env)
{
    cr_assert_eq(env->sequence, 3);
    cr_assert_eq(env->ncomponents, 1);
    check_tc_component(&env->components[0], "ta");
    cr_assert(env->has_manifest_component_id);
    check_tc_component(&env->manifest_component_id, "suit");
    cr_assert(env->first.has_vendor_id && !env->first.vendor_id_pen);
    cr_assert(hex_eq(env->first.vendor_id, VENDOR_ID));
    cr_assert(env->first.has_class_id);
    cr_assert(hex_eq(env->first.class_id, CLASS_ID));
    cr_assert(env->first.has_image_digest);
    cr_assert_eq(env->first.image_digest.alg, -16);
    cr_assert(hex_eq(env->first.image_digest.bytes, TC_DIGEST));
    cr_assert(env->first.has_image_size);
    cr_assert_eq(env->first.image_size, 20);
    cr_assert(env->install.present && env->install.available && !env->install.severed);
    cr_assert(env->uninstall.present && env->uninstall.available);
    cr_assert(hex_eq(env->uninstall.seq, "8218210F")); /* [33 unlink, 15] */
    cr_assert(!env->validate.present && !env->invoke.present && !env->text.present);
    cr_assert_eq(env->ndeps, 0);
    cr_assert(!env->has_reference_uri);
    cr_assert(env->has_shared);
}

Test(suit, teep_uri_fields)
{
    struct tam_suit_envelope env;
    size_t len;
    uint8_t *b = parse_vector("teep_suit_uri.hex", &env, &len);
    cr_assert_eq(len, 387);
    check_teep_common(&env);
    cr_assert(env.first.has_uri);
    cr_assert(str_eq(env.first.uri, URI_TA));
    cr_assert_eq(env.nintegrated, 0);
    cr_assert(hex_eq(env.digest.bytes,
                     "B39B52B0B747EA79588C190F567BFC2C8437BA8A73F7EA983182E79F0148D59B"));
    cr_assert_eq(tam_suit_member(&env, TAM_SUIT_INSTALL), &env.install);
    cr_assert_null(tam_suit_member(&env, 99));
    /* The manifest span includes the bstr head (59 0108). */
    cr_assert_eq(env.manifest_bstr.ptr[0], 0x59);
    cr_assert_eq(env.manifest_bstr.len, env.manifest.len + 3);
    tam_free(b);
}

Test(suit, teep_integrated_payload)
{
    struct tam_suit_envelope env;
    size_t len;
    uint8_t *b = parse_vector("teep_suit_integrated.hex", &env, &len);
    check_teep_common(&env);
    cr_assert(str_eq(env.first.uri, "#tc"));
    cr_assert_eq(env.nintegrated, 1);
    const struct tam_suit_integrated *in = tam_suit_integrated(&env, "#tc");
    cr_assert_not_null(in);
    cr_assert(!in->is_dependency);
    cr_assert(str_eq(in->data, "Hello, Secure World!"));
    uint8_t md[TAM_SHA256_LEN];
    tam_sha256(in->data.ptr, in->data.len, md);
    cr_assert(bytes_eq(env.first.image_digest.bytes, md, sizeof(md)));
    cr_assert_eq(env.first.image_size, in->data.len);
    cr_assert_null(tam_suit_integrated(&env, "#other"));
    /* The same digest is the TC binary's (the .raw vector). */
    size_t rlen;
    uint8_t *raw = tu_load_hex("teep_tc_binary_8d82573a.raw.hex", &rlen);
    cr_assert(bytes_eq(in->data, raw, rlen));
    tam_free(raw);
    tam_free(b);
}

Test(suit, teep_personalization_dependency)
{
    struct tam_suit_envelope uri, env;
    size_t ulen, len;
    uint8_t *ub = parse_vector("teep_suit_uri.hex", &uri, &ulen);
    uint8_t *b = parse_vector("teep_suit_personalization.hex", &env, &len);
    cr_assert_eq(env.sequence, 3);
    cr_assert_eq(env.ncomponents, 1);
    cr_assert_eq(env.components[0].n, 3);
    cr_assert(str_eq(env.components[0].seg[2], "config.json"));
    cr_assert_eq(env.manifest_component_id.n, 3);
    cr_assert(str_eq(env.manifest_component_id.seg[2], "config.suit"));
    cr_assert_eq(env.ndeps, 1);
    const struct tam_suit_dependency *d = &env.deps[0];
    cr_assert_eq(d->index, 1);
    cr_assert(d->has_prefix);
    check_tc_component(&d->prefix, "suit");
    cr_assert(bytes_eq(d->prefix.raw, uri.manifest_component_id.raw.ptr,
                       uri.manifest_component_id.raw.len));
    /* The dependency digest is the suit_uri manifest digest. */
    uint8_t md[TAM_SHA256_LEN];
    tam_suit_manifest_digest(&uri, md);
    cr_assert(d->params.has_image_digest);
    cr_assert(bytes_eq(d->params.image_digest.bytes, md, sizeof(md)));
    cr_assert_eq(d->params.image_size, 389); /* sic: the envelope is 387 bytes */
    cr_assert(str_eq(d->params.uri, URI_SUIT));
    cr_assert_eq(d->integrated, -1);
    cr_assert(env.validate.present && env.dependency_resolution.present);
    cr_assert(env.install.present && env.uninstall.present);
    cr_assert(hex_eq(env.first.vendor_id, VENDOR_ID));
    cr_assert(hex_eq(env.first.class_id, CLASS_ID));
    cr_assert(!env.first.has_uri && !env.first.has_image_digest);
    tam_free(b);
    tam_free(ub);
}

Test(suit, manifest_examples_fields)
{
    static const struct {
        const char *name;
        uint64_t seq;
        unsigned ncomp;
        const char *uri;
    } ex[] = {
        {"suit_manifest_example0.hex", 0, 1, NULL},
        {"suit_manifest_example1.hex", 1, 1, "http://example.com/file.bin"},
        {"suit_manifest_example2.hex", 2, 1, "http://example.com/very/long/path/to/file/file.bin"},
        {"suit_manifest_example3.hex", 3, 1, NULL}, /* uris only inside try-each */
        {"suit_manifest_example4.hex", 4, 3, NULL}, /* the uri is component 1's */
        {"suit_manifest_example5.hex", 5, 2, "http://example.com/file1.bin"},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(ex); i++) {
        struct tam_suit_envelope env;
        size_t len;
        uint8_t *b = parse_vector(ex[i].name, &env, &len);
        cr_assert(env.tagged);
        cr_assert_eq(env.sequence, ex[i].seq, "%s", ex[i].name);
        cr_assert_eq(env.ncomponents, ex[i].ncomp, "%s", ex[i].name);
        cr_assert(!env.has_manifest_component_id);
        cr_assert(hex_eq(env.first.vendor_id, "fa6b4a53d5ad5fdfbe9de663e4d41ffe"));
        cr_assert(hex_eq(env.first.class_id, "1492af1425695e48bf429b2d51f2ab45"));
        cr_assert_eq(env.first.has_uri, ex[i].uri != NULL, "%s", ex[i].name);
        if (ex[i].uri != NULL) {
            cr_assert(str_eq(env.first.uri, ex[i].uri), "%s", ex[i].name);
        }
        tam_free(b);
    }
}

Test(suit, example0_validate_and_invoke)
{
    struct tam_suit_envelope env;
    size_t len;
    uint8_t *b = parse_vector("suit_manifest_example0.hex", &env, &len);
    cr_assert(hex_eq(env.components[0].raw, "814100"));
    cr_assert(env.validate.present && env.invoke.present && !env.install.present);
    cr_assert(hex_eq(env.validate.seq, "82030F"));
    cr_assert(hex_eq(env.invoke.seq, "821702"));
    cr_assert_eq(env.first.image_size, 34768);
    tam_free(b);
}

Test(suit, example2_severed_members)
{
    struct tam_suit_envelope full, sev;
    size_t flen, slen;
    uint8_t *fb = parse_vector("suit_manifest_example2.hex", &full, &flen);
    uint8_t *sb = parse_vector("suit_manifest_example2.severed.hex", &sev, &slen);
    cr_assert_eq(flen, 923);
    cr_assert_eq(slen, 333);
    cr_assert(str_eq(full.reference_uri, "https://git.io/JJYoj"));
    cr_assert(full.install.severed && full.install.available);
    cr_assert(full.text.severed && full.text.available);
    cr_assert(hex_eq(full.install.digest.bytes,
                     "cfa90c5c58595e7f5119a72f803fd0370b3e6abbec6315cd38f63135281bc498"));
    cr_assert(sev.install.severed && !sev.install.available);
    cr_assert(sev.text.severed && !sev.text.available);
    cr_assert_eq(sev.install.seq.len, 0);
    /* Same manifest: severing does not change the digest. */
    cr_assert(bytes_eq(full.manifest_bstr, sev.manifest_bstr.ptr, sev.manifest_bstr.len));
    /* The severed install is walked when present. */
    cr_assert(full.first.has_uri);
    cr_assert(str_eq(full.first.uri, "http://example.com/very/long/path/to/file/file.bin"));
    cr_assert(!sev.first.has_uri);
    tam_free(fb);
    tam_free(sb);
}

Test(suit, td_integrated_dependency)
{
    struct tam_suit_envelope env, dep, inner;
    size_t len, dlen;
    uint8_t *b = parse_vector("suit_td_example2_integrated.hex", &env, &len);
    uint8_t *db = parse_vector("suit_td_example0_dependent.hex", &dep, &dlen);
    cr_assert(dep.has_manifest_component_id);
    cr_assert(str_eq(dep.manifest_component_id.seg[0], "dependent.suit"));
    cr_assert_eq(env.ndeps, 1);
    cr_assert_eq(env.deps[0].index, 1);
    cr_assert(str_eq(env.deps[0].prefix.seg[0], "dependent.suit"));
    cr_assert(str_eq(env.deps[0].params.uri, "#dependent.suit"));
    cr_assert_eq(env.deps[0].integrated, 0);
    cr_assert_eq(env.nintegrated, 1);
    cr_assert(env.integrated[0].is_dependency);
    cr_assert(bytes_eq(env.integrated[0].data, db, dlen));
    /* The integrated dependency is itself an authentic envelope with the stated digest. */
    cr_assert_eq(
        tam_suit_parse(env.integrated[0].data.ptr, env.integrated[0].data.len, &inner, NULL),
        TAM_OK);
    cr_assert_eq(tam_suit_check_digest(&inner), TAM_OK);
    cr_assert(bytes_eq(env.deps[0].params.image_digest.bytes, inner.digest.bytes.ptr,
                       inner.digest.bytes.len));
    cr_assert_eq(env.deps[0].params.image_size, dlen);
    tam_free(b);
    tam_free(db);
}

/* Update = [3, {20: token, 10: [bstr envelope]}] (old numbering), walked by hand. */
Test(suit, teep_update_embedded_envelope)
{
    size_t len;
    uint8_t *b = tu_load_hex("teep_update.hex", &len);
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    cr_assert_eq(tam_cbor_decode(b, len, NULL, &doc, NULL), TAM_OK);
    const struct tam_cbor_item *root = tam_cbor_root(&doc);
    cr_assert_eq(root->type, TAM_CBOR_ARRAY);
    uint64_t type;
    cr_assert(tam_cbor_get_uint(tam_cbor_array_at(root, 0), &type) && type == 3);
    const struct tam_cbor_item *list = tam_cbor_map_get_int(tam_cbor_array_at(root, 1), 10);
    cr_assert_not_null(list);
    struct tam_bytes envb;
    cr_assert(tam_cbor_get_bytes(tam_cbor_array_at(list, 0), &envb));
    cr_assert_eq(envb.len, 334);

    struct tam_suit_envelope env;
    const char *why = NULL;
    cr_assert_eq(tam_suit_parse(envb.ptr, envb.len, &env, &why), TAM_OK, "%s", why);
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    const struct tam_key *anchors[] = {key};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_OK);
    cr_assert_eq(env.sequence, 3);
    check_tc_component(&env.components[0], "ta");
    /* Stale layout: install sits under key 9, which is suit-invoke today. */
    cr_assert(env.invoke.present && !env.install.present);
    cr_assert(hex_eq(env.first.image_digest.bytes, TC_DIGEST));
    tam_key_destroy(key);
    tam_cbor_doc_finish(&doc);
    tam_free(b);
}

/* ---- negative ---- */

static uint8_t *find(uint8_t *b, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(b + i, needle, n) == 0) {
            return b + i;
        }
    }
    return NULL;
}

Test(suit, flipped_manifest_byte_is_a_digest_mismatch)
{
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    size_t len;
    uint8_t *b = tu_load_hex("teep_suit_uri.hex", &len);
    uint8_t *at = find(b, len, "example.org");
    cr_assert_not_null(at);
    at[0] = 'E';
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(b, len, &env, NULL), TAM_OK);
    cr_assert(str_eq(env.first.uri, "https://Example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"));
    cr_assert_eq(tam_suit_check_digest(&env), TAM_ESUIT_DIGEST);
    const struct tam_key *anchors[] = {key};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_ESUIT_DIGEST);
    tam_free(b);
    tam_key_destroy(key);
}

Test(suit, flipped_signature_or_wrong_key_fails)
{
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    struct tam_key *p256 = load_key("tam_p256.pub.pem");
    struct tam_key *ed = load_key("tam_ed25519.pub.pem");
    size_t len;
    uint8_t *b = tu_load_hex("teep_suit_integrated.hex", &len);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(b, len, &env, NULL), TAM_OK);
    const struct tam_key *wrong[] = {p256, ed};
    cr_assert_eq(tam_suit_verify(&env, wrong, 2), TAM_ESIG);
    cr_assert_eq(tam_suit_verify(&env, NULL, 0), TAM_ESIG);
    /* Last byte of the auth block is the signature's. */
    uint8_t *sig_end = (uint8_t *)(uintptr_t)(env.auth[0].ptr + env.auth[0].len - 1);
    *sig_end ^= 1;
    const struct tam_key *right[] = {key};
    cr_assert_eq(tam_suit_check_digest(&env), TAM_OK);
    cr_assert_eq(tam_suit_verify(&env, right, 1), TAM_ESIG);
    tam_free(b);
    tam_key_destroy(key);
    tam_key_destroy(p256);
    tam_key_destroy(ed);
}

Test(suit, severed_member_digest_mismatch)
{
    size_t len;
    uint8_t *b = tu_load_hex("suit_manifest_example2.hex", &len);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(b, len, &env, NULL), TAM_OK);
    cr_assert_eq(tam_suit_check_digest(&env), TAM_OK);
    /* Change one letter of the text member (severed, in the envelope). */
    uint8_t *text = (uint8_t *)(uintptr_t)env.text.seq.ptr;
    uint8_t *at = find(text, env.text.seq.len, "example");
    cr_assert_not_null(at);
    at[0] = 'E';
    cr_assert_eq(tam_suit_parse(b, len, &env, NULL), TAM_OK);
    cr_assert_eq(tam_suit_check_digest(&env), TAM_ESUIT_DIGEST);
    tam_free(b);
}

static void expect_fail(const uint8_t *b, size_t len, int want, const char *what)
{
    struct tam_suit_envelope env;
    const char *why = NULL;
    int err = tam_suit_parse(b, len, &env, &why);
    cr_assert_eq(err, want, "%s: got %s (%s)", what, tam_errname(err), why ? why : "-");
    cr_assert_not_null(why, "%s: no reason", what);
}

Test(suit, truncated_garbage_and_wrong_shapes)
{
    size_t len;
    uint8_t *b = tu_load_hex("teep_suit_uri.hex", &len);
    expect_fail(b, len - 1, TAM_ECBOR, "truncated");
    expect_fail(b, 1, TAM_ECBOR, "one byte");
    const uint8_t garbage[] = {0xff, 0x00, 0x13};
    expect_fail(garbage, sizeof(garbage), TAM_ECBOR, "garbage");
    const uint8_t array[] = {0x82, 0x01, 0x02};
    expect_fail(array, sizeof(array), TAM_ESUIT, "not a map");
    const uint8_t wrong_tag[] = {0xd8, 0x6c, 0xa0}; /* 108({}) */
    expect_fail(wrong_tag, sizeof(wrong_tag), TAM_ESUIT, "wrong tag");
    const uint8_t empty_map[] = {0xa0};
    expect_fail(empty_map, sizeof(empty_map), TAM_ESUIT, "no auth wrapper");
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(NULL, 0, &env, NULL), TAM_ECBOR);
    tam_free(b);
}

/* Hand-made envelopes for the structural rules. */
struct mk {
    bool no_auth, no_manifest, manifest_first, no_common, no_sequence;
    int64_t alg;             /* 0: -16 */
    uint64_t version;        /* 0: 1 */
    int ncomponents;         /* 0: 1; -1: none */
    bool severed_extra;      /* envelope key 20 without a manifest install */
    bool unseverable_digest; /* validate given as a SUIT_Digest */
    bool text_key_int_value; /* "#x": 1 */
};

static void mk_manifest(struct tam_cbor_writer *w, const struct mk *m)
{
    tam_cbor_open_wrap(w);
    tam_cbor_open_map(w, 1u + !m->no_sequence + !m->no_common + m->unseverable_digest);
    tam_cbor_put_uint(w, 1);
    tam_cbor_put_uint(w, m->version != 0 ? m->version : 1);
    if (!m->no_sequence) {
        tam_cbor_put_uint(w, 2);
        tam_cbor_put_uint(w, 7);
    }
    if (!m->no_common) {
        tam_cbor_put_uint(w, 3);
        tam_cbor_open_wrap(w);
        tam_cbor_open_map(w, 1);
        tam_cbor_put_uint(w, 2);
        unsigned n = m->ncomponents == 0 ? 1u : m->ncomponents < 0 ? 0u : (unsigned)m->ncomponents;
        tam_cbor_open_array(w, n);
        for (unsigned i = 0; i < n; i++) {
            tam_cbor_open_array(w, 1);
            tam_cbor_put_bstr(w, "x", 1);
        }
        tam_cbor_close_wrap(w);
    }
    if (m->unseverable_digest) {
        tam_cbor_put_uint(w, 7);
        tam_cbor_open_array(w, 2);
        tam_cbor_put_int(w, -16);
        tam_cbor_put_bstr(w, "12345678901234567890123456789012", 32);
    }
    tam_cbor_close_wrap(w);
}

static void mk_auth(struct tam_cbor_writer *w, const struct mk *m, const uint8_t md[32])
{
    tam_cbor_put_uint(w, 2);
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, 1);
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, 2);
    tam_cbor_put_int(w, m->alg != 0 ? m->alg : -16);
    tam_cbor_put_bstr(w, md, 32);
    tam_cbor_close_wrap(w);
    tam_cbor_close_wrap(w);
}

static void mk_envelope(struct tam_buf *out, const struct mk *m)
{
    struct tam_buf man;
    tam_buf_init(&man, 4096);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &man);
    mk_manifest(&w, m);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    uint8_t md[32];
    tam_sha256(man.data, man.len, md);

    /* Canonical order is not required by the parser, except auth before manifest. */
    tam_cbor_writer_init(&w, out);
    unsigned pairs = !m->no_auth + !m->no_manifest + m->severed_extra + m->text_key_int_value;
    tam_cbor_open_map(&w, pairs);
    if (!m->no_auth && !m->manifest_first) {
        mk_auth(&w, m, md);
    }
    if (!m->no_manifest) {
        tam_cbor_put_uint(&w, 3);
        tam_cbor_put_raw(&w, man.data, man.len);
    }
    if (!m->no_auth && m->manifest_first) {
        w.stack[0].prev_key = SIZE_MAX; /* bypass the writer's order check on purpose */
        mk_auth(&w, m, md);
    }
    if (m->severed_extra) {
        tam_cbor_put_uint(&w, 20);
        tam_cbor_put_bstr(&w, "\x82\x03\x0f", 3);
    }
    if (m->text_key_int_value) {
        tam_cbor_put_str(&w, "#x");
        tam_cbor_put_uint(&w, 1);
    }
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    tam_buf_finish(&man);
}

static int mk_parse(const struct mk *m, struct tam_suit_envelope *env, struct tam_buf *out,
                    const char **why)
{
    tam_buf_init(out, 1 << 16);
    mk_envelope(out, m);
    return tam_suit_parse(out->data, out->len, env, why);
}

#define MK(...) ((struct mk){__VA_ARGS__})

static void mk_expect(struct mk m, int want, const char *needle)
{
    struct tam_suit_envelope env;
    struct tam_buf out;
    const char *why = NULL;
    int err = mk_parse(&m, &env, &out, &why);
    cr_assert_eq(err, want, "%s: got %s (%s)", needle, tam_errname(err), why ? why : "-");
    if (needle != NULL) {
        cr_assert_not_null(why);
        cr_assert_not_null(strstr(why, needle), "why = %s, expected %s", why, needle);
    }
    tam_buf_finish(&out);
}

Test(suit, structural_rules)
{
    mk_expect(MK(.version = 1), TAM_OK, NULL);
    mk_expect(MK(.version = 2), TAM_ESUIT, "manifest-version");
    mk_expect(MK(.no_auth = true), TAM_ESUIT, "no authentication wrapper");
    mk_expect(MK(.no_manifest = true), TAM_ESUIT, "no manifest");
    mk_expect(MK(.manifest_first = true), TAM_ESUIT, "before the manifest");
    mk_expect(MK(.no_common = true), TAM_ESUIT, "suit-common");
    mk_expect(MK(.no_sequence = true), TAM_ESUIT, "sequence-number");
    mk_expect(MK(.ncomponents = TAM_SUIT_MAX_COMPONENTS + 1), TAM_ETOOBIG, "too many");
    mk_expect(MK(.ncomponents = -1), TAM_ESUIT, "non-empty");
    mk_expect(MK(.severed_extra = true), TAM_ESUIT, "does not reference");
    mk_expect(MK(.unseverable_digest = true), TAM_ESUIT, "unseverable");
    mk_expect(MK(.text_key_int_value = true), TAM_ESUIT, "integrated");
}

Test(suit, unknown_digest_algorithm)
{
    struct mk m = MK(.alg = -18);
    struct tam_suit_envelope env;
    struct tam_buf out;
    cr_assert_eq(mk_parse(&m, &env, &out, NULL), TAM_OK);
    cr_assert_eq(env.digest.alg, -18);
    cr_assert_eq(tam_suit_check_digest(&env), TAM_ESUIT);
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    const struct tam_key *anchors[] = {key};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_ESUIT);
    tam_key_destroy(key);
    tam_buf_finish(&out);

    m = MK(.version = 1);
    cr_assert_eq(mk_parse(&m, &env, &out, NULL), TAM_OK);
    cr_assert_eq(tam_suit_check_digest(&env), TAM_OK);
    tam_buf_finish(&out);
}

Test(suit, every_truncation_fails_cleanly)
{
    size_t len;
    uint8_t *b = tu_load_hex("teep_suit_personalization.hex", &len);
    for (size_t n = 0; n < len; n++) {
        struct tam_suit_envelope env;
        uint8_t *copy = tam_malloc(n + 1);
        memcpy(copy, b, n);
        cr_assert_neq(tam_suit_parse(copy, n, &env, NULL), TAM_OK, "prefix %zu", n);
        tam_free(copy);
    }
    tam_free(b);
}

static bool within(const uint8_t *p, struct tam_bytes span)
{
    return p >= span.ptr && p < span.ptr + span.len;
}

/* Hostile input: every single-byte corruption is parsed or refused, never crashes. */
Test(suit, every_byte_flip_is_handled)
{
    struct tam_key *key = load_key("suit_example_key_p256.pub.pem");
    const struct tam_key *anchors[] = {key};
    const char *names[] = {"teep_suit_personalization.hex", "suit_manifest_example2.hex",
                           "suit_td_example2_integrated.hex"};
    for (size_t v = 0; v < TAM_ARRAY_LEN(names); v++) {
        size_t len;
        uint8_t *b = tu_load_hex(names[v], &len);
        for (size_t i = 0; i < len; i++) {
            b[i] ^= 0xff;
            struct tam_suit_envelope env;
            if (tam_suit_parse(b, len, &env, NULL) == TAM_OK) {
                /* A flip in a signed part (the manifest, auth[0] or an auth block) must not
                 * verify; integrated members are outside the signature by design. */
                const uint8_t *at = b + i;
                bool signed_part = within(at, env.manifest_bstr) || within(at, env.digest_bstr);
                for (unsigned k = 0; k < env.nauth; k++) {
                    signed_part = signed_part || within(at, env.auth[k]);
                }
                int err = tam_suit_verify(&env, anchors, 1);
                cr_assert(!signed_part || err != TAM_OK, "%s: flip at %zu verifies", names[v], i);
            }
            b[i] ^= 0xff;
        }
        tam_free(b);
    }
    tam_key_destroy(key);
}

/* ---- building ---- */

struct scenario {
    struct tam_bytes comp[4];
    uint8_t vendor[16], klass[16], digest[32];
};

static void scenario_init(struct scenario *s)
{
    static const uint8_t uuid[16] = {0x8D, 0x82, 0x57, 0x3A, 0x92, 0x6D, 0x47, 0x54,
                                     0x93, 0x53, 0x32, 0xDC, 0x29, 0x99, 0x7F, 0x74};
    s->comp[0] = tam_bytes_of("TEEP-Device", 11);
    s->comp[1] = tam_bytes_of("SecureFS", 8);
    s->comp[2] = tam_bytes_of(uuid, 16);
    s->comp[3] = tam_bytes_of("ta", 2);
    size_t n;
    uint8_t *h = tu_hex(VENDOR_ID, &n);
    memcpy(s->vendor, h, 16);
    tam_free(h);
    h = tu_hex(CLASS_ID, &n);
    memcpy(s->klass, h, 16);
    tam_free(h);
    h = tu_hex(TC_DIGEST, &n);
    memcpy(s->digest, h, 32);
    tam_free(h);
}

static struct tam_suit_build_params scenario_params(const struct scenario *s,
                                                    enum tam_suit_build_kind kind)
{
    struct tam_suit_build_params p = {
        .kind = kind,
        .component_id = s->comp,
        .ncomponent_id = 4,
        .vendor_id = s->vendor,
        .class_id = s->klass,
        .sequence = 3,
        .uninstall = true,
    };
    if (kind == TAM_SUIT_BUILD_URI) {
        p.image_digest = s->digest;
        p.image_size = 20;
        p.uri = URI_TA;
    } else {
        p.payload = tam_bytes_of("Hello, Secure World!", 20);
    }
    return p;
}

/* Offset and length of the signature inside an envelope we built. */
static void signature_span(const struct tam_suit_envelope *env, size_t *off, size_t *len)
{
    struct tam_cose_msg msg;
    cr_assert_eq(tam_cose_parse(env->auth[0].ptr, env->auth[0].len, &msg, NULL), TAM_OK);
    *off = (size_t)(msg.signers[0].signature.ptr - env->raw.ptr);
    *len = msg.signers[0].signature.len;
}

/*
 * The brief expected the vectors' ECDSA signatures to be randomized. They are not:
 * the published examples were signed with deterministic ECDSA (RFC 6979), as ours
 * are, so the whole envelope is reproduced byte for byte, signature included. The
 * parts are still compared one by one so that a failure says which one differs.
 */
static void compare_with_vector(const char *name, const struct tam_buf *built,
                                const struct tam_key *pub)
{
    struct tam_suit_envelope vec, ours;
    size_t vlen;
    uint8_t *vb = parse_vector(name, &vec, &vlen);
    const char *why = NULL;
    cr_assert_eq(tam_suit_parse(built->data, built->len, &ours, &why), TAM_OK, "%s", why);
    cr_assert(bytes_eq(ours.manifest_bstr, vec.manifest_bstr.ptr, vec.manifest_bstr.len),
              "%s: manifest differs", name);
    cr_assert(bytes_eq(ours.digest_bstr, vec.digest_bstr.ptr, vec.digest_bstr.len));
    cr_assert_eq(built->len, vlen, "%s: %zu vs %zu bytes", name, built->len, vlen);
    size_t off, slen;
    signature_span(&ours, &off, &slen);
    cr_assert_eq(slen, 64);
    cr_assert_eq(memcmp(built->data, vb, off), 0, "%s: bytes before the signature", name);
    cr_assert_eq(memcmp(built->data + off + slen, vb + off + slen, vlen - off - slen), 0,
                 "%s: bytes after the signature", name);
    cr_assert_eq(memcmp(built->data + off, vb + off, slen), 0, "%s: signature", name);
    const struct tam_key *anchors[] = {pub};
    cr_assert_eq(tam_suit_verify(&ours, anchors, 1), TAM_OK);
    tam_free(vb);
}

Test(suit, build_reproduces_teep_scenario_1_uri)
{
    struct tam_key *priv = load_key("suit_example_key_p256.priv.pem");
    struct tam_key *pub = load_key("suit_example_key_p256.pub.pem");
    struct scenario s;
    scenario_init(&s);
    struct tam_suit_build_params p = scenario_params(&s, TAM_SUIT_BUILD_URI);
    struct tam_buf out;
    tam_buf_init(&out, 1 << 20);
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_OK);
    compare_with_vector("teep_suit_uri.hex", &out, pub);
    tam_buf_finish(&out);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

Test(suit, build_reproduces_teep_scenario_2_integrated)
{
    struct tam_key *priv = load_key("suit_example_key_p256.priv.pem");
    struct tam_key *pub = load_key("suit_example_key_p256.pub.pem");
    struct scenario s;
    scenario_init(&s);
    struct tam_suit_build_params p = scenario_params(&s, TAM_SUIT_BUILD_INTEGRATED);
    struct tam_buf out;
    tam_buf_init(&out, 1 << 20);
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_OK);
    compare_with_vector("teep_suit_integrated.hex", &out, pub);
    tam_buf_finish(&out);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

/* Finds override-parameters {18: content, 19: encryption-info} in the vector's install. */
static void vector_content(const struct tam_suit_envelope *env, struct tam_bytes *content,
                           struct tam_bytes *enc)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    cr_assert_eq(tam_cbor_decode(env->install.seq.ptr, env->install.seq.len, NULL, &doc, NULL),
                 TAM_OK);
    const struct tam_cbor_item *seq = tam_cbor_root(&doc);
    bool found = false;
    for (uint32_t i = 0; i + 1 < seq->count; i += 2) {
        const struct tam_cbor_item *arg = tam_cbor_array_at(seq, i + 1);
        const struct tam_cbor_item *c = tam_cbor_map_get_int(arg, 18);
        if (c != NULL) {
            cr_assert(tam_cbor_get_bytes(c, content));
            cr_assert(tam_cbor_get_bytes(tam_cbor_map_get_int(arg, 19), enc));
            found = true;
        }
    }
    cr_assert(found);
    tam_cbor_doc_finish(&doc);
}

Test(suit, build_reproduces_teep_scenario_3_personalization)
{
    struct tam_key *priv = load_key("suit_example_key_p256.priv.pem");
    struct tam_key *pub = load_key("suit_example_key_p256.pub.pem");
    struct tam_suit_envelope vec, uri;
    size_t vlen, ulen;
    uint8_t *vb = parse_vector("teep_suit_personalization.hex", &vec, &vlen);
    uint8_t *ub = parse_vector("teep_suit_uri.hex", &uri, &ulen);
    struct tam_bytes content, enc;
    vector_content(&vec, &content, &enc);
    cr_assert_eq(content.len, 61);

    struct scenario s;
    scenario_init(&s);
    struct tam_bytes comp[3] = {s.comp[0], s.comp[1], tam_bytes_of("config.json", 11)};
    struct tam_bytes mcid[3] = {s.comp[0], s.comp[1], tam_bytes_of("config.suit", 11)};
    struct tam_bytes prefix[4] = {s.comp[0], s.comp[1], s.comp[2], tam_bytes_of("suit", 4)};
    uint8_t dep_digest[32], plain_digest[32];
    tam_suit_manifest_digest(&uri, dep_digest);
    size_t n;
    uint8_t *h = tu_hex("8273468FB64BD84BB04825F8371744D952B751C73A60F455AF681E167726F116", &n);
    memcpy(plain_digest, h, 32);
    tam_free(h);
    struct tam_suit_build_dep dep = {
        .prefix = prefix, .nprefix = 4, .digest = dep_digest, .size = 389, .uri = URI_SUIT};
    struct tam_suit_build_params p = {
        .kind = TAM_SUIT_BUILD_CONTENT,
        .component_id = comp,
        .ncomponent_id = 3,
        .manifest_component_id = mcid,
        .nmanifest_component_id = 3,
        .vendor_id = s.vendor,
        .class_id = s.klass,
        .sequence = 3,
        .image_digest = plain_digest,
        .image_size = 61,
        .payload = content,
        .encryption_info = enc,
        .dependency = &dep,
        .uninstall = true,
    };
    struct tam_buf out;
    tam_buf_init(&out, 1 << 20);
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_OK);
    compare_with_vector("teep_suit_personalization.hex", &out, pub);
    /* Without the plaintext digest an encrypted payload cannot be described. */
    p.image_digest = NULL;
    size_t before = out.len;
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_EINVAL);
    cr_assert_eq(out.len, before);
    tam_buf_finish(&out);
    tam_free(vb);
    tam_free(ub);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

static void build_twice_identical(const char *priv_name, const char *pub_name, int alg)
{
    struct tam_key *priv = load_key(priv_name);
    struct tam_key *pub = load_key(pub_name);
    struct scenario s;
    scenario_init(&s);
    struct tam_suit_build_params p = scenario_params(&s, TAM_SUIT_BUILD_INTEGRATED);
    p.tagged = true;
    p.reference_uri = "https://tam.example/manifests/1";
    struct tam_buf a, b;
    tam_buf_init(&a, 1 << 20);
    tam_buf_init(&b, 1 << 20);
    cr_assert_eq(tam_suit_build(&p, priv, alg, &a), TAM_OK);
    cr_assert_eq(tam_suit_build(&p, priv, alg, &b), TAM_OK);
    cr_assert_eq(a.len, b.len);
    cr_assert_eq(memcmp(a.data, b.data, a.len), 0);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(a.data, a.len, &env, NULL), TAM_OK);
    cr_assert(env.tagged);
    cr_assert(str_eq(env.reference_uri, "https://tam.example/manifests/1"));
    const struct tam_key *anchors[] = {pub};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_OK);
    struct tam_cose_msg msg;
    cr_assert_eq(tam_cose_parse(env.auth[0].ptr, env.auth[0].len, &msg, NULL), TAM_OK);
    cr_assert_eq(msg.signers[0].alg, alg);
    tam_buf_finish(&a);
    tam_buf_finish(&b);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

Test(suit, build_is_deterministic)
{
    build_twice_identical("suit_example_key_p256.priv.pem", "suit_example_key_p256.pub.pem",
                          TAM_ALG_ESP256);
    build_twice_identical("suit_example_key_p256.priv.pem", "suit_example_key_p256.pub.pem",
                          TAM_ALG_ES256);
    build_twice_identical("tam_ed25519.priv.pem", "tam_ed25519.pub.pem", TAM_ALG_ED25519);
    build_twice_identical("tam_ed25519.priv.pem", "tam_ed25519.pub.pem", TAM_ALG_EDDSA);
}

Test(suit, build_content_without_dependency)
{
    struct tam_key *priv = load_key("tam_ed25519.priv.pem");
    struct tam_key *pub = load_key("tam_ed25519.pub.pem");
    struct scenario s;
    scenario_init(&s);
    struct tam_suit_build_params p = scenario_params(&s, TAM_SUIT_BUILD_CONTENT);
    p.vendor_id = NULL;
    p.class_id = NULL;
    p.payload = tam_bytes_of("{\"k\":1}", 7);
    struct tam_buf out;
    tam_buf_init(&out, 1 << 20);
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ED25519, &out), TAM_OK);
    struct tam_suit_envelope env;
    const char *why = NULL;
    cr_assert_eq(tam_suit_parse(out.data, out.len, &env, &why), TAM_OK, "%s", why);
    const struct tam_key *anchors[] = {pub};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_OK);
    cr_assert(!env.has_shared);
    cr_assert(env.validate.present);
    cr_assert(!env.first.has_vendor_id);
    check_tc_component(&env.manifest_component_id, "suit");
    tam_buf_finish(&out);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

Test(suit, build_rejects_bad_parameters)
{
    struct tam_key *priv = load_key("suit_example_key_p256.priv.pem");
    struct tam_key *pub = load_key("suit_example_key_p256.pub.pem");
    struct scenario s;
    scenario_init(&s);
    struct tam_buf out;
    tam_buf_init(&out, 1 << 20);
    struct tam_suit_build_params p = scenario_params(&s, TAM_SUIT_BUILD_URI);
    p.uri = NULL;
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_EINVAL);
    p = scenario_params(&s, TAM_SUIT_BUILD_URI);
    p.ncomponent_id = 0;
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_EINVAL);
    p.ncomponent_id = TAM_SUIT_MAX_SEGMENTS + 1;
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_EINVAL);
    p = scenario_params(&s, TAM_SUIT_BUILD_URI);
    p.kind = (enum tam_suit_build_kind)9;
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ESP256, &out), TAM_EINVAL);
    p = scenario_params(&s, TAM_SUIT_BUILD_URI);
    cr_assert_eq(tam_suit_build(&p, priv, TAM_ALG_ED25519, &out), TAM_ECOSE_ALG);
    cr_assert_neq(tam_suit_build(&p, pub, TAM_ALG_ESP256, &out), TAM_OK); /* no private key */
    cr_assert_eq(out.len, 0);
    tam_buf_finish(&out);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}
