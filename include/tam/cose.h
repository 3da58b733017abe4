/*
 * COSE_Sign1 and COSE_Sign (RFC 9052): parse, verify, create; tagged or untagged;
 * attached or detached payloads. Parsing is zero-copy: every span points into the
 * input buffer, which must outlive the struct. Protected headers are verified over
 * the exact received bytes, never re-encoded.
 */
#ifndef TAM_COSE_H
#define TAM_COSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"
#include "tam/crypto.h"

#define TAM_COSE_TAG_SIGN1   18
#define TAM_COSE_TAG_SIGN    98
#define TAM_COSE_MAX_SIGNERS 4

enum tam_cose_kind {
    TAM_COSE_SIGN1 = 1,
    TAM_COSE_SIGN = 2,
};

/* One signer: for COSE_Sign1 its headers are the body headers. */
struct tam_cose_signer {
    int alg;                        /* from the protected header; 0 if absent */
    struct tam_bytes kid;           /* protected or unprotected kid (4); empty if absent */
    struct tam_bytes protected_hdr; /* content of the protected bstr (may be empty) */
    struct tam_bytes signature;
};

struct tam_cose_msg {
    enum tam_cose_kind kind;
    bool tagged;
    bool detached;                   /* payload was nil */
    struct tam_bytes body_protected; /* COSE_Sign: body protected bstr content */
    struct tam_bytes payload;        /* attached payload; empty when detached */
    struct tam_bytes content_type;   /* raw encoded content type (3) if present */
    unsigned nsigners;
    struct tam_cose_signer signers[TAM_COSE_MAX_SIGNERS];
};

/*
 * Parses a COSE_Sign1 or COSE_Sign (tag 18/98 or untagged). Validates structure,
 * header maps (no label in both buckets, `crit` only with labels we understand,
 * alg present and an integer). On failure *why names the rule.
 */
TAM_MUST_CHECK int tam_cose_parse(const uint8_t *buf, size_t len, struct tam_cose_msg *msg,
                                  const char **why);

/*
 * Verifies signer `idx` with key. detached supplies the payload when the message
 * carries nil. aad is external_aad (NULL = empty). TAM_OK, TAM_ESIG, TAM_ECOSE_ALG.
 */
TAM_MUST_CHECK int tam_cose_verify(const struct tam_cose_msg *msg, unsigned idx,
                                   const struct tam_key *key, const struct tam_bytes *detached,
                                   const struct tam_bytes *aad);
/* Verifies with the first signer whose alg fits key (and whose kid, if any, matches). */
TAM_MUST_CHECK int tam_cose_verify_any(const struct tam_cose_msg *msg, const struct tam_key *key,
                                       const struct tam_bytes *detached);

struct tam_cose_sign_opts {
    bool tagged;      /* emit tag 18 / 98 */
    bool detached;    /* payload nil; signed as given */
    bool include_kid; /* unprotected kid = the key's RFC 9679 thumbprint */
};

/* COSE_Sign1 with protected {1: alg}, appended to out. */
TAM_MUST_CHECK int tam_cose_sign1(struct tam_buf *out, const struct tam_key *key, int alg,
                                  const struct tam_bytes *payload,
                                  const struct tam_cose_sign_opts *opts);
/* COSE_Sign with one signature per key (algs[i] for keys[i]), body protected empty. */
TAM_MUST_CHECK int tam_cose_sign(struct tam_buf *out, const struct tam_key *const *keys,
                                 const int *algs, unsigned nkeys, const struct tam_bytes *payload,
                                 const struct tam_cose_sign_opts *opts);

/* Builds the Sig_structure bytes (exposed for tests and for callers that sign elsewhere). */
TAM_MUST_CHECK int tam_cose_tbs(struct tam_buf *out, const struct tam_cose_msg *msg, unsigned idx,
                                const struct tam_bytes *detached, const struct tam_bytes *aad);

#endif
