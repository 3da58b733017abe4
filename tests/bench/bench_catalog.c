/* One envelope into a tenant's catalogue, with an install-everywhere policy. */
#include "bench_catalog.h"

#include <stdio.h>
#include <string.h>

#include "tam/buf.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/keys.h"
#include "tam/store.h"
#include "tam/suit.h"

static void copy_id(struct tam_teep_component_id *d, const struct tam_suit_component_id *s)
{
    memset(d, 0, sizeof(*d));
    d->n = s->n;
    for (unsigned i = 0; i < s->n; i++) {
        d->seg[i] = s->seg[i];
    }
}

static int command(redisContext *c, const char *fmt, const char *a, const void *b, size_t blen)
{
    redisReply *r = redisCommand(c, fmt, a, b, blen);
    int err = r == NULL || r->type == REDIS_REPLY_ERROR ? TAM_EREDIS : TAM_OK;
    freeReplyObject(r);
    return err;
}

/* {"rules": [{"match": {}, "install": [{"component_id": ["<hex>", ...]}]}]} */
static int policy_json(const struct tam_suit_component_id *id, struct tam_buf *out)
{
    static const char head[] = "{\"rules\": [{\"match\": {}, \"install\": [{\"component_id\": [";
    int err = tam_buf_append(out, head, strlen(head));
    for (unsigned i = 0; err == TAM_OK && i < id->n; i++) {
        err = tam_buf_append(out, i == 0 ? "\"" : ", \"", i == 0 ? 1 : 3);
        err = err == TAM_OK ? tam_hex_append(out, id->seg[i].ptr, id->seg[i].len) : err;
        err = err == TAM_OK ? tam_buf_append(out, "\"", 1) : err;
    }
    err = err == TAM_OK ? tam_buf_append(out, "]}]}]}", 7) : err; /* with the NUL */
    return err;
}

int bench_catalog_put(redisContext *c, const char *tenant, const uint8_t *env_bytes, size_t len)
{
    struct tam_suit_envelope env;
    int err = tam_suit_parse(env_bytes, len, &env, NULL);
    if (err != TAM_OK || env.ncomponents != 1 || env.digest.bytes.len != 32) {
        return err != TAM_OK ? err : TAM_EINVAL;
    }
    struct tam_store_component comp;
    memset(&comp, 0, sizeof(comp));
    copy_id(&comp.component, &env.components[0]);
    comp.has_manifest_id = env.has_manifest_component_id;
    copy_id(&comp.manifest_id, &env.manifest_component_id);
    comp.sequence = env.sequence;
    comp.has_digest = true;
    memcpy(comp.digest, env.digest.bytes.ptr, 32);
    comp.envelope = tam_bytes_of(env_bytes, len);
    struct tam_buf rec, field, policy;
    tam_buf_init(&rec, 1u << 22);
    tam_buf_init(&field, 4096);
    tam_buf_init(&policy, 8192);
    err = tam_store_component_encode(&comp, &rec);
    err = err == TAM_OK ? tam_store_component_field(&comp.component, comp.sequence, &field) : err;
    err = err == TAM_OK ? policy_json(&env.components[0], &policy) : err;
    char key[TAM_KEY_MAX];
    if (err == TAM_OK) {
        tam_key_tenant(key, tenant, "components");
        redisReply *r =
            redisCommand(c, "HSET %s %s %b", key, (const char *)field.data, rec.data, rec.len);
        err = r == NULL || r->type == REDIS_REPLY_ERROR ? TAM_EREDIS : TAM_OK;
        freeReplyObject(r);
    }
    if (err == TAM_OK) {
        tam_key_tenant(key, tenant, "policy");
        err = command(c, "SET %s %b", key, policy.data, policy.len - 1);
    }
    if (err == TAM_OK) {
        tam_key_tenant(key, tenant, "catalog_version");
        redisReply *r = redisCommand(c, "INCR %s", key);
        err = r == NULL || r->type != REDIS_REPLY_INTEGER ? TAM_EREDIS : TAM_OK;
        freeReplyObject(r);
    }
    tam_buf_finish(&rec);
    tam_buf_finish(&field);
    tam_buf_finish(&policy);
    return err;
}
