/*
 * The load report: a table for people, or one JSON object (--json) for scripts.
 * Rates are computed over the measurement window; sessions that end during the
 * drain after it are in the totals but not in the rates.
 */
#include <jansson.h>
#include <stdio.h>

#include "tool.h"

static double per_s(uint64_t n, double s)
{
    return s > 0 ? (double)n / s : 0.0;
}

static double ms(uint64_t us)
{
    return (double)us / 1000.0;
}

static void lat_row(FILE *out, const char *name, const struct tam_hdr *h)
{
    uint64_t n = tam_hdr_count(h);
    fprintf(out, "  %-16s %9llu %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, (unsigned long long)n,
            ms(tam_hdr_value_at_percentile(h, 50)), ms(tam_hdr_value_at_percentile(h, 90)),
            ms(tam_hdr_value_at_percentile(h, 99)), ms(tam_hdr_value_at_percentile(h, 99.9)),
            ms(tam_hdr_max(h)));
}

void ag_report_text(FILE *out, const struct ag_fleet *f, const struct ag_run_info *ri)
{
    const struct ag_opts *o = f->o;
    const struct ag_stats *st = &f->stats;
    fprintf(out, "tam-agent load  %s\n", o->url);
    fprintf(out,
            "  devices %zu  concurrency %u  rate %s  numbering %s  window %.2fs  total %.2fs\n",
            f->ndev, ri->concurrency, o->rate > 0 ? "open loop" : "closed loop",
            tam_teep_numbering_name(f->prof.numbering), ri->window_s, ri->total_s);
    if (o->rate > 0) {
        fprintf(out, "  target rate %.1f sessions/s, missed starts %llu\n", o->rate,
                (unsigned long long)st->rate_missed);
    }
    fprintf(out, "\n  sessions   %llu started, %llu ok, %llu failed\n",
            (unsigned long long)st->sessions_started, (unsigned long long)st->sessions_ok,
            (unsigned long long)st->sessions_failed);
    fprintf(out, "  throughput %.1f sessions/s, %.1f messages/s (%llu messages, %llu retries)\n",
            per_s(ri->win_sessions, ri->window_s), per_s(ri->win_messages, ri->window_s),
            (unsigned long long)st->messages, (unsigned long long)st->retries);
    fprintf(out,
            "  updates    %llu (installed %llu, deleted %llu, unlinked %llu, manifests "
            "failed %llu)\n",
            (unsigned long long)st->updates, (unsigned long long)st->installed,
            (unsigned long long)st->deleted, (unsigned long long)st->unlinked,
            (unsigned long long)st->manifests_failed);
    fprintf(out, "  http       %llu connections opened, %llu reused\n",
            (unsigned long long)ri->http.conns_opened, (unsigned long long)ri->http.conns_reused);
    fprintf(out, "  client cpu %.2fs in the window (%.0f%% of one core)\n", ri->cpu_s,
            ri->window_s > 0 ? 100 * ri->cpu_s / ri->window_s : 0.0);
    fprintf(out,
            "\n  latency ms         count       p50       p90       p99     p99.9       max\n");
    for (int i = 0; i < AG_LAT_N; i++) {
        lat_row(out, ag_lat_name((enum ag_lat)i), st->lat[i]);
    }
    fprintf(out, "\n  errors\n");
    bool any = false;
    for (int i = 1; i < AG_ERR_N; i++) {
        if (st->errors[i] > 0) {
            fprintf(out, "  %-20s %llu\n", ag_err_name((enum ag_err)i),
                    (unsigned long long)st->errors[i]);
            any = true;
        }
    }
    if (!any) {
        fprintf(out, "  (none)\n");
    }
    fflush(out);
}

static json_t *lat_json(const struct tam_hdr *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)tam_hdr_count(h),
                     "p50", ms(tam_hdr_value_at_percentile(h, 50)), "p90",
                     ms(tam_hdr_value_at_percentile(h, 90)), "p99",
                     ms(tam_hdr_value_at_percentile(h, 99)), "p999",
                     ms(tam_hdr_value_at_percentile(h, 99.9)), "max", ms(tam_hdr_max(h)), "mean",
                     tam_hdr_mean(h) / 1000.0);
}

static json_t *counts_json(const struct ag_fleet *f, const struct ag_run_info *ri)
{
    const struct ag_stats *st = &f->stats;
    uint64_t hits = 0, misses = 0;
    tam_agent_vcache_stats(f->vcache, &hits, &misses);
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "updates",
        (json_int_t)st->updates, "installed", (json_int_t)st->installed, "deleted",
        (json_int_t)st->deleted, "unlinked", (json_int_t)st->unlinked, "manifests_failed",
        (json_int_t)st->manifests_failed, "retries", (json_int_t)st->retries, "rate_missed",
        (json_int_t)st->rate_missed, "conns_opened", (json_int_t)ri->http.conns_opened,
        "conns_reused", (json_int_t)ri->http.conns_reused, "conns_closed",
        (json_int_t)ri->http.conns_closed, "stale_retries", (json_int_t)ri->http.retries,
        "verify_cache_hits", (json_int_t)hits, "verify_cache_misses", (json_int_t)misses,
        "messages", (json_int_t)st->messages);
}

int ag_report_json(FILE *out, const struct ag_fleet *f, const struct ag_run_info *ri)
{
    const struct ag_opts *o = f->o;
    const struct ag_stats *st = &f->stats;
    json_t *lat = json_object();
    json_t *errs = json_object();
    for (int i = 0; i < AG_LAT_N; i++) {
        json_object_set_new(lat, ag_lat_name((enum ag_lat)i), lat_json(st->lat[i]));
    }
    for (int i = 1; i < AG_ERR_N; i++) {
        if (st->errors[i] > 0) {
            json_object_set_new(errs, ag_err_name((enum ag_err)i),
                                json_integer((json_int_t)st->errors[i]));
        }
    }
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:I, s:i, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:o, s:o, s:o}",
        "mode", "load", "url", o->url, "numbering", tam_teep_numbering_name(f->prof.numbering),
        "devices", (json_int_t)f->ndev, "concurrency", (int)ri->concurrency, "rate", o->rate,
        "window_s", ri->window_s, "total_s", ri->total_s, "cpu_s", ri->cpu_s, "sessions",
        (json_int_t)st->sessions_started, "sessions_ok", (json_int_t)st->sessions_ok,
        "sessions_failed", (json_int_t)st->sessions_failed, "sessions_per_s",
        per_s(ri->win_sessions, ri->window_s), "messages_per_s",
        per_s(ri->win_messages, ri->window_s), "latency_ms", lat, "errors", errs, "counts",
        counts_json(f, ri));
    if (root == NULL) {
        return -1;
    }
    int rc = json_dumpf(root, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    fflush(out);
    json_decref(root);
    return rc;
}
