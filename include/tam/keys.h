/*
 * The Redis key schema, in one place. Every key carries a Redis Cluster hash tag
 * ({...}) so that what one operation touches sits in one slot:
 *   tam:s:{<token>}                  session record of an outstanding request (PX ttl)
 *   tam:{jobs}:stream                the job stream (consumer group "workers")
 *   tam:{jobs}:dead                  dead-letter stream (jobs that failed every attempt)
 *   tam:{jobs}:done:<token>          a job's result, kept so a re-run answers the same
 *   tam:{gw:<id>}:results            one gateway's result stream
 *   tam:d:{<tenant>:<kid>}           a device (hash)
 *   tam:d:{<tenant>:<kid>}:hist      its bounded history (list)
 *   tam:d:{<tenant>:<kid>}:pending   its outstanding tokens (sorted set by expiry)
 *   tam:t:{<tenant>}:<what>          tenant-wide data (configuration, catalogue, policy)
 *   tam:tenants                      the set of tenant ids
 *   tam:{events}                     pub/sub channel: tenant and configuration changes
 * Binary ids (tokens, kids) appear as lower-case hex. Pure string formatting.
 *
 * Records (field formats; codecs live with their owners):
 *   device hash tam:d:{<tenant>:<kid>}:
 *     type "p256" | "ed25519"; pub raw public key (x||y 64 bytes, or 32 bytes);
 *     labels comma-separated; status "registered" | "attested" | "rejected";
 *     installed CBOR [* [component-id, manifest-id, sequence, digest]] (store.h);
 *     created, last_seen: unix ms (decimal); ueid, oemid, hwmodel: hex, from the last EAT.
 *   tam:t:{<tenant>}:devices         set of device kids (hex)
 *   tam:t:{<tenant>}:components      hash "<component-id hex>/<sequence>" -> component record
 *   tam:t:{<tenant>}:catalog_version counter, INCR on every catalogue or policy change
 *   tam:t:{<tenant>}:policy          the policy document (JSON, the admin API's format)
 *
 * Tenant records, tokens and events (added for the admin API, issue #5; codecs: tstore.h,
 * sealing: seal.h):
 *   tam:t:{<tenant>}:cfg             HASH configuration: numbering, attestation, enrollment,
 *                                    legacy_alg_ids, sign1_only, max_devices, rps_per_device,
 *                                    session_ttl_s, update_ttl_s, max_pending_per_device,
 *                                    max_kidless_tries, challenge_len, created, rev
 *   tam:t:{<tenant>}:keys            HASH "p256" / "ed25519": TAM TEEP private key sealed under
 *                                    the KEK; "manifest:p256" / "manifest:ed25519": SUIT
 *                                    manifest key sealed to the workers; "<slot>:pub": SPKI PEM
 *   tam:t:{<tenant>}:anchors:<kind>  HASH kid hex -> SPKI PEM; kind tc-signer|attester|verifier
 *   tam:t:{<tenant>}:tokens          HASH SHA-256(tenant token) hex -> created (unix ms)
 *   tam:{ops}:operator               HASH SHA-256(operator token) hex -> created (unix ms)
 *   tam:{ops}:tokens                 HASH token selector (16 hex digits of SHA-256(token)) ->
 *                                    "op <sha256 hex>" | "t:<tenant> <sha256 hex>"
 *   tam:{events} messages            "tenant <id>" (configuration, keys, anchors, tokens,
 *                                    creation, deletion), "catalog <id> <catalog_version>"
 *                                    (components, policy), "device <id> <kid hex>"
 *   The device keys (tam:d:{<tenant>:<kid>}...) of a tenant's devices set and every
 *   tam:t:{<tenant>}:* key go when the tenant is deleted (cfg last).
 */
#ifndef TAM_KEYS_H
#define TAM_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define TAM_KEY_MAX 256

#define TAM_KEY_JOBS       "tam:{jobs}:stream"
#define TAM_KEY_JOBS_DEAD  "tam:{jobs}:dead"
#define TAM_KEY_JOBS_GROUP "workers"
#define TAM_KEY_TENANTS    "tam:tenants"
#define TAM_KEY_EVENTS     "tam:{events}"

/* Each writes a NUL-terminated key into out (TAM_KEY_MAX bytes) and returns its length. */
size_t tam_key_session(char *out, const uint8_t *token, size_t token_len);
size_t tam_key_job_done(char *out, const uint8_t *token, size_t token_len);
size_t tam_key_results(char *out, const char *gateway_id);
size_t tam_key_device(char *out, const char *tenant, const uint8_t kid[32], const char *suffix);
size_t tam_key_tenant(char *out, const char *tenant, const char *what);

#endif
