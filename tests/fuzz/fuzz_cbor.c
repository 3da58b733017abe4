/* Fuzz target: the bounded CBOR reader, plus re-encoding what it accepted. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct tam_cbor_item *it, struct tam_cbor_writer *w)
{
    switch (it->type) {
    case TAM_CBOR_ARRAY:
    case TAM_CBOR_MAP: {
        uint32_t n = it->type == TAM_CBOR_MAP ? 2 * it->count : it->count;
        tam_cbor_open_array(w, n);
        const struct tam_cbor_item *c = tam_cbor_first(it);
        for (uint32_t i = 0; i < n; i++, c = tam_cbor_next(c)) {
            walk(c, w);
        }
        break;
    }
    case TAM_CBOR_TAG:
        tam_cbor_put_tag(w, it->val);
        walk(tam_cbor_first(it), w);
        break;
    default:
        tam_cbor_put_raw(w, it->raw, it->raw_len);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    const char *why = NULL;
    int err = tam_cbor_decode(data, size, NULL, &doc, &why);
    assert(err == TAM_OK || why != NULL); /* every failure explains itself */
    if (err == TAM_OK) {
        const struct tam_cbor_item *root = tam_cbor_root(&doc);
        assert(root->raw == data && root->raw_len == size && root->skip == doc.n);
        struct tam_buf out;
        tam_buf_init(&out, 2 * size + 64);
        struct tam_cbor_writer w;
        tam_cbor_writer_init(&w, &out);
        walk(root, &w);
        assert(tam_cbor_writer_finish(&w) == TAM_OK);
        tam_buf_finish(&out);
    }
    tam_cbor_doc_finish(&doc);
    return 0;
}
