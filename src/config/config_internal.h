/* Shared only among src/config/config*.c: the option tables and the value setter. */
#ifndef TAM_CONFIG_INTERNAL_H
#define TAM_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/config.h"

enum tam_cfg_type {
    TAM_CFG_STR,
    TAM_CFG_BOOL,
    TAM_CFG_U32,
    TAM_CFG_U64,
    TAM_CFG_DURATION, /* uint64_t milliseconds */
    TAM_CFG_SIZE,     /* uint64_t bytes */
    TAM_CFG_ENUM,     /* int */
    TAM_CFG_ADDR,     /* struct tam_addr */
    TAM_CFG_PATHS,    /* struct tam_config_paths: a repeatable key, file only */
};

#define TAM_CFG_F_NONEMPTY 1u /* STR/ADDR: "" is rejected */
#define TAM_CFG_MAX_ROWS   64 /* rows in one table */

struct tam_cfg_enum {
    const char *name;
    int value;
};

/* One row of an option table; `off` is the offset of the field in its struct. */
struct tam_cfg_opt {
    const char *name;
    enum tam_cfg_type type;
    size_t off;
    unsigned programs;                /* TAM_PROG_* mask */
    uint64_t min, max;                /* numeric types; PATHS: max = most entries */
    uint64_t def;                     /* numeric and bool default */
    const char *def_s;                /* STR, ENUM and ADDR default */
    const struct tam_cfg_enum *enums; /* ENUM: terminated by a NULL name */
    unsigned flags;
    const char *help;
};

extern const struct tam_cfg_opt tam_config__options[];
extern const size_t tam_config__n_options;
extern const struct tam_cfg_opt tam_config__tenant_options[];
extern const size_t tam_config__n_tenant_options;

/* The row called name (len bytes) in table, or NULL. */
const struct tam_cfg_opt *tam_config__find(const struct tam_cfg_opt *table, size_t n,
                                           const char *name, size_t len);

/*
 * Parses value per o and stores it in the struct at base (a STR is copied, a PATHS entry
 * appended). On TAM_ECONFIG a reason ("\"x\" is not a number") is written to why.
 * TAM_ENOMEM on OOM.
 */
int tam_config__set(void *base, const struct tam_cfg_opt *o, const char *value, char *why,
                    size_t whysz);
/* Stores o's default (copies strings). TAM_OK or TAM_ENOMEM. */
int tam_config__set_default(void *base, const struct tam_cfg_opt *o);
/* Frees what o's field owns at base. */
void tam_config__free_field(void *base, const struct tam_cfg_opt *o);

/* Value formatting for --help and dumps: "1MiB", "10s", "127.0.0.1:8080". */
void tam_config__format_size(uint64_t v, char *out, size_t outsz);
void tam_config__format_duration(uint64_t ms, char *out, size_t outsz);
/* Formats the current value of o's field at base; returns out. */
const char *tam_config__format_value(const void *base, const struct tam_cfg_opt *o, char *out,
                                     size_t outsz);
/* The display name of a single program bit ("tamd", "tam-worker", "tamctl"). */
const char *tam_config__program_name(unsigned program);
/* Appends "src: msg" to err (NULL-safe) and returns TAM_ECONFIG. */
int tam_config__fail(struct tam_buf *err, const char *fmt, ...) TAM_PRINTF(2, 3);

#endif
