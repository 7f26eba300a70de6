/*
 * test_settings.c: the runtime settings table and its value rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/settings.h"

#include <stdio.h>
#include <string.h>

static const s2a_setting_t *
row(const char *name)
{
    const s2a_setting_t *s = s2a_setting_find(name);

    assert_non_null(s);
    return s;
}

static bool
ok(const char *name, const char *value)
{
    char err[256];

    return s2a_setting_parse(row(name), value, NULL, err, sizeof(err))
        == S2A_OK;
}

/* Every row: a unique name, a field inside the snapshot, a default its
 * own rules accept, a seed where there is no default. */
static void
test_table_is_consistent(void **state)
{
    s2a_shm_settings_t set;
    char err[256];
    size_t i, j;

    (void) state;
    assert_true(s2a_nsettings >= 26);
    for (i = 0; i < s2a_nsettings; i++) {
        const s2a_setting_t *s = &s2a_settings[i];
        for (j = i + 1; j < s2a_nsettings; j++) {
            assert_string_not_equal(s->name, s2a_settings[j].name);
        }
        assert_true(s->off + s->size <= sizeof(s2a_shm_settings_t));
        assert_true(s->size > 0);
        assert_non_null(s->applies);
        if (s->def == NULL) {
            assert_non_null(s->seed);
        } else {
            assert_int_equal(
                s2a_setting_parse(s, s->def, &set, err, sizeof(err)), S2A_OK);
        }
        if (s->type == S2A_SET_T_ENUM || s->type == S2A_SET_T_URL) {
            assert_non_null(s->values);
        }
    }
}

static void
test_integers_are_bounded_and_plain(void **state)
{
    (void) state;
    assert_true(ok("error_ban_threshold", "0"));
    assert_true(ok("error_ban_threshold", "1000"));
    assert_false(ok("error_ban_threshold", "1001"));
    assert_false(ok("error_ban_threshold", "-1"));
    assert_false(ok("error_ban_threshold", ""));
    assert_false(ok("error_ban_threshold", " 5"));
    assert_false(ok("error_ban_threshold", "+5"));
    assert_false(ok("error_ban_threshold", "5x"));
    assert_false(ok("error_ban_threshold", "99999999999999999999999"));
    assert_false(ok("video_timeout", "2"));
    assert_true(ok("video_timeout", "60"));
    assert_true(ok("video_timeout", "7200"));
    assert_false(ok("video_timeout", "7201"));
}

static void
test_enums_bools_and_levels(void **state)
{
    s2a_shm_settings_t set;
    char err[256];

    (void) state;
    memset(&set, 0, sizeof(set));
    assert_int_equal(s2a_setting_parse(row("selection_policy"), "random", &set,
                                       err, sizeof(err)),
                     S2A_OK);
    assert_int_equal(set.policy, S2A_POLICY_RANDOM);
    assert_int_equal(s2a_setting_parse(row("selection_policy"), "fastest", &set,
                                       err, sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err,
                        "selection_policy must be least_busy, "
                        "round_robin or random");
    assert_int_equal(set.policy, S2A_POLICY_RANDOM); /* untouched */
    assert_true(ok("cache_enabled", "1"));
    assert_false(ok("cache_enabled", "yes"));
    assert_int_equal(
        s2a_setting_parse(row("log_level"), "", &set, err, sizeof(err)),
        S2A_OK);
    assert_int_equal(set.log_level, -1);
    assert_true(ok("log_level", "debug"));
    assert_false(ok("log_level", "loud"));
    assert_false(ok("log_level", "crit")); /* would silence errors */
}

static void
test_text_urls_and_hashes(void **state)
{
    char long_url[400];

    (void) state;
    assert_true(ok("admin_username", "root"));
    assert_false(ok("admin_username", ""));
    assert_false(ok("admin_username", "ro\not"));
    assert_true(ok("proxy_url", ""));
    assert_true(ok("proxy_url", "socks5h://u:p@127.0.0.1:1080"));
    assert_false(ok("proxy_url", "ftp://x"));
    assert_false(ok("proxy_url", "http://"));
    assert_false(ok("proxy_url", "http://a b"));
    assert_false(ok("cache_base_url", "socks5://x"));
    memset(long_url, 'a', sizeof(long_url) - 1);
    long_url[sizeof(long_url) - 1] = '\0';
    memcpy(long_url, "http://", 7);
    assert_false(ok("cache_base_url", long_url));
    assert_false(ok("watermark_third_party_url", ""));
    assert_false(ok("watermark_third_party_url", "https://cdn.example/x"));
    assert_true(ok("watermark_third_party_url", "https://c.example/{post_id}"));
    assert_true(ok("api_key_sha256",
                   "hmac-sha256:00112233445566778899aabbccddeeff"
                   "00112233445566778899aabbccddeeff"));
    /* A bare SHA-256 (older versions) is converted at start, not taken. */
    assert_false(ok("api_key_sha256",
                    "00112233445566778899aabbccddeeff"
                    "00112233445566778899aabbccddeeff"));
    assert_false(ok("api_key_sha256",
                    "hmac-sha256:00112233445566778899AABBCCDDEEFF"
                    "00112233445566778899aabbccddeeff"));
    assert_false(ok("api_key_sha256", "abc"));
    assert_true(ok("admin_password_hash", "pbkdf2-sha256$1$aa$bb"));
    assert_false(ok("admin_password_hash", "plain"));
    assert_true(ok("session_epoch", "7"));
    assert_false(ok("session_epoch", "0"));
    assert_true(s2a_setting_is_bump(row("session_epoch"), "bump"));
    assert_false(s2a_setting_is_bump(row("session_ttl"), "bump"));
}

static void
test_json_round_trip(void **state)
{
    s2a_shm_settings_t set;
    char buf[64], err[256];
    json_t *v;

    (void) state;
    s2a_settings_defaults(&set);
    v = s2a_setting_to_json(row("selection_policy"), &set);
    assert_string_equal(json_string_value(v), "least_busy");
    json_decref(v);
    v = s2a_setting_to_json(row("at_auto_refresh_enabled"), &set);
    assert_true(json_is_true(v));
    json_decref(v);
    assert_null(s2a_setting_to_json(row("proxy_url"), &set)); /* secret */
    v = json_integer(12);
    assert_int_equal(s2a_setting_from_json(row("error_ban_threshold"), v, buf,
                                           sizeof(buf), err, sizeof(err)),
                     S2A_OK);
    assert_string_equal(buf, "12");
    assert_int_equal(s2a_setting_from_json(row("cache_enabled"), v, buf,
                                           sizeof(buf), err, sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err, "cache_enabled must be a boolean");
    json_decref(v);
    v = json_true();
    assert_int_equal(s2a_setting_from_json(row("cache_enabled"), v, buf,
                                           sizeof(buf), err, sizeof(err)),
                     S2A_OK);
    assert_string_equal(buf, "1");
    json_decref(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_integers_are_bounded_and_plain),
        cmocka_unit_test(test_enums_bools_and_levels),
        cmocka_unit_test(test_text_urls_and_hashes),
        cmocka_unit_test(test_json_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
