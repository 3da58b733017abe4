#include "tam/buf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"

void tam_buf_init(struct tam_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void tam_buf_finish(struct tam_buf *b)
{
    if (b == NULL) {
        return;
    }
    tam_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void tam_buf_reset(struct tam_buf *b)
{
    b->len = 0;
}

int tam_buf_reserve(struct tam_buf *b, size_t extra)
{
    assert(b->len <= b->max);
    if (extra > b->max - b->len) {
        return TAM_ETOOBIG;
    }
    if (extra <= b->cap - b->len) {
        return TAM_OK;
    }
    size_t want = b->len + extra;
    size_t cap = b->cap ? 2 * b->cap : 256;
    cap = cap < want ? want : cap;
    cap = cap < b->max ? cap : b->max;
    uint8_t *p = tam_realloc(b->data, cap);
    if (p == NULL) {
        return TAM_ENOMEM; /* b unchanged and still valid */
    }
    b->data = p;
    b->cap = cap;
    return TAM_OK;
}

int tam_buf_append(struct tam_buf *b, const void *src, size_t n)
{
    if (n == 0) {
        return TAM_OK;
    }
    int err = tam_buf_reserve(b, n);
    if (err != TAM_OK) {
        return err;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return TAM_OK;
}

int tam_buf_append_str(struct tam_buf *b, const char *s)
{
    return tam_buf_append(b, s, strlen(s));
}

int tam_buf_printf(struct tam_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return TAM_EINVAL;
    }
    /* One extra byte for vsnprintf's terminator, which is not counted in len. */
    int err = tam_buf_reserve(b, (size_t)n + 1);
    if (err != TAM_OK) {
        return err;
    }
    va_start(ap, fmt);
    (void)vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return TAM_OK;
}

uint8_t *tam_buf_take(struct tam_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
