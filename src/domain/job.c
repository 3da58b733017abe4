#include "tam/job.h"

#include <string.h>

#include "tam/cbor.h"
#include "tam/err.h"

enum {
    J_ID = 1,
    J_KIND = 2,
    J_TENANT = 3,
    J_REPLY = 4,
    J_RECEIVED = 5,
    J_VERIFIED = 6,
    J_DEVICE = 7,
    J_MESSAGE = 8,
    J_SESSION = 9,
};

enum {
    R_ID = 1,
    R_STATUS = 2,
    R_BODY = 3,
    R_OUTCOME = 4,
};

/* Jobs hold one TEEP message (bounded by the gateway's body limit) and a session record. */
static const struct tam_cbor_limits job_limits = {
    .max_size = 8u << 20,
    .max_depth = 4,
    .max_items = 64,
};

static int fail(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
    return TAM_EINVAL;
}

int tam_job_encode(const struct tam_job *job, struct tam_buf *out)
{
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_map(&w, 8 + job->has_device);
    tam_cbor_put_uint(&w, J_ID);
    tam_cbor_put_bstr(&w, job->id, TAM_JOB_ID_LEN);
    tam_cbor_put_uint(&w, J_KIND);
    tam_cbor_put_uint(&w, job->kind);
    tam_cbor_put_uint(&w, J_TENANT);
    tam_cbor_put_str(&w, job->tenant);
    tam_cbor_put_uint(&w, J_REPLY);
    tam_cbor_put_str(&w, job->reply_to);
    tam_cbor_put_uint(&w, J_RECEIVED);
    tam_cbor_put_uint(&w, job->received_ms);
    tam_cbor_put_uint(&w, J_VERIFIED);
    tam_cbor_put_bool(&w, job->verified);
    if (job->has_device) {
        tam_cbor_put_uint(&w, J_DEVICE);
        tam_cbor_put_bstr(&w, job->device_kid, TAM_KID_LEN);
    }
    tam_cbor_put_uint(&w, J_MESSAGE);
    tam_cbor_put_bstr(&w, job->message.ptr, job->message.len);
    tam_cbor_put_uint(&w, J_SESSION);
    tam_cbor_put_bstr(&w, job->session.ptr, job->session.len);
    return tam_cbor_writer_finish(&w);
}

static bool get_text(const struct tam_cbor_item *m, int64_t key, char *dst, size_t cap)
{
    struct tam_bytes t;
    if (!tam_cbor_get_text(tam_cbor_map_get_int(m, key), &t) || t.len >= cap ||
        memchr(t.ptr, '\0', t.len) != NULL) {
        return false;
    }
    memcpy(dst, t.ptr, t.len);
    dst[t.len] = '\0';
    return true;
}

static bool get_id(const struct tam_cbor_item *m, int64_t key, uint8_t *dst, size_t len)
{
    struct tam_bytes b;
    if (!tam_cbor_get_bytes(tam_cbor_map_get_int(m, key), &b) || b.len != len) {
        return false;
    }
    memcpy(dst, b.ptr, len);
    return true;
}

static int decode_job_map(const struct tam_cbor_item *m, struct tam_job *job, const char **why)
{
    uint64_t kind = 0;
    if (m->type != TAM_CBOR_MAP || !get_id(m, J_ID, job->id, TAM_JOB_ID_LEN) ||
        !tam_cbor_get_uint(tam_cbor_map_get_int(m, J_KIND), &kind) ||
        (kind != TAM_JOB_QUERY_RESPONSE && kind != TAM_JOB_REPORT) ||
        !get_text(m, J_TENANT, job->tenant, sizeof(job->tenant)) ||
        !get_text(m, J_REPLY, job->reply_to, sizeof(job->reply_to)) ||
        !tam_cbor_get_uint(tam_cbor_map_get_int(m, J_RECEIVED), &job->received_ms) ||
        !tam_cbor_get_bool(tam_cbor_map_get_int(m, J_VERIFIED), &job->verified) ||
        !tam_cbor_get_bytes(tam_cbor_map_get_int(m, J_MESSAGE), &job->message) ||
        !tam_cbor_get_bytes(tam_cbor_map_get_int(m, J_SESSION), &job->session)) {
        return fail(why, "job: missing or malformed field");
    }
    job->kind = (enum tam_job_kind)kind;
    if (tam_cbor_map_get_int(m, J_DEVICE) != NULL) {
        if (!get_id(m, J_DEVICE, job->device_kid, TAM_KID_LEN)) {
            return fail(why, "job: malformed device kid");
        }
        job->has_device = true;
    }
    return TAM_OK;
}

int tam_job_decode(const uint8_t *buf, size_t len, struct tam_job *job, const char **why)
{
    memset(job, 0, sizeof(*job));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &job_limits, &doc, why);
    if (err == TAM_OK) {
        err = decode_job_map(tam_cbor_root(&doc), job, why);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

int tam_job_result_encode(const struct tam_job_result *r, struct tam_buf *out)
{
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_map(&w, 4);
    tam_cbor_put_uint(&w, R_ID);
    tam_cbor_put_bstr(&w, r->id, TAM_JOB_ID_LEN);
    tam_cbor_put_uint(&w, R_STATUS);
    tam_cbor_put_uint(&w, r->status);
    tam_cbor_put_uint(&w, R_BODY);
    tam_cbor_put_bstr(&w, r->body.ptr, r->body.len);
    tam_cbor_put_uint(&w, R_OUTCOME);
    tam_cbor_put_tstr(&w, (const char *)r->outcome.ptr, r->outcome.len);
    return tam_cbor_writer_finish(&w);
}

int tam_job_result_decode(const uint8_t *buf, size_t len, struct tam_job_result *r,
                          const char **why)
{
    memset(r, 0, sizeof(*r));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &job_limits, &doc, why);
    const struct tam_cbor_item *m = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
    uint64_t status = 0;
    if (err == TAM_OK &&
        (m->type != TAM_CBOR_MAP || !get_id(m, R_ID, r->id, TAM_JOB_ID_LEN) ||
         !tam_cbor_get_uint(tam_cbor_map_get_int(m, R_STATUS), &status) || status < 100 ||
         status > 599 || !tam_cbor_get_bytes(tam_cbor_map_get_int(m, R_BODY), &r->body) ||
         !tam_cbor_get_text(tam_cbor_map_get_int(m, R_OUTCOME), &r->outcome))) {
        err = fail(why, "job result: missing or malformed field");
    }
    r->status = (uint16_t)status;
    tam_cbor_doc_finish(&doc);
    return err;
}
