/*
 * Writing what the socket takes at once, shared by the HTTP server (conn.c) and client
 * (src/client/httpc.c). Most messages fit in the socket buffer: written directly they need
 * no write request, no copy and, in libuv 1.44, no epoll_ctl (a completed uv_write
 * re-registers the descriptor). Only what is left goes through uv_write.
 */
#ifndef TAM_NET_WRITE_NOW_H
#define TAM_NET_WRITE_NOW_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Advances *p and *n past what was written; 0, or a libuv error other than UV_EAGAIN. */
static inline int tam_net_write_now(uv_stream_t *s, const uint8_t **p, size_t *n)
{
    uv_buf_t now = uv_buf_init((char *)(uintptr_t)*p, (unsigned)*n);
    int k = uv_try_write(s, &now, 1);
    if (k < 0) {
        return k == UV_EAGAIN ? 0 : k;
    }
    *p += k;
    *n -= (size_t)k;
    return 0;
}

#endif
