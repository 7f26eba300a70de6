/*
 * fuzz_multipart.c: libFuzzer target for a multipart/form-data body of
 * /v1/images/generations and /edits: the input up to its first newline is the Content-Type
 * header value, the rest the body. Every part must lie inside the body
 * and never exceed the cap on parts.
 */
#include "worker/multipart.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s2a_mpart_t parts[MAX_PARTS];
    char boundary[S2A_MULTIPART_BOUNDARY_MAX + 1], err[256], *ctype;
    const uint8_t *nl = memchr(data, '\n', size), *body;
    size_t clen = nl != NULL ? (size_t) (nl - data) : size, blen, n, i;

    ctype = malloc(clen + 1);
    if (ctype == NULL) {
        return 0;
    }
    memcpy(ctype, data, clen);
    ctype[clen] = '\0';
    body = nl != NULL ? nl + 1 : data + size;
    blen = (size_t) (data + size - body);
    if (s2a_multipart_boundary(ctype, boundary, err, sizeof(err)) == S2A_OK) {
        if (strlen(boundary) == 0
            || strlen(boundary) > S2A_MULTIPART_BOUNDARY_MAX) {
            abort();
        }
        if (s2a_multipart_parse(body, blen, boundary, parts, MAX_PARTS, &n, err,
                                sizeof(err))
            == S2A_OK)
        {
            if (n > MAX_PARTS) {
                abort();
            }
            for (i = 0; i < n; i++) {
                if (parts[i].data < body || parts[i].len > blen
                    || parts[i].data + parts[i].len > body + blen
                    || parts[i].name[0] == '\0')
                {
                    abort(); /* a part outside the body */
                }
            }
        }
    }
    free(ctype);
    return 0;
}
