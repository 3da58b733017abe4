/*
 * tam-agent: a simulated TEEP device fleet, conformance client and load
 * generator that drives any TEEP TAM over HTTP(S). See `tam-agent --help`.
 */
#include <signal.h>
#include <stdio.h>

#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

/* keys mode: build the fleet (generated or --seed keys) and export it. */
int ag_run_keys(const struct ag_opts *o)
{
    if (o->export_dir == NULL) {
        fprintf(stderr, "tam-agent: keys needs --export-keys DIR\n");
        return 2;
    }
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return 2;
    }
    struct ag_fleet f;
    int err = ag_fleet_init(&f, &loop, o, o->devices, 0);
    if (err == TAM_OK) {
        printf("wrote %zu device keys to %s\n", f.ndev, o->export_dir);
    }
    ag_fleet_finish(&f);
    uv_loop_close(&loop);
    return err == TAM_OK ? 0 : 2;
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* before anything uses wolfSSL */
    struct ag_opts o;
    int rc = ag_opts_parse(argc, argv, &o);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    /* libuv does not ignore SIGPIPE (DEPS.md 8.2): a reset peer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    tam_log_configure(o.log_level, TAM_LOG_LOGFMT, "tam-agent");
    switch (o.mode) {
    case AG_MODE_CONFORMANCE:
        return ag_run_conformance(&o);
    case AG_MODE_LOAD:
        return ag_run_load(&o);
    case AG_MODE_IDLE:
        return ag_run_idle(&o);
    case AG_MODE_KEYS:
        return ag_run_keys(&o);
    case AG_MODE_DEMO:
        return ag_run_demo(&o);
    default:
        return 2;
    }
}
