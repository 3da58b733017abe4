/* Tests for include/tam/crypto.h against the shared vectors and RFC test vectors. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static struct tam_key *load_pem(const char *name)
{
    size_t len;
    char *pem = tu_load_text(name, &len);
    struct tam_key *key = NULL;
    int rc = tam_key_from_pem(pem, len, &key);
    tam_free(pem);
    cr_assert_eq(rc, TAM_OK, "%s: %s", name, tam_errname(rc));
    cr_assert_not_null(key);
    return key;
}

static int pem_rc(const char *pem)
{
    struct tam_key *key = NULL;
    int rc = tam_key_from_pem(pem, strlen(pem), &key);
    if (rc == TAM_OK) {
        cr_assert_not_null(key);
        tam_key_destroy(key);
    } else {
        cr_assert_null(key);
    }
    return rc;
}

static void assert_hex(const uint8_t *got, size_t len, const char *want_hex)
{
    size_t want_len;
    uint8_t *want = tu_hex(want_hex, &want_len);
    char got_hex[2 * 128 + 1];
    cr_assert_leq(len, 128);
    tam_hex_encode(got, len, got_hex);
    cr_assert_eq(len, want_len, "length %zu != %zu", len, want_len);
    cr_assert(memcmp(got, want, len) == 0, "got %s want %s", got_hex, want_hex);
    tam_free(want);
}

static void assert_same_public(const struct tam_key *a, const struct tam_key *b)
{
    uint8_t ra[64];
    uint8_t rb[64];
    size_t la = tam_key_public_raw(a, ra);
    size_t lb = tam_key_public_raw(b, rb);
    cr_assert_eq(tam_key_type(a), tam_key_type(b));
    cr_assert_eq(la, lb);
    cr_assert(memcmp(ra, rb, la) == 0);
    cr_assert(memcmp(tam_key_kid(a), tam_key_kid(b), TAM_KID_LEN) == 0);
}

static void sign_ok(const struct tam_key *key, int alg, const void *msg, size_t len,
                    uint8_t sig[TAM_SIG_MAX])
{
    size_t sig_len = 0;
    int rc = tam_sign(key, alg, msg, len, sig, &sig_len);
    cr_assert_eq(rc, TAM_OK, "sign alg %d: %s", alg, tam_errname(rc));
    cr_assert_eq(sig_len, 64);
}

static const char tam_p256_kid[] =
    "c770ec535d8c949586324adaf2ddffb76b1a852dfa52e19c80f7440ec163beea";
static const char tam_ed25519_kid[] =
    "2daf64ab7e2f1b101fa305add0f09cb9179f49d89f8bb15630b5aa36d725d036";

/* ---- import of the shared vectors -------------------------------------------------------- */

struct vector_key {
    const char *name;
    enum tam_key_type type;
    const char *pub_hex; /* x||y or the Ed25519 public key */
};

static const struct vector_key vector_keys[] = {
    {"tam_p256", TAM_KEY_P256,
     "0e908aa8f066db1f084e0c3652c63952bd99f2a5bdb22f9e01367aad03aba68b"
     "77da1bd8ac4f0cb490ba210648bf79ab164d49ad3551d71d314b2749ee42d29a"},
    {"agent_p256", TAM_KEY_P256,
     "5886cd61dd875862e5aaa820e7a15274c968a9bc96048ddcace32f50c3651ba3"
     "9eed8125e932cd60c0ead3650d0a485cf726d378d1b016ed4298b2961e258f1b"},
    {"suit_example_key_p256", TAM_KEY_P256,
     "8496811aae0baaabd26157189eecda26beaa8bf11b6f3fe6e2b5659c85dbc0ad"
     "3b1f2a4b6c098131c0a36dacd1d78bd381dcdfb09c052db33991db7338b4a896"},
    {"tam_ed25519", TAM_KEY_ED25519,
     "169b645d7e6d3a73064367200677412b44c6de565164eb867b16228917d95c52"},
};

Test(crypto_vectors, import_every_pem)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(vector_keys); i++) {
        const struct vector_key *v = &vector_keys[i];
        char name[96];
        snprintf(name, sizeof(name), "%s.priv.pem", v->name);
        struct tam_key *priv = load_pem(name);
        snprintf(name, sizeof(name), "%s.pub.pem", v->name);
        struct tam_key *pub = load_pem(name);

        cr_assert_eq(tam_key_type(priv), v->type, "%s", v->name);
        cr_assert(tam_key_has_private(priv));
        cr_assert_not(tam_key_has_private(pub));
        uint8_t raw[64];
        size_t n = tam_key_public_raw(priv, raw);
        cr_assert_eq(n, v->type == TAM_KEY_P256 ? 64u : 32u);
        assert_hex(raw, n, v->pub_hex);
        assert_same_public(priv, pub);
        cr_assert_eq(tam_key_default_alg(priv),
                     v->type == TAM_KEY_P256 ? TAM_ALG_ESP256 : TAM_ALG_ED25519);
        tam_key_destroy(priv);
        tam_key_destroy(pub);
    }
}

Test(crypto_vectors, thumbprints_rfc9679)
{
    struct tam_key *p = load_pem("tam_p256.priv.pem");
    struct tam_key *e = load_pem("tam_ed25519.pub.pem");
    assert_hex(tam_key_kid(p), TAM_KID_LEN, tam_p256_kid);
    assert_hex(tam_key_kid(e), TAM_KID_LEN, tam_ed25519_kid);

    /* The COSE_Key bytes are the exact input of the thumbprint. */
    struct tam_buf b;
    tam_buf_init(&b, 1024);
    cr_assert_eq(tam_key_cose_public(p, &b), TAM_OK);
    assert_hex(b.data, b.len,
               "a4010220012158200e908aa8f066db1f084e0c3652c63952bd99f2a5bdb22f9e01367aad03aba6"
               "8b22582077da1bd8ac4f0cb490ba210648bf79ab164d49ad3551d71d314b2749ee42d29a");
    uint8_t h[TAM_SHA256_LEN];
    tam_sha256(b.data, b.len, h);
    cr_assert(memcmp(h, tam_key_kid(p), TAM_KID_LEN) == 0);
    tam_buf_reset(&b);
    cr_assert_eq(tam_key_cose_public(e, &b), TAM_OK);
    assert_hex(b.data, b.len,
               "a3010120062158"
               "20169b645d7e6d3a73064367200677412b44c6de565164eb867b16228917d95c52");
    tam_buf_finish(&b);
    tam_key_destroy(p);
    tam_key_destroy(e);
}

/* Ed25519 signatures are deterministic: re-signing the ToBeSigned reproduces the vector. */
static void check_ed25519_vector(const struct tam_key *key, const char *msg)
{
    char name[128];
    size_t cose_len;
    size_t tbs_len;
    snprintf(name, sizeof(name), "derived_sign1_ed25519_%s.hex", msg);
    uint8_t *cose = tu_load_hex(name, &cose_len);
    snprintf(name, sizeof(name), "derived_sign1_ed25519_%s.tbs.hex", msg);
    uint8_t *tbs = tu_load_hex(name, &tbs_len);
    cr_assert_gt(cose_len, 66);
    cr_assert_eq(cose[cose_len - 66], 0x58);
    cr_assert_eq(cose[cose_len - 65], 0x40);
    const uint8_t *want = cose + cose_len - 64;

    uint8_t sig[TAM_SIG_MAX];
    sign_ok(key, TAM_ALG_ED25519, tbs, tbs_len, sig);
    cr_assert(memcmp(sig, want, 64) == 0, "%s: signature differs", msg);
    sign_ok(key, TAM_ALG_EDDSA, tbs, tbs_len, sig);
    cr_assert(memcmp(sig, want, 64) == 0);
    cr_assert_eq(tam_verify(key, TAM_ALG_ED25519, tbs, tbs_len, want, 64), TAM_OK);
    cr_assert_eq(tam_verify(key, TAM_ALG_EDDSA, tbs, tbs_len, want, 64), TAM_OK);
    tbs[tbs_len - 1] ^= 1;
    cr_assert_eq(tam_verify(key, TAM_ALG_ED25519, tbs, tbs_len, want, 64), TAM_ESIG);
    tam_free(cose);
    tam_free(tbs);
}

Test(crypto_vectors, ed25519_sign1_reproduced)
{
    static const char *msgs[] = {"teep26_query_request", "teep26_update", "teep_query_request",
                                 "teep_update"};
    struct tam_key *priv = load_pem("tam_ed25519.priv.pem");
    struct tam_key *pub = load_pem("tam_ed25519.pub.pem");
    for (size_t i = 0; i < TAM_ARRAY_LEN(msgs); i++) {
        check_ed25519_vector(priv, msgs[i]);
    }
    /* Verification with the public-only key. */
    size_t cose_len;
    size_t tbs_len;
    uint8_t *cose = tu_load_hex("derived_sign1_ed25519_teep_update.hex", &cose_len);
    uint8_t *tbs = tu_load_hex("derived_sign1_ed25519_teep_update.tbs.hex", &tbs_len);
    cr_assert_eq(tam_verify(pub, TAM_ALG_ED25519, tbs, tbs_len, cose + cose_len - 64, 64), TAM_OK);
    tam_free(cose);
    tam_free(tbs);
    tam_key_destroy(priv);
    tam_key_destroy(pub);
}

Test(crypto_vectors, esp256_sign1_verifies)
{
    static const char *msgs[] = {"teep26_query_request", "teep_query_request"};
    struct tam_key *pub = load_pem("tam_p256.pub.pem");
    struct tam_key *other = load_pem("agent_p256.pub.pem");
    for (size_t i = 0; i < TAM_ARRAY_LEN(msgs); i++) {
        char name[128];
        size_t cose_len;
        size_t tbs_len;
        snprintf(name, sizeof(name), "derived_sign1_esp256_%s.hex", msgs[i]);
        uint8_t *cose = tu_load_hex(name, &cose_len);
        snprintf(name, sizeof(name), "derived_sign1_esp256_%s.tbs.hex", msgs[i]);
        uint8_t *tbs = tu_load_hex(name, &tbs_len);
        cr_assert_eq(cose[cose_len - 66], 0x58);
        cr_assert_eq(cose[cose_len - 65], 0x40);
        const uint8_t *sig = cose + cose_len - 64;
        cr_assert_eq(tam_verify(pub, TAM_ALG_ESP256, tbs, tbs_len, sig, 64), TAM_OK, "%s", msgs[i]);
        cr_assert_eq(tam_verify(pub, TAM_ALG_ES256, tbs, tbs_len, sig, 64), TAM_OK);
        cr_assert_eq(tam_verify(other, TAM_ALG_ESP256, tbs, tbs_len, sig, 64), TAM_ESIG);
        cr_assert_eq(tam_verify(pub, TAM_ALG_ESP256, tbs, tbs_len - 1, sig, 64), TAM_ESIG);
        tam_free(cose);
        tam_free(tbs);
    }
    tam_key_destroy(pub);
    tam_key_destroy(other);
}

/* ---- sign / verify ---------------------------------------------------------------------- */

static void round_trip(const struct tam_key *priv, const struct tam_key *pub, int alg)
{
    static const char msg[] = "TEEP QueryRequest";
    uint8_t sig[TAM_SIG_MAX];
    sign_ok(priv, alg, msg, sizeof(msg), sig);
    cr_assert_eq(tam_verify(priv, alg, (const uint8_t *)msg, sizeof(msg), sig, 64), TAM_OK);
    cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), sig, 64), TAM_OK);

    uint8_t bad_msg[sizeof(msg)];
    memcpy(bad_msg, msg, sizeof(msg));
    bad_msg[3] ^= 0x20;
    cr_assert_eq(tam_verify(pub, alg, bad_msg, sizeof(bad_msg), sig, 64), TAM_ESIG);
    for (size_t i = 0; i < 64; i += 7) {
        uint8_t bad_sig[64];
        memcpy(bad_sig, sig, 64);
        bad_sig[i] ^= 0x01;
        cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), bad_sig, 64), TAM_ESIG,
                     "alg %d byte %zu", alg, i);
    }
    /* Any length other than 64 is refused before the signature is looked at. */
    cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), sig, 63), TAM_ESIG);
    cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), sig, 0), TAM_ESIG);
    uint8_t longer[65] = {0};
    memcpy(longer, sig, 64);
    cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), longer, 65), TAM_ESIG);
    cr_assert_eq(tam_verify(pub, alg, (const uint8_t *)msg, sizeof(msg), NULL, 0), TAM_ESIG);

    /* Empty message. */
    sign_ok(priv, alg, NULL, 0, sig);
    cr_assert_eq(tam_verify(pub, alg, NULL, 0, sig, 64), TAM_OK);
}

static struct tam_key *public_of(const struct tam_key *priv)
{
    uint8_t raw[64];
    size_t n = tam_key_public_raw(priv, raw);
    struct tam_key *pub = NULL;
    cr_assert_eq(tam_key_from_raw_public(tam_key_type(priv), raw, n, &pub), TAM_OK);
    return pub;
}

Test(crypto_sign, round_trips_all_algs)
{
    struct {
        enum tam_key_type type;
        int algs[2];
    } cases[] = {
        {TAM_KEY_P256, {TAM_ALG_ESP256, TAM_ALG_ES256}},
        {TAM_KEY_ED25519, {TAM_ALG_ED25519, TAM_ALG_EDDSA}},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(cases); i++) {
        struct tam_key *priv = NULL;
        cr_assert_eq(tam_key_generate(cases[i].type, &priv), TAM_OK);
        cr_assert(tam_key_has_private(priv));
        struct tam_key *pub = public_of(priv);
        cr_assert_not(tam_key_has_private(pub));
        assert_same_public(priv, pub);
        for (size_t j = 0; j < 2; j++) {
            cr_assert(tam_key_alg_ok(priv, cases[i].algs[j]));
            round_trip(priv, pub, cases[i].algs[j]);
        }
        tam_key_destroy(priv);
        tam_key_destroy(pub);
    }
}

Test(crypto_sign, wrong_alg_and_public_only)
{
    struct tam_key *p = load_pem("tam_p256.priv.pem");
    struct tam_key *e = load_pem("tam_ed25519.priv.pem");
    struct tam_key *p_pub = load_pem("tam_p256.pub.pem");
    static const uint8_t msg[] = "m";
    uint8_t sig[TAM_SIG_MAX];
    size_t sig_len = 99;

    static const int p256_bad[] = {TAM_ALG_EDDSA, TAM_ALG_ED25519, TAM_ALG_SHA256, 0, -35, -257};
    for (size_t i = 0; i < TAM_ARRAY_LEN(p256_bad); i++) {
        cr_assert_not(tam_key_alg_ok(p, p256_bad[i]));
        cr_assert_eq(tam_sign(p, p256_bad[i], msg, 1, sig, &sig_len), TAM_ECOSE_ALG);
        cr_assert_eq(sig_len, 0);
        cr_assert_eq(tam_verify(p, p256_bad[i], msg, 1, sig, 64), TAM_ECOSE_ALG);
    }
    static const int ed_bad[] = {TAM_ALG_ES256, TAM_ALG_ESP256, TAM_ALG_SHA256, 0, -53};
    for (size_t i = 0; i < TAM_ARRAY_LEN(ed_bad); i++) {
        cr_assert_not(tam_key_alg_ok(e, ed_bad[i]));
        cr_assert_eq(tam_sign(e, ed_bad[i], msg, 1, sig, &sig_len), TAM_ECOSE_ALG);
        cr_assert_eq(tam_verify(e, ed_bad[i], msg, 1, sig, 64), TAM_ECOSE_ALG);
    }
    cr_assert_eq(tam_sign(p_pub, TAM_ALG_ESP256, msg, 1, sig, &sig_len), TAM_EKEY);
    cr_assert_eq(tam_sign(NULL, TAM_ALG_ESP256, msg, 1, sig, &sig_len), TAM_EINVAL);
    cr_assert_not(tam_key_alg_ok(NULL, TAM_ALG_ESP256));

    /* A signature made by one key type never verifies under the other. */
    sign_ok(e, TAM_ALG_ED25519, msg, 1, sig);
    cr_assert_eq(tam_verify(p, TAM_ALG_ESP256, msg, 1, sig, 64), TAM_ESIG);
    tam_key_destroy(p);
    tam_key_destroy(e);
    tam_key_destroy(p_pub);
}

Test(crypto_sign, ecdsa_rfc6979_a25)
{
    /* RFC 6979 A.2.5 key (P-256, SHA-256) as SEC1. */
    static const char pem[] = "-----BEGIN EC PRIVATE KEY-----\n"
                              "MHcCAQEEIMmvqdhFunUWa1whV2ex1pNOUMPbNuibEnuKYisSD2choAoGCCqGSM49\n"
                              "AwEHoUQDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8\n"
                              "maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==\n"
                              "-----END EC PRIVATE KEY-----\n";
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(pem, sizeof(pem) - 1, &key), TAM_OK);
    uint8_t sig[TAM_SIG_MAX];
    sign_ok(key, TAM_ALG_ESP256, "sample", 6, sig);
    assert_hex(sig, 64,
               "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
               "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8");
    sign_ok(key, TAM_ALG_ES256, "test", 4, sig);
    assert_hex(sig, 64,
               "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367"
               "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083");
    tam_key_destroy(key);
}

Test(crypto_sign, ecdsa_deterministic_and_padded)
{
    struct tam_key *key = load_pem("agent_p256.priv.pem");
    struct tam_key *pub = load_pem("agent_p256.pub.pem");
    uint8_t a[TAM_SIG_MAX];
    uint8_t b[TAM_SIG_MAX];
    sign_ok(key, TAM_ALG_ESP256, "same message", 12, a);
    sign_ok(key, TAM_ALG_ESP256, "same message", 12, b);
    cr_assert(memcmp(a, b, 64) == 0);

    /* About 1 in 128 signatures has r or s shorter than 32 bytes; they must be padded. */
    int short_parts = 0;
    for (uint32_t i = 0; i < 600; i++) {
        uint8_t msg[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        uint8_t sig[TAM_SIG_MAX];
        size_t sig_len = 0;
        cr_assert_eq(tam_sign(key, TAM_ALG_ESP256, msg, sizeof(msg), sig, &sig_len), TAM_OK);
        cr_assert_eq(sig_len, 64);
        if (sig[0] == 0 || sig[32] == 0) {
            short_parts++;
        }
        cr_assert_eq(tam_verify(pub, TAM_ALG_ESP256, msg, sizeof(msg), sig, 64), TAM_OK, "i=%u", i);
    }
    /* Deterministic signatures over fixed messages: this count is fixed too. */
    cr_assert_gt(short_parts, 0);
    tam_key_destroy(key);
    tam_key_destroy(pub);
}

Test(crypto_sign, ed25519_rejects_malleated_s)
{
    struct tam_key *key = load_pem("tam_ed25519.priv.pem");
    static const uint8_t l[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                  0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                  0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    uint8_t sig[TAM_SIG_MAX];
    sign_ok(key, TAM_ALG_ED25519, "m", 1, sig);
    cr_assert_eq(tam_verify(key, TAM_ALG_ED25519, (const uint8_t *)"m", 1, sig, 64), TAM_OK);
    /* S + L (S < L, so this fits in 253 bits) is the same scalar mod L. */
    unsigned carry = 0;
    for (size_t i = 0; i < 32; i++) {
        unsigned v = sig[32 + i] + l[i] + carry;
        sig[32 + i] = (uint8_t)v;
        carry = v >> 8;
    }
    cr_assert_eq(tam_verify(key, TAM_ALG_ED25519, (const uint8_t *)"m", 1, sig, 64), TAM_ESIG);
    tam_key_destroy(key);
}

/* ---- fork safety ------------------------------------------------------------------------ */

/* Runs `fn` in a child that writes `len` bytes to a pipe; returns them in out. */
static void in_child(void (*fn)(uint8_t *out, size_t len), uint8_t *out, size_t len)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        uint8_t buf[64] = {0};
        fn(buf, len);
        ssize_t w = write(fds[1], buf, len);
        _exit(w == (ssize_t)len ? 0 : 1);
    }
    close(fds[1]);
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fds[0], out + got, len - got);
        cr_assert_gt(r, 0);
        got += (size_t)r;
    }
    close(fds[0]);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void child_random(uint8_t *out, size_t len)
{
    if (tam_random(out, len) != TAM_OK) {
        _exit(2);
    }
}

static struct tam_key *fork_key;

static void child_sign(uint8_t *out, size_t len)
{
    size_t sig_len = 0;
    if (len != 64 ||
        tam_sign(fork_key, TAM_ALG_ESP256, (const uint8_t *)"fork", 4, out, &sig_len) != TAM_OK) {
        _exit(2);
    }
}

Test(crypto_fork, children_get_distinct_random_bytes)
{
    uint8_t parent[32];
    uint8_t c1[32];
    uint8_t c2[32];
    /* The parent seeds and uses the process RNG before forking. */
    cr_assert_eq(tam_random(parent, sizeof(parent)), TAM_OK);
    in_child(child_random, c1, sizeof(c1));
    in_child(child_random, c2, sizeof(c2));
    cr_assert(memcmp(c1, c2, sizeof(c1)) != 0, "forked children repeated the RNG output");
    cr_assert_eq(tam_random(parent, sizeof(parent)), TAM_OK);
    cr_assert(memcmp(parent, c1, sizeof(c1)) != 0);
    cr_assert(memcmp(parent, c2, sizeof(c2)) != 0);
}

Test(crypto_fork, children_sign_deterministically)
{
    fork_key = load_pem("tam_p256.priv.pem");
    uint8_t parent[TAM_SIG_MAX];
    uint8_t c1[64];
    uint8_t c2[64];
    sign_ok(fork_key, TAM_ALG_ESP256, "fork", 4, parent);
    in_child(child_sign, c1, sizeof(c1));
    in_child(child_sign, c2, sizeof(c2));
    cr_assert(memcmp(c1, c2, 64) == 0);
    cr_assert(memcmp(c1, parent, 64) == 0);
    tam_key_destroy(fork_key);
}

/* ---- PEM export / import ---------------------------------------------------------------- */

static struct tam_key *reimport(const struct tam_key *key, bool private_part, const char *label)
{
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    int rc = private_part ? tam_key_private_pem(key, &b) : tam_key_public_pem(key, &b);
    cr_assert_eq(rc, TAM_OK);
    cr_assert_gt(b.len, strlen(label));
    cr_assert(memcmp(b.data, label, strlen(label)) == 0, "%.*s", (int)b.len, (char *)b.data);
    struct tam_key *out = NULL;
    cr_assert_eq(tam_key_from_pem((const char *)b.data, b.len, &out), TAM_OK);
    tam_memzero(b.data, b.len);
    tam_buf_finish(&b);
    cr_assert_eq(tam_key_has_private(out), private_part);
    assert_same_public(key, out);
    return out;
}

Test(crypto_pem, export_import_round_trip)
{
    enum tam_key_type types[] = {TAM_KEY_P256, TAM_KEY_ED25519};
    for (size_t i = 0; i < TAM_ARRAY_LEN(types); i++) {
        struct tam_key *key = NULL;
        cr_assert_eq(tam_key_generate(types[i], &key), TAM_OK);
        struct tam_key *priv = reimport(key, true, "-----BEGIN PRIVATE KEY-----\n");
        struct tam_key *pub = reimport(key, false, "-----BEGIN PUBLIC KEY-----\n");
        struct tam_key *pub2 = reimport(pub, false, "-----BEGIN PUBLIC KEY-----\n");

        /* The re-imported private key signs like the original. */
        int alg = tam_key_default_alg(key);
        uint8_t a[TAM_SIG_MAX];
        uint8_t b[TAM_SIG_MAX];
        sign_ok(key, alg, "x", 1, a);
        sign_ok(priv, alg, "x", 1, b);
        cr_assert(memcmp(a, b, 64) == 0);
        cr_assert_eq(tam_verify(pub2, alg, (const uint8_t *)"x", 1, a, 64), TAM_OK);

        struct tam_buf out;
        tam_buf_init(&out, 4096);
        cr_assert_eq(tam_key_private_pem(pub, &out), TAM_EKEY);
        cr_assert_eq(out.len, 0);
        tam_buf_finish(&out);
        tam_key_destroy(key);
        tam_key_destroy(priv);
        tam_key_destroy(pub);
        tam_key_destroy(pub2);
    }
}

/* SPKI and the PKCS#8 forms are canonical, so exports equal the files byte for byte. */
static void assert_export_equals(const char *name, bool private_part)
{
    struct tam_key *key = load_pem(name);
    size_t len;
    char *want = tu_load_text(name, &len);
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(private_part ? tam_key_private_pem(key, &b) : tam_key_public_pem(key, &b), TAM_OK);
    cr_assert_eq(b.len, len, "%s", name);
    cr_assert(memcmp(b.data, want, len) == 0, "%s:\n%.*s", name, (int)b.len, (char *)b.data);
    tam_buf_finish(&b);
    tam_free(want);
    tam_key_destroy(key);
}

Test(crypto_pem, exports_match_vectors)
{
    assert_export_equals("tam_p256.pub.pem", false);
    assert_export_equals("tam_ed25519.pub.pem", false);
    assert_export_equals("suit_example_key_p256.pub.pem", false);
    assert_export_equals("tam_ed25519.priv.pem", true);
    assert_export_equals("suit_example_key_p256.priv.pem", true); /* PKCS#8 with public key */
}

Test(crypto_pem, sec1_variants)
{
    /* SEC1 without the optional public key: the public half is derived. */
    static const char nopub[] = "-----BEGIN EC PRIVATE KEY-----\n"
                                "MDECAQEEIIQa67e56m8CYL5zVaJFiLl30j0qxb8ray2DeUMqH+qYoAoGCCqGSM49\n"
                                "AwEH\n"
                                "-----END EC PRIVATE KEY-----\n";
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(nopub, strlen(nopub), &key), TAM_OK);
    assert_hex(tam_key_kid(key), TAM_KID_LEN, tam_p256_kid);
    tam_key_destroy(key);

    /* tam_p256's d with agent_p256's public key: consistent-looking, but a lie. */
    static const char mismatch[] =
        "-----BEGIN EC PRIVATE KEY-----\n"
        "MHcCAQEEIIQa67e56m8CYL5zVaJFiLl30j0qxb8ray2DeUMqH+qYoAoGCCqGSM49\n"
        "AwEHoUQDQgAEWIbNYd2HWGLlqqgg56FSdMloqbyWBI3crOMvUMNlG6Oe7YEl6TLN\n"
        "YMDq02UNCkhc9ybTeNGwFu1CmLKWHiWPGw==\n"
        "-----END EC PRIVATE KEY-----\n";
    cr_assert_eq(pem_rc(mismatch), TAM_EKEY);

    /* d = 0 and d = n are not private keys. */
    static const char d_zero[] =
        "-----BEGIN EC PRIVATE KEY-----\n"
        "MDECAQEEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAoAoGCCqGSM49\n"
        "AwEH\n"
        "-----END EC PRIVATE KEY-----\n";
    static const char d_n[] = "-----BEGIN EC PRIVATE KEY-----\n"
                              "MDECAQEEIP////8AAAAA//////////+85vqtpxeehPO5ysL8YyVRoAoGCCqGSM49\n"
                              "AwEH\n"
                              "-----END EC PRIVATE KEY-----\n";
    cr_assert_eq(pem_rc(d_zero), TAM_EKEY);
    cr_assert_eq(pem_rc(d_n), TAM_EKEY);

    /* SPKI whose point is off the curve (last bit of y flipped). */
    static const char off_curve[] =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDpCKqPBm2x8ITgw2UsY5Ur2Z8qW9\n"
        "si+eATZ6rQOrpot32hvYrE8MtJC6IQZIv3mrFk1JrTVR1x0xSydJ7kLSmw==\n"
        "-----END PUBLIC KEY-----\n";
    cr_assert_eq(pem_rc(off_curve), TAM_EKEY);
}

Test(crypto_pem, ed25519_pkcs8_with_public_key)
{
    /* wolfSSL's own "private + public" PKCS#8 form of tam_ed25519. */
    static const char good[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MFACAQAwBQYDK2VwBCIEICwy6V5abzvUgDvpTwKCwxAtgtrjEqszqgRx0BQUJXCM\n"
                               "gSAWm2Rdfm06cwZDZyAGd0ErRMbeVlFk64Z7FiKJF9lcUg==\n"
                               "-----END PRIVATE KEY-----\n";
    static const char bad[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MFACAQAwBQYDK2VwBCIEICwy6V5abzvUgDvpTwKCwxAtgtrjEqszqgRx0BQUJXCM\n"
                              "gSAWm2Rdfm06cwZDZyAGd0ErRMbeVlFk64Z7FiKJF9lcUw==\n"
                              "-----END PRIVATE KEY-----\n";
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(good, strlen(good), &key), TAM_OK);
    assert_hex(tam_key_kid(key), TAM_KID_LEN, tam_ed25519_kid);
    tam_key_destroy(key);
    cr_assert_eq(pem_rc(bad), TAM_EKEY);
}

Test(crypto_pem, rejects_other_keys_and_garbage)
{
    static const char *rejected[] = {
        /* RSA-512, PKCS#8 and SPKI. */
        "-----BEGIN PRIVATE KEY-----\n"
        "MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEApreZ061vd9P8mfFe\n"
        "cpvltHZKPtoZJ/ik3O56ICfhtT8dUMNyJKZe6eieShl+cmBKEdeW6EzZjHfg1I3t\n"
        "KuCVzQIDAQABAkBBqDkKplkp5fCrZ+V8WW1DfvqKejZCCahT4g9yroIzcH7UEw3f\n"
        "PbgKVilXB40WD+XbucJFjwMmgjSn8BiogQeBAiEA2fsGNT7oJACHgA2Wk3RgugJJ\n"
        "6wPeaw2I42mjvtY7KpECIQDDy6Ie8LKDb6fmlL0ejZcuB1g1xKOq9u+Dk2AWevR9\n"
        "fQIhALEfhdLcU/t1JqWJ5RHaXgKne3LpSOEKNXI8095s69TRAiBQ8eDGVdAXUpPh\n"
        "WeCNvw+fMd4f7HmVdp0ykj0JTi/BqQIhAMcsw85aY0uaaNdWcPmKJXFHYLNRK6Lo\n"
        "C7+pY45qhS2c\n"
        "-----END PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n"
        "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKa3mdOtb3fT/JnxXnKb5bR2Sj7aGSf4\n"
        "pNzueiAn4bU/HVDDciSmXunonkoZfnJgShHXluhM2Yx34NSN7Srglc0CAwEAAQ==\n"
        "-----END PUBLIC KEY-----\n",
        /* P-384: SEC1 and SPKI. */
        "-----BEGIN EC PRIVATE KEY-----\n"
        "MIGkAgEBBDAXYGwVJg3PyAqElHLgJVpaPY/CqkhnBsjf5yrK7PCZ2m4lup3NZVXb\n"
        "pp4PFJkixWOgBwYFK4EEACKhZANiAAQIWCpnFc6VpJkmPw9KQKk2AEiN/rWMEE+G\n"
        "OpmCSi0fTQjIcRht44+awT7LfPHY3TnQpuBZRYdXEyCvxdNNe11j+DcEmZ99BW+n\n"
        "ZTewd2zsTRT7xUMtaE6yelO/AjDw0es=\n"
        "-----END EC PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n"
        "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAECFgqZxXOlaSZJj8PSkCpNgBIjf61jBBP\n"
        "hjqZgkotH00IyHEYbeOPmsE+y3zx2N050KbgWUWHVxMgr8XTTXtdY/g3BJmffQVv\n"
        "p2U3sHds7E0U+8VDLWhOsnpTvwIw8NHr\n"
        "-----END PUBLIC KEY-----\n",
        /* Ed448 and X25519. */
        "-----BEGIN PRIVATE KEY-----\n"
        "MEcCAQAwBQYDK2VxBDsEOQtmPFAZgqnET3+iL9hNI9/IyB5JRZXbGYRxdWarahRo\n"
        "H6Fw4NzUNREgxAO8INpKuwy1+s29fp5htQ==\n"
        "-----END PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n"
        "MEMwBQYDK2VxAzoAt7nr634gWqfZ3lPHNbUttjKbBGL//fvPoKNyM86LgxG1dIoy\n"
        "eEJk0jq6C1Cch72igkfWzUvTaAOA\n"
        "-----END PUBLIC KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VuBCIEIMDJXZSDIm0RQgO4CoeCrk4lzoyZcx5sNgSM3JIig2Fx\n"
        "-----END PRIVATE KEY-----\n",
        /* An encrypted PKCS#8 (tam_p256 under a password): not supported. */
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
        "MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAgKTcZvDaDkLwICCAAw\n"
        "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEAvh+Mxc0pnjXyPdfn5VwOIEgZDa\n"
        "MHoqUw7SysMpF+gxIgxuInnzPDEVM30ztnPDaQ6OqiysIIdpIe+mY3Jmrze/Cesf\n"
        "QgZZBz1/5+tgmX4XAHJQsvMLnljxmA2Ldm9qCVZUKa2WJ8kYAUgYaP/vy1MoBUMg\n"
        "mjDl/dNQBqVyI8vCwKSIpTELUeBfy11AWI2maqw0/9AxOHCRBFGrckJZXnKFD/s=\n"
        "-----END ENCRYPTED PRIVATE KEY-----\n",
        /* Garbage. */
        "",
        "hello",
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(rejected); i++) {
        cr_assert_eq(pem_rc(rejected[i]), TAM_EKEY, "case %zu", i);
    }
    struct tam_key *key = (struct tam_key *)1;
    cr_assert_eq(tam_key_from_pem(NULL, 0, &key), TAM_EKEY);
    cr_assert_null(key);
    cr_assert_eq(tam_key_from_pem("x", 1, NULL), TAM_EINVAL);
}

Test(crypto_pem, truncated_and_oversized)
{
    static const char *names[] = {"tam_p256.priv.pem", "tam_ed25519.priv.pem",
                                  "suit_example_key_p256.pub.pem", "agent_p256.priv.pem"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        size_t len;
        char *pem = tu_load_text(names[i], &len);
        /* Every prefix that cuts into the armour or the base64 must fail cleanly. */
        const char *end = NULL;
        for (const char *p = strstr(pem, "-----END"); p != NULL; p = strstr(p + 1, "-----END")) {
            end = p; /* the last block is the key (agent_p256 starts with EC PARAMETERS) */
        }
        cr_assert_not_null(end);
        size_t complete = (size_t)(strchr(end + 8, '-') - pem) + 5;
        for (size_t cut = 0; cut < len; cut++) {
            /* An exact-size copy lets ASan catch any read past the given length. */
            char *copy = tam_malloc(cut + 1);
            memcpy(copy, pem, cut);
            struct tam_key *key = NULL;
            int rc = tam_key_from_pem(copy, cut, &key);
            if (cut < complete) {
                cr_assert_eq(rc, TAM_EKEY, "%s cut at %zu: %s", names[i], cut, tam_errname(rc));
            } else {
                cr_assert_eq(rc, TAM_OK, "%s cut at %zu", names[i], cut);
            }
            tam_key_destroy(key);
            tam_free(copy);
        }
        tam_free(pem);
    }
    size_t big = 64 * 1024;
    char *huge = tam_malloc(big);
    memset(huge, 'A', big);
    memcpy(huge, "-----BEGIN PUBLIC KEY-----\n", 27);
    struct tam_key *key = NULL;
    cr_assert_eq(tam_key_from_pem(huge, big, &key), TAM_ETOOBIG);
    cr_assert_null(key);
    tam_free(huge);
}

/* ---- raw public keys -------------------------------------------------------------------- */

Test(crypto_raw, p256_forms_and_validation)
{
    size_t n;
    uint8_t *xy = tu_hex("040e908aa8f066db1f084e0c3652c63952bd99f2a5bdb22f9e01367aad03aba68b"
                         "77da1bd8ac4f0cb490ba210648bf79ab164d49ad3551d71d314b2749ee42d29a",
                         &n);
    cr_assert_eq(n, 65);
    struct tam_key *a = NULL;
    struct tam_key *b = NULL;
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy, 65, &a), TAM_OK);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy + 1, 64, &b), TAM_OK);
    assert_hex(tam_key_kid(a), TAM_KID_LEN, tam_p256_kid);
    assert_same_public(a, b);
    cr_assert_not(tam_key_has_private(a));
    tam_key_destroy(a);
    tam_key_destroy(b);

    struct tam_key *k = NULL;
    /* Off the curve. */
    xy[64] ^= 1;
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy + 1, 64, &k), TAM_EKEY);
    cr_assert_null(k);
    xy[64] ^= 1;
    /* Wrong prefix or length. */
    xy[0] = 0x02;
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy, 65, &k), TAM_EKEY);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy + 1, 63, &k), TAM_EKEY);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, xy + 1, 32, &k), TAM_EKEY);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, NULL, 0, &k), TAM_EKEY);
    /* The point at infinity has no affine encoding; zeros are not on the curve. */
    uint8_t zeros[64] = {0};
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, zeros, 64, &k), TAM_EKEY);
    /* x = p (not reduced) is refused even though x - p may be a valid coordinate. */
    uint8_t *px = tu_hex("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"
                         "77da1bd8ac4f0cb490ba210648bf79ab164d49ad3551d71d314b2749ee42d29a",
                         &n);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_P256, px, 64, &k), TAM_EKEY);
    cr_assert_eq(tam_key_from_raw_public((enum tam_key_type)7, px, 64, &k), TAM_EINVAL);
    cr_assert_null(k);
    tam_free(px);
    tam_free(xy);
}

Test(crypto_raw, ed25519_forms_and_validation)
{
    size_t n;
    uint8_t *pub = tu_hex("169b645d7e6d3a73064367200677412b44c6de565164eb867b16228917d95c52", &n);
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_ED25519, pub, 32, &k), TAM_OK);
    assert_hex(tam_key_kid(k), TAM_KID_LEN, tam_ed25519_kid);
    tam_key_destroy(k);
    k = NULL;
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_ED25519, pub, 31, &k), TAM_EKEY);
    cr_assert_eq(tam_key_from_raw_public(TAM_KEY_ED25519, pub, 33, &k), TAM_EKEY);
    tam_free(pub);

    /* Small-order points (both sign bits) and non-canonical encodings (y >= p). */
    static const char *refused[] = {
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000080",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(refused); i++) {
        uint8_t *bad = tu_hex(refused[i], &n);
        cr_assert_eq(tam_key_from_raw_public(TAM_KEY_ED25519, bad, n, &k), TAM_EKEY, "%s",
                     refused[i]);
        cr_assert_null(k);
        tam_free(bad);
    }
}

/* ---- small utilities -------------------------------------------------------------------- */

Test(crypto_util, sha256_ct_equal_random)
{
    uint8_t h[TAM_SHA256_LEN];
    tam_sha256("abc", 3, h);
    assert_hex(h, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    tam_sha256(NULL, 0, h);
    assert_hex(h, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    cr_assert(tam_ct_equal("abcd", "abcd", 4));
    cr_assert_not(tam_ct_equal("abcd", "abce", 4));
    cr_assert(tam_ct_equal("a", "b", 0));

    uint8_t a[32];
    uint8_t b[32];
    cr_assert_eq(tam_random(a, sizeof(a)), TAM_OK);
    cr_assert_eq(tam_random(b, sizeof(b)), TAM_OK);
    cr_assert(memcmp(a, b, sizeof(a)) != 0);
    cr_assert_eq(tam_random(NULL, 0), TAM_OK);
    /* Larger than one DRBG request. */
    size_t big = 200000;
    uint8_t *buf = tam_calloc(1, big);
    cr_assert_eq(tam_random(buf, big), TAM_OK);
    size_t zeros = 0;
    for (size_t i = 0; i < big; i++) {
        zeros += buf[i] == 0;
    }
    cr_assert_lt(zeros, big / 128, "tail of the buffer left unfilled?");
    tam_free(buf);
    tam_key_destroy(NULL);
}

/*
 * P-256 verification takes two paths (sign.c): a key's first verifications run on a fresh
 * Jacobian representation of its point (kept out of wolfSSL's fixed-point cache), later ones
 * on the key itself. Both must accept exactly the valid signatures.
 */
Test(crypto, p256_verify_uncached_and_cached_paths_agree)
{
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &k), TAM_OK);
    static const uint8_t msg[] = "tamgate";
    uint8_t sig[TAM_SIG_MAX];
    size_t sig_len = 0;
    cr_assert_eq(tam_sign(k, TAM_ALG_ESP256, msg, sizeof(msg), sig, &sig_len), TAM_OK);
    uint8_t bad[TAM_SIG_MAX];
    memcpy(bad, sig, sig_len);
    bad[40] ^= 1;
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(tam_verify(k, TAM_ALG_ESP256, msg, sizeof(msg), sig, sig_len), TAM_OK,
                     "valid, use %d", i);
        cr_assert_eq(tam_verify(k, TAM_ALG_ESP256, msg, sizeof(msg), bad, sig_len), TAM_ESIG,
                     "tampered, use %d", i);
        cr_assert_eq(tam_verify(k, TAM_ALG_ESP256, msg, sizeof(msg) - 1, sig, sig_len), TAM_ESIG,
                     "other message, use %d", i);
    }
    tam_key_destroy(k);
}

/* ---- the allocator in front of wolfCrypt (src/crypto/wolf_alloc.c) ---------------------- */

/* Its static functions, under test; the public installer renamed to stay out of the way. */
#define tam_crypto_cache_allocations test_cache_allocations
void test_cache_allocations(void);
#include "../../src/crypto/wolf_alloc.c"
#undef tam_crypto_cache_allocations

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + i);
    }
}

static bool filled(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(seed + i)) {
            return false;
        }
    }
    return true;
}

Test(wolf_alloc, a_freed_block_is_handed_out_again_for_its_class)
{
    uint8_t *p = cached_malloc(3216); /* an ecc_point with SP_INT_BITS 4096 */
    cr_assert_not_null(p);
    fill(p, 3216, 7);
    cached_free(p);
    uint8_t *q = cached_malloc(3210); /* same 64-byte class */
    cr_assert_eq(q, p, "served from the free list");
    uint8_t *r = cached_malloc(3216);
    cr_assert_neq(r, q, "the list is empty again");
    uint8_t *big = cached_malloc(CLASS_MAX + 1), *none = cached_malloc(0);
    cr_assert_not_null(big);
    cr_assert_not_null(none);
    fill(big, CLASS_MAX + 1, 1);
    cr_assert(filled(big, CLASS_MAX + 1, 1));
    cached_free(q);
    cached_free(r);
    cached_free(big);
    cached_free(none);
    cached_free(NULL);
}

Test(wolf_alloc, realloc_keeps_the_contents_across_classes_and_sizes)
{
    static const size_t sizes[] = {1, 63, 64, 65, 1000, 3216, 4096, 4097, 20000, 100, 3216, 1};
    uint8_t *p = cached_realloc(NULL, 1);
    fill(p, 1, 3);
    size_t have = 1;
    for (size_t i = 1; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t keep = have < sizes[i] ? have : sizes[i];
        p = cached_realloc(p, sizes[i]);
        cr_assert_not_null(p);
        cr_assert(filled(p, keep, 3), "%zu -> %zu", have, sizes[i]);
        fill(p, sizes[i], 3);
        have = sizes[i];
    }
    cached_free(p);
}

Test(wolf_alloc, the_cache_holds_at_most_its_byte_limit)
{
    size_t n = CACHE_BYTES / CLASS_MAX + 16;
    void **v = tam_calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = cached_malloc(CLASS_MAX);
        cr_assert_not_null(v[i]);
    }
    for (size_t i = 0; i < n; i++) {
        cached_free(v[i]);
        cr_assert_leq(cache.bytes, CACHE_BYTES);
    }
    cr_assert_eq(cache.bytes, CACHE_BYTES, "full, the rest went back to malloc");
    for (size_t i = 0; i < n; i++) {
        v[i] = cached_malloc(CLASS_MAX);
    }
    cr_assert_eq(cache.bytes, 0);
    for (size_t i = 0; i < n; i++) {
        cached_free(v[i]);
    }
    tam_free(v);
}

/* wolfCrypt on the cache (installed before its first allocation, as main() does), in a child. */
Test(wolf_alloc, wolfcrypt_signs_and_verifies_on_it)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        bool ok = wolfSSL_SetAllocators(cached_malloc, cached_free, cached_realloc) == 0;
        static const uint8_t msg[] = "tamgate";
        for (int i = 0; i < 20 && ok; i++) {
            struct tam_key *k = NULL;
            uint8_t sig[TAM_SIG_MAX];
            size_t len = 0;
            ok = tam_key_generate(TAM_KEY_P256, &k) == TAM_OK &&
                 tam_sign(k, TAM_ALG_ESP256, msg, sizeof(msg), sig, &len) == TAM_OK;
            for (int u = 0; u < 6 && ok; u++) { /* fresh-point and cached paths */
                ok = tam_verify(k, TAM_ALG_ESP256, msg, sizeof(msg), sig, len) == TAM_OK;
            }
            sig[10] ^= 1;
            ok = ok && tam_verify(k, TAM_ALG_ESP256, msg, sizeof(msg), sig, len) == TAM_ESIG;
            tam_key_destroy(k);
        }
        _exit(ok && cache.bytes > 0 ? 0 : 1);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
}
