/*
 * The config file layer: INI text parsed by libinih.
 *
 * libinih is fed through ini_parse_stream() with our own line reader, which lets us:
 *   - count lines ourselves (Debian's build has no INI_HANDLER_LINENO) for file:line messages;
 *   - see every section header in full (libinih truncates section names to 49 bytes, too
 *     short for "tenant " plus a 63-byte tenant id) and track the current section ourselves;
 *   - strip leading whitespace, so libinih never treats a line as a continuation of the
 *     previous value (multi-line values would be surprising in an options file);
 *   - refuse over-long lines instead of letting libinih split them into two "lines";
 *   - stop at the first error.
 * libinih still does the key/value split, comment stripping and whitespace trimming.
 */
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/tenant.h"

#define SECTION_MAX 256

struct ini_state {
    struct tam_config *cfg;
    const char *source;
    const char *pos; /* reader cursor in the text */
    unsigned lineno;
    struct tam_config_tenant *tenant;       /* current [tenant NAME] section, NULL at top level */
    unsigned opt_line[TAM_CFG_MAX_ROWS];    /* line where each top-level option was set */
    unsigned tenant_line[TAM_CFG_MAX_ROWS]; /* the same for the current tenant's options */
    struct tam_buf *err;
    int rc;            /* first error, TAM_OK if none */
    unsigned err_line; /* its line */
};

/* Records the first error as "source:line: message"; returns 0 for libinih. */
static int fail_at(struct ini_state *st, const char *fmt, ...) TAM_PRINTF(2, 3);
static int fail_at(struct ini_state *st, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive of clang 14 */
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st->rc = tam_config__fail(st->err, "%s:%u: %s", st->source, st->lineno, msg);
    st->err_line = st->lineno;
    return 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static struct tam_config_tenant *find_tenant(struct tam_config *cfg, const char *id)
{
    for (uint32_t i = 0; i < cfg->n_tenants; i++) {
        if (strcmp(cfg->tenants[i].id, id) == 0) {
            return &cfg->tenants[i];
        }
    }
    return NULL;
}

static int add_tenant(struct ini_state *st, const char *id)
{
    struct tam_config *cfg = st->cfg;
    if (!tam_tenant_id_valid(id, strlen(id))) {
        return fail_at(st,
                       "[tenant %s]: not a tenant id (1..63 of [a-z0-9-_], not starting with "
                       "'-' or '_')",
                       id);
    }
    if (find_tenant(cfg, id) != NULL) {
        return fail_at(st, "[tenant %s]: section given twice", id);
    }
    if (cfg->n_tenants >= TAM_CONFIG_MAX_TENANTS) {
        return fail_at(st, "[tenant %s]: more than %u tenants", id, TAM_CONFIG_MAX_TENANTS);
    }
    struct tam_config_tenant *v =
        tam_realloc(cfg->tenants, (cfg->n_tenants + 1) * sizeof(*cfg->tenants));
    if (v == NULL) {
        st->rc = TAM_ENOMEM;
        return 0;
    }
    cfg->tenants = v;
    struct tam_config_tenant *t = &v[cfg->n_tenants++];
    memset(t, 0, sizeof(*t));
    memcpy(t->id, id, strlen(id) + 1);
    t->line = st->lineno;
    for (size_t i = 0; i < tam_config__n_tenant_options; i++) {
        (void)tam_config__set_default(t, &tam_config__tenant_options[i]); /* no strings */
    }
    st->tenant = t;
    memset(st->tenant_line, 0, sizeof(st->tenant_line));
    return 1;
}

/* A "[...]" line (leading blanks already skipped): switches the current section. */
static int on_section(struct ini_state *st, const char *line, size_t len)
{
    const char *close = memchr(line, ']', len);
    if (close == NULL) {
        return fail_at(st, "section header without ']'");
    }
    char name[SECTION_MAX];
    size_t n = (size_t)(close - line - 1);
    const char *p = line + 1;
    while (n > 0 && is_blank(*p)) {
        p++;
        n--;
    }
    while (n > 0 && is_blank(p[n - 1])) {
        n--;
    }
    memcpy(name, p, n); /* n < line length <= the reader's buffer < SECTION_MAX */
    name[n] = '\0';
    if (n > 7 && strncmp(name, "tenant", 6) == 0 && is_blank(name[6])) {
        const char *id = name + 7;
        while (is_blank(*id)) {
            id++;
        }
        return add_tenant(st, id);
    }
    return fail_at(st, "unknown section [%s] (expected [tenant NAME])", name);
}

/*
 * libinih's fgets-like reader: one line per call into str (num bytes). Also does the
 * bookkeeping described at the top of this file.
 */
static char *read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    if (st->rc != TAM_OK || *st->pos == '\0') {
        return NULL;
    }
    const char *line = st->pos;
    const char *nl = strchr(line, '\n');
    size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
    st->pos = nl != NULL ? nl + 1 : line + len;
    st->lineno++;
    if (st->lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3; /* a UTF-8 byte order mark */
        len -= 3;
    }
    while (len > 0 && is_blank(*line)) {
        line++;
        len--;
    }
    if (num < 4 || len > (size_t)num - 3 || len >= SECTION_MAX) {
        int max = num - 3 < SECTION_MAX - 1 ? num - 3 : SECTION_MAX - 1;
        (void)fail_at(st, "line longer than %d characters", max > 0 ? max : 0);
        return NULL;
    }
    if (len > 0 && line[0] == '[' && on_section(st, line, len) == 0) {
        return NULL;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* Removes one pair of surrounding double quotes into buf (at least strlen(v) + 1 bytes). */
static const char *unquote(const char *v, char *buf)
{
    size_t len = strlen(v);
    if (len < 2 || v[0] != '"' || v[len - 1] != '"') {
        return v;
    }
    memcpy(buf, v + 1, len - 2);
    buf[len - 2] = '\0';
    return buf;
}

static int set_one(struct ini_state *st, void *base, const struct tam_cfg_opt *o,
                   unsigned *seen_line, const char *value)
{
    if (o->type != TAM_CFG_PATHS && *seen_line != 0) {
        return fail_at(st, "%s: given twice (first on line %u)", o->name, *seen_line);
    }
    *seen_line = st->lineno;
    char buf[SECTION_MAX];
    char why[256];
    int rc = tam_config__set(base, o, unquote(value, buf), why, sizeof(why));
    if (rc == TAM_ECONFIG) {
        return fail_at(st, "%s: %s", o->name, why);
    }
    st->rc = rc;
    return rc == TAM_OK;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    (void)section; /* possibly truncated by libinih; st->tenant is authoritative */
    if (st->rc != TAM_OK) {
        return 0;
    }
    if (st->tenant != NULL) {
        const struct tam_cfg_opt *o = tam_config__find(
            tam_config__tenant_options, tam_config__n_tenant_options, name, strlen(name));
        if (o == NULL) {
            return fail_at(st, "[tenant %s]: unknown key \"%s\"", st->tenant->id, name);
        }
        size_t i = (size_t)(o - tam_config__tenant_options);
        return set_one(st, st->tenant, o, &st->tenant_line[i], value);
    }
    const struct tam_cfg_opt *o =
        tam_config__find(tam_config__options, tam_config__n_options, name, strlen(name));
    if (o == NULL) {
        return fail_at(st, "unknown option \"%s\"", name);
    }
    if ((o->programs & st->cfg->program) == 0) {
        return 1; /* an option of another program in a shared file */
    }
    size_t i = (size_t)(o - tam_config__options);
    return set_one(st, st->cfg, o, &st->opt_line[i], value);
}

int tam_config_parse_string(struct tam_config *cfg, const char *text, const char *source,
                            struct tam_buf *err_msg)
{
    struct ini_state st;
    memset(&st, 0, sizeof(st));
    st.cfg = cfg;
    st.source = source != NULL ? source : "config";
    st.pos = text;
    st.err = err_msg;
    size_t err_len = err_msg != NULL ? err_msg->len : 0;
    int line = ini_parse_stream(read_line, &st, on_pair, &st);
    if (line > 0 && (st.rc == TAM_OK || (unsigned)line < st.err_line)) {
        if (err_msg != NULL) {
            err_msg->len = err_len; /* an earlier syntax error wins over our later message */
        }
        return tam_config__fail(err_msg,
                                "%s:%d: syntax error (expected \"key = value\", "
                                "[section] or a comment)",
                                st.source, line);
    }
    if (line < 0 && st.rc == TAM_OK) {
        return TAM_ENOMEM;
    }
    return st.rc;
}
