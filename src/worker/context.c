/*
 * context.c: the shared state of a worker process (s2a_worker) and the
 * helpers every worker subsystem uses to reach it: the settings snapshot,
 * calls to the master over the control channel and their pending
 * answers, and token secrets read from the shared table. It owns the list
 * of calls waiting for an answer; worker.c owns the process around it.
 */
#include "worker/context.h"
#include "common/ops.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* The one context of this process; see context.h. */
s2a_worker_t s2a_worker;

typedef struct call_s {
    uint64_t id;
    s2a_call_done_pt done;
    void *arg;
    struct call_s *next;
} call_t;

/* Oldest first: answers come back in about the order the calls went
 * out, so the one answered is found near the head. */
static call_t *calls;
static call_t **calls_tail = &calls;
static uint64_t next_call_id = 1;

/*
 * Resets s2a_worker for a freshly forked worker described by `args`
 * (borrowed; it outlives the worker). Nothing is allocated.
 */
void
s2a_worker_context_init(const s2a_worker_args_t *args)
{
    s2a_worker_t *w = &s2a_worker;

    memset(w, 0, sizeof(*w));
    w->args = args;
    w->conf = args->conf;
    w->shm = args->shm;
    w->test_hooks = args->test_hooks;
    w->settings_seq = (uint32_t) -1;
}

/* Re-reads the settings snapshot when its sequence changed (no lock: the
 * shm seqlock makes the copy consistent). */
void
s2a_worker_refresh_settings(void)
{
    s2a_worker_t *w = &s2a_worker;
    uint32_t seq = s2a_shm_settings_seq(w->shm);

    if (seq == w->settings_seq) {
        return;
    }
    w->settings_seq = s2a_shm_settings_read(w->shm, &w->settings);
    s2a_log_set_level(w->settings.log_level >= 0 ? w->settings.log_level
                                                 : w->conf->log_level);
    w->shm->workers[w->args->shm_row].settings_seen = w->settings_seq;
}

/*
 * Sends `msg` (borrowed) to the master with a fresh call id and remembers
 * `done`; see context.h. Returns the id, or 0 when nothing was sent.
 */
uint64_t
s2a_worker_call_master(json_t *msg, s2a_call_done_pt done, void *arg)
{
    call_t *c;

    if (s2a_worker.chan == NULL) {
        return 0;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return 0;
    }
    c->id = next_call_id++;
    c->done = done;
    c->arg = arg;
    json_object_set_new(msg, "id", json_integer((json_int_t) c->id));
    if (s2a_chan_send(s2a_worker.chan, msg) != S2A_OK) {
        free(c);
        return 0;
    }
    *calls_tail = c;
    calls_tail = &c->next;
    return c->id;
}

/* Forgets call `id`: its answer, if one comes, is dropped. */
void
s2a_worker_call_cancel(uint64_t id)
{
    call_t **pp, *c;

    for (pp = &calls; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            c = *pp;
            *pp = c->next;
            if (calls_tail == &c->next) {
                calls_tail = pp;
            }
            free(c);
            return;
        }
    }
}

/*
 * Copies token `id`'s access token into `at` (S2A_SHM_AT_MAX bytes) and,
 * when `proxy` is not NULL, its proxy (256 bytes). Takes the shm lock.
 * Returns false when the token is unknown or the lock unusable.
 */
bool
s2a_worker_token_secret(int64_t id, char *at, char *proxy)
{
    s2a_shm_t *shm = s2a_worker.shm;
    int slot;

    at[0] = '\0';
    if (proxy != NULL) {
        proxy[0] = '\0';
    }
    if (s2a_shm_lock(shm) != S2A_OK) {
        return false;
    }
    slot = s2a_shm_token_find_locked(shm, id);
    if (slot >= 0) {
        memcpy(at, s2a_shm_secrets(shm)[slot].access_token,
               s2a_shm_secrets(shm)[slot].len + 1);
        if (proxy != NULL) {
            memcpy(proxy, s2a_shm_secrets(shm)[slot].proxy,
                   sizeof(s2a_shm_secrets(shm)[slot].proxy));
        }
    }
    s2a_shm_unlock(shm);
    return at[0] != '\0';
}

/* The access token of token `id` alone; see s2a_worker_token_secret. */
bool
s2a_worker_token_at(int64_t id, char *out)
{
    return s2a_worker_token_secret(id, out, NULL);
}

/* Sends `msg` (borrowed) to the master; no answer is expected. */
void
s2a_worker_notify_master(json_t *msg)
{
    if (s2a_worker.chan != NULL) {
        s2a_chan_send(s2a_worker.chan, msg);
    }
}

/*
 * Hands `reply` (borrowed) to the call `id` and forgets it; with id 0,
 * hands it to every pending call (NULL at exit: "the master is gone"),
 * those the callbacks make included. A callback may cancel or make
 * calls: the list is walked again from its head after each one.
 */
void
s2a_worker_call_finish(json_t *reply, uint64_t id)
{
    call_t **pp = &calls, *c;

    while (*pp != NULL) {
        if ((*pp)->id != id && id != 0) {
            pp = &(*pp)->next;
            continue;
        }
        c = *pp;
        *pp = c->next;
        if (calls_tail == &c->next) {
            calls_tail = pp;
        }
        c->done(reply, c->arg);
        free(c);
        if (id != 0) {
            return;
        }
        pp = &calls;
    }
}

/* "reply": the answer to one of this worker's calls. */
void
s2a_op_reply(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "re"));

    S2A_UNUSED(from);
    if (id > 0) {
        s2a_worker_call_finish(msg, (uint64_t) id);
    }
}

int
s2a_worker_failure_status(json_t *reply, int otherwise)
{
    const char *code = json_string_value(json_object_get(reply, "code"));

    if (reply == NULL || (code != NULL && strcmp(code, "database") == 0)) {
        return 503;
    }
    return otherwise;
}
