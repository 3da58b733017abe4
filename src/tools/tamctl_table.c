/* Aligned text tables for tamctl's human-readable output. */
#include <stdlib.h>
#include <string.h>

#include "tam/alloc.h"
#include "tamctl_admin.h"

void tamctl_table_init(struct tamctl_table *t, const char *const *head)
{
    memset(t, 0, sizeof(*t));
    while (t->ncols < TAMCTL_TABLE_COLS && head[t->ncols] != NULL) {
        t->head[t->ncols] = head[t->ncols];
        t->ncols++;
    }
}

static char *dup_cell(const char *s)
{
    const char *v = s != NULL && s[0] != '\0' ? s : "-";
    size_t n = strlen(v);
    char *d = tam_malloc(n + 1);
    if (d == NULL) {
        fputs("tamctl: out of memory\n", stderr);
        exit(TAMCTL_EXIT_API);
    }
    memcpy(d, v, n + 1);
    return d;
}

void tamctl_table_add(struct tamctl_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap == 0 ? 16 : t->cap * 2;
        char **c = tam_realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (c == NULL) {
            fputs("tamctl: out of memory\n", stderr);
            exit(TAMCTL_EXIT_API);
        }
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        t->cells[t->nrows * t->ncols + i] = dup_cell(cells[i]);
    }
    t->nrows++;
}

static void print_row(const struct tamctl_table *t, const char *const *row, const size_t *w,
                      FILE *f)
{
    for (size_t i = 0; i < t->ncols; i++) {
        if (i + 1 == t->ncols) {
            fprintf(f, "%s\n", row[i]); /* no trailing blanks */
        } else {
            fprintf(f, "%-*s  ", (int)w[i], row[i]);
        }
    }
}

void tamctl_table_print(struct tamctl_table *t, FILE *f)
{
    size_t w[TAMCTL_TABLE_COLS] = {0};
    for (size_t i = 0; i < t->ncols; i++) {
        w[i] = strlen(t->head[i]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t n = strlen(t->cells[r * t->ncols + i]);
            w[i] = n > w[i] ? n : w[i];
        }
    }
    print_row(t, t->head, w, f);
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, (const char *const *)&t->cells[r * t->ncols], w, f);
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        tam_free(t->cells[i]);
    }
    tam_free(t->cells);
    memset(t, 0, sizeof(*t));
}
