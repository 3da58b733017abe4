/*
 * The job interface between gateways and workers (Redis Streams). A gateway puts
 * a job on the stream and waits for its result on its own reply stream; a worker
 * takes the job, does the slow or key-holding work and answers. Jobs carry the
 * TEEP token, so running one twice is harmless (the worker de-duplicates).
 * Pure codecs: deterministic CBOR maps.
 */
#ifndef TAM_JOB_H
#define TAM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"
#include "tam/tenant.h"

#define TAM_JOB_ID_LEN    16
#define TAM_JOB_REPLY_MAX 128

enum tam_job_kind {
    TAM_JOB_QUERY_RESPONSE = 1, /* attestation + update planning + signed Update */
    TAM_JOB_REPORT = 2,         /* Success / Error: SUIT reports, device state */
};

struct tam_job {
    uint8_t id[TAM_JOB_ID_LEN];
    enum tam_job_kind kind;
    char tenant[TAM_TENANT_ID_MAX + 1];
    char reply_to[TAM_JOB_REPLY_MAX + 1]; /* the gateway's result stream; empty: no reply */
    uint64_t received_ms;
    bool verified;   /* the gateway verified the message signature with device_kid's key */
    bool has_device; /* device_kid is set: verified, or the message's (unverified) kid header */
    uint8_t device_kid[TAM_KID_LEN];
    struct tam_bytes message; /* the COSE-wrapped TEEP message as received */
    struct tam_bytes session; /* the session record as it was stored (tam_sess_encode) */
};

struct tam_job_result {
    uint8_t id[TAM_JOB_ID_LEN];
    uint16_t status;          /* HTTP status for the waiting broker: 200, 204, 5xx */
    struct tam_bytes body;    /* the signed TEEP message for 200 */
    struct tam_bytes outcome; /* short machine-readable outcome ("update", "nothing", ...) */
};

TAM_MUST_CHECK int tam_job_encode(const struct tam_job *job, struct tam_buf *out);
/* Spans in *job point into buf. */
TAM_MUST_CHECK int tam_job_decode(const uint8_t *buf, size_t len, struct tam_job *job,
                                  const char **why);
TAM_MUST_CHECK int tam_job_result_encode(const struct tam_job_result *r, struct tam_buf *out);
TAM_MUST_CHECK int tam_job_result_decode(const uint8_t *buf, size_t len, struct tam_job_result *r,
                                         const char **why);

#endif
