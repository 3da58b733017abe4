/* Pure parts of the Redis layer (address grammar, histogram, backoff) and the sync helper. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tam/err.h"
#include "tam/redis.h"

const double tam_redis_latency_le[TAM_REDIS_LATENCY_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, INFINITY,
};

static int parse_port(const char *s, uint16_t *port)
{
    uint32_t v = 0;
    if (*s == '\0') {
        return TAM_EINVAL;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return TAM_EINVAL;
        }
        v = v * 10 + (uint32_t)(*s - '0');
        if (v > 65535) {
            return TAM_EINVAL;
        }
    }
    if (v == 0) {
        return TAM_EINVAL;
    }
    *port = (uint16_t)v;
    return TAM_OK;
}

static bool host_char_ok(char c, bool bracketed)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c == '.' || c == '-' || c == '_' || (bracketed && (c == ':' || c == '%'));
}

static int copy_host(const char *s, size_t n, bool bracketed, struct tam_redis_addr *out)
{
    if (n == 0) {
        return TAM_EINVAL;
    }
    if (n >= sizeof(out->host)) {
        return TAM_ETOOBIG;
    }
    for (size_t i = 0; i < n; i++) {
        if (!host_char_ok(s[i], bracketed)) {
            return TAM_EINVAL;
        }
    }
    memcpy(out->host, s, n);
    out->host[n] = '\0';
    return TAM_OK;
}

/* "host", "host:port", "[v6]", "[v6]:port". */
static int parse_hostport(const char *s, struct tam_redis_addr *out)
{
    out->kind = TAM_REDIS_ADDR_TCP;
    out->port = TAM_REDIS_DEFAULT_PORT;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL) {
            return TAM_EINVAL;
        }
        int err = copy_host(s + 1, (size_t)(end - s - 1), true, out);
        if (err != TAM_OK) {
            return err;
        }
        if (end[1] == '\0') {
            return TAM_OK;
        }
        return end[1] == ':' ? parse_port(end + 2, &out->port) : TAM_EINVAL;
    }
    const char *colon = strchr(s, ':');
    size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);
    int err = copy_host(s, n, false, out);
    if (err != TAM_OK || colon == NULL) {
        return err;
    }
    return parse_port(colon + 1, &out->port);
}

static int parse_path(const char *p, struct tam_redis_addr *out)
{
    size_t n = strlen(p);
    if (n == 0) {
        return TAM_EINVAL;
    }
    if (n >= sizeof(out->path)) {
        return TAM_ETOOBIG;
    }
    out->kind = TAM_REDIS_ADDR_UNIX;
    memcpy(out->path, p, n + 1);
    return TAM_OK;
}

int tam_redis_addr_parse(const char *s, struct tam_redis_addr *out)
{
    if (s == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (strlen(s) > 1024) {
        return TAM_ETOOBIG;
    }
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        /* "unix:///abs" is the URL spelling of "unix:/abs". */
        if (strncmp(p, "//", 2) == 0) {
            p += 2;
        }
        return parse_path(p, out);
    }
    if (s[0] == '/' || strncmp(s, "./", 2) == 0) {
        return parse_path(s, out);
    }
    if (strncmp(s, "redis://", 8) == 0) {
        s += 8;
    }
    return parse_hostport(s, out);
}

const char *tam_redis_addr_format(const struct tam_redis_addr *a, char *out, size_t outsz)
{
    if (outsz == 0) {
        return out;
    }
    if (a->kind == TAM_REDIS_ADDR_UNIX) {
        (void)snprintf(out, outsz, "unix:%s", a->path);
    } else if (strchr(a->host, ':') != NULL) {
        (void)snprintf(out, outsz, "[%s]:%u", a->host, (unsigned)a->port);
    } else {
        (void)snprintf(out, outsz, "%s:%u", a->host, (unsigned)a->port);
    }
    return out;
}

void tam_redis_stats_observe(struct tam_redis_stats *s, uint64_t latency_ns)
{
    double sec = (double)latency_ns / 1e9;
    for (size_t i = 0; i < TAM_REDIS_LATENCY_BUCKETS; i++) {
        if (sec <= tam_redis_latency_le[i]) {
            s->bucket[i]++;
        }
    }
    s->count++;
    s->sum_seconds += sec;
}

void tam_redis_stats_add(struct tam_redis_stats *dst, const struct tam_redis_stats *src)
{
    for (size_t i = 0; i < TAM_REDIS_LATENCY_BUCKETS; i++) {
        dst->bucket[i] += src->bucket[i];
    }
    dst->count += src->count;
    dst->sum_seconds += src->sum_seconds;
    dst->errors += src->errors;
    dst->timeouts += src->timeouts;
    dst->unavailable += src->unavailable;
    dst->connect_attempts += src->connect_attempts;
    dst->connects += src->connects;
    dst->disconnects += src->disconnects;
}

uint32_t tam_redis_backoff_ms(uint32_t min_ms, uint32_t max_ms, uint32_t attempt, uint32_t rnd)
{
    if (min_ms == 0) {
        min_ms = 1;
    }
    if (max_ms < min_ms) {
        max_ms = min_ms;
    }
    uint64_t d = min_ms;
    for (uint32_t i = 0; i < attempt && d < max_ms; i++) {
        d *= 2;
    }
    if (d > max_ms) {
        d = max_ms;
    }
    uint64_t half = d / 2;
    return (uint32_t)(d - half + rnd % (half + 1));
}

static redisContext *sync_open(const struct tam_redis_addr *a, struct timeval tv)
{
    if (a->kind == TAM_REDIS_ADDR_UNIX) {
        return redisConnectUnixWithTimeout(a->path, tv);
    }
    return redisConnectWithTimeout(a->host, a->port, tv);
}

int tam_redis_sync_connect(const char *addr, uint32_t timeout_ms, redisContext **out)
{
    struct tam_redis_addr a;
    if (out == NULL) {
        return TAM_EINVAL;
    }
    *out = NULL;
    int err = tam_redis_addr_parse(addr, &a);
    if (err != TAM_OK) {
        return err;
    }
    if (timeout_ms == 0) {
        timeout_ms = 2000;
    }
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    redisContext *c = sync_open(&a, tv);
    if (c == NULL) {
        return TAM_ENOMEM;
    }
    if (c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return TAM_EUNAVAIL;
    }
    (void)fcntl(c->fd, F_SETFD, FD_CLOEXEC); /* hiredis 0.14 leaves it inheritable */
    redisReply *reply = redisCommand(c, "PING");
    bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    if (reply != NULL) {
        freeReplyObject(reply);
    }
    if (!ok) {
        redisFree(c);
        return TAM_EUNAVAIL;
    }
    *out = c;
    return TAM_OK;
}
