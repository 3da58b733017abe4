/* Digests, constant-time comparison and the process-wide, fork-aware RNG. */
#include "internal.h"

#include <wolfssl/wolfcrypt/sha256.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "tam/err.h"

/*
 * One DRBG per process. A forked child inherits a copy of the parent's state and
 * would repeat its output (DEPS.md 8.1), so a pthread_atfork child handler marks the
 * state stale and the child re-seeds from the OS on its first use. (This replaced a
 * getpid() comparison on every call: glibc does not cache getpid(), and the system call
 * was 4% of a worker's CPU.) Processes are single-threaded.
 */
static WC_RNG rng_state;
static bool rng_ready;
static volatile sig_atomic_t rng_forked; /* set in a forked child, before it runs */
static pthread_once_t rng_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void)
{
    rng_forked = 1;
}

static void register_fork_handler(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

int tam_crypto__rng(WC_RNG **out)
{
    (void)pthread_once(&rng_once, register_fork_handler);
    if (rng_forked && rng_ready) {
        /* The inherited copy is private to this process; release it. */
        wc_FreeRng(&rng_state);
        rng_ready = false;
    }
    rng_forked = 0;
    if (!rng_ready) {
        if (wc_InitRng(&rng_state) != 0) {
            return TAM_ECRYPTO;
        }
        rng_ready = true;
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
