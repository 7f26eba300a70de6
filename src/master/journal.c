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

static void
records_list(s2a_proc_t *proc, json_t *msg, bool tasks)
{
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    const char *status = json_string_value(json_object_get(msg, "status"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;

    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    if (limit <= 0 || limit > 1000) {
        limit = 100;
    }
    rows = tasks ? s2a_db_tasks_list(s2a_master.db, (int) limit, status)
                 : s2a_db_logs_list(s2a_master.db, (int) limit);
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

void
s2a_op_stats(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_t *reply = s2a_ctlserver_reply_for(msg), *stats;

    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    stats = s2a_db_stats(s2a_master.db, s2a_now());
    if (stats == NULL) {
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
    int n;

    if (s2a_db_begin(s2a_master.db) != S2A_OK) {
        return S2A_ERROR;
    }
    n = s2a_db_tasks_close(s2a_master.db, 0, "interrupted",
                           "the daemon stopped before the task finished",
                           s2a_now());
    if (n < 0 || s2a_db_commit(s2a_master.db) != S2A_OK) {
        s2a_db_rollback(s2a_master.db);
        return S2A_ERROR;
    }
    if (n > 0) {
        s2a_log(LOG_WARNING, 0,
                "%d tasks left unfinished by the last run closed as failed "
                "(interrupted)",
                n);
    }
    return S2A_OK;
}
