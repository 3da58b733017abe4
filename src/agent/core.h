/*
 * Internals shared by the files of the pure agent core (device.c, step.c,
 * query.c, update.c, ids.c). Not used by the glue.
 */
#ifndef TAM_AGENT_CORE_H
#define TAM_AGENT_CORE_H

#include "tam/agent.h"
#include "tam/arena.h"
#include "tam/suit.h"

/* One installed TC. Every byte array is owned (tam_malloc). */
struct ag_tc {
    uint8_t *cid; /* encoded component id */
    size_t cid_len;
    uint8_t *mcid; /* encoded manifest component id (the key) */
    size_t mcid_len;
    uint64_t sequence;
    uint8_t manifest_digest[TAM_SHA256_LEN];
    bool has_image_digest;
    uint8_t image_digest[TAM_SHA256_LEN];
    bool has_payload;
    bool encrypted;
    uint8_t *payload;
    size_t payload_len;
    char *reference_uri; /* NUL-terminated, "" when the manifest had none */
};

/* One entry of the scenario. */
struct ag_want {
    uint8_t *id; /* encoded component id (request) or manifest component id (unrequest) */
    size_t id_len;
    bool has_seq;
    uint64_t seq;
    bool have_binary;
    uint8_t *binary; /* may be NULL with have_binary: held without bytes */
    size_t binary_len;
};

struct tam_agent_device {
    const struct tam_agent_profile *profile;
    struct tam_key *key;
    uint8_t ueid[TAM_EAT_UEID_MAX];
    size_t ueid_len;
    unsigned faults;
    /* Grown on demand (a fleet holds many devices, most with few TCs). */
    struct ag_tc *tcs;
    size_t ntcs;
    size_t cap_tcs;
    struct ag_want *req;
    size_t nreq;
    struct ag_want *unreq;
    size_t nunreq;
};

struct tam_agent_vcache {
    size_t cap;
    size_t n;
    size_t next; /* the slot replaced next (round robin) */
    uint64_t hits;
    uint64_t misses;
    uint8_t (*keys)[TAM_SHA256_LEN];
};

/* Where a manifest's payload comes from. */
enum ag_source {
    SRC_NONE = 0,   /* manifest only (or an unlink manifest) */
    SRC_INTEGRATED, /* envelope member */
    SRC_CONTENT,    /* parameter content (18) */
    SRC_HELD,       /* have-binary: the device holds it */
    SRC_FETCH,      /* fetch slot */
};

/* One envelope of an Update and what processing found. */
struct ag_job {
    struct tam_bytes bytes; /* the envelope (into the step's input copy) */
    struct tam_suit_envelope env;
    bool parsed;
    bool failed;
    uint64_t reason; /* enum tam_suit_reason when failed */
    int64_t section; /* manifest section where it failed */
    const char *why;
    bool is_delete;
    bool encrypted;
    enum ag_source src;
    struct tam_bytes payload; /* SRC_INTEGRATED / SRC_CONTENT / SRC_HELD with bytes */
    size_t fetch_idx;         /* SRC_FETCH */
    bool fetch_failed;        /* failed because its fetch failed */
    uint8_t digest[TAM_SHA256_LEN];
    uint8_t mcid[TAM_AGENT_ID_MAX]; /* the manifest component id used as the key */
    size_t mcid_len;
};

struct ag_fetch {
    char *uri;
    uint8_t *data;
    size_t len;
    bool supplied;
    bool failed;
};

struct tam_agent_step {
    struct tam_agent_device *dev;
    uint8_t *input; /* owned copy of the TAM message */
    size_t input_len;
    struct tam_arena arena;
    struct tam_teep_msg msg;
    bool decoded;
    bool multi;  /* COSE_Sign */
    int tam_alg; /* alg of the signer that verified (0: unknown) */
    enum tam_agent_fail fail;
    const char *why;
    enum tam_teep_type expect; /* 0: any Agent-bound type */
    struct ag_job *jobs;
    size_t njobs;
    struct ag_fetch fetch[TAM_AGENT_MAX_FETCH];
    size_t nfetch;
    bool finished;
};

/* step.c */
int ag_reply_alg(const struct tam_agent_device *dev, int peer_alg);
int ag_sign_reply(struct tam_agent_device *dev, int alg, const struct tam_teep_msg *m,
                  struct tam_buf *reply);
int ag_send_error(struct tam_agent_step *s, uint32_t code, const char *msg, int alg,
                  struct tam_buf *reply, struct tam_agent_outcome *o);

/* query.c */
int ag_answer_query(struct tam_agent_step *s, int64_t now, struct tam_buf *reply,
                    struct tam_agent_outcome *o);
int ag_installed_reports(struct tam_agent_device *dev, struct tam_bytes nonce,
                         struct tam_arena *arena, struct tam_teep_msg *m);
/* A bare SUIT report (records empty; on failure the result names reason and section). */
int ag_encode_report(const uint8_t digest[TAM_SHA256_LEN], struct tam_bytes ref_uri,
                     struct tam_bytes nonce, bool ok, uint64_t reason, int64_t section,
                     struct tam_arena *arena, struct tam_bytes *out);

/* update.c */
int ag_prepare_update(struct tam_agent_step *s);
int ag_apply_update(struct tam_agent_step *s, struct tam_buf *reply, struct tam_agent_outcome *o);

/* device.c */
struct ag_tc *ag_tc_by_mcid(struct tam_agent_device *dev, const uint8_t *id, size_t len);
struct ag_tc *ag_tc_by_cid(struct tam_agent_device *dev, const uint8_t *id, size_t len);
struct ag_tc *ag_tc_by_digest(struct tam_agent_device *dev, const uint8_t *digest);
void ag_tc_free(struct ag_tc *tc);
void ag_tc_remove(struct tam_agent_device *dev, struct ag_tc *tc);
/* Takes ownership of *tc's arrays (moved in; *tc is zeroed). TAM_ETOOBIG when full. */
int ag_tc_put(struct tam_agent_device *dev, struct ag_tc *tc);
bool ag_vcache_lookup(struct tam_agent_vcache *c, const uint8_t key[TAM_SHA256_LEN]);
void ag_vcache_insert(struct tam_agent_vcache *c, const uint8_t key[TAM_SHA256_LEN]);

/* ids.c */
/* Encodes segments as [* bstr] into out (at most cap bytes); returns the length or 0. */
size_t ag_id_encode(const struct tam_bytes *seg, size_t n, uint8_t *out, size_t cap);
/* Fills a TEEP component id from an encoded one (spans into enc). */
int ag_id_to_teep(const uint8_t *enc, size_t len, struct tam_teep_component_id *out);
/* The encoded form of a TEEP component id (from its segments). */
size_t ag_id_from_teep(const struct tam_teep_component_id *id, uint8_t *out, size_t cap);

#endif
