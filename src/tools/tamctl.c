/*
 * tamctl: the TAM from the shell. Offline commands decode and check TEEP, COSE
 * and SUIT bytes for people debugging TEEP traffic (binary or hex input, file or
 * stdin, JSON out, exit 0 on success and non-zero with a one-line reason).
 */
#include "tamctl.h"
#include "tamctl_admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"

#define INPUT_MAX (16u << 20)

int tamctl_vfail(int code, const char *fmt, va_list ap)
{
    fputs("tamctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    return code;
}

int tamctl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int code = tamctl_vfail(1, fmt, ap);
    va_end(ap);
    return code;
}

static bool looks_like_hex(const uint8_t *p, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex && c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            return false;
        }
        digits += hex;
    }
    return digits > 0 && digits % 2 == 0;
}

int tamctl_read_input(const char *path, struct tam_buf *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        return tamctl_fail("cannot open %s", path);
    }
    struct tam_buf raw;
    tam_buf_init(&raw, INPUT_MAX);
    uint8_t chunk[8192];
    size_t n;
    int err = TAM_OK;
    while (err == TAM_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        err = tam_buf_append(&raw, chunk, n);
    }
    if (f != stdin) {
        fclose(f);
    }
    if (err != TAM_OK) {
        tam_buf_finish(&raw);
        return tamctl_fail("%s: input larger than %u bytes", path, INPUT_MAX);
    }
    if (looks_like_hex(raw.data, raw.len)) {
        err = tam_hex_decode((const char *)raw.data, raw.len, out);
    } else {
        err = tam_buf_append(out, raw.data, raw.len);
    }
    tam_buf_finish(&raw);
    if (err != TAM_OK || out->len == 0) {
        return tamctl_fail("%s: empty or unreadable input", path);
    }
    return 0;
}

int tamctl_load_key(const char *path, struct tam_key **out)
{
    struct tam_buf pem;
    tam_buf_init(&pem, 64 * 1024);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return tamctl_fail("cannot open key %s", path);
    }
    uint8_t chunk[4096];
    size_t n;
    int err = TAM_OK;
    while (err == TAM_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        err = tam_buf_append(&pem, chunk, n);
    }
    fclose(f);
    if (err == TAM_OK) {
        err = tam_key_from_pem((const char *)pem.data, pem.len, out);
    }
    tam_buf_finish(&pem);
    return err == TAM_OK ? 0 : tamctl_fail("%s: not a P-256 or Ed25519 PEM key", path);
}

void tamctl_print_json(json_t *v)
{
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        free(s); /* allocated by jansson */
    }
    json_decref(v);
}

static void usage(FILE *f)
{
    fputs("usage: tamctl <command> [options]\n"
          "\n"
          "Offline (no server needed; FILE is binary or hex text, '-' reads stdin):\n"
          "  teep decode [--numbering rfc|draft|draft12] FILE\n"
          "      Decode a bare TEEP message or one inside COSE_Sign1/COSE_Sign; prints the\n"
          "      wrapper (alg, kid) and the message as JSON.\n"
          "  cose verify --key PEM FILE\n"
          "      Verify a COSE_Sign1/COSE_Sign with a P-256 or Ed25519 public or private key.\n"
          "  suit inspect [--key PEM] FILE\n"
          "      Index a SUIT envelope: digest, sequence number, component ids, payloads,\n"
          "      and, with --key, the signature status.\n",
          f);
    tamctl_admin_usage(f);
}

int main(int argc, char **argv)
{
    if (tamctl_admin_applies(argc, argv)) {
        return tamctl_admin_main(argc, argv);
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "teep") == 0) {
        return tamctl_cmd_teep(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "cose") == 0) {
        return tamctl_cmd_cose(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "suit") == 0) {
        return tamctl_cmd_suit(argc - 1, argv + 1);
    }
    usage(stderr);
    return 2;
}
