/*
 * tam-worker benchmark, with a real redis-server (Unix socket) and one real tam-worker:
 *   - job hop latency, XADD -> result on the reply stream, p50/p99 (tam_hdr): for jobs the
 *     worker answers from its done key (the queue's own cost) and for full QueryResponse jobs;
 *   - worker throughput for full QueryResponse jobs (EAT verify + planning + Update signing),
 *     from a full queue (the jobs are queued while the worker is stopped), beside the crypto
 *     bound of the same operations, from tam_sign / tam_verify rates measured in the same run:
 *       registered devices (the gateway verified the message): 1 verify + 1 sign per job;
 *       attested enrollment (key learned from the EAT cnf): 2 verifies + 1 sign per job.
 * Usage: bench_worker [quick]   (env: TAM_BUILD_ROOT to find tam-worker, TAM_VECTORS)
 * With two CPUs or more, the worker and this process's crypto measurements run on one CPU
 * and Redis (and this process while it waits for results) on another, as deployed (Redis on
 * its own host): the worker is compared with the bound on the same core, and the scheduler
 * cannot put Redis on the worker's CPU (it did, for up to 15% of a slice).
 * TAM_BENCH_NOPIN=1 leaves the placement to the scheduler.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_catalog.h"
#include "tam/alloc.h"
#include "tam/cose.h"
#include "tam/crypto.h"
#include "tam/eat.h"
#include "tam/err.h"
#include "tam/hdr.h"
#include "tam/hex.h"
#include "tam/job.h"
#include "tam/keys.h"
#include "tam/redis.h"
#include "tam/session.h"
#include "tam/store.h"
#include "tam/suit.h"
#include "tam/teep.h"

#define REPLY "tam:{gw:bench}:results"

/* Sizes of a job's EAT and of the Update it gets: the crypto bound signs and verifies these. */
static size_t g_eat_len = 300, g_update_len = 300;

struct bench {
    char dir[64];
    char sock[128];
    char addr[160];
    char conf[128];
    char vectors[PATH_MAX];
    char exe[PATH_MAX];
    pid_t redis, worker;
    redisContext *c;
    struct tam_key *tam_p256, *agent, *attester;
    struct tam_tenant *acme, *open;
    char last_id[64];
};

static struct bench B;

static void die(const char *fmt, ...) TAM_PRINTF(1, 2);

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_worker: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void check(int err, const char *what)
{
    if (err != TAM_OK) {
        die("%s: %s", what, tam_strerror(err));
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds another process spent on a CPU and runnable but waiting for one:
 * /proc/<pid>/schedstat (nanoseconds; /proc/<pid>/stat counts 10 ms ticks, too coarse for the
 * sub-second slices measured here). */
struct sched {
    double run, wait;
};

static struct sched proc_sched(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/schedstat", (long)pid);
    FILE *f = fopen(path, "r");
    unsigned long long run = 0, wait = 0;
    if (f == NULL || fscanf(f, "%llu %llu", &run, &wait) != 2) {
        die("cannot read %s", path);
    }
    fclose(f);
    struct sched s = {(double)run / 1e9, (double)wait / 1e9};
    return s;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(B.c, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        die("redis: %s", r != NULL ? r->str : B.c->errstr);
    }
    return r;
}

/* ---- files, keys, processes ---- */

static void read_file(const char *path, struct tam_buf *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        die("cannot open %s", path);
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        check(tam_buf_append(out, chunk, n), "read");
    }
    fclose(f);
}

static char *vector_path(const char *name)
{
    static char p[PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", B.vectors, name);
    return p;
}

static struct tam_key *vector_key(const char *name)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 1u << 16);
    read_file(vector_path(name), &pem);
    struct tam_key *k = NULL;
    check(tam_key_from_pem((const char *)pem.data, pem.len, &k), name);
    tam_buf_finish(&pem);
    return k;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        die("cannot write %s", path);
    }
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0) {
        die("fork");
    }
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void start_redis(void)
{
    snprintf(B.sock, sizeof(B.sock), "%s/redis.sock", B.dir);
    snprintf(B.addr, sizeof(B.addr), "unix:%s", B.sock);
    char log[128];
    snprintf(log, sizeof(log), "%s/redis.log", B.dir);
    char *argv[] = {"redis-server", "--port", "0", "--unixsocket", B.sock, "--dir",
                    B.dir,          "--save", "",  "--appendonly", "no",   "--daemonize",
                    "no",           NULL};
    B.redis = spawn(argv, log);
    for (int i = 0; i < 500; i++) {
        if (tam_redis_sync_connect(B.addr, 1000, &B.c) == TAM_OK) {
            struct timeval tv = {10, 0}; /* above every XREAD BLOCK used here */
            redisSetTimeout(B.c, tv);
            return;
        }
        sleep_ms(10);
    }
    die("redis-server did not start (see %s)", log);
}

static void find_paths(void)
{
    const char *root = getenv("TAM_BUILD_ROOT");
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    if (root != NULL) {
        snprintf(B.exe, sizeof(B.exe), "%s/src/worker/tam-worker", root);
    } else if (snprintf(B.exe, sizeof(B.exe), "%s/../../src/worker/tam-worker", self) <= 0) {
        die("path");
    }
    const char *vec = getenv("TAM_VECTORS");
    snprintf(B.vectors, sizeof(B.vectors), "%s", vec != NULL ? vec : BENCH_VECTORS);
}

static void write_config(void)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 8192);
    check(tam_key_private_pem(B.attester, &pem), "pem");
    char path[128];
    snprintf(path, sizeof(path), "%s/attester.pem", B.dir);
    write_file(path, pem.data, pem.len);
    tam_buf_finish(&pem);
    char text[4096];
    char tp[PATH_MAX + 64], te[PATH_MAX + 64], ts[PATH_MAX + 64];
    snprintf(tp, sizeof(tp), "%s", vector_path("tam_p256.priv.pem"));
    snprintf(te, sizeof(te), "%s", vector_path("tam_ed25519.priv.pem"));
    snprintf(ts, sizeof(ts), "%s", vector_path("suit_example_key_p256.pub.pem"));
    int n = snprintf(text, sizeof(text),
                     "redis = %s\nlog-level = info\nworker-batch = 16\nworker-id = bench\n"
                     "[tenant acme]\nenrollment = registered\ntam-key = %s\ntam-key = %s\n"
                     "tc-signer-key = %s\nattester-key = %s\n"
                     "[tenant open]\nenrollment = attested\ntam-key = %s\ntam-key = %s\n"
                     "tc-signer-key = %s\nattester-key = %s\n",
                     B.addr, tp, te, ts, path, tp, te, ts, path);
    snprintf(B.conf, sizeof(B.conf), "%s/worker.ini", B.dir);
    write_file(B.conf, text, (size_t)n);
}

static void start_worker(void)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/worker.log", B.dir);
    char *argv[] = {B.exe, "--config", B.conf, NULL};
    B.worker = spawn(argv, log);
}

static void stop(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

/* ---- catalogue ---- */

/* The envelope, its component record, an install-everywhere policy (bench_catalog.c). */
static void setup_tenant(const char *tenant, const struct tam_buf *env_bytes)
{
    check(bench_catalog_put(B.c, tenant, env_bytes->data, env_bytes->len), "catalogue");
}

/* ---- jobs, as a gateway builds them ---- */

static const uint8_t ueid[17] = {0x01, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t oui[3] = {0x89, 0x48, 0x23};
static const uint8_t model[16] = "tamgate-model-01";
static const uint8_t suit_ref[4] = {0x82, 0x61, 0x75, 0x40};

static void build_eat(const struct tam_sess *s, const struct tam_key *agent, const uint8_t *kid,
                      struct tam_buf *out)
{
    struct tam_eat_claims c;
    memset(&c, 0, sizeof(c));
    int64_t now = (int64_t)(wall_ms() / 1000);
    c.present = TAM_EAT_HAS_IAT | TAM_EAT_HAS_EXP | TAM_EAT_HAS_CNF | TAM_EAT_HAS_NONCE |
                TAM_EAT_HAS_UEID | TAM_EAT_HAS_OEMID | TAM_EAT_HAS_HWMODEL | TAM_EAT_HAS_HWVERSION |
                TAM_EAT_HAS_PROFILE | TAM_EAT_HAS_MANIFESTS;
    c.iat = now;
    c.exp = now + 3600;
    struct tam_buf key;
    tam_buf_init(&key, 1024);
    if (agent != NULL) {
        check(tam_key_cose_public(agent, &key), "cose key");
        c.cnf_form = TAM_EAT_CNF_COSE_KEY;
        c.cnf_key = tam_bytes_of(key.data, key.len);
    } else {
        c.cnf_form = TAM_EAT_CNF_KID;
        memcpy(c.cnf_kid, kid, 32);
        c.cnf_kid_len = 32;
    }
    c.nonce = tam_bytes_of(s->challenge, s->challenge_len);
    c.ueid = tam_bytes_of(ueid, sizeof(ueid));
    c.oemid.id = tam_bytes_of(oui, sizeof(oui));
    c.hwmodel = tam_bytes_of(model, sizeof(model));
    c.hwversion = tam_bytes_of("1.3.4", 5);
    c.profile = tam_bytes_of(TAM_EAT_PROFILE_TEEP, strlen(TAM_EAT_PROFILE_TEEP));
    c.n_manifests = 1;
    c.manifests[0].content_format = 60;
    c.manifests[0].body = tam_bytes_of(suit_ref, sizeof(suit_ref));
    check(tam_eat_build(&c, B.attester, 0, out), "eat");
    g_eat_len = out->len;
    tam_buf_finish(&key);
}

/*
 * One QueryResponse job. agent == NULL: a registered device with this kid, verified by the
 * gateway; else an unknown device of the `open` tenant whose key is learned from the EAT.
 */
static void make_job(const uint8_t *kid, const struct tam_key *agent, struct tam_buf *out,
                     struct tam_buf *sess_out)
{
    struct tam_tenant *t = agent != NULL ? B.open : B.acme;
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    check(tam_random(rand, sizeof(rand)), "random");
    struct tam_sess s;
    tam_sess_new_query(&s, t, rand, wall_ms());
    struct tam_buf sess, eat, payload, msg;
    tam_buf_init(&sess, 4096);
    tam_buf_init(&eat, 1u << 16);
    tam_buf_init(&payload, 1u << 16);
    tam_buf_init(&msg, 1u << 16);
    check(tam_sess_encode(&s, &sess), "session");
    build_eat(&s, agent, kid, &eat);
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, TAM_TEEP_QUERY_RESPONSE);
    m.has_token = true;
    m.token = tam_bytes_of(s.token, TAM_TOKEN_LEN);
    m.has_attestation_payload = true;
    m.attestation_payload = tam_bytes_of(eat.data, eat.len);
    struct tam_teep_tc tc;
    memset(&tc, 0, sizeof(tc));
    tc.id.n = 1;
    tc.id.seg[0] = tam_bytes_of("agent", 5);
    uint8_t digest[36] = {0x82, 0x2f, 0x58, 0x20};
    tc.has_image_digest = true;
    tc.image_digest = tam_bytes_of(digest, sizeof(digest));
    m.has_tc_list = true;
    m.n_tc_list = 1;
    m.tc_list = &tc;
    check(tam_teep_encode(&m, TAM_TEEP_RFC, &payload), "teep");
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    struct tam_cose_sign_opts o = {.tagged = true, .include_kid = true};
    check(tam_cose_sign1(&msg, agent != NULL ? agent : B.agent, TAM_ALG_ESP256, &p, &o), "sign");
    struct tam_job job;
    memset(&job, 0, sizeof(job));
    check(tam_random(job.id, sizeof(job.id)), "random");
    job.kind = TAM_JOB_QUERY_RESPONSE;
    snprintf(job.tenant, sizeof(job.tenant), "%s", t->id);
    snprintf(job.reply_to, sizeof(job.reply_to), "%s", REPLY);
    job.received_ms = wall_ms();
    job.verified = agent == NULL;
    job.has_device = true; /* unverified for a device to learn: the kid header, as tamd sends */
    memcpy(job.device_kid, kid, 32);
    job.message = tam_bytes_of(msg.data, msg.len);
    job.session = tam_bytes_of(sess.data, sess.len);
    check(tam_job_encode(&job, out), "job");
    if (sess_out != NULL) {
        check(tam_buf_append(sess_out, sess.data, sess.len), "copy");
    }
    tam_buf_finish(&sess);
    tam_buf_finish(&eat);
    tam_buf_finish(&payload);
    tam_buf_finish(&msg);
}

/* The same token and message under a new job id: answered from the done key. */
static void readdress(const struct tam_buf *job_bytes, struct tam_buf *out)
{
    struct tam_job job;
    check(tam_job_decode(job_bytes->data, job_bytes->len, &job, NULL), "decode");
    check(tam_random(job.id, sizeof(job.id)), "random");
    tam_buf_reset(out);
    check(tam_job_encode(&job, out), "job");
}

/* ---- results ---- */

/* Reads results after B.last_id, waiting up to block_ms; returns how many arrived. */
static int read_results(int block_ms, int *status_200)
{
    redisReply *r = cmd("XREAD COUNT 1000 BLOCK %d STREAMS %s %s", block_ms, REPLY, B.last_id);
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
        redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            redisReply *e = entries->element[i];
            snprintf(B.last_id, sizeof(B.last_id), "%s", e->element[0]->str);
            struct tam_job_result res;
            redisReply *f = e->element[1];
            if (f->elements >= 2 &&
                tam_job_result_decode((const uint8_t *)f->element[1]->str, f->element[1]->len, &res,
                                      NULL) == TAM_OK) {
                *status_200 += res.status == 200;
                if (res.status == 200) {
                    g_update_len = res.body.len;
                }
            }
            n++;
        }
    }
    freeReplyObject(r);
    return n;
}

static void xadd(const struct tam_buf *job)
{
    freeReplyObject(cmd("XADD %s * job %b", TAM_KEY_JOBS, job->data, job->len));
}

/* ---- measurements ---- */

/* Operations per second, by wall clock and by this process's CPU time. */
struct rate {
    double wall, cpu;
};

struct rates {
    struct rate sign, verify, fresh; /* fresh: import a new public key, then verify with it */
    double import_cpu;               /* imports per CPU second */
};

typedef void (*op_fn)(long i);

#define MSG_MAX 8192
/*
 * EATs to verify: distinct messages and signatures, as every job brings its own. Verifying
 * one signature over and over ran 11-15% faster (the branch predictors learn its inputs),
 * which made the bound optimistic.
 */
#define EATS 256
static uint8_t g_msg[MSG_MAX], g_sig[TAM_SIG_MAX], g_eats[EATS * MSG_MAX], g_vsig[EATS][64];
static size_t g_sig_len;
static long g_verified; /* the next EAT */
/* Keys used once each (until the pool wraps): [0, N) import+verify, [N, 2N) import only. */
#define FRESH_KEYS 2048
static uint8_t g_pub[2 * FRESH_KEYS][64], g_psig[FRESH_KEYS][TAM_SIG_MAX];
static long g_fresh, g_imported; /* the next of each */

static void op_sign(long i)
{
    (void)i;
    check(tam_sign(B.tam_p256, TAM_ALG_ESP256, g_msg, g_update_len, g_sig, &g_sig_len), "sign");
}

static void op_verify(long i)
{
    (void)i;
    long e = g_verified++ % EATS;
    check(tam_verify(B.tam_p256, TAM_ALG_ESP256, g_eats + e * g_eat_len, g_eat_len, g_vsig[e], 64),
          "verify");
}

static void op_import(long i)
{
    (void)i;
    struct tam_key *k = NULL;
    check(tam_key_from_raw_public(TAM_KEY_P256, g_pub[FRESH_KEYS + g_imported++ % FRESH_KEYS], 64,
                                  &k),
          "import");
    tam_key_destroy(k);
}

static void op_fresh(long i)
{
    (void)i;
    struct tam_key *k = NULL;
    long f = g_fresh++ % FRESH_KEYS;
    check(tam_key_from_raw_public(TAM_KEY_P256, g_pub[f], 64, &k), "import");
    check(tam_verify(k, TAM_ALG_ESP256, g_msg, g_eat_len, g_psig[f], 64), "verify");
    tam_key_destroy(k);
}

/* Runs op for secs. */
static struct rate measure(op_fn op, double secs)
{
    long n = 0;
    double w0 = now_s(), c0 = cpu_s(), w;
    do {
        for (int i = 0; i < 8; i++, n++) {
            op(n);
        }
        w = now_s() - w0;
    } while (w < secs);
    struct rate r = {(double)n / w, (double)n / (cpu_s() - c0)};
    return r;
}

static void crypto_setup(void)
{
    if (g_eat_len > MSG_MAX || g_update_len > MSG_MAX) {
        die("EAT (%zu) or Update (%zu) larger than %d bytes", g_eat_len, g_update_len, MSG_MAX);
    }
    memset(g_msg, 0x5a, sizeof(g_msg));
    op_sign(0);
    for (int e = 0; e < EATS; e++) {
        size_t len = 0;
        uint8_t *eat = g_eats + e * g_eat_len;
        memset(eat, 0x5a, g_eat_len);
        memcpy(eat, &e, sizeof(e));
        check(tam_sign(B.tam_p256, TAM_ALG_ESP256, eat, g_eat_len, g_vsig[e], &len), "sign");
    }
    for (int i = 0; i < 2 * FRESH_KEYS; i++) {
        struct tam_key *k = NULL;
        size_t len = 0;
        check(tam_key_generate(TAM_KEY_P256, &k), "keygen");
        (void)tam_key_public_raw(k, g_pub[i]);
        if (i < FRESH_KEYS) {
            check(tam_sign(k, TAM_ALG_ESP256, g_msg, g_eat_len, g_psig[i], &len), "sign");
        }
        tam_key_destroy(k);
    }
}

/* The rates of the operations a job costs (the fresh ones only when the mode has them). */
/* ---- placement ---- */

static int g_cpu_work = -1, g_cpu_redis = -1; /* -1: not pinned */

static void choose_cpus(void)
{
    cpu_set_t set;
    if (getenv("TAM_BENCH_NOPIN") != NULL || sched_getaffinity(0, sizeof(set), &set) != 0) {
        return;
    }
    for (int c = 0; c < CPU_SETSIZE && g_cpu_redis < 0; c++) {
        if (CPU_ISSET(c, &set)) {
            *(g_cpu_work < 0 ? &g_cpu_work : &g_cpu_redis) = c;
        }
    }
    if (g_cpu_redis < 0) {
        g_cpu_work = -1; /* one CPU: nothing to place */
    }
}

static void pin(pid_t pid, int cpu)
{
    if (cpu < 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(pid, sizeof(set), &set) != 0) {
        die("sched_setaffinity: %s", strerror(errno));
    }
}

static struct rates crypto_rates(double secs, bool fresh)
{
    pin(0, g_cpu_work); /* the bound on the worker's core */
    struct rates r;
    memset(&r, 0, sizeof(r));
    r.sign = measure(op_sign, secs);
    r.verify = measure(op_verify, secs);
    if (fresh) {
        r.fresh = measure(op_fresh, secs);
        r.import_cpu = measure(op_import, secs).cpu;
    }
    pin(0, g_cpu_redis); /* waiting for results, beside Redis */
    return r;
}

static void average(struct rates *a, const struct rates *b)
{
    a->sign.wall = (a->sign.wall + b->sign.wall) / 2;
    a->sign.cpu = (a->sign.cpu + b->sign.cpu) / 2;
    a->verify.wall = (a->verify.wall + b->verify.wall) / 2;
    a->verify.cpu = (a->verify.cpu + b->verify.cpu) / 2;
    a->fresh.wall = (a->fresh.wall + b->fresh.wall) / 2;
    a->fresh.cpu = (a->fresh.cpu + b->fresh.cpu) / 2;
    a->import_cpu = (a->import_cpu + b->import_cpu) / 2;
}

/* Jobs per second: by wall clock, and per CPU second of the worker process; the shares of the
 * wall time the worker ran and waited for a CPU (the rest it waited for Redis or for jobs). */
struct tput {
    double wall, cpu;
    double run_share, wait_share;
};

/*
 * The jobs are queued while the worker is stopped (SIGSTOP), then it runs them from a full
 * queue: the window is SIGCONT -> the last result read (XREAD BLOCK on the result stream:
 * this process wakes once per batch of results, and takes little CPU from the worker).
 */
static struct tput throughput(struct tam_buf *jobs, int n)
{
    if (kill(B.worker, SIGSTOP) != 0) {
        die("SIGSTOP: %s", strerror(errno));
    }
    for (int i = 0; i < n; i += 100) {
        for (int k = i; k < n && k < i + 100; k++) {
            redisAppendCommand(B.c, "XADD %s * job %b", TAM_KEY_JOBS, jobs[k].data, jobs[k].len);
        }
        for (int k = i; k < n && k < i + 100; k++) {
            void *r = NULL;
            if (redisGetReply(B.c, &r) != REDIS_OK) {
                die("xadd");
            }
            freeReplyObject(r);
        }
    }
    struct sched s0 = proc_sched(B.worker);
    double t0 = now_s();
    kill(B.worker, SIGCONT);
    int got = 0, ok = 0;
    while (got < n) {
        int k = read_results(5000, &ok);
        if (k == 0) {
            die("%d of %d results arrived (see %s/worker.log)", got, n, B.dir);
        }
        got += k;
    }
    double t = now_s() - t0;
    struct sched s1 = proc_sched(B.worker);
    if (ok != n) {
        die("%d of %d jobs gave an Update (see %s/worker.log)", ok, n, B.dir);
    }
    double c = s1.run - s0.run;
    struct tput r = {(double)n / t, (double)n / c, c / t, (s1.wait - s0.wait) / t};
    return r;
}

static void latency(const char *label, struct tam_buf *jobs, int n)
{
    struct tam_hdr *h = NULL;
    check(tam_hdr_create(60ULL * TAM_HDR_US_PER_S, 3, &h), "hdr");
    int ok = 0;
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        xadd(&jobs[i]);
        int got = 0;
        while (got == 0) {
            got = read_results(5000, &ok);
            if (got == 0) {
                die("no result (see %s/worker.log)", B.dir);
            }
        }
        tam_hdr_record(h, (uint64_t)((now_s() - t0) * 1e6));
    }
    printf("  %-44s p50 %6llu us  p99 %6llu us  (n=%d)\n", label,
           (unsigned long long)tam_hdr_value_at_percentile(h, 50),
           (unsigned long long)tam_hdr_value_at_percentile(h, 99), n);
    tam_hdr_destroy(h);
}

static int atoi_checked(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > 100000) {
        die("bad count %s", s);
    }
    return (int)v;
}

static void kid_of(int i, uint8_t kid[32])
{
    memset(kid, 0, 32);
    kid[0] = 0xbe;
    kid[28] = (uint8_t)(i >> 24);
    kid[29] = (uint8_t)(i >> 16);
    kid[30] = (uint8_t)(i >> 8);
    kid[31] = (uint8_t)i;
}

/*
 * Jobs/s beside the crypto bound: cost = the sum of the operations' times (1 / rate). Both by
 * wall clock (the measure; sensitive to other load on a shared machine) and by CPU
 * time (worker CPU per job vs crypto CPU per operation: what the worker adds).
 *
 * The host's speed drifts within a second on a shared VM, so the jobs run in short slices
 * (48 of 400 registered-device or 100 attested jobs, about 60-70 ms; 16 when quick), each
 * between two short crypto measurements (about 15 ms per operation), and each slice's ratio
 * uses the average of the two around it: the worker and the bound are measured within tens
 * of milliseconds of each other. The median slice is reported, with the middle half of the
 * slices (25th..75th percentile). Each slice starts the worker cold and ends with a commit
 * nothing overlaps, which a steady stream does not have: with slices of 200 jobs that cost
 * about 3 points of the ratio (RESULTS.md), with 400 about half as much.
 */
#define ROUNDS_MAX 48

struct ratio {
    double wall, cpu;             /* ratio to the bound, 0..1 */
    double jobs_s, bound;         /* wall clock */
    double run_share, wait_share; /* of the slice's wall time */
};

typedef double (*cost_fn)(const struct rates *r, bool cpu);

static double cost_registered(const struct rates *r, bool cpu)
{
    return cpu ? 1 / r->verify.cpu + 1 / r->sign.cpu : 1 / r->verify.wall + 1 / r->sign.wall;
}

/* The cnf key is imported twice (the EAT decoder computes its thumbprint; the worker imports
 * it to verify the message): one extra import beside import+verify. */
static double cost_attested(const struct rates *r, bool cpu)
{
    return cpu ? 1 / r->verify.cpu + 1 / r->fresh.cpu + 1 / r->sign.cpu + 1 / r->import_cpu
               : 1 / r->verify.wall + 1 / r->fresh.wall + 1 / r->sign.wall + 1 / r->import_cpu;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_wall(const void *a, const void *b)
{
    double x = ((const struct ratio *)a)->wall, y = ((const struct ratio *)b)->wall;
    return (x > y) - (x < y);
}

static void report_mode(const char *label, struct ratio *v, int n)
{
    double cpu[ROUNDS_MAX];
    for (int i = 0; i < n; i++) {
        cpu[i] = v[i].cpu;
    }
    qsort(cpu, (size_t)n, sizeof(*cpu), cmp_double);
    qsort(v, (size_t)n, sizeof(*v), cmp_wall);
    const struct ratio *m = &v[n / 2];
    printf("  %s (median of %d slices; middle half)\n", label, n);
    printf("    wall: %7.0f jobs/s, crypto bound %7.0f/s, ratio %5.1f%% (%.1f..%.1f%%)\n",
           m->jobs_s, m->bound, 100 * m->wall, 100 * v[n / 4].wall, 100 * v[3 * n / 4].wall);
    printf("    cpu:  ratio %5.1f%% of the crypto bound per worker CPU second (%.1f..%.1f%%)\n",
           100 * cpu[n / 2], 100 * cpu[n / 4], 100 * cpu[3 * n / 4]);
    printf("    worker (that slice): on a CPU %.0f%%, runnable waiting for a CPU %.0f%%, blocked "
           "(Redis, jobs) %.0f%% of the wall time\n",
           100 * m->run_share, 100 * m->wait_share, 100 * (1 - m->run_share - m->wait_share));
}

/* Runs jobs[0..n) in `rounds` slices, with the crypto rates measured around each. */
static void measure_rounds(struct tam_buf *jobs, int n, int rounds, double secs, cost_fn cost,
                           struct ratio out[ROUNDS_MAX], struct rates *last)
{
    crypto_setup();
    bool fresh = cost == cost_attested;
    struct rates before = crypto_rates(secs, fresh);
    for (int k = 0; k < rounds; k++) {
        int from = n * k / rounds, to = n * (k + 1) / rounds;
        struct tput t = throughput(jobs + from, to - from);
        struct rates after = crypto_rates(secs, fresh), avg = before;
        average(&avg, &after);
        out[k].jobs_s = t.wall;
        out[k].bound = 1 / cost(&avg, false);
        out[k].wall = t.wall * cost(&avg, false);
        out[k].cpu = t.cpu * cost(&avg, true);
        out[k].run_share = t.run_share;
        out[k].wait_share = t.wait_share;
        before = after;
    }
    *last = before;
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations();   /* as tamd, tam-worker and tam-agent do */
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows as it happens, even into a file */
    bool quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    int n_tp = quick ? 6400 : 19200, n_lat = quick ? 200 : 1000, n_att = quick ? 1600 : 4800;
    if (getenv("TAM_BENCH_TP") != NULL) { /* profiling: a long registered-device run only */
        n_tp = atoi_checked(getenv("TAM_BENCH_TP"));
        n_att = 0;
    }
    double secs = quick ? 0.01 : 0.015;
    snprintf(B.dir, sizeof(B.dir), "/tmp/bench-worker-XXXXXX");
    if (mkdtemp(B.dir) == NULL) {
        die("mkdtemp");
    }
    find_paths();
    B.tam_p256 = vector_key("tam_p256.priv.pem");
    B.agent = vector_key("agent_p256.priv.pem");
    check(tam_key_generate(TAM_KEY_P256, &B.attester), "keygen");
    B.acme = tam_tenant_create("acme");
    B.open = tam_tenant_create("open");
    start_redis();
    write_config();
    struct tam_buf env;
    tam_buf_init(&env, 1u << 20);
    struct tam_buf hex;
    tam_buf_init(&hex, 1u << 20);
    read_file(vector_path("teep_suit_uri.hex"), &hex);
    check(tam_hex_decode((const char *)hex.data, hex.len, &env), "hex");
    setup_tenant("acme", &env);
    setup_tenant("open", &env);
    snprintf(B.last_id, sizeof(B.last_id), "0-0");
    start_worker();
    choose_cpus();
    pin(B.redis, g_cpu_redis);
    pin(B.worker, g_cpu_work);

    /* Prepared before any timing. */
    int total = n_tp + 2 * n_lat + 1;
    struct tam_buf *jobs = tam_calloc((size_t)total + (size_t)n_att, sizeof(*jobs));
    for (int i = 0; i < total + n_att; i++) {
        tam_buf_init(&jobs[i], 1u << 20);
    }
    uint8_t kid[32];
    for (int i = 0; i < total; i++) {
        kid_of(i, kid);
        make_job(kid, NULL, &jobs[i], NULL);
    }
    for (int i = 0; i < n_att; i++) {
        struct tam_key *k = NULL;
        check(tam_key_generate(TAM_KEY_P256, &k), "keygen");
        make_job(tam_key_kid(k), k, &jobs[total + i], NULL);
        tam_key_destroy(k);
    }

    printf("bench_worker: one tam-worker process, Redis on a Unix socket, %s; ",
           quick ? "quick" : "full");
    if (g_cpu_work >= 0) {
        printf("worker and crypto bound on CPU %d, Redis on CPU %d\n", g_cpu_work, g_cpu_redis);
    } else {
        printf("placement left to the scheduler\n");
    }
    /* Warm up: the worker connects and loads the catalogues. */
    latency("warm-up (first job, catalogue load)", &jobs[total - 1], 1);
    struct ratio reg[ROUNDS_MAX], att[ROUNDS_MAX];
    int rounds = quick ? 16 : ROUNDS_MAX;
    struct rates r;
    measure_rounds(jobs, n_tp, rounds, secs, cost_registered, reg, &r);
    printf("  crypto, last of the run (per wall s / per CPU s): P-256 sign a %zu-byte Update "
           "%.0f / %.0f, verify a %zu-byte EAT %.0f / %.0f\n",
           g_update_len, r.sign.wall, r.sign.cpu, g_eat_len, r.verify.wall, r.verify.cpu);
    report_mode("registered device: EAT verify + Update sign", reg, rounds);
    if (n_att > 0) {
        measure_rounds(&jobs[total], n_att, rounds, secs, cost_attested, att, &r);
        printf("  crypto, last of the run: import+verify of a new key %.0f / %.0f, import %.0f "
               "per CPU s\n",
               r.fresh.wall, r.fresh.cpu, r.import_cpu);
        report_mode("attested enrollment: EAT verify + cnf key import x2 + message verify + sign",
                    att, rounds);
    }

    /* Hop latency: jobs answered from the done key measure the queue itself. */
    struct tam_buf *hop = tam_calloc((size_t)n_lat, sizeof(*hop));
    for (int i = 0; i < n_lat; i++) {
        tam_buf_init(&hop[i], 1u << 20);
        readdress(&jobs[0], &hop[i]);
    }
    latency("hop (XADD -> result, answered from done key)", hop, n_lat);
    latency("full QueryResponse job (EAT + Update sign)", &jobs[n_tp], n_lat);

    stop(B.worker);
    stop(B.redis);
    for (int i = 0; i < n_lat; i++) {
        tam_buf_finish(&hop[i]);
    }
    for (int i = 0; i < total + n_att; i++) {
        tam_buf_finish(&jobs[i]);
    }
    tam_free(hop);
    tam_free(jobs);
    tam_buf_finish(&env);
    tam_buf_finish(&hex);
    redisFree(B.c);
    tam_key_destroy(B.tam_p256);
    tam_key_destroy(B.agent);
    tam_key_destroy(B.attester);
    tam_tenant_unref(B.acme);
    tam_tenant_unref(B.open);
    if (getenv("TAM_BENCH_KEEP") != NULL) {
        return 0;
    }
    char rm[128];
    snprintf(rm, sizeof(rm), "rm -rf '%s'", B.dir);
    if (system(rm) != 0) {
        fprintf(stderr, "bench_worker: could not remove %s\n", B.dir);
    }
    return 0;
}
