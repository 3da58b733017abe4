/*
 * HTTP server core, driven over real sockets by curl and by raw clients.
 *
 * Each test (its own process under Criterion) runs the server's libuv loop in a thread
 * and drives it from the test thread. The loop thread only runs server callbacks, the
 * test handler below and a stats sampler; commands (shutdown) go through a uv_async.
 * Every test ends with a graceful shutdown and asserts uv_loop_close() == 0.
 *
 * The first part (harness) is shared with test_tls.c, which includes this file with
 * TAM_TEST_HARNESS_ONLY defined.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/tls.h"

/* ======================= harness ======================= */

/* Helpers the including TLS test may not use. */
#define TU_HELPER static __attribute__((unused))

struct fx {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t sampler;
    pthread_t thread;
    pthread_mutex_t mu;
    struct tam_http_server *srv;
    uint16_t port;
    bool shutdown_cmd;
    uint32_t deadline_ms;
    struct tam_http_stats snap;
    uint64_t queued_peak;
    struct tam_tls_ctx *reload_ctx;
    atomic_int aborts;
    atomic_int late_rc;
    atomic_int bad_rc;
    atomic_int hold_rc;
    atomic_int handled;
    atomic_bool done;
};

static struct fx F;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void take_snapshot(void)
{
    pthread_mutex_lock(&F.mu);
    F.snap = *tam_http_server_stats(F.srv);
    if (F.snap.write_queued > F.queued_peak) {
        F.queued_peak = F.snap.write_queued;
    }
    pthread_mutex_unlock(&F.mu);
}

TU_HELPER struct tam_http_stats fx_stats(void)
{
    pthread_mutex_lock(&F.mu);
    struct tam_http_stats s = F.snap;
    pthread_mutex_unlock(&F.mu);
    return s;
}

TU_HELPER uint64_t fx_queued_peak(void)
{
    pthread_mutex_lock(&F.mu);
    uint64_t p = F.queued_peak;
    pthread_mutex_unlock(&F.mu);
    return p;
}

/* Polls until expr holds or ms pass (check expr again afterwards). */
#define WAIT_FOR(expr, ms)                                                     \
    for (uint64_t wu_end_ = now_ms() + (ms); !(expr) && now_ms() < wu_end_;) { \
        sleep_ms(2);                                                           \
    }

/* memmem without _GNU_SOURCE. */
static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

static void on_sample(uv_timer_t *t)
{
    take_snapshot();
}

static void on_done(struct tam_http_server *srv, void *arg)
{
    take_snapshot();
    uv_close((uv_handle_t *)&F.wake, NULL);
    uv_close((uv_handle_t *)&F.sampler, NULL);
    atomic_store(&F.done, true);
}

static void on_wake(uv_async_t *a)
{
    pthread_mutex_lock(&F.mu);
    bool shut = F.shutdown_cmd;
    F.shutdown_cmd = false;
    pthread_mutex_unlock(&F.mu);
    if (shut) {
        tam_http_server_shutdown(F.srv, F.deadline_ms, on_done, NULL);
    }
}

static void *loop_main(void *arg)
{
    uv_run(&F.loop, UV_RUN_DEFAULT);
    tam_tls_thread_cleanup(); /* this thread ran the TLS handshakes */
    return NULL;
}

static void route(struct tam_http_request *req, void *ctx);

static void fx_config(struct tam_http_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->handler = route;
    cfg->handler_ctx = &F;
    cfg->no_date = true;
    cfg->name = "test";
}

static void fx_start(const struct tam_http_server_config *cfg)
{
    tam_net_process_init();
    pthread_mutex_init(&F.mu, NULL);
    cr_assert_eq(uv_loop_init(&F.loop), 0);
    int err = tam_http_server_create(&F.loop, cfg, &F.srv);
    cr_assert_eq(err, 0, "server create: %s", tam_strerror(err));
    F.port = tam_http_server_port(F.srv);
    cr_assert_eq(uv_async_init(&F.loop, &F.wake, on_wake), 0);
    cr_assert_eq(uv_timer_init(&F.loop, &F.sampler), 0);
    cr_assert_eq(uv_timer_start(&F.sampler, on_sample, 0, 2), 0);
    cr_assert_eq(pthread_create(&F.thread, NULL, loop_main, NULL), 0);
}

/* Asks the loop thread to shut down; returns without waiting. */
static void fx_shutdown_async(uint32_t deadline_ms)
{
    pthread_mutex_lock(&F.mu);
    F.shutdown_cmd = true;
    F.deadline_ms = deadline_ms;
    pthread_mutex_unlock(&F.mu);
    uv_async_send(&F.wake);
}

/* Waits for the loop to end, frees the server and checks no handle is left. */
static void fx_join(void)
{
    pthread_join(F.thread, NULL);
    cr_assert(atomic_load(&F.done));
    tam_http_server_destroy(F.srv);
    F.srv = NULL;
    cr_assert_eq(uv_loop_close(&F.loop), 0, "handles left on the loop");
}

static void fx_stop(void)
{
    fx_shutdown_async(2000);
    fx_join();
}

/* ---- handler ---- */

static int respond_text(struct tam_http_request *req, int status, const char *body)
{
    const struct tam_http_header h[] = {{"Content-Type", "text/plain"}, {"X-Route", "test"}};
    return tam_http_respond(req, status, h, 2, body, strlen(body));
}

struct later {
    uv_timer_t timer;
    struct tam_http_request *req;
    const char *body;
    atomic_int *rc;
};

static void free_later(uv_handle_t *h)
{
    free(h->data);
}

static void on_later(uv_timer_t *t)
{
    struct later *l = t->data;
    int rc = respond_text(l->req, 200, l->body);
    if (l->rc != NULL) {
        atomic_store(l->rc, rc);
    }
    uv_close((uv_handle_t *)t, free_later);
}

static void on_abort_count(struct tam_http_request *req, void *arg)
{
    atomic_fetch_add(&F.aborts, 1);
}

static void respond_later(struct tam_http_request *req, unsigned ms, const char *body,
                          atomic_int *rc)
{
    struct later *l = calloc(1, sizeof(*l));
    l->req = req;
    l->body = body;
    l->rc = rc;
    l->timer.data = l;
    tam_http_request_on_abort(req, on_abort_count, NULL);
    uv_timer_init(&F.loop, &l->timer);
    uv_timer_start(&l->timer, on_later, ms, 0);
}

static void on_hold_abort(struct tam_http_request *req, void *arg)
{
    atomic_fetch_add(&F.aborts, 1);
    atomic_store(&F.hold_rc, tam_http_respond_status(req, 200)); /* from inside on_abort */
}

static bool path_is(const char *target, const char *path)
{
    size_t n = strlen(path);
    return strncmp(target, path, n) == 0 && (target[n] == '\0' || target[n] == '?');
}

static unsigned query_num(const char *target)
{
    const char *q = strchr(target, '=');
    return q != NULL ? (unsigned)strtoul(q + 1, NULL, 10) : 0;
}

static void route_big(struct tam_http_request *req, const char *t)
{
    size_t n = query_num(t);
    char *body = malloc(n + 1);
    memset(body, 'x', n);
    (void)tam_http_respond(req, 200, NULL, 0, body, n);
    free(body);
}

static void route_echo(struct tam_http_request *req)
{
    struct tam_bytes b = tam_http_request_body(req);
    char len[32];
    snprintf(len, sizeof(len), "%zu", b.len);
    const struct tam_http_header h[] = {{"X-Len", len}};
    (void)tam_http_respond(req, 200, h, 1, b.ptr, b.len);
}

static void route_info(struct tam_http_request *req)
{
    char body[256];
    snprintf(body, sizeof(body), "peer=%s tls=%d minor=%d conn=%llu addr=%d\n",
             tam_http_request_peer(req), tam_http_request_is_tls(req),
             tam_http_request_version_minor(req), (unsigned long long)tam_http_request_conn_id(req),
             tam_http_request_peer_addr(req) != NULL);
    (void)respond_text(req, 200, body);
}

static void route_misc(struct tam_http_request *req, const char *t)
{
    if (path_is(t, "/hdr")) {
        const char *v = tam_http_request_header(req, "X-TEST-HEADER");
        (void)respond_text(req, 200, v != NULL ? v : "(none)");
    } else if (path_is(t, "/close")) {
        tam_http_request_close_after(req);
        (void)respond_text(req, 200, "bye\n");
    } else if (path_is(t, "/badhdr")) {
        const struct tam_http_header h[] = {{"X-Bad", "a\r\nInjected: 1"}};
        atomic_store(&F.bad_rc, tam_http_respond(req, 200, h, 1, "x", 1));
    } else if (path_is(t, "/204")) {
        (void)tam_http_respond_status(req, 204);
    } else if (path_is(t, "/reload")) {
        int rc = tam_http_server_set_tls(F.srv, F.reload_ctx);
        (void)respond_text(req, rc == 0 ? 200 : 500, "reloaded\n");
    } else if (path_is(t, "/info")) {
        route_info(req);
    } else if (path_is(t, "/drop")) {
        tam_http_request_unref(req); /* handler bug: no response; the server answers 500 */
    } else if (path_is(t, "/ref")) {
        struct tam_http_request *keep = tam_http_request_ref(req);
        (void)respond_text(req, 200, "ref\n");
        const char *v = tam_http_request_header(keep, "X-Test-Header"); /* still readable */
        atomic_store(&F.bad_rc, v != NULL && strcmp(v, "kept") == 0 ? 7 : -7);
        tam_http_request_unref(keep);
    } else {
        (void)tam_http_respond_status(req, 404);
    }
}

static void route(struct tam_http_request *req, void *ctx)
{
    const char *m = tam_http_request_method(req);
    const char *t = tam_http_request_target(req);
    atomic_fetch_add(&F.handled, 1);
    if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0 && strcmp(m, "HEAD") != 0) {
        (void)tam_http_respond_405(req, "GET, POST");
    } else if (path_is(t, "/hello")) {
        (void)respond_text(req, 200, "hello\n");
    } else if (path_is(t, "/echo")) {
        route_echo(req);
    } else if (path_is(t, "/async")) {
        respond_later(req, query_num(t), "async\n", NULL);
    } else if (path_is(t, "/late")) {
        respond_later(req, 300, "late\n", &F.late_rc);
    } else if (path_is(t, "/hold")) {
        tam_http_request_on_abort(req, on_hold_abort, NULL);
    } else if (path_is(t, "/big")) {
        route_big(req, t);
    } else {
        route_misc(req, t);
    }
}

/* ---- clients ---- */

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

/* True if a connection attempt is refused (a successful one is closed again). */
TU_HELPER bool connect_refused(uint16_t port)
{
    int fd = tcp_connect(port);
    if (fd >= 0) {
        close(fd);
    }
    return fd == -ECONNREFUSED;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        cr_assert(w > 0, "send: %s", strerror(errno));
        s += w;
        n -= (size_t)w;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

/* A buffered reader over a socket, to split pipelined responses. */
struct rd {
    int fd;
    size_t len;
    bool eof;
    char buf[1 << 20];
};

static struct rd *rd_new(int fd)
{
    struct rd *r = calloc(1, sizeof(*r));
    r->fd = fd;
    return r;
}

/* Reads more; false on EOF/error/timeout. */
static bool rd_fill(struct rd *r, int timeout_ms)
{
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (r->eof || r->len == sizeof(r->buf) || poll(&p, 1, timeout_ms) <= 0) {
        return false;
    }
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof(r->buf) - r->len, 0);
    if (n <= 0) {
        r->eof = true;
        return false;
    }
    r->len += (size_t)n;
    return true;
}

/* Length of one complete response at the start of buf, or 0 if incomplete. */
static size_t response_len(const char *buf, size_t len)
{
    const char *end = find(buf, len, "\r\n\r\n");
    if (end == NULL) {
        return 0;
    }
    size_t head = (size_t)(end - buf) + 4;
    size_t body = 0;
    const char *cl = find(buf, head, "Content-Length: ");
    if (cl != NULL && strncmp(buf, "HEAD", 4) != 0) {
        body = strtoul(cl + 16, NULL, 10);
    }
    return head + body <= len ? head + body : 0;
}

/* Takes the next response (NUL-terminated copy into out); false on timeout/EOF first. */
static bool rd_response(struct rd *r, char *out, size_t cap, int timeout_ms, bool head)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t n = response_len(r->buf, r->len);
        if (head && n == 0 && find(r->buf, r->len, "\r\n\r\n") != NULL) {
            n = (size_t)(find(r->buf, r->len, "\r\n\r\n") - r->buf) + 4;
        }
        if (n > 0) {
            size_t c = n < cap - 1 ? n : cap - 1;
            memcpy(out, r->buf, c);
            out[c] = '\0';
            memmove(r->buf, r->buf + n, r->len - n);
            r->len -= n;
            return true;
        }
        int left = (int)(end > now_ms() ? end - now_ms() : 0);
        if (left == 0 || !rd_fill(r, left)) {
            return false;
        }
    }
}

/* True if the peer closes (EOF or reset) within timeout_ms, discarding data. */
static bool wait_closed(int fd, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    char tmp[4096];
    while (now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now_ms())) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
        if (n <= 0) {
            return true;
        }
    }
    return false;
}

/* One request on a fresh connection: returns the response (static storage) or "". */
TU_HELPER const char *raw_request(const char *req)
{
    static char out[1 << 16];
    int fd = tcp_connect(F.port);
    cr_assert(fd >= 0);
    send_str(fd, req);
    struct rd *r = rd_new(fd);
    if (!rd_response(r, out, sizeof(out), 5000, false)) {
        out[0] = '\0';
    }
    free(r);
    close(fd);
    return out;
}

/* Runs a shell command; captures stdout into out; returns the exit status. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = 0;
    if (out != NULL) {
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

#define CURL "curl -q -sS --noproxy '*' --max-time 15 "

#ifndef TAM_TEST_HARNESS_ONLY

/* ======================= tests ======================= */

static void start_default(void)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    fx_start(&cfg);
}

Test(http, get_post_routing_exact_headers)
{
    start_default();
    char out[4096];
    int rc = run(out, sizeof(out), CURL "-i http://127.0.0.1:%u/hello", F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Route: test\r\n"
                          "Content-Length: 6\r\n\r\nhello\n");
    rc = run(out, sizeof(out), CURL "-i --data-binary 'abc=def' http://127.0.0.1:%u/echo", F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nX-Len: 7\r\nContent-Length: 7\r\n\r\nabc=def");
    rc = run(out, sizeof(out), CURL "-i -X PUT http://127.0.0.1:%u/hello", F.port);
    cr_assert_str_eq(out, "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, POST\r\n"
                          "Content-Length: 0\r\n\r\n");
    rc = run(out, sizeof(out), CURL "-o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/nope",
             F.port);
    cr_assert_str_eq(out, "404");
    fx_stop();
    cr_assert_eq(F.snap.requests, 4);
    cr_assert_eq(F.snap.responses[2], 2);
    cr_assert_eq(F.snap.responses[4], 2);
    cr_assert_eq(F.snap.conns_open, 0);
    cr_assert_eq(F.snap.conns_closed, 4);
}

Test(http, date_header_and_request_info)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.no_date = false;
    fx_start(&cfg);
    const char *r = raw_request("GET /info HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 200 OK\r\nDate: ", 23) == 0, "%s", r);
    const char *gmt = strstr(r, " GMT\r\n");
    cr_assert_not_null(gmt);
    cr_assert_eq(gmt - (r + 23), 25, "Date is IMF-fixdate: %s", r);
    cr_assert_not_null(strstr(r, "peer=127.0.0.1:"));
    cr_assert_not_null(strstr(r, "tls=0 minor=1 conn=1 addr=1"));
    fx_stop();
}

Test(http, keep_alive_reuse)
{
    start_default();
    char out[4096];
    int rc = run(out, sizeof(out),
                 CURL "-o /dev/null -o /dev/null -w '%%{num_connects}\\n' "
                      "http://127.0.0.1:%u/hello http://127.0.0.1:%u/echo",
                 F.port, F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "1\n0\n");
    /* And on a raw socket: two requests, one connection. */
    int fd = tcp_connect(F.port);
    struct rd *r = rd_new(fd);
    for (int i = 0; i < 2; i++) {
        send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        cr_assert(rd_response(r, out, sizeof(out), 3000, false));
        cr_assert(strstr(out, "hello\n") != NULL);
        cr_assert_null(strstr(out, "Connection:"));
    }
    free(r);
    close(fd);
    fx_stop();
    cr_assert_eq(F.snap.conns_accepted, 2);
    cr_assert_eq(F.snap.requests, 4);
}

Test(http, pipelined_requests_answered_in_order)
{
    start_default();
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /async?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                 "GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    struct rd *r = rd_new(fd);
    char out[4096];
    const char *want[] = {"async\n", "hello\n", "xyz", "bye\n"};
    for (int i = 0; i < 4; i++) {
        cr_assert(rd_response(r, out, sizeof(out), 3000, false), "response %d", i);
        size_t n = strlen(out), w = strlen(want[i]);
        cr_assert(n >= w && strcmp(out + n - w, want[i]) == 0, "%d: %s", i, out);
    }
    cr_assert_not_null(strstr(out, "Connection: close\r\n"));
    cr_assert(wait_closed(fd, 3000));
    free(r);
    close(fd);
    fx_stop();
}

Test(http, async_response_after_timer)
{
    start_default();
    char out[256];
    uint64_t t0 = now_ms();
    int rc = run(out, sizeof(out), CURL "http://127.0.0.1:%u/async?ms=200", F.port);
    uint64_t dt = now_ms() - t0;
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "async\n");
    cr_assert(dt >= 190, "answered after %llu ms", (unsigned long long)dt);
    fx_stop();
}

Test(http, client_gone_before_async_response)
{
    start_default();
    atomic_store(&F.late_rc, 1);
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /late HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT_FOR(atomic_load(&F.handled) == 1, 2000);
    cr_assert(atomic_load(&F.handled) == 1);
    close(fd);
    WAIT_FOR(atomic_load(&F.aborts) == 1, 2000);
    cr_assert(atomic_load(&F.aborts) == 1, "on_abort not seen");
    WAIT_FOR(atomic_load(&F.late_rc) != 1, 2000);
    cr_assert(atomic_load(&F.late_rc) != 1);
    cr_assert_eq(atomic_load(&F.late_rc), -ECONNABORTED);
    /* The server is fine afterwards. */
    cr_assert_not_null(strstr(raw_request("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "hello"));
    fx_stop();
    cr_assert_eq(F.snap.aborted, 1);
}

Test(http, http10_and_connection_close)
{
    start_default();
    char out[4096];
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert_not_null(strstr(out, "Connection: close\r\n"));
    cr_assert(wait_closed(fd, 3000));
    close(fd);
    fd = tcp_connect(F.port);
    r->fd = fd;
    r->len = 0;
    r->eof = false;
    for (int i = 0; i < 2; i++) {
        send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        cr_assert(rd_response(r, out, sizeof(out), 3000, false));
        cr_assert_not_null(strstr(out, "Connection: keep-alive\r\n"), "%s", out);
    }
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert_not_null(strstr(out, "Connection: close\r\n"));
    cr_assert(wait_closed(fd, 3000));
    close(fd);
    free(r);
    fx_stop();
}

Test(http, head_and_204)
{
    start_default();
    char out[4096];
    int fd = tcp_connect(F.port);
    struct rd *r = rd_new(fd);
    send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(rd_response(r, out, sizeof(out), 3000, true));
    cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Route: test\r\n"
                          "Content-Length: 6\r\n\r\n");
    send_str(fd, "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert_str_eq(out, "HTTP/1.1 204 No Content\r\n\r\n");
    free(r);
    close(fd);
    fx_stop();
}

Test(http, invalid_response_header_becomes_500)
{
    start_default();
    const char *r = raw_request("GET /badhdr HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 500 Internal Server Error\r\n", 36) == 0, "%s", r);
    cr_assert_null(strstr(r, "Injected"));
    WAIT_FOR(atomic_load(&F.bad_rc) == TAM_EINVAL, 1000); /* stored after respond returns */
    cr_assert_eq(atomic_load(&F.bad_rc), TAM_EINVAL);
    fx_stop();
}

Test(http, request_references)
{
    start_default();
    const char *r = raw_request("GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(strncmp(r, "HTTP/1.1 500 ", 13) == 0, "%s", r);
    r = raw_request("GET /ref HTTP/1.1\r\nHost: x\r\nX-Test-Header: kept\r\n\r\n");
    cr_assert_not_null(strstr(r, "\r\n\r\nref\n"));
    WAIT_FOR(atomic_load(&F.bad_rc) == 7, 1000);
    cr_assert_eq(atomic_load(&F.bad_rc), 7);
    fx_stop();
}

Test(http, write_timeout_on_stalled_reader)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.write_timeout_ms = 300;
    fx_start(&cfg);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    send_str(fd, "GET /big?n=16777216 HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT_FOR(fx_stats().drop_write_timeout == 1, 5000);
    cr_assert_eq(fx_stats().drop_write_timeout, 1);
    WAIT_FOR(fx_stats().conns_open == 0, 2000);
    cr_assert_eq(fx_stats().conns_open, 0);
    close(fd);
    fx_stop();
}

Test(http, header_lookup_with_split_spans)
{
    start_default();
    const char *req = "GET /hdr HTTP/1.1\r\nHost: x\r\nx-test-HEADER:   split-value \t \r\n\r\n";
    int fd = tcp_connect(F.port);
    for (const char *p = req; *p != '\0'; p++) {
        send_all(fd, p, 1);
        sleep_ms(1);
    }
    char out[4096];
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert(strstr(out, "\r\n\r\nsplit-value") != NULL, "%s", out);
    cr_assert_eq(strlen(strstr(out, "\r\n\r\n")), 4 + strlen("split-value"));
    free(r);
    close(fd);
    fx_stop();
}

Test(http, expect_100_continue)
{
    start_default();
    char out[4096];
    int fd = tcp_connect(F.port);
    struct rd *r = rd_new(fd);
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 5\r\n\r\n");
    cr_assert(rd_fill(r, 3000));
    cr_assert(r->len == 25 && memcmp(r->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    r->len = 0;
    send_str(fd, "hello");
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert(strstr(out, "200 OK") != NULL && strstr(out, "\r\n\r\nhello") != NULL);
    free(r);
    close(fd);
    int rc = run(out, sizeof(out),
                 CURL "-H 'Expect: 100-continue' --data-binary 'abc' "
                      "http://127.0.0.1:%u/echo",
                 F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "abc");
    const char *bad = raw_request("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n"
                                  "Content-Length: 1\r\n\r\nx");
    cr_assert(strncmp(bad, "HTTP/1.1 417 ", 13) == 0, "%s", bad);
    fx_stop();
}

static void start_small_body(void)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.body_bytes = 1000;
    cfg.limits.linger_ms = 500;
    fx_start(&cfg);
}

Test(http, body_too_large_content_length)
{
    start_small_body();
    int fd = tcp_connect(F.port);
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");
    char out[4096];
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert_str_eq(out, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n");
    cr_assert(wait_closed(fd, 3000));
    free(r);
    close(fd);
    /* curl sends the whole body; the 413 still arrives (lingering close). */
    char path[] = "/tmp/tam-http-bodyXXXXXX";
    int tfd = mkstemp(path);
    char big[5000];
    memset(big, 'b', sizeof(big));
    cr_assert_eq(write(tfd, big, sizeof(big)), (ssize_t)sizeof(big));
    close(tfd);
    int rc = run(out, sizeof(out),
                 CURL "-o /dev/null -w '%%{http_code}' -H 'Expect:' --data-binary @%s "
                      "http://127.0.0.1:%u/echo",
                 path, F.port);
    unlink(path);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "413");
    char exact[1001];
    memset(exact, 'c', 1000);
    exact[1000] = '\0';
    char req[2048];
    snprintf(req, sizeof(req), "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s",
             exact);
    cr_assert_not_null(strstr(raw_request(req), "X-Len: 1000\r\n"));
    fx_stop();
    cr_assert_eq(F.snap.drop_too_big, 2);
}

Test(http, body_too_large_chunked)
{
    start_small_body();
    char chunk[700];
    memset(chunk, 'z', sizeof(chunk));
    int fd = tcp_connect(F.port);
    send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 2; i++) {
        send_str(fd, "2bc\r\n");
        send_all(fd, chunk, sizeof(chunk));
        send_str(fd, "\r\n");
    }
    char out[4096];
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    cr_assert(strncmp(out, "HTTP/1.1 413 ", 13) == 0, "%s", out);
    cr_assert(wait_closed(fd, 3000));
    free(r);
    close(fd);
    const char *ok = raw_request("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 "\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n");
    cr_assert(strstr(ok, "X-Len: 5\r\n") != NULL && strstr(ok, "\r\n\r\nabcde") != NULL, "%s", ok);
    fx_stop();
}

static void expect_status_and_close(const char *req, const char *status)
{
    int fd = tcp_connect(F.port);
    send_str(fd, req);
    char out[4096];
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false), "no response to %s", req);
    cr_assert(strncmp(out, status, strlen(status)) == 0, "want %s got %s", status, out);
    cr_assert_not_null(strstr(out, "Connection: close\r\n"));
    cr_assert(wait_closed(fd, 3000));
    free(r);
    close(fd);
}

Test(http, malformed_requests_get_400)
{
    start_small_body();
    expect_status_and_close("G@T / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request");
    expect_status_and_close("GET / HTTP/1.1\r\nHost: x\r\n\rX", "HTTP/1.1 400 ");
    expect_status_and_close("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", "HTTP/1.1 400 ");
    expect_status_and_close("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                            "HTTP/1.1 400 ");
    expect_status_and_close("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 ");
    expect_status_and_close("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400 ");
    expect_status_and_close("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
                            "\r\n\r\n",
                            "HTTP/1.1 400 ");
    expect_status_and_close("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "HTTP/1.1 400 ");
    fx_stop();
    cr_assert_eq(F.snap.drop_bad_request, 8);
    cr_assert_eq(F.snap.requests, 0);
}

Test(http, header_limits_431_and_414)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.header_count = 10;
    cfg.limits.header_bytes = 1024;
    cfg.limits.url_bytes = 100;
    fx_start(&cfg);
    char req[8192];
    size_t o = (size_t)snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 11; i++) {
        o += (size_t)snprintf(req + o, sizeof(req) - o, "X-H%d: v\r\n", i);
    }
    snprintf(req + o, sizeof(req) - o, "\r\n");
    expect_status_and_close(req, "HTTP/1.1 431 Request Header Fields Too Large");
    char val[2000];
    memset(val, 'v', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", val);
    expect_status_and_close(req, "HTTP/1.1 431 ");
    val[150] = '\0';
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", val);
    expect_status_and_close(req, "HTTP/1.1 414 URI Too Long");
    /* Just under every limit still works. */
    o = (size_t)snprintf(req, sizeof(req), "GET /hello HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 9; i++) {
        o += (size_t)snprintf(req + o, sizeof(req) - o, "X-H%d: v\r\n", i);
    }
    snprintf(req + o, sizeof(req) - o, "\r\n");
    cr_assert_not_null(strstr(raw_request(req), "hello\n"));
    fx_stop();
    cr_assert_eq(F.snap.drop_header_limit, 3);
}

struct slow_client {
    uint16_t port;
    uint64_t first_byte_ms;
    uint64_t closed_ms;
    int sent;
};

/* Sends one header byte every 250 ms until the server cuts the connection. */
static void *slowloris(void *arg)
{
    struct slow_client *s = arg;
    int fd = tcp_connect(s->port);
    const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (const char *p = req; *p != '\0'; p++) {
        if (s->sent == 0) {
            s->first_byte_ms = now_ms();
        }
        if (send(fd, p, 1, MSG_NOSIGNAL) != 1) {
            break;
        }
        s->sent++;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 250) == 1) {
            char tmp[64];
            if (recv(fd, tmp, sizeof(tmp), 0) <= 0) {
                break;
            }
        }
    }
    s->closed_ms = now_ms();
    close(fd);
    return NULL;
}

Test(http, slowloris_cut_at_header_timeout)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.header_timeout_ms = 1000;
    fx_start(&cfg);
    struct slow_client s = {.port = F.port};
    pthread_t th;
    pthread_create(&th, NULL, slowloris, &s);
    sleep_ms(300);
    char out[256];
    uint64_t t0 = now_ms();
    cr_assert_eq(run(out, sizeof(out), CURL "http://127.0.0.1:%u/hello", F.port), 0);
    uint64_t curl_ms = now_ms() - t0;
    cr_assert_str_eq(out, "hello\n");
    pthread_join(th, NULL);
    uint64_t cut = s.closed_ms - s.first_byte_ms;
    cr_assert(curl_ms < 900, "curl took %llu ms", (unsigned long long)curl_ms);
    cr_assert(cut >= 900 && cut < 2500, "cut after %llu ms", (unsigned long long)cut);
    cr_assert(s.sent < 10, "sent %d bytes", s.sent);
    fx_stop();
    cr_assert_eq(F.snap.drop_header_timeout, 1);
}

Test(http, idle_keepalive_timeout_closes)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.idle_timeout_ms = 300;
    cfg.limits.header_timeout_ms = 600;
    fx_start(&cfg);
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    char out[1024];
    struct rd *r = rd_new(fd);
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    uint64_t t0 = now_ms();
    cr_assert(wait_closed(fd, 3000));
    uint64_t dt = now_ms() - t0;
    cr_assert(dt >= 250 && dt < 1500, "idle close after %llu ms", (unsigned long long)dt);
    close(fd);
    /* A connection that never sends a byte is closed at the header timeout. */
    fd = tcp_connect(F.port);
    t0 = now_ms();
    cr_assert(wait_closed(fd, 3000));
    dt = now_ms() - t0;
    cr_assert(dt >= 500 && dt < 1800, "silent conn closed after %llu ms", (unsigned long long)dt);
    close(fd);
    free(r);
    fx_stop();
    cr_assert_eq(F.snap.idle_closed, 1);
    cr_assert_eq(F.snap.drop_header_timeout, 1);
}

Test(http, max_connections_refuse_then_resume)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.max_connections = 4;
    fx_start(&cfg);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = tcp_connect(F.port);
        cr_assert(fds[i] >= 0);
    }
    WAIT_FOR(fx_stats().conns_open == 4, 2000);
    cr_assert(fx_stats().conns_open == 4);
    int extra = tcp_connect(F.port);
    cr_assert(extra >= 0);
    cr_assert(wait_closed(extra, 2000), "fifth connection not closed");
    close(extra);
    WAIT_FOR(fx_stats().drop_max_conns == 1, 1000);
    cr_assert_eq(fx_stats().drop_max_conns, 1);
    close(fds[0]);
    WAIT_FOR(fx_stats().conns_open == 3, 2000);
    cr_assert(fx_stats().conns_open == 3);
    cr_assert_not_null(strstr(raw_request("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "hello"));
    char out[1024];
    struct rd *r = rd_new(fds[1]);
    send_str(fds[1], "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(rd_response(r, out, sizeof(out), 3000, false));
    free(r);
    for (int i = 1; i < 4; i++) {
        close(fds[i]);
    }
    fx_stop();
    cr_assert_eq(F.snap.drop_max_conns, 1);
}

Test(http, backpressure_bounds_buffering)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.limits.write_queue_bytes = 256 * 1024;
    cfg.limits.pipeline_bytes = 4096;
    fx_start(&cfg);
    const unsigned body = 256 * 1024;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    char req[128];
    int n = snprintf(req, sizeof(req), "GET /big?n=%u HTTP/1.1\r\nHost: x\r\n\r\n", body);
    size_t sent = 0;
    const int total = 4000;
    uint64_t end = now_ms() + 3000;
    for (int i = 0; i < total && now_ms() < end;) {
        ssize_t w = send(fd, req, (size_t)n, MSG_NOSIGNAL);
        if (w == n) {
            sent += (size_t)w;
            i++;
        } else {
            cr_assert(w < 0, "partial send");
            sleep_ms(5); /* the server stopped reading: the send buffer is full */
        }
    }
    sleep_ms(1000); /* never read: let the server hit every ceiling */
    struct tam_http_stats s = fx_stats();
    uint64_t handled = (uint64_t)atomic_load(&F.handled);
    cr_assert(handled < 100, "handled %llu requests of %zu", (unsigned long long)handled,
              sent / (size_t)n);
    cr_assert(s.bytes_in < sent, "server read everything (%llu of %zu)",
              (unsigned long long)s.bytes_in, sent);
    uint64_t peak = fx_queued_peak();
    cr_assert(peak <= 2 * cfg.limits.write_queue_bytes + 64 * 1024, "queued peak %llu",
              (unsigned long long)peak);
    /* Read for a while: the server resumes and keeps answering. */
    fcntl(fd, F_SETFL, 0);
    char buf[65536];
    size_t got = 0;
    while (got < 20u * body) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        cr_assert(r > 0);
        got += (size_t)r;
    }
    cr_assert((uint64_t)atomic_load(&F.handled) > handled);
    close(fd);
    fx_stop();
}

struct many {
    int fd;
    size_t len;
    bool sent;
    bool done;
    char buf[256];
};

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
}

static int many_connect(struct many *m, uint16_t port)
{
    m->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    cr_assert(m->fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(m->fd, (struct sockaddr *)&sa, sizeof(sa));
    cr_assert(rc == 0 || errno == EINPROGRESS);
    return m->fd;
}

/* One poll round over every unfinished connection; returns how many are done. */
static int many_step(struct many *m, struct pollfd *pf, int n, bool send_now)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        pf[i].fd = m[i].done ? -1 : m[i].fd;
        pf[i].events = (short)((send_now && !m[i].sent) ? POLLOUT : POLLIN);
    }
    poll(pf, (nfds_t)n, 100);
    static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    for (int i = 0; i < n; i++) {
        if (!m[i].done && (pf[i].revents & POLLOUT) && !m[i].sent) {
            cr_assert_eq(send(m[i].fd, req, sizeof(req) - 1, MSG_NOSIGNAL), sizeof(req) - 1);
            m[i].sent = true;
        } else if (!m[i].done && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = recv(m[i].fd, m[i].buf + m[i].len, sizeof(m[i].buf) - 1 - m[i].len, 0);
            if (r > 0) {
                m[i].len += (size_t)r;
            } else {
                m[i].done = true;
            }
        }
        done += m[i].done;
    }
    return done;
}

Test(http, thousand_concurrent_connections)
{
    enum { N = 1000 };
    raise_nofile(4 * N + 256);
    tam_log_threshold = TAM_LOG_WARN;
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.backlog = 2048;
    fx_start(&cfg);
    struct many *m = calloc(N, sizeof(*m));
    struct pollfd *pf = calloc(N, sizeof(*pf));
    for (int i = 0; i < N; i++) {
        many_connect(&m[i], F.port);
    }
    WAIT_FOR(fx_stats().conns_open == N, 10000);
    cr_assert(fx_stats().conns_open == N, "open: %llu", (unsigned long long)fx_stats().conns_open);
    uint64_t end = now_ms() + 20000;
    int done = 0;
    while (done < N && now_ms() < end) {
        done = many_step(m, pf, N, true);
    }
    cr_assert_eq(done, N);
    for (int i = 0; i < N; i++) {
        m[i].buf[m[i].len] = '\0';
        cr_assert(strncmp(m[i].buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "conn %d: %s", i, m[i].buf);
        cr_assert(m[i].len > 6 && strcmp(m[i].buf + m[i].len - 6, "hello\n") == 0);
        close(m[i].fd);
    }
    free(m);
    free(pf);
    fx_stop();
    cr_assert_eq(F.snap.requests, N);
    cr_assert_eq(F.snap.conns_accepted, N);
}

Test(http, graceful_shutdown_finishes_in_flight)
{
    start_default();
    char out[1024];
    int idle = tcp_connect(F.port);
    struct rd *ri = rd_new(idle);
    send_str(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(rd_response(ri, out, sizeof(out), 3000, false));
    int busy = tcp_connect(F.port);
    send_str(busy, "GET /async?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT_FOR(atomic_load(&F.handled) == 2, 2000);
    cr_assert(atomic_load(&F.handled) == 2);
    uint64_t t0 = now_ms();
    fx_shutdown_async(3000);
    cr_assert(wait_closed(idle, 1000), "idle keep-alive connection not closed");
    cr_assert(now_ms() - t0 < 500);
    WAIT_FOR(connect_refused(F.port), 1000);
    cr_assert(connect_refused(F.port), "still accepting");
    struct rd *rb = rd_new(busy);
    cr_assert(rd_response(rb, out, sizeof(out), 3000, false));
    cr_assert(strstr(out, "Connection: close\r\n") != NULL && strstr(out, "async\n") != NULL, "%s",
              out);
    cr_assert(wait_closed(busy, 3000));
    close(idle);
    close(busy);
    free(ri);
    free(rb);
    fx_join();
    cr_assert(now_ms() - t0 < 2500);
    cr_assert_eq(F.snap.drop_shutdown, 0);
}

Test(http, shutdown_deadline_aborts_held_request)
{
    start_default();
    atomic_store(&F.hold_rc, 1);
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    WAIT_FOR(atomic_load(&F.handled) == 1, 2000);
    cr_assert(atomic_load(&F.handled) == 1);
    uint64_t t0 = now_ms();
    fx_shutdown_async(200);
    char tmp[64];
    cr_assert_eq(recv(fd, tmp, sizeof(tmp), 0), 0, "no response expected");
    fx_join();
    uint64_t dt = now_ms() - t0;
    cr_assert(dt >= 150 && dt < 1500, "%llu", (unsigned long long)dt);
    cr_assert_eq(atomic_load(&F.aborts), 1);
    cr_assert_eq(atomic_load(&F.hold_rc), -ECONNABORTED);
    cr_assert_eq(F.snap.drop_shutdown, 1);
    cr_assert_eq(F.snap.aborted, 1);
    close(fd);
}

Test(http, unix_socket_listener)
{
    char dir[] = "/tmp/tam-http-unixXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/s.sock", dir);
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.unix_path = path;
    fx_start(&cfg);
    cr_assert_eq(F.port, 0);
    char out[256];
    cr_assert_eq(run(out, sizeof(out), CURL "--unix-socket %s http://localhost/info", path), 0);
    cr_assert(strncmp(out, "peer=unix tls=0", 15) == 0, "%s", out);
    fx_stop();
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "socket file removed on shutdown");
    rmdir(dir);
}

Test(http, ipv6_listener)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have6 = probe >= 0 && bind(probe, (struct sockaddr *)&a6, sizeof(a6)) == 0;
    if (probe >= 0) {
        close(probe);
    }
    if (!have6) {
        cr_skip_test("no IPv6 loopback");
    }
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.host = "::1";
    fx_start(&cfg);
    char out[256];
    cr_assert_eq(run(out, sizeof(out), CURL "-g http://[::1]:%u/info", F.port), 0);
    cr_assert(strncmp(out, "peer=[::1]:", 11) == 0, "%s", out);
    fx_stop();
}

static void noop_handler(struct tam_http_request *req, void *ctx)
{
    (void)tam_http_respond_status(req, 200);
}

static void count_done(struct tam_http_server *srv, void *arg)
{
    (*(int *)arg)++;
    tam_http_server_destroy(srv); /* allowed from inside on_done */
}

Test(http, reuseport_and_bind_errors)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct tam_http_server_config cfg = {.host = "127.0.0.1", .handler = noop_handler};
    struct tam_http_server *a = NULL, *b = NULL, *c = NULL;
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &a), 0);
    cfg.port = tam_http_server_port(a);
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &b), 0, "SO_REUSEPORT shares the port");
    cfg.no_reuseport = true;
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &c), -EADDRINUSE);
    cr_assert_null(c);
    cfg.host = "not-an-address";
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &c), TAM_EINVAL);
    cfg.handler = NULL;
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &c), TAM_EINVAL);
    int done = 0;
    tam_http_server_shutdown(a, 100, count_done, &done);
    tam_http_server_shutdown(b, 100, count_done, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 2);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http, destroy_without_shutdown_releases_everything)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct tam_http_server_config cfg = {.host = "127.0.0.1", .handler = noop_handler};
    struct tam_http_server *a = NULL;
    cr_assert_eq(tam_http_server_create(&loop, &cfg, &a), 0);
    tam_http_server_destroy(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http, reason_phrases)
{
    cr_assert_str_eq(tam_http_reason(413), "Content Too Large");
    cr_assert_str_eq(tam_http_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(tam_http_reason(299), "Unknown");
    struct tam_http_limits l;
    tam_http_limits_default(&l);
    cr_assert_eq(l.header_bytes, 8192);
    cr_assert_eq(l.body_bytes, 1024 * 1024);
}

#endif /* TAM_TEST_HARNESS_ONLY */
