/*
 * test_h1.c: the strict HTTP/1.1 framing parser (src/worker/h1.c): every
 * head the server must refuse, the heads it must accept, and the chunked
 * decoder fed whole, byte by byte and with bad framing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/h1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses `s` from a writable copy of exactly its length. */
static int
parse(const char *s, s2a_h1_head_t *h)
{
    size_t len = strlen(s);
    char *buf = malloc(len + 1);
    int rc;

    assert_non_null(buf);
    memcpy(buf, s, len + 1);
    rc = s2a_h1_parse_head(buf, len, h);
    /* The strings stay valid for the test: leak the copy on purpose only
     * until the end of the check below. */
    if (rc != S2A_OK) {
        free(buf);
    }
    return rc;
}

/* Parses a head with an embedded NUL (length given). */
static int
parse_n(const char *s, size_t len, s2a_h1_head_t *h)
{
    char *buf = malloc(len);
    int rc;

    assert_non_null(buf);
    memcpy(buf, s, len);
    rc = s2a_h1_parse_head(buf, len, h);
    free(buf);
    return rc;
}

static void
expect_error(const char *s, int status)
{
    s2a_h1_head_t h;

    assert_int_equal(parse(s, &h), S2A_ERROR);
    assert_int_equal(h.status, status);
    assert_non_null(h.message);
}

static void
test_head_ok(void **state)
{
    s2a_h1_head_t h;
    const char *s = "\r\nPOST /v1/x?y=1 HTTP/1.1\r\nHost: a\r\n"
                    "Content-Length: 5\r\nX-Pad:  v w \t\r\n\r\nhello";

    (void) state;
    assert_int_equal(parse(s, &h), S2A_OK);
    assert_int_equal(h.head_len, strlen(s) - 5);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.target, "/v1/x?y=1");
    assert_int_equal(h.version_minor, 1);
    assert_int_equal(h.nheaders, 3);
    assert_string_equal(s2a_h1_header(&h, "x-pad"), "v w");
    assert_int_equal(h.content_length, 5);
    assert_false(h.chunked);
    assert_true(h.keep_alive);
    free((char *) h.method - 2);

    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                           "Chunked\r\nConnection: x, close\r\n\r\n",
                           &h),
                     S2A_OK);
    assert_true(h.chunked);
    assert_false(h.keep_alive);
    assert_int_equal(h.content_length, -1);
    free((char *) h.method);

    /* HTTP/1.0 needs no Host; identical repeated lengths agree. */
    assert_int_equal(parse("GET / HTTP/1.0\r\nContent-Length: 3\r\n"
                           "Content-Length: 3\r\n\r\n",
                           &h),
                     S2A_OK);
    assert_int_equal(h.content_length, 3);
    assert_false(h.keep_alive);
    free((char *) h.method);
}

static void
test_head_again(void **state)
{
    s2a_h1_head_t h;
    char buf[] = "GET / HTTP/1.1\r\nHost: a\r\n\r";

    (void) state;
    assert_int_equal(s2a_h1_parse_head(buf, strlen(buf), &h), S2A_AGAIN);
    /* Untouched: the caller parses it again with more bytes. */
    assert_string_equal(buf, "GET / HTTP/1.1\r\nHost: a\r\n\r");
    assert_int_equal(s2a_h1_parse_head(buf, 0, &h), S2A_AGAIN);
    assert_int_equal(s2a_h1_parse_head(buf, 14, &h), S2A_AGAIN);
}

/* Whether `s` parses and asks to keep the connection open. */
static bool
keeps_alive(const char *s)
{
    s2a_h1_head_t h;
    bool keep;

    assert_int_equal(parse(s, &h), S2A_OK);
    keep = h.keep_alive;
    free((char *) h.method);
    return keep;
}

static void
test_head_connection(void **state)
{
    (void) state;
    assert_true(keeps_alive("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_false(keeps_alive("GET / HTTP/1.0\r\n\r\n"));
    assert_true(
        keeps_alive("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    /* Connection is a list: every field line counts, and close wins
     * over keep-alive (RFC 9112 9.3), whatever the version. */
    assert_false(keeps_alive("GET / HTTP/1.1\r\nHost: a\r\n"
                             "Connection: keep-alive\r\n"
                             "Connection: close\r\n\r\n"));
    assert_false(keeps_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
                             "Connection: close\r\n\r\n"));
    assert_false(keeps_alive("GET / HTTP/1.0\r\n"
                             "Connection: keep-alive, close\r\n\r\n"));
    assert_true(keeps_alive("GET / HTTP/1.0\r\nConnection: upgrade\r\n"
                            "Connection: keep-alive\r\n\r\n"));
}

static void
test_head_transfer_encoding(void **state)
{
    (void) state;
    /* More than one, anything but chunked, with Content-Length, 1.0. */
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 400);
    expect_error(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
                 "chunked\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, "
                 "chunked\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n"
                 "\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                 "Content-Length: 3\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
}

static void
test_head_content_length(void **state)
{
    (void) state;
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                 "Content-Length: 4\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 4\r\n\r\n",
                 400);
    expect_error("POST / HTTP/1.1\r\nHost: a\r\n"
                 "Content-Length: 99999999999999999999\r\n\r\n",
                 400);
}

static void
test_head_bad_bytes(void **state)
{
    static const char nul_value[] =
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    static const char nul_name[] =
        "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: a\r\n\r\n";
    s2a_h1_head_t h;

    (void) state;
    assert_int_equal(parse_n(nul_value, sizeof(nul_value) - 1, &h), S2A_ERROR);
    assert_int_equal(h.status, 400);
    assert_int_equal(parse_n(nul_name, sizeof(nul_name) - 1, &h), S2A_ERROR);
    assert_int_equal(h.status, 400);
    /* A CR or a LF inside a value or a name, bare LF line ends. */
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX\rY: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX\nY: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\nHost: a\n\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400);
}

static void
test_head_request_line(void **state)
{
    (void) state;
    expect_error("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
    expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    expect_error("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    expect_error("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400);
    expect_error("GARBAGE\r\n\r\n", 400);
    expect_error("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    expect_error("GET / HTTP/1.12\r\nHost: a\r\n\r\n", 505);
}

static void
test_head_too_many_headers(void **state)
{
    char buf[4096];
    size_t n;
    int i;

    (void) state;
    n = (size_t) snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
    for (i = 0; i < S2A_H1_MAX_HEADERS + 1; i++) {
        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "H: %d\r\n", i);
    }
    snprintf(buf + n, sizeof(buf) - n, "\r\n");
    expect_error(buf, 431);
}

/* Decodes `s` in pieces of `step` bytes; returns the final status and
 * the data in `out`. */
static int
decode(const char *s, size_t step, uint64_t limit, char *out, size_t *olen,
       size_t *consumed, s2a_h1_chunked_t *st)
{
    size_t len = strlen(s), off = 0, end, used, dlen;
    int rc = S2A_AGAIN;

    s2a_h1_chunked_init(st, limit);
    *olen = 0;
    while (off < len && rc == S2A_AGAIN) {
        end = off + step < len ? off + step : len;
        while (off < end) {
            rc = s2a_h1_chunked_parse(st, s + off, end - off, &used, &dlen);
            memcpy(out + *olen, s + off + used - dlen, dlen);
            *olen += dlen;
            off += used;
            if (rc != S2A_AGAIN) {
                break;
            }
        }
    }
    *consumed = off;
    return rc;
}

static void
test_chunked_ok(void **state)
{
    static const char body[] = "5\r\nhello\r\n6;ext=1;q=\"a\\\"b\";n\r\n world"
                               "\r\n00A\r\n0123456789\r\n0\r\nTrailer: x\r\n"
                               "\r\nNEXT";
    s2a_h1_chunked_t st;
    char out[64];
    size_t olen, used, step;

    (void) state;
    for (step = 1; step <= sizeof(body); step++) {
        assert_int_equal(decode(body, step, 1000, out, &olen, &used, &st),
                         S2A_OK);
        assert_int_equal(olen, 21);
        assert_memory_equal(out, "hello world0123456789", 21);
        /* The bytes after the body are left for the next request. */
        assert_int_equal(used, sizeof(body) - 1 - 4);
    }
}

static void
expect_chunk_error(const char *s, int status)
{
    s2a_h1_chunked_t st;
    char out[256];
    size_t olen, used;

    assert_int_equal(decode(s, 1, 100, out, &olen, &used, &st), S2A_ERROR);
    assert_int_equal(st.status, status);
    assert_int_equal(decode(s, strlen(s), 100, out, &olen, &used, &st),
                     S2A_ERROR);
    assert_int_equal(st.status, status);
}

static void
test_chunked_bad(void **state)
{
    (void) state;
    /* Sizes that are not plain hex digits. */
    expect_chunk_error("0x5\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("+5\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error(" 5\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5 \r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("-5\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("g\r\n", 400);
    expect_chunk_error("1000000000000000\r\n", 400);
    /* Bare LF after the size, after the data, in trailers. */
    expect_chunk_error("5\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5\r\nhello\n0\r\n\r\n", 400);
    expect_chunk_error("5\r\nhelloX\r\n0\r\n\r\n", 400);
    expect_chunk_error("5\r\nhello\r\n0\n\r\n", 400);
    expect_chunk_error("5\r\nhello\r\n0\r\n\n", 400);
    expect_chunk_error("0\r\nT: x\n\r\n", 400);
    expect_chunk_error("0\r\nT x\r\n\r\n", 400);
    /* Extensions off the grammar. */
    expect_chunk_error("5; a=1\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5;\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5;a=\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5;a=\"x\r\nhello\r\n0\r\n\r\n", 400);
    expect_chunk_error("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", 400);
    /* Past the limit: refused when announced, before the data. */
    expect_chunk_error("65\r\n", 413);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_ok),
        cmocka_unit_test(test_head_again),
        cmocka_unit_test(test_head_connection),
        cmocka_unit_test(test_head_transfer_encoding),
        cmocka_unit_test(test_head_content_length),
        cmocka_unit_test(test_head_bad_bytes),
        cmocka_unit_test(test_head_request_line),
        cmocka_unit_test(test_head_too_many_headers),
        cmocka_unit_test(test_chunked_ok),
        cmocka_unit_test(test_chunked_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
