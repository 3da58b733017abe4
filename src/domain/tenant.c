#include "tam/tenant.h"

#include <string.h>

#include "tam/alloc.h"

struct tam_tenant *tam_tenant_create(const char *id)
{
    size_t len = strlen(id);
    if (!tam_tenant_id_valid(id, len)) {
        return NULL;
    }
    struct tam_tenant *t = tam_calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->refs = 1;
    memcpy(t->id, id, len + 1);
    t->numbering = TAM_TEEP_RFC;
    t->attestation = TAM_ATTEST_REQUIRED;
    t->enrollment = TAM_ENROLL_REGISTERED;
    t->session_ttl_s = 300;
    t->update_ttl_s = 6 * 3600;
    t->max_pending_per_device = 4;
    t->challenge_len = 32;
    t->max_kidless_tries = 16;
    return t;
}

struct tam_tenant *tam_tenant_ref(struct tam_tenant *t)
{
    t->refs++;
    return t;
}

void tam_tenant_unref(struct tam_tenant *t)
{
    if (t == NULL || --t->refs > 0) {
        return;
    }
    tam_key_destroy(t->tam_keys[0]);
    tam_key_destroy(t->tam_keys[1]);
    tam_free(t);
}

bool tam_tenant_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > TAM_TENANT_ID_MAX || id[0] == '-' || id[0] == '_') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int tam_tenant_wire_alg(const struct tam_tenant *t, enum tam_key_type type)
{
    if (type == TAM_KEY_P256) {
        return t->legacy_alg_ids ? TAM_ALG_ES256 : TAM_ALG_ESP256;
    }
    return t->legacy_alg_ids ? TAM_ALG_EDDSA : TAM_ALG_ED25519;
}

const struct tam_key *tam_tenant_key_for_alg(const struct tam_tenant *t, int alg, int *wire_alg)
{
    for (int i = 0; i < 2; i++) {
        const struct tam_key *k = t->tam_keys[i];
        if (k != NULL && tam_key_alg_ok(k, alg)) {
            *wire_alg = alg;
            return k;
        }
    }
    return NULL;
}
