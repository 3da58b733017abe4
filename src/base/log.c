#include "tam/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int tam_log_threshold = TAM_LOG_INFO;
static enum tam_log_format log_format = TAM_LOG_LOGFMT;
static const char *log_program = "tamgate";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tam_log_configure(int level, enum tam_log_format format, const char *program)
{
    tam_log_threshold = level;
    log_format = format;
    if (program != NULL) {
        log_program = program;
    }
}

const char *tam_log_level_name(int level)
{
    return level >= 0 && level < (int)TAM_ARRAY_LEN(level_names) ? level_names[level] : "info";
}

int tam_log_level_parse(const char *name)
{
    for (size_t i = 0; i < TAM_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *tam_log_quote(const void *s, size_t len, char *out, size_t outsz)
{
    const unsigned char *p = s;
    size_t o = 0;
    if (outsz < 3) {
        return "";
    }
    out[o++] = '"';
    for (size_t i = 0; i < len && o + 5 < outsz; i++) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* Strips the build-time directory prefix so lines say src/net/http.c:42. */
static const char *short_path(const char *file)
{
    const char *p = strstr(file, "src/");
    return p != NULL ? p : file;
}

#define LINE_MAX_IN 2400 /* a logfmt line, cut by snprintf */

/*
 * A line being composed. JSON turns one input byte into at most 6 (\u00XX; a key's quotes,
 * colon and comma cost less per byte), so a whole line always fits; put_n still refuses to
 * overrun.
 */
struct line {
    char buf[6 * LINE_MAX_IN + 16];
    size_t len;
};

static void put_n(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 4 - l->len; /* the JSON or newline terminator always fits */
    n = n < room ? n : room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_s(struct line *l, const char *s)
{
    put_n(l, s, strlen(s));
}

/* Re-emits a logfmt line (key=value, values optionally quoted) as one JSON object. */
static void put_json(struct line *l, const char *line)
{
    put_s(l, "{");
    const char *p = line;
    int first = 1;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *key = p;
        while (*p != '\0' && *p != '=' && *p != ' ') {
            p++;
        }
        size_t klen = (size_t)(p - key);
        if (klen == 0) {
            break;
        }
        put_s(l, first ? "\"" : ",\"");
        put_n(l, key, klen);
        put_s(l, "\":\"");
        first = 0;
        if (*p == '=') {
            p++;
            int quoted = *p == '"';
            p += quoted;
            while (*p != '\0' && (quoted ? *p != '"' : *p != ' ')) {
                if (*p == '\\') {
                    put_s(l, "\\\\"); /* \xNN escapes stay readable in JSON */
                } else if ((unsigned char)*p < 0x20) {
                    char u[8];
                    snprintf(u, sizeof(u), "\\u%04x", (unsigned char)*p);
                    put_s(l, u);
                } else {
                    put_n(l, p, 1);
                }
                p++;
            }
            p += (*p == '"');
        }
        put_s(l, "\"");
    }
    memcpy(l->buf + l->len, "}\n", 2);
    l->len += 2;
}

/* Lines held back by tam_log_hold, written together. */
static struct {
    int holding;
    size_t len;
    char buf[32768];
} held;

static void write_out(const char *p, size_t n)
{
    (void)fwrite(p, 1, n, stderr);
}

void tam_log_hold(void)
{
    held.holding = 1;
}

void tam_log_release(void)
{
    if (held.len > 0) {
        write_out(held.buf, held.len);
    }
    held.len = 0;
    held.holding = 0;
}

void tam_log_write(int level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000));

    const char *lvl = level >= 0 && level <= TAM_LOG_DEBUG ? level_names[level] : "info";
    char full[LINE_MAX_IN];
    snprintf(full, sizeof(full), "ts=%s level=%s prog=%s src=%s:%d %s", when, lvl, log_program,
             short_path(file), line, msg);
    struct line out;
    out.len = 0;
    if (log_format == TAM_LOG_JSON) {
        put_json(&out, full);
    } else {
        put_s(&out, full);
        out.buf[out.len++] = '\n';
    }
    if (!held.holding) {
        write_out(out.buf, out.len);
        return;
    }
    if (held.len + out.len > sizeof(held.buf)) {
        write_out(held.buf, held.len);
        held.len = 0;
    }
    memcpy(held.buf + held.len, out.buf, out.len);
    held.len += out.len;
}
