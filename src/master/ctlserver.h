/*
 * ctlserver.h: the master's end of the workers' control channels: one
 * dispatch through the operations table (common/ops.c), one database
 * transaction per event-loop iteration, replies sent once it committed.
 */
#ifndef S2A_MASTER_CTLSERVER_H
#define S2A_MASTER_CTLSERVER_H

#include "common/chan.h"
#include "common/ops.h"
#include "master/state.h"

#include <jansson.h>

/* Creates the commit event on the master's base. S2A_OK or S2A_ERROR. */
int s2a_ctlserver_init(void);

/* Commits what is pending, sends the queued replies, frees the event. */
void s2a_ctlserver_cleanup(void);

/* Channel callbacks of a worker's channel (`arg` is its s2a_proc_t). */
void s2a_ctlserver_on_msg(s2a_chan_t *chan, json_t *msg, void *arg);
void s2a_ctlserver_on_close(s2a_chan_t *chan, void *arg);

/* Worker `proc` is gone: replies queued for it are dropped. */
void s2a_ctlserver_forget(s2a_proc_t *proc);

/*
 * Joins the current batch (opening its transaction). Handlers call it
 * before they write. Returns S2A_OK or S2A_ERROR.
 */
int s2a_ctlserver_batch(void);

/* Commits the batch now: reads that follow see only durable state. */
void s2a_ctlserver_commit(void);

/* A new reply object for request `msg` ({"op":"reply","re":id,"ok":1}). */
json_t *s2a_ctlserver_reply_for(json_t *msg);

/* Sends `reply` (taken) once the batch committed; a failed commit turns
 * it into {"ok":false,"error":"database commit failed"}. */
void s2a_ctlserver_reply_later(s2a_proc_t *proc, json_t *reply);

/* Sends `reply` (taken) now. */
void s2a_ctlserver_reply(s2a_proc_t *proc, json_t *reply);

/*
 * Queues a record: `handler` runs with `msg` (borrowed; a reference is
 * kept) inside the next transaction, again at every tick while the
 * database refuses writes. Bounded; the oldest go first when full.
 */
void s2a_ctlserver_enqueue(s2a_op_handler_pt handler, json_t *msg);

/* Once a second (supervisor): retries queued records. */
void s2a_ctlserver_tick(void);

/* True while writes fail; records waiting in memory. */
bool s2a_ctlserver_failing(void);
size_t s2a_ctlserver_queued(void);

/*
 * Reads must see every record a worker sent before asking (the queued
 * row of a job it just started, say): the queue is applied and the
 * batch committed first. When the database is busy the read sees what
 * is committed.
 */
void s2a_ctlserver_flush(void);

/* Sends `reply` (taken) now with ok false, `code` and `err`. */
void s2a_ctlserver_fail_code(s2a_proc_t *proc, json_t *reply, const char *code,
                             const char *err);

/* Sends `reply` (taken) now: the database refused the write
 * ("code":"database"; the admin API answers 503). */
void s2a_ctlserver_fail_db(s2a_proc_t *proc, json_t *reply);

/* Sends `reply` (taken) now with ok false and `err`. */
void s2a_ctlserver_fail(s2a_proc_t *proc, json_t *reply, const char *err);

#endif /* S2A_MASTER_CTLSERVER_H */
