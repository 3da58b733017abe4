/*
 * Update planning (include/tam/plan.h documents the rules). The work is done on
 * sorted indexes so that large catalogues cost O(n log n):
 *   1. validate every input (bounds, ids);
 *   2. index the catalogue by component id and by manifest id, the records by
 *      manifest id;
 *   3. gather every component id the inputs mention (matching rules, requests,
 *      records, tc-list, device-unneeded manifests) into one sorted table of
 *      groups, one per component, merging commutatively so input order does
 *      not matter;
 *   4. decide per group (install, update, requested, unlink, notes);
 *   5. expand dependencies depth first into the manifest order;
 *   6. collect the unlink list, apply the bounds, copy the result to the arena.
 */
#include "tam/plan.h"

#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"

static int fail(const char **why, const char *msg, int err)
{
    if (why != NULL) {
        *why = msg;
    }
    return err;
}

/* ---------------------------------------------------------------- ids */

static int bytes_cmp(const struct tam_bytes *a, const struct tam_bytes *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n > 0 ? memcmp(a->ptr, b->ptr, n) : 0;
    if (c != 0) {
        return c;
    }
    return (a->len > b->len) - (a->len < b->len);
}

int tam_plan_id_cmp(const struct tam_teep_component_id *a, const struct tam_teep_component_id *b)
{
    uint32_t n = a->n < b->n ? a->n : b->n;
    for (uint32_t i = 0; i < n; i++) {
        int c = bytes_cmp(&a->seg[i], &b->seg[i]);
        if (c != 0) {
            return c;
        }
    }
    return (a->n > b->n) - (a->n < b->n);
}

bool tam_plan_id_eq(const struct tam_teep_component_id *a, const struct tam_teep_component_id *b)
{
    return tam_plan_id_cmp(a, b) == 0;
}

static int u64_cmp_desc(uint64_t a, uint64_t b)
{
    return (a < b) - (a > b);
}

/* ---------------------------------------------------------------- validation */

static bool bytes_ok(const struct tam_bytes *b)
{
    return b->ptr != NULL || b->len == 0;
}

static bool id_ok(const struct tam_teep_component_id *id)
{
    if (id->n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return false;
    }
    for (uint32_t i = 0; i < id->n; i++) {
        if (!bytes_ok(&id->seg[i])) {
            return false;
        }
    }
    return true;
}

static bool ids_ok(const struct tam_teep_component_id *ids, uint32_t n)
{
    if (n > 0 && ids == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!id_ok(&ids[i])) {
            return false;
        }
    }
    return true;
}

static bool labels_ok(const struct tam_bytes *labels, uint32_t n)
{
    if (n > 0 && labels == NULL) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!bytes_ok(&labels[i])) {
            return false;
        }
    }
    return true;
}

static int check_catalogue(const struct tam_plan_input *in, const char **why)
{
    if (in->n_catalogue > TAM_PLAN_MAX_CATALOGUE) {
        return fail(why, "catalogue: too many entries", TAM_ETOOBIG);
    }
    if (in->n_catalogue > 0 && in->catalogue == NULL) {
        return fail(why, "catalogue: NULL list", TAM_EINVAL);
    }
    for (uint32_t i = 0; i < in->n_catalogue; i++) {
        const struct tam_plan_manifest *m = &in->catalogue[i];
        if (!id_ok(&m->component) || !id_ok(&m->manifest_id)) {
            return fail(why, "catalogue: bad component or manifest id", TAM_EINVAL);
        }
        if (m->n_deps > TAM_PLAN_MAX_DEPS) {
            return fail(why, "catalogue: too many dependencies", TAM_ETOOBIG);
        }
        if (!ids_ok(m->deps, m->n_deps)) {
            return fail(why, "catalogue: bad dependency id", TAM_EINVAL);
        }
    }
    return TAM_OK;
}

static int check_device(const struct tam_plan_device *d, const char **why)
{
    if (d->n_labels > TAM_PLAN_MAX_LABELS) {
        return fail(why, "device: too many labels", TAM_ETOOBIG);
    }
    if (!labels_ok(d->labels, d->n_labels)) {
        return fail(why, "device: bad label", TAM_EINVAL);
    }
    if (d->n_installed > TAM_PLAN_MAX_INSTALLED) {
        return fail(why, "device: too many installed components", TAM_ETOOBIG);
    }
    if (d->n_installed > 0 && d->installed == NULL) {
        return fail(why, "device: NULL installed list", TAM_EINVAL);
    }
    for (uint32_t i = 0; i < d->n_installed; i++) {
        const struct tam_plan_installed *r = &d->installed[i];
        if (!id_ok(&r->component) || (r->has_manifest_id && !id_ok(&r->manifest_id))) {
            return fail(why, "device: bad installed id", TAM_EINVAL);
        }
    }
    return TAM_OK;
}

static int check_rule(const struct tam_plan_rule *r, const char **why)
{
    if (r->match != TAM_PLAN_MATCH_ALL && r->match != TAM_PLAN_MATCH_LABELS &&
        r->match != TAM_PLAN_MATCH_DEVICE) {
        return fail(why, "policy: unknown match kind", TAM_EINVAL);
    }
    if (r->n_labels > TAM_PLAN_MAX_LABELS) {
        return fail(why, "policy: too many labels in a rule", TAM_ETOOBIG);
    }
    if (!labels_ok(r->labels, r->n_labels)) {
        return fail(why, "policy: bad label", TAM_EINVAL);
    }
    if (r->n_install > 0 && r->install == NULL) {
        return fail(why, "policy: NULL install list", TAM_EINVAL);
    }
    for (uint32_t i = 0; i < r->n_install; i++) {
        if (!id_ok(&r->install[i].component)) {
            return fail(why, "policy: bad install id", TAM_EINVAL);
        }
    }
    if (!ids_ok(r->remove, r->n_remove)) {
        return fail(why, "policy: bad remove id", TAM_EINVAL);
    }
    return TAM_OK;
}

static int check_policy(const struct tam_plan_policy *p, const char **why)
{
    if (p->n_rules > TAM_PLAN_MAX_RULES) {
        return fail(why, "policy: too many rules", TAM_ETOOBIG);
    }
    if (p->n_rules > 0 && p->rules == NULL) {
        return fail(why, "policy: NULL rule list", TAM_EINVAL);
    }
    uint64_t items = 0;
    for (uint32_t i = 0; i < p->n_rules; i++) {
        int err = check_rule(&p->rules[i], why);
        if (err != TAM_OK) {
            return err;
        }
        items += (uint64_t)p->rules[i].n_install + p->rules[i].n_remove;
    }
    if (items > TAM_PLAN_MAX_POLICY_ITEMS) {
        return fail(why, "policy: too many install/remove entries", TAM_ETOOBIG);
    }
    return TAM_OK;
}

static int check_query(const struct tam_plan_query *q, const char **why)
{
    if (q->n_tc_list > TAM_TEEP_MAX_LIST || q->n_requested > TAM_TEEP_MAX_LIST ||
        q->n_unneeded > TAM_TEEP_MAX_LIST) {
        return fail(why, "query: list too long", TAM_ETOOBIG);
    }
    if ((q->n_tc_list > 0 && q->tc_list == NULL) || (q->n_requested > 0 && q->requested == NULL)) {
        return fail(why, "query: NULL list", TAM_EINVAL);
    }
    for (uint32_t i = 0; i < q->n_tc_list; i++) {
        if (!id_ok(&q->tc_list[i].id)) {
            return fail(why, "query: bad tc-list id", TAM_EINVAL);
        }
    }
    for (uint32_t i = 0; i < q->n_requested; i++) {
        if (!id_ok(&q->requested[i].id)) {
            return fail(why, "query: bad requested-tc-list id", TAM_EINVAL);
        }
    }
    if (!ids_ok(q->unneeded, q->n_unneeded)) {
        return fail(why, "query: bad unneeded-manifest-list id", TAM_EINVAL);
    }
    return TAM_OK;
}

/* ---------------------------------------------------------------- scratch vectors */

struct vec {
    void *v;
    size_t n, cap;
};

static int vec_push(struct vec *vec, size_t size, const void *item)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? 2 * vec->cap : 16;
        void *p = tam_realloc(vec->v, cap * size);
        if (p == NULL) {
            return TAM_ENOMEM;
        }
        vec->v = p;
        vec->cap = cap;
    }
    memcpy((char *)vec->v + vec->n * size, item, size);
    vec->n++;
    return TAM_OK;
}

/* ---------------------------------------------------------------- planning state */

enum { S_NONE = 0, S_STACK = 1, S_DONE = 2 };

/* Everything the inputs say about one component id. */
struct group {
    const struct tam_teep_component_id *key;
    const struct tam_plan_installed *rec; /* best record (highest sequence) */
    bool listed, listed_has_seq;
    uint64_t listed_seq;
    bool desired, has_min, removed, requested, req_has_min, have_binary, dev_unneeded;
    uint64_t min, req_min;
    /* Derived. */
    bool present;
    uint64_t known;
    /* Decisions. */
    enum tam_plan_reason action; /* 0: nothing to send */
    uint32_t target;
    bool required; /* policy wants it, or a planned manifest depends on it */
    bool emitted;  /* some manifest of this component is in the order */
};

struct unlink_cand {
    const struct tam_teep_component_id *mid;
    const struct tam_teep_component_id *comp; /* NULL when unknown */
};

struct ctx {
    const struct tam_plan_manifest *cat;
    uint32_t n_cat;
    const struct tam_plan_policy *policy;
    const struct tam_plan_device *dev;
    const struct tam_plan_query *q;
    const struct tam_plan_manifest **by_comp; /* component asc, sequence desc, ... */
    const struct tam_plan_manifest **by_mid;  /* manifest id asc, sequence desc, ... */
    const struct tam_plan_installed **rec_by_mid;
    uint32_t n_rec_mid;
    struct group *groups;
    uint32_t n_groups;
    uint8_t *state;  /* per catalogue index: S_* */
    uint32_t *order; /* catalogue indexes to send, in order */
    uint32_t n_order;
    struct vec notes;   /* struct tam_plan_note */
    struct vec unlinks; /* struct unlink_cand */
};

static int digest_cmp(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, TAM_PLAN_DIGEST_LEN);
}

/* Orders two catalogue entries after their primary key: all remaining content. */
static int manifest_tiebreak(const struct tam_plan_manifest *a, const struct tam_plan_manifest *b)
{
    int c = u64_cmp_desc(a->sequence, b->sequence);
    if (c == 0) {
        c = digest_cmp(a->digest, b->digest);
    }
    if (c == 0) {
        c = (a->n_deps > b->n_deps) - (a->n_deps < b->n_deps);
    }
    for (uint32_t i = 0; c == 0 && i < a->n_deps; i++) {
        c = tam_plan_id_cmp(&a->deps[i], &b->deps[i]);
    }
    return c;
}

static int cmp_by_comp(const void *pa, const void *pb)
{
    const struct tam_plan_manifest *a = *(const struct tam_plan_manifest *const *)pa;
    const struct tam_plan_manifest *b = *(const struct tam_plan_manifest *const *)pb;
    int c = tam_plan_id_cmp(&a->component, &b->component);
    if (c == 0) {
        c = manifest_tiebreak(a, b);
    }
    return c != 0 ? c : tam_plan_id_cmp(&a->manifest_id, &b->manifest_id);
}

static int cmp_by_mid(const void *pa, const void *pb)
{
    const struct tam_plan_manifest *a = *(const struct tam_plan_manifest *const *)pa;
    const struct tam_plan_manifest *b = *(const struct tam_plan_manifest *const *)pb;
    int c = tam_plan_id_cmp(&a->manifest_id, &b->manifest_id);
    if (c == 0) {
        c = manifest_tiebreak(a, b);
    }
    return c != 0 ? c : tam_plan_id_cmp(&a->component, &b->component);
}

/* Record order within one key: highest sequence, then smaller digest, then manifest id. */
static int record_rank(const struct tam_plan_installed *a, const struct tam_plan_installed *b)
{
    int c = u64_cmp_desc(a->sequence, b->sequence);
    if (c == 0) {
        c = digest_cmp(a->digest, b->digest);
    }
    if (c == 0) {
        c = (b->has_manifest_id > a->has_manifest_id) - (b->has_manifest_id < a->has_manifest_id);
    }
    if (c == 0 && a->has_manifest_id) {
        c = tam_plan_id_cmp(&a->manifest_id, &b->manifest_id);
    }
    return c;
}

static int cmp_rec_by_mid(const void *pa, const void *pb)
{
    const struct tam_plan_installed *a = *(const struct tam_plan_installed *const *)pa;
    const struct tam_plan_installed *b = *(const struct tam_plan_installed *const *)pb;
    int c = tam_plan_id_cmp(&a->manifest_id, &b->manifest_id);
    if (c == 0) {
        c = record_rank(a, b);
    }
    return c != 0 ? c : tam_plan_id_cmp(&a->component, &b->component);
}

/* First catalogue entry (in by_comp or by_mid) whose key equals id, or NULL. */
static const struct tam_plan_manifest *find_manifest(const struct tam_plan_manifest **v, uint32_t n,
                                                     const struct tam_teep_component_id *id,
                                                     bool by_mid)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct tam_teep_component_id *k = by_mid ? &v[mid]->manifest_id : &v[mid]->component;
        if (tam_plan_id_cmp(k, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == n) {
        return NULL;
    }
    const struct tam_teep_component_id *k = by_mid ? &v[lo]->manifest_id : &v[lo]->component;
    return tam_plan_id_eq(k, id) ? v[lo] : NULL;
}

static const struct tam_plan_installed *find_record_by_mid(const struct ctx *c,
                                                           const struct tam_teep_component_id *id)
{
    uint32_t lo = 0, hi = c->n_rec_mid;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (tam_plan_id_cmp(&c->rec_by_mid[mid]->manifest_id, id) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < c->n_rec_mid && tam_plan_id_eq(&c->rec_by_mid[lo]->manifest_id, id)) {
        return c->rec_by_mid[lo];
    }
    return NULL;
}

static struct group *find_group(const struct ctx *c, const struct tam_teep_component_id *id)
{
    uint32_t lo = 0, hi = c->n_groups;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = tam_plan_id_cmp(c->groups[mid].key, id);
        if (r == 0) {
            return &c->groups[mid];
        }
        if (r < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static uint32_t cat_index(const struct ctx *c, const struct tam_plan_manifest *m)
{
    return (uint32_t)(m - c->cat);
}

static int add_note(struct ctx *c, enum tam_plan_note_kind kind,
                    const struct tam_teep_component_id *id, uint64_t seq)
{
    struct tam_plan_note n = {kind, id, seq};
    return vec_push(&c->notes, sizeof(n), &n);
}

static int add_unlink(struct ctx *c, const struct tam_teep_component_id *mid,
                      const struct tam_teep_component_id *comp)
{
    struct unlink_cand u = {mid, comp};
    return vec_push(&c->unlinks, sizeof(u), &u);
}

static int build_indexes(struct ctx *c)
{
    c->by_comp = tam_calloc(c->n_cat + 1u, sizeof(*c->by_comp));
    c->by_mid = tam_calloc(c->n_cat + 1u, sizeof(*c->by_mid));
    c->state = tam_calloc(c->n_cat + 1u, 1);
    c->order = tam_calloc(c->n_cat + 1u, sizeof(*c->order));
    c->rec_by_mid = tam_calloc(c->dev->n_installed + 1u, sizeof(*c->rec_by_mid));
    if (c->by_comp == NULL || c->by_mid == NULL || c->state == NULL || c->order == NULL ||
        c->rec_by_mid == NULL) {
        return TAM_ENOMEM;
    }
    for (uint32_t i = 0; i < c->n_cat; i++) {
        c->by_comp[i] = &c->cat[i];
        c->by_mid[i] = &c->cat[i];
    }
    qsort(c->by_comp, c->n_cat, sizeof(*c->by_comp), cmp_by_comp);
    qsort(c->by_mid, c->n_cat, sizeof(*c->by_mid), cmp_by_mid);
    for (uint32_t i = 0; i < c->dev->n_installed; i++) {
        if (c->dev->installed[i].has_manifest_id) {
            c->rec_by_mid[c->n_rec_mid++] = &c->dev->installed[i];
        }
    }
    qsort(c->rec_by_mid, c->n_rec_mid, sizeof(*c->rec_by_mid), cmp_rec_by_mid);
    return TAM_OK;
}

/* ---------------------------------------------------------------- groups */

enum contrib_kind { C_INSTALL, C_REMOVE, C_REQUEST, C_RECORD, C_LISTED, C_UNNEEDED };

struct contrib {
    const struct tam_teep_component_id *key;
    const void *src;
    enum contrib_kind kind;
};

static int cmp_contrib(const void *pa, const void *pb)
{
    const struct contrib *a = pa;
    const struct contrib *b = pb;
    return tam_plan_id_cmp(a->key, b->key);
}

static bool has_label(const struct tam_plan_device *d, const struct tam_bytes *label)
{
    for (uint32_t i = 0; i < d->n_labels; i++) {
        if (bytes_cmp(&d->labels[i], label) == 0) {
            return true;
        }
    }
    return false;
}

static bool rule_matches(const struct tam_plan_rule *r, const struct tam_plan_device *d)
{
    switch (r->match) {
    case TAM_PLAN_MATCH_ALL:
        return true;
    case TAM_PLAN_MATCH_LABELS:
        for (uint32_t i = 0; i < r->n_labels; i++) {
            if (!has_label(d, &r->labels[i])) {
                return false;
            }
        }
        return true;
    case TAM_PLAN_MATCH_DEVICE:
        return d->has_kid && memcmp(d->kid, r->kid, TAM_PLAN_KID_LEN) == 0;
    }
    return false;
}

/* The component a manifest id stands for: the records' first, then the catalogue's. */
static const struct tam_teep_component_id *resolve_mid(const struct ctx *c,
                                                       const struct tam_teep_component_id *mid)
{
    const struct tam_plan_installed *r = find_record_by_mid(c, mid);
    if (r != NULL) {
        return &r->component;
    }
    const struct tam_plan_manifest *m = find_manifest(c->by_mid, c->n_cat, mid, true);
    return m != NULL ? &m->component : NULL;
}

static int push_contrib(struct vec *v, const struct tam_teep_component_id *key, const void *src,
                        enum contrib_kind kind)
{
    struct contrib ct = {key, src, kind};
    return vec_push(v, sizeof(ct), &ct);
}

static int collect_policy(const struct ctx *c, struct vec *v)
{
    int err = TAM_OK;
    for (uint32_t i = 0; i < c->policy->n_rules && err == TAM_OK; i++) {
        const struct tam_plan_rule *r = &c->policy->rules[i];
        if (!rule_matches(r, c->dev)) {
            continue;
        }
        for (uint32_t j = 0; j < r->n_install && err == TAM_OK; j++) {
            err = push_contrib(v, &r->install[j].component, &r->install[j], C_INSTALL);
        }
        for (uint32_t j = 0; j < r->n_remove && err == TAM_OK; j++) {
            err = push_contrib(v, &r->remove[j], NULL, C_REMOVE);
        }
    }
    return err;
}

static int collect_device(const struct ctx *c, struct vec *v)
{
    int err = TAM_OK;
    const struct tam_plan_query *q = c->q;
    for (uint32_t i = 0; i < q->n_requested && err == TAM_OK; i++) {
        err = push_contrib(v, &q->requested[i].id, &q->requested[i], C_REQUEST);
    }
    for (uint32_t i = 0; i < q->n_tc_list && err == TAM_OK; i++) {
        err = push_contrib(v, &q->tc_list[i].id, &q->tc_list[i], C_LISTED);
    }
    for (uint32_t i = 0; i < c->dev->n_installed && err == TAM_OK; i++) {
        const struct tam_plan_installed *r = &c->dev->installed[i];
        err = push_contrib(v, &r->component, r, C_RECORD);
    }
    for (uint32_t i = 0; i < q->n_unneeded && err == TAM_OK; i++) {
        const struct tam_teep_component_id *comp = resolve_mid(c, &q->unneeded[i]);
        if (comp != NULL) {
            err = push_contrib(v, comp, NULL, C_UNNEEDED);
        }
    }
    return err;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* Merges one contribution into its group. Commutative, so the input order is irrelevant. */
static void merge(struct group *g, const struct contrib *ct)
{
    switch (ct->kind) {
    case C_INSTALL: {
        const struct tam_plan_install *in = ct->src;
        g->desired = true;
        if (in->has_min_sequence) {
            g->min = g->has_min ? max_u64(g->min, in->min_sequence) : in->min_sequence;
            g->has_min = true;
        }
        break;
    }
    case C_REMOVE:
        g->removed = true;
        break;
    case C_REQUEST: {
        const struct tam_teep_req_tc *rq = ct->src;
        g->requested = true;
        if (rq->has_seq) {
            g->req_min = g->req_has_min ? max_u64(g->req_min, rq->seq) : rq->seq;
            g->req_has_min = true;
        }
        g->have_binary = g->have_binary || (rq->has_have_binary && rq->have_binary);
        break;
    }
    case C_RECORD: {
        const struct tam_plan_installed *r = ct->src;
        if (g->rec == NULL || record_rank(r, g->rec) < 0) {
            g->rec = r;
        }
        break;
    }
    case C_LISTED: {
        const struct tam_teep_tc *tc = ct->src;
        g->listed = true;
        if (tc->has_seq) {
            g->listed_seq = g->listed_has_seq ? max_u64(g->listed_seq, tc->seq) : tc->seq;
            g->listed_has_seq = true;
        }
        break;
    }
    case C_UNNEEDED:
        g->dev_unneeded = true;
        break;
    }
}

/* Presence and known sequence (see "What the device has" in plan.h). */
static void derive(struct group *g, bool authoritative)
{
    bool rec_ok = g->rec != NULL && !(authoritative && !g->listed);
    g->present = g->listed || rec_ok;
    g->known = rec_ok ? g->rec->sequence : 0;
    if (g->listed_has_seq) {
        g->known = max_u64(g->known, g->listed_seq);
    }
}

static int build_groups(struct ctx *c)
{
    struct vec v = {0};
    int err = collect_policy(c, &v);
    if (err == TAM_OK) {
        err = collect_device(c, &v);
    }
    if (err == TAM_OK) {
        c->groups = tam_calloc(v.n + 1u, sizeof(*c->groups));
        err = c->groups == NULL ? TAM_ENOMEM : TAM_OK;
    }
    if (err != TAM_OK) {
        tam_free(v.v);
        return err;
    }
    struct contrib *ct = v.v;
    if (v.n > 0) {
        qsort(ct, v.n, sizeof(*ct), cmp_contrib);
    }
    for (size_t i = 0; i < v.n; i++) {
        if (c->n_groups == 0 || !tam_plan_id_eq(c->groups[c->n_groups - 1].key, ct[i].key)) {
            c->groups[c->n_groups++].key = ct[i].key;
        }
        merge(&c->groups[c->n_groups - 1], &ct[i]);
    }
    for (uint32_t i = 0; i < c->n_groups; i++) {
        derive(&c->groups[i], c->q->tc_list_authoritative);
    }
    tam_free(v.v);
    return TAM_OK;
}

/* ---------------------------------------------------------------- decisions */

/*
 * The target for a component: its highest-sequence catalogue entry, which must
 * reach min when has_min. TAM_OK and *out, or the note kind explaining why not.
 */
static bool find_target(const struct ctx *c, const struct tam_teep_component_id *comp, bool has_min,
                        uint64_t min, uint32_t *out, enum tam_plan_note_kind *why)
{
    const struct tam_plan_manifest *m = find_manifest(c->by_comp, c->n_cat, comp, false);
    if (m == NULL) {
        *why = TAM_PLAN_NOTE_UNAVAILABLE;
        return false;
    }
    if (has_min && m->sequence < min) {
        *why = TAM_PLAN_NOTE_UNSATISFIABLE;
        return false;
    }
    *out = cat_index(c, m);
    return true;
}

static int serve_request(struct ctx *c, struct group *g)
{
    enum tam_plan_note_kind why = TAM_PLAN_NOTE_UNAVAILABLE;
    uint32_t t = 0;
    if (!find_target(c, g->key, g->req_has_min, g->req_min, &t, &why)) {
        return add_note(c, why, g->key, g->req_min);
    }
    uint64_t seq = c->cat[t].sequence;
    if (g->present && (g->known > seq || (g->listed && g->known == seq))) {
        return TAM_OK; /* listed up to date, or a downgrade */
    }
    g->action = TAM_PLAN_REQUESTED;
    g->target = t;
    return TAM_OK;
}

static int plan_removal(struct ctx *c, struct group *g)
{
    if (g->requested && !g->dev_unneeded) {
        int err = add_note(c, TAM_PLAN_NOTE_DENIED, g->key, 0);
        if (err != TAM_OK) {
            return err;
        }
    }
    if (!g->present) {
        return TAM_OK;
    }
    if (g->rec != NULL && g->rec->has_manifest_id) {
        return add_unlink(c, &g->rec->manifest_id, g->key);
    }
    const struct tam_plan_manifest *m = find_manifest(c->by_comp, c->n_cat, g->key, false);
    if (m != NULL) {
        return add_unlink(c, &m->manifest_id, g->key);
    }
    return add_note(c, TAM_PLAN_NOTE_UNRESOLVED, g->key, 0);
}

static int decide(struct ctx *c, struct group *g)
{
    if (g->removed) {
        return plan_removal(c, g);
    }
    bool want_request = g->requested && !g->dev_unneeded;
    if (g->desired) {
        enum tam_plan_note_kind why = TAM_PLAN_NOTE_UNAVAILABLE;
        uint32_t t = 0;
        if (!find_target(c, g->key, g->has_min, g->min, &t, &why)) {
            return add_note(c, why, g->key, g->min);
        }
        if (!g->present || g->known < c->cat[t].sequence) {
            g->action = g->present ? TAM_PLAN_UPDATE : TAM_PLAN_INSTALL;
            g->target = t;
            return TAM_OK;
        }
        return want_request ? serve_request(c, g) : TAM_OK;
    }
    if (!want_request) {
        return TAM_OK;
    }
    if (c->policy->deny_requested) {
        return add_note(c, TAM_PLAN_NOTE_DENIED, g->key, 0);
    }
    return serve_request(c, g);
}

/* ---------------------------------------------------------------- dependencies */

enum dep_state { DEP_SATISFIED, DEP_NEED, DEP_MISSING, DEP_REMOVED };

static enum dep_state resolve_dep(const struct ctx *c, const struct tam_teep_component_id *dep,
                                  uint32_t *out)
{
    const struct tam_plan_manifest *m = find_manifest(c->by_mid, c->n_cat, dep, true);
    if (m == NULL) {
        return find_record_by_mid(c, dep) != NULL ? DEP_SATISFIED : DEP_MISSING;
    }
    const struct group *g = find_group(c, &m->component);
    if (g != NULL && g->removed) {
        return DEP_REMOVED;
    }
    if (g != NULL && (g->emitted || (g->present && g->known >= m->sequence))) {
        return DEP_SATISFIED;
    }
    *out = cat_index(c, m);
    return DEP_NEED;
}

static void sort_deps(const struct tam_plan_manifest *m, const struct tam_teep_component_id **out)
{
    for (uint32_t i = 0; i < m->n_deps; i++) {
        uint32_t j = i;
        while (j > 0 && tam_plan_id_cmp(out[j - 1], &m->deps[i]) > 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = &m->deps[i];
    }
}

static void emit(struct ctx *c, uint32_t idx)
{
    c->state[idx] = S_DONE;
    c->order[c->n_order++] = idx;
    struct group *g = find_group(c, &c->cat[idx].component);
    if (g != NULL) {
        g->emitted = true;
    }
}

/* Depth-first: a manifest's missing dependencies, then the manifest. 0 or a note kind + 1. */
static int expand(struct ctx *c, uint32_t idx, unsigned depth)
{
    if (c->state[idx] == S_DONE) {
        return 0;
    }
    if (c->state[idx] == S_STACK) {
        return TAM_PLAN_NOTE_DEP_CYCLE + 1;
    }
    if (depth > TAM_PLAN_MAX_DEPTH) {
        return TAM_PLAN_NOTE_DEP_DEPTH + 1;
    }
    c->state[idx] = S_STACK;
    const struct tam_teep_component_id *deps[TAM_PLAN_MAX_DEPS] = {0};
    sort_deps(&c->cat[idx], deps);
    int rc = 0;
    for (uint32_t i = 0; i < c->cat[idx].n_deps && rc == 0; i++) {
        uint32_t j = 0;
        switch (resolve_dep(c, deps[i], &j)) {
        case DEP_SATISFIED:
            break;
        case DEP_NEED:
            rc = expand(c, j, depth + 1);
            break;
        case DEP_MISSING:
            rc = TAM_PLAN_NOTE_DEP_MISSING + 1;
            break;
        case DEP_REMOVED:
            rc = TAM_PLAN_NOTE_DEP_REMOVED + 1;
            break;
        }
    }
    if (rc != 0) {
        c->state[idx] = S_NONE;
        return rc;
    }
    emit(c, idx);
    return 0;
}

static void rollback(struct ctx *c, uint32_t start)
{
    for (uint32_t i = start; i < c->n_order; i++) {
        c->state[c->order[i]] = S_NONE;
        struct group *g = find_group(c, &c->cat[c->order[i]].component);
        if (g != NULL) {
            g->emitted = false;
        }
    }
    c->n_order = start;
}

static int order_manifests(struct ctx *c)
{
    for (uint32_t i = 0; i < c->n_groups; i++) {
        struct group *g = &c->groups[i];
        if (g->action == 0 || g->emitted) {
            continue;
        }
        uint32_t start = c->n_order;
        int rc = expand(c, g->target, 0);
        if (rc != 0) {
            rollback(c, start);
            int err =
                add_note(c, (enum tam_plan_note_kind)(rc - 1), g->key, c->cat[g->target].sequence);
            if (err != TAM_OK) {
                return err;
            }
        }
    }
    return TAM_OK;
}

static void mark_required_mid(struct ctx *c, const struct tam_teep_component_id *mid)
{
    const struct tam_teep_component_id *comp = resolve_mid(c, mid);
    struct group *g = comp != NULL ? find_group(c, comp) : NULL;
    if (g != NULL) {
        g->required = true;
    }
}

/* Components that a planned manifest is, or depends on, must not be unlinked. */
static void mark_required(struct ctx *c)
{
    for (uint32_t i = 0; i < c->n_groups; i++) {
        struct group *g = &c->groups[i];
        g->required = g->required || (g->desired && !g->removed);
    }
    for (uint32_t i = 0; i < c->n_order; i++) {
        const struct tam_plan_manifest *m = &c->cat[c->order[i]];
        struct group *g = find_group(c, &m->component);
        if (g != NULL) {
            g->required = true;
        }
        for (uint32_t j = 0; j < m->n_deps; j++) {
            mark_required_mid(c, &m->deps[j]);
        }
    }
}

static int plan_device_unneeded(struct ctx *c)
{
    for (uint32_t i = 0; i < c->q->n_unneeded; i++) {
        const struct tam_teep_component_id *mid = &c->q->unneeded[i];
        const struct tam_teep_component_id *comp = resolve_mid(c, mid);
        const struct group *g = comp != NULL ? find_group(c, comp) : NULL;
        int err = g != NULL && g->required ? add_note(c, TAM_PLAN_NOTE_KEPT, mid, 0)
                                           : add_unlink(c, mid, comp);
        if (err != TAM_OK) {
            return err;
        }
    }
    return TAM_OK;
}

/* ---------------------------------------------------------------- output */

static int cmp_unlink(const void *pa, const void *pb)
{
    const struct unlink_cand *a = pa;
    const struct unlink_cand *b = pb;
    int c = tam_plan_id_cmp(a->mid, b->mid);
    if (c != 0) {
        return c;
    }
    if (a->comp == NULL || b->comp == NULL) {
        return (a->comp == NULL) - (b->comp == NULL); /* known component first */
    }
    return tam_plan_id_cmp(a->comp, b->comp);
}

static int cmp_note(const void *pa, const void *pb)
{
    const struct tam_plan_note *a = pa;
    const struct tam_plan_note *b = pb;
    if (a->kind != b->kind) {
        return a->kind < b->kind ? -1 : 1;
    }
    int c = tam_plan_id_cmp(a->id, b->id);
    return c != 0 ? c : (a->sequence > b->sequence) - (a->sequence < b->sequence);
}

static void fill_entry(const struct ctx *c, uint32_t idx, struct tam_plan_entry *e)
{
    const struct tam_plan_manifest *m = &c->cat[idx];
    const struct group *g = find_group(c, &m->component);
    e->manifest = m;
    e->index = idx;
    e->reason = TAM_PLAN_DEPENDENCY;
    if (g != NULL && g->action != 0 && g->target == idx) {
        e->reason = g->action;
        e->have_binary = g->have_binary;
    }
    e->was_present = g != NULL && g->present;
    e->installed_sequence = g != NULL ? g->known : 0;
}

static int output_entries(struct ctx *c, uint32_t max, struct tam_arena *arena,
                          struct tam_plan *out)
{
    uint32_t n = c->n_order < max ? c->n_order : max;
    out->entries = tam_arena_array(arena, n + 1u, sizeof(*out->entries));
    if (out->entries == NULL) {
        return TAM_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        fill_entry(c, c->order[i], &out->entries[i]);
    }
    out->n_entries = n;
    for (uint32_t i = n; i < c->n_order; i++) {
        const struct tam_plan_manifest *m = &c->cat[c->order[i]];
        int err = add_note(c, TAM_PLAN_NOTE_DEFERRED, &m->component, m->sequence);
        if (err != TAM_OK) {
            return err;
        }
    }
    return TAM_OK;
}

static int output_unlinks(struct ctx *c, uint32_t max, struct tam_arena *arena,
                          struct tam_plan *out)
{
    struct unlink_cand *u = c->unlinks.v;
    size_t n = c->unlinks.n;
    if (n > 0) {
        qsort(u, n, sizeof(*u), cmp_unlink);
    }
    out->unlink = tam_arena_array(arena, n + 1u, sizeof(*out->unlink));
    out->unlink_component = tam_arena_array(arena, n + 1u, sizeof(*out->unlink_component));
    if (out->unlink == NULL || out->unlink_component == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && tam_plan_id_eq(u[i - 1].mid, u[i].mid)) {
            continue; /* duplicates are adjacent; the first has the best component */
        }
        if (out->n_unlink == max) {
            int err = add_note(c, TAM_PLAN_NOTE_UNLINK_DEFERRED, u[i].mid, 0);
            if (err != TAM_OK) {
                return err;
            }
            continue;
        }
        out->unlink[out->n_unlink] = *u[i].mid;
        out->unlink_component[out->n_unlink] = u[i].comp;
        out->n_unlink++;
    }
    return TAM_OK;
}

static int output_notes(struct ctx *c, struct tam_arena *arena, struct tam_plan *out)
{
    struct tam_plan_note *v = c->notes.v;
    size_t n = c->notes.n;
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_note);
    }
    out->notes = tam_arena_array(arena, n + 1u, sizeof(*out->notes));
    if (out->notes == NULL) {
        return TAM_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        out->notes[i] = v[i];
        out->count[v[i].kind]++;
    }
    out->n_notes = (uint32_t)n;
    return TAM_OK;
}

/* ---------------------------------------------------------------- compute */

static int check_input(const struct ctx *c, const struct tam_plan_input *in, const char **why)
{
    if (in->max_manifests > TAM_PLAN_MAX_MANIFESTS || in->max_unlinks > TAM_TEEP_MAX_LIST) {
        return fail(why, "limits: max_manifests or max_unlinks too large", TAM_EINVAL);
    }
    int err = check_catalogue(in, why);
    if (err == TAM_OK) {
        err = check_device(c->dev, why);
    }
    if (err == TAM_OK) {
        err = check_policy(c->policy, why);
    }
    if (err == TAM_OK) {
        err = check_query(c->q, why);
    }
    return err;
}

static int run(struct ctx *c, const struct tam_plan_input *in, struct tam_arena *arena,
               struct tam_plan *out)
{
    int err = build_indexes(c);
    if (err == TAM_OK) {
        err = build_groups(c);
    }
    for (uint32_t i = 0; i < c->n_groups && err == TAM_OK; i++) {
        err = decide(c, &c->groups[i]);
    }
    if (err == TAM_OK) {
        err = order_manifests(c);
    }
    if (err == TAM_OK) {
        mark_required(c);
        err = plan_device_unneeded(c);
    }
    uint32_t max_m = in->max_manifests ? in->max_manifests : TAM_PLAN_DEFAULT_MAX_MANIFESTS;
    uint32_t max_u = in->max_unlinks ? in->max_unlinks : TAM_PLAN_DEFAULT_MAX_UNLINKS;
    if (err == TAM_OK) {
        err = output_entries(c, max_m, arena, out);
    }
    if (err == TAM_OK) {
        err = output_unlinks(c, max_u, arena, out);
    }
    if (err == TAM_OK) {
        err = output_notes(c, arena, out);
    }
    return err;
}

int tam_plan_compute(const struct tam_plan_input *in, struct tam_arena *arena, struct tam_plan *out,
                     const char **why)
{
    static const struct tam_plan_policy no_policy;
    static const struct tam_plan_device no_device;
    static const struct tam_plan_query no_query;
    memset(out, 0, sizeof(*out));
    struct ctx c = {
        .cat = in->catalogue,
        .n_cat = in->n_catalogue,
        .policy = in->policy != NULL ? in->policy : &no_policy,
        .dev = in->device != NULL ? in->device : &no_device,
        .q = in->query != NULL ? in->query : &no_query,
    };
    int err = check_input(&c, in, why);
    if (err == TAM_OK) {
        err = run(&c, in, arena, out);
        if (err == TAM_ENOMEM) {
            fail(why, "out of memory", err);
        }
    }
    tam_free(c.by_comp);
    tam_free(c.by_mid);
    tam_free(c.rec_by_mid);
    tam_free(c.state);
    tam_free(c.order);
    tam_free(c.groups);
    tam_free(c.notes.v);
    tam_free(c.unlinks.v);
    return err;
}

bool tam_plan_is_empty(const struct tam_plan *plan)
{
    return plan->n_entries == 0 && plan->n_unlink == 0;
}

void tam_plan_fill_update(const struct tam_plan *plan, struct tam_teep_msg *update)
{
    update->has_unneeded = plan->n_unlink > 0;
    update->n_unneeded = plan->n_unlink;
    update->unneeded = plan->n_unlink > 0 ? plan->unlink : NULL;
}

void tam_plan_query_from_msg(const struct tam_teep_msg *msg, bool tc_list_authoritative,
                             struct tam_plan_query *q)
{
    memset(q, 0, sizeof(*q));
    if (msg->has_tc_list) {
        q->n_tc_list = msg->n_tc_list;
        q->tc_list = msg->tc_list;
    }
    if (msg->has_requested_tc_list) {
        q->n_requested = msg->n_requested_tc_list;
        q->requested = msg->requested_tc_list;
    }
    if (msg->has_unneeded) {
        q->n_unneeded = msg->n_unneeded;
        q->unneeded = msg->unneeded;
    }
    q->tc_list_authoritative = tc_list_authoritative;
}

/* ---------------------------------------------------------------- apply */

struct apply_rec {
    struct tam_plan_installed rec;
    bool is_new;
};

static int cmp_apply(const void *pa, const void *pb)
{
    const struct apply_rec *a = pa;
    const struct apply_rec *b = pb;
    int c = tam_plan_id_cmp(&a->rec.component, &b->rec.component);
    if (c == 0) {
        c = (b->is_new > a->is_new) - (b->is_new < a->is_new); /* the new record wins */
    }
    return c != 0 ? c : record_rank(&a->rec, &b->rec);
}

static int cmp_idp(const void *pa, const void *pb)
{
    return tam_plan_id_cmp(*(const struct tam_teep_component_id *const *)pa,
                           *(const struct tam_teep_component_id *const *)pb);
}

static int cmp_id(const void *pa, const void *pb)
{
    return tam_plan_id_cmp(pa, pb);
}

static bool in_sorted(const struct tam_teep_component_id *const *v, uint32_t n,
                      const struct tam_teep_component_id *key)
{
    return n > 0 && bsearch(&key, v, n, sizeof(*v), cmp_idp) != NULL;
}

static bool digest_failed(const uint8_t *digest, const struct tam_bytes *failed, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (failed[i].len == TAM_PLAN_DIGEST_LEN && failed[i].ptr != NULL &&
            memcmp(failed[i].ptr, digest, TAM_PLAN_DIGEST_LEN) == 0) {
            return true;
        }
    }
    return false;
}

/* Entry i failed: its digest is listed, or an earlier entry it depends on failed. */
static bool entry_failed(const struct tam_plan *plan, uint32_t i, const bool *failed_so_far,
                         const struct tam_bytes *failed, uint32_t n_failed)
{
    const struct tam_plan_manifest *m = plan->entries[i].manifest;
    if (digest_failed(m->digest, failed, n_failed)) {
        return true;
    }
    for (uint32_t d = 0; d < m->n_deps; d++) {
        for (uint32_t j = 0; j < i; j++) {
            if (failed_so_far[j] &&
                tam_plan_id_eq(&plan->entries[j].manifest->manifest_id, &m->deps[d])) {
                return true;
            }
        }
    }
    return false;
}

/* The old records that survive (on success, minus the unlinked ones). */
static void keep_old(const struct tam_plan *plan, const struct tam_plan_installed *old,
                     uint32_t n_old, bool unlink, const struct tam_teep_component_id **comps,
                     struct apply_rec *v, uint32_t *n)
{
    uint32_t n_comps = 0;
    for (uint32_t i = 0; unlink && i < plan->n_unlink; i++) {
        if (plan->unlink_component[i] != NULL) {
            comps[n_comps++] = plan->unlink_component[i];
        }
    }
    qsort(comps, n_comps, sizeof(*comps), cmp_idp);
    for (uint32_t i = 0; i < n_old; i++) {
        const struct tam_plan_installed *r = &old[i];
        bool gone = unlink && (in_sorted(comps, n_comps, &r->component) ||
                               (r->has_manifest_id && plan->n_unlink > 0 &&
                                bsearch(&r->manifest_id, plan->unlink, plan->n_unlink,
                                        sizeof(*plan->unlink), cmp_id) != NULL));
        if (!gone) {
            v[*n].rec = *r;
            v[(*n)++].is_new = false;
        }
    }
}

static int apply(const struct tam_plan *plan, const struct tam_plan_installed *old, uint32_t n_old,
                 bool ok, const struct tam_bytes *failed, uint32_t n_failed,
                 struct tam_arena *arena, struct tam_plan_installed **out, uint32_t *n_out)
{
    size_t cap = (size_t)n_old + plan->n_entries + 1u;
    struct apply_rec *v = tam_calloc(cap, sizeof(*v));
    bool *bad = tam_calloc(plan->n_entries + 1u, sizeof(*bad));
    const struct tam_teep_component_id **comps = tam_calloc(plan->n_unlink + 1u, sizeof(*comps));
    int err = v == NULL || bad == NULL || comps == NULL ? TAM_ENOMEM : TAM_OK;
    uint32_t n = 0;
    if (err == TAM_OK) {
        keep_old(plan, old, n_old, ok, comps, v, &n);
        for (uint32_t i = 0; i < plan->n_entries; i++) {
            const struct tam_plan_manifest *m = plan->entries[i].manifest;
            bad[i] = !ok && entry_failed(plan, i, bad, failed, n_failed);
            if (!bad[i]) {
                struct apply_rec *a = &v[n++];
                a->is_new = true;
                a->rec.component = m->component;
                a->rec.has_manifest_id = true;
                a->rec.manifest_id = m->manifest_id;
                a->rec.sequence = m->sequence;
                memcpy(a->rec.digest, m->digest, TAM_PLAN_DIGEST_LEN);
            }
        }
        qsort(v, n, sizeof(*v), cmp_apply);
        *out = tam_arena_array(arena, n + 1u, sizeof(**out));
        err = *out == NULL ? TAM_ENOMEM : TAM_OK;
    }
    if (err == TAM_OK) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < n; i++) {
            if (k == 0 || !tam_plan_id_eq(&(*out)[k - 1].component, &v[i].rec.component)) {
                (*out)[k++] = v[i].rec;
            }
        }
        *n_out = k;
    }
    tam_free(v);
    tam_free(bad);
    tam_free(comps);
    return err;
}

static int check_apply(const struct tam_plan *plan, const struct tam_plan_installed *old,
                       uint32_t n_old)
{
    if (n_old > TAM_PLAN_MAX_INSTALLED) {
        return TAM_ETOOBIG;
    }
    if ((n_old > 0 && old == NULL) || (plan->n_entries > 0 && plan->entries == NULL) ||
        (plan->n_unlink > 0 && (plan->unlink == NULL || plan->unlink_component == NULL))) {
        return TAM_EINVAL;
    }
    for (uint32_t i = 0; i < n_old; i++) {
        if (!id_ok(&old[i].component) || (old[i].has_manifest_id && !id_ok(&old[i].manifest_id))) {
            return TAM_EINVAL;
        }
    }
    return TAM_OK;
}

int tam_plan_apply_success(const struct tam_plan *plan, const struct tam_plan_installed *old,
                           uint32_t n_old, struct tam_arena *arena, struct tam_plan_installed **out,
                           uint32_t *n_out)
{
    int err = check_apply(plan, old, n_old);
    if (err != TAM_OK) {
        return err;
    }
    return apply(plan, old, n_old, true, NULL, 0, arena, out, n_out);
}

int tam_plan_apply_error(const struct tam_plan *plan, const struct tam_plan_installed *old,
                         uint32_t n_old, const struct tam_bytes *failed, uint32_t n_failed,
                         struct tam_arena *arena, struct tam_plan_installed **out, uint32_t *n_out)
{
    int err = check_apply(plan, old, n_old);
    if (err != TAM_OK) {
        return err;
    }
    if (n_failed > TAM_PLAN_MAX_MANIFESTS) {
        return TAM_ETOOBIG;
    }
    if (n_failed > 0 && failed == NULL) {
        return TAM_EINVAL;
    }
    return apply(plan, old, n_old, false, failed, n_failed, arena, out, n_out);
}

/* ---------------------------------------------------------------- names */

const char *tam_plan_reason_name(enum tam_plan_reason reason)
{
    switch (reason) {
    case TAM_PLAN_INSTALL:
        return "install";
    case TAM_PLAN_UPDATE:
        return "update";
    case TAM_PLAN_REQUESTED:
        return "requested";
    case TAM_PLAN_DEPENDENCY:
        return "dependency";
    }
    return "?";
}

const char *tam_plan_note_name(enum tam_plan_note_kind kind)
{
    static const char *const names[TAM_PLAN_NOTE_KINDS] = {
        "deferred",    "unlink-deferred", "unsatisfiable", "unavailable", "denied", "dep-missing",
        "dep-removed", "dep-cycle",       "dep-depth",     "unresolved",  "kept",
    };
    if ((unsigned)kind >= TAM_PLAN_NOTE_KINDS) {
        return "?";
    }
    return names[kind];
}
