/*
 * A growable byte buffer with a ceiling (curl dynbuf `toobig`): appends past
 * `max` fail with TAM_ETOOBIG and leave the buffer unchanged.
 */
#ifndef TAM_BUF_H
#define TAM_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "tam/common.h"

struct tam_buf {
    uint8_t *data; /* owned */
    size_t len;
    size_t cap;
    size_t max; /* ceiling on len */
};

void tam_buf_init(struct tam_buf *b, size_t max);
void tam_buf_finish(struct tam_buf *b); /* frees; NULL-safe; buffer reusable after init */
void tam_buf_reset(struct tam_buf *b);  /* len = 0, keeps capacity */
TAM_MUST_CHECK int tam_buf_reserve(struct tam_buf *b, size_t extra);
TAM_MUST_CHECK int tam_buf_append(struct tam_buf *b, const void *src, size_t n);
TAM_MUST_CHECK int tam_buf_append_str(struct tam_buf *b, const char *s);
TAM_MUST_CHECK int tam_buf_printf(struct tam_buf *b, const char *fmt, ...) TAM_PRINTF(2, 3);
/* Hands the storage to the caller (free with tam_free); the buffer becomes empty. */
uint8_t *tam_buf_take(struct tam_buf *b, size_t *len);

#endif
