/*
 * ctlserver.c: the master's end of the control channels (ctlserver.h).
 * Messages are checked against their row of the operations table and
 * handed to its handler; mutations of one loop iteration, from every
 * worker, share one transaction, and their replies wait for its commit.
 */
#include "master/ctlserver.h"
#include "common/log.h"
#include "common/ops.h"
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

static struct event *commit_ev;
static pending_reply_t *replies;
static pending_reply_t **replies_tail = &replies;

static void commit_cb(evutil_socket_t fd, short what, void *arg);

int
s2a_ctlserver_init(void)
{
    commit_ev = event_new(s2a_master.base, -1, 0, commit_cb, NULL);
    return commit_ev != NULL ? S2A_OK : S2A_ERROR;
}

/* Mutations from workers share one transaction per loop iteration. */
int
s2a_ctlserver_batch(void)
{
    if (!s2a_db_in_transaction(s2a_master.db)) {
        if (s2a_db_begin(s2a_master.db) != S2A_OK) {
            return S2A_ERROR;
        }
        event_active(commit_ev, EV_TIMEOUT, 0);
    }
    return S2A_OK;
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
    if (s2a_db_in_transaction(s2a_master.db)) {
        ok = s2a_db_commit(s2a_master.db) == S2A_OK;
    }
    s2a_runtime_committed(ok);
    s2a_pool_committed(ok);
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
        s2a_ctlserver_commit();
    }
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
    if (proc != NULL && reply != NULL) {
        s2a_chan_send(proc->chan, reply);
    }
    json_decref(reply);
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
    op->handler(proc, msg);
}

void
s2a_ctlserver_on_close(s2a_chan_t *chan, void *arg)
{
    S2A_UNUSED(chan);
    S2A_UNUSED(arg);
    /* The exit is handled when the child is reaped. */
}

/* "ping": whether the database answers (/readyz). */
void
s2a_op_ping(void *from, json_t *msg)
{
    json_t *reply = s2a_ctlserver_reply_for(msg);

    if (s2a_db_ping(s2a_master.db) != S2A_OK) {
        s2a_ctlserver_fail(from, reply, "database unavailable");
        return;
    }
    s2a_ctlserver_reply(from, reply);
}
