#include <criterion/criterion.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/err.h"
#include "testutil.h"

/* The decoded items point into the input, so the last input is kept until the next call. */
static uint8_t *last_input;

static int decode_hex(const char *hex, struct tam_cbor_doc *doc, const char **why)
{
    size_t len;
    tam_free(last_input);
    last_input = tu_hex(hex, &len);
    return tam_cbor_decode(last_input, len, NULL, doc, why);
}

static int rc_of(const char *hex)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    const char *why = NULL;
    int err = decode_hex(hex, &doc, &why);
    if (err != TAM_OK) {
        cr_assert_not_null(why, "every failure explains itself (%s)", hex);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* Re-encodes a decoded item with the deterministic writer (maps sorted by key bytes). */
static void reencode(struct tam_cbor_writer *w, const struct tam_cbor_item *it);

static int cmp_raw(const void *a, const void *b)
{
    const struct tam_cbor_item *x = *(const struct tam_cbor_item *const *)a;
    const struct tam_cbor_item *y = *(const struct tam_cbor_item *const *)b;
    size_t n = x->raw_len < y->raw_len ? x->raw_len : y->raw_len;
    int c = memcmp(x->raw, y->raw, n);
    return c != 0 ? c : (x->raw_len > y->raw_len) - (x->raw_len < y->raw_len);
}

static void reencode_map(struct tam_cbor_writer *w, const struct tam_cbor_item *it)
{
    const struct tam_cbor_item **keys = tam_calloc(it->count + 1, sizeof(*keys));
    const struct tam_cbor_item *k = tam_cbor_first(it);
    for (uint32_t i = 0; i < it->count; i++) {
        keys[i] = k;
        k = tam_cbor_next(tam_cbor_next(k));
    }
    qsort(keys, it->count, sizeof(*keys), cmp_raw);
    tam_cbor_open_map(w, it->count);
    for (uint32_t i = 0; i < it->count; i++) {
        reencode(w, keys[i]);
        reencode(w, tam_cbor_next(keys[i]));
    }
    tam_free(keys);
}

static void reencode(struct tam_cbor_writer *w, const struct tam_cbor_item *it)
{
    const struct tam_cbor_item *c;
    switch (it->type) {
    case TAM_CBOR_UINT:
        tam_cbor_put_uint(w, it->val);
        break;
    case TAM_CBOR_NINT: {
        int64_t v;
        cr_assert(tam_cbor_get_int(it, &v));
        tam_cbor_put_int(w, v);
        break;
    }
    case TAM_CBOR_BSTR:
        tam_cbor_put_bstr(w, it->data, it->val);
        break;
    case TAM_CBOR_TSTR:
        tam_cbor_put_tstr(w, (const char *)it->data, it->val);
        break;
    case TAM_CBOR_ARRAY:
        tam_cbor_open_array(w, it->count);
        c = tam_cbor_first(it);
        for (uint32_t i = 0; i < it->count; i++, c = tam_cbor_next(c)) {
            reencode(w, c);
        }
        break;
    case TAM_CBOR_MAP:
        reencode_map(w, it);
        break;
    case TAM_CBOR_TAG:
        tam_cbor_put_tag(w, it->val);
        reencode(w, tam_cbor_first(it));
        break;
    default:
        tam_cbor_put_raw(w, it->raw, it->raw_len);
        break;
    }
}

static bool is_sorted_vector(const char *name)
{
    /* SUIT examples and our derived COSE vectors are deterministic; TEEP messages are not. */
    return strncmp(name, "suit_", 5) == 0 || strncmp(name, "teep_suit_", 10) == 0 ||
           strncmp(name, "derived_", 8) == 0;
}

Test(cbor, every_vector_decodes_and_reencodes)
{
    DIR *d = opendir(tu_vector_path(""));
    cr_assert_not_null(d);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".hex") != 0 || strstr(e->d_name, ".raw.") ||
            strstr(e->d_name, ".tbs.")) {
            continue;
        }
        size_t len;
        uint8_t *b = tu_load_hex(e->d_name, &len);
        struct tam_cbor_doc doc;
        tam_cbor_doc_init(&doc);
        const char *why = NULL;
        cr_assert_eq(tam_cbor_decode(b, len, NULL, &doc, &why), TAM_OK, "%s: %s", e->d_name, why);
        const struct tam_cbor_item *root = tam_cbor_root(&doc);
        cr_assert_eq(root->raw, b);
        cr_assert_eq(root->raw_len, len);
        cr_assert_eq(root->skip, doc.n);

        struct tam_buf out;
        tam_buf_init(&out, 1u << 20);
        struct tam_cbor_writer w;
        tam_cbor_writer_init(&w, &out);
        reencode(&w, root);
        cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK, "%s", e->d_name);
        if (is_sorted_vector(e->d_name)) {
            cr_assert_eq(out.len, len, "%s re-encodes to the same length", e->d_name);
            cr_assert_eq(memcmp(out.data, b, len), 0, "%s re-encodes byte-exact", e->d_name);
        } else {
            struct tam_cbor_doc again;
            tam_cbor_doc_init(&again);
            cr_assert_eq(tam_cbor_decode(out.data, out.len, NULL, &again, NULL), TAM_OK);
            cr_assert_eq(again.n, doc.n, "%s: same item count", e->d_name);
            tam_cbor_doc_finish(&again);
        }
        tam_buf_finish(&out);
        tam_cbor_doc_finish(&doc);
        tam_free(b);
        seen++;
    }
    closedir(d);
    cr_assert_geq(seen, 40, "expected the whole vector set, saw %d", seen);
}

Test(cbor, scalars_and_accessors)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    /* {1: -7, "a": h'0102', 3: [true, null, 1000000]} */
    cr_assert_eq(decode_hex("a30126616142010203 83 f5 f6 1a000f4240", &doc, NULL), TAM_OK);
    const struct tam_cbor_item *m = tam_cbor_root(&doc);
    cr_assert_eq(m->type, TAM_CBOR_MAP);
    cr_assert_eq(m->count, 3);
    int64_t v;
    cr_assert(tam_cbor_get_int(tam_cbor_map_get_int(m, 1), &v));
    cr_assert_eq(v, -7);
    struct tam_bytes bs;
    cr_assert(tam_cbor_get_bytes(tam_cbor_map_get_str(m, "a"), &bs));
    cr_assert_eq(bs.len, 2);
    cr_assert_eq(bs.ptr[1], 2);
    const struct tam_cbor_item *arr = tam_cbor_map_get_int(m, 3);
    bool t;
    cr_assert(tam_cbor_get_bool(tam_cbor_array_at(arr, 0), &t) && t);
    cr_assert(tam_cbor_is_null(tam_cbor_array_at(arr, 1)));
    uint64_t u;
    cr_assert(tam_cbor_get_uint(tam_cbor_array_at(arr, 2), &u) && u == 1000000);
    cr_assert_null(tam_cbor_array_at(arr, 3));
    cr_assert_null(tam_cbor_map_get_int(m, 2));
    cr_assert_null(tam_cbor_map_get_int(arr, 1), "not a map");
    tam_cbor_doc_finish(&doc);
}

Test(cbor, one_byte_tags_6_to_20_are_accepted)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    /* 18([h'', {}, h'', h'']) : libcbor 0.8 alone rejects this head. */
    cr_assert_eq(decode_hex("d28440a04040", &doc, NULL), TAM_OK);
    const struct tam_cbor_item *r = tam_cbor_root(&doc);
    cr_assert_eq(r->type, TAM_CBOR_TAG);
    cr_assert_eq(r->val, 18);
    cr_assert_eq(tam_cbor_untag(r)->type, TAM_CBOR_ARRAY);
    cr_assert_eq(decode_hex("c640", &doc, NULL), TAM_OK);
    cr_assert_eq(decode_hex("d4f6", &doc, NULL), TAM_OK);
    cr_assert_eq(decode_hex("d86b a0", &doc, NULL), TAM_OK);  /* tag 107, two-byte head */
    cr_assert_eq(decode_hex("d2d2d201", &doc, NULL), TAM_OK); /* nested tags */
    cr_assert_eq(tam_cbor_untag(tam_cbor_root(&doc))->val, 1);
    tam_cbor_doc_finish(&doc);
}

Test(cbor, strictness_rules)
{
    cr_assert_eq(rc_of(""), TAM_ECBOR, "empty");
    cr_assert_eq(rc_of("0102"), TAM_ECBOR, "trailing bytes");
    cr_assert_eq(rc_of("a2010201 03"), TAM_ECBOR, "duplicate key");
    cr_assert_eq(rc_of("a2616101616102"), TAM_ECBOR, "duplicate text key");
    cr_assert_eq(rc_of("a20102 1801 03"), TAM_ECBOR, "duplicate key, non-preferred encoding");
    cr_assert_eq(rc_of("5f4101ff"), TAM_ECBOR, "indefinite bstr");
    cr_assert_eq(rc_of("9f01ff"), TAM_ECBOR, "indefinite array");
    cr_assert_eq(rc_of("bf0101ff"), TAM_ECBOR, "indefinite map");
    cr_assert_eq(rc_of("ff"), TAM_ECBOR, "lone break");
    cr_assert_eq(rc_of("1c"), TAM_ECBOR, "reserved additional info");
    cr_assert_eq(rc_of("83 01 02"), TAM_ECBOR, "truncated array");
    cr_assert_eq(rc_of("d2"), TAM_ECBOR, "tag without content");
    cr_assert_eq(rc_of("a1 01"), TAM_ECBOR, "map without value");
    cr_assert_eq(rc_of("4301"), TAM_ECBOR, "bstr longer than input");
}

Test(cbor, declared_counts_never_drive_allocation)
{
    /* array(2^28), map(2^32-1), bstr(2^63): each 5-9 bytes of input. */
    cr_assert_eq(rc_of("9a10000000"), TAM_ECBOR);
    cr_assert_eq(rc_of("baffffffff"), TAM_ECBOR);
    cr_assert_eq(rc_of("5b7fffffffffffffff00"), TAM_ECBOR);
    cr_assert_eq(rc_of("9bffffffffffffffff"), TAM_ECBOR);
}

Test(cbor, duplicate_keys_in_large_maps)
{
    struct tam_buf b;
    tam_buf_init(&b, 1 << 20);
    uint8_t head[] = {0xb9, 0x03, 0xe8}; /* map(1000) */
    cr_assert_eq(tam_buf_append(&b, head, sizeof(head)), TAM_OK);
    for (int i = 0; i < 1000; i++) {
        int key = i == 999 ? 500 : i;
        uint8_t kv[4] = {0x19, (uint8_t)(key >> 8), (uint8_t)key, 0x00};
        cr_assert_eq(tam_buf_append(&b, kv, sizeof(kv)), TAM_OK);
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    const char *why = NULL;
    cr_assert_eq(tam_cbor_decode(b.data, b.len, NULL, &doc, &why), TAM_ECBOR);
    cr_assert_str_eq(why, "duplicate map key");
    b.data[b.len - 3] = 0x03;
    b.data[b.len - 2] = 0xe8; /* key 1000: now unique */
    cr_assert_eq(tam_cbor_decode(b.data, b.len, NULL, &doc, NULL), TAM_OK);
    cr_assert_eq(doc.n, 2001);
    tam_cbor_doc_finish(&doc);
    tam_buf_finish(&b);
}

Test(cbor, limits)
{
    struct tam_cbor_limits lim = {.max_size = 64, .max_depth = 3, .max_items = 5};
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    size_t len;
    uint8_t *b = tu_hex("818181 01", &len);
    cr_assert_eq(tam_cbor_decode(b, len, &lim, &doc, NULL), TAM_OK);
    tam_free(b);
    b = tu_hex("81818181 01", &len);
    cr_assert_eq(tam_cbor_decode(b, len, &lim, &doc, NULL), TAM_ECBOR_LIMIT, "depth");
    tam_free(b);
    b = tu_hex("8501020304 05", &len);
    cr_assert_eq(tam_cbor_decode(b, len, &lim, &doc, NULL), TAM_ECBOR_LIMIT, "items");
    tam_free(b);
    uint8_t big[65] = {0x58, 63};
    cr_assert_eq(tam_cbor_decode(big, sizeof(big), &lim, &doc, NULL), TAM_ETOOBIG, "size");
    tam_cbor_doc_finish(&doc);

    /* A million nested arrays stop at the default depth limit without deep recursion. */
    uint8_t *deep = tam_malloc(1000000);
    memset(deep, 0x81, 1000000);
    tam_cbor_doc_init(&doc);
    cr_assert_eq(tam_cbor_decode(deep, 1000000, NULL, &doc, NULL), TAM_ECBOR_LIMIT);
    tam_cbor_doc_finish(&doc);
    tam_free(deep);
}

Test(cbor, strings_are_zero_copy)
{
    size_t len;
    uint8_t *b = tu_hex("824568656c6c6f62686a", &len);
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    cr_assert_eq(tam_cbor_decode(b, len, NULL, &doc, NULL), TAM_OK);
    struct tam_bytes s;
    cr_assert(tam_cbor_get_bytes(tam_cbor_array_at(tam_cbor_root(&doc), 0), &s));
    cr_assert_eq(s.ptr, b + 2);
    cr_assert(tam_cbor_get_text(tam_cbor_array_at(tam_cbor_root(&doc), 1), &s));
    cr_assert_eq(s.ptr, b + 8);
    cr_assert_eq(s.len, 2);
    tam_cbor_doc_finish(&doc);
    tam_free(b);
}

static void expect_bytes(const struct tam_buf *out, const char *hex)
{
    size_t len;
    uint8_t *want = tu_hex(hex, &len);
    cr_assert_eq(out->len, len, "length %zu != %zu", out->len, len);
    cr_assert_eq(memcmp(out->data, want, len), 0);
    tam_free(want);
}

Test(cbor_writer, shortest_heads_and_types)
{
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_array(&w, 9);
    tam_cbor_put_uint(&w, 0);
    tam_cbor_put_uint(&w, 23);
    tam_cbor_put_uint(&w, 24);
    tam_cbor_put_uint(&w, 1000);
    tam_cbor_put_int(&w, -7);
    tam_cbor_put_int(&w, -65534);
    tam_cbor_put_str(&w, "ab");
    tam_cbor_put_bool(&w, false);
    tam_cbor_put_null(&w);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    expect_bytes(&out, "89 00 17 1818 1903e8 26 39fffd 626162 f4 f6");
    tam_buf_finish(&out);
}

Test(cbor_writer, map_keys_must_be_sorted)
{
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_map(&w, 4);
    tam_cbor_put_uint(&w, 1);
    tam_cbor_put_uint(&w, 2);
    tam_cbor_put_uint(&w, 24); /* 0x1818 sorts after 0x01 */
    tam_cbor_put_uint(&w, 2);
    tam_cbor_put_int(&w, -1); /* 0x20 sorts after 0x18 */
    tam_cbor_open_array(&w, 0);
    tam_cbor_put_str(&w, "a");
    tam_cbor_put_uint(&w, 0);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    expect_bytes(&out, "a4 0102 181802 2080 616100");

    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_map(&w, 2);
    tam_cbor_put_uint(&w, 3);
    tam_cbor_put_uint(&w, 0);
    tam_cbor_put_uint(&w, 1);
    tam_cbor_put_uint(&w, 0);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_ECBOR, "unsorted keys are refused");

    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_map(&w, 2);
    tam_cbor_put_uint(&w, 3);
    tam_cbor_put_uint(&w, 0);
    tam_cbor_put_uint(&w, 3);
    tam_cbor_put_uint(&w, 0);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_ECBOR, "duplicate keys are refused");
    tam_buf_finish(&out);
}

Test(cbor_writer, wrap_tags_raw_and_balance)
{
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &out);
    tam_cbor_put_tag(&w, 18);
    tam_cbor_open_array(&w, 2);
    tam_cbor_open_wrap(&w);
    tam_cbor_open_map(&w, 1);
    tam_cbor_put_uint(&w, 1);
    tam_cbor_put_int(&w, -9);
    tam_cbor_close_wrap(&w);
    tam_cbor_put_raw(&w, "\x41\x00", 2);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    expect_bytes(&out, "d2 82 43a10128 4100");

    /* A wrap over 300 bytes gets a two-byte length head spliced in front. */
    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_wrap(&w);
    uint8_t blob[300] = {0};
    tam_cbor_put_bstr(&w, blob, sizeof(blob));
    tam_cbor_close_wrap(&w);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK);
    cr_assert_eq(out.len, 3 + 3 + 300);
    cr_assert_eq(out.data[0], 0x59);
    cr_assert_eq(out.data[1], 0x01);
    cr_assert_eq(out.data[2], 0x2f);

    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_uint(&w, 1);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_ECBOR, "unfinished array");

    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_array(&w, 1);
    tam_cbor_put_uint(&w, 1);
    tam_cbor_put_uint(&w, 2);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_OK, "second top-level item is a sequence");

    tam_buf_reset(&out);
    tam_cbor_writer_init(&w, &out);
    tam_cbor_open_wrap(&w);
    tam_cbor_put_uint(&w, 1);
    tam_cbor_put_uint(&w, 2);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_ECBOR, "two items inside one wrap");
    tam_buf_finish(&out);
}

Test(cbor_writer, output_ceiling)
{
    struct tam_buf out;
    tam_buf_init(&out, 8);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &out);
    tam_cbor_put_bstr(&w, "0123456789", 10);
    cr_assert_eq(tam_cbor_writer_finish(&w), TAM_ETOOBIG);
    tam_buf_finish(&out);
}

Test(cbor, allocation_failure_is_clean)
{
    size_t len;
    uint8_t *b = tu_load_hex("teep_suit_personalization.hex", &len);
    for (long n = 0; n < 8; n++) {
        struct tam_cbor_doc doc;
        tam_cbor_doc_init(&doc);
        tam_alloc_fail_after(n);
        int err = tam_cbor_decode(b, len, NULL, &doc, NULL);
        tam_alloc_fail_after(-1);
        cr_assert(err == TAM_OK || err == TAM_ENOMEM);
        tam_cbor_doc_finish(&doc);
    }
    tam_free(b);
}
