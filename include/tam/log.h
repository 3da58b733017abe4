/*
 * One line per event, logfmt (key=value) or JSON, on stderr.
 * Messages are written as logfmt pairs: tam_log(TAM_LOG_INFO, "event=conn_open conn=%llu", id).
 * The level is checked before the arguments are evaluated (redis serverLog).
 * Never log keys, tokens or raw evidence; escape peer bytes with tam_log_quote().
 */
#ifndef TAM_LOG_H
#define TAM_LOG_H

#include <stddef.h>

#include "tam/common.h"

enum tam_log_level {
    TAM_LOG_ERROR = 0,
    TAM_LOG_WARN = 1,
    TAM_LOG_INFO = 2,
    TAM_LOG_DEBUG = 3,
};

enum tam_log_format {
    TAM_LOG_LOGFMT = 0,
    TAM_LOG_JSON = 1,
};

/* Process-wide logging settings: logging is glue, not domain logic. */
extern int tam_log_threshold;

void tam_log_configure(int level, enum tam_log_format format, const char *program);
int tam_log_level_parse(const char *name); /* "error".."debug", -1 if unknown */
const char *tam_log_level_name(int level); /* the inverse; "info" if out of range */
void tam_log_write(int level, const char *file, int line, const char *fmt, ...) TAM_PRINTF(4, 5);

/*
 * Lines logged between tam_log_hold() and tam_log_release() are written together at release
 * (or as 32 KiB gather), with one write(2): tam-worker logs a line per job, and a system call
 * per line was most of its system calls. Not nested; for short stretches of one thread.
 */
void tam_log_hold(void);
void tam_log_release(void);

/* Copies s (len bytes, possibly binary) into out as a printable, quoted logfmt value. */
const char *tam_log_quote(const void *s, size_t len, char *out, size_t outsz);

#define tam_log(level, ...)                                          \
    do {                                                             \
        if ((level) <= tam_log_threshold) {                          \
            tam_log_write((level), __FILE__, __LINE__, __VA_ARGS__); \
        }                                                            \
    } while (0)

#endif
