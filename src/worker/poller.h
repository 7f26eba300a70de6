/*
 * poller.h: coalesced polling of upstream tasks. A worker keeps one entry
 * per account with tasks in flight; every poll interval an entry makes at
 * most one pending-list request, one round of drafts requests and one
 * recent-tasks request, however many tasks it watches. Each request's
 * answer is spread to every task it concerns.
 */
#ifndef S2A_POLLER_H
#define S2A_POLLER_H

#include "common/core.h"
#include "common/shm.h"

#include <event2/event.h>
#include <jansson.h>

typedef enum {
    S2A_POLL_PROGRESS = 0, /* `progress` changed */
    S2A_POLL_DONE,         /* `urls` (and `generation_id` for a video) */
    S2A_POLL_FAILED,       /* Sora failed the task: `message` */
    S2A_POLL_VIOLATION,    /* content policy: `message` is the reason */
    S2A_POLL_TOKEN_INVALID /* the account's token was rejected */
} s2a_poll_event_t;

typedef struct s2a_poll_update_s {
    s2a_poll_event_t event;
    int progress;              /* 0..100 */
    const char *status;        /* upstream status text, or NULL */
    json_t *urls;              /* DONE: array of URL strings (borrowed) */
    const char *generation_id; /* DONE video: the draft id (gen_...) */
    const char *thumbnail_url; /* DONE video: the draft's thumbnail
                                  (encodings.thumbnail.path), or NULL */
    const char *message;
} s2a_poll_update_t;

typedef struct s2a_poll_watch_s s2a_poll_watch_t;

/*
 * Called from the event loop. After a terminal event (anything but
 * PROGRESS) the watch is already gone: do not unwatch it.
 */
typedef void (*s2a_poll_pt)(const s2a_poll_update_t *u, void *arg);

int s2a_poller_init(struct event_base *base, int interval_ms);
/* A reload may change the interval; it applies from the next tick. */
void s2a_poller_set_interval(int interval_ms);
void s2a_poller_cleanup(void);

/* Starts watching `task_id` of token `token_id`. NULL when out of memory. */
s2a_poll_watch_t *s2a_poller_watch(int64_t token_id, s2a_kind_t kind,
                                   const char *task_id, s2a_poll_pt cb,
                                   void *arg);
/* Stops watching (the job ended some other way). */
void s2a_poller_unwatch(s2a_poll_watch_t *w);

/* Requests made so far, per kind of list (tests and benchmarks). */
typedef struct s2a_poller_stats_s {
    uint64_t pending, drafts, recent, entries, watches;
} s2a_poller_stats_t;
void s2a_poller_stats(s2a_poller_stats_t *out);

#endif /* S2A_POLLER_H */
