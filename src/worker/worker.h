/*
 * tam-worker internals, shared by the files of src/worker. Not a public header.
 *
 * A worker is one blocking loop over two synchronous hiredis connections: `blk` is parked in
 * XREADGROUP BLOCK (DEPS.md 5: a blocked read stalls every command behind it), `cmd` carries
 * everything else. Jobs are processed in chunks ("passes", job.c) of up to WK_CHUNK, and a
 * pass's Redis work is batched into pipelines for all its jobs: prefetch (done key,
 * catalogue version, device record, sent plan), the reports' applies (Lua, when the pass has
 * reports), commit (state writes, then SET done NX per job) and reply (XADD results, one
 * XACK, one XDEL). Redis works while the worker computes: the next XREADGROUP is sent as a
 * batch arrives, the next pass's prefetch goes out while a pass runs (look-ahead), a pass's
 * commit goes out behind the next pass's prefetch and is read while that pass runs, and the
 * replies to the results and acknowledgements are read only before the next use of the
 * connection (wk_drain). Handlers may still issue their own commands (catalogue loads, a
 * report's apply retried after a conflict), synchronously.
 *
 * Tenants come from the configuration file (tenants.c) or, for any other id, from Redis
 * records written by the admin API (rtenants.c: an LRU cache refreshed by one prefetched
 * command per job, the record's rev).
 */
#ifndef TAM_WORKER_WORKER_H
#define TAM_WORKER_WORKER_H

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/config.h"
#include "tam/cose.h"
#include "tam/crypto.h"
#include "tam/eat.h"
#include "tam/job.h"
#include "tam/keys.h"
#include "tam/plan.h"
#include "tam/seal.h"
#include "tam/session.h"
#include "tam/store.h"
#include "tam/tenant.h"
#include "tam/tstore.h"

#define WK_DONE_TTL_S      86400  /* result kept for re-runs; also the applied-marker TTL */
#define WK_RESULTS_MAXLEN  10000  /* MAXLEN ~ of a gateway's result stream */
#define WK_DEAD_MAXLEN     100000 /* MAXLEN ~ of the dead-letter stream */
#define WK_HISTORY_KEEP    TAM_STORE_HISTORY_MAX
#define WK_BLOCK_MS        1000 /* XREADGROUP BLOCK: also the SIGTERM reaction time */
#define WK_BODY_MAX        (64u << 20)
#define WK_BATCH_MAX       (WK_PREFETCH_MAX * WK_CHUNK) /* commands of one pipeline */
#define WK_BATCH_BYTES_MAX (4 * WK_BODY_MAX)            /* their encoding: a few bodies at most */
#define WK_CLOCK_SKEW_S    60                           /* EAT iat/nbf/exp tolerance */
#define WK_CHUNK           16 /* jobs processed (and pipelined) together */
#define WK_PREFETCH_MAX    5  /* prefetch commands of one job (struct wk_prefetch) */

/* Counters, printed on SIGUSR1 and at exit. */
struct wk_counters {
    uint64_t jobs;            /* entries taken (read or claimed) */
    uint64_t done;            /* jobs answered and acknowledged */
    uint64_t failed;          /* attempts that left the job pending (retried later) */
    uint64_t dead;            /* jobs moved to the dead-letter stream */
    uint64_t claimed;         /* entries taken over with XAUTOCLAIM */
    uint64_t duplicates;      /* jobs answered from the done key (re-runs) */
    uint64_t lost_races;      /* another worker finished the same token first */
    uint64_t dropped;         /* invalid TEEP messages dropped (204) */
    uint64_t updates;         /* signed Updates with manifests or unlinks */
    uint64_t error_updates;   /* Updates carrying err-code */
    uint64_t nothing;         /* nothing to do (204) */
    uint64_t query_requests;  /* new QueryRequests after an agent Error */
    uint64_t attest_ok;       /* attestations accepted */
    uint64_t attest_failed;   /* attestations refused */
    uint64_t keys_learned;    /* agent keys learned from an EAT cnf */
    uint64_t reports;         /* Success / Error answers recorded */
    uint64_t reports_dropped; /* SUIT report nonce or digest mismatch */
    uint64_t manifests_built; /* TAM-built manifests signed */
    uint64_t catalog_loads;   /* catalogue (re)loads */
    uint64_t tenant_loads;    /* Redis tenant (re)loads */
    uint64_t redis_errors;    /* connection or reply errors */
    uint64_t overlapped;      /* commits sent behind the next batch's prefetch (job.c) */
    uint64_t looked_ahead;    /* batches prefetched while the previous one ran (job.c) */
};

/* One catalogue entry: the record bytes (owned) and their decoding. */
struct wk_entry {
    uint8_t *record;
    size_t record_len;
    struct tam_store_component c; /* spans into record */
    char *field;                  /* the components hash field (owned) */
};

/* A tenant's catalogue and policy, cached per tam:t:{tenant}:catalog_version. */
struct wk_catalog {
    bool loaded;
    long long version;
    uint32_t n_entries;
    struct wk_entry *entries;            /* owned */
    uint32_t n_manifests;                /* ready entries */
    struct tam_plan_manifest *manifests; /* owned; user = the wk_entry */
    struct tam_arena arena;              /* the parsed policy */
    struct tam_store_policy policy;
};

struct wk_keys {
    struct tam_key **v; /* owned */
    size_t n;
};

struct wk_tenant {
    struct tam_tenant *t; /* TEEP message keys and settings (owned reference) */
    struct wk_keys attester;
    struct wk_keys verifier;
    struct wk_keys signer; /* tc-signer keys, plus the manifest key's public half */
    struct wk_keys device; /* registered in the config file */
    struct tam_key *manifest_key;
    struct wk_catalog cat;
    bool redis; /* built from Redis (rtenants.c): anchors come with the catalogue */
};

#define WK_RCACHE_MAX   1024 /* Redis tenants cached per worker (least recently used evicted) */
#define WK_STAMP_MAX    48   /* "<rev>/<created>" of a tenant's cfg hash */
#define WK_ANCHORS_MAX  256  /* trust anchors per kind and tenant */
#define WK_TENANT_PAIRS 64   /* fields read from a cfg or keys hash, at most */

/* One cached Redis tenant. */
struct wk_rentry {
    char id[TAM_TENANT_ID_MAX + 1];
    char stamp[WK_STAMP_MAX]; /* rev and created of the record it was built from */
    uint64_t used;            /* LRU tick */
    struct wk_tenant *wt;     /* owned; NULL: the record does not load (jobs get 500) */
};

/* Tenants created at run time through the admin API (rtenants.c). */
struct wk_rcache {
    bool enabled; /* the KEK and the worker sealing key were loaded */
    uint8_t kek[TAM_SEAL_KEK_LEN];
    struct tam_key *seal_key; /* the workers' private sealing key (owned) */
    struct wk_rentry *v;      /* owned, WK_RCACHE_MAX entries */
    uint32_t n;
    uint64_t tick;
    struct wk_tenant **retired; /* replaced during a batch, freed after it (jobs point at them) */
    uint32_t n_retired, cap_retired;
};

struct worker {
    const struct tam_config *cfg;
    char id[TAM_CONFIG_WORKER_ID_MAX + 1];
    char redis_addr[TAM_CONFIG_STR_MAX + 16];
    redisContext *cmd; /* commands */
    redisContext *blk; /* XREADGROUP BLOCK only */
    struct wk_tenant *tenants;
    uint32_t n_tenants;
    struct wk_rcache rc;
    struct wk_counters n;
    uint64_t next_claim_ms;
    uint32_t deferred;        /* replies owed on cmd for the last pass's results and acks */
    struct wk_pass *ready;    /* ran; its commit not yet sent (job.c) */
    struct wk_pass *inflight; /* its commit sent; replies not yet read */
    struct wk_pass *ahead;    /* the next batch, its prefetch sent while the last one ran */
    bool read_ahead;          /* an XREADGROUP was sent on blk and its reply not yet read */
    bool hold_writes;         /* results and acks wait for the look-ahead's write (job.c) */
    uint64_t read_sent_ms;    /* when it was sent (monotonic): its entries are ours since */
    volatile sig_atomic_t *stop;
    volatile sig_atomic_t *dump;
};

/* What the prefetch pipeline read for a job (reply objects owned here). */
struct wk_prefetch {
    redisReply *done;    /* tam:{jobs}:done:<token>: nil or the result */
    redisReply *version; /* catalog_version: nil or a number */
    redisReply *device;  /* HMGET labels installed status type pub */
    redisReply *sent;    /* REPORT: tam:s:{token}:plan */
    redisReply *stamp;   /* Redis tenants: HMGET tam:t:{id}:cfg rev created */
};

/* Commands queued for a pipeline: n commands, RESP-encoded back to back (tam/resp.h). */
struct wk_batch {
    struct tam_buf resp;
    uint32_t n;
    bool overflow; /* a command did not fit: the batch must not be sent */
};

/* One job in progress. */
struct wk_job {
    struct worker *w;
    struct tam_job job;
    struct tam_sess sess;
    struct wk_tenant *tenant; /* NULL: unknown tenant */
    bool remote;              /* not in the configuration file: looked up in Redis */
    bool tenant_invalid;      /* a Redis tenant whose record does not load */
    struct tam_arena arena;
    uint64_t now_ms;
    struct wk_prefetch pre;
    /* The device, once the message's sender is known. */
    bool has_kid;
    uint8_t kid[TAM_KID_LEN];
    struct tam_key *learned;          /* a key from the EAT cnf or the device record (owned) */
    bool learning;                    /* the device is unknown: its key comes from the EAT cnf */
    const struct tam_key *sender_key; /* the key that verified the message, when known */
    /* The result. */
    uint16_t status;
    struct tam_buf body;
    const char *outcome;
    const char *reason; /* static text for the job's log line (never peer data) */
    /* State writes, and their undo when another worker wins the done key. */
    struct wk_batch commit;
    struct wk_batch undo;
    int pending_idx;   /* index of the pending script in commit, or -1 */
    bool needs_commit; /* a fresh result: its state writes and done key go out */
    /* A REPORT's apply, queued for the batch's apply pipeline (job_report.c). */
    struct wk_report *report; /* in arena */
    struct wk_batch apply;
    bool apply_queued;
};

/* ---- rcmd.c: synchronous hiredis helpers ---- */

/*
 * Deferred replies. A chunk's results and acknowledgements are written at once but their
 * replies (which nothing depends on) are read later, while the next XREADGROUP waits: every
 * other use of cmd first reads them (wk_drain; the helpers below do it themselves).
 */
int wk_drain(struct worker *w);
/* Marks cmd unusable (replies would be owed out of order): the worker reconnects. */
void wk_poison(struct worker *w);
/* A reply (or part of one) can be read from c without waiting. */
bool wk_reply_ready(redisContext *c);
/*
 * One complete reply, if it can be had without waiting: what is buffered, else one read of
 * what the socket holds; *reply NULL when it is not all there yet. An error leaves the
 * connection unusable.
 */
int wk_reply_take(redisContext *c, void **reply);
/* Writes what was appended on cmd. */
int wk_flush(struct worker *w);
/*
 * Writes what was appended on cmd (or, with w->hold_writes, leaves it to the next write or
 * read) and records that n replies are owed.
 */
int wk_flush_deferred(struct worker *w, uint32_t n);

/* One command; NULL on a connection error (logged, counted). Free with freeReplyObject. */
redisReply *wk_cmd(struct worker *w, redisContext *c, const char *fmt, ...);
redisReply *wk_cmd_argv(struct worker *w, redisContext *c, int argc, const char **argv,
                        const size_t *lens);
bool wk_reply_ok(const redisReply *r);
bool wk_reply_bytes(const redisReply *r, struct tam_bytes *out); /* STRING (bulk) */
void wk_batch_init(struct wk_batch *b);
void wk_batch_finish(struct wk_batch *b);
/*
 * Commands are encoded into the batch's buffer (tam/resp.h), not formatted by hiredis: one
 * allocation for a whole pipeline instead of several per command. wk_batch_addf takes
 * hiredis's format (%s, %b, %d, %u, %lld, %llu); wk_batch_spans binary-safe arguments.
 */
void wk_batch_addf(struct wk_batch *b, const char *fmt, ...);
void wk_batch_spans(struct wk_batch *b, size_t n, const struct tam_bytes *args);
/* Appends the batch's commands to c's output buffer (not yet written). */
int wk_batch_append(redisContext *c, const struct wk_batch *b);
#define WK_STR(s)     ((struct tam_bytes){(const uint8_t *)(s), strlen(s)})
#define WK_NUM_(n)    #n
#define WK_NUM_STR(n) WK_NUM_(n) /* a numeric macro as a string literal */
/*
 * Sends every command of the batches b[0..n) (NULL entries skipped) in one pipeline and
 * reads every reply, in order; the replies are owned by the caller, or all NULL on an error
 * (TAM_EUNAVAIL: connection; TAM_ENOMEM: a batch overflowed, nothing sent). An error reply
 * is not a failure here.
 */
int wk_batches_exec(struct worker *w, struct wk_batch *const *b, size_t n, redisReply **replies);
int wk_batch_exec(struct worker *w, struct wk_batch *b, redisReply **replies); /* one batch */
void wk_replies_free(redisReply **replies, uint32_t n);
uint64_t wk_now_ms(void);  /* wall clock, unix ms */
uint64_t wk_mono_us(void); /* monotonic, microseconds */

/* ---- tenants.c ---- */

int wk_tenants_load(struct worker *w);
void wk_tenants_free(struct worker *w);
struct wk_tenant *wk_tenant_find(struct worker *w, const char *id);
/* A registered key from the config file by kid, or NULL. */
const struct tam_key *wk_tenant_device_key(const struct wk_tenant *t, const uint8_t *kid);
/* Releases what a tenant holds (not the struct itself). */
void wk_tenant_finish(struct wk_tenant *wt);
/* Appends a copy of key's public half to k. */
int wk_keys_add_public(struct wk_keys *k, const struct tam_key *key);
void wk_keys_free(struct wk_keys *k);

/* ---- rtenants.c: tenants created at run time (admin API, stored in Redis) ---- */

/*
 * Loads the KEK and the workers' sealing key (never creates them). When either is missing or
 * unusable, one warning is logged and only configuration-file tenants are served (TAM_OK).
 */
int wk_rtenants_init(struct worker *w);
void wk_rtenants_free(struct worker *w);
/* Whether a job for this tenant id (not in the configuration file) is looked up in Redis. */
bool wk_rtenants_serves(const struct worker *w, const char *id);
/* Queues HMGET tam:t:{id}:cfg rev created (a prefetch). */
void wk_rtenant_queue_stamp(struct wk_batch *b, const char *id);
/*
 * Resolves j->tenant for a remote job from j->pre.stamp: the cached tenant when its record did
 * not change, else (re)loaded from Redis; a deleted tenant leaves the cache (j->tenant NULL),
 * a record that does not load sets j->tenant_invalid. For a QueryResponse the catalogue (and
 * with it the trust anchors) is brought to the prefetched version too. TAM_OK or a Redis /
 * memory error (the job is retried).
 */
int wk_rtenant_resolve(struct wk_job *j);
/*
 * Replaces the trust anchors of a Redis tenant from the HGETALL replies of its anchors hashes
 * (tc-signer, attester, verifier); the signer list also gets the manifest key's public half.
 */
int wk_rtenant_anchors_set(struct wk_tenant *wt, const redisReply *const r[TAM_ANCHOR_KINDS]);
/* Frees the tenants retired during a batch (call when no job points at them any more). */
void wk_rtenants_gc(struct worker *w);

/* ---- catalog.c ---- */

/*
 * The tenant's catalogue and policy for the version in j->pre.version, (re)loaded when the
 * cache is older. TAM-built manifests are built, signed and written back here. TAM_OK or a
 * Redis error (the job is then retried).
 */
int wk_catalog_get(struct wk_job *j, struct wk_catalog **out);
void wk_catalog_free(struct wk_catalog *cat);

/* ---- devstore.c ---- */

/* The device's fields from an HMGET labels installed status type pub reply (borrowed). */
struct wk_device {
    bool exists;
    struct tam_bytes labels;
    struct tam_bytes installed;
    struct tam_bytes status;
    struct tam_bytes type;
    struct tam_bytes pub;
};

void wk_device_from_reply(const redisReply *r, struct wk_device *d);
/* Queues HMGET <device> labels installed status type pub (a prefetch). */
void wk_device_queue_get(struct wk_batch *b, const char *tenant, const uint8_t *kid);
/* Reads the device now (for a kid learned during the job); fills j->pre.device. */
int wk_device_fetch(struct wk_job *j);
/* The key of a device in Redis (type + pub), or NULL. *owned receives it. */
int wk_device_key(struct wk_job *j, const struct wk_device *d, struct tam_key **owned);
/* Queues the device refresh after a QueryResponse (attested or not) on j->commit. */
void wk_device_refresh(struct wk_job *j, const struct tam_eat_claims *claims, bool attested);
void wk_device_attestation_failed(struct wk_job *j);
void wk_device_history(struct wk_job *j, const struct tam_store_history *h);
/*
 * Queues on b the command that applies a REPORT at most once per token (Lua, in the
 * device's slot): the applied marker, the installed list when it still equals old
 * (compare-and-set), last_seen, history, and ZREM of the token from pending.
 */
int wk_device_apply_queue(struct wk_job *j, const struct tam_bytes *old,
                          const struct tam_buf *updated, bool change,
                          const struct tam_store_history *h, struct wk_batch *b);
/* Its reply: 1 applied, 0 already applied, -1 installed list changed meanwhile (recompute
 * and retry), or a negative TAM error (NULL: the connection failed). */
int wk_device_applied(const redisReply *r);
/*
 * Queues a session record on j->commit (+ its undo). With sent (an UPDATE) also its sent plan
 * and the pending entry, trimmed to the tenant's cap (j->pending_idx is set).
 */
void wk_session_store(struct wk_job *j, const struct tam_sess *s, const struct tam_buf *sent,
                      uint64_t ttl_ms);
/* After the commit: deletes the sessions of tokens the pending script dropped over the cap. */
int wk_pending_dropped(struct wk_job *j, const redisReply *r);

/* ---- attest.c ---- */

struct wk_attest {
    bool checked;            /* an EAT was verified (signature) */
    bool passport;           /* verified with a Verifier key: an Attestation Result */
    struct tam_eat_claims c; /* spans into the job's message */
};

/*
 * Verifies the attestation-payload's signature (attester keys, then verifier keys) into *a.
 * TAM_OK, TAM_ESIG / TAM_EEAT / ... with *why.
 */
int wk_attest_verify(struct wk_job *j, const struct tam_teep_msg *m, struct wk_attest *a,
                     const char **why);
/* Profile, binding (nonce, cnf == j->kid), freshness and the tenant's claim policy. */
int wk_attest_check(struct wk_job *j, const struct wk_attest *a, const struct tam_eat_policy *pol,
                    const char **why);
/* Imports the cnf COSE_Key of a verified EAT (the key to learn). */
int wk_attest_cnf_key(const struct tam_eat_claims *c, struct tam_key **out, const char **why);

/* ---- job_query.c / job_report.c ---- */

/*
 * Each returns TAM_OK with j->status / j->body / j->outcome set and j->commit queued, or a
 * negative error when the job must be retried (Redis unavailable, out of memory). A report
 * that changes device state returns with j->apply_queued instead: its result comes from
 * wk_report_applied, given the reply to j->apply.
 */
int wk_query_run(struct wk_job *j);
int wk_report_run(struct wk_job *j);
int wk_report_applied(struct wk_job *j, const redisReply *reply);
/* Helpers shared by both. */
void wk_job_drop(struct wk_job *j, const char *reason);
int wk_job_verify_sender(struct wk_job *j, const struct tam_cose_msg *cose);
int wk_job_agent_alg(const struct wk_job *j, const struct tam_cose_msg *cose);
/* When the gateway received the message (job.received_ms; now if absent or in the future). */
uint64_t wk_job_arrival_ms(const struct wk_job *j);

/* ---- job.c ---- */

/* One stream entry of a batch. */
struct wk_item {
    char id[48];                          /* stream entry id */
    struct tam_bytes raw;                 /* its `job` field */
    int rc;                               /* the outcome, see wk_jobs_process */
    struct tam_buf result;                /* the encoded tam_job_result */
    char reply_to[TAM_JOB_REPLY_MAX + 1]; /* where to send it; "" = nowhere */
};

struct wk_pass;

/*
 * Runs a batch of at most WK_CHUNK jobs (id and raw set; raw is copied) with a few round
 * trips for all of them: prefetch, the reports' applies (when there are reports). The batch
 * is left in w->ready: its commit goes out with the next batch's prefetch (wk_jobs_process)
 * or by wk_jobs_commit, and when its replies are read (wk_jobs_collect) each entry is
 * acknowledged with its result (rc TAM_OK) or left pending: TAM_EINVAL, the job cannot be
 * decoded (it reaches the dead-letter stream after job-attempts deliveries); other errors,
 * retried after claim-idle.
 */
void wk_jobs_process(struct worker *w, const struct wk_item *items, size_t n);
/*
 * Looking ahead (called by wk_queue_look_ahead while a batch runs): the next batch's entries
 * become w->ahead and its prefetch is written at once, so that Redis answers it during this
 * batch's crypto. Its replies are owed after everything written before them: wk_drain reads
 * them (wk_jobs_receive_ahead) before any later command's reply. wk_jobs_run_ahead runs the
 * batch (false: there is none); wk_jobs_drop_ahead frees it with a lost connection.
 */
void wk_jobs_look_ahead(struct worker *w, const struct wk_item *items, size_t n);
bool wk_jobs_run_ahead(struct worker *w);
void wk_jobs_receive_ahead(struct worker *w);
void wk_jobs_drop_ahead(struct worker *w);
/* Commits w->ready now and waits for it: no next batch is at hand. */
void wk_jobs_commit(struct worker *w);
/* Completes w->inflight: waiting for its replies, or only once all of them have arrived. */
void wk_jobs_collect(struct worker *w, bool wait);

/* ---- queue.c ---- */

int wk_queue_run(struct worker *w);
/* Takes the next batch ahead when its entries are already there (see wk_jobs_look_ahead). */
void wk_queue_look_ahead(struct worker *w);
/* Sends the results of the finished items, then one XACK and one XDEL (replies deferred). */
void wk_queue_ack(struct worker *w, struct wk_item *items, size_t n);
void wk_counters_log(const struct worker *w);

#endif
