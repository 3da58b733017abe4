/*
 * /v1/tenants/{t}/devices: register a device key (kid = RFC 9679 thumbprint), list (label
 * filter, SSCAN pages), show (identity, attestation, installed TCs, last seen, history),
 * change labels, delete. Device records follow keys.h exactly (tamd and tam-worker read them).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tam/store.h"

#define PEM_MAX    (16u << 10)
#define LIMIT_DEF  100
#define LABELS_MAX (TAM_PLAN_MAX_LABELS * (TAM_STORE_MAX_LABEL + 1))

struct dctx {
    char label[TAM_STORE_MAX_LABEL + 1]; /* list filter, "" = none */
    const char **kids;                   /* list: the page's kids (arena) */
    size_t nkids;
    char labels[LABELS_MAX + 1]; /* register / patch: the joined labels */
};

static struct dctx *dctx_new(struct adm_op *op)
{
    struct dctx *c = tam_arena_alloc(&op->arena, sizeof(*c));
    op->ctx = c; /* arena memory: released with the op (no ctx_free) */
    return c;
}

static void arg_device_key(struct adm_op *op, const char *suffix)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_key_device(k, op->tenant, op->kid, suffix);
    adm_arg(op, adm_strdup(op, k, n), n);
}

static void arg_tenant_key(struct adm_op *op, const char *what)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_key_tenant(k, op->tenant, what);
    adm_arg(op, adm_strdup(op, k, n), n);
}

/* "a,b" -> ["a", "b"]. */
static json_t *labels_json(const char *s, size_t len)
{
    json_t *a = json_array();
    size_t i = 0;
    while (a != NULL && i < len) {
        size_t n = 0;
        while (i + n < len && s[i + n] != ',') {
            n++;
        }
        if (n > 0 && json_array_append_new(a, json_stringn(s + i, n)) != 0) {
            json_decref(a);
            return NULL;
        }
        i += n + 1;
    }
    return a;
}

static bool labels_have(const char *s, size_t len, const char *want)
{
    size_t wl = strlen(want), i = 0;
    while (i < len) {
        size_t n = 0;
        while (i + n < len && s[i + n] != ',') {
            n++;
        }
        if (n == wl && memcmp(s + i, want, n) == 0) {
            return true;
        }
        i += n + 1;
    }
    return false;
}

static json_t *public_pem_json(const char *type, const uint8_t *pub, size_t len)
{
    enum tam_key_type t = strcmp(type, "ed25519") == 0 ? TAM_KEY_ED25519 : TAM_KEY_P256;
    struct tam_key *k = NULL;
    if (tam_key_from_raw_public(t, pub, len, &k) != TAM_OK) {
        return json_null();
    }
    struct tam_buf pem;
    tam_buf_init(&pem, PEM_MAX);
    json_t *j = tam_key_public_pem(k, &pem) == TAM_OK
                    ? json_stringn((const char *)pem.data, pem.len)
                    : json_null();
    tam_buf_finish(&pem);
    tam_key_destroy(k);
    return j;
}

/* A decimal timestamp field as a number, or null. */
static json_t *ms_json(const char *s, size_t len)
{
    uint64_t v;
    return s != NULL && adm_parse_u64(s, len, &v) ? json_integer((json_int_t)v) : json_null();
}

/* ---- register ---- */

/*
 * KEYS: devices set, device hash, tenant cfg. ARGV: kid, type, pub, labels, created, tenant.
 * 1 registered, 0 exists, -1 max_devices reached, -2 no such tenant.
 */
static const char register_lua[] =
    "if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end\n"
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
    "local max = tonumber(redis.call('HGET', KEYS[3], 'max_devices') or '100000')\n"
    "if redis.call('SCARD', KEYS[1]) >= max then return -1 end\n"
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], 'type', ARGV[2], 'pub', ARGV[3], 'labels', ARGV[4],\n"
    "           'created', ARGV[5])\n"
    "redis.call('HSETNX', KEYS[2], 'status', 'registered')\n"
    "redis.call('PUBLISH', 'tam:{events}', 'device ' .. ARGV[6] .. ' ' .. ARGV[1])\n"
    "return 1\n";

static void on_registered(struct adm_op *op, const redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 409, "device %s is already registered", op->kid_hex);
        return;
    }
    if (v == -1) {
        adm_problem(op, 409, "the tenant's max_devices limit is reached");
        return;
    }
    if (v == -2) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
        return;
    }
    if (v != 1) {
        adm_fail(op, TAM_EREDIS, "register");
        return;
    }
    json_t *j = op->resp;
    op->resp = NULL;
    char loc[TAM_KEY_MAX];
    (void)snprintf(loc, sizeof(loc), "/v1/tenants/%s/devices/%s", op->tenant, op->kid_hex);
    adm_json(op, 201, j, loc);
}

/* The device's key from "public_pem"; false (with a reason) unless a public key. */
static bool device_key(struct adm_jv *v, json_t *body, struct tam_key **k)
{
    const char *pem = NULL;
    size_t len = 0;
    if (!adm_jv_string(v, body, "public_pem", true, PEM_MAX, &pem, &len)) {
        return false;
    }
    if (tam_key_from_pem(pem, len, k) != TAM_OK) {
        return adm_jv_fail(v, "public_pem", "not a P-256 or Ed25519 public key (SPKI PEM)");
    }
    if (tam_key_has_private(*k)) {
        tam_key_destroy(*k);
        *k = NULL;
        return adm_jv_fail(v, "public_pem", "a private key was sent: send only the public key");
    }
    return true;
}

static bool parse_labels_member(struct adm_jv *v, json_t *body, struct dctx *c)
{
    struct tam_buf joined;
    tam_buf_init(&joined, LABELS_MAX);
    json_t *l = json_object_get(body, "labels");
    bool ok = l == NULL || adm_jv_labels(v, l, "labels", &joined);
    if (ok && joined.len > 0) {
        memcpy(c->labels, joined.data, joined.len);
    }
    c->labels[ok ? joined.len : 0] = '\0';
    tam_buf_finish(&joined);
    return ok;
}

static json_t *register_view(struct adm_op *op, const struct tam_key *k, const struct dctx *c,
                             uint64_t created)
{
    json_t *o = adm_json_key(k, NULL);
    bool ok = o != NULL && adm_set(o, "labels", labels_json(c->labels, strlen(c->labels)));
    ok = ok && adm_set(o, "status", json_string("registered"));
    ok = ok && adm_set(o, "created", json_integer((json_int_t)created));
    ok = ok && adm_set(o, "tenant", json_string(op->tenant));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void device_register(struct adm_op *op)
{
    static const char *const known[] = {"public_pem", "labels", NULL};
    struct adm_jv v = {0};
    struct tam_key *k = NULL;
    struct dctx *c = dctx_new(op);
    if (c == NULL) {
        adm_fail(op, TAM_ENOMEM, "register");
        return;
    }
    if (!adm_jv_members(&v, op->body, known) || !device_key(&v, op->body, &k) ||
        !parse_labels_member(&v, op->body, c)) {
        tam_key_destroy(k);
        adm_problem(op, 422, "%s", v.why);
        return;
    }
    memcpy(op->kid, tam_key_kid(k), TAM_KID_LEN);
    tam_hex_encode(op->kid, TAM_KID_LEN, op->kid_hex);
    uint8_t pub[64];
    size_t publen = tam_key_public_raw(k, pub);
    uint64_t now = adm_now_ms();
    op->resp = register_view(op, k, c, now);
    const char *type = tam_key_type(k) == TAM_KEY_P256 ? "p256" : "ed25519";
    tam_key_destroy(k);
    if (op->resp == NULL) {
        adm_fail(op, TAM_ENOMEM, "register");
        return;
    }
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, register_lua);
    adm_arg_str(op, "3");
    arg_tenant_key(op, "devices");
    arg_device_key(op, NULL);
    arg_tenant_key(op, "cfg");
    adm_arg_str(op, op->kid_hex);
    adm_arg_str(op, type);
    adm_arg(op, adm_strdup(op, (const char *)pub, publen), publen);
    adm_arg_str(op, c->labels);
    adm_argf(op, "%llu", (unsigned long long)now);
    adm_arg_str(op, op->tenant);
    adm_redis(op, on_registered);
}

/* ---- show one ---- */

static const redisReply *field(const redisReply *h, const char *name)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            h->element[i + 1]->type == REDIS_REPLY_STRING) {
            return h->element[i + 1];
        }
    }
    return NULL;
}

static json_t *text_or_null(const redisReply *f)
{
    return f != NULL ? json_stringn(f->str, f->len) : json_null();
}

static json_t *installed_json(struct adm_op *op, const redisReply *f)
{
    struct tam_plan_installed *v = NULL;
    uint32_t n = 0;
    json_t *a = json_array();
    if (a == NULL || f == NULL) {
        return a;
    }
    if (tam_store_installed_decode((const uint8_t *)f->str, f->len, &op->arena, &v, &n, NULL) !=
        TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=admin_bad_installed tenant=%s", op->tenant);
        return a;
    }
    for (uint32_t i = 0; i < n; i++) {
        json_t *e = json_object();
        bool ok = e != NULL && adm_set(e, "component_id", adm_json_component_id(&v[i].component));
        ok = ok &&
             adm_set(e, "manifest_component_id",
                     v[i].has_manifest_id ? adm_json_component_id(&v[i].manifest_id) : json_null());
        ok = ok && adm_set(e, "sequence", json_integer((json_int_t)v[i].sequence));
        ok = ok && adm_set(e, "digest", adm_json_hex(v[i].digest, TAM_PLAN_DIGEST_LEN));
        if (!ok || json_array_append_new(a, e) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *attestation_json(const redisReply *h)
{
    const redisReply *st = field(h, "status");
    const char *s = st == NULL                         ? "none"
                    : strcmp(st->str, "attested") == 0 ? "verified"
                    : strcmp(st->str, "attestation_failed") == 0 ? "failed"
                                                       : "none";
    json_t *o = json_object();
    bool ok = o != NULL && adm_set(o, "status", json_string(s));
    static const char *const names[] = {"ueid", "oemid", "hwmodel"};
    for (size_t i = 0; ok && i < TAM_ARRAY_LEN(names); i++) {
        const redisReply *f = field(h, names[i]);
        ok = f == NULL || adm_set(o, names[i], json_stringn(f->str, f->len));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *device_json(struct adm_op *op, const redisReply *h)
{
    const redisReply *type = field(h, "type"), *pub = field(h, "pub"), *lab = field(h, "labels");
    const char *t = type != NULL ? type->str : "p256";
    json_t *o = json_object();
    bool ok = o != NULL && adm_set(o, "kid", json_string(op->kid_hex));
    ok = ok && adm_set(o, "key_type", json_string(strcmp(t, "ed25519") == 0 ? "ed25519" : "p256"));
    ok = ok && adm_set(o, "public_pem",
                       pub != NULL ? public_pem_json(t, (const uint8_t *)pub->str, pub->len)
                                   : json_null());
    ok = ok && adm_set(o, "labels", lab != NULL ? labels_json(lab->str, lab->len) : json_array());
    ok = ok && adm_set(o, "status", text_or_null(field(h, "status")));
    ok = ok && adm_set(o, "attestation", attestation_json(h));
    ok = ok && adm_set(o, "installed", installed_json(op, field(h, "installed")));
    const redisReply *cr = field(h, "created"), *ls = field(h, "last_seen");
    ok = ok && adm_set(o, "created", ms_json(cr ? cr->str : NULL, cr ? cr->len : 0));
    ok = ok && adm_set(o, "last_seen", ms_json(ls ? ls->str : NULL, ls ? ls->len : 0));
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void on_history(struct adm_op *op, const redisReply *r)
{
    json_t *h = json_array();
    for (size_t i = 0; h != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        json_t *j = e->type == REDIS_REPLY_STRING ? json_loadb(e->str, e->len, 0, NULL) : NULL;
        if (j != NULL && json_array_append_new(h, j) != 0) {
            json_decref(h);
            h = NULL;
        }
    }
    json_t *o = op->resp;
    op->resp = NULL;
    if (!adm_set(o, "history", h)) {
        json_decref(o);
        adm_fail(op, TAM_ENOMEM, "device");
        return;
    }
    adm_json(op, op->phase != 0 ? op->phase : 200, o, NULL);
}

static void on_device(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        adm_problem(op, 404, "no device %s in tenant %s", op->kid_hex, op->tenant);
        return;
    }
    op->resp = device_json(op, r);
    if (op->resp == NULL) {
        adm_fail(op, TAM_ENOMEM, "device");
        return;
    }
    adm_arg_str(op, "LRANGE");
    arg_device_key(op, "hist");
    adm_arg_str(op, "0");
    adm_argf(op, "%u", op->a->opts.history_max - 1);
    adm_redis(op, on_history);
}

static void device_get(struct adm_op *op)
{
    adm_arg_str(op, "HGETALL");
    arg_device_key(op, NULL);
    adm_redis(op, on_device);
}

/* ---- labels ---- */

/* KEYS: device hash. ARGV: labels, tenant, kid. 1, or 0 when there is no such device. */
static const char relabel_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'labels', ARGV[1])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'device ' .. ARGV[2] .. ' ' .. ARGV[3])\n"
    "return 1\n";

static void on_relabeled(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        adm_problem(op, 404, "no device %s in tenant %s", op->kid_hex, op->tenant);
        return;
    }
    device_get(op);
}

static void device_patch(struct adm_op *op)
{
    static const char *const known[] = {"labels", NULL};
    struct adm_jv v = {0};
    struct dctx *c = dctx_new(op);
    if (c == NULL) {
        adm_fail(op, TAM_ENOMEM, "patch");
        return;
    }
    if (!adm_jv_members(&v, op->body, known) || !parse_labels_member(&v, op->body, c)) {
        adm_problem(op, 422, "%s", v.why);
        return;
    }
    if (json_object_get(op->body, "labels") == NULL) {
        device_get(op);
        return;
    }
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, relabel_lua);
    adm_arg_str(op, "1");
    arg_device_key(op, NULL);
    adm_arg_str(op, c->labels);
    adm_arg_str(op, op->tenant);
    adm_arg_str(op, op->kid_hex);
    adm_redis(op, on_relabeled);
}

/* ---- delete ---- */

/* KEYS: devices set, device, hist, pending. ARGV: kid, tenant. */
static const char delete_lua[] =
    "local a = redis.call('SREM', KEYS[1], ARGV[1])\n"
    "local b = redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])\n"
    "if a == 0 and b == 0 then return 0 end\n"
    "redis.call('PUBLISH', 'tam:{events}', 'device ' .. ARGV[2] .. ' ' .. ARGV[1])\n"
    "return 1\n";

static void on_deleted(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        adm_problem(op, 404, "no device %s in tenant %s", op->kid_hex, op->tenant);
        return;
    }
    adm_empty(op, 204);
}

static void device_delete(struct adm_op *op)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, delete_lua);
    adm_arg_str(op, "4");
    arg_tenant_key(op, "devices");
    arg_device_key(op, NULL);
    arg_device_key(op, "hist");
    arg_device_key(op, "pending");
    adm_arg_str(op, op->kid_hex);
    adm_arg_str(op, op->tenant);
    adm_redis(op, on_deleted);
}

/* ---- list ---- */

/* Percent-decodes a query value into out (outsz bytes with the NUL); false when invalid. */
static bool unescape(const char *s, size_t len, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = -1, lo = -1;
            if (i + 2 < len) {
                hi = tam_hex_digit((unsigned char)s[i + 1]);
                lo = tam_hex_digit((unsigned char)s[i + 2]);
            }
            if (hi < 0 || lo < 0) {
                return false;
            }
            c = hi << 4 | lo;
            i += 2;
        }
        if (c == 0 || o + 1 >= outsz) {
            return false;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* label=, limit=, cursor=; false (answered) on anything else. */
static bool parse_query(struct adm_op *op, struct dctx *c)
{
    const char *q = op->query;
    op->limit = LIMIT_DEF;
    op->cursor = 0;
    c->label[0] = '\0';
    while (*q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - q) : n;
        const char *val = eq != NULL ? eq + 1 : q + n;
        size_t vlen = (size_t)(q + n - val);
        uint64_t x = 0;
        bool ok;
        if (klen == 5 && memcmp(q, "label", 5) == 0) {
            ok = unescape(val, vlen, c->label, sizeof(c->label)) && c->label[0] != '\0';
        } else if (klen == 5 && memcmp(q, "limit", 5) == 0) {
            ok = adm_parse_u64(val, vlen, &x) && x >= 1 && x <= op->a->opts.list_max;
            op->limit = (uint32_t)x;
        } else if (klen == 6 && memcmp(q, "cursor", 6) == 0) {
            ok = adm_parse_u64(val, vlen, &op->cursor);
        } else {
            ok = false;
        }
        if (!ok) {
            adm_problem(op, 400, "query: label=<label>, limit=1..%u and cursor=<n> are accepted",
                        op->a->opts.list_max);
            return false;
        }
        q += n + (q[n] == '&');
    }
    return true;
}

static const char fields_lua[] =
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  out[i] = redis.call('HMGET', k, 'type', 'labels', 'status', 'last_seen', 'created')\n"
    "end\n"
    "return out\n";

static json_t *summary_json(const char *kid, const redisReply *f)
{
    const redisReply *t = f->element[0], *l = f->element[1], *st = f->element[2];
    const redisReply *ls = f->element[3], *cr = f->element[4];
    bool ed = t->type == REDIS_REPLY_STRING && strcmp(t->str, "ed25519") == 0;
    json_t *o = json_object();
    bool ok = o != NULL && adm_set(o, "kid", json_string(kid));
    ok = ok && adm_set(o, "key_type", json_string(ed ? "ed25519" : "p256"));
    ok = ok && adm_set(o, "labels",
                       l->type == REDIS_REPLY_STRING ? labels_json(l->str, l->len) : json_array());
    ok = ok &&
         adm_set(o, "status", st->type == REDIS_REPLY_STRING ? json_string(st->str) : json_null());
    ok = ok && adm_set(o, "last_seen",
                       ls->type == REDIS_REPLY_STRING ? ms_json(ls->str, ls->len) : json_null());
    ok = ok && adm_set(o, "created",
                       cr->type == REDIS_REPLY_STRING ? ms_json(cr->str, cr->len) : json_null());
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void list_done(struct adm_op *op, json_t *arr)
{
    json_t *o = json_object();
    bool ok = o != NULL && arr != NULL && adm_set(o, "devices", json_incref(arr));
    ok = ok && adm_set(o, "next_cursor",
                       op->cursor != 0 ? json_sprintf("%llu", (unsigned long long)op->cursor)
                                       : json_null());
    json_decref(arr);
    if (!ok) {
        json_decref(o);
        adm_fail(op, TAM_ENOMEM, "list");
        return;
    }
    adm_json(op, 200, o, NULL);
}

static void on_fields(struct adm_op *op, const redisReply *r)
{
    struct dctx *c = op->ctx;
    json_t *arr = json_array();
    for (size_t i = 0;
         arr != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements && i < c->nkids; i++) {
        const redisReply *f = r->element[i];
        if (f->type != REDIS_REPLY_ARRAY || f->elements != 5 ||
            f->element[0]->type != REDIS_REPLY_STRING) {
            continue; /* listed but its hash is gone (deleted meanwhile) */
        }
        const redisReply *l = f->element[1];
        if (c->label[0] != '\0' &&
            (l->type != REDIS_REPLY_STRING || !labels_have(l->str, l->len, c->label))) {
            continue;
        }
        json_t *e = summary_json(c->kids[i], f);
        if (e == NULL || json_array_append_new(arr, e) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    list_done(op, arr);
}

static void on_page(struct adm_op *op, const redisReply *r)
{
    struct dctx *c = op->ctx;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY ||
        !adm_parse_u64(r->element[0]->str, r->element[0]->len, &op->cursor)) {
        adm_fail(op, TAM_EREDIS, "list");
        return;
    }
    const redisReply *items = r->element[1];
    size_t n = items->elements;
    c->kids = tam_arena_array(&op->arena, n + 1, sizeof(*c->kids));
    const char **keys = tam_arena_array(&op->arena, n + 1, sizeof(*keys));
    size_t *klen = tam_arena_array(&op->arena, n + 1, sizeof(*klen));
    if (c->kids == NULL || keys == NULL || klen == NULL) {
        adm_fail(op, TAM_ENOMEM, "list");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = items->element[i];
        struct tam_buf b;
        tam_buf_init(&b, TAM_KID_LEN);
        if (e->type == REDIS_REPLY_STRING && e->len == 2 * TAM_KID_LEN &&
            tam_hex_decode(e->str, e->len, &b) == TAM_OK && b.len == TAM_KID_LEN) {
            char k[TAM_KEY_MAX];
            klen[c->nkids] = tam_key_device(k, op->tenant, b.data, NULL);
            keys[c->nkids] = adm_strdup(op, k, klen[c->nkids]);
            c->kids[c->nkids] = adm_strdup(op, e->str, e->len);
            c->nkids += keys[c->nkids] != NULL && c->kids[c->nkids] != NULL;
        }
        tam_buf_finish(&b);
    }
    if (c->nkids == 0) {
        list_done(op, json_array());
        return;
    }
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, fields_lua);
    adm_argf(op, "%zu", c->nkids);
    for (size_t i = 0; i < c->nkids; i++) {
        adm_arg(op, keys[i], klen[i]);
    }
    adm_redis(op, on_fields);
}

static void device_list(struct adm_op *op)
{
    struct dctx *c = dctx_new(op);
    if (c == NULL) {
        adm_fail(op, TAM_ENOMEM, "list");
        return;
    }
    if (!parse_query(op, c)) {
        return;
    }
    adm_arg_str(op, "SSCAN");
    arg_tenant_key(op, "devices");
    adm_argf(op, "%llu", (unsigned long long)op->cursor);
    adm_arg_str(op, "COUNT");
    adm_argf(op, "%u", op->limit);
    adm_redis(op, on_page);
}

const struct adm_route adm_device_routes[] = {
    {"tenants/{t}/devices", "GET", ADM_TENANT, ADM_BODY_NONE, device_list},
    {"tenants/{t}/devices", "POST", ADM_TENANT, ADM_BODY_JSON, device_register},
    {"tenants/{t}/devices/{kid}", "GET", ADM_TENANT, ADM_BODY_NONE, device_get},
    {"tenants/{t}/devices/{kid}", "PATCH", ADM_TENANT, ADM_BODY_JSON, device_patch},
    {"tenants/{t}/devices/{kid}", "DELETE", ADM_TENANT, ADM_BODY_NONE, device_delete},
};
const size_t adm_device_nroutes = TAM_ARRAY_LEN(adm_device_routes);
