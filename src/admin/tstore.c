/* Tenant record codecs, key names and tokens (tstore.h). Pure. */
#include "tam/tstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/keys.h"
#include "tam/seal.h"

/* ---- key names ---- */

static const char *const anchor_names[TAM_ANCHOR_KINDS] = {"tc-signer", "attester", "verifier"};

const char *tam_tstore_anchor_kind_name(enum tam_anchor_kind kind)
{
    return (unsigned)kind < TAM_ANCHOR_KINDS ? anchor_names[kind] : "?";
}

int tam_tstore_anchor_kind_parse(const char *s, size_t len, enum tam_anchor_kind *out)
{
    for (unsigned i = 0; i < TAM_ANCHOR_KINDS; i++) {
        if (strlen(anchor_names[i]) == len && memcmp(anchor_names[i], s, len) == 0) {
            *out = (enum tam_anchor_kind)i;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

size_t tam_tstore_key_anchors(char *out, const char *tenant, enum tam_anchor_kind kind)
{
    char what[32];
    (void)snprintf(what, sizeof(what), "anchors:%s", tam_tstore_anchor_kind_name(kind));
    return tam_key_tenant(out, tenant, what);
}

const char *tam_tstore_key_slot(enum tam_key_type type, bool manifest)
{
    if (type == TAM_KEY_P256) {
        return manifest ? "manifest:p256" : "p256";
    }
    return manifest ? "manifest:ed25519" : "ed25519";
}

size_t tam_tstore_event_tenant(char *out, size_t outsz, const char *tenant)
{
    int n = snprintf(out, outsz, "tenant %s", tenant);
    if (n < 0 || outsz == 0) {
        return 0;
    }
    return (size_t)n < outsz ? (size_t)n : outsz - 1;
}

/* ---- configuration ---- */

#define LIMIT(field, lo, hi, d)                                      \
    {                                                                \
#field, offsetof(struct tam_tstore_limits, field), lo, hi, d \
    }

static const struct tam_tstore_limit_desc limit_descs[] = {
    LIMIT(max_devices, 1, 10000000, 100000),   LIMIT(rps_per_device, 1, 1000, 1),
    LIMIT(session_ttl_s, 1, 86400, 300),       LIMIT(update_ttl_s, 1, 2592000, 21600),
    LIMIT(max_pending_per_device, 1, 1024, 4), LIMIT(max_kidless_tries, 1, 256, 16),
    LIMIT(challenge_len, 8, 64, 32),
};

const struct tam_tstore_limit_desc *tam_tstore_limit_descs(size_t *n)
{
    *n = TAM_ARRAY_LEN(limit_descs);
    return limit_descs;
}

static uint32_t *limit_ptr(struct tam_tstore_limits *l, const struct tam_tstore_limit_desc *d)
{
    return (uint32_t *)(void *)((char *)l + d->offset);
}

static uint32_t limit_get(const struct tam_tstore_limits *l, const struct tam_tstore_limit_desc *d)
{
    return *(const uint32_t *)(const void *)((const char *)l + d->offset);
}

void tam_tstore_cfg_default(struct tam_tstore_cfg *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->numbering = TAM_TEEP_RFC;
    cfg->attestation = TAM_ATTEST_REQUIRED;
    cfg->enrollment = TAM_ENROLL_REGISTERED;
    for (size_t i = 0; i < TAM_ARRAY_LEN(limit_descs); i++) {
        *limit_ptr(&cfg->limits, &limit_descs[i]) = limit_descs[i].def;
    }
}

int tam_tstore_cfg_check(const struct tam_tstore_cfg *cfg, const char **why)
{
    const char *w = NULL;
    if ((unsigned)cfg->numbering > TAM_TEEP_DRAFT12) {
        w = "numbering: unknown";
    } else if ((unsigned)cfg->attestation > TAM_ATTEST_REQUIRED) {
        w = "attestation: unknown";
    } else if ((unsigned)cfg->enrollment > TAM_ENROLL_ATTESTED) {
        w = "enrollment: unknown";
    } else if (cfg->numbering == TAM_TEEP_RFC && cfg->legacy_alg_ids) {
        w = "legacy_alg_ids: only for the draft and draft12 profiles";
    } else if (cfg->numbering == TAM_TEEP_DRAFT12 && !cfg->legacy_alg_ids) {
        w = "legacy_alg_ids: draft12 agents only know ES256 and EdDSA";
    } else if (cfg->enrollment == TAM_ENROLL_ATTESTED && cfg->attestation == TAM_ATTEST_NONE) {
        w = "enrollment: attested needs attestation required";
    }
    for (size_t i = 0; w == NULL && i < TAM_ARRAY_LEN(limit_descs); i++) {
        uint32_t v = limit_get(&cfg->limits, &limit_descs[i]);
        if (v < limit_descs[i].min || v > limit_descs[i].max) {
            w = "limits: a value is out of range";
        }
    }
    if (why != NULL) {
        *why = w;
    }
    return w == NULL ? TAM_OK : TAM_EINVAL;
}

static const char *const attestation_names[] = {"none", "required"};
static const char *const enrollment_names[] = {"registered", "attested"};

const char *tam_tstore_attestation_name(enum tam_attestation_mode m)
{
    return (unsigned)m < 2 ? attestation_names[m] : "?";
}

int tam_tstore_attestation_parse(const char *s, enum tam_attestation_mode *out)
{
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(s, attestation_names[i]) == 0) {
            *out = (enum tam_attestation_mode)i;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

const char *tam_tstore_enrollment_name(enum tam_enrollment_mode m)
{
    return (unsigned)m < 2 ? enrollment_names[m] : "?";
}

int tam_tstore_enrollment_parse(const char *s, enum tam_enrollment_mode *out)
{
    for (unsigned i = 0; i < 2; i++) {
        if (strcmp(s, enrollment_names[i]) == 0) {
            *out = (enum tam_enrollment_mode)i;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

static void put(struct tam_tstore_field *f, const char *name, uint64_t v)
{
    f->name = name;
    (void)snprintf(f->value, sizeof(f->value), "%" PRIu64, v);
}

static void put_text(struct tam_tstore_field *f, const char *name, const char *text)
{
    f->name = name;
    (void)snprintf(f->value, sizeof(f->value), "%s", text);
}

size_t tam_tstore_cfg_encode(const struct tam_tstore_cfg *cfg,
                             struct tam_tstore_field out[TAM_TSTORE_CFG_FIELDS])
{
    size_t n = 0;
    put_text(&out[n++], "numbering", tam_teep_numbering_name(cfg->numbering));
    put_text(&out[n++], "attestation", tam_tstore_attestation_name(cfg->attestation));
    put_text(&out[n++], "enrollment", tam_tstore_enrollment_name(cfg->enrollment));
    put_text(&out[n++], "legacy_alg_ids", cfg->legacy_alg_ids ? "1" : "0");
    put_text(&out[n++], "sign1_only", cfg->sign1_only ? "1" : "0");
    for (size_t i = 0; i < TAM_ARRAY_LEN(limit_descs); i++) {
        put(&out[n++], limit_descs[i].name, limit_get(&cfg->limits, &limit_descs[i]));
    }
    put(&out[n++], "created", cfg->created_ms);
    put(&out[n++], "rev", cfg->rev);
    return n;
}

/* A decimal without sign, leading zeros or overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return TAM_EINVAL;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return TAM_EINVAL;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return TAM_EINVAL;
        }
        v = v * 10 + d;
    }
    *out = v;
    return TAM_OK;
}

static int set_enum(const char *name, const char *v, struct tam_tstore_cfg *cfg)
{
    int err = TAM_EINVAL;
    if (strcmp(name, "numbering") == 0) {
        err = tam_teep_numbering_parse(v, &cfg->numbering);
    } else if (strcmp(name, "attestation") == 0) {
        err = tam_tstore_attestation_parse(v, &cfg->attestation);
    } else if (strcmp(name, "enrollment") == 0) {
        err = tam_tstore_enrollment_parse(v, &cfg->enrollment);
    } else if (strcmp(name, "legacy_alg_ids") == 0 || strcmp(name, "sign1_only") == 0) {
        bool *b = name[0] == 'l' ? &cfg->legacy_alg_ids : &cfg->sign1_only;
        if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
            *b = v[0] == '1';
            err = TAM_OK;
        }
    } else {
        err = TAM_ENOTFOUND;
    }
    return err;
}

int tam_tstore_cfg_set(struct tam_tstore_cfg *cfg, const char *name, const char *value, size_t len)
{
    char v[TAM_TSTORE_VALUE_MAX];
    if (len >= sizeof(v) || memchr(value, '\0', len) != NULL) {
        return TAM_EINVAL;
    }
    memcpy(v, value, len);
    v[len] = '\0';
    int err = set_enum(name, v, cfg);
    if (err != TAM_ENOTFOUND) {
        return err;
    }
    uint64_t u;
    for (size_t i = 0; i < TAM_ARRAY_LEN(limit_descs); i++) {
        if (strcmp(name, limit_descs[i].name) == 0) {
            if (parse_u64(v, len, &u) != TAM_OK || u > UINT32_MAX) {
                return TAM_EINVAL;
            }
            *limit_ptr(&cfg->limits, &limit_descs[i]) = (uint32_t)u;
            return TAM_OK;
        }
    }
    uint64_t *dst = strcmp(name, "created") == 0 ? &cfg->created_ms
                    : strcmp(name, "rev") == 0   ? &cfg->rev
                                                 : NULL;
    if (dst == NULL) {
        return TAM_OK; /* a field of a newer writer */
    }
    return parse_u64(v, len, dst);
}

void tam_tstore_cfg_apply(const struct tam_tstore_cfg *cfg, struct tam_tenant *t)
{
    t->numbering = cfg->numbering;
    t->attestation = cfg->attestation;
    t->enrollment = cfg->enrollment;
    t->legacy_alg_ids = cfg->legacy_alg_ids;
    t->sign1_only = cfg->sign1_only;
    t->session_ttl_s = cfg->limits.session_ttl_s;
    t->update_ttl_s = cfg->limits.update_ttl_s;
    t->max_pending_per_device = cfg->limits.max_pending_per_device;
    t->max_kidless_tries = cfg->limits.max_kidless_tries;
    t->challenge_len = cfg->limits.challenge_len;
    t->rps_per_device = cfg->limits.rps_per_device;
    t->max_devices = cfg->limits.max_devices;
}

static bool kv_is(const struct tam_tstore_kv *kv, const char *name)
{
    return kv->name_len == strlen(name) && memcmp(kv->name, name, kv->name_len) == 0;
}

static int build_cfg(const struct tam_tstore_kv *cfg, size_t ncfg, struct tam_tstore_cfg *out)
{
    tam_tstore_cfg_default(out);
    char name[32];
    for (size_t i = 0; i < ncfg; i++) {
        if (cfg[i].name_len >= sizeof(name)) {
            continue; /* not one of ours */
        }
        memcpy(name, cfg[i].name, cfg[i].name_len);
        name[cfg[i].name_len] = '\0';
        int err = tam_tstore_cfg_set(out, name, (const char *)cfg[i].value, cfg[i].value_len);
        if (err != TAM_OK) {
            return err;
        }
    }
    return tam_tstore_cfg_check(out, NULL);
}

int tam_tstore_tenant_build(const char *id, const struct tam_tstore_kv *cfg, size_t ncfg,
                            const struct tam_tstore_kv *keys, size_t nkeys, const uint8_t *kek,
                            struct tam_tenant **out)
{
    *out = NULL;
    if (ncfg == 0) {
        return TAM_ENOTFOUND;
    }
    struct tam_tstore_cfg c;
    int err = build_cfg(cfg, ncfg, &c);
    struct tam_tenant *t = err == TAM_OK ? tam_tenant_create(id) : NULL;
    if (err == TAM_OK && t == NULL) {
        err = TAM_EINVAL; /* bad id, or out of memory */
    }
    if (err == TAM_OK) {
        tam_tstore_cfg_apply(&c, t);
    }
    static const enum tam_key_type types[2] = {TAM_KEY_P256, TAM_KEY_ED25519};
    for (size_t i = 0; i < nkeys && err == TAM_OK; i++) {
        for (int k = 0; k < 2 && err == TAM_OK; k++) {
            const char *slot = tam_tstore_key_slot(types[k], false);
            if (kv_is(&keys[i], slot) && t->tam_keys[k] == NULL) {
                err = tam_unseal_key(kek, NULL, id, slot, keys[i].value, keys[i].value_len,
                                     &t->tam_keys[k]);
            }
        }
    }
    if (err != TAM_OK) {
        tam_tenant_unref(t);
        return err;
    }
    *out = t;
    return TAM_OK;
}

/* ---- base64 ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t tam_tstore_b64url_encode(const uint8_t *src, size_t len, char *out)
{
    size_t o = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)src[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

int tam_tstore_b64_decode(const char *src, size_t len, struct tam_buf *out)
{
    if (len % 4 == 0 && len >= 2 && src[len - 1] == '=') {
        len -= src[len - 2] == '=' ? 2 : 1;
    }
    if (len % 4 == 1) {
        return TAM_EINVAL;
    }
    int err = tam_buf_reserve(out, len / 4 * 3 + 2);
    if (err != TAM_OK) {
        return err;
    }
    size_t start = out->len;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(src[i]);
        if (v < 0) {
            out->len = start;
            return TAM_EINVAL;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (uint8_t)(acc >> bits);
        }
    }
    /* The unused low bits of the last character must be zero (canonical encoding). */
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        out->len = start;
        return TAM_EINVAL;
    }
    return TAM_OK;
}

/* ---- tokens ---- */

int tam_tstore_token_new(char token[TAM_TSTORE_TOKEN_LEN + 1], uint8_t hash[TAM_SHA256_LEN])
{
    uint8_t raw[TAM_TSTORE_TOKEN_RAW];
    int err = tam_random(raw, sizeof(raw));
    if (err != TAM_OK) {
        return err;
    }
    (void)tam_tstore_b64url_encode(raw, sizeof(raw), token);
    tam_memzero(raw, sizeof(raw));
    tam_tstore_token_hash(token, TAM_TSTORE_TOKEN_LEN, hash);
    return TAM_OK;
}

bool tam_tstore_token_syntax_ok(const char *s, size_t len)
{
    if (len != TAM_TSTORE_TOKEN_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (strchr(b64url, s[i]) == NULL || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

void tam_tstore_token_hash(const char *token, size_t len, uint8_t hash[TAM_SHA256_LEN])
{
    tam_sha256(token, len, hash);
}

void tam_tstore_token_selector(const uint8_t hash[TAM_SHA256_LEN],
                               char out[TAM_TSTORE_SELECTOR_HEX + 1])
{
    tam_hex_encode(hash, TAM_TSTORE_SELECTOR_HEX / 2, out);
}

size_t tam_tstore_index_value(char out[TAM_TSTORE_INDEX_MAX], const char *tenant,
                              const uint8_t hash[TAM_SHA256_LEN])
{
    char hex[TAM_TSTORE_HASH_HEX + 1];
    tam_hex_encode(hash, TAM_SHA256_LEN, hex);
    int n = tenant != NULL ? snprintf(out, TAM_TSTORE_INDEX_MAX, "t:%s %s", tenant, hex)
                           : snprintf(out, TAM_TSTORE_INDEX_MAX, "op %s", hex);
    return n < 0 || n >= TAM_TSTORE_INDEX_MAX ? 0 : (size_t)n;
}

static int unhex32(const char *s, uint8_t out[TAM_SHA256_LEN])
{
    struct tam_buf b;
    tam_buf_init(&b, TAM_SHA256_LEN);
    int err = tam_hex_decode(s, TAM_TSTORE_HASH_HEX, &b);
    if (err == TAM_OK && b.len == TAM_SHA256_LEN) {
        memcpy(out, b.data, TAM_SHA256_LEN);
    } else {
        err = TAM_EINVAL;
    }
    tam_buf_finish(&b);
    return err;
}

int tam_tstore_index_check(const char *value, size_t len, const uint8_t hash[TAM_SHA256_LEN],
                           struct tam_tstore_owner *owner)
{
    memset(owner, 0, sizeof(*owner));
    if (len < TAM_TSTORE_HASH_HEX + 3 || value[len - TAM_TSTORE_HASH_HEX - 1] != ' ') {
        return TAM_EINVAL;
    }
    size_t head = len - TAM_TSTORE_HASH_HEX - 1;
    uint8_t stored[TAM_SHA256_LEN];
    if (unhex32(value + head + 1, stored) != TAM_OK) {
        return TAM_EINVAL;
    }
    if (head == 2 && memcmp(value, "op", 2) == 0) {
        owner->is_operator = true;
    } else if (head > 2 && memcmp(value, "t:", 2) == 0 &&
               tam_tenant_id_valid(value + 2, head - 2)) {
        memcpy(owner->tenant, value + 2, head - 2);
        owner->tenant[head - 2] = '\0';
    } else {
        return TAM_EINVAL;
    }
    return tam_ct_equal(stored, hash, TAM_SHA256_LEN) ? TAM_OK : TAM_EDENIED;
}
