/*
 * fuzz_signedurl.c: libFuzzer target for the expiry of signed media
 * URLs (s2a_signed_url_expiry, whose `se=` value is upstream text) and
 * the ISO-8601 parser under it, on the same bytes both ways: as a URL
 * (NUL-terminated) and as a time of exactly `size` bytes (not
 * terminated, so a read past the end is an ASan report).
 */
#include "worker/signedurl.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 1970-01-01 minus a day of offset .. 9999-12-31 plus a day. */
#define T_MIN (-86400LL)
#define T_MAX (253402300799LL + 86400LL)

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text, *exact;
    int64_t t = 0;
    int r;

    text = malloc(size + 1);
    exact = malloc(size > 0 ? size : 1);
    if (text == NULL || exact == NULL) {
        free(text);
        free(exact);
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    memcpy(exact, data, size);
    r = s2a_signed_url_expiry(text, &t);
    if ((r != S2A_OK && r != S2A_DECLINED)
        || (r == S2A_OK && (t < T_MIN || t > T_MAX)))
    {
        abort();
    }
    t = 0;
    r = s2a_iso8601_parse(exact, size, &t);
    if ((r != S2A_OK && r != S2A_DECLINED)
        || (r == S2A_OK && (t < T_MIN || t > T_MAX)))
    {
        abort();
    }
    free(text);
    free(exact);
    return 0;
}
