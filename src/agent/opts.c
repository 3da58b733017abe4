/* tam-agent command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tam/log.h"
#include "tool.h"

void ag_usage(FILE *out)
{
    fputs("Usage: tam-agent MODE [options]\n"
          "\n"
          "A simulated TEEP device fleet (Broker + Agent per device), conformance client and\n"
          "load generator for any TEEP TAM over HTTP(S).\n"
          "\n"
          "Modes:\n"
          "  conformance  one device walks through scripted checks, one PASS/FAIL line each\n"
          "  load         many devices run sessions: throughput, latency percentiles, errors\n"
          "  idle         open and hold N keep-alive connections\n"
          "  keys         generate the fleet's keys and write them (--export-keys)\n"
          "  demo         create the demo tenant, TCs and policy (admin API), then load\n"
          "\n"
          "Common options:\n"
          "  --url URL              TAM URI, e.g. http://127.0.0.1:8443/tam/demo\n"
          "  --ca FILE              trusted CA certificates (PEM), required for https\n"
          "  --server-name NAME     TLS name to verify instead of the URL host\n"
          "  --numbering NAME       rfc | draft | draft12 TEEP code points (default: the\n"
          "                         tenant's with --admin, else rfc)\n"
          "  --tam-key PEM          trusted TAM public key (repeatable); default: admin API\n"
          "  --tc-signer-key PEM    trusted TC signer public key (repeatable); default: the\n"
          "                         tenant's manifest keys from the admin API\n"
          "  --attester-key PEM     fleet attester private key (default: generated/--seed)\n"
          "  --alg NAME             esp256 | ed25519 | mixed device keys (default esp256)\n"
          "  --seed TEXT            derive every key from TEXT (a reproducible fleet)\n"
          "  --devices N            devices (load default 100, conformance 1)\n"
          "  --export-keys DIR      write device public keys, devices.txt, attester key\n"
          "  --timeout-ms MS        per request, connect included (default 10000)\n"
          "  --retries N            retries on 5xx, timeouts, connection errors (default 3)\n"
          "  --backoff-ms MS        first retry delay, doubled each time, jittered (default 100)\n"
          "  --backoff-max-ms MS    retry delay ceiling (default 5000)\n"
          "  --no-verify            do not verify TAM signatures (saves agent CPU in load runs)\n"
          "  --drop-invalid         send nothing in answer to invalid TAM messages\n"
          "  --eat-format TEXT      attestation-payload-format to send (default: none)\n"
          "  --fault NAME           bad-signature | bad-nonce | untrusted-attester |\n"
          "                         no-evidence (repeatable; conformance sets its own)\n"
          "  --request-tc ID[@SEQ]  devices ask for this TC (requested-tc-list)\n"
          "  --unneeded ID          devices declare this manifest component id unneeded\n"
          "  --enroll               register each device with the tenant first (admin API)\n"
          "  --admin URL            admin API base, e.g. http://127.0.0.1:9090; with\n"
          "                         --token-file it gives the tenant's keys and numbering\n"
          "  --token-file FILE      file holding the tenant's bearer token\n"
          "  --tenant ID            tenant (default: from a .../tam/{tenant} URL)\n"
          "  --label TEXT           label of enrolled devices (repeatable), e.g. group=a\n"
          "  --log-level LEVEL      error | warn | info | debug (default warn)\n"
          "  --help                 this text\n"
          "\n",
          out);
    fputs("demo (what tamd --demo runs):\n"
          "  --data-dir DIR         reads DIR/operator.token; writes DIR/demo.token and the\n"
          "                         demo TC signer and attester keys (required)\n"
          "  --admin URL            default http://127.0.0.1:9080\n"
          "  --url URL              default http://127.0.0.1:8080/tam/demo\n"
          "  --payload-listen H:P   serves the URI scenario's payload (default 127.0.0.1:9081)\n"
          "  --keep-serving         keep serving payloads after the run, until SIGTERM\n"
          "  (and the load options; defaults: 20 devices, 10 s)\n"
          "\n"
          "load:\n"
          "  --concurrency C        sessions in flight (default min(devices, 64); with\n"
          "                         --rate: min(devices, 4096))\n"
          "  --rate R               start R sessions per second (open loop)\n"
          "  --duration S           seconds to run (default 10)\n"
          "  --json                 one JSON object on stdout instead of the table\n"
          "  --progress, --no-progress  live line on stderr (default: if it is a terminal)\n"
          "  --max-messages N       POSTs in one session at most (default 8)\n"
          "\n"
          "idle:\n"
          "  --connections N        connections to open and hold (default 1000)\n"
          "  --duration S           hold time (default 0: until SIGINT or SIGTERM)\n"
          "  --json                 one JSON object on stdout\n"
          "\n"
          "conformance:\n"
          "  --expect-install ID    a TC the TAM's policy installs on this device (repeatable)\n"
          "  --request-tc ID[@SEQ]  a TC in the TAM's catalogue that its policy does not\n"
          "                         install: enables requested_tc, have_binary and delete\n"
          "  --update-cmd CMD       shell command that publishes a newer manifest of an\n"
          "                         installed TC (enables the update check)\n"
          "  --only LIST, --skip LIST  comma-separated check names\n"
          "  Checks: first_contact install update requested_tc have_binary delete replay\n"
          "  bad_signature wrong_content_type attestation_failure unknown_error_code\n"
          "\n"
          "Component ids are segments separated by '/', each text or h:HEX, e.g.\n"
          "  TEEP-Device/SecureFS/h:8d82573a926d4754935332dc29997f74/ta\n"
          "\n"
          "Exit status: 0 success; 1 a check failed, or no load session succeeded, or not\n"
          "every idle connection was established; 2 usage or setup error.\n",
          out);
}

static int bad(const char *what, const char *value)
{
    fprintf(stderr, "tam-agent: invalid %s '%s' (see --help)\n", what, value);
    return -1;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_double(const char *s, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int add_n(const char **list, size_t *n, size_t max, const char *v, const char *what)
{
    if (*n >= max) {
        return bad(what, v);
    }
    list[(*n)++] = v;
    return 0;
}

static int parse_fault(const char *v, unsigned *faults)
{
    static const struct {
        const char *name;
        unsigned bit;
    } t[] = {{"bad-signature", TAM_AGENT_FAULT_BAD_SIGNATURE},
             {"bad-nonce", TAM_AGENT_FAULT_BAD_NONCE},
             {"untrusted-attester", TAM_AGENT_FAULT_UNTRUSTED_ATTESTER},
             {"no-evidence", TAM_AGENT_FAULT_NO_EVIDENCE}};
    for (size_t i = 0; i < TAM_ARRAY_LEN(t); i++) {
        if (strcmp(v, t[i].name) == 0) {
            *faults |= t[i].bit;
            return 0;
        }
    }
    return bad("--fault", v);
}

static int parse_alg(const char *v, enum ag_alg_choice *out)
{
    if (strcmp(v, "esp256") == 0 || strcmp(v, "p256") == 0) {
        *out = AG_ALG_ESP256;
    } else if (strcmp(v, "ed25519") == 0) {
        *out = AG_ALG_ED25519;
    } else if (strcmp(v, "mixed") == 0) {
        *out = AG_ALG_MIXED;
    } else {
        return bad("--alg", v);
    }
    return 0;
}

enum {
    O_URL = 256,
    O_CA,
    O_SERVER_NAME,
    O_NUMBERING,
    O_TAM_KEY,
    O_SIGNER_KEY,
    O_ATTESTER_KEY,
    O_ALG,
    O_SEED,
    O_DEVICES,
    O_CONCURRENCY,
    O_RATE,
    O_DURATION,
    O_TIMEOUT,
    O_RETRIES,
    O_BACKOFF,
    O_BACKOFF_MAX,
    O_MAX_MESSAGES,
    O_JSON,
    O_PROGRESS,
    O_NO_PROGRESS,
    O_NO_VERIFY,
    O_DROP_INVALID,
    O_EAT_FORMAT,
    O_FAULT,
    O_REQUEST_TC,
    O_UNNEEDED,
    O_EXPORT,
    O_ENROLL,
    O_ADMIN,
    O_TOKEN_FILE,
    O_TENANT,
    O_LABEL,
    O_CONNECTIONS,
    O_EXPECT_INSTALL,
    O_UPDATE_CMD,
    O_ONLY,
    O_SKIP,
    O_LOG_LEVEL,
    O_DATA_DIR,
    O_PAYLOAD_LISTEN,
    O_KEEP_SERVING,
    O_HELP,
};

static const struct option long_opts[] = {
    {"url", required_argument, NULL, O_URL},
    {"ca", required_argument, NULL, O_CA},
    {"server-name", required_argument, NULL, O_SERVER_NAME},
    {"numbering", required_argument, NULL, O_NUMBERING},
    {"tam-key", required_argument, NULL, O_TAM_KEY},
    {"tc-signer-key", required_argument, NULL, O_SIGNER_KEY},
    {"attester-key", required_argument, NULL, O_ATTESTER_KEY},
    {"alg", required_argument, NULL, O_ALG},
    {"seed", required_argument, NULL, O_SEED},
    {"devices", required_argument, NULL, O_DEVICES},
    {"concurrency", required_argument, NULL, O_CONCURRENCY},
    {"rate", required_argument, NULL, O_RATE},
    {"duration", required_argument, NULL, O_DURATION},
    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"retries", required_argument, NULL, O_RETRIES},
    {"backoff-ms", required_argument, NULL, O_BACKOFF},
    {"backoff-max-ms", required_argument, NULL, O_BACKOFF_MAX},
    {"max-messages", required_argument, NULL, O_MAX_MESSAGES},
    {"json", no_argument, NULL, O_JSON},
    {"progress", no_argument, NULL, O_PROGRESS},
    {"no-progress", no_argument, NULL, O_NO_PROGRESS},
    {"no-verify", no_argument, NULL, O_NO_VERIFY},
    {"drop-invalid", no_argument, NULL, O_DROP_INVALID},
    {"eat-format", required_argument, NULL, O_EAT_FORMAT},
    {"fault", required_argument, NULL, O_FAULT},
    {"request-tc", required_argument, NULL, O_REQUEST_TC},
    {"unneeded", required_argument, NULL, O_UNNEEDED},
    {"export-keys", required_argument, NULL, O_EXPORT},
    {"enroll", no_argument, NULL, O_ENROLL},
    {"admin", required_argument, NULL, O_ADMIN},
    {"token-file", required_argument, NULL, O_TOKEN_FILE},
    {"tenant", required_argument, NULL, O_TENANT},
    {"label", required_argument, NULL, O_LABEL},
    {"connections", required_argument, NULL, O_CONNECTIONS},
    {"expect-install", required_argument, NULL, O_EXPECT_INSTALL},
    {"update-cmd", required_argument, NULL, O_UPDATE_CMD},
    {"only", required_argument, NULL, O_ONLY},
    {"skip", required_argument, NULL, O_SKIP},
    {"log-level", required_argument, NULL, O_LOG_LEVEL},
    {"data-dir", required_argument, NULL, O_DATA_DIR},
    {"payload-listen", required_argument, NULL, O_PAYLOAD_LISTEN},
    {"keep-serving", no_argument, NULL, O_KEEP_SERVING},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static void defaults(struct ag_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->numbering = TAM_TEEP_RFC;
    o->alg = AG_ALG_ESP256;
    o->timeout_ms = 10000;
    o->retries = 3;
    o->backoff_ms = 100;
    o->backoff_max_ms = 5000;
    o->max_messages = 8;
    o->progress = -1;
    o->log_level = TAM_LOG_WARN;
    o->duration_s = -1;
}

static int parse_number(int c, const char *v, struct ag_opts *o)
{
    uint64_t u = 0;
    switch (c) {
    case O_DEVICES:
        if (!parse_u64(v, AG_MAX_DEVICES, &u) || u == 0) {
            return bad("--devices", v);
        }
        o->devices = (size_t)u;
        return 0;
    case O_CONCURRENCY:
        if (!parse_u64(v, 100000, &u) || u == 0) {
            return bad("--concurrency", v);
        }
        o->concurrency = (unsigned)u;
        return 0;
    case O_RATE:
        return parse_double(v, 1e7, &o->rate) ? 0 : bad("--rate", v);
    case O_DURATION:
        return parse_double(v, 1e7, &o->duration_s) ? 0 : bad("--duration", v);
    case O_TIMEOUT:
        if (!parse_u64(v, 3600000, &u) || u == 0) {
            return bad("--timeout-ms", v);
        }
        o->timeout_ms = (uint32_t)u;
        return 0;
    case O_RETRIES:
        if (!parse_u64(v, 100, &u)) {
            return bad("--retries", v);
        }
        o->retries = (unsigned)u;
        return 0;
    case O_BACKOFF:
    case O_BACKOFF_MAX:
        if (!parse_u64(v, 3600000, &u)) {
            return bad(c == O_BACKOFF ? "--backoff-ms" : "--backoff-max-ms", v);
        }
        *(c == O_BACKOFF ? &o->backoff_ms : &o->backoff_max_ms) = (uint32_t)u;
        return 0;
    case O_MAX_MESSAGES:
        if (!parse_u64(v, 64, &u) || u < 2) {
            return bad("--max-messages", v);
        }
        o->max_messages = (unsigned)u;
        return 0;
    case O_CONNECTIONS:
        if (!parse_u64(v, 100000, &u) || u == 0) {
            return bad("--connections", v);
        }
        o->connections = (unsigned)u;
        return 0;
    default:
        return 1; /* not a number option */
    }
}

static int parse_string(int c, const char *v, struct ag_opts *o)
{
    switch (c) {
    case O_URL:
        o->url = v;
        return 0;
    case O_CA:
        o->ca_file = v;
        return 0;
    case O_SERVER_NAME:
        o->server_name = v;
        return 0;
    case O_NUMBERING:
        o->numbering_set = true;
        return tam_teep_numbering_parse(v, &o->numbering) == 0 ? 0 : bad("--numbering", v);
    case O_TAM_KEY:
        return add_n(o->tam_key_files, &o->n_tam_key_files, AG_MAX_KEYS, v, "--tam-key (too many)");
    case O_SIGNER_KEY:
        return add_n(o->signer_key_files, &o->n_signer_key_files, AG_MAX_KEYS, v,
                     "--tc-signer-key (too many)");
    case O_ATTESTER_KEY:
        o->attester_key_file = v;
        return 0;
    case O_ALG:
        return parse_alg(v, &o->alg);
    case O_SEED:
        o->seed = v;
        return 0;
    case O_EAT_FORMAT:
        o->eat_format = v;
        return 0;
    case O_FAULT:
        return parse_fault(v, &o->faults);
    case O_REQUEST_TC:
        return add_n(o->request_ids, &o->n_request_ids, AG_MAX_IDS, v, "--request-tc (too many)");
    case O_UNNEEDED:
        return add_n(o->unneeded_ids, &o->n_unneeded_ids, AG_MAX_IDS, v, "--unneeded (too many)");
    case O_EXPECT_INSTALL:
        return add_n(o->expect_install, &o->n_expect_install, AG_MAX_IDS, v,
                     "--expect-install (too many)");
    case O_LABEL:
        if (*v == '\0' || strpbrk(v, ", ") != NULL) {
            return bad("--label (printable, no ',' or space)", v);
        }
        return add_n(o->labels, &o->n_labels, AG_MAX_LABELS, v, "--label (too many)");
    default:
        return 1;
    }
}

static int parse_other(int c, const char *v, struct ag_opts *o)
{
    switch (c) {
    case O_EXPORT:
        o->export_dir = v;
        return 0;
    case O_ADMIN:
        o->admin_url = v;
        return 0;
    case O_TOKEN_FILE:
        o->token_file = v;
        return 0;
    case O_TENANT:
        o->tenant = v;
        return 0;
    case O_UPDATE_CMD:
        o->update_cmd = v;
        return 0;
    case O_ONLY:
        o->only = v;
        return 0;
    case O_SKIP:
        o->skip = v;
        return 0;
    case O_LOG_LEVEL:
        o->log_level = tam_log_level_parse(v);
        return o->log_level >= 0 ? 0 : bad("--log-level", v);
    case O_JSON:
        o->json = true;
        return 0;
    case O_PROGRESS:
    case O_NO_PROGRESS:
        o->progress = c == O_PROGRESS;
        return 0;
    case O_NO_VERIFY:
        o->no_verify = true;
        return 0;
    case O_DROP_INVALID:
        o->drop_invalid = true;
        return 0;
    case O_ENROLL:
        o->enroll = true;
        return 0;
    case O_DATA_DIR:
        o->data_dir = v;
        return 0;
    case O_PAYLOAD_LISTEN:
        o->payload_listen = v;
        return 0;
    case O_KEEP_SERVING:
        o->keep_serving = true;
        return 0;
    default:
        return bad("option", v != NULL ? v : "?");
    }
}

static int parse_mode(const char *m, struct ag_opts *o)
{
    static const struct {
        const char *name;
        enum ag_mode mode;
    } t[] = {{"conformance", AG_MODE_CONFORMANCE},
             {"load", AG_MODE_LOAD},
             {"idle", AG_MODE_IDLE},
             {"keys", AG_MODE_KEYS},
             {"demo", AG_MODE_DEMO}};
    for (size_t i = 0; i < TAM_ARRAY_LEN(t); i++) {
        if (strcmp(m, t[i].name) == 0) {
            o->mode = t[i].mode;
            return 0;
        }
    }
    return bad("mode", m);
}

static int demo_defaults(struct ag_opts *o)
{
    if (o->data_dir == NULL) {
        fprintf(stderr, "tam-agent: demo needs --data-dir (see --help)\n");
        return -1;
    }
    o->admin_url = o->admin_url != NULL ? o->admin_url : "http://127.0.0.1:9080";
    o->url = o->url != NULL ? o->url : "http://127.0.0.1:8080/tam/demo";
    o->payload_listen = o->payload_listen != NULL ? o->payload_listen : "127.0.0.1:9081";
    o->devices = o->devices != 0 ? o->devices : 20;
    return 0;
}

static int finish_defaults(struct ag_opts *o)
{
    if (o->mode == AG_MODE_DEMO && demo_defaults(o) != 0) {
        return -1;
    }
    if (o->mode != AG_MODE_KEYS && o->url == NULL) {
        fprintf(stderr, "tam-agent: --url is required (see --help)\n");
        return -1;
    }
    if (o->devices == 0) {
        o->devices = o->mode == AG_MODE_LOAD || o->mode == AG_MODE_KEYS ? 100 : 1;
    }
    if (o->duration_s < 0) {
        o->duration_s = o->mode == AG_MODE_IDLE ? 0 : 10;
    }
    if (o->connections == 0) {
        o->connections = 1000;
    }
    if (o->backoff_max_ms < o->backoff_ms) {
        o->backoff_max_ms = o->backoff_ms;
    }
    if (o->enroll && (o->admin_url == NULL || o->token_file == NULL)) {
        fprintf(stderr, "tam-agent: --enroll needs --admin and --token-file\n");
        return -1;
    }
    return 0;
}

int ag_opts_parse(int argc, char **argv, struct ag_opts *o)
{
    defaults(o);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        ag_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? -1 : 1;
    }
    if (parse_mode(argv[1], o) != 0) {
        return -1;
    }
    optind = 2;
    opterr = 1;
    for (;;) {
        int c = getopt_long(argc, argv, "h", long_opts, NULL);
        if (c == -1) {
            break;
        }
        if (c == 'h' || c == O_HELP) {
            ag_usage(stdout);
            return 1;
        }
        if (c == '?') {
            return -1;
        }
        int rc = parse_number(c, optarg, o);
        rc = rc == 1 ? parse_string(c, optarg, o) : rc;
        rc = rc == 1 ? parse_other(c, optarg, o) : rc;
        if (rc != 0) {
            return -1;
        }
    }
    if (optind < argc) {
        return bad("argument", argv[optind]);
    }
    return finish_defaults(o);
}
