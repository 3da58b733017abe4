/*
 * The crypto-only bound of one TEEP exchange, for the end-to-end benchmark
 * (tests/bench/bench_e2e.sh runs it before and after the stack runs, on the same cores).
 *
 *   bench_bound [SECONDS_PER_OP]      (default 0.3)
 *
 * For ESP256 and Ed25519 it measures, on one core, the rate of each signature operation a
 * full exchange costs (tam_sign / tam_verify / tam_key_from_raw_public, i.e. wolfCrypt
 * through our own wrappers) and prints one line per algorithm:
 *   alg=esp256 sign_same=... sign_dist=... sign_update=... verify_same=... verify_dist=...
 *              import=... start_us=... tam_us=... agent_us=...
 * (rates in operations per second, costs in microseconds per exchange), by wall clock, and
 * the same with a cpu_ prefix per CPU second of this thread (what the operations cost
 * whatever else the machine runs).
 *
 * Distinct keys: wolfSSL 5.5.4 (FP_ECC) caches a fixed-point table per public point, so
 * verifying with one key over and over is faster than verifying for many devices. Device
 * keys are therefore verified from a pool of POOL fresh keys, in the order the gateway
 * sees them: WINDOW devices' QueryResponses, then the same devices' Success messages
 * (each device key is used exactly twice, interleaved with other devices), then the next
 * WINDOW devices. Keys used by one signer for every exchange (the TAM key, the fleet's
 * attester key) are measured with one key (verify_same, sign_same), as they run; but every
 * verification is of a message and signature of its own, as every exchange brings new ones:
 * verifying one signature over and over ran 11-15% faster (the branch predictors learn its
 * inputs).
 *
 * What one exchange costs (QueryRequest, QueryResponse with EAT, Update with one manifest,
 * Success; registered device, tenant sign1-only, agent run with --no-verify), read off
 * src/gateway/connect.c, message.c, devkeys.c, src/worker/job_query.c, job_report.c,
 * attest.c, src/eat/eat_decode.c and src/agent/step.c, query.c, update.c:
 *   gateway: sign the QueryRequest (TAM key)                                sign_same
 *            import the device key on a key-cache miss (point check)        import
 *            verify the QueryResponse (device key)                          verify_dist
 *            verify the Success (device key, from the key cache)            verify_dist
 *   worker:  import the EAT's cnf COSE_Key (thumbprint; eat_decode.c)       import
 *            verify the EAT (the fleet attester key)                        verify_same
 *            sign the Update (TAM key; carries the ~1.3 KB envelope)        sign_update
 *            (the QueryResponse and the Success were verified by the gateway: job.verified;
 *             the envelope's signature is verified once per catalogue load, not per job)
 *   agent:   sign the EAT (attester key)                                    sign_same
 *            sign the QueryResponse and the Success (device key)            2 x sign_dist
 *            (--no-verify: no TAM signature checks; the SUIT envelope's signature is
 *             checked once per fleet process, by its verification cache)
 * tam_us is the TAM's part, agent_us the load generator's; both run on the same cores, so
 * the end-to-end bound is cores / (tam_us + agent_us). A session start (empty POST ->
 * QueryRequest) costs start_us = one sign_same. A COSE_Sign QueryRequest of a two-key
 * tenant (not sign1-only) costs one ESP256 and one Ed25519 signature instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tam/crypto.h"
#include "tam/err.h"

#define POOL   1024u
#define WINDOW 64u

struct ctx {
    enum tam_key_type type;
    int alg;
    struct tam_key *keys[POOL];
    uint8_t pub[POOL][64];
    size_t pub_len;
    uint8_t sig[POOL][TAM_SIG_MAX];
    uint8_t msg[1536];
    size_t msg_len;
    uint8_t same_sig[POOL][TAM_SIG_MAX]; /* keys[0]'s signature of msg with k in its first bytes */
    uint8_t same_msg[1536];
};

typedef void (*op_fn)(struct ctx *c, unsigned long i);

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_bound: %s: %s\n", what, tam_strerror(err));
    exit(1);
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sign_with(struct ctx *c, const struct tam_key *k)
{
    uint8_t sig[TAM_SIG_MAX];
    size_t sl = 0;
    c->msg[0]++; /* a new message each time, as in the real flow */
    int err = tam_sign(k, c->alg, c->msg, c->msg_len, sig, &sl);
    if (err != TAM_OK) {
        die("sign", err);
    }
}

static void op_sign_same(struct ctx *c, unsigned long i)
{
    (void)i;
    sign_with(c, c->keys[0]);
}

static void op_sign_dist(struct ctx *c, unsigned long i)
{
    sign_with(c, c->keys[i % POOL]);
}

/* The message keys[0] signed as same_sig[k]: msg with k in its first bytes. */
static const uint8_t *same_message(struct ctx *c, unsigned long k)
{
    memcpy(c->same_msg, c->msg, c->msg_len);
    memcpy(c->same_msg, &k, sizeof(k));
    return c->same_msg;
}

static void op_verify_same(struct ctx *c, unsigned long i)
{
    unsigned long k = i % POOL;
    int err = tam_verify(c->keys[0], c->alg, same_message(c, k), c->msg_len, c->same_sig[k], 64);
    if (err != TAM_OK) {
        die("verify", err);
    }
}

/* Device k = (i / (2 W)) W + i % W: W devices' first use, then the same W devices again. */
static void op_verify_dist(struct ctx *c, unsigned long i)
{
    unsigned long k = ((i / (2 * WINDOW)) * WINDOW + i % WINDOW) % POOL;
    int err = tam_verify(c->keys[k], c->alg, c->msg, c->msg_len, c->sig[k], 64);
    if (err != TAM_OK) {
        die("verify", err);
    }
}

static void op_import(struct ctx *c, unsigned long i)
{
    struct tam_key *k = NULL;
    int err = tam_key_from_raw_public(c->type, c->pub[i % POOL], c->pub_len, &k);
    if (err != TAM_OK) {
        die("import", err);
    }
    tam_key_destroy(k);
}

/* Operations per second: by wall clock, and per CPU second of this thread. */
struct rate {
    double wall, cpu;
};

/* Runs op for at least secs and at least 4 * WINDOW times (every device key used twice). */
static struct rate rate(struct ctx *c, op_fn op, double secs)
{
    unsigned long n = 0;
    double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), t;
    do {
        for (int j = 0; j < 64; j++, n++) {
            op(c, n);
        }
        t = clock_s(CLOCK_MONOTONIC) - t0;
    } while (t < secs || n < 4 * WINDOW);
    struct rate r = {(double)n / t, (double)n / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0)};
    return r;
}

static void setup(struct ctx *c, enum tam_key_type type)
{
    memset(c, 0, sizeof(*c));
    c->type = type;
    c->alg = type == TAM_KEY_P256 ? TAM_ALG_ESP256 : TAM_ALG_ED25519;
    c->msg_len = 300; /* about a Sig_structure of a QueryResponse with EAT */
    memset(c->msg, 0x5a, sizeof(c->msg));
    for (unsigned i = 0; i < POOL; i++) {
        int err = tam_key_generate(type, &c->keys[i]);
        if (err != TAM_OK) {
            die("keygen", err);
        }
        c->pub_len = tam_key_public_raw(c->keys[i], c->pub[i]);
        size_t sl = 0;
        err = tam_sign(c->keys[i], c->alg, c->msg, c->msg_len, c->sig[i], &sl);
        if (err == TAM_OK) {
            err = tam_sign(c->keys[0], c->alg, same_message(c, i), c->msg_len, c->same_sig[i], &sl);
        }
        if (err != TAM_OK) {
            die("sign", err);
        }
    }
}

static void teardown(struct ctx *c)
{
    for (unsigned i = 0; i < POOL; i++) {
        tam_key_destroy(c->keys[i]);
    }
}

/* Costs per exchange (microseconds) from the rates of one clock (wall or CPU). */
static void costs(const double *r, double *start_us, double *tam_us, double *agent_us)
{
    enum { SIGN_SAME, SIGN_DIST, SIGN_UPDATE, VERIFY_SAME, VERIFY_DIST, IMPORT };
    *start_us = 1e6 / r[SIGN_SAME];
    *tam_us = 1e6 * (1 / r[SIGN_SAME] + 2 / r[IMPORT] + 2 / r[VERIFY_DIST] + 1 / r[VERIFY_SAME] +
                     1 / r[SIGN_UPDATE]);
    *agent_us = 1e6 * (1 / r[SIGN_SAME] + 2 / r[SIGN_DIST]);
}

static void measure(enum tam_key_type type, const char *name, double secs)
{
    static struct ctx c;
    setup(&c, type);
    struct rate r[6];
    r[3] = rate(&c, op_verify_same, secs);
    r[4] = rate(&c, op_verify_dist, secs);
    r[5] = rate(&c, op_import, secs);
    r[0] = rate(&c, op_sign_same, secs);
    r[1] = rate(&c, op_sign_dist, secs);
    c.msg_len = 1400; /* an Update carrying the envelope */
    r[2] = rate(&c, op_sign_same, secs);
    double wall[6], cpu[6];
    for (int i = 0; i < 6; i++) {
        wall[i] = r[i].wall;
        cpu[i] = r[i].cpu;
    }
    double ws, wt, wa, cs, ct, ca;
    costs(wall, &ws, &wt, &wa);
    costs(cpu, &cs, &ct, &ca);
    printf("alg=%s sign_same=%.0f sign_dist=%.0f sign_update=%.0f verify_same=%.0f "
           "verify_dist=%.0f import=%.0f start_us=%.1f tam_us=%.1f agent_us=%.1f "
           "cpu_sign_same=%.0f cpu_sign_dist=%.0f cpu_sign_update=%.0f cpu_verify_same=%.0f "
           "cpu_verify_dist=%.0f cpu_import=%.0f cpu_start_us=%.1f cpu_tam_us=%.1f "
           "cpu_agent_us=%.1f\n",
           name, wall[0], wall[1], wall[2], wall[3], wall[4], wall[5], ws, wt, wa, cpu[0], cpu[1],
           cpu[2], cpu[3], cpu[4], cpu[5], cs, ct, ca);
    fflush(stdout);
    teardown(&c);
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* as tamd, tam-worker and tam-agent do */
    double secs = argc > 1 ? strtod(argv[1], NULL) : 0.3;
    if (!(secs > 0 && secs < 60)) {
        fprintf(stderr, "usage: bench_bound [SECONDS_PER_OP]\n");
        return 2;
    }
    measure(TAM_KEY_P256, "esp256", secs);
    measure(TAM_KEY_ED25519, "ed25519", secs);
    return 0;
}
