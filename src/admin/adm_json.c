/* Strict validation of request members and the JSON forms the API answers with. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/plan.h"
#include "tam/store.h"

bool adm_jv_fail(struct adm_jv *v, const char *member, const char *fmt, ...)
{
    if (!v->bad) {
        int n = snprintf(v->why, sizeof(v->why), "%s: ", member);
        if (n > 0 && (size_t)n < sizeof(v->why)) {
            va_list ap;
            va_start(ap, fmt);
            (void)vsnprintf(v->why + n, sizeof(v->why) - (size_t)n, fmt, ap);
            va_end(ap);
        }
        v->bad = true;
    }
    return false;
}

bool adm_jv_members(struct adm_jv *v, json_t *o, const char *const *known)
{
    const char *key;
    json_t *val;
    json_object_foreach(o, key, val)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++) {
            ok = strcmp(key, known[i]) == 0;
        }
        if (!ok) {
            char shown[40];
            (void)snprintf(shown, sizeof(shown), "%s", key);
            return adm_jv_fail(v, shown, "unknown member");
        }
    }
    return true;
}

bool adm_jv_string(struct adm_jv *v, json_t *o, const char *name, bool required, size_t max,
                   const char **out, size_t *len)
{
    json_t *e = json_object_get(o, name);
    if (e == NULL) {
        return required ? adm_jv_fail(v, name, "required") : true;
    }
    size_t n = json_string_length(e);
    if (!json_is_string(e) || n == 0 || n > max) {
        return adm_jv_fail(v, name, "a string of 1..%zu bytes expected", max);
    }
    if (memchr(json_string_value(e), '\0', n) != NULL) {
        return adm_jv_fail(v, name, "NUL characters are not accepted");
    }
    *out = json_string_value(e);
    if (len != NULL) {
        *len = n;
    }
    return true;
}

bool adm_jv_bool(struct adm_jv *v, json_t *o, const char *name, bool *out)
{
    json_t *e = json_object_get(o, name);
    if (e == NULL) {
        return true;
    }
    if (!json_is_boolean(e)) {
        return adm_jv_fail(v, name, "true or false expected");
    }
    *out = json_is_true(e);
    return true;
}

bool adm_jv_uint(struct adm_jv *v, json_t *o, const char *name, bool required, uint64_t min,
                 uint64_t max, uint64_t *out)
{
    json_t *e = json_object_get(o, name);
    if (e == NULL) {
        return required ? adm_jv_fail(v, name, "required") : true;
    }
    json_int_t i = json_integer_value(e);
    if (!json_is_integer(e) || i < 0 || (uint64_t)i < min || (uint64_t)i > max) {
        return adm_jv_fail(v, name, "an integer in %llu..%llu expected", (unsigned long long)min,
                           (unsigned long long)max);
    }
    *out = (uint64_t)i;
    return true;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return n % 2 == 0;
}

bool adm_jv_hex(struct adm_jv *v, json_t *e, const char *name, size_t min, size_t max,
                struct tam_arena *arena, struct tam_bytes *out)
{
    size_t n = json_string_length(e);
    if (!json_is_string(e) || !is_hex(json_string_value(e), n) || n / 2 < min || n / 2 > max) {
        return min == max
                   ? adm_jv_fail(v, name, "a hex string of %zu bytes expected", min)
                   : adm_jv_fail(v, name, "a hex string of %zu..%zu bytes expected", min, max);
    }
    struct tam_buf b;
    tam_buf_init(&b, max);
    uint8_t *copy = NULL;
    if (tam_hex_decode(json_string_value(e), n, &b) == TAM_OK) {
        copy = tam_arena_alloc(arena, b.len + 1);
        if (copy != NULL && b.len > 0) {
            memcpy(copy, b.data, b.len);
        }
    }
    *out = tam_bytes_of(copy, b.len);
    tam_buf_finish(&b);
    return copy != NULL ? true : adm_jv_fail(v, name, "out of memory");
}

#define SEGMENT_MAX 256

bool adm_jv_component_id(struct adm_jv *v, json_t *e, const char *name, struct tam_arena *arena,
                         struct tam_teep_component_id *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = json_array_size(e);
    if (!json_is_array(e) || n == 0 || n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return adm_jv_fail(v, name, "an array of 1..%d hex strings expected",
                           TAM_TEEP_MAX_ID_SEGMENTS);
    }
    for (size_t i = 0; i < n; i++) {
        char sub[64];
        (void)snprintf(sub, sizeof(sub), "%s[%zu]", name, i);
        if (!adm_jv_hex(v, json_array_get(e, i), sub, 0, SEGMENT_MAX, arena, &out->seg[i])) {
            return false;
        }
    }
    out->n = (uint32_t)n;
    return true;
}

bool adm_jv_labels(struct adm_jv *v, json_t *e, const char *name, struct tam_buf *joined)
{
    size_t n = json_array_size(e);
    if (!json_is_array(e) || n > TAM_PLAN_MAX_LABELS) {
        return adm_jv_fail(v, name, "an array of at most %d labels expected", TAM_PLAN_MAX_LABELS);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(e, i);
        const char *s = json_string_value(l);
        size_t len = json_string_length(l);
        bool ok = s != NULL && len > 0 && len <= TAM_STORE_MAX_LABEL;
        for (size_t k = 0; ok && k < len; k++) {
            ok = (unsigned char)s[k] > 0x20 && (unsigned char)s[k] < 0x7f && s[k] != ',';
        }
        if (!ok) {
            char sub[64];
            (void)snprintf(sub, sizeof(sub), "%s[%zu]", name, i);
            return adm_jv_fail(v, sub, "1..%d printable ASCII characters without ',' or space",
                               TAM_STORE_MAX_LABEL);
        }
        for (size_t k = 0; k < i; k++) {
            if (json_equal(l, json_array_get(e, k))) {
                char sub[64];
                (void)snprintf(sub, sizeof(sub), "%s[%zu]", name, i);
                return adm_jv_fail(v, sub, "duplicate label");
            }
        }
        int err = i > 0 ? tam_buf_append(joined, ",", 1) : TAM_OK;
        if (err == TAM_OK) {
            err = tam_buf_append(joined, s, len);
        }
        if (err != TAM_OK) {
            return adm_jv_fail(v, name, "too long");
        }
    }
    return true;
}

bool adm_set(json_t *o, const char *name, json_t *value)
{
    return value != NULL && json_object_set_new(o, name, value) == 0;
}

json_t *adm_json_hex(const uint8_t *p, size_t len)
{
    struct tam_buf b;
    tam_buf_init(&b, 2 * len + 1);
    json_t *j = NULL;
    if (tam_hex_append(&b, p, len) == TAM_OK) {
        j = json_stringn(len > 0 ? (const char *)b.data : "", b.len);
    }
    tam_buf_finish(&b);
    return j;
}

json_t *adm_json_component_id(const struct tam_teep_component_id *id)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a != NULL && i < id->n; i++) {
        if (json_array_append_new(a, adm_json_hex(id->seg[i].ptr, id->seg[i].len)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

json_t *adm_json_key(const struct tam_key *k, const char *alg)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    json_t *o = NULL;
    if (tam_key_public_pem(k, &pem) == TAM_OK) {
        o = json_object();
    }
    bool ok = o != NULL;
    ok = ok &&
         adm_set(o, "key_type", json_string(tam_key_type(k) == TAM_KEY_P256 ? "p256" : "ed25519"));
    ok = ok && adm_set(o, "kid", adm_json_hex(tam_key_kid(k), TAM_KID_LEN));
    ok = ok && adm_set(o, "public_pem", json_stringn((const char *)pem.data, pem.len));
    ok = ok && (alg == NULL || adm_set(o, "alg", json_string(alg)));
    tam_buf_finish(&pem);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}
