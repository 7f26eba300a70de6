/*
 * test_crypto.c: hashing, password KDF, log masking, static path checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/crypto.h"
#include "common/log.h"
#include "worker/static.h"

#include <string.h>

static void
test_sha256_vector(void **state)
{
    uint8_t h[S2A_SHA256_LEN];
    char hex[65];

    (void) state;
    s2a_sha256("abc", 3, h);
    s2a_hex(h, sizeof(h), hex);
    assert_string_equal(hex,
                        "ba7816bf8f01cfea414140de5dae2223"
                        "b00361a396177a9cb410ff61f20015ad");
    assert_true(s2a_ct_equal("abcd", "abcd", 4));
    assert_false(s2a_ct_equal("abcd", "abce", 4));
}

static void
test_password(void **state)
{
    char stored[S2A_PASSWORD_HASH_LEN], other[S2A_PASSWORD_HASH_LEN];

    (void) state;
    assert_int_equal(s2a_password_hash("s3cret pass", stored, sizeof(stored)),
                     S2A_OK);
    assert_non_null(strstr(stored, "pbkdf2-sha256$210000$"));
    assert_true(s2a_password_verify("s3cret pass", stored));
    assert_false(s2a_password_verify("s3cret pas", stored));
    assert_false(s2a_password_verify("", stored));
    /* Salted: the same password hashes differently. */
    assert_int_equal(s2a_password_hash("s3cret pass", other, sizeof(other)),
                     S2A_OK);
    assert_string_not_equal(stored, other);
    assert_false(s2a_password_verify("x", "plain"));
    assert_false(s2a_password_verify("x", "pbkdf2-sha256$5$zz$yy"));
    stored[30] = 'g';
    assert_false(s2a_password_verify("s3cret pass", stored));
}

static void
test_mask(void **state)
{
    char buf[64];

    (void) state;
    assert_string_equal(
        s2a_log_mask("eyJhbGciOiJSUzI1NiJ9.payload.sig", buf, sizeof(buf)),
        "eyJh....sig");
    assert_string_equal(s2a_log_mask("short", buf, sizeof(buf)), "****");
    assert_string_equal(s2a_log_mask(NULL, buf, sizeof(buf)), "(none)");
}

static void
test_static_paths(void **state)
{
    (void) state;
    assert_true(s2a_static_path_ok("/"));
    assert_true(s2a_static_path_ok("/index.html"));
    assert_true(s2a_static_path_ok("/assets/app.js"));
    assert_true(s2a_static_path_ok("/a/b/"));
    assert_true(s2a_static_path_ok("/..hidden"));
    assert_false(s2a_static_path_ok("/../etc/passwd"));
    assert_false(s2a_static_path_ok("/a/../../x"));
    assert_false(s2a_static_path_ok("/a/.."));
    assert_false(s2a_static_path_ok("/./x"));
    assert_false(s2a_static_path_ok("//etc/passwd"));
    assert_false(s2a_static_path_ok("/a\\..\\b"));
    assert_false(s2a_static_path_ok("/a\x01"));
    assert_false(s2a_static_path_ok("relative"));
    assert_string_equal(s2a_static_content_type("/x/app.JS"),
                        "text/javascript; charset=utf-8");
    assert_string_equal(s2a_static_content_type("/i.html"),
                        "text/html; charset=utf-8");
    assert_string_equal(s2a_static_content_type("/v.mp4"), "video/mp4");
    assert_string_equal(s2a_static_content_type("/noext"),
                        "application/octet-stream");
    assert_string_equal(s2a_static_content_type("/dir.d/noext"),
                        "application/octet-stream");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vector),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_static_paths),
    };

    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
