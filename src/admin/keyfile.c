/*
 * The deployment's sealing key files (seal.h): the KEK and the worker sealing key. Created
 * with O_EXCL and mode 0600 on first start (zero-config), read on every start.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/seal.h"

#define KEYFILE_MAX 16384

/* Reads at most max bytes; a longer file is TAM_EINVAL (a key file is small). */
static int read_small(const char *path, uint8_t *buf, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    size_t n = 0;
    int err = TAM_OK;
    for (;;) {
        ssize_t r = read(fd, buf + n, max - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            err = TAM_ERRNO(errno);
            break;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n == max) {
            err = TAM_EINVAL;
            break;
        }
    }
    close(fd);
    *len = n;
    return err;
}

/* Creates path exclusively with mode 0600 and writes all of buf. */
static int write_new(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return TAM_ERRNO(errno);
    }
    const uint8_t *p = buf;
    size_t off = 0;
    int err = TAM_OK;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            err = TAM_ERRNO(errno);
            break;
        }
        off += (size_t)w;
    }
    if (err == TAM_OK && fsync(fd) != 0) {
        err = TAM_ERRNO(errno);
    }
    close(fd);
    if (err != TAM_OK) {
        (void)unlink(path);
    }
    return err;
}

/* 32 raw bytes, or 64 hex digits followed only by white space. */
static int parse_kek(const uint8_t *buf, size_t n, uint8_t kek[TAM_SEAL_KEK_LEN])
{
    if (n == TAM_SEAL_KEK_LEN) {
        memcpy(kek, buf, TAM_SEAL_KEK_LEN);
        return TAM_OK;
    }
    if (n < 2 * TAM_SEAL_KEK_LEN) {
        return TAM_EINVAL;
    }
    for (size_t i = 2 * TAM_SEAL_KEK_LEN; i < n; i++) {
        if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') {
            return TAM_EINVAL;
        }
    }
    for (size_t i = 0; i < TAM_SEAL_KEK_LEN; i++) {
        int hi = tam_hex_digit(buf[2 * i]), lo = tam_hex_digit(buf[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            tam_memzero(kek, TAM_SEAL_KEK_LEN);
            return TAM_EINVAL;
        }
        kek[i] = (uint8_t)(hi << 4 | lo);
    }
    return TAM_OK;
}

int tam_seal_kek_load(const char *path, bool create, uint8_t kek[TAM_SEAL_KEK_LEN], bool *created)
{
    if (path == NULL || kek == NULL) {
        return TAM_EINVAL;
    }
    if (created != NULL) {
        *created = false;
    }
    uint8_t buf[256];
    size_t n = 0;
    int err = read_small(path, buf, sizeof(buf), &n);
    if (err == TAM_ERRNO(ENOENT) && create) {
        uint8_t fresh[TAM_SEAL_KEK_LEN];
        err = tam_random(fresh, sizeof(fresh));
        if (err == TAM_OK) {
            err = write_new(path, fresh, sizeof(fresh));
        }
        if (err == TAM_OK && created != NULL) {
            *created = true;
        }
        tam_memzero(fresh, sizeof(fresh));
        /* Read back what is on disk: a concurrent creator (EEXIST) wins. */
        if (err == TAM_OK || err == TAM_ERRNO(EEXIST)) {
            err = read_small(path, buf, sizeof(buf), &n);
        }
    }
    if (err == TAM_OK) {
        err = parse_kek(buf, n, kek);
    }
    tam_memzero(buf, sizeof(buf));
    return err;
}

static int create_worker_key(const char *path)
{
    struct tam_key *k = NULL;
    struct tam_buf pem;
    tam_buf_init(&pem, 4096);
    int err = tam_key_generate(TAM_KEY_P256, &k);
    if (err == TAM_OK) {
        err = tam_key_private_pem(k, &pem);
    }
    if (err == TAM_OK) {
        err = write_new(path, pem.data, pem.len);
    }
    if (pem.data != NULL) {
        tam_memzero(pem.data, pem.cap);
    }
    tam_buf_finish(&pem);
    tam_key_destroy(k);
    return err;
}

int tam_seal_worker_key_load(const char *path, bool create, struct tam_key **out, bool *created)
{
    if (path == NULL || out == NULL) {
        return TAM_EINVAL;
    }
    *out = NULL;
    if (created != NULL) {
        *created = false;
    }
    uint8_t *buf = tam_malloc(KEYFILE_MAX);
    if (buf == NULL) {
        return TAM_ENOMEM;
    }
    size_t n = 0;
    int err = read_small(path, buf, KEYFILE_MAX, &n);
    if (err == TAM_ERRNO(ENOENT) && create) {
        err = create_worker_key(path);
        if (err == TAM_OK && created != NULL) {
            *created = true;
        }
        if (err == TAM_OK || err == TAM_ERRNO(EEXIST)) {
            err = read_small(path, buf, KEYFILE_MAX, &n);
        }
    }
    if (err == TAM_OK) {
        err = tam_key_from_pem((const char *)buf, n, out);
    }
    if (err == TAM_OK && (tam_key_type(*out) != TAM_KEY_P256 || !tam_key_has_private(*out))) {
        tam_key_destroy(*out);
        *out = NULL;
        err = TAM_EKEY;
    }
    tam_memzero(buf, KEYFILE_MAX);
    tam_free(buf);
    return err;
}

int tam_key_file_load(const char *path, bool public_only, struct tam_key **out)
{
    *out = NULL;
    uint8_t *buf = tam_malloc(KEYFILE_MAX);
    if (buf == NULL) {
        return TAM_ENOMEM;
    }
    size_t n = 0;
    int err = read_small(path, buf, KEYFILE_MAX, &n);
    struct tam_key *k = NULL;
    if (err == TAM_OK) {
        err = tam_key_from_pem((const char *)buf, n, &k);
    }
    tam_memzero(buf, KEYFILE_MAX);
    tam_free(buf);
    if (err == TAM_OK && public_only && tam_key_has_private(k)) {
        uint8_t pub[64];
        size_t len = tam_key_public_raw(k, pub);
        err = tam_key_from_raw_public(tam_key_type(k), pub, len, out);
        tam_key_destroy(k);
        return err;
    }
    *out = k;
    return err;
}
