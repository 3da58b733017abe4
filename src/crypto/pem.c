/*
 * PEM import and export. Accepted: SEC1 "EC PRIVATE KEY" (P-256), PKCS#8
 * "PRIVATE KEY" (P-256 or Ed25519), SPKI "PUBLIC KEY" (P-256 or Ed25519).
 * Exported: SPKI for public keys, PKCS#8 for private keys of both types.
 */
#include "internal.h"

#include <wolfssl/wolfcrypt/asn_public.h>

#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"

/* A P-256 or Ed25519 PEM is well under 1 KiB; leave room for comments and EC PARAMETERS. */
#define TAM_PEM_MAX (16u * 1024u)
/* Our DER forms are at most 138 bytes (P-256 PKCS#8); anything near this bound is not ours. */
#define TAM_DER_MAX 1024u
/* 138 bytes of DER become 241 bytes of PEM. */
#define TAM_PEM_OUT_MAX 1024u

typedef bool der_decode_fn(struct tam_key *key, const uint8_t *der, word32 len);

/* A decoder that stops short of the end did not see the claimed form (trailing bytes). */
static bool ecc_private_decode(struct tam_key *key, const uint8_t *der, word32 len)
{
    word32 idx = 0;
    return wc_EccPrivateKeyDecode(der, &idx, &key->u.ecc, len) == 0 && idx == len;
}

static bool ed25519_private_decode(struct tam_key *key, const uint8_t *der, word32 len)
{
    word32 idx = 0;
    return wc_Ed25519PrivateKeyDecode(der, &idx, &key->u.ed, len) == 0 && idx == len;
}

static bool ecc_public_decode(struct tam_key *key, const uint8_t *der, word32 len)
{
    word32 idx = 0;
    return wc_EccPublicKeyDecode(der, &idx, &key->u.ecc, len) == 0 && idx == len;
}

/* wolfCrypt 5.5.4 leaves idx inside the SPKI here; der_is_one_sequence covers the length. */
static bool ed25519_public_decode(struct tam_key *key, const uint8_t *der, word32 len)
{
    word32 idx = 0;
    return wc_Ed25519PublicKeyDecode(der, &idx, &key->u.ed, len) == 0;
}

static const struct der_decoder {
    enum tam_key_type type;
    bool private_key;
    der_decode_fn *decode;
} decoders[] = {
    {TAM_KEY_P256, true, ecc_private_decode},
    {TAM_KEY_ED25519, true, ed25519_private_decode},
    {TAM_KEY_P256, false, ecc_public_decode},
    {TAM_KEY_ED25519, false, ed25519_public_decode},
};

/* Whether der is exactly one DER SEQUENCE (definite length, up to 0xffff bytes). */
static bool der_is_one_sequence(const uint8_t *der, word32 len)
{
    if (len < 2 || der[0] != 0x30) {
        return false;
    }
    word32 head = 2;
    word32 body = der[1];
    if (body == 0x81 && len >= 3 && der[2] >= 0x80) {
        head = 3;
        body = der[2];
    } else if (body == 0x82 && len >= 4 && der[2] != 0) {
        head = 4;
        body = (word32)der[2] << 8 | der[3];
    } else if (body >= 0x80) {
        return false;
    }
    return head + body == len;
}

/*
 * Tries the decoders of the wanted kind in turn. The wolfCrypt decoders check
 * the algorithm OID, so at most one of them accepts a given DER; seal then
 * refuses other curves and inconsistent keys.
 */
static int decode_der(const uint8_t *der, word32 len, bool private_key, struct tam_key **out)
{
    if (!der_is_one_sequence(der, len)) {
        return TAM_EKEY;
    }
    for (size_t i = 0; i < TAM_ARRAY_LEN(decoders); i++) {
        if (decoders[i].private_key != private_key) {
            continue;
        }
        struct tam_key *key;
        int rc = tam_crypto__key_new(decoders[i].type, &key);
        if (rc != TAM_OK) {
            return rc;
        }
        if (!decoders[i].decode(key, der, len)) {
            tam_key_destroy(key);
            continue;
        }
        key->has_private = private_key;
        rc = tam_crypto__key_seal(key);
        if (rc != TAM_OK) {
            tam_key_destroy(key);
            return rc;
        }
        *out = key;
        return TAM_OK;
    }
    return TAM_EKEY;
}

/* Bounded substring search (memmem is a GNU extension; the input is not NUL-terminated). */
static bool has_label(const char *pem, size_t len, const char *label)
{
    size_t n = strlen(label);
    for (size_t i = 0; i + n <= len; i++) {
        if (pem[i] == label[0] && memcmp(pem + i, label, n) == 0) {
            return true;
        }
    }
    return false;
}

int tam_key_from_pem(const char *pem, size_t len, struct tam_key **out)
{
    if (out == NULL || (pem == NULL && len > 0)) {
        return TAM_EINVAL;
    }
    *out = NULL;
    if (len > TAM_PEM_MAX) {
        return TAM_ETOOBIG;
    }
    /*
     * Route by the armour label: wc_KeyPemToDer also unwraps "PUBLIC KEY", and
     * a public key must never be mistaken for a private one or the reverse.
     */
    bool private_key;
    if (has_label(pem, len, "-----BEGIN EC PRIVATE KEY-----") ||
        has_label(pem, len, "-----BEGIN PRIVATE KEY-----")) {
        private_key = true;
    } else if (has_label(pem, len, "-----BEGIN PUBLIC KEY-----")) {
        private_key = false;
    } else {
        return TAM_EKEY;
    }
    uint8_t der[TAM_DER_MAX];
    const unsigned char *text = (const unsigned char *)pem;
    int n = private_key ? wc_KeyPemToDer(text, (int)len, der, (int)sizeof(der), NULL)
                        : wc_PubKeyPemToDer(text, (int)len, der, (int)sizeof(der));
    int rc = n > 0 ? decode_der(der, (word32)n, private_key, out) : TAM_EKEY;
    tam_memzero(der, sizeof(der));
    return rc;
}

static int der_to_pem(const uint8_t *der, int der_len, int type, struct tam_buf *out)
{
    if (der_len <= 0) {
        return TAM_ECRYPTO;
    }
    uint8_t pem[TAM_PEM_OUT_MAX];
    int n = wc_DerToPem(der, (word32)der_len, pem, sizeof(pem), type);
    int rc = n > 0 ? tam_buf_append(out, pem, (size_t)n) : TAM_ECRYPTO;
    tam_memzero(pem, sizeof(pem));
    return rc;
}

int tam_key_public_pem(const struct tam_key *key, struct tam_buf *out)
{
    if (key == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    /* wolfCrypt's encoders take non-const keys but do not modify them. */
    struct tam_key *k = (struct tam_key *)key;
    uint8_t der[TAM_DER_MAX];
    int n;
    if (k->type == TAM_KEY_P256) {
        n = wc_EccPublicKeyToDer(&k->u.ecc, der, sizeof(der), 1);
    } else {
        n = wc_Ed25519PublicKeyToDer(&k->u.ed, der, sizeof(der), 1);
    }
    return der_to_pem(der, n, PUBLICKEY_TYPE, out);
}

int tam_key_private_pem(const struct tam_key *key, struct tam_buf *out)
{
    if (key == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    if (!key->has_private) {
        return TAM_EKEY;
    }
    struct tam_key *k = (struct tam_key *)key;
    uint8_t der[TAM_DER_MAX];
    int n;
    if (k->type == TAM_KEY_P256) {
        /* PKCS#8 around SEC1 with the public key, as `openssl pkey` writes it. */
        word32 len = sizeof(der);
        n = wc_EccKeyToPKCS8(&k->u.ecc, der, &len);
    } else {
        n = wc_Ed25519PrivateKeyToDer(&k->u.ed, der, sizeof(der));
    }
    int rc = der_to_pem(der, n, PKCS8_PRIVATEKEY_TYPE, out);
    tam_memzero(der, sizeof(der));
    return rc;
}
