/*
 * sched.h: getting a token for a job. Selection itself is in shm.c; this
 * adds the waiting: when no token is free, the job waits in a bounded
 * FIFO queue (per kind), retried as leases come back or tokens change (at
 * once for this worker's releases; within 50 ms for other processes',
 * seen through the pool generation in the shm header, without the lock),
 * until queue_timeout; then it fails with a message saying why each token
 * was passed over. A job that no token could ever serve (empty pool,
 * every token disabled, invalid, expired, without the capability or
 * quota, or cooling past its deadline) fails at once with those reasons,
 * on entry or as soon as the pool changes that way while it waits.
 */
#ifndef S2A_SCHED_H
#define S2A_SCHED_H

#include "common/shm.h"

#include <event2/event.h>

#define S2A_SCHED_AVOID_MAX 8

/*
 * `lease` is the granted lease (copy it; the caller now owns it and must
 * s2a_sched_release it exactly once), or NULL with `why` when the wait
 * ended without one.
 */
typedef void (*s2a_sched_done_pt)(const s2a_lease_t *lease, const char *why,
                                  void *arg);

int s2a_sched_init(struct event_base *base);
void s2a_sched_cleanup(void);

/*
 * Asks for a token for `kind`, never one of `avoid` (ids of tokens the job
 * already failed on). `done` is always called later from the event loop,
 * never from inside this call. Returns a wait id for s2a_sched_cancel, or
 * 0 when the queue is full.
 */
uint64_t s2a_sched_acquire(s2a_kind_t kind, const int64_t *avoid, int navoid,
                           s2a_sched_done_pt done, void *arg);

/*
 * The same for a job of an API key bound to a token group (`group`, see
 * s2a_keytab_group_hash; 0: any token): only that group's tokens serve
 * it, and the refusal names only them.
 */
uint64_t s2a_sched_acquire_group(s2a_kind_t kind, uint64_t group,
                                 const int64_t *avoid, int navoid,
                                 s2a_sched_done_pt done, void *arg);

/*
 * The same for a job that sticky routing (sticky.c) pinned to token
 * `pin` (0: none, as s2a_sched_acquire_group) for the character `name`:
 * the job takes that token when it is eligible, waits for it while it is
 * busy (or cooling until before the deadline), up to queue_timeout as
 * any waiter; when it cannot serve the job (gone, disabled, invalid,
 * expired, outside `group`, already failed the job, or busy to the end)
 * a `required` pin (a private character) fails the job with a reason
 * naming the character, any other goes on with every token.
 */
uint64_t s2a_sched_acquire_pinned(s2a_kind_t kind, uint64_t group,
                                  const int64_t *avoid, int navoid, int64_t pin,
                                  bool required, const char *name,
                                  s2a_sched_done_pt done, void *arg);

/* The caller stopped waiting (its client left); `done` will not run. */
void s2a_sched_cancel(uint64_t id);

/* Returns a lease and lets waiters of this worker try again at once. */
void s2a_sched_release(s2a_lease_t *lease);

/*
 * Tokens outside `avoid` that could take a `kind` job now or when a slot
 * frees up; 0 means a retry would only wait out the queue timeout.
 */
int s2a_sched_candidates(s2a_kind_t kind, const int64_t *avoid, int navoid);
/* The same within token group `group` (0: any). */
int s2a_sched_candidates_group(s2a_kind_t kind, uint64_t group,
                               const int64_t *avoid, int navoid);

/* Jobs waiting in this worker. */
int s2a_sched_waiting(void);

/* Queue scans under the lock so far in this worker (tests, stats). */
uint64_t s2a_sched_scans(void);

#endif /* S2A_SCHED_H */
