/*
 * All allocation goes through here (after redis zmalloc), so tests can make the
 * Nth allocation fail (curl torture mode) and see every path release cleanly.
 * These return NULL on failure; callers turn that into TAM_ENOMEM.
 */
#ifndef TAM_ALLOC_H
#define TAM_ALLOC_H

#include <stddef.h>

void *tam_malloc(size_t n);
void *tam_calloc(size_t count, size_t size);
void *tam_realloc(void *p, size_t n);
void tam_free(void *p);
char *tam_strndup(const char *s, size_t n);
char *tam_strdup(const char *s);

/* Test hook: fail every allocation after `n` more succeed; n < 0 disables. */
void tam_alloc_fail_after(long n);

/* Overwrite a secret before it is released; not optimised away. */
void tam_memzero(void *p, size_t n);

#endif
