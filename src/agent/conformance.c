/*
 * Conformance mode: one device walks through scripted checks against a live TAM
 * and prints "PASS name", "FAIL name: reason" or "SKIP name: reason" per check,
 * then "N passed, N failed". Exit status 0 only when nothing failed (and
 * something passed).
 *
 * Expectations come from the TEEP spec (TEEP-DIGEST 1-2) and from flags; the
 * checks that need TAM-side setup say so:
 *   install      the TAM's policy must install at least one TC on this device
 *                (e.g. the demo tenant), or --expect-install names them;
 *   update       --update-cmd publishes a newer manifest of an installed TC;
 *   requested_tc, have_binary, delete
 *                --request-tc names a TC in the TAM's catalogue that the policy
 *                does not install (the device asks for it, then asks again
 *                holding the binary, then declares it unneeded).
 * Every check is sequential: the loop runs only inside the helpers below, never
 * in a callback, so the checks read like the protocol.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

enum verdict { V_PASS, V_FAIL, V_SKIP };

struct conf {
    struct ag_fleet f;
    uv_loop_t *loop;
    const struct ag_opts *o;
    struct ag_session sess;
    struct tam_agent_device *dev;
    char why[512];
    unsigned first_installed; /* TCs installed by first_contact's session */
    struct tam_buf x;         /* --request-tc component id, encoded */
    bool has_x;
    bool x_has_seq;
    uint64_t x_seq;
    bool x_done;              /* requested_tc installed it */
    struct tam_buf x_payload; /* its payload, for have_binary */
    uint64_t x_installed_seq;
};

static enum verdict fail(struct conf *c, const char *fmt, ...) TAM_PRINTF(2, 3);
static enum verdict note(struct conf *c, enum verdict v, const char *fmt, ...) TAM_PRINTF(3, 4);

static enum verdict fail(struct conf *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    return V_FAIL;
}

static enum verdict note(struct conf *c, enum verdict v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    return v;
}

/* ---- synchronous HTTP ---- */

struct raw_resp {
    bool done;
    int err;
    int status;
    bool teep_type;
    bool sec_headers;
    struct tam_buf body;
};

static void raw_init(struct raw_resp *r)
{
    memset(r, 0, sizeof(*r));
    tam_buf_init(&r->body, TAM_AGENT_MAX_MSG);
}

static void on_raw(void *arg, int err, const struct tam_httpc_resp *resp)
{
    struct raw_resp *r = arg;
    r->done = true;
    r->err = err;
    if (err != TAM_OK) {
        return;
    }
    r->status = resp->status;
    const char *ct = tam_httpc_resp_header(resp, "Content-Type");
    r->teep_type = ct != NULL && strncmp(ct, TAM_TEEP_MEDIA_TYPE, strlen(TAM_TEEP_MEDIA_TYPE)) == 0;
    const char *ns = tam_httpc_resp_header(resp, "X-Content-Type-Options");
    const char *csp = tam_httpc_resp_header(resp, "Content-Security-Policy");
    const char *rp = tam_httpc_resp_header(resp, "Referrer-Policy");
    r->sec_headers = ns != NULL && strcmp(ns, "nosniff") == 0 && csp != NULL &&
                     strstr(csp, "default-src 'none'") != NULL && rp != NULL &&
                     strcmp(rp, "no-referrer") == 0 &&
                     tam_httpc_resp_header(resp, "Cache-Control") == NULL;
    if (tam_buf_append(&r->body, resp->body.ptr, resp->body.len) != TAM_OK) {
        r->err = TAM_ETOOBIG;
    }
}

/* POSTs body (content_type NULL: the TEEP media type) and waits for the answer. */
static void post_raw(struct conf *c, struct tam_bytes body, const char *content_type,
                     struct raw_resp *r)
{
    tam_buf_reset(&r->body);
    r->done = false;
    r->err = 0;
    r->status = 0;
    struct tam_httpc_header h[2] = {
        {"Accept", TAM_TEEP_MEDIA_TYPE},
        {"Content-Type", content_type != NULL ? content_type : TAM_TEEP_MEDIA_TYPE}};
    struct tam_httpc_req req = {.headers = h, .n_headers = body.len > 0 ? 2 : 1, .body = body};
    int err = tam_httpc_request(c->f.pool, &req, on_raw, r);
    if (err != TAM_OK) {
        r->err = err;
        return;
    }
    ag_run_until(c->loop, &r->done);
}

static bool empty_2xx(const struct raw_resp *r)
{
    return r->err == TAM_OK && r->status >= 200 && r->status < 300 && r->body.len == 0;
}

static bool message_200(const struct raw_resp *r)
{
    return r->err == TAM_OK && r->status >= 200 && r->status < 300 && r->body.len > 0;
}

static const char *describe(const struct raw_resp *r, char *buf, size_t cap)
{
    if (r->err != TAM_OK) {
        /* libuv codes are -errno: name them as libuv does (ECONNREFUSED, ...). */
        const char *name = r->err > -4096 ? uv_err_name(r->err) : tam_errname(r->err);
        snprintf(buf, cap, "transport error %s", name);
    } else {
        snprintf(buf, cap, "HTTP %d%s", r->status, r->body.len > 0 ? " with a body" : "");
    }
    return buf;
}

/* ---- the agent core, synchronously ---- */

struct sync_fetch {
    bool done;
    int err;
    struct tam_buf *out;
};

static void on_sync_fetched(void *arg, int err, const uint8_t *data, size_t len)
{
    struct sync_fetch *s = arg;
    s->err = err == TAM_OK ? tam_buf_append(s->out, data, len) : err;
    s->done = true;
}

static int fetch_now(void *arg, const char *uri, struct tam_buf *out)
{
    struct conf *c = arg;
    struct sync_fetch s = {.out = out};
    int err = ag_fetch(c->f.fetcher, uri, on_sync_fetched, &s);
    if (err != TAM_OK) {
        return err;
    }
    ag_run_until(c->loop, &s.done);
    return s.err;
}

static int handle(struct conf *c, const struct tam_buf *msg, struct tam_buf *reply,
                  struct tam_agent_outcome *o)
{
    tam_buf_reset(reply);
    return tam_agent_on_message(c->dev, msg->data, msg->len, (int64_t)time(NULL), fetch_now, c,
                                reply, o);
}

/*
 * Continues an exchange from the TAM's answer r: while it carries a message, the
 * device handles it and POSTs its reply. Counts installs; r ends as the last answer.
 */
static enum verdict drive(struct conf *c, struct raw_resp *r, unsigned *installed,
                          struct tam_agent_outcome *last_update)
{
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    enum verdict v = V_PASS;
    for (unsigned n = 0; v == V_PASS && message_200(r); n++) {
        struct tam_agent_outcome o;
        if (n == c->o->max_messages || !r->teep_type) {
            v = fail(c, n == c->o->max_messages ? "too many messages in one session"
                                                : "a message without the TEEP Content-Type");
            break;
        }
        if (handle(c, &r->body, &reply, &o) != TAM_OK) {
            v = fail(c, "agent: %s", o.why);
            break;
        }
        if (o.received == TAM_TEEP_UPDATE) {
            *installed += o.n_installed + o.n_deleted + o.n_unlinked;
            if (last_update != NULL) {
                *last_update = o;
            }
        }
        if (o.sent == 0) {
            break;
        }
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, r);
    }
    char d[64];
    if (v == V_PASS && !empty_2xx(r) && !message_200(r)) {
        v = fail(c, "the exchange ended with %s", describe(r, d, sizeof(d)));
    }
    tam_buf_finish(&reply);
    return v;
}

/* Empty POST; the QueryRequest goes through the core; *reply is the device's answer. */
static enum verdict open_session(struct conf *c, struct raw_resp *r, struct tam_buf *reply,
                                 struct tam_agent_outcome *o)
{
    char d[64];
    post_raw(c, tam_bytes_of(NULL, 0), NULL, r);
    if (!message_200(r) || !r->teep_type) {
        return fail(c, "empty POST answered with %s%s", describe(r, d, sizeof(d)),
                    message_200(r) ? " without the TEEP Content-Type" : "");
    }
    if (handle(c, &r->body, reply, o) != TAM_OK || o->sent == 0) {
        return fail(c, "agent: %s", o->why != NULL ? o->why : "no answer");
    }
    if (o->fail != TAM_AGENT_OK || o->received != TAM_TEEP_QUERY_REQUEST) {
        return fail(c, "the TAM's first message: %s (%s)", tam_agent_fail_name(o->fail),
                    o->why != NULL ? o->why : tam_teep_type_name(o->received));
    }
    return V_PASS;
}

/* A whole session through the session driver (the same code as load mode). */
static enum verdict session(struct conf *c, unsigned *changes)
{
    ag_session_run(&c->sess, 0);
    *changes = 0;
    for (unsigned i = 0; i < c->sess.ntrace; i++) {
        const struct tam_agent_outcome *o = &c->sess.trace[i].out;
        if (o->received == TAM_TEEP_UPDATE) {
            *changes += o->n_installed + o->n_deleted + o->n_unlinked;
        }
    }
    if (!c->sess.ok) {
        return fail(c, "session failed: %s (last HTTP status %d)", ag_err_name(c->sess.err),
                    c->sess.last_status);
    }
    return V_PASS;
}

static bool x_installed(struct conf *c, struct tam_agent_tc_info *tc)
{
    return tam_agent_device_tc_find(c->dev, tam_bytes_of(c->x.data, c->x.len), false, tc);
}

static int x_segments(struct conf *c, struct tam_bytes enc, struct tam_bytes *seg, size_t *n)
{
    return tam_agent_id_segments(enc, seg, TAM_TEEP_MAX_ID_SEGMENTS, n);
}

/* ---- the checks ---- */

static enum verdict check_first_contact(struct conf *c)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    enum verdict v = open_session(c, &r, &reply, &o);
    bool headers = r.sec_headers;
    if (v == V_PASS && !headers) {
        v = fail(c, "a TEEP response lacks X-Content-Type-Options: nosniff, "
                    "Content-Security-Policy: default-src 'none' or Referrer-Policy: "
                    "no-referrer, or carries Cache-Control");
    }
    if (v == V_PASS && (o.data_items & TAM_TEEP_DATA_ATTESTATION) && o.challenge_len == 0 &&
        o.token_len == 0) {
        v = fail(c, "attestation requested without a challenge or token (no freshness)");
    }
    if (v == V_PASS) {
        char d[64];
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        if (!empty_2xx(&r) && !message_200(&r)) {
            v = fail(c, "the QueryResponse was answered with %s", describe(&r, d, sizeof(d)));
        } else {
            v = drive(c, &r, &c->first_installed, NULL);
        }
    }
    if (v == V_PASS) {
        v = note(c, V_PASS, "%s, %s, token %zu bytes", o.sign_multi ? "COSE_Sign" : "COSE_Sign1",
                 (o.data_items & TAM_TEEP_DATA_ATTESTATION) ? "attestation requested"
                                                            : "no attestation",
                 o.token_len);
    }
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

static enum verdict expect_installed(struct conf *c)
{
    for (size_t i = 0; i < c->o->n_expect_install; i++) {
        struct tam_buf id;
        tam_buf_init(&id, TAM_AGENT_ID_MAX);
        struct tam_agent_tc_info tc;
        bool ok = tam_agent_id_parse(c->o->expect_install[i], &id) == TAM_OK &&
                  tam_agent_device_tc_find(c->dev, tam_bytes_of(id.data, id.len), false, &tc);
        tam_buf_finish(&id);
        if (!ok) {
            return fail(c, "%s is not installed", c->o->expect_install[i]);
        }
    }
    return V_PASS;
}

static enum verdict check_install(struct conf *c)
{
    unsigned changes = c->first_installed;
    if (changes == 0) {
        enum verdict v = session(c, &changes);
        if (v != V_PASS) {
            return v;
        }
    }
    if (changes == 0) {
        return fail(c, "no Update installed anything: the TAM needs a policy for this device "
                       "(e.g. the demo tenant), or --skip install");
    }
    enum verdict v = expect_installed(c);
    return v == V_PASS ? note(c, V_PASS, "%zu TCs installed", tam_agent_device_tc_count(c->dev))
                       : v;
}

static enum verdict check_update(struct conf *c)
{
    if (c->o->update_cmd == NULL) {
        return note(c, V_SKIP, "needs --update-cmd (a command that publishes a newer manifest)");
    }
    size_t n = tam_agent_device_tc_count(c->dev);
    uint64_t before[TAM_AGENT_MAX_TCS];
    for (size_t i = 0; i < n; i++) {
        struct tam_agent_tc_info tc;
        before[i] = tam_agent_device_tc_at(c->dev, i, &tc) ? tc.sequence : 0;
    }
    fflush(stdout);
    int rc = system(c->o->update_cmd);
    if (rc != 0) {
        return fail(c, "--update-cmd exited with status %d", rc);
    }
    unsigned changes = 0;
    enum verdict v = session(c, &changes);
    for (size_t i = 0; v == V_PASS && i < n && i < tam_agent_device_tc_count(c->dev); i++) {
        struct tam_agent_tc_info tc;
        if (tam_agent_device_tc_at(c->dev, i, &tc) && tc.sequence > before[i]) {
            return note(c, V_PASS, "sequence %llu -> %llu", (unsigned long long)before[i],
                        (unsigned long long)tc.sequence);
        }
    }
    return v == V_PASS ? fail(c, "no installed TC got a higher sequence number") : v;
}

static enum verdict check_requested_tc(struct conf *c)
{
    if (!c->has_x) {
        return note(c, V_SKIP, "needs --request-tc (a TC the policy does not install)");
    }
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    size_t n = 0;
    struct tam_agent_tc_info tc;
    tam_agent_device_tc_remove(c->dev, tam_bytes_of(c->x.data, c->x.len), false);
    if (x_segments(c, tam_bytes_of(c->x.data, c->x.len), seg, &n) != TAM_OK ||
        tam_agent_device_request(c->dev, seg, n, c->x_has_seq, c->x_seq, false,
                                 tam_bytes_of(NULL, 0)) != TAM_OK) {
        return fail(c, "bad --request-tc");
    }
    unsigned changes = 0;
    enum verdict v = session(c, &changes);
    tam_agent_device_clear_scenario(c->dev);
    if (v != V_PASS) {
        return v;
    }
    if (!x_installed(c, &tc)) {
        return fail(c, "the TAM did not install the requested TC");
    }
    c->x_done = true;
    c->x_installed_seq = tc.sequence;
    tam_buf_reset(&c->x_payload);
    if (tc.has_payload && tam_buf_append(&c->x_payload, tc.payload.ptr, tc.payload.len) != TAM_OK) {
        return fail(c, "payload too large");
    }
    return note(c, V_PASS, "installed at sequence %llu", (unsigned long long)tc.sequence);
}

static enum verdict check_have_binary(struct conf *c)
{
    if (!c->has_x || !c->x_done) {
        return note(c, V_SKIP, "needs --request-tc and a passing requested_tc");
    }
    /* The device lost the manifest but kept the binary: it asks again, holding it. */
    tam_agent_device_tc_remove(c->dev, tam_bytes_of(c->x.data, c->x.len), false);
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    size_t n = 0;
    struct tam_bytes bin = tam_bytes_of(c->x_payload.data, c->x_payload.len);
    if (x_segments(c, tam_bytes_of(c->x.data, c->x.len), seg, &n) != TAM_OK ||
        tam_agent_device_request(c->dev, seg, n, true, c->x_installed_seq, true, bin) != TAM_OK) {
        return fail(c, "cannot build the request");
    }
    unsigned changes = 0;
    enum verdict v = session(c, &changes);
    tam_agent_device_clear_scenario(c->dev);
    struct tam_agent_tc_info tc;
    if (v == V_PASS && !x_installed(c, &tc)) {
        return fail(c, "no manifest came for a TC requested with have-binary");
    }
    return v;
}

static enum verdict check_delete(struct conf *c)
{
    struct tam_agent_tc_info tc;
    if (!c->has_x || !x_installed(c, &tc)) {
        return note(c, V_SKIP, "needs --request-tc and the TC installed by requested_tc");
    }
    struct tam_bytes seg[TAM_TEEP_MAX_ID_SEGMENTS];
    size_t n = 0;
    if (x_segments(c, tc.manifest_component_id, seg, &n) != TAM_OK ||
        tam_agent_device_unrequest(c->dev, seg, n) != TAM_OK) {
        return fail(c, "cannot build the unneeded list");
    }
    unsigned changes = 0;
    enum verdict v = session(c, &changes);
    tam_agent_device_clear_scenario(c->dev);
    if (v == V_PASS && x_installed(c, &tc)) {
        return fail(c, "the TAM did not unlink the TC the device declared unneeded");
    }
    return v;
}

/* An invalid message must be dropped: an empty 2xx (or 4xx), never a message nor a 5xx. */
static enum verdict expect_ignored(struct conf *c, const struct raw_resp *r, const char *what)
{
    char d[64];
    if (message_200(r)) {
        return fail(c, "the TAM answered %s with a message", what);
    }
    if (r->err != TAM_OK || r->status >= 500) {
        return fail(c, "%s got %s", what, describe(r, d, sizeof(d)));
    }
    return V_PASS;
}

static enum verdict check_replay(struct conf *c)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    unsigned changes = 0;
    enum verdict v = open_session(c, &r, &reply, &o);
    if (v == V_PASS) {
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        v = drive(c, &r, &changes, NULL);
    }
    if (v == V_PASS) {
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r); /* the same bytes again */
        v = expect_ignored(c, &r, "a replayed QueryResponse");
        v = v == V_PASS ? note(c, V_PASS, "replay answered HTTP %d", r.status) : v;
    }
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

static enum verdict check_bad_signature(struct conf *c)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply, forged;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    tam_buf_init(&forged, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    unsigned changes = 0;
    char d[64];
    enum verdict v = open_session(c, &r, &reply, &o);
    if (v == V_PASS && tam_buf_append(&forged, reply.data, reply.len) == TAM_OK) {
        forged.data[forged.len - 1] ^= 0x01; /* the signature is the last item */
        post_raw(c, tam_bytes_of(forged.data, forged.len), NULL, &r);
        v = expect_ignored(c, &r, "a badly signed QueryResponse");
    }
    if (v == V_PASS) {
        /* The forged message must not have consumed the token (TP 1.8). */
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        if (!empty_2xx(&r) && !message_200(&r)) {
            v = fail(c, "the genuine QueryResponse sent after the forged one got %s",
                     describe(&r, d, sizeof(d)));
        } else {
            v = drive(c, &r, &changes, NULL);
        }
    }
    tam_buf_finish(&forged);
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

static enum verdict check_wrong_content_type(struct conf *c)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    unsigned changes = 0;
    char d[64];
    enum verdict v = open_session(c, &r, &reply, &o);
    if (v == V_PASS) {
        post_raw(c, tam_bytes_of(reply.data, reply.len), "text/plain", &r);
        v = r.err == TAM_OK && r.status == 415
                ? note(c, V_PASS, "HTTP 415")
                : fail(c, "a QueryResponse sent as text/plain got %s, expected 415",
                       describe(&r, d, sizeof(d)));
        /* Finish the session properly so that the TAM is left clean. */
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        char keep[sizeof(c->why)];
        memcpy(keep, c->why, sizeof(keep));
        (void)drive(c, &r, &changes, NULL);
        memcpy(c->why, keep, sizeof(keep));
    }
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

/* One session whose Evidence is broken by fault: no manifest may come back. */
static enum verdict bad_attestation(struct conf *c, unsigned fault, const char *what, bool *skipped)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    char d[64];
    post_raw(c, tam_bytes_of(NULL, 0), NULL, &r);
    enum verdict v = V_PASS;
    if (!message_200(&r)) {
        v = fail(c, "empty POST answered with %s", describe(&r, d, sizeof(d)));
    }
    tam_agent_device_set_faults(c->dev, fault);
    if (v == V_PASS && (handle(c, &r.body, &reply, &o) != TAM_OK || o.sent == 0)) {
        v = fail(c, "agent: %s", o.why);
    }
    tam_agent_device_set_faults(c->dev, 0);
    if (v == V_PASS && !(o.data_items & TAM_TEEP_DATA_ATTESTATION)) {
        *skipped = true;
        v = note(c, V_SKIP, "the TAM does not request attestation");
    }
    if (v == V_PASS) {
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        unsigned changes = 0;
        struct tam_agent_outcome up;
        memset(&up, 0, sizeof(up));
        if (r.err != TAM_OK || r.status >= 500) {
            v = fail(c, "Evidence with %s got %s", what, describe(&r, d, sizeof(d)));
        } else {
            v = drive(c, &r, &changes, &up);
        }
        if (v == V_PASS && up.n_manifests > 0) {
            v = fail(c, "the TAM sent %u manifests after Evidence with %s", up.n_manifests, what);
        }
    }
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

static enum verdict check_attestation_failure(struct conf *c)
{
    /* Forget every TC: a TAM that trusted the Evidence would now send manifests. */
    tam_agent_device_reset(c->dev);
    bool skipped = false;
    enum verdict v = bad_attestation(c, TAM_AGENT_FAULT_BAD_NONCE, "a wrong eat_nonce", &skipped);
    if (v == V_PASS) {
        v = bad_attestation(c, TAM_AGENT_FAULT_UNTRUSTED_ATTESTER, "an untrusted attester key",
                            &skipped);
    }
    return v == V_PASS ? note(c, V_PASS, "wrong nonce and untrusted attester refused") : v;
}

static enum verdict check_unknown_error_code(struct conf *c)
{
    struct raw_resp r;
    raw_init(&r);
    struct tam_buf reply;
    tam_buf_init(&reply, TAM_AGENT_MAX_MSG);
    struct tam_agent_outcome o;
    unsigned changes = 0;
    char d[64];
    enum verdict v = open_session(c, &r, &reply, &o);
    if (v == V_PASS) {
        tam_buf_reset(&reply);
        int err = tam_agent_build_error(c->dev, tam_bytes_of(o.token, o.token_len),
                                        TAM_TEEP_ERR_UNKNOWN_BASE + 250,
                                        "conformance: unknown error code", o.alg, &reply);
        if (err != TAM_OK) {
            v = fail(c, "cannot build the Error: %s", tam_strerror(err));
        }
    }
    if (v == V_PASS) {
        post_raw(c, tam_bytes_of(reply.data, reply.len), NULL, &r);
        if (!empty_2xx(&r) && !message_200(&r)) {
            v = fail(c, "an Error with err-code 250 got %s", describe(&r, d, sizeof(d)));
        } else {
            v = drive(c, &r, &changes, NULL);
            v = v == V_PASS ? note(c, V_PASS, "HTTP %d", r.status) : v;
        }
    }
    tam_buf_finish(&reply);
    tam_buf_finish(&r.body);
    return v;
}

/* ---- running ---- */

typedef enum verdict check_fn(struct conf *c);

static const struct {
    const char *name;
    check_fn *fn;
} checks[] = {
    {"first_contact", check_first_contact},
    {"install", check_install},
    {"update", check_update},
    {"requested_tc", check_requested_tc},
    {"have_binary", check_have_binary},
    {"delete", check_delete},
    {"replay", check_replay},
    {"bad_signature", check_bad_signature},
    {"wrong_content_type", check_wrong_content_type},
    {"attestation_failure", check_attestation_failure},
    {"unknown_error_code", check_unknown_error_code},
};

static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p += len;
        p += *p == ',' ? 1 : 0;
    }
    return false;
}

static int parse_x(struct conf *c)
{
    const struct ag_opts *o = c->o;
    tam_buf_init(&c->x, TAM_AGENT_ID_MAX);
    tam_buf_init(&c->x_payload, TAM_AGENT_MAX_PAYLOAD);
    if (o->n_request_ids == 0) {
        return TAM_OK;
    }
    const char *spec = o->request_ids[0];
    const char *at = strrchr(spec, '@');
    char text[TAM_AGENT_ID_MAX * 2];
    size_t len = strlen(spec);
    if (at != NULL) {
        char *end = NULL;
        unsigned long long v = strtoull(at + 1, &end, 10);
        if (end != at + 1 && *end == '\0') {
            c->x_has_seq = true;
            c->x_seq = v;
            len = (size_t)(at - spec);
        }
    }
    if (len >= sizeof(text)) {
        return TAM_EINVAL;
    }
    memcpy(text, spec, len);
    text[len] = '\0';
    int err = tam_agent_id_parse(text, &c->x);
    c->has_x = err == TAM_OK;
    if (err != TAM_OK) {
        fprintf(stderr, "tam-agent: bad --request-tc '%s'\n", spec);
    }
    return err;
}

static int setup(struct conf *c)
{
    int err = ag_fleet_init(&c->f, c->loop, c->o, c->o->devices, 4);
    err = err == TAM_OK ? parse_x(c) : err;
    err = err == TAM_OK ? ag_fleet_admin(&c->f) : err;
    if (err == TAM_OK && c->f.n_tam_keys == 0) {
        fprintf(stderr, "tam-agent: conformance verifies the TAM: --tam-key or --admin\n");
        err = TAM_ECONFIG;
    }
    if (err == TAM_OK) {
        c->dev = c->f.devs[0];
        ag_session_init(&c->sess, &c->f);
    }
    return err;
}

static int run_checks(struct conf *c)
{
    unsigned passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < TAM_ARRAY_LEN(checks); i++) {
        const char *name = checks[i].name;
        if ((c->o->only != NULL && !in_list(c->o->only, name)) || in_list(c->o->skip, name)) {
            continue;
        }
        c->why[0] = '\0';
        enum verdict v = checks[i].fn(c);
        tam_agent_device_set_faults(c->dev, 0);
        if (v == V_PASS) {
            passed++;
            if (c->why[0] != '\0') {
                printf("PASS %s (%s)\n", name, c->why);
            } else {
                printf("PASS %s\n", name);
            }
        } else if (v == V_FAIL) {
            failed++;
            printf("FAIL %s: %s\n", name, c->why);
        } else {
            skipped++;
            printf("SKIP %s: %s\n", name, c->why);
        }
        fflush(stdout);
    }
    if (skipped > 0) {
        printf("%u skipped\n", skipped);
    }
    printf("%u passed, %u failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 && passed > 0 ? 0 : 1;
}

int ag_run_conformance(const struct ag_opts *o)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        return 2;
    }
    struct conf *c = tam_calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_loop_close(&loop);
        return 2;
    }
    c->loop = &loop;
    c->o = o;
    int rc = 2;
    if (setup(c) == TAM_OK) {
        fprintf(stderr, "tam-agent conformance: %s, numbering %s, device %s\n", o->url,
                tam_teep_numbering_name(c->f.prof.numbering),
                tam_key_type(tam_agent_device_key(c->dev)) == TAM_KEY_P256 ? "P-256" : "Ed25519");
        rc = run_checks(c);
        ag_session_close(&c->sess);
    }
    tam_buf_finish(&c->x);
    tam_buf_finish(&c->x_payload);
    ag_fleet_finish(&c->f);
    tam_free(c);
    uv_loop_close(&loop);
    return rc;
}
