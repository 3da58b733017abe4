/* Helpers shared by the SUIT sources (not part of the public API). */
#ifndef TAM_SUIT_INTERNAL_H
#define TAM_SUIT_INTERNAL_H

#include <stdbool.h>

#include "tam/cbor.h"
#include "tam/suit.h"

/* SUIT parameter keys the TAM reads or writes. */
enum suit_param {
    SUIT_PARAM_VENDOR_ID = 1,
    SUIT_PARAM_CLASS_ID = 2,
    SUIT_PARAM_IMAGE_DIGEST = 3,
    SUIT_PARAM_IMAGE_SIZE = 14,
    SUIT_PARAM_CONTENT = 18,
    SUIT_PARAM_ENCRYPTION_INFO = 19,
    SUIT_PARAM_URI = 21,
};

/* SUIT commands the TAM reads or writes. */
enum suit_cmd {
    SUIT_CMD_VENDOR_ID = 1,
    SUIT_CMD_CLASS_ID = 2,
    SUIT_CMD_IMAGE_MATCH = 3,
    SUIT_CMD_PROCESS_DEPENDENCY = 11,
    SUIT_CMD_SET_COMPONENT_INDEX = 12,
    SUIT_CMD_TRY_EACH = 15,
    SUIT_CMD_WRITE = 18,
    SUIT_CMD_SET_PARAMETERS = 19,
    SUIT_CMD_OVERRIDE_PARAMETERS = 20,
    SUIT_CMD_FETCH = 21,
    SUIT_CMD_RUN_SEQUENCE = 32,
    SUIT_CMD_UNLINK = 33,
};

#define SUIT_TAG_PEN    112
#define SUIT_ALG_SHA256 (-16)
#define SUIT_POLICY_ALL 15 /* record and sysinfo on success and failure */

/* Decoding limits for an envelope and for every bstr-wrapped part of it. */
extern const struct tam_cbor_limits tam_suit__limits;

int tam_suit__fail(const char **why, const char *reason, int err);
/* Decodes span into doc (SUIT limits). */
int tam_suit__decode(struct tam_cbor_doc *doc, struct tam_bytes span, const char **why);
/* SUIT_Digest = [int alg, bstr bytes, * ext]. */
int tam_suit__digest(const struct tam_cbor_item *it, struct tam_suit_digest *out, const char **why);
/* The same, from a bstr holding the encoded SUIT_Digest. */
int tam_suit__digest_bstr(const struct tam_cbor_item *it, struct tam_suit_digest *out,
                          const char **why);
/* SUIT_Component_Identifier = [* bstr], bounded by TAM_SUIT_MAX_SEGMENTS. */
int tam_suit__component_id(const struct tam_cbor_item *it, struct tam_suit_component_id *out,
                           const char **why);
/*
 * Applies a parameter map to p: override replaces, otherwise only unset values are
 * filled (set-parameters). With strict, a known parameter of the wrong type fails
 * with TAM_ESUIT; otherwise it is ignored. Unknown parameters are ignored.
 */
int tam_suit__apply_params(const struct tam_cbor_item *map, struct tam_suit_params *p,
                           bool override, bool strict, const char **why);

#endif
