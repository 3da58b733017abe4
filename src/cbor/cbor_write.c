/*
 * Deterministic CBOR writer (RFC 8949 4.2.1). libcbor's low-level encoders pick
 * the shortest head; this file tracks container nesting so that it can check map
 * key order and splice the head of bstr-wrapped content once its length is known.
 */
#include <cbor.h>
#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"

void tam_cbor_writer_init(struct tam_cbor_writer *w, struct tam_buf *out)
{
    w->out = out;
    w->err = TAM_OK;
    w->depth = 0;
}

int tam_cbor_writer_finish(struct tam_cbor_writer *w)
{
    if (w->err == TAM_OK && w->depth != 0) {
        w->err = TAM_ECBOR; /* a container or wrap was left open */
    }
    return w->err;
}

static void set_err(struct tam_cbor_writer *w, int err)
{
    if (w->err == TAM_OK) {
        w->err = err;
    }
}

/* Called before every item: remembers where a map key starts. */
static bool begin_item(struct tam_cbor_writer *w)
{
    if (w->err != TAM_OK) {
        return false;
    }
    if (w->depth == 0) {
        return true;
    }
    struct tam_cbor_frame *f = &w->stack[w->depth - 1];
    if (f->left == 0) {
        set_err(w, TAM_ECBOR); /* more items than the container declared */
        return false;
    }
    if (f->is_map && f->left % 2 == 0) {
        f->key_start = w->out->len;
    }
    return true;
}

/* Keys must increase in bytewise order of their encodings (and so never repeat). */
static bool key_in_order(const struct tam_cbor_writer *w, const struct tam_cbor_frame *f)
{
    if (f->prev_key == SIZE_MAX) {
        return true;
    }
    const uint8_t *prev = w->out->data + f->prev_key;
    const uint8_t *cur = w->out->data + f->key_start;
    size_t cur_len = w->out->len - f->key_start;
    size_t n = f->prev_len < cur_len ? f->prev_len : cur_len;
    int c = memcmp(prev, cur, n);
    return c < 0 || (c == 0 && f->prev_len < cur_len);
}

/* Called after every complete item: counts it and closes what it completes. */
static void end_item(struct tam_cbor_writer *w)
{
    while (w->depth > 0) {
        struct tam_cbor_frame *f = &w->stack[w->depth - 1];
        if (f->is_map && f->left % 2 == 0) {
            if (!key_in_order(w, f)) {
                set_err(w, TAM_ECBOR);
                return;
            }
            f->prev_key = f->key_start;
            f->prev_len = w->out->len - f->key_start;
        }
        if (--f->left > 0 || f->is_wrap) {
            return; /* a wrap stays open until tam_cbor_close_wrap */
        }
        w->depth--;
    }
}

static void append(struct tam_cbor_writer *w, const void *p, size_t n)
{
    int err = tam_buf_append(w->out, p, n);
    if (err != TAM_OK) {
        set_err(w, err);
    }
}

static void put_head(struct tam_cbor_writer *w, size_t (*enc)(uint64_t, unsigned char *, size_t),
                     uint64_t v)
{
    unsigned char head[9];
    size_t n = enc(v, head, sizeof(head));
    append(w, head, n);
}

static size_t enc_uint(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_uint(v, b, n);
}
static size_t enc_negint(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_negint(v, b, n);
}
static size_t enc_bstr(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_bytestring_start((size_t)v, b, n);
}
static size_t enc_tstr(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_string_start((size_t)v, b, n);
}
static size_t enc_array(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_array_start((size_t)v, b, n);
}
static size_t enc_map(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_map_start((size_t)v, b, n);
}
static size_t enc_tag(uint64_t v, unsigned char *b, size_t n)
{
    return cbor_encode_tag(v, b, n);
}

void tam_cbor_put_uint(struct tam_cbor_writer *w, uint64_t v)
{
    if (begin_item(w)) {
        put_head(w, enc_uint, v);
        end_item(w);
    }
}

void tam_cbor_put_int(struct tam_cbor_writer *w, int64_t v)
{
    if (begin_item(w)) {
        if (v >= 0) {
            put_head(w, enc_uint, (uint64_t)v);
        } else {
            put_head(w, enc_negint, (uint64_t)(-1 - v));
        }
        end_item(w);
    }
}

static void put_string(struct tam_cbor_writer *w, size_t (*enc)(uint64_t, unsigned char *, size_t),
                       const void *p, size_t len)
{
    if (begin_item(w)) {
        put_head(w, enc, len);
        append(w, p, len);
        end_item(w);
    }
}

void tam_cbor_put_bstr(struct tam_cbor_writer *w, const void *p, size_t len)
{
    put_string(w, enc_bstr, p, len);
}

void tam_cbor_put_tstr(struct tam_cbor_writer *w, const char *p, size_t len)
{
    put_string(w, enc_tstr, p, len);
}

void tam_cbor_put_str(struct tam_cbor_writer *w, const char *s)
{
    put_string(w, enc_tstr, s, strlen(s));
}

static void put_simple(struct tam_cbor_writer *w, uint8_t byte)
{
    if (begin_item(w)) {
        append(w, &byte, 1);
        end_item(w);
    }
}

void tam_cbor_put_bool(struct tam_cbor_writer *w, bool v)
{
    put_simple(w, v ? 0xf5 : 0xf4);
}

void tam_cbor_put_null(struct tam_cbor_writer *w)
{
    put_simple(w, 0xf6);
}

void tam_cbor_put_raw(struct tam_cbor_writer *w, const void *p, size_t len)
{
    if (begin_item(w)) {
        append(w, p, len);
        end_item(w);
    }
}

static void push(struct tam_cbor_writer *w, uint64_t left, bool is_map, bool is_wrap)
{
    if (w->depth >= TAM_CBOR_WRITER_DEPTH) {
        set_err(w, TAM_ECBOR_LIMIT);
        return;
    }
    struct tam_cbor_frame *f = &w->stack[w->depth++];
    f->left = left;
    f->is_map = is_map;
    f->is_wrap = is_wrap;
    f->start = w->out->len;
    f->key_start = 0;
    f->prev_key = SIZE_MAX;
    f->prev_len = 0;
}

static void open_container(struct tam_cbor_writer *w,
                           size_t (*enc)(uint64_t, unsigned char *, size_t), uint64_t count,
                           uint64_t children, bool is_map)
{
    if (!begin_item(w)) {
        return;
    }
    put_head(w, enc, count);
    if (children == 0) {
        end_item(w);
    } else {
        push(w, children, is_map, false);
    }
}

void tam_cbor_open_array(struct tam_cbor_writer *w, uint64_t count)
{
    open_container(w, enc_array, count, count, false);
}

void tam_cbor_open_map(struct tam_cbor_writer *w, uint64_t pairs)
{
    open_container(w, enc_map, pairs, 2 * pairs, true);
}

void tam_cbor_put_tag(struct tam_cbor_writer *w, uint64_t tag)
{
    open_container(w, enc_tag, tag, 1, false);
}

void tam_cbor_open_wrap(struct tam_cbor_writer *w)
{
    if (begin_item(w)) {
        push(w, 1, false, true);
    }
}

void tam_cbor_close_wrap(struct tam_cbor_writer *w)
{
    if (w->err != TAM_OK) {
        return;
    }
    struct tam_cbor_frame *f = w->depth > 0 ? &w->stack[w->depth - 1] : NULL;
    if (f == NULL || !f->is_wrap || f->left != 0) {
        set_err(w, TAM_ECBOR); /* close without open, or not exactly one item inside */
        return;
    }
    size_t content = w->out->len - f->start;
    unsigned char head[9];
    size_t hn = cbor_encode_bytestring_start(content, head, sizeof(head));
    int err = tam_buf_reserve(w->out, hn);
    if (err != TAM_OK) {
        set_err(w, err);
        return;
    }
    uint8_t *at = w->out->data + f->start;
    memmove(at + hn, at, content);
    memcpy(at, head, hn);
    w->out->len += hn;
    w->depth--;
    end_item(w); /* the bstr itself is one item of the enclosing container */
}
