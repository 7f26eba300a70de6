/*
 * test_session.c: signed admin session tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/session.h"

#include <stdio.h>
#include <string.h>

static const uint8_t secret[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
static const uint8_t other[32] = { 9, 9, 9 };

static void
test_roundtrip(void **state)
{
    char tok[S2A_SESSION_MAX], nonce[S2A_SESSION_NONCE];
    int64_t expires = 0;

    (void) state;
    assert_int_equal(s2a_session_issue(secret, 2000, 7, tok, sizeof(tok)),
                     S2A_OK);
    assert_int_equal(strncmp(tok, "s2a1.2000.7.", 12), 0);
    assert_int_equal(s2a_session_verify(secret, tok, 7, 1000, nonce, &expires),
                     S2A_OK);
    assert_int_equal(expires, 2000);
    assert_int_equal(strlen(nonce), 32);
    assert_non_null(strstr(tok, nonce));
}

static void
test_expiry_and_epoch(void **state)
{
    char tok[S2A_SESSION_MAX], nonce[S2A_SESSION_NONCE];
    int64_t expires;

    (void) state;
    assert_int_equal(s2a_session_issue(secret, 2000, 7, tok, sizeof(tok)),
                     S2A_OK);
    assert_int_equal(s2a_session_verify(secret, tok, 7, 2000, nonce, &expires),
                     S2A_DECLINED);
    assert_int_equal(s2a_session_verify(secret, tok, 7, 5000, nonce, &expires),
                     S2A_DECLINED);
    assert_int_equal(s2a_session_verify(secret, tok, 8, 1000, nonce, &expires),
                     S2A_DECLINED);
}

static void
test_forgeries(void **state)
{
    char tok[S2A_SESSION_MAX], bad[S2A_SESSION_MAX + 8];
    char nonce[S2A_SESSION_NONCE];
    int64_t expires;
    char *dot;

    (void) state;
    assert_int_equal(s2a_session_issue(secret, 2000, 7, tok, sizeof(tok)),
                     S2A_OK);
    assert_int_equal(s2a_session_verify(other, tok, 7, 1000, nonce, &expires),
                     S2A_ERROR);
    /* A later expiry with the old MAC. */
    snprintf(bad, sizeof(bad), "s2a1.9000%s", tok + 9);
    assert_int_equal(s2a_session_verify(secret, bad, 7, 1000, nonce, &expires),
                     S2A_ERROR);
    snprintf(bad, sizeof(bad), "%s", tok);
    dot = strrchr(bad, '.');
    dot[1] = dot[1] == 'a' ? 'b' : 'a';
    assert_int_equal(s2a_session_verify(secret, bad, 7, 1000, nonce, &expires),
                     S2A_ERROR);
    assert_int_equal(s2a_session_verify(secret, "", 7, 1000, nonce, &expires),
                     S2A_ERROR);
    assert_int_equal(
        s2a_session_verify(secret, "s2a1.1.1.x.y", 7, 1000, nonce, &expires),
        S2A_ERROR);
    assert_int_equal(
        s2a_session_verify(secret, "admin-abcdef", 7, 1000, nonce, &expires),
        S2A_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_expiry_and_epoch),
        cmocka_unit_test(test_forgeries),
    };

    return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
