/*
 * orphans.c: the upstream character deletes the gateway owes, finished
 * by the master (docs/characters.md, "No orphans").
 *
 * A characters row in state `deleting` is owed a delete at Sora: its
 * job decided it (cameo.c marks the row before its own attempt), or a
 * pass found a character its ended job no longer wants (a temporary one
 * still `ready`, a character-only job's character the job did not
 * complete) and marked it. A pass hands each due row to a ready worker
 * (character_purge), which reports with character_delete_result; a
 * failure is retried with back-off, up to [characters] delete_attempts
 * or 24 hours, then the row is `failed` and says so. The worker holding
 * an attempt (delete_pid) has a lease until delete_next_at; its death
 * frees it at once.
 */
#include "master/orphans.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#define PASS_EVERY_S   60
#define PASS_BATCH     64
#define PASS_BATCH_SQL "64"
#define LEASE_S        600   /* an attempt in flight answers well before */
#define GRACE_S        60    /* a job's end is this old before a pass infers */
#define GIVE_UP_S      86400 /* from the decision */
#define DEFER_S        3600  /* a token that cannot call Sora now */
#define BACKOFF_CAP    3600
#define MESSAGE_MAX    1000 /* the error column holds 1024 */

static struct {
    bool wanted;
    bool started; /* the first pass (at start) ran */
    int countdown;
} O = { false, false, PASS_EVERY_S };

static sqlite3 *
conn(void)
{
    return s2a_db_sqlite(s2a_master.db);
}

/* Runs `sql` with text `s` (?1, may be NULL) and integers (?2...);
 * returns the rows changed, or -1. */
static int
exec_row(const char *sql, const char *s, int n, const int64_t *args)
{
    sqlite3_stmt *st;
    int i, rc;

    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_log(LOG_ERR, 0, "orphans statement: %s", sqlite3_errmsg(conn()));
        return -1;
    }
    if (s != NULL) {
        sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
    }
    for (i = 0; i < n; i++) {
        sqlite3_bind_int64(st, i + 2, args[i]);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "orphans write: %s", sqlite3_errmsg(conn()));
        return -1;
    }
    return sqlite3_changes(conn());
}

/* Writes row `public_id` `state` with `error` (NULL: cleared) and no
 * delete in flight. */
static void
close_row(const char *public_id, const char *state, const char *error)
{
    sqlite3_stmt *st;

    if (sqlite3_prepare_v2(conn(),
                           "UPDATE characters SET state = ?2, error = ?3, "
                           "delete_pid = NULL, delete_next_at = NULL, "
                           "updated_at = ?4 WHERE public_id = ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (error != NULL) {
        sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 4, s2a_now());
    if (sqlite3_step(st) != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "character %s not closed: %s", public_id,
                sqlite3_errmsg(conn()));
    }
    sqlite3_finalize(st);
}

/* "<reason>; <text>" (or the text alone) into `out`. */
static void
with_reason(char *out, size_t outlen, const char *reason, const char *text)
{
    if (reason != NULL && reason[0] != '\0') {
        snprintf(out, outlen, "%.400s; %.560s", reason, text);
    } else {
        snprintf(out, outlen, "%.960s", text);
    }
}

/* The pause after `attempts` failed attempts, jittered (deletes that
 * failed together, in one Sora outage, come back spread out). */
static int64_t
backoff_s(int64_t attempts)
{
    int64_t base = s2a_master.conf->character_delete_retry_base;
    uint32_t r = 0;

    if (base <= 0) {
        return 0;
    }
    s2a_random_bytes(&r, sizeof(r));
    return s2a_backoff_jitter(attempts > INT32_MAX ? INT32_MAX : (int) attempts,
                              base, BACKOFF_CAP, (double) r / 4294967295.0);
}

/* ---------------------------------------------------------------------
 * Marks and leases
 */

void
s2a_orphans_marked(const char *public_id, pid_t pid)
{
    int64_t args[3] = { (int64_t) pid, s2a_now(), s2a_now() + LEASE_S };

    /* The job's own attempt counts; its reason is the row's error. */
    exec_row("UPDATE characters SET delete_pid = ?2, delete_attempts = "
             "delete_attempts + 1, delete_next_at = ?4, "
             "delete_since = coalesce(delete_since, ?3), delete_reason = "
             "coalesce(delete_reason, error) WHERE public_id = ?1 AND "
             "state = 'deleting'",
             public_id, 3, args);
}

/* The queued record behind s2a_orphans_worker_gone. */
static void
release_worker(void *from, json_t *msg)
{
    int64_t pid = json_integer_value(json_object_get(msg, "pid"));
    int n;

    S2A_UNUSED(from);
    if (pid <= 0 || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    n = exec_row("UPDATE characters SET delete_pid = NULL, delete_next_at = "
                 "NULL WHERE delete_pid = ?2 AND state = 'deleting'",
                 NULL, 1, &pid);
    if (n > 0) {
        s2a_log(LOG_NOTICE, 0,
                "%d character deletes of worker pid %lld are handed out "
                "again",
                n, (long long) pid);
        O.wanted = true;
    }
}

void
s2a_orphans_worker_gone(pid_t pid)
{
    json_t *msg;

    if (s2a_master.stopping) {
        return; /* the next start frees them */
    }
    msg = json_pack("{s:I}", "pid", (json_int_t) pid);
    if (msg != NULL) {
        s2a_ctlserver_enqueue(release_worker, msg);
        json_decref(msg);
    }
}

int
s2a_orphans_recover(void)
{
    int n = exec_row("UPDATE characters SET delete_pid = NULL, "
                     "delete_next_at = NULL WHERE state = 'deleting' AND "
                     "delete_pid IS NOT NULL",
                     NULL, 0, NULL);

    if (n < 0) {
        return S2A_ERROR;
    }
    if (n > 0) {
        s2a_log(LOG_NOTICE, 0,
                "%d character deletes left in flight by the last run will "
                "be handed out again",
                n);
    }
    O.wanted = true; /* and whatever else is owed */
    return S2A_OK;
}

void
s2a_orphans_wanted(void)
{
    O.wanted = true;
}

/* ---------------------------------------------------------------------
 * Outcomes
 */

/* Whether token `id` is in the pool; its state and cooldown end. */
static bool
token_state(int64_t id, char *state, size_t statelen, int64_t *cooled_until)
{
    sqlite3_stmt *st;
    bool found = false;

    *cooled_until = 0;
    state[0] = '\0';
    if (sqlite3_prepare_v2(conn(),
                           "SELECT state, coalesce(cooled_until, 0) FROM "
                           "tokens WHERE id = ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return true; /* unknown: not closed on a read that failed */
    }
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        found = true;
        snprintf(state, statelen, "%s",
                 (const char *) sqlite3_column_text(st, 0));
        *cooled_until = sqlite3_column_int64(st, 1);
    } else {
        found = false;
    }
    sqlite3_finalize(st);
    return found;
}

static void
close_token_gone(const char *public_id, const char *reason)
{
    char msg[MESSAGE_MAX];

    with_reason(msg, sizeof(msg), reason,
                "its token was deleted; the character may remain at Sora");
    close_row(public_id, "failed", msg);
    s2a_log(LOG_WARNING, 0, "character %s: %s", public_id, msg);
}

/* "character_delete_result" (a record, in the batch). */
void
s2a_op_character_delete_result(void *from, json_t *msg)
{
    const char *public_id =
        json_string_value(json_object_get(msg, "public_id"));
    const char *error = json_string_value(json_object_get(msg, "error"));
    json_int_t pid = json_integer_value(json_object_get(msg, "worker_pid"));
    bool ok = json_is_true(json_object_get(msg, "ok"));
    char text[MESSAGE_MAX], out[MESSAGE_MAX], state[32];
    const char *reason;
    int64_t token_id, holder, attempts, max, args[2], cooled;
    sqlite3_stmt *st;
    bool temporary;

    S2A_UNUSED(from);
    if (public_id == NULL || s2a_ctlserver_batch() != S2A_OK
        || sqlite3_prepare_v2(
               conn(),
               "SELECT temporary, delete_reason, coalesce(delete_pid, 0), "
               "delete_attempts, token_id FROM characters WHERE "
               "public_id = ?1 AND state = 'deleting'",
               -1, &st, NULL)
            != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st); /* gone, or closed already */
        return;
    }
    temporary = sqlite3_column_int(st, 0) != 0;
    reason = (const char *) sqlite3_column_text(st, 1);
    snprintf(text, sizeof(text), "%s", reason != NULL ? reason : "");
    holder = sqlite3_column_int64(st, 2);
    attempts = sqlite3_column_int64(st, 3);
    token_id = sqlite3_column_int64(st, 4);
    sqlite3_finalize(st);
    reason = text[0] != '\0' ? text : NULL;
    if (ok) {
        /* Whoever's attempt it was, Sora no longer has it. */
        if (temporary) {
            close_row(public_id, "deleted", reason);
        } else {
            with_reason(out, sizeof(out),
                        reason != NULL ? reason
                                       : "its job did not complete the "
                                         "character",
                        "the character was deleted");
            close_row(public_id, "failed", out);
        }
        return;
    }
    if (holder != (int64_t) pid) {
        s2a_log(
            LOG_INFO, 0,
            "character %s: a stale delete report (attempt %lld) ignored",
            public_id,
            (long long) json_integer_value(json_object_get(msg, "attempt")));
        return; /* not the attempt the row waits for */
    }
    if (!token_state(token_id, state, sizeof(state), &cooled)) {
        close_token_gone(public_id, reason);
        return;
    }
    max = s2a_master.conf->character_delete_attempts;
    if (attempts >= max) {
        snprintf(out, sizeof(out),
                 "the character could not be deleted upstream after %lld "
                 "attempts (last: %.300s); it may remain at Sora: delete it "
                 "from /api/characters",
                 (long long) attempts, error != NULL ? error : "no answer");
        with_reason(text, sizeof(text), reason, out);
        close_row(public_id, "failed", text);
        s2a_log(LOG_WARNING, 0, "character %s: %s", public_id, text);
        return;
    }
    snprintf(out, sizeof(out),
             "the character could not be deleted upstream (%.300s); attempt "
             "%lld of %lld, the gateway tries again",
             error != NULL ? error : "no answer", (long long) attempts,
             (long long) max);
    with_reason(text, sizeof(text), reason, out);
    args[0] = s2a_now() + backoff_s(attempts);
    args[1] = s2a_now();
    if (sqlite3_prepare_v2(conn(),
                           "UPDATE characters SET error = ?4, delete_pid = "
                           "NULL, delete_next_at = ?2, updated_at = ?3 "
                           "WHERE public_id = ?1",
                           -1, &st, NULL)
        == SQLITE_OK)
    {
        sqlite3_bind_text(st, 1, public_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, args[0]);
        sqlite3_bind_int64(st, 3, args[1]);
        sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    s2a_log(LOG_WARNING, 0, "character %s: %s (next in %llds)", public_id, text,
            (long long) (args[0] - args[1]));
}

/* ---------------------------------------------------------------------
 * Passes
 */

/*
 * Marks what ended jobs left behind without a mark (a worker killed
 * between its job's last row and the delete's): a temporary character
 * still `ready` whose job ended (or has no row), and a character-only
 * job's character still `ready` after the job failed or was cancelled.
 * The end is GRACE_S old, so a mark on its way is never overtaken.
 */
static int
mark_inferred(int64_t now)
{
    int64_t args[2] = { now, now - GRACE_S };

    return exec_row(
        "UPDATE characters SET state = 'deleting', delete_since = ?2, "
        "delete_next_at = NULL, delete_pid = NULL, delete_attempts = 0, "
        "delete_reason = CASE WHEN temporary = 1 THEN NULL ELSE "
        "coalesce((SELECT t.error_message FROM tasks t WHERE t.job_id = "
        "characters.job_id), 'its job ended before the character was "
        "complete') END, updated_at = ?2 WHERE id IN (SELECT c.id FROM "
        "characters c LEFT JOIN tasks t ON t.job_id = c.job_id WHERE "
        "c.state = 'ready' AND c.character_id IS NOT NULL AND (t.id IS NULL "
        "OR t.status NOT IN ('queued', 'submitting', 'running')) AND "
        "coalesce(t.updated_at, c.updated_at) <= ?3 AND (c.temporary = 1 OR "
        "(t.mode = 'character' AND t.status IN ('failed', 'cancelled')))"
        " LIMIT " PASS_BATCH_SQL ")",
        NULL, 2, args);
}

/*
 * The due rows: closed (token gone, past 24 hours), deferred (a token
 * that cannot call Sora now) or leased to a worker (the message into
 * `out`). Inside the pass's transaction.
 */
static int
lease_due(int64_t now, json_t *out)
{
    char state[32], text[MESSAGE_MAX], out_text[200];
    const char *public_id, *reason;
    int64_t token_id, since, cooled, args[3];
    json_int_t attempts;
    sqlite3_stmt *st;
    s2a_proc_t *w;
    json_t *rows = json_array(), *row;
    size_t i;

    if (rows == NULL
        || sqlite3_prepare_v2(
               conn(),
               "SELECT public_id, token_id, character_id, delete_attempts, "
               "coalesce(delete_since, updated_at), delete_reason FROM "
               "characters WHERE state = 'deleting' AND character_id IS NOT "
               "NULL AND coalesce(delete_next_at, 0) <= ?1 ORDER BY "
               "coalesce(delete_next_at, 0) LIMIT " PASS_BATCH_SQL,
               -1, &st, NULL)
            != SQLITE_OK)
    {
        json_decref(rows);
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, now);
    while (sqlite3_step(st) == SQLITE_ROW) {
        row =
            json_pack("{s:s, s:I, s:s, s:I, s:I, s:s?}", "public_id",
                      (const char *) sqlite3_column_text(st, 0), "token_id",
                      (json_int_t) sqlite3_column_int64(st, 1), "character_id",
                      (const char *) sqlite3_column_text(st, 2), "attempts",
                      (json_int_t) sqlite3_column_int64(st, 3), "since",
                      (json_int_t) sqlite3_column_int64(st, 4), "reason",
                      (const char *) sqlite3_column_text(st, 5));
        if (row != NULL) {
            json_array_append_new(rows, row);
        }
    }
    sqlite3_finalize(st);
    json_array_foreach (rows, i, row) {
        public_id = json_string_value(json_object_get(row, "public_id"));
        reason = json_string_value(json_object_get(row, "reason"));
        token_id = json_integer_value(json_object_get(row, "token_id"));
        since = json_integer_value(json_object_get(row, "since"));
        attempts = json_integer_value(json_object_get(row, "attempts"));
        if (!token_state(token_id, state, sizeof(state), &cooled)) {
            close_token_gone(public_id, reason);
            continue;
        }
        if (since <= now - GIVE_UP_S
            || attempts >= s2a_master.conf->character_delete_attempts)
        {
            snprintf(out_text, sizeof(out_text),
                     "the character could not be deleted upstream %s; it "
                     "may remain at Sora: delete it from /api/characters",
                     since <= now - GIVE_UP_S ? "within 24 hours"
                                              : "within its attempts");
            with_reason(text, sizeof(text), reason, out_text);
            close_row(public_id, "failed", text);
            s2a_log(LOG_WARNING, 0, "character %s: %s", public_id, text);
            continue;
        }
        args[0] = 0;
        if (strcmp(state, "cooling") == 0 && cooled > now) {
            args[0] = cooled; /* not an attempt: after the cooldown */
        } else if (strcmp(state, "invalid") == 0
                   || strcmp(state, "expired") == 0) {
            args[0] = now + DEFER_S; /* a refresh may bring it back */
        }
        if (args[0] != 0) {
            exec_row("UPDATE characters SET delete_next_at = ?2 WHERE "
                     "public_id = ?1",
                     public_id, 1, args);
            continue;
        }
        w = s2a_master_next_ready();
        if (w == NULL) {
            break;
        }
        args[0] = (int64_t) w->pid;
        args[1] = now + LEASE_S;
        /* The attempt counts from now: its report must come from w. */
        if (exec_row("UPDATE characters SET delete_attempts = "
                     "delete_attempts + 1, delete_pid = ?2, delete_next_at = "
                     "?3 WHERE public_id = ?1",
                     public_id, 2, args)
            != 1)
        {
            json_decref(rows);
            return S2A_ERROR;
        }
        json_array_append_new(
            out,
            json_pack("{s:I, s:{s:s, s:s, s:O, s:O, s:I}}", "pid",
                      (json_int_t) w->pid, "msg", "op", "character_purge",
                      "public_id", public_id, "character_id",
                      json_object_get(row, "character_id"), "token_id",
                      json_object_get(row, "token_id"), "attempt",
                      attempts + 1));
    }
    json_decref(rows);
    return S2A_OK;
}

static void
pass(void)
{
    json_t *out, *item;
    s2a_proc_t *p;
    int64_t now = s2a_now();
    size_t i;
    int marked;

    /* The records first: a result or a dead worker's release waits. */
    s2a_ctlserver_flush();
    if (s2a_ctlserver_queued() > 0 || s2a_db_in_transaction(s2a_master.db)
        || s2a_db_begin(s2a_master.db) != S2A_OK)
    {
        return; /* still wanted: the next tick */
    }
    out = json_array();
    marked = mark_inferred(now);
    if (out == NULL || marked < 0 || lease_due(now, out) != S2A_OK) {
        s2a_db_rollback(s2a_master.db);
        json_decref(out);
        return;
    }
    /* Sent once the leases are durable. */
    if (s2a_db_commit(s2a_master.db) != S2A_OK) {
        json_decref(out);
        return;
    }
    O.wanted = false;
    if (!O.started) {
        O.started = true;
        s2a_log(LOG_INFO, 0,
                "character deletes: the first pass handed out %zu owed "
                "deletes",
                json_array_size(out));
    }
    if (marked > 0) {
        s2a_log(LOG_NOTICE, 0,
                "%d characters their ended jobs left are owed an upstream "
                "delete",
                marked);
    }
    json_array_foreach (out, i, item) {
        for (p = s2a_master.procs; p != NULL; p = p->next) {
            if (p->pid
                == (pid_t) json_integer_value(json_object_get(item, "pid"))) {
                /* A send that fails: the lease runs out, it is due again. */
                s2a_chan_send(p->chan, json_object_get(item, "msg"));
                break;
            }
        }
    }
    if (json_array_size(out) > 0) {
        s2a_log(LOG_INFO, 0, "%zu character deletes handed to workers",
                json_array_size(out));
    }
    if (json_array_size(out) == PASS_BATCH) {
        O.wanted = true; /* more may be due */
    }
    json_decref(out);
}

void
s2a_orphans_tick(void)
{
    if (--O.countdown <= 0) {
        O.countdown = PASS_EVERY_S;
        O.wanted = true;
    }
    if (!O.wanted || s2a_master.stopping || s2a_master.db == NULL
        || s2a_master_next_ready() == NULL)
    {
        return;
    }
    pass();
}
