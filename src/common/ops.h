/*
 * ops.h: the table of control-channel operations.
 *
 * Master and workers talk over one socketpair per worker (chan.c) in
 * JSON messages named by their "op". One row per operation gives its
 * direction, the fields its message carries, the fields of its reply
 * (NULL when none is sent) and the handler on the receiving end; both
 * ends dispatch through the table, and scripts/check-docs holds
 * docs/control-channel.md to it.
 *
 * Field lists are blank-separated "name:type" words; a trailing "?" makes
 * a field optional. Types: str, int, bool, obj, arr, any. The dispatcher
 * checks them before the handler runs, so a handler finds every required
 * field present and typed. A record (S2A_OP_QUEUED) reaches its handler
 * later, from the master's write queue, with `from` NULL and the sender's
 * pid in "worker_pid".
 */
#ifndef S2A_OPS_H
#define S2A_OPS_H

#include "common/core.h"

#include <jansson.h>

typedef enum {
    S2A_OP_TO_MASTER = 0,
    S2A_OP_TO_WORKER
} s2a_op_dir_t;

/* Row flags. */
#define S2A_OP_TEST_ONLY 0x01 /* compiled into test builds only */
#define S2A_OP_QUEUED    0x02 /* a record: queued, kept while the db is busy */

/*
 * Handles `msg` from `from`: the sending worker (an s2a_proc_t) in the
 * master, NULL in a worker. `msg` is borrowed.
 */
typedef void (*s2a_op_handler_pt)(void *from, json_t *msg);

typedef struct s2a_op_s {
    const char *name;
    s2a_op_dir_t dir;
    const char *fields; /* request fields */
    const char *reply;  /* reply fields; NULL: no reply */
    s2a_op_handler_pt handler;
    unsigned flags;
} s2a_op_t;

extern const s2a_op_t s2a_ops[];
extern const size_t s2a_nops;

/* The row of `name` travelling in `dir`, or NULL. */
const s2a_op_t *s2a_op_find(const char *name, s2a_op_dir_t dir);

/*
 * Checks `msg` against the row's field list. Returns S2A_OK, or S2A_ERROR
 * with "<op>: field <name> ..." in `err`.
 */
int s2a_op_check(const s2a_op_t *op, json_t *msg, char *err, size_t errlen);

/* Most rows one "tokens_list" answer carries: a page of the pool, with
 * its secrets shown, stays far below a frame's 16 MiB. */
#define S2A_TOKENS_PAGE_MAX 1000

/* Most ids one "tokens_batch" takes (POST /api/tokens/batch/{action}). */
#define S2A_TOKENS_BATCH_MAX 10000

/* Handlers in the master (src/master/). */
void s2a_op_ready(void *from, json_t *msg);
void s2a_op_usage(void *from, json_t *msg);
void s2a_op_ping(void *from, json_t *msg);
void s2a_op_set_settings(void *from, json_t *msg);
void s2a_op_revoke_session(void *from, json_t *msg);
void s2a_op_throttle_save(void *from, json_t *msg);
void s2a_op_token_exists(void *from, json_t *msg);
void s2a_op_token_add(void *from, json_t *msg);
void s2a_op_token_update(void *from, json_t *msg);
void s2a_op_token_state(void *from, json_t *msg);
void s2a_op_token_delete(void *from, json_t *msg);
void s2a_op_tokens_list(void *from, json_t *msg);
void s2a_op_tokens_batch(void *from, json_t *msg);
void s2a_op_stats(void *from, json_t *msg);
void s2a_op_token_refreshed(void *from, json_t *msg);
void s2a_op_token_refresh_failed(void *from, json_t *msg);
void s2a_op_token_outcome(void *from, json_t *msg);
void s2a_op_video_submitted(void *from, json_t *msg);
void s2a_op_task_write(void *from, json_t *msg);
void s2a_op_task_record(void *from, json_t *msg);
void s2a_op_request_log(void *from, json_t *msg);
void s2a_op_logs_list(void *from, json_t *msg);
void s2a_op_tasks_list(void *from, json_t *msg);
void s2a_op_video_get(void *from, json_t *msg);
void s2a_op_videos_list(void *from, json_t *msg);
void s2a_op_video_delete(void *from, json_t *msg);
void s2a_op_webhooks_list(void *from, json_t *msg);
void s2a_op_webhook_create(void *from, json_t *msg);
void s2a_op_webhook_update(void *from, json_t *msg);
void s2a_op_webhook_delete(void *from, json_t *msg);
void s2a_op_webhook_deliveries(void *from, json_t *msg);
void s2a_op_webhook_test(void *from, json_t *msg);
void s2a_op_webhook_result(void *from, json_t *msg);
void s2a_op_key_create(void *from, json_t *msg);
void s2a_op_key_update(void *from, json_t *msg);
void s2a_op_key_delete(void *from, json_t *msg);
void s2a_op_keys_list(void *from, json_t *msg);
void s2a_op_key_usage_get(void *from, json_t *msg);
void s2a_op_key_usage(void *from, json_t *msg);
void s2a_op_character_write(void *from, json_t *msg);
void s2a_op_characters_list(void *from, json_t *msg);
void s2a_op_character_get(void *from, json_t *msg);
void s2a_op_character_delete(void *from, json_t *msg);
void s2a_op_character_owners(void *from, json_t *msg);
void s2a_op_character_delete_result(void *from, json_t *msg);
void s2a_op_sweep_now(void *from, json_t *msg);

/* Handlers in a worker (src/worker/). */
void s2a_op_reply(void *from, json_t *msg);
void s2a_op_drain(void *from, json_t *msg);
void s2a_op_reopen_logs(void *from, json_t *msg);
void s2a_op_refresh_token(void *from, json_t *msg);
void s2a_op_quota_check(void *from, json_t *msg);
void s2a_op_job_resume(void *from, json_t *msg);
void s2a_op_webhook_send(void *from, json_t *msg);
void s2a_op_character_purge(void *from, json_t *msg);

#endif /* S2A_OPS_H */
