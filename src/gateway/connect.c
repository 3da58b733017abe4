/*
 * ProcessConnect (TEEP-DIGEST 1.10 step 1): an empty POST opens a session. The gateway
 * draws a fresh token (and a challenge when the tenant wants attestation), signs the
 * QueryRequest with the tenant's TAM keys (COSE_Sign with one signature per key, since the
 * agent's suite is unknown), stores the session record under the token with its expiry,
 * and answers only once Redis has it: a token that was never stored must never be sent.
 *
 * Devices are anonymous at this point, so no per-device cap applies here; the worker
 * bounds outstanding Update tokens per device (tam:d:{tenant:kid}:pending).
 */
#include <stdio.h>
#include <string.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

#define COSE_MAX   (64u * 1024u)
#define RECORD_MAX 4096u

struct connect {
    struct tam_gw_work work; /* the signing step, run from the loop */
    struct tam_gw *gw;
    struct tam_http_request *req;
    struct tam_tenant *tenant; /* reference */
    struct tam_buf cose;       /* the signed QueryRequest */
};

static void connect_free(struct connect *c)
{
    tam_tenant_unref(c->tenant);
    tam_buf_finish(&c->cose);
    tam_free(c);
}

static void on_set(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct connect *c = privdata;
    struct tam_gw *gw = c->gw;
    if (status == TAM_OK && reply->type == REDIS_REPLY_STATUS) {
        gw->stats.sessions_created++;
        tam_gw_respond_teep(gw, c->req, c->cose.data, c->cose.len);
    } else {
        /* nil: a 128-bit token collided (never in practice); anything else: Redis trouble. */
        tam_log(TAM_LOG_DEBUG, "event=session_store_failed conn=%llu err=%s",
                (unsigned long long)tam_http_request_conn_id(c->req),
                status == TAM_OK ? "exists" : tam_errname(status));
        tam_gw_count(gw, TAM_TEEP_QUERY_REQUEST, TAM_GW_OUT_UNAVAILABLE);
        tam_gw_respond_status(gw, c->req, 503);
    }
    connect_free(c);
}

/* Builds the session and the signed QueryRequest; the record goes to *record. */
static int build(const struct tam_tenant *t, struct tam_sess *s, struct tam_buf *cose,
                 struct tam_buf *record)
{
    uint8_t rnd[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    int err = tam_random(rnd, sizeof(rnd));
    if (err != TAM_OK) {
        return err;
    }
    tam_sess_new_query(s, t, rnd, tam_gw_now_ms());
    tam_memzero(rnd, sizeof(rnd));
    struct tam_teep_msg qr;
    tam_sess_query_request(s, &qr);
    err = tam_sess_sign_query_request(t, &qr, cose);
    if (err == TAM_OK) {
        err = tam_sess_encode(s, record);
    }
    return err;
}

static int store(struct tam_gw *gw, struct connect *c, const struct tam_tenant *t,
                 const struct tam_sess *s, const struct tam_buf *record)
{
    char key[TAM_KEY_MAX], ttl[24];
    size_t klen = tam_key_session(key, s->token, TAM_TOKEN_LEN);
    size_t tlen =
        (size_t)snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)t->session_ttl_s * 1000ull);
    const char *argv[] = {"SET", key, (const char *)record->data, "PX", ttl, "NX"};
    const size_t lens[] = {3, klen, record->len, 2, tlen, 2};
    return tam_redis_command_argv(gw->rc, on_set, c, 6, argv, lens);
}

static void run_connect(struct tam_gw_work *w)
{
    struct connect *c = tam_container_of(w, struct connect, work);
    struct tam_gw *gw = c->gw;
    const struct tam_tenant *t = c->tenant;
    struct tam_buf record;
    tam_buf_init(&record, RECORD_MAX);
    struct tam_sess s;
    int err = build(t, &s, &c->cose, &record);
    if (err == TAM_OK) {
        err = store(gw, c, t, &s, &record);
    }
    tam_memzero(&s, sizeof(s));
    tam_buf_finish(&record);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=connect_failed conn=%llu tenant=%s err=%s",
                (unsigned long long)tam_http_request_conn_id(c->req), t->id, tam_errname(err));
        tam_gw_respond_status(gw, c->req, err == TAM_EUNAVAIL ? 503 : 500);
        connect_free(c);
        return;
    }
    tam_log(TAM_LOG_DEBUG, "event=session_new conn=%llu tenant=%s",
            (unsigned long long)tam_http_request_conn_id(c->req), t->id);
}

void tam_gw_connect(struct tam_gw *gw, struct tam_http_request *req, struct tam_tenant *t)
{
    if (!tam_redis_connected(gw->rc)) {
        tam_gw_count(gw, TAM_TEEP_QUERY_REQUEST, TAM_GW_OUT_UNAVAILABLE);
        tam_gw_respond_status(gw, req, 503); /* fail fast: the SET could not succeed */
        tam_tenant_unref(t);
        return;
    }
    struct connect *c = tam_calloc(1, sizeof(*c));
    if (c == NULL) {
        tam_gw_respond_status(gw, req, 503);
        tam_tenant_unref(t);
        return;
    }
    c->gw = gw;
    c->req = req;
    c->tenant = t;
    tam_buf_init(&c->cose, COSE_MAX);
    tam_gw_defer(gw, &c->work, run_connect);
}
