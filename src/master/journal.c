/*
 * journal.c: the generation records in the master: task rows, request
 * logs and per-day usage counters written in the current batch, and the
 * listings and statistics workers ask for; closing what a dead worker or
 * a stop left, and handing the rest (a task Sora has, or a job nothing
 * was sent for yet) to a live worker.
 */
#include "master/journal.h"
#include "common/jobtab.h"
#include "common/log.h"
#include "common/models.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"
#include "master/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
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
        return;
    }
    s2a_webhooks_task_recorded(job, fields);
}

/*
 * "task_write": a task row that must be durable before its job goes on
 * (the first row, each `submitting` row). Upserted in the batch, as the
 * sender's (worker_pid), and answered after the commit; a database that
 * refuses the write is answered at once with code "database". Written
 * at once rather than queued: the job waits for it, and the records it
 * sends before one (none of the same row) need no order with it.
 */
void
s2a_op_task_write(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char err[256];

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    json_object_set_new(fields, "worker_pid", json_integer(proc->pid));
    if (s2a_db_task_upsert(s2a_master.db, job, fields, s2a_now(), err,
                           sizeof(err))
        != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "task %s not written: %s", job, err);
        s2a_ctlserver_fail(proc, reply, err);
        return;
    }
    s2a_ctlserver_reply_later(proc, reply);
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

/* The API key a video read is for (0: every owner). */
static int64_t
owner_of(json_t *msg)
{
    return json_integer_value(json_object_get(msg, "owner"));
}

/* "video_get": one video task row by job id (`row` absent: none). */
void
s2a_op_video_get(void *from, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;

    s2a_ctlserver_flush();
    rows = s2a_db_video_get(s2a_master.db, job, owner_of(msg));
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
    s2a_ctlserver_flush();
    /* One row more than asked tells whether another page exists. */
    rows = s2a_db_videos_page(s2a_master.db, (int) limit + 1, after,
                              order != NULL && strcmp(order, "asc") == 0,
                              owner_of(msg));
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

    s2a_ctlserver_flush();
    rows = s2a_db_video_get(s2a_master.db, job, owner_of(msg));
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    row = json_array_get(rows, 0);
    status = json_string_value(json_object_get(row, "status"));
    if (row == NULL || status == NULL || strcmp(status, "queued") == 0
        || strcmp(status, "submitting") == 0 || strcmp(status, "running") == 0)
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
    rc = s2a_db_video_delete(s2a_master.db, job, owner_of(msg));
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply,
                           rc == S2A_DECLINED ? "not found"
                                              : "database write failed");
        return;
    }
    /* No worker may answer from a slot what the database no longer has
     * (a commit that fails leaves a row the master answers for). */
    s2a_jobtab_drop(s2a_jobs, job);
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
 * Resume: unfinished jobs Sora has the task of are finished by a worker,
 * and jobs nothing was sent for yet are submitted by one
 */

#define RESUME_BATCH 200

static struct {
    bool wanted;      /* a scan may find rows nobody runs */
    int64_t after;    /* the scan goes on past this row id */
    json_t *assigned; /* job_id -> pid it was handed to (this run) */
} R;

/* Rows nobody runs may exist (again): the scan starts over. */
static void
resume_wanted(void)
{
    R.wanted = true;
    R.after = 0;
}

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

/*
 * The live job table's slot of video `job` from its row (read inside the
 * open batch, if any), as run by `pid`; a job with no row (or whose row
 * cannot be read) loses its slot, and readers ask the master.
 */
static void
slot_from_row(const char *job, pid_t pid)
{
    json_t *rows;

    if (s2a_jobs == NULL) {
        return;
    }
    rows = s2a_db_video_get(s2a_master.db, job, 0);
    if (rows == NULL) {
        s2a_jobtab_drop(s2a_jobs, job); /* readers ask the master */
        return;
    }
    if (json_array_size(rows) == 0
        || s2a_jobtab_put_row(s2a_jobs, json_array_get(rows, 0), pid) != S2A_OK)
    {
        s2a_jobtab_drop(s2a_jobs, job);
    }
    json_decref(rows);
}

/*
 * Hands `row` to `proc`; returns S2A_OK when it was sent. A row with a
 * task id is followed (resume), one without is submitted (the row says
 * nothing was sent yet).
 */
static int
hand_over(s2a_proc_t *proc, json_t *row)
{
    const char *job = json_string_value(json_object_get(row, "job_id"));
    const char *task = json_string_value(json_object_get(row, "task_id"));
    json_t *msg, *rec;

    msg = json_pack("{s:s, s:s, s:O, s:O, s:O, s:O}", "op", "job_resume",
                    "job_id", job, "model", json_object_get(row, "model"),
                    "mode", json_object_get(row, "mode"), "created_at",
                    json_object_get(row, "created_at"), "params",
                    json_object_get(row, "params"));
    if (msg != NULL && task != NULL) {
        json_object_set(msg, "task_id", json_object_get(row, "task_id"));
        json_object_set(msg, "token_id", json_object_get(row, "token_id"));
    } else if (msg != NULL) {
        json_object_set(msg, "prompt", json_object_get(row, "prompt"));
    }
    if (msg != NULL && json_object_get(row, "stages") != NULL) {
        /* The job's history goes on where the row left it. */
        json_object_set(msg, "stages", json_object_get(row, "stages"));
    }
    rec = json_pack("{s:s, s:I}", "job_id", job, "pid", (json_int_t) proc->pid);
    if (msg == NULL || rec == NULL || s2a_chan_send(proc->chan, msg) != S2A_OK)
    {
        json_decref(msg);
        json_decref(rec);
        return S2A_ERROR;
    }
    json_object_set_new(R.assigned, job, json_integer(proc->pid));
    /* The resumed job's slot, until its worker writes it itself. */
    slot_from_row(job, proc->pid);
    s2a_ctlserver_enqueue(assign_task, rec);
    json_decref(rec);
    json_decref(msg);
    if (task != NULL) {
        s2a_log(LOG_NOTICE, 0,
                "job %s (upstream task %s) resumed by worker %d (pid %d)", job,
                task, proc->slot, (int) proc->pid);
    } else {
        s2a_log(LOG_NOTICE, 0,
                "job %s (not sent to Sora yet) handed to worker %d (pid %d) "
                "to submit",
                job, proc->slot, (int) proc->pid);
    }
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
    /* A page at a time, by row id: the rows live workers run (there may
     * be thousands) are passed over, not scanned again at every tick. */
    rows = s2a_db_tasks_resumable(s2a_master.db, R.after, RESUME_BATCH);
    if (rows == NULL) {
        return; /* retried at the next tick */
    }
    json_array_foreach (rows, i, row) {
        job = json_string_value(json_object_get(row, "job_id"));
        /* A live worker runs it already (its own, or handed over). */
        if (!pid_live(json_integer_value(json_object_get(row, "worker_pid")))
            && json_object_get(R.assigned, job) == NULL)
        {
            proc = s2a_master_next_ready();
            if (proc == NULL || hand_over(proc, row) != S2A_OK) {
                left = true; /* this row again at the next tick */
                break;
            }
        }
        R.after = json_integer_value(json_object_get(row, "id"));
    }
    if (!left && json_array_size(rows) < RESUME_BATCH) {
        R.after = 0; /* the end: a later scan starts over */
        R.wanted = false;
    }
    json_decref(rows);
}

void
s2a_journal_resume_cleanup(void)
{
    json_decref(R.assigned);
    R.assigned = NULL;
}

/*
 * The slots a dead worker wrote last say what its rows said before the
 * master closed them, or what it never managed to send: each unfinished
 * one becomes its row again (failed worker_died, or running for a
 * resume), or goes when there is no row. Runs in the batch, after the
 * worker's last records, so the rows are what readers will see.
 */
static void
slots_of_dead_worker(pid_t pid)
{
    char ids[64][S2A_JOB_ID_MAX];
    uint32_t cursor = 0;
    int i, n;

    while ((n = s2a_jobtab_unfinished(s2a_jobs, pid, ids, (int) S2A_NELEMS(ids),
                                      &cursor))
           > 0)
    {
        for (i = 0; i < n; i++) {
            slot_from_row(ids[i], pid);
        }
    }
}

/* Jobs of dead workers the open batch closed, counted once it commits. */
typedef struct ended_s {
    int kind;
    int64_t duration_ms;
} ended_t;

static struct {
    ended_t *rows;
    size_t n, cap;
    int64_t now;
} E;

/* One closed row of the batch (s2a_db_tasks_closed_each). */
static void
ended_stage(const char *model, int64_t created_at, void *arg)
{
    const s2a_model_t *m = model != NULL ? s2a_model_find(model) : NULL;
    ended_t *grown;
    size_t cap;

    S2A_UNUSED(arg);
    if (m == NULL) {
        return; /* not a generation job */
    }
    if (E.n == E.cap) {
        cap = E.cap > 0 ? E.cap * 2 : 16;
        grown = realloc(E.rows, cap * sizeof(*grown));
        if (grown == NULL) {
            return; /* one job fewer counted; nothing else depends on it */
        }
        E.rows = grown;
        E.cap = cap;
    }
    E.rows[E.n].kind = (int) m->kind;
    E.rows[E.n].duration_ms =
        created_at > 0 && created_at <= E.now ? (E.now - created_at) * 1000 : 0;
    E.n++;
}

void
s2a_journal_committed(bool ok)
{
    size_t i;

    for (i = 0; ok && i < E.n; i++) {
        s2a_stats_job_end(&s2a_master.shm->stats, E.rows[i].kind, S2A_JS_FAILED,
                          E.rows[i].duration_ms);
    }
    /* Rare (a worker died): nothing is kept between batches. */
    free(E.rows);
    E.rows = NULL;
    E.n = E.cap = 0;
}

/* The queued record behind s2a_journal_worker_gone. */
static void
close_worker_tasks(void *from, json_t *msg)
{
    json_int_t pid = json_integer_value(json_object_get(msg, "worker_pid"));
    int64_t now = s2a_now();
    int n, unkept;

    S2A_UNUSED(from);
    if (pid <= 0 || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    n = s2a_db_tasks_close(s2a_master.db, pid, "worker_died",
                           "the worker process running it died", now);
    unkept = s2a_db_tasks_close_unkept(s2a_master.db, pid, now);
    if (n > 0 || unkept > 0) {
        E.now = now;
        s2a_db_tasks_closed_each(s2a_master.db, pid, now, ended_stage, NULL);
    }
    if (n > 0) {
        s2a_webhooks_tasks_closed(pid, "worker_died", now);
        s2a_log(LOG_WARNING, 0,
                "%d tasks of worker pid %lld closed as failed (worker_died)", n,
                (long long) pid);
    }
    if (unkept > 0) {
        s2a_webhooks_tasks_closed(pid, "interrupted", now);
        s2a_log(LOG_WARNING, 0,
                "%d queued tasks of worker pid %lld closed as failed "
                "(interrupted): their input images were not kept",
                unkept, (long long) pid);
    }
    slots_of_dead_worker((pid_t) pid);
    /* The rest (Sora has their tasks, or nothing was sent) go to a live
     * worker. */
    resume_wanted();
}

void
s2a_journal_worker_gone(pid_t pid)
{
    json_t *msg;

    /* A stop leaves the rows as they are; the next start decides. */
    if (s2a_master.stopping) {
        return;
    }
    msg = json_pack("{s:I}", "worker_pid", (json_int_t) pid);
    if (msg != NULL) {
        /* After whatever the worker sent last, which is queued already. */
        s2a_ctlserver_enqueue(close_worker_tasks, msg);
        json_decref(msg);
    }
}

int
s2a_journal_recover(void)
{
    int64_t now = s2a_now();
    int n, unkept, kept;

    if (s2a_db_begin(s2a_master.db) != S2A_OK) {
        return S2A_ERROR;
    }
    n = s2a_db_tasks_close(s2a_master.db, 0, "interrupted",
                           "the daemon stopped before the task finished", now);
    unkept = n < 0 ? -1 : s2a_db_tasks_close_unkept(s2a_master.db, 0, now);
    if (n > 0 || unkept > 0) {
        s2a_webhooks_tasks_closed(0, "interrupted", now);
    }
    kept = unkept < 0 ? -1 : s2a_db_tasks_unassign(s2a_master.db, now);
    if (kept < 0 || s2a_db_commit(s2a_master.db) != S2A_OK) {
        s2a_db_rollback(s2a_master.db);
        return S2A_ERROR;
    }
    if (n + unkept > 0) {
        s2a_log(LOG_WARNING, 0,
                "%d tasks left unfinished by the last run closed as failed "
                "(interrupted)",
                n + unkept);
    }
    if (kept > 0) {
        s2a_log(LOG_NOTICE, 0,
                "%d tasks left unfinished by the last run will be resumed",
                kept);
        resume_wanted();
    }
    return S2A_OK;
}
