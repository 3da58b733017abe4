/* Helpers shared by the unit tests: loading the shared vectors. */
#ifndef TAM_TESTUTIL_H
#define TAM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "tam/buf.h"

/* Path of a vector file (TAM_VECTORS or tests/vectors); static storage. */
const char *tu_vector_path(const char *name);
/* Reads a whole file; aborts the test on failure. Caller frees with tam_free. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Reads a .hex vector into bytes; aborts the test on failure. Caller frees. */
uint8_t *tu_load_hex(const char *name, size_t *len);
/* Reads a text vector (e.g. a PEM file) NUL-terminated. Caller frees. */
char *tu_load_text(const char *name, size_t *len);
/* Parses a hex literal (test data in source). Caller frees. */
uint8_t *tu_hex(const char *hex, size_t *len);
/* A loopback TCP port that was free a moment ago (bound to 0, read, closed). */
uint16_t tu_free_port(void);

#endif
