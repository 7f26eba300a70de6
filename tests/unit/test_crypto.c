/*
 * test_crypto.c: hashing, password KDF, log masking, static path checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/crypto.h"
#include "common/jwt.h"
#include "common/log.h"
#include "worker/media.h"
#include "worker/static.h"

#include <stdlib.h>
#include <string.h>

/* RFC 4231 test case 2; a derived key differs per label; the API key MAC
 * is the keyed hash of the key's SHA-256 (so stored SHA-256 values can be
 * converted). */
static void
test_hmac_and_derivation(void **state)
{
    uint8_t out[32], k1[32], k2[32], master[32] = { 7 }, h[32], mac[32];
    char hex[65];

    (void) state;
    s2a_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
    s2a_hex(out, sizeof(out), hex);
    assert_string_equal(hex,
                        "5bdcc146bf60754e6a042426089575c7"
                        "5a003f089d2739839dec58b964ec3843");
    s2a_derive_key(master, S2A_APIKEY_LABEL, k1);
    s2a_derive_key(master, "another purpose", k2);
    assert_memory_not_equal(k1, k2, 32);
    assert_memory_not_equal(k1, master, 32);
    s2a_api_key_mac(k1, "han1234", out);
    s2a_sha256("han1234", 7, h);
    s2a_hmac_sha256(k1, 32, h, 32, mac);
    assert_memory_equal(out, mac, 32);
    assert_memory_not_equal(out, h, 32);
}

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

static void
test_seal(void **state)
{
    uint8_t key[32], wrong[32];
    char *sealed, *opened;

    (void) state;
    memset(key, 7, sizeof(key));
    memset(wrong, 8, sizeof(wrong));
    sealed = s2a_seal(key, "eyJhbGciOi.secret.token");
    assert_non_null(sealed);
    assert_int_equal(strncmp(sealed, "v1:", 3), 0);
    assert_null(strstr(sealed, "secret"));
    opened = s2a_open(key, sealed);
    assert_string_equal(opened, "eyJhbGciOi.secret.token");
    free(opened);
    assert_null(s2a_open(wrong, sealed));
    sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
    assert_null(s2a_open(key, sealed));
    free(sealed);
    /* Same input, new nonce: different output. */
    sealed = s2a_seal(key, "");
    opened = s2a_open(key, sealed);
    assert_string_equal(opened, "");
    free(opened);
    free(sealed);
    assert_null(s2a_seal(key, NULL));
    assert_null(s2a_open(key, "plain"));
    assert_null(s2a_open(key, "v1:!!!!"));
}

static void
test_jwt(void **state)
{
    s2a_jwt_claims_t c;
    /* {"alg":"none"} . {"exp":1800000000,"https://api.openai.com/profile":
       {"email":"a@b.c"},"client_id":"app_x"} */
    const char *tok =
        "eyJhbGciOiJub25lIn0."
        "eyJleHAiOjE4MDAwMDAwMDAsImh0dHBzOi8vYXBpLm9wZW5haS5jb20vcHJvZmls"
        "ZSI6eyJlbWFpbCI6ImFAYi5jIn0sImNsaWVudF9pZCI6ImFwcF94In0.sig";
    size_t len;
    char *raw;

    (void) state;
    assert_int_equal(s2a_jwt_decode(tok, &c), S2A_OK);
    assert_int_equal(c.exp, 1800000000);
    assert_string_equal(c.email, "a@b.c");
    assert_string_equal(c.client_id, "app_x");
    assert_int_equal(s2a_jwt_decode("abc", &c), S2A_ERROR);
    assert_int_equal(s2a_jwt_decode("a.b.c.d", &c), S2A_ERROR);
    assert_int_equal(s2a_jwt_decode("a..c", &c), S2A_ERROR);
    assert_int_equal(s2a_jwt_decode("eyJ.W10.x", &c), S2A_ERROR); /* [] */
    assert_int_equal(s2a_jwt_decode("x.$$$.y", &c), S2A_ERROR);
    raw = s2a_base64url_decode("aGk_-w", 6, &len);
    assert_non_null(raw);
    assert_int_equal(len, 4);
    assert_memory_equal(raw, "hi?\xfb", 4);
    free(raw);
}

/* An exp outside the int64_t range was converted anyway (undefined
 * behaviour, reachable from POST /api/tokens): it is refused now. */
static void
test_jwt_exp_range(void **state)
{
    s2a_jwt_claims_t c;

    (void) state;
    /* {"exp":1800000000.5} */
    assert_int_equal(s2a_jwt_decode("e30.eyJleHAiOjE4MDAwMDAwMDAuNX0.s", &c),
                     S2A_OK);
    assert_int_equal(c.exp, 1800000000);
    /* {"exp":1e300} */
    assert_int_equal(s2a_jwt_decode("e30.eyJleHAiOjFlMzAwfQ.s", &c), S2A_ERROR);
    /* {"exp":-1e300} */
    assert_int_equal(s2a_jwt_decode("e30.eyJleHAiOi0xZTMwMH0.s", &c),
                     S2A_ERROR);
    /* {"exp":9223372036854775808.0}: 2^63, one past INT64_MAX */
    assert_int_equal(
        s2a_jwt_decode("e30.eyJleHAiOjkyMjMzNzIwMzY4NTQ3NzU4MDguMH0.s", &c),
        S2A_ERROR);
}

static void
test_media_names_and_ranges(void **state)
{
    int64_t a = -1, n = -1;

    (void) state;
    assert_true(s2a_media_name_ok("abc_DEF-123.mp4"));
    assert_true(s2a_media_name_ok("x.webp"));
    assert_false(s2a_media_name_ok(".x.mp4"));
    assert_false(s2a_media_name_ok("x.mp4.mp4"));
    assert_false(s2a_media_name_ok("x.txt"));
    assert_false(s2a_media_name_ok("a/b.mp4"));
    assert_false(s2a_media_name_ok("a b.mp4"));
    assert_false(s2a_media_name_ok("noext"));
    assert_string_equal(s2a_media_type("v.mp4"), "video/mp4");
    assert_int_equal(s2a_media_range(NULL, 100, &a, &n), 0);
    assert_int_equal(s2a_media_range("bytes=0-9", 100, &a, &n), 1);
    assert_int_equal(a, 0);
    assert_int_equal(n, 10);
    assert_int_equal(s2a_media_range("bytes=90-", 100, &a, &n), 1);
    assert_int_equal(n, 10);
    assert_int_equal(s2a_media_range("bytes=-5", 100, &a, &n), 1);
    assert_int_equal(a, 95);
    assert_int_equal(s2a_media_range("bytes=-500", 100, &a, &n), 1);
    assert_int_equal(a, 0);
    assert_int_equal(n, 100);
    assert_int_equal(s2a_media_range("bytes=50-20", 100, &a, &n), 0);
    assert_int_equal(s2a_media_range("bytes=100-", 100, &a, &n), -1);
    assert_int_equal(s2a_media_range("bytes=-0", 100, &a, &n), -1);
    assert_int_equal(s2a_media_range("bytes=0-1,3-4", 100, &a, &n), 0);
    assert_int_equal(s2a_media_range("bytes=x-1", 100, &a, &n), 0);
}

/* Base64 of input images: padding, line breaks, garbage. */
static void
test_base64_decode(void **state)
{
    unsigned char *out;
    size_t n = 0;

    (void) state;
    out = s2a_base64_decode("aGVsbG8=", 8, &n);
    assert_non_null(out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    out = s2a_base64_decode("aGVs\nbG8h", 9, &n);
    assert_non_null(out);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "hello!", 6);
    free(out);
    assert_null(s2a_base64_decode("a$b=", 4, &n));
    assert_null(s2a_base64_decode("", 0, &n));
    assert_null(s2a_base64_decode("aGVsb", 5, &n)); /* a lone sextet */
    /* Unpadded, and the URL-safe alphabet: "\xfb\xff" is "-_8" there. */
    out = s2a_base64_decode("aGVsbG8", 7, &n);
    assert_non_null(out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "hello", 5);
    free(out);
    out = s2a_base64_decode("-_8", 3, &n);
    assert_non_null(out);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "\xfb\xff", 2);
    free(out);
}

/* RFC 4648 section 10 vectors, and a round trip through the decoder. */
static void
test_base64_encode(void **state)
{
    static const char *const vec[][2] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
    };
    unsigned char bin[256], *back;
    size_t i, n;
    char *out;

    (void) state;
    for (i = 0; i < S2A_NELEMS(vec); i++) {
        out = s2a_base64_encode((const unsigned char *) vec[i][0],
                                strlen(vec[i][0]));
        assert_non_null(out);
        assert_string_equal(out, vec[i][1]);
        free(out);
    }
    for (i = 0; i < sizeof(bin); i++) {
        bin[i] = (unsigned char) (i * 7 + 3);
    }
    out = s2a_base64_encode(bin, sizeof(bin));
    assert_non_null(out);
    back = s2a_base64_decode(out, strlen(out), &n);
    assert_non_null(back);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(back, bin, sizeof(bin));
    free(back);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vector),
        cmocka_unit_test(test_hmac_and_derivation),
        cmocka_unit_test(test_password),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_static_paths),
        cmocka_unit_test(test_seal),
        cmocka_unit_test(test_media_names_and_ranges),
        cmocka_unit_test(test_jwt),
        cmocka_unit_test(test_jwt_exp_range),
        cmocka_unit_test(test_base64_decode),
        cmocka_unit_test(test_base64_encode),
    };

    return cmocka_run_group_tests_name("crypto", tests, NULL, NULL);
}
