/*
 * test_charopts.c: the options of a character creation (charopts.c),
 * media inputs given as text and the magic of their bytes (mediain.c),
 * and the character modes of a chat request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/charopts.h"
#include "worker/chatreq.h"
#include "worker/mediain.h"

#include <stdlib.h>
#include <string.h>

static int
parse(const char *text, s2a_charopts_t *o, char *err, char *param)
{
    json_t *obj = text != NULL ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;
    int rc;

    if (text != NULL) {
        assert_non_null(obj);
    }
    rc = s2a_charopts_parse(obj, "character_options.", o, err, 512, param, 64);
    json_decref(obj);
    return rc;
}

static void
expect_refusal(const char *text, const char *param, const char *fragment)
{
    s2a_charopts_t o;
    char err[512], p[64];

    assert_int_equal(parse(text, &o, err, p), S2A_ERROR);
    assert_string_equal(p, param);
    if (strstr(err, fragment) == NULL) {
        fail_msg("%s: \"%s\" lacks \"%s\"", text, err, fragment);
    }
}

static void
test_options(void **state)
{
    s2a_charopts_t o;
    char err[512], p[64];
    json_t *j;

    (void) state;
    assert_int_equal(parse(NULL, &o, err, p), S2A_OK);
    assert_string_equal(o.timestamps, "0,3");
    assert_string_equal(o.username, "");
    assert_false(o.keep);
    assert_int_equal(
        parse("{\"timestamps\":\" 1.5 , 4 \",\"username\":"
              "\"cat.character_9\",\"display_name\":\"可爱的猫咪\","
              "\"instruction_set\":\"A cat\","
              "\"safety_instruction_set\":null,\"keep\":true}",
              &o, err, p),
        S2A_OK);
    assert_string_equal(o.timestamps, " 1.5 , 4 ");
    assert_string_equal(o.username, "cat.character_9");
    assert_string_equal(o.display_name, "可爱的猫咪");
    assert_string_equal(o.instruction_set, "A cat");
    assert_string_equal(o.safety_instruction_set, "");
    assert_true(o.keep);
    j = s2a_charopts_json(&o);
    assert_string_equal(json_string_value(json_object_get(j, "username")),
                        "cat.character_9");
    assert_true(json_is_null(json_object_get(j, "safety_instruction_set")));
    assert_true(json_is_true(json_object_get(j, "keep")));
    /* The row's copy reads back the same. */
    assert_int_equal(
        s2a_charopts_parse(j, "", &o, err, sizeof(err), p, sizeof(p)), S2A_OK);
    assert_string_equal(o.display_name, "可爱的猫咪");
    json_decref(j);
    /* The span limit itself is allowed. */
    assert_int_equal(parse("{\"timestamps\":\"2,12\"}", &o, err, p), S2A_OK);
}

static void
test_refusals(void **state)
{
    char big[4200 + 64];

    (void) state;
    expect_refusal("[1]", "character_options", "an object");
    expect_refusal("{\"timestamps\":\"3,1\"}", "character_options.timestamps",
                   "start < end");
    expect_refusal("{\"timestamps\":\"0,10.5\"}",
                   "character_options.timestamps", "at most 10 seconds");
    expect_refusal("{\"timestamps\":\"1\"}", "character_options.timestamps",
                   "start,end");
    expect_refusal("{\"timestamps\":\"1.,2\"}", "character_options.timestamps",
                   "start,end");
    expect_refusal("{\"timestamps\":\"-1,2\"}", "character_options.timestamps",
                   "start,end");
    expect_refusal("{\"timestamps\":\"1,2,3\"}", "character_options.timestamps",
                   "start,end");
    expect_refusal("{\"timestamps\":[0,3]}", "character_options.timestamps",
                   "a string");
    expect_refusal("{\"username\":\"Cat\"}", "character_options.username",
                   "lower case");
    expect_refusal("{\"username\":\"ab\"}", "character_options.username",
                   "3 to 30");
    expect_refusal("{\"username\":\".cat\"}", "character_options.username",
                   "3 to 30");
    expect_refusal("{\"username\":\"c@t\"}", "character_options.username",
                   "3 to 30");
    expect_refusal("{\"username\":\"a234567890123456789012345678901\"}",
                   "character_options.username", "3 to 30");
    expect_refusal("{\"username\":\"ca\\u0000t\"}",
                   "character_options.username", "a string");
    expect_refusal("{\"display_name\":\"\"}", "character_options.display_name",
                   "1 to 64");
    expect_refusal("{\"display_name\":\"   \"}",
                   "character_options.display_name", "1 to 64");
    expect_refusal("{\"display_name\":\"a\\nb\"}",
                   "character_options.display_name", "control");
    expect_refusal(
        "{\"display_name\":\"0123456789012345678901234567890123456789"
        "01234567890123456789012345\"}",
        "character_options.display_name", "1 to 64");
    snprintf(big, sizeof(big), "{\"instruction_set\":\"%04097d\"}", 0);
    expect_refusal(big, "character_options.instruction_set", "4096");
    expect_refusal("{\"keep\":1}", "character_options.keep", "true or false");
    expect_refusal("{\"nickname\":\"x\"}", "character_options.nickname",
                   "not an option");
}

static void
test_username_rule(void **state)
{
    (void) state;
    assert_true(s2a_charopts_username_ok("abc"));
    assert_true(s2a_charopts_username_ok("0cat.dog_1"));
    assert_false(s2a_charopts_username_ok("ab"));
    assert_false(s2a_charopts_username_ok("_abc"));
    assert_false(s2a_charopts_username_ok("abc-d"));
    assert_false(s2a_charopts_username_ok(""));
}

static void
test_mediain(void **state)
{
    s2a_media_in_t m;
    char longurl[5000];

    (void) state;
    assert_int_equal(
        s2a_mediain_text("HTTPS://x.test/v.mp4", S2A_MEDIAIN_VIDEO, 0, &m),
        S2A_MEDIAIN_OK);
    assert_string_equal(m.url, "HTTPS://x.test/v.mp4");
    assert_int_equal(s2a_mediain_text("data:video/mp4;base64,AAAAGGZ0eXA=",
                                      S2A_MEDIAIN_VIDEO, S2A_MEDIAIN_F_TYPE,
                                      &m),
                     S2A_MEDIAIN_OK);
    assert_string_equal(m.mime, "video/mp4");
    assert_string_equal(m.base64, "AAAAGGZ0eXA=");
    assert_int_equal(s2a_mediain_text("data:image/png;charset=x;base64,AAAA",
                                      S2A_MEDIAIN_IMAGE, S2A_MEDIAIN_F_TYPE,
                                      &m),
                     S2A_MEDIAIN_OK);
    assert_string_equal(m.mime, "image/png");
    assert_int_equal(s2a_mediain_text("data:image/png;base64,AAAA",
                                      S2A_MEDIAIN_VIDEO, S2A_MEDIAIN_F_TYPE,
                                      &m),
                     S2A_MEDIAIN_WRONG_TYPE);
    assert_int_equal(s2a_mediain_text("data:image/png;base64,AAAA",
                                      S2A_MEDIAIN_VIDEO, 0, &m),
                     S2A_MEDIAIN_OK);
    assert_int_equal(
        s2a_mediain_text("data:video/mp4,AAAA", S2A_MEDIAIN_VIDEO, 0, &m),
        S2A_MEDIAIN_NOT_BASE64_URL);
    assert_int_equal(
        s2a_mediain_text("not base64 !!", S2A_MEDIAIN_IMAGE, 0, &m),
        S2A_MEDIAIN_BAD_BASE64);
    assert_null(m.base64);
    memcpy(longurl, "http://x/", 9);
    memset(longurl + 9, 'a', 4200);
    longurl[4209] = '\0';
    assert_int_equal(s2a_mediain_text(longurl, S2A_MEDIAIN_VIDEO,
                                      S2A_MEDIAIN_F_URL_LIMIT, &m),
                     S2A_MEDIAIN_URL_TOO_LONG);
    assert_int_equal(s2a_mediain_text(longurl, S2A_MEDIAIN_VIDEO, 0, &m),
                     S2A_MEDIAIN_OK);
}

static void
test_sniff(void **state)
{
    static const unsigned char mp4[] = "\0\0\0\x18"
                                       "ftypisom";
    static const unsigned char mov[] = "\0\0\0\x14"
                                       "ftypqt  ";
    static const unsigned char webm[] = "\x1a\x45\xdf\xa3\x01";
    static const unsigned char png[] = "\x89PNG\r\n\x1a\n";
    static const unsigned char webp[] = "RIFF\0\0\0\0WEBPVP8";
    const char *ext;

    (void) state;
    assert_string_equal(s2a_mediain_sniff(mp4, 12, S2A_MEDIAIN_VIDEO, &ext),
                        "video/mp4");
    assert_string_equal(ext, "mp4");
    assert_string_equal(s2a_mediain_sniff(mov, 12, S2A_MEDIAIN_VIDEO, &ext),
                        "video/quicktime");
    assert_string_equal(ext, "mov");
    assert_string_equal(s2a_mediain_sniff(webm, 5, S2A_MEDIAIN_VIDEO, NULL),
                        "video/webm");
    assert_null(s2a_mediain_sniff(png, 8, S2A_MEDIAIN_VIDEO, &ext));
    assert_null(ext);
    assert_string_equal(s2a_mediain_sniff(png, 8, S2A_MEDIAIN_IMAGE, NULL),
                        "image/png");
    assert_string_equal(s2a_mediain_sniff(webp, 12, S2A_MEDIAIN_IMAGE, NULL),
                        "image/webp");
    assert_null(s2a_mediain_sniff(mp4, 4, S2A_MEDIAIN_VIDEO, NULL));
}

/* The chat parser's character modes and their option refusals. */
static void
test_chat_modes(void **state)
{
    s2a_chatreq_t req;
    const char *param = NULL;
    char err[512];
    json_t *body;

    (void) state;
    body =
        json_loads("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                   "[{\"type\":\"video_url\",\"video_url\":{\"url\":"
                   "\"https://x.test/v.mp4\"}}]}],\"character_options\":"
                   "{\"username\":\"my_cat\",\"keep\":true}}",
                   0, NULL);
    assert_int_equal(s2a_chatreq_parse(body, &req, err, sizeof(err), &param),
                     S2A_OK);
    assert_int_equal(req.mode, S2A_MODE_CHARACTER);
    assert_non_null(req.charopts);
    assert_string_equal(req.charopts->username, "my_cat");
    assert_true(req.charopts->keep);
    s2a_chatreq_cleanup(&req);
    json_decref(body);
    body =
        json_loads("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                   "\"x\"}],\"video\":\"https://x.test/v.mp4\","
                   "\"character_options\":{\"timestamps\":\"5,1\"}}",
                   0, NULL);
    assert_int_equal(s2a_chatreq_parse(body, &req, err, sizeof(err), &param),
                     S2A_ERROR);
    assert_string_equal(param, "character_options.timestamps");
    s2a_chatreq_cleanup(&req);
    json_decref(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),       cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_username_rule), cmocka_unit_test(test_mediain),
        cmocka_unit_test(test_sniff),         cmocka_unit_test(test_chat_modes),
    };

    return cmocka_run_group_tests_name("charopts", tests, NULL, NULL);
}
