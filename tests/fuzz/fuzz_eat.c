/* Fuzz target: EAT claims decoding, signed-EAT verification and the TEEP profile checks. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tam/eat.h"
#include "tam/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* agent_p256 (tests/vectors) as an attester key. */
static const uint8_t agent_xy[64] = {
    0x58, 0x86, 0xcd, 0x61, 0xdd, 0x87, 0x58, 0x62, 0xe5, 0xaa, 0xa8, 0x20, 0xe7, 0xa1, 0x52, 0x74,
    0xc9, 0x68, 0xa9, 0xbc, 0x96, 0x04, 0x8d, 0xdc, 0xac, 0xe3, 0x2f, 0x50, 0xc3, 0x65, 0x1b, 0xa3,
    0x9e, 0xed, 0x81, 0x25, 0xe9, 0x32, 0xcd, 0x60, 0xc0, 0xea, 0xd3, 0x65, 0x0d, 0x0a, 0x48, 0x5c,
    0xf7, 0x26, 0xd3, 0x78, 0xd1, 0xb0, 0x16, 0xed, 0x42, 0x98, 0xb2, 0x96, 0x1e, 0x25, 0x8f, 0x1b};

static struct tam_key *attester;

static void check(const struct tam_eat_claims *c)
{
    static const uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct tam_eat_expect e;
    memset(&e, 0, sizeof(e));
    e.nonce = tam_bytes_of(nonce, sizeof(nonce));
    e.require_manifests = true;
    e.now = 1700000000;
    e.skew = 60;
    const char *why = NULL;
    int err = tam_eat_check_teep(c, &e, &why);
    assert(err == TAM_OK || why != NULL);
    struct tam_eat_policy p;
    memset(&p, 0, sizeof(p));
    p.min_dbgstat = 2;
    err = tam_eat_check_policy(c, &p, &why);
    assert(err == TAM_OK || why != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (attester == NULL &&
        tam_key_from_raw_public(TAM_KEY_P256, agent_xy, 64, &attester) != TAM_OK) {
        abort();
    }
    struct tam_eat_claims c;
    const char *why = NULL;
    if (tam_eat_decode(data, size, &c, &why) == TAM_OK) {
        check(&c);
    } else {
        assert(why != NULL);
    }
    const struct tam_key *keys[1] = {attester};
    if (tam_eat_verify(data, size, keys, 1, &c, &why) == TAM_OK) {
        check(&c);
    }
    return 0;
}
