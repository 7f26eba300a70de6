/*
 * apikeys.h: named API keys in a worker (docs/api-keys.md): the /v1
 * credential check against the shared key table (with its requests per
 * minute and the x-ratelimit headers), the admission of generation jobs
 * (model allow-list, quota, concurrency), the jobs' leases and what
 * their end counts, usage rows for the master, the /api/keys routes and
 * the per-key /metrics lines.
 */
#ifndef S2A_APIKEYS_H
#define S2A_APIKEYS_H

#include "common/keytab.h"
#include "common/models.h"
#include "worker/http.h"

#include <event2/buffer.h>

#define S2A_APIKEYS_TICKET_MAX 8

/* The jobs one request was admitted for: a lease each. */
typedef struct s2a_keyticket_s {
    int n;    /* leases in `leases` */
    int next; /* the next one s2a_apikeys_ticket_take hands out */
    int64_t key_id;
    uint64_t group;
    s2a_keylease_t leases[S2A_APIKEYS_TICKET_MAX];
} s2a_keyticket_t;

/* The key side of one generation job (zero: no key). */
typedef struct s2a_keyjob_s {
    int64_t key_id;
    uint64_t group; /* token group the job is routed to, 0: any */
    s2a_keylease_t lease;
    bool leased;
} s2a_keyjob_t;

/*
 * Checks the bearer `key` of `req`: an enabled, unexpired key of the
 * table, within its requests per minute. Sets req->key_id and
 * req->key_slot and adds the x-ratelimit headers; otherwise answers
 * 401 or 429 (OpenAI envelope) and returns false.
 */
bool s2a_apikeys_check(s2a_req_t *req, const char *key);

/*
 * Admits `n` jobs of `model` for the request's key, all or none: the
 * model allow-list (403 model_not_found), the quota of the model's kind
 * (429 quota_exceeded) and the concurrency (429
 * concurrency_limit_exceeded). Fills `t`; answers and returns false on
 * a refusal. A request without a key gets an empty ticket.
 */
bool s2a_apikeys_admit(s2a_req_t *req, const s2a_model_t *model, int n,
                       s2a_keyticket_t *t);

/* Hands the next lease of `t` to `job` (an empty job when none left). */
void s2a_apikeys_ticket_take(s2a_keyticket_t *t, s2a_keyjob_t *job);

/* Ends the leases of `t` nobody took (a request that stopped early). */
void s2a_apikeys_ticket_release(s2a_keyticket_t *t);

/*
 * The end of a job: `state` succeeded (counted against the quota and in
 * the usage rows), failed (a failure in the usage rows) or anything
 * else (not counted). `seconds`: the video's length. Ends the lease.
 */
void s2a_apikeys_job_end(s2a_keyjob_t *job, const s2a_model_t *model,
                         const char *state, int seconds);

/* Ends the job's lease without counting (a job left for a resume). */
void s2a_apikeys_job_drop(s2a_keyjob_t *job);

/*
 * A job resumed from its row (params.key_id): a lease on key `key_id`
 * past its limits, so its concurrency and quota count go on; nothing
 * when the key is gone.
 */
void s2a_apikeys_job_resume(s2a_keyjob_t *job, int64_t key_id, s2a_kind_t kind);

/* After each answer: the key's request counters. */
void s2a_apikeys_request_done(s2a_req_t *req);

/* Sends the accumulated usage rows to the master (once a second). */
void s2a_apikeys_flush(void);
void s2a_apikeys_cleanup(void);

/* /metrics: the per-key families, labelled by key id. */
void s2a_apikeys_metrics(struct evbuffer *out);

/* The admin routes. */
void s2a_apikeys_list(s2a_req_t *req);
void s2a_apikeys_create(s2a_req_t *req);
void s2a_apikeys_get(s2a_req_t *req);
void s2a_apikeys_update(s2a_req_t *req);
void s2a_apikeys_delete(s2a_req_t *req);
void s2a_apikeys_usage(s2a_req_t *req);

#endif /* S2A_APIKEYS_H */
