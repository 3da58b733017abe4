/*
 * A size-class cache in front of malloc for wolfCrypt's own allocations.
 *
 * Debian's wolfSSL is built with SP_INT_BITS 4096, so every ecc_point is about 3.2 KB, and a
 * P-256 verification with a key outside the fixed-point cache (every device key) allocates
 * and frees about 30 of them. glibc serves a request that size from its large bins (sorted,
 * unlinked and split on every call): `perf` put _int_malloc, _int_free and unlink_chunk at
 * about 9% of the gateway's CPU. Here freed blocks of up to CLASS_MAX bytes wait on a
 * per-thread free list of their 64-byte class and are handed out again in O(1); the lists
 * hold at most CACHE_BYTES per thread. bench_bound (verify with device keys) measures it.
 *
 * Installed once, first thing in main(), before wolfSSL allocates anything: a block must be
 * freed by the allocator that made it. ASan builds keep malloc, so ASan still sees wolfCrypt.
 */
#include "internal.h"

#include <wolfssl/wolfcrypt/memory.h>

#include "tam/alloc.h"

#include <stdint.h>
#include <string.h>

#define CLASS_SIZE  64
#define CLASS_MAX   4096
#define CLASSES     (CLASS_MAX / CLASS_SIZE + 1)
#define CACHE_BYTES (1u << 20)

/* Before each block; 16 bytes, so the block keeps malloc's alignment. */
struct hdr {
    size_t cls; /* 0: larger than CLASS_MAX, straight from malloc */
    size_t unused;
};

/* A free block's first bytes link it into its class's list. */
struct free_block {
    struct free_block *next;
};

static _Thread_local struct {
    struct free_block *head[CLASSES];
    size_t bytes;
} cache;

static size_t class_of(size_t size)
{
    size_t cls = (size + CLASS_SIZE - 1) / CLASS_SIZE;
    return cls > 0 && cls < CLASSES ? cls : 0;
}

static void *cached_malloc(size_t size)
{
    size_t cls = class_of(size);
    if (cls != 0 && cache.head[cls] != NULL) {
        struct free_block *b = cache.head[cls];
        cache.head[cls] = b->next;
        cache.bytes -= cls * CLASS_SIZE;
        return b;
    }
    size_t cap = cls != 0 ? cls * CLASS_SIZE : size;
    if (cap > SIZE_MAX - sizeof(struct hdr)) {
        return NULL;
    }
    struct hdr *h = tam_malloc(sizeof(*h) + cap);
    if (h == NULL) {
        return NULL;
    }
    h->cls = cls;
    return h + 1;
}

static void cached_free(void *p)
{
    if (p == NULL) {
        return;
    }
    struct hdr *h = (struct hdr *)p - 1;
    size_t bytes = h->cls * CLASS_SIZE;
    if (h->cls == 0 || cache.bytes + bytes > CACHE_BYTES) {
        tam_free(h);
        return;
    }
    struct free_block *b = p;
    b->next = cache.head[h->cls];
    cache.head[h->cls] = b;
    cache.bytes += bytes;
}

static void *cached_realloc(void *p, size_t size)
{
    if (p == NULL) {
        return cached_malloc(size);
    }
    struct hdr *h = (struct hdr *)p - 1;
    if (h->cls == 0 && class_of(size) == 0) {
        struct hdr *n = tam_realloc(h, sizeof(*h) + size);
        return n != NULL ? n + 1 : NULL;
    }
    if (h->cls != 0 && class_of(size) == h->cls) {
        return p;
    }
    void *n = cached_malloc(size);
    if (n == NULL) {
        return NULL;
    }
    /* A class block holds cls * CLASS_SIZE bytes; a large one more than any class. */
    size_t cap = h->cls * CLASS_SIZE;
    memcpy(n, p, h->cls != 0 && cap < size ? cap : size);
    cached_free(p);
    return n;
}

#if defined(__SANITIZE_ADDRESS__)
#define TAM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAM_ASAN 1
#endif
#endif

void tam_crypto_cache_allocations(void)
{
#ifdef TAM_ASAN
    (void)cached_malloc; /* ASan keeps watching wolfCrypt's memory: malloc stays */
    (void)cached_free;
    (void)cached_realloc;
#else
    (void)wolfSSL_SetAllocators(cached_malloc, cached_free, cached_realloc);
#endif
}
