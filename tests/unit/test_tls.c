/*
 * TLS (wolfSSL) under the HTTP server core: real certificates made by openssl at test
 * time, real curl clients. Shares the loop-thread harness of test_http.c.
 */
#define TAM_TEST_HARNESS_ONLY
#include "test_http.c"
#include "testutil.h"

static char dir[64];
static char cert_a[128], key_a[128], cert_b[128], key_b[128];

static void gen_cert(const char *cert, const char *key)
{
    char out[4096];
    int rc = run(out, sizeof(out),
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                 "-subj /CN=localhost -keyout %s -out %s 2>&1",
                 key, cert);
    cr_assert_eq(rc, 0, "openssl: %s", out);
}

static void setup_certs(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tam-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cert_a, sizeof(cert_a), "%s/a.pem", dir);
    snprintf(key_a, sizeof(key_a), "%s/a.key", dir);
    snprintf(cert_b, sizeof(cert_b), "%s/b.pem", dir);
    snprintf(key_b, sizeof(key_b), "%s/b.key", dir);
    gen_cert(cert_a, key_a);
    gen_cert(cert_b, key_b);
}

static void cleanup_certs(void)
{
    const char *files[] = {cert_a, key_a, cert_b, key_b};
    for (size_t i = 0; i < 4; i++) {
        unlink(files[i]);
    }
    rmdir(dir);
}

TestSuite(tls, .init = setup_certs, .fini = cleanup_certs);

static struct tam_tls_ctx *make_ctx(const char *cert, const char *key, bool tls12)
{
    struct tam_tls_options opt = {.cert_file = cert, .key_file = key, .allow_tls12 = tls12};
    struct tam_tls_ctx *ctx = NULL;
    int err = tam_tls_ctx_create(&opt, &ctx);
    cr_assert_eq(err, 0, "tls ctx: %s", tam_strerror(err));
    return ctx;
}

/* The server takes its own reference, so the test's is dropped right away. */
static void start_tls(bool tls12, uint32_t write_queue)
{
    struct tam_tls_ctx *ctx = make_ctx(cert_a, key_a, tls12);
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    cfg.tls = ctx;
    cfg.limits.write_queue_bytes = write_queue;
    fx_start(&cfg);
    tam_tls_ctx_unref(ctx);
}

#define CURLS CURL "--resolve localhost:%u:127.0.0.1 "

Test(tls, tls13_request_with_verified_cert)
{
    start_tls(false, 0);
    char out[16384];
    int rc = run(out, sizeof(out),
                 CURLS "-v --cacert %s -w '\\nverify=%%{ssl_verify_result} code=%%{http_code}' "
                       "https://localhost:%u/info 2>&1",
                 F.port, cert_a, F.port);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "SSL connection using TLSv1.3"), "%s", out);
    cr_assert_not_null(strstr(out, "tls=1 minor=1"), "%s", out);
    cr_assert_not_null(strstr(out, "verify=0 code=200"), "%s", out);
    fx_stop();
    cr_assert_eq(F.snap.tls_handshakes, 1);
    cr_assert_eq(F.snap.drop_tls, 0);
}

Test(tls, keep_alive_over_tls)
{
    start_tls(false, 0);
    char out[1024];
    int rc =
        run(out, sizeof(out),
            CURLS "--cacert %s -o /dev/null -o /dev/null -w '%%{num_connects} %%{http_code}\\n' "
                  "https://localhost:%u/hello https://localhost:%u/echo",
            F.port, cert_a, F.port, F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "1 200\n0 200\n");
    fx_stop();
    cr_assert_eq(F.snap.tls_handshakes, 1);
    cr_assert_eq(F.snap.conns_accepted, 1);
    cr_assert_eq(F.snap.requests, 2);
}

Test(tls, tls12_refused_by_default)
{
    start_tls(false, 0);
    char out[1024];
    int rc = run(out, sizeof(out), CURLS "--cacert %s --tls-max 1.2 https://localhost:%u/hello",
                 F.port, cert_a, F.port);
    cr_assert_eq(rc, 35, "curl exit %d", rc); /* CURLE_SSL_CONNECT_ERROR */
    rc = run(out, sizeof(out), CURLS "--cacert %s https://localhost:%u/hello", F.port, cert_a,
             F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "hello\n");
    fx_stop();
    cr_assert_eq(F.snap.drop_tls, 1);
}

Test(tls, tls12_allowed_when_enabled)
{
    start_tls(true, 0);
    char out[16384];
    int rc =
        run(out, sizeof(out), CURLS "-v --cacert %s --tls-max 1.2 https://localhost:%u/hello 2>&1",
            F.port, cert_a, F.port);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_not_null(strstr(out, "SSL connection using TLSv1.2 / ECDHE-ECDSA-"), "%s", out);
    cr_assert_not_null(strstr(out, "hello\n"));
    fx_stop();
}

Test(tls, plain_http_to_tls_port_closes_cleanly)
{
    start_tls(false, 0);
    int fd = tcp_connect(F.port);
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert(wait_closed(fd, 3000), "garbage connection left open");
    close(fd);
    char out[256];
    cr_assert_eq(run(out, sizeof(out), CURLS "--cacert %s https://localhost:%u/hello", F.port,
                     cert_a, F.port),
                 0);
    cr_assert_str_eq(out, "hello\n");
    fx_stop();
    cr_assert_eq(F.snap.drop_tls, 1);
    cr_assert_eq(F.snap.requests, 1);
}

Test(tls, reload_new_connections_get_new_cert)
{
    F.reload_ctx = make_ctx(cert_b, key_b, false);
    start_tls(false, 0);
    char out[1024];
    /* One connection across the reload: it keeps the context (and cert) it started with. */
    int rc =
        run(out, sizeof(out),
            CURLS "--cacert %s -o /dev/null -o /dev/null -w '%%{num_connects} %%{http_code}\\n' "
                  "https://localhost:%u/reload https://localhost:%u/hello",
            F.port, cert_a, F.port, F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "1 200\n0 200\n");
    rc = run(out, sizeof(out), CURLS "--cacert %s https://localhost:%u/hello", F.port, cert_b,
             F.port);
    cr_assert_eq(rc, 0, "new cert not served");
    cr_assert_str_eq(out, "hello\n");
    rc = run(NULL, 0, CURLS "--cacert %s https://localhost:%u/hello 2>/dev/null", F.port, cert_a,
             F.port);
    cr_assert_eq(rc, 60, "old cert still served (curl exit %d)", rc); /* peer cert not trusted */
    fx_stop();
    tam_tls_ctx_unref(F.reload_ctx);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

Test(tls, large_bodies_through_small_write_queue)
{
    start_tls(false, 64 * 1024);
    char out[1024];
    int rc = run(out, sizeof(out),
                 CURLS "--cacert %s -o /dev/null -w '%%{size_download}' "
                       "https://localhost:%u/big?n=1048576",
                 F.port, cert_a, F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "1048576");
    enum { N = 300000 };
    uint8_t *body = malloc(N);
    for (size_t i = 0; i < N; i++) {
        body[i] = (uint8_t)(i * 7 + 3);
    }
    char in_path[160], out_path[160];
    snprintf(in_path, sizeof(in_path), "%s/in.bin", dir);
    snprintf(out_path, sizeof(out_path), "%s/out.bin", dir);
    write_file(in_path, body, N);
    rc = run(out, sizeof(out),
             CURLS "--cacert %s --data-binary @%s -o %s -w '%%{http_code}' "
                   "https://localhost:%u/echo",
             F.port, cert_a, in_path, out_path, F.port);
    cr_assert_eq(rc, 0);
    cr_assert_str_eq(out, "200");
    size_t n = 0;
    uint8_t *echo = (uint8_t *)tu_read_file(out_path, &n);
    cr_assert_eq(n, N);
    cr_assert_eq(memcmp(echo, body, N), 0);
    tam_free(echo);
    free(body);
    unlink(in_path);
    unlink(out_path);
    uint64_t peak = fx_queued_peak();
    fx_stop();
    cr_assert_eq(F.snap.write_queued, 0);
    /* Ciphertext copies held in write requests: about 2 x 64 KiB ceiling + a record. */
    cr_assert(peak <= 2 * 64 * 1024 + 20 * 1024, "queued peak %llu", (unsigned long long)peak);
}

struct bg_curl {
    char cmd[512];
    char out[256];
    int rc;
};

static void *bg_run(void *arg)
{
    struct bg_curl *b = arg;
    b->rc = run(b->out, sizeof(b->out), "%s", b->cmd);
    return NULL;
}

Test(tls, graceful_shutdown_over_tls)
{
    start_tls(false, 0);
    struct bg_curl b;
    snprintf(b.cmd, sizeof(b.cmd), CURLS "--cacert %s -D - https://localhost:%u/async?ms=300",
             F.port, cert_a, F.port);
    pthread_t th;
    pthread_create(&th, NULL, bg_run, &b);
    WAIT_FOR(atomic_load(&F.handled) == 1, 5000);
    cr_assert_eq(atomic_load(&F.handled), 1);
    fx_shutdown_async(3000);
    pthread_join(th, NULL);
    cr_assert_eq(b.rc, 0);
    cr_assert_not_null(strstr(b.out, "Connection: close\r\n"), "%s", b.out);
    cr_assert_not_null(strstr(b.out, "\r\n\r\nasync\n"), "%s", b.out);
    fx_join();
    cr_assert_eq(F.snap.drop_shutdown, 0);
}

Test(tls, ctx_errors)
{
    struct tam_tls_ctx *ctx = NULL;
    struct tam_tls_options opt = {.cert_file = cert_a, .key_file = NULL};
    cr_assert_eq(tam_tls_ctx_create(&opt, &ctx), TAM_EINVAL);
    opt.key_file = "/nonexistent/key.pem";
    cr_assert_eq(tam_tls_ctx_create(&opt, &ctx), TAM_EKEY);
    opt.key_file = key_b; /* does not match cert_a */
    cr_assert_eq(tam_tls_ctx_create(&opt, &ctx), TAM_EKEY);
    cr_assert_null(ctx);
    opt.key_file = key_a;
    cr_assert_eq(tam_tls_ctx_create(&opt, &ctx), 0);
    cr_assert_not(tam_tls_ctx_allows_tls12(ctx));
    cr_assert_eq(tam_tls_ctx_ref(ctx), ctx);
    tam_tls_ctx_unref(ctx);
    tam_tls_ctx_unref(ctx);
    tam_tls_ctx_unref(NULL);
}

Test(tls, set_tls_on_plain_server_is_refused)
{
    struct tam_http_server_config cfg;
    fx_config(&cfg);
    fx_start(&cfg);
    struct tam_tls_ctx *ctx = make_ctx(cert_a, key_a, false);
    /* Not on the loop thread, but the call only checks the server's mode and fails. */
    cr_assert_eq(tam_http_server_set_tls(F.srv, ctx), TAM_EINVAL);
    tam_tls_ctx_unref(ctx);
    fx_stop();
}
