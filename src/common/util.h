/*
 * util.h: time and small string helpers.
 */
#ifndef S2A_UTIL_H
#define S2A_UTIL_H

#include "common/core.h"

/* Wall-clock time in milliseconds / seconds since the epoch. */
int64_t s2a_now_ms(void);

/*
 * Back-off with equal jitter: `base` doubled per earlier failed attempt
 * (`attempt` 1, 2, ...), at most `cap`, then moved into [d/2, d] by `r`
 * in [0, 1] (NaN counts as 0), so retries of many things that failed
 * together spread out. Any unit; `base` < 1 counts as 1.
 */
int64_t s2a_backoff_jitter(int attempt, int64_t base, int64_t cap, double r);
int64_t s2a_now(void);

/* Monotonic milliseconds, for deadlines and durations. */
int64_t s2a_mono_ms(void);
/* Monotonic microseconds. */
int64_t s2a_mono_us(void);

/* The UTC day of unix time `t` as "YYYY-MM-DD" (usage and counters). */
void s2a_utc_day(int64_t t, char out[11]);

/* mkdir -p with `mode`. Returns S2A_OK or S2A_ERROR with errno set. */
int s2a_mkdirs(const char *path, unsigned mode);

/* True when `s` is exactly `len` lower-case hex digits. */
bool s2a_is_hex(const char *s, size_t len);

#endif /* S2A_UTIL_H */
