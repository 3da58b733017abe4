/*
 * A tenant's catalogue (tam:t:{tenant}:components) and policy (tam:t:{tenant}:policy), cached
 * per tam:t:{tenant}:catalog_version and read in one MULTI/EXEC (all three keys share the
 * tenant's slot), so a cache never mixes two versions.
 *
 * Every envelope is authenticated once per load: it must verify with a tc-signer key of the
 * tenant (or the manifest key, for envelopes this TAM built) and agree with its record
 * (sequence, digest, manifest component id, first component). Records that fail are left out
 * and logged: the TAM relays only TCs from authorised signers.
 *
 * TAM-built manifests: a record holding a binary and no envelope is built and signed here with
 * the tenant's manifest key, then written back into its record (compare-and-set), so that the
 * one signature serves every device and every worker. A short lock key
 * (tam:t:{tenant}:build:<field>, PX 10 s) keeps two workers loading the same version at the
 * same time from both signing; the loser waits for the winner's record. Signing is
 * deterministic (RFC 6979 / Ed25519), so even a duplicate build yields identical bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/suit.h"
#include "worker.h"

#define BUILD_LOCK_MS 10000
#define BUILD_WAIT_MS 2000
#define BUILD_POLL_MS 20

static const char cas_lua[] = "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
                              "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])\n"
                              "  return 1\n"
                              "end\n"
                              "return 0\n";

static void free_entry(struct wk_entry *e)
{
    tam_free(e->record);
    tam_free(e->field);
    memset(e, 0, sizeof(*e));
}

void wk_catalog_free(struct wk_catalog *cat)
{
    for (uint32_t i = 0; i < cat->n_entries; i++) {
        free_entry(&cat->entries[i]);
    }
    tam_free(cat->entries);
    tam_free(cat->manifests);
    cat->entries = NULL;
    cat->manifests = NULL;
    cat->n_entries = 0;
    cat->n_manifests = 0;
    tam_arena_reset(&cat->arena);
    memset(&cat->policy, 0, sizeof(cat->policy));
    cat->loaded = false;
}

static long long version_of(const redisReply *r)
{
    if (r == NULL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    if (r->type == REDIS_REPLY_STRING && r->len < 24) {
        char tmp[24];
        memcpy(tmp, r->str, r->len);
        tmp[r->len] = '\0';
        return strtoll(tmp, NULL, 10);
    }
    return 0;
}

static bool ids_equal(const struct tam_suit_component_id *a, const struct tam_teep_component_id *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (unsigned i = 0; i < a->n; i++) {
        if (a->seg[i].len != b->seg[i].len ||
            (a->seg[i].len > 0 && memcmp(a->seg[i].ptr, b->seg[i].ptr, a->seg[i].len) != 0)) {
            return false;
        }
    }
    return true;
}

/* The envelope verifies with a trusted key and says what its record says. */
static int verify_envelope(const struct wk_tenant *t, const struct tam_store_component *c,
                           const char **why)
{
    struct tam_suit_envelope *env = tam_malloc(sizeof(*env));
    if (env == NULL) {
        return TAM_ENOMEM;
    }
    int err = tam_suit_parse(c->envelope.ptr, c->envelope.len, env, why);
    if (err == TAM_OK) {
        err = tam_suit_verify(env, (const struct tam_key *const *)t->signer.v, t->signer.n);
        *why = err == TAM_OK ? *why : "envelope does not verify with a tc-signer key";
    }
    if (err == TAM_OK &&
        (env->sequence != c->sequence || env->digest.alg != TAM_ALG_SHA256 ||
         env->digest.bytes.len != TAM_PLAN_DIGEST_LEN ||
         memcmp(env->digest.bytes.ptr, c->digest, TAM_PLAN_DIGEST_LEN) != 0 ||
         !env->has_manifest_component_id ||
         !ids_equal(&env->manifest_component_id, &c->manifest_id) || env->ncomponents == 0 ||
         !ids_equal(&env->components[0], &c->component))) {
        *why = "record disagrees with its envelope";
        err = TAM_ESUIT;
    }
    tam_free(env);
    return err;
}

/* Replaces e's record by bytes (taking ownership) after decoding it. */
static int adopt_record(struct wk_entry *e, uint8_t *bytes, size_t len, const char **why)
{
    struct tam_store_component c;
    int err = tam_store_component_decode(bytes, len, &c, why);
    if (err != TAM_OK) {
        tam_free(bytes);
        return err;
    }
    tam_free(e->record);
    e->record = bytes;
    e->record_len = len;
    e->c = c;
    return TAM_OK;
}

static uint8_t *copy_bytes(const void *p, size_t n)
{
    uint8_t *b = tam_malloc(n > 0 ? n : 1);
    if (b != NULL && n > 0) {
        memcpy(b, p, n);
    }
    return b;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL);
}

/* ---- TAM-built manifests ---- */

static int build_envelope(const struct wk_tenant *t, const struct tam_store_component *c,
                          struct tam_buf *out)
{
    char uri[TAM_STORE_MAX_URI + 1];
    memcpy(uri, c->uri.ptr != NULL ? (const char *)c->uri.ptr : "", c->uri.len);
    uri[c->uri.len] = '\0';
    uint8_t digest[TAM_SHA256_LEN];
    tam_sha256(c->binary.ptr, c->binary.len, digest);
    bool integrated = c->delivery == TAM_STORE_DELIVERY_INTEGRATED;
    struct tam_suit_build_params p = {
        .kind = integrated ? TAM_SUIT_BUILD_INTEGRATED : TAM_SUIT_BUILD_URI,
        .component_id = c->component.seg,
        .ncomponent_id = c->component.n,
        .manifest_component_id = c->has_manifest_id ? c->manifest_id.seg : NULL,
        .nmanifest_component_id = c->has_manifest_id ? c->manifest_id.n : 0,
        .vendor_id = c->has_vendor_id ? c->vendor_id : NULL,
        .class_id = c->has_class_id ? c->class_id : NULL,
        .sequence = c->sequence,
        .image_digest = digest,
        .image_size = c->binary.len,
        .payload = integrated ? c->binary : tam_bytes_of(NULL, 0),
        .uri = integrated ? (c->uri.len > 0 ? uri : NULL) : uri,
        .uninstall = true,
    };
    return tam_suit_build(&p, t->manifest_key, tam_key_default_alg(t->manifest_key), out);
}

/* The record with the built envelope, its manifest id and digest filled in. */
static int built_record(const struct tam_store_component *old, const struct tam_buf *envbuf,
                        struct tam_buf *out)
{
    struct tam_suit_envelope *env = tam_malloc(sizeof(*env));
    if (env == NULL) {
        return TAM_ENOMEM;
    }
    const char *why = NULL;
    int err = tam_suit_parse(envbuf->data, envbuf->len, env, &why);
    if (err == TAM_OK && (!env->has_manifest_component_id ||
                          env->manifest_component_id.n > TAM_TEEP_MAX_ID_SEGMENTS)) {
        err = TAM_ESUIT;
    }
    if (err == TAM_OK) {
        struct tam_store_component c = *old;
        c.envelope = tam_bytes_of(envbuf->data, envbuf->len);
        c.has_manifest_id = true;
        memset(&c.manifest_id, 0, sizeof(c.manifest_id));
        c.manifest_id.n = env->manifest_component_id.n;
        for (unsigned i = 0; i < env->manifest_component_id.n; i++) {
            c.manifest_id.seg[i] = env->manifest_component_id.seg[i];
        }
        c.has_digest = true;
        tam_suit_manifest_digest(env, c.digest);
        err = tam_store_component_encode(&c, out);
    }
    tam_free(env);
    return err;
}

/* Writes the built record back unless the record changed meanwhile (then adopt nothing). */
static int store_built(struct wk_job *j, const struct wk_entry *e, const struct tam_buf *rec,
                       bool *stored)
{
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, j->tenant->t->id, "components");
    const char *argv[] = {
        "EVAL", cas_lua, "1", key, e->field, (const char *)e->record, (const char *)rec->data};
    size_t lens[] = {4, strlen(cas_lua), 1, strlen(key), strlen(e->field), e->record_len, rec->len};
    redisReply *r = wk_cmd_argv(j->w, j->w->cmd, 7, argv, lens);
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    *stored = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return TAM_OK;
}

static int build_and_store(struct wk_job *j, struct wk_entry *e)
{
    struct tam_buf envbuf, rec;
    tam_buf_init(&envbuf, TAM_SUIT_MAX_ENVELOPE);
    tam_buf_init(&rec, TAM_STORE_MAX_RECORD);
    int err = build_envelope(j->tenant, &e->c, &envbuf);
    if (err == TAM_OK) {
        err = built_record(&e->c, &envbuf, &rec);
    }
    bool stored = false;
    if (err == TAM_OK) {
        err = store_built(j, e, &rec, &stored);
    }
    if (err == TAM_OK) {
        j->w->n.manifests_built++;
        tam_log(TAM_LOG_INFO, "event=manifest_built tenant=%s field=%.80s size=%zu stored=%s",
                j->tenant->t->id, e->field, envbuf.len, stored ? "yes" : "no");
        size_t len = 0;
        uint8_t *bytes = tam_buf_take(&rec, &len);
        const char *why = NULL;
        err = bytes != NULL ? adopt_record(e, bytes, len, &why) : TAM_ENOMEM;
    }
    tam_buf_finish(&envbuf);
    tam_buf_finish(&rec);
    return err;
}

/* Another worker holds the build lock: wait for its record. True when adopted. */
static bool wait_for_peer(struct wk_job *j, struct wk_entry *e, const char *key)
{
    for (int waited = 0; waited < BUILD_WAIT_MS; waited += BUILD_POLL_MS) {
        sleep_ms(BUILD_POLL_MS);
        redisReply *r = wk_cmd(j->w, j->w->cmd, "HGET %s %s", key, e->field);
        struct tam_bytes b;
        struct tam_store_component c;
        const char *why = NULL;
        bool ready = wk_reply_bytes(r, &b) &&
                     tam_store_component_decode(b.ptr, b.len, &c, &why) == TAM_OK &&
                     tam_store_component_ready(&c);
        uint8_t *copy = ready ? copy_bytes(b.ptr, b.len) : NULL;
        if (r != NULL) {
            freeReplyObject(r);
        }
        if (copy != NULL && adopt_record(e, copy, b.len, &why) == TAM_OK) {
            return true;
        }
        if (r == NULL) {
            return false;
        }
    }
    return false;
}

static int build_entry(struct wk_job *j, struct wk_entry *e)
{
    const char *tenant = j->tenant->t->id;
    if (j->tenant->manifest_key == NULL) {
        tam_log(TAM_LOG_WARN,
                "event=component_skipped tenant=%s field=%.80s "
                "reason=\"TAM-built record but no manifest-key\"",
                tenant, e->field);
        return TAM_EKEY;
    }
    char key[TAM_KEY_MAX], what[TAM_KEY_MAX];
    tam_key_tenant(key, tenant, "components");
    (void)snprintf(what, sizeof(what), "build:%.180s", e->field);
    char lock[TAM_KEY_MAX];
    tam_key_tenant(lock, tenant, what);
    redisReply *r = wk_cmd(j->w, j->w->cmd, "SET %s %s NX PX %d", lock, j->w->id, BUILD_LOCK_MS);
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    bool locked = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!locked && wait_for_peer(j, e, key)) {
        return TAM_OK;
    }
    int err = build_and_store(j, e);
    if (locked) {
        r = wk_cmd(j->w, j->w->cmd, "DEL %s", lock);
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    return err;
}

/* ---- loading ---- */

static int add_entry(struct wk_job *j, struct wk_catalog *cat, const redisReply *f,
                     const redisReply *v)
{
    struct wk_entry *e = &cat->entries[cat->n_entries];
    memset(e, 0, sizeof(*e));
    e->field = (char *)copy_bytes(f->str, f->len + 1);
    e->record = copy_bytes(v->str, v->len);
    if (e->field == NULL || e->record == NULL) {
        free_entry(e);
        return TAM_ENOMEM;
    }
    e->field[f->len] = '\0';
    e->record_len = v->len;
    const char *why = "?";
    int err = tam_store_component_decode(e->record, e->record_len, &e->c, &why);
    if (err == TAM_OK && !tam_store_component_ready(&e->c)) {
        err = build_entry(j, e);
        why = "build failed";
    }
    if (err == TAM_OK) {
        err = verify_envelope(j->tenant, &e->c, &why);
    }
    if (err == TAM_EUNAVAIL || err == TAM_ENOMEM) {
        free_entry(e);
        return err;
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=component_skipped tenant=%s field=%.80s reason=\"%s\"",
                j->tenant->t->id, e->field, why);
        free_entry(e);
        return TAM_OK;
    }
    cat->n_entries++;
    return TAM_OK;
}

static int load_entries(struct wk_job *j, struct wk_catalog *cat, const redisReply *all)
{
    if (all == NULL || all->type != REDIS_REPLY_ARRAY || all->elements % 2 != 0) {
        return TAM_OK;
    }
    size_t n = all->elements / 2;
    if (n > TAM_PLAN_MAX_CATALOGUE) {
        tam_log(TAM_LOG_ERROR, "event=catalog_too_big tenant=%s entries=%zu", j->tenant->t->id, n);
        return TAM_OK;
    }
    cat->entries = tam_calloc(n + 1, sizeof(*cat->entries));
    cat->manifests = tam_calloc(n + 1, sizeof(*cat->manifests));
    if (cat->entries == NULL || cat->manifests == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = all->element[2 * i];
        const redisReply *v = all->element[2 * i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }
        int err = add_entry(j, cat, f, v);
        if (err != TAM_OK) {
            return err;
        }
    }
    for (uint32_t i = 0; i < cat->n_entries; i++) {
        struct wk_entry *e = &cat->entries[i];
        if (tam_store_component_manifest(&e->c, e, &cat->manifests[cat->n_manifests]) == TAM_OK) {
            cat->n_manifests++;
        }
    }
    return TAM_OK;
}

static void load_policy(struct wk_job *j, struct wk_catalog *cat, const redisReply *r)
{
    struct tam_bytes json;
    if (!wk_reply_bytes(r, &json)) {
        return; /* no policy: no rules */
    }
    char why[256];
    int err = tam_store_policy_parse((const char *)json.ptr, json.len, &cat->arena, &cat->policy,
                                     why, sizeof(why));
    if (err != TAM_OK) {
        char q[300];
        tam_log(TAM_LOG_ERROR, "event=policy_invalid tenant=%s err=%s reason=%s", j->tenant->t->id,
                tam_errname(err), tam_log_quote(why, strlen(why), q, sizeof(q)));
    }
}

/* A Redis tenant's trust anchors are read in the same MULTI: they change with the version. */
static void queue_anchors(const struct wk_tenant *t, struct wk_batch *b)
{
    for (int k = 0; t->redis && k < TAM_ANCHOR_KINDS; k++) {
        char key[TAM_KEY_MAX];
        tam_tstore_key_anchors(key, t->t->id, (enum tam_anchor_kind)k);
        wk_batch_addf(b, "HGETALL %s", key);
    }
}

static int load(struct wk_job *j, struct wk_catalog *cat)
{
    const char *tenant = j->tenant->t->id;
    char kver[TAM_KEY_MAX], kcomp[TAM_KEY_MAX], kpol[TAM_KEY_MAX];
    tam_key_tenant(kver, tenant, "catalog_version");
    tam_key_tenant(kcomp, tenant, "components");
    tam_key_tenant(kpol, tenant, "policy");
    struct wk_batch b;
    wk_batch_init(&b);
    wk_batch_addf(&b, "MULTI");
    wk_batch_addf(&b, "GET %s", kver);
    wk_batch_addf(&b, "HGETALL %s", kcomp);
    wk_batch_addf(&b, "GET %s", kpol);
    queue_anchors(j->tenant, &b);
    wk_batch_addf(&b, "EXEC");
    redisReply *rep[5 + TAM_ANCHOR_KINDS];
    int err = wk_batch_exec(j->w, &b, rep);
    uint32_t n = b.n;
    wk_batch_finish(&b);
    if (err != TAM_OK) {
        return err;
    }
    const redisReply *x = rep[n - 1];
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements != n - 2) {
        wk_replies_free(rep, n);
        return TAM_EREDIS;
    }
    wk_catalog_free(cat);
    cat->version = version_of(x->element[0]);
    if (j->tenant->redis) {
        err = wk_rtenant_anchors_set(j->tenant, (const redisReply *const *)x->element + 3);
    }
    if (err == TAM_OK) {
        err = load_entries(j, cat, x->element[1]);
    }
    if (err == TAM_OK) {
        load_policy(j, cat, x->element[2]);
        cat->loaded = true;
        j->w->n.catalog_loads++;
        tam_log(TAM_LOG_INFO,
                "event=catalog_loaded tenant=%s version=%lld entries=%u ready=%u "
                "rules=%u",
                tenant, cat->version, cat->n_entries, cat->n_manifests, cat->policy.plan.n_rules);
    } else {
        wk_catalog_free(cat);
    }
    wk_replies_free(rep, n);
    return err;
}

int wk_catalog_get(struct wk_job *j, struct wk_catalog **out)
{
    struct wk_catalog *cat = &j->tenant->cat;
    long long v = version_of(j->pre.version);
    if (!cat->loaded || cat->version != v) {
        int err = load(j, cat);
        if (err != TAM_OK) {
            return err;
        }
    }
    *out = cat;
    return TAM_OK;
}
