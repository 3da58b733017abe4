/* tamctl device ... and tamctl policy ... (tenant token, --tenant). */
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tamctl_admin.h"

#define PEM_MAX        (64u * 1024u)
#define POLICY_MAX     (1u << 20)
#define LIST_PAGES_MAX 100000u
#define LABELS_MAX     64

/* Appends the percent-encoded s to out (n bytes); false if it does not fit. */
static bool pct_encode(const char *s, char *out, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strlen(out);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (o + 4 > n) {
            return false;
        }
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

/* ---- device ---- */

/* Collects "--label L" options from argv[from..] into labels; other words are errors. */
static int parse_labels(int argc, char **argv, int from, json_t *labels)
{
    for (int i = from; i < argc; i++) {
        if (strcmp(argv[i], "--label") != 0 || i + 1 >= argc) {
            return tamctl_usage_fail("%s: unexpected argument %s", argv[0], argv[i]);
        }
        if (json_array_size(labels) >= LABELS_MAX) {
            return tamctl_usage_fail("at most %d labels", LABELS_MAX);
        }
        json_array_append_new(labels, json_string(argv[++i]));
    }
    return 0;
}

static int device_add(struct tamctl_admin *a, int argc, char **argv)
{
    if (argc < 3 || argv[2][0] == '-') {
        return tamctl_usage_fail("usage: tamctl device add PEMFILE [--label L]...");
    }
    json_t *labels = json_array();
    char path[160];
    int rc = parse_labels(argc, argv, 3, labels);
    char *pem = rc == 0 ? tamctl_slurp(argv[2], PEM_MAX, NULL) : NULL;
    if (pem == NULL || !tamctl_tenant_path(a, path, sizeof(path), "/devices")) {
        json_decref(labels);
        tam_free(pem);
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    rc = tamctl_api(a, "POST", path, json_pack("{s:s, s:o}", "public_pem", pem, "labels", labels),
                    &j);
    tam_free(pem);
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        printf("registered device %s\n", json_string_value(json_object_get(j, "kid")));
    }
    json_decref(j);
    return rc;
}

static void device_rows(struct tamctl_table *t, json_t *devs)
{
    for (size_t i = 0; i < json_array_size(devs); i++) {
        json_t *d = json_array_get(devs, i);
        char labels[1024], seen[64], created[64];
        const char *row[] = {
            json_string_value(json_object_get(d, "kid")),
            json_string_value(json_object_get(d, "key_type")),
            tamctl_fmt_join(json_object_get(d, "labels"), labels, sizeof(labels)),
            json_string_value(json_object_get(d, "status")),
            tamctl_fmt_ms(json_object_get(d, "last_seen"), seen, sizeof(seen)),
            tamctl_fmt_ms(json_object_get(d, "created"), created, sizeof(created))};
        tamctl_table_add(t, row);
    }
}

/* One page; *cursor in: "" for the first, out: the next one or "" at the end. */
static int device_page(struct tamctl_admin *a, const char *label, char *cursor, size_t n,
                       json_t **out)
{
    char q[512] = "/devices?limit=1000";
    if (label != NULL) {
        snprintf(q + strlen(q), sizeof(q) - strlen(q), "&label=");
        if (!pct_encode(label, q, sizeof(q))) {
            return tamctl_usage_fail("label too long");
        }
    }
    if (cursor[0] != '\0') {
        snprintf(q + strlen(q), sizeof(q) - strlen(q), "&cursor=%s", cursor);
    }
    char path[700];
    if (!tamctl_tenant_path(a, path, sizeof(path), q)) {
        return TAMCTL_EXIT_USAGE;
    }
    int rc = tamctl_api(a, "GET", path, NULL, out);
    const char *next = json_string_value(json_object_get(*out, "next_cursor"));
    snprintf(cursor, n, "%s", rc == 0 && next != NULL && strlen(next) < 32 ? next : "");
    return rc;
}

/* Every page, merged into the first answer (next_cursor null) for --json. */
static int device_list(struct tamctl_admin *a, int argc, char **argv)
{
    const char *label = NULL;
    if (argc == 4 && strcmp(argv[2], "--label") == 0) {
        label = argv[3];
    } else if (argc != 2) {
        return tamctl_usage_fail("usage: tamctl device list [--label L]");
    }
    char cursor[32] = "";
    json_t *all = NULL;
    int rc = device_page(a, label, cursor, sizeof(cursor), &all);
    for (unsigned pages = 1; rc == 0 && cursor[0] != '\0' && pages < LIST_PAGES_MAX; pages++) {
        json_t *more = NULL;
        rc = device_page(a, label, cursor, sizeof(cursor), &more);
        json_array_extend(json_object_get(all, "devices"), json_object_get(more, "devices"));
        json_decref(more);
    }
    if (rc == 0 && a->json) {
        json_object_set_new(all, "next_cursor", json_null());
        tamctl_print_answer(all);
    } else if (rc == 0) {
        static const char *const head[] = {"KID",       "KEY_TYPE", "LABELS", "STATUS",
                                           "LAST_SEEN", "CREATED",  NULL};
        struct tamctl_table t;
        tamctl_table_init(&t, head);
        device_rows(&t, json_object_get(all, "devices"));
        tamctl_table_print(&t, stdout);
    }
    json_decref(all);
    return rc;
}

static void print_installed(json_t *arr)
{
    static const char *const head[] = {"COMPONENT_ID", "SEQUENCE", "MANIFEST_COMPONENT_ID",
                                       "DIGEST", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        char cid[1024], seq[32], mcid[1024];
        const char *row[] = {
            tamctl_fmt_join(json_object_get(e, "component_id"), cid, sizeof(cid)),
            tamctl_fmt_scalar(json_object_get(e, "sequence"), seq, sizeof(seq)),
            tamctl_fmt_join(json_object_get(e, "manifest_component_id"), mcid, sizeof(mcid)),
            json_string_value(json_object_get(e, "digest"))};
        tamctl_table_add(&t, row);
    }
    tamctl_table_print(&t, stdout);
}

static void print_history(json_t *arr)
{
    static const char *const head[] = {"TIME", "EVENT", "ERR", "DETAIL", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = json_array_get(arr, i);
        char ms[64];
        const char *row[] = {tamctl_fmt_ms(json_object_get(e, "ms"), ms, sizeof(ms)),
                             json_string_value(json_object_get(e, "event")),
                             json_string_value(json_object_get(e, "err")),
                             json_string_value(json_object_get(e, "detail"))};
        tamctl_table_add(&t, row);
    }
    tamctl_table_print(&t, stdout);
}

static void print_device(json_t *j)
{
    char b[1024];
    json_t *att = json_object_get(j, "attestation");
    tamctl_kv("KID", json_string_value(json_object_get(j, "kid")));
    tamctl_kv("KEY_TYPE", json_string_value(json_object_get(j, "key_type")));
    tamctl_kv("LABELS", tamctl_fmt_join(json_object_get(j, "labels"), b, sizeof(b)));
    tamctl_kv("STATUS", json_string_value(json_object_get(j, "status")));
    tamctl_kv("ATTESTATION", json_string_value(json_object_get(att, "status")));
    static const char *const claims[][2] = {
        {"UEID", "ueid"}, {"OEMID", "oemid"}, {"HWMODEL", "hwmodel"}};
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(att, claims[i][1]));
        if (v != NULL) {
            tamctl_kv(claims[i][0], v);
        }
    }
    tamctl_kv("CREATED", tamctl_fmt_ms(json_object_get(j, "created"), b, sizeof(b)));
    tamctl_kv("LAST_SEEN", tamctl_fmt_ms(json_object_get(j, "last_seen"), b, sizeof(b)));
    printf("\nINSTALLED (%zu)\n", json_array_size(json_object_get(j, "installed")));
    print_installed(json_object_get(j, "installed"));
    printf("\nHISTORY (%zu)\n", json_array_size(json_object_get(j, "history")));
    print_history(json_object_get(j, "history"));
}

/* device show|set|delete KID ... */
static int device_one(struct tamctl_admin *a, const char *verb, int argc, char **argv)
{
    char suffix[160], path[320];
    if (argc < 3 || !tamctl_segment_ok(argv[2], "kid") || (strcmp(verb, "set") != 0 && argc != 3)) {
        return tamctl_usage_fail("usage: tamctl device %s KID%s", verb,
                                 strcmp(verb, "set") == 0 ? " [--label L]..." : "");
    }
    snprintf(suffix, sizeof(suffix), "/devices/%s", argv[2]);
    if (!tamctl_tenant_path(a, path, sizeof(path), suffix)) {
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc;
    if (strcmp(verb, "delete") == 0) {
        rc = tamctl_api(a, "DELETE", path, NULL, NULL);
        snprintf(suffix, sizeof(suffix), "deleted device %s", argv[2]);
        if (rc == 0) {
            tamctl_done(a, suffix);
        }
        return rc;
    }
    if (strcmp(verb, "set") == 0) {
        json_t *labels = json_array();
        rc = parse_labels(argc, argv, 3, labels);
        rc = rc == 0 ? tamctl_api(a, "PATCH", path, json_pack("{s:o}", "labels", labels), &j)
                     : (json_decref(labels), rc);
    } else {
        rc = tamctl_api(a, "GET", path, NULL, &j);
    }
    return tamctl_show(a, rc, j, print_device);
}

int tamctl_admin_device(struct tamctl_admin *a, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (!tamctl_need_tenant(a)) {
        return TAMCTL_EXIT_USAGE;
    }
    if (strcmp(verb, "add") == 0) {
        return device_add(a, argc, argv);
    }
    if (strcmp(verb, "list") == 0) {
        return device_list(a, argc, argv);
    }
    if (strcmp(verb, "show") == 0 || strcmp(verb, "set") == 0 || strcmp(verb, "delete") == 0) {
        return device_one(a, verb, argc, argv);
    }
    return tamctl_usage_fail("device: unknown command %s (add, list, show, set, delete)", verb);
}

/* ---- policy ---- */

static const char *rule_match(json_t *m, char *buf, size_t n)
{
    const char *dev = json_string_value(json_object_get(m, "device"));
    json_t *labels = json_object_get(m, "labels");
    if (dev != NULL) {
        snprintf(buf, n, "device %s", dev);
    } else if (json_array_size(labels) > 0) {
        char l[512];
        snprintf(buf, n, "labels %s", tamctl_fmt_join(labels, l, sizeof(l)));
    } else {
        snprintf(buf, n, "every device");
    }
    return buf;
}

/* "[cid,cid]>=N; ..." for an install or remove list. */
static const char *rule_items(json_t *arr, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(arr) && used < n; i++) {
        json_t *e = json_array_get(arr, i);
        char cid[512];
        tamctl_fmt_join(json_object_get(e, "component_id"), cid, sizeof(cid));
        json_t *min = json_object_get(e, "min_sequence");
        int w = json_is_integer(min)
                    ? snprintf(buf + used, n - used, "%s[%s]>=%lld", i > 0 ? " " : "", cid,
                               (long long)json_integer_value(min))
                    : snprintf(buf + used, n - used, "%s[%s]", i > 0 ? " " : "", cid);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static void print_policy(json_t *j)
{
    const char *req = json_string_value(json_object_get(j, "requested"));
    printf("requested: %s\n", req != NULL ? req : "allow");
    static const char *const head[] = {"RULE", "MATCH", "INSTALL", "REMOVE", NULL};
    struct tamctl_table t;
    tamctl_table_init(&t, head);
    json_t *rules = json_object_get(j, "rules");
    for (size_t i = 0; i < json_array_size(rules); i++) {
        json_t *r = json_array_get(rules, i);
        char no[24], m[256], ins[2048], rem[2048];
        snprintf(no, sizeof(no), "%zu", i + 1);
        const char *row[] = {no, rule_match(json_object_get(r, "match"), m, sizeof(m)),
                             rule_items(json_object_get(r, "install"), ins, sizeof(ins)),
                             rule_items(json_object_get(r, "remove"), rem, sizeof(rem))};
        tamctl_table_add(&t, row);
    }
    tamctl_table_print(&t, stdout);
    if (json_object_get(j, "attestation") != NULL) {
        char *s = json_dumps(json_object_get(j, "attestation"), JSON_COMPACT);
        printf("attestation: %s\n", s != NULL ? s : "?");
        free(s); /* allocated by jansson */
    }
}

int tamctl_admin_policy(struct tamctl_admin *a, int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    char path[160];
    if (!tamctl_need_tenant(a) || !tamctl_tenant_path(a, path, sizeof(path), "/policy")) {
        return TAMCTL_EXIT_USAGE;
    }
    json_t *j = NULL;
    int rc;
    if (strcmp(verb, "show") == 0 && argc == 2) {
        rc = tamctl_api(a, "GET", path, NULL, &j);
    } else if (strcmp(verb, "set") == 0 && argc == 3) {
        size_t len;
        char *doc = tamctl_slurp(argv[2], POLICY_MAX, &len);
        if (doc == NULL) {
            return TAMCTL_EXIT_USAGE;
        }
        /* Sent as written: the server validates it in full and names the bad member. */
        rc = tamctl_api_raw(a, "PUT", path, "application/json", doc, len, &j);
        tam_free(doc);
    } else {
        return tamctl_usage_fail("usage: tamctl policy show | policy set FILE.json");
    }
    return tamctl_show(a, rc, j, print_policy);
}
