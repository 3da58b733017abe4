/*
 * Fuzz target: TEEP decode in all three numberings (bare, or the payload of a
 * COSE wrapper), and re-encoding of everything that decoded: what we accept we
 * must be able to emit, and emit something we accept again.
 */
#include <assert.h>
#include <stdint.h>

#include "tam/cose.h"
#include "tam/err.h"
#include "tam/teep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size, enum tam_teep_numbering num)
{
    struct tam_arena arena;
    tam_arena_init(&arena, 4096, 4u << 20);
    struct tam_teep_msg msg;
    const char *why = NULL;
    int err = tam_teep_decode(data, size, num, &arena, &msg, &why);
    assert(err == TAM_OK || why != NULL || err == TAM_ENOMEM);
    if (err == TAM_OK) {
        struct tam_buf out;
        tam_buf_init(&out, 8u << 20);
        err = tam_teep_encode(&msg, num, &out);
        assert(err == TAM_OK);
        struct tam_arena again;
        tam_arena_init(&again, 4096, 4u << 20);
        struct tam_teep_msg msg2;
        err = tam_teep_decode(out.data, out.len, num, &again, &msg2, NULL);
        assert(err == TAM_OK && msg2.type == msg.type);
        tam_arena_finish(&again);
        tam_buf_finish(&out);
    }
    tam_arena_finish(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tam_cose_msg cose;
    if (tam_cose_parse(data, size, &cose, NULL) == TAM_OK && !cose.detached) {
        data = cose.payload.ptr;
        size = cose.payload.len;
    }
    for (int num = TAM_TEEP_RFC; num <= TAM_TEEP_DRAFT12; num++) {
        one(data, size, (enum tam_teep_numbering)num);
    }
    return 0;
}
