/*
 * A tenant: one Service Provider fronted by this TAM. Its TAM URI is /tam/{id}.
 * Pure data plus the decisions that depend only on it (which algorithms to offer,
 * how to sign the first QueryRequest). Immutable once built and shared by
 * reference count, so a reload or an admin change swaps in a new snapshot while
 * requests in flight keep the one they started with.
 */
#ifndef TAM_TENANT_H
#define TAM_TENANT_H

#include <stdbool.h>
#include <stdint.h>

#include "tam/common.h"
#include "tam/crypto.h"
#include "tam/teep.h"

#define TAM_TENANT_ID_MAX 63

enum tam_attestation_mode {
    TAM_ATTEST_NONE = 0,     /* QueryRequests do not ask for attestation */
    TAM_ATTEST_REQUIRED = 1, /* a verified EAT is needed before any install */
};

enum tam_enrollment_mode {
    TAM_ENROLL_REGISTERED = 0, /* only devices whose key was registered */
    TAM_ENROLL_ATTESTED = 1,   /* keys learned from a verified EAT cnf */
};

struct tam_tenant {
    unsigned refs;
    char id[TAM_TENANT_ID_MAX + 1];
    enum tam_teep_numbering numbering;
    enum tam_attestation_mode attestation;
    enum tam_enrollment_mode enrollment;
    /* TAM TEEP signing keys: [0] P-256, [1] Ed25519; either may be NULL (owned). */
    struct tam_key *tam_keys[2];
    /* Label signatures with the pre-RFC 9864 ids ES256 (-7) / EdDSA (-8): draft12 agents. */
    bool legacy_alg_ids;
    /* Sign the first QueryRequest with COSE_Sign1 only (older agents parse only Sign1). */
    bool sign1_only;
    uint32_t session_ttl_s; /* how long a QueryRequest token stays valid */
    uint32_t update_ttl_s;  /* how long an Update token stays valid (hours: TP 1.8) */
    uint32_t max_pending_per_device;
    uint32_t challenge_len;     /* 8..64 (EAT caps eat_nonce at 64) */
    uint32_t max_kidless_tries; /* agents without kid: registered keys tried, at most */
    uint32_t rps_per_device;    /* signed messages per second and device; 0 = unlimited */
    uint32_t max_devices;       /* devices learned in attested enrollment; 0 = unlimited */
};

/* A tenant with defaults for everything but keys; refs = 1. NULL on OOM. */
struct tam_tenant *tam_tenant_create(const char *id);
struct tam_tenant *tam_tenant_ref(struct tam_tenant *t);
void tam_tenant_unref(struct tam_tenant *t); /* destroys (and wipes keys) at zero; NULL-safe */

/* Tenant ids: 1..63 of [a-z0-9-_], not starting with '-' or '_'. */
bool tam_tenant_id_valid(const char *id, size_t len);

/* The COSE algorithm id this tenant puts on the wire for a key of the given type. */
int tam_tenant_wire_alg(const struct tam_tenant *t, enum tam_key_type type);
/* The key and wire algorithm for an agent-selected algorithm (any id of either form). */
const struct tam_key *tam_tenant_key_for_alg(const struct tam_tenant *t, int alg, int *wire_alg);

#endif
