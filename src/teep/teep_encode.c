/*
 * TEEP encoder: struct tam_teep_msg -> deterministic CBOR (shortest heads,
 * option keys ascending). The message is validated first; nothing invalid is
 * emitted.
 */
#include "tam/cbor.h"
#include "tam/err.h"
#include "tam/teep.h"
#include "teep_internal.h"

static void put_component_id(struct tam_cbor_writer *w, const struct tam_teep_component_id *id)
{
    tam_cbor_open_array(w, id->n);
    for (uint32_t i = 0; i < id->n; i++) {
        tam_cbor_put_bstr(w, id->seg[i].ptr, id->seg[i].len);
    }
}

static void put_suite(struct tam_cbor_writer *w, const struct tam_teep_suite *s)
{
    tam_cbor_open_array(w, s->n_ops);
    for (uint32_t i = 0; i < s->n_ops; i++) {
        tam_cbor_open_array(w, 2);
        tam_cbor_put_int(w, s->ops[i].cose_type);
        tam_cbor_put_int(w, s->ops[i].alg);
    }
}

static void put_suites(struct tam_cbor_writer *w, const struct tam_teep_suites *s)
{
    tam_cbor_open_array(w, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        put_suite(w, &s->v[i]);
    }
}

static void put_profiles(struct tam_cbor_writer *w, const struct tam_teep_profiles *p)
{
    tam_cbor_open_array(w, p->n);
    for (uint32_t i = 0; i < p->n; i++) {
        tam_cbor_open_array(w, p->v[i].n);
        for (uint32_t k = 0; k < p->v[i].n; k++) {
            tam_cbor_put_int(w, p->v[i].v[k]);
        }
    }
}

static void put_u32_list(struct tam_cbor_writer *w, const uint32_t *v, uint32_t n)
{
    tam_cbor_open_array(w, n);
    for (uint32_t i = 0; i < n; i++) {
        tam_cbor_put_uint(w, v[i]);
    }
}

static void put_bytes_list(struct tam_cbor_writer *w, const struct tam_bytes *v, uint32_t n)
{
    tam_cbor_open_array(w, n);
    for (uint32_t i = 0; i < n; i++) {
        tam_cbor_put_bstr(w, v[i].ptr, v[i].len);
    }
}

/* A caller-supplied raw tc-list entry must be exactly one well-formed CBOR map. */
static int check_raw_map(struct tam_bytes raw)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int rc = tam_cbor_decode(raw.ptr, raw.len, &tam_cbor_default_limits, &doc, NULL);
    if (rc == TAM_OK && tam_cbor_root(&doc)->type != TAM_CBOR_MAP) {
        rc = TAM_EINVAL;
    }
    tam_cbor_doc_finish(&doc);
    return rc == TAM_OK || rc == TAM_ENOMEM ? rc : TAM_EINVAL;
}

static int put_tc(struct tam_cbor_writer *w, const struct tam_teep_tc *tc,
                  enum tam_teep_numbering num)
{
    if (tc->raw.len > 0) {
        int rc = check_raw_map(tc->raw);
        if (rc == TAM_OK) {
            tam_cbor_put_raw(w, tc->raw.ptr, tc->raw.len);
        }
        return rc;
    }
    if (num == TAM_TEEP_DRAFT12) {
        tam_cbor_open_map(w, tc->has_seq ? 2 : 1);
        tam_cbor_put_uint(w, tam_teep__opt_label(TEEP_OPT_COMPONENT_ID, num));
        put_component_id(w, &tc->id);
        if (tc->has_seq) {
            tam_cbor_put_uint(w, tam_teep__opt_label(TEEP_OPT_TC_MANIFEST_SEQ, num));
            tam_cbor_put_uint(w, tc->seq);
        }
        return TAM_OK;
    }
    tam_cbor_open_map(w, tc->has_image_digest ? 2 : 1);
    tam_cbor_put_uint(w, 0); /* system-component-id */
    put_component_id(w, &tc->id);
    if (tc->has_image_digest) {
        tam_cbor_put_uint(w, 3); /* suit-parameter-image-digest */
        tam_cbor_put_bstr(w, tc->image_digest.ptr, tc->image_digest.len);
    }
    return TAM_OK;
}

static int put_tc_list(struct tam_cbor_writer *w, const struct tam_teep_msg *m,
                       enum tam_teep_numbering num)
{
    tam_cbor_open_array(w, m->n_tc_list);
    for (uint32_t i = 0; i < m->n_tc_list; i++) {
        int rc = put_tc(w, &m->tc_list[i], num);
        if (rc != TAM_OK) {
            return rc;
        }
    }
    return TAM_OK;
}

static void put_req_tc(struct tam_cbor_writer *w, const struct tam_teep_req_tc *r,
                       enum tam_teep_numbering num)
{
    /* component-id < tc-manifest-sequence-number < have-binary in both numberings. */
    tam_cbor_open_map(w, 1u + (r->has_seq ? 1u : 0u) + (r->has_have_binary ? 1u : 0u));
    tam_cbor_put_uint(w, tam_teep__opt_label(TEEP_OPT_COMPONENT_ID, num));
    put_component_id(w, &r->id);
    if (r->has_seq) {
        tam_cbor_put_uint(w, tam_teep__opt_label(TEEP_OPT_TC_MANIFEST_SEQ, num));
        tam_cbor_put_uint(w, r->seq);
    }
    if (r->has_have_binary) {
        tam_cbor_put_uint(w, tam_teep__opt_label(TEEP_OPT_HAVE_BINARY, num));
        tam_cbor_put_bool(w, r->have_binary);
    }
}

static void put_component_lists(struct tam_cbor_writer *w, const struct tam_teep_msg *m,
                                enum teep_opt opt, enum tam_teep_numbering num)
{
    if (opt == TEEP_OPT_REQUESTED_TC_LIST) {
        tam_cbor_open_array(w, m->n_requested_tc_list);
        for (uint32_t i = 0; i < m->n_requested_tc_list; i++) {
            put_req_tc(w, &m->requested_tc_list[i], num);
        }
        return;
    }
    tam_cbor_open_array(w, m->n_unneeded);
    for (uint32_t i = 0; i < m->n_unneeded; i++) {
        put_component_id(w, &m->unneeded[i]);
    }
}

static void put_span(struct tam_cbor_writer *w, const struct tam_teep_msg *m, enum teep_opt opt)
{
    switch (opt) {
    case TEEP_OPT_TOKEN:
        tam_cbor_put_bstr(w, m->token.ptr, m->token.len);
        break;
    case TEEP_OPT_CHALLENGE:
        tam_cbor_put_bstr(w, m->challenge.ptr, m->challenge.len);
        break;
    case TEEP_OPT_ATTESTATION_PAYLOAD:
        tam_cbor_put_bstr(w, m->attestation_payload.ptr, m->attestation_payload.len);
        break;
    case TEEP_OPT_ATTESTATION_PAYLOAD_FORMAT:
        tam_cbor_put_tstr(w, (const char *)m->attestation_payload_format.ptr,
                          m->attestation_payload_format.len);
        break;
    case TEEP_OPT_MSG:
        tam_cbor_put_tstr(w, (const char *)m->msg.ptr, m->msg.len);
        break;
    case TEEP_OPT_ERR_MSG:
        tam_cbor_put_tstr(w, (const char *)m->err_msg.ptr, m->err_msg.len);
        break;
    case TEEP_OPT_ERR_LANG:
        tam_cbor_put_tstr(w, (const char *)m->err_lang.ptr, m->err_lang.len);
        break;
    default:
        break;
    }
}

static int put_value(struct tam_cbor_writer *w, const struct tam_teep_msg *m, enum teep_opt opt,
                     enum tam_teep_numbering num)
{
    uint64_t wire = 0;
    switch (opt) {
    case TEEP_OPT_VERSIONS:
        put_u32_list(w, m->versions, m->n_versions);
        break;
    case TEEP_OPT_EXT_LIST:
        put_u32_list(w, m->ext_list, m->n_ext_list);
        break;
    case TEEP_OPT_FRESHNESS:
        tam_cbor_open_array(w, m->n_freshness);
        for (uint32_t i = 0; i < m->n_freshness; i++) {
            tam_cbor_put_uint(w, m->freshness[i]);
        }
        break;
    case TEEP_OPT_SUIT_REPORTS:
        put_bytes_list(w, m->suit_reports, m->n_suit_reports);
        break;
    case TEEP_OPT_MANIFEST_LIST:
        put_bytes_list(w, m->manifest_list, m->n_manifest_list);
        break;
    case TEEP_OPT_SUPPORTED_SUITES:
        put_suites(w, &m->supported_suites);
        break;
    case TEEP_OPT_SELECTED_SUITE:
        put_suite(w, &m->selected_suite);
        break;
    case TEEP_OPT_SUPPORTED_PROFILES:
        put_profiles(w, &m->supported_profiles);
        break;
    case TEEP_OPT_SELECTED_VERSION:
        tam_cbor_put_uint(w, m->selected_version);
        break;
    case TEEP_OPT_TC_LIST:
        return put_tc_list(w, m, num);
    case TEEP_OPT_REQUESTED_TC_LIST:
    case TEEP_OPT_UNNEEDED:
        put_component_lists(w, m, opt, num);
        break;
    case TEEP_OPT_ERR_CODE:
        (void)tam_teep_err_to_wire(num, m->err_code, &wire); /* validated */
        tam_cbor_put_uint(w, wire);
        break;
    default:
        put_span(w, m, opt);
        break;
    }
    return TAM_OK;
}

static int put_options(struct tam_cbor_writer *w, const struct tam_teep_msg *m,
                       enum tam_teep_numbering num)
{
    struct {
        uint64_t label;
        enum teep_opt opt;
    } keys[TEEP_OPT_COUNT_];
    uint32_t n = 0;
    uint32_t present = tam_teep__present(m);
    /* Insertion sort by wire label: deterministic encoding wants ascending keys. */
    for (int i = 0; i < TEEP_OPT_COUNT_; i++) {
        if ((present & TEEP_BIT(i)) == 0) {
            continue;
        }
        uint64_t label = tam_teep__opt_label((enum teep_opt)i, num);
        uint32_t j = n++;
        while (j > 0 && keys[j - 1].label > label) {
            keys[j] = keys[j - 1];
            j--;
        }
        keys[j].label = label;
        keys[j].opt = (enum teep_opt)i;
    }
    tam_cbor_open_map(w, n);
    for (uint32_t i = 0; i < n; i++) {
        tam_cbor_put_uint(w, keys[i].label);
        int rc = put_value(w, m, keys[i].opt, num);
        if (rc != TAM_OK) {
            return rc;
        }
    }
    return TAM_OK;
}

static uint64_t element_count(const struct tam_teep_msg *m)
{
    switch (m->type) {
    case TAM_TEEP_QUERY_REQUEST:
        return m->has_supported_profiles ? 5 : 4; /* 4: draft-12 only (validated) */
    case TAM_TEEP_ERROR:
        return 3;
    default:
        return 2;
    }
}

static int put_message(struct tam_cbor_writer *w, const struct tam_teep_msg *m,
                       enum tam_teep_numbering num)
{
    uint64_t wire_type = 0;
    (void)tam_teep_type_to_wire(num, m->type, &wire_type); /* validated */
    tam_cbor_open_array(w, element_count(m));
    tam_cbor_put_uint(w, wire_type);
    int rc = put_options(w, m, num);
    if (rc != TAM_OK) {
        return rc;
    }
    if (m->type == TAM_TEEP_QUERY_REQUEST) {
        put_suites(w, &m->supported_suites);
        if (m->has_supported_profiles) {
            put_profiles(w, &m->supported_profiles);
        }
        tam_cbor_put_uint(w, m->data_item_requested);
    } else if (m->type == TAM_TEEP_ERROR) {
        uint64_t wire = 0;
        (void)tam_teep_err_to_wire(num, m->err_code, &wire);
        tam_cbor_put_uint(w, wire);
    }
    return TAM_OK;
}

int tam_teep_encode(const struct tam_teep_msg *msg, enum tam_teep_numbering num,
                    struct tam_buf *out)
{
    if (tam_teep_validate(msg, num, NULL) != TAM_OK) {
        return TAM_EINVAL;
    }
    size_t saved = out->len;
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, out);
    int rc = put_message(&w, msg, num);
    int wrc = tam_cbor_writer_finish(&w);
    if (rc == TAM_OK) {
        rc = wrc;
    }
    if (rc != TAM_OK) {
        out->len = saved;
    }
    return rc;
}

void tam_teep_msg_init(struct tam_teep_msg *msg, enum tam_teep_type type)
{
    *msg = (struct tam_teep_msg){0};
    msg->type = type;
}
