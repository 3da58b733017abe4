/*
 * Sealing of tenant keys at rest (seal.h): AES-256-GCM under the deployment KEK, or ECDH-ES
 * P-256 + HKDF-SHA256 + AES-256-GCM to the workers' sealing key.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>

#include <wolfssl/wolfcrypt/aes.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/seal.h"

#define HKDF_INFO "tamgate worker-seal v1"
#define DER_MAX   1024u

static void wipe_buf(struct tam_buf *b)
{
    if (b->data != NULL) {
        tam_memzero(b->data, b->cap);
    }
    tam_buf_finish(b);
}

size_t tam_seal_aad(char *out, const char *tenant, const char *slot)
{
    int n = snprintf(out, TAM_SEAL_AAD_MAX, "tamgate:%s:%s", tenant, slot);
    if (n < 0) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n < TAM_SEAL_AAD_MAX ? (size_t)n : TAM_SEAL_AAD_MAX - 1;
}

int tam_seal_version(const uint8_t *blob, size_t len)
{
    return len > 0 ? blob[0] : 0;
}

/* AES-256-GCM of pt, appended to out as nonce || ct || tag (after whatever out holds). */
static int gcm_seal(const uint8_t key[32], const void *aad, size_t aad_len, const uint8_t *pt,
                    size_t len, struct tam_buf *out)
{
    uint8_t nonce[TAM_SEAL_NONCE_LEN];
    int err = tam_random(nonce, sizeof(nonce));
    size_t start = out->len;
    if (err == TAM_OK) {
        err = tam_buf_reserve(out, TAM_SEAL_NONCE_LEN + len + TAM_SEAL_TAG_LEN);
    }
    if (err != TAM_OK) {
        return err;
    }
    Aes aes;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0) {
        return TAM_ECRYPTO;
    }
    uint8_t *p = out->data + start;
    memcpy(p, nonce, TAM_SEAL_NONCE_LEN);
    int rc = wc_AesGcmSetKey(&aes, key, 32);
    if (rc == 0) {
        rc = wc_AesGcmEncrypt(&aes, p + TAM_SEAL_NONCE_LEN, pt, (word32)len, nonce,
                              TAM_SEAL_NONCE_LEN, p + TAM_SEAL_NONCE_LEN + len, TAM_SEAL_TAG_LEN,
                              aad, (word32)aad_len);
    }
    wc_AesFree(&aes);
    if (rc != 0) {
        return TAM_ECRYPTO;
    }
    out->len = start + TAM_SEAL_NONCE_LEN + len + TAM_SEAL_TAG_LEN;
    return TAM_OK;
}

/* Opens nonce || ct || tag into out; on any failure the plaintext written so far is wiped. */
static int gcm_open(const uint8_t key[32], const void *aad, size_t aad_len, const uint8_t *in,
                    size_t len, struct tam_buf *out)
{
    if (len < TAM_SEAL_NONCE_LEN + TAM_SEAL_TAG_LEN) {
        return TAM_EINVAL;
    }
    size_t ct_len = len - TAM_SEAL_NONCE_LEN - TAM_SEAL_TAG_LEN;
    if (ct_len > TAM_SEAL_MAX_PLAINTEXT) {
        return TAM_ETOOBIG;
    }
    size_t start = out->len;
    int err = tam_buf_reserve(out, ct_len + 1);
    if (err != TAM_OK) {
        return err;
    }
    Aes aes;
    if (wc_AesInit(&aes, NULL, INVALID_DEVID) != 0) {
        return TAM_ECRYPTO;
    }
    uint8_t *p = out->data + start;
    int rc = wc_AesGcmSetKey(&aes, key, 32);
    if (rc == 0) {
        rc = wc_AesGcmDecrypt(&aes, p, in + TAM_SEAL_NONCE_LEN, (word32)ct_len, in,
                              TAM_SEAL_NONCE_LEN, in + TAM_SEAL_NONCE_LEN + ct_len,
                              TAM_SEAL_TAG_LEN, aad, (word32)aad_len);
    }
    wc_AesFree(&aes);
    if (rc != 0) {
        /* wolfCrypt leaves the unauthenticated plaintext in p (DEPS.md 8.4). */
        tam_memzero(p, ct_len);
        return rc == AES_GCM_AUTH_E ? TAM_ESIG : TAM_ECRYPTO;
    }
    out->len = start + ct_len;
    return TAM_OK;
}

int tam_seal_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const void *aad, size_t aad_len,
                 const uint8_t *pt, size_t len, struct tam_buf *out)
{
    if (kek == NULL || out == NULL || (pt == NULL && len > 0) || (aad == NULL && aad_len > 0)) {
        return TAM_EINVAL;
    }
    if (len > TAM_SEAL_MAX_PLAINTEXT) {
        return TAM_ETOOBIG;
    }
    size_t start = out->len;
    uint8_t v = TAM_SEAL_V_KEK;
    int err = tam_buf_append(out, &v, 1);
    if (err == TAM_OK) {
        err = gcm_seal(kek, aad, aad_len, pt, len, out);
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    return err;
}

int tam_unseal_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const void *aad, size_t aad_len,
                   const uint8_t *blob, size_t len, struct tam_buf *out)
{
    if (kek == NULL || out == NULL || (blob == NULL && len > 0) || (aad == NULL && aad_len > 0)) {
        return TAM_EINVAL;
    }
    if (len < TAM_SEAL_KEK_OVERHEAD || blob[0] != TAM_SEAL_V_KEK) {
        return TAM_EINVAL;
    }
    return gcm_open(kek, aad, aad_len, blob + 1, len - 1, out);
}

/* ---- worker sealing: ECDH-ES P-256 ---- */

static int import_public(const struct tam_key *k, ecc_key *pub, uint8_t raw[64])
{
    if (k == NULL || tam_key_type(k) != TAM_KEY_P256 || tam_key_public_raw(k, raw) != 64) {
        return TAM_EKEY;
    }
    if (wc_ecc_init(pub) != 0) {
        return TAM_ECRYPTO;
    }
    if (wc_ecc_import_unsigned(pub, raw, raw + 32, NULL, ECC_SECP256R1) != 0) {
        wc_ecc_free(pub);
        return TAM_EKEY;
    }
    return TAM_OK;
}

/* The recipient's private key, through its PKCS#8 PEM (struct tam_key is opaque here). */
static int import_private(const struct tam_key *k, ecc_key *priv)
{
    if (k == NULL || tam_key_type(k) != TAM_KEY_P256 || !tam_key_has_private(k)) {
        return TAM_EKEY;
    }
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    uint8_t der[DER_MAX];
    int err = tam_key_private_pem(k, &pem);
    int n = err == TAM_OK ? wc_KeyPemToDer(pem.data, (int)pem.len, der, sizeof(der), NULL) : -1;
    wipe_buf(&pem);
    if (err == TAM_OK && n <= 0) {
        err = TAM_EKEY;
    }
    if (err == TAM_OK && wc_ecc_init(priv) != 0) {
        err = TAM_ECRYPTO;
    }
    if (err == TAM_OK) {
        word32 idx = 0;
        if (wc_EccPrivateKeyDecode(der, &idx, priv, (word32)n) != 0) {
            wc_ecc_free(priv);
            err = TAM_EKEY;
        }
    }
    tam_memzero(der, sizeof(der));
    return err;
}

/* HKDF-SHA256 over the ECDH secret z, salted with both public keys. */
static int derive(const uint8_t *z, word32 zlen, const uint8_t epk[TAM_SEAL_EPK_LEN],
                  const uint8_t rpub[64], uint8_t key[32])
{
    uint8_t salt[TAM_SEAL_EPK_LEN + 64];
    memcpy(salt, epk, TAM_SEAL_EPK_LEN);
    memcpy(salt + TAM_SEAL_EPK_LEN, rpub, 64);
    int rc = wc_HKDF(WC_SHA256, z, zlen, salt, sizeof(salt), (const byte *)HKDF_INFO,
                     (word32)strlen(HKDF_INFO), key, 32);
    return rc == 0 ? TAM_OK : TAM_ECRYPTO;
}

/* A fresh ephemeral key, its uncompressed point and the shared secret with pub. */
static int ephemeral_agree(ecc_key *pub, uint8_t epk[TAM_SEAL_EPK_LEN], uint8_t z[32], word32 *zlen)
{
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0) {
        return TAM_ECRYPTO;
    }
    ecc_key eph;
    int err = TAM_ECRYPTO;
    if (wc_ecc_init(&eph) == 0) {
        word32 elen = TAM_SEAL_EPK_LEN;
        *zlen = 32;
        if (wc_ecc_make_key_ex(&rng, 32, &eph, ECC_SECP256R1) == 0 &&
            wc_ecc_set_rng(&eph, &rng) == 0 && wc_ecc_export_x963(&eph, epk, &elen) == 0 &&
            elen == TAM_SEAL_EPK_LEN && wc_ecc_shared_secret(&eph, pub, z, zlen) == 0) {
            err = TAM_OK;
        }
        wc_ecc_free(&eph);
    }
    wc_FreeRng(&rng);
    return err;
}

int tam_seal_worker(const struct tam_key *recipient, const void *aad, size_t aad_len,
                    const uint8_t *pt, size_t len, struct tam_buf *out)
{
    if (out == NULL || (pt == NULL && len > 0) || (aad == NULL && aad_len > 0)) {
        return TAM_EINVAL;
    }
    if (len > TAM_SEAL_MAX_PLAINTEXT) {
        return TAM_ETOOBIG;
    }
    ecc_key pub;
    uint8_t rpub[64], epk[TAM_SEAL_EPK_LEN], z[32], key[32];
    word32 zlen = 0;
    int err = import_public(recipient, &pub, rpub);
    if (err != TAM_OK) {
        return err;
    }
    err = ephemeral_agree(&pub, epk, z, &zlen);
    wc_ecc_free(&pub);
    if (err == TAM_OK) {
        err = derive(z, zlen, epk, rpub, key);
    }
    size_t start = out->len;
    uint8_t v = TAM_SEAL_V_WORKER;
    if (err == TAM_OK) {
        err = tam_buf_append(out, &v, 1);
    }
    if (err == TAM_OK) {
        err = tam_buf_append(out, epk, sizeof(epk));
    }
    if (err == TAM_OK) {
        err = gcm_seal(key, aad, aad_len, pt, len, out);
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    tam_memzero(z, sizeof(z));
    tam_memzero(key, sizeof(key));
    return err;
}

/* The ECDH secret between the recipient's private key and the blob's ephemeral point. */
static int recipient_agree(const struct tam_key *recipient, const uint8_t epk[TAM_SEAL_EPK_LEN],
                           uint8_t rpub[64], uint8_t z[32], word32 *zlen)
{
    ecc_key priv, eph;
    int err = import_private(recipient, &priv);
    if (err != TAM_OK) {
        return err;
    }
    (void)tam_key_public_raw(recipient, rpub);
    WC_RNG rng;
    bool rng_ok = wc_InitRng(&rng) == 0;
    err = rng_ok && wc_ecc_init(&eph) == 0 ? TAM_OK : TAM_ECRYPTO;
    if (err == TAM_OK) {
        *zlen = 32;
        if (wc_ecc_import_x963_ex(epk, TAM_SEAL_EPK_LEN, &eph, ECC_SECP256R1) != 0 ||
            wc_ecc_check_key(&eph) != 0) {
            err = TAM_EINVAL;
        } else if (wc_ecc_set_rng(&priv, &rng) != 0 ||
                   wc_ecc_shared_secret(&priv, &eph, z, zlen) != 0) {
            err = TAM_ECRYPTO;
        }
        wc_ecc_free(&eph);
    }
    if (rng_ok) {
        wc_FreeRng(&rng);
    }
    wc_ecc_free(&priv);
    return err;
}

int tam_unseal_worker(const struct tam_key *recipient, const void *aad, size_t aad_len,
                      const uint8_t *blob, size_t len, struct tam_buf *out)
{
    if (out == NULL || (blob == NULL && len > 0) || (aad == NULL && aad_len > 0)) {
        return TAM_EINVAL;
    }
    if (len < TAM_SEAL_WORKER_OVERHEAD || blob[0] != TAM_SEAL_V_WORKER) {
        return TAM_EINVAL;
    }
    const uint8_t *epk = blob + 1;
    uint8_t rpub[64], z[32], key[32];
    word32 zlen = 0;
    int err = recipient_agree(recipient, epk, rpub, z, &zlen);
    if (err == TAM_OK) {
        err = derive(z, zlen, epk, rpub, key);
    }
    if (err == TAM_OK) {
        err = gcm_open(key, aad, aad_len, blob + 1 + TAM_SEAL_EPK_LEN, len - 1 - TAM_SEAL_EPK_LEN,
                       out);
    }
    tam_memzero(z, sizeof(z));
    tam_memzero(key, sizeof(key));
    return err;
}

/* ---- private keys ---- */

int tam_seal_key_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const char *tenant, const char *slot,
                     const struct tam_key *key, struct tam_buf *out)
{
    if (key == NULL || tenant == NULL || slot == NULL) {
        return TAM_EINVAL;
    }
    char aad[TAM_SEAL_AAD_MAX];
    size_t alen = tam_seal_aad(aad, tenant, slot);
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    int err = tam_key_private_pem(key, &pem);
    if (err == TAM_OK) {
        err = tam_seal_kek(kek, aad, alen, pem.data, pem.len, out);
    }
    wipe_buf(&pem);
    return err;
}

int tam_seal_key_worker(const struct tam_key *worker, const char *tenant, const char *slot,
                        const struct tam_key *key, struct tam_buf *out)
{
    if (key == NULL || tenant == NULL || slot == NULL) {
        return TAM_EINVAL;
    }
    char aad[TAM_SEAL_AAD_MAX];
    size_t alen = tam_seal_aad(aad, tenant, slot);
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    int err = tam_key_private_pem(key, &pem);
    if (err == TAM_OK) {
        err = tam_seal_worker(worker, aad, alen, pem.data, pem.len, out);
    }
    wipe_buf(&pem);
    return err;
}

int tam_unseal_key(const uint8_t *kek, const struct tam_key *worker, const char *tenant,
                   const char *slot, const uint8_t *blob, size_t len, struct tam_key **out)
{
    if (tenant == NULL || slot == NULL || out == NULL || (blob == NULL && len > 0)) {
        return TAM_EINVAL;
    }
    *out = NULL;
    char aad[TAM_SEAL_AAD_MAX];
    size_t alen = tam_seal_aad(aad, tenant, slot);
    struct tam_buf pem;
    tam_buf_init(&pem, TAM_SEAL_MAX_PLAINTEXT + 1);
    int err;
    switch (tam_seal_version(blob, len)) {
    case TAM_SEAL_V_KEK:
        err = kek != NULL ? tam_unseal_kek(kek, aad, alen, blob, len, &pem) : TAM_EKEY;
        break;
    case TAM_SEAL_V_WORKER:
        err = worker != NULL ? tam_unseal_worker(worker, aad, alen, blob, len, &pem) : TAM_EKEY;
        break;
    default:
        err = TAM_EINVAL;
        break;
    }
    if (err == TAM_OK) {
        err = tam_key_from_pem((const char *)pem.data, pem.len, out);
    }
    if (err == TAM_OK && !tam_key_has_private(*out)) {
        tam_key_destroy(*out);
        *out = NULL;
        err = TAM_EKEY;
    }
    wipe_buf(&pem);
    return err;
}
