/*
 * tam-agent core: a simulated TEEP Agent (one device), the pure part.
 * No I/O, no event loop, no clock (time is a parameter), no globals. The fleet
 * glue (src/agent/fleet.c ...) carries the messages over HTTP; this module only
 * turns a TAM message into the device's answer.
 *
 * A device has its own TEEP key (P-256 or Ed25519) whose RFC 9679 thumbprint is
 * its kid, a UEID, and an in-memory store of installed Trusted Components (TCs),
 * keyed by manifest component id. Every device of a fleet shares one profile:
 * the TEEP numbering, the trusted TAM keys, the trusted TC-signer keys and the
 * fleet attester key that signs the devices' EAT Evidence.
 *
 * Handling a TAM message (TP 7.2):
 *   1. COSE: the message must be a COSE_Sign1 or COSE_Sign (tagged or not) that
 *      verifies with one of the trusted TAM keys (a signer kid, when present, must
 *      equal the key's thumbprint). Otherwise: fail TAM_AGENT_BAD_SIGNATURE.
 *   2. TEEP: the payload is decoded in the profile's numbering.
 *   3. QueryRequest -> QueryResponse signed with COSE_Sign1 in the first suite of
 *      the TAM's list that the device key supports (ESP256 -9 / Ed25519 -19; in
 *      the draft12 numbering the legacy ids -7 / -8), with the device kid in the
 *      unprotected header. It echoes the token and carries, as requested:
 *      attestation-payload = an EAT (tam_eat_build) signed by the attester key,
 *      eat_nonce = the challenge (or the token when there is no challenge),
 *      ueid, oemid, hwmodel, hwversion, dbgstat, eat_profile, iat, manifests
 *      (one entry describing the agent) and cnf = the COSE_Key of the device
 *      key; tc-list = the installed TCs as system-property-claims (component id
 *      and image digest) -- the agent itself is always listed as a built-in
 *      component, because a device always holds its Agent and the RFC numbering
 *      cannot encode an empty tc-list; requested-tc-list and
 *      unneeded-manifest-list from the device's scenario; suit-reports (one per
 *      installed TC, nonce = token) when the suit-reports bit is set.
 *      No usable suite -> Error ERR_UNSUPPORTED_CIPHER_SUITES listing ours;
 *      versions without 0 -> ERR_UNSUPPORTED_MSG_VERSION; freshness mechanisms
 *      without nonce -> ERR_UNSUPPORTED_FRESHNESS_MECHANISMS.
 *   4. Update -> first every manifest of unneeded-manifest-list is unlinked (an
 *      id that is not installed is already unlinked: not an error), then each
 *      SUIT envelope of manifest-list is parsed and verified (digest and
 *      signature against the trusted TC-signer keys), checked against rollback
 *      (a sequence number <= the installed one for that manifest component id is
 *      refused), and its payload is taken from the integrated member ("#key"),
 *      from parameter content (18), from a binary the device declared it holds
 *      (have-binary), or fetched from its URI (see "Fetching" below); the image
 *      digest and size are checked when the manifest gives them. A manifest whose
 *      install sequence only unlinks deletes its TC. Dependencies must already be
 *      installed (by manifest digest; earlier manifests of the same Update count)
 *      or be integrated. Every manifest that passes is installed, even when
 *      another fails. The answer is Success when all passed, else Error
 *      ERR_MANIFEST_PROCESSING_FAILED; both carry one SUIT report per manifest
 *      (nonce = the Update's token, reference = [reference-uri or "", manifest
 *      digest], result true or {code, record, reason}). An err-code in the Update
 *      (any value, unknown ones included) is reported in the outcome and does not
 *      stop the processing.
 *   5. A message that fails step 1 or 2, or whose type an Agent does not accept,
 *      is answered (TP 1.5: "the Agent replies with an Error") with Error
 *      ERR_PERMANENT_ERROR, echoing the token when the payload could be read,
 *      unless the profile sets drop_invalid (then nothing is sent).
 *
 * SUIT reports travel bare inside the signed TEEP message. SUIT-report section 8
 * asks for an authenticated container, and the COSE_Sign1 of the Success/Error
 * that holds them authenticates them with the device key; TEEP 4.3 additionally
 * asks for a report key distinct from the TEEP key when reports are signed on
 * their own, which this agent does not do, so no second device key is needed.
 *
 * Fetching. Processing is split in steps so that the glue can fetch URI payloads
 * asynchronously: tam_agent_handle() verifies and decodes, and for an Update
 * parses and verifies every envelope and lists the URIs it needs; the glue
 * fetches them (HTTP GET) and hands each result to tam_agent_step_supply() or
 * tam_agent_step_fetch_failed(); tam_agent_step_finish() then applies the
 * changes and writes the answer. tam_agent_on_message() does the same in one call
 * with a synchronous fetch callback (tests, conformance).
 *
 * Memory: everything is bounded (TAM_AGENT_MAX_*); inputs are copied by
 * tam_agent_handle(), so the caller's buffer may be freed right after it.
 */
#ifndef TAM_AGENT_H
#define TAM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"
#include "tam/eat.h"
#include "tam/teep.h"

#define TAM_AGENT_MAX_TCS       64          /* TCs installed on one device */
#define TAM_AGENT_MAX_WANTS     16          /* requested / unneeded entries of a scenario */
#define TAM_AGENT_MAX_MANIFESTS 64          /* envelopes processed from one Update */
#define TAM_AGENT_MAX_FETCH     16          /* distinct URIs fetched for one Update */
#define TAM_AGENT_MAX_MSG       (16u << 20) /* a TAM message, and a reply */
#define TAM_AGENT_MAX_PAYLOAD   (16u << 20) /* one TC payload */
#define TAM_AGENT_MAX_URI       2048        /* a fetched URI */
#define TAM_AGENT_ID_MAX        512         /* an encoded component id */

/* ---- shared by a fleet ---- */

/*
 * A cache of SUIT envelopes whose signature verified, shared by the devices of a
 * fleet so that a thousand devices receiving one manifest verify its signature
 * once (the load generator must not be the bottleneck). Keyed by SHA-256 over
 * the whole envelope; the manifest digest is still checked every time.
 */
struct tam_agent_vcache;
TAM_MUST_CHECK int tam_agent_vcache_create(size_t entries, struct tam_agent_vcache **out);
void tam_agent_vcache_destroy(struct tam_agent_vcache *c); /* NULL-safe */
/* Lookups and insertions so far (for the load report). */
void tam_agent_vcache_stats(const struct tam_agent_vcache *c, uint64_t *hits, uint64_t *misses);

/* Everything borrowed: it must outlive the devices that use the profile. */
struct tam_agent_profile {
    enum tam_teep_numbering numbering;
    const struct tam_key *const *tam_keys; /* trusted TAM keys (public is enough) */
    size_t n_tam_keys;
    const struct tam_key *const *signer_keys; /* trusted TC-signer keys */
    size_t n_signer_keys;
    const struct tam_key *attester;  /* signs the EAT Evidence; must hold a private key */
    struct tam_eat_oemid oemid;      /* zeroed: PEN 32473 (the documentation PEN, RFC 5612) */
    struct tam_bytes hwmodel;        /* empty: "tam-agent-sim" */
    const char *hwversion;           /* NULL: "1.0" */
    int dbgstat;                     /* < 0: omitted; else 0..4 (default 0 = enabled, so set it) */
    const char *eat_format;          /* attestation-payload-format to send; NULL: omitted */
    bool drop_invalid;               /* send nothing in answer to an invalid TAM message */
    bool skip_tam_verify;            /* load testing only: accept TAM messages unverified */
    struct tam_agent_vcache *vcache; /* optional */
};

/* ---- a device ---- */

struct tam_agent_device;

/*
 * Creates a device with key (ownership taken, also on failure; must hold a
 * private key). ueid NULL: 0x01 (RAND) followed by the first 16 bytes of the
 * key's kid, so a fleet built from a seed is reproducible; otherwise 7..33
 * bytes, copied. TAM_EINVAL, TAM_EKEY or TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_agent_device_create(const struct tam_agent_profile *profile,
                                           struct tam_key *key, const uint8_t *ueid,
                                           size_t ueid_len, struct tam_agent_device **out);
void tam_agent_device_destroy(struct tam_agent_device *dev); /* NULL-safe */

const struct tam_key *tam_agent_device_key(const struct tam_agent_device *dev);
struct tam_bytes tam_agent_device_ueid(const struct tam_agent_device *dev);

/*
 * The scenario. request: a TC the device asks for (RequestTA) -- listed in
 * requested-tc-list until a TC with that component id and a sequence >= seq is
 * installed; have_binary declares the device already holds the binary, which
 * is then `binary` (copied) or, when binary is empty, taken as present without
 * bytes (a URI in the manifest is then not fetched). unrequest: a manifest
 * component id the device no longer needs (UnrequestTA) -- listed in
 * unneeded-manifest-list while such a TC is installed. Ids are given as
 * segments. TAM_ETOOBIG past TAM_AGENT_MAX_WANTS, TAM_EINVAL for a bad id.
 */
TAM_MUST_CHECK int tam_agent_device_request(struct tam_agent_device *dev,
                                            const struct tam_bytes *seg, size_t nseg, bool has_seq,
                                            uint64_t seq, bool have_binary,
                                            struct tam_bytes binary);
TAM_MUST_CHECK int tam_agent_device_unrequest(struct tam_agent_device *dev,
                                              const struct tam_bytes *seg, size_t nseg);
void tam_agent_device_clear_scenario(struct tam_agent_device *dev);
/* Forgets every installed TC (a factory reset). */
void tam_agent_device_reset(struct tam_agent_device *dev);

/* Deliberate misbehaviour, for conformance checks of the TAM. */
#define TAM_AGENT_FAULT_BAD_SIGNATURE      1u /* corrupt the signature of every reply */
#define TAM_AGENT_FAULT_BAD_NONCE          2u /* eat_nonce differs from the challenge */
#define TAM_AGENT_FAULT_UNTRUSTED_ATTESTER 4u /* EAT signed by the device key instead */
#define TAM_AGENT_FAULT_NO_EVIDENCE        8u /* omit attestation-payload */
void tam_agent_device_set_faults(struct tam_agent_device *dev, unsigned faults);

/* An installed TC. Spans point into the device and stay valid until it changes. */
struct tam_agent_tc_info {
    struct tam_bytes component_id;          /* encoded SUIT_Component_Identifier */
    struct tam_bytes manifest_component_id; /* encoded; the store key */
    uint64_t sequence;
    uint8_t manifest_digest[TAM_SHA256_LEN];
    bool has_image_digest;
    uint8_t image_digest[TAM_SHA256_LEN];
    bool has_payload;
    bool encrypted; /* payload is still encrypted (SUIT encryption-info) */
    struct tam_bytes payload;
    struct tam_bytes reference_uri;
};

size_t tam_agent_device_tc_count(const struct tam_agent_device *dev);
/* The i-th installed TC (0 <= i < count); false out of range. */
bool tam_agent_device_tc_at(const struct tam_agent_device *dev, size_t i,
                            struct tam_agent_tc_info *out);
/* The TC whose component id (match_manifest_id false) or manifest component id is enc. */
bool tam_agent_device_tc_find(const struct tam_agent_device *dev, struct tam_bytes enc,
                              bool match_manifest_id, struct tam_agent_tc_info *out);

/* Removes the TC tam_agent_device_tc_find() would find; false when there is none. */
bool tam_agent_device_tc_remove(struct tam_agent_device *dev, struct tam_bytes enc,
                                bool match_manifest_id);

/* ---- handling TAM messages ---- */

enum tam_agent_fail {
    TAM_AGENT_OK = 0,
    TAM_AGENT_BAD_COSE,      /* not a COSE_Sign1 / COSE_Sign */
    TAM_AGENT_BAD_SIGNATURE, /* no trusted TAM key verifies it */
    TAM_AGENT_DECODE,        /* the payload is not a TEEP message in our numbering */
    TAM_AGENT_UNEXPECTED,    /* a type an Agent does not accept (or not the one asked for) */
    TAM_AGENT_UNSUPPORTED,   /* no common suite, version or freshness mechanism */
    TAM_AGENT_MANIFEST,      /* one or more manifests failed */
    TAM_AGENT_FETCH,         /* a payload could not be fetched (also counted in MANIFEST) */
    TAM_AGENT_INTERNAL,      /* out of memory, or our own encoding failed */
};

/* "ok", "bad_cose", "bad_signature", "decode", "unexpected", "unsupported", ... */
const char *tam_agent_fail_name(enum tam_agent_fail f);

/* What a message did and what was answered. */
struct tam_agent_outcome {
    enum tam_teep_type received; /* 0 when the payload could not be decoded */
    bool sign_multi;             /* the TAM used COSE_Sign (several signers) */
    enum tam_teep_type sent;     /* 0 when nothing is to be sent */
    uint32_t err_code;           /* the Error's code (logical) when sent == ERROR */
    enum tam_agent_fail fail;
    const char *why;  /* static reason when fail != OK */
    int alg;          /* COSE algorithm of our reply */
    size_t token_len; /* the TAM message's token, when it had one */
    uint8_t token[TAM_TEEP_TOKEN_MAX];
    uint64_t data_items;   /* QueryRequest: data-item-requested */
    size_t challenge_len;  /* QueryRequest: challenge length (0: none) */
    bool attested;         /* our QueryResponse carried Evidence */
    bool has_tam_err;      /* the Update carried err-code */
    uint32_t tam_err_code; /* logical (unknown wire codes: TAM_TEEP_ERR_UNKNOWN_BASE + wire) */
    unsigned n_manifests;  /* envelopes in the Update */
    unsigned n_installed;  /* installed or updated */
    unsigned n_deleted;    /* deleted by an unlink manifest */
    unsigned n_failed;     /* envelopes that failed */
    unsigned n_unlinked;   /* unneeded-manifest-list entries removed */
};

struct tam_agent_step;

/*
 * Step 1: verifies, decodes, and for an Update parses and verifies every
 * envelope. msg is copied. Returns TAM_OK and *out (to finish, then destroy) even
 * when the message is invalid -- finish then writes the Error; TAM_ENOMEM or
 * TAM_ETOOBIG (msg above TAM_AGENT_MAX_MSG) otherwise. The device must not be
 * handed another message until the step is finished or destroyed.
 */
TAM_MUST_CHECK int tam_agent_handle(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                                    struct tam_agent_step **out);
/* The URIs to fetch before finishing (Update only; 0 otherwise). */
size_t tam_agent_step_fetch_count(const struct tam_agent_step *s);
const char *tam_agent_step_fetch_uri(const struct tam_agent_step *s, size_t i);
/* The fetched bytes of URI i (copied); TAM_ETOOBIG above TAM_AGENT_MAX_PAYLOAD. */
TAM_MUST_CHECK int tam_agent_step_supply(struct tam_agent_step *s, size_t i, const uint8_t *data,
                                         size_t len);
void tam_agent_step_fetch_failed(struct tam_agent_step *s, size_t i);
/*
 * Step 2: applies the message to the device and appends the signed answer to
 * reply (nothing when outcome->sent is 0). A URI neither supplied nor failed
 * counts as failed. TAM_OK, or TAM_ENOMEM / TAM_ETOOBIG / a crypto error when the
 * answer could not be built (outcome->fail = INTERNAL). Call once.
 */
TAM_MUST_CHECK int tam_agent_step_finish(struct tam_agent_step *s, int64_t now,
                                         struct tam_buf *reply, struct tam_agent_outcome *outcome);
void tam_agent_step_destroy(struct tam_agent_step *s); /* NULL-safe */

/*
 * Synchronous fetch for tam_agent_on_message(): append the resource's bytes to
 * out and return TAM_OK, or return an error (the manifest then fails).
 */
typedef int (*tam_agent_fetch_fn)(void *arg, const char *uri, struct tam_buf *out);

/* handle + fetch (fetch may be NULL: every fetch fails) + finish + destroy. */
TAM_MUST_CHECK int tam_agent_on_message(struct tam_agent_device *dev, const uint8_t *msg,
                                        size_t len, int64_t now, tam_agent_fetch_fn fetch,
                                        void *arg, struct tam_buf *reply,
                                        struct tam_agent_outcome *outcome);
/* The same, refusing (UNEXPECTED, Error answer) any other message type. */
TAM_MUST_CHECK int tam_agent_on_query_request(struct tam_agent_device *dev, const uint8_t *msg,
                                              size_t len, int64_t now, struct tam_buf *reply,
                                              struct tam_agent_outcome *outcome);
TAM_MUST_CHECK int tam_agent_on_update(struct tam_agent_device *dev, const uint8_t *msg, size_t len,
                                       int64_t now, tam_agent_fetch_fn fetch, void *arg,
                                       struct tam_buf *reply, struct tam_agent_outcome *outcome);

/*
 * A signed Error from this device (conformance checks: unknown error codes).
 * token may be empty; err_code is logical (TAM_TEEP_ERR_UNKNOWN_BASE + wire for
 * a code the numbering does not define); alg 0 = the device's default.
 */
TAM_MUST_CHECK int tam_agent_build_error(struct tam_agent_device *dev, struct tam_bytes token,
                                         uint32_t err_code, const char *err_msg, int alg,
                                         struct tam_buf *reply);

/* ---- helpers for the command line ---- */

/*
 * Parses a component id written as segments separated by '/': each segment is
 * text, or "h:" followed by hex (e.g. "TEEP-Device/SecureFS/h:8d82573a/ta"), and
 * appends its CBOR encoding ([* bstr]) to out. TAM_EINVAL on a bad id.
 */
TAM_MUST_CHECK int tam_agent_id_parse(const char *text, struct tam_buf *out);
/* The reverse, NUL-terminated text appended to out (segments that are not printable: h:hex). */
TAM_MUST_CHECK int tam_agent_id_format(struct tam_bytes enc, struct tam_buf *out);
/* Splits an encoded id into segments (spans into enc). TAM_EINVAL when enc is not [* bstr]. */
TAM_MUST_CHECK int tam_agent_id_segments(struct tam_bytes enc, struct tam_bytes *seg, size_t max,
                                         size_t *n);

/*
 * A key derived from a seed, for reproducible fleets: the private key is
 * SHA-256("tam-agent key" || type || index || seed) (re-hashed in the unlikely
 * case it is not a valid P-256 scalar). The same seed and index give the same key.
 */
TAM_MUST_CHECK int tam_agent_key_from_seed(enum tam_key_type type, const uint8_t *seed,
                                           size_t seed_len, uint64_t index, struct tam_key **out);

#endif
