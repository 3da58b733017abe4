/*
 * hiredis async <-> libuv glue (see internal.h for why this is not adapters/libuv.h).
 *
 * Writes are deferred to an idle handle instead of polling for writability. hiredis
 * asks for a write (addWrite) on every command it queues, and adapters/libuv.h answers each
 * with uv_poll_start, which in libuv 1.44 removes the descriptor from epoll (EPOLL_CTL_DEL)
 * and adds it back on the next poll: with a gateway issuing thousands of commands a second,
 * those epoll_ctl calls were 44% of its system-call time (strace -c). Here the commands
 * queued since the last flush go out in one write() from an idle handle, which runs before
 * the loop next polls (and keeps that poll from blocking while it is active), wherever the
 * commands came from: I/O callbacks, timers, other idle work, or code outside the loop. The
 * poll watches only readability, so its epoll registration never changes; it watches
 * writability only while the socket is full (hiredis could not write everything) or while
 * the connection is being established.
 */
#include "internal.h"

#include <stdbool.h>

#include "tam/alloc.h"

struct uv_events {
    redisAsyncContext *ac; /* NULL once hiredis has called cleanup */
    uv_poll_t poll;
    uv_idle_t flush;
    int events;       /* UV_READABLE | UV_WRITABLE the poll watches */
    bool want_write;  /* hiredis has output queued */
    bool in_flush;    /* inside on_flush's redisAsyncHandleWrite */
    int open_handles; /* poll and flush: freed when both are closed */
};

static void on_poll(uv_poll_t *h, int status, int events);

static void set_poll(struct uv_events *e, int events)
{
    if (events == e->events) {
        return; /* uv_poll_start would re-register the descriptor for nothing */
    }
    e->events = events;
    if (events != 0) {
        uv_poll_start(&e->poll, events, on_poll);
    } else {
        uv_poll_stop(&e->poll);
    }
}

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

static void on_flush(uv_idle_t *h)
{
    struct uv_events *e = h->data;
    uv_idle_stop(&e->flush);
    if (e->ac == NULL || !e->want_write) {
        return;
    }
    e->in_flush = true;
    redisAsyncHandleWrite(e->ac); /* calls del_write when all is written, else add_write */
    e->in_flush = false; /* e outlives a cleanup inside: it is freed once its handles close */
}

static void add_read(void *privdata)
{
    struct uv_events *e = privdata;
    set_poll(e, e->events | UV_READABLE);
}

static void del_read(void *privdata)
{
    struct uv_events *e = privdata;
    set_poll(e, e->events & ~UV_READABLE);
}

static void add_write(void *privdata)
{
    struct uv_events *e = privdata;
    e->want_write = true;
    if (e->in_flush || !(e->ac->c.flags & REDIS_CONNECTED)) {
        /* The socket is full, or connect() is in progress: wait until it is writable. */
        set_poll(e, e->events | UV_WRITABLE);
    } else if (!(e->events & UV_WRITABLE)) {
        (void)uv_idle_start(&e->flush, on_flush); /* no-op when already started */
    }
}

static void del_write(void *privdata)
{
    struct uv_events *e = privdata;
    e->want_write = false;
    set_poll(e, e->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    struct uv_events *e = h->data;
    if (--e->open_handles == 0) {
        tam_free(e);
    }
}

/* hiredis is freeing the context: from here on e must not touch it. */
static void cleanup(void *privdata)
{
    struct uv_events *e = privdata;
    e->ac = NULL;
    e->in_flush = false;
    uv_close((uv_handle_t *)&e->poll, on_closed);
    uv_close((uv_handle_t *)&e->flush, on_closed);
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
    (void)uv_idle_init(loop, &e->flush); /* cannot fail on Unix */
    e->poll.data = e;
    e->flush.data = e;
    e->open_handles = 2;
    e->ac = ac;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return REDIS_OK;
}
