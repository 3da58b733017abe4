/*
 * The admin API client (tamgate issue 5 contract, as src/admin implements it), for
 * tenants in `registered` enrollment mode and for what the fleet must trust:
 *   POST {admin}/v1/tenants/{t}/devices  {"public_pem": PEM, "labels": ["a", ...]}
 *        -> 201 {"kid": hex, ...}; 409 "already registered" is accepted as success
 *        (409 for a full tenant is not)
 *   GET  {admin}/v1/tenants/{t}  -> 200 {"numbering": "rfc", "tam_keys": [{"public_pem":
 *        PEM}, ...], "manifest_keys": [{"public_pem": PEM}, ...], ...}
 *        tam_keys become the trusted TAM keys when no --tam-key is given,
 *        manifest_keys the trusted TC-signer keys (the tenant's own manifest signing
 *        keys) when no --tc-signer-key is given, and numbering the TEEP numbering
 *        when no --numbering is given.
 * Both with "Authorization: Bearer <token>", the token read from --token-file.
 * At most 32 registrations are in flight at once.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tool.h"

#define IN_FLIGHT 32
#define TOKEN_MAX 4096

struct admin {
    struct ag_fleet *f;
    struct tam_httpc_pool *pool;
    char auth[TOKEN_MAX + 16];
    char base[TAM_HTTPC_PATH_MAX]; /* the admin URL's path, without a trailing '/' */
    char tenant[64];
    size_t next;
    size_t pending;
    size_t ok;
    size_t failed;
    bool done;
    bool closed;
};

static int read_token(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "tam-agent: cannot read %s\n", path);
        return TAM_ENOTFOUND;
    }
    size_t n = fread(out, 1, cap - 1, fp);
    fclose(fp);
    while (n > 0 && isspace((unsigned char)out[n - 1])) {
        n--;
    }
    out[n] = '\0';
    size_t start = 0;
    while (out[start] != '\0' && isspace((unsigned char)out[start])) {
        start++;
    }
    memmove(out, out + start, n - start + 1);
    for (size_t i = 0; out[i] != '\0'; i++) {
        if ((unsigned char)out[i] < 0x21 || (unsigned char)out[i] > 0x7e) {
            fprintf(stderr, "tam-agent: %s: the token must be one printable word\n", path);
            return TAM_EINVAL;
        }
    }
    return out[0] != '\0' ? TAM_OK : TAM_EINVAL;
}

static int admin_open(struct admin *a, struct ag_fleet *f)
{
    memset(a, 0, sizeof(*a));
    a->f = f;
    const struct ag_opts *o = f->o;
    char token[TOKEN_MAX];
    struct tam_httpc_url u;
    if (o->admin_url == NULL || o->token_file == NULL) {
        fprintf(stderr, "tam-agent: the admin API needs --admin and --token-file\n");
        return TAM_ECONFIG;
    }
    if (ag_tenant_of(o, a->tenant, sizeof(a->tenant)) != TAM_OK) {
        fprintf(stderr, "tam-agent: no tenant: give --tenant (or a .../tam/{tenant} URL)\n");
        return TAM_ECONFIG;
    }
    int err = read_token(o->token_file, token, sizeof(token));
    err = err == TAM_OK ? tam_httpc_url_parse(o->admin_url, &u) : err;
    if (err != TAM_OK) {
        return err;
    }
    snprintf(a->auth, sizeof(a->auth), "Bearer %s", token);
    tam_memzero(token, sizeof(token));
    size_t plen = strlen(u.path);
    while (plen > 0 && u.path[plen - 1] == '/') {
        plen--;
    }
    memcpy(a->base, u.path, plen);
    a->base[plen] = '\0';
    struct tam_httpc_opts ho = {
        .url = o->admin_url,
        .max_conns = 8,
        .timeout_ms = o->timeout_ms,
        .ca_file = o->ca_file,
        .tls_server_name = o->server_name,
    };
    err = tam_httpc_pool_create(f->loop, &ho, &a->pool);
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: %s: %s\n", o->admin_url, tam_strerror(err));
    }
    return err;
}

static void on_admin_closed(void *arg)
{
    ((struct admin *)arg)->closed = true;
}

static void admin_close(struct admin *a)
{
    tam_memzero(a->auth, sizeof(a->auth));
    if (a->pool != NULL) {
        tam_httpc_pool_close(a->pool, on_admin_closed, a);
        ag_run_until(a->f->loop, &a->closed);
        a->pool = NULL;
    }
}

/* ---- enrollment ---- */

struct enroll_req {
    struct admin *a;
    size_t idx;
};

static void enroll_next(struct admin *a);

static void check_kid(const struct enroll_req *r, const struct tam_httpc_resp *resp)
{
    json_t *root = json_loadb((const char *)resp->body.ptr, resp->body.len, 0, NULL);
    const char *kid = json_string_value(json_object_get(root, "kid"));
    char want[2 * TAM_KID_LEN + 1];
    tam_hex_encode(tam_key_kid(tam_agent_device_key(r->a->f->devs[r->idx])), TAM_KID_LEN, want);
    if (kid != NULL && strcmp(kid, want) != 0) {
        tam_log(TAM_LOG_WARN, "event=enroll_kid_mismatch device=%zu", r->idx);
    }
    json_decref(root);
}

/* Bounded substring search (memmem is a GNU extension). */
static bool contains(struct tam_bytes hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.len; i++) {
        if (memcmp(hay.ptr + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

static void on_enrolled(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct enroll_req *r = arg;
    struct admin *a = r->a;
    a->pending--;
    bool exists =
        err == TAM_OK && resp->status == 409 && contains(resp->body, "already registered");
    if (err == TAM_OK && (resp->status == 201 || resp->status == 200 || exists)) {
        if (resp->status == 201) {
            check_kid(r, resp);
        }
        a->ok++;
    } else {
        if (a->failed == 0) {
            fprintf(stderr, "tam-agent: enrolling device %zu: %s (HTTP %d)\n", r->idx,
                    err != TAM_OK ? tam_strerror(err) : "refused",
                    err == TAM_OK ? resp->status : 0);
        }
        a->failed++;
    }
    tam_free(r);
    enroll_next(a);
}

static char *enroll_body(struct admin *a, size_t idx)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    char *out = NULL;
    if (tam_key_public_pem(tam_agent_device_key(a->f->devs[idx]), &pem) == TAM_OK &&
        tam_buf_append(&pem, "", 1) == TAM_OK) {
        json_t *labels = json_array();
        const struct ag_opts *o = a->f->o;
        for (size_t i = 0; i < o->n_labels; i++) {
            json_array_append_new(labels, json_string(o->labels[i]));
        }
        json_t *root =
            json_pack("{s:s, s:o}", "public_pem", (const char *)pem.data, "labels", labels);
        out = root != NULL ? json_dumps(root, JSON_COMPACT) : NULL;
        json_decref(root);
    }
    tam_buf_finish(&pem);
    return out;
}

static int enroll_one(struct admin *a, size_t idx)
{
    char path[TAM_HTTPC_PATH_MAX + 128];
    int pn = snprintf(path, sizeof(path), "%s/v1/tenants/%s/devices", a->base, a->tenant);
    if (pn < 0 || (size_t)pn >= sizeof(path)) {
        return TAM_EINVAL;
    }
    char *body = enroll_body(a, idx);
    struct enroll_req *r = tam_calloc(1, sizeof(*r));
    if (body == NULL || r == NULL) {
        free(body); /* allocated by json_dumps */
        tam_free(r);
        return TAM_ENOMEM;
    }
    r->a = a;
    r->idx = idx;
    const struct tam_httpc_header h[] = {{"Content-Type", "application/json"},
                                         {"Accept", "application/json"},
                                         {"Authorization", a->auth}};
    struct tam_httpc_req req = {.method = "POST",
                                .path = path,
                                .headers = h,
                                .n_headers = 3,
                                .body = tam_bytes_of(body, strlen(body))};
    int err = tam_httpc_request(a->pool, &req, on_enrolled, r);
    free(body); /* allocated by json_dumps */
    if (err != TAM_OK) {
        tam_free(r);
        return err;
    }
    a->pending++;
    return TAM_OK;
}

static void enroll_next(struct admin *a)
{
    while (a->pending < IN_FLIGHT && a->next < a->f->ndev) {
        if (enroll_one(a, a->next++) != TAM_OK) {
            a->failed++;
        }
    }
    if (a->pending == 0 && a->next == a->f->ndev) {
        a->done = true;
    }
}

int ag_admin_enroll(struct ag_fleet *f)
{
    struct admin a;
    int err = admin_open(&a, f);
    if (err == TAM_OK) {
        enroll_next(&a);
        ag_run_until(f->loop, &a.done);
        tam_log(TAM_LOG_INFO, "event=enrolled ok=%zu failed=%zu", a.ok, a.failed);
        err = a.failed == 0 ? TAM_OK : TAM_EDENIED;
        if (a.failed > 0) {
            fprintf(stderr, "tam-agent: %zu of %zu devices could not be enrolled\n", a.failed,
                    f->ndev);
        }
    }
    admin_close(&a);
    return err;
}

/* ---- the tenant: TAM keys, manifest keys, numbering ---- */

struct keys_req {
    struct admin *a;
    int err;
    bool tam_keys; /* take what is missing */
    bool signers;
    bool numbering;
};

static int add_keys(struct ag_fleet *f, json_t *arr, bool signer)
{
    size_t i;
    json_t *v;
    int err = TAM_OK;
    json_array_foreach(arr, i, v)
    {
        const char *pem = json_string_value(json_object_get(v, "public_pem"));
        if (pem == NULL) {
            continue;
        }
        int e = signer ? ag_fleet_add_signer_pem(f, pem, strlen(pem))
                       : ag_fleet_add_tam_key_pem(f, pem, strlen(pem));
        err = err == TAM_OK ? e : err;
    }
    return err;
}

static void apply_tenant(struct keys_req *k, json_t *root)
{
    struct ag_fleet *f = k->a->f;
    int err = TAM_OK;
    if (k->tam_keys) {
        err = add_keys(f, json_object_get(root, "tam_keys"), false);
    }
    if (err == TAM_OK && k->signers) {
        err = add_keys(f, json_object_get(root, "manifest_keys"), true);
    }
    const char *num = json_string_value(json_object_get(root, "numbering"));
    enum tam_teep_numbering n;
    if (err == TAM_OK && k->numbering && num != NULL && tam_teep_numbering_parse(num, &n) == 0) {
        f->prof.numbering = n;
    }
    k->err = err;
}

static void on_tenant(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct keys_req *k = arg;
    k->err = err != TAM_OK ? err : (resp->status == 200 ? TAM_OK : TAM_EDENIED);
    if (k->err == TAM_OK) {
        json_t *root = json_loadb((const char *)resp->body.ptr, resp->body.len, 0, NULL);
        if (root == NULL) {
            k->err = TAM_EPROTO;
        } else {
            apply_tenant(k, root);
        }
        json_decref(root);
    } else if (err == TAM_OK) {
        fprintf(stderr, "tam-agent: GET tenant: HTTP %d\n", resp->status);
    }
    k->a->done = true;
}

int ag_admin_tenant(struct ag_fleet *f)
{
    struct admin a;
    const struct ag_opts *o = f->o;
    struct keys_req k = {.a = &a,
                         .err = TAM_OK,
                         .tam_keys = f->n_tam_keys == 0,
                         .signers = f->n_signers == 0,
                         .numbering = !o->numbering_set};
    int err = admin_open(&a, f);
    if (err == TAM_OK) {
        char path[TAM_HTTPC_PATH_MAX + 128];
        int pn = snprintf(path, sizeof(path), "%s/v1/tenants/%s", a.base, a.tenant);
        err = pn < 0 || (size_t)pn >= sizeof(path) ? TAM_EINVAL : TAM_OK;
        const struct tam_httpc_header h[] = {{"Accept", "application/json"},
                                             {"Authorization", a.auth}};
        struct tam_httpc_req req = {.method = "GET", .path = path, .headers = h, .n_headers = 2};
        err = err == TAM_OK ? tam_httpc_request(a.pool, &req, on_tenant, &k) : err;
        if (err == TAM_OK) {
            ag_run_until(f->loop, &a.done);
            err = k.err;
        }
    }
    admin_close(&a);
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: reading the tenant from the admin API: %s\n",
                tam_strerror(err));
    }
    return err;
}
