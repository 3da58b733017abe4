#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/config.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/teep.h"
#include "tam/tenant.h"

/* ---- helpers ---- */

static struct tam_buf msg;

static void setup(void)
{
    tam_buf_init(&msg, 4096);
}

static void teardown(void)
{
    tam_buf_finish(&msg);
}

/* The error message as a C string. */
static const char *m(void)
{
    static char s[4096];
    size_t n = msg.len < sizeof(s) - 1 ? msg.len : sizeof(s) - 1;
    if (n > 0) {
        memcpy(s, msg.data, n);
    }
    s[n] = '\0';
    return s;
}

#define assert_msg_has(needle) \
    cr_assert(strstr(m(), (needle)) != NULL, "message \"%s\" lacks \"%s\"", m(), (needle))

/* Writes text into a fresh temporary file; returns its path (static storage, one per slot). */
static const char *tmpfile_with(int slot, const char *text)
{
    static char paths[4][64];
    char *p = paths[slot];
    (void)snprintf(p, sizeof(paths[0]), "/tmp/tamcfg-test-XXXXXX");
    int fd = mkstemp(p);
    cr_assert_geq(fd, 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return p;
}

static void rewrite(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, true);
    fclose(f);
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* Parses INI text for program prog into *cfg (defaults first). */
static int parse(struct tam_config *cfg, unsigned prog, const char *text)
{
    cr_assert_eq(tam_config_init(cfg, prog), TAM_OK);
    return tam_config_parse_string(cfg, text, "t.ini", &msg);
}

/* A text value through the file layer: returns the rc, leaves cfg finished. */
static int file_value(const char *key, const char *value)
{
    char text[512];
    snprintf(text, sizeof(text), "%s = %s\n", key, value);
    struct tam_config cfg;
    tam_buf_reset(&msg);
    int rc = parse(&cfg, TAM_PROG_TAMD, text);
    tam_config_finish(&cfg);
    return rc;
}

TestSuite(config, .init = setup, .fini = teardown);

/* ---- defaults ---- */

Test(config, defaults)
{
    struct tam_config cfg;
    char *argv[] = {"tamd", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg), TAM_OK, "%s",
                 m());
    cr_assert_str_eq(cfg.data_dir, "/var/lib/tamgate");
    cr_assert_str_eq(cfg.redis, "");
    cr_assert_eq(cfg.listen.kind, TAM_ADDR_IPV4);
    cr_assert_str_eq(cfg.listen.host, "127.0.0.1");
    cr_assert_eq(cfg.listen.port, 8080);
    cr_assert_eq(cfg.admin_listen.port, 9080);
    cr_assert_eq(cfg.procs, 1);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_str_eq(cfg.tls_cert, "");
    cr_assert_str_eq(cfg.tls_key, "");
    cr_assert_eq(cfg.tls_min_version, TAM_CONFIG_TLS_1_3);
    cr_assert_eq(cfg.log_level, TAM_LOG_INFO);
    cr_assert_eq(cfg.log_format, TAM_LOG_LOGFMT);
    cr_assert_eq(cfg.max_body, 1u << 20);
    cr_assert_eq(cfg.max_header_bytes, 8192);
    cr_assert_eq(cfg.max_headers, 64);
    cr_assert_eq(cfg.header_timeout_ms, 10000);
    cr_assert_eq(cfg.body_timeout_ms, 30000);
    cr_assert_eq(cfg.idle_timeout_ms, 60000);
    cr_assert_eq(cfg.write_timeout_ms, 30000);
    cr_assert_eq(cfg.max_connections, 10000);
    cr_assert_eq(cfg.write_queue, 1u << 20);
    cr_assert_eq(cfg.job_timeout_ms, 10000);
    cr_assert_eq(cfg.redis_timeout_ms, 2000);
    cr_assert_eq(cfg.shutdown_timeout_ms, 10000);
    cr_assert_eq(cfg.demo, false);
    cr_assert_str_eq(cfg.default_tenant, "");
    cr_assert_str_eq(cfg.worker_id, "");
    cr_assert_eq(cfg.worker_batch, 16);
    cr_assert_eq(cfg.job_attempts, 5);
    cr_assert_eq(cfg.claim_idle_ms, 30000);
    cr_assert_eq(cfg.mem_limit, 1ull << 30);
    cr_assert_eq(cfg.n_tenants, 0);
    cr_assert_null(cfg.config_path);
    cr_assert_eq(cfg.help, false);
    cr_assert_eq(cfg.program, TAM_PROG_TAMD);
    tam_config_finish(&cfg);
    tam_config_finish(&cfg); /* zeroed: a no-op */
    tam_config_finish(NULL);
}

/* ---- the file ---- */

Test(config, file_values)
{
    struct tam_config cfg;
    const char *text = "\xEF\xBB\xBF; a comment\n"
                       "# another comment\n"
                       "\n"
                       "data-dir = /srv/tam\n"
                       "redis = unix:/run/redis.sock\n"
                       "listen = [::1]:8443 ; inline comment\n"
                       "   admin-listen = unix:/run/tam-admin.sock\n"
                       "procs = 4\n"
                       "workers = 0\n"
                       "tls-cert = \"/etc/tam/cert.pem\"\n"
                       "tls-key = /etc/tam/key.pem\n"
                       "tls-min-version = 1.2\n"
                       "log-level = debug\n"
                       "log-format = json\n"
                       "max-body = 16MiB\n"
                       "max-header-bytes = 16k\n"
                       "max-headers = 100\n"
                       "header-timeout = 250ms\n"
                       "body-timeout = 2m\n"
                       "idle-timeout = 1h\n"
                       "write-timeout = 1500\n"
                       "max-connections = 1000000\n"
                       "write-queue = 64KiB\n"
                       "job-timeout = 5s\n"
                       "redis-timeout = 10ms\n"
                       "shutdown-timeout = 0\n"
                       "demo = yes\n"
                       "default-tenant = acme\n"
                       "worker-batch = 256\n"
                       "job-attempts = 100\n"
                       "claim-idle = 1d\n"
                       "mem-limit = 0\n";
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    cr_assert_eq(tam_config_validate(&cfg, &msg), TAM_OK, "%s", m());
    cr_assert_str_eq(cfg.data_dir, "/srv/tam");
    cr_assert_str_eq(cfg.redis, "unix:/run/redis.sock");
    cr_assert_eq(cfg.listen.kind, TAM_ADDR_IPV6);
    cr_assert_str_eq(cfg.listen.host, "::1");
    cr_assert_eq(cfg.listen.port, 8443);
    cr_assert_eq(cfg.admin_listen.kind, TAM_ADDR_UNIX);
    cr_assert_str_eq(cfg.admin_listen.path, "/run/tam-admin.sock");
    cr_assert_eq(cfg.procs, 4);
    cr_assert_eq(cfg.workers, 0);
    cr_assert_str_eq(cfg.tls_cert, "/etc/tam/cert.pem", "quotes are removed");
    cr_assert_str_eq(cfg.tls_key, "/etc/tam/key.pem");
    cr_assert_eq(cfg.tls_min_version, TAM_CONFIG_TLS_1_2);
    cr_assert_eq(cfg.log_level, TAM_LOG_DEBUG);
    cr_assert_eq(cfg.log_format, TAM_LOG_JSON);
    cr_assert_eq(cfg.max_body, 16u << 20);
    cr_assert_eq(cfg.max_header_bytes, 16384);
    cr_assert_eq(cfg.max_headers, 100);
    cr_assert_eq(cfg.header_timeout_ms, 250);
    cr_assert_eq(cfg.body_timeout_ms, 120000);
    cr_assert_eq(cfg.idle_timeout_ms, 3600000);
    cr_assert_eq(cfg.write_timeout_ms, 1500);
    cr_assert_eq(cfg.max_connections, 1000000);
    cr_assert_eq(cfg.write_queue, 65536);
    cr_assert_eq(cfg.job_timeout_ms, 5000);
    cr_assert_eq(cfg.redis_timeout_ms, 10);
    cr_assert_eq(cfg.shutdown_timeout_ms, 0);
    cr_assert_eq(cfg.demo, true);
    cr_assert_str_eq(cfg.default_tenant, "acme");
    cr_assert_eq(cfg.worker_batch, 256);
    cr_assert_eq(cfg.job_attempts, 100);
    cr_assert_eq(cfg.claim_idle_ms, 86400000);
    cr_assert_eq(cfg.mem_limit, 0);
    tam_config_finish(&cfg);
}

Test(config, file_syntax_errors_name_the_line)
{
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "procs = 2\nthis is not a pair\nprocs = 3\n"),
                 TAM_ECONFIG);
    assert_msg_has("t.ini:2: syntax error");
    tam_config_finish(&cfg);

    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "procs = 2\nbogus = 1\n"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:2: unknown option \"bogus\"");
    tam_config_finish(&cfg);

    /* A syntax error before one of our errors wins. */
    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "\n\ngarbage\nprocs = 99\n"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:3: syntax error (expected \"key = value\", [section] or a "
                          "comment)");
    tam_config_finish(&cfg);

    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "procs = 2\nprocs = 3\n"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:2: procs: given twice (first on line 1)");
    tam_config_finish(&cfg);

    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "[server]\nprocs = 2\n"), TAM_ECONFIG);
    assert_msg_has("t.ini:1: unknown section [server]");
    tam_config_finish(&cfg);

    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "[tenant a\n"), TAM_ECONFIG);
    assert_msg_has("t.ini:1: section header without ']'");
    tam_config_finish(&cfg);

    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "procs = 3 # not a comment\n"), TAM_ECONFIG);
    assert_msg_has("t.ini:1: procs: \"3 # not a comment\" is not a number");
    tam_config_finish(&cfg);
}

Test(config, file_long_lines_are_refused)
{
    char text[600];
    int n = snprintf(text, sizeof(text), "data-dir = /");
    memset(text + n, 'a', 300);
    text[n + 300] = '\n';
    text[n + 301] = '\0';
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_ECONFIG);
    assert_msg_has("t.ini:1: line longer than 197 characters");
    tam_config_finish(&cfg);

    /* 197 characters still fit. */
    memset(text + n, 'b', 197 - (size_t)n);
    text[197] = '\0';
    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    cr_assert_eq(strlen(cfg.data_dir), 197 - 11);
    tam_config_finish(&cfg);
}

Test(config, file_empty_and_comment_only)
{
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, ""), TAM_OK);
    tam_config_finish(&cfg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "; nothing\n\n   \n# here"), TAM_OK);
    cr_assert_eq(cfg.procs, 1);
    tam_config_finish(&cfg);
    /* CRLF line ends. */
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, "procs = 7\r\nlog-level = warn\r\n"), TAM_OK, "%s",
                 m());
    cr_assert_eq(cfg.procs, 7);
    cr_assert_eq(cfg.log_level, TAM_LOG_WARN);
    tam_config_finish(&cfg);
}

/* ---- sources and precedence ---- */

Test(config, env_overrides_file_and_flags_override_env)
{
    const char *path = tmpfile_with(0, "max-body = 4m\nprocs = 2\nworkers = 3\nlog-level = warn\n");
    char envc[128];
    snprintf(envc, sizeof(envc), "TAMGATE_CONFIG=%s", path);
    char *envp[] = {"PATH=/usr/bin",   envc,         "TAMGATE_MAX_BODY=2m",
                    "TAMGATE_PROCS=5", "HOME=/root", NULL};
    char *argv[] = {"tamd", "--procs", "6", "--log-level=error", NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, envp, &msg), TAM_OK, "%s",
                 m());
    cr_assert_str_eq(cfg.config_path, path);
    cr_assert_eq(cfg.max_body, 2u << 20, "env beats file");
    cr_assert_eq(cfg.procs, 6, "flag beats env");
    cr_assert_eq(cfg.workers, 3, "file beats default");
    cr_assert_eq(cfg.log_level, TAM_LOG_ERROR, "flag beats file");
    cr_assert_eq(cfg.max_headers, 64, "default");
    tam_config_finish(&cfg);
    unlink(path);
}

Test(config, config_flag_beats_config_env)
{
    const char *a = tmpfile_with(0, "procs = 2\n");
    const char *b = tmpfile_with(1, "procs = 3\n");
    char envc[128];
    snprintf(envc, sizeof(envc), "TAMGATE_CONFIG=%s", a);
    char *envp[] = {envc, NULL};
    char *argv[] = {"tamd", "--config", (char *)b, NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, envp, &msg), TAM_OK, "%s",
                 m());
    cr_assert_eq(cfg.procs, 3);
    tam_config_finish(&cfg);

    char cflag[128];
    snprintf(cflag, sizeof(cflag), "--config=%s", b);
    char *argv2[] = {"tamd", cflag, NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv2), argv2, NULL, &msg), TAM_OK);
    cr_assert_eq(cfg.procs, 3);
    tam_config_finish(&cfg);
    unlink(a);
    unlink(b);
}

Test(config, missing_config_file)
{
    char *argv[] = {"tamd", "--config", "/nonexistent/tamgate.ini", NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg),
                 TAM_ERRNO(ENOENT));
    assert_msg_has("config file /nonexistent/tamgate.ini: No such file");
    cr_assert_null(cfg.data_dir, "a failed load leaves the config zeroed");
    tam_config_finish(&cfg);
}

Test(config, file_with_nul_byte)
{
    const char *path = tmpfile_with(0, "procs = 2\n");
    FILE *f = fopen(path, "ab");
    fputc(0, f);
    fclose(f);
    char *argv[] = {"tamd", "--config", (char *)path, NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg), TAM_ECONFIG);
    assert_msg_has("NUL byte");
    unlink(path);
}

Test(config, flag_forms)
{
    char *argv[] = {
        "tamd",    "--demo", "--no-demo", "--demo",     "--max-body", "64k", "--procs=3",
        "--procs", "4",      "--redis=",  "--data-dir", "--weird",    NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg), TAM_OK, "%s",
                 m());
    cr_assert_eq(cfg.demo, true, "the last flag wins");
    cr_assert_eq(cfg.max_body, 65536);
    cr_assert_eq(cfg.procs, 4);
    cr_assert_str_eq(cfg.redis, "");
    cr_assert_str_eq(cfg.data_dir, "--weird", "a value may look like a flag");
    tam_config_finish(&cfg);

    char *argv2[] = {"tamd", "--demo=false", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv2), argv2, NULL, &msg), TAM_OK);
    cr_assert_eq(cfg.demo, false);
    tam_config_finish(&cfg);

    char *argv3[] = {"tamd", "--no-demo", NULL};
    char *envp3[] = {"TAMGATE_DEMO=on", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv3), argv3, envp3, &msg), TAM_OK);
    cr_assert_eq(cfg.demo, false);
    tam_config_finish(&cfg);
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv3, envp3, &msg), TAM_OK);
    cr_assert_eq(cfg.demo, true);
    tam_config_finish(&cfg);
}

static void expect_argv_error(char **argv, int argc, const char *needle)
{
    struct tam_config cfg;
    tam_buf_reset(&msg);
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, argc, argv, NULL, &msg), TAM_ECONFIG,
                 "expected an error for %s", argv[argc - 1]);
    assert_msg_has(needle);
    tam_config_finish(&cfg);
}

Test(config, flag_errors)
{
    char *a1[] = {"tamd", "--bogus", NULL};
    expect_argv_error(a1, ARGC(a1), "command line --bogus: unknown option");
    char *a2[] = {"tamd", "--max-body", NULL};
    expect_argv_error(a2, ARGC(a2), "command line --max-body: missing value");
    char *a3[] = {"tamd", "stray", NULL};
    expect_argv_error(a3, ARGC(a3), "command line: unexpected argument \"stray\"");
    char *a4[] = {"tamd", "--no-max-body", NULL};
    expect_argv_error(a4, ARGC(a4), "--max-body is not a boolean option");
    char *a5[] = {"tamd", "--max-body", "2g", NULL};
    expect_argv_error(a5, ARGC(a5), "command line --max-body: \"2g\" is above the maximum 64MiB");
    char *a6[] = {"tamd", "--demo=maybe", NULL};
    expect_argv_error(a6, ARGC(a6), "command line --demo: \"maybe\" is not a boolean");
    char *a7[] = {"tamd", "--", NULL};
    expect_argv_error(a7, ARGC(a7), "unexpected argument \"--\"");
    char *a8[] = {"tamd", "--config", NULL};
    expect_argv_error(a8, ARGC(a8), "command line --config: missing value");
    char *a9[] = {"tamd", "-p", NULL};
    expect_argv_error(a9, ARGC(a9), "unexpected argument \"-p\"");
}

Test(config, help_and_version_win)
{
    char *argv[] = {"tamd", "--bogus", "--help", NULL};
    char *envp[] = {"TAMGATE_NOPE=1", "TAMGATE_CONFIG=/nonexistent", NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, envp, &msg), TAM_OK);
    cr_assert_eq(cfg.help, true);
    cr_assert_eq(msg.len, 0, "no stale message: %s", m());
    cr_assert_eq(cfg.procs, 1);
    tam_config_finish(&cfg);

    char *argv2[] = {"tamd", "-h", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv2), argv2, NULL, &msg), TAM_OK);
    cr_assert_eq(cfg.help, true);
    tam_config_finish(&cfg);

    char *argv3[] = {"tamd", "--version", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv3), argv3, NULL, &msg), TAM_OK);
    cr_assert_eq(cfg.version, true);
    cr_assert_eq(cfg.help, false);
    tam_config_finish(&cfg);
}

Test(config, env_errors)
{
    struct tam_config cfg;
    char *argv[] = {"tamd", NULL};
    char *e1[] = {"TAMGATE_BOGUS=1", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e1, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "environment TAMGATE_BOGUS: unknown option");

    tam_buf_reset(&msg);
    char *e2[] = {"TAMGATE_PROCS=x", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e2, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "environment TAMGATE_PROCS: procs: \"x\" is not a number");

    tam_buf_reset(&msg);
    char *e3[] = {"TAMGATE_max_body=1k", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e3, &msg), TAM_ECONFIG);
    assert_msg_has("environment TAMGATE_max_body: unknown option");

    tam_buf_reset(&msg);
    char *e4[] = {"TAMGATE_DATA_DIR=/a\nb", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e4, &msg), TAM_ECONFIG);
    assert_msg_has("control character");

    tam_buf_reset(&msg);
    char *e5[] = {"TAMGATE_LISTEN=localhost", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e5, &msg), TAM_ECONFIG);
    assert_msg_has("environment TAMGATE_LISTEN: listen: \"localhost\" is not an address");

    /* Other variables are none of our business. */
    char *e6[] = {"TAMGATEX=1", "TAM_VECTORS=/x", "NOEQUALS", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, e6, &msg), TAM_OK);
    tam_config_finish(&cfg);
}

/* ---- the program filter ---- */

Test(config, program_mask)
{
    const char *text = "listen = 127.0.0.1:1\nworker-id = w-1\nprocs = 9\nworker-batch = 3\n";
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    cr_assert_str_eq(cfg.worker_id, "", "another program's option is ignored");
    cr_assert_eq(cfg.listen.port, 1);
    cr_assert_eq(cfg.worker_batch, 3);
    tam_config_finish(&cfg);

    cr_assert_eq(parse(&cfg, TAM_PROG_WORKER, text), TAM_OK, "%s", m());
    cr_assert_str_eq(cfg.worker_id, "w-1");
    cr_assert_eq(cfg.procs, 1, "tamd's option is ignored by the worker");
    cr_assert_eq(cfg.listen.port, 8080);
    tam_config_finish(&cfg);

    /* The value of an ignored option is not even parsed. */
    cr_assert_eq(parse(&cfg, TAM_PROG_WORKER, "procs = lots\n"), TAM_OK, "%s", m());
    tam_config_finish(&cfg);

    char *envp[] = {"TAMGATE_WORKER_ID=w-2", "TAMGATE_PROCS=3", NULL};
    char *argv[] = {"tamd", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, 1, argv, envp, &msg), TAM_OK, "%s", m());
    cr_assert_str_eq(cfg.worker_id, "");
    cr_assert_eq(cfg.procs, 3);
    tam_config_finish(&cfg);
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_WORKER, 1, argv, envp, &msg), TAM_OK, "%s", m());
    cr_assert_str_eq(cfg.worker_id, "w-2");
    cr_assert_eq(cfg.procs, 1);
    tam_config_finish(&cfg);

    char *a1[] = {"tamd", "--worker-id", "w-3", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(a1), a1, NULL, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "command line --worker-id: not an option of tamd");
    tam_buf_reset(&msg);
    char *a2[] = {"tam-worker", "--listen=127.0.0.1:1", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_WORKER, ARGC(a2), a2, NULL, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "command line --listen: not an option of tam-worker");
    tam_buf_reset(&msg);
    char *a3[] = {"tam-worker", "--no-demo", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_WORKER, ARGC(a3), a3, NULL, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "command line --demo: not an option of tam-worker");
    tam_buf_reset(&msg);
    char *a4[] = {"tamctl", "--admin-listen", "[::1]:9", "--log-format", "json", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_CTL, ARGC(a4), a4, NULL, &msg), TAM_OK, "%s", m());
    cr_assert_eq(cfg.admin_listen.port, 9);
    tam_config_finish(&cfg);
    char *a5[] = {"tamctl", "--procs", "2", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_CTL, ARGC(a5), a5, NULL, &msg), TAM_ECONFIG);
    assert_msg_has("not an option of tamctl");
}

/* ---- value parsers ---- */

Test(config, duration_parser)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {
        {"0", 0},
        {"15", 15},
        {"250ms", 250},
        {"10s", 10000},
        {"5m", 300000},
        {"2h", 7200000},
        {"1d", 86400000},
        {"0s", 0},
        {"007s", 7000},
        {"18446744073709551615", UINT64_MAX},
        {"18446744073709551ms", 18446744073709551ull},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        cr_assert_eq(tam_config_parse_duration(ok[i].s, &v), TAM_OK, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].ms, "%s", ok[i].s);
    }
    static const char *const bad[] = {"",    "s",   "ms",  "10x",  "-1",   "+1",   "1.5s", " 1s",
                                      "1s ", "10S", "1 s", "1sec", "1m1s", "0x10", "1e3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v;
        cr_assert_eq(tam_config_parse_duration(bad[i], &v), TAM_EINVAL, "%s", bad[i]);
    }
    uint64_t v;
    cr_assert_eq(tam_config_parse_duration("18446744073709551616", &v), TAM_ETOOBIG);
    cr_assert_eq(tam_config_parse_duration("213503982335d", &v), TAM_ETOOBIG);
    cr_assert_eq(tam_config_parse_duration("213503982334d", &v), TAM_OK);
}

Test(config, size_parser)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"7", 7},
        {"7b", 7},
        {"64k", 65536},
        {"64K", 65536},
        {"64kb", 65536},
        {"64KiB", 65536},
        {"1m", 1u << 20},
        {"16MiB", 16u << 20},
        {"1MB", 1u << 20},
        {"1g", 1ull << 30},
        {"2GiB", 2ull << 30},
        {"1t", 1ull << 40},
        {"16777215TiB", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 1;
        cr_assert_eq(tam_config_parse_size(ok[i].s, &v), TAM_OK, "%s", ok[i].s);
        cr_assert_eq(v, ok[i].v, "%s", ok[i].s);
    }
    static const char *const bad[] = {"", "k", "1kk", "-1", "1.5m", "1 k", "1p", "1kibi", " 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t v;
        cr_assert_eq(tam_config_parse_size(bad[i], &v), TAM_EINVAL, "%s", bad[i]);
    }
    uint64_t v;
    cr_assert_eq(tam_config_parse_size("16777216t", &v), TAM_ETOOBIG);
    cr_assert_eq(tam_config_parse_size("99999999999999999999", &v), TAM_ETOOBIG);
}

Test(config, bool_and_u64_parsers)
{
    bool b;
    static const char *const yes[] = {"true", "TRUE", "yes", "On", "1"};
    static const char *const no[] = {"false", "No", "off", "0"};
    for (size_t i = 0; i < 5; i++) {
        b = false;
        cr_assert_eq(tam_config_parse_bool(yes[i], &b), TAM_OK);
        cr_assert_eq(b, true, "%s", yes[i]);
    }
    for (size_t i = 0; i < 4; i++) {
        b = true;
        cr_assert_eq(tam_config_parse_bool(no[i], &b), TAM_OK);
        cr_assert_eq(b, false, "%s", no[i]);
    }
    cr_assert_eq(tam_config_parse_bool("", &b), TAM_EINVAL);
    cr_assert_eq(tam_config_parse_bool("2", &b), TAM_EINVAL);
    cr_assert_eq(tam_config_parse_bool("truee", &b), TAM_EINVAL);

    uint64_t v;
    cr_assert_eq(tam_config_parse_u64("18446744073709551615", &v), TAM_OK);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(tam_config_parse_u64("18446744073709551616", &v), TAM_ETOOBIG);
    cr_assert_eq(tam_config_parse_u64("", &v), TAM_EINVAL);
    cr_assert_eq(tam_config_parse_u64("1k", &v), TAM_EINVAL);
    cr_assert_eq(tam_config_parse_u64("-0", &v), TAM_EINVAL);
}

Test(config, address_parser)
{
    struct tam_addr a;
    char out[300];
    cr_assert_eq(tam_config_parse_addr("127.0.0.1:8080", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_ADDR_IPV4);
    cr_assert_str_eq(a.host, "127.0.0.1");
    cr_assert_eq(a.port, 8080);
    cr_assert_str_eq(tam_config_format_addr(&a, out, sizeof(out)), "127.0.0.1:8080");

    cr_assert_eq(tam_config_parse_addr("[2001:db8::1]:443", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_ADDR_IPV6);
    cr_assert_str_eq(a.host, "2001:db8::1");
    cr_assert_str_eq(tam_config_format_addr(&a, out, sizeof(out)), "[2001:db8::1]:443");

    cr_assert_eq(tam_config_parse_addr("[::]:0", &a), TAM_OK);
    cr_assert_eq(a.port, 0);
    cr_assert_eq(tam_config_parse_addr("redis.internal:6379", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_ADDR_HOST);
    cr_assert_str_eq(a.host, "redis.internal");
    cr_assert_eq(tam_config_parse_addr("unix:/run/x.sock", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_ADDR_UNIX);
    cr_assert_str_eq(a.path, "/run/x.sock");
    cr_assert_str_eq(tam_config_format_addr(&a, out, sizeof(out)), "unix:/run/x.sock");
    cr_assert_eq(tam_config_parse_addr("", &a), TAM_OK);
    cr_assert_eq(a.kind, TAM_ADDR_NONE);
    cr_assert_str_eq(tam_config_format_addr(&a, out, sizeof(out)), "");
    cr_assert_eq(tam_config_parse_addr("0.0.0.0:65535", &a), TAM_OK);
    cr_assert_eq(a.port, 65535);

    static const char *const bad[] = {
        "127.0.0.1",        "127.0.0.1:",   "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:8x",     ":80",          "::1:80",          "[::1]",
        "[::1]80",          "[nope]:80",    "[]:80",           "999.1.1.1:80",
        "1.2.3:80",         "-bad.host:80", "bad-.host:80",    "bad..host:80",
        "a_b:80",           "unix:",        "host:080000",     "[::1]:1:2",
        "[fe80::1%eth0]:1", "host name:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(tam_config_parse_addr(bad[i], &a), TAM_EINVAL, "%s", bad[i]);
        cr_assert_eq(a.kind, TAM_ADDR_NONE);
    }
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'p', 150);
    cr_assert_eq(tam_config_parse_addr(longpath, &a), TAM_ETOOBIG);
    char okpath[200] = "unix:/";
    memset(okpath + 6, 'p', 106);
    cr_assert_eq(tam_config_parse_addr(okpath, &a), TAM_OK);
    char longhost[400];
    size_t hl = 0;
    for (int i = 0; i < 5; i++) {
        memset(longhost + hl, 'h', 60);
        hl += 60;
        longhost[hl++] = '.';
    }
    memcpy(longhost + hl, "x:1", 4);
    cr_assert_eq(tam_config_parse_addr(longhost, &a), TAM_ETOOBIG);
    char label64[80];
    memset(label64, 'l', 64);
    memcpy(label64 + 64, ":1", 3);
    cr_assert_eq(tam_config_parse_addr(label64, &a), TAM_EINVAL, "a 64-byte label");
    memcpy(label64 + 63, ":1", 3);
    cr_assert_eq(tam_config_parse_addr(label64, &a), TAM_OK);
}

Test(config, bounds_and_bad_values_name_the_source)
{
    cr_assert_eq(file_value("max-body", "512"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: max-body: \"512\" is below the minimum 1KiB");
    cr_assert_eq(file_value("max-body", "1k"), TAM_OK);
    cr_assert_eq(file_value("max-body", "64m"), TAM_OK);
    cr_assert_eq(file_value("max-body", "67108865"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: max-body: \"67108865\" is above the maximum 64MiB");
    cr_assert_eq(file_value("procs", "0"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: procs: \"0\" is below the minimum 1");
    cr_assert_eq(file_value("procs", "65"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: procs: \"65\" is above the maximum 64");
    cr_assert_eq(file_value("procs", "99999999999999999999"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: procs: \"99999999999999999999\" is too large");
    cr_assert_eq(file_value("procs", "4294967297"), TAM_ECONFIG, "no u32 wrap-around");
    cr_assert_eq(file_value("max-connections", "1000001"), TAM_ECONFIG);
    cr_assert_eq(file_value("header-timeout", "99ms"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: header-timeout: \"99ms\" is below the minimum 100ms");
    cr_assert_eq(file_value("header-timeout", "11m"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: header-timeout: \"11m\" is above the maximum 10m");
    cr_assert_eq(file_value("idle-timeout", "10x"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: idle-timeout: \"10x\" is not a duration (250ms, 10s, 5m, "
                          "2h, 1d)");
    cr_assert_eq(file_value("write-queue", "lots"), TAM_ECONFIG);
    assert_msg_has("is not a size");
    cr_assert_eq(file_value("mem-limit", "2t"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: mem-limit: \"2t\" is above the maximum 1TiB");
    cr_assert_eq(file_value("log-level", "loud"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: log-level: \"loud\" is not one of error|warn|info|debug");
    cr_assert_eq(file_value("log-level", "INFO"), TAM_ECONFIG, "enums are case-sensitive");
    cr_assert_eq(file_value("tls-min-version", "1.1"), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: tls-min-version: \"1.1\" is not one of 1.2|1.3");
    cr_assert_eq(file_value("demo", "maybe"), TAM_ECONFIG);
    assert_msg_has("t.ini:1: demo: \"maybe\" is not a boolean");
    cr_assert_eq(file_value("listen", ""), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: listen: must not be empty");
    cr_assert_eq(file_value("listen", "nohost"), TAM_ECONFIG);
    assert_msg_has("t.ini:1: listen: \"nohost\" is not an address");
    cr_assert_eq(file_value("data-dir", ""), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1: data-dir: must not be empty");
    cr_assert_eq(file_value("redis", ""), TAM_OK);

    /* Long values are cut in messages. */
    char big[200];
    memset(big, '7', 150);
    big[150] = '\0';
    cr_assert_eq(file_value("procs", big), TAM_ECONFIG);
    assert_msg_has("77777...\" is too large");
}

Test(config, string_ceiling)
{
    char *v = tam_malloc(TAM_CONFIG_STR_MAX + 2);
    memset(v, 'a', TAM_CONFIG_STR_MAX + 1);
    v[TAM_CONFIG_STR_MAX + 1] = '\0';
    char *argv[] = {"tamd", "--data-dir", v, NULL};
    struct tam_config cfg;
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg), TAM_ECONFIG);
    assert_msg_has("longer than 4096 bytes");
    v[TAM_CONFIG_STR_MAX] = '\0';
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, NULL, &msg), TAM_OK);
    tam_config_finish(&cfg);
    tam_free(v);
}

Test(config, cross_checks)
{
    struct tam_config cfg;
    char *a1[] = {"tamd", "--tls-cert", "/c.pem", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(a1), a1, NULL, &msg), TAM_ECONFIG);
    cr_assert_str_eq(m(), "tls-cert and tls-key must be given together");
    tam_buf_reset(&msg);
    char *a2[] = {"tamd", "--default-tenant", "Bad!", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(a2), a2, NULL, &msg), TAM_ECONFIG);
    assert_msg_has("default-tenant: \"Bad!\" is not a tenant id");
    tam_buf_reset(&msg);
    char *a3[] = {"tam-worker", "--worker-id", "has space", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_WORKER, ARGC(a3), a3, NULL, &msg), TAM_ECONFIG);
    assert_msg_has("worker-id: \"has space\"");
    char *a4[] = {"tam-worker", "--worker-id", "host-1.example:42_a", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_WORKER, ARGC(a4), a4, NULL, &msg), TAM_OK);
    tam_config_finish(&cfg);
    char *a5[] = {"tamd", "--tls-cert", "/c.pem", "--tls-key=/k.pem", NULL};
    cr_assert_eq(tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(a5), a5, NULL, &msg), TAM_OK);
    tam_config_finish(&cfg);
}

/* ---- tenants ---- */

Test(config, tenant_sections)
{
    const char *text = "procs = 2\n"
                       "[tenant acme]\n"
                       "numbering = draft12\n"
                       "attestation = none\n"
                       "enrollment = attested\n"
                       "tam-key = /k/acme-p256.pem\n"
                       "tam-key = /k/acme-ed25519.pem\n"
                       "device-key = /d/1.pem\n"
                       "device-key = /d/2.pem\n"
                       "device-key = /d/3.pem\n"
                       "attester-key = /a/1.pem\n"
                       "tc-signer-key = /s/1.pem\n"
                       "legacy-alg-ids = true\n"
                       "sign1-only = yes\n"
                       "session-ttl = 90s\n"
                       "update-ttl = 12h\n"
                       "max-pending-per-device = 8\n"
                       "\n"
                       "[ tenant   beta_2 ]\n"
                       "tam-key = /k/beta.pem\n";
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    cr_assert_eq(cfg.procs, 2);
    cr_assert_eq(cfg.n_tenants, 2);
    const struct tam_config_tenant *t = &cfg.tenants[0];
    cr_assert_str_eq(t->id, "acme");
    cr_assert_eq(t->line, 2);
    cr_assert_eq(t->numbering, TAM_TEEP_DRAFT12);
    cr_assert_eq(t->attestation, TAM_ATTEST_NONE);
    cr_assert_eq(t->enrollment, TAM_ENROLL_ATTESTED);
    cr_assert_eq(t->tam_keys.n, 2);
    cr_assert_str_eq(t->tam_keys.v[0], "/k/acme-p256.pem");
    cr_assert_str_eq(t->tam_keys.v[1], "/k/acme-ed25519.pem");
    cr_assert_eq(t->device_keys.n, 3);
    cr_assert_str_eq(t->device_keys.v[2], "/d/3.pem");
    cr_assert_eq(t->attester_keys.n, 1);
    cr_assert_eq(t->tc_signer_keys.n, 1);
    cr_assert_eq(t->legacy_alg_ids, true);
    cr_assert_eq(t->sign1_only, true);
    cr_assert_eq(t->session_ttl_ms, 90000);
    cr_assert_eq(t->update_ttl_ms, 12 * 3600000ull);
    cr_assert_eq(t->max_pending_per_device, 8);

    /* Defaults equal tam_tenant_create()'s. */
    t = &cfg.tenants[1];
    cr_assert_str_eq(t->id, "beta_2");
    struct tam_tenant *ref = tam_tenant_create("x");
    cr_assert_not_null(ref);
    cr_assert_eq(t->numbering, (int)ref->numbering);
    cr_assert_eq(t->attestation, (int)ref->attestation);
    cr_assert_eq(t->enrollment, (int)ref->enrollment);
    cr_assert_eq(t->legacy_alg_ids, ref->legacy_alg_ids);
    cr_assert_eq(t->sign1_only, ref->sign1_only);
    cr_assert_eq(t->session_ttl_ms, ref->session_ttl_s * 1000ull);
    cr_assert_eq(t->update_ttl_ms, ref->update_ttl_s * 1000ull);
    cr_assert_eq(t->max_pending_per_device, ref->max_pending_per_device);
    tam_tenant_unref(ref);
    cr_assert_eq(t->tam_keys.n, 1);
    cr_assert_eq(t->device_keys.n, 0);
    cr_assert_null(t->device_keys.v);
    tam_config_finish(&cfg);
}

Test(config, tenant_long_id_beyond_inih_section_buffer)
{
    char id[64];
    memset(id, 'z', 63);
    id[63] = '\0';
    char text[200];
    snprintf(text, sizeof(text), "[tenant %s]\nsign1-only = on\n", id);
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    cr_assert_eq(cfg.n_tenants, 1);
    cr_assert_str_eq(cfg.tenants[0].id, id);
    cr_assert_eq(cfg.tenants[0].sign1_only, true);
    tam_config_finish(&cfg);

    /* 64 characters is one too many. */
    snprintf(text, sizeof(text), "[tenant %sz]\n", id);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_ECONFIG);
    assert_msg_has("t.ini:1: [tenant zzz");
    assert_msg_has("not a tenant id");
    tam_config_finish(&cfg);
}

static void expect_file_error(const char *text, const char *exact)
{
    struct tam_config cfg;
    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, text), TAM_ECONFIG, "no error for %s", text);
    cr_assert_str_eq(m(), exact);
    tam_config_finish(&cfg);
}

Test(config, tenant_errors)
{
    expect_file_error("[tenant acme]\nnumbering = rfc9999\n",
                      "t.ini:2: numbering: \"rfc9999\" is not one of rfc|draft|draft12");
    expect_file_error("[tenant acme]\nattestation = maybe\n",
                      "t.ini:2: attestation: \"maybe\" is not one of none|required");
    expect_file_error("[tenant acme]\nenrollment = open\n",
                      "t.ini:2: enrollment: \"open\" is not one of registered|attested");
    expect_file_error("[tenant Acme]\n", "t.ini:1: [tenant Acme]: not a tenant id (1..63 of "
                                         "[a-z0-9-_], not starting with '-' or '_')");
    expect_file_error("[tenant -x]\n", "t.ini:1: [tenant -x]: not a tenant id (1..63 of "
                                       "[a-z0-9-_], not starting with '-' or '_')");
    expect_file_error("[tenant]\n", "t.ini:1: unknown section [tenant] (expected [tenant NAME])");
    expect_file_error("[tenant.acme]\n",
                      "t.ini:1: unknown section [tenant.acme] (expected [tenant NAME])");
    expect_file_error("[tenant a]\n[tenant b]\n[tenant a]\n",
                      "t.ini:3: [tenant a]: section given twice");
    expect_file_error("[tenant a]\nprocs = 2\n", "t.ini:2: [tenant a]: unknown key \"procs\"");
    expect_file_error("[tenant a]\nsession-ttl = 1s\nsession-ttl = 2s\n",
                      "t.ini:3: session-ttl: given twice (first on line 2)");
    expect_file_error("[tenant a]\ntam-key = /1\ntam-key = /2\ntam-key = /3\n",
                      "t.ini:4: tam-key: given more than 2 times");
    expect_file_error("[tenant a]\ndevice-key =\n", "t.ini:2: device-key: must not be empty");
    expect_file_error("[tenant a]\nsession-ttl = 0\n",
                      "t.ini:2: session-ttl: \"0\" is below the minimum 1s");
    expect_file_error("[tenant a]\nmax-pending-per-device = 0\n",
                      "t.ini:2: max-pending-per-device: \"0\" is below the minimum 1");

    /* A repeated key in a new tenant section starts afresh. */
    struct tam_config cfg;
    tam_buf_reset(&msg);
    cr_assert_eq(
        parse(&cfg, TAM_PROG_TAMD, "[tenant a]\nsession-ttl = 1s\n[tenant b]\nsession-ttl = 2s\n"),
        TAM_OK, "%s", m());
    tam_config_finish(&cfg);
}

Test(config, tenant_key_and_tenant_count_limits)
{
    struct tam_buf text;
    tam_buf_init(&text, 1u << 20);
    cr_assert_eq(tam_buf_append_str(&text, "[tenant a]\n"), TAM_OK);
    for (int i = 0; i < TAM_CONFIG_MAX_KEYS; i++) {
        cr_assert_eq(tam_buf_printf(&text, "device-key = /d/%d.pem\n", i), TAM_OK);
    }
    cr_assert_eq(tam_buf_append(&text, "", 1), TAM_OK);
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, (const char *)text.data), TAM_OK, "%s", m());
    cr_assert_eq(cfg.tenants[0].device_keys.n, TAM_CONFIG_MAX_KEYS);
    tam_config_finish(&cfg);
    text.len--;
    cr_assert_eq(tam_buf_append(&text, "device-key = /one-more\n", 24), TAM_OK);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, (const char *)text.data), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:66: device-key: given more than 64 times");
    tam_config_finish(&cfg);

    tam_buf_reset(&text);
    for (int i = 0; i < TAM_CONFIG_MAX_TENANTS; i++) {
        cr_assert_eq(tam_buf_printf(&text, "[tenant t%d]\n", i), TAM_OK);
    }
    cr_assert_eq(tam_buf_append(&text, "", 1), TAM_OK);
    tam_buf_reset(&msg);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, (const char *)text.data), TAM_OK, "%s", m());
    cr_assert_eq(cfg.n_tenants, TAM_CONFIG_MAX_TENANTS);
    cr_assert_str_eq(cfg.tenants[1023].id, "t1023");
    tam_config_finish(&cfg);
    text.len--;
    cr_assert_eq(tam_buf_append(&text, "[tenant last]\n", 15), TAM_OK);
    cr_assert_eq(parse(&cfg, TAM_PROG_TAMD, (const char *)text.data), TAM_ECONFIG);
    cr_assert_str_eq(m(), "t.ini:1025: [tenant last]: more than 1024 tenants");
    tam_config_finish(&cfg);
    tam_buf_finish(&text);
}

Test(config, tenants_in_ctl_program_are_parsed_too)
{
    /* Sections are validated for every program; only options are filtered. */
    struct tam_config cfg;
    cr_assert_eq(parse(&cfg, TAM_PROG_CTL, "[tenant a]\ntam-key = /k\n"), TAM_OK, "%s", m());
    cr_assert_eq(cfg.n_tenants, 1);
    tam_config_finish(&cfg);
}

/* ---- --help ---- */

static char *usage_text(unsigned prog)
{
    struct tam_buf b;
    tam_buf_init(&b, 1u << 20);
    cr_assert_eq(tam_config_usage_buf(&b, prog, "tamd", "TEEP TAM gateway."), TAM_OK);
    cr_assert_eq(tam_buf_append(&b, "", 1), TAM_OK);
    return (char *)tam_buf_take(&b, NULL);
}

Test(config, help_lists_every_option)
{
    char *t = usage_text(TAM_PROG_TAMD);
    cr_assert(strncmp(t, "Usage: tamd [OPTIONS]\nTEEP TAM gateway.\n", 39) == 0, "%s", t);
    size_t n = 0;
    for (size_t i = 0; tam_config_option_name(i) != NULL; i++, n++) {
        const char *name = tam_config_option_name(i);
        char flag[80];
        snprintf(flag, sizeof(flag), "  --%s", name);
        bool worker_only = strcmp(name, "worker-id") == 0;
        cr_assert_eq(strstr(t, flag) != NULL, !worker_only, "%s", name);
        char env[80];
        int k = snprintf(env, sizeof(env), "TAMGATE_");
        for (size_t j = 0; name[j] != '\0'; j++, k++) {
            char c = name[j];
            env[k] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        }
        env[k] = '\0';
        cr_assert_eq(strstr(t, env) != NULL, !worker_only, "%s", env);
    }
    cr_assert_eq(n, 36);
    cr_assert(strstr(t, "  --max-body SIZE\n      largest request body\n"
                        "      default 1MiB; range 1KiB..64MiB; env TAMGATE_MAX_BODY\n") != NULL,
              "%s", t);
    cr_assert(strstr(t, "  --log-level error|warn|info|debug\n") != NULL);
    cr_assert(strstr(t, "default info; env TAMGATE_LOG_LEVEL") != NULL);
    cr_assert(strstr(t, "  --demo, --no-demo\n") != NULL);
    cr_assert(strstr(t, "default 10s; range 100ms..10m; env TAMGATE_HEADER_TIMEOUT") != NULL);
    cr_assert(strstr(t, "  --listen ADDR\n") != NULL);
    cr_assert(strstr(t, "default \"127.0.0.1:8080\"; env TAMGATE_LISTEN") != NULL);
    cr_assert(strstr(t, "  --config FILE") != NULL);
    cr_assert(strstr(t, "TAMGATE_CONFIG") != NULL);
    cr_assert(strstr(t, "  -h, --help\n") != NULL);
    cr_assert(strstr(t, "[tenant NAME]") != NULL);
    static const char *const tkeys[] = {
        "numbering",  "attestation",  "enrollment",    "tam-key",
        "device-key", "attester-key", "tc-signer-key", "legacy-alg-ids",
        "sign1-only", "session-ttl",  "update-ttl",    "max-pending-per-device"};
    for (size_t i = 0; i < sizeof(tkeys) / sizeof(tkeys[0]); i++) {
        char k[80];
        snprintf(k, sizeof(k), "  %s = ", tkeys[i]);
        cr_assert(strstr(t, k) != NULL, "%s", tkeys[i]);
    }
    tam_free(t);

    t = usage_text(TAM_PROG_WORKER);
    cr_assert(strstr(t, "  --worker-id STRING") != NULL);
    cr_assert(strstr(t, "  --listen ") == NULL);
    cr_assert(strstr(t, "  --max-body") == NULL);
    tam_free(t);

    t = usage_text(TAM_PROG_CTL);
    cr_assert(strstr(t, "  --admin-listen ADDR") != NULL);
    cr_assert(strstr(t, "[tenant NAME]") == NULL);
    tam_free(t);
}

Test(config, usage_to_file)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    tam_config_usage(f, TAM_PROG_WORKER, "tam-worker", NULL);
    fclose(f);
    cr_assert(strncmp(buf, "Usage: tam-worker [OPTIONS]\n\nOptions:\n", 38) == 0, "%s", buf);
    free(buf); /* open_memstream's own allocation */
}

/* ---- reload ---- */

Test(config, reload_rereads_the_file_and_reapplies_env_and_flags)
{
    const char *path = tmpfile_with(0, "procs = 2\nworkers = 4\n[tenant a]\n");
    char envc[128];
    snprintf(envc, sizeof(envc), "TAMGATE_CONFIG=%s", path);
    char *envp[] = {envc, "TAMGATE_LOG_LEVEL=debug", "OTHER=1", NULL};
    char *argv[] = {"tamd", "--workers", "7", NULL};
    struct tam_config old;
    cr_assert_eq(tam_config_load(&old, TAM_PROG_TAMD, ARGC(argv), argv, envp, &msg), TAM_OK, "%s",
                 m());
    cr_assert_eq(old.procs, 2);
    cr_assert_eq(old.workers, 7);
    cr_assert_eq(old.n_tenants, 1);

    /* The caller's argv and environment may change or vanish after the load. */
    argv[2] = "1";
    envp[1] = "TAMGATE_LOG_LEVEL=error";
    rewrite(path, "procs = 3\nworkers = 4\n[tenant a]\n[tenant b]\n");
    struct tam_config fresh;
    cr_assert_eq(tam_config_reload(&old, &fresh, &msg), TAM_OK, "%s", m());
    cr_assert_eq(fresh.procs, 3, "the file is read again");
    cr_assert_eq(fresh.workers, 7, "the startup flag still wins");
    cr_assert_eq(fresh.log_level, TAM_LOG_DEBUG, "the startup environment is re-applied");
    cr_assert_eq(fresh.n_tenants, 2);
    cr_assert_eq(old.procs, 2, "the old config is untouched");

    /* A broken file: the reload fails, the old config stays usable. */
    rewrite(path, "procs = many\n");
    struct tam_config bad;
    tam_buf_reset(&msg);
    cr_assert_eq(tam_config_reload(&fresh, &bad, &msg), TAM_ECONFIG);
    char want[200];
    snprintf(want, sizeof(want), "%s:1: procs: \"many\" is not a number", path);
    cr_assert_str_eq(m(), want);
    cr_assert_eq(fresh.procs, 3);

    /* A reload of a reload works the same. */
    rewrite(path, "procs = 5\n");
    struct tam_config again;
    cr_assert_eq(tam_config_reload(&fresh, &again, &msg), TAM_OK, "%s", m());
    cr_assert_eq(again.procs, 5);
    cr_assert_eq(again.workers, 7);
    tam_config_finish(&again);
    tam_config_finish(&fresh);
    tam_config_finish(&old);
    unlink(path);
}

/* ---- dump ---- */

Test(config, dump_round_trips)
{
    const char *text = "procs = 3\nredis = 10.0.0.1:6379\nlisten = [::1]:1\nheader-timeout = 1500\n"
                       "max-body = 65537\nlog-format = json\ndemo = true\n"
                       "[tenant a]\ntam-key = /k1\ntam-key = /k2\nupdate-ttl = 90m\n";
    struct tam_config a;
    cr_assert_eq(parse(&a, TAM_PROG_TAMD, text), TAM_OK, "%s", m());
    struct tam_buf d1;
    tam_buf_init(&d1, 1u << 20);
    cr_assert_eq(tam_config_dump(&a, &d1), TAM_OK);
    cr_assert_eq(tam_buf_append(&d1, "", 1), TAM_OK);
    const char *s = (const char *)d1.data;
    cr_assert(strstr(s, "procs = 3\n") != NULL, "%s", s);
    cr_assert(strstr(s, "listen = [::1]:1\n") != NULL, "%s", s);
    cr_assert(strstr(s, "header-timeout = 1500ms\n") != NULL, "%s", s);
    cr_assert(strstr(s, "max-body = 65537\n") != NULL, "%s", s);
    cr_assert(strstr(s, "max-header-bytes = 8KiB\n") != NULL, "%s", s);
    cr_assert(strstr(s, "update-ttl = 90m\n") != NULL, "%s", s);
    cr_assert(strstr(s, "worker-id") == NULL, "only tamd's options");

    struct tam_config b;
    cr_assert_eq(parse(&b, TAM_PROG_TAMD, s), TAM_OK, "%s", m());
    struct tam_buf d2;
    tam_buf_init(&d2, 1u << 20);
    cr_assert_eq(tam_config_dump(&b, &d2), TAM_OK);
    cr_assert_eq(tam_buf_append(&d2, "", 1), TAM_OK);
    cr_assert_str_eq((const char *)d2.data, s);
    tam_buf_finish(&d1);
    tam_buf_finish(&d2);
    tam_config_finish(&a);
    tam_config_finish(&b);
}

/* ---- failure injection ---- */

Test(config, every_allocation_failure_is_clean)
{
    const char *path = tmpfile_with(0, "procs = 2\n[tenant a]\ntam-key = /k\ndevice-key = /d\n"
                                       "[tenant b]\n");
    char envc[128];
    snprintf(envc, sizeof(envc), "TAMGATE_CONFIG=%s", path);
    char *envp[] = {envc, "TAMGATE_DATA_DIR=/x", NULL};
    char *argv[] = {"tamd", "--tls-cert", "/c", "--tls-key", "/k", NULL};
    int ok = 0;
    for (long n = 0; n < 200 && ok == 0; n++) {
        struct tam_config cfg;
        tam_alloc_fail_after(n);
        int rc = tam_config_load(&cfg, TAM_PROG_TAMD, ARGC(argv), argv, envp, NULL);
        tam_alloc_fail_after(-1);
        cr_assert(rc == TAM_OK || rc == TAM_ENOMEM, "n=%ld rc=%d", n, rc);
        if (rc == TAM_OK) {
            cr_assert_eq(cfg.n_tenants, 2);
            cr_assert_str_eq(cfg.data_dir, "/x");
            ok = 1;
        }
        tam_config_finish(&cfg);
    }
    cr_assert_eq(ok, 1);
    unlink(path);
}
