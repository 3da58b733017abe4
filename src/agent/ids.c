/*
 * Component ids (SUIT_Component_Identifier = [* bstr]) in the three forms the
 * agent meets: segments, their CBOR encoding (the store key) and the text form
 * of the command line; plus keys derived from a seed.
 */
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "tam/alloc.h"
#include "tam/cbor.h"
#include "tam/err.h"
#include "tam/hex.h"

static const struct tam_cbor_limits id_limits = {
    .max_size = TAM_AGENT_ID_MAX, .max_depth = 2, .max_items = TAM_TEEP_MAX_ID_SEGMENTS + 1};

size_t ag_id_encode(const struct tam_bytes *seg, size_t n, uint8_t *out, size_t cap)
{
    struct tam_buf b;
    tam_buf_init(&b, cap);
    struct tam_cbor_writer w;
    tam_cbor_writer_init(&w, &b);
    tam_cbor_open_array(&w, n);
    for (size_t i = 0; i < n; i++) {
        tam_cbor_put_bstr(&w, seg[i].ptr, seg[i].len);
    }
    size_t len = 0;
    if (tam_cbor_writer_finish(&w) == TAM_OK && b.len <= cap) {
        memcpy(out, b.data, b.len);
        len = b.len;
    }
    tam_buf_finish(&b);
    return len;
}

int tam_agent_id_segments(struct tam_bytes enc, struct tam_bytes *seg, size_t max, size_t *n)
{
    struct tam_cbor_doc doc;
    tam_cbor_doc_init(&doc);
    int err = tam_cbor_decode(enc.ptr, enc.len, &id_limits, &doc, NULL);
    const struct tam_cbor_item *arr = err == TAM_OK ? tam_cbor_root(&doc) : NULL;
    if (arr == NULL || arr->type != TAM_CBOR_ARRAY || arr->count > max) {
        err = TAM_EINVAL;
    }
    for (uint32_t i = 0; err == TAM_OK && i < arr->count; i++) {
        if (!tam_cbor_get_bytes(tam_cbor_array_at(arr, i), &seg[i])) {
            err = TAM_EINVAL;
        }
    }
    if (err == TAM_OK) {
        *n = arr->count;
    } else {
        err = TAM_EINVAL;
    }
    tam_cbor_doc_finish(&doc);
    return err;
}

int ag_id_to_teep(const uint8_t *enc, size_t len, struct tam_teep_component_id *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = 0;
    int err = tam_agent_id_segments(tam_bytes_of(enc, len), out->seg, TAM_TEEP_MAX_ID_SEGMENTS, &n);
    out->n = (uint32_t)n;
    out->raw = tam_bytes_of(enc, len);
    return err;
}

size_t ag_id_from_teep(const struct tam_teep_component_id *id, uint8_t *out, size_t cap)
{
    if (id->n > TAM_TEEP_MAX_ID_SEGMENTS) {
        return 0;
    }
    return ag_id_encode(id->seg, id->n, out, cap);
}

/* ---- text form ---- */

static int parse_segment(const char *s, size_t len, struct tam_buf *bytes)
{
    if (len >= 2 && s[0] == 'h' && s[1] == ':') {
        return tam_hex_decode(s + 2, len - 2, bytes) == TAM_OK ? TAM_OK : TAM_EINVAL;
    }
    return tam_buf_append(bytes, s, len);
}

int tam_agent_id_parse(const char *text, struct tam_buf *out)
{
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    struct tam_buf parts[TAM_TEEP_MAX_ID_SEGMENTS];
    size_t n = 0;
    int err = TAM_OK;
    const char *p = text;
    if (text == NULL || *text == '\0') {
        return TAM_EINVAL;
    }
    while (err == TAM_OK) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (n == TAM_TEEP_MAX_ID_SEGMENTS) {
            err = TAM_EINVAL;
            break;
        }
        tam_buf_init(&parts[n], 256);
        err = parse_segment(p, len, &parts[n]);
        seg[n] = tam_bytes_of(parts[n].data, parts[n].len);
        n++;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
    }
    uint8_t enc[TAM_AGENT_ID_MAX];
    size_t len = err == TAM_OK ? ag_id_encode(seg, n, enc, sizeof(enc)) : 0;
    if (err == TAM_OK) {
        err = len > 0 ? tam_buf_append(out, enc, len) : TAM_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        tam_buf_finish(&parts[i]);
    }
    return err;
}

static bool printable_segment(struct tam_bytes s)
{
    if (s.len == 0 || (s.len >= 2 && s.ptr[0] == 'h' && s.ptr[1] == ':')) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < 0x21 || s.ptr[i] > 0x7e || s.ptr[i] == '/') {
            return false;
        }
    }
    return true;
}

int tam_agent_id_format(struct tam_bytes enc, struct tam_buf *out)
{
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    size_t n = 0;
    int err = tam_agent_id_segments(enc, seg, TAM_TEEP_MAX_ID_SEGMENTS, &n);
    for (size_t i = 0; err == TAM_OK && i < n; i++) {
        if (i > 0) {
            err = tam_buf_append(out, "/", 1);
        }
        if (err == TAM_OK && printable_segment(seg[i])) {
            err = tam_buf_append(out, seg[i].ptr, seg[i].len);
        } else if (err == TAM_OK) {
            err = tam_buf_append(out, "h:", 2);
            err = err == TAM_OK ? tam_hex_append(out, seg[i].ptr, seg[i].len) : err;
        }
    }
    return err == TAM_OK ? tam_buf_append(out, "", 1) : err;
}

/* ---- keys from a seed ---- */

static void base64_append(struct tam_buf *b, const uint8_t *p, size_t n, int *err)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n && *err == TAM_OK; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        v |= i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0;
        v |= i + 2 < n ? p[i + 2] : 0;
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
        if (i + 1 >= n) {
            q[2] = '=';
        }
        if (i + 2 >= n) {
            q[3] = '=';
        }
        *err = tam_buf_append(b, q, 4);
    }
}

/* A private key PEM around the 32 secret bytes: SEC1 for P-256, PKCS#8 for Ed25519. */
static int secret_to_key(enum tam_key_type type, const uint8_t d[32], struct tam_key **out)
{
    static const uint8_t sec1_head[] = {0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20};
    static const uint8_t sec1_tail[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    static const uint8_t ed_head[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                      0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
    uint8_t der[64];
    size_t n = 0;
    bool p256 = type == TAM_KEY_P256;
    const uint8_t *head = p256 ? sec1_head : ed_head;
    size_t hlen = p256 ? sizeof(sec1_head) : sizeof(ed_head);
    memcpy(der, head, hlen);
    memcpy(der + hlen, d, 32);
    n = hlen + 32;
    if (p256) {
        memcpy(der + n, sec1_tail, sizeof(sec1_tail));
        n += sizeof(sec1_tail);
    }
    const char *label = p256 ? "EC PRIVATE KEY" : "PRIVATE KEY";
    struct tam_buf pem;
    tam_buf_init(&pem, 1024);
    int err = tam_buf_printf(&pem, "-----BEGIN %s-----\n", label);
    base64_append(&pem, der, n, &err);
    err = err == TAM_OK ? tam_buf_printf(&pem, "\n-----END %s-----\n", label) : err;
    err = err == TAM_OK ? tam_key_from_pem((const char *)pem.data, pem.len, out) : err;
    tam_memzero(der, sizeof(der));
    if (pem.data != NULL) {
        tam_memzero(pem.data, pem.len);
    }
    tam_buf_finish(&pem);
    return err;
}

int tam_agent_key_from_seed(enum tam_key_type type, const uint8_t *seed, size_t seed_len,
                            uint64_t index, struct tam_key **out)
{
    if ((type != TAM_KEY_P256 && type != TAM_KEY_ED25519) || out == NULL ||
        (seed == NULL && seed_len > 0)) {
        return TAM_EINVAL;
    }
    struct tam_buf in;
    tam_buf_init(&in, 64 + seed_len);
    int err = tam_buf_printf(&in, "tam-agent key %d %llu ", (int)type, (unsigned long long)index);
    err = err == TAM_OK ? tam_buf_append(&in, seed, seed_len) : err;
    uint8_t d[TAM_SHA256_LEN];
    if (err == TAM_OK) {
        tam_sha256(in.data, in.len, d);
        err = TAM_EKEY;
    }
    /* A SHA-256 output is a valid P-256 scalar except with probability ~2^-32. */
    for (int round = 0; round < 4 && err == TAM_EKEY; round++) {
        err = secret_to_key(type, d, out);
        if (err == TAM_EKEY) {
            tam_sha256(d, sizeof(d), d);
        }
    }
    tam_memzero(d, sizeof(d));
    tam_buf_finish(&in);
    return err;
}
