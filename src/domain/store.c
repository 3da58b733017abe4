/*
 * CBOR codecs of the Redis records of store.h: installed lists, component records, sent
 * plans and labels. The JSON documents (policy, history) are in store_json.c.
 */
#include "tam/store.h"

#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"
#include "tam/hex.h"

enum {
    C_COMPONENT = 1,
    C_MANIFEST_ID = 2,
    C_SEQUENCE = 3,
    C_DIGEST = 4,
    C_DEPS = 5,
    C_ENVELOPE = 6,
    C_BINARY = 7,
    C_VENDOR_ID = 8,
    C_CLASS_ID = 9,
    C_DELIVERY = 10,
    C_URI = 11,
};

static const struct tam_cbor_limits id_limits = {
    .max_size = 64u << 10,
    .max_depth = 2,
    .max_items = 1 + TAM_TEEP_MAX_ID_SEGMENTS,
};

static const struct tam_cbor_limits installed_limits = {
    .max_size = 16u << 20,
    .max_depth = 4,
    .max_items = 1 + TAM_STORE_MAX_INSTALLED * (4 + 2 * (1 + TAM_TEEP_MAX_ID_SEGMENTS)),
};

static const struct tam_cbor_limits record_limits = {
    .max_size = TAM_STORE_MAX_RECORD,
    .max_depth = 4,
    .max_items = 1024,
};

static const struct tam_cbor_limits sent_limits = {
    .max_size = 4u << 20,
    .max_depth = 5,
    .max_items = 1u << 18,
};

/* ---- component ids ---- */

static void put_id(struct tam_cbor_writer *w, const struct tam_teep_component_id *id)
{
    tam_cbor_open_array(w, id->n);
    for (uint32_t i = 0; i < id->n && i < TAM_TEEP_MAX_ID_SEGMENTS; i++) {
        tam_cbor_put_bstr(w, id->seg[i].ptr, id->seg[i].len);
    }
}

static bool id_valid(const struct tam_teep_component_id *id)
{
    if (id->n == 0 || id->n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return false;
    }
    for (uint32_t i = 0; i < id->n; i++) {
        if (id->seg[i].ptr == NULL && id->seg[i].len > 0) {
            return false;
        }
    }
    return true;
}

/* An item [+ bstr] into *out (segments and raw borrowed from the item's input). */
static bool get_id(const struct tam_cbor_item *it, struct tam_teep_component_id *out)
{
    memset(out, 0, sizeof(*out));
    if (it == NULL || it->type != TAM_CBOR_ARRAY || it->count == 0 ||
        it->count > TAM_TEEP_MAX_ID_SEGMENTS) {
        return false;
    }
    const struct tam_cbor_item *s = tam_cbor_first(it);
    for (uint32_t i = 0; i < it->count; i++, s = tam_cbor_next(s)) {
        if (!tam_cbor_get_bytes(s, &out->seg[i])) {
            return false;
        }
    }
    out->n = it->count;
    out->raw = tam_bytes_of(it->raw, it->raw_len);
    return true;
}

/* A SUIT_Component_Identifier or null (has = false). */
static bool get_opt_id(const struct tam_cbor_item *it, bool *has, struct tam_teep_component_id *out)
{
    *has = false;
    if (tam_cbor_is_null(it)) {
        memset(out, 0, sizeof(*out));
        return true;
    }
    *has = true;
    return get_id(it, out);
}

int tam_store_id_encode(const struct tam_teep_component_id *id, struct tam_buf *out)
{
    if (!id_valid(id)) {
        return TAM_EINVAL;
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    put_id(&w, id);
    return tam_cbor_writer_finish(&w);
}

int tam_store_id_decode(const uint8_t *buf, size_t len, struct tam_teep_component_id *out,
                        const char **why)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &id_limits, &doc, why);
    if (err == TAM_OK && !get_id(tam_cbor_root(&doc), out)) {
        err = tam_fail(why, "component id: not an array of 1..16 byte strings", TAM_EINVAL);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

int tam_store_component_field(const struct tam_teep_component_id *id, uint64_t sequence,
                              struct tam_buf *out)
{
    struct tam_buf enc;
    tam_buf_init(&enc, 64u << 10);
    int err = tam_store_id_encode(id, &enc);
    if (err == TAM_OK) {
        err = tam_hex_append(out, enc.data, enc.len);
    }
    if (err == TAM_OK) {
        err = tam_buf_printf(out, "/%llu", (unsigned long long)sequence);
    }
    tam_buf_finish(&enc);
    return err;
}

/* ---- installed list ---- */

int tam_store_installed_encode(const struct tam_plan_installed *v, uint32_t n, struct tam_buf *out)
{
    if (n > TAM_STORE_MAX_INSTALLED) {
        return TAM_ETOOBIG;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!id_valid(&v[i].component) || (v[i].has_manifest_id && !id_valid(&v[i].manifest_id))) {
            return TAM_EINVAL;
        }
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_array(&w, n);
    for (uint32_t i = 0; i < n; i++) {
        tam_cbor_open_array(&w, 4);
        put_id(&w, &v[i].component);
        if (v[i].has_manifest_id) {
            put_id(&w, &v[i].manifest_id);
        } else {
            tam_cbor_put_null(&w);
        }
        tam_cbor_put_uint(&w, v[i].sequence);
        tam_cbor_put_bstr(&w, v[i].digest, TAM_PLAN_DIGEST_LEN);
    }
    return tam_cbor_writer_finish(&w);
}

static bool get_digest(const struct tam_cbor_item *it, uint8_t out[TAM_PLAN_DIGEST_LEN])
{
    struct tam_bytes b;
    if (!tam_cbor_get_bytes(it, &b) || b.len != TAM_PLAN_DIGEST_LEN) {
        return false;
    }
    memcpy(out, b.ptr, TAM_PLAN_DIGEST_LEN);
    return true;
}

static bool get_installed(const struct tam_cbor_item *e, struct tam_plan_installed *r)
{
    if (e->type != TAM_CBOR_ARRAY || e->count != 4) {
        return false;
    }
    const struct tam_cbor_item *it = tam_cbor_first(e);
    if (!get_id(it, &r->component)) {
        return false;
    }
    it = tam_cbor_next(it);
    if (!get_opt_id(it, &r->has_manifest_id, &r->manifest_id)) {
        return false;
    }
    it = tam_cbor_next(it);
    if (!tam_cbor_get_uint(it, &r->sequence)) {
        return false;
    }
    return get_digest(tam_cbor_next(it), r->digest);
}

static int decode_installed(const struct tam_cbor_item *root, struct tam_arena *arena,
                            struct tam_plan_installed **out, uint32_t *n, const char **why)
{
    if (root->type != TAM_CBOR_ARRAY) {
        return tam_fail(why, "installed: not an array", TAM_EINVAL);
    }
    if (root->count > TAM_STORE_MAX_INSTALLED) {
        return tam_fail(why, "installed: too many entries", TAM_ETOOBIG);
    }
    if (root->count == 0) {
        return TAM_OK;
    }
    struct tam_plan_installed *v = tam_arena_array(arena, root->count, sizeof(*v));
    if (v == NULL) {
        return tam_fail(why, "installed: out of memory", TAM_ENOMEM);
    }
    const struct tam_cbor_item *e = tam_cbor_first(root);
    for (uint32_t i = 0; i < root->count; i++, e = tam_cbor_next(e)) {
        if (!get_installed(e, &v[i])) {
            return tam_fail(why, "installed: malformed entry", TAM_EINVAL);
        }
    }
    *out = v;
    *n = root->count;
    return TAM_OK;
}

int tam_store_installed_decode(const uint8_t *buf, size_t len, struct tam_arena *arena,
                               struct tam_plan_installed **out, uint32_t *n, const char **why)
{
    *out = NULL;
    *n = 0;
    if (len == 0) {
        return TAM_OK;
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &installed_limits, &doc, why);
    if (err == TAM_OK) {
        err = decode_installed(tam_cbor_root(&doc), arena, out, n, why);
    }
    tam_cbor_doc_finish(&doc);
    if (err != TAM_OK) {
        *out = NULL;
        *n = 0;
    }
    return err;
}

/* ---- component record ---- */

static bool component_valid(const struct tam_store_component *c, const char **why)
{
    const char *bad = NULL;
    if (!id_valid(&c->component) || (c->has_manifest_id && !id_valid(&c->manifest_id))) {
        bad = "component: bad component or manifest id";
    } else if (c->n_deps > TAM_PLAN_MAX_DEPS) {
        bad = "component: too many dependencies";
    } else if (c->envelope.len == 0 && c->binary.len == 0) {
        bad = "component: neither an envelope nor a binary";
    } else if (c->envelope.len > 0 && (!c->has_manifest_id || !c->has_digest)) {
        bad = "component: an envelope needs its manifest id and digest";
    } else if (c->binary.len > 0 && c->delivery != TAM_STORE_DELIVERY_URI &&
               c->delivery != TAM_STORE_DELIVERY_INTEGRATED) {
        bad = "component: a binary needs delivery uri or integrated";
    } else if (c->delivery == TAM_STORE_DELIVERY_URI && c->uri.len == 0) {
        bad = "component: delivery uri needs a uri";
    } else if (c->uri.len > TAM_STORE_MAX_URI ||
               (c->uri.len > 0 && memchr(c->uri.ptr, '\0', c->uri.len) != NULL)) {
        bad = "component: bad uri";
    }
    for (uint32_t i = 0; bad == NULL && i < c->n_deps; i++) {
        if (!id_valid(&c->deps[i])) {
            bad = "component: bad dependency id";
        }
    }
    if (bad != NULL && why != NULL) {
        *why = bad;
    }
    return bad == NULL;
}

static unsigned component_pairs(const struct tam_store_component *c)
{
    return 2u + c->has_manifest_id + c->has_digest + (c->n_deps > 0) + (c->envelope.len > 0) +
           (c->binary.len > 0) + c->has_vendor_id + c->has_class_id +
           (c->delivery != TAM_STORE_DELIVERY_NONE) + (c->uri.len > 0);
}

static void put_component_tail(struct tam_cbor_writer *w, const struct tam_store_component *c)
{
    if (c->binary.len > 0) {
        tam_cbor_put_uint(w, C_BINARY);
        tam_cbor_put_bstr(w, c->binary.ptr, c->binary.len);
    }
    if (c->has_vendor_id) {
        tam_cbor_put_uint(w, C_VENDOR_ID);
        tam_cbor_put_bstr(w, c->vendor_id, sizeof(c->vendor_id));
    }
    if (c->has_class_id) {
        tam_cbor_put_uint(w, C_CLASS_ID);
        tam_cbor_put_bstr(w, c->class_id, sizeof(c->class_id));
    }
    if (c->delivery != TAM_STORE_DELIVERY_NONE) {
        tam_cbor_put_uint(w, C_DELIVERY);
        tam_cbor_put_uint(w, (uint64_t)c->delivery);
    }
    if (c->uri.len > 0) {
        tam_cbor_put_uint(w, C_URI);
        tam_cbor_put_tstr(w, (const char *)c->uri.ptr, c->uri.len);
    }
}

int tam_store_component_encode(const struct tam_store_component *c, struct tam_buf *out)
{
    if (!component_valid(c, NULL)) {
        return TAM_EINVAL;
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_map(&w, component_pairs(c));
    tam_cbor_put_uint(&w, C_COMPONENT);
    put_id(&w, &c->component);
    if (c->has_manifest_id) {
        tam_cbor_put_uint(&w, C_MANIFEST_ID);
        put_id(&w, &c->manifest_id);
    }
    tam_cbor_put_uint(&w, C_SEQUENCE);
    tam_cbor_put_uint(&w, c->sequence);
    if (c->has_digest) {
        tam_cbor_put_uint(&w, C_DIGEST);
        tam_cbor_put_bstr(&w, c->digest, TAM_PLAN_DIGEST_LEN);
    }
    if (c->n_deps > 0) {
        tam_cbor_put_uint(&w, C_DEPS);
        tam_cbor_open_array(&w, c->n_deps);
        for (uint32_t i = 0; i < c->n_deps; i++) {
            put_id(&w, &c->deps[i]);
        }
    }
    if (c->envelope.len > 0) {
        tam_cbor_put_uint(&w, C_ENVELOPE);
        tam_cbor_put_bstr(&w, c->envelope.ptr, c->envelope.len);
    }
    put_component_tail(&w, c);
    return tam_cbor_writer_finish(&w);
}

static bool get_fixed(const struct tam_cbor_item *it, uint8_t *out, size_t n, bool *has)
{
    struct tam_bytes b;
    *has = false;
    if (it == NULL) {
        return true;
    }
    if (!tam_cbor_get_bytes(it, &b) || b.len != n) {
        return false;
    }
    memcpy(out, b.ptr, n);
    *has = true;
    return true;
}

static bool get_opt_bytes(const struct tam_cbor_item *it, struct tam_bytes *out)
{
    return it == NULL || tam_cbor_get_bytes(it, out);
}

static bool get_deps(const struct tam_cbor_item *it, struct tam_store_component *c)
{
    if (it == NULL) {
        return true;
    }
    if (it->type != TAM_CBOR_ARRAY || it->count > TAM_PLAN_MAX_DEPS) {
        return false;
    }
    const struct tam_cbor_item *d = tam_cbor_first(it);
    for (uint32_t i = 0; i < it->count; i++, d = tam_cbor_next(d)) {
        if (!get_id(d, &c->deps[i])) {
            return false;
        }
    }
    c->n_deps = it->count;
    return true;
}

static bool get_tail(const struct tam_cbor_item *m, struct tam_store_component *c)
{
    uint64_t delivery = 0;
    const struct tam_cbor_item *it = tam_cbor_map_get_int(m, C_DELIVERY);
    if (it != NULL && (!tam_cbor_get_uint(it, &delivery) || delivery < TAM_STORE_DELIVERY_URI ||
                       delivery > TAM_STORE_DELIVERY_INTEGRATED)) {
        return false;
    }
    c->delivery = (enum tam_store_delivery)delivery;
    it = tam_cbor_map_get_int(m, C_URI);
    if (it != NULL && !tam_cbor_get_text(it, &c->uri)) {
        return false;
    }
    return get_fixed(tam_cbor_map_get_int(m, C_VENDOR_ID), c->vendor_id, 16, &c->has_vendor_id) &&
           get_fixed(tam_cbor_map_get_int(m, C_CLASS_ID), c->class_id, 16, &c->has_class_id) &&
           get_opt_bytes(tam_cbor_map_get_int(m, C_BINARY), &c->binary);
}

static int decode_component(const struct tam_cbor_item *m, struct tam_store_component *c,
                            const char **why)
{
    if (m->type != TAM_CBOR_MAP) {
        return tam_fail(why, "component: not a map", TAM_EINVAL);
    }
    const struct tam_cbor_item *mid = tam_cbor_map_get_int(m, C_MANIFEST_ID);
    c->has_manifest_id = mid != NULL;
    if (!get_id(tam_cbor_map_get_int(m, C_COMPONENT), &c->component) ||
        (mid != NULL && !get_id(mid, &c->manifest_id)) ||
        !tam_cbor_get_uint(tam_cbor_map_get_int(m, C_SEQUENCE), &c->sequence) ||
        !get_fixed(tam_cbor_map_get_int(m, C_DIGEST), c->digest, TAM_PLAN_DIGEST_LEN,
                   &c->has_digest) ||
        !get_deps(tam_cbor_map_get_int(m, C_DEPS), c) ||
        !get_opt_bytes(tam_cbor_map_get_int(m, C_ENVELOPE), &c->envelope) || !get_tail(m, c)) {
        return tam_fail(why, "component: missing or malformed field", TAM_EINVAL);
    }
    return component_valid(c, why) ? TAM_OK : TAM_EINVAL;
}

int tam_store_component_decode(const uint8_t *buf, size_t len, struct tam_store_component *c,
                               const char **why)
{
    memset(c, 0, sizeof(*c));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &record_limits, &doc, why);
    if (err == TAM_OK) {
        err = decode_component(tam_cbor_root(&doc), c, why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

bool tam_store_component_ready(const struct tam_store_component *c)
{
    return c->envelope.len > 0 && c->has_manifest_id && c->has_digest;
}

int tam_store_component_manifest(const struct tam_store_component *c, const void *user,
                                 struct tam_plan_manifest *m)
{
    if (!tam_store_component_ready(c) || c->n_deps > TAM_PLAN_MAX_DEPS) {
        return TAM_EINVAL;
    }
    memset(m, 0, sizeof(*m));
    m->component = c->component;
    m->manifest_id = c->manifest_id;
    m->sequence = c->sequence;
    memcpy(m->digest, c->digest, TAM_PLAN_DIGEST_LEN);
    m->user = user;
    m->n_deps = c->n_deps;
    m->deps = c->n_deps > 0 ? c->deps : NULL;
    return TAM_OK;
}

/* ---- sent plan ---- */

static void put_sent_entry(struct tam_cbor_writer *w, const struct tam_plan_manifest *m)
{
    tam_cbor_open_array(w, 5);
    put_id(w, &m->component);
    put_id(w, &m->manifest_id);
    tam_cbor_put_uint(w, m->sequence);
    tam_cbor_put_bstr(w, m->digest, TAM_PLAN_DIGEST_LEN);
    uint32_t nd = m->n_deps <= TAM_PLAN_MAX_DEPS ? m->n_deps : 0;
    tam_cbor_open_array(w, nd);
    for (uint32_t d = 0; d < nd; d++) {
        put_id(w, &m->deps[d]);
    }
}

static bool sent_valid(const struct tam_plan *plan)
{
    if (plan->n_entries > TAM_PLAN_MAX_MANIFESTS || plan->n_unlink > TAM_TEEP_MAX_LIST) {
        return false;
    }
    for (uint32_t i = 0; i < plan->n_entries; i++) {
        const struct tam_plan_manifest *m = plan->entries[i].manifest;
        if (m == NULL || !id_valid(&m->component) || !id_valid(&m->manifest_id) ||
            m->n_deps > TAM_PLAN_MAX_DEPS) {
            return false;
        }
        for (uint32_t d = 0; d < m->n_deps; d++) {
            if (!id_valid(&m->deps[d])) {
                return false;
            }
        }
    }
    for (uint32_t i = 0; i < plan->n_unlink; i++) {
        const struct tam_teep_component_id *c = plan->unlink_component[i];
        if (!id_valid(&plan->unlink[i]) || (c != NULL && !id_valid(c))) {
            return false;
        }
    }
    return true;
}

int tam_store_sent_encode(const struct tam_plan *plan, struct tam_buf *out)
{
    if (!sent_valid(plan)) {
        return TAM_EINVAL;
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_array(&w, 2);
    tam_cbor_open_array(&w, plan->n_entries);
    for (uint32_t i = 0; i < plan->n_entries; i++) {
        put_sent_entry(&w, plan->entries[i].manifest);
    }
    tam_cbor_open_array(&w, plan->n_unlink);
    for (uint32_t i = 0; i < plan->n_unlink; i++) {
        tam_cbor_open_array(&w, 2);
        put_id(&w, &plan->unlink[i]);
        if (plan->unlink_component[i] != NULL) {
            put_id(&w, plan->unlink_component[i]);
        } else {
            tam_cbor_put_null(&w);
        }
    }
    return tam_cbor_writer_finish(&w);
}

static bool get_sent_entry(const struct tam_cbor_item *e, struct tam_plan_manifest *m,
                           struct tam_arena *arena)
{
    if (e->type != TAM_CBOR_ARRAY || e->count != 5) {
        return false;
    }
    const struct tam_cbor_item *it = tam_cbor_first(e);
    if (!get_id(it, &m->component) || !get_id(tam_cbor_next(it), &m->manifest_id)) {
        return false;
    }
    it = tam_cbor_next(tam_cbor_next(it));
    if (!tam_cbor_get_uint(it, &m->sequence) || !get_digest(tam_cbor_next(it), m->digest)) {
        return false;
    }
    const struct tam_cbor_item *deps = tam_cbor_next(tam_cbor_next(it));
    if (deps->type != TAM_CBOR_ARRAY || deps->count > TAM_PLAN_MAX_DEPS) {
        return false;
    }
    struct tam_teep_component_id *dv = NULL;
    if (deps->count > 0) {
        dv = tam_arena_array(arena, deps->count, sizeof(*dv));
        if (dv == NULL) {
            return false;
        }
    }
    const struct tam_cbor_item *d = tam_cbor_first(deps);
    for (uint32_t i = 0; i < deps->count; i++, d = tam_cbor_next(d)) {
        if (!get_id(d, &dv[i])) {
            return false;
        }
    }
    m->n_deps = deps->count;
    m->deps = dv;
    return true;
}

static int decode_sent_entries(const struct tam_cbor_item *list, struct tam_arena *arena,
                               struct tam_plan *out)
{
    if (list->type != TAM_CBOR_ARRAY || list->count > TAM_PLAN_MAX_MANIFESTS) {
        return TAM_EINVAL;
    }
    if (list->count == 0) {
        return TAM_OK;
    }
    out->entries = tam_arena_array(arena, list->count, sizeof(*out->entries));
    struct tam_plan_manifest *ms = tam_arena_array(arena, list->count, sizeof(*ms));
    if (out->entries == NULL || ms == NULL) {
        return TAM_ENOMEM;
    }
    const struct tam_cbor_item *e = tam_cbor_first(list);
    for (uint32_t i = 0; i < list->count; i++, e = tam_cbor_next(e)) {
        if (!get_sent_entry(e, &ms[i], arena)) {
            return TAM_EINVAL;
        }
        out->entries[i].manifest = &ms[i];
        out->entries[i].index = i;
    }
    out->n_entries = list->count;
    return TAM_OK;
}

static int decode_sent_unlinks(const struct tam_cbor_item *list, struct tam_arena *arena,
                               struct tam_plan *out)
{
    if (list->type != TAM_CBOR_ARRAY || list->count > TAM_TEEP_MAX_LIST) {
        return TAM_EINVAL;
    }
    if (list->count == 0) {
        return TAM_OK;
    }
    uint32_t n = list->count;
    out->unlink = tam_arena_array(arena, n, sizeof(*out->unlink));
    out->unlink_component = tam_arena_array(arena, n, sizeof(*out->unlink_component));
    struct tam_teep_component_id *comps = tam_arena_array(arena, n, sizeof(*comps));
    if (out->unlink == NULL || out->unlink_component == NULL || comps == NULL) {
        return TAM_ENOMEM;
    }
    const struct tam_cbor_item *e = tam_cbor_first(list);
    for (uint32_t i = 0; i < n; i++, e = tam_cbor_next(e)) {
        bool has = false;
        if (e->type != TAM_CBOR_ARRAY || e->count != 2 ||
            !get_id(tam_cbor_first(e), &out->unlink[i]) ||
            !get_opt_id(tam_cbor_next(tam_cbor_first(e)), &has, &comps[i])) {
            return TAM_EINVAL;
        }
        out->unlink_component[i] = has ? &comps[i] : NULL;
    }
    out->n_unlink = n;
    return TAM_OK;
}

int tam_store_sent_decode(const uint8_t *buf, size_t len, struct tam_arena *arena,
                          struct tam_plan *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &sent_limits, &doc, why);
    const struct tam_cbor_item *root = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
    if (err == TAM_OK && (root->type != TAM_CBOR_ARRAY || root->count != 2)) {
        err = TAM_EINVAL;
    }
    if (err == TAM_OK) {
        err = decode_sent_entries(tam_cbor_first(root), arena, out);
    }
    if (err == TAM_OK) {
        err = decode_sent_unlinks(tam_cbor_next(tam_cbor_first(root)), arena, out);
    }
    tam_cbor_doc_finish(&doc);
    if (err != TAM_OK) {
        memset(out, 0, sizeof(*out));
        if (err == TAM_EINVAL || err == TAM_ENOMEM) {
            err = tam_fail(why, err == TAM_EINVAL ? "sent plan: malformed" : "sent plan: no memory",
                           err);
        }
    }
    return err;
}

/* ---- labels ---- */

int tam_store_labels_parse(const char *s, size_t len, struct tam_arena *arena,
                           struct tam_bytes **out, uint32_t *n, const char **why)
{
    *out = NULL;
    *n = 0;
    if (len == 0) {
        return TAM_OK;
    }
    uint32_t count = 1;
    for (size_t i = 0; i < len; i++) {
        count += s[i] == ',';
    }
    if (count > TAM_PLAN_MAX_LABELS) {
        return tam_fail(why, "labels: too many", TAM_ETOOBIG);
    }
    struct tam_bytes *v = tam_arena_array(arena, count, sizeof(*v));
    if (v == NULL) {
        return tam_fail(why, "labels: out of memory", TAM_ENOMEM);
    }
    size_t start = 0;
    for (uint32_t k = 0; k < count; k++) {
        const char *comma = memchr(s + start, ',', len - start);
        size_t end = comma != NULL ? (size_t)(comma - s) : len;
        if (end == start || end - start > TAM_STORE_MAX_LABEL) {
            return tam_fail(why, "labels: empty or too long label", TAM_EINVAL);
        }
        v[k] = tam_bytes_of(s + start, end - start);
        start = end + 1;
    }
    *out = v;
    *n = count;
    return TAM_OK;
}
