/*
 * Gateway benchmark (issue #3), one command:
 *     TAM_BUILD_ROOT=build TAM_VECTORS=tests/vectors build/tests/bench/bench_gateway [quick]
 * (tests/bench/run.sh sets both). It starts one tamd process with its private redis-server
 * (zero-config data dir, no workers) and measures, in the same run:
 *   1. raw signing rates of the two TAM keys (wolfCrypt through tam_sign) and the
 *      2-signature bound 1 / (1/p256 + 1/ed25519) that caps QueryRequests per core;
 *   2. peak empty-POST -> QueryRequest throughput with keep-alive: wrk -t1 -c64 and a Lua
 *      script (POST, Accept: application/teep+cbor);
 *   3. latency percentiles at half of that peak with our own libuv client (tam_httpc) at a
 *      fixed rate: requests are issued on schedule whatever the answers (the pool queues
 *      them when its 64 connections are busy), and latency counts from the issue, so
 *      queueing is measured (no coordinated omission); the worst lag of an issue behind
 *      its schedule (1 ms timer ticks, client stalls) is printed beside;
 *   4. VmRSS of the tamd process holding 10,000 idle keep-alive connections (each served
 *      one request first).
 * Prints a table with the targets (p99 < 2 ms at half peak; 10k idle < 64 MiB) and the
 * ratio of the measured session rate to the signing bound.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tam/alloc.h"
#include "tam/cose.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/hdr.h"
#include "tam/httpc.h"
#include "tam/session.h"
#include "tam/tenant.h"

#define IDLE_CONNS 10000u
#define WRK_CONNS  64u
#define RATE_CONNS 64u

static struct {
    bool quick;
    char dir[64];
    char tamd[512];
    char vectors[512];
    uint16_t port, admin;
    int hold[2];
    pid_t pid;
} B;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_gateway: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (B.pid > 0) {
        kill(B.pid, SIGKILL);
    }
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the tamd process ---- */

static uint16_t reserve_port(int *holder)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        die("bind: %s", strerror(errno));
    }
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *holder = fd;
    return ntohs(sa.sin_port);
}

/* Status of GET path on the admin port, -1 on failure. */
static int admin_get(const char *path, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(B.admin)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    static char buf[1 << 20];
    size_t have = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0) {
            break;
        }
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0) {
            break;
        }
        have += (size_t)r;
    }
    close(fd);
    buf[have] = '\0';
    if (have < 12) {
        return -1;
    }
    if (body != NULL) {
        const char *b = strstr(buf, "\r\n\r\n");
        snprintf(body, cap, "%s", b != NULL ? b + 4 : "");
    }
    return (int)strtol(buf + 9, NULL, 10);
}

static void start_tamd(void)
{
    char cfg[4096], path[128];
    snprintf(path, sizeof(path), "%s/tamd.ini", B.dir);
    int n = snprintf(cfg, sizeof(cfg),
                     "listen = 127.0.0.1:%u\nadmin-listen = 127.0.0.1:%u\n"
                     "data-dir = %s/data\nworkers = 0\nlog-level = warn\n"
                     "max-connections = %u\nidle-timeout = 10m\n"
                     "[tenant bench]\ntam-key = %s/tam_p256.priv.pem\n"
                     "tam-key = %s/tam_ed25519.priv.pem\n",
                     B.port, B.admin, B.dir, IDLE_CONNS + 2000, B.vectors, B.vectors);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(cfg, 1, (size_t)n, f) != (size_t)n) {
        die("cannot write %s", path);
    }
    fclose(f);
    B.pid = fork();
    if (B.pid == 0) {
        char log[128];
        snprintf(log, sizeof(log), "%s/tamd.log", B.dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(B.tamd, "tamd", "--config", path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (admin_get("/readyz", NULL, 0) == 200) {
            return;
        }
        sleep_ms(20);
    }
    die("tamd did not become ready (log in %s)", B.dir);
}

static void stop_tamd(void)
{
    kill(B.pid, SIGTERM);
    int st = 0;
    waitpid(B.pid, &st, 0);
    B.pid = 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", B.dir);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        (void)system(cmd);
    } else {
        fprintf(stderr, "tamd exit status %d; kept %s\n", st, B.dir);
    }
}

static double rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    double kib = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtod(line + 6, NULL);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kib / 1024.0;
}

/* ---- 1. signing ---- */

static struct tam_key *load_key(const char *name)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", B.vectors, name);
    FILE *f = fopen(path, "r");
    char pem[4096];
    size_t n = f != NULL ? fread(pem, 1, sizeof(pem), f) : 0;
    if (f != NULL) {
        fclose(f);
    }
    struct tam_key *k = NULL;
    if (tam_key_from_pem(pem, n, &k) != TAM_OK) {
        die("cannot load %s", path);
    }
    return k;
}

static double sign_rate(const struct tam_key *k, double secs)
{
    uint8_t msg[200], sig[TAM_SIG_MAX];
    memset(msg, 0x5a, sizeof(msg)); /* about a QueryRequest Sig_structure */
    size_t sl;
    uint64_t n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 32; i++) {
            msg[0] = (uint8_t)n;
            if (tam_sign(k, tam_key_default_alg(k), msg, sizeof(msg), sig, &sl) != TAM_OK) {
                die("tam_sign");
            }
            n++;
        }
        t = now_s() - t0;
    } while (t < secs);
    return (double)n / t;
}

/* The gateway's own work per session, in process: new session, encode, COSE_Sign, record. */
static double session_rate(struct tam_tenant *t, double secs)
{
    uint64_t n = 0;
    double t0 = now_s(), el;
    uint8_t rnd[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    do {
        if (tam_random(rnd, sizeof(rnd)) != TAM_OK) {
            die("tam_random");
        }
        struct tam_sess s;
        tam_sess_new_query(&s, t, rnd, 1);
        struct tam_teep_msg qr;
        tam_sess_query_request(&s, &qr);
        struct tam_buf out, rec;
        tam_buf_init(&out, 1 << 16);
        tam_buf_init(&rec, 4096);
        if (tam_sess_sign_query_request(t, &qr, &out) != TAM_OK ||
            tam_sess_encode(&s, &rec) != TAM_OK) {
            die("sign query request");
        }
        tam_buf_finish(&out);
        tam_buf_finish(&rec);
        n++;
        el = now_s() - t0;
    } while (el < secs);
    return (double)n / el;
}

/* ---- 2. peak with wrk ---- */

struct peak {
    double rps;
    double p50_ms, p99_ms;
    long non2xx;
};

static double wrk_ms(const char *out, const char *pct)
{
    const char *p = strstr(out, pct);
    if (p == NULL) {
        return -1;
    }
    p += strlen(pct);
    char *end;
    double v = strtod(p, &end);
    if (strncmp(end, "us", 2) == 0) {
        return v / 1000.0;
    }
    if (strncmp(end, "ms", 2) == 0) {
        return v;
    }
    return v * 1000.0;
}

static struct peak run_wrk(unsigned secs)
{
    char lua[128], cmd[512];
    snprintf(lua, sizeof(lua), "%s/post.lua", B.dir);
    FILE *f = fopen(lua, "w");
    fprintf(f, "wrk.method = \"POST\"\n"
               "wrk.headers[\"Accept\"] = \"application/teep+cbor\"\n"
               "wrk.headers[\"Content-Length\"] = \"0\"\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "wrk -t1 -c%u -d%us --latency -s %s http://127.0.0.1:%u/tam/bench",
             WRK_CONNS, secs, lua, B.port);
    FILE *p = popen(cmd, "r");
    static char out[16384];
    size_t n = p != NULL ? fread(out, 1, sizeof(out) - 1, p) : 0;
    out[n] = '\0';
    if (p == NULL || pclose(p) != 0) {
        die("wrk failed:\n%s", out);
    }
    struct peak pk = {0};
    const char *rps = strstr(out, "Requests/sec:");
    if (rps == NULL) {
        die("no Requests/sec in wrk output:\n%s", out);
    }
    pk.rps = strtod(rps + 13, NULL);
    pk.p50_ms = wrk_ms(out, "50%");
    pk.p99_ms = wrk_ms(out, "99%");
    const char *bad = strstr(out, "Non-2xx or 3xx responses:");
    pk.non2xx = bad != NULL ? strtol(bad + 25, NULL, 10) : 0;
    return pk;
}

/* ---- 3. fixed rate ---- */

struct rate {
    uv_loop_t loop;
    uv_timer_t tick;
    struct tam_httpc_pool *pool;
    struct tam_hdr *h;
    uint64_t start_ns;
    double rate;
    uint64_t total, warmup, issued, done, errors;
    uint64_t max_lag_ns;
};

struct rreq {
    struct rate *r;
    uint64_t issued_ns;
    uint64_t index;
};

static void on_rate_done(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct rreq *q = arg;
    struct rate *r = q->r;
    uint64_t lat_us = (uv_hrtime() - q->issued_ns) / 1000u;
    if (err != 0 || resp->status != 200) {
        r->errors++;
    } else if (q->index >= r->warmup) {
        tam_hdr_record(r->h, lat_us);
    }
    tam_free(q);
    if (++r->done == r->total) {
        uv_timer_stop(&r->tick);
        uv_close((uv_handle_t *)&r->tick, NULL);
        tam_httpc_pool_close(r->pool, NULL, NULL);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct rate *r = t->data;
    uint64_t now = uv_hrtime();
    uint64_t due = (uint64_t)((double)(now - r->start_ns) * r->rate / 1e9) + 1;
    while (r->issued < due && r->issued < r->total) {
        struct rreq *q = tam_malloc(sizeof(*q));
        q->r = r;
        q->index = r->issued;
        uint64_t intended = r->start_ns + (uint64_t)((double)r->issued * 1e9 / r->rate);
        q->issued_ns = uv_hrtime();
        if (q->index >= r->warmup && q->issued_ns - intended > r->max_lag_ns) {
            r->max_lag_ns = q->issued_ns - intended;
        }
        r->issued++;
        if (tam_httpc_teep_post(r->pool, tam_bytes_of(NULL, 0), on_rate_done, q) != TAM_OK) {
            tam_free(q);
            r->errors++;
            r->done++;
        }
    }
}

static struct tam_hdr *run_rate(double rate, unsigned secs, uint64_t *errors, double *lag_ms)
{
    static struct rate r;
    memset(&r, 0, sizeof(r));
    if (uv_loop_init(&r.loop) != 0 || tam_hdr_create(60ull * 1000000, 3, &r.h) != TAM_OK) {
        die("loop/hdr");
    }
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/tam/bench", B.port);
    struct tam_httpc_opts o = {
        .url = url, .max_conns = RATE_CONNS, .timeout_ms = 20000, .max_queue = 1u << 20};
    if (tam_httpc_pool_create(&r.loop, &o, &r.pool) != TAM_OK) {
        die("pool");
    }
    r.rate = rate;
    r.total = (uint64_t)(rate * secs);
    r.warmup = (uint64_t)rate; /* the first second warms connections and caches */
    uv_timer_init(&r.loop, &r.tick);
    r.tick.data = &r;
    r.start_ns = uv_hrtime();
    uv_timer_start(&r.tick, on_tick, 0, 1);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop) != 0) {
        die("client loop not empty");
    }
    *errors = r.errors;
    *lag_ms = (double)r.max_lag_ns / 1e6;
    return r.h;
}

/* ---- 4. idle connections ---- */

struct idle {
    unsigned done, ok;
    int last_err, last_status;
};

static void on_idle_done(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct idle *i = arg;
    i->done++;
    i->ok += err == 0 && resp->status == 200;
    if (err != 0 || resp->status != 200) {
        i->last_err = err;
        i->last_status = err == 0 ? resp->status : 0;
    }
}

static long open_conns(void)
{
    static char body[1 << 20];
    if (admin_get("/metrics", body, sizeof(body)) != 200) {
        return -1;
    }
    const char *p = strstr(body, "\ntam_http_connections ");
    return p != NULL ? strtol(p + 22, NULL, 10) : -1;
}

static void run_idle(double *base_mib, double *idle_mib, long *held)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/tam/bench", B.port);
    struct tam_httpc_opts o = {
        .url = url, .max_conns = IDLE_CONNS, .timeout_ms = 60000, .max_queue = IDLE_CONNS};
    struct tam_httpc_pool *pool = NULL;
    if (tam_httpc_pool_create(&loop, &o, &pool) != TAM_OK) {
        die("idle pool");
    }
    *base_mib = rss_mib(B.pid);
    struct idle st = {0};
    for (unsigned i = 0; i < IDLE_CONNS; i++) {
        if (tam_httpc_teep_post(pool, tam_bytes_of(NULL, 0), on_idle_done, &st) != TAM_OK) {
            die("idle request");
        }
    }
    while (st.done < IDLE_CONNS) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    struct tam_httpc_stats hs;
    tam_httpc_pool_stats(pool, &hs);
    if (st.ok != IDLE_CONNS || hs.conns_active != IDLE_CONNS) {
        die("idle: %u of %u answered, %u connections open (last error %s, status %d)", st.ok,
            IDLE_CONNS, hs.conns_active, st.last_err != 0 ? tam_strerror(st.last_err) : "none",
            st.last_status);
    }
    sleep_ms(1000); /* let the gateway settle: freed buffers, idle timers armed */
    *held = open_conns();
    *idle_mib = rss_mib(B.pid);
    tam_httpc_pool_close(pool, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
}

/* ---- main ---- */

static void setup(int argc, char **argv)
{
    B.quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    const char *root = getenv("TAM_BUILD_ROOT");
    const char *vec = getenv("TAM_VECTORS");
    snprintf(B.tamd, sizeof(B.tamd), "%s/src/gateway/tamd", root != NULL ? root : "build");
    snprintf(B.vectors, sizeof(B.vectors), "%s", vec != NULL ? vec : "tests/vectors");
    if (access(B.tamd, X_OK) != 0) {
        die("no tamd at %s (set TAM_BUILD_ROOT)", B.tamd);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < IDLE_CONNS + 200) {
        die("RLIMIT_NOFILE hard limit %llu < %u", (unsigned long long)rl.rlim_cur,
            IDLE_CONNS + 200);
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(B.dir, sizeof(B.dir), "/tmp/bench-gw-XXXXXX");
    if (mkdtemp(B.dir) == NULL) {
        die("mkdtemp");
    }
    B.port = reserve_port(&B.hold[0]);
    B.admin = reserve_port(&B.hold[1]);
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* as tamd, tam-worker and tam-agent do */
    setup(argc, argv);
    double secs = B.quick ? 0.5 : 2.0;
    unsigned load_s = B.quick ? 3 : 10;
    struct tam_key *p256 = load_key("tam_p256.priv.pem");
    struct tam_key *ed = load_key("tam_ed25519.priv.pem");
    struct tam_tenant *t = tam_tenant_create("bench");
    t->tam_keys[0] = p256;
    t->tam_keys[1] = ed;
    double r_p = sign_rate(p256, secs), r_e = sign_rate(ed, secs);
    double bound = 1.0 / (1.0 / r_p + 1.0 / r_e);
    double r_s = session_rate(t, secs);
    start_tamd();
    /* TAM_BENCH_PEAK=N skips wrk and takes N as the peak (to probe the fixed-rate client). */
    const char *fixed_peak = getenv("TAM_BENCH_PEAK");
    struct peak pk = {0};
    if (fixed_peak != NULL) {
        pk.rps = strtod(fixed_peak, NULL);
    } else {
        pk = run_wrk(load_s);
    }
    uint64_t errors = 0;
    double lag_ms = 0;
    struct tam_hdr *h = run_rate(pk.rps / 2, load_s, &errors, &lag_ms);
    double base = 0, idle = 0;
    long held = 0;
    run_idle(&base, &idle, &held);
    stop_tamd();

    printf("gateway (1 tamd process + private redis-server; client on the same %ld cores)\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("  %-52s %10.0f /s\n", "P-256 sign (ESP256, tam_sign)", r_p);
    printf("  %-52s %10.0f /s\n", "Ed25519 sign (tam_sign)", r_e);
    printf("  %-52s %10.0f /s\n", "2-signature bound 1/(1/p256 + 1/ed25519)", bound);
    printf("  %-52s %10.0f /s   ratio %.2f\n", "in-process QueryRequest (encode + COSE_Sign)", r_s,
           r_s / bound);
    printf("  %-52s %10.0f /s   ratio %.2f   (p50 %.2f ms, p99 %.2f ms, non-2xx %ld)\n",
           "peak empty POST -> QueryRequest (wrk -t1 -c64)", pk.rps, pk.rps / bound, pk.p50_ms,
           pk.p99_ms, pk.non2xx);
    double p99 = (double)tam_hdr_value_at_percentile(h, 99.0) / 1000.0;
    printf("  %-52s %10.0f /s   p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f ms  (errors %llu, "
           "max issue lag %.1f ms)\n",
           "fixed rate at half of peak (tam_httpc, 64 conns)", pk.rps / 2,
           (double)tam_hdr_value_at_percentile(h, 50.0) / 1000.0,
           (double)tam_hdr_value_at_percentile(h, 90.0) / 1000.0, p99,
           (double)tam_hdr_value_at_percentile(h, 99.9) / 1000.0, (unsigned long long)errors,
           lag_ms);
    printf("  %-52s %10.1f MiB (baseline %.1f MiB, %.2f KiB/conn, %ld held)\n",
           "RSS with 10,000 idle keep-alive connections", idle, base,
           (idle - base) * 1024.0 / IDLE_CONNS, held);
    double load[3] = {0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la != NULL && fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) {
        load[0] = -1;
    }
    if (la != NULL) {
        fclose(la);
    }
    printf("  targets: p99 < 2 ms at half peak: %s; 10k idle < 64 MiB: %s   (load average %.2f: "
           "other processes share these cores)\n",
           p99 < 2.0 ? "met" : "MISSED", idle < 64.0 ? "met" : "MISSED", load[0]);
    tam_hdr_destroy(h);
    tam_tenant_unref(t);
    return 0;
}
