/*
 * One error space for the whole project (after libuv's UV_ERRNO_MAP).
 * 0 is success; domain errors are negative values below every -errno; a system
 * error is passed through as -errno (TAM_ERRNO), so libuv status codes fit too.
 */
#ifndef TAM_ERR_H
#define TAM_ERR_H

#include <stddef.h>

#define TAM_ERR_MAP(X)                              \
    X(INCOMPLETE, "need more input")                \
    X(NOMEM, "out of memory")                       \
    X(TOOBIG, "input exceeds configured limit")     \
    X(INVAL, "invalid argument")                    \
    X(CBOR, "malformed CBOR")                       \
    X(CBOR_LIMIT, "CBOR exceeds decoding limits")   \
    X(COSE, "malformed COSE structure")             \
    X(COSE_ALG, "unsupported COSE algorithm")       \
    X(COSE_CRIT, "unknown critical COSE header")    \
    X(SIG, "signature verification failed")         \
    X(KEY, "invalid or unsupported key")            \
    X(CRYPTO, "cryptographic library failure")      \
    X(TEEP, "malformed TEEP message")               \
    X(TEEP_TYPE, "unexpected TEEP message type")    \
    X(SUIT, "malformed SUIT envelope")              \
    X(SUIT_DIGEST, "SUIT manifest digest mismatch") \
    X(EAT, "malformed EAT")                         \
    X(NOTFOUND, "not found")                        \
    X(EXISTS, "already exists")                     \
    X(EXPIRED, "expired")                           \
    X(DENIED, "not allowed")                        \
    X(TIMEOUT, "timed out")                         \
    X(UNAVAIL, "service unavailable")               \
    X(REDIS, "redis error")                         \
    X(CONFIG, "invalid configuration")              \
    X(PROTO, "protocol error")                      \
    X(TLS, "TLS failure")                           \
    X(TLS_VERIFY, "TLS peer verification failed")

enum tam_err {
    TAM_OK = 0,
    TAM_ERR_FIRST_ = -5000, /* domain codes live below every -errno value */
#define TAM_ERR_ENUM_(name, msg) TAM_E##name,
    TAM_ERR_MAP(TAM_ERR_ENUM_)
#undef TAM_ERR_ENUM_
        TAM_ERR_LAST_
};

#define TAM_ERRNO(e) (-(e)) /* at a syscall site: return TAM_ERRNO(errno); */

/* Sets *why (when why is non-NULL) to a static reason and returns err: decoders explain
 * every failure this way. */
static inline int tam_fail(const char **why, const char *reason, int err)
{
    if (why != NULL) {
        *why = reason;
    }
    return err;
}

/* A static, human-readable description of err (never NULL). */
const char *tam_strerror(int err);
/* The symbolic name ("TAM_ESIG", "ENOENT", ...), for logs and JSON. */
const char *tam_errname(int err);

#endif
