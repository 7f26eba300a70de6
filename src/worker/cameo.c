/*
 * cameo.c: the character step machine (docs/characters.md, "Creation").
 *
 * A flow holds at most one outstanding call (`call`, to Sora or, for the
 * avatar, a plain download) or its poll timer; cancelling undoes exactly
 * that. Every step it passes is written to its `characters` row through
 * the master (character_write), so a row says how far a character got:
 * `processing` once Sora has the video, `ready` once finalized, `failed`
 * with the reason otherwise.
 */
#include "worker/cameo.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/sora.h"
#include "worker/upstream.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLL_ERRORS_MAX  3 /* consecutive failed polls end the flow */
#define NAME_RETRIES     5 /* new suffixes after a taken username */
#define AVATAR_MAX_BYTES (8u * 1024 * 1024)
#define AVATAR_FETCH_MS  30000L
#define CODE_FAILED      "character_failed"

typedef enum {
    ST_KICK = 0,  /* the first step, from the loop */
    ST_UPLOAD,    /* E21 */
    ST_WAIT,      /* the poll timer */
    ST_POLL,      /* E22 */
    ST_CHECK,     /* E7 */
    ST_AVATAR,    /* E23 (a plain download) */
    ST_AVATAR_UP, /* E24 */
    ST_FINALIZE,  /* E25 */
    ST_PUBLIC     /* E26 */
} step_t;

struct s2a_cameo_s {
    const s2a_cameo_ops_t *ops;
    void *arg;
    int64_t token_id;
    char job_id[32];
    char rid[32];
    int64_t owner;
    s2a_charopts_t opts;
    unsigned char *video;
    size_t video_len;
    char vtype[32];
    char vext[8];
    bool set_public;
    bool temporary;
    bool publish_only; /* resumed after finalize: E26 alone */
    s2a_cameo_info_t info;
    char *profile_url;
    char *instruction; /* the instruction set sent (option, else hint) */
    char asset_pointer[256];
    unsigned char *avatar;
    size_t avatar_len;
    step_t step;
    uint64_t call;
    bool call_plain; /* `call` is an upstream download, not a Sora call */
    struct event *timer;
    int poll_errors;
    int name_tries;
    char base_name[32]; /* the hint's name, before its suffix */
};

typedef struct delete_s {
    uint64_t call;
    int64_t token_id;
    json_int_t attempt; /* the master's number; 0 for the job's own */
    char character_id[96];
    char public_id[32];
    struct delete_s *next, *prev;
} delete_t;

static int flows;
static delete_t *deletes;

static void step_upload(s2a_cameo_t *c);
static void step_poll(s2a_cameo_t *c);
static void step_check(s2a_cameo_t *c);
static void step_public(s2a_cameo_t *c);

int
s2a_cameo_deleting(void)
{
    int n = 0;
    delete_t *d;

    for (d = deletes; d != NULL; d = d->next) {
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Rows
 */

static void
row_written(json_t *reply, void *arg)
{
    char *public_id = arg;
    const char *code = json_string_value(json_object_get(reply, "code"));

    if (reply != NULL
        && (!json_is_true(json_object_get(reply, "ok")) || code != NULL))
    {
        s2a_log(LOG_WARNING, 0, "character %s: the row was not written: %s",
                public_id,
                code != NULL
                    ? code
                    : json_string_value(json_object_get(reply, "error")));
    }
    free(public_id);
}

void
s2a_cameo_row(const char *public_id, json_t *fields)
{
    json_t *msg;
    char *id;

    if (fields == NULL) {
        return;
    }
    msg = json_pack("{s:s, s:s, s:o}", "op", "character_write", "public_id",
                    public_id, "fields", fields);
    id = strdup(public_id);
    if (msg == NULL || id == NULL
        || s2a_worker_call_master(msg, row_written, id) == 0)
    {
        free(id);
    }
    json_decref(msg);
}

/* ---------------------------------------------------------------------
 * The end of a flow
 */

static void
stop_call(s2a_cameo_t *c)
{
    if (c->call != 0) {
        if (c->call_plain) {
            s2a_upstream_cancel(c->call);
        } else {
            s2a_sora_cancel(c->call);
        }
        c->call = 0;
    }
    if (c->timer != NULL) {
        event_del(c->timer);
    }
}

static void
flow_free(s2a_cameo_t *c)
{
    stop_call(c);
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    free(c->video);
    free(c->avatar);
    free(c->profile_url);
    free(c->instruction);
    free(c);
    flows--;
}

/*
 * The flow fails: the row says why, a character already finalized is
 * deleted (nothing may be left half made), and the owner is told.
 */
static void
flow_fail(s2a_cameo_t *c, int status, const char *type, const char *code,
          const char *message)
{
    stop_call(c);
    s2a_log(LOG_INFO, 0, "%s: job %s: character %s failed (%s): %s", c->rid,
            c->job_id, c->info.public_id, code, message);
    if (c->info.character_id[0] != '\0') {
        s2a_cameo_delete(c->token_id, c->info.character_id, c->info.public_id,
                         false, message);
    } else if (c->info.cameo_id[0] != '\0') {
        s2a_cameo_row(
            c->info.public_id,
            json_pack("{s:s, s:s}", "state", "failed", "error", message));
    }
    c->ops->done(c->arg, &c->info, status, type, code, message);
    flow_free(c);
}

static void
flow_succeed(s2a_cameo_t *c)
{
    char msg[400];
    json_t *details;

    stop_call(c);
    snprintf(msg, sizeof(msg), "Character creation completed: %s (@%s)",
             c->info.display_name, c->info.username);
    details = json_pack("{s:s, s:s, s:s, s:s}", "username", c->info.username,
                        "display_name", c->info.display_name, "cameo_id",
                        c->info.cameo_id, "character_id", c->info.character_id);
    c->ops->progress(c->arg, "completed", msg, details);
    json_decref(details);
    c->ops->done(c->arg, &c->info, 200, NULL, NULL, NULL);
    flow_free(c);
}

/* A failed call: Sora's message, or what went wrong on the way. */
static void
fail_call(s2a_cameo_t *c, const char *what, const s2a_sora_result_t *r)
{
    char msg[640];

    if (r->status == 401) {
        snprintf(msg, sizeof(msg), "%s: the account's token was refused: %s",
                 what, r->error_message != NULL ? r->error_message : "");
        flow_fail(c, 502, "upstream_error", "token_invalidated", msg);
        return;
    }
    snprintf(msg, sizeof(msg), "%s: %s", what,
             r->error_message != NULL ? r->error_message : "no answer");
    flow_fail(c, 502, "upstream_error", CODE_FAILED, msg);
}

/* Starts a Sora call of the flow for `step`; fails the flow when it
 * cannot start. */
static void
call_sora(s2a_cameo_t *c, step_t step, s2a_sora_call_t *call,
          s2a_sora_done_pt done)
{
    char at[S2A_SHM_AT_MAX], proxy[256];

    if (!s2a_worker_token_secret(c->token_id, at, proxy)) {
        flow_fail(c, 502, "upstream_error", CODE_FAILED,
                  "the account that makes the character was removed");
        return;
    }
    call->at = at;
    call->proxy = proxy[0] != '\0' ? proxy : NULL;
    c->step = step;
    c->call_plain = false;
    c->call = s2a_sora_start(call, done, c);
    if (c->call == 0) {
        flow_fail(c, 500, "server_error", "internal_error",
                  "a character call could not start");
    }
}

/* ---------------------------------------------------------------------
 * The steps
 */

static void
set_public_done(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;

    c->call = 0;
    if (r->status < 200 || r->status > 299) {
        /* Finalized but not what was asked: it goes (flow_fail). */
        fail_call(c, "Sora did not make the character public", r);
        return;
    }
    s2a_cameo_row(c->info.public_id,
                  json_pack("{s:s}", "visibility", "public"));
    flow_succeed(c);
}

static void
step_public(s2a_cameo_t *c)
{
    s2a_sora_call_t call;
    char path[160];
    json_t *body = json_pack("{s:s}", "visibility", "public");

    c->ops->progress(c->arg, "processing", "Setting character as public...",
                     NULL);
    snprintf(path, sizeof(path), "/project_y/cameos/by_id/%s/update_v2",
             c->info.cameo_id);
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = path;
    call.body = body;
    call_sora(c, ST_PUBLIC, &call, set_public_done);
    json_decref(body);
}

/* {"value":[{"type":"text","value":text}]}, or null. */
static json_t *
wrapped(const char *text)
{
    if (text == NULL || text[0] == '\0') {
        return json_null();
    }
    return json_pack("{s:[{s:s, s:s}]}", "value", "type", "text", "value",
                     text);
}

static void
finalized(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;
    const char *id = json_string_value(
        json_object_get(json_object_get(r->json, "character"), "character_id"));
    char msg[640];

    c->call = 0;
    if (!s2a_sora_ok(r) || id == NULL || id[0] == '\0'
        || strlen(id) >= sizeof(c->info.character_id))
    {
        if (r->error_code != NULL
            && strcmp(r->error_code, "username_taken") == 0
            && c->opts.username[0] != '\0')
        {
            snprintf(msg, sizeof(msg), "the username %s is taken",
                     c->info.username);
            flow_fail(c, 400, "invalid_request_error", "username_taken", msg);
            return;
        }
        if (s2a_sora_ok(r)) {
            flow_fail(c, 502, "upstream_error", CODE_FAILED,
                      "Sora finalized the character without a character id");
            return;
        }
        fail_call(c, "Sora did not finalize the character", r);
        return;
    }
    snprintf(c->info.character_id, sizeof(c->info.character_id), "%s", id);
    s2a_cameo_row(c->info.public_id,
                  json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s}",
                            "state", "ready", "character_id",
                            c->info.character_id, "username", c->info.username,
                            "display_name", c->info.display_name, "profile_url",
                            c->profile_url, "instruction_set", c->instruction,
                            "safety_instruction_set",
                            c->opts.safety_instruction_set[0] != '\0'
                                ? c->opts.safety_instruction_set
                                : NULL,
                            "visibility", "private"));
    c->ops->finalized(c->arg, &c->info);
    if (c->set_public) {
        step_public(c);
    } else {
        flow_succeed(c);
    }
}

static void
step_finalize(s2a_cameo_t *c)
{
    s2a_sora_call_t call;
    json_t *body;

    c->ops->progress(c->arg, "processing", "Finalizing character creation...",
                     NULL);
    body = json_pack(
        "{s:s, s:s, s:s, s:s, s:o, s:o}", "cameo_id", c->info.cameo_id,
        "username", c->info.username, "display_name", c->info.display_name,
        "profile_asset_pointer", c->asset_pointer, "instruction_set",
        wrapped(c->instruction), "safety_instruction_set",
        wrapped(c->opts.safety_instruction_set));
    if (body == NULL) {
        flow_fail(c, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = "/characters/finalize";
    call.body = body;
    call_sora(c, ST_FINALIZE, &call, finalized);
    json_decref(body);
}

static void
avatar_uploaded(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;
    const char *ptr =
        json_string_value(json_object_get(r->json, "asset_pointer"));

    c->call = 0;
    if (!s2a_sora_ok(r) || ptr == NULL || ptr[0] == '\0'
        || strlen(ptr) >= sizeof(c->asset_pointer))
    {
        if (s2a_sora_ok(r)) {
            flow_fail(c, 502, "upstream_error", CODE_FAILED,
                      "Sora returned no asset pointer for the avatar");
            return;
        }
        fail_call(c, "the character's avatar could not be uploaded", r);
        return;
    }
    snprintf(c->asset_pointer, sizeof(c->asset_pointer), "%s", ptr);
    free(c->avatar);
    c->avatar = NULL;
    step_finalize(c);
}

static void
avatar_fetched(const s2a_upstream_resp_t *resp, void *arg)
{
    s2a_cameo_t *c = arg;
    s2a_upstream_part_t parts[2];
    s2a_sora_call_t call;
    char msg[160];

    c->call = 0;
    if (resp->curl_code != 0 || resp->status < 200 || resp->status > 299
        || resp->body_len == 0 || resp->truncated)
    {
        if (resp->curl_code != 0) {
            snprintf(msg, sizeof(msg),
                     "the character's avatar could not be downloaded: %.100s",
                     resp->error);
        } else {
            snprintf(msg, sizeof(msg),
                     "the character's avatar could not be downloaded "
                     "(HTTP %ld, %zu bytes)",
                     resp->status, resp->body_len);
        }
        flow_fail(c, 502, "upstream_error", CODE_FAILED, msg);
        return;
    }
    c->avatar = malloc(resp->body_len);
    if (c->avatar == NULL) {
        flow_fail(c, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    memcpy(c->avatar, resp->body, resp->body_len);
    c->avatar_len = resp->body_len;
    c->ops->progress(c->arg, "processing", "Uploading character avatar...",
                     NULL);
    memset(parts, 0, sizeof(parts));
    parts[0].name = "file";
    parts[0].filename = "profile.webp";
    parts[0].type = "image/webp";
    parts[0].data = c->avatar;
    parts[0].len = c->avatar_len;
    parts[1].name = "use_case";
    parts[1].data = "profile";
    parts[1].len = 7;
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = "/project_y/file/upload";
    call.parts = parts;
    call.nparts = 2;
    call_sora(c, ST_AVATAR_UP, &call, avatar_uploaded);
}

static void
step_avatar(s2a_cameo_t *c)
{
    s2a_upstream_req_t req;
    char msg[400];
    json_t *details;

    snprintf(msg, sizeof(msg), "%s (@%s)", c->info.display_name,
             c->info.username);
    details = json_pack("{s:s, s:s}", "username", c->info.username,
                        "display_name", c->info.display_name);
    c->ops->progress(c->arg, "processing", msg, details);
    json_decref(details);
    if (c->profile_url == NULL) {
        flow_fail(c, 502, "upstream_error", CODE_FAILED,
                  "Sora gave no avatar (profile_asset_url) for the character");
        return;
    }
    c->ops->progress(c->arg, "processing", "Downloading character avatar...",
                     NULL);
    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = c->profile_url;
    req.timeout_ms = AVATAR_FETCH_MS;
    req.max_response = AVATAR_MAX_BYTES;
    req.follow_redirects = true;
    c->step = ST_AVATAR;
    c->call_plain = true;
    c->call = s2a_upstream_start(&req, avatar_fetched, c);
    if (c->call == 0) {
        flow_fail(c, 500, "server_error", "internal_error",
                  "the avatar download could not start");
    }
}

/* A candidate: the hint's name and 3 random digits, or (the retries
 * spent) the last 6 digits of the time. */
static void
next_candidate(s2a_cameo_t *c)
{
    uint8_t r[2];
    unsigned n;

    if (c->name_tries > NAME_RETRIES) {
        snprintf(c->info.username, sizeof(c->info.username), "%s%06lld",
                 c->base_name, (long long) (s2a_now() % 1000000));
        return;
    }
    s2a_random_bytes(r, sizeof(r));
    n = 100u + ((unsigned) r[0] << 8 | r[1]) % 900u;
    snprintf(c->info.username, sizeof(c->info.username), "%s%u", c->base_name,
             n);
}

static void
checked(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;
    json_t *avail = json_object_get(r->json, "available");
    char msg[160];

    c->call = 0;
    if (!s2a_sora_ok(r) || !json_is_boolean(avail)) {
        fail_call(c, "the username check failed", r);
        return;
    }
    if (json_is_true(avail)) {
        step_avatar(c);
        return;
    }
    if (c->opts.username[0] != '\0') {
        snprintf(msg, sizeof(msg), "the username %s is taken",
                 c->info.username);
        flow_fail(c, 400, "invalid_request_error", "username_taken", msg);
        return;
    }
    c->name_tries++;
    next_candidate(c);
    if (c->name_tries > NAME_RETRIES) {
        step_avatar(c); /* as the reference: taken on time alone, unchecked */
        return;
    }
    step_check(c);
}

static void
step_check(s2a_cameo_t *c)
{
    s2a_sora_call_t call;
    json_t *body = json_pack("{s:s}", "username", c->info.username);

    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = "/project_y/profile/username/check";
    call.body = body;
    call_sora(c, ST_CHECK, &call, checked);
    json_decref(body);
}

/* The hint's part after its last '.', in Sora's alphabet, short enough
 * for a 6-digit suffix. */
static void
base_from_hint(const char *hint, char *out, size_t outlen)
{
    const char *dot = hint != NULL ? strrchr(hint, '.') : NULL;
    const char *p = dot != NULL ? dot + 1 : hint != NULL ? hint : "";
    size_t o = 0;

    for (; *p != '\0' && o + 1 < outlen && o < 24; p++) {
        char ch = (char) tolower((unsigned char) *p);
        if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
            || (o > 0 && ch == '_'))
        {
            out[o++] = ch;
        }
    }
    out[o] = '\0';
    if (o == 0) {
        snprintf(out, outlen, "character");
    }
}

/* The cameo is ready: the names, then the avatar. */
static void
cameo_ready(s2a_cameo_t *c, json_t *st)
{
    const char *hint = json_string_value(json_object_get(st, "username_hint"));
    const char *dn =
        json_string_value(json_object_get(st, "display_name_hint"));
    const char *url =
        json_string_value(json_object_get(st, "profile_asset_url"));
    const char *ins =
        json_string_value(json_object_get(st, "instruction_set_hint"));

    if (ins == NULL) {
        ins = json_string_value(json_object_get(st, "instruction_set"));
    }
    free(c->profile_url);
    c->profile_url = url != NULL && url[0] != '\0' ? strdup(url) : NULL;
    free(c->instruction);
    c->instruction = c->opts.instruction_set[0] != '\0'
        ? strdup(c->opts.instruction_set)
        : ins != NULL && ins[0] != '\0' ? strdup(ins)
                                        : NULL;
    snprintf(c->info.display_name, sizeof(c->info.display_name), "%s",
             c->opts.display_name[0] != '\0'   ? c->opts.display_name
                 : dn != NULL && dn[0] != '\0' ? dn
                                               : "Character");
    c->ops->progress(c->arg, "processing", "Checking username availability...",
                     NULL);
    if (c->opts.username[0] != '\0') {
        snprintf(c->info.username, sizeof(c->info.username), "%s",
                 c->opts.username);
    } else {
        base_from_hint(hint, c->base_name, sizeof(c->base_name));
        next_candidate(c);
    }
    step_check(c);
}

static void
arm_poll(s2a_cameo_t *c)
{
    int ms = s2a_worker.conf->poll_interval_ms;
    struct timeval tv = { (time_t) (ms / 1000),
                          (suseconds_t) (ms % 1000) * 1000 };

    c->step = ST_WAIT;
    evtimer_add(c->timer, &tv);
}

static void
polled(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;
    const char *status = json_string_value(json_object_get(r->json, "status"));
    const char *smsg =
        json_string_value(json_object_get(r->json, "status_message"));
    char msg[640];

    c->call = 0;
    if (!s2a_sora_ok(r)) {
        if (r->status == 401) {
            fail_call(c, "Sora refused the cameo status", r);
            return;
        }
        if (++c->poll_errors >= POLL_ERRORS_MAX) {
            snprintf(msg, sizeof(msg),
                     "the cameo status failed %d times in a row: %.400s",
                     c->poll_errors,
                     r->error_message != NULL ? r->error_message : "");
            flow_fail(c, 502, "upstream_error", CODE_FAILED, msg);
            return;
        }
        arm_poll(c);
        return;
    }
    c->poll_errors = 0;
    if (status != NULL
        && (strcasecmp(status, "failed") == 0
            || strcasecmp(status, "rejected") == 0
            || strcasecmp(status, "error") == 0))
    {
        /* Sora's own words, as a content-policy refusal keeps them. */
        snprintf(msg, sizeof(msg), "Sora %s the character: %.500s",
                 strcasecmp(status, "rejected") == 0 ? "rejected" : "failed",
                 smsg != NULL && smsg[0] != '\0' ? smsg : status);
        flow_fail(c, 502, "upstream_error", CODE_FAILED, msg);
        return;
    }
    if ((smsg != NULL && strcmp(smsg, "Completed") == 0)
        || (status != NULL && strcmp(status, "finalized") == 0))
    {
        cameo_ready(c, r->json);
        return;
    }
    arm_poll(c);
}

static void
step_poll(s2a_cameo_t *c)
{
    s2a_sora_call_t call;
    char path[160];

    snprintf(path, sizeof(path), "/project_y/cameos/in_progress/%s",
             c->info.cameo_id);
    memset(&call, 0, sizeof(call));
    call.method = "GET";
    call.path = path;
    call_sora(c, ST_POLL, &call, polled);
}

static void
uploaded(const s2a_sora_result_t *r, void *arg)
{
    s2a_cameo_t *c = arg;
    const char *id = json_string_value(json_object_get(r->json, "id"));
    json_t *details, *row;

    c->call = 0;
    if (!s2a_sora_ok(r) || id == NULL || id[0] == '\0'
        || strlen(id) >= sizeof(c->info.cameo_id))
    {
        if (s2a_sora_ok(r)) {
            flow_fail(c, 502, "upstream_error", CODE_FAILED,
                      "Sora returned no cameo id for the video");
            return;
        }
        fail_call(c, "Sora refused the character video", r);
        return;
    }
    snprintf(c->info.cameo_id, sizeof(c->info.cameo_id), "%s", id);
    free(c->video);
    c->video = NULL;
    row = json_pack("{s:I, s:s, s:s, s:I, s:s, s:b, s:s}", "token_id",
                    (json_int_t) c->token_id, "cameo_id", c->info.cameo_id,
                    "state", "processing", "owner", (json_int_t) c->owner,
                    "job_id", c->job_id, "temporary", c->temporary,
                    "visibility", "private");
    if (row != NULL && c->opts.display_name[0] != '\0') {
        json_object_set_new(row, "display_name",
                            json_string(c->opts.display_name));
    }
    s2a_cameo_row(c->info.public_id, row);
    c->ops->uploaded(c->arg, &c->info);
    details = json_pack("{s:s}", "cameo_id", c->info.cameo_id);
    c->ops->progress(c->arg, "processing",
                     "Processing video to extract character...", details);
    json_decref(details);
    arm_poll(c);
}

static void
step_upload(s2a_cameo_t *c)
{
    s2a_upstream_part_t parts[2];
    s2a_sora_call_t call;
    char file[16];

    c->ops->progress(c->arg, "processing", "Uploading video file...", NULL);
    snprintf(file, sizeof(file), "video.%s", c->vext);
    memset(parts, 0, sizeof(parts));
    parts[0].name = "file";
    parts[0].filename = file;
    parts[0].type = c->vtype;
    parts[0].data = c->video;
    parts[0].len = c->video_len;
    parts[1].name = "timestamps";
    parts[1].data = c->opts.timestamps;
    parts[1].len = strlen(c->opts.timestamps);
    memset(&call, 0, sizeof(call));
    call.method = "POST";
    call.path = "/characters/upload";
    call.parts = parts;
    call.nparts = 2;
    call_sora(c, ST_UPLOAD, &call, uploaded);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_cameo_t *c = arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (c->step == ST_KICK) {
        if (c->publish_only) {
            step_public(c);
        } else if (c->info.cameo_id[0] != '\0') {
            step_poll(c); /* resumed: Sora has the video */
        } else {
            c->ops->progress(c->arg, "started", "**Character Creation Begins**",
                             NULL);
            step_upload(c);
        }
        return;
    }
    step_poll(c);
}

static s2a_cameo_t *
flow_new(int64_t token_id, const s2a_cameo_ops_t *ops, void *arg)
{
    s2a_cameo_t *c = calloc(1, sizeof(*c));
    struct timeval now = { 0, 0 };

    if (c == NULL) {
        return NULL;
    }
    flows++;
    c->ops = ops;
    c->arg = arg;
    c->token_id = token_id;
    c->timer = evtimer_new(s2a_worker.base, timer_cb, c);
    if (c->timer == NULL) {
        flow_free(c);
        return NULL;
    }
    c->step = ST_KICK;
    evtimer_add(c->timer, &now);
    return c;
}

s2a_cameo_t *
s2a_cameo_start(const s2a_cameo_req_t *req, const s2a_cameo_ops_t *ops,
                void *arg)
{
    s2a_cameo_t *c;
    uint8_t r[12];

    if (req->cameo_id == NULL && req->video == NULL) {
        return NULL;
    }
    c = flow_new(req->token_id, ops, arg);
    if (c == NULL) {
        return NULL;
    }
    snprintf(c->job_id, sizeof(c->job_id), "%s", req->job_id);
    snprintf(c->rid, sizeof(c->rid), "%s", req->rid);
    c->owner = req->owner;
    c->opts = *req->opts;
    c->set_public = req->set_public;
    c->temporary = req->temporary;
    if (req->cameo_id != NULL) {
        snprintf(c->info.cameo_id, sizeof(c->info.cameo_id), "%s",
                 req->cameo_id);
        snprintf(c->info.public_id, sizeof(c->info.public_id), "%s",
                 req->public_id != NULL ? req->public_id : "");
        return c;
    }
    s2a_random_bytes(r, sizeof(r));
    memcpy(c->info.public_id, "char_", 5);
    s2a_hex(r, sizeof(r), c->info.public_id + 5);
    snprintf(c->vtype, sizeof(c->vtype), "%s", req->video_type);
    snprintf(c->vext, sizeof(c->vext), "%s", req->video_ext);
    c->video = malloc(req->video_len);
    if (c->video == NULL) {
        flow_free(c);
        return NULL;
    }
    memcpy(c->video, req->video, req->video_len);
    c->video_len = req->video_len;
    return c;
}

s2a_cameo_t *
s2a_cameo_publish(int64_t token_id, const s2a_cameo_info_t *info,
                  const s2a_cameo_ops_t *ops, void *arg)
{
    s2a_cameo_t *c = flow_new(token_id, ops, arg);

    if (c != NULL) {
        c->info = *info;
        c->publish_only = true;
        c->set_public = true;
        snprintf(c->job_id, sizeof(c->job_id), "-");
        snprintf(c->rid, sizeof(c->rid), "-");
    }
    return c;
}

void
s2a_cameo_cancel(s2a_cameo_t *c, const char *why)
{
    stop_call(c);
    if (c->info.cameo_id[0] != '\0' && c->info.character_id[0] == '\0'
        && why != NULL)
    {
        s2a_cameo_row(c->info.public_id,
                      json_pack("{s:s, s:s}", "state", "failed", "error", why));
    }
    flow_free(c);
}

/* ---------------------------------------------------------------------
 * Deletes that outlive their job
 */

static void
delete_free(delete_t *d)
{
    if (d->prev != NULL) {
        d->prev->next = d->next;
    } else {
        deletes = d->next;
    }
    if (d->next != NULL) {
        d->next->prev = d->prev;
    }
    free(d);
}

/* The outcome goes to the master, which decides the row (orphans.c). */
static void
report(delete_t *d, bool ok, const char *error)
{
    json_t *msg =
        json_pack("{s:s, s:s, s:I, s:b}", "op", "character_delete_result",
                  "public_id", d->public_id, "attempt", d->attempt, "ok", ok);

    if (msg != NULL && error != NULL) {
        json_object_set_new(msg, "error", json_string(error));
    }
    if (msg != NULL) {
        s2a_worker_notify_master(msg);
    }
    json_decref(msg);
    delete_free(d);
}

static void
deleted(const s2a_sora_result_t *r, void *arg)
{
    delete_t *d = arg;
    char msg[400];

    d->call = 0;
    /* E27: 200, 204 and 404 all mean Sora no longer has it. */
    if ((r->status >= 200 && r->status <= 299) || r->status == 404) {
        s2a_log(LOG_INFO, 0, "character %s (%s) deleted upstream", d->public_id,
                d->character_id);
        report(d, true, NULL);
        return;
    }
    if (r->error_message != NULL) {
        snprintf(msg, sizeof(msg), "%.360s", r->error_message);
    } else if (r->status > 0) {
        snprintf(msg, sizeof(msg), "HTTP %ld", r->status);
    } else {
        snprintf(msg, sizeof(msg), "no answer");
    }
    s2a_log(LOG_WARNING, 0, "character %s (%s): the upstream delete failed: %s",
            d->public_id, d->character_id, msg);
    report(d, false, msg);
}

/* Starts the delete of `d` (listed already); reports when it cannot. */
static void
delete_start(delete_t *d)
{
    char at[S2A_SHM_AT_MAX], proxy[256], path[160];
    s2a_sora_call_t call;

    if (!s2a_worker_token_secret(d->token_id, at, proxy)) {
        report(d, false, "its token is not in the pool");
        return;
    }
    snprintf(path, sizeof(path), "/project_y/characters/%s", d->character_id);
    memset(&call, 0, sizeof(call));
    call.method = "DELETE";
    call.path = path;
    call.at = at;
    call.proxy = proxy[0] != '\0' ? proxy : NULL;
    d->call = s2a_sora_start(&call, deleted, d);
    if (d->call == 0) {
        report(d, false, "the upstream delete could not start");
    }
}

static delete_t *
delete_new(int64_t token_id, const char *character_id, const char *public_id,
           json_int_t attempt)
{
    delete_t *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        return NULL;
    }
    d->token_id = token_id;
    d->attempt = attempt;
    snprintf(d->character_id, sizeof(d->character_id), "%s", character_id);
    snprintf(d->public_id, sizeof(d->public_id), "%s", public_id);
    d->next = deletes;
    if (deletes != NULL) {
        deletes->prev = d;
    }
    deletes = d;
    return d;
}

void
s2a_cameo_delete(int64_t token_id, const char *character_id,
                 const char *public_id, bool temporary, const char *why)
{
    char reason[640];
    json_t *mark;
    size_t n;
    delete_t *d;

    /* The decision is on the row first (`deleting`, this worker's): the
     * master finishes it if this attempt fails or never answers. */
    mark = json_pack("{s:s}", "state", "deleting");
    if (mark != NULL && !temporary && why != NULL && why[0] != '\0') {
        /* Within the column's bound, cut between UTF-8 characters. */
        n = strlen(why) < sizeof(reason) ? strlen(why) : sizeof(reason) - 1;
        while (n > 0 && n < strlen(why)
               && ((unsigned char) why[n] & 0xC0) == 0x80) {
            n--;
        }
        memcpy(reason, why, n);
        reason[n] = '\0';
        json_object_set_new(mark, "error", json_string(reason));
    }
    s2a_cameo_row(public_id, mark);
    d = delete_new(token_id, character_id, public_id, 0);
    if (d != NULL) {
        delete_start(d);
    }
}

/* "character_purge": a delete the master hands out (master/orphans.c). */
void
s2a_op_character_purge(void *from, json_t *msg)
{
    const char *public_id =
        json_string_value(json_object_get(msg, "public_id"));
    const char *character_id =
        json_string_value(json_object_get(msg, "character_id"));
    delete_t *d;

    S2A_UNUSED(from);
    if (strlen(public_id) >= sizeof(d->public_id)
        || strlen(character_id) >= sizeof(d->character_id))
    {
        s2a_log(LOG_WARNING, 0, "character_purge: ids too long, ignored");
        return;
    }
    d = delete_new(json_integer_value(json_object_get(msg, "token_id")),
                   character_id, public_id,
                   json_integer_value(json_object_get(msg, "attempt")));
    if (d != NULL) {
        s2a_log(LOG_INFO, 0,
                "character %s (%s): upstream delete, attempt %lld (sweep)",
                public_id, character_id, (long long) d->attempt);
        delete_start(d);
    }
}

void
s2a_cameo_cleanup(void)
{
    while (deletes != NULL) {
        if (deletes->call != 0) {
            s2a_sora_cancel(deletes->call);
        }
        /* The row stays `deleting`: the master hands it out again. */
        s2a_log(LOG_WARNING, 0,
                "character %s (%s): the worker exits before its upstream "
                "delete answered; the master retries it",
                deletes->public_id, deletes->character_id);
        delete_free(deletes);
    }
}
