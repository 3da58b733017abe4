/*
 * /v1/tenants/{t}/policy (the policy document of store.h, validated in full and stored
 * canonically) and /v1/tenants/{t}/trust-anchors (tc-signer, attester and verifier public
 * keys, tam:t:{t}:anchors:<kind>, kid hex -> SPKI PEM).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/http.h"
#include "tam/store.h"

#define PEM_MAX      (16u << 10)
#define POLICY_EMPTY "{\"rules\":[]}"

static void arg_key(struct adm_op *op, const char *what)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_key_tenant(k, op->tenant, what);
    adm_arg(op, adm_strdup(op, k, n), n);
}

static void arg_anchors(struct adm_op *op, enum tam_anchor_kind kind)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_tstore_key_anchors(k, op->tenant, kind);
    adm_arg(op, adm_strdup(op, k, n), n);
}

/* ---- policy ---- */

/* KEYS: policy, catalog_version. ARGV: document, tenant. */
static const char policy_lua[] =
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'catalog ' .. ARGV[2] .. ' ' .. v)\n"
    "return v\n";

static void on_policy_set(struct adm_op *op, const redisReply *r)
{
    (void)r;
    adm_raw(op, 200, "application/json", op->buf.data, op->buf.len);
}

static void policy_put(struct adm_op *op)
{
    struct tam_bytes body = tam_http_request_body(op->req);
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        adm_problem(op, 400, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
        return;
    }
    op->body = doc;
    struct tam_store_policy pol;
    char why[256];
    int err = tam_store_policy_parse((const char *)body.ptr, body.len, &op->arena, &pol, why,
                                     sizeof(why));
    if (err == TAM_ENOMEM) {
        adm_fail(op, err, "policy");
        return;
    }
    if (err != TAM_OK) {
        adm_problem(op, 422, "%s", why);
        return;
    }
    /* Canonical form: compact, members sorted; what GET returns byte for byte. */
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII;
    size_t n = json_dumpb(doc, NULL, 0, flags);
    if (n == 0 || tam_buf_reserve(&op->buf, n) != TAM_OK ||
        json_dumpb(doc, (char *)op->buf.data, n, flags) != n) {
        adm_fail(op, TAM_ENOMEM, "policy");
        return;
    }
    op->buf.len = n;
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, policy_lua);
    adm_arg_str(op, "2");
    arg_key(op, "policy");
    arg_key(op, "catalog_version");
    adm_arg(op, op->buf.data, op->buf.len);
    adm_arg_str(op, op->tenant);
    adm_redis(op, on_policy_set);
}

static void on_policy(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING) {
        adm_raw(op, 200, "application/json", POLICY_EMPTY, strlen(POLICY_EMPTY));
        return;
    }
    adm_raw(op, 200, "application/json", r->str, r->len);
}

static void policy_get(struct adm_op *op)
{
    adm_arg_str(op, "GET");
    arg_key(op, "policy");
    adm_redis(op, on_policy);
}

/* ---- trust anchors ---- */

static json_t *anchor_json(enum tam_anchor_kind kind, const char *pem, size_t len)
{
    struct tam_key *k = NULL;
    if (tam_key_from_pem(pem, len, &k) != TAM_OK) {
        return NULL;
    }
    json_t *j = adm_json_key(k, NULL);
    tam_key_destroy(k);
    if (j != NULL && !adm_set(j, "kind", json_string(tam_tstore_anchor_kind_name(kind)))) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* KEYS: anchors, catalog_version, cfg. ARGV: kid, pem, max, tenant. */
static const char anchor_add_lua[] =
    "if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
    "if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[4])\n"
    "return 1\n";

static void on_anchor_added(struct adm_op *op, const redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 409, "this %s key is already a trust anchor",
                    tam_tstore_anchor_kind_name(op->kind));
    } else if (v == -1) {
        adm_problem(op, 409, "at most %u %s trust anchors", op->a->opts.max_anchors,
                    tam_tstore_anchor_kind_name(op->kind));
    } else if (v == -2) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
    } else if (v != 1) {
        adm_fail(op, TAM_EREDIS, "trust anchor");
    } else {
        json_t *j = op->resp;
        op->resp = NULL;
        char loc[TAM_KEY_MAX];
        (void)snprintf(loc, sizeof(loc), "/v1/tenants/%s/trust-anchors/%s/%s", op->tenant,
                       tam_tstore_anchor_kind_name(op->kind), op->kid_hex);
        adm_json(op, 201, j, loc);
    }
}

static void anchor_add(struct adm_op *op)
{
    static const char *const known[] = {"kind", "public_pem", NULL};
    struct adm_jv v = {0};
    const char *kind = NULL, *pem = NULL;
    size_t klen = 0, plen = 0;
    struct tam_key *k = NULL;
    bool ok = adm_jv_members(&v, op->body, known) &&
              adm_jv_string(&v, op->body, "kind", true, 16, &kind, &klen) &&
              (tam_tstore_anchor_kind_parse(kind, klen, &op->kind) == TAM_OK ||
               adm_jv_fail(&v, "kind", "\"tc-signer\", \"attester\" or \"verifier\" expected")) &&
              adm_jv_string(&v, op->body, "public_pem", true, PEM_MAX, &pem, &plen);
    if (ok && tam_key_from_pem(pem, plen, &k) != TAM_OK) {
        ok = adm_jv_fail(&v, "public_pem", "not a P-256 or Ed25519 public key (SPKI PEM)");
    }
    if (ok && tam_key_has_private(k)) {
        ok = adm_jv_fail(&v, "public_pem", "a private key was sent: send only the public key");
    }
    struct tam_buf canon;
    tam_buf_init(&canon, PEM_MAX);
    if (ok && tam_key_public_pem(k, &canon) != TAM_OK) {
        ok = adm_jv_fail(&v, "public_pem", "cannot be re-encoded");
    }
    if (ok) {
        tam_hex_encode(tam_key_kid(k), TAM_KID_LEN, op->kid_hex);
        op->resp = anchor_json(op->kind, (const char *)canon.data, canon.len);
    }
    tam_key_destroy(k);
    if (!ok || op->resp == NULL) {
        tam_buf_finish(&canon);
        if (ok) {
            adm_fail(op, TAM_ENOMEM, "trust anchor");
        } else {
            adm_problem(op, 422, "%s", v.why);
        }
        return;
    }
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, anchor_add_lua);
    adm_arg_str(op, "3");
    arg_anchors(op, op->kind);
    arg_key(op, "catalog_version");
    arg_key(op, "cfg");
    adm_arg_str(op, op->kid_hex);
    adm_arg(op, adm_strdup(op, (const char *)canon.data, canon.len), canon.len);
    adm_argf(op, "%u", op->a->opts.max_anchors);
    adm_arg_str(op, op->tenant);
    tam_buf_finish(&canon);
    adm_redis(op, on_anchor_added);
}

static const char anchors_all_lua[] =
    "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]),\n"
    "        redis.call('HGETALL', KEYS[3])}\n";

static void on_anchor_list(struct adm_op *op, const redisReply *r)
{
    json_t *arr = json_array();
    bool ok = arr != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == TAM_ANCHOR_KINDS;
    for (size_t kind = 0; ok && kind < TAM_ANCHOR_KINDS; kind++) {
        const redisReply *h = r->element[kind];
        for (size_t i = 0; ok && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
            const redisReply *pem = h->element[i + 1];
            json_t *j = pem->type == REDIS_REPLY_STRING
                            ? anchor_json((enum tam_anchor_kind)kind, pem->str, pem->len)
                            : NULL;
            ok = j == NULL || json_array_append_new(arr, j) == 0;
        }
    }
    adm_json_list(op, "trust_anchors", arr, ok);
}

static void anchor_list(struct adm_op *op)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, anchors_all_lua);
    adm_argf(op, "%d", TAM_ANCHOR_KINDS);
    for (int k = 0; k < TAM_ANCHOR_KINDS; k++) {
        arg_anchors(op, (enum tam_anchor_kind)k);
    }
    adm_redis(op, on_anchor_list);
}

static void on_anchor(struct adm_op *op, const redisReply *r)
{
    json_t *j = r->type == REDIS_REPLY_STRING ? anchor_json(op->kind, r->str, r->len) : NULL;
    if (j == NULL) {
        adm_problem(op, 404, "no such trust anchor in tenant %s", op->tenant);
        return;
    }
    adm_json(op, 200, j, NULL);
}

static void anchor_get(struct adm_op *op)
{
    adm_arg_str(op, "HGET");
    arg_anchors(op, op->kind);
    adm_arg_str(op, op->kid_hex);
    adm_redis(op, on_anchor);
}

/* KEYS: anchors, catalog_version. ARGV: kid, tenant. */
static const char anchor_del_lua[] =
    "if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[2])\n"
    "return 1\n";

static void on_anchor_deleted(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        adm_problem(op, 404, "no such trust anchor in tenant %s", op->tenant);
        return;
    }
    adm_empty(op, 204);
}

static void anchor_delete(struct adm_op *op)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, anchor_del_lua);
    adm_arg_str(op, "2");
    arg_anchors(op, op->kind);
    arg_key(op, "catalog_version");
    adm_arg_str(op, op->kid_hex);
    adm_arg_str(op, op->tenant);
    adm_redis(op, on_anchor_deleted);
}

const struct adm_route adm_policy_routes[] = {
    {"tenants/{t}/policy", "GET", ADM_TENANT, ADM_BODY_NONE, policy_get},
    {"tenants/{t}/policy", "PUT", ADM_TENANT, ADM_BODY_POLICY, policy_put},
    {"tenants/{t}/trust-anchors", "GET", ADM_TENANT, ADM_BODY_NONE, anchor_list},
    {"tenants/{t}/trust-anchors", "POST", ADM_TENANT, ADM_BODY_JSON, anchor_add},
    {"tenants/{t}/trust-anchors/{kind}/{kid}", "GET", ADM_TENANT, ADM_BODY_NONE, anchor_get},
    {"tenants/{t}/trust-anchors/{kind}/{kid}", "DELETE", ADM_TENANT, ADM_BODY_NONE, anchor_delete},
};
const size_t adm_policy_nroutes = TAM_ARRAY_LEN(adm_policy_routes);
