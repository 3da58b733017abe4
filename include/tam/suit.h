/*
 * SUIT for the TAM (draft-ietf-suit-manifest-37, draft-ietf-suit-trust-domains-11,
 * draft-ietf-suit-report-18): index and authenticate stored envelopes, build and
 * sign the three TEEP Update scenarios, and decode/encode SUIT reports.
 * Pure: no I/O, no globals, no clock, no logging.
 *
 * Parsing is read-only and zero-copy: every struct tam_bytes points into the
 * caller's buffer, which must outlive the struct. A stored envelope is never
 * re-encoded (that would break its digest and signature). Every list is bounded
 * by the TAM_SUIT_MAX_* constants below; more entries fail with TAM_ETOOBIG.
 *
 * Errors: TAM_ECBOR (input is not well-formed CBOR), TAM_ESUIT (well-formed but
 * not a valid envelope/report), TAM_ETOOBIG (a bound was exceeded), TAM_ENOMEM,
 * TAM_ESUIT_DIGEST (digest mismatch), TAM_ESIG (no auth block verifies). On
 * failure *why (when why is non-NULL) names the rule that failed (static text).
 */
#ifndef TAM_SUIT_H
#define TAM_SUIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/common.h"
#include "tam/cose.h"
#include "tam/crypto.h"

#define TAM_SUIT_TAG_ENVELOPE 107
#define TAM_SUIT_TAG_MANIFEST 1070

#define TAM_SUIT_MAX_ENVELOPE    (16u << 20) /* bytes of one envelope (integrated payloads!) */
#define TAM_SUIT_MAX_AUTH        4           /* authentication blocks */
#define TAM_SUIT_MAX_COMPONENTS  8           /* entries of suit-components */
#define TAM_SUIT_MAX_SEGMENTS    8           /* bstr segments of one component identifier */
#define TAM_SUIT_MAX_DEPS        4           /* entries of suit-dependencies */
#define TAM_SUIT_MAX_INTEGRATED  8           /* text-keyed envelope members */
#define TAM_SUIT_MAX_MANIFEST_ID 8           /* SUIT_Record manifest-id path length */
#define TAM_SUIT_MAX_RECORDS     64          /* records of one SUIT report */

/* Manifest (and severed envelope member) keys; the section numbers of SUIT_Record too. */
enum tam_suit_key {
    TAM_SUIT_AUTH_WRAPPER = 2, /* envelope */
    TAM_SUIT_MANIFEST = 3,     /* envelope */
    TAM_SUIT_VERSION = 1,
    TAM_SUIT_SEQUENCE = 2,
    TAM_SUIT_COMMON = 3,
    TAM_SUIT_REFERENCE_URI = 4,
    TAM_SUIT_MANIFEST_COMPONENT_ID = 5,
    TAM_SUIT_VALIDATE = 7,
    TAM_SUIT_LOAD = 8,
    TAM_SUIT_INVOKE = 9,
    TAM_SUIT_DEPENDENCY_RESOLUTION = 15,
    TAM_SUIT_PAYLOAD_FETCH = 16,
    TAM_SUIT_CANDIDATE_VERIFICATION = 18,
    TAM_SUIT_INSTALL = 20,
    TAM_SUIT_TEXT = 23,
    TAM_SUIT_UNINSTALL = 24,
};

/* SUIT_Digest. Only SHA-256 (-16) is checked; other algorithms are indexed as found. */
struct tam_suit_digest {
    int64_t alg;
    struct tam_bytes bytes;
};

/* SUIT_Component_Identifier: [* bstr]. */
struct tam_suit_component_id {
    unsigned n;
    struct tam_bytes seg[TAM_SUIT_MAX_SEGMENTS];
    struct tam_bytes raw; /* the encoded array */
};

/*
 * Parameters of one component, as set by override-parameters (20) and
 * set-parameters (19, only fills unset ones) in the sequences walked. A vendor
 * id given as CBOR PEN (tag 112) is stored without its tag (vendor_id_pen).
 */
struct tam_suit_params {
    bool has_vendor_id, vendor_id_pen, has_class_id, has_image_digest, has_image_size, has_uri;
    struct tam_bytes vendor_id;
    struct tam_bytes class_id;
    struct tam_suit_digest image_digest;
    uint64_t image_size;
    struct tam_bytes uri; /* tstr content */
};

/* One entry of suit-dependencies (common key 1), plus what dependency-resolution sets. */
struct tam_suit_dependency {
    uint64_t index; /* the component index the dependency occupies */
    bool has_prefix;
    struct tam_suit_component_id prefix; /* dependency-prefix (1) */
    /* Set for this index by the shared and dependency-resolution sequences: digest = the
     * dependency's manifest digest, uri = where to fetch it ("#key" = integrated). */
    struct tam_suit_params params;
    int integrated; /* index into envelope.integrated[] when uri names one, else -1 */
};

/*
 * A command sequence or text member. Severable members may be replaced in the
 * manifest by a SUIT_Digest (severed) while the member itself sits in the
 * envelope under the same key, or is absent (then seq is empty).
 */
struct tam_suit_member {
    bool present;                  /* the manifest mentions it */
    bool severed;                  /* the manifest holds its digest */
    bool available;                /* its bytes are at hand (in the manifest or in the envelope) */
    struct tam_suit_digest digest; /* when severed */
    struct tam_bytes bstr;         /* encoded bstr, head included (what the digest covers) */
    struct tam_bytes seq;          /* its content: encoded SUIT_Command_Sequence / SUIT_Text_Map */
};

/* A text-keyed envelope member: integrated payload or integrated dependency. */
struct tam_suit_integrated {
    struct tam_bytes key;  /* e.g. "#tc" */
    struct tam_bytes data; /* the bstr content */
    bool is_dependency;    /* a dependency-resolution uri of this manifest names it */
};

struct tam_suit_envelope {
    bool tagged;          /* tag 107 was present */
    struct tam_bytes raw; /* the whole input */

    /* Authentication wrapper (envelope key 2). */
    struct tam_suit_digest digest; /* auth[0]: digest of the bstr-wrapped manifest */
    struct tam_bytes digest_bstr;  /* auth[0]'s content, the encoded SUIT_Digest: this is the
                                    * detached payload of the COSE auth blocks */
    unsigned nauth;                /* 0 for an unsigned envelope (it parses, but never verifies) */
    struct tam_bytes auth[TAM_SUIT_MAX_AUTH]; /* each block's content: a COSE message */

    /* Manifest (envelope key 3). */
    struct tam_bytes manifest_bstr; /* the encoded bstr, head included: the digest input */
    struct tam_bytes manifest;      /* its content, the encoded SUIT_Manifest */
    uint64_t version;               /* always 1 after a successful parse */
    uint64_t sequence;
    bool has_reference_uri;
    struct tam_bytes reference_uri;
    bool has_manifest_component_id;
    struct tam_suit_component_id manifest_component_id;

    /* suit-common (manifest key 3). */
    struct tam_bytes common; /* content of the common bstr */
    unsigned ncomponents;
    struct tam_suit_component_id components[TAM_SUIT_MAX_COMPONENTS];
    unsigned ndeps;
    struct tam_suit_dependency deps[TAM_SUIT_MAX_DEPS];
    bool has_shared;
    struct tam_bytes shared; /* shared-sequence content */

    struct tam_suit_member validate, load, invoke, dependency_resolution, payload_fetch,
        candidate_verification, install, text, uninstall;

    unsigned nintegrated;
    struct tam_suit_integrated integrated[TAM_SUIT_MAX_INTEGRATED];

    /* Convenience: component 0's parameters after the shared, payload-fetch and install
     * sequences (in this order; run-sequence followed one level, try-each not entered). */
    struct tam_suit_params first;
};

/*
 * Parses and indexes a SUIT_Envelope, tagged (107) or not. Checks the structure
 * (version 1, auth wrapper before the manifest, severed members consistent),
 * not the digest or signatures: call tam_suit_verify before trusting anything.
 */
TAM_MUST_CHECK int tam_suit_parse(const uint8_t *buf, size_t len, struct tam_suit_envelope *env,
                                  const char **why);

/* The manifest member with that key (TAM_SUIT_INSTALL ...), or NULL for another key. */
const struct tam_suit_member *tam_suit_member(const struct tam_suit_envelope *env, int key);
/* The integrated member with that text key, or NULL. */
const struct tam_suit_integrated *tam_suit_integrated(const struct tam_suit_envelope *env,
                                                      const char *key);

/*
 * TAM_OK when SHA-256 over the bstr-wrapped manifest equals the auth[0] digest and
 * every severed member present in the envelope matches the digest the manifest
 * holds for it; TAM_ESUIT_DIGEST otherwise; TAM_ESUIT when the algorithm is not
 * SHA-256 (-16).
 */
TAM_MUST_CHECK int tam_suit_check_digest(const struct tam_suit_envelope *env);
/*
 * tam_suit_check_digest, then TAM_OK if at least one COSE_Sign1/COSE_Sign auth block
 * (detached payload = env->digest_bstr) verifies with one of the n anchors (borrowed);
 * TAM_ESIG otherwise (kids are hints only: every signer is tried with every anchor).
 */
TAM_MUST_CHECK int tam_suit_verify(const struct tam_suit_envelope *env,
                                   const struct tam_key *const *anchors, size_t n);
/* SHA-256 over the bstr-wrapped manifest (what auth[0] should hold). */
void tam_suit_manifest_digest(const struct tam_suit_envelope *env, uint8_t out[TAM_SHA256_LEN]);

/* ---- building (deterministic: the same params and key give the same bytes) ---- */

enum tam_suit_build_kind {
    /* The device fetches the payload from uri (TEEP App. E scenario 1). */
    TAM_SUIT_BUILD_URI = 1,
    /* The payload travels in the envelope under the text key uri (default "#tc") and
     * install fetches that key (scenario 2). */
    TAM_SUIT_BUILD_INTEGRATED = 2,
    /* The payload (plain, or encrypted with encryption_info) is parameter content (18)
     * and install writes it; validate checks the plaintext digest (scenario 3). */
    TAM_SUIT_BUILD_CONTENT = 3,
};

/* A dependency on another manifest (TD): it occupies component index ncomponents = 1. */
struct tam_suit_build_dep {
    const struct tam_bytes *prefix; /* its manifest-component-id segments (borrowed) */
    size_t nprefix;
    const uint8_t *digest; /* its manifest digest, SHA-256 (32 bytes) */
    uint64_t size;         /* its envelope size, for image-size */
    const char *uri;       /* where the device fetches it */
};

struct tam_suit_build_params {
    enum tam_suit_build_kind kind;
    bool tagged;                          /* emit tag 107 (TEEP sends untagged envelopes) */
    const struct tam_bytes *component_id; /* segments (borrowed), 1..TAM_SUIT_MAX_SEGMENTS */
    size_t ncomponent_id;
    /* manifest-component-id; when nmanifest_component_id is 0 it is derived from the
     * component id with its last segment replaced by 'suit' (as in the TEEP examples:
     * [..., 'ta'] -> [..., 'suit']). */
    const struct tam_bytes *manifest_component_id;
    size_t nmanifest_component_id;
    const uint8_t *vendor_id; /* 16 bytes, or NULL: no vendor parameter/condition */
    const uint8_t *class_id;  /* 16 bytes, or NULL */
    uint64_t sequence;
    const char *reference_uri; /* manifest key 4, or NULL */
    /* The payload's SHA-256 and size. NULL image_digest: computed from payload (for
     * CONTENT with encryption_info the caller must give the plaintext's). */
    const uint8_t *image_digest;
    uint64_t image_size;
    struct tam_bytes payload; /* INTEGRATED: the payload; CONTENT: the (encrypted) content */
    struct tam_bytes encryption_info; /* CONTENT: encoded SUIT_Encryption_Info, opaque; or empty */
    const char *uri; /* URI: payload URI (required); INTEGRATED: envelope key (NULL = "#tc") */
    const struct tam_suit_build_dep *dependency; /* optional */
    bool uninstall; /* add suit-uninstall = [unlink] (after processing the dependency, if any) */
};

/*
 * Builds the manifest, signs it (COSE_Sign1_Tagged, protected {1: alg}, unprotected {},
 * detached payload) with signer (borrowed) and appends the canonical envelope to out.
 * alg must fit the key (-7/-9 for P-256, -8/-19 for Ed25519).
 */
TAM_MUST_CHECK int tam_suit_build(const struct tam_suit_build_params *p,
                                  const struct tam_key *signer, int alg, struct tam_buf *out);

/* ---- SUIT reports (draft-ietf-suit-report-18) ---- */

enum tam_suit_reason {
    TAM_SUIT_REASON_OK = 0,
    TAM_SUIT_REASON_CBOR_PARSE = 1,
    TAM_SUIT_REASON_COSE_UNSUPPORTED = 2,
    TAM_SUIT_REASON_ALG_UNSUPPORTED = 3,
    TAM_SUIT_REASON_UNAUTHORISED = 4,
    TAM_SUIT_REASON_COMMAND_UNSUPPORTED = 5,
    TAM_SUIT_REASON_COMPONENT_UNSUPPORTED = 6,
    TAM_SUIT_REASON_COMPONENT_UNAUTHORISED = 7,
    TAM_SUIT_REASON_PARAMETER_UNSUPPORTED = 8,
    TAM_SUIT_REASON_SEVERING_UNSUPPORTED = 9,
    TAM_SUIT_REASON_CONDITION_FAILED = 10,
    TAM_SUIT_REASON_OPERATION_FAILED = 11,
    TAM_SUIT_REASON_INVOKE_PENDING = 12,
};

/* "ok", "cbor-parse", ..., "invoke-pending"; "unknown" for other values. */
const char *tam_suit_reason_name(uint64_t reason);

/*
 * A SUIT_Record ([manifest-id, section, offset, component-index, properties]) or,
 * with is_system, a system-property-claims map ({0: component-id, + params}).
 * Encoding uses the parsed fields of a SUIT_Record (properties: raw encoded map,
 * empty = {}), and raw for a system-property-claims map.
 */
struct tam_suit_record {
    bool is_system;
    struct tam_bytes raw; /* the encoded record */
    unsigned manifest_id_len;
    uint64_t manifest_id[TAM_SUIT_MAX_MANIFEST_ID];
    int64_t section; /* a tam_suit_key of a sequence (7, 8, 9, 15, 16, 18, 20) */
    uint64_t offset; /* byte offset in that command sequence */
    uint64_t component_index;
    struct tam_bytes properties; /* encoded map of $$SUIT_Parameters */
    /* Decoded for convenience (both kinds; values of the wrong type are ignored). */
    struct tam_suit_params params;
    struct tam_suit_component_id system_component_id; /* is_system only */
};

struct tam_suit_report {
    struct tam_bytes reference_uri;         /* suit-reference[0] */
    struct tam_suit_digest manifest_digest; /* suit-reference[1] */
    bool has_nonce;
    struct tam_bytes nonce;
    size_t nrecords;
    struct tam_suit_record *records; /* decode: allocated from the arena */
    bool success;                    /* result true; otherwise the three below */
    int64_t result_code;
    struct tam_suit_record result_record;
    uint64_t result_reason; /* enum tam_suit_reason */
    bool has_capability;
    struct tam_bytes capability_report; /* encoded SUIT_Capability_Report, opaque */
    /* Decode only: whether it came in a COSE_Sign1 (tag 18 or untagged). The caller
     * verifies cose with the device's report key (tam_cose_verify_any). */
    bool is_signed;
    struct tam_cose_msg cose;
    struct tam_bytes report; /* the encoded bare SUIT_Report */
};

/*
 * Decodes a bare SUIT_Report or a COSE_Sign1 (attached payload) holding one. Spans
 * point into buf; the records array comes from arena (borrowed; may be NULL only
 * when there are no records). Rejects COSE_Mac0, an encrypted payload, and the
 * obsolete layout of the TEEP draft's Appendix F ({1: digest, 2: uri, 4: records})
 * with TAM_ESUIT and a reason.
 */
TAM_MUST_CHECK int tam_suit_report_decode(const uint8_t *buf, size_t len, struct tam_arena *arena,
                                          struct tam_suit_report *report, const char **why);
/* Appends the bare report, deterministically encoded, to out. */
TAM_MUST_CHECK int tam_suit_report_encode(const struct tam_suit_report *report,
                                          struct tam_buf *out);
/* Appends COSE_Sign1_Tagged(payload = the bare report) signed with key/alg to out. */
TAM_MUST_CHECK int tam_suit_report_encode_signed(const struct tam_suit_report *report,
                                                 const struct tam_key *key, int alg,
                                                 struct tam_buf *out);

#endif
