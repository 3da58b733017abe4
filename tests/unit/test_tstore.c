/* Tenant record codecs, tokens and key sealing (tstore.h, seal.h). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/keys.h"
#include "tam/seal.h"
#include "tam/tstore.h"
#include "testutil.h"

/* ---- base64 ---- */

static void b64_roundtrip(const char *plain, const char *enc)
{
    char out[64];
    size_t n = tam_tstore_b64url_encode((const uint8_t *)plain, strlen(plain), out);
    cr_assert_eq(n, strlen(enc));
    cr_assert_str_eq(out, enc);
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_tstore_b64_decode(enc, strlen(enc), &b), TAM_OK);
    cr_assert_eq(b.len, strlen(plain));
    cr_assert(b.len == 0 || memcmp(b.data, plain, b.len) == 0);
    tam_buf_finish(&b);
}

Test(b64, rfc4648_vectors)
{
    b64_roundtrip("", "");
    b64_roundtrip("f", "Zg");
    b64_roundtrip("fo", "Zm8");
    b64_roundtrip("foo", "Zm9v");
    b64_roundtrip("foob", "Zm9vYg");
    b64_roundtrip("fooba", "Zm9vYmE");
    b64_roundtrip("foobar", "Zm9vYmFy");
}

Test(b64, decodes_standard_alphabet_and_padding)
{
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_tstore_b64_decode("Zm8=", 4, &b), TAM_OK);
    cr_assert_eq(b.len, 2);
    tam_buf_reset(&b);
    cr_assert_eq(tam_tstore_b64_decode("+/+/", 4, &b), TAM_OK);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(b.data[0], 0xfb);
    tam_buf_reset(&b);
    cr_assert_eq(tam_tstore_b64_decode("-_-_", 4, &b), TAM_OK);
    cr_assert_eq(b.data[0], 0xfb);
    tam_buf_finish(&b);
}

Test(b64, rejects_garbage)
{
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_tstore_b64_decode("Z", 1, &b), TAM_EINVAL);
    cr_assert_eq(tam_tstore_b64_decode("Zm9v!", 5, &b), TAM_EINVAL);
    cr_assert_eq(tam_tstore_b64_decode("Zm 9v", 5, &b), TAM_EINVAL);
    cr_assert_eq(tam_tstore_b64_decode("Zh", 2, &b), TAM_EINVAL); /* non-zero unused bits */
    cr_assert_eq(b.len, 0);
    tam_buf_finish(&b);
}

/* ---- tokens ---- */

Test(token, fresh_tokens_have_the_shape_and_hash)
{
    char t1[TAM_TSTORE_TOKEN_LEN + 1], t2[TAM_TSTORE_TOKEN_LEN + 1];
    uint8_t h1[32], h2[32], check[32];
    cr_assert_eq(tam_tstore_token_new(t1, h1), TAM_OK);
    cr_assert_eq(tam_tstore_token_new(t2, h2), TAM_OK);
    cr_assert_eq(strlen(t1), TAM_TSTORE_TOKEN_LEN);
    cr_assert(tam_tstore_token_syntax_ok(t1, strlen(t1)));
    cr_assert_str_neq(t1, t2);
    tam_sha256(t1, strlen(t1), check);
    cr_assert_eq(memcmp(check, h1, 32), 0);
    char sel[TAM_TSTORE_SELECTOR_HEX + 1], hex[65];
    tam_tstore_token_selector(h1, sel);
    tam_hex_encode(h1, 32, hex);
    cr_assert_eq(strlen(sel), 16);
    cr_assert_eq(strncmp(sel, hex, 16), 0);
}

Test(token, syntax)
{
    cr_assert_not(tam_tstore_token_syntax_ok("abc", 3));
    char t[44];
    memset(t, 'A', 43);
    t[43] = '\0';
    cr_assert(tam_tstore_token_syntax_ok(t, 43));
    t[10] = '=';
    cr_assert_not(tam_tstore_token_syntax_ok(t, 43));
    t[10] = '/';
    cr_assert_not(tam_tstore_token_syntax_ok(t, 43));
}

Test(token, index_values)
{
    char tok[TAM_TSTORE_TOKEN_LEN + 1];
    uint8_t h[32], other[32];
    cr_assert_eq(tam_tstore_token_new(tok, h), TAM_OK);
    memcpy(other, h, 32);
    other[31] ^= 1;
    char v[TAM_TSTORE_INDEX_MAX];
    struct tam_tstore_owner o;
    size_t n = tam_tstore_index_value(v, NULL, h);
    cr_assert_eq(n, 3 + 64);
    cr_assert_eq(tam_tstore_index_check(v, n, h, &o), TAM_OK);
    cr_assert(o.is_operator);
    cr_assert_eq(tam_tstore_index_check(v, n, other, &o), TAM_EDENIED);
    n = tam_tstore_index_value(v, "acme-1", h);
    cr_assert_eq(tam_tstore_index_check(v, n, h, &o), TAM_OK);
    cr_assert_not(o.is_operator);
    cr_assert_str_eq(o.tenant, "acme-1");
    cr_assert_eq(tam_tstore_index_check(v, n - 1, h, &o), TAM_EINVAL);
    cr_assert_eq(tam_tstore_index_check("t:Bad x", 7, h, &o), TAM_EINVAL);
    v[0] = 'x';
    cr_assert_eq(tam_tstore_index_check(v, n, h, &o), TAM_EINVAL);
}

/* ---- keys ---- */

Test(keys, names)
{
    char k[TAM_KEY_MAX];
    tam_tstore_key_anchors(k, "acme", TAM_ANCHOR_TC_SIGNER);
    cr_assert_str_eq(k, "tam:t:{acme}:anchors:tc-signer");
    tam_tstore_key_anchors(k, "acme", TAM_ANCHOR_VERIFIER);
    cr_assert_str_eq(k, "tam:t:{acme}:anchors:verifier");
    enum tam_anchor_kind kind;
    cr_assert_eq(tam_tstore_anchor_kind_parse("attester", 8, &kind), TAM_OK);
    cr_assert_eq(kind, TAM_ANCHOR_ATTESTER);
    cr_assert_eq(tam_tstore_anchor_kind_parse("attest", 6, &kind), TAM_EINVAL);
    cr_assert_str_eq(tam_tstore_key_slot(TAM_KEY_P256, false), "p256");
    cr_assert_str_eq(tam_tstore_key_slot(TAM_KEY_ED25519, true), "manifest:ed25519");
    char ev[80];
    tam_tstore_event_tenant(ev, sizeof(ev), "acme");
    cr_assert_str_eq(ev, "tenant acme");
}

/* ---- configuration ---- */

Test(cfg, defaults_match_tenant_create)
{
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    struct tam_tenant *t = tam_tenant_create("x");
    cr_assert_eq(c.numbering, t->numbering);
    cr_assert_eq(c.attestation, t->attestation);
    cr_assert_eq(c.enrollment, t->enrollment);
    cr_assert_eq(c.limits.session_ttl_s, t->session_ttl_s);
    cr_assert_eq(c.limits.update_ttl_s, t->update_ttl_s);
    cr_assert_eq(c.limits.max_pending_per_device, t->max_pending_per_device);
    cr_assert_eq(c.limits.challenge_len, t->challenge_len);
    cr_assert_eq(c.limits.max_kidless_tries, t->max_kidless_tries);
    cr_assert_eq(tam_tstore_cfg_check(&c, NULL), TAM_OK);
    tam_tenant_unref(t);
}

Test(cfg, roundtrip_through_fields)
{
    struct tam_tstore_cfg c, d;
    tam_tstore_cfg_default(&c);
    c.numbering = TAM_TEEP_DRAFT12;
    c.legacy_alg_ids = true;
    c.attestation = TAM_ATTEST_NONE;
    c.sign1_only = true;
    c.limits.max_devices = 7;
    c.limits.challenge_len = 9;
    c.created_ms = 1700000000123ull;
    c.rev = 5;
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t n = tam_tstore_cfg_encode(&c, f);
    cr_assert_eq(n, TAM_TSTORE_CFG_FIELDS);
    tam_tstore_cfg_default(&d);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(tam_tstore_cfg_set(&d, f[i].name, f[i].value, strlen(f[i].value)), TAM_OK,
                     "%s", f[i].name);
    }
    cr_assert_eq(memcmp(&c, &d, sizeof(c)), 0);
    cr_assert_eq(tam_tstore_cfg_set(&d, "from_the_future", "x", 1), TAM_OK);
    cr_assert_eq(tam_tstore_cfg_set(&d, "numbering", "rfc9999", 7), TAM_EINVAL);
    cr_assert_eq(tam_tstore_cfg_set(&d, "max_devices", "-1", 2), TAM_EINVAL);
    cr_assert_eq(tam_tstore_cfg_set(&d, "max_devices", "012", 3), TAM_EINVAL);
    cr_assert_eq(tam_tstore_cfg_set(&d, "max_devices", "99999999999", 11), TAM_EINVAL);
    cr_assert_eq(tam_tstore_cfg_set(&d, "sign1_only", "yes", 3), TAM_EINVAL);
}

Test(cfg, combinations)
{
    struct tam_tstore_cfg c;
    const char *why = NULL;
    tam_tstore_cfg_default(&c);
    c.legacy_alg_ids = true;
    cr_assert_eq(tam_tstore_cfg_check(&c, &why), TAM_EINVAL);
    cr_assert_not_null(why);
    c.numbering = TAM_TEEP_DRAFT;
    cr_assert_eq(tam_tstore_cfg_check(&c, NULL), TAM_OK);
    c.numbering = TAM_TEEP_DRAFT12;
    c.legacy_alg_ids = false;
    cr_assert_eq(tam_tstore_cfg_check(&c, NULL), TAM_EINVAL);
    tam_tstore_cfg_default(&c);
    c.enrollment = TAM_ENROLL_ATTESTED;
    c.attestation = TAM_ATTEST_NONE;
    cr_assert_eq(tam_tstore_cfg_check(&c, NULL), TAM_EINVAL);
    tam_tstore_cfg_default(&c);
    c.limits.challenge_len = 65;
    cr_assert_eq(tam_tstore_cfg_check(&c, NULL), TAM_EINVAL);
}

/* ---- sealing ---- */

static const uint8_t kek1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

Test(seal, kek_roundtrip_and_tamper_detection)
{
    const char *secret = "-----BEGIN PRIVATE KEY----- not really -----END PRIVATE KEY-----";
    const char *aad = "tamgate:acme:p256";
    struct tam_buf blob, out;
    tam_buf_init(&blob, 4096);
    tam_buf_init(&out, 4096);
    cr_assert_eq(
        tam_seal_kek(kek1, aad, strlen(aad), (const uint8_t *)secret, strlen(secret), &blob),
        TAM_OK);
    cr_assert_eq(blob.len, strlen(secret) + TAM_SEAL_KEK_OVERHEAD);
    cr_assert_eq(blob.data[0], TAM_SEAL_V_KEK);
    cr_assert_eq(tam_unseal_kek(kek1, aad, strlen(aad), blob.data, blob.len, &out), TAM_OK);
    cr_assert_eq(out.len, strlen(secret));
    cr_assert_eq(memcmp(out.data, secret, out.len), 0);
    /* Every single flipped byte after the version is detected; nothing is output. */
    for (size_t i = 1; i < blob.len; i++) {
        tam_buf_reset(&out);
        blob.data[i] ^= 0x40;
        cr_assert_eq(tam_unseal_kek(kek1, aad, strlen(aad), blob.data, blob.len, &out), TAM_ESIG,
                     "byte %zu", i);
        cr_assert_eq(out.len, 0);
        blob.data[i] ^= 0x40;
    }
    uint8_t kek2[32];
    memcpy(kek2, kek1, 32);
    kek2[0] ^= 1;
    cr_assert_eq(tam_unseal_kek(kek2, aad, strlen(aad), blob.data, blob.len, &out), TAM_ESIG);
    cr_assert_eq(tam_unseal_kek(kek1, "tamgate:other:p256", 18, blob.data, blob.len, &out),
                 TAM_ESIG);
    cr_assert_eq(tam_unseal_kek(kek1, aad, strlen(aad), blob.data, 10, &out), TAM_EINVAL);
    blob.data[0] = 9;
    cr_assert_eq(tam_unseal_kek(kek1, aad, strlen(aad), blob.data, blob.len, &out), TAM_EINVAL);
    /* Two seals of one secret differ (random nonce). */
    struct tam_buf b2;
    tam_buf_init(&b2, 4096);
    blob.data[0] = TAM_SEAL_V_KEK;
    cr_assert_eq(tam_seal_kek(kek1, aad, strlen(aad), (const uint8_t *)secret, strlen(secret), &b2),
                 TAM_OK);
    cr_assert_neq(memcmp(b2.data, blob.data, blob.len), 0);
    tam_buf_finish(&b2);
    tam_buf_finish(&blob);
    tam_buf_finish(&out);
}

Test(seal, worker_roundtrip_and_wrong_recipient)
{
    struct tam_key *w = NULL, *w2 = NULL, *wpub = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &w), TAM_OK);
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &w2), TAM_OK);
    uint8_t raw[64];
    size_t rn = tam_key_public_raw(w, raw);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, raw, rn, &wpub), TAM_OK);
    const char *secret = "manifest key material";
    const char *aad = "tamgate:acme:manifest:p256";
    struct tam_buf blob, out;
    tam_buf_init(&blob, 4096);
    tam_buf_init(&out, 4096);
    /* Sealing needs only the public half. */
    cr_assert_eq(
        tam_seal_worker(wpub, aad, strlen(aad), (const uint8_t *)secret, strlen(secret), &blob),
        TAM_OK);
    cr_assert_eq(blob.len, strlen(secret) + TAM_SEAL_WORKER_OVERHEAD);
    cr_assert_eq(blob.data[0], TAM_SEAL_V_WORKER);
    cr_assert_eq(tam_unseal_worker(w, aad, strlen(aad), blob.data, blob.len, &out), TAM_OK);
    cr_assert_eq(out.len, strlen(secret));
    cr_assert_eq(memcmp(out.data, secret, out.len), 0);
    tam_buf_reset(&out);
    cr_assert_eq(tam_unseal_worker(w2, aad, strlen(aad), blob.data, blob.len, &out), TAM_ESIG);
    cr_assert_eq(tam_unseal_worker(wpub, aad, strlen(aad), blob.data, blob.len, &out), TAM_EKEY);
    cr_assert_eq(tam_unseal_worker(w, "x", 1, blob.data, blob.len, &out), TAM_ESIG);
    /* A damaged ephemeral key is not a point (or derives another key). */
    blob.data[5] ^= 1;
    int err = tam_unseal_worker(w, aad, strlen(aad), blob.data, blob.len, &out);
    cr_assert(err == TAM_EINVAL || err == TAM_ESIG, "%d", err);
    blob.data[5] ^= 1;
    blob.data[blob.len - 1] ^= 1;
    cr_assert_eq(tam_unseal_worker(w, aad, strlen(aad), blob.data, blob.len, &out), TAM_ESIG);
    cr_assert_eq(out.len, 0);
    /* A KEK blob is not a worker blob. */
    cr_assert_eq(tam_unseal_kek(kek1, aad, strlen(aad), blob.data, blob.len, &out), TAM_EINVAL);
    struct tam_key *ed = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_ED25519, &ed), TAM_OK);
    cr_assert_eq(tam_seal_worker(ed, aad, strlen(aad), (const uint8_t *)"x", 1, &blob), TAM_EKEY);
    tam_key_destroy(ed);
    tam_key_destroy(w);
    tam_key_destroy(w2);
    tam_key_destroy(wpub);
    tam_buf_finish(&blob);
    tam_buf_finish(&out);
}

Test(seal, private_keys_both_ways)
{
    struct tam_key *w = NULL, *p = NULL, *e = NULL, *back = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &w), TAM_OK);
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &p), TAM_OK);
    cr_assert_eq(tam_key_generate(TAM_KEY_ED25519, &e), TAM_OK);
    struct tam_buf b1, b2;
    tam_buf_init(&b1, 8192);
    tam_buf_init(&b2, 8192);
    cr_assert_eq(tam_seal_key_kek(kek1, "acme", "p256", p, &b1), TAM_OK);
    cr_assert_eq(tam_seal_key_worker(w, "acme", "manifest:ed25519", e, &b2), TAM_OK);
    cr_assert_eq(tam_unseal_key(kek1, NULL, "acme", "p256", b1.data, b1.len, &back), TAM_OK);
    cr_assert(tam_key_has_private(back));
    cr_assert_eq(memcmp(tam_key_kid(back), tam_key_kid(p), 32), 0);
    tam_key_destroy(back);
    cr_assert_eq(tam_unseal_key(NULL, w, "acme", "manifest:ed25519", b2.data, b2.len, &back),
                 TAM_OK);
    cr_assert_eq(memcmp(tam_key_kid(back), tam_key_kid(e), 32), 0);
    tam_key_destroy(back);
    /* Bound to the tenant and slot: a blob moved elsewhere does not open. */
    cr_assert_eq(tam_unseal_key(kek1, NULL, "evil", "p256", b1.data, b1.len, &back), TAM_ESIG);
    cr_assert_eq(tam_unseal_key(kek1, NULL, "acme", "ed25519", b1.data, b1.len, &back), TAM_ESIG);
    cr_assert_null(back);
    /* The needed key is missing. */
    cr_assert_eq(tam_unseal_key(NULL, w, "acme", "p256", b1.data, b1.len, &back), TAM_EKEY);
    cr_assert_eq(tam_unseal_key(kek1, NULL, "acme", "manifest:ed25519", b2.data, b2.len, &back),
                 TAM_EKEY);
    tam_key_destroy(w);
    tam_key_destroy(p);
    tam_key_destroy(e);
    tam_buf_finish(&b1);
    tam_buf_finish(&b2);
}

/* ---- key files ---- */

static char tmpdir[64];

static void mkdir_tmp(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/tstore-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmp(const char *const *names)
{
    char p[128];
    for (size_t i = 0; names[i] != NULL; i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
        (void)unlink(p);
    }
    (void)rmdir(tmpdir);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

Test(keyfile, kek_created_once_0600)
{
    mkdir_tmp();
    char path[128];
    snprintf(path, sizeof(path), "%s/kek.key", tmpdir);
    uint8_t k1[32], k2[32];
    bool created = false;
    cr_assert_eq(tam_seal_kek_load(path, false, k1, &created), TAM_ERRNO(ENOENT));
    cr_assert_eq(tam_seal_kek_load(path, true, k1, &created), TAM_OK);
    cr_assert(created);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 32);
    cr_assert_eq(tam_seal_kek_load(path, true, k2, &created), TAM_OK);
    cr_assert_not(created);
    cr_assert_eq(memcmp(k1, k2, 32), 0);
    /* 64 hex digits and a newline are accepted too; other sizes are not. */
    char hex[70];
    tam_hex_encode(kek1, 32, hex);
    hex[64] = '\n';
    hex[65] = '\0';
    unlink(path);
    write_file(path, hex, strlen(hex));
    cr_assert_eq(tam_seal_kek_load(path, false, k2, NULL), TAM_OK);
    cr_assert_eq(memcmp(k2, kek1, 32), 0);
    write_file(path, "short", 5);
    cr_assert_eq(tam_seal_kek_load(path, false, k2, NULL), TAM_EINVAL);
    hex[3] = 'x';
    write_file(path, hex, strlen(hex));
    cr_assert_eq(tam_seal_kek_load(path, false, k2, NULL), TAM_EINVAL);
    rm_tmp((const char *const[]){"kek.key", NULL});
}

Test(keyfile, worker_key_created_once)
{
    mkdir_tmp();
    char path[128];
    snprintf(path, sizeof(path), "%s/worker-seal.pem", tmpdir);
    struct tam_key *a = NULL, *b = NULL;
    bool created = false;
    cr_assert_eq(tam_seal_worker_key_load(path, true, &a, &created), TAM_OK);
    cr_assert(created);
    cr_assert(tam_key_has_private(a));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(tam_seal_worker_key_load(path, true, &b, &created), TAM_OK);
    cr_assert_not(created);
    cr_assert_eq(memcmp(tam_key_kid(a), tam_key_kid(b), 32), 0);
    tam_key_destroy(b);
    /* A public key or an Ed25519 key is refused. */
    size_t n;
    char *pub = tu_load_text("agent_p256.pub.pem", &n);
    unlink(path);
    write_file(path, pub, n);
    cr_assert_eq(tam_seal_worker_key_load(path, false, &b, NULL), TAM_EKEY);
    tam_free(pub);
    char *ed = tu_load_text("tam_ed25519.priv.pem", &n);
    write_file(path, ed, n);
    cr_assert_eq(tam_seal_worker_key_load(path, false, &b, NULL), TAM_EKEY);
    cr_assert_null(b);
    tam_free(ed);
    tam_key_destroy(a);
    rm_tmp((const char *const[]){"worker-seal.pem", NULL});
}

/* ---- tenant snapshot ---- */

static struct tam_tstore_kv kv_str(const char *name, const char *value)
{
    struct tam_tstore_kv kv = {name, strlen(name), (const uint8_t *)value, strlen(value)};
    return kv;
}

Test(tenant, build_from_hashes)
{
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    c.numbering = TAM_TEEP_DRAFT;
    c.legacy_alg_ids = true;
    c.limits.session_ttl_s = 42;
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t nf = tam_tstore_cfg_encode(&c, f);
    struct tam_tstore_kv cfg[TAM_TSTORE_CFG_FIELDS];
    for (size_t i = 0; i < nf; i++) {
        cfg[i] = kv_str(f[i].name, f[i].value);
    }
    size_t n;
    char *pem = tu_load_text("tam_p256.priv.pem", &n);
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_pem(pem, n, &k), TAM_OK);
    tam_free(pem);
    struct tam_buf sealed;
    tam_buf_init(&sealed, 8192);
    cr_assert_eq(tam_seal_key_kek(kek1, "acme", "p256", k, &sealed), TAM_OK);
    struct tam_tstore_kv keys[2] = {
        {"p256", 4, sealed.data, sealed.len},
        kv_str("p256:pub", "ignored"),
    };
    struct tam_tenant *t = NULL;
    cr_assert_eq(tam_tstore_tenant_build("acme", cfg, nf, keys, 2, kek1, &t), TAM_OK);
    cr_assert_str_eq(t->id, "acme");
    cr_assert_eq(t->numbering, TAM_TEEP_DRAFT);
    cr_assert(t->legacy_alg_ids);
    cr_assert_eq(t->session_ttl_s, 42);
    cr_assert_not_null(t->tam_keys[0]);
    cr_assert_null(t->tam_keys[1]);
    cr_assert_eq(memcmp(tam_key_kid(t->tam_keys[0]), tam_key_kid(k), 32), 0);
    cr_assert_eq(tam_tenant_wire_alg(t, TAM_KEY_P256), TAM_ALG_ES256);
    tam_tenant_unref(t);
    uint8_t wrong[32] = {0};
    cr_assert_eq(tam_tstore_tenant_build("acme", cfg, nf, keys, 2, wrong, &t), TAM_ESIG);
    cr_assert_null(t);
    cr_assert_eq(tam_tstore_tenant_build("acme", cfg, 0, keys, 2, kek1, &t), TAM_ENOTFOUND);
    tam_key_destroy(k);
    tam_buf_finish(&sealed);
}
