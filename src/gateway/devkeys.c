/*
 * Device public keys by RFC 9679 kid. The device hash in Redis (include/tam/keys.h) is the
 * truth; a small bounded LRU per process saves the HMGET for devices seen recently. A kid
 * is the thumbprint of its key, so a cached key cannot go stale; entries still expire
 * after TAM_GW_KEYCACHE_TTL_MS so a deleted device is refused soon after. (A failed
 * attestation does not lock a device out: its next good Evidence attests it again.)
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"

/* ---- Redis lookup ---- */

struct lookup {
    struct tam_gw *gw;
    tam_gw_key_fn cb;
    void *arg;
    char tenant[TAM_TENANT_ID_MAX + 1];
    uint8_t kid[TAM_KID_LEN];
};

/* The reply of HMGET type pub as a key, or NULL (unknown or malformed). */
static struct tam_key *key_from_reply(const redisReply *r, const uint8_t kid[TAM_KID_LEN])
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        return NULL;
    }
    const redisReply *type = r->element[0], *pub = r->element[1];
    if (type->type != REDIS_REPLY_STRING || pub->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    enum tam_key_type kt;
    if (strcmp(type->str, "p256") == 0) {
        kt = TAM_KEY_P256;
    } else if (strcmp(type->str, "ed25519") == 0) {
        kt = TAM_KEY_ED25519;
    } else {
        return NULL;
    }
    struct tam_key *key = NULL;
    if (tam_key_from_raw_public(kt, (const uint8_t *)pub->str, pub->len, &key) != TAM_OK) {
        return NULL;
    }
    if (!tam_ct_equal(tam_key_kid(key), kid, TAM_KID_LEN)) {
        tam_key_destroy(key); /* a record under the wrong kid: never trust it */
        return NULL;
    }
    return key;
}

static void on_hmget(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct lookup *l = privdata;
    struct tam_gw *gw = l->gw;
    struct tam_gw_devkey *e = NULL;
    int err = TAM_EUNAVAIL;
    if (status == TAM_OK) {
        struct tam_key *key = key_from_reply(reply, l->kid);
        e = key != NULL ? tam_gw_keycache_put(&gw->keys, l->tenant, key, tam_gw_now_ms()) : NULL;
        err = e != NULL ? TAM_OK : (key != NULL ? TAM_ENOMEM : TAM_ENOTFOUND);
    }
    tam_gw_key_fn cb = l->cb;
    void *arg = l->arg;
    tam_free(l);
    cb(gw, e, err, arg);
}

void tam_gw_devkey_lookup(struct tam_gw *gw, const char *tenant, const uint8_t kid[TAM_KID_LEN],
                          tam_gw_key_fn cb, void *arg)
{
    struct tam_gw_devkey *e = tam_gw_keycache_get(&gw->keys, tenant, kid, tam_gw_now_ms());
    if (e != NULL) {
        cb(gw, e, TAM_OK, arg);
        return;
    }
    struct lookup *l = tam_calloc(1, sizeof(*l));
    if (l == NULL) {
        cb(gw, NULL, TAM_ENOMEM, arg);
        return;
    }
    l->gw = gw;
    l->cb = cb;
    l->arg = arg;
    (void)snprintf(l->tenant, sizeof(l->tenant), "%s", tenant);
    memcpy(l->kid, kid, TAM_KID_LEN);
    char key[TAM_KEY_MAX];
    tam_key_device(key, tenant, kid, NULL);
    int err = tam_redis_command(gw->rc, on_hmget, l, "HMGET %s type pub", key);
    if (err != TAM_OK) {
        tam_free(l);
        cb(gw, NULL, err == TAM_ENOMEM ? TAM_ENOMEM : TAM_EUNAVAIL, arg);
    }
}

/* ---- startup registration ---- */

static void on_register(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct tam_gw *gw = tam_redis_data(r);
    if (status != TAM_OK) {
        tam_log(TAM_LOG_WARN, "event=device_register_failed err=%s", tam_errname(status));
        return;
    }
    gw->stats.devices_registered++;
}

static int register_one(struct tam_gw *gw, const struct tam_gw_devreg *d, const char *created)
{
    char key[TAM_KEY_MAX], set[TAM_KEY_MAX], hex[2 * TAM_KID_LEN + 1];
    tam_key_device(key, d->tenant, d->kid, NULL);
    tam_key_tenant(set, d->tenant, "devices");
    tam_hex_encode(d->kid, TAM_KID_LEN, hex);
    const char *type = d->type == TAM_KEY_P256 ? "p256" : "ed25519";
    /* HSETNX per field: an admin or a worker may have written newer data (status, labels). */
    int err = tam_redis_command(gw->rc, on_register, NULL, "HSETNX %s type %s", key, type);
    if (err == TAM_OK) {
        err = tam_redis_command(gw->rc, on_register, NULL, "HSETNX %s pub %b", key, d->pub,
                                d->pub_len);
    }
    if (err == TAM_OK) {
        err = tam_redis_command(gw->rc, on_register, NULL, "HSETNX %s status registered", key);
    }
    if (err == TAM_OK) {
        err = tam_redis_command(gw->rc, on_register, NULL, "HSETNX %s created %s", key, created);
    }
    if (err == TAM_OK) {
        err = tam_redis_command(gw->rc, on_register, NULL, "SADD %s %s", set, hex);
    }
    return err;
}

void tam_gw_devkeys_register(struct tam_gw *gw)
{
    size_t n = 0;
    const struct tam_gw_devreg *d = tam_gw_tenants_devices(gw->tenants, &n);
    char created[24];
    (void)snprintf(created, sizeof(created), "%llu", (unsigned long long)tam_gw_now_ms());
    for (size_t i = 0; i < n; i++) {
        int err = register_one(gw, &d[i], created);
        if (err != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=device_register_failed tenant=%s err=%s", d[i].tenant,
                    tam_errname(err));
            return;
        }
    }
    if (n > 0) {
        tam_log(TAM_LOG_INFO, "event=devices_registered count=%zu", n);
    }
}
