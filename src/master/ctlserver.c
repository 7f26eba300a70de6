/*
 * ctlserver.c: the master's end of the control channels (ctlserver.h).
 * Messages are checked against their row of the operations table and
 * handed to its handler; mutations of one loop iteration, from every
 * worker, share one transaction, and their replies wait for its commit.
 *
 * Records (operations flagged S2A_OP_QUEUED: task rows, request logs,
 * counters) wait in a bounded in-memory queue and are applied in the
 * batch's transaction; while the database is locked or failing they stay
 * there and are retried every second, so a busy database loses nothing
 * and never stalls the loop (writes do not wait for a lock).
 */
#include "master/ctlserver.h"
#include "common/log.h"
#include "common/ops.h"
#include "master/journal.h"
#include "master/keys.h"
#include "master/pool.h"
#include "master/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

typedef struct pending_reply_s {
    s2a_proc_t *proc;
    json_t *msg;
    struct pending_reply_s *next;
} pending_reply_t;

typedef struct queued_s {
    s2a_op_handler_pt handler;
    json_t *msg;
    struct queued_s *next;
} queued_t;

#define QUEUE_MAX  200000 /* records kept while the database is busy */
#define QUEUE_WARN 1000   /* first size worth a warning; then x10 */

static struct event *commit_ev;
static pending_reply_t *replies;
static pending_reply_t **replies_tail = &replies;
static queued_t *queue;
static queued_t **queue_tail = &queue;
static size_t queue_len, queue_warned, queue_dropped;
static bool failing; /* the last write attempt failed */

static void commit_cb(evutil_socket_t fd, short what, void *arg);

int
s2a_ctlserver_init(void)
{
    commit_ev = event_new(s2a_master.base, -1, 0, commit_cb, NULL);
    return commit_ev != NULL ? S2A_OK : S2A_ERROR;
}

/* Says so once when writes start failing, and once when they work
 * again. */
static void
note_outcome(bool ok)
{
    if (!ok && !failing) {
        s2a_log(LOG_ERR, 0,
                "database writes are failing (locked or unavailable); "
                "records are kept in memory and retried every second");
    } else if (ok && failing) {
        s2a_log(LOG_NOTICE, 0, "database writable again");
    }
    failing = !ok;
}

/* Mutations from workers share one transaction per loop iteration. */
int
s2a_ctlserver_batch(void)
{
    if (!s2a_db_in_transaction(s2a_master.db)) {
        if (s2a_db_begin(s2a_master.db) != S2A_OK) {
            note_outcome(false);
            return S2A_ERROR;
        }
        event_active(commit_ev, EV_TIMEOUT, 0);
    }
    return S2A_OK;
}

bool
s2a_ctlserver_failing(void)
{
    return failing;
}

size_t
s2a_ctlserver_queued(void)
{
    return queue_len;
}

void
s2a_ctlserver_enqueue(s2a_op_handler_pt handler, json_t *msg)
{
    queued_t *q = calloc(1, sizeof(*q)), *old;

    if (q == NULL) {
        s2a_log(LOG_ERR, 0, "out of memory: a record is lost");
        return;
    }
    if (queue_len >= QUEUE_MAX) {
        /* Bounded: the oldest record goes, and the log says so. */
        old = queue;
        queue = old->next;
        if (queue == NULL) {
            queue_tail = &queue;
        }
        json_decref(old->msg);
        free(old);
        queue_len--;
        if (queue_dropped++ % 10000 == 0) {
            s2a_log(LOG_ERR, 0,
                    "record queue full (%d): the oldest records are being "
                    "dropped (%zu so far)",
                    QUEUE_MAX, queue_dropped);
        }
    }
    q->handler = handler;
    q->msg = json_incref(msg);
    *queue_tail = q;
    queue_tail = &q->next;
    queue_len++;
    if (queue_len >= QUEUE_WARN && queue_len >= queue_warned * 10) {
        queue_warned = queue_len;
        s2a_log(LOG_WARNING, 0, "%zu records wait for the database", queue_len);
    }
    if (queue_len < QUEUE_WARN) {
        queue_warned = 0;
    }
    event_active(commit_ev, EV_TIMEOUT, 0);
}

/* Runs every queued record inside the open transaction. */
static void
apply_queue(void)
{
    queued_t *q;

    for (q = queue; q != NULL; q = q->next) {
        q->handler(NULL, q->msg);
    }
}

/* The batch committed: the queued records are written. */
static void
drop_queue(void)
{
    queued_t *q, *next;

    for (q = queue; q != NULL; q = next) {
        next = q->next;
        json_decref(q->msg);
        free(q);
    }
    queue = NULL;
    queue_tail = &queue;
    queue_len = 0;
    queue_warned = 0;
}

void
s2a_ctlserver_tick(void)
{
    if (queue != NULL) {
        event_active(commit_ev, EV_TIMEOUT, 0);
    }
}

void
s2a_ctlserver_reply_later(s2a_proc_t *proc, json_t *msg)
{
    pending_reply_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        json_decref(msg);
        return;
    }
    r->proc = proc;
    r->msg = msg;
    *replies_tail = r;
    replies_tail = &r->next;
}

static void
send_replies(bool committed)
{
    pending_reply_t *r, *next;
    s2a_proc_t *p;

    for (r = replies; r != NULL; r = next) {
        next = r->next;
        if (!committed) {
            json_object_set_new(r->msg, "ok", json_false());
            json_object_set_new(r->msg, "code", json_string("database"));
            json_object_set_new(r->msg, "error",
                                json_string("database commit failed"));
        }
        for (p = s2a_master.procs; p != NULL; p = p->next) {
            if (p == r->proc) {
                s2a_chan_send(p->chan, r->msg);
                break;
            }
        }
        json_decref(r->msg);
        free(r);
    }
    replies = NULL;
    replies_tail = &replies;
}

static void
commit_cb(evutil_socket_t fd, short what, void *arg)
{
    bool ok = true;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    if (queue != NULL) {
        if (!s2a_db_in_transaction(s2a_master.db)
            && s2a_db_begin(s2a_master.db) != S2A_OK)
        {
            note_outcome(false);
            return; /* retried at the next tick */
        }
        apply_queue();
    }
    if (s2a_db_in_transaction(s2a_master.db)) {
        ok = s2a_db_commit(s2a_master.db) == S2A_OK;
        note_outcome(ok);
        if (ok) {
            drop_queue();
        }
    }
    s2a_runtime_committed(ok);
    s2a_pool_committed(ok);
    s2a_keys_committed(ok);
    s2a_journal_committed(ok);
    send_replies(ok);
}

void
s2a_ctlserver_commit(void)
{
    if (s2a_db_in_transaction(s2a_master.db)) {
        commit_cb(-1, 0, NULL);
    }
}

void
s2a_ctlserver_cleanup(void)
{
    if (s2a_master.db != NULL) {
        if (queue != NULL) {
            commit_cb(-1, 0, NULL);
        }
        s2a_ctlserver_commit();
    }
    if (queue_len > 0) {
        s2a_log(LOG_ERR, 0, "%zu records could not be written before exit",
                queue_len);
    }
    drop_queue();
    send_replies(true);
    if (commit_ev != NULL) {
        event_free(commit_ev);
        commit_ev = NULL;
    }
}

void
s2a_ctlserver_forget(s2a_proc_t *proc)
{
    pending_reply_t *r;

    for (r = replies; r != NULL; r = r->next) {
        if (r->proc == proc) {
            r->proc = NULL;
        }
    }
}

json_t *
s2a_ctlserver_reply_for(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");

    return json_pack("{s:s, s:O, s:b}", "op", "reply", "re",
                     id != NULL ? id : json_null(), "ok", 1);
}

void
s2a_ctlserver_reply(s2a_proc_t *proc, json_t *reply)
{
    json_t *fail;

    if (proc != NULL && reply != NULL
        && s2a_chan_send(proc->chan, reply) != S2A_OK) {
        /* Too large to encode, most likely: the caller still gets an
         * answer, or it would wait for one forever. */
        fail = json_pack("{s:s, s:O, s:b, s:s}", "op", "reply", "re",
                         json_object_get(reply, "re"), "ok", 0, "error",
                         "the answer does not fit in a control frame");
        if (fail != NULL && json_object_get(reply, "re") != NULL) {
            s2a_chan_send(proc->chan, fail);
        }
        json_decref(fail);
    }
    json_decref(reply);
}

void
s2a_ctlserver_flush(void)
{
    if (queue_len > 0 || s2a_db_in_transaction(s2a_master.db)) {
        if (s2a_ctlserver_batch() == S2A_OK) {
            s2a_ctlserver_commit();
        }
    }
}

void
s2a_ctlserver_fail_code(s2a_proc_t *proc, json_t *reply, const char *code,
                        const char *err)
{
    json_object_set_new(reply, "code", json_string(code));
    s2a_ctlserver_fail(proc, reply, err);
}

void
s2a_ctlserver_fail_db(s2a_proc_t *proc, json_t *reply)
{
    json_object_set_new(reply, "code", json_string("database"));
    s2a_ctlserver_fail(proc, reply,
                       "the database is busy or unavailable; try again");
}

void
s2a_ctlserver_fail(s2a_proc_t *proc, json_t *reply, const char *err)
{
    json_object_set_new(reply, "ok", json_false());
    json_object_set_new(reply, "error", json_string(err));
    s2a_ctlserver_reply(proc, reply);
}

/*
 * One message from worker `arg`: its row of the operations table, a
 * check of its fields, then the handler. A request that fails the check
 * is answered with the reason; a notice is logged and dropped.
 */
void
s2a_ctlserver_on_msg(s2a_chan_t *chan, json_t *msg, void *arg)
{
    s2a_proc_t *proc = arg;
    const char *name = json_string_value(json_object_get(msg, "op"));
    const s2a_op_t *op;
    char err[256];

    S2A_UNUSED(chan);
    op = name != NULL ? s2a_op_find(name, S2A_OP_TO_MASTER) : NULL;
    if (op != NULL && (op->flags & S2A_OP_TEST_ONLY)
        && !s2a_master.opts.test_hooks) {
        op = NULL;
    }
    if (op == NULL) {
        s2a_log(LOG_WARNING, 0, "worker %d sent unknown op \"%.64s\"",
                proc->slot, name != NULL ? name : "");
        return;
    }
    if (s2a_op_check(op, msg, err, sizeof(err)) != S2A_OK) {
        if (op->reply != NULL) {
            s2a_ctlserver_fail(proc, s2a_ctlserver_reply_for(msg), err);
        } else {
            s2a_log(LOG_WARNING, 0, "worker %d: malformed message ignored: %s",
                    proc->slot, err);
        }
        return;
    }
    if (op->flags & S2A_OP_QUEUED) {
        /* Applied with the batch, kept while the database is busy; the
         * sender may be gone by then, so it travels in the message. */
        json_object_set_new(msg, "worker_pid", json_integer(proc->pid));
        s2a_ctlserver_enqueue(op->handler, msg);
        return;
    }
    op->handler(proc, msg);
}

void
s2a_ctlserver_on_close(s2a_chan_t *chan, void *arg)
{
    S2A_UNUSED(chan);
    S2A_UNUSED(arg);
    /* The exit is handled when the child is reaped. */
}

/* "ping": whether the database answers and takes writes (/readyz). */
void
s2a_op_ping(void *from, json_t *msg)
{
    json_t *reply = s2a_ctlserver_reply_for(msg);

    if (failing || s2a_db_ping(s2a_master.db) != S2A_OK) {
        json_object_set_new(reply, "queued",
                            json_integer((json_int_t) queue_len));
        s2a_ctlserver_fail(from, reply, "database unavailable");
        return;
    }
    s2a_ctlserver_reply(from, reply);
}
