/*
 * tamctl's admin API front: global options (--admin, --token-file, --tenant, --json,
 * --cacert and their environment variables), the token, the request/answer helpers every
 * admin command uses, and the dispatch to the command files.
 *
 * The token is read from a file (never from the command line, where `ps` would show it),
 * trimmed, sent only in the Authorization header and never printed.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"
#include "tamctl.h"
#include "tamctl_admin.h"

#define TOKEN_FILE_MAX 4096

int tamctl_usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = tamctl_vfail(TAMCTL_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return code;
}

char *tamctl_slurp(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        tamctl_usage_fail("cannot open %s", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = tam_malloc(cap + 1);
    size_t got = 0;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap && cap <= max) {
            char *b = tam_realloc(buf, cap * 2 + 1);
            if (b == NULL) {
                tam_free(buf);
            }
            buf = b;
            cap *= 2;
        }
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (buf == NULL || err || n > max) {
        tam_free(buf);
        tamctl_usage_fail("%s: unreadable or larger than %zu bytes", path, max);
        return NULL;
    }
    buf[n] = '\0';
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

/* Reads the token file into a->token (trimmed). Never echoes its content. */
static int load_token(struct tamctl_admin *a)
{
    if (a->token_file == NULL || a->token_file[0] == '\0') {
        return tamctl_usage_fail("no token: give --token-file FILE (or set TAMGATE_TOKEN_FILE)");
    }
    size_t n;
    char *t = tamctl_slurp(a->token_file, TOKEN_FILE_MAX, &n);
    if (t == NULL) {
        return TAMCTL_EXIT_USAGE;
    }
    size_t b = 0;
    while (b < n && isspace((unsigned char)t[b])) {
        b++;
    }
    while (n > b && isspace((unsigned char)t[n - 1])) {
        n--;
    }
    int rc = 0;
    if (n == b || n - b > TAMCTL_TOKEN_MAX) {
        rc = tamctl_usage_fail("%s: no token in the file", a->token_file);
    } else {
        memcpy(a->token, t + b, n - b);
        a->token[n - b] = '\0';
    }
    memset(t, 0, n);
    tam_free(t);
    return rc;
}

/* ---- answers ---- */

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *text;
    } k[] = {
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {422, "Unprocessable Content"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        if (k[i].status == status) {
            return k[i].text;
        }
    }
    return "HTTP error";
}

/* Prints s with control characters replaced, so the error stays one harmless line. */
static void put_clean(const char *s, FILE *f)
{
    for (size_t i = 0; s[i] != '\0' && i < 1024; i++) {
        unsigned char c = (unsigned char)s[i];
        fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
    }
}

static int report_error(const struct tamctl_reply *r)
{
    json_t *j = json_loadb((const char *)r->body, r->len, 0, NULL);
    const char *title = json_string_value(json_object_get(j, "title"));
    const char *detail = json_string_value(json_object_get(j, "detail"));
    /* "403 Forbidden: <detail>": the problem titles are per status, the detail says why. */
    const char *why = detail != NULL ? detail : title;
    fprintf(stderr, "tamctl: %d %s", r->status, reason_phrase(r->status));
    if (why != NULL) {
        fputs(": ", stderr);
        put_clean(why, stderr);
    }
    fputc('\n', stderr);
    json_decref(j);
    return TAMCTL_EXIT_API;
}

static int connect_once(struct tamctl_admin *a)
{
    if (a->http != NULL) {
        return 0;
    }
    return tamctl_http_open(a->url, a->cacert, a->token, &a->http);
}

int tamctl_api_raw(struct tamctl_admin *a, const char *method, const char *path, const char *ctype,
                   const void *body, size_t len, json_t **jout)
{
    if (jout != NULL) {
        *jout = NULL;
    }
    int rc = connect_once(a);
    struct tamctl_reply r;
    if (rc == 0) {
        rc = tamctl_http_call(a->http, method, path, ctype, body, len, NULL, &r);
    }
    if (rc != 0) {
        return rc;
    }
    if (r.status < 200 || r.status > 299) {
        rc = report_error(&r);
    } else if (jout != NULL && r.len > 0) {
        *jout = json_loadb((const char *)r.body, r.len, 0, NULL);
        if (*jout == NULL) {
            fprintf(stderr, "tamctl: %d answer is not JSON\n", r.status);
            rc = TAMCTL_EXIT_API;
        }
    }
    tamctl_reply_finish(&r);
    return rc;
}

int tamctl_api(struct tamctl_admin *a, const char *method, const char *path, json_t *jbody,
               json_t **jout)
{
    char *text = NULL;
    if (jbody != NULL) {
        text = json_dumps(jbody, JSON_COMPACT);
        json_decref(jbody);
        if (text == NULL) {
            return tamctl_usage_fail("cannot encode the request");
        }
    }
    int rc = tamctl_api_raw(a, method, path, text != NULL ? "application/json" : NULL, text,
                            text != NULL ? strlen(text) : 0, jout);
    free(text); /* allocated by jansson */
    return rc;
}

/* ---- paths and formatting ---- */

bool tamctl_segment_ok(const char *s, const char *what)
{
    size_t n = strlen(s);
    bool ok = n > 0 && n <= 1100;
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-';
    }
    if (!ok) {
        tamctl_usage_fail("bad %s %s", what, s);
    }
    return ok;
}

bool tamctl_need_tenant(const struct tamctl_admin *a)
{
    if (a->tenant == NULL || a->tenant[0] == '\0') {
        tamctl_usage_fail("this command needs --tenant ID (or TAMGATE_TENANT)");
        return false;
    }
    return tamctl_segment_ok(a->tenant, "tenant id");
}

bool tamctl_tenant_path(const struct tamctl_admin *a, char *out, size_t n, const char *suffix)
{
    int w = snprintf(out, n, "/v1/tenants/%s%s", a->tenant, suffix);
    if (w < 0 || (size_t)w >= n) {
        tamctl_usage_fail("argument too long");
        return false;
    }
    return true;
}

const char *tamctl_fmt_ms(json_t *v, char *buf, size_t n)
{
    if (!json_is_integer(v)) {
        snprintf(buf, n, "-");
        return buf;
    }
    json_int_t ms = json_integer_value(v);
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, n, "%lld", (long long)ms);
    }
    return buf;
}

const char *tamctl_fmt_join(json_t *arr, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < json_array_size(arr) && used < n; i++) {
        char one[256];
        tamctl_fmt_scalar(json_array_get(arr, i), one, sizeof(one));
        int w = snprintf(buf + used, n - used, "%s%s", i > 0 ? "," : "", one);
        used += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

const char *tamctl_fmt_scalar(json_t *v, char *buf, size_t n)
{
    if (json_is_string(v)) {
        snprintf(buf, n, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_array(v)) {
        tamctl_fmt_join(v, buf, n);
    } else {
        snprintf(buf, n, "-");
    }
    return buf;
}

void tamctl_kv(const char *k, const char *v)
{
    printf("%-16s %s\n", k, v != NULL && v[0] != '\0' ? v : "-");
}

void tamctl_print_answer(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        free(s); /* allocated by jansson */
    }
}

int tamctl_show(const struct tamctl_admin *a, int rc, json_t *j, void (*print)(json_t *j))
{
    if (rc == 0 && a->json) {
        tamctl_print_answer(j);
    } else if (rc == 0) {
        print(j);
    }
    json_decref(j);
    return rc;
}

void tamctl_done(const struct tamctl_admin *a, const char *what)
{
    if (!a->json) {
        printf("%s\n", what);
    }
}

/* ---- dispatch ---- */

static const char *const nouns[] = {"tenant", "anchor", "device", "component", "policy", NULL};

static bool is_noun(const char *s)
{
    for (size_t i = 0; nouns[i] != NULL; i++) {
        if (strcmp(s, nouns[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_global(const char *s)
{
    return strcmp(s, "--admin") == 0 || strcmp(s, "--token-file") == 0 ||
           strcmp(s, "--cacert") == 0 || strcmp(s, "--tenant") == 0 || strcmp(s, "--json") == 0;
}

bool tamctl_admin_applies(int argc, char **argv)
{
    return argc >= 2 && (is_noun(argv[1]) || is_global(argv[1]));
}

void tamctl_admin_usage(FILE *f)
{
    fputs(
        "\n"
        "Admin API (global options: --admin URL [TAMGATE_ADMIN, default " TAMCTL_DEFAULT_ADMIN
        "],\n"
        "  --token-file FILE [TAMGATE_TOKEN_FILE], --tenant ID [TAMGATE_TENANT], --json,\n"
        "  --cacert PEM for https; exit 1 API error, 2 usage, 3 admin API unreachable):\n"
        "  tenant create ID [--numbering rfc|draft|draft12] [--attestation none|required]\n"
        "         [--enrollment registered|attested] [--tam-key PEM]... [--manifest-key PEM]\n"
        "         [--token-out FILE] [key=value...]\n"
        "  tenant list | show ID | set ID key=value... | delete ID\n"
        "  tenant token ID [--token-out FILE] | revoke-tokens ID\n"
        "  anchor add tc-signer|attester|verifier PEMFILE | list | show [KIND] KID\n"
        "  anchor delete [KIND] KID\n"
        "  device add PEMFILE [--label L]... | list [--label L] | show KID\n"
        "  device set KID [--label L]... | delete KID\n"
        "  component upload ENVELOPE_FILE\n"
        "  component upload --binary FILE --component-id HEX[,HEX...] --sequence N\n"
        "         [--delivery integrated|uri] [--uri URI] [--vendor-id HEX32] [--class-id HEX32]\n"
        "         [--manifest-component-id HEX[,HEX...]] [--dependency HEX[,HEX...]]...\n"
        "  component list | show CID[/SEQ] | download CID/SEQ FILE | delete CID[/SEQ]\n"
        "  policy set FILE.json | show\n"
        "  Tenant commands use the operator token; anchor, device, component and policy\n"
        "  commands use a tenant token and --tenant.\n",
        f);
}

static int parse_globals(struct tamctl_admin *a, int argc, char **argv, char **rest, int *nrest)
{
    *nrest = 0;
    for (int i = 1; i < argc; i++) {
        const char **slot = strcmp(argv[i], "--admin") == 0        ? &a->url
                            : strcmp(argv[i], "--token-file") == 0 ? &a->token_file
                            : strcmp(argv[i], "--cacert") == 0     ? &a->cacert
                            : strcmp(argv[i], "--tenant") == 0     ? &a->tenant
                                                                   : NULL;
        if (slot != NULL) {
            if (i + 1 >= argc) {
                return tamctl_usage_fail("%s needs a value", argv[i]);
            }
            *slot = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            a->json = true;
        } else {
            rest[(*nrest)++] = argv[i];
        }
    }
    rest[*nrest] = NULL;
    return 0;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return true;
        }
    }
    return argc < 2;
}

static int run(struct tamctl_admin *a, int argc, char **argv)
{
    if (argc == 0 || !is_noun(argv[0])) {
        tamctl_admin_usage(stderr);
        return TAMCTL_EXIT_USAGE;
    }
    if (wants_help(argc, argv)) {
        fputs("usage: tamctl [global options] <command> ...\n", stdout);
        tamctl_admin_usage(stdout);
        return argc < 2 ? TAMCTL_EXIT_USAGE : 0;
    }
    int rc = load_token(a);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(argv[0], "tenant") == 0) {
        return tamctl_admin_tenant(a, argc, argv);
    }
    if (strcmp(argv[0], "anchor") == 0) {
        return tamctl_admin_anchor(a, argc, argv);
    }
    if (strcmp(argv[0], "device") == 0) {
        return tamctl_admin_device(a, argc, argv);
    }
    if (strcmp(argv[0], "component") == 0) {
        return tamctl_admin_component(a, argc, argv);
    }
    return tamctl_admin_policy(a, argc, argv);
}

int tamctl_admin_main(int argc, char **argv)
{
    struct tamctl_admin a = {
        .url = getenv("TAMGATE_ADMIN"),
        .token_file = getenv("TAMGATE_TOKEN_FILE"),
        .tenant = getenv("TAMGATE_TENANT"),
    };
    if (a.url == NULL || a.url[0] == '\0') {
        a.url = TAMCTL_DEFAULT_ADMIN;
    }
    char **rest = tam_calloc((size_t)argc + 1, sizeof(*rest));
    if (rest == NULL) {
        return tamctl_usage_fail("out of memory");
    }
    int nrest = 0;
    int rc = parse_globals(&a, argc, argv, rest, &nrest);
    if (rc == 0) {
        rc = run(&a, nrest, rest);
    }
    tamctl_http_close(a.http);
    memset(a.token, 0, sizeof(a.token));
    tam_free(rest);
    return rc;
}
