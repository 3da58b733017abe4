/* tamctl's offline commands, run as a real program on the spec vectors. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "testutil.h"

struct run {
    int status;
    char out[65536];
    char err[4096];
};

/* Runs tamctl with args (shell words) and captures stdout, stderr and the exit status. */
static void tamctl(struct run *r, const char *args)
{
    const char *root = getenv("TAM_BUILD_ROOT");
    char errpath[] = "/tmp/tamctl-err-XXXXXX";
    int fd = mkstemp(errpath);
    cr_assert_geq(fd, 0);
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "cd %s && %s/src/tools/tamctl %s 2>%s", tu_vector_path(""),
             root != NULL ? root : "build", args, errpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(r->out, 1, sizeof(r->out) - 1, p);
    r->out[n] = '\0';
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    FILE *e = fdopen(fd, "r");
    n = fread(r->err, 1, sizeof(r->err) - 1, e);
    r->err[n] = '\0';
    fclose(e);
    unlink(errpath);
}

Test(tamctl, teep_decode_every_vector_in_its_numbering)
{
    const char *const cases[][3] = {
        {"teep26_query_request.hex", "rfc", "\"type\": \"query-request\""},
        {"teep26_query_response.hex", "rfc", "\"type\": \"query-response\""},
        {"teep26_update.hex", "rfc", "\"bytes\": 334"},
        {"teep26_success.hex", "rfc", "\"type\": \"success\""},
        {"teep26_error.hex", "rfc", "ERR_MANIFEST_PROCESSING_FAILED"},
        {"teep_query_request.hex", "draft", "\"data-item-requested\": 3"},
        {"teep_query_response.hex", "draft", "0102030405060708090a0b0c0d0e0f"},
        {"teep_update.hex", "draft", "\"type\": \"update\""},
        {"teep_success.hex", "draft", "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"},
        {"teep_error.hex", "draft", "\"err-msg\": \"disk-full\""},
        {"derived_sign1_esp256_teep26_query_request.hex", "rfc", "\"alg\": -9"},
        {"derived_sign_esp256_ed25519_teep_query_request.hex", "draft", "COSE_Sign\""},
        {"legacy_libteep_query_request_cose.hex", "draft12", "\"alg\": -7"},
        {"legacy_libteep_teep_success_cose.hex", "draft12", "\"type\": \"success\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct run r;
        char args[512];
        snprintf(args, sizeof(args), "teep decode --numbering %s %s", cases[i][1], cases[i][0]);
        tamctl(&r, args);
        cr_assert_eq(r.status, 0, "%s: %s", args, r.err);
        cr_assert_not_null(strstr(r.out, cases[i][2]), "%s: want %s in\n%s", args, cases[i][2],
                           r.out);
    }
}

Test(tamctl, teep_decode_reads_stdin_and_binary)
{
    struct run r;
    tamctl(&r, "teep decode - < teep26_success.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tamctl(&r, "teep decode --numbering draft /dev/stdin < teep_success.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* Binary input: the Success message bytes themselves (21 bytes, not hex text). */
    FILE *f = fopen("/tmp/tamctl-success.bin", "wb");
    cr_assert_not_null(f);
    size_t len;
    uint8_t *bin = tu_load_hex("teep26_success.hex", &len);
    cr_assert_eq(fwrite(bin, 1, len, f), len);
    fclose(f);
    tam_free(bin);
    tamctl(&r, "teep decode /tmp/tamctl-success.bin");
    unlink("/tmp/tamctl-success.bin");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"type\": \"success\""));
}

Test(tamctl, bad_input_gives_one_line_reason)
{
    struct run r;
    tamctl(&r, "teep decode --numbering draft teep26_success.hex");
    cr_assert_neq(r.status, 0, "type 4 is not a message type in the draft numbering");
    cr_assert_not_null(strstr(r.err, "tamctl: "));
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "exactly one line: %s", r.err);
    tamctl(&r, "teep decode --numbering nope teep26_success.hex");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "teep decode missing-file.hex");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "teep decode tam_p256.pub.pem");
    cr_assert_neq(r.status, 0);
    tamctl(&r, "frobnicate");
    cr_assert_eq(r.status, 2);
}

Test(tamctl, cose_verify)
{
    struct run r;
    tamctl(&r, "cose verify --key tam_p256.pub.pem derived_sign1_esp256_teep26_query_request.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"valid\": true"));
    tamctl(
        &r,
        "cose verify --key tam_ed25519.pub.pem derived_sign_esp256_ed25519_teep_query_request.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tamctl(&r,
           "cose verify --key agent_p256.pub.pem derived_sign1_esp256_teep26_query_request.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.out, "\"valid\": false"));
    cr_assert_not_null(strstr(r.err, "does not verify"));
    tamctl(&r, "cose verify --key tam_p256.pub.pem teep26_success.hex");
    cr_assert_eq(r.status, 1, "a bare TEEP message is not COSE");
}

Test(tamctl, suit_inspect)
{
    struct run r;
    tamctl(&r, "suit inspect --key suit_example_key_p256.pub.pem teep_suit_uri.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "\"signature\": \"valid\""));
    cr_assert_not_null(strstr(r.out, "\"sequence-number\": 3"));
    cr_assert_not_null(
        strstr(r.out, "https://example.org/8d82573a-926d-4754-9353-32dc29997f74.ta"));
    cr_assert_not_null(strstr(r.out, "73756974"), "manifest-component-id ends in 'suit'");
    tamctl(&r, "suit inspect suit_manifest_example2.hex");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "digest-ok-signature-not-checked"));
    tamctl(&r, "suit inspect --key tam_p256.pub.pem teep_suit_uri.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.out, "\"signature\": \"invalid\""));
    tamctl(&r, "suit inspect teep26_success.hex");
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "not a SUIT envelope"));
}
