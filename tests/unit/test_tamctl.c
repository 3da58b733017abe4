/* tamctl's offline commands, run as a real program on the spec vectors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "testutil.h"

struct run {
    int status;
    char out[65536];
    char err[4096];
};

/* Runs tamctl with args (shell words) and captures stdout, stderr and the exit status. */
static void tamctl(struct run *r, const char *args)
{
    const char *root = getenv("TAM_BUILD_ROOT");
    char errpath[] = "/tmp/tamctl-err-XXXXXX";
    int fd = mkstemp(errpath);
    cr_assert_geq(fd, 0);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd %s && %s/src/tools/tamctl %s 2>%s", tu_vector_path(""),
             root != NULL ? root : "build", args, errpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(r->out, 1, sizeof(r->out) - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fdopen(fd, "r");
    n = fread(r->err, 1, sizeof(r->err) - 1, e);
    r->err[n] = '\0';
    fclose(e);
    unlink(errpath);
}

Test(tamctl, teep_decode_every_vector_in_its_numbering)
{
    const char *const cases[][3] = {
        {"teep26_query_request.hex", "rfc", "\"type\": \"query-request\""},
        {"teep26_query_response.hex", "rfc", "\"type\": \"query-response\""},
        {"teep26_update.hex", "rfc", "\"bytes\": 334"},
        {"teep26_success.hex", "rfc", "\"type\": \"success\""},
        {"teep26_error.hex", "rfc", "ERR_MANIFEST_PROCESSING_FAILED"},
        {"teep_query_request.hex", "draft", "\"data-item-requested\": 3"},
        {"teep_query_response.hex", "draft", "0102030405060708090a0b0c0d0e0f"},
        {"teep_update.hex", "draft", "\"type\": \"update\""},
        {"teep_success.hex", "draft", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"},
        {"teep_error.hex", "draft", "\"err-msg\": \"disk-full\""},
        {"derived_sign1_esp256_teep26_query_request.hex", "rfc", "\"alg\": -9"},
        {"derived_sign_esp256_ed25519_teep_query_request.hex", "draft", "COSE_Sign\""},
        {"legacy_libteep_query_request_cose.hex", "draft12", "\"alg\": -7"},
        {"legacy_libteep_teep_success_cose.hex", "draft12", "\"type\": \"success\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        char args[512];
        snprintf(args, sizeof(args), "teep decode --numbering %s %s", cases[i][1], cases[i][0]);
        tamctl(&r, args);
        cr_assert_eq(r.status, 0, "%s: %s", args, r.err);
        cr_assert_not_null(strstr(r.out, cases[i][2]), "%s: want %s in\n%s", args, cases[i][2],
                           r.out);
    }
}

Test(tamctl, teep_decode_reads_stdin_and_binary)
{
    struct run r;
    tamctl(&r, "teep decode - < teep26_success.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tamctl(&r, "teep decode --numbering draft /dev/stdin < teep_success.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* Binary input: the Success message bytes themselves (21 bytes, not hex text). */
    FILE *f = fopen("/tmp/tamctl-success.bin", "wb");
    cr_assert_not_null(f);
    size_t len;
    uint8_t *bin = tu_load_hex("teep26_success.hex", &len);
    cr_assert_eq(fwrite(bin, 1, len, f), len);
    fclose(f);
    tam_free(bin);
    tamctl(&r, "teep decode /tmp/tamctl-success.bin");
    unlink("/tmp/tamctl-success.bin");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"type\": \"success\""));
}

Test(tamctl, bad_input_gives_one_line_reason)
{
    struct run r;
    tamctl(&r, "teep decode --numbering draft teep26_success.hex");
    cr_assert_neq(r.status, 0, "type 4 is not a message type in the draft numbering");
    cr_assert_not_null(strstr(r.err, "tamctl: "));
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "exactly one line: %s", r.err);
    tamctl(&r, "teep decode --numbering nope teep26_success.hex");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "teep decode missing-file.hex");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "teep decode tam_p256.pub.pem");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "frobnicate");
    cr_assert_eq(r.status, 2);
}

Test(tamctl, cose_verify)
{
    struct run r;
    tamctl(&r, "cose verify --key tam_p256.pub.pem derived_sign1_esp256_teep26_query_request.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"valid\": true"));
    tamctl(
        &r,
        "cose verify --key tam_ed25519.pub.pem derived_sign_esp256_ed25519_teep_query_request.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tamctl(&r,
           "cose verify --key agent_p256.pub.pem derived_sign1_esp256_teep26_query_request.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.out, "\"valid\": false"));
    cr_assert_not_null(strstr(r.err, "does not verify"));
    tamctl(&r, "cose verify --key tam_p256.pub.pem teep26_success.hex");
    cr_assert_eq(r.status, 1, "a bare TEEP message is not COSE");
}

Test(tamctl, suit_inspect)
{
    struct run r;
    tamctl(&r, "suit inspect --key suit_example_key_p256.pub.pem teep_suit_uri.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"signature\": \"valid\""));
    cr_assert_not_null(strstr(r.out, "\"sequence-number\": 3"));
    cr_assert_not_null(
        strstr(r.out, "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"));
    cr_assert_not_null(strstr(r.out, "73756974"), "manifest-component-id ends in 'suit'");
    tamctl(&r, "suit inspect suit_manifest_example2.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "digest-ok-signature-not-checked"));
    tamctl(&r, "suit inspect --key tam_p256.pub.pem teep_suit_uri.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.out, "\"signature\": \"invalid\""));
    tamctl(&r, "suit inspect teep26_success.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "not a SUIT envelope"));
}

/* ======================================================================================
 * The admin commands against the real admin API: tam_admin on a tam_http_server
 * (127.0.0.1, ephemeral port) with its own loop in a thread, on a private redis-server.
 * tamctl runs as a subprocess, as an operator and a tenant would run it.
 * ====================================================================================== */

#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <uv.h>

#include "admin_fixture.h"
#include "redis_fixture.h"
#include "tam/admin.h"
#include "tam/err.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/seal.h"
#include "tam/tls.h"
#include "tam/tstore.h"

static struct tu_admin A;
static char admin_base[160]; /* "--admin http://127.0.0.1:PORT" */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_geq(fputs(text, f), 0);
    fclose(f);
}

/* A self-signed P-256 certificate for localhost: DIR/<name>.pem and DIR/<name>.key. */
static void make_cert(const char *dir, const char *name, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
             "-subj /CN=%s -addext subjectAltName=DNS:%s -keyout %s/%s.key -out %s/%s.pem "
             ">/dev/null 2>&1",
             cn, cn, dir, name, dir, name);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void admin_start_with(bool tls)
{
    tam_log_configure(TAM_LOG_WARN, TAM_LOG_LOGFMT, "test_tamctl");
    unsetenv("TAMGATE_ADMIN");
    unsetenv("TAMGATE_TOKEN_FILE");
    unsetenv("TAMGATE_TENANT");
    tu_admin_init(&A, "tamctl-admin");
    struct tam_tls_ctx *ctx = NULL;
    if (tls) {
        char cert[128], key[128];
        make_cert(A.dir, "server", "localhost");
        make_cert(A.dir, "other", "localhost");
        snprintf(cert, sizeof(cert), "%s/server.pem", A.dir);
        snprintf(key, sizeof(key), "%s/server.key", A.dir);
        struct tam_tls_options to = {.cert_file = cert, .key_file = key};
        cr_assert_eq(tam_tls_ctx_create(&to, &ctx), TAM_OK);
    }
    tu_admin_serve(&A, false, ctx);
    tam_tls_ctx_unref(ctx); /* the server holds its own reference */
    snprintf(admin_base, sizeof(admin_base), "--admin %s://%s:%u", tls ? "https" : "http",
             tls ? "localhost" : "127.0.0.1", A.port);
    char p[128];
    snprintf(p, sizeof(p), "%s/op.tok", A.dir);
    char tok[64];
    snprintf(tok, sizeof(tok), "  %s\n\n", A.op); /* whitespace is trimmed */
    write_file(p, tok);
}

static void admin_start(void)
{
    admin_start_with(false);
}

static void admin_start_tls(void)
{
    admin_start_with(true);
}

static void admin_stop(void)
{
    tu_admin_stop(&A);
}

/* tamctl --admin URL <args>, args formatted; the tokens live in A.dir. */
static void ctl(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl(struct run *r, const char *fmt, ...)
{
    char args[4096], line[4400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s %s", admin_base, args);
    tamctl(r, line);
}

static void assert_one_line(const struct run *r)
{
    size_t n = strlen(r->err);
    cr_assert(n > 0 && strchr(r->err, '\n') == r->err + n - 1, "one line expected: [%s]", r->err);
}

/* The column of `word` in the first line of text that contains `key`; -1 if absent. */
static long column_of(const char *text, const char *key, const char *word)
{
    const char *l = strstr(text, key);
    if (l == NULL) {
        return -1;
    }
    while (l > text && l[-1] != '\n') {
        l--;
    }
    const char *eol = strchr(l, '\n');
    const char *w = strstr(l, word);
    return w != NULL && (eol == NULL || w < eol) ? (long)(w - l) : -1;
}

TestSuite(tamctl_admin, .init = admin_start, .fini = admin_stop, .timeout = 60);

Test(tamctl_admin, operator_and_tenant_scenario)
{
    struct run r;
    const char *d = A.dir;
    /* The operator creates a tenant; its token goes to a 0600 file, never to the screen. */
    ctl(&r,
        "--token-file %s/op.tok tenant create acme --numbering draft --attestation none "
        "--token-out %s/acme.tok",
        d, d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "tenant acme created, TEEP URI /tam/acme"), "%s", r.out);
    char p[128];
    snprintf(p, sizeof(p), "%s/acme.tok", d);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    size_t tl;
    char tok[64];
    {
        FILE *f = fopen(p, "r");
        char buf[128] = {0};
        cr_assert_not_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        tl = strlen(buf);
        cr_assert_eq(tl, TAM_TSTORE_TOKEN_LEN + 1, "token + newline: %s", buf);
        buf[TAM_TSTORE_TOKEN_LEN] = '\0';
        snprintf(tok, sizeof(tok), "%.*s", TAM_TSTORE_TOKEN_LEN, buf);
    }
    cr_assert_null(strstr(r.out, tok), "the token is not printed with --token-out");
    ctl(&r, "--token-file %s/op.tok tenant create beta", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "token (shown once"), "%s", r.out);

    /* tenant list: an aligned table. */
    ctl(&r, "--token-file %s/op.tok tenant list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(strncmp(r.out, "ID  ", 4), 0, "%s", r.out);
    long col = column_of(r.out, "ID ", "NUMBERING");
    cr_assert_gt(col, 0);
    cr_assert_eq(column_of(r.out, "acme ", "draft"), col, "%s", r.out);
    cr_assert_eq(column_of(r.out, "beta ", "rfc"), col, "%s", r.out);
    cr_assert_eq(column_of(r.out, "ID ", "ATTESTATION"), column_of(r.out, "acme ", "none"));
    ctl(&r, "--json --token-file %s/op.tok tenant list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    cr_assert_not_null(j, "%s", r.out);
    cr_assert_eq(json_array_size(json_object_get(j, "tenants")), 2);
    json_decref(j);

    /* show and set (PATCH with key=value, dotted keys for limits). */
    ctl(&r, "--token-file %s/op.tok tenant set acme limits.max_devices=5 sign1_only=true", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "max_devices=5"), "%s", r.out);
    cr_assert(column_of(r.out, "SIGN1_ONLY", "true") > 0, "%s", r.out);
    ctl(&r, "--token-file %s/op.tok tenant show acme --json", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"tam_uri\": \"/tam/acme\""), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\"numbering\": \"draft\""), "%s", r.out);
    ctl(&r, "--token-file %s/op.tok tenant set acme numbering=nope", d);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "tamctl: 422 "), "%s", r.err);
    assert_one_line(&r);

    /* The tenant adds a TC signer anchor. */
    ctl(&r,
        "--token-file %s/acme.tok --tenant acme anchor add tc-signer "
        "suit_example_key_p256.pub.pem",
        d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "added tc-signer anchor "), "%s", r.out);
    ctl(&r, "--token-file %s/acme.tok --tenant acme anchor list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(column_of(r.out, "tc-signer", "p256") == column_of(r.out, "KIND", "KEY_TYPE"), "%s",
              r.out);

    /* registers a device with labels */
    ctl(&r,
        "--token-file %s/acme.tok --tenant acme device add agent_p256.pub.pem "
        "--label beta --label eu",
        d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    char kid[65] = {0};
    const char *k = strstr(r.out, "registered device ");
    cr_assert_not_null(k, "%s", r.out);
    memcpy(kid, k + strlen("registered device "), 64);
    ctl(&r, "--token-file %s/acme.tok --tenant acme device show %s", d, kid);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "INSTALLED (0)"), "%s", r.out);

    /* uploads a signed envelope (hex file) */
    ctl(&r, "--token-file %s/acme.tok --tenant acme component upload teep_suit_uri.hex", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "stored envelope component 544545502d446576696365,"), "%s",
                       r.out);
    ctl(&r, "--token-file %s/acme.tok --tenant acme component list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "544545502d446576696365,"), "%s", r.out);
    cr_assert_eq(column_of(r.out, "COMPONENT_ID", "SEQUENCE"), column_of(r.out, "5445", "3 "));
    ctl(&r, "--token-file %s/acme.tok --tenant acme component upload teep_suit_uri.hex", d);
    cr_assert_eq(r.status, 1, "the same version twice");
    cr_assert_not_null(strstr(r.err, "tamctl: 409 "), "%s", r.err);

    /* sets and shows the policy */
    snprintf(p, sizeof(p), "%s/policy.json", d);
    write_file(p, "{\"rules\": [{\"match\": {\"labels\": [\"beta\"]}, \"install\": "
                  "[{\"component_id\": [\"544545502d446576696365\"], \"min_sequence\": 3}]}]}");
    ctl(&r, "--token-file %s/acme.tok --tenant acme policy set %s", d, p);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ctl(&r, "--token-file %s/acme.tok --tenant acme policy show", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "labels beta"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "[544545502d446576696365]>=3"), "%s", r.out);
    ctl(&r, "--token-file %s/acme.tok --tenant acme policy show --json", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    j = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "rules")), 1, "%s", r.out);
    json_decref(j);

    /* lists devices: table and JSON, with and without a label filter */
    ctl(&r, "--token-file %s/acme.tok --tenant acme device list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(strncmp(r.out, "KID ", 4), 0, "%s", r.out);
    cr_assert_not_null(strstr(r.out, kid), "%s", r.out);
    cr_assert_eq(column_of(r.out, kid, "beta,eu"), column_of(r.out, "KID", "LABELS"), "%s", r.out);
    cr_assert_eq(column_of(r.out, kid, "registered"), column_of(r.out, "KID", "STATUS"));
    /* The operator's tenant list counts acme's one device. */
    ctl(&r, "--token-file %s/op.tok tenant list", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(column_of(r.out, "acme ", "1 "), column_of(r.out, "ID ", "DEVICES"), "%s", r.out);
    ctl(&r, "--token-file %s/acme.tok --tenant acme device list --label eu --json", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    j = json_loads(r.out, 0, NULL);
    cr_assert_not_null(j, "%s", r.out);
    cr_assert_eq(json_array_size(json_object_get(j, "devices")), 1);
    cr_assert(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    ctl(&r, "--token-file %s/acme.tok --tenant acme device list --label none", d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_null(strstr(r.out, kid));

    /* A second token for the tenant works like the first. */
    ctl(&r, "--token-file %s/op.tok tenant token acme --token-out %s/acme2.tok", d, d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ctl(&r, "--token-file %s/acme2.tok --tenant acme device delete %s", d, kid);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "deleted device"), "%s", r.out);
    ctl(&r, "--token-file %s/acme2.tok --tenant acme device show %s", d, kid);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "tamctl: 404 "), "%s", r.err);
    assert_one_line(&r);

    /* Scope: a tenant token on an operator endpoint is 403. */
    ctl(&r, "--token-file %s/acme.tok tenant list", d);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(strncmp(r.err, "tamctl: 403 Forbidden", 21), 0, "%s", r.err);
    assert_one_line(&r);
}

Test(tamctl_admin, errors_and_exit_statuses)
{
    struct run r;
    char p[128];
    snprintf(p, sizeof(p), "%s/bad.tok", A.dir);
    write_file(p, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n");
    /* A wrong token: exit 1 and one 401 line that does not echo the token. */
    ctl(&r, "--token-file %s tenant list", p);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_eq(strncmp(r.err, "tamctl: 401 ", 12), 0, "%s", r.err);
    cr_assert_null(strstr(r.err, "AAAAAAAA"));
    assert_one_line(&r);
    /* Missing token file: a usage error. */
    ctl(&r, "tenant list");
    cr_assert_eq(r.status, 2, "%s", r.err);
    assert_one_line(&r);
    ctl(&r, "--token-file %s/nope.tok tenant list", A.dir);
    cr_assert_eq(r.status, 2, "%s", r.err);
    /* The environment variables work like the options. */
    char line[512];
    snprintf(line, sizeof(line), "%s/op.tok", A.dir);
    setenv("TAMGATE_TOKEN_FILE", line, 1);
    ctl(&r, "tenant list");
    unsetenv("TAMGATE_TOKEN_FILE");
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* Unreachable admin API: exit 3. */
    snprintf(line, sizeof(line), "--admin http://127.0.0.1:1 --token-file %s/op.tok tenant list",
             A.dir);
    tamctl(&r, line);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert_not_null(strstr(r.err, "cannot reach"), "%s", r.err);
    assert_one_line(&r);
    /* Usage errors: tenant-scoped command without --tenant, unknown verb, bad ids. */
    ctl(&r, "--token-file %s/op.tok device list", A.dir);
    cr_assert_eq(r.status, 2, "%s", r.err);
    ctl(&r, "--token-file %s/op.tok tenant frob", A.dir);
    cr_assert_eq(r.status, 2, "%s", r.err);
    ctl(&r, "--token-file %s/op.tok tenant show ../x", A.dir);
    cr_assert_eq(r.status, 2, "%s", r.err);
    ctl(&r, "--token-file %s/op.tok tenant create Bad.Id", A.dir);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert_eq(strncmp(r.err, "tamctl: 4", 9), 0, "%s", r.err);
    /* Help works without a token. */
    tamctl(&r, "tenant --help");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "tenant create ID"));
    tamctl(&r, "--help");
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(strstr(r.out, "device add PEMFILE"));
}

TestSuite(tamctl_admin_tls, .init = admin_start_tls, .fini = admin_stop, .timeout = 60);

Test(tamctl_admin_tls, https_verifies_the_server_with_cacert)
{
    struct run r;
    const char *d = A.dir;
    ctl(&r, "--cacert %s/server.pem --token-file %s/op.tok tenant create tls1", d, d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ctl(&r, "--cacert %s/server.pem --token-file %s/op.tok tenant list", d, d);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "tls1 "), "%s", r.out);
    /* Without a CA: a usage error; with another CA: the server is not trusted (exit 3). */
    ctl(&r, "--token-file %s/op.tok tenant list", d);
    cr_assert_eq(r.status, 2, "%s", r.err);
    cr_assert_not_null(strstr(r.err, "--cacert"), "%s", r.err);
    ctl(&r, "--cacert %s/other.pem --token-file %s/op.tok tenant list", d, d);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert_not_null(strstr(r.err, "not trusted"), "%s", r.err);
    assert_one_line(&r);
}

/* ---- the real tamd: its admin listener serves /v1 ---- */

static pid_t start_tamd(const char *tamd, const char *redis_addr, const char *dir, unsigned port,
                        unsigned admin_port)
{
    char redis[256], listen[64], admin[64], log[128];
    snprintf(redis, sizeof(redis), "%s", redis_addr);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(admin, sizeof(admin), "127.0.0.1:%u", admin_port);
    snprintf(log, sizeof(log), "%s/tamd.log", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(tamd, tamd, "--redis", redis, "--data-dir", dir, "--workers", "0", "--listen", listen,
              "--admin-listen", admin, (char *)NULL);
        _exit(127);
    }
    return pid;
}

Test(tamctl_tamd, against_the_real_tamd, .timeout = 60)
{
    const char *root = getenv("TAM_BUILD_ROOT");
    char tamd[512];
    snprintf(tamd, sizeof(tamd), "%s/src/gateway/tamd", root != NULL ? root : "build");
    if (access(tamd, X_OK) != 0) {
        cr_skip_test("no tamd binary at %s", tamd);
    }
    unsetenv("TAMGATE_ADMIN");
    unsetenv("TAMGATE_TOKEN_FILE");
    unsetenv("TAMGATE_TENANT");
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    char dir[64], p[128], kekp[128];
    snprintf(dir, sizeof(dir), "/tmp/tamctl-tamd-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    /* An external Redis needs the deployment KEK in the data directory. */
    uint8_t kek[TAM_SEAL_KEK_LEN];
    snprintf(kekp, sizeof(kekp), "%s/kek.key", dir);
    cr_assert_eq(tam_seal_kek_load(kekp, true, kek, NULL), TAM_OK);
    unsigned admin_port = tu_free_port();
    pid_t pid = start_tamd(tamd, rs.addr, dir, tu_free_port(), admin_port);
    snprintf(p, sizeof(p), "%s/operator.token", dir);
    struct stat st;
    for (int i = 0; i < 500 && stat(p, &st) != 0; i++) {
        usleep(10000);
    }
    cr_assert_eq(stat(p, &st), 0, "tamd wrote no operator token (see %s/tamd.log)", dir);
    snprintf(admin_base, sizeof(admin_base), "--admin http://127.0.0.1:%u", admin_port);
    struct run r;
    ctl(&r, "--token-file %s tenant create real --attestation none --token-out %s/real.tok", p,
        dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ctl(&r, "--token-file %s/real.tok --tenant real device add agent_p256.pub.pem --label x", dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    ctl(&r, "--token-file %s/real.tok --tenant real device list --label x", dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, " x "), "%s", r.out);
    ctl(&r, "--token-file %s/real.tok --tenant real tenant show real --json", dir);
    cr_assert_eq(r.status, 0, "the tenant token reads its own tenant: %s", r.err);
    cr_assert_not_null(strstr(r.out, "\"attestation\": \"none\""), "%s", r.out);
    kill(pid, SIGTERM);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "tamd exit %d", status);
    tu_redis_stop(&rs);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
