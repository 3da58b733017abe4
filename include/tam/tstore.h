/*
 * Tenants in Redis: the record codecs, key names and token helpers shared by the admin API
 * (which writes tenants), tamd and tam-worker (which read them). Pure (no I/O, no clock, no
 * globals) except the section "Redis" at the end.
 *
 * Keys (the whole schema is in keys.h; these are the tenant records):
 *   tam:tenants                  SET of tenant ids
 *   tam:t:{<id>}:cfg             HASH tenant configuration (struct tam_tstore_cfg; fields:
 *                                numbering rfc|draft|draft12, attestation none|required,
 *                                enrollment registered|attested, legacy_alg_ids 0|1,
 *                                sign1_only 0|1, max_devices, rps_per_device, session_ttl_s,
 *                                update_ttl_s, max_pending_per_device, max_kidless_tries,
 *                                challenge_len, created (unix ms), rev (bumped by every change
 *                                of the record, for compare-and-set updates))
 *   tam:t:{<id>}:keys            HASH key slots. "p256", "ed25519": the TAM TEEP signing keys,
 *                                sealed under the KEK (seal.h, AAD "tamgate:<id>:<slot>");
 *                                "manifest:p256" or "manifest:ed25519": the SUIT manifest
 *                                signing key for TAM-built manifests, sealed to the WORKERS'
 *                                key (seal.h worker sealing); "<slot>:pub": its public SPKI PEM
 *   tam:t:{<id>}:anchors:<kind>  HASH kid hex (RFC 9679) -> public SPKI PEM;
 *                                kind: tc-signer | attester | verifier
 *   tam:t:{<id>}:tokens          HASH SHA-256(token) hex -> created (unix ms)
 *   tam:{ops}:operator           HASH SHA-256(operator token) hex -> created (unix ms)
 *   tam:{ops}:tokens             HASH token index: selector (the first 16 hex digits of
 *                                SHA-256(token)) -> "op <sha256 hex>" | "t:<id> <sha256 hex>"
 *   tam:{events}                 PUBLISH after every change: "tenant <id>" (configuration,
 *                                keys, anchors, tokens, creation, deletion), "catalog <id> <v>"
 *                                (components or policy; v = the new catalog_version),
 *                                "device <id> <kid hex>" (registered, changed or deleted)
 *   tam:t:{<id>}:catalog_version INCR on every catalogue, policy or trust-anchor change
 * Claim policy: the "attestation" member of the policy document (store.h), which workers
 * already read with the catalogue (cached per catalog_version).
 *
 * Tokens: 32 random bytes shown once as unpadded base64url (43 characters). Only SHA-256 of
 * the token text is stored. A request's token is looked up by its selector in tam:{ops}:tokens
 * and the full hash is then compared with tam_ct_equal.
 */
#ifndef TAM_TSTORE_H
#define TAM_TSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"
#include "tam/tenant.h"

#define TAM_KEY_OPERATOR    "tam:{ops}:operator"
#define TAM_KEY_TOKEN_INDEX "tam:{ops}:tokens"

#define TAM_TSTORE_TOKEN_RAW    32
#define TAM_TSTORE_TOKEN_LEN    43 /* base64url of 32 bytes, no padding */
#define TAM_TSTORE_HASH_HEX     64
#define TAM_TSTORE_SELECTOR_HEX 16
#define TAM_TSTORE_INDEX_MAX    (3 + TAM_TENANT_ID_MAX + 1 + TAM_TSTORE_HASH_HEX + 1)
#define TAM_TSTORE_MAX_TOKENS   16 /* per tenant */

/* ---- key names ---- */

enum tam_anchor_kind {
    TAM_ANCHOR_TC_SIGNER = 0,
    TAM_ANCHOR_ATTESTER = 1,
    TAM_ANCHOR_VERIFIER = 2,
};
#define TAM_ANCHOR_KINDS 3

/* "tc-signer", "attester", "verifier"; "?" otherwise. */
const char *tam_tstore_anchor_kind_name(enum tam_anchor_kind kind);
/* TAM_OK or TAM_EINVAL. s need not be NUL-terminated. */
TAM_MUST_CHECK int tam_tstore_anchor_kind_parse(const char *s, size_t len,
                                                enum tam_anchor_kind *out);

/* tam:t:{<tenant>}:anchors:<kind> into out (TAM_KEY_MAX bytes); returns the length. */
size_t tam_tstore_key_anchors(char *out, const char *tenant, enum tam_anchor_kind kind);

/* Key slots of tam:t:{<id>}:keys: "p256" / "ed25519", "manifest:p256" / "manifest:ed25519". */
const char *tam_tstore_key_slot(enum tam_key_type type, bool manifest);

/* The tam:{events} message for a tenant change ("tenant <id>"); returns the length. */
size_t tam_tstore_event_tenant(char *out, size_t outsz, const char *tenant);

/* ---- tenant configuration record ---- */

struct tam_tstore_limits {
    uint32_t max_devices;            /* 1..10000000, default 100000 */
    uint32_t rps_per_device;         /* 1..1000, default 1 (enforced by tamd) */
    uint32_t session_ttl_s;          /* 1..86400, default 300 */
    uint32_t update_ttl_s;           /* 1..2592000, default 21600 */
    uint32_t max_pending_per_device; /* 1..1024, default 4 */
    uint32_t max_kidless_tries;      /* 1..256, default 16 */
    uint32_t challenge_len;          /* 8..64, default 32 */
};

struct tam_tstore_cfg {
    enum tam_teep_numbering numbering;
    enum tam_attestation_mode attestation;
    enum tam_enrollment_mode enrollment;
    bool legacy_alg_ids; /* ES256/EdDSA labels; always true for draft12, false for rfc */
    bool sign1_only;
    struct tam_tstore_limits limits;
    uint64_t created_ms;
    uint64_t rev;
};

/* One limit: its field name, bounds and default (for the admin API and validation). */
struct tam_tstore_limit_desc {
    const char *name;
    size_t offset; /* in struct tam_tstore_limits */
    uint32_t min, max, def;
};
/* The table of limits (n entries). */
const struct tam_tstore_limit_desc *tam_tstore_limit_descs(size_t *n);

/* Defaults: those of tam_tenant_create() plus the limit defaults above. */
void tam_tstore_cfg_default(struct tam_tstore_cfg *cfg);
/* TAM_OK, or TAM_EINVAL with a static *why (a bound or a combination is violated). */
TAM_MUST_CHECK int tam_tstore_cfg_check(const struct tam_tstore_cfg *cfg, const char **why);

/* Mode names. */
const char *tam_tstore_attestation_name(enum tam_attestation_mode m); /* "none" "required" */
TAM_MUST_CHECK int tam_tstore_attestation_parse(const char *s, enum tam_attestation_mode *out);
const char *tam_tstore_enrollment_name(enum tam_enrollment_mode m); /* "registered" "attested" */
TAM_MUST_CHECK int tam_tstore_enrollment_parse(const char *s, enum tam_enrollment_mode *out);

#define TAM_TSTORE_CFG_FIELDS 14
#define TAM_TSTORE_VALUE_MAX  24

struct tam_tstore_field {
    const char *name; /* static */
    char value[TAM_TSTORE_VALUE_MAX];
};

/* The HASH fields of cfg (all of them, in a fixed order); returns the count written. */
size_t tam_tstore_cfg_encode(const struct tam_tstore_cfg *cfg,
                             struct tam_tstore_field out[TAM_TSTORE_CFG_FIELDS]);
/*
 * Applies one HASH field to *cfg (start from tam_tstore_cfg_default). Unknown field names are
 * ignored (newer writers); a known field with a bad value is TAM_EINVAL. value need not be
 * NUL-terminated.
 */
TAM_MUST_CHECK int tam_tstore_cfg_set(struct tam_tstore_cfg *cfg, const char *name,
                                      const char *value, size_t len);

/* Copies the configuration into a tenant (numbering, modes, flags, TTLs, bounds). */
void tam_tstore_cfg_apply(const struct tam_tstore_cfg *cfg, struct tam_tenant *t);

/* A field/value pair borrowed from a Redis reply (HGETALL). */
struct tam_tstore_kv {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
};

/*
 * Builds a tenant snapshot from its cfg and keys hashes: configuration applied, TAM TEEP keys
 * unsealed with kek ("p256" / "ed25519" slots; manifest slots are ignored). A cfg without
 * any field (the tenant does not exist) is TAM_ENOTFOUND; a key that does not open is
 * TAM_ESIG/TAM_EKEY (wrong KEK). *out has refs = 1.
 */
TAM_MUST_CHECK int tam_tstore_tenant_build(const char *id, const struct tam_tstore_kv *cfg,
                                           size_t ncfg, const struct tam_tstore_kv *keys,
                                           size_t nkeys, const uint8_t *kek,
                                           struct tam_tenant **out);

/* ---- tokens ---- */

/* Unpadded base64url of src into out (4 * ceil(len / 3) + 1 bytes suffice); returns length. */
size_t tam_tstore_b64url_encode(const uint8_t *src, size_t len, char *out);
/*
 * Decodes base64 (standard or url alphabet, padding optional, no white space) and appends
 * the bytes to out. TAM_EINVAL on a bad character or length.
 */
TAM_MUST_CHECK int tam_tstore_b64_decode(const char *src, size_t len, struct tam_buf *out);

/* A fresh token (NUL-terminated) and its SHA-256. */
TAM_MUST_CHECK int tam_tstore_token_new(char token[TAM_TSTORE_TOKEN_LEN + 1],
                                        uint8_t hash[TAM_SHA256_LEN]);
/* Whether s has the shape of a token (43 base64url characters). */
bool tam_tstore_token_syntax_ok(const char *s, size_t len);
/* SHA-256 of the token text. */
void tam_tstore_token_hash(const char *token, size_t len, uint8_t hash[TAM_SHA256_LEN]);
/* The first TAM_TSTORE_SELECTOR_HEX hex digits of the hash (NUL-terminated). */
void tam_tstore_token_selector(const uint8_t hash[TAM_SHA256_LEN],
                               char out[TAM_TSTORE_SELECTOR_HEX + 1]);

/* The owner of a token. */
struct tam_tstore_owner {
    bool is_operator;                   /* the operator token */
    char tenant[TAM_TENANT_ID_MAX + 1]; /* "" for the operator */
};

/* Formats the index value ("op <hash hex>" or "t:<tenant> <hash hex>"); returns the length. */
size_t tam_tstore_index_value(char out[TAM_TSTORE_INDEX_MAX], const char *tenant,
                              const uint8_t hash[TAM_SHA256_LEN]);
/*
 * Checks a presented token's hash against an index value (constant-time over the hash) and
 * fills *owner. TAM_OK when it matches; TAM_EDENIED when it does not; TAM_EINVAL when the
 * value is malformed.
 */
TAM_MUST_CHECK int tam_tstore_index_check(const char *value, size_t len,
                                          const uint8_t hash[TAM_SHA256_LEN],
                                          struct tam_tstore_owner *owner);

/* ---- Redis (I/O; implemented in src/admin/bootstrap.c) ---- */

struct tam_redis;

/*
 * Completion of tam_tstore_operator_ensure: err TAM_OK and token non-NULL when a new operator
 * token was created (show it once, e.g. write DATA_DIR/operator.token 0600), token NULL when
 * one already existed; err < 0 on a Redis failure. token is borrowed for the call.
 */
typedef void (*tam_tstore_operator_fn)(void *arg, int err, const char *token);

/*
 * Creates the operator token if none exists (atomically: of several processes starting at
 * once, exactly one creates it). cb fires exactly once, later. Returns TAM_OK or the error of
 * submitting the command (then cb never fires).
 */
TAM_MUST_CHECK int tam_tstore_operator_ensure(struct tam_redis *r, tam_tstore_operator_fn cb,
                                              void *arg);

/*
 * Adds an operator token (e.g. one given by configuration) or, with replace, makes it the
 * only one (the old ones stop working). Synchronous form for tools: c is a blocking hiredis
 * context (tam_redis_sync_connect). TAM_OK, TAM_EINVAL (token syntax), TAM_EREDIS.
 */
struct redisContext;
TAM_MUST_CHECK int tam_tstore_operator_set_sync(struct redisContext *c, const char *token,
                                                bool replace, uint64_t now_ms);

#endif
