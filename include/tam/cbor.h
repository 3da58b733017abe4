/*
 * CBOR for untrusted input (reader) and for what we produce (writer).
 *
 * Reader: decodes one complete item into a flat, pre-order array of items
 * (a tiny DOM). It is bounded (size, depth, item count), zero-copy (strings and
 * raw spans point into the input, which must outlive the document), rejects
 * trailing bytes, duplicate map keys, indefinite lengths, and any declared
 * length or count larger than the bytes that remain -- before allocating.
 * Head decoding uses libcbor's streaming decoder; tag heads are decoded here,
 * because Debian's libcbor 0.8 rejects one-byte tags 6..20 (COSE tags 16..18).
 *
 * Writer: deterministic encoding (RFC 8949 4.2.1): shortest heads, and map keys
 * must be written in bytewise order of their encodings -- the writer checks it
 * and fails with TAM_ECBOR otherwise, so nothing non-deterministic is emitted.
 */
#ifndef TAM_CBOR_H
#define TAM_CBOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"

enum tam_cbor_type {
    TAM_CBOR_UINT = 0,
    TAM_CBOR_NINT = 1, /* value is -1 - val */
    TAM_CBOR_BSTR = 2,
    TAM_CBOR_TSTR = 3,
    TAM_CBOR_ARRAY = 4,
    TAM_CBOR_MAP = 5,
    TAM_CBOR_TAG = 6,    /* val = tag number; exactly one child follows */
    TAM_CBOR_SIMPLE = 7, /* val = simple value: 20 false, 21 true, 22 null, 23 undefined */
    TAM_CBOR_FLOAT = 8,  /* val = the IEEE bits as encoded (half, single or double) */
};

#define TAM_CBOR_FALSE 20
#define TAM_CBOR_TRUE  21
#define TAM_CBOR_NULL  22

struct tam_cbor_item {
    uint8_t type;   /* enum tam_cbor_type */
    uint32_t skip;  /* items in this subtree including itself: the next sibling is this + skip */
    uint32_t count; /* ARRAY: elements; MAP: pairs (children = 2 * count); TAG: 1 */
    uint64_t val;   /* UINT/NINT/TAG/SIMPLE/FLOAT value (see above); string length for strings */
    const uint8_t *data; /* BSTR/TSTR content (borrowed from the input) */
    const uint8_t *raw;  /* the whole encoded item, header and children included */
    size_t raw_len;
};

struct tam_cbor_limits {
    size_t max_size;    /* input bytes */
    uint32_t max_depth; /* nesting of arrays, maps and tags */
    uint32_t max_items; /* total items */
};

/* Defaults suited to TEEP messages: 1 MiB, depth 32, 65536 items. */
extern const struct tam_cbor_limits tam_cbor_default_limits;

struct tam_cbor_doc {
    struct tam_cbor_item *items; /* owned; items[0] is the root */
    uint32_t n;
    uint32_t cap;
};

void tam_cbor_doc_init(struct tam_cbor_doc *doc);
void tam_cbor_doc_finish(struct tam_cbor_doc *doc); /* NULL-safe; doc can be decoded into again */

/*
 * Decodes exactly one item spanning all of buf[0..len). The document may be
 * reused across calls (capacity is kept). On failure *why (if non-NULL) names
 * the rule that failed, and the return is TAM_ECBOR, TAM_ECBOR_LIMIT, TAM_ETOOBIG
 * or TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_cbor_decode(const uint8_t *buf, size_t len,
                                   const struct tam_cbor_limits *lim, struct tam_cbor_doc *doc,
                                   const char **why);

static inline const struct tam_cbor_item *tam_cbor_root(const struct tam_cbor_doc *doc)
{
    return doc->n ? &doc->items[0] : NULL;
}

/* First child of an array/map/tag (the first key of a map). Only when it has children. */
static inline const struct tam_cbor_item *tam_cbor_first(const struct tam_cbor_item *it)
{
    return it + 1;
}

static inline const struct tam_cbor_item *tam_cbor_next(const struct tam_cbor_item *it)
{
    return it + it->skip;
}

/* The i-th element of an array (O(i)), or NULL if not an array or out of range. */
const struct tam_cbor_item *tam_cbor_array_at(const struct tam_cbor_item *arr, uint32_t i);
/* The value for an integer key in a map, or NULL when absent or not a map. */
const struct tam_cbor_item *tam_cbor_map_get_int(const struct tam_cbor_item *map, int64_t key);
/* The value for a text key in a map, or NULL. */
const struct tam_cbor_item *tam_cbor_map_get_str(const struct tam_cbor_item *map, const char *key);

/* Integer value (UINT or NINT) fitting int64_t; false otherwise. */
bool tam_cbor_get_int(const struct tam_cbor_item *it, int64_t *out);
bool tam_cbor_get_uint(const struct tam_cbor_item *it, uint64_t *out);
bool tam_cbor_get_bytes(const struct tam_cbor_item *it, struct tam_bytes *out); /* BSTR */
bool tam_cbor_get_text(const struct tam_cbor_item *it, struct tam_bytes *out);  /* TSTR */
bool tam_cbor_get_bool(const struct tam_cbor_item *it, bool *out);
bool tam_cbor_is_null(const struct tam_cbor_item *it);
/* Strips any number of tags: returns the tagged content (it itself when untagged). */
const struct tam_cbor_item *tam_cbor_untag(const struct tam_cbor_item *it);

/* ---- writer ---- */

#define TAM_CBOR_WRITER_DEPTH 32

struct tam_cbor_frame {
    uint64_t left; /* items still to come in this container (map: 2 per pair) */
    bool is_map;
    bool is_wrap;     /* a bstr-wrapped region, closed with tam_cbor_close_wrap */
    size_t start;     /* offset where the container (or wrapped content) starts */
    size_t key_start; /* map: offset of the key being written */
    size_t prev_key;  /* map: offset of the previous key, SIZE_MAX if none */
    size_t prev_len;
};

struct tam_cbor_writer {
    struct tam_buf *out; /* borrowed: the writer appends to it */
    int err;             /* sticky: the first error; later calls do nothing */
    int depth;
    struct tam_cbor_frame stack[TAM_CBOR_WRITER_DEPTH];
};

void tam_cbor_writer_init(struct tam_cbor_writer *w, struct tam_buf *out);
/* TAM_OK once every opened container and wrap is complete; the first error otherwise. */
TAM_MUST_CHECK int tam_cbor_writer_finish(struct tam_cbor_writer *w);

void tam_cbor_put_uint(struct tam_cbor_writer *w, uint64_t v);
void tam_cbor_put_int(struct tam_cbor_writer *w, int64_t v);
void tam_cbor_put_bstr(struct tam_cbor_writer *w, const void *p, size_t len);
void tam_cbor_put_tstr(struct tam_cbor_writer *w, const char *p, size_t len);
void tam_cbor_put_str(struct tam_cbor_writer *w, const char *s); /* NUL-terminated text */
void tam_cbor_put_bool(struct tam_cbor_writer *w, bool v);
void tam_cbor_put_null(struct tam_cbor_writer *w);
void tam_cbor_put_tag(struct tam_cbor_writer *w, uint64_t tag); /* the next item is its content */
void tam_cbor_open_array(struct tam_cbor_writer *w, uint64_t count);
void tam_cbor_open_map(struct tam_cbor_writer *w, uint64_t pairs);
/* One complete, already-encoded item (e.g. a stored SUIT envelope), copied verbatim. */
void tam_cbor_put_raw(struct tam_cbor_writer *w, const void *p, size_t len);
/*
 * A byte string whose content is the CBOR written between open and close
 * (`bstr .cbor X`): exactly one item must be written inside.
 */
void tam_cbor_open_wrap(struct tam_cbor_writer *w);
void tam_cbor_close_wrap(struct tam_cbor_writer *w);

#endif
