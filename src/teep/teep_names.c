/*
 * TEEP numbering tables: names, wire <-> logical mapping of types, error codes
 * and option labels, and which options each message type carries.
 */
#include <string.h>

#include "tam/err.h"
#include "tam/teep.h"
#include "teep_internal.h"

struct opt_row {
    const char *name;
    uint8_t old_label;
    uint8_t new_label;
    struct tam_teep__why why;
};

static const struct opt_row opt_rows[TEEP_OPT_COUNT_] = {
#define TEEP_OPT_ROW_(id, nm, o, n)                                                    \
    [TEEP_OPT_##id] = {nm,                                                             \
                       o,                                                              \
                       n,                                                              \
                       {nm ": wrong type", nm ": empty list", nm ": too many entries", \
                        nm ": not allowed in this message type"}},
    TEEP_OPTS(TEEP_OPT_ROW_)
#undef TEEP_OPT_ROW_
};

const char *tam_teep__opt_name(enum teep_opt opt)
{
    return opt_rows[opt].name;
}

const struct tam_teep__why *tam_teep__why(enum teep_opt opt)
{
    return &opt_rows[opt].why;
}

uint64_t tam_teep__opt_label(enum teep_opt opt, enum tam_teep_numbering num)
{
    switch (num) {
    case TAM_TEEP_RFC:
        return opt_rows[opt].new_label;
    case TAM_TEEP_DRAFT:
        /* Label 5 is reserved in drafts -16..-25; only draft-12 used it. */
        return opt == TEEP_OPT_SELECTED_SUITE ? 0 : opt_rows[opt].old_label;
    case TAM_TEEP_DRAFT12:
        return opt_rows[opt].old_label;
    }
    return 0;
}

bool tam_teep__opt_from_label(uint64_t label, enum tam_teep_numbering num, enum teep_opt *out)
{
    if (label == 0) {
        return false;
    }
    for (int i = 0; i < TEEP_OPT_COUNT_; i++) {
        if (tam_teep__opt_label((enum teep_opt)i, num) == label) {
            *out = (enum teep_opt)i;
            return true;
        }
    }
    return false;
}

uint32_t tam_teep__allowed(enum tam_teep_numbering num, enum tam_teep_type type)
{
    const uint32_t common = TEEP_BIT(TEEP_OPT_TOKEN);
    const uint32_t attest =
        TEEP_BIT(TEEP_OPT_ATTESTATION_PAYLOAD_FORMAT) | TEEP_BIT(TEEP_OPT_ATTESTATION_PAYLOAD);
    switch (type) {
    case TAM_TEEP_QUERY_REQUEST:
        return common | attest | TEEP_BIT(TEEP_OPT_FRESHNESS) | TEEP_BIT(TEEP_OPT_CHALLENGE) |
               TEEP_BIT(TEEP_OPT_VERSIONS) | TEEP_BIT(TEEP_OPT_SUIT_REPORTS);
    case TAM_TEEP_QUERY_RESPONSE:
        return common | attest | TEEP_BIT(TEEP_OPT_SELECTED_VERSION) |
               TEEP_BIT(TEEP_OPT_SUIT_REPORTS) | TEEP_BIT(TEEP_OPT_TC_LIST) |
               TEEP_BIT(TEEP_OPT_REQUESTED_TC_LIST) | TEEP_BIT(TEEP_OPT_UNNEEDED) |
               TEEP_BIT(TEEP_OPT_EXT_LIST) |
               (num == TAM_TEEP_DRAFT12 ? TEEP_BIT(TEEP_OPT_SELECTED_SUITE) : 0);
    case TAM_TEEP_UPDATE:
        return common | attest | TEEP_BIT(TEEP_OPT_UNNEEDED) | TEEP_BIT(TEEP_OPT_MANIFEST_LIST) |
               TEEP_BIT(TEEP_OPT_ERR_CODE) | TEEP_BIT(TEEP_OPT_ERR_MSG) |
               TEEP_BIT(TEEP_OPT_ERR_LANG);
    case TAM_TEEP_SUCCESS:
        return common | TEEP_BIT(TEEP_OPT_MSG) | TEEP_BIT(TEEP_OPT_SUIT_REPORTS);
    case TAM_TEEP_ERROR:
        return common | TEEP_BIT(TEEP_OPT_ERR_MSG) | TEEP_BIT(TEEP_OPT_ERR_LANG) |
               TEEP_BIT(TEEP_OPT_SUPPORTED_SUITES) | TEEP_BIT(TEEP_OPT_FRESHNESS) |
               TEEP_BIT(TEEP_OPT_SUPPORTED_PROFILES) | TEEP_BIT(TEEP_OPT_CHALLENGE) |
               TEEP_BIT(TEEP_OPT_VERSIONS) | TEEP_BIT(TEEP_OPT_SUIT_REPORTS);
    }
    return 0;
}

bool tam_teep__type_valid(enum tam_teep_type type)
{
    return type >= TAM_TEEP_QUERY_REQUEST && type <= TAM_TEEP_ERROR;
}

int tam_teep_numbering_parse(const char *name, enum tam_teep_numbering *out)
{
    static const struct {
        const char *name;
        enum tam_teep_numbering num;
    } names[] = {{"rfc", TAM_TEEP_RFC}, {"draft", TAM_TEEP_DRAFT}, {"draft12", TAM_TEEP_DRAFT12}};
    if (name == NULL) {
        return TAM_EINVAL;
    }
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].num;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

const char *tam_teep_numbering_name(enum tam_teep_numbering num)
{
    switch (num) {
    case TAM_TEEP_RFC:
        return "rfc";
    case TAM_TEEP_DRAFT:
        return "draft";
    case TAM_TEEP_DRAFT12:
        return "draft12";
    }
    return "?";
}

const char *tam_teep_type_name(enum tam_teep_type type)
{
    switch (type) {
    case TAM_TEEP_QUERY_REQUEST:
        return "query-request";
    case TAM_TEEP_QUERY_RESPONSE:
        return "query-response";
    case TAM_TEEP_UPDATE:
        return "update";
    case TAM_TEEP_SUCCESS:
        return "success";
    case TAM_TEEP_ERROR:
        return "error";
    }
    return "?";
}

bool tam_teep_type_from_wire(enum tam_teep_numbering num, uint64_t wire, enum tam_teep_type *out)
{
    if (wire >= 1 && wire <= 3) {
        *out = (enum tam_teep_type)wire;
        return true;
    }
    /* RFC: Success 4, Error 5. Drafts: 4 reserved, Success 5, Error 6. */
    uint64_t success = num == TAM_TEEP_RFC ? 4 : 5;
    if (wire == success) {
        *out = TAM_TEEP_SUCCESS;
        return true;
    }
    if (wire == success + 1) {
        *out = TAM_TEEP_ERROR;
        return true;
    }
    return false;
}

bool tam_teep_type_to_wire(enum tam_teep_numbering num, enum tam_teep_type type, uint64_t *out)
{
    if (!tam_teep__type_valid(type)) {
        return false;
    }
    bool shifted = num != TAM_TEEP_RFC && type >= TAM_TEEP_SUCCESS;
    *out = (uint64_t)type + (shifted ? 1 : 0);
    return true;
}

const char *tam_teep_err_name(uint32_t code)
{
    static const char *const names[] = {
        [TAM_TEEP_ERR_PERMANENT_ERROR] = "ERR_PERMANENT_ERROR",
        [TAM_TEEP_ERR_UNSUPPORTED_EXTENSION] = "ERR_UNSUPPORTED_EXTENSION",
        [TAM_TEEP_ERR_UNSUPPORTED_FRESHNESS_MECHANISMS] = "ERR_UNSUPPORTED_FRESHNESS_MECHANISMS",
        [TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION] = "ERR_UNSUPPORTED_MSG_VERSION",
        [TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES] = "ERR_UNSUPPORTED_CIPHER_SUITES",
        [TAM_TEEP_ERR_BAD_CERTIFICATE] = "ERR_BAD_CERTIFICATE",
        [TAM_TEEP_ERR_ATTESTATION_REQUIRED] = "ERR_ATTESTATION_REQUIRED",
        [TAM_TEEP_ERR_UNSUPPORTED_SUIT_REPORT] = "ERR_UNSUPPORTED_SUIT_REPORT",
        [TAM_TEEP_ERR_CERTIFICATE_EXPIRED] = "ERR_CERTIFICATE_EXPIRED",
        [TAM_TEEP_ERR_TEMPORARY_ERROR] = "ERR_TEMPORARY_ERROR",
        [TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED] = "ERR_MANIFEST_PROCESSING_FAILED",
    };
    if (code >= 1 && code < TAM_ARRAY_LEN(names)) {
        return names[code];
    }
    if (code > TAM_TEEP_ERR_UNKNOWN_BASE) {
        return "unknown";
    }
    return "invalid";
}

bool tam_teep_err_from_wire(enum tam_teep_numbering num, uint64_t wire, uint32_t *out)
{
    if (wire == 0 || wire > TAM_TEEP_ERR_WIRE_MAX) {
        return false;
    }
    if (wire <= TAM_TEEP_ERR_TEMPORARY_ERROR) {
        *out = (uint32_t)wire;
    } else if (wire == (num == TAM_TEEP_RFC ? 11u : 17u)) {
        *out = TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED;
    } else {
        *out = TAM_TEEP_ERR_UNKNOWN_BASE + (uint32_t)wire;
    }
    return true;
}

bool tam_teep_err_to_wire(enum tam_teep_numbering num, uint32_t code, uint64_t *out)
{
    if (code >= 1 && code <= TAM_TEEP_ERR_TEMPORARY_ERROR) {
        *out = code;
        return true;
    }
    if (code == TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED) {
        *out = num == TAM_TEEP_RFC ? 11u : 17u;
        return true;
    }
    if (code <= TAM_TEEP_ERR_UNKNOWN_BASE) {
        return false;
    }
    /* An unknown code must decode back to itself, not to a code known in this numbering. */
    uint64_t wire = code - TAM_TEEP_ERR_UNKNOWN_BASE;
    uint32_t back = 0;
    if (!tam_teep_err_from_wire(num, wire, &back) || back != code) {
        return false;
    }
    *out = wire;
    return true;
}

const char *tam_teep_label_name(enum tam_teep_numbering num, uint64_t label)
{
    enum teep_opt opt;
    if (!tam_teep__opt_from_label(label, num, &opt)) {
        return NULL;
    }
    return opt_rows[opt].name;
}
