/*
 * characters.c: character creation over HTTP (docs/characters.md,
 * "Creation"). Both create routes read the same inputs into one
 * character-only job and answer when it ends; the official shape names
 * the display name `name` and answers {id, object, name, created_at}.
 */
#include "worker/characters.h"
#include "worker/apikeys.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/models.h"
#include "common/util.h"
#include "worker/charopts.h"
#include "worker/chatreq.h"
#include "worker/context.h"
#include "worker/gen.h"
#include "worker/mediain.h"
#include "worker/formreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAR_FIELD_MAX  (S2A_CHAROPTS_INSTR_MAX + 1024)
#define CHAR_DEFAULT    "sora-video-10s"
#define VIDEO_REQUIRED  "video is required for character creation"
#define SHUTDOWN_REASON "the server is shutting down; the creation was stopped"

typedef struct creation_s {
    s2a_req_t *req;
    s2a_gen_t *gen;
    bool official; /* POST /v1/videos/characters */
    const s2a_model_t *model;
    struct creation_s *prev, *next;
} creation_t;

typedef struct params_s {
    const s2a_model_t *model;
    s2a_media_in_t video;
    const unsigned char *file; /* a `video` file part */
    size_t file_len;
    s2a_charopts_t opts;
} params_t;

static creation_t *running;

static void start_lookup(s2a_req_t *req, const char *id);

static void
creation_free(creation_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (running == c) {
        running = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    free(c);
}

/* ---------------------------------------------------------------------
 * The answer
 */

static void
reply_character(creation_t *c, json_t *result)
{
    const char *public_id = s2a_gen_character(c->gen);
    json_t *body = json_pack(
        "{s:s, s:s, s:I, s:s, s:{s:O, s:O, s:O, s:O, s:s}}", "id", public_id,
        "object", "character", "created", (json_int_t) s2a_now(), "model",
        c->model->id, "data", "cameo_id", json_object_get(result, "cameo_id"),
        "username", json_object_get(result, "username"), "display_name",
        json_object_get(result, "display_name"), "character_id",
        json_object_get(result, "character_id"), "message",
        "Character creation completed");

    if (body == NULL) {
        s2a_http_reply_error(c->req, 500, "server_error", "internal_error",
                             NULL, "out of memory");
        return;
    }
    s2a_http_reply_json(c->req, 200, body);
    json_decref(body);
}

static void
on_done(void *arg, json_t *result, int status, const char *type,
        const char *code, const char *message)
{
    creation_t *c = arg;
    const char *rtype = json_string_value(json_object_get(result, "type"));

    c->req->on_gone = NULL;
    if (rtype != NULL && strcmp(rtype, "character") == 0 && c->official) {
        /* The official object is the row's, as a later GET reads it. */
        start_lookup(c->req, s2a_gen_character(c->gen));
    } else if (rtype != NULL && strcmp(rtype, "character") == 0) {
        reply_character(c, result);
    } else if (result != NULL) {
        /* An error result (a refusal): its own words. */
        s2a_http_reply_error(
            c->req, 400, "invalid_request_error",
            json_string_value(
                json_object_get(json_object_get(result, "data"), "code")),
            NULL, "%s", json_string_value(json_object_get(result, "error")));
    } else {
        s2a_http_reply_error(c->req, status, type, code, NULL, "%s", message);
    }
    c->gen = NULL;
    creation_free(c);
}

static const s2a_gen_ops_t creation_ops = { s2a_gen_progress_ignored, on_done,
                                            NULL };

static void
on_gone(s2a_req_t *req, void *arg)
{
    creation_t *c = arg;

    S2A_UNUSED(req);
    if (c->gen != NULL) {
        s2a_gen_cancel(c->gen, "the client went away", 499);
    }
    creation_free(c);
}

int
s2a_characters_shutdown(void)
{
    creation_t *c;
    int n = 0;

    while ((c = running) != NULL) {
        if (c->gen != NULL) {
            s2a_gen_cancel(c->gen, SHUTDOWN_REASON, 503);
        }
        c->req->on_gone = NULL;
        s2a_http_reply_error(c->req, 503, "server_error", "server_shutdown",
                             NULL, "%s", SHUTDOWN_REASON);
        creation_free(c);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Reading a create
 */

#define BAD(p, c, ...) \
    do { \
        s2a_http_reply_error(req, 400, "invalid_request_error", (c), (p), \
                             __VA_ARGS__); \
        return S2A_ERROR; \
    } while (0)

/* The video given as text: an http(s) URL, a data URL or base64. */
static int
read_video_text(s2a_req_t *req, const char *s, params_t *p)
{
    char err[160];

    switch (s2a_mediain_text(s, S2A_MEDIAIN_VIDEO,
                             S2A_MEDIAIN_F_URL_LIMIT | S2A_MEDIAIN_F_TYPE,
                             &p->video))
    {
    case S2A_MEDIAIN_OK: break;
    case S2A_MEDIAIN_URL_TOO_LONG:
        BAD("video", "invalid_video", "the video URL is too long");
    case S2A_MEDIAIN_NOT_BASE64_URL:
        BAD("video", "invalid_video",
            "the video data URL must be base64 (data:<type>;base64,...)");
    case S2A_MEDIAIN_WRONG_TYPE:
        BAD("video", "invalid_video", "a data URL of type %.60s is not a video",
            p->video.mime);
    case S2A_MEDIAIN_BAD_BASE64:
        BAD("video", "invalid_video",
            "the video is neither an http(s) URL nor valid base64");
    }
    if (s2a_gen_video_check(&p->video, err, sizeof(err)) != S2A_OK) {
        BAD("video", "invalid_video", "%s", err);
    }
    return S2A_OK;
}

/*
 * Every field. `official`: the Videos API's names (`name` is the display
 * name; no model). The options are checked by charopts.c, from the
 * members that are options.
 */
static int
read_params(s2a_req_t *req, json_t *body, bool official, params_t *p)
{
    static const char *const names[] = { "timestamps", "username",
                                         "display_name", "instruction_set",
                                         "safety_instruction_set" };
    json_t *jm = json_object_get(body, "model"), *jv, *opts, *v;
    char err[512], param[64];
    const char *model;
    size_t i;
    int rc;

    p->model = s2a_model_find(CHAR_DEFAULT);
    if (!official && jm != NULL && !json_is_null(jm)) {
        model = json_string_value(jm);
        if (model == NULL || (p->model = s2a_model_find(model)) == NULL) {
            BAD("model", "model_not_found",
                "The model '%.100s' does not exist; GET /v1/models lists the "
                "models",
                model != NULL ? model : "(not a string)");
        }
        if (p->model->kind != S2A_KIND_VIDEO) {
            BAD("model", "invalid_value",
                "Model %.100s is not a video model: a character is made by a "
                "video model",
                model);
        }
    }
    if (p->file == NULL) {
        jv = json_object_get(body, "video");
        if (jv == NULL || json_is_null(jv)) {
            jv = json_object_get(body, "video_base64"); /* the reference's */
        }
        if (json_is_object(jv)) {
            jv = json_object_get(jv, "url"); /* {"video": {"url": ...}} */
        }
        if (jv == NULL || json_is_null(jv)
            || (json_is_string(jv) && json_string_length(jv) == 0))
        {
            BAD("video", "invalid_value", VIDEO_REQUIRED);
        }
        if (!json_is_string(jv)
            || strlen(json_string_value(jv)) != json_string_length(jv))
        {
            BAD("video", "invalid_video",
                "video must be a file, an http(s) URL, a data URL or base64");
        }
        if (read_video_text(req, json_string_value(jv), p) != S2A_OK) {
            return S2A_ERROR;
        }
    }
    opts = json_object();
    if (opts == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return S2A_ERROR;
    }
    for (i = 0; i < S2A_NELEMS(names); i++) {
        v = json_object_get(body, names[i]);
        /* An empty form field is one not given. */
        if (v != NULL && !(json_is_string(v) && json_string_length(v) == 0)) {
            json_object_set(opts, names[i], v);
        }
    }
    if (official && (v = json_object_get(body, "name")) != NULL) {
        json_object_set(opts, "display_name", v);
    }
    rc = s2a_charopts_parse(opts, "", &p->opts, err, sizeof(err), param,
                            sizeof(param));
    json_decref(opts);
    if (rc != S2A_OK) {
        if (official && strcmp(param, "display_name") == 0) {
            snprintf(param, sizeof(param), "name");
        }
        BAD(param, "invalid_value", "%s", err);
    }
    return S2A_OK;
}

/* Starts the job the request waits for; answers on failure. */
static void
start_job(s2a_req_t *req, params_t *p, bool official)
{
    s2a_chatreq_t creq;
    s2a_keyticket_t ticket;
    char *file_b64 = NULL;
    creation_t *c;
    s2a_gen_t *g;

    if (p->file != NULL
        && s2a_mediain_sniff(p->file, p->file_len, S2A_MEDIAIN_VIDEO, NULL)
            == NULL)
    {
        s2a_http_reply_error(
            req, 400, "invalid_request_error", "invalid_video", "video",
            p->file_len > S2A_MEDIAIN_VIDEO_MAX
                ? "the video is larger than 20 MiB"
                : "the video must be an MP4, QuickTime (.mov) or WebM file");
        return;
    }
    if (p->file != NULL && p->file_len > S2A_MEDIAIN_VIDEO_MAX) {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_video",
                             "video", "the video is larger than 20 MiB");
        return;
    }
    /* The key's model allow-list, quota and concurrency. */
    if (!s2a_apikeys_admit(req, p->model, 1, &ticket)) {
        return;
    }
    memset(&creq, 0, sizeof(creq));
    creq.model = p->model;
    creq.mode = S2A_MODE_CHARACTER;
    creq.prompt = (char *) "";
    creq.video = p->video;
    creq.charopts = &p->opts;
    creq.owner = req->owner;
    if (p->file != NULL) {
        file_b64 = s2a_base64_encode(p->file, p->file_len);
        if (file_b64 == NULL) {
            goto oom;
        }
        creq.video.base64 = file_b64;
        creq.video.url = NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        goto oom;
    }
    c->req = req;
    c->official = official;
    c->model = p->model;
    c->next = running;
    if (running != NULL) {
        running->prev = c;
    }
    running = c;
    req->on_gone = on_gone;
    req->gone_arg = c;
    g = s2a_gen_start(&creq, req->rid, s2a_req_header(req, "Host"),
                      &creation_ops, c);
    if (g == NULL) {
        req->on_gone = NULL;
        creation_free(c);
        goto oom;
    }
    s2a_gen_set_key(g, &ticket);
    c->gen = g;
    free(file_b64);
    return;
oom:
    s2a_apikeys_ticket_release(&ticket);
    free(file_b64);
    s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                         "out of memory");
}

static void
create(s2a_req_t *req, bool official)
{
    static const char *const files[] = { "video", NULL };
    static const s2a_formreq_spec_t form = {
        files,           NULL,
        "invalid_video", "only one video is accepted",
        "invalid_video", "the uploaded video is empty",
        CHAR_FIELD_MAX
    };
    params_t *p = calloc(1, sizeof(*p));
    json_t *body;

    if (p == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    body = s2a_formreq_read(req, &form, &p->file, &p->file_len);
    if (body != NULL && read_params(req, body, official, p) == S2A_OK) {
        start_job(req, p, official);
    }
    json_decref(body);
    free(p);
}

void
s2a_characters_create(s2a_req_t *req)
{
    create(req, false);
}

void
s2a_videos_characters_create(s2a_req_t *req)
{
    create(req, true);
}

/* ---------------------------------------------------------------------
 * GET /v1/videos/characters/{id}: the caller's own character
 */

typedef struct lookup_s {
    s2a_req_t *req;
    uint64_t call;
    char id[40];
} lookup_t;

static void
lookup_gone(s2a_req_t *req, void *arg)
{
    lookup_t *l = arg;

    S2A_UNUSED(req);
    if (l->call != 0) {
        s2a_worker_call_cancel(l->call);
    }
    free(l);
}

static void
not_found(s2a_req_t *req, const char *id)
{
    s2a_http_reply_error(req, 404, "invalid_request_error", "not_found", NULL,
                         "Character %.64s not found", id);
}

static void
looked_up(json_t *reply, void *arg)
{
    lookup_t *l = arg;
    json_t *row = json_object_get(reply, "row"), *body;
    const char *state = json_string_value(json_object_get(row, "state"));

    l->req->on_gone = NULL;
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        s2a_http_reply_error(l->req, s2a_worker_failure_status(reply, 500),
                             "server_error", "internal_error", NULL,
                             "the character could not be read");
    } else if (!json_is_object(row) || state == NULL
               || (strcmp(state, "ready") != 0
                   && strcmp(state, "processing") != 0))
    {
        not_found(l->req, l->id);
    } else {
        body = json_pack("{s:O, s:s, s:O, s:O, s:O}", "id",
                         json_object_get(row, "id"), "object", "character",
                         "name", json_object_get(row, "display_name"),
                         "created_at", json_object_get(row, "created_at"),
                         "username", json_object_get(row, "username"));
        if (body == NULL) {
            s2a_http_reply_error(l->req, 500, "server_error", "internal_error",
                                 NULL, "out of memory");
        } else {
            s2a_http_reply_json(l->req, 200, body);
            json_decref(body);
        }
    }
    free(l);
}

void
s2a_videos_characters_get(s2a_req_t *req)
{
    const char *id = req->path_tail != NULL ? req->path_tail : "";
    size_t i;

    /* char_ and 24 lower-case hex digits, as every row's id. */
    for (i = 5; strncmp(id, "char_", 5) == 0 && id[i] != '\0'; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
        {
            break;
        }
    }
    if (strncmp(id, "char_", 5) != 0 || i != 29 || id[i] != '\0') {
        not_found(req, id);
        return;
    }
    start_lookup(req, id);
}

/* Answers the official object of the caller's row `id` (or 404). */
static void
start_lookup(s2a_req_t *req, const char *id)
{
    lookup_t *l;
    json_t *msg;

    l = calloc(1, sizeof(*l));
    msg = json_pack("{s:s, s:s, s:I}", "op", "character_get", "public_id", id,
                    "owner", (json_int_t) req->owner);
    if (l == NULL || msg == NULL) {
        free(l);
        json_decref(msg);
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    l->req = req;
    snprintf(l->id, sizeof(l->id), "%s", id);
    req->on_gone = lookup_gone;
    req->gone_arg = l;
    l->call = s2a_worker_call_master(msg, looked_up, l);
    json_decref(msg);
    if (l->call == 0) {
        req->on_gone = NULL;
        free(l);
        s2a_http_reply_error(req, 503, "server_error", "internal_error", NULL,
                             "the master is unavailable");
    }
}
