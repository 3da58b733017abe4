/*
 * Tenants created at run time through the admin API and stored in Redis (tstore.h): a job
 * whose tenant has no [tenant] section in the configuration file is served from
 * tam:t:{<id>}:cfg (settings), tam:t:{<id>}:keys (TEEP keys sealed under the KEK, the SUIT
 * manifest key sealed to the workers' key) and tam:t:{<id>}:anchors:<kind> (trust anchors).
 *
 * Cache: up to WK_RCACHE_MAX tenants, the least recently used evicted. Freshness costs one
 * pipelined command per job: the prefetch reads `HMGET cfg rev created` (every change of the
 * record bumps rev; created tells a re-created tenant from the old one) and a tenant whose
 * stamp changed is rebuilt (cfg and keys in one MULTI/EXEC: they share the {<id>} slot). A
 * missing cfg is a deleted tenant: it leaves the cache and its jobs are answered like an
 * unknown tenant's. Trust anchors change with catalog_version: they are read in the same
 * MULTI as the catalogue (catalog.c), which a QueryResponse brings up to date before it runs.
 *
 * A replaced or evicted tenant may still be used by a job of the batch in progress, so it is
 * retired and freed once the batch is over (wk_rtenants_gc). Keys are never logged; paths,
 * tenant ids and error names are.
 */
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "worker.h"

/* ---- start and stop ---- */

static void key_path(char *out, size_t size, const char *opt, const char *data_dir,
                     const char *file)
{
    if (opt != NULL && opt[0] != '\0') {
        (void)snprintf(out, size, "%s", opt);
    } else {
        (void)snprintf(out, size, "%s/%s", data_dir, file);
    }
}

int wk_rtenants_init(struct worker *w)
{
    struct wk_rcache *rc = &w->rc;
    char kek[TAM_CONFIG_STR_MAX + 32], seal[TAM_CONFIG_STR_MAX + 32];
    key_path(kek, sizeof(kek), w->cfg->kek_file, w->cfg->data_dir, "kek.key");
    key_path(seal, sizeof(seal), w->cfg->worker_seal_key, w->cfg->data_dir, "worker-seal.pem");
    const char *what = "kek-file", *path = kek;
    int err = tam_seal_kek_load(kek, false, rc->kek, NULL);
    if (err == TAM_OK) {
        what = "worker-seal-key";
        path = seal;
        err = tam_seal_worker_key_load(seal, false, &rc->seal_key, NULL);
    }
    if (err == TAM_OK) {
        rc->v = tam_calloc(WK_RCACHE_MAX, sizeof(*rc->v));
        rc->cap_retired = 4 * WK_CHUNK;
        rc->retired = tam_calloc(rc->cap_retired, sizeof(*rc->retired));
        err = rc->v == NULL || rc->retired == NULL ? TAM_ENOMEM : TAM_OK;
        what = "cache";
        path = "-";
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_WARN,
                "event=redis_tenants_disabled key=%s path=\"%.200s\" err=%s "
                "reason=\"only configuration-file tenants are served\"",
                what, path, tam_errname(err));
        wk_rtenants_free(w);
        return err == TAM_ENOMEM ? err : TAM_OK;
    }
    rc->enabled = true;
    return TAM_OK;
}

/*
 * Defers freeing a tenant to the end of the batch. A job resolves (and so retires) at most one
 * tenant and a batch has at most WK_CHUNK jobs, so the array never fills; should it, the
 * tenant is freed at once (no job of this batch can be pointing at it then).
 */
static void retire(struct wk_rcache *rc, struct wk_tenant *wt)
{
    if (wt == NULL) {
        return;
    }
    if (rc->n_retired < rc->cap_retired) {
        rc->retired[rc->n_retired++] = wt;
        return;
    }
    wk_tenant_finish(wt);
    tam_free(wt);
}

void wk_rtenants_gc(struct worker *w)
{
    struct wk_rcache *rc = &w->rc;
    for (uint32_t i = 0; i < rc->n_retired; i++) {
        wk_tenant_finish(rc->retired[i]);
        tam_free(rc->retired[i]);
    }
    rc->n_retired = 0;
}

void wk_rtenants_free(struct worker *w)
{
    struct wk_rcache *rc = &w->rc;
    wk_rtenants_gc(w);
    for (uint32_t i = 0; rc->v != NULL && i < rc->n; i++) {
        if (rc->v[i].wt != NULL) {
            wk_tenant_finish(rc->v[i].wt);
            tam_free(rc->v[i].wt);
        }
    }
    tam_free(rc->retired);
    tam_free(rc->v);
    tam_key_destroy(rc->seal_key);
    tam_memzero(rc->kek, sizeof(rc->kek));
    memset(rc, 0, sizeof(*rc));
}

bool wk_rtenants_serves(const struct worker *w, const char *id)
{
    return w->rc.enabled && tam_tenant_id_valid(id, strlen(id));
}

void wk_rtenant_queue_stamp(struct wk_batch *b, const char *id)
{
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, id, "cfg");
    wk_batch_addf(b, "HMGET %s rev created", key);
}

/* ---- the cache ---- */

static struct wk_rentry *cache_find(struct wk_rcache *rc, const char *id)
{
    for (uint32_t i = 0; i < rc->n; i++) {
        if (strcmp(rc->v[i].id, id) == 0) {
            return &rc->v[i];
        }
    }
    return NULL;
}

static void cache_drop(struct wk_rcache *rc, struct wk_rentry *e)
{
    retire(rc, e->wt);
    *e = rc->v[--rc->n];
}

/* A slot for id: a free one, or the least recently used tenant's. */
static struct wk_rentry *cache_slot(struct wk_rcache *rc, const char *id)
{
    struct wk_rentry *e = NULL;
    if (rc->n < WK_RCACHE_MAX) {
        e = &rc->v[rc->n++];
    } else {
        e = &rc->v[0];
        for (uint32_t i = 1; i < rc->n; i++) {
            e = rc->v[i].used < e->used ? &rc->v[i] : e;
        }
        tam_log(TAM_LOG_INFO, "event=tenant_evicted tenant=%s", e->id);
        retire(rc, e->wt);
    }
    memset(e, 0, sizeof(*e));
    (void)snprintf(e->id, sizeof(e->id), "%s", id);
    return e;
}

/* "<rev>/<created>" (each clamped to 20 characters; either may be empty). */
static void format_stamp(const void *rev, size_t rlen, const void *created, size_t clen, char *out,
                         size_t size)
{
    (void)snprintf(out, size, "%.*s/%.*s", (int)(rlen < 20 ? rlen : 20),
                   rev != NULL ? (const char *)rev : "", (int)(clen < 20 ? clen : 20),
                   created != NULL ? (const char *)created : "");
}

/* The stamp of an HMGET rev created reply. False: no record (the tenant does not exist). */
static bool reply_stamp(const redisReply *pre, char *out, size_t size)
{
    if (pre->type != REDIS_REPLY_ARRAY || pre->elements != 2) {
        return false;
    }
    struct tam_bytes r = {0}, c = {0};
    bool has_rev = wk_reply_bytes(pre->element[0], &r);
    bool has_created = wk_reply_bytes(pre->element[1], &c);
    format_stamp(r.ptr, r.len, c.ptr, c.len, out, size);
    return has_rev || has_created;
}

/* ---- loading a tenant ---- */

/* Field/value pairs of an HGETALL reply (borrowed); *n = 0 for a missing hash. */
static int kv_of(const redisReply *r, struct tam_tstore_kv *kv, size_t *n)
{
    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return r != NULL && r->type == REDIS_REPLY_NIL ? TAM_OK : TAM_EREDIS;
    }
    if (r->elements % 2 != 0 || r->elements / 2 > WK_TENANT_PAIRS) {
        return TAM_EINVAL;
    }
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            return TAM_EINVAL;
        }
        kv[*n] = (struct tam_tstore_kv){f->str, f->len, (const uint8_t *)v->str, v->len};
        (*n)++;
    }
    return TAM_OK;
}

static const struct tam_tstore_kv *kv_find(const struct tam_tstore_kv *kv, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (kv[i].name_len == strlen(name) && memcmp(kv[i].name, name, kv[i].name_len) == 0) {
            return &kv[i];
        }
    }
    return NULL;
}

static void stamp_of(const struct tam_tstore_kv *cfg, size_t n, char *out, size_t size)
{
    const struct tam_tstore_kv *r = kv_find(cfg, n, "rev"), *c = kv_find(cfg, n, "created");
    format_stamp(r != NULL ? r->value : NULL, r != NULL ? r->value_len : 0,
                 c != NULL ? c->value : NULL, c != NULL ? c->value_len : 0, out, size);
}

/* The SUIT manifest key (sealed to the workers), when the tenant has one. */
static int open_manifest_key(const struct wk_rcache *rc, struct wk_tenant *wt,
                             const struct tam_tstore_kv *keys, size_t n, const char **why)
{
    static const enum tam_key_type types[2] = {TAM_KEY_P256, TAM_KEY_ED25519};
    for (int k = 0; k < 2; k++) {
        const char *slot = tam_tstore_key_slot(types[k], true);
        const struct tam_tstore_kv *kv = kv_find(keys, n, slot);
        if (kv == NULL) {
            continue;
        }
        int err = tam_unseal_key(rc->kek, rc->seal_key, wt->t->id, slot, kv->value, kv->value_len,
                                 &wt->manifest_key);
        if (err == TAM_OK && !tam_key_has_private(wt->manifest_key)) {
            err = TAM_EKEY;
        }
        if (err != TAM_OK) {
            *why = "the manifest key does not open (worker-seal-key of another deployment?)";
            return err;
        }
        return wk_keys_add_public(&wt->signer, wt->manifest_key);
    }
    return TAM_OK;
}

/* A tenant from its cfg and keys hashes (anchors follow with the catalogue). */
static int build(const struct wk_rcache *rc, const char *id, const struct tam_tstore_kv *cfg,
                 size_t ncfg, const struct tam_tstore_kv *keys, size_t nkeys,
                 struct wk_tenant **out, const char **why)
{
    struct wk_tenant *wt = tam_calloc(1, sizeof(*wt));
    if (wt == NULL) {
        return TAM_ENOMEM;
    }
    wt->redis = true;
    tam_arena_init(&wt->cat.arena, 16u << 10, 64u << 20);
    *why = "the TEEP keys do not open (kek-file of another deployment?)";
    int err = tam_tstore_tenant_build(id, cfg, ncfg, keys, nkeys, rc->kek, &wt->t);
    if (err == TAM_EINVAL) {
        *why = "invalid configuration record";
    }
    if (err == TAM_OK && wt->t->tam_keys[0] == NULL && wt->t->tam_keys[1] == NULL) {
        *why = "no TEEP signing key";
        err = TAM_EKEY;
    }
    if (err == TAM_OK) {
        err = open_manifest_key(rc, wt, keys, nkeys, why);
    }
    if (err != TAM_OK) {
        wk_tenant_finish(wt);
        tam_free(wt);
        return err;
    }
    *out = wt;
    return TAM_OK;
}

/* Reads cfg and keys in one MULTI/EXEC; *exec is the EXEC reply (owned by rep[3]). */
static int fetch(struct worker *w, const char *id, redisReply *rep[4], const redisReply **exec)
{
    char kcfg[TAM_KEY_MAX], kkeys[TAM_KEY_MAX];
    tam_key_tenant(kcfg, id, "cfg");
    tam_key_tenant(kkeys, id, "keys");
    struct wk_batch b;
    wk_batch_init(&b);
    wk_batch_addf(&b, "MULTI");
    wk_batch_addf(&b, "HGETALL %s", kcfg);
    wk_batch_addf(&b, "HGETALL %s", kkeys);
    wk_batch_addf(&b, "EXEC");
    int err = wk_batch_exec(w, &b, rep);
    wk_batch_finish(&b);
    if (err != TAM_OK) {
        return err;
    }
    const redisReply *x = rep[3];
    if (x == NULL || x->type != REDIS_REPLY_ARRAY || x->elements != 2) {
        wk_replies_free(rep, 4);
        return TAM_EREDIS;
    }
    *exec = x;
    return TAM_OK;
}

/*
 * (Re)loads e from Redis. TAM_OK: e->wt is the tenant, or NULL when its record does not load
 * (logged once per stamp); TAM_ENOTFOUND: the tenant does not exist; else retry later.
 */
static int load(struct worker *w, struct wk_rentry *e)
{
    redisReply *rep[4];
    const redisReply *x = NULL;
    int err = fetch(w, e->id, rep, &x);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_tstore_kv cfg[WK_TENANT_PAIRS], keys[WK_TENANT_PAIRS];
    size_t ncfg = 0, nkeys = 0;
    const char *why = "malformed record";
    err = kv_of(x->element[0], cfg, &ncfg);
    if (err == TAM_OK) {
        err = kv_of(x->element[1], keys, &nkeys);
    }
    if (err == TAM_OK && ncfg == 0) {
        err = TAM_ENOTFOUND;
    }
    struct wk_tenant *wt = NULL;
    if (err == TAM_OK || err == TAM_EINVAL) {
        stamp_of(cfg, ncfg, e->stamp, sizeof(e->stamp));
        err = err == TAM_OK ? build(&w->rc, e->id, cfg, ncfg, keys, nkeys, &wt, &why) : err;
    }
    wk_replies_free(rep, 4);
    retire(&w->rc, e->wt);
    e->wt = wt;
    w->n.tenant_loads++;
    if (err == TAM_OK) {
        tam_log(TAM_LOG_INFO, "event=tenant_loaded tenant=%s source=redis stamp=%s manifest_key=%s",
                e->id, e->stamp, wt->manifest_key != NULL ? "yes" : "no");
    } else if (err != TAM_ENOTFOUND && err != TAM_EREDIS && err != TAM_ENOMEM &&
               err != TAM_EUNAVAIL) {
        tam_log(TAM_LOG_ERROR,
                "event=tenant_load_failed tenant=%s source=redis stamp=%s err=%s reason=\"%s\"",
                e->id, e->stamp, tam_errname(err), why);
        err = TAM_OK; /* cached as invalid until the record changes */
    }
    return err;
}

/* The cache entry for id at the prefetched stamp, loading it when needed; NULL: no tenant. */
static int lookup(struct worker *w, const char *id, const redisReply *pre, struct wk_rentry **out)
{
    struct wk_rcache *rc = &w->rc;
    *out = NULL;
    if (pre == NULL || pre->type == REDIS_REPLY_ERROR) {
        return TAM_EREDIS;
    }
    char stamp[WK_STAMP_MAX];
    bool exists = reply_stamp(pre, stamp, sizeof(stamp));
    struct wk_rentry *e = cache_find(rc, id);
    if (!exists) {
        if (e != NULL) {
            tam_log(TAM_LOG_INFO, "event=tenant_dropped tenant=%s reason=\"deleted\"", id);
            cache_drop(rc, e);
        }
        return TAM_OK;
    }
    if (e == NULL || strcmp(e->stamp, stamp) != 0) {
        e = e != NULL ? e : cache_slot(rc, id);
        int err = load(w, e);
        if (err != TAM_OK) {
            cache_drop(rc, e);
            return err == TAM_ENOTFOUND ? TAM_OK : err;
        }
    }
    e->used = ++rc->tick;
    *out = e;
    return TAM_OK;
}

int wk_rtenant_resolve(struct wk_job *j)
{
    struct wk_rentry *e = NULL;
    int err = lookup(j->w, j->job.tenant, j->pre.stamp, &e);
    if (err != TAM_OK || e == NULL) {
        return err;
    }
    j->tenant = e->wt;
    j->tenant_invalid = e->wt == NULL;
    if (j->tenant != NULL && j->job.kind == TAM_JOB_QUERY_RESPONSE) {
        struct wk_catalog *cat = NULL;
        err = wk_catalog_get(j, &cat); /* fresh trust anchors before the EAT is checked */
    }
    return err;
}

/* ---- trust anchors ---- */

/* The public keys of one anchors hash (kid hex -> SPKI PEM); bad entries are skipped. */
static int anchors_of(const char *tenant, enum tam_anchor_kind kind, const redisReply *r,
                      struct wk_keys *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        return TAM_OK; /* no anchors of this kind */
    }
    size_t n = r->elements / 2 < WK_ANCHORS_MAX ? r->elements / 2 : WK_ANCHORS_MAX;
    out->v = tam_calloc(n + 2, sizeof(*out->v)); /* + the manifest key for tc-signer */
    if (out->v == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        int err = v->type == REDIS_REPLY_STRING ? tam_key_from_pem(v->str, v->len, &out->v[out->n])
                                                : TAM_EINVAL;
        if (err == TAM_ENOMEM) {
            wk_keys_free(out);
            return err;
        }
        if (err != TAM_OK) {
            char q[160];
            tam_log(TAM_LOG_WARN, "event=anchor_skipped tenant=%s kind=%s kid=%s err=%s", tenant,
                    tam_tstore_anchor_kind_name(kind),
                    f->type == REDIS_REPLY_STRING ? tam_log_quote(f->str, f->len, q, sizeof(q))
                                                  : "?",
                    tam_errname(err));
            continue;
        }
        out->n++;
    }
    if (r->elements / 2 > WK_ANCHORS_MAX) {
        tam_log(TAM_LOG_WARN, "event=anchors_truncated tenant=%s kind=%s max=%d", tenant,
                tam_tstore_anchor_kind_name(kind), WK_ANCHORS_MAX);
    }
    return TAM_OK;
}

int wk_rtenant_anchors_set(struct wk_tenant *wt, const redisReply *const r[TAM_ANCHOR_KINDS])
{
    struct wk_keys k[TAM_ANCHOR_KINDS];
    memset(k, 0, sizeof(k));
    int err = TAM_OK;
    for (int i = 0; i < TAM_ANCHOR_KINDS && err == TAM_OK; i++) {
        err = anchors_of(wt->t->id, (enum tam_anchor_kind)i, r[i], &k[i]);
    }
    if (err == TAM_OK && wt->manifest_key != NULL) {
        err = wk_keys_add_public(&k[TAM_ANCHOR_TC_SIGNER], wt->manifest_key);
    }
    if (err != TAM_OK) {
        for (int i = 0; i < TAM_ANCHOR_KINDS; i++) {
            wk_keys_free(&k[i]);
        }
        return err;
    }
    wk_keys_free(&wt->signer);
    wk_keys_free(&wt->attester);
    wk_keys_free(&wt->verifier);
    wt->signer = k[TAM_ANCHOR_TC_SIGNER];
    wt->attester = k[TAM_ANCHOR_ATTESTER];
    wt->verifier = k[TAM_ANCHOR_VERIFIER];
    return TAM_OK;
}
