/*
 * The operator token (tstore.h): created once per deployment, atomically, so that of several
 * tamd processes starting together exactly one creates it and shows it.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/redis.h"
#include "tam/tstore.h"

/* KEYS: operator hash, token index. ARGV: hash hex, created, selector, index value. */
static const char ensure_lua[] = "if redis.call('HLEN', KEYS[1]) > 0 then return 0 end\n"
                                 "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                 "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
                                 "return 1\n";

/* Same KEYS and ARGV; ARGV[5] = "1" drops every other operator token first. */
static const char set_lua[] = "if ARGV[5] == '1' then\n"
                              "  for _, h in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
                              "    redis.call('HDEL', KEYS[2], string.sub(h, 1, 16))\n"
                              "  end\n"
                              "  redis.call('DEL', KEYS[1])\n"
                              "end\n"
                              "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                              "redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])\n"
                              "return 1\n";

struct ensure {
    tam_tstore_operator_fn cb;
    void *arg;
    char token[TAM_TSTORE_TOKEN_LEN + 1];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct op_args {
    char hash[TAM_TSTORE_HASH_HEX + 1];
    char created[24];
    char selector[TAM_TSTORE_SELECTOR_HEX + 1];
    char index[TAM_TSTORE_INDEX_MAX];
};

static void fill_args(struct op_args *a, const uint8_t hash[TAM_SHA256_LEN], uint64_t ms)
{
    tam_hex_encode(hash, TAM_SHA256_LEN, a->hash);
    (void)snprintf(a->created, sizeof(a->created), "%llu", (unsigned long long)ms);
    tam_tstore_token_selector(hash, a->selector);
    (void)tam_tstore_index_value(a->index, NULL, hash);
}

static void on_ensure(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    (void)r;
    struct ensure *e = privdata;
    int err = status;
    bool created = false;
    if (err == TAM_OK) {
        created = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    }
    e->cb(e->arg, err, err == TAM_OK && created ? e->token : NULL);
    tam_memzero(e->token, sizeof(e->token));
    tam_free(e);
}

int tam_tstore_operator_ensure(struct tam_redis *r, tam_tstore_operator_fn cb, void *arg)
{
    if (r == NULL || cb == NULL) {
        return TAM_EINVAL;
    }
    struct ensure *e = tam_calloc(1, sizeof(*e));
    if (e == NULL) {
        return TAM_ENOMEM;
    }
    e->cb = cb;
    e->arg = arg;
    uint8_t hash[TAM_SHA256_LEN];
    int err = tam_tstore_token_new(e->token, hash);
    if (err == TAM_OK) {
        struct op_args a;
        fill_args(&a, hash, now_ms());
        const char *argv[] = {"EVAL", ensure_lua, "2",        TAM_KEY_OPERATOR, TAM_KEY_TOKEN_INDEX,
                              a.hash, a.created,  a.selector, a.index};
        size_t lens[TAM_ARRAY_LEN(argv)];
        for (size_t i = 0; i < TAM_ARRAY_LEN(argv); i++) {
            lens[i] = strlen(argv[i]);
        }
        err = tam_redis_command_argv(r, on_ensure, e, (int)TAM_ARRAY_LEN(argv), argv, lens);
    }
    if (err != TAM_OK) {
        tam_memzero(e->token, sizeof(e->token));
        tam_free(e);
    }
    return err;
}

int tam_tstore_operator_set_sync(struct redisContext *c, const char *token, bool replace,
                                 uint64_t now)
{
    if (c == NULL || token == NULL || !tam_tstore_token_syntax_ok(token, strlen(token))) {
        return TAM_EINVAL;
    }
    uint8_t hash[TAM_SHA256_LEN];
    tam_tstore_token_hash(token, strlen(token), hash);
    struct op_args a;
    fill_args(&a, hash, now);
    redisReply *rep = redisCommand(c, "EVAL %s 2 %s %s %s %s %s %s %s", set_lua, TAM_KEY_OPERATOR,
                                   TAM_KEY_TOKEN_INDEX, a.hash, a.created, a.selector, a.index,
                                   replace ? "1" : "0");
    int err = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? TAM_OK : TAM_EREDIS;
    if (rep != NULL) {
        freeReplyObject(rep);
    }
    return err;
}
