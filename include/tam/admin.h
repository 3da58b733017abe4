/*
 * The admin API (issue #5): JSON over HTTP(S) under /v1 on tamd's admin listener, backed by
 * Redis (key schema: keys.h and tstore.h). OpenAPI document: deploy/openapi.yaml.
 *
 * Authentication: "Authorization: Bearer <token>". The operator token manages tenants
 * (POST/GET list /v1/tenants, PATCH/DELETE /v1/tenants/{t}, POST /v1/tenants/{t}/tokens);
 * GET /v1/tenants/{t} takes the operator token or the tenant's; everything inside a tenant
 * (trust-anchors, devices, components, policy) takes only that tenant's token. Missing, bad
 * or unknown tokens: 401 with WWW-Authenticate: Bearer; a valid token of the wrong scope
 * (another tenant's, the operator's inside a tenant, a tenant's on operator endpoints): 403.
 *
 * Errors are RFC 9457 problem documents (application/problem+json: type, title, status,
 * detail): 400 malformed request (unparsable JSON, bad path such as '%', '..', '//'),
 * 401, 403, 404 (unknown path, tenant, device, component; invalid or overlong ids),
 * 405 (with Allow), 409 (exists / concurrent change / deletion in progress), 413 (body over
 * the endpoint's limit), 415 (wrong Content-Type), 422 (well-formed but invalid: unknown
 * member, bad value, envelope not signed by a trusted TC signer), 503 (Redis unavailable).
 * Every response carries Cache-Control: no-store and X-Content-Type-Options: nosniff.
 *
 * Processing: routing and authentication first, then body checks, then every check that
 * can fail, and only then one atomic write (a Lua script: a failed request stores nothing),
 * followed by a PUBLISH on tam:{events}. Requests are asynchronous (Redis callbacks on the
 * loop); a client that goes away does not cancel a write in progress.
 *
 * Single Redis: the admin writes touch several hash slots in one script (e.g. tam:tenants and
 * tam:t:{<id>}:*), so the admin API needs a single Redis (or Redis + Sentinel), not a Cluster.
 */
#ifndef TAM_ADMIN_H
#define TAM_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/common.h"
#include "tam/crypto.h"
#include "tam/seal.h"

struct uv_loop_s;
struct tam_redis;
struct tam_http_request;
struct tam_admin;

struct tam_admin_opts {
    /* Required: the deployment KEK (seal.h), copied. */
    const uint8_t *kek;
    /* Optional: the workers' sealing public key (P-256), borrowed for the create call only.
     * With it, each new tenant gets a P-256 SUIT manifest signing key sealed to the workers;
     * without it, tenants have no manifest key (TAM-built components cannot be built) unless
     * one is imported ("manifest_private_key"), which also needs it. */
    const struct tam_key *worker_seal_pub;
    size_t json_max;         /* JSON bodies: 64 KiB */
    size_t policy_max;       /* PUT policy: 1 MiB (TAM_STORE_MAX_POLICY) */
    size_t upload_max;       /* POST components (envelope or JSON with base64): 16 MiB */
    uint32_t max_tenants;    /* 10000 */
    uint32_t max_anchors;    /* per tenant and kind: 64 */
    uint32_t max_components; /* per tenant (records): 65536 */
    uint32_t list_max;       /* page size ceiling of device listings: 1000 */
    uint32_t history_max;    /* history entries shown per device: 20 */
};

/*
 * Creates the admin API. loop and redis are borrowed and must outlive the admin (or at least
 * every request it handles). TAM_OK, TAM_EINVAL (no kek, worker key not a P-256 key),
 * TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_admin_create(struct uv_loop_s *loop, struct tam_redis *redis,
                                    const struct tam_admin_opts *opts, struct tam_admin **out);

/*
 * Releases the admin; NULL-safe. Requests still waiting for Redis keep it alive until their
 * replies (or the Redis client's destruction, which fails them with 503) have come.
 */
void tam_admin_destroy(struct tam_admin *a);

/* Whether the request target belongs to the admin API ("/v1" or "/v1/..."). */
bool tam_admin_handles(const char *target);

/*
 * Handles one request whose target tam_admin_handles() accepted (any other target gets a 404
 * problem). Takes over the request: it responds exactly once, now or from a Redis callback.
 */
void tam_admin_handle(struct tam_http_request *req, struct tam_admin *a);

/* The largest body any endpoint accepts: the admin listener's limits.body_bytes. */
size_t tam_admin_body_limit(const struct tam_admin *a);

/* Counters (single-threaded), for /metrics. */
struct tam_admin_stats {
    uint64_t requests;
    uint64_t responses[6];  /* by status class */
    uint64_t auth_failures; /* 401 */
    uint64_t forbidden;     /* 403 */
    uint64_t pending;       /* gauge: requests waiting for Redis */
};
const struct tam_admin_stats *tam_admin_get_stats(const struct tam_admin *a);

#endif
