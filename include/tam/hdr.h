/*
 * An HDR-style latency histogram (after HdrHistogram): log-linear buckets that keep a
 * configured number of significant decimal digits over the whole range [0, highest].
 *
 * Units are the caller's (tam-agent records microseconds; nanoseconds work as well).
 * All memory is allocated once by tam_hdr_create(); recording never allocates, never fails
 * and costs a few integer operations. Pure code: no I/O, no clock, no globals.
 *
 * Sizes with 3 significant digits: highest = 1 hour in microseconds (3.6e9) takes 23 x 1024
 * counters, 184 KiB; 60 s in microseconds 136 KiB; 60 s in nanoseconds 216 KiB.
 *
 * Not thread-safe: use one histogram per thread and tam_hdr_merge() them.
 */
#ifndef TAM_HDR_H
#define TAM_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/common.h"

/* Convenient bounds for latencies recorded in microseconds. */
#define TAM_HDR_US_PER_S    1000000ULL
#define TAM_HDR_DEFAULT_MAX (3600ULL * TAM_HDR_US_PER_S) /* one hour in us */
#define TAM_HDR_DEFAULT_SIG 3

struct tam_hdr; /* opaque */

/*
 * Creates a histogram covering [0, highest] with sig_digits significant decimal digits
 * (1..5). highest must be >= 2 and at most 2^62. Returns TAM_OK and *out (owned, free with
 * tam_hdr_destroy), TAM_EINVAL for bad parameters or TAM_ENOMEM.
 */
TAM_MUST_CHECK int tam_hdr_create(uint64_t highest, int sig_digits, struct tam_hdr **out);
void tam_hdr_destroy(struct tam_hdr *h); /* NULL-safe */
void tam_hdr_reset(struct tam_hdr *h);   /* forgets every value, keeps the layout */

/*
 * Records one value (or `count` equal values). A value above `highest` is counted in the
 * top bucket (so percentiles saturate at `highest`) and in tam_hdr_saturated(); min, max
 * and mean still use the exact value.
 */
void tam_hdr_record(struct tam_hdr *h, uint64_t value);
void tam_hdr_record_n(struct tam_hdr *h, uint64_t value, uint64_t count);

/*
 * Adds every value recorded in src to dst (src is unchanged). When both have the same
 * layout (highest and sig_digits) the counters are added exactly; otherwise each src bucket
 * is re-recorded at its lowest equivalent value, at dst's precision. Returns TAM_OK.
 */
int tam_hdr_merge(struct tam_hdr *dst, const struct tam_hdr *src);

uint64_t tam_hdr_count(const struct tam_hdr *h);
uint64_t tam_hdr_saturated(const struct tam_hdr *h); /* values recorded above highest */
uint64_t tam_hdr_min(const struct tam_hdr *h);       /* 0 when empty */
uint64_t tam_hdr_max(const struct tam_hdr *h);       /* 0 when empty */
double tam_hdr_mean(const struct tam_hdr *h);        /* exact; 0.0 when empty */

/*
 * The value at percentile p (0..100, clamped): the highest value equivalent (within the
 * configured precision) to the smallest recorded value v such that at least p% of all
 * recorded values are <= v. The result is clamped to [min, max], so a single recorded
 * value is returned exactly and p=100 returns max. 0 when empty.
 */
uint64_t tam_hdr_value_at_percentile(const struct tam_hdr *h, double p);

/*
 * Values considered equal at this histogram's precision: the width of v's bucket and its
 * lowest and highest members. Exposed for tests and for printing the resolution.
 */
uint64_t tam_hdr_lowest_equivalent(const struct tam_hdr *h, uint64_t v);
uint64_t tam_hdr_highest_equivalent(const struct tam_hdr *h, uint64_t v);

/* Bytes held by the histogram (struct + counters), for capacity planning. */
size_t tam_hdr_memory_size(const struct tam_hdr *h);

#endif
