/*
 * sweep.h: periodic maintenance decided by the master (see sweep.c).
 */
#ifndef S2A_MASTER_SWEEP_H
#define S2A_MASTER_SWEEP_H

/* Called once a second by the supervisor; sweeps once a minute. */
void s2a_sweep_tick(void);

#endif /* S2A_MASTER_SWEEP_H */
