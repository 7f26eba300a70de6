/*
 * h1.h: the strict HTTP/1.1 message framing parser (RFC 9112).
 *
 * Pure functions over bytes, no I/O and no allocation: the request head
 * parser and the chunked body decoder the server (http.c) runs on every
 * request. Every framing ambiguity is an error, never a guess: a line
 * must end in CRLF; NUL, CR and LF never appear inside a field; one
 * Transfer-Encoding, exactly "chunked", never with Content-Length and
 * never on HTTP/1.0; Content-Length is plain digits and repeated only
 * with the same value; HTTP/1.1 needs exactly one Host.
 */
#ifndef S2A_H1_H
#define S2A_H1_H

#include "common/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S2A_H1_MAX_HEADERS 100
/* Chunk extensions of one size line and all trailer fields together. */
#define S2A_H1_MAX_CHUNK_EXT 1024
#define S2A_H1_MAX_TRAILERS  8192

typedef struct s2a_h1_header_s {
    const char *name;
    const char *value; /* without surrounding blanks */
} s2a_h1_header_t;

typedef struct s2a_h1_head_s {
    const char *method;
    char *target; /* request target as sent */
    int version_minor;
    size_t head_len; /* bytes of the head, its final CRLF included */
    s2a_h1_header_t headers[S2A_H1_MAX_HEADERS];
    int nheaders;
    int64_t content_length; /* -1: none */
    bool chunked;
    bool keep_alive; /* by version and Connection */
    /* Set on S2A_ERROR: the status to answer, an error code, a message. */
    int status;
    const char *code;
    const char *message;
} s2a_h1_head_t;

/*
 * Parses a request head from the `len` bytes received so far in `buf`.
 * Returns S2A_AGAIN when the head is not complete yet (`buf` untouched:
 * call again with more bytes), S2A_ERROR with out->status, code and
 * message set when the bytes can never be a valid head (the connection
 * must be closed after the answer), or S2A_OK: the head is the first
 * out->head_len bytes, rewritten in place into NUL-terminated strings
 * that out's pointers refer to (the caller keeps `buf` alive). Bytes
 * after the head are not looked at. Leading empty lines are skipped.
 */
int s2a_h1_parse_head(char *buf, size_t len, s2a_h1_head_t *out);

/* Value of the first header named `name` (case-insensitive), or NULL. */
const char *s2a_h1_header(const s2a_h1_head_t *head, const char *name);

/* State of one chunked body; see s2a_h1_chunked_parse. */
typedef struct s2a_h1_chunked_s {
    int state;
    int ndigits;
    uint64_t left;  /* data bytes left in the current chunk */
    uint64_t total; /* data bytes announced so far */
    uint64_t limit; /* largest total accepted */
    size_t ext_len;
    size_t trailer_len;
    int status; /* on S2A_ERROR, as in s2a_h1_head_t */
    const char *code;
    const char *message;
} s2a_h1_chunked_t;

/* Starts decoding a chunked body of at most `limit` data bytes. */
void s2a_h1_chunked_init(s2a_h1_chunked_t *st, uint64_t limit);

/*
 * Decodes the next part of a chunked body from `in` (`len` bytes). It
 * consumes framing and at most one run of data, and stops after that run:
 * *used bytes of `in` were consumed, and the last *data_len of them are
 * body data. Returns S2A_OK when the body ended (its last CRLF consumed;
 * bytes after it belong to the next message), S2A_AGAIN when the caller
 * should call again with the rest of `in` or, when all was used, with
 * more bytes, or S2A_ERROR (st->status 400, or 413 when the chunks
 * announce more than the limit). Chunk extensions are accepted only when
 * they follow the grammar exactly (";name", ";name=token",
 * ";name=\"quoted\"", no blanks) and are ignored; so are trailer fields.
 */
int s2a_h1_chunked_parse(s2a_h1_chunked_t *st, const char *in, size_t len,
                         size_t *used, size_t *data_len);

#endif /* S2A_H1_H */
