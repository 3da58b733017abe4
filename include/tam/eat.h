/*
 * Entity Attestation Tokens (RFC 9711) as profiled by TEEP (draft-ietf-teep-protocol section 5):
 * decode a claims set, verify a COSE_Sign1-signed EAT, apply the TEEP profile checks and a
 * tenant's claim policy, and build signed EATs (for the simulated device fleet and tests).
 *
 * Pure code: no I/O, no globals, no clock -- every time comparison takes `now` from the caller.
 *
 * Attestation Results (passport and background-check models) are EATs too, signed by a Verifier
 * key instead of an Attester key: use tam_eat_verify() with the trusted Verifier keys. For an AR
 * in the passport model the nonce to compare (tam_eat_expect.nonce) is the token of the
 * QueryRequest; in the background-check model it is the QueryRequest challenge.
 *
 * Error codes: TAM_ECBOR / TAM_ECBOR_LIMIT / TAM_ETOOBIG for input that is not well-formed CBOR
 * within limits (duplicate map keys and trailing bytes included), TAM_EEAT for well-formed CBOR
 * whose claims break the types and sizes below, TAM_ECOSE for a bad COSE envelope, TAM_ESIG when
 * no trusted key verifies the signature, TAM_EEXPIRED for stale tokens, TAM_EDENIED for a policy
 * refusal. Every failure also sets *why (when non-NULL) to a static reason string.
 */
#ifndef TAM_EAT_H
#define TAM_EAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"

/* Claim keys (RFC 9711 / RFC 8392 CWT). */
enum tam_eat_label {
    TAM_EAT_L_ISS = 1,
    TAM_EAT_L_EXP = 4,
    TAM_EAT_L_NBF = 5,
    TAM_EAT_L_IAT = 6,
    TAM_EAT_L_CTI = 7,
    TAM_EAT_L_CNF = 8,
    TAM_EAT_L_NONCE = 10,
    TAM_EAT_L_UEID = 256,
    TAM_EAT_L_OEMID = 258,
    TAM_EAT_L_HWMODEL = 259,
    TAM_EAT_L_HWVERSION = 260,
    TAM_EAT_L_DBGSTAT = 263,
    TAM_EAT_L_PROFILE = 265,
    TAM_EAT_L_SUBMODS = 266, /* accepted and ignored */
    TAM_EAT_L_SWNAME = 270,
    TAM_EAT_L_MANIFESTS = 272,
    TAM_EAT_L_MEASUREMENTS = 273,
};

/* Presence bits in tam_eat_claims.present. */
enum tam_eat_has {
    TAM_EAT_HAS_ISS = 1u << 0,
    TAM_EAT_HAS_EXP = 1u << 1,
    TAM_EAT_HAS_NBF = 1u << 2,
    TAM_EAT_HAS_IAT = 1u << 3,
    TAM_EAT_HAS_CTI = 1u << 4,
    TAM_EAT_HAS_CNF = 1u << 5,
    TAM_EAT_HAS_NONCE = 1u << 6,
    TAM_EAT_HAS_UEID = 1u << 7,
    TAM_EAT_HAS_OEMID = 1u << 8,
    TAM_EAT_HAS_HWMODEL = 1u << 9,
    TAM_EAT_HAS_HWVERSION = 1u << 10,
    TAM_EAT_HAS_DBGSTAT = 1u << 11,
    TAM_EAT_HAS_PROFILE = 1u << 12,
    TAM_EAT_HAS_SWNAME = 1u << 13,
    TAM_EAT_HAS_MANIFESTS = 1u << 14,
    TAM_EAT_HAS_MEASUREMENTS = 1u << 15,
};

/* The TEEP EAT profile identifier (draft-ietf-teep-protocol section 5, until an RFC number). */
#define TAM_EAT_PROFILE_TEEP "urn:ietf:rfc:rfcXXXX"

#define TAM_EAT_NONCE_MIN   8
#define TAM_EAT_NONCE_MAX   64
#define TAM_EAT_UEID_MIN    7
#define TAM_EAT_UEID_MAX    33
#define TAM_EAT_HWMODEL_MAX 32
#define TAM_EAT_KID_MAX     64 /* a cnf kid longer than this is refused */
#define TAM_EAT_MAX_ENTRIES 16 /* manifests / measurements entries kept (more: TAM_EEAT) */
#define TAM_EAT_MAX_SIZE    (256u << 10) /* claims set and signed EAT size ceiling */

/* dbgstat values (RFC 9711 section 4.2.9): larger means more locked down. */
enum tam_eat_dbgstat {
    TAM_EAT_DBG_ENABLED = 0,
    TAM_EAT_DBG_DISABLED = 1,
    TAM_EAT_DBG_DISABLED_SINCE_BOOT = 2,
    TAM_EAT_DBG_DISABLED_PERMANENTLY = 3,
    TAM_EAT_DBG_DISABLED_FULLY_PERMANENTLY = 4,
};

enum tam_eat_cnf_form {
    TAM_EAT_CNF_NONE = 0,
    TAM_EAT_CNF_KID = 1,      /* {3: kid} (RFC 8747 section 3.4) */
    TAM_EAT_CNF_COSE_KEY = 2, /* {1: COSE_Key}: cnf_kid is its RFC 9679 thumbprint */
};

/* oemid: a PEN (int) or an IEEE OUI (bstr of 3) or a random id (bstr of 16). */
struct tam_eat_oemid {
    bool is_pen;
    int64_t pen;         /* when is_pen */
    struct tam_bytes id; /* when !is_pen: 3 or 16 bytes */
};

/* One manifests / measurements entry: [content-format, body]. */
struct tam_eat_entry {
    uint64_t content_format; /* CoAP Content-Format, 0..65535 */
    bool body_is_cbor;       /* false: body is the bstr content; true: body is a raw CBOR item */
    struct tam_bytes body;
};

/*
 * A decoded claims set. Every tam_bytes span is borrowed from the decoded input, which must
 * outlive the struct; cnf_kid is copied (it may be computed). The struct can be copied freely.
 * Absent claims have their TAM_EAT_HAS_* bit clear and zero fields.
 * For tam_eat_build() fill in the fields and set the bits of the claims to emit.
 */
struct tam_eat_claims {
    uint32_t present;     /* TAM_EAT_HAS_* */
    struct tam_bytes raw; /* the whole encoded claims-set map */
    struct tam_bytes iss; /* 1: tstr */
    int64_t exp;          /* 4: integer seconds (TEEP profile: CBOR int only, no floats) */
    int64_t nbf;          /* 5: integer seconds */
    int64_t iat;          /* 6: integer seconds */
    struct tam_bytes cti; /* 7: bstr */
    enum tam_eat_cnf_form cnf_form;   /* 8 */
    uint8_t cnf_kid[TAM_EAT_KID_MAX]; /* the kid, or the thumbprint of the COSE_Key */
    size_t cnf_kid_len;
    struct tam_bytes cnf_key;   /* COSE_Key form: the encoded COSE_Key map */
    struct tam_bytes nonce;     /* 10: a single bstr of 8..64 bytes (TEEP profile) */
    struct tam_bytes ueid;      /* 256: bstr 7..33, first byte 0x01/0x02/0x03 */
    struct tam_eat_oemid oemid; /* 258 */
    struct tam_bytes hwmodel;   /* 259: bstr 1..32 */
    struct tam_bytes hwversion; /* 260: [tstr, ?int]: the text */
    bool hwversion_has_scheme;
    int64_t hwversion_scheme; /* the CoSWID version-scheme, when present */
    uint8_t dbgstat;          /* 263: 0..4 */
    bool profile_is_oid;      /* 265: false: tstr URI; true: bstr (unwrapped OID) */
    struct tam_bytes profile;
    struct tam_bytes swname; /* 270: tstr */
    size_t n_manifests;      /* 272 */
    struct tam_eat_entry manifests[TAM_EAT_MAX_ENTRIES];
    size_t n_measurements; /* 273 */
    struct tam_eat_entry measurements[TAM_EAT_MAX_ENTRIES];
};

/*
 * Decodes an unprotected claims set (one CBOR map spanning claims[0..len)) into *out.
 * Integer-labelled claims listed above are type- and size-checked; other integer or text labels
 * are ignored (submods 266 included); a label of any other type is refused. Deliberate
 * narrowings of RFC 9711 for the TEEP profile: times must be CBOR integers (floats refused);
 * eat_nonce must be a single bstr (the EAT array form is refused); cnf must hold exactly one of
 * {3: kid} or {1: COSE_Key} (EC2 P-256 with x and y, or OKP Ed25519, public only).
 * Returns TAM_OK, TAM_ECBOR* (see above), TAM_EEAT or TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_eat_decode(const uint8_t *claims, size_t len, struct tam_eat_claims *out,
                                  const char **why);

/*
 * Verifies a signed EAT or Attestation Result: a COSE_Sign1, tagged (18) or not, optionally
 * inside a CWT tag (61), with an attached payload. When the signature carries a kid, only the
 * keys whose RFC 9679 thumbprint equals it are tried; otherwise every key is tried. keys are
 * borrowed. Then decodes the payload as a claims set into *out (spans point into buf).
 * Returns TAM_OK, TAM_ECOSE (bad envelope), TAM_ESIG (no trusted key verifies it: unknown kid,
 * no key for the alg, or bad signature), or the tam_eat_decode() errors for the payload.
 */
TAM_MUST_CHECK int tam_eat_verify(const uint8_t *buf, size_t len, const struct tam_key *const *keys,
                                  size_t n, struct tam_eat_claims *out, const char **why);

/* What the TEEP profile check compares against. Zeroed fields disable their check. */
struct tam_eat_expect {
    struct tam_bytes nonce;   /* expected eat_nonce (challenge, or token for passport ARs) */
    struct tam_bytes cnf_kid; /* expected cnf key id: RFC 9679 thumbprint of the Agent key */
    const char *profile;      /* expected eat_profile URI when the claim is present, e.g.
                                 TAM_EAT_PROFILE_TEEP; NULL = not checked */
    bool require_manifests;   /* manifests (272) required; off by default because deployed
                                 Agents still send it under 273 (see the draft's example) */
    int64_t now;              /* the caller's clock, seconds since the epoch */
    uint32_t skew;            /* allowed clock skew, seconds */
    uint32_t max_age;         /* > 0: iat is required and must be no older than this */
};

/*
 * The TEEP profile checks, in this order: required claims (ueid, oemid, hwmodel, hwversion,
 * cnf, and manifests when e->require_manifests); eat_nonce equals e->nonce (constant time) when
 * given; cnf kid equals e->cnf_kid when given; eat_profile, if present, is the URI e->profile;
 * nbf/iat not in the future and exp not passed (with e->skew), iat age vs e->max_age.
 * Returns TAM_OK, TAM_EEAT (with a distinct reason per failure) or TAM_EEXPIRED.
 */
TAM_MUST_CHECK int tam_eat_check_teep(const struct tam_eat_claims *c,
                                      const struct tam_eat_expect *e, const char **why);

/*
 * A tenant's allowed claim values. An empty list (n == 0) allows any value, even an absent
 * claim; a non-empty list requires the claim and one matching entry. hwversions compare the
 * hwversion text only. min_dbgstat <= 0 allows any (or no) dbgstat; otherwise dbgstat must be
 * present and >= min_dbgstat, e.g. TAM_EAT_DBG_DISABLED_SINCE_BOOT (2). A zeroed policy allows
 * everything. All lists are borrowed.
 */
struct tam_eat_policy {
    const struct tam_eat_oemid *oemids;
    size_t n_oemids;
    const struct tam_bytes *hwmodels;
    size_t n_hwmodels;
    const char *const *hwversions; /* NUL-terminated texts */
    size_t n_hwversions;
    int min_dbgstat; /* minimum dbgstat (higher = more locked down); <= 0: any */
};

/* TAM_OK, or TAM_EDENIED with a reason naming the claim. */
TAM_MUST_CHECK int tam_eat_check_policy(const struct tam_eat_claims *c,
                                        const struct tam_eat_policy *p, const char **why);

/*
 * Appends the deterministic claims map (keys in increasing order) of the claims whose bits are
 * set in c->present; cnf is {3: cnf_kid}, or {1: cnf_key} when cnf_form is COSE_KEY;
 * manifests/measurements are [[content-format, body]] with body a bstr (or the raw CBOR item
 * when body_is_cbor). The result is re-decoded, so nothing tam_eat_decode() refuses is emitted
 * (TAM_EEAT). raw is ignored.
 */
TAM_MUST_CHECK int tam_eat_encode_claims(const struct tam_eat_claims *c, struct tam_buf *out);

/*
 * Builds a signed EAT: the claims map as above, in a tagged (18) COSE_Sign1 with protected
 * {1: alg} and unprotected {4: the attester key's RFC 9679 thumbprint}, appended to out.
 * alg 0 selects the key's default (ESP256 -9 / Ed25519 -19). Deterministic for a given input
 * (Ed25519 and RFC 6979 ECDSA). The attester key is borrowed and must hold a private key.
 */
TAM_MUST_CHECK int tam_eat_build(const struct tam_eat_claims *c, const struct tam_key *attester,
                                 int alg, struct tam_buf *out);

#endif
