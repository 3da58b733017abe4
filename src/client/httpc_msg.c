/*
 * Pure parts of the HTTP client: URL parsing, request serialization and response header
 * lookup. No I/O here; everything is bounded and validated.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpc_internal.h"
#include "tam/err.h"

#define MAX_METHOD      16
#define MAX_HEADERS     64
#define MAX_HEADER_NAME 256
#define MAX_HEADER_VAL  8192

static bool is_tchar(unsigned char ch)
{
    /* RFC 9110 token characters. */
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) {
        return true;
    }
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max || !is_tchar((unsigned char)s[n])) {
            return false;
        }
    }
    return n > 0;
}

/* Printable ASCII without space: what we accept in a request target. */
static bool is_target_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f;
}

static bool is_host_char(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '-' || ch == '.' || ch == '_';
}

static int parse_scheme(const char **s, struct tam_httpc_url *u)
{
    if (strncasecmp(*s, "http://", 7) == 0) {
        *s += 7;
        u->tls = false;
        u->port = 80;
        return TAM_OK;
    }
    if (strncasecmp(*s, "https://", 8) == 0) {
        *s += 8;
        u->tls = true;
        u->port = 443;
        return TAM_OK;
    }
    return TAM_EINVAL;
}

static int parse_port(const char *s, size_t n, uint16_t *port)
{
    if (n == 0) {
        return TAM_OK; /* "host:" means the default port (RFC 3986 3.2.3) */
    }
    if (n > 5) {
        return TAM_EINVAL;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return TAM_EINVAL;
        }
        v = v * 10u + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return TAM_EINVAL;
    }
    *port = (uint16_t)v;
    return TAM_OK;
}

static int parse_ipv6_host(const char *a, size_t n, struct tam_httpc_url *u, size_t *used)
{
    const char *end = memchr(a, ']', n);
    if (end == NULL || (size_t)(end - a) - 1 >= sizeof(u->host)) {
        return TAM_EINVAL;
    }
    size_t hl = (size_t)(end - a) - 1;
    memcpy(u->host, a + 1, hl);
    u->host[hl] = '\0';
    struct in6_addr tmp;
    if (inet_pton(AF_INET6, u->host, &tmp) != 1) {
        return TAM_EINVAL; /* also rejects zone ids ("%25eth0") */
    }
    u->family = AF_INET6;
    *used = hl + 2;
    return TAM_OK;
}

static int parse_authority(const char *a, size_t n, struct tam_httpc_url *u)
{
    if (n == 0 || memchr(a, '@', n) != NULL) {
        return TAM_EINVAL; /* no host, or userinfo (never sent, easy to abuse) */
    }
    size_t used = 0;
    if (a[0] == '[') {
        int err = parse_ipv6_host(a, n, u, &used);
        if (err != TAM_OK) {
            return err;
        }
    } else {
        while (used < n && a[used] != ':') {
            if (!is_host_char((unsigned char)a[used]) || used >= 253) {
                return TAM_EINVAL;
            }
            used++;
        }
        if (used == 0) {
            return TAM_EINVAL;
        }
        memcpy(u->host, a, used);
        u->host[used] = '\0';
        struct in_addr tmp;
        u->family = inet_pton(AF_INET, u->host, &tmp) == 1 ? AF_INET : 0;
    }
    if (used == n) {
        return TAM_OK;
    }
    if (a[used] != ':') {
        return TAM_EINVAL;
    }
    return parse_port(a + used + 1, n - used - 1, &u->port);
}

static int parse_path(const char *s, struct tam_httpc_url *u)
{
    size_t n = strcspn(s, "#");
    size_t off = 0;
    if (n == 0 || s[0] == '?') {
        u->path[off++] = '/';
    }
    if (off + n >= sizeof(u->path)) {
        return TAM_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_target_char((unsigned char)s[i])) {
            return TAM_EINVAL;
        }
    }
    memcpy(u->path + off, s, n);
    u->path[off + n] = '\0';
    return TAM_OK;
}

int tam_httpc_url_parse(const char *url, struct tam_httpc_url *out)
{
    memset(out, 0, sizeof(*out));
    if (url == NULL || strlen(url) > 4096) {
        return TAM_EINVAL;
    }
    const char *s = url;
    int err = parse_scheme(&s, out);
    if (err != TAM_OK) {
        return err;
    }
    size_t alen = strcspn(s, "/?#");
    err = parse_authority(s, alen, out);
    if (err != TAM_OK) {
        return err;
    }
    return parse_path(s + alen, out);
}

static bool header_value_ok(const char *v)
{
    size_t n = 0;
    for (; v[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)v[n];
        if (n >= MAX_HEADER_VAL || ch == '\r' || ch == '\n' || (ch < 0x20 && ch != '\t') ||
            ch == 0x7f) {
            return false;
        }
    }
    return true;
}

static bool header_forbidden(const char *name)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "connection",
                                        "upgrade"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int check_request(const struct tam_httpc_pool *p, const struct tam_httpc_req *req,
                         const char *method, const char *path, bool *user_host)
{
    if (!is_token(method, MAX_METHOD) || req->n_headers > MAX_HEADERS ||
        (req->n_headers > 0 && req->headers == NULL) ||
        (req->body.len > 0 && req->body.ptr == NULL)) {
        return TAM_EINVAL;
    }
    size_t plen = strlen(path);
    if (path[0] != '/' || plen >= TAM_HTTPC_PATH_MAX) {
        return TAM_EINVAL;
    }
    for (size_t i = 0; i < plen; i++) {
        if (!is_target_char((unsigned char)path[i])) {
            return TAM_EINVAL;
        }
    }
    *user_host = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct tam_httpc_header *h = &req->headers[i];
        if (h->name == NULL || h->value == NULL || !is_token(h->name, MAX_HEADER_NAME) ||
            !header_value_ok(h->value) || header_forbidden(h->name)) {
            return TAM_EINVAL;
        }
        *user_host = *user_host || strcasecmp(h->name, "host") == 0;
    }
    return req->body.len > p->max_req_body ? TAM_ETOOBIG : TAM_OK;
}

static bool method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

int tam_httpc__build_request(struct tam_buf *out, const struct tam_httpc_pool *p,
                             const struct tam_httpc_req *req, bool *is_head)
{
    const char *method = req->method != NULL ? req->method : "POST";
    const char *path = req->path != NULL ? req->path : p->url.path;
    bool user_host = false;
    int err = check_request(p, req, method, path, &user_host);
    if (err != TAM_OK) {
        return err;
    }
    *is_head = strcmp(method, "HEAD") == 0;
    err = tam_buf_printf(out, "%s %s HTTP/1.1\r\n", method, path);
    if (err == TAM_OK && !user_host) {
        err = tam_buf_printf(out, "Host: %s\r\n", p->host_hdr);
    }
    for (size_t i = 0; i < req->n_headers && err == TAM_OK; i++) {
        err = tam_buf_printf(out, "%s: %s\r\n", req->headers[i].name, req->headers[i].value);
    }
    if (err == TAM_OK && (req->body.len > 0 || method_has_body(method))) {
        err = tam_buf_printf(out, "Content-Length: %zu\r\n", req->body.len);
    }
    if (err == TAM_OK && p->no_reuse) {
        err = tam_buf_append_str(out, "Connection: close\r\n");
    }
    if (err == TAM_OK) {
        err = tam_buf_append_str(out, "\r\n");
    }
    if (err == TAM_OK) {
        err = tam_buf_append(out, req->body.ptr, req->body.len);
    }
    return err;
}

bool tam_httpc_resp_header_next(const struct tam_httpc_resp *r, size_t *pos, const char **name,
                                const char **value)
{
    size_t i = *pos;
    if (r == NULL || i >= r->hdrs_len_) {
        return false;
    }
    const char *n = r->hdrs_ + i;
    size_t nl = strnlen(n, r->hdrs_len_ - i);
    if (i + nl + 1 >= r->hdrs_len_) {
        return false; /* a name without its value: cannot happen with the packer, be safe */
    }
    const char *v = n + nl + 1;
    size_t vl = strnlen(v, r->hdrs_len_ - (i + nl + 1));
    *name = n;
    *value = v;
    *pos = i + nl + 1 + vl + 1;
    return true;
}

const char *tam_httpc_resp_header(const struct tam_httpc_resp *r, const char *name)
{
    size_t pos = 0;
    const char *n = NULL;
    const char *v = NULL;
    while (tam_httpc_resp_header_next(r, &pos, &n, &v)) {
        if (strcasecmp(n, name) == 0) {
            return v;
        }
    }
    return NULL;
}

int tam_httpc_teep_post(struct tam_httpc_pool *p, struct tam_bytes body, tam_httpc_done_fn cb,
                        void *arg)
{
    const struct tam_httpc_header hdrs[] = {
        {"Accept", TAM_TEEP_MEDIA_TYPE},
        {"Content-Type", TAM_TEEP_MEDIA_TYPE},
    };
    struct tam_httpc_req req = {
        .method = "POST",
        .headers = hdrs,
        .n_headers = body.len > 0 ? 2 : 1,
        .body = body,
    };
    return tam_httpc_request(p, &req, cb, arg);
}
