/*
 * test_jsonlimit.c: the JSON pre-scan's value, depth, string and key
 * limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/jsonlimit.h"

#include <stdlib.h>
#include <string.h>

static const s2a_json_limits_t small = { 5, 3, 8, 4 };

static int
check(const char *text)
{
    char err[160];

    return s2a_json_limits_check(text, strlen(text), &small, err, sizeof(err));
}

static void
test_values(void **state)
{
    (void) state;
    /* Keys are not values: an object, and four values in it. */
    assert_int_equal(check("{\"a\":1,\"b\":true,\"c\":\"x\",\"d\":null}"),
                     S2A_OK);
    assert_int_equal(check("[1,2,3,4,5]"), S2A_DECLINED);
    assert_int_equal(check("[1,2,3,4]"), S2A_OK);
    /* A number is one value however long; blanks separate values. */
    assert_int_equal(check("[-12.5e+3, 99999999999999999999]"), S2A_OK);
    assert_int_equal(check("[1 2 3 4 5]"), S2A_DECLINED);
    assert_int_equal(check("[{},{},{},{},{}]"), S2A_DECLINED);
    /* A last string counts too. */
    assert_int_equal(check("[1,2,3,4,\"x\"]"), S2A_DECLINED);
    assert_int_equal(check(""), S2A_OK);
}

static void
test_depth_and_strings(void **state)
{
    char err[160];

    (void) state;
    assert_int_equal(check("[[[1]]]"), S2A_OK);
    assert_int_equal(check("[[[[1]]]]"), S2A_DECLINED);
    /* Closing brackets free depth; brackets inside strings are text. */
    assert_int_equal(check("[[[]],[[]]]"), S2A_OK);
    assert_int_equal(check("[\"[[[[\"]"), S2A_OK);
    assert_int_equal(check("[\"12345678\"]"), S2A_OK);
    assert_int_equal(check("[\"123456789\"]"), S2A_DECLINED);
    assert_int_equal(check("{\"abcd\":1}"), S2A_OK);
    assert_int_equal(check("{\"abcde\" : 1}"), S2A_DECLINED);
    /* An escaped quote does not end a string. */
    assert_int_equal(check("[\"a\\\"b\\\"c\\\"d\\\"e\"]"), S2A_DECLINED);
    /* Unterminated and malformed text is Jansson's to refuse. */
    assert_int_equal(check("[\"abc"), S2A_OK);
    assert_int_equal(check("\"\\"), S2A_OK);
    assert_int_equal(check("}}]]"), S2A_OK);
    assert_int_equal(s2a_json_limits_check("[[[[", 4, &small, err, sizeof(err)),
                     S2A_DECLINED);
    assert_non_null(strstr(err, "deeper than 3 levels"));
}

/* The production limits on the bomb of the hardening issue: 64 MiB of
 * "[{},{},...]" is refused after its first 262145 values. */
static void
test_bomb(void **state)
{
    static const s2a_json_limits_t lim = { S2A_JSON_MAX_VALUES,
                                           S2A_JSON_MAX_DEPTH, SIZE_MAX,
                                           S2A_JSON_MAX_KEY };
    size_t len = 64u << 20, i;
    char *text = malloc(len), err[160];

    (void) state;
    assert_non_null(text);
    text[0] = '[';
    for (i = 1; i + 3 <= len; i += 3) {
        memcpy(text + i, "{},", 3);
    }
    text[i - 1] = ']';
    assert_int_equal(s2a_json_limits_check(text, i, &lim, err, sizeof(err)),
                     S2A_DECLINED);
    assert_string_equal(err, "the body holds more than 262144 JSON values");
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_depth_and_strings),
        cmocka_unit_test(test_bomb),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
