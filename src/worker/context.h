/*
 * context.h: the state of this worker process, shared by its subsystems
 * (there is exactly one per process, s2a_worker), and the helpers to reach
 * the master and the shared table (context.c).
 */
#ifndef S2A_CONTEXT_H
#define S2A_CONTEXT_H

#include "common/chan.h"
#include "common/shm.h"
#include "worker/http.h"
#include "worker/args.h"

/* Answer of the master to a call; `reply` is NULL if the channel died. */
typedef void (*s2a_call_done_pt)(json_t *reply, void *arg);

typedef struct s2a_worker_s {
    const s2a_worker_args_t *args;
    const s2a_conf_t *conf;
    s2a_shm_t *shm;
    struct event_base *base;
    s2a_http_t *http;
    s2a_chan_t *chan;
    s2a_shm_settings_t settings;
    uint32_t settings_seq;
    bool draining;
    bool exiting; /* the loop ended: whatever is still open is torn down */
    int64_t drain_deadline_ms;
    bool test_hooks;
} s2a_worker_t;

extern s2a_worker_t s2a_worker;

/* Resets s2a_worker for the worker `args` describes (first thing after
 * fork). */
void s2a_worker_context_init(const s2a_worker_args_t *args);

/* Re-reads the settings snapshot if the master changed it. */
void s2a_worker_refresh_settings(void);

/*
 * Sends `msg` (borrowed; an "id" is added) to the master and calls `done`
 * with the reply, or with NULL if the master goes away. Returns a call
 * handle for s2a_worker_call_cancel, or 0 on failure.
 */
uint64_t s2a_worker_call_master(json_t *msg, s2a_call_done_pt done, void *arg);
/* The caller no longer wants the answer (e.g. its client left). */
void s2a_worker_call_cancel(uint64_t id);
/*
 * Delivers `reply` (borrowed) to call `id` and forgets the call; id 0
 * delivers it to every pending call (NULL when the worker exits).
 */
void s2a_worker_call_finish(json_t *reply, uint64_t id);

/*
 * Copies the access token of token `id` from the shared table into `out`
 * (S2A_SHM_AT_MAX bytes). Returns false when the token is unknown.
 */
bool s2a_worker_token_at(int64_t id, char *out);

/* The same, plus the token's own proxy into `proxy` (256 bytes, "" when
 * it has none: the global proxy applies). */
bool s2a_worker_token_secret(int64_t id, char *at, char *proxy);

/*
 * The HTTP status for a refused master call: 503 when the master is gone
 * or its database refused the write ("code":"database"), else
 * `otherwise` (the request itself was wrong).
 */
int s2a_worker_failure_status(json_t *reply, int otherwise);

/* Sends a message that expects no answer. */
void s2a_worker_notify_master(json_t *msg);

#endif /* S2A_CONTEXT_H */
