/* tamctl suit inspect: index a SUIT envelope and check its digest and signature. */
#include "tamctl.h"

#include <string.h>

#include "tam/err.h"
#include "tam/suit.h"

static json_t *component_id(const struct tam_suit_component_id *id)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < id->n; i++) {
        json_array_append_new(a, tamctl_hex(id->seg[i].ptr, id->seg[i].len));
    }
    return a;
}

static json_t *params_json(const struct tam_suit_params *p)
{
    json_t *o = json_object();
    if (p->has_vendor_id) {
        json_object_set_new(o, "vendor-id", tamctl_hex(p->vendor_id.ptr, p->vendor_id.len));
    }
    if (p->has_class_id) {
        json_object_set_new(o, "class-id", tamctl_hex(p->class_id.ptr, p->class_id.len));
    }
    if (p->has_image_digest) {
        json_object_set_new(
            o, "image-digest",
            json_pack("{s:I,s:o}", "alg", (json_int_t)p->image_digest.alg, "bytes",
                      tamctl_hex(p->image_digest.bytes.ptr, p->image_digest.bytes.len)));
    }
    if (p->has_image_size) {
        json_object_set_new(o, "image-size", json_integer((json_int_t)p->image_size));
    }
    if (p->has_uri) {
        json_object_set_new(o, "uri", json_stringn((const char *)p->uri.ptr, p->uri.len));
    }
    return o;
}

static json_t *members_json(const struct tam_suit_envelope *e)
{
    const struct {
        const char *name;
        const struct tam_suit_member *m;
    } all[] = {{"validate", &e->validate},
               {"load", &e->load},
               {"invoke", &e->invoke},
               {"dependency-resolution", &e->dependency_resolution},
               {"payload-fetch", &e->payload_fetch},
               {"candidate-verification", &e->candidate_verification},
               {"install", &e->install},
               {"text", &e->text},
               {"uninstall", &e->uninstall}};
    json_t *a = json_array();
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (all[i].m->present) {
            json_array_append_new(a,
                                  json_pack("{s:s,s:b,s:b}", "name", all[i].name, "severed",
                                            all[i].m->severed, "available", all[i].m->available));
        }
    }
    return a;
}

static json_t *envelope_json(const struct tam_suit_envelope *e)
{
    uint8_t digest[32];
    tam_suit_manifest_digest(e, digest);
    json_t *components = json_array();
    for (unsigned i = 0; i < e->ncomponents; i++) {
        json_array_append_new(components, component_id(&e->components[i]));
    }
    json_t *payloads = json_array();
    for (unsigned i = 0; i < e->nintegrated; i++) {
        const struct tam_suit_integrated *p = &e->integrated[i];
        json_array_append_new(payloads, json_pack("{s:s%,s:I,s:b}", "key", (const char *)p->key.ptr,
                                                  p->key.len, "bytes", (json_int_t)p->data.len,
                                                  "dependency", p->is_dependency));
    }
    json_t *o = json_pack("{s:b,s:I,s:o,s:I,s:I,s:o,s:o,s:o,s:o}", "tagged", e->tagged, "bytes",
                          (json_int_t)e->raw.len, "manifest-digest", tamctl_hex(digest, 32),
                          "digest-alg", (json_int_t)e->digest.alg, "sequence-number",
                          (json_int_t)e->sequence, "components", components, "payloads", payloads,
                          "members", members_json(e), "first-component", params_json(&e->first));
    if (e->has_manifest_component_id) {
        json_object_set_new(o, "manifest-component-id", component_id(&e->manifest_component_id));
    }
    if (e->has_reference_uri) {
        json_object_set_new(o, "reference-uri",
                            json_stringn((const char *)e->reference_uri.ptr, e->reference_uri.len));
    }
    json_object_set_new(o, "auth-blocks", json_integer(e->nauth));
    json_object_set_new(o, "dependencies", json_integer(e->ndeps));
    return o;
}

static const char *signature_status(const struct tam_suit_envelope *e, const struct tam_key *key,
                                    int *rc)
{
    int err = tam_suit_check_digest(e);
    if (err != TAM_OK) {
        *rc = 1;
        return "digest-mismatch";
    }
    if (key == NULL) {
        return "digest-ok-signature-not-checked";
    }
    const struct tam_key *anchors[1] = {key};
    err = tam_suit_verify(e, anchors, 1);
    *rc = err == TAM_OK ? 0 : 1;
    return err == TAM_OK ? "valid" : "invalid";
}

static int inspect(const char *keyfile, const char *file)
{
    struct tam_key *key = NULL;
    if (keyfile != NULL && tamctl_load_key(keyfile, &key) != 0) {
        return 1;
    }
    struct tam_buf in;
    tam_buf_init(&in, 16u << 20);
    int rc = tamctl_read_input(file, &in);
    struct tam_suit_envelope env;
    const char *why = NULL;
    int err = rc == 0 ? tam_suit_parse(in.data, in.len, &env, &why) : TAM_OK;
    if (rc == 0 && err != TAM_OK) {
        rc = tamctl_fail("not a SUIT envelope: %s", why != NULL ? why : tam_strerror(err));
    } else if (rc == 0) {
        json_t *o = envelope_json(&env);
        const char *status = signature_status(&env, key, &rc);
        json_object_set_new(o, "signature", json_string(status));
        tamctl_print_json(o);
        if (rc != 0) {
            tamctl_fail("envelope does not verify: %s", status);
        }
    }
    tam_buf_finish(&in);
    tam_key_destroy(key);
    return rc;
}

int tamctl_cmd_suit(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "inspect") == 0) {
        return inspect(NULL, argv[2]);
    }
    if (argc == 5 && strcmp(argv[1], "inspect") == 0 && strcmp(argv[2], "--key") == 0) {
        return inspect(argv[3], argv[4]);
    }
    return tamctl_fail("usage: tamctl suit inspect [--key PEM] FILE") + 1;
}
