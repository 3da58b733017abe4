/*
 * SUIT authentication (SM 8.3): the auth[0] digest covers the bstr-wrapped
 * manifest, each COSE auth block signs auth[0]'s content as a detached payload,
 * and a severed member is bound to the manifest by the digest left in its place.
 */
#include <string.h>

#include "suit_internal.h"
#include "tam/err.h"

void tam_suit_manifest_digest(const struct tam_suit_envelope *env, uint8_t out[TAM_SHA256_LEN])
{
    tam_sha256(env->manifest_bstr.ptr, env->manifest_bstr.len, out);
}

/* TAM_OK when digest is SHA-256 of data; TAM_ESUIT for another algorithm. */
static int check_sha256(const struct tam_suit_digest *digest, struct tam_bytes data)
{
    if (digest->alg != SUIT_ALG_SHA256) {
        return TAM_ESUIT;
    }
    uint8_t md[TAM_SHA256_LEN];
    tam_sha256(data.ptr, data.len, md);
    if (digest->bytes.len != TAM_SHA256_LEN || !tam_ct_equal(md, digest->bytes.ptr, sizeof(md))) {
        return TAM_ESUIT_DIGEST;
    }
    return TAM_OK;
}

int tam_suit_check_digest(const struct tam_suit_envelope *env)
{
    int err = check_sha256(&env->digest, env->manifest_bstr);
    const struct tam_suit_member *const severable[] = {
        &env->dependency_resolution,
        &env->payload_fetch,
        &env->candidate_verification,
        &env->install,
        &env->text,
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(severable) && err == TAM_OK; i++) {
        const struct tam_suit_member *m = severable[i];
        if (m->severed && m->available) {
            /* The digest covers the member's bstr encoding, head included (SM 8.4.10). */
            err = check_sha256(&m->digest, m->bstr);
        }
    }
    return err;
}

static bool block_verifies(const struct tam_suit_envelope *env, struct tam_bytes block,
                           const struct tam_key *const *anchors, size_t n)
{
    struct tam_cose_msg msg;
    if (tam_cose_parse(block.ptr, block.len, &msg, NULL) != TAM_OK || !msg.detached) {
        return false; /* MACs, malformed blocks and attached payloads never authenticate */
    }
    for (size_t k = 0; k < n; k++) {
        for (unsigned s = 0; s < msg.nsigners; s++) {
            if (anchors[k] != NULL && tam_key_alg_ok(anchors[k], msg.signers[s].alg) &&
                tam_cose_verify(&msg, s, anchors[k], &env->digest_bstr, NULL) == TAM_OK) {
                return true;
            }
        }
    }
    return false;
}

int tam_suit_verify(const struct tam_suit_envelope *env, const struct tam_key *const *anchors,
                    size_t n)
{
    int err = tam_suit_check_digest(env);
    if (err != TAM_OK) {
        return err;
    }
    for (unsigned i = 0; anchors != NULL && i < env->nauth; i++) {
        if (block_verifies(env, env->auth[i], anchors, n)) {
            return TAM_OK;
        }
    }
    return TAM_ESIG;
}
