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

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

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
    s->port = free_port();
    s->admin_port = free_port();
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
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", free_port());
    /* The demo's payload server takes the admin port + 1: find a free pair. */
    uint16_t ap = free_port();
    while (ap == 65535) {
        ap = free_port();
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
        char *argv[] = {tamd,     "--data-dir", dir,     "--demo", "--listen", listen,
                        "--admin-listen", admin, "--workers", "2", NULL};
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
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tamd --demo exits 0 on SIGTERM");
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    run(cmd);
}
