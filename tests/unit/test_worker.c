/*
 * tam-worker end to end: a real redis-server (redis_fixture), real tam-worker processes, jobs
 * built exactly as a gateway builds them (job.h, session.h; QueryResponses signed with the
 * agent key of the vectors, EATs from tam_eat_build), results read from the reply stream.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_fixture.h"
#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/cose.h"
#include "tam/eat.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/job.h"
#include "tam/keys.h"
#include "tam/seal.h"
#include "tam/session.h"
#include "tam/store.h"
#include "tam/suit.h"
#include "tam/teep.h"
#include "tam/tstore.h"
#include "testutil.h"

#define REPLY   "tam:{gw:test}:results"
#define MAXW    4
#define MAXJOBS 512
#define ACME    "acme"
#define OPEN    "open"
#define WAIT_MS 15000

/* The uri-scenario component of the vectors (teep_suit_uri.hex). */
#define SEG_DEVICE  "544545502d446576696365"
#define SEG_FS      "5365637572654653"
#define SEG_UUID    "8d82573a926d4754935332dc29997f74"
#define SEG_TA      "7461"
#define URI_ID_JSON "[\"" SEG_DEVICE "\",\"" SEG_FS "\",\"" SEG_UUID "\",\"" SEG_TA "\"]"

struct fx {
    struct tu_redis rs;
    char dir[128];
    char conf[192];
    char exe[PATH_MAX];
    struct tam_key *tam_p256, *tam_ed, *agent, *attester, *verifier, *manifest, *rogue;
    struct tam_tenant *acme, *open;
    pid_t pid[MAXW];
    char log[MAXW][192];
    struct tam_buf uri_env; /* teep_suit_uri.hex */
};

static struct fx F;

/* Job buffers built by a test, released at teardown. */
static struct tam_buf g_bufs[2 * 512 + 64]; /* copies: the owners may be on a stack */
static size_t g_nbufs;

/* ---- process and file helpers ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

static struct tam_key *load_vector_key(const char *name)
{
    size_t len = 0;
    char *pem = tu_load_text(name, &len);
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_from_pem(pem, len, &k), TAM_OK, "%s", name);
    tam_free(pem);
    return k;
}

static struct tam_key *new_key(const char *file, enum tam_key_type type)
{
    struct tam_key *k = NULL;
    cr_assert_eq(tam_key_generate(type, &k), TAM_OK);
    struct tam_buf pem;
    tam_buf_init(&pem, 8192);
    cr_assert_eq(tam_key_private_pem(k, &pem), TAM_OK);
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", F.dir, file);
    write_file(path, pem.data, pem.len);
    tam_buf_finish(&pem);
    return k;
}

static void find_exe(void)
{
    const char *root = getenv("TAM_BUILD_ROOT");
    if (root != NULL) {
        snprintf(F.exe, sizeof(F.exe), "%s/src/worker/tam-worker", root);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    int n2 = snprintf(F.exe, sizeof(F.exe), "%s/../../src/worker/tam-worker", self);
    cr_assert(n2 > 0 && (size_t)n2 < sizeof(F.exe));
}

static void write_config(const char *extra)
{
    char vec[4][256];
    snprintf(vec[0], sizeof(vec[0]), "%s", tu_vector_path("tam_p256.priv.pem"));
    snprintf(vec[1], sizeof(vec[1]), "%s", tu_vector_path("tam_ed25519.priv.pem"));
    snprintf(vec[2], sizeof(vec[2]), "%s", tu_vector_path("suit_example_key_p256.pub.pem"));
    snprintf(vec[3], sizeof(vec[3]), "%s", tu_vector_path("agent_p256.pub.pem"));
    char text[8192];
    int n = snprintf(text, sizeof(text),
                     "redis = %s\nlog-level = info\nclaim-idle = 1s\njob-attempts = 2\n"
                     "mem-limit = 0\nworker-batch = 256\n%s\n"
                     "[tenant " ACME "]\nenrollment = registered\n"
                     "tam-key = %s\ntam-key = %s\ntc-signer-key = %s\ndevice-key = %s\n"
                     "attester-key = %s/attester.pem\nverifier-key = %s/verifier.pem\n"
                     "manifest-key = %s/manifest.pem\nmax-pending-per-device = 4\n"
                     "[tenant " OPEN "]\nenrollment = attested\nmax-devices = 2\n"
                     "tam-key = %s\ntam-key = %s\ntc-signer-key = %s\n"
                     "attester-key = %s/attester.pem\n",
                     F.rs.addr, extra != NULL ? extra : "", vec[0], vec[1], vec[2], vec[3], F.dir,
                     F.dir, F.dir, vec[0], vec[1], vec[2], F.dir);
    cr_assert_lt(n, (int)sizeof(text));
    snprintf(F.conf, sizeof(F.conf), "%s/worker.ini", F.dir);
    write_file(F.conf, text, (size_t)n);
}

static void fx_start(const char *extra)
{
    memset(&F, 0, sizeof(F));
    /* Vectors first: a setup that fails there leaves no directory or server behind. */
    F.tam_p256 = load_vector_key("tam_p256.priv.pem");
    F.tam_ed = load_vector_key("tam_ed25519.priv.pem");
    F.agent = load_vector_key("agent_p256.priv.pem");
    snprintf(F.dir, sizeof(F.dir), "/tmp/tu-worker-XXXXXX");
    cr_assert_not_null(mkdtemp(F.dir));
    find_exe();
    F.rs.aof = true;
    tu_redis_start(&F.rs);
    F.attester = new_key("attester.pem", TAM_KEY_P256);
    F.verifier = new_key("verifier.pem", TAM_KEY_ED25519);
    F.manifest = new_key("manifest.pem", TAM_KEY_P256);
    F.rogue = new_key("rogue.pem", TAM_KEY_P256);
    F.acme = tam_tenant_create(ACME);
    F.open = tam_tenant_create(OPEN);
    F.open->enrollment = TAM_ENROLL_ATTESTED;
    size_t len = 0;
    uint8_t *env = tu_load_hex("teep_suit_uri.hex", &len);
    tam_buf_init(&F.uri_env, 1u << 20);
    cr_assert_eq(tam_buf_append(&F.uri_env, env, len), TAM_OK);
    tam_free(env);
    write_config(extra);
}

static void worker_start(int i, const char *id)
{
    snprintf(F.log[i], sizeof(F.log[i]), "%s/%s.log", F.dir, id);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(F.log[i], O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            (void)dup2(fd, 2);
            (void)close(fd);
        }
        char *argv[] = {"tam-worker", "--config", F.conf, "--worker-id", (char *)id, NULL};
        execv(F.exe, argv);
        _exit(127);
    }
    F.pid[i] = pid;
}

static int worker_stop(int i, int sig)
{
    if (F.pid[i] <= 0) {
        return -1;
    }
    (void)kill(F.pid[i], sig);
    int status = 0;
    for (int waited = 0; waited < 5000; waited += 10) {
        if (waitpid(F.pid[i], &status, WNOHANG) == F.pid[i]) {
            F.pid[i] = 0;
            return status;
        }
        sleep_ms(10);
    }
    (void)kill(F.pid[i], SIGKILL);
    (void)waitpid(F.pid[i], &status, 0);
    F.pid[i] = 0;
    return -1;
}

static void fx_stop(void)
{
    for (int i = 0; i < MAXW; i++) {
        (void)worker_stop(i, SIGKILL);
    }
    tu_redis_stop(&F.rs);
    tam_key_destroy(F.tam_p256);
    tam_key_destroy(F.tam_ed);
    tam_key_destroy(F.agent);
    tam_key_destroy(F.attester);
    tam_key_destroy(F.verifier);
    tam_key_destroy(F.manifest);
    tam_key_destroy(F.rogue);
    tam_tenant_unref(F.acme);
    tam_tenant_unref(F.open);
    tam_buf_finish(&F.uri_env);
    for (size_t i = 0; i < g_nbufs; i++) {
        tam_buf_finish(&g_bufs[i]);
    }
    g_nbufs = 0;
    if (getenv("TAM_TEST_KEEP") == NULL) { /* keep the worker logs for debugging */
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
        (void)system(cmd);
    } else {
        fprintf(stderr, "kept %s\n", F.dir);
    }
}

/* Occurrences of needle in worker i's log. */
static int log_count(int i, const char *needle)
{
    FILE *f = fopen(F.log[i], "r");
    if (f == NULL) {
        return 0;
    }
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strstr(line, needle) != NULL;
    }
    fclose(f);
    return n;
}

/* The number after the last occurrence of `key=` in worker i's log; -1: none. */
static long long log_value(int i, const char *key)
{
    FILE *f = fopen(F.log[i], "r");
    if (f == NULL) {
        return -1;
    }
    char line[4096], needle[64];
    snprintf(needle, sizeof(needle), " %s=", key);
    long long v = -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        const char *at = strstr(line, needle);
        if (at != NULL) {
            v = strtoll(at + strlen(needle), NULL, 10);
        }
    }
    fclose(f);
    return v;
}

static void setup(void)
{
    fx_start(NULL);
}

static void teardown(void)
{
    fx_stop();
}

TestSuite(worker, .init = setup, .fini = teardown);

/* ---- catalogue ---- */

static long long redis_int(redisReply *r)
{
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static void put_component(const char *tenant, const struct tam_store_component *c)
{
    struct tam_buf rec, field;
    tam_buf_init(&rec, 32u << 20);
    tam_buf_init(&field, 4096);
    cr_assert_eq(tam_store_component_encode(c, &rec), TAM_OK);
    cr_assert_eq(tam_store_component_field(&c->component, c->sequence, &field), TAM_OK);
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, tenant, "components");
    freeReplyObject(
        tu_redis_cmd(&F.rs, "HSET %s %s %b", key, (const char *)field.data, rec.data, rec.len));
    tam_key_tenant(key, tenant, "catalog_version");
    freeReplyObject(tu_redis_cmd(&F.rs, "INCR %s", key));
    tam_buf_finish(&rec);
    tam_buf_finish(&field);
}

static void copy_id(struct tam_teep_component_id *dst, const struct tam_suit_component_id *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->n = src->n;
    for (unsigned i = 0; i < src->n; i++) {
        dst->seg[i] = src->seg[i];
    }
}

/* The uri envelope of the vectors as an uploaded component; *digest its manifest digest. */
static void add_uri_envelope(const char *tenant, uint8_t digest[32])
{
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(F.uri_env.data, F.uri_env.len, &env, NULL), TAM_OK);
    struct tam_store_component c;
    memset(&c, 0, sizeof(c));
    copy_id(&c.component, &env.components[0]);
    c.has_manifest_id = true;
    copy_id(&c.manifest_id, &env.manifest_component_id);
    c.sequence = env.sequence;
    c.has_digest = true;
    memcpy(c.digest, env.digest.bytes.ptr, 32);
    c.envelope = tam_bytes_of(F.uri_env.data, F.uri_env.len);
    put_component(tenant, &c);
    if (digest != NULL) {
        memcpy(digest, c.digest, 32);
    }
}

static void set_policy(const char *tenant, const char *json)
{
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, tenant, "policy");
    freeReplyObject(tu_redis_cmd(&F.rs, "SET %s %s", key, json));
    tam_key_tenant(key, tenant, "catalog_version");
    freeReplyObject(tu_redis_cmd(&F.rs, "INCR %s", key));
}

static void install_uri_policy(const char *tenant)
{
    set_policy(tenant, "{\"rules\": [{\"install\": [{\"component_id\": " URI_ID_JSON "}]}]}");
}

/* ---- jobs, built like the gateway builds them ---- */

enum nonce_mode { NONCE_CHALLENGE, NONCE_TOKEN, NONCE_WRONG };

struct qopts {
    const char *tenant;
    bool unverified;    /* the gateway could not verify (unknown device) */
    bool no_device;     /* the gateway does not know the device */
    const uint8_t *kid; /* device kid (default: the agent key's) */
    bool attest;        /* attach an EAT */
    const struct tam_key *eat_key;
    enum nonce_mode nonce;
    uint32_t drop_claims;   /* TAM_EAT_HAS_* bits to leave out */
    bool cnf_cose_key;      /* cnf as COSE_Key (learnable) instead of {3: kid} */
    const uint8_t *cnf_kid; /* cnf kid override */
    int64_t exp;            /* 0: now + 10 min */
    const uint8_t *hwmodel; /* default "tamgate-model-01" */
    bool lists_uri;         /* tc-list names the uri component */
    bool lists_old;         /* tc-list names the component ["old"] */
    bool error_suites;      /* an Error ERR_UNSUPPORTED_CIPHER_SUITES instead */
};

struct built {
    uint8_t id[TAM_JOB_ID_LEN];
    uint8_t token[TAM_TOKEN_LEN];
    struct tam_buf job;
};

static const uint8_t ueid17[17] = {0x01, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                   0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
static const uint8_t oui[3] = {0x89, 0x48, 0x23};
static const uint8_t model[16] = "tamgate-model-01";
static const uint8_t suit_ref[4] = {0x82, 0x61, 0x75, 0x40};

static void build_eat(const struct qopts *o, const struct tam_sess *s, struct tam_buf *out)
{
    struct tam_eat_claims c;
    memset(&c, 0, sizeof(c));
    int64_t now = (int64_t)(now_ms() / 1000);
    c.present = TAM_EAT_HAS_IAT | TAM_EAT_HAS_EXP | TAM_EAT_HAS_CNF | TAM_EAT_HAS_NONCE |
                TAM_EAT_HAS_UEID | TAM_EAT_HAS_OEMID | TAM_EAT_HAS_HWMODEL | TAM_EAT_HAS_HWVERSION |
                TAM_EAT_HAS_PROFILE | TAM_EAT_HAS_MANIFESTS;
    c.present &= ~o->drop_claims;
    c.iat = now - 1;
    c.exp = o->exp != 0 ? o->exp : now + 600;
    struct tam_buf cose_key;
    tam_buf_init(&cose_key, 1024);
    if (o->cnf_cose_key) {
        cr_assert_eq(tam_key_cose_public(F.agent, &cose_key), TAM_OK);
        c.cnf_form = TAM_EAT_CNF_COSE_KEY;
        c.cnf_key = tam_bytes_of(cose_key.data, cose_key.len);
    } else {
        c.cnf_form = TAM_EAT_CNF_KID;
        memcpy(c.cnf_kid,
               o->cnf_kid != NULL ? o->cnf_kid : (o->kid != NULL ? o->kid : tam_key_kid(F.agent)),
               TAM_KID_LEN);
        c.cnf_kid_len = TAM_KID_LEN;
    }
    static const uint8_t wrong[16] = {0xee};
    if (o->nonce == NONCE_CHALLENGE) {
        c.nonce = tam_bytes_of(s->challenge, s->challenge_len);
    } else if (o->nonce == NONCE_TOKEN) {
        c.nonce = tam_bytes_of(s->token, TAM_TOKEN_LEN);
    } else {
        c.nonce = tam_bytes_of(wrong, sizeof(wrong));
    }
    c.ueid = tam_bytes_of(ueid17, sizeof(ueid17));
    c.oemid.id = tam_bytes_of(oui, sizeof(oui));
    c.hwmodel = tam_bytes_of(o->hwmodel != NULL ? o->hwmodel : model, sizeof(model));
    c.hwversion = tam_bytes_of("1.3.4", 5);
    c.profile = tam_bytes_of(TAM_EAT_PROFILE_TEEP, strlen(TAM_EAT_PROFILE_TEEP));
    c.n_manifests = 1;
    c.manifests[0].content_format = 60;
    c.manifests[0].body = tam_bytes_of(suit_ref, sizeof(suit_ref));
    const struct tam_key *k = o->eat_key != NULL ? o->eat_key : F.attester;
    cr_assert_eq(tam_eat_build(&c, k, 0, out), TAM_OK);
    tam_buf_finish(&cose_key);
}

/* One tc-list entry: {0: id, 3: <<[-16, digest]>>}. */
static void tc_entry(struct tam_teep_tc *tc, const char *const *segs, unsigned n,
                     uint8_t digest_enc[36])
{
    memset(tc, 0, sizeof(*tc));
    for (unsigned i = 0; i < n; i++) {
        tc->id.seg[i] = tam_bytes_of(segs[i], strlen(segs[i]));
    }
    tc->id.n = n;
    digest_enc[0] = 0x82;
    digest_enc[1] = 0x2f;
    digest_enc[2] = 0x58;
    digest_enc[3] = 0x20;
    memset(digest_enc + 4, 0x77, 32);
    tc->has_image_digest = true;
    tc->image_digest = tam_bytes_of(digest_enc, 36);
}

static void sign_agent(const struct tam_teep_msg *m, struct tam_buf *out)
{
    struct tam_buf payload;
    tam_buf_init(&payload, 1u << 20);
    cr_assert_eq(tam_teep_encode(m, TAM_TEEP_RFC, &payload), TAM_OK);
    struct tam_bytes p = tam_bytes_of(payload.data, payload.len);
    struct tam_cose_sign_opts opts = {.tagged = true, .include_kid = true};
    cr_assert_eq(tam_cose_sign1(out, F.agent, TAM_ALG_ESP256, &p, &opts), TAM_OK);
    tam_buf_finish(&payload);
}

static void make_job(const struct qopts *o, enum tam_job_kind kind, const struct tam_buf *msg,
                     const struct tam_buf *sess, struct built *b)
{
    struct tam_job job;
    memset(&job, 0, sizeof(job));
    cr_assert_eq(tam_random(job.id, sizeof(job.id)), TAM_OK);
    memcpy(b->id, job.id, sizeof(job.id));
    job.kind = kind;
    snprintf(job.tenant, sizeof(job.tenant), "%s", o->tenant != NULL ? o->tenant : ACME);
    snprintf(job.reply_to, sizeof(job.reply_to), "%s", REPLY);
    job.received_ms = now_ms();
    job.verified = !o->unverified;
    job.has_device = !o->no_device;
    memcpy(job.device_kid, o->kid != NULL ? o->kid : tam_key_kid(F.agent), TAM_KID_LEN);
    job.message = tam_bytes_of(msg->data, msg->len);
    job.session = tam_bytes_of(sess->data, sess->len);
    tam_buf_init(&b->job, 8u << 20);
    cr_assert_eq(tam_job_encode(&job, &b->job), TAM_OK);
    cr_assert_lt(g_nbufs, sizeof(g_bufs) / sizeof(g_bufs[0]));
    g_bufs[g_nbufs++] = b->job;
}

static void query_job(const struct qopts *o, struct built *b)
{
    struct tam_tenant *other = NULL;
    struct tam_tenant *t = F.acme;
    if (o->tenant != NULL && strcmp(o->tenant, OPEN) == 0) {
        t = F.open;
    } else if (o->tenant != NULL && strcmp(o->tenant, ACME) != 0) {
        other = tam_tenant_create(o->tenant);
        t = other;
    }
    uint8_t rand[TAM_TOKEN_LEN + TAM_CHALLENGE_MAX];
    cr_assert_eq(tam_random(rand, sizeof(rand)), TAM_OK);
    struct tam_sess s;
    tam_sess_new_query(&s, t, rand, now_ms());
    memcpy(b->token, s.token, TAM_TOKEN_LEN);
    struct tam_buf sess, eat, msg;
    tam_buf_init(&sess, 4096);
    tam_buf_init(&eat, 1u << 20);
    tam_buf_init(&msg, 4u << 20);
    cr_assert_eq(tam_sess_encode(&s, &sess), TAM_OK);
    struct tam_teep_msg m;
    static const char *const agent_id[] = {"agent"};
    static const char uuid[] = "\x8d\x82\x57\x3a\x92\x6d\x47\x54\x93\x53\x32\xdc\x29"
                               "\x99\x7f\x74";
    static const char *const uri_id[] = {"TEEP-Device", "SecureFS", uuid, "ta"};
    static const char *const old_id[] = {"old"};
    struct tam_teep_tc tcs[3];
    uint8_t d0[36], d1[36], d2[36];
    if (o->error_suites) {
        tam_teep_msg_init(&m, TAM_TEEP_ERROR);
        m.has_token = true;
        m.token = tam_bytes_of(s.token, TAM_TOKEN_LEN);
        m.has_err_code = true;
        m.err_code = TAM_TEEP_ERR_UNSUPPORTED_CIPHER_SUITES;
        m.has_supported_suites = true;
        m.supported_suites.n = 1;
        tam_teep_suite_single(&m.supported_suites.v[0], TAM_TEEP_COSE_SIGN1, TAM_ALG_ED25519);
    } else {
        tam_teep_msg_init(&m, TAM_TEEP_QUERY_RESPONSE);
        m.has_token = true;
        m.token = tam_bytes_of(s.token, TAM_TOKEN_LEN);
        tc_entry(&tcs[0], agent_id, 1, d0);
        tc_entry(&tcs[1], uri_id, 4, d1);
        tcs[1].id.seg[2].len = 16;
        m.has_tc_list = true;
        m.n_tc_list = 1;
        if (o->lists_uri) {
            m.n_tc_list++;
        }
        if (o->lists_old) {
            tc_entry(&tcs[m.n_tc_list++], old_id, 1, d2);
        }
        m.tc_list = tcs;
        if (o->attest) {
            build_eat(o, &s, &eat);
            m.has_attestation_payload = true;
            m.attestation_payload = tam_bytes_of(eat.data, eat.len);
        }
    }
    sign_agent(&m, &msg);
    make_job(o, TAM_JOB_QUERY_RESPONSE, &msg, &sess, b);
    tam_buf_finish(&sess);
    tam_buf_finish(&eat);
    tam_buf_finish(&msg);
    tam_tenant_unref(other);
}

static void xadd(const struct built *b)
{
    redisReply *r = tu_redis_cmd(&F.rs, "XADD %s * job %b", TAM_KEY_JOBS, b->job.data, b->job.len);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s", r->str);
    freeReplyObject(r);
}

/* ---- results ---- */

/* Results for job id on the reply stream so far (copies into out[0..max)). */
static int results_for(const uint8_t *id, struct tam_buf *out, int max)
{
    redisReply *r = tu_redis_cmd(&F.rs, "XRANGE %s - +", REPLY);
    int n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "result") != 0) {
                continue;
            }
            struct tam_job_result res;
            const uint8_t *p = (const uint8_t *)f->element[k + 1]->str;
            size_t len = f->element[k + 1]->len;
            if (tam_job_result_decode(p, len, &res, NULL) == TAM_OK &&
                memcmp(res.id, id, TAM_JOB_ID_LEN) == 0) {
                if (n < max) {
                    tam_buf_init(&out[n], 64u << 20);
                    cr_assert_eq(tam_buf_append(&out[n], p, len), TAM_OK);
                }
                n++;
            }
        }
    }
    freeReplyObject(r);
    return n;
}

static void wait_result(const uint8_t *id, struct tam_buf *out)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        if (results_for(id, out, 1) > 0) {
            return;
        }
        sleep_ms(10);
    }
    cr_assert_fail("no result within %d ms", WAIT_MS);
}

struct answer {
    struct tam_buf raw;
    struct tam_job_result r;
    struct tam_teep_msg m; /* decoded body (200) */
    struct tam_arena arena;
    struct tam_cose_msg cose;
};

/* Waits for the job's result; for a 200, verifies and decodes the body with the TAM key. */
static void answer_of(const struct built *b, const struct tam_key *tam_key, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    wait_result(b->id, &a->raw);
    cr_assert_eq(tam_job_result_decode(a->raw.data, a->raw.len, &a->r, NULL), TAM_OK);
    tam_arena_init(&a->arena, 4096, 64u << 20);
    if (a->r.status != 200) {
        return;
    }
    cr_assert_eq(tam_cose_parse(a->r.body.ptr, a->r.body.len, &a->cose, NULL), TAM_OK);
    cr_assert_eq(tam_cose_verify_any(&a->cose, tam_key != NULL ? tam_key : F.tam_p256, NULL),
                 TAM_OK);
    const char *why = NULL;
    cr_assert_eq(tam_teep_decode(a->cose.payload.ptr, a->cose.payload.len, TAM_TEEP_RFC, &a->arena,
                                 &a->m, &why),
                 TAM_OK, "%s", why);
}

static void answer_finish(struct answer *a)
{
    tam_buf_finish(&a->raw);
    tam_arena_finish(&a->arena);
}

static bool outcome_is(const struct answer *a, const char *o)
{
    return a->r.outcome.len == strlen(o) && memcmp(a->r.outcome.ptr, o, a->r.outcome.len) == 0;
}

/* ---- device state ---- */

static redisReply *device_field(const char *tenant, const uint8_t *kid, const char *field)
{
    char key[TAM_KEY_MAX];
    tam_key_device(key, tenant, kid, NULL);
    return tu_redis_cmd(&F.rs, "HGET %s %s", key, field);
}

static uint32_t installed_count(const char *tenant, const uint8_t *kid)
{
    redisReply *r = device_field(tenant, kid, "installed");
    uint32_t n = 0;
    if (r->type == REDIS_REPLY_STRING) {
        struct tam_arena a;
        tam_arena_init(&a, 4096, 1u << 20);
        struct tam_plan_installed *v = NULL;
        cr_assert_eq(tam_store_installed_decode((const uint8_t *)r->str, r->len, &a, &v, &n, NULL),
                     TAM_OK);
        tam_arena_finish(&a);
    }
    freeReplyObject(r);
    return n;
}

static bool device_status_is(const char *tenant, const uint8_t *kid, const char *status)
{
    redisReply *r = device_field(tenant, kid, "status");
    bool ok = r->type == REDIS_REPLY_STRING && strcmp(r->str, status) == 0;
    freeReplyObject(r);
    return ok;
}

static long long history_len(const char *tenant, const uint8_t *kid)
{
    char key[TAM_KEY_MAX];
    tam_key_device(key, tenant, kid, "hist");
    return redis_int(tu_redis_cmd(&F.rs, "LLEN %s", key));
}

/* The Success a gateway turns into a REPORT job: session record as stored by the worker. */
enum report_kind { REPORT_SUCCESS, REPORT_BAD_NONCE, REPORT_FAILED };

/* Success (or, REPORT_FAILED, Error ERR_MANIFEST_PROCESSING_FAILED) with one SUIT report. */
static void report_job(const struct qopts *o, const uint8_t *token, const uint8_t *digest,
                       enum report_kind kind, struct built *b)
{
    char skey[TAM_KEY_MAX];
    tam_key_session(skey, token, TAM_TOKEN_LEN);
    redisReply *r = tu_redis_cmd(&F.rs, "GET %s", skey);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "no session for the Update token");
    struct tam_buf sess, rep, msg;
    tam_buf_init(&sess, 4096);
    tam_buf_init(&rep, 4096);
    tam_buf_init(&msg, 1u << 20);
    cr_assert_eq(tam_buf_append(&sess, r->str, r->len), TAM_OK);
    freeReplyObject(r);
    struct tam_suit_report sr;
    memset(&sr, 0, sizeof(sr));
    sr.reference_uri = tam_bytes_of("", 0);
    sr.manifest_digest.alg = TAM_ALG_SHA256;
    sr.manifest_digest.bytes = tam_bytes_of(digest, 32);
    static const uint8_t other[TAM_TOKEN_LEN] = {0x0b, 0xad};
    sr.has_nonce = true;
    sr.nonce = tam_bytes_of(kind == REPORT_BAD_NONCE ? other : token, TAM_TOKEN_LEN);
    sr.success = kind != REPORT_FAILED;
    if (kind == REPORT_FAILED) {
        sr.result_code = 1;
        sr.result_record.section = 20; /* install */
        sr.result_reason = TAM_SUIT_REASON_OPERATION_FAILED;
    }
    cr_assert_eq(tam_suit_report_encode(&sr, &rep), TAM_OK);
    struct tam_bytes reports[1] = {tam_bytes_of(rep.data, rep.len)};
    struct tam_teep_msg m;
    tam_teep_msg_init(&m, kind == REPORT_FAILED ? TAM_TEEP_ERROR : TAM_TEEP_SUCCESS);
    if (kind == REPORT_FAILED) {
        m.has_err_code = true;
        m.err_code = TAM_TEEP_ERR_MANIFEST_PROCESSING_FAILED;
    }
    m.has_token = true;
    m.token = tam_bytes_of(token, TAM_TOKEN_LEN);
    m.has_suit_reports = true;
    m.n_suit_reports = 1;
    m.suit_reports = reports;
    sign_agent(&m, &msg);
    make_job(o, TAM_JOB_REPORT, &msg, &sess, b);
    memcpy(b->token, token, TAM_TOKEN_LEN);
    tam_buf_finish(&sess);
    tam_buf_finish(&rep);
    tam_buf_finish(&msg);
}

static void success_job(const struct qopts *o, const uint8_t *token, const uint8_t *digest,
                        struct built *b)
{
    report_job(o, token, digest, REPORT_SUCCESS, b);
}

/* ================================================================ tests */

Test(worker, full_exchange_installs_once)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    worker_start(0, "w1");

    struct built q = {0};
    struct qopts o = {.attest = true};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    cr_assert_eq(a.r.status, 200);
    cr_assert(outcome_is(&a, "update"));
    cr_assert_eq(a.m.type, TAM_TEEP_UPDATE);
    cr_assert_not(a.m.has_err_code);
    cr_assert_eq(a.m.n_manifest_list, 1);
    /* Shipped byte-exact. */
    cr_assert_eq(a.m.manifest_list[0].len, F.uri_env.len);
    cr_assert_eq(memcmp(a.m.manifest_list[0].ptr, F.uri_env.data, F.uri_env.len), 0);
    cr_assert_eq(a.m.token.len, TAM_TOKEN_LEN);
    uint8_t tok[TAM_TOKEN_LEN];
    memcpy(tok, a.m.token.ptr, TAM_TOKEN_LEN);
    cr_assert(device_status_is(ACME, tam_key_kid(F.agent), "attested"));
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 0);

    /* Pending token and session for the Update. */
    char key[TAM_KEY_MAX];
    tam_key_device(key, ACME, tam_key_kid(F.agent), "pending");
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "ZCARD %s", key)), 1);

    struct built s = {0};
    struct qopts so = {0};
    success_job(&so, tok, digest, &s);
    xadd(&s);
    struct answer sa;
    answer_of(&s, NULL, &sa);
    cr_assert_eq(sa.r.status, 204);
    cr_assert(outcome_is(&sa, "recorded"), "%.*s", (int)sa.r.outcome.len, sa.r.outcome.ptr);
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 1);
    cr_assert_eq(history_len(ACME, tam_key_kid(F.agent)), 1);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "ZCARD %s", key)), 0);

    /* The next session of the device, which now lists the TC: nothing to do. */
    struct built q2 = {0};
    struct qopts o2 = {.attest = true, .lists_uri = true};
    query_job(&o2, &q2);
    xadd(&q2);
    struct answer a2;
    answer_of(&q2, NULL, &a2);
    cr_assert_eq(a2.r.status, 204);
    cr_assert(outcome_is(&a2, "nothing"));

    /* The job stream is drained and nothing is pending. */
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "XLEN %s", TAM_KEY_JOBS)), 0);
    cr_assert_eq(worker_stop(0, SIGTERM), 0, "SIGTERM exits 0");
    answer_finish(&a);
    answer_finish(&sa);
    answer_finish(&a2);
}

/*
 * Two Updates of one device answered in one batch: the worker sends the first attempt of
 * every report apply in one pipeline, computed from the device record it prefetched, so
 * the second finds the installed list changed by the first (compare-and-set conflict) and
 * must recompute against a fresh read. Both are recorded at once, without a retry of the
 * job, and the TC is listed once.
 */
/*
 * Worker 0 answers two QueryResponses of the agent's device with an Update each and is
 * stopped; then the two Success reports (s) are queued for its next start.
 */
static void two_updates_then_reports_queued(const uint8_t digest[32], struct built s[2])
{
    static struct built q[2];
    uint8_t tok[2][TAM_TOKEN_LEN];
    for (int i = 0; i < 2; i++) {
        struct qopts o = {.attest = true};
        query_job(&o, &q[i]);
        xadd(&q[i]);
        struct answer a;
        answer_of(&q[i], NULL, &a);
        cr_assert(outcome_is(&a, "update"), "session %d", i);
        memcpy(tok[i], a.m.token.ptr, TAM_TOKEN_LEN);
        answer_finish(&a);
    }
    cr_assert_eq(worker_stop(0, SIGTERM), 0);
    for (int i = 0; i < 2; i++) {
        struct qopts so = {0};
        success_job(&so, tok[i], digest, &s[i]);
        xadd(&s[i]);
    }
}

Test(worker, reports_of_one_device_in_one_batch_are_applied_in_turn)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    static struct built s[2];
    two_updates_then_reports_queued(digest, s); /* both reports in one batch */
    worker_start(0, "w1");
    for (int i = 0; i < 2; i++) {
        struct answer a;
        answer_of(&s[i], NULL, &a);
        cr_assert_eq(a.r.status, 204);
        cr_assert(outcome_is(&a, "recorded"), "report %d: %.*s", i, (int)a.r.outcome.len,
                  a.r.outcome.ptr);
        answer_finish(&a);
    }
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 1);
    cr_assert_eq(history_len(ACME, tam_key_kid(F.agent)), 2);
    cr_assert_eq(log_count(0, "outcome=retry"), 0, "no report waited for a job retry");
}

Test(worker, same_job_twice_gives_one_install_and_identical_results)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    struct built q = {0};
    struct qopts o = {.attest = true};
    query_job(&o, &q);
    xadd(&q);
    xadd(&q);
    struct tam_buf res[4];
    for (int waited = 0; results_for(q.id, res, 0) < 2 && waited < WAIT_MS; waited += 10) {
        sleep_ms(10);
    }
    cr_assert_eq(results_for(q.id, res, 4), 2);
    cr_assert_eq(res[0].len, res[1].len);
    cr_assert_eq(memcmp(res[0].data, res[1].data, res[0].len), 0, "two different Updates");

    struct answer a;
    answer_of(&q, NULL, &a);
    uint8_t tok[TAM_TOKEN_LEN];
    memcpy(tok, a.m.token.ptr, TAM_TOKEN_LEN);
    struct built s = {0};
    struct qopts so = {0};
    success_job(&so, tok, digest, &s);
    xadd(&s);
    xadd(&s);
    struct tam_buf sres[4];
    for (int waited = 0; results_for(s.id, sres, 0) < 2 && waited < WAIT_MS; waited += 10) {
        sleep_ms(10);
    }
    cr_assert_eq(results_for(s.id, sres, 4), 2);
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 1);
    cr_assert_eq(history_len(ACME, tam_key_kid(F.agent)), 1, "one install recorded");
    cr_assert_geq(log_count(0, "outcome=duplicate"), 2);
    for (int i = 0; i < 2; i++) {
        tam_buf_finish(&res[i]);
        tam_buf_finish(&sres[i]);
    }
    answer_finish(&a);
}

/* Distinct registered devices (the gateway verified them, so no key is needed here). */
static void device_kid(int i, uint8_t kid[32])
{
    memset(kid, 0, 32);
    kid[0] = 0xd0;
    kid[30] = (uint8_t)(i >> 8);
    kid[31] = (uint8_t)i;
}

static int all_answered(struct built *b, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        done += results_for(b[i].id, NULL, 0) > 0;
    }
    return done;
}

static void wait_all(struct built *b, int n)
{
    for (int waited = 0; waited < 4 * WAIT_MS; waited += 50) {
        if (all_answered(b, n) == n) {
            return;
        }
        sleep_ms(50);
    }
    cr_assert_fail("only %d of %d jobs answered", all_answered(b, n), n);
}

/* Every job has results, and all results of one job are identical. */
static void check_consistent(struct built *b, int n)
{
    for (int i = 0; i < n; i++) {
        struct tam_buf r[8];
        int k = results_for(b[i].id, r, 8);
        cr_assert_geq(k, 1);
        for (int x = 1; x < k && x < 8; x++) {
            cr_assert_eq(r[x].len, r[0].len);
            cr_assert_eq(memcmp(r[x].data, r[0].data, r[0].len), 0, "job %d answered twice", i);
        }
        for (int x = 0; x < k && x < 8; x++) {
            tam_buf_finish(&r[x]);
        }
    }
}

static struct built g_q[MAXJOBS], g_s[MAXJOBS];

/* QueryResponse jobs with EATs from n distinct devices (kids[i]), queued in order (g_q). */
static void queue_queries(int n, uint8_t kids[][32])
{
    for (int i = 0; i < n; i++) {
        device_kid(i, kids[i]);
        struct qopts o = {.attest = true, .kid = kids[i]};
        query_job(&o, &g_q[i]);
        xadd(&g_q[i]);
    }
}

Test(worker, two_workers_never_process_one_job_twice)
{
    add_uri_envelope(ACME, NULL);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    worker_start(1, "w2");
    int n = 60;
    uint8_t kids[MAXJOBS][32];
    queue_queries(n, kids);
    wait_all(g_q, n);
    for (int i = 0; i < n; i++) {
        struct tam_buf r[2];
        cr_assert_eq(results_for(g_q[i].id, r, 2), 1, "job %d", i);
        tam_buf_finish(&r[0]);
    }
    int a = log_count(0, "event=job "), b = log_count(1, "event=job ");
    cr_assert_eq(a + b, n, "%d + %d", a, b);
    cr_assert_eq(log_count(0, "outcome=duplicate") + log_count(1, "outcome=duplicate"), 0);
}

static long long reply_len(void)
{
    return redis_int(tu_redis_cmd(&F.rs, "XLEN %s", REPLY));
}

/* Kills worker i with SIGKILL as soon as it has answered its first job. */
static void kill_mid_batch(int i, long long before)
{
    for (int waited = 0; waited < WAIT_MS && reply_len() <= before; waited += 1) {
        sleep_ms(1);
    }
    (void)worker_stop(i, SIGKILL);
}

Test(worker, kill9_mid_batch_is_reclaimed_and_installs_once)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    int n = 150;
    static uint8_t kids[MAXJOBS][32];
    queue_queries(n, kids);
    worker_start(0, "victim");
    kill_mid_batch(0, 0);
    worker_start(1, "rescuer");
    wait_all(g_q, n);
    check_consistent(g_q, n);

    /* Phase 2: the Successes, with another kill in the middle. */
    (void)worker_stop(1, SIGTERM);
    for (int i = 0; i < n; i++) {
        struct answer a;
        answer_of(&g_q[i], NULL, &a);
        cr_assert(outcome_is(&a, "update"));
        struct qopts so = {.kid = kids[i]};
        success_job(&so, a.m.token.ptr, digest, &g_s[i]);
        xadd(&g_s[i]);
        answer_finish(&a);
    }
    long long before = reply_len();
    worker_start(2, "victim2");
    kill_mid_batch(2, before);
    worker_start(3, "rescuer2");
    wait_all(g_s, n);
    check_consistent(g_s, n);
    cr_assert_gt(log_count(1, "event=job_claimed") + log_count(3, "event=job_claimed"), 0,
                 "the rescuers took over pending jobs");
    for (int i = 0; i < n; i++) {
        cr_assert_eq(installed_count(ACME, kids[i]), 1, "device %d", i);
        cr_assert_eq(history_len(ACME, kids[i]), 1, "device %d: one install recorded", i);
    }
    redisReply *p = tu_redis_cmd(&F.rs, "XPENDING %s %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP);
    cr_assert_eq(p->element[0]->integer, 0);
    freeReplyObject(p);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "XLEN %s", TAM_KEY_JOBS_DEAD)), 0);
}

/*
 * The worker reads its next batch while it processes the current one (queue.c read-ahead).
 * SIGTERM in the middle must leave nothing stranded in its pending list: every entry Redis
 * handed it, read-ahead included, is answered and acknowledged before it exits, and every
 * job is either answered once or still queued for the next worker.
 */
/* The configuration with worker-batch = n (< 1000) instead of the fixture's 256. */
static void small_batches(int n)
{
    write_config(NULL);
    FILE *f = fopen(F.conf, "r");
    cr_assert_not_null(f);
    static char text[8192];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    char *at = strstr(text, "worker-batch = 256");
    cr_assert_not_null(at);
    char repl[19];
    snprintf(repl, sizeof(repl), "worker-batch = %3d", n);
    memcpy(at, repl, 18);
    write_file(F.conf, text, len);
}

Test(worker, sigterm_finishes_the_jobs_the_read_ahead_took)
{
    add_uri_envelope(ACME, NULL);
    install_uri_policy(ACME);
    small_batches(2); /* the read-ahead has work to take */
    int n = 40;
    static uint8_t kids[MAXJOBS][32];
    queue_queries(n, kids);
    worker_start(0, "w");
    for (int waited = 0; waited < WAIT_MS && reply_len() < 3; waited++) {
        sleep_ms(1);
    }
    cr_assert_eq(worker_stop(0, SIGTERM), 0, "SIGTERM exits 0");
    redisReply *p = tu_redis_cmd(&F.rs, "XPENDING %s %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP);
    cr_assert_eq(p->element[0]->integer, 0, "entries left in the worker's pending list");
    freeReplyObject(p);
    long long answered = reply_len();
    long long queued = redis_int(tu_redis_cmd(&F.rs, "XLEN %s", TAM_KEY_JOBS));
    cr_assert_geq(answered, 3);
    cr_assert_eq(answered + queued, n, "%lld answered + %lld queued", answered, queued);
    for (int i = 0; i < n; i++) {
        struct tam_buf r[2];
        int k = results_for(g_q[i].id, r, 2);
        cr_assert_leq(k, 1, "job %d answered twice", i);
        if (k == 1) {
            tam_buf_finish(&r[0]);
        }
    }
    cr_assert_eq(log_count(0, "event=worker_stop"), 1);
}

/*
 * Batches of one job: each commit goes out behind the next batch's prefetch and is read while
 * that batch runs. The two reports of one device then land in consecutive batches, the
 * second read before the first one's commit; both must still be recorded once each.
 */
Test(worker, consecutive_batches_overlap_look_ahead_and_stay_consistent)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    small_batches(1);
    worker_start(0, "w1");
    static struct built s[2];
    two_updates_then_reports_queued(digest, s);
    int n = 30;
    static uint8_t kids[MAXJOBS][32];
    queue_queries(n, kids);
    worker_start(0, "w1");
    for (int i = 0; i < 2; i++) {
        struct answer a;
        answer_of(&s[i], NULL, &a);
        cr_assert(outcome_is(&a, "recorded"), "report %d: %.*s", i, (int)a.r.outcome.len,
                  a.r.outcome.ptr);
        answer_finish(&a);
    }
    wait_all(g_q, n);
    check_consistent(g_q, n);
    cr_assert_eq(worker_stop(0, SIGTERM), 0);
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 1);
    cr_assert_eq(history_len(ACME, tam_key_kid(F.agent)), 2);
    for (int i = 0; i < n; i++) {
        cr_assert(device_status_is(ACME, kids[i], "attested"), "device %d", i);
    }
    cr_assert_eq(log_count(0, "outcome=retry"), 0);
    redisReply *p = tu_redis_cmd(&F.rs, "XPENDING %s %s", TAM_KEY_JOBS, TAM_KEY_JOBS_GROUP);
    cr_assert_eq(p->element[0]->integer, 0, "every entry acknowledged");
    freeReplyObject(p);
    cr_assert_gt(log_value(0, "overlapped"), 0, "no commit went out behind a prefetch");
    cr_assert_gt(log_value(0, "looked_ahead"), 0, "no pass was prefetched while one ran");
    cr_assert_eq(log_value(0, "failed"), 0);
}

Test(worker, redis_restart_with_aof_loses_no_job_or_state)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    struct built q = {0};
    struct qopts o = {.attest = true};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    struct built s = {0};
    struct qopts so = {0};
    success_job(&so, a.m.token.ptr, digest, &s);
    (void)worker_stop(0, SIGTERM);

    /* A job queued while no worker runs survives a Redis restart, and so does device state. */
    xadd(&s);
    tu_redis_restart(&F.rs);
    worker_start(1, "w2");
    struct answer sa;
    answer_of(&s, NULL, &sa);
    cr_assert(outcome_is(&sa, "recorded"));
    tu_redis_restart(&F.rs);
    cr_assert_eq(installed_count(ACME, tam_key_kid(F.agent)), 1);
    cr_assert(device_status_is(ACME, tam_key_kid(F.agent), "attested"));

    /* The worker reconnects by itself after the restart and keeps working. */
    struct built q2 = {0};
    struct qopts o2 = {.attest = true, .lists_uri = true};
    query_job(&o2, &q2);
    xadd(&q2);
    struct answer a2;
    answer_of(&q2, NULL, &a2);
    cr_assert(outcome_is(&a2, "nothing"));
    answer_finish(&a);
    answer_finish(&sa);
    answer_finish(&a2);
}

Test(worker, poison_job_lands_in_dead_letter_stream)
{
    worker_start(0, "w1");
    redisReply *r = tu_redis_cmd(&F.rs, "XADD %s * job %b", TAM_KEY_JOBS, "\xff\x00garbage", 9);
    freeReplyObject(r);
    long long dead = 0;
    for (int waited = 0; waited < WAIT_MS && dead == 0; waited += 50) {
        sleep_ms(50);
        dead = redis_int(tu_redis_cmd(&F.rs, "XLEN %s", TAM_KEY_JOBS_DEAD));
    }
    cr_assert_eq(dead, 1);
    r = tu_redis_cmd(&F.rs, "XRANGE %s - +", TAM_KEY_JOBS_DEAD);
    redisReply *f = r->element[0]->element[1];
    bool found_reason = false, found_count = false;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        found_reason |= strcmp(f->element[i]->str, "reason") == 0;
        found_count |= strcmp(f->element[i]->str, "deliveries") == 0 &&
                       strcmp(f->element[i + 1]->str, "3") == 0;
    }
    freeReplyObject(r);
    cr_assert(found_reason && found_count);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "XLEN %s", TAM_KEY_JOBS)), 0);
    cr_assert_eq(log_count(0, "event=job_dead"), 1);
}

/* ---- attestation matrix ---- */

static void expect_rejected(const struct qopts *o, const char *label)
{
    struct built q = {0};
    query_job(o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    cr_assert_eq(a.r.status, 200, "%s", label);
    cr_assert(outcome_is(&a, "attestation-failed"), "%s: %.*s", label, (int)a.r.outcome.len,
              a.r.outcome.ptr);
    cr_assert(a.m.has_err_code, "%s", label);
    cr_assert_eq(a.m.err_code, TAM_TEEP_ERR_ATTESTATION_REQUIRED, "%s", label);
    cr_assert_not(a.m.has_manifest_list, "%s", label);
    const uint8_t *kid = o->kid != NULL ? o->kid : tam_key_kid(F.agent);
    cr_assert(device_status_is(ACME, kid, "attestation_failed"), "%s", label);
    cr_assert_eq(installed_count(ACME, kid), 0, "%s", label);
    char skey[TAM_KEY_MAX];
    tam_key_device(skey, ACME, kid, "pending");
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "ZCARD %s", skey)), 0, "%s: no Update", label);
    answer_finish(&a);
}

Test(worker, attestation_matrix)
{
    add_uri_envelope(ACME, NULL);
    set_policy(ACME, "{\"rules\": [{\"install\": [{\"component_id\": " URI_ID_JSON "}]}],"
                     " \"attestation\": {\"hwmodels\": [\"74616d676174652d6d6f64656c2d3031\"]}}");
    worker_start(0, "w1");
    uint8_t kids[8][32];
    for (int i = 0; i < 8; i++) {
        device_kid(100 + i, kids[i]);
    }
    static const uint8_t other_model[16] = "other-model-0002";
    uint8_t other_kid[32];
    memset(other_kid, 0x42, 32);
    int64_t past = (int64_t)(now_ms() / 1000) - 3600;
    struct qopts cases[] = {
        {.attest = true, .kid = kids[0], .nonce = NONCE_WRONG},
        {.attest = true, .kid = kids[1], .drop_claims = TAM_EAT_HAS_HWVERSION},
        {.attest = true, .kid = kids[2], .eat_key = F.rogue},
        {.attest = true, .kid = kids[3], .cnf_kid = other_kid},
        {.attest = true, .kid = kids[4], .eat_key = F.verifier, .nonce = NONCE_TOKEN, .exp = past},
        {.attest = true, .kid = kids[5], .hwmodel = other_model},
        {.attest = false, .kid = kids[6]},
    };
    const char *labels[] = {"wrong nonce",  "missing claim", "wrong attester key",
                            "cnf mismatch", "expired AR",    "disallowed hwmodel",
                            "no EAT"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (i == 6) {
            /* No attestation-payload at all is a missing requested item: err-code too. */
            struct built q = {0};
            query_job(&cases[i], &q);
            xadd(&q);
            struct answer a;
            answer_of(&q, NULL, &a);
            cr_assert(outcome_is(&a, "missing-item"));
            cr_assert_eq(a.m.err_code, TAM_TEEP_ERR_PERMANENT_ERROR);
            cr_assert_eq(installed_count(ACME, kids[6]), 0);
            answer_finish(&a);
            continue;
        }
        expect_rejected(&cases[i], labels[i]);
    }

    /* The good ones: Evidence from the attester, a passport AR from the Verifier, and a
     * device whose attestation failed before: it is not locked out, fresh good Evidence
     * attests it again. */
    struct qopts good[] = {
        {.attest = true, .kid = kids[7]},
        {.attest = true, .eat_key = F.verifier, .nonce = NONCE_TOKEN},
        {.attest = true, .kid = kids[0]},
    };
    for (size_t i = 0; i < 3; i++) {
        struct built q = {0};
        query_job(&good[i], &q);
        xadd(&q);
        struct answer a;
        answer_of(&q, NULL, &a);
        cr_assert(outcome_is(&a, "update"), "good %zu: %.*s", i, (int)a.r.outcome.len,
                  a.r.outcome.ptr);
        cr_assert_eq(a.m.n_manifest_list, 1);
        answer_finish(&a);
    }
    cr_assert(device_status_is(ACME, tam_key_kid(F.agent), "attested"));
    cr_assert(device_status_is(ACME, kids[0], "attested"));
}

Test(worker, attested_enrollment_learns_the_key_from_cnf)
{
    add_uri_envelope(OPEN, NULL);
    install_uri_policy(OPEN);
    worker_start(0, "w1");
    /* cnf {3: kid} cannot be learned: dropped, nothing recorded. */
    struct built q = {0};
    struct qopts o = {.tenant = OPEN, .attest = true, .unverified = true, .no_device = true};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    cr_assert_eq(a.r.status, 204);
    cr_assert(outcome_is(&a, "dropped"));
    redisReply *r = device_field(OPEN, tam_key_kid(F.agent), "status");
    cr_assert_eq(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);

    /* A full tenant (max-devices = 2) learns no one. */
    char set[TAM_KEY_MAX], hex[65];
    tam_key_tenant(set, OPEN, "devices");
    freeReplyObject(tu_redis_cmd(&F.rs, "SADD %s a b", set));
    struct built qf = {0};
    o.cnf_cose_key = true;
    query_job(&o, &qf);
    xadd(&qf);
    struct answer af;
    answer_of(&qf, NULL, &af);
    cr_assert_eq(af.r.status, 204);
    cr_assert_eq(log_count(0, "max_devices limit"), 1);
    answer_finish(&af);
    freeReplyObject(tu_redis_cmd(&F.rs, "SREM %s a", set));

    /* cnf with the COSE_Key: learned, verified, planned. */
    struct built q2 = {0};
    query_job(&o, &q2);
    xadd(&q2);
    struct answer a2;
    answer_of(&q2, NULL, &a2);
    cr_assert(outcome_is(&a2, "update"), "%.*s", (int)a2.r.outcome.len, a2.r.outcome.ptr);
    cr_assert(device_status_is(OPEN, tam_key_kid(F.agent), "attested"));
    r = device_field(OPEN, tam_key_kid(F.agent), "pub");
    uint8_t pub[64];
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_eq(r->len, tam_key_public_raw(F.agent, pub));
    cr_assert_eq(memcmp(r->str, pub, 64), 0);
    freeReplyObject(r);
    tam_hex_encode(tam_key_kid(F.agent), 32, hex);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "SISMEMBER %s %s", set, hex)), 1);

    /* As tamd sends it: unverified, with the message's kid header. The prefetch read that
     * kid's record, which is the one learned: no second read of the device. */
    char dev[TAM_KEY_MAX];
    tam_key_device(dev, OPEN, tam_key_kid(F.agent), NULL);
    freeReplyObject(tu_redis_cmd(&F.rs, "DEL %s", dev));
    freeReplyObject(tu_redis_cmd(&F.rs, "SREM %s %s", set, hex));
    struct built q3 = {0};
    o.no_device = false;
    query_job(&o, &q3);
    freeReplyObject(tu_redis_cmd(&F.rs, "CONFIG RESETSTAT"));
    xadd(&q3);
    struct answer a3;
    answer_of(&q3, NULL, &a3);
    cr_assert(outcome_is(&a3, "update"), "%.*s", (int)a3.r.outcome.len, a3.r.outcome.ptr);
    cr_assert(device_status_is(OPEN, tam_key_kid(F.agent), "attested"));
    redisReply *info = tu_redis_cmd(&F.rs, "INFO commandstats");
    cr_assert(strstr(info->str, "cmdstat_hmget:calls=1,") != NULL, "%s", info->str);
    freeReplyObject(info);

    cr_assert_eq(log_count(0, "keys_learned=2"), 0); /* counters print at exit */
    cr_assert_eq(worker_stop(0, SIGTERM), 0);
    cr_assert_eq(log_count(0, "keys_learned=2"), 1);
    answer_finish(&a);
    answer_finish(&a2);
    answer_finish(&a3);
}

Test(worker, policy_rules_from_json)
{
    add_uri_envelope(ACME, NULL);
    set_policy(ACME, "{\"rules\": [{\"match\": {\"labels\": [\"beta\"]},"
                     " \"install\": [{\"component_id\": " URI_ID_JSON "}]},"
                     " {\"match\": {}, \"remove\": [{\"component_id\": [\"6f6c64\"]}]}]}");
    worker_start(0, "w1");
    uint8_t beta[32], plain[32];
    device_kid(7, beta);
    device_kid(8, plain);
    char key[TAM_KEY_MAX];
    tam_key_device(key, ACME, beta, NULL);
    freeReplyObject(tu_redis_cmd(&F.rs, "HSET %s labels beta,eu", key));
    /* plain has "old" recorded as installed: the remove rule unlinks it. */
    struct tam_plan_installed old;
    memset(&old, 0, sizeof(old));
    old.component.n = 1;
    old.component.seg[0] = tam_bytes_of("old", 3);
    old.has_manifest_id = true;
    old.manifest_id.n = 1;
    old.manifest_id.seg[0] = tam_bytes_of("old-suit", 8);
    old.sequence = 1;
    struct tam_buf inst;
    tam_buf_init(&inst, 4096);
    cr_assert_eq(tam_store_installed_encode(&old, 1, &inst), TAM_OK);
    tam_key_device(key, ACME, plain, NULL);
    freeReplyObject(tu_redis_cmd(&F.rs, "HSET %s installed %b", key, inst.data, inst.len));
    tam_buf_finish(&inst);

    struct built qb = {0}, qp = {0};
    struct qopts ob = {.attest = true, .kid = beta};
    struct qopts op = {.attest = true, .kid = plain, .lists_old = true};
    query_job(&ob, &qb);
    query_job(&op, &qp);
    xadd(&qb);
    xadd(&qp);
    struct answer ab, ap;
    answer_of(&qb, NULL, &ab);
    answer_of(&qp, NULL, &ap);
    cr_assert(outcome_is(&ab, "update"));
    cr_assert_eq(ab.m.n_manifest_list, 1);
    cr_assert_not(ab.m.has_unneeded);
    cr_assert(outcome_is(&ap, "update"));
    cr_assert_not(ap.m.has_manifest_list);
    cr_assert_eq(ap.m.n_unneeded, 1);
    cr_assert_eq(ap.m.unneeded[0].seg[0].len, 8);
    cr_assert_eq(memcmp(ap.m.unneeded[0].seg[0].ptr, "old-suit", 8), 0);
    answer_finish(&ab);
    answer_finish(&ap);
}

/* A TAM-built component (a 20-byte binary, URI delivery) of the spec's SecureFS TA id. */
static void put_tam_built(const char *tenant, const uint8_t bin[20], uint64_t sequence)
{
    struct tam_store_component c;
    memset(&c, 0, sizeof(c));
    c.component.n = 4;
    c.component.seg[0] = tam_bytes_of("TEEP-Device", 11);
    c.component.seg[1] = tam_bytes_of("SecureFS", 8);
    c.component.seg[2] = tam_bytes_of("\x8d\x82\x57\x3a\x92\x6d\x47\x54\x93\x53\x32\xdc\x29"
                                      "\x99\x7f\x74",
                                      16);
    c.component.seg[3] = tam_bytes_of("ta", 2);
    c.sequence = sequence;
    c.binary = tam_bytes_of(bin, 20);
    c.delivery = TAM_STORE_DELIVERY_URI;
    c.uri = tam_bytes_of("https://example.org/tc.ta", 25);
    put_component(tenant, &c);
}

Test(worker, tam_built_manifest_is_signed_once_and_cached)
{
    static const uint8_t bin[] = "Hello, Secure World!";
    put_tam_built(ACME, bin, 5);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    uint8_t k1[32], k2[32];
    device_kid(1, k1);
    device_kid(2, k2);
    struct built q1 = {0}, q2 = {0};
    struct qopts o1 = {.attest = true, .kid = k1}, o2 = {.attest = true, .kid = k2};
    query_job(&o1, &q1);
    xadd(&q1);
    struct answer a1, a2;
    answer_of(&q1, NULL, &a1);
    query_job(&o2, &q2);
    xadd(&q2);
    answer_of(&q2, NULL, &a2);
    cr_assert(outcome_is(&a1, "update"));
    cr_assert(outcome_is(&a2, "update"));
    cr_assert_eq(a1.m.manifest_list[0].len, a2.m.manifest_list[0].len);
    cr_assert_eq(
        memcmp(a1.m.manifest_list[0].ptr, a2.m.manifest_list[0].ptr, a1.m.manifest_list[0].len), 0);
    cr_assert_eq(log_count(0, "event=manifest_built"), 1, "signed once");

    /* The envelope verifies with the manifest key and was written back into the record. */
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(a1.m.manifest_list[0].ptr, a1.m.manifest_list[0].len, &env, NULL),
                 TAM_OK);
    const struct tam_key *anchors[] = {F.manifest};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_OK);
    cr_assert_eq(env.sequence, 5);
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, ACME, "components");
    redisReply *r = tu_redis_cmd(&F.rs, "HVALS %s", key);
    cr_assert_eq(r->elements, 1);
    struct tam_store_component back;
    cr_assert_eq(tam_store_component_decode((const uint8_t *)r->element[0]->str, r->element[0]->len,
                                            &back, NULL),
                 TAM_OK);
    cr_assert(tam_store_component_ready(&back));
    cr_assert_eq(back.envelope.len, a1.m.manifest_list[0].len);
    cr_assert_eq(memcmp(back.envelope.ptr, a1.m.manifest_list[0].ptr, back.envelope.len), 0);
    freeReplyObject(r);

    /* A second worker (fresh cache) reuses the stored envelope: no new signature. */
    (void)worker_stop(0, SIGTERM);
    worker_start(1, "w2");
    uint8_t k3[32];
    device_kid(3, k3);
    struct built q3 = {0};
    struct qopts o3 = {.attest = true, .kid = k3};
    query_job(&o3, &q3);
    xadd(&q3);
    struct answer a3;
    answer_of(&q3, NULL, &a3);
    cr_assert(outcome_is(&a3, "update"));
    cr_assert_eq(log_count(1, "event=manifest_built"), 0);
    cr_assert_eq(
        memcmp(a3.m.manifest_list[0].ptr, a1.m.manifest_list[0].ptr, a1.m.manifest_list[0].len), 0);
    answer_finish(&a1);
    answer_finish(&a2);
    answer_finish(&a3);
}

Test(worker, unsupported_cipher_suites_gets_a_new_query_request)
{
    worker_start(0, "w1");
    struct built q = {0};
    struct qopts o = {.error_suites = true};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, F.tam_ed, &a); /* signed with Ed25519, the suite the agent supports */
    cr_assert(outcome_is(&a, "query-request"));
    cr_assert_eq(a.m.type, TAM_TEEP_QUERY_REQUEST);
    cr_assert_eq(a.m.supported_suites.n, 1);
    cr_assert(
        tam_teep_suite_has_alg(&a.m.supported_suites.v[0], TAM_TEEP_COSE_SIGN1, TAM_ALG_ED25519));
    char skey[TAM_KEY_MAX];
    tam_key_session(skey, a.m.token.ptr, a.m.token.len);
    redisReply *r = tu_redis_cmd(&F.rs, "GET %s", skey);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "new session stored");
    struct tam_sess s;
    cr_assert_eq(tam_sess_decode((const uint8_t *)r->str, r->len, &s, NULL), TAM_OK);
    cr_assert_eq(s.kind, TAM_SESS_QUERY);
    freeReplyObject(r);
    answer_finish(&a);
}

Test(worker, unknown_tenant_and_bad_signature)
{
    worker_start(0, "w1");
    /* A tenant this worker has no section for: 500 (the TAM cannot answer). */
    struct built q = {0};
    struct qopts o = {.tenant = "nobody", .attest = true};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    cr_assert_eq(a.r.status, 500);
    cr_assert(outcome_is(&a, "tenant-unknown"));
    /* An unverified message whose signature does not verify with the registered key. */
    struct built q2 = {0};
    uint8_t kid[32];
    memcpy(kid, tam_key_kid(F.agent), 32);
    struct qopts o2 = {.attest = true, .unverified = true};
    query_job(&o2, &q2);
    /* Corrupt the signature inside the job: rebuild with a flipped message byte. */
    struct tam_job job;
    cr_assert_eq(tam_job_decode(q2.job.data, q2.job.len, &job, NULL), TAM_OK);
    struct tam_buf msg;
    tam_buf_init(&msg, 1u << 20);
    cr_assert_eq(tam_buf_append(&msg, job.message.ptr, job.message.len), TAM_OK);
    msg.data[msg.len - 1] ^= 1;
    struct tam_buf sess;
    tam_buf_init(&sess, 4096);
    cr_assert_eq(tam_buf_append(&sess, job.session.ptr, job.session.len), TAM_OK);
    struct built q3 = {0};
    make_job(&o2, TAM_JOB_QUERY_RESPONSE, &msg, &sess, &q3);
    xadd(&q3);
    struct answer a3;
    answer_of(&q3, NULL, &a3);
    cr_assert_eq(a3.r.status, 204);
    cr_assert(outcome_is(&a3, "dropped"));
    tam_buf_finish(&msg);
    tam_buf_finish(&sess);
    answer_finish(&a);
    answer_finish(&a3);
}

Test(worker, reports_are_checked_and_failures_install_nothing)
{
    uint8_t digest[32];
    add_uri_envelope(ACME, digest);
    install_uri_policy(ACME);
    worker_start(0, "w1");
    uint8_t ka[32], kb[32];
    device_kid(201, ka);
    device_kid(202, kb);
    struct built qa = {0}, qb = {0};
    struct qopts oa = {.attest = true, .kid = ka}, ob = {.attest = true, .kid = kb};
    query_job(&oa, &qa);
    query_job(&ob, &qb);
    xadd(&qa);
    xadd(&qb);
    struct answer aa, ab;
    answer_of(&qa, NULL, &aa);
    answer_of(&qb, NULL, &ab);
    char pa[TAM_KEY_MAX], pb[TAM_KEY_MAX];
    tam_key_device(pa, ACME, ka, "pending");
    tam_key_device(pb, ACME, kb, "pending");

    /* A report whose nonce is not the Update token: dropped, no state change at all. */
    struct built ra = {0};
    struct qopts so_a = {.kid = ka};
    report_job(&so_a, aa.m.token.ptr, digest, REPORT_BAD_NONCE, &ra);
    xadd(&ra);
    struct answer a1;
    answer_of(&ra, NULL, &a1);
    cr_assert(outcome_is(&a1, "dropped"));
    cr_assert_eq(installed_count(ACME, ka), 0);
    cr_assert_eq(history_len(ACME, ka), 0);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "ZCARD %s", pa)), 1);

    static const uint8_t foreign[32] = {0xf0};
    struct qopts so_b = {.kid = kb};

    /* ERR_MANIFEST_PROCESSING_FAILED naming the manifest: nothing installed, history kept. */
    struct built rb = {0};
    report_job(&so_b, ab.m.token.ptr, digest, REPORT_FAILED, &rb);
    xadd(&rb);
    struct answer b1;
    answer_of(&rb, NULL, &b1);
    cr_assert(outcome_is(&b1, "recorded"), "%.*s", (int)b1.r.outcome.len, b1.r.outcome.ptr);
    cr_assert_eq(installed_count(ACME, kb), 0);
    cr_assert_eq(history_len(ACME, kb), 1);
    cr_assert_eq(redis_int(tu_redis_cmd(&F.rs, "ZCARD %s", pb)), 0);
    char hk[TAM_KEY_MAX];
    tam_key_device(hk, ACME, kb, "hist");
    redisReply *h = tu_redis_cmd(&F.rs, "LINDEX %s 0", hk);
    cr_assert_not_null(strstr(h->str, "ERR_MANIFEST_PROCESSING_FAILED"), "%s", h->str);
    cr_assert_not_null(strstr(h->str, "\"failed\":1"), "%s", h->str);
    freeReplyObject(h);

    /* A report naming a manifest the Update did not carry: dropped (device A's next Update). */
    struct built qa2 = {0};
    query_job(&oa, &qa2);
    xadd(&qa2);
    struct answer aa2;
    answer_of(&qa2, NULL, &aa2);
    struct built ra2 = {0};
    report_job(&so_a, aa2.m.token.ptr, foreign, REPORT_SUCCESS, &ra2);
    xadd(&ra2);
    struct answer a2;
    answer_of(&ra2, NULL, &a2);
    cr_assert(outcome_is(&a2, "dropped"));
    cr_assert_eq(installed_count(ACME, ka), 0);
    cr_assert_geq(log_count(0, "SUIT report names a manifest the Update did not carry"), 1);
    answer_finish(&aa);
    answer_finish(&ab);
    answer_finish(&a1);
    answer_finish(&b1);
    answer_finish(&aa2);
    answer_finish(&a2);
}

/* ================================================================ Redis tenants
 *
 * Tenants created at run time through the admin API: the records are written here with the
 * admin's own public functions (tstore.h cfg encoding, seal.h key sealing), exactly as
 * src/admin writes them, and served by a worker that knows nothing of them in its
 * configuration file.
 */

#define RT "rt1"

struct rt_fx {
    uint8_t kek[TAM_SEAL_KEK_LEN];
    struct tam_key *seal; /* the workers' sealing key (private) */
    struct tam_key *teep; /* the tenant's TEEP signing key */
    struct tam_key *mkey; /* its SUIT manifest key */
    char kek_path[256], seal_path[256];
};

static struct rt_fx R;

static void rt_setup(void)
{
    fx_start(NULL);
    memset(&R, 0, sizeof(R));
    snprintf(R.kek_path, sizeof(R.kek_path), "%s/kek.key", F.dir);
    snprintf(R.seal_path, sizeof(R.seal_path), "%s/worker-seal.pem", F.dir);
    bool created = false;
    cr_assert_eq(tam_seal_kek_load(R.kek_path, true, R.kek, &created), TAM_OK);
    cr_assert_eq(tam_seal_worker_key_load(R.seal_path, true, &R.seal, &created), TAM_OK);
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &R.teep), TAM_OK);
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &R.mkey), TAM_OK);
    char extra[600];
    snprintf(extra, sizeof(extra), "kek-file = %s\nworker-seal-key = %s\n", R.kek_path,
             R.seal_path);
    write_config(extra);
}

static void rt_teardown(void)
{
    tam_key_destroy(R.seal);
    tam_key_destroy(R.teep);
    tam_key_destroy(R.mkey);
    tam_memzero(R.kek, sizeof(R.kek));
    fx_stop();
}

TestSuite(worker_redis, .init = rt_setup, .fini = rt_teardown);

/* The cfg hash as the admin writes it (every field, rev last). */
static void rt_put_cfg(const char *id, uint64_t rev, uint64_t created)
{
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    c.rev = rev;
    c.created_ms = created;
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t n = tam_tstore_cfg_encode(&c, f);
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, id, "cfg");
    for (size_t i = 0; i < n; i++) {
        freeReplyObject(tu_redis_cmd(&F.rs, "HSET %s %s %s", key, f[i].name, f[i].value));
    }
}

static void rt_put_key(const char *id, const char *slot, const struct tam_buf *blob)
{
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, id, "keys");
    freeReplyObject(tu_redis_cmd(&F.rs, "HSET %s %s %b", key, slot, blob->data, blob->len));
}

/* The TEEP key sealed under kek into slot "p256" (flip: corrupt one byte of the blob). */
static void rt_put_teep(const char *id, const struct tam_key *k, const uint8_t *kek, bool flip)
{
    struct tam_buf blob;
    tam_buf_init(&blob, 1u << 16);
    cr_assert_eq(tam_seal_key_kek(kek, id, "p256", k, &blob), TAM_OK);
    if (flip) {
        blob.data[blob.len / 2] ^= 0x40;
    }
    rt_put_key(id, "p256", &blob);
    tam_buf_finish(&blob);
}

static void rt_put_manifest(const char *id, const struct tam_key *k, const struct tam_key *worker)
{
    struct tam_buf blob;
    tam_buf_init(&blob, 1u << 16);
    cr_assert_eq(tam_seal_key_worker(worker, id, "manifest:p256", k, &blob), TAM_OK);
    rt_put_key(id, "manifest:p256", &blob);
    tam_buf_finish(&blob);
}

static void rt_anchor(const char *id, enum tam_anchor_kind kind, const struct tam_key *k, bool add)
{
    char key[TAM_KEY_MAX], hex[2 * TAM_KID_LEN + 1];
    tam_tstore_key_anchors(key, id, kind);
    tam_hex_encode(tam_key_kid(k), TAM_KID_LEN, hex);
    if (add) {
        struct tam_buf pem;
        tam_buf_init(&pem, 8192);
        cr_assert_eq(tam_key_public_pem(k, &pem), TAM_OK);
        freeReplyObject(tu_redis_cmd(&F.rs, "HSET %s %s %b", key, hex, pem.data, pem.len));
        tam_buf_finish(&pem);
    } else {
        freeReplyObject(tu_redis_cmd(&F.rs, "HDEL %s %s", key, hex));
    }
    tam_key_tenant(key, id, "catalog_version");
    freeReplyObject(tu_redis_cmd(&F.rs, "INCR %s", key));
}

/* A tenant as POST /v1/tenants creates it, plus its trust anchors. */
static void rt_create(const char *id, const uint8_t *kek, const struct tam_key *worker)
{
    rt_put_cfg(id, 0, now_ms());
    rt_put_teep(id, R.teep, kek, false);
    rt_put_manifest(id, R.mkey, worker);
    freeReplyObject(tu_redis_cmd(&F.rs, "SADD %s %s", TAM_KEY_TENANTS, id));
    struct tam_key *signer = load_vector_key("suit_example_key_p256.pub.pem");
    rt_anchor(id, TAM_ANCHOR_TC_SIGNER, signer, true);
    rt_anchor(id, TAM_ANCHOR_ATTESTER, F.attester, true);
    tam_key_destroy(signer);
}

/* Bumps the record's rev, as every admin change of configuration or keys does. */
static void rt_bump(const char *id)
{
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, id, "cfg");
    freeReplyObject(tu_redis_cmd(&F.rs, "HINCRBY %s rev 1", key));
}

/* A QueryResponse job for the Redis tenant from device n, answered; verified with k if 200. */
static void rt_query(int n, const struct tam_key *k, struct answer *a)
{
    uint8_t kid[32];
    device_kid(500 + n, kid);
    struct built q = {0};
    struct qopts o = {.tenant = RT, .attest = true, .kid = kid};
    query_job(&o, &q);
    xadd(&q);
    answer_of(&q, k, a);
}

static bool verifies_with(const struct answer *a, const struct tam_key *k)
{
    return tam_cose_verify_any(&a->cose, k, NULL) == TAM_OK;
}

Test(worker_redis, tenant_from_redis_is_served_and_changes_are_seen_without_restart)
{
    rt_create(RT, R.kek, R.seal);
    add_uri_envelope(RT, NULL);
    install_uri_policy(RT);
    worker_start(0, "w1");

    /* Served: an Update signed with the tenant's sealed TEEP key, the TC verified with the
     * tc-signer anchor and the EAT with the attester anchor. */
    struct answer a1;
    rt_query(1, R.teep, &a1);
    cr_assert_eq(a1.r.status, 200);
    cr_assert(outcome_is(&a1, "update"), "%.*s", (int)a1.r.outcome.len, a1.r.outcome.ptr);
    cr_assert_eq(a1.m.n_manifest_list, 1);
    cr_assert_not(verifies_with(&a1, F.tam_p256), "signed with the configured key");
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=" RT " source=redis"), 1);

    /* Cached: the next job loads nothing. */
    struct answer a2;
    rt_query(2, R.teep, &a2);
    cr_assert(outcome_is(&a2, "update"));
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=" RT " source=redis"), 1);

    /* Key rotation (rev bumped): the very next Update is signed with the new key. */
    struct tam_key *old = R.teep;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &R.teep), TAM_OK);
    rt_put_teep(RT, R.teep, R.kek, false);
    rt_bump(RT);
    struct answer a3;
    rt_query(3, R.teep, &a3);
    cr_assert(outcome_is(&a3, "update"));
    cr_assert_not(verifies_with(&a3, old), "still the old key");
    tam_key_destroy(old);
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=" RT " source=redis"), 2);

    /* Trust anchors follow catalog_version: without the attester anchor the EAT fails. */
    rt_anchor(RT, TAM_ANCHOR_ATTESTER, F.attester, false);
    struct answer a4;
    rt_query(4, R.teep, &a4);
    cr_assert(outcome_is(&a4, "attestation-failed"), "%.*s", (int)a4.r.outcome.len,
              a4.r.outcome.ptr);
    rt_anchor(RT, TAM_ANCHOR_ATTESTER, F.attester, true);
    struct answer a5;
    rt_query(5, R.teep, &a5);
    cr_assert(outcome_is(&a5, "update"));

    /* Deleted (cfg last, as the admin does): the next job is answered as an unknown tenant. */
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, RT, "keys");
    freeReplyObject(tu_redis_cmd(&F.rs, "DEL %s", key));
    tam_key_tenant(key, RT, "cfg");
    freeReplyObject(tu_redis_cmd(&F.rs, "DEL %s", key));
    struct answer a6;
    rt_query(6, NULL, &a6);
    cr_assert_eq(a6.r.status, 500);
    cr_assert(outcome_is(&a6, "tenant-unknown"));
    cr_assert_eq(log_count(0, "event=tenant_dropped tenant=" RT), 1);

    /* Re-created under the same id (rev starts again): the new record is loaded. */
    rt_create(RT, R.kek, R.seal);
    struct answer a7;
    rt_query(7, R.teep, &a7);
    cr_assert(outcome_is(&a7, "update"));
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=" RT " source=redis"), 3);

    /* A configuration-file tenant is still served next to them. */
    struct built q = {0};
    struct qopts o = {.attest = true};
    add_uri_envelope(ACME, NULL);
    install_uri_policy(ACME);
    query_job(&o, &q);
    xadd(&q);
    struct answer a8;
    answer_of(&q, NULL, &a8);
    cr_assert(outcome_is(&a8, "update"));
    cr_assert_eq(worker_stop(0, SIGTERM), 0, "clean exit (LSan checks the cache is freed)");
    struct answer *all[] = {&a1, &a2, &a3, &a4, &a5, &a6, &a7, &a8};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        answer_finish(all[i]);
    }
}

Test(worker_redis, manifest_key_from_redis_signs_tam_built_manifests)
{
    rt_create(RT, R.kek, R.seal);
    static const uint8_t bin[] = "Hello, Redis tenant!";
    put_tam_built(RT, bin, 3);
    install_uri_policy(RT);
    worker_start(0, "w1");
    struct answer a;
    rt_query(1, R.teep, &a);
    cr_assert(outcome_is(&a, "update"), "%.*s", (int)a.r.outcome.len, a.r.outcome.ptr);
    cr_assert_eq(a.m.n_manifest_list, 1);
    struct tam_suit_envelope env;
    cr_assert_eq(tam_suit_parse(a.m.manifest_list[0].ptr, a.m.manifest_list[0].len, &env, NULL),
                 TAM_OK);
    const struct tam_key *anchors[] = {R.mkey};
    cr_assert_eq(tam_suit_verify(&env, anchors, 1), TAM_OK, "signed with the sealed manifest key");
    cr_assert_eq(log_count(0, "event=manifest_built tenant=" RT), 1);
    answer_finish(&a);
}

Test(worker_redis, key_blobs_that_do_not_open_fail_the_job_cleanly)
{
    /* Sealed under another deployment's KEK. */
    uint8_t other[TAM_SEAL_KEK_LEN];
    memset(other, 0x5a, sizeof(other));
    rt_create(RT, other, R.seal);
    worker_start(0, "w1");
    struct answer a1;
    rt_query(1, NULL, &a1);
    cr_assert_eq(a1.r.status, 500);
    cr_assert(outcome_is(&a1, "tenant-invalid"), "%.*s", (int)a1.r.outcome.len, a1.r.outcome.ptr);
    cr_assert_eq(log_count(0, "event=tenant_load_failed tenant=" RT), 1);

    /* Cached as invalid until the record changes: no second attempt for the same rev. */
    struct answer a2;
    rt_query(2, NULL, &a2);
    cr_assert(outcome_is(&a2, "tenant-invalid"));
    cr_assert_eq(log_count(0, "event=tenant_load_failed tenant=" RT), 1);

    /* Tampered blob under the right KEK: refused too. */
    rt_put_teep(RT, R.teep, R.kek, true);
    rt_bump(RT);
    struct answer a3;
    rt_query(3, NULL, &a3);
    cr_assert(outcome_is(&a3, "tenant-invalid"));
    cr_assert_eq(log_count(0, "event=tenant_load_failed tenant=" RT), 2);

    /* Fixed: served again without a restart. */
    rt_put_teep(RT, R.teep, R.kek, false);
    rt_bump(RT);
    add_uri_envelope(RT, NULL);
    install_uri_policy(RT);
    struct answer a4;
    rt_query(4, R.teep, &a4);
    cr_assert(outcome_is(&a4, "update"), "%.*s", (int)a4.r.outcome.len, a4.r.outcome.ptr);
    cr_assert_eq(log_count(0, "key material"), 0);
    cr_assert_eq(worker_stop(0, SIGTERM), 0, "still alive, exits cleanly");
    answer_finish(&a1);
    answer_finish(&a2);
    answer_finish(&a3);
    answer_finish(&a4);
}

Test(worker_redis, manifest_key_sealed_to_another_worker_key_does_not_open)
{
    struct tam_key *stranger = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &stranger), TAM_OK);
    /* The seal itself: only the addressed worker key opens it. */
    struct tam_buf blob;
    tam_buf_init(&blob, 1u << 16);
    cr_assert_eq(tam_seal_key_worker(stranger, RT, "manifest:p256", R.mkey, &blob), TAM_OK);
    struct tam_key *k = NULL;
    cr_assert_neq(tam_unseal_key(R.kek, R.seal, RT, "manifest:p256", blob.data, blob.len, &k),
                  TAM_OK);
    cr_assert_null(k);
    tam_buf_finish(&blob);

    /* A tenant whose manifest key was sealed to another worker key: refused, no crash. */
    rt_create(RT, R.kek, stranger);
    worker_start(0, "w1");
    struct answer a;
    rt_query(1, NULL, &a);
    cr_assert_eq(a.r.status, 500);
    cr_assert(outcome_is(&a, "tenant-invalid"));
    cr_assert_eq(log_count(0, "manifest key does not open"), 1);
    cr_assert_eq(worker_stop(0, SIGTERM), 0);
    tam_key_destroy(stranger);
    answer_finish(&a);
}

Test(worker, without_kek_only_configuration_tenants_are_served)
{
    /* No kek-file / worker-seal-key, and none in DATA_DIR. */
    char extra[300];
    snprintf(extra, sizeof(extra), "data-dir = %s\n", F.dir);
    write_config(extra);
    uint8_t kek[TAM_SEAL_KEK_LEN];
    memset(kek, 1, sizeof(kek));
    struct tam_key *teep = NULL;
    cr_assert_eq(tam_key_generate(TAM_KEY_P256, &teep), TAM_OK);
    rt_put_cfg(RT, 0, now_ms());
    rt_put_teep(RT, teep, kek, false);
    worker_start(0, "w1");
    struct built q = {0};
    uint8_t kid[32];
    device_kid(600, kid);
    struct qopts o = {.tenant = RT, .attest = true, .kid = kid};
    query_job(&o, &q);
    xadd(&q);
    struct answer a;
    answer_of(&q, NULL, &a);
    cr_assert_eq(a.r.status, 500);
    cr_assert(outcome_is(&a, "tenant-unknown"));
    cr_assert_eq(log_count(0, "event=redis_tenants_disabled"), 1);
    tam_key_destroy(teep);
    answer_finish(&a);
}

/* A minimal tenant (cfg and a sealed TEEP key, no manifest key), written in two commands. */
static void rt_create_quick(redisContext *rc, const char *id, uint64_t created)
{
    struct tam_tstore_cfg c;
    tam_tstore_cfg_default(&c);
    c.created_ms = created;
    struct tam_tstore_field f[TAM_TSTORE_CFG_FIELDS];
    size_t n = tam_tstore_cfg_encode(&c, f);
    char key[TAM_KEY_MAX];
    tam_key_tenant(key, id, "cfg");
    const char *argv[2 + 2 * TAM_TSTORE_CFG_FIELDS] = {"HSET", key};
    for (size_t i = 0; i < n; i++) {
        argv[2 + 2 * i] = f[i].name;
        argv[3 + 2 * i] = f[i].value;
    }
    redisReply *r = redisCommandArgv(rc, (int)(2 + 2 * n), argv, NULL);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    struct tam_buf blob;
    tam_buf_init(&blob, 1u << 16);
    cr_assert_eq(tam_seal_key_kek(R.kek, id, "p256", R.teep, &blob), TAM_OK);
    tam_key_tenant(key, id, "keys");
    r = redisCommand(rc, "HSET %s p256 %b", key, blob.data, blob.len);
    cr_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    tam_buf_finish(&blob);
}

/* A QueryResponse for tenant id, queued (no EAT: answered with a signed error Update). */
static void rt_queue(const char *id, int dev)
{
    uint8_t kid[32];
    device_kid(dev, kid);
    struct built q = {0};
    struct qopts o = {.tenant = id, .kid = kid};
    query_job(&o, &q);
    xadd(&q);
}

static void wait_replies(long long n)
{
    for (int waited = 0; waited < 4 * WAIT_MS && reply_len() < n; waited += 50) {
        sleep_ms(50);
    }
    cr_assert_eq(reply_len(), n);
}

Test(worker_redis, cache_is_bounded_and_evicts_the_least_recently_used_tenant)
{
    enum { N = 1024 }; /* WK_RCACHE_MAX */
    char id[N + 1][16];
    uint64_t now = now_ms();
    redisContext *rc = tu_redis_connect(&F.rs);
    for (int i = 0; i <= N; i++) {
        snprintf(id[i], sizeof(id[i]), "lru-%d", i);
        rt_create_quick(rc, id[i], now);
    }
    redisFree(rc);
    worker_start(0, "w1");
    /* Fill the cache, touch lru-0 again, then one more tenant: lru-1 is the one evicted. */
    for (int i = 0; i < N; i++) {
        rt_queue(id[i], i);
    }
    rt_queue(id[0], 0);
    rt_queue(id[N], N);
    rt_queue(id[0], 0);
    rt_queue(id[1], 1);
    wait_replies(N + 4);
    cr_assert_eq(log_count(0, "event=tenant_evicted"), 2, "lru-1, then lru-2 for lru-1");
    cr_assert_eq(log_count(0, "event=tenant_evicted tenant=lru-1\n"), 1);
    cr_assert_eq(log_count(0, "event=tenant_evicted tenant=lru-2\n"), 1);
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=lru-0 "), 1, "lru-0 stayed cached");
    cr_assert_eq(log_count(0, "event=tenant_loaded tenant=lru-1 "), 2, "lru-1 was reloaded");
    cr_assert_eq(log_count(0, "outcome=missing-item"), N + 4, "every job answered and signed");
    cr_assert_eq(worker_stop(0, SIGTERM), 0, "clean exit (LSan checks the cache is freed)");
}
