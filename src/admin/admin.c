/*
 * The admin API's front: lifecycle, routing, strict path parsing, bearer authentication,
 * body checks, Redis steps and responses (admin.h, internal.h). The endpoints live in
 * tenants.c, devices.c, components.c and policy.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/store.h"

#define MAX_SEGS    8
#define ARENA_CHUNK 4096
#define ARENA_MAX   (4u << 20)
#define SCRATCH_MAX (48u << 20)
#define REALM       "Bearer realm=\"tamgate-admin\""

/* ---- lifecycle ---- */

static void opts_defaults(struct tam_admin_opts *o)
{
    o->json_max = o->json_max ? o->json_max : 64u << 10;
    o->policy_max = o->policy_max ? o->policy_max : TAM_STORE_MAX_POLICY;
    o->upload_max = o->upload_max ? o->upload_max : 16u << 20;
    o->max_tenants = o->max_tenants ? o->max_tenants : 10000;
    o->max_anchors = o->max_anchors ? o->max_anchors : 64;
    o->max_components = o->max_components ? o->max_components : 65536;
    o->list_max = o->list_max ? o->list_max : 1000;
    o->history_max = o->history_max ? o->history_max : 20;
}

/* An owned copy of the worker sealing key's public half. */
static int copy_public(const struct tam_key *k, struct tam_key **out)
{
    uint8_t raw[64];
    if (tam_key_type(k) != TAM_KEY_P256) {
        return TAM_EINVAL;
    }
    size_t n = tam_key_public_raw(k, raw);
    return tam_key_from_raw_public(TAM_KEY_P256, raw, n, out);
}

int tam_admin_create(struct uv_loop_s *loop, struct tam_redis *redis,
                     const struct tam_admin_opts *opts, struct tam_admin **out)
{
    if (redis == NULL || opts == NULL || opts->kek == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    struct tam_admin *a = tam_calloc(1, sizeof(*a));
    if (a == NULL) {
        return TAM_ENOMEM;
    }
    a->loop = loop;
    a->redis = redis;
    memcpy(a->kek, opts->kek, TAM_SEAL_KEK_LEN);
    a->opts = *opts;
    a->opts.kek = NULL;
    a->opts.worker_seal_pub = NULL;
    opts_defaults(&a->opts);
    if (opts->worker_seal_pub != NULL) {
        int err = copy_public(opts->worker_seal_pub, &a->worker_pub);
        if (err != TAM_OK) {
            tam_memzero(a->kek, sizeof(a->kek));
            tam_free(a);
            return err == TAM_ENOMEM ? err : TAM_EINVAL;
        }
    }
    *out = a;
    return TAM_OK;
}

static void admin_free(struct tam_admin *a)
{
    tam_key_destroy(a->worker_pub);
    tam_memzero(a->kek, sizeof(a->kek));
    tam_free(a);
}

void tam_admin_destroy(struct tam_admin *a)
{
    if (a == NULL) {
        return;
    }
    a->closing = true;
    if (a->stats.pending == 0) {
        admin_free(a);
    }
}

size_t tam_admin_body_limit(const struct tam_admin *a)
{
    size_t m = a->opts.upload_max;
    m = a->opts.json_max > m ? a->opts.json_max : m;
    return a->opts.policy_max > m ? a->opts.policy_max : m;
}

const struct tam_admin_stats *tam_admin_get_stats(const struct tam_admin *a)
{
    return &a->stats;
}

bool tam_admin_handles(const char *target)
{
    return target != NULL && strncmp(target, "/v1", 3) == 0 &&
           (target[3] == '\0' || target[3] == '/' || target[3] == '?');
}

/* ---- ops ---- */

static struct adm_op *op_new(struct tam_admin *a, struct tam_http_request *req)
{
    struct adm_op *op = tam_calloc(1, sizeof(*op));
    if (op == NULL) {
        return NULL;
    }
    op->a = a;
    op->req = req;
    op->started_ns = uv_hrtime();
    op->query = "";
    tam_arena_init(&op->arena, ARENA_CHUNK, ARENA_MAX);
    tam_buf_init(&op->buf, SCRATCH_MAX);
    a->stats.pending++;
    return op;
}

static void op_free(struct adm_op *op)
{
    struct tam_admin *a = op->a;
    if (op->ctx_free != NULL) {
        op->ctx_free(op->ctx);
    }
    json_decref(op->body);
    json_decref(op->resp);
    tam_arena_finish(&op->arena);
    tam_buf_finish(&op->buf);
    tam_free(op->argv);
    tam_free(op->argl);
    tam_free(op);
    a->stats.pending--;
    if (a->closing && a->stats.pending == 0) {
        admin_free(a);
    }
}

static void log_done(const struct adm_op *op, int status)
{
    if (TAM_LOG_INFO > tam_log_threshold) {
        return;
    }
    char path[160];
    const char *target = tam_http_request_target(op->req);
    size_t n = strcspn(target, "?");
    (void)tam_log_quote(target, n, path, sizeof(path));
    double ms = (double)(uv_hrtime() - op->started_ns) / 1e6;
    tam_log(
        TAM_LOG_INFO, "event=admin_request method=%s path=%s status=%d tenant=%s who=%s ms=%.2f",
        tam_http_request_method(op->req), path, status, op->tenant[0] != '\0' ? op->tenant : "-",
        op->owner.is_operator         ? "operator"
        : op->owner.tenant[0] != '\0' ? op->owner.tenant
                                      : "-",
        ms);
}

static void respond(struct adm_op *op, int status, const struct tam_http_header *extra,
                    size_t nextra, const char *ctype, const void *body, size_t len)
{
    struct tam_http_header h[8];
    size_t n = 0;
    if (ctype != NULL) {
        h[n++] = (struct tam_http_header){"Content-Type", ctype};
    }
    h[n++] = (struct tam_http_header){"Cache-Control", "no-store"};
    h[n++] = (struct tam_http_header){"X-Content-Type-Options", "nosniff"};
    for (size_t i = 0; i < nextra && n < TAM_ARRAY_LEN(h); i++) {
        h[n++] = extra[i];
    }
    struct tam_admin *a = op->a;
    a->stats.responses[status / 100 % 6]++;
    a->stats.auth_failures += status == 401;
    a->stats.forbidden += status == 403;
    log_done(op, status);
    (void)tam_http_respond(op->req, status, h, n, body, len);
    op_free(op);
}

void adm_raw(struct adm_op *op, int status, const char *ctype, const void *body, size_t len)
{
    respond(op, status, NULL, 0, ctype, body, len);
}

void adm_empty(struct adm_op *op, int status)
{
    respond(op, status, NULL, 0, NULL, NULL, 0);
}

/* The compact text of j in a tam_malloc'd buffer (not NUL-terminated), or NULL. */
static char *dump(json_t *j, size_t *len)
{
    const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII;
    size_t n = json_dumpb(j, NULL, 0, flags);
    char *s = n > 0 ? tam_malloc(n) : NULL;
    if (s != NULL && json_dumpb(j, s, n, flags) != n) {
        tam_free(s);
        s = NULL;
    }
    *len = s != NULL ? n : 0;
    return s;
}

void adm_json(struct adm_op *op, int status, json_t *body, const char *location)
{
    size_t len = 0;
    char *text = body != NULL ? dump(body, &len) : NULL;
    json_decref(body);
    if (text == NULL) {
        adm_fail(op, TAM_ENOMEM, "response");
        return;
    }
    struct tam_http_header loc = {"Location", location};
    respond(op, status, &loc, location != NULL ? 1 : 0, "application/json", text, len);
    tam_free(text);
}

void adm_json_list(struct adm_op *op, const char *member, json_t *arr, bool ok)
{
    json_t *o = ok && arr != NULL ? json_object() : NULL;
    if (o == NULL) {
        json_decref(arr);
        adm_fail(op, TAM_ENOMEM, member);
        return;
    }
    if (!adm_set(o, member, arr)) { /* jansson releases arr when the set fails */
        json_decref(o);
        adm_fail(op, TAM_ENOMEM, member);
        return;
    }
    adm_json(op, 200, o, NULL);
}

static const struct problem_kind {
    int status;
    const char *slug;
    const char *title;
} problems[] = {
    {400, "bad-request", "Malformed request"},
    {401, "unauthorized", "Authentication required"},
    {403, "forbidden", "Not allowed with this token"},
    {404, "not-found", "Not found"},
    {405, "method-not-allowed", "Method not allowed"},
    {409, "conflict", "Conflict"},
    {413, "too-large", "Request body too large"},
    {415, "unsupported-media-type", "Unsupported media type"},
    {422, "invalid", "Invalid request"},
    {500, "internal", "Internal error"},
    {503, "unavailable", "Service unavailable"},
};

static void problem_v(struct adm_op *op, int status, const struct tam_http_header *extra,
                      size_t nextra, const char *fmt, va_list ap) TAM_PRINTF(5, 0);

static void problem_v(struct adm_op *op, int status, const struct tam_http_header *extra,
                      size_t nextra, const char *fmt, va_list ap)
{
    const struct problem_kind *k = &problems[TAM_ARRAY_LEN(problems) - 2];
    for (size_t i = 0; i < TAM_ARRAY_LEN(problems); i++) {
        if (problems[i].status == status) {
            k = &problems[i];
        }
    }
    char detail[512], type[64];
    (void)vsnprintf(detail, sizeof(detail), fmt, ap);
    (void)snprintf(type, sizeof(type), "urn:tamgate:problem:%s", k->slug);
    json_t *j = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", k->title, "status", status,
                          "detail", detail);
    /* A detail that is not valid UTF-8 (it may quote input) is dropped, not the problem. */
    if (j == NULL) {
        j = json_pack("{s:s, s:s, s:i}", "type", type, "title", k->title, "status", status);
    }
    size_t len = 0;
    char *text = j != NULL ? dump(j, &len) : NULL;
    json_decref(j);
    respond(op, status, extra, nextra, "application/problem+json", text, len);
    tam_free(text);
}

void adm_problem(struct adm_op *op, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(op, status, NULL, 0, fmt, ap);
    va_end(ap);
}

static void problem_h(struct adm_op *op, int status, const struct tam_http_header *h, size_t n,
                      const char *fmt, ...) TAM_PRINTF(5, 6);

static void problem_h(struct adm_op *op, int status, const struct tam_http_header *h, size_t n,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(op, status, h, n, fmt, ap);
    va_end(ap);
}

void adm_fail(struct adm_op *op, int err, const char *what)
{
    if (err == TAM_ENOMEM || err == TAM_EUNAVAIL || err == TAM_ETIMEOUT) {
        tam_log(TAM_LOG_WARN, "event=admin_unavailable step=%s err=%s", what, tam_errname(err));
        adm_problem(op, 503, "%s: %s", what, tam_strerror(err));
        return;
    }
    tam_log(TAM_LOG_ERROR, "event=admin_error step=%s err=%s", what, tam_errname(err));
    adm_problem(op, 500, "%s failed", what);
}

/* ---- Redis steps ---- */

void adm_arg(struct adm_op *op, const void *p, size_t len)
{
    if (op->argc == op->argcap) {
        int cap = op->argcap ? op->argcap * 2 : 16;
        const char **v = tam_realloc(op->argv, (size_t)cap * sizeof(*v));
        if (v != NULL) {
            op->argv = v;
        }
        size_t *l = v != NULL ? tam_realloc(op->argl, (size_t)cap * sizeof(*l)) : NULL;
        if (l == NULL) {
            op->arg_oom = true;
            return;
        }
        op->argl = l;
        op->argcap = cap;
    }
    op->argv[op->argc] = p != NULL ? p : "";
    op->argl[op->argc] = len;
    op->argc++;
}

void adm_arg_str(struct adm_op *op, const char *s)
{
    adm_arg(op, s, strlen(s));
}

char *adm_strdup(struct adm_op *op, const char *s, size_t len)
{
    char *c = tam_arena_alloc(&op->arena, len + 1);
    if (c != NULL) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

void adm_argf(struct adm_op *op, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    char *c = n >= 0 && (size_t)n < sizeof(tmp) ? adm_strdup(op, tmp, (size_t)n) : NULL;
    if (c == NULL) {
        op->arg_oom = true;
        return;
    }
    adm_arg(op, c, (size_t)n);
}

static void on_reply(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    (void)r;
    struct adm_op *op = privdata;
    adm_step_fn next = op->next;
    op->next = NULL;
    if (status == TAM_EREDIS) {
        char q[200];
        (void)tam_log_quote(reply->str, reply->len, q, sizeof(q));
        tam_log(TAM_LOG_ERROR, "event=admin_redis_error reply=%s", q);
        adm_fail(op, TAM_EREDIS, "storage");
        return;
    }
    if (status != TAM_OK) {
        adm_fail(op, status, "storage");
        return;
    }
    next(op, reply);
}

void adm_redis(struct adm_op *op, adm_step_fn next)
{
    int argc = op->argc;
    op->argc = 0;
    if (op->arg_oom) {
        op->arg_oom = false;
        adm_fail(op, TAM_ENOMEM, "command");
        return;
    }
    op->next = next;
    int err = tam_redis_command_argv(op->a->redis, on_reply, op, argc, op->argv, op->argl);
    if (err != TAM_OK) {
        op->next = NULL;
        adm_fail(op, err == TAM_EINVAL ? TAM_EREDIS : err, "storage");
    }
}

/* ---- routing ---- */

struct seg {
    const char *p;
    size_t len;
};

static bool seg_is(struct seg s, const char *lit)
{
    return strlen(lit) == s.len && memcmp(s.p, lit, s.len) == 0;
}

static bool parse_kid(struct adm_op *op, struct seg s)
{
    if (s.len != 2 * TAM_KID_LEN) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!ok) {
            return false;
        }
        op->kid_hex[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
    }
    op->kid_hex[s.len] = '\0';
    struct tam_buf b;
    tam_buf_init(&b, TAM_KID_LEN);
    bool ok = tam_hex_decode(op->kid_hex, s.len, &b) == TAM_OK && b.len == TAM_KID_LEN;
    if (ok) {
        memcpy(op->kid, b.data, TAM_KID_LEN);
    }
    tam_buf_finish(&b);
    return ok;
}

/* Lower-case hex of an encoded SUIT component id, as in the components hash fields. */
static bool parse_cid(struct adm_op *op, struct seg s)
{
    if (s.len == 0 || s.len % 2 != 0 || s.len > ADM_CID_HEX_MAX) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
    }
    struct tam_buf b;
    tam_buf_init(&b, ADM_CID_HEX_MAX / 2);
    struct tam_teep_component_id id;
    bool ok = tam_hex_decode(s.p, s.len, &b) == TAM_OK &&
              tam_store_id_decode(b.data, b.len, &id, NULL) == TAM_OK;
    tam_buf_finish(&b);
    if (ok) {
        memcpy(op->cid_hex, s.p, s.len);
        op->cid_hex[s.len] = '\0';
    }
    return ok;
}

static bool match_seg(struct adm_op *op, const char *pat, size_t plen, struct seg s)
{
    if (plen == 3 && memcmp(pat, "{t}", 3) == 0) {
        if (!tam_tenant_id_valid(s.p, s.len)) {
            return false;
        }
        memcpy(op->tenant, s.p, s.len);
        op->tenant[s.len] = '\0';
        return true;
    }
    if (plen == 5 && memcmp(pat, "{kid}", 5) == 0) {
        return parse_kid(op, s);
    }
    if (plen == 6 && memcmp(pat, "{kind}", 6) == 0) {
        return tam_tstore_anchor_kind_parse(s.p, s.len, &op->kind) == TAM_OK;
    }
    if (plen == 5 && memcmp(pat, "{cid}", 5) == 0) {
        return parse_cid(op, s);
    }
    if (plen == 5 && memcmp(pat, "{seq}", 5) == 0) {
        return adm_parse_u64(s.p, s.len, &op->seq);
    }
    return plen == s.len && memcmp(pat, s.p, plen) == 0;
}

static bool match(struct adm_op *op, const char *pattern, const struct seg *segs, int n)
{
    const char *p = pattern;
    for (int i = 0; i < n; i++) {
        if (*p == '\0') {
            return false;
        }
        size_t plen = strcspn(p, "/");
        if (!match_seg(op, p, plen, segs[i])) {
            return false;
        }
        p += plen;
        p += *p == '/';
    }
    return *p == '\0';
}

static const struct {
    const struct adm_route *v;
    const size_t *n;
} tables[] = {
    {adm_tenant_routes, &adm_tenant_nroutes},
    {adm_device_routes, &adm_device_nroutes},
    {adm_component_routes, &adm_component_nroutes},
    {adm_policy_routes, &adm_policy_nroutes},
};

/* Finds the route; on no match answers 404 or 405 (with Allow) and returns NULL. */
static const struct adm_route *route(struct adm_op *op, const struct seg *segs, int n)
{
    const char *method = tam_http_request_method(op->req);
    char allow[64] = "";
    for (size_t t = 0; t < TAM_ARRAY_LEN(tables); t++) {
        for (size_t i = 0; i < *tables[t].n; i++) {
            const struct adm_route *r = &tables[t].v[i];
            if (!match(op, r->pattern, segs, n)) {
                continue;
            }
            if (strcmp(r->method, method) == 0) {
                return r;
            }
            size_t used = strlen(allow);
            (void)snprintf(allow + used, sizeof(allow) - used, "%s%s", used ? ", " : "", r->method);
        }
    }
    if (allow[0] != '\0') {
        struct tam_http_header h = {"Allow", allow};
        problem_h(op, 405, &h, 1, "allowed: %s", allow);
    } else {
        adm_problem(op, 404, "no such resource");
    }
    return NULL;
}

/* Splits the path after "/v1/" into segments; answers 400/404 and returns -1 when bad. */
static int split(struct adm_op *op, const char *target, struct seg *segs)
{
    size_t plen = strcspn(target, "?");
    op->query = target[plen] == '?' ? target + plen + 1 : "";
    if (memchr(target, '%', plen) != NULL) {
        adm_problem(op, 400, "percent-encoded characters are not accepted in paths");
        return -1;
    }
    if (plen < 4 || target[3] != '/') {
        adm_problem(op, 404, "no such resource");
        return -1;
    }
    const char *p = target + 4;
    const char *end = target + plen;
    int n = 0;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash != NULL ? slash : end;
        struct seg s = {p, (size_t)(e - p)};
        if (s.len == 0 || seg_is(s, ".") || seg_is(s, "..")) {
            adm_problem(op, 400, "empty, '.' and '..' path segments are not accepted");
            return -1;
        }
        if (n == MAX_SEGS) {
            adm_problem(op, 404, "no such resource");
            return -1;
        }
        segs[n++] = s;
        if (slash == NULL) {
            return n;
        }
        p = slash + 1;
    }
}

/* ---- authentication ---- */

static void unauthorized(struct adm_op *op, bool presented, const char *detail)
{
    struct tam_http_header h = {"WWW-Authenticate",
                                presented ? REALM ", error=\"invalid_token\"" : REALM};
    problem_h(op, 401, &h, 1, "%s", detail);
}

static void proceed(struct adm_op *op);

static bool scope_ok(const struct adm_op *op)
{
    enum adm_scope s = op->route->scope;
    if (op->owner.is_operator) {
        return s == ADM_OPERATOR || s == ADM_EITHER;
    }
    return (s == ADM_TENANT || s == ADM_EITHER) && strcmp(op->owner.tenant, op->tenant) == 0;
}

static void on_token(struct adm_op *op, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_STRING) {
        unauthorized(op, true, "unknown token");
        return;
    }
    uint8_t *hash = op->ctx;
    int err = tam_tstore_index_check(reply->str, reply->len, hash, &op->owner);
    tam_free(op->ctx);
    op->ctx = NULL;
    op->ctx_free = NULL;
    if (err != TAM_OK) {
        if (err == TAM_EINVAL) {
            tam_log(TAM_LOG_ERROR, "event=admin_token_index_corrupt");
        }
        memset(&op->owner, 0, sizeof(op->owner));
        unauthorized(op, true, "unknown token");
        return;
    }
    if (!scope_ok(op)) {
        adm_problem(op, 403,
                    op->owner.is_operator ? "the operator token does not act inside a tenant"
                                          : "this token does not grant access to this resource");
        return;
    }
    proceed(op);
}

static void authenticate(struct adm_op *op)
{
    const char *h = tam_http_request_header(op->req, "Authorization");
    if (h == NULL) {
        unauthorized(op, false, "a bearer token is required");
        return;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        unauthorized(op, true, "the Bearer scheme is required");
        return;
    }
    const char *tok = h + 7;
    tok += strspn(tok, " ");
    size_t len = strlen(tok);
    if (!tam_tstore_token_syntax_ok(tok, len)) {
        unauthorized(op, true, "malformed token");
        return;
    }
    uint8_t *hash = tam_malloc(TAM_SHA256_LEN);
    if (hash == NULL) {
        adm_fail(op, TAM_ENOMEM, "auth");
        return;
    }
    tam_tstore_token_hash(tok, len, hash);
    op->ctx = hash;
    op->ctx_free = tam_free;
    char sel[TAM_TSTORE_SELECTOR_HEX + 1];
    tam_tstore_token_selector(hash, sel);
    adm_arg_str(op, "HGET");
    adm_arg_str(op, TAM_KEY_TOKEN_INDEX);
    adm_arg_str(op, sel);
    adm_redis(op, on_token);
}

/* ---- body checks, then the handler ---- */

bool adm_media_is(const char *ct, const char *want)
{
    if (ct == NULL) {
        return false;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    return n == strlen(want) && strncasecmp(ct, want, n) == 0;
}

static void proceed(struct adm_op *op)
{
    const struct adm_route *r = op->route;
    struct tam_bytes body = tam_http_request_body(op->req);
    const char *ct = tam_http_request_header(op->req, "Content-Type");
    const struct tam_admin_opts *o = &op->a->opts;
    size_t max = r->body == ADM_BODY_JSON     ? o->json_max
                 : r->body == ADM_BODY_POLICY ? o->policy_max
                                              : o->upload_max;
    if (r->body == ADM_BODY_NONE) {
        r->fn(op);
        return;
    }
    if (body.len > max) {
        adm_problem(op, 413, "this endpoint accepts at most %zu bytes", max);
        return;
    }
    if (r->body == ADM_BODY_UPLOAD) {
        r->fn(op);
        return;
    }
    if (!adm_media_is(ct, "application/json")) {
        adm_problem(op, 415, "Content-Type must be application/json");
        return;
    }
    if (r->body == ADM_BODY_POLICY) {
        r->fn(op);
        return;
    }
    json_error_t jerr;
    op->body = json_loadb((const char *)body.ptr, body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (op->body == NULL) {
        adm_problem(op, 400, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
        return;
    }
    if (!json_is_object(op->body)) {
        adm_problem(op, 400, "the body must be a JSON object");
        return;
    }
    r->fn(op);
}

void tam_admin_handle(struct tam_http_request *req, struct tam_admin *a)
{
    a->stats.requests++;
    struct adm_op *op = op_new(a, req);
    if (op == NULL) {
        (void)tam_http_respond_status(req, 503);
        return;
    }
    const char *target = tam_http_request_target(req);
    if (!tam_admin_handles(target)) {
        adm_problem(op, 404, "no such resource");
        return;
    }
    struct seg segs[MAX_SEGS];
    int n = split(op, target, segs);
    if (n < 0) {
        return;
    }
    const struct adm_route *r = route(op, segs, n);
    if (r == NULL) {
        return; /* answered (and freed) */
    }
    op->route = r;
    authenticate(op);
}

/* ---- small shared helpers ---- */

bool adm_parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

uint64_t adm_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
