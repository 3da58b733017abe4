/*
 * The option tables and the layering of sources: defaults < file < environment < flags.
 * The file layer is config_ini.c, --help and dumps are config_usage.c.
 */
#include "tam/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/teep.h"
#include "tam/tenant.h"

_Static_assert(TAM_CONFIG_TENANT_ID_MAX == TAM_TENANT_ID_MAX, "tenant id sizes differ");

#define T         TAM_PROG_TAMD
#define W         TAM_PROG_WORKER
#define C         TAM_PROG_CTL
#define FIELD(f)  offsetof(struct tam_config, f)
#define TFIELD(f) offsetof(struct tam_config_tenant, f)
#define KIB       (1ull << 10)
#define MIB       (1ull << 20)
#define GIB       (1ull << 30)
#define SEC       1000ull
#define MIN       (60 * SEC)
#define HOUR      (60 * MIN)
#define DAY       (24 * HOUR)

static const struct tam_cfg_enum tls_versions[] = {
    {"1.2", TAM_CONFIG_TLS_1_2}, {"1.3", TAM_CONFIG_TLS_1_3}, {NULL, 0}};
static const struct tam_cfg_enum log_levels[] = {{"error", TAM_LOG_ERROR},
                                                 {"warn", TAM_LOG_WARN},
                                                 {"info", TAM_LOG_INFO},
                                                 {"debug", TAM_LOG_DEBUG},
                                                 {NULL, 0}};
static const struct tam_cfg_enum log_formats[] = {
    {"logfmt", TAM_LOG_LOGFMT}, {"json", TAM_LOG_JSON}, {NULL, 0}};
static const struct tam_cfg_enum numberings[] = {
    {"rfc", TAM_TEEP_RFC}, {"draft", TAM_TEEP_DRAFT}, {"draft12", TAM_TEEP_DRAFT12}, {NULL, 0}};
static const struct tam_cfg_enum attestations[] = {
    {"none", TAM_ATTEST_NONE}, {"required", TAM_ATTEST_REQUIRED}, {NULL, 0}};
static const struct tam_cfg_enum enrollments[] = {
    {"registered", TAM_ENROLL_REGISTERED}, {"attested", TAM_ENROLL_ATTESTED}, {NULL, 0}};

/* clang-format off */
const struct tam_cfg_opt tam_config__options[] = {
    {"data-dir", TAM_CFG_STR, FIELD(data_dir), T | W, .def_s = "/var/lib/tamgate",
     .flags = TAM_CFG_F_NONEMPTY, .help = "directory for the private Redis and runtime files"},
    {"redis", TAM_CFG_STR, FIELD(redis), T | W, .def_s = "",
     .help = "Redis address (HOST:PORT, unix:PATH, redis://...); empty: private redis in data-dir"},
    {"listen", TAM_CFG_ADDR, FIELD(listen), T, .def_s = "127.0.0.1:8080",
     .flags = TAM_CFG_F_NONEMPTY, .help = "TEEP listener (TLS when tls-cert is set)"},
    {"admin-listen", TAM_CFG_ADDR, FIELD(admin_listen), T | C, .def_s = "127.0.0.1:9080",
     .flags = TAM_CFG_F_NONEMPTY, .help = "admin API, /metrics, /healthz and /readyz listener"},
    {"procs", TAM_CFG_U32, FIELD(procs), T, 1, 64, 1,
     .help = "gateway processes sharing the listen port"},
    {"workers", TAM_CFG_U32, FIELD(workers), T, 0, 64, 2,
     .help = "tam-worker processes supervised by tamd (zero-config mode)"},
    {"tls-cert", TAM_CFG_STR, FIELD(tls_cert), T, .def_s = "",
     .help = "PEM certificate chain for the TEEP listener; empty: plain HTTP"},
    {"tls-key", TAM_CFG_STR, FIELD(tls_key), T, .def_s = "",
     .help = "PEM private key of tls-cert"},
    {"admin-tls-cert", TAM_CFG_STR, FIELD(admin_tls_cert), T, .def_s = "",
     .help = "PEM certificate chain for the admin listener; empty: plain HTTP"},
    {"admin-tls-key", TAM_CFG_STR, FIELD(admin_tls_key), T, .def_s = "",
     .help = "PEM private key of admin-tls-cert"},
    {"tls-min-version", TAM_CFG_ENUM, FIELD(tls_min_version), T, .def_s = "1.3",
     .enums = tls_versions, .help = "lowest TLS version accepted"},
    {"log-level", TAM_CFG_ENUM, FIELD(log_level), T | W | C, .def_s = "info",
     .enums = log_levels, .help = "most verbose level logged"},
    {"log-format", TAM_CFG_ENUM, FIELD(log_format), T | W | C, .def_s = "logfmt",
     .enums = log_formats, .help = "log line format on stderr"},
    {"max-body", TAM_CFG_SIZE, FIELD(max_body), T, KIB, 64 * MIB, MIB,
     .help = "largest request body"},
    {"max-header-bytes", TAM_CFG_SIZE, FIELD(max_header_bytes), T, KIB, MIB, 8 * KIB,
     .help = "largest request line plus header block"},
    {"max-headers", TAM_CFG_U32, FIELD(max_headers), T, 1, 1024, 64,
     .help = "most header fields in a request"},
    {"header-timeout", TAM_CFG_DURATION, FIELD(header_timeout_ms), T, 100, 10 * MIN, 10 * SEC,
     .help = "time to receive the request line and headers"},
    {"body-timeout", TAM_CFG_DURATION, FIELD(body_timeout_ms), T, 100, HOUR, 30 * SEC,
     .help = "time to receive the request body"},
    {"idle-timeout", TAM_CFG_DURATION, FIELD(idle_timeout_ms), T, SEC, HOUR, 60 * SEC,
     .help = "keep-alive connection idle time"},
    {"write-timeout", TAM_CFG_DURATION, FIELD(write_timeout_ms), T, 100, HOUR, 30 * SEC,
     .help = "time for the peer to accept a response"},
    {"max-connections", TAM_CFG_U32, FIELD(max_connections), T, 1, 1000000, 10000,
     .help = "open connections per process"},
    {"write-queue", TAM_CFG_SIZE, FIELD(write_queue), T, 4 * KIB, 64 * MIB, MIB,
     .help = "unsent response bytes per connection"},
    {"job-timeout", TAM_CFG_DURATION, FIELD(job_timeout_ms), T, 100, 10 * MIN, 10 * SEC,
     .help = "how long the gateway waits for a worker result"},
    {"redis-timeout", TAM_CFG_DURATION, FIELD(redis_timeout_ms), T | W, 10, MIN, 2 * SEC,
     .help = "Redis command and connect deadline"},
    {"shutdown-timeout", TAM_CFG_DURATION, FIELD(shutdown_timeout_ms), T | W, 0, 10 * MIN,
     10 * SEC, .help = "grace period for work in flight at shutdown"},
    {"demo", TAM_CFG_BOOL, FIELD(demo), T, 0, 1, 0,
     .help = "create the demo tenant and demo TCs"},
    {"default-tenant", TAM_CFG_STR, FIELD(default_tenant), T, .def_s = "",
     .help = "tenant that also answers POST /tam; empty: none"},
    {"worker-id", TAM_CFG_STR, FIELD(worker_id), W, .def_s = "",
     .help = "consumer name in Redis, [A-Za-z0-9._:-]; empty: HOSTNAME-PID"},
    {"worker-batch", TAM_CFG_U32, FIELD(worker_batch), T | W, 1, 256, 16,
     .help = "jobs a worker takes from Redis at once"},
    {"job-attempts", TAM_CFG_U32, FIELD(job_attempts), T | W, 1, 100, 5,
     .help = "deliveries of a job before it goes to the dead-letter stream"},
    {"claim-idle", TAM_CFG_DURATION, FIELD(claim_idle_ms), T | W, SEC, DAY, 30 * SEC,
     .help = "idle time before a worker claims another's pending job (XAUTOCLAIM)"},
    {"mem-limit", TAM_CFG_SIZE, FIELD(mem_limit), T | W, 0, 1024 * GIB, GIB,
     .help = "address-space limit (RLIMIT_AS) of each worker; 0: none"},
    {"kek-file", TAM_CFG_STR, FIELD(kek_file), T | W, .def_s = "",
     .help = "key-encryption key of tenant keys in Redis; empty: DATA_DIR/kek.key"},
    {"worker-seal-key", TAM_CFG_STR, FIELD(worker_seal_key), T | W, .def_s = "",
     .help = "workers' private sealing key (PEM); empty: DATA_DIR/worker-seal.pem"},
    {"worker-seal-pub", TAM_CFG_STR, FIELD(worker_seal_pub), T, .def_s = "",
     .help = "public half of worker-seal-key for tamd; empty: derived from worker-seal-key"},
    {"operator-token-file", TAM_CFG_STR, FIELD(operator_token_file), T, .def_s = "",
     .help = "file a new operator token is written to (0600); empty: DATA_DIR/operator.token"},
};
const size_t tam_config__n_options = TAM_ARRAY_LEN(tam_config__options);

const struct tam_cfg_opt tam_config__tenant_options[] = {
    {"numbering", TAM_CFG_ENUM, TFIELD(numbering), T | W, .def_s = "rfc", .enums = numberings,
     .help = "TEEP numbering of message types and error codes"},
    {"attestation", TAM_CFG_ENUM, TFIELD(attestation), T | W, .def_s = "required",
     .enums = attestations, .help = "whether a verified EAT is needed before an install"},
    {"enrollment", TAM_CFG_ENUM, TFIELD(enrollment), T | W, .def_s = "registered",
     .enums = enrollments, .help = "which device keys are accepted"},
    {"tam-key", TAM_CFG_PATHS, TFIELD(tam_keys), T | W, 0, TAM_CONFIG_MAX_TAM_KEYS,
     .help = "TAM signing key (PEM; one P-256 and/or one Ed25519)"},
    {"device-key", TAM_CFG_PATHS, TFIELD(device_keys), T | W, 0, TAM_CONFIG_MAX_KEYS,
     .help = "registered device public key (PEM)"},
    {"attester-key", TAM_CFG_PATHS, TFIELD(attester_keys), T | W, 0, TAM_CONFIG_MAX_KEYS,
     .help = "trusted attester/verifier public key (PEM)"},
    {"tc-signer-key", TAM_CFG_PATHS, TFIELD(tc_signer_keys), T | W, 0, TAM_CONFIG_MAX_KEYS,
     .help = "trusted TC signer public key (PEM)"},
    {"legacy-alg-ids", TAM_CFG_BOOL, TFIELD(legacy_alg_ids), T | W, 0, 1, 0,
     .help = "label signatures ES256 (-7) / EdDSA (-8) for draft12 agents"},
    {"sign1-only", TAM_CFG_BOOL, TFIELD(sign1_only), T | W, 0, 1, 0,
     .help = "sign the first QueryRequest with COSE_Sign1 only"},
    {"session-ttl", TAM_CFG_DURATION, TFIELD(session_ttl_ms), T | W, SEC, DAY, 5 * MIN,
     .help = "validity of a QueryRequest token"},
    {"update-ttl", TAM_CFG_DURATION, TFIELD(update_ttl_ms), T | W, SEC, 30 * DAY, 6 * HOUR,
     .help = "validity of an Update token"},
    {"max-pending-per-device", TAM_CFG_U32, TFIELD(max_pending_per_device), T | W, 1, 1024, 4,
     .help = "outstanding tokens per device"},
    {"max-devices", TAM_CFG_U32, TFIELD(max_devices), T | W, 0, 10000000, 0,
     .help = "devices learned in attested enrollment; 0: unlimited"},
    {"rps-per-device", TAM_CFG_U32, TFIELD(rps_per_device), T | W, 0, 1000, 0,
     .help = "signed messages per second and device (per gateway process); 0: unlimited"},
    {"manifest-key", TAM_CFG_PATHS, TFIELD(manifest_keys), W, 0, 1,
     .help = "SUIT manifest signing key (PEM, private) for TAM-built manifests"},
    {"verifier-key", TAM_CFG_PATHS, TFIELD(verifier_keys), W, 0, TAM_CONFIG_MAX_KEYS,
     .help = "trusted Verifier public key (PEM) for Attestation Results (passport model)"},
};
const size_t tam_config__n_tenant_options = TAM_ARRAY_LEN(tam_config__tenant_options);
/* clang-format on */

_Static_assert(TAM_ARRAY_LEN(tam_config__options) <= TAM_CFG_MAX_ROWS, "table too long");
_Static_assert(TAM_ARRAY_LEN(tam_config__tenant_options) <= TAM_CFG_MAX_ROWS, "table too long");

const char *tam_config_option_name(size_t i)
{
    return i < tam_config__n_options ? tam_config__options[i].name : NULL;
}

const struct tam_cfg_opt *tam_config__find(const struct tam_cfg_opt *table, size_t n,
                                           const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

const char *tam_config__program_name(unsigned program)
{
    if ((program & TAM_PROG_TAMD) != 0) {
        return "tamd";
    }
    if ((program & TAM_PROG_WORKER) != 0) {
        return "tam-worker";
    }
    return "tamctl";
}

/* ---- init / finish ---- */

int tam_config_init(struct tam_config *cfg, unsigned program)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->program = program;
    for (size_t i = 0; i < tam_config__n_options; i++) {
        int err = tam_config__set_default(cfg, &tam_config__options[i]);
        if (err != TAM_OK) {
            tam_config_finish(cfg);
            return err;
        }
    }
    return TAM_OK;
}

static void free_strv(char **v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; v[i] != NULL; i++) {
        tam_free(v[i]);
    }
    tam_free(v);
}

void tam_config_finish(struct tam_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < tam_config__n_options; i++) {
        tam_config__free_field(cfg, &tam_config__options[i]);
    }
    for (uint32_t t = 0; t < cfg->n_tenants; t++) {
        for (size_t i = 0; i < tam_config__n_tenant_options; i++) {
            tam_config__free_field(&cfg->tenants[t], &tam_config__tenant_options[i]);
        }
    }
    tam_free(cfg->tenants);
    tam_free(cfg->config_path);
    free_strv(cfg->src_argv_);
    free_strv(cfg->src_env_);
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- Command line ---- */

struct flag {
    const struct tam_cfg_opt *opt; /* NULL for --config */
    const char *value;
    const char *arg; /* argv entry, for messages */
};

static bool is_flag(const char *a, const char *name)
{
    return strcmp(a, name) == 0;
}

/*
 * Splits argv[*i] (and maybe argv[*i + 1]) into one option and its value. Sets *help or
 * *version for those flags and returns TAM_OK with f->arg == NULL. No value is parsed.
 */
static int next_flag(struct tam_config *cfg, int argc, char **argv, int *i, struct flag *f,
                     struct tam_buf *err)
{
    const char *a = argv[*i];
    memset(f, 0, sizeof(*f));
    if (is_flag(a, "--help") || is_flag(a, "-h") || is_flag(a, "--version")) {
        cfg->help = cfg->help || !is_flag(a, "--version");
        cfg->version = cfg->version || is_flag(a, "--version");
        return TAM_OK;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        return tam_config__fail(err, "command line: unexpected argument \"%.64s\"", a);
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
    f->arg = a;
    f->value = eq != NULL ? eq + 1 : NULL;
    f->opt = tam_config__find(tam_config__options, tam_config__n_options, name, len);
    bool is_config = len == 6 && memcmp(name, "config", 6) == 0;
    if (f->opt == NULL && !is_config && len > 3 && memcmp(name, "no-", 3) == 0 && eq == NULL) {
        f->opt = tam_config__find(tam_config__options, tam_config__n_options, name + 3, len - 3);
        if (f->opt != NULL && f->opt->type != TAM_CFG_BOOL) {
            return tam_config__fail(err, "command line --%s: --%s is not a boolean option", name,
                                    f->opt->name);
        }
        f->value = "false";
    }
    if (f->opt == NULL && !is_config) {
        return tam_config__fail(err, "command line --%.*s: unknown option", (int)len, name);
    }
    if (f->opt != NULL && (f->opt->programs & cfg->program) == 0) {
        return tam_config__fail(err, "command line --%s: not an option of %s", f->opt->name,
                                tam_config__program_name(cfg->program));
    }
    if (f->value == NULL && f->opt != NULL && f->opt->type == TAM_CFG_BOOL) {
        f->value = "true";
    }
    if (f->value == NULL) {
        if (*i + 1 >= argc) {
            return tam_config__fail(err, "command line --%.*s: missing value", (int)len, name);
        }
        f->value = argv[++*i];
    }
    return TAM_OK;
}

/*
 * Pass 1 (apply false): checks the flags' syntax and finds --config, --help and --version.
 * A syntax error is reported only when no --help follows. Pass 2 (apply true): sets values.
 */
static int parse_argv(struct tam_config *cfg, int argc, char **argv, bool apply,
                      const char **config_path, struct tam_buf *err)
{
    int first = TAM_OK;
    for (int i = 1; i < argc && (first == TAM_OK || !apply); i++) {
        struct flag f;
        int rc = next_flag(cfg, argc, argv, &i, &f, first == TAM_OK ? err : NULL);
        if (rc == TAM_OK && f.arg != NULL && f.opt == NULL) {
            *config_path = f.value;
        }
        if (rc == TAM_OK && f.opt != NULL && apply) {
            char why[256];
            rc = tam_config__set(cfg, f.opt, f.value, why, sizeof(why));
            if (rc == TAM_ECONFIG) {
                rc = tam_config__fail(err, "command line --%s: %s", f.opt->name, why);
            }
        }
        first = first != TAM_OK ? first : rc;
    }
    return cfg->help || cfg->version ? TAM_OK : first;
}

/* ---- Environment ---- */

#define ENV_PREFIX     "TAMGATE_"
#define ENV_PREFIX_LEN 8

/* The option named by environment variable name (after the prefix), or NULL. */
static const struct tam_cfg_opt *env_option(const char *name, size_t len)
{
    char lower[64];
    if (len == 0 || len >= sizeof(lower)) {
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c >= 'a' && c <= 'z') {
            return NULL; /* only the upper-case spelling names an option */
        }
        if (c == '_') {
            c = '-';
        } else if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        lower[i] = c;
    }
    return tam_config__find(tam_config__options, tam_config__n_options, lower, len);
}

static int apply_env_entry(struct tam_config *cfg, const char *entry, struct tam_buf *err)
{
    const char *eq = strchr(entry, '=');
    if (eq == NULL || strncmp(entry, ENV_PREFIX, ENV_PREFIX_LEN) != 0 ||
        strncmp(entry, ENV_PREFIX "CONFIG=", ENV_PREFIX_LEN + 7) == 0) {
        return TAM_OK;
    }
    const char *name = entry + ENV_PREFIX_LEN;
    int nlen = (int)(eq - entry);
    const struct tam_cfg_opt *o = env_option(name, (size_t)(eq - name));
    if (o == NULL) {
        return tam_config__fail(err, "environment %.*s: unknown option", nlen > 80 ? 80 : nlen,
                                entry);
    }
    if ((o->programs & cfg->program) == 0) {
        return TAM_OK; /* an option of another program in a shared environment */
    }
    char why[256];
    int rc = tam_config__set(cfg, o, eq + 1, why, sizeof(why));
    if (rc == TAM_ECONFIG) {
        return tam_config__fail(err, "environment %.*s: %s: %s", nlen, entry, o->name, why);
    }
    return rc;
}

static const char *env_config_path(char **envp)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], ENV_PREFIX "CONFIG=", ENV_PREFIX_LEN + 7) == 0) {
            return envp[i] + ENV_PREFIX_LEN + 7;
        }
    }
    return NULL;
}

/* ---- Saved sources for reload ---- */

static char **copy_strv(char **v, int n, bool only_ours)
{
    char **out = tam_calloc((size_t)n + 1, sizeof(*out));
    if (out == NULL) {
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (only_ours && strncmp(v[i], ENV_PREFIX, ENV_PREFIX_LEN) != 0) {
            continue;
        }
        out[k] = tam_strdup(v[i]);
        if (out[k] == NULL) {
            free_strv(out);
            return NULL;
        }
        k++;
    }
    return out;
}

static int save_sources(struct tam_config *cfg, int argc, char **argv, char **envp)
{
    int n_env = 0;
    while (envp != NULL && envp[n_env] != NULL) {
        n_env++;
    }
    cfg->src_argc_ = argc;
    cfg->src_argv_ = copy_strv(argv, argc, false);
    cfg->src_env_ = copy_strv(envp, n_env, true);
    return cfg->src_argv_ != NULL && cfg->src_env_ != NULL ? TAM_OK : TAM_ENOMEM;
}

/* ---- The file ---- */

static int read_file(const char *path, struct tam_buf *text, struct tam_buf *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        (void)tam_config__fail(err, "config file %s: %s", path, strerror(e));
        return TAM_ERRNO(e);
    }
    int rc = TAM_OK;
    char chunk[4096];
    size_t n;
    while (rc == TAM_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = tam_buf_append(text, chunk, n);
    }
    if (rc == TAM_OK && ferror(f)) {
        rc = TAM_EINVAL;
    }
    (void)fclose(f);
    if (rc == TAM_OK && memchr(text->data, '\0', text->len) != NULL) {
        rc = TAM_EINVAL;
    }
    if (rc == TAM_OK) {
        rc = tam_buf_append(text, "", 1); /* the NUL terminator */
    }
    if (rc == TAM_ETOOBIG) {
        return tam_config__fail(err, "config file %s: larger than %u bytes", path,
                                TAM_CONFIG_FILE_MAX);
    }
    if (rc == TAM_EINVAL) {
        return tam_config__fail(err, "config file %s: read error or NUL byte", path);
    }
    return rc;
}

static int load_file(struct tam_config *cfg, const char *path, struct tam_buf *err)
{
    cfg->config_path = tam_strdup(path);
    if (cfg->config_path == NULL) {
        return TAM_ENOMEM;
    }
    struct tam_buf text;
    tam_buf_init(&text, (size_t)TAM_CONFIG_FILE_MAX + 1);
    int rc = read_file(path, &text, err);
    if (rc == TAM_OK) {
        rc = tam_config_parse_string(cfg, (const char *)text.data, path, err);
    }
    tam_buf_finish(&text);
    return rc;
}

/* ---- Load ---- */

static int load_layers(struct tam_config *cfg, int argc, char **argv, char **envp,
                       struct tam_buf *err)
{
    /* Pass 1 keeps its message apart: a later --help makes an earlier error moot. */
    const char *path = NULL;
    struct tam_buf first;
    tam_buf_init(&first, 1024);
    int rc = parse_argv(cfg, argc, argv, false, &path, &first);
    if (rc != TAM_OK && err != NULL && first.len > 0) {
        int copied = tam_buf_append(err, first.data, first.len);
        (void)copied; /* a message that does not fit is dropped, as in tam_config__fail() */
    }
    tam_buf_finish(&first);
    if (rc != TAM_OK || cfg->help || cfg->version) {
        return rc;
    }
    path = path != NULL ? path : env_config_path(envp);
    if (path != NULL) {
        rc = load_file(cfg, path, err);
    }
    for (size_t i = 0; rc == TAM_OK && envp != NULL && envp[i] != NULL; i++) {
        rc = apply_env_entry(cfg, envp[i], err);
    }
    if (rc == TAM_OK) {
        rc = parse_argv(cfg, argc, argv, true, &path, err);
    }
    return rc == TAM_OK ? tam_config_validate(cfg, err) : rc;
}

int tam_config_load(struct tam_config *cfg, unsigned program, int argc, char **argv, char **envp,
                    struct tam_buf *err_msg)
{
    int rc = tam_config_init(cfg, program);
    if (rc != TAM_OK) {
        return rc;
    }
    rc = save_sources(cfg, argc, argv, envp);
    if (rc == TAM_OK) {
        rc = load_layers(cfg, argc, argv, envp, err_msg);
    }
    if (rc != TAM_OK) {
        tam_config_finish(cfg);
    }
    return rc;
}

int tam_config_reload(const struct tam_config *old, struct tam_config *out, struct tam_buf *err_msg)
{
    return tam_config_load(out, old->program, old->src_argc_, old->src_argv_, old->src_env_,
                           err_msg);
}

/* ---- Cross-option checks ---- */

static bool worker_id_valid(const char *s)
{
    size_t len = strlen(s);
    if (len > TAM_CONFIG_WORKER_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

int tam_config_validate(const struct tam_config *cfg, struct tam_buf *err)
{
    bool tamd = (cfg->program & TAM_PROG_TAMD) != 0;
    if (tamd && (cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        return tam_config__fail(err, "tls-cert and tls-key must be given together");
    }
    if (tamd && (cfg->admin_tls_cert[0] == '\0') != (cfg->admin_tls_key[0] == '\0')) {
        return tam_config__fail(err, "admin-tls-cert and admin-tls-key must be given together");
    }
    const char *dt = cfg->default_tenant;
    if (tamd && dt[0] != '\0' && !tam_tenant_id_valid(dt, strlen(dt))) {
        return tam_config__fail(err,
                                "default-tenant: \"%.64s\" is not a tenant id "
                                "(1..63 of [a-z0-9-_], not starting with '-' or '_')",
                                dt);
    }
    if (!worker_id_valid(cfg->worker_id)) {
        return tam_config__fail(err, "worker-id: \"%.64s\" is not 1..%u of [A-Za-z0-9._:-]",
                                cfg->worker_id, TAM_CONFIG_WORKER_ID_MAX);
    }
    return TAM_OK;
}
