/*
 * Signed EATs and Attestation Results: a COSE_Sign1 around the claims set (RFC 9711 section 5,
 * TEEP profile section 5), optionally wrapped in the CWT tag 61 (RFC 8392 section 6).
 */
#include <string.h>

#include "tam/cose.h"
#include "tam/eat.h"
#include "tam/err.h"

/* The CWT tag 61 is a two-byte head (0xd8 0x3d) in front of the COSE structure. */
#define CWT_TAG_B0 0xd8
#define CWT_TAG_B1 0x3d

static bool kid_selects(const struct tam_bytes *kid, const struct tam_key *key)
{
    return kid->len == 0 ||
           (kid->len == TAM_KID_LEN && memcmp(kid->ptr, tam_key_kid(key), TAM_KID_LEN) == 0);
}

/*
 * A kid in the header selects keys by RFC 9679 thumbprint; without one every key whose type
 * fits the alg is tried. Any failure to find a verifying trusted key is TAM_ESIG.
 */
static int verify_with(const struct tam_cose_msg *msg, const struct tam_key *const *keys, size_t n,
                       const char **why)
{
    const struct tam_cose_signer *s = &msg->signers[0];
    bool tried = false;
    for (size_t i = 0; i < n; i++) {
        const struct tam_key *k = keys[i];
        if (k == NULL || !kid_selects(&s->kid, k) || !tam_key_alg_ok(k, s->alg)) {
            continue;
        }
        tried = true;
        int err = tam_cose_verify(msg, 0, k, NULL, NULL);
        if (err == TAM_OK) {
            return TAM_OK;
        }
        if (err != TAM_ESIG) {
            return tam_fail(why, "signature verification could not run", err);
        }
    }
    if (!tried) {
        return tam_fail(why,
                        s->kid.len > 0 ? "EAT kid names no trusted key for its algorithm"
                                       : "no trusted key for the EAT signature algorithm",
                        TAM_ESIG);
    }
    return tam_fail(why, "EAT signature does not verify", TAM_ESIG);
}

int tam_eat_verify(const uint8_t *buf, size_t len, const struct tam_key *const *keys, size_t n,
                   struct tam_eat_claims *out, const char **why)
{
    if (out == NULL || (buf == NULL && len > 0) || (keys == NULL && n > 0)) {
        return TAM_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (len > TAM_EAT_MAX_SIZE) {
        return tam_fail(why, "signed EAT exceeds the size limit", TAM_ETOOBIG);
    }
    if (len >= 2 && buf[0] == CWT_TAG_B0 && buf[1] == CWT_TAG_B1) {
        buf += 2;
        len -= 2;
    }
    struct tam_cose_msg msg;
    int err = tam_cose_parse(buf, len, &msg, why);
    if (err != TAM_OK) {
        return err;
    }
    if (msg.kind != TAM_COSE_SIGN1) {
        return tam_fail(why, "EAT must be a COSE_Sign1", TAM_ECOSE);
    }
    if (msg.detached) {
        return tam_fail(why, "EAT payload must be attached", TAM_ECOSE);
    }
    err = verify_with(&msg, keys, n, why);
    if (err != TAM_OK) {
        return err;
    }
    return tam_eat_decode(msg.payload.ptr, msg.payload.len, out, why);
}
