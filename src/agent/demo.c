/*
 * Demo mode (`tam-agent demo`, what `tamd --demo` runs): sets up a demo tenant through the
 * admin API, as a Service Provider would, then drives the simulated fleet against it.
 *
 *   1. waits for the admin listener (/readyz);
 *   2. with the operator token (DATA_DIR/operator.token) creates tenant `demo` (attestation
 *      required, registered devices) and keeps its token in DATA_DIR/demo.token (0600);
 *      on a later start the tenant and that file are reused;
 *   3. trusts a demo TC signer and the fleet's attester (keys in DATA_DIR, created once);
 *   4. uploads one signed TC per SUIT scenario of TEEP (payload fetched by URI from the
 *      demo's own payload server, payload integrated in the envelope, payload as
 *      parameter content) and a policy installing all three on every device;
 *   5. runs `load` with enrolled devices (a fixed seed: the same fleet on every start),
 *      prints the report and a summary, and with --keep-serving keeps the payload server
 *      up until SIGTERM/SIGINT, so devices that come later can still fetch.
 * Every step is idempotent (409 "exists" is success), so a restarted tamd --demo works.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/seal.h"
#include "tam/suit.h"
#include "tool.h"

#define DEMO_TENANT     "demo"
#define DEMO_SEED       "tamgate-demo"
#define DEMO_WAIT_MS    30000
#define DEMO_PATH_MAX   4096
#define DEMO_TOKEN_MAX  256
#define DEMO_VENDOR     "tamgate-demo"
#define DEMO_SCENARIOS  3
#define DEMO_JSON_LIMIT (1u << 20)

struct demo_tc {
    const char *name; /* the component id's middle segment */
    enum tam_suit_build_kind kind;
    const char *payload;
};

static const struct demo_tc demo_tcs[DEMO_SCENARIOS] = {
    {"hello-uri", TAM_SUIT_BUILD_URI, "Hello from tamgate: fetched by URI.\n"},
    {"hello-integrated", TAM_SUIT_BUILD_INTEGRATED, "Hello from tamgate: integrated payload.\n"},
    {"hello-config", TAM_SUIT_BUILD_CONTENT, "{\"greeting\": \"personalization data\"}\n"},
};

struct demo {
    uv_loop_t loop;
    const struct ag_opts *o;
    struct tam_httpc_pool *pool;
    char base[TAM_HTTPC_PATH_MAX];
    char op_auth[DEMO_TOKEN_MAX + 8];
    char t_auth[DEMO_TOKEN_MAX + 8];
    char paths[4][DEMO_PATH_MAX]; /* token, signer pub, attester, payload base URL */
    struct tam_key *signer;
    /* The payload server, on its own thread and loop (the load run has its own loop). */
    uv_thread_t thread;
    uv_loop_t ploop;
    uv_async_t pstop;
    struct tam_http_server *psrv;
    bool pthread_started;
};

enum { P_TOKEN = 0, P_SIGNER_PUB, P_ATTESTER, P_PAYLOAD_URL };

/* ---- files ---- */

static int write_file_0600(const char *path, const void *data, size_t len, bool exclusive)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC),
                  0600);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    int err = write(fd, data, len) == (ssize_t)len ? TAM_OK : TAM_ERRNO(EIO);
    if (close(fd) != 0 && err == TAM_OK) {
        err = TAM_ERRNO(errno);
    }
    return err;
}

static int read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return TAM_ERRNO(errno);
    }
    bool ok = fgets(out, (int)cap, f) != NULL;
    (void)fclose(f);
    out[ok ? strcspn(out, "\r\n \t") : 0] = '\0';
    return out[0] != '\0' ? TAM_OK : TAM_EINVAL;
}

/* A private P-256 key kept in DATA_DIR/name: created on first use, then reused. */
static int demo_key(const char *dir, const char *name, char *path, size_t cap,
                    struct tam_key **out)
{
    int n = snprintf(path, cap, "%s/%s", dir, name);
    if (n <= 0 || (size_t)n >= cap) {
        return TAM_EINVAL;
    }
    int err = tam_key_file_load(path, false, out);
    if (err != TAM_ERRNO(ENOENT)) {
        return err;
    }
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    err = tam_key_generate(TAM_KEY_P256, out);
    err = err == TAM_OK ? tam_key_private_pem(*out, &pem) : err;
    err = err == TAM_OK ? write_file_0600(path, pem.data, pem.len, true) : err;
    if (pem.data != NULL) {
        tam_memzero(pem.data, pem.len);
    }
    tam_buf_finish(&pem);
    return err;
}

static int public_pem_text(const struct tam_key *k, struct tam_buf *pem)
{
    int err = tam_key_public_pem(k, pem);
    return err == TAM_OK ? tam_buf_append(pem, "", 1) : err;
}

/* ---- the admin API, one request at a time ---- */

struct call {
    bool done;
    int err;
    int status;
    json_t *json;
};

static void on_call(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct call *c = arg;
    c->err = err;
    c->status = err == TAM_OK ? resp->status : 0;
    if (err == TAM_OK && resp->body.len > 0 && resp->body.len < DEMO_JSON_LIMIT) {
        c->json = json_loadb((const char *)resp->body.ptr, resp->body.len, 0, NULL);
    }
    c->done = true;
}

/* Sends one request and runs the loop until its answer; the status, or -1 (transport). */
static int call(struct demo *d, const char *method, const char *path, const char *auth,
                const char *ctype, const void *body, size_t len, json_t **json)
{
    char full[TAM_HTTPC_PATH_MAX + 256];
    (void)snprintf(full, sizeof(full), "%s%s", d->base, path);
    struct tam_httpc_header h[3] = {{"Accept", "application/json, application/problem+json"}};
    size_t nh = 1;
    if (auth != NULL) {
        h[nh++] = (struct tam_httpc_header){"Authorization", auth};
    }
    if (ctype != NULL) {
        h[nh++] = (struct tam_httpc_header){"Content-Type", ctype};
    }
    struct tam_httpc_req req = {.method = method,
                                .path = full,
                                .headers = h,
                                .n_headers = nh,
                                .body = tam_bytes_of(body, len)};
    struct call c = {0};
    if (tam_httpc_request(d->pool, &req, on_call, &c) != TAM_OK) {
        return -1;
    }
    ag_run_until(&d->loop, &c.done);
    if (json != NULL) {
        *json = c.json;
    } else {
        json_decref(c.json);
    }
    return c.err == TAM_OK ? c.status : -1;
}

/* A JSON call that must answer one of two statuses; prints the problem otherwise. */
static int call_json(struct demo *d, const char *method, const char *path, const char *auth,
                     json_t *body, int ok1, int ok2, json_t **out)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *ans = NULL;
    int st = call(d, method, path, auth, text != NULL ? "application/json" : NULL, text,
                  text != NULL ? strlen(text) : 0, &ans);
    free(text); /* allocated by jansson */
    json_decref(body);
    if (st != ok1 && st != ok2) {
        const char *detail = json_string_value(json_object_get(ans, "detail"));
        fprintf(stderr, "tam-agent demo: %s %s: HTTP %d%s%s\n", method, path, st,
                detail != NULL ? ": " : "", detail != NULL ? detail : "");
        json_decref(ans);
        return TAM_EPROTO;
    }
    if (out != NULL) {
        *out = ans;
    } else {
        json_decref(ans);
    }
    return st == ok1 ? TAM_OK : 1;
}

static int wait_ready(struct demo *d)
{
    for (unsigned waited = 0; waited < DEMO_WAIT_MS; waited += 200) {
        if (call(d, "GET", "/readyz", NULL, NULL, NULL, 0, NULL) == 200) {
            return TAM_OK;
        }
        uv_sleep(200);
    }
    fprintf(stderr, "tam-agent demo: the admin API at %s is not ready\n", d->o->admin_url);
    return TAM_EUNAVAIL;
}

/* ---- steps ---- */

/* Keeps the "token" member of a creation answer in DATA_DIR/demo.token (0600) and token. */
static int save_token(struct demo *d, json_t *ans, char token[DEMO_TOKEN_MAX])
{
    const char *t = json_string_value(json_object_get(ans, "token"));
    size_t n = t != NULL ? strlen(t) : 0;
    if (n == 0 || n + 2 > DEMO_TOKEN_MAX) {
        return TAM_EPROTO;
    }
    memcpy(token, t, n);
    token[n] = '\n';
    int err = write_file_0600(d->paths[P_TOKEN], token, n + 1, false);
    token[n] = '\0';
    return err;
}

/* Creates the tenant (or finds it) and makes sure DATA_DIR/demo.token opens it. */
static int ensure_tenant(struct demo *d)
{
    json_t *ans = NULL;
    int rc = call_json(d, "POST", "/v1/tenants", d->op_auth,
                       /* A demo device runs sessions back to back: lift the default
                        * rate limit (1 message/s per device, meant for real devices). */
                       json_pack("{s:s, s:s, s:s, s:{s:i}}", "id", DEMO_TENANT, "attestation",
                                 "required", "enrollment", "registered", "limits",
                                 "rps_per_device", 1000),
                       201, 409, &ans);
    char token[DEMO_TOKEN_MAX] = "";
    if (rc == TAM_OK) {
        rc = save_token(d, ans, token);
    } else if (rc == 1 && read_token(d->paths[P_TOKEN], token, sizeof(token)) != TAM_OK) {
        /* The tenant exists but its token file is gone: mint a new token. */
        json_decref(ans);
        ans = NULL;
        rc = call_json(d, "POST", "/v1/tenants/" DEMO_TENANT "/tokens", d->op_auth, NULL, 201,
                       201, &ans);
        rc = rc == TAM_OK ? save_token(d, ans, token) : rc;
    } else if (rc == 1) {
        rc = TAM_OK;
    }
    json_decref(ans);
    (void)snprintf(d->t_auth, sizeof(d->t_auth), "Bearer %.*s", DEMO_TOKEN_MAX - 1, token);
    tam_memzero(token, sizeof(token));
    return rc;
}

static int add_anchor(struct demo *d, const char *kind, const struct tam_key *k)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    int err = public_pem_text(k, &pem);
    if (err == TAM_OK) {
        err = call_json(d, "POST", "/v1/tenants/" DEMO_TENANT "/trust-anchors", d->t_auth,
                        json_pack("{s:s, s:s}", "kind", kind, "public_pem", (char *)pem.data), 201,
                        409, NULL);
    }
    tam_buf_finish(&pem);
    return err < 0 ? err : TAM_OK;
}

static void tc_ids(const struct demo_tc *tc, struct tam_bytes id[3], struct tam_bytes mid[3])
{
    id[0] = tam_bytes_of(DEMO_VENDOR, strlen(DEMO_VENDOR));
    id[1] = tam_bytes_of(tc->name, strlen(tc->name));
    id[2] = tam_bytes_of("ta", 2);
    mid[0] = id[0];
    mid[1] = id[1];
    mid[2] = tam_bytes_of("suit", 4);
}

static int upload_tc(struct demo *d, const struct demo_tc *tc)
{
    struct tam_bytes id[3], mid[3];
    tc_ids(tc, id, mid);
    char uri[DEMO_PATH_MAX + 64];
    (void)snprintf(uri, sizeof(uri), "%s/%s.bin", d->paths[P_PAYLOAD_URL], tc->name);
    struct tam_suit_build_params p = {
        .kind = tc->kind,
        .component_id = id,
        .ncomponent_id = 3,
        .manifest_component_id = mid,
        .nmanifest_component_id = 3,
        .sequence = 1,
        .payload = tam_bytes_of(tc->payload, strlen(tc->payload)),
        .uri = tc->kind == TAM_SUIT_BUILD_URI ? uri : NULL,
    };
    uint8_t digest[TAM_SHA256_LEN]; /* p.image_digest points here until the build */
    if (tc->kind == TAM_SUIT_BUILD_URI) {
        p.image_size = strlen(tc->payload);
        tam_sha256(tc->payload, strlen(tc->payload), digest);
        p.image_digest = digest;
        p.payload = tam_bytes_of(NULL, 0);
    }
    struct tam_buf env;
    tam_buf_init(&env, 64u << 10);
    int err = tam_suit_build(&p, d->signer, TAM_ALG_ESP256, &env);
    if (err == TAM_OK) {
        int st = call(d, "POST", "/v1/tenants/" DEMO_TENANT "/components", d->t_auth,
                      "application/suit-envelope+cose", env.data, env.len, NULL);
        err = st == 201 || st == 200 || st == 409 ? TAM_OK : TAM_EPROTO;
        if (err != TAM_OK) {
            fprintf(stderr, "tam-agent demo: uploading %s: HTTP %d\n", tc->name, st);
        }
    }
    tam_buf_finish(&env);
    return err;
}

static json_t *component_id_json(const struct demo_tc *tc)
{
    struct tam_bytes id[3], mid[3];
    tc_ids(tc, id, mid);
    json_t *arr = json_array();
    for (size_t i = 0; i < 3; i++) {
        char hex[2 * 32 + 1];
        tam_hex_encode(id[i].ptr, id[i].len, hex);
        json_array_append_new(arr, json_string(hex));
    }
    return arr;
}

static int put_policy(struct demo *d)
{
    json_t *install = json_array();
    for (size_t i = 0; i < DEMO_SCENARIOS; i++) {
        json_array_append_new(install, json_pack("{s:o}", "component_id",
                                                 component_id_json(&demo_tcs[i])));
    }
    json_t *rule = json_pack("{s:{}, s:o}", "match", "install", install);
    int rc = call_json(d, "PUT", "/v1/tenants/" DEMO_TENANT "/policy", d->t_auth,
                       json_pack("{s:[o]}", "rules", rule), 200, 204, NULL);
    return rc < 0 ? rc : TAM_OK;
}

/* ---- the payload server (the TC developer's download site of scenario 1) ---- */

static void on_payload_request(struct tam_http_request *req, void *ctx)
{
    const char *target = tam_http_request_target(req);
    for (size_t i = 0; i < DEMO_SCENARIOS; i++) {
        char path[128];
        (void)snprintf(path, sizeof(path), "/%s.bin", demo_tcs[i].name);
        if (strcmp(target, path) == 0 && strcmp(tam_http_request_method(req), "GET") == 0) {
            const struct tam_http_header h[] = {{"Content-Type", "application/octet-stream"}};
            (void)tam_http_respond(req, 200, h, 1, demo_tcs[i].payload,
                                   strlen(demo_tcs[i].payload));
            return;
        }
    }
    (void)tam_http_respond(req, 404, NULL, 0, NULL, 0);
}

static void on_pstop(uv_async_t *a)
{
    struct demo *d = a->data;
    tam_http_server_destroy(d->psrv);
    d->psrv = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

static void payload_thread(void *arg)
{
    struct demo *d = arg;
    (void)uv_run(&d->ploop, UV_RUN_DEFAULT);
}

/* Listens on host:port (the URL the manifests name), served from a thread of its own. */
static int start_payloads(struct demo *d, const char *listen)
{
    char host[64];
    unsigned port = 0;
    if (sscanf(listen, "%63[^:]:%u", host, &port) != 2 || port == 0 || port > 65535) {
        fprintf(stderr, "tam-agent demo: bad --payload-listen %s\n", listen);
        return TAM_EINVAL;
    }
    int err = uv_loop_init(&d->ploop);
    if (err != 0) {
        return err;
    }
    struct tam_http_server_config sc = {.host = host,
                                        .port = (uint16_t)port,
                                        .no_reuseport = true,
                                        .name = "demo-payloads",
                                        .handler = on_payload_request};
    tam_http_limits_default(&sc.limits);
    err = tam_http_server_create(&d->ploop, &sc, &d->psrv);
    if (err == TAM_ERRNO(EADDRINUSE)) {
        /* Taken: any port will do for this run (a restarted demo keeps its first URI). */
        fprintf(stderr, "tam-agent demo: %s is in use; serving payloads on another port\n",
                listen);
        sc.port = 0;
        err = tam_http_server_create(&d->ploop, &sc, &d->psrv);
    }
    if (err == TAM_OK) {
        (void)snprintf(d->paths[P_PAYLOAD_URL], DEMO_PATH_MAX, "http://%s:%u", host,
                       tam_http_server_port(d->psrv));
    }
    err = err == TAM_OK ? uv_async_init(&d->ploop, &d->pstop, on_pstop) : err;
    d->pstop.data = d;
    err = err == TAM_OK ? uv_thread_create(&d->thread, payload_thread, d) : err;
    d->pthread_started = err == TAM_OK;
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent demo: payload server on %s: %s\n", listen, tam_strerror(err));
    }
    return err;
}

static void stop_payloads(struct demo *d)
{
    if (!d->pthread_started) {
        return;
    }
    (void)uv_async_send(&d->pstop);
    (void)uv_thread_join(&d->thread);
    (void)uv_loop_close(&d->ploop);
    d->pthread_started = false;
}

/* ---- the run ---- */

static int setup(struct demo *d)
{
    const struct ag_opts *o = d->o;
    char path[DEMO_PATH_MAX], token[DEMO_TOKEN_MAX];
    (void)snprintf(path, sizeof(path), "%s/operator.token", o->data_dir);
    if (read_token(path, token, sizeof(token)) != TAM_OK) {
        fprintf(stderr, "tam-agent demo: cannot read the operator token %s\n", path);
        return TAM_ENOTFOUND;
    }
    (void)snprintf(d->op_auth, sizeof(d->op_auth), "Bearer %s", token);
    tam_memzero(token, sizeof(token));
    (void)snprintf(d->paths[P_TOKEN], DEMO_PATH_MAX, "%s/demo.token", o->data_dir);
    struct tam_key *attester = NULL;
    int err = demo_key(o->data_dir, "demo-tc-signer.pem", path, sizeof(path), &d->signer);
    err = err == TAM_OK ? demo_key(o->data_dir, "demo-attester.pem", d->paths[P_ATTESTER],
                                   DEMO_PATH_MAX, &attester)
                        : err;
    err = err == TAM_OK ? wait_ready(d) : err;
    err = err == TAM_OK ? ensure_tenant(d) : err;
    err = err == TAM_OK ? add_anchor(d, "tc-signer", d->signer) : err;
    err = err == TAM_OK ? add_anchor(d, "attester", attester) : err;
    for (size_t i = 0; i < DEMO_SCENARIOS && err == TAM_OK; i++) {
        err = upload_tc(d, &demo_tcs[i]);
    }
    err = err == TAM_OK ? put_policy(d) : err;
    tam_key_destroy(attester);
    return err;
}

static int write_signer_pub(struct demo *d)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    (void)snprintf(d->paths[P_SIGNER_PUB], DEMO_PATH_MAX, "%s/demo-tc-signer.pub.pem",
                   d->o->data_dir);
    int err = tam_key_public_pem(d->signer, &pem);
    err = err == TAM_OK ? write_file_0600(d->paths[P_SIGNER_PUB], pem.data, pem.len, false) : err;
    tam_buf_finish(&pem);
    return err;
}

/* The fleet: enrolled devices of a fixed seed, trusting the demo signer and attester. */
static int run_fleet(struct demo *d)
{
    struct ag_opts lo = *d->o;
    lo.mode = AG_MODE_LOAD;
    lo.enroll = true;
    lo.token_file = d->paths[P_TOKEN];
    lo.tenant = DEMO_TENANT;
    lo.seed = lo.seed != NULL ? lo.seed : DEMO_SEED;
    lo.attester_key_file = d->paths[P_ATTESTER];
    lo.signer_key_files[0] = d->paths[P_SIGNER_PUB];
    lo.n_signer_key_files = 1;
    return ag_run_load(&lo);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    uv_stop(h->loop);
}

/* --keep-serving: the payload server stays up until SIGTERM or SIGINT. */
static void serve_until_signal(struct demo *d)
{
    uv_signal_t sig[2];
    static const int nums[2] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&d->loop, &sig[i]);
        uv_signal_start(&sig[i], on_stop_signal, nums[i]);
    }
    (void)uv_run(&d->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 2; i++) {
        uv_close((uv_handle_t *)&sig[i], NULL);
    }
    (void)uv_run(&d->loop, UV_RUN_NOWAIT);
}

static int demo_open(struct demo *d, const struct ag_opts *o)
{
    memset(d, 0, sizeof(*d));
    d->o = o;
    struct tam_httpc_url u;
    int err = uv_loop_init(&d->loop);
    err = err == 0 ? tam_httpc_url_parse(o->admin_url, &u) : err;
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent demo: bad --admin %s\n", o->admin_url);
        return err;
    }
    size_t plen = strlen(u.path);
    while (plen > 0 && u.path[plen - 1] == '/') {
        plen--;
    }
    (void)snprintf(d->base, sizeof(d->base), "%.*s", (int)plen, u.path);
    struct tam_httpc_opts ho = {.url = o->admin_url, .max_conns = 2, .timeout_ms = o->timeout_ms,
                                .ca_file = o->ca_file, .tls_server_name = o->server_name};
    return tam_httpc_pool_create(&d->loop, &ho, &d->pool);
}

static void on_pool_closed(void *arg)
{
    *(bool *)arg = true;
}

static void demo_close(struct demo *d)
{
    stop_payloads(d);
    if (d->pool != NULL) {
        bool closed = false;
        tam_httpc_pool_close(d->pool, on_pool_closed, &closed);
        ag_run_until(&d->loop, &closed);
    }
    tam_key_destroy(d->signer);
    tam_memzero(d->op_auth, sizeof(d->op_auth));
    tam_memzero(d->t_auth, sizeof(d->t_auth));
    (void)uv_run(&d->loop, UV_RUN_NOWAIT);
    (void)uv_loop_close(&d->loop);
}

int ag_run_demo(const struct ag_opts *o)
{
    struct demo d;
    int err = demo_open(&d, o);
    err = err == TAM_OK ? start_payloads(&d, o->payload_listen) : err;
    err = err == TAM_OK ? setup(&d) : err;
    err = err == TAM_OK ? write_signer_pub(&d) : err;
    int rc = 2;
    if (err == TAM_OK) {
        printf("demo: tenant \"%s\" at %s with %d TCs (SUIT scenarios: uri, integrated, "
               "content) installed by policy on every device; tenant token in %s\n",
               DEMO_TENANT, o->url, DEMO_SCENARIOS, d.paths[P_TOKEN]);
        (void)fflush(stdout);
        rc = run_fleet(&d);
        printf("demo: fleet finished (exit %d). Try:\n"
               "  tamctl --admin %s --token-file %s --tenant %s device list\n",
               rc, o->admin_url, d.paths[P_TOKEN], DEMO_TENANT);
        (void)fflush(stdout);
    }
    if (err == TAM_OK && o->keep_serving) {
        serve_until_signal(&d);
    }
    demo_close(&d);
    return rc;
}
