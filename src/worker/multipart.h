/*
 * multipart.h: a multipart/form-data body (RFC 7578 over RFC 2046) read
 * into parts: bytes in, parts out. The parts point into the body, so the
 * only memory is the caller's fixed array; the header block of a part and
 * the number of parts are bounded, and every framing doubt is an error.
 */
#ifndef S2A_MULTIPART_H
#define S2A_MULTIPART_H

#include "common/core.h"

#include <stddef.h>

#define S2A_MULTIPART_BOUNDARY_MAX 70   /* RFC 2046 */
#define S2A_MULTIPART_HEADERS_MAX  8192 /* one part's header block */

typedef struct s2a_mpart_s {
    char name[128];            /* form field name (Content-Disposition) */
    char filename[256];        /* "" when the part is not a file */
    bool has_filename;         /* a filename parameter was present */
    char content_type[128];    /* the part's Content-Type, or "" */
    const unsigned char *data; /* into the body */
    size_t len;
} s2a_mpart_t;

/*
 * Reads the boundary parameter of a Content-Type header value
 * ("multipart/form-data; boundary=..." with the value quoted or not) into
 * `out` (at least S2A_MULTIPART_BOUNDARY_MAX + 1 bytes). Returns S2A_OK,
 * S2A_DECLINED when the type is not multipart/form-data, or S2A_ERROR
 * when the boundary is missing or malformed (a message in `err`).
 */
int s2a_multipart_boundary(const char *content_type, char *out, char *err,
                           size_t errlen);

/*
 * Splits `body` at `boundary` into at most `max` parts, written to
 * `parts` (*nparts of them). Returns S2A_OK, or S2A_ERROR with a
 * client-facing message in `err`: no opening or closing delimiter, a bad
 * header line, a header block over S2A_MULTIPART_HEADERS_MAX, a part
 * without a form-data Content-Disposition name, more than `max` parts.
 * The parts borrow from `body`.
 */
int s2a_multipart_parse(const unsigned char *body, size_t len,
                        const char *boundary, s2a_mpart_t *parts, size_t max,
                        size_t *nparts, char *err, size_t errlen);

#endif /* S2A_MULTIPART_H */
