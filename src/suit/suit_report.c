/*
 * SUIT_Report codec (draft-ietf-suit-report-18): bare, or as the payload of a
 * COSE_Sign1. Decoding is zero-copy; the records array comes from the caller's
 * arena. Encoding is deterministic (map keys 2, 3, 4, 8, 99 in that order).
 */
#include <string.h>

#include "suit_internal.h"
#include "tam/err.h"

enum report_key {
    REPORT_NONCE = 2,
    REPORT_RECORDS = 3,
    REPORT_RESULT = 4,
    REPORT_RESULT_CODE = 5,
    REPORT_RESULT_RECORD = 6,
    REPORT_RESULT_REASON = 7,
    REPORT_CAPABILITY = 8,
    REPORT_REFERENCE = 99,
};

#define SYSTEM_COMPONENT_ID 0
#define COSE_TAG_MAC0       17
#define COSE_TAG_ENCRYPT0   16

static int bad(const char **why, const char *reason)
{
    return tam_suit__fail(why, reason, TAM_ESUIT);
}

/* ---- decode ---- */

static int parse_manifest_id(struct tam_suit_record *rec, const struct tam_cbor_item *arr,
                             const char **why)
{
    if (arr->type != TAM_CBOR_ARRAY) {
        return bad(why, "SUIT_Record manifest-id must be [* uint]");
    }
    if (arr->count > TAM_SUIT_MAX_MANIFEST_ID) {
        return tam_suit__fail(why, "SUIT_Record manifest-id is too long", TAM_ETOOBIG);
    }
    const struct tam_cbor_item *e = tam_cbor_first(arr);
    for (uint32_t i = 0; i < arr->count; i++, e = tam_cbor_next(e)) {
        if (!tam_cbor_get_uint(e, &rec->manifest_id[i])) {
            return bad(why, "SUIT_Record manifest-id must be [* uint]");
        }
    }
    rec->manifest_id_len = arr->count;
    return TAM_OK;
}

static int parse_suit_record(struct tam_suit_record *rec, const struct tam_cbor_item *arr,
                             const char **why)
{
    if (arr->count < 5) {
        return bad(why, "SUIT_Record must be [manifest-id, section, offset, component, props]");
    }
    const struct tam_cbor_item *it = tam_cbor_first(arr);
    int err = parse_manifest_id(rec, it, why);
    if (err != TAM_OK) {
        return err;
    }
    it = tam_cbor_next(it);
    if (!tam_cbor_get_int(it, &rec->section)) {
        return bad(why, "SUIT_Record manifest-section must be an integer");
    }
    it = tam_cbor_next(it);
    if (!tam_cbor_get_uint(it, &rec->offset)) {
        return bad(why, "SUIT_Record section-offset must be a uint");
    }
    it = tam_cbor_next(it);
    if (!tam_cbor_get_uint(it, &rec->component_index)) {
        return bad(why, "SUIT_Record component-index must be a uint");
    }
    it = tam_cbor_next(it);
    if (it->type != TAM_CBOR_MAP) {
        return bad(why, "SUIT_Record properties must be a map");
    }
    rec->properties = tam_bytes_of(it->raw, it->raw_len);
    return tam_suit__apply_params(it, &rec->params, true, false, why);
}

static int parse_system_record(struct tam_suit_record *rec, const struct tam_cbor_item *map,
                               const char **why)
{
    rec->is_system = true;
    const struct tam_cbor_item *id = tam_cbor_map_get_int(map, SYSTEM_COMPONENT_ID);
    if (id == NULL) {
        return bad(why, "system-property-claims needs system-component-id (0)");
    }
    int err = tam_suit__component_id(id, &rec->system_component_id, why);
    if (err == TAM_OK) {
        err = tam_suit__apply_params(map, &rec->params, true, false, why);
    }
    return err;
}

static int parse_record(struct tam_suit_record *rec, const struct tam_cbor_item *it,
                        const char **why)
{
    memset(rec, 0, sizeof(*rec));
    rec->raw = tam_bytes_of(it->raw, it->raw_len);
    if (it->type == TAM_CBOR_ARRAY) {
        return parse_suit_record(rec, it, why);
    }
    if (it->type == TAM_CBOR_MAP) {
        return parse_system_record(rec, it, why);
    }
    return bad(why, "a report record must be a SUIT_Record array or a system-property map");
}

static int parse_records(struct tam_suit_report *r, const struct tam_cbor_item *arr,
                         struct tam_arena *arena, const char **why)
{
    if (arr == NULL || arr->type != TAM_CBOR_ARRAY) {
        return bad(why, "suit-report-records (3) missing or not an array");
    }
    if (arr->count > TAM_SUIT_MAX_RECORDS) {
        return tam_suit__fail(why, "too many report records", TAM_ETOOBIG);
    }
    if (arr->count == 0) {
        return TAM_OK;
    }
    if (arena == NULL) {
        return tam_suit__fail(why, "records need an arena", TAM_EINVAL);
    }
    r->records = tam_arena_array(arena, arr->count, sizeof(*r->records));
    if (r->records == NULL) {
        return tam_suit__fail(why, "arena: out of memory", TAM_ENOMEM);
    }
    const struct tam_cbor_item *it = tam_cbor_first(arr);
    for (uint32_t i = 0; i < arr->count; i++, it = tam_cbor_next(it)) {
        int err = parse_record(&r->records[i], it, why);
        if (err != TAM_OK) {
            return err;
        }
        r->nrecords++;
    }
    return TAM_OK;
}

static int parse_result(struct tam_suit_report *r, const struct tam_cbor_item *v, const char **why)
{
    bool ok;
    if (v == NULL) {
        return bad(why, "suit-report-result (4) missing");
    }
    if (tam_cbor_get_bool(v, &ok)) {
        if (!ok) {
            return bad(why, "suit-report-result must be true or a failure map");
        }
        r->success = true;
        return TAM_OK;
    }
    if (v->type != TAM_CBOR_MAP) {
        return bad(why, "suit-report-result must be true or a failure map");
    }
    const struct tam_cbor_item *code = tam_cbor_map_get_int(v, REPORT_RESULT_CODE);
    const struct tam_cbor_item *rec = tam_cbor_map_get_int(v, REPORT_RESULT_RECORD);
    const struct tam_cbor_item *reason = tam_cbor_map_get_int(v, REPORT_RESULT_REASON);
    if (code == NULL || !tam_cbor_get_int(code, &r->result_code)) {
        return bad(why, "suit-report-result-code (5) missing or not an integer");
    }
    if (reason == NULL || !tam_cbor_get_uint(reason, &r->result_reason)) {
        return bad(why, "suit-report-result-reason (7) missing or not a uint");
    }
    if (rec == NULL || rec->type != TAM_CBOR_ARRAY) {
        return bad(why, "suit-report-result-record (6) missing or not a SUIT_Record");
    }
    return parse_record(&r->result_record, rec, why);
}

static int parse_reference(struct tam_suit_report *r, const struct tam_cbor_item *map,
                           const char **why)
{
    const struct tam_cbor_item *ref = tam_cbor_map_get_int(map, REPORT_REFERENCE);
    if (ref == NULL) {
        if (tam_cbor_map_get_int(map, 1) != NULL) {
            return bad(why, "obsolete SUIT report layout (TEEP draft App. F: 1 = digest, "
                            "2 = uri, 4 = records); suit-report-18 needs suit-reference (99)");
        }
        return bad(why, "suit-reference (99) missing");
    }
    if (ref->type != TAM_CBOR_ARRAY || ref->count < 2) {
        return bad(why, "suit-reference must be [uri, SUIT_Digest]");
    }
    const struct tam_cbor_item *uri = tam_cbor_first(ref);
    if (!tam_cbor_get_text(uri, &r->reference_uri)) {
        return bad(why, "suit-report-manifest-uri must be a tstr");
    }
    return tam_suit__digest(tam_cbor_next(uri), &r->manifest_digest, why);
}

static int parse_report_map(struct tam_suit_report *r, const struct tam_cbor_item *map,
                            struct tam_arena *arena, const char **why)
{
    if (map->type != TAM_CBOR_MAP) {
        return bad(why, "SUIT_Report must be a map");
    }
    int err = parse_reference(r, map, why);
    if (err != TAM_OK) {
        return err;
    }
    const struct tam_cbor_item *v = tam_cbor_map_get_int(map, REPORT_NONCE);
    if (v != NULL) {
        if (!tam_cbor_get_bytes(v, &r->nonce)) {
            return bad(why, "suit-report-nonce must be a bstr");
        }
        r->has_nonce = true;
    }
    err = parse_records(r, tam_cbor_map_get_int(map, REPORT_RECORDS), arena, why);
    if (err == TAM_OK) {
        err = parse_result(r, tam_cbor_map_get_int(map, REPORT_RESULT), why);
    }
    v = tam_cbor_map_get_int(map, REPORT_CAPABILITY);
    if (err == TAM_OK && v != NULL) {
        r->has_capability = true;
        r->capability_report = tam_bytes_of(v->raw, v->raw_len);
    }
    return err;
}

static int decode_bare(struct tam_suit_report *r, struct tam_bytes span, struct tam_arena *arena,
                       const char **why)
{
    r->report = span;
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, span, why);
    if (err == TAM_OK) {
        const struct tam_cbor_item *root = tam_cbor_root(&doc);
        if (root->type == TAM_CBOR_TAG && root->val == COSE_TAG_ENCRYPT0) {
            err = bad(why, "encrypted SUIT report (COSE_Encrypt0): decrypt it first");
        } else {
            err = parse_report_map(r, root, arena, why);
        }
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* Peeks at the outer item: a map is a bare report, tag 18 or an array a COSE_Sign1. */
static int classify(const uint8_t *buf, size_t len, bool *is_sign1, const char **why)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &tam_suit__limits, &doc, why);
    if (err == TAM_OK) {
        const struct tam_cbor_item *root = tam_cbor_root(&doc);
        if (root->type == TAM_CBOR_TAG && root->val == COSE_TAG_MAC0) {
            err = bad(why, "COSE_Mac0-protected SUIT reports are not supported");
        } else if (root->type == TAM_CBOR_TAG && root->val == COSE_TAG_ENCRYPT0) {
            err = bad(why, "encrypted SUIT report (COSE_Encrypt0): decrypt it first");
        } else {
            *is_sign1 = root->type == TAM_CBOR_ARRAY ||
                        (root->type == TAM_CBOR_TAG && root->val == TAM_COSE_TAG_SIGN1);
        }
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

int tam_suit_report_decode(const uint8_t *buf, size_t len, struct tam_arena *arena,
                           struct tam_suit_report *report, const char **why)
{
    memset(report, 0, sizeof(*report));
    if (buf == NULL || len == 0) {
        return tam_suit__fail(why, "empty SUIT report", TAM_ECBOR);
    }
    bool is_sign1 = false;
    int err = classify(buf, len, &is_sign1, why);
    if (err != TAM_OK || !is_sign1) {
        return err != TAM_OK ? err : decode_bare(report, tam_bytes_of(buf, len), arena, why);
    }
    err = tam_cose_parse(buf, len, &report->cose, why);
    if (err != TAM_OK) {
        return err;
    }
    if (report->cose.kind != TAM_COSE_SIGN1 || report->cose.detached) {
        return bad(why, "a signed SUIT report is a COSE_Sign1 with the report as payload");
    }
    report->is_signed = true;
    return decode_bare(report, report->cose.payload, arena, why);
}

/* ---- encode ---- */

/* Raw pieces handed in by the caller are checked, so the output is always well-formed. */
static bool raw_is(struct tam_bytes raw, int type)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    bool ok = tam_suit__decode(&doc, raw, NULL) == TAM_OK &&
              (type < 0 || tam_cbor_root(&doc)->type == type);
    tam_cbor_doc_finish(&doc);
    return ok;
}

static int put_record(struct tam_cbor_writer *w, const struct tam_suit_record *rec)
{
    if (rec->is_system) {
        if (!raw_is(rec->raw, TAM_CBOR_MAP)) {
            return TAM_EINVAL;
        }
        tam_cbor_put_raw(w, rec->raw.ptr, rec->raw.len);
        return TAM_OK;
    }
    if (rec->manifest_id_len > TAM_SUIT_MAX_MANIFEST_ID ||
        (rec->properties.len > 0 && !raw_is(rec->properties, TAM_CBOR_MAP))) {
        return TAM_EINVAL;
    }
    tam_cbor_open_array(w, 5);
    tam_cbor_open_array(w, rec->manifest_id_len);
    for (unsigned i = 0; i < rec->manifest_id_len; i++) {
        tam_cbor_put_uint(w, rec->manifest_id[i]);
    }
    tam_cbor_put_int(w, rec->section);
    tam_cbor_put_uint(w, rec->offset);
    tam_cbor_put_uint(w, rec->component_index);
    if (rec->properties.len > 0) {
        tam_cbor_put_raw(w, rec->properties.ptr, rec->properties.len);
    } else {
        tam_cbor_open_map(w, 0);
    }
    return TAM_OK;
}

static int put_records(struct tam_cbor_writer *w, const struct tam_suit_report *r)
{
    if (r->nrecords > TAM_SUIT_MAX_RECORDS || (r->nrecords > 0 && r->records == NULL)) {
        return TAM_EINVAL;
    }
    tam_cbor_put_uint(w, REPORT_RECORDS);
    tam_cbor_open_array(w, r->nrecords);
    int err = TAM_OK;
    for (size_t i = 0; i < r->nrecords && err == TAM_OK; i++) {
        err = put_record(w, &r->records[i]);
    }
    return err;
}

static int put_result(struct tam_cbor_writer *w, const struct tam_suit_report *r)
{
    tam_cbor_put_uint(w, REPORT_RESULT);
    if (r->success) {
        tam_cbor_put_bool(w, true);
        return TAM_OK;
    }
    if (r->result_record.is_system) {
        return TAM_EINVAL; /* the result record is a SUIT_Record */
    }
    tam_cbor_open_map(w, 3);
    tam_cbor_put_uint(w, REPORT_RESULT_CODE);
    tam_cbor_put_int(w, r->result_code);
    tam_cbor_put_uint(w, REPORT_RESULT_RECORD);
    int err = put_record(w, &r->result_record);
    tam_cbor_put_uint(w, REPORT_RESULT_REASON);
    tam_cbor_put_uint(w, r->result_reason);
    return err;
}

static int write_report(struct tam_cbor_writer *w, const struct tam_suit_report *r)
{
    if ((r->reference_uri.ptr == NULL && r->reference_uri.len > 0) ||
        (r->has_capability && !raw_is(r->capability_report, -1))) {
        return TAM_EINVAL;
    }
    tam_cbor_open_map(w, 3u + r->has_nonce + r->has_capability);
    if (r->has_nonce) {
        tam_cbor_put_uint(w, REPORT_NONCE);
        tam_cbor_put_bstr(w, r->nonce.ptr, r->nonce.len);
    }
    int err = put_records(w, r);
    if (err == TAM_OK) {
        err = put_result(w, r);
    }
    if (err != TAM_OK) {
        return err;
    }
    if (r->has_capability) {
        tam_cbor_put_uint(w, REPORT_CAPABILITY);
        tam_cbor_put_raw(w, r->capability_report.ptr, r->capability_report.len);
    }
    tam_cbor_put_uint(w, REPORT_REFERENCE);
    tam_cbor_open_array(w, 2);
    tam_cbor_put_tstr(w, (const char *)r->reference_uri.ptr, r->reference_uri.len);
    tam_cbor_open_array(w, 2);
    tam_cbor_put_int(w, r->manifest_digest.alg);
    tam_cbor_put_bstr(w, r->manifest_digest.bytes.ptr, r->manifest_digest.bytes.len);
    return TAM_OK;
}

int tam_suit_report_encode(const struct tam_suit_report *report, struct tam_buf *out)
{
    size_t mark = out->len;
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    int err = write_report(&w, report);
    int werr = tam_cbor_writer_finish(&w);
    err = err != TAM_OK ? err : werr;
    if (err != TAM_OK) {
        out->len = mark;
    }
    return err;
}

int tam_suit_report_encode_signed(const struct tam_suit_report *report, const struct tam_key *key,
                                  int alg, struct tam_buf *out)
{
    struct tam_buf bare;
    tam_buf_init(&bare, TAM_SUIT_MAX_ENVELOPE);
    int err = tam_suit_report_encode(report, &bare);
    if (err == TAM_OK) {
        struct tam_cose_sign_opts opts = {.tagged = true};
        struct tam_bytes payload = tam_bytes_of(bare.data, bare.len);
        size_t mark = out->len;
        err = tam_cose_sign1(out, key, alg, &payload, &opts);
        if (err != TAM_OK) {
            out->len = mark;
        }
    }
    tam_buf_finish(&bare);
    return err;
}
