/*
 * TEEP decoder: CBOR document -> struct tam_teep_msg. This file checks the
 * shapes (array lengths, CBOR types, list bounds before allocating); the value
 * rules (sizes, UTF-8, emptiness, err-code) are tam_teep_validate's, run last.
 */
#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"
#include "tam/teep.h"
#include "teep_internal.h"

struct dctx {
    enum tam_teep_numbering num;
    struct tam_arena *arena;
    struct tam_teep_msg *msg;
    const char **why;
};

static int bad(struct dctx *c, const char *reason)
{
    return tam_fail(c->why, reason, TAM_ETEEP);
}

/* Checks an array's type and bound, and allocates its n entries from the arena. */
static int open_list(struct dctx *c, const struct tam_cbor_item *v, enum teep_opt opt, size_t elem,
                     uint32_t *n, void **out)
{
    if (v->type != TAM_CBOR_ARRAY) {
        return bad(c, tam_teep__why(opt)->type);
    }
    if (v->count > TAM_TEEP_MAX_LIST) {
        return bad(c, tam_teep__why(opt)->too_many);
    }
    *n = v->count;
    *out = NULL;
    if (v->count > 0) {
        *out = tam_arena_array(c->arena, v->count, elem);
        if (*out == NULL) {
            return tam_fail(c->why, "arena: out of memory", TAM_ENOMEM);
        }
    }
    return TAM_OK;
}

static int get_span(struct dctx *c, const struct tam_cbor_item *v, enum tam_cbor_type type,
                    enum teep_opt opt, bool *has, struct tam_bytes *out)
{
    bool ok = type == TAM_CBOR_BSTR ? tam_cbor_get_bytes(v, out) : tam_cbor_get_text(v, out);
    if (!ok) {
        return bad(c, tam_teep__why(opt)->type);
    }
    *has = true;
    return TAM_OK;
}

static int decode_u32_list(struct dctx *c, const struct tam_cbor_item *v, enum teep_opt opt,
                           bool *has, uint32_t *n, uint32_t **out, const char *why_entry)
{
    void *p = NULL;
    int rc = open_list(c, v, opt, sizeof(uint32_t), n, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    *out = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; i < *n; i++, e = tam_cbor_next(e)) {
        uint64_t u;
        if (!tam_cbor_get_uint(e, &u) || u > UINT32_MAX) {
            return bad(c, why_entry);
        }
        (*out)[i] = (uint32_t)u;
    }
    *has = true;
    return TAM_OK;
}

static int decode_freshness(struct dctx *c, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    void *p = NULL;
    int rc = open_list(c, v, TEEP_OPT_FRESHNESS, sizeof(uint64_t), &m->n_freshness, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    m->freshness = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; i < m->n_freshness; i++, e = tam_cbor_next(e)) {
        if (!tam_cbor_get_uint(e, &m->freshness[i])) {
            return bad(c, "supported-freshness-mechanisms: entry is not an unsigned integer");
        }
    }
    m->has_freshness = true;
    return TAM_OK;
}

static int decode_bytes_list(struct dctx *c, const struct tam_cbor_item *v, enum teep_opt opt,
                             bool *has, uint32_t *n, struct tam_bytes **out, const char *why_entry)
{
    void *p = NULL;
    int rc = open_list(c, v, opt, sizeof(struct tam_bytes), n, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    *out = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; i < *n; i++, e = tam_cbor_next(e)) {
        if (!tam_cbor_get_bytes(e, &(*out)[i])) {
            return bad(c, why_entry);
        }
    }
    *has = true;
    return TAM_OK;
}

static int decode_op(struct dctx *c, const struct tam_cbor_item *op, struct tam_teep_op *out)
{
    static const char why_op[] = "cipher suite: operation is not [cose-type, alg]";
    if (op->type != TAM_CBOR_ARRAY || op->count != 2) {
        return bad(c, why_op);
    }
    const struct tam_cbor_item *t = tam_cbor_first(op);
    uint64_t cose_type;
    if (!tam_cbor_get_uint(t, &cose_type) || cose_type > INT64_MAX ||
        !tam_cbor_get_int(tam_cbor_next(t), &out->alg)) {
        return bad(c, why_op);
    }
    out->cose_type = (int64_t)cose_type;
    return TAM_OK;
}

static int decode_suite(struct dctx *c, const struct tam_cbor_item *s, struct tam_teep_suite *out)
{
    if (s->type != TAM_CBOR_ARRAY) {
        return bad(c, "cipher suite: not an array");
    }
    if (s->count == 0) {
        return bad(c, "cipher suite: no operations");
    }
    if (s->count > TAM_TEEP_MAX_SUITE_OPS) {
        return bad(c, "cipher suite: too many operations");
    }
    out->n_ops = s->count;
    const struct tam_cbor_item *op = tam_cbor_first(s);
    for (uint32_t i = 0; i < s->count; i++, op = tam_cbor_next(op)) {
        int rc = decode_op(c, op, &out->ops[i]);
        if (rc != TAM_OK) {
            return rc;
        }
    }
    return TAM_OK;
}

static int decode_suites(struct dctx *c, const struct tam_cbor_item *v, struct tam_teep_suites *out)
{
    if (v->type != TAM_CBOR_ARRAY) {
        return bad(c, tam_teep__why(TEEP_OPT_SUPPORTED_SUITES)->type);
    }
    if (v->count > TAM_TEEP_MAX_SUITES) {
        return bad(c, tam_teep__why(TEEP_OPT_SUPPORTED_SUITES)->too_many);
    }
    out->n = v->count;
    const struct tam_cbor_item *s = tam_cbor_first(v);
    for (uint32_t i = 0; i < v->count; i++, s = tam_cbor_next(s)) {
        int rc = decode_suite(c, s, &out->v[i]);
        if (rc != TAM_OK) {
            return rc;
        }
    }
    c->msg->has_supported_suites = true;
    return TAM_OK;
}

static int decode_profile(struct dctx *c, const struct tam_cbor_item *p,
                          struct tam_teep_profile *out)
{
    static const char why_p[] =
        "supported-suit-cose-profiles: profile is not an array of 1..4 integers";
    if (p->type != TAM_CBOR_ARRAY || p->count == 0 || p->count > TAM_TEEP_MAX_PROFILE_LEN) {
        return bad(c, why_p);
    }
    out->n = p->count;
    const struct tam_cbor_item *e = tam_cbor_first(p);
    for (uint32_t i = 0; i < p->count; i++, e = tam_cbor_next(e)) {
        if (!tam_cbor_get_int(e, &out->v[i])) {
            return bad(c, why_p);
        }
    }
    return TAM_OK;
}

static int decode_profiles(struct dctx *c, const struct tam_cbor_item *v)
{
    struct tam_teep_profiles *out = &c->msg->supported_profiles;
    if (v->type != TAM_CBOR_ARRAY) {
        return bad(c, tam_teep__why(TEEP_OPT_SUPPORTED_PROFILES)->type);
    }
    if (v->count > TAM_TEEP_MAX_PROFILES) {
        return bad(c, tam_teep__why(TEEP_OPT_SUPPORTED_PROFILES)->too_many);
    }
    out->n = v->count;
    const struct tam_cbor_item *p = tam_cbor_first(v);
    for (uint32_t i = 0; i < v->count; i++, p = tam_cbor_next(p)) {
        int rc = decode_profile(c, p, &out->v[i]);
        if (rc != TAM_OK) {
            return rc;
        }
    }
    c->msg->has_supported_profiles = true;
    return TAM_OK;
}

static int decode_component_id(struct dctx *c, const struct tam_cbor_item *v,
                               struct tam_teep_component_id *out)
{
    if (v->type != TAM_CBOR_ARRAY) {
        return bad(c, "component-id: not an array");
    }
    if (v->count > TAM_TEEP_MAX_ID_SEGMENTS) {
        return bad(c, "component-id: too many segments");
    }
    out->n = v->count;
    out->raw = tam_bytes_of(v->raw, v->raw_len);
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; i < v->count; i++, e = tam_cbor_next(e)) {
        if (!tam_cbor_get_bytes(e, &out->seg[i])) {
            return bad(c, "component-id: segment is not a bstr");
        }
    }
    return TAM_OK;
}

static const struct tam_cbor_item *map_get_label(const struct dctx *c,
                                                 const struct tam_cbor_item *map, enum teep_opt opt)
{
    return tam_cbor_map_get_int(map, (int64_t)tam_teep__opt_label(opt, c->num));
}

/* Optional uint at a label of a nested map. */
static int get_opt_uint(struct dctx *c, const struct tam_cbor_item *map, enum teep_opt opt,
                        bool *has, uint64_t *out, const char *why_type)
{
    const struct tam_cbor_item *v = map_get_label(c, map, opt);
    if (v == NULL) {
        return TAM_OK;
    }
    if (!tam_cbor_get_uint(v, out)) {
        return bad(c, why_type);
    }
    *has = true;
    return TAM_OK;
}

static int decode_tc(struct dctx *c, const struct tam_cbor_item *e, struct tam_teep_tc *tc)
{
    if (e->type != TAM_CBOR_MAP) {
        return bad(c, "tc-list: entry is not a map");
    }
    tc->raw = tam_bytes_of(e->raw, e->raw_len);
    if (c->num == TAM_TEEP_DRAFT12) {
        /* draft-12 tc-info: {component-id, ? tc-manifest-sequence-number}. */
        const struct tam_cbor_item *id = map_get_label(c, e, TEEP_OPT_COMPONENT_ID);
        if (id == NULL) {
            return bad(c, "tc-list: entry lacks component-id");
        }
        int rc = get_opt_uint(c, e, TEEP_OPT_TC_MANIFEST_SEQ, &tc->has_seq, &tc->seq,
                              "tc-list: tc-manifest-sequence-number is not a uint");
        return rc != TAM_OK ? rc : decode_component_id(c, id, &tc->id);
    }
    /* SUIT system-property-claims: {0: system-component-id, + SUIT parameters}. */
    const struct tam_cbor_item *id = tam_cbor_map_get_int(e, 0);
    if (id == NULL) {
        return bad(c, "tc-list: entry lacks system-component-id (0)");
    }
    const struct tam_cbor_item *digest = tam_cbor_map_get_int(e, 3);
    if (digest != NULL) {
        if (!tam_cbor_get_bytes(digest, &tc->image_digest)) {
            return bad(c, "tc-list: image-digest (3) is not a bstr");
        }
        tc->has_image_digest = true;
    }
    return decode_component_id(c, id, &tc->id);
}

static int decode_req_tc(struct dctx *c, const struct tam_cbor_item *e, struct tam_teep_req_tc *r)
{
    if (e->type != TAM_CBOR_MAP) {
        return bad(c, "requested-tc-list: entry is not a map");
    }
    const struct tam_cbor_item *id = map_get_label(c, e, TEEP_OPT_COMPONENT_ID);
    if (id == NULL) {
        return bad(c, "requested-tc-list: entry lacks component-id");
    }
    int rc = get_opt_uint(c, e, TEEP_OPT_TC_MANIFEST_SEQ, &r->has_seq, &r->seq,
                          "requested-tc-list: tc-manifest-sequence-number is not a uint");
    if (rc != TAM_OK) {
        return rc;
    }
    const struct tam_cbor_item *hb = map_get_label(c, e, TEEP_OPT_HAVE_BINARY);
    if (hb != NULL) {
        if (!tam_cbor_get_bool(hb, &r->have_binary)) {
            return bad(c, "requested-tc-list: have-binary is not a bool");
        }
        r->has_have_binary = true;
    }
    return decode_component_id(c, id, &r->id);
}

static int decode_tc_list(struct dctx *c, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    void *p = NULL;
    int rc = open_list(c, v, TEEP_OPT_TC_LIST, sizeof(struct tam_teep_tc), &m->n_tc_list, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    m->tc_list = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; rc == TAM_OK && i < m->n_tc_list; i++, e = tam_cbor_next(e)) {
        rc = decode_tc(c, e, &m->tc_list[i]);
    }
    m->has_tc_list = rc == TAM_OK;
    return rc;
}

static int decode_req_tc_list(struct dctx *c, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    void *p = NULL;
    int rc = open_list(c, v, TEEP_OPT_REQUESTED_TC_LIST, sizeof(struct tam_teep_req_tc),
                       &m->n_requested_tc_list, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    m->requested_tc_list = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; rc == TAM_OK && i < m->n_requested_tc_list; i++, e = tam_cbor_next(e)) {
        rc = decode_req_tc(c, e, &m->requested_tc_list[i]);
    }
    m->has_requested_tc_list = rc == TAM_OK;
    return rc;
}

static int decode_unneeded(struct dctx *c, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    void *p = NULL;
    int rc = open_list(c, v, TEEP_OPT_UNNEEDED, sizeof(struct tam_teep_component_id),
                       &m->n_unneeded, &p);
    if (rc != TAM_OK) {
        return rc;
    }
    m->unneeded = p;
    const struct tam_cbor_item *e = tam_cbor_first(v);
    for (uint32_t i = 0; rc == TAM_OK && i < m->n_unneeded; i++, e = tam_cbor_next(e)) {
        rc = decode_component_id(c, e, &m->unneeded[i]);
    }
    m->has_unneeded = rc == TAM_OK;
    return rc;
}

static int decode_err_code(struct dctx *c, const struct tam_cbor_item *v)
{
    uint64_t wire;
    if (!tam_cbor_get_uint(v, &wire)) {
        return bad(c, "err-code: not an unsigned integer");
    }
    if (wire == 0) {
        return bad(c, "err-code: must not be 0");
    }
    if (!tam_teep_err_from_wire(c->num, wire, &c->msg->err_code)) {
        return bad(c, "err-code: too large");
    }
    c->msg->has_err_code = true;
    return TAM_OK;
}

static int decode_selected_version(struct dctx *c, const struct tam_cbor_item *v)
{
    uint64_t u;
    if (!tam_cbor_get_uint(v, &u) || u > UINT32_MAX) {
        return bad(c, "selected-version: wrong type, want uint32");
    }
    c->msg->selected_version = (uint32_t)u;
    c->msg->has_selected_version = true;
    return TAM_OK;
}

static int decode_span_option(struct dctx *c, enum teep_opt opt, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    switch (opt) {
    case TEEP_OPT_TOKEN:
        return get_span(c, v, TAM_CBOR_BSTR, opt, &m->has_token, &m->token);
    case TEEP_OPT_CHALLENGE:
        return get_span(c, v, TAM_CBOR_BSTR, opt, &m->has_challenge, &m->challenge);
    case TEEP_OPT_ATTESTATION_PAYLOAD:
        return get_span(c, v, TAM_CBOR_BSTR, opt, &m->has_attestation_payload,
                        &m->attestation_payload);
    case TEEP_OPT_ATTESTATION_PAYLOAD_FORMAT:
        return get_span(c, v, TAM_CBOR_TSTR, opt, &m->has_attestation_payload_format,
                        &m->attestation_payload_format);
    case TEEP_OPT_MSG:
        return get_span(c, v, TAM_CBOR_TSTR, opt, &m->has_msg, &m->msg);
    case TEEP_OPT_ERR_MSG:
        return get_span(c, v, TAM_CBOR_TSTR, opt, &m->has_err_msg, &m->err_msg);
    case TEEP_OPT_ERR_LANG:
        return get_span(c, v, TAM_CBOR_TSTR, opt, &m->has_err_lang, &m->err_lang);
    default:
        return TAM_OK;
    }
}

static int decode_option(struct dctx *c, enum teep_opt opt, const struct tam_cbor_item *v)
{
    struct tam_teep_msg *m = c->msg;
    switch (opt) {
    case TEEP_OPT_VERSIONS:
        return decode_u32_list(c, v, opt, &m->has_versions, &m->n_versions, &m->versions,
                               "versions: entry is not a uint32");
    case TEEP_OPT_EXT_LIST:
        return decode_u32_list(c, v, opt, &m->has_ext_list, &m->n_ext_list, &m->ext_list,
                               "ext-list: entry is not a uint32");
    case TEEP_OPT_FRESHNESS:
        return decode_freshness(c, v);
    case TEEP_OPT_SUIT_REPORTS:
        return decode_bytes_list(c, v, opt, &m->has_suit_reports, &m->n_suit_reports,
                                 &m->suit_reports, "suit-reports: entry is not a bstr");
    case TEEP_OPT_MANIFEST_LIST:
        return decode_bytes_list(c, v, opt, &m->has_manifest_list, &m->n_manifest_list,
                                 &m->manifest_list, "manifest-list: entry is not a bstr");
    case TEEP_OPT_SUPPORTED_SUITES:
        return decode_suites(c, v, &m->supported_suites);
    case TEEP_OPT_SELECTED_SUITE:
        m->has_selected_suite = true;
        return decode_suite(c, v, &m->selected_suite);
    case TEEP_OPT_SUPPORTED_PROFILES:
        return decode_profiles(c, v);
    case TEEP_OPT_SELECTED_VERSION:
        return decode_selected_version(c, v);
    case TEEP_OPT_TC_LIST:
        return decode_tc_list(c, v);
    case TEEP_OPT_REQUESTED_TC_LIST:
        return decode_req_tc_list(c, v);
    case TEEP_OPT_UNNEEDED:
        return decode_unneeded(c, v);
    case TEEP_OPT_ERR_CODE:
        return decode_err_code(c, v);
    default:
        return decode_span_option(c, opt, v);
    }
}

static int decode_options(struct dctx *c, const struct tam_cbor_item *map)
{
    if (map->type != TAM_CBOR_MAP) {
        return bad(c, "message: options is not a map");
    }
    uint32_t allowed = tam_teep__allowed(c->num, c->msg->type);
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        uint64_t label;
        if (!tam_cbor_get_uint(k, &label)) {
            return bad(c, "options: key is not an unsigned integer");
        }
        /* Unknown labels, and options of other message types, are ignored (TP 6). */
        enum teep_opt opt;
        if (tam_teep__opt_from_label(label, c->num, &opt) && (allowed & TEEP_BIT(opt)) != 0) {
            int rc = decode_option(c, opt, v);
            if (rc != TAM_OK) {
                return rc;
            }
        }
        k = tam_cbor_next(v);
    }
    return TAM_OK;
}

static int check_shape(struct dctx *c, uint32_t count)
{
    switch (c->msg->type) {
    case TAM_TEEP_QUERY_REQUEST:
        if (c->num == TAM_TEEP_DRAFT12) {
            return count == 4 || count == 5 ? TAM_OK
                                            : bad(c, "query-request: want 4 or 5 elements");
        }
        return count == 5 ? TAM_OK : bad(c, "query-request: want 5 elements");
    case TAM_TEEP_ERROR:
        return count == 3 ? TAM_OK : bad(c, "error: want 3 elements");
    case TAM_TEEP_QUERY_RESPONSE:
        return count == 2 ? TAM_OK : bad(c, "query-response: want 2 elements");
    case TAM_TEEP_UPDATE:
        return count == 2 ? TAM_OK : bad(c, "update: want 2 elements");
    case TAM_TEEP_SUCCESS:
        return count == 2 ? TAM_OK : bad(c, "success: want 2 elements");
    }
    return bad(c, "message: unknown type");
}

/* QueryRequest elements 3..: suites, [profiles,] data-item-requested. */
static int decode_qr_positional(struct dctx *c, const struct tam_cbor_item *el, uint32_t count)
{
    int rc = decode_suites(c, el, &c->msg->supported_suites);
    if (rc != TAM_OK) {
        return rc;
    }
    el = tam_cbor_next(el);
    if (count == 5) {
        rc = decode_profiles(c, el);
        if (rc != TAM_OK) {
            return rc;
        }
        el = tam_cbor_next(el);
    }
    if (!tam_cbor_get_uint(el, &c->msg->data_item_requested)) {
        return bad(c, "data-item-requested: not an unsigned integer");
    }
    c->msg->has_data_item_requested = true;
    return TAM_OK;
}

static int decode_type(struct dctx *c, const struct tam_cbor_item *el)
{
    uint64_t wire;
    if (!tam_cbor_get_uint(el, &wire)) {
        return bad(c, "message: type is not an unsigned integer");
    }
    if (!tam_teep_type_from_wire(c->num, wire, &c->msg->type)) {
        const char *reason = wire == 4 && c->num != TAM_TEEP_RFC
                                 ? "message: type 4 is reserved in the draft numbering"
                                 : "message: type unknown in this numbering";
        return tam_fail(c->why, reason, TAM_ETEEP_TYPE);
    }
    return TAM_OK;
}

static int decode_root(struct dctx *c, const struct tam_cbor_item *root)
{
    if (root->type != TAM_CBOR_ARRAY) {
        return bad(c, "message: not an array");
    }
    if (root->count == 0) {
        return bad(c, "message: empty array");
    }
    const struct tam_cbor_item *el = tam_cbor_first(root);
    int rc = decode_type(c, el);
    if (rc == TAM_OK) {
        rc = check_shape(c, root->count);
    }
    if (rc != TAM_OK) {
        return rc;
    }
    el = tam_cbor_next(el);
    rc = decode_options(c, el);
    if (rc != TAM_OK) {
        return rc;
    }
    el = tam_cbor_next(el);
    if (c->msg->type == TAM_TEEP_QUERY_REQUEST) {
        return decode_qr_positional(c, el, root->count);
    }
    if (c->msg->type == TAM_TEEP_ERROR) {
        return decode_err_code(c, el);
    }
    return TAM_OK;
}

int tam_teep_decode(const uint8_t *buf, size_t len, enum tam_teep_numbering num,
                    struct tam_arena *arena, struct tam_teep_msg *msg, const char **why)
{
    memset(msg, 0, sizeof(*msg));
    if (num != TAM_TEEP_RFC && num != TAM_TEEP_DRAFT && num != TAM_TEEP_DRAFT12) {
        return tam_fail(why, "numbering: unknown", TAM_EINVAL);
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int rc = tam_cbor_decode(buf, len, &tam_cbor_default_limits, &doc, why);
    if (rc == TAM_OK) {
        struct dctx c = {num, arena, msg, why};
        rc = decode_root(&c, tam_cbor_root(&doc));
    }
    tam_cbor_doc_finish(&doc);
    if (rc == TAM_OK && tam_teep_validate(msg, num, why) != TAM_OK) {
        rc = TAM_ETEEP; /* the value rules, shared with the encoder */
    }
    return rc;
}
