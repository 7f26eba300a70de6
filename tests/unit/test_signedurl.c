/*
 * test_signedurl.c: the expiry of signed media URLs (`se=`) and the
 * ISO-8601 times it carries.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/signedurl.h"

#include <string.h>

static int64_t
expiry(const char *url)
{
    int64_t t = -7;

    if (s2a_signed_url_expiry(url, &t) != S2A_OK) {
        assert_int_equal(t, -7); /* untouched when nothing is known */
        return -1;
    }
    return t;
}

static int64_t
iso(const char *s)
{
    int64_t t = -7;

    return s2a_iso8601_parse(s, strlen(s), &t) == S2A_OK ? t : -1;
}

static void
test_urls(void **state)
{
    (void) state;
    /* 2025-10-12T19:27:27Z is 1760297247. */
    assert_int_equal(expiry("https://videos.openai.com/vg-assets/a/b.mp4"
                            "?st=2025-10-11T18%3A27%3A27Z&se=2025-10-12T19%"
                            "3A27%3A27Z&sks=b&skt=2025-10-11T18%3A27%3A27Z"
                            "&sp=r&sv=2024-08-04&sr=b&sig=abc%3D"),
                     1760297247);
    /* Unencoded, first parameter, lower-case hex, a fragment after. */
    assert_int_equal(expiry("http://h/x.mp4?se=2025-10-12T19:27:27Z&sig=x"),
                     1760297247);
    assert_int_equal(expiry("http://h/x.mp4?se=2025-10-12T19%3a27%3a27Z#t=3"),
                     1760297247);
    assert_int_equal(expiry("http://h/x.mp4?sig=1&se=2025-10-12T19%3A27%3A27Z"),
                     1760297247);
    /* Only the first se counts, and only a parameter named exactly se. */
    assert_int_equal(expiry("http://h/x?sse=2030-01-01&se=2025-10-12&se=2031-"
                            "01-01"),
                     1760227200);
    assert_int_equal(expiry("http://h/x?ase=2030-01-01"), -1);
    /* No query, no se, an se in the fragment or the path only. */
    assert_int_equal(expiry("http://h/x.mp4"), -1);
    assert_int_equal(expiry("http://h/se=2025-10-12/x.mp4"), -1);
    assert_int_equal(expiry("http://h/x.mp4?sig=abc"), -1);
    assert_int_equal(expiry("http://h/x.mp4?a=1#se=2025-10-12"), -1);
    assert_int_equal(expiry(""), -1);
    assert_int_equal(expiry(NULL), -1);
    /* Bad values: empty, broken escapes, garbage, too long. */
    assert_int_equal(expiry("http://h/x?se="), -1);
    assert_int_equal(expiry("http://h/x?se=&sig=1"), -1);
    assert_int_equal(expiry("http://h/x?se=2025-10-12T19%3"), -1);
    assert_int_equal(expiry("http://h/x?se=2025-10-12T19%zz27"), -1);
    assert_int_equal(expiry("http://h/x?se=tomorrow"), -1);
    assert_int_equal(expiry("http://h/x?se=2025-10-12T19%00"), -1);
    assert_int_equal(
        expiry("http://h/x?se=2025-10-12T19:27:27.00000000000000000000000000"
               "0000000000000000000000000000000000000000000Z"),
        -1);
}

static void
test_times(void **state)
{
    (void) state;
    assert_int_equal(iso("1970-01-01"), 0);
    assert_int_equal(iso("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(iso("2025-10-12"), 1760227200);
    assert_int_equal(iso("2025-10-12T19:27"), 1760297220);
    assert_int_equal(iso("2025-10-12T19:27Z"), 1760297220);
    assert_int_equal(iso("2025-10-12 19:27:27"), 1760297247);
    assert_int_equal(iso("2025-10-12t19:27:27z"), 1760297247);
    assert_int_equal(iso("2025-10-12T19:27:27.1234567Z"), 1760297247);
    assert_int_equal(iso("2025-10-12T19:27:27,5Z"), 1760297247);
    /* Offsets: local time minus the offset is UTC. */
    assert_int_equal(iso("2025-10-12T21:27:27+02:00"), 1760297247);
    assert_int_equal(iso("2025-10-12T17:27:27-0200"), 1760297247);
    assert_int_equal(iso("2025-10-12T19:27:27+00:00"), 1760297247);
    /* Leap days and a leap second. */
    assert_int_equal(iso("2024-02-29"), 1709164800);
    assert_int_equal(iso("2016-12-31T23:59:60Z"), 1483228799);
    assert_int_equal(iso("9999-12-31T23:59:59Z"), 253402300799LL);
    /* Not times. */
    assert_int_equal(iso("2023-02-29"), -1);
    assert_int_equal(iso("2025-02-30"), -1);
    assert_int_equal(iso("2025-04-31"), -1);
    assert_int_equal(iso("2025-13-01"), -1);
    assert_int_equal(iso("2025-00-01"), -1);
    assert_int_equal(iso("2025-01-00"), -1);
    assert_int_equal(iso("1969-12-31T23:59:59Z"), -1);
    assert_int_equal(iso("2025-10-12T24:00:00Z"), -1);
    assert_int_equal(iso("2025-10-12T19:60:00Z"), -1);
    assert_int_equal(iso("2025-10-12T19:27:61Z"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27+24:00"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27+01:60"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27+01"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27+01:"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27Zjunk"), -1);
    assert_int_equal(iso("2025-10-12T19:27:27."), -1);
    assert_int_equal(iso("2025-10-12T19"), -1);
    assert_int_equal(iso("2025-10-12T"), -1);
    assert_int_equal(iso("2025-1-12"), -1);
    assert_int_equal(iso("+2025-10-12"), -1);
    assert_int_equal(iso("2025-10-12x"), -1);
    assert_int_equal(iso(""), -1);
    /* The length is the bound, not a NUL. */
    {
        int64_t t = 0;
        assert_int_equal(s2a_iso8601_parse("2025-10-12T19:27:27Z", 10, &t),
                         S2A_OK);
        assert_int_equal(t, 1760227200);
        assert_int_equal(s2a_iso8601_parse("2025-10-12", 9, &t), S2A_DECLINED);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_times),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
