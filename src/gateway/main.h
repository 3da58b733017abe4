/* Process roles of tamd (src/gateway only). */
#ifndef TAM_GW_MAIN_H
#define TAM_GW_MAIN_H

#include "gw.h"

/*
 * The parent: private Redis and workers in zero-config mode, then either one in-process
 * gateway (procs = 1) or procs gateway children. Runs until SIGTERM/SIGINT; returns the
 * exit code. cfg and argv are borrowed for the whole run.
 */
int tam_gw_run_parent(const struct tam_config *cfg, int argc, char **argv);

/* A gateway child (TAMD_CHILD=1 in the environment): takes over *cfg; returns the exit code. */
int tam_gw_run_child(struct tam_config *cfg);

#endif
