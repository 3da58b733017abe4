/*
 * tamd, end to end: the real binary as a child process (temp config file, a private
 * redis-server from redis_fixture.h or its own zero-config one), driven over real sockets
 * by raw HTTP clients, curl (plain and TLS) and the libuv client of include/tam/httpc.h.
 *
 * The worker side of the job interface is played by a small consumer in the test
 * (XREADGROUP on the job stream, XADD of a tam_job_result to the job's reply stream):
 * a real peer of the protocol, exactly what tam-worker does, not a mock of the gateway.
 *
 * The pure parts of the gateway (route.c, keycache.c) are included and tested directly.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "redis_fixture.h"
#include "tam/alloc.h"
#include "tam/cose.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/httpc.h"
#include "tam/job.h"
#include "tam/keys.h"
#include "tam/session.h"
#include "tam/teep.h"
#include "testutil.h"

/* The pure parts, tested through their internal header. */
#include "../../src/gateway/keycache.c"
#include "../../src/gateway/route.c"

/* ======================= small utilities ======================= */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *find_str(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
}

/* Runs a shell command, captures stdout (truncated to cap); returns the exit status. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = 0;
    if (out != NULL && cap > 0) {
        n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
    } else {
        char sink[4096];
        while (fread(sink, 1, sizeof(sink), p) > 0) {
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ======================= the tamd process ======================= */

/* A port kept reserved by a bound (not listening) SO_REUSEPORT socket until the test ends. */
static uint16_t reserve_port(int *holder)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *holder = fd;
    return ntohs(sa.sin_port);
}

struct gwopts {
    const char *extra;        /* top-level config lines */
    const char *tenant_extra; /* lines added to [tenant demo] */
    const char *more;         /* more sections at the end */
    const char *const *args;  /* extra command-line arguments, NULL-terminated */
    bool no_redis;            /* zero-config: no fixture, no redis option */
    bool tls;                 /* generate a certificate, listen with TLS */
    bool wait_ready;          /* default true (set no_wait to skip) */
    bool no_wait;
    unsigned workers; /* tam-worker processes (zero-config mode only) */
};

static struct {
    struct tu_redis rs;
    bool have_redis;
    char dir[128];
    char cfg_path[200];
    char log_path[200];
    uint16_t port, admin;
    int hold[2];
    pid_t pid;
    struct gwopts o;
} G;

static void kill_at_exit(void)
{
    if (G.pid > 0) {
        kill(G.pid, SIGKILL);
        waitpid(G.pid, NULL, 0);
        G.pid = 0;
    }
}

static const char *vec(const char *name)
{
    static char bufs[8][512];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, 512, "%s", tu_vector_path(name));
    return b;
}

static const char *tamd_path(void)
{
    static char p[512];
    const char *root = getenv("TAM_BUILD_ROOT");
    snprintf(p, sizeof(p), "%s/src/gateway/tamd", root != NULL ? root : "build");
    return p;
}

static void make_cert(const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,DNS:127.0.0.1,IP:127.0.0.1 "
             "-keyout %s/%s.key -out %s/%s.pem >/dev/null 2>&1",
             G.dir, name, G.dir, name);
    cr_assert_eq(system(cmd), 0, "openssl failed");
}

static void write_config(void)
{
    char text[8192];
    int n = snprintf(
        text, sizeof(text),
        "listen = 127.0.0.1:%u\n"
        "admin-listen = 127.0.0.1:%u\n"
        "data-dir = %s/data\n"
        "workers = %u\n"
        "log-level = debug\n"
        "default-tenant = demo\n"
        "%s%s%s%s%s%s"
        "%s\n"
        "[tenant demo]\n"
        "tam-key = %s\n"
        "tam-key = %s\n"
        "device-key = %s\n"
        "%s\n%s\n",
        G.port, G.admin, G.dir, G.o.workers, G.have_redis ? "redis = " : "",
        G.have_redis ? G.rs.addr : "", G.have_redis ? "\n" : "", G.o.tls ? "tls-cert = " : "",
        G.o.tls ? G.dir : "", G.o.tls ? "/cert.pem\n" : "", G.o.extra != NULL ? G.o.extra : "",
        vec("tam_p256.priv.pem"), vec("tam_ed25519.priv.pem"), vec("agent_p256.pub.pem"),
        G.o.tenant_extra != NULL ? G.o.tenant_extra : "", G.o.more != NULL ? G.o.more : "");
    cr_assert(n > 0 && (size_t)n < sizeof(text));
    if (G.o.tls) {
        char k[300];
        snprintf(k, sizeof(k), "tls-key = %s/cert.key\n", G.dir);
        /* Top-level keys must come before the first section. */
        char *sec = strstr(text, "[tenant demo]");
        char rest[8192];
        snprintf(rest, sizeof(rest), "%s", sec);
        snprintf(sec, sizeof(text) - (size_t)(sec - text), "%s%s", k, rest);
    }
    write_file(G.cfg_path, text, strlen(text));
}

static int http_status(uint16_t port, const char *path);

static void spawn_tamd(void)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(G.log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        const char *argv[32] = {tamd_path(), "--config", G.cfg_path};
        int n = 3;
        for (int i = 0; G.o.args != NULL && G.o.args[i] != NULL && n < 30; i++) {
            argv[n++] = G.o.args[i];
        }
        argv[n] = NULL;
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    G.pid = pid;
}

/* Waits until /healthz (or /readyz) answers 200. */
static bool wait_admin(const char *path, int want, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (http_status(G.admin, path) == want) {
            return true;
        }
        sleep_ms(20);
    }
    return false;
}

static void gw_start(const struct gwopts *o)
{
    static bool hooked;
    if (!hooked) {
        atexit(kill_at_exit);
        hooked = true;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    memset(&G, 0, sizeof(G));
    G.o = *o;
    snprintf(G.dir, sizeof(G.dir), "/tmp/tu-gw-XXXXXX");
    cr_assert_not_null(mkdtemp(G.dir));
    snprintf(G.cfg_path, sizeof(G.cfg_path), "%s/tamd.ini", G.dir);
    snprintf(G.log_path, sizeof(G.log_path), "%s/tamd.log", G.dir);
    G.port = reserve_port(&G.hold[0]);
    G.admin = reserve_port(&G.hold[1]);
    if (!o->no_redis) {
        tu_redis_start(&G.rs);
        G.have_redis = true;
    }
    if (o->tls) {
        make_cert("cert");
    }
    write_config();
    spawn_tamd();
    if (!o->no_wait) {
        cr_assert(wait_admin(o->no_redis ? "/healthz" : "/readyz", 200, 8000),
                  "tamd did not become ready; see %s", G.log_path);
    }
}

/* SIGTERM and wait; returns the exit status (or -1 after a timeout and SIGKILL). */
static int gw_stop_wait(unsigned ms)
{
    if (G.pid <= 0) {
        return -1;
    }
    kill(G.pid, SIGTERM);
    uint64_t end = now_ms() + ms;
    int st = 0;
    while (now_ms() < end) {
        pid_t r = waitpid(G.pid, &st, WNOHANG);
        if (r == G.pid) {
            G.pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        sleep_ms(10);
    }
    kill_at_exit();
    return -1;
}

static void gw_finish(void)
{
    int code = G.pid > 0 ? gw_stop_wait(10000) : 0; /* 0: the test reaped it already */
    cr_expect_eq(code, 0, "tamd exit status %d; see %s", code, G.log_path);
    /* Sanitizer builds: reports from the parent or any child fail the test. */
    char out[256];
    int found =
        run(out, sizeof(out), "grep -lE '==[0-9]+==ERROR: |: runtime error: ' %s", G.log_path);
    cr_expect_neq(found, 0, "sanitizer report in %s", G.log_path);
    code = found == 0 ? 1 : code;
    if (G.have_redis) {
        tu_redis_stop(&G.rs);
    }
    close(G.hold[0]);
    close(G.hold[1]);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", G.dir);
    if (code == 0 && getenv("TU_GW_KEEP") == NULL) { /* TU_GW_KEEP=1 keeps logs */
        (void)system(cmd);
    }
}

static const struct gwopts default_opts = {0};

/* ======================= raw HTTP client ======================= */

struct resp {
    int status;
    char head[8192];
    uint8_t *body;
    size_t len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        s += w;
        n -= (size_t)w;
    }
    return true;
}

/* Sends one request; hdrs are extra header lines ending in \r\n (may be NULL). */
static bool http_send(int fd, const char *method, const char *path, const char *hdrs,
                      const void *body, size_t len)
{
    char head[2048];
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n", method,
                     path, hdrs != NULL ? hdrs : "", len);
    return send_all(fd, head, (size_t)n) && (len == 0 || send_all(fd, body, len));
}

static bool read_some(int fd, char *buf, size_t cap, size_t *have, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) {
        return false;
    }
    ssize_t r = recv(fd, buf + *have, cap - *have, 0);
    if (r <= 0) {
        return false;
    }
    *have += (size_t)r;
    return true;
}

/* Reads one response (Content-Length framed; 204/304 have no body). False on failure. */
static bool http_read(int fd, struct resp *out, int timeout_ms)
{
    static char buf[1 << 20];
    size_t have = 0;
    memset(out, 0, sizeof(*out));
    const char *eoh = NULL;
    while ((eoh = find_str(buf, have, "\r\n\r\n")) == NULL) {
        if (!read_some(fd, buf, sizeof(buf), &have, timeout_ms)) {
            return false;
        }
    }
    size_t hlen = (size_t)(eoh - buf) + 4;
    cr_assert(hlen < sizeof(out->head));
    memcpy(out->head, buf, hlen);
    out->head[hlen] = '\0';
    out->status = (int)strtol(out->head + 9, NULL, 10);
    size_t clen = 0;
    const char *cl = find_str(out->head, hlen, "Content-Length: ");
    if (cl != NULL) {
        clen = (size_t)strtoul(cl + 16, NULL, 10);
    }
    while (have < hlen + clen) {
        if (!read_some(fd, buf, sizeof(buf), &have, timeout_ms)) {
            return false;
        }
    }
    out->body = malloc(clen + 1);
    memcpy(out->body, buf + hlen, clen);
    out->len = clen;
    return true;
}

/* One request on a fresh connection; status, or -1 when nothing came back. */
static int http_do(uint16_t port, const char *method, const char *path, const char *hdrs,
                   const void *body, size_t len, struct resp *out)
{
    int fd = tcp_connect(port);
    if (fd < 0) {
        return -1;
    }
    struct resp tmp;
    struct resp *r = out != NULL ? out : &tmp;
    bool ok = http_send(fd, method, path, hdrs, body, len) && http_read(fd, r, 5000);
    close(fd);
    int st = ok ? r->status : -1;
    if (out == NULL) {
        resp_free(&tmp);
    }
    return st;
}

static int http_status(uint16_t port, const char *path)
{
    return http_do(port, "GET", path, NULL, NULL, 0, NULL);
}

static const char *has_header(const struct resp *r, const char *line)
{
    return find_str(r->head, strlen(r->head), line);
}

#define TEEP_ACCEPT "Accept: application/teep+cbor\r\n"
#define TEEP_CT     "Content-Type: application/teep+cbor\r\n"

static int teep_post(const void *body, size_t len, struct resp *out)
{
    return http_do(G.port, "POST", "/tam/demo", len > 0 ? TEEP_ACCEPT TEEP_CT : TEEP_ACCEPT, body,
                   len, out);
}

/* The metric value of an exact sample line prefix ("name{labels}"), or -1. */
static long long metric(const char *sample)
{
    struct resp r;
    if (http_do(G.admin, "GET", "/metrics", NULL, NULL, 0, &r) != 200) {
        return -1;
    }
    long long v = -1;
    size_t n = strlen(sample);
    for (char *line = (char *)r.body; line != NULL && line < (char *)r.body + r.len;) {
        char *nl = memchr(line, '\n', r.len - (size_t)(line - (char *)r.body));
        if (strncmp(line, sample, n) == 0 && line[n] == ' ') {
            v = strtoll(line + n + 1, NULL, 10);
        }
        line = nl != NULL ? nl + 1 : NULL;
    }
    resp_free(&r);
    return v;
}

static bool wait_metric(const char *sample, long long want, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (metric(sample) == want) {
            return true;
        }
        sleep_ms(20);
    }
    return false;
}

/* ======================= TEEP helpers ======================= */

static struct tam_key *load_key(const char *name)
{
    size_t len;
    char *pem = tu_load_text(name, &len);
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_pem(pem, len, &k), TAM_OK, "%s", name);
    tam_free(pem);
    return k;
}

struct qr {
    uint8_t token[TAM_TOKEN_LEN];
    uint8_t challenge[64];
    size_t challenge_len;
};

/* Checks a first QueryRequest: COSE_Sign verified with both TAM keys, RFC shape. */
static void check_query_request(const struct resp *r, struct qr *out)
{
    cr_assert_eq(r->status, 200);
    cr_assert_not_null(has_header(r, "Content-Type: application/teep+cbor\r\n"));
    cr_assert_not_null(has_header(r, "X-Content-Type-Options: nosniff\r\n"));
    cr_assert_not_null(has_header(r, "Content-Security-Policy: default-src 'none'\r\n"));
    cr_assert_not_null(has_header(r, "Referrer-Policy: no-referrer\r\n"));
    cr_assert_null(find_str(r->head, strlen(r->head), "Cache-Control"));
    struct tam_cose_msg m;
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(r->body, r->len, &m, &why), TAM_OK, "%s", why);
    cr_assert_eq(m.kind, TAM_COSE_SIGN);
    cr_assert_eq(m.nsigners, 2);
    struct tam_key *p256 = load_key("tam_p256.pub.pem");
    struct tam_key *ed = load_key("tam_ed25519.pub.pem");
    cr_assert_eq(m.signers[0].alg, TAM_ALG_ESP256);
    cr_assert_eq(m.signers[1].alg, TAM_ALG_ED25519);
    cr_assert_eq(tam_cose_verify(&m, 0, p256, NULL, NULL), TAM_OK);
    cr_assert_eq(tam_cose_verify(&m, 1, ed, NULL, NULL), TAM_OK);
    tam_key_destroy(p256);
    tam_key_destroy(ed);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1 << 20);
    struct tam_teep_msg q;
    cr_assert_eq(tam_teep_decode(m.payload.ptr, m.payload.len, TAM_TEEP_RFC, &a, &q, &why), TAM_OK,
                 "%s", why);
    cr_assert_eq(q.type, TAM_TEEP_QUERY_REQUEST);
    cr_assert(q.has_token && q.token.len == TAM_TOKEN_LEN);
    cr_assert(q.has_challenge && q.challenge.len >= 8 && q.challenge.len <= 64);
    cr_assert_eq(q.data_item_requested,
                 TAM_TEEP_DATA_ATTESTATION | TAM_TEEP_DATA_TRUSTED_COMPONENTS);
    cr_assert(tam_teep_suites_has_alg(&q.supported_suites, 18, TAM_ALG_ESP256));
    cr_assert(tam_teep_suites_has_alg(&q.supported_suites, 18, TAM_ALG_ED25519));
    memcpy(out->token, q.token.ptr, TAM_TOKEN_LEN);
    memcpy(out->challenge, q.challenge.ptr, q.challenge.len);
    out->challenge_len = q.challenge.len;
    tam_arena_finish(&a);
}

static void new_session(struct qr *out)
{
    struct resp r;
    cr_assert_eq(teep_post(NULL, 0, &r), 200);
    check_query_request(&r, out);
    resp_free(&r);
}

/* Signs a bare TEEP message with COSE_Sign1 (ESP256 / Ed25519 by key type). */
static void sign_msg(const struct tam_teep_msg *msg, const struct tam_key *key, bool kid,
                     struct tam_buf *out)
{
    struct tam_buf payload;
    tam_buf_init(&payload, 1 << 20);
    cr_assert_eq(tam_teep_encode(msg, TAM_TEEP_RFC, &payload), TAM_OK);
    tam_buf_init(out, 1 << 20);
    struct tam_cose_sign_opts o = {.tagged = true, .include_kid = kid};
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    cr_assert_eq(tam_cose_sign1(out, key, tam_key_default_alg(key), &p, &o), TAM_OK);
    tam_buf_finish(&payload);
}

/* The spec's QueryResponse (teep26_query_response.hex) answering token, signed by key. */
static void query_response(const uint8_t token[TAM_TOKEN_LEN], const struct tam_key *key, bool kid,
                           struct tam_buf *out)
{
    size_t len;
    uint8_t *raw = tu_load_hex("teep26_query_response.hex", &len);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1 << 20);
    struct tam_teep_msg m;
    const char *why = NULL;
    cr_assert_eq(tam_teep_decode(raw, len, TAM_TEEP_RFC, &a, &m, &why), TAM_OK, "%s", why);
    m.token = tam_bytes_of(token, TAM_TOKEN_LEN);
    sign_msg(&m, key, kid, out);
    tam_arena_finish(&a);
    tam_free(raw);
}

static void simple_msg(enum tam_teep_type type, const uint8_t token[TAM_TOKEN_LEN],
                       const struct tam_key *key, struct tam_buf *out)
{
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, type);
    m.has_token = true;
    m.token = tam_bytes_of(token, TAM_TOKEN_LEN);
    if (type == TAM_TEEP_ERROR) {
        m.has_err_code = true;
        m.err_code = TAM_TEEP_ERR_TEMPORARY_ERROR;
    }
    sign_msg(&m, key, true, out);
}

/* ======================= the worker side (test consumer) ======================= */

struct got_job {
    struct tam_job job;
    uint8_t *raw; /* job spans point here */
};

static void ensure_group(void)
{
    redisReply *r =
        tu_redis_cmd(&G.rs, "XGROUP CREATE %s %s 0 MKSTREAM", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP);
    freeReplyObject(r);
}

/* Takes the next job (XREADGROUP, like a worker); false if none within ms. */
static bool take_job(unsigned ms, struct got_job *out)
{
    ensure_group();
    redisContext *c = tu_redis_connect(&G.rs);
    uint64_t end = now_ms() + ms;
    bool got = false;
    while (!got && now_ms() < end) {
        redisReply *r = redisCommand(c, "XREADGROUP GROUP %s test COUNT 1 BLOCK 200 STREAMS %s >",
                                     TAM_KEY_JOBS_GROUP, TAM_KEY_JOBS);
        cr_assert_not_null(r);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1) {
            redisReply *entry = r->element[0]->element[1]->element[0];
            redisReply *fields = entry->element[1];
            cr_assert_eq(fields->elements, 2);
            cr_assert_str_eq(fields->element[0]->str, "job");
            out->raw = malloc(fields->element[1]->len);
            memcpy(out->raw, fields->element[1]->str, fields->element[1]->len);
            const char *why = NULL;
            cr_assert_eq(tam_job_decode(out->raw, fields->element[1]->len, &out->job, &why), TAM_OK,
                         "%s", why);
            got = true;
        }
        freeReplyObject(r);
    }
    redisFree(c);
    return got;
}

static void post_result(const struct tam_job *job, uint16_t status, const void *body, size_t len)
{
    struct tam_job_result res = {.status = status};
    memcpy(res.id, job->id, TAM_JOB_ID_LEN);
    res.body = tam_bytes_of(body, len);
    res.outcome = tam_bytes_of("update", 6);
    struct tam_buf b;
    tam_buf_init(&b, 1 << 20);
    cr_assert_eq(tam_job_result_encode(&res, &b), TAM_OK);
    redisReply *r = tu_redis_cmd(&G.rs, "XADD %s * result %b", job->reply_to, b.data, b.len);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    tam_buf_finish(&b);
}

/* Stores an UPDATE session for token (as a worker does when it sends an Update). */
static void store_update_session(const uint8_t token[TAM_TOKEN_LEN], const uint8_t *kid)
{
    struct tam_sess s;
    memset(&s, 0, sizeof(s));
    s.kind = TAM_SESS_UPDATE;
    snprintf(s.tenant, sizeof(s.tenant), "demo");
    s.numbering = TAM_TEEP_RFC;
    memcpy(s.token, token, TAM_TOKEN_LEN);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s.created_ms = (uint64_t)ts.tv_sec * 1000;
    s.expires_ms = s.created_ms + 60000;
    s.has_device = true;
    memcpy(s.device_kid, kid, TAM_KID_LEN);
    s.alg = TAM_ALG_ESP256;
    struct tam_buf b;
    tam_buf_init(&b, 4096);
    cr_assert_eq(tam_sess_encode(&s, &b), TAM_OK);
    char key[TAM_KEY_MAX];
    tam_key_session(key, token, TAM_TOKEN_LEN);
    redisReply *r = tu_redis_cmd(&G.rs, "SET %s %b PX 60000", key, b.data, b.len);
    freeReplyObject(r);
    tam_buf_finish(&b);
}

/* An Update signed by the TAM (what the worker would return). */
static void make_update(const uint8_t token[TAM_TOKEN_LEN], struct tam_buf *out)
{
    struct tam_key *tam = load_key("tam_p256.priv.pem");
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, TAM_TEEP_UPDATE);
    m.has_token = true;
    m.token = tam_bytes_of(token, TAM_TOKEN_LEN);
    sign_msg(&m, tam, true, out);
    tam_key_destroy(tam);
}

static long long stream_len(const char *key)
{
    redisReply *r = tu_redis_cmd(&G.rs, "XLEN %s", key);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return n;
}

/* ======================= pure parts ======================= */

Test(gateway_route, tam_paths)
{
    char id[TAM_TENANT_ID_MAX + 1];
    cr_assert_eq(tam_gw_route_parse("/tam/demo", id), TAM_GW_ROUTE_TENANT);
    cr_assert_str_eq(id, "demo");
    cr_assert_eq(tam_gw_route_parse("/tam", id), TAM_GW_ROUTE_DEFAULT);
    const char *bad[] = {
        "/",          "/tam/",      "/tam/demo/",      "/tam/demo?x=1", "/tam/%2e%2e",
        "/tam/..",    "/tam/a%2fb", "/tamx",           "/TAM/demo",     "/tam/Demo",
        "/tam//demo", "*",          "/tam/demo/update"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(bad); i++) {
        cr_assert_eq(tam_gw_route_parse(bad[i], id), TAM_GW_ROUTE_NONE, "%s", bad[i]);
    }
}

Test(gateway_route, accept_and_content_type)
{
    cr_assert(tam_gw_accept_ok(NULL));
    cr_assert(tam_gw_accept_ok("application/teep+cbor"));
    cr_assert(tam_gw_accept_ok("Application/TEEP+CBOR"));
    cr_assert(tam_gw_accept_ok("text/html, application/teep+cbor;q=0.5"));
    cr_assert(tam_gw_accept_ok("*/*"));
    cr_assert(tam_gw_accept_ok("application/*"));
    cr_assert(tam_gw_accept_ok(""));
    cr_assert_not(tam_gw_accept_ok("text/html"));
    cr_assert_not(tam_gw_accept_ok("application/json, text/*"));
    cr_assert_not(tam_gw_accept_ok("application/teep+cbor;q=0"));
    cr_assert_not(tam_gw_accept_ok("application/teep+cbor; q=0.000, text/plain"));
    cr_assert(tam_gw_accept_ok("application/teep+cbor; q=0.001"));
    cr_assert(tam_gw_content_type_ok("application/teep+cbor"));
    cr_assert(tam_gw_content_type_ok("APPLICATION/teep+CBOR"));
    cr_assert_not(tam_gw_content_type_ok(NULL));
    cr_assert_not(tam_gw_content_type_ok("application/teep+cbor; charset=utf-8"));
    cr_assert_not(tam_gw_content_type_ok("application/cbor"));
    cr_assert_not(tam_gw_content_type_ok("application/teep+cborx"));
}

Test(gateway_route, key_cache_lru_and_expiry)
{
    struct tam_gw_keycache kc;
    cr_assert_eq(tam_gw_keycache_init(&kc, 2, 1000), TAM_OK);
    struct tam_key *k[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tam_key_generate(i == 1 ? TAM_KEY_ED25519 : TAM_KEY_P256, &k[i]), TAM_OK);
    }
    uint8_t kid0[TAM_KID_LEN], kid1[TAM_KID_LEN], kid2[TAM_KID_LEN];
    memcpy(kid0, tam_key_kid(k[0]), TAM_KID_LEN);
    memcpy(kid1, tam_key_kid(k[1]), TAM_KID_LEN);
    memcpy(kid2, tam_key_kid(k[2]), TAM_KID_LEN);
    struct tam_gw_devkey *e0 = tam_gw_keycache_put(&kc, "a", k[0], 0);
    tam_gw_devkey_unref(tam_gw_keycache_put(&kc, "a", k[1], 0));
    cr_assert_null(tam_gw_keycache_get(&kc, "b", kid0, 10)); /* tenants are apart */
    struct tam_gw_devkey *hit = tam_gw_keycache_get(&kc, "a", kid0, 10);
    cr_assert_eq(hit, e0);
    tam_gw_devkey_unref(hit);
    /* kid1 is now least recently used: the third key evicts it. */
    tam_gw_devkey_unref(tam_gw_keycache_put(&kc, "a", k[2], 20));
    cr_assert_null(tam_gw_keycache_get(&kc, "a", kid1, 30));
    struct tam_gw_devkey *e2 = tam_gw_keycache_get(&kc, "a", kid2, 30);
    cr_assert_not_null(e2);
    tam_gw_devkey_unref(e2);
    cr_assert_eq(kc.n, 2);
    /* Expiry at 1000 ms after insertion; the caller's reference keeps the key usable. */
    cr_assert_null(tam_gw_keycache_get(&kc, "a", kid0, 1000));
    cr_assert_eq(memcmp(tam_key_kid(e0->key), kid0, TAM_KID_LEN), 0);
    tam_gw_devkey_unref(e0);
    tam_gw_keycache_finish(&kc);
}

Test(gateway_route, rate_bucket)
{
    double tokens = 0;
    uint64_t last = 0;
    /* rps 2: a burst of 4 x 2 at once, then 2 per second. */
    for (int i = 0; i < 8; i++) {
        cr_assert(tam_gw_rate_allow(&tokens, &last, 2, 1000), "burst %d", i);
    }
    cr_assert_not(tam_gw_rate_allow(&tokens, &last, 2, 1000));
    cr_assert_not(tam_gw_rate_allow(&tokens, &last, 2, 1400)); /* 0.8 token */
    cr_assert(tam_gw_rate_allow(&tokens, &last, 2, 1500));
    cr_assert_not(tam_gw_rate_allow(&tokens, &last, 2, 1500));
    cr_assert(tam_gw_rate_allow(&tokens, &last, 2, 100000)); /* refilled, capped at 8 */
    for (int i = 0; i < 7; i++) {
        cr_assert(tam_gw_rate_allow(&tokens, &last, 2, 100000));
    }
    cr_assert_not(tam_gw_rate_allow(&tokens, &last, 2, 100000));
    cr_assert(tam_gw_rate_allow(&tokens, &last, 0, 100000)); /* 0: unlimited */
}

/* ======================= HTTP rules ======================= */

Test(gateway, status_codes_and_headers)
{
    struct gwopts o = {.extra = "max-body = 4k\n"};
    gw_start(&o);
    struct resp r;
    /* 200: empty POST opens a session, on the tenant path and on /tam (default tenant). */
    struct qr q;
    new_session(&q);
    cr_assert_eq(http_do(G.port, "POST", "/tam", TEEP_ACCEPT, NULL, 0, &r), 200);
    check_query_request(&r, &q);
    resp_free(&r);
    /* 204: a message that is not valid TEEP is dropped. */
    cr_assert_eq(teep_post("\xa0", 1, &r), 204);
    cr_assert_eq(r.len, 0);
    cr_assert_null(find_str(r.head, strlen(r.head), "Cache-Control"));
    resp_free(&r);
    /* 404: unknown tenant, other paths, escapes. */
    cr_assert_eq(http_do(G.port, "POST", "/tam/other", TEEP_ACCEPT, NULL, 0, NULL), 404);
    cr_assert_eq(http_do(G.port, "POST", "/", TEEP_ACCEPT, NULL, 0, NULL), 404);
    cr_assert_eq(http_do(G.port, "POST", "/tam/%64emo", TEEP_ACCEPT, NULL, 0, NULL), 404);
    cr_assert_eq(http_do(G.port, "POST", "/tam/demo/", TEEP_ACCEPT, NULL, 0, NULL), 404);
    /* 405 with Allow: POST. */
    cr_assert_eq(http_do(G.port, "GET", "/tam/demo", NULL, NULL, 0, &r), 405);
    cr_assert_not_null(has_header(&r, "Allow: POST\r\n"));
    resp_free(&r);
    cr_assert_eq(http_do(G.port, "PUT", "/tam", NULL, "x", 1, NULL), 405);
    /* 406: an Accept that excludes the TEEP media type. */
    cr_assert_eq(http_do(G.port, "POST", "/tam/demo", "Accept: text/html\r\n", NULL, 0, NULL), 406);
    /* 415: wrong, missing or parameterised Content-Type on a message. */
    cr_assert_eq(http_do(G.port, "POST", "/tam/demo", "Content-Type: text/plain\r\n", "x", 1, NULL),
                 415);
    cr_assert_eq(http_do(G.port, "POST", "/tam/demo", NULL, "x", 1, NULL), 415);
    cr_assert_eq(http_do(G.port, "POST", "/tam/demo",
                         "Content-Type: application/teep+cbor; charset=x\r\n", "x", 1, NULL),
                 415);
    /* 413: above max-body. */
    static char big[8192];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(teep_post(big, sizeof(big), NULL), 413);
    /* 400: malformed HTTP. */
    int fd = tcp_connect(G.port);
    cr_assert(send_all(fd, "POST /tam/demo HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", 55));
    cr_assert(http_read(fd, &r, 3000));
    cr_assert_eq(r.status, 400);
    resp_free(&r);
    close(fd);
    /* Keep-alive: several requests on one connection. */
    fd = tcp_connect(G.port);
    for (int i = 0; i < 3; i++) {
        cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT, NULL, 0));
        cr_assert(http_read(fd, &r, 3000));
        cr_assert_eq(r.status, 200);
        resp_free(&r);
    }
    close(fd);
    cr_assert_eq(metric("tam_gw_responses_total{code=\"406\"}"), 1);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"unknown\",outcome=\"dropped_cose\"}"), 1);
    gw_finish();
}

/* ======================= sessions ======================= */

Test(gateway, full_session_replay_and_reports)
{
    gw_start(&default_opts);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    /* The configured device key was registered in Redis. */
    char dkey[TAM_KEY_MAX], hex[65];
    tam_key_device(dkey, "demo", tam_key_kid(agent), NULL);
    tam_hex_encode(tam_key_kid(agent), TAM_KID_LEN, hex);
    redisReply *rr = tu_redis_cmd(&G.rs, "HGET %s status", dkey);
    cr_assert_str_eq(rr->str, "registered");
    freeReplyObject(rr);
    rr = tu_redis_cmd(&G.rs, "SISMEMBER tam:t:{demo}:devices %s", hex);
    cr_assert_eq(rr->integer, 1);
    freeReplyObject(rr);

    struct qr q;
    new_session(&q);
    struct tam_buf qresp;
    query_response(q.token, agent, true, &qresp);
    /* The broker's POST waits while the "worker" takes the job. */
    int fd = tcp_connect(G.port);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, qresp.data, qresp.len));
    struct got_job j;
    cr_assert(take_job(3000, &j), "no job on the stream");
    cr_assert_eq(j.job.kind, TAM_JOB_QUERY_RESPONSE);
    cr_assert_str_eq(j.job.tenant, "demo");
    cr_assert(strncmp(j.job.reply_to, "tam:{gw:", 8) == 0, "%s", j.job.reply_to);
    cr_assert(j.job.verified);
    cr_assert(j.job.has_device);
    cr_assert_eq(memcmp(j.job.device_kid, tam_key_kid(agent), TAM_KID_LEN), 0);
    cr_assert_eq(j.job.message.len, qresp.len);
    cr_assert_eq(memcmp(j.job.message.ptr, qresp.data, qresp.len), 0);
    struct tam_sess s;
    const char *why = NULL;
    cr_assert_eq(tam_sess_decode(j.job.session.ptr, j.job.session.len, &s, &why), TAM_OK);
    cr_assert_eq(s.kind, TAM_SESS_QUERY);
    cr_assert_eq(memcmp(s.token, q.token, TAM_TOKEN_LEN), 0);
    cr_assert_eq(s.challenge_len, q.challenge_len);
    /* The token is consumed. */
    char skey[TAM_KEY_MAX];
    tam_key_session(skey, q.token, TAM_TOKEN_LEN);
    rr = tu_redis_cmd(&G.rs, "EXISTS %s", skey);
    cr_assert_eq(rr->integer, 0);
    freeReplyObject(rr);
    /* The worker answers with an Update under a new token. */
    uint8_t t2[TAM_TOKEN_LEN];
    memset(t2, 0x5a, sizeof(t2));
    store_update_session(t2, tam_key_kid(agent));
    struct tam_buf update;
    make_update(t2, &update);
    post_result(&j.job, 200, update.data, update.len);
    struct resp r;
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(has_header(&r, "Content-Type: application/teep+cbor\r\n"));
    cr_assert_not_null(has_header(&r, "Referrer-Policy: no-referrer\r\n"));
    cr_assert_eq(r.len, update.len);
    cr_assert_eq(memcmp(r.body, update.data, update.len), 0);
    resp_free(&r);
    /* Replay of the same QueryResponse (same connection): 204, no new job. */
    long long jobs = stream_len(TAM_KEY_JOBS);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, qresp.data, qresp.len));
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    cr_assert_eq(stream_len(TAM_KEY_JOBS), jobs);
    /* Success answering the Update: 204 and a REPORT job. */
    struct tam_buf ok;
    simple_msg(TAM_TEEP_SUCCESS, t2, agent, &ok);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, ok.data, ok.len));
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    close(fd);
    struct got_job rep;
    cr_assert(take_job(3000, &rep));
    cr_assert_eq(rep.job.kind, TAM_JOB_REPORT);
    cr_assert_str_eq(rep.job.reply_to, "");
    cr_assert(rep.job.verified);
    cr_assert_eq(rep.job.message.len, ok.len);
    cr_assert_eq(tam_sess_decode(rep.job.session.ptr, rep.job.session.len, &s, &why), TAM_OK);
    cr_assert_eq(s.kind, TAM_SESS_UPDATE);
    /* Error answering another Update: also a report. */
    uint8_t t3[TAM_TOKEN_LEN];
    memset(t3, 0x3c, sizeof(t3));
    store_update_session(t3, tam_key_kid(agent));
    struct tam_buf err;
    simple_msg(TAM_TEEP_ERROR, t3, agent, &err);
    cr_assert_eq(teep_post(err.data, err.len, NULL), 204);
    struct got_job rep2;
    cr_assert(take_job(3000, &rep2));
    cr_assert_eq(rep2.job.kind, TAM_JOB_REPORT);
    /* Success replayed: dropped, no job. */
    jobs = stream_len(TAM_KEY_JOBS);
    cr_assert_eq(teep_post(ok.data, ok.len, NULL), 204);
    cr_assert_eq(stream_len(TAM_KEY_JOBS), jobs);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"query-response\",outcome=\"accepted\"}"),
                 1);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"success\",outcome=\"accepted\"}"), 1);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"error\",outcome=\"accepted\"}"), 1);
    cr_assert_eq(
        metric(
            "tam_teep_messages_total{type=\"query-response\",outcome=\"dropped_unknown_token\"}"),
        1);
    cr_assert_eq(metric("tam_gw_jobs_enqueued_total{kind=\"report\"}"), 2);
    free(j.raw);
    free(rep.raw);
    free(rep2.raw);
    tam_buf_finish(&qresp);
    tam_buf_finish(&update);
    tam_buf_finish(&ok);
    tam_buf_finish(&err);
    tam_key_destroy(agent);
    gw_finish();
}

Test(gateway, drops_expired_bad_signature_unknown_kid)
{
    struct gwopts o = {.tenant_extra = "session-ttl = 1s\n"};
    gw_start(&o);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    /* Bad signature: one flipped bit in the signature. */
    struct qr q;
    new_session(&q);
    struct tam_buf m;
    query_response(q.token, agent, true, &m);
    m.data[m.len - 1] ^= 1;
    cr_assert_eq(teep_post(m.data, m.len, NULL), 204);
    tam_buf_finish(&m);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"unknown\",outcome=\"dropped_signature\"}"),
                 1);
    /* The token survived the forgery: the genuine answer still gets through. */
    query_response(q.token, agent, true, &m);
    int fd = tcp_connect(G.port);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, m.data, m.len));
    struct got_job j;
    cr_assert(take_job(3000, &j));
    post_result(&j.job, 204, NULL, 0);
    struct resp r;
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    close(fd);
    free(j.raw);
    tam_buf_finish(&m);
    /* Unknown kid: a key nobody registered. */
    struct tam_key *stranger = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_ED25519, &stranger), TAM_OK);
    new_session(&q);
    query_response(q.token, stranger, true, &m);
    cr_assert_eq(teep_post(m.data, m.len, NULL), 204);
    tam_buf_finish(&m);
    cr_assert_eq(
        metric("tam_teep_messages_total{type=\"unknown\",outcome=\"dropped_unknown_kid\"}"), 1);
    /* Expired token: the session lives 1 s. */
    new_session(&q);
    sleep_ms(1200);
    query_response(q.token, agent, true, &m);
    long long jobs = stream_len(TAM_KEY_JOBS);
    cr_assert_eq(teep_post(m.data, m.len, NULL), 204);
    cr_assert_eq(stream_len(TAM_KEY_JOBS), jobs);
    tam_buf_finish(&m);
    cr_assert_eq(
        metric(
            "tam_teep_messages_total{type=\"query-response\",outcome=\"dropped_unknown_token\"}"),
        1);
    /* Wrong type: a Success answering a QueryRequest. */
    new_session(&q);
    simple_msg(TAM_TEEP_SUCCESS, q.token, agent, &m);
    cr_assert_eq(teep_post(m.data, m.len, NULL), 204);
    tam_buf_finish(&m);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"success\",outcome=\"dropped_wrong_type\"}"),
                 1);
    tam_key_destroy(stranger);
    tam_key_destroy(agent);
    gw_finish();
}

Test(gateway, kidless_agent_and_attested_enrollment)
{
    struct gwopts o = {0};
    char more[512];
    snprintf(more, sizeof(more),
             "[tenant att]\nenrollment = attested\nattestation = none\n"
             "tam-key = %s\n",
             tu_vector_path("tam_p256.priv.pem"));
    o.more = more;
    gw_start(&o);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    /* An older agent without kid: found among the tenant's registered keys. */
    struct qr q;
    new_session(&q);
    struct tam_buf m;
    query_response(q.token, agent, false, &m);
    int fd = tcp_connect(G.port);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, m.data, m.len));
    struct got_job j;
    cr_assert(take_job(3000, &j));
    cr_assert(j.job.verified && j.job.has_device);
    cr_assert_eq(memcmp(j.job.device_kid, tam_key_kid(agent), TAM_KID_LEN), 0);
    post_result(&j.job, 204, NULL, 0);
    struct resp r;
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    close(fd);
    free(j.raw);
    tam_buf_finish(&m);
    /* Attested enrollment: an unknown device's QueryResponse goes to the worker unverified. */
    struct tam_key *fresh = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_ED25519, &fresh), TAM_OK);
    cr_assert_eq(http_do(G.port, "POST", "/tam/att", TEEP_ACCEPT, NULL, 0, &r), 200);
    struct tam_cose_msg cm;
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(r.body, r.len, &cm, &why), TAM_OK);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1 << 20);
    struct tam_teep_msg qm;
    cr_assert_eq(tam_teep_decode(cm.payload.ptr, cm.payload.len, TAM_TEEP_RFC, &a, &qm, &why),
                 TAM_OK);
    cr_assert_not(qm.has_challenge); /* attestation = none */
    uint8_t tok[TAM_TOKEN_LEN];
    memcpy(tok, qm.token.ptr, TAM_TOKEN_LEN);
    tam_arena_finish(&a);
    resp_free(&r);
    query_response(tok, fresh, true, &m);
    fd = tcp_connect(G.port);
    cr_assert(http_send(fd, "POST", "/tam/att", TEEP_ACCEPT TEEP_CT, m.data, m.len));
    cr_assert(take_job(3000, &j));
    cr_assert_not(j.job.verified);
    cr_assert(j.job.has_device, "the kid header, for the worker to prefetch its record");
    cr_assert_eq(memcmp(j.job.device_kid, tam_key_kid(fresh), TAM_KID_LEN), 0);
    cr_assert_str_eq(j.job.tenant, "att");
    post_result(&j.job, 204, NULL, 0);
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 204);
    resp_free(&r);
    close(fd);
    free(j.raw);
    tam_buf_finish(&m);
    /* A session of tenant att answered on tenant demo: dropped. */
    cr_assert_eq(http_do(G.port, "POST", "/tam/att", TEEP_ACCEPT, NULL, 0, &r), 200);
    cr_assert_eq(tam_cose_parse(r.body, r.len, &cm, &why), TAM_OK);
    tam_arena_init(&a, 4096, 1 << 20);
    cr_assert_eq(tam_teep_decode(cm.payload.ptr, cm.payload.len, TAM_TEEP_RFC, &a, &qm, &why),
                 TAM_OK);
    memcpy(tok, qm.token.ptr, TAM_TOKEN_LEN);
    tam_arena_finish(&a);
    resp_free(&r);
    query_response(tok, agent, true, &m);
    cr_assert_eq(teep_post(m.data, m.len, NULL), 204);
    tam_buf_finish(&m);
    cr_assert_eq(
        metric("tam_teep_messages_total{type=\"query-response\",outcome=\"dropped_tenant\"}"), 1);
    tam_key_destroy(fresh);
    tam_key_destroy(agent);
    gw_finish();
}

Test(gateway, job_timeout_then_late_result_ignored)
{
    struct gwopts o = {.extra = "job-timeout = 300ms\n"};
    gw_start(&o);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    struct qr q;
    new_session(&q);
    struct tam_buf m;
    query_response(q.token, agent, true, &m);
    struct resp r;
    uint64_t t0 = now_ms();
    cr_assert_eq(teep_post(m.data, m.len, &r), 503);
    cr_assert(now_ms() - t0 >= 250);
    resp_free(&r);
    /* No worker took it: the queue-depth gauge (what worker autoscaling reads) shows it. */
    cr_assert_eq(metric("tam_jobs_pending"), 1);
    cr_assert_eq(metric("tam_jobs_dead"), 0);
    struct got_job j;
    cr_assert(take_job(3000, &j));
    post_result(&j.job, 200, "late", 4);
    cr_assert(wait_metric("tam_gw_results_late_total", 1, 3000));
    cr_assert_eq(metric("tam_gw_job_timeouts_total"), 1);
    cr_assert_eq(metric("tam_teep_messages_total{type=\"query-response\",outcome=\"timeout\"}"), 1);
    free(j.raw);
    tam_buf_finish(&m);
    tam_key_destroy(agent);
    gw_finish();
}

/* ======================= Redis availability ======================= */

Test(gateway, redis_down_503_and_readyz)
{
    gw_start(&default_opts);
    cr_assert_eq(http_status(G.admin, "/healthz"), 200);
    tu_redis_kill(&G.rs, SIGKILL);
    cr_assert(wait_admin("/readyz", 503, 5000));
    cr_assert_eq(teep_post(NULL, 0, NULL), 503);
    cr_assert_eq(http_status(G.admin, "/healthz"), 200);
    tu_redis_start(&G.rs);
    cr_assert(wait_admin("/readyz", 200, 10000));
    struct qr q;
    new_session(&q);
    cr_assert(metric("tam_gw_responses_total{code=\"503\"}") >= 1);
    gw_finish();
}

/* ======================= robustness ======================= */

/* True once the server closed (or answered and will close) the connection. */
static bool peer_closed(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) {
        return false;
    }
    char b[512];
    return recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0 || (p.revents & (POLLHUP | POLLERR)) != 0;
}

Test(gateway, slowloris_cut_while_others_served)
{
    struct gwopts o = {.extra = "header-timeout = 1s\n"};
    gw_start(&o);
    int fd = tcp_connect(G.port);
    const char *req = "POST /tam/demo HTTP/1.1\r\nHost: x\r\nAccept: application/teep+cbor\r\n";
    uint64_t t0 = now_ms();
    bool cut = false;
    unsigned served = 0;
    for (size_t i = 0; i < strlen(req) && !cut; i++) {
        cut = !send_all(fd, req + i, 1);
        /* Meanwhile normal clients are served promptly. */
        struct resp r;
        uint64_t s = now_ms();
        if (teep_post(NULL, 0, &r) == 200 && now_ms() - s < 500) {
            served++;
        }
        resp_free(&r);
        cut = cut || peer_closed(fd, 150);
    }
    uint64_t took = now_ms() - t0;
    cr_assert(cut, "the slow client was not cut off");
    cr_assert(took >= 900 && took < 4000, "cut after %llu ms", (unsigned long long)took);
    cr_assert(served >= 3, "served %u", served);
    close(fd);
    cr_assert(wait_metric("tam_http_drops_total{reason=\"header_timeout\"}", 1, 2000));
    gw_finish();
}

struct many {
    unsigned done, ok;
    unsigned n;
    uv_loop_t *loop;
    struct tam_httpc_pool *pool;
};

static void on_many(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct many *m = arg;
    m->done++;
    if (err == 0 && resp->status == 200 && resp->body.len > 100) {
        m->ok++;
    }
    if (m->done == m->n) {
        tam_httpc_pool_close(m->pool, NULL, NULL);
    }
}

Test(gateway, thousand_concurrent_connections)
{
    gw_start(&default_opts);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/tam/demo", G.port);
    struct tam_httpc_opts po = {.url = url, .max_conns = 1000, .timeout_ms = 20000};
    struct many m = {.n = 1000, .loop = &loop};
    cr_assert_eq(tam_httpc_pool_create(&loop, &po, &m.pool), TAM_OK);
    for (unsigned i = 0; i < m.n; i++) {
        cr_assert_eq(tam_httpc_teep_post(m.pool, tam_bytes_of(NULL, 0), on_many, &m), TAM_OK);
    }
    struct tam_httpc_stats st;
    tam_httpc_pool_stats(m.pool, &st);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(m.ok, 1000, "ok %u of %u", m.ok, m.done);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_assert(metric("tam_http_connections_accepted_total") >= 1000);
    cr_assert_eq(metric("tam_teep_sessions_created_total"), 1000);
    gw_finish();
}

Test(gateway, graceful_shutdown_keeps_in_flight_answer)
{
    struct gwopts o = {.extra = "shutdown-timeout = 5s\n"};
    gw_start(&o);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    struct qr q;
    new_session(&q);
    struct tam_buf m;
    query_response(q.token, agent, true, &m);
    int fd = tcp_connect(G.port);
    cr_assert(http_send(fd, "POST", "/tam/demo", TEEP_ACCEPT TEEP_CT, m.data, m.len));
    struct got_job j;
    cr_assert(take_job(3000, &j));
    kill(G.pid, SIGTERM);
    /* Draining: the listener is closed, new connections are refused. */
    uint64_t end = now_ms() + 5000;
    int c = 0;
    while (now_ms() < end && (c = tcp_connect(G.port)) != -ECONNREFUSED) {
        /* Accepted, or reset: a connection that raced the listener's close (-ECONNRESET). */
        if (c >= 0) {
            close(c);
        }
        sleep_ms(20);
    }
    cr_assert_eq(c, -ECONNREFUSED, "connect: %d; see %s", c, G.log_path);
    sleep_ms(300);
    struct tam_buf update;
    make_update(q.token, &update);
    post_result(&j.job, 200, update.data, update.len);
    struct resp r;
    cr_assert(http_read(fd, &r, 5000));
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.len, update.len);
    cr_assert_not_null(has_header(&r, "Connection: close\r\n"));
    resp_free(&r);
    close(fd);
    int st = 0;
    end = now_ms() + 5000;
    while (now_ms() < end && waitpid(G.pid, &st, WNOHANG) == 0) {
        sleep_ms(10);
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    G.pid = 0;
    /* The gateway removed its result stream on the way out. */
    redisReply *rr = tu_redis_cmd(&G.rs, "EXISTS %s", j.job.reply_to);
    cr_assert_eq(rr->integer, 0);
    freeReplyObject(rr);
    free(j.raw);
    tam_buf_finish(&m);
    tam_buf_finish(&update);
    tam_key_destroy(agent);
    gw_finish();
}

/* ======================= TLS and reload ======================= */

/* A curl POST in the background writing status + body to files; returns its pid. */
static pid_t curl_post_bg(const char *url, const char *cacert, const char *body_file,
                          const char *out_file)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        char data[300];
        snprintf(data, sizeof(data), "@%s", body_file);
        const char *argv[] = {"curl",
                              "-s",
                              "--cacert",
                              cacert,
                              "-o",
                              out_file,
                              "-w",
                              "%{http_code}",
                              "-X",
                              "POST",
                              "-H",
                              "Accept: application/teep+cbor",
                              "-H",
                              "Content-Type: application/teep+cbor",
                              "--data-binary",
                              data,
                              url,
                              NULL};
        char code_path[300];
        snprintf(code_path, sizeof(code_path), "%s.code", out_file);
        int fd = open(code_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        execvp("curl", (char **)argv);
        _exit(127);
    }
    return pid;
}

Test(gateway, tls_full_session_with_curl)
{
    struct gwopts o = {.tls = true};
    gw_start(&o);
    char url[128], cacert[200], out[4096], path[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/tam/demo", G.port);
    snprintf(cacert, sizeof(cacert), "%s/cert.pem", G.dir);
    snprintf(path, sizeof(path), "%s/qr.bin", G.dir);
    int rc = run(out, sizeof(out),
                 "curl -s --cacert %s -o %s -w '%%{http_code}' -D %s/qr.head -X POST "
                 "-H 'Accept: application/teep+cbor' %s",
                 cacert, path, G.dir, url);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "200");
    size_t len;
    struct resp r;
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.body = tu_read_file(path, &len);
    r.len = len;
    char head_path[256];
    snprintf(head_path, sizeof(head_path), "%s/qr.head", G.dir);
    size_t hl;
    uint8_t *head = tu_read_file(head_path, &hl);
    snprintf(r.head, sizeof(r.head), "%.*s", (int)hl, (char *)head);
    tam_free(head);
    struct qr q;
    check_query_request(&r, &q);
    tam_free(r.body);
    /* The QueryResponse over HTTPS, answered by the "worker". */
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    struct tam_buf m;
    query_response(q.token, agent, true, &m);
    char body_path[256], resp_path[256];
    snprintf(body_path, sizeof(body_path), "%s/qresp.bin", G.dir);
    snprintf(resp_path, sizeof(resp_path), "%s/update.bin", G.dir);
    write_file(body_path, m.data, m.len);
    pid_t curl = curl_post_bg(url, cacert, body_path, resp_path);
    struct got_job j;
    cr_assert(take_job(5000, &j));
    struct tam_buf update;
    make_update(q.token, &update);
    post_result(&j.job, 200, update.data, update.len);
    int st = 0;
    cr_assert_eq(waitpid(curl, &st, 0), curl);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char code_path[300];
    snprintf(code_path, sizeof(code_path), "%s.code", resp_path);
    char *code = (char *)tu_read_file(code_path, &len);
    cr_assert(len == 3 && memcmp(code, "200", 3) == 0);
    tam_free(code);
    uint8_t *got = tu_read_file(resp_path, &len);
    cr_assert_eq(len, update.len);
    cr_assert_eq(memcmp(got, update.data, len), 0);
    tam_free(got);
    /* 415 over TLS too. */
    rc = run(out, sizeof(out),
             "curl -s --cacert %s -o /dev/null -w '%%{http_code}' -X POST --data-binary x "
             "-H 'Content-Type: text/plain' %s",
             cacert, url);
    cr_assert_str_eq(out, "415");
    cr_assert(metric("tam_http_tls_handshakes_total") >= 3);
    free(j.raw);
    tam_buf_finish(&m);
    tam_buf_finish(&update);
    tam_key_destroy(agent);
    gw_finish();
}

struct one {
    int status;
    bool reused, retried;
    bool done;
};

static void on_one(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct one *o = arg;
    o->done = true;
    o->status = err == 0 ? resp->status : err;
    o->reused = err == 0 && resp->reused;
    o->retried = err == 0 && resp->retried;
}

static struct one pool_post(uv_loop_t *loop, struct tam_httpc_pool *p, const char *path)
{
    struct one o = {0};
    const struct tam_httpc_header h[] = {{"Accept", "application/teep+cbor"}};
    struct tam_httpc_req req = {.path = path, .headers = h, .n_headers = 1};
    cr_assert_eq(tam_httpc_request(p, &req, on_one, &o), TAM_OK);
    while (!o.done) {
        uv_run(loop, UV_RUN_ONCE);
    }
    return o;
}

Test(gateway, sighup_reloads_tenants_and_cert_keeping_connections)
{
    struct gwopts o = {.tls = true};
    gw_start(&o);
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    char url[128], ca1[200], ca2[200], out[256];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/tam/demo", G.port);
    snprintf(ca1, sizeof(ca1), "%s/cert.pem", G.dir);
    snprintf(ca2, sizeof(ca2), "%s/cert2.pem", G.dir);
    struct tam_httpc_opts po = {.url = url, .max_conns = 1, .ca_file = ca1, .timeout_ms = 5000};
    struct tam_httpc_pool *pool = NULL;
    cr_assert_eq(tam_httpc_pool_create(&loop, &po, &pool), TAM_OK);
    struct one r1 = pool_post(&loop, pool, NULL);
    cr_assert_eq(r1.status, 200);
    struct one r404 = pool_post(&loop, pool, "/tam/sp2");
    cr_assert_eq(r404.status, 404);
    cr_assert(r404.reused);
    /* New certificate and a new tenant, then SIGHUP. */
    make_cert("cert2");
    char more[512];
    snprintf(more, sizeof(more), "[tenant sp2]\ntam-key = %s\n",
             tu_vector_path("tam_ed25519.priv.pem"));
    G.o.more = more;
    write_config();
    char cmd[1200];
    snprintf(cmd, sizeof(cmd),
             "sed -i 's#%s/cert.pem#%s/cert2.pem#; s#%s/cert.key#%s/cert2.key#' %s", G.dir, G.dir,
             G.dir, G.dir, G.cfg_path);
    cr_assert_eq(system(cmd), 0);
    kill(G.pid, SIGHUP);
    cr_assert(wait_metric("tam_gw_reloads_total", 1, 5000), "no reload; see %s", G.log_path);
    /* The keep-alive connection survived and sees the new tenant. */
    struct one r2 = pool_post(&loop, pool, "/tam/sp2");
    cr_assert_eq(r2.status, 200);
    cr_assert(r2.reused && !r2.retried);
    tam_httpc_pool_close(pool, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    /* New connections get the new certificate. */
    run(out, sizeof(out),
        "curl -s --cacert %s -o /dev/null -w '%%{http_code}' -X POST "
        "https://127.0.0.1:%u/tam/sp2",
        ca2, G.port);
    cr_assert_str_eq(out, "200");
    int rc = run(out, sizeof(out), "curl -s --cacert %s -o /dev/null -X POST %s", ca1, url);
    cr_assert_neq(rc, 0, "the old certificate is still served");
    /* A broken config is refused and the running one kept. */
    write_file(G.cfg_path, "bogus-option = 1\n", 17);
    kill(G.pid, SIGHUP);
    cr_assert(wait_metric("tam_gw_reload_failures_total", 1, 5000));
    run(out, sizeof(out),
        "curl -s --cacert %s -o /dev/null -w '%%{http_code}' -X POST "
        "https://127.0.0.1:%u/tam/sp2",
        ca2, G.port);
    cr_assert_str_eq(out, "200");
    gw_finish();
}

/* ======================= process model ======================= */

/* The child pids of pid (from /proc), up to n; returns the count. */
static int children_of(pid_t pid, pid_t *out, int n)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", pid, pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t len = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[len] = '\0';
    int k = 0;
    for (char *p = buf; *p != '\0' && k < n;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            break;
        }
        out[k++] = (pid_t)v;
        p = end;
    }
    return k;
}

/* True once pid has exited (a zombie holds no sockets). */
static bool gone(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Distinct tamd gateway ids seen in /metrics over many admin connections. */
static int distinct_gateways(void)
{
    char ids[8][128];
    int n = 0;
    for (int i = 0; i < 60 && n < 8; i++) {
        struct resp r;
        if (http_do(G.admin, "GET", "/metrics", NULL, NULL, 0, &r) != 200) {
            continue;
        }
        const char *p = find_str((char *)r.body, r.len, "tam_gw_info{id=\"");
        if (p != NULL) {
            char id[128];
            snprintf(id, sizeof(id), "%.*s", (int)strcspn(p + 16, "\""), p + 16);
            bool seen = false;
            for (int k = 0; k < n; k++) {
                seen = seen || strcmp(ids[k], id) == 0;
            }
            if (!seen) {
                snprintf(ids[n++], sizeof(ids[0]), "%s", id);
            }
        }
        resp_free(&r);
    }
    return n;
}

Test(gateway, two_procs_share_one_port_and_restart)
{
    static const char *const args[] = {"--procs", "2", NULL};
    struct gwopts o = {.args = args};
    gw_start(&o);
    cr_assert(wait_admin("/readyz", 200, 5000));
    pid_t kids[8];
    int n = 0;
    uint64_t end = now_ms() + 5000;
    while (now_ms() < end && (n = children_of(G.pid, kids, 8)) < 2) {
        sleep_ms(20);
    }
    cr_assert_eq(n, 2, "children: %d", n);
    /* Both children answer on the one admin port (once the second one has bound it). */
    end = now_ms() + 5000;
    while (now_ms() < end && distinct_gateways() < 2) {
        sleep_ms(50);
    }
    cr_assert_eq(distinct_gateways(), 2);
    for (int i = 0; i < 40; i++) {
        cr_assert_eq(teep_post(NULL, 0, NULL), 200);
    }
    /* A crashed child is restarted, and the port keeps serving meanwhile. */
    kill(kids[0], SIGKILL);
    end = now_ms() + 3000;
    while (now_ms() < end && !gone(kids[0])) {
        sleep_ms(5); /* until the kernel has closed its listening socket */
    }
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(teep_post(NULL, 0, NULL), 200);
    }
    pid_t now[8];
    end = now_ms() + 5000;
    bool restarted = false;
    while (now_ms() < end && !restarted) {
        int k = children_of(G.pid, now, 8);
        restarted = k == 2 && now[0] != kids[0] && now[1] != kids[0];
        sleep_ms(20);
    }
    cr_assert(restarted);
    cr_assert(wait_admin("/readyz", 200, 5000));
    gw_finish();
    /* Children are gone with the parent. */
    for (int i = 0; i < 2; i++) {
        cr_assert(kill(now[i], 0) != 0);
    }
}

Test(gateway, zero_config_private_redis)
{
    char dir[128] = "/tmp/tu-gwz-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char data[200];
    snprintf(data, sizeof(data), "%s/data", dir);
    struct gwopts o = {.no_redis = true, .no_wait = true};
    const char *args[] = {"--data-dir", data, NULL};
    o.args = args;
    gw_start(&o);
    cr_assert(wait_admin("/readyz", 200, 10000), "not ready; see %s", G.log_path);
    struct qr q;
    new_session(&q);
    char aof[300];
    snprintf(aof, sizeof(aof), "%s/appendonlydir", data);
    struct stat st;
    cr_assert_eq(stat(aof, &st), 0, "no AOF in %s", data);
    snprintf(aof, sizeof(aof), "%s/redis.sock", data);
    cr_assert_eq(stat(aof, &st), 0);
    /* The session is in the private Redis. */
    redisContext *c = NULL;
    char addr[320];
    snprintf(addr, sizeof(addr), "unix:%s", aof);
    cr_assert_eq(tam_redis_sync_connect(addr, 1000, &c), TAM_OK);
    char skey[TAM_KEY_MAX];
    tam_key_session(skey, q.token, TAM_TOKEN_LEN);
    redisReply *r = redisCommand(c, "EXISTS %s", skey);
    cr_assert_eq(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    gw_finish();
    /* Redis was stopped last: its socket is gone. */
    cr_assert_neq(stat(aof, &st), 0);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    (void)system(cmd);
}

/* ======================= operations ======================= */

Test(gateway, health_ready_metrics_and_help)
{
    gw_start(&default_opts);
    struct resp r;
    cr_assert_eq(http_do(G.admin, "GET", "/healthz", NULL, NULL, 0, &r), 200);
    cr_assert_eq(r.len, 3);
    resp_free(&r);
    cr_assert_eq(http_status(G.admin, "/readyz"), 200);
    cr_assert_eq(http_status(G.admin, "/nope"), 404);
    cr_assert_eq(http_do(G.admin, "POST", "/metrics", NULL, NULL, 0, NULL), 405);
    struct qr q;
    new_session(&q);
    cr_assert_eq(http_do(G.admin, "GET", "/metrics", NULL, NULL, 0, &r), 200);
    const char *families[] = {
        "# TYPE tam_http_connections gauge",
        "# TYPE tam_http_responses_total counter",
        "# TYPE tam_http_drops_total counter",
        "# TYPE tam_teep_messages_total counter",
        "# TYPE tam_teep_sessions_created_total counter",
        "# TYPE tam_gw_pending_requests gauge",
        "# TYPE tam_gw_responses_total counter",
        "# TYPE tam_redis_command_duration_seconds histogram",
        "tam_redis_command_duration_seconds_bucket{le=\"+Inf\"}",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(families); i++) {
        cr_assert_not_null(find_str((char *)r.body, r.len, families[i]), "%s", families[i]);
    }
    /* Every sample line is "name[{labels}] value". */
    char *text = strndup((char *)r.body, r.len);
    for (char *line = text, *nl = NULL; line != NULL && *line != '\0'; line = nl) {
        nl = strchr(line, '\n');
        if (nl != NULL) {
            *nl++ = '\0';
        }
        if (line[0] == '#') {
            continue;
        }
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "%s", line);
        char *end;
        (void)strtod(sp + 1, &end);
        cr_assert(*end == '\0' || strcmp(sp + 1, "+Inf") == 0, "%s", line);
        cr_assert((line[0] >= 'a' && line[0] <= 'z') || line[0] == '_', "%s", line);
    }
    free(text);
    resp_free(&r);
    cr_assert_eq(metric("tam_teep_sessions_created_total"), 1);
    gw_finish();
    char out[16384];
    cr_assert_eq(run(out, sizeof(out), "%s --help", tamd_path()), 0);
    cr_assert_not_null(strstr(out, "Usage: tamd"));
    cr_assert_not_null(strstr(out, "job-timeout"));
    cr_assert_not_null(strstr(out, "TAMGATE_"));
    cr_assert_neq(run(out, sizeof(out), "%s --bogus 2>&1", tamd_path()), 0);
}

/* ======================= with the real worker ======================= */

Test(gateway, zero_config_with_real_worker)
{
    char worker[600];
    snprintf(worker, sizeof(worker), "%s/src/worker/tam-worker",
             getenv("TAM_BUILD_ROOT") != NULL ? getenv("TAM_BUILD_ROOT") : "build");
    if (access(worker, X_OK) != 0) {
        cr_skip_test("no tam-worker binary yet");
    }
    struct gwopts o = {.no_redis = true, .workers = 1, .tenant_extra = "attestation = none\n"};
    gw_start(&o);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    struct resp r;
    cr_assert_eq(teep_post(NULL, 0, &r), 200);
    struct tam_cose_msg cm;
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(r.body, r.len, &cm, &why), TAM_OK);
    struct tam_arena a;
    tam_arena_init(&a, 4096, 1 << 20);
    struct tam_teep_msg qm;
    cr_assert_eq(tam_teep_decode(cm.payload.ptr, cm.payload.len, TAM_TEEP_RFC, &a, &qm, &why),
                 TAM_OK);
    uint8_t tok[TAM_TOKEN_LEN];
    memcpy(tok, qm.token.ptr, TAM_TOKEN_LEN);
    tam_arena_finish(&a);
    resp_free(&r);
    struct tam_buf m;
    query_response(tok, agent, true, &m);
    /* The supervised worker takes the job and answers: an Update (200) or nothing (204). */
    int st = teep_post(m.data, m.len, &r);
    cr_assert(st == 200 || st == 204, "status %d; see %s", st, G.log_path);
    if (st == 200) {
        cr_assert_not_null(has_header(&r, "Content-Type: application/teep+cbor\r\n"));
        cr_assert_eq(tam_cose_parse(r.body, r.len, &cm, &why), TAM_OK, "%s", why);
        cr_assert_eq(cm.kind, TAM_COSE_SIGN1);
    }
    resp_free(&r);
    cr_assert_eq(metric("tam_gw_results_total"), 1);
    tam_buf_finish(&m);
    tam_key_destroy(agent);
    gw_finish();
}

/* ======================= tenants of the admin API ======================= */

static char admin_auth[200];

static json_t *admin_json(const char *method, const char *path, const char *body, int want)
{
    struct resp r;
    char hdrs[300];
    snprintf(hdrs, sizeof(hdrs), "%s%s", admin_auth,
             body != NULL ? "Content-Type: application/json\r\n" : "");
    int st = http_do(G.admin, method, path, hdrs, body, body != NULL ? strlen(body) : 0, &r);
    cr_assert_eq(st, want, "%s %s: %d %.*s", method, path, st, (int)r.len, (const char *)r.body);
    json_t *j = r.len > 0 ? json_loadb((const char *)r.body, r.len, 0, NULL) : NULL;
    resp_free(&r);
    return j;
}

/* The QueryRequest of tenant `path` verifies with the tenant's published keys. */
static void check_tenant_qr(const char *path, json_t *tenant, int want_signers)
{
    struct resp r;
    cr_assert_eq(http_do(G.port, "POST", path, TEEP_ACCEPT, NULL, 0, &r), 200);
    struct tam_cose_msg m;
    const char *why = NULL;
    cr_assert_eq(tam_cose_parse(r.body, r.len, &m, &why), TAM_OK, "%s", why);
    cr_assert_eq(m.nsigners, (size_t)want_signers);
    json_t *keys = json_object_get(tenant, "tam_keys");
    for (size_t i = 0; i < m.nsigners; i++) {
        const char *pem = json_string_value(json_object_get(json_array_get(keys, i), "public_pem"));
        struct tam_key *k = NULL;
        cr_assert_eq(tam_key_from_pem(pem, strlen(pem), &k), TAM_OK);
        cr_assert_eq(tam_cose_verify(&m, i, k, NULL, NULL), TAM_OK, "signer %zu", i);
        tam_key_destroy(k);
    }
    resp_free(&r);
}

Test(gateway, admin_api_tenants_served_without_restart)
{
    char kdir[] = "/tmp/tu-kek-XXXXXX", extra[600], cmd[700];
    cr_assert_not_null(mkdtemp(kdir));
    snprintf(cmd, sizeof(cmd), "head -c 32 /dev/urandom > %s/kek.key", kdir);
    cr_assert_eq(system(cmd), 0);
    snprintf(extra, sizeof(extra), "kek-file = %s/kek.key\noperator-token-file = %s/op.token\n",
             kdir, kdir);
    struct gwopts o = {.extra = extra};
    gw_start(&o);
    /* The first gateway to reach Redis creates the operator token and writes it once. */
    char tok_path[200], token[128] = "";
    snprintf(tok_path, sizeof(tok_path), "%s/op.token", kdir);
    for (int i = 0; i < 200 && token[0] == '\0'; i++) {
        FILE *f = fopen(tok_path, "r");
        if (f != NULL && fgets(token, sizeof(token), f) != NULL) {
            token[strcspn(token, "\n")] = '\0';
        }
        if (f != NULL) {
            fclose(f);
        }
        sleep_ms(20);
    }
    cr_assert_eq(strlen(token), 43);
    struct stat st;
    cr_assert_eq(stat(tok_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(admin_auth, sizeof(admin_auth), "Authorization: Bearer %s\r\n", token);

    cr_assert_eq(http_do(G.port, "POST", "/tam/acme", TEEP_ACCEPT, NULL, 0, NULL), 404);
    json_t *created = admin_json("POST", "/v1/tenants", "{\"id\":\"acme\"}", 201);
    char op_auth[200];
    snprintf(op_auth, sizeof(op_auth), "%s", admin_auth);
    char tenant_auth[200];
    snprintf(tenant_auth, sizeof(tenant_auth), "Authorization: Bearer %s\r\n",
             json_string_value(json_object_get(created, "token")));
    json_decref(created);
    /* Created after this gateway cached "absent": seen within the freshness window. */
    sleep_ms(1100);
    json_t *t = admin_json("GET", "/v1/tenants/acme", NULL, 200);
    check_tenant_qr("/tam/acme", t, 2);
    /* A change (single suite, COSE_Sign1) reaches the next session without a restart. */
    json_decref(admin_json("PATCH", "/v1/tenants/acme",
                           "{\"sign1_only\":true,\"limits\":{\"rps_per_device\":1}}", 200));
    sleep_ms(1100);
    check_tenant_qr("/tam/acme", t, 1);
    json_decref(t);
    /* rps_per_device 1: a registered device's signed messages pass in a burst of 4, then 429
     * with Retry-After (counted after the signature check: nobody spends another's budget). */
    size_t pem_len;
    char *pem = tu_load_text("agent_p256.pub.pem", &pem_len);
    json_t *dev = json_pack("{s:s}", "public_pem", pem);
    char *body = json_dumps(dev, JSON_COMPACT);
    snprintf(admin_auth, sizeof(admin_auth), "%s", tenant_auth);
    json_decref(admin_json("POST", "/v1/tenants/acme/devices", body, 201));
    snprintf(admin_auth, sizeof(admin_auth), "%s", op_auth);
    free(body);
    json_decref(dev);
    tam_free(pem);
    struct tam_key *agent = load_key("agent_p256.priv.pem");
    uint8_t bogus[TAM_TOKEN_LEN] = {1, 2, 3};
    for (int i = 0; i <= 4; i++) {
        struct tam_buf msg;
        simple_msg(TAM_TEEP_SUCCESS, bogus, agent, &msg);
        struct resp rr;
        int code =
            http_do(G.port, "POST", "/tam/acme", TEEP_ACCEPT TEEP_CT, msg.data, msg.len, &rr);
        cr_assert_eq(code, i < 4 ? 204 : 429, "message %d: %d", i, code);
        if (i == 4) {
            cr_assert_not_null(has_header(&rr, "Retry-After: 1\r\n"));
        }
        resp_free(&rr);
        tam_buf_finish(&msg);
    }
    tam_key_destroy(agent);
    cr_assert_eq(metric("tam_gw_responses_total{code=\"429\"}"), 1);
    /* The configuration-file tenant is untouched; an unknown one is still 404. */
    struct qr q;
    new_session(&q);
    cr_assert_eq(http_do(G.port, "POST", "/tam/ghost", TEEP_ACCEPT, NULL, 0, NULL), 404);
    /* Deleted: refused by every request starting a second later. */
    json_decref(admin_json("DELETE", "/v1/tenants/acme", NULL, 204));
    sleep_ms(1100);
    cr_assert_eq(http_do(G.port, "POST", "/tam/acme", TEEP_ACCEPT, NULL, 0, NULL), 404);
    /* Re-created under the same id (its rev starts again at 0) between two checks: the next
     * session is signed with the new tenant's keys, not the cached old ones. */
    json_decref(admin_json("POST", "/v1/tenants", "{\"id\":\"acme\"}", 201));
    sleep_ms(1100);
    t = admin_json("GET", "/v1/tenants/acme", NULL, 200);
    check_tenant_qr("/tam/acme", t, 2);
    json_decref(t);
    json_decref(admin_json("DELETE", "/v1/tenants/acme", NULL, 204));
    json_decref(admin_json("POST", "/v1/tenants", "{\"id\":\"acme\"}", 201));
    sleep_ms(1100);
    t = admin_json("GET", "/v1/tenants/acme", NULL, 200);
    check_tenant_qr("/tam/acme", t, 2);
    json_decref(t);
    gw_finish();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", kdir);
    (void)system(cmd);
}

Test(gateway, admin_api_needs_a_kek)
{
    gw_start(&default_opts);
    struct resp r;
    cr_assert_eq(http_do(G.admin, "GET", "/v1/tenants", NULL, NULL, 0, &r), 503);
    cr_assert_not_null(has_header(&r, "Content-Type: application/problem+json\r\n"));
    resp_free(&r);
    gw_finish();
}

Test(gateway, admin_listener_over_tls)
{
    char kdir[] = "/tmp/tu-atls-XXXXXX", extra[900], cmd[1200];
    cr_assert_not_null(mkdtemp(kdir));
    snprintf(cmd, sizeof(cmd),
             "head -c 32 /dev/urandom > %s/kek.key && openssl req -x509 -newkey ec "
             "-pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout %s/admin.key "
             "-out %s/admin.pem >/dev/null 2>&1",
             kdir, kdir, kdir);
    cr_assert_eq(system(cmd), 0);
    snprintf(extra, sizeof(extra),
             "kek-file = %s/kek.key\noperator-token-file = %s/op.token\n"
             "admin-tls-cert = %s/admin.pem\nadmin-tls-key = %s/admin.key\n",
             kdir, kdir, kdir, kdir);
    struct gwopts o = {.extra = extra, .no_wait = true};
    gw_start(&o);
    /* HTTPS only: the admin API and the probes answer over TLS with the configured cert. */
    char out[256];
    snprintf(cmd, sizeof(cmd),
             "for i in $(seq 100); do curl -sf --cacert %s/admin.pem "
             "https://127.0.0.1:%u/readyz && exit 0; sleep 0.1; done; exit 1",
             kdir, G.admin);
    cr_assert_eq(run(out, sizeof(out), "%s", cmd), 0, "%s", out);
    snprintf(cmd, sizeof(cmd),
             "curl -s -o /dev/null -w '%%{http_code}' --cacert %s/admin.pem "
             "-H \"Authorization: Bearer $(cat %s/op.token)\" https://127.0.0.1:%u/v1/tenants",
             kdir, kdir, G.admin);
    cr_assert_eq(run(out, sizeof(out), "%s", cmd), 0);
    cr_assert_str_eq(out, "200");
    cr_assert_eq(http_status(G.admin, "/healthz"), -1, "no plain HTTP on the admin port");
    gw_finish();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", kdir);
    (void)system(cmd);
}
