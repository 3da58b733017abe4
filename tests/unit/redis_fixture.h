/*
 * A private redis-server for unit tests: fork/exec plus hiredis's blocking API, no libuv, so
 * any test module can use it. The server listens only on DIR/redis.sock (port 0) in a fresh
 * mkdtemp directory, with DEBUG allowed for local clients (DEBUG SLEEP for timeout tests).
 *
 *     struct tu_redis rs = {.aof = true};    // zero-initialise; set options first
 *     tu_redis_start(&rs);                    // rs.addr is "unix:/tmp/tu-redis-XXXXXX/redis.sock"
 *     ... tam_redis_create(loop, rs.addr, ...) or tu_redis_connect(&rs) ...
 *     tu_redis_stop(&rs);                     // kills it and removes the directory
 *
 * Every function asserts (Criterion) on failure. The child gets PR_SET_PDEATHSIG(SIGKILL), so a
 * crashing test does not leave a server behind.
 */
#ifndef TAM_REDIS_FIXTURE_H
#define TAM_REDIS_FIXTURE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <sys/types.h>

struct tu_redis {
    char dir[128];                 /* the data directory; kept across kill/start */
    char sock[160];                /* dir/redis.sock */
    char addr[176];                /* "unix:" + sock, for tam_redis_create() */
    pid_t pid;                     /* running server, or 0 */
    bool aof;                      /* option: --appendonly yes --appendfsync everysec */
    const char *const *extra_args; /* option: NULL-terminated, appended to the command line */
};

/*
 * Starts redis-server and waits (at most 5 s) until it answers PING. Uses r->dir when it is
 * already set (a restart on the same data), otherwise creates a fresh directory.
 */
void tu_redis_start(struct tu_redis *r);
/* Sends sig (SIGKILL, SIGTERM...) and waits for the exit; keeps the directory. No-op if down. */
void tu_redis_kill(struct tu_redis *r, int sig);
/* Clean shutdown (SIGTERM: the AOF is flushed) and start again on the same directory. */
void tu_redis_restart(struct tu_redis *r);
/* Kills the server (if running) and removes the directory. Safe to call twice. */
void tu_redis_stop(struct tu_redis *r);
/* A blocking hiredis connection (1 s timeouts); caller frees with redisFree(). */
redisContext *tu_redis_connect(const struct tu_redis *r);
/* One blocking command on a fresh connection; caller frees with freeReplyObject(). */
redisReply *tu_redis_cmd(const struct tu_redis *r, const char *fmt, ...);

#endif
