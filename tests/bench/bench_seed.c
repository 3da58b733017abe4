/*
 * Seeds a config-file tenant for the end-to-end benchmark (tests/bench/bench_e2e.sh), and
 * checks afterwards that every device that ran installed the TC exactly once.
 *
 *   bench_seed seed REDIS TENANT ALG SEED DEVICES SIGNER_PUB_OUT
 *     Generates a TC-signer key of ALG (esp256 | ed25519), writes its public PEM to
 *     SIGNER_PUB_OUT (the tenant's tc-signer-key and the agents' --tc-signer-key), builds
 *     one signed SUIT envelope with an integrated 1 KiB payload (tam_suit_build), puts it
 *     in the tenant's catalogue with a policy installing it on every device
 *     (bench_catalog_put), and registers DEVICES device keys derived from SEED exactly as
 *     `tam-agent load --seed SEED --alg ALG` derives them (tam_agent_key_from_seed), the
 *     way the admin API registers devices (device hash + tenant devices set). Registered
 *     devices in Redis rather than config-file device-key lines: a config file holds at
 *     most 64, and every simulated device must be new to install the TC once.
 *   bench_seed devices REDIS TENANT ALG SEED DEVICES
 *     Registers DEVICES more device keys only (another SEED: a second fleet of new devices).
 *   bench_seed check REDIS TENANT
 *     Prints "devices=N installed_once=M installed_other=K": M devices whose record lists
 *     exactly the seeded TC (sequence 1) once, K devices with another installed list.
 *
 * Exit status 0 on success, 1 on failure, 2 on bad usage.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_catalog.h"
#include "tam/agent.h"
#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/keys.h"
#include "tam/redis.h"
#include "tam/store.h"
#include "tam/suit.h"

#define SEQUENCE 1u
#define PAYLOAD  1024u
#define PIPELINE 512u

static int fail(const char *what, int err)
{
    fprintf(stderr, "bench_seed: %s: %s\n", what, tam_strerror(err));
    return 1;
}

static int write_pem(const struct tam_key *k, const char *path)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 8192);
    int err = tam_key_public_pem(k, &pem);
    FILE *f = err == TAM_OK ? fopen(path, "w") : NULL;
    if (f == NULL || fwrite(pem.data, 1, pem.len, f) != pem.len) {
        err = err == TAM_OK ? TAM_EINVAL : err;
    }
    if (f != NULL && fclose(f) != 0) {
        err = TAM_EINVAL;
    }
    tam_buf_finish(&pem);
    return err;
}

/* The TEEP examples' TC id, an integrated payload, signed by signer. */
static int build_envelope(const struct tam_key *signer, struct tam_buf *out)
{
    static const uint8_t uuid[16] = {0x8d, 0x82, 0x57, 0x3a, 0x92, 0x6d, 0x47, 0x54,
                                     0x93, 0x53, 0x32, 0xdc, 0x29, 0x99, 0x7f, 0x74};
    static uint8_t payload[PAYLOAD];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7u + 1u);
    }
    const struct tam_bytes comp[4] = {tam_bytes_of("TEEP-Device", 11), tam_bytes_of("SecureFS", 8),
                                      tam_bytes_of(uuid, 16), tam_bytes_of("ta", 2)};
    struct tam_suit_build_params p = {
        .kind = TAM_SUIT_BUILD_INTEGRATED,
        .component_id = comp,
        .ncomponent_id = 4,
        .sequence = SEQUENCE,
        .payload = tam_bytes_of(payload, sizeof(payload)),
    };
    return tam_suit_build(&p, signer, tam_key_default_alg(signer), out);
}

static int drain(redisContext *c, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            return TAM_EREDIS;
        }
        bool bad = ((redisReply *)r)->type == REDIS_REPLY_ERROR;
        freeReplyObject(r);
        if (bad) {
            return TAM_EREDIS;
        }
    }
    return TAM_OK;
}

/* What POST /v1/tenants/{t}/devices stores: the devices set and the device hash. */
static int register_devices(redisContext *c, const char *tenant, enum tam_key_type type,
                            const char *seed, unsigned n)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    char set[TAM_KEY_MAX];
    tam_key_tenant(set, tenant, "devices");
    const char *tname = type == TAM_KEY_P256 ? "p256" : "ed25519";
    unsigned pending = 0;
    for (unsigned i = 0; i < n; i++) {
        struct tam_key *k = NULL;
        int err = tam_agent_key_from_seed(type, (const uint8_t *)seed, strlen(seed), i, &k);
        if (err != TAM_OK) {
            return err;
        }
        uint8_t pub[64];
        size_t plen = tam_key_public_raw(k, pub);
        char kid[2 * TAM_KID_LEN + 1], key[TAM_KEY_MAX];
        tam_hex_encode(tam_key_kid(k), TAM_KID_LEN, kid);
        tam_key_device(key, tenant, tam_key_kid(k), NULL);
        tam_key_destroy(k);
        redisAppendCommand(c, "SADD %s %s", set, kid);
        redisAppendCommand(c, "HSET %s type %s pub %b labels %s created %s status registered", key,
                           tname, pub, plen, "", now);
        pending += 2;
        if (pending >= PIPELINE || i + 1 == n) {
            if (drain(c, pending) != TAM_OK) {
                return TAM_EREDIS;
            }
            pending = 0;
        }
    }
    return TAM_OK;
}

static int seed_catalogue(redisContext *c, const char *tenant, enum tam_key_type type,
                          const char *out_pem)
{
    struct tam_key *signer = NULL;
    int err = tam_key_generate(type, &signer);
    if (err != TAM_OK) {
        fail("signer key", err);
        return err;
    }
    struct tam_buf env;
    tam_buf_init(&env, 1u << 20);
    err = write_pem(signer, out_pem);
    err = err == TAM_OK ? build_envelope(signer, &env) : err;
    err = err == TAM_OK ? bench_catalog_put(c, tenant, env.data, env.len) : err;
    tam_key_destroy(signer);
    size_t env_len = env.len;
    tam_buf_finish(&env);
    if (err != TAM_OK) {
        fail("catalogue", err);
        return err;
    }
    printf("catalogue tenant=%s envelope_bytes=%zu\n", tenant, env_len);
    return TAM_OK;
}

/* seed (out_pem != NULL): catalogue and devices; devices (out_pem == NULL): devices only. */
static int seed_main(redisContext *c, char **argv, const char *out_pem)
{
    const char *tenant = argv[3], *alg = argv[4], *seed = argv[5];
    char *end = NULL;
    unsigned long devices = strtoul(argv[6], &end, 10);
    enum tam_key_type type = strcmp(alg, "ed25519") == 0 ? TAM_KEY_ED25519 : TAM_KEY_P256;
    if (*end != '\0' || devices == 0 || devices > 1000000 ||
        (type == TAM_KEY_P256 && strcmp(alg, "esp256") != 0)) {
        fprintf(stderr, "bench_seed: bad ALG or DEVICES\n");
        return 2;
    }
    int err = out_pem != NULL ? seed_catalogue(c, tenant, type, out_pem) : TAM_OK;
    if (err != TAM_OK) {
        return 1;
    }
    err = register_devices(c, tenant, type, seed, (unsigned)devices);
    if (err != TAM_OK) {
        return fail("devices", err);
    }
    printf("seeded tenant=%s devices=%lu\n", tenant, devices);
    return 0;
}

/* 1 when the installed list is exactly the seeded TC, once; 0 otherwise. */
static int installed_once(const redisReply *h)
{
    if (h->type != REDIS_REPLY_STRING) {
        return 0;
    }
    struct tam_arena arena;
    tam_arena_init(&arena, 4096, 1u << 20);
    struct tam_plan_installed *inst = NULL;
    uint32_t n = 0;
    int err = tam_store_installed_decode((const uint8_t *)h->str, h->len, &arena, &inst, &n, NULL);
    int ok = err == TAM_OK && n == 1 && inst[0].sequence == SEQUENCE;
    tam_arena_finish(&arena);
    return ok;
}

static int check_main(redisContext *c, const char *tenant)
{
    char set[TAM_KEY_MAX];
    tam_key_tenant(set, tenant, "devices");
    redisReply *r = redisCommand(c, "SMEMBERS %s", set);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return fail("SMEMBERS", TAM_EREDIS);
    }
    unsigned long once = 0, other = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisAppendCommand(c, "HGET tam:d:{%s:%s} installed", tenant, r->element[i]->str);
    }
    for (size_t i = 0; i < r->elements; i++) {
        void *p = NULL;
        if (redisGetReply(c, &p) != REDIS_OK) {
            freeReplyObject(r);
            return fail("HGET", TAM_EREDIS);
        }
        const redisReply *h = p;
        if (installed_once(h)) {
            once++;
        } else if (h->type != REDIS_REPLY_NIL) {
            other++;
        }
        freeReplyObject(p);
    }
    printf("devices=%zu installed_once=%lu installed_other=%lu\n", r->elements, once, other);
    freeReplyObject(r);
    return 0;
}

int main(int argc, char **argv)
{
    bool seed = argc == 8 && strcmp(argv[1], "seed") == 0;
    bool devices = argc == 7 && strcmp(argv[1], "devices") == 0;
    bool check = argc == 4 && strcmp(argv[1], "check") == 0;
    if (!seed && !devices && !check) {
        fprintf(stderr, "usage: bench_seed seed REDIS TENANT ALG SEED DEVICES SIGNER_PUB_OUT\n"
                        "       bench_seed devices REDIS TENANT ALG SEED DEVICES\n"
                        "       bench_seed check REDIS TENANT\n");
        return 2;
    }
    redisContext *c = NULL;
    int err = tam_redis_sync_connect(argv[2], 5000, &c);
    if (err != TAM_OK) {
        return fail(argv[2], err);
    }
    struct timeval tv = {30, 0};
    redisSetTimeout(c, tv);
    int rc = check ? check_main(c, argv[3]) : seed_main(c, argv, seed ? argv[7] : NULL);
    redisFree(c);
    return rc;
}
