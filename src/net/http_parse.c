/*
 * llhttp glue. llhttp (strict mode) hands spans that may be split across execute calls,
 * so the URL and headers are accumulated into the request's bounded text buffer as
 * offsets. A callback that hits a limit records the HTTP status to answer and returns -1;
 * a complete message pauses the parser, which is resumed for the next pipelined request
 * only after the response has been written.
 */
#include <string.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"

static struct tam_net_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int fail(struct tam_net_conn *c, int status)
{
    c->fail_status = status;
    return -1;
}

static bool in_trailers(const struct tam_net_conn *c)
{
    return c->phase == TAM_NET_BODY;
}

static int append(struct tam_net_conn *c, const char *at, size_t n, int status)
{
    int err = tam_buf_append(&c->req->text, at, n);
    if (err == TAM_ETOOBIG) {
        return fail(c, status);
    }
    return err == TAM_OK ? 0 : fail(c, 503);
}

static int on_message_begin(llhttp_t *p)
{
    struct tam_net_conn *c = conn_of(p);
    tam_net__request_free(c->req);
    c->req = NULL;
    c->msg_done = false;
    c->span = TAM_NET_SPAN_NONE;
    if (tam_net__request_new(c, &c->req) != TAM_OK) {
        return fail(c, 503);
    }
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct tam_net_conn *c = conn_of(p);
    if (n > c->srv->limits.url_bytes - c->req->text.len) {
        return fail(c, 414);
    }
    return append(c, at, n, 414);
}

static int on_url_complete(llhttp_t *p)
{
    return append(conn_of(p), "", 1, 414);
}

/* Trailers of a chunked body are counted against the header limit and dropped. */
static int trailer_bytes(struct tam_net_conn *c, size_t n)
{
    c->raw_headers += n;
    return c->raw_headers > c->srv->limits.header_bytes ? fail(c, 431) : 0;
}

static int new_header(struct tam_net_conn *c)
{
    struct tam_http_request *req = c->req;
    if (req->nhdrs >= c->srv->limits.header_count) {
        return fail(c, 431);
    }
    if (req->nhdrs == req->hdr_cap) {
        uint32_t cap = req->hdr_cap != 0 ? 2 * req->hdr_cap : 16;
        struct tam_net_hdr *h = tam_realloc(req->hdrs, cap * sizeof(*h));
        if (h == NULL) {
            return fail(c, 503);
        }
        req->hdrs = h;
        req->hdr_cap = cap;
    }
    req->hdrs[req->nhdrs].name = (uint32_t)req->text.len;
    req->hdrs[req->nhdrs].value = (uint32_t)req->text.len;
    c->span = TAM_NET_SPAN_FIELD;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct tam_net_conn *c = conn_of(p);
    if (in_trailers(c)) {
        return trailer_bytes(c, n);
    }
    if (c->span != TAM_NET_SPAN_FIELD && new_header(c) != 0) {
        return -1;
    }
    return append(c, at, n, 431);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct tam_net_conn *c = conn_of(p);
    if (in_trailers(c)) {
        return 0;
    }
    if (c->span != TAM_NET_SPAN_FIELD && new_header(c) != 0) {
        return -1; /* an empty name cannot pass llhttp, but stay consistent anyway */
    }
    if (append(c, "", 1, 431) != 0) {
        return -1;
    }
    c->req->hdrs[c->req->nhdrs].value = (uint32_t)c->req->text.len;
    c->span = TAM_NET_SPAN_VALUE;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct tam_net_conn *c = conn_of(p);
    if (in_trailers(c)) {
        return trailer_bytes(c, n);
    }
    return append(c, at, n, 431);
}

static int on_header_value_complete(llhttp_t *p)
{
    struct tam_net_conn *c = conn_of(p);
    if (in_trailers(c) || c->span != TAM_NET_SPAN_VALUE) {
        return 0;
    }
    struct tam_http_request *req = c->req;
    size_t start = req->hdrs[req->nhdrs].value;
    while (req->text.len > start && (req->text.data[req->text.len - 1] == ' ' ||
                                     req->text.data[req->text.len - 1] == '\t')) {
        req->text.len--; /* trailing OWS is not part of the value (RFC 9110 5.5) */
    }
    if (append(c, "", 1, 431) != 0) {
        return -1;
    }
    req->nhdrs++;
    c->span = TAM_NET_SPAN_NONE;
    return 0;
}

static bool has_body(const llhttp_t *p)
{
    return (p->flags & F_CHUNKED) != 0 || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
}

static int host_count(const struct tam_http_request *req)
{
    int n = 0;
    for (size_t i = 0; i < req->nhdrs; i++) {
        const char *name = (const char *)req->text.data + req->hdrs[i].name;
        n += tam_net__ascii_casecmp(name, "host") == 0;
    }
    return n;
}

/* Expect: 100-continue is answered with an interim 100 as soon as the headers pass the
 * limits (a body over the limit gets its 413 instead, without the client sending it). */
static int handle_expect(struct tam_net_conn *c, llhttp_t *p)
{
    const char *expect = tam_http_request_header(c->req, "expect");
    if (expect == NULL) {
        return 0;
    }
    if (tam_net__ascii_casecmp(expect, "100-continue") != 0) {
        return fail(c, 417);
    }
    if (p->http_minor >= 1 && has_body(p) && tam_net__write_continue(c) != 0) {
        return fail(c, 503);
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct tam_net_conn *c = conn_of(p);
    struct tam_http_request *req = c->req;
    req->method = p->method;
    req->minor = p->http_minor;
    if (p->http_major != 1) {
        return fail(c, 505);
    }
    if (p->http_minor >= 1 ? host_count(req) != 1 : host_count(req) > 1) {
        return fail(c, 400); /* RFC 9112 3.2: exactly one Host in HTTP/1.1 */
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->limits.body_bytes) {
        return fail(c, 413);
    }
    if (handle_expect(c, p) != 0) {
        return -1;
    }
    if (has_body(p)) {
        if ((p->flags & F_CONTENT_LENGTH) &&
            tam_buf_reserve(&req->body, (size_t)p->content_length) != TAM_OK) {
            return fail(c, 503);
        }
        c->phase = TAM_NET_BODY;
        c->raw_headers = 0; /* now counts trailer bytes */
        tam_net__conn_arm(c, TAM_NET_T_BODY, c->srv->limits.body_timeout_ms);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct tam_net_conn *c = conn_of(p);
    int err = tam_buf_append(&c->req->body, at, n);
    if (err == TAM_ETOOBIG) {
        return fail(c, 413);
    }
    return err == TAM_OK ? 0 : fail(c, 503);
}

static int on_message_complete(llhttp_t *p)
{
    struct tam_net_conn *c = conn_of(p);
    /* An Upgrade/CONNECT request is answered like any other, then the connection closes. */
    c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    c->msg_done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void tam_net__parser_init(struct tam_net_conn *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
}

static void dispatch(struct tam_net_conn *c)
{
    struct tam_http_server *srv = c->srv;
    struct tam_http_request *req = c->req;
    req->dispatched = true;
    req->refs = 1; /* the handler's, consumed by tam_http_respond */
    req->conn = c;
    c->phase = TAM_NET_HANDLER;
    c->head = req->method == HTTP_HEAD;
    tam_net__conn_arm(c, TAM_NET_T_NONE, 0);
    srv->stats.requests++;
    if (tam_log_threshold >= TAM_LOG_DEBUG) {
        char target[96];
        tam_log(TAM_LOG_DEBUG, "event=request srv=%s conn=%llu method=%s target=%s", srv->name,
                (unsigned long long)c->id, tam_http_request_method(req),
                tam_log_quote(req->text.data, strlen(tam_http_request_target(req)), target,
                              sizeof(target)));
    }
    srv->handler(req, srv->handler_ctx);
}

static void count_error(struct tam_http_stats *st, int status)
{
    if (status == 413) {
        st->drop_too_big++;
    } else if (status == 431 || status == 414) {
        st->drop_header_limit++;
    } else if (status != 503) {
        st->drop_bad_request++;
    }
}

static void parse_failed(struct tam_net_conn *c, llhttp_errno_t e)
{
    /* A callback that failed chose the status; otherwise llhttp found the input malformed. */
    int status = c->fail_status != 0 ? c->fail_status : 400;
    count_error(&c->srv->stats, status);
    tam_log(TAM_LOG_INFO, "event=http_error srv=%s conn=%llu status=%d err=%s reason=\"%s\"",
            c->srv->name, (unsigned long long)c->id, status, llhttp_errno_name(e),
            llhttp_get_error_reason(&c->parser) != NULL ? llhttp_get_error_reason(&c->parser) : "");
    tam_net__request_free(c->req);
    c->req = NULL;
    tam_net__respond_error(c, status);
}

/* Whitespace floods (llhttp skips leading CRLFs and OWS without a callback) are bounded
 * here: bytes fed while still inside the header section. */
static bool header_flood(struct tam_net_conn *c, size_t len)
{
    const struct tam_http_limits *l = &c->srv->limits;
    if (c->phase != TAM_NET_HEADERS) {
        return false;
    }
    c->raw_headers += len;
    return c->raw_headers > 2 * (size_t)l->header_bytes + 8 * (size_t)l->header_count;
}

size_t tam_net__parse(struct tam_net_conn *c, const char *data, size_t len)
{
    if (c->phase == TAM_NET_IDLE) {
        c->phase = TAM_NET_HEADERS;
        c->raw_headers = 0;
        c->fail_status = 0;
        if (c->timer_kind != TAM_NET_T_HEADER) {
            tam_net__conn_arm(c, TAM_NET_T_HEADER, c->srv->limits.header_timeout_ms);
        }
    }
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) {
        if (header_flood(c, len)) {
            c->fail_status = 431;
            parse_failed(c, HPE_USER);
        }
        return len;
    }
    if (e == HPE_PAUSED && c->msg_done) {
        size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
        llhttp_resume(&c->parser);
        c->msg_done = false;
        dispatch(c);
        return used;
    }
    parse_failed(c, e);
    return len;
}
