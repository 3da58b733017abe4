/*
 * The tenant registry, built from the [tenant NAME] sections of a configuration. It is an
 * immutable snapshot: SIGHUP builds a new one and swaps it in, and requests in flight keep
 * the tenant references they took. Key paths are used as written (relative paths resolve
 * against the working directory, as for tam-worker).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"

#define PEM_MAX (64u * 1024u)

struct tam_gw_tenants {
    struct tam_tenant **v; /* one reference each */
    size_t n;
    struct tam_gw_devreg *devices;
    size_t n_devices;
};

/* Appends an error message; a truncated message is still an error, so the result is moot. */
#define note(...)                                    \
    do {                                             \
        int note_err_ = tam_buf_printf(__VA_ARGS__); \
        (void)note_err_;                             \
    } while (0)

static int read_file(const char *path, struct tam_buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    int err = TAM_OK;
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            err = n < 0 ? TAM_ERRNO(errno) : TAM_OK;
            break;
        }
        err = tam_buf_append(out, chunk, (size_t)n);
        if (err != TAM_OK) {
            break;
        }
    }
    close(fd);
    return err;
}

static int load_key(const char *path, struct tam_key **out, struct tam_buf *err)
{
    struct tam_buf pem;
    tam_buf_init(&pem, PEM_MAX);
    int rc = read_file(path, &pem);
    if (rc == TAM_OK) {
        rc = tam_key_from_pem((const char *)pem.data, pem.len, out);
    }
    if (pem.data != NULL) {
        tam_memzero(pem.data, pem.len); /* TAM keys are private */
    }
    tam_buf_finish(&pem);
    if (rc != TAM_OK) {
        note(err, "cannot load key %s: %s", path, tam_strerror(rc));
        return TAM_ECONFIG;
    }
    return TAM_OK;
}

static int load_tam_keys(struct tam_tenant *t, const struct tam_config_tenant *ct,
                         struct tam_buf *err)
{
    for (uint32_t i = 0; i < ct->tam_keys.n; i++) {
        struct tam_key *k = NULL;
        int rc = load_key(ct->tam_keys.v[i], &k, err);
        if (rc != TAM_OK) {
            return rc;
        }
        int slot = tam_key_type(k) == TAM_KEY_P256 ? 0 : 1;
        if (!tam_key_has_private(k) || t->tam_keys[slot] != NULL) {
            tam_key_destroy(k);
            note(err, "tenant %s: tam-key %s: %s", ct->id, ct->tam_keys.v[i],
                 t->tam_keys[slot] != NULL ? "second key of the same type" : "not a private key");
            return TAM_ECONFIG;
        }
        t->tam_keys[slot] = k;
    }
    if (t->tam_keys[0] == NULL && t->tam_keys[1] == NULL) {
        note(err, "tenant %s: no tam-key", ct->id);
        return TAM_ECONFIG;
    }
    return TAM_OK;
}

static int make_tenant(const struct tam_config_tenant *ct, struct tam_tenant **out,
                       struct tam_buf *err)
{
    struct tam_tenant *t = tam_tenant_create(ct->id);
    if (t == NULL) {
        return TAM_ENOMEM;
    }
    t->numbering = (enum tam_teep_numbering)ct->numbering;
    t->attestation = (enum tam_attestation_mode)ct->attestation;
    t->enrollment = (enum tam_enrollment_mode)ct->enrollment;
    t->legacy_alg_ids = ct->legacy_alg_ids;
    t->sign1_only = ct->sign1_only;
    t->session_ttl_s = (uint32_t)((ct->session_ttl_ms + 999) / 1000);
    t->update_ttl_s = (uint32_t)((ct->update_ttl_ms + 999) / 1000);
    t->max_pending_per_device = ct->max_pending_per_device;
    t->max_devices = ct->max_devices;
    t->rps_per_device = ct->rps_per_device;
    int rc = load_tam_keys(t, ct, err);
    if (rc != TAM_OK) {
        tam_tenant_unref(t);
        return rc;
    }
    *out = t;
    return TAM_OK;
}

static int add_devices(struct tam_gw_tenants *reg, const struct tam_config_tenant *ct,
                       struct tam_buf *err)
{
    for (uint32_t i = 0; i < ct->device_keys.n; i++) {
        struct tam_key *k = NULL;
        int rc = load_key(ct->device_keys.v[i], &k, err);
        if (rc != TAM_OK) {
            return rc;
        }
        struct tam_gw_devreg *d = &reg->devices[reg->n_devices++];
        memcpy(d->tenant, ct->id, sizeof(d->tenant));
        d->type = tam_key_type(k);
        d->pub_len = tam_key_public_raw(k, d->pub);
        memcpy(d->kid, tam_key_kid(k), TAM_KID_LEN);
        tam_key_destroy(k);
    }
    return TAM_OK;
}

static size_t count_devices(const struct tam_config *cfg)
{
    size_t n = 0;
    for (uint32_t i = 0; i < cfg->n_tenants; i++) {
        n += cfg->tenants[i].device_keys.n;
    }
    return n;
}

int tam_gw_tenants_build(const struct tam_config *cfg, struct tam_gw_tenants **out,
                         struct tam_buf *err)
{
    struct tam_gw_tenants *reg = tam_calloc(1, sizeof(*reg));
    size_t ndev = count_devices(cfg);
    if (reg == NULL) {
        return TAM_ENOMEM;
    }
    reg->v = tam_calloc(cfg->n_tenants + 1, sizeof(*reg->v));
    reg->devices = tam_calloc(ndev + 1, sizeof(*reg->devices));
    int rc = (reg->v == NULL || reg->devices == NULL) ? TAM_ENOMEM : TAM_OK;
    for (uint32_t i = 0; rc == TAM_OK && i < cfg->n_tenants; i++) {
        rc = make_tenant(&cfg->tenants[i], &reg->v[reg->n], err);
        if (rc == TAM_OK) {
            reg->n++;
            rc = add_devices(reg, &cfg->tenants[i], err);
        }
    }
    if (rc == TAM_OK && cfg->default_tenant[0] != '\0') {
        struct tam_tenant *d = tam_gw_tenants_get(reg, cfg->default_tenant);
        if (d == NULL) {
            note(err, "default-tenant %s: no such [tenant] section", cfg->default_tenant);
            rc = TAM_ECONFIG;
        }
        tam_tenant_unref(d);
    }
    if (rc != TAM_OK) {
        tam_gw_tenants_destroy(reg);
        return rc;
    }
    *out = reg;
    return TAM_OK;
}

void tam_gw_tenants_destroy(struct tam_gw_tenants *reg)
{
    if (reg == NULL) {
        return;
    }
    for (size_t i = 0; i < reg->n; i++) {
        tam_tenant_unref(reg->v[i]);
    }
    tam_free(reg->v);
    tam_free(reg->devices);
    tam_free(reg);
}

struct tam_tenant *tam_gw_tenants_get(const struct tam_gw_tenants *reg, const char *id)
{
    /* A linear scan: configured tenants are few; issue 5 brings the Redis-backed map. */
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->v[i]->id, id) == 0) {
            return tam_tenant_ref(reg->v[i]);
        }
    }
    return NULL;
}

size_t tam_gw_tenants_count(const struct tam_gw_tenants *reg)
{
    return reg->n;
}

const struct tam_gw_devreg *tam_gw_tenants_devices(const struct tam_gw_tenants *reg, size_t *n)
{
    *n = reg->n_devices;
    return reg->devices;
}
