/*
 * EAT claims-set decoding (RFC 9711 section 4, TEEP profile section 5). The map is decoded with
 * the bounded CBOR reader; each known integer label has one handler that checks type and size
 * and fills the struct with spans into the caller's buffer. A table maps labels to handlers so
 * that adding a claim is one row.
 */
#include <string.h>

#include "tam/cbor.h"
#include "tam/eat.h"
#include "tam/err.h"

#define CNF_COSE_KEY 1
#define CNF_KID      3

#define COSE_KEY_KTY 1
#define COSE_KEY_CRV (-1)
#define COSE_KEY_X   (-2)
#define COSE_KEY_Y   (-3)
#define COSE_KEY_D   (-4)
#define KTY_OKP      1
#define KTY_EC2      2
#define CRV_P256     1
#define CRV_ED25519  6
#define COORD_LEN    32

#define CONTENT_FORMAT_MAX 65535

/* A claims set is small; submods nest, but not deeply. */
static const struct tam_cbor_limits eat_limits = {
    .max_size = TAM_EAT_MAX_SIZE,
    .max_depth = 16,
    .max_items = 4096,
};

typedef int claim_fn(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why);

struct claim_rule {
    int64_t label;
    uint32_t bit;
    claim_fn *fn;
};

static int fail(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return TAM_EEAT;
}

static int claim_iss(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_text(v, &c->iss) ? TAM_OK : fail(why, "iss must be a text string");
}

/* TEEP profile: numeric dates are CBOR integers; a float date is refused rather than rounded. */
static int claim_exp(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_int(v, &c->exp) ? TAM_OK : fail(why, "exp must be an integer");
}

static int claim_nbf(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_int(v, &c->nbf) ? TAM_OK : fail(why, "nbf must be an integer");
}

static int claim_iat(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_int(v, &c->iat) ? TAM_OK : fail(why, "iat must be an integer");
}

static int claim_cti(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_bytes(v, &c->cti) ? TAM_OK : fail(why, "cti must be a bstr");
}

/* The raw public key of a COSE_Key: EC2 P-256 (x||y) or OKP Ed25519 (x). Public members only. */
static int cose_key_public(const struct tam_cbor_item *m, enum tam_key_type *type,
                           uint8_t pub[2 * COORD_LEN], size_t *pub_len, const char **why)
{
    if (m->type != TAM_CBOR_MAP) {
        return fail(why, "cnf COSE_Key must be a map");
    }
    if (tam_cbor_map_get_int(m, COSE_KEY_D) != NULL) {
        return fail(why, "cnf COSE_Key must not carry a private key");
    }
    int64_t kty = 0;
    int64_t crv = 0;
    struct tam_bytes x = {0};
    struct tam_bytes y = {0};
    bool ok = tam_cbor_get_int(tam_cbor_map_get_int(m, COSE_KEY_KTY), &kty) &&
              tam_cbor_get_int(tam_cbor_map_get_int(m, COSE_KEY_CRV), &crv) &&
              tam_cbor_get_bytes(tam_cbor_map_get_int(m, COSE_KEY_X), &x) && x.len == COORD_LEN;
    if (ok && kty == KTY_EC2 && crv == CRV_P256) {
        if (!tam_cbor_get_bytes(tam_cbor_map_get_int(m, COSE_KEY_Y), &y) || y.len != COORD_LEN) {
            return fail(why, "cnf COSE_Key EC2 needs a 32-byte y coordinate");
        }
        memcpy(pub, x.ptr, COORD_LEN);
        memcpy(pub + COORD_LEN, y.ptr, COORD_LEN);
        *type = TAM_KEY_P256;
        *pub_len = 2 * COORD_LEN;
        return TAM_OK;
    }
    if (ok && kty == KTY_OKP && crv == CRV_ED25519) {
        memcpy(pub, x.ptr, COORD_LEN);
        *type = TAM_KEY_ED25519;
        *pub_len = COORD_LEN;
        return TAM_OK;
    }
    return fail(why, "cnf COSE_Key must be EC2 P-256 or OKP Ed25519 with 32-byte coordinates");
}

/*
 * {1: COSE_Key}: the key id the TEEP profile compares is the RFC 9679 thumbprint. Importing
 * the key also proves the point is on the curve before anyone relies on it.
 */
static int cnf_cose_key(const struct tam_cbor_item *m, struct tam_eat_claims *c, const char **why)
{
    enum tam_key_type type = TAM_KEY_P256;
    uint8_t pub[2 * COORD_LEN];
    size_t pub_len = 0;
    int err = cose_key_public(m, &type, pub, &pub_len, why);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_key *key = NULL;
    err = tam_key_from_raw_public(type, pub, pub_len, &key);
    if (err == TAM_ENOMEM) {
        return err;
    }
    if (err != TAM_OK) {
        return fail(why, "cnf COSE_Key is not a valid public key");
    }
    memcpy(c->cnf_kid, tam_key_kid(key), TAM_KID_LEN);
    c->cnf_kid_len = TAM_KID_LEN;
    c->cnf_key = tam_bytes_of(m->raw, m->raw_len);
    c->cnf_form = TAM_EAT_CNF_COSE_KEY;
    tam_key_destroy(key);
    return TAM_OK;
}

/* RFC 8747: a cnf names exactly one proof-of-possession key. */
static int claim_cnf(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (v->type != TAM_CBOR_MAP || v->count != 1) {
        return fail(why, "cnf must be a map with exactly one member");
    }
    const struct tam_cbor_item *k = tam_cbor_first(v);
    const struct tam_cbor_item *val = tam_cbor_next(k);
    int64_t label = 0;
    if (!tam_cbor_get_int(k, &label) || (label != CNF_KID && label != CNF_COSE_KEY)) {
        return fail(why, "cnf form not supported (only 1: COSE_Key or 3: kid)");
    }
    if (label == CNF_COSE_KEY) {
        return cnf_cose_key(val, c, why);
    }
    struct tam_bytes kid;
    if (!tam_cbor_get_bytes(val, &kid) || kid.len == 0 || kid.len > TAM_EAT_KID_MAX) {
        return fail(why, "cnf kid must be a bstr of 1..64 bytes");
    }
    memcpy(c->cnf_kid, kid.ptr, kid.len);
    c->cnf_kid_len = kid.len;
    c->cnf_form = TAM_EAT_CNF_KID;
    return TAM_OK;
}

/* TEEP profile: eat_nonce is one bstr; RFC 9711's array of nonces is refused. */
static int claim_nonce(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (v->type == TAM_CBOR_ARRAY) {
        return fail(why, "eat_nonce must be a single bstr (TEEP profile), not an array");
    }
    if (!tam_cbor_get_bytes(v, &c->nonce)) {
        return fail(why, "eat_nonce must be a bstr");
    }
    if (c->nonce.len < TAM_EAT_NONCE_MIN || c->nonce.len > TAM_EAT_NONCE_MAX) {
        return fail(why, "eat_nonce must be 8..64 bytes");
    }
    return TAM_OK;
}

static int claim_ueid(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (!tam_cbor_get_bytes(v, &c->ueid)) {
        return fail(why, "ueid must be a bstr");
    }
    if (c->ueid.len < TAM_EAT_UEID_MIN || c->ueid.len > TAM_EAT_UEID_MAX) {
        return fail(why, "ueid must be 7..33 bytes");
    }
    if (c->ueid.ptr[0] < 0x01 || c->ueid.ptr[0] > 0x03) {
        return fail(why, "ueid type byte must be 0x01 (RAND), 0x02 (EUI) or 0x03 (IMEI)");
    }
    return TAM_OK;
}

static int claim_oemid(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (tam_cbor_get_int(v, &c->oemid.pen)) {
        c->oemid.is_pen = true;
        return TAM_OK;
    }
    if (tam_cbor_get_bytes(v, &c->oemid.id) && (c->oemid.id.len == 3 || c->oemid.id.len == 16)) {
        return TAM_OK;
    }
    return fail(why, "oemid must be an integer PEN or a bstr of 3 or 16 bytes");
}

static int claim_hwmodel(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (!tam_cbor_get_bytes(v, &c->hwmodel) || c->hwmodel.len == 0 ||
        c->hwmodel.len > TAM_EAT_HWMODEL_MAX) {
        return fail(why, "hwmodel must be a bstr of 1..32 bytes");
    }
    return TAM_OK;
}

static int claim_hwversion(const struct tam_cbor_item *v, struct tam_eat_claims *c,
                           const char **why)
{
    if (v->type != TAM_CBOR_ARRAY || v->count < 1 || v->count > 2) {
        return fail(why, "hwversion must be an array [tstr, ?int]");
    }
    const struct tam_cbor_item *text = tam_cbor_first(v);
    if (!tam_cbor_get_text(text, &c->hwversion)) {
        return fail(why, "hwversion version must be a text string");
    }
    if (v->count == 2) {
        if (!tam_cbor_get_int(tam_cbor_next(text), &c->hwversion_scheme)) {
            return fail(why, "hwversion version-scheme must be an integer");
        }
        c->hwversion_has_scheme = true;
    }
    return TAM_OK;
}

static int claim_dbgstat(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    uint64_t d = 0;
    if (!tam_cbor_get_uint(v, &d) || d > TAM_EAT_DBG_DISABLED_FULLY_PERMANENTLY) {
        return fail(why, "dbgstat must be an unsigned integer 0..4");
    }
    c->dbgstat = (uint8_t)d;
    return TAM_OK;
}

/* general-uri (tstr) or general-oid (unwrapped OID bytes); the profile forbids tags. */
static int claim_profile(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    if (tam_cbor_get_text(v, &c->profile)) {
        c->profile_is_oid = false;
    } else if (tam_cbor_get_bytes(v, &c->profile)) {
        c->profile_is_oid = true;
    } else {
        return fail(why, "eat_profile must be a URI text string or an OID bstr");
    }
    return c->profile.len > 0 ? TAM_OK : fail(why, "eat_profile must not be empty");
}

static int claim_swname(const struct tam_cbor_item *v, struct tam_eat_claims *c, const char **why)
{
    return tam_cbor_get_text(v, &c->swname) ? TAM_OK : fail(why, "swname must be a text string");
}

struct entry_reasons {
    const char *not_array;
    const char *too_many;
    const char *bad_entry;
};

/* [+ [content-format, body]]: body is a bstr, or any CBOR item (kept raw). */
static int decode_entries(const struct tam_cbor_item *v, struct tam_eat_entry *ents, size_t *n,
                          const struct entry_reasons *r, const char **why)
{
    if (v->type != TAM_CBOR_ARRAY || v->count == 0) {
        return fail(why, r->not_array);
    }
    if (v->count > TAM_EAT_MAX_ENTRIES) {
        return fail(why, r->too_many);
    }
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; i < v->count; i++, e = tam_cbor_next(e)) {
        uint64_t cf = 0;
        if (e->type != TAM_CBOR_ARRAY || e->count != 2 ||
            !tam_cbor_get_uint(tam_cbor_first(e), &cf) || cf > CONTENT_FORMAT_MAX) {
            return fail(why, r->bad_entry);
        }
        const struct tam_cbor_item *body = tam_cbor_next(tam_cbor_first(e));
        ents[i].content_format = cf;
        ents[i].body_is_cbor = !tam_cbor_get_bytes(body, &ents[i].body);
        if (ents[i].body_is_cbor) {
            ents[i].body = tam_bytes_of(body->raw, body->raw_len);
        }
    }
    *n = v->count;
    return TAM_OK;
}

static int claim_manifests(const struct tam_cbor_item *v, struct tam_eat_claims *c,
                           const char **why)
{
    static const struct entry_reasons r = {
        "manifests must be a non-empty array",
        "manifests has more than 16 entries",
        "manifests entry must be [content-format (uint16), body]",
    };
    return decode_entries(v, c->manifests, &c->n_manifests, &r, why);
}

static int claim_measurements(const struct tam_cbor_item *v, struct tam_eat_claims *c,
                              const char **why)
{
    static const struct entry_reasons r = {
        "measurements must be a non-empty array",
        "measurements has more than 16 entries",
        "measurements entry must be [content-format (uint16), body]",
    };
    return decode_entries(v, c->measurements, &c->n_measurements, &r, why);
}

static const struct claim_rule rules[] = {
    {TAM_EAT_L_ISS, TAM_EAT_HAS_ISS, claim_iss},
    {TAM_EAT_L_EXP, TAM_EAT_HAS_EXP, claim_exp},
    {TAM_EAT_L_NBF, TAM_EAT_HAS_NBF, claim_nbf},
    {TAM_EAT_L_IAT, TAM_EAT_HAS_IAT, claim_iat},
    {TAM_EAT_L_CTI, TAM_EAT_HAS_CTI, claim_cti},
    {TAM_EAT_L_CNF, TAM_EAT_HAS_CNF, claim_cnf},
    {TAM_EAT_L_NONCE, TAM_EAT_HAS_NONCE, claim_nonce},
    {TAM_EAT_L_UEID, TAM_EAT_HAS_UEID, claim_ueid},
    {TAM_EAT_L_OEMID, TAM_EAT_HAS_OEMID, claim_oemid},
    {TAM_EAT_L_HWMODEL, TAM_EAT_HAS_HWMODEL, claim_hwmodel},
    {TAM_EAT_L_HWVERSION, TAM_EAT_HAS_HWVERSION, claim_hwversion},
    {TAM_EAT_L_DBGSTAT, TAM_EAT_HAS_DBGSTAT, claim_dbgstat},
    {TAM_EAT_L_PROFILE, TAM_EAT_HAS_PROFILE, claim_profile},
    {TAM_EAT_L_SWNAME, TAM_EAT_HAS_SWNAME, claim_swname},
    {TAM_EAT_L_MANIFESTS, TAM_EAT_HAS_MANIFESTS, claim_manifests},
    {TAM_EAT_L_MEASUREMENTS, TAM_EAT_HAS_MEASUREMENTS, claim_measurements},
};

static const struct claim_rule *find_rule(const struct tam_cbor_item *k)
{
    int64_t label = 0;
    if (!tam_cbor_get_int(k, &label)) {
        return NULL;
    }
    for (size_t i = 0; i < TAM_ARRAY_LEN(rules); i++) {
        if (rules[i].label == label) {
            return &rules[i];
        }
    }
    return NULL;
}

static int decode_map(const struct tam_cbor_item *map, struct tam_eat_claims *c, const char **why)
{
    if (map->type != TAM_CBOR_MAP) {
        return fail(why, "claims set must be a map");
    }
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        if (k->type != TAM_CBOR_UINT && k->type != TAM_CBOR_NINT && k->type != TAM_CBOR_TSTR) {
            return fail(why, "claim label must be an integer or a text string");
        }
        const struct claim_rule *rule = find_rule(k);
        if (rule != NULL) {
            int err = rule->fn(v, c, why);
            if (err != TAM_OK) {
                return err;
            }
            c->present |= rule->bit;
        }
        k = tam_cbor_next(v);
    }
    return TAM_OK;
}

int tam_eat_decode(const uint8_t *claims, size_t len, struct tam_eat_claims *out, const char **why)
{
    if (out == NULL || (claims == NULL && len > 0)) {
        return TAM_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(claims, len, &eat_limits, &doc, why);
    if (err == TAM_OK) {
        err = decode_map(tam_cbor_root(&doc), out, why);
    }
    tam_cbor_doc_finish(&doc);
    if (err != TAM_OK) {
        memset(out, 0, sizeof(*out));
        return err;
    }
    out->raw = tam_bytes_of(claims, len);
    return TAM_OK;
}
