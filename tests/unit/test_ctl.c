/*
 * test_ctl.c: the control-message codec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ctl.h"

#include <stdlib.h>
#include <string.h>

static void
test_roundtrip(void **state)
{
    json_t *msg = json_pack("{s:s, s:i, s:[s, i]}", "op", "usage", "id", 7,
                            "rows", "2026-01-01", 3);
    json_t *out;
    char *buf, err[128];
    size_t len, consumed;

    (void) state;
    assert_int_equal(s2a_ctl_encode(msg, &buf, &len), S2A_OK);
    assert_true(len > 4);
    assert_int_equal(
        ((size_t) (unsigned char) buf[2] << 8 | (unsigned char) buf[3]),
        len - 4);
    /* Every strict prefix is incomplete, never an error. */
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(s2a_ctl_decode((unsigned char *) buf, i, &consumed,
                                        &out, err, sizeof(err)),
                         S2A_AGAIN);
        assert_null(out);
    }
    assert_int_equal(s2a_ctl_decode((unsigned char *) buf, len, &consumed, &out,
                                    err, sizeof(err)),
                     S2A_OK);
    assert_int_equal(consumed, len);
    assert_true(json_equal(msg, out));
    json_decref(out);
    free(buf);
    json_decref(msg);
}

static void
test_two_frames(void **state)
{
    json_t *a = json_pack("{s:s}", "op", "ready");
    json_t *b = json_pack("{s:s, s:i}", "op", "reply", "re", 1);
    json_t *out;
    char *ba, *bb, err[128];
    unsigned char joined[256];
    size_t la, lb, consumed;

    (void) state;
    assert_int_equal(s2a_ctl_encode(a, &ba, &la), S2A_OK);
    assert_int_equal(s2a_ctl_encode(b, &bb, &lb), S2A_OK);
    memcpy(joined, ba, la);
    memcpy(joined + la, bb, lb);
    assert_int_equal(
        s2a_ctl_decode(joined, la + lb, &consumed, &out, err, sizeof(err)),
        S2A_OK);
    assert_int_equal(consumed, la);
    assert_true(json_equal(out, a));
    json_decref(out);
    assert_int_equal(
        s2a_ctl_decode(joined + la, lb, &consumed, &out, err, sizeof(err)),
        S2A_OK);
    assert_true(json_equal(out, b));
    json_decref(out);
    free(ba);
    free(bb);
    json_decref(a);
    json_decref(b);
}

static void
frame(unsigned char *buf, const char *body, size_t *len)
{
    size_t n = strlen(body);

    buf[0] = (unsigned char) (n >> 24);
    buf[1] = (unsigned char) (n >> 16);
    buf[2] = (unsigned char) (n >> 8);
    buf[3] = (unsigned char) n;
    memcpy(buf + 4, body, n);
    *len = n + 4;
}

static void
test_bad_frames(void **state)
{
    unsigned char buf[128];
    char err[128];
    size_t len, consumed;
    json_t *out;
    const char *bad[] = { "not json", "[1,2]", "{\"op\":3}", "{\"x\":1}",
                          "{\"op\":\"a\",\"op\":\"b\"}" };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        frame(buf, bad[i], &len);
        assert_int_equal(
            s2a_ctl_decode(buf, len, &consumed, &out, err, sizeof(err)),
            S2A_ERROR);
        assert_null(out);
        assert_true(err[0] != '\0');
    }
    /* A length past the limit is rejected from the header alone. */
    buf[0] = 0x7f;
    buf[1] = buf[2] = buf[3] = 0xff;
    assert_int_equal(s2a_ctl_decode(buf, 4, &consumed, &out, err, sizeof(err)),
                     S2A_ERROR);
    memset(buf, 0, 4);
    assert_int_equal(s2a_ctl_decode(buf, 4, &consumed, &out, err, sizeof(err)),
                     S2A_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_two_frames),
        cmocka_unit_test(test_bad_frames),
    };

    return cmocka_run_group_tests_name("ctl", tests, NULL, NULL);
}
