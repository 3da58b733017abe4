/* tamctl tenant ... (operator token) and tamctl anchor ... (tenant token). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tamctl_admin.h"

#define PEM_MAX      (64u * 1024u)
#define MAX_TAM_KEYS 2

/* ---- key=value settings ---- */

static bool all_digits(const char *s)
{
    const char *p = *s == '-' ? s + 1 : s;
    if (*p == '\0' || strlen(p) > 18) {
        return false;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return true;
}

static json_t *setting_value(const char *v)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
        return json_boolean(v[0] == 't');
    }
    if (all_digits(v)) {
        return json_integer((json_int_t)strtoll(v, NULL, 10));
    }
    return json_string(v);
}

/* Adds "a.b=v" to obj as {"a": {"b": v}}. */
static int add_setting(json_t *obj, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv || eq - kv > 64) {
        return tamctl_usage_fail("expected key=value, got %s", kv);
    }
    char key[72];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    json_t *at = obj;
    char *part = key;
    for (char *dot = strchr(part, '.'); dot != NULL; dot = strchr(part, '.')) {
        *dot = '\0';
        json_t *sub = json_object_get(at, part);
        if (sub == NULL) {
            sub = json_object();
            json_object_set_new(at, part, sub);
        }
        if (!json_is_object(sub) || dot[1] == '\0') {
            return tamctl_usage_fail("bad key %.*s", (int)(eq - kv), kv);
        }
        at = sub;
        part = dot + 1;
    }
    json_t *v = setting_value(eq + 1);
    if (v == NULL || json_object_set_new(at, part, v) != 0) {
        return tamctl_usage_fail("bad value in %s", kv);
    }
    return 0;
}

/* ---- output ---- */

static void limits_line(json_t *lim, char *buf, size_t n)
{
    size_t used = 0;
    const char *k;
    json_t *v;
    buf[0] = '\0';
    json_object_foreach(lim, k, v)
    {
        char one[64];
        int w = snprintf(buf + used, n - used, "%s%s=%s", used > 0 ? " " : "", k,
                         tamctl_fmt_scalar(v, one, sizeof(one)));
        if (w < 0 || (size_t)w >= n - used) {
            break;
        }
        used += (size_t)w;
    }
}

static void keys_rows(struct tamctl_table *t, json_t *keys, const char *use)
{
    for (size_t i = 0; i < json_array_size(keys); i++) {
        json_t *k = json_array_get(keys, i);
        const char *row[] = {use, json_string_value(json_object_get(k, "alg")),
                             json_string_value(json_object_get(k, "key_type")),
                             json_string_value(json_object_get(k, "kid"))};
        tamctl_table_add(t, row);
    }
}

static void print_tenant(json_t *j)
{
    char b[512];
    tamctl_kv("ID", json_string_value(json_object_get(j, "id")));
    tamctl_kv("TAM_URI", json_string_value(json_object_get(j, "tam_uri")));
    static const char *const fields[][2] = {
        {"NUMBERING", "numbering"},   {"ATTESTATION", "attestation"},
        {"ENROLLMENT", "enrollment"}, {"LEGACY_ALG_IDS", "legacy_alg_ids"},
        {"SIGN1_ONLY", "sign1_only"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        tamctl_kv(fields[i][0], tamctl_fmt_scalar(json_object_get(j, fields[i][1]), b, sizeof(b)));
    }
    tamctl_kv("CREATED", tamctl_fmt_ms(json_object_get(j, "created"), b, sizeof(b)));
    if (json_object_get(j, "devices") != NULL) {
        tamctl_kv("DEVICES", tamctl_fmt_scalar(json_object_get(j, "devices"), b, sizeof(b)));
    }
    limits_line(json_object_get(j, "limits"), b, sizeof(b));
    tamctl_kv("LIMITS", b);
    putchar('\n');
    static const char *const head[] = {"KEY", "ALG", "KEY_TYPE", "KID", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    keys_rows(&t, json_object_get(j, "tam_keys"), "teep");
    keys_rows(&t, json_object_get(j, "manifest_keys"), "manifest");
    tamctl_table_print(&t, stdout);
}

/* Writes the token (and a newline) to a new 0600 file, replacing an old one. */
static int write_token(const char *path, const char *token)
{
    (void)unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        return tamctl_usage_fail("cannot create %s: %s", path, strerror(errno));
    }
    size_t n = strlen(token);
    bool ok = fchmod(fd, 0600) == 0 && write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    ok = close(fd) == 0 && ok;
    return ok ? 0 : tamctl_usage_fail("cannot write %s", path);
}

/* Shows or stores the token of an answer; with --token-out the JSON no longer carries it. */
static int emit_token(const struct tamctl_admin *a, json_t *j, const char *out)
{
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (tok == NULL) {
        fputs("tamctl: the answer has no token\n", stderr);
        return TAMCTL_EXIT_API;
    }
    if (out != NULL) {
        int rc = write_token(out, tok);
        if (rc != 0) {
            return rc;
        }
        json_object_del(j, "token");
        if (!a->json) {
            printf("token written to %s\n", out);
        }
    } else if (!a->json) {
        printf("token (shown once, keep it secret): %s\n", tok);
    }
    return 0;
}

/* ---- tenant commands ---- */

static int add_pem(json_t *arr, const char *path)
{
    char *pem = tamctl_slurp(path, PEM_MAX, NULL);
    if (pem == NULL) {
        return TAMCTL_EXIT_USAGE;
    }
    json_array_append_new(arr, json_string(pem));
    memset(pem, 0, strlen(pem)); /* private key material */
    tam_free(pem);
    return 0;
}

static int create_option(json_t *b, json_t *keys, int argc, char **argv, int *i,
                         const char **token_out)
{
    const char *o = argv[*i];
    if (*i + 1 >= argc) {
        return tamctl_usage_fail("%s needs a value", o);
    }
    const char *v = argv[++*i];
    if (strcmp(o, "--numbering") == 0 || strcmp(o, "--attestation") == 0 ||
        strcmp(o, "--enrollment") == 0) {
        json_object_set_new(b, o + 2, json_string(v));
    } else if (strcmp(o, "--tam-key") == 0) {
        if (json_array_size(keys) >= MAX_TAM_KEYS) {
            return tamctl_usage_fail("at most %d --tam-key (one P-256, one Ed25519)", MAX_TAM_KEYS);
        }
        return add_pem(keys, v);
    } else if (strcmp(o, "--manifest-key") == 0) {
        json_t *one = json_array();
        int rc = add_pem(one, v);
        json_object_set(b, "manifest_private_key", json_array_get(one, 0));
        json_decref(one);
        return rc;
    } else if (strcmp(o, "--token-out") == 0) {
        *token_out = v;
    } else {
        return tamctl_usage_fail("tenant create: unknown option %s", o);
    }
    return 0;
}

static int tenant_create(struct tamctl_admin *a, int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-') {
        return tamctl_usage_fail("usage: tamctl tenant create ID [options] [key=value...]");
    }
    json_t *b = json_pack("{s:s}", "id", argv[2]);
    json_t *keys = json_array();
    const char *token_out = NULL;
    int rc = 0;
    for (int i = 3; rc == 0 && i < argc; i++) {
        rc = argv[i][0] == '-' ? create_option(b, keys, argc, argv, &i, &token_out)
                               : add_setting(b, argv[i]);
    }
    if (json_array_size(keys) > 0) {
        json_object_set(b, "tam_private_keys", keys);
    }
    json_decref(keys);
    json_t *j = NULL;
    rc = rc == 0 ? tamctl_api(a, "POST", "/v1/tenants", b, &j) : (json_decref(b), rc);
    if (rc == 0) {
        if (!a->json) {
            printf("tenant %s created, TEEP URI %s\n", json_string_value(json_object_get(j, "id")),
                   json_string_value(json_object_get(j, "tam_uri")));
        }
        rc = emit_token(a, j, token_out);
        if (rc == 0 && a->json) {
            tamctl_print_answer(j);
        }
    }
    json_decref(j);
    return rc;
}

static void tenant_row(struct tamctl_admin *a, struct tamctl_table *t, const char *id)
{
    char path[160];
    json_t *d = NULL;
    snprintf(path, sizeof(path), "/v1/tenants/%s", id);
    if (!tamctl_segment_ok(id, "tenant id") || tamctl_api(a, "GET", path, NULL, &d) != 0) {
        d = NULL; /* listed, then gone or unreadable: the row shows dashes */
    }
    char created[64], devices[32];
    const char *row[] = {id,
                         json_string_value(json_object_get(d, "numbering")),
                         json_string_value(json_object_get(d, "attestation")),
                         json_string_value(json_object_get(d, "enrollment")),
                         tamctl_fmt_scalar(json_object_get(d, "devices"), devices, sizeof(devices)),
                         json_string_value(json_object_get(d, "tam_uri")),
                         tamctl_fmt_ms(json_object_get(d, "created"), created, sizeof(created))};
    tamctl_table_add(t, row);
    json_decref(d);
}

static int tenant_list(struct tamctl_admin *a)
{
    json_t *j = NULL;
    int rc = tamctl_api(a, "GET", "/v1/tenants", NULL, &j);
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        static const char *const head[] = {"ID",      "NUMBERING", "ATTESTATION", "ENROLLMENT",
                                           "DEVICES", "TAM_URI",   "CREATED",     NULL};
        struct tamctl_table t;
        tamctl_table_init(&t, head);
        json_t *arr = json_object_get(j, "tenants");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            const char *id = json_string_value(json_object_get(json_array_get(arr, i), "id"));
            tenant_row(a, &t, id != NULL ? id : "?");
        }
        tamctl_table_print(&t, stdout);
    }
    json_decref(j);
    return rc;
}

/* tenant token ID [--token-out FILE]: another token for the tenant, shown or stored once. */
static int tenant_token(struct tamctl_admin *a, const char *path, int argc, char **argv)
{
    const char *out = argc == 5 && strcmp(argv[3], "--token-out") == 0 ? argv[4] : NULL;
    if (argc != 3 && out == NULL) {
        return tamctl_usage_fail("usage: tamctl tenant token ID [--token-out FILE]");
    }
    json_t *j = NULL;
    int rc = tamctl_api(a, "POST", path, NULL, &j);
    rc = rc == 0 ? emit_token(a, j, out) : rc;
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    }
    json_decref(j);
    return rc;
}

/* tenant delete ID, tenant revoke-tokens ID: 204 answers. */
static int tenant_delete(struct tamctl_admin *a, const char *path, bool tokens, const char *id)
{
    char msg[200];
    int rc = tamctl_api(a, "DELETE", path, NULL, NULL);
    snprintf(msg, sizeof(msg), "%s %s", tokens ? "revoked every token of" : "deleted tenant", id);
    if (rc == 0) {
        tamctl_done(a, msg);
    }
    return rc;
}

/* tenant show|set|delete|token|revoke-tokens ID ... */
static int tenant_one(struct tamctl_admin *a, const char *verb, int argc, char **argv)
{
    bool set = strcmp(verb, "set") == 0, token = strcmp(verb, "token") == 0;
    if (argc < 3 || !tamctl_segment_ok(argv[2], "tenant id") || (!set && !token && argc != 3)) {
        return tamctl_usage_fail("usage: tamctl tenant %s ID%s", verb, set ? " key=value..." : "");
    }
    bool tokens = token || strcmp(verb, "revoke-tokens") == 0;
    char path[160];
    snprintf(path, sizeof(path), "/v1/tenants/%s%s", argv[2], tokens ? "/tokens" : "");
    if (token) {
        return tenant_token(a, path, argc, argv);
    }
    if (strcmp(verb, "show") != 0 && !set) {
        return tenant_delete(a, path, tokens, argv[2]);
    }
    json_t *j = NULL;
    int rc = 0;
    if (set) {
        json_t *b = json_object();
        for (int i = 3; rc == 0 && i < argc; i++) {
            rc = add_setting(b, argv[i]);
        }
        rc = rc == 0 && argc == 3 ? tamctl_usage_fail("tenant set: nothing to set") : rc;
        rc = rc == 0 ? tamctl_api(a, "PATCH", path, b, &j) : (json_decref(b), rc);
    } else {
        rc = tamctl_api(a, "GET", path, NULL, &j);
    }
    return tamctl_show(a, rc, j, print_tenant);
}

int tamctl_admin_tenant(struct tamctl_admin *a, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (strcmp(verb, "create") == 0) {
        return tenant_create(a, argc, argv);
    }
    if (strcmp(verb, "list") == 0) {
        return argc == 2 ? tenant_list(a) : tamctl_usage_fail("usage: tamctl tenant list");
    }
    static const char *const verbs[] = {"show", "set", "delete", "token", "revoke-tokens", NULL};
    for (size_t i = 0; verbs[i] != NULL; i++) {
        if (strcmp(verb, verbs[i]) == 0) {
            return tenant_one(a, verb, argc, argv);
        }
    }
    return tamctl_usage_fail("tenant: unknown command %s (create, list, show, set, delete, "
                             "token, revoke-tokens)",
                             verb);
}

/* ---- trust anchors ---- */

static bool kind_ok(const char *k)
{
    return strcmp(k, "tc-signer") == 0 || strcmp(k, "attester") == 0 || strcmp(k, "verifier") == 0;
}

static int anchor_add(struct tamctl_admin *a, int argc, char **argv)
{
    if (argc != 4 || !kind_ok(argv[2])) {
        return tamctl_usage_fail("usage: tamctl anchor add tc-signer|attester|verifier PEMFILE");
    }
    char path[160];
    char *pem = tamctl_slurp(argv[3], PEM_MAX, NULL);
    if (pem == NULL || !tamctl_tenant_path(a, path, sizeof(path), "/trust-anchors")) {
        tam_free(pem);
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc = tamctl_api(a, "POST", path,
                        json_pack("{s:s, s:s}", "kind", argv[2], "public_pem", pem), &j);
    tam_free(pem);
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        printf("added %s anchor %s\n", argv[2], json_string_value(json_object_get(j, "kid")));
    }
    json_decref(j);
    return rc;
}

static int anchor_list(struct tamctl_admin *a, json_t **out)
{
    char path[160];
    if (!tamctl_tenant_path(a, path, sizeof(path), "/trust-anchors")) {
        return TAMCTL_EXIT_USAGE;
    }
    return tamctl_api(a, "GET", path, NULL, out);
}

static void print_anchors(json_t *arr)
{
    static const char *const head[] = {"KIND", "KEY_TYPE", "KID", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *k = json_array_get(arr, i);
        const char *row[] = {json_string_value(json_object_get(k, "kind")),
                             json_string_value(json_object_get(k, "key_type")),
                             json_string_value(json_object_get(k, "kid"))};
        tamctl_table_add(&t, row);
    }
    tamctl_table_print(&t, stdout);
}

/* The kind of the anchor kid (from the listing), when the command line left it out. */
static int anchor_kind(struct tamctl_admin *a, const char *kid, char *kind, size_t n)
{
    json_t *j = NULL;
    int rc = anchor_list(a, &j);
    json_t *arr = json_object_get(j, "trust_anchors");
    kind[0] = '\0';
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        json_t *k = json_array_get(arr, i);
        const char *id = json_string_value(json_object_get(k, "kid"));
        const char *kd = json_string_value(json_object_get(k, "kind"));
        if (id != NULL && kd != NULL && strcasecmp(id, kid) == 0) {
            snprintf(kind, n, "%s", kd);
            break;
        }
    }
    json_decref(j);
    if (rc == 0 && kind[0] == '\0') {
        fprintf(stderr, "tamctl: 404 Not Found: no trust anchor %s\n", kid);
        rc = TAMCTL_EXIT_API;
    }
    return rc;
}

/* anchor show|delete [KIND] KID */
static int anchor_one(struct tamctl_admin *a, bool del, int argc, char **argv)
{
    if ((argc != 3 && argc != 4) || (argc == 4 && !kind_ok(argv[2]))) {
        return tamctl_usage_fail("usage: tamctl anchor %s [KIND] KID", argv[1]);
    }
    const char *kid = argv[argc - 1];
    char kind[32], suffix[160], path[320];
    if (!tamctl_segment_ok(kid, "kid")) {
        return TAMCTL_EXIT_USAGE;
    }
    int rc = argc == 4 ? (snprintf(kind, sizeof(kind), "%s", argv[2]), 0)
                       : anchor_kind(a, kid, kind, sizeof(kind));
    snprintf(suffix, sizeof(suffix), "/trust-anchors/%s/%s", kind, kid);
    if (rc != 0 || !tamctl_tenant_path(a, path, sizeof(path), suffix)) {
        return rc != 0 ? rc : TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    rc = tamctl_api(a, del ? "DELETE" : "GET", path, NULL, del ? NULL : &j);
    if (rc == 0 && del) {
        snprintf(suffix, sizeof(suffix), "deleted %s anchor %s", kind, kid);
        tamctl_done(a, suffix);
    } else if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        tamctl_kv("KIND", json_string_value(json_object_get(j, "kind")));
        tamctl_kv("KEY_TYPE", json_string_value(json_object_get(j, "key_type")));
        tamctl_kv("KID", json_string_value(json_object_get(j, "kid")));
        const char *pem = json_string_value(json_object_get(j, "public_pem"));
        fputs(pem != NULL ? pem : "", stdout);
    }
    json_decref(j);
    return rc;
}

int tamctl_admin_anchor(struct tamctl_admin *a, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (!tamctl_need_tenant(a)) {
        return TAMCTL_EXIT_USAGE;
    }
    if (strcmp(verb, "add") == 0) {
        return anchor_add(a, argc, argv);
    }
    if (strcmp(verb, "list") == 0) {
        json_t *j = NULL;
        int rc = argc == 2 ? anchor_list(a, &j) : tamctl_usage_fail("usage: tamctl anchor list");
        if (rc == 0 && a->json) {
            tamctl_print_answer(j);
        } else if (rc == 0) {
            print_anchors(json_object_get(j, "trust_anchors"));
        }
        json_decref(j);
        return rc;
    }
    if (strcmp(verb, "show") == 0 || strcmp(verb, "delete") == 0) {
        return anchor_one(a, verb[0] == 'd', argc, argv);
    }
    return tamctl_usage_fail("anchor: unknown command %s (add, list, show, delete)", verb);
}
