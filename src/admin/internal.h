/*
 * Shared by the files of src/admin only: the admin object, one request in progress (an "op"),
 * the Redis step helper, responses, and JSON validation helpers.
 *
 * An op lives from tam_admin_handle() to its response. Each Redis round trip is a step:
 * the handler fills op's argument list (adm_arg*) and calls adm_redis(op, next); next runs
 * with the reply, or the op is answered 503 (Redis unavailable or timed out) / 500 (Redis
 * error) without calling next. Every path ends in exactly one adm_json / adm_problem /
 * adm_empty / adm_raw, which responds and frees the op.
 */
#ifndef TAM_ADMIN_INTERNAL_H
#define TAM_ADMIN_INTERNAL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tam/admin.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/keys.h"
#include "tam/teep.h"
#include "tam/tstore.h"

struct tam_admin {
    struct uv_loop_s *loop;
    struct tam_redis *redis;
    uint8_t kek[TAM_SEAL_KEK_LEN];
    struct tam_key *worker_pub; /* owned copy, or NULL */
    struct tam_admin_opts opts; /* with defaults filled in; kek/worker pointers cleared */
    struct tam_admin_stats stats;
    bool closing;
};

enum adm_scope {
    ADM_OPERATOR = 1, /* operator token only */
    ADM_TENANT = 2,   /* the path tenant's token only */
    ADM_EITHER = 3,   /* either */
};

enum adm_body {
    ADM_BODY_NONE = 0,   /* any body is ignored */
    ADM_BODY_JSON = 1,   /* application/json object, json_max */
    ADM_BODY_POLICY = 2, /* application/json, policy_max (parsed by the handler) */
    ADM_BODY_UPLOAD = 3, /* envelope or JSON, upload_max (handled by the handler) */
};

struct adm_op;
typedef void (*adm_handler_fn)(struct adm_op *op);
typedef void (*adm_step_fn)(struct adm_op *op, const redisReply *reply);

struct adm_route {
    const char *pattern; /* segments after /v1/: literals, {t} {kid} {kind} {cid} {seq} */
    const char *method;
    enum adm_scope scope;
    enum adm_body body;
    adm_handler_fn fn;
};

#define ADM_CID_HEX_MAX 1024 /* hex of an encoded component id in a path */

struct adm_op {
    struct tam_admin *a;
    struct tam_http_request *req;
    const struct adm_route *route;
    uint64_t started_ns;

    /* Path parameters. */
    char tenant[TAM_TENANT_ID_MAX + 1];
    uint8_t kid[TAM_KID_LEN];
    char kid_hex[2 * TAM_KID_LEN + 1];
    enum tam_anchor_kind kind;
    char cid_hex[ADM_CID_HEX_MAX + 1];
    uint64_t seq;
    const char *query; /* after '?', borrowed from the request; "" when absent */

    struct tam_tstore_owner owner;
    json_t *body; /* parsed JSON body (ADM_BODY_JSON) */

    /* Redis arguments of the next step. */
    const char **argv;
    size_t *argl;
    int argc, argcap;
    bool arg_oom;
    adm_step_fn next;

    /* Scratch shared by the steps of one handler. */
    struct tam_arena arena;
    struct tam_buf buf;
    json_t *resp;
    uint64_t cursor;
    uint32_t limit;
    int phase;
    void *ctx;
    void (*ctx_free)(void *ctx);
};

/* ---- routes (one table per file) ---- */
extern const struct adm_route adm_tenant_routes[];
extern const size_t adm_tenant_nroutes;
extern const struct adm_route adm_device_routes[];
extern const size_t adm_device_nroutes;
extern const struct adm_route adm_component_routes[];
extern const size_t adm_component_nroutes;
extern const struct adm_route adm_policy_routes[];
extern const size_t adm_policy_nroutes;

/* ---- Redis steps ---- */

/* Appends an argument; borrowed until adm_redis() returns. */
void adm_arg(struct adm_op *op, const void *p, size_t len);
void adm_arg_str(struct adm_op *op, const char *s);
/* Appends a formatted argument (copied into op->arena). */
void adm_argf(struct adm_op *op, const char *fmt, ...) TAM_PRINTF(2, 3);
/* Sends the arguments gathered so far as one command; next gets the reply (see top). */
void adm_redis(struct adm_op *op, adm_step_fn next);
/* A copy of s in op->arena (NULL on OOM). */
char *adm_strdup(struct adm_op *op, const char *s, size_t len);

/* ---- responses (each one ends the op) ---- */

void adm_json(struct adm_op *op, int status, json_t *body, const char *location);
/* 200 {"<member>": arr}; takes arr. !ok (building arr failed) or no memory: a 5xx problem. */
void adm_json_list(struct adm_op *op, const char *member, json_t *arr, bool ok);
void adm_problem(struct adm_op *op, int status, const char *fmt, ...) TAM_PRINTF(3, 4);
void adm_empty(struct adm_op *op, int status);
void adm_raw(struct adm_op *op, int status, const char *ctype, const void *body, size_t len);
/* 503 for TAM_ENOMEM/TAM_EUNAVAIL/TAM_ETIMEOUT, 500 otherwise; what names the step. */
void adm_fail(struct adm_op *op, int err, const char *what);

/* ---- JSON helpers (adm_json.c) ---- */

/* Validation state: the first problem, "member: message". */
struct adm_jv {
    char why[256];
    bool bad;
};

bool adm_jv_fail(struct adm_jv *v, const char *member, const char *fmt, ...) TAM_PRINTF(3, 4);
/* Only the NULL-terminated members are allowed in o. */
bool adm_jv_members(struct adm_jv *v, json_t *o, const char *const *known);
/* Optional (absent: *out untouched, true) or required string of 1..max bytes. */
bool adm_jv_string(struct adm_jv *v, json_t *o, const char *name, bool required, size_t max,
                   const char **out, size_t *len);
bool adm_jv_bool(struct adm_jv *v, json_t *o, const char *name, bool *out);
bool adm_jv_uint(struct adm_jv *v, json_t *o, const char *name, bool required, uint64_t min,
                 uint64_t max, uint64_t *out);
/* Hex string of exactly n bytes (or min..max when n == 0) into out (arena), *len. */
bool adm_jv_hex(struct adm_jv *v, json_t *e, const char *name, size_t min, size_t max,
                struct tam_arena *arena, struct tam_bytes *out);
/* A component id: array of 1..TAM_TEEP_MAX_ID_SEGMENTS hex strings (segments in arena). */
bool adm_jv_component_id(struct adm_jv *v, json_t *e, const char *name, struct tam_arena *arena,
                         struct tam_teep_component_id *out);
/* Labels: array of at most TAM_PLAN_MAX_LABELS strings of 1..64 printable bytes without ','. */
bool adm_jv_labels(struct adm_jv *v, json_t *e, const char *name, struct tam_buf *joined);

/* JSON for a component id: array of hex strings. NULL on OOM. */
json_t *adm_json_component_id(const struct tam_teep_component_id *id);
/* JSON string of lower-case hex. NULL on OOM. */
json_t *adm_json_hex(const uint8_t *p, size_t len);
/* Adds a member; returns false on OOM (the value is released). */
bool adm_set(json_t *o, const char *name, json_t *value);

/* A public key as the API shows it: {"key_type", "kid", "public_pem"} (+ "alg" when given). */
json_t *adm_json_key(const struct tam_key *k, const char *alg);

/* Whether a Content-Type (parameters ignored) is the media type want (case-insensitive). */
bool adm_media_is(const char *ct, const char *want);
/* Decimal uint64 without sign or leading zeros; false otherwise. */
bool adm_parse_u64(const char *s, size_t len, uint64_t *out);
/* Milliseconds since the epoch (the wall clock: stored timestamps). */
uint64_t adm_now_ms(void);

#endif
