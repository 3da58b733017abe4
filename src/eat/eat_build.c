/*
 * Building EATs (the simulated device fleet, tests). The claims map is written with the
 * deterministic CBOR writer, so the field table below must stay in increasing label order
 * (all labels are unsigned, so numeric order is encoded order); the writer refuses otherwise.
 */
#include "tam/cbor.h"
#include "tam/cose.h"
#include "tam/eat.h"
#include "tam/err.h"

typedef void put_fn(struct tam_cbor_writer *w, const struct tam_eat_claims *c);

static void put_iss(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_tstr(w, (const char *)c->iss.ptr, c->iss.len);
}

static void put_exp(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_int(w, c->exp);
}

static void put_nbf(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_int(w, c->nbf);
}

static void put_iat(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_int(w, c->iat);
}

static void put_cti(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_bstr(w, c->cti.ptr, c->cti.len);
}

/* {3: kid} (RFC 8747 section 3.4), or {1: COSE_Key} copied as given. */
static void put_cnf(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_open_map(w, 1);
    if (c->cnf_form == TAM_EAT_CNF_COSE_KEY) {
        tam_cbor_put_uint(w, 1);
        tam_cbor_put_raw(w, c->cnf_key.ptr, c->cnf_key.len);
    } else {
        tam_cbor_put_uint(w, 3);
        tam_cbor_put_bstr(w, c->cnf_kid, c->cnf_kid_len);
    }
}

static void put_nonce(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_bstr(w, c->nonce.ptr, c->nonce.len);
}

static void put_ueid(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_bstr(w, c->ueid.ptr, c->ueid.len);
}

static void put_oemid(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    if (c->oemid.is_pen) {
        tam_cbor_put_int(w, c->oemid.pen);
    } else {
        tam_cbor_put_bstr(w, c->oemid.id.ptr, c->oemid.id.len);
    }
}

static void put_hwmodel(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_bstr(w, c->hwmodel.ptr, c->hwmodel.len);
}

static void put_hwversion(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_open_array(w, c->hwversion_has_scheme ? 2 : 1);
    tam_cbor_put_tstr(w, (const char *)c->hwversion.ptr, c->hwversion.len);
    if (c->hwversion_has_scheme) {
        tam_cbor_put_int(w, c->hwversion_scheme);
    }
}

static void put_dbgstat(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_uint(w, c->dbgstat);
}

static void put_profile(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    if (c->profile_is_oid) {
        tam_cbor_put_bstr(w, c->profile.ptr, c->profile.len);
    } else {
        tam_cbor_put_tstr(w, (const char *)c->profile.ptr, c->profile.len);
    }
}

static void put_swname(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    tam_cbor_put_tstr(w, (const char *)c->swname.ptr, c->swname.len);
}

static void put_entries(struct tam_cbor_writer *w, const struct tam_eat_entry *e, size_t n)
{
    tam_cbor_open_array(w, n);
    for (size_t i = 0; i < n; i++) {
        tam_cbor_open_array(w, 2);
        tam_cbor_put_uint(w, e[i].content_format);
        if (e[i].body_is_cbor) {
            tam_cbor_put_raw(w, e[i].body.ptr, e[i].body.len);
        } else {
            tam_cbor_put_bstr(w, e[i].body.ptr, e[i].body.len);
        }
    }
}

static void put_manifests(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    put_entries(w, c->manifests, c->n_manifests);
}

static void put_measurements(struct tam_cbor_writer *w, const struct tam_eat_claims *c)
{
    put_entries(w, c->measurements, c->n_measurements);
}

/* Increasing label order: the deterministic writer checks it. */
static const struct {
    uint32_t bit;
    uint64_t label;
    put_fn *put;
} fields[] = {
    {TAM_EAT_HAS_ISS, TAM_EAT_L_ISS, put_iss},
    {TAM_EAT_HAS_EXP, TAM_EAT_L_EXP, put_exp},
    {TAM_EAT_HAS_NBF, TAM_EAT_L_NBF, put_nbf},
    {TAM_EAT_HAS_IAT, TAM_EAT_L_IAT, put_iat},
    {TAM_EAT_HAS_CTI, TAM_EAT_L_CTI, put_cti},
    {TAM_EAT_HAS_CNF, TAM_EAT_L_CNF, put_cnf},
    {TAM_EAT_HAS_NONCE, TAM_EAT_L_NONCE, put_nonce},
    {TAM_EAT_HAS_UEID, TAM_EAT_L_UEID, put_ueid},
    {TAM_EAT_HAS_OEMID, TAM_EAT_L_OEMID, put_oemid},
    {TAM_EAT_HAS_HWMODEL, TAM_EAT_L_HWMODEL, put_hwmodel},
    {TAM_EAT_HAS_HWVERSION, TAM_EAT_L_HWVERSION, put_hwversion},
    {TAM_EAT_HAS_DBGSTAT, TAM_EAT_L_DBGSTAT, put_dbgstat},
    {TAM_EAT_HAS_PROFILE, TAM_EAT_L_PROFILE, put_profile},
    {TAM_EAT_HAS_SWNAME, TAM_EAT_L_SWNAME, put_swname},
    {TAM_EAT_HAS_MANIFESTS, TAM_EAT_L_MANIFESTS, put_manifests},
    {TAM_EAT_HAS_MEASUREMENTS, TAM_EAT_L_MEASUREMENTS, put_measurements},
};

static int write_claims(const struct tam_eat_claims *c, struct tam_buf *out)
{
    uint64_t pairs = 0;
    for (size_t i = 0; i < TAM_ARRAY_LEN(fields); i++) {
        pairs += (c->present & fields[i].bit) != 0;
    }
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    tam_cbor_open_map(&w, pairs);
    for (size_t i = 0; i < TAM_ARRAY_LEN(fields); i++) {
        if ((c->present & fields[i].bit) != 0) {
            tam_cbor_put_uint(&w, fields[i].label);
            fields[i].put(&w, c);
        }
    }
    return tam_cbor_writer_finish(&w);
}

int tam_eat_encode_claims(const struct tam_eat_claims *c, struct tam_buf *out)
{
    if (c == NULL || out == NULL || c->n_manifests > TAM_EAT_MAX_ENTRIES ||
        c->n_measurements > TAM_EAT_MAX_ENTRIES || c->cnf_kid_len > TAM_EAT_KID_MAX) {
        return TAM_EINVAL;
    }
    size_t start = out->len;
    int err = write_claims(c, out);
    if (err == TAM_OK) {
        /* Never emit what our own decoder (and so a peer running it) would refuse. */
        struct tam_eat_claims check;
        err = tam_eat_decode(out->data + start, out->len - start, &check, NULL);
        err = err == TAM_ENOMEM ? err : (err != TAM_OK ? TAM_EEAT : TAM_OK);
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    return err;
}

int tam_eat_build(const struct tam_eat_claims *c, const struct tam_key *attester, int alg,
                  struct tam_buf *out)
{
    if (c == NULL || attester == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    if (alg == 0) {
        alg = tam_key_default_alg(attester);
    }
    struct tam_buf claims;
    tam_buf_init(&claims, TAM_EAT_MAX_SIZE);
    size_t start = out->len;
    int err = tam_eat_encode_claims(c, &claims);
    if (err == TAM_OK) {
        const struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
        struct tam_bytes payload = tam_bytes_of(claims.data, claims.len);
        err = tam_cose_sign1(out, attester, alg, &payload, &opts);
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    tam_buf_finish(&claims);
    return err;
}
