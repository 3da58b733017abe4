/*
 * Redis client layer: one async connection over hiredis 0.14 on a libuv loop (DEPS.md section 5).
 *
 * hiredis 0.14 has no async timeouts, no TLS and no RESP3, so this layer adds what the gateway
 * and the workers need on top of it:
 *   - a uv_timer watchdog per client (command deadlines and the connect deadline);
 *   - reconnect with exponential backoff and jitter, forever, until destroyed;
 *   - fail-fast while disconnected: no unbounded queue, commands fail with TAM_EUNAVAIL;
 *   - a bounded pipeline (max in-flight commands);
 *   - a latency histogram with fixed buckets for /metrics;
 *   - a connected/disconnected state callback for /readyz;
 *   - its own hiredis<->libuv glue (src/redis/uv_adapter.c): the stock adapters/libuv.h of
 *     0.14 drops uv_poll errors, so a refused TCP connect would surface only at the timeout.
 *
 * Addresses (tam_redis_addr_parse):
 *   "unix:/run/redis.sock"  "unix:///run/redis.sock"  "/run/redis.sock"  "./redis.sock"
 *                                        -> Unix socket (path < 108 bytes)
 *   "redis://127.0.0.1:6379"  "redis://localhost"  "127.0.0.1:6390"  "[::1]:6379"  "localhost"
 *                                        -> TCP (port defaults to 6379)
 * Nothing else is accepted (no user/password/db in the URL, no "rediss://": 0.14 has no TLS).
 * hiredis resolves host names with a blocking getaddrinfo(), so prefer IP literals.
 *
 * Connection lifecycle. tam_redis_create() starts connecting at once. A connection counts as
 * CONNECTED only after the handshake ([AUTH password] and PING) succeeded, so a Redis that is
 * still loading its AOF (-LOADING) is not "ready". on_state fires on every transition
 * DISCONNECTED -> CONNECTED and CONNECTED -> DISCONNECTED (not for each failed attempt).
 *
 * Command timeouts. Replies on a connection are strictly ordered, so a reply that does not
 * arrive blocks every reply queued behind it. By default (keep_on_timeout = false) a command
 * that passes its deadline therefore fails with TAM_ETIMEOUT, the connection is dropped, every
 * other pending command fails with TAM_EUNAVAIL, and the client reconnects with backoff; the
 * late reply can never be delivered because its connection is gone. With keep_on_timeout = true
 * the connection stays up, the timed-out callback fires at the deadline, and the late reply is
 * read and discarded when it comes.
 *
 * Blocking commands (XREADGROUP ... BLOCK, BLPOP, BLMOVE) must use a SECOND tam_redis: a
 * blocked command stalls every command behind it on its connection. Give that client a
 * command timeout larger than the BLOCK time (or pass one per command with the *_timeout
 * variants, e.g. BLOCK 5000 with timeout 7000), and keep at most one blocking command in
 * flight on it. Pub/sub (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, UNSUBSCRIBE...) and MONITOR are
 * rejected with TAM_EINVAL: their callbacks would fire more than once.
 *
 * Threading: a client belongs to one loop and one thread. All callbacks run on that loop.
 */
#ifndef TAM_REDIS_H
#define TAM_REDIS_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tam/common.h"

/* ---- Addresses (pure) ---- */

enum tam_redis_addr_kind {
    TAM_REDIS_ADDR_TCP = 1,
    TAM_REDIS_ADDR_UNIX = 2,
};

#define TAM_REDIS_DEFAULT_PORT 6379
#define TAM_REDIS_PATH_MAX     108 /* sizeof(sockaddr_un.sun_path), NUL included */
#define TAM_REDIS_HOST_MAX     256

struct tam_redis_addr {
    enum tam_redis_addr_kind kind;
    uint16_t port;                 /* TCP only */
    char host[TAM_REDIS_HOST_MAX]; /* TCP only: name or IP literal, without [] */
    char path[TAM_REDIS_PATH_MAX]; /* Unix only */
};

/* Parses s (grammar above) into *out. TAM_EINVAL for anything else, TAM_ETOOBIG if too long. */
int tam_redis_addr_parse(const char *s, struct tam_redis_addr *out) TAM_MUST_CHECK;
/* Formats a as "unix:PATH", "HOST:PORT" or "[V6]:PORT" into out (truncated); returns out. */
const char *tam_redis_addr_format(const struct tam_redis_addr *a, char *out, size_t outsz);

/* ---- Latency histogram (pure) ---- */

/* Prometheus buckets in seconds: 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 +Inf. */
#define TAM_REDIS_LATENCY_BUCKETS 12
extern const double tam_redis_latency_le[TAM_REDIS_LATENCY_BUCKETS]; /* last is +INFINITY */

/*
 * Counters of one client. bucket[] is CUMULATIVE, like Prometheus: bucket[i] counts replies
 * whose latency (submit to reply, uv_hrtime) was <= tam_redis_latency_le[i];
 * bucket[TAM_REDIS_LATENCY_BUCKETS - 1] == count. Only commands that got a reply (including
 * error replies) are observed; timeouts and TAM_EUNAVAIL failures are counted apart.
 */
struct tam_redis_stats {
    uint64_t bucket[TAM_REDIS_LATENCY_BUCKETS];
    uint64_t count;
    double sum_seconds;
    uint64_t errors;           /* TAM_EREDIS replies */
    uint64_t timeouts;         /* TAM_ETIMEOUT completions */
    uint64_t unavailable;      /* TAM_EUNAVAIL completions (disconnected, overloaded, dropped) */
    uint64_t connect_attempts; /* every connect(), first one included */
    uint64_t connects;         /* handshakes that succeeded */
    uint64_t disconnects;      /* CONNECTED -> DISCONNECTED transitions */
};

void tam_redis_stats_observe(struct tam_redis_stats *s, uint64_t latency_ns);
/* dst += src, e.g. to render the command and the blocking client as one histogram. */
void tam_redis_stats_add(struct tam_redis_stats *dst, const struct tam_redis_stats *src);

/*
 * Reconnect delay for the attempt-th consecutive failure (0-based): d = min(max, min * 2^attempt),
 * result in [d/2, d] chosen by rnd ("equal jitter"). Pure; exposed for tests.
 */
uint32_t tam_redis_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint32_t rnd);

/* ---- Async client ---- */

struct tam_redis;

enum tam_redis_state {
    TAM_REDIS_DISCONNECTED = 0,
    TAM_REDIS_CONNECTED = 1,
};

/* Every field may be 0/NULL/false, which selects the default shown. */
struct tam_redis_opts {
    uint32_t command_timeout_ms; /* 2000: default deadline per command */
    uint32_t connect_timeout_ms; /* 2000: connect plus handshake */
    uint32_t backoff_min_ms;     /* 50: first reconnect delay (jittered down to half) */
    uint32_t backoff_max_ms;     /* 5000: reconnect delay ceiling */
    uint32_t max_inflight;       /* 4096: commands owned by hiredis; beyond it TAM_EUNAVAIL */
    bool keep_on_timeout;        /* false: a command timeout drops the connection (see above) */
    const char *password;        /* NULL: no AUTH. Copied. Never logged. */
    const char *name;            /* "redis": label in log lines. Copied. */
};

/*
 * Fires on each CONNECTED/DISCONNECTED transition. err is TAM_OK on CONNECTED; on DISCONNECTED
 * it is the reason (TAM_EUNAVAIL: connection lost; TAM_ETIMEOUT: a command timed out). May call
 * any tam_redis function, tam_redis_destroy() included.
 */
typedef void (*tam_redis_state_fn)(struct tam_redis *r, enum tam_redis_state state, int err,
                                   void *data);

/*
 * Completion of one command; fires exactly once per accepted command, never from inside the
 * tam_redis_command*() call that submitted it.
 *   TAM_OK       reply != NULL, reply->type != REDIS_REPLY_ERROR (nested errors inside an
 *                EXEC array are still TAM_OK)
 *   TAM_EREDIS   reply != NULL, reply->type == REDIS_REPLY_ERROR (read reply->str)
 *   TAM_ETIMEOUT reply == NULL: the deadline passed first
 *   TAM_EUNAVAIL reply == NULL: not connected, too many in flight, connection lost, or the
 *                client was destroyed
 * reply is borrowed: hiredis frees it when the callback returns. The callback may submit
 * commands and may destroy the client.
 */
typedef void (*tam_redis_reply_fn)(struct tam_redis *r, int status, const redisReply *reply,
                                   void *privdata);

/*
 * Creates a client on loop for addr and starts connecting. opts may be NULL; on_state may be
 * NULL. Returns TAM_OK, TAM_EINVAL (bad address or option), TAM_ENOMEM. An unreachable server
 * is not an error: the client keeps retrying with backoff.
 */
int tam_redis_create(uv_loop_t *loop, const char *addr, const struct tam_redis_opts *opts,
                     tam_redis_state_fn on_state, void *data,
                     struct tam_redis **out) TAM_MUST_CHECK;

/*
 * Closes the connection and releases everything; NULL is fine. Every pending command fails
 * with TAM_EUNAVAIL (its callback fires) before this returns, or, when called from inside a
 * reply callback of this client, right after that callback returns. on_state does not fire.
 * The memory is released by the loop once the client's handles are closed, so run the loop
 * (uv_run) afterwards; then uv_loop_close() succeeds. r must not be used after this returns,
 * except that callbacks firing during destroy may call tam_redis_command*(), which then
 * return TAM_EUNAVAIL without firing.
 */
void tam_redis_destroy(struct tam_redis *r);

bool tam_redis_connected(const struct tam_redis *r);
void *tam_redis_data(const struct tam_redis *r);
/* Borrowed; counters of this client since creation. */
const struct tam_redis_stats *tam_redis_get_stats(const struct tam_redis *r);

/*
 * Submits a command formatted like redisCommand() (%s, %b binary-safe with a length, %d ...).
 * Returns TAM_OK when accepted: cb then fires exactly once, later. Returns TAM_EINVAL (NULL
 * cb, bad format, pub/sub or MONITOR), TAM_ENOMEM, or TAM_EUNAVAIL once destroy has started;
 * in those cases cb never fires. Not being connected is reported through cb (TAM_EUNAVAIL),
 * on the next loop iteration.
 */
int tam_redis_command(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, const char *fmt,
                      ...) TAM_MUST_CHECK;
int tam_redis_vcommand(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, const char *fmt,
                       va_list ap) TAM_MUST_CHECK;
/* Same, with a per-command deadline; timeout_ms == 0 selects opts.command_timeout_ms. */
int tam_redis_command_timeout(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb,
                              void *privdata, const char *fmt, ...) TAM_MUST_CHECK;

/* Binary-safe argv form: argc >= 1 arguments of argvlen[i] bytes each (NUL bytes allowed). */
int tam_redis_command_argv(struct tam_redis *r, tam_redis_reply_fn cb, void *privdata, int argc,
                           const char **argv, const size_t *argvlen) TAM_MUST_CHECK;
int tam_redis_command_argv_timeout(struct tam_redis *r, uint32_t timeout_ms, tam_redis_reply_fn cb,
                                   void *privdata, int argc, const char **argv,
                                   const size_t *argvlen) TAM_MUST_CHECK;

/* ---- Synchronous helper (no loop; for tools, workers' setup and tests) ---- */

/*
 * Connects with hiredis's blocking API, with timeout_ms (0: 2000) as both the connect and the
 * per-command socket timeout, and checks PING. On success *out is a context the caller frees
 * with redisFree(). Returns TAM_EINVAL (bad address), TAM_EUNAVAIL (cannot connect or PING
 * failed), TAM_ENOMEM.
 */
int tam_redis_sync_connect(const char *addr, uint32_t timeout_ms,
                           redisContext **out) TAM_MUST_CHECK;

#endif
