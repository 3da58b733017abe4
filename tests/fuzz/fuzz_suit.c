/* Fuzz target: SUIT envelope parsing, digest check and signature verification. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "tam/err.h"
#include "tam/suit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* suit_example_key_p256 (tests/vectors): the key of every SUIT example. */
static const uint8_t suit_xy[64] = {
    0x84, 0x96, 0x81, 0x1a, 0xae, 0x0b, 0xaa, 0xab, 0xd2, 0x61, 0x57, 0x18, 0x9e, 0xec, 0xda, 0x26,
    0xbe, 0xaa, 0x8b, 0xf1, 0x1b, 0x6f, 0x3f, 0xe6, 0xe2, 0xb5, 0x65, 0x9c, 0x85, 0xdb, 0xc0, 0xad,
    0x3b, 0x1f, 0x2a, 0x4b, 0x6c, 0x09, 0x81, 0x31, 0xc0, 0xa3, 0x6d, 0xac, 0xd1, 0xd7, 0x8b, 0xd3,
    0x81, 0xdc, 0xdf, 0xb0, 0x9c, 0x05, 0x2d, 0xb3, 0x39, 0x91, 0xdb, 0x73, 0x38, 0xb4, 0xa8, 0x96};

static struct tam_key *anchor;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (anchor == NULL && tam_key_from_raw_public(TAM_KEY_P256, suit_xy, 64, &anchor) != TAM_OK) {
        abort();
    }
    struct tam_suit_envelope env;
    const char *why = NULL;
    int err = tam_suit_parse(data, size, &env, &why);
    assert(err == TAM_OK || why != NULL);
    if (err == TAM_OK) {
        uint8_t digest[32];
        tam_suit_manifest_digest(&env, digest);
        err = tam_suit_check_digest(&env);
        assert(err == TAM_OK || err == TAM_ESUIT_DIGEST || err == TAM_ESUIT);
        const struct tam_key *anchors[1] = {anchor};
        err = tam_suit_verify(&env, anchors, 1);
        assert(err == TAM_OK || err == TAM_ESIG || err == TAM_ESUIT_DIGEST || err == TAM_ESUIT);
    }
    return 0;
}
