/*
 * Pure HTTP rules of TEEP over HTTP (TEEP-DIGEST 2): which targets are TAM resources,
 * whether an Accept header allows the TEEP media type, whether a Content-Type is it.
 */
#include <string.h>

#include "gw.h"

#define TEEP_TYPE    "application"
#define TEEP_SUBTYPE "teep+cbor"

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive comparison of s[0..n) with the lower-case literal lit. */
static bool span_eq(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (lower(s[i]) != lit[i]) {
            return false;
        }
    }
    return true;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

enum tam_gw_route tam_gw_route_parse(const char *target, char *tenant_out)
{
    static const char prefix[] = "/tam";
    const size_t plen = sizeof(prefix) - 1;
    tenant_out[0] = '\0';
    if (strncmp(target, prefix, plen) != 0) {
        return TAM_GW_ROUTE_NONE;
    }
    const char *rest = target + plen;
    if (*rest == '\0') {
        return TAM_GW_ROUTE_DEFAULT;
    }
    if (*rest != '/') {
        return TAM_GW_ROUTE_NONE;
    }
    rest++;
    /* The id alphabet has no '%', '/', '?' or '.', so escapes, sub-paths and queries fail. */
    size_t n = strlen(rest);
    if (!tam_tenant_id_valid(rest, n)) {
        return TAM_GW_ROUTE_NONE;
    }
    memcpy(tenant_out, rest, n + 1);
    return TAM_GW_ROUTE_TENANT;
}

/* The q parameter of one media range's parameter list; 1 when absent or unparsable. */
static bool q_is_zero(const char *p, const char *end)
{
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ';')) {
            p++;
        }
        const char *name = p;
        while (p < end && *p != '=' && *p != ';') {
            p++;
        }
        size_t nlen = (size_t)(p - name);
        while (nlen > 0 && is_ows(name[nlen - 1])) {
            nlen--;
        }
        if (p < end && *p == '=' && span_eq(name, nlen, "q")) {
            p++;
            while (p < end && is_ows(*p)) {
                p++;
            }
            /* q=0, q=0.0, q=0.000: zero weight means "not acceptable" (RFC 9110 12.4.2). */
            if (p < end && *p == '0') {
                p++;
                while (p < end && (*p == '.' || *p == '0')) {
                    p++;
                }
                return p == end || *p == ';' || is_ows(*p);
            }
            return false;
        }
        while (p < end && *p != ';') {
            p++;
        }
    }
    return false;
}

/* Whether one media range (without parameters) covers application/teep+cbor. */
static bool range_matches(const char *s, size_t n)
{
    const char *slash = memchr(s, '/', n);
    if (slash == NULL) {
        return false;
    }
    size_t tlen = (size_t)(slash - s);
    const char *sub = slash + 1;
    size_t slen = n - tlen - 1;
    if (span_eq(s, tlen, "*")) {
        return span_eq(sub, slen, "*");
    }
    return span_eq(s, tlen, TEEP_TYPE) &&
           (span_eq(sub, slen, "*") || span_eq(sub, slen, TEEP_SUBTYPE));
}

bool tam_gw_accept_ok(const char *accept)
{
    if (accept == NULL) {
        return true; /* no preference: anything is acceptable */
    }
    const char *p = accept;
    bool any_range = false;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        end = end != NULL ? end : p + strlen(p);
        const char *s = p;
        while (s < end && is_ows(*s)) {
            s++;
        }
        const char *params = s;
        while (params < end && *params != ';') {
            params++;
        }
        const char *rend = params;
        params = params < end ? params : NULL;
        while (rend > s && is_ows(rend[-1])) {
            rend--;
        }
        if (rend > s) {
            any_range = true;
            if (range_matches(s, (size_t)(rend - s)) &&
                !(params != NULL && q_is_zero(params, end))) {
                return true;
            }
        }
        p = *end == ',' ? end + 1 : end;
    }
    return !any_range; /* an empty Accept value says nothing */
}

bool tam_gw_content_type_ok(const char *ct)
{
    if (ct == NULL) {
        return false;
    }
    size_t n = strlen(ct);
    while (n > 0 && is_ows(ct[n - 1])) {
        n--;
    }
    while (n > 0 && is_ows(*ct)) {
        ct++;
        n--;
    }
    return span_eq(ct, n, TEEP_TYPE "/" TEEP_SUBTYPE);
}
