#include "tam/resp.h"

#include <stdbool.h>
#include <string.h>

#include "tam/err.h"

#define NUM_MAX 24 /* room for a 64-bit number in decimal, with its sign */

/* The decimal digits of v (with a '-' when negative) at the end of buf[NUM_MAX]. */
static struct tam_bytes decimal(char buf[NUM_MAX], unsigned long long v, bool negative)
{
    size_t i = NUM_MAX;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (negative) {
        buf[--i] = '-';
    }
    return tam_bytes_of(buf + i, NUM_MAX - i);
}

static struct tam_bytes signed_decimal(char buf[NUM_MAX], long long v)
{
    /* -(v + 1) + 1 is defined for LLONG_MIN too. */
    return v < 0 ? decimal(buf, (unsigned long long)-(v + 1) + 1u, true)
                 : decimal(buf, (unsigned long long)v, false);
}

/* "<type><n>\r\n": the header of a command ('*', argument count) or an argument ('$', bytes). */
static int append_header(struct tam_buf *out, char type, size_t n)
{
    char buf[NUM_MAX + 4];
    struct tam_bytes d = decimal(buf + 1, n, false);
    char *head = (char *)d.ptr - 1;
    *head = type;
    memcpy(head + 1 + d.len, "\r\n", 2);
    return tam_buf_append(out, head, d.len + 3);
}

static int append_arg(struct tam_buf *out, const void *p, size_t n)
{
    int err = append_header(out, '$', n);
    if (err == TAM_OK) {
        err = tam_buf_append(out, p, n);
    }
    return err == TAM_OK ? tam_buf_append(out, "\r\n", 2) : err;
}

int tam_resp_argv(struct tam_buf *out, size_t argc, const struct tam_bytes *argv)
{
    size_t start = out->len;
    int err = append_header(out, '*', argc);
    for (size_t i = 0; i < argc && err == TAM_OK; i++) {
        err = append_arg(out, argv[i].ptr, argv[i].len);
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    return err;
}

int tam_resp_cargv(struct tam_buf *out, size_t argc, const char *const *argv, const size_t *lens)
{
    size_t start = out->len;
    int err = append_header(out, '*', argc);
    for (size_t i = 0; i < argc && err == TAM_OK; i++) {
        err = argv[i] == NULL ? TAM_EINVAL
                              : append_arg(out, argv[i], lens != NULL ? lens[i] : strlen(argv[i]));
    }
    if (err != TAM_OK) {
        out->len = start;
    }
    return err;
}

/* The value of the conversion at *f (just after its '%'); *f moves past it. */
static int convert(const char **f, va_list *ap, char num[NUM_MAX], struct tam_bytes *value)
{
    const char *c = *f;
    size_t used = 1;
    if (c[0] == 's') {
        const char *s = va_arg(*ap, const char *);
        if (s == NULL) {
            return TAM_EINVAL;
        }
        *value = tam_bytes_of(s, strlen(s));
    } else if (c[0] == 'b') {
        const void *p = va_arg(*ap, const void *);
        size_t n = va_arg(*ap, size_t);
        if (p == NULL && n != 0) {
            return TAM_EINVAL;
        }
        *value = tam_bytes_of(p, n);
    } else if (c[0] == 'd') {
        *value = signed_decimal(num, va_arg(*ap, int));
    } else if (c[0] == 'u') {
        *value = decimal(num, va_arg(*ap, unsigned), false);
    } else if (c[0] == '%') {
        *value = tam_bytes_of("%", 1);
    } else if (c[0] == 'l' && c[1] == 'l' && c[2] == 'd') {
        *value = signed_decimal(num, va_arg(*ap, long long));
        used = 3;
    } else if (c[0] == 'l' && c[1] == 'l' && c[2] == 'u') {
        *value = decimal(num, va_arg(*ap, unsigned long long), false);
        used = 3;
    } else {
        return TAM_EINVAL;
    }
    *f = c + used;
    return TAM_OK;
}

/*
 * One argument of the format, from *f to the next space or the end: with out == NULL its
 * length is added to *len, else its bytes are appended to out. *f moves past it.
 */
static int expand(const char **f, va_list *ap, struct tam_buf *out, size_t *len)
{
    const char *p = *f;
    int err = TAM_OK;
    while (err == TAM_OK && *p != '\0' && *p != ' ') {
        struct tam_bytes piece;
        char num[NUM_MAX];
        if (*p == '%') {
            p++;
            err = convert(&p, ap, num, &piece);
        } else {
            const char *lit = p;
            while (*p != '\0' && *p != ' ' && *p != '%') {
                p++;
            }
            piece = tam_bytes_of(lit, (size_t)(p - lit));
        }
        if (err == TAM_OK && out != NULL) {
            err = tam_buf_append(out, piece.ptr, piece.len);
        } else if (err == TAM_OK) {
            *len += piece.len;
        }
    }
    *f = p;
    return err;
}

static size_t count_args(const char *f)
{
    size_t n = 0;
    for (; *f != '\0'; f++) {
        n += *f != ' ' && (f[1] == ' ' || f[1] == '\0');
    }
    return n;
}

int tam_resp_vcmdf(struct tam_buf *out, const char *fmt, va_list ap)
{
    size_t start = out->len;
    va_list args;
    va_copy(args, ap);
    int err = append_header(out, '*', count_args(fmt));
    for (const char *f = fmt; err == TAM_OK;) {
        while (*f == ' ') {
            f++;
        }
        if (*f == '\0') {
            break;
        }
        /* An argument's length comes first: measured on a copy of the arguments. */
        size_t len = 0;
        const char *measured = f;
        va_list ahead;
        va_copy(ahead, args);
        err = expand(&measured, &ahead, NULL, &len);
        va_end(ahead);
        if (err == TAM_OK) {
            err = append_header(out, '$', len);
        }
        if (err == TAM_OK) {
            err = expand(&f, &args, out, NULL);
        }
        if (err == TAM_OK) {
            err = tam_buf_append(out, "\r\n", 2);
        }
    }
    va_end(args);
    if (err != TAM_OK) {
        out->len = start;
    }
    return err;
}

int tam_resp_cmdf(struct tam_buf *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int err = tam_resp_vcmdf(out, fmt, ap);
    va_end(ap);
    return err;
}
