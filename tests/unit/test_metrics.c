#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/metrics.h"

static struct tam_buf out;
static struct tam_metrics_writer w;

static void setup(void)
{
    tam_buf_init(&out, 1u << 16);
    tam_metrics_writer_init(&w, &out);
}

static void teardown(void)
{
    tam_buf_finish(&out);
}

/* The text so far as a C string. */
static const char *text(void)
{
    static char s[1u << 16];
    size_t n = out.len < sizeof(s) - 1 ? out.len : sizeof(s) - 1;
    if (n > 0) {
        memcpy(s, out.data, n);
    }
    s[n] = '\0';
    return s;
}

TestSuite(metrics, .init = setup, .fini = teardown);

Test(metrics, counter_without_labels)
{
    cr_assert_eq(tam_metrics_counter(&w, "tam_requests_total", "Requests seen.", NULL, 0, 42),
                 TAM_OK);
    cr_assert_str_eq(text(), "# HELP tam_requests_total Requests seen.\n"
                             "# TYPE tam_requests_total counter\n"
                             "tam_requests_total 42\n");
}

Test(metrics, counter_family_with_several_label_sets)
{
    struct tam_metrics_label l[] = {{"tenant", "acme"}, {"class", "2xx"}};
    cr_assert_eq(tam_metrics_counter(&w, "tam_responses_total", "Responses.", l, 2, 7), TAM_OK);
    l[1].value = "5xx";
    cr_assert_eq(tam_metrics_counter(&w, "tam_responses_total", "Responses.", l, 2, 0), TAM_OK);
    cr_assert_eq(tam_metrics_counter(&w, "tam_responses_total", "Responses.", NULL, 0, UINT64_MAX),
                 TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "tam_up", NULL, NULL, 0, 1), TAM_OK);
    cr_assert_str_eq(text(), "# HELP tam_responses_total Responses.\n"
                             "# TYPE tam_responses_total counter\n"
                             "tam_responses_total{tenant=\"acme\",class=\"2xx\"} 7\n"
                             "tam_responses_total{tenant=\"acme\",class=\"5xx\"} 0\n"
                             "tam_responses_total 18446744073709551615\n"
                             "# TYPE tam_up gauge\n"
                             "tam_up 1\n");
    cr_assert_eq(tam_metrics_writer_error(&w), TAM_OK);
}

Test(metrics, gauge_values)
{
    struct tam_metrics_label l[] = {{"k", "v"}};
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, 0.25), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, -3), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, 0.1), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, 1e-6), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, 1.0 / 3), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, 123456789012.0), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, NAN), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, INFINITY), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, -INFINITY), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", "A gauge.", l, 1, -0.0), TAM_OK);
    cr_assert_str_eq(text(), "# HELP g A gauge.\n"
                             "# TYPE g gauge\n"
                             "g{k=\"v\"} 0.25\n"
                             "g{k=\"v\"} -3\n"
                             "g{k=\"v\"} 0.1\n"
                             "g{k=\"v\"} 1e-06\n"
                             "g{k=\"v\"} 0.3333333333333333\n"
                             "g{k=\"v\"} 123456789012\n"
                             "g{k=\"v\"} NaN\n"
                             "g{k=\"v\"} +Inf\n"
                             "g{k=\"v\"} -Inf\n"
                             "g{k=\"v\"} -0\n");
}

Test(metrics, escaping)
{
    struct tam_metrics_label l[] = {
        {"path", "a\\b\"c\nd"}, {"empty", ""}, {"utf8", "\xc3\xa9t\xc3\xa9"}};
    cr_assert_eq(
        tam_metrics_counter(&w, "ns:esc_total", "Back\\slash \"quoted\"\nsecond line", l, 3, 1),
        TAM_OK);
    cr_assert_str_eq(
        text(), "# HELP ns:esc_total Back\\\\slash \"quoted\"\\nsecond line\n"
                "# TYPE ns:esc_total counter\n"
                "ns:esc_total{path=\"a\\\\b\\\"c\\nd\",empty=\"\",utf8=\"\xc3\xa9t\xc3\xa9\"} 1\n");
}

Test(metrics, histogram_without_labels)
{
    static const double le[] = {0.005, 0.1, 1};
    static const uint64_t cum[] = {2, 5, 9};
    cr_assert_eq(
        tam_metrics_histogram(&w, "tam_job_seconds", "Job latency.", NULL, 0, le, cum, 3, 4.5, 10),
        TAM_OK);
    cr_assert_str_eq(text(), "# HELP tam_job_seconds Job latency.\n"
                             "# TYPE tam_job_seconds histogram\n"
                             "tam_job_seconds_bucket{le=\"0.005\"} 2\n"
                             "tam_job_seconds_bucket{le=\"0.1\"} 5\n"
                             "tam_job_seconds_bucket{le=\"1\"} 9\n"
                             "tam_job_seconds_bucket{le=\"+Inf\"} 10\n"
                             "tam_job_seconds_sum 4.5\n"
                             "tam_job_seconds_count 10\n");
}

Test(metrics, histogram_with_labels_and_inf_bound)
{
    /* The shape of struct tam_redis_stats: cumulative, the last bound +Inf == count. */
    static const double le[] = {0.0005, 0.25, INFINITY};
    static const uint64_t cum[] = {1, 3, 3};
    struct tam_metrics_label l[] = {{"conn", "cmd"}};
    cr_assert_eq(tam_metrics_histogram(&w, "tam_redis_seconds", "Redis latency.", l, 1, le, cum, 3,
                                       0.0125, 3),
                 TAM_OK);
    l[0].value = "block";
    cr_assert_eq(tam_metrics_histogram(&w, "tam_redis_seconds", "Redis latency.", l, 1, le,
                                       (const uint64_t[]){0, 0, 0}, 3, 0, 0),
                 TAM_OK);
    cr_assert_str_eq(text(), "# HELP tam_redis_seconds Redis latency.\n"
                             "# TYPE tam_redis_seconds histogram\n"
                             "tam_redis_seconds_bucket{conn=\"cmd\",le=\"0.0005\"} 1\n"
                             "tam_redis_seconds_bucket{conn=\"cmd\",le=\"0.25\"} 3\n"
                             "tam_redis_seconds_bucket{conn=\"cmd\",le=\"+Inf\"} 3\n"
                             "tam_redis_seconds_sum{conn=\"cmd\"} 0.0125\n"
                             "tam_redis_seconds_count{conn=\"cmd\"} 3\n"
                             "tam_redis_seconds_bucket{conn=\"block\",le=\"0.0005\"} 0\n"
                             "tam_redis_seconds_bucket{conn=\"block\",le=\"0.25\"} 0\n"
                             "tam_redis_seconds_bucket{conn=\"block\",le=\"+Inf\"} 0\n"
                             "tam_redis_seconds_sum{conn=\"block\"} 0\n"
                             "tam_redis_seconds_count{conn=\"block\"} 0\n");
}

Test(metrics, histogram_with_no_bounds)
{
    cr_assert_eq(tam_metrics_histogram(&w, "h", NULL, NULL, 0, NULL, NULL, 0, 2, 1), TAM_OK);
    cr_assert_str_eq(text(), "# TYPE h histogram\n"
                             "h_bucket{le=\"+Inf\"} 1\n"
                             "h_sum 2\n"
                             "h_count 1\n");
}

/* Each bad call returns TAM_EINVAL and leaves the text as it was. */
static void expect_invalid_in_fresh_writer(int rc)
{
    cr_assert_eq(rc, TAM_EINVAL);
    cr_assert_eq(out.len, 0, "nothing written: %s", text());
    cr_assert_eq(tam_metrics_writer_error(&w), TAM_EINVAL);
    tam_metrics_writer_init(&w, &out);
}

Test(metrics, invalid_names_rejected)
{
    static const char *const bad[] = {"", "1abc", "a-b", "a b", "é", "a.b", "a{b}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(tam_metrics_name_valid(bad[i]), false, "%s", bad[i]);
        expect_invalid_in_fresh_writer(tam_metrics_counter(&w, bad[i], "h", NULL, 0, 1));
    }
    cr_assert_eq(tam_metrics_name_valid(NULL), false);
    cr_assert(tam_metrics_name_valid("_a:b_9"));
    cr_assert(tam_metrics_name_valid(":x"));
    char longname[TAM_METRICS_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cr_assert_eq(tam_metrics_name_valid(longname), false);
    longname[TAM_METRICS_NAME_MAX] = '\0';
    cr_assert(tam_metrics_name_valid(longname));

    static const char *const badl[] = {"", "__reserved", "a:b", "9a", "a-b"};
    for (size_t i = 0; i < sizeof(badl) / sizeof(badl[0]); i++) {
        cr_assert_eq(tam_metrics_label_name_valid(badl[i]), false, "%s", badl[i]);
        struct tam_metrics_label l[] = {{badl[i], "v"}};
        expect_invalid_in_fresh_writer(tam_metrics_gauge(&w, "g", "h", l, 1, 1));
    }
    cr_assert(tam_metrics_label_name_valid("_a9"));
}

Test(metrics, invalid_labels_rejected)
{
    struct tam_metrics_label dup[] = {{"a", "1"}, {"a", "2"}};
    expect_invalid_in_fresh_writer(tam_metrics_counter(&w, "c", "h", dup, 2, 1));
    struct tam_metrics_label nullv[] = {{"a", NULL}};
    expect_invalid_in_fresh_writer(tam_metrics_counter(&w, "c", "h", nullv, 1, 1));
    expect_invalid_in_fresh_writer(tam_metrics_counter(&w, "c", "h", NULL, 1, 1));
    static const char *const bad_utf8[] = {
        "\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        struct tam_metrics_label l[] = {{"a", bad_utf8[i]}};
        expect_invalid_in_fresh_writer(tam_metrics_counter(&w, "c", "h", l, 1, 1));
    }
    struct tam_metrics_label ok4[] = {{"a", "\xf0\x9f\x98\x80"}};
    cr_assert_eq(tam_metrics_counter(&w, "c", "h", ok4, 1, 1), TAM_OK);
    tam_buf_reset(&out);
    tam_metrics_writer_init(&w, &out);
    struct tam_metrics_label le[] = {{"le", "1"}};
    expect_invalid_in_fresh_writer(tam_metrics_histogram(&w, "h", "h", le, 1, NULL, NULL, 0, 0, 0));
    cr_assert_eq(tam_metrics_counter(&w, "c", "h", le, 1, 1), TAM_OK, "le is fine elsewhere");
}

Test(metrics, invalid_histograms_rejected)
{
    const uint64_t c3[] = {1, 2, 3};
    expect_invalid_in_fresh_writer(tam_metrics_histogram(
        &w, "h", "h", NULL, 0, (const double[]){1, 1, 2}, c3, 3, 0, 3)); /* not increasing */
    expect_invalid_in_fresh_writer(
        tam_metrics_histogram(&w, "h", "h", NULL, 0, (const double[]){2, 1, 3}, c3, 3, 0, 3));
    expect_invalid_in_fresh_writer(
        tam_metrics_histogram(&w, "h", "h", NULL, 0, (const double[]){1, NAN, 3}, c3, 3, 0, 3));
    expect_invalid_in_fresh_writer(tam_metrics_histogram(
        &w, "h", "h", NULL, 0, (const double[]){1, 2, 3}, (const uint64_t[]){2, 1, 3}, 3, 0, 3));
    expect_invalid_in_fresh_writer(
        tam_metrics_histogram(&w, "h", "h", NULL, 0, (const double[]){1, 2, 3}, c3, 3, 0, 2));
    expect_invalid_in_fresh_writer(tam_metrics_histogram(
        &w, "h", "h", NULL, 0, (const double[]){1, 2, INFINITY}, c3, 3, 0, 4)); /* +Inf != count */
    expect_invalid_in_fresh_writer(tam_metrics_histogram(
        &w, "h", "h", NULL, 0, (const double[]){-INFINITY, 2, 3}, c3, 3, 0, 3));
    expect_invalid_in_fresh_writer(tam_metrics_histogram(&w, "h", "h", NULL, 0, NULL, c3, 3, 0, 3));
    cr_assert_eq(
        tam_metrics_histogram(&w, "h", "h", NULL, 0, (const double[]){-1, 0, 1}, c3, 3, -0.5, 3),
        TAM_OK, "negative bounds are allowed");
}

Test(metrics, type_change_in_one_family_rejected_and_sticky)
{
    cr_assert_eq(tam_metrics_counter(&w, "x_total", "h", NULL, 0, 1), TAM_OK);
    size_t len = out.len;
    cr_assert_eq(tam_metrics_gauge(&w, "x_total", "h", NULL, 0, 1), TAM_EINVAL);
    cr_assert_eq(out.len, len);
    cr_assert_eq(tam_metrics_writer_error(&w), TAM_EINVAL);
    /* Sticky: a good call after an error writes nothing. */
    cr_assert_eq(tam_metrics_counter(&w, "y_total", "h", NULL, 0, 1), TAM_EINVAL);
    cr_assert_eq(out.len, len);
}

Test(metrics, buffer_ceiling_rolls_back_the_sample)
{
    struct tam_buf small;
    tam_buf_init(&small, 120);
    struct tam_metrics_writer sw;
    tam_metrics_writer_init(&sw, &small);
    cr_assert_eq(tam_metrics_counter(&sw, "a_total", "A.", NULL, 0, 1), TAM_OK);
    size_t len = small.len;
    static const double le[] = {1, 2, 3};
    static const uint64_t cum[] = {1, 2, 3};
    cr_assert_eq(tam_metrics_histogram(&sw, "b", "B.", NULL, 0, le, cum, 3, 1, 3), TAM_ETOOBIG);
    cr_assert_eq(small.len, len, "the partial histogram was taken back");
    cr_assert_eq(memcmp(small.data, "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n", len),
                 0);
    cr_assert_eq(tam_metrics_writer_error(&sw), TAM_ETOOBIG);
    tam_buf_finish(&small);
}

Test(metrics, appends_after_existing_text)
{
    cr_assert_eq(tam_buf_append_str(&out, "# preamble\n"), TAM_OK);
    cr_assert_eq(tam_metrics_gauge(&w, "g", NULL, NULL, 0, 2), TAM_OK);
    cr_assert_str_eq(text(), "# preamble\n# TYPE g gauge\ng 2\n");
}

Test(metrics, allocation_failures_are_clean)
{
    struct tam_metrics_label l[] = {{"k", "v"}};
    static const double le[] = {0.1, 1};
    static const uint64_t cum[] = {1, 2};
    for (long n = 0; n < 10; n++) {
        struct tam_buf b;
        tam_buf_init(&b, 1u << 16);
        struct tam_metrics_writer mw;
        tam_metrics_writer_init(&mw, &b);
        tam_alloc_fail_after(n);
        int rc = tam_metrics_histogram(&mw, "h", "H.", l, 1, le, cum, 2, 1.5, 2);
        tam_alloc_fail_after(-1);
        cr_assert(rc == TAM_OK || rc == TAM_ENOMEM);
        if (rc != TAM_OK) {
            cr_assert_eq(b.len, 0);
        }
        tam_buf_finish(&b);
    }
}

Test(metrics, format_double)
{
    char s[40];
    cr_assert_str_eq(tam_metrics_format_double(1, s, sizeof(s)), "1");
    cr_assert_str_eq(tam_metrics_format_double(0.0005, s, sizeof(s)), "0.0005");
    cr_assert_str_eq(tam_metrics_format_double(1e300, s, sizeof(s)), "1e+300");
    cr_assert_str_eq(tam_metrics_format_double(9007199254740993.0, s, sizeof(s)),
                     "9007199254740992");
    cr_assert_str_eq(tam_metrics_format_double(0.1 + 0.2, s, sizeof(s)), "0.30000000000000004");
}
