/*
 * gen.c: the generation job (docs/generation.md).
 *
 * A job does one thing at a time, so it holds at most one outstanding
 * operation (`op` says which, `op_id` is its handle) plus, while polling,
 * a poller watch and a deadline. Cancelling undoes exactly those.
 *
 * From the first upload or submit attempt until Sora has taken the task,
 * the job also runs against the submit budget ([upstream] submit_budget):
 * however many tokens it tries, and whatever their calls do, it ends by
 * then with upstream_unavailable.
 *
 * The row is durable before the upstream is asked: the job's first row
 * (`queued`) and, before each submit attempt (upload and create call),
 * a `submitting` row are written through the master's task_write, and
 * the job goes on only once the master says they are committed. A row
 * still `queued` had nothing sent for it and can be submitted again; a
 * `submitting` one may have reached Sora and never is.
 *
 * A job can also start from its task row (s2a_op_job_resume): the
 * master hands over a row whose task Sora has, and the job begins at the
 * poll step, with no client and the row's token, timeout and Host; or a
 * row nothing was sent for, and the job begins at the token wait.
 */
#include "worker/gen.h"
#include "worker/apikeys.h"
#include "worker/cameo.h"
#include "worker/metrics.h"
#include "common/crypto.h"
#include "common/jobtab.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "worker/classify.h"
#include "worker/context.h"
#include "worker/mediacache.h"
#include "worker/mediain.h"
#include "worker/nowm.h"
#include "worker/poller.h"
#include "worker/sched.h"
#include "worker/sora.h"
#include "worker/sse.h"
#include "worker/stages.h"
#include "worker/sticky.h"
#include "worker/upstream.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define IMAGE_MAX_BYTES   (20u * 1024 * 1024)
#define IMAGE_FETCH_MS    30000L
#define FRAMES_PER_SECOND 30
#define CODE_UNAVAILABLE  "upstream_unavailable"
/* The one thing a client learns when its image URL fails: whether the
 * address was refused, closed, open or slow stays in the debug log. */
#define IMAGE_URL_FAILED "the image URL could not be fetched"

typedef enum {
    OP_NONE = 0,
    OP_KICK,   /* the first step, run from the loop */
    OP_WRITE,  /* master: a task_write, until its commit */
    OP_FETCH,  /* upstream: the client's image URL */
    OP_SCHED,  /* waiting for a token */
    OP_UPLOAD, /* sora: POST /uploads */
    OP_SUBMIT, /* sora: the create call */
    OP_POLL,   /* poller watch and deadline */
    OP_NOWM,   /* watermark-free */
    OP_CACHE,  /* file cache download */
    OP_CAMEO,  /* cameo.c: the character steps */
    OP_STICKY  /* master: who made the characters the prompt mentions */
} op_t;

/* What a task_write in flight is for. */
typedef enum {
    WRITE_FIRST = 0, /* the first row: `queued` */
    WRITE_SUBMIT,    /* `submitting`, before an attempt */
    WRITE_VIDEO      /* character+video: before the video's create call */
} write_t;

struct s2a_gen_s {
    const s2a_gen_ops_t *ops;
    void *arg;
    op_t op;
    uint64_t op_id;
    s2a_poll_watch_t *watch;
    struct event *deadline;
    struct event *kick;
    struct event *budget; /* the submit budget, until Sora took the task */

    char job_id[32];
    char rid[32];
    char host[128];
    const s2a_model_t *model;
    s2a_mode_t mode;
    s2a_kind_t kind;
    char *prompt; /* as sent upstream */
    char *image_url;
    unsigned char *image;
    size_t image_len;
    char remix_id[40];
    char style_id[64];
    int64_t owner; /* the API key that started it (0: none) */

    s2a_lease_t lease;
    bool leased;
    s2a_keyjob_t key; /* the API key it runs for (apikeys.c) */
    int64_t token_id; /* the token of the submitted task */
    int64_t avoid[S2A_SCHED_AVOID_MAX];
    int navoid;
    int attempts;
    char media_id[96];
    char task_id[96];
    char generation_id[96];
    char post_id[64];  /* the watermark-free post, while it exists */
    char *watermarked; /* the video's own URL while the clean one is used */
    char *thumbnail;   /* the video's thumbnail URL (cached or Sora's) */
    bool thumb_tried;  /* the cache had its go at the thumbnail */

    json_t *urls;   /* result URLs as they will be returned */
    json_t *params; /* the row's params, as last recorded (or NULL) */
    size_t caching; /* index of the URL being cached */
    int progress;
    int64_t started_ms;
    char last_error[512];
    s2a_stages_t stages; /* what the stream showed (stages.h) */
    bool bad_image;
    write_t writing;     /* while op is OP_WRITE */
    bool row_refused;    /* the first row was never written */
    bool in_submit;      /* from the `submitting` row to Sora's answer */
    bool from_row;       /* resubmitted: the timeout counts from started_ms */
    bool resumed;        /* taken over from a row, no client */
    s2a_sticky_t sticky; /* the token a mentioned character needs */
    struct s2a_gen_s *rnext, *rprev; /* resumed jobs of this worker */

    /* Character modes (cameo.c, docs/characters.md). */
    s2a_charopts_t *copts; /* owned */
    unsigned char *video;  /* the source video, until Sora has it */
    size_t video_len;
    char *video_url;
    const char *vtype, *vext; /* its sniffed type (static strings) */
    s2a_cameo_t *cameo;       /* while op is OP_CAMEO */
    s2a_cameo_info_t chr;     /* the character as far as it got */
    char *user_prompt;        /* character+video: the client's prompt */
    bool char_done;           /* the character is complete */
    bool bad_video;
};

static int active_jobs;
static int submitting_jobs; /* jobs with in_submit */
static s2a_gen_t *resumed_jobs;

static void run_upload(s2a_gen_t *g);
static void run_submit(s2a_gen_t *g);
static void acquire(s2a_gen_t *g);
static void finish_media(s2a_gen_t *g);
static void run_cameo(s2a_gen_t *g);
static const char *video_refusal(s2a_gen_t *g);

/* A character mode (cameo.c runs its first part). */
static bool
is_character(const s2a_gen_t *g)
{
    return g->mode == S2A_MODE_CHARACTER || g->mode == S2A_MODE_CHARACTER_VIDEO;
}

int
s2a_gen_active(void)
{
    return active_jobs;
}

int
s2a_gen_submitting(void)
{
    return submitting_jobs;
}

static void
submit_enter(s2a_gen_t *g)
{
    if (!g->in_submit) {
        g->in_submit = true;
        submitting_jobs++;
    }
}

static void
submit_leave(s2a_gen_t *g)
{
    if (g->in_submit) {
        g->in_submit = false;
        submitting_jobs--;
    }
}

/* ---------------------------------------------------------------------
 * Records
 */

/* A record of a video job goes to its live table slot too, which the
 * Videos API answers from; a character-only job is no video (the master
 * leaves its row out of /v1/videos as well). */
static void
table_record(const s2a_gen_t *g, json_t *fields)
{
    if (g->mode != S2A_MODE_CHARACTER) {
        s2a_jobtab_record(s2a_jobs, g->job_id, g->kind, fields);
    }
}

static void
record(s2a_gen_t *g, json_t *fields)
{
    json_t *msg;

    if (fields == NULL) {
        return;
    }
    s2a_stages_attach(&g->stages, fields, false);
    /* The live job table says what the row will (common/jobtab.h). */
    table_record(g, fields);
    msg = json_pack("{s:s, s:s, s:o}", "op", "task_record", "job_id", g->job_id,
                    "fields", fields);
    if (msg != NULL) {
        s2a_worker_notify_master(msg);
        json_decref(msg);
    }
}

/* A progress event: kept in the stage history, then told the owner. */
static void
report(s2a_gen_t *g, const char *stage, const char *status, int progress,
       const char *message, json_t *details)
{
    s2a_stages_add(&g->stages, stage, status, progress, message, s2a_now_ms());
    g->ops->progress(g->arg, stage, status, progress, message, details);
}

static void
token_outcome(int64_t token_id, s2a_kind_t kind, const char *outcome,
              const char *message, int64_t until)
{
    json_t *msg = json_pack(
        "{s:s, s:I, s:s, s:s, s:s, s:I}", "op", "token_outcome", "token_id",
        (json_int_t) token_id, "kind",
        kind == S2A_KIND_VIDEO ? "video" : "image", "outcome", outcome,
        "message", message != NULL ? message : "", "until", (json_int_t) until);

    if (msg != NULL) {
        s2a_worker_notify_master(msg);
        json_decref(msg);
    }
}

static void
release_lease(s2a_gen_t *g)
{
    if (g->leased) {
        g->leased = false;
        s2a_sched_release(&g->lease);
    }
}

/* Stops whatever the job is doing; no callback of it will run. */
static void
stop_op(s2a_gen_t *g)
{
    switch (g->op) {
    case OP_KICK: event_del(g->kick); break;
    case OP_WRITE: s2a_worker_call_cancel(g->op_id); break;
    case OP_FETCH: s2a_upstream_cancel(g->op_id); break;
    case OP_SCHED: s2a_sched_cancel(g->op_id); break;
    case OP_UPLOAD:
    case OP_SUBMIT: s2a_sora_cancel(g->op_id); break;
    case OP_POLL: break;
    case OP_NOWM: s2a_nowm_cancel(g->op_id); break;
    case OP_CACHE: s2a_cache_cancel(g->op_id); break;
    case OP_CAMEO:
        s2a_cameo_cancel(g->cameo, NULL);
        g->cameo = NULL;
        break;
    case OP_STICKY: s2a_sticky_cancel(&g->sticky); break;
    case OP_NONE: break;
    }
    if (g->watch != NULL) {
        s2a_poller_unwatch(g->watch);
        g->watch = NULL;
    }
    if (g->deadline != NULL) {
        event_free(g->deadline);
        g->deadline = NULL;
    }
    g->op = OP_NONE;
    g->op_id = 0;
}

static void fail(s2a_gen_t *g, int status, const char *type, const char *code,
                 const char *message);

/*
 * Records the operation just started: `id` is its handle, 0 when it did
 * not start, and then the job fails (`what` did not start). Returns
 * whether it runs.
 */
static bool
op_started(s2a_gen_t *g, op_t op, uint64_t id, const char *what)
{
    char msg[96];

    g->op = id != 0 ? op : OP_NONE;
    g->op_id = id;
    if (id == 0) {
        snprintf(msg, sizeof(msg), "the %s could not start", what);
        fail(g, 500, "server_error", "internal_error", msg);
    }
    return id != 0;
}

/* The submit phase is over (the task runs, or the job ends). */
static void
budget_stop(s2a_gen_t *g)
{
    if (g->budget != NULL) {
        event_free(g->budget);
        g->budget = NULL;
    }
}

static void
job_free(s2a_gen_t *g)
{
    stop_op(g);
    release_lease(g);
    s2a_apikeys_job_drop(&g->key);
    budget_stop(g);
    submit_leave(g);
    if (g->kick != NULL) {
        event_free(g->kick);
    }
    if (g->resumed) {
        if (g->rprev != NULL) {
            g->rprev->rnext = g->rnext;
        } else {
            resumed_jobs = g->rnext;
        }
        if (g->rnext != NULL) {
            g->rnext->rprev = g->rprev;
        }
    }
    free(g->prompt);
    free(g->image_url);
    free(g->image);
    free(g->watermarked);
    free(g->thumbnail);
    free(g->copts);
    free(g->video);
    free(g->video_url);
    free(g->user_prompt);
    json_decref(g->urls);
    json_decref(g->params);
    s2a_stages_cleanup(&g->stages);
    s2a_metrics_job_gone(g->kind);
    free(g);
    active_jobs--;
}

static void
request_log(s2a_gen_t *g, int status, const char *error)
{
    json_t *msg =
        json_pack("{s:s, s:{s:s, s:s, s:s, s:i, s:I, s:s?}}", "op",
                  "request_log", "fields", "request_id", g->rid, "operation",
                  g->mode == S2A_MODE_CHARACTER   ? "create_character"
                      : g->kind == S2A_KIND_VIDEO ? "generate_video"
                                                  : "generate_image",
                  "model", g->model->id, "status_code", status, "duration_ms",
                  (json_int_t) (s2a_now_ms() - g->started_ms), "error", error);

    if (msg == NULL) {
        return;
    }
    if (g->token_id > 0) {
        json_object_set_new(json_object_get(msg, "fields"), "token_id",
                            json_integer(g->token_id));
    }
    s2a_worker_notify_master(msg);
    json_decref(msg);
}

/*
 * The end of the job's records: the task row (`state`, with `error` or
 * the result URLs) and the request-log row. Whatever the job still held
 * is let go first.
 */
static void
record_end(s2a_gen_t *g, const char *state, const char *code, const char *error,
           int status)
{
    json_t *fields =
        json_pack("{s:s, s:I, s:I}", "status", state, "completed_at",
                  (json_int_t) s2a_now(), "duration_ms",
                  (json_int_t) (s2a_now_ms() - g->started_ms));

    s2a_metrics_job_end(g->kind, state, s2a_now_ms() - g->started_ms);
    stop_op(g);
    release_lease(g);
    s2a_apikeys_job_end(&g->key, g->model, state, g->model->seconds);
    if (fields != NULL && error != NULL) {
        json_object_set_new(fields, "error_message", json_string(error));
        if (code != NULL) {
            json_object_set_new(fields, "error_code", json_string(code));
        }
    } else if (fields != NULL) {
        json_object_set_new(fields, "progress", json_real(100.0));
        json_object_set(fields, "result_urls", g->urls);
    }
    /* The last record carries the stages as they ended. */
    s2a_stages_attach(&g->stages, fields, true);
    if (g->row_refused) {
        json_decref(fields); /* no row to end: the master refused it */
    } else {
        record(g, fields);
    }
    request_log(g, status, error);
}

/*
 * After the job's end (its client has the result): a character it made
 * and no longer wants goes upstream (cameo.c outlives the job). That is
 * the temporary character of a character+video job (unless `keep`), and
 * a character-only job's character when the job did not complete it.
 */
static void
character_end(s2a_gen_t *g, const char *why)
{
    bool temp = g->mode == S2A_MODE_CHARACTER_VIDEO;

    if (g->chr.character_id[0] == '\0'
        || (g->mode != S2A_MODE_CHARACTER && !temp)) {
        return;
    }
    if (temp ? g->copts != NULL && g->copts->keep : g->char_done) {
        return;
    }
    s2a_cameo_delete(g->token_id, g->chr.character_id, g->chr.public_id, temp,
                     why);
    g->chr.character_id[0] = '\0';
}

/* The end with an error. */
static void
fail(s2a_gen_t *g, int status, const char *type, const char *code,
     const char *message)
{
    record_end(g, "failed", code, message, status);
    s2a_log(LOG_INFO, 0, "%s: job %s failed (%s): %s", g->rid, g->job_id, code,
            message);
    g->ops->done(g->arg, NULL, status, type, code, message);
    character_end(g, message);
    job_free(g);
}

/* The end with a content-policy refusal: a result, not an error. */
static void
refuse(s2a_gen_t *g, const char *reason)
{
    char text[640];
    json_t *details, *result;

    snprintf(text, sizeof(text), "Content policy violation: %.600s", reason);
    details = json_pack("{s:s, s:s}", "error_type", "content_policy_violation",
                        "reason", reason);
    report(g, "error", "error", -1, text, details);
    record_end(g, "failed", S2A_CODE_CONTENT_POLICY, text, 400);
    json_decref(details);
    result = s2a_result_error(text, S2A_CODE_CONTENT_POLICY);
    g->ops->done(g->arg, result, 200, NULL, NULL, NULL);
    json_decref(result);
    character_end(g, text);
    job_free(g);
}

static void
succeed(s2a_gen_t *g)
{
    json_t *result, *data, *u;
    size_t i;

    data = json_array();
    json_array_foreach (g->urls, i, u) {
        if (g->kind == S2A_KIND_VIDEO) {
            json_array_append_new(
                data, json_pack("{s:O, s:n}", "url", u, "revised_prompt"));
        } else {
            json_array_append_new(data, json_pack("{s:O}", "url", u));
        }
    }
    if (g->kind == S2A_KIND_VIDEO) {
        result = json_pack("{s:s, s:O, s:o}", "type", "video", "url",
                           json_array_get(g->urls, 0), "data", data);
    } else {
        result = json_pack("{s:s, s:O, s:I, s:o}", "type", "image", "urls",
                           g->urls, "count",
                           (json_int_t) json_array_size(g->urls), "data", data);
    }
    if (g->kind == S2A_KIND_VIDEO && g->params != NULL
        && (g->generation_id[0] != '\0' || g->thumbnail != NULL))
    {
        /* What a remix of this video publishes, and the thumbnail
         * variant of its content (docs/videos.md). */
        if (g->generation_id[0] != '\0') {
            json_object_set_new(g->params, "generation_id",
                                json_string(g->generation_id));
            json_object_set_new(g->params, "token_id",
                                json_integer(g->token_id));
        }
        if (g->thumbnail != NULL) {
            json_object_set_new(g->params, "thumbnail_url",
                                json_string(g->thumbnail));
        }
        record(g, json_pack("{s:O}", "params", g->params));
    }
    record_end(g, "succeeded", NULL, NULL, 200);
    g->ops->done(g->arg, result, 200, NULL, NULL, NULL);
    json_decref(result);
    character_end(g, NULL);
    job_free(g);
}

/* ---------------------------------------------------------------------
 * Durable rows: task_write, answered after the master's commit
 */

#define DB_REFUSED \
    "the job could not be recorded: the database is busy or unavailable; " \
    "try again"

static void written(json_t *reply, void *arg);
static void first_step(s2a_gen_t *g);

/*
 * Sends `fields` (taken) as a task_write for `what`; the job waits in
 * OP_WRITE for written(). Returns false when nothing was sent.
 */
static bool
write_row(s2a_gen_t *g, write_t what, json_t *fields)
{
    json_t *msg = NULL;
    uint64_t id = 0;

    if (fields != NULL) {
        s2a_stages_attach(&g->stages, fields, false);
        table_record(g, fields);
        msg = json_pack("{s:s, s:s, s:o}", "op", "task_write", "job_id",
                        g->job_id, "fields", fields);
    }
    if (msg != NULL) {
        id = s2a_worker_call_master(msg, written, g);
        json_decref(msg);
    }
    g->writing = what;
    g->op = id != 0 ? OP_WRITE : OP_NONE;
    g->op_id = id;
    return id != 0;
}

static void
reply_ignored(json_t *reply, void *arg)
{
    S2A_UNUSED(reply);
    S2A_UNUSED(arg);
}

/*
 * Sora did not take the attempt (it answered no), or the attempt never
 * went out: the row says `queued` again, so a restart may submit it.
 * The same ordered operation as the `submitting` row before it; nobody
 * waits for it (should it be lost, the row stays `submitting`: closed,
 * never sent twice).
 */
static void
write_queued_again(s2a_gen_t *g)
{
    json_t *msg =
        json_pack("{s:s, s:s, s:{s:s, s:n}}", "op", "task_write", "job_id",
                  g->job_id, "fields", "status", "queued", "token_id");

    if (msg != NULL) {
        table_record(g, json_object_get(msg, "fields"));
        s2a_worker_call_master(msg, reply_ignored, NULL);
        json_decref(msg);
    }
}

/*
 * The worker stops under the job: it ends here, and its row stays as it
 * is for the next start or another worker: `running` (Sora has the
 * task) is followed, `queued` (nothing sent) submitted, `submitting`
 * (an answer lost) closed. `unsent`: the `submitting` row was asked for
 * but no call was made, so the row says `queued` again. Nobody is told
 * here; the caller tells the client.
 */
static void
leave(s2a_gen_t *g, bool unsent)
{
    const char *state = g->task_id[0] != '\0' ? "running"
        : g->in_submit && !unsent             ? "submitting"
                                              : "queued";

    stop_op(g);
    release_lease(g);
    if (unsent) {
        write_queued_again(g);
    }
    s2a_log(LOG_NOTICE, 0, "%s: job %s left %s%s%s for the next start", g->rid,
            g->job_id, state, g->task_id[0] != '\0' ? ", upstream task " : "",
            g->task_id);
    job_free(g);
}

/* The master's answer to a task_write of this job. */
static void
written(json_t *reply, void *arg)
{
    s2a_gen_t *g = arg;
    write_t what = g->writing;
    int status;

    g->op = OP_NONE;
    g->op_id = 0;
    if (reply == NULL && s2a_worker.exiting) {
        /* The worker exits with the write in flight: the row is what
         * the master committed, or nothing. */
        g->ops->done(g->arg, NULL, 503, "server_error", "server_shutdown",
                     "the server is shutting down; the generation was "
                     "stopped");
        leave(g, what == WRITE_SUBMIT);
        return;
    }
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        status = s2a_worker_failure_status(reply, 500);
        if (what == WRITE_FIRST) {
            g->row_refused = true;
        }
        s2a_log(LOG_WARNING, 0, "%s: job %s: the %s row was refused: %s",
                g->rid, g->job_id, what == WRITE_FIRST ? "first" : "submitting",
                reply != NULL
                    ? json_string_value(json_object_get(reply, "error"))
                    : "the master is gone");
        fail(g, status, "server_error",
             status == 503 ? "database" : "internal_error",
             status == 503 ? DB_REFUSED : "the job could not be recorded");
        return;
    }
    if (what == WRITE_VIDEO) {
        run_submit(g);
        return;
    }
    if (what == WRITE_SUBMIT) {
        /* Durable: from here a lost answer cannot lead to a second
         * submission. */
        if (is_character(g) && !g->char_done) {
            run_cameo(g);
        } else if (g->image != NULL) {
            run_upload(g);
        } else {
            run_submit(g);
        }
        return;
    }
    if (g->bad_image) {
        /* The parser checked the alphabet; a truncated quantum gets here. */
        fail(g, 400, "invalid_request_error", "invalid_image",
             "the image is not valid base64");
        return;
    }
    if (g->bad_video) {
        fail(g, 400, "invalid_request_error", "invalid_video",
             g->video == NULL ? "the video is not valid base64"
                              : video_refusal(g));
        return;
    }
    /* The job exists for good: an asynchronous owner answers now. */
    if (g->ops->accepted != NULL) {
        g->ops->accepted(g->arg);
    }
    first_step(g);
}

/* ---------------------------------------------------------------------
 * Token and submission
 */

/*
 * A refused upload or submission. Refusals that are not the request's
 * fault move the job to another token while attempts remain.
 */
static void
refused(s2a_gen_t *g, const s2a_sora_result_t *r, bool upload)
{
    s2a_failure_t f;
    int64_t token = g->lease.token_id;

    s2a_classify(r->status, r->json, r->body, r->error_message, &f);
    snprintf(g->last_error, sizeof(g->last_error), "%s", f.message);
    switch (f.kind) {
    case S2A_FAIL_TOKEN_INVALID:
        token_outcome(token, g->kind, "invalid", f.message, 0);
        break;
    case S2A_FAIL_TOKEN_COOLING:
        token_outcome(token, g->kind, "cooling", f.message,
                      s2a_now() + f.cooldown_s);
        break;
    case S2A_FAIL_RETRYABLE: break; /* not the token's fault */
    case S2A_FAIL_CONTENT_POLICY:
        /* The request's fault: a use, not an error of the token. */
        token_outcome(token, g->kind, "neutral", f.message, 0);
        refuse(g, f.message);
        return;
    case S2A_FAIL_NONE:
    case S2A_FAIL_TASK:
        /* A 4xx here is Sora refusing the input; the rest is a fault. */
        token_outcome(token, g->kind,
                      r->status >= 400 && r->status < 500 ? "neutral" : "error",
                      f.message, 0);
        fail(g, 502, "upstream_error",
             upload ? "upload_failed" : "generation_failed", f.message);
        return;
    }
    if (g->char_done) {
        /* The character is this account's: no other token can run it. */
        fail(g, 502, "upstream_error", "generation_failed", f.message);
        return;
    }
    s2a_log(LOG_INFO, 0, "%s: token %lld refused the %s (%s): %s", g->rid,
            (long long) token, upload ? "upload" : "task",
            s2a_fail_name(f.kind), f.message);
    release_lease(g);
    submit_leave(g);
    if (g->navoid < S2A_SCHED_AVOID_MAX) {
        g->avoid[g->navoid++] = token;
    }
    /* Another attempt needs another token that can take it. */
    if (g->attempts >= s2a_worker.conf->submit_attempts
        || s2a_sched_candidates_group(g->kind, g->key.group, g->avoid,
                                      g->navoid)
            == 0)
    {
        /* No answer at all (connect, read or total timeout, reset): the
         * upstream itself is out of reach, not refusing this job. */
        fail(g, 502, "upstream_error",
             r->status == 0 ? CODE_UNAVAILABLE
                 : upload   ? "upload_failed"
                            : "generation_failed",
             f.message);
        return;
    }
    /* An answer that says no (an upload is no generation at all): the
     * task was not taken, and while the job waits for another token a
     * restart may submit it. Without one (no answer, a 5xx that may hide
     * one) the row stays `submitting`. */
    if (upload || (r->status >= 400 && r->status < 500) || r->status == 503) {
        write_queued_again(g);
    }
    acquire(g);
}

/* The submit budget ran out before Sora took the task. */
static void
budget_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[768];

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    snprintf(msg, sizeof(msg),
             "Sora did not take the generation within %d seconds (%d "
             "attempt%s)%s%.600s",
             s2a_worker.conf->submit_budget, g->attempts,
             g->attempts == 1 ? "" : "s",
             g->last_error[0] != '\0' ? "; last error: " : "", g->last_error);
    if (g->op == OP_UPLOAD || g->op == OP_SUBMIT) {
        /* Abandoned mid-call: the token's call counts as an error. */
        token_outcome(g->lease.token_id, g->kind, "error", msg, 0);
    }
    fail(g, 504, "timeout_error", CODE_UNAVAILABLE, msg);
}

/* Starts the submit budget with the job's first attempt. */
static bool
budget_start(s2a_gen_t *g)
{
    struct timeval tv = { s2a_worker.conf->submit_budget, 0 };

    if (g->budget != NULL) {
        return true;
    }
    g->budget = evtimer_new(s2a_worker.base, budget_cb, g);
    if (g->budget == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return false;
    }
    evtimer_add(g->budget, &tv);
    return true;
}

static void
granted(const s2a_lease_t *lease, const char *why, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[768];

    g->op = OP_NONE;
    if (lease == NULL) {
        if (g->attempts > 0 && g->last_error[0] != '\0') {
            snprintf(msg, sizeof(msg), "%s (after: %s)", why, g->last_error);
            why = msg;
        }
        fail(g, 503, "server_error", "no_available_token", why);
        return;
    }
    g->lease = *lease;
    g->leased = true;
    g->attempts++;
    if (!budget_start(g)) {
        return;
    }
    /* "A submission may have been sent": durable before the first byte
     * goes to Sora (written() then uploads or submits). */
    submit_enter(g);
    if (!write_row(g, WRITE_SUBMIT,
                   json_pack("{s:s, s:I}", "status", "submitting", "token_id",
                             (json_int_t) g->lease.token_id)))
    {
        fail(g, 503, "server_error", "database", DB_REFUSED);
    }
}

static void
sticky_done(void *arg)
{
    s2a_gen_t *g = arg;

    g->op = OP_NONE;
    acquire(g);
}

static void
acquire(s2a_gen_t *g)
{
    /* Sticky routing first (sticky.c): a prompt with no '@' asks nobody.
     * Character+video: the client's prompt (the one sent gets the new
     * character's name once it exists, on the token chosen here). */
    if (s2a_sticky_lookup(&g->sticky,
                          g->user_prompt != NULL ? g->user_prompt : g->prompt,
                          sticky_done, g))
    {
        g->op = OP_STICKY;
        return;
    }
    if (g->sticky.error[0] != '\0') {
        fail(g, 503, "server_error", "no_available_token", g->sticky.error);
        return;
    }
    g->op = OP_SCHED;
    g->op_id = s2a_sched_acquire_pinned(
        g->kind, g->key.group, g->avoid, g->navoid, g->sticky.pin,
        g->sticky.required, g->sticky.name, granted, g);
    if (g->op_id == 0) {
        g->op = OP_NONE;
        fail(g, 503, "server_error", "no_available_token",
             "too many generations are waiting for a token");
    }
}

static void
uploaded(const s2a_sora_result_t *r, void *arg)
{
    s2a_gen_t *g = arg;
    const char *id = json_string_value(json_object_get(r->json, "id"));

    g->op = OP_NONE;
    if (!s2a_sora_ok(r) || id == NULL) {
        if (s2a_sora_ok(r)) {
            fail(g, 502, "upstream_error", "upload_failed",
                 "Sora returned no media id for the upload");
            return;
        }
        refused(g, r, true);
        return;
    }
    snprintf(g->media_id, sizeof(g->media_id), "%s", id);
    report(g, "upload", "completed", -1,
           "Image uploaded successfully. Proceeding to generation...", NULL);
    run_submit(g);
}

static void
run_upload(s2a_gen_t *g)
{
    char at[S2A_SHM_AT_MAX], proxy[256];
    const char *type = "image/png", *file = "image.png";
    s2a_upstream_part_t parts[2];
    s2a_sora_call_t c;

    if (g->image_len >= 3 && g->image[0] == 0xff && g->image[1] == 0xd8) {
        type = "image/jpeg";
        file = "image.jpg";
    } else if (g->image_len >= 12 && memcmp(g->image + 8, "WEBP", 4) == 0) {
        type = "image/webp";
        file = "image.webp";
    }
    report(g, "upload", "started", -1, "Uploading image to server...", NULL);
    memset(parts, 0, sizeof(parts));
    parts[0].name = "file";
    parts[0].filename = file;
    parts[0].type = type;
    parts[0].data = g->image;
    parts[0].len = g->image_len;
    parts[1].name = "file_name";
    parts[1].data = file;
    parts[1].len = strlen(file);
    memset(&c, 0, sizeof(c));
    c.method = "POST";
    c.path = "/uploads";
    c.at = s2a_worker_token_secret(g->lease.token_id, at, proxy) ? at : NULL;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    c.parts = parts;
    c.nparts = 2;
    op_started(g, OP_UPLOAD, s2a_sora_start(&c, uploaded, g), "upload");
}

static void polled(const s2a_poll_update_t *u, void *arg);

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[160];
    int secs = g->kind == S2A_KIND_VIDEO ? s2a_worker.settings.video_timeout
                                         : s2a_worker.settings.image_timeout;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    snprintf(msg, sizeof(msg),
             "Upstream API timeout: Generation exceeded %d seconds limit",
             secs);
    token_outcome(g->token_id, g->kind, "error", msg, 0);
    fail(g, 504, "timeout_error", "generation_timeout", msg);
}

static void
submitted(const s2a_sora_result_t *r, void *arg)
{
    s2a_gen_t *g = arg;
    const char *id = json_string_value(json_object_get(r->json, "id"));
    struct timeval tv;
    json_t *details, *fields;
    int64_t left;
    int secs;

    g->op = OP_NONE;
    if (!s2a_sora_ok(r) || id == NULL || id[0] == '\0') {
        if (s2a_sora_ok(r)) {
            token_outcome(g->lease.token_id, g->kind, "error",
                          "no task id in the answer", 0);
            fail(g, 502, "upstream_error", "generation_failed",
                 "Sora returned no task id");
            return;
        }
        refused(g, r, false);
        return;
    }
    snprintf(g->task_id, sizeof(g->task_id), "%s", id);
    g->token_id = g->lease.token_id;
    submit_leave(g);
    budget_stop(g); /* Sora has it: the generation timeout rules now */
    if (g->kind == S2A_KIND_VIDEO) {
        /* Sora counts the video now: so does the pool's quota. */
        json_t *used = json_pack("{s:s, s:I}", "op", "video_submitted",
                                 "token_id", (json_int_t) g->token_id);
        if (used != NULL) {
            s2a_worker_notify_master(used);
            json_decref(used);
        }
    }
    fields =
        json_pack("{s:s, s:s, s:I}", "status", "running", "upstream_task_id",
                  g->task_id, "token_id", (json_int_t) g->token_id);
    /* A resume goes on counting for the key (s2a_gen_set_key). */
    if (fields != NULL && g->key.key_id > 0 && g->params != NULL) {
        json_object_set(fields, "params", g->params);
    }
    record(g, fields);
    details = json_pack("{s:s}", "task_id", g->task_id);
    report(g, "generation", "processing", 0, "Generation task submitted",
           details);
    json_decref(details);

    s2a_worker_refresh_settings();
    secs = g->kind == S2A_KIND_VIDEO ? s2a_worker.settings.video_timeout
                                     : s2a_worker.settings.image_timeout;
    tv.tv_sec = secs;
    tv.tv_usec = 0;
    if (g->from_row) {
        /* Submitted again from its row: the timeout counts from when
         * the job was accepted. */
        left = g->started_ms + (int64_t) secs * 1000 - s2a_now_ms();
        left = left > 0 ? left : 0;
        tv.tv_sec = (time_t) (left / 1000);
        tv.tv_usec = (suseconds_t) (left % 1000) * 1000;
    }
    g->deadline = evtimer_new(s2a_worker.base, deadline_cb, g);
    g->watch = s2a_poller_watch(g->token_id, g->kind, g->task_id, polled, g);
    if (g->deadline == NULL || g->watch == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    evtimer_add(g->deadline, &tv);
    g->op = OP_POLL;
}

static json_t *
submit_body(s2a_gen_t *g, const char **path)
{
    const s2a_model_t *m = g->model;
    const char *orient =
        m->orientation == S2A_ORIENT_PORTRAIT ? "portrait" : "landscape";
    int frames = m->seconds * FRAMES_PER_SECOND;
    json_t *items = json_array(), *body;

    if (g->kind == S2A_KIND_IMAGE) {
        *path = "/video_gen";
        if (g->media_id[0] != '\0') {
            json_array_append_new(items,
                                  json_pack("{s:s, s:i, s:s}", "type", "image",
                                            "frame_index", 0, "upload_media_id",
                                            g->media_id));
        }
        return json_pack(
            "{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:o}", "type", "image_gen",
            "operation", g->media_id[0] != '\0' ? "remix" : "simple_compose",
            "prompt", g->prompt, "width", m->width, "height", m->height,
            "n_variants", 1, "n_frames", 1, "inpaint_items", items);
    }
    if (g->media_id[0] != '\0') {
        json_array_append_new(items,
                              json_pack("{s:s, s:s}", "kind", "upload",
                                        "upload_id", g->media_id));
    }
    if (g->mode == S2A_MODE_REMIX) {
        *path = "/nf/create";
        json_decref(items);
        return json_pack("{s:s, s:s, s:[], s:s, s:[], s:{}, s:s, s:s, s:i}",
                         "kind", "video", "prompt", g->prompt, "inpaint_items",
                         "remix_target_id", g->remix_id, "cameo_ids",
                         "cameo_replacements", "model", "sy_8", "orientation",
                         orient, "n_frames", frames);
    }
    if (g->mode == S2A_MODE_STORYBOARD) {
        *path = "/nf/create/storyboard";
        return json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:i, s:n, s:o, s:n, s:s,"
            " s:n, s:n, s:n, s:n, s:n, s:n, s:n}",
            "kind", "video", "prompt", g->prompt, "title", "Draft your video",
            "orientation", orient, "size", "small", "n_frames", frames,
            "storyboard_id", "inpaint_items", items, "remix_target_id", "model",
            "sy_8", "metadata", "style_id", "cameo_ids", "cameo_replacements",
            "audio_caption", "audio_transcript", "video_caption");
    }
    *path = "/nf/create";
    body =
        json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:o}", "kind", "video",
                  "prompt", g->prompt, "orientation", orient, "size", "small",
                  "n_frames", frames, "model", "sy_8", "inpaint_items", items);
    if (body != NULL && g->style_id[0] != '\0') {
        json_object_set_new(body, "style_id", json_string(g->style_id));
    }
    return body;
}

static void
run_submit(s2a_gen_t *g)
{
    char at[S2A_SHM_AT_MAX], proxy[256];
    const char *path = NULL;
    s2a_sora_call_t c;
    json_t *body = submit_body(g, &path);
    uint64_t id;

    memset(&c, 0, sizeof(c));
    c.method = "POST";
    c.path = path;
    c.at = s2a_worker_token_secret(g->lease.token_id, at, proxy) ? at : NULL;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    c.body = body;
    c.sentinel = true;
    id = body != NULL ? s2a_sora_start(&c, submitted, g) : 0;
    json_decref(body);
    op_started(g, OP_SUBMIT, id, "generation request");
}

/* ---------------------------------------------------------------------
 * Polling and the result
 */

static void
polled(const s2a_poll_update_t *u, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[128];
    json_t *details;

    if (u->event == S2A_POLL_PROGRESS) {
        g->progress = u->progress;
        if (g->kind == S2A_KIND_VIDEO) {
            snprintf(msg, sizeof(msg), "Video generation progress: %d%%",
                     u->progress);
        } else {
            snprintf(msg, sizeof(msg),
                     "Image generation in progress: %d%% completed...",
                     u->progress);
        }
        details = json_pack("{s:s?}", "task_status", u->status);
        report(g, "generation", "processing", u->progress, msg, details);
        json_decref(details);
        record(g, json_pack("{s:f}", "progress", (double) u->progress));
        return;
    }
    g->watch = NULL; /* terminal: the poller dropped it */
    if (g->deadline != NULL) {
        event_free(g->deadline);
        g->deadline = NULL;
    }
    g->op = OP_NONE;
    /* The task is over at Sora: its slot is free again. */
    release_lease(g);
    switch (u->event) {
    case S2A_POLL_DONE:
        token_outcome(g->token_id, g->kind, "success", NULL, 0);
        g->urls = json_deep_copy(u->urls);
        if (u->generation_id != NULL) {
            snprintf(g->generation_id, sizeof(g->generation_id), "%s",
                     u->generation_id);
        }
        if (g->kind == S2A_KIND_VIDEO && u->thumbnail_url != NULL
            && (strncasecmp(u->thumbnail_url, "https://", 8) == 0
                || strncasecmp(u->thumbnail_url, "http://", 7) == 0))
        {
            free(g->thumbnail);
            g->thumbnail = strdup(u->thumbnail_url);
        }
        report(g, "generation", "completed", 100,
               g->kind == S2A_KIND_VIDEO ? "Video generation completed"
                                         : "Image generation completed",
               NULL);
        finish_media(g);
        return;
    case S2A_POLL_VIOLATION:
        token_outcome(g->token_id, g->kind, "neutral", u->message, 0);
        refuse(g, u->message);
        return;
    case S2A_POLL_TOKEN_INVALID:
        token_outcome(g->token_id, g->kind, "invalid", u->message, 0);
        fail(g, 502, "upstream_error", "token_invalidated", u->message);
        return;
    case S2A_POLL_FAILED:
    case S2A_POLL_PROGRESS:
        /* An image Sora failed is the prompt's doing; a video that never
         * got its file is the upstream's. */
        token_outcome(g->token_id, g->kind,
                      u->event == S2A_POLL_FAILED && g->kind == S2A_KIND_IMAGE
                          ? "neutral"
                          : "error",
                      u->message, 0);
        fail(g, 502, "upstream_error", "generation_failed", u->message);
        return;
    }
}

static void cache_next(s2a_gen_t *g);

static void
cached(const char *name, const char *error, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[400], *url;
    json_t *details;
    size_t n = json_array_size(g->urls);

    g->op = OP_NONE;
    if (name == NULL && g->caching == 0 && g->watermarked != NULL) {
        /* The clean file did not come: cache the watermarked one. */
        snprintf(msg, sizeof(msg),
                 "Watermark-free failed, using the watermarked video: the "
                 "watermark-free video could not be fetched: %.200s",
                 error);
        details = json_pack("{s:s}", "error", error);
        report(g, "watermark_free", "error", -1, msg, details);
        json_decref(details);
        s2a_log(LOG_WARNING, 0,
                "%s: caching the watermark-free video failed: %s", g->rid,
                error);
        json_array_set_new(g->urls, 0, json_string(g->watermarked));
        free(g->watermarked);
        g->watermarked = NULL;
        cache_next(g);
        return;
    }
    if (name == NULL) {
        snprintf(msg, sizeof(msg), "Caching failed, using the upstream URL: %s",
                 error);
        details = json_pack("{s:s}", "error", error);
        report(g, "cache", "error", -1, msg, details);
        json_decref(details);
        s2a_log(LOG_WARNING, 0, "%s: caching a result failed: %s", g->rid,
                error);
        g->caching = n; /* the others would fail alike: stop here */
        g->thumb_tried = true;
        cache_next(g);
        return;
    }
    if (g->caching == 0 && g->watermarked != NULL) {
        /* The clean copy is ours: the fallback is not needed. */
        free(g->watermarked);
        g->watermarked = NULL;
    }
    url = s2a_cache_public_url(name, g->host);
    if (url != NULL) {
        json_array_set_new(g->urls, g->caching, json_string(url));
        free(url);
    }
    g->caching++;
    if (g->caching == n) {
        snprintf(msg, sizeof(msg), "Cached %zu file%s", n, n == 1 ? "" : "s");
        details = json_pack("{s:I}", "file_count", (json_int_t) n);
        report(g, "cache", "completed", -1, msg, details);
        json_decref(details);
    }
    cache_next(g);
}

/* The thumbnail's turn in the cache; a failure keeps Sora's URL. */
static void
thumb_cached(const char *name, const char *error, void *arg)
{
    s2a_gen_t *g = arg;
    char *url;

    g->op = OP_NONE;
    if (name == NULL) {
        s2a_log(LOG_WARNING, 0, "%s: caching the thumbnail failed: %s", g->rid,
                error);
    } else if ((url = s2a_cache_public_url(name, g->host)) != NULL) {
        free(g->thumbnail);
        g->thumbnail = url;
    }
    cache_next(g);
}

static void
cache_next(s2a_gen_t *g)
{
    if (g->caching >= json_array_size(g->urls) && g->thumbnail != NULL
        && !g->thumb_tried)
    {
        /* A second file, kept and swept like the video itself. */
        g->thumb_tried = true;
        g->op = OP_CACHE;
        g->op_id =
            s2a_cache_fetch(g->thumbnail, S2A_KIND_IMAGE, thumb_cached, g);
        if (g->op_id != 0) {
            return;
        }
        g->op = OP_NONE;
    }
    if (g->caching >= json_array_size(g->urls)) {
        /* Unless the answer is the clean URL itself (no cache), nothing
         * needs the post any more. */
        if (g->post_id[0] != '\0' && g->watermarked == NULL) {
            s2a_nowm_delete_post(g->token_id, g->post_id);
            g->post_id[0] = '\0';
        }
        succeed(g);
        return;
    }
    g->op = OP_CACHE;
    g->op_id =
        s2a_cache_fetch(json_string_value(json_array_get(g->urls, g->caching)),
                        g->kind, cached, g);
    if (g->op_id == 0) {
        g->op = OP_NONE;
        g->caching = json_array_size(g->urls);
        cache_next(g);
    }
}

static void
start_cache(s2a_gen_t *g)
{
    char msg[64];
    json_t *details;
    size_t n = json_array_size(g->urls);

    s2a_worker_refresh_settings();
    if (!s2a_worker.settings.cache_enabled) {
        succeed(g);
        return;
    }
    snprintf(msg, sizeof(msg), "Caching %zu file%s...", n, n == 1 ? "" : "s");
    details = json_pack("{s:I}", "file_count", (json_int_t) n);
    report(g, "cache", "started", -1, msg, details);
    json_decref(details);
    g->caching = 0;
    cache_next(g);
}

static void
nowm_done(const char *url, const char *post_id, const char *method,
          const char *error, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[400];
    json_t *details;

    g->op = OP_NONE;
    if (url == NULL) {
        snprintf(msg, sizeof(msg),
                 "Watermark-free failed, using the watermarked video: %.300s",
                 error);
        details = json_pack("{s:s}", "error", error);
        report(g, "watermark_free", "error", -1, msg, details);
        json_decref(details);
        s2a_log(LOG_WARNING, 0, "%s: watermark-free failed: %s", g->rid, error);
    } else {
        snprintf(g->post_id, sizeof(g->post_id), "%s", post_id);
        free(g->watermarked);
        g->watermarked =
            strdup(json_string_value(json_array_get(g->urls, 0)) != NULL
                       ? json_string_value(json_array_get(g->urls, 0))
                       : "");
        json_array_set_new(g->urls, 0, json_string(url));
        details =
            json_pack("{s:s, s:s}", "post_id", post_id, "parse_method", method);
        report(g, "watermark_free", "completed", -1,
               "Watermark-free video ready", details);
        json_decref(details);
    }
    start_cache(g);
}

/* After the task: the watermark-free copy (videos), then the cache. */
static void
finish_media(s2a_gen_t *g)
{
    json_t *details;

    s2a_worker_refresh_settings();
    if (g->kind != S2A_KIND_VIDEO || !s2a_worker.settings.wm_enabled
        || g->generation_id[0] == '\0')
    {
        start_cache(g);
        return;
    }
    details = json_pack("{s:s}", "generation_id", g->generation_id);
    report(g, "watermark_free", "started", -1,
           "Publishing the video to remove the watermark...", details);
    json_decref(details);
    g->op = OP_NOWM;
    g->op_id = s2a_nowm_start(g->token_id, g->generation_id, nowm_done, g);
    if (g->op_id == 0) {
        nowm_done(NULL, NULL, NULL, "the publish request did not start", g);
    }
}

/* ---------------------------------------------------------------------
 * Character modes: the character steps (cameo.c), then for
 * character+video the video itself, with `@username` in its prompt
 */

#define VIDEO_FETCH_MS   30000L
#define VIDEO_URL_FAILED "the video URL could not be fetched"

/* The character's own fields, as the contract's result carries them. */
static json_t *
character_fields(const s2a_gen_t *g)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "username", g->chr.username,
                     "display_name", g->chr.display_name, "cameo_id",
                     g->chr.cameo_id, "character_id", g->chr.character_id);
}

/* A character-only job's end: the contract's character result. */
static void
succeed_character(s2a_gen_t *g)
{
    json_t *result = character_fields(g), *data = character_fields(g);

    if (result == NULL || data == NULL) {
        json_decref(result);
        json_decref(data);
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    json_object_set_new(result, "type", json_string("character"));
    json_object_set_new(result, "data", data);
    if (g->urls == NULL) {
        g->urls = json_array();
    }
    record_end(g, "succeeded", NULL, NULL, 200);
    g->ops->done(g->arg, result, 200, NULL, NULL, NULL);
    json_decref(result);
    job_free(g);
}

/* The character steps ran past the job's timeout. */
static void
cameo_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[160];

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    snprintf(msg, sizeof(msg),
             "Upstream API timeout: the character was not ready within %d "
             "seconds",
             s2a_worker.settings.video_timeout);
    if (g->op == OP_CAMEO) {
        s2a_cameo_cancel(g->cameo, msg);
        g->cameo = NULL;
        g->op = OP_NONE;
    }
    fail(g, 504, "timeout_error", "generation_timeout", msg);
}

/* The video timeout, counted from when the job was accepted. */
static bool
arm_cameo_deadline(s2a_gen_t *g)
{
    struct timeval tv = { 0, 0 };
    int64_t left;

    if (g->deadline != NULL) {
        return true;
    }
    s2a_worker_refresh_settings();
    left = g->started_ms + (int64_t) s2a_worker.settings.video_timeout * 1000
        - s2a_now_ms();
    if (left > 0) {
        tv.tv_sec = (time_t) (left / 1000);
        tv.tv_usec = (suseconds_t) (left % 1000) * 1000;
    }
    g->deadline = evtimer_new(s2a_worker.base, cameo_deadline_cb, g);
    if (g->deadline == NULL) {
        return false;
    }
    evtimer_add(g->deadline, &tv);
    return true;
}

static void
cameo_progress(void *arg, const char *status, const char *message,
               json_t *details)
{
    s2a_gen_t *g = arg;

    report(g, "character_creation", status, -1, message, details);
}

/* Sora has the video: the row is `running` with the cameo as its task,
 * so a restart polls the cameo on and never uploads again. */
static void
cameo_uploaded(void *arg, const s2a_cameo_info_t *info)
{
    s2a_gen_t *g = arg;
    json_t *fields;

    g->chr = *info;
    g->token_id = g->lease.token_id;
    submit_leave(g);
    budget_stop(g);
    if (g->params != NULL) {
        json_object_set_new(g->params, "cameo_id", json_string(info->cameo_id));
        json_object_set_new(g->params, "character",
                            json_string(info->public_id));
    }
    fields =
        json_pack("{s:s, s:s, s:I}", "status", "running", "upstream_task_id",
                  info->cameo_id, "token_id", (json_int_t) g->token_id);
    if (fields != NULL && g->params != NULL) {
        json_object_set(fields, "params", g->params);
    }
    record(g, fields);
    if (!arm_cameo_deadline(g)) {
        s2a_log(LOG_WARNING, 0, "%s: job %s: no deadline for the character",
                g->rid, g->job_id);
    }
}

static void
cameo_finalized(void *arg, const s2a_cameo_info_t *info)
{
    s2a_gen_t *g = arg;

    g->chr = *info;
    if (g->params != NULL) {
        json_object_set_new(g->params, "character_id",
                            json_string(info->character_id));
        json_object_set_new(g->params, "username", json_string(info->username));
        json_object_set_new(g->params, "display_name",
                            json_string(info->display_name));
        record(g, json_pack("{s:O}", "params", g->params));
    }
}

/* Character+video: the video goes to Sora with the character in its
 * prompt, on the same account (the character is that account's). */
static void
start_character_video(s2a_gen_t *g)
{
    const char *p = g->user_prompt != NULL ? g->user_prompt : "";
    size_t n = strlen(g->chr.username) + strlen(p) + 3;
    char *prompt = malloc(n);
    json_t *fields;

    if (prompt == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    snprintf(prompt, n, "@%s %s", g->chr.username, p);
    free(g->prompt);
    g->prompt = prompt;
    if (g->params != NULL) {
        json_object_set_new(g->params, "video_submit", json_true());
    }
    /* Durable before the create call: a restart that finds the mark
     * does not know whether Sora took the video, and never sends it
     * again. */
    fields = json_pack("{s:s}", "prompt", g->prompt);
    if (fields != NULL && g->params != NULL) {
        json_object_set(fields, "params", g->params);
    }
    submit_enter(g);
    if (!write_row(g, WRITE_VIDEO, fields)) {
        fail(g, 503, "server_error", "database", DB_REFUSED);
    }
}

static void
cameo_done(void *arg, const s2a_cameo_info_t *info, int status,
           const char *type, const char *code, const char *message)
{
    s2a_gen_t *g = arg;

    g->op = OP_NONE;
    g->op_id = 0;
    g->cameo = NULL;
    if (g->deadline != NULL) {
        event_free(g->deadline);
        g->deadline = NULL;
    }
    if (code != NULL) {
        /* The flow deleted what it had finalized itself. */
        g->chr.character_id[0] = '\0';
        fail(g, status, type, code, message);
        return;
    }
    g->chr = *info;
    g->char_done = true;
    if (g->mode == S2A_MODE_CHARACTER) {
        succeed_character(g);
        return;
    }
    start_character_video(g);
}

static const s2a_cameo_ops_t gen_cameo_ops = { cameo_progress, cameo_uploaded,
                                               cameo_finalized, cameo_done };

/* On the leased token, after the `submitting` row: the character steps. */
static void
run_cameo(s2a_gen_t *g)
{
    s2a_cameo_req_t r;

    memset(&r, 0, sizeof(r));
    r.token_id = g->lease.token_id;
    r.job_id = g->job_id;
    r.rid = g->rid;
    r.owner = g->owner;
    r.opts = g->copts;
    r.video = g->video;
    r.video_len = g->video_len;
    r.video_type = g->vtype;
    r.video_ext = g->vext;
    r.set_public = g->mode == S2A_MODE_CHARACTER;
    r.temporary = g->mode == S2A_MODE_CHARACTER_VIDEO && !g->copts->keep;
    g->cameo = s2a_cameo_start(&r, &gen_cameo_ops, g);
    g->op = g->cameo != NULL ? OP_CAMEO : OP_NONE;
    if (g->cameo == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
    }
}

/*
 * The source video's type and size, checked before anything is uploaded.
 * Returns NULL when it will do, else the client-facing reason.
 */
static const char *
video_refusal(s2a_gen_t *g)
{
    if (g->video == NULL || g->video_len == 0) {
        return "the video is not valid base64";
    }
    if (g->video_len > S2A_MEDIAIN_VIDEO_MAX) {
        return "the video is larger than 20 MiB";
    }
    g->vtype =
        s2a_mediain_sniff(g->video, g->video_len, S2A_MEDIAIN_VIDEO, &g->vext);
    if (g->vtype == NULL) {
        return "the video must be an MP4, QuickTime (.mov) or WebM file";
    }
    return NULL;
}

int
s2a_gen_video_check(const s2a_media_in_t *v, char *err, size_t errlen)
{
    unsigned char *bytes;
    const char *type;
    size_t n = 0;

    if (v->base64 == NULL) {
        return S2A_OK; /* a URL: checked once fetched */
    }
    bytes = s2a_base64_decode(v->base64, strlen(v->base64), &n);
    type = bytes != NULL ? s2a_mediain_sniff(bytes, n, S2A_MEDIAIN_VIDEO, NULL)
                         : NULL;
    free(bytes);
    if (bytes == NULL || n == 0) {
        snprintf(err, errlen, "the video is not valid base64");
    } else if (n > S2A_MEDIAIN_VIDEO_MAX) {
        snprintf(err, errlen, "the video is larger than 20 MiB");
    } else if (type == NULL) {
        snprintf(err, errlen,
                 "the video must be an MP4, QuickTime (.mov) or WebM file");
    } else {
        return S2A_OK;
    }
    return S2A_ERROR;
}

static void
video_fetched(const s2a_upstream_resp_t *resp, void *arg)
{
    s2a_gen_t *g = arg;
    const char *why;

    g->op = OP_NONE;
    if (resp->curl_code != 0 || resp->status < 200 || resp->status > 299
        || resp->body_len == 0)
    {
        /* As for an image URL: the text says nothing of the cause. */
        s2a_log(LOG_DEBUG, 0,
                "%s: job %s: video URL: %s (HTTP %ld, %zu bytes%s)", g->rid,
                g->job_id, resp->curl_code != 0 ? resp->error : "answered",
                resp->status, resp->body_len,
                resp->truncated ? ", over the limit" : "");
        if (resp->truncated) {
            fail(g, 400, "invalid_request_error", "invalid_video",
                 "the video is larger than 20 MiB");
            return;
        }
        fail(g, 502, "upstream_error", "upload_failed", VIDEO_URL_FAILED);
        return;
    }
    g->video = malloc(resp->body_len);
    if (g->video == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    memcpy(g->video, resp->body, resp->body_len);
    g->video_len = resp->body_len;
    if ((why = video_refusal(g)) != NULL) {
        fail(g, 400, "invalid_request_error", "invalid_video", why);
        return;
    }
    acquire(g);
}

/* A character job's first step: the client's video URL, then a token. */
static void
first_step_character(s2a_gen_t *g)
{
    s2a_upstream_req_t fetch;

    if (g->video_url == NULL) {
        acquire(g);
        return;
    }
    memset(&fetch, 0, sizeof(fetch));
    fetch.method = "GET";
    fetch.url = g->video_url;
    fetch.proxy = s2a_cache_proxy();
    fetch.timeout_ms = VIDEO_FETCH_MS;
    fetch.max_response = S2A_MEDIAIN_VIDEO_MAX;
    fetch.follow_redirects = true;
    fetch.public_only = !s2a_worker.conf->fetch_private;
    op_started(g, OP_FETCH, s2a_upstream_start(&fetch, video_fetched, g),
               "video download");
}

/* ---------------------------------------------------------------------
 * Start and cancel
 */

static void
fetched(const s2a_upstream_resp_t *resp, void *arg)
{
    s2a_gen_t *g = arg;

    g->op = OP_NONE;
    if (resp->curl_code != 0 || resp->status < 200 || resp->status > 299
        || resp->body_len == 0)
    {
        /* The URL is the client's: the text must not tell a refused
         * address from a closed port, an open one or a slow one. The
         * detail is for the operator. */
        if (resp->curl_code != 0) {
            s2a_log(LOG_DEBUG, 0, "%s: job %s: image URL: %s", g->rid,
                    g->job_id, resp->error);
        } else {
            s2a_log(LOG_DEBUG, 0,
                    "%s: job %s: image URL answered HTTP %ld with %zu bytes",
                    g->rid, g->job_id, resp->status, resp->body_len);
        }
        fail(g, 502, "upstream_error", "upload_failed", IMAGE_URL_FAILED);
        return;
    }
    g->image = malloc(resp->body_len);
    if (g->image == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    memcpy(g->image, resp->body, resp->body_len);
    g->image_len = resp->body_len;
    acquire(g);
}

/* From the loop: the first row could not be sent (`done` never runs
 * inside start). */
static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    g->op = OP_NONE;
    fail(g, 503, "server_error", "database",
         "the job could not be recorded: the master is unavailable");
}

/* The first row is durable: the client's image URL, then a token. */
static void
first_step(s2a_gen_t *g)
{
    s2a_upstream_req_t fetch;

    if (is_character(g)) {
        first_step_character(g);
        return;
    }
    if (g->image_url == NULL) {
        acquire(g);
        return;
    }
    memset(&fetch, 0, sizeof(fetch));
    fetch.method = "GET";
    fetch.url = g->image_url;
    fetch.proxy = s2a_cache_proxy();
    fetch.timeout_ms = IMAGE_FETCH_MS;
    fetch.max_response = IMAGE_MAX_BYTES;
    fetch.follow_redirects = true;
    /* A client's URL must not reach the gateway's own network. */
    fetch.public_only = !s2a_worker.conf->fetch_private;
    op_started(g, OP_FETCH, s2a_upstream_start(&fetch, fetched, g),
               "image download");
}

static void
host_copy(char *out, size_t outlen, const char *host)
{
    size_t i;

    /* Only what a host[:port] may hold: it ends up inside URLs. */
    for (i = 0; host != NULL && host[i] != '\0' && i + 1 < outlen; i++) {
        if (!isalnum((unsigned char) host[i])
            && strchr(".-:[]", host[i]) == NULL) {
            break;
        }
    }
    if (host == NULL || i == 0 || host[i] != '\0') {
        snprintf(out, outlen, "localhost");
        return;
    }
    snprintf(out, outlen, "%s", host);
}

static char *
upstream_prompt(const s2a_chatreq_t *req)
{
    if (req->mode == S2A_MODE_REMIX) {
        return s2a_remix_clean_prompt(req->prompt != NULL ? req->prompt : "");
    }
    if (req->mode == S2A_MODE_STORYBOARD) {
        return s2a_storyboard_format(req->prompt);
    }
    return strdup(req->prompt != NULL ? req->prompt : "");
}

s2a_gen_t *
s2a_gen_start(const s2a_chatreq_t *req, const char *request_id,
              const char *host, const s2a_gen_ops_t *ops, void *arg)
{
    return s2a_gen_start_with(req, request_id, host, NULL, ops, arg);
}

const char *
s2a_gen_character(const s2a_gen_t *g)
{
    return g->chr.public_id;
}

const char *
s2a_gen_job_id(const s2a_gen_t *g)
{
    return g->job_id;
}

void
s2a_gen_set_key(s2a_gen_t *g, s2a_keyticket_t *ticket)
{
    s2a_apikeys_ticket_take(ticket, &g->key);
    if (g->key.key_id > 0 && g->params != NULL) {
        json_object_set_new(g->params, "key_id", json_integer(g->key.key_id));
    }
}

s2a_gen_t *
s2a_gen_start_with(const s2a_chatreq_t *req, const char *request_id,
                   const char *host, json_t *params, const s2a_gen_ops_t *ops,
                   void *arg)
{
    s2a_gen_t *g = calloc(1, sizeof(*g));
    struct timeval now = { 0, 0 };
    uint8_t r[12];
    char msg[96];
    json_t *details, *rec;

    if (g == NULL) {
        return NULL;
    }
    active_jobs++;
    g->ops = ops;
    g->arg = arg;
    g->started_ms = s2a_now_ms();
    g->model = req->model;
    g->mode = req->mode;
    g->kind = req->model->kind;
    g->owner = req->owner;
    s2a_metrics_job_begin(g->kind);
    s2a_random_bytes(r, sizeof(r));
    memcpy(g->job_id, "job_", 4);
    s2a_hex(r, sizeof(r), g->job_id + 4);
    snprintf(g->rid, sizeof(g->rid), "%s", request_id);
    host_copy(g->host, sizeof(g->host), host);
    snprintf(g->remix_id, sizeof(g->remix_id), "%s", req->remix_id);
    snprintf(g->style_id, sizeof(g->style_id), "%s", req->style_id);
    g->prompt = upstream_prompt(req);
    if (g->prompt == NULL) {
        job_free(g);
        return NULL;
    }
    /* Remix works from the shared video alone; a character from its
     * video. */
    if (req->mode != S2A_MODE_REMIX && !is_character(g)) {
        if (req->image.base64 != NULL) {
            g->image = s2a_base64_decode(
                req->image.base64, strlen(req->image.base64), &g->image_len);
        } else if (req->image.url != NULL) {
            g->image_url = strdup(req->image.url);
        }
        /* Without its URL the job would quietly become text-to-X (an
         * image that does not decode fails below, as bad_image). */
        if (req->image.url != NULL && req->image.base64 == NULL
            && g->image_url == NULL) {
            job_free(g);
            return NULL;
        }
    }
    if (is_character(g)) {
        g->copts = malloc(sizeof(*g->copts));
        if (g->copts == NULL) {
            job_free(g);
            return NULL;
        }
        if (req->charopts != NULL) {
            *g->copts = *req->charopts;
        } else {
            char e[8], pb[8];
            (void) s2a_charopts_parse(NULL, "", g->copts, e, sizeof(e), pb,
                                      sizeof(pb));
        }
        if (req->video.base64 != NULL) {
            g->video = s2a_base64_decode(
                req->video.base64, strlen(req->video.base64), &g->video_len);
            g->bad_video = video_refusal(g) != NULL;
        } else if (req->video.url != NULL
                   && (g->video_url = strdup(req->video.url)) == NULL)
        {
            job_free(g);
            return NULL;
        }
        if (g->mode == S2A_MODE_CHARACTER_VIDEO
            && (g->user_prompt = strdup(g->prompt)) == NULL)
        {
            job_free(g);
            return NULL;
        }
    }
    /* params: what finishing or submitting the job needs besides the
     * row's columns (model, mode, prompt as sent upstream), should
     * another worker take it over (docs/generation.md, Resume). The
     * image itself is not kept: `image` says whether there was one. */
    rec = json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s, s:b, s:s?, s:s?}}", "status",
        "queued", "model", g->model->id, "mode", s2a_mode_name(g->mode),
        "prompt", g->prompt, "created_at", (json_int_t) s2a_now(), "params",
        "kind", g->kind == S2A_KIND_VIDEO ? "video" : "image", "host", g->host,
        "image",
        req->mode != S2A_MODE_REMIX && !is_character(g)
            && (req->image.base64 != NULL || req->image.url != NULL),
        "remix_target_id", g->remix_id[0] != '\0' ? g->remix_id : NULL,
        "style_id", g->style_id[0] != '\0' ? g->style_id : NULL);
    if (rec != NULL && params != NULL) {
        json_object_update_missing(json_object_get(rec, "params"), params);
    }
    if (rec != NULL && g->copts != NULL) {
        /* What a resume of the character steps needs; the video itself
         * is not kept (`video` says there was one). */
        json_object_set_new(json_object_get(rec, "params"), "video",
                            json_true());
        json_object_set_new(json_object_get(rec, "params"), "character_options",
                            s2a_charopts_json(g->copts));
    }
    if (rec != NULL && g->owner > 0) {
        json_object_set_new(rec, "owner", json_integer(g->owner));
    }
    g->params =
        rec != NULL ? json_deep_copy(json_object_get(rec, "params")) : NULL;
    report(g, "generation", "started", -1, "Initializing generation request...",
           NULL);
    if (g->mode == S2A_MODE_STORYBOARD) {
        const char *p;
        int shots = 0;
        for (p = g->prompt; (p = strstr(p, "Shot ")) != NULL; p += 5) {
            shots++;
        }
        details = json_pack("{s:i}", "shots", shots);
        report(g, "storyboard", "processing", -1,
               "Detected storyboard format. Converting to storyboard "
               "API format...",
               details);
        json_decref(details);
    } else if (g->mode == S2A_MODE_REMIX) {
        snprintf(msg, sizeof(msg), "Remixing %s...", g->remix_id);
        details = json_pack("{s:s}", "remix_target_id", g->remix_id);
        report(g, "remix", "started", -1, msg, details);
        json_decref(details);
    }
    g->kick = evtimer_new(s2a_worker.base, kick_cb, g);
    if (g->kick == NULL) {
        json_decref(rec);
        job_free(g);
        return NULL;
    }
    if (req->image.base64 != NULL && req->mode != S2A_MODE_REMIX
        && !is_character(g) && g->image == NULL)
    {
        g->bad_image = true;
    }
    /* Nothing happens before the first row is committed (written()). */
    if (!write_row(g, WRITE_FIRST, rec)) {
        g->row_refused = true;
        g->op = OP_KICK;
        evtimer_add(g->kick, &now);
    }
    return g;
}

void
s2a_gen_cancel(s2a_gen_t *g, const char *why, int status)
{
    if (status == 503 || s2a_worker.exiting) {
        /* The server stops (gracefully, or fast: the worker is tearing
         * its connections down). A call to Sora under way may still
         * finish while the drain lasts, without the client; otherwise
         * the row stays as it is: running (the task is followed),
         * queued (submitted at the next start), submitting (closed). */
        if (g->in_submit && (g->op == OP_UPLOAD || g->op == OP_SUBMIT)
            && !s2a_worker.exiting)
        {
            s2a_log(LOG_NOTICE, 0,
                    "%s: job %s: its client is cut by the stop; the call to "
                    "Sora under way goes on without it",
                    g->rid, g->job_id);
            s2a_gen_detach(g);
            return;
        }
        leave(g, g->in_submit && g->op == OP_WRITE);
        return;
    }
    if (g->op == OP_CAMEO) {
        /* The row of a character not finalized says why it stopped. */
        s2a_cameo_cancel(g->cameo, why);
        g->cameo = NULL;
        g->op = OP_NONE;
    }
    record_end(g, "cancelled", NULL, why, status);
    s2a_log(LOG_INFO, 0, "%s: job %s cancelled: %s", g->rid, g->job_id, why);
    character_end(g, why);
    job_free(g);
}

/* ---------------------------------------------------------------------
 * Resume: a job taken over from its row, with no client
 */

void
s2a_gen_progress_ignored(void *arg, const char *stage, const char *status,
                         int progress, const char *message, json_t *details)
{
    S2A_UNUSED(arg);
    S2A_UNUSED(stage);
    S2A_UNUSED(status);
    S2A_UNUSED(progress);
    S2A_UNUSED(message);
    S2A_UNUSED(details);
}

static void
resume_done(void *arg, json_t *result, int status, const char *type,
            const char *code, const char *message)
{
    S2A_UNUSED(arg);
    S2A_UNUSED(result);
    S2A_UNUSED(status);
    S2A_UNUSED(type);
    S2A_UNUSED(code);
    S2A_UNUSED(message);
}

static const s2a_gen_ops_t resume_ops = { s2a_gen_progress_ignored, resume_done,
                                          NULL };

void
s2a_gen_detach(s2a_gen_t *g)
{
    /* From now on it is what a resumed job is: no client, the row only. */
    g->ops = &resume_ops;
    g->arg = NULL;
    if (g->resumed) {
        return;
    }
    g->resumed = true;
    g->rprev = NULL;
    g->rnext = resumed_jobs;
    if (resumed_jobs != NULL) {
        resumed_jobs->rprev = g;
    }
    resumed_jobs = g;
}

/*
 * At the worker's exit: resumed jobs, which no connection holds, leave
 * their rows running for the next resume and give their leases back
 * (the master would otherwise find them held by a worker that exited
 * cleanly).
 */
void
s2a_gen_cleanup(void)
{
    s2a_gen_t *g;

    if (resumed_jobs == NULL || s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return;
    }
    for (g = resumed_jobs; g != NULL; g = g->rnext) {
        if (g->leased) {
            g->leased = false;
            s2a_shm_lease_release_locked(s2a_worker.shm, &g->lease);
        }
    }
    s2a_shm_unlock(s2a_worker.shm);
    for (g = resumed_jobs; g != NULL; g = g->rnext) {
        s2a_apikeys_job_drop(&g->key);
    }
}

/*
 * Leases token `token_id` for the job: a lease is bookkeeping, so one on
 * the task's own token is taken even past its concurrency limit. Returns
 * S2A_OK, S2A_DECLINED when the token is gone, S2A_ERROR otherwise.
 */
static int
resume_lease(s2a_gen_t *g)
{
    int slot, rc;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return S2A_ERROR;
    }
    slot = s2a_shm_token_find_locked(s2a_worker.shm, g->token_id);
    if (slot < 0) {
        s2a_shm_unlock(s2a_worker.shm);
        return S2A_DECLINED;
    }
    rc = s2a_shm_lease_acquire_locked(s2a_worker.shm, slot, g->kind,
                                      s2a_now_ms(), getpid(), &g->lease);
    s2a_shm_unlock(s2a_worker.shm);
    if (rc != S2A_OK) {
        return S2A_ERROR;
    }
    g->leased = true;
    return S2A_OK;
}

/* The first step of a resumed job, from the loop. */
static void
resume_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    struct timeval tv = { 0, 0 };
    int64_t left;
    int rc, secs;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    g->op = OP_NONE;
    rc = resume_lease(g);
    if (rc == S2A_DECLINED) {
        fail(g, 502, "upstream_error", "token_gone",
             "the token that ran the task was removed before it finished");
        return;
    }
    if (rc != S2A_OK) {
        /* Polling needs no slot: the job goes on without the count. */
        s2a_log(LOG_WARNING, 0, "%s: job %s resumed without a lease", g->rid,
                g->job_id);
    }
    record(g, json_pack("{s:s}", "status", "running"));
    s2a_worker_refresh_settings();
    secs = g->kind == S2A_KIND_VIDEO ? s2a_worker.settings.video_timeout
                                     : s2a_worker.settings.image_timeout;
    /* The timeout counts from when the job was accepted. */
    left = g->started_ms + (int64_t) secs * 1000 - s2a_now_ms();
    if (left > 0) {
        tv.tv_sec = (time_t) (left / 1000);
        tv.tv_usec = (suseconds_t) (left % 1000) * 1000;
    }
    g->deadline = evtimer_new(s2a_worker.base, deadline_cb, g);
    g->watch = s2a_poller_watch(g->token_id, g->kind, g->task_id, polled, g);
    if (g->deadline == NULL || g->watch == NULL) {
        fail(g, 500, "server_error", "internal_error", "out of memory");
        return;
    }
    evtimer_add(g->deadline, &tv);
    g->op = OP_POLL;
}

/* The mode a row names (its `mode` column). */
static s2a_mode_t
mode_of(const char *name)
{
    int m;

    for (m = S2A_MODE_TEXT_TO_IMAGE; m <= S2A_MODE_CHARACTER_VIDEO; m++) {
        if (name != NULL && strcmp(s2a_mode_name((s2a_mode_t) m), name) == 0) {
            return (s2a_mode_t) m;
        }
    }
    return S2A_MODE_TEXT_TO_VIDEO;
}

/* The first step of a job submitted from its row, from the loop. */
static void
resubmit_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    char msg[160];
    int secs;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    g->op = OP_NONE;
    if (json_is_true(json_object_get(g->params, "video"))) {
        fail(g, 502, "upstream_error", "interrupted",
             "the job had not reached Sora and its input video was not "
             "kept; send the request again");
        return;
    }
    if (json_is_true(json_object_get(g->params, "image"))) {
        fail(g, 502, "upstream_error", "interrupted",
             "the job had not reached Sora and its input image was not "
             "kept; send the request again");
        return;
    }
    s2a_worker_refresh_settings();
    secs = g->kind == S2A_KIND_VIDEO ? s2a_worker.settings.video_timeout
                                     : s2a_worker.settings.image_timeout;
    /* The timeout counts from when the job was accepted. */
    if (s2a_now_ms() >= g->started_ms + (int64_t) secs * 1000) {
        snprintf(msg, sizeof(msg),
                 "Upstream API timeout: Generation exceeded %d seconds limit",
                 secs);
        fail(g, 504, "timeout_error", "generation_timeout", msg);
        return;
    }
    acquire(g);
}

/*
 * The first step of a character job resumed from its row, from the
 * loop: Sora has its cameo (the row's task). Before the character was
 * finalized the cameo is polled on (never uploaded again); after, a
 * character-only job has it made public, and a character+video job
 * sends its video, unless the row says that call was already out: then
 * nobody knows whether Sora took it, the job fails and the temporary
 * character goes.
 */
static void
character_resume_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_gen_t *g = arg;
    s2a_cameo_req_t r;
    char msg[160];
    int rc;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    g->op = OP_NONE;
    rc = resume_lease(g);
    if (rc == S2A_DECLINED) {
        fail(g, 502, "upstream_error", "token_gone",
             "the token that made the character was removed before it "
             "finished");
        return;
    }
    if (rc != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "%s: job %s resumed without a lease", g->rid,
                g->job_id);
        g->lease.token_id = g->token_id;
    }
    record(g, json_pack("{s:s}", "status", "running"));
    s2a_worker_refresh_settings();
    if (s2a_now_ms()
        >= g->started_ms + (int64_t) s2a_worker.settings.video_timeout * 1000)
    {
        snprintf(msg, sizeof(msg),
                 "Upstream API timeout: Generation exceeded %d seconds limit",
                 s2a_worker.settings.video_timeout);
        fail(g, 504, "timeout_error", "generation_timeout", msg);
        return;
    }
    if (g->chr.character_id[0] == '\0' || g->mode == S2A_MODE_CHARACTER) {
        if (g->chr.character_id[0] == '\0') {
            memset(&r, 0, sizeof(r));
            r.token_id = g->token_id;
            r.job_id = g->job_id;
            r.rid = g->rid;
            r.owner = g->owner;
            r.opts = g->copts;
            r.set_public = g->mode == S2A_MODE_CHARACTER;
            r.temporary =
                g->mode == S2A_MODE_CHARACTER_VIDEO && !g->copts->keep;
            r.cameo_id = g->chr.cameo_id;
            r.public_id = g->chr.public_id;
            g->cameo = s2a_cameo_start(&r, &gen_cameo_ops, g);
        } else {
            g->cameo =
                s2a_cameo_publish(g->token_id, &g->chr, &gen_cameo_ops, g);
        }
        g->op = g->cameo != NULL ? OP_CAMEO : OP_NONE;
        if (g->cameo == NULL || !arm_cameo_deadline(g)) {
            fail(g, 500, "server_error", "internal_error", "out of memory");
        }
        return;
    }
    if (json_is_true(json_object_get(g->params, "video_submit"))) {
        fail(g, 502, "upstream_error", "interrupted",
             "the video request may have reached Sora before the gateway "
             "stopped; it is never sent twice: send the request again");
        return;
    }
    g->char_done = true;
    g->from_row = true;
    start_character_video(g);
}

/* A character job's row: its options and its character so far. */
static int
character_from_row(s2a_gen_t *g, const char *task)
{
    json_t *p = g->params;
    const char *v;
    char err[256], param[64];

    g->copts = malloc(sizeof(*g->copts));
    if (g->copts == NULL
        || s2a_charopts_parse(json_object_get(p, "character_options"), "",
                              g->copts, err, sizeof(err), param, sizeof(param))
            != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "job %s: its character options do not read: %s",
                g->job_id, g->copts != NULL ? err : "out of memory");
        return S2A_ERROR;
    }
#define FROM_PARAMS(field, name) \
    v = json_string_value(json_object_get(p, (name))); \
    snprintf(g->chr.field, sizeof(g->chr.field), "%s", v != NULL ? v : "")
    FROM_PARAMS(cameo_id, "cameo_id");
    FROM_PARAMS(public_id, "character");
    FROM_PARAMS(character_id, "character_id");
    FROM_PARAMS(username, "username");
    FROM_PARAMS(display_name, "display_name");
#undef FROM_PARAMS
    if (task != NULL && strcmp(task, g->chr.cameo_id) != 0) {
        g->char_done = true; /* the video's task: followed as a video */
    }
    return S2A_OK;
}

/*
 * A job taken over from its row (a resume or a resubmission), with no
 * client: counted, listed among the resumed jobs, named by its row.
 */
static s2a_gen_t *
row_job(json_t *msg, const s2a_model_t *m,
        void (*kick)(evutil_socket_t, short, void *))
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *params = json_object_get(msg, "params");
    s2a_gen_t *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        s2a_log(LOG_ERR, 0, "job %s not taken over: out of memory", job);
        return NULL;
    }
    active_jobs++;
    g->ops = &resume_ops;
    g->resumed = true;
    g->rnext = resumed_jobs;
    if (resumed_jobs != NULL) {
        resumed_jobs->rprev = g;
    }
    resumed_jobs = g;
    g->model = m;
    g->kind = m->kind;
    s2a_metrics_job_begin(g->kind);
    g->started_ms =
        json_integer_value(json_object_get(msg, "created_at")) * 1000;
    snprintf(g->job_id, sizeof(g->job_id), "%s", job);
    snprintf(g->rid, sizeof(g->rid), "%s", job);
    g->params = json_is_object(params) ? json_deep_copy(params) : NULL;
    s2a_stages_load(&g->stages, json_object_get(msg, "stages"));
    /* The key it ran for goes on counting its concurrency and quota. */
    s2a_apikeys_job_resume(
        &g->key, json_integer_value(json_object_get(params, "key_id")),
        g->kind);
    host_copy(g->host, sizeof(g->host),
              json_string_value(json_object_get(params, "host")));
    g->kick = evtimer_new(s2a_worker.base, kick, g);
    if (g->kick == NULL) {
        job_free(g);
        return NULL;
    }
    return g;
}

/*
 * "job_resume": the master hands over a row a previous run, a stop or a
 * worker that died left unfinished. With `task_id` Sora has the task:
 * the job follows it as if it had submitted it, then finishes and
 * records it. Without, nothing was sent for it yet: the job is submitted
 * from the token wait on, from what the row keeps (its prompt as sent
 * upstream, mode, model, params). Nobody is told but the records.
 */
void
s2a_op_job_resume(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    const char *task = json_string_value(json_object_get(msg, "task_id"));
    const char *model = json_string_value(json_object_get(msg, "model"));
    const char *prompt = json_string_value(json_object_get(msg, "prompt"));
    const s2a_model_t *m = s2a_model_find(model);
    json_t *params;
    struct timeval now = { 0, 0 };
    s2a_gen_t *g;

    S2A_UNUSED(from);
    if (strlen(job) >= sizeof(g->job_id) || m == NULL
        || (task != NULL
            && (task[0] == '\0' || strlen(task) >= sizeof(g->task_id)))
        || (task == NULL && prompt == NULL))
    {
        s2a_log(LOG_ERR, 0, "job %.40s cannot be taken over (model %.40s)", job,
                model);
        return;
    }
    g = row_job(msg, m, task != NULL ? resume_kick_cb : resubmit_kick_cb);
    if (g == NULL) {
        return;
    }
    g->mode = mode_of(json_string_value(json_object_get(msg, "mode")));
    if (task != NULL && is_character(g)) {
        snprintf(g->task_id, sizeof(g->task_id), "%s", task);
        g->token_id = json_integer_value(json_object_get(msg, "token_id"));
        if (character_from_row(g, task) != S2A_OK) {
            g->mode = S2A_MODE_TEXT_TO_VIDEO; /* nothing to clean up */
            fail(g, 502, "upstream_error", "interrupted",
                 "the character job's row cannot be resumed");
            return;
        }
        if (!g->char_done) {
            /* Sora's task is the cameo: the character steps go on. */
            g->task_id[0] = '\0';
            event_free(g->kick);
            g->kick = evtimer_new(s2a_worker.base, character_resume_kick_cb, g);
            if (g->kick == NULL) {
                job_free(g);
                return;
            }
        }
        s2a_log(LOG_INFO, 0, "%s: resuming character %s (%s) on token %lld",
                g->rid, g->chr.public_id,
                g->char_done ? "its video" : "the cameo",
                (long long) g->token_id);
        g->op = OP_KICK;
        evtimer_add(g->kick, &now);
        return;
    }
    if (task != NULL) {
        snprintf(g->task_id, sizeof(g->task_id), "%s", task);
        g->token_id = json_integer_value(json_object_get(msg, "token_id"));
        s2a_log(LOG_INFO, 0, "%s: resuming upstream task %s on token %lld",
                g->rid, g->task_id, (long long) g->token_id);
    } else {
        params = g->params;
        g->mode = mode_of(json_string_value(json_object_get(msg, "mode")));
        g->from_row = true;
        g->prompt = strdup(prompt);
        snprintf(
            g->remix_id, sizeof(g->remix_id), "%s",
            json_string_value(json_object_get(params, "remix_target_id"))
                    != NULL
                ? json_string_value(json_object_get(params, "remix_target_id"))
                : "");
        snprintf(g->style_id, sizeof(g->style_id), "%s",
                 json_string_value(json_object_get(params, "style_id")) != NULL
                     ? json_string_value(json_object_get(params, "style_id"))
                     : "");
        if (g->prompt == NULL) {
            job_free(g);
            return;
        }
        s2a_log(LOG_INFO, 0, "%s: submitting the job from its row", g->rid);
    }
    g->op = OP_KICK;
    evtimer_add(g->kick, &now);
}
