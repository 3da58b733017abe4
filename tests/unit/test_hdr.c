/* Tests for the HDR-style latency histogram (tam/hdr.h). */
#include <criterion/criterion.h>
#include <math.h>

#include "tam/err.h"
#include "tam/hdr.h"

static struct tam_hdr *mk(uint64_t highest, int digits)
{
    struct tam_hdr *h = NULL;
    cr_assert_eq(tam_hdr_create(highest, digits, &h), TAM_OK);
    cr_assert_not_null(h);
    return h;
}

static void assert_within(uint64_t got, double want, double rel)
{
    double err = fabs((double)got - want) / want;
    cr_assert(err <= rel, "got %llu want %.1f (rel err %.5f > %.5f)", (unsigned long long)got, want,
              err, rel);
}

Test(hdr, create_rejects_bad_parameters)
{
    struct tam_hdr *h = (struct tam_hdr *)1;
    cr_assert_eq(tam_hdr_create(1000, 0, &h), TAM_EINVAL);
    cr_assert_null(h);
    cr_assert_eq(tam_hdr_create(1000, 6, &h), TAM_EINVAL);
    cr_assert_eq(tam_hdr_create(1, 3, &h), TAM_EINVAL);
    cr_assert_eq(tam_hdr_create((1ULL << 62) + 1, 3, &h), TAM_EINVAL);
    tam_hdr_destroy(NULL);
}

Test(hdr, empty)
{
    struct tam_hdr *h = mk(TAM_HDR_DEFAULT_MAX, 3);
    cr_assert_eq(tam_hdr_count(h), 0);
    cr_assert_eq(tam_hdr_min(h), 0);
    cr_assert_eq(tam_hdr_max(h), 0);
    cr_assert_eq(tam_hdr_mean(h), 0.0);
    cr_assert_eq(tam_hdr_value_at_percentile(h, 50.0), 0);
    cr_assert_eq(tam_hdr_value_at_percentile(h, 99.9), 0);
    cr_assert_eq(tam_hdr_saturated(h), 0);
    tam_hdr_destroy(h);
}

Test(hdr, single_value_is_exact)
{
    struct tam_hdr *h = mk(TAM_HDR_DEFAULT_MAX, 3);
    tam_hdr_record(h, 123457);
    cr_assert_eq(tam_hdr_count(h), 1);
    cr_assert_eq(tam_hdr_min(h), 123457);
    cr_assert_eq(tam_hdr_max(h), 123457);
    cr_assert_eq(tam_hdr_mean(h), 123457.0);
    const double ps[] = {0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 100.0};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        cr_assert_eq(tam_hdr_value_at_percentile(h, ps[i]), 123457);
    }
    tam_hdr_destroy(h);
}

Test(hdr, uniform_1_to_10000)
{
    struct tam_hdr *h = mk(60 * TAM_HDR_US_PER_S, 3);
    for (uint64_t v = 1; v <= 10000; v++) {
        tam_hdr_record(h, v);
    }
    cr_assert_eq(tam_hdr_count(h), 10000);
    cr_assert_eq(tam_hdr_min(h), 1);
    cr_assert_eq(tam_hdr_max(h), 10000);
    cr_assert_float_eq(tam_hdr_mean(h), 5000.5, 1e-9);
    assert_within(tam_hdr_value_at_percentile(h, 50.0), 5000.0, 0.001);
    assert_within(tam_hdr_value_at_percentile(h, 90.0), 9000.0, 0.001);
    assert_within(tam_hdr_value_at_percentile(h, 99.0), 9900.0, 0.001);
    assert_within(tam_hdr_value_at_percentile(h, 99.9), 9990.0, 0.001);
    cr_assert_eq(tam_hdr_value_at_percentile(h, 100.0), 10000);
    /* Never below the exact answer: the reported value is the bucket's highest member. */
    cr_assert_geq(tam_hdr_value_at_percentile(h, 50.0), 5000);
    tam_hdr_destroy(h);
}

Test(hdr, three_significant_digits_over_whole_range)
{
    /* 1 us .. 60 s in microseconds, and the same range in nanoseconds. */
    const uint64_t tops[] = {60 * TAM_HDR_US_PER_S, 60ULL * 1000 * 1000 * 1000};
    for (size_t t = 0; t < 2; t++) {
        struct tam_hdr *h = mk(tops[t], 3);
        for (uint64_t v = 1; v <= tops[t]; v = v * 3 + 1) {
            uint64_t lo = tam_hdr_lowest_equivalent(h, v);
            uint64_t hi = tam_hdr_highest_equivalent(h, v);
            cr_assert(lo <= v && v <= hi);
            cr_assert((double)(hi - lo) <= (double)v / 1000.0, "v=%llu width=%llu",
                      (unsigned long long)v, (unsigned long long)(hi - lo + 1));
            tam_hdr_reset(h);
            tam_hdr_record(h, v);
            tam_hdr_record(h, v + 1);
            cr_assert_eq(tam_hdr_saturated(h), 0);
        }
        tam_hdr_destroy(h);
    }
}

Test(hdr, exact_below_2048)
{
    struct tam_hdr *h = mk(10000, 3);
    for (uint64_t v = 0; v < 2048; v++) {
        cr_assert_eq(tam_hdr_lowest_equivalent(h, v), v);
        cr_assert_eq(tam_hdr_highest_equivalent(h, v), v);
    }
    tam_hdr_destroy(h);
}

Test(hdr, saturates_above_highest)
{
    struct tam_hdr *h = mk(1000000, 3);
    tam_hdr_record(h, 10);
    tam_hdr_record(h, 5000000);
    cr_assert_eq(tam_hdr_saturated(h), 1);
    cr_assert_eq(tam_hdr_max(h), 5000000);
    uint64_t p100 = tam_hdr_value_at_percentile(h, 100.0);
    cr_assert_geq(p100, 1000000 - 1000);
    cr_assert_leq(p100, tam_hdr_highest_equivalent(h, 1000000));
    tam_hdr_destroy(h);
}

Test(hdr, merge_equals_recording_all)
{
    struct tam_hdr *a = mk(60 * TAM_HDR_US_PER_S, 3);
    struct tam_hdr *b = mk(60 * TAM_HDR_US_PER_S, 3);
    struct tam_hdr *all = mk(60 * TAM_HDR_US_PER_S, 3);
    uint64_t x = 88172645463325252ULL; /* xorshift64: deterministic pseudo-random values */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t v = 1 + x % 5000000;
        tam_hdr_record((i & 1) ? a : b, v);
        tam_hdr_record(all, v);
    }
    cr_assert_eq(tam_hdr_merge(a, b), TAM_OK);
    cr_assert_eq(tam_hdr_count(a), tam_hdr_count(all));
    cr_assert_eq(tam_hdr_min(a), tam_hdr_min(all));
    cr_assert_eq(tam_hdr_max(a), tam_hdr_max(all));
    cr_assert_float_eq(tam_hdr_mean(a), tam_hdr_mean(all), 1e-6);
    const double ps[] = {1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        cr_assert_eq(tam_hdr_value_at_percentile(a, ps[i]),
                     tam_hdr_value_at_percentile(all, ps[i]));
    }
    /* Merging an empty histogram changes nothing. */
    tam_hdr_reset(b);
    cr_assert_eq(tam_hdr_merge(a, b), TAM_OK);
    cr_assert_eq(tam_hdr_count(a), 20000);
    tam_hdr_destroy(a);
    tam_hdr_destroy(b);
    tam_hdr_destroy(all);
}

Test(hdr, merge_different_layouts)
{
    struct tam_hdr *a = mk(60 * TAM_HDR_US_PER_S, 3);
    struct tam_hdr *b = mk(1000000, 2);
    for (uint64_t v = 1; v <= 1000; v++) {
        tam_hdr_record(b, v * 100);
    }
    cr_assert_eq(tam_hdr_merge(a, b), TAM_OK);
    cr_assert_eq(tam_hdr_count(a), 1000);
    cr_assert_eq(tam_hdr_min(a), 100);
    cr_assert_eq(tam_hdr_max(a), 100000);
    cr_assert_float_eq(tam_hdr_mean(a), 50050.0, 1e-6);
    assert_within(tam_hdr_value_at_percentile(a, 50.0), 50000.0, 0.01);
    tam_hdr_destroy(a);
    tam_hdr_destroy(b);
}

Test(hdr, percentile_out_of_range_is_clamped)
{
    struct tam_hdr *h = mk(100000, 3);
    tam_hdr_record(h, 10);
    tam_hdr_record(h, 20);
    cr_assert_eq(tam_hdr_value_at_percentile(h, -5.0), 10);
    cr_assert_eq(tam_hdr_value_at_percentile(h, NAN), 10);
    cr_assert_eq(tam_hdr_value_at_percentile(h, 250.0), 20);
    tam_hdr_record_n(h, 30, 0);
    cr_assert_eq(tam_hdr_count(h), 2);
    cr_assert_gt(tam_hdr_memory_size(h), 2048 * sizeof(uint64_t));
    tam_hdr_destroy(h);
}
