/*
 * End to end, every part real: a redis-server, tamd (gateway), tam-worker and a
 * tam-agent fleet over HTTP. The tenant's catalogue holds the spec's integrated-payload
 * TC (teep_suit_integrated.hex, signed by the SUIT example key) and its policy installs
 * it everywhere: each run (hundreds of sessions) must install it exactly once per device
 * (QueryRequest -> QueryResponse with EAT -> Update -> Success), with no error.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/keys.h"
#include "tam/store.h"
#include "tam/suit.h"
#include "testutil.h"

#define DEVICES 6

struct stack {
    struct tu_redis redis;
    char dir[64];
    char build[1024];
    uint16_t port, admin_port;
    pid_t tamd, worker;
};

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave servers behind */
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void run(const char *cmd)
{
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

static void put_catalogue(struct stack *s)
{
    size_t len;
    uint8_t *env_bytes = tu_load_hex("teep_suit_integrated.hex", &len);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(env_bytes, len, &env, NULL), TAM_OK);
    struct tam_store_component c;
    memset(&c, 0, sizeof(c));
    c.component.n = env.components[0].n;
    for (unsigned i = 0; i < c.component.n; i++) {
        c.component.seg[i] = env.components[0].seg[i];
    }
    c.has_manifest_id = true;
    c.manifest_id.n = env.manifest_component_id.n;
    for (unsigned i = 0; i < c.manifest_id.n; i++) {
        c.manifest_id.seg[i] = env.manifest_component_id.seg[i];
    }
    c.sequence = env.sequence;
    c.has_digest = true;
    memcpy(c.digest, env.digest.bytes.ptr, 32);
    c.envelope = tam_bytes_of(env_bytes, len);
    struct tam_buf rec, field;
    tam_buf_init(&rec, 1 << 20);
    tam_buf_init(&field, 4096);
    cr_assert_eq(tam_store_component_encode(&c, &rec), TAM_OK);
    cr_assert_eq(tam_store_component_field(&c.component, c.sequence, &field), TAM_OK);
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, "demo", "components");
    freeReplyObject(
        tu_redis_cmd(&s->redis, "HSET %s %s %b", key, (const char *)field.data, rec.data, rec.len));
    tam_key_tenant(key, "demo", "policy");
    freeReplyObject(tu_redis_cmd(
        &s->redis, "SET %s %s", key,
        "{\"rules\": [{\"match\": {}, \"install\": [{\"component_id\": [\"544545502d446576696365\","
        " \"5365637572654653\", \"8d82573a926d4754935332dc29997f74\", \"7461\"]}]}]}"));
    tam_key_tenant(key, "demo", "catalog_version");
    freeReplyObject(tu_redis_cmd(&s->redis, "INCR %s", key));
    tam_buf_finish(&rec);
    tam_buf_finish(&field);
    tam_free(env_bytes);
}

static void write_config(struct stack *s)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/tamd.ini", s->dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    const char *v = getenv("TAM_VECTORS");
    fprintf(f,
            "listen = 127.0.0.1:%u\nadmin-listen = 127.0.0.1:%u\nredis = %s\nworkers = 0\n"
            "job-attempts = 3\n\n[tenant demo]\nattestation = required\n"
            "tam-key = %s/tam_p256.priv.pem\ntam-key = %s/tam_ed25519.priv.pem\n"
            "attester-key = %s/keys/attester.pub.pem\n"
            "tc-signer-key = %s/suit_example_key_p256.pub.pem\n",
            s->port, s->admin_port, s->redis.addr, v, v, s->dir, v);
    for (int i = 0; i < DEVICES; i++) {
        fprintf(f, "device-key = %s/keys/device-%06d.pub.pem\n", s->dir, i);
    }
    fclose(f);
}

static void wait_ready(struct stack *s)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "curl -sf http://127.0.0.1:%u/readyz >/dev/null", s->admin_port);
    for (int i = 0; i < 100; i++) {
        if (system(cmd) == 0) {
            return;
        }
        usleep(100 * 1000);
    }
    cr_assert_fail("tamd did not become ready");
}

static void start(struct stack *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "/tmp/tam-e2e-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    const char *b = getenv("TAM_BUILD_ROOT");
    snprintf(s->build, sizeof(s->build), "%s", b != NULL ? b : "build");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "%s/src/agent/tam-agent keys --seed e2e --devices %d --export-keys %s/keys >/dev/null",
             s->build, DEVICES, s->dir);
    run(cmd);
    tu_redis_start(&s->redis);
    s->port = tu_free_port();
    s->admin_port = tu_free_port();
    write_config(s);
    put_catalogue(s);
    char conf[256], tamd[1100], worker[1100], log1[256], log2[256];
    snprintf(conf, sizeof(conf), "%s/tamd.ini", s->dir);
    snprintf(tamd, sizeof(tamd), "%s/src/gateway/tamd", s->build);
    snprintf(worker, sizeof(worker), "%s/src/worker/tam-worker", s->build);
    snprintf(log1, sizeof(log1), "%s/tamd.log", s->dir);
    snprintf(log2, sizeof(log2), "%s/worker.log", s->dir);
    char *targv[] = {tamd, "--config", conf, "--data-dir", s->dir, NULL};
    s->tamd = spawn(targv, log1);
    char *wargv[] = {worker, "--config", conf, "--redis", s->redis.addr, NULL};
    s->worker = spawn(wargv, log2);
    wait_ready(s);
}

static void stop(struct stack *s)
{
    kill(s->tamd, SIGTERM);
    kill(s->worker, SIGTERM);
    int st;
    cr_assert_eq(waitpid(s->tamd, &st, 0), s->tamd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tamd exits 0 on SIGTERM");
    cr_assert_eq(waitpid(s->worker, &st, 0), s->worker);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tam-worker exits 0 on SIGTERM");
    tu_redis_stop(&s->redis);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
    run(cmd);
}

/* Runs the fleet for a few seconds and returns its JSON report. */
static json_t *fleet(struct stack *s, const char *extra)
{
    const char *v = getenv("TAM_VECTORS");
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s/src/agent/tam-agent load --url http://127.0.0.1:%u/tam/demo --seed e2e "
             "--devices %d --duration 2 --json --tam-key %s/tam_p256.pub.pem "
             "--tam-key %s/tam_ed25519.pub.pem --tc-signer-key %s/suit_example_key_p256.pub.pem "
             "--attester-key %s/keys/attester.priv.pem %s",
             s->build, s->port, DEVICES, v, v, v, s->dir, extra);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    json_error_t jerr;
    json_t *out = json_loadf(p, 0, &jerr);
    pclose(p);
    cr_assert_not_null(out, "tam-agent printed no JSON: %s", jerr.text);
    return out;
}

static json_int_t count(json_t *report, const char *name)
{
    json_t *c = json_object_get(json_object_get(report, "counts"), name);
    cr_assert_not_null(c, "counts.%s missing", name);
    return json_integer_value(c);
}

Test(e2e, fleet_installs_exactly_once_per_device)
{
    struct stack s;
    start(&s);
    json_t *first = fleet(&s, "");
    char *dump = json_dumps(json_object_get(first, "errors"), JSON_COMPACT);
    cr_assert_eq(json_object_size(json_object_get(first, "errors")), 0, "no errors in run 1: %s",
                 dump);
    free(dump); /* allocated by jansson */
    cr_assert_gt(json_real_value(json_object_get(first, "sessions_per_s")) +
                     (double)json_integer_value(json_object_get(first, "sessions_per_s")),
                 0);
    cr_assert_eq(count(first, "installed"), DEVICES, "each device installs the TC exactly once");
    json_decref(first);

    /* Every device record now lists the TC, installed once. */
    redisContext *c = tu_redis_connect(&s.redis);
    redisReply *r = redisCommand(c, "SMEMBERS tam:t:{demo}:devices");
    cr_assert_eq(r->elements, DEVICES);
    for (size_t i = 0; i < r->elements; i++) {
        char key[TAM_KEY_MAX];
        snprintf(key, sizeof(key), "tam:d:{demo:%s}", r->element[i]->str);
        redisReply *h = redisCommand(c, "HGET %s installed", key);
        cr_assert_eq(h->type, REDIS_REPLY_STRING, "device %s has an installed list", key);
        struct tam_arena arena;
        tam_arena_init(&arena, 4096, 1 << 20);
        struct tam_plan_installed *inst;
        uint32_t n = 0;
        cr_assert_eq(
            tam_store_installed_decode((const uint8_t *)h->str, h->len, &arena, &inst, &n, NULL),
            TAM_OK);
        cr_assert_eq(n, 1);
        cr_assert_eq(inst[0].sequence, 3);
        tam_arena_finish(&arena);
        freeReplyObject(h);
    }
    freeReplyObject(r);
    redisFree(c);

    /* A new fleet process starts its devices with empty TC stores (same keys): their tc-lists
     * no longer show the TC, so the TAM provisions each of them again, exactly once. */
    json_t *second = fleet(&s, "");
    cr_assert_eq(json_object_size(json_object_get(second, "errors")), 0, "no errors in run 2");
    cr_assert_eq(count(second, "installed"), DEVICES, "re-provisioned once per device");
    json_decref(second);
    stop(&s);
}

/* ---- zero configuration: tamd --data-dir DIR --demo ---- */

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, needle) != NULL;
    }
    fclose(f);
    return found;
}

static unsigned mode_of(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "%s exists", p);
    return st.st_mode & 0777;
}

/*
 * The README's main job: a private Redis, supervised workers, the demo tenant created through
 * the admin API and the fleet installing one TC per SUIT scenario on each of its 20 devices.
 */
Test(e2e, demo_zero_configuration)
{
    char dir[] = "/tmp/tam-demo-XXXXXX", out[300], listen[64], admin[64], tamd[1100];
    cr_assert_not_null(mkdtemp(dir));
    const char *b = getenv("TAM_BUILD_ROOT");
    snprintf(tamd, sizeof(tamd), "%s/src/gateway/tamd", b != NULL ? b : "build");
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", tu_free_port());
    /* The demo's payload server takes the admin port + 1: find a free pair. */
    uint16_t ap = tu_free_port();
    while (ap == 65535) {
        ap = tu_free_port();
    }
    snprintf(admin, sizeof(admin), "127.0.0.1:%u", ap);
    snprintf(out, sizeof(out), "%s/out.log", dir);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *f = freopen(out, "w", stdout);
        char log[300];
        snprintf(log, sizeof(log), "%s/tamd.log", dir);
        f = f != NULL ? freopen(log, "w", stderr) : NULL;
        (void)f;
        char *argv[] = {tamd,          "--data-dir",     dir,   "--demo",    "--listen",
                        listen,        "--admin-listen", admin, "--workers", "2",
                        "--log-level", "warn",           NULL};
        execv(argv[0], argv);
        _exit(127);
    }
    bool done = false;
    for (int i = 0; i < 900 && !done; i++) { /* 90 s: sanitizer builds are slow */
        done = file_has(out, "demo: fleet finished");
        usleep(100 * 1000);
    }
    cr_assert(done, "the demo did not finish; see %s", out);
    cr_assert(file_has(out, "demo: fleet finished (exit 0)"), "see %s", out);
    cr_assert(file_has(out, "installed 60,"), "20 devices x 3 TCs; see %s", out);
    cr_assert(file_has(out, "(none)"), "no errors; see %s", out);
    cr_assert_eq(mode_of(dir, "operator.token"), 0600);
    cr_assert_eq(mode_of(dir, "demo.token"), 0600);
    cr_assert_eq(mode_of(dir, "kek.key"), 0600);
    cr_assert_eq(mode_of(dir, "worker-seal.pem"), 0600);
    /* The supervised workers log at tamd's level (one info line per job otherwise). */
    char log[300];
    snprintf(log, sizeof(log), "%s/tamd.log", dir);
    cr_assert_not(file_has(log, "level=info prog=tam-worker"), "see %s", log);
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tamd --demo exits 0 on SIGTERM");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
}

/* ---- tenant isolation on the TEEP side ---- */

struct zc {
    char dir[64], build[1024], listen[64], admin[64], op[128];
    pid_t pid;
};

static void zc_start(struct zc *z)
{
    memset(z, 0, sizeof(*z));
    snprintf(z->dir, sizeof(z->dir), "/tmp/tam-iso-XXXXXX");
    cr_assert_not_null(mkdtemp(z->dir));
    const char *b = getenv("TAM_BUILD_ROOT");
    snprintf(z->build, sizeof(z->build), "%s", b != NULL ? b : "build");
    snprintf(z->listen, sizeof(z->listen), "127.0.0.1:%u", tu_free_port());
    snprintf(z->admin, sizeof(z->admin), "127.0.0.1:%u", tu_free_port());
    char tamd[1100], log[128];
    snprintf(tamd, sizeof(tamd), "%s/src/gateway/tamd", z->build);
    snprintf(log, sizeof(log), "%s/tamd.log", z->dir);
    char *argv[] = {tamd,     "--data-dir", z->dir, "--listen", z->listen, "--admin-listen",
                    z->admin, "--workers",  "1",    NULL};
    z->pid = spawn(argv, log);
    char tok[128];
    snprintf(tok, sizeof(tok), "%s/operator.token", z->dir);
    for (int i = 0; i < 200 && !file_has(tok, "\n"); i++) {
        usleep(50 * 1000);
    }
    FILE *f = fopen(tok, "r");
    cr_assert_not_null(f, "no operator token");
    cr_assert_not_null(fgets(z->op, sizeof(z->op), f));
    fclose(f);
    z->op[strcspn(z->op, "\n")] = '\0';
}

/* curl against the admin API; returns the HTTP status and the body parsed as JSON. */
static int zc_admin(struct zc *z, const char *method, const char *path, const char *token,
                    const char *body, json_t **out)
{
    char bodyf[128], respf[128], cmd[2048];
    snprintf(bodyf, sizeof(bodyf), "%s/req.json", z->dir);
    snprintf(respf, sizeof(respf), "%s/resp.json", z->dir);
    FILE *f = fopen(bodyf, "w");
    cr_assert_not_null(f);
    fputs(body != NULL ? body : "", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "curl -s -o %s -w '%%{http_code}' -X %s -H 'Authorization: Bearer %s' "
             "-H 'Content-Type: application/json' %s%s http://%s%s",
             respf, method, token, body != NULL ? "--data-binary @" : "", body != NULL ? bodyf : "",
             z->admin, path);
    FILE *p = popen(cmd, "r");
    int status = 0;
    cr_assert_eq(fscanf(p, "%d", &status), 1);
    pclose(p);
    if (out != NULL) {
        *out = json_load_file(respf, 0, NULL);
    }
    return status;
}

/* A tenant with a TAM-built integrated TC (signed by the workers) installed on every device. */
static void zc_tenant(struct zc *z, const char *id, const char *tc_hex, char *token_file)
{
    char body[1024], path[128];
    json_t *j = NULL;
    snprintf(body, sizeof(body),
             "{\"id\":\"%s\",\"attestation\":\"none\",\"limits\":{\"rps_per_device\":1000}}", id);
    cr_assert_eq(zc_admin(z, "POST", "/v1/tenants", z->op, body, &j), 201);
    const char *tok = json_string_value(json_object_get(j, "token"));
    cr_assert_not_null(tok);
    snprintf(token_file, 128, "%s/%s.token", z->dir, id);
    FILE *f = fopen(token_file, "w");
    fputs(tok, f);
    fclose(f);
    char t[64];
    snprintf(t, sizeof(t), "%s", tok);
    json_decref(j);
    snprintf(path, sizeof(path), "/v1/tenants/%s/components", id);
    snprintf(body, sizeof(body),
             "{\"component_id\":[\"%s\"],\"sequence\":1,\"delivery\":\"integrated\","
             "\"binary\":\"aGVsbG8gZnJvbSB0ZW5hbnQ\"}",
             tc_hex);
    cr_assert_eq(zc_admin(z, "POST", path, t, body, NULL), 201);
    snprintf(path, sizeof(path), "/v1/tenants/%s/policy", id);
    snprintf(body, sizeof(body),
             "{\"rules\":[{\"match\":{},\"install\":[{\"component_id\":[\"%s\"]}]}]}", tc_hex);
    cr_assert_eq(zc_admin(z, "PUT", path, t, body, NULL), 200);
}

/* A fleet of 4 devices (seed "iso") on tenant `url_tenant`, trusting what `token_file` sees. */
static json_t *zc_fleet(struct zc *z, const char *url_tenant, const char *token_file,
                        const char *extra)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "%s/src/agent/tam-agent load --url http://%s/tam/%s --seed iso --devices 4 "
             "--duration 1 --json --admin http://%s --token-file %s %s",
             z->build, z->listen, url_tenant, z->admin, token_file, extra);
    FILE *p = popen(cmd, "r");
    json_t *out = json_loadf(p, 0, NULL);
    pclose(p);
    cr_assert_not_null(out, "tam-agent printed no JSON");
    return out;
}

Test(e2e, tenants_isolated_on_the_teep_side)
{
    struct zc z;
    zc_start(&z);
    char ta[128], tb[128];
    zc_tenant(&z, "alpha", "616c706861", ta); /* "alpha" */
    zc_tenant(&z, "bravo", "627261766f", tb); /* "bravo" */
    /* Alpha's devices, enrolled in alpha: they get alpha's TC, once each. */
    json_t *r = zc_fleet(&z, "alpha", ta, "--enroll");
    cr_assert_eq(json_object_size(json_object_get(r, "errors")), 0);
    cr_assert_eq(count(r, "installed"), 4);
    json_decref(r);
    /* The same devices on bravo's URI (trusting bravo's TAM keys): bravo does not know them,
     * so their QueryResponses are dropped and bravo's TC never reaches them. */
    r = zc_fleet(&z, "bravo", tb, "");
    cr_assert_eq(count(r, "installed"), 0, "bravo's TC must not reach alpha's devices");
    cr_assert_eq(count(r, "updates"), 0);
    json_decref(r);
    json_t *devs = NULL;
    char tok[64];
    FILE *f = fopen(tb, "r");
    cr_assert_not_null(fgets(tok, sizeof(tok), f));
    fclose(f);
    cr_assert_eq(zc_admin(&z, "GET", "/v1/tenants/bravo/devices", tok, NULL, &devs), 200);
    cr_assert_eq(json_array_size(json_object_get(devs, "devices")), 0, "bravo has no devices");
    json_decref(devs);
    /* Alpha's token cannot read bravo. */
    f = fopen(ta, "r");
    cr_assert_not_null(fgets(tok, sizeof(tok), f));
    fclose(f);
    cr_assert_eq(zc_admin(&z, "GET", "/v1/tenants/bravo/devices", tok, NULL, NULL), 403);
    cr_assert_eq(zc_admin(&z, "GET", "/v1/tenants/alpha/devices", tok, NULL, &devs), 200);
    cr_assert_eq(json_array_size(json_object_get(devs, "devices")), 4, "alpha has its 4");
    json_decref(devs);
    kill(z.pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(z.pid, &st, 0), z.pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", z.dir);
    run(cmd);
}
