/*
 * signedurl.c: the expiry of a signed media URL (signedurl.h). The URL
 * comes from the upstream and its text is not trusted: every read is
 * bounded by the string, values longer than any time are refused, and
 * the calendar check is libc's (timegm, then a comparison of what it
 * normalised).
 */
#include "worker/signedurl.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

/* An ISO-8601 time is at most ~35 bytes; anything longer is not one. */
#define SE_MAX 64

/* The value of hex digit `c`, or -1. */
static int
hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* `n` decimal digits at `s` into *out; S2A_DECLINED unless all are. */
static int
digits(const char *s, size_t n, int *out)
{
    size_t i;
    int v = 0;

    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char) s[i])) {
            return S2A_DECLINED;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return S2A_OK;
}

int
s2a_iso8601_parse(const char *s, size_t len, int64_t *out)
{
    struct tm tm, check;
    int year, mon, day, hour = 0, min = 0, sec = 0, zh = 0, zm = 0;
    int sign = 0;
    size_t i = 10;
    time_t t;

    if (len < 10 || digits(s, 4, &year) != S2A_OK || s[4] != '-'
        || digits(s + 5, 2, &mon) != S2A_OK || s[7] != '-'
        || digits(s + 8, 2, &day) != S2A_OK)
    {
        return S2A_DECLINED;
    }
    if (i < len && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        if (len < i + 6 || digits(s + i + 1, 2, &hour) != S2A_OK
            || s[i + 3] != ':' || digits(s + i + 4, 2, &min) != S2A_OK)
        {
            return S2A_DECLINED;
        }
        i += 6;
        if (i < len && s[i] == ':') {
            if (len < i + 3 || digits(s + i + 1, 2, &sec) != S2A_OK) {
                return S2A_DECLINED;
            }
            i += 3;
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                /* A fraction of a second: at least one digit, ignored. */
                if (i + 1 >= len || !isdigit((unsigned char) s[i + 1])) {
                    return S2A_DECLINED;
                }
                for (i++; i < len && isdigit((unsigned char) s[i]); i++) {
                }
            }
        }
    }
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i] == '+' ? 1 : -1;
        if (len < i + 5 || digits(s + i + 1, 2, &zh) != S2A_OK) {
            return S2A_DECLINED;
        }
        if (s[i + 3] == ':') {
            if (len < i + 6 || digits(s + i + 4, 2, &zm) != S2A_OK) {
                return S2A_DECLINED;
            }
            i += 6;
        } else {
            if (digits(s + i + 3, 2, &zm) != S2A_OK) {
                return S2A_DECLINED;
            }
            i += 5;
        }
    }
    if (i != len || year < 1970 || mon < 1 || mon > 12 || day < 1 || hour > 23
        || min > 59 || sec > 60 || zh > 23 || zm > 59)
    {
        return S2A_DECLINED;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec == 60 ? 59 : sec; /* a leap second: its last whole one */
    check = tm;
    t = timegm(&tm);
    /* timegm normalises February 30 to March 2: such a date is wrong. */
    if (t == (time_t) -1 || tm.tm_mday != check.tm_mday
        || tm.tm_mon != check.tm_mon || tm.tm_year != check.tm_year)
    {
        return S2A_DECLINED;
    }
    *out = (int64_t) t - (int64_t) sign * (zh * 3600 + zm * 60);
    return S2A_OK;
}

int
s2a_signed_url_expiry(const char *url, int64_t *expires)
{
    const char *p, *end, *amp, *v;
    char value[SE_MAX];
    size_t n, vlen;
    int hi, lo;

    p = url != NULL ? strchr(url, '?') : NULL;
    if (p == NULL) {
        return S2A_DECLINED;
    }
    p++;
    end = strchr(p, '#');
    if (end == NULL) {
        end = p + strlen(p);
    }
    for (; p < end; p = amp + 1) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }
        if (amp - p < 3 || memcmp(p, "se=", 3) != 0) {
            continue;
        }
        /* The first se is the signature's: decode it, bounded. */
        v = p + 3;
        vlen = (size_t) (amp - v);
        for (n = 0; vlen > 0; n++) {
            if (n == sizeof(value)) {
                return S2A_DECLINED;
            }
            if (*v == '%') {
                if (vlen < 3 || (hi = hexval((unsigned char) v[1])) < 0
                    || (lo = hexval((unsigned char) v[2])) < 0)
                {
                    return S2A_DECLINED;
                }
                value[n] = (char) (hi * 16 + lo);
                v += 3;
                vlen -= 3;
            } else {
                value[n] = *v++;
                vlen--;
            }
        }
        return s2a_iso8601_parse(value, n, expires);
    }
    return S2A_DECLINED;
}
