/*
 * The admin API end to end: tam_admin on a real tam_http_server (127.0.0.1, ephemeral port)
 * driving a real redis-server, called with real curl. The loop runs in a thread of the test
 * process; the test thread only runs curl and a blocking hiredis connection for checks.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "admin_fixture.h"
#include "redis_fixture.h"
#include "tam/admin.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/seal.h"
#include "tam/store.h"
#include "tam/suit.h"
#include "tam/tls.h"
#include "tam/tstore.h"
#include "testutil.h"

/* ---- environment: redis + server + admin on a loop thread (admin_fixture.h) ---- */

static struct tu_admin E;

static void env_start(bool with_worker_key)
{
    tam_log_configure(TAM_LOG_WARN, TAM_LOG_LOGFMT, "test_admin");
    tu_admin_init(&E, "admin-test");
    tu_admin_serve(&E, with_worker_key, NULL);
}

static void setup(void)
{
    env_start(true);
}

static void setup_no_worker(void)
{
    env_start(false);
}

static void teardown(void)
{
    tu_admin_stop(&E);
}

/* ---- curl ---- */

struct resp {
    int status;
    char *body;
    size_t len;
    char *hdrs;
    json_t *j; /* parsed body when it is JSON */
};

static void resp_free(struct resp *r)
{
    tam_free(r->body);
    tam_free(r->hdrs);
    json_decref(r->j);
    memset(r, 0, sizeof(*r));
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = tam_malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Runs curl with argv; returns what it printed (the status code). */
static int run_curl(char **argv)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execvp("curl", argv);
        _exit(127);
    }
    close(p[1]);
    char out[32] = {0};
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], out + n, sizeof(out) - 1 - n)) > 0) {
        n += (size_t)r;
    }
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "curl failed: %d", WEXITSTATUS(st));
    return atoi(out);
}

static struct resp req_ex(const char *method, const char *path, const char *tok, const char *ctype,
                          const void *body, size_t len, const char *extra_hdr)
{
    char url[4096], auth[128], ct[128], bodyf[128], hdrf[128], reqf[128], data[140];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", E.port, path);
    snprintf(bodyf, sizeof(bodyf), "%s/body", E.dir);
    snprintf(hdrf, sizeof(hdrf), "%s/hdr", E.dir);
    snprintf(reqf, sizeof(reqf), "%s/req", E.dir);
    char *argv[32];
    int n = 0;
    argv[n++] = "curl";
    argv[n++] = "-sS";
    argv[n++] = "--path-as-is";
    argv[n++] = "-o";
    argv[n++] = bodyf;
    argv[n++] = "-D";
    argv[n++] = hdrf;
    argv[n++] = "-w";
    argv[n++] = "%{http_code}";
    argv[n++] = "-X";
    argv[n++] = (char *)method;
    argv[n++] = "-H";
    argv[n++] = "Expect:";
    if (tok != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
        argv[n++] = "-H";
        argv[n++] = auth;
    }
    if (ctype != NULL) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        argv[n++] = "-H";
        argv[n++] = ct;
    }
    if (extra_hdr != NULL) {
        argv[n++] = "-H";
        argv[n++] = (char *)extra_hdr;
    }
    if (body != NULL) {
        FILE *f = fopen(reqf, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(body, 1, len, f), len);
        fclose(f);
        snprintf(data, sizeof(data), "@%s", reqf);
        argv[n++] = "--data-binary";
        argv[n++] = data;
    }
    argv[n++] = url;
    argv[n] = NULL;
    struct resp r = {0};
    r.status = run_curl(argv);
    size_t hl;
    r.body = slurp(bodyf, &r.len);
    r.hdrs = slurp(hdrf, &hl);
    if (r.len > 0) {
        r.j = json_loadb(r.body, r.len, 0, NULL);
    }
    return r;
}

static struct resp req(const char *method, const char *path, const char *tok, const char *ctype,
                       const void *body, size_t len)
{
    return req_ex(method, path, tok, ctype, body, len, NULL);
}

/* JSON request; body is stolen. */
static struct resp reqj(const char *method, const char *path, const char *tok, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct resp r = req(method, path, tok, body != NULL ? "application/json" : NULL, text,
                        text != NULL ? strlen(text) : 0);
    free(text); /* test code: jansson's allocator */
    return r;
}

/* A response header's value (case-insensitive name), copied into a static buffer, or NULL. */
static const char *hdr(const struct resp *r, const char *name)
{
    static char val[512];
    size_t nl = strlen(name);
    for (const char *p = r->hdrs; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') {
                v++;
            }
            size_t vl = (size_t)(p + len - v);
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' ')) {
                vl--;
            }
            snprintf(val, sizeof(val), "%.*s", (int)vl, v);
            return val;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return NULL;
}

static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

static const char *jstr(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* A problem document with this status, as RFC 9457 wants it. */
static void assert_problem(const struct resp *r, int status)
{
    cr_assert_eq(r->status, status, "status %d, wanted %d: %.*s", r->status, status,
                 (int)(r->len > 300 ? 300 : r->len), r->body);
    const char *ct = hdr(r, "Content-Type");
    cr_assert(ct != NULL && strcmp(ct, "application/problem+json") == 0, "ct %s", ct);
    cr_assert_not_null(r->j, "problem body is not JSON");
    cr_assert_eq(json_integer_value(json_object_get(r->j, "status")), status);
    cr_assert_not_null(jstr(r->j, "type"));
    cr_assert_not_null(jstr(r->j, "title"));
    cr_assert_not_null(jstr(r->j, "detail"));
}

#define EXPECT(r, st)                                                                      \
    cr_assert_eq((r).status, (st), "%s:%d status %d, wanted %d: %.*s", __FILE__, __LINE__, \
                 (r).status, (st), (int)((r).len > 400 ? 400 : (r).len), (r).body)

/* ---- fixtures ---- */

struct tenant {
    char id[64];
    char token[TAM_TSTORE_TOKEN_LEN + 1];
    char path[96]; /* /v1/tenants/<id> */
};

static struct tenant make_tenant(const char *id, json_t *extra)
{
    struct tenant t = {0};
    json_t *b = json_pack("{s:s}", "id", id);
    if (extra != NULL) {
        json_object_update(b, extra);
        json_decref(extra);
    }
    struct resp r = reqj("POST", "/v1/tenants", E.op, b);
    EXPECT(r, 201);
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.token, sizeof(t.token), "%s", jstr(r.j, "token"));
    snprintf(t.path, sizeof(t.path), "/v1/tenants/%s", id);
    resp_free(&r);
    return t;
}

static char *vector_text(const char *name)
{
    size_t n;
    return tu_load_text(name, &n);
}

static redisReply *rq(const char *fmt, ...)
{
    redisContext *c = tu_redis_connect(&E.rs);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    cr_assert_not_null(r);
    return r;
}

static long long rint_(const char *fmt, const char *arg)
{
    redisReply *r = rq(fmt, arg);
    long long v = r->type == REDIS_REPLY_INTEGER  ? r->integer
                  : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                                  : 0;
    freeReplyObject(r);
    return v;
}

static void kid_hex_of(const char *pem, char out[65])
{
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_pem(pem, strlen(pem), &k), TAM_OK);
    tam_hex_encode(tam_key_kid(k), 32, out);
    tam_key_destroy(k);
}

static struct resp add_anchor(const struct tenant *t, const char *kind, const char *pem)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/trust-anchors", t->path);
    return reqj("POST", p, t->token, json_pack("{s:s, s:s}", "kind", kind, "public_pem", pem));
}

static struct resp upload_envelope(const struct tenant *t, const char *vector)
{
    size_t n;
    uint8_t *env = tu_load_hex(vector, &n);
    char p[160];
    snprintf(p, sizeof(p), "%s/components", t->path);
    struct resp r = req("POST", p, t->token, "application/suit-envelope+cose", env, n);
    tam_free(env);
    return r;
}

/* ---- tenants ---- */

TestSuite(admin, .init = setup, .fini = teardown);

Test(admin, tenant_lifecycle)
{
    struct resp r = reqj("POST", "/v1/tenants", E.op,
                         json_pack("{s:s, s:s, s:s, s:s}", "id", "acme", "numbering", "draft12",
                                   "attestation", "none", "enrollment", "registered"));
    EXPECT(r, 201);
    cr_assert_str_eq(hdr(&r, "Cache-Control"), "no-store");
    cr_assert_str_eq(hdr(&r, "Content-Type"), "application/json");
    cr_assert_str_eq(hdr(&r, "Location"), "/v1/tenants/acme");
    const char *tok = jstr(r.j, "token");
    cr_assert(tok != NULL && tam_tstore_token_syntax_ok(tok, strlen(tok)));
    char token[64];
    snprintf(token, sizeof(token), "%s", tok);
    cr_assert_str_eq(jstr(r.j, "tam_uri"), "/tam/acme");
    cr_assert_str_eq(jstr(r.j, "numbering"), "draft12");
    cr_assert(json_is_true(json_object_get(r.j, "legacy_alg_ids")));
    json_t *keys = json_object_get(r.j, "tam_keys");
    cr_assert_eq(json_array_size(keys), 2);
    /* Each public PEM imports and its kid is the RFC 9679 thumbprint. */
    for (size_t i = 0; i < 2; i++) {
        json_t *k = json_array_get(keys, i);
        char kid[65];
        kid_hex_of(jstr(k, "public_pem"), kid);
        cr_assert_str_eq(jstr(k, "kid"), kid);
    }
    cr_assert_str_eq(jstr(json_array_get(keys, 0), "alg"), "ES256");
    cr_assert_str_eq(jstr(json_array_get(keys, 1), "alg"), "EdDSA");
    cr_assert_eq(json_array_size(json_object_get(r.j, "manifest_keys")), 1);
    char kid0[65];
    snprintf(kid0, sizeof(kid0), "%s", jstr(json_array_get(keys, 0), "kid"));
    resp_free(&r);

    /* GET with the operator token and with the tenant's; no token in either. */
    r = req("GET", "/v1/tenants/acme", E.op, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_null(json_object_get(r.j, "token"));
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "tam_keys"), 0), "kid"), kid0);
    resp_free(&r);
    r = req("GET", "/v1/tenants/acme", token, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);

    /* The private keys are sealed under the KEK, never stored in the clear. */
    redisReply *h = rq("HGETALL tam:t:{acme}:keys");
    cr_assert_eq(h->elements, 12); /* p256, ed25519, manifest:p256 and their :pub */
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        cr_assert_not(contains(v->str, v->len, "PRIVATE"), "%s in clear", f->str);
        if (strcmp(f->str, "p256") == 0) {
            struct tam_key *k = NULL;
            cr_assert_eq(v->str[0], TAM_SEAL_V_KEK);
            cr_assert_eq(
                tam_unseal_key(E.kek, NULL, "acme", "p256", (const uint8_t *)v->str, v->len, &k),
                TAM_OK);
            char kid[65];
            tam_hex_encode(tam_key_kid(k), 32, kid);
            cr_assert_str_eq(kid, kid0);
            tam_key_destroy(k);
        }
        if (strcmp(f->str, "manifest:p256") == 0) {
            struct tam_key *k = NULL;
            cr_assert_eq(v->str[0], TAM_SEAL_V_WORKER);
            /* Only the workers' key opens it, not the KEK. */
            cr_assert_eq(tam_unseal_key(E.kek, NULL, "acme", "manifest:p256",
                                        (const uint8_t *)v->str, v->len, &k),
                         TAM_EKEY);
            cr_assert_eq(tam_unseal_key(NULL, E.worker, "acme", "manifest:p256",
                                        (const uint8_t *)v->str, v->len, &k),
                         TAM_OK);
            tam_key_destroy(k);
        }
    }
    freeReplyObject(h);
    /* The token is stored hashed. */
    uint8_t th[32];
    char thex[65];
    tam_tstore_token_hash(token, strlen(token), th);
    tam_hex_encode(th, 32, thex);
    cr_assert_eq(rint_("HEXISTS tam:t:{acme}:tokens %s", thex), 1);

    r = reqj("POST", "/v1/tenants", E.op, json_pack("{s:s}", "id", "acme"));
    assert_problem(&r, 409);
    resp_free(&r);
    struct tenant b = make_tenant("beta", NULL);
    r = req("GET", "/v1/tenants", E.op, NULL, NULL, 0);
    EXPECT(r, 200);
    json_t *list = json_object_get(r.j, "tenants");
    cr_assert_eq(json_array_size(list), 2);
    cr_assert_str_eq(jstr(json_array_get(list, 0), "id"), "acme");
    cr_assert_str_eq(jstr(json_array_get(list, 1), "id"), "beta");
    resp_free(&r);

    /* PATCH: numbering back to rfc drops the old algorithm ids; bad combinations fail. */
    r = reqj("PATCH", "/v1/tenants/acme", E.op,
             json_pack("{s:s, s:{s:i}}", "numbering", "rfc", "limits", "max_devices", 1));
    EXPECT(r, 200);
    cr_assert(json_is_false(json_object_get(r.j, "legacy_alg_ids")));
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.j, "limits"), "max_devices")),
                 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "tam_keys"), 0), "alg"), "ESP256");
    resp_free(&r);
    r = reqj("PATCH", "/v1/tenants/acme", E.op, json_pack("{s:b}", "legacy_alg_ids", 1));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("PATCH", "/v1/tenants/acme", E.op, json_pack("{s:i}", "bogus", 1));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("PATCH", "/v1/tenants/acme", E.op,
             json_pack("{s:{s:i}}", "limits", "challenge_len", 4));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("PATCH", "/v1/tenants/nope", E.op, json_pack("{s:s}", "numbering", "rfc"));
    assert_problem(&r, 404);
    resp_free(&r);

    /* DELETE removes every key of the tenant and its devices; its token stops working. */
    char *pem = vector_text("agent_p256.pub.pem");
    struct tenant a = {.id = "acme", .path = "/v1/tenants/acme"};
    snprintf(a.token, sizeof(a.token), "%.*s", TAM_TSTORE_TOKEN_LEN, token);
    r = reqj("POST", "/v1/tenants/acme/devices", token, json_pack("{s:s}", "public_pem", pem));
    EXPECT(r, 201);
    resp_free(&r);
    r = add_anchor(&a, "tc-signer", pem);
    EXPECT(r, 201);
    resp_free(&r);
    tam_free(pem);
    r = req("DELETE", "/v1/tenants/acme", E.op, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("GET", "/v1/tenants/acme", E.op, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    r = req("GET", "/v1/tenants/acme", token, NULL, NULL, 0);
    assert_problem(&r, 401);
    resp_free(&r);
    redisReply *k = rq("KEYS *acme*");
    cr_assert_eq(k->elements, 0, "left: %s", k->elements ? k->element[0]->str : "");
    freeReplyObject(k);
    cr_assert_eq(rint_("SISMEMBER tam:tenants %s", "acme"), 0);
    r = req("DELETE", "/v1/tenants/acme", E.op, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    /* The id can be used again. */
    (void)make_tenant("acme", NULL);
    (void)b;
}

Test(admin, tenant_imported_keys)
{
    char *p256 = vector_text("tam_p256.priv.pem"), *ed = vector_text("tam_ed25519.priv.pem");
    char kp[65], ke[65];
    kid_hex_of(p256, kp);
    kid_hex_of(ed, ke);
    struct resp r = reqj("POST", "/v1/tenants", E.op,
                         json_pack("{s:s, s:[s, s]}", "id", "imp", "tam_private_keys", ed, p256));
    EXPECT(r, 201);
    json_t *keys = json_object_get(r.j, "tam_keys");
    cr_assert_eq(json_array_size(keys), 2);
    cr_assert_str_eq(jstr(json_array_get(keys, 0), "kid"), kp);
    cr_assert_str_eq(jstr(json_array_get(keys, 1), "kid"), ke);
    cr_assert_not(contains(r.body, r.len, "PRIVATE"));
    resp_free(&r);
    /* Only the P-256 key: the tenant has just that one. */
    r = reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:[s], s:s}", "id", "imp2", "tam_private_keys", p256,
                       "manifest_private_key", ed));
    EXPECT(r, 201);
    cr_assert_eq(json_array_size(json_object_get(r.j, "tam_keys")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "manifest_keys"), 0), "kid"), ke);
    resp_free(&r);
    /* A public key, two keys of one type, garbage: refused, nothing stored. */
    char *pub = vector_text("agent_p256.pub.pem");
    r = reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:[s]}", "id", "bad", "tam_private_keys", pub));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:[s, s]}", "id", "bad", "tam_private_keys", p256, p256));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:[]}", "id", "bad", "tam_private_keys"));
    assert_problem(&r, 422);
    resp_free(&r);
    cr_assert_eq(rint_("EXISTS tam:t:{%s}:cfg", "bad"), 0);
    cr_assert_eq(rint_("SISMEMBER tam:tenants %s", "bad"), 0);
    tam_free(p256);
    tam_free(ed);
    tam_free(pub);
}

Test(admin, tenant_create_validation)
{
    static const char *const bad[] = {
        "{\"id\":\"UPPER\"}",
        "{\"id\":\"-dash\"}",
        "{\"id\":\"\"}",
        "{\"id\":\"a234567890123456789012345678901234567890123456789012345678901234\"}",
        "{\"id\":5}",
        "{}",
        "{\"id\":\"x\",\"numbering\":\"rfc9999\"}",
        "{\"id\":\"x\",\"attestation\":\"maybe\"}",
        "{\"id\":\"x\",\"enrollment\":\"attested\",\"attestation\":\"none\"}",
        "{\"id\":\"x\",\"limits\":{\"max_devices\":0}}",
        "{\"id\":\"x\",\"limits\":{\"unknown\":1}}",
        "{\"id\":\"x\",\"limits\":[]}",
        "{\"id\":\"x\",\"sign1_only\":\"yes\"}",
        "{\"id\":\"x\",\"extra\":1}",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(bad); i++) {
        struct resp r =
            req("POST", "/v1/tenants", E.op, "application/json", bad[i], strlen(bad[i]));
        assert_problem(&r, 422);
        resp_free(&r);
    }
    redisReply *k = rq("KEYS tam:t:*");
    cr_assert_eq(k->elements, 0);
    freeReplyObject(k);
    /* draft with legacy ids is fine, rfc with them is not. */
    struct resp r =
        reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:s, s:b}", "id", "d", "numbering", "draft", "legacy_alg_ids", 1));
    EXPECT(r, 201);
    resp_free(&r);
}

Test(admin, tokens_rotate_and_revoke)
{
    struct tenant t = make_tenant("rot", NULL);
    char p[128];
    snprintf(p, sizeof(p), "%s/tokens", t.path);
    struct resp r = req("POST", p, E.op, NULL, NULL, 0);
    EXPECT(r, 201);
    char second[64];
    snprintf(second, sizeof(second), "%s", jstr(r.j, "token"));
    resp_free(&r);
    r = req("GET", "/v1/tenants/rot/policy", second, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);
    r = req("GET", "/v1/tenants/rot/policy", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);
    r = req("DELETE", p, E.op, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("GET", "/v1/tenants/rot/policy", second, NULL, NULL, 0);
    assert_problem(&r, 401);
    resp_free(&r);
    r = req("GET", "/v1/tenants/rot/policy", t.token, NULL, NULL, 0);
    assert_problem(&r, 401);
    resp_free(&r);
}

/* ---- trust anchors ---- */

Test(admin, trust_anchors)
{
    struct tenant t = make_tenant("ta", NULL);
    char *pem = vector_text("suit_example_key_p256.pub.pem");
    char *priv = vector_text("suit_example_key_p256.priv.pem");
    char kid[65];
    kid_hex_of(pem, kid);
    struct resp r = add_anchor(&t, "tc-signer", pem);
    EXPECT(r, 201);
    cr_assert_str_eq(jstr(r.j, "kid"), kid);
    cr_assert_str_eq(jstr(r.j, "kind"), "tc-signer");
    resp_free(&r);
    r = add_anchor(&t, "tc-signer", pem);
    assert_problem(&r, 409);
    resp_free(&r);
    r = add_anchor(&t, "attester", pem);
    EXPECT(r, 201);
    resp_free(&r);
    /* A private key sent by mistake is refused and never stored. */
    r = add_anchor(&t, "verifier", priv);
    assert_problem(&r, 422);
    cr_assert_not(contains(r.body, r.len, "PRIVATE"));
    resp_free(&r);
    cr_assert_eq(rint_("EXISTS %s", "tam:t:{ta}:anchors:verifier"), 0);
    r = add_anchor(&t, "signer", pem);
    assert_problem(&r, 422);
    resp_free(&r);
    r = add_anchor(&t, "verifier", "not a pem");
    assert_problem(&r, 422);
    resp_free(&r);
    r = req("GET", "/v1/tenants/ta/trust-anchors", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "trust_anchors")), 2);
    resp_free(&r);
    char p[200];
    snprintf(p, sizeof(p), "/v1/tenants/ta/trust-anchors/attester/%s", kid);
    r = req("GET", p, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_str_eq(jstr(r.j, "kind"), "attester");
    resp_free(&r);
    r = req("DELETE", p, t.token, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("GET", p, t.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    cr_assert_eq(rint_("HEXISTS tam:t:{ta}:anchors:tc-signer %s", kid), 1);
    tam_free(pem);
    tam_free(priv);
}

/* ---- devices ---- */

Test(admin, devices)
{
    struct tenant t = make_tenant("dev", NULL);
    char *pem = vector_text("agent_p256.pub.pem");
    char kid[65];
    kid_hex_of(pem, kid);
    struct resp r = reqj("POST", "/v1/tenants/dev/devices", t.token,
                         json_pack("{s:s, s:[s, s]}", "public_pem", pem, "labels", "eu", "beta"));
    EXPECT(r, 201);
    cr_assert_str_eq(jstr(r.j, "kid"), kid);
    char loc[200];
    snprintf(loc, sizeof(loc), "/v1/tenants/dev/devices/%s", kid);
    cr_assert_str_eq(hdr(&r, "Location"), loc);
    resp_free(&r);
    /* The record is exactly what tamd and tam-worker read (keys.h). */
    char key[128];
    snprintf(key, sizeof(key), "tam:d:{dev:%s}", kid);
    redisReply *h = rq("HMGET %s type pub labels status created", key);
    cr_assert_str_eq(h->element[0]->str, "p256");
    cr_assert_eq(h->element[1]->len, 64);
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_pem(pem, strlen(pem), &k), TAM_OK);
    uint8_t raw[64];
    cr_assert_eq(tam_key_public_raw(k, raw), 64);
    cr_assert_eq(memcmp(h->element[1]->str, raw, 64), 0);
    cr_assert_str_eq(h->element[2]->str, "eu,beta");
    cr_assert_str_eq(h->element[3]->str, "registered");
    freeReplyObject(h);
    tam_key_destroy(k);
    cr_assert_eq(rint_("SISMEMBER tam:t:{dev}:devices %s", kid), 1);

    r = reqj("POST", "/v1/tenants/dev/devices", t.token, json_pack("{s:s}", "public_pem", pem));
    assert_problem(&r, 409);
    resp_free(&r);
    struct tam_key *ed = NULL;
    struct tam_buf edpem;
    tam_buf_init(&edpem, 4096);
    cr_assert_eq(tam_key_generate(TAM_KEY_ED25519, &ed), TAM_OK);
    cr_assert_eq(tam_key_public_pem(ed, &edpem), TAM_OK);
    cr_assert_eq(tam_buf_append(&edpem, "", 1), TAM_OK);
    r = reqj("POST", "/v1/tenants/dev/devices", t.token,
             json_pack("{s:s, s:[s]}", "public_pem", (char *)edpem.data, "labels", "us"));
    EXPECT(r, 201);
    cr_assert_str_eq(jstr(r.j, "key_type"), "ed25519");
    resp_free(&r);

    r = req("GET", loc, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_str_eq(jstr(r.j, "kid"), kid);
    cr_assert_str_eq(jstr(r.j, "status"), "registered");
    cr_assert_str_eq(jstr(json_object_get(r.j, "attestation"), "status"), "none");
    cr_assert_eq(json_array_size(json_object_get(r.j, "labels")), 2);
    cr_assert_eq(json_array_size(json_object_get(r.j, "installed")), 0);
    cr_assert(json_is_array(json_object_get(r.j, "history")));
    char kid2[65];
    kid_hex_of(jstr(r.j, "public_pem"), kid2);
    cr_assert_str_eq(kid2, kid);
    resp_free(&r);

    r = req("GET", "/v1/tenants/dev/devices", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "devices")), 2);
    cr_assert(json_is_null(json_object_get(r.j, "next_cursor")));
    resp_free(&r);
    r = req("GET", "/v1/tenants/dev/devices?label=eu", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "devices")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "devices"), 0), "kid"), kid);
    resp_free(&r);
    r = req("GET", "/v1/tenants/dev/devices?label=nowhere&limit=10", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "devices")), 0);
    resp_free(&r);
    r = req("GET", "/v1/tenants/dev/devices?limit=0", t.token, NULL, NULL, 0);
    assert_problem(&r, 400);
    resp_free(&r);
    r = req("GET", "/v1/tenants/dev/devices?sort=x", t.token, NULL, NULL, 0);
    assert_problem(&r, 400);
    resp_free(&r);

    /* Labels change; the tenant's device limit holds. */
    r = reqj("PATCH", loc, t.token, json_pack("{s:[s]}", "labels", "asia"));
    EXPECT(r, 200);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r.j, "labels"), 0)), "asia");
    resp_free(&r);
    r = reqj("PATCH", loc, t.token, json_pack("{s:[s]}", "labels", "a,b"));
    assert_problem(&r, 422);
    resp_free(&r);
    r = reqj("PATCH", "/v1/tenants/dev", E.op, json_pack("{s:{s:i}}", "limits", "max_devices", 2));
    EXPECT(r, 200);
    resp_free(&r);
    struct tam_key *third = NULL;
    struct tam_buf tp;
    tam_buf_init(&tp, 4096);
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &third), TAM_OK);
    cr_assert_eq(tam_key_public_pem(third, &tp), TAM_OK);
    cr_assert_eq(tam_buf_append(&tp, "", 1), TAM_OK);
    r = reqj("POST", "/v1/tenants/dev/devices", t.token,
             json_pack("{s:s}", "public_pem", (char *)tp.data));
    assert_problem(&r, 409);
    resp_free(&r);
    /* Validation. */
    r = reqj("POST", "/v1/tenants/dev/devices", t.token, json_pack("{s:s}", "public_pem", "x"));
    assert_problem(&r, 422);
    resp_free(&r);
    char *priv = vector_text("agent_p256.priv.pem");
    r = reqj("POST", "/v1/tenants/dev/devices", t.token, json_pack("{s:s}", "public_pem", priv));
    assert_problem(&r, 422);
    resp_free(&r);
    tam_free(priv);
    r = reqj("POST", "/v1/tenants/dev/devices", t.token,
             json_pack("{s:s, s:[s, s]}", "public_pem", (char *)tp.data, "labels", "x", "x"));
    assert_problem(&r, 422);
    resp_free(&r);

    r = req("DELETE", loc, t.token, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("GET", loc, t.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    r = req("DELETE", loc, t.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    cr_assert_eq(rint_("EXISTS %s", key), 0);
    tam_key_destroy(ed);
    tam_key_destroy(third);
    tam_buf_finish(&edpem);
    tam_buf_finish(&tp);
    tam_free(pem);
}

Test(admin, device_view_shows_worker_data)
{
    struct tenant t = make_tenant("view", NULL);
    char *pem = vector_text("agent_p256.pub.pem");
    char kid[65];
    kid_hex_of(pem, kid);
    struct resp r =
        reqj("POST", "/v1/tenants/view/devices", t.token, json_pack("{s:s}", "public_pem", pem));
    EXPECT(r, 201);
    resp_free(&r);
    /* What a worker writes after an attested Success (store.h codecs). */
    struct tam_plan_installed in = {.sequence = 3, .has_manifest_id = true};
    in.component.n = 2;
    in.component.seg[0] = tam_bytes_of("TEEP-Device", 11);
    in.component.seg[1] = tam_bytes_of("ta", 2);
    in.manifest_id.n = 1;
    in.manifest_id.seg[0] = tam_bytes_of("suit", 4);
    memset(in.digest, 0xab, 32);
    struct tam_buf inst, hist;
    tam_buf_init(&inst, 4096);
    tam_buf_init(&hist, 4096);
    cr_assert_eq(tam_store_installed_encode(&in, 1, &inst), TAM_OK);
    struct tam_store_history he = {.ms = 1700000000000ull, .event = "success", .installed = 1};
    cr_assert_eq(tam_store_history_encode(&he, &hist), TAM_OK);
    char key[128];
    snprintf(key, sizeof(key), "tam:d:{view:%s}", kid);
    redisReply *x = rq("HSET %s installed %b status attested last_seen 1700000000001 ueid 0102",
                       key, inst.data, inst.len);
    freeReplyObject(x);
    x = rq("LPUSH %s:hist %b", key, hist.data, hist.len);
    freeReplyObject(x);
    char p[200];
    snprintf(p, sizeof(p), "/v1/tenants/view/devices/%s", kid);
    r = req("GET", p, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    json_t *i0 = json_array_get(json_object_get(r.j, "installed"), 0);
    cr_assert_not_null(i0);
    cr_assert_eq(json_integer_value(json_object_get(i0, "sequence")), 3);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(i0, "component_id"), 1)),
                     "7461");
    cr_assert_str_eq(jstr(json_object_get(r.j, "attestation"), "status"), "verified");
    cr_assert_str_eq(jstr(json_object_get(r.j, "attestation"), "ueid"), "0102");
    cr_assert_eq(json_integer_value(json_object_get(r.j, "last_seen")), 1700000000001ll);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "history"), 0), "event"), "success");
    resp_free(&r);
    tam_buf_finish(&inst);
    tam_buf_finish(&hist);
    tam_free(pem);
}

/* ---- components ---- */

Test(admin, component_envelope_upload)
{
    struct tenant t = make_tenant("cat", NULL);
    size_t n;
    uint8_t *envb = tu_load_hex("teep_suit_uri.hex", &n);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(envb, n, &env, NULL), TAM_OK);
    uint8_t d[32];
    char dhex[65];
    tam_suit_manifest_digest(&env, d);
    tam_hex_encode(d, 32, dhex);

    /* No tc-signer anchor: refused, nothing stored, catalogue version unchanged. */
    long long v0 = rint_("GET %s", "tam:t:{cat}:catalog_version");
    struct resp r = upload_envelope(&t, "teep_suit_uri.hex");
    assert_problem(&r, 422);
    cr_assert_not_null(strstr(jstr(r.j, "detail"), "trusted TC signer"));
    resp_free(&r);
    cr_assert_eq(rint_("HLEN %s", "tam:t:{cat}:components"), 0);
    cr_assert_eq(rint_("GET %s", "tam:t:{cat}:catalog_version"), v0);
    /* The wrong anchor does not help. */
    char *agent = vector_text("agent_p256.pub.pem");
    r = add_anchor(&t, "tc-signer", agent);
    EXPECT(r, 201);
    resp_free(&r);
    r = upload_envelope(&t, "teep_suit_uri.hex");
    assert_problem(&r, 422);
    resp_free(&r);
    /* An attester anchor is not a TC signer. */
    char *suitpub = vector_text("suit_example_key_p256.pub.pem");
    r = add_anchor(&t, "attester", suitpub);
    EXPECT(r, 201);
    resp_free(&r);
    r = upload_envelope(&t, "teep_suit_uri.hex");
    assert_problem(&r, 422);
    resp_free(&r);
    cr_assert_eq(rint_("HLEN %s", "tam:t:{cat}:components"), 0);

    r = add_anchor(&t, "tc-signer", suitpub);
    EXPECT(r, 201);
    resp_free(&r);
    v0 = rint_("GET %s", "tam:t:{cat}:catalog_version");
    r = upload_envelope(&t, "teep_suit_uri.hex");
    EXPECT(r, 201);
    cr_assert_str_eq(jstr(r.j, "digest"), dhex);
    cr_assert_eq(json_integer_value(json_object_get(r.j, "sequence")), 3);
    json_t *cid = json_object_get(r.j, "component_id");
    cr_assert_eq(json_array_size(cid), 4);
    cr_assert_str_eq(json_string_value(json_array_get(cid, 0)), "544545502d446576696365");
    cr_assert_str_eq(json_string_value(json_array_get(cid, 3)), "7461");
    cr_assert_str_eq(
        json_string_value(json_array_get(json_object_get(r.j, "manifest_component_id"), 3)),
        "73756974");
    char ref[600], loc[800];
    snprintf(ref, sizeof(ref), "%s", jstr(r.j, "ref"));
    snprintf(loc, sizeof(loc), "/v1/tenants/cat/components/%s", ref);
    cr_assert_str_eq(hdr(&r, "Location"), loc);
    resp_free(&r);
    cr_assert_eq(rint_("GET %s", "tam:t:{cat}:catalog_version"), v0 + 1);
    /* Stored byte-exact in the store.h record. */
    redisReply *rec = rq("HGET tam:t:{cat}:components %s", ref);
    struct tam_store_component c;
    cr_assert_eq(tam_store_component_decode((const uint8_t *)rec->str, rec->len, &c, NULL), TAM_OK);
    cr_assert(tam_store_component_ready(&c));
    cr_assert_eq(c.envelope.len, n);
    cr_assert_eq(memcmp(c.envelope.ptr, envb, n), 0);
    cr_assert_eq(memcmp(c.digest, d, 32), 0);
    freeReplyObject(rec);

    r = upload_envelope(&t, "teep_suit_uri.hex");
    assert_problem(&r, 409);
    resp_free(&r);
    r = req("GET", "/v1/tenants/cat/components", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "components")), 1);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(r.j, "components"), 0), "ref"), ref);
    resp_free(&r);
    r = req("GET", loc, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_str_eq(jstr(r.j, "state"), "ready");
    cr_assert_str_eq(jstr(r.j, "kind"), "envelope");
    cr_assert_str_eq(jstr(r.j, "digest"), dhex);
    resp_free(&r);
    r = req_ex("GET", loc, t.token, NULL, NULL, 0, "Accept: application/suit-envelope+cose");
    EXPECT(r, 200);
    cr_assert_eq(r.len, n);
    cr_assert_eq(memcmp(r.body, envb, n), 0);
    resp_free(&r);
    char cidpath[800];
    snprintf(cidpath, sizeof(cidpath), "/v1/tenants/cat/components/%.*s", (int)strcspn(ref, "/"),
             ref);
    r = req("GET", cidpath, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_integer_value(json_array_get(json_object_get(r.j, "sequences"), 0)), 3);
    resp_free(&r);
    /* Malformed uploads. */
    r = req("POST", "/v1/tenants/cat/components", t.token, "application/suit-envelope+cose",
            "\xa1\x01\x02", 3);
    assert_problem(&r, 400);
    resp_free(&r);
    r = req("POST", "/v1/tenants/cat/components", t.token, "application/octet-stream", envb, n);
    assert_problem(&r, 415);
    resp_free(&r);
    /* A tampered manifest fails its digest. */
    uint8_t *bad = tam_malloc(n);
    memcpy(bad, envb, n);
    bad[n - 3] ^= 1;
    r = req("POST", "/v1/tenants/cat/components", t.token, "application/suit-envelope+cose", bad,
            n);
    cr_assert(r.status == 422 || r.status == 400, "%d", r.status);
    resp_free(&r);
    tam_free(bad);

    char seqpath[900];
    snprintf(seqpath, sizeof(seqpath), "%s", loc);
    r = req("DELETE", seqpath, t.token, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("GET", seqpath, t.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    r = upload_envelope(&t, "teep_suit_uri.hex");
    EXPECT(r, 201);
    resp_free(&r);
    r = req("DELETE", cidpath, t.token, NULL, NULL, 0);
    EXPECT(r, 204);
    resp_free(&r);
    r = req("DELETE", cidpath, t.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    cr_assert_eq(rint_("HLEN %s", "tam:t:{cat}:components"), 0);
    tam_free(envb);
    tam_free(agent);
    tam_free(suitpub);
}

static json_t *built_body(void)
{
    return json_pack("{s:[s, s], s:i, s:s, s:s, s:s, s:s}", "component_id",
                     "544545502d446576696365", "7462", "sequence", 7, "delivery", "integrated",
                     "binary", "aGVsbG8gdGM=", "vendor_id", "c0ddd5f15243566087db4f5b0aa26c2f",
                     "class_id", "db42f7093d8c55baa8c5265fc5820f4e");
}

Test(admin, component_tam_built)
{
    struct tenant t = make_tenant("built", NULL);
    struct resp r = reqj("POST", "/v1/tenants/built/components", t.token, built_body());
    EXPECT(r, 201);
    cr_assert(json_is_null(json_object_get(r.j, "digest")));
    cr_assert_str_eq(jstr(r.j, "state"), "pending");
    uint8_t d[32];
    char dhex[65];
    tam_sha256("hello tc", 8, d);
    tam_hex_encode(d, 32, dhex);
    cr_assert_str_eq(jstr(r.j, "image_digest"), dhex);
    char ref[600];
    snprintf(ref, sizeof(ref), "%s", jstr(r.j, "ref"));
    resp_free(&r);
    redisReply *rec = rq("HGET tam:t:{built}:components %s", ref);
    struct tam_store_component c;
    cr_assert_eq(tam_store_component_decode((const uint8_t *)rec->str, rec->len, &c, NULL), TAM_OK);
    cr_assert_not(tam_store_component_ready(&c));
    cr_assert_eq(c.binary.len, 8);
    cr_assert_eq(c.delivery, TAM_STORE_DELIVERY_INTEGRATED);
    cr_assert(c.has_vendor_id && c.has_class_id);
    cr_assert_eq(c.sequence, 7);
    freeReplyObject(rec);
    char p[800];
    snprintf(p, sizeof(p), "/v1/tenants/built/components/%s", ref);
    r = req("GET", p, t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_str_eq(jstr(r.j, "kind"), "tam-built");
    cr_assert_str_eq(jstr(r.j, "delivery"), "integrated");
    cr_assert_eq(json_integer_value(json_object_get(r.j, "binary_size")), 8);
    resp_free(&r);
    r = req_ex("GET", p, t.token, NULL, NULL, 0, "Accept: application/suit-envelope+cose");
    assert_problem(&r, 404);
    resp_free(&r);

    static const char *const bad[] = {
        "{\"component_id\":[\"00\"],\"sequence\":1,\"binary\":\"AA==\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"uri\",\"binary\":\"AA==\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"*\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"\"}",
        "{\"component_id\":[\"0\"],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"AA\"}",
        "{\"component_id\":[],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"AA\"}",
        "{\"component_id\":[\"00\"],\"sequence\":-1,\"delivery\":\"integrated\",\"binary\":\"AA\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"AA\","
        "\"vendor_id\":\"00\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"integrated\",\"binary\":\"AA\","
        "\"color\":\"red\"}",
        "{\"component_id\":[\"00\"],\"sequence\":1,\"delivery\":\"uri\",\"uri\":\"a b\","
        "\"binary\":\"AA\"}",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(bad); i++) {
        r = req("POST", "/v1/tenants/built/components", t.token, "application/json", bad[i],
                strlen(bad[i]));
        assert_problem(&r, 422);
        resp_free(&r);
    }
    cr_assert_eq(rint_("HLEN %s", "tam:t:{built}:components"), 1);
}

Test(admin_nokey, component_tam_built_needs_a_manifest_key, .init = setup_no_worker,
     .fini = teardown)
{
    struct tenant t = make_tenant("nokey", NULL);
    struct resp r = req("GET", "/v1/tenants/nokey", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "manifest_keys")), 0);
    resp_free(&r);
    r = reqj("POST", "/v1/tenants/nokey/components", t.token, built_body());
    assert_problem(&r, 422);
    resp_free(&r);
    cr_assert_eq(rint_("HLEN %s", "tam:t:{nokey}:components"), 0);
    /* Importing a manifest key needs the workers' key to seal it. */
    char *ed = vector_text("tam_ed25519.priv.pem");
    r = reqj("POST", "/v1/tenants", E.op,
             json_pack("{s:s, s:s}", "id", "m", "manifest_private_key", ed));
    assert_problem(&r, 422);
    resp_free(&r);
    tam_free(ed);
}

/* ---- policy ---- */

Test(admin, policy)
{
    struct tenant t = make_tenant("pol", NULL);
    struct resp r = req("GET", "/v1/tenants/pol/policy", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "rules")), 0);
    resp_free(&r);
    const char *doc =
        "{ \"rules\": [ {\"match\": {}, \"install\": [{\"component_id\": [\"00\", \"7461\"],"
        " \"min_sequence\": 2}]},"
        " {\"match\": {\"labels\": [\"beta\"]}, \"remove\": [{\"component_id\": [\"01\"]}]},"
        " {\"match\": {\"device\": \""
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        "\"}, \"install\": [{\"component_id\": [\"02\"]}]} ] }";
    long long v0 = rint_("GET %s", "tam:t:{pol}:catalog_version");
    r = req("PUT", "/v1/tenants/pol/policy", t.token, "application/json", doc, strlen(doc));
    EXPECT(r, 200);
    char stored[4096];
    snprintf(stored, sizeof(stored), "%.*s", (int)r.len, r.body);
    resp_free(&r);
    cr_assert_eq(rint_("GET %s", "tam:t:{pol}:catalog_version"), v0 + 1);
    r = req("GET", "/v1/tenants/pol/policy", t.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(r.len, strlen(stored));
    cr_assert_eq(memcmp(r.body, stored, r.len), 0);
    cr_assert_eq(json_array_size(json_object_get(r.j, "rules")), 3);
    resp_free(&r);
    /* What is stored is what the workers parse. */
    redisReply *p = rq("GET tam:t:{pol}:policy");
    struct tam_arena arena;
    tam_arena_init(&arena, 4096, 1 << 20);
    struct tam_store_policy pol;
    char why[256];
    cr_assert_eq(tam_store_policy_parse(p->str, p->len, &arena, &pol, why, sizeof(why)), TAM_OK,
                 "%s", why);
    cr_assert_eq(pol.plan.n_rules, 3);
    tam_arena_finish(&arena);
    freeReplyObject(p);

    static const char *const invalid[] = {
        "{\"rules\": [{\"match\": {\"device\": \"abc\"}}]}",
        "{\"rules\": [{\"install\": [{\"component_id\": [\"00\"], \"min_sequence\": -1}]}]}",
        "{\"rules\": [{\"install\": [{\"component_id\": [\"zz\"]}]}]}",
        "{\"rules\": [{\"install\": [{\"component_id\": \"00\"}]}]}",
        "{\"rules\": [{\"match\": {\"labels\": [\"a\"], \"device\": \"00\"}}]}",
        "{\"rules\": [{\"matches\": {}}]}",
        "{\"rules\": {}}",
        "[]",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(invalid); i++) {
        r = req("PUT", "/v1/tenants/pol/policy", t.token, "application/json", invalid[i],
                strlen(invalid[i]));
        assert_problem(&r, 422);
        resp_free(&r);
    }
    r = req("PUT", "/v1/tenants/pol/policy", t.token, "application/json", "{\"rules\": [", 11);
    assert_problem(&r, 400);
    resp_free(&r);
    r = req("PUT", "/v1/tenants/pol/policy", t.token, "text/plain", "{}", 2);
    assert_problem(&r, 415);
    resp_free(&r);
    cr_assert_eq(rint_("GET %s", "tam:t:{pol}:catalog_version"), v0 + 1);
    r = req("GET", "/v1/tenants/pol/policy", t.token, NULL, NULL, 0);
    cr_assert_eq(memcmp(r.body, stored, r.len), 0);
    resp_free(&r);
}

/* ---- isolation ---- */

struct call {
    const char *method;
    char path[1024];
    const char *ctype;
    char *body; /* owned */
    size_t len;
    enum { OP, TEN, EITHER } scope;
    int ok; /* the status the right token gets */
};

static void call_json(struct call *c, json_t *j)
{
    c->body = json_dumps(j, JSON_COMPACT);
    c->len = strlen(c->body);
    c->ctype = "application/json";
    json_decref(j);
}

static struct call *add_call(struct call *calls, size_t *n, const char *method, int scope, int ok,
                             const char *fmt, ...) TAM_PRINTF(6, 7);

static struct call *add_call(struct call *calls, size_t *n, const char *method, int scope, int ok,
                             const char *fmt, ...)
{
    struct call *c = &calls[(*n)++];
    c->method = method;
    c->scope = scope;
    c->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->path, sizeof(c->path), fmt, ap);
    va_end(ap);
    return c;
}

static void check_call(const struct call *c, const struct tenant *a, const struct tenant *b)
{
    char wrong[TAM_TSTORE_TOKEN_LEN + 1];
    uint8_t h[32];
    cr_assert_eq(tam_tstore_token_new(wrong, h), TAM_OK);
    struct resp r = req(c->method, c->path, NULL, c->ctype, c->body, c->len);
    assert_problem(&r, 401);
    cr_assert_not_null(hdr(&r, "WWW-Authenticate"));
    cr_assert_eq(strncmp(hdr(&r, "WWW-Authenticate"), "Bearer", 6), 0);
    resp_free(&r);
    r = req(c->method, c->path, wrong, c->ctype, c->body, c->len);
    assert_problem(&r, 401);
    resp_free(&r);
    r = req(c->method, c->path, "not-a-token", c->ctype, c->body, c->len);
    assert_problem(&r, 401);
    resp_free(&r);
    /* Another tenant's valid token. */
    r = req(c->method, c->path, b->token, c->ctype, c->body, c->len);
    assert_problem(&r, 403);
    resp_free(&r);
    if (c->scope == TEN) {
        r = req(c->method, c->path, E.op, c->ctype, c->body, c->len);
        assert_problem(&r, 403);
        resp_free(&r);
    }
    if (c->scope == OP) {
        r = req(c->method, c->path, a->token, c->ctype, c->body, c->len);
        assert_problem(&r, 403);
        resp_free(&r);
    }
    const char *right = c->scope == OP ? E.op : a->token;
    r = req(c->method, c->path, right, c->ctype, c->body, c->len);
    cr_assert_eq(r.status, c->ok, "%s %s: %d, wanted %d: %.*s", c->method, c->path, r.status, c->ok,
                 (int)r.len, r.body);
    resp_free(&r);
    if (c->scope == EITHER) {
        r = req(c->method, c->path, E.op, c->ctype, c->body, c->len);
        cr_assert_eq(r.status, c->ok);
        resp_free(&r);
    }
}

Test(admin, isolation_matrix)
{
    struct tenant a = make_tenant("ta", NULL);
    struct tenant b = make_tenant("tb", NULL);
    char *agent = vector_text("agent_p256.pub.pem"),
         *suit = vector_text("suit_example_key_p256.pub.pem");
    char dkid[65], skid[65];
    kid_hex_of(agent, dkid);
    kid_hex_of(suit, skid);
    /* B gets the same device key and anchor: ids collide across tenants, data must not. */
    struct resp r =
        reqj("POST", "/v1/tenants/tb/devices", b.token, json_pack("{s:s}", "public_pem", agent));
    EXPECT(r, 201);
    resp_free(&r);
    r = add_anchor(&b, "tc-signer", suit);
    EXPECT(r, 201);
    resp_free(&r);
    r = upload_envelope(&b, "teep_suit_uri.hex");
    EXPECT(r, 201);
    char ref[600];
    snprintf(ref, sizeof(ref), "%s", jstr(r.j, "ref"));
    resp_free(&r);
    size_t envn;
    uint8_t *env = tu_load_hex("teep_suit_uri.hex", &envn);

    struct call calls[32];
    size_t n = 0;
    memset(calls, 0, sizeof(calls));
    add_call(calls, &n, "GET", OP, 200, "/v1/tenants");
    call_json(add_call(calls, &n, "POST", OP, 201, "/v1/tenants"), json_pack("{s:s}", "id", "tc"));
    add_call(calls, &n, "GET", EITHER, 200, "/v1/tenants/ta");
    call_json(add_call(calls, &n, "PATCH", OP, 200, "/v1/tenants/ta"),
              json_pack("{s:b}", "sign1_only", 1));
    call_json(add_call(calls, &n, "POST", TEN, 201, "/v1/tenants/ta/trust-anchors"),
              json_pack("{s:s, s:s}", "kind", "tc-signer", "public_pem", suit));
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/trust-anchors");
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/trust-anchors/tc-signer/%s", skid);
    call_json(add_call(calls, &n, "POST", TEN, 201, "/v1/tenants/ta/devices"),
              json_pack("{s:s, s:[s]}", "public_pem", agent, "labels", "l"));
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/devices");
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/devices?label=l");
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/devices/%s", dkid);
    call_json(add_call(calls, &n, "PATCH", TEN, 200, "/v1/tenants/ta/devices/%s", dkid),
              json_pack("{s:[s]}", "labels", "m"));
    struct call *up = add_call(calls, &n, "POST", TEN, 201, "/v1/tenants/ta/components");
    up->body = (char *)env;
    up->len = envn;
    up->ctype = "application/suit-envelope+cose";
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/components");
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/components/%.*s", (int)strcspn(ref, "/"),
             ref);
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/components/%s", ref);
    call_json(add_call(calls, &n, "PUT", TEN, 200, "/v1/tenants/ta/policy"),
              json_pack("{s:[]}", "rules"));
    add_call(calls, &n, "GET", TEN, 200, "/v1/tenants/ta/policy");
    add_call(calls, &n, "DELETE", TEN, 204, "/v1/tenants/ta/components/%s", ref);
    struct call *up2 = add_call(calls, &n, "POST", TEN, 201, "/v1/tenants/ta/components");
    up2->body = (char *)env;
    up2->len = envn;
    up2->ctype = "application/suit-envelope+cose";
    add_call(calls, &n, "DELETE", TEN, 204, "/v1/tenants/ta/components/%.*s",
             (int)strcspn(ref, "/"), ref);
    add_call(calls, &n, "DELETE", TEN, 204, "/v1/tenants/ta/trust-anchors/tc-signer/%s", skid);
    add_call(calls, &n, "DELETE", TEN, 204, "/v1/tenants/ta/devices/%s", dkid);
    add_call(calls, &n, "POST", OP, 201, "/v1/tenants/ta/tokens");
    add_call(calls, &n, "DELETE", OP, 204, "/v1/tenants/tc/tokens");
    add_call(calls, &n, "DELETE", OP, 204, "/v1/tenants/ta");
    for (size_t i = 0; i < n; i++) {
        check_call(&calls[i], &a, &b);
    }
    /* B's data survived every call made on A's paths with every token. */
    char p[800];
    snprintf(p, sizeof(p), "/v1/tenants/tb/devices/%s", dkid);
    r = req("GET", p, b.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert_eq(json_array_size(json_object_get(r.j, "labels")), 0);
    resp_free(&r);
    snprintf(p, sizeof(p), "/v1/tenants/tb/components/%s", ref);
    r = req("GET", p, b.token, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);
    r = req("GET", "/v1/tenants/tb", b.token, NULL, NULL, 0);
    EXPECT(r, 200);
    cr_assert(json_is_false(json_object_get(r.j, "sign1_only")));
    resp_free(&r);
    for (size_t i = 0; i < n; i++) {
        if (calls[i].body != (char *)env) {
            free(calls[i].body); /* test code: jansson's allocator */
        }
    }
    tam_free(env);
    tam_free(agent);
    tam_free(suit);
}

Test(admin, path_escapes)
{
    struct tenant a = make_tenant("pa", NULL);
    struct tenant b = make_tenant("pb", NULL);
    char *agent = vector_text("agent_p256.pub.pem");
    char kid[65];
    kid_hex_of(agent, kid);
    struct resp r =
        reqj("POST", "/v1/tenants/pa/devices", a.token, json_pack("{s:s}", "public_pem", agent));
    EXPECT(r, 201);
    resp_free(&r);
    static const struct {
        const char *path;
        int status;
    } cases[] = {
        {"/v1/tenants/pb/../pa/devices", 400},
        {"/v1/tenants/pa/devices/../../pb/devices", 400},
        {"/v1/tenants/./pa/devices", 400},
        {"/v1/tenants/pa%2Fdevices", 400},
        {"/v1/tenants/%70%61/devices", 400},
        {"/v1/tenants/pa%2f..%2fpb/devices", 400},
        {"/v1/tenants//pa/devices", 400},
        {"/v1/tenants/pa/devices/", 400},
        {"/v1/tenants/PA/devices", 404},
        {"/v1/tenants/p.a/devices", 404},
        {"/v1/tenants/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/devices",
         404},
        {"/v1/tenants/pa/devices/0123", 404},
        {"/v1/tenants/pa/devices/zz23456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
         404},
        {"/v1/tenants/pa/components/zz/1", 404},
        {"/v1/tenants/pa/components/8100/01", 404},
        {"/v1/tenants/pa/trust-anchors/root/00", 404},
        {"/v1/tenants/pa/nothing", 404},
        {"/v1/tenants/pa/devices/a/b/c/d/e/f/g/h", 404},
        {"/v1", 404},
        {"/v1/", 400},
        {"/v2/tenants", 404},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(cases); i++) {
        r = req("GET", cases[i].path, a.token, NULL, NULL, 0);
        if (strncmp(cases[i].path, "/v2", 3) == 0) {
            cr_assert_eq(r.status, 404, "%s", cases[i].path);
        } else {
            assert_problem(&r, cases[i].status);
        }
        resp_free(&r);
    }
    /* Another tenant's resources through one's own token: 403, never data. */
    char p[200];
    snprintf(p, sizeof(p), "/v1/tenants/pb/devices/%s", kid);
    r = req("GET", p, a.token, NULL, NULL, 0);
    assert_problem(&r, 403);
    resp_free(&r);
    r = req("GET", p, b.token, NULL, NULL, 0);
    assert_problem(&r, 404);
    resp_free(&r);
    /* Upper-case kids name the same device. */
    char up[65];
    for (int i = 0; i < 64; i++) {
        up[i] = (char)(kid[i] >= 'a' ? kid[i] - 32 : kid[i]);
    }
    up[64] = '\0';
    snprintf(p, sizeof(p), "/v1/tenants/pa/devices/%s", up);
    r = req("GET", p, a.token, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);
    /* Method not allowed, with Allow. */
    r = req("PUT", "/v1/tenants/pa/devices", a.token, NULL, NULL, 0);
    assert_problem(&r, 405);
    cr_assert_str_eq(hdr(&r, "Allow"), "GET, POST");
    resp_free(&r);
    tam_free(agent);
}

Test(admin, malformed_and_oversized_bodies)
{
    struct tenant t = make_tenant("mal", NULL);
    static const char *const bad[] = {
        "{", "[1,2]", "\"x\"", "{\"id\":\"a\",\"id\":\"b\"}", "{\"id\":\"\xff\xfe\"}",
        "",  "nul\0l"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(bad); i++) {
        struct resp r = req("POST", "/v1/tenants", E.op, "application/json", bad[i],
                            i == 6 ? 5 : strlen(bad[i]));
        assert_problem(&r, 400);
        resp_free(&r);
    }
    struct resp r = req("POST", "/v1/tenants", E.op, "text/plain", "{}", 2);
    assert_problem(&r, 415);
    resp_free(&r);
    r = req("POST", "/v1/tenants", E.op, NULL, "{}", 2);
    assert_problem(&r, 415);
    resp_free(&r);
    /* Over an endpoint's limit: a problem document; nothing stored. */
    size_t big = 100u << 10;
    char *body = tam_malloc(big + 64);
    int n = snprintf(body, 64, "{\"public_pem\":\"");
    memset(body + n, 'A', big);
    memcpy(body + n + big, "\"}", 3);
    r = req("POST", "/v1/tenants/mal/devices", t.token, "application/json", body, strlen(body));
    assert_problem(&r, 413);
    resp_free(&r);
    tam_free(body);
    size_t huge = (1u << 20) + 100;
    body = tam_malloc(huge);
    memset(body, ' ', huge);
    body[0] = '{';
    body[huge - 1] = '}';
    r = req("PUT", "/v1/tenants/mal/policy", t.token, "application/json", body, huge);
    assert_problem(&r, 413);
    resp_free(&r);
    tam_free(body);
    cr_assert_eq(rint_("SCARD %s", "tam:t:{mal}:devices"), 0);
    cr_assert_eq(rint_("EXISTS %s", "tam:t:{mal}:policy"), 0);
    /* Deeply nested JSON does not crash. */
    size_t depth = 20000;
    body = tam_malloc(2 * depth + 1);
    memset(body, '[', depth);
    memset(body + depth, ']', depth);
    r = req("POST", "/v1/tenants/mal/devices", t.token, "application/json", body, 2 * depth);
    cr_assert(r.status == 400 || r.status == 413, "%d", r.status);
    resp_free(&r);
    tam_free(body);
}

Test(admin, redis_unavailable)
{
    struct tenant t = make_tenant("down", NULL);
    tu_redis_kill(&E.rs, SIGKILL);
    struct resp r = req("GET", "/v1/tenants/down", t.token, NULL, NULL, 0);
    assert_problem(&r, 503);
    resp_free(&r);
}

struct ensured {
    bool done;
    int err;
    bool created;
};

static void on_ensured(void *arg, int err, const char *token)
{
    struct ensured *e = arg;
    e->done = true;
    e->err = err;
    e->created = token != NULL;
}

Test(admin, operator_token_ensure_and_replace)
{
    /* A second process's ensure finds the token and creates none. */
    uv_loop_t loop;
    struct tam_redis *rc = NULL;
    struct ensured en = {0};
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(tam_redis_create(&loop, E.rs.addr, NULL, NULL, NULL, &rc), TAM_OK);
    for (int i = 0; i < 500 && !tam_redis_connected(rc); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    cr_assert_eq(tam_tstore_operator_ensure(rc, on_ensured, &en), TAM_OK);
    while (!en.done) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cr_assert_eq(en.err, TAM_OK);
    cr_assert_not(en.created);
    tam_redis_destroy(rc);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    redisContext *c = tu_redis_connect(&E.rs);
    redisReply *r0 = redisCommand(c, "HLEN %s", TAM_KEY_OPERATOR);
    cr_assert_eq(r0->integer, 1);
    freeReplyObject(r0);
    char fresh[TAM_TSTORE_TOKEN_LEN + 1];
    uint8_t h[32];
    cr_assert_eq(tam_tstore_token_new(fresh, h), TAM_OK);
    cr_assert_eq(tam_tstore_operator_set_sync(c, "short", false, 1), TAM_EINVAL);
    cr_assert_eq(tam_tstore_operator_set_sync(c, fresh, true, 1), TAM_OK);
    redisFree(c);
    struct resp r = req("GET", "/v1/tenants", E.op, NULL, NULL, 0);
    assert_problem(&r, 401);
    resp_free(&r);
    r = req("GET", "/v1/tenants", fresh, NULL, NULL, 0);
    EXPECT(r, 200);
    resp_free(&r);
}
