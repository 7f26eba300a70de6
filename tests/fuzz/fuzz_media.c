/*
 * fuzz_media.c: libFuzzer target for what /tmp/<name> reads from a
 * client before touching a file: the media name check, the content type
 * by extension and the Range header. The first 8 input bytes are the
 * file size, the rest the header (and the name).
 */
#include "worker/media.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t raw = 0;
    int64_t fsize, start = -1, len = -1;
    char *text;
    size_t n;
    int r;

    if (size >= 8) {
        memcpy(&raw, data, 8);
        data += 8;
        size -= 8;
    }
    /* Real sizes are small and never negative; mostly small here too. */
    fsize = (int64_t) (raw & 0x7fffffffffffffffULL);
    if ((raw >> 63) == 0) {
        fsize %= 100000;
    }
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    r = s2a_media_range(text, fsize, &start, &len);
    if (r > 0 && (start < 0 || len <= 0 || start > fsize - len)) {
        abort(); /* a range served must lie inside the file */
    }
    if (r < -1 || r > 1) {
        abort();
    }
    if (s2a_media_name_ok(text)) {
        n = strlen(text);
        if (n < 3 || n > 128 + 5 || s2a_media_type(text) == NULL
            || strchr(text, '/') != NULL)
        {
            abort();
        }
    }
    (void) s2a_media_type(text);
    free(text);
    return 0;
}
