/* JSON views of decoded TEEP messages, for people debugging TEEP traffic. */
#include "tamctl.h"

#include "tam/err.h"
#include "tam/hex.h"

json_t *tamctl_hex(const uint8_t *p, size_t len)
{
    struct tam_buf b;
    tam_buf_init(&b, 2 * len + 1);
    json_t *v = NULL;
    if (tam_hex_append(&b, p, len) == TAM_OK) {
        v = json_stringn(b.len ? (const char *)b.data : "", b.len);
    }
    tam_buf_finish(&b);
    return v;
}

static json_t *text(struct tam_bytes t)
{
    /* Decoded text is validated UTF-8; jansson checks again and returns NULL otherwise. */
    return json_stringn((const char *)t.ptr, t.len);
}

static json_t *component_id(const struct tam_teep_component_id *id)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < id->n; i++) {
        json_array_append_new(a, tamctl_hex(id->seg[i].ptr, id->seg[i].len));
    }
    return a;
}

static json_t *suite(const struct tam_teep_suite *s)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < s->n_ops; i++) {
        json_array_append_new(
            a, json_pack("[II]", (json_int_t)s->ops[i].cose_type, (json_int_t)s->ops[i].alg));
    }
    return a;
}

static json_t *suites(const struct tam_teep_suites *s)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < s->n; i++) {
        json_array_append_new(a, suite(&s->v[i]));
    }
    return a;
}

static json_t *profiles(const struct tam_teep_profiles *p)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < p->n; i++) {
        json_t *one = json_array();
        for (uint32_t j = 0; j < p->v[i].n; j++) {
            json_array_append_new(one, json_integer((json_int_t)p->v[i].v[j]));
        }
        json_array_append_new(a, one);
    }
    return a;
}

static json_t *u32_list(const uint32_t *v, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_array_append_new(a, json_integer(v[i]));
    }
    return a;
}

static json_t *bytes_list(const struct tam_bytes *v, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_array_append_new(a, tamctl_hex(v[i].ptr, v[i].len));
    }
    return a;
}

static json_t *tc_list(const struct tam_teep_msg *m)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < m->n_tc_list; i++) {
        const struct tam_teep_tc *tc = &m->tc_list[i];
        json_t *o = json_pack("{s:o}", "component-id", component_id(&tc->id));
        if (tc->has_image_digest) {
            json_object_set_new(o, "image-digest",
                                tamctl_hex(tc->image_digest.ptr, tc->image_digest.len));
        }
        if (tc->has_seq) {
            json_object_set_new(o, "tc-manifest-sequence-number",
                                json_integer((json_int_t)tc->seq));
        }
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *requested(const struct tam_teep_msg *m)
{
    json_t *a = json_array();
    for (uint32_t i = 0; i < m->n_requested_tc_list; i++) {
        const struct tam_teep_req_tc *r = &m->requested_tc_list[i];
        json_t *o = json_pack("{s:o}", "component-id", component_id(&r->id));
        if (r->has_seq) {
            json_object_set_new(o, "tc-manifest-sequence-number", json_integer((json_int_t)r->seq));
        }
        if (r->has_have_binary) {
            json_object_set_new(o, "have-binary", json_boolean(r->have_binary));
        }
        json_array_append_new(a, o);
    }
    return a;
}

static void lists(json_t *o, const struct tam_teep_msg *m)
{
    if (m->has_versions) {
        json_object_set_new(o, "versions", u32_list(m->versions, m->n_versions));
    }
    if (m->has_freshness) {
        json_t *a = json_array();
        for (uint32_t i = 0; i < m->n_freshness; i++) {
            json_array_append_new(a, json_integer((json_int_t)m->freshness[i]));
        }
        json_object_set_new(o, "supported-freshness-mechanisms", a);
    }
    if (m->has_suit_reports) {
        json_object_set_new(o, "suit-reports", bytes_list(m->suit_reports, m->n_suit_reports));
    }
    if (m->has_tc_list) {
        json_object_set_new(o, "tc-list", tc_list(m));
    }
    if (m->has_requested_tc_list) {
        json_object_set_new(o, "requested-tc-list", requested(m));
    }
    if (m->has_unneeded) {
        json_t *a = json_array();
        for (uint32_t i = 0; i < m->n_unneeded; i++) {
            json_array_append_new(a, component_id(&m->unneeded[i]));
        }
        json_object_set_new(o, "unneeded-manifest-list", a);
    }
    if (m->has_ext_list) {
        json_object_set_new(o, "ext-list", u32_list(m->ext_list, m->n_ext_list));
    }
    if (m->has_manifest_list) {
        json_t *a = json_array();
        for (uint32_t i = 0; i < m->n_manifest_list; i++) {
            json_array_append_new(a,
                                  json_pack("{s:I}", "bytes", (json_int_t)m->manifest_list[i].len));
        }
        json_object_set_new(o, "manifest-list", a);
    }
}

static void scalars(json_t *o, const struct tam_teep_msg *m)
{
    if (m->has_token) {
        json_object_set_new(o, "token", tamctl_hex(m->token.ptr, m->token.len));
    }
    if (m->has_challenge) {
        json_object_set_new(o, "challenge", tamctl_hex(m->challenge.ptr, m->challenge.len));
    }
    if (m->has_selected_version) {
        json_object_set_new(o, "selected-version", json_integer(m->selected_version));
    }
    if (m->has_attestation_payload_format) {
        json_object_set_new(o, "attestation-payload-format", text(m->attestation_payload_format));
    }
    if (m->has_attestation_payload) {
        json_object_set_new(o, "attestation-payload",
                            tamctl_hex(m->attestation_payload.ptr, m->attestation_payload.len));
    }
    if (m->has_msg) {
        json_object_set_new(o, "msg", text(m->msg));
    }
    if (m->has_err_msg) {
        json_object_set_new(o, "err-msg", text(m->err_msg));
    }
    if (m->has_err_lang) {
        json_object_set_new(o, "err-lang", text(m->err_lang));
    }
    if (m->has_err_code) {
        json_object_set_new(o, "err-code",
                            json_pack("{s:I,s:s}", "code", (json_int_t)m->err_code, "name",
                                      tam_teep_err_name(m->err_code)));
    }
}

json_t *tamctl_teep_json(const struct tam_teep_msg *m, enum tam_teep_numbering num)
{
    json_t *o = json_pack("{s:s,s:s}", "type", tam_teep_type_name(m->type), "numbering",
                          tam_teep_numbering_name(num));
    scalars(o, m);
    lists(o, m);
    if (m->has_supported_suites) {
        json_object_set_new(o, "supported-teep-cipher-suites", suites(&m->supported_suites));
    }
    if (m->has_selected_suite) {
        json_object_set_new(o, "selected-teep-cipher-suite", suite(&m->selected_suite));
    }
    if (m->has_supported_profiles) {
        json_object_set_new(o, "supported-suit-cose-profiles", profiles(&m->supported_profiles));
    }
    if (m->has_data_item_requested) {
        json_object_set_new(o, "data-item-requested",
                            json_integer((json_int_t)m->data_item_requested));
    }
    return o;
}
