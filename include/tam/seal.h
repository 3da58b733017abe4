/*
 * Sealing of secrets at rest in Redis (tenant signing keys).
 *
 * Two envelopes, both AES-256-GCM (16-byte tag) with a fresh random 12-byte nonce:
 *
 *  1. KEK sealing (version byte 0x01), for the tenants' TAM TEEP signing keys, which tamd
 *     (first QueryRequest) and tam-worker (Updates) both need:
 *         blob = 0x01 || nonce(12) || ciphertext || tag(16)
 *     under the deployment key-encryption key (32 bytes) that tamd and tam-worker load with
 *     tam_seal_kek_load() (`--kek-file`; zero-config: DATA_DIR/kek.key, created 0600).
 *
 *  2. Worker sealing (version byte 0x02), for the tenants' SUIT manifest signing keys, which
 *     only workers may hold (gateways never see manifest keys): ECDH-ES with an ephemeral
 *     P-256 key to the worker sealing public key, then
 *         key = HKDF-SHA256(salt = epk(65) || recipient x||y (64), ikm = ECDH x-coordinate,
 *                           info = "tamgate worker-seal v1", L = 32)
 *         blob = 0x02 || epk(65, uncompressed point) || nonce(12) || ciphertext || tag(16)
 *     The private half of the worker sealing key is given to workers only
 *     (`--worker-seal-key`; zero-config: DATA_DIR/worker-seal.pem, 0600).
 *
 * The AAD binds a blob to its place, so a blob copied to another tenant or another key slot
 * does not open: tam_seal_aad() formats "tamgate:<tenant>:<slot>" (slot: "p256", "ed25519",
 * "manifest:p256", ...). A sealed private key's plaintext is its PKCS#8 PEM.
 *
 * Pure except tam_seal_kek_load() (file I/O) and the randomness (tam_random / a fresh WC_RNG).
 * Errors: TAM_EINVAL (bad argument, malformed blob, unknown version), TAM_ESIG (authentication
 * failed: wrong key, wrong AAD or tampered blob; the output is wiped, DEPS.md 8.4),
 * TAM_ETOOBIG, TAM_EKEY (the recipient key is not a usable P-256 key), TAM_ECRYPTO, TAM_ENOMEM.
 * Outputs are appended to a struct tam_buf; on failure nothing is appended.
 */
#ifndef TAM_SEAL_H
#define TAM_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"

#define TAM_SEAL_KEK_LEN         32
#define TAM_SEAL_NONCE_LEN       12
#define TAM_SEAL_TAG_LEN         16
#define TAM_SEAL_EPK_LEN         65
#define TAM_SEAL_V_KEK           0x01
#define TAM_SEAL_V_WORKER        0x02
#define TAM_SEAL_KEK_OVERHEAD    (1 + TAM_SEAL_NONCE_LEN + TAM_SEAL_TAG_LEN)
#define TAM_SEAL_WORKER_OVERHEAD (1 + TAM_SEAL_EPK_LEN + TAM_SEAL_NONCE_LEN + TAM_SEAL_TAG_LEN)
#define TAM_SEAL_MAX_PLAINTEXT   (64u << 10) /* sealed secrets are keys, not payloads */
#define TAM_SEAL_AAD_MAX         160

/* Formats "tamgate:<tenant>:<slot>" into out (TAM_SEAL_AAD_MAX bytes); returns the length. */
size_t tam_seal_aad(char *out, const char *tenant, const char *slot);

/* KEK sealing (1). aad may be NULL when aad_len is 0. */
TAM_MUST_CHECK int tam_seal_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const void *aad,
                                size_t aad_len, const uint8_t *pt, size_t len, struct tam_buf *out);
TAM_MUST_CHECK int tam_unseal_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const void *aad,
                                  size_t aad_len, const uint8_t *blob, size_t len,
                                  struct tam_buf *out);

/* Worker sealing (2): recipient is a P-256 key (public suffices to seal; private to open). */
TAM_MUST_CHECK int tam_seal_worker(const struct tam_key *recipient, const void *aad, size_t aad_len,
                                   const uint8_t *pt, size_t len, struct tam_buf *out);
TAM_MUST_CHECK int tam_unseal_worker(const struct tam_key *recipient, const void *aad,
                                     size_t aad_len, const uint8_t *blob, size_t len,
                                     struct tam_buf *out);

/* The version byte of a blob (TAM_SEAL_V_*), or 0 when it is empty. */
int tam_seal_version(const uint8_t *blob, size_t len);

/*
 * Private keys: seal the PKCS#8 PEM of key under AAD tam_seal_aad(tenant, slot), or open a
 * blob back into a key (*out owned by the caller). Open dispatches on the version byte:
 * TAM_SEAL_V_KEK needs kek, TAM_SEAL_V_WORKER needs worker (a private P-256 key); the other
 * may be NULL (TAM_EKEY when the needed one is missing). Intermediate plaintext is wiped.
 */
TAM_MUST_CHECK int tam_seal_key_kek(const uint8_t kek[TAM_SEAL_KEK_LEN], const char *tenant,
                                    const char *slot, const struct tam_key *key,
                                    struct tam_buf *out);
TAM_MUST_CHECK int tam_seal_key_worker(const struct tam_key *worker, const char *tenant,
                                       const char *slot, const struct tam_key *key,
                                       struct tam_buf *out);
TAM_MUST_CHECK int tam_unseal_key(const uint8_t *kek, const struct tam_key *worker,
                                  const char *tenant, const char *slot, const uint8_t *blob,
                                  size_t len, struct tam_key **out);

/*
 * Loads the KEK file at path: exactly 32 raw bytes, or 64 hex digits (optionally followed by
 * white space). When the file does not exist and create is true, 32 random bytes are written
 * to a new file (O_EXCL, mode 0600; a concurrent creator wins and its file is read) and
 * *created is set (may be NULL). Returns TAM_OK, TAM_EINVAL (wrong size or content), -errno.
 */
TAM_MUST_CHECK int tam_seal_kek_load(const char *path, bool create, uint8_t kek[TAM_SEAL_KEK_LEN],
                                     bool *created);

/*
 * Loads the worker sealing key (a private P-256 key, PEM) at path; when the file does not
 * exist and create is true, generates one and writes its PKCS#8 PEM to a new file (O_EXCL,
 * mode 0600) and sets *created. Its public half (tam_key_public_pem) is what tamd's admin API
 * seals manifest keys to. *out is owned by the caller. TAM_OK, TAM_EKEY (not a private P-256
 * key), -errno.
 */
TAM_MUST_CHECK int tam_seal_worker_key_load(const char *path, bool create, struct tam_key **out,
                                            bool *created);

/*
 * Loads a PEM key file (at most 16 KiB; public or private). With public_only, a private key
 * is reduced to its public half (the private half is wiped). TAM_OK, TAM_EINVAL, TAM_EKEY,
 * -errno.
 */
TAM_MUST_CHECK int tam_key_file_load(const char *path, bool public_only, struct tam_key **out);

#endif
