/* Small shared definitions: byte spans, container_of, attributes. */
#ifndef TAM_COMMON_H
#define TAM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define TAM_MUST_CHECK                      __attribute__((warn_unused_result))
#define TAM_PRINTF(fmt, args)               __attribute__((format(printf, fmt, args)))
#define TAM_ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))
#define tam_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* A borrowed span of bytes; ptr may be NULL when len is 0. */
struct tam_bytes {
    const uint8_t *ptr;
    size_t len;
};

static inline struct tam_bytes tam_bytes_of(const void *p, size_t n)
{
    struct tam_bytes b = {(const uint8_t *)p, n};
    return b;
}

#endif
