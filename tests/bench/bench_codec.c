/*
 * Codec benchmark (issue: codec overhead under 10% of the signature cost).
 * For ESP256 and Ed25519, in one run and interleaved to share the machine's noise:
 *   - decode+verify of a signed QueryResponse (COSE_Sign1 parse, signature verify,
 *     TEEP decode) beside raw wolfCrypt verification of the same bytes;
 *   - encode+sign of a QueryRequest (TEEP encode, COSE_Sign1 creation) beside raw
 *     wolfCrypt signing of the same ToBeSigned bytes.
 * Prints messages/s for each and the ratio codec/raw; overhead = 1 - ratio.
 * Then the RESP encoding of a typical pipelined command (a job's done key: SET with a
 * 600-byte result, NX EX) by tam_resp_cmdf beside hiredis's redisFormatCommand, which the
 * worker and the gateway used before (tam/resp.h).
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tam/arena.h"
#include "tam/cose.h"
#include "tam/crypto.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/resp.h"
#include "tam/teep.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_codec: %s: %s\n", what, tam_strerror(err));
    exit(1);
}

struct fixture {
    struct tam_key *key; /* private: signs */
    int alg;
    struct tam_buf signed_qresp;
    struct tam_buf tbs;       /* ToBeSigned of signed_qresp */
    struct tam_teep_msg qreq; /* a QueryRequest to encode and sign */
    uint8_t token[16], challenge[32];
    /* raw wolfCrypt objects for the same key */
    ecc_key ecc;
    ed25519_key ed;
    WC_RNG rng;
    uint8_t der_sig[80];
    word32 der_len;
    uint8_t ed_sig[64];
};

typedef void (*op_fn)(struct fixture *f);

static void codec_verify(struct fixture *f)
{
    struct tam_cose_msg m;
    if (tam_cose_parse(f->signed_qresp.data, f->signed_qresp.len, &m, NULL) != TAM_OK ||
        tam_cose_verify(&m, 0, f->key, NULL, NULL) != TAM_OK) {
        die("verify", TAM_ESIG);
    }
    struct tam_arena arena;
    tam_arena_init(&arena, 2048, 1 << 20);
    struct tam_teep_msg msg;
    int err = tam_teep_decode(m.payload.ptr, m.payload.len, TAM_TEEP_RFC, &arena, &msg, NULL);
    tam_arena_finish(&arena);
    if (err != TAM_OK) {
        die("decode", err);
    }
}

static void raw_verify(struct fixture *f)
{
    int ok = 0;
    if (f->alg == TAM_ALG_ESP256) {
        uint8_t hash[32];
        wc_Sha256Hash(f->tbs.data, (word32)f->tbs.len, hash);
        wc_ecc_verify_hash(f->der_sig, f->der_len, hash, 32, &ok, &f->ecc);
    } else {
        wc_ed25519_verify_msg(f->ed_sig, 64, f->tbs.data, (word32)f->tbs.len, &ok, &f->ed);
    }
    if (!ok) {
        die("raw verify", TAM_ESIG);
    }
}

static void codec_sign(struct fixture *f)
{
    uint8_t mem[1024];
    struct tam_buf payload = {mem, 0, sizeof(mem), sizeof(mem)};
    int err = tam_teep_encode(&f->qreq, TAM_TEEP_RFC, &payload);
    if (err != TAM_OK) {
        die("encode", err);
    }
    uint8_t outmem[1024];
    struct tam_buf out = {outmem, 0, sizeof(outmem), sizeof(outmem)};
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    err = tam_cose_sign1(&out, f->key, f->alg, &p, &opts);
    if (err != TAM_OK) {
        die("sign", err);
    }
}

static void raw_sign(struct fixture *f)
{
    uint8_t sig[80];
    word32 len = sizeof(sig);
    int err;
    if (f->alg == TAM_ALG_ESP256) {
        uint8_t hash[32];
        wc_Sha256Hash(f->tbs.data, (word32)f->tbs.len, hash);
        err = wc_ecc_sign_hash(hash, 32, sig, &len, &f->rng, &f->ecc);
    } else {
        err = wc_ed25519_sign_msg(f->tbs.data, (word32)f->tbs.len, sig, &len, &f->ed);
    }
    if (err != 0) {
        die("raw sign", TAM_ECRYPTO);
    }
}

/* Runs op for about `secs` seconds; returns operations per second. */
static double rate(op_fn op, struct fixture *f, double secs)
{
    unsigned long n = 0;
    double t0 = now_s(), t;
    do {
        for (int i = 0; i < 16; i++) {
            op(f);
        }
        n += 16;
        t = now_s();
    } while (t - t0 < secs);
    return (double)n / (t - t0);
}

/* Interleaves the two measurements `rounds` times and keeps each one's best round. */
static void compare(const char *label, op_fn codec, op_fn raw, struct fixture *f, int rounds,
                    double secs)
{
    double best_codec = 0, best_raw = 0;
    for (int r = 0; r < rounds; r++) {
        double c = rate(codec, f, secs), w = rate(raw, f, secs);
        best_codec = c > best_codec ? c : best_codec;
        best_raw = w > best_raw ? w : best_raw;
    }
    double ratio = best_codec / best_raw;
    printf("%-34s %10.0f msg/s   raw %10.0f op/s   ratio %.3f   overhead %5.1f%%\n", label,
           best_codec, best_raw, ratio, (1.0 - ratio) * 100.0);
}

/* ---- RESP ---- */

#define DONE_KEY "tam:{jobs}:done:000102030405060708090a0b0c0d0e0f"
static uint8_t g_result[600];
static struct tam_buf g_resp;

static void resp_ours(struct fixture *f)
{
    (void)f;
    tam_buf_reset(&g_resp);
    int err =
        tam_resp_cmdf(&g_resp, "SET %s %b NX EX %d", DONE_KEY, g_result, sizeof(g_result), 86400);
    if (err != TAM_OK) {
        die("tam_resp_cmdf", err);
    }
}

static void resp_hiredis(struct fixture *f)
{
    (void)f;
    char *cmd = NULL;
    if (redisFormatCommand(&cmd, "SET %s %b NX EX %d", DONE_KEY, g_result, sizeof(g_result),
                           86400) <= 0) {
        die("redisFormatCommand", TAM_ENOMEM);
    }
    redisFreeCommand(cmd);
}

static void compare_resp(int rounds, double secs)
{
    tam_buf_init(&g_resp, 1u << 16);
    double ours = 0, theirs = 0;
    for (int r = 0; r < rounds; r++) {
        double o = rate(resp_ours, NULL, secs), t = rate(resp_hiredis, NULL, secs);
        ours = o > ours ? o : ours;
        theirs = t > theirs ? t : theirs;
    }
    printf("RESP SET with a 600-byte value     tam_resp_cmdf %10.0f cmd/s   redisFormatCommand "
           "%10.0f cmd/s   ratio %.2f\n",
           ours, theirs, ours / theirs);
    tam_buf_finish(&g_resp);
}

static struct tam_key *load_pem_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        perror(path);
        exit(1);
    }
    char pem[4096];
    size_t n = fread(pem, 1, sizeof(pem), fp);
    fclose(fp);
    struct tam_key *key = NULL;
    int err = tam_key_from_pem(pem, n, &key);
    if (err != TAM_OK) {
        die(path, err);
    }
    return key;
}

static void load_vector(const char *dir, const char *name, struct tam_buf *out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        perror(path);
        exit(1);
    }
    char hex[8192];
    size_t n = fread(hex, 1, sizeof(hex), fp);
    fclose(fp);
    if (tam_hex_decode(hex, n, out) != TAM_OK) {
        die("hex", TAM_EINVAL);
    }
}

static void setup_raw(struct fixture *f)
{
    struct tam_cose_msg m;
    if (tam_cose_parse(f->signed_qresp.data, f->signed_qresp.len, &m, NULL) != TAM_OK ||
        tam_cose_tbs(&f->tbs, &m, 0, NULL, NULL) != TAM_OK) {
        die("tbs", TAM_ECOSE);
    }
    wc_InitRng(&f->rng);
    /* The raw side uses its own wolfCrypt key objects built from the same key bytes. */
    struct tam_buf der;
    tam_buf_init(&der, 4096);
    if (tam_key_private_pem(f->key, &der) != TAM_OK) {
        die("pem", TAM_EKEY);
    }
    uint8_t bin[512];
    int dlen = wc_KeyPemToDer(der.data, (int)der.len, bin, sizeof(bin), NULL);
    tam_buf_finish(&der);
    word32 idx = 0;
    if (f->alg == TAM_ALG_ESP256) {
        wc_ecc_init(&f->ecc);
        if (dlen <= 0 || wc_EccPrivateKeyDecode(bin, &idx, &f->ecc, (word32)dlen) != 0) {
            die("raw ecc key", TAM_EKEY);
        }
        wc_ecc_set_deterministic(&f->ecc, 1);
        uint8_t hash[32];
        wc_Sha256Hash(f->tbs.data, (word32)f->tbs.len, hash);
        f->der_len = sizeof(f->der_sig);
        wc_ecc_sign_hash(hash, 32, f->der_sig, &f->der_len, &f->rng, &f->ecc);
    } else {
        wc_ed25519_init(&f->ed);
        if (dlen <= 0 || wc_Ed25519PrivateKeyDecode(bin, &idx, &f->ed, (word32)dlen) != 0) {
            die("raw ed25519 key", TAM_EKEY);
        }
        /* PKCS#8 carries only the seed: re-import it with its public half for signing. */
        uint8_t seed[32], pub[64];
        word32 slen_seed = sizeof(seed);
        size_t plen = tam_key_public_raw(f->key, pub);
        if (wc_ed25519_export_private_only(&f->ed, seed, &slen_seed) != 0 ||
            wc_ed25519_import_private_key(seed, 32, pub, (word32)plen, &f->ed) != 0) {
            die("raw ed25519 import", TAM_EKEY);
        }
        word32 slen = 64;
        wc_ed25519_sign_msg(f->tbs.data, (word32)f->tbs.len, f->ed_sig, &slen, &f->ed);
    }
}

static void setup(struct fixture *f, const char *vectors, const char *keyfile, int alg)
{
    memset(f, 0, sizeof(*f));
    f->alg = alg;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", vectors, keyfile);
    f->key = load_pem_file(path);
    struct tam_buf qresp;
    tam_buf_init(&qresp, 1 << 16);
    load_vector(vectors, "teep26_query_response.hex", &qresp);
    tam_buf_init(&f->signed_qresp, 1 << 16);
    tam_buf_init(&f->tbs, 1 << 16);
    struct tam_bytes p = tam_bytes_of(qresp.data, qresp.len);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    int err = tam_cose_sign1(&f->signed_qresp, f->key, alg, &p, &opts);
    if (err != TAM_OK) {
        die("sign qresp", err);
    }
    tam_buf_finish(&qresp);
    memset(f->token, 0xa5, sizeof(f->token));
    memset(f->challenge, 0x5a, sizeof(f->challenge));
    tam_teep_msg_init(&f->qreq, TAM_TEEP_QUERY_REQUEST);
    f->qreq.has_token = true;
    f->qreq.token = tam_bytes_of(f->token, sizeof(f->token));
    f->qreq.has_challenge = true;
    f->qreq.challenge = tam_bytes_of(f->challenge, sizeof(f->challenge));
    f->qreq.has_supported_suites = true;
    tam_teep_suites_default(TAM_TEEP_RFC, &f->qreq.supported_suites);
    f->qreq.has_supported_profiles = true;
    tam_teep_profiles_default(TAM_TEEP_RFC, &f->qreq.supported_profiles);
    f->qreq.has_data_item_requested = true;
    f->qreq.data_item_requested = 3;
    setup_raw(f);
}

int main(int argc, char **argv)
{
    tam_crypto_cache_allocations(); /* as tamd, tam-worker and tam-agent do */
    const char *vectors = argc > 1 ? argv[1] : "tests/vectors";
    double secs = argc > 2 ? strtod(argv[2], NULL) : 0.5;
    int rounds = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 3;
    static struct fixture f;
    const struct {
        const char *name, *key;
        int alg;
    } algs[] = {{"ESP256", "agent_p256.priv.pem", TAM_ALG_ESP256},
                {"Ed25519", "tam_ed25519.priv.pem", TAM_ALG_ED25519}};
    printf("codec benchmark: best of %d interleaved rounds of %.2f s each\n", rounds, secs);
    for (size_t i = 0; i < 2; i++) {
        setup(&f, vectors, algs[i].key, algs[i].alg);
        char label[64];
        snprintf(label, sizeof(label), "%s decode+verify QueryResponse", algs[i].name);
        compare(label, codec_verify, raw_verify, &f, rounds, secs);
        snprintf(label, sizeof(label), "%s encode+sign QueryRequest", algs[i].name);
        compare(label, codec_sign, raw_sign, &f, rounds, secs);
        tam_key_destroy(f.key);
        tam_buf_finish(&f.signed_qresp);
        tam_buf_finish(&f.tbs);
    }
    compare_resp(rounds, secs / 5);
    return 0;
}
