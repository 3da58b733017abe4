/*
 * Small SUIT pieces shared by the envelope parser, the builder and the report
 * codec: digests, component identifiers, parameter maps, reason names.
 */
#include "suit_internal.h"
#include "tam/err.h"

/* Depth 16 covers every SUIT structure (the deepest is a COSE_Encrypt inside a
 * parameter map); a payload is one item, so the item count stays small. */
const struct tam_cbor_limits tam_suit__limits = {
    .max_size = TAM_SUIT_MAX_ENVELOPE,
    .max_depth = 16,
    .max_items = 16384,
};

int tam_suit__fail(const char **why, const char *reason, int err)
{
    if (why != NULL) {
        *why = reason;
    }
    return err;
}

int tam_suit__decode(struct tam_cbor_doc *doc, struct tam_bytes span, const char **why)
{
    return tam_cbor_decode(span.ptr, span.len, &tam_suit__limits, doc, why);
}

int tam_suit__digest(const struct tam_cbor_item *it, struct tam_suit_digest *out, const char **why)
{
    if (it->type != TAM_CBOR_ARRAY || it->count < 2) {
        return tam_suit__fail(why, "SUIT_Digest must be an array [alg, bytes]", TAM_ESUIT);
    }
    const struct tam_cbor_item *alg = tam_cbor_first(it);
    if (!tam_cbor_get_int(alg, &out->alg)) {
        return tam_suit__fail(why, "SUIT_Digest algorithm must be an integer", TAM_ESUIT);
    }
    if (!tam_cbor_get_bytes(tam_cbor_next(alg), &out->bytes)) {
        return tam_suit__fail(why, "SUIT_Digest bytes must be a bstr", TAM_ESUIT);
    }
    return TAM_OK;
}

int tam_suit__digest_bstr(const struct tam_cbor_item *it, struct tam_suit_digest *out,
                          const char **why)
{
    struct tam_bytes content;
    if (!tam_cbor_get_bytes(it, &content)) {
        return tam_suit__fail(why, "expected a bstr-wrapped SUIT_Digest", TAM_ESUIT);
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, content, why);
    if (err == TAM_OK) {
        err = tam_suit__digest(tam_cbor_root(&doc), out, why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

int tam_suit__component_id(const struct tam_cbor_item *it, struct tam_suit_component_id *out,
                           const char **why)
{
    if (it->type != TAM_CBOR_ARRAY) {
        return tam_suit__fail(why, "component identifier must be an array of bstr", TAM_ESUIT);
    }
    if (it->count > TAM_SUIT_MAX_SEGMENTS) {
        return tam_suit__fail(why, "component identifier has too many segments", TAM_ETOOBIG);
    }
    out->n = it->count;
    out->raw = tam_bytes_of(it->raw, it->raw_len);
    const struct tam_cbor_item *seg = tam_cbor_first(it);
    for (uint32_t i = 0; i < it->count; i++, seg = tam_cbor_next(seg)) {
        if (!tam_cbor_get_bytes(seg, &out->seg[i])) {
            return tam_suit__fail(why, "component identifier segment must be a bstr", TAM_ESUIT);
        }
    }
    return TAM_OK;
}

static bool set_vendor(const struct tam_cbor_item *v, struct tam_suit_params *p)
{
    const struct tam_cbor_item *inner = tam_cbor_untag(v);
    bool pen = v->type == TAM_CBOR_TAG && v->val == SUIT_TAG_PEN && inner == v + 1;
    if ((v->type == TAM_CBOR_TAG && !pen) || !tam_cbor_get_bytes(inner, &p->vendor_id)) {
        return false;
    }
    p->vendor_id_pen = pen;
    return true;
}

/* Stores one known parameter (when override or still unset); false on a wrong type. */
static bool apply_one(int64_t key, const struct tam_cbor_item *v, struct tam_suit_params *p,
                      bool override)
{
    bool ok = true;
    struct tam_suit_digest digest;
    switch (key) {
    case SUIT_PARAM_VENDOR_ID:
        if (override || !p->has_vendor_id) {
            ok = set_vendor(v, p);
            p->has_vendor_id = p->has_vendor_id || ok;
        }
        break;
    case SUIT_PARAM_CLASS_ID:
        if (override || !p->has_class_id) {
            ok = tam_cbor_get_bytes(v, &p->class_id);
            p->has_class_id = p->has_class_id || ok;
        }
        break;
    case SUIT_PARAM_IMAGE_DIGEST:
        if (override || !p->has_image_digest) {
            ok = tam_suit__digest_bstr(v, &digest, NULL) == TAM_OK;
            if (ok) {
                p->image_digest = digest; /* never half-written */
                p->has_image_digest = true;
            }
        }
        break;
    case SUIT_PARAM_IMAGE_SIZE:
        if (override || !p->has_image_size) {
            ok = tam_cbor_get_uint(v, &p->image_size);
            p->has_image_size = p->has_image_size || ok;
        }
        break;
    case SUIT_PARAM_URI:
        if (override || !p->has_uri) {
            ok = tam_cbor_get_text(v, &p->uri);
            p->has_uri = p->has_uri || ok;
        }
        break;
    default:
        break; /* not indexed */
    }
    return ok;
}

int tam_suit__apply_params(const struct tam_cbor_item *map, struct tam_suit_params *p,
                           bool override, bool strict, const char **why)
{
    if (map->type != TAM_CBOR_MAP) {
        return strict ? tam_suit__fail(why, "parameters must be a map", TAM_ESUIT) : TAM_OK;
    }
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        int64_t key;
        if (!tam_cbor_get_int(k, &key)) {
            if (strict) {
                return tam_suit__fail(why, "parameter keys must be integers", TAM_ESUIT);
            }
        } else if (!apply_one(key, v, p, override) && strict) {
            return tam_suit__fail(why,
                                  "a parameter (vendor/class id, image digest/size, uri) "
                                  "has the wrong type",
                                  TAM_ESUIT);
        }
        k = tam_cbor_next(v);
    }
    return TAM_OK;
}

static const char *const reason_names[] = {
    "ok",
    "cbor-parse",
    "cose-unsupported",
    "alg-unsupported",
    "unauthorised",
    "command-unsupported",
    "component-unsupported",
    "component-unauthorised",
    "parameter-unsupported",
    "severing-unsupported",
    "condition-failed",
    "operation-failed",
    "invoke-pending",
};

const char *tam_suit_reason_name(uint64_t reason)
{
    return reason < TAM_ARRAY_LEN(reason_names) ? reason_names[reason] : "unknown";
}
