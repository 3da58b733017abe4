/*
 * A bump allocator for request-scoped memory (nginx pool, h2o mem pool):
 * many small allocations, one reset. Every arena has a ceiling.
 */
#ifndef TAM_ARENA_H
#define TAM_ARENA_H

#include <stddef.h>

struct tam_arena_chunk;

struct tam_arena {
    struct tam_arena_chunk *head; /* owned list, newest first */
    size_t chunk_size;
    size_t used; /* bytes handed out since the last reset */
    size_t max;  /* ceiling on `used` */
};

void tam_arena_init(struct tam_arena *a, size_t chunk_size, size_t max);
void tam_arena_finish(struct tam_arena *a); /* frees everything; NULL-safe */
void tam_arena_reset(struct tam_arena *a);  /* keeps the first chunk for reuse */
/* Zeroed, 16-byte aligned memory, or NULL when out of memory or over the ceiling. */
void *tam_arena_alloc(struct tam_arena *a, size_t n);
/* count * size with overflow check. */
void *tam_arena_array(struct tam_arena *a, size_t count, size_t size);

#endif
