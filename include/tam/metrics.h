/*
 * Prometheus text exposition format 0.0.4, appended to a struct tam_buf. Pure: no globals,
 * no clock (no timestamps are written), no I/O.
 *
 *   struct tam_metrics_writer w;
 *   tam_metrics_writer_init(&w, &buf);
 *   struct tam_metrics_label l[] = {{"class", "2xx"}};
 *   tam_metrics_counter(&w, "tam_http_responses_total", "Responses sent.", l, 1, 42);
 *   l[0].value = "5xx";
 *   tam_metrics_counter(&w, "tam_http_responses_total", "Responses sent.", l, 1, 3);
 *   int err = tam_metrics_writer_error(&w); // or check every return value
 *
 * produces
 *   # HELP tam_http_responses_total Responses sent.
 *   # TYPE tam_http_responses_total counter
 *   tam_http_responses_total{class="2xx"} 42
 *   tam_http_responses_total{class="5xx"} 3
 *
 * Families. The "# HELP" and "# TYPE" lines are written when a sample's name differs from the
 * previous call's: the writer remembers only the last family. So the caller writes all
 * samples of one family one after another (a family split by another one would appear twice,
 * which Prometheus rejects). Calling the same name again with another type is TAM_EINVAL.
 *
 * Validation. Metric names match [a-zA-Z_:][a-zA-Z0-9_:]* (at most TAM_METRICS_NAME_MAX
 * bytes); label names [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", not repeated in one set,
 * and not "le" on a histogram; label values must be valid UTF-8. Label values are escaped
 * (\\, \", \n), HELP text too (\\, \n). help may be NULL: no HELP line.
 *
 * Numbers: counters are uint64_t (exact); gauges, sums and bucket bounds are doubles written
 * in the shortest form that reads back exactly ("0.25", "1e-06", "3"), or NaN, +Inf, -Inf.
 * The process must use the "C" numeric locale (never calling setlocale does).
 *
 * Errors. Every call returns TAM_OK, TAM_EINVAL (bad name, label, histogram) or the buffer's
 * error (TAM_ETOOBIG at its ceiling, TAM_ENOMEM). A failed call leaves the buffer as it was
 * before the call, so the text stays well-formed; the first error is also kept in the writer
 * (sticky: later calls do nothing and return it).
 */
#ifndef TAM_METRICS_H
#define TAM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"

#define TAM_METRICS_NAME_MAX 200

/* One label: both strings borrowed for the duration of the call. */
struct tam_metrics_label {
    const char *name;
    const char *value;
};

enum tam_metrics_type {
    TAM_METRICS_NONE = 0,
    TAM_METRICS_COUNTER,
    TAM_METRICS_GAUGE,
    TAM_METRICS_HISTOGRAM,
};

struct tam_metrics_writer {
    struct tam_buf *out;                   /* borrowed */
    char family[TAM_METRICS_NAME_MAX + 1]; /* last family written, "" at first */
    enum tam_metrics_type type;            /* its type */
    int err;                               /* first error, sticky */
};

/* out is borrowed and must outlive the writer; text is appended after what it holds. */
void tam_metrics_writer_init(struct tam_metrics_writer *w, struct tam_buf *out);
/* The first error of any call so far, TAM_OK if none. */
int tam_metrics_writer_error(const struct tam_metrics_writer *w);

/* labels: n_labels entries (labels may be NULL when n_labels is 0). */
TAM_MUST_CHECK int tam_metrics_counter(struct tam_metrics_writer *w, const char *name,
                                       const char *help, const struct tam_metrics_label *labels,
                                       size_t n_labels, uint64_t value);
TAM_MUST_CHECK int tam_metrics_gauge(struct tam_metrics_writer *w, const char *name,
                                     const char *help, const struct tam_metrics_label *labels,
                                     size_t n_labels, double value);

/*
 * A histogram: name_bucket{...,le="B"} for each bound, name_bucket{...,le="+Inf"}, name_sum,
 * name_count. bounds: n strictly increasing upper bounds (not NaN); the last may be +INFINITY,
 * otherwise a +Inf bucket with `count` is added. bucket_counts: n CUMULATIVE counts (as in
 * Prometheus and struct tam_redis_stats), non-decreasing and <= count; the count of a
 * +INFINITY bound must equal count. n may be 0 (only the +Inf bucket).
 */
TAM_MUST_CHECK int tam_metrics_histogram(struct tam_metrics_writer *w, const char *name,
                                         const char *help, const struct tam_metrics_label *labels,
                                         size_t n_labels, const double *bounds,
                                         const uint64_t *bucket_counts, size_t n, double sum,
                                         uint64_t count);

/* Name checks, exposed for callers that build names: [a-zA-Z_:][a-zA-Z0-9_:]* and
 * [a-zA-Z_][a-zA-Z0-9_]* (not "__..."). */
bool tam_metrics_name_valid(const char *name);
bool tam_metrics_label_name_valid(const char *name);

/* Writes v as the exposition format does into out (>= 32 bytes); returns out. */
const char *tam_metrics_format_double(double v, char *out, size_t outsz);

#endif
