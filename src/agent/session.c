/*
 * One device session over TEEP/HTTP (TEEP-DIGEST 2): an empty POST opens it;
 * every non-empty 2xx answer goes through the agent core and its reply is POSTed
 * back, until the TAM answers with an empty body (204). 5xx answers, timeouts and
 * connection errors are retried with exponential backoff and jitter, a bounded
 * number of times, with the same body; anything else ends the session.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include "tam/err.h"
#include "tam/log.h"
#include "tool.h"

static void post(struct ag_session *s);

static uint64_t next_rand(struct ag_session *s)
{
    /* xorshift64*: jitter only, no security role. */
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void ag_session_init(struct ag_session *s, struct ag_fleet *f)
{
    memset(s, 0, sizeof(*s));
    s->f = f;
    tam_buf_init(&s->out, TAM_AGENT_MAX_MSG);
    uv_timer_init(f->loop, &s->timer);
    s->timer.data = s;
    s->timer_init = true;
    if (tam_random(&s->rng, sizeof(s->rng)) != TAM_OK || s->rng == 0) {
        s->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)s;
    }
}

void ag_session_close(struct ag_session *s)
{
    tam_agent_step_destroy(s->step);
    s->step = NULL;
    tam_buf_finish(&s->out);
    if (s->timer_init) {
        uv_close((uv_handle_t *)&s->timer, NULL);
        s->timer_init = false;
    }
}

static void note_err(struct ag_session *s, enum ag_err e)
{
    if (e == AG_ERR_NONE) {
        return;
    }
    s->f->stats.errors[e]++;
    if (s->err == AG_ERR_NONE) {
        s->err = e;
    }
}

static void finish(struct ag_session *s, enum ag_err e)
{
    if (!s->active) {
        return;
    }
    uv_timer_stop(&s->timer);
    tam_agent_step_destroy(s->step);
    s->step = NULL;
    s->active = false;
    note_err(s, e);
    s->ok = s->err == AG_ERR_NONE;
    struct ag_stats *st = &s->f->stats;
    if (s->ok) {
        st->sessions_ok++;
        tam_hdr_record(st->lat[AG_LAT_SESSION], (uv_hrtime() - s->t_start) / 1000u);
    } else {
        st->sessions_failed++;
    }
    s->done(s, s->arg);
}

static void on_fail_timer(uv_timer_t *t)
{
    struct ag_session *s = t->data;
    finish(s, s->pending_err);
}

static void fail_later(struct ag_session *s, enum ag_err e)
{
    /* Never call done() from inside ag_session_start(): the caller may not expect it. */
    s->pending_err = e;
    uv_timer_start(&s->timer, on_fail_timer, 0, 0);
}

static void on_retry_timer(uv_timer_t *t)
{
    post(t->data);
}

/* Exponential backoff, "equal jitter": a delay in [d/2, d], d = base * 2^(attempt-1). */
static bool retry(struct ag_session *s)
{
    const struct ag_opts *o = s->f->o;
    if (s->attempt >= o->retries || s->f->closing) {
        return false;
    }
    s->attempt++;
    s->f->stats.retries++;
    uint64_t d = o->backoff_ms;
    for (unsigned i = 1; i < s->attempt && d < o->backoff_max_ms; i++) {
        d *= 2;
    }
    d = d > o->backoff_max_ms ? o->backoff_max_ms : d;
    uint64_t delay = d / 2 + (d > 1 ? next_rand(s) % (d - d / 2 + 1) : d);
    uv_timer_start(&s->timer, on_retry_timer, delay, 0);
    return true;
}

static bool media_is_teep(const char *v)
{
    size_t n = strlen(TAM_TEEP_MEDIA_TYPE);
    return v != NULL && strncasecmp(v, TAM_TEEP_MEDIA_TYPE, n) == 0 &&
           (v[n] == '\0' || v[n] == ';' || v[n] == ' ');
}

static bool security_headers(const struct tam_httpc_resp *r)
{
    const char *nosniff = tam_httpc_resp_header(r, "X-Content-Type-Options");
    const char *csp = tam_httpc_resp_header(r, "Content-Security-Policy");
    const char *ref = tam_httpc_resp_header(r, "Referrer-Policy");
    return nosniff != NULL && strcasecmp(nosniff, "nosniff") == 0 && csp != NULL &&
           strstr(csp, "default-src 'none'") != NULL && ref != NULL &&
           strcasecmp(ref, "no-referrer") == 0 && tam_httpc_resp_header(r, "Cache-Control") == NULL;
}

static struct ag_trace *trace_new(struct ag_session *s)
{
    static struct ag_trace scratch; /* beyond AG_TRACE_MAX: recorded nowhere */
    if (s->ntrace < AG_TRACE_MAX) {
        struct ag_trace *t = &s->trace[s->ntrace++];
        memset(t, 0, sizeof(*t));
        t->kind = s->kind;
        return t;
    }
    memset(&scratch, 0, sizeof(scratch));
    return &scratch;
}

static enum ag_err err_of_fail(enum tam_agent_fail f)
{
    static const enum ag_err map[] = {
        [TAM_AGENT_OK] = AG_ERR_NONE,
        [TAM_AGENT_BAD_COSE] = AG_ERR_BAD_COSE,
        [TAM_AGENT_BAD_SIGNATURE] = AG_ERR_BAD_SIGNATURE,
        [TAM_AGENT_DECODE] = AG_ERR_DECODE,
        [TAM_AGENT_UNEXPECTED] = AG_ERR_UNEXPECTED,
        [TAM_AGENT_UNSUPPORTED] = AG_ERR_UNSUPPORTED,
        [TAM_AGENT_MANIFEST] = AG_ERR_MANIFEST,
        [TAM_AGENT_FETCH] = AG_ERR_FETCH,
        [TAM_AGENT_INTERNAL] = AG_ERR_INTERNAL,
    };
    return (size_t)f < TAM_ARRAY_LEN(map) ? map[f] : AG_ERR_INTERNAL;
}

static void count_outcome(struct ag_session *s, const struct tam_agent_outcome *o)
{
    struct ag_stats *st = &s->f->stats;
    note_err(s, err_of_fail(o->fail));
    if (o->received != TAM_TEEP_UPDATE) {
        return;
    }
    st->updates++;
    st->installed += o->n_installed;
    st->deleted += o->n_deleted;
    st->unlinked += o->n_unlinked;
    st->manifests_failed += o->n_failed;
    if (o->has_tam_err) {
        note_err(s, AG_ERR_TAM_ERROR);
    }
}

static enum ag_lat kind_of_reply(const struct tam_agent_outcome *o)
{
    if (o->sent == TAM_TEEP_QUERY_RESPONSE) {
        return AG_LAT_QUERY_RESPONSE;
    }
    if (o->sent == TAM_TEEP_SUCCESS || o->received == TAM_TEEP_UPDATE) {
        return AG_LAT_UPDATE_RESULT;
    }
    return AG_LAT_ERROR;
}

/* The core's answer is ready (after any fetches): send it, or end the session. */
static void proceed(struct ag_session *s)
{
    struct tam_agent_outcome o;
    tam_buf_reset(&s->out);
    int err = tam_agent_step_finish(s->step, (int64_t)time(NULL), &s->out, &o);
    tam_agent_step_destroy(s->step);
    s->step = NULL;
    if (s->ntrace > 0) {
        s->trace[s->ntrace - 1].out = o;
    }
    count_outcome(s, &o);
    if (err != TAM_OK) {
        finish(s, AG_ERR_INTERNAL);
        return;
    }
    if (o.sent == 0) {
        finish(s, AG_ERR_NONE); /* the agent has nothing to say: the session ends */
        return;
    }
    if (s->nposts >= s->f->o->max_messages) {
        finish(s, AG_ERR_LOOP);
        return;
    }
    s->kind = kind_of_reply(&o);
    s->nposts++;
    s->attempt = 0;
    post(s);
}

static void on_fetched(void *arg, int err, const uint8_t *data, size_t len)
{
    struct ag_fetch_ctx *c = arg;
    struct ag_session *s = c->s;
    if (err != TAM_OK || tam_agent_step_supply(s->step, c->i, data, len) != TAM_OK) {
        tam_agent_step_fetch_failed(s->step, c->i);
    }
    if (--s->fetch_pending == 0) {
        proceed(s);
    }
}

static void start_fetches(struct ag_session *s)
{
    size_t n = tam_agent_step_fetch_count(s->step);
    s->fetch_pending = 1; /* held until every fetch is issued */
    for (size_t i = 0; i < n; i++) {
        s->fetch_ctx[i].s = s;
        s->fetch_ctx[i].i = i;
        const char *uri = tam_agent_step_fetch_uri(s->step, i);
        s->fetch_pending++;
        if (ag_fetch(s->f->fetcher, uri, on_fetched, &s->fetch_ctx[i]) != TAM_OK) {
            tam_agent_step_fetch_failed(s->step, i);
            s->fetch_pending--;
        }
    }
    if (--s->fetch_pending == 0) {
        proceed(s);
    }
}

static void on_body(struct ag_session *s, struct ag_trace *t, const struct tam_httpc_resp *r)
{
    t->teep_type = media_is_teep(tam_httpc_resp_header(r, "Content-Type"));
    t->sec_headers = security_headers(r);
    if (!t->teep_type) {
        finish(s, AG_ERR_CONTENT_TYPE);
        return;
    }
    if (tam_agent_handle(s->dev, r->body.ptr, r->body.len, &s->step) != TAM_OK) {
        finish(s, AG_ERR_INTERNAL);
        return;
    }
    t->handled = true;
    if (tam_agent_step_fetch_count(s->step) > 0) {
        start_fetches(s);
    } else {
        proceed(s);
    }
}

static void on_response(void *arg, int err, const struct tam_httpc_resp *r)
{
    struct ag_session *s = arg;
    struct ag_trace *t = trace_new(s);
    t->err = err;
    if (err != TAM_OK) {
        enum ag_err e = ag_err_of_httpc(err);
        bool transient = e == AG_ERR_TIMEOUT || e == AG_ERR_CONNECT || e == AG_ERR_IO ||
                         e == AG_ERR_PROTO || e == AG_ERR_RESOLVE;
        if (!transient || !retry(s)) {
            finish(s, e);
        }
        return;
    }
    struct ag_stats *st = &s->f->stats;
    st->messages++;
    t->status = r->status;
    t->body_len = r->body.len;
    s->last_status = r->status;
    if (r->status >= 500) {
        if (!retry(s)) {
            finish(s, AG_ERR_HTTP_5XX);
        }
        return;
    }
    if (r->status >= 300) {
        finish(s, r->status >= 400 ? AG_ERR_HTTP_4XX : AG_ERR_HTTP_3XX);
        return;
    }
    tam_hdr_record(st->lat[s->kind], (uv_hrtime() - s->t_post) / 1000u);
    if (r->body.len == 0) {
        finish(s, AG_ERR_NONE); /* 204: the TAM has nothing more to say */
        return;
    }
    on_body(s, t, r);
}

static void post(struct ag_session *s)
{
    if (s->f->closing) {
        finish(s, AG_ERR_CANCELED);
        return;
    }
    s->t_post = uv_hrtime();
    struct tam_bytes body = tam_bytes_of(s->out.data, s->out.len);
    int err = tam_httpc_teep_post(s->f->pool, body, on_response, s);
    if (err != TAM_OK) {
        fail_later(s, err == TAM_EUNAVAIL ? AG_ERR_QUEUE : ag_err_of_httpc(err));
    }
}

void ag_session_start(struct ag_session *s, size_t idx, ag_session_done_fn done, void *arg)
{
    s->dev_idx = idx;
    s->dev = s->f->devs[idx];
    s->done = done;
    s->arg = arg;
    s->err = AG_ERR_NONE;
    s->ok = false;
    s->ntrace = 0;
    s->nposts = 1;
    s->attempt = 0;
    s->last_status = 0;
    s->kind = AG_LAT_QUERY_REQUEST;
    tam_buf_reset(&s->out);
    s->active = true;
    s->t_start = uv_hrtime();
    s->f->stats.sessions_started++;
    post(s);
}

static void on_run_done(struct ag_session *s, void *arg)
{
    (void)s;
    *(bool *)arg = true;
}

void ag_session_run(struct ag_session *s, size_t idx)
{
    bool done = false;
    ag_session_start(s, idx, on_run_done, &done);
    ag_run_until(s->f->loop, &done);
}

void ag_session_abort(struct ag_session *s)
{
    if (s->active && s->step == NULL && uv_is_active((uv_handle_t *)&s->timer)) {
        finish(s, AG_ERR_CANCELED); /* waiting for a retry: nothing in flight */
    }
}
