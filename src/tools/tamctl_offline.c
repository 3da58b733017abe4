/* tamctl's offline commands: teep decode, cose verify. */
#include "tamctl.h"

#include <string.h>

#include "tam/arena.h"
#include "tam/cose.h"
#include "tam/err.h"

static json_t *wrapper_json(const struct tam_cose_msg *m)
{
    json_t *signers = json_array();
    for (unsigned i = 0; i < m->nsigners; i++) {
        json_t *s = json_pack("{s:i}", "alg", m->signers[i].alg);
        if (m->signers[i].kid.len > 0) {
            json_object_set_new(s, "kid", tamctl_hex(m->signers[i].kid.ptr, m->signers[i].kid.len));
        }
        json_array_append_new(signers, s);
    }
    return json_pack("{s:s,s:b,s:b,s:o}", "kind",
                     m->kind == TAM_COSE_SIGN1 ? "COSE_Sign1" : "COSE_Sign", "tagged", m->tagged,
                     "detached", m->detached, "signers", signers);
}

/* argv: [name, opts..., FILE]; sets *num and returns the FILE argument, or NULL. */
static const char *parse_decode_args(int argc, char **argv, enum tam_teep_numbering *num)
{
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--numbering") == 0 && i + 1 < argc) {
            if (tam_teep_numbering_parse(argv[++i], num) != TAM_OK) {
                tamctl_fail("unknown numbering %s (rfc, draft, draft12)", argv[i]);
                return NULL;
            }
        } else if (file == NULL && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            file = argv[i];
        } else {
            tamctl_fail("teep decode: unexpected argument %s", argv[i]);
            return NULL;
        }
    }
    if (file == NULL) {
        tamctl_fail("usage: tamctl teep decode [--numbering rfc|draft|draft12] FILE");
    }
    return file;
}

static int teep_decode(int argc, char **argv)
{
    enum tam_teep_numbering num = TAM_TEEP_RFC;
    const char *file = parse_decode_args(argc, argv, &num);
    if (file == NULL) {
        return 2;
    }
    struct tam_buf in;
    tam_buf_init(&in, 16u << 20);
    if (tamctl_read_input(file, &in) != 0) {
        tam_buf_finish(&in);
        return 1;
    }
    struct tam_cose_msg cose;
    struct tam_bytes payload = tam_bytes_of(in.data, in.len);
    bool wrapped = tam_cose_parse(in.data, in.len, &cose, NULL) == TAM_OK && !cose.detached;
    if (wrapped) {
        payload = cose.payload;
    }
    struct tam_arena arena;
    tam_arena_init(&arena, 4096, 16u << 20);
    struct tam_teep_msg msg;
    const char *why = NULL;
    int err = tam_teep_decode(payload.ptr, payload.len, num, &arena, &msg, &why);
    int rc = 0;
    if (err != TAM_OK) {
        rc = tamctl_fail("not a valid TEEP message in numbering %s: %s",
                         tam_teep_numbering_name(num), why != NULL ? why : tam_strerror(err));
    } else {
        json_t *out = json_pack("{s:o}", "message", tamctl_teep_json(&msg, num));
        if (wrapped) {
            json_object_set_new(out, "wrapper", wrapper_json(&cose));
        }
        tamctl_print_json(out);
    }
    tam_arena_finish(&arena);
    tam_buf_finish(&in);
    return rc;
}

int tamctl_cmd_teep(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        return teep_decode(argc - 1, argv + 1);
    }
    return tamctl_fail("usage: tamctl teep decode [--numbering rfc|draft|draft12] FILE") + 1;
}

static int cose_verify(const char *keyfile, const char *file)
{
    struct tam_key *key = NULL;
    if (tamctl_load_key(keyfile, &key) != 0) {
        return 1;
    }
    struct tam_buf in;
    tam_buf_init(&in, 16u << 20);
    int rc = tamctl_read_input(file, &in);
    struct tam_cose_msg m;
    const char *why = NULL;
    int err = rc == 0 ? tam_cose_parse(in.data, in.len, &m, &why) : TAM_OK;
    if (rc == 0 && err != TAM_OK) {
        rc = tamctl_fail("not a COSE_Sign1/COSE_Sign: %s", why != NULL ? why : tam_strerror(err));
    } else if (rc == 0 && m.detached) {
        rc = tamctl_fail("detached payload: verify it with the command for its format");
    } else if (rc == 0) {
        err = tam_cose_verify_any(&m, key, NULL);
        json_t *out = json_pack("{s:b,s:o}", "valid", err == TAM_OK, "wrapper", wrapper_json(&m));
        tamctl_print_json(out);
        rc = err == TAM_OK ? 0 : tamctl_fail("signature does not verify: %s", tam_strerror(err));
    }
    tam_buf_finish(&in);
    tam_key_destroy(key);
    return rc;
}

int tamctl_cmd_cose(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "verify") == 0 && strcmp(argv[2], "--key") == 0) {
        return cose_verify(argv[3], argv[4]);
    }
    return tamctl_fail("usage: tamctl cose verify --key PEM FILE") + 1;
}
