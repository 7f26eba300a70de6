/*
 * util.h: time and small string helpers.
 */
#ifndef S2A_UTIL_H
#define S2A_UTIL_H

#include "common/core.h"

/* Wall-clock time in milliseconds / seconds since the epoch. */
int64_t s2a_now_ms(void);
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
