/*
 * Value parsers and the table-driven setter shared by every source (file, environment,
 * command line). Pure: no I/O, no globals.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"
#include "tam/alloc.h"
#include "tam/err.h"

/* ---- Scalar parsers ---- */

/* Leading decimal digits of s into *out; returns the count (0 = none) or -1 on overflow. */
static int scan_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        uint64_t d = (uint64_t)(s[n] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

int tam_config_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v;
    int n = scan_digits(s, &v);
    if (n < 0) {
        return TAM_ETOOBIG;
    }
    if (n == 0 || s[n] != '\0') {
        return TAM_EINVAL;
    }
    *out = v;
    return TAM_OK;
}

int tam_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return TAM_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

struct unit {
    const char *name;
    uint64_t mult;
};

/* Number followed by one of units (compared with cmp); "" must be in units for a bare number. */
static int parse_scaled(const char *s, const struct unit *units, size_t n_units, bool icase,
                        uint64_t *out)
{
    uint64_t v;
    int n = scan_digits(s, &v);
    if (n < 0) {
        return TAM_ETOOBIG;
    }
    if (n == 0) {
        return TAM_EINVAL;
    }
    const char *suffix = s + n;
    for (size_t i = 0; i < n_units; i++) {
        bool same =
            icase ? strcasecmp(suffix, units[i].name) == 0 : strcmp(suffix, units[i].name) == 0;
        if (same) {
            if (v > UINT64_MAX / units[i].mult) {
                return TAM_ETOOBIG;
            }
            *out = v * units[i].mult;
            return TAM_OK;
        }
    }
    return TAM_EINVAL;
}

int tam_config_parse_duration(const char *s, uint64_t *ms)
{
    static const struct unit units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    return parse_scaled(s, units, TAM_ARRAY_LEN(units), false, ms);
}

int tam_config_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {
        {"", 1},
        {"b", 1},
        {"k", 1ull << 10},
        {"kb", 1ull << 10},
        {"kib", 1ull << 10},
        {"m", 1ull << 20},
        {"mb", 1ull << 20},
        {"mib", 1ull << 20},
        {"g", 1ull << 30},
        {"gb", 1ull << 30},
        {"gib", 1ull << 30},
        {"t", 1ull << 40},
        {"tb", 1ull << 40},
        {"tib", 1ull << 40},
    };
    return parse_scaled(s, units, TAM_ARRAY_LEN(units), true, bytes);
}

/* ---- Addresses ---- */

static int parse_port(const char *s, uint16_t *port)
{
    uint64_t v;
    if (tam_config_parse_u64(s, &v) != TAM_OK || v > 65535 || strlen(s) > 5) {
        return TAM_EINVAL;
    }
    *port = (uint16_t)v;
    return TAM_OK;
}

/* RFC 1123 host name: dot-separated labels of [A-Za-z0-9-], 1..63 each, no '-' at the ends. */
static bool hostname_valid(const char *h, size_t len)
{
    size_t label = 0;
    bool all_numeric = true;
    for (size_t i = 0; i <= len; i++) {
        char c = '.'; /* a virtual dot ends the last label */
        if (i < len) {
            c = h[i];
        }
        if (c == '.') {
            if (label == 0 || label > 63 || h[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !digit && !(c == '-' && label > 0)) {
            return false;
        }
        all_numeric = all_numeric && digit;
        label++;
    }
    /* Digits and dots only is a malformed IPv4 literal, not a name. */
    return !all_numeric;
}

static int parse_inet(const char *s, struct tam_addr *out)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s) {
        return TAM_EINVAL;
    }
    size_t hlen = (size_t)(colon - s);
    bool bracket = s[0] == '[';
    if (bracket) {
        if (hlen < 3 || s[hlen - 1] != ']') {
            return TAM_EINVAL;
        }
        s++;
        hlen -= 2;
    }
    if (hlen >= TAM_ADDR_HOST_MAX) {
        return TAM_ETOOBIG;
    }
    memcpy(out->host, s, hlen);
    out->host[hlen] = '\0';
    if (parse_port(colon + 1, &out->port) != TAM_OK) {
        return TAM_EINVAL;
    }
    uint8_t tmp[16];
    if (bracket) {
        out->kind = TAM_ADDR_IPV6;
        return inet_pton(AF_INET6, out->host, tmp) == 1 ? TAM_OK : TAM_EINVAL;
    }
    if (inet_pton(AF_INET, out->host, tmp) == 1) {
        out->kind = TAM_ADDR_IPV4;
        return TAM_OK;
    }
    out->kind = TAM_ADDR_HOST;
    return hostname_valid(out->host, hlen) ? TAM_OK : TAM_EINVAL;
}

int tam_config_parse_addr(const char *s, struct tam_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (s[0] == '\0') {
        return TAM_OK;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        size_t len = strlen(s + 5);
        if (len == 0) {
            return TAM_EINVAL;
        }
        if (len >= TAM_ADDR_PATH_MAX) {
            return TAM_ETOOBIG;
        }
        memcpy(out->path, s + 5, len + 1);
        out->kind = TAM_ADDR_UNIX;
        return TAM_OK;
    }
    int err = parse_inet(s, out);
    if (err != TAM_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}

const char *tam_config_format_addr(const struct tam_addr *a, char *out, size_t outsz)
{
    if (outsz == 0) {
        return out;
    }
    switch (a->kind) {
    case TAM_ADDR_UNIX:
        (void)snprintf(out, outsz, "unix:%s", a->path);
        break;
    case TAM_ADDR_IPV6:
        (void)snprintf(out, outsz, "[%s]:%u", a->host, (unsigned)a->port);
        break;
    case TAM_ADDR_IPV4:
    case TAM_ADDR_HOST:
        (void)snprintf(out, outsz, "%s:%u", a->host, (unsigned)a->port);
        break;
    case TAM_ADDR_NONE:
    default:
        out[0] = '\0';
        break;
    }
    return out;
}

/* ---- Formatting ---- */

void tam_config__format_size(uint64_t v, char *out, size_t outsz)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (size_t i = 0; i < TAM_ARRAY_LEN(names); i++) {
        uint64_t unit = 1ull << (10 * (4 - i));
        if (v != 0 && v % unit == 0) {
            (void)snprintf(out, outsz, "%llu%s", (unsigned long long)(v / unit), names[i]);
            return;
        }
    }
    (void)snprintf(out, outsz, "%llu", (unsigned long long)v);
}

void tam_config__format_duration(uint64_t ms, char *out, size_t outsz)
{
    static const struct unit units[] = {
        {"d", 86400000},
        {"h", 3600000},
        {"m", 60000},
        {"s", 1000},
    };
    for (size_t i = 0; i < TAM_ARRAY_LEN(units); i++) {
        if (ms != 0 && ms % units[i].mult == 0) {
            (void)snprintf(out, outsz, "%llu%s", (unsigned long long)(ms / units[i].mult),
                           units[i].name);
            return;
        }
    }
    (void)snprintf(out, outsz, "%llums", (unsigned long long)ms);
}

static const char *enum_name(const struct tam_cfg_enum *e, int value)
{
    for (; e->name != NULL; e++) {
        if (e->value == value) {
            return e->name;
        }
    }
    return "?";
}

const char *tam_config__format_value(const void *base, const struct tam_cfg_opt *o, char *out,
                                     size_t outsz)
{
    const char *field = (const char *)base + o->off;
    uint64_t u = 0;
    switch (o->type) {
    case TAM_CFG_STR:
        (void)snprintf(out, outsz, "%s", *(char *const *)(const void *)field);
        break;
    case TAM_CFG_BOOL:
        (void)snprintf(out, outsz, "%s", *(const bool *)(const void *)field ? "true" : "false");
        break;
    case TAM_CFG_U32:
        (void)snprintf(out, outsz, "%u", (unsigned)*(const uint32_t *)(const void *)field);
        break;
    case TAM_CFG_U64:
        memcpy(&u, field, sizeof(u));
        (void)snprintf(out, outsz, "%llu", (unsigned long long)u);
        break;
    case TAM_CFG_DURATION:
        memcpy(&u, field, sizeof(u));
        tam_config__format_duration(u, out, outsz);
        break;
    case TAM_CFG_SIZE:
        memcpy(&u, field, sizeof(u));
        tam_config__format_size(u, out, outsz);
        break;
    case TAM_CFG_ENUM:
        (void)snprintf(out, outsz, "%s", enum_name(o->enums, *(const int *)(const void *)field));
        break;
    case TAM_CFG_ADDR:
        tam_config_format_addr((const struct tam_addr *)(const void *)field, out, outsz);
        break;
    case TAM_CFG_PATHS:
    default:
        (void)snprintf(out, outsz, "(%u paths)",
                       (unsigned)((const struct tam_config_paths *)(const void *)field)->n);
        break;
    }
    return out;
}

/* ---- The setter ---- */

/* Quotes at most 64 bytes of a value for a message; control bytes were rejected earlier. */
static const char *quote(const char *v, char *out, size_t outsz)
{
    size_t len = strlen(v);
    (void)snprintf(out, outsz, "\"%.64s%s\"", v, len > 64 ? "..." : "");
    return out;
}

static int text_check(const char *v, char *why, size_t whysz)
{
    size_t len = strlen(v);
    if (len > TAM_CONFIG_STR_MAX) {
        (void)snprintf(why, whysz, "value longer than %u bytes", TAM_CONFIG_STR_MAX);
        return TAM_ECONFIG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            (void)snprintf(why, whysz, "value contains a control character");
            return TAM_ECONFIG;
        }
    }
    return TAM_OK;
}

static int set_str(char **field, const struct tam_cfg_opt *o, const char *v, char *why,
                   size_t whysz)
{
    if ((o->flags & TAM_CFG_F_NONEMPTY) != 0 && v[0] == '\0') {
        (void)snprintf(why, whysz, "must not be empty");
        return TAM_ECONFIG;
    }
    char *copy = tam_strdup(v);
    if (copy == NULL) {
        return TAM_ENOMEM;
    }
    tam_free(*field);
    *field = copy;
    return TAM_OK;
}

static int set_paths(struct tam_config_paths *p, const struct tam_cfg_opt *o, const char *v,
                     char *why, size_t whysz)
{
    if (v[0] == '\0') {
        (void)snprintf(why, whysz, "must not be empty");
        return TAM_ECONFIG;
    }
    if (p->n >= o->max) {
        (void)snprintf(why, whysz, "given more than %llu times", (unsigned long long)o->max);
        return TAM_ECONFIG;
    }
    char **grown = tam_realloc(p->v, (p->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        return TAM_ENOMEM;
    }
    p->v = grown;
    grown[p->n] = tam_strdup(v);
    if (grown[p->n] == NULL) {
        return TAM_ENOMEM;
    }
    p->n++;
    return TAM_OK;
}

static int set_enum(int *field, const struct tam_cfg_opt *o, const char *v, char *why, size_t whysz)
{
    char q[80];
    size_t used = (size_t)snprintf(why, whysz, "%s is not one of ", quote(v, q, sizeof(q)));
    for (const struct tam_cfg_enum *e = o->enums; e->name != NULL; e++) {
        if (strcmp(e->name, v) == 0) {
            *field = e->value;
            return TAM_OK;
        }
        if (used < whysz) {
            used += (size_t)snprintf(why + used, whysz - used, "%s%s", e == o->enums ? "" : "|",
                                     e->name);
        }
    }
    return TAM_ECONFIG;
}

static void format_bound(const struct tam_cfg_opt *o, uint64_t v, char *out, size_t outsz)
{
    if (o->type == TAM_CFG_SIZE) {
        tam_config__format_size(v, out, outsz);
    } else if (o->type == TAM_CFG_DURATION) {
        tam_config__format_duration(v, out, outsz);
    } else {
        (void)snprintf(out, outsz, "%llu", (unsigned long long)v);
    }
}

static int parse_number(const struct tam_cfg_opt *o, const char *v, uint64_t *out, char *why,
                        size_t whysz)
{
    static const char *const kinds[] = {
        [TAM_CFG_U32] = "a number",
        [TAM_CFG_U64] = "a number",
        [TAM_CFG_DURATION] = "a duration (250ms, 10s, 5m, 2h, 1d)",
        [TAM_CFG_SIZE] = "a size (4096, 64k, 16MiB, 1g)",
    };
    int err = o->type == TAM_CFG_DURATION ? tam_config_parse_duration(v, out)
              : o->type == TAM_CFG_SIZE   ? tam_config_parse_size(v, out)
                                          : tam_config_parse_u64(v, out);
    char q[80];
    char b[32];
    if (err == TAM_ETOOBIG) {
        (void)snprintf(why, whysz, "%s is too large", quote(v, q, sizeof(q)));
        return TAM_ECONFIG;
    }
    if (err != TAM_OK) {
        (void)snprintf(why, whysz, "%s is not %s", quote(v, q, sizeof(q)), kinds[o->type]);
        return TAM_ECONFIG;
    }
    if (*out < o->min) {
        format_bound(o, o->min, b, sizeof(b));
        (void)snprintf(why, whysz, "%s is below the minimum %s", quote(v, q, sizeof(q)), b);
        return TAM_ECONFIG;
    }
    if (*out > o->max) {
        format_bound(o, o->max, b, sizeof(b));
        (void)snprintf(why, whysz, "%s is above the maximum %s", quote(v, q, sizeof(q)), b);
        return TAM_ECONFIG;
    }
    return TAM_OK;
}

static int set_addr(struct tam_addr *field, const struct tam_cfg_opt *o, const char *v, char *why,
                    size_t whysz)
{
    char q[80];
    struct tam_addr a;
    int err = tam_config_parse_addr(v, &a);
    if (err == TAM_OK && a.kind == TAM_ADDR_NONE && (o->flags & TAM_CFG_F_NONEMPTY) != 0) {
        (void)snprintf(why, whysz, "must not be empty");
        return TAM_ECONFIG;
    }
    if (err != TAM_OK) {
        (void)snprintf(why, whysz,
                       "%s is not an address (IPV4:PORT, [IPV6]:PORT, HOST:PORT, unix:PATH)",
                       quote(v, q, sizeof(q)));
        return TAM_ECONFIG;
    }
    *field = a;
    return TAM_OK;
}

static int set_number(void *field, const struct tam_cfg_opt *o, const char *v, char *why,
                      size_t whysz)
{
    uint64_t n;
    int err = parse_number(o, v, &n, why, whysz);
    if (err != TAM_OK) {
        return err;
    }
    if (o->type == TAM_CFG_U32) {
        uint32_t n32 = (uint32_t)n; /* max <= UINT32_MAX in every U32 row */
        memcpy(field, &n32, sizeof(n32));
    } else {
        memcpy(field, &n, sizeof(n));
    }
    return TAM_OK;
}

int tam_config__set(void *base, const struct tam_cfg_opt *o, const char *value, char *why,
                    size_t whysz)
{
    int err = text_check(value, why, whysz);
    if (err != TAM_OK) {
        return err;
    }
    void *field = (char *)base + o->off;
    char q[80];
    switch (o->type) {
    case TAM_CFG_STR:
        return set_str(field, o, value, why, whysz);
    case TAM_CFG_PATHS:
        return set_paths(field, o, value, why, whysz);
    case TAM_CFG_BOOL:
        if (tam_config_parse_bool(value, field) != TAM_OK) {
            (void)snprintf(why, whysz, "%s is not a boolean (true/false, yes/no, on/off, 1/0)",
                           quote(value, q, sizeof(q)));
            return TAM_ECONFIG;
        }
        return TAM_OK;
    case TAM_CFG_ENUM:
        return set_enum(field, o, value, why, whysz);
    case TAM_CFG_ADDR:
        return set_addr(field, o, value, why, whysz);
    case TAM_CFG_U32:
    case TAM_CFG_U64:
    case TAM_CFG_DURATION:
    case TAM_CFG_SIZE:
    default:
        return set_number(field, o, value, why, whysz);
    }
}

int tam_config__set_default(void *base, const struct tam_cfg_opt *o)
{
    void *field = (char *)base + o->off;
    switch (o->type) {
    case TAM_CFG_STR: {
        char *copy = tam_strdup(o->def_s != NULL ? o->def_s : "");
        if (copy == NULL) {
            return TAM_ENOMEM;
        }
        *(char **)field = copy;
        return TAM_OK;
    }
    case TAM_CFG_BOOL:
        *(bool *)field = o->def != 0;
        return TAM_OK;
    case TAM_CFG_U32:
        *(uint32_t *)field = (uint32_t)o->def;
        return TAM_OK;
    case TAM_CFG_ENUM: {
        char why[8];
        return set_enum(field, o, o->def_s, why, sizeof(why)) == TAM_OK ? TAM_OK : TAM_EINVAL;
    }
    case TAM_CFG_ADDR:
        return tam_config_parse_addr(o->def_s != NULL ? o->def_s : "", field);
    case TAM_CFG_PATHS:
        memset(field, 0, sizeof(struct tam_config_paths));
        return TAM_OK;
    case TAM_CFG_U64:
    case TAM_CFG_DURATION:
    case TAM_CFG_SIZE:
    default:
        memcpy(field, &o->def, sizeof(uint64_t));
        return TAM_OK;
    }
}

void tam_config__free_field(void *base, const struct tam_cfg_opt *o)
{
    void *field = (char *)base + o->off;
    if (o->type == TAM_CFG_STR) {
        tam_free(*(char **)field);
        *(char **)field = NULL;
    } else if (o->type == TAM_CFG_PATHS) {
        struct tam_config_paths *p = field;
        for (uint32_t i = 0; i < p->n; i++) {
            tam_free(p->v[i]);
        }
        tam_free(p->v);
        p->v = NULL;
        p->n = 0;
    }
}

int tam_config__fail(struct tam_buf *err, const char *fmt, ...)
{
    if (err == NULL) {
        return TAM_ECONFIG;
    }
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): false positive of clang 14 */
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int rc = tam_buf_append_str(err, line);
    (void)rc; /* a message that does not fit is dropped; the error stays TAM_ECONFIG */
    return TAM_ECONFIG;
}
