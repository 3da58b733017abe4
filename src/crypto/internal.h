/*
 * Shared between the files of src/crypto only: the layout of struct tam_key and
 * the helpers that create and validate keys. Nothing outside src/crypto may
 * include this header; the public surface is include/tam/crypto.h.
 */
#ifndef TAM_CRYPTO_INTERNAL_H
#define TAM_CRYPTO_INTERNAL_H

/* wolfSSL's build options must come before any other wolfSSL header (DEPS.md 3). */
#include <stdatomic.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>

#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>

#include "tam/crypto.h"

#define TAM_P256_LEN 32
/* Largest deterministic COSE_Key encoding we produce (EC2: 75 bytes). */
#define TAM_COSE_KEY_MAX 80

struct tam_key {
    enum tam_key_type type;
    bool has_private;
    uint8_t pub_len;          /* 64 for P-256 (x||y), 32 for Ed25519 */
    uint8_t pub[64];          /* raw public key, canonical form */
    uint8_t kid[TAM_KID_LEN]; /* RFC 9679 thumbprint, computed by seal */
    union {
        ecc_key ecc;    /* deterministic signing is enabled on private keys */
        ed25519_key ed; /* always holds the public half once sealed */
    } u;
    /* P-256 verifications so far: see p256_verify (atomic: keys may be shared by threads). */
    _Atomic unsigned verifies;
};

/*
 * Allocates a key of `type` and initialises its wolfSSL struct. The caller fills
 * the struct (generate, decode or import), sets has_private, then calls seal.
 * On any later failure, tam_key_destroy releases it.
 */
TAM_MUST_CHECK int tam_crypto__key_new(enum tam_key_type type, struct tam_key **out);
/*
 * Validates a filled key and derives what the rest of the module relies on: the
 * public half of a private key (recomputed, and compared with any public key the
 * encoding carried), the canonical raw public key, point checks, the deterministic
 * signing flag and the thumbprint. TAM_EKEY when the key is not acceptable.
 */
TAM_MUST_CHECK int tam_crypto__key_seal(struct tam_key *key);
/* The process-wide RNG, re-seeded after a fork (DEPS.md 8.1). Borrowed. */
TAM_MUST_CHECK int tam_crypto__rng(WC_RNG **out);

#endif
