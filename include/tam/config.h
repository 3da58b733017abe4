/*
 * Configuration of tamd, tam-worker and tamctl (redis static_configs[], nginx ngx_command_t).
 *
 * One table of options (src/config/config.c) fills an immutable struct tam_config from four
 * sources, lowest to highest precedence:
 *   1. built-in defaults;
 *   2. the config file: `--config PATH` (or `--config=PATH`), else $TAMGATE_CONFIG; none = no file;
 *   3. environment variables TAMGATE_<NAME>: the option name upper-cased, '-' -> '_'
 *      (TAMGATE_MAX_BODY=2m); TAMGATE_CONFIG names the file;
 *   4. command-line flags `--name value` or `--name=value`; booleans take `--name` (true),
 *      `--no-name` (false) or `--name=VALUE`. A repeated flag: the last one wins.
 *
 * Config file (INI, parsed by libinih):
 *   - options are TOP-LEVEL keys (before any section), spelled like the flags: `max-body = 2m`;
 *   - `[tenant NAME]` sections describe static tenants (keys: see struct tam_config_tenant);
 *     NAME is a tenant id (1..63 of [a-z0-9-_], not starting with '-' or '_');
 *   - comments: lines starting with ';' or '#', and " ; ..." after a value;
 *   - leading whitespace is ignored, so there are no continuation lines;
 *   - one pair of surrounding double quotes around a value is removed (no escapes);
 *   - a line holds at most 197 characters (libinih's fixed line buffer); the file at most
 *     TAM_CONFIG_FILE_MAX bytes and no NUL byte;
 *   - a key given twice in one section, an unknown key or an unknown section is an error.
 *
 * Program filter. Every option applies to some programs (TAM_PROG_* mask). An option of
 * another program is ignored silently in the config file and in the environment (both are
 * commonly shared by tamd and its workers) but is an error on the command line.
 * Unknown options are errors in every source. Error messages name the source:
 *   "/etc/tamgate.ini:12: max-body: \"2g\" is above the maximum 64MiB"
 *   "environment TAMGATE_PROCS: procs: \"x\" is not a number"
 *   "command line --bogus: unknown option"
 *
 * Value syntax (also printed by tam_config_usage()):
 *   string    any text without control characters, at most TAM_CONFIG_STR_MAX bytes
 *   bool      true/false, yes/no, on/off, 1/0 (case-insensitive)
 *   u32, u64  decimal digits only, within the option's bounds
 *   duration  an integer with a unit: "250ms", "10s", "5m", "2h", "1d"; no unit = milliseconds
 *   size      an integer with an optional binary suffix, case-insensitive: k, kb, kib (1024),
 *             m, mb, mib, g, gb, gib, t, tb, tib, b; "64k" = "64KiB" = 65536; no suffix = bytes
 *   enum      one of the listed names (case-sensitive)
 *   address   "IPV4:PORT", "[IPV6]:PORT", "HOSTNAME:PORT" or "unix:PATH"; PORT 0..65535
 *
 * None of these values is secret (keys are file paths), so messages may quote them.
 * Nothing here logs. Loading is the only function that does I/O (it reads the file).
 */
#ifndef TAM_CONFIG_H
#define TAM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tam/buf.h"
#include "tam/common.h"

/* Programs (a bit mask): the `program` argument is exactly one of these. */
#define TAM_PROG_TAMD   (1u << 0)
#define TAM_PROG_WORKER (1u << 1)
#define TAM_PROG_CTL    (1u << 2)
#define TAM_PROG_ALL    (TAM_PROG_TAMD | TAM_PROG_WORKER | TAM_PROG_CTL)

#define TAM_CONFIG_FILE_MAX      (1u << 20) /* bytes in a config file */
#define TAM_CONFIG_STR_MAX       4096       /* bytes in one value */
#define TAM_CONFIG_MAX_TENANTS   1024
#define TAM_CONFIG_MAX_KEYS      64 /* per repeatable tenant key (device-key, ...) */
#define TAM_CONFIG_MAX_TAM_KEYS  2  /* tam-key: one P-256 and/or one Ed25519 */
#define TAM_CONFIG_TENANT_ID_MAX 63 /* == TAM_TENANT_ID_MAX */
#define TAM_CONFIG_WORKER_ID_MAX 128

/* ---- Addresses ---- */

enum tam_addr_kind {
    TAM_ADDR_NONE = 0, /* empty (only where an option allows it) */
    TAM_ADDR_IPV4 = 1, /* host is a dotted quad */
    TAM_ADDR_IPV6 = 2, /* host is an IPv6 literal without brackets */
    TAM_ADDR_HOST = 3, /* host is a DNS name, resolving it is the caller's job */
    TAM_ADDR_UNIX = 4, /* path is a Unix socket path */
};

#define TAM_ADDR_HOST_MAX 254 /* 253 characters + NUL */
#define TAM_ADDR_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path), NUL included */

struct tam_addr {
    enum tam_addr_kind kind;
    uint16_t port;                /* IPV4, IPV6, HOST */
    char host[TAM_ADDR_HOST_MAX]; /* IPV4, IPV6, HOST */
    char path[TAM_ADDR_PATH_MAX]; /* UNIX */
};

/*
 * Parses "1.2.3.4:80", "[::1]:80", "name.example:80" or "unix:/run/x.sock" into *out (which is
 * zeroed first). "" gives TAM_ADDR_NONE. TAM_EINVAL for anything else (no port, port > 65535,
 * bad literal, bad name), TAM_ETOOBIG for a too long host name or path.
 */
TAM_MUST_CHECK int tam_config_parse_addr(const char *s, struct tam_addr *out);
/* Formats a back into that syntax ("" for NONE) into out (truncated to outsz); returns out. */
const char *tam_config_format_addr(const struct tam_addr *a, char *out, size_t outsz);

/* ---- Value parsers (pure; TAM_OK or TAM_EINVAL, TAM_ETOOBIG on overflow) ---- */

TAM_MUST_CHECK int tam_config_parse_bool(const char *s, bool *out);
TAM_MUST_CHECK int tam_config_parse_u64(const char *s, uint64_t *out);
TAM_MUST_CHECK int tam_config_parse_duration(const char *s, uint64_t *ms);
TAM_MUST_CHECK int tam_config_parse_size(const char *s, uint64_t *bytes);

/* ---- The configuration ---- */

/* Enum option values. */
enum tam_config_tls_version {
    TAM_CONFIG_TLS_1_2 = 0x0303,
    TAM_CONFIG_TLS_1_3 = 0x0304,
};

/* A list of file paths from a repeatable key; strings and array owned by the config. */
struct tam_config_paths {
    char **v;
    uint32_t n;
};

/*
 * One `[tenant NAME]` section, values as written (paths stay paths: loading keys is the
 * caller's job). Defaults equal tam_tenant_create()'s. Keys:
 *   numbering = rfc|draft|draft12          (default rfc)
 *   attestation = none|required            (default required)
 *   enrollment = registered|attested       (default registered)
 *   tam-key = PEM path                     (repeatable, at most 2: one P-256, one Ed25519)
 *   device-key, attester-key, tc-signer-key = PEM path  (repeatable, at most 64 each)
 *   legacy-alg-ids, sign1-only = bool      (default false)
 *   session-ttl = duration                 (default 5m, 1s..1d)
 *   update-ttl = duration                  (default 6h, 1s..30d)
 *   max-pending-per-device = u32           (default 4, 1..1024)
 *   manifest-key = PEM path                (tam-worker only, at most 1: the tenant's SUIT
 *                                           manifest signing key for TAM-built manifests)
 *   verifier-key = PEM path                (tam-worker only, repeatable, at most 64: trusted
 *                                           Verifier keys for Attestation Results, passport)
 */
struct tam_config_tenant {
    char id[TAM_CONFIG_TENANT_ID_MAX + 1];
    unsigned line;   /* line of the section header in the config file */
    int numbering;   /* enum tam_teep_numbering */
    int attestation; /* enum tam_attestation_mode */
    int enrollment;  /* enum tam_enrollment_mode */
    struct tam_config_paths tam_keys;
    struct tam_config_paths device_keys;
    struct tam_config_paths attester_keys;
    struct tam_config_paths tc_signer_keys;
    bool legacy_alg_ids;
    bool sign1_only;
    uint64_t session_ttl_ms;
    uint64_t update_ttl_ms;
    uint32_t max_pending_per_device;
    uint32_t max_devices;    /* max-devices TW 0 (unlimited) */
    uint32_t rps_per_device; /* rps-per-device TW 0 (unlimited) */
    /* Worker-only keys (added for tam-worker, issue #4). */
    struct tam_config_paths manifest_keys; /* at most 1 */
    struct tam_config_paths verifier_keys;
};

/*
 * The configuration. After a successful load every string is non-NULL ("" = not set) and
 * every value is within its bounds. Treat it as immutable; a reload builds a new one.
 * Option names, programs (T = tamd, W = tam-worker, C = tamctl) and defaults:
 */
struct tam_config {
    unsigned program;  /* the TAM_PROG_* it was loaded for */
    char *config_path; /* owned; the file that was read, NULL if none */
    bool help;         /* --help or -h was given: print tam_config_usage(), exit 0 */
    bool version;      /* --version was given */

    char *data_dir;               /* data-dir TW "/var/lib/tamgate", non-empty */
    char *redis;                  /* redis TW "": empty = private redis-server in data-dir;
                                     else an address for tam_redis_addr_parse() */
    struct tam_addr listen;       /* listen T 127.0.0.1:8080 (plain HTTP unless tls-cert) */
    struct tam_addr admin_listen; /* admin-listen TC 127.0.0.1:9080 */
    uint32_t procs;               /* procs T 1, 1..64: processes sharing the port */
    uint32_t workers;             /* workers T 2, 0..64: supervised tam-worker processes */
    char *tls_cert;               /* tls-cert T "": PEM path; given together with tls-key */
    char *tls_key;                /* tls-key T "" */
    int tls_min_version;          /* tls-min-version T 1.2|1.3 (1.3): tam_config_tls_version */
    char *admin_tls_cert;         /* admin-tls-cert T "": PEM path; HTTPS on the admin listener */
    char *admin_tls_key;          /* admin-tls-key T "" */
    int log_level;                /* log-level TWC error|warn|info|debug (info): tam_log_level */
    int log_format;               /* log-format TWC logfmt|json (logfmt): tam_log_format */
    uint64_t max_body;            /* max-body T 1MiB, 1KiB..64MiB */
    uint64_t max_header_bytes;    /* max-header-bytes T 8KiB, 1KiB..1MiB */
    uint32_t max_headers;         /* max-headers T 64, 1..1024 */
    uint64_t header_timeout_ms;   /* header-timeout T 10s, 100ms..10m */
    uint64_t body_timeout_ms;     /* body-timeout T 30s, 100ms..1h */
    uint64_t idle_timeout_ms;     /* idle-timeout T 60s, 1s..1h */
    uint64_t write_timeout_ms;    /* write-timeout T 30s, 100ms..1h */
    uint32_t max_connections;     /* max-connections T 10000, 1..1000000 */
    uint64_t write_queue;         /* write-queue T 1MiB, 4KiB..64MiB: per connection */
    uint64_t job_timeout_ms;      /* job-timeout T 10s, 100ms..10m: wait for a worker result */
    uint64_t redis_timeout_ms;    /* redis-timeout TW 2s, 10ms..1m */
    uint64_t shutdown_timeout_ms; /* shutdown-timeout TW 10s, 0..10m */
    bool demo;                    /* demo T false: demo tenant and TCs */
    char *default_tenant;         /* default-tenant T "": tenant that answers POST /tam */
    char *worker_id;              /* worker-id W "": the caller makes hostname-pid when empty;
                                     else 1..128 of [A-Za-z0-9._:-] */
    uint32_t worker_batch;        /* worker-batch TW 16, 1..256 */
    uint32_t job_attempts;        /* job-attempts TW 5, 1..100: then the dead-letter stream */
    uint64_t claim_idle_ms;       /* claim-idle TW 30s, 1s..1d: XAUTOCLAIM min idle */
    uint64_t mem_limit;           /* mem-limit TW 1GiB, 0..1TiB: RLIMIT_AS of workers, 0 = none */
    char *kek_file;               /* kek-file TW "": the KEK (seal.h); empty: DATA_DIR/kek.key */
    char *worker_seal_key;        /* worker-seal-key TW "": private P-256 PEM (workers only);
                                     empty: DATA_DIR/worker-seal.pem */
    char *worker_seal_pub;        /* worker-seal-pub T "": its public half for tamd's admin API;
                                     empty: derived from worker-seal-key when readable */
    char *operator_token_file;    /* operator-token-file T "": where a new operator token is
                                     written; empty: DATA_DIR/operator.token */

    struct tam_config_tenant *tenants; /* owned; [tenant NAME] sections in file order */
    uint32_t n_tenants;

    /* Private: copies of the startup argv and TAMGATE_* environment for tam_config_reload(). */
    int src_argc_;
    char **src_argv_;
    char **src_env_;
};

/*
 * Builds *cfg from defaults, the config file, the environment and the command line.
 * program: one TAM_PROG_*. argv: argc entries, argv[0] is the program name (skipped).
 * envp: NULL-terminated "NAME=value" strings (environ), or NULL for none. All borrowed;
 * the arguments and the TAMGATE_* entries are copied for tam_config_reload().
 * With --help/-h (or --version) anywhere, only the defaults are loaded and cfg->help (or
 * cfg->version) is set: no file is read and no other check is made.
 * Returns TAM_OK; TAM_ECONFIG with one line in err_msg (if non-NULL; appended, no newline)
 * naming the source; -errno if the file cannot be read; TAM_ENOMEM. On failure *cfg is left
 * zeroed (tam_config_finish() is then a no-op).
 */
TAM_MUST_CHECK int tam_config_load(struct tam_config *cfg, unsigned program, int argc, char **argv,
                                   char **envp, struct tam_buf *err_msg);

/*
 * SIGHUP: builds *out anew from the sources *old was loaded from (the same program, argv and
 * environment, and the file read again). *old is untouched. Returns as tam_config_load().
 */
TAM_MUST_CHECK int tam_config_reload(const struct tam_config *old, struct tam_config *out,
                                     struct tam_buf *err_msg);

/* Frees everything *cfg owns and zeroes it; NULL and zeroed configs are fine. */
void tam_config_finish(struct tam_config *cfg);

/*
 * Lower-level steps, for tests and tools. tam_config_init() zeroes *cfg and fills in the
 * defaults (TAM_OK or TAM_ENOMEM). tam_config_parse_string() applies INI text on top of *cfg
 * as the config file layer (source names the file in messages; NULL = "config"); no I/O.
 * tam_config_validate() makes the cross-option checks (tls-cert with tls-key, ...).
 * On failure *cfg stays valid for tam_config_finish() but is partly updated.
 */
TAM_MUST_CHECK int tam_config_init(struct tam_config *cfg, unsigned program);
TAM_MUST_CHECK int tam_config_parse_string(struct tam_config *cfg, const char *text,
                                           const char *source, struct tam_buf *err_msg);
TAM_MUST_CHECK int tam_config_validate(const struct tam_config *cfg, struct tam_buf *err_msg);

/*
 * --help text generated from the table: a "Usage: PROGNAME [OPTIONS]" line, usage_header
 * (may be NULL), then every option of `program` with its type, default, bounds, environment
 * variable and help, the value syntax, and the tenant section keys (tamd and tam-worker).
 */
TAM_MUST_CHECK int tam_config_usage_buf(struct tam_buf *out, unsigned program, const char *progname,
                                        const char *usage_header);
/* The same text written to f (errors ignored: this is the last thing --help does). */
void tam_config_usage(FILE *f, unsigned program, const char *progname, const char *usage_header);

/* The effective values of cfg's program options and its tenants, as INI text ("name = value"). */
TAM_MUST_CHECK int tam_config_dump(const struct tam_config *cfg, struct tam_buf *out);

/* The i-th option name of the table (every program), NULL past the end. */
const char *tam_config_option_name(size_t i);

#endif
