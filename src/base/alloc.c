#include "tam/alloc.h"

#include <stdlib.h>
#include <string.h>

/* The only mutable global in the base layer: a test-only failure injector. */
static long fail_countdown = -1;

static int should_fail(void)
{
    if (fail_countdown < 0) {
        return 0;
    }
    if (fail_countdown == 0) {
        return 1;
    }
    fail_countdown--;
    return 0;
}

void tam_alloc_fail_after(long n)
{
    fail_countdown = n;
}

void *tam_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *tam_calloc(size_t count, size_t size)
{
    return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *tam_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void tam_free(void *p)
{
    free(p);
}

char *tam_strndup(const char *s, size_t n)
{
    n = strnlen(s, n); /* like POSIX strndup: stop at a NUL within n */
    char *d = tam_malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *tam_strdup(const char *s)
{
    return tam_strndup(s, strlen(s));
}

void tam_memzero(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--) {
        *v++ = 0;
    }
}
