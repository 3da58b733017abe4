/* The admin API test fixture (admin_fixture.h). */
#include "admin_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tam/admin.h"
#include "tam/err.h"
#include "tam/http.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/tls.h"

static void on_request(struct tam_http_request *req, void *ctx)
{
    struct tu_admin *a = ctx;
    if (tam_admin_handles(tam_http_request_target(req))) {
        tam_admin_handle(req, a->admin);
    } else {
        (void)tam_http_respond_status(req, 404);
    }
}

static void on_operator(void *arg, int err, const char *token)
{
    struct tu_admin *a = arg;
    cr_assert_eq(err, TAM_OK);
    cr_assert_not_null(token);
    snprintf(a->op, sizeof(a->op), "%s", token);
    a->op_done = true;
}

static void on_stop(uv_async_t *h)
{
    struct tu_admin *a = h->data;
    tam_http_server_destroy(a->srv);
    tam_admin_destroy(a->admin);
    tam_redis_destroy(a->redis);
    uv_close((uv_handle_t *)h, NULL);
}

static void *loop_main(void *arg)
{
    struct tu_admin *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
    tam_tls_thread_cleanup(); /* wolfCrypt's ECC fixed-point cache is per thread */
    return NULL;
}

void tu_admin_init(struct tu_admin *a, const char *prefix)
{
    memset(a, 0, sizeof(*a));
    tam_net_process_init();
    tu_redis_start(&a->rs);
    snprintf(a->dir, sizeof(a->dir), "/tmp/%s-XXXXXX", prefix);
    cr_assert_not_null(mkdtemp(a->dir));
}

void tu_admin_serve(struct tu_admin *a, bool worker_key, struct tam_tls_ctx *tls)
{
    cr_assert_eq(uv_loop_init(&a->loop), 0);
    cr_assert_eq(tam_redis_create(&a->loop, a->rs.addr, NULL, NULL, NULL, &a->redis), TAM_OK);
    cr_assert_eq(tam_random(a->kek, sizeof(a->kek)), TAM_OK);
    struct tam_admin_opts o = {.kek = a->kek};
    if (worker_key) {
        cr_assert_eq(tam_key_generate(TAM_KEY_P256, &a->worker), TAM_OK);
        o.worker_seal_pub = a->worker;
    }
    cr_assert_eq(tam_admin_create(&a->loop, a->redis, &o, &a->admin), TAM_OK);
    struct tam_http_server_config cfg = {
        .name = "admin", .handler = on_request, .handler_ctx = a, .tls = tls};
    cfg.limits.body_bytes = (uint32_t)tam_admin_body_limit(a->admin);
    cr_assert_eq(tam_http_server_create(&a->loop, &cfg, &a->srv), TAM_OK);
    a->port = tam_http_server_port(a->srv);
    for (int i = 0; i < 500 && !tam_redis_connected(a->redis); i++) {
        uv_run(&a->loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
    cr_assert(tam_redis_connected(a->redis));
    cr_assert_eq(tam_tstore_operator_ensure(a->redis, on_operator, a), TAM_OK);
    while (!a->op_done) {
        uv_run(&a->loop, UV_RUN_ONCE);
    }
    a->stop.data = a;
    cr_assert_eq(uv_async_init(&a->loop, &a->stop, on_stop), 0);
    cr_assert_eq(pthread_create(&a->th, NULL, loop_main, a), 0);
}

void tu_admin_stop(struct tu_admin *a)
{
    uv_async_send(&a->stop);
    pthread_join(a->th, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&a->loop), 0, "handles left on the loop");
    tam_key_destroy(a->worker);
    tu_redis_stop(&a->rs);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", a->dir);
    cr_assert_eq(system(cmd), 0);
}
