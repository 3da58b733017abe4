/*
 * Codecs of the records the TAM keeps in Redis (key schema: keys.h), shared by the workers
 * (which read them to plan Updates and write them after Success / Error) and the admin API
 * (which writes components and the policy). Pure: no I/O, no clock, no globals, no logging.
 *
 * Records:
 *   installed list   device hash field "installed": CBOR
 *                      [* [component-id, manifest-id / null, sequence, digest]]
 *                    component-id and manifest-id are SUIT_Component_Identifiers ([* bstr]),
 *                    digest the 32-byte SHA-256 manifest digest (SUIT auth[0]).
 *   component        tam:t:{<tenant>}:components field "<component-id hex>/<sequence>"
 *                    (tam_store_component_field): one CBOR map (struct tam_store_component,
 *                    integer keys below). Either a signed envelope uploaded by a TC signer
 *                    (shipped byte-exact), or a TC binary plus metadata from which a worker
 *                    builds and signs the manifest with the tenant's manifest key; the worker
 *                    then writes the record back with the envelope, manifest id and digest
 *                    filled in, so every worker reuses that one signature.
 *   policy           tam:t:{<tenant>}:policy: JSON (tam_store_policy_parse, format below).
 *   sent plan        tam:s:{<token>}:plan (beside the Update's session record, same expiry):
 *                    what an Update carried, so that the agent's Success / Error can be
 *                    applied to the installed list (tam_plan_apply_success / _error). CBOR
 *                    [[* [component-id, manifest-id, sequence, digest, [* dep-manifest-id]]],
 *                     [* [unlinked-manifest-id, component-id / null]]].
 *   labels           device hash field "labels": comma-separated, no empty label.
 *   history entry    device list tam:d:{<tenant>:<kid>}:hist: one JSON object per event
 *                    (tam_store_history_encode); newest first, bounded by the writer.
 *
 * Memory. Decoders are zero-copy: byte spans (component id segments, envelopes, binaries)
 * point into the input, which must outlive the result; arrays come from the caller's arena.
 * Every list is bounded; larger inputs fail with TAM_ETOOBIG, malformed ones with TAM_EINVAL
 * (or the CBOR reader's TAM_ECBOR / TAM_ECBOR_LIMIT), never truncated. *why, when non-NULL,
 * gets a static reason on failure.
 */
#ifndef TAM_STORE_H
#define TAM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/common.h"
#include "tam/eat.h"
#include "tam/plan.h"
#include "tam/teep.h"

#define TAM_STORE_MAX_RECORD    (40u << 20) /* bytes of one component record */
#define TAM_STORE_MAX_INSTALLED 4096        /* entries of an installed list */
#define TAM_STORE_MAX_POLICY    (1u << 20)  /* bytes of a policy document */
#define TAM_STORE_MAX_URI       1024        /* bytes of a component record's uri */
#define TAM_STORE_MAX_LABEL     64          /* bytes of one device label */
#define TAM_STORE_MAX_ATTEST    64          /* entries of each attestation allow-list */
#define TAM_STORE_HISTORY_MAX   50          /* entries kept in a device history (LTRIM) */

/* ---- component id helpers ---- */

/* Appends the CBOR encoding of id ([* bstr]) to out. */
TAM_MUST_CHECK int tam_store_id_encode(const struct tam_teep_component_id *id, struct tam_buf *out);
/* Decodes one [* bstr] item (1..TAM_TEEP_MAX_ID_SEGMENTS segments) from buf; raw = buf. */
TAM_MUST_CHECK int tam_store_id_decode(const uint8_t *buf, size_t len,
                                       struct tam_teep_component_id *out, const char **why);
/*
 * The components hash field of a record: lower-case hex of the CBOR-encoded component id,
 * '/', the sequence number in decimal. Appended to out (NUL-terminated; out->len excludes
 * the NUL).
 */
TAM_MUST_CHECK int tam_store_component_field(const struct tam_teep_component_id *id,
                                             uint64_t sequence, struct tam_buf *out);

/* ---- installed list ---- */

/* Appends [* [component-id, manifest-id / null, sequence, digest]] for v[0..n). */
TAM_MUST_CHECK int tam_store_installed_encode(const struct tam_plan_installed *v, uint32_t n,
                                              struct tam_buf *out);
/*
 * Decodes an installed list; len 0 (an absent field) is the empty list. *out comes from
 * arena (NULL when *n is 0); ids point into buf.
 */
TAM_MUST_CHECK int tam_store_installed_decode(const uint8_t *buf, size_t len,
                                              struct tam_arena *arena,
                                              struct tam_plan_installed **out, uint32_t *n,
                                              const char **why);

/* ---- component record ---- */

/* How a TAM-built manifest delivers the binary (TEEP App. E scenarios 1 and 2). */
enum tam_store_delivery {
    TAM_STORE_DELIVERY_NONE = 0,       /* no binary: an uploaded envelope */
    TAM_STORE_DELIVERY_URI = 1,        /* the device fetches uri */
    TAM_STORE_DELIVERY_INTEGRATED = 2, /* the binary travels in the envelope ("#tc") */
};

/*
 * Record map keys:
 *   1 component-id [* bstr]        required
 *   2 manifest-component-id        required with an envelope
 *   3 sequence uint                required
 *   4 digest bstr(32)              required with an envelope
 *   5 deps [* manifest-id]         optional, at most TAM_PLAN_MAX_DEPS
 *   6 envelope bstr                the signed SUIT_Envelope, byte-exact
 *   7 binary bstr                  TAM-built: the TC binary
 *   8 vendor-id bstr(16)           TAM-built, optional
 *   9 class-id bstr(16)            TAM-built, optional
 *  10 delivery uint                TAM-built: enum tam_store_delivery (1 or 2)
 *  11 uri tstr                     TAM-built: payload URI (required for delivery 1)
 * A record holds an envelope, or a binary with a delivery, or both (a built record).
 */
struct tam_store_component {
    struct tam_teep_component_id component;
    bool has_manifest_id;
    struct tam_teep_component_id manifest_id;
    uint64_t sequence;
    bool has_digest;
    uint8_t digest[TAM_PLAN_DIGEST_LEN];
    uint32_t n_deps;
    struct tam_teep_component_id deps[TAM_PLAN_MAX_DEPS];
    struct tam_bytes envelope; /* empty: not (yet) built */
    struct tam_bytes binary;   /* empty: no binary */
    bool has_vendor_id;
    uint8_t vendor_id[16];
    bool has_class_id;
    uint8_t class_id[16];
    enum tam_store_delivery delivery;
    struct tam_bytes uri; /* text, no NUL */
};

TAM_MUST_CHECK int tam_store_component_encode(const struct tam_store_component *c,
                                              struct tam_buf *out);
/* Spans in *c point into buf. */
TAM_MUST_CHECK int tam_store_component_decode(const uint8_t *buf, size_t len,
                                              struct tam_store_component *c, const char **why);
/* True when the record can be shipped: envelope, manifest id and digest present. */
bool tam_store_component_ready(const struct tam_store_component *c);
/*
 * Fills a planner catalogue entry from a ready record (borrowing its ids; user is stored
 * as given). TAM_EINVAL when the record is not ready.
 */
TAM_MUST_CHECK int tam_store_component_manifest(const struct tam_store_component *c,
                                                const void *user, struct tam_plan_manifest *m);

/* ---- policy ---- */

/*
 * The tenant's policy document:
 *   {
 *     "requested": "allow" | "deny",           optional, default "allow"
 *     "rules": [                                optional, at most TAM_PLAN_MAX_RULES
 *       {"match": {} | {"labels": ["a", ...]} | {"device": "<kid hex, 64 digits>"},
 *        "install": [{"component_id": ["<hex segment>", ...], "min_sequence": N}, ...],
 *        "remove": [{"component_id": [...]}, ...]}
 *     ],
 *     "attestation": {                          optional claim policy (tam_eat_policy)
 *       "oemids": [PEN integer | "<hex, 3 or 16 bytes>", ...],
 *       "hwmodels": ["<hex, 1..32 bytes>", ...],
 *       "hwversions": ["text", ...],
 *       "min_dbgstat": 0..4
 *     }
 *   }
 * "match", "install", "remove" and "min_sequence" are optional (absent match = every
 * device). Unknown members are errors (a typo must not silently widen a rollout).
 * Component id segments are hex strings ("" = an empty segment).
 */
struct tam_store_policy {
    struct tam_plan_policy plan;
    struct tam_eat_policy attestation;
};

/*
 * Parses json[0..len) into *out; every array and string comes from arena (the JSON text can
 * be released afterwards). On failure why (whysz bytes, NUL-terminated) names the member,
 * e.g. "rules[2].install[0].component_id[1]: not a hex string". TAM_OK, TAM_EINVAL,
 * TAM_ETOOBIG (a bound above or of plan.h), TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_store_policy_parse(const char *json, size_t len, struct tam_arena *arena,
                                          struct tam_store_policy *out, char *why, size_t whysz);

/* ---- sent plan ---- */

/* Appends the record of what an Update carries: the plan's entries and unlinks. */
TAM_MUST_CHECK int tam_store_sent_encode(const struct tam_plan *plan, struct tam_buf *out);
/*
 * Rebuilds a plan holding entries (each with its own tam_plan_manifest, user NULL) and
 * unlinks, enough for tam_plan_apply_success / tam_plan_apply_error. Arrays from arena, ids
 * point into buf. Notes are empty.
 */
TAM_MUST_CHECK int tam_store_sent_decode(const uint8_t *buf, size_t len, struct tam_arena *arena,
                                         struct tam_plan *out, const char **why);

/* ---- labels ---- */

/*
 * Splits "a,b,c" into label spans (pointing into s; arena array). "" = no labels. An empty
 * label, a label over TAM_STORE_MAX_LABEL bytes or more than TAM_PLAN_MAX_LABELS labels:
 * TAM_EINVAL / TAM_ETOOBIG.
 */
TAM_MUST_CHECK int tam_store_labels_parse(const char *s, size_t len, struct tam_arena *arena,
                                          struct tam_bytes **out, uint32_t *n, const char **why);

/* ---- history ---- */

struct tam_store_history {
    uint64_t ms;        /* unix ms */
    const char *event;  /* "success", "error", "attestation-failed", "dropped", ... */
    uint32_t err_code;  /* logical TEEP error code, 0 = none */
    uint32_t installed; /* manifests recorded as installed by this event */
    uint32_t unlinked;  /* components removed by this event */
    uint32_t failed;    /* manifests the agent reported as failed */
    const char *detail; /* short static text, or NULL */
};

/* Appends one compact JSON object: {"ms":..,"event":..,"err":"ERR_..",...} (no secrets). */
TAM_MUST_CHECK int tam_store_history_encode(const struct tam_store_history *h, struct tam_buf *out);

#endif
