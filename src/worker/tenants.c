/*
 * The tenants a worker serves, from the [tenant NAME] sections of its configuration: TEEP
 * message keys (tam-key), trust anchors (attester-key, verifier-key, tc-signer-key),
 * registered device keys (device-key) and the SUIT manifest signing key (manifest-key).
 * Keys are read once at start; their paths may be logged, their contents never. Tenants
 * created at run time through the admin API are served by rtenants.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "worker.h"

#define PEM_MAX (64u << 10)

static int read_pem(const char *path, struct tam_key **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return TAM_ERRNO(errno);
    }
    char *buf = tam_malloc(PEM_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    int err = buf == NULL ? TAM_ENOMEM : TAM_OK;
    if (err == TAM_OK && (ferror(f) || n > PEM_MAX)) {
        err = ferror(f) ? TAM_ERRNO(EIO) : TAM_ETOOBIG;
    }
    (void)fclose(f);
    if (err == TAM_OK) {
        buf[n] = '\0';
        err = tam_key_from_pem(buf, n, out);
    }
    if (buf != NULL) {
        tam_memzero(buf, PEM_MAX + 1);
    }
    tam_free(buf);
    return err;
}

static int load_key(const char *tenant, const char *what, const char *path, struct tam_key **out)
{
    int err = read_pem(path, out);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=key_load_failed tenant=%s key=%s path=\"%.200s\" err=%s",
                tenant, what, path, tam_errname(err));
    }
    return err;
}

static int load_list(const char *tenant, const char *what, const struct tam_config_paths *p,
                     struct wk_keys *out)
{
    if (p->n == 0) {
        return TAM_OK;
    }
    out->v = tam_calloc(p->n + 1u, sizeof(*out->v));
    if (out->v == NULL) {
        return TAM_ENOMEM;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        int err = load_key(tenant, what, p->v[i], &out->v[out->n]);
        if (err != TAM_OK) {
            return err;
        }
        out->n++;
    }
    return TAM_OK;
}

void wk_keys_free(struct wk_keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        tam_key_destroy(k->v[i]);
    }
    tam_free(k->v);
    memset(k, 0, sizeof(*k));
}

static int load_tam_keys(struct wk_tenant *wt, const struct tam_config_tenant *ct)
{
    for (uint32_t i = 0; i < ct->tam_keys.n; i++) {
        struct tam_key *k = NULL;
        int err = load_key(ct->id, "tam-key", ct->tam_keys.v[i], &k);
        if (err != TAM_OK) {
            return err;
        }
        int slot = tam_key_type(k) == TAM_KEY_P256 ? 0 : 1;
        if (!tam_key_has_private(k) || wt->t->tam_keys[slot] != NULL) {
            tam_log(TAM_LOG_ERROR,
                    "event=key_invalid tenant=%s key=tam-key path=\"%.200s\" "
                    "reason=\"needs one private P-256 and/or Ed25519 key\"",
                    ct->id, ct->tam_keys.v[i]);
            tam_key_destroy(k);
            return TAM_EKEY;
        }
        wt->t->tam_keys[slot] = k;
    }
    return TAM_OK;
}

int wk_keys_add_public(struct wk_keys *k, const struct tam_key *key)
{
    struct tam_key **v = tam_realloc(k->v, (k->n + 1) * sizeof(*v));
    if (v == NULL) {
        return TAM_ENOMEM;
    }
    k->v = v;
    uint8_t pub[64];
    size_t n = tam_key_public_raw(key, pub);
    int err = tam_key_from_raw_public(tam_key_type(key), pub, n, &k->v[k->n]);
    k->n += err == TAM_OK;
    return err;
}

/* The manifest key signs; its public half also authenticates the envelopes built with it. */
static int load_manifest_key(struct wk_tenant *wt, const struct tam_config_tenant *ct)
{
    if (ct->manifest_keys.n == 0) {
        return TAM_OK;
    }
    int err = load_key(ct->id, "manifest-key", ct->manifest_keys.v[0], &wt->manifest_key);
    if (err == TAM_OK && !tam_key_has_private(wt->manifest_key)) {
        tam_log(TAM_LOG_ERROR,
                "event=key_invalid tenant=%s key=manifest-key "
                "reason=\"a private key is needed\"",
                ct->id);
        return TAM_EKEY;
    }
    if (err == TAM_OK) {
        err = wk_keys_add_public(&wt->signer, wt->manifest_key);
    }
    return err;
}

static void apply_settings(struct tam_tenant *t, const struct tam_config_tenant *ct)
{
    t->numbering = (enum tam_teep_numbering)ct->numbering;
    t->attestation = (enum tam_attestation_mode)ct->attestation;
    t->enrollment = (enum tam_enrollment_mode)ct->enrollment;
    t->legacy_alg_ids = ct->legacy_alg_ids;
    t->sign1_only = ct->sign1_only;
    t->session_ttl_s = (uint32_t)(ct->session_ttl_ms / 1000);
    t->update_ttl_s = (uint32_t)(ct->update_ttl_ms / 1000);
    t->max_pending_per_device = ct->max_pending_per_device;
    t->max_devices = ct->max_devices;
    t->rps_per_device = ct->rps_per_device;
}

static int load_tenant(struct wk_tenant *wt, const struct tam_config_tenant *ct)
{
    wt->t = tam_tenant_create(ct->id);
    if (wt->t == NULL) {
        return TAM_ENOMEM;
    }
    apply_settings(wt->t, ct);
    tam_arena_init(&wt->cat.arena, 16u << 10, 64u << 20);
    int err = load_tam_keys(wt, ct);
    if (err == TAM_OK) {
        err = load_list(ct->id, "attester-key", &ct->attester_keys, &wt->attester);
    }
    if (err == TAM_OK) {
        err = load_list(ct->id, "verifier-key", &ct->verifier_keys, &wt->verifier);
    }
    if (err == TAM_OK) {
        err = load_list(ct->id, "tc-signer-key", &ct->tc_signer_keys, &wt->signer);
    }
    if (err == TAM_OK) {
        err = load_list(ct->id, "device-key", &ct->device_keys, &wt->device);
    }
    if (err == TAM_OK) {
        err = load_manifest_key(wt, ct);
    }
    if (err == TAM_OK && wt->t->tam_keys[0] == NULL && wt->t->tam_keys[1] == NULL) {
        tam_log(TAM_LOG_ERROR, "event=tenant_invalid tenant=%s reason=\"no tam-key\"", ct->id);
        err = TAM_EKEY;
    }
    return err;
}

int wk_tenants_load(struct worker *w)
{
    const struct tam_config *cfg = w->cfg;
    if (cfg->n_tenants == 0) {
        return TAM_OK;
    }
    w->tenants = tam_calloc(cfg->n_tenants, sizeof(*w->tenants));
    if (w->tenants == NULL) {
        return TAM_ENOMEM;
    }
    for (uint32_t i = 0; i < cfg->n_tenants; i++) {
        w->n_tenants++;
        int err = load_tenant(&w->tenants[i], &cfg->tenants[i]);
        if (err != TAM_OK) {
            return err;
        }
        tam_log(TAM_LOG_INFO,
                "event=tenant_loaded tenant=%s attester_keys=%zu verifier_keys=%zu "
                "signer_keys=%zu device_keys=%zu manifest_key=%s",
                cfg->tenants[i].id, w->tenants[i].attester.n, w->tenants[i].verifier.n,
                w->tenants[i].signer.n, w->tenants[i].device.n,
                w->tenants[i].manifest_key != NULL ? "yes" : "no");
    }
    return TAM_OK;
}

void wk_tenant_finish(struct wk_tenant *wt)
{
    wk_catalog_free(&wt->cat);
    tam_arena_finish(&wt->cat.arena);
    wk_keys_free(&wt->attester);
    wk_keys_free(&wt->verifier);
    wk_keys_free(&wt->signer);
    wk_keys_free(&wt->device);
    tam_key_destroy(wt->manifest_key);
    tam_tenant_unref(wt->t);
    memset(wt, 0, sizeof(*wt));
}

void wk_tenants_free(struct worker *w)
{
    for (uint32_t i = 0; i < w->n_tenants; i++) {
        wk_tenant_finish(&w->tenants[i]);
    }
    tam_free(w->tenants);
    w->tenants = NULL;
    w->n_tenants = 0;
}

struct wk_tenant *wk_tenant_find(struct worker *w, const char *id)
{
    for (uint32_t i = 0; i < w->n_tenants; i++) {
        if (strcmp(w->tenants[i].t->id, id) == 0) {
            return &w->tenants[i];
        }
    }
    return NULL;
}

const struct tam_key *wk_tenant_device_key(const struct wk_tenant *t, const uint8_t *kid)
{
    for (size_t i = 0; i < t->device.n; i++) {
        if (memcmp(tam_key_kid(t->device.v[i]), kid, TAM_KID_LEN) == 0) {
            return t->device.v[i];
        }
    }
    return NULL;
}
