/*
 * Response serialisation and tam_http_respond. The whole response (head and body) is
 * built into the connection's out buffer, which the write pump in conn.c then sends in
 * slices, so a handler's body is copied once and may be freed as soon as respond returns.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "tam/err.h"
#include "tam/log.h"

struct reason {
    int status;
    const char *text;
};

static const struct reason reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *tam_http_reason(int status)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(reasons); i++) {
        if (reasons[i].status == status) {
            return reasons[i].text;
        }
    }
    return "Unknown";
}

/* What one response consists of, validated or server-made. */
struct resp {
    int status;
    const struct tam_http_header *headers;
    size_t n;
    const void *body;
    size_t len;
    bool keep_alive;
    bool head;
    int minor;
};

static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!is_tchar((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

static bool reserved_name(const char *s)
{
    return tam_net__ascii_casecmp(s, "content-length") == 0 ||
           tam_net__ascii_casecmp(s, "transfer-encoding") == 0 ||
           tam_net__ascii_casecmp(s, "connection") == 0;
}

/* Field values: visible characters, SP, HTAB and obs-text; never CR, LF, NUL or DEL. */
static bool valid_value(const char *s)
{
    if (s == NULL) {
        return false;
    }
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return false;
        }
    }
    return true;
}

static int validate(const struct resp *r)
{
    if (r->status < 200 || r->status > 599 || (r->body == NULL && r->len > 0)) {
        return TAM_EINVAL;
    }
    if (r->headers == NULL && r->n > 0) {
        return TAM_EINVAL;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct tam_http_header *h = &r->headers[i];
        if (!valid_name(h->name) || reserved_name(h->name) || !valid_value(h->value)) {
            return TAM_EINVAL;
        }
    }
    return TAM_OK;
}

static bool no_body_status(int status)
{
    return status == 204 || status == 304;
}

static int build_head(struct tam_http_server *srv, struct tam_buf *out, const struct resp *r)
{
    int err = tam_buf_printf(out, "HTTP/1.1 %d %s\r\n", r->status, tam_http_reason(r->status));
    if (err == TAM_OK && !srv->no_date) {
        err = tam_buf_printf(out, "Date: %s\r\n", tam_net__server_date(srv));
    }
    for (size_t i = 0; err == TAM_OK && i < r->n; i++) {
        err = tam_buf_printf(out, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
    }
    if (err == TAM_OK && !no_body_status(r->status)) {
        err = tam_buf_printf(out, "Content-Length: %zu\r\n", r->len);
    }
    if (err == TAM_OK && !r->keep_alive) {
        err = tam_buf_append_str(out, "Connection: close\r\n");
    } else if (err == TAM_OK && r->minor == 0) {
        err = tam_buf_append_str(out, "Connection: keep-alive\r\n");
    }
    return err == TAM_OK ? tam_buf_append_str(out, "\r\n") : err;
}

/* Builds r into c->out and starts writing it. */
static void send_resp(struct tam_net_conn *c, const struct resp *r)
{
    tam_buf_reset(&c->out);
    int err = build_head(c->srv, &c->out, r);
    if (err == TAM_OK && !r->head && !no_body_status(r->status)) {
        err = tam_buf_append(&c->out, r->body, r->len);
    }
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=http_response_failed srv=%s conn=%llu err=%s", c->srv->name,
                (unsigned long long)c->id, tam_net__errname(err));
        tam_net__conn_close(c, "response build failed");
        return;
    }
    c->srv->stats.responses[r->status / 100]++;
    tam_net__conn_start_response(c, r->keep_alive);
}

void tam_net__respond_error(struct tam_net_conn *c, int status)
{
    struct resp r = {.status = status, .minor = 1, .keep_alive = false};
    send_resp(c, &r);
}

int tam_net__write_continue(struct tam_net_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->tls != NULL) {
        return tam_net__tls_write(c, cont, sizeof(cont) - 1);
    }
    return tam_net__conn_write(c, cont, sizeof(cont) - 1, false);
}

int tam_http_respond(struct tam_http_request *req, int status,
                     const struct tam_http_header *headers, size_t n, const void *body, size_t len)
{
    if (req == NULL || !req->dispatched || req->responded) {
        return TAM_EINVAL;
    }
    req->responded = true;
    struct tam_net_conn *c = req->conn;
    int err = TAM_ERRNO(ECONNABORTED);
    if (c != NULL) {
        req->conn = NULL;
        c->req = NULL;
        struct resp r = {status,    headers, n, body, len, false, req->method == HTTP_HEAD,
                         req->minor};
        r.keep_alive = c->keep_alive && !req->close_after && !c->srv->draining;
        err = validate(&r);
        if (err != TAM_OK) {
            tam_log(TAM_LOG_WARN, "event=http_bad_response srv=%s conn=%llu status=%d",
                    c->srv->name, (unsigned long long)c->id, status);
            struct resp fallback = {.status = 500, .minor = r.minor, .head = r.head};
            r = fallback;
        }
        send_resp(c, &r);
    }
    tam_http_request_unref(req);
    return err;
}

int tam_http_respond_status(struct tam_http_request *req, int status)
{
    return tam_http_respond(req, status, NULL, 0, NULL, 0);
}

int tam_http_respond_405(struct tam_http_request *req, const char *allow)
{
    const struct tam_http_header h = {"Allow", allow != NULL ? allow : ""};
    return tam_http_respond(req, 405, &h, 1, NULL, 0);
}
