/*
 * tam-agent, the program: options, the fleet (keys, devices, HTTP pool, stats),
 * the device session driver and the modes. Event-loop glue around the pure core
 * of tam/agent.h. Single-threaded: everything runs on one uv loop.
 */
#ifndef TAM_AGENT_TOOL_H
#define TAM_AGENT_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tam/agent.h"
#include "tam/hdr.h"
#include "tam/httpc.h"

#define AG_MAX_KEYS    8
#define AG_MAX_IDS     16
#define AG_MAX_LABELS  16
#define AG_MAX_DEVICES 1000000

enum ag_mode {
    AG_MODE_NONE = 0,
    AG_MODE_CONFORMANCE,
    AG_MODE_LOAD,
    AG_MODE_IDLE,
    AG_MODE_KEYS, /* only generate/export the fleet's keys */
    AG_MODE_DEMO, /* set up the demo tenant through the admin API, then load */
};

enum ag_alg_choice {
    AG_ALG_ESP256 = 0,
    AG_ALG_ED25519,
    AG_ALG_MIXED,
};

struct ag_opts {
    enum ag_mode mode;
    const char *url;
    const char *ca_file;
    const char *server_name;
    enum tam_teep_numbering numbering;
    bool numbering_set; /* --numbering given (else the admin API may tell) */
    const char *tam_key_files[AG_MAX_KEYS];
    size_t n_tam_key_files;
    const char *signer_key_files[AG_MAX_KEYS];
    size_t n_signer_key_files;
    const char *attester_key_file;
    enum ag_alg_choice alg;
    const char *seed; /* NULL: random keys */
    size_t devices;
    unsigned concurrency; /* 0: default */
    double rate;          /* sessions/s, 0: closed loop */
    double duration_s;
    uint32_t timeout_ms;
    unsigned retries;
    uint32_t backoff_ms;
    uint32_t backoff_max_ms;
    unsigned max_messages; /* POSTs in one session */
    bool json;
    int progress; /* -1 auto (stderr is a TTY), 0 off, 1 on */
    bool no_verify;
    bool drop_invalid;
    const char *eat_format;
    unsigned faults;
    const char *request_ids[AG_MAX_IDS]; /* "ID[@seq]" */
    size_t n_request_ids;
    const char *unneeded_ids[AG_MAX_IDS];
    size_t n_unneeded_ids;
    const char *export_dir;
    bool enroll;
    const char *admin_url;
    const char *token_file;
    const char *tenant;
    const char *labels[AG_MAX_LABELS]; /* device labels for enrollment */
    size_t n_labels;
    unsigned connections; /* idle */
    const char *expect_install[AG_MAX_IDS];
    size_t n_expect_install;
    const char *update_cmd;
    const char *only; /* comma lists of check names */
    const char *skip;
    int log_level;
    const char *data_dir;       /* demo: tokens and demo keys */
    const char *payload_listen; /* demo: HOST:PORT of the URI scenario's payloads */
    bool keep_serving;          /* demo: keep the payload server up until a signal */
};

/* Parses argv. 0: run; 1: --help printed (exit 0); -1: error printed (exit 2). */
int ag_opts_parse(int argc, char **argv, struct ag_opts *o);
void ag_usage(FILE *out);

/* ---- statistics ---- */

enum ag_lat {
    AG_LAT_QUERY_REQUEST = 0, /* empty POST -> QueryRequest */
    AG_LAT_QUERY_RESPONSE,    /* QueryResponse POST -> Update or 204 */
    AG_LAT_UPDATE_RESULT,     /* Success/Error after an Update -> 204 */
    AG_LAT_ERROR,             /* an Error answering a QueryRequest */
    AG_LAT_SESSION,           /* a whole session */
    AG_LAT_N,
};

/* Error kinds, counted by name in the report. */
#define AG_ERR_MAP(X)                   \
    X(HTTP_3XX, "http_3xx")             \
    X(HTTP_4XX, "http_4xx")             \
    X(HTTP_5XX, "http_5xx")             \
    X(TIMEOUT, "timeout")               \
    X(CONNECT, "connect")               \
    X(TLS, "tls")                       \
    X(RESOLVE, "resolve")               \
    X(PROTO, "http_protocol")           \
    X(IO, "io")                         \
    X(TOO_BIG, "too_big")               \
    X(QUEUE, "queue_full")              \
    X(CONTENT_TYPE, "content_type")     \
    X(BAD_COSE, "bad_cose")             \
    X(BAD_SIGNATURE, "bad_signature")   \
    X(DECODE, "decode")                 \
    X(UNEXPECTED, "unexpected_message") \
    X(UNSUPPORTED, "unsupported")       \
    X(MANIFEST, "manifest_failed")      \
    X(FETCH, "fetch")                   \
    X(TAM_ERROR, "tam_err_code")        \
    X(LOOP, "too_many_messages")        \
    X(CANCELED, "canceled")             \
    X(INTERNAL, "internal")

enum ag_err {
    AG_ERR_NONE = 0,
#define AG_ERR_ENUM_(n, s) AG_ERR_##n,
    AG_ERR_MAP(AG_ERR_ENUM_)
#undef AG_ERR_ENUM_
        AG_ERR_N
};

const char *ag_err_name(enum ag_err e);
const char *ag_lat_name(enum ag_lat l);
/* The kind of an httpc error (transport level). */
enum ag_err ag_err_of_httpc(int err);

struct ag_stats {
    struct tam_hdr *lat[AG_LAT_N]; /* microseconds */
    uint64_t sessions_started;
    uint64_t sessions_ok;
    uint64_t sessions_failed;
    uint64_t messages; /* HTTP exchanges answered */
    uint64_t retries;
    uint64_t rate_missed; /* rate mode: starts dropped because every slot was busy */
    uint64_t errors[AG_ERR_N];
    uint64_t updates;
    uint64_t installed;
    uint64_t deleted;
    uint64_t unlinked;
    uint64_t manifests_failed;
};

int ag_stats_init(struct ag_stats *s);
void ag_stats_finish(struct ag_stats *s);
uint64_t ag_errors_total(const struct ag_stats *s);

/* ---- the fleet ---- */

struct ag_fetcher;

struct ag_fleet {
    uv_loop_t *loop;
    const struct ag_opts *o;
    struct tam_httpc_pool *pool;
    struct tam_key *tam_keys[AG_MAX_KEYS];
    const struct tam_key *tam_keys_c[AG_MAX_KEYS];
    size_t n_tam_keys;
    struct tam_key *signers[AG_MAX_KEYS];
    const struct tam_key *signers_c[AG_MAX_KEYS];
    size_t n_signers;
    struct tam_key *attester;
    bool attester_generated;
    struct tam_agent_vcache *vcache;
    struct tam_agent_profile prof;
    struct tam_agent_device **devs;
    size_t ndev;
    struct ag_stats stats;
    struct ag_fetcher *fetcher;
    bool closing; /* no new POSTs: sessions end as canceled */
    char tenant[64];
};

/* Loads keys, builds the devices (and their scenario), exports keys, creates the pool. */
int ag_fleet_init(struct ag_fleet *f, uv_loop_t *loop, const struct ag_opts *o, size_t ndev,
                  unsigned max_conns);
/* Creates the TEEP pool (separate so that idle mode can size it itself). */
int ag_fleet_open_pool(struct ag_fleet *f, unsigned max_conns);
/* Closes the pools and runs the loop until every handle is released, then frees. */
void ag_fleet_finish(struct ag_fleet *f);
/* Adds a trusted TAM / TC-signer public key given as PEM text. */
int ag_fleet_add_tam_key_pem(struct ag_fleet *f, const char *pem, size_t len);
int ag_fleet_add_signer_pem(struct ag_fleet *f, const char *pem, size_t len);
/* Applies the --request-tc / --unneeded scenario to a device. */
int ag_fleet_scenario(struct ag_fleet *f, struct tam_agent_device *dev);
/* Runs the loop until *flag becomes true (helpers of the sequential modes). */
void ag_run_until(uv_loop_t *loop, const bool *flag);
/* The tenant id: --tenant, else the last segment of a /tam/{tenant} URL path. */
int ag_tenant_of(const struct ag_opts *o, char *out, size_t cap);

/* ---- URI fetches (HTTP GET) ---- */

typedef void (*ag_fetch_done_fn)(void *arg, int err, const uint8_t *data, size_t len);
int ag_fetcher_create(uv_loop_t *loop, const struct ag_opts *o, struct ag_fetcher **out);
/* GET uri; cb runs once from the loop (err 0 and the body of a 200 answer, or an error). */
int ag_fetch(struct ag_fetcher *ft, const char *uri, ag_fetch_done_fn cb, void *arg);
void ag_fetcher_close(struct ag_fetcher *ft);

/* ---- one device session: empty POST, then the messages until the TAM answers empty ---- */

#define AG_TRACE_MAX 8

/* One POST of a session, for the conformance checks. */
struct ag_trace {
    enum ag_lat kind;
    int status; /* HTTP status, 0 on a transport error */
    int err;    /* httpc error */
    size_t body_len;
    bool teep_type;   /* Content-Type was application/teep+cbor */
    bool sec_headers; /* nosniff, CSP, Referrer-Policy present and no Cache-Control */
    bool handled;     /* the body went through the agent core */
    struct tam_agent_outcome out;
};

struct ag_session;
typedef void (*ag_session_done_fn)(struct ag_session *s, void *arg);

struct ag_fetch_ctx {
    struct ag_session *s;
    size_t i;
};

struct ag_session {
    struct ag_fleet *f;
    size_t dev_idx;
    struct tam_agent_device *dev;
    struct tam_buf out; /* the current POST body */
    enum ag_lat kind;   /* what the current POST carries */
    unsigned attempt;
    unsigned nposts;
    uint64_t t_start; /* uv_hrtime */
    uint64_t t_post;
    uv_timer_t timer; /* backoff */
    bool timer_init;
    bool active;
    struct tam_agent_step *step;
    size_t fetch_pending;
    struct ag_fetch_ctx fetch_ctx[TAM_AGENT_MAX_FETCH];
    uint64_t rng;            /* backoff jitter */
    enum ag_err pending_err; /* a failure reported from the timer */
    ag_session_done_fn done;
    void *arg;
    /* Result. */
    enum ag_err err; /* the first error of the session */
    bool ok;
    int last_status;
    unsigned ntrace;
    struct ag_trace trace[AG_TRACE_MAX];
};

void ag_session_init(struct ag_session *s, struct ag_fleet *f);
/* Starts a session for device idx; done runs from the loop when it ends. */
void ag_session_start(struct ag_session *s, size_t idx, ag_session_done_fn done, void *arg);
/* Releases the timer (asynchronously; the loop must run afterwards). */
void ag_session_close(struct ag_session *s);
/* Ends a session that waits for a retry (nothing in flight) as canceled. */
void ag_session_abort(struct ag_session *s);
/* Runs one session to its end (sequential modes). */
void ag_session_run(struct ag_session *s, size_t idx);

/* ---- modes ---- */

int ag_run_load(const struct ag_opts *o);
int ag_run_demo(const struct ag_opts *o);
int ag_run_idle(const struct ag_opts *o);
int ag_run_conformance(const struct ag_opts *o);
int ag_run_keys(const struct ag_opts *o);

/*
 * Admin API client (issue 5 contract): enrollment, and the tenant's TAM keys,
 * manifest (TC-signer) keys and numbering for whatever the options left unset.
 */
int ag_admin_enroll(struct ag_fleet *f);
int ag_admin_tenant(struct ag_fleet *f);
/* Enrollment and tenant lookup as the options ask; then checks that a TAM key is known. */
int ag_fleet_admin(struct ag_fleet *f);

/* Report output (load mode). */
struct ag_run_info {
    double window_s;       /* the measurement window: start until the stop */
    double total_s;        /* start until the last session ended */
    uint64_t win_sessions; /* sessions that ended OK inside the window */
    uint64_t win_messages; /* HTTP exchanges answered inside the window */
    double cpu_s;          /* this process's CPU time (user + system) during the window */
    unsigned concurrency;
    struct tam_httpc_stats http;
};
void ag_report_text(FILE *out, const struct ag_fleet *f, const struct ag_run_info *ri);
int ag_report_json(FILE *out, const struct ag_fleet *f, const struct ag_run_info *ri);

/* A monotonic clock in microseconds. */
uint64_t ag_now_us(void);

#endif
