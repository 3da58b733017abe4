/* Digests, constant-time comparison and the process-wide, fork-aware RNG. */
#include "internal.h"

#include <wolfssl/wolfcrypt/sha256.h>

#include <sys/types.h>
#include <unistd.h>

#include "tam/err.h"

/*
 * One DRBG per process. A forked child inherits a copy of the parent's state and
 * would repeat its output (DEPS.md 8.1), so the owner's pid is recorded and the
 * DRBG is re-seeded from the OS whenever getpid() differs. glibc does not cache
 * getpid(), so the check is exact. Processes are single-threaded.
 */
static WC_RNG rng_state;
static pid_t rng_pid; /* 0 while rng_state is not initialised */

int tam_crypto__rng(WC_RNG **out)
{
    pid_t pid = getpid();
    if (rng_pid != pid) {
        if (rng_pid != 0) {
            /* The inherited copy is private to this process; release it. */
            wc_FreeRng(&rng_state);
            rng_pid = 0;
        }
        if (wc_InitRng(&rng_state) != 0) {
            return TAM_ECRYPTO;
        }
        rng_pid = pid;
    }
    *out = &rng_state;
    return TAM_OK;
}

int tam_random(void *out, size_t len)
{
    if (out == NULL && len > 0) {
        return TAM_EINVAL;
    }
    WC_RNG *rng;
    int rc = tam_crypto__rng(&rng);
    if (rc != TAM_OK) {
        return rc;
    }
    uint8_t *p = out;
    while (len > 0) {
        /* The DRBG caps one request at RNG_MAX_BLOCK_LEN; ask in bounded pieces. */
        word32 n = len > (size_t)RNG_MAX_BLOCK_LEN ? (word32)RNG_MAX_BLOCK_LEN : (word32)len;
        if (wc_RNG_GenerateBlock(rng, p, n) != 0) {
            return TAM_ECRYPTO;
        }
        p += n;
        len -= n;
    }
    return TAM_OK;
}

void tam_sha256(const void *msg, size_t len, uint8_t out[TAM_SHA256_LEN])
{
    wc_Sha256 sha;
    const uint8_t *p = msg;
    /* wolfCrypt's SHA-256 only fails on NULL arguments, which cannot happen here. */
    (void)wc_InitSha256(&sha);
    while (len > 0) {
        word32 n = len > (size_t)1 << 30 ? (word32)1 << 30 : (word32)len;
        (void)wc_Sha256Update(&sha, p, n);
        p += n;
        len -= n;
    }
    (void)wc_Sha256Final(&sha, out);
    wc_Sha256Free(&sha);
}

bool tam_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++) {
        diff |= (uint8_t)(x[i] ^ y[i]);
    }
    return diff == 0;
}
