/*
 * util.c: time and filesystem helpers.
 */
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int64_t
s2a_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds (durations). */
int64_t
s2a_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
s2a_now(void)
{
    return (int64_t) time(NULL);
}

int64_t
s2a_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
s2a_mkdirs(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    size_t i, len = strlen(path);

    if (len == 0 || len >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return S2A_ERROR;
    }
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, (mode_t) mode) == -1 && errno != EEXIST) {
                return S2A_ERROR;
            }
            buf[i] = c;
        }
    }
    return S2A_OK;
}

void
s2a_utc_day(int64_t t, char out[11])
{
    time_t tt = (time_t) t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

bool
s2a_is_hex(const char *s, size_t len)
{
    size_t i;

    if (strlen(s) != len) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

int64_t
s2a_backoff_jitter(int attempt, int64_t base, int64_t cap, double r)
{
    int64_t d = base > 0 ? base : 1;
    int i;

    for (i = 1; i < attempt && d < cap; i++) {
        d *= 2;
    }
    if (d > cap) {
        d = cap;
    }
    if (!(r >= 0.0)) {
        r = 0.0; /* NaN too */
    } else if (r > 1.0) {
        r = 1.0;
    }
    return d - d / 2 + (int64_t) ((double) (d / 2) * r);
}
