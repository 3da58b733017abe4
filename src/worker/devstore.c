/*
 * The worker's writes to device state and sessions (keys.h). Writes that must happen at
 * most once per token (a REPORT's installed list and history) run as one Lua script in the
 * device's slot, guarded by an applied-marker key; everything else is idempotent and goes
 * into the job's commit pipeline.
 */
#include <stdio.h>
#include <string.h>

#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "worker.h"

/* KEYS: marker device hist pending; ARGV: ttl change expected new history member now keep. */
static const char apply_lua[] = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                "if ARGV[2] == '1' then\n"
                                "  local cur = redis.call('HGET', KEYS[2], 'installed')\n"
                                "  if not cur then cur = '' end\n"
                                "  if cur ~= ARGV[3] then return -1 end\n"
                                "  redis.call('HSET', KEYS[2], 'installed', ARGV[4])\n"
                                "end\n"
                                "redis.call('HSET', KEYS[2], 'last_seen', ARGV[7])\n"
                                "redis.call('LPUSH', KEYS[3], ARGV[5])\n"
                                "redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[8]) - 1)\n"
                                "redis.call('ZREM', KEYS[4], ARGV[6])\n"
                                "redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])\n"
                                "return 1\n";

/* KEYS: pending; ARGV: expiry member now max ttl_ms. Returns the tokens dropped over the cap. */
static const char pending_lua[] = "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])\n"
                                  "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])\n"
                                  "redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
                                  "local n = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])\n"
                                  "local out = {}\n"
                                  "if n > 0 then\n"
                                  "  local popped = redis.call('ZPOPMIN', KEYS[1], n)\n"
                                  "  for i = 1, #popped, 2 do out[#out + 1] = popped[i] end\n"
                                  "end\n"
                                  "return out\n";

void wk_device_from_reply(const redisReply *r, struct wk_device *d)
{
    memset(d, 0, sizeof(*d));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        return;
    }
    struct tam_bytes *f[5] = {&d->labels, &d->installed, &d->status, &d->type, &d->pub};
    for (size_t i = 0; i < 5; i++) {
        if (wk_reply_bytes(r->element[i], f[i])) {
            d->exists = true;
        }
    }
}

void wk_device_queue_get(struct wk_batch *b, const char *tenant, const uint8_t *kid)
{
    char key[TAM_KEY_MAX];
    tam_key_device(key, tenant, kid, NULL);
    wk_batch_addf(b, "HMGET %s labels installed status type pub", key);
}

int wk_device_fetch(struct wk_job *j)
{
    char key[TAM_KEY_MAX];
    tam_key_device(key, j->tenant->t->id, j->kid, NULL);
    redisReply *r = wk_cmd(j->w, j->w->cmd, "HMGET %s labels installed status type pub", key);
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    if (j->pre.device != NULL) {
        freeReplyObject(j->pre.device);
    }
    j->pre.device = r;
    return TAM_OK;
}

int wk_device_key(struct wk_job *j, const struct wk_device *d, struct tam_key **owned)
{
    (void)j;
    *owned = NULL;
    enum tam_key_type type;
    if (d->type.len == 4 && memcmp(d->type.ptr, "p256", 4) == 0) {
        type = TAM_KEY_P256;
    } else if (d->type.len == 7 && memcmp(d->type.ptr, "ed25519", 7) == 0) {
        type = TAM_KEY_ED25519;
    } else {
        return TAM_ENOTFOUND;
    }
    return tam_key_from_raw_public(type, d->pub.ptr, d->pub.len, owned);
}

static const char *type_name(const struct tam_key *k)
{
    return tam_key_type(k) == TAM_KEY_P256 ? "p256" : "ed25519";
}

/* HSETNX of the key's type and raw public key: what the admin API shows and reloads. */
static void queue_key_fields(struct wk_job *j, const char *key, const struct tam_key *k)
{
    uint8_t pub[64];
    size_t n = tam_key_public_raw(k, pub);
    wk_batch_addf(&j->commit, "HSETNX %s type %s", key, type_name(k));
    wk_batch_addf(&j->commit, "HSETNX %s pub %b", key, pub, n);
}

static void oemid_text(const struct tam_eat_oemid *o, char *out, size_t outsz)
{
    if (o->is_pen) {
        (void)snprintf(out, outsz, "%lld", (long long)o->pen);
    } else if (o->id.len <= 16) {
        tam_hex_encode(o->id.ptr, o->id.len, out);
    } else {
        out[0] = '\0';
    }
}

static void queue_claims(struct wk_job *j, const char *key, const struct tam_eat_claims *c,
                         const char *now)
{
    char ueid[2 * TAM_EAT_UEID_MAX + 1] = "";
    char hwmodel[2 * TAM_EAT_HWMODEL_MAX + 1] = "";
    char oemid[40] = "";
    if (c->ueid.len <= TAM_EAT_UEID_MAX) {
        tam_hex_encode(c->ueid.ptr, c->ueid.len, ueid);
    }
    if (c->hwmodel.len <= TAM_EAT_HWMODEL_MAX) {
        tam_hex_encode(c->hwmodel.ptr, c->hwmodel.len, hwmodel);
    }
    oemid_text(&c->oemid, oemid, sizeof(oemid));
    wk_batch_addf(&j->commit, "HSET %s status attested ueid %s oemid %s hwmodel %s last_seen %s",
                  key, ueid, oemid, hwmodel, now);
}

void wk_device_refresh(struct wk_job *j, const struct tam_eat_claims *claims, bool attested)
{
    char key[TAM_KEY_MAX], set[TAM_KEY_MAX], kid[2 * TAM_KID_LEN + 1];
    tam_key_device(key, j->tenant->t->id, j->kid, NULL);
    tam_key_tenant(set, j->tenant->t->id, "devices");
    tam_hex_encode(j->kid, TAM_KID_LEN, kid);
    char now[24];
    (void)snprintf(now, sizeof(now), "%llu", (unsigned long long)j->now_ms);
    struct wk_device d;
    wk_device_from_reply(j->pre.device, &d);
    if (attested && claims != NULL) {
        queue_claims(j, key, claims, now);
    } else {
        if (d.status.len == 0) {
            wk_batch_addf(&j->commit, "HSETNX %s status registered", key);
        }
        const struct tam_bytes a[] = {WK_STR("HSET"), WK_STR(key), WK_STR("last_seen"),
                                      WK_STR(now)};
        wk_batch_spans(&j->commit, 4, a);
    }
    /* A record with its key is complete (registered by the admin API, or learned and
     * committed before): the steady state costs one write per session, not five. */
    if (d.exists && d.type.len > 0 && d.pub.len > 0) {
        return;
    }
    wk_batch_addf(&j->commit, "HSETNX %s created %s", key, now);
    if (j->sender_key != NULL) {
        queue_key_fields(j, key, j->sender_key);
    }
    wk_batch_addf(&j->commit, "SADD %s %s", set, kid);
}

void wk_device_attestation_failed(struct wk_job *j)
{
    char key[TAM_KEY_MAX], now[24];
    tam_key_device(key, j->tenant->t->id, j->kid, NULL);
    (void)snprintf(now, sizeof(now), "%llu", (unsigned long long)j->now_ms);
    /* A status, not a lock-out: the next QueryResponse with good Evidence attests again. */
    wk_batch_addf(&j->commit, "HSET %s status attestation_failed last_seen %s", key, now);
}

void wk_device_history(struct wk_job *j, const struct tam_store_history *h)
{
    char key[TAM_KEY_MAX];
    tam_key_device(key, j->tenant->t->id, j->kid, "hist");
    struct tam_buf e;
    tam_buf_init(&e, 4096);
    if (tam_store_history_encode(h, &e) == TAM_OK) {
        wk_batch_addf(&j->commit, "LPUSH %s %b", key, e.data, e.len);
        wk_batch_addf(&j->commit, "LTRIM %s 0 %d", key, WK_HISTORY_KEEP - 1);
    }
    tam_buf_finish(&e);
}

int wk_device_apply_queue(struct wk_job *j, const struct tam_bytes *old,
                          const struct tam_buf *updated, bool change,
                          const struct tam_store_history *h, struct wk_batch *b)
{
    const char *tenant = j->tenant->t->id;
    char marker[TAM_KEY_MAX], dev[TAM_KEY_MAX], hist[TAM_KEY_MAX], pending[TAM_KEY_MAX];
    char tok[2 * TAM_TOKEN_LEN + 1], suffix[16 + 2 * TAM_TOKEN_LEN];
    tam_hex_encode(j->sess.token, TAM_TOKEN_LEN, tok);
    (void)snprintf(suffix, sizeof(suffix), "applied:%s", tok);
    tam_key_device(marker, tenant, j->kid, suffix);
    tam_key_device(dev, tenant, j->kid, NULL);
    tam_key_device(hist, tenant, j->kid, "hist");
    tam_key_device(pending, tenant, j->kid, "pending");
    struct tam_buf e;
    tam_buf_init(&e, 4096);
    int err = tam_store_history_encode(h, &e);
    if (err != TAM_OK) {
        tam_buf_finish(&e);
        return err;
    }
    char ttl[24], now[24], keep[16];
    (void)snprintf(ttl, sizeof(ttl), "%d", WK_DONE_TTL_S);
    (void)snprintf(now, sizeof(now), "%llu", (unsigned long long)j->now_ms);
    (void)snprintf(keep, sizeof(keep), "%d", WK_HISTORY_KEEP);
    struct tam_bytes none = tam_bytes_of("", 0);
    struct tam_bytes args[] = {WK_STR("EVAL"), WK_STR(apply_lua), WK_STR("4"), WK_STR(marker),
                               WK_STR(dev), WK_STR(hist), WK_STR(pending), WK_STR(ttl),
                               WK_STR(change ? "1" : "0"),
                               /* binary (CBOR, JSON) */
                               old->len > 0 ? *old : none,
                               updated != NULL ? tam_bytes_of(updated->data, updated->len) : none,
                               tam_bytes_of(e.data, e.len), WK_STR(tok), WK_STR(now), WK_STR(keep)};
    wk_batch_spans(b, TAM_ARRAY_LEN(args), args); /* copies the arguments */
    tam_buf_finish(&e);
    return b->overflow ? TAM_ENOMEM : TAM_OK;
}

int wk_device_applied(const redisReply *r)
{
    if (r == NULL) {
        return TAM_EUNAVAIL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        tam_log(TAM_LOG_ERROR, "event=redis_script_error script=apply msg=\"%.120s\"", r->str);
    }
    return r->type == REDIS_REPLY_INTEGER ? (int)r->integer : TAM_EREDIS;
}

void wk_session_store(struct wk_job *j, const struct tam_sess *s, const struct tam_buf *sent,
                      uint64_t ttl_ms)
{
    char skey[TAM_KEY_MAX], pkey[TAM_KEY_MAX + 8], pending[TAM_KEY_MAX];
    char tok[2 * TAM_TOKEN_LEN + 1];
    tam_key_session(skey, s->token, TAM_TOKEN_LEN);
    (void)snprintf(pkey, sizeof(pkey), "%s:plan", skey);
    tam_hex_encode(s->token, TAM_TOKEN_LEN, tok);
    struct tam_buf enc;
    tam_buf_init(&enc, 4096);
    if (tam_sess_encode(s, &enc) != TAM_OK) {
        j->commit.overflow = true; /* fails the commit: the job is retried */
    }
    char ttl[24];
    (void)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)ttl_ms);
    const struct tam_bytes set_sess[] = {
        WK_STR("SET"), WK_STR(skey), tam_bytes_of(enc.data, enc.len), WK_STR("PX"), WK_STR(ttl)};
    wk_batch_spans(&j->commit, 5, set_sess);
    const struct tam_bytes del_sess[] = {WK_STR("DEL"), WK_STR(skey)};
    wk_batch_spans(&j->undo, 2, del_sess);
    tam_buf_finish(&enc);
    if (sent == NULL) {
        return;
    }
    const struct tam_bytes set_plan[] = {WK_STR("SET"), WK_STR(pkey),
                                         tam_bytes_of(sent->data, sent->len), WK_STR("PX"),
                                         WK_STR(ttl)};
    wk_batch_spans(&j->commit, 5, set_plan);
    const struct tam_bytes del_plan[] = {WK_STR("DEL"), WK_STR(pkey)};
    wk_batch_spans(&j->undo, 2, del_plan);
    tam_key_device(pending, j->tenant->t->id, j->kid, "pending");
    char expiry[24], now[24], max[16];
    (void)snprintf(expiry, sizeof(expiry), "%llu", (unsigned long long)s->expires_ms);
    (void)snprintf(now, sizeof(now), "%llu", (unsigned long long)j->now_ms);
    (void)snprintf(max, sizeof(max), "%u", j->tenant->t->max_pending_per_device);
    j->pending_idx = (int)j->commit.n;
    const struct tam_bytes eval[] = {WK_STR("EVAL"),  WK_STR(pending_lua), WK_STR("1"),
                                     WK_STR(pending), WK_STR(expiry),      WK_STR(tok),
                                     WK_STR(now),     WK_STR(max),         WK_STR(ttl)};
    wk_batch_spans(&j->commit, 9, eval);
    const struct tam_bytes zrem[] = {WK_STR("ZREM"), WK_STR(pending), WK_STR(tok)};
    wk_batch_spans(&j->undo, 3, zrem);
}

/* Sessions of tokens dropped over the per-device cap: their Updates are no longer answered. */
int wk_pending_dropped(struct wk_job *j, const redisReply *r)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        return TAM_OK;
    }
    for (size_t i = 0; i < r->elements; i++) {
        struct tam_buf tok;
        tam_buf_init(&tok, 64);
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len != 2 * TAM_TOKEN_LEN ||
            tam_hex_decode(e->str, e->len, &tok) != TAM_OK) {
            tam_buf_finish(&tok);
            continue;
        }
        char skey[TAM_KEY_MAX];
        tam_key_session(skey, tok.data, tok.len);
        redisReply *d = wk_cmd(j->w, j->w->cmd, "DEL %s %s:plan", skey, skey);
        tam_buf_finish(&tok);
        if (d == NULL) {
            return TAM_EUNAVAIL;
        }
        freeReplyObject(d);
        tam_log(TAM_LOG_INFO, "event=pending_dropped tenant=%s reason=max_pending_per_device",
                j->job.tenant);
    }
    return TAM_OK;
}
