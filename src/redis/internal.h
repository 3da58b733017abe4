/* Shared only among the files of src/redis. */
#ifndef TAM_REDIS_INTERNAL_H
#define TAM_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <uv.h>

/*
 * Binds a hiredis async context to a libuv loop, like hiredis's adapters/libuv.h
 * (redisLibuvAttach), with one difference: a uv_poll error is passed on to hiredis. libuv
 * reports POLLERR as UV_EBADF and stops the poll handle; the stock 0.14 adapter ignores that
 * status, so a refused TCP connect or a reset connection would go unnoticed until a timeout.
 * Returns REDIS_OK or REDIS_ERR (already attached, out of memory, bad fd).
 */
int tam_redis__uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
