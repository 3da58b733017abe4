/* tamctl internals shared by its command files. */
#ifndef TAM_TOOLS_TAMCTL_H
#define TAM_TOOLS_TAMCTL_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>

#include "tam/buf.h"
#include "tam/crypto.h"
#include "tam/teep.h"

/* Prints "tamctl: <msg>" on stderr and returns 1 (the exit status for bad input). */
int tamctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tamctl: <message>" on stderr and returns code. */
int tamctl_vfail(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Reads FILE ("-" = stdin); hex text (whitespace allowed) is decoded, anything else is binary. */
int tamctl_read_input(const char *path, struct tam_buf *out);
/* Loads a PEM key file. */
int tamctl_load_key(const char *path, struct tam_key **out);
/* Prints a JSON value (pretty) on stdout and releases it. */
void tamctl_print_json(json_t *v);
json_t *tamctl_hex(const uint8_t *p, size_t len);

json_t *tamctl_teep_json(const struct tam_teep_msg *m, enum tam_teep_numbering num);

int tamctl_cmd_teep(int argc, char **argv);
int tamctl_cmd_cose(int argc, char **argv);
int tamctl_cmd_suit(int argc, char **argv);

#endif
