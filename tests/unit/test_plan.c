/* Update planning: one test per rule of include/tam/plan.h, combinations, bounds, determinism. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/err.h"
#include "tam/plan.h"
#include "tam/suit.h"
#include "tam/teep.h"
#include "testutil.h"

#define MAXC 2048 /* catalogue entries */
#define MAXR 64   /* rules */
#define MAXI 64   /* install / remove entries per rule */
#define MAXD 1024 /* recorded, tc-list, requested, unneeded entries */

static struct tam_arena g_arena;

static struct tam_plan_manifest g_cat[MAXC];
static struct tam_teep_component_id g_deps[MAXC][TAM_PLAN_MAX_DEPS];
static uint32_t g_ncat;

static struct tam_plan_rule g_rules[MAXR];
static struct tam_plan_install g_install[MAXR][MAXI];
static struct tam_teep_component_id g_remove[MAXR][MAXI];
static struct tam_bytes g_rlabels[MAXR][8];
static struct tam_plan_policy g_policy;

static struct tam_plan_installed g_rec[MAXD];
static struct tam_bytes g_dlabels[8];
static struct tam_plan_device g_dev;

static struct tam_teep_tc g_tc[MAXD];
static struct tam_teep_req_tc g_req[MAXD];
static struct tam_teep_component_id g_unneeded[MAXD];
static struct tam_plan_query g_q;

static struct tam_plan g_plan;
static char g_names[MAXC][24];

static void setup(void)
{
    tam_arena_init(&g_arena, 4096, 256u << 20);
    g_policy.rules = g_rules;
    g_dev.installed = g_rec;
    g_dev.labels = g_dlabels;
    g_q.tc_list = g_tc;
    g_q.requested = g_req;
    g_q.unneeded = g_unneeded;
}

static void teardown(void)
{
    tam_arena_finish(&g_arena);
}

TestSuite(plan, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ builders */

static struct tam_bytes str(const char *s)
{
    return tam_bytes_of(s, strlen(s));
}

/* A component id [name] and its manifest component id [name, 'suit'] (TEEP convention). */
static struct tam_teep_component_id comp(const char *name)
{
    struct tam_teep_component_id id;
    memset(&id, 0, sizeof(id));
    id.n = 1;
    id.seg[0] = str(name);
    return id;
}

static struct tam_teep_component_id mid(const char *name)
{
    struct tam_teep_component_id id = comp(name);
    id.n = 2;
    id.seg[1] = str("suit");
    return id;
}

static void digest_of(const char *name, uint64_t seq, uint8_t *d)
{
    uint64_t h = 1469598103934665603u;
    for (const char *p = name; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211u;
    }
    memset(d, 0, TAM_PLAN_DIGEST_LEN);
    for (int i = 0; i < 8; i++) {
        d[i] = (uint8_t)(h >> (8 * i));
        d[8 + i] = (uint8_t)(seq >> (8 * i));
    }
}

static struct tam_plan_manifest *cat(const char *name, uint64_t seq)
{
    cr_assert_lt(g_ncat, MAXC);
    struct tam_plan_manifest *m = &g_cat[g_ncat];
    m->component = comp(name);
    m->manifest_id = mid(name);
    m->sequence = seq;
    digest_of(name, seq, m->digest);
    m->user = m;
    m->deps = g_deps[g_ncat];
    g_ncat++;
    return m;
}

static void dep(struct tam_plan_manifest *m, const char *name)
{
    cr_assert_lt(m->n_deps, TAM_PLAN_MAX_DEPS);
    g_deps[m - g_cat][m->n_deps++] = mid(name);
}

static struct tam_plan_rule *rule(enum tam_plan_match match)
{
    cr_assert_lt(g_policy.n_rules, MAXR);
    uint32_t i = g_policy.n_rules++;
    struct tam_plan_rule *r = &g_rules[i];
    r->match = match;
    r->install = g_install[i];
    r->remove = g_remove[i];
    r->labels = g_rlabels[i];
    return r;
}

static void rlabel(struct tam_plan_rule *r, const char *label)
{
    ((struct tam_bytes *)r->labels)[r->n_labels++] = str(label);
}

static void install_min(struct tam_plan_rule *r, const char *name, bool has_min, uint64_t min)
{
    struct tam_plan_install *in = &((struct tam_plan_install *)r->install)[r->n_install++];
    in->component = comp(name);
    in->has_min_sequence = has_min;
    in->min_sequence = min;
}

static void install(struct tam_plan_rule *r, const char *name)
{
    install_min(r, name, false, 0);
}

static void removes(struct tam_plan_rule *r, const char *name)
{
    ((struct tam_teep_component_id *)r->remove)[r->n_remove++] = comp(name);
}

static struct tam_plan_installed *record(const char *name, uint64_t seq)
{
    struct tam_plan_installed *r = &g_rec[g_dev.n_installed++];
    r->component = comp(name);
    r->has_manifest_id = true;
    r->manifest_id = mid(name);
    r->sequence = seq;
    digest_of(name, seq, r->digest);
    return r;
}

static void dlabel(const char *label)
{
    g_dlabels[g_dev.n_labels++] = str(label);
}

static void listed(const char *name, bool has_seq, uint64_t seq)
{
    struct tam_teep_tc *tc = &g_tc[g_q.n_tc_list++];
    tc->id = comp(name);
    tc->has_seq = has_seq;
    tc->seq = seq;
}

static void requested(const char *name, bool has_seq, uint64_t seq, bool have_binary)
{
    struct tam_teep_req_tc *rq = &g_req[g_q.n_requested++];
    rq->id = comp(name);
    rq->has_seq = has_seq;
    rq->seq = seq;
    rq->has_have_binary = have_binary;
    rq->have_binary = have_binary;
}

static void unneeded(const char *name)
{
    g_unneeded[g_q.n_unneeded++] = mid(name);
}

static int compute(uint32_t max_m, uint32_t max_u, struct tam_plan *out)
{
    struct tam_plan_input in = {
        .n_catalogue = g_ncat,
        .catalogue = g_cat,
        .policy = &g_policy,
        .device = &g_dev,
        .query = &g_q,
        .max_manifests = max_m,
        .max_unlinks = max_u,
    };
    const char *why = NULL;
    int err = tam_plan_compute(&in, &g_arena, out, &why);
    cr_assert(err == TAM_OK || why != NULL, "every failure explains itself");
    return err;
}

static void plan(void)
{
    cr_assert_eq(compute(0, 0, &g_plan), TAM_OK);
}

/* ------------------------------------------------------------ checks */

static bool id_is(const struct tam_teep_component_id *id, const char *name, bool manifest)
{
    struct tam_teep_component_id want = manifest ? mid(name) : comp(name);
    return tam_plan_id_eq(id, &want);
}

static void expect_entry(uint32_t i, const char *name, uint64_t seq, enum tam_plan_reason reason)
{
    cr_assert_lt(i, g_plan.n_entries, "entry %u missing", i);
    const struct tam_plan_entry *e = &g_plan.entries[i];
    cr_assert(id_is(&e->manifest->component, name, false), "entry %u is not %s", i, name);
    cr_assert_eq(e->manifest->sequence, seq, "entry %u: sequence", i);
    cr_assert_eq(e->reason, reason, "entry %u: reason %s", i, tam_plan_reason_name(e->reason));
    cr_assert_eq(e->index, (uint32_t)(e->manifest - g_cat));
    cr_assert_eq(e->manifest->user, e->manifest);
}

static void expect_unlink(uint32_t i, const char *name)
{
    cr_assert_lt(i, g_plan.n_unlink, "unlink %u missing", i);
    cr_assert(id_is(&g_plan.unlink[i], name, true), "unlink %u is not %s", i, name);
}

static const struct tam_plan_note *note(enum tam_plan_note_kind kind, const char *name,
                                        bool manifest)
{
    for (uint32_t i = 0; i < g_plan.n_notes; i++) {
        const struct tam_plan_note *n = &g_plan.notes[i];
        if (n->kind == kind && id_is(n->id, name, manifest)) {
            return n;
        }
    }
    return NULL;
}

static void expect_counts(uint32_t entries, uint32_t unlinks, uint32_t notes)
{
    cr_assert_eq(g_plan.n_entries, entries, "entries: %u", g_plan.n_entries);
    cr_assert_eq(g_plan.n_unlink, unlinks, "unlinks: %u", g_plan.n_unlink);
    cr_assert_eq(g_plan.n_notes, notes, "notes: %u", g_plan.n_notes);
}

/* ------------------------------------------------------------ rule 7: nothing to do */

Test(plan, empty_inputs_give_empty_plan)
{
    struct tam_plan_input in = {0};
    const char *why = NULL;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_OK);
    cr_assert(tam_plan_is_empty(&g_plan));
    cr_assert_eq(g_plan.n_notes, 0);
}

Test(plan, up_to_date_device_gives_empty_plan)
{
    cat("tc", 1);
    cat("tc", 2);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    record("tc", 2);
    listed("tc", false, 0);
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
    expect_counts(0, 0, 0);
}

/* ------------------------------------------------------------ rule 1: install */

Test(plan, install_missing_component_picks_highest_sequence)
{
    cat("tc", 1);
    cat("tc", 3);
    cat("tc", 2);
    cat("other", 9);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_INSTALL);
    cr_assert_not(g_plan.entries[0].was_present);
    cr_assert_not(g_plan.entries[0].have_binary);
}

Test(plan, equal_sequences_tie_break_on_digest)
{
    struct tam_plan_manifest *a = cat("tc", 4);
    struct tam_plan_manifest *b = cat("tc", 4);
    a->digest[31] = 2;
    b->digest[31] = 1;
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    plan();
    cr_assert_eq(g_plan.entries[0].manifest, b);
}

/* ------------------------------------------------------------ rule 2: update, never downgrade */

Test(plan, update_recorded_lower_sequence)
{
    cat("tc", 1);
    cat("tc", 3);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    record("tc", 1);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_UPDATE);
    cr_assert(g_plan.entries[0].was_present);
    cr_assert_eq(g_plan.entries[0].installed_sequence, 1);
}

Test(plan, never_downgrade)
{
    cat("tc", 3);
    cat("tc", 2);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    record("tc", 5);
    listed("tc", true, 4);
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
}

Test(plan, same_sequence_other_digest_is_not_sent)
{
    cat("tc", 3);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    struct tam_plan_installed *r = record("tc", 3);
    r->digest[0] ^= 0xff;
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
}

Test(plan, listed_without_record_has_unknown_sequence_zero)
{
    cat("tc", 2);
    cat("zero", 0);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    install(rule(TAM_PLAN_MATCH_ALL), "zero");
    listed("tc", false, 0);
    listed("zero", false, 0);
    plan();
    /* tc: unknown = 0 < 2, sent once as an update; zero: target 0 is not above 0. */
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 2, TAM_PLAN_UPDATE);
    cr_assert_eq(g_plan.entries[0].installed_sequence, 0);
}

Test(plan, listed_sequence_draft12_is_used)
{
    cat("a", 3);
    cat("b", 3);
    install(rule(TAM_PLAN_MATCH_ALL), "a");
    install(g_rules, "b");
    listed("a", true, 3);
    listed("b", true, 2);
    record("b", 1);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "b", 3, TAM_PLAN_UPDATE);
    cr_assert_eq(g_plan.entries[0].installed_sequence, 2, "max(recorded, listed)");
}

Test(plan, recorded_but_not_listed)
{
    cat("tc", 2);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    record("tc", 2);
    listed("other", false, 0);
    plan();
    cr_assert(tam_plan_is_empty(&g_plan), "not authoritative: the record counts");

    g_q.tc_list_authoritative = true;
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 2, TAM_PLAN_INSTALL);
}

/* ------------------------------------------------------------ policy matching */

Test(plan, remove_beats_install_in_any_order)
{
    cat("tc", 2);
    record("tc", 2);
    struct tam_plan_rule *a = rule(TAM_PLAN_MATCH_ALL);
    install(a, "tc");
    struct tam_plan_rule *b = rule(TAM_PLAN_MATCH_ALL);
    removes(b, "tc");
    plan();
    expect_counts(0, 1, 0);
    expect_unlink(0, "tc");
    cr_assert(id_is(g_plan.unlink_component[0], "tc", false));

    /* Same rules, reversed order; and remove + install in one rule. */
    struct tam_plan_rule tmp = g_rules[0];
    g_rules[0] = g_rules[1];
    g_rules[1] = tmp;
    plan();
    expect_counts(0, 1, 0);
    expect_unlink(0, "tc");
    g_policy.n_rules = 1;
    install(&g_rules[0], "tc");
    plan();
    expect_counts(0, 1, 0);
}

Test(plan, remove_of_absent_component_does_nothing)
{
    cat("tc", 2);
    removes(rule(TAM_PLAN_MATCH_ALL), "tc");
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
}

Test(plan, remove_manifest_id_from_catalogue_or_unresolved)
{
    cat("known", 1);
    struct tam_plan_installed *r = record("known", 1);
    r->has_manifest_id = false;
    listed("ghost", false, 0);
    struct tam_plan_rule *ru = rule(TAM_PLAN_MATCH_ALL);
    removes(ru, "known");
    removes(ru, "ghost");
    plan();
    expect_counts(0, 1, 1);
    expect_unlink(0, "known");
    cr_assert_not_null(note(TAM_PLAN_NOTE_UNRESOLVED, "ghost", false));
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_UNRESOLVED], 1);
}

Test(plan, label_rule_needs_all_labels)
{
    cat("tc", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_LABELS);
    rlabel(r, "eu");
    rlabel(r, "beta");
    install(r, "tc");

    dlabel("eu");
    plan();
    cr_assert(tam_plan_is_empty(&g_plan), "one of two labels");

    dlabel("x");
    dlabel("beta");
    plan();
    expect_counts(1, 0, 0);

    g_dlabels[2] = str("bet"); /* byte-exact, no prefix match */
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
}

Test(plan, empty_label_set_matches_every_device)
{
    cat("tc", 1);
    install(rule(TAM_PLAN_MATCH_LABELS), "tc");
    plan();
    expect_counts(1, 0, 0);
}

Test(plan, device_rule_matches_only_that_kid)
{
    cat("tc", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_DEVICE);
    memset(r->kid, 0xAB, sizeof(r->kid));
    install(r, "tc");

    plan();
    cr_assert(tam_plan_is_empty(&g_plan), "device without kid");

    g_dev.has_kid = true;
    memset(g_dev.kid, 0xAB, sizeof(g_dev.kid));
    g_dev.kid[31] = 0;
    plan();
    cr_assert(tam_plan_is_empty(&g_plan), "another device");

    g_dev.kid[31] = 0xAB;
    plan();
    expect_counts(1, 0, 0);
}

Test(plan, device_rule_removes_what_group_installs)
{
    cat("tc", 1);
    cat("base", 1);
    struct tam_plan_rule *all = rule(TAM_PLAN_MATCH_ALL);
    install(all, "tc");
    install(all, "base");
    struct tam_plan_rule *one = rule(TAM_PLAN_MATCH_DEVICE);
    memset(one->kid, 7, sizeof(one->kid));
    removes(one, "tc");
    g_dev.has_kid = true;
    memset(g_dev.kid, 7, sizeof(g_dev.kid));
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "base", 1, TAM_PLAN_INSTALL);
}

Test(plan, min_sequence_unsatisfiable)
{
    cat("tc", 3);
    cat("tc", 4);
    cat("ok", 2);
    struct tam_plan_rule *a = rule(TAM_PLAN_MATCH_ALL);
    install_min(a, "tc", true, 2);
    install_min(a, "ok", true, 2);
    install_min(rule(TAM_PLAN_MATCH_ALL), "tc", true, 5); /* the largest min applies */
    plan();
    expect_counts(1, 0, 1);
    expect_entry(0, "ok", 2, TAM_PLAN_INSTALL);
    const struct tam_plan_note *n = note(TAM_PLAN_NOTE_UNSATISFIABLE, "tc", false);
    cr_assert_not_null(n);
    cr_assert_eq(n->sequence, 5);
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_UNSATISFIABLE], 1);
}

Test(plan, policy_component_missing_from_catalogue_is_unavailable)
{
    install(rule(TAM_PLAN_MATCH_ALL), "nowhere");
    plan();
    expect_counts(0, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_UNAVAILABLE, "nowhere", false));
}

/* ------------------------------------------------------------ rule 3: requested */

Test(plan, requested_tc_is_sent)
{
    cat("req", 1);
    cat("req", 2);
    requested("req", true, 1, false);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "req", 2, TAM_PLAN_REQUESTED);
    cr_assert_not(g_plan.entries[0].have_binary);
}

Test(plan, requested_with_have_binary_sets_flag)
{
    cat("req", 2);
    requested("req", true, 2, true);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "req", 2, TAM_PLAN_REQUESTED);
    cr_assert(g_plan.entries[0].have_binary);
}

Test(plan, requested_and_desired_keeps_policy_reason_and_flag)
{
    cat("tc", 2);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    requested("tc", true, 1, true);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 2, TAM_PLAN_INSTALL);
    cr_assert(g_plan.entries[0].have_binary);
}

Test(plan, requested_unknown_tc_is_unavailable)
{
    cat("other", 1);
    requested("unknown", false, 0, false);
    plan();
    expect_counts(0, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_UNAVAILABLE, "unknown", false));
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_UNAVAILABLE], 1);
}

Test(plan, requested_min_above_catalogue_is_unsatisfiable)
{
    cat("req", 2);
    requested("req", true, 3, true);
    plan();
    expect_counts(0, 0, 1);
    cr_assert_eq(note(TAM_PLAN_NOTE_UNSATISFIABLE, "req", false)->sequence, 3);
}

Test(plan, requested_denied_by_policy_flag_or_remove)
{
    cat("req", 1);
    cat("wanted", 1);
    requested("req", false, 0, false);
    requested("wanted", false, 0, false);
    install(rule(TAM_PLAN_MATCH_ALL), "wanted");
    g_policy.deny_requested = true;
    plan();
    expect_counts(1, 0, 1);
    expect_entry(0, "wanted", 1, TAM_PLAN_INSTALL);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DENIED, "req", false));

    g_policy.deny_requested = false;
    removes(&g_rules[0], "req");
    plan();
    expect_counts(1, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DENIED, "req", false));
}

Test(plan, requested_already_listed_or_downgrade_is_not_sent)
{
    cat("a", 2);
    cat("b", 2);
    cat("c", 2);
    requested("a", false, 0, false);
    listed("a", true, 2);
    requested("b", false, 0, false);
    record("b", 3);
    requested("c", false, 0, false);
    record("c", 2); /* recorded but not listed: the device evidently lost it */
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "c", 2, TAM_PLAN_REQUESTED);
}

Test(plan, requested_for_up_to_date_desired_component)
{
    cat("tc", 2);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    record("tc", 2);
    requested("tc", true, 2, true); /* holds the binary, needs the authorizing manifest */
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "tc", 2, TAM_PLAN_REQUESTED);
    cr_assert(g_plan.entries[0].have_binary);
}

/* ------------------------------------------------------------ rule 4: delete */

Test(plan, device_declared_unneeded_is_unlinked)
{
    cat("old", 1);
    record("old", 1);
    unneeded("old");
    unneeded("stranger"); /* unknown to the TAM: echoed as is */
    plan();
    expect_counts(0, 2, 0);
    expect_unlink(0, "old");
    expect_unlink(1, "stranger");
    cr_assert(id_is(g_plan.unlink_component[0], "old", false));
    cr_assert_null(g_plan.unlink_component[1]);
}

Test(plan, device_declared_unneeded_but_policy_requires_is_kept)
{
    cat("tc", 1);
    record("tc", 1);
    install(rule(TAM_PLAN_MATCH_ALL), "tc");
    unneeded("tc");
    plan();
    expect_counts(0, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_KEPT, "tc", true));
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_KEPT], 1);
}

Test(plan, device_unneeded_beats_own_request)
{
    cat("x", 1);
    requested("x", false, 0, false);
    unneeded("x");
    plan();
    expect_counts(0, 1, 0);
    expect_unlink(0, "x");
}

Test(plan, unlink_list_sorted_and_deduplicated)
{
    cat("b", 1);
    cat("a", 1);
    record("b", 1);
    record("a", 1);
    removes(rule(TAM_PLAN_MATCH_ALL), "b");
    removes(&g_rules[0], "a");
    unneeded("b");
    unneeded("a");
    unneeded("c");
    unneeded("a");
    plan();
    expect_counts(0, 3, 0);
    expect_unlink(0, "a");
    expect_unlink(1, "b");
    expect_unlink(2, "c");
    cr_assert_not_null(g_plan.unlink_component[0]);
}

Test(plan, unlink_bound_defers_rest)
{
    for (int i = 0; i < 5; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "u%d", i);
        unneeded(g_names[i]);
    }
    cr_assert_eq(compute(0, 2, &g_plan), TAM_OK);
    expect_counts(0, 2, 3);
    expect_unlink(0, "u0");
    expect_unlink(1, "u1");
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_UNLINK_DEFERRED], 3);
    cr_assert_not_null(note(TAM_PLAN_NOTE_UNLINK_DEFERRED, "u4", true));
}

/* ------------------------------------------------------------ rule 5: dependencies */

Test(plan, dependency_sent_first)
{
    cat("tc", 3);
    struct tam_plan_manifest *cfg = cat("config", 1); /* "config" sorts before "tc" */
    dep(cfg, "tc");
    install(rule(TAM_PLAN_MATCH_ALL), "config");
    plan();
    expect_counts(2, 0, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_DEPENDENCY);
    expect_entry(1, "config", 1, TAM_PLAN_INSTALL);
}

Test(plan, dependency_already_installed_is_not_sent)
{
    cat("tc", 3);
    dep(cat("config", 1), "tc");
    install(rule(TAM_PLAN_MATCH_ALL), "config");
    record("tc", 3);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "config", 1, TAM_PLAN_INSTALL);

    /* An older dependency is brought up to the dependency's manifest. */
    g_rec[0].sequence = 2;
    plan();
    expect_counts(2, 0, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_DEPENDENCY);
    cr_assert_eq(g_plan.entries[0].installed_sequence, 2);
}

Test(plan, dependency_that_is_also_desired_keeps_its_reason_and_appears_once)
{
    cat("tc", 3);
    dep(cat("config", 1), "tc");
    dep(cat("blob", 1), "tc"); /* two dependents on one dependency */
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    install(r, "tc");
    install(r, "config");
    install(r, "blob");
    plan();
    expect_counts(3, 0, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_INSTALL);
    expect_entry(1, "blob", 1, TAM_PLAN_INSTALL);
    expect_entry(2, "config", 1, TAM_PLAN_INSTALL);
}

Test(plan, dependency_chain_and_order_of_siblings)
{
    cat("z", 1);
    cat("y", 1);
    struct tam_plan_manifest *x = cat("x", 1);
    dep(x, "z");
    dep(x, "y"); /* siblings go in canonical order: y before z */
    struct tam_plan_manifest *top = cat("top", 1);
    dep(top, "x");
    install(rule(TAM_PLAN_MATCH_ALL), "top");
    plan();
    expect_counts(4, 0, 0);
    expect_entry(0, "y", 1, TAM_PLAN_DEPENDENCY);
    expect_entry(1, "z", 1, TAM_PLAN_DEPENDENCY);
    expect_entry(2, "x", 1, TAM_PLAN_DEPENDENCY);
    expect_entry(3, "top", 1, TAM_PLAN_INSTALL);
}

Test(plan, dependency_missing_or_removed_blocks_dependent)
{
    dep(cat("config", 1), "absent");
    cat("tc", 1);
    dep(cat("cfg2", 1), "tc");
    cat("fine", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    install(r, "config");
    install(r, "cfg2");
    install(r, "fine");
    removes(r, "tc");
    plan();
    expect_counts(1, 0, 2);
    expect_entry(0, "fine", 1, TAM_PLAN_INSTALL);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_MISSING, "config", false));
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_REMOVED, "cfg2", false));
}

Test(plan, dependency_outside_catalogue_but_recorded_is_satisfied)
{
    dep(cat("config", 1), "tc");
    install(rule(TAM_PLAN_MATCH_ALL), "config");
    record("tc", 1);
    plan();
    expect_counts(1, 0, 0);
    expect_entry(0, "config", 1, TAM_PLAN_INSTALL);
}

Test(plan, dependency_cycle_terminates)
{
    dep(cat("a", 1), "b");
    dep(cat("b", 1), "a");
    dep(cat("self", 1), "self");
    cat("free", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    install(r, "a");
    install(r, "b");
    install(r, "self");
    install(r, "free");
    plan();
    expect_counts(1, 0, 3);
    expect_entry(0, "free", 1, TAM_PLAN_INSTALL);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_CYCLE, "a", false));
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_CYCLE, "b", false));
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_CYCLE, "self", false));
}

Test(plan, dependency_depth_is_bounded)
{
    /* c0 -> c1 -> ... -> cN: c0 may have TAM_PLAN_MAX_DEPTH levels below it. */
    for (int i = 0; i <= TAM_PLAN_MAX_DEPTH + 1; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "c%d", i);
    }
    for (int i = 0; i <= TAM_PLAN_MAX_DEPTH + 1; i++) {
        struct tam_plan_manifest *m = cat(g_names[i], 1);
        if (i <= TAM_PLAN_MAX_DEPTH) {
            dep(m, g_names[i + 1]);
        }
    }
    install(rule(TAM_PLAN_MATCH_ALL), "c0");
    plan();
    expect_counts(0, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_DEPTH, "c0", false));

    g_install[0][0].component = comp("c1"); /* one level less: fits */
    plan();
    expect_counts(TAM_PLAN_MAX_DEPTH + 1, 0, 0);
    expect_entry(0, g_names[TAM_PLAN_MAX_DEPTH + 1], 1, TAM_PLAN_DEPENDENCY);
    expect_entry(TAM_PLAN_MAX_DEPTH, "c1", 1, TAM_PLAN_INSTALL);
}

Test(plan, failed_dependency_chain_rolls_back)
{
    /* top -> {ok, bad}; bad -> absent. ok must not stay in the plan for top alone. */
    cat("ok", 1);
    dep(cat("bad", 1), "absent");
    struct tam_plan_manifest *top = cat("top", 1);
    dep(top, "ok");
    dep(top, "bad");
    install(rule(TAM_PLAN_MATCH_ALL), "top");
    plan();
    expect_counts(0, 0, 1);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEP_MISSING, "top", false));
}

Test(plan, unneeded_dependency_of_planned_manifest_is_kept)
{
    cat("tc", 1);
    record("tc", 1);
    dep(cat("config", 1), "tc");
    install(rule(TAM_PLAN_MATCH_ALL), "config");
    unneeded("tc");
    plan();
    expect_counts(1, 0, 1);
    expect_entry(0, "config", 1, TAM_PLAN_INSTALL);
    cr_assert_not_null(note(TAM_PLAN_NOTE_KEPT, "tc", true));
}

/* ------------------------------------------------------------ rule 6: bounds */

Test(plan, manifests_per_update_bound_defers_rest)
{
    for (int i = 0; i < 20; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "tc%02d", i);
        cat(g_names[i], 1);
        install(g_policy.n_rules ? g_rules : rule(TAM_PLAN_MATCH_ALL), g_names[i]);
    }
    plan();
    cr_assert_eq(g_plan.n_entries, TAM_PLAN_DEFAULT_MAX_MANIFESTS);
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_DEFERRED], 20 - TAM_PLAN_DEFAULT_MAX_MANIFESTS);
    for (int i = 0; i < TAM_PLAN_DEFAULT_MAX_MANIFESTS; i++) {
        expect_entry((uint32_t)i, g_names[i], 1, TAM_PLAN_INSTALL);
    }
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEFERRED, "tc19", false));

    cr_assert_eq(compute(3, 0, &g_plan), TAM_OK);
    cr_assert_eq(g_plan.n_entries, 3);
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_DEFERRED], 17);
}

Test(plan, bound_keeps_dependencies_before_dependents)
{
    cat("tc", 1);
    dep(cat("config", 1), "tc");
    cat("zz", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    install(r, "config");
    install(r, "zz");
    cr_assert_eq(compute(1, 0, &g_plan), TAM_OK);
    expect_counts(1, 0, 2);
    expect_entry(0, "tc", 1, TAM_PLAN_DEPENDENCY);
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEFERRED, "config", false));
    cr_assert_not_null(note(TAM_PLAN_NOTE_DEFERRED, "zz", false));
}

Test(plan, canonical_order_of_ids)
{
    struct tam_teep_component_id a = comp("ab"), b = comp("abc"), c = comp("b"), d = mid("ab");
    cr_assert_lt(tam_plan_id_cmp(&a, &b), 0, "prefix first");
    cr_assert_lt(tam_plan_id_cmp(&b, &c), 0);
    cr_assert_lt(tam_plan_id_cmp(&a, &d), 0, "fewer segments first");
    cr_assert_lt(tam_plan_id_cmp(&d, &b), 0, "segment bytes decide before count");
    cr_assert_eq(tam_plan_id_cmp(&d, &d), 0);
    struct tam_teep_component_id e = d;
    e.raw = str("ignored");
    cr_assert(tam_plan_id_eq(&d, &e), "raw is ignored");
    struct tam_teep_component_id z1 = {0}, z2 = {0};
    z1.n = 1; /* an empty segment */
    cr_assert_lt(tam_plan_id_cmp(&z2, &z1), 0);
    cr_assert_lt(tam_plan_id_cmp(&z1, &a), 0);
}

/* ------------------------------------------------------------ determinism */

static uint64_t g_rng = 88172645463325252u;

static uint32_t rnd(uint32_t n)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng % n);
}

#define SHUFFLE(arr, n)                              \
    do {                                             \
        for (uint32_t i_ = (n); i_ > 1; i_--) {      \
            uint32_t j_ = rnd(i_);                   \
            __typeof__((arr)[0]) t_ = (arr)[i_ - 1]; \
            (arr)[i_ - 1] = (arr)[j_];               \
            (arr)[j_] = t_;                          \
        }                                            \
    } while (0)

static void put_id(struct tam_buf *b, const struct tam_teep_component_id *id)
{
    cr_assert_eq(tam_buf_append(b, "[", 1), TAM_OK);
    for (uint32_t i = 0; i < id->n; i++) {
        cr_assert_eq(tam_buf_append(b, id->seg[i].ptr, id->seg[i].len), TAM_OK);
        cr_assert_eq(tam_buf_append(b, ",", 1), TAM_OK);
    }
    cr_assert_eq(tam_buf_append(b, "]", 1), TAM_OK);
}

static void put_u64(struct tam_buf *b, uint64_t v)
{
    char s[32];
    int n = snprintf(s, sizeof(s), ":%llu;", (unsigned long long)v);
    cr_assert_eq(tam_buf_append(b, s, (size_t)n), TAM_OK);
}

/* Everything that reaches the wire or the logs, independent of input positions. */
static void describe(const struct tam_plan *p, struct tam_buf *b)
{
    for (uint32_t i = 0; i < p->n_entries; i++) {
        const struct tam_plan_entry *e = &p->entries[i];
        put_id(b, &e->manifest->component);
        cr_assert_eq(tam_buf_append(b, e->manifest->digest, TAM_PLAN_DIGEST_LEN), TAM_OK);
        put_u64(b, e->manifest->sequence);
        put_u64(b, e->reason * 4u + e->have_binary * 2u + e->was_present);
        put_u64(b, e->installed_sequence);
    }
    for (uint32_t i = 0; i < p->n_unlink; i++) {
        put_id(b, &p->unlink[i]);
        if (p->unlink_component[i] != NULL) {
            put_id(b, p->unlink_component[i]);
        }
    }
    for (uint32_t i = 0; i < p->n_notes; i++) {
        put_u64(b, p->notes[i].kind);
        put_id(b, p->notes[i].id);
        put_u64(b, p->notes[i].sequence);
    }
}

static void build_mixed_inputs(void)
{
    for (int i = 0; i < 120; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "m%03d", i);
        for (uint64_t s = 1; s <= (uint64_t)(i % 4) + 1; s++) {
            struct tam_plan_manifest *m = cat(g_names[i], s);
            if (i % 7 == 3) {
                dep(m, g_names[i - 1]);
                dep(m, g_names[(i + 50) % 120]);
            }
        }
    }
    dlabel("eu");
    dlabel("beta");
    struct tam_plan_rule *all = rule(TAM_PLAN_MATCH_ALL);
    struct tam_plan_rule *lab = rule(TAM_PLAN_MATCH_LABELS);
    rlabel(lab, "beta");
    rlabel(lab, "eu");
    struct tam_plan_rule *other = rule(TAM_PLAN_MATCH_LABELS);
    rlabel(other, "us");
    for (int i = 0; i < 40; i++) {
        install_min(all, g_names[i], i % 9 == 0, 3);
        install(lab, g_names[i + 40]);
        install(other, g_names[i + 80]);
        if (i % 6 == 0) {
            removes(lab, g_names[2 * (size_t)i]);
        }
    }
    for (int i = 0; i < 120; i += 3) {
        record(g_names[i], (uint64_t)(i % 3) + 1);
    }
    for (int i = 1; i < 120; i += 4) {
        listed(g_names[i], i % 8 == 1, 1);
    }
    for (int i = 80; i < 120; i += 5) {
        requested(g_names[i], true, 1, i % 10 == 0);
    }
    for (int i = 60; i < 120; i += 11) {
        unneeded(g_names[i]);
    }
    unneeded("nobody");
    requested("nothing", false, 0, false);
}

Test(plan, shuffled_inputs_give_identical_plan)
{
    build_mixed_inputs();
    struct tam_buf want, got;
    tam_buf_init(&want, 1u << 20);
    tam_buf_init(&got, 1u << 20);
    cr_assert_eq(compute(64, 0, &g_plan), TAM_OK);
    cr_assert_gt(g_plan.n_entries, 10);
    cr_assert_gt(g_plan.n_unlink, 2);
    cr_assert_gt(g_plan.n_notes, 2);
    describe(&g_plan, &want);
    for (int round = 0; round < 8; round++) {
        /* Shuffle the catalogue and every list, keeping each entry's own dependencies. */
        for (uint32_t i = 0; i < g_ncat; i++) {
            SHUFFLE((struct tam_teep_component_id *)g_cat[i].deps, g_cat[i].n_deps);
        }
        SHUFFLE(g_cat, g_ncat);
        SHUFFLE(g_rules, g_policy.n_rules);
        for (uint32_t r = 0; r < g_policy.n_rules; r++) {
            SHUFFLE((struct tam_plan_install *)g_rules[r].install, g_rules[r].n_install);
            SHUFFLE((struct tam_teep_component_id *)g_rules[r].remove, g_rules[r].n_remove);
            SHUFFLE((struct tam_bytes *)g_rules[r].labels, g_rules[r].n_labels);
        }
        SHUFFLE(g_rec, g_dev.n_installed);
        SHUFFLE(g_tc, g_q.n_tc_list);
        SHUFFLE(g_req, g_q.n_requested);
        SHUFFLE(g_unneeded, g_q.n_unneeded);
        SHUFFLE(g_dlabels, g_dev.n_labels);
        tam_buf_reset(&got);
        cr_assert_eq(compute(64, 0, &g_plan), TAM_OK);
        describe(&g_plan, &got);
        cr_assert_eq(got.len, want.len, "round %d", round);
        cr_assert(memcmp(got.data, want.data, want.len) == 0, "round %d", round);
    }
    tam_buf_finish(&want);
    tam_buf_finish(&got);
}

/* ------------------------------------------------------------ scale */

Test(plan, large_inputs_are_fast)
{
    /* 1000 components in the catalogue (two versions of 500, one of the others), 500 recorded. */
    struct tam_plan_install *inst = tam_calloc(1000, sizeof(*inst));
    cr_assert_not_null(inst);
    for (int i = 0; i < 1000; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "component-%04d", i);
    }
    for (int i = 0; i < 1000; i++) {
        struct tam_plan_manifest *m = cat(g_names[i], i < 500 ? 2 : 1);
        if (i % 10 == 5) {
            dep(m, g_names[i - 5]);
        }
        inst[i].component = comp(g_names[i]);
    }
    for (int i = 0; i < 500; i++) {
        cat(g_names[i], 1);
        record(g_names[i], 1);
        listed(g_names[i], false, 0);
    }
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    r->install = inst;
    r->n_install = 1000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round < 10; round++) {
        cr_assert_eq(compute(TAM_PLAN_MAX_MANIFESTS, 0, &g_plan), TAM_OK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_assert_eq(g_plan.n_entries, 1000, "500 updates + 500 installs");
    expect_entry(0, "component-0000", 2, TAM_PLAN_UPDATE);
    cr_assert_lt(ms / 10, 250.0, "one plan took %.1f ms", ms / 10);

    cr_assert_eq(compute(0, 0, &g_plan), TAM_OK);
    cr_assert_eq(g_plan.n_entries, TAM_PLAN_DEFAULT_MAX_MANIFESTS);
    cr_assert_eq(g_plan.count[TAM_PLAN_NOTE_DEFERRED], 1000 - TAM_PLAN_DEFAULT_MAX_MANIFESTS);
    tam_free(inst);
}

/* ------------------------------------------------------------ apply */

static const struct tam_plan_installed *find_rec(const struct tam_plan_installed *v, uint32_t n,
                                                 const char *name)
{
    for (uint32_t i = 0; i < n; i++) {
        if (id_is(&v[i].component, name, false)) {
            return &v[i];
        }
    }
    return NULL;
}

static void mixed_plan_for_apply(void)
{
    cat("tc", 3);
    dep(cat("config", 2), "tc");
    cat("upd", 5);
    cat("gone", 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    install(r, "config");
    install(r, "upd");
    removes(r, "gone");
    record("upd", 4);
    record("gone", 1);
    record("keep", 7);
    plan();
    expect_counts(3, 1, 0);
    expect_entry(0, "tc", 3, TAM_PLAN_DEPENDENCY);
    expect_entry(1, "config", 2, TAM_PLAN_INSTALL);
    expect_entry(2, "upd", 5, TAM_PLAN_UPDATE);
    expect_unlink(0, "gone");
}

Test(plan, apply_success_records_sent_and_drops_unlinked)
{
    mixed_plan_for_apply();
    struct tam_plan_installed *out = NULL;
    uint32_t n = 0;
    cr_assert_eq(tam_plan_apply_success(&g_plan, g_rec, g_dev.n_installed, &g_arena, &out, &n),
                 TAM_OK);
    cr_assert_eq(n, 4);
    const char *order[] = {"config", "keep", "tc", "upd"};
    for (uint32_t i = 0; i < n; i++) {
        cr_assert(id_is(&out[i].component, order[i], false), "sorted: %u", i);
    }
    cr_assert_eq(find_rec(out, n, "upd")->sequence, 5);
    cr_assert(id_is(&find_rec(out, n, "config")->manifest_id, "config", true));
    cr_assert_eq(memcmp(find_rec(out, n, "tc")->digest, g_cat[0].digest, TAM_PLAN_DIGEST_LEN), 0);
    cr_assert_null(find_rec(out, n, "gone"));

    /* The new record set plans nothing more. */
    memcpy(g_rec, out, n * sizeof(*out));
    g_dev.n_installed = n;
    plan();
    cr_assert(tam_plan_is_empty(&g_plan));
}

Test(plan, apply_error_skips_failed_and_their_dependents)
{
    mixed_plan_for_apply();
    struct tam_bytes failed[] = {tam_bytes_of(g_cat[0].digest, TAM_PLAN_DIGEST_LEN),
                                 tam_bytes_of("short", 5)};
    struct tam_plan_installed *out = NULL;
    uint32_t n = 0;
    cr_assert_eq(
        tam_plan_apply_error(&g_plan, g_rec, g_dev.n_installed, failed, 2, &g_arena, &out, &n),
        TAM_OK);
    cr_assert_eq(n, 3);
    cr_assert_null(find_rec(out, n, "tc"), "failed");
    cr_assert_null(find_rec(out, n, "config"), "depends on a failed manifest");
    cr_assert_eq(find_rec(out, n, "upd")->sequence, 5, "independent: installed");
    cr_assert_not_null(find_rec(out, n, "gone"), "unlink not applied on Error");
    cr_assert_not_null(find_rec(out, n, "keep"));
}

Test(plan, apply_error_without_failures_records_all_but_unlinks_nothing)
{
    mixed_plan_for_apply();
    struct tam_plan_installed *out = NULL;
    uint32_t n = 0;
    cr_assert_eq(
        tam_plan_apply_error(&g_plan, g_rec, g_dev.n_installed, NULL, 0, &g_arena, &out, &n),
        TAM_OK);
    cr_assert_eq(n, 5);
}

/* ------------------------------------------------------------ wire integration */

Test(plan, fill_update_encodes)
{
    cat("old", 1);
    record("old", 1);
    removes(rule(TAM_PLAN_MATCH_ALL), "old");
    unneeded("x");
    plan();
    cr_assert_eq(g_plan.n_unlink, 2);
    struct tam_teep_msg msg;
    tam_teep_msg_init(&msg, TAM_TEEP_UPDATE);
    tam_plan_fill_update(&g_plan, &msg);
    cr_assert(msg.has_unneeded);
    struct tam_buf out;
    tam_buf_init(&out, 4096);
    cr_assert_eq(tam_teep_encode(&msg, TAM_TEEP_RFC, &out), TAM_OK);
    struct tam_teep_msg back;
    cr_assert_eq(tam_teep_decode(out.data, out.len, TAM_TEEP_RFC, &g_arena, &back, NULL), TAM_OK);
    cr_assert_eq(back.n_unneeded, 2);
    cr_assert(tam_plan_id_eq(&back.unneeded[0], &g_plan.unlink[0]));
    cr_assert(tam_plan_id_eq(&back.unneeded[1], &g_plan.unlink[1]));
    tam_buf_finish(&out);

    struct tam_plan empty = {0};
    tam_teep_msg_init(&msg, TAM_TEEP_UPDATE);
    tam_plan_fill_update(&empty, &msg);
    cr_assert_not(msg.has_unneeded);
}

Test(plan, query_response_vector_drives_plan)
{
    size_t len = 0;
    uint8_t *buf = tu_load_hex("teep26_query_response.hex", &len);
    struct tam_teep_msg msg;
    cr_assert_eq(tam_teep_decode(buf, len, TAM_TEEP_RFC, &g_arena, &msg, NULL), TAM_OK);
    cr_assert(msg.has_tc_list);
    tam_plan_query_from_msg(&msg, true, &g_q);
    cr_assert_eq(g_q.n_tc_list, 1);
    cr_assert(g_q.tc_list_authoritative);

    /* The listed component (no sequence in RFC tc-list, no record): sequence 2 is sent once. */
    struct tam_plan_manifest *m = &g_cat[g_ncat++];
    m->component = g_q.tc_list[0].id;
    m->manifest_id = g_q.tc_list[0].id;
    m->sequence = 2;
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    g_install[0][0].component = g_q.tc_list[0].id;
    r->n_install = 1;
    plan();
    cr_assert_eq(g_plan.n_entries, 1);
    cr_assert_eq(g_plan.entries[0].reason, TAM_PLAN_UPDATE);
    tam_free(buf);
}

/* The three SUIT scenarios' envelopes as catalogue entries (personalization depends on the TC). */
static void suit_entry(const char *vector, struct tam_suit_envelope *env, uint8_t **buf)
{
    size_t len = 0;
    *buf = tu_load_hex(vector, &len);
    cr_assert_eq(tam_suit_parse(*buf, len, env, NULL), TAM_OK, "%s", vector);
    struct tam_plan_manifest *m = &g_cat[g_ncat];
    m->component.n = env->components[0].n;
    memcpy(m->component.seg, env->components[0].seg,
           env->components[0].n * sizeof(struct tam_bytes));
    m->manifest_id.n = env->manifest_component_id.n;
    memcpy(m->manifest_id.seg, env->manifest_component_id.seg,
           env->manifest_component_id.n * sizeof(struct tam_bytes));
    m->sequence = env->sequence;
    cr_assert_eq(env->digest.bytes.len, TAM_PLAN_DIGEST_LEN);
    memcpy(m->digest, env->digest.bytes.ptr, TAM_PLAN_DIGEST_LEN);
    m->deps = g_deps[g_ncat];
    for (unsigned i = 0; i < env->ndeps; i++) {
        cr_assert(env->deps[i].has_prefix);
        g_deps[g_ncat][i].n = env->deps[i].prefix.n;
        memcpy(g_deps[g_ncat][i].seg, env->deps[i].prefix.seg,
               env->deps[i].prefix.n * sizeof(struct tam_bytes));
        m->n_deps++;
    }
    g_ncat++;
}

Test(plan, suit_personalization_scenario)
{
    static struct tam_suit_envelope uri, pers;
    uint8_t *b1 = NULL, *b2 = NULL;
    suit_entry("teep_suit_uri.hex", &uri, &b1);
    suit_entry("teep_suit_personalization.hex", &pers, &b2);
    cr_assert_eq(g_cat[1].n_deps, 1);
    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    g_install[0][0].component = g_cat[1].component; /* only the config is in the policy */
    r->n_install = 1;
    plan();
    cr_assert_eq(g_plan.n_entries, 2);
    cr_assert_eq(g_plan.entries[0].manifest, &g_cat[0]);
    cr_assert_eq(g_plan.entries[0].reason, TAM_PLAN_DEPENDENCY);
    cr_assert_eq(g_plan.entries[1].manifest, &g_cat[1]);
    cr_assert_eq(g_plan.entries[1].reason, TAM_PLAN_INSTALL);
    tam_free(b1);
    tam_free(b2);
}

/* ------------------------------------------------------------ hostile input */

Test(plan, rejects_malformed_input)
{
    struct tam_plan_input in = {0};
    const char *why = NULL;
    in.n_catalogue = 1;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_EINVAL);
    cr_assert_not_null(why);

    in.n_catalogue = TAM_PLAN_MAX_CATALOGUE + 1;
    in.catalogue = g_cat;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_ETOOBIG);

    struct tam_plan_manifest *m = cat("x", 1);
    in.n_catalogue = g_ncat;
    m->component.n = TAM_TEEP_MAX_ID_SEGMENTS + 1;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_EINVAL);
    m->component.n = 1;
    m->component.seg[0] = tam_bytes_of(NULL, 3);
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_EINVAL);
    m->component = comp("x");
    m->n_deps = TAM_PLAN_MAX_DEPS + 1;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_ETOOBIG);
    m->n_deps = 0;
    cr_assert_eq(tam_plan_compute(&in, &g_arena, &g_plan, &why), TAM_OK);

    struct tam_plan_rule *r = rule(TAM_PLAN_MATCH_ALL);
    r->match = (enum tam_plan_match)9;
    cr_assert_eq(compute(0, 0, &g_plan), TAM_EINVAL);
    r->match = TAM_PLAN_MATCH_ALL;
    r->n_remove = 1;
    r->remove = NULL;
    cr_assert_eq(compute(0, 0, &g_plan), TAM_EINVAL);
    r->n_remove = 0;

    g_q.n_tc_list = TAM_TEEP_MAX_LIST + 1;
    cr_assert_eq(compute(0, 0, &g_plan), TAM_ETOOBIG);
    g_q.n_tc_list = 0;
    g_dev.n_labels = TAM_PLAN_MAX_LABELS + 1;
    cr_assert_eq(compute(0, 0, &g_plan), TAM_ETOOBIG);
    g_dev.n_labels = 0;
    cr_assert_eq(compute(TAM_PLAN_MAX_MANIFESTS + 1, 0, &g_plan), TAM_EINVAL);
    cr_assert_eq(compute(0, 0, &g_plan), TAM_OK);
}

Test(plan, arena_exhaustion_is_enomem)
{
    for (int i = 0; i < 100; i++) {
        (void)snprintf(g_names[i], sizeof(g_names[i]), "n%03d", i);
        cat(g_names[i], 1);
        install(g_policy.n_rules ? g_rules : rule(TAM_PLAN_MATCH_ALL), g_names[i]);
    }
    struct tam_arena tiny;
    tam_arena_init(&tiny, 256, 256);
    struct tam_plan_input in = {.n_catalogue = g_ncat, .catalogue = g_cat, .policy = &g_policy};
    const char *why = NULL;
    cr_assert_eq(tam_plan_compute(&in, &tiny, &g_plan, &why), TAM_ENOMEM);
    tam_arena_finish(&tiny);
}

Test(plan, heap_failures_release_cleanly)
{
    build_mixed_inputs();
    for (long n = 0; n < 40; n++) {
        tam_alloc_fail_after(n);
        int err = compute(64, 0, &g_plan);
        tam_alloc_fail_after(-1);
        cr_assert(err == TAM_OK || err == TAM_ENOMEM, "n=%ld err=%d", n, err);
    }
}

Test(plan, names)
{
    cr_assert_str_eq(tam_plan_reason_name(TAM_PLAN_REQUESTED), "requested");
    cr_assert_str_eq(tam_plan_reason_name((enum tam_plan_reason)0), "?");
    cr_assert_str_eq(tam_plan_note_name(TAM_PLAN_NOTE_DEP_CYCLE), "dep-cycle");
    cr_assert_str_eq(tam_plan_note_name(TAM_PLAN_NOTE_KEPT), "kept");
    cr_assert_str_eq(tam_plan_note_name((enum tam_plan_note_kind)99), "?");
}
