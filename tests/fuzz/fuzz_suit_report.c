/* Fuzz target: SUIT report decoding (bare or COSE_Sign1) and re-encoding of what decoded. */
#include <assert.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/err.h"
#include "tam/suit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tam_arena arena;
    tam_arena_init(&arena, 4096, 4u << 20);
    struct tam_suit_report r;
    const char *why = NULL;
    int err = tam_suit_report_decode(data, size, &arena, &r, &why);
    assert(err == TAM_OK || why != NULL || err == TAM_ENOMEM);
    if (err == TAM_OK) {
        struct tam_buf out;
        tam_buf_init(&out, 8u << 20);
        err = tam_suit_report_encode(&r, &out);
        assert(err == TAM_OK || err == TAM_EINVAL);
        tam_buf_finish(&out);
    }
    tam_arena_finish(&arena);
    return 0;
}
