/*
 * HDR-style histogram: bucket b (b >= 1) holds values in [2^(b+M-1), 2^(b+M)) split into
 * 2^(M-1) equal sub-buckets, where 2^M is the smallest power of two >= 2 * 10^digits, so
 * every bucket keeps `digits` significant decimal digits. Bucket 0 holds [0, 2^M) at unit
 * resolution. The counters are one flat array: index = ((b + 1) << (M - 1)) + sub - 2^(M-1).
 */
#include "tam/hdr.h"

#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"

/* An upper bound on the counter array (128 MiB of counters), so a typo cannot eat memory. */
#define MAX_COUNTS (1u << 24)

struct tam_hdr {
    uint64_t highest;
    int sig_digits;
    unsigned half_mag;   /* log2 of the sub-buckets per bucket (M - 1) */
    uint64_t half_count; /* 2^(M-1) */
    uint64_t sub_mask;   /* 2^M - 1 */
    size_t counts_len;
    uint64_t total;
    uint64_t saturated;
    uint64_t min;
    uint64_t max;
    double sum;
    uint64_t counts[];
};

static unsigned pow2_ceil_log(uint64_t x)
{
    /* Bits needed to represent x (x > 0). */
    return 64u - (unsigned)__builtin_clzll(x);
}

static unsigned bucket_of(const struct tam_hdr *h, uint64_t v)
{
    return pow2_ceil_log(v | h->sub_mask) - h->half_mag - 1u;
}

static size_t index_of(const struct tam_hdr *h, uint64_t v)
{
    unsigned b = bucket_of(h, v);
    uint64_t sub = v >> b;
    return (size_t)((((uint64_t)b + 1u) << h->half_mag) + (sub - h->half_count));
}

static uint64_t value_of(const struct tam_hdr *h, size_t i)
{
    uint64_t b = (uint64_t)(i >> h->half_mag);
    uint64_t sub = ((uint64_t)i & (h->half_count - 1u)) + h->half_count;
    if (b == 0) {
        return sub - h->half_count;
    }
    return sub << (b - 1u);
}

int tam_hdr_create(uint64_t highest, int sig_digits, struct tam_hdr **out)
{
    *out = NULL;
    if (sig_digits < 1 || sig_digits > 5 || highest < 2 || highest > (1ULL << 62)) {
        return TAM_EINVAL;
    }
    uint64_t largest_unit = 2;
    for (int i = 0; i < sig_digits; i++) {
        largest_unit *= 10;
    }
    unsigned mag = pow2_ceil_log(largest_unit - 1u); /* 2^mag >= largest_unit */
    uint64_t sub_count = 1ULL << mag;
    size_t buckets = 1;
    for (uint64_t untrackable = sub_count; untrackable <= highest; untrackable <<= 1) {
        buckets++;
    }
    size_t counts_len = (buckets + 1u) * (size_t)(sub_count / 2u);
    if (counts_len > MAX_COUNTS) {
        return TAM_EINVAL;
    }
    struct tam_hdr *h = tam_calloc(1, sizeof(*h) + counts_len * sizeof(uint64_t));
    if (h == NULL) {
        return TAM_ENOMEM;
    }
    h->highest = highest;
    h->sig_digits = sig_digits;
    h->half_mag = mag - 1u;
    h->half_count = sub_count / 2u;
    h->sub_mask = sub_count - 1u;
    h->counts_len = counts_len;
    h->min = UINT64_MAX;
    *out = h;
    return TAM_OK;
}

void tam_hdr_destroy(struct tam_hdr *h)
{
    tam_free(h);
}

void tam_hdr_reset(struct tam_hdr *h)
{
    memset(h->counts, 0, h->counts_len * sizeof(uint64_t));
    h->total = 0;
    h->saturated = 0;
    h->min = UINT64_MAX;
    h->max = 0;
    h->sum = 0.0;
}

void tam_hdr_record_n(struct tam_hdr *h, uint64_t value, uint64_t count)
{
    if (count == 0) {
        return;
    }
    uint64_t v = value;
    if (v > h->highest) {
        v = h->highest;
        h->saturated += count;
    }
    h->counts[index_of(h, v)] += count;
    h->total += count;
    h->sum += (double)value * (double)count;
    h->min = value < h->min ? value : h->min;
    h->max = value > h->max ? value : h->max;
}

void tam_hdr_record(struct tam_hdr *h, uint64_t value)
{
    tam_hdr_record_n(h, value, 1);
}

int tam_hdr_merge(struct tam_hdr *dst, const struct tam_hdr *src)
{
    if (src->total == 0) {
        return TAM_OK;
    }
    uint64_t min = dst->min < src->min ? dst->min : src->min;
    uint64_t max = dst->max > src->max ? dst->max : src->max;
    if (dst->counts_len == src->counts_len && dst->half_mag == src->half_mag) {
        for (size_t i = 0; i < src->counts_len; i++) {
            dst->counts[i] += src->counts[i];
        }
        dst->total += src->total;
        dst->saturated += src->saturated;
        dst->sum += src->sum;
    } else {
        /* Different layouts: re-record at dst's precision; the exact sum is kept below. */
        double sum = dst->sum + src->sum;
        for (size_t i = 0; i < src->counts_len; i++) {
            if (src->counts[i] != 0) {
                tam_hdr_record_n(dst, value_of(src, i), src->counts[i]);
            }
        }
        dst->sum = sum;
    }
    dst->min = min;
    dst->max = max;
    return TAM_OK;
}

uint64_t tam_hdr_count(const struct tam_hdr *h)
{
    return h->total;
}

uint64_t tam_hdr_saturated(const struct tam_hdr *h)
{
    return h->saturated;
}

uint64_t tam_hdr_min(const struct tam_hdr *h)
{
    return h->total == 0 ? 0 : h->min;
}

uint64_t tam_hdr_max(const struct tam_hdr *h)
{
    return h->max;
}

double tam_hdr_mean(const struct tam_hdr *h)
{
    return h->total == 0 ? 0.0 : h->sum / (double)h->total;
}

uint64_t tam_hdr_lowest_equivalent(const struct tam_hdr *h, uint64_t v)
{
    unsigned b = bucket_of(h, v);
    return (v >> b) << b;
}

uint64_t tam_hdr_highest_equivalent(const struct tam_hdr *h, uint64_t v)
{
    unsigned b = bucket_of(h, v);
    uint64_t low = (v >> b) << b;
    uint64_t width = 1ULL << b;
    return low > UINT64_MAX - (width - 1u) ? UINT64_MAX : low + (width - 1u);
}

uint64_t tam_hdr_value_at_percentile(const struct tam_hdr *h, double p)
{
    if (h->total == 0) {
        return 0;
    }
    if (!(p > 0.0)) { /* also catches NaN */
        p = 0.0;
    }
    p = p > 100.0 ? 100.0 : p;
    double want = p / 100.0 * (double)h->total + 0.5;
    uint64_t rank = want >= (double)h->total ? h->total : (uint64_t)want;
    rank = rank == 0 ? 1 : rank;
    uint64_t seen = 0;
    uint64_t v = h->max;
    for (size_t i = 0; i < h->counts_len; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            v = tam_hdr_highest_equivalent(h, value_of(h, i));
            break;
        }
    }
    v = v < h->min ? h->min : v;
    return v > h->max ? h->max : v;
}

size_t tam_hdr_memory_size(const struct tam_hdr *h)
{
    return sizeof(*h) + h->counts_len * sizeof(uint64_t);
}
