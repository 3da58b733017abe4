/*
 * Shared by the benchmark programs: puts one SUIT envelope into a tenant's catalogue in
 * Redis exactly as the admin API stores it (include/tam/store.h, include/tam/keys.h):
 * the component record under tam:t:{tenant}:components, a policy installing that
 * component on every device, and an INCR of tam:t:{tenant}:catalog_version so the
 * workers reload. The same records tests/unit/test_e2e.c writes.
 */
#ifndef TAM_BENCH_CATALOG_H
#define TAM_BENCH_CATALOG_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

/* env (borrowed) must parse and name one component; returns 0 or a negative TAM_E* code. */
int bench_catalog_put(redisContext *c, const char *tenant, const uint8_t *env, size_t len);

#endif
