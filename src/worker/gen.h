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
} s2a_gen_ops_t;

/* A progress callback for owners that report nothing until the end. */
void s2a_gen_progress_ignored(void *arg, const char *stage, const char *status,
                              int progress, const char *message,
                              json_t *details);

/*
 * Starts a job for the parsed request (copied: `req` may go away).
 * `request_id` names it in the logs; `host` (the client's Host header)
 * builds cache URLs when no public base URL is set. The first progress
 * report may come from inside this call. NULL when out of memory.
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
 * client went away, 503 when the server stops); no callback runs
 * afterwards. With 503, a job whose task Sora has already taken records
 * nothing: its row stays running for a resume (docs/generation.md).
 *
 * Resumed jobs (rows a previous run or a dead worker left with Sora)
 * start from the master's job_resume message (s2a_op_job_resume, in
 * ops.h) and run without a client; they count in s2a_gen_active.
 */
void s2a_gen_cancel(s2a_gen_t *g, const char *why, int status);

/*
 * Worker exit: resumed jobs (no client) leave their rows running for the
 * next resume and give their leases back.
 */
void s2a_gen_cleanup(void);

/* Jobs alive in this worker. */
int s2a_gen_active(void);

#endif /* S2A_GEN_H */
