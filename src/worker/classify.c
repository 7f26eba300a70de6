/*
 * classify.c: upstream error classification (protocol document 3).
 */
#include "worker/classify.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_COOLDOWN_S 60
#define QUOTA_COOLDOWN_S   3600

const char *
s2a_fail_name(s2a_fail_t kind)
{
    static const char *const names[] = { "none",           "token_invalid",
                                         "token_cooling",  "retryable",
                                         "content_policy", "task_failed" };

    return (size_t) kind < S2A_NELEMS(names) ? names[kind] : "unknown";
}

static bool
contains(const char *hay, const char *needle)
{
    return hay != NULL && strcasestr(hay, needle) != NULL;
}

void
s2a_classify(long status, json_t *body, const char *raw,
             const char *transport_error, s2a_failure_t *out)
{
    json_t *err = json_object_get(body, "error"), *rl, *v;
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    int64_t reset = 0;

    memset(out, 0, sizeof(out[0]));
    if (msg == NULL && json_is_string(err)) {
        msg = json_string_value(err);
    }
    if (status >= 200 && status <= 299) {
        out->kind = S2A_FAIL_NONE;
        return;
    }
    if (status == 0) {
        out->kind = S2A_FAIL_RETRYABLE;
        snprintf(out->message, sizeof(out->message), "Sora unreachable: %s",
                 transport_error != NULL ? transport_error : "no answer");
        return;
    }
    snprintf(out->message, sizeof(out->message), "%s",
             msg != NULL ? msg
                 : raw != NULL && raw[0] != '\0' && raw[0] != '<'
                 ? raw
                 : "Sora answered with an error");
    /* Heavy load comes with any status; it is never the token's fault. */
    if (contains(msg, "heavy load") || contains(raw, "under heavy load")) {
        out->kind = S2A_FAIL_RETRYABLE;
        return;
    }
    if (status == 401
        || (code != NULL && strcmp(code, "token_invalidated") == 0)
        || (code != NULL && strcmp(code, "token_expired") == 0))
    {
        out->kind = S2A_FAIL_TOKEN_INVALID;
        return;
    }
    if (status == 429
        || (code != NULL
            && (strcmp(code, "too_many_concurrent_tasks") == 0
                || strcmp(code, "rate_limit_exceeded") == 0)))
    {
        out->kind = S2A_FAIL_TOKEN_COOLING;
        rl = json_object_get(body, "rate_limit_and_credit_balance");
        v = json_object_get(rl, "access_resets_in_seconds");
        if (json_is_integer(v)) {
            reset = json_integer_value(v);
        }
        if (json_is_true(json_object_get(rl, "rate_limit_reached"))
            || contains(msg, "quota") || contains(msg, "limit reached"))
        {
            out->cooldown_s = reset > 0 ? reset : QUOTA_COOLDOWN_S;
        } else {
            /* A concurrency limit frees up as soon as a task ends. */
            out->cooldown_s = reset > 0 ? reset : DEFAULT_COOLDOWN_S;
        }
        return;
    }
    if ((code != NULL
         && (strstr(code, "content_policy") != NULL
             || strstr(code, "moderation") != NULL))
        || contains(msg, "content policy") || contains(msg, "guardrail"))
    {
        out->kind = S2A_FAIL_CONTENT_POLICY;
        return;
    }
    if (status >= 500 || status == 408 || status == 409) {
        out->kind = S2A_FAIL_RETRYABLE;
        return;
    }
    /* A Cloudflare challenge page: a fresh attempt may pass. */
    if (status == 403
        && (contains(raw, "Just a moment")
            || contains(raw, "challenge-platform")))
    {
        out->kind = S2A_FAIL_RETRYABLE;
        snprintf(out->message, sizeof(out->message),
                 "Sora answered with a Cloudflare challenge");
        return;
    }
    out->kind = S2A_FAIL_TASK;
}
