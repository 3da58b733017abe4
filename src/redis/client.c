/*
 * Async Redis client: hiredis 0.14 async API on libuv (uv_adapter.c), plus what 0.14 lacks
 * (timeouts, reconnect, fail-fast, bounded pipeline). Contract in include/tam/redis.h.
 *
 * Ownership of a command record (struct cmd): once hiredis accepted it, hiredis owns it and
 * hands it back exactly once through on_reply (with the reply, or with NULL when the context
 * is freed); on_reply is the only place such a record is freed. A record that failed before
 * reaching hiredis sits in r->deferred and is completed and freed from the idle callback (or by
 * destroy). `done` marks a record whose user callback already fired (timeout while keeping the
 * connection) so that the late reply is swallowed.
 *
 * Re-entrancy: user callbacks may submit commands or destroy the client at any point. hiredis
 * 0.14 defers redisAsyncFree() issued inside a reply callback until that callback returns, and
 * every pending record is then handed back; the struct tam_redis itself is only freed from the
 * close callbacks of its uv handles, i.e. after hiredis has let go of everything.
 */
#include <fcntl.h>
#include <hiredis/async.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/redis.h"
#include "tam/resp.h"

#define DEF_COMMAND_TIMEOUT_MS 2000u
#define DEF_CONNECT_TIMEOUT_MS 2000u
#define DEF_BACKOFF_MIN_MS     50u
#define DEF_BACKOFF_MAX_MS     5000u
#define DEF_MAX_INFLIGHT       4096u
#define MAX_TIMEOUT_MS         (24u * 3600u * 1000u)
#define MAX_INFLIGHT_LIMIT     (1u << 20)
#define SCRATCH_MAX            (512u << 20) /* one command: far above any body we accept */
#define SCRATCH_KEEP           (64u << 10)  /* kept between commands */

enum phase {
    PH_BACKOFF,    /* waiting for the retry timer */
    PH_CONNECTING, /* connect() in progress */
    PH_HANDSHAKE,  /* connected, [AUTH] PING pending */
    PH_READY,      /* commands accepted */
    PH_CLOSED,     /* destroy() called */
};

struct cmd;

struct cmd_list {
    struct cmd *head;
    struct cmd *tail;
    size_t size;
};

struct cmd {
    struct cmd *prev;
    struct cmd *next;
    struct cmd_list *list; /* the list holding this record, or NULL */
    struct tam_redis *r;
    tam_redis_reply_fn cb;
    void *privdata;
    uint64_t start_ns; /* uv_hrtime() at submission, for the histogram */
    uint64_t deadline; /* loop time (ms) */
    int status;        /* preset outcome; 0 = derive from the reply */
    bool done;         /* the user callback already fired */
    bool internal;     /* handshake command: not counted in stats */
};

struct tam_redis {
    uv_loop_t *loop;
    struct tam_redis_addr addr;
    char addr_str[TAM_REDIS_HOST_MAX + 16];
    struct tam_redis_opts opts; /* password and name point at the owned copies below */
    char *password;
    char *name;
    tam_redis_state_fn on_state;
    void *data;
    redisAsyncContext *ac; /* NULL unless CONNECTING, HANDSHAKE or READY */
    enum phase phase;
    uv_timer_t watchdog;   /* earliest command deadline, or the connect deadline */
    uint64_t watchdog_due; /* 0 = not armed */
    uv_timer_t retry;
    uv_idle_t defer;
    unsigned open_handles;
    struct cmd_list inflight; /* submitted, callback not fired, in hiredis order */
    struct cmd_list expired;  /* transient: timed out, callback about to fire */
    struct cmd_list deferred; /* never reached hiredis; completed from on_defer */
    uint32_t owned;           /* records hiredis owns (pipeline depth) */
    uint32_t attempt;         /* consecutive failed connects (saturates; drives the backoff) */
    uint64_t failures;        /* consecutive failed connects (for log levels) */
    uint64_t rng;
    bool closing;
    struct tam_redis_stats stats;
    struct tam_buf scratch; /* the command being submitted, RESP-encoded (tam/resp.h) */
};

static const char handshake_ping[] = "PING";
static const char handshake_auth[] = "AUTH";

/* ---- Intrusive list ---- */

static void list_append(struct cmd_list *l, struct cmd *c)
{
    c->list = l;
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = c;
    } else {
        l->head = c;
    }
    l->tail = c;
    l->size++;
}

static void list_remove(struct cmd_list *l, struct cmd *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        l->tail = c->prev;
    }
    c->prev = NULL;
    c->next = NULL;
    c->list = NULL;
    l->size--;
}

static struct cmd *list_pop(struct cmd_list *l)
{
    struct cmd *c = l->head;
    if (c != NULL) {
        list_remove(l, c);
    }
    return c;
}

/* ---- Small helpers ---- */

static uint32_t next_random(struct tam_redis *r)
{
    /* xorshift64: jitter only, not security. */
    uint64_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return (uint32_t)(x >> 32);
}

static void notify(struct tam_redis *r, enum tam_redis_state state, int err)
{
    if (!r->closing && r->on_state != NULL) {
        r->on_state(r, state, err, r->data);
    }
}

/* Runs the user callback of c (not freeing it) and accounts for the outcome. */
static void fire(struct cmd *c, int status, const redisReply *reply)
{
    struct tam_redis *r = c->r;
    if (!c->internal) {
        switch (status) {
        case TAM_OK:
            tam_redis_stats_observe(&r->stats, uv_hrtime() - c->start_ns);
            break;
        case TAM_EREDIS:
            tam_redis_stats_observe(&r->stats, uv_hrtime() - c->start_ns);
            r->stats.errors++;
            break;
        case TAM_ETIMEOUT:
            r->stats.timeouts++;
            break;
        default:
            r->stats.unavailable++;
            break;
        }
    }
    c->cb(r, status, reply, c->privdata);
}

static void watchdog_stop(struct tam_redis *r)
{
    r->watchdog_due = 0;
    if (!r->closing) {
        uv_timer_stop(&r->watchdog);
    }
}

static void on_watchdog(uv_timer_t *t);

/* Arms the watchdog for `due` (loop time) unless it is already armed for an earlier time. */
static void watchdog_arm(struct tam_redis *r, uint64_t due)
{
    if (r->closing || (r->watchdog_due != 0 && r->watchdog_due <= due)) {
        return;
    }
    uint64_t now = uv_now(r->loop);
    r->watchdog_due = due;
    uv_timer_start(&r->watchdog, on_watchdog, due > now ? due - now : 0, 0);
}

/* ---- Deferred completions ---- */

static void on_defer(uv_idle_t *h)
{
    struct tam_redis *r = h->data;
    /* Only the records queued so far: a callback that resubmits goes to the next iteration. */
    size_t n = r->deferred.size;
    for (size_t i = 0; i < n; i++) {
        struct cmd *c = list_pop(&r->deferred);
        if (c == NULL) {
            break; /* destroy() ran inside a callback and completed the rest */
        }
        fire(c, c->status, NULL);
        tam_free(c);
    }
    if (!r->closing && r->deferred.size == 0) {
        uv_idle_stop(&r->defer);
    }
}

static void defer_fail(struct tam_redis *r, struct cmd *c, int status)
{
    c->status = status;
    list_append(&r->deferred, c);
    uv_idle_start(&r->defer, on_defer);
}

/* ---- Connection management ---- */

static void on_retry(uv_timer_t *t);

static void schedule_retry(struct tam_redis *r)
{
    uint32_t delay = tam_redis_backoff_ms(r->opts.backoff_min_ms, r->opts.backoff_max_ms,
                                          r->attempt, next_random(r));
    if (r->attempt < 31) {
        r->attempt++;
    }
    r->phase = PH_BACKOFF;
    uv_timer_start(&r->retry, on_retry, delay, 0);
    tam_log(TAM_LOG_DEBUG, "event=redis_retry name=%s addr=%s delay_ms=%u attempt=%u", r->name,
            r->addr_str, delay, r->attempt);
}

/* Common tail of every connection loss: reconnect later, then tell the owner. */
static void after_loss(struct tam_redis *r, bool was_ready, int reason)
{
    if (r->closing) {
        return;
    }
    schedule_retry(r);
    if (was_ready) {
        r->stats.disconnects++;
        tam_log(TAM_LOG_WARN, "event=redis_disconnected name=%s addr=%s reason=%s", r->name,
                r->addr_str, tam_errname(reason));
        notify(r, TAM_REDIS_DISCONNECTED, reason); /* may destroy r: nothing after this */
    }
}

/* Drops the current connection (if any); pending commands fail through hiredis. */
static void drop_connection(struct tam_redis *r, int reason)
{
    bool was_ready = r->phase == PH_READY;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->phase = PH_BACKOFF;
    watchdog_stop(r);
    if (ac != NULL) {
        ac->data = NULL; /* our hiredis callbacks ignore a detached context */
        redisAsyncFree(ac);
    }
    after_loss(r, was_ready, reason);
}

static void connect_failed(struct tam_redis *r, const char *why)
{
    /* A failure or two is routine (a server still starting); a streak is worth a warning. */
    r->failures++;
    int level = r->failures == 3 || r->failures % 100 == 0 ? TAM_LOG_WARN : TAM_LOG_DEBUG;
    char msg[160];
    tam_log(level, "event=redis_connect_failed name=%s addr=%s failures=%llu error=%s", r->name,
            r->addr_str, (unsigned long long)r->failures,
            tam_log_quote(why, strlen(why), msg, sizeof(msg)));
    r->phase = PH_BACKOFF;
    watchdog_stop(r);
    schedule_retry(r);
}

static void became_ready(struct tam_redis *r)
{
    r->phase = PH_READY;
    r->attempt = 0;
    r->failures = 0;
    watchdog_stop(r);
    r->stats.connects++;
    tam_log(TAM_LOG_INFO, "event=redis_connected name=%s addr=%s", r->name, r->addr_str);
    notify(r, TAM_REDIS_CONNECTED, TAM_OK);
}

static void on_handshake(struct tam_redis *r, int status, const redisReply *reply, void *privdata)
{
    if (status == TAM_EUNAVAIL || r->phase != PH_HANDSHAKE) {
        return; /* the connection is going away; its own path reconnects */
    }
    if (status != TAM_OK) {
        char msg[160];
        const char *text = reply != NULL && reply->str != NULL ? reply->str : "";
        tam_log(TAM_LOG_WARN, "event=redis_handshake_failed name=%s addr=%s step=%s error=%s",
                r->name, r->addr_str, (const char *)privdata,
                tam_log_quote(text, strlen(text), msg, sizeof(msg)));
        drop_connection(r, TAM_EUNAVAIL);
        return;
    }
    if (privdata == handshake_ping) {
        became_ready(r);
    }
}

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata);

static bool send_internal(struct tam_redis *r, int argc, const char **argv, const char *step)
{
    struct cmd *c = tam_calloc(1, sizeof(*c));
    if (c == NULL) {
        return false;
    }
    c->r = r;
    c->cb = on_handshake;
    c->privdata = (void *)(uintptr_t)step;
    c->internal = true;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, NULL) != REDIS_OK) {
        tam_free(c);
        return false;
    }
    r->owned++;
    return true;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct tam_redis *r = ac->data;
    if (r == NULL) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis 0.14 frees the context itself right after this callback. */
        r->ac = NULL;
        connect_failed(r, ac->errstr);
        return;
    }
    r->phase = PH_HANDSHAKE;
    /* Failing to queue (out of memory) is left to the connect deadline: freeing the context
     * from inside this callback would be a use-after-free in hiredis. */
    if (r->password != NULL) {
        const char *auth[] = {handshake_auth, r->password};
        if (!send_internal(r, 2, auth, handshake_auth)) {
            return;
        }
    }
    const char *ping[] = {handshake_ping};
    (void)send_internal(r, 1, ping, handshake_ping);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct tam_redis *r = ac->data;
    if (r == NULL) {
        return;
    }
    /* hiredis is freeing ac and has already failed its pending callbacks. */
    bool was_ready = r->phase == PH_READY;
    r->ac = NULL;
    r->phase = PH_BACKOFF;
    watchdog_stop(r);
    if (!was_ready) {
        tam_log(TAM_LOG_DEBUG, "event=redis_handshake_lost name=%s addr=%s", r->name, r->addr_str);
    }
    after_loss(r, was_ready, TAM_EUNAVAIL);
}

static redisAsyncContext *open_context(const struct tam_redis_addr *a)
{
    if (a->kind == TAM_REDIS_ADDR_UNIX) {
        return redisAsyncConnectUnix(a->path);
    }
    return redisAsyncConnect(a->host, a->port);
}

static void connect_start(struct tam_redis *r)
{
    r->stats.connect_attempts++;
    r->phase = PH_CONNECTING;
    redisAsyncContext *ac = open_context(&r->addr);
    if (ac == NULL) {
        connect_failed(r, "out of memory");
        return;
    }
    if (ac->err != 0) {
        char why[128];
        (void)snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        connect_failed(r, why);
        return;
    }
    /* hiredis 0.14 does not set close-on-exec; a spawned redis-server must not inherit it. */
    (void)fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    if (tam_redis__uv_attach(ac, r->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        connect_failed(r, "cannot attach to the loop");
        return;
    }
    ac->data = r;
    r->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect); /* must follow the attach: it adds a write */
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    watchdog_arm(r, uv_now(r->loop) + r->opts.connect_timeout_ms);
}

static void on_retry(uv_timer_t *t)
{
    struct tam_redis *r = t->data;
    if (r->phase == PH_BACKOFF) {
        connect_start(r);
    }
}

/* ---- Replies and deadlines ---- */

static int reply_status(const redisReply *reply)
{
    if (reply == NULL) {
        return TAM_EUNAVAIL;
    }
    return reply->type == REDIS_REPLY_ERROR ? TAM_EREDIS : TAM_OK;
}

static void on_reply(redisAsyncContext *ac, void *reply_ptr, void *privdata)
{
    struct cmd *c = privdata;
    struct tam_redis *r = c->r;
    const redisReply *reply = reply_ptr;
    r->owned--;
    if (!c->done) {
        if (c->list != NULL) {
            list_remove(c->list, c);
        }
        int status = c->status != 0 ? c->status : reply_status(reply);
        fire(c, status, status == TAM_OK || status == TAM_EREDIS ? reply : NULL);
    }
    tam_free(c);
    if (r->phase == PH_READY && r->inflight.size == 0 && r->watchdog_due != 0) {
        watchdog_stop(r); /* nothing to watch: no wakeups on an idle connection */
    }
}

/* Moves every command past its deadline to r->expired; re-arms for the earliest other one. */
static void collect_expired(struct tam_redis *r)
{
    uint64_t now = uv_now(r->loop);
    uint64_t next = UINT64_MAX;
    struct cmd *c = r->inflight.head;
    while (c != NULL) {
        struct cmd *following = c->next;
        if (c->deadline <= now) {
            list_remove(&r->inflight, c);
            c->status = TAM_ETIMEOUT;
            list_append(&r->expired, c);
        } else if (c->deadline < next) {
            next = c->deadline;
        }
        c = following;
    }
    if (next != UINT64_MAX) {
        watchdog_arm(r, next);
    }
}

static void check_deadlines(struct tam_redis *r)
{
    collect_expired(r);
    if (r->expired.size == 0) {
        return;
    }
    tam_log(TAM_LOG_WARN, "event=redis_timeout name=%s addr=%s commands=%zu action=%s", r->name,
            r->addr_str, r->expired.size, r->opts.keep_on_timeout ? "keep" : "reconnect");
    if (!r->opts.keep_on_timeout) {
        /* hiredis hands every record back: the expired ones with their preset TAM_ETIMEOUT. */
        drop_connection(r, TAM_ETIMEOUT);
        return;
    }
    struct cmd *c;
    while ((c = list_pop(&r->expired)) != NULL) {
        c->done = true; /* hiredis still owns c; on_reply swallows the late reply */
        fire(c, TAM_ETIMEOUT, NULL);
    }
}

static void on_watchdog(uv_timer_t *t)
{
    struct tam_redis *r = t->data;
    r->watchdog_due = 0;
    switch (r->phase) {
    case PH_CONNECTING:
    case PH_HANDSHAKE:
        tam_log(TAM_LOG_WARN, "event=redis_connect_timeout name=%s addr=%s timeout_ms=%u", r->name,
                r->addr_str, r->opts.connect_timeout_ms);
        drop_connection(r, TAM_ETIMEOUT);
        break;
    case PH_READY:
        check_deadlines(r);
        break;
    default:
        break;
    }
}

/* ---- Submission ---- */

static bool is_push_name(const char *name, size_t len)
{
    static const char *const names[] = {
        "subscribe",    "psubscribe",   "ssubscribe", "unsubscribe",
        "punsubscribe", "sunsubscribe", "monitor",
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Reads the command name out of a formatted "*N\r\n$L\r\nNAME\r\n..." request. */
static bool is_push_formatted(const char *cmd, size_t len)
{
    const char *end = cmd + len;
    const char *p = memchr(cmd, '\n', len);
    if (p == NULL || p + 2 >= end || p[1] != '$') {
        return false;
    }
    size_t n = 0;
    for (p += 2; p < end && *p >= '0' && *p <= '9' && n < 64; p++) {
        n = n * 10 + (size_t)(*p - '0');
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || (size_t)(end - p - 2) < n) {
        return false;
    }
    return is_push_name(p + 2, n);
}

/* A large command's buffer is not kept: most commands are a few hundred bytes. */
static void release_scratch(struct tam_redis *r)
{
    if (r->scratch.cap > SCRATCH_KEEP) {
        tam_buf_finish(&r->scratch);
    }
}

static int submit(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb, void *privdata,
                  const char *cmd, size_t len)
{
    struct cmd *c = tam_calloc(1, sizeof(*c));
    if (c == NULL) {
        return TAM_ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->privdata = privdata;
    c->start_ns = uv_hrtime();
    c->deadline = uv_now(r->loop) + (timeout_ms != 0 ? timeout_ms : r->opts.command_timeout_ms);
    if (r->phase != PH_READY || r->ac == NULL || r->owned >= r->opts.max_inflight) {
        defer_fail(r, c, TAM_EUNAVAIL);
        return TAM_OK;
    }
    if (redisAsyncFormattedCommand(r->ac, on_reply, c, cmd, len) != REDIS_OK) {
        defer_fail(r, c, TAM_EUNAVAIL); /* the context is going away */
        return TAM_OK;
    }
    r->owned++;
    list_append(&r->inflight, c);
    watchdog_arm(r, c->deadline);
    return TAM_OK;
}

static int vcommand_timeout(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb,
                            void *privdata, const char *fmt, va_list ap)
{
    if (r == NULL || cb == NULL || fmt == NULL || timeout_ms > MAX_TIMEOUT_MS) {
        return TAM_EINVAL;
    }
    if (r->closing) {
        return TAM_EUNAVAIL;
    }
    tam_buf_reset(&r->scratch);
    int err = tam_resp_vcmdf(&r->scratch, fmt, ap);
    if (err == TAM_OK) {
        const char *cmd = (const char *)r->scratch.data;
        err = is_push_formatted(cmd, r->scratch.len)
                  ? TAM_EINVAL
                  : submit(r, timeout_ms, cb, privdata, cmd, r->scratch.len);
    }
    release_scratch(r);
    return err;
}

int tam_redis_vcommand(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, const char *fmt,
                       va_list ap)
{
    return vcommand_timeout(r, 0, cb, privdata, fmt, ap);
}

int tam_redis_command(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = vcommand_timeout(r, 0, cb, privdata, fmt, ap);
    va_end(ap);
    return err;
}

int tam_redis_command_timeout(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb,
                              void *privdata, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = vcommand_timeout(r, timeout_ms, cb, privdata, fmt, ap);
    va_end(ap);
    return err;
}

int tam_redis_command_argv_timeout(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb,
                                   void *privdata, int argc, const char **argv,
                                   const size_t *argvlen)
{
    if (r == NULL || cb == NULL || argc < 1 || argv == NULL || argv[0] == NULL ||
        timeout_ms > MAX_TIMEOUT_MS) {
        return TAM_EINVAL;
    }
    if (r->closing) {
        return TAM_EUNAVAIL;
    }
    size_t name_len = argvlen != NULL ? argvlen[0] : strlen(argv[0]);
    if (is_push_name(argv[0], name_len)) {
        return TAM_EINVAL;
    }
    tam_buf_reset(&r->scratch);
    int err = tam_resp_cargv(&r->scratch, (size_t)argc, argv, argvlen);
    if (err == TAM_OK) {
        err = submit(r, timeout_ms, cb, privdata, (const char *)r->scratch.data, r->scratch.len);
    }
    release_scratch(r);
    return err;
}

int tam_redis_command_argv(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, int argc,
                           const char **argv, const size_t *argvlen)
{
    return tam_redis_command_argv_timeout(r, 0, cb, privdata, argc, argv, argvlen);
}

/* ---- Lifecycle ---- */

static int check_opts(const struct tam_redis_opts *in, struct tam_redis_opts *o)
{
    *o = in != NULL ? *in : (struct tam_redis_opts){0};
    o->command_timeout_ms = o->command_timeout_ms ? o->command_timeout_ms : DEF_COMMAND_TIMEOUT_MS;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS;
    o->backoff_min_ms = o->backoff_min_ms ? o->backoff_min_ms : DEF_BACKOFF_MIN_MS;
    o->backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : DEF_BACKOFF_MAX_MS;
    o->max_inflight = o->max_inflight ? o->max_inflight : DEF_MAX_INFLIGHT;
    if (o->command_timeout_ms > MAX_TIMEOUT_MS || o->connect_timeout_ms > MAX_TIMEOUT_MS ||
        o->backoff_max_ms > MAX_TIMEOUT_MS || o->backoff_min_ms > o->backoff_max_ms ||
        o->max_inflight > MAX_INFLIGHT_LIMIT) {
        return TAM_EINVAL;
    }
    if (o->password != NULL && (o->password[0] == '\0' || strlen(o->password) > 4096)) {
        return TAM_EINVAL;
    }
    return TAM_OK;
}

static void free_client(struct tam_redis *r)
{
    if (r->password != NULL) {
        tam_memzero(r->password, strlen(r->password));
    }
    tam_free(r->password);
    tam_free(r->name);
    tam_buf_finish(&r->scratch);
    tam_free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tam_redis *r = h->data;
    if (--r->open_handles == 0) {
        free_client(r);
    }
}

/* Closes the handles init_handles() opened (in its order); frees r when none was opened. */
static void close_handles(struct tam_redis *r)
{
    unsigned n = r->open_handles;
    if (n == 0) {
        free_client(r);
        return;
    }
    uv_close((uv_handle_t *)&r->watchdog, on_handle_closed);
    if (n > 1) {
        uv_close((uv_handle_t *)&r->retry, on_handle_closed);
    }
    if (n > 2) {
        uv_close((uv_handle_t *)&r->defer, on_handle_closed);
    }
}

static int init_handles(struct tam_redis *r)
{
    int err = uv_timer_init(r->loop, &r->watchdog);
    if (err == 0) {
        r->watchdog.data = r;
        r->open_handles++;
        err = uv_timer_init(r->loop, &r->retry);
    }
    if (err == 0) {
        r->retry.data = r;
        r->open_handles++;
        err = uv_idle_init(r->loop, &r->defer);
    }
    if (err == 0) {
        r->defer.data = r;
        r->open_handles++;
    }
    return err;
}

static int copy_strings(struct tam_redis *r)
{
    const char *name = r->opts.name != NULL ? r->opts.name : "redis";
    r->name = tam_strndup(name, strnlen(name, 64)); /* copies exactly n bytes */
    if (r->name == NULL) {
        return TAM_ENOMEM;
    }
    if (r->opts.password != NULL) {
        r->password = tam_strdup(r->opts.password);
        if (r->password == NULL) {
            return TAM_ENOMEM;
        }
    }
    r->opts.name = r->name;
    r->opts.password = r->password;
    return TAM_OK;
}

int tam_redis_create(uv_loop_t *loop, const char *addr, const struct tam_redis_opts *opts,
                     tam_redis_state_fn on_state, void *data, struct tam_redis **out)
{
    struct tam_redis_opts o;
    struct tam_redis_addr a;
    if (out == NULL || loop == NULL) {
        return TAM_EINVAL;
    }
    *out = NULL;
    int err = check_opts(opts, &o);
    if (err != TAM_OK || tam_redis_addr_parse(addr, &a) != TAM_OK) {
        return TAM_EINVAL;
    }
    struct tam_redis *r = tam_calloc(1, sizeof(*r));
    if (r == NULL) {
        return TAM_ENOMEM;
    }
    r->loop = loop;
    r->addr = a;
    r->opts = o;
    r->on_state = on_state;
    r->data = data;
    r->rng = (uv_hrtime() ^ (uint64_t)(uintptr_t)r) | 1;
    tam_buf_init(&r->scratch, SCRATCH_MAX);
    tam_redis_addr_format(&a, r->addr_str, sizeof(r->addr_str));
    err = copy_strings(r);
    if (err == TAM_OK) {
        err = init_handles(r);
    }
    if (err != TAM_OK) {
        r->closing = true;
        close_handles(r);
        return err < 0 && err > TAM_ERR_FIRST_ ? TAM_ENOMEM : err;
    }
    connect_start(r);
    *out = r;
    return TAM_OK;
}

void tam_redis_destroy(struct tam_redis *r)
{
    if (r == NULL || r->closing) {
        return;
    }
    uv_timer_stop(&r->watchdog);
    r->watchdog_due = 0;
    r->closing = true;
    r->phase = PH_CLOSED;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    if (ac != NULL) {
        ac->data = NULL;
        redisAsyncFree(ac); /* fails every pending record through on_reply */
    }
    struct cmd *c;
    while ((c = list_pop(&r->deferred)) != NULL) {
        fire(c, c->status, NULL);
        tam_free(c);
    }
    close_handles(r);
}

bool tam_redis_connected(const struct tam_redis *r)
{
    return r != NULL && r->phase == PH_READY;
}

void *tam_redis_data(const struct tam_redis *r)
{
    return r != NULL ? r->data : NULL;
}

const struct tam_redis_stats *tam_redis_get_stats(const struct tam_redis *r)
{
    return &r->stats;
}
