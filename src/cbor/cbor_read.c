/*
 * Bounded, zero-copy CBOR reader. libcbor's streaming decoder decodes each head
 * (and hands us string contents in place); we own the structure: the item array,
 * nesting, limits, tags and the strictness rules listed in cbor.h.
 */
#include <cbor.h>
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/err.h"

const struct tam_cbor_limits tam_cbor_default_limits = {
    .max_size = 1u << 20,
    .max_depth = 32,
    .max_items = 65536,
};

struct open_container {
    uint32_t idx;  /* item index of the container */
    uint64_t left; /* children still expected */
};

struct reader {
    const uint8_t *buf;
    size_t len;
    size_t pos; /* start of the head being decoded */
    const struct tam_cbor_limits *lim;
    struct tam_cbor_doc *doc;
    struct tam_cbor_item cur; /* filled by the libcbor callbacks */
    const char *bad;          /* set by a callback that refuses its event */
    uint32_t depth;
    struct open_container stack[64];
};

/* ---- libcbor streaming callbacks: each records one head into r->cur ---- */

static void set_scalar(void *ctx, enum tam_cbor_type type, uint64_t val)
{
    struct reader *r = ctx;
    r->cur.type = (uint8_t)type;
    r->cur.val = val;
}

static void on_uint8(void *ctx, uint8_t v)
{
    set_scalar(ctx, TAM_CBOR_UINT, v);
}
static void on_uint16(void *ctx, uint16_t v)
{
    set_scalar(ctx, TAM_CBOR_UINT, v);
}
static void on_uint32(void *ctx, uint32_t v)
{
    set_scalar(ctx, TAM_CBOR_UINT, v);
}
static void on_uint64(void *ctx, uint64_t v)
{
    set_scalar(ctx, TAM_CBOR_UINT, v);
}
static void on_negint8(void *ctx, uint8_t v)
{
    set_scalar(ctx, TAM_CBOR_NINT, v);
}
static void on_negint16(void *ctx, uint16_t v)
{
    set_scalar(ctx, TAM_CBOR_NINT, v);
}
static void on_negint32(void *ctx, uint32_t v)
{
    set_scalar(ctx, TAM_CBOR_NINT, v);
}
static void on_negint64(void *ctx, uint64_t v)
{
    set_scalar(ctx, TAM_CBOR_NINT, v);
}

static void set_string(void *ctx, enum tam_cbor_type type, cbor_data data, size_t len)
{
    struct reader *r = ctx;
    r->cur.type = (uint8_t)type;
    r->cur.data = data; /* points into the input: zero-copy */
    r->cur.val = len;
}

static void on_bstr(void *ctx, cbor_data data, size_t len)
{
    set_string(ctx, TAM_CBOR_BSTR, data, len);
}

static void on_tstr(void *ctx, cbor_data data, size_t len)
{
    set_string(ctx, TAM_CBOR_TSTR, data, len);
}

static void on_indefinite(void *ctx)
{
    ((struct reader *)ctx)->bad = "indefinite-length items are not accepted";
}

static void on_array(void *ctx, size_t n)
{
    struct reader *r = ctx;
    r->cur.type = TAM_CBOR_ARRAY;
    r->cur.count = (uint32_t)n;
    r->cur.val = n;
}

static void on_map(void *ctx, size_t n)
{
    struct reader *r = ctx;
    r->cur.type = TAM_CBOR_MAP;
    r->cur.count = (uint32_t)n;
    r->cur.val = n;
}

static void on_tag(void *ctx, uint64_t tag)
{
    set_scalar(ctx, TAM_CBOR_TAG, tag);
}

static void on_float(void *ctx, float v)
{
    double d = v;
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    set_scalar(ctx, TAM_CBOR_FLOAT, bits);
}

static void on_double(void *ctx, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    set_scalar(ctx, TAM_CBOR_FLOAT, bits);
}

static void on_undefined(void *ctx)
{
    set_scalar(ctx, TAM_CBOR_SIMPLE, 23);
}

static void on_null(void *ctx)
{
    set_scalar(ctx, TAM_CBOR_SIMPLE, TAM_CBOR_NULL);
}

static void on_bool(void *ctx, bool v)
{
    set_scalar(ctx, TAM_CBOR_SIMPLE, v ? TAM_CBOR_TRUE : TAM_CBOR_FALSE);
}

static const struct cbor_callbacks callbacks = {
    .uint8 = on_uint8,
    .uint16 = on_uint16,
    .uint32 = on_uint32,
    .uint64 = on_uint64,
    .negint8 = on_negint8,
    .negint16 = on_negint16,
    .negint32 = on_negint32,
    .negint64 = on_negint64,
    .byte_string_start = on_indefinite,
    .byte_string = on_bstr,
    .string = on_tstr,
    .string_start = on_indefinite,
    .indef_array_start = on_indefinite,
    .array_start = on_array,
    .indef_map_start = on_indefinite,
    .map_start = on_map,
    .tag = on_tag,
    .float2 = on_float,
    .float4 = on_float,
    .float8 = on_double,
    .undefined = on_undefined,
    .null = on_null,
    .boolean = on_bool,
    .indef_break = on_indefinite,
};

/* ---- structure ---- */

static int grow_items(struct tam_cbor_doc *doc, size_t input_len, uint32_t max_items)
{
    /* Every item takes at least one input byte, so the input length bounds the count:
     * capacity never follows a declared count (DEPS.md 4, 2 GiB amplification). */
    size_t limit = input_len < max_items ? input_len : max_items;
    size_t cap = doc->cap ? (size_t)doc->cap * 2 : 16;
    cap = cap < limit ? cap : limit;
    if (cap <= doc->cap) {
        return TAM_ECBOR_LIMIT;
    }
    struct tam_cbor_item *items = tam_realloc(doc->items, cap * sizeof(*items));
    if (items == NULL) {
        return TAM_ENOMEM;
    }
    doc->items = items;
    doc->cap = (uint32_t)cap;
    return TAM_OK;
}

/* One-byte tag heads 0xc0..0xd7 are decoded here: libcbor 0.8 rejects tags 6..20. */
static size_t decode_head(struct reader *r, const char **why, int *err)
{
    uint8_t ib = r->buf[r->pos];
    memset(&r->cur, 0, sizeof(r->cur));
    r->bad = NULL;
    if (ib >= 0xc0 && ib <= 0xd7) {
        set_scalar(r, TAM_CBOR_TAG, ib - 0xc0u);
        return 1;
    }
    struct cbor_decoder_result res =
        cbor_stream_decode(r->buf + r->pos, r->len - r->pos, &callbacks, r);
    if (res.status == CBOR_DECODER_NEDATA) {
        *err = tam_fail(why, "truncated item or declared length beyond the input", TAM_ECBOR);
        return 0;
    }
    if (res.status != CBOR_DECODER_FINISHED || res.read == 0) {
        *err = tam_fail(why, "malformed CBOR head", TAM_ECBOR);
        return 0;
    }
    if (r->bad != NULL) {
        *err = tam_fail(why, r->bad, TAM_ECBOR);
        return 0;
    }
    return res.read;
}

static bool key_equal(const struct tam_cbor_item *a, const struct tam_cbor_item *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case TAM_CBOR_UINT:
    case TAM_CBOR_NINT:
    case TAM_CBOR_SIMPLE:
    case TAM_CBOR_FLOAT:
        return a->val == b->val;
    case TAM_CBOR_BSTR:
    case TAM_CBOR_TSTR:
        return a->val == b->val && memcmp(a->data, b->data, (size_t)a->val) == 0;
    default:
        return a->raw_len == b->raw_len && memcmp(a->raw, b->raw, a->raw_len) == 0;
    }
}

static int key_order(const void *pa, const void *pb)
{
    const struct tam_cbor_item *a = *(const struct tam_cbor_item *const *)pa;
    const struct tam_cbor_item *b = *(const struct tam_cbor_item *const *)pb;
    if (a->type != b->type) {
        return a->type < b->type ? -1 : 1;
    }
    if (a->type == TAM_CBOR_BSTR || a->type == TAM_CBOR_TSTR) {
        if (a->val != b->val) {
            return a->val < b->val ? -1 : 1;
        }
        return memcmp(a->data, b->data, (size_t)a->val);
    }
    if (a->type <= TAM_CBOR_NINT || a->type >= TAM_CBOR_SIMPLE) {
        return a->val < b->val ? -1 : (a->val > b->val);
    }
    if (a->raw_len != b->raw_len) {
        return a->raw_len < b->raw_len ? -1 : 1;
    }
    return memcmp(a->raw, b->raw, a->raw_len);
}

/* Small maps compare keys pairwise; large ones sort key pointers (n log n). */
static int check_duplicate_keys(const struct tam_cbor_item *map, const char **why)
{
    uint32_t n = map->count;
    if (n < 2) {
        return TAM_OK;
    }
    const struct tam_cbor_item *small[16];
    const struct tam_cbor_item **keys = n <= 16 ? small : tam_malloc(n * sizeof(*keys));
    if (keys == NULL) {
        return TAM_ENOMEM;
    }
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < n; i++) {
        keys[i] = k;
        k = tam_cbor_next(tam_cbor_next(k));
    }
    int err = TAM_OK;
    if (n <= 16) {
        for (uint32_t i = 0; i < n && err == TAM_OK; i++) {
            for (uint32_t j = i + 1; j < n && err == TAM_OK; j++) {
                err = key_equal(keys[i], keys[j]) ? TAM_ECBOR : TAM_OK;
            }
        }
    } else {
        qsort(keys, n, sizeof(*keys), key_order);
        for (uint32_t i = 1; i < n && err == TAM_OK; i++) {
            err = key_equal(keys[i - 1], keys[i]) ? TAM_ECBOR : TAM_OK;
        }
        tam_free(keys);
    }
    return err == TAM_OK ? TAM_OK : tam_fail(why, "duplicate map key", TAM_ECBOR);
}

/* Marks the item complete and closes every container it completes in turn. */
static int complete_item(struct reader *r, uint32_t idx, const char **why)
{
    for (;;) {
        struct tam_cbor_item *it = &r->doc->items[idx];
        it->skip = r->doc->n - idx;
        it->raw_len = (size_t)(r->buf + r->pos - it->raw);
        if (it->type == TAM_CBOR_MAP) {
            int err = check_duplicate_keys(it, why);
            if (err != TAM_OK) {
                return err;
            }
        }
        if (r->depth == 0) {
            return TAM_OK;
        }
        struct open_container *top = &r->stack[r->depth - 1];
        if (--top->left > 0) {
            return TAM_OK;
        }
        r->depth--;
        idx = top->idx;
    }
}

static int check_count(struct reader *r, const struct tam_cbor_item *it, const char **why)
{
    uint64_t children = it->type == TAM_CBOR_MAP ? 2 * it->val : it->val;
    if (it->type == TAM_CBOR_MAP && it->val > UINT32_MAX / 2) {
        return tam_fail(why, "map declares more pairs than the input holds", TAM_ECBOR);
    }
    if (children > r->len - r->pos) {
        return tam_fail(why, "container declares more items than the input holds", TAM_ECBOR);
    }
    if (children > r->lim->max_items) {
        return tam_fail(why, "container exceeds the item limit", TAM_ECBOR_LIMIT);
    }
    return TAM_OK;
}

static int push_container(struct reader *r, uint32_t idx, uint64_t children, const char **why)
{
    if (r->depth >= r->lim->max_depth || r->depth >= TAM_ARRAY_LEN(r->stack)) {
        return tam_fail(why, "nesting exceeds the depth limit", TAM_ECBOR_LIMIT);
    }
    r->stack[r->depth].idx = idx;
    r->stack[r->depth].left = children;
    r->depth++;
    return TAM_OK;
}

/* Decodes one head at r->pos and places it in the tree. */
static int step(struct reader *r, const char **why)
{
    if (r->doc->n >= r->lim->max_items) {
        return tam_fail(why, "item count exceeds the limit", TAM_ECBOR_LIMIT);
    }
    if (r->doc->n == r->doc->cap) {
        int err = grow_items(r->doc, r->len, r->lim->max_items);
        if (err != TAM_OK) {
            return tam_fail(why, "item count exceeds the limit", err);
        }
    }
    int err = TAM_OK;
    size_t used = decode_head(r, why, &err);
    if (used == 0) {
        return err;
    }
    uint32_t idx = r->doc->n++;
    struct tam_cbor_item *it = &r->doc->items[idx];
    *it = r->cur;
    it->raw = r->buf + r->pos;
    r->pos += used;
    uint64_t children = 0;
    if (it->type == TAM_CBOR_ARRAY || it->type == TAM_CBOR_MAP) {
        err = check_count(r, it, why);
        children = it->type == TAM_CBOR_MAP ? 2 * it->val : it->val;
    } else if (it->type == TAM_CBOR_TAG) {
        it->count = 1;
        children = 1;
    }
    if (err != TAM_OK) {
        return err;
    }
    if (children == 0) {
        return complete_item(r, idx, why);
    }
    return push_container(r, idx, children, why);
}

int tam_cbor_decode(const uint8_t *buf, size_t len, const struct tam_cbor_limits *lim,
                    struct tam_cbor_doc *doc, const char **why)
{
    if (lim == NULL) {
        lim = &tam_cbor_default_limits;
    }
    doc->n = 0;
    if (len == 0) {
        return tam_fail(why, "empty input", TAM_ECBOR);
    }
    if (len > lim->max_size) {
        return tam_fail(why, "input exceeds the size limit", TAM_ETOOBIG);
    }
    struct reader r = {.buf = buf, .len = len, .lim = lim, .doc = doc};
    do {
        int err = step(&r, why);
        if (err != TAM_OK) {
            doc->n = 0;
            return err;
        }
    } while (r.depth > 0 && r.pos < len);
    if (r.depth > 0) {
        doc->n = 0;
        return tam_fail(why, "truncated: container not complete", TAM_ECBOR);
    }
    if (r.pos != len) {
        doc->n = 0;
        return tam_fail(why, "trailing bytes after the item", TAM_ECBOR);
    }
    return TAM_OK;
}

void tam_cbor_doc_init(struct tam_cbor_doc *doc)
{
    doc->items = NULL;
    doc->n = 0;
    doc->cap = 0;
}

void tam_cbor_doc_finish(struct tam_cbor_doc *doc)
{
    if (doc == NULL) {
        return;
    }
    tam_free(doc->items);
    tam_cbor_doc_init(doc);
}

/* ---- accessors ---- */

const struct tam_cbor_item *tam_cbor_array_at(const struct tam_cbor_item *arr, uint32_t i)
{
    if (arr == NULL || arr->type != TAM_CBOR_ARRAY || i >= arr->count) {
        return NULL;
    }
    const struct tam_cbor_item *it = tam_cbor_first(arr);
    while (i-- > 0) {
        it = tam_cbor_next(it);
    }
    return it;
}

static const struct tam_cbor_item *map_find(const struct tam_cbor_item *map,
                                            const struct tam_cbor_item *want)
{
    if (map == NULL || map->type != TAM_CBOR_MAP || map->count == 0) {
        return NULL;
    }
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        if (key_equal(k, want)) {
            return v;
        }
        k = tam_cbor_next(v);
    }
    return NULL;
}

const struct tam_cbor_item *tam_cbor_map_get_int(const struct tam_cbor_item *map, int64_t key)
{
    struct tam_cbor_item want = {0};
    want.type = key >= 0 ? TAM_CBOR_UINT : TAM_CBOR_NINT;
    want.val = key >= 0 ? (uint64_t)key : (uint64_t)(-1 - key);
    return map_find(map, &want);
}

const struct tam_cbor_item *tam_cbor_map_get_str(const struct tam_cbor_item *map, const char *key)
{
    struct tam_cbor_item want = {0};
    want.type = TAM_CBOR_TSTR;
    want.data = (const uint8_t *)key;
    want.val = strlen(key);
    return map_find(map, &want);
}

bool tam_cbor_get_uint(const struct tam_cbor_item *it, uint64_t *out)
{
    if (it == NULL || it->type != TAM_CBOR_UINT) {
        return false;
    }
    *out = it->val;
    return true;
}

bool tam_cbor_get_int(const struct tam_cbor_item *it, int64_t *out)
{
    if (it == NULL || (it->type != TAM_CBOR_UINT && it->type != TAM_CBOR_NINT) ||
        it->val > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = it->type == TAM_CBOR_UINT ? (int64_t)it->val : -1 - (int64_t)it->val;
    return true;
}

static bool get_string(const struct tam_cbor_item *it, enum tam_cbor_type type,
                       struct tam_bytes *out)
{
    if (it == NULL || it->type != type) {
        return false;
    }
    out->ptr = it->data;
    out->len = (size_t)it->val;
    return true;
}

bool tam_cbor_get_bytes(const struct tam_cbor_item *it, struct tam_bytes *out)
{
    return get_string(it, TAM_CBOR_BSTR, out);
}

bool tam_cbor_get_text(const struct tam_cbor_item *it, struct tam_bytes *out)
{
    return get_string(it, TAM_CBOR_TSTR, out);
}

bool tam_cbor_get_bool(const struct tam_cbor_item *it, bool *out)
{
    if (it == NULL || it->type != TAM_CBOR_SIMPLE ||
        (it->val != TAM_CBOR_TRUE && it->val != TAM_CBOR_FALSE)) {
        return false;
    }
    *out = it->val == TAM_CBOR_TRUE;
    return true;
}

bool tam_cbor_is_null(const struct tam_cbor_item *it)
{
    return it != NULL && it->type == TAM_CBOR_SIMPLE && it->val == TAM_CBOR_NULL;
}

const struct tam_cbor_item *tam_cbor_untag(const struct tam_cbor_item *it)
{
    while (it != NULL && it->type == TAM_CBOR_TAG) {
        it = tam_cbor_first(it);
    }
    return it;
}
