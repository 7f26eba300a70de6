/*
 * test_characters.c: the pure parts of src/master/characters.c: the
 * public id's shape and the checks of a character_write's fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "master/characters.h"

#include <stdlib.h>
#include <string.h>

static void
test_public_id(void **state)
{
    (void) state;
    assert_true(s2a_characters_public_id_ok("char_0123456789abcdef01234567"));
    assert_false(s2a_characters_public_id_ok(NULL));
    assert_false(s2a_characters_public_id_ok(""));
    assert_false(s2a_characters_public_id_ok("char_"));
    /* Upper-case hex, one digit short or long, another prefix. */
    assert_false(s2a_characters_public_id_ok("char_0123456789ABCDEF01234567"));
    assert_false(s2a_characters_public_id_ok("char_0123456789abcdef0123456"));
    assert_false(s2a_characters_public_id_ok("char_0123456789abcdef012345678"));
    assert_false(s2a_characters_public_id_ok("chr_00123456789abcdef01234567"));
    assert_false(s2a_characters_public_id_ok("char_0123456789abcdef0123456g"));
}

/* Whether `text` (JSON) passes the check; `err` receives the message. */
static bool
passes(const char *text, bool insert, char *err, size_t errlen)
{
    json_t *f = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(f);
    err[0] = '\0';
    rc = s2a_characters_check(f, insert, err, errlen);
    json_decref(f);
    return rc == S2A_OK;
}

static void
test_check(void **state)
{
    char err[160], *big;
    json_t *f;
    size_t n = S2A_CHARACTERS_TEXT_MAX + 1;

    (void) state;
    assert_true(passes("{\"token_id\":1}", true, err, sizeof(err)));
    assert_false(passes("{\"username\":\"a\"}", true, err, sizeof(err)));
    assert_string_equal(err, "token_id is required for a new character");
    assert_true(passes("{\"username\":\"a\"}", false, err, sizeof(err)));
    assert_true(passes("{}", false, err, sizeof(err)));
    assert_true(passes(
        "{\"token_id\":2,\"cameo_id\":null,\"character_id\":\"ch_1\","
        "\"username\":\"u\",\"display_name\":\"D\",\"profile_url\":null,"
        "\"instruction_set\":\"i\",\"safety_instruction_set\":null,"
        "\"visibility\":\"public\",\"state\":\"deleted\",\"temporary\":true,"
        "\"owner\":0,\"job_id\":\"job_x\",\"error\":null,\"updated_at\":5}",
        true, err, sizeof(err)));

    assert_false(passes("{\"id\":1}", false, err, sizeof(err)));
    assert_string_equal(err, "unknown field \"id\"");
    assert_false(passes("{\"public_id\":\"x\"}", false, err, sizeof(err)));
    assert_false(passes("{\"created_at\":1}", false, err, sizeof(err)));
    assert_false(
        passes("{\"visibility\":\"secret\"}", false, err, sizeof(err)));
    assert_string_equal(err, "visibility must be one of public, private");
    assert_false(passes("{\"visibility\":null}", false, err, sizeof(err)));
    assert_false(passes("{\"state\":\"done\"}", false, err, sizeof(err)));
    assert_string_equal(
        err,
        "state must be one of processing, ready, failed, deleting, deleted");
    assert_false(passes("{\"token_id\":0}", false, err, sizeof(err)));
    assert_false(passes("{\"token_id\":\"1\"}", false, err, sizeof(err)));
    assert_false(passes("{\"owner\":-1}", false, err, sizeof(err)));
    assert_false(passes("{\"temporary\":1}", false, err, sizeof(err)));
    assert_false(passes("{\"username\":5}", false, err, sizeof(err)));
    assert_false(
        passes("{\"username\":\"0123456789012345678901234567890123456789"
               "01234567890123456789012345\"}",
               false, err, sizeof(err)));
    assert_string_equal(err,
                        "username must be a string of at most 64 bytes or "
                        "null");

    /* Instruction sets: 4096 bytes, not one more. */
    big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    f = json_pack("{s:s}", "instruction_set", big);
    assert_int_equal(s2a_characters_check(f, false, err, sizeof(err)),
                     S2A_ERROR);
    json_decref(f);
    big[n - 1] = '\0';
    f = json_pack("{s:s}", "instruction_set", big);
    assert_int_equal(s2a_characters_check(f, false, err, sizeof(err)), S2A_OK);
    json_decref(f);
    free(big);

    /* Not an object at all. */
    f = json_array();
    assert_int_equal(s2a_characters_check(f, false, err, sizeof(err)),
                     S2A_ERROR);
    json_decref(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_public_id),
        cmocka_unit_test(test_check),
    };

    return cmocka_run_group_tests_name("characters", tests, NULL, NULL);
}
