/*
 * Private Redis supervisor: runs redis-server as a child of this process, listening ONLY on a
 * Unix socket in a data directory (what `tamd --data-dir DIR` uses when no Redis address is
 * configured).
 *
 * The child runs as
 *   redis-server --port 0 --unixsocket DIR/redis.sock --unixsocketperm 700 --dir DIR
 *       --appendonly yes --appendfsync everysec --save "" --daemonize no
 *       --pidfile DIR/redis.pid --logfile DIR/redis.log [extra args...]
 * found through PATH (Debian: /usr/bin/redis-server) unless opts.exe is given. It counts as
 * READY once it answers PING on the socket (checked with a tam_redis probe, so a server still
 * loading its AOF is not ready). If it dies it is restarted after a backoff, at most
 * max_restarts_per_min times in any 60 s window; past that the supervisor gives up (FAILED)
 * and stays so until stopped. Stopping sends SIGTERM (Redis then fsyncs the AOF and removes
 * its socket), then SIGKILL after stop_timeout_ms, and waits for the exit.
 *
 * uv_spawn cannot set a parent-death signal, so when util-linux's setpriv is in PATH (always
 * on Debian) the child is started as `setpriv --pdeathsig KILL -- redis-server ...` (same pid):
 * if this process dies, the kernel kills the child, and no orphan keeps the data directory.
 * Without setpriv an orphan may survive; the next start in the same DIR then finds it
 * answering on the socket and fails with TAM_EEXISTS rather than unlinking a live socket.
 * The child inherits our stderr (early config errors are printed there, before the logfile).
 */
#ifndef TAM_REDIS_SERVER_H
#define TAM_REDIS_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "tam/common.h"

struct tam_redis_server;

enum tam_redis_server_state {
    TAM_REDIS_SERVER_STARTING = 0, /* spawned, waiting for PING */
    TAM_REDIS_SERVER_READY = 1,    /* answers PING on the socket */
    TAM_REDIS_SERVER_DOWN = 2,     /* exited (or failed to start); restart scheduled */
    TAM_REDIS_SERVER_FAILED = 3,   /* restart budget exhausted; stays down */
};

/* Every field may be 0/NULL/false, which selects the default shown. */
struct tam_redis_server_opts {
    const char *exe;                 /* "redis-server", looked up in PATH */
    const char *const *extra_args;   /* NULL-terminated, appended after ours; copied */
    bool appendonly_off;             /* false: --appendonly yes */
    uint32_t start_timeout_ms;       /* 10000: spawn to PING; then SIGKILL and count a restart */
    uint32_t stop_timeout_ms;        /* 5000: SIGTERM to SIGKILL */
    uint32_t restart_backoff_min_ms; /* 200 */
    uint32_t restart_backoff_max_ms; /* 5000 */
    uint32_t max_restarts_per_min;   /* 5 (at most 64) */
};

/* Fires on each state change. May call tam_redis_server_stop(). */
typedef void (*tam_redis_server_state_fn)(struct tam_redis_server *s,
                                          enum tam_redis_server_state state, void *data);
/* Fires once after stop: the child is gone and the supervisor's memory is about to be freed. */
typedef void (*tam_redis_server_stopped_fn)(void *data);

/*
 * Spawns redis-server in dir (an existing directory; path short enough that dir/redis.sock
 * fits in a sockaddr_un) and returns at once; on_state reports STARTING/READY/... . opts and
 * on_state may be NULL. Returns TAM_EINVAL (bad dir or option), TAM_EEXISTS (a Redis already
 * answers on dir/redis.sock), TAM_ENOMEM, or a libuv error from the first spawn (UV_ENOENT:
 * redis-server not found).
 */
int tam_redis_server_create(uv_loop_t *loop, const char *dir,
                            const struct tam_redis_server_opts *opts,
                            tam_redis_server_state_fn on_state, void *data,
                            struct tam_redis_server **out) TAM_MUST_CHECK;

/*
 * Stops the child (SIGTERM, SIGKILL after stop_timeout_ms), waits for it, closes every handle
 * and frees s; NULL is fine. on_stopped (may be NULL) fires when all that is done. on_state
 * does not fire any more. Run the loop until it returns; s must not be used after this call.
 */
void tam_redis_server_stop(struct tam_redis_server *s, tam_redis_server_stopped_fn on_stopped,
                           void *data);

enum tam_redis_server_state tam_redis_server_state(const struct tam_redis_server *s);
/* Address for tam_redis_create(): "unix:DIR/redis.sock". Borrowed, lives as long as s. */
const char *tam_redis_server_address(const struct tam_redis_server *s);
/* Socket path DIR/redis.sock. Borrowed. */
const char *tam_redis_server_socket(const struct tam_redis_server *s);
/* pid of the running child, or 0. */
int tam_redis_server_pid(const struct tam_redis_server *s);
/* Restarts so far (not counting the first start). */
uint32_t tam_redis_server_restarts(const struct tam_redis_server *s);

#endif
