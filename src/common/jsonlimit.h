/*
 * jsonlimit.h: bounds on a JSON text, checked before Jansson parses it.
 *
 * Jansson builds a tree of every value it reads and has no limit but a
 * nesting depth of 2048: a 64 MiB body of "[{},{},...]" costs gigabytes
 * and seconds of one worker's event loop. One linear pass over the bytes
 * counts the values, the nesting depth and the longest string and object
 * key, and refuses a text over a limit before any of it is parsed. The
 * pass is not a validator: malformed JSON within the limits is left to
 * Jansson, which reports it.
 */
#ifndef S2A_JSONLIMIT_H
#define S2A_JSONLIMIT_H

#include "common/core.h"

/* The limits every request body is held to (see docs/limits.md). */
#define S2A_JSON_MAX_VALUES 262144 /* values, object keys not counted */
#define S2A_JSON_MAX_DEPTH  64     /* nested arrays and objects */
#define S2A_JSON_MAX_KEY    1024   /* bytes of one object key, as sent */

typedef struct s2a_json_limits_s {
    size_t max_values; /* scalars, strings, arrays and objects */
    size_t max_depth;  /* open arrays and objects at any point */
    size_t max_string; /* bytes between the quotes of a string value */
    size_t max_key;    /* bytes between the quotes of an object key */
} s2a_json_limits_t;

/*
 * Scans `len` bytes of `text` against `lim`. Returns S2A_OK when no limit
 * is exceeded (the text may still be malformed), or S2A_DECLINED with a
 * client-facing sentence naming the limit in `err`. Reads each byte at
 * most once and allocates nothing.
 */
int s2a_json_limits_check(const char *text, size_t len,
                          const s2a_json_limits_t *lim, char *err,
                          size_t errlen);

#endif /* S2A_JSONLIMIT_H */
