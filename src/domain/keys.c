#include "tam/keys.h"

#include <stdio.h>

#include "tam/hex.h"

static size_t with_hex(char *out, const char *fmt_before, const uint8_t *id, size_t len,
                       const char *after)
{
    char hex[2 * 64 + 1];
    len = len > 64 ? 64 : len;
    tam_hex_encode(id, len, hex);
    int n = snprintf(out, TAM_KEY_MAX, "%s%s%s", fmt_before, hex, after);
    return n < 0 ? 0 : (size_t)n;
}

size_t tam_key_session(char *out, const uint8_t *token, size_t token_len)
{
    return with_hex(out, "tam:s:{", token, token_len, "}");
}

size_t tam_key_job_done(char *out, const uint8_t *token, size_t token_len)
{
    return with_hex(out, "tam:{jobs}:done:", token, token_len, "");
}

size_t tam_key_results(char *out, const char *gateway_id)
{
    int n = snprintf(out, TAM_KEY_MAX, "tam:{gw:%s}:results", gateway_id);
    return n < 0 ? 0 : (size_t)n;
}

size_t tam_key_device(char *out, const char *tenant, const uint8_t kid[32], const char *suffix)
{
    char hex[65];
    tam_hex_encode(kid, 32, hex);
    int n = snprintf(out, TAM_KEY_MAX, "tam:d:{%s:%s}%s%s", tenant, hex, suffix ? ":" : "",
                     suffix ? suffix : "");
    return n < 0 ? 0 : (size_t)n;
}

size_t tam_key_tenant(char *out, const char *tenant, const char *what)
{
    int n = snprintf(out, TAM_KEY_MAX, "tam:t:{%s}:%s", tenant, what);
    return n < 0 ? 0 : (size_t)n;
}
