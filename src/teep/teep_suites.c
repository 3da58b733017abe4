/* Standard cipher suites and SUIT COSE profiles, and choosing among a peer's suites. */
#include <string.h>

#include "tam/err.h"
#include "tam/teep.h"

/* COSE algorithm ids used below (RFC 9053, RFC 9864, SUIT MTI). */
enum {
    ALG_ES256 = -7,
    ALG_EDDSA = -8,
    ALG_ESP256 = -9,
    ALG_ED25519 = -19,
    ALG_SHA256 = -16,
    ALG_ECDH_ES_A128KW = -29,
    ALG_A128CTR = -65534,
    ALG_A128GCM = 1,
    ALG_CHACHA20_POLY1305 = 24,
};

void tam_teep_suite_single(struct tam_teep_suite *out, int64_t cose_type, int64_t alg)
{
    memset(out, 0, sizeof(*out));
    out->n_ops = 1;
    out->ops[0].cose_type = cose_type;
    out->ops[0].alg = alg;
}

void tam_teep_suites_default(enum tam_teep_numbering num, struct tam_teep_suites *out)
{
    /* Drafts up to -20 and draft-12 agents use the polymorphic ES256/EdDSA ids. */
    bool legacy = num == TAM_TEEP_DRAFT12;
    memset(out, 0, sizeof(*out));
    out->n = 2;
    tam_teep_suite_single(&out->v[0], TAM_TEEP_COSE_SIGN1, legacy ? ALG_ES256 : ALG_ESP256);
    tam_teep_suite_single(&out->v[1], TAM_TEEP_COSE_SIGN1, legacy ? ALG_EDDSA : ALG_ED25519);
}

static void set_profile(struct tam_teep_profile *p, const int64_t *v, uint32_t n)
{
    p->n = n;
    for (uint32_t i = 0; i < n; i++) {
        p->v[i] = v[i];
    }
}

void tam_teep_profiles_default(enum tam_teep_numbering num, struct tam_teep_profiles *out)
{
    static const int64_t mti[4][4] = {
        {ALG_SHA256, ALG_ESP256, ALG_ECDH_ES_A128KW, ALG_A128CTR},
        {ALG_SHA256, ALG_ED25519, ALG_ECDH_ES_A128KW, ALG_A128CTR},
        {ALG_SHA256, ALG_ESP256, ALG_ECDH_ES_A128KW, ALG_A128GCM},
        {ALG_SHA256, ALG_ED25519, ALG_ECDH_ES_A128KW, ALG_CHACHA20_POLY1305},
    };
    static const int64_t legacy[2][2] = {{ALG_ES256, ALG_A128GCM}, {ALG_EDDSA, ALG_A128GCM}};
    memset(out, 0, sizeof(*out));
    if (num == TAM_TEEP_DRAFT12) {
        out->n = 2;
        for (uint32_t i = 0; i < out->n; i++) {
            set_profile(&out->v[i], legacy[i], 2);
        }
        return;
    }
    out->n = 4;
    for (uint32_t i = 0; i < out->n; i++) {
        set_profile(&out->v[i], mti[i], 4);
    }
}

bool tam_teep_suite_has_alg(const struct tam_teep_suite *suite, int64_t cose_type, int64_t alg)
{
    for (uint32_t i = 0; i < suite->n_ops && i < TAM_TEEP_MAX_SUITE_OPS; i++) {
        if (suite->ops[i].cose_type == cose_type && suite->ops[i].alg == alg) {
            return true;
        }
    }
    return false;
}

bool tam_teep_suites_has_alg(const struct tam_teep_suites *suites, int64_t cose_type, int64_t alg)
{
    for (uint32_t i = 0; i < suites->n && i < TAM_TEEP_MAX_SUITES; i++) {
        if (tam_teep_suite_has_alg(&suites->v[i], cose_type, alg)) {
            return true;
        }
    }
    return false;
}

int tam_teep_suites_pick_sign1(const struct tam_teep_suites *suites, const int64_t *algs, size_t n,
                               int64_t *alg)
{
    for (uint32_t i = 0; i < suites->n && i < TAM_TEEP_MAX_SUITES; i++) {
        const struct tam_teep_suite *s = &suites->v[i];
        if (s->n_ops != 1 || s->ops[0].cose_type != TAM_TEEP_COSE_SIGN1) {
            continue;
        }
        for (size_t j = 0; j < n; j++) {
            if (algs[j] == s->ops[0].alg) {
                *alg = algs[j];
                return TAM_OK;
            }
        }
    }
    return TAM_ENOTFOUND;
}
