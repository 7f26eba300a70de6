/*
 * videos.c: the OpenAI Videos API (docs/videos.md): POST /v1/videos,
 * GET /v1/videos, GET and DELETE /v1/videos/{id},
 * GET /v1/videos/{id}/content and POST /v1/videos/{id}/remix (a remix
 * job on a fresh post of the finished video's draft).
 *
 * A create is one generation job (gen.c). Synchronous, the request owns
 * the job until it ends and answers with the finished Video object (a
 * client that leaves cancels it, as in chat). Asynchronous, it answers
 * with the queued object once the job's first row is committed (so the
 * id it returns exists) and detaches the job, which runs on without a
 * client: its task row is the record, and what every later read is
 * built from, through the master (one round trip per read). Reads see
 * the rows of the caller's API key only (its `owner`).
 */
#include "worker/videos.h"
#include "worker/apikeys.h"
#include "common/crypto.h"
#include "common/jobtab.h"
#include "common/log.h"
#include "common/models.h"
#include "common/shm.h"
#include "common/util.h"
#include "worker/chatreq.h"
#include "worker/context.h"
#include "worker/gen.h"
#include "worker/media.h"
#include "worker/mediacache.h"
#include "worker/formreq.h"
#include "worker/proxy.h"
#include "worker/signedurl.h"
#include "worker/sora.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define VIDEOS_FIELD_MAX S2A_CHATREQ_MAX_PROMPT

/* Official sizes and the orientation each maps to. */
static const struct {
    const char *size;
    s2a_orientation_t orientation;
} video_sizes[] = {
    { "720x1280", S2A_ORIENT_PORTRAIT },
    { "1024x1792", S2A_ORIENT_PORTRAIT },
    { "1080x1920", S2A_ORIENT_PORTRAIT },
    { "1280x720", S2A_ORIENT_LANDSCAPE },
    { "1792x1024", S2A_ORIENT_LANDSCAPE },
    { "1920x1080", S2A_ORIENT_LANDSCAPE },
    { "720x720", S2A_ORIENT_SQUARE },
    { "1024x1024", S2A_ORIENT_SQUARE },
    { "1080x1080", S2A_ORIENT_SQUARE },
};

/* Official durations and the upstream duration each becomes. */
static const struct {
    const char *seconds;
    int upstream;
} video_seconds[] = {
    { "4", 10 },  { "8", 10 },  { "10", 10 }, { "12", 10 },
    { "15", 15 }, { "16", 15 }, { "20", 15 },
};

/* Official model ids: orientation from size, async unless asked. */
static const char *const video_aliases[] = { "sora-2", "sora-2-pro" };

/* What a create asks for, borrowed from its body. */
typedef struct videos_params_s {
    const s2a_model_t *model;
    const char *alias; /* the official id asked for, or NULL */
    const char *prompt;
    const char *size; /* as asked, or NULL */
    bool async;
    s2a_media_in_t image;
    const unsigned char *file; /* an uploaded input_reference part */
    size_t file_len;
    char style_id[64];
    char remix_id[40];
    const char *remixed_from; /* the source video of a remix, or NULL */
} videos_params_t;

/* A create whose job runs (sync), or whose row is not committed yet
 * (async). */
typedef struct videos_s {
    s2a_req_t *req;
    s2a_gen_t *gen;
    bool async;                   /* answered once the row is committed */
    json_t *video;                /* the object, completed at the end */
    struct videos_s *prev, *next; /* running requests of this worker */
} videos_t;

/* A remix of a finished video: its row, then perhaps its post. */
typedef struct videos_remix_s {
    s2a_req_t *req;
    uint64_t call;   /* the master call, then the publish call */
    bool publishing; /* `call` is a Sora call */
    char *prompt;
    bool async_set; /* the request chose the answer mode */
    bool async;
    char id[32];
    char size[16];  /* the source's, as reported */
    char model[64]; /* the source's upstream model */
    char alias[16]; /* the source's official model id, or "" */
} videos_remix_t;

/* A read waiting for the master. */
typedef enum {
    CALL_GET = 0,
    CALL_CONTENT,     /* variant=video */
    CALL_THUMBNAIL,   /* variant=thumbnail */
    CALL_SPRITESHEET, /* variant=spritesheet */
    CALL_LIST,
    CALL_DELETE
} call_kind_t;

typedef struct videos_call_s {
    s2a_req_t *req;
    uint64_t call;
    call_kind_t kind;
} videos_call_t;

static videos_t *running;

/* Where the last retrieve was answered from (s2a_videos_last_source). */
static const char *last_source;
#ifdef S2A_TEST_HOOKS
static int bypass; /* retrieves still to send to the master */
#endif

/* ---------------------------------------------------------------------
 * The Video object
 */

/* The orientation's official size, for rows that did not say. */
static const char *
orientation_size(s2a_orientation_t o)
{
    return o == S2A_ORIENT_PORTRAIT ? "720x1280" : "1280x720";
}

/*
 * The cached file name behind `url` when it is one of the cache's own
 * URLs (".../tmp/<name>"), else NULL. Points into `url`.
 */
static const char *
cached_name(const char *url)
{
    const char *slash = url != NULL ? strrchr(url, '/') : NULL;

    if (slash == NULL || slash - url < 4 || strncmp(slash - 4, "/tmp", 4) != 0
        || !s2a_media_name_ok(slash + 1))
    {
        return NULL;
    }
    return slash + 1;
}

/*
 * When a result expires: for a cached file the cache sweep's deadline
 * (completed_at + cache_timeout); for an upstream URL the expiry its
 * signature carries (`se=`); null when neither is known.
 */
static json_t *
expires_json(const char *url, int64_t completed)
{
    int64_t t;

    if (url == NULL) {
        return json_null();
    }
    if (cached_name(url) == NULL) {
        return s2a_signed_url_expiry(url, &t) == S2A_OK
            ? json_integer((json_int_t) t)
            : json_null();
    }
    if (completed <= 0) {
        return json_null();
    }
    s2a_worker_refresh_settings();
    return json_integer(
        (json_int_t) (completed + s2a_worker.settings.cache_timeout));
}

/*
 * A new Video object: `model` as reported, the upstream `m` (seconds),
 * `size` (NULL: the model's orientation). Caller owns; NULL when out of
 * memory.
 */
static json_t *
video_new(const char *id, const char *model, const s2a_model_t *m,
          const char *size, const char *prompt, const char *remixed_from,
          int64_t created)
{
    char secs[8];

    snprintf(secs, sizeof(secs), "%d", m != NULL ? m->seconds : 10);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:n, s:n, s:s, s:s, s:s?, s:s?,"
        " s:n, s:[]}",
        "id", id, "object", "video", "model", model, "status", "queued",
        "progress", 0, "created_at", (json_int_t) created, "created",
        (json_int_t) created, "completed_at", "expires_at", "seconds", secs,
        "size",
        size != NULL ? size
                     : orientation_size(m != NULL ? m->orientation
                                                  : S2A_ORIENT_LANDSCAPE),
        "prompt", prompt, "remixed_from_video_id", remixed_from, "error",
        "data");
}

/* Marks `v` completed with result `url`. */
static void
video_complete(json_t *v, const char *url, int64_t completed)
{
    json_t *prompt = json_object_get(v, "prompt");

    json_object_set_new(v, "status", json_string("completed"));
    json_object_set_new(v, "progress", json_integer(100));
    json_object_set_new(v, "completed_at", json_integer(completed));
    json_object_set_new(v, "expires_at", expires_json(url, completed));
    json_object_set_new(v, "data",
                        json_pack("[{s:s, s:O}]", "url", url, "revised_prompt",
                                  prompt != NULL ? prompt : json_null()));
}

/*
 * What a Video object is made of: a task row's columns, read from the
 * row the master sends (video_from_row) or from the job's slot in the
 * live job table (video_from_job). Both go through video_build, so the
 * two answers are the same object. Strings are borrowed; NULL: no value.
 */
typedef struct video_src_s {
    const char *id;
    const char *status; /* the row's: queued, running, succeeded, ... */
    const char *model;  /* the row's (upstream) model */
    const char *api_model;
    const char *size;
    const char *prompt;
    const char *remixed_from;
    const char *url; /* result_urls[0] */
    const char *error_code;
    const char *error_message;
    double progress;
    int64_t created;
    int64_t completed;
} video_src_t;

/* The Video object of `src`. Caller owns; NULL when out of memory. */
static json_t *
video_build(const video_src_t *src)
{
    const char *model = src->model, *status = src->status, *code;
    const s2a_model_t *m = model != NULL ? s2a_model_find(model) : NULL;
    double progress = src->progress;
    json_t *v;

    v = video_new(src->id,
                  src->api_model != NULL ? src->api_model
                      : model != NULL    ? model
                                         : "sora-video",
                  m, src->size, src->prompt, src->remixed_from, src->created);
    if (v == NULL) {
        return NULL;
    }
    if (strcmp(status, "succeeded") == 0 && src->url != NULL) {
        video_complete(v, src->url, src->completed);
    } else if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0
               || strcmp(status, "succeeded") == 0)
    {
        json_object_set_new(v, "status", json_string("failed"));
        json_object_set_new(v, "completed_at",
                            src->completed > 0 ? json_integer(src->completed)
                                               : json_null());
        code = src->error_code;
        if (code == NULL) {
            code = strcmp(status, "cancelled") == 0 ? "cancelled"
                                                    : "generation_failed";
        }
        json_object_set_new(v, "error",
                            json_pack("{s:s, s:s}", "code", code, "message",
                                      src->error_message != NULL
                                          ? src->error_message
                                          : "the generation failed"));
    } else {
        if (strcmp(status, "running") == 0) {
            json_object_set_new(v, "status", json_string("in_progress"));
        }
        json_object_set_new(v, "progress",
                            json_integer(progress < 0        ? 0
                                             : progress > 99 ? 99
                                                             : (int) progress));
    }
    return v;
}

/* The Video object of a task row (video_get, videos_list). */
static json_t *
video_from_row(json_t *row)
{
    const char *ptext = json_string_value(json_object_get(row, "params"));
    json_t *params = ptext != NULL ? json_loads(ptext, 0, NULL) : NULL, *v;
    video_src_t src;

    src.id = json_string_value(json_object_get(row, "job_id"));
    src.status = json_string_value(json_object_get(row, "status"));
    if (src.id == NULL || src.status == NULL) {
        json_decref(params);
        return NULL;
    }
    src.model = json_string_value(json_object_get(row, "model"));
    src.api_model = json_string_value(json_object_get(params, "api_model"));
    src.size = json_string_value(json_object_get(params, "size"));
    src.prompt = json_string_value(json_object_get(row, "prompt"));
    src.remixed_from =
        json_string_value(json_object_get(params, "remixed_from_video_id"));
    src.url = json_string_value(
        json_array_get(json_object_get(row, "result_urls"), 0));
    src.error_code = json_string_value(json_object_get(row, "error_code"));
    src.error_message =
        json_string_value(json_object_get(row, "error_message"));
    src.progress = json_number_value(json_object_get(row, "progress"));
    src.created = json_integer_value(json_object_get(row, "created"));
    src.completed = json_integer_value(json_object_get(row, "completed"));
    v = video_build(&src);
    json_decref(params);
    return v;
}

/* The Video object of a job's slot (a whole one: not incomplete). */
static json_t *
video_from_job(const s2a_job_t *job)
{
    video_src_t src;

    src.id = job->id;
    src.status = s2a_job_status_name(job->status);
    src.model = job->model[0] != '\0' ? job->model : NULL;
    src.api_model = job->api_model[0] != '\0' ? job->api_model : NULL;
    src.size = job->size[0] != '\0' ? job->size : NULL;
    src.prompt = s2a_job_text(job, S2A_JOB_T_PROMPT);
    src.remixed_from = job->remixed_from[0] != '\0' ? job->remixed_from : NULL;
    src.url = s2a_job_text(job, S2A_JOB_T_URL);
    src.error_code = job->error_code[0] != '\0' ? job->error_code : NULL;
    src.error_message = s2a_job_text(job, S2A_JOB_T_ERROR);
    src.progress = job->progress;
    src.created = job->created;
    src.completed = job->completed;
    return video_build(&src);
}

/* ---------------------------------------------------------------------
 * Synchronous creates
 */

static void
videos_free(videos_t *vr)
{
    if (vr->prev != NULL) {
        vr->prev->next = vr->next;
    } else if (running == vr) {
        running = vr->next;
    }
    if (vr->next != NULL) {
        vr->next->prev = vr->prev;
    }
    json_decref(vr->video);
    free(vr);
}

static void
on_done(void *arg, json_t *result, int status, const char *type,
        const char *code, const char *message)
{
    videos_t *vr = arg;
    s2a_req_t *req = vr->req;
    const char *rtype = json_string_value(json_object_get(result, "type"));
    const char *url = json_string_value(json_object_get(result, "url"));

    vr->gen = NULL;
    req->on_gone = NULL;
    if (result != NULL && rtype != NULL && strcmp(rtype, "video") == 0
        && url != NULL)
    {
        video_complete(vr->video, url, s2a_now());
        s2a_http_reply_json(req, 200, vr->video);
    } else if (result != NULL && rtype != NULL && strcmp(rtype, "error") == 0) {
        /* A content-policy refusal: the request's fault. */
        s2a_http_reply_error(
            req, 400, "invalid_request_error",
            json_string_value(
                json_object_get(json_object_get(result, "data"), "code")),
            NULL, "%s", json_string_value(json_object_get(result, "error")));
    } else if (result != NULL) {
        s2a_http_reply_error(req, 502, "upstream_error", "generation_failed",
                             NULL, "Sora returned no video");
    } else {
        s2a_http_reply_error(
            req, status, type != NULL ? type : "server_error", code, NULL, "%s",
            message != NULL ? message : "the generation failed");
    }
    videos_free(vr);
}

/*
 * The job's row is committed: an asynchronous create answers with the
 * queued object now and lets the job run on without it (its row is the
 * record from here on; the client has its id).
 */
static void
on_accepted(void *arg)
{
    videos_t *vr = arg;

    if (!vr->async) {
        return;
    }
    vr->req->on_gone = NULL;
    s2a_http_reply_json(vr->req, 200, vr->video);
    s2a_gen_detach(vr->gen);
    videos_free(vr);
}

static const s2a_gen_ops_t videos_ops = { s2a_gen_progress_ignored, on_done,
                                          on_accepted };

static void
on_gone(s2a_req_t *req, void *arg)
{
    videos_t *vr = arg;

    S2A_UNUSED(req);
    if (vr->gen != NULL) {
        s2a_gen_cancel(vr->gen, "the client went away", 499);
    }
    videos_free(vr);
}

int
s2a_videos_shutdown(void)
{
    static const char why[] =
        "the server is shutting down; the generation was stopped";
    videos_t *vr;
    int n = 0;

    while ((vr = running) != NULL) {
        if (vr->gen != NULL) {
            s2a_gen_cancel(vr->gen, why, 503);
        }
        vr->req->on_gone = NULL;
        s2a_http_reply_error(vr->req, 503, "server_error", "server_shutdown",
                             NULL, "%s", why);
        videos_free(vr);
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

/* A JSON or form boolean: true, false, "true", "false", "1", "0". */
static int
read_bool(json_t *v, bool *out)
{
    const char *s = json_string_value(v);

    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return S2A_OK;
    }
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)) {
        *out = true;
        return S2A_OK;
    }
    if (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)) {
        *out = false;
        return S2A_OK;
    }
    return S2A_ERROR;
}

/* `model`, `size` and `seconds` into an upstream model. */
static int
read_model(s2a_req_t *req, json_t *body, videos_params_t *p)
{
    json_t *jm = json_object_get(body, "model"),
           *js = json_object_get(body, "size"),
           *jd = json_object_get(body, "seconds");
    const char *m = json_string_value(jm), *sz = json_string_value(js);
    const s2a_model_t *explicit = NULL;
    s2a_orientation_t o = S2A_ORIENT_SQUARE;
    char secs[24];
    int seconds = 10;
    size_t i;

    if (jm != NULL && !json_is_null(jm)) {
        if (m == NULL) {
            BAD("model", "invalid_value", "model must be a string");
        }
        for (i = 0; i < S2A_NELEMS(video_aliases); i++) {
            if (strcmp(m, video_aliases[i]) == 0) {
                p->alias = video_aliases[i];
            }
        }
        if (p->alias == NULL) {
            explicit = s2a_model_find(m);
            if (explicit == NULL) {
                BAD("model", "model_not_found",
                    "Invalid model: %.100s (video models: sora-2, sora-2-pro "
                    "and the sora-video-* ids)",
                    m);
            }
            if (explicit->kind != S2A_KIND_VIDEO) {
                BAD("model", "invalid_value",
                    "Model %.100s is not a video model", m);
            }
        }
    }
    if (js != NULL && !json_is_null(js)) {
        for (i = 0; sz != NULL && i < S2A_NELEMS(video_sizes); i++) {
            if (strcmp(sz, video_sizes[i].size) == 0) {
                break;
            }
        }
        if (sz == NULL || i == S2A_NELEMS(video_sizes)) {
            BAD("size", "invalid_value",
                "Invalid size: %.40s (one of 720x1280, 1280x720, 1024x1792, "
                "1792x1024, 1080x1920, 1920x1080 or a square size)",
                sz != NULL ? sz : "(not a string)");
        }
        o = video_sizes[i].orientation;
        p->size = sz;
    } else if (p->alias != NULL) {
        o = S2A_ORIENT_PORTRAIT; /* the official default, 720x1280 */
    }
    if (jd != NULL && !json_is_null(jd)) {
        if (json_is_integer(jd)) {
            snprintf(secs, sizeof(secs), "%lld",
                     (long long) json_integer_value(jd));
        } else if (json_is_string(jd) && json_string_length(jd) < 8) {
            snprintf(secs, sizeof(secs), "%s", json_string_value(jd));
        } else {
            secs[0] = '\0';
        }
        for (i = 0; i < S2A_NELEMS(video_seconds); i++) {
            if (strcmp(secs, video_seconds[i].seconds) == 0) {
                break;
            }
        }
        if (i == S2A_NELEMS(video_seconds)) {
            BAD("seconds", "invalid_value",
                "seconds must be one of 4, 8, 10, 12, 15, 16 or 20");
        }
        seconds = video_seconds[i].upstream;
    }
    if (explicit != NULL && explicit->orientation != S2A_ORIENT_SQUARE) {
        p->model = explicit; /* an explicit orientation wins over size */
    } else if (explicit != NULL) {
        p->model = s2a_model_video(explicit->seconds, o);
    } else {
        p->model = s2a_model_video(seconds, o);
    }
    if (p->model == NULL) {
        BAD("model", "invalid_value", "no video model for that request");
    }
    return S2A_OK;
}

/* An image given as text: http(s) URL, data URL or bare base64. */
static int
read_image_text(s2a_req_t *req, const char *s, videos_params_t *p)
{
    switch (s2a_mediain_text(s, S2A_MEDIAIN_IMAGE, 0, &p->image)) {
    case S2A_MEDIAIN_OK:
        p->image.mime[0] = '\0'; /* as before: the data URL's type unread */
        return S2A_OK;
    case S2A_MEDIAIN_NOT_BASE64_URL:
        BAD("input_reference", "invalid_image",
            "the input_reference data URL is not base64 "
            "(data:<type>;base64,...)");
    default:
        BAD("input_reference", "invalid_image",
            "input_reference is not an image file, an http(s) URL, a data "
            "URL or base64");
    }
}

/* Letters, digits, '_' and '-' into `out` (lower-cased). */
static int
read_id(s2a_req_t *req, json_t *v, const char *name, char *out, size_t len)
{
    const char *s = json_string_value(v);
    size_t i;

    if (v == NULL || json_is_null(v)) {
        return S2A_OK;
    }
    if (s == NULL || s[0] == '\0' || strlen(s) >= len) {
        BAD(name, "invalid_value", "%s must be a short string", name);
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char) s[i]) && s[i] != '_' && s[i] != '-') {
            BAD(name, "invalid_value", "%s may hold letters, digits, _ and -",
                name);
        }
        out[i] = (char) tolower((unsigned char) s[i]);
    }
    out[i] = '\0';
    return S2A_OK;
}

static int
read_params(s2a_req_t *req, json_t *body, videos_params_t *p)
{
    json_t *jp = json_object_get(body, "prompt"),
           *ji = json_object_get(body, "input_reference"),
           *ja = json_object_get(body, "async");
    const char *prefer = s2a_req_header(req, "Prefer");
    char remix[35];
    bool async;

    if (!json_is_string(jp) || json_string_length(jp) == 0) {
        BAD("prompt", "invalid_value", "prompt is required");
    }
    if (json_string_length(jp) > S2A_CHATREQ_MAX_PROMPT
        || strlen(json_string_value(jp)) != json_string_length(jp))
    {
        BAD("prompt", "invalid_value",
            "prompt is over %d bytes or holds a NUL byte",
            S2A_CHATREQ_MAX_PROMPT);
    }
    p->prompt = json_string_value(jp);
    if (p->file == NULL && ji != NULL && !json_is_null(ji)) {
        if (json_is_object(ji)) {
            if (json_object_get(ji, "file_id") != NULL) {
                BAD("input_reference", "unsupported_parameter",
                    "input_reference.file_id is not supported: send the "
                    "image itself or its image_url");
            }
            ji = json_object_get(ji, "image_url");
        }
        if (!json_is_string(ji) || json_string_length(ji) == 0) {
            BAD("input_reference", "invalid_image",
                "input_reference must be an image file, {image_url}, an "
                "http(s) URL, a data URL or base64");
        }
        if (read_image_text(req, json_string_value(ji), p) != S2A_OK) {
            return S2A_ERROR;
        }
    }
    if (read_id(req, json_object_get(body, "style_id"), "style_id", p->style_id,
                sizeof(p->style_id))
        != S2A_OK)
    {
        return S2A_ERROR;
    }
    if (json_object_get(body, "remix_target_id") != NULL
        && !json_is_null(json_object_get(body, "remix_target_id")))
    {
        if (!json_is_string(json_object_get(body, "remix_target_id"))
            || !s2a_find_remix_id(
                json_string_value(json_object_get(body, "remix_target_id")),
                remix))
        {
            BAD("remix_target_id", "invalid_value",
                "remix_target_id must be a Sora share id (s_ and 32 hex "
                "digits) or a link holding one");
        }
        snprintf(p->remix_id, sizeof(p->remix_id), "%s", remix);
    }
    if (read_model(req, body, p) != S2A_OK) {
        return S2A_ERROR;
    }
    /* The request, then Prefer, then the model id, then the setting. */
    s2a_worker_refresh_settings();
    p->async = p->alias != NULL || s2a_worker.settings.videos_async != 0;
    if (prefer != NULL && strcasestr(prefer, "respond-async") != NULL) {
        p->async = true;
    }
    if (ja != NULL && !json_is_null(ja)) {
        if (read_bool(ja, &async) != S2A_OK) {
            BAD("async", "invalid_value", "async must be true or false");
        }
        p->async = async;
    }
    return S2A_OK;
}

/* When job `id` was accepted, as its row and slot say (the job has just
 * recorded it), or now. */
static int64_t
created_of(const char *id)
{
    s2a_job_t job;

    return s2a_jobtab_get(s2a_jobs, id, &job, NULL) == S2A_OK ? job.created
                                                              : s2a_now();
}

/* Starts the job; answers at once (async) or when it ends (sync). */
static void
start_job(s2a_req_t *req, const videos_params_t *p)
{
    s2a_chatreq_t creq;
    s2a_keyticket_t ticket;
    char *file_b64 = NULL;
    const char *host = s2a_req_header(req, "Host");
    const char *reported = p->alias != NULL ? p->alias : p->model->id;
    char secs[8];
    json_t *params = NULL, *video = NULL;
    videos_t *vr = NULL;
    s2a_gen_t *g;

    /* The key's model allow-list, quota and concurrency. */
    if (!s2a_apikeys_admit(req, p->model, 1, &ticket)) {
        return;
    }
    memset(&creq, 0, sizeof(creq));
    creq.model = p->model;
    creq.image = p->image;
    creq.prompt = (char *) p->prompt;
    snprintf(creq.style_id, sizeof(creq.style_id), "%s", p->style_id);
    snprintf(creq.remix_id, sizeof(creq.remix_id), "%s", p->remix_id);
    if (p->file != NULL) {
        file_b64 = s2a_base64_encode(p->file, p->file_len);
        if (file_b64 == NULL) {
            goto oom;
        }
        creq.image.base64 = file_b64;
        creq.image.url = NULL;
    }
    creq.mode = p->remix_id[0] != '\0' ? S2A_MODE_REMIX
        : creq.image.base64 != NULL || creq.image.url != NULL
        ? S2A_MODE_IMAGE_TO_VIDEO
        : S2A_MODE_TEXT_TO_VIDEO;
    creq.owner = req->owner;
    snprintf(secs, sizeof(secs), "%d", p->model->seconds);
    params = json_pack("{s:s, s:s?, s:s, s:s?}", "api_model", reported, "size",
                       p->size, "seconds", secs, "remixed_from_video_id",
                       p->remixed_from);
    vr = calloc(1, sizeof(*vr));
    if (params == NULL || vr == NULL) {
        free(vr);
        goto oom;
    }
    vr->req = req;
    vr->async = p->async;
    /* Async or not, the request waits: for the committed row (async),
     * or for the end (sync). */
    g = s2a_gen_start_with(&creq, req->rid, host, params, &videos_ops, vr);
    if (g == NULL) {
        free(vr);
        goto oom;
    }
    s2a_gen_set_key(g, &ticket);
    video = video_new(s2a_gen_job_id(g), reported, p->model, p->size, p->prompt,
                      p->remixed_from, created_of(s2a_gen_job_id(g)));
    vr->gen = g;
    vr->video = video;
    if (video == NULL) {
        s2a_gen_cancel(g, "out of memory", 500);
        free(vr);
        goto oom;
    }
    vr->next = running;
    if (running != NULL) {
        running->prev = vr;
    }
    running = vr;
    req->on_gone = on_gone;
    req->gone_arg = vr;
    json_decref(params);
    free(file_b64);
    return;
oom:
    s2a_apikeys_ticket_release(&ticket);
    json_decref(params);
    free(file_b64);
    s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                         "out of memory");
}

void
s2a_videos_create(s2a_req_t *req)
{
    static const char *const files[] = { "input_reference", NULL };
    static const s2a_formreq_spec_t form = {
        files,           NULL,
        "invalid_image", "only one input_reference is accepted",
        "invalid_image", "the uploaded input_reference is empty",
        VIDEOS_FIELD_MAX
    };
    videos_params_t p;
    json_t *body;

    memset(&p, 0, sizeof(p));
    body = s2a_formreq_read(req, &form, &p.file, &p.file_len);
    if (body == NULL) {
        return; /* answered */
    }
    if (read_params(req, body, &p) == S2A_OK) {
        start_job(req, &p);
    }
    json_decref(body);
}

/* ---------------------------------------------------------------------
 * Reads: the task rows, through the master
 */

static void
not_found(s2a_req_t *req, const char *id)
{
    s2a_http_reply_error(req, 404, "invalid_request_error", "not_found", NULL,
                         "Video %.64s not found", id);
}

static void
call_gone(s2a_req_t *req, void *arg)
{
    videos_call_t *c = arg;

    S2A_UNUSED(req);
    if (c->call != 0) {
        s2a_worker_call_cancel(c->call);
    }
    free(c);
}

/* The thumbnail URL a finished row keeps in its params, or NULL. The
 * string lives in `*params` (caller decrefs). */
static const char *
thumbnail_of(json_t *row, json_t **params)
{
    const char *ptext = json_string_value(json_object_get(row, "params"));

    *params = ptext != NULL ? json_loads(ptext, 0, NULL) : NULL;
    return json_string_value(json_object_get(*params, "thumbnail_url"));
}

/*
 * The content of a finished row in `kind`'s variant: the cached file
 * (sendfile, ranges, validators, as /tmp/ serves it), else the upstream
 * file relayed as it downloads (proxy.c).
 */
static void
serve_content(s2a_req_t *req, json_t *row, call_kind_t kind)
{
    const char *status = json_string_value(json_object_get(row, "status"));
    const char *id = json_string_value(json_object_get(row, "job_id"));
    const char *url = json_string_value(
        json_array_get(json_object_get(row, "result_urls"), 0));
    const char *name;
    json_t *params = NULL;

    if (status == NULL || strcmp(status, "succeeded") != 0 || url == NULL) {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "video_not_ready", NULL,
                             "Video %.64s has no content: it is %s",
                             json_string_value(json_object_get(row, "job_id")),
                             status != NULL && strcmp(status, "queued") != 0
                                     && strcmp(status, "submitting") != 0
                                     && strcmp(status, "running") != 0
                                 ? "failed"
                                 : "not finished yet");
        return;
    }
    if (kind == CALL_SPRITESHEET) {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "variant_not_available", "variant",
                             "Video %.64s has no spritesheet: the Sora "
                             "upstream does not make spritesheets",
                             id);
        return;
    }
    if (kind == CALL_THUMBNAIL) {
        url = thumbnail_of(row, &params);
        if (url == NULL) {
            s2a_http_reply_error(req, 404, "invalid_request_error",
                                 "variant_not_available", "variant",
                                 "Video %.64s has no thumbnail: Sora gave "
                                 "none for it",
                                 id);
            json_decref(params);
            return;
        }
    }
    name = cached_name(url);
    if (name != NULL) {
        s2a_media_serve(req, name);
    } else {
        s2a_proxy_serve(req, url,
                        kind == CALL_THUMBNAIL ? "image/jpeg" : "video/mp4",
                        kind == CALL_THUMBNAIL ? "thumbnail" : "video");
    }
    json_decref(params);
}

/* Removes the cached file behind `url`, if it is one. */
static void
unlink_url(const char *url)
{
    const char *name = cached_name(url);
    char path[PATH_MAX + 200];

    if (name == NULL) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", s2a_worker.conf->cache_dir, name);
    if (unlink(path) == -1 && errno != ENOENT) {
        s2a_log(LOG_WARNING, errno, "unlink(\"%s\") failed", path);
    }
}

/* Removes the cached files of a deleted row: the video, its thumbnail. */
static void
unlink_cached(json_t *row)
{
    json_t *params = NULL;

    unlink_url(json_string_value(
        json_array_get(json_object_get(row, "result_urls"), 0)));
    unlink_url(thumbnail_of(row, &params));
    json_decref(params);
}

static void
list_reply(s2a_req_t *req, json_t *reply)
{
    json_t *rows = json_object_get(reply, "rows"), *data, *row, *v;
    size_t i;

    data = json_array();
    json_array_foreach (rows, i, row) {
        v = video_from_row(row);
        if (v != NULL) {
            json_array_append_new(data, v);
        }
    }
    v = json_pack("{s:s, s:o, s:O, s:O, s:b}", "object", "list", "data", data,
                  "first_id",
                  json_array_size(data) > 0
                      ? json_object_get(json_array_get(data, 0), "id")
                      : json_null(),
                  "last_id",
                  json_array_size(data) > 0 ? json_object_get(
                      json_array_get(data, json_array_size(data) - 1), "id")
                                            : json_null(),
                  "has_more", json_is_true(json_object_get(reply, "has_more")));
    if (v == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    s2a_http_reply_json(req, 200, v);
    json_decref(v);
}

static void reply_text(s2a_req_t *req, const char *text, size_t len,
                       bool poll_after);

/* Answers a retrieve with Video object `v` (taken; NULL: out of memory). */
static void
reply_video(s2a_req_t *req, json_t *v)
{
    const char *status = json_string_value(json_object_get(v, "status"));
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;

    if (text == NULL) {
        json_decref(v);
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    reply_text(req, text, strlen(text),
               strcmp(status, "queued") == 0
                   || strcmp(status, "in_progress") == 0);
    free(text);
    json_decref(v);
}

/*
 * The JSON text of Video objects built from table slots, by id, slot
 * version and settings sequence (expires_at reads the settings): a slot
 * version is never reused, so an entry that matches all three is the
 * object the builder would make now. Saves the building and encoding
 * of the object on every poll of the same video. Process-local.
 */
#define RENDERED 64

static struct {
    char id[S2A_JOB_ID_MAX];
    uint64_t version;
    uint32_t settings_seq;
    bool poll_after; /* queued or in_progress: the header goes along */
    char *text;
    size_t len;
} rendered[RENDERED];

/* The cache row of `id` (job_ and 24 hex digits, checked by id_ok). */
static size_t
rendered_row(const char *id)
{
    return strtoul(id + strlen(id) - 2, NULL, 16) % RENDERED;
}

/* Answers a retrieve with the JSON text `text` of a Video object. */
static void
reply_text(s2a_req_t *req, const char *text, size_t len, bool poll_after)
{
    char after[16];

    if (poll_after) {
        /* Steers the SDKs' poll helpers to the gateway's own pace. */
        snprintf(after, sizeof(after), "%d",
                 s2a_worker.conf->poll_interval_ms > 0
                     ? s2a_worker.conf->poll_interval_ms
                     : 1000);
        s2a_http_add_header(req, "openai-poll-after-ms", after);
    }
    s2a_http_reply(req, 200, "application/json", text, len);
}

/*
 * GET /v1/videos/<id> from the job's slot in the live job table, when it
 * has one holding the whole object: S2A_OK once answered, S2A_DECLINED
 * when the master must be asked. Another key's video is not found, as
 * the master's answer would be.
 */
static int
retrieve_from_table(s2a_req_t *req, const char *id)
{
    const char *status;
    s2a_job_t job;
    uint64_t version;
    json_t *v;
    char *text;
    size_t row;

#ifdef S2A_TEST_HOOKS
    if (bypass > 0) {
        bypass--;
        return S2A_DECLINED;
    }
#endif
    if (s2a_jobtab_get(s2a_jobs, id, &job, &version) != S2A_OK
        || (job.flags & S2A_JOB_F_INCOMPLETE) || job.kind != S2A_KIND_VIDEO)
    {
        return S2A_DECLINED;
    }
    s2a_jobtab_count(s2a_jobs, true);
    last_source = "table";
    if (job.owner != req->owner) {
        not_found(req, id);
        return S2A_OK;
    }
    s2a_worker_refresh_settings();
    row = rendered_row(id);
    if (rendered[row].text != NULL && rendered[row].version == version
        && rendered[row].settings_seq == s2a_worker.settings_seq
        && strcmp(rendered[row].id, id) == 0)
    {
        reply_text(req, rendered[row].text, rendered[row].len,
                   rendered[row].poll_after);
        return S2A_OK;
    }
    v = video_from_job(&job);
    text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    if (text == NULL) {
        json_decref(v);
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return S2A_OK;
    }
    status = json_string_value(json_object_get(v, "status"));
    free(rendered[row].text);
    memcpy(rendered[row].id, id, strlen(id) + 1);
    rendered[row].version = version;
    rendered[row].settings_seq = s2a_worker.settings_seq;
    rendered[row].poll_after =
        strcmp(status, "queued") == 0 || strcmp(status, "in_progress") == 0;
    rendered[row].text = text;
    rendered[row].len = strlen(text);
    json_decref(v);
    reply_text(req, text, rendered[row].len, rendered[row].poll_after);
    return S2A_OK;
}

void
s2a_videos_cleanup(void)
{
    size_t i;

    for (i = 0; i < RENDERED; i++) {
        free(rendered[i].text);
        rendered[i].text = NULL;
    }
}

const char *
s2a_videos_last_source(void)
{
    return last_source;
}

#ifdef S2A_TEST_HOOKS
void
s2a_videos_test_bypass(int n)
{
    bypass = n;
}
#endif

static void
call_done(json_t *reply, void *arg)
{
    videos_call_t *c = arg;
    s2a_req_t *req = c->req;
    call_kind_t kind = c->kind;
    json_t *row = json_object_get(reply, "row"), *v;
    const char *code = json_string_value(json_object_get(reply, "code"));
    const char *id = req->path_tail;

    c->call = 0;
    req->on_gone = NULL;
    free(c);
    if (reply == NULL
        || (!json_is_true(json_object_get(reply, "ok")) && code == NULL))
    {
        s2a_http_reply_error(req, 503, "server_error", "database", NULL,
                             "the video records are unavailable");
        return;
    }
    if (kind == CALL_GET || kind == CALL_CONTENT || kind == CALL_THUMBNAIL
        || kind == CALL_SPRITESHEET)
    {
        last_source = "master";
    }
    if (kind == CALL_LIST) {
        list_reply(req, reply);
        return;
    }
    if (kind == CALL_DELETE) {
        if (code != NULL && strcmp(code, "running") == 0) {
            s2a_http_reply_error(req, 400, "invalid_request_error",
                                 "video_not_finished", NULL,
                                 "Video %.64s is still being generated: only "
                                 "completed or failed videos can be deleted",
                                 id);
            return;
        }
        if (code != NULL) {
            if (strcmp(code, "not_found") == 0) {
                not_found(req, id);
            } else {
                s2a_http_reply_error(req, 503, "server_error", "database", NULL,
                                     "the video records are busy; try "
                                     "again");
            }
            return;
        }
        unlink_cached(row);
        v = json_pack("{s:s, s:s, s:b}", "id",
                      json_string_value(json_object_get(row, "job_id")),
                      "object", "video.deleted", "deleted", 1);
        s2a_http_reply_json(req, 200, v);
        json_decref(v);
        return;
    }
    if (!json_is_object(row)) {
        not_found(req, id);
        return;
    }
    if (kind == CALL_CONTENT || kind == CALL_THUMBNAIL
        || kind == CALL_SPRITESHEET) {
        serve_content(req, row, kind);
        return;
    }
    reply_video(req, video_from_row(row));
}

/* Sends `msg` (taken) to the master; the answer goes to call_done. */
static void
ask(s2a_req_t *req, call_kind_t kind, json_t *msg)
{
    videos_call_t *c = calloc(1, sizeof(*c));

    if (c == NULL || msg == NULL) {
        free(c);
        json_decref(msg);
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    c->req = req;
    c->kind = kind;
    c->call = s2a_worker_call_master(msg, call_done, c);
    json_decref(msg);
    if (c->call == 0) {
        free(c);
        s2a_http_reply_error(req, 503, "server_error", "database", NULL,
                             "the video records are unavailable");
        return;
    }
    req->on_gone = call_gone;
    req->gone_arg = c;
}

/* A job id as the gateway makes them: job_ and 24 hex digits. */
static bool
id_ok(const char *s, size_t len)
{
    size_t i;

    if (len != 28 || strncmp(s, "job_", 4) != 0) {
        return false;
    }
    for (i = 4; i < len; i++) {
        if (!isxdigit((unsigned char) s[i])) {
            return false;
        }
    }
    return true;
}

void
s2a_videos_list(s2a_req_t *req)
{
    char *after = s2a_req_query_param(req, "after");
    char *limit = s2a_req_query_param(req, "limit");
    char *order = s2a_req_query_param(req, "order");
    long n = 20;
    char *end;
    json_t *msg;

    if (limit != NULL) {
        errno = 0;
        n = strtol(limit, &end, 10);
        if (limit[0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 100)
        {
            s2a_http_reply_error(req, 400, "invalid_request_error",
                                 "invalid_value", "limit",
                                 "limit must be an integer from 1 to 100");
            goto done;
        }
    }
    if (order != NULL && strcmp(order, "asc") != 0
        && strcmp(order, "desc") != 0) {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_value",
                             "order", "order must be asc or desc");
        goto done;
    }
    if (after != NULL && after[0] != '\0' && !id_ok(after, strlen(after))) {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_value",
                             "after", "after must be a video id");
        goto done;
    }
    msg = json_pack("{s:s, s:i, s:s?, s:s?, s:I}", "op", "videos_list", "limit",
                    (int) n, "after",
                    after != NULL && after[0] != '\0' ? after : NULL, "order",
                    order, "owner", (json_int_t) req->owner);
    ask(req, CALL_LIST, msg);
done:
    free(after);
    free(limit);
    free(order);
}

/*
 * GET /content from the live job table: a complete slot holds what
 * serve_content reads of the row (status, result URL, thumbnail), so a
 * download of a finished video needs no round trip to the master.
 * S2A_DECLINED when the slot cannot answer (the master's row will).
 */
static int
content_from_table(s2a_req_t *req, const char *id, call_kind_t kind)
{
    const char *url, *thumb;
    s2a_job_t job;
    json_t *row;

#ifdef S2A_TEST_HOOKS
    if (bypass > 0) {
        bypass--;
        return S2A_DECLINED;
    }
#endif
    if (s2a_jobtab_get(s2a_jobs, id, &job, NULL) != S2A_OK
        || (job.flags & S2A_JOB_F_INCOMPLETE) || job.kind != S2A_KIND_VIDEO)
    {
        return S2A_DECLINED;
    }
    s2a_jobtab_count(s2a_jobs, true);
    last_source = "table";
    if (job.owner != req->owner) {
        not_found(req, id);
        return S2A_OK;
    }
    url = s2a_job_text(&job, S2A_JOB_T_URL);
    thumb = s2a_job_text(&job, S2A_JOB_T_THUMBNAIL);
    row =
        json_pack("{s:s, s:s, s:[s?], s:o}", "job_id", id, "status",
                  s2a_job_status_name(job.status), "result_urls", url, "params",
                  thumb != NULL ? json_pack("{s:s}", "thumbnail_url", thumb)
                                : json_null());
    if (row == NULL) {
        return S2A_DECLINED;
    }
    if (json_is_object(json_object_get(row, "params"))) {
        /* A row keeps params as text: serve_content reads it so. */
        char *ptext = json_dumps(json_object_get(row, "params"), JSON_COMPACT);
        json_object_set_new(row, "params",
                            ptext != NULL ? json_string(ptext) : json_null());
        free(ptext);
    }
    serve_content(req, row, kind);
    json_decref(row);
    return S2A_OK;
}

void
s2a_videos_item(s2a_req_t *req)
{
    const char *tail = req->path_tail, *slash = strchr(tail, '/');
    size_t idlen = slash != NULL ? (size_t) (slash - tail) : strlen(tail);
    char id[32], *variant;
    call_kind_t kind;

    if (!id_ok(tail, idlen)) {
        /* Nothing the gateway made has that name. */
        s2a_http_reply_error(req, 404, "invalid_request_error", "not_found",
                             NULL, "Video %.64s not found", tail);
        return;
    }
    memcpy(id, tail, idlen);
    id[idlen] = '\0';
    if (slash != NULL && strcmp(slash, "/content") == 0
        && (req->method == S2A_M_GET || req->method == S2A_M_HEAD))
    {
        variant = s2a_req_query_param(req, "variant");
        kind = variant == NULL || strcmp(variant, "video") == 0 ? CALL_CONTENT
            : strcmp(variant, "thumbnail") == 0                 ? CALL_THUMBNAIL
            : strcmp(variant, "spritesheet") == 0 ? CALL_SPRITESHEET
                                                  : CALL_GET;
        free(variant);
        if (kind == CALL_GET) {
            s2a_http_reply_error(req, 400, "invalid_request_error",
                                 "invalid_value", "variant",
                                 "variant must be video, thumbnail or "
                                 "spritesheet");
            return;
        }
        if (content_from_table(req, id, kind) == S2A_OK) {
            return;
        }
        s2a_jobtab_count(s2a_jobs, false);
    } else if (slash == NULL && req->method == S2A_M_DELETE) {
        kind = CALL_DELETE;
    } else if (slash == NULL) {
        if (retrieve_from_table(req, id) == S2A_OK) {
            return;
        }
        s2a_jobtab_count(s2a_jobs, false);
        kind = CALL_GET;
    } else {
        s2a_http_reply_error(req, 404, "invalid_request_error", "not_found",
                             NULL, "Unknown path %.200s", req->raw_path);
        return;
    }
    ask(req, kind,
        json_pack("{s:s, s:s, s:I}", "op",
                  kind == CALL_DELETE ? "video_delete" : "video_get", "job_id",
                  id, "owner", (json_int_t) req->owner));
}

/* ---------------------------------------------------------------------
 * Remix: a finished video through its share post
 */

static void
remix_free(videos_remix_t *rx)
{
    free(rx->prompt);
    free(rx);
}

static void
remix_gone(s2a_req_t *req, void *arg)
{
    videos_remix_t *rx = arg;

    S2A_UNUSED(req);
    if (rx->call != 0 && rx->publishing) {
        s2a_sora_cancel(rx->call);
    } else if (rx->call != 0) {
        s2a_worker_call_cancel(rx->call);
    }
    remix_free(rx);
}

/* The remix job of `rx` on post `post_id`; answers and frees `rx`. */
static void
remix_start(videos_remix_t *rx, const char *post_id)
{
    s2a_req_t *req = rx->req;
    videos_params_t p;
    size_t i;

    memset(&p, 0, sizeof(p));
    req->on_gone = NULL;
    p.model = s2a_model_find(rx->model);
    for (i = 0; i < S2A_NELEMS(video_aliases); i++) {
        if (strcmp(rx->alias, video_aliases[i]) == 0) {
            p.alias = video_aliases[i];
        }
    }
    if (p.model == NULL || p.model->kind != S2A_KIND_VIDEO) {
        s2a_http_reply_error(req, 400, "invalid_request_error",
                             "video_not_remixable", NULL,
                             "Video %s cannot be remixed", rx->id);
        remix_free(rx);
        return;
    }
    p.prompt = rx->prompt;
    p.size = rx->size[0] != '\0' ? rx->size : NULL;
    p.remixed_from = rx->id;
    snprintf(p.remix_id, sizeof(p.remix_id), "%s", post_id);
    /* As a create decides: the request, then the model id, the setting. */
    s2a_worker_refresh_settings();
    p.async = rx->async_set
        ? rx->async
        : p.alias != NULL || s2a_worker.settings.videos_async != 0;
    start_job(req, &p);
    remix_free(rx);
}

static void
remix_published(const s2a_sora_result_t *r, void *arg)
{
    videos_remix_t *rx = arg;
    const char *post = json_string_value(
        json_object_get(json_object_get(r->json, "post"), "id"));
    char id[35];

    rx->call = 0;
    if (!s2a_sora_ok(r) || post == NULL || !s2a_find_remix_id(post, id)) {
        rx->req->on_gone = NULL;
        s2a_http_reply_error(
            rx->req, 502, "upstream_error", "publish_failed", NULL,
            "Sora did not publish video %s: %.200s", rx->id,
            r->error_message != NULL ? r->error_message : "no post id");
        remix_free(rx);
        return;
    }
    remix_start(rx, id);
}

static void
remix_row(json_t *reply, void *arg)
{
    videos_remix_t *rx = arg;
    s2a_req_t *req = rx->req;
    json_t *row = json_object_get(reply, "row"), *params = NULL, *body;
    const char *status = json_string_value(json_object_get(row, "status"));
    const char *ptext = json_string_value(json_object_get(row, "params"));
    const char *gen_id, *alias, *size, *model;
    char at[S2A_SHM_AT_MAX], proxy[256];
    int64_t token;
    s2a_sora_call_t c;

    rx->call = 0;
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        req->on_gone = NULL;
        s2a_http_reply_error(req, 503, "server_error", "database", NULL,
                             "the video records are unavailable");
        remix_free(rx);
        return;
    }
    if (!json_is_object(row)) {
        req->on_gone = NULL;
        not_found(req, rx->id);
        remix_free(rx);
        return;
    }
    if (status == NULL || strcmp(status, "succeeded") != 0) {
        req->on_gone = NULL;
        s2a_http_reply_error(req, 400, "invalid_request_error",
                             "video_not_finished", NULL,
                             "Video %s is not completed: only completed "
                             "videos can be remixed",
                             rx->id);
        remix_free(rx);
        return;
    }
    params = ptext != NULL ? json_loads(ptext, 0, NULL) : NULL;
    gen_id = json_string_value(json_object_get(params, "generation_id"));
    alias = json_string_value(json_object_get(params, "api_model"));
    size = json_string_value(json_object_get(params, "size"));
    model = json_string_value(json_object_get(row, "model"));
    token = json_integer_value(json_object_get(params, "token_id"));
    snprintf(rx->size, sizeof(rx->size), "%s", size != NULL ? size : "");
    snprintf(rx->model, sizeof(rx->model), "%s", model != NULL ? model : "");
    snprintf(rx->alias, sizeof(rx->alias), "%s", alias != NULL ? alias : "");
    if (gen_id == NULL || !s2a_worker_token_secret(token, at, proxy)) {
        json_decref(params);
        req->on_gone = NULL;
        s2a_http_reply_error(req, 400, "invalid_request_error",
                             "video_not_remixable", NULL,
                             "Video %s cannot be remixed: its draft or its "
                             "account is no longer known",
                             rx->id);
        remix_free(rx);
        return;
    }
    /* A remix starts from a post: the draft is published (again). */
    body = json_pack("{s:[{s:s, s:s}], s:s}", "attachments_to_create",
                     "generation_id", gen_id, "kind", "sora", "post_text", "");
    json_decref(params);
    memset(&c, 0, sizeof(c));
    c.method = "POST";
    c.path = "/project_y/post";
    c.at = at;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    c.body = body;
    c.sentinel = true;
    rx->publishing = true;
    rx->call = body != NULL ? s2a_sora_start(&c, remix_published, rx) : 0;
    json_decref(body);
    if (rx->call == 0) {
        req->on_gone = NULL;
        s2a_http_reply_error(req, 503, "server_error", "internal_error", NULL,
                             "the publish request did not start");
        remix_free(rx);
    }
}

void
s2a_videos_remix(s2a_req_t *req)
{
    const char *tail = req->path_tail, *slash = strchr(tail, '/');
    const char *prefer = s2a_req_header(req, "Prefer");
    videos_remix_t *rx;
    json_t *body, *jp, *ja, *msg;
    bool async = false;

    if (slash == NULL || strcmp(slash, "/remix") != 0) {
        s2a_http_reply_error(req, 404, "invalid_request_error", "not_found",
                             NULL, "Unknown path %.200s", req->raw_path);
        return;
    }
    if (!id_ok(tail, (size_t) (slash - tail))) {
        not_found(req, tail);
        return;
    }
    body = s2a_req_json_object(req, false);
    if (body == NULL) {
        return; /* answered */
    }
    jp = json_object_get(body, "prompt");
    ja = json_object_get(body, "async");
    if (!json_is_string(jp) || json_string_length(jp) == 0
        || json_string_length(jp) > S2A_CHATREQ_MAX_PROMPT
        || strlen(json_string_value(jp)) != json_string_length(jp))
    {
        json_decref(body);
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_value",
                             "prompt",
                             "prompt is required (at most %d bytes, no NUL)",
                             S2A_CHATREQ_MAX_PROMPT);
        return;
    }
    if (ja != NULL && !json_is_null(ja) && read_bool(ja, &async) != S2A_OK) {
        json_decref(body);
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_value",
                             "async", "async must be true or false");
        return;
    }
    rx = calloc(1, sizeof(*rx));
    if (rx == NULL || (rx->prompt = strdup(json_string_value(jp))) == NULL) {
        free(rx);
        json_decref(body);
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    json_decref(body);
    rx->req = req;
    memcpy(rx->id, tail, (size_t) (slash - tail));
    rx->id[slash - tail] = '\0';
    if (prefer != NULL && strcasestr(prefer, "respond-async") != NULL) {
        rx->async_set = rx->async = true;
    }
    if (ja != NULL && !json_is_null(ja)) {
        rx->async_set = true;
        rx->async = async;
    }
    msg = json_pack("{s:s, s:s, s:I}", "op", "video_get", "job_id", rx->id,
                    "owner", (json_int_t) req->owner);
    rx->call = msg != NULL ? s2a_worker_call_master(msg, remix_row, rx) : 0;
    json_decref(msg);
    if (rx->call == 0) {
        remix_free(rx);
        s2a_http_reply_error(req, 503, "server_error", "database", NULL,
                             "the video records are unavailable");
        return;
    }
    req->on_gone = remix_gone;
    req->gone_arg = rx;
}
