/*
 * test_sticky.c: the @mention scanner of sticky routing
 * (src/worker/sticky.c): what counts as a mention, lower-casing,
 * duplicates, the bounds on a name and on how many are returned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/sticky.h"

#include <stdio.h>
#include <string.h>

static char names[S2A_STICKY_NAMES_MAX][S2A_STICKY_NAME_LEN];

static size_t
scan(const char *s)
{
    memset(names, 0, sizeof(names));
    return s2a_sticky_mentions(s, strlen(s), names, S2A_STICKY_NAMES_MAX);
}

static void
test_mentions(void **state)
{
    (void) state;
    assert_int_equal(scan(""), 0);
    assert_int_equal(scan("no mention here"), 0);
    assert_int_equal(scan("@alice"), 1);
    assert_string_equal(names[0], "alice");
    assert_int_equal(scan("a photo of @Priv.Cat on a sofa"), 1);
    assert_string_equal(names[0], "priv.cat");
    /* Trailing dots end the sentence; inner ones belong to the name. */
    assert_int_equal(scan("look, @bob_dog. and @a.b.c..."), 2);
    assert_string_equal(names[0], "bob_dog");
    assert_string_equal(names[1], "a.b.c");
    /* Each name once, in the order of its first mention. */
    assert_int_equal(scan("@zed @Amy @zed @AMY @amy"), 2);
    assert_string_equal(names[0], "zed");
    assert_string_equal(names[1], "amy");
    /* An e-mail address is no mention; punctuation before '@' is fine. */
    assert_int_equal(scan("mail bob@example.test (@carol) \"@dan\"!"), 2);
    assert_string_equal(names[0], "carol");
    assert_string_equal(names[1], "dan");
    /* 3 to 30 bytes: shorter or longer runs are no mention. */
    assert_int_equal(scan("@ab @abc"), 1);
    assert_string_equal(names[0], "abc");
    assert_int_equal(scan("@123456789012345678901234567890"), 1);
    assert_int_equal(strlen(names[0]), 30);
    assert_int_equal(scan("@1234567890123456789012345678901"), 0);
    /* "@@name": the second '@' follows one that is no name byte. */
    assert_int_equal(scan("@@name"), 1);
    assert_string_equal(names[0], "name");
    /* Not a name byte: the run ends there. */
    assert_int_equal(scan("@caf\xc3\xa9 @x-y-z"), 1);
    assert_string_equal(names[0], "caf");
}

static void
test_bounds(void **state)
{
    char text[16 * 8 + 64], few[2][S2A_STICKY_NAME_LEN];
    size_t n = 0, i;

    (void) state;
    for (i = 0; i < 20; i++) {
        n += (size_t) snprintf(text + n, sizeof(text) - n, "@n%03zu ", i);
    }
    assert_int_equal(scan(text), S2A_STICKY_NAMES_MAX);
    assert_string_equal(names[15], "n015");
    assert_int_equal(s2a_sticky_mentions(text, strlen(text), few, 2), 2);
    assert_string_equal(few[1], "n001");
    /* `len` bounds the read: "@alice" cut to "@al" names nobody. */
    assert_int_equal(s2a_sticky_mentions("@alice", 3, names, 16), 0);
    assert_int_equal(s2a_sticky_mentions("@alice", 4, names, 16), 1);
    assert_string_equal(names[0], "ali");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mentions),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests_name("sticky", tests, NULL, NULL);
}
