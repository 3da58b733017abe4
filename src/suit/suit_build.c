/*
 * SUIT envelope builder for the three TEEP Update scenarios (TEEP draft App. E).
 * The layout follows the published examples command for command, so that the
 * same parameters reproduce their manifests byte for byte; the writer enforces
 * deterministic encoding (sorted map keys, shortest heads).
 */
#include <string.h>

#include "suit_internal.h"
#include "tam/err.h"

#define DEP_INDEX 1 /* the dependency follows the single component */

static const char suit_segment[] = "suit";

/* What the builder derives from the parameters before writing anything. */
struct plan {
    const struct tam_suit_build_params *p;
    bool multi; /* a dependency: every sequence selects its component index */
    uint8_t image_digest[TAM_SHA256_LEN];
    uint64_t image_size;
    const char *uri; /* fetch URI (URI) or integrated key (INTEGRATED) */
};

static void put_digest_bstr(struct tam_cbor_writer *w, const uint8_t digest[TAM_SHA256_LEN])
{
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, 2);
    tam_cbor_put_int(w, SUIT_ALG_SHA256);
    tam_cbor_put_bstr(w, digest, TAM_SHA256_LEN);
    tam_cbor_close_wrap(w);
}

static void put_segments(struct tam_cbor_writer *w, const struct tam_bytes *seg, size_t n)
{
    tam_cbor_open_array(w, n);
    for (size_t i = 0; i < n; i++) {
        tam_cbor_put_bstr(w, seg[i].ptr, seg[i].len);
    }
}

static void put_manifest_component_id(struct tam_cbor_writer *w,
                                      const struct tam_suit_build_params *p)
{
    if (p->nmanifest_component_id > 0) {
        put_segments(w, p->manifest_component_id, p->nmanifest_component_id);
        return;
    }
    tam_cbor_open_array(w, p->ncomponent_id);
    for (size_t i = 0; i + 1 < p->ncomponent_id; i++) {
        tam_cbor_put_bstr(w, p->component_id[i].ptr, p->component_id[i].len);
    }
    tam_cbor_put_bstr(w, suit_segment, sizeof(suit_segment) - 1);
}

static void put_cmd(struct tam_cbor_writer *w, int cmd, uint64_t arg)
{
    tam_cbor_put_uint(w, (uint64_t)cmd);
    tam_cbor_put_uint(w, arg);
}

/* With a dependency: select it, process it, then select the component (6 items). */
static void put_process_dependency(struct tam_cbor_writer *w)
{
    put_cmd(w, SUIT_CMD_SET_COMPONENT_INDEX, DEP_INDEX);
    put_cmd(w, SUIT_CMD_PROCESS_DEPENDENCY, 0);
    put_cmd(w, SUIT_CMD_SET_COMPONENT_INDEX, 0);
}

/* ---- suit-common ---- */

static void put_shared(struct tam_cbor_writer *w, const struct plan *pl)
{
    const struct tam_suit_build_params *p = pl->p;
    bool digest = p->kind != TAM_SUIT_BUILD_CONTENT; /* CONTENT checks it in validate */
    uint64_t nparams = (p->vendor_id != NULL) + (p->class_id != NULL) + (digest ? 2u : 0u);
    uint64_t items = (pl->multi ? 2u : 0u) + (nparams > 0 ? 2u : 0u) +
                     (p->vendor_id != NULL ? 2u : 0u) + (p->class_id != NULL ? 2u : 0u);
    tam_cbor_open_array(w, items);
    if (pl->multi) {
        put_cmd(w, SUIT_CMD_SET_COMPONENT_INDEX, 0);
    }
    if (nparams > 0) {
        tam_cbor_put_uint(w, SUIT_CMD_OVERRIDE_PARAMETERS);
        tam_cbor_open_map(w, nparams);
        if (p->vendor_id != NULL) {
            tam_cbor_put_uint(w, SUIT_PARAM_VENDOR_ID);
            tam_cbor_put_bstr(w, p->vendor_id, 16);
        }
        if (p->class_id != NULL) {
            tam_cbor_put_uint(w, SUIT_PARAM_CLASS_ID);
            tam_cbor_put_bstr(w, p->class_id, 16);
        }
        if (digest) {
            tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_DIGEST);
            put_digest_bstr(w, pl->image_digest);
            tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_SIZE);
            tam_cbor_put_uint(w, pl->image_size);
        }
    }
    if (p->vendor_id != NULL) {
        put_cmd(w, SUIT_CMD_VENDOR_ID, SUIT_POLICY_ALL);
    }
    if (p->class_id != NULL) {
        put_cmd(w, SUIT_CMD_CLASS_ID, SUIT_POLICY_ALL);
    }
}

static bool has_shared(const struct plan *pl)
{
    return pl->multi || pl->p->vendor_id != NULL || pl->p->class_id != NULL ||
           pl->p->kind != TAM_SUIT_BUILD_CONTENT;
}

static void put_common(struct tam_cbor_writer *w, const struct plan *pl)
{
    const struct tam_suit_build_params *p = pl->p;
    tam_cbor_open_wrap(w);
    tam_cbor_open_map(w, 1u + (pl->multi ? 1u : 0u) + (has_shared(pl) ? 1u : 0u));
    if (pl->multi) {
        /* suit-dependencies: {index: {dependency-prefix: component id}} */
        tam_cbor_put_uint(w, 1);
        tam_cbor_open_map(w, 1);
        tam_cbor_put_uint(w, DEP_INDEX);
        tam_cbor_open_map(w, 1);
        tam_cbor_put_uint(w, 1);
        put_segments(w, p->dependency->prefix, p->dependency->nprefix);
    }
    tam_cbor_put_uint(w, 2); /* suit-components */
    tam_cbor_open_array(w, 1);
    put_segments(w, p->component_id, p->ncomponent_id);
    if (has_shared(pl)) {
        tam_cbor_put_uint(w, 4); /* suit-shared-sequence */
        tam_cbor_open_wrap(w);
        put_shared(w, pl);
        tam_cbor_close_wrap(w);
    }
    tam_cbor_close_wrap(w);
}

/* ---- sequences ---- */

static void put_validate(struct tam_cbor_writer *w, const struct plan *pl)
{
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, pl->multi ? 6 : 4);
    if (pl->multi) {
        put_cmd(w, SUIT_CMD_SET_COMPONENT_INDEX, 0);
    }
    tam_cbor_put_uint(w, SUIT_CMD_OVERRIDE_PARAMETERS);
    tam_cbor_open_map(w, 2);
    tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_DIGEST);
    put_digest_bstr(w, pl->image_digest);
    tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_SIZE);
    tam_cbor_put_uint(w, pl->image_size);
    put_cmd(w, SUIT_CMD_IMAGE_MATCH, SUIT_POLICY_ALL);
    tam_cbor_close_wrap(w);
}

/* Fetch policy 2 (record on failure) and no image-match, as in TEEP App. E Example 3. */
static void put_dependency_resolution(struct tam_cbor_writer *w, const struct plan *pl)
{
    const struct tam_suit_build_dep *d = pl->p->dependency;
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, 6);
    put_cmd(w, SUIT_CMD_SET_COMPONENT_INDEX, DEP_INDEX);
    tam_cbor_put_uint(w, SUIT_CMD_OVERRIDE_PARAMETERS);
    tam_cbor_open_map(w, 3);
    tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_DIGEST);
    put_digest_bstr(w, d->digest);
    tam_cbor_put_uint(w, SUIT_PARAM_IMAGE_SIZE);
    tam_cbor_put_uint(w, d->size);
    tam_cbor_put_uint(w, SUIT_PARAM_URI);
    tam_cbor_put_str(w, d->uri);
    put_cmd(w, SUIT_CMD_FETCH, 2);
    tam_cbor_close_wrap(w);
}

static void put_install(struct tam_cbor_writer *w, const struct plan *pl)
{
    const struct tam_suit_build_params *p = pl->p;
    bool content = p->kind == TAM_SUIT_BUILD_CONTENT;
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, (content ? 4u : 6u) + (pl->multi ? 6u : 0u));
    if (pl->multi) {
        put_process_dependency(w);
    }
    tam_cbor_put_uint(w, SUIT_CMD_OVERRIDE_PARAMETERS);
    if (content) {
        bool enc = p->encryption_info.len > 0;
        tam_cbor_open_map(w, enc ? 2 : 1);
        tam_cbor_put_uint(w, SUIT_PARAM_CONTENT);
        tam_cbor_put_bstr(w, p->payload.ptr, p->payload.len);
        if (enc) {
            tam_cbor_put_uint(w, SUIT_PARAM_ENCRYPTION_INFO);
            tam_cbor_put_bstr(w, p->encryption_info.ptr, p->encryption_info.len);
        }
        put_cmd(w, SUIT_CMD_WRITE, SUIT_POLICY_ALL);
    } else {
        tam_cbor_open_map(w, 1);
        tam_cbor_put_uint(w, SUIT_PARAM_URI);
        tam_cbor_put_str(w, pl->uri);
        put_cmd(w, SUIT_CMD_FETCH, SUIT_POLICY_ALL);
        put_cmd(w, SUIT_CMD_IMAGE_MATCH, SUIT_POLICY_ALL);
    }
    tam_cbor_close_wrap(w);
}

static void put_uninstall(struct tam_cbor_writer *w, const struct plan *pl)
{
    tam_cbor_open_wrap(w);
    tam_cbor_open_array(w, pl->multi ? 8 : 2);
    if (pl->multi) {
        put_process_dependency(w);
    }
    put_cmd(w, SUIT_CMD_UNLINK, SUIT_POLICY_ALL);
    tam_cbor_close_wrap(w);
}

/* The manifest as a bstr (head included: the digest input). */
static int write_manifest(struct tam_buf *out, const struct plan *pl)
{
    const struct tam_suit_build_params *p = pl->p;
    bool validate = p->kind == TAM_SUIT_BUILD_CONTENT;
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_wrap(&w);
    tam_cbor_open_map(&w, 5u + (p->reference_uri != NULL) + validate + pl->multi + p->uninstall);
    put_cmd(&w, TAM_SUIT_VERSION, 1);
    put_cmd(&w, TAM_SUIT_SEQUENCE, p->sequence);
    tam_cbor_put_uint(&w, TAM_SUIT_COMMON);
    put_common(&w, pl);
    if (p->reference_uri != NULL) {
        tam_cbor_put_uint(&w, TAM_SUIT_REFERENCE_URI);
        tam_cbor_put_str(&w, p->reference_uri);
    }
    tam_cbor_put_uint(&w, TAM_SUIT_MANIFEST_COMPONENT_ID);
    put_manifest_component_id(&w, p);
    if (validate) {
        tam_cbor_put_uint(&w, TAM_SUIT_VALIDATE);
        put_validate(&w, pl);
    }
    if (pl->multi) {
        tam_cbor_put_uint(&w, TAM_SUIT_DEPENDENCY_RESOLUTION);
        put_dependency_resolution(&w, pl);
    }
    tam_cbor_put_uint(&w, TAM_SUIT_INSTALL);
    put_install(&w, pl);
    if (p->uninstall) {
        tam_cbor_put_uint(&w, TAM_SUIT_UNINSTALL);
        put_uninstall(&w, pl);
    }
    tam_cbor_close_wrap(&w);
    return tam_cbor_writer_finish(&w);
}

/* ---- authentication and envelope ---- */

/* auth[0] content: the encoded SUIT_Digest of the bstr-wrapped manifest. */
static int write_digest(struct tam_buf *out, struct tam_bytes manifest_bstr)
{
    uint8_t md[TAM_SHA256_LEN];
    tam_sha256(manifest_bstr.ptr, manifest_bstr.len, md);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_int(&w, SUIT_ALG_SHA256);
    tam_cbor_put_bstr(&w, md, sizeof(md));
    return tam_cbor_writer_finish(&w);
}

static int write_envelope(struct tam_buf *out, const struct plan *pl, struct tam_bytes manifest,
                          struct tam_bytes digest, struct tam_bytes sign1)
{
    bool integrated = pl->p->kind == TAM_SUIT_BUILD_INTEGRATED;
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    if (pl->p->tagged) {
        tam_cbor_put_tag(&w, TAM_SUIT_TAG_ENVELOPE);
    }
    tam_cbor_open_map(&w, integrated ? 3 : 2);
    tam_cbor_put_uint(&w, TAM_SUIT_AUTH_WRAPPER);
    tam_cbor_open_wrap(&w);
    tam_cbor_open_array(&w, 2);
    tam_cbor_put_bstr(&w, digest.ptr, digest.len);
    tam_cbor_put_bstr(&w, sign1.ptr, sign1.len);
    tam_cbor_close_wrap(&w);
    tam_cbor_put_uint(&w, TAM_SUIT_MANIFEST);
    tam_cbor_put_raw(&w, manifest.ptr, manifest.len);
    if (integrated) {
        /* Text keys sort after the integer keys, so this stays canonical. */
        tam_cbor_put_str(&w, pl->uri);
        tam_cbor_put_bstr(&w, pl->p->payload.ptr, pl->p->payload.len);
    }
    return tam_cbor_writer_finish(&w);
}

/* ---- parameter checks ---- */

static bool segments_ok(const struct tam_bytes *seg, size_t n, size_t min)
{
    if (n < min || n > TAM_SUIT_MAX_SEGMENTS || (n > 0 && seg == NULL)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (seg[i].ptr == NULL && seg[i].len > 0) {
            return false;
        }
    }
    return true;
}

static bool dep_ok(const struct tam_suit_build_dep *d)
{
    return d == NULL ||
           (d->digest != NULL && d->uri != NULL && segments_ok(d->prefix, d->nprefix, 1));
}

static int plan_init(struct plan *pl, const struct tam_suit_build_params *p)
{
    memset(pl, 0, sizeof(*pl));
    pl->p = p;
    pl->multi = p->dependency != NULL;
    if (!segments_ok(p->component_id, p->ncomponent_id, 1) ||
        !segments_ok(p->manifest_component_id, p->nmanifest_component_id, 0) ||
        !dep_ok(p->dependency) || (p->payload.ptr == NULL && p->payload.len > 0)) {
        return TAM_EINVAL;
    }
    switch (p->kind) {
    case TAM_SUIT_BUILD_URI:
        pl->uri = p->uri;
        if (pl->uri == NULL || p->image_digest == NULL) {
            return TAM_EINVAL; /* nothing to hash: the payload is elsewhere */
        }
        break;
    case TAM_SUIT_BUILD_INTEGRATED:
        pl->uri = p->uri != NULL ? p->uri : "#tc";
        break;
    case TAM_SUIT_BUILD_CONTENT:
        if (p->encryption_info.len > 0 && p->image_digest == NULL) {
            return TAM_EINVAL; /* the plaintext digest cannot be computed here */
        }
        break;
    default:
        return TAM_EINVAL;
    }
    if (p->image_digest != NULL) {
        memcpy(pl->image_digest, p->image_digest, TAM_SHA256_LEN);
        pl->image_size = p->image_size;
    } else {
        tam_sha256(p->payload.ptr, p->payload.len, pl->image_digest);
        pl->image_size = p->payload.len;
    }
    return TAM_OK;
}

int tam_suit_build(const struct tam_suit_build_params *p, const struct tam_key *signer, int alg,
                   struct tam_buf *out)
{
    struct plan pl;
    int err = plan_init(&pl, p);
    if (err != TAM_OK) {
        return err;
    }
    if (!tam_key_alg_ok(signer, alg)) {
        return TAM_ECOSE_ALG;
    }
    size_t mark = out->len;
    struct tam_buf manifest, digest, sign1;
    tam_buf_init(&manifest, TAM_SUIT_MAX_ENVELOPE);
    tam_buf_init(&digest, 64);
    tam_buf_init(&sign1, 256);
    err = write_manifest(&manifest, &pl);
    if (err == TAM_OK) {
        err = write_digest(&digest, tam_bytes_of(manifest.data, manifest.len));
    }
    if (err == TAM_OK) {
        struct tam_cose_sign_opts opts = {.tagged = true, .detached = true};
        struct tam_bytes payload = tam_bytes_of(digest.data, digest.len);
        err = tam_cose_sign1(&sign1, signer, alg, &payload, &opts);
    }
    if (err == TAM_OK) {
        err = write_envelope(out, &pl, tam_bytes_of(manifest.data, manifest.len),
                             tam_bytes_of(digest.data, digest.len),
                             tam_bytes_of(sign1.data, sign1.len));
    }
    tam_buf_finish(&manifest);
    tam_buf_finish(&digest);
    tam_buf_finish(&sign1);
    if (err != TAM_OK) {
        out->len = mark; /* leave no partial envelope behind */
    }
    return err;
}
