/*
 * test_chatreq.c: chat request parsing, mode decision, remix and
 * storyboard prompt rewriting, SSE chunks, upstream error classes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/chatreq.h"
#include "worker/classify.h"
#include "worker/sse.h"

#include <stdlib.h>
#include <string.h>

#define SID "s_68e3a06dcd888191b150971da152c1f5"

/* Parses `text`; the request borrows from the body, so the caller drops
 * it (*body) after s2a_chatreq_cleanup. */
static int
parse(const char *text, s2a_chatreq_t *req, char *err, const char **param,
      json_t **body)
{
    *body = json_loads(text, 0, NULL);
    assert_non_null(*body);
    return s2a_chatreq_parse(*body, req, err, 256, param);
}

static void
expect_mode(const char *text, s2a_mode_t mode, const char *prompt)
{
    s2a_chatreq_t req;
    const char *param = NULL;
    char err[256];
    json_t *body;

    if (parse(text, &req, err, &param, &body) != S2A_OK) {
        fail_msg("%s: %s", text, err);
    }
    if (req.mode != mode) {
        fail_msg("%s: mode %s", text, s2a_mode_name(req.mode));
    }
    if (prompt != NULL) {
        assert_string_equal(req.prompt, prompt);
    }
    s2a_chatreq_cleanup(&req);
    json_decref(body);
}

static void
test_modes(void **state)
{
    (void) state;
    expect_mode("{\"model\":\"sora-image\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"一只可爱的小猫\"}],\"stream\":true}",
                S2A_MODE_TEXT_TO_IMAGE, "一只可爱的小猫");
    expect_mode("{\"model\":\"sora-image\",\"messages\":[{\"content\":["
                "{\"type\":\"text\",\"text\":\"make it blue\"},"
                "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"data:image/png;base64,iVBORw0KGgo=\"}}]}]}",
                S2A_MODE_IMAGE_TO_IMAGE, "make it blue");
    expect_mode("{\"model\":\"sora-video-landscape-10s\",\"messages\":[{"
                "\"content\":\"一只猫在弹钢琴\"}],\"style_id\":\"Anime\"}",
                S2A_MODE_TEXT_TO_VIDEO, NULL);
    expect_mode("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":["
                "{\"type\":\"text\",\"text\":\"让图片动起来\"},"
                "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                "\"https://example.com/a.png\"}}]}]}",
                S2A_MODE_IMAGE_TO_VIDEO, NULL);
    expect_mode("{\"model\":\"sora-video-landscape-10s\",\"messages\":[{"
                "\"content\":\"https://sora.chatgpt.com/p/" SID
                " 改成水墨画风格\"}]}",
                S2A_MODE_REMIX, NULL);
    expect_mode("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                "\"go\"}],\"remix_target_id\":\"" SID "\"}",
                S2A_MODE_REMIX, "go");
    expect_mode("{\"model\":\"sora-video-landscape-10s\",\"messages\":[{"
                "\"content\":\"[5.0s]猫猫从飞机上跳伞 [5.0s]猫猫降落\"}]}",
                S2A_MODE_STORYBOARD, NULL);
    expect_mode("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":["
                "{\"type\":\"video_url\",\"video_url\":{\"url\":"
                "\"data:video/mp4;base64,AAAAGGZ0eXA=\"}}]}]}",
                S2A_MODE_CHARACTER, "");
    expect_mode("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                "\"dance\"}],\"video\":\"https://example.com/v.mp4\"}",
                S2A_MODE_CHARACTER_VIDEO, "dance");
    /* An image model ignores a share link: the prompt is just a prompt. */
    expect_mode("{\"model\":\"sora-image\",\"messages\":[{\"content\":\"" SID
                "\"}]}",
                S2A_MODE_TEXT_TO_IMAGE, NULL);
}

static void
expect_error(const char *text, const char *param, const char *fragment)
{
    s2a_chatreq_t req;
    const char *p = NULL;
    char err[256];
    json_t *body;

    assert_int_equal(parse(text, &req, err, &p, &body), S2A_ERROR);
    s2a_chatreq_cleanup(&req);
    json_decref(body);
    assert_non_null(p);
    assert_string_equal(p, param);
    if (strstr(err, fragment) == NULL) {
        fail_msg("%s: \"%s\" lacks \"%s\"", text, err, fragment);
    }
}

static void
test_errors(void **state)
{
    (void) state;
    expect_error("{}", "model", "model is required");
    expect_error("{\"model\":\"gpt-4\",\"messages\":[]}", "model",
                 "does not exist");
    expect_error("{\"model\":\"sora-image\"}", "messages", "non-empty");
    expect_error("{\"model\":\"sora-image\",\"messages\":[]}", "messages",
                 "non-empty");
    expect_error("{\"model\":\"sora-image\",\"messages\":[1]}", "messages",
                 "object");
    expect_error("{\"model\":\"sora-image\",\"messages\":[{\"content\":5}]}",
                 "messages", "string or an array");
    expect_error(
        "{\"model\":\"sora-image\",\"messages\":[{\"content\":\" \"}]}",
        "messages", "no text prompt");
    expect_error("{\"model\":\"sora-image\",\"stream\":\"yes\",\"messages\":"
                 "[{\"content\":\"x\"}]}",
                 "stream", "boolean");
    expect_error("{\"model\":\"sora-image\",\"messages\":[{\"content\":[{"
                 "\"type\":\"audio\"}]}]}",
                 "messages", "unsupported type");
    expect_error("{\"model\":\"sora-image\",\"messages\":[{\"content\":\"x\"}],"
                 "\"image\":\"not base64 !!\"}",
                 "image", "valid base64");
    expect_error("{\"model\":\"sora-image\",\"messages\":[{\"content\":\"x\"}],"
                 "\"image\":\"data:text/plain;base64,aGVsbG8=\"}",
                 "image", "is not an image");
    expect_error("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                 "\"x\"}],\"remix_target_id\":\"s_123\"}",
                 "remix_target_id", "share id");
    expect_error("{\"model\":\"sora-video-10s\",\"messages\":[{\"content\":"
                 "\"x\"}],\"style_id\":\"a b\"}",
                 "style_id", "letters");
}

static void
test_remix_prompt(void **state)
{
    char id[35];
    char *clean;

    (void) state;
    assert_true(
        s2a_find_remix_id("see https://sora.chatgpt.com/p/" SID " now", id));
    assert_string_equal(id, SID);
    assert_false(s2a_find_remix_id("xs_68e3a06dcd888191b150971da152c1f5", id));
    assert_false(s2a_find_remix_id("s_68e3a06dcd888191b150971da152c1f", id));
    clean = s2a_remix_clean_prompt("https://sora.chatgpt.com/p/" SID
                                   "   改成水墨画风格  ");
    assert_string_equal(clean, "改成水墨画风格");
    free(clean);
    clean = s2a_remix_clean_prompt("make " SID " blue\n\tand  bold");
    assert_string_equal(clean, "make blue and bold");
    free(clean);
}

static void
test_storyboard(void **state)
{
    char *s;

    (void) state;
    assert_true(s2a_is_storyboard("[5.0s]a"));
    assert_true(s2a_is_storyboard("x [10s] b"));
    assert_false(s2a_is_storyboard("[5.s]a [s] [5x]"));
    assert_false(s2a_is_storyboard("no tags"));
    s = s2a_storyboard_format("[5.0s]猫猫从飞机上跳伞 [5.0s]猫猫降落 "
                              "[10.0s]猫猫在田野奔跑");
    assert_string_equal(s,
                        "Shot 1:\nduration: 5.0sec\nScene: 猫猫从飞机上跳伞\n\n"
                        "Shot 2:\nduration: 5.0sec\nScene: 猫猫降落\n\n"
                        "Shot 3:\nduration: 10.0sec\nScene: 猫猫在田野奔跑");
    free(s);
    s = s2a_storyboard_format("Cat adventure\n[5s]cat jumps\n[5.0s] cat "
                              "lands [note] softly");
    assert_string_equal(s,
                        "current timeline:\n"
                        "Shot 1:\nduration: 5.0sec\nScene: cat jumps\n\n"
                        "Shot 2:\nduration: 5.0sec\nScene: cat lands "
                        "[note] softly\n\n"
                        "instructions:\nCat adventure");
    free(s);
    assert_null(s2a_storyboard_format("plain"));
}

static void
test_sse(void **state)
{
    s2a_sse_t sse;
    json_t *chunk, *delta, *rc, *result, *content;
    char *ev;

    (void) state;
    s2a_sse_init(&sse, 1700000000);
    ev = s2a_sse_progress(&sse, "generation", "started", -1,
                          "Initializing generation request...", NULL,
                          1700000001);
    assert_int_equal(strncmp(ev, "data: ", 6), 0);
    assert_int_equal(strcmp(ev + strlen(ev) - 2, "\n\n"), 0);
    chunk = json_loads(ev + 6, 0, NULL);
    free(ev);
    assert_string_equal(json_string_value(json_object_get(chunk, "object")),
                        "chat.completion.chunk");
    assert_string_equal(json_string_value(json_object_get(chunk, "model")),
                        "sora");
    delta = json_object_get(
        json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    assert_string_equal(json_string_value(json_object_get(delta, "role")),
                        "assistant");
    assert_true(json_is_null(json_object_get(delta, "content")));
    rc = json_object_get(delta, "reasoning_content");
    assert_string_equal(json_string_value(json_object_get(rc, "stage")),
                        "generation");
    assert_null(json_object_get(rc, "progress"));
    assert_int_equal(json_integer_value(json_object_get(rc, "timestamp")),
                     1700000001);
    json_decref(chunk);

    ev = s2a_sse_progress(&sse, "generation", "processing", 50, "half", NULL,
                          1700000002);
    chunk = json_loads(ev + 6, 0, NULL);
    free(ev);
    delta = json_object_get(
        json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    assert_null(json_object_get(delta, "role")); /* first chunk only */
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(delta, "reasoning_content"), "progress")),
        50);
    json_decref(chunk);

    result = json_pack("{s:s, s:[s], s:i}", "type", "image", "urls",
                       "http://h/tmp/a.png?x=1&y=2", "count", 1);
    ev = s2a_sse_result(&sse, result);
    json_decref(result);
    assert_null(strstr(ev, "\\u0026"));
    assert_non_null(strstr(ev, "x=1&y=2"));
    chunk = json_loads(ev + 6, 0, NULL);
    free(ev);
    delta = json_object_get(
        json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    content = json_loads(json_string_value(json_object_get(delta, "content")),
                         0, NULL);
    assert_string_equal(json_string_value(json_object_get(content, "type")),
                        "image");
    json_decref(content);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(chunk, "choices"), 0),
            "finish_reason")),
        "STOP");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(chunk, "usage"), "total_tokens")),
                     1);
    json_decref(chunk);

    /* A failure: a chunk with choices whose content is the error
     * result, never a bare {"error":...}. */
    ev = s2a_sse_error(&sse, "boom", "generation_timeout");
    chunk = json_loads(ev + 6, 0, NULL);
    free(ev);
    assert_null(json_object_get(chunk, "error"));
    delta = json_object_get(
        json_array_get(json_object_get(chunk, "choices"), 0), "delta");
    assert_string_equal(
        json_string_value(json_object_get(delta, "content")),
        "{\"type\":\"error\",\"error\":\"boom\",\"data\":"
        "{\"error\":\"boom\",\"code\":\"generation_timeout\"}}");
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(chunk, "choices"), 0),
            "finish_reason")),
        "STOP");
    json_decref(chunk);

    result = s2a_result_error("Content policy violation: no",
                              S2A_CODE_CONTENT_POLICY);
    ev = s2a_sse_result(&sse, result);
    json_decref(result);
    chunk = json_loads(ev + 6, 0, NULL);
    free(ev);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(chunk, "choices"), 0),
            "finish_reason")),
        "content_filter");
    json_decref(chunk);
}

static void
expect_class(long status, const char *body, const char *transport,
             s2a_fail_t kind, int64_t cooldown)
{
    json_t *j = body != NULL ? json_loads(body, 0, NULL) : NULL;
    s2a_failure_t f;

    s2a_classify(status, j, body, transport, &f);
    json_decref(j);
    if (f.kind != kind) {
        fail_msg("%ld %s: %s", status, body != NULL ? body : "-",
                 s2a_fail_name(f.kind));
    }
    if (cooldown >= 0) {
        assert_int_equal(f.cooldown_s, cooldown);
    }
    if (kind != S2A_FAIL_NONE) {
        assert_true(f.message[0] != '\0');
    }
}

static void
test_classify(void **state)
{
    (void) state;
    expect_class(200, "{}", NULL, S2A_FAIL_NONE, -1);
    expect_class(401, "{\"error\":{\"code\":\"token_invalidated\"}}", NULL,
                 S2A_FAIL_TOKEN_INVALID, -1);
    expect_class(400, "{\"error\":{\"code\":\"token_invalidated\"}}", NULL,
                 S2A_FAIL_TOKEN_INVALID, -1);
    expect_class(429,
                 "{\"error\":{\"code\":\"too_many_concurrent_tasks\","
                 "\"message\":\"You already have 3 generations\"}}",
                 NULL, S2A_FAIL_TOKEN_COOLING, 60);
    expect_class(429,
                 "{\"error\":{\"message\":\"limit\"},"
                 "\"rate_limit_and_credit_balance\":{"
                 "\"rate_limit_reached\":true,"
                 "\"access_resets_in_seconds\":4000}}",
                 NULL, S2A_FAIL_TOKEN_COOLING, 4000);
    expect_class(503,
                 "{\"error\":{\"message\":\"We're under heavy load, "
                 "please try again later.\"}}",
                 NULL, S2A_FAIL_RETRYABLE, -1);
    expect_class(400,
                 "{\"error\":{\"message\":\"We're under heavy load, "
                 "please try again later.\"}}",
                 NULL, S2A_FAIL_RETRYABLE, -1);
    expect_class(502, "<html>bad gateway</html>", NULL, S2A_FAIL_RETRYABLE, -1);
    expect_class(0, NULL, "Connection refused", S2A_FAIL_RETRYABLE, -1);
    expect_class(400,
                 "{\"error\":{\"code\":\"content_policy_violation\","
                 "\"message\":\"nope\"}}",
                 NULL, S2A_FAIL_CONTENT_POLICY, -1);
    expect_class(403, "<html>Just a moment...</html>", NULL, S2A_FAIL_RETRYABLE,
                 -1);
    expect_class(400,
                 "{\"error\":{\"message\":\"Invalid image\","
                 "\"code\":\"invalid_file\"}}",
                 NULL, S2A_FAIL_TASK, -1);
}

/* A body whose last message has `nparts` text parts of `text`. */
static json_t *
parts_body(size_t nparts, const char *text)
{
    json_t *body, *parts, *msg;
    size_t i;

    parts = json_array();
    for (i = 0; i < nparts; i++) {
        json_array_append_new(
            parts, json_pack("{s:s,s:s}", "type", "text", "text", text));
    }
    msg = json_pack("{s:s,s:o}", "role", "user", "content", parts);
    body = json_pack("{s:s,s:[o]}", "model", "sora-image", "messages", msg);
    assert_non_null(body);
    return body;
}

static int
parse_body(json_t *body, char *err, const char **param)
{
    s2a_chatreq_t req;
    int rc = s2a_chatreq_parse(body, &req, err, 256, param);

    s2a_chatreq_cleanup(&req);
    return rc;
}

/*
 * The caps on messages, parts and prompt length; joining texts is linear
 * (the last part used to cost a strlen of everything before it: 2,000,000
 * parts blocked a worker for about two minutes).
 */
static void
test_caps(void **state)
{
    s2a_chatreq_t req;
    const char *param = NULL;
    char err[256], *big;
    json_t *body, *msgs;
    size_t i;

    (void) state;
    /* The most parts allowed join into one line each. */
    body = parts_body(S2A_CHATREQ_MAX_PARTS, "ab");
    assert_int_equal(s2a_chatreq_parse(body, &req, err, 256, &param), S2A_OK);
    assert_int_equal(strlen(req.prompt), S2A_CHATREQ_MAX_PARTS * 3 - 1);
    assert_int_equal(req.prompt[2], '\n');
    assert_int_equal(req.prompt[3], 'a');
    s2a_chatreq_cleanup(&req);
    json_decref(body);
    /* One more is refused, naming the cap. */
    body = parts_body(S2A_CHATREQ_MAX_PARTS + 1, "ab");
    assert_int_equal(parse_body(body, err, &param), S2A_ERROR);
    assert_string_equal(param, "messages");
    assert_non_null(strstr(err, "at most 256"));
    json_decref(body);
    /* A prompt of exactly the cap passes; one byte more does not. */
    big = malloc(S2A_CHATREQ_MAX_PROMPT + 2);
    assert_non_null(big);
    memset(big, 'p', S2A_CHATREQ_MAX_PROMPT + 1);
    big[S2A_CHATREQ_MAX_PROMPT] = '\0';
    body = json_pack("{s:s,s:[{s:s}]}", "model", "sora-image", "messages",
                     "content", big);
    assert_int_equal(parse_body(body, err, &param), S2A_OK);
    json_decref(body);
    big[S2A_CHATREQ_MAX_PROMPT] = 'p';
    big[S2A_CHATREQ_MAX_PROMPT + 1] = '\0';
    body = json_pack("{s:s,s:[{s:s}]}", "model", "sora-image", "messages",
                     "content", big);
    assert_int_equal(parse_body(body, err, &param), S2A_ERROR);
    assert_non_null(strstr(err, "longer than 65536 bytes"));
    json_decref(body);
    /* Two parts of half the cap each: the newline tips it over. */
    big[S2A_CHATREQ_MAX_PROMPT / 2] = '\0';
    body = parts_body(2, big);
    assert_int_equal(parse_body(body, err, &param), S2A_ERROR);
    json_decref(body);
    free(big);
    /* Too many messages (only the last is read, but all are sent). */
    msgs = json_array();
    for (i = 0; i <= S2A_CHATREQ_MAX_MESSAGES; i++) {
        json_array_append_new(msgs, json_pack("{s:s}", "content", "hi"));
    }
    body = json_pack("{s:s,s:o}", "model", "sora-image", "messages", msgs);
    assert_int_equal(parse_body(body, err, &param), S2A_ERROR);
    assert_non_null(strstr(err, "at most 4096"));
    json_decref(body);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),      cmocka_unit_test(test_errors),
        cmocka_unit_test(test_caps),       cmocka_unit_test(test_remix_prompt),
        cmocka_unit_test(test_storyboard), cmocka_unit_test(test_sse),
        cmocka_unit_test(test_classify),
    };

    return cmocka_run_group_tests_name("chatreq", tests, NULL, NULL);
}
