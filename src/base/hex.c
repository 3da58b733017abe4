#include "tam/hex.h"

#include "tam/err.h"

static const char digits[] = "0123456789abcdef";

void tam_hex_encode(const uint8_t *src, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[src[i] >> 4];
        out[2 * i + 1] = digits[src[i] & 15];
    }
    out[2 * len] = '\0';
}

int tam_hex_append(struct tam_buf *b, const uint8_t *src, size_t len)
{
    if (len > (b->max - b->len) / 2) {
        return TAM_ETOOBIG;
    }
    int err = tam_buf_reserve(b, 2 * len);
    if (err != TAM_OK) {
        return err;
    }
    for (size_t i = 0; i < len; i++) {
        b->data[b->len++] = (uint8_t)digits[src[i] >> 4];
        b->data[b->len++] = (uint8_t)digits[src[i] & 15];
    }
    return TAM_OK;
}

int tam_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int tam_hex_decode(const char *src, size_t len, struct tam_buf *out)
{
    int hi = -1;
    for (size_t i = 0; i < len; i++) {
        if (is_space(src[i])) {
            continue;
        }
        int v = tam_hex_digit((unsigned char)src[i]);
        if (v < 0) {
            return TAM_EINVAL;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        uint8_t byte = (uint8_t)(hi << 4 | v);
        int err = tam_buf_append(out, &byte, 1);
        if (err != TAM_OK) {
            return err;
        }
        hi = -1;
    }
    return hi < 0 ? TAM_OK : TAM_EINVAL;
}
