/*
 * Redis commands encoded as RESP (the Redis serialization protocol), into a buffer that is
 * later written as is: "*<argc>\r\n", then "$<len>\r\n<bytes>\r\n" per argument.
 *
 * hiredis formats each command into a fresh allocation with an sds string per argument;
 * building a whole pipeline in one tam_buf instead costs a fraction of that (see
 * tests/bench/RESULTS.md, the worker's instruction profile).
 *
 * On any error the buffer is left as it was: a command is appended whole or not at all.
 */
#ifndef TAM_RESP_H
#define TAM_RESP_H

#include <stdarg.h>
#include <stddef.h>

#include "tam/buf.h"
#include "tam/common.h"

/* One command from its arguments (binary-safe). */
TAM_MUST_CHECK int tam_resp_argv(struct tam_buf *out, size_t argc, const struct tam_bytes *argv);
/* The same from hiredis-style arrays: argv[i] of lens[i] bytes (lens NULL: strlen). */
TAM_MUST_CHECK int tam_resp_cargv(struct tam_buf *out, size_t argc, const char *const *argv,
                                  const size_t *lens);

/*
 * One command from a format, as hiredis's redisCommand reads it: the format is split at
 * spaces into arguments, and a substituted value is part of its argument even when it holds
 * spaces. Conversions: %s (NUL-terminated string), %b (pointer, then size_t length), %d (int),
 * %u (unsigned), %lld (long long), %llu (unsigned long long), %% (a '%'). Any other
 * conversion fails with TAM_EINVAL.
 */
TAM_MUST_CHECK int tam_resp_cmdf(struct tam_buf *out, const char *fmt, ...);
TAM_MUST_CHECK int tam_resp_vcmdf(struct tam_buf *out, const char *fmt, va_list ap);

#endif
