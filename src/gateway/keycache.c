/*
 * A bounded LRU of device public keys by (tenant, kid), with an expiry per entry. Pure:
 * no I/O, the time is passed in. Entries are reference counted so an eviction never frees
 * a key a request is still verifying with.
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"

static uint32_t hash_of(const char *tenant, const uint8_t kid[TAM_KID_LEN])
{
    /* The kid is a SHA-256 output, so its first bytes are already uniform; mix the tenant. */
    uint32_t h =
        (uint32_t)kid[0] | (uint32_t)kid[1] << 8 | (uint32_t)kid[2] << 16 | (uint32_t)kid[3] << 24;
    for (const char *p = tenant; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 16777619u;
    }
    return h;
}

int tam_gw_keycache_init(struct tam_gw_keycache *kc, size_t max, uint64_t ttl_ms)
{
    memset(kc, 0, sizeof(*kc));
    size_t nb = 64;
    while (nb < max) {
        nb *= 2;
    }
    kc->buckets = tam_calloc(nb, sizeof(*kc->buckets));
    if (kc->buckets == NULL) {
        return TAM_ENOMEM;
    }
    kc->nbuckets = nb;
    kc->max = max;
    kc->ttl_ms = ttl_ms;
    return TAM_OK;
}

static void entry_free(struct tam_gw_devkey *e)
{
    tam_key_destroy(e->key);
    tam_free(e);
}

void tam_gw_devkey_unref(struct tam_gw_devkey *e)
{
    if (e != NULL && --e->refs == 0) {
        entry_free(e);
    }
}

static void lru_unlink(struct tam_gw_keycache *kc, struct tam_gw_devkey *e)
{
    if (e->lru_prev != NULL) {
        e->lru_prev->lru_next = e->lru_next;
    } else {
        kc->lru_head = e->lru_next;
    }
    if (e->lru_next != NULL) {
        e->lru_next->lru_prev = e->lru_prev;
    } else {
        kc->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(struct tam_gw_keycache *kc, struct tam_gw_devkey *e)
{
    e->lru_prev = NULL;
    e->lru_next = kc->lru_head;
    if (kc->lru_head != NULL) {
        kc->lru_head->lru_prev = e;
    }
    kc->lru_head = e;
    if (kc->lru_tail == NULL) {
        kc->lru_tail = e;
    }
}

/* Drops e from the cache (bucket and LRU) and releases the cache's reference. */
static void evict(struct tam_gw_keycache *kc, struct tam_gw_devkey *e)
{
    struct tam_gw_devkey **pp = &kc->buckets[e->hash & (kc->nbuckets - 1)];
    while (*pp != NULL && *pp != e) {
        pp = &(*pp)->chain;
    }
    if (*pp == e) {
        *pp = e->chain;
    }
    lru_unlink(kc, e);
    e->cached = false;
    kc->n--;
    tam_gw_devkey_unref(e);
}

void tam_gw_keycache_finish(struct tam_gw_keycache *kc)
{
    if (kc == NULL || kc->buckets == NULL) {
        return;
    }
    while (kc->lru_head != NULL) {
        evict(kc, kc->lru_head);
    }
    tam_free(kc->buckets);
    memset(kc, 0, sizeof(*kc));
}

static struct tam_gw_devkey *find(const struct tam_gw_keycache *kc, const char *tenant,
                                  const uint8_t kid[TAM_KID_LEN], uint32_t h)
{
    for (struct tam_gw_devkey *e = kc->buckets[h & (kc->nbuckets - 1)]; e != NULL; e = e->chain) {
        if (e->hash == h && memcmp(e->kid, kid, TAM_KID_LEN) == 0 &&
            strcmp(e->tenant, tenant) == 0) {
            return e;
        }
    }
    return NULL;
}

struct tam_gw_devkey *tam_gw_keycache_get(struct tam_gw_keycache *kc, const char *tenant,
                                          const uint8_t kid[TAM_KID_LEN], uint64_t now_ms)
{
    struct tam_gw_devkey *e = find(kc, tenant, kid, hash_of(tenant, kid));
    if (e != NULL && now_ms >= e->expires_ms) {
        evict(kc, e);
        e = NULL;
    }
    if (e == NULL) {
        kc->misses++;
        return NULL;
    }
    lru_unlink(kc, e);
    lru_push_front(kc, e);
    kc->hits++;
    e->refs++;
    return e;
}

struct tam_gw_devkey *tam_gw_keycache_put(struct tam_gw_keycache *kc, const char *tenant,
                                          struct tam_key *key, uint64_t now_ms)
{
    struct tam_gw_devkey *e = tam_calloc(1, sizeof(*e));
    if (e == NULL) {
        tam_key_destroy(key);
        return NULL;
    }
    e->key = key;
    (void)snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
    memcpy(e->kid, tam_key_kid(key), TAM_KID_LEN);
    e->expires_ms = now_ms + kc->ttl_ms;
    e->hash = hash_of(e->tenant, e->kid);
    struct tam_gw_devkey *old = find(kc, e->tenant, e->kid, e->hash);
    if (old != NULL) {
        evict(kc, old); /* a concurrent lookup got there first: keep the newest */
    }
    while (kc->n >= kc->max && kc->lru_tail != NULL) {
        kc->evictions++;
        evict(kc, kc->lru_tail);
    }
    size_t b = e->hash & (kc->nbuckets - 1);
    e->chain = kc->buckets[b];
    kc->buckets[b] = e;
    lru_push_front(kc, e);
    e->cached = true;
    e->refs = 2; /* the cache's and the caller's */
    kc->n++;
    return e;
}

bool tam_gw_rate_allow(double *tokens, uint64_t *last_ms, uint32_t rps, uint64_t now_ms)
{
    if (rps == 0) {
        return true;
    }
    double cap = (double)rps * TAM_GW_RATE_BURST;
    if (*last_ms == 0) {
        *tokens = cap;
    } else if (now_ms > *last_ms) {
        *tokens += (double)(now_ms - *last_ms) * rps / 1000.0;
        *tokens = *tokens < cap ? *tokens : cap;
    }
    *last_ms = now_ms > *last_ms ? now_ms : *last_ms;
    if (*tokens < 1.0) {
        return false;
    }
    *tokens -= 1.0;
    return true;
}
