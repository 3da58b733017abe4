/*
 * The real admin API for tests: a private redis-server, tam_admin on a tam_http_server
 * (127.0.0.1, ephemeral port, optionally TLS) and the operator token, with the loop running
 * in a thread of its own so that the test can call it with blocking clients or subprocesses.
 */
#ifndef TU_ADMIN_FIXTURE_H
#define TU_ADMIN_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "redis_fixture.h"
#include "tam/crypto.h"
#include "tam/tstore.h"

struct tam_admin;
struct tam_http_server;
struct tam_redis;
struct tam_tls_ctx;

struct tu_admin {
    struct tu_redis rs;
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t th;
    struct tam_redis *redis;
    struct tam_http_server *srv;
    struct tam_admin *admin;
    uint8_t kek[32];
    struct tam_key *worker; /* the workers' sealing key (private), when asked for */
    char op[TAM_TSTORE_TOKEN_LEN + 1];
    bool op_done;
    char dir[64]; /* a fresh temporary directory, removed by tu_admin_stop */
    uint16_t port;
};

/* Step 1: the temporary directory (named /tmp/<prefix>-XXXXXX) and the redis-server. */
void tu_admin_init(struct tu_admin *a, const char *prefix);
/* Step 2: the admin API (with a worker sealing key if asked; TLS with tls, borrowed), the
 * operator token (a->op), then the loop thread. */
void tu_admin_serve(struct tu_admin *a, bool worker_key, struct tam_tls_ctx *tls);
/* Stops the thread, closes everything, stops redis, removes the directory. */
void tu_admin_stop(struct tu_admin *a);

#endif
