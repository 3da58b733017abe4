/*
 * TEEP message codec (draft-ietf-teep-protocol): bare TEEP messages, i.e. the
 * payload of the COSE_Sign1/COSE_Sign wrapper, to and from struct tam_teep_msg.
 * Pure: no I/O, no globals, no clock, no logging.
 *
 * Numbering. Two incompatible code-point tables exist (TEEP-DIGEST 1.3), plus
 * the draft-12 layout of deployed agents. The caller chooses; the codec never
 * guesses from the bytes:
 *   TAM_TEEP_RFC      draft -26 / IANA (Success 4, Error 5, token 19, ...,
 *                     ERR_MANIFEST_PROCESSING_FAILED 11). The default.
 *   TAM_TEEP_DRAFT    drafts -16..-25 (Success 5, Error 6, token 20, ..., err 17).
 *   TAM_TEEP_DRAFT12  the draft-12 layout (libteep): the DRAFT numbering plus
 *                     label 5 = selected-teep-cipher-suite (QueryResponse),
 *                     tc-list entries are tc-info maps
 *                     {component-id(16), ? tc-manifest-sequence-number(17)},
 *                     QueryRequest may be 4 elements [type, options, suites,
 *                     data-item-requested] (no profiles), SUIT COSE profiles
 *                     are short arrays such as [-7, 1], and option lists may be
 *                     empty (libteep sends `10: []`), see below.
 *
 * Logical values. struct tam_teep_msg holds logical values, independent of the
 * numbering: message types (enum tam_teep_type) and error codes (the RFC values
 * 1..11; in the draft numberings wire 17 <-> logical 11). A wire error code that
 * the numbering does not define is kept as TAM_TEEP_ERR_UNKNOWN_BASE + wire, so
 * an unknown error is handled gracefully and re-encodes to the same wire value.
 *
 * Options. Every option of the CDDL has a has_* presence flag. Options that do
 * not belong to the message type (e.g. manifest-list in a QueryResponse) are
 * ignored on decode like unknown labels, and refused on encode. Unknown labels
 * are ignored on decode.
 *
 * Empty lists. The CDDL says `[+ ...]` for every option list; RFC and DRAFT
 * reject an empty list (decode and encode). DRAFT12 accepts and emits empty
 * option lists (has_x set, n_x == 0) because libteep sends an empty
 * manifest-list; positional lists (QueryRequest suites/profiles) and the
 * operations of a cipher suite must be non-empty in every numbering.
 *
 * Memory. Byte and text spans (struct tam_bytes) are zero-copy: they point into
 * the decoded input, which must outlive the message. Lists are allocated from
 * the caller's arena (no malloc per list); cipher suites and profiles are held
 * inline (bounded). The arena must outlive the message too.
 */
#ifndef TAM_TEEP_H
#define TAM_TEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/common.h"

enum tam_teep_numbering {
    TAM_TEEP_RFC = 0,
    TAM_TEEP_DRAFT = 1,
    TAM_TEEP_DRAFT12 = 2,
};

/* "rfc", "draft", "draft12" -> TAM_OK and *out; TAM_EINVAL for anything else. */
TAM_MUST_CHECK int tam_teep_numbering_parse(const char *name, enum tam_teep_numbering *out);
/* "rfc", "draft", "draft12", or "?" for an out-of-range value. */
const char *tam_teep_numbering_name(enum tam_teep_numbering num);

/* Logical message types (equal to the RFC wire values). */
enum tam_teep_type {
    TAM_TEEP_QUERY_REQUEST = 1,
    TAM_TEEP_QUERY_RESPONSE = 2,
    TAM_TEEP_UPDATE = 3,
    TAM_TEEP_SUCCESS = 4,
    TAM_TEEP_ERROR = 5,
};

/* "query-request", "query-response", "update", "success", "error", or "?". */
const char *tam_teep_type_name(enum tam_teep_type type);
/* Wire <-> logical type in a numbering. False when the value is not a type there. */
bool tam_teep_type_from_wire(enum tam_teep_numbering num, uint64_t wire, enum tam_teep_type *out);
bool tam_teep_type_to_wire(enum tam_teep_numbering num, enum tam_teep_type type, uint64_t *out);

/* Logical error codes = the RFC values. */
enum tam_teep_err_code {
    TAM_TEEP_ERR_PERMANENT_ERROR = 1,
    TAM_TEEP_ERR_UNSUPPORTED_EXTENSION = 2,
    TAM_TEEP_ERR_UNSUPPORTED_FRESHNESS_MECHANISMS = 3,
    TAM_TEEP_ERR_UNSUPPORTED_MSG_VERSION = 4,
    TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES = 5,
    TAM_TEEP_ERR_BAD_CERTIFICATE = 6,
    TAM_TEEP_ERR_ATTESTATION_REQUIRED = 7,
    TAM_TEEP_ERR_UNSUPPORTED_SUIT_REPORT = 8,
    TAM_TEEP_ERR_CERTIFICATE_EXPIRED = 9,
    TAM_TEEP_ERR_TEMPORARY_ERROR = 10,
    TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED = 11,
};

/* Logical code of a wire code the numbering does not define: BASE + wire. */
#define TAM_TEEP_ERR_UNKNOWN_BASE 0x10000u
/* Largest wire error code accepted (so that BASE + wire fits in uint32_t). */
#define TAM_TEEP_ERR_WIRE_MAX (UINT32_MAX - TAM_TEEP_ERR_UNKNOWN_BASE)

/* "ERR_PERMANENT_ERROR", ..., "unknown" for TAM_TEEP_ERR_UNKNOWN_BASE + x, "invalid" otherwise. */
const char *tam_teep_err_name(uint32_t code);
/* Wire -> logical. False for wire 0 (never valid) or above TAM_TEEP_ERR_WIRE_MAX. */
bool tam_teep_err_from_wire(enum tam_teep_numbering num, uint64_t wire, uint32_t *out);
/*
 * Logical -> wire. False for 0, 12..BASE, BASE + 0, and for an unknown code
 * whose wire value is a known code in this numbering (it would not round-trip).
 */
bool tam_teep_err_to_wire(enum tam_teep_numbering num, uint32_t code, uint64_t *out);

/* The CDDL name of an option-map label in a numbering ("token", "tc-list", ...), or NULL. */
const char *tam_teep_label_name(enum tam_teep_numbering num, uint64_t label);

/* data-item-requested bits. */
#define TAM_TEEP_DATA_ATTESTATION        1u
#define TAM_TEEP_DATA_TRUSTED_COMPONENTS 2u
#define TAM_TEEP_DATA_EXTENSIONS         4u
#define TAM_TEEP_DATA_SUIT_REPORTS       8u

/* Freshness mechanisms. */
#define TAM_TEEP_FRESHNESS_NONCE     0u
#define TAM_TEEP_FRESHNESS_TIMESTAMP 1u

/* Operation types of a cipher suite (CoAP content formats). */
#define TAM_TEEP_COSE_SIGN1 18
#define TAM_TEEP_COSE_SIGN  98

/* Bounds: larger inputs are rejected with TAM_ETEEP, never truncated. */
#define TAM_TEEP_MAX_SUITES      16   /* cipher suites in one list */
#define TAM_TEEP_MAX_SUITE_OPS   4    /* operations in one suite */
#define TAM_TEEP_MAX_PROFILES    16   /* SUIT COSE profiles in one list */
#define TAM_TEEP_MAX_PROFILE_LEN 4    /* integers in one profile */
#define TAM_TEEP_MAX_ID_SEGMENTS 16   /* bstr segments in one component id */
#define TAM_TEEP_MAX_LIST        1024 /* entries in any other list */
#define TAM_TEEP_TOKEN_MIN       8
#define TAM_TEEP_TOKEN_MAX       64
#define TAM_TEEP_CHALLENGE_MIN   8
#define TAM_TEEP_CHALLENGE_MAX   512
#define TAM_TEEP_MSG_MAX         128 /* msg and err-msg: 1..128 bytes of UTF-8 */
#define TAM_TEEP_ERR_LANG_MAX    35  /* err-lang: 1..35 bytes of UTF-8 */

/* One operation of a cipher suite: [cose-type, alg], e.g. [18, -9]. */
struct tam_teep_op {
    int64_t cose_type; /* uint on the wire, e.g. TAM_TEEP_COSE_SIGN1 */
    int64_t alg;       /* COSE algorithm, e.g. -9 (ESP256) */
};

/* A cipher suite: [+ operation]. */
struct tam_teep_suite {
    uint32_t n_ops;
    struct tam_teep_op ops[TAM_TEEP_MAX_SUITE_OPS];
};

/* A list of cipher suites: [+ suite]. */
struct tam_teep_suites {
    uint32_t n;
    struct tam_teep_suite v[TAM_TEEP_MAX_SUITES];
};

/* A SUIT COSE profile: 1..4 integers ([digest, auth, key-exch, enc]; draft12: [auth, enc]). */
struct tam_teep_profile {
    uint32_t n;
    int64_t v[TAM_TEEP_MAX_PROFILE_LEN];
};

struct tam_teep_profiles {
    uint32_t n;
    struct tam_teep_profile v[TAM_TEEP_MAX_PROFILES];
};

/*
 * A SUIT_Component_Identifier ([* bstr]). raw is the encoded array when decoded
 * (borrowed from the input; useful as a lookup key); the encoder always writes
 * the segments and ignores raw.
 */
struct tam_teep_component_id {
    uint32_t n;
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    struct tam_bytes raw;
};

/*
 * One tc-list entry. RFC/DRAFT: SUIT system-property-claims
 * {0: component-id, + SUIT parameters}; image_digest is the content of
 * parameter 3 (the encoded SUIT_Digest) when present. DRAFT12: tc-info
 * {component-id: id, ? tc-manifest-sequence-number: seq}.
 * raw is the whole encoded map. On encode, a non-empty raw is written verbatim
 * (it must be exactly one well-formed CBOR map, which the encoder checks);
 * otherwise the map is built from the fields.
 */
struct tam_teep_tc {
    struct tam_teep_component_id id;
    bool has_image_digest; /* RFC/DRAFT only */
    struct tam_bytes image_digest;
    bool has_seq; /* DRAFT12 only */
    uint64_t seq;
    struct tam_bytes raw;
};

/* One requested-tc-list entry (requested-tc-info). have_binary true requires has_seq. */
struct tam_teep_req_tc {
    struct tam_teep_component_id id;
    bool has_seq;
    uint64_t seq; /* tc-manifest-sequence-number */
    bool has_have_binary;
    bool have_binary;
};

/*
 * A TEEP message: the type and every option, with presence flags. Positional
 * fields: QueryRequest supported_suites/supported_profiles/data_item_requested
 * (has_* set by the decoder; required by the encoder, except that DRAFT12 may
 * omit profiles: a 4-element QueryRequest), Error err_code (always present).
 * In an Update, err_code is the err-code option (has_err_code).
 * Field <-> CDDL name: supported_suites supported-teep-cipher-suites,
 * selected_suite selected-teep-cipher-suite (DRAFT12, QueryResponse),
 * supported_profiles supported-suit-cose-profiles, freshness
 * supported-freshness-mechanisms, unneeded unneeded-manifest-list.
 */
struct tam_teep_msg {
    enum tam_teep_type type;

    bool has_token;
    struct tam_bytes token; /* 8..64 bytes */
    bool has_challenge;
    struct tam_bytes challenge; /* 8..512 bytes */
    bool has_versions;
    uint32_t n_versions;
    uint32_t *versions;
    bool has_selected_version;
    uint32_t selected_version;
    bool has_supported_suites;
    struct tam_teep_suites supported_suites;
    bool has_selected_suite;
    struct tam_teep_suite selected_suite;
    bool has_supported_profiles;
    struct tam_teep_profiles supported_profiles;
    bool has_data_item_requested;
    uint64_t data_item_requested; /* TAM_TEEP_DATA_* bits */
    bool has_freshness;
    uint32_t n_freshness;
    uint64_t *freshness; /* TAM_TEEP_FRESHNESS_* */
    bool has_attestation_payload_format;
    struct tam_bytes attestation_payload_format; /* UTF-8 text */
    bool has_attestation_payload;
    struct tam_bytes attestation_payload;
    bool has_suit_reports;
    uint32_t n_suit_reports;
    struct tam_bytes *suit_reports; /* content of each bstr */
    bool has_tc_list;
    uint32_t n_tc_list;
    struct tam_teep_tc *tc_list;
    bool has_requested_tc_list;
    uint32_t n_requested_tc_list;
    struct tam_teep_req_tc *requested_tc_list;
    bool has_unneeded;
    uint32_t n_unneeded;
    struct tam_teep_component_id *unneeded;
    bool has_ext_list;
    uint32_t n_ext_list;
    uint32_t *ext_list;
    bool has_manifest_list;
    uint32_t n_manifest_list;
    struct tam_bytes *manifest_list; /* content of each bstr: a SUIT_Envelope's bytes */
    bool has_msg;
    struct tam_bytes msg; /* 1..128 bytes UTF-8 */
    bool has_err_msg;
    struct tam_bytes err_msg; /* 1..128 bytes UTF-8 */
    bool has_err_lang;
    struct tam_bytes err_lang; /* 1..35 bytes UTF-8 */
    bool has_err_code;
    uint32_t err_code; /* logical (enum tam_teep_err_code or UNKNOWN_BASE + wire), != 0 */
};

/* Zeroes *msg and sets its type. */
void tam_teep_msg_init(struct tam_teep_msg *msg, enum tam_teep_type type);

/*
 * Decodes a bare TEEP message (buf must hold exactly one CBOR item) in the given
 * numbering into *msg (overwritten). Spans in *msg borrow buf; lists come from
 * arena. On failure *why (if non-NULL) is set to a static reason naming the rule
 * (and the option), and the return is TAM_ETEEP (malformed message),
 * TAM_ETEEP_TYPE (type unknown in the numbering), TAM_ENOMEM (arena or heap
 * exhausted), or the CBOR reader's error (TAM_ECBOR, TAM_ECBOR_LIMIT, TAM_ETOOBIG).
 * *msg is unspecified after a failure.
 */
TAM_MUST_CHECK int tam_teep_decode(const uint8_t *buf, size_t len, enum tam_teep_numbering num,
                                   struct tam_arena *arena, struct tam_teep_msg *msg,
                                   const char **why);

/*
 * Checks a message against the rules the encoder enforces (the same value rules
 * the decoder enforces): presence of positional fields, options allowed for the
 * type and numbering, sizes, UTF-8, list bounds, err-code. TAM_OK or TAM_EINVAL
 * with a static *why. (A tc-list raw map is fully checked only by the encoder.)
 */
TAM_MUST_CHECK int tam_teep_validate(const struct tam_teep_msg *msg, enum tam_teep_numbering num,
                                     const char **why);

/*
 * Appends the deterministic encoding (shortest heads, option keys in ascending
 * order) of msg in the given numbering to out. TAM_EINVAL if msg is invalid
 * (call tam_teep_validate for the reason), TAM_ETOOBIG if out's ceiling is hit,
 * TAM_ENOMEM. On failure out->len is restored.
 */
TAM_MUST_CHECK int tam_teep_encode(const struct tam_teep_msg *msg, enum tam_teep_numbering num,
                                   struct tam_buf *out);

/*
 * The standard QueryRequest lists. Suites: [[[18,-9]],[[18,-19]]] (ESP256,
 * Ed25519) for RFC/DRAFT, [[[18,-7]],[[18,-8]]] (ES256, EdDSA) for DRAFT12.
 * Profiles: the four TEEP MTI SUIT COSE profiles for RFC/DRAFT; for DRAFT12
 * the two-element [-7, 1] and [-8, 1] (auth alg, A128GCM).
 */
void tam_teep_suites_default(enum tam_teep_numbering num, struct tam_teep_suites *out);
void tam_teep_profiles_default(enum tam_teep_numbering num, struct tam_teep_profiles *out);

/* A suite of a single operation [cose_type, alg]. */
void tam_teep_suite_single(struct tam_teep_suite *out, int64_t cose_type, int64_t alg);
/* True if the suite contains the operation [cose_type, alg]. */
bool tam_teep_suite_has_alg(const struct tam_teep_suite *suite, int64_t cose_type, int64_t alg);
/* True if some suite in the list contains the operation [cose_type, alg]. */
bool tam_teep_suites_has_alg(const struct tam_teep_suites *suites, int64_t cose_type, int64_t alg);
/*
 * Picks the first suite, in the peer's order, that is a single Sign1 operation
 * whose algorithm is one of ours (algs[0..n)). TAM_OK and *alg, or TAM_ENOTFOUND.
 */
TAM_MUST_CHECK int tam_teep_suites_pick_sign1(const struct tam_teep_suites *suites,
                                              const int64_t *algs, size_t n, int64_t *alg);

#endif
