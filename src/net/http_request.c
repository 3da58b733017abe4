/*
 * Request objects: accessors, references and the abort path. A request is created by the
 * parser and owned by its connection until dispatch; from then on the handler owns it
 * (one reference, consumed by tam_http_respond) and the connection only points at it.
 * If the connection goes first it detaches (req->conn = NULL) and calls on_abort, so a
 * late tam_http_respond finds no connection and only releases the memory.
 */
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"

int tam_net__ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a;
        unsigned char y = (unsigned char)*b;
        x = (x >= 'A' && x <= 'Z') ? (unsigned char)(x + 32) : x;
        y = (y >= 'A' && y <= 'Z') ? (unsigned char)(y + 32) : y;
        if (x != y || x == '\0') {
            return (int)x - (int)y;
        }
    }
}

int tam_net__request_new(struct tam_net_conn *c, struct tam_http_request **out)
{
    struct tam_http_request *req = tam_calloc(1, sizeof(*req));
    if (req == NULL) {
        return TAM_ENOMEM;
    }
    tam_buf_init(&req->text, c->srv->limits.header_bytes);
    tam_buf_init(&req->body, c->srv->limits.body_bytes);
    req->conn_id = c->id;
    req->tls = c->tls != NULL;
    req->peer_addr = c->peer_addr;
    req->has_peer_addr = c->has_peer_addr;
    memcpy(req->peer, c->peer, sizeof(req->peer));
    *out = req;
    return TAM_OK;
}

void tam_net__request_free(struct tam_http_request *req)
{
    if (req == NULL) {
        return;
    }
    tam_buf_finish(&req->text);
    tam_buf_finish(&req->body);
    tam_free(req->hdrs);
    tam_free(req);
}

void tam_net__request_abort(struct tam_net_conn *c)
{
    struct tam_http_request *req = c->req;
    c->req = NULL;
    if (req == NULL) {
        return;
    }
    req->conn = NULL;
    req->aborted = true;
    c->srv->stats.aborted++;
    tam_http_abort_fn fn = req->on_abort;
    req->on_abort = NULL;
    if (fn != NULL) {
        fn(req, req->abort_arg); /* may call tam_http_respond, which may free req */
    }
}

const char *tam_http_request_method(const struct tam_http_request *req)
{
    return llhttp_method_name((llhttp_method_t)req->method);
}

const char *tam_http_request_target(const struct tam_http_request *req)
{
    return req->text.data != NULL ? (const char *)req->text.data : "";
}

const char *tam_http_request_header(const struct tam_http_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->nhdrs; i++) {
        const char *n = (const char *)req->text.data + req->hdrs[i].name;
        if (tam_net__ascii_casecmp(n, name) == 0) {
            return (const char *)req->text.data + req->hdrs[i].value;
        }
    }
    return NULL;
}

size_t tam_http_request_header_count(const struct tam_http_request *req)
{
    return req->nhdrs;
}

int tam_http_request_header_at(const struct tam_http_request *req, size_t i, const char **name,
                               const char **value)
{
    if (i >= req->nhdrs) {
        return TAM_EINVAL;
    }
    *name = (const char *)req->text.data + req->hdrs[i].name;
    *value = (const char *)req->text.data + req->hdrs[i].value;
    return TAM_OK;
}

struct tam_bytes tam_http_request_body(const struct tam_http_request *req)
{
    return tam_bytes_of(req->body.data, req->body.len);
}

int tam_http_request_version_minor(const struct tam_http_request *req)
{
    return req->minor;
}

uint64_t tam_http_request_conn_id(const struct tam_http_request *req)
{
    return req->conn_id;
}

const char *tam_http_request_peer(const struct tam_http_request *req)
{
    return req->peer;
}

const struct sockaddr *tam_http_request_peer_addr(const struct tam_http_request *req)
{
    return req->has_peer_addr ? (const struct sockaddr *)&req->peer_addr : NULL;
}

bool tam_http_request_is_tls(const struct tam_http_request *req)
{
    return req->tls;
}

bool tam_http_request_aborted(const struct tam_http_request *req)
{
    return req->aborted;
}

void tam_http_request_on_abort(struct tam_http_request *req, tam_http_abort_fn fn, void *arg)
{
    req->on_abort = fn;
    req->abort_arg = arg;
}

void tam_http_request_close_after(struct tam_http_request *req)
{
    req->close_after = true;
}

struct tam_http_request *tam_http_request_ref(struct tam_http_request *req)
{
    req->refs++;
    return req;
}

void tam_http_request_unref(struct tam_http_request *req)
{
    if (req == NULL || --req->refs > 0) {
        return;
    }
    if (req->conn != NULL) {
        /* Every reference dropped without a response: a handler bug. Answer 500 rather
         * than leave the connection hanging on a freed request. */
        struct tam_net_conn *c = req->conn;
        req->conn = NULL;
        c->req = NULL;
        tam_net__respond_error(c, 500);
    }
    tam_net__request_free(req);
}
