#include "tam/arena.h"

#include <stdint.h>
#include <string.h>

#include "tam/alloc.h"

struct tam_arena_chunk {
    struct tam_arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t off;
    _Alignas(16) unsigned char data[];
};

void tam_arena_init(struct tam_arena *a, size_t chunk_size, size_t max)
{
    a->head = NULL;
    a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
    a->used = 0;
    a->max = max;
}

static void free_chunks(struct tam_arena_chunk *c)
{
    while (c != NULL) {
        struct tam_arena_chunk *next = c->next;
        tam_free(c);
        c = next;
    }
}

void tam_arena_finish(struct tam_arena *a)
{
    if (a == NULL) {
        return;
    }
    free_chunks(a->head);
    a->head = NULL;
    a->used = 0;
}

void tam_arena_reset(struct tam_arena *a)
{
    if (a->head != NULL) {
        /* The oldest chunk is the last one; keep the newest, which is usually the largest. */
        free_chunks(a->head->next);
        a->head->next = NULL;
        a->head->off = 0;
    }
    a->used = 0;
}

void *tam_arena_alloc(struct tam_arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n || need > a->max - a->used || a->used > a->max) {
        return NULL;
    }
    struct tam_arena_chunk *c = a->head;
    if (c == NULL || c->size - c->off < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        c = tam_malloc(sizeof(*c) + size);
        if (c == NULL) {
            return NULL;
        }
        c->next = a->head;
        c->size = size;
        c->off = 0;
        a->head = c;
    }
    void *p = c->data + c->off;
    c->off += need;
    a->used += need;
    memset(p, 0, n);
    return p;
}

void *tam_arena_array(struct tam_arena *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    return tam_arena_alloc(a, count * size);
}
