/*
 * Tests for the HTTP/1.1 + TLS client pool (tam/httpc.h) against a real server:
 * tests/unit/httpc_server.py (Python stdlib http.server), started per test on a free port,
 * with certificates made by openssl at test time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/httpc.h"
#include "testutil.h"

/* ---- the Python server and certificates ---- */

struct srv {
    pid_t pid;
    int port;
    bool v6;
};

static const char *script_path(void)
{
    static char path[4096];
    const char *root = getenv("TAM_SOURCE_ROOT");
    snprintf(path, sizeof(path), "%s/tests/unit/httpc_server.py", root != NULL ? root : ".");
    return path;
}

static void child_exec(int out_fd, const char *const *argv, bool quiet)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    if (out_fd >= 0) {
        dup2(out_fd, 1);
    }
    if (quiet) {
        int dn = open("/dev/null", O_WRONLY);
        dup2(dn, 2);
        if (out_fd < 0) {
            dup2(dn, 1);
        }
    }
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

static void read_port_line(int fd, struct srv *s)
{
    char line[64] = {0};
    size_t len = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (len < sizeof(line) - 1 && memchr(line, '\n', len) == NULL) {
        cr_assert_gt(poll(&pfd, 1, 15000), 0, "test server did not start");
        ssize_t r = read(fd, line + len, sizeof(line) - 1 - len);
        cr_assert_gt(r, 0, "test server exited early");
        len += (size_t)r;
    }
    char fam = 0;
    cr_assert_eq(sscanf(line, "%d %c", &s->port, &fam), 2, "bad port line '%s'", line);
    s->v6 = fam == '6';
}

static void srv_start(struct srv *s, const char *cert, const char *key, bool tls12_only)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    const char *argv[10];
    int n = 0;
    argv[n++] = "/usr/bin/python3";
    argv[n++] = "-u";
    argv[n++] = script_path();
    if (cert != NULL) {
        argv[n++] = "--cert";
        argv[n++] = cert;
        argv[n++] = "--key";
        argv[n++] = key;
    }
    if (tls12_only) {
        argv[n++] = "--tls12-only";
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        child_exec(fds[1], argv, false);
    }
    close(fds[1]);
    s->pid = pid;
    read_port_line(fds[0], s);
    close(fds[0]);
}

static void srv_stop(struct srv *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static void run_cmd(const char *const *argv)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        child_exec(-1, argv, true);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed", argv[0]);
}

struct certs {
    char dir[64];
    char cert[128]; /* CN=localhost, SAN DNS:localhost */
    char key[128];
    char other_cert[128]; /* CN=other, no SAN */
    char other_key[128];
};

static void make_cert(const char *cert, const char *key, const char *subj, const char *ext)
{
    const char *argv[] = {"/usr/bin/openssl",
                          "req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:P-256",
                          "-nodes",
                          "-days",
                          "1",
                          "-subj",
                          subj,
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          ext != NULL ? "-addext" : NULL,
                          ext,
                          NULL};
    run_cmd(argv);
}

static void certs_make(struct certs *c)
{
    snprintf(c->dir, sizeof(c->dir), "/tmp/tam-httpc-XXXXXX");
    cr_assert_not_null(mkdtemp(c->dir));
    snprintf(c->cert, sizeof(c->cert), "%s/c.pem", c->dir);
    snprintf(c->key, sizeof(c->key), "%s/k.pem", c->dir);
    snprintf(c->other_cert, sizeof(c->other_cert), "%s/oc.pem", c->dir);
    snprintf(c->other_key, sizeof(c->other_key), "%s/ok.pem", c->dir);
    make_cert(c->cert, c->key, "/CN=localhost", "subjectAltName=DNS:localhost");
    make_cert(c->other_cert, c->other_key, "/CN=other", NULL);
}

static void certs_remove(struct certs *c)
{
    unlink(c->cert);
    unlink(c->key);
    unlink(c->other_cert);
    unlink(c->other_key);
    rmdir(c->dir);
}

/* ---- a loop, a pool and recorded results ---- */

#define MAXR 128

struct result {
    int calls;
    int err;
    int status;
    size_t body_len;
    char body[256];
    char xconn[32];
    char xreqnum[16];
    char got_accept[64];
    char got_ctype[64];
    char got_len[16];
    char got_conn[16];
    char ctype[64];
    char location[64];
    size_t n_headers;
    bool reused;
    bool retried;
};

struct tctx;
struct call {
    struct tctx *t;
    int idx;
};

struct tctx {
    uv_loop_t loop;
    struct tam_httpc_pool *pool;
    struct result r[MAXR];
    struct call calls[MAXR];
    int n_done;
    int n_want;
    int close_calls;
    bool closed;
    bool hold; /* do not close the pool when n_done reaches n_want */
    void (*after)(struct tctx *t, int idx);
    struct tam_httpc_stats stats; /* snapshot taken right before closing */
    uv_timer_t timer;
    uint64_t t0;
    int conn_ok;
    int conn_err[8];
    int n_conn_cb;
};

static void on_closed(void *arg)
{
    struct tctx *t = arg;
    t->closed = true;
    t->close_calls++;
}

static void tctx_close(struct tctx *t)
{
    tam_httpc_pool_stats(t->pool, &t->stats);
    tam_httpc_pool_close(t->pool, on_closed, t);
}

static void copy_hdr(const struct tam_httpc_resp *resp, const char *name, char *out, size_t n)
{
    const char *v = tam_httpc_resp_header(resp, name);
    snprintf(out, n, "%s", v != NULL ? v : "(none)");
}

static void record(struct result *r, int err, const struct tam_httpc_resp *resp)
{
    r->calls++;
    r->err = err;
    if (resp == NULL) {
        return;
    }
    r->status = resp->status;
    r->body_len = resp->body.len;
    size_t n = resp->body.len < sizeof(r->body) - 1 ? resp->body.len : sizeof(r->body) - 1;
    if (n > 0) {
        memcpy(r->body, resp->body.ptr, n);
    }
    r->body[n] = '\0';
    copy_hdr(resp, "X-Conn", r->xconn, sizeof(r->xconn));
    copy_hdr(resp, "x-req-num", r->xreqnum, sizeof(r->xreqnum));
    copy_hdr(resp, "X-Got-Accept", r->got_accept, sizeof(r->got_accept));
    copy_hdr(resp, "X-Got-Content-Type", r->got_ctype, sizeof(r->got_ctype));
    copy_hdr(resp, "X-Got-Len", r->got_len, sizeof(r->got_len));
    copy_hdr(resp, "X-Got-Connection", r->got_conn, sizeof(r->got_conn));
    copy_hdr(resp, "Content-Type", r->ctype, sizeof(r->ctype));
    copy_hdr(resp, "Location", r->location, sizeof(r->location));
    size_t pos = 0;
    const char *hn = NULL;
    const char *hv = NULL;
    while (tam_httpc_resp_header_next(resp, &pos, &hn, &hv)) {
        r->n_headers++;
    }
    r->reused = resp->reused;
    r->retried = resp->retried;
}

static void on_done(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct call *c = arg;
    struct tctx *t = c->t;
    record(&t->r[c->idx], err, resp);
    t->n_done++;
    if (t->after != NULL) {
        t->after(t, c->idx);
    }
    if (t->n_done == t->n_want && !t->hold) {
        tctx_close(t);
    }
}

static struct tctx *tctx_new(const struct tam_httpc_opts *o)
{
    struct tctx *t = tam_calloc(1, sizeof(*t));
    cr_assert_not_null(t);
    cr_assert_eq(uv_loop_init(&t->loop), 0);
    int err = tam_httpc_pool_create(&t->loop, o, &t->pool);
    cr_assert_eq(err, TAM_OK, "pool_create: %s", tam_errname(err));
    for (int i = 0; i < MAXR; i++) {
        t->calls[i].t = t;
        t->calls[i].idx = i;
    }
    t->t0 = uv_hrtime();
    return t;
}

/* Runs the loop until the pool closed; the loop must then close with no handle left. */
static void tctx_finish(struct tctx *t)
{
    uv_run(&t->loop, UV_RUN_DEFAULT);
    cr_assert(t->closed, "pool did not close");
    cr_assert_eq(t->close_calls, 1);
    cr_assert_eq(uv_loop_close(&t->loop), 0);
}

static void tctx_free(struct tctx *t)
{
    tam_free(t);
}

static void submit(struct tctx *t, int idx, const char *method, const char *path, const char *body)
{
    const struct tam_httpc_header hdrs[] = {{"Accept", TAM_TEEP_MEDIA_TYPE},
                                            {"Content-Type", TAM_TEEP_MEDIA_TYPE}};
    size_t blen = body != NULL ? strlen(body) : 0;
    struct tam_httpc_req req = {
        .method = method,
        .path = path,
        .headers = hdrs,
        .n_headers = blen > 0 ? 2 : 1,
        .body = tam_bytes_of(body, blen),
    };
    int err = tam_httpc_request(t->pool, &req, on_done, &t->calls[idx]);
    cr_assert_eq(err, TAM_OK, "request: %s", tam_errname(err));
}

static void url_for(char *out, size_t n, const char *scheme, const char *host, int port,
                    const char *path)
{
    snprintf(out, n, "%s://%s:%d%s", scheme, host, port, path);
}

static void init_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
}

TestSuite(httpc, .init = init_signals, .timeout = 30);

/* ---- pure parts ---- */

Test(httpc, url_parse_accepts)
{
    struct tam_httpc_url u;
    cr_assert_eq(tam_httpc_url_parse("http://127.0.0.1:8080/tam", &u), TAM_OK);
    cr_assert(!u.tls);
    cr_assert_eq(u.family, AF_INET);
    cr_assert_eq(u.port, 8080);
    cr_assert_str_eq(u.host, "127.0.0.1");
    cr_assert_str_eq(u.path, "/tam");
    cr_assert_eq(tam_httpc_url_parse("HTTPS://Tam.Example.com/t/x?y=1#frag", &u), TAM_OK);
    cr_assert(u.tls);
    cr_assert_eq(u.family, 0);
    cr_assert_eq(u.port, 443);
    cr_assert_str_eq(u.host, "Tam.Example.com");
    cr_assert_str_eq(u.path, "/t/x?y=1");
    cr_assert_eq(tam_httpc_url_parse("http://[::1]:9/", &u), TAM_OK);
    cr_assert_eq(u.family, AF_INET6);
    cr_assert_str_eq(u.host, "::1");
    cr_assert_eq(u.port, 9);
    cr_assert_eq(tam_httpc_url_parse("http://host", &u), TAM_OK);
    cr_assert_str_eq(u.path, "/");
    cr_assert_eq(u.port, 80);
    cr_assert_eq(tam_httpc_url_parse("http://host?q=1", &u), TAM_OK);
    cr_assert_str_eq(u.path, "/?q=1");
    cr_assert_eq(tam_httpc_url_parse("http://host:/x", &u), TAM_OK);
    cr_assert_eq(u.port, 80);
}

Test(httpc, url_parse_rejects)
{
    static const char *const bad[] = {
        "ftp://host/",       "http://",
        "http:///x",         "http://user@host/",
        "http://host:0/",    "http://host:65536/",
        "http://host:12a/",  "http://host:123456/",
        "http://[::1/",      "http://[fe80::1%25eth0]/",
        "http://[zz::1]/",   "http://ho st/",
        "http://host/pa th", "http://host/\x01",
        "http://host/\x80",  "http://host:80x",
        "host:80/",          "",
    };
    struct tam_httpc_url u;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(tam_httpc_url_parse(bad[i], &u), TAM_EINVAL, "accepted '%s'", bad[i]);
    }
    cr_assert_eq(tam_httpc_url_parse(NULL, &u), TAM_EINVAL);
    char longhost[400];
    memset(longhost, 'a', sizeof(longhost));
    memcpy(longhost, "http://", 7);
    longhost[sizeof(longhost) - 1] = '\0';
    cr_assert_eq(tam_httpc_url_parse(longhost, &u), TAM_EINVAL);
}

Test(httpc, create_rejects_bad_options)
{
    uv_loop_t loop;
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct tam_httpc_pool *p = NULL;
    struct tam_httpc_opts o = {.url = "http://exa mple/"};
    cr_assert_eq(tam_httpc_pool_create(&loop, &o, &p), TAM_EINVAL);
    cr_assert_null(p);
    o.url = "https://localhost:1/";
    cr_assert_eq(tam_httpc_pool_create(&loop, &o, &p), TAM_ECONFIG); /* no CA */
    o.ca_file = "/nonexistent/ca.pem";
    cr_assert_eq(tam_httpc_pool_create(&loop, &o, &p), TAM_ECONFIG);
    o.url = "http://localhost:1/";
    o.max_conns = 1000000;
    cr_assert_eq(tam_httpc_pool_create(&loop, &o, &p), TAM_EINVAL);
    tam_httpc_pool_close(NULL, NULL, NULL);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

/* Bad requests are refused synchronously and their callback never runs. */
Test(httpc, invalid_requests_are_refused)
{
    struct tam_httpc_opts o = {.url = "http://127.0.0.1:1/x", .max_req_body = 10};
    struct tctx *t = tctx_new(&o);
    const struct tam_httpc_header crlf[] = {{"X-A", "a\r\nInjected: 1"}};
    const struct tam_httpc_header cl[] = {{"content-length", "5"}};
    const struct tam_httpc_header badname[] = {{"X A", "1"}};
    struct tam_httpc_req reqs[] = {
        {.headers = crlf, .n_headers = 1},
        {.headers = cl, .n_headers = 1},
        {.headers = badname, .n_headers = 1},
        {.method = "PO ST"},
        {.path = "noslash"},
        {.path = "/a b"},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        cr_assert_eq(tam_httpc_request(t->pool, &reqs[i], on_done, &t->calls[0]), TAM_EINVAL,
                     "request %zu accepted", i);
    }
    struct tam_httpc_req big = {.body = tam_bytes_of("0123456789a", 11)};
    cr_assert_eq(tam_httpc_request(t->pool, &big, on_done, &t->calls[0]), TAM_ETOOBIG);
    tctx_close(t);
    cr_assert_eq(tam_httpc_request(t->pool, &reqs[0], on_done, &t->calls[0]), UV_ECANCELED);
    tctx_finish(t);
    cr_assert_eq(t->r[0].calls, 0);
    cr_assert_eq(t->stats.requests, 0);
    tctx_free(t);
}

/* ---- plain HTTP against the Python server ---- */

Test(httpc, teep_post_with_body_and_empty)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/echo");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    const char *msg = "\x82\x01\xa0teep";
    cr_assert_eq(
        tam_httpc_teep_post(t->pool, tam_bytes_of(msg, strlen(msg)), on_done, &t->calls[0]),
        TAM_OK);
    cr_assert_eq(tam_httpc_teep_post(t->pool, tam_bytes_of(NULL, 0), on_done, &t->calls[1]),
                 TAM_OK);
    cr_assert_eq(t->r[0].calls, 0, "callback ran inside the submitting call");
    tctx_finish(t);
    struct result *a = &t->r[0];
    cr_assert_eq(a->calls, 1);
    cr_assert_eq(a->err, TAM_OK, "%s", tam_errname(a->err));
    cr_assert_eq(a->status, 200);
    cr_assert_str_eq(a->body, msg);
    cr_assert_str_eq(a->got_accept, TAM_TEEP_MEDIA_TYPE);
    cr_assert_str_eq(a->got_ctype, TAM_TEEP_MEDIA_TYPE);
    cr_assert_str_eq(a->ctype, TAM_TEEP_MEDIA_TYPE);
    cr_assert_gt(a->n_headers, 6);
    struct result *b = &t->r[1];
    cr_assert_eq(b->err, TAM_OK);
    cr_assert_eq(b->status, 200);
    cr_assert_eq(b->body_len, 0);
    cr_assert_str_eq(b->got_len, "0");
    cr_assert_str_eq(b->got_accept, TAM_TEEP_MEDIA_TYPE);
    cr_assert_str_eq(b->got_ctype, "-"); /* no Content-Type without a body */
    cr_assert_eq(t->stats.requests, 2);
    cr_assert_eq(t->stats.responses, 2);
    tctx_free(t);
    srv_stop(&s);
}

static void after_submit_second(struct tctx *t, int idx)
{
    if (idx == 0) {
        submit(t, 1, "POST", NULL, "second");
    }
}

Test(httpc, status_204_and_keepalive_reuse)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/empty");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_submit_second;
    submit(t, 0, "POST", NULL, "done");
    tctx_finish(t);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t->r[i].err, TAM_OK);
        cr_assert_eq(t->r[i].status, 204);
        cr_assert_eq(t->r[i].body_len, 0);
    }
    cr_assert_str_eq(t->r[0].xconn, t->r[1].xconn);
    cr_assert_str_eq(t->r[1].xreqnum, "2");
    cr_assert(!t->r[0].reused);
    cr_assert(t->r[1].reused);
    cr_assert_eq(t->stats.conns_opened, 1);
    cr_assert_eq(t->stats.conns_reused, 1);
    cr_assert_eq(t->stats.conns_active, 1);
    cr_assert_eq(t->stats.conns_idle, 1);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, connection_close_is_not_reused)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/close");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_submit_second;
    submit(t, 0, "POST", NULL, "x");
    tctx_finish(t);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t->r[i].err, TAM_OK);
        cr_assert_eq(t->r[i].status, 200);
        cr_assert_str_eq(t->r[i].body, "bye");
        cr_assert(!t->r[i].reused);
    }
    cr_assert_str_neq(t->r[0].xconn, t->r[1].xconn);
    cr_assert_eq(t->stats.conns_opened, 2);
    cr_assert_eq(t->stats.conns_reused, 0);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, no_reuse_option)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/echo");
    struct tam_httpc_opts o = {.url = url, .no_reuse = true};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_submit_second;
    submit(t, 0, "POST", NULL, "x");
    tctx_finish(t);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t->r[i].err, TAM_OK);
        cr_assert_str_eq(t->r[i].got_conn, "close");
        cr_assert(!t->r[i].reused);
    }
    cr_assert_eq(t->stats.conns_opened, 2);
    cr_assert_eq(t->stats.conns_active, 0);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, chunked_response_then_reuse)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/chunked");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_submit_second;
    submit(t, 0, "POST", NULL, "a chunked body split in three pieces");
    tctx_finish(t);
    cr_assert_eq(t->r[0].err, TAM_OK);
    cr_assert_eq(t->r[0].status, 200);
    cr_assert_str_eq(t->r[0].body, "a chunked body split in three pieces");
    cr_assert_eq(t->r[1].err, TAM_OK);
    cr_assert_str_eq(t->r[1].body, "second");
    cr_assert(t->r[1].reused);
    cr_assert_eq(t->stats.conns_opened, 1);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, body_too_large)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/");
    struct tam_httpc_opts o = {.url = url, .max_body = 1000, .max_header_bytes = 1024};
    struct tctx *t = tctx_new(&o);
    t->n_want = 4;
    submit(t, 0, "GET", "/big?n=5000", NULL);     /* refused from Content-Length */
    submit(t, 1, "GET", "/chunked?n=5000", NULL); /* refused while receiving */
    submit(t, 2, "GET", "/big?n=1000", NULL);     /* exactly at the limit */
    submit(t, 3, "GET", "/hdrs?n=2000", NULL);    /* header block above its ceiling */
    tctx_finish(t);
    cr_assert_eq(t->r[3].err, TAM_ETOOBIG, "%s", tam_errname(t->r[3].err));
    cr_assert_eq(t->r[0].err, TAM_ETOOBIG, "%s", tam_errname(t->r[0].err));
    cr_assert_eq(t->r[1].err, TAM_ETOOBIG, "%s", tam_errname(t->r[1].err));
    cr_assert_eq(t->r[2].err, TAM_OK);
    cr_assert_eq(t->r[2].body_len, 1000);
    cr_assert_eq(t->stats.err_toobig, 3);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, timeout_fires_once)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/slow?ms=3000");
    struct tam_httpc_opts o = {.url = url, .timeout_ms = 300};
    struct tctx *t = tctx_new(&o);
    t->n_want = 1;
    submit(t, 0, "POST", NULL, "zzz");
    tctx_finish(t);
    uint64_t ms = (uv_hrtime() - t->t0) / 1000000u;
    cr_assert_eq(t->r[0].calls, 1);
    cr_assert_eq(t->r[0].err, TAM_ETIMEOUT, "%s", tam_errname(t->r[0].err));
    cr_assert_geq(ms, 250);
    cr_assert_lt(ms, 2500);
    cr_assert_eq(t->stats.err_timeout, 1);
    cr_assert_eq(t->stats.conns_active, 0); /* the connection was closed */
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, connection_refused)
{
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", tu_free_port(), "/echo");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 1;
    submit(t, 0, "POST", NULL, "x");
    tctx_finish(t);
    cr_assert_eq(t->r[0].calls, 1);
    cr_assert_eq(t->r[0].err, -ECONNREFUSED, "%s", tam_errname(t->r[0].err));
    cr_assert_eq(t->stats.err_connect, 1);
    tctx_free(t);
}

Test(httpc, concurrent_100_requests_over_10_connections)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/slow?ms=5");
    struct tam_httpc_opts o = {.url = url, .max_conns = 10};
    struct tctx *t = tctx_new(&o);
    t->n_want = 100;
    static char bodies[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "req-%d", i);
        submit(t, i, "POST", NULL, bodies[i]);
    }
    tctx_finish(t);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(t->r[i].calls, 1);
        cr_assert_eq(t->r[i].err, TAM_OK, "req %d: %s", i, tam_errname(t->r[i].err));
        cr_assert_str_eq(t->r[i].body, bodies[i]);
    }
    cr_assert_eq(t->stats.conns_opened, 10);
    cr_assert_eq(t->stats.conns_reused, 90);
    cr_assert_eq(t->stats.responses, 100);
    cr_assert_eq(t->stats.queued, 0);
    tctx_free(t);
    srv_stop(&s);
}

/* The server closes a keep-alive connection right after answering; the next request is
 * written on it at once, fails before any response byte and is retried on a fresh one. */
Test(httpc, stale_keepalive_retried_once)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/drop");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_submit_second;
    submit(t, 0, "POST", NULL, "x");
    tctx_finish(t);
    cr_assert_eq(t->r[0].err, TAM_OK);
    cr_assert_eq(t->r[1].calls, 1);
    cr_assert_eq(t->r[1].err, TAM_OK, "%s", tam_errname(t->r[1].err));
    cr_assert_eq(t->r[1].status, 200);
    cr_assert(t->r[1].retried);
    cr_assert_eq(t->stats.retries, 1);
    cr_assert_eq(t->stats.conns_opened, 2);
    tctx_free(t);
    srv_stop(&s);
}

static void on_later(uv_timer_t *tm)
{
    struct tctx *t = tm->data;
    submit(t, 1, "POST", NULL, "later");
    uv_close((uv_handle_t *)tm, NULL);
}

static void after_delay_second(struct tctx *t, int idx)
{
    if (idx == 0) {
        uv_timer_init(&t->loop, &t->timer);
        t->timer.data = t;
        uv_timer_start(&t->timer, on_later, 200, 0);
    }
}

/* An idle connection closed by the peer is noticed and dropped from the pool. */
Test(httpc, idle_close_detected)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/drop");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->after = after_delay_second;
    submit(t, 0, "POST", NULL, "x");
    tctx_finish(t);
    cr_assert_eq(t->r[1].err, TAM_OK);
    cr_assert(!t->r[1].retried);
    cr_assert(!t->r[1].reused);
    cr_assert_eq(t->stats.conns_closed_idle, 1);
    cr_assert_eq(t->stats.retries, 0);
    cr_assert_eq(t->stats.conns_opened, 2);
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, responses_of_every_shape)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "localhost", s.port, "/echo"); /* resolved by name */
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 7;
    submit(t, 0, "POST", "/redirect", "x"); /* 302 delivered, never followed */
    submit(t, 1, "GET", "/eof", NULL);      /* body delimited by the close */
    submit(t, 2, "GET", "/garbage", NULL);  /* malformed status line */
    submit(t, 3, "GET", "/hangup", NULL);   /* closed without a response, fresh conn */
    submit(t, 4, "GET", "/continue", NULL); /* 100 Continue, then 200 */
    submit(t, 5, "HEAD", "/echo", NULL);    /* Content-Length: 100 but no body */
    submit(t, 6, "GET", "/nope", NULL);     /* 404 */
    tctx_finish(t);
    cr_assert_eq(t->r[0].err, TAM_OK);
    cr_assert_eq(t->r[0].status, 302);
    cr_assert_str_eq(t->r[0].location, "/echo");
    cr_assert_eq(t->r[1].err, TAM_OK, "%s", tam_errname(t->r[1].err));
    cr_assert_str_eq(t->r[1].body, "until-eof-body");
    cr_assert_eq(t->r[2].err, TAM_EPROTO, "%s", tam_errname(t->r[2].err));
    cr_assert_eq(t->r[3].err, TAM_EPROTO, "%s", tam_errname(t->r[3].err));
    cr_assert_eq(t->r[4].err, TAM_OK);
    cr_assert_eq(t->r[4].status, 200);
    cr_assert_str_eq(t->r[4].body, "after-continue");
    cr_assert_eq(t->r[5].err, TAM_OK);
    cr_assert_eq(t->r[5].status, 200);
    cr_assert_eq(t->r[5].body_len, 0);
    cr_assert_eq(t->r[6].status, 404);
    cr_assert_eq(t->stats.requests, 7);
    cr_assert_eq(t->stats.err_proto, 2);
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(t->r[i].calls, 1);
    }
    tctx_free(t);
    srv_stop(&s);
}

Test(httpc, ipv6_literal)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    if (!s.v6) {
        srv_stop(&s);
        cr_skip_test("no IPv6 on this host");
    }
    char url[128];
    url_for(url, sizeof(url), "http", "[::1]", s.port, "/echo");
    struct tam_httpc_opts o = {.url = url};
    struct tctx *t = tctx_new(&o);
    t->n_want = 1;
    submit(t, 0, "POST", NULL, "v6");
    tctx_finish(t);
    cr_assert_eq(t->r[0].err, TAM_OK, "%s", tam_errname(t->r[0].err));
    cr_assert_str_eq(t->r[0].body, "v6");
    tctx_free(t);
    srv_stop(&s);
}

static void on_close_timer(uv_timer_t *tm)
{
    struct tctx *t = tm->data;
    tctx_close(t);
    uv_close((uv_handle_t *)tm, NULL);
}

/* Closing the pool cancels the in-flight and the queued request, once each. */
Test(httpc, close_cancels_pending)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/slow?ms=3000");
    struct tam_httpc_opts o = {.url = url, .max_conns = 1};
    struct tctx *t = tctx_new(&o);
    t->n_want = 2;
    t->hold = true;
    submit(t, 0, "POST", NULL, "a");
    submit(t, 1, "POST", NULL, "b");
    uv_timer_init(&t->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_close_timer, 150, 0);
    tctx_finish(t);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(t->r[i].calls, 1);
        cr_assert_eq(t->r[i].err, UV_ECANCELED, "%s", tam_errname(t->r[i].err));
    }
    cr_assert_eq(t->stats.queued, 1);
    cr_assert_eq(t->stats.conns_active, 1);
    tctx_free(t);
    srv_stop(&s);
}

static void on_conn(void *arg, int err)
{
    struct call *c = arg;
    struct tctx *t = c->t;
    t->conn_err[c->idx] = err;
    t->n_conn_cb++;
    t->conn_ok += err == TAM_OK;
    if (t->n_conn_cb == 4) {
        submit(t, 0, "POST", NULL, "on a held connection");
    }
}

/* Idle mode: open connections without requests; a later request reuses one of them. */
Test(httpc, connect_without_request)
{
    struct srv s;
    srv_start(&s, NULL, NULL, false);
    char url[128];
    url_for(url, sizeof(url), "http", "127.0.0.1", s.port, "/echo");
    struct tam_httpc_opts o = {.url = url, .max_conns = 3};
    struct tctx *t = tctx_new(&o);
    t->n_want = 1;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(tam_httpc_connect(t->pool, on_conn, &t->calls[i]), TAM_OK);
    }
    tctx_finish(t);
    cr_assert_eq(t->n_conn_cb, 4);
    cr_assert_eq(t->conn_ok, 3);
    cr_assert_eq(t->conn_err[3], TAM_EUNAVAIL);
    cr_assert_eq(t->r[0].err, TAM_OK);
    cr_assert(t->r[0].reused);
    cr_assert_eq(t->stats.conns_opened, 3);
    cr_assert_eq(t->stats.conns_established, 3);
    cr_assert_eq(t->stats.conns_active, 3);
    tctx_free(t);
    srv_stop(&s);
}

/* ---- TLS ---- */

static struct tctx *tls_run(const char *url, const char *ca, const char *name, bool tls13_only,
                            int n)
{
    struct tam_httpc_opts o = {
        .url = url, .ca_file = ca, .tls_server_name = name, .tls13_only = tls13_only};
    struct tctx *t = tctx_new(&o);
    t->n_want = n;
    t->after = n > 1 ? after_submit_second : NULL;
    submit(t, 0, "POST", NULL, "over tls");
    tctx_finish(t);
    return t;
}

Test(httpc, tls_ok_and_reused)
{
    struct certs c;
    certs_make(&c);
    struct srv s;
    srv_start(&s, c.cert, c.key, false);
    char url[128];
    url_for(url, sizeof(url), "https", "localhost", s.port, "/echo");
    struct tctx *t = tls_run(url, c.cert, NULL, true, 2);
    cr_assert_eq(t->r[0].err, TAM_OK, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    cr_assert_eq(t->r[0].status, 200);
    cr_assert_str_eq(t->r[0].body, "over tls");
    cr_assert_eq(t->r[1].err, TAM_OK);
    cr_assert_str_eq(t->r[1].body, "second");
    cr_assert(t->r[1].reused);
    cr_assert_eq(t->stats.conns_opened, 1);
    cr_assert_eq(t->stats.conns_established, 1);
    tctx_free(t);
    srv_stop(&s);
    certs_remove(&c);
}

Test(httpc, tls_wrong_ca)
{
    struct certs c;
    certs_make(&c);
    struct srv s;
    srv_start(&s, c.cert, c.key, false);
    char url[128];
    url_for(url, sizeof(url), "https", "localhost", s.port, "/echo");
    struct tctx *t = tls_run(url, c.other_cert, NULL, false, 1);
    cr_assert_eq(t->r[0].calls, 1);
    cr_assert_eq(t->r[0].err, TAM_ETLS_VERIFY, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    cr_assert_eq(t->stats.err_tls_verify, 1);
    tctx_free(t);
    srv_stop(&s);
    certs_remove(&c);
}

Test(httpc, tls_host_name_mismatch)
{
    struct certs c;
    certs_make(&c);
    struct srv s;
    srv_start(&s, c.other_cert, c.other_key, false);
    char url[128];
    url_for(url, sizeof(url), "https", "127.0.0.1", s.port, "/echo");
    /* Trusted certificate, but issued to CN=other, not 127.0.0.1. */
    struct tctx *t = tls_run(url, c.other_cert, NULL, false, 1);
    cr_assert_eq(t->r[0].err, TAM_ETLS_VERIFY, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    tctx_free(t);
    /* The same server passes when the expected name is the certificate's. */
    t = tls_run(url, c.other_cert, "other", false, 1);
    cr_assert_eq(t->r[0].err, TAM_OK, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    tctx_free(t);
    srv_stop(&s);
    certs_remove(&c);
}

Test(httpc, tls13_only_refuses_tls12_server)
{
    struct certs c;
    certs_make(&c);
    struct srv s;
    srv_start(&s, c.cert, c.key, true);
    char url[128];
    url_for(url, sizeof(url), "https", "localhost", s.port, "/echo");
    struct tctx *t = tls_run(url, c.cert, NULL, true, 1);
    cr_assert_eq(t->r[0].err, TAM_ETLS, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    tctx_free(t);
    t = tls_run(url, c.cert, NULL, false, 2); /* TLS 1.2 is accepted by default */
    cr_assert_eq(t->r[0].err, TAM_OK, "%s (wolfSSL %d)", tam_errname(t->r[0].err),
                 t->stats.last_tls_error);
    cr_assert_eq(t->r[1].err, TAM_OK);
    cr_assert(t->r[1].reused);
    tctx_free(t);
    srv_stop(&s);
    certs_remove(&c);
}

Test(httpc, tls_concurrent_and_stale_retry)
{
    struct certs c;
    certs_make(&c);
    struct srv s;
    srv_start(&s, c.cert, c.key, false);
    char url[128];
    url_for(url, sizeof(url), "https", "localhost", s.port, "/drop");
    struct tctx *t = tls_run(url, c.cert, NULL, false, 2);
    cr_assert_eq(t->r[0].err, TAM_OK, "%s", tam_errname(t->r[0].err));
    cr_assert_eq(t->r[1].err, TAM_OK, "%s", tam_errname(t->r[1].err));
    cr_assert_str_eq(t->r[1].body, "dropped");
    cr_assert_eq(t->stats.conns_opened, 2);
    tctx_free(t);

    url_for(url, sizeof(url), "https", "localhost", s.port, "/echo");
    struct tam_httpc_opts o = {.url = url, .ca_file = c.cert, .max_conns = 4};
    t = tctx_new(&o);
    t->n_want = 20;
    for (int i = 0; i < 20; i++) {
        submit(t, i, "POST", NULL, "tls-many");
    }
    tctx_finish(t);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(t->r[i].err, TAM_OK, "req %d: %s", i, tam_errname(t->r[i].err));
        cr_assert_str_eq(t->r[i].body, "tls-many");
    }
    cr_assert_eq(t->stats.conns_opened, 4);
    tctx_free(t);
    srv_stop(&s);
    certs_remove(&c);
}
