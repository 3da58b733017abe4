/*
 * Processing an Update (TP 4.4, 7.2; SUIT manifest 6): unlink what the TAM no
 * longer wants, then for every envelope: authenticate (digest + TC-signer
 * signature), refuse rollback, resolve dependencies, take the payload, check
 * its digest, install. Answer Success, or Error ERR_MANIFEST_PROCESSING_FAILED,
 * with one SUIT report per envelope.
 *
 * Preparation (tam_agent_handle) does everything that does not depend on the
 * device state or on fetched bytes, and lists the URIs to fetch; application
 * (tam_agent_step_finish) does the rest in manifest order, so a manifest may
 * depend on one that comes before it in the same Update.
 */
#include <string.h>

#include "core.h"
#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/err.h"

/* SUIT command and parameter numbers used when scanning install sequences. */
enum {
    CMD_TRY_EACH = 15,
    CMD_WRITE = 18,
    CMD_SET_PARAMETERS = 19,
    CMD_OVERRIDE_PARAMETERS = 20,
    CMD_FETCH = 21,
    CMD_COPY = 22,
    CMD_RUN_SEQUENCE = 32,
    CMD_UNLINK = 33,
    PARAM_CONTENT = 18,
    PARAM_ENCRYPTION_INFO = 19,
};

static const struct tam_cbor_limits seq_limits = {
    .max_size = TAM_SUIT_MAX_ENVELOPE, .max_depth = 16, .max_items = 65536};

static void job_fail(struct ag_job *j, uint64_t reason, int64_t section, const char *why)
{
    if (!j->failed) {
        j->failed = true;
        j->reason = reason;
        j->section = section;
        j->why = why;
    }
}

/* ---- install sequence scan ---- */

struct scan {
    bool unlink;
    bool writes;
    bool encrypted;
    struct tam_bytes content;
};

static void scan_seq(struct tam_bytes seq, struct scan *sc, int depth);

static void scan_params(const struct tam_cbor_item *map, struct scan *sc)
{
    struct tam_bytes content;
    if (map->type != TAM_CBOR_MAP) {
        return;
    }
    if (tam_cbor_get_bytes(tam_cbor_map_get_int(map, PARAM_CONTENT), &content)) {
        sc->content = content;
    }
    if (tam_cbor_map_get_int(map, PARAM_ENCRYPTION_INFO) != NULL) {
        sc->encrypted = true;
    }
}

static void scan_command(uint64_t cmd, const struct tam_cbor_item *arg, struct scan *sc, int depth)
{
    struct tam_bytes nested;
    switch (cmd) {
    case CMD_SET_PARAMETERS:
    case CMD_OVERRIDE_PARAMETERS:
        scan_params(arg, sc);
        break;
    case CMD_UNLINK:
        sc->unlink = true;
        break;
    case CMD_WRITE:
    case CMD_FETCH:
    case CMD_COPY:
        sc->writes = true;
        break;
    case CMD_RUN_SEQUENCE:
        if (tam_cbor_get_bytes(arg, &nested)) {
            scan_seq(nested, sc, depth + 1);
        }
        break;
    case CMD_TRY_EACH:
        /* Alternatives: the first one is what a device normally runs. */
        if (arg->type == TAM_CBOR_ARRAY && arg->count > 0 &&
            tam_cbor_get_bytes(tam_cbor_first(arg), &nested)) {
            scan_seq(nested, sc, depth + 1);
        }
        break;
    default:
        break;
    }
}

/* Walks a SUIT_Command_Sequence ([cmd, arg, cmd, arg, ...]) two levels deep at most. */
static void scan_seq(struct tam_bytes seq, struct scan *sc, int depth)
{
    if (depth > 2 || seq.len == 0) {
        return;
    }
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    const struct tam_cbor_item *arr = NULL;
    if (tam_cbor_decode(seq.ptr, seq.len, &seq_limits, &doc, NULL) == TAM_OK) {
        arr = tam_cbor_root(&doc);
    }
    if (arr != NULL && arr->type == TAM_CBOR_ARRAY && arr->count % 2 == 0) {
        const struct tam_cbor_item *it = arr->count > 0 ? tam_cbor_first(arr) : NULL;
        for (uint32_t i = 0; i < arr->count; i += 2) {
            uint64_t cmd = 0;
            const struct tam_cbor_item *arg = tam_cbor_next(it);
            if (tam_cbor_get_uint(it, &cmd)) {
                scan_command(cmd, arg, sc, depth);
            }
            it = tam_cbor_next(arg);
        }
    }
    tam_cbor_doc_finish(&doc);
}

/* ---- preparation ---- */

static const struct ag_want *held_binary(const struct tam_agent_device *dev, const uint8_t *cid,
                                         size_t len)
{
    for (size_t i = 0; i < dev->nreq; i++) {
        const struct ag_want *w = &dev->req[i];
        if (w->have_binary && w->id_len == len && memcmp(w->id, cid, len) == 0) {
            return w;
        }
    }
    return NULL;
}

/* The fetch slot for uri, shared by manifests naming the same URI. */
static int fetch_slot(struct tam_agent_step *s, struct tam_bytes uri, size_t *idx)
{
    for (size_t i = 0; i < s->nfetch; i++) {
        if (strlen(s->fetch[i].uri) == uri.len && memcmp(s->fetch[i].uri, uri.ptr, uri.len) == 0) {
            *idx = i;
            return TAM_OK;
        }
    }
    if (s->nfetch == TAM_AGENT_MAX_FETCH || uri.len > TAM_AGENT_MAX_URI) {
        return TAM_ETOOBIG;
    }
    char *copy = tam_strndup((const char *)uri.ptr, uri.len);
    if (copy == NULL) {
        return TAM_ENOMEM;
    }
    s->fetch[s->nfetch].uri = copy;
    *idx = s->nfetch++;
    return TAM_OK;
}

static void component_id(const struct ag_job *j, const uint8_t **cid, size_t *len)
{
    if (j->env.ncomponents > 0) {
        *cid = j->env.components[0].raw.ptr;
        *len = j->env.components[0].raw.len;
    } else {
        *cid = j->mcid;
        *len = j->mcid_len;
    }
}

static int uri_source(struct tam_agent_step *s, struct ag_job *j)
{
    struct tam_bytes uri = j->env.first.uri;
    if (uri.len > 0 && uri.ptr[0] == '#') {
        char key[256];
        if (uri.len >= sizeof(key)) {
            job_fail(j, TAM_SUIT_REASON_PARAMETER_UNSUPPORTED, TAM_SUIT_INSTALL, "uri too long");
            return TAM_OK;
        }
        memcpy(key, uri.ptr, uri.len);
        key[uri.len] = '\0';
        const struct tam_suit_integrated *in = tam_suit_integrated(&j->env, key);
        if (in == NULL) {
            job_fail(j, TAM_SUIT_REASON_OPERATION_FAILED, TAM_SUIT_INSTALL,
                     "integrated payload missing");
            return TAM_OK;
        }
        j->src = SRC_INTEGRATED;
        j->payload = in->data;
        return TAM_OK;
    }
    const uint8_t *cid;
    size_t cid_len;
    component_id(j, &cid, &cid_len);
    const struct ag_want *held = held_binary(s->dev, cid, cid_len);
    if (held != NULL) {
        j->src = SRC_HELD; /* have-binary: no fetch (TP 4.3) */
        j->payload = tam_bytes_of(held->binary, held->binary_len);
        return TAM_OK;
    }
    int err = fetch_slot(s, uri, &j->fetch_idx);
    if (err == TAM_ETOOBIG) {
        job_fail(j, TAM_SUIT_REASON_OPERATION_FAILED, TAM_SUIT_INSTALL, "too many URIs to fetch");
        return TAM_OK;
    }
    j->src = SRC_FETCH;
    return err;
}

static int choose_source(struct tam_agent_step *s, struct ag_job *j)
{
    struct scan sc;
    memset(&sc, 0, sizeof(sc));
    if (j->env.install.present && !j->env.install.available) {
        job_fail(j, TAM_SUIT_REASON_SEVERING_UNSUPPORTED, TAM_SUIT_INSTALL,
                 "severed install sequence missing");
        return TAM_OK;
    }
    scan_seq(j->env.install.seq, &sc, 0);
    j->encrypted = sc.encrypted;
    if (sc.unlink && !sc.writes) {
        j->is_delete = true; /* an install sequence that only unlinks deletes the TC */
        return TAM_OK;
    }
    if (j->env.first.has_uri) {
        return uri_source(s, j);
    }
    if (sc.content.len > 0) {
        j->src = SRC_CONTENT;
        j->payload = sc.content;
        return TAM_OK;
    }
    const uint8_t *cid;
    size_t cid_len;
    component_id(j, &cid, &cid_len);
    const struct ag_want *held = held_binary(s->dev, cid, cid_len);
    if (held != NULL) {
        j->src = SRC_HELD;
        j->payload = tam_bytes_of(held->binary, held->binary_len);
    }
    return TAM_OK;
}

static void authenticate(struct tam_agent_step *s, struct ag_job *j)
{
    const struct tam_agent_profile *p = s->dev->profile;
    uint8_t key[TAM_SHA256_LEN];
    tam_sha256(j->bytes.ptr, j->bytes.len, key);
    if (ag_vcache_lookup(p->vcache, key)) {
        if (tam_suit_check_digest(&j->env) != TAM_OK) {
            job_fail(j, TAM_SUIT_REASON_UNAUTHORISED, 0, "manifest digest mismatch");
        }
        return;
    }
    int err = tam_suit_verify(&j->env, p->signer_keys, p->n_signer_keys);
    if (err == TAM_ESUIT_DIGEST) {
        job_fail(j, TAM_SUIT_REASON_UNAUTHORISED, 0, "manifest digest mismatch");
    } else if (err == TAM_ESUIT) {
        job_fail(j, TAM_SUIT_REASON_ALG_UNSUPPORTED, 0, "unsupported digest algorithm");
    } else if (err != TAM_OK) {
        job_fail(j, TAM_SUIT_REASON_UNAUTHORISED, 0, "no trusted TC signer key verifies it");
    } else {
        ag_vcache_insert(p->vcache, key);
    }
}

static void manifest_key(struct ag_job *j)
{
    const struct tam_suit_component_id *id = NULL;
    if (j->env.has_manifest_component_id) {
        id = &j->env.manifest_component_id;
    } else if (j->env.ncomponents > 0) {
        id = &j->env.components[0];
    }
    if (id == NULL || id->raw.len == 0 || id->raw.len > sizeof(j->mcid)) {
        job_fail(j, TAM_SUIT_REASON_COMPONENT_UNSUPPORTED, 0, "no usable component id");
        return;
    }
    memcpy(j->mcid, id->raw.ptr, id->raw.len);
    j->mcid_len = id->raw.len;
}

static int prepare_job(struct tam_agent_step *s, struct ag_job *j)
{
    const char *why = NULL;
    if (tam_suit_parse(j->bytes.ptr, j->bytes.len, &j->env, &why) != TAM_OK) {
        tam_sha256(j->bytes.ptr, j->bytes.len, j->digest); /* best effort for the report */
        job_fail(j, TAM_SUIT_REASON_CBOR_PARSE, 0, why != NULL ? why : "not a SUIT envelope");
        return TAM_OK;
    }
    j->parsed = true;
    tam_suit_manifest_digest(&j->env, j->digest);
    authenticate(s, j);
    if (!j->failed) {
        manifest_key(j);
    }
    return j->failed ? TAM_OK : choose_source(s, j);
}

int ag_prepare_update(struct tam_agent_step *s)
{
    const struct tam_teep_msg *m = &s->msg;
    if (!m->has_manifest_list || m->n_manifest_list == 0) {
        return TAM_OK;
    }
    size_t n = m->n_manifest_list;
    n = n > TAM_AGENT_MAX_MANIFESTS ? TAM_AGENT_MAX_MANIFESTS : n;
    s->jobs = tam_calloc(n, sizeof(*s->jobs));
    if (s->jobs == NULL) {
        return TAM_ENOMEM;
    }
    s->njobs = n;
    int err = TAM_OK;
    for (size_t i = 0; i < n && err == TAM_OK; i++) {
        s->jobs[i].bytes = m->manifest_list[i];
        err = prepare_job(s, &s->jobs[i]);
    }
    return err;
}

/* ---- application ---- */

static bool dependencies_met(struct tam_agent_device *dev, const struct ag_job *j)
{
    for (unsigned i = 0; i < j->env.ndeps; i++) {
        const struct tam_suit_dependency *d = &j->env.deps[i];
        if (d->integrated >= 0) {
            continue; /* travels inside this envelope */
        }
        const struct tam_suit_digest *dg = &d->params.image_digest;
        if (!d->params.has_image_digest || dg->bytes.len != TAM_SHA256_LEN ||
            ag_tc_by_digest(dev, dg->bytes.ptr) == NULL) {
            return false;
        }
    }
    return true;
}

/* The payload bytes, or has=false when the device holds it without bytes or there is none. */
static bool payload_of(struct tam_agent_step *s, struct ag_job *j, struct tam_bytes *out)
{
    *out = tam_bytes_of(NULL, 0);
    if (j->src == SRC_FETCH) {
        const struct ag_fetch *f = &s->fetch[j->fetch_idx];
        if (!f->supplied) {
            j->fetch_failed = true;
            job_fail(j, TAM_SUIT_REASON_OPERATION_FAILED, TAM_SUIT_INSTALL, "payload fetch failed");
            return false;
        }
        *out = tam_bytes_of(f->data, f->len);
        return true;
    }
    if (j->src == SRC_HELD && j->payload.len == 0) {
        return false;
    }
    *out = j->payload;
    return j->src != SRC_NONE;
}

static void check_image(struct ag_job *j, struct tam_bytes payload)
{
    const struct tam_suit_params *p = &j->env.first;
    if (j->encrypted) {
        return; /* the digest is over the plaintext, which this device cannot see */
    }
    if (p->has_image_size && p->image_size != payload.len) {
        job_fail(j, TAM_SUIT_REASON_CONDITION_FAILED, TAM_SUIT_INSTALL, "image size mismatch");
        return;
    }
    if (p->has_image_digest && p->image_digest.alg == TAM_ALG_SHA256 &&
        p->image_digest.bytes.len == TAM_SHA256_LEN) {
        uint8_t d[TAM_SHA256_LEN];
        tam_sha256(payload.ptr, payload.len, d);
        if (memcmp(d, p->image_digest.bytes.ptr, TAM_SHA256_LEN) != 0) {
            job_fail(j, TAM_SUIT_REASON_CONDITION_FAILED, TAM_SUIT_INSTALL,
                     "image digest mismatch");
        }
    }
}

static uint8_t *dup_or_empty(const void *p, size_t n)
{
    uint8_t *d = tam_malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

static int make_tc(const struct ag_job *j, bool has_payload, struct tam_bytes payload,
                   struct ag_tc *tc)
{
    const struct tam_suit_params *p = &j->env.first;
    const uint8_t *cid;
    size_t cid_len;
    component_id(j, &cid, &cid_len);
    memset(tc, 0, sizeof(*tc));
    tc->cid = dup_or_empty(cid, cid_len);
    tc->cid_len = cid_len;
    tc->mcid = dup_or_empty(j->mcid, j->mcid_len);
    tc->mcid_len = j->mcid_len;
    tc->payload = has_payload ? dup_or_empty(payload.ptr, payload.len) : NULL;
    tc->payload_len = has_payload ? payload.len : 0;
    struct tam_bytes ref = j->env.has_reference_uri ? j->env.reference_uri : tam_bytes_of("", 0);
    tc->reference_uri = tam_strndup((const char *)ref.ptr, ref.len);
    if (tc->cid == NULL || tc->mcid == NULL || tc->reference_uri == NULL ||
        (has_payload && tc->payload == NULL)) {
        ag_tc_free(tc);
        return TAM_ENOMEM;
    }
    tc->sequence = j->env.sequence;
    memcpy(tc->manifest_digest, j->digest, TAM_SHA256_LEN);
    tc->has_image_digest = p->has_image_digest && p->image_digest.alg == TAM_ALG_SHA256 &&
                           p->image_digest.bytes.len == TAM_SHA256_LEN;
    if (tc->has_image_digest) {
        memcpy(tc->image_digest, p->image_digest.bytes.ptr, TAM_SHA256_LEN);
    }
    tc->has_payload = has_payload;
    tc->encrypted = j->encrypted && has_payload;
    return TAM_OK;
}

static int apply_job(struct tam_agent_step *s, struct ag_job *j, struct tam_agent_outcome *o)
{
    struct tam_agent_device *dev = s->dev;
    struct ag_tc *old = ag_tc_by_mcid(dev, j->mcid, j->mcid_len);
    if (old != NULL && memcmp(old->manifest_digest, j->digest, TAM_SHA256_LEN) == 0 &&
        !j->is_delete) {
        /* The manifest we already run, sent again (a TAM that had not yet recorded our
         * Success plans it once more): re-applying it changes nothing, so it succeeds. */
        return TAM_OK;
    }
    if (old != NULL && j->env.sequence <= old->sequence) {
        job_fail(j, TAM_SUIT_REASON_CONDITION_FAILED, 0, "rollback refused: sequence number");
        return TAM_OK;
    }
    if (!dependencies_met(dev, j)) {
        job_fail(j, TAM_SUIT_REASON_COMPONENT_UNSUPPORTED, TAM_SUIT_DEPENDENCY_RESOLUTION,
                 "dependency not installed");
        return TAM_OK;
    }
    if (j->is_delete) {
        if (old != NULL) {
            ag_tc_remove(dev, old);
            o->n_deleted++;
        }
        return TAM_OK;
    }
    struct tam_bytes payload;
    bool has = payload_of(s, j, &payload);
    if (j->failed) {
        return TAM_OK;
    }
    if (has) {
        check_image(j, payload);
    }
    if (j->failed) {
        return TAM_OK;
    }
    struct ag_tc tc;
    int err = make_tc(j, has, payload, &tc);
    err = err == TAM_OK ? ag_tc_put(dev, &tc) : err;
    if (err == TAM_ETOOBIG) {
        ag_tc_free(&tc);
        job_fail(j, TAM_SUIT_REASON_OPERATION_FAILED, TAM_SUIT_INSTALL, "TC store full");
        return TAM_OK;
    }
    if (err == TAM_OK) {
        o->n_installed++;
    }
    return err;
}

static void unlink_unneeded(struct tam_agent_step *s, struct tam_agent_outcome *o)
{
    const struct tam_teep_msg *m = &s->msg;
    for (uint32_t i = 0; m->has_unneeded && i < m->n_unneeded; i++) {
        uint8_t enc[TAM_AGENT_ID_MAX];
        size_t len = ag_id_from_teep(&m->unneeded[i], enc, sizeof(enc));
        struct ag_tc *tc = len > 0 ? ag_tc_by_mcid(s->dev, enc, len) : NULL;
        if (tc != NULL) {
            ag_tc_remove(s->dev, tc); /* the TC's suit-uninstall would run here */
            o->n_unlinked++;
        }
    }
}

static int job_reports(struct tam_agent_step *s, struct tam_teep_msg *r)
{
    if (s->njobs == 0) {
        return TAM_OK;
    }
    r->suit_reports = tam_arena_array(&s->arena, s->njobs, sizeof(*r->suit_reports));
    if (r->suit_reports == NULL) {
        return TAM_ENOMEM;
    }
    struct tam_bytes nonce = s->msg.has_token ? s->msg.token : tam_bytes_of(NULL, 0);
    int err = TAM_OK;
    for (size_t i = 0; i < s->njobs && err == TAM_OK; i++) {
        const struct ag_job *j = &s->jobs[i];
        struct tam_bytes uri = tam_bytes_of("", 0);
        if (j->parsed && j->env.has_reference_uri) {
            uri = j->env.reference_uri;
        }
        err = ag_encode_report(j->digest, uri, nonce, !j->failed, j->reason, j->section, &s->arena,
                               &r->suit_reports[i]);
    }
    r->has_suit_reports = true;
    r->n_suit_reports = (uint32_t)s->njobs;
    return err;
}

static const char *first_failure(const struct tam_agent_step *s)
{
    for (size_t i = 0; i < s->njobs; i++) {
        if (s->jobs[i].failed) {
            return s->jobs[i].why;
        }
    }
    return "too many manifests";
}

static int answer_update(struct tam_agent_step *s, struct tam_buf *reply,
                         struct tam_agent_outcome *o)
{
    bool ok = o->n_failed == 0;
    struct tam_teep_msg r;
    tam_teep_msg_init(&r, ok ? TAM_TEEP_SUCCESS : TAM_TEEP_ERROR);
    if (s->msg.has_token) {
        r.has_token = true;
        r.token = s->msg.token;
    }
    if (!ok) {
        const char *why = first_failure(s);
        size_t n = strlen(why);
        r.has_err_msg = true;
        r.err_msg = tam_bytes_of(why, n > TAM_TEEP_MSG_MAX ? TAM_TEEP_MSG_MAX : n);
        r.has_err_code = true;
        r.err_code = TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED;
        o->fail = TAM_AGENT_MANIFEST;
        o->why = why;
    }
    int alg = ag_reply_alg(s->dev, s->tam_alg);
    int err = job_reports(s, &r);
    err = err == TAM_OK ? ag_sign_reply(s->dev, alg, &r, reply) : err;
    if (err == TAM_OK) {
        o->sent = r.type;
        o->err_code = ok ? 0 : r.err_code;
        o->alg = alg;
    }
    return err;
}

int ag_apply_update(struct tam_agent_step *s, struct tam_buf *reply, struct tam_agent_outcome *o)
{
    const struct tam_teep_msg *m = &s->msg;
    o->has_tam_err = m->has_err_code;
    o->tam_err_code = m->has_err_code ? m->err_code : 0;
    o->n_manifests = m->has_manifest_list ? m->n_manifest_list : 0;
    unlink_unneeded(s, o);
    int err = TAM_OK;
    bool fetch_failed = false;
    for (size_t i = 0; i < s->njobs && err == TAM_OK; i++) {
        struct ag_job *j = &s->jobs[i];
        if (!j->failed) {
            err = apply_job(s, j, o);
        }
        fetch_failed = fetch_failed || j->fetch_failed;
        o->n_failed += j->failed ? 1u : 0u;
    }
    if (err != TAM_OK) {
        return err;
    }
    o->n_failed += o->n_manifests - (unsigned)s->njobs; /* beyond TAM_AGENT_MAX_MANIFESTS */
    err = answer_update(s, reply, o);
    if (err == TAM_OK && fetch_failed) {
        o->fail = TAM_AGENT_FETCH;
    }
    return err;
}
