/*
 * SUIT_Envelope parser: a read-only index of a stored envelope. Every bstr-wrapped
 * part (auth wrapper, manifest, common, sequences) is decoded on its own with the
 * bounded reader; the documents are released before return and only spans into
 * the caller's buffer are kept.
 */
#include <stddef.h>
#include <string.h>

#include "suit_internal.h"
#include "tam/err.h"

static int bad(const char **why, const char *reason)
{
    return tam_suit__fail(why, reason, TAM_ESUIT);
}

/* ---- manifest members (sequences and text) ---- */

struct member_def {
    int key;
    bool severable;
    size_t off; /* of the struct tam_suit_member in the envelope */
};

#define OFF(field) offsetof(struct tam_suit_envelope, field)
static const struct member_def member_defs[] = {
    {TAM_SUIT_VALIDATE, false, OFF(validate)},
    {TAM_SUIT_LOAD, false, OFF(load)},
    {TAM_SUIT_INVOKE, false, OFF(invoke)},
    {TAM_SUIT_DEPENDENCY_RESOLUTION, true, OFF(dependency_resolution)},
    {TAM_SUIT_PAYLOAD_FETCH, true, OFF(payload_fetch)},
    {TAM_SUIT_CANDIDATE_VERIFICATION, true, OFF(candidate_verification)},
    {TAM_SUIT_INSTALL, true, OFF(install)},
    {TAM_SUIT_TEXT, true, OFF(text)},
    {TAM_SUIT_UNINSTALL, false, OFF(uninstall)},
};
#undef OFF

static struct tam_suit_member *member_at(struct tam_suit_envelope *env, size_t i)
{
    return (struct tam_suit_member *)(void *)((char *)env + member_defs[i].off);
}

const struct tam_suit_member *tam_suit_member(const struct tam_suit_envelope *env, int key)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(member_defs); i++) {
        if (member_defs[i].key == key) {
            return (const struct tam_suit_member *)(const void *)((const char *)env +
                                                                  member_defs[i].off);
        }
    }
    return NULL;
}

static void set_bstr_member(struct tam_suit_member *m, const struct tam_cbor_item *bstr)
{
    m->available = true;
    m->bstr = tam_bytes_of(bstr->raw, bstr->raw_len);
    m->seq = tam_bytes_of(bstr->data, (size_t)bstr->val);
}

/*
 * in_manifest: the manifest's value (NULL when absent); in_env: the severed member
 * found in the envelope under the same key (NULL when absent).
 */
static int parse_member(struct tam_suit_member *m, const struct member_def *def,
                        const struct tam_cbor_item *in_manifest, const struct tam_cbor_item *in_env,
                        const char **why)
{
    if (in_manifest == NULL) {
        if (in_env != NULL) {
            return bad(why, "envelope holds a severed member the manifest does not reference");
        }
        return TAM_OK;
    }
    m->present = true;
    if (in_manifest->type == TAM_CBOR_BSTR) {
        if (in_env != NULL) {
            return bad(why, "member is both in the manifest and severed in the envelope");
        }
        set_bstr_member(m, in_manifest);
        return TAM_OK;
    }
    if (!def->severable || in_manifest->type != TAM_CBOR_ARRAY) {
        return bad(why, def->severable ? "severable member must be a bstr or a SUIT_Digest"
                                       : "unseverable member must be a bstr");
    }
    m->severed = true;
    int err = tam_suit__digest(in_manifest, &m->digest, why);
    if (err == TAM_OK && in_env != NULL) {
        set_bstr_member(m, in_env);
    }
    return err;
}

/* ---- command sequence walking (parameter extraction) ---- */

struct walk {
    uint64_t target; /* the component index whose parameters we collect */
    bool selected;   /* the current component index selection includes target */
    struct tam_suit_params *params;
    const char **why;
};

static int select_index(struct walk *w, const struct tam_cbor_item *arg)
{
    uint64_t idx;
    bool all;
    if (tam_cbor_get_uint(arg, &idx)) {
        w->selected = idx == w->target;
    } else if (tam_cbor_get_bool(arg, &all) && all) {
        w->selected = true;
    } else if (arg->type == TAM_CBOR_ARRAY && arg->count > 0) {
        w->selected = false;
        const struct tam_cbor_item *e = tam_cbor_first(arg);
        for (uint32_t i = 0; i < arg->count; i++, e = tam_cbor_next(e)) {
            if (!tam_cbor_get_uint(e, &idx)) {
                return bad(w->why, "set-component-index list must hold uints");
            }
            w->selected = w->selected || idx == w->target;
        }
    } else {
        return bad(w->why, "set-component-index needs a uint, true or [+ uint]");
    }
    return TAM_OK;
}

static int walk_seq(struct walk *w, struct tam_bytes seq, int depth);

static int walk_command(struct walk *w, int64_t cmd, const struct tam_cbor_item *arg, int depth)
{
    struct tam_bytes nested;
    switch (cmd) {
    case SUIT_CMD_SET_COMPONENT_INDEX:
        return select_index(w, arg);
    case SUIT_CMD_OVERRIDE_PARAMETERS:
    case SUIT_CMD_SET_PARAMETERS:
        if (!w->selected) {
            return TAM_OK;
        }
        return tam_suit__apply_params(arg, w->params, cmd == SUIT_CMD_OVERRIDE_PARAMETERS, true,
                                      w->why);
    case SUIT_CMD_RUN_SEQUENCE:
        /* One level of nesting is enough for the TAM's index. */
        if (depth > 0) {
            return TAM_OK;
        }
        if (!tam_cbor_get_bytes(arg, &nested)) {
            return bad(w->why, "run-sequence needs a bstr-wrapped command sequence");
        }
        return walk_seq(w, nested, depth + 1);
    default:
        return TAM_OK; /* conditions and other directives set no parameters */
    }
}

static int walk_items(struct walk *w, const struct tam_cbor_item *arr, int depth)
{
    if (arr->type != TAM_CBOR_ARRAY || arr->count == 0 || arr->count % 2 != 0) {
        return bad(w->why, "command sequence must be [+ command, argument]");
    }
    const struct tam_cbor_item *c = tam_cbor_first(arr);
    for (uint32_t i = 0; i < arr->count; i += 2) {
        int64_t cmd;
        if (!tam_cbor_get_int(c, &cmd)) {
            return bad(w->why, "command code must be an integer");
        }
        const struct tam_cbor_item *arg = tam_cbor_next(c);
        int err = walk_command(w, cmd, arg, depth);
        if (err != TAM_OK) {
            return err;
        }
        c = tam_cbor_next(arg);
    }
    return TAM_OK;
}

static int walk_seq(struct walk *w, struct tam_bytes seq, int depth)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, seq, w->why);
    if (err == TAM_OK) {
        err = walk_items(w, tam_cbor_root(&doc), depth);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* Each top-level sequence starts with component index 0 selected. */
static int walk_section(struct walk *w, bool available, struct tam_bytes seq)
{
    if (!available) {
        return TAM_OK;
    }
    w->selected = w->target == 0;
    return walk_seq(w, seq, 0);
}

static int collect_params(struct tam_suit_envelope *env, uint64_t target,
                          const struct tam_suit_member *const *sections, size_t n,
                          struct tam_suit_params *out, const char **why)
{
    struct walk w = {.target = target, .params = out, .why = why};
    int err = walk_section(&w, env->has_shared, env->shared);
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        err = walk_section(&w, sections[i]->available, sections[i]->seq);
    }
    return err;
}

const struct tam_suit_integrated *tam_suit_integrated(const struct tam_suit_envelope *env,
                                                      const char *key)
{
    size_t n = strlen(key);
    for (unsigned i = 0; i < env->nintegrated; i++) {
        const struct tam_suit_integrated *in = &env->integrated[i];
        if (in->key.len == n && memcmp(in->key.ptr, key, n) == 0) {
            return in;
        }
    }
    return NULL;
}

static void link_integrated(struct tam_suit_envelope *env, struct tam_suit_dependency *d)
{
    d->integrated = -1;
    if (!d->params.has_uri) {
        return;
    }
    for (unsigned i = 0; i < env->nintegrated; i++) {
        struct tam_suit_integrated *in = &env->integrated[i];
        if (in->key.len == d->params.uri.len &&
            memcmp(in->key.ptr, d->params.uri.ptr, in->key.len) == 0) {
            in->is_dependency = true;
            d->integrated = (int)i;
        }
    }
}

static int index_params(struct tam_suit_envelope *env, const char **why)
{
    const struct tam_suit_member *first[] = {&env->payload_fetch, &env->install};
    int err = collect_params(env, 0, first, TAM_ARRAY_LEN(first), &env->first, why);
    const struct tam_suit_member *deps[] = {&env->dependency_resolution};
    for (unsigned i = 0; i < env->ndeps && err == TAM_OK; i++) {
        struct tam_suit_dependency *d = &env->deps[i];
        err = collect_params(env, d->index, deps, TAM_ARRAY_LEN(deps), &d->params, why);
        link_integrated(env, d);
    }
    return err;
}

/* ---- suit-common ---- */

static int parse_dependency(struct tam_suit_dependency *d, const struct tam_cbor_item *k,
                            const struct tam_cbor_item *v, const char **why)
{
    if (!tam_cbor_get_uint(k, &d->index)) {
        return bad(why, "dependency key must be a component index (uint)");
    }
    if (v->type != TAM_CBOR_MAP) {
        return bad(why, "dependency metadata must be a map");
    }
    const struct tam_cbor_item *prefix = tam_cbor_map_get_int(v, 1);
    if (prefix == NULL) {
        return TAM_OK;
    }
    d->has_prefix = true;
    return tam_suit__component_id(prefix, &d->prefix, why);
}

static int parse_dependencies(struct tam_suit_envelope *env, const struct tam_cbor_item *map,
                              const char **why)
{
    if (map->type != TAM_CBOR_MAP || map->count == 0) {
        return bad(why, "suit-dependencies must be a non-empty map");
    }
    if (map->count > TAM_SUIT_MAX_DEPS) {
        return tam_suit__fail(why, "too many dependencies", TAM_ETOOBIG);
    }
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        int err = parse_dependency(&env->deps[i], k, v, why);
        if (err != TAM_OK) {
            return err;
        }
        env->ndeps++;
        k = tam_cbor_next(v);
    }
    return TAM_OK;
}

static int parse_components(struct tam_suit_envelope *env, const struct tam_cbor_item *arr,
                            const char **why)
{
    if (arr->type != TAM_CBOR_ARRAY || arr->count == 0) {
        return bad(why, "suit-components must be a non-empty array");
    }
    if (arr->count > TAM_SUIT_MAX_COMPONENTS) {
        return tam_suit__fail(why, "too many components", TAM_ETOOBIG);
    }
    const struct tam_cbor_item *c = tam_cbor_first(arr);
    for (uint32_t i = 0; i < arr->count; i++, c = tam_cbor_next(c)) {
        int err = tam_suit__component_id(c, &env->components[i], why);
        if (err != TAM_OK) {
            return err;
        }
        env->ncomponents++;
    }
    return TAM_OK;
}

static int parse_common_map(struct tam_suit_envelope *env, const struct tam_cbor_item *map,
                            const char **why)
{
    if (map->type != TAM_CBOR_MAP) {
        return bad(why, "suit-common must be a map");
    }
    const struct tam_cbor_item *v = tam_cbor_map_get_int(map, 1);
    int err = v != NULL ? parse_dependencies(env, v, why) : TAM_OK;
    v = tam_cbor_map_get_int(map, 2);
    if (err == TAM_OK && v != NULL) {
        err = parse_components(env, v, why);
    }
    v = tam_cbor_map_get_int(map, 4);
    if (err == TAM_OK && v != NULL) {
        if (!tam_cbor_get_bytes(v, &env->shared)) {
            return bad(why, "shared sequence must be a bstr");
        }
        env->has_shared = true;
    }
    return err;
}

static int parse_common(struct tam_suit_envelope *env, const struct tam_cbor_item *v,
                        const char **why)
{
    if (!tam_cbor_get_bytes(v, &env->common)) {
        return bad(why, "suit-common must be a bstr");
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, env->common, why);
    if (err == TAM_OK) {
        err = parse_common_map(env, tam_cbor_root(&doc), why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* ---- manifest ---- */

/* The envelope's severed members, by member_defs index. */
struct severed {
    const struct tam_cbor_item *item[TAM_ARRAY_LEN(member_defs)];
};

static int parse_header(struct tam_suit_envelope *env, const struct tam_cbor_item *map,
                        const char **why)
{
    const struct tam_cbor_item *v = tam_cbor_map_get_int(map, TAM_SUIT_VERSION);
    if (v == NULL || !tam_cbor_get_uint(v, &env->version)) {
        return bad(why, "manifest-version missing or not a uint");
    }
    if (env->version != 1) {
        return bad(why, "unsupported manifest-version (must be 1)");
    }
    v = tam_cbor_map_get_int(map, TAM_SUIT_SEQUENCE);
    if (v == NULL || !tam_cbor_get_uint(v, &env->sequence)) {
        return bad(why, "manifest-sequence-number missing or not a uint");
    }
    v = tam_cbor_map_get_int(map, TAM_SUIT_REFERENCE_URI);
    if (v != NULL) {
        if (!tam_cbor_get_text(v, &env->reference_uri)) {
            return bad(why, "reference-uri must be a tstr");
        }
        env->has_reference_uri = true;
    }
    v = tam_cbor_map_get_int(map, TAM_SUIT_MANIFEST_COMPONENT_ID);
    if (v != NULL) {
        env->has_manifest_component_id = true;
        return tam_suit__component_id(v, &env->manifest_component_id, why);
    }
    return TAM_OK;
}

static int parse_manifest_map(struct tam_suit_envelope *env, const struct tam_cbor_item *map,
                              const struct severed *sev, const char **why)
{
    if (map->type != TAM_CBOR_MAP) {
        return bad(why, "manifest must be a map");
    }
    int err = parse_header(env, map, why);
    if (err != TAM_OK) {
        return err;
    }
    const struct tam_cbor_item *common = tam_cbor_map_get_int(map, TAM_SUIT_COMMON);
    if (common == NULL) {
        return bad(why, "manifest has no suit-common");
    }
    err = parse_common(env, common, why);
    for (size_t i = 0; i < TAM_ARRAY_LEN(member_defs) && err == TAM_OK; i++) {
        const struct tam_cbor_item *v = tam_cbor_map_get_int(map, member_defs[i].key);
        err = parse_member(member_at(env, i), &member_defs[i], v, sev->item[i], why);
    }
    return err;
}

static int parse_manifest(struct tam_suit_envelope *env, const struct tam_cbor_item *v,
                          const struct severed *sev, const char **why)
{
    if (!tam_cbor_get_bytes(v, &env->manifest)) {
        return bad(why, "manifest must be a bstr");
    }
    env->manifest_bstr = tam_bytes_of(v->raw, v->raw_len);
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, env->manifest, why);
    if (err == TAM_OK) {
        err = parse_manifest_map(env, tam_cbor_root(&doc), sev, why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* ---- authentication wrapper ---- */

static int parse_auth_array(struct tam_suit_envelope *env, const struct tam_cbor_item *arr,
                            const char **why)
{
    if (arr->type != TAM_CBOR_ARRAY || arr->count == 0) {
        return bad(why, "authentication wrapper must be [digest, * auth-block]");
    }
    if (arr->count - 1 > TAM_SUIT_MAX_AUTH) {
        return tam_suit__fail(why, "too many authentication blocks", TAM_ETOOBIG);
    }
    const struct tam_cbor_item *it = tam_cbor_first(arr);
    if (!tam_cbor_get_bytes(it, &env->digest_bstr)) {
        return bad(why, "authentication wrapper[0] must be a bstr-wrapped SUIT_Digest");
    }
    int err = tam_suit__digest_bstr(it, &env->digest, why);
    if (err != TAM_OK) {
        return err;
    }
    for (uint32_t i = 1; i < arr->count; i++) {
        it = tam_cbor_next(it);
        if (!tam_cbor_get_bytes(it, &env->auth[env->nauth])) {
            return bad(why, "authentication block must be a bstr");
        }
        env->nauth++;
    }
    return TAM_OK;
}

static int parse_auth(struct tam_suit_envelope *env, const struct tam_cbor_item *v,
                      const char **why)
{
    struct tam_bytes content;
    if (!tam_cbor_get_bytes(v, &content)) {
        return bad(why, "authentication wrapper must be a bstr");
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, content, why);
    if (err == TAM_OK) {
        err = parse_auth_array(env, tam_cbor_root(&doc), why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

/* ---- envelope ---- */

struct top {
    const struct tam_cbor_item *auth, *manifest;
    struct severed sev;
};

static int add_integrated(struct tam_suit_envelope *env, const struct tam_cbor_item *k,
                          const struct tam_cbor_item *v, const char **why)
{
    if (env->nintegrated == TAM_SUIT_MAX_INTEGRATED) {
        return tam_suit__fail(why, "too many integrated payloads", TAM_ETOOBIG);
    }
    struct tam_suit_integrated *in = &env->integrated[env->nintegrated];
    if (!tam_cbor_get_text(k, &in->key) || !tam_cbor_get_bytes(v, &in->data)) {
        return bad(why, "integrated payload must be tstr => bstr");
    }
    env->nintegrated++;
    return TAM_OK;
}

static int sort_int_member(struct top *t, int64_t key, const struct tam_cbor_item *v,
                           const char **why)
{
    if (key == TAM_SUIT_AUTH_WRAPPER) {
        t->auth = v;
        return TAM_OK;
    }
    if (key == TAM_SUIT_MANIFEST) {
        t->manifest = v;
        return TAM_OK;
    }
    for (size_t i = 0; i < TAM_ARRAY_LEN(member_defs); i++) {
        if (member_defs[i].key == key && member_defs[i].severable) {
            if (v->type != TAM_CBOR_BSTR) {
                return bad(why, "severed member in the envelope must be a bstr");
            }
            t->sev.item[i] = v;
        }
    }
    return TAM_OK; /* other keys are extensions (e.g. delegation) we do not index */
}

static int sort_members(struct tam_suit_envelope *env, const struct tam_cbor_item *map,
                        struct top *t, const char **why)
{
    const struct tam_cbor_item *k = tam_cbor_first(map);
    for (uint32_t i = 0; i < map->count; i++) {
        const struct tam_cbor_item *v = tam_cbor_next(k);
        int64_t key;
        int err;
        if (tam_cbor_get_int(k, &key)) {
            err = sort_int_member(t, key, v, why);
        } else if (k->type == TAM_CBOR_TSTR) {
            err = add_integrated(env, k, v, why);
        } else {
            err = bad(why, "envelope keys must be integers or text");
        }
        if (err != TAM_OK) {
            return err;
        }
        k = tam_cbor_next(v);
    }
    if (t->auth == NULL) {
        return bad(why, "envelope has no authentication wrapper");
    }
    if (t->manifest == NULL) {
        return bad(why, "envelope has no manifest");
    }
    if (t->auth->raw > t->manifest->raw) {
        return bad(why, "authentication wrapper must be encoded before the manifest");
    }
    return TAM_OK;
}

static int parse_root(struct tam_suit_envelope *env, const struct tam_cbor_item *root,
                      const char **why)
{
    const struct tam_cbor_item *map = root;
    if (root->type == TAM_CBOR_TAG) {
        if (root->val != TAM_SUIT_TAG_ENVELOPE || root[1].type == TAM_CBOR_TAG) {
            return bad(why, "unexpected tag (a SUIT_Envelope is untagged or tag 107)");
        }
        env->tagged = true;
        map = root + 1;
    }
    if (map->type != TAM_CBOR_MAP) {
        return bad(why, "SUIT_Envelope must be a map");
    }
    struct top t = {0};
    int err = sort_members(env, map, &t, why);
    if (err == TAM_OK) {
        err = parse_auth(env, t.auth, why);
    }
    if (err == TAM_OK) {
        err = parse_manifest(env, t.manifest, &t.sev, why);
    }
    if (err == TAM_OK) {
        err = index_params(env, why);
    }
    return err;
}

int tam_suit_parse(const uint8_t *buf, size_t len, struct tam_suit_envelope *env, const char **why)
{
    memset(env, 0, sizeof(*env));
    if (buf == NULL || len == 0) {
        return tam_suit__fail(why, "empty envelope", TAM_ECBOR);
    }
    env->raw = tam_bytes_of(buf, len);
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_suit__decode(&doc, env->raw, why);
    if (err == TAM_OK) {
        err = parse_root(env, tam_cbor_root(&doc), why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}
