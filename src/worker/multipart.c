/*
 * multipart.c: multipart/form-data bodies (RFC 7578, RFC 2046 §5.1).
 *
 * One pass over the body: the delimiter is CRLF "--" boundary, found with
 * memmem (linear in the body), so a hostile body costs its own bytes. The
 * header block of each part is read line by line up to a fixed size;
 * parameters (name, filename, boundary) may be tokens or quoted strings.
 * Nothing is allocated: parts point into the body.
 */
#include "worker/multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ERR(...) \
    do { \
        snprintf(err, errlen, __VA_ARGS__); \
        return S2A_ERROR; \
    } while (0)

static bool
is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 7230 tchar. */
static bool
is_tchar(char c)
{
    return isalnum((unsigned char) c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * Finds parameter `key` (case-insensitive) among the parameters of the
 * header value [p, end), after its leading type token. Copies its value
 * (unquoted) to `out`. Returns 1 when found, 0 when absent, -1 when the
 * parameters are malformed, the key repeats or the value does not fit.
 */
static int
header_param(const char *p, const char *end, const char *key, char *out,
             size_t outlen)
{
    const char *name, *v;
    size_t nlen, olen;
    int found = 0;

    while (p < end && *p != ';') {
        p++;
    }
    while (p < end) {
        p++; /* the ';' */
        while (p < end && is_ows(*p)) {
            p++;
        }
        if (p == end) {
            break; /* a trailing ';' is tolerated */
        }
        name = p;
        while (p < end && is_tchar(*p)) {
            p++;
        }
        nlen = (size_t) (p - name);
        if (nlen == 0 || p == end || *p != '=') {
            return -1;
        }
        p++;
        olen = 0;
        if (p < end && *p == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end) {
                    p++;
                } else if (*p == '\\') {
                    return -1;
                }
                /* No control byte: a NUL would cut the value short. */
                if (((unsigned char) *p < 0x20 && *p != '\t') || *p == 0x7f) {
                    return -1;
                }
                if (olen + 1 < outlen) {
                    if (!found && strlen(key) == nlen
                        && strncasecmp(name, key, nlen) == 0) {
                        out[olen] = *p;
                    }
                }
                olen++;
            }
            if (p == end) {
                return -1; /* unterminated quoted string */
            }
            p++;
        } else {
            v = p;
            while (p < end && is_tchar(*p)) {
                p++;
            }
            olen = (size_t) (p - v);
            if (olen == 0) {
                return -1;
            }
            if (olen < outlen && strlen(key) == nlen
                && strncasecmp(name, key, nlen) == 0 && !found)
            {
                memcpy(out, v, olen);
            }
        }
        if (strlen(key) == nlen && strncasecmp(name, key, nlen) == 0) {
            if (found || olen >= outlen) {
                return -1;
            }
            out[olen] = '\0';
            found = 1;
        }
        while (p < end && is_ows(*p)) {
            p++;
        }
        if (p < end && *p != ';') {
            return -1;
        }
    }
    return found;
}

/* True when [p, end) trimmed of blanks is `token` (case-insensitive). */
static bool
leading_token_is(const char *p, const char *end, const char *token)
{
    const char *e;
    size_t n = strlen(token);

    while (p < end && is_ows(*p)) {
        p++;
    }
    for (e = p; e < end && *e != ';'; e++) {
    }
    while (e > p && is_ows(e[-1])) {
        e--;
    }
    return (size_t) (e - p) == n && strncasecmp(p, token, n) == 0;
}

/* RFC 2046 bchars; a space may not end the boundary. */
static bool
boundary_ok(const char *b)
{
    size_t i, n = strlen(b);

    if (n == 0 || n > S2A_MULTIPART_BOUNDARY_MAX || b[n - 1] == ' ') {
        return false;
    }
    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char) b[i])
            && strchr("'()+_,-./:=? ", b[i]) == NULL) {
            return false;
        }
    }
    return true;
}

int
s2a_multipart_boundary(const char *content_type, char *out, char *err,
                       size_t errlen)
{
    const char *end;
    int r;

    if (content_type == NULL) {
        return S2A_DECLINED;
    }
    end = content_type + strlen(content_type);
    if (!leading_token_is(content_type, end, "multipart/form-data")) {
        return S2A_DECLINED;
    }
    r = header_param(content_type, end, "boundary", out,
                     S2A_MULTIPART_BOUNDARY_MAX + 1);
    if (r < 0) {
        ERR("the multipart Content-Type has malformed parameters or a "
            "boundary over %d characters",
            S2A_MULTIPART_BOUNDARY_MAX);
    }
    if (r == 0) {
        ERR("the multipart Content-Type has no boundary");
    }
    if (!boundary_ok(out)) {
        ERR("the multipart boundary has characters RFC 2046 does not allow");
    }
    return S2A_OK;
}

/* Copies the header value [p, end), blanks trimmed; false when too long. */
static bool
copy_value(const char *p, const char *end, char *out, size_t outlen)
{
    while (p < end && is_ows(*p)) {
        p++;
    }
    while (end > p && is_ows(end[-1])) {
        end--;
    }
    if ((size_t) (end - p) >= outlen) {
        return false;
    }
    memcpy(out, p, (size_t) (end - p));
    out[end - p] = '\0';
    return true;
}

/*
 * Reads the header block of one part from `p` (at most `avail` bytes),
 * up to and including its empty line. Sets *used to the bytes read.
 */
static int
part_headers(const char *p, size_t avail, s2a_mpart_t *part, size_t *used,
             char *err, size_t errlen)
{
    const char *start = p, *line, *eol, *colon, *limit, *c;
    bool disposition = false;
    int r;

    limit = p
        + (avail < S2A_MULTIPART_HEADERS_MAX + 2
               ? avail
               : S2A_MULTIPART_HEADERS_MAX + 2);
    for (;;) {
        line = p;
        eol = memchr(line, '\r', (size_t) (limit - line));
        if (eol == NULL || eol + 1 >= limit) {
            if ((size_t) (limit - start) > S2A_MULTIPART_HEADERS_MAX) {
                ERR("a multipart part has headers over %d bytes",
                    S2A_MULTIPART_HEADERS_MAX);
            }
            ERR("a multipart part's headers do not end");
        }
        if (eol[1] != '\n' || memchr(line, '\n', (size_t) (eol - line)) != NULL)
        {
            ERR("a multipart header line does not end in CRLF");
        }
        p = eol + 2;
        if (eol == line) {
            break; /* the empty line */
        }
        if (is_ows(*line)) {
            ERR("a multipart header is folded");
        }
        colon = memchr(line, ':', (size_t) (eol - line));
        if (colon == NULL || colon == line) {
            ERR("a multipart header line has no name");
        }
        for (c = line; c < colon; c++) {
            if (!is_tchar(*c)) {
                ERR("a multipart header name is malformed");
            }
        }
        if ((size_t) (colon - line) == 19
            && strncasecmp(line, "Content-Disposition", 19) == 0)
        {
            if (disposition) {
                ERR("a multipart part has two Content-Disposition headers");
            }
            disposition = true;
            if (!leading_token_is(colon + 1, eol, "form-data")) {
                ERR("a multipart part is not form-data");
            }
            r = header_param(colon + 1, eol, "name", part->name,
                             sizeof(part->name));
            if (r == 1 && part->name[0] == '\0') {
                ERR("a multipart part has an empty field name");
            }
            if (r <= 0) {
                ERR("a multipart part has %s field name",
                    r == 0 ? "no" : "a malformed or too long");
            }
            r = header_param(colon + 1, eol, "filename", part->filename,
                             sizeof(part->filename));
            if (r < 0) {
                ERR("a multipart part has a malformed or too long filename");
            }
            part->has_filename = r == 1;
        } else if ((size_t) (colon - line) == 12
                   && strncasecmp(line, "Content-Type", 12) == 0)
        {
            if (!copy_value(colon + 1, eol, part->content_type,
                            sizeof(part->content_type))) {
                ERR("a multipart part has a Content-Type over %zu bytes",
                    sizeof(part->content_type) - 1);
            }
        }
        /* Other headers (Content-Transfer-Encoding...) are ignored. */
    }
    if (!disposition) {
        ERR("a multipart part has no Content-Disposition");
    }
    *used = (size_t) (p - start);
    return S2A_OK;
}

int
s2a_multipart_parse(const unsigned char *body, size_t len, const char *boundary,
                    s2a_mpart_t *parts, size_t max, size_t *nparts, char *err,
                    size_t errlen)
{
    char delim[S2A_MULTIPART_BOUNDARY_MAX + 5];
    const char *b = (const char *) body, *hit;
    size_t dlen, pos, used;
    s2a_mpart_t *part;

    *nparts = 0;
    if (!boundary_ok(boundary)) {
        ERR("the multipart boundary is malformed");
    }
    /* CRLF "--" boundary; the first delimiter may open the body bare. */
    dlen = (size_t) snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    if (len >= dlen - 2 && memcmp(b, delim + 2, dlen - 2) == 0) {
        pos = dlen - 2;
    } else {
        hit = memmem(b, len, delim, dlen);
        if (hit == NULL) {
            ERR("the multipart body has no opening boundary");
        }
        pos = (size_t) (hit - b) + dlen;
    }
    for (;;) {
        /* `pos` is just past a delimiter. */
        if (len - pos >= 2 && b[pos] == '-' && b[pos + 1] == '-') {
            return S2A_OK; /* the close delimiter; the epilogue is ignored */
        }
        while (pos < len && is_ows(b[pos])) {
            pos++; /* transport padding */
        }
        if (len - pos < 2 || b[pos] != '\r' || b[pos + 1] != '\n') {
            ERR("a multipart boundary line does not end in CRLF");
        }
        pos += 2;
        if (*nparts == max) {
            ERR("the multipart body has more than %zu parts", max);
        }
        part = &parts[*nparts];
        memset(part, 0, sizeof(*part));
        if (part_headers(b + pos, len - pos, part, &used, err, errlen)
            != S2A_OK) {
            return S2A_ERROR;
        }
        pos += used;
        hit = memmem(b + pos, len - pos, delim, dlen);
        if (hit == NULL) {
            ERR("the multipart body has no closing boundary");
        }
        part->data = body + pos;
        part->len = (size_t) (hit - (b + pos));
        (*nparts)++;
        pos = (size_t) (hit - b) + dlen;
    }
}
