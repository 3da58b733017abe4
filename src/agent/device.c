/* A simulated device: its key, UEID, TC store and scenario; the verification cache. */
#include <string.h>

#include "core.h"
#include "tam/alloc.h"
#include "tam/err.h"

/* ---- verification cache ---- */

int tam_agent_vcache_create(size_t entries, struct tam_agent_vcache **out)
{
    if (entries == 0 || entries > 65536) {
        return TAM_EINVAL;
    }
    struct tam_agent_vcache *c = tam_calloc(1, sizeof(*c));
    if (c == NULL) {
        return TAM_ENOMEM;
    }
    c->keys = tam_calloc(entries, sizeof(*c->keys));
    if (c->keys == NULL) {
        tam_free(c);
        return TAM_ENOMEM;
    }
    c->cap = entries;
    *out = c;
    return TAM_OK;
}

void tam_agent_vcache_destroy(struct tam_agent_vcache *c)
{
    if (c != NULL) {
        tam_free(c->keys);
        tam_free(c);
    }
}

void tam_agent_vcache_stats(const struct tam_agent_vcache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c != NULL ? c->hits : 0;
    *misses = c != NULL ? c->misses : 0;
}

bool ag_vcache_lookup(struct tam_agent_vcache *c, const uint8_t key[TAM_SHA256_LEN])
{
    if (c == NULL) {
        return false;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (memcmp(c->keys[i], key, TAM_SHA256_LEN) == 0) {
            c->hits++;
            return true;
        }
    }
    c->misses++;
    return false;
}

void ag_vcache_insert(struct tam_agent_vcache *c, const uint8_t key[TAM_SHA256_LEN])
{
    if (c == NULL) {
        return;
    }
    size_t slot;
    if (c->n < c->cap) {
        slot = c->n++;
    } else {
        slot = c->next;
        c->next = (c->next + 1) % c->cap;
    }
    memcpy(c->keys[slot], key, TAM_SHA256_LEN);
}

/* ---- device ---- */

int tam_agent_device_create(const struct tam_agent_profile *profile, struct tam_key *key,
                            const uint8_t *ueid, size_t ueid_len, struct tam_agent_device **out)
{
    *out = NULL;
    int err = TAM_OK;
    if (key == NULL || profile == NULL ||
        (ueid != NULL && (ueid_len < TAM_EAT_UEID_MIN || ueid_len > TAM_EAT_UEID_MAX))) {
        err = TAM_EINVAL;
    } else if (!tam_key_has_private(key)) {
        err = TAM_EKEY;
    }
    if (err != TAM_OK) {
        tam_key_destroy(key);
        return err;
    }
    struct tam_agent_device *d = tam_calloc(1, sizeof(*d));
    if (d == NULL) {
        tam_key_destroy(key);
        return TAM_ENOMEM;
    }
    d->profile = profile;
    d->key = key;
    if (ueid != NULL) {
        memcpy(d->ueid, ueid, ueid_len);
        d->ueid_len = ueid_len;
    } else {
        d->ueid[0] = 0x01; /* RAND type: the kid is a hash, as good as random */
        memcpy(d->ueid + 1, tam_key_kid(key), 16);
        d->ueid_len = 17;
    }
    *out = d;
    return TAM_OK;
}

void ag_tc_free(struct ag_tc *tc)
{
    tam_free(tc->cid);
    tam_free(tc->mcid);
    tam_free(tc->payload);
    tam_free(tc->reference_uri);
    memset(tc, 0, sizeof(*tc));
}

static void want_free(struct ag_want *w)
{
    tam_free(w->id);
    tam_free(w->binary);
    memset(w, 0, sizeof(*w));
}

void tam_agent_device_clear_scenario(struct tam_agent_device *dev)
{
    for (size_t i = 0; i < dev->nreq; i++) {
        want_free(&dev->req[i]);
    }
    for (size_t i = 0; i < dev->nunreq; i++) {
        want_free(&dev->unreq[i]);
    }
    dev->nreq = 0;
    dev->nunreq = 0;
}

void tam_agent_device_reset(struct tam_agent_device *dev)
{
    for (size_t i = 0; i < dev->ntcs; i++) {
        ag_tc_free(&dev->tcs[i]);
    }
    dev->ntcs = 0;
}

void tam_agent_device_destroy(struct tam_agent_device *dev)
{
    if (dev == NULL) {
        return;
    }
    tam_agent_device_reset(dev);
    tam_agent_device_clear_scenario(dev);
    tam_free(dev->tcs);
    tam_free(dev->req);
    tam_free(dev->unreq);
    tam_key_destroy(dev->key);
    tam_free(dev);
}

const struct tam_key *tam_agent_device_key(const struct tam_agent_device *dev)
{
    return dev->key;
}

struct tam_bytes tam_agent_device_ueid(const struct tam_agent_device *dev)
{
    return tam_bytes_of(dev->ueid, dev->ueid_len);
}

void tam_agent_device_set_faults(struct tam_agent_device *dev, unsigned faults)
{
    dev->faults = faults;
}

/* ---- scenario ---- */

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = tam_malloc(n > 0 ? n : 1);
    if (d != NULL && n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

static int want_add(struct ag_want **list, size_t *n, const struct tam_bytes *seg, size_t nseg,
                    struct ag_want **out)
{
    uint8_t enc[TAM_AGENT_ID_MAX];
    size_t len = nseg <= TAM_TEEP_MAX_ID_SEGMENTS ? ag_id_encode(seg, nseg, enc, sizeof(enc)) : 0;
    if (len == 0) {
        return TAM_EINVAL;
    }
    if (*n == TAM_AGENT_MAX_WANTS) {
        return TAM_ETOOBIG;
    }
    if (*list == NULL) {
        *list = tam_calloc(TAM_AGENT_MAX_WANTS, sizeof(**list));
        if (*list == NULL) {
            return TAM_ENOMEM;
        }
    }
    struct ag_want *w = &(*list)[*n];
    w->id = dup_bytes(enc, len);
    if (w->id == NULL) {
        return TAM_ENOMEM;
    }
    w->id_len = len;
    (*n)++;
    *out = w;
    return TAM_OK;
}

int tam_agent_device_request(struct tam_agent_device *dev, const struct tam_bytes *seg, size_t nseg,
                             bool has_seq, uint64_t seq, bool have_binary, struct tam_bytes binary)
{
    if (binary.len > TAM_AGENT_MAX_PAYLOAD || (have_binary && !has_seq)) {
        return TAM_EINVAL; /* have-binary requires the sequence number (TP 4.3) */
    }
    struct ag_want *w;
    int err = want_add(&dev->req, &dev->nreq, seg, nseg, &w);
    if (err != TAM_OK) {
        return err;
    }
    w->has_seq = has_seq;
    w->seq = seq;
    w->have_binary = have_binary;
    if (have_binary && binary.len > 0) {
        w->binary = dup_bytes(binary.ptr, binary.len);
        if (w->binary == NULL) {
            want_free(w);
            dev->nreq--;
            return TAM_ENOMEM;
        }
        w->binary_len = binary.len;
    }
    return TAM_OK;
}

int tam_agent_device_unrequest(struct tam_agent_device *dev, const struct tam_bytes *seg,
                               size_t nseg)
{
    struct ag_want *w;
    return want_add(&dev->unreq, &dev->nunreq, seg, nseg, &w);
}

/* ---- TC store ---- */

static bool same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

struct ag_tc *ag_tc_by_mcid(struct tam_agent_device *dev, const uint8_t *id, size_t len)
{
    for (size_t i = 0; i < dev->ntcs; i++) {
        if (same(dev->tcs[i].mcid, dev->tcs[i].mcid_len, id, len)) {
            return &dev->tcs[i];
        }
    }
    return NULL;
}

struct ag_tc *ag_tc_by_cid(struct tam_agent_device *dev, const uint8_t *id, size_t len)
{
    for (size_t i = 0; i < dev->ntcs; i++) {
        if (same(dev->tcs[i].cid, dev->tcs[i].cid_len, id, len)) {
            return &dev->tcs[i];
        }
    }
    return NULL;
}

struct ag_tc *ag_tc_by_digest(struct tam_agent_device *dev, const uint8_t *digest)
{
    for (size_t i = 0; i < dev->ntcs; i++) {
        if (memcmp(dev->tcs[i].manifest_digest, digest, TAM_SHA256_LEN) == 0) {
            return &dev->tcs[i];
        }
    }
    return NULL;
}

void ag_tc_remove(struct tam_agent_device *dev, struct ag_tc *tc)
{
    size_t i = (size_t)(tc - dev->tcs);
    ag_tc_free(tc);
    memmove(&dev->tcs[i], &dev->tcs[i + 1], (dev->ntcs - i - 1) * sizeof(*tc));
    dev->ntcs--;
    memset(&dev->tcs[dev->ntcs], 0, sizeof(*tc));
}

int ag_tc_put(struct tam_agent_device *dev, struct ag_tc *tc)
{
    struct ag_tc *old = ag_tc_by_mcid(dev, tc->mcid, tc->mcid_len);
    if (old != NULL) {
        ag_tc_free(old);
        *old = *tc;
        memset(tc, 0, sizeof(*tc));
        return TAM_OK;
    }
    if (dev->ntcs == TAM_AGENT_MAX_TCS) {
        return TAM_ETOOBIG;
    }
    if (dev->ntcs == dev->cap_tcs) {
        size_t cap = dev->cap_tcs == 0 ? 2 : dev->cap_tcs * 2;
        cap = cap > TAM_AGENT_MAX_TCS ? TAM_AGENT_MAX_TCS : cap;
        struct ag_tc *n = tam_realloc(dev->tcs, cap * sizeof(*n));
        if (n == NULL) {
            return TAM_ENOMEM;
        }
        dev->tcs = n;
        dev->cap_tcs = cap;
    }
    dev->tcs[dev->ntcs++] = *tc;
    memset(tc, 0, sizeof(*tc));
    return TAM_OK;
}

size_t tam_agent_device_tc_count(const struct tam_agent_device *dev)
{
    return dev->ntcs;
}

static void tc_info(const struct ag_tc *tc, struct tam_agent_tc_info *out)
{
    memset(out, 0, sizeof(*out));
    out->component_id = tam_bytes_of(tc->cid, tc->cid_len);
    out->manifest_component_id = tam_bytes_of(tc->mcid, tc->mcid_len);
    out->sequence = tc->sequence;
    memcpy(out->manifest_digest, tc->manifest_digest, TAM_SHA256_LEN);
    out->has_image_digest = tc->has_image_digest;
    memcpy(out->image_digest, tc->image_digest, TAM_SHA256_LEN);
    out->has_payload = tc->has_payload;
    out->encrypted = tc->encrypted;
    out->payload = tam_bytes_of(tc->payload, tc->payload_len);
    const char *uri = tc->reference_uri != NULL ? tc->reference_uri : "";
    out->reference_uri = tam_bytes_of(uri, strlen(uri));
}

bool tam_agent_device_tc_at(const struct tam_agent_device *dev, size_t i,
                            struct tam_agent_tc_info *out)
{
    if (i >= dev->ntcs) {
        return false;
    }
    tc_info(&dev->tcs[i], out);
    return true;
}

bool tam_agent_device_tc_find(const struct tam_agent_device *dev, struct tam_bytes enc,
                              bool match_manifest_id, struct tam_agent_tc_info *out)
{
    struct tam_agent_device *d = (struct tam_agent_device *)dev; /* lookups do not modify */
    const struct ag_tc *tc =
        match_manifest_id ? ag_tc_by_mcid(d, enc.ptr, enc.len) : ag_tc_by_cid(d, enc.ptr, enc.len);
    if (tc == NULL) {
        return false;
    }
    tc_info(tc, out);
    return true;
}

bool tam_agent_device_tc_remove(struct tam_agent_device *dev, struct tam_bytes enc,
                                bool match_manifest_id)
{
    struct ag_tc *tc = match_manifest_id ? ag_tc_by_mcid(dev, enc.ptr, enc.len)
                                         : ag_tc_by_cid(dev, enc.ptr, enc.len);
    if (tc == NULL) {
        return false;
    }
    ag_tc_remove(dev, tc);
    return true;
}
