/* Hex encoding for logs, JSON and the command-line tools. */
#ifndef TAM_HEX_H
#define TAM_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"
#include "tam/common.h"

/* The value of one hex digit (either case), or -1 if c is not one. */
int tam_hex_digit(int c);
/* Lower-case hex of src into out (2*len+1 bytes, NUL-terminated). */
void tam_hex_encode(const uint8_t *src, size_t len, char *out);
TAM_MUST_CHECK int tam_hex_append(struct tam_buf *b, const uint8_t *src, size_t len);
/* Decodes hex, ignoring ASCII whitespace; TAM_EINVAL on an odd count or a bad digit. */
TAM_MUST_CHECK int tam_hex_decode(const char *src, size_t len, struct tam_buf *out);

#endif
