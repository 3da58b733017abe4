#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tam/alloc.h"
#include "tam/arena.h"
#include "tam/buf.h"
#include "tam/err.h"
#include "tam/hex.h"
#include "tam/log.h"
#include "tam/resp.h"

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

/* stderr into a temporary file for the test; returns what was written since. */
static int g_saved_stderr = -1;
static FILE *g_capture;

static void capture_start(void)
{
    fflush(stderr);
    g_capture = tmpfile();
    cr_assert_not_null(g_capture);
    g_saved_stderr = dup(STDERR_FILENO);
    cr_assert_geq(dup2(fileno(g_capture), STDERR_FILENO), 0);
}

static size_t captured(char *out, size_t cap)
{
    fflush(stderr);
    rewind(g_capture);
    size_t n = fread(out, 1, cap - 1, g_capture);
    out[n] = '\0';
    return n;
}

static void capture_stop(void)
{
    fflush(stderr);
    dup2(g_saved_stderr, STDERR_FILENO);
    close(g_saved_stderr);
    fclose(g_capture);
    tam_log_configure(TAM_LOG_INFO, TAM_LOG_LOGFMT, "tamgate");
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

Test(log, held_lines_are_written_together_at_release, .fini = capture_stop)
{
    static char out[65536];
    capture_start();
    tam_log_configure(TAM_LOG_INFO, TAM_LOG_LOGFMT, "t");
    tam_log_hold();
    tam_log(TAM_LOG_INFO, "event=one n=%d", 1);
    tam_log(TAM_LOG_WARN, "event=two");
    tam_log(TAM_LOG_DEBUG, "event=hidden");
    cr_assert_eq(captured(out, sizeof(out)), 0, "nothing written while held");
    tam_log_release();
    captured(out, sizeof(out));
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert_not_null(strstr(out, "level=info prog=t src="));
    cr_assert_not_null(strstr(out, "test_base.c:"));
    cr_assert_not_null(strstr(out, " event=one n=1\n"));
    cr_assert_not_null(strstr(out, "level=warn"));
    tam_log(TAM_LOG_INFO, "event=three");
    captured(out, sizeof(out));
    cr_assert_eq(count_lines(out), 3, "written at once after release");
}

Test(log, a_full_hold_buffer_is_written_and_nothing_is_lost, .fini = capture_stop)
{
    static char out[1 << 20];
    capture_start();
    tam_log_hold();
    for (int i = 0; i < 400; i++) {
        tam_log(TAM_LOG_INFO, "event=line i=%d pad=%0150d", i, 0);
    }
    cr_assert_gt(captured(out, sizeof(out)), 0, "32 KiB gathered: written before release");
    tam_log_release();
    captured(out, sizeof(out));
    cr_assert_eq(count_lines(out), 400);
    cr_assert_not_null(strstr(out, " i=0 "));
    cr_assert_not_null(strstr(out, " i=399 "));
}

Test(log, json_lines_escape_and_long_lines_stay_valid, .fini = capture_stop)
{
    static char out[65536];
    capture_start();
    tam_log_configure(TAM_LOG_INFO, TAM_LOG_JSON, "t");
    char q[64];
    tam_log(TAM_LOG_INFO, "event=x v=%s", tam_log_quote("a\\b\x01", 4, q, sizeof(q)));
    char big[3000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tam_log(TAM_LOG_INFO, "event=big v=%s", big);
    captured(out, sizeof(out));
    cr_assert_eq(count_lines(out), 2, "%s", out);
    cr_assert_not_null(strstr(out, "\"event\":\"x\",\"v\":\"a\\\\x5cb\\\\x01\"}\n"), "%s", out);
    const char *second = strchr(out, '\n') + 1;
    cr_assert_eq(strncmp(second, "{\"ts\":\"", 7), 0);
    cr_assert_str_eq(second + strlen(second) - 5, "zz\"}\n", "the cut value and the object end");
}

/* ---- RESP: the same bytes as hiredis's own formatter ---- */

static void assert_same_as_hiredis(const struct tam_buf *b, size_t from, const char *hiredis,
                                   int len)
{
    cr_assert_gt(len, 0);
    cr_assert_eq(b->len - from, (size_t)len, "%.*s", (int)(b->len - from),
                 (const char *)b->data + from);
    cr_assert_eq(memcmp(b->data + from, hiredis, (size_t)len), 0, "%.*s", len, hiredis);
}

Test(resp, formats_as_hiredis_does)
{
    struct tam_buf b;
    tam_buf_init(&b, 1u << 20);
    static const uint8_t bin[] = {0, ' ', '\r', '\n', '%', 0xff};
    char *h = NULL;
    size_t from = b.len;
    cr_assert_eq(tam_resp_cmdf(&b, "HSET %s:plan f%sx %b", "k {a b}", "", bin, sizeof(bin)),
                 TAM_OK);
    int n = redisFormatCommand(&h, "HSET %s:plan f%sx %b", "k {a b}", "", bin, sizeof(bin));
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);

    from = b.len;
    cr_assert_eq(tam_resp_cmdf(&b, "  XADD %s MAXLEN ~ %d * n %lld  m %u 100%% ", "s", -7,
                               LLONG_MIN, UINT_MAX),
                 TAM_OK);
    n = redisFormatCommand(&h, "  XADD %s MAXLEN ~ %d * n %lld  m %u 100%% ", "s", -7, LLONG_MIN,
                           UINT_MAX);
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);

    from = b.len;
    cr_assert_eq(tam_resp_cmdf(&b, "EXEC"), TAM_OK);
    n = redisFormatCommand(&h, "EXEC");
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);

    from = b.len;
    cr_assert_eq(tam_resp_cmdf(&b, "X %llu %b", ULLONG_MAX, NULL, (size_t)0), TAM_OK);
    n = redisFormatCommand(&h, "X %llu %b", ULLONG_MAX, NULL, (size_t)0);
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);

    const char *argv[] = {"SET", "", "a b\r\n"};
    size_t lens[] = {3, 0, 5};
    struct tam_bytes args[] = {tam_bytes_of("SET", 3), tam_bytes_of("", 0),
                               tam_bytes_of("a b\r\n", 5)};
    from = b.len;
    cr_assert_eq(tam_resp_argv(&b, 3, args), TAM_OK);
    n = redisFormatCommandArgv(&h, 3, argv, lens);
    assert_same_as_hiredis(&b, from, h, n);
    from = b.len;
    cr_assert_eq(tam_resp_cargv(&b, 3, argv, lens), TAM_OK);
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);
    const char *plain[] = {"XACK", "s", "1-0"};
    from = b.len;
    cr_assert_eq(tam_resp_cargv(&b, 3, plain, NULL), TAM_OK, "lengths from strlen");
    n = redisFormatCommandArgv(&h, 3, plain, NULL);
    assert_same_as_hiredis(&b, from, h, n);
    redisFreeCommand(h);
    tam_buf_finish(&b);
}

Test(resp, a_failed_command_leaves_the_buffer_as_it_was)
{
    struct tam_buf b;
    tam_buf_init(&b, 64);
    cr_assert_eq(tam_resp_cmdf(&b, "GET %s", "k"), TAM_OK);
    size_t len = b.len;
    cr_assert_eq(tam_resp_cmdf(&b, "GET %x", 1), TAM_EINVAL, "an unknown conversion");
    cr_assert_eq(tam_resp_cmdf(&b, "GET %l", 1L), TAM_EINVAL);
    cr_assert_eq(tam_resp_cmdf(&b, "GET %zu", (size_t)1), TAM_EINVAL, "as hiredis: no %%zu");
    cr_assert_eq(tam_resp_cmdf(&b, "GET %", 1), TAM_EINVAL, "a lone '%%' at the end");
    cr_assert_eq(tam_resp_cmdf(&b, "GET %s", (const char *)NULL), TAM_EINVAL);
    cr_assert_eq(tam_resp_cmdf(&b, "GET %b", (const void *)NULL, (size_t)3), TAM_EINVAL);
    char big[100];
    memset(big, 'x', sizeof(big));
    cr_assert_eq(tam_resp_cmdf(&b, "SET k %b", big, sizeof(big)), TAM_ETOOBIG);
    struct tam_bytes arg = tam_bytes_of(big, sizeof(big));
    cr_assert_eq(tam_resp_argv(&b, 1, &arg), TAM_ETOOBIG);
    const char *with_null[] = {"GET", NULL};
    cr_assert_eq(tam_resp_cargv(&b, 2, with_null, NULL), TAM_EINVAL);
    cr_assert_eq(b.len, len, "nothing of a refused command stays");
    cr_assert_eq(memcmp(b.data, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", len), 0);
    tam_buf_finish(&b);
}
