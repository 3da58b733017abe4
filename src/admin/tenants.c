/*
 * /v1/tenants: create (with generated or imported keys), get, list, patch, delete, tokens.
 * The operator token manages tenants; GET of one tenant also takes the tenant's own token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tam/seal.h"

#define PEM_MAX      (16u << 10)
#define DELETE_BATCH "256"
#define SCAN_BATCH   "1000"
#define N_PUB_SLOTS  4

/* Key slots shown by GET, in this order: TEEP keys, then manifest keys. */
static const struct {
    enum tam_key_type type;
    bool manifest;
} pub_slots[N_PUB_SLOTS] = {
    {TAM_KEY_P256, false},
    {TAM_KEY_ED25519, false},
    {TAM_KEY_P256, true},
    {TAM_KEY_ED25519, true},
};

/* State of one tenant request. */
struct tctx {
    struct tam_tstore_cfg cfg;
    char token[TAM_TSTORE_TOKEN_LEN + 1];
    struct tam_key *keys[N_PUB_SLOTS];  /* create: the keys to store, by pub_slots index */
    char *pub[N_PUB_SLOTS];             /* their public PEMs (tam_malloc) */
    struct tam_buf sealed[N_PUB_SLOTS]; /* their sealed private keys */
    long long devices;                  /* GET: registered or learned devices; -1 unknown */
};

static void tctx_free(void *p)
{
    struct tctx *c = p;
    for (int i = 0; i < N_PUB_SLOTS; i++) {
        tam_key_destroy(c->keys[i]);
        tam_free(c->pub[i]);
        tam_buf_finish(&c->sealed[i]);
    }
    tam_memzero(c->token, sizeof(c->token));
    tam_free(c);
}

static struct tctx *tctx_new(struct adm_op *op)
{
    struct tctx *c = tam_calloc(1, sizeof(*c));
    if (c != NULL) {
        c->devices = -1; /* only GET counts them */
        op->ctx = c;
        op->ctx_free = tctx_free;
    }
    return c;
}

/* ---- the tenant view ---- */

static const char *alg_label(enum tam_key_type type, bool legacy)
{
    if (type == TAM_KEY_P256) {
        return legacy ? "ES256" : "ESP256";
    }
    return legacy ? "EdDSA" : "Ed25519";
}

static json_t *limits_json(const struct tam_tstore_limits *l)
{
    size_t n;
    const struct tam_tstore_limit_desc *d = tam_tstore_limit_descs(&n);
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < n; i++) {
        uint32_t v = *(const uint32_t *)(const void *)((const char *)l + d[i].offset);
        if (!adm_set(o, d[i].name, json_integer(v))) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

/* Appends the key of a public PEM to arr; a PEM that does not parse is skipped (logged). */
static bool add_key(json_t *arr, const char *pem, size_t len, bool legacy)
{
    struct tam_key *k = NULL;
    if (tam_key_from_pem(pem, len, &k) != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=admin_bad_stored_key");
        return true;
    }
    json_t *j = adm_json_key(k, alg_label(tam_key_type(k), legacy));
    tam_key_destroy(k);
    return j != NULL && json_array_append_new(arr, j) == 0;
}

static json_t *tenant_json(const char *id, const struct tam_tstore_cfg *c, char *const *pub,
                           const size_t *publen)
{
    char uri[8 + TAM_TENANT_ID_MAX];
    (void)snprintf(uri, sizeof(uri), "/tam/%s", id);
    json_t *o = json_object(), *tk = json_array(), *mk = json_array();
    bool ok = o != NULL && tk != NULL && mk != NULL;
    for (int i = 0; ok && i < N_PUB_SLOTS; i++) {
        if (pub[i] != NULL) {
            ok = add_key(pub_slots[i].manifest ? mk : tk, pub[i], publen[i], c->legacy_alg_ids);
        }
    }
    ok = ok && adm_set(o, "id", json_string(id)) && adm_set(o, "tam_uri", json_string(uri));
    ok = ok && adm_set(o, "numbering", json_string(tam_teep_numbering_name(c->numbering)));
    ok = ok && adm_set(o, "attestation", json_string(tam_tstore_attestation_name(c->attestation)));
    ok = ok && adm_set(o, "enrollment", json_string(tam_tstore_enrollment_name(c->enrollment)));
    ok = ok && adm_set(o, "legacy_alg_ids", json_boolean(c->legacy_alg_ids));
    ok = ok && adm_set(o, "sign1_only", json_boolean(c->sign1_only));
    ok = ok && adm_set(o, "limits", limits_json(&c->limits));
    ok = ok && adm_set(o, "created", json_integer((json_int_t)c->created_ms));
    ok = ok && adm_set(o, "tam_keys", json_incref(tk)) &&
         adm_set(o, "manifest_keys", json_incref(mk));
    json_decref(tk);
    json_decref(mk);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- validation of create / patch bodies ---- */

static bool parse_limits(struct adm_jv *v, json_t *o, struct tam_tstore_limits *l)
{
    if (o == NULL) {
        return true;
    }
    if (!json_is_object(o)) {
        return adm_jv_fail(v, "limits", "an object expected");
    }
    size_t n;
    const struct tam_tstore_limit_desc *d = tam_tstore_limit_descs(&n);
    const char *known[16];
    for (size_t i = 0; i < n && i < 15; i++) {
        known[i] = d[i].name;
    }
    known[n < 15 ? n : 15] = NULL;
    if (!adm_jv_members(v, o, known)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t x = *(uint32_t *)(void *)((char *)l + d[i].offset);
        if (!adm_jv_uint(v, o, d[i].name, false, d[i].min, d[i].max, &x)) {
            return false;
        }
        *(uint32_t *)(void *)((char *)l + d[i].offset) = (uint32_t)x;
    }
    return true;
}

/* The settings shared by create and patch, applied over *c. */
static bool parse_settings(struct adm_jv *v, json_t *b, struct tam_tstore_cfg *c)
{
    const char *s = NULL;
    bool ok = true;
    if (adm_jv_string(v, b, "numbering", false, 16, &s, NULL) && s != NULL) {
        enum tam_teep_numbering old = c->numbering;
        ok = tam_teep_numbering_parse(s, &c->numbering) == TAM_OK ||
             adm_jv_fail(v, "numbering", "\"rfc\", \"draft\" or \"draft12\" expected");
        /* The draft12 profile implies the old algorithm ids; rfc excludes them. */
        if (ok && c->numbering != old) {
            c->legacy_alg_ids = c->numbering == TAM_TEEP_DRAFT12;
        }
    }
    s = NULL;
    if (ok && adm_jv_string(v, b, "attestation", false, 16, &s, NULL) && s != NULL) {
        ok = tam_tstore_attestation_parse(s, &c->attestation) == TAM_OK ||
             adm_jv_fail(v, "attestation", "\"none\" or \"required\" expected");
    }
    s = NULL;
    if (ok && adm_jv_string(v, b, "enrollment", false, 16, &s, NULL) && s != NULL) {
        ok = tam_tstore_enrollment_parse(s, &c->enrollment) == TAM_OK ||
             adm_jv_fail(v, "enrollment", "\"registered\" or \"attested\" expected");
    }
    ok = ok && !v->bad && adm_jv_bool(v, b, "legacy_alg_ids", &c->legacy_alg_ids) &&
         adm_jv_bool(v, b, "sign1_only", &c->sign1_only) &&
         parse_limits(v, json_object_get(b, "limits"), &c->limits);
    const char *why = NULL;
    if (ok && tam_tstore_cfg_check(c, &why) != TAM_OK) {
        char member[32];
        size_t n = strcspn(why, ":");
        (void)snprintf(member, sizeof(member), "%.*s", (int)n, why);
        return adm_jv_fail(v, member, "%s", why[n] == ':' ? why + n + 2 : why);
    }
    return ok && !v->bad;
}

/* A private key PEM from the body. */
static bool parse_private(struct adm_jv *v, json_t *e, const char *name, struct tam_key **out)
{
    const char *pem = json_string_value(e);
    size_t len = json_string_length(e);
    if (pem == NULL || len == 0 || len > PEM_MAX) {
        return adm_jv_fail(v, name, "a PEM private key expected");
    }
    if (tam_key_from_pem(pem, len, out) != TAM_OK || !tam_key_has_private(*out)) {
        tam_key_destroy(*out);
        *out = NULL;
        return adm_jv_fail(v, name, "not a P-256 or Ed25519 private key (PKCS#8 or SEC1 PEM)");
    }
    return true;
}

static bool import_tam_keys(struct adm_jv *v, json_t *arr, struct tctx *c)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > 2) {
        return adm_jv_fail(v, "tam_private_keys", "an array of 1 or 2 PEM private keys expected");
    }
    for (size_t i = 0; i < n; i++) {
        struct tam_key *k = NULL;
        char name[32];
        (void)snprintf(name, sizeof(name), "tam_private_keys[%zu]", i);
        if (!parse_private(v, json_array_get(arr, i), name, &k)) {
            return false;
        }
        int slot = tam_key_type(k) == TAM_KEY_P256 ? 0 : 1;
        if (c->keys[slot] != NULL) {
            tam_key_destroy(k);
            return adm_jv_fail(v, name, "at most one key of each type");
        }
        c->keys[slot] = k;
    }
    return true;
}

static bool choose_keys(struct adm_jv *v, struct tam_admin *a, json_t *b, struct tctx *c)
{
    json_t *imp = json_object_get(b, "tam_private_keys");
    if (imp != NULL) {
        if (!import_tam_keys(v, imp, c)) {
            return false;
        }
    } else if (tam_key_generate(TAM_KEY_P256, &c->keys[0]) != TAM_OK ||
               tam_key_generate(TAM_KEY_ED25519, &c->keys[1]) != TAM_OK) {
        return adm_jv_fail(v, "tam_keys", "key generation failed");
    }
    json_t *mk = json_object_get(b, "manifest_private_key");
    if (mk != NULL && a->worker_pub == NULL) {
        return adm_jv_fail(v, "manifest_private_key",
                           "this deployment has no worker sealing key to protect it");
    }
    struct tam_key *m = NULL;
    if (mk != NULL && !parse_private(v, mk, "manifest_private_key", &m)) {
        return false;
    }
    if (mk == NULL && a->worker_pub != NULL && tam_key_generate(TAM_KEY_P256, &m) != TAM_OK) {
        return adm_jv_fail(v, "manifest_keys", "key generation failed");
    }
    if (m != NULL) {
        c->keys[tam_key_type(m) == TAM_KEY_P256 ? 2 : 3] = m;
    }
    return true;
}

/* ---- create ---- */

/*
 * KEYS: tenants, cfg, keys, tokens, token index, catalog_version, devices, components.
 * ARGV: id, max tenants, token hash, created, selector, index value, ncfg, cfg pairs...,
 * key pairs... Returns 1, 0 (exists), -1 (tenant limit), -2 (leftovers of a deletion),
 * -3 (token selector collision).
 */
static const char create_lua[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
    "if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end\n"
    "if redis.call('EXISTS', KEYS[2], KEYS[3], KEYS[4], KEYS[7], KEYS[8]) > 0 then return -2 end\n"
    "if redis.call('HEXISTS', KEYS[5], ARGV[5]) == 1 then return -3 end\n"
    "local n = tonumber(ARGV[7])\n"
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], unpack(ARGV, 8, 7 + 2 * n))\n"
    "if #ARGV > 7 + 2 * n then redis.call('HSET', KEYS[3], unpack(ARGV, 8 + 2 * n)) end\n"
    "redis.call('HSET', KEYS[4], ARGV[3], ARGV[4])\n"
    "redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])\n"
    "redis.call('INCR', KEYS[6])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[1])\n"
    "return 1\n";

static void arg_key(struct adm_op *op, const char *what)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_key_tenant(k, op->tenant, what);
    adm_arg(op, adm_strdup(op, k, n), n);
}

static void on_created(struct adm_op *op, const redisReply *r)
{
    struct tctx *c = op->ctx;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 409, "tenant %s already exists", op->tenant);
    } else if (v == -1) {
        adm_problem(op, 409, "the deployment's limit of %u tenants is reached",
                    op->a->opts.max_tenants);
    } else if (v == -2) {
        adm_problem(op, 409, "a deletion of tenant %s is still in progress", op->tenant);
    } else if (v != 1) {
        adm_fail(op, TAM_EREDIS, "create");
    } else {
        size_t lens[N_PUB_SLOTS];
        for (int i = 0; i < N_PUB_SLOTS; i++) {
            lens[i] = c->pub[i] != NULL ? strlen(c->pub[i]) : 0;
        }
        json_t *j = tenant_json(op->tenant, &c->cfg, c->pub, lens);
        if (j == NULL || !adm_set(j, "token", json_string(c->token))) {
            json_decref(j);
            adm_fail(op, TAM_ENOMEM, "create");
            return;
        }
        char loc[16 + TAM_TENANT_ID_MAX];
        (void)snprintf(loc, sizeof(loc), "/v1/tenants/%s", op->tenant);
        tam_log(TAM_LOG_INFO, "event=tenant_created tenant=%s", op->tenant);
        adm_json(op, 201, j, loc);
    }
}

/*
 * Seals every key (KEK for TEEP keys, the workers' key for manifest keys) and adds the
 * "<slot>" / sealed blob / "<slot>:pub" / PEM pairs to the arguments.
 */
static int seal_keys(struct adm_op *op, struct tctx *c)
{
    for (int i = 0; i < N_PUB_SLOTS; i++) {
        if (c->keys[i] == NULL) {
            continue;
        }
        const char *slot = tam_tstore_key_slot(tam_key_type(c->keys[i]), pub_slots[i].manifest);
        struct tam_buf *sealed = &c->sealed[i];
        tam_buf_init(sealed, TAM_SEAL_MAX_PLAINTEXT);
        int err = pub_slots[i].manifest
                      ? tam_seal_key_worker(op->a->worker_pub, op->tenant, slot, c->keys[i], sealed)
                      : tam_seal_key_kek(op->a->kek, op->tenant, slot, c->keys[i], sealed);
        struct tam_buf pem;
        tam_buf_init(&pem, PEM_MAX);
        err = err == TAM_OK ? tam_key_public_pem(c->keys[i], &pem) : err;
        err = err == TAM_OK ? tam_buf_append(&pem, "", 1) : err;
        c->pub[i] = err == TAM_OK ? (char *)tam_buf_take(&pem, NULL) : NULL;
        tam_buf_finish(&pem);
        if (err != TAM_OK) {
            return err;
        }
        adm_argf(op, "%s", slot);
        adm_arg(op, sealed->data, sealed->len);
        adm_argf(op, "%s:pub", slot);
        adm_arg_str(op, c->pub[i]);
    }
    return TAM_OK;
}

/* The create script's arguments: keys, token, configuration, sealed keys. */
static void send_create(struct adm_op *op, struct tctx *c, const uint8_t hash[TAM_SHA256_LEN])
{
    char hex[TAM_TSTORE_HASH_HEX + 1], sel[TAM_TSTORE_SELECTOR_HEX + 1];
    char idx[TAM_TSTORE_INDEX_MAX];
    tam_hex_encode(hash, TAM_SHA256_LEN, hex);
    tam_tstore_token_selector(hash, sel);
    (void)tam_tstore_index_value(idx, op->tenant, hash);
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t nf = tam_tstore_cfg_encode(&c->cfg, f);
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, create_lua);
    adm_arg_str(op, "8");
    adm_arg_str(op, TAM_KEY_TENANTS);
    arg_key(op, "cfg");
    arg_key(op, "keys");
    arg_key(op, "tokens");
    adm_arg_str(op, TAM_KEY_TOKEN_INDEX);
    arg_key(op, "catalog_version");
    arg_key(op, "devices");
    arg_key(op, "components");
    adm_arg_str(op, op->tenant);
    adm_argf(op, "%u", op->a->opts.max_tenants);
    adm_argf(op, "%s", hex);
    adm_argf(op, "%llu", (unsigned long long)c->cfg.created_ms);
    adm_argf(op, "%s", sel);
    adm_argf(op, "%s", idx);
    adm_argf(op, "%zu", nf);
    for (size_t i = 0; i < nf; i++) {
        adm_arg_str(op, f[i].name);
        adm_argf(op, "%s", f[i].value);
    }
    int err = seal_keys(op, c);
    if (err != TAM_OK) {
        op->argc = 0;
        adm_fail(op, err, "key sealing");
        return;
    }
    adm_redis(op, on_created);
}

static void tenant_create(struct adm_op *op)
{
    static const char *const known[] = {
        "id",         "numbering", "attestation",      "enrollment",           "legacy_alg_ids",
        "sign1_only", "limits",    "tam_private_keys", "manifest_private_key", NULL};
    struct adm_jv v = {0};
    struct tctx *c = tctx_new(op);
    const char *id = NULL;
    size_t idlen = 0;
    if (c == NULL) {
        adm_fail(op, TAM_ENOMEM, "create");
        return;
    }
    tam_tstore_cfg_default(&c->cfg);
    bool ok = adm_jv_members(&v, op->body, known) &&
              adm_jv_string(&v, op->body, "id", true, TAM_TENANT_ID_MAX, &id, &idlen);
    ok = ok && (tam_tenant_id_valid(id, idlen) ||
                adm_jv_fail(&v, "id", "1..63 of [a-z0-9-_], not starting with '-' or '_'"));
    if (ok) {
        memcpy(op->tenant, id, idlen + 1);
    }
    ok = ok && parse_settings(&v, op->body, &c->cfg) && choose_keys(&v, op->a, op->body, c);
    if (!ok) {
        adm_problem(op, 422, "%s", v.why);
        return;
    }
    c->cfg.created_ms = adm_now_ms();
    uint8_t hash[TAM_SHA256_LEN];
    if (tam_tstore_token_new(c->token, hash) != TAM_OK) {
        adm_fail(op, TAM_ECRYPTO, "token");
        return;
    }
    send_create(op, c, hash);
}

/* ---- get ---- */

static void on_pubs(struct adm_op *op, const redisReply *r)
{
    struct tctx *c = op->ctx;
    char *pub[N_PUB_SLOTS] = {NULL};
    size_t lens[N_PUB_SLOTS] = {0};
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && i < N_PUB_SLOTS; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            pub[i] = r->element[i]->str;
            lens[i] = r->element[i]->len;
        }
    }
    json_t *j = tenant_json(op->tenant, &c->cfg, pub, lens);
    if (j != NULL && c->devices >= 0 && !adm_set(j, "devices", json_integer(c->devices))) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL) {
        adm_fail(op, TAM_ENOMEM, "tenant view");
        return;
    }
    adm_json(op, op->phase != 0 ? op->phase : 200, j, NULL);
}

static void get_pubs(struct adm_op *op)
{
    adm_arg_str(op, "HMGET");
    arg_key(op, "keys");
    for (int i = 0; i < N_PUB_SLOTS; i++) {
        adm_argf(op, "%s:pub", tam_tstore_key_slot(pub_slots[i].type, pub_slots[i].manifest));
    }
    adm_redis(op, on_pubs);
}

/* Parses an HGETALL of the cfg hash into c->cfg; false (answered) when absent or corrupt. */
static bool load_cfg(struct adm_op *op, const redisReply *r, struct tctx *c)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
        return false;
    }
    tam_tstore_cfg_default(&c->cfg);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *val = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING ||
            tam_tstore_cfg_set(&c->cfg, k->str, val->str, val->len) != TAM_OK) {
            adm_fail(op, TAM_EINVAL, "stored tenant configuration");
            return false;
        }
    }
    return true;
}

static void on_count(struct adm_op *op, const redisReply *r)
{
    struct tctx *c = op->ctx;
    c->devices = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    get_pubs(op);
}

/* GET: the configuration, the number of devices, then the public keys. */
static void on_cfg(struct adm_op *op, const redisReply *r)
{
    if (load_cfg(op, r, op->ctx)) {
        adm_arg_str(op, "SCARD");
        arg_key(op, "devices");
        adm_redis(op, on_count);
    }
}

static void read_cfg(struct adm_op *op, adm_step_fn next)
{
    if (op->ctx == NULL && tctx_new(op) == NULL) {
        adm_fail(op, TAM_ENOMEM, "tenant");
        return;
    }
    adm_arg_str(op, "HGETALL");
    arg_key(op, "cfg");
    adm_redis(op, next);
}

static void tenant_get(struct adm_op *op)
{
    read_cfg(op, on_cfg);
}

/* ---- list ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_list(struct adm_op *op, const redisReply *r)
{
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const char **ids = n > 0 ? tam_arena_array(&op->arena, n, sizeof(*ids)) : NULL;
    size_t k = 0;
    for (size_t i = 0; ids != NULL && i < n; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            ids[k++] = r->element[i]->str;
        }
    }
    if (k > 1) {
        qsort(ids, k, sizeof(*ids), cmp_str);
    }
    json_t *arr = json_array();
    bool ok = arr != NULL && (n == 0 || ids != NULL);
    for (size_t i = 0; ok && i < k; i++) {
        char uri[8 + TAM_TENANT_ID_MAX];
        (void)snprintf(uri, sizeof(uri), "/tam/%.63s", ids[i]);
        ok = json_array_append_new(arr, json_pack("{s:s, s:s}", "id", ids[i], "tam_uri", uri)) == 0;
    }
    adm_json_list(op, "tenants", arr, ok);
}

static void tenant_list(struct adm_op *op)
{
    adm_arg_str(op, "SMEMBERS");
    adm_arg_str(op, TAM_KEY_TENANTS);
    adm_redis(op, on_list);
}

/* ---- patch ---- */

/* KEYS: tenants, cfg. ARGV: id, expected rev, field pairs. 1, 0 (gone), -1 (changed). */
static const char patch_lua[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "if (redis.call('HGET', KEYS[2], 'rev') or '0') ~= ARGV[2] then return -1 end\n"
    "redis.call('HSET', KEYS[2], unpack(ARGV, 3))\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[1])\n"
    "return 1\n";

static void on_patched(struct adm_op *op, const redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
    } else if (v == -1) {
        adm_problem(op, 409, "the tenant changed meanwhile; retry");
    } else if (v != 1) {
        adm_fail(op, TAM_EREDIS, "patch");
    } else {
        get_pubs(op);
    }
}

static void on_patch_cfg(struct adm_op *op, const redisReply *r)
{
    static const char *const known[] = {"numbering",  "attestation", "enrollment", "legacy_alg_ids",
                                        "sign1_only", "limits",      NULL};
    struct tctx *c = op->ctx;
    if (!load_cfg(op, r, c)) {
        return;
    }
    uint64_t rev = c->cfg.rev;
    struct adm_jv v = {0};
    if (!adm_jv_members(&v, op->body, known) || !parse_settings(&v, op->body, &c->cfg)) {
        adm_problem(op, 422, "%s", v.why);
        return;
    }
    c->cfg.rev = rev + 1;
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t nf = tam_tstore_cfg_encode(&c->cfg, f);
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, patch_lua);
    adm_arg_str(op, "2");
    adm_arg_str(op, TAM_KEY_TENANTS);
    arg_key(op, "cfg");
    adm_arg_str(op, op->tenant);
    adm_argf(op, "%llu", (unsigned long long)rev);
    for (size_t i = 0; i < nf; i++) {
        adm_arg_str(op, f[i].name);
        adm_argf(op, "%s", f[i].value);
    }
    adm_redis(op, on_patched);
}

static void tenant_patch(struct adm_op *op)
{
    read_cfg(op, on_patch_cfg);
}

/* ---- delete ---- */

/*
 * KEYS: tenants, tokens, token index, cfg. ARGV: id. Locks the tenant out at once (no longer
 * listed, tokens revoked, gateways told); the data goes in the steps that follow, cfg last,
 * so a create meanwhile sees the leftovers (409) and a repeated DELETE resumes the cleanup.
 */
static const char delete_lua[] =
    "if redis.call('SREM', KEYS[1], ARGV[1]) == 0 and redis.call('EXISTS', KEYS[4]) == 0 then\n"
    "  return 0\n"
    "end\n"
    "for _, h in ipairs(redis.call('HKEYS', KEYS[2])) do\n"
    "  redis.call('HDEL', KEYS[3], string.sub(h, 1, 16))\n"
    "end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[1])\n"
    "return 1\n";

static void scan_devices(struct adm_op *op);
static void scan_tenant_keys(struct adm_op *op);

static bool parse_cursor(const redisReply *r, uint64_t *cursor, const redisReply **items)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        return false;
    }
    *items = r->element[1];
    return adm_parse_u64(r->element[0]->str, r->element[0]->len, cursor);
}

static void on_unlinked(struct adm_op *op, const redisReply *r)
{
    (void)r;
    if (op->phase == 1 && op->cursor != 0) {
        scan_devices(op);
        return;
    }
    if (op->phase == 1) {
        op->phase = 2;
    }
    scan_tenant_keys(op);
}

static void on_device_page(struct adm_op *op, const redisReply *r)
{
    const redisReply *items;
    if (!parse_cursor(r, &op->cursor, &items)) {
        adm_fail(op, TAM_EREDIS, "delete devices");
        return;
    }
    adm_arg_str(op, "UNLINK");
    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *e = items->element[i];
        struct tam_buf b;
        tam_buf_init(&b, TAM_KID_LEN);
        if (e->type == REDIS_REPLY_STRING && e->len == 2 * TAM_KID_LEN &&
            tam_hex_decode(e->str, e->len, &b) == TAM_OK && b.len == TAM_KID_LEN) {
            static const char *const suffix[3] = {NULL, "hist", "pending"};
            for (int s = 0; s < 3; s++) {
                char k[TAM_KEY_MAX];
                size_t n = tam_key_device(k, op->tenant, b.data, suffix[s]);
                adm_arg(op, adm_strdup(op, k, n), n);
            }
        }
        tam_buf_finish(&b);
    }
    if (op->argc == 1) {
        op->argc = 0;
        on_unlinked(op, r);
        return;
    }
    adm_redis(op, on_unlinked);
}

static void scan_devices(struct adm_op *op)
{
    tam_arena_reset(&op->arena);
    adm_arg_str(op, "SSCAN");
    arg_key(op, "devices");
    adm_argf(op, "%llu", (unsigned long long)op->cursor);
    adm_arg_str(op, "COUNT");
    adm_arg_str(op, DELETE_BATCH);
    adm_redis(op, on_device_page);
}

static void on_gone(struct adm_op *op, const redisReply *r)
{
    (void)r;
    tam_log(TAM_LOG_INFO, "event=tenant_deleted tenant=%s", op->tenant);
    adm_empty(op, 204);
}

static void on_key_page(struct adm_op *op, const redisReply *r)
{
    const redisReply *items;
    if (!parse_cursor(r, &op->cursor, &items)) {
        adm_fail(op, TAM_EREDIS, "delete keys");
        return;
    }
    char cfg[TAM_KEY_MAX];
    (void)tam_key_tenant(cfg, op->tenant, "cfg");
    adm_arg_str(op, "UNLINK");
    for (size_t i = 0; i < items->elements; i++) {
        const redisReply *e = items->element[i];
        if (e->type == REDIS_REPLY_STRING && strcmp(e->str, cfg) != 0) {
            adm_arg(op, adm_strdup(op, e->str, e->len), e->len);
        }
    }
    if (op->argc > 1) {
        adm_redis(op, on_unlinked);
        return;
    }
    op->argc = 0;
    on_unlinked(op, r);
}

static void scan_tenant_keys(struct adm_op *op)
{
    tam_arena_reset(&op->arena);
    if (op->phase == 3 && op->cursor == 0) {
        char ev[16 + TAM_TENANT_ID_MAX];
        size_t n = tam_tstore_event_tenant(ev, sizeof(ev), op->tenant);
        adm_arg_str(op, "EVAL");
        adm_arg_str(op,
                    "redis.call('DEL', KEYS[1]) redis.call('PUBLISH', 'tam:{events}', ARGV[1])");
        adm_arg_str(op, "1");
        arg_key(op, "cfg");
        adm_arg(op, adm_strdup(op, ev, n), n);
        adm_redis(op, on_gone);
        return;
    }
    op->phase = 3;
    char pattern[TAM_KEY_MAX];
    (void)tam_key_tenant(pattern, op->tenant, "*");
    adm_arg_str(op, "SCAN");
    adm_argf(op, "%llu", (unsigned long long)op->cursor);
    adm_arg_str(op, "MATCH");
    adm_argf(op, "%s", pattern);
    adm_arg_str(op, "COUNT");
    adm_arg_str(op, SCAN_BATCH);
    adm_redis(op, on_key_page);
}

static void on_locked_out(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
        return;
    }
    op->phase = 1;
    op->cursor = 0;
    scan_devices(op);
}

static void tenant_delete(struct adm_op *op)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, delete_lua);
    adm_arg_str(op, "4");
    adm_arg_str(op, TAM_KEY_TENANTS);
    arg_key(op, "tokens");
    adm_arg_str(op, TAM_KEY_TOKEN_INDEX);
    arg_key(op, "cfg");
    adm_arg_str(op, op->tenant);
    adm_redis(op, on_locked_out);
}

/* ---- tokens ---- */

/* KEYS: tenants, tokens, index. ARGV: id, hash, created, selector, value, max. */
static const char token_lua[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then return -1 end\n"
    "if redis.call('HEXISTS', KEYS[3], ARGV[4]) == 1 then return -2 end\n"
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[1])\n"
    "return 1\n";

/* KEYS: tenants, tokens, index. ARGV: id. Revokes every token of the tenant. */
static const char revoke_lua[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
    "for _, h in ipairs(redis.call('HKEYS', KEYS[2])) do\n"
    "  redis.call('HDEL', KEYS[3], string.sub(h, 1, 16))\n"
    "end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'tenant ' .. ARGV[1])\n"
    "return 1\n";

static void on_token_added(struct adm_op *op, const redisReply *r)
{
    struct tctx *c = op->ctx;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
    } else if (v == -1) {
        adm_problem(op, 409, "a tenant has at most %d tokens", TAM_TSTORE_MAX_TOKENS);
    } else if (v != 1) {
        adm_fail(op, TAM_EREDIS, "token");
    } else {
        json_t *j = json_pack("{s:s, s:s}", "tenant", op->tenant, "token", c->token);
        if (j == NULL) {
            adm_fail(op, TAM_ENOMEM, "token");
            return;
        }
        adm_json(op, 201, j, NULL);
    }
}

static void token_args(struct adm_op *op, const char *script)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, script);
    adm_arg_str(op, "3");
    adm_arg_str(op, TAM_KEY_TENANTS);
    arg_key(op, "tokens");
    adm_arg_str(op, TAM_KEY_TOKEN_INDEX);
    adm_arg_str(op, op->tenant);
}

static void tenant_token(struct adm_op *op)
{
    struct tctx *c = tctx_new(op);
    uint8_t hash[TAM_SHA256_LEN];
    if (c == NULL || tam_tstore_token_new(c->token, hash) != TAM_OK) {
        adm_fail(op, TAM_ENOMEM, "token");
        return;
    }
    char hex[TAM_TSTORE_HASH_HEX + 1], sel[TAM_TSTORE_SELECTOR_HEX + 1];
    char idx[TAM_TSTORE_INDEX_MAX];
    tam_hex_encode(hash, TAM_SHA256_LEN, hex);
    tam_tstore_token_selector(hash, sel);
    (void)tam_tstore_index_value(idx, op->tenant, hash);
    token_args(op, token_lua);
    adm_argf(op, "%s", hex);
    adm_argf(op, "%llu", (unsigned long long)adm_now_ms());
    adm_argf(op, "%s", sel);
    adm_argf(op, "%s", idx);
    adm_argf(op, "%d", TAM_TSTORE_MAX_TOKENS);
    adm_redis(op, on_token_added);
}

static void on_revoked(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
        return;
    }
    adm_empty(op, 204);
}

static void tenant_revoke(struct adm_op *op)
{
    token_args(op, revoke_lua);
    adm_redis(op, on_revoked);
}

const struct adm_route adm_tenant_routes[] = {
    {"tenants", "GET", ADM_OPERATOR, ADM_BODY_NONE, tenant_list},
    {"tenants", "POST", ADM_OPERATOR, ADM_BODY_JSON, tenant_create},
    {"tenants/{t}", "GET", ADM_EITHER, ADM_BODY_NONE, tenant_get},
    {"tenants/{t}", "PATCH", ADM_OPERATOR, ADM_BODY_JSON, tenant_patch},
    {"tenants/{t}", "DELETE", ADM_OPERATOR, ADM_BODY_NONE, tenant_delete},
    {"tenants/{t}/tokens", "POST", ADM_OPERATOR, ADM_BODY_NONE, tenant_token},
    {"tenants/{t}/tokens", "DELETE", ADM_OPERATOR, ADM_BODY_NONE, tenant_revoke},
};
const size_t adm_tenant_nroutes = TAM_ARRAY_LEN(adm_tenant_routes);
