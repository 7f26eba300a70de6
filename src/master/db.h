/*
 * db.h: the SQLite database. Only the master opens it; it is the single
 * writer, applying the mutations workers send over the control channel.
 */
#ifndef S2A_DB_H
#define S2A_DB_H

#include "common/conf.h"
#include "common/shm.h"

#include <jansson.h>

typedef struct s2a_db_s s2a_db_t;

#define S2A_DB_FILE "sora2api.db"

/*
 * Opens (creating if needed) `<data_dir>/sora2api.db` in WAL mode and runs
 * the pending migrations. Returns NULL with a message in `err`.
 */
s2a_db_t *s2a_db_open(const char *data_dir, char *err, size_t errlen);
void s2a_db_close(s2a_db_t *db);

/*
 * In a freshly forked worker: makes the database, its WAL, WAL index and
 * journal, secret.key and the data_dir lock file unreachable, without
 * calling into SQLite (closing the handle would checkpoint the master's
 * WAL from the child). Each descriptor naming one of those files under
 * `data_dir` (found through /proc/self/fd) is replaced by /dev/null, and
 * every mapping of them (the -shm WAL index) is unmapped. The inherited
 * handle must never be used afterwards. Returns how many descriptors it
 * dropped, or -1 when /proc could not be read.
 */
int s2a_db_drop_after_fork(const char *data_dir);

/* Schema version after migrations (PRAGMA user_version). */
int s2a_db_schema_version(s2a_db_t *db);

int s2a_db_begin(s2a_db_t *db);
int s2a_db_commit(s2a_db_t *db);
void s2a_db_rollback(s2a_db_t *db);
bool s2a_db_in_transaction(s2a_db_t *db);

/*
 * The connection itself, for a subsystem that keeps its own tables
 * (webhooks.c): prepared statements only, in the master, inside the
 * transactions above.
 */
struct sqlite3 *s2a_db_sqlite(s2a_db_t *db);

/* Column `i` of the row `st` stands on as JSON (NULL as null): text, an
 * integer, unix seconds as ISO-8601 UTC. */
struct sqlite3_stmt;
json_t *s2a_db_col_text(struct sqlite3_stmt *st, int i);
json_t *s2a_db_col_int(struct sqlite3_stmt *st, int i);
json_t *s2a_db_col_time(struct sqlite3_stmt *st, int i);
/* Unix seconds as an ISO-8601 UTC string ("2026-12-01T23:11:26Z"). */
json_t *s2a_db_iso_time(int64_t t);

/*
 * Runtime settings (key/value). `_get` returns S2A_OK, S2A_DECLINED when
 * the key is absent or its value does not fit `len` (logged), or
 * S2A_ERROR. `_set` inserts or replaces.
 */
int s2a_db_setting_get(s2a_db_t *db, const char *key, char *buf, size_t len);
int s2a_db_setting_set(s2a_db_t *db, const char *key, const char *value);

/*
 * Secrets are kept in their current form: SEALED rows sealed with `key`
 * (secret.key), the API key as a keyed HMAC (S2A_SET_T_APIKEY); rows an
 * older version stored in clear or as a bare SHA-256 are converted here,
 * once, in the same transaction.
 *
 * Stores every runtime setting that has no row yet: its default, or what
 * its seed makes from the [defaults] section of `conf` (the API key and
 * admin password hashed). Rows present are left alone. Returns S2A_OK or
 * S2A_ERROR.
 */
int s2a_db_seed(s2a_db_t *db, const s2a_conf_t *conf, const uint8_t key[32]);

/*
 * Builds the shm settings snapshot from the database, row by row of the
 * settings table (SEALED rows opened with `key`). A stored value its row refuses is replaced by the
 * default (with a warning naming the key when `warn`); a required one
 * missing or corrupt fails with S2A_ERROR.
 */
int s2a_db_load_settings(s2a_db_t *db, s2a_shm_settings_t *out, bool warn,
                         const uint8_t key[32]);

/* Adds `count` to the usage row (day, route, status). */
int s2a_db_usage_add(s2a_db_t *db, const char *day, const char *route,
                     int status, int64_t count);

/* Records a logged-out admin session until `expires`. */
int s2a_db_revoked_add(s2a_db_t *db, const char *nonce, int64_t expires);

/* Calls `cb` for every unexpired revoked session (expired ones deleted). */
typedef void (*s2a_db_revoked_pt)(const char *nonce, int64_t expires,
                                  void *arg);
int s2a_db_revoked_load(s2a_db_t *db, int64_t now, s2a_db_revoked_pt cb,
                        void *arg);

/*
 * Admin login throttle rows that started a lock (see shm.h), keyed by the
 * hex of their 16-byte key. `_save` with `fails` 0 deletes the row.
 * `_load` calls `cb` for every row still counting or locking (the others
 * are deleted).
 */
int s2a_db_throttle_save(s2a_db_t *db, const char *key, int kind, int fails,
                         int64_t window_start, int64_t locked_until);
typedef void (*s2a_db_throttle_pt)(const char *key, int kind, int fails,
                                   int64_t window_start, int64_t locked_until,
                                   void *arg);
int s2a_db_throttle_load(s2a_db_t *db, int64_t now, s2a_db_throttle_pt cb,
                         void *arg);

/*
 * The account pool. `fields` maps column names (see token_columns in
 * db.c) to JSON values; token, st and rt are sealed with `key`.
 * Insert/update return S2A_DECLINED for a duplicate token (or, update, an
 * unknown id) and write a reason into `err`.
 */
int s2a_db_token_insert(s2a_db_t *db, const uint8_t *key, const char *sha256,
                        json_t *fields, int64_t now, int64_t *id, char *err,
                        size_t errlen);
int s2a_db_token_update(s2a_db_t *db, const uint8_t *key, int64_t id,
                        json_t *fields, const char *new_sha256, char *err,
                        size_t errlen);
int s2a_db_token_set_state(s2a_db_t *db, int64_t id, const char *state,
                           const char *reason, int64_t cooled_until,
                           int64_t now);
int s2a_db_token_delete(s2a_db_t *db, int64_t id);

/* Finds a token by the SHA-256 of its AT, or (sha256 NULL) by e-mail. */
int s2a_db_token_find(s2a_db_t *db, const char *sha256, const char *email,
                      int64_t *id, char *found_email, size_t emlen);

/*
 * Tokens newest first, as a JSON array: token `id` when > 0, else at most
 * `limit` (<= 0: all) of those with ids below `before` (<= 0: all).
 */
json_t *s2a_db_tokens_list(s2a_db_t *db, const uint8_t *key, int64_t id,
                           int64_t before, int limit, bool reveal);

/* Calls `cb` with the shm view and the opened AT of each token (or of
 * token `id` when > 0). */
typedef void (*s2a_db_token_pt)(const s2a_shm_token_t *t, const char *at,
                                const char *proxy, void *arg);
int s2a_db_tokens_load(s2a_db_t *db, const uint8_t *key, int64_t id,
                       s2a_db_token_pt cb, void *arg);

/*
 * Tokens the master should have a worker look at: `refresh` when the AT
 * expires within `refresh_window` seconds (and an ST or RT exists), else
 * a quota check is due. `st`/`rt` are opened (NULL when absent). Returns
 * how many rows were handed to `cb`, or -1.
 */
typedef void (*s2a_db_due_pt)(int64_t id, bool refresh, const char *st,
                              const char *rt, const char *client_id,
                              const char *proxy, void *arg);
int s2a_db_tokens_due(s2a_db_t *db, const uint8_t *key, int64_t now,
                      int64_t refresh_window, int64_t quota_interval, int limit,
                      s2a_db_due_pt cb, void *arg);

/* Stamps refresh_attempted_at or quota_checked_at. */
int s2a_db_token_mark(s2a_db_t *db, int64_t id, const char *column,
                      int64_t now);

/* Pool totals for GET /api/stats (today = the UTC day of `now`). */
json_t *s2a_db_stats(s2a_db_t *db, int64_t now);

/*
 * A video task was accepted on token `id`: one video fewer left, as Sora
 * counts at creation. At zero the quota is re-read a minute later (the
 * count is Sora's estimate; its answer holds the real reset time).
 * Returns S2A_OK, S2A_DECLINED when there was no known count to lower.
 */
int s2a_db_token_video_used(s2a_db_t *db, int64_t id, int64_t now);

/*
 * Cooling tokens whose cooldown is over become active again (token `id`,
 * or every token when `id` is 0); `cb` gets each id. Returns how many.
 */
int s2a_db_tokens_end_cooldown(s2a_db_t *db, int64_t id, int64_t now,
                               void (*cb)(int64_t id));

/*
 * The end of one generation on token `id`, a use either way. `result`
 * 1 (success) counts an image or a video (today's too) and ends the run
 * of errors; 0 (a token or upstream fault) counts an error and the run
 * grows; -1 (the request's own fault: content policy, a prompt Sora
 * failed, bad input) leaves both alone. Returns the run length after the
 * update, or -1 when the token is gone or the write failed.
 */
int s2a_db_token_outcome(s2a_db_t *db, int64_t id, bool video, int result,
                         int64_t now);

/*
 * Closes the unfinished task rows (queued, submitting, running) that can
 * be neither resumed nor resubmitted as failed with `code` and `message`:
 * a submission may have been sent and Sora's answer is lost
 * (`submitting`, or `running` without a task id), or a queued row from
 * before params said whether it had an input image. Those of
 * `worker_pid`, or all of them when it is 0 (start). Returns how many,
 * or -1.
 */
int s2a_db_tasks_close(s2a_db_t *db, int64_t worker_pid, const char *code,
                       const char *message, int64_t now);

/*
 * Closes the queued rows (nothing sent yet) of `worker_pid` (0: all)
 * that had an input image: the gateway does not keep it, so they cannot
 * be submitted again. Failed with `interrupted`. Returns how many, or -1.
 */
int s2a_db_tasks_close_unkept(s2a_db_t *db, int64_t worker_pid, int64_t now);

/*
 * Calls `each` with the model and created_at (unix seconds) of every row
 * of `worker_pid` that s2a_db_tasks_close(worker_died) and
 * s2a_db_tasks_close_unkept closed at `now` (the counting of a dead
 * worker's jobs as ended). Returns how many, or -1.
 */
typedef void (*s2a_db_closed_pt)(const char *model, int64_t created_at,
                                 void *arg);
int s2a_db_tasks_closed_each(s2a_db_t *db, int64_t worker_pid, int64_t now,
                             s2a_db_closed_pt each, void *arg);

/*
 * Start-up: resumable and resubmittable rows belong to no worker of this
 * run (their pids were the last run's). Returns how many, or -1.
 */
int s2a_db_tasks_unassign(s2a_db_t *db, int64_t now);

/*
 * At most `limit` rows past row id `after` that a worker can take over,
 * by id: resumable ones (queued or running with an upstream task id,
 * token and model) and resubmittable ones (queued, nothing sent, no
 * input image, a model and a prompt). Objects {id, job_id, model, mode,
 * created_at (epoch seconds), worker_pid (0 for none), params (object)}
 * plus `task_id` and `token_id` (resumable) or `prompt`
 * (resubmittable). Caller owns the array; NULL on error.
 */
json_t *s2a_db_tasks_resumable(s2a_db_t *db, int64_t after, int limit);

/*
 * Generation records. A task row is keyed by the gateway's job id and
 * updated as the job moves (fields: upstream_task_id, token_id, model,
 * mode, prompt, status, progress, result_urls, error_message,
 * completed_at, duration_ms, worker_pid, error_code, params, owner; and
 * created_at, which only a new row takes, else it is `now`). A
 * request-log row is one answered generation request.
 */
int s2a_db_task_upsert(s2a_db_t *db, const char *job_id, json_t *fields,
                       int64_t now, char *err, size_t errlen);
int s2a_db_request_log(s2a_db_t *db, json_t *fields, int64_t now);

/*
 * What a listing of tasks or request logs keeps. NULL and 0 mean "any".
 * Only the S2A_DB_LIST_SCAN newest rows of the time range (and before
 * `before`) are looked at, so a filter that matches little costs a
 * bounded scan of the primary key.
 */
#define S2A_DB_LIST_SCAN 50000

typedef struct s2a_db_filter_s {
    int limit;             /* rows answered, 1..1000 */
    const char *status;    /* tasks: the status; logs: ok, error or a code */
    const char *model;     /* exact model id */
    const char *operation; /* logs only */
    const char *job_id;    /* tasks only: that one row, wherever it is */
    int64_t token_id;
    int64_t since, until; /* created_at >= since, < until (unix seconds) */
    int64_t before;       /* id < before: the next page */
} s2a_db_filter_t;

/* Rows matching `f`, newest first (caller owns; NULL when the read
 * failed). */
json_t *s2a_db_logs_list(s2a_db_t *db, const s2a_db_filter_t *f);
json_t *s2a_db_tasks_list(s2a_db_t *db, const s2a_db_filter_t *f);

/*
 * The unfinished task rows: {"queued": n, "running": n} (caller owns;
 * NULL when the read failed).
 */
json_t *s2a_db_jobs_counts(s2a_db_t *db);

/*
 * Video task rows (model sora-video-*) for /v1/videos, as arrays of
 * objects with unix times in `created` and `completed` (caller owns;
 * NULL when the read failed). _get: the row of `job_id` (0 or 1).
 * _page: `limit` rows past row `after` (NULL: from the start), oldest
 * first when `asc`. _delete: removes a finished row; S2A_OK, S2A_DECLINED
 * (no such finished row) or S2A_ERROR. `owner` (an API key's id) limits
 * each to that owner's rows; 0 means every row.
 */
json_t *s2a_db_video_get(s2a_db_t *db, const char *job_id, int64_t owner);
json_t *s2a_db_videos_page(s2a_db_t *db, int limit, const char *after, bool asc,
                           int64_t owner);
int s2a_db_video_delete(s2a_db_t *db, const char *job_id, int64_t owner);

/* A trivial read proving the database answers (for /readyz). */
int s2a_db_ping(s2a_db_t *db);

#endif /* S2A_DB_H */
