/*
 * h1.c: strict HTTP/1.1 framing (RFC 9112): the request head parser and
 * the chunked body decoder. See h1.h for the rules; whatever the grammar
 * does not allow, or allows in two readings, is refused with 400, so a
 * proxy in front of us and this server can never disagree about where a
 * message ends.
 */
#include "worker/h1.h"

#include <string.h>
#include <strings.h>

enum {
    CK_SIZE_START = 0, /* the first hex digit of a size */
    CK_SIZE,           /* more digits, ';' or CR */
    CK_EXT_NAME_START, /* after ';' */
    CK_EXT_NAME,
    CK_EXT_VAL_START, /* after '=' */
    CK_EXT_TOKEN,
    CK_EXT_QUOTED,
    CK_EXT_QPAIR,
    CK_EXT_QEND, /* after the closing quote */
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TRAILER_START, /* a trailer field or the final CRLF */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_END_LF,
    CK_DONE,
    CK_FAILED
};

/* RFC 9110 5.6.2 tchar. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte allowed inside a field value: VCHAR, obs-text, SP, HTAB. */
static bool
is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int
hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int
head_fail(s2a_h1_head_t *out, int status, const char *code, const char *msg)
{
    out->status = status;
    out->code = code;
    out->message = msg;
    return S2A_ERROR;
}

#define BAD(msg) head_fail(out, 400, "bad_request", (msg))

/* Whether the comma-separated list `v` holds `token` (case-insensitive). */
static bool
list_has(const char *v, const char *token)
{
    size_t tlen = strlen(token), n;

    while (*v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',') {
            v++;
        }
        n = strcspn(v, ", \t");
        if (n == tlen && strncasecmp(v, token, tlen) == 0) {
            return true;
        }
        v += n;
        while (*v != '\0' && *v != ',') {
            v++;
        }
    }
    return false;
}

/* Content-Length: 1 to 18 digits, nothing else. */
static int
parse_length(const char *v, int64_t *n)
{
    int64_t x = 0;
    int i;

    for (i = 0; v[i] != '\0'; i++) {
        if (v[i] < '0' || v[i] > '9' || i == 18) {
            return S2A_ERROR;
        }
        x = x * 10 + (v[i] - '0');
    }
    if (i == 0) {
        return S2A_ERROR;
    }
    *n = x;
    return S2A_OK;
}

/*
 * Finds the end of the head in `buf` without changing it: S2A_OK with
 * *start (after leading empty lines) and *end (after the blank line),
 * S2A_AGAIN, or S2A_ERROR for a NUL, a bare CR or a bare LF.
 */
static int
find_end(const char *buf, size_t len, size_t *start, size_t *end,
         s2a_h1_head_t *out)
{
    size_t i = 0, line;

    while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n') {
        i += 2;
    }
    *start = i;
    line = i;
    for (; i < len; i++) {
        if (buf[i] == '\0') {
            return BAD("NUL byte in the request head.");
        }
        if (buf[i] == '\n') {
            return BAD("Line not ended by CRLF.");
        }
        if (buf[i] != '\r') {
            continue;
        }
        if (i + 1 == len) {
            return S2A_AGAIN;
        }
        if (buf[i + 1] != '\n') {
            return BAD("CR not followed by LF.");
        }
        if (i == line && line != *start) {
            *end = i + 2;
            return S2A_OK;
        }
        i++;
        line = i + 1;
    }
    return S2A_AGAIN;
}

/* The request line [p, eol): method SP target SP HTTP/1.x */
static int
parse_request_line(char *p, char *eol, s2a_h1_head_t *out)
{
    char *sp1, *sp2, *q;

    *eol = '\0';
    sp1 = strchr(p, ' ');
    sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
    if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1
        || strchr(sp2 + 1, ' ') != NULL)
    {
        return BAD("Malformed request line.");
    }
    for (q = p; q < sp1; q++) {
        if (!is_tchar((unsigned char) *q)) {
            return BAD("Malformed request method.");
        }
    }
    for (q = sp1 + 1; q < sp2; q++) {
        if ((unsigned char) *q <= 0x20 || *q == 0x7f) {
            return BAD("Malformed request target.");
        }
    }
    q = sp2 + 1;
    if (strncmp(q, "HTTP/", 5) != 0) {
        return BAD("Malformed HTTP version.");
    }
    if (q[5] != '1' || q[6] != '.' || q[7] < '0' || q[7] > '9' || q[8] != '\0')
    {
        return head_fail(out, 505, "http_version_not_supported",
                         "Only HTTP/1.0 and HTTP/1.1 are supported.");
    }
    *sp1 = '\0';
    *sp2 = '\0';
    out->method = p;
    out->target = sp1 + 1;
    out->version_minor = q[7] - '0';
    return S2A_OK;
}

/* One header line [p, eol) into out->headers. */
static int
parse_field(char *p, char *eol, s2a_h1_head_t *out)
{
    char *q, *v, *vend;

    *eol = '\0';
    if (*p == ' ' || *p == '\t') {
        return BAD("Obsolete header line folding is not accepted.");
    }
    for (q = p; *q != ':'; q++) {
        if (*q == '\0' || !is_tchar((unsigned char) *q)) {
            return BAD(*q == '\0' ? "Malformed header field."
                                  : "Malformed header field name.");
        }
    }
    if (q == p) {
        return BAD("Malformed header field.");
    }
    *q = '\0';
    v = q + 1;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    vend = eol;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) {
        vend--;
    }
    *vend = '\0';
    for (q = v; q < vend; q++) {
        if (!is_field_byte((unsigned char) *q)) {
            return BAD("Malformed header field value.");
        }
    }
    if (out->nheaders == S2A_H1_MAX_HEADERS) {
        return head_fail(out, 431, "request_header_fields_too_large",
                         "Too many header fields.");
    }
    out->headers[out->nheaders].name = p;
    out->headers[out->nheaders].value = v;
    out->nheaders++;
    return S2A_OK;
}

/* Content-Length, Transfer-Encoding, Host and Connection, once parsed. */
static int
check_framing(s2a_h1_head_t *out)
{
    int i, nte = 0, nhost = 0;
    bool want_close = false, keep = false;
    const char *name, *v;
    int64_t n;

    for (i = 0; i < out->nheaders; i++) {
        name = out->headers[i].name;
        v = out->headers[i].value;
        if (strcasecmp(name, "Content-Length") == 0) {
            if (parse_length(v, &n) != S2A_OK) {
                return BAD("Malformed Content-Length.");
            }
            if (out->content_length >= 0 && n != out->content_length) {
                return BAD("Conflicting Content-Length values.");
            }
            out->content_length = n;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            nte++;
            if (strcasecmp(v, "chunked") != 0) {
                return BAD("Only Transfer-Encoding: chunked is accepted.");
            }
        } else if (strcasecmp(name, "Host") == 0) {
            nhost++;
        } else if (strcasecmp(name, "Connection") == 0) {
            /* One list over all its field lines (RFC 9110 5.3). */
            want_close = want_close || list_has(v, "close");
            keep = keep || list_has(v, "keep-alive");
        }
    }
    if (nte > 1) {
        return BAD("More than one Transfer-Encoding field.");
    }
    if (nte == 1 && out->content_length >= 0) {
        return BAD("Content-Length and Transfer-Encoding together.");
    }
    if (nte == 1 && out->version_minor == 0) {
        return BAD("Transfer-Encoding in an HTTP/1.0 request.");
    }
    if (nhost > 1) {
        return BAD("More than one Host field.");
    }
    if (nhost == 0 && out->version_minor >= 1) {
        return BAD("An HTTP/1.1 request needs a Host field.");
    }
    out->chunked = nte == 1;
    /* close wins over keep-alive, whatever the version (RFC 9112 9.3). */
    out->keep_alive = !want_close && (out->version_minor >= 1 || keep);
    return S2A_OK;
}

int
s2a_h1_parse_head(char *buf, size_t len, s2a_h1_head_t *out)
{
    size_t start, end;
    char *p, *eol;
    int rc;

    out->nheaders = 0;
    out->content_length = -1;
    out->chunked = false;
    out->keep_alive = false;
    out->status = 0;
    out->code = NULL;
    out->message = NULL;
    rc = find_end(buf, len, &start, &end, out);
    if (rc != S2A_OK) {
        return rc;
    }
    /* From here on every line ends in CRLF and holds no CR, LF or NUL. */
    p = buf + start;
    eol = memchr(p, '\r', end - start);
    if (parse_request_line(p, eol, out) != S2A_OK) {
        return S2A_ERROR;
    }
    for (p = eol + 2; p < buf + end - 2; p = eol + 2) {
        eol = memchr(p, '\r', (size_t) (buf + end - p));
        if (parse_field(p, eol, out) != S2A_OK) {
            return S2A_ERROR;
        }
    }
    buf[end - 2] = '\0';
    out->head_len = end;
    return check_framing(out);
}

const char *
s2a_h1_header(const s2a_h1_head_t *head, const char *name)
{
    int i;

    for (i = 0; i < head->nheaders; i++) {
        if (strcasecmp(head->headers[i].name, name) == 0) {
            return head->headers[i].value;
        }
    }
    return NULL;
}

void
s2a_h1_chunked_init(s2a_h1_chunked_t *st, uint64_t limit)
{
    memset(st, 0, sizeof(*st));
    st->state = CK_SIZE_START;
    st->limit = limit;
}

static int
chunk_fail(s2a_h1_chunked_t *st, int status, const char *msg)
{
    st->state = CK_FAILED;
    st->status = status;
    st->code = status == 413 ? "request_too_large" : "bad_request";
    st->message = msg;
    return S2A_ERROR;
}

/* A byte of a quoted-string's text (qdtext) or of a quoted-pair. */
static bool
is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b)
        || (c >= 0x5d && c <= 0x7e) || c >= 0x80;
}

/* One byte of framing; S2A_OK, or S2A_ERROR after chunk_fail. */
static int
chunk_byte(s2a_h1_chunked_t *st, unsigned char c)
{
    int d;

    if (st->state >= CK_EXT_NAME_START && st->state <= CK_EXT_QEND
        && ++st->ext_len > S2A_H1_MAX_CHUNK_EXT)
    {
        return chunk_fail(st, 400, "Chunk extensions too long.");
    }
    if (st->state >= CK_TRAILER_NAME && st->state <= CK_TRAILER_LF
        && ++st->trailer_len > S2A_H1_MAX_TRAILERS)
    {
        return chunk_fail(st, 400, "Trailer fields too long.");
    }
    switch (st->state) {
    case CK_SIZE_START:
    case CK_SIZE:
        d = hex_digit(c);
        if (d >= 0) {
            /* 15 digits are far beyond any limit and cannot overflow. */
            if (++st->ndigits > 15) {
                return chunk_fail(st, 400, "Chunk size too long.");
            }
            st->left = st->left << 4 | (uint64_t) d;
            st->state = CK_SIZE;
            return S2A_OK;
        }
        if (st->state == CK_SIZE_START) {
            return chunk_fail(st, 400, "Malformed chunk size.");
        }
        if (c == ';') {
            st->state = CK_EXT_NAME_START;
        } else if (c == '\r') {
            st->state = CK_SIZE_LF;
        } else {
            return chunk_fail(st, 400, "Malformed chunk size.");
        }
        return S2A_OK;
    case CK_EXT_NAME_START:
        if (!is_tchar(c)) {
            return chunk_fail(st, 400, "Malformed chunk extension.");
        }
        st->state = CK_EXT_NAME;
        return S2A_OK;
    case CK_EXT_NAME:
    case CK_EXT_TOKEN:
    case CK_EXT_QEND:
        if (st->state != CK_EXT_QEND && is_tchar(c)) {
            return S2A_OK;
        }
        if (c == ';') {
            st->state = CK_EXT_NAME_START;
        } else if (c == '=' && st->state == CK_EXT_NAME) {
            st->state = CK_EXT_VAL_START;
        } else if (c == '\r') {
            st->state = CK_SIZE_LF;
        } else {
            return chunk_fail(st, 400, "Malformed chunk extension.");
        }
        return S2A_OK;
    case CK_EXT_VAL_START:
        if (c == '"') {
            st->state = CK_EXT_QUOTED;
        } else if (is_tchar(c)) {
            st->state = CK_EXT_TOKEN;
        } else {
            return chunk_fail(st, 400, "Malformed chunk extension.");
        }
        return S2A_OK;
    case CK_EXT_QUOTED:
        if (c == '"') {
            st->state = CK_EXT_QEND;
        } else if (c == '\\') {
            st->state = CK_EXT_QPAIR;
        } else if (!is_qdtext(c)) {
            return chunk_fail(st, 400, "Malformed chunk extension.");
        }
        return S2A_OK;
    case CK_EXT_QPAIR:
        if (c != '\t' && (c < 0x20 || c == 0x7f)) {
            return chunk_fail(st, 400, "Malformed chunk extension.");
        }
        st->state = CK_EXT_QUOTED;
        return S2A_OK;
    case CK_SIZE_LF:
        if (c != '\n') {
            return chunk_fail(st, 400, "Chunk size line not ended by CRLF.");
        }
        if (st->left > st->limit - st->total) {
            return chunk_fail(st, 413,
                              "The request body is larger than the limit.");
        }
        st->total += st->left;
        st->ndigits = 0;
        st->ext_len = 0;
        st->state = st->left == 0 ? CK_TRAILER_START : CK_DATA;
        return S2A_OK;
    case CK_DATA_CR:
        if (c != '\r') {
            return chunk_fail(st, 400, "Chunk data not followed by CRLF.");
        }
        st->state = CK_DATA_LF;
        return S2A_OK;
    case CK_DATA_LF:
        if (c != '\n') {
            return chunk_fail(st, 400, "Chunk data not followed by CRLF.");
        }
        st->state = CK_SIZE_START;
        return S2A_OK;
    case CK_TRAILER_START:
        if (c == '\r') {
            st->state = CK_END_LF;
        } else if (is_tchar(c)) {
            st->trailer_len++;
            st->state = CK_TRAILER_NAME;
        } else {
            return chunk_fail(st, 400, "Malformed trailer field.");
        }
        return S2A_OK;
    case CK_TRAILER_NAME:
        if (c == ':') {
            st->state = CK_TRAILER_VALUE;
        } else if (!is_tchar(c)) {
            return chunk_fail(st, 400, "Malformed trailer field.");
        }
        return S2A_OK;
    case CK_TRAILER_VALUE:
        if (c == '\r') {
            st->state = CK_TRAILER_LF;
        } else if (!is_field_byte(c)) {
            return chunk_fail(st, 400, "Malformed trailer field.");
        }
        return S2A_OK;
    case CK_TRAILER_LF:
    case CK_END_LF:
        if (c != '\n') {
            return chunk_fail(st, 400, "Trailer line not ended by CRLF.");
        }
        st->state = st->state == CK_END_LF ? CK_DONE : CK_TRAILER_START;
        return S2A_OK;
    default: break;
    }
    return chunk_fail(st, 400, "Malformed chunked body.");
}

int
s2a_h1_chunked_parse(s2a_h1_chunked_t *st, const char *in, size_t len,
                     size_t *used, size_t *data_len)
{
    size_t i = 0, n;

    *used = 0;
    *data_len = 0;
    if (st->state == CK_FAILED) {
        return S2A_ERROR;
    }
    while (i < len && st->state != CK_DONE) {
        if (st->state == CK_DATA) {
            n = len - i;
            if ((uint64_t) n > st->left) {
                n = (size_t) st->left;
            }
            st->left -= n;
            if (st->left == 0) {
                st->state = CK_DATA_CR;
            }
            *used = i + n;
            *data_len = n;
            return S2A_AGAIN;
        }
        if (chunk_byte(st, (unsigned char) in[i]) != S2A_OK) {
            *used = i;
            return S2A_ERROR;
        }
        i++;
    }
    *used = i;
    return st->state == CK_DONE ? S2A_OK : S2A_AGAIN;
}
