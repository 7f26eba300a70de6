/*
 * journal.c: the generation records in the master: task rows, request
 * logs and per-day usage counters written in the current batch, and the
 * listings and statistics workers ask for.
 */
#include "master/journal.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"

#include <stdio.h>
#include <string.h>

void
s2a_op_task_record(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *fields = json_object_get(msg, "fields");
    char err[256];

    S2A_UNUSED(from);
    if (job == NULL || !json_is_object(fields)
        || s2a_ctlserver_batch() != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "malformed task record ignored");
        return;
    }
    /* Whose it is: a dead worker's unfinished tasks are closed. */
    if (json_is_integer(json_object_get(msg, "worker_pid"))) {
        json_object_set(fields, "worker_pid",
                        json_object_get(msg, "worker_pid"));
    }
    if (s2a_db_task_upsert(s2a_master.db, job, fields, s2a_now(), err,
                           sizeof(err))
        != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "task %s not recorded: %s", job, err);
    }
}

void
s2a_op_request_log(void *from, json_t *msg)
{
    json_t *fields = json_object_get(msg, "fields");

    S2A_UNUSED(from);
    if (!json_is_object(fields)
        || !json_is_string(json_object_get(fields, "operation"))
        || !json_is_integer(json_object_get(fields, "status_code"))
        || s2a_ctlserver_batch() != S2A_OK)
    {
        s2a_log(LOG_WARNING, 0, "malformed request log ignored");
        return;
    }
    if (s2a_db_request_log(s2a_master.db, fields, s2a_now()) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "request log row not written");
    }
}

/* A string field of `msg`, NULL when absent or empty. */
static const char *
msg_str(json_t *msg, const char *name)
{
    const char *v = json_string_value(json_object_get(msg, name));

    return v != NULL && v[0] != '\0' ? v : NULL;
}

static void
records_list(s2a_proc_t *proc, json_t *msg, bool tasks)
{
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;
    s2a_db_filter_t f;

    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    memset(&f, 0, sizeof(f));
    f.limit = (int) json_integer_value(json_object_get(msg, "limit"));
    if (f.limit <= 0 || f.limit > 1000) {
        f.limit = 100;
    }
    f.status = msg_str(msg, "status");
    f.model = msg_str(msg, "model");
    f.operation = msg_str(msg, "operation");
    f.job_id = msg_str(msg, "job_id");
    f.token_id = json_integer_value(json_object_get(msg, "token_id"));
    f.since = json_integer_value(json_object_get(msg, "since"));
    f.until = json_integer_value(json_object_get(msg, "until"));
    f.before = json_integer_value(json_object_get(msg, "before"));
    rows = tasks ? s2a_db_tasks_list(s2a_master.db, &f)
                 : s2a_db_logs_list(s2a_master.db, &f);
    if (rows == NULL) {
        s2a_ctlserver_fail(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    s2a_ctlserver_reply(proc, reply);
}

void
s2a_op_logs_list(void *from, json_t *msg)
{
    records_list(from, msg, false);
}

void
s2a_op_tasks_list(void *from, json_t *msg)
{
    records_list(from, msg, true);
}

/*
 * Reads must see every record a worker sent before asking (its queued
 * row of a job it just started, say): the queue is applied and the
 * batch committed first. When the database is busy the read sees what
 * is committed.
 */
static void
records_flush(void)
{
    if (s2a_ctlserver_queued() > 0 || s2a_db_in_transaction(s2a_master.db)) {
        if (s2a_ctlserver_batch() == S2A_OK) {
            s2a_ctlserver_commit();
        }
    }
}

/* "video_get": one video task row by job id (`row` absent: none). */
void
s2a_op_video_get(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;

    records_flush();
    rows = s2a_db_video_get(s2a_master.db, job);
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    if (json_array_size(rows) > 0) {
        json_object_set(reply, "row", json_array_get(rows, 0));
    }
    json_decref(rows);
    s2a_ctlserver_reply(from, reply);
}

/* "videos_list": a page of video task rows and whether more follow. */
void
s2a_op_videos_list(void *from, json_t *msg)
{
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    const char *after = json_string_value(json_object_get(msg, "after"));
    const char *order = json_string_value(json_object_get(msg, "order"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;
    bool more;

    if (limit < 1 || limit > 100) {
        limit = 20;
    }
    records_flush();
    /* One row more than asked tells whether another page exists. */
    rows = s2a_db_videos_page(s2a_master.db, (int) limit + 1, after,
                              order != NULL && strcmp(order, "asc") == 0);
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    more = json_array_size(rows) > (size_t) limit;
    if (more) {
        json_array_remove(rows, (size_t) limit);
    }
    json_object_set_new(reply, "rows", rows);
    json_object_set_new(reply, "has_more", json_boolean(more));
    s2a_ctlserver_reply(from, reply);
}

/*
 * "video_delete": removes a finished video row, answered after the
 * commit with the row (the worker removes its cached file). `code`
 * `not_found`, or `running` for a job that has not ended.
 */
void
s2a_op_video_delete(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows, *row;
    const char *status;
    int rc;

    records_flush();
    rows = s2a_db_video_get(s2a_master.db, job);
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    row = json_array_get(rows, 0);
    status = json_string_value(json_object_get(row, "status"));
    if (row == NULL || status == NULL || strcmp(status, "queued") == 0
        || strcmp(status, "running") == 0)
    {
        json_object_set_new(reply, "code",
                            json_string(row == NULL ? "not_found" : "running"));
        json_decref(rows);
        s2a_ctlserver_fail(from, reply,
                           row == NULL ? "not found" : "still running");
        return;
    }
    json_object_set(reply, "row", row);
    json_decref(rows);
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    rc = s2a_db_video_delete(s2a_master.db, job);
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply,
                           rc == S2A_DECLINED ? "not found"
                                              : "database write failed");
        return;
    }
    s2a_log(LOG_INFO, 0, "video %s deleted", job);
    s2a_ctlserver_reply_later(from, reply);
}

void
s2a_op_stats(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_t *reply = s2a_ctlserver_reply_for(msg), *stats;

    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    stats = s2a_db_stats(s2a_master.db, s2a_now());
    if (stats != NULL) {
        json_object_set_new(stats, "jobs", s2a_db_jobs_counts(s2a_master.db));
    }
    if (stats == NULL || json_object_get(stats, "jobs") == NULL) {
        json_decref(stats);
        s2a_ctlserver_fail(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "stats", stats);
    s2a_ctlserver_reply(proc, reply);
}

void
s2a_op_usage(void *from, json_t *msg)
{
    json_t *rows = json_object_get(msg, "rows"), *row;
    size_t i;

    S2A_UNUSED(from);
    if (!json_is_array(rows) || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    json_array_foreach (rows, i, row) {
        const char *day = json_string_value(json_array_get(row, 0));
        const char *route = json_string_value(json_array_get(row, 1));
        json_t *status = json_array_get(row, 2);
        json_t *count = json_array_get(row, 3);

        if (day == NULL || route == NULL || !json_is_integer(status)
            || !json_is_integer(count))
        {
            s2a_log(LOG_WARNING, 0, "malformed usage row ignored");
            continue;
        }
        s2a_db_usage_add(s2a_master.db, day, route,
                         (int) json_integer_value(status),
                         json_integer_value(count));
    }
}

/* ---------------------------------------------------------------------
 * Resume: unfinished jobs Sora has the task of are finished by a worker
 */

#define RESUME_BATCH 200

static struct {
    bool wanted;      /* a scan may find rows nobody runs */
    json_t *assigned; /* job_id -> pid it was handed to (this run) */
} R;

static bool
pid_live(json_int_t pid)
{
    s2a_proc_t *p;

    for (p = s2a_master.procs; pid > 0 && p != NULL; p = p->next) {
        if (p->pid == (pid_t) pid) {
            return true;
        }
    }
    return false;
}

/* The queued record behind a hand-over: the row is the new worker's. */
static void
assign_task(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *fields;
    char err[256];

    S2A_UNUSED(from);
    if (job == NULL || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    fields = json_pack("{s:O}", "worker_pid", json_object_get(msg, "pid"));
    if (fields != NULL
        && s2a_db_task_upsert(s2a_master.db, job, fields, s2a_now(), err,
                              sizeof(err))
            != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "task %s not reassigned: %s", job, err);
    }
    json_decref(fields);
}

/* Hands `row` to `proc`; returns S2A_OK when it was sent. */
static int
hand_over(s2a_proc_t *proc, json_t *row)
{
    const char *job = json_string_value(json_object_get(row, "job_id"));
    json_t *msg, *rec;

    msg = json_pack(
        "{s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O}", "op", "job_resume",
        "job_id", job, "task_id", json_object_get(row, "task_id"), "token_id",
        json_object_get(row, "token_id"), "model",
        json_object_get(row, "model"), "mode", json_object_get(row, "mode"),
        "created_at", json_object_get(row, "created_at"), "params",
        json_object_get(row, "params"));
    rec = json_pack("{s:s, s:I}", "job_id", job, "pid", (json_int_t) proc->pid);
    if (msg == NULL || rec == NULL || s2a_chan_send(proc->chan, msg) != S2A_OK)
    {
        json_decref(msg);
        json_decref(rec);
        return S2A_ERROR;
    }
    json_object_set_new(R.assigned, job, json_integer(proc->pid));
    s2a_ctlserver_enqueue(assign_task, rec);
    json_decref(rec);
    json_decref(msg);
    s2a_log(LOG_NOTICE, 0,
            "job %s (upstream task %s) resumed by worker %d "
            "(pid %d)",
            job, json_string_value(json_object_get(row, "task_id")), proc->slot,
            (int) proc->pid);
    return S2A_OK;
}

void
s2a_journal_resume_tick(void)
{
    json_t *rows, *row, *owner;
    const char *job;
    void *tmp;
    s2a_proc_t *proc;
    size_t i;
    bool left = false;

    /* Not while records wait: a dead worker's last ones may end rows. */
    if (!R.wanted || s2a_master.stopping || s2a_ctlserver_queued() > 0
        || s2a_db_in_transaction(s2a_master.db))
    {
        return;
    }
    if (R.assigned == NULL && (R.assigned = json_object()) == NULL) {
        return;
    }
    /* Hand-overs to workers that are gone no longer hold their rows. */
    json_object_foreach_safe (R.assigned, tmp, job, owner) {
        if (!pid_live(json_integer_value(owner))) {
            json_object_del(R.assigned, job);
        }
    }
    rows = s2a_db_tasks_resumable(s2a_master.db, RESUME_BATCH);
    if (rows == NULL) {
        return; /* retried at the next tick */
    }
    json_array_foreach (rows, i, row) {
        job = json_string_value(json_object_get(row, "job_id"));
        /* A live worker runs it already (its own, or handed over). */
        if (pid_live(json_integer_value(json_object_get(row, "worker_pid")))
            || json_object_get(R.assigned, job) != NULL)
        {
            continue;
        }
        proc = s2a_master_next_ready();
        if (proc == NULL || hand_over(proc, row) != S2A_OK) {
            left = true;
            break;
        }
    }
    R.wanted = left || json_array_size(rows) == RESUME_BATCH;
    json_decref(rows);
}

void
s2a_journal_resume_cleanup(void)
{
    json_decref(R.assigned);
    R.assigned = NULL;
}

/* The queued record behind s2a_journal_worker_gone. */
static void
close_worker_tasks(void *from, json_t *msg)
{
    json_int_t pid = json_integer_value(json_object_get(msg, "worker_pid"));
    int n;

    S2A_UNUSED(from);
    if (pid <= 0 || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    n = s2a_db_tasks_close(s2a_master.db, pid, "worker_died",
                           "the worker process running it died", s2a_now());
    if (n > 0) {
        s2a_log(LOG_WARNING, 0,
                "%d tasks of worker pid %lld closed as failed (worker_died)", n,
                (long long) pid);
    }
    /* The rest (Sora has their tasks) go to a live worker. */
    R.wanted = true;
}

void
s2a_journal_worker_gone(pid_t pid)
{
    json_t *msg = json_pack("{s:I}", "worker_pid", (json_int_t) pid);

    if (msg != NULL) {
        /* After whatever the worker sent last, which is queued already. */
        s2a_ctlserver_enqueue(close_worker_tasks, msg);
        json_decref(msg);
    }
}

int
s2a_journal_recover(void)
{
    int n, kept;

    if (s2a_db_begin(s2a_master.db) != S2A_OK) {
        return S2A_ERROR;
    }
    n = s2a_db_tasks_close(s2a_master.db, 0, "interrupted",
                           "the daemon stopped before the task finished",
                           s2a_now());
    kept = n < 0 ? -1 : s2a_db_tasks_unassign(s2a_master.db, s2a_now());
    if (kept < 0 || s2a_db_commit(s2a_master.db) != S2A_OK) {
        s2a_db_rollback(s2a_master.db);
        return S2A_ERROR;
    }
    if (n > 0) {
        s2a_log(LOG_WARNING, 0,
                "%d tasks left unfinished by the last run closed as failed "
                "(interrupted)",
                n);
    }
    if (kept > 0) {
        s2a_log(LOG_NOTICE, 0,
                "%d tasks left unfinished by the last run will be resumed",
                kept);
        R.wanted = true;
    }
    return S2A_OK;
}
