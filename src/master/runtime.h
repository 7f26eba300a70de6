/*
 * runtime.h: the runtime settings and revoked sessions in the master
 * (see runtime.c). Their control operations are declared in ops.h.
 */
#ifndef S2A_MASTER_RUNTIME_H
#define S2A_MASTER_RUNTIME_H

#include "common/core.h"

/*
 * Re-reads the runtime settings from the database into the shm snapshot
 * and applies the log level; `warn` names refused stored values (start
 * and reload). Returns S2A_OK or S2A_ERROR (a required setting is bad).
 */
int s2a_runtime_publish(bool warn);

/* Logs a warning for each default credential still in use. */
void s2a_runtime_warn_defaults(void);

/* Copies the unexpired revoked sessions of the database into shm. */
int s2a_runtime_load_revoked(void);

/*
 * Copies the stored admin login throttle rows into shm (start-up), so a
 * lock survives a restart. Returns S2A_OK or S2A_ERROR.
 */
int s2a_runtime_load_throttle(void);

/* The batch ended (`ok`: committed): publish the settings it changed. */
void s2a_runtime_committed(bool ok);

#endif /* S2A_MASTER_RUNTIME_H */
