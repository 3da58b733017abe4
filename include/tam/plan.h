/*
 * Update planning (TP 1.10 step 3, TEEP-DIGEST 3.5): from the tenant's catalogue
 * and policy, the TAM's record of the device and the device's QueryResponse,
 * decide which manifests go into the Update's manifest-list and which manifest
 * component ids go into its unneeded-manifest-list. Pure: no I/O, no clock, no
 * globals, no logging (the caller logs the notes).
 *
 * Memory. Every input is borrowed. The plan's arrays come from the caller's
 * arena; they point into the inputs (catalogue entries, component ids), so the
 * inputs must outlive the plan. Scratch memory (indexes) is taken with
 * tam_malloc and released before tam_plan_compute returns.
 *
 * Component ids are struct tam_teep_component_id (segments only: raw is
 * ignored by every function here). Ids compare with tam_plan_id_cmp, a total
 * order: segment by segment, each segment by its bytes (memcmp over the
 * shorter length, then the shorter first); an id that is a prefix of another
 * sorts first.
 *
 * Semantics (each rule has a unit test in tests/unit/test_plan.c):
 *
 * Policy. A rule matches the device when its match is ALL; LABELS and the
 * device carries every one of the rule's labels (byte-exact; an empty label set
 * matches every device); DEVICE and the device's kid equals the rule's kid. The
 * desired set is the union of the install entries of all matching rules minus
 * the remove entries of all matching rules: a remove in any matching rule beats
 * an install of the same component in any other (or the same) rule, whatever
 * the rule order. Rule order never changes the result. When several matching
 * install entries name one component, the largest min_sequence applies.
 *
 * Target. The target of a component is its catalogue entry with the highest
 * sequence number (ties: the smaller digest). If the catalogue has no entry for
 * the component it is UNAVAILABLE; if the highest is below the required
 * min_sequence it is UNSATISFIABLE. Neither is sent; both are noted.
 *
 * What the device has. A component is present when the TAM recorded it
 * (struct tam_plan_installed, from earlier Success messages) or the device
 * lists it in tc-list. When query.tc_list_authoritative is set (the TAM asked
 * for trusted-components, so tc-list is complete), a recorded component that
 * tc-list does not list is absent (the device lost it) and is installed again.
 * Its known sequence is the largest of the recorded sequence and the tc-list
 * tc-manifest-sequence-number (DRAFT12 agents report it); a component listed in
 * tc-list with no sequence and no record has sequence 0, so a target with a
 * sequence above 0 is sent once and then recorded.
 *
 * Rule 1, install: a desired component that is not present -> its target, reason
 *   INSTALL.
 * Rule 2, update: a desired, present component whose known sequence is below the
 *   target's -> the target, reason UPDATE. Never downgrade: a known sequence >=
 *   the target's sends nothing (an equal sequence with another digest included:
 *   a SUIT processor refuses it anyway).
 * Rule 3, requested: a requested-tc-list entry is served unless the policy
 *   removes that component for the device, or policy.deny_requested is set and
 *   the policy does not itself desire the component (both noted DENIED). Its
 *   target must have a sequence >= the requested tc-manifest-sequence-number
 *   (else UNSATISFIABLE; no catalogue entry: UNAVAILABLE). It is not sent when
 *   tc-list lists the component at a known sequence >= the target's, nor when
 *   the recorded sequence is above the target's (never downgrade); otherwise it
 *   is sent with reason REQUESTED (or INSTALL/UPDATE when the policy also wants
 *   it). have_binary=true in the request sets have_binary on the plan entry: the
 *   manifest is still what is sent, and the worker may prefer a URI-style
 *   envelope over an integrated one. A device's own unneeded declaration of a
 *   component beats its own request for it.
 * Rule 4, delete: a present component that a matching rule removes -> its
 *   manifest component id (from the record, else from its catalogue entries) in
 *   unlink (noted UNRESOLVED when neither knows it). A manifest the device put in
 *   its unneeded-manifest-list is echoed in unlink too (TP 1.10: the TAM may
 *   unlink it), unless the policy desires its component or a manifest planned in
 *   this plan depends on it: then it is kept (policy wins; noted KEPT). Its
 *   component is found through the records' manifest ids, then the catalogue's;
 *   an id nobody knows is echoed as is.
 * Rule 5, dependencies: before a manifest, each manifest it depends on (by
 *   manifest component id, resolved to that id's highest-sequence catalogue
 *   entry) is sent too, reason DEPENDENCY, unless the device already has that
 *   component at a sequence >= the dependency's. Dependencies come before
 *   dependents and each manifest appears once. Chains deeper than
 *   TAM_PLAN_MAX_DEPTH, cycles, dependencies missing from the catalogue (and not
 *   recorded as installed) and dependencies whose component the policy removes
 *   drop the dependent (and the dependencies pulled only for it); noted
 *   DEP_DEPTH, DEP_CYCLE, DEP_MISSING, DEP_REMOVED on the dependent's component.
 * Rule 6, bounds and order: entries are ordered by the canonical order of the
 *   primary component ids, each preceded by its dependencies (depth first, a
 *   manifest's dependencies in canonical order). At most max_manifests entries
 *   are sent (the first ones: dependencies always precede their dependents, so
 *   the kept prefix is self-contained); the rest are noted DEFERRED for a later
 *   session. unlink is sorted canonically without duplicates, at most
 *   max_unlinks (the rest UNLINK_DEFERRED). Notes are sorted by kind, id,
 *   sequence. Equal inputs in any order give an identical plan.
 * Rule 7, nothing to do: n_entries == 0 and n_unlink == 0
 *   (tam_plan_is_empty): the worker answers 204 or an empty Update.
 */
#ifndef TAM_PLAN_H
#define TAM_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/common.h"
#include "tam/teep.h"

#define TAM_PLAN_DIGEST_LEN 32 /* SHA-256 manifest digest (SUIT auth[0]) */
#define TAM_PLAN_KID_LEN    32 /* device key id (RFC 9679 thumbprint) */

/* Input bounds: larger inputs fail with TAM_ETOOBIG, never truncated. */
#define TAM_PLAN_MAX_CATALOGUE    65536             /* catalogue entries */
#define TAM_PLAN_MAX_INSTALLED    65536             /* recorded installed components */
#define TAM_PLAN_MAX_RULES        1024              /* policy rules */
#define TAM_PLAN_MAX_POLICY_ITEMS 65536             /* install + remove entries over all rules */
#define TAM_PLAN_MAX_LABELS       64                /* labels of a device or of a rule */
#define TAM_PLAN_MAX_DEPS         8                 /* dependencies of one manifest */
#define TAM_PLAN_MAX_DEPTH        4                 /* dependency levels below a sent manifest */
#define TAM_PLAN_MAX_MANIFESTS    TAM_TEEP_MAX_LIST /* ceiling of max_manifests */

#define TAM_PLAN_DEFAULT_MAX_MANIFESTS 16 /* max_manifests == 0 */
#define TAM_PLAN_DEFAULT_MAX_UNLINKS   64 /* max_unlinks == 0 */

/* What the tenant offers: one stored, signed SUIT envelope (indexed by tam_suit_parse). */
struct tam_plan_manifest {
    struct tam_teep_component_id component;   /* the TC payload's component id */
    struct tam_teep_component_id manifest_id; /* suit-manifest-component-id (the unlink handle) */
    uint64_t sequence;                        /* suit-manifest-sequence-number */
    uint8_t digest[TAM_PLAN_DIGEST_LEN];      /* manifest digest (auth[0]) */
    const void *user;                         /* the caller's handle: which envelope to ship */
    uint32_t n_deps;                          /* <= TAM_PLAN_MAX_DEPS */
    const struct tam_teep_component_id *deps; /* manifest ids needed first; borrowed */
};

/* A component as the TAM recorded it after a Success. */
struct tam_plan_installed {
    struct tam_teep_component_id component;
    bool has_manifest_id;
    struct tam_teep_component_id manifest_id;
    uint64_t sequence;
    uint8_t digest[TAM_PLAN_DIGEST_LEN];
};

/* The device: its labels, key id and the TAM's record of what it installed. */
struct tam_plan_device {
    bool has_kid;
    uint8_t kid[TAM_PLAN_KID_LEN];
    uint32_t n_labels; /* <= TAM_PLAN_MAX_LABELS */
    const struct tam_bytes *labels;
    uint32_t n_installed; /* <= TAM_PLAN_MAX_INSTALLED; duplicates: the highest sequence wins */
    const struct tam_plan_installed *installed;
};

enum tam_plan_match {
    TAM_PLAN_MATCH_ALL = 0,    /* every device */
    TAM_PLAN_MATCH_LABELS = 1, /* devices carrying ALL of the rule's labels */
    TAM_PLAN_MATCH_DEVICE = 2, /* the one device whose kid equals the rule's kid */
};

struct tam_plan_install {
    struct tam_teep_component_id component;
    bool has_min_sequence;
    uint64_t min_sequence;
};

struct tam_plan_rule {
    enum tam_plan_match match;
    uint32_t n_labels; /* MATCH_LABELS; <= TAM_PLAN_MAX_LABELS */
    const struct tam_bytes *labels;
    uint8_t kid[TAM_PLAN_KID_LEN]; /* MATCH_DEVICE */
    uint32_t n_install;
    const struct tam_plan_install *install;
    uint32_t n_remove;
    const struct tam_teep_component_id *remove;
};

/*
 * The tenant's policy (PUT /policy in struct form). deny_requested false (the
 * zero value) = requested TCs are allowed ("requested": "allow", the default);
 * true = only what the rules install is ever sent.
 */
struct tam_plan_policy {
    uint32_t n_rules; /* <= TAM_PLAN_MAX_RULES */
    const struct tam_plan_rule *rules;
    bool deny_requested;
};

/* What the device said in its QueryResponse (borrowed from the decoded message). */
struct tam_plan_query {
    uint32_t n_tc_list;
    const struct tam_teep_tc *tc_list;
    uint32_t n_requested;
    const struct tam_teep_req_tc *requested;
    uint32_t n_unneeded;
    const struct tam_teep_component_id *unneeded; /* manifest component ids */
    /* Set when the QueryRequest asked for trusted-components: tc-list is then complete. */
    bool tc_list_authoritative;
};

struct tam_plan_input {
    uint32_t n_catalogue; /* <= TAM_PLAN_MAX_CATALOGUE */
    const struct tam_plan_manifest *catalogue;
    const struct tam_plan_policy *policy; /* NULL = no rules */
    const struct tam_plan_device *device; /* NULL = no labels, no kid, nothing recorded */
    const struct tam_plan_query *query;   /* NULL = empty QueryResponse */
    uint32_t max_manifests;               /* per Update; 0 = default; <= TAM_PLAN_MAX_MANIFESTS */
    uint32_t max_unlinks;                 /* per Update; 0 = default; <= TAM_TEEP_MAX_LIST */
};

enum tam_plan_reason {
    TAM_PLAN_INSTALL = 1,    /* rule 1 */
    TAM_PLAN_UPDATE = 2,     /* rule 2 */
    TAM_PLAN_REQUESTED = 3,  /* rule 3 */
    TAM_PLAN_DEPENDENCY = 4, /* rule 5 */
};

/* One manifest to send, in manifest-list order. */
struct tam_plan_entry {
    const struct tam_plan_manifest *manifest; /* borrowed catalogue entry */
    uint32_t index;                           /* its position in the catalogue */
    enum tam_plan_reason reason;
    bool have_binary;            /* the agent already holds the binary (requested-tc-list) */
    bool was_present;            /* the device had the component (an update) */
    uint64_t installed_sequence; /* its known sequence then (0 when unknown or absent) */
};

enum tam_plan_note_kind {
    TAM_PLAN_NOTE_DEFERRED = 0,        /* over max_manifests; id = component, seq = target's */
    TAM_PLAN_NOTE_UNLINK_DEFERRED = 1, /* over max_unlinks; id = manifest id */
    TAM_PLAN_NOTE_UNSATISFIABLE = 2,   /* no manifest >= min; id = component, seq = the min */
    TAM_PLAN_NOTE_UNAVAILABLE = 3,     /* no manifest at all for the component */
    TAM_PLAN_NOTE_DENIED = 4,          /* a request the policy refuses; id = component */
    TAM_PLAN_NOTE_DEP_MISSING = 5,     /* id = the dependent's component */
    TAM_PLAN_NOTE_DEP_REMOVED = 6,     /* id = the dependent's component */
    TAM_PLAN_NOTE_DEP_CYCLE = 7,       /* id = the dependent's component */
    TAM_PLAN_NOTE_DEP_DEPTH = 8,       /* id = the dependent's component */
    TAM_PLAN_NOTE_UNRESOLVED = 9,      /* removal without a known manifest id; id = component */
    TAM_PLAN_NOTE_KEPT = 10,           /* device-unneeded but required; id = manifest id */
};
#define TAM_PLAN_NOTE_KINDS 11

/* Something not done, for logs and metrics. */
struct tam_plan_note {
    enum tam_plan_note_kind kind;
    const struct tam_teep_component_id *id; /* borrowed from the inputs */
    uint64_t sequence;
};

/* The result of tam_plan_compute. Arrays live in the caller's arena. */
struct tam_plan {
    uint32_t n_entries;
    struct tam_plan_entry *entries; /* manifest-list, in order */
    uint32_t n_unlink;
    /* unneeded-manifest-list (copies; segments borrowed from the inputs) */
    struct tam_teep_component_id *unlink;
    /* Per unlink[i]: the component it removes, or NULL when unknown (for apply). */
    const struct tam_teep_component_id **unlink_component;
    uint32_t n_notes;
    struct tam_plan_note *notes;
    uint32_t count[TAM_PLAN_NOTE_KINDS]; /* notes per kind */
};

/* Total order on component ids (see the top of this file): <0, 0, >0. */
int tam_plan_id_cmp(const struct tam_teep_component_id *a, const struct tam_teep_component_id *b);
/* Equal segments (raw ignored). */
bool tam_plan_id_eq(const struct tam_teep_component_id *a, const struct tam_teep_component_id *b);

/* Points q at msg's tc-list, requested-tc-list and unneeded-manifest-list (borrowed). */
void tam_plan_query_from_msg(const struct tam_teep_msg *msg, bool tc_list_authoritative,
                             struct tam_plan_query *q);

/*
 * Computes the plan for one device (rules above). *out is overwritten. TAM_OK,
 * TAM_EINVAL (malformed input: a bad id, a NULL list with a non-zero count, an
 * unknown match kind; *why names it), TAM_ETOOBIG (a bound above is exceeded),
 * TAM_ENOMEM (heap or arena). *out is unspecified after a failure.
 */
TAM_MUST_CHECK int tam_plan_compute(const struct tam_plan_input *in, struct tam_arena *arena,
                                    struct tam_plan *out, const char **why);

/* No manifest and nothing to unlink. */
bool tam_plan_is_empty(const struct tam_plan *plan);

/* Sets the Update's unneeded-manifest-list from the plan (borrowed); manifests are the caller's. */
void tam_plan_fill_update(const struct tam_plan *plan, struct tam_teep_msg *update);

/*
 * The device answered Success to the plan's Update: the new recorded set is the
 * old one without the unlinked components (matched by component or manifest id)
 * and with every sent manifest recorded (component, manifest id, sequence,
 * digest), sorted by component id. *out comes from arena; its ids borrow from
 * old and from the catalogue. TAM_OK, TAM_EINVAL, TAM_ETOOBIG, TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_plan_apply_success(const struct tam_plan *plan,
                                          const struct tam_plan_installed *old, uint32_t n_old,
                                          struct tam_arena *arena, struct tam_plan_installed **out,
                                          uint32_t *n_out);

/*
 * The device answered Error (e.g. ERR_MANIFEST_PROCESSING_FAILED) with SUIT
 * reports naming failed manifests by digest (failed[i]: 32 bytes; other lengths
 * never match). Like apply_success, except that a failed manifest, and any sent
 * manifest depending on a failed one, is not recorded, and nothing is unlinked
 * (the agent's state is unknown; the unlink is simply planned again).
 */
TAM_MUST_CHECK int tam_plan_apply_error(const struct tam_plan *plan,
                                        const struct tam_plan_installed *old, uint32_t n_old,
                                        const struct tam_bytes *failed, uint32_t n_failed,
                                        struct tam_arena *arena, struct tam_plan_installed **out,
                                        uint32_t *n_out);

/* "install", "update", "requested", "dependency", or "?". */
const char *tam_plan_reason_name(enum tam_plan_reason reason);
/* "deferred", "unlink-deferred", "unsatisfiable", ..., or "?". */
const char *tam_plan_note_name(enum tam_plan_note_kind kind);

#endif
