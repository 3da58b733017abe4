/* Synchronous hiredis helpers: single commands, formatted batches, clocks. */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tam/err.h"
#include "tam/log.h"
#include "tam/resp.h"
#include "worker.h"

static void note_io_error(struct worker *w, redisContext *c)
{
    w->n.redis_errors++;
    tam_log(TAM_LOG_WARN, "event=redis_error worker=%s err=%d msg=\"%.80s\"", w->id, c->err,
            c->errstr);
}

void wk_poison(struct worker *w)
{
    if (w->cmd != NULL && w->cmd->err == 0) {
        w->cmd->err = REDIS_ERR_OTHER;
        (void)snprintf(w->cmd->errstr, sizeof(w->cmd->errstr), "replies out of step");
        note_io_error(w, w->cmd);
    }
}

/* Data waits on the socket: a read returns without blocking. */
static bool readable(const redisContext *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    return poll(&pfd, 1, 0) > 0;
}

bool wk_reply_ready(redisContext *c)
{
    if (c == NULL || c->err != 0 || c->reader->pos < c->reader->len) {
        return true; /* buffered, or an error that any read reports at once */
    }
    return readable(c);
}

int wk_reply_take(redisContext *c, void **reply)
{
    *reply = NULL;
    if (c == NULL || c->err != 0) {
        return TAM_EUNAVAIL;
    }
    if (redisReaderGetReply(c->reader, reply) != REDIS_OK) {
        return TAM_EREDIS; /* a protocol error: the connection is unusable */
    }
    if (*reply == NULL && readable(c)) {
        if (redisBufferRead(c) != REDIS_OK || redisReaderGetReply(c->reader, reply) != REDIS_OK) {
            return TAM_EUNAVAIL;
        }
    }
    return TAM_OK;
}

int wk_drain(struct worker *w)
{
    wk_jobs_collect(w, true);
    while (w->deferred > 0 && w->cmd != NULL && w->cmd->err == 0) {
        void *r = NULL;
        if (redisGetReply(w->cmd, &r) != REDIS_OK) {
            note_io_error(w, w->cmd);
            break;
        }
        w->deferred--;
        const redisReply *rep = r;
        if (rep->type == REDIS_REPLY_ERROR) {
            tam_log(TAM_LOG_ERROR, "event=redis_reply_error step=reply msg=\"%.120s\"", rep->str);
        }
        freeReplyObject(r);
    }
    wk_jobs_receive_ahead(w); /* written after the deferred ones */
    if (w->cmd == NULL || w->cmd->err != 0) {
        w->deferred = 0;
        return TAM_EUNAVAIL;
    }
    return TAM_OK;
}

int wk_flush(struct worker *w)
{
    int done = 0;
    while (!done) {
        if (redisBufferWrite(w->cmd, &done) != REDIS_OK) {
            note_io_error(w, w->cmd);
            return TAM_EUNAVAIL;
        }
    }
    return TAM_OK;
}

int wk_flush_deferred(struct worker *w, uint32_t n)
{
    int err = w->hold_writes ? TAM_OK : wk_flush(w);
    w->deferred += err == TAM_OK ? n : 0;
    return err;
}

redisReply *wk_cmd(struct worker *w, redisContext *c, const char *fmt, ...)
{
    if (c == w->cmd) {
        (void)wk_drain(w);
    }
    if (c == NULL || c->err != 0) {
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        note_io_error(w, c);
    }
    return r;
}

redisReply *wk_cmd_argv(struct worker *w, redisContext *c, int argc, const char **argv,
                        const size_t *lens)
{
    if (c == w->cmd) {
        (void)wk_drain(w);
    }
    if (c == NULL || c->err != 0) {
        return NULL;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    if (r == NULL) {
        note_io_error(w, c);
    }
    return r;
}

bool wk_reply_ok(const redisReply *r)
{
    return r != NULL && r->type != REDIS_REPLY_ERROR;
}

bool wk_reply_bytes(const redisReply *r, struct tam_bytes *out)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING) {
        return false;
    }
    *out = tam_bytes_of(r->str, r->len);
    return true;
}

void wk_batch_init(struct wk_batch *b)
{
    tam_buf_init(&b->resp, WK_BATCH_BYTES_MAX);
    b->n = 0;
    b->overflow = false;
}

void wk_batch_finish(struct wk_batch *b)
{
    tam_buf_finish(&b->resp);
    wk_batch_init(b);
}

/* Counts a command that `encoded` (a tam_resp_* result) appended, or marks the overflow. */
static void batch_count(struct wk_batch *b, int encoded)
{
    if (encoded != TAM_OK) {
        b->overflow = true;
    } else {
        b->n++;
    }
}

static bool batch_full(struct wk_batch *b)
{
    b->overflow = b->overflow || b->n >= WK_BATCH_MAX;
    return b->overflow;
}

void wk_batch_spans(struct wk_batch *b, size_t n, const struct tam_bytes *args)
{
    if (!batch_full(b)) {
        batch_count(b, tam_resp_argv(&b->resp, n, args));
    }
}

void wk_batch_addf(struct wk_batch *b, const char *fmt, ...)
{
    if (batch_full(b)) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    batch_count(b, tam_resp_vcmdf(&b->resp, fmt, ap));
    va_end(ap);
}

int wk_batch_append(redisContext *c, const struct wk_batch *b)
{
    if (b->n == 0) {
        return TAM_OK;
    }
    if (c == NULL || c->err != 0 ||
        redisAppendFormattedCommand(c, (const char *)b->resp.data, b->resp.len) != REDIS_OK) {
        return TAM_EUNAVAIL;
    }
    return TAM_OK;
}

int wk_batches_exec(struct worker *w, struct wk_batch *const *b, size_t n, redisReply **replies)
{
    redisContext *c = w->cmd;
    uint32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != NULL && b[i]->overflow) {
            return TAM_ENOMEM; /* before anything is sent: no reply is owed */
        }
        total += b[i] != NULL ? b[i]->n : 0;
    }
    memset(replies, 0, sizeof(*replies) * total);
    (void)wk_drain(w);
    if (c == NULL || c->err != 0) {
        return TAM_EUNAVAIL;
    }
    for (size_t i = 0; i < n; i++) {
        if (b[i] != NULL && wk_batch_append(c, b[i]) != TAM_OK) {
            note_io_error(w, c);
            return TAM_EUNAVAIL;
        }
    }
    for (uint32_t k = 0; k < total; k++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            note_io_error(w, c);
            wk_replies_free(replies, k);
            return TAM_EUNAVAIL;
        }
        replies[k] = r;
    }
    return TAM_OK;
}

int wk_batch_exec(struct worker *w, struct wk_batch *b, redisReply **replies)
{
    return wk_batches_exec(w, &b, 1, replies);
}

void wk_replies_free(redisReply **replies, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (replies[i] != NULL) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    }
}

uint64_t wk_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t wk_mono_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
