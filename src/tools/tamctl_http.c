/*
 * A blocking HTTP/1.1 client for tamctl: the project's libuv client pool (tam/httpc.h) on a
 * private loop that runs until the one outstanding request has its answer. One connection,
 * kept alive across the requests of one command.
 */
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/httpc.h"
#include "tamctl_admin.h"

#define REQUEST_MAX (32u << 20) /* a base64 binary upload may be 4/3 of the 16 MiB ceiling */
#define TIMEOUT_MS  60000u

struct tamctl_http {
    uv_loop_t loop;
    struct tam_httpc_pool *pool;
    char url[TAM_HTTPC_HOST_MAX + TAM_HTTPC_PATH_MAX + 16];
    char prefix[TAM_HTTPC_PATH_MAX]; /* the URL's path without a trailing '/' */
    char auth[TAMCTL_TOKEN_MAX + 16];
    bool has_auth;
};

struct call {
    bool done;
    int err;
    struct tamctl_reply *out;
};

void tamctl_reply_finish(struct tamctl_reply *r)
{
    if (r != NULL) {
        tam_free(r->body);
        r->body = NULL;
        r->len = 0;
    }
}

static void copy_ctype(const char *v, char *out, size_t n)
{
    size_t i = 0;
    for (; v != NULL && v[i] != '\0' && v[i] != ';' && v[i] != ' ' && i + 1 < n; i++) {
        out[i] = (char)tolower((unsigned char)v[i]);
    }
    out[i] = '\0';
}

static void on_done(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct call *c = arg;
    c->done = true;
    c->err = err;
    if (err != 0) {
        return;
    }
    struct tamctl_reply *r = c->out;
    r->status = resp->status;
    r->len = resp->body.len;
    r->body = tam_malloc(r->len + 1);
    if (r->body == NULL) {
        c->err = TAM_ENOMEM;
        return;
    }
    if (r->len > 0) {
        memcpy(r->body, resp->body.ptr, r->len);
    }
    r->body[r->len] = '\0';
    copy_ctype(tam_httpc_resp_header(resp, "Content-Type"), r->ctype, sizeof(r->ctype));
}

static bool token_ok(const char *t)
{
    for (const char *p = t; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~') {
            return false;
        }
    }
    return *t != '\0';
}

static int set_prefix(struct tamctl_http *h, const char *url)
{
    struct tam_httpc_url u;
    if (tam_httpc_url_parse(url, &u) != TAM_OK) {
        return tamctl_usage_fail("bad --admin URL %s (http://host[:port] or https://...)", url);
    }
    if (strchr(u.path, '?') != NULL) {
        return tamctl_usage_fail("--admin URL %s: no query expected", url);
    }
    size_t n = strlen(u.path);
    while (n > 0 && u.path[n - 1] == '/') {
        n--;
    }
    snprintf(h->prefix, sizeof(h->prefix), "%.*s", (int)n, u.path);
    return 0;
}

static int open_pool(struct tamctl_http *h, const char *url, const char *cacert)
{
    struct tam_httpc_opts o = {
        .url = url,
        .max_conns = 1,
        .timeout_ms = TIMEOUT_MS,
        .max_body = TAMCTL_RESPONSE_MAX,
        .max_header_bytes = 64u * 1024u,
        .max_req_body = REQUEST_MAX,
        .ca_file = cacert,
    };
    int err = tam_httpc_pool_create(&h->loop, &o, &h->pool);
    if (err == TAM_ECONFIG && cacert == NULL) {
        return tamctl_usage_fail("%s: https needs --cacert PEM (the CA of the admin listener)",
                                 url);
    }
    if (err != TAM_OK) {
        return tamctl_usage_fail("%s: %s", url, tam_strerror(err));
    }
    return 0;
}

int tamctl_http_open(const char *url, const char *cacert, const char *token,
                     struct tamctl_http **out)
{
    *out = NULL;
    struct tamctl_http *h = tam_calloc(1, sizeof(*h));
    if (h == NULL) {
        return tamctl_usage_fail("out of memory");
    }
    snprintf(h->url, sizeof(h->url), "%s", url);
    int rc = set_prefix(h, url);
    if (rc == 0 && token != NULL) {
        if (!token_ok(token)) {
            rc = tamctl_usage_fail("the token file does not hold a token");
        } else {
            snprintf(h->auth, sizeof(h->auth), "Bearer %s", token);
            h->has_auth = true;
        }
    }
    if (rc != 0 || uv_loop_init(&h->loop) != 0) {
        tam_free(h);
        return rc != 0 ? rc : tamctl_usage_fail("cannot create an event loop");
    }
    signal(SIGPIPE, SIG_IGN); /* libuv does not ignore it (httpc.h) */
    rc = open_pool(h, url, cacert);
    if (rc != 0) {
        uv_loop_close(&h->loop);
        tam_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void tamctl_http_close(struct tamctl_http *h)
{
    if (h == NULL) {
        return;
    }
    tam_httpc_pool_close(h->pool, NULL, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&h->loop);
    memset(h->auth, 0, sizeof(h->auth)); /* the token does not linger in freed memory */
    tam_free(h);
}

static const char *transport_reason(int err)
{
    switch (err) {
    case TAM_ETIMEOUT:
        return "no answer in time";
    case TAM_ETLS_VERIFY:
        return "server certificate not trusted (check --cacert and the host name)";
    case TAM_ENOTFOUND:
        return "host name does not resolve";
    case TAM_ETOOBIG:
        return "answer larger than 16 MiB";
    default:
        return tam_strerror(err);
    }
}

int tamctl_http_call(struct tamctl_http *h, const char *method, const char *path, const char *ctype,
                     const void *body, size_t len, const char *accept, struct tamctl_reply *out)
{
    memset(out, 0, sizeof(*out));
    char full[TAM_HTTPC_PATH_MAX * 2];
    snprintf(full, sizeof(full), "%s%s", h->prefix, path);
    struct tam_httpc_header hdrs[3];
    size_t n = 0;
    if (h->has_auth) {
        hdrs[n++] = (struct tam_httpc_header){"Authorization", h->auth};
    }
    if (ctype != NULL) {
        hdrs[n++] = (struct tam_httpc_header){"Content-Type", ctype};
    }
    hdrs[n++] = (struct tam_httpc_header){"Accept", accept != NULL ? accept : "application/json"};
    struct tam_httpc_req req = {
        .method = method,
        .path = full,
        .headers = hdrs,
        .n_headers = n,
        .body = {.ptr = body, .len = len},
    };
    struct call c = {.out = out};
    int err = tam_httpc_request(h->pool, &req, on_done, &c);
    if (err != TAM_OK) {
        return tamctl_usage_fail("cannot send %s %s: %s", method, path, tam_strerror(err));
    }
    while (!c.done) {
        uv_run(&h->loop, UV_RUN_ONCE);
    }
    if (c.err != 0) {
        tamctl_reply_finish(out);
        fprintf(stderr, "tamctl: cannot reach %s: %s\n", h->url, transport_reason(c.err));
        return TAMCTL_EXIT_UNREACHABLE;
    }
    return 0;
}
