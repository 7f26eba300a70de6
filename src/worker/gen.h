/*
 * gen.h: one generation job, from token to result (docs/generation.md):
 * lease a token, fetch and upload an input image, submit (moving to
 * another token when Sora refuses for a reason that is not the
 * request's), follow the task through the poller, then the
 * watermark-free copy and the file cache. Records and token counters go
 * to the master. The route that owns the job renders what it reports.
 */
#ifndef S2A_GEN_H
#define S2A_GEN_H

#include "worker/apikeys.h"
#include "worker/chatreq.h"

#include <jansson.h>

typedef struct s2a_gen_s s2a_gen_t;

typedef struct s2a_gen_ops_s {
    /* A step worth telling the client (`details` borrowed, may be NULL). */
    void (*progress)(void *arg, const char *stage, const char *status,
                     int progress, const char *message, json_t *details);
    /*
     * The end. Either `result` (borrowed: type image, video, or error for
     * a content-policy refusal), or an error: HTTP `status`, OpenAI error
     * `type` and `code`, and `message`. The job is freed after this.
     */
    void (*done)(void *arg, json_t *result, int status, const char *type,
                 const char *code, const char *message);
    /*
     * The job's first row is committed: it exists for good (a restart
     * submits it if nothing was sent yet). NULL when nobody asks. Runs
     * from the loop, before any token wait; `done` may follow later.
     */
    void (*accepted)(void *arg);
} s2a_gen_ops_t;

/* A progress callback for owners that report nothing until the end. */
void s2a_gen_progress_ignored(void *arg, const char *stage, const char *status,
                              int progress, const char *message,
                              json_t *details);

/*
 * Starts a job for the parsed request (copied: `req` may go away; its
 * `owner` becomes the row's). `request_id` names it in the logs; `host`
 * (the client's Host header) builds cache URLs when no public base URL
 * is set. The first progress report may come from inside this call.
 * The job first writes its row through the master and goes on once it
 * is committed (ops->accepted); a database that refuses it ends the job
 * with 503 `database`. NULL when out of memory.
 */
s2a_gen_t *s2a_gen_start(const s2a_chatreq_t *req, const char *request_id,
                         const char *host, const s2a_gen_ops_t *ops, void *arg);

/*
 * The same, with `params` (borrowed, may be NULL): members the route
 * adds to the task row's params (the Videos API keeps the model and
 * size it was asked for there). `kind` and `host` are the job's own.
 */
s2a_gen_t *s2a_gen_start_with(const s2a_chatreq_t *req, const char *request_id,
                              const char *host, json_t *params,
                              const s2a_gen_ops_t *ops, void *arg);

/*
 * The API key the job runs for: takes the next lease of `ticket`
 * (s2a_apikeys_admit), whose end counts the job against the key's quota,
 * and routes the job to the key's token group. Call right after
 * s2a_gen_start*, before control returns to the loop.
 */
void s2a_gen_set_key(s2a_gen_t *g, s2a_keyticket_t *ticket);

/* A character job's character (its characters row, char_<24 hex>), or
 * "" before Sora took the video; valid until the job's `done` returns. */
const char *s2a_gen_character(const s2a_gen_t *g);

/* The job's id (job_<24 hex>), its task row's key. */
const char *s2a_gen_job_id(const s2a_gen_t *g);

/*
 * Lets the job run on without its client (an asynchronous Videos API
 * request): no callback runs any more, the task row is its only
 * outcome, and at the worker's exit it is left like a resumed job
 * (s2a_gen_cleanup). The caller forgets `g`.
 */
void s2a_gen_detach(s2a_gen_t *g);

/*
 * Ends the job early: everything held is released and the task recorded
 * as cancelled with `why` (request-log status `status`: 499 when the
 * client went away); no callback runs afterwards. With 503 (the server
 * stops), or while the worker exits, nothing is recorded: the row stays
 * running (Sora has the task: resumed), queued (nothing sent: submitted
 * at the next start) or submitting (closed at the next start), and a
 * call to Sora under way finishes without the client while the drain
 * lasts (docs/generation.md).
 *
 * Resumed jobs (rows a previous run or a dead worker left with Sora)
 * start from the master's job_resume message (s2a_op_job_resume, in
 * ops.h) and run without a client; they count in s2a_gen_active.
 */
void s2a_gen_cancel(s2a_gen_t *g, const char *why, int status);

/*
 * Worker exit: resumed jobs (no client) leave their rows as they are for
 * the next start and give their leases back.
 */
void s2a_gen_cleanup(void);

/*
 * A character job's video given inline (`v->base64`): S2A_OK when it
 * decodes to an MP4, QuickTime or WebM file of at most 20 MiB, else
 * S2A_ERROR with the client-facing reason in `err` (a 400 before any
 * job). A URL is checked once fetched.
 */
int s2a_gen_video_check(const s2a_media_in_t *v, char *err, size_t errlen);

/* Jobs alive in this worker. */
int s2a_gen_active(void);

/* Jobs between their `submitting` row and Sora's answer (a drain waits
 * for them). */
int s2a_gen_submitting(void);

#endif /* S2A_GEN_H */
