#include "testutil.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/err.h"
#include "tam/hex.h"

const char *tu_vector_path(const char *name)
{
    static char path[4096];
    const char *dir = getenv("TAM_VECTORS");
    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : "tests/vectors", name);
    return path;
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    struct tam_buf b;
    tam_buf_init(&b, 64u << 20);
    uint8_t chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        cr_assert_eq(tam_buf_append(&b, chunk, n), TAM_OK);
    }
    fclose(f);
    cr_assert_eq(tam_buf_append(&b, "", 1), TAM_OK); /* NUL for text users */
    uint8_t *p = tam_buf_take(&b, len);
    *len -= 1;
    return p;
}

uint8_t *tu_load_hex(const char *name, size_t *len)
{
    size_t tlen;
    uint8_t *text = tu_read_file(tu_vector_path(name), &tlen);
    struct tam_buf b;
    tam_buf_init(&b, 64u << 20);
    cr_assert_eq(tam_hex_decode((const char *)text, tlen, &b), TAM_OK, "bad hex in %s", name);
    tam_free(text);
    return tam_buf_take(&b, len);
}

char *tu_load_text(const char *name, size_t *len)
{
    return (char *)tu_read_file(tu_vector_path(name), len);
}

uint8_t *tu_hex(const char *hex, size_t *len)
{
    struct tam_buf b;
    tam_buf_init(&b, 64u << 20);
    cr_assert_eq(tam_hex_decode(hex, strlen(hex), &b), TAM_OK, "bad hex literal");
    return tam_buf_take(&b, len);
}

uint16_t tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}
