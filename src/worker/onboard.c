/*
 * onboard.c: the add-token and test-token call sequences (protocol
 * document 5.1), driven by upstream completions.
 */
#include "worker/onboard.h"
#include "common/crypto.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/sora.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERNAME_ATTEMPTS 5

typedef enum {
    ST_ME = 0,
    ST_SUBSCRIPTIONS,
    ST_INVITE,
    ST_BOOTSTRAP,
    ST_CHECK,
    ST_USERNAME_CHECK,
    ST_USERNAME_SET,
    ST_DONE
} step_t;

struct s2a_onboard_s {
    s2a_onboard_mode_t mode;
    step_t step;
    char *at;
    char *proxy;
    uint64_t call;
    json_t *fields;
    bool bootstrapped;
    bool need_username;
    int username_attempts;
    char candidate[48];
    s2a_onboard_done_pt done;
    void *arg;
};

static void next_step(s2a_onboard_t *ob);

static void
ob_free(s2a_onboard_t *ob)
{
    if (ob->at != NULL) {
        explicit_bzero(ob->at, strlen(ob->at));
        free(ob->at);
    }
    free(ob->proxy);
    json_decref(ob->fields);
    free(ob);
}

static void finish(s2a_onboard_t *ob, bool ok, int status, bool invalid,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
finish(s2a_onboard_t *ob, bool ok, int status, bool invalid, const char *fmt,
       ...)
{
    s2a_onboard_result_t r;
    char detail[512] = "";
    va_list ap;

    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    r.ok = ok;
    r.status = status;
    r.detail = detail;
    r.token_invalid = invalid;
    r.fields = ob->fields;
    ob->call = 0;
    ob->done(&r, ob->arg);
    ob_free(ob);
}

static void
set_str(s2a_onboard_t *ob, const char *key, json_t *v)
{
    if (json_is_string(v)) {
        json_object_set(ob->fields, key, v);
    }
}

/* Adds `fields` (taken over, may be NULL) to what was learnt. */
static void
merge(s2a_onboard_t *ob, json_t *fields)
{
    if (fields != NULL) {
        json_object_update(ob->fields, fields);
        json_decref(fields);
    }
}

static void
set_int(s2a_onboard_t *ob, const char *key, json_t *v)
{
    if (json_is_integer(v)) {
        json_object_set(ob->fields, key, v);
    }
}

static bool
is_unauthorized(const s2a_sora_result_t *r)
{
    return r->status == 401 || r->status == 403
        || (r->error_code != NULL
            && strcmp(r->error_code, "token_invalidated") == 0);
}

static void
make_candidate(s2a_onboard_t *ob)
{
    static const char *const first[] = { "amber",  "blake", "casey", "devon",
                                         "ellis",  "frank", "gwen",  "harper",
                                         "iris",   "jules", "kai",   "logan",
                                         "morgan", "nova",  "owen",  "piper",
                                         "quinn",  "riley", "sage",  "tatum" };
    static const char *const last[] = { "stone", "rivers", "woods", "hale",
                                        "frost", "lane",   "marsh", "reed",
                                        "vale",  "wells",  "brook", "cole" };
    uint8_t r[4];

    s2a_random_bytes(r, sizeof(r));
    snprintf(ob->candidate, sizeof(ob->candidate), "%s%s%u",
             first[r[0] % S2A_NELEMS(first)], last[r[1] % S2A_NELEMS(last)],
             (unsigned) ((r[2] << 8 | r[3]) % 10000));
}

static void
on_result(const s2a_sora_result_t *r, void *arg)
{
    s2a_onboard_t *ob = arg;
    json_t *j = r->json, *v;
    const char *msg = r->error_message != NULL ? r->error_message : "";

    ob->call = 0;
    switch (ob->step) {
    case ST_ME:
        if (r->status == 0) {
            finish(ob, false, 502, false, "Sora unreachable: %s", msg);
            return;
        }
        if (is_unauthorized(r)) {
            finish(ob, false, 400, true, "Sora rejected the access token: %s",
                   msg);
            return;
        }
        if (s2a_sora_ok(r)) {
            set_str(ob, "email", json_object_get(j, "email"));
            set_str(ob, "name", json_object_get(j, "name"));
            v = json_object_get(j, "username");
            if (json_is_string(v)) {
                json_object_set(ob->fields, "username", v);
            } else if (json_is_null(v) && ob->mode == S2A_ONBOARD_ADD) {
                ob->need_username = true;
            }
        }
        ob->step = ob->mode == S2A_ONBOARD_ADD ? ST_SUBSCRIPTIONS : ST_INVITE;
        break;

    case ST_SUBSCRIPTIONS:
        if (r->error_code != NULL
            && strcmp(r->error_code, "token_expired") == 0) {
            finish(ob, false, 400, true, "Token expired: %s", msg);
            return;
        }
        if (s2a_sora_ok(r)) {
            merge(ob, s2a_sora_plan_fields(j));
        }
        ob->step = ST_INVITE;
        break;

    case ST_INVITE:
        if (r->error_code != NULL
            && strcmp(r->error_code, "unsupported_country_code") == 0)
        {
            v = json_object_get(json_object_get(j, "error"), "param");
            finish(ob, false, 400, false,
                   "Sora is not available in this account's region%s%s%s: %s",
                   json_is_string(v) ? " (" : "",
                   json_is_string(v) ? json_string_value(v) : "",
                   json_is_string(v) ? ")" : "", msg);
            return;
        }
        if (s2a_sora_ok(r)) {
            json_object_set_new(ob->fields, "sora2_supported", json_true());
            set_str(ob, "sora2_invite_code", json_object_get(j, "invite_code"));
            set_int(ob, "sora2_redeemed_count",
                    json_object_get(j, "redeemed_count"));
            set_int(ob, "sora2_total_count", json_object_get(j, "total_count"));
            ob->step = ST_CHECK;
            break;
        }
        /* Not set up yet: nudge the account once, then ask again. */
        if (r->status == 401 && strstr(msg, "Unauthorized") != NULL
            && !ob->bootstrapped)
        {
            ob->bootstrapped = true;
            ob->step = ST_BOOTSTRAP;
            break;
        }
        json_object_set_new(ob->fields, "sora2_supported", json_false());
        ob->step = ob->need_username ? ST_USERNAME_CHECK : ST_DONE;
        break;

    case ST_BOOTSTRAP: ob->step = ST_INVITE; break;

    case ST_CHECK:
        if (s2a_sora_ok(r)) {
            merge(ob, s2a_sora_quota_fields(j, s2a_now()));
        }
        ob->step = ob->need_username ? ST_USERNAME_CHECK : ST_DONE;
        break;

    case ST_USERNAME_CHECK:
        if (s2a_sora_ok(r) && json_is_true(json_object_get(j, "available"))) {
            ob->step = ST_USERNAME_SET;
            break;
        }
        ob->step = ++ob->username_attempts < USERNAME_ATTEMPTS
            ? ST_USERNAME_CHECK
            : ST_DONE;
        break;

    case ST_USERNAME_SET:
        if (s2a_sora_ok(r)) {
            v = json_object_get(j, "username");
            json_object_set_new(ob->fields, "username",
                                json_string(json_is_string(v)
                                                ? json_string_value(v)
                                                : ob->candidate));
            ob->step = ST_DONE;
            break;
        }
        ob->step = ++ob->username_attempts < USERNAME_ATTEMPTS
            ? ST_USERNAME_CHECK
            : ST_DONE;
        break;

    case ST_DONE: break;
    }
    next_step(ob);
}

static void
next_step(s2a_onboard_t *ob)
{
    s2a_sora_call_t c;
    json_t *body = NULL;

    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.at = ob->at;
    c.proxy = ob->proxy;
    switch (ob->step) {
    case ST_ME: c.path = "/me"; break;
    case ST_SUBSCRIPTIONS: c.path = "/billing/subscriptions"; break;
    case ST_INVITE: c.path = "/project_y/invite/mine"; break;
    case ST_BOOTSTRAP: c.path = "/m/bootstrap"; break;
    case ST_CHECK: c.path = "/nf/check"; break;
    case ST_USERNAME_CHECK:
        make_candidate(ob);
        c.method = "POST";
        c.path = "/project_y/profile/username/check";
        body = json_pack("{s:s}", "username", ob->candidate);
        break;
    case ST_USERNAME_SET:
        c.method = "POST";
        c.path = "/project_y/profile/username/set";
        body = json_pack("{s:s}", "username", ob->candidate);
        break;
    case ST_DONE: finish(ob, true, 200, false, NULL); return;
    }
    c.body = body;
    ob->call = s2a_sora_start(&c, on_result, ob);
    json_decref(body);
    if (ob->call == 0) {
        finish(ob, false, 503, false, "cannot start an upstream call");
    }
}

s2a_onboard_t *
s2a_onboard_start(s2a_onboard_mode_t mode, const char *at, const char *proxy,
                  json_t *fields, s2a_onboard_done_pt done, void *arg)
{
    s2a_onboard_t *ob = calloc(1, sizeof(*ob));
    s2a_sora_call_t c;

    if (ob == NULL) {
        return NULL;
    }
    ob->mode = mode;
    ob->at = strdup(at);
    ob->proxy = proxy != NULL && proxy[0] != '\0' ? strdup(proxy) : NULL;
    ob->fields = fields != NULL ? json_deep_copy(fields) : json_object();
    ob->done = done;
    ob->arg = arg;
    ob->step = ST_ME;
    if (ob->at == NULL || ob->fields == NULL) {
        ob_free(ob);
        return NULL;
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.path = "/me";
    c.at = ob->at;
    c.proxy = ob->proxy;
    ob->call = s2a_sora_start(&c, on_result, ob);
    if (ob->call == 0) {
        ob_free(ob);
        return NULL;
    }
    return ob;
}

void
s2a_onboard_cancel(s2a_onboard_t *ob)
{
    if (ob == NULL) {
        return;
    }
    if (ob->call != 0) {
        s2a_sora_cancel(ob->call);
    }
    ob_free(ob);
}
