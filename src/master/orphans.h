/*
 * orphans.h: the upstream character deletes the gateway owes, finished
 * by the master (docs/characters.md, "No orphans").
 */
#ifndef S2A_ORPHANS_H
#define S2A_ORPHANS_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

/* At start, before any worker: the last run's attempts are over. */
int s2a_orphans_recover(void);

/* Every second: a pass when one is wanted (start, a worker gone, a
 * sweep_now) or due (once a minute). */
void s2a_orphans_tick(void);

/* A pass at the next tick. */
void s2a_orphans_wanted(void);

/* A worker was reaped: the deletes it held are free again (queued after
 * its last records). */
void s2a_orphans_worker_gone(pid_t pid);

/*
 * In the batch, right after character_write set row `public_id` to
 * `deleting` for worker `pid`: the attempt is that worker's (the job's
 * own delete), counted, with a lease.
 */
void s2a_orphans_marked(const char *public_id, pid_t pid);

#endif /* S2A_ORPHANS_H */
