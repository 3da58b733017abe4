/*
 * Value rules of TEEP messages, shared by the decoder (after the CBOR shapes are
 * checked) and the encoder (which refuses to emit an invalid message).
 */
#include "tam/err.h"
#include "tam/teep.h"
#include "teep_internal.h"

static int fail(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return TAM_EINVAL;
}

bool tam_teep__utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return false; /* continuation byte, overlong lead (C0, C1) or above F4 */
        }
        if (n > len - i - 1) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3Fu);
        }
        /* Reject overlong 3/4-byte forms, UTF-16 surrogates and code points past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

uint32_t tam_teep__present(const struct tam_teep_msg *m)
{
    /* QueryRequest suites/profiles and Error err-code are positional, not options. */
    bool qr = m->type == TAM_TEEP_QUERY_REQUEST;
    bool err = m->type == TAM_TEEP_ERROR;
    const struct {
        bool has;
        enum teep_opt opt;
    } rows[] = {
        {m->has_supported_suites && !qr, TEEP_OPT_SUPPORTED_SUITES},
        {m->has_challenge, TEEP_OPT_CHALLENGE},
        {m->has_versions, TEEP_OPT_VERSIONS},
        {m->has_supported_profiles && !qr, TEEP_OPT_SUPPORTED_PROFILES},
        {m->has_selected_suite, TEEP_OPT_SELECTED_SUITE},
        {m->has_selected_version, TEEP_OPT_SELECTED_VERSION},
        {m->has_attestation_payload, TEEP_OPT_ATTESTATION_PAYLOAD},
        {m->has_tc_list, TEEP_OPT_TC_LIST},
        {m->has_ext_list, TEEP_OPT_EXT_LIST},
        {m->has_manifest_list, TEEP_OPT_MANIFEST_LIST},
        {m->has_msg, TEEP_OPT_MSG},
        {m->has_err_msg, TEEP_OPT_ERR_MSG},
        {m->has_attestation_payload_format, TEEP_OPT_ATTESTATION_PAYLOAD_FORMAT},
        {m->has_requested_tc_list, TEEP_OPT_REQUESTED_TC_LIST},
        {m->has_unneeded, TEEP_OPT_UNNEEDED},
        {m->has_suit_reports, TEEP_OPT_SUIT_REPORTS},
        {m->has_token, TEEP_OPT_TOKEN},
        {m->has_freshness, TEEP_OPT_FRESHNESS},
        {m->has_err_lang, TEEP_OPT_ERR_LANG},
        {m->has_err_code && !err, TEEP_OPT_ERR_CODE},
    };
    uint32_t mask = 0;
    for (size_t i = 0; i < TAM_ARRAY_LEN(rows); i++) {
        if (rows[i].has) {
            mask |= TEEP_BIT(rows[i].opt);
        }
    }
    return mask;
}

static int check_positional(const struct tam_teep_msg *m, enum tam_teep_numbering num,
                            const char **why)
{
    if (m->has_data_item_requested && m->type != TAM_TEEP_QUERY_REQUEST) {
        return fail(why, "data-item-requested: only in query-request");
    }
    if (m->type == TAM_TEEP_QUERY_REQUEST) {
        if (!m->has_supported_suites) {
            return fail(why, "query-request: supported-teep-cipher-suites missing");
        }
        if (!m->has_supported_profiles && num != TAM_TEEP_DRAFT12) {
            return fail(why, "query-request: supported-suit-cose-profiles missing");
        }
        if (!m->has_data_item_requested) {
            return fail(why, "query-request: data-item-requested missing");
        }
    }
    if (m->type == TAM_TEEP_ERROR && !m->has_err_code) {
        return fail(why, "error: err-code missing");
    }
    return TAM_OK;
}

static int check_options_allowed(const struct tam_teep_msg *m, enum tam_teep_numbering num,
                                 const char **why)
{
    uint32_t extra = tam_teep__present(m) & ~tam_teep__allowed(num, m->type);
    for (int i = 0; i < TEEP_OPT_COUNT_; i++) {
        if ((extra & TEEP_BIT(i)) != 0) {
            return fail(why, tam_teep__why((enum teep_opt)i)->not_allowed);
        }
    }
    return TAM_OK;
}

static bool span_ok(struct tam_bytes b)
{
    return b.len == 0 || b.ptr != NULL;
}

static int check_text(bool has, struct tam_bytes t, size_t min, size_t max, const char *why_size,
                      const char *why_utf8, const char **why)
{
    if (!has) {
        return TAM_OK;
    }
    if (t.len < min || t.len > max || !span_ok(t)) {
        return fail(why, why_size);
    }
    if (!tam_teep__utf8_valid(t.ptr, t.len)) {
        return fail(why, why_utf8);
    }
    return TAM_OK;
}

static int check_scalars(const struct tam_teep_msg *m, const char **why)
{
    if (m->has_token && (m->token.len < TAM_TEEP_TOKEN_MIN || m->token.len > TAM_TEEP_TOKEN_MAX ||
                         !span_ok(m->token))) {
        return fail(why, "token: size must be 8..64 bytes");
    }
    if (m->has_challenge && (m->challenge.len < TAM_TEEP_CHALLENGE_MIN ||
                             m->challenge.len > TAM_TEEP_CHALLENGE_MAX || !span_ok(m->challenge))) {
        return fail(why, "challenge: size must be 8..512 bytes");
    }
    if (m->has_attestation_payload && !span_ok(m->attestation_payload)) {
        return fail(why, "attestation-payload: NULL data");
    }
    int rc = check_text(m->has_msg, m->msg, 1, TAM_TEEP_MSG_MAX, "msg: size must be 1..128 bytes",
                        "msg: invalid UTF-8", why);
    if (rc == TAM_OK) {
        rc = check_text(m->has_err_msg, m->err_msg, 1, TAM_TEEP_MSG_MAX,
                        "err-msg: size must be 1..128 bytes", "err-msg: invalid UTF-8", why);
    }
    if (rc == TAM_OK) {
        rc = check_text(m->has_err_lang, m->err_lang, 1, TAM_TEEP_ERR_LANG_MAX,
                        "err-lang: size must be 1..35 bytes", "err-lang: invalid UTF-8", why);
    }
    if (rc == TAM_OK) {
        rc = check_text(m->has_attestation_payload_format, m->attestation_payload_format, 0,
                        SIZE_MAX, "attestation-payload-format: NULL data",
                        "attestation-payload-format: invalid UTF-8", why);
    }
    return rc;
}

/* Count rules of a list: bound, non-empty (except DRAFT12 option lists), storage present. */
static int check_count(bool has, uint32_t n, const void *v, uint32_t max, enum teep_opt opt,
                       bool positional, enum tam_teep_numbering num, const char **why)
{
    if (!has) {
        return TAM_OK;
    }
    if (n > max) {
        return fail(why, tam_teep__why(opt)->too_many);
    }
    if (n == 0 && (positional || num != TAM_TEEP_DRAFT12)) {
        return fail(why, tam_teep__why(opt)->empty);
    }
    if (n > 0 && v == NULL) {
        return fail(why, "list: NULL entries");
    }
    return TAM_OK;
}

static int check_suite(const struct tam_teep_suite *s, const char **why)
{
    if (s->n_ops == 0 || s->n_ops > TAM_TEEP_MAX_SUITE_OPS) {
        return fail(why, "cipher suite: want 1..4 operations");
    }
    for (uint32_t i = 0; i < s->n_ops; i++) {
        if (s->ops[i].cose_type < 0) {
            return fail(why, "cipher suite: cose-type must be an unsigned integer");
        }
    }
    return TAM_OK;
}

static int check_suites(const struct tam_teep_msg *m, enum tam_teep_numbering num, const char **why)
{
    bool qr = m->type == TAM_TEEP_QUERY_REQUEST;
    const struct tam_teep_suites *ss = &m->supported_suites;
    int rc = check_count(m->has_supported_suites, ss->n, ss->v, TAM_TEEP_MAX_SUITES,
                         TEEP_OPT_SUPPORTED_SUITES, qr, num, why);
    for (uint32_t i = 0; rc == TAM_OK && m->has_supported_suites && i < ss->n; i++) {
        rc = check_suite(&ss->v[i], why);
    }
    if (rc == TAM_OK && m->has_selected_suite) {
        rc = check_suite(&m->selected_suite, why);
    }
    const struct tam_teep_profiles *ps = &m->supported_profiles;
    if (rc == TAM_OK) {
        rc = check_count(m->has_supported_profiles, ps->n, ps->v, TAM_TEEP_MAX_PROFILES,
                         TEEP_OPT_SUPPORTED_PROFILES, qr, num, why);
    }
    for (uint32_t i = 0; rc == TAM_OK && m->has_supported_profiles && i < ps->n; i++) {
        if (ps->v[i].n == 0 || ps->v[i].n > TAM_TEEP_MAX_PROFILE_LEN) {
            return fail(why, "supported-suit-cose-profiles: profile wants 1..4 integers");
        }
    }
    return rc;
}

static int check_component_id(const struct tam_teep_component_id *id, const char **why)
{
    if (id->n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return fail(why, "component-id: too many segments");
    }
    for (uint32_t i = 0; i < id->n; i++) {
        if (!span_ok(id->seg[i])) {
            return fail(why, "component-id: NULL segment");
        }
    }
    return TAM_OK;
}

static int check_tc(const struct tam_teep_tc *tc, enum tam_teep_numbering num, const char **why)
{
    if (num == TAM_TEEP_DRAFT12 && tc->has_image_digest) {
        return fail(why, "tc-list: image-digest is not part of draft12 tc-info");
    }
    if (num != TAM_TEEP_DRAFT12 && tc->has_seq) {
        return fail(why, "tc-list: tc-manifest-sequence-number only in draft12 tc-info");
    }
    if (!span_ok(tc->image_digest) || !span_ok(tc->raw)) {
        return fail(why, "tc-list: NULL data");
    }
    if (tc->raw.len > 0 && (tc->raw.ptr[0] >> 5) != 5) {
        return fail(why, "tc-list: raw entry is not a map");
    }
    return check_component_id(&tc->id, why);
}

static int check_req_tc(const struct tam_teep_req_tc *r, const char **why)
{
    if (r->has_have_binary && r->have_binary && !r->has_seq) {
        return fail(why, "requested-tc-list: have-binary needs tc-manifest-sequence-number");
    }
    return check_component_id(&r->id, why);
}

static int check_bytes_list(const struct tam_bytes *v, uint32_t n, const char **why)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!span_ok(v[i])) {
            return fail(why, "list: NULL bytes entry");
        }
    }
    return TAM_OK;
}

static int check_lists(const struct tam_teep_msg *m, enum tam_teep_numbering num, const char **why)
{
    const uint32_t max = TAM_TEEP_MAX_LIST;
    int rc = check_count(m->has_versions, m->n_versions, m->versions, max, TEEP_OPT_VERSIONS, false,
                         num, why);
    if (rc == TAM_OK) {
        rc = check_count(m->has_freshness, m->n_freshness, m->freshness, max, TEEP_OPT_FRESHNESS,
                         false, num, why);
    }
    if (rc == TAM_OK) {
        rc = check_count(m->has_ext_list, m->n_ext_list, m->ext_list, max, TEEP_OPT_EXT_LIST, false,
                         num, why);
    }
    if (rc == TAM_OK) {
        rc = check_count(m->has_suit_reports, m->n_suit_reports, m->suit_reports, max,
                         TEEP_OPT_SUIT_REPORTS, false, num, why);
    }
    if (rc == TAM_OK && m->has_suit_reports) {
        rc = check_bytes_list(m->suit_reports, m->n_suit_reports, why);
    }
    if (rc == TAM_OK) {
        rc = check_count(m->has_manifest_list, m->n_manifest_list, m->manifest_list, max,
                         TEEP_OPT_MANIFEST_LIST, false, num, why);
    }
    if (rc == TAM_OK && m->has_manifest_list) {
        rc = check_bytes_list(m->manifest_list, m->n_manifest_list, why);
    }
    return rc;
}

static int check_component_lists(const struct tam_teep_msg *m, enum tam_teep_numbering num,
                                 const char **why)
{
    const uint32_t max = TAM_TEEP_MAX_LIST;
    int rc = check_count(m->has_tc_list, m->n_tc_list, m->tc_list, max, TEEP_OPT_TC_LIST, false,
                         num, why);
    for (uint32_t i = 0; rc == TAM_OK && m->has_tc_list && i < m->n_tc_list; i++) {
        rc = check_tc(&m->tc_list[i], num, why);
    }
    if (rc == TAM_OK) {
        rc = check_count(m->has_requested_tc_list, m->n_requested_tc_list, m->requested_tc_list,
                         max, TEEP_OPT_REQUESTED_TC_LIST, false, num, why);
    }
    for (uint32_t i = 0; rc == TAM_OK && m->has_requested_tc_list && i < m->n_requested_tc_list;
         i++) {
        rc = check_req_tc(&m->requested_tc_list[i], why);
    }
    if (rc == TAM_OK) {
        rc = check_count(m->has_unneeded, m->n_unneeded, m->unneeded, max, TEEP_OPT_UNNEEDED, false,
                         num, why);
    }
    for (uint32_t i = 0; rc == TAM_OK && m->has_unneeded && i < m->n_unneeded; i++) {
        rc = check_component_id(&m->unneeded[i], why);
    }
    return rc;
}

static int check_err_code(const struct tam_teep_msg *m, enum tam_teep_numbering num,
                          const char **why)
{
    if (!m->has_err_code) {
        return TAM_OK;
    }
    if (m->err_code == 0) {
        return fail(why, "err-code: must not be 0");
    }
    uint64_t wire;
    if (!tam_teep_err_to_wire(num, m->err_code, &wire)) {
        return fail(why, "err-code: not a code of this numbering");
    }
    return TAM_OK;
}

int tam_teep_validate(const struct tam_teep_msg *msg, enum tam_teep_numbering num, const char **why)
{
    if (num != TAM_TEEP_RFC && num != TAM_TEEP_DRAFT && num != TAM_TEEP_DRAFT12) {
        return fail(why, "numbering: unknown");
    }
    if (!tam_teep__type_valid(msg->type)) {
        return fail(why, "message: unknown type");
    }
    int rc = check_positional(msg, num, why);
    if (rc == TAM_OK) {
        rc = check_options_allowed(msg, num, why);
    }
    if (rc == TAM_OK) {
        rc = check_scalars(msg, why);
    }
    if (rc == TAM_OK) {
        rc = check_suites(msg, num, why);
    }
    if (rc == TAM_OK) {
        rc = check_lists(msg, num, why);
    }
    if (rc == TAM_OK) {
        rc = check_component_lists(msg, num, why);
    }
    if (rc == TAM_OK) {
        rc = check_err_code(msg, num, why);
    }
    return rc;
}
