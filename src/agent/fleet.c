/*
 * The fleet: trusted keys, the attester key, the devices (keys generated or
 * derived from a seed), their scenario, key export, the TEEP client pool, and
 * the statistics every mode shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tool.h"

#define PEM_FILE_MAX (64u << 10)

/* ---- names ---- */

const char *ag_err_name(enum ag_err e)
{
    static const char *const names[] = {"none",
#define AG_ERR_NAME_(n, s) s,
                                        AG_ERR_MAP(AG_ERR_NAME_)
#undef AG_ERR_NAME_
    };
    return (size_t)e < TAM_ARRAY_LEN(names) ? names[e] : "?";
}

const char *ag_lat_name(enum ag_lat l)
{
    static const char *const names[] = {"query_request", "query_response", "update_result", "error",
                                        "session"};
    return (size_t)l < TAM_ARRAY_LEN(names) ? names[l] : "?";
}

enum ag_err ag_err_of_httpc(int err)
{
    switch (err) {
    case TAM_ETIMEOUT:
        return AG_ERR_TIMEOUT;
    case TAM_ETOOBIG:
        return AG_ERR_TOO_BIG;
    case TAM_EPROTO:
        return AG_ERR_PROTO;
    case TAM_ETLS:
    case TAM_ETLS_VERIFY:
        return AG_ERR_TLS;
    case TAM_ENOTFOUND:
    case TAM_EUNAVAIL:
        return AG_ERR_RESOLVE;
    case UV_ECANCELED:
        return AG_ERR_CANCELED;
    case UV_ECONNREFUSED:
    case UV_ENETUNREACH:
    case UV_EHOSTUNREACH:
    case UV_EADDRNOTAVAIL:
    case UV_ECONNABORTED:
        return AG_ERR_CONNECT;
    default:
        return err < 0 && err > -4096 ? AG_ERR_IO : AG_ERR_INTERNAL;
    }
}

uint64_t ag_now_us(void)
{
    return uv_hrtime() / 1000u;
}

/* ---- statistics ---- */

int ag_stats_init(struct ag_stats *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < AG_LAT_N; i++) {
        int err = tam_hdr_create(TAM_HDR_DEFAULT_MAX, TAM_HDR_DEFAULT_SIG, &s->lat[i]);
        if (err != TAM_OK) {
            ag_stats_finish(s);
            return err;
        }
    }
    return TAM_OK;
}

void ag_stats_finish(struct ag_stats *s)
{
    for (int i = 0; i < AG_LAT_N; i++) {
        tam_hdr_destroy(s->lat[i]);
        s->lat[i] = NULL;
    }
}

uint64_t ag_errors_total(const struct ag_stats *s)
{
    uint64_t n = 0;
    for (int i = 1; i < AG_ERR_N; i++) {
        n += s->errors[i];
    }
    return n;
}

/* ---- keys ---- */

static int read_file(const char *path, struct tam_buf *out)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return TAM_ERRNO(errno);
    }
    uint8_t chunk[4096];
    int err = TAM_OK;
    for (;;) {
        size_t n = fread(chunk, 1, sizeof(chunk), fp);
        if (n == 0) {
            break;
        }
        err = tam_buf_append(out, chunk, n);
        if (err != TAM_OK) {
            break;
        }
    }
    if (err == TAM_OK && ferror(fp)) {
        err = TAM_ERRNO(EIO);
    }
    fclose(fp);
    return err;
}

static int load_key(const char *path, bool need_private, struct tam_key **out)
{
    struct tam_buf b;
    tam_buf_init(&b, PEM_FILE_MAX);
    int err = read_file(path, &b);
    err = err == TAM_OK ? tam_key_from_pem((const char *)b.data, b.len, out) : err;
    if (b.data != NULL) {
        tam_memzero(b.data, b.len);
    }
    tam_buf_finish(&b);
    if (err == TAM_OK && need_private && !tam_key_has_private(*out)) {
        tam_key_destroy(*out);
        *out = NULL;
        err = TAM_EKEY;
    }
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: cannot load key %s: %s\n", path, tam_strerror(err));
    }
    return err;
}

int ag_fleet_add_tam_key_pem(struct ag_fleet *f, const char *pem, size_t len)
{
    if (f->n_tam_keys == AG_MAX_KEYS) {
        return TAM_ETOOBIG;
    }
    struct tam_key *k = NULL;
    int err = tam_key_from_pem(pem, len, &k);
    if (err != TAM_OK) {
        return err;
    }
    f->tam_keys[f->n_tam_keys] = k;
    f->tam_keys_c[f->n_tam_keys++] = k;
    f->prof.n_tam_keys = f->n_tam_keys;
    return TAM_OK;
}

int ag_fleet_add_signer_pem(struct ag_fleet *f, const char *pem, size_t len)
{
    if (f->n_signers == AG_MAX_KEYS) {
        return TAM_ETOOBIG;
    }
    struct tam_key *k = NULL;
    int err = tam_key_from_pem(pem, len, &k);
    if (err != TAM_OK) {
        return err;
    }
    f->signers[f->n_signers] = k;
    f->signers_c[f->n_signers++] = k;
    f->prof.n_signer_keys = f->n_signers;
    return TAM_OK;
}

int ag_fleet_admin(struct ag_fleet *f)
{
    const struct ag_opts *o = f->o;
    int err = o->enroll ? ag_admin_enroll(f) : TAM_OK;
    bool missing = f->n_tam_keys == 0 || f->n_signers == 0 || !o->numbering_set;
    if (err == TAM_OK && o->admin_url != NULL && o->token_file != NULL && missing) {
        err = ag_admin_tenant(f);
    }
    if (err == TAM_OK && f->n_tam_keys == 0 && !o->no_verify) {
        fprintf(stderr, "tam-agent: no TAM key: give --tam-key, --admin with --token-file, or "
                        "--no-verify\n");
        err = TAM_ECONFIG;
    }
    if (err == TAM_OK && f->n_signers == 0) {
        tam_log(TAM_LOG_WARN, "event=no_tc_signer_keys msg=\"every manifest will be refused\"");
    }
    return err;
}

static int load_trust(struct ag_fleet *f)
{
    const struct ag_opts *o = f->o;
    for (size_t i = 0; i < o->n_tam_key_files; i++) {
        int err = load_key(o->tam_key_files[i], false, &f->tam_keys[i]);
        if (err != TAM_OK) {
            return err;
        }
        f->tam_keys_c[i] = f->tam_keys[i];
        f->n_tam_keys++;
    }
    for (size_t i = 0; i < o->n_signer_key_files; i++) {
        int err = load_key(o->signer_key_files[i], false, &f->signers[i]);
        if (err != TAM_OK) {
            return err;
        }
        f->signers_c[i] = f->signers[i];
        f->n_signers++;
    }
    return TAM_OK;
}

static enum tam_key_type device_type(const struct ag_opts *o, size_t i)
{
    if (o->alg == AG_ALG_MIXED) {
        return i % 2 == 0 ? TAM_KEY_P256 : TAM_KEY_ED25519;
    }
    return o->alg == AG_ALG_ED25519 ? TAM_KEY_ED25519 : TAM_KEY_P256;
}

static int make_key(const struct ag_opts *o, enum tam_key_type type, uint64_t index,
                    struct tam_key **out)
{
    if (o->seed != NULL) {
        return tam_agent_key_from_seed(type, (const uint8_t *)o->seed, strlen(o->seed), index, out);
    }
    return tam_key_generate(type, out);
}

static int load_attester(struct ag_fleet *f)
{
    const struct ag_opts *o = f->o;
    if (o->attester_key_file != NULL) {
        return load_key(o->attester_key_file, true, &f->attester);
    }
    /* Index UINT64_MAX: never a device index, so a seeded attester is reproducible too. */
    enum tam_key_type t = o->alg == AG_ALG_ED25519 ? TAM_KEY_ED25519 : TAM_KEY_P256;
    f->attester_generated = true;
    return make_key(o, t, UINT64_MAX, &f->attester);
}

static int make_devices(struct ag_fleet *f, size_t n)
{
    f->devs = tam_calloc(n, sizeof(*f->devs));
    if (f->devs == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct tam_key *k = NULL;
        int err = make_key(f->o, device_type(f->o, i), i, &k);
        err = err == TAM_OK ? tam_agent_device_create(&f->prof, k, NULL, 0, &f->devs[i]) : err;
        if (err != TAM_OK) {
            fprintf(stderr, "tam-agent: device %zu: %s\n", i, tam_strerror(err));
            return err;
        }
        f->ndev = i + 1;
    }
    return TAM_OK;
}

/* "ID[@SEQ]": the sequence is what follows the last '@' when it is a number. */
static int parse_request(const char *spec, struct tam_buf *id, bool *has_seq, uint64_t *seq)
{
    const char *at = strrchr(spec, '@');
    char *end = NULL;
    *has_seq = false;
    size_t idlen = strlen(spec);
    if (at != NULL && at[1] != '\0') {
        unsigned long long v = strtoull(at + 1, &end, 10);
        if (end != NULL && *end == '\0') {
            *has_seq = true;
            *seq = v;
            idlen = (size_t)(at - spec);
        }
    }
    char text[TAM_AGENT_ID_MAX * 2];
    if (idlen >= sizeof(text)) {
        return TAM_EINVAL;
    }
    memcpy(text, spec, idlen);
    text[idlen] = '\0';
    return tam_agent_id_parse(text, id);
}

int ag_fleet_scenario(struct ag_fleet *f, struct tam_agent_device *dev)
{
    const struct ag_opts *o = f->o;
    int err = TAM_OK;
    for (size_t i = 0; err == TAM_OK && i < o->n_request_ids + o->n_unneeded_ids; i++) {
        bool req = i < o->n_request_ids;
        const char *spec = req ? o->request_ids[i] : o->unneeded_ids[i - o->n_request_ids];
        struct tam_buf id;
        tam_buf_init(&id, TAM_AGENT_ID_MAX);
        bool has_seq = false;
        uint64_t seq = 0;
        err = req ? parse_request(spec, &id, &has_seq, &seq) : tam_agent_id_parse(spec, &id);
        struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
        size_t n = 0;
        err = err == TAM_OK ? tam_agent_id_segments(tam_bytes_of(id.data, id.len), seg,
                                                    TAM_TEEP_MAX_ID_SEGMENTS, &n)
                            : err;
        if (err == TAM_OK && req) {
            err = tam_agent_device_request(dev, seg, n, has_seq, seq, false, tam_bytes_of(NULL, 0));
        } else if (err == TAM_OK) {
            err = tam_agent_device_unrequest(dev, seg, n);
        }
        if (err != TAM_OK) {
            fprintf(stderr, "tam-agent: bad component id '%s'\n", spec);
        }
        tam_buf_finish(&id);
    }
    return err;
}

/* ---- key export ---- */

static int write_file(const char *dir, const char *name, const void *data, size_t len, int mode)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return TAM_EINVAL;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    const uint8_t *p = data;
    int err = TAM_OK;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            err = TAM_ERRNO(errno);
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return err;
}

static int export_device(const char *dir, size_t i, const struct tam_agent_device *d,
                         struct tam_buf *list)
{
    const struct tam_key *k = tam_agent_device_key(d);
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    char name[64];
    snprintf(name, sizeof(name), "device-%06zu.pub.pem", i);
    int err = tam_key_public_pem(k, &pem);
    err = err == TAM_OK ? write_file(dir, name, pem.data, pem.len, 0644) : err;
    tam_buf_finish(&pem);
    char kid[2 * TAM_KID_LEN + 1];
    tam_hex_encode(tam_key_kid(k), TAM_KID_LEN, kid);
    struct tam_bytes ueid = tam_agent_device_ueid(d);
    char ueid_hex[2 * TAM_EAT_UEID_MAX + 1];
    tam_hex_encode(ueid.ptr, ueid.len, ueid_hex);
    const char *alg = tam_key_type(k) == TAM_KEY_P256 ? "esp256" : "ed25519";
    err = err == TAM_OK ? tam_buf_printf(list, "%zu %s %s %s %s\n", i, kid, alg, ueid_hex, name)
                        : err;
    return err;
}

static int export_keys(struct ag_fleet *f)
{
    const char *dir = f->o->export_dir;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "tam-agent: cannot create %s: %s\n", dir, strerror(errno));
        return TAM_ERRNO(errno);
    }
    struct tam_buf list, pem;
    tam_buf_init(&list, 256u << 20);
    tam_buf_init(&pem, 4096);
    int err = tam_buf_append_str(&list, "# index kid alg ueid public-key-file\n");
    for (size_t i = 0; err == TAM_OK && i < f->ndev; i++) {
        err = export_device(dir, i, f->devs[i], &list);
    }
    err = err == TAM_OK ? write_file(dir, "devices.txt", list.data, list.len, 0644) : err;
    err = err == TAM_OK ? tam_key_public_pem(f->attester, &pem) : err;
    err = err == TAM_OK ? write_file(dir, "attester.pub.pem", pem.data, pem.len, 0644) : err;
    if (err == TAM_OK && f->attester_generated) {
        tam_buf_reset(&pem);
        err = tam_key_private_pem(f->attester, &pem);
        err = err == TAM_OK ? write_file(dir, "attester.priv.pem", pem.data, pem.len, 0600) : err;
        tam_memzero(pem.data, pem.len);
    }
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: exporting keys to %s: %s\n", dir, tam_strerror(err));
    }
    tam_buf_finish(&pem);
    tam_buf_finish(&list);
    return err;
}

/* ---- the fleet ---- */

static void profile_init(struct ag_fleet *f)
{
    const struct ag_opts *o = f->o;
    struct tam_agent_profile *p = &f->prof;
    memset(p, 0, sizeof(*p));
    p->numbering = o->numbering;
    p->tam_keys = f->tam_keys_c;
    p->n_tam_keys = f->n_tam_keys;
    p->signer_keys = f->signers_c;
    p->n_signer_keys = f->n_signers;
    p->attester = f->attester;
    p->dbgstat = 2; /* disabled since boot: what a production TEE reports */
    p->eat_format = o->eat_format;
    p->drop_invalid = o->drop_invalid;
    p->skip_tam_verify = o->no_verify;
    p->vcache = f->vcache;
}

int ag_fleet_open_pool(struct ag_fleet *f, unsigned max_conns)
{
    const struct ag_opts *o = f->o;
    struct tam_httpc_opts ho = {
        .url = o->url,
        .max_conns = max_conns,
        .timeout_ms = o->timeout_ms,
        .max_body = TAM_AGENT_MAX_MSG,
        .max_req_body = TAM_AGENT_MAX_MSG,
        .max_queue = 1u << 20,
        .ca_file = o->ca_file,
        .tls_server_name = o->server_name,
    };
    int err = tam_httpc_pool_create(f->loop, &ho, &f->pool);
    if (err == TAM_ECONFIG && o->ca_file == NULL) {
        fprintf(stderr, "tam-agent: %s: https needs --ca FILE (trusted CA certificates)\n",
                o->url);
    } else if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: %s: %s\n", o->url, tam_strerror(err));
    }
    return err;
}

int ag_fleet_init(struct ag_fleet *f, uv_loop_t *loop, const struct ag_opts *o, size_t ndev,
                  unsigned max_conns)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->o = o;
    int err = ag_stats_init(&f->stats);
    err = err == TAM_OK ? load_trust(f) : err;
    err = err == TAM_OK ? load_attester(f) : err;
    err = err == TAM_OK ? tam_agent_vcache_create(256, &f->vcache) : err;
    if (err != TAM_OK) {
        return err;
    }
    profile_init(f);
    err = make_devices(f, ndev);
    err = err == TAM_OK && o->export_dir != NULL ? export_keys(f) : err;
    err = err == TAM_OK && o->mode != AG_MODE_KEYS ? ag_fetcher_create(loop, o, &f->fetcher) : err;
    if (err == TAM_OK && max_conns > 0) {
        err = ag_fleet_open_pool(f, max_conns);
    }
    return err;
}

static void on_pool_closed(void *arg)
{
    (void)arg;
}

void ag_fleet_finish(struct ag_fleet *f)
{
    if (f->pool != NULL) {
        tam_httpc_pool_close(f->pool, on_pool_closed, NULL);
        f->pool = NULL;
    }
    if (f->fetcher != NULL) {
        ag_fetcher_close(f->fetcher);
        f->fetcher = NULL;
    }
    if (f->loop != NULL) {
        uv_run(f->loop, UV_RUN_DEFAULT); /* until every handle is released */
    }
    for (size_t i = 0; i < f->ndev; i++) {
        tam_agent_device_destroy(f->devs[i]);
    }
    tam_free(f->devs);
    for (size_t i = 0; i < AG_MAX_KEYS; i++) {
        tam_key_destroy(f->tam_keys[i]);
        tam_key_destroy(f->signers[i]);
    }
    tam_key_destroy(f->attester);
    tam_agent_vcache_destroy(f->vcache);
    ag_stats_finish(&f->stats);
    memset(f, 0, sizeof(*f));
}

void ag_run_until(uv_loop_t *loop, const bool *flag)
{
    while (!*flag) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

int ag_tenant_of(const struct ag_opts *o, char *out, size_t cap)
{
    const char *t = o->tenant;
    size_t len = t != NULL ? strlen(t) : 0;
    struct tam_httpc_url u;
    if (t == NULL && o->url != NULL && tam_httpc_url_parse(o->url, &u) == TAM_OK) {
        /* .../tam/{tenant}: the TAM URI of a tamgate tenant */
        const char *p = strstr(u.path, "/tam/");
        if (p != NULL) {
            t = p + 5;
            len = strcspn(t, "/?");
        }
    }
    if (t == NULL || len == 0 || len >= cap) {
        return TAM_ENOTFOUND;
    }
    memcpy(out, t, len);
    out[len] = '\0';
    return TAM_OK;
}
