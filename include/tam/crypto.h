/*
 * Keys, signatures, digests and randomness over wolfCrypt.
 *
 * Algorithms are COSE ids: ESP256 (-9) and ES256 (-7) for P-256 with SHA-256,
 * Ed25519 (-19) and EdDSA (-8) for Ed25519. ECDSA signatures are raw r||s, each
 * half left-padded to 32 bytes (RFC 9053), and are deterministic (RFC 6979), so
 * signing never depends on the RNG state a forked process inherited.
 * tam_random() re-seeds itself when it finds it runs in a new process (DEPS.md 8.1).
 */
#ifndef TAM_CRYPTO_H
#define TAM_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"

enum tam_cose_alg {
    TAM_ALG_ES256 = -7,
    TAM_ALG_EDDSA = -8,
    TAM_ALG_ESP256 = -9,
    TAM_ALG_ED25519 = -19,
    TAM_ALG_SHA256 = -16,
};

enum tam_key_type {
    TAM_KEY_P256 = 1,
    TAM_KEY_ED25519 = 2,
};

#define TAM_SIG_MAX    64
#define TAM_SHA256_LEN 32
#define TAM_KID_LEN    32 /* RFC 9679 SHA-256 thumbprint */

struct tam_key; /* opaque; immutable once created, so it can be shared read-only */

/* Generates a fresh key pair. */
TAM_MUST_CHECK int tam_key_generate(enum tam_key_type type, struct tam_key **out);
/*
 * Imports a PEM key: SEC1 "EC PRIVATE KEY", PKCS#8 "PRIVATE KEY" (P-256 or Ed25519)
 * or SPKI "PUBLIC KEY". A private key also yields its public half.
 */
TAM_MUST_CHECK int tam_key_from_pem(const char *pem, size_t len, struct tam_key **out);
/* Imports a raw public key: P-256 x||y (64 bytes) or uncompressed point (65), Ed25519 (32). */
TAM_MUST_CHECK int tam_key_from_raw_public(enum tam_key_type type, const uint8_t *pub, size_t len,
                                           struct tam_key **out);
void tam_key_destroy(struct tam_key *key); /* wipes private material; NULL-safe */

enum tam_key_type tam_key_type(const struct tam_key *key);
bool tam_key_has_private(const struct tam_key *key);
/* Whether alg is a signature algorithm for this key's type (-7/-9 for P-256, -8/-19 for Ed25519).
 */
bool tam_key_alg_ok(const struct tam_key *key, int alg);
/* The preferred (RFC 9864) algorithm for this key: -9 or -19. */
int tam_key_default_alg(const struct tam_key *key);
/* Raw public key: x||y (64 bytes) for P-256, 32 bytes for Ed25519; returns the length written. */
size_t tam_key_public_raw(const struct tam_key *key, uint8_t out[64]);
/* RFC 9679 COSE_Key thumbprint (SHA-256), the TEEP key id; computed once at creation. */
const uint8_t *tam_key_kid(const struct tam_key *key);

TAM_MUST_CHECK int tam_key_public_pem(const struct tam_key *key, struct tam_buf *out);
TAM_MUST_CHECK int tam_key_private_pem(const struct tam_key *key, struct tam_buf *out);
/* Public COSE_Key map, deterministic ({1:kty, -1:crv, -2:x[, -3:y]}), appended to out. */
TAM_MUST_CHECK int tam_key_cose_public(const struct tam_key *key, struct tam_buf *out);

/*
 * Signs msg with alg (which must fit the key). sig receives 64 bytes; *sig_len = 64.
 * P-256: SHA-256 then deterministic ECDSA, raw r||s. Ed25519: pure EdDSA over msg.
 */
TAM_MUST_CHECK int tam_sign(const struct tam_key *key, int alg, const uint8_t *msg, size_t len,
                            uint8_t sig[TAM_SIG_MAX], size_t *sig_len);
/* TAM_OK when the signature verifies, TAM_ESIG when it does not, TAM_EKEY/TAM_ECOSE_ALG on misuse.
 */
TAM_MUST_CHECK int tam_verify(const struct tam_key *key, int alg, const uint8_t *msg, size_t len,
                              const uint8_t *sig, size_t sig_len);

void tam_sha256(const void *msg, size_t len, uint8_t out[TAM_SHA256_LEN]);
/* Constant-time comparison; true when equal. */
bool tam_ct_equal(const void *a, const void *b, size_t len);
/* Cryptographically secure random bytes; fork-safe. */
TAM_MUST_CHECK int tam_random(void *out, size_t len);

/*
 * Serves wolfCrypt's allocations from a per-thread size-class cache (src/crypto/wolf_alloc.c:
 * its elliptic-curve points are too big for glibc's fast paths). Call first thing in main(),
 * before anything uses wolfSSL. A no-op in ASan builds (and should wolfSSL refuse: malloc
 * stays).
 */
void tam_crypto_cache_allocations(void);

#endif
