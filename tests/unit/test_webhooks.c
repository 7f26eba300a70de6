/*
 * test_webhooks.c: the pure parts of src/master/webhooks.c: the Standard
 * Webhooks signature (vectors computed independently, with Python's hmac
 * module and `openssl dgst -hmac`), the event body, the back-off
 * schedule and when a delivery is given up, the admin API's field
 * checks and the secret's shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/crypto.h"
#include "master/webhooks.h"

#include <stdlib.h>
#include <string.h>

static void
test_signature_vectors(void **state)
{
    const char *body = "{\"test\": 2432232314}";
    const char *ours =
        "{\"id\":\"msg_0123456789abcdef01234567\",\"object\":\"event\","
        "\"type\":\"video.completed\",\"created_at\":1700000000,"
        "\"data\":{\"id\":\"job_0123456789abcdef01234567\"}}";
    char *sig, *made;

    (void) state;
    /* The example of the Standard Webhooks specification. */
    sig = s2a_webhooks_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                            "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body,
                            strlen(body));
    assert_non_null(sig);
    assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    free(sig);

    /* A body as this daemon makes it, under a 32-byte secret. */
    made = s2a_webhooks_body("msg_0123456789abcdef01234567", "video.completed",
                             1700000000, "job_0123456789abcdef01234567");
    assert_non_null(made);
    assert_string_equal(made, ours);
    sig = s2a_webhooks_sign(
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "msg_0123456789abcdef01234567", 1700000005, made, strlen(made));
    assert_non_null(sig);
    assert_string_equal(sig, "v1,t7+2rDBoFv1AZDpSoEY0Eu+EPUF2L07yBhdGPuhouF4=");
    free(sig);
    free(made);

    /* A test event has no job. */
    made = s2a_webhooks_body("msg_x", "webhook.test", 5, NULL);
    assert_string_equal(made,
                        "{\"id\":\"msg_x\",\"object\":\"event\","
                        "\"type\":\"webhook.test\",\"created_at\":5,"
                        "\"data\":{\"id\":null}}");
    free(made);

    /* Malformed secrets sign nothing. */
    assert_null(
        s2a_webhooks_sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", 1, "x", 1));
    assert_null(s2a_webhooks_sign("whsec_", "m", 1, "x", 1));
    assert_null(s2a_webhooks_sign("whsec_!!!!", "m", 1, "x", 1));
    assert_null(s2a_webhooks_sign(NULL, "m", 1, "x", 1));
}

static void
test_backoff(void **state)
{
    int64_t total = 0, d;
    int n;

    (void) state;
    /* r = 1: the full pause, doubling from the base. */
    assert_int_equal(s2a_webhooks_backoff_ms(1, 5000, 1.0), 5000);
    assert_int_equal(s2a_webhooks_backoff_ms(2, 5000, 1.0), 10000);
    assert_int_equal(s2a_webhooks_backoff_ms(3, 5000, 1.0), 20000);
    assert_int_equal(s2a_webhooks_backoff_ms(10, 5000, 1.0), 2560000);
    /* Capped at an hour, however many attempts. */
    assert_int_equal(s2a_webhooks_backoff_ms(11, 5000, 1.0),
                     S2A_WEBHOOKS_RETRY_CAP_MS);
    assert_int_equal(s2a_webhooks_backoff_ms(1000000, 5000, 1.0),
                     S2A_WEBHOOKS_RETRY_CAP_MS);
    assert_int_equal(s2a_webhooks_backoff_ms(1, 7200000, 1.0),
                     S2A_WEBHOOKS_RETRY_CAP_MS);
    /* The jitter keeps at least half. */
    assert_int_equal(s2a_webhooks_backoff_ms(1, 5000, 0.0), 2500);
    assert_int_equal(s2a_webhooks_backoff_ms(2, 5000, 0.5), 7500);
    assert_int_equal(s2a_webhooks_backoff_ms(1, 1000, -3.0), 500);
    assert_int_equal(s2a_webhooks_backoff_ms(1, 1000, 9.0), 1000);
    assert_int_equal(s2a_webhooks_backoff_ms(1, 1, 0.0), 1);
    assert_int_equal(s2a_webhooks_backoff_ms(0, 0, 0.0), 1);

    /* With the default base and the shortest pauses, retries go on for
     * the whole day before a delivery is given up: more than 24 attempts
     * fit, and none waits more than the cap. */
    for (n = 1; total < S2A_WEBHOOKS_GIVE_UP_S * 1000LL; n++) {
        d = s2a_webhooks_backoff_ms(n, 5000, 0.0);
        assert_true(d <= S2A_WEBHOOKS_RETRY_CAP_MS);
        total += d;
    }
    assert_true(n > 24);

    assert_false(s2a_webhooks_give_up(1000, 1000));
    assert_false(s2a_webhooks_give_up(1000, 1000 + 86399));
    assert_true(s2a_webhooks_give_up(1000, 1000 + 86400));
}

/* The admin API's rules: `text` is the fields as JSON. */
static int
check(const char *text, bool create, unsigned *events, char *err)
{
    json_t *f = json_loads(text, 0, NULL);
    int rc;

    assert_non_null(f);
    err[0] = '\0';
    rc = s2a_webhooks_check(f, create, events, err, 256);
    json_decref(f);
    return rc;
}

static void
test_check(void **state)
{
    char err[256];
    unsigned ev;

    (void) state;
    assert_int_equal(
        check("{\"url\":\"https://example.com/h\"}", true, &ev, err), S2A_OK);
    assert_int_equal(ev, 0xf);
    assert_int_equal(check("{\"url\":\"http://10.0.0.1:81/x?a=b\", "
                           "\"event_types\":[\"image.failed\", "
                           "\"video.completed\"], \"enabled\":false}",
                           true, &ev, err),
                     S2A_OK);
    assert_int_equal(ev, 0x9);
    assert_int_equal(check("{}", true, &ev, err), S2A_ERROR);
    assert_string_equal(err, "url is required");
    assert_int_equal(check("{\"url\":\"file:///etc/passwd\"}", true, &ev, err),
                     S2A_ERROR);
    assert_string_equal(err, "url must be an http or https URL");
    assert_int_equal(check("{\"url\":\"http://\"}", true, &ev, err), S2A_ERROR);
    assert_string_equal(err, "url must be an http or https URL");
    assert_int_equal(check("{\"url\":\"https://a b/\"}", true, &ev, err),
                     S2A_ERROR);
    assert_int_equal(
        check("{\"url\":\"https://x/\", \"event_types\":[1]}", true, &ev, err),
        S2A_ERROR);
    assert_string_equal(err,
                        "event_types must be a non-empty array of event types");
    assert_int_equal(check("{\"url\":\"https://x/\", \"rotate_secret\":true}",
                           true, &ev, err),
                     S2A_ERROR);
    assert_string_equal(err, "unknown field \"rotate_secret\"");

    /* Updates: any one field, or a rotation. */
    assert_int_equal(check("{\"enabled\":true}", false, &ev, err), S2A_OK);
    assert_int_equal(ev, 0);
    assert_int_equal(check("{\"rotate_secret\":true}", false, &ev, err),
                     S2A_OK);
    assert_int_equal(check("{\"rotate_secret\":false}", false, &ev, err),
                     S2A_ERROR);
    assert_string_equal(err, "Nothing to update");
    assert_int_equal(
        check("{\"event_types\":[\"video.failed\"]}", false, &ev, err), S2A_OK);
    assert_int_equal(ev, 0x2);
    assert_int_equal(check("{\"enabled\":1}", false, &ev, err), S2A_ERROR);
    assert_string_equal(err, "enabled must be a boolean");
}

static void
test_secret_shape(void **state)
{
    char *a = s2a_webhooks_new_secret(), *b = s2a_webhooks_new_secret();
    unsigned char *raw;
    size_t n = 0;

    (void) state;
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, "whsec_", 6);
    assert_string_not_equal(a, b);
    raw = s2a_base64_decode(a + 6, strlen(a + 6), &n);
    assert_non_null(raw);
    assert_int_equal(n, S2A_WEBHOOKS_SECRET_BYTES);
    free(raw);
    free(a);
    free(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vectors),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_secret_shape),
    };

    return cmocka_run_group_tests_name("webhooks", tests, NULL, NULL);
}
