/*
 * Signing and verification. The hot path allocates nothing and re-imports
 * nothing: it works on the wolfCrypt key held in struct tam_key.
 */
#include "internal.h"

#include <wolfssl/wolfcrypt/error-crypt.h>

#include <string.h>

#include "tam/err.h"

#define TAM_SIG_LEN 64

/* wolfCrypt refuses NULL message pointers even for empty messages. */
static const uint8_t empty_msg[1];

static int p256_sign(ecc_key *ecc, const uint8_t *msg, size_t len, uint8_t sig[TAM_SIG_LEN])
{
    WC_RNG *rng;
    int rc = tam_crypto__rng(&rng);
    if (rc != TAM_OK) {
        return rc;
    }
    uint8_t hash[TAM_SHA256_LEN];
    tam_sha256(msg, len, hash);
    /* The nonce is RFC 6979's; the RNG only blinds the scalar multiplication. */
    uint8_t der[ECC_MAX_SIG_SIZE];
    word32 der_len = sizeof(der);
    if (wc_ecc_sign_hash(hash, sizeof(hash), der, &der_len, rng, ecc) != 0) {
        return TAM_ECRYPTO;
    }
    /* r and s come back minimal-length; COSE wants each left-padded to 32 (DEPS.md 8.6). */
    uint8_t r[TAM_P256_LEN];
    uint8_t s[TAM_P256_LEN];
    word32 r_len = sizeof(r);
    word32 s_len = sizeof(s);
    if (wc_ecc_sig_to_rs(der, der_len, r, &r_len, s, &s_len) != 0 || r_len > sizeof(r) ||
        s_len > sizeof(s)) {
        return TAM_ECRYPTO;
    }
    memset(sig, 0, TAM_SIG_LEN);
    memcpy(sig + TAM_P256_LEN - r_len, r, r_len);
    memcpy(sig + TAM_SIG_LEN - s_len, s, s_len);
    return TAM_OK;
}

/*
 * wolfSSL 5.5.4 (Debian's build: FP_ECC, generic sp_int math) keeps a small per-thread cache
 * of fixed-point tables: the second time a public point is used it builds a table (about
 * three verifications' worth of work) that pays off only when the point is used many times
 * more. A device key is verified once or twice per exchange (QueryResponse, Success) and
 * then not for hours, so letting it into the cache makes the pair of verifications about six
 * times slower (bench: 387/s against 2,322/s). So a key's first P256_CACHE_AFTER
 * verifications run on a copy of the point in a fresh random Jacobian representation
 * (X*l^2, Y*l^3, Z*l: the same point), which the cache never recognises; keys used more
 * than that (trust anchors, a TAM's key in a fleet) are cached and get the fast path.
 */
#define P256_CACHE_AFTER 4

/* tmp := the same point as pub with a random non-zero l (l < 2^255 < p). */
static int p256_fresh_point(ecc_key *tmp, const uint8_t pub[64])
{
    if (wc_ecc_import_unsigned(tmp, pub, pub + TAM_P256_LEN, NULL, ECC_SECP256R1) != 0) {
        return TAM_EKEY;
    }
    uint8_t lb[TAM_P256_LEN];
    if (tam_random(lb, sizeof(lb)) != TAM_OK) {
        return TAM_ECRYPTO;
    }
    lb[0] &= 0x7f;
    lb[TAM_P256_LEN - 1] |= 1;
    mp_int p, l, l2, l3;
    if (mp_init_multi(&p, &l, &l2, &l3, NULL, NULL) != MP_OKAY) {
        return TAM_ENOMEM;
    }
    ecc_point *q = &tmp->pubkey;
    bool ok = mp_read_radix(&p, tmp->dp->prime, MP_RADIX_HEX) == MP_OKAY &&
              mp_read_unsigned_bin(&l, lb, sizeof(lb)) == MP_OKAY &&
              mp_sqrmod(&l, &p, &l2) == MP_OKAY && mp_mulmod(&l2, &l, &p, &l3) == MP_OKAY &&
              mp_mulmod(q->x, &l2, &p, q->x) == MP_OKAY &&
              mp_mulmod(q->y, &l3, &p, q->y) == MP_OKAY && mp_copy(&l, q->z) == MP_OKAY;
    mp_clear(&p);
    mp_clear(&l);
    mp_clear(&l2);
    mp_clear(&l3);
    return ok ? TAM_OK : TAM_ECRYPTO;
}

static int p256_verify_der(ecc_key *ecc, const uint8_t *der, word32 der_len,
                           const uint8_t hash[TAM_SHA256_LEN])
{
    int res = 0;
    int rc = wc_ecc_verify_hash(der, der_len, hash, TAM_SHA256_LEN, &res, ecc);
    if (rc == MEMORY_E) {
        return TAM_ENOMEM;
    }
    /* Other failures (r or s zero or out of range) mean a bad signature. */
    return rc == 0 && res == 1 ? TAM_OK : TAM_ESIG;
}

static int p256_verify(struct tam_key *key, const uint8_t *msg, size_t len, const uint8_t *sig)
{
    uint8_t der[ECC_MAX_SIG_SIZE];
    word32 der_len = sizeof(der);
    if (wc_ecc_rs_raw_to_sig(sig, TAM_P256_LEN, sig + TAM_P256_LEN, TAM_P256_LEN, der, &der_len) !=
        0) {
        return TAM_ESIG;
    }
    uint8_t hash[TAM_SHA256_LEN];
    tam_sha256(msg, len, hash);
    if (atomic_fetch_add_explicit(&key->verifies, 1, memory_order_relaxed) >= P256_CACHE_AFTER) {
        return p256_verify_der(&key->u.ecc, der, der_len, hash);
    }
    ecc_key tmp;
    if (wc_ecc_init(&tmp) != 0) {
        return TAM_ENOMEM;
    }
    int rc = p256_fresh_point(&tmp, key->pub);
    rc = rc == TAM_OK ? p256_verify_der(&tmp, der, der_len, hash) : rc;
    wc_ecc_free(&tmp);
    return rc;
}

/*
 * RFC 8032 section 5.1.7 requires S < L; without it (S + L) is a second valid
 * signature for the same message. wolfCrypt 5.5.4 checks this as well; the
 * check stays here so the rule does not depend on how wolfSSL was built.
 * L little-endian:
 */
static const uint8_t ed25519_l[32] = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

static bool ed25519_s_canonical(const uint8_t s[32])
{
    for (size_t i = 32; i-- > 0;) {
        if (s[i] != ed25519_l[i]) {
            return s[i] < ed25519_l[i];
        }
    }
    return false; /* S == L */
}

static int ed25519_verify(ed25519_key *ed, const uint8_t *msg, size_t len, const uint8_t *sig)
{
    if (!ed25519_s_canonical(sig + 32)) {
        return TAM_ESIG;
    }
    int res = 0;
    int rc = wc_ed25519_verify_msg(sig, TAM_SIG_LEN, msg, (word32)len, &res, ed);
    if (rc == MEMORY_E) {
        return TAM_ENOMEM;
    }
    return rc == 0 && res == 1 ? TAM_OK : TAM_ESIG;
}

int tam_sign(const struct tam_key *key, int alg, const uint8_t *msg, size_t len,
             uint8_t sig[TAM_SIG_MAX], size_t *sig_len)
{
    if (key == NULL || sig == NULL || sig_len == NULL || (msg == NULL && len > 0)) {
        return TAM_EINVAL;
    }
    *sig_len = 0;
    if (!tam_key_alg_ok(key, alg)) {
        return TAM_ECOSE_ALG;
    }
    if (!key->has_private) {
        return TAM_EKEY;
    }
    if (msg == NULL) {
        msg = empty_msg;
    }
    /* wolfCrypt takes non-const keys; signing leaves the key material unchanged. */
    struct tam_key *k = (struct tam_key *)key;
    int rc;
    if (k->type == TAM_KEY_P256) {
        rc = p256_sign(&k->u.ecc, msg, len, sig);
    } else if (len > UINT32_MAX) {
        rc = TAM_ETOOBIG;
    } else {
        word32 out_len = TAM_SIG_LEN;
        rc = wc_ed25519_sign_msg(msg, (word32)len, sig, &out_len, &k->u.ed) == 0 &&
                     out_len == TAM_SIG_LEN
                 ? TAM_OK
                 : TAM_ECRYPTO;
    }
    if (rc == TAM_OK) {
        *sig_len = TAM_SIG_LEN;
    }
    return rc;
}

int tam_verify(const struct tam_key *key, int alg, const uint8_t *msg, size_t len,
               const uint8_t *sig, size_t sig_len)
{
    if (key == NULL || (msg == NULL && len > 0) || (sig == NULL && sig_len > 0)) {
        return TAM_EINVAL;
    }
    if (!tam_key_alg_ok(key, alg)) {
        return TAM_ECOSE_ALG;
    }
    /* Both algorithms have fixed 64-byte signatures; any other length is a bad signature. */
    if (sig_len != TAM_SIG_LEN) {
        return TAM_ESIG;
    }
    if (msg == NULL) {
        msg = empty_msg;
    }
    struct tam_key *k = (struct tam_key *)key;
    if (k->type == TAM_KEY_P256) {
        return p256_verify(k, msg, len, sig);
    }
    if (len > UINT32_MAX) {
        return TAM_ETOOBIG;
    }
    return ed25519_verify(&k->u.ed, msg, len, sig);
}
