/* hiredis async <-> libuv glue (see internal.h for why this is not adapters/libuv.h). */
#include "internal.h"

#include "tam/alloc.h"

struct uv_events {
    redisAsyncContext *ac; /* NULL once hiredis has called cleanup */
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE currently wanted */
};

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct uv_events *e = h->data;
    if (status < 0) {
        /* The socket has a pending error: let hiredis read it, through the connect check
         * (SO_ERROR, then onConnect(REDIS_ERR)) or through read() (then onDisconnect). */
        if (e->ac != NULL && !(e->ac->c.flags & REDIS_CONNECTED)) {
            redisAsyncHandleWrite(e->ac);
        } else if (e->ac != NULL) {
            redisAsyncHandleRead(e->ac);
        }
        if (e->ac != NULL && e->events != 0) {
            uv_poll_start(&e->poll, e->events, on_poll); /* libuv stopped it; keep watching */
        }
        return;
    }
    if (e->ac != NULL && (events & UV_READABLE)) {
        redisAsyncHandleRead(e->ac);
    }
    if (e->ac != NULL && (events & UV_WRITABLE)) {
        redisAsyncHandleWrite(e->ac);
    }
}

static void update(struct uv_events *e, int events)
{
    e->events = events;
    if (events != 0) {
        uv_poll_start(&e->poll, events, on_poll);
    } else {
        uv_poll_stop(&e->poll);
    }
}

static void add_read(void *privdata)
{
    struct uv_events *e = privdata;
    update(e, e->events | UV_READABLE);
}

static void del_read(void *privdata)
{
    struct uv_events *e = privdata;
    update(e, e->events & ~UV_READABLE);
}

static void add_write(void *privdata)
{
    struct uv_events *e = privdata;
    update(e, e->events | UV_WRITABLE);
}

static void del_write(void *privdata)
{
    struct uv_events *e = privdata;
    update(e, e->events & ~UV_WRITABLE);
}

static void on_poll_closed(uv_handle_t *h)
{
    tam_free(h->data);
}

/* hiredis is freeing the context: from here on e must not touch it. */
static void cleanup(void *privdata)
{
    struct uv_events *e = privdata;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, on_poll_closed);
}

int tam_redis__uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL) {
        return REDIS_ERR;
    }
    struct uv_events *e = tam_calloc(1, sizeof(*e));
    if (e == NULL) {
        return REDIS_ERR;
    }
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        tam_free(e); /* a failed uv_poll_init leaves no handle on the loop */
        return REDIS_ERR;
    }
    e->poll.data = e;
    e->ac = ac;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return REDIS_OK;
}
