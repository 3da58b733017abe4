/*
 * The JSON documents of store.h: the tenant policy (parsed strictly, with the member path of
 * the first problem in the error text) and device history entries.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tam/err.h"
#include "tam/store.h"

#define PATH_MAX_LEN 160

struct pctx {
    struct tam_arena *arena;
    char *why;
    size_t whysz;
    uint32_t items; /* install + remove entries over all rules */
};

static int perr(struct pctx *c, int err, const char *path, const char *fmt, ...) TAM_PRINTF(4, 5);

static int perr(struct pctx *c, int err, const char *path, const char *fmt, ...)
{
    if (c->why != NULL && c->whysz > 0) {
        int n = snprintf(c->why, c->whysz, "%s: ", path[0] != '\0' ? path : "policy");
        if (n >= 0 && (size_t)n < c->whysz) {
            va_list ap;
            va_start(ap, fmt);
            (void)vsnprintf(c->why + n, c->whysz - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return err;
}

static void sub_path(char *out, const char *path, const char *member, long index)
{
    int n;
    if (index >= 0) {
        n = snprintf(out, PATH_MAX_LEN, "%s%s%s[%ld]", path, path[0] && member[0] ? "." : "",
                     member, index);
    } else {
        n = snprintf(out, PATH_MAX_LEN, "%s%s%s", path, path[0] ? "." : "", member);
    }
    if (n < 0 || n >= PATH_MAX_LEN) {
        /* A path this deep only names a member of a hostile document: say so, shortened. */
        (void)memcpy(out + PATH_MAX_LEN - 4, "...", 4);
    }
}

/* Rejects members other than the NULL-terminated list. */
static int check_members(struct pctx *c, json_t *obj, const char *path, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++) {
            ok = strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            return perr(c, TAM_EINVAL, path, "unknown member \"%.40s\"", key);
        }
    }
    return TAM_OK;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* A JSON hex string of min..max bytes into arena memory. */
static int get_hex(struct pctx *c, json_t *v, const char *path, size_t min, size_t max,
                   struct tam_bytes *out)
{
    if (!json_is_string(v)) {
        return perr(c, TAM_EINVAL, path, "not a hex string");
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n % 2 != 0 || n / 2 < min || n / 2 > max) {
        return perr(c, TAM_EINVAL, path, "hex string of %zu..%zu bytes expected", min, max);
    }
    uint8_t *p = n > 0 ? tam_arena_alloc(c->arena, n / 2) : NULL;
    if (n > 0 && p == NULL) {
        return perr(c, TAM_ENOMEM, path, "out of memory");
    }
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]);
        int lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return perr(c, TAM_EINVAL, path, "not a hex string");
        }
        p[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = tam_bytes_of(p, n / 2);
    return TAM_OK;
}

static int get_id(struct pctx *c, json_t *v, const char *path, struct tam_teep_component_id *id)
{
    memset(id, 0, sizeof(*id));
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return perr(c, TAM_EINVAL, path, "an array of 1..%d hex segments expected",
                    TAM_TEEP_MAX_ID_SEGMENTS);
    }
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX_LEN];
        sub_path(p, path, "", (long)i);
        int err = get_hex(c, json_array_get(v, i), p, 0, 4096, &id->seg[i]);
        if (err != TAM_OK) {
            return err;
        }
    }
    id->n = (uint32_t)n;
    return TAM_OK;
}

/* A JSON array of at most max elements (absent = empty); *n its size. */
static int get_array(struct pctx *c, json_t *v, const char *path, size_t max, size_t *n)
{
    *n = 0;
    if (v == NULL) {
        return TAM_OK;
    }
    if (!json_is_array(v)) {
        return perr(c, TAM_EINVAL, path, "not an array");
    }
    *n = json_array_size(v);
    if (*n > max) {
        return perr(c, TAM_ETOOBIG, path, "more than %zu entries", max);
    }
    return TAM_OK;
}

static void *arena_array(struct pctx *c, size_t n, size_t size)
{
    return n > 0 ? tam_arena_array(c->arena, n, size) : NULL;
}

/* ---- rules ---- */

static int parse_install(struct pctx *c, json_t *v, const char *path, struct tam_plan_install *in)
{
    static const char *const known[] = {"component_id", "min_sequence", NULL};
    if (!json_is_object(v)) {
        return perr(c, TAM_EINVAL, path, "not an object");
    }
    int err = check_members(c, v, path, known);
    char p[PATH_MAX_LEN];
    sub_path(p, path, "component_id", -1);
    if (err == TAM_OK) {
        err = get_id(c, json_object_get(v, "component_id"), p, &in->component);
    }
    json_t *min = json_object_get(v, "min_sequence");
    if (err == TAM_OK && min != NULL) {
        if (!json_is_integer(min) || json_integer_value(min) < 0) {
            sub_path(p, path, "min_sequence", -1);
            return perr(c, TAM_EINVAL, p, "a non-negative integer expected");
        }
        in->has_min_sequence = true;
        in->min_sequence = (uint64_t)json_integer_value(min);
    }
    return err;
}

static int parse_installs(struct pctx *c, json_t *v, const char *path, struct tam_plan_rule *r)
{
    size_t n = 0;
    int err = get_array(c, v, path, TAM_PLAN_MAX_POLICY_ITEMS, &n);
    if (err != TAM_OK) {
        return err;
    }
    if (c->items + n > TAM_PLAN_MAX_POLICY_ITEMS) {
        return perr(c, TAM_ETOOBIG, path, "more than %d entries in the policy",
                    TAM_PLAN_MAX_POLICY_ITEMS);
    }
    c->items += (uint32_t)n;
    struct tam_plan_install *in = arena_array(c, n, sizeof(*in));
    if (n > 0 && in == NULL) {
        return perr(c, TAM_ENOMEM, path, "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        char p[PATH_MAX_LEN];
        sub_path(p, path, "", (long)i);
        err = parse_install(c, json_array_get(v, i), p, &in[i]);
    }
    r->n_install = (uint32_t)n;
    r->install = in;
    return err;
}

static int parse_removes(struct pctx *c, json_t *v, const char *path, struct tam_plan_rule *r)
{
    static const char *const known[] = {"component_id", NULL};
    size_t n = 0;
    int err = get_array(c, v, path, TAM_PLAN_MAX_POLICY_ITEMS, &n);
    if (err != TAM_OK) {
        return err;
    }
    if (c->items + n > TAM_PLAN_MAX_POLICY_ITEMS) {
        return perr(c, TAM_ETOOBIG, path, "more than %d entries in the policy",
                    TAM_PLAN_MAX_POLICY_ITEMS);
    }
    c->items += (uint32_t)n;
    struct tam_teep_component_id *ids = arena_array(c, n, sizeof(*ids));
    if (n > 0 && ids == NULL) {
        return perr(c, TAM_ENOMEM, path, "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        char p[PATH_MAX_LEN], q[PATH_MAX_LEN];
        sub_path(p, path, "", (long)i);
        json_t *e = json_array_get(v, i);
        if (!json_is_object(e)) {
            return perr(c, TAM_EINVAL, p, "not an object");
        }
        err = check_members(c, e, p, known);
        sub_path(q, p, "component_id", -1);
        if (err == TAM_OK) {
            err = get_id(c, json_object_get(e, "component_id"), q, &ids[i]);
        }
    }
    r->n_remove = (uint32_t)n;
    r->remove = ids;
    return err;
}

static int parse_labels(struct pctx *c, json_t *v, const char *path, const struct tam_bytes **out,
                        uint32_t *count)
{
    size_t n = 0;
    int err = get_array(c, v, path, TAM_PLAN_MAX_LABELS, &n);
    struct tam_bytes *l = err == TAM_OK ? arena_array(c, n, sizeof(*l)) : NULL;
    if (err == TAM_OK && n > 0 && l == NULL) {
        return perr(c, TAM_ENOMEM, path, "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        json_t *e = json_array_get(v, i);
        size_t len = json_string_length(e);
        if (!json_is_string(e) || len == 0 || len > TAM_STORE_MAX_LABEL ||
            memchr(json_string_value(e), ',', len) != NULL) {
            char p[PATH_MAX_LEN];
            sub_path(p, path, "", (long)i);
            return perr(c, TAM_EINVAL, p, "a label of 1..%d bytes without ',' expected",
                        TAM_STORE_MAX_LABEL);
        }
        char *copy = tam_arena_alloc(c->arena, len);
        if (copy == NULL) {
            return perr(c, TAM_ENOMEM, path, "out of memory");
        }
        memcpy(copy, json_string_value(e), len);
        l[i] = tam_bytes_of(copy, len);
    }
    *out = l;
    *count = (uint32_t)n;
    return err;
}

static int parse_match(struct pctx *c, json_t *v, const char *path, struct tam_plan_rule *r)
{
    static const char *const known[] = {"labels", "device", NULL};
    r->match = TAM_PLAN_MATCH_ALL;
    if (v == NULL) {
        return TAM_OK;
    }
    if (!json_is_object(v)) {
        return perr(c, TAM_EINVAL, path, "not an object");
    }
    int err = check_members(c, v, path, known);
    json_t *labels = json_object_get(v, "labels");
    json_t *device = json_object_get(v, "device");
    char p[PATH_MAX_LEN];
    if (err == TAM_OK && labels != NULL && device != NULL) {
        return perr(c, TAM_EINVAL, path, "labels and device are exclusive");
    }
    if (err == TAM_OK && labels != NULL) {
        r->match = TAM_PLAN_MATCH_LABELS;
        sub_path(p, path, "labels", -1);
        err = parse_labels(c, labels, p, &r->labels, &r->n_labels);
    } else if (err == TAM_OK && device != NULL) {
        struct tam_bytes kid;
        r->match = TAM_PLAN_MATCH_DEVICE;
        sub_path(p, path, "device", -1);
        err = get_hex(c, device, p, TAM_PLAN_KID_LEN, TAM_PLAN_KID_LEN, &kid);
        if (err == TAM_OK) {
            memcpy(r->kid, kid.ptr, TAM_PLAN_KID_LEN);
        }
    }
    return err;
}

static int parse_rule(struct pctx *c, json_t *v, const char *path, struct tam_plan_rule *r)
{
    static const char *const known[] = {"match", "install", "remove", NULL};
    if (!json_is_object(v)) {
        return perr(c, TAM_EINVAL, path, "not an object");
    }
    int err = check_members(c, v, path, known);
    char p[PATH_MAX_LEN];
    if (err == TAM_OK) {
        sub_path(p, path, "match", -1);
        err = parse_match(c, json_object_get(v, "match"), p, r);
    }
    if (err == TAM_OK) {
        sub_path(p, path, "install", -1);
        err = parse_installs(c, json_object_get(v, "install"), p, r);
    }
    if (err == TAM_OK) {
        sub_path(p, path, "remove", -1);
        err = parse_removes(c, json_object_get(v, "remove"), p, r);
    }
    return err;
}

static int parse_rules(struct pctx *c, json_t *v, struct tam_plan_policy *plan)
{
    size_t n = 0;
    int err = get_array(c, v, "rules", TAM_PLAN_MAX_RULES, &n);
    struct tam_plan_rule *rules = err == TAM_OK ? arena_array(c, n, sizeof(*rules)) : NULL;
    if (err == TAM_OK && n > 0 && rules == NULL) {
        return perr(c, TAM_ENOMEM, "rules", "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        char p[PATH_MAX_LEN];
        sub_path(p, "rules", "", (long)i);
        err = parse_rule(c, json_array_get(v, i), p, &rules[i]);
    }
    plan->n_rules = (uint32_t)n;
    plan->rules = rules;
    return err;
}

/* ---- attestation claim policy ---- */

static int parse_oemids(struct pctx *c, json_t *v, struct tam_eat_policy *p)
{
    size_t n = 0;
    int err = get_array(c, v, "attestation.oemids", TAM_STORE_MAX_ATTEST, &n);
    struct tam_eat_oemid *ids = err == TAM_OK ? arena_array(c, n, sizeof(*ids)) : NULL;
    if (err == TAM_OK && n > 0 && ids == NULL) {
        return perr(c, TAM_ENOMEM, "attestation.oemids", "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        char path[PATH_MAX_LEN];
        sub_path(path, "attestation.oemids", "", (long)i);
        json_t *e = json_array_get(v, i);
        if (json_is_integer(e) && json_integer_value(e) >= 0) {
            ids[i].is_pen = true;
            ids[i].pen = json_integer_value(e);
            continue;
        }
        err = get_hex(c, e, path, 3, 16, &ids[i].id);
        if (err == TAM_OK && ids[i].id.len != 3 && ids[i].id.len != 16) {
            err = perr(c, TAM_EINVAL, path, "a PEN or a hex id of 3 or 16 bytes expected");
        }
    }
    p->oemids = ids;
    p->n_oemids = n;
    return err;
}

static int parse_hwmodels(struct pctx *c, json_t *v, struct tam_eat_policy *p)
{
    size_t n = 0;
    int err = get_array(c, v, "attestation.hwmodels", TAM_STORE_MAX_ATTEST, &n);
    struct tam_bytes *m = err == TAM_OK ? arena_array(c, n, sizeof(*m)) : NULL;
    if (err == TAM_OK && n > 0 && m == NULL) {
        return perr(c, TAM_ENOMEM, "attestation.hwmodels", "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        char path[PATH_MAX_LEN];
        sub_path(path, "attestation.hwmodels", "", (long)i);
        err = get_hex(c, json_array_get(v, i), path, 1, TAM_EAT_HWMODEL_MAX, &m[i]);
    }
    p->hwmodels = m;
    p->n_hwmodels = n;
    return err;
}

static int parse_hwversions(struct pctx *c, json_t *v, struct tam_eat_policy *p)
{
    size_t n = 0;
    int err = get_array(c, v, "attestation.hwversions", TAM_STORE_MAX_ATTEST, &n);
    const char **t = err == TAM_OK ? arena_array(c, n, sizeof(*t)) : NULL;
    if (err == TAM_OK && n > 0 && t == NULL) {
        return perr(c, TAM_ENOMEM, "attestation.hwversions", "out of memory");
    }
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        json_t *e = json_array_get(v, i);
        size_t len = json_string_length(e);
        if (!json_is_string(e) || len == 0 || len > 255 ||
            memchr(json_string_value(e), '\0', len) != NULL) {
            char path[PATH_MAX_LEN];
            sub_path(path, "attestation.hwversions", "", (long)i);
            return perr(c, TAM_EINVAL, path, "a text of 1..255 bytes expected");
        }
        char *copy = tam_arena_alloc(c->arena, len + 1);
        if (copy == NULL) {
            return perr(c, TAM_ENOMEM, "attestation.hwversions", "out of memory");
        }
        memcpy(copy, json_string_value(e), len + 1);
        t[i] = copy;
    }
    p->hwversions = t;
    p->n_hwversions = n;
    return err;
}

static int parse_attestation(struct pctx *c, json_t *v, struct tam_eat_policy *p)
{
    static const char *const known[] = {"oemids", "hwmodels", "hwversions", "min_dbgstat", NULL};
    if (v == NULL) {
        return TAM_OK;
    }
    if (!json_is_object(v)) {
        return perr(c, TAM_EINVAL, "attestation", "not an object");
    }
    int err = check_members(c, v, "attestation", known);
    if (err == TAM_OK) {
        err = parse_oemids(c, json_object_get(v, "oemids"), p);
    }
    if (err == TAM_OK) {
        err = parse_hwmodels(c, json_object_get(v, "hwmodels"), p);
    }
    if (err == TAM_OK) {
        err = parse_hwversions(c, json_object_get(v, "hwversions"), p);
    }
    json_t *dbg = json_object_get(v, "min_dbgstat");
    if (err == TAM_OK && dbg != NULL) {
        if (!json_is_integer(dbg) || json_integer_value(dbg) < 0 ||
            json_integer_value(dbg) > TAM_EAT_DBG_DISABLED_FULLY_PERMANENTLY) {
            return perr(c, TAM_EINVAL, "attestation.min_dbgstat", "an integer 0..4 expected");
        }
        p->min_dbgstat = (int)json_integer_value(dbg);
    }
    return err;
}

static int parse_root(struct pctx *c, json_t *root, struct tam_store_policy *out)
{
    static const char *const known[] = {"requested", "rules", "attestation", NULL};
    if (!json_is_object(root)) {
        return perr(c, TAM_EINVAL, "", "not a JSON object");
    }
    int err = check_members(c, root, "", known);
    json_t *req = json_object_get(root, "requested");
    if (err == TAM_OK && req != NULL) {
        const char *s = json_string_value(req);
        if (s == NULL || (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0)) {
            return perr(c, TAM_EINVAL, "requested", "\"allow\" or \"deny\" expected");
        }
        out->plan.deny_requested = strcmp(s, "deny") == 0;
    }
    if (err == TAM_OK) {
        err = parse_rules(c, json_object_get(root, "rules"), &out->plan);
    }
    if (err == TAM_OK) {
        err = parse_attestation(c, json_object_get(root, "attestation"), &out->attestation);
    }
    return err;
}

int tam_store_policy_parse(const char *json, size_t len, struct tam_arena *arena,
                           struct tam_store_policy *out, char *why, size_t whysz)
{
    struct pctx c = {.arena = arena, .why = why, .whysz = whysz};
    memset(out, 0, sizeof(*out));
    if (why != NULL && whysz > 0) {
        why[0] = '\0';
    }
    if (len > TAM_STORE_MAX_POLICY) {
        return perr(&c, TAM_ETOOBIG, "", "document larger than %u bytes", TAM_STORE_MAX_POLICY);
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return perr(&c, TAM_EINVAL, "", "invalid JSON at line %d: %.80s", jerr.line, jerr.text);
    }
    int err = parse_root(&c, root, out);
    json_decref(root);
    if (err != TAM_OK) {
        memset(out, 0, sizeof(*out));
    }
    return err;
}

/* ---- history ---- */

int tam_store_history_encode(const struct tam_store_history *h, struct tam_buf *out)
{
    json_t *o = json_object();
    if (o == NULL) {
        return TAM_ENOMEM;
    }
    int bad = json_object_set_new(o, "ms", json_integer((json_int_t)h->ms));
    bad |= json_object_set_new(o, "event", json_string(h->event != NULL ? h->event : "?"));
    if (h->err_code != 0) {
        bad |= json_object_set_new(o, "err", json_string(tam_teep_err_name(h->err_code)));
    }
    if (h->installed > 0) {
        bad |= json_object_set_new(o, "installed", json_integer(h->installed));
    }
    if (h->unlinked > 0) {
        bad |= json_object_set_new(o, "unlinked", json_integer(h->unlinked));
    }
    if (h->failed > 0) {
        bad |= json_object_set_new(o, "failed", json_integer(h->failed));
    }
    if (h->detail != NULL) {
        bad |= json_object_set_new(o, "detail", json_string(h->detail));
    }
    char text[1024];
    size_t n = bad == 0 ? json_dumpb(o, text, sizeof(text), JSON_COMPACT | JSON_SORT_KEYS) : 0;
    json_decref(o);
    if (n == 0 || n > sizeof(text)) {
        return bad != 0 ? TAM_ENOMEM : TAM_ETOOBIG;
    }
    return tam_buf_append(out, text, n);
}
