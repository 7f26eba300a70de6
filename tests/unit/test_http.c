/*
 * test_http.c: the HTTP server's byte-level helpers. It includes http.c
 * itself to reach its static functions (the Makefile links it without
 * http.o).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/worker/http.c"

/* `len` bytes of `s` in a buffer of exactly that size: a read past the
 * end is caught by ASan, and the byte after it would decode as a digit. */
static char *
exact_copy(const char *s, size_t len)
{
    char *p = malloc(len);

    assert_non_null(p);
    memcpy(p, s, len);
    return p;
}

static void
test_percent_decode(void **state)
{
    char out[16];

    (void) state;
    assert_int_equal(percent_decode("/a%41b", 6, out), S2A_OK);
    assert_string_equal(out, "/aAb");
    assert_int_equal(percent_decode("%7e", 3, out), S2A_OK);
    assert_string_equal(out, "~");
    assert_int_equal(percent_decode("%00", 3, out), S2A_ERROR);
    assert_int_equal(percent_decode("%g1", 3, out), S2A_ERROR);
    assert_int_equal(percent_decode("", 0, out), S2A_OK);
    assert_string_equal(out, "");
}

/* A '%' with fewer than two bytes after it within `len` is malformed;
 * the bytes past `len` ("%41" cut after "%4") are never looked at. */
static void
test_percent_decode_truncated(void **state)
{
    char out[16], *in;

    (void) state;
    in = exact_copy("/a%41", 4);
    assert_int_equal(percent_decode(in, 4, out), S2A_ERROR);
    free(in);
    in = exact_copy("%", 1);
    assert_int_equal(percent_decode(in, 1, out), S2A_ERROR);
    free(in);
    /* The same bytes with the digit inside the length decode. */
    assert_int_equal(percent_decode("/a%41", 5, out), S2A_OK);
    assert_string_equal(out, "/aA");
    assert_int_equal(percent_decode("/a%41", 4, out), S2A_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_percent_decode_truncated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
