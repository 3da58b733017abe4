/*
 * COSE_Sign1 / COSE_Sign (RFC 9052 sections 4.2-4.4). The structure is decoded
 * with the bounded CBOR reader; every span in struct tam_cose_msg points into
 * the caller's buffer, so the temporary CBOR documents are released before return.
 */
#include <string.h>

#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/err.h"

#define HDR_ALG          1
#define HDR_CRIT         2
#define HDR_CONTENT_TYPE 3
#define HDR_KID          4

/* COSE messages we accept are small; SUIT auth blocks and TEEP Updates stay well below. */
static const struct tam_cbor_limits cose_limits = {
    .max_size = 8u << 20,
    .max_depth = 16,
    .max_items = 4096,
};

static bool label_is_valid(const struct tam_cbor_item *k)
{
    return k->type == TAM_CBOR_UINT || k->type == TAM_CBOR_NINT || k->type == TAM_CBOR_TSTR;
}

/* crit: a non-empty array of labels, each understood by us and present in the protected map. */
static int check_crit(const struct tam_cbor_item *crit, const struct tam_cbor_item *prot,
                      const char **why)
{
    if (crit->type != TAM_CBOR_ARRAY || crit->count == 0) {
        return tam_fail(why, "crit must be a non-empty array", TAM_ECOSE);
    }
    const struct tam_cbor_item *l = tam_cbor_first(crit);
    for (uint32_t i = 0; i < crit->count; i++, l = tam_cbor_next(l)) {
        int64_t label;
        if (!tam_cbor_get_int(l, &label) ||
            (label != HDR_ALG && label != HDR_CONTENT_TYPE && label != HDR_KID)) {
            return tam_fail(why, "crit lists a header label we do not understand", TAM_ECOSE_CRIT);
        }
        if (tam_cbor_map_get_int(prot, label) == NULL) {
            return tam_fail(why, "crit lists a label absent from the protected header", TAM_ECOSE);
        }
    }
    return TAM_OK;
}

static int check_buckets(const struct tam_cbor_item *prot, const struct tam_cbor_item *unprot,
                         const char **why)
{
    const struct tam_cbor_item *k = tam_cbor_first(unprot);
    for (uint32_t i = 0; i < unprot->count; i++) {
        if (!label_is_valid(k)) {
            return tam_fail(why, "header label is not an int or text", TAM_ECOSE);
        }
        int64_t label = 0;
        bool is_int = tam_cbor_get_int(k, &label);
        if (is_int && prot != NULL && tam_cbor_map_get_int(prot, label) != NULL) {
            return tam_fail(why, "header label in both protected and unprotected", TAM_ECOSE);
        }
        if (is_int && label == HDR_CRIT) {
            return tam_fail(why, "crit must be protected", TAM_ECOSE);
        }
        k = tam_cbor_next(tam_cbor_next(k));
    }
    return TAM_OK;
}

static int read_protected(const struct tam_cbor_item *prot, struct tam_cose_signer *s,
                          struct tam_bytes *ctype, const char **why)
{
    const struct tam_cbor_item *k = tam_cbor_first(prot);
    for (uint32_t i = 0; i < prot->count; i++, k = tam_cbor_next(tam_cbor_next(k))) {
        if (!label_is_valid(k)) {
            return tam_fail(why, "header label is not an int or text", TAM_ECOSE);
        }
    }
    const struct tam_cbor_item *alg = tam_cbor_map_get_int(prot, HDR_ALG);
    int64_t a = 0;
    if (alg != NULL && (!tam_cbor_get_int(alg, &a) || a < INT32_MIN || a > INT32_MAX)) {
        return tam_fail(why, "alg is not an integer", TAM_ECOSE_ALG);
    }
    s->alg = (int)a;
    const struct tam_cbor_item *crit = tam_cbor_map_get_int(prot, HDR_CRIT);
    int err = crit != NULL ? check_crit(crit, prot, why) : TAM_OK;
    const struct tam_cbor_item *ct = tam_cbor_map_get_int(prot, HDR_CONTENT_TYPE);
    if (ct != NULL && ctype != NULL) {
        *ctype = tam_bytes_of(ct->raw, ct->raw_len);
    }
    return err;
}

/*
 * Parses one header pair: the protected bstr (decoded on its own, verified later over
 * its exact bytes) and the unprotected map. Fills alg, kid and protected_hdr of s.
 */
static int parse_headers(const struct tam_cbor_item *prot_bstr, const struct tam_cbor_item *unprot,
                         struct tam_cose_signer *s, struct tam_bytes *ctype, const char **why)
{
    struct tam_bytes pb;
    if (!tam_cbor_get_bytes(prot_bstr, &pb)) {
        return tam_fail(why, "protected header is not a bstr", TAM_ECOSE);
    }
    if (unprot->type != TAM_CBOR_MAP) {
        return tam_fail(why, "unprotected header is not a map", TAM_ECOSE);
    }
    s->protected_hdr = pb;
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    const struct tam_cbor_item *prot = NULL;
    int err = TAM_OK;
    if (pb.len > 0) {
        err = tam_cbor_decode(pb.ptr, pb.len, &cose_limits, &doc, why);
        prot = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
        if (err == TAM_OK && prot->type != TAM_CBOR_MAP) {
            err = tam_fail(why, "protected header is not a map", TAM_ECOSE);
        }
        err = err == TAM_OK ? read_protected(prot, s, ctype, why) : err;
    }
    err = err == TAM_OK ? check_buckets(prot, unprot, why) : err;
    const struct tam_cbor_item *kid = prot != NULL ? tam_cbor_map_get_int(prot, HDR_KID) : NULL;
    kid = kid != NULL ? kid : tam_cbor_map_get_int(unprot, HDR_KID);
    if (err == TAM_OK && kid != NULL && !tam_cbor_get_bytes(kid, &s->kid)) {
        err = tam_fail(why, "kid is not a bstr", TAM_ECOSE);
    }
    if (err == TAM_OK && tam_cbor_map_get_int(unprot, HDR_ALG) != NULL) {
        err = tam_fail(why, "alg must be in the protected header", TAM_ECOSE);
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

static int parse_payload(const struct tam_cbor_item *p, struct tam_cose_msg *msg, const char **why)
{
    if (tam_cbor_is_null(p)) {
        msg->detached = true;
        return TAM_OK;
    }
    if (!tam_cbor_get_bytes(p, &msg->payload)) {
        return tam_fail(why, "payload is neither bstr nor nil", TAM_ECOSE);
    }
    return TAM_OK;
}

static int parse_signers(const struct tam_cbor_item *sigs, struct tam_cose_msg *msg,
                         const char **why)
{
    if (sigs->type != TAM_CBOR_ARRAY || sigs->count == 0) {
        return tam_fail(why, "COSE_Sign signatures must be a non-empty array", TAM_ECOSE);
    }
    if (sigs->count > TAM_COSE_MAX_SIGNERS) {
        return tam_fail(why, "too many COSE_Sign signatures", TAM_ECOSE);
    }
    const struct tam_cbor_item *s = tam_cbor_first(sigs);
    for (uint32_t i = 0; i < sigs->count; i++, s = tam_cbor_next(s)) {
        struct tam_cose_signer *signer = &msg->signers[i];
        if (s->type != TAM_CBOR_ARRAY || s->count != 3) {
            return tam_fail(why, "COSE_Signature must be an array of 3", TAM_ECOSE);
        }
        const struct tam_cbor_item *prot = tam_cbor_first(s);
        const struct tam_cbor_item *unprot = tam_cbor_next(prot);
        int err = parse_headers(prot, unprot, signer, NULL, why);
        if (err != TAM_OK) {
            return err;
        }
        if (!tam_cbor_get_bytes(tam_cbor_next(unprot), &signer->signature)) {
            return tam_fail(why, "signature is not a bstr", TAM_ECOSE);
        }
    }
    msg->nsigners = sigs->count;
    return TAM_OK;
}

static int parse_body(const struct tam_cbor_item *root, struct tam_cose_msg *msg, const char **why)
{
    if (root->type != TAM_CBOR_ARRAY || root->count != 4) {
        return tam_fail(why, "COSE message must be an array of 4", TAM_ECOSE);
    }
    const struct tam_cbor_item *prot = tam_cbor_first(root);
    const struct tam_cbor_item *unprot = tam_cbor_next(prot);
    const struct tam_cbor_item *payload = tam_cbor_next(unprot);
    const struct tam_cbor_item *last = tam_cbor_next(payload);
    if (msg->kind == 0) {
        msg->kind = last->type == TAM_CBOR_ARRAY ? TAM_COSE_SIGN : TAM_COSE_SIGN1;
    }
    struct tam_cose_signer body = {0};
    int err = parse_headers(prot, unprot, &body, &msg->content_type, why);
    err = err == TAM_OK ? parse_payload(payload, msg, why) : err;
    if (err != TAM_OK) {
        return err;
    }
    if (msg->kind == TAM_COSE_SIGN) {
        msg->body_protected = body.protected_hdr;
        return parse_signers(last, msg, why);
    }
    if (!tam_cbor_get_bytes(last, &body.signature)) {
        return tam_fail(why, "COSE_Sign1 signature is not a bstr", TAM_ECOSE);
    }
    msg->signers[0] = body;
    msg->nsigners = 1;
    return TAM_OK;
}

int tam_cose_parse(const uint8_t *buf, size_t len, struct tam_cose_msg *msg, const char **why)
{
    memset(msg, 0, sizeof(*msg));
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(buf, len, &cose_limits, &doc, why);
    const struct tam_cbor_item *root = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
    if (root != NULL && root->type == TAM_CBOR_TAG) {
        msg->tagged = true;
        if (root->val == TAM_COSE_TAG_SIGN1) {
            msg->kind = TAM_COSE_SIGN1;
        } else if (root->val == TAM_COSE_TAG_SIGN) {
            msg->kind = TAM_COSE_SIGN;
        } else {
            err = tam_fail(why, "tag is neither COSE_Sign1 (18) nor COSE_Sign (98)", TAM_ECOSE);
        }
        root = tam_cbor_first(root);
    }
    if (err == TAM_OK) {
        err = parse_body(root, msg, why);
    }
    tam_cbor_doc_finish(&doc);
    if (err != TAM_OK && err != TAM_ENOMEM) {
        err = err == TAM_ECBOR || err == TAM_ECBOR_LIMIT || err == TAM_ETOOBIG ? TAM_ECOSE : err;
    }
    return err;
}

int tam_cose_tbs(struct tam_buf *out, const struct tam_cose_msg *msg, unsigned idx,
                 const struct tam_bytes *detached, const struct tam_bytes *aad)
{
    if (idx >= msg->nsigners) {
        return TAM_EINVAL;
    }
    struct tam_bytes payload = msg->payload;
    if (msg->detached) {
        if (detached == NULL) {
            return TAM_EINVAL; /* the caller must supply a detached payload */
        }
        payload = *detached;
    }
    const struct tam_cose_signer *s = &msg->signers[idx];
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    if (msg->kind == TAM_COSE_SIGN1) {
        tam_cbor_open_array(&w, 4);
        tam_cbor_put_str(&w, "Signature1");
    } else {
        tam_cbor_open_array(&w, 5);
        tam_cbor_put_str(&w, "Signature");
        tam_cbor_put_bstr(&w, msg->body_protected.ptr, msg->body_protected.len);
    }
    tam_cbor_put_bstr(&w, s->protected_hdr.ptr, s->protected_hdr.len);
    tam_cbor_put_bstr(&w, aad != NULL ? aad->ptr : NULL, aad != NULL ? aad->len : 0);
    tam_cbor_put_bstr(&w, payload.ptr, payload.len);
    return tam_cbor_writer_finish(&w);
}

int tam_cose_verify(const struct tam_cose_msg *msg, unsigned idx, const struct tam_key *key,
                    const struct tam_bytes *detached, const struct tam_bytes *aad)
{
    if (idx >= msg->nsigners) {
        return TAM_EINVAL;
    }
    const struct tam_cose_signer *s = &msg->signers[idx];
    if (!tam_key_alg_ok(key, s->alg)) {
        return TAM_ECOSE_ALG;
    }
    struct tam_buf tbs;
    tam_buf_init(&tbs, (16u << 20));
    int err = tam_cose_tbs(&tbs, msg, idx, detached, aad);
    if (err == TAM_OK) {
        err = tam_verify(key, s->alg, tbs.data, tbs.len, s->signature.ptr, s->signature.len);
    }
    tam_buf_finish(&tbs);
    return err;
}

static bool kid_matches(const struct tam_cose_signer *s, const struct tam_key *key)
{
    return s->kid.len == 0 ||
           (s->kid.len == TAM_KID_LEN && memcmp(s->kid.ptr, tam_key_kid(key), TAM_KID_LEN) == 0);
}

int tam_cose_verify_any(const struct tam_cose_msg *msg, const struct tam_key *key,
                        const struct tam_bytes *detached)
{
    int err = TAM_ECOSE_ALG;
    for (unsigned i = 0; i < msg->nsigners; i++) {
        if (!tam_key_alg_ok(key, msg->signers[i].alg) || !kid_matches(&msg->signers[i], key)) {
            continue;
        }
        err = tam_cose_verify(msg, i, key, detached, NULL);
        if (err == TAM_OK) {
            return TAM_OK;
        }
    }
    return err;
}

/* ---- creation ---- */

/* The protected header {1: alg}, encoded; at most 3 bytes for our algorithms. */
static size_t encode_alg_header(int alg, uint8_t out[16])
{
    struct tam_buf b;
    tam_buf_init(&b, 16);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &b);
    tam_cbor_open_map(&w, 1);
    tam_cbor_put_uint(&w, HDR_ALG);
    tam_cbor_put_int(&w, alg);
    size_t n = tam_cbor_writer_finish(&w) == TAM_OK ? b.len : 0;
    memcpy(out, b.data, n);
    tam_buf_finish(&b);
    return n;
}

static int sign_tbs(const struct tam_key *key, int alg, struct tam_cose_msg *m, unsigned idx,
                    const struct tam_bytes *payload, uint8_t sig[TAM_SIG_MAX], size_t *sig_len)
{
    struct tam_buf tbs;
    tam_buf_init(&tbs, (16u << 20));
    int err = tam_cose_tbs(&tbs, m, idx, payload, NULL);
    if (err == TAM_OK) {
        err = tam_sign(key, alg, tbs.data, tbs.len, sig, sig_len);
    }
    tam_buf_finish(&tbs);
    return err;
}

static void put_unprotected(struct tam_cbor_writer *w, const struct tam_key *key, bool kid)
{
    tam_cbor_open_map(w, kid ? 1 : 0);
    if (kid) {
        tam_cbor_put_uint(w, HDR_KID);
        tam_cbor_put_bstr(w, tam_key_kid(key), TAM_KID_LEN);
    }
}

static void put_payload(struct tam_cbor_writer *w, const struct tam_bytes *payload,
                        const struct tam_cose_sign_opts *opts)
{
    if (opts->detached) {
        tam_cbor_put_null(w);
    } else {
        tam_cbor_put_bstr(w, payload->ptr, payload->len);
    }
}

int tam_cose_sign1(struct tam_buf *out, const struct tam_key *key, int alg,
                   const struct tam_bytes *payload, const struct tam_cose_sign_opts *opts)
{
    uint8_t prot[16];
    size_t plen = encode_alg_header(alg, prot);
    struct tam_cose_msg m = {.kind = TAM_COSE_SIGN1, .detached = true, .nsigners = 1};
    m.signers[0].protected_hdr = tam_bytes_of(prot, plen);
    uint8_t sig[TAM_SIG_MAX];
    size_t sig_len = 0;
    int err = sign_tbs(key, alg, &m, 0, payload, sig, &sig_len);
    if (err != TAM_OK) {
        return err;
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    if (opts->tagged) {
        tam_cbor_put_tag(&w, TAM_COSE_TAG_SIGN1);
    }
    tam_cbor_open_array(&w, 4);
    tam_cbor_put_bstr(&w, prot, plen);
    put_unprotected(&w, key, opts->include_kid);
    put_payload(&w, payload, opts);
    tam_cbor_put_bstr(&w, sig, sig_len);
    return tam_cbor_writer_finish(&w);
}

int tam_cose_sign(struct tam_buf *out, const struct tam_key *const *keys, const int *algs,
                  unsigned nkeys, const struct tam_bytes *payload,
                  const struct tam_cose_sign_opts *opts)
{
    if (nkeys == 0 || nkeys > TAM_COSE_MAX_SIGNERS) {
        return TAM_EINVAL;
    }
    uint8_t prot[TAM_COSE_MAX_SIGNERS][16];
    uint8_t sig[TAM_COSE_MAX_SIGNERS][TAM_SIG_MAX];
    size_t sig_len[TAM_COSE_MAX_SIGNERS];
    struct tam_cose_msg m = {.kind = TAM_COSE_SIGN, .detached = true, .nsigners = nkeys};
    for (unsigned i = 0; i < nkeys; i++) {
        size_t plen = encode_alg_header(algs[i], prot[i]);
        m.signers[i].protected_hdr = tam_bytes_of(prot[i], plen);
        int err = sign_tbs(keys[i], algs[i], &m, i, payload, sig[i], &sig_len[i]);
        if (err != TAM_OK) {
            return err;
        }
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    if (opts->tagged) {
        tam_cbor_put_tag(&w, TAM_COSE_TAG_SIGN);
    }
    tam_cbor_open_array(&w, 4);
    tam_cbor_put_bstr(&w, NULL, 0); /* empty body protected: h'' (RFC 9052 3) */
    tam_cbor_open_map(&w, 0);
    put_payload(&w, payload, opts);
    tam_cbor_open_array(&w, nkeys);
    for (unsigned i = 0; i < nkeys; i++) {
        tam_cbor_open_array(&w, 3);
        tam_cbor_put_bstr(&w, prot[i], m.signers[i].protected_hdr.len);
        put_unprotected(&w, keys[i], opts->include_kid);
        tam_cbor_put_bstr(&w, sig[i], sig_len[i]);
    }
    return tam_cbor_writer_finish(&w);
}
