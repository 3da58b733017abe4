/*
 * TEEP sessions, the pure part: what the TAM remembers about a request it sent
 * (a QueryRequest or an Update) until the agent answers, how the first
 * QueryRequest is built and signed, and which answers a session accepts.
 * No I/O and no clock: time is passed in. The glue stores the encoded record in
 * Redis under the token (with an expiry), so any gateway process can take the
 * answer (TP 1.8, 1.10).
 */
#ifndef TAM_SESSION_H
#define TAM_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/crypto.h"
#include "tam/teep.h"
#include "tam/tenant.h"

#define TAM_TOKEN_LEN          16 /* 16 random bytes per message, never reused (TP 1.8) */
#define TAM_CHALLENGE_MAX      64
#define TAM_SESS_MAX_MANIFESTS 16

enum tam_sess_kind {
    TAM_SESS_QUERY = 1,  /* a QueryRequest is outstanding */
    TAM_SESS_UPDATE = 2, /* an Update is outstanding */
};

struct tam_sess {
    enum tam_sess_kind kind;
    char tenant[TAM_TENANT_ID_MAX + 1];
    enum tam_teep_numbering numbering;
    uint8_t token[TAM_TOKEN_LEN];
    uint64_t created_ms;
    uint64_t expires_ms;
    uint64_t data_items;    /* QUERY: data-item-requested */
    uint32_t challenge_len; /* QUERY: 0 when no attestation was requested */
    uint8_t challenge[TAM_CHALLENGE_MAX];
    bool has_device; /* UPDATE: the device it was sent to */
    uint8_t device_kid[TAM_KID_LEN];
    int alg;              /* UPDATE: the agent's algorithm (wire id) */
    uint32_t n_manifests; /* UPDATE: SUIT digests of the manifests sent */
    uint8_t manifest_digest[TAM_SESS_MAX_MANIFESTS][TAM_SHA256_LEN];
};

/* Deterministic CBOR map; what the store keeps under the token. */
TAM_MUST_CHECK int tam_sess_encode(const struct tam_sess *s, struct tam_buf *out);
TAM_MUST_CHECK int tam_sess_decode(const uint8_t *buf, size_t len, struct tam_sess *s,
                                   const char **why);

/*
 * A new QUERY session for a tenant: token and challenge come from the caller's
 * CSPRNG output (rand must hold TAM_TOKEN_LEN + TAM_CHALLENGE_MAX bytes).
 */
void tam_sess_new_query(struct tam_sess *s, const struct tam_tenant *t, const uint8_t *rand,
                        uint64_t now_ms);

/* The QueryRequest for a QUERY session (spans point into s, which must outlive qr). */
void tam_sess_query_request(const struct tam_sess *s, struct tam_teep_msg *qr);

/*
 * Encodes and signs the first QueryRequest: COSE_Sign with one signature per TAM
 * key (the agent's suite is still unknown), or COSE_Sign1 with the P-256 key when
 * the tenant is sign1_only (draft12 agents parse only Sign1). Appended to out.
 */
TAM_MUST_CHECK int tam_sess_sign_query_request(const struct tam_tenant *t,
                                               const struct tam_teep_msg *qr, struct tam_buf *out);

/* Signs any later TAM message (an Update) with COSE_Sign1 in the agent's algorithm. */
TAM_MUST_CHECK int tam_sess_sign1(const struct tam_tenant *t, int alg,
                                  const struct tam_teep_msg *msg, struct tam_buf *out);

/*
 * Whether msg is an acceptable answer to s at now_ms (after its signature was
 * verified). TAM_OK; TAM_EEXPIRED (drop); TAM_ETEEP_TYPE (not an answer to this
 * kind of request: drop); TAM_ETEEP when a QueryResponse lacks an item the
 * request asked for (the TAM then answers with an Update carrying err-code,
 * TP 1.10 step 3). *why explains. SUIT report nonces (== token) are checked by
 * the worker, which decodes the reports.
 */
TAM_MUST_CHECK int tam_sess_check_answer(const struct tam_sess *s, const struct tam_teep_msg *msg,
                                         uint64_t now_ms, const char **why);

#endif
