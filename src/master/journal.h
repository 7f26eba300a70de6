/*
 * journal.h: generation records in the master (see journal.c). Its
 * control operations are declared in ops.h.
 */
#ifndef S2A_MASTER_JOURNAL_H
#define S2A_MASTER_JOURNAL_H

#include "common/ops.h"

#include <stdbool.h>
#include <sys/types.h>

/*
 * Worker `pid` is gone: after the records it sent before it died, its
 * task rows that may have been sent without Sora's answer being known
 * (`submitting`) are closed as failed (worker_died), queued ones with an
 * input image as failed (interrupted: the image is gone); the others
 * are resumed (a task id) or submitted (still queued) by a live worker.
 * While the daemon stops nothing is closed: the next start decides.
 */
void s2a_journal_worker_gone(pid_t pid);

/*
 * The batch ended (`ok`: committed). The jobs of dead workers it closed
 * count as ended (`sora2api_jobs_total{state="failed"}`, with their age
 * as duration) only once the closing is durable: a failed commit is
 * applied again, and counting then would count them twice.
 */
void s2a_journal_committed(bool ok);

/*
 * Start-up: rows a crash, kill or stop left unfinished are closed as
 * failed (interrupted) unless Sora has their task or nothing was sent
 * for them yet (queued, no input image); those are resumed or submitted
 * once workers are ready. Returns S2A_OK or S2A_ERROR.
 */
int s2a_journal_recover(void);

/*
 * Hands each resumable or resubmittable row no live worker runs to a
 * ready worker (round-robin, op job_resume), when a start or a dead
 * worker left some.
 * Nothing while the daemon stops or records wait for the database; what
 * is left (no worker ready) is tried again at the next call. Called
 * from the master's tick and when the workers are ready.
 */
void s2a_journal_resume_tick(void);

/* Frees the resume bookkeeping (master exit). */
void s2a_journal_resume_cleanup(void);

#endif /* S2A_MASTER_JOURNAL_H */
