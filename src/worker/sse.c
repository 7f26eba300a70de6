/*
 * sse.c: chunk rendering. Jansson leaves '&' and '/' alone, so result
 * URLs are never escaped as \u0026 or \/.
 */
#include "worker/sse.h"
#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
s2a_sse_init(s2a_sse_t *sse, int64_t now)
{
    uint8_t r[12];
    char hex[25];

    s2a_random_bytes(r, sizeof(r));
    s2a_hex(r, sizeof(r), hex);
    snprintf(sse->id, sizeof(sse->id), "chatcmpl-%s", hex);
    sse->created = now;
    sse->role_sent = false;
}

/* "data: <json>\n\n" from a JSON text (taken over and freed). */
static char *
event_of(char *body)
{
    size_t len;
    char *out;

    if (body == NULL) {
        return NULL;
    }
    len = strlen(body);
    out = malloc(len + 9);
    if (out != NULL) {
        memcpy(out, "data: ", 6);
        memcpy(out + 6, body, len);
        memcpy(out + 6 + len, "\n\n", 3);
    }
    free(body);
    return out;
}

/* Wraps a delta into a chunk and renders it as one event. */
static char *
render(s2a_sse_t *sse, json_t *delta, const char *finish, json_t *usage)
{
    json_t *chunk;
    char *body;

    if (!sse->role_sent) {
        json_object_set_new(delta, "role", json_string("assistant"));
        sse->role_sent = true;
    }
    json_object_set_new(delta, "tool_calls", json_null());
    chunk = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:o, s:o}], s:o}", "id", sse->id,
        "object", "chat.completion.chunk", "created", (json_int_t) sse->created,
        "model", "sora", "choices", "index", 0, "delta", delta, "finish_reason",
        finish != NULL ? json_string(finish) : json_null(),
        "native_finish_reason",
        finish != NULL ? json_string(finish) : json_null(), "usage", usage);
    if (chunk == NULL) {
        return NULL;
    }
    body = json_dumps(chunk, JSON_COMPACT);
    json_decref(chunk);
    return event_of(body);
}

char *
s2a_sse_progress(s2a_sse_t *sse, const char *stage, const char *status,
                 int progress, const char *message, json_t *details,
                 int64_t now)
{
    json_t *rc, *delta;

    rc = json_pack("{s:s, s:s, s:s, s:I}", "stage", stage, "status", status,
                   "message", message, "timestamp", (json_int_t) now);
    if (rc == NULL) {
        return NULL;
    }
    if (progress >= 0) {
        json_object_set_new(rc, "progress", json_integer(progress));
    }
    if (details != NULL) {
        json_object_set(rc, "details", details);
    }
    delta = json_pack("{s:n, s:o}", "content", "reasoning_content", rc);
    return render(sse, delta, NULL, json_pack("{s:i}", "prompt_tokens", 0));
}

/* The final chunk of a stream (see sse.h). */
char *
s2a_sse_result(s2a_sse_t *sse, json_t *result)
{
    const char *type = json_string_value(json_object_get(result, "type"));
    const char *code = json_string_value(
        json_object_get(json_object_get(result, "data"), "code"));
    char *content = json_dumps(result, JSON_COMPACT);
    json_t *delta;
    char *out;

    if (content == NULL) {
        return NULL;
    }
    delta = json_pack("{s:s, s:n}", "content", content, "reasoning_content");
    free(content);
    out = render(sse, delta, s2a_result_finish(type, code),
                 json_pack("{s:i, s:i, s:i}", "prompt_tokens", 0,
                           "completion_tokens", 1, "total_tokens", 1));
    return out;
}

/* The error result of the contract, plus data.code (see sse.h). */
json_t *
s2a_result_error(const char *message, const char *code)
{
    if (message == NULL) {
        message = "the generation failed";
    }
    return json_pack("{s:s, s:s, s:{s:s, s:s}}", "type", "error", "error",
                     message, "data", "error", message, "code",
                     code != NULL ? code : "internal_error");
}

/* finish_reason of a final chunk (see sse.h). */
const char *
s2a_result_finish(const char *type, const char *code)
{
    if (type != NULL && strcmp(type, "error") == 0 && code != NULL
        && strcmp(code, S2A_CODE_CONTENT_POLICY) == 0)
    {
        return "content_filter";
    }
    return "STOP";
}

/* Every failure of a started stream ends through here (see sse.h). */
char *
s2a_sse_error(s2a_sse_t *sse, const char *message, const char *code)
{
    json_t *result = s2a_result_error(message, code);
    char *out;

    if (result == NULL) {
        return NULL;
    }
    out = s2a_sse_result(sse, result);
    json_decref(result);
    return out;
}
