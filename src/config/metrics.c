/* Prometheus text exposition format 0.0.4 (see include/tam/metrics.h). */
#include "tam/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tam/err.h"

void tam_metrics_writer_init(struct tam_metrics_writer *w, struct tam_buf *out)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
}

int tam_metrics_writer_error(const struct tam_metrics_writer *w)
{
    return w->err;
}

/* ---- Validation ---- */

static bool name_char(char c, bool first, bool colon)
{
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return alpha || (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

static bool name_ok(const char *s, bool colon)
{
    size_t len = strlen(s);
    if (len == 0 || len > TAM_METRICS_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char(s[i], i == 0, colon)) {
            return false;
        }
    }
    return true;
}

bool tam_metrics_name_valid(const char *name)
{
    return name != NULL && name_ok(name, true);
}

bool tam_metrics_label_name_valid(const char *name)
{
    return name != NULL && name_ok(name, false) && strncmp(name, "__", 2) != 0;
}

/* Well-formed UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s)
{
    while (*s != 0) {
        unsigned c = *s;
        size_t n = c < 0x80           ? 0
                   : (c >> 5) == 0x6  ? 1
                   : (c >> 4) == 0xe  ? 2
                   : (c >> 3) == 0x1e ? 3
                                      : 4;
        if (n == 4 || (n == 1 && c < 0xc2)) {
            return false;
        }
        unsigned cp = n == 0 ? c : c & (0x3fu >> n);
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i] & 0x3fu);
        }
        bool overlong = (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000);
        if (overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
        s += n + 1;
    }
    return true;
}

static bool labels_ok(const struct tam_metrics_label *labels, size_t n, bool histogram)
{
    for (size_t i = 0; i < n; i++) {
        const char *ln = labels[i].name;
        if (!tam_metrics_label_name_valid(ln) || labels[i].value == NULL ||
            !utf8_valid((const unsigned char *)labels[i].value)) {
            return false;
        }
        if (histogram && strcmp(ln, "le") == 0) {
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(labels[j].name, ln) == 0) {
                return false;
            }
        }
    }
    return true;
}

/* ---- Text ---- */

const char *tam_metrics_format_double(double v, char *out, size_t outsz)
{
    if (isnan(v)) {
        (void)snprintf(out, outsz, "NaN");
    } else if (isinf(v)) {
        (void)snprintf(out, outsz, "%s", v > 0 ? "+Inf" : "-Inf");
    } else {
        /* The shortest %g form that parses back to the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            (void)snprintf(out, outsz, "%.*g", prec, v);
            if (strtod(out, NULL) == v) {
                break;
            }
        }
    }
    return out;
}

/* Appends s with backslash and newline escaped, and the double quote too when quote. */
static int append_escaped(struct tam_buf *b, const char *s, bool quote)
{
    int rc = TAM_OK;
    size_t start = 0;
    size_t i = 0;
    for (; rc == TAM_OK && s[i] != '\0'; i++) {
        const char *esc = s[i] == '\\'             ? "\\\\"
                          : s[i] == '\n'           ? "\\n"
                          : (quote && s[i] == '"') ? "\\\""
                                                   : NULL;
        if (esc != NULL) {
            rc = tam_buf_append(b, s + start, i - start);
            rc = rc == TAM_OK ? tam_buf_append(b, esc, 2) : rc;
            start = i + 1;
        }
    }
    return rc == TAM_OK ? tam_buf_append(b, s + start, i - start) : rc;
}

static int write_header(struct tam_metrics_writer *w, const char *name, const char *help,
                        enum tam_metrics_type type)
{
    static const char *const types[] = {
        [TAM_METRICS_COUNTER] = "counter",
        [TAM_METRICS_GAUGE] = "gauge",
        [TAM_METRICS_HISTOGRAM] = "histogram",
    };
    if (strcmp(w->family, name) == 0) {
        return w->type == type ? TAM_OK : TAM_EINVAL;
    }
    int rc = TAM_OK;
    if (help != NULL) {
        rc = tam_buf_printf(w->out, "# HELP %s ", name);
        rc = rc == TAM_OK ? append_escaped(w->out, help, false) : rc;
        rc = rc == TAM_OK ? tam_buf_append(w->out, "\n", 1) : rc;
    }
    return rc == TAM_OK ? tam_buf_printf(w->out, "# TYPE %s %s\n", name, types[type]) : rc;
}

/* name{labels[,le="le"]} value\n; suffix is appended to the name ("_bucket", ""). */
static int write_sample(struct tam_buf *b, const char *name, const char *suffix,
                        const struct tam_metrics_label *labels, size_t n, const char *le,
                        const char *value)
{
    int rc = tam_buf_printf(b, "%s%s", name, suffix);
    bool braces = n > 0 || le != NULL;
    rc = rc == TAM_OK && braces ? tam_buf_append(b, "{", 1) : rc;
    for (size_t i = 0; rc == TAM_OK && i < n; i++) {
        rc = tam_buf_printf(b, "%s%s=\"", i == 0 ? "" : ",", labels[i].name);
        rc = rc == TAM_OK ? append_escaped(b, labels[i].value, true) : rc;
        rc = rc == TAM_OK ? tam_buf_append(b, "\"", 1) : rc;
    }
    if (rc == TAM_OK && le != NULL) {
        rc = tam_buf_printf(b, "%sle=\"%s\"", n == 0 ? "" : ",", le);
    }
    rc = rc == TAM_OK && braces ? tam_buf_append(b, "}", 1) : rc;
    return rc == TAM_OK ? tam_buf_printf(b, " %s\n", value) : rc;
}

/* Common prologue: the sticky error, the checks, then HELP/TYPE for a new family. */
static int begin(struct tam_metrics_writer *w, const char *name, const char *help,
                 const struct tam_metrics_label *labels, size_t n, enum tam_metrics_type type)
{
    if (w->err != TAM_OK) {
        return w->err;
    }
    if (!tam_metrics_name_valid(name) || (n > 0 && labels == NULL) ||
        !labels_ok(labels, n, type == TAM_METRICS_HISTOGRAM)) {
        return TAM_EINVAL;
    }
    return write_header(w, name, help, type);
}

/* Commits the family on success; otherwise rolls the buffer back and makes the error sticky. */
static int end(struct tam_metrics_writer *w, size_t mark, int rc, const char *name,
               enum tam_metrics_type type)
{
    if (rc != TAM_OK) {
        if (w->err == TAM_OK) {
            w->out->len = mark;
            w->err = rc;
        }
        return rc;
    }
    memcpy(w->family, name, strlen(name) + 1); /* validated: <= TAM_METRICS_NAME_MAX */
    w->type = type;
    return TAM_OK;
}

int tam_metrics_counter(struct tam_metrics_writer *w, const char *name, const char *help,
                        const struct tam_metrics_label *labels, size_t n_labels, uint64_t value)
{
    size_t mark = w->out->len;
    int rc = begin(w, name, help, labels, n_labels, TAM_METRICS_COUNTER);
    if (rc == TAM_OK) {
        char v[24];
        (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)value);
        rc = write_sample(w->out, name, "", labels, n_labels, NULL, v);
    }
    return end(w, mark, rc, name, TAM_METRICS_COUNTER);
}

int tam_metrics_gauge(struct tam_metrics_writer *w, const char *name, const char *help,
                      const struct tam_metrics_label *labels, size_t n_labels, double value)
{
    size_t mark = w->out->len;
    int rc = begin(w, name, help, labels, n_labels, TAM_METRICS_GAUGE);
    if (rc == TAM_OK) {
        char v[40];
        rc = write_sample(w->out, name, "", labels, n_labels, NULL,
                          tam_metrics_format_double(value, v, sizeof(v)));
    }
    return end(w, mark, rc, name, TAM_METRICS_GAUGE);
}

static bool buckets_ok(const double *bounds, const uint64_t *counts, size_t n, uint64_t count)
{
    if (n > 0 && (bounds == NULL || counts == NULL)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (isnan(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])) ||
            (i > 0 && counts[i] < counts[i - 1]) || counts[i] > count) {
            return false;
        }
        if (isinf(bounds[i]) && (bounds[i] < 0 || counts[i] != count)) {
            return false;
        }
    }
    return true;
}

static int write_buckets(struct tam_buf *b, const char *name,
                         const struct tam_metrics_label *labels, size_t n_labels,
                         const double *bounds, const uint64_t *counts, size_t n, uint64_t count)
{
    int rc = TAM_OK;
    char le[40];
    char v[24];
    for (size_t i = 0; rc == TAM_OK && i < n; i++) {
        (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)counts[i]);
        rc = write_sample(b, name, "_bucket", labels, n_labels,
                          tam_metrics_format_double(bounds[i], le, sizeof(le)), v);
    }
    if (rc == TAM_OK && (n == 0 || !isinf(bounds[n - 1]))) {
        (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)count);
        rc = write_sample(b, name, "_bucket", labels, n_labels, "+Inf", v);
    }
    return rc;
}

int tam_metrics_histogram(struct tam_metrics_writer *w, const char *name, const char *help,
                          const struct tam_metrics_label *labels, size_t n_labels,
                          const double *bounds, const uint64_t *bucket_counts, size_t n, double sum,
                          uint64_t count)
{
    size_t mark = w->out->len;
    int rc = TAM_OK;
    if (w->err == TAM_OK && !buckets_ok(bounds, bucket_counts, n, count)) {
        rc = TAM_EINVAL;
    }
    rc = rc == TAM_OK ? begin(w, name, help, labels, n_labels, TAM_METRICS_HISTOGRAM) : rc;
    rc = rc == TAM_OK
             ? write_buckets(w->out, name, labels, n_labels, bounds, bucket_counts, n, count)
             : rc;
    char v[40];
    if (rc == TAM_OK) {
        rc = write_sample(w->out, name, "_sum", labels, n_labels, NULL,
                          tam_metrics_format_double(sum, v, sizeof(v)));
    }
    if (rc == TAM_OK) {
        (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)count);
        rc = write_sample(w->out, name, "_count", labels, n_labels, NULL, v);
    }
    return end(w, mark, rc, name, TAM_METRICS_HISTOGRAM);
}
