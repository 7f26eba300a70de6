/*
 * journal.h: generation records in the master (see journal.c). Its
 * control operations are declared in ops.h.
 */
#ifndef S2A_MASTER_JOURNAL_H
#define S2A_MASTER_JOURNAL_H

#include "common/ops.h"

#include <sys/types.h>

/*
 * Worker `pid` is gone: its task rows still queued or running are closed
 * as failed (worker_died), after the records it sent before it died.
 */
void s2a_journal_worker_gone(pid_t pid);

/*
 * Start-up: rows a crash or kill left queued or running are closed as
 * failed (interrupted). Returns S2A_OK or S2A_ERROR.
 */
int s2a_journal_recover(void);

#endif /* S2A_MASTER_JOURNAL_H */
