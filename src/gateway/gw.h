/*
 * tamd internals: the TEEP-over-HTTP gateway (issue #3). Shared by the files of
 * src/gateway only; nothing outside includes it.
 *
 * One gateway (struct tam_gw) is one libuv loop in one process: the TEEP listener, the
 * admin listener, two Redis connections (commands; the blocking result reader), the
 * tenant registry, a device-key cache and the table of HTTP requests waiting for a
 * worker result. Everything that must survive the process lives in Redis (sessions,
 * devices, jobs, results), so any gateway process on any host can take the next
 * message of a session.
 *
 * Files:
 *   main.c      argv/config, process roles (parent, child gateway), signals
 *   super.c     the parent: private redis-server, gateway children, tam-worker children
 *   gateway.c   one gateway: listeners, Redis clients, reload, shutdown
 *   tenants.c   tenant registry built from [tenant NAME] sections (swapped on reload)
 *   route.c     pure HTTP rules: TAM paths, Accept, Content-Type
 *   connect.c   ProcessConnect: empty POST -> signed QueryRequest
 *   message.c   ProcessTeepMessage: verify, match the token, hand over to a worker
 *   devkeys.c   device keys by kid: Redis lookup, startup registration
 *   keycache.c  the bounded LRU of device keys (pure)
 *   results.c   the result stream reader and the table of waiting requests
 *   admin.c     /healthz, /readyz, /metrics
 */
#ifndef TAM_GW_H
#define TAM_GW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tam/admin.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/common.h"
#include "tam/config.h"
#include "tam/cose.h"
#include "tam/crypto.h"
#include "tam/http.h"
#include "tam/job.h"
#include "tam/keys.h"
#include "tam/redis.h"
#include "tam/seal.h"
#include "tam/session.h"
#include "tam/teep.h"
#include "tam/tenant.h"

#define TAM_GW_ID_MAX           96 /* hostname-pid-random, [A-Za-z0-9._-] */
#define TAM_GW_JOBS_MAXLEN      "1000000"
#define TAM_GW_RESULTS_BLOCK_MS 1000
#define TAM_GW_RESULTS_COUNT    "64"
#define TAM_GW_RESULTS_EXPIRE_S "600" /* a crashed gateway's stream goes away */
#define TAM_GW_KEYCACHE_MAX     4096  /* device keys cached per process */
#define TAM_GW_KEYCACHE_TTL_MS  5000 /* a deleted device is refused soon after */
#define TAM_GW_PENDING_BUCKETS  4096  /* hash buckets of the waiting-request table */
#define TAM_GW_WORK_BATCH       16    /* CPU-heavy steps (sign, verify) per loop iteration */
#define TAM_GW_REDIS_INFLIGHT   65536 /* commands in flight on the command connection */

/* ---- route.c: pure HTTP rules ---- */

enum tam_gw_route {
    TAM_GW_ROUTE_NONE = 0,    /* not a TAM path: 404 */
    TAM_GW_ROUTE_TENANT = 1,  /* /tam/{tenant}: *tenant set */
    TAM_GW_ROUTE_DEFAULT = 2, /* /tam: the default tenant */
};

/*
 * Classifies a request target. /tam/{id} with a valid tenant id gives TENANT and the id
 * (tenant_out holds TAM_TENANT_ID_MAX + 1 bytes); /tam gives DEFAULT. Anything else,
 * including a query, a '%' escape, a trailing slash or an invalid id, gives NONE.
 */
enum tam_gw_route tam_gw_route_parse(const char *target, char *tenant_out);
/* False when an Accept header is present and excludes application/teep+cbor. */
bool tam_gw_accept_ok(const char *accept);
/* True for exactly "application/teep+cbor" (case-insensitive, no parameters, OWS allowed). */
bool tam_gw_content_type_ok(const char *ct);

/* ---- tenants.c ---- */

/* A configured device key: registered in Redis at startup. */
struct tam_gw_devreg {
    char tenant[TAM_TENANT_ID_MAX + 1];
    enum tam_key_type type;
    uint8_t pub[64];
    size_t pub_len;
    uint8_t kid[TAM_KID_LEN];
};

/*
 * The tenant registry: an immutable snapshot built from a configuration. Lookups return
 * a reference the caller releases with tam_tenant_unref(), so a reload may destroy the
 * registry while requests keep the tenants they started with. Issue 5 (admin API) can
 * replace the backing store (Redis + pub/sub) behind these four functions.
 */
struct tam_gw_tenants;

/*
 * Loads every [tenant NAME] section: TAM keys from their PEM files ([0] P-256, [1]
 * Ed25519; at least one required), device keys (public halves) for registration.
 * TAM_OK; TAM_ECONFIG with a message in err; TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_gw_tenants_build(const struct tam_config *cfg, struct tam_gw_tenants **out,
                                        struct tam_buf *err);
void tam_gw_tenants_destroy(struct tam_gw_tenants *reg); /* NULL-safe */
/* A new reference to the tenant, or NULL when unknown. */
struct tam_tenant *tam_gw_tenants_get(const struct tam_gw_tenants *reg, const char *id);
size_t tam_gw_tenants_count(const struct tam_gw_tenants *reg);
/* The configured device keys (borrowed, n entries). */
const struct tam_gw_devreg *tam_gw_tenants_devices(const struct tam_gw_tenants *reg, size_t *n);

/* ---- rtenants.c: tenants of the admin API, cached from Redis ---- */

#define TAM_GW_RTENANTS_MAX     4096 /* cached tenant ids (known and absent) per process */
#define TAM_GW_RTENANT_FRESH_MS 1000 /* then revalidated (HGET rev) on the next lookup */

struct tam_gw;
/* A tenant lookup's answer: a new reference (caller unrefs), or NULL with err TAM_OK
 * (unknown tenant) or an error (TAM_EUNAVAIL: Redis; TAM_ENOMEM). */
typedef void (*tam_gw_tenant_fn)(struct tam_gw *gw, struct tam_tenant *t, int err, void *arg);

struct tam_gw_rtenants;

TAM_MUST_CHECK int tam_gw_rtenants_create(struct tam_gw *gw, struct tam_gw_rtenants **out);
/* After the Redis client is destroyed (its callbacks reference entries); NULL-safe. */
void tam_gw_rtenants_destroy(struct tam_gw_rtenants *rt);
/* cb fires exactly once: now when the cache answers, else when Redis does. */
void tam_gw_rtenants_lookup(struct tam_gw_rtenants *rt, const char *id, tam_gw_tenant_fn cb,
                            void *arg);
size_t tam_gw_rtenants_count(const struct tam_gw_rtenants *rt);

/* ---- keycache.c: LRU cache of device public keys by (tenant, kid) ---- */

struct tam_gw_devkey {
    unsigned refs;
    struct tam_key *key; /* owned, public */
    char tenant[TAM_TENANT_ID_MAX + 1];
    uint8_t kid[TAM_KID_LEN];
    uint64_t expires_ms;
    double tokens;       /* rate limit bucket (tam_gw_rate_allow) */
    uint64_t bucket_ms;  /* when tokens was last refilled; 0 = never */
    uint32_t hash;
    struct tam_gw_devkey *chain;               /* bucket chain */
    struct tam_gw_devkey *lru_prev, *lru_next; /* most recent first */
    bool cached;
};

struct tam_gw_keycache {
    struct tam_gw_devkey **buckets;
    size_t nbuckets;
    struct tam_gw_devkey *lru_head, *lru_tail;
    size_t n, max;
    uint64_t ttl_ms;
    uint64_t hits, misses, evictions;
};

TAM_MUST_CHECK int tam_gw_keycache_init(struct tam_gw_keycache *kc, size_t max, uint64_t ttl_ms);
void tam_gw_keycache_finish(struct tam_gw_keycache *kc);
/* A referenced entry, or NULL (absent or expired at now_ms). */
struct tam_gw_devkey *tam_gw_keycache_get(struct tam_gw_keycache *kc, const char *tenant,
                                          const uint8_t kid[TAM_KID_LEN], uint64_t now_ms);
/* Takes ownership of key; returns a referenced entry (also cached), NULL on OOM (key freed). */
struct tam_gw_devkey *tam_gw_keycache_put(struct tam_gw_keycache *kc, const char *tenant,
                                          struct tam_key *key, uint64_t now_ms);
void tam_gw_devkey_unref(struct tam_gw_devkey *e); /* NULL-safe */
/*
 * A token bucket per device and process: refilled at rps per second up to TAM_GW_RATE_BURST
 * seconds' worth (so a whole session's messages pass at once). Takes one token and returns
 * true, or returns false when none is left. rps 0: always true.
 */
#define TAM_GW_RATE_BURST 4
bool tam_gw_rate_allow(double *tokens, uint64_t *last_ms, uint32_t rps, uint64_t now_ms);

/* ---- counters ---- */

enum tam_gw_outcome {
    TAM_GW_OUT_ACCEPTED = 0,
    TAM_GW_OUT_COSE,          /* not a well-formed COSE_Sign1 / COSE_Sign */
    TAM_GW_OUT_UNKNOWN_KID,   /* no key for the kid (or none of the kidless tries) */
    TAM_GW_OUT_SIGNATURE,     /* the signature does not verify */
    TAM_GW_OUT_TEEP,          /* the payload is not a valid TEEP message */
    TAM_GW_OUT_UNKNOWN_TOKEN, /* no session: never issued, expired or already consumed */
    TAM_GW_OUT_TENANT,        /* the session belongs to another tenant */
    TAM_GW_OUT_EXPIRED,       /* the session record says expired */
    TAM_GW_OUT_WRONG_TYPE,    /* not an answer to that kind of request */
    TAM_GW_OUT_REPLAY,        /* another request consumed the token first */
    TAM_GW_OUT_UNAVAILABLE,   /* Redis unavailable: 503 */
    TAM_GW_OUT_TIMEOUT,       /* no worker result in time: 503 */
    TAM_GW_OUT_RATE_LIMITED,  /* over the tenant's rps_per_device: 429 */
    TAM_GW_OUT_COUNT_
};

#define TAM_GW_TYPES 6 /* 0 = not decoded, 1..5 = enum tam_teep_type */

/* Exact statuses the gateway answers itself (server-generated ones are in http stats). */
#define TAM_GW_STATUS_LIST                     \
    {                                          \
        200, 204, 404, 405, 406, 415, 429, 500, 503 \
    }
#define TAM_GW_N_STATUS 9

struct tam_gw_stats {
    uint64_t sessions_created;
    uint64_t msgs[TAM_GW_TYPES][TAM_GW_OUT_COUNT_];
    uint64_t status[TAM_GW_N_STATUS];
    uint64_t jobs_enqueued[3]; /* by enum tam_job_kind */
    uint64_t job_timeouts;
    uint64_t results;         /* delivered to a waiting request */
    uint64_t results_late;    /* no waiting request: timed out, or unknown */
    uint64_t results_bad;     /* undecodable result entries */
    uint64_t unverified_jobs; /* unknown kid passed on in attested enrollment */
    uint64_t reloads, reload_failures;
    uint64_t devices_registered;
};

const char *tam_gw_outcome_name(enum tam_gw_outcome o);

/* ---- secrets.c ---- */

enum tam_gw_secret {
    TAM_GW_SECRET_KEK = 0,
    TAM_GW_SECRET_WORKER_KEY,
    TAM_GW_SECRET_OPERATOR_TOKEN,
};

struct tam_gw_secrets {
    bool have_kek;
    uint8_t kek[TAM_SEAL_KEK_LEN];
    struct tam_key *worker_pub; /* owned; NULL: no manifest keys for new tenants */
};

/* The configured path of a secret, or its default in data-dir (in buf); NULL if too long. */
const char *tam_gw_secret_path(const struct tam_config *cfg, enum tam_gw_secret which, char *buf,
                               size_t bufsz);
/* Zero configuration: creates the KEK and the worker sealing key when absent (0600). */
TAM_MUST_CHECK int tam_gw_secrets_create(const struct tam_config *cfg);
/* Loads what exists; missing secrets are logged and leave their fields empty. */
void tam_gw_secrets_load(const struct tam_config *cfg, struct tam_gw_secrets *s);
void tam_gw_secrets_finish(struct tam_gw_secrets *s);
/* Writes token and a newline to path (created or truncated, mode 0600, no symlinks). */
TAM_MUST_CHECK int tam_gw_write_token_file(const char *path, const char *token);

/* ---- gateway.c ---- */

/*
 * A CPU-heavy step (signing, verifying) queued to run from the loop in small batches, so
 * that a burst of thousands of requests never holds the loop for long: Redis replies,
 * timers and new connections are served between batches (and a Redis reply sitting in
 * the socket is not mistaken for a timeout).
 */
struct tam_gw_work {
    struct tam_gw_work *next;
    void (*fn)(struct tam_gw_work *w);
};

struct tam_gw_wait;
struct tam_gw_results;

struct tam_gw {
    uv_loop_t *loop;
    struct tam_config cfg; /* owned; replaced by a successful reload */
    char redis_addr[TAM_CONFIG_STR_MAX + 1];
    char id[TAM_GW_ID_MAX];
    char results_key[TAM_KEY_MAX];
    struct tam_gw_tenants *tenants; /* owned; swapped by reload */
    struct tam_gw_secrets secrets;
    struct tam_admin *adm;   /* the admin API (/v1); NULL without a KEK */
    struct tam_gw_rtenants *rtenants; /* admin API tenants; NULL without a KEK */
    bool operator_ensured;   /* the operator token exists (checked once per process) */
    struct tam_tls_ctx *tls;        /* owned reference; NULL on plain HTTP */
    struct tam_tls_ctx *admin_tls;  /* the admin listener's; NULL on plain HTTP */
    struct tam_http_server *api;
    struct tam_http_server *admin;
    struct tam_redis *rc; /* commands */
    struct tam_gw_results *results;
    struct tam_gw_keycache keys;
    struct tam_gw_wait **pending; /* waiting for a result, by job id hash */
    size_t n_pending;
    struct tam_gw_stats stats;
    bool draining;
    bool api_done, admin_done;
    uv_idle_t work_idle;
    bool work_open;
    struct tam_gw_work *work_head, *work_tail;
    size_t n_work;
    void (*on_done)(struct tam_gw *gw, void *arg);
    void *done_arg;
};

/*
 * Creates a gateway on loop from cfg (taken over: *cfg is zeroed), talking to Redis at
 * redis_addr (cfg->redis when NULL). Binds both listeners at once. TAM_OK; TAM_ECONFIG
 * (tenants, TLS files, addresses: logged); -errno from bind; TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_gw_create(uv_loop_t *loop, struct tam_config *cfg, const char *redis_addr,
                                 struct tam_gw **out);
/* Loads the tenants' keys and the TLS files once, to refuse a bad configuration early. */
TAM_MUST_CHECK int tam_gw_check_config(const struct tam_config *cfg);
/*
 * SIGTERM: stops accepting, lets in-flight requests finish (waiting jobs get their result
 * or their job timeout) within shutdown-timeout, removes this gateway's result stream,
 * closes Redis; on_done fires when every handle is closed (then call tam_gw_destroy).
 */
void tam_gw_shutdown(struct tam_gw *gw, void (*on_done)(struct tam_gw *, void *), void *arg);
/* SIGHUP: configuration, tenants and TLS certificate; keeps the old ones on error. */
int tam_gw_reload(struct tam_gw *gw);
void tam_gw_destroy(struct tam_gw *gw); /* after on_done; NULL-safe */
bool tam_gw_ready(const struct tam_gw *gw);
/* Wall clock in unix milliseconds (sessions and devices are shared between hosts). */
uint64_t tam_gw_now_ms(void);
/* Counts one answer and sends it (status only). */
void tam_gw_respond_status(struct tam_gw *gw, struct tam_http_request *req, int status);
/* 429 with Retry-After: 1 (a device over its tenant's rate). */
void tam_gw_respond_429(struct tam_gw *gw, struct tam_http_request *req);
/* 200 with a TEEP body and the four mandatory headers. */
void tam_gw_respond_teep(struct tam_gw *gw, struct tam_http_request *req, const uint8_t *body,
                         size_t len);
/* Queues w; fn runs later from the loop (FIFO, TAM_GW_WORK_BATCH per iteration). */
void tam_gw_defer(struct tam_gw *gw, struct tam_gw_work *w, void (*fn)(struct tam_gw_work *w));
/* Counts one incoming message by type (0 = unknown) and outcome. */
void tam_gw_count(struct tam_gw *gw, int type, enum tam_gw_outcome o);

/* ---- connect.c / message.c ---- */

/* A request waiting for a worker result, linked into the pending table by job id. */
struct tam_gw_wait {
    uint8_t id[TAM_JOB_ID_LEN];
    uint32_t hash;
    struct tam_gw_wait *next;
};

/* ProcessConnect for an empty POST; takes the request and the tenant reference. */
void tam_gw_connect(struct tam_gw *gw, struct tam_http_request *req, struct tam_tenant *t);
/* ProcessTeepMessage for a non-empty POST; takes the request and the tenant reference. */
void tam_gw_message(struct tam_gw *gw, struct tam_http_request *req, struct tam_tenant *t);
/* The worker's result for a waiting message (already removed from the table). */
void tam_gw_message_result(struct tam_gw *gw, struct tam_gw_wait *w,
                           const struct tam_job_result *r);
/* Shutdown: answers every waiting message with 503 (their connections are gone). */
void tam_gw_message_fail_all(struct tam_gw *gw);

/* ---- devkeys.c ---- */

typedef void (*tam_gw_key_fn)(struct tam_gw *gw, struct tam_gw_devkey *key, int err, void *arg);

/*
 * Finds the public key of device kid in tenant: the cache, else HMGET type pub of
 * the device hash. cb fires exactly once (possibly before this returns, on a cache hit)
 * with a referenced key, or NULL and TAM_ENOTFOUND (unknown or malformed) or
 * TAM_EUNAVAIL (Redis).
 */
void tam_gw_devkey_lookup(struct tam_gw *gw, const char *tenant, const uint8_t kid[TAM_KID_LEN],
                          tam_gw_key_fn cb, void *arg);
/* Writes the configured device keys into Redis without overwriting newer data. */
void tam_gw_devkeys_register(struct tam_gw *gw);

/* ---- results.c ---- */

TAM_MUST_CHECK int tam_gw_results_create(struct tam_gw *gw, struct tam_gw_results **out);
/* Stops reading, deletes the stream, closes the connection; done fires once closed. */
void tam_gw_results_stop(struct tam_gw_results *res, void (*done)(void *arg), void *arg);
const struct tam_redis_stats *tam_gw_results_redis_stats(const struct tam_gw_results *res);
bool tam_gw_results_connected(const struct tam_gw_results *res);

TAM_MUST_CHECK int tam_gw_pending_init(struct tam_gw *gw);
void tam_gw_pending_finish(struct tam_gw *gw);
void tam_gw_pending_add(struct tam_gw *gw, struct tam_gw_wait *w);
void tam_gw_pending_remove(struct tam_gw *gw, struct tam_gw_wait *w);
/* Finds and unlinks the entry for id; NULL if none. */
struct tam_gw_wait *tam_gw_pending_take(struct tam_gw *gw, const uint8_t id[TAM_JOB_ID_LEN]);
/* Unlinks and returns any entry; NULL when empty. */
struct tam_gw_wait *tam_gw_pending_pop(struct tam_gw *gw);

/* ---- admin.c ---- */

void tam_gw_admin_handle(struct tam_http_request *req, void *ctx);
/* Appends the Prometheus text of gw's counters. */
TAM_MUST_CHECK int tam_gw_metrics_render(const struct tam_gw *gw, struct tam_buf *out);

#endif
