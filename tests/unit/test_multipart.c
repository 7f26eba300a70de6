/*
 * test_multipart.c: the multipart/form-data parser (src/worker/multipart.c):
 * boundaries from Content-Type, quoted parameters, CRLF rules, a missing
 * close delimiter, oversize headers and the cap on parts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/multipart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static s2a_mpart_t parts[16];
static size_t nparts;
static char err[256];

static int
parse(const char *body, const char *boundary, size_t max)
{
    return s2a_multipart_parse((const unsigned char *) body, strlen(body),
                               boundary, parts, max, &nparts, err, sizeof(err));
}

static void
test_boundary(void **state)
{
    char b[S2A_MULTIPART_BOUNDARY_MAX + 1];

    (void) state;
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary=abc123", b, err,
                               sizeof(err)),
        S2A_OK);
    assert_string_equal(b, "abc123");
    assert_int_equal(
        s2a_multipart_boundary("Multipart/Form-Data ; charset=utf-8; "
                               "BOUNDARY=\"a b:c\"",
                               b, err, sizeof(err)),
        S2A_OK);
    assert_string_equal(b, "a b:c");
    assert_int_equal(
        s2a_multipart_boundary("application/json", b, err, sizeof(err)),
        S2A_DECLINED);
    assert_int_equal(s2a_multipart_boundary(NULL, b, err, sizeof(err)),
                     S2A_DECLINED);
    /* missing, empty, unterminated quote, bad characters, too long,
     * repeated, trailing space */
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data", b, err, sizeof(err)),
        S2A_ERROR);
    assert_int_equal(s2a_multipart_boundary("multipart/form-data; boundary=", b,
                                            err, sizeof(err)),
                     S2A_ERROR);
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary=\"abc", b, err,
                               sizeof(err)),
        S2A_ERROR);
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary=\"a<b\"", b, err,
                               sizeof(err)),
        S2A_ERROR);
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary="
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaa",
                               b, err, sizeof(err)),
        S2A_ERROR);
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary=a; boundary=b", b,
                               err, sizeof(err)),
        S2A_ERROR);
    assert_int_equal(
        s2a_multipart_boundary("multipart/form-data; boundary=\"ab \"", b, err,
                               sizeof(err)),
        S2A_ERROR);
}

static void
test_parts(void **state)
{
    const char *body = "preamble\r\n--xy\r\n"
                       "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                       "a cat\r\non two lines\r\n"
                       "--xy  \r\n"
                       "content-disposition: form-data; name=image; "
                       "filename=\"a \\\"q\\\".png\"\r\n"
                       "Content-Type: image/png\r\nX-Other: 1\r\n\r\n"
                       "\x89PNG--x\r\n"
                       "--xy--\r\nepilogue";

    (void) state;
    assert_int_equal(parse(body, "xy", 8), S2A_OK);
    assert_int_equal(nparts, 2);
    assert_string_equal(parts[0].name, "prompt");
    assert_false(parts[0].has_filename);
    assert_int_equal(parts[0].len, strlen("a cat\r\non two lines"));
    assert_memory_equal(parts[0].data, "a cat\r\non two lines", parts[0].len);
    assert_string_equal(parts[1].name, "image");
    assert_true(parts[1].has_filename);
    assert_string_equal(parts[1].filename, "a \"q\".png");
    assert_string_equal(parts[1].content_type, "image/png");
    assert_int_equal(parts[1].len, 7);
    /* an empty part and a body opening with the delimiter */
    assert_int_equal(parse("--b\r\nContent-Disposition: form-data; "
                           "name=e\r\n\r\n\r\n--b--",
                           "b", 8),
                     S2A_OK);
    assert_int_equal(nparts, 1);
    assert_int_equal(parts[0].len, 0);
    /* no parts at all */
    assert_int_equal(parse("--b--\r\n", "b", 8), S2A_OK);
    assert_int_equal(nparts, 0);
}

static void
test_framing_errors(void **state)
{
    static const char *const bad[] = {
        "", /* no opening delimiter */
        "--c\r\n",
        /* no close delimiter */
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nhello\r\n",
        "--b\r\nContent-Disposition: form-data; name=a\r\n\r\nhello",
        /* bare LF */
        "--b\nContent-Disposition: form-data; name=a\n\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=a\n\r\nx\r\n--b--",
        /* junk after the delimiter */
        "--bx\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--b--",
        /* headers that never end */
        "--b\r\nContent-Disposition: form-data; name=a\r\n",
        /* no name, not form-data, two dispositions, folded, no colon */
        "--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=a\r\n"
        "Content-Disposition: form-data; name=b\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data;\r\n name=a\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition form-data; name=a\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
        /* quoted parameter left open, empty token value */
        "--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; name=\r\n\r\nx\r\n--b--",
        /* an empty name, a control byte in a quoted name */
        "--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n--b--",
        "--b\r\nContent-Disposition: form-data; "
        "name=\"a\x01\"\r\n\r\nx\r\n--b--",
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i], "b", 8), S2A_ERROR);
        assert_true(err[0] != '\0');
    }
    assert_int_equal(parse("--b--", "", 8), S2A_ERROR);
}

static void
test_limits(void **state)
{
    size_t big = S2A_MULTIPART_HEADERS_MAX + 100, n, i;
    char *body = malloc(big + 200);

    (void) state;
    assert_non_null(body);
    n = (size_t) sprintf(body,
                         "--b\r\nContent-Disposition: form-data; "
                         "name=a\r\nX-Pad: ");
    memset(body + n, 'p', big);
    n += big;
    strcpy(body + n, "\r\n\r\nx\r\n--b--");
    assert_int_equal(parse(body, "b", 8), S2A_ERROR);
    assert_non_null(strstr(err, "headers over"));
    free(body);

    /* more parts than the cap */
    body = malloc(10 * 64 + 16);
    assert_non_null(body);
    n = 0;
    for (i = 0; i < 10; i++) {
        n += (size_t) sprintf(body + n,
                              "--b\r\nContent-Disposition: "
                              "form-data; name=f%zu\r\n\r\nv\r\n",
                              i);
    }
    strcpy(body + n, "--b--");
    assert_int_equal(parse(body, "b", 8), S2A_ERROR);
    assert_non_null(strstr(err, "more than 8 parts"));
    assert_int_equal(parse(body, "b", 10), S2A_OK);
    free(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
