/*
 * tamd: the TEEP TAM gateway. Configuration comes from defaults, the file (--config or
 * $TAMGATE_CONFIG), TAMGATE_* environment variables and flags (include/tam/config.h);
 * --help lists every option. The parent process role is in super.c; a gateway child
 * (started by the parent with TAMD_CHILD=1) runs one gateway loop until SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "main.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tam/tls.h"

#ifndef TAMD_VERSION
#define TAMD_VERSION "dev"
#endif

extern char **environ;

static const char usage_header[] =
    "The TEEP TAM gateway: TEEP over HTTP(S) on `listen`, /healthz /readyz /metrics on\n"
    "`admin-listen`. With no `redis` address it runs a private redis-server in `data-dir`\n"
    "and `workers` tam-worker processes (zero configuration). Signals: SIGTERM/SIGINT drain\n"
    "and exit 0; SIGHUP reloads the configuration, tenants and TLS certificate.\n"
    "Tenants are [tenant NAME] sections of the config file; POST /tam/NAME is their TAM URI.";

/* 10,000 connections need more descriptors than the usual soft limit of 1024. */
static void raise_nofile(const struct tam_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)cfg->max_connections + 64) {
        tam_log(TAM_LOG_WARN, "event=nofile_low limit=%llu max_connections=%u",
                (unsigned long long)rl.rlim_cur, cfg->max_connections);
    }
}

/* ---- a gateway child ---- */

struct child {
    uv_loop_t loop;
    struct tam_gw *gw;
    uv_signal_t sig[3];
    int code;
};

static void on_closed(uv_handle_t *h)
{
}

static void on_child_gw_done(struct tam_gw *gw, void *arg)
{
    struct child *c = arg;
    for (int i = 0; i < 3; i++) {
        uv_close((uv_handle_t *)&c->sig[i], on_closed);
    }
}

static void on_child_signal(uv_signal_t *h, int signum)
{
    struct child *c = h->data;
    if (signum == SIGHUP) {
        (void)tam_gw_reload(c->gw);
    } else {
        tam_gw_shutdown(c->gw, on_child_gw_done, c);
    }
}

/* Dies with the parent; returns false when the parent is already gone. */
static bool follow_parent(void)
{
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);
    const char *p = getenv("TAMD_PARENT");
    return p == NULL || strtol(p, NULL, 10) == (long)getppid();
}

int tam_gw_run_child(struct tam_config *cfg)
{
    if (!follow_parent()) {
        tam_config_finish(cfg);
        return 1;
    }
    static struct child c;
    if (uv_loop_init(&c.loop) != 0) {
        tam_config_finish(cfg);
        return 1;
    }
    int err = tam_gw_create(&c.loop, cfg, NULL, &c.gw);
    if (err == TAM_OK) {
        static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
        for (int i = 0; i < 3; i++) {
            uv_signal_init(&c.loop, &c.sig[i]);
            c.sig[i].data = &c;
            uv_signal_start(&c.sig[i], on_child_signal, sigs[i]);
        }
    }
    (void)uv_run(&c.loop, UV_RUN_DEFAULT);
    if (err == TAM_OK) {
        tam_gw_destroy(c.gw);
        (void)uv_run(&c.loop, UV_RUN_DEFAULT);
    }
    tam_tls_thread_cleanup();
    (void)uv_loop_close(&c.loop);
    return err == TAM_OK ? 0 : 1;
}

/* ---- entry ---- */

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* before anything uses wolfSSL */
    struct tam_config cfg;
    struct tam_buf msg;
    tam_buf_init(&msg, 4096);
    int err = tam_config_load(&cfg, TAM_PROG_TAMD, argc, argv, environ, &msg);
    if (err != TAM_OK) {
        fprintf(stderr, "tamd: %.*s\n", (int)msg.len,
                msg.data != NULL ? (const char *)msg.data : tam_strerror(err));
        tam_buf_finish(&msg);
        return 2;
    }
    tam_buf_finish(&msg);
    if (cfg.help || cfg.version) {
        if (cfg.help) {
            tam_config_usage(stdout, TAM_PROG_TAMD, "tamd", usage_header);
        } else {
            printf("tamd %s\n", TAMD_VERSION);
        }
        tam_config_finish(&cfg);
        return 0;
    }
    tam_log_configure(cfg.log_level, (enum tam_log_format)cfg.log_format, "tamd");
    tam_net_process_init();
    raise_nofile(&cfg);
    if (getenv("TAMD_CHILD") != NULL) {
        return tam_gw_run_child(&cfg);
    }
    int code = tam_gw_run_parent(&cfg, argc, argv);
    tam_config_finish(&cfg);
    return code;
}
