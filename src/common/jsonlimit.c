/*
 * jsonlimit.c: a linear pre-scan of JSON text against value, depth and
 * string limits (see jsonlimit.h).
 */
#include "common/jsonlimit.h"

#include <stdio.h>

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool
is_structural(char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ',' || c == ':'
        || c == '"';
}

/* Settles a string of `slen` bytes once it is known to be a key or not. */
static int
string_done(bool key, size_t slen, size_t *values, const s2a_json_limits_t *lim,
            char *err, size_t errlen)
{
    if (key) {
        if (slen > lim->max_key) {
            snprintf(err, errlen, "an object key is longer than %zu bytes",
                     lim->max_key);
            return S2A_DECLINED;
        }
        return S2A_OK;
    }
    if (slen > lim->max_string) {
        snprintf(err, errlen, "a string is longer than %zu bytes",
                 lim->max_string);
        return S2A_DECLINED;
    }
    (*values)++;
    return S2A_OK;
}

static int
too_many(const s2a_json_limits_t *lim, char *err, size_t errlen)
{
    snprintf(err, errlen, "the body holds more than %zu JSON values",
             lim->max_values);
    return S2A_DECLINED;
}

int
s2a_json_limits_check(const char *text, size_t len,
                      const s2a_json_limits_t *lim, char *err, size_t errlen)
{
    size_t i = 0, values = 0, depth = 0, start, slen = 0;
    bool pending = false; /* a string closed; key or value is not known */
    bool scalar = false;  /* inside a number or a literal */
    char c;

    while (i < len) {
        c = text[i];
        if (is_blank(c)) {
            scalar = false;
            i++;
            continue;
        }
        /* A string is a key when the next thing after it is a colon. */
        if (pending) {
            pending = false;
            if (string_done(c == ':', slen, &values, lim, err, errlen)
                != S2A_OK) {
                return S2A_DECLINED;
            }
        }
        if (c == '"') {
            scalar = false;
            start = ++i;
            while (i < len && text[i] != '"') {
                /* An escape hides the byte after it, a quote included. */
                i += text[i] == '\\' ? 2 : 1;
            }
            slen = (i < len ? i : len) - start;
            pending = true;
            i++;
        } else if (c == '{' || c == '[') {
            scalar = false;
            values++;
            if (++depth > lim->max_depth) {
                snprintf(err, errlen,
                         "arrays and objects nest deeper than %zu levels",
                         lim->max_depth);
                return S2A_DECLINED;
            }
            i++;
        } else if (is_structural(c)) {
            scalar = false;
            if ((c == '}' || c == ']') && depth > 0) {
                depth--;
            }
            i++;
        } else {
            if (!scalar) {
                values++;
            }
            scalar = true;
            i++;
        }
        if (values > lim->max_values) {
            return too_many(lim, err, errlen);
        }
    }
    if (pending
        && string_done(false, slen, &values, lim, err, errlen) != S2A_OK) {
        return S2A_DECLINED;
    }
    return values > lim->max_values ? too_many(lim, err, errlen) : S2A_OK;
}
