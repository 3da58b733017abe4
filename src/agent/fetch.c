/*
 * HTTP GET of the payload URIs that manifests name (TEEP App. E scenario 1). One
 * small keep-alive pool per origin, created on first use; a bounded number of
 * origins. TLS uses the same --ca file as the TAM connection.
 */
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

#define MAX_ORIGINS 8
#define ORIGIN_MAX  (TAM_HTTPC_HOST_MAX + 32)

struct ag_origin {
    char key[ORIGIN_MAX]; /* scheme://host:port */
    struct tam_httpc_pool *pool;
};

struct ag_fetcher {
    uv_loop_t *loop;
    const struct ag_opts *o;
    size_t n;
    struct ag_origin origins[MAX_ORIGINS];
};

struct fetch_req {
    ag_fetch_done_fn cb;
    void *arg;
};

int ag_fetcher_create(uv_loop_t *loop, const struct ag_opts *o, struct ag_fetcher **out)
{
    struct ag_fetcher *ft = tam_calloc(1, sizeof(*ft));
    if (ft == NULL) {
        return TAM_ENOMEM;
    }
    ft->loop = loop;
    ft->o = o;
    *out = ft;
    return TAM_OK;
}

static void on_closed(void *arg)
{
    (void)arg;
}

void ag_fetcher_close(struct ag_fetcher *ft)
{
    if (ft == NULL) {
        return;
    }
    for (size_t i = 0; i < ft->n; i++) {
        tam_httpc_pool_close(ft->origins[i].pool, on_closed, NULL);
    }
    tam_free(ft);
}

static int origin_pool(struct ag_fetcher *ft, const char *uri, const struct tam_httpc_url *u,
                       struct tam_httpc_pool **out)
{
    char key[ORIGIN_MAX];
    snprintf(key, sizeof(key), "%s://%s:%u", u->tls ? "https" : "http", u->host, u->port);
    for (size_t i = 0; i < ft->n; i++) {
        if (strcmp(ft->origins[i].key, key) == 0) {
            *out = ft->origins[i].pool;
            return TAM_OK;
        }
    }
    if (ft->n == MAX_ORIGINS) {
        return TAM_ETOOBIG;
    }
    struct tam_httpc_opts ho = {
        .url = uri,
        .max_conns = 4,
        .timeout_ms = ft->o->timeout_ms,
        .max_body = TAM_AGENT_MAX_PAYLOAD,
        .ca_file = ft->o->ca_file,
    };
    struct ag_origin *org = &ft->origins[ft->n];
    int err = tam_httpc_pool_create(ft->loop, &ho, &org->pool);
    if (err != TAM_OK) {
        return err;
    }
    memcpy(org->key, key, sizeof(key));
    ft->n++;
    *out = org->pool;
    return TAM_OK;
}

static void on_got(void *arg, int err, const struct tam_httpc_resp *r)
{
    struct fetch_req *req = arg;
    if (err == TAM_OK && r->status != 200) {
        tam_log(TAM_LOG_INFO, "event=fetch_status status=%d", r->status);
        err = TAM_ENOTFOUND;
    }
    if (err == TAM_OK) {
        req->cb(req->arg, TAM_OK, r->body.ptr, r->body.len);
    } else {
        req->cb(req->arg, err, NULL, 0);
    }
    tam_free(req);
}

int ag_fetch(struct ag_fetcher *ft, const char *uri, ag_fetch_done_fn cb, void *arg)
{
    struct tam_httpc_url u;
    struct tam_httpc_pool *pool = NULL;
    int err = tam_httpc_url_parse(uri, &u);
    err = err == TAM_OK ? origin_pool(ft, uri, &u, &pool) : err;
    if (err != TAM_OK) {
        return err;
    }
    struct fetch_req *req = tam_calloc(1, sizeof(*req));
    if (req == NULL) {
        return TAM_ENOMEM;
    }
    req->cb = cb;
    req->arg = arg;
    struct tam_httpc_req hr = {.method = "GET", .path = u.path};
    err = tam_httpc_request(pool, &hr, on_got, req);
    if (err != TAM_OK) {
        tam_free(req);
    }
    return err;
}
