/*
 * The deployment secrets of tamd (seal.h): the KEK that opens tenants' TEEP signing keys in
 * Redis, the public half of the workers' sealing key (the admin API seals new tenants'
 * manifest signing keys to it; the private half stays with the workers), and the file a new
 * operator token is written to.
 *
 * Zero configuration (private Redis): the parent creates the KEK and the worker sealing key
 * in data-dir before any gateway or worker starts, so every process finds the same files.
 * With an external Redis the files must be provided (a KEK created per host would make
 * other hosts' tenants unreadable): a gateway without a KEK serves only configuration-file
 * tenants and answers the admin API with 503.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/tstore.h"

static const char *path_or_default(const char *set, const char *data_dir, const char *name,
                                   char *buf, size_t bufsz)
{
    if (set[0] != '\0') {
        return set;
    }
    int n = snprintf(buf, bufsz, "%s/%s", data_dir, name);
    return n > 0 && (size_t)n < bufsz ? buf : NULL;
}

const char *tam_gw_secret_path(const struct tam_config *cfg, enum tam_gw_secret which, char *buf,
                               size_t bufsz)
{
    switch (which) {
    case TAM_GW_SECRET_KEK:
        return path_or_default(cfg->kek_file, cfg->data_dir, "kek.key", buf, bufsz);
    case TAM_GW_SECRET_WORKER_KEY:
        return path_or_default(cfg->worker_seal_key, cfg->data_dir, "worker-seal.pem", buf,
                               bufsz);
    case TAM_GW_SECRET_OPERATOR_TOKEN:
        return path_or_default(cfg->operator_token_file, cfg->data_dir, "operator.token", buf,
                               bufsz);
    }
    return NULL;
}

int tam_gw_secrets_create(const struct tam_config *cfg)
{
    char b1[TAM_CONFIG_STR_MAX + 32], b2[TAM_CONFIG_STR_MAX + 32];
    const char *kek_path = tam_gw_secret_path(cfg, TAM_GW_SECRET_KEK, b1, sizeof(b1));
    const char *wk_path = tam_gw_secret_path(cfg, TAM_GW_SECRET_WORKER_KEY, b2, sizeof(b2));
    if (kek_path == NULL || wk_path == NULL) {
        return TAM_ECONFIG;
    }
    uint8_t kek[TAM_SEAL_KEK_LEN];
    bool created = false;
    int err = tam_seal_kek_load(kek_path, true, kek, &created);
    tam_memzero(kek, sizeof(kek));
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=kek_failed path=\"%s\" err=%s", kek_path, tam_errname(err));
        return err;
    }
    if (created) {
        tam_log(TAM_LOG_INFO, "event=kek_created path=\"%s\"", kek_path);
    }
    struct tam_key *wk = NULL;
    err = tam_seal_worker_key_load(wk_path, true, &wk, &created);
    tam_key_destroy(wk);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_ERROR, "event=worker_seal_key_failed path=\"%s\" err=%s", wk_path,
                tam_errname(err));
        return err;
    }
    if (created) {
        tam_log(TAM_LOG_INFO, "event=worker_seal_key_created path=\"%s\"", wk_path);
    }
    return TAM_OK;
}

/* The workers' public sealing key: worker-seal-pub, else the public half of worker-seal-key. */
static int load_worker_pub(const struct tam_config *cfg, struct tam_key **out)
{
    char buf[TAM_CONFIG_STR_MAX + 32];
    if (cfg->worker_seal_pub[0] != '\0') {
        return tam_key_file_load(cfg->worker_seal_pub, true, out);
    }
    const char *path = tam_gw_secret_path(cfg, TAM_GW_SECRET_WORKER_KEY, buf, sizeof(buf));
    return path != NULL ? tam_key_file_load(path, true, out) : TAM_ECONFIG;
}

void tam_gw_secrets_load(const struct tam_config *cfg, struct tam_gw_secrets *s)
{
    memset(s, 0, sizeof(*s));
    char buf[TAM_CONFIG_STR_MAX + 32];
    const char *kek_path = tam_gw_secret_path(cfg, TAM_GW_SECRET_KEK, buf, sizeof(buf));
    int err = kek_path != NULL ? tam_seal_kek_load(kek_path, false, s->kek, NULL) : TAM_ECONFIG;
    s->have_kek = err == TAM_OK;
    if (!s->have_kek) {
        tam_memzero(s->kek, sizeof(s->kek));
        tam_log(TAM_LOG_WARN,
                "event=no_kek path=\"%s\" err=%s msg=\"admin API and Redis tenants disabled\"",
                kek_path != NULL ? kek_path : "", tam_errname(err));
        return;
    }
    err = load_worker_pub(cfg, &s->worker_pub);
    if (err != TAM_OK) {
        tam_log(TAM_LOG_WARN,
                "event=no_worker_seal_key err=%s "
                "msg=\"new tenants get no manifest key: TAM-built components unavailable\"",
                tam_errname(err));
    }
}

void tam_gw_secrets_finish(struct tam_gw_secrets *s)
{
    tam_memzero(s->kek, sizeof(s->kek));
    tam_key_destroy(s->worker_pub);
    memset(s, 0, sizeof(*s));
}

int tam_gw_write_token_file(const char *path, const char *token)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    size_t len = strlen(token);
    int err = TAM_OK;
    if (fchmod(fd, 0600) != 0 || write(fd, token, len) != (ssize_t)len ||
        write(fd, "\n", 1) != 1) {
        err = TAM_ERRNO(errno != 0 ? errno : EIO);
    }
    if (close(fd) != 0 && err == TAM_OK) {
        err = TAM_ERRNO(errno);
    }
    return err;
}
