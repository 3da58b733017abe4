/* --help text and config dumps, generated from the option tables. */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "tam/err.h"

/* The placeholder for an option's value in "--name VALUE". */
static void value_hint(const struct tam_cfg_opt *o, char *out, size_t outsz)
{
    static const char *const hints[] = {
        [TAM_CFG_STR] = "STRING",
        [TAM_CFG_BOOL] = "",
        [TAM_CFG_U32] = "N",
        [TAM_CFG_U64] = "N",
        [TAM_CFG_DURATION] = "DURATION",
        [TAM_CFG_SIZE] = "SIZE",
        [TAM_CFG_ENUM] = "",
        [TAM_CFG_ADDR] = "ADDR",
        [TAM_CFG_PATHS] = "PATH",
    };
    if (o->type != TAM_CFG_ENUM) {
        (void)snprintf(out, outsz, "%s", hints[o->type]);
        return;
    }
    size_t used = 0;
    out[0] = '\0';
    for (const struct tam_cfg_enum *e = o->enums; e->name != NULL && used < outsz; e++) {
        used +=
            (size_t)snprintf(out + used, outsz - used, "%s%s", e == o->enums ? "" : "|", e->name);
    }
}

static void format_default(const struct tam_cfg_opt *o, char *out, size_t outsz)
{
    switch (o->type) {
    case TAM_CFG_STR:
    case TAM_CFG_ADDR:
        (void)snprintf(out, outsz, "\"%s\"", o->def_s != NULL ? o->def_s : "");
        break;
    case TAM_CFG_ENUM:
        (void)snprintf(out, outsz, "%s", o->def_s);
        break;
    case TAM_CFG_BOOL:
        (void)snprintf(out, outsz, "%s", o->def != 0 ? "true" : "false");
        break;
    case TAM_CFG_DURATION:
        tam_config__format_duration(o->def, out, outsz);
        break;
    case TAM_CFG_SIZE:
        tam_config__format_size(o->def, out, outsz);
        break;
    case TAM_CFG_PATHS:
        (void)snprintf(out, outsz, "none; repeatable, at most %llu", (unsigned long long)o->max);
        break;
    case TAM_CFG_U32:
    case TAM_CFG_U64:
    default:
        (void)snprintf(out, outsz, "%llu", (unsigned long long)o->def);
        break;
    }
}

static void format_range(const struct tam_cfg_opt *o, char *out, size_t outsz)
{
    char lo[32];
    char hi[32];
    out[0] = '\0';
    if (o->type == TAM_CFG_SIZE) {
        tam_config__format_size(o->min, lo, sizeof(lo));
        tam_config__format_size(o->max, hi, sizeof(hi));
    } else if (o->type == TAM_CFG_DURATION) {
        tam_config__format_duration(o->min, lo, sizeof(lo));
        tam_config__format_duration(o->max, hi, sizeof(hi));
    } else if (o->type == TAM_CFG_U32 || o->type == TAM_CFG_U64) {
        (void)snprintf(lo, sizeof(lo), "%llu", (unsigned long long)o->min);
        (void)snprintf(hi, sizeof(hi), "%llu", (unsigned long long)o->max);
    } else {
        return;
    }
    (void)snprintf(out, outsz, "; range %s..%s", lo, hi);
}

static void env_name(const char *name, char *out, size_t outsz)
{
    size_t n = (size_t)snprintf(out, outsz, "TAMGATE_");
    for (size_t i = 0; name[i] != '\0' && n + 1 < outsz; i++, n++) {
        char c = name[i];
        if (c == '-') {
            c = '_';
        } else if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        out[n] = c;
    }
    out[n < outsz ? n : outsz - 1] = '\0';
}

static int usage_option(struct tam_buf *out, const struct tam_cfg_opt *o, bool flag)
{
    char hint[64];
    char def[64];
    char range[80];
    char env[80];
    value_hint(o, hint, sizeof(hint));
    format_default(o, def, sizeof(def));
    format_range(o, range, sizeof(range));
    int rc;
    if (!flag) {
        rc = tam_buf_printf(out, "  %s = %s\n", o->name, o->type == TAM_CFG_BOOL ? "BOOL" : hint);
    } else if (o->type == TAM_CFG_BOOL) {
        rc = tam_buf_printf(out, "  --%s, --no-%s\n", o->name, o->name);
    } else {
        rc = tam_buf_printf(out, "  --%s %s\n", o->name, hint);
    }
    if (rc == TAM_OK) {
        rc = tam_buf_printf(out, "      %s\n", o->help);
    }
    env_name(o->name, env, sizeof(env));
    if (rc == TAM_OK && flag) {
        rc = tam_buf_printf(out, "      default %s%s; env %s\n", def, range, env);
    } else if (rc == TAM_OK) {
        rc = tam_buf_printf(out, "      default %s%s\n", def, range);
    }
    return rc;
}

static const char syntax_text[] =
    "\nValues:\n"
    "  SIZE      bytes, with an optional binary suffix: 4096, 64k, 16MiB, 1g (k/kb/kib = 1024,\n"
    "            m/mb/mib, g/gb/gib, t/tb/tib; case-insensitive)\n"
    "  DURATION  an integer with a unit: 250ms, 10s, 5m, 2h, 1d; no unit = milliseconds\n"
    "  ADDR      IPV4:PORT, [IPV6]:PORT, HOSTNAME:PORT or unix:PATH\n"
    "  BOOL      --name or --no-name on the command line; true/false, yes/no, on/off, 1/0\n"
    "            in the file, the environment and --name=VALUE\n"
    "\nSources, lowest to highest precedence: defaults, the config file (--config FILE or\n"
    "TAMGATE_CONFIG), environment variables (TAMGATE_<NAME>), command-line flags.\n"
    "The config file is INI: top-level \"name = value\" keys named like the flags, before any\n"
    "section; ';' or '#' start a comment line. Options of other tamgate programs are ignored in\n"
    "the file and the environment.\n";

int tam_config_usage_buf(struct tam_buf *out, unsigned program, const char *progname,
                         const char *usage_header)
{
    int rc = tam_buf_printf(out, "Usage: %s [OPTIONS]\n", progname);
    if (rc == TAM_OK && usage_header != NULL) {
        rc = tam_buf_printf(out, "%s\n", usage_header);
    }
    if (rc == TAM_OK) {
        rc = tam_buf_append_str(out, "\nOptions:\n  --config FILE\n      INI config file\n"
                                     "      default none; env TAMGATE_CONFIG\n");
    }
    for (size_t i = 0; rc == TAM_OK && i < tam_config__n_options; i++) {
        if ((tam_config__options[i].programs & program) != 0) {
            rc = usage_option(out, &tam_config__options[i], true);
        }
    }
    if (rc == TAM_OK) {
        rc = tam_buf_append_str(out, "  -h, --help\n      print this text and exit\n"
                                     "  --version\n      print the version and exit\n");
    }
    if (rc == TAM_OK) {
        rc = tam_buf_append_str(out, syntax_text);
    }
    if (rc == TAM_OK && (program & (TAM_PROG_TAMD | TAM_PROG_WORKER)) != 0) {
        rc = tam_buf_append_str(out, "\nStatic tenants: config file sections [tenant NAME] "
                                     "(NAME: 1..63 of [a-z0-9-_]) with the keys:\n");
    }
    for (size_t i = 0; rc == TAM_OK && i < tam_config__n_tenant_options; i++) {
        if ((tam_config__tenant_options[i].programs & program) != 0) {
            rc = usage_option(out, &tam_config__tenant_options[i], false);
        }
    }
    return rc;
}

void tam_config_usage(FILE *f, unsigned program, const char *progname, const char *usage_header)
{
    struct tam_buf b;
    tam_buf_init(&b, 1u << 20);
    if (tam_config_usage_buf(&b, program, progname, usage_header) == TAM_OK && b.len > 0) {
        (void)fwrite(b.data, 1, b.len, f);
    }
    tam_buf_finish(&b);
}

/* ---- Dump ---- */

static int dump_tenant(const struct tam_config_tenant *t, unsigned program, struct tam_buf *out)
{
    int rc = tam_buf_printf(out, "\n[tenant %s]\n", t->id);
    for (size_t i = 0; rc == TAM_OK && i < tam_config__n_tenant_options; i++) {
        const struct tam_cfg_opt *o = &tam_config__tenant_options[i];
        if ((o->programs & program) == 0) {
            continue;
        }
        if (o->type == TAM_CFG_PATHS) {
            const struct tam_config_paths *p = (const void *)((const char *)t + o->off);
            for (uint32_t k = 0; rc == TAM_OK && k < p->n; k++) {
                rc = tam_buf_printf(out, "%s = %s\n", o->name, p->v[k]);
            }
            continue;
        }
        char v[TAM_ADDR_HOST_MAX + 16];
        rc =
            tam_buf_printf(out, "%s = %s\n", o->name, tam_config__format_value(t, o, v, sizeof(v)));
    }
    return rc;
}

int tam_config_dump(const struct tam_config *cfg, struct tam_buf *out)
{
    int rc = TAM_OK;
    for (size_t i = 0; rc == TAM_OK && i < tam_config__n_options; i++) {
        const struct tam_cfg_opt *o = &tam_config__options[i];
        if ((o->programs & cfg->program) == 0) {
            continue;
        }
        char small[TAM_ADDR_HOST_MAX + 16];
        const char *v = o->type == TAM_CFG_STR
                            ? *(char *const *)(const void *)((const char *)cfg + o->off)
                            : tam_config__format_value(cfg, o, small, sizeof(small));
        rc = tam_buf_printf(out, "%s = %s\n", o->name, v);
    }
    for (uint32_t t = 0; rc == TAM_OK && t < cfg->n_tenants; t++) {
        rc = dump_tenant(&cfg->tenants[t], cfg->program, out);
    }
    return rc;
}
