/*
 * /v1/tenants/{t}/components: the tenant's catalogue (tam:t:{t}:components, records of
 * store.h). Upload either a signed SUIT envelope (application/suit-envelope+cose: verified
 * against the tenant's tc-signer anchors, stored byte-exact) or a TC binary with metadata
 * (application/json: a TAM-built component; a worker builds and signs its manifest with the
 * tenant's manifest key). Every check happens before the single atomic write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/store.h"
#include "tam/suit.h"

#define ENVELOPE_TYPE "application/suit-envelope+cose"
#define PEM_MAX       (16u << 10)

struct cctx {
    struct tam_suit_envelope env;
    struct tam_store_component rec;
    struct tam_buf record; /* encoded record */
    struct tam_buf field;  /* "<cid hex>/<seq>" */
    struct tam_buf binary; /* TAM-built: the decoded binary */
    json_t *resp;
};

static void cctx_free(void *p)
{
    struct cctx *c = p;
    tam_buf_finish(&c->record);
    tam_buf_finish(&c->field);
    tam_buf_finish(&c->binary);
    json_decref(c->resp);
    tam_free(c);
}

static struct cctx *cctx_new(struct adm_op *op)
{
    struct cctx *c = tam_calloc(1, sizeof(*c));
    if (c != NULL) {
        tam_buf_init(&c->record, TAM_STORE_MAX_RECORD);
        tam_buf_init(&c->field, 2 * ADM_CID_HEX_MAX);
        tam_buf_init(&c->binary, TAM_STORE_MAX_RECORD);
        op->ctx = c;
        op->ctx_free = cctx_free;
    }
    return c;
}

static void arg_key(struct adm_op *op, const char *what)
{
    char k[TAM_KEY_MAX];
    size_t n = tam_key_tenant(k, op->tenant, what);
    adm_arg(op, adm_strdup(op, k, n), n);
}

/* ---- storing ---- */

/*
 * KEYS: components, catalog_version, cfg, keys. ARGV: field, record, tenant, max records,
 * "1" when a manifest key is needed. 1 stored, 0 exists, -1 catalogue full, -2 no tenant,
 * -3 no manifest key.
 */
static const char store_lua[] =
    "if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end\n"
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end\n"
    "if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end\n"
    "if ARGV[5] == '1' and redis.call('HEXISTS', KEYS[4], 'manifest:p256') == 0 and\n"
    "   redis.call('HEXISTS', KEYS[4], 'manifest:ed25519') == 0 then return -3 end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'catalog ' .. ARGV[3] .. ' ' .. v)\n"
    "return 1\n";

static void on_stored(struct adm_op *op, const redisReply *r)
{
    struct cctx *c = op->ctx;
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -100;
    if (v == 0) {
        adm_problem(op, 409, "sequence %llu of this component exists; upload a higher one",
                    (unsigned long long)c->rec.sequence);
    } else if (v == -1) {
        adm_problem(op, 409, "the tenant's catalogue is full (%u records)",
                    op->a->opts.max_components);
    } else if (v == -2) {
        adm_problem(op, 404, "no tenant %s", op->tenant);
    } else if (v == -3) {
        adm_problem(op, 422, "the tenant has no manifest signing key for TAM-built components");
    } else if (v != 1) {
        adm_fail(op, TAM_EREDIS, "store");
    } else {
        char loc[TAM_KEY_MAX + ADM_CID_HEX_MAX];
        (void)snprintf(loc, sizeof(loc), "/v1/tenants/%s/components/%.*s", op->tenant,
                       (int)c->field.len, (const char *)c->field.data);
        json_t *j = c->resp;
        c->resp = NULL;
        tam_log(TAM_LOG_INFO, "event=component_stored tenant=%s ref=%.*s", op->tenant,
                (int)(c->field.len > 200 ? 200 : c->field.len), (const char *)c->field.data);
        adm_json(op, 201, j, loc);
    }
}

/* Encodes c->rec, builds the answer, and writes. */
static void store(struct adm_op *op, struct cctx *c, bool tam_built)
{
    int err = tam_store_component_encode(&c->rec, &c->record);
    if (err == TAM_OK) {
        err = tam_store_component_field(&c->rec.component, c->rec.sequence, &c->field);
    }
    json_t *j = err == TAM_OK ? json_object() : NULL;
    bool ok = j != NULL && adm_set(j, "component_id", adm_json_component_id(&c->rec.component));
    ok = ok && adm_set(j, "sequence", json_integer((json_int_t)c->rec.sequence));
    ok = ok && adm_set(j, "digest",
                       c->rec.has_digest ? adm_json_hex(c->rec.digest, TAM_PLAN_DIGEST_LEN)
                                         : json_null());
    ok = ok &&
         adm_set(j, "manifest_component_id",
                 c->rec.has_manifest_id ? adm_json_component_id(&c->rec.manifest_id) : json_null());
    ok = ok && adm_set(j, "kind", json_string(tam_built ? "tam-built" : "envelope"));
    ok = ok && adm_set(j, "state", json_string(tam_built ? "pending" : "ready"));
    ok = ok && adm_set(j, "ref", json_stringn((const char *)c->field.data, c->field.len));
    if (ok && tam_built) {
        uint8_t d[TAM_SHA256_LEN];
        tam_sha256(c->rec.binary.ptr, c->rec.binary.len, d);
        ok = adm_set(j, "image_digest", adm_json_hex(d, sizeof(d)));
    }
    if (!ok) {
        json_decref(j);
        adm_fail(op, err != TAM_OK ? err : TAM_ENOMEM, "component record");
        return;
    }
    c->resp = j;
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, store_lua);
    adm_arg_str(op, "4");
    arg_key(op, "components");
    arg_key(op, "catalog_version");
    arg_key(op, "cfg");
    arg_key(op, "keys");
    adm_arg(op, c->field.data, c->field.len);
    adm_arg(op, c->record.data, c->record.len);
    adm_arg_str(op, op->tenant);
    adm_argf(op, "%u", op->a->opts.max_components);
    adm_arg_str(op, tam_built ? "1" : "0");
    adm_redis(op, on_stored);
}

/* ---- envelope upload ---- */

static void copy_id(const struct tam_suit_component_id *s, struct tam_teep_component_id *d)
{
    memset(d, 0, sizeof(*d));
    d->n = s->n;
    for (unsigned i = 0; i < s->n && i < TAM_TEEP_MAX_ID_SEGMENTS; i++) {
        d->seg[i] = s->seg[i];
    }
}

/* Indexes the parsed envelope into c->rec (TEEP-DIGEST 3.5); a reason when it cannot. */
static const char *index_envelope(struct cctx *c, struct tam_bytes raw)
{
    const struct tam_suit_envelope *e = &c->env;
    int primary = -1;
    for (unsigned i = 0; i < e->ncomponents && primary < 0; i++) {
        bool dep = false;
        for (unsigned d = 0; d < e->ndeps; d++) {
            dep = dep || e->deps[d].index == i;
        }
        primary = dep ? -1 : (int)i;
    }
    if (primary < 0) {
        return "the manifest names no component of its own";
    }
    if (!e->has_manifest_component_id) {
        return "the manifest has no manifest-component-id (TEEP needs it to remove the TC)";
    }
    if (e->ndeps > TAM_PLAN_MAX_DEPS) {
        return "too many dependencies";
    }
    struct tam_store_component *r = &c->rec;
    copy_id(&e->components[primary], &r->component);
    copy_id(&e->manifest_component_id, &r->manifest_id);
    r->has_manifest_id = true;
    r->sequence = e->sequence;
    r->has_digest = true;
    tam_suit_manifest_digest(e, r->digest);
    for (unsigned d = 0; d < e->ndeps; d++) {
        if (!e->deps[d].has_prefix) {
            return "a dependency has no dependency-prefix (its manifest-component-id)";
        }
        copy_id(&e->deps[d].prefix, &r->deps[r->n_deps++]);
    }
    r->envelope = raw;
    return NULL;
}

static void on_anchors(struct adm_op *op, const redisReply *r)
{
    struct cctx *c = op->ctx;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    struct tam_key **keys = tam_arena_array(&op->arena, n + 1, sizeof(*keys));
    size_t nk = 0;
    for (size_t i = 0; keys != NULL && i < n; i++) {
        const redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_STRING &&
            tam_key_from_pem(e->str, e->len, &keys[nk]) == TAM_OK) {
            nk++;
        }
    }
    int err = keys == NULL ? TAM_ENOMEM
              : nk == 0    ? TAM_ESIG
                           : tam_suit_verify(&c->env, (const struct tam_key *const *)keys, nk);
    for (size_t i = 0; i < nk; i++) {
        tam_key_destroy(keys[i]);
    }
    if (err == TAM_ENOMEM) {
        adm_fail(op, err, "verify");
    } else if (err != TAM_OK) {
        adm_problem(op, 422, "envelope not signed by a trusted TC signer%s",
                    nk == 0 ? " (the tenant has no tc-signer trust anchor)" : "");
    } else {
        store(op, c, false);
    }
}

static void upload_envelope(struct adm_op *op, struct cctx *c)
{
    struct tam_bytes body = tam_http_request_body(op->req);
    const char *why = NULL;
    if (body.len == 0 || tam_suit_parse(body.ptr, body.len, &c->env, &why) != TAM_OK) {
        adm_problem(op, 400, "not a SUIT envelope: %s", why != NULL ? why : "empty body");
        return;
    }
    if (c->env.nauth == 0) {
        adm_problem(op, 422, "the envelope is not signed");
        return;
    }
    if (tam_suit_check_digest(&c->env) != TAM_OK) {
        adm_problem(op, 422, "the envelope's manifest digest does not match");
        return;
    }
    why = index_envelope(c, body);
    if (why != NULL) {
        adm_problem(op, 422, "%s", why);
        return;
    }
    char k[TAM_KEY_MAX];
    size_t n = tam_tstore_key_anchors(k, op->tenant, TAM_ANCHOR_TC_SIGNER);
    adm_arg_str(op, "HVALS");
    adm_arg(op, adm_strdup(op, k, n), n);
    adm_redis(op, on_anchors);
}

/* ---- TAM-built upload ---- */

static bool parse_deps(struct adm_jv *v, json_t *a, struct adm_op *op,
                       struct tam_store_component *r)
{
    if (a == NULL) {
        return true;
    }
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n > TAM_PLAN_MAX_DEPS) {
        return adm_jv_fail(v, "dependencies", "an array of at most %d component ids expected",
                           TAM_PLAN_MAX_DEPS);
    }
    for (size_t i = 0; i < n; i++) {
        char name[32];
        (void)snprintf(name, sizeof(name), "dependencies[%zu]", i);
        if (!adm_jv_component_id(v, json_array_get(a, i), name, &op->arena, &r->deps[i])) {
            return false;
        }
    }
    r->n_deps = (uint32_t)n;
    return true;
}

static bool parse_ids16(struct adm_jv *v, json_t *b, struct adm_op *op,
                        struct tam_store_component *r)
{
    static const char *const names[2] = {"vendor_id", "class_id"};
    for (int i = 0; i < 2; i++) {
        json_t *e = json_object_get(b, names[i]);
        struct tam_bytes x;
        if (e == NULL) {
            continue;
        }
        if (!adm_jv_hex(v, e, names[i], 16, 16, &op->arena, &x)) {
            return false;
        }
        memcpy(i == 0 ? r->vendor_id : r->class_id, x.ptr, 16);
        *(i == 0 ? &r->has_vendor_id : &r->has_class_id) = true;
    }
    return true;
}

static bool uri_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return false;
        }
    }
    return n > 0;
}

static bool parse_delivery(struct adm_jv *v, json_t *b, struct tam_store_component *r)
{
    const char *d = NULL, *uri = NULL;
    size_t ulen = 0;
    if (!adm_jv_string(v, b, "delivery", true, 16, &d, NULL) ||
        !adm_jv_string(v, b, "uri", false, TAM_STORE_MAX_URI, &uri, &ulen)) {
        return false;
    }
    if (strcmp(d, "integrated") == 0) {
        r->delivery = TAM_STORE_DELIVERY_INTEGRATED;
    } else if (strcmp(d, "uri") == 0) {
        r->delivery = TAM_STORE_DELIVERY_URI;
    } else {
        return adm_jv_fail(v, "delivery", "\"integrated\" or \"uri\" expected");
    }
    if (r->delivery == TAM_STORE_DELIVERY_URI && uri == NULL) {
        return adm_jv_fail(v, "uri", "required with delivery \"uri\"");
    }
    if (uri != NULL && !uri_ok(uri, ulen)) {
        return adm_jv_fail(v, "uri", "printable ASCII without spaces expected");
    }
    r->uri = tam_bytes_of(uri, uri != NULL ? ulen : 0);
    return true;
}

static bool parse_built(struct adm_jv *v, struct adm_op *op, json_t *b, struct cctx *c)
{
    static const char *const known[] = {
        "component_id", "sequence",  "delivery", "uri",
        "binary",       "vendor_id", "class_id", "manifest_component_id",
        "dependencies", NULL};
    struct tam_store_component *r = &c->rec;
    const char *bin = NULL;
    size_t blen = 0;
    bool ok = adm_jv_members(v, b, known);
    ok = ok && adm_jv_component_id(v, json_object_get(b, "component_id"), "component_id",
                                   &op->arena, &r->component);
    ok = ok && adm_jv_uint(v, b, "sequence", true, 0, INT64_MAX, &r->sequence);
    ok = ok && parse_delivery(v, b, r) && parse_ids16(v, b, op, r);
    json_t *mid = json_object_get(b, "manifest_component_id");
    if (ok && mid != NULL) {
        ok = adm_jv_component_id(v, mid, "manifest_component_id", &op->arena, &r->manifest_id);
        r->has_manifest_id = ok;
    }
    ok = ok && parse_deps(v, json_object_get(b, "dependencies"), op, r);
    ok = ok && adm_jv_string(v, b, "binary", true, SIZE_MAX, &bin, &blen);
    if (ok && (tam_tstore_b64_decode(bin, blen, &c->binary) != TAM_OK || c->binary.len == 0)) {
        return adm_jv_fail(v, "binary", "non-empty base64 expected");
    }
    r->binary = tam_bytes_of(c->binary.data, c->binary.len);
    return ok;
}

static void upload_built(struct adm_op *op, struct cctx *c)
{
    struct tam_bytes body = tam_http_request_body(op->req);
    json_error_t jerr;
    op->body = json_loadb((const char *)body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (op->body == NULL || !json_is_object(op->body)) {
        adm_problem(op, 400, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    op->body == NULL ? jerr.text : "an object expected");
        return;
    }
    struct adm_jv v = {0};
    if (!parse_built(&v, op, op->body, c)) {
        adm_problem(op, 422, "%s", v.why);
        return;
    }
    store(op, c, true);
}

static void component_upload(struct adm_op *op)
{
    const char *ct = tam_http_request_header(op->req, "Content-Type");
    bool env = adm_media_is(ct, ENVELOPE_TYPE);
    if (!env && !adm_media_is(ct, "application/json")) {
        adm_problem(op, 415, "Content-Type must be " ENVELOPE_TYPE " or application/json");
        return;
    }
    struct cctx *c = cctx_new(op);
    if (c == NULL) {
        adm_fail(op, TAM_ENOMEM, "upload");
        return;
    }
    if (env) {
        upload_envelope(op, c);
    } else {
        upload_built(op, c);
    }
}

/* ---- listing ---- */

/* Splits a field "<cid hex>/<seq>"; false when it is not one. */
static bool split_field(const char *f, size_t len, size_t *hexlen, uint64_t *seq)
{
    const char *slash = memchr(f, '/', len);
    if (slash == NULL) {
        return false;
    }
    *hexlen = (size_t)(slash - f);
    return *hexlen > 0 && adm_parse_u64(slash + 1, len - *hexlen - 1, seq);
}

static json_t *id_from_hex(struct adm_op *op, const char *hex, size_t len)
{
    struct tam_buf b;
    tam_buf_init(&b, ADM_CID_HEX_MAX);
    struct tam_teep_component_id id;
    json_t *j = NULL;
    if (tam_hex_decode(hex, len, &b) == TAM_OK &&
        tam_store_id_decode(b.data, b.len, &id, NULL) == TAM_OK) {
        j = adm_json_component_id(&id);
    }
    tam_buf_finish(&b);
    (void)op;
    return j;
}

static int cmp_reply_str(const void *a, const void *b)
{
    const redisReply *x = *(const redisReply *const *)a, *y = *(const redisReply *const *)b;
    return strcmp(x->str, y->str);
}

/* The reply's string elements, sorted (arena). */
static const redisReply **sorted_fields(struct adm_op *op, const redisReply *r, size_t *n)
{
    size_t m = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    const redisReply **v = tam_arena_array(&op->arena, m + 1, sizeof(*v));
    *n = 0;
    for (size_t i = 0; v != NULL && i < m; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING) {
            v[(*n)++] = r->element[i];
        }
    }
    if (v != NULL && *n > 1) {
        qsort(v, *n, sizeof(*v), cmp_reply_str);
    }
    return v;
}

static void on_all_fields(struct adm_op *op, const redisReply *r)
{
    size_t n;
    const redisReply **f = sorted_fields(op, r, &n);
    json_t *arr = json_array();
    bool ok = f != NULL && arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        size_t hl;
        uint64_t seq;
        if (!split_field(f[i]->str, f[i]->len, &hl, &seq)) {
            continue;
        }
        json_t *e = json_object();
        ok = e != NULL && adm_set(e, "component_id", id_from_hex(op, f[i]->str, hl)) &&
             adm_set(e, "sequence", json_integer((json_int_t)seq)) &&
             adm_set(e, "ref", json_stringn(f[i]->str, f[i]->len));
        ok = ok && json_array_append_new(arr, e) == 0;
    }
    adm_json_list(op, "components", arr, ok);
}

static void component_list(struct adm_op *op)
{
    adm_arg_str(op, "HKEYS");
    arg_key(op, "components");
    adm_redis(op, on_all_fields);
}

static void on_versions(struct adm_op *op, const redisReply *r)
{
    size_t n, want = strlen(op->cid_hex);
    const redisReply **f = sorted_fields(op, r, &n);
    json_t *seqs = json_array();
    bool ok = f != NULL && seqs != NULL;
    size_t found = 0;
    for (size_t i = 0; ok && i < n; i++) {
        size_t hl;
        uint64_t seq;
        if (split_field(f[i]->str, f[i]->len, &hl, &seq) && hl == want &&
            memcmp(f[i]->str, op->cid_hex, hl) == 0) {
            ok = json_array_append_new(seqs, json_integer((json_int_t)seq)) == 0;
            found++;
        }
    }
    if (ok && found == 0) {
        json_decref(seqs);
        adm_problem(op, 404, "no such component in tenant %s", op->tenant);
        return;
    }
    json_t *o = ok ? json_object() : NULL;
    ok = o != NULL && adm_set(o, "component_id", id_from_hex(op, op->cid_hex, want)) &&
         adm_set(o, "sequences", json_incref(seqs));
    json_decref(seqs);
    if (!ok) {
        json_decref(o);
        adm_fail(op, TAM_ENOMEM, "component");
        return;
    }
    adm_json(op, 200, o, NULL);
}

static void component_versions(struct adm_op *op)
{
    adm_arg_str(op, "HKEYS");
    arg_key(op, "components");
    adm_redis(op, on_versions);
}

/* ---- one record ---- */

static json_t *record_json(struct adm_op *op, const struct tam_store_component *r)
{
    bool built = r->binary.len > 0;
    json_t *o = json_object(), *deps = json_array();
    bool ok = o != NULL && deps != NULL;
    for (uint32_t i = 0; ok && i < r->n_deps; i++) {
        ok = json_array_append_new(deps, adm_json_component_id(&r->deps[i])) == 0;
    }
    ok = ok && adm_set(o, "component_id", adm_json_component_id(&r->component));
    ok = ok && adm_set(o, "sequence", json_integer((json_int_t)r->sequence));
    ok = ok &&
         adm_set(o, "ref", json_sprintf("%s/%llu", op->cid_hex, (unsigned long long)r->sequence));
    ok = ok && adm_set(o, "kind", json_string(built ? "tam-built" : "envelope"));
    ok = ok && adm_set(o, "state", json_string(tam_store_component_ready(r) ? "ready" : "pending"));
    ok = ok && adm_set(o, "digest",
                       r->has_digest ? adm_json_hex(r->digest, TAM_PLAN_DIGEST_LEN) : json_null());
    ok = ok && adm_set(o, "manifest_component_id",
                       r->has_manifest_id ? adm_json_component_id(&r->manifest_id) : json_null());
    ok = ok && adm_set(o, "dependencies", json_incref(deps));
    ok = ok &&
         adm_set(o, "envelope_size",
                 r->envelope.len > 0 ? json_integer((json_int_t)r->envelope.len) : json_null());
    if (ok && built) {
        uint8_t d[TAM_SHA256_LEN];
        tam_sha256(r->binary.ptr, r->binary.len, d);
        ok = adm_set(o, "binary_size", json_integer((json_int_t)r->binary.len)) &&
             adm_set(o, "image_digest", adm_json_hex(d, sizeof(d))) &&
             adm_set(o, "delivery",
                     json_string(r->delivery == TAM_STORE_DELIVERY_URI ? "uri" : "integrated")) &&
             (r->uri.len == 0 ||
              adm_set(o, "uri", json_stringn((const char *)r->uri.ptr, r->uri.len))) &&
             (!r->has_vendor_id || adm_set(o, "vendor_id", adm_json_hex(r->vendor_id, 16))) &&
             (!r->has_class_id || adm_set(o, "class_id", adm_json_hex(r->class_id, 16)));
    }
    json_decref(deps);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void on_record(struct adm_op *op, const redisReply *r)
{
    struct tam_store_component rec;
    if (r->type != REDIS_REPLY_STRING) {
        adm_problem(op, 404, "no such component version in tenant %s", op->tenant);
        return;
    }
    if (tam_store_component_decode((const uint8_t *)r->str, r->len, &rec, NULL) != TAM_OK) {
        adm_fail(op, TAM_EINVAL, "stored component record");
        return;
    }
    const char *accept = tam_http_request_header(op->req, "Accept");
    if (adm_media_is(accept, ENVELOPE_TYPE)) {
        if (rec.envelope.len == 0) {
            adm_problem(op, 404, "this component's manifest has not been built yet");
            return;
        }
        adm_raw(op, 200, ENVELOPE_TYPE, rec.envelope.ptr, rec.envelope.len);
        return;
    }
    json_t *j = record_json(op, &rec);
    if (j == NULL) {
        adm_fail(op, TAM_ENOMEM, "component");
        return;
    }
    adm_json(op, 200, j, NULL);
}

static void component_get(struct adm_op *op)
{
    adm_arg_str(op, "HGET");
    arg_key(op, "components");
    adm_argf(op, "%s/%llu", op->cid_hex, (unsigned long long)op->seq);
    adm_redis(op, on_record);
}

/* ---- delete ---- */

/* KEYS: components, catalog_version. ARGV: field prefix ("<hex>/" or a whole field), tenant,
 * "1" when ARGV[1] is a prefix. Returns the number of records removed. */
static const char delete_lua[] =
    "local n = 0\n"
    "if ARGV[3] == '1' then\n"
    "  local p = ARGV[1]\n"
    "  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "    if string.sub(f, 1, #p) == p then redis.call('HDEL', KEYS[1], f) n = n + 1 end\n"
    "  end\n"
    "else\n"
    "  n = redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "if n == 0 then return 0 end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('PUBLISH', 'tam:{events}', 'catalog ' .. ARGV[2] .. ' ' .. v)\n"
    "return n\n";

static void on_deleted(struct adm_op *op, const redisReply *r)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < 1) {
        adm_problem(op, 404, "no such component in tenant %s", op->tenant);
        return;
    }
    adm_empty(op, 204);
}

static void delete_args(struct adm_op *op)
{
    adm_arg_str(op, "EVAL");
    adm_arg_str(op, delete_lua);
    adm_arg_str(op, "2");
    arg_key(op, "components");
    arg_key(op, "catalog_version");
}

static void component_delete_all(struct adm_op *op)
{
    delete_args(op);
    adm_argf(op, "%s/", op->cid_hex);
    adm_arg_str(op, op->tenant);
    adm_arg_str(op, "1");
    adm_redis(op, on_deleted);
}

static void component_delete(struct adm_op *op)
{
    delete_args(op);
    adm_argf(op, "%s/%llu", op->cid_hex, (unsigned long long)op->seq);
    adm_arg_str(op, op->tenant);
    adm_arg_str(op, "0");
    adm_redis(op, on_deleted);
}

const struct adm_route adm_component_routes[] = {
    {"tenants/{t}/components", "GET", ADM_TENANT, ADM_BODY_NONE, component_list},
    {"tenants/{t}/components", "POST", ADM_TENANT, ADM_BODY_UPLOAD, component_upload},
    {"tenants/{t}/components/{cid}", "GET", ADM_TENANT, ADM_BODY_NONE, component_versions},
    {"tenants/{t}/components/{cid}", "DELETE", ADM_TENANT, ADM_BODY_NONE, component_delete_all},
    {"tenants/{t}/components/{cid}/{seq}", "GET", ADM_TENANT, ADM_BODY_NONE, component_get},
    {"tenants/{t}/components/{cid}/{seq}", "DELETE", ADM_TENANT, ADM_BODY_NONE, component_delete},
};
const size_t adm_component_nroutes = TAM_ARRAY_LEN(adm_component_routes);
