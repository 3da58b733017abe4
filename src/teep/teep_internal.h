/*
 * Shared by the files of the TEEP codec only: the option table (logical option
 * ids, their wire labels per numbering, which message types carry them) and
 * static reason strings.
 */
#ifndef TAM_TEEP_INTERNAL_H
#define TAM_TEEP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "tam/teep.h"

/*
 * X(ID, name, old label, new label). Old labels are those of drafts -16..-25
 * (and draft-12); new labels those of -26 / IANA. 0 = not assigned. Label 5 of
 * the old table (selected-teep-cipher-suite) exists only in DRAFT12.
 */
#define TEEP_OPTS(X)                                                    \
    X(SUPPORTED_SUITES, "supported-teep-cipher-suites", 1, 1)           \
    X(CHALLENGE, "challenge", 2, 2)                                     \
    X(VERSIONS, "versions", 3, 3)                                       \
    X(SUPPORTED_PROFILES, "supported-suit-cose-profiles", 4, 4)         \
    X(SELECTED_SUITE, "selected-teep-cipher-suite", 5, 0)               \
    X(SELECTED_VERSION, "selected-version", 6, 5)                       \
    X(ATTESTATION_PAYLOAD, "attestation-payload", 7, 6)                 \
    X(TC_LIST, "tc-list", 8, 7)                                         \
    X(EXT_LIST, "ext-list", 9, 8)                                       \
    X(MANIFEST_LIST, "manifest-list", 10, 9)                            \
    X(MSG, "msg", 11, 10)                                               \
    X(ERR_MSG, "err-msg", 12, 11)                                       \
    X(ATTESTATION_PAYLOAD_FORMAT, "attestation-payload-format", 13, 12) \
    X(REQUESTED_TC_LIST, "requested-tc-list", 14, 13)                   \
    X(UNNEEDED, "unneeded-manifest-list", 15, 14)                       \
    X(COMPONENT_ID, "component-id", 16, 15)                             \
    X(TC_MANIFEST_SEQ, "tc-manifest-sequence-number", 17, 16)           \
    X(HAVE_BINARY, "have-binary", 18, 17)                               \
    X(SUIT_REPORTS, "suit-reports", 19, 18)                             \
    X(TOKEN, "token", 20, 19)                                           \
    X(FRESHNESS, "supported-freshness-mechanisms", 21, 20)              \
    X(ERR_LANG, "err-lang", 22, 21)                                     \
    X(ERR_CODE, "err-code", 23, 22)

enum teep_opt {
#define TEEP_OPT_ENUM_(id, name, o, n) TEEP_OPT_##id,
    TEEP_OPTS(TEEP_OPT_ENUM_)
#undef TEEP_OPT_ENUM_
        TEEP_OPT_COUNT_
};

#define TEEP_BIT(opt) ((uint32_t)1 << (opt))

/* Static reason strings per option. */
struct tam_teep__why {
    const char *type;        /* "<name>: wrong type" */
    const char *empty;       /* "<name>: empty list" */
    const char *too_many;    /* "<name>: too many entries" */
    const char *not_allowed; /* "<name>: not allowed in this message type" */
};

const char *tam_teep__opt_name(enum teep_opt opt);
const struct tam_teep__why *tam_teep__why(enum teep_opt opt);
/* The wire label of an option in a numbering, 0 if it has none there. */
uint64_t tam_teep__opt_label(enum teep_opt opt, enum tam_teep_numbering num);
/* The option with this wire label in a numbering; false if none. */
bool tam_teep__opt_from_label(uint64_t label, enum tam_teep_numbering num, enum teep_opt *out);
/* Mask of options allowed in the options map of a message type (positional fields excluded). */
uint32_t tam_teep__allowed(enum tam_teep_numbering num, enum tam_teep_type type);
bool tam_teep__type_valid(enum tam_teep_type type);
/* True if buf is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool tam_teep__utf8_valid(const uint8_t *p, size_t len);
/* Mask of the options present in msg's options map (positional fields excluded). */
uint32_t tam_teep__present(const struct tam_teep_msg *msg);

#endif
