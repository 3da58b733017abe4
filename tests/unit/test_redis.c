/* Redis layer against a real redis-server: client, timeouts, reconnect, supervisor, fixture. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "tam/err.h"
#include "tam/redis.h"
#include "tam/redis_server.h"

/* ---- Loop helpers ---- */

struct deadline {
    uv_timer_t timer;
    bool expired;
};

static void on_deadline(uv_timer_t *t)
{
    ((struct deadline *)t->data)->expired = true;
}

static void deadline_start(uv_loop_t *loop, struct deadline *d, uint64_t ms)
{
    d->expired = false;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_deadline, ms, 0);
}

static void deadline_finish(uv_loop_t *loop, struct deadline *d)
{
    uv_close((uv_handle_t *)&d->timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* runs the close before d goes out of scope */
}

/* Runs the loop until cond holds or ms pass. */
#define RUN_UNTIL(loop, cond, ms)           \
    do {                                    \
        struct deadline dl_;                \
        deadline_start((loop), &dl_, (ms)); \
        while (!(cond) && !dl_.expired) {   \
            uv_run((loop), UV_RUN_ONCE);    \
        }                                   \
        deadline_finish((loop), &dl_);      \
    } while (0)

#define RUN_FOR(loop, ms) RUN_UNTIL(loop, false, ms)

static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(loop), 0, "handles left on the loop");
}

/* ---- Callback recorders ---- */

struct result {
    int calls;
    int status;
    int type;
    long long integer;
    size_t len;
    char str[256];
    size_t elements;
};

static void on_result(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct result *res = privdata;
    res->calls++;
    res->status = status;
    res->type = reply != NULL ? reply->type : -1;
    if (reply == NULL) {
        return;
    }
    res->integer = reply->integer;
    res->elements = reply->elements;
    if (reply->str != NULL) {
        res->len = reply->len < sizeof(res->str) ? reply->len : sizeof(res->str);
        memcpy(res->str, reply->str, res->len);
    }
}

struct states {
    int connected;
    int disconnected;
    int last_err;
};

static void on_state(struct tam_redis *r, enum tam_redis_state st, int err, void *data)
{
    struct states *s = data;
    if (st == TAM_REDIS_CONNECTED) {
        s->connected++;
    } else {
        s->disconnected++;
    }
    s->last_err = err;
}

static struct tam_redis *client(uv_loop_t *loop, const char *addr, const struct tam_redis_opts *o,
                                struct states *st)
{
    struct tam_redis *r = NULL;
    cr_assert_eq(tam_redis_create(loop, addr, o, on_state, st, &r), TAM_OK);
    return r;
}

static struct tam_redis *connected_client(uv_loop_t *loop, const char *addr,
                                          const struct tam_redis_opts *o, struct states *st)
{
    struct tam_redis *r = client(loop, addr, o, st);
    RUN_UNTIL(loop, st->connected > 0, 3000);
    cr_assert(tam_redis_connected(r), "client did not connect to %s", addr);
    return r;
}

/* ---- Pure parts ---- */

Test(redis, addr_parse)
{
    struct tam_redis_addr a;
    char buf[300];
    cr_assert_eq(tam_redis_addr_parse("unix:/tmp/x.sock", &a), TAM_OK);
    cr_assert(a.kind == TAM_REDIS_ADDR_UNIX && strcmp(a.path, "/tmp/x.sock") == 0);
    cr_assert_eq(tam_redis_addr_parse("unix:///tmp/x.sock", &a), TAM_OK);
    cr_assert_str_eq(a.path, "/tmp/x.sock");
    cr_assert_str_eq(tam_redis_addr_format(&a, buf, sizeof(buf)), "unix:/tmp/x.sock");
    cr_assert_eq(tam_redis_addr_parse("/run/redis.sock", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_REDIS_ADDR_UNIX);
    cr_assert_eq(tam_redis_addr_parse("./r.sock", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_REDIS_ADDR_UNIX);
    cr_assert_eq(tam_redis_addr_parse("redis://127.0.0.1:6390", &a), TAM_OK);
    cr_assert(a.kind == TAM_REDIS_ADDR_TCP && a.port == 6390 && strcmp(a.host, "127.0.0.1") == 0);
    cr_assert_eq(tam_redis_addr_parse("localhost", &a), TAM_OK);
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(tam_redis_addr_parse("redis://db-1.example", &a), TAM_OK);
    cr_assert_eq(a.port, 6379);
    cr_assert_eq(tam_redis_addr_parse("[::1]:7000", &a), TAM_OK);
    cr_assert(a.port == 7000 && strcmp(a.host, "::1") == 0);
    cr_assert_str_eq(tam_redis_addr_format(&a, buf, sizeof(buf)), "[::1]:7000");

    static const char *const bad[] = {
        "",         "unix:",         "unix://",      "host:0", "host:65536",
        "host:12a", "host:",         "redis://",     "[::1",   "[::1]x",
        "a b:1",    "redis://h:1/0", "rediss://h:1", ":6379",  "h:1:2",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_neq(tam_redis_addr_parse(bad[i], &a), TAM_OK, "accepted '%s'", bad[i]);
    }
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath));
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    cr_assert_eq(tam_redis_addr_parse(longpath, &a), TAM_ETOOBIG);
    cr_assert_eq(tam_redis_addr_parse(NULL, &a), TAM_EINVAL);
}

Test(redis, backoff_bounds)
{
    for (uint32_t attempt = 0; attempt < 40; attempt++) {
        uint64_t d = 10;
        for (uint32_t i = 0; i < attempt && d < 1000; i++) {
            d *= 2;
        }
        d = d > 1000 ? 1000 : d;
        const uint32_t rnds[] = {0, 1, 12345, UINT32_MAX};
        for (size_t k = 0; k < 4; k++) {
            uint32_t v = tam_redis_backoff_ms(10, 1000, attempt, rnds[k]);
            cr_assert(v >= d / 2 && v <= d, "attempt %u: %u not in [%llu, %llu]", attempt, v,
                      (unsigned long long)(d / 2), (unsigned long long)d);
        }
    }
    cr_assert_geq(tam_redis_backoff_ms(0, 0, 5, 7), 1);
}

Test(redis, histogram)
{
    struct tam_redis_stats s = {0};
    tam_redis_stats_observe(&s, 300000);        /* 0.3 ms */
    tam_redis_stats_observe(&s, 30000000);      /* 30 ms */
    tam_redis_stats_observe(&s, 2000000000ULL); /* 2 s */
    cr_assert_eq(s.count, 3);
    cr_assert_eq(s.bucket[0], 1);  /* le 0.0005 */
    cr_assert_eq(s.bucket[5], 1);  /* le 0.025 */
    cr_assert_eq(s.bucket[6], 2);  /* le 0.05 */
    cr_assert_eq(s.bucket[10], 2); /* le 1 */
    cr_assert_eq(s.bucket[11], 3); /* +Inf */
    cr_assert(isinf(tam_redis_latency_le[TAM_REDIS_LATENCY_BUCKETS - 1]));
    cr_assert_float_eq(s.sum_seconds, 2.0303, 1e-9);
    struct tam_redis_stats t = {0};
    tam_redis_stats_add(&t, &s);
    tam_redis_stats_add(&t, &s);
    cr_assert_eq(t.count, 6);
    cr_assert_eq(t.bucket[6], 4);
}

/* ---- Client against a real server ---- */

static void on_count(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    int *counter = privdata;
    (*counter)++;
}

Test(redis, commands_and_replies)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis *r = connected_client(&loop, rs.addr, NULL, &st);

    struct result set = {0}, get = {0}, bset = {0}, bget = {0}, err = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &set, "SET %s %s", "k1", "hello"), TAM_OK);
    cr_assert_eq(tam_redis_command(r, on_result, &get, "GET %s", "k1"), TAM_OK);
    /* Binary-safe argv: NUL bytes in the key and the value. */
    static const char key[] = {'b', 0, 'k'};
    static const char val[] = {'v', 0, 0, 'x', '\r', '\n'};
    const char *sargv[] = {"SET", key, val};
    const size_t slen[] = {3, sizeof(key), sizeof(val)};
    cr_assert_eq(tam_redis_command_argv(r, on_result, &bset, 3, sargv, slen), TAM_OK);
    const char *gargv[] = {"GET", key};
    const size_t glen[] = {3, sizeof(key)};
    cr_assert_eq(tam_redis_command_argv(r, on_result, &bget, 2, gargv, glen), TAM_OK);
    cr_assert_eq(tam_redis_command(r, on_result, &err, "INCR %s", "k1"), TAM_OK);
    cr_assert_eq(set.calls + get.calls, 0, "callbacks never fire inside the submit call");
    RUN_UNTIL(&loop, err.calls == 1, 2000);

    cr_assert(set.calls == 1 && set.status == TAM_OK && set.type == REDIS_REPLY_STATUS);
    cr_assert(get.calls == 1 && get.status == TAM_OK && get.len == 5);
    cr_assert_eq(memcmp(get.str, "hello", 5), 0);
    cr_assert(bset.calls == 1 && bset.status == TAM_OK);
    cr_assert(bget.calls == 1 && bget.len == sizeof(val) &&
              memcmp(bget.str, val, sizeof(val)) == 0);
    cr_assert(err.calls == 1 && err.status == TAM_EREDIS && err.type == REDIS_REPLY_ERROR);
    cr_assert_not_null(strstr(err.str, "not an integer"), "error text: %s", err.str);

    /* A pipeline of 1000 commands, each callback exactly once. */
    int counter = 0;
    struct result last = {0};
    for (int i = 0; i < 999; i++) {
        cr_assert_eq(tam_redis_command(r, on_count, &counter, "INCR %s", "n"), TAM_OK);
    }
    cr_assert_eq(tam_redis_command(r, on_result, &last, "INCR %s", "n"), TAM_OK);
    RUN_UNTIL(&loop, last.calls == 1, 3000);
    cr_assert_eq(counter, 999);
    cr_assert_eq(last.integer, 1000);

    /* Rejected synchronously: their callbacks would not fire exactly once. */
    cr_assert_eq(tam_redis_command(r, on_count, &counter, "SUBSCRIBE %s", "ch"), TAM_EINVAL);
    cr_assert_eq(tam_redis_command(r, on_count, &counter, "psubscribe p*"), TAM_EINVAL);
    const char *mon[] = {"MONITOR"};
    cr_assert_eq(tam_redis_command_argv(r, on_count, &counter, 1, mon, NULL), TAM_EINVAL);
    cr_assert_eq(tam_redis_command(r, NULL, NULL, "PING"), TAM_EINVAL);
    cr_assert_eq(tam_redis_command_argv(r, on_count, &counter, 0, mon, NULL), TAM_EINVAL);

    const struct tam_redis_stats *s = tam_redis_get_stats(r);
    cr_assert_eq(s->count, 1005);
    cr_assert_eq(s->errors, 1);
    cr_assert_eq(s->bucket[TAM_REDIS_LATENCY_BUCKETS - 1], s->count);
    cr_assert(s->sum_seconds > 0);
    cr_assert_eq(s->connects, 1);

    tam_redis_destroy(r);
    finish_loop(&loop);
    cr_assert_eq(st.disconnected, 0, "destroy does not report a state change");
    tu_redis_stop(&rs);
}

struct stream_read {
    struct result res;
    char payload[64];
    size_t payload_len;
    uint64_t done_at;
};

static void on_xread(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    struct stream_read *x = privdata;
    on_result(r, status, reply, &x->res);
    x->done_at = uv_hrtime();
    /* [[stream, [[id, [field, value]]]]] */
    if (status != TAM_OK || reply->type != REDIS_REPLY_ARRAY || reply->elements != 1) {
        return;
    }
    const redisReply *entries = reply->element[0]->element[1];
    cr_assert_eq(entries->elements, 1);
    const redisReply *fields = entries->element[0]->element[1];
    cr_assert_eq(fields->elements, 2);
    x->payload_len = fields->element[1]->len;
    memcpy(x->payload, fields->element[1]->str, x->payload_len);
}

Test(redis, stream_blocking_read_on_second_connection)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st1 = {0}, st2 = {0};
    struct tam_redis_opts co = {.command_timeout_ms = 1000};
    struct tam_redis_opts bo = {.command_timeout_ms = 4000, .name = "redis-blocking"};
    struct tam_redis *cmd = connected_client(&loop, rs.addr, &co, &st1);
    struct tam_redis *blk = connected_client(&loop, rs.addr, &bo, &st2);

    struct result grp = {0};
    cr_assert_eq(tam_redis_command(cmd, on_result, &grp, "XGROUP CREATE %s %s $ MKSTREAM",
                                   "tam:jobs", "signers"),
                 TAM_OK);
    RUN_UNTIL(&loop, grp.calls == 1, 2000);
    cr_assert_eq(grp.status, TAM_OK);

    struct stream_read xr = {0};
    cr_assert_eq(tam_redis_command_timeout(blk, 3000, on_xread, &xr,
                                           "XREADGROUP GROUP %s %s COUNT 10 BLOCK 2000 "
                                           "STREAMS %s >",
                                           "signers", "w1", "tam:jobs"),
                 TAM_OK);
    /* The first connection keeps working while the second one is blocked. */
    struct result pings[3] = {{0}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tam_redis_command(cmd, on_result, &pings[i], "PING"), TAM_OK);
    }
    RUN_UNTIL(&loop, pings[2].calls == 1, 1000);
    cr_assert(pings[0].status == TAM_OK && pings[2].status == TAM_OK);
    cr_assert_eq(xr.res.calls, 0, "XREADGROUP must still be blocked");

    static const char payload[] = {'j', 0, 'o', 'b', 0};
    struct result add = {0};
    uint64_t added_at = uv_hrtime();
    cr_assert_eq(tam_redis_command(cmd, on_result, &add, "XADD %s MAXLEN ~ 1000 * payload %b",
                                   "tam:jobs", payload, sizeof(payload)),
                 TAM_OK);
    /* The blocked reader may be answered before the XADD reply is read: wait for both. */
    RUN_UNTIL(&loop, xr.res.calls == 1 && add.calls == 1, 3000);
    cr_assert_eq(add.status, TAM_OK);
    cr_assert_eq(xr.res.status, TAM_OK);
    cr_assert_geq(xr.done_at, added_at);
    cr_assert_eq(xr.payload_len, sizeof(payload));
    cr_assert_eq(memcmp(xr.payload, payload, sizeof(payload)), 0);

    struct result ack = {0};
    cr_assert_eq(
        tam_redis_command(cmd, on_result, &ack, "XACK %s %s %s", "tam:jobs", "signers", add.str),
        TAM_OK);
    RUN_UNTIL(&loop, ack.calls == 1, 2000);
    cr_assert_eq(ack.status, TAM_OK, "XACK: %s", ack.str);
    cr_assert_eq(ack.integer, 1);

    tam_redis_destroy(cmd);
    tam_redis_destroy(blk);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, timeout_drops_connection_and_reconnects)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {
        .command_timeout_ms = 100, .backoff_min_ms = 10, .backoff_max_ms = 50};
    struct tam_redis *r = connected_client(&loop, rs.addr, &o, &st);

    struct result slow = {0}, behind = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &slow, "DEBUG SLEEP 0.5"), TAM_OK);
    cr_assert_eq(tam_redis_command_timeout(r, 5000, on_result, &behind, "PING"), TAM_OK);
    uint64_t t0 = uv_hrtime();
    RUN_UNTIL(&loop, slow.calls == 1, 2000);
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    cr_assert_eq(slow.status, TAM_ETIMEOUT);
    cr_assert(waited_ms >= 80 && waited_ms < 400, "timed out after %llu ms",
              (unsigned long long)waited_ms);
    /* The command stuck behind it fails with the dropped connection. */
    cr_assert_eq(behind.calls, 1);
    cr_assert_eq(behind.status, TAM_EUNAVAIL);
    cr_assert_eq(st.disconnected, 1);
    cr_assert_eq(st.last_err, TAM_ETIMEOUT);
    cr_assert_not(tam_redis_connected(r));

    /* Reconnects once the server is responsive again; the late reply never surfaces. */
    RUN_UNTIL(&loop, st.connected == 2, 3000);
    cr_assert_eq(st.connected, 2);
    RUN_FOR(&loop, 200);
    cr_assert_eq(slow.calls, 1);
    cr_assert_eq(behind.calls, 1);
    struct result ok = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &ok, "PING"), TAM_OK);
    RUN_UNTIL(&loop, ok.calls == 1, 1000);
    cr_assert_eq(ok.status, TAM_OK);
    cr_assert_eq(tam_redis_get_stats(r)->timeouts, 1);
    cr_assert_eq(tam_redis_get_stats(r)->disconnects, 1);

    tam_redis_destroy(r);
    finish_loop(&loop);
    cr_assert_eq(slow.calls, 1);
    tu_redis_stop(&rs);
}

Test(redis, timeout_keeps_connection_and_swallows_late_reply)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {.command_timeout_ms = 100, .keep_on_timeout = true};
    struct tam_redis *r = connected_client(&loop, rs.addr, &o, &st);

    struct result slow = {0}, behind = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &slow, "DEBUG SLEEP 0.3"), TAM_OK);
    cr_assert_eq(tam_redis_command_timeout(r, 2000, on_result, &behind, "PING"), TAM_OK);
    RUN_UNTIL(&loop, slow.calls == 1, 1000);
    cr_assert_eq(slow.status, TAM_ETIMEOUT);
    cr_assert_eq(behind.calls, 0);
    RUN_UNTIL(&loop, behind.calls == 1, 2000);
    cr_assert_eq(behind.status, TAM_OK);
    cr_assert_eq(slow.calls, 1, "the late reply was swallowed");
    cr_assert_eq(st.disconnected, 0);
    cr_assert_eq(tam_redis_get_stats(r)->connects, 1);
    cr_assert_eq(tam_redis_get_stats(r)->timeouts, 1);

    tam_redis_destroy(r);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, reconnects_after_server_restart)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {.backoff_min_ms = 10, .backoff_max_ms = 100};
    struct tam_redis *r = connected_client(&loop, rs.addr, &o, &st);

    tu_redis_kill(&rs, SIGKILL);
    RUN_UNTIL(&loop, st.disconnected == 1, 2000);
    cr_assert_eq(st.disconnected, 1);
    cr_assert_eq(st.last_err, TAM_EUNAVAIL);

    /* Fail fast while down, but never from inside the submit call. */
    struct result down = {0};
    uint64_t t0 = uv_hrtime();
    cr_assert_eq(tam_redis_command(r, on_result, &down, "GET %s", "k"), TAM_OK);
    cr_assert_eq(down.calls, 0);
    RUN_UNTIL(&loop, down.calls == 1, 1000);
    cr_assert_eq(down.status, TAM_EUNAVAIL);
    cr_assert_lt((uv_hrtime() - t0) / 1000000, 50);
    RUN_FOR(&loop, 150); /* a few failed reconnects */

    tu_redis_start(&rs); /* same directory and socket */
    RUN_UNTIL(&loop, st.connected == 2, 3000);
    cr_assert_eq(st.connected, 2);
    struct result set = {0}, get = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &set, "SET %s %s", "k", "v"), TAM_OK);
    cr_assert_eq(tam_redis_command(r, on_result, &get, "GET %s", "k"), TAM_OK);
    RUN_UNTIL(&loop, get.calls == 1, 1000);
    cr_assert(set.status == TAM_OK && get.status == TAM_OK && get.len == 1);
    const struct tam_redis_stats *s = tam_redis_get_stats(r);
    cr_assert_eq(s->connects, 2);
    cr_assert_eq(s->disconnects, 1);
    cr_assert_gt(s->connect_attempts, 2);

    tam_redis_destroy(r);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, missing_socket_backs_off)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {.backoff_min_ms = 10, .backoff_max_ms = 80};
    struct tam_redis *r = client(&loop, "unix:/tmp/tam-no-such-dir/redis.sock", &o, &st);
    struct result res = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &res, "PING"), TAM_OK);
    RUN_FOR(&loop, 600);
    /* Delays 5-10, 10-20, 20-40, then 40-80 ms: about 8 to 16 attempts in 600 ms. */
    uint64_t n = tam_redis_get_stats(r)->connect_attempts;
    cr_assert(n >= 5 && n <= 25, "%llu connect attempts in 600 ms", (unsigned long long)n);
    cr_assert_eq(res.calls, 1);
    cr_assert_eq(res.status, TAM_EUNAVAIL);
    cr_assert_eq(st.connected + st.disconnected, 0);
    tam_redis_destroy(r);
    finish_loop(&loop);
}

Test(redis, tcp_address_and_refused_port)
{
    char port[16];
    (void)snprintf(port, sizeof(port), "%d", 20000 + (int)(getpid() % 20000));
    const char *const extra[] = {"--port", port, "--bind", "127.0.0.1", NULL};
    struct tu_redis rs = {.extra_args = extra};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char addr[64];
    (void)snprintf(addr, sizeof(addr), "redis://127.0.0.1:%s", port);
    struct states st = {0}, refused_st = {0};
    struct tam_redis *r = connected_client(&loop, addr, NULL, &st);
    struct tam_redis_opts o = {.backoff_min_ms = 10, .backoff_max_ms = 40};
    struct tam_redis *refused = client(&loop, "127.0.0.1:1", &o, &refused_st);
    struct result res = {0};
    cr_assert_eq(tam_redis_command(r, on_result, &res, "PING"), TAM_OK);
    RUN_FOR(&loop, 200);
    cr_assert(res.calls == 1 && res.status == TAM_OK);
    cr_assert_eq(refused_st.connected, 0);
    /* Detected at once (not after connect_timeout_ms): about 6 attempts in 200 ms. */
    cr_assert_gt(tam_redis_get_stats(refused)->connect_attempts, 3);
    tam_redis_destroy(r);
    tam_redis_destroy(refused);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, handshake_timeout_then_recovers)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    /* Stall the server without waiting for the reply. */
    redisContext *c = tu_redis_connect(&rs);
    cr_assert_eq(redisAppendCommand(c, "DEBUG SLEEP 0.6"), REDIS_OK);
    int done = 0;
    while (!done) {
        cr_assert_eq(redisBufferWrite(c, &done), REDIS_OK);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {
        .connect_timeout_ms = 100, .backoff_min_ms = 10, .backoff_max_ms = 40};
    struct tam_redis *r = client(&loop, rs.addr, &o, &st);
    RUN_FOR(&loop, 350);
    cr_assert_eq(st.connected, 0, "PING cannot be answered while the server sleeps");
    cr_assert_geq(tam_redis_get_stats(r)->connect_attempts, 2);
    RUN_UNTIL(&loop, st.connected == 1, 3000);
    cr_assert_eq(st.connected, 1);
    cr_assert_eq(st.disconnected, 0, "never ready before, so no DISCONNECTED either");
    tam_redis_destroy(r);
    finish_loop(&loop);
    redisFree(c);
    tu_redis_stop(&rs);
}

Test(redis, destroy_fails_every_pending_command_once)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis *r = connected_client(&loop, rs.addr, NULL, &st);
    struct tam_redis *down = client(&loop, "unix:/tmp/tam-no-such-dir/redis.sock", NULL, &st);

    enum { N = 50 };
    struct result res[N] = {{0}};
    struct result early[5] = {{0}};
    cr_assert_eq(tam_redis_command(r, on_result, &res[0], "DEBUG SLEEP 0.2"), TAM_OK);
    for (int i = 1; i < N; i++) {
        cr_assert_eq(tam_redis_command(r, on_result, &res[i], "SET k%d %d", i, i), TAM_OK);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(tam_redis_command(down, on_result, &early[i], "PING"), TAM_OK);
    }
    uv_run(&loop, UV_RUN_NOWAIT); /* flush the writes */
    tam_redis_destroy(r);
    tam_redis_destroy(down);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].calls, 1, "command %d: %d calls", i, res[i].calls);
        cr_assert_eq(res[i].status, TAM_EUNAVAIL);
    }
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(early[i].calls, 1);
        cr_assert_eq(early[i].status, TAM_EUNAVAIL);
    }
    finish_loop(&loop);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(res[i].calls, 1);
    }
    cr_assert_eq(st.disconnected, 0);
    tu_redis_stop(&rs);
}

struct reentrant {
    struct tam_redis *r;
    int calls[10];
    int statuses[10];
    int resubmit;
};

static void on_reentrant(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    int *slot = privdata;
    struct reentrant *ctx = tam_redis_data(r);
    size_t i = (size_t)(slot - ctx->calls);
    ctx->calls[i]++;
    ctx->statuses[i] = status;
    if (i == 0) {
        tam_redis_destroy(r); /* from inside a reply callback */
    }
    /* Callbacks fired during destroy may submit; that is refused without a callback. */
    ctx->resubmit = tam_redis_command(r, on_count, &ctx->calls[9], "PING");
}

Test(redis, destroy_from_inside_a_callback)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct reentrant ctx = {0};
    struct tam_redis *r = NULL;
    cr_assert_eq(tam_redis_create(&loop, rs.addr, NULL, NULL, &ctx, &r), TAM_OK);
    RUN_UNTIL(&loop, tam_redis_connected(r), 2000);
    cr_assert(tam_redis_connected(r));
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(tam_redis_command(r, on_reentrant, &ctx.calls[i], "PING"), TAM_OK);
    }
    finish_loop(&loop);
    cr_assert_eq(ctx.statuses[0], TAM_OK);
    for (int i = 0; i < 9; i++) {
        cr_assert_eq(ctx.calls[i], 1, "command %d: %d calls", i, ctx.calls[i]);
    }
    for (int i = 1; i < 9; i++) {
        cr_assert_eq(ctx.statuses[i], TAM_EUNAVAIL);
    }
    cr_assert_eq(ctx.resubmit, TAM_EUNAVAIL);
    cr_assert_eq(ctx.calls[9], 0);
    tu_redis_stop(&rs);
}

Test(redis, max_inflight_fails_fast)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states st = {0};
    struct tam_redis_opts o = {.max_inflight = 4};
    struct tam_redis *r = connected_client(&loop, rs.addr, &o, &st);
    struct result res[10] = {{0}};
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(tam_redis_command(r, on_result, &res[i], "PING"), TAM_OK);
    }
    RUN_UNTIL(&loop, res[3].calls == 1 && res[9].calls == 1, 1000);
    int ok = 0, unavail = 0;
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(res[i].calls, 1);
        ok += res[i].status == TAM_OK;
        unavail += res[i].status == TAM_EUNAVAIL;
    }
    cr_assert_eq(ok, 4);
    cr_assert_eq(unavail, 6);
    cr_assert_eq(tam_redis_get_stats(r)->unavailable, 6);
    tam_redis_destroy(r);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, auth_handshake)
{
    static const char *const extra[] = {"--requirepass", "s3cret", NULL};
    struct tu_redis rs = {.extra_args = extra};
    tu_redis_start(&rs);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct states good_st = {0}, bad_st = {0}, none_st = {0};
    struct tam_redis_opts good = {.password = "s3cret"};
    struct tam_redis_opts bad = {.password = "wrong", .backoff_min_ms = 20};
    struct tam_redis *g = connected_client(&loop, rs.addr, &good, &good_st);
    struct tam_redis *b = client(&loop, rs.addr, &bad, &bad_st);
    struct tam_redis *n = client(&loop, rs.addr, NULL, &none_st);
    RUN_FOR(&loop, 300);
    cr_assert_eq(bad_st.connected, 0, "a failed AUTH is not ready");
    cr_assert_eq(none_st.connected, 0, "-NOAUTH on PING is not ready");
    cr_assert_gt(tam_redis_get_stats(b)->connect_attempts, 1);
    struct result res = {0};
    cr_assert_eq(tam_redis_command(g, on_result, &res, "SET %s %s", "a", "b"), TAM_OK);
    RUN_UNTIL(&loop, res.calls == 1, 1000);
    cr_assert_eq(res.status, TAM_OK);
    tam_redis_destroy(g);
    tam_redis_destroy(b);
    tam_redis_destroy(n);
    finish_loop(&loop);
    tu_redis_stop(&rs);
}

Test(redis, sync_connect)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs);
    redisContext *c = NULL;
    cr_assert_eq(tam_redis_sync_connect(rs.addr, 1000, &c), TAM_OK);
    redisReply *reply = redisCommand(c, "SET %s %s", "sync", "yes");
    cr_assert(reply != NULL && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(c);
    reply = tu_redis_cmd(&rs, "GET %s", "sync");
    cr_assert_str_eq(reply->str, "yes");
    freeReplyObject(reply);
    cr_assert_eq(tam_redis_sync_connect("bad address", 100, &c), TAM_EINVAL);
    cr_assert_eq(tam_redis_sync_connect("unix:/tmp/tam-no-such-dir/r.sock", 100, &c), TAM_EUNAVAIL);
    cr_assert_null(c);
    tu_redis_stop(&rs);
}

Test(redis, create_rejects_bad_input)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct tam_redis *r = NULL;
    cr_assert_eq(tam_redis_create(&loop, "bad address", NULL, NULL, NULL, &r), TAM_EINVAL);
    struct tam_redis_opts o = {.backoff_min_ms = 100, .backoff_max_ms = 10};
    cr_assert_eq(tam_redis_create(&loop, "unix:/x", &o, NULL, NULL, &r), TAM_EINVAL);
    cr_assert_null(r);
    tam_redis_destroy(NULL);
    finish_loop(&loop);
}

Test(redis, fixture_aof_restart_keeps_data)
{
    struct tu_redis rs = {.aof = true};
    tu_redis_start(&rs);
    redisReply *reply = tu_redis_cmd(&rs, "SET %s %s", "durable", "1");
    freeReplyObject(reply);
    tu_redis_restart(&rs);
    reply = tu_redis_cmd(&rs, "GET %s", "durable");
    cr_assert(reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "1") == 0);
    freeReplyObject(reply);
    char dir[sizeof(rs.dir)];
    memcpy(dir, rs.dir, sizeof(dir));
    tu_redis_stop(&rs);
    struct stat sb;
    cr_assert_neq(stat(dir, &sb), 0, "the fixture removes its directory");
}

/* ---- Supervisor ---- */

struct sup {
    int starting, ready, down, failed, stopped;
};

static void on_sup_state(struct tam_redis_server *s, enum tam_redis_server_state st, void *data)
{
    struct sup *c = data;
    switch (st) {
    case TAM_REDIS_SERVER_STARTING:
        c->starting++;
        break;
    case TAM_REDIS_SERVER_READY:
        c->ready++;
        break;
    case TAM_REDIS_SERVER_DOWN:
        c->down++;
        break;
    case TAM_REDIS_SERVER_FAILED:
        c->failed++;
        break;
    }
}

static void on_sup_stopped(void *data)
{
    ((struct sup *)data)->stopped++;
}

/* Size of the newest incremental AOF file in dir/appendonlydir (Redis 7 multi-part AOF). */
static long long aof_size(const char *dir)
{
    char path[300];
    (void)snprintf(path, sizeof(path), "%s/appendonlydir", dir);
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    long long size = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".incr.aof") != NULL) {
            char f[600];
            struct stat sb;
            (void)snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
            if (stat(f, &sb) == 0) {
                size = (long long)sb.st_size;
            }
        }
    }
    closedir(d);
    return size;
}

static void make_dir(char *dir, size_t n)
{
    (void)snprintf(dir, n, "/tmp/tam-sup-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    /* The fixture's remover: stop() of an already stopped fixture only removes the tree. */
    struct tu_redis rs = {0};
    (void)snprintf(rs.dir, sizeof(rs.dir), "%s", dir);
    tu_redis_stop(&rs);
}

static void sync_cmd(const char *addr, const char *cmd, const char *arg1, const char *arg2,
                     char *out, size_t outsz)
{
    redisContext *c = NULL;
    cr_assert_eq(tam_redis_sync_connect(addr, 1000, &c), TAM_OK);
    redisReply *reply = arg2 != NULL ? redisCommand(c, "%s %s %s", cmd, arg1, arg2)
                                     : redisCommand(c, "%s %s", cmd, arg1);
    cr_assert_not_null(reply);
    (void)snprintf(out, outsz, "%s", reply->str != NULL ? reply->str : "");
    freeReplyObject(reply);
    redisFree(c);
}

Test(redis_server, supervises_restarts_and_keeps_aof_data)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sup c = {0};
    struct tam_redis_server_opts o = {.restart_backoff_min_ms = 50, .restart_backoff_max_ms = 200};
    struct tam_redis_server *s = NULL;
    cr_assert_eq(tam_redis_server_create(&loop, dir, &o, on_sup_state, &c, &s), TAM_OK);
    RUN_UNTIL(&loop, c.ready == 1, 5000);
    cr_assert_eq(c.ready, 1);
    cr_assert_eq(tam_redis_server_state(s), TAM_REDIS_SERVER_READY);
    char sock[128];
    (void)snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    cr_assert_str_eq(tam_redis_server_socket(s), sock);
    struct stat sb;
    cr_assert_eq(stat(sock, &sb), 0);
    cr_assert(S_ISSOCK(sb.st_mode));
    cr_assert_eq(sb.st_mode & 0777, 0700);

    /* A client follows the server through the crash. */
    struct states st = {0};
    struct tam_redis_opts co = {.backoff_min_ms = 10, .backoff_max_ms = 100};
    struct tam_redis *r = connected_client(&loop, tam_redis_server_address(s), &co, &st);

    char out[64];
    sync_cmd(tam_redis_server_address(s), "SET", "tam:durable", "42", out, sizeof(out));
    cr_assert_str_eq(out, "OK");
    cr_assert_gt(aof_size(dir), 0, "AOF written after a write");

    int pid1 = tam_redis_server_pid(s);
    cr_assert_gt(pid1, 0);
    cr_assert_eq(kill(pid1, SIGKILL), 0);
    RUN_UNTIL(&loop, c.ready == 2, 5000);
    cr_assert_eq(c.down, 1);
    cr_assert_eq(c.ready, 2);
    cr_assert_eq(tam_redis_server_restarts(s), 1);
    int pid2 = tam_redis_server_pid(s);
    cr_assert(pid2 > 0 && pid2 != pid1);
    sync_cmd(tam_redis_server_address(s), "GET", "tam:durable", NULL, out, sizeof(out));
    cr_assert_str_eq(out, "42", "data survived kill -9 through the AOF");

    RUN_UNTIL(&loop, st.connected == 2, 3000);
    cr_assert_eq(st.disconnected, 1);
    cr_assert_eq(st.connected, 2);
    tam_redis_destroy(r);

    tam_redis_server_stop(s, on_sup_stopped, &c);
    RUN_UNTIL(&loop, c.stopped == 1, 6000);
    cr_assert_eq(c.stopped, 1);
    cr_assert_eq(kill(pid2, 0), -1, "child %d still exists", pid2);
    cr_assert_eq(errno, ESRCH);
    finish_loop(&loop);
    remove_dir(dir);
}

Test(redis_server, gives_up_after_restart_budget)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sup c = {0};
    static const char *const extra[] = {"--no-such-directive", "x", NULL};
    struct tam_redis_server_opts o = {.extra_args = extra,
                                      .restart_backoff_min_ms = 10,
                                      .restart_backoff_max_ms = 20,
                                      .max_restarts_per_min = 2};
    struct tam_redis_server *s = NULL;
    cr_assert_eq(tam_redis_server_create(&loop, dir, &o, on_sup_state, &c, &s), TAM_OK);
    RUN_UNTIL(&loop, c.failed == 1, 5000);
    cr_assert_eq(c.failed, 1);
    cr_assert_eq(c.ready, 0);
    cr_assert_eq(c.starting, 3, "first start and two restarts");
    cr_assert_eq(tam_redis_server_restarts(s), 2);
    cr_assert_eq(tam_redis_server_pid(s), 0);
    RUN_FOR(&loop, 100);
    cr_assert_eq(c.starting, 3, "stays down");
    tam_redis_server_stop(s, on_sup_stopped, &c);
    finish_loop(&loop);
    cr_assert_eq(c.stopped, 1);
    remove_dir(dir);
}

Test(redis_server, stop_while_starting_and_bad_input)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct tam_redis_server *s = NULL;
    struct tam_redis_server_opts missing = {.exe = "/nonexistent/redis-server"};
    cr_assert_eq(tam_redis_server_create(&loop, dir, &missing, NULL, NULL, &s), UV_ENOENT);
    cr_assert_eq(tam_redis_server_create(&loop, "/tmp/tam-no-such-dir", NULL, NULL, NULL, &s),
                 TAM_ERRNO(ENOENT));
    struct sup c = {0};
    cr_assert_eq(tam_redis_server_create(&loop, dir, NULL, on_sup_state, &c, &s), TAM_OK);
    int pid = tam_redis_server_pid(s);
    cr_assert_gt(pid, 0);
    tam_redis_server_stop(s, on_sup_stopped, &c); /* before it is even ready */
    finish_loop(&loop);
    cr_assert_eq(c.stopped, 1);
    cr_assert_eq(kill(pid, 0), -1);
    remove_dir(dir);
}

Test(redis_server, refuses_a_directory_with_a_live_server)
{
    struct tu_redis rs = {0};
    tu_redis_start(&rs); /* its socket is DIR/redis.sock too */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct tam_redis_server *s = NULL;
    cr_assert_eq(tam_redis_server_create(&loop, rs.dir, NULL, NULL, NULL, &s), TAM_EEXISTS);
    cr_assert_null(s);
    finish_loop(&loop);
    redisReply *reply = tu_redis_cmd(&rs, "PING");
    cr_assert_str_eq(reply->str, "PONG", "the live server was left alone");
    freeReplyObject(reply);
    tu_redis_stop(&rs);
}
