#include <criterion/criterion.h>
#include <string.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"

Test(buf, ceiling_is_enforced_and_buffer_kept)
{
    struct tam_buf b;
    tam_buf_init(&b, 10);
    cr_assert_eq(tam_buf_append(&b, "12345", 5), TAM_OK);
    cr_assert_eq(tam_buf_append(&b, "123456", 6), TAM_ETOOBIG);
    cr_assert_eq(b.len, 5, "a refused append leaves the content");
    cr_assert_eq(tam_buf_append(&b, "12345", 5), TAM_OK);
    cr_assert_eq(b.len, 10);
    cr_assert_eq(tam_buf_printf(&b, "%d", 1), TAM_ETOOBIG);
    size_t n;
    uint8_t *p = tam_buf_take(&b, &n);
    cr_assert_eq(n, 10);
    cr_assert_eq(memcmp(p, "1234512345", 10), 0);
    cr_assert_null(b.data);
    tam_free(p);
    tam_buf_finish(&b);
    tam_buf_finish(NULL);
}

Test(buf, printf_and_out_of_memory)
{
    struct tam_buf b;
    tam_buf_init(&b, 1 << 20);
    cr_assert_eq(tam_buf_printf(&b, "a=%d b=%s", 42, "x"), TAM_OK);
    cr_assert_eq(b.len, 8);
    cr_assert_eq(memcmp(b.data, "a=42 b=x", 8), 0);
    tam_buf_finish(&b);
    tam_buf_init(&b, 1 << 20);
    tam_alloc_fail_after(0);
    cr_assert_eq(tam_buf_append(&b, "x", 1), TAM_ENOMEM);
    tam_alloc_fail_after(-1);
    cr_assert_eq(b.len, 0);
    tam_buf_finish(&b);
}

Test(arena, alignment_zeroing_ceiling_reset)
{
    struct tam_arena a;
    tam_arena_init(&a, 256, 4096);
    uint8_t *p = tam_arena_alloc(&a, 3);
    uint8_t *q = tam_arena_alloc(&a, 100);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)q % 16, 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(q[i], 0);
    }
    cr_assert_not_null(tam_arena_alloc(&a, 1000), "larger than a chunk");
    cr_assert_null(tam_arena_alloc(&a, 4000), "over the ceiling");
    cr_assert_null(tam_arena_array(&a, SIZE_MAX / 2, 4), "overflow");
    tam_arena_reset(&a);
    cr_assert_eq(a.used, 0);
    cr_assert_not_null(tam_arena_alloc(&a, 4000));
    tam_arena_finish(&a);
    tam_arena_finish(NULL);
}

Test(hex, round_trip_and_errors)
{
    char out[9];
    tam_hex_encode((const uint8_t *)"\x01\xab\xff\x00", 4, out);
    cr_assert_str_eq(out, "01abff00");
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_hex_decode("01 AB\nff00", 10, &b), TAM_OK);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(b.data[1], 0xab);
    tam_buf_reset(&b);
    cr_assert_eq(tam_hex_decode("abc", 3, &b), TAM_EINVAL);
    tam_buf_reset(&b);
    cr_assert_eq(tam_hex_decode("zz", 2, &b), TAM_EINVAL);
    tam_buf_finish(&b);
}

Test(err, names_and_messages)
{
    cr_assert_str_eq(tam_strerror(TAM_OK), "success");
    cr_assert_str_eq(tam_strerror(TAM_ESIG), "signature verification failed");
    cr_assert_str_eq(tam_errname(TAM_ETOOBIG), "TAM_ETOOBIG");
    cr_assert_str_eq(tam_strerror(TAM_ERRNO(2)), strerror(2));
    cr_assert(TAM_EPROTO < TAM_ERRNO(4095), "domain codes below every -errno");
}

Test(log, quote_escapes_peer_bytes)
{
    char out[64];
    cr_assert_str_eq(tam_log_quote("a\"b\n\x01", 5, out, sizeof(out)), "\"a\\x22b\\x0a\\x01\"");
    cr_assert_eq(tam_log_level_parse("debug"), TAM_LOG_DEBUG);
    cr_assert_eq(tam_log_level_parse("loud"), -1);
}
