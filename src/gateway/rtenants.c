/*
 * Tenants created at run time through the admin API, read from Redis (tstore.h) and cached
 * per process: id -> immutable tam_tenant snapshot (or "absent").
 *
 * Freshness without pub/sub: an entry is trusted for TAM_GW_RTENANT_FRESH_MS; the first
 * lookup after that waits for one HMGET of the record's rev and creation time (a change, a
 * deletion, a re-creation or a rotated key changes or removes them; requests arriving
 * meanwhile join the wait) and the snapshot is
 * reloaded when it changed. So no request starting a second after a change sees the old
 * tenant, at the cost of one tiny command per tenant and second, and it works on Redis
 * Cluster (the admin's PUBLISH on tam:{events} is for other consumers).
 * Unknown ids are cached as absent just as briefly, so a flood of requests for a bogus
 * tenant costs one Redis read per second per id, and the table is bounded (oldest out).
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/tstore.h"

#define RT_BUCKETS 1024u /* power of two */
#define RT_KV_MAX  64u   /* hash fields read per record (cfg has 14, keys up to 6) */

static const char load_lua[] = "return {redis.call('HGETALL', KEYS[1]), "
                               "redis.call('HGETALL', KEYS[2])}";

struct rt_waiter {
    struct rt_waiter *next;
    tam_gw_tenant_fn cb;
    void *arg;
};

struct rt_entry {
    struct rt_entry *chain;
    char id[TAM_TENANT_ID_MAX + 1];
    uint32_t hash;
    struct tam_tenant *t; /* owned reference; NULL: absent (or never loaded) */
    uint64_t rev, created; /* identify the snapshot: a re-created tenant restarts rev at 0 */
    uint64_t checked_ms; /* uv_now of the last load or revalidation */
    bool loading;        /* a load or revalidation is in flight */
    bool loaded;         /* checked_ms means something */
    struct rt_waiter *waiters;
};

struct tam_gw_rtenants {
    struct tam_gw *gw;
    struct rt_entry *buckets[RT_BUCKETS];
    size_t n;
};

static uint32_t hash_id(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *id != '\0'; id++) {
        h = (h ^ (uint8_t)*id) * 16777619u;
    }
    return h;
}

int tam_gw_rtenants_create(struct tam_gw *gw, struct tam_gw_rtenants **out)
{
    *out = tam_calloc(1, sizeof(**out));
    if (*out == NULL) {
        return TAM_ENOMEM;
    }
    (*out)->gw = gw;
    return TAM_OK;
}

static void fire_waiters(struct rt_entry *e, struct tam_gw *gw, int err)
{
    struct rt_waiter *w = e->waiters;
    e->waiters = NULL;
    while (w != NULL) {
        struct rt_waiter *next = w->next;
        struct tam_tenant *t = e->t != NULL ? tam_tenant_ref(e->t) : NULL;
        w->cb(gw, t, err, w->arg);
        tam_free(w);
        w = next;
    }
}

void tam_gw_rtenants_destroy(struct tam_gw_rtenants *rt)
{
    if (rt == NULL) {
        return;
    }
    for (size_t b = 0; b < RT_BUCKETS; b++) {
        while (rt->buckets[b] != NULL) {
            struct rt_entry *e = rt->buckets[b];
            rt->buckets[b] = e->chain;
            fire_waiters(e, rt->gw, TAM_EUNAVAIL);
            tam_tenant_unref(e->t);
            tam_free(e);
        }
    }
    tam_free(rt);
}

static struct rt_entry *find(struct tam_gw_rtenants *rt, const char *id, uint32_t h)
{
    for (struct rt_entry *e = rt->buckets[h & (RT_BUCKETS - 1)]; e != NULL; e = e->chain) {
        if (e->hash == h && strcmp(e->id, id) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Makes room by dropping the least recently checked idle entry (rare: the table is large). */
static void evict_one(struct tam_gw_rtenants *rt)
{
    struct rt_entry **victim = NULL;
    for (size_t b = 0; b < RT_BUCKETS; b++) {
        for (struct rt_entry **pp = &rt->buckets[b]; *pp != NULL; pp = &(*pp)->chain) {
            if (!(*pp)->loading && (victim == NULL || (*pp)->checked_ms < (*victim)->checked_ms)) {
                victim = pp;
            }
        }
    }
    if (victim != NULL) {
        struct rt_entry *e = *victim;
        *victim = e->chain;
        tam_tenant_unref(e->t);
        tam_free(e);
        rt->n--;
    }
}

static struct rt_entry *insert(struct tam_gw_rtenants *rt, const char *id, uint32_t h)
{
    if (rt->n >= TAM_GW_RTENANTS_MAX) {
        evict_one(rt);
    }
    struct rt_entry *e = tam_calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    (void)snprintf(e->id, sizeof(e->id), "%s", id);
    e->hash = h;
    e->chain = rt->buckets[h & (RT_BUCKETS - 1)];
    rt->buckets[h & (RT_BUCKETS - 1)] = e;
    rt->n++;
    return e;
}

/* Borrowed field/value pairs of an HGETALL reply. */
static size_t to_kv(const redisReply *r, struct tam_tstore_kv *kv)
{
    size_t n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    for (size_t i = 0; i + 1 < r->elements && n < RT_KV_MAX; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && v->type == REDIS_REPLY_STRING) {
            kv[n++] = (struct tam_tstore_kv){k->str, k->len, (const uint8_t *)v->str, v->len};
        }
    }
    return n;
}

/* Replaces the snapshot with the one in reply (an array of the cfg and keys HGETALLs). */
static int apply_load(struct tam_gw_rtenants *rt, struct rt_entry *e, const redisReply *reply)
{
    struct tam_tstore_kv cfg[RT_KV_MAX], keys[RT_KV_MAX];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2) {
        return TAM_EREDIS;
    }
    size_t ncfg = to_kv(reply->element[0], cfg);
    size_t nkeys = to_kv(reply->element[1], keys);
    struct tam_tenant *t = NULL;
    int err = tam_tstore_tenant_build(e->id, cfg, ncfg, keys, nkeys, rt->gw->secrets.kek, &t);
    if (err != TAM_OK && err != TAM_ENOTFOUND) {
        /* A record we cannot open (wrong KEK, corrupt): refuse the tenant, say why once. */
        tam_log(TAM_LOG_ERROR, "event=tenant_unreadable tenant=%s err=%s", e->id,
                tam_errname(err));
    }
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    for (size_t i = 0; i < ncfg; i++) {
        char name[32];
        if (cfg[i].name_len < sizeof(name)) {
            memcpy(name, cfg[i].name, cfg[i].name_len);
            name[cfg[i].name_len] = '\0';
            /* tam_tstore_tenant_build validated the record; only rev and created matter. */
            int bad = tam_tstore_cfg_set(&c, name, (const char *)cfg[i].value, cfg[i].value_len);
            (void)bad;
        }
    }
    tam_tenant_unref(e->t);
    e->t = t;
    e->rev = c.rev;
    e->created = c.created_ms;
    return TAM_OK;
}

static void finish_check(struct tam_gw_rtenants *rt, struct rt_entry *e, int err)
{
    e->loading = false;
    if (err == TAM_OK) {
        e->loaded = true;
        e->checked_ms = uv_now(rt->gw->loop);
    }
    fire_waiters(e, rt->gw, err);
}

static void on_loaded(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct rt_entry *e = privdata;
    struct tam_gw_rtenants *rt = ((struct tam_gw *)tam_redis_data(r))->rtenants;
    int err = status == TAM_OK ? apply_load(rt, e, reply) : TAM_EUNAVAIL;
    finish_check(rt, e, err);
}

static int start_load(struct tam_gw_rtenants *rt, struct rt_entry *e)
{
    char kc[TAM_KEY_MAX], kk[TAM_KEY_MAX];
    tam_key_tenant(kc, e->id, "cfg");
    tam_key_tenant(kk, e->id, "keys");
    int err = tam_redis_command(rt->gw->rc, on_loaded, e, "EVAL %s 2 %s %s", load_lua, kc, kk);
    e->loading = err == TAM_OK;
    return err;
}

static void on_rev(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct rt_entry *e = privdata;
    struct tam_gw_rtenants *rt = ((struct tam_gw *)tam_redis_data(r))->rtenants;
    if (status != TAM_OK) {
        finish_check(rt, e, TAM_EUNAVAIL); /* keep serving the snapshot we have */
        return;
    }
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    bool exists = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                  reply->element[0]->type == REDIS_REPLY_STRING &&
                  reply->element[1]->type == REDIS_REPLY_STRING &&
                  tam_tstore_cfg_set(&c, "rev", reply->element[0]->str,
                                     reply->element[0]->len) == TAM_OK &&
                  tam_tstore_cfg_set(&c, "created", reply->element[1]->str,
                                     reply->element[1]->len) == TAM_OK;
    bool same = c.rev == e->rev && c.created_ms == e->created;
    if (exists == (e->t != NULL) && (!exists || same)) {
        finish_check(rt, e, TAM_OK);
        return;
    }
    if (start_load(rt, e) != TAM_OK) {
        finish_check(rt, e, TAM_EUNAVAIL);
    }
}

static int revalidate(struct tam_gw_rtenants *rt, struct rt_entry *e)
{
    char kc[TAM_KEY_MAX];
    tam_key_tenant(kc, e->id, "cfg");
    int err = tam_redis_command(rt->gw->rc, on_rev, e, "HMGET %s rev created", kc);
    e->loading = err == TAM_OK;
    return err;
}

void tam_gw_rtenants_lookup(struct tam_gw_rtenants *rt, const char *id, tam_gw_tenant_fn cb,
                            void *arg)
{
    uint32_t h = hash_id(id);
    struct rt_entry *e = find(rt, id, h);
    if (e == NULL) {
        e = insert(rt, id, h);
        if (e == NULL) {
            cb(rt->gw, NULL, TAM_ENOMEM, arg);
            return;
        }
    }
    uint64_t now = uv_now(rt->gw->loop);
    if (e->loaded && now - e->checked_ms < TAM_GW_RTENANT_FRESH_MS) {
        cb(rt->gw, e->t != NULL ? tam_tenant_ref(e->t) : NULL, TAM_OK, arg);
        return;
    }
    /* Stale or unknown: this request waits for the check, so none is served from a
     * snapshot older than the freshness window (if Redis fails, the old snapshot serves). */
    struct rt_waiter *w = tam_malloc(sizeof(*w));
    if (w == NULL) {
        cb(rt->gw, NULL, TAM_ENOMEM, arg);
        return;
    }
    *w = (struct rt_waiter){e->waiters, cb, arg};
    e->waiters = w;
    if (e->loading) {
        return;
    }
    int err = e->loaded && e->t != NULL ? revalidate(rt, e) : start_load(rt, e);
    if (err != TAM_OK) {
        finish_check(rt, e, TAM_EUNAVAIL);
    }
}

size_t tam_gw_rtenants_count(const struct tam_gw_rtenants *rt)
{
    return rt != NULL ? rt->n : 0;
}
