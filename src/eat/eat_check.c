/*
 * The checks a TAM applies to decoded claims: the TEEP profile (draft-ietf-teep-protocol
 * sections 5 and 7.1.1.1) and a tenant's allowed claim values.
 */
#include <string.h>

#include "tam/crypto.h"
#include "tam/eat.h"
#include "tam/err.h"

static int check_required(const struct tam_eat_claims *c, bool manifests, const char **why)
{
    static const struct {
        uint32_t bit;
        const char *reason;
    } required[] = {
        {TAM_EAT_HAS_UEID, "ueid claim (256) missing"},
        {TAM_EAT_HAS_OEMID, "oemid claim (258) missing"},
        {TAM_EAT_HAS_HWMODEL, "hwmodel claim (259) missing"},
        {TAM_EAT_HAS_HWVERSION, "hwversion claim (260) missing"},
        {TAM_EAT_HAS_CNF, "cnf claim (8) missing"},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(required); i++) {
        if ((c->present & required[i].bit) == 0) {
            return tam_fail(why, required[i].reason, TAM_EEAT);
        }
    }
    if (manifests && (c->present & TAM_EAT_HAS_MANIFESTS) == 0) {
        return tam_fail(why, "manifests claim (272) missing", TAM_EEAT);
    }
    return TAM_OK;
}

/* Same length and same bytes; the byte comparison is constant time (nonces are secrets). */
static bool bytes_equal_ct(const uint8_t *a, size_t alen, struct tam_bytes b)
{
    return alen == b.len && (alen == 0 || tam_ct_equal(a, b.ptr, alen));
}

static int check_binding(const struct tam_eat_claims *c, const struct tam_eat_expect *e,
                         const char **why)
{
    if (e->nonce.len > 0) {
        if ((c->present & TAM_EAT_HAS_NONCE) == 0) {
            return tam_fail(why, "eat_nonce claim (10) missing", TAM_EEAT);
        }
        if (!bytes_equal_ct(c->nonce.ptr, c->nonce.len, e->nonce)) {
            return tam_fail(why, "eat_nonce does not match the expected challenge", TAM_EEAT);
        }
    }
    if (e->cnf_kid.len > 0 && !bytes_equal_ct(c->cnf_kid, c->cnf_kid_len, e->cnf_kid)) {
        return tam_fail(why, "cnf key id does not match the Agent key thumbprint", TAM_EEAT);
    }
    if (e->profile != NULL && (c->present & TAM_EAT_HAS_PROFILE) != 0) {
        size_t n = strlen(e->profile);
        if (c->profile_is_oid || c->profile.len != n ||
            memcmp(c->profile.ptr, e->profile, n) != 0) {
            return tam_fail(why, "eat_profile is not the expected profile", TAM_EEAT);
        }
    }
    return TAM_OK;
}

/* Whether t lies more than skew seconds before now, without signed overflow for any t. */
static bool older_than(int64_t t, int64_t now, uint64_t skew)
{
    return t < now && (uint64_t)now - (uint64_t)t > skew;
}

static int check_time(const struct tam_eat_claims *c, const struct tam_eat_expect *e,
                      const char **why)
{
    uint64_t skew = e->skew;
    if ((c->present & TAM_EAT_HAS_NBF) != 0 && older_than(e->now, c->nbf, skew)) {
        return tam_fail(why, "nbf is in the future", TAM_EEAT);
    }
    if ((c->present & TAM_EAT_HAS_IAT) != 0 && older_than(e->now, c->iat, skew)) {
        return tam_fail(why, "iat is in the future", TAM_EEAT);
    }
    if ((c->present & TAM_EAT_HAS_EXP) != 0 && older_than(c->exp, e->now, skew)) {
        return tam_fail(why, "exp has passed", TAM_EEXPIRED);
    }
    if (e->max_age > 0) {
        if ((c->present & TAM_EAT_HAS_IAT) == 0) {
            return tam_fail(why, "iat claim (6) missing but a maximum age is set", TAM_EEAT);
        }
        if (older_than(c->iat, e->now, skew + e->max_age)) {
            return tam_fail(why, "iat is older than the maximum age", TAM_EEXPIRED);
        }
    }
    return TAM_OK;
}

int tam_eat_check_teep(const struct tam_eat_claims *c, const struct tam_eat_expect *e,
                       const char **why)
{
    if (c == NULL || e == NULL) {
        return TAM_EINVAL;
    }
    int err = check_required(c, e->require_manifests, why);
    if (err == TAM_OK) {
        err = check_binding(c, e, why);
    }
    if (err == TAM_OK) {
        err = check_time(c, e, why);
    }
    return err;
}

/* ---- tenant policy ---- */

static bool oemid_equal(const struct tam_eat_oemid *a, const struct tam_eat_oemid *b)
{
    if (a->is_pen != b->is_pen) {
        return false;
    }
    if (a->is_pen) {
        return a->pen == b->pen;
    }
    return a->id.len == b->id.len &&
           (a->id.len == 0 || memcmp(a->id.ptr, b->id.ptr, a->id.len) == 0);
}

static bool oemid_allowed(const struct tam_eat_claims *c, const struct tam_eat_policy *p)
{
    for (size_t i = 0; i < p->n_oemids; i++) {
        if (oemid_equal(&c->oemid, &p->oemids[i])) {
            return true;
        }
    }
    return false;
}

static bool hwmodel_allowed(const struct tam_eat_claims *c, const struct tam_eat_policy *p)
{
    for (size_t i = 0; i < p->n_hwmodels; i++) {
        const struct tam_bytes *m = &p->hwmodels[i];
        if (m->len == c->hwmodel.len && m->len > 0 && memcmp(m->ptr, c->hwmodel.ptr, m->len) == 0) {
            return true;
        }
    }
    return false;
}

static bool hwversion_allowed(const struct tam_eat_claims *c, const struct tam_eat_policy *p)
{
    for (size_t i = 0; i < p->n_hwversions; i++) {
        const char *v = p->hwversions[i];
        size_t n = v != NULL ? strlen(v) : 0;
        if (v != NULL && n == c->hwversion.len && (n == 0 || memcmp(v, c->hwversion.ptr, n) == 0)) {
            return true;
        }
    }
    return false;
}

int tam_eat_check_policy(const struct tam_eat_claims *c, const struct tam_eat_policy *p,
                         const char **why)
{
    if (c == NULL || p == NULL) {
        return TAM_EINVAL;
    }
    if (p->n_oemids > 0 && ((c->present & TAM_EAT_HAS_OEMID) == 0 || !oemid_allowed(c, p))) {
        return tam_fail(why, "oemid not allowed by policy", TAM_EDENIED);
    }
    if (p->n_hwmodels > 0 && ((c->present & TAM_EAT_HAS_HWMODEL) == 0 || !hwmodel_allowed(c, p))) {
        return tam_fail(why, "hwmodel not allowed by policy", TAM_EDENIED);
    }
    if (p->n_hwversions > 0 &&
        ((c->present & TAM_EAT_HAS_HWVERSION) == 0 || !hwversion_allowed(c, p))) {
        return tam_fail(why, "hwversion not allowed by policy", TAM_EDENIED);
    }
    if (p->min_dbgstat > 0) {
        if ((c->present & TAM_EAT_HAS_DBGSTAT) == 0) {
            return tam_fail(why, "dbgstat claim missing but policy requires debug disabled",
                            TAM_EDENIED);
        }
        if (c->dbgstat < p->min_dbgstat) {
            return tam_fail(why, "dbgstat below the policy minimum (debug not disabled enough)",
                            TAM_EDENIED);
        }
    }
    return TAM_OK;
}
