/*
 * Key objects: creation, validation, accessors and the COSE_Key form.
 *
 * Every constructor ends in tam_crypto__key_seal, so a struct tam_key that exists
 * has passed the same checks whatever it came from (PEM, raw bytes, generation).
 */
#include "internal.h"

#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"

/* P-256 field prime p and group order n, big-endian (SEC 2, section 2.4.2). */
static const uint8_t p256_p[TAM_P256_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t p256_n[TAM_P256_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};

/*
 * The y coordinates (little-endian, sign bit cleared) of the eight points of
 * order dividing 8 on edwards25519: 0 (order 4, two points), 1 (identity),
 * p-1 (order 2) and the two order-8 values (two points each). A public key that
 * is one of them lets a single signature verify for many messages, so such
 * keys are refused (as libsodium does). Checked by multiplying each point by 8.
 */
static const uint8_t ed25519_small_order[][32] = {
    {0},
    {0x01},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
     0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
     0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
     0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
     0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
};

/* a < b for big-endian numbers of n bytes; constant time (private scalars pass here). */
static bool be_less(const uint8_t *a, const uint8_t *b, size_t n)
{
    unsigned borrow = 0;
    for (size_t i = n; i-- > 0;) {
        borrow = ((unsigned)a[i] - (unsigned)b[i] - borrow) >> 8 & 1u;
    }
    return borrow == 1;
}

static bool all_zero(const uint8_t *a, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= a[i];
    }
    return acc == 0;
}

int tam_crypto__key_new(enum tam_key_type type, struct tam_key **out)
{
    *out = NULL;
    if (type != TAM_KEY_P256 && type != TAM_KEY_ED25519) {
        return TAM_EINVAL;
    }
    struct tam_key *key = tam_calloc(1, sizeof(*key));
    if (key == NULL) {
        return TAM_ENOMEM;
    }
    int rc = type == TAM_KEY_P256 ? wc_ecc_init(&key->u.ecc) : wc_ed25519_init(&key->u.ed);
    if (rc != 0) {
        tam_free(key);
        return TAM_ECRYPTO;
    }
    key->type = type;
    *out = key;
    return TAM_OK;
}

void tam_key_destroy(struct tam_key *key)
{
    if (key == NULL) {
        return;
    }
    if (key->type == TAM_KEY_P256) {
        wc_ecc_free(&key->u.ecc);
    } else {
        wc_ed25519_free(&key->u.ed);
    }
    tam_memzero(key, sizeof(*key));
    tam_free(key);
}

static int p256_export_public(ecc_key *ecc, uint8_t out[64])
{
    word32 xlen = TAM_P256_LEN;
    word32 ylen = TAM_P256_LEN;
    if (wc_ecc_export_public_raw(ecc, out, &xlen, out + TAM_P256_LEN, &ylen) != 0 ||
        xlen != TAM_P256_LEN || ylen != TAM_P256_LEN) {
        return TAM_EKEY;
    }
    return TAM_OK;
}

/*
 * wc_ecc_check_key does not compare a private scalar with the public point that
 * came with it, and a mismatch would make us sign with one key while publishing
 * another's kid. So the public point is always recomputed from d (and compared
 * with the encoded one, when there was one), after checking 0 < d < n.
 */
static int p256_check_private(ecc_key *ecc)
{
    uint8_t d[TAM_P256_LEN];
    word32 dlen = sizeof(d);
    uint8_t given[64];
    uint8_t derived[64];
    bool had_public = ecc->type == ECC_PRIVATEKEY;
    int rc = TAM_EKEY;
    if (ecc->type != ECC_PRIVATEKEY && ecc->type != ECC_PRIVATEKEY_ONLY) {
        goto done;
    }
    if (wc_ecc_export_private_only(ecc, d, &dlen) != 0 || dlen != sizeof(d) ||
        all_zero(d, sizeof(d)) || !be_less(d, p256_n, sizeof(d))) {
        goto done;
    }
    if (had_public && p256_export_public(ecc, given) != TAM_OK) {
        goto done;
    }
    /* With an RNG, wolfCrypt blinds the scalar multiplication by the secret d. */
    WC_RNG *rng;
    if (tam_crypto__rng(&rng) != TAM_OK || wc_ecc_make_pub_ex(ecc, NULL, rng) != 0 ||
        p256_export_public(ecc, derived) != TAM_OK) {
        goto done;
    }
    if (!had_public || memcmp(given, derived, sizeof(derived)) == 0) {
        rc = TAM_OK;
    }
done:
    tam_memzero(d, sizeof(d));
    return rc;
}

/*
 * Public key validation. P-256 has cofactor 1, so a reduced affine point on the curve (which
 * excludes the point at infinity, (0, 0) is not on it) is a valid public key (SP 800-56A
 * 5.6.2.3.4 partial validation suffices). wc_ecc_check_key also multiplies the point by the
 * group order, which costs as much as a signature verification: every device key imported
 * from Redis paid it twice per exchange. Private keys (rare, loaded once) keep the full check.
 */
static bool p256_point_valid(struct tam_key *key)
{
    ecc_key *ecc = &key->u.ecc;
    if (key->has_private) {
        return wc_ecc_check_key(ecc) == 0;
    }
    int idx = wc_ecc_get_curve_idx(ECC_SECP256R1);
    return idx >= 0 && wc_ecc_point_is_on_curve(&ecc->pubkey, idx) == 0;
}

static int p256_seal(struct tam_key *key)
{
    ecc_key *ecc = &key->u.ecc;
    if (ecc->dp == NULL || ecc->dp->id != ECC_SECP256R1) {
        return TAM_EKEY;
    }
    if (key->has_private) {
        int rc = p256_check_private(ecc);
        if (rc != TAM_OK) {
            return rc;
        }
    } else if (ecc->type != ECC_PUBLICKEY) {
        return TAM_EKEY;
    }
    /* Coordinates must be reduced: the thumbprint is taken over these bytes. */
    if (p256_export_public(ecc, key->pub) != TAM_OK || !be_less(key->pub, p256_p, TAM_P256_LEN) ||
        !be_less(key->pub + TAM_P256_LEN, p256_p, TAM_P256_LEN) || !p256_point_valid(key)) {
        return TAM_EKEY;
    }
    /* RFC 6979: the signature never depends on the RNG a forked worker inherited. */
    if (key->has_private && wc_ecc_set_deterministic(ecc, 1) != 0) {
        return TAM_ECRYPTO;
    }
    key->pub_len = 2 * TAM_P256_LEN;
    return TAM_OK;
}

/*
 * Refuses non-canonical encodings (y >= p, so one key has one thumbprint) and
 * the small-order points. wolfCrypt 5.5.4 has no public-only Ed25519 check
 * (wc_ed25519_check_key needs the private half); a y without a curve point
 * simply never verifies.
 */
static bool ed25519_public_ok(const uint8_t pub[ED25519_PUB_KEY_SIZE])
{
    uint8_t y[ED25519_PUB_KEY_SIZE];
    memcpy(y, pub, sizeof(y));
    y[31] &= 0x7f;
    bool top_ones = y[31] == 0x7f;
    for (size_t i = 1; i < 31; i++) {
        top_ones = top_ones && y[i] == 0xff;
    }
    if (top_ones && y[0] >= 0xed) {
        return false;
    }
    for (size_t i = 0; i < TAM_ARRAY_LEN(ed25519_small_order); i++) {
        if (memcmp(y, ed25519_small_order[i], sizeof(y)) == 0) {
            return false;
        }
    }
    return true;
}

/*
 * Derives the public key from the seed, rejects a stored public key that does
 * not match, and installs the derived one when the encoding had none (the public
 * key is optional in PKCS#8, RFC 8410): wolfCrypt cannot sign without it.
 */
static int ed25519_check_private(ed25519_key *ed)
{
    uint8_t seed[ED25519_KEY_SIZE];
    uint8_t derived[ED25519_PUB_KEY_SIZE];
    uint8_t given[ED25519_PUB_KEY_SIZE];
    word32 n = sizeof(given);
    /* Read before make_public, which sets pubKeySet without storing the key. */
    bool had_public = ed->pubKeySet;
    int rc = TAM_EKEY;
    if (!ed->privKeySet ||
        (had_public && (wc_ed25519_export_public(ed, given, &n) != 0 || n != sizeof(given)))) {
        return TAM_EKEY;
    }
    n = sizeof(seed);
    if (wc_ed25519_export_private_only(ed, seed, &n) != 0 || n != sizeof(seed) ||
        wc_ed25519_make_public(ed, derived, sizeof(derived)) != 0) {
        goto done;
    }
    if (had_public && memcmp(given, derived, sizeof(given)) != 0) {
        goto done;
    }
    if (wc_ed25519_import_private_key(seed, sizeof(seed), derived, sizeof(derived), ed) == 0) {
        rc = TAM_OK;
    }
done:
    tam_memzero(seed, sizeof(seed));
    return rc;
}

static int ed25519_seal(struct tam_key *key)
{
    ed25519_key *ed = &key->u.ed;
    if (key->has_private) {
        int rc = ed25519_check_private(ed);
        if (rc != TAM_OK) {
            return rc;
        }
    } else if (!ed->pubKeySet || ed->privKeySet) {
        return TAM_EKEY;
    }
    word32 n = ED25519_PUB_KEY_SIZE;
    if (wc_ed25519_export_public(ed, key->pub, &n) != 0 || n != ED25519_PUB_KEY_SIZE ||
        !ed25519_public_ok(key->pub)) {
        return TAM_EKEY;
    }
    key->pub_len = ED25519_PUB_KEY_SIZE;
    return TAM_OK;
}

/*
 * The deterministic COSE_Key of RFC 9679 section 3: only the required members,
 * keys in bytewise order of their encodings (1, -1, -2, -3), shortest heads.
 * The shapes are fixed, so they are written byte by byte.
 */
static size_t cose_key_encode(const struct tam_key *key, uint8_t out[TAM_COSE_KEY_MAX])
{
    static const uint8_t ec2_head[] = {0xa4, 0x01, 0x02, 0x20, 0x01, 0x21, 0x58, 0x20};
    static const uint8_t okp_head[] = {0xa3, 0x01, 0x01, 0x20, 0x06, 0x21, 0x58, 0x20};
    size_t n;
    if (key->type == TAM_KEY_P256) {
        memcpy(out, ec2_head, sizeof(ec2_head));
        n = sizeof(ec2_head);
        memcpy(out + n, key->pub, TAM_P256_LEN);
        n += TAM_P256_LEN;
        out[n++] = 0x22; /* -3: y */
        out[n++] = 0x58;
        out[n++] = 0x20;
        memcpy(out + n, key->pub + TAM_P256_LEN, TAM_P256_LEN);
        return n + TAM_P256_LEN;
    }
    memcpy(out, okp_head, sizeof(okp_head));
    n = sizeof(okp_head);
    memcpy(out + n, key->pub, ED25519_PUB_KEY_SIZE);
    return n + ED25519_PUB_KEY_SIZE;
}

int tam_crypto__key_seal(struct tam_key *key)
{
    int rc = key->type == TAM_KEY_P256 ? p256_seal(key) : ed25519_seal(key);
    if (rc != TAM_OK) {
        return rc;
    }
    uint8_t cose[TAM_COSE_KEY_MAX];
    size_t n = cose_key_encode(key, cose);
    tam_sha256(cose, n, key->kid);
    return TAM_OK;
}

/* Seals key and hands it to *out, or destroys it. */
static int finish(struct tam_key *key, struct tam_key **out)
{
    int rc = tam_crypto__key_seal(key);
    if (rc != TAM_OK) {
        tam_key_destroy(key);
        return rc;
    }
    *out = key;
    return TAM_OK;
}

/*
 * d is drawn uniformly from [1, n-1] by rejection (a retry is needed with
 * probability below 2^-32) and imported alone; seal then derives the public point
 * exactly as for a SEC1 key without one. wc_ecc_make_key_ex is avoided: in
 * wolfSSL 5.5.4, wc_ecc_make_pub on a key it generated leaks the point (LSan).
 */
static int p256_generate(WC_RNG *rng, ecc_key *ecc)
{
    uint8_t d[TAM_P256_LEN];
    int rc = -1;
    for (int tries = 0; tries < 16; tries++) {
        if (wc_RNG_GenerateBlock(rng, d, sizeof(d)) != 0) {
            break;
        }
        if (!all_zero(d, sizeof(d)) && be_less(d, p256_n, sizeof(d))) {
            rc = wc_ecc_import_private_key_ex(d, sizeof(d), NULL, 0, ecc, ECC_SECP256R1);
            break;
        }
    }
    tam_memzero(d, sizeof(d));
    return rc;
}

int tam_key_generate(enum tam_key_type type, struct tam_key **out)
{
    if (out == NULL) {
        return TAM_EINVAL;
    }
    *out = NULL;
    WC_RNG *rng;
    int rc = tam_crypto__rng(&rng);
    if (rc != TAM_OK) {
        return rc;
    }
    struct tam_key *key;
    rc = tam_crypto__key_new(type, &key);
    if (rc != TAM_OK) {
        return rc;
    }
    if (type == TAM_KEY_P256) {
        rc = p256_generate(rng, &key->u.ecc);
    } else {
        rc = wc_ed25519_make_key(rng, ED25519_KEY_SIZE, &key->u.ed);
    }
    if (rc != 0) {
        tam_key_destroy(key);
        return TAM_ECRYPTO;
    }
    key->has_private = true;
    return finish(key, out);
}

int tam_key_from_raw_public(enum tam_key_type type, const uint8_t *pub, size_t len,
                            struct tam_key **out)
{
    if (out == NULL || (pub == NULL && len > 0)) {
        return TAM_EINVAL;
    }
    *out = NULL;
    if (type != TAM_KEY_P256 && type != TAM_KEY_ED25519) {
        return TAM_EINVAL;
    }
    if (type == TAM_KEY_P256 && len == 1 + 2 * TAM_P256_LEN && pub[0] == 0x04) {
        pub++;
        len--;
    }
    size_t want = type == TAM_KEY_P256 ? 2 * TAM_P256_LEN : ED25519_PUB_KEY_SIZE;
    if (len != want) {
        return TAM_EKEY;
    }
    struct tam_key *key;
    int rc = tam_crypto__key_new(type, &key);
    if (rc != TAM_OK) {
        return rc;
    }
    if (type == TAM_KEY_P256) {
        rc = wc_ecc_import_unsigned(&key->u.ecc, pub, pub + TAM_P256_LEN, NULL, ECC_SECP256R1);
    } else {
        rc = wc_ed25519_import_public(pub, (word32)len, &key->u.ed);
    }
    if (rc != 0) {
        tam_key_destroy(key);
        return TAM_EKEY;
    }
    return finish(key, out);
}

enum tam_key_type tam_key_type(const struct tam_key *key)
{
    return key->type;
}

bool tam_key_has_private(const struct tam_key *key)
{
    return key != NULL && key->has_private;
}

bool tam_key_alg_ok(const struct tam_key *key, int alg)
{
    if (key == NULL) {
        return false;
    }
    if (key->type == TAM_KEY_P256) {
        return alg == TAM_ALG_ESP256 || alg == TAM_ALG_ES256;
    }
    return alg == TAM_ALG_ED25519 || alg == TAM_ALG_EDDSA;
}

int tam_key_default_alg(const struct tam_key *key)
{
    return key->type == TAM_KEY_P256 ? TAM_ALG_ESP256 : TAM_ALG_ED25519;
}

size_t tam_key_public_raw(const struct tam_key *key, uint8_t out[64])
{
    memcpy(out, key->pub, key->pub_len);
    return key->pub_len;
}

const uint8_t *tam_key_kid(const struct tam_key *key)
{
    return key->kid;
}

int tam_key_cose_public(const struct tam_key *key, struct tam_buf *out)
{
    if (key == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    uint8_t cose[TAM_COSE_KEY_MAX];
    size_t n = cose_key_encode(key, cose);
    return tam_buf_append(out, cose, n);
}
