/*
 * listeners.h: the master's listening addresses and sockets (see
 * listeners.c).
 */
#ifndef S2A_MASTER_LISTENERS_H
#define S2A_MASTER_LISTENERS_H

#include "common/conf.h"

/* Opens every address of `conf` for its worker slots (start-up). */
int s2a_listeners_start(const s2a_conf_t *conf);

/* Reload: switch to the addresses of `next`, all or nothing. */
int s2a_listeners_reload(const s2a_conf_t *next);

/* listen(2) again on every socket, applying a changed backlog. */
void s2a_listeners_relisten(int backlog);

/* New connections go to the sockets of the first `n` slots only. */
void s2a_listeners_steer(int n);

/* Bit per listener of the current configuration (given to a worker). */
uint32_t s2a_listeners_active_mask(void);

/* Closes the master's copy of sockets no present or future worker needs
 * (reads s2a_master.procs and .stopping). */
void s2a_listeners_close_unused(void);

/*
 * In a new worker: puts the descriptors of slot `slot` (at most `max`)
 * into `fds` and closes every other listening socket. Returns how many.
 */
int s2a_listeners_take_slot(int slot, int *fds, int max);

#endif /* S2A_MASTER_LISTENERS_H */
