/*
 * fuzz_sticky.c: libFuzzer target for the @mention scanner of sticky
 * routing (src/worker/sticky.c): any prompt bytes. Every name found is
 * 3 to 30 bytes of [a-z0-9._], ends in no '.', appears once, appears in
 * the input after an '@' (case aside), and there are never more than
 * asked for.
 */
#include "worker/sticky.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_NAMES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether "@<name>" occurs in `data` (ASCII case-insensitive). */
static int
mentioned(const uint8_t *data, size_t size, const char *name)
{
    size_t len = strlen(name), i;

    for (i = 0; i + len < size; i++) {
        if (data[i] == '@'
            && strncasecmp((const char *) data + i + 1, name, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char names[MAX_NAMES][S2A_STICKY_NAME_LEN];
    size_t n, i, j, len;

    n = s2a_sticky_mentions((const char *) data, size, names, MAX_NAMES);
    if (n > MAX_NAMES) {
        abort();
    }
    for (i = 0; i < n; i++) {
        len = strlen(names[i]);
        if (len < 3 || len > 30 || names[i][len - 1] == '.') {
            abort();
        }
        for (j = 0; j < len; j++) {
            char c = names[i][j];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'
                  || c == '_')) {
                abort();
            }
        }
        for (j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0) {
                abort();
            }
        }
        if (!mentioned(data, size, names[i])) {
            abort();
        }
    }
    return 0;
}
