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

/* Re-emits a logfmt line (key=value, values optionally quoted) as one JSON object. */
static void write_json(FILE *f, const char *line)
{
    fputc('{', f);
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
        fprintf(f, "%s\"%.*s\":\"", first ? "" : ",", (int)klen, key);
        first = 0;
        if (*p == '=') {
            p++;
            int quoted = *p == '"';
            p += quoted;
            while (*p != '\0' && (quoted ? *p != '"' : *p != ' ')) {
                if (*p == '\\') {
                    fputs("\\\\", f); /* \xNN escapes stay readable in JSON */
                } else if ((unsigned char)*p < 0x20) {
                    fprintf(f, "\\u%04x", (unsigned char)*p);
                } else {
                    fputc(*p, f);
                }
                p++;
            }
            p += (*p == '"');
        }
        fputc('"', f);
    }
    fputs("}\n", f);
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
    char full[2400];
    snprintf(full, sizeof(full), "ts=%s level=%s prog=%s src=%s:%d %s", when, lvl, log_program,
             short_path(file), line, msg);
    if (log_format == TAM_LOG_JSON) {
        write_json(stderr, full);
    } else {
        fprintf(stderr, "%s\n", full);
    }
}
