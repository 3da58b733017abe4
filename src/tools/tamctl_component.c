/* tamctl component ... (tenant token, --tenant). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tamctl.h"
#include "tamctl_admin.h"

#define UPLOAD_MAX          (16u << 20)
#define DEPENDENCIES_MAX    8
#define ENVELOPE_MEDIA_TYPE "application/suit-envelope+cose"

/* Standard base64 with padding; the caller frees the result with tam_free. */
static char *base64(const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = tam_malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        v |= i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint32_t)p[i + 2] : 0;
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* "HEX,HEX" -> ["HEX", "HEX"]; NULL (after a message) when a segment is empty. */
static json_t *component_id(const char *s, const char *opt)
{
    json_t *arr = json_array();
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (n == 0 || json_array_size(arr) >= 16) {
            json_decref(arr);
            tamctl_usage_fail("%s: expected HEX[,HEX...] (at most 16 segments), got %s", opt, s);
            return NULL;
        }
        json_array_append_new(arr, json_stringn(p, n));
        if (comma == NULL) {
            return arr;
        }
        p = comma + 1;
    }
}

static void print_upload(const struct tamctl_admin *a, json_t *j)
{
    if (a->json) {
        tamctl_print_answer(j);
        return;
    }
    char seq[32], cid[1024];
    printf("stored %s component %s sequence %s, state %s, ref %s\n",
           json_string_value(json_object_get(j, "kind")),
           tamctl_fmt_join(json_object_get(j, "component_id"), cid, sizeof(cid)),
           tamctl_fmt_scalar(json_object_get(j, "sequence"), seq, sizeof(seq)),
           json_string_value(json_object_get(j, "state")),
           json_string_value(json_object_get(j, "ref")));
}

static int upload_envelope(struct tamctl_admin *a, const char *file, const char *path)
{
    struct tam_buf env;
    tam_buf_init(&env, UPLOAD_MAX);
    if (tamctl_read_input(file, &env) != 0) {
        tam_buf_finish(&env);
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc = tamctl_api_raw(a, "POST", path, ENVELOPE_MEDIA_TYPE, env.data, env.len, &j);
    tam_buf_finish(&env);
    if (rc == 0) {
        print_upload(a, j);
    }
    json_decref(j);
    return rc;
}

/* One "--option VALUE" of a binary upload into the request body b. */
static int binary_option(json_t *b, const char *o, const char *v)
{
    static const char *const strings[][2] = {{"--delivery", "delivery"},
                                             {"--uri", "uri"},
                                             {"--vendor-id", "vendor_id"},
                                             {"--class-id", "class_id"}};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        if (strcmp(o, strings[i][0]) == 0) {
            json_object_set_new(b, strings[i][1], json_string(v));
            return 0;
        }
    }
    if (strcmp(o, "--sequence") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n > (1ull << 53)) {
            return tamctl_usage_fail("--sequence: a number expected, got %s", v);
        }
        json_object_set_new(b, "sequence", json_integer((json_int_t)n));
        return 0;
    }
    bool dep = strcmp(o, "--dependency") == 0;
    if (strcmp(o, "--component-id") != 0 && strcmp(o, "--manifest-component-id") != 0 && !dep) {
        return tamctl_usage_fail("component upload: unknown option %s", o);
    }
    json_t *id = component_id(v, o);
    if (id == NULL) {
        return TAMCTL_EXIT_USAGE;
    }
    if (!dep) {
        json_object_set_new(b, o[2] == 'c' ? "component_id" : "manifest_component_id", id);
        return 0;
    }
    json_t *deps = json_object_get(b, "dependencies");
    if (deps == NULL) {
        deps = json_array();
        json_object_set_new(b, "dependencies", deps);
    }
    json_array_append_new(deps, id);
    return json_array_size(deps) > DEPENDENCIES_MAX
               ? tamctl_usage_fail("at most %d --dependency", DEPENDENCIES_MAX)
               : 0;
}

static int add_binary(json_t *b, const char *file)
{
    size_t len;
    char *bin = tamctl_slurp(file, UPLOAD_MAX, &len);
    if (bin == NULL) {
        return TAMCTL_EXIT_USAGE;
    }
    char *text = base64((const uint8_t *)bin, len);
    tam_free(bin);
    if (text == NULL) {
        return tamctl_usage_fail("out of memory");
    }
    json_object_set_new(b, "binary", json_string(text));
    tam_free(text);
    return 0;
}

static int upload_binary(struct tamctl_admin *a, int argc, char **argv, const char *path)
{
    json_t *b = json_object();
    const char *file = NULL;
    int rc = 0;
    for (int i = 2; rc == 0 && i < argc; i += 2) {
        if (i + 1 >= argc) {
            rc = tamctl_usage_fail("%s needs a value", argv[i]);
        } else if (strcmp(argv[i], "--binary") == 0) {
            file = argv[i + 1];
        } else {
            rc = binary_option(b, argv[i], argv[i + 1]);
        }
    }
    if (rc == 0 &&
        (json_object_get(b, "component_id") == NULL || json_object_get(b, "sequence") == NULL)) {
        rc = tamctl_usage_fail("component upload --binary needs --component-id and --sequence");
    }
    if (rc == 0 && json_object_get(b, "delivery") == NULL) {
        json_object_set_new(b, "delivery", json_string("integrated"));
    }
    rc = rc == 0 ? add_binary(b, file) : rc;
    json_t *j = NULL;
    rc = rc == 0 ? tamctl_api(a, "POST", path, b, &j) : (json_decref(b), rc);
    if (rc == 0) {
        print_upload(a, j);
    }
    json_decref(j);
    return rc;
}

static int component_upload(struct tamctl_admin *a, int argc, char **argv)
{
    char path[160];
    if (!tamctl_tenant_path(a, path, sizeof(path), "/components")) {
        return TAMCTL_EXIT_USAGE;
    }
    if (argc == 3 && argv[2][0] != '-') {
        return upload_envelope(a, argv[2], path);
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--binary") == 0) {
            return upload_binary(a, argc, argv, path);
        }
    }
    return tamctl_usage_fail("usage: tamctl component upload ENVELOPE_FILE | "
                             "component upload --binary FILE --component-id HEX[,HEX...] "
                             "--sequence N [...]");
}

static int component_list(struct tamctl_admin *a)
{
    char path[160];
    json_t *j = NULL;
    if (!tamctl_tenant_path(a, path, sizeof(path), "/components")) {
        return TAMCTL_EXIT_USAGE;
    }
    int rc = tamctl_api(a, "GET", path, NULL, &j);
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        static const char *const head[] = {"COMPONENT_ID", "SEQUENCE", "REF", NULL};
        struct tamctl_table t;
        tamctl_table_init(&t, head);
        json_t *arr = json_object_get(j, "components");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *c = json_array_get(arr, i);
            char cid[1024], seq[32];
            const char *row[] = {
                tamctl_fmt_join(json_object_get(c, "component_id"), cid, sizeof(cid)),
                tamctl_fmt_scalar(json_object_get(c, "sequence"), seq, sizeof(seq)),
                json_string_value(json_object_get(c, "ref"))};
            tamctl_table_add(&t, row);
        }
        tamctl_table_print(&t, stdout);
    }
    json_decref(j);
    return rc;
}

/* "/components/CID[/SEQ]" for a user-given reference; false (after a message) if malformed. */
static bool ref_path(const struct tamctl_admin *a, const char *ref, bool need_seq, char *out,
                     size_t n)
{
    char cid[1100], suffix[1200];
    const char *slash = strchr(ref, '/');
    size_t cl = slash != NULL ? (size_t)(slash - ref) : strlen(ref);
    if (cl >= sizeof(cid) || (need_seq && slash == NULL)) {
        tamctl_usage_fail("expected %s, got %s", need_seq ? "CID/SEQ" : "CID[/SEQ]", ref);
        return false;
    }
    memcpy(cid, ref, cl);
    cid[cl] = '\0';
    if (!tamctl_segment_ok(cid, "component") ||
        (slash != NULL && !tamctl_segment_ok(slash + 1, "sequence"))) {
        return false;
    }
    snprintf(suffix, sizeof(suffix), "/components/%s", ref);
    return tamctl_tenant_path(a, out, n, suffix);
}

static void print_version(json_t *v)
{
    static const char *const names[] = {
        "ref",      "kind",   "state",         "component_id", "manifest_component_id",
        "sequence", "digest", "envelope_size", "binary_size",  "image_digest",
        "delivery", "uri",    "vendor_id",     "class_id",     "dependencies",
        NULL};
    for (size_t i = 0; names[i] != NULL; i++) {
        json_t *f = json_object_get(v, names[i]);
        if (f == NULL) {
            continue;
        }
        char key[32], val[2048];
        size_t k = 0;
        for (; names[i][k] != '\0' && k + 1 < sizeof(key); k++) {
            char c = names[i][k];
            key[k] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
        }
        key[k] = '\0';
        tamctl_fmt_scalar(f, val, sizeof(val));
        printf("%-22s %s\n", key, val[0] != '\0' ? val : "-");
    }
}

/* show CID: the versions, one table row each (their details fetched one by one). */
static int show_versions(struct tamctl_admin *a, const char *cid, json_t *j)
{
    static const char *const head[] = {"SEQUENCE", "KIND", "STATE", "DIGEST", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    json_t *seqs = json_object_get(j, "sequences");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(seqs); i++) {
        char ref[1200], path[1400], seq[32];
        tamctl_fmt_scalar(json_array_get(seqs, i), seq, sizeof(seq));
        snprintf(ref, sizeof(ref), "%s/%s", cid, seq);
        json_t *v = NULL;
        rc = ref_path(a, ref, true, path, sizeof(path)) ? tamctl_api(a, "GET", path, NULL, &v)
                                                        : TAMCTL_EXIT_USAGE;
        const char *row[] = {seq, json_string_value(json_object_get(v, "kind")),
                             json_string_value(json_object_get(v, "state")),
                             json_string_value(json_object_get(v, "digest"))};
        tamctl_table_add(&t, row);
        json_decref(v);
    }
    char id[1024];
    printf("COMPONENT_ID %s\n",
           tamctl_fmt_join(json_object_get(j, "component_id"), id, sizeof(id)));
    tamctl_table_print(&t, stdout);
    return rc;
}

static int component_show(struct tamctl_admin *a, const char *ref)
{
    char path[1400];
    if (!ref_path(a, ref, false, path, sizeof(path))) {
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc = tamctl_api(a, "GET", path, NULL, &j);
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0 && strchr(ref, '/') != NULL) {
        print_version(j);
    } else if (rc == 0) {
        rc = show_versions(a, ref, j);
    }
    json_decref(j);
    return rc;
}

static int component_download(struct tamctl_admin *a, const char *ref, const char *file)
{
    char path[1400];
    if (!ref_path(a, ref, true, path, sizeof(path))) {
        return TAMCTL_EXIT_USAGE;
    }
    int rc = a->http == NULL ? tamctl_http_open(a->url, a->cacert, a->token, &a->http) : 0;
    struct tamctl_reply r;
    rc = rc == 0 ? tamctl_http_call(a->http, "GET", path, NULL, NULL, 0, ENVELOPE_MEDIA_TYPE, &r)
                 : rc;
    if (rc != 0) {
        return rc;
    }
    if (r.status != 200 || strcmp(r.ctype, ENVELOPE_MEDIA_TYPE) != 0) {
        tamctl_reply_finish(&r);
        /* Ask again the ordinary way, which prints the problem document. */
        return tamctl_api(a, "GET", path, NULL, NULL) != 0 ? TAMCTL_EXIT_API
                                                           : tamctl_usage_fail("no envelope");
    }
    size_t len = r.len;
    FILE *f = strcmp(file, "-") == 0 ? stdout : fopen(file, "wb");
    bool ok = f != NULL && fwrite(r.body, 1, r.len, f) == r.len;
    ok = f != NULL && (f == stdout ? fflush(f) == 0 : fclose(f) == 0) && ok;
    tamctl_reply_finish(&r);
    if (!ok) {
        return tamctl_usage_fail("cannot write %s", file);
    }
    if (f != stdout && !a->json) {
        printf("wrote %zu bytes to %s\n", len, file);
    }
    return 0;
}

int tamctl_admin_component(struct tamctl_admin *a, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (!tamctl_need_tenant(a)) {
        return TAMCTL_EXIT_USAGE;
    }
    if (strcmp(verb, "upload") == 0) {
        return component_upload(a, argc, argv);
    }
    if (strcmp(verb, "list") == 0 && argc == 2) {
        return component_list(a);
    }
    if (strcmp(verb, "show") == 0 && argc == 3) {
        return component_show(a, argv[2]);
    }
    if (strcmp(verb, "download") == 0 && argc == 4) {
        return component_download(a, argv[2], argv[3]);
    }
    if (strcmp(verb, "delete") == 0 && argc == 3) {
        char path[1400], msg[1500];
        if (!ref_path(a, argv[2], false, path, sizeof(path))) {
            return TAMCTL_EXIT_USAGE;
        }
        int rc = tamctl_api(a, "DELETE", path, NULL, NULL);
        snprintf(msg, sizeof(msg), "deleted component %s", argv[2]);
        if (rc == 0) {
            tamctl_done(a, msg);
        }
        return rc;
    }
    return tamctl_usage_fail("component: unknown command or arguments (upload, list, show, "
                             "download, delete; see tamctl --help)");
}
