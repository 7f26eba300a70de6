/*
 * usage.h: per-worker request counters, flushed to the master once a
 * second as one batch (the master adds them to the usage_daily table).
 */
#ifndef S2A_USAGE_H
#define S2A_USAGE_H

#include "common/core.h"

/* Counts one answered request of `route` with `status`. */
void s2a_usage_count(const char *route, int status);

/* Sends what was counted since the last flush (nothing if nothing). */
void s2a_usage_flush(void);

/* Frees the counters (at exit, after the final flush). */
void s2a_usage_cleanup(void);

#endif /* S2A_USAGE_H */
