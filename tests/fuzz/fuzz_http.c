/*
 * fuzz_http.c: libFuzzer target for the strict HTTP/1.1 framing parser
 * (src/worker/h1.c): the request head parser and the chunked body
 * decoder, each checked against the promises h1.h makes.
 *
 * The first input byte steers the run, the rest is the message:
 *   bit 7     set: a request (head, then a chunked body when the head
 *             says so); clear: a chunked body alone
 *   bits 5-6  the body limit: 65536, 0, 7 or UINT64_MAX
 *   bits 0-4  how the body is split into reads: 0 all at once, 1 byte by
 *             byte, 2-15 fixed reads of that many bytes, 16-31 reads of
 *             lengths drawn from the message itself
 * Every body is decoded whole, byte by byte and split as chosen, and the
 * three runs must agree byte for byte.
 */
#include "worker/h1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            abort(); \
        } \
    } while (0)

static const uint64_t limits[4] = { 65536, 0, 7, UINT64_MAX };

/* What one run of the chunked decoder produced. */
typedef struct body_run_s {
    int rc;     /* S2A_OK, S2A_ERROR, or S2A_AGAIN: input ran out */
    size_t end; /* input bytes consumed when it stopped */
    char *data; /* decoded data (caller frees) */
    size_t dlen;
    int status; /* on S2A_ERROR */
    uint64_t total;
} body_run_t;

/* Same as h1.c's tchar: the grammar of a field name. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
        || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Whether an element of the list `v` starts with the word `w`. */
static bool
list_word(const char *v, const char *w)
{
    size_t wlen = strlen(w);
    const char *e;

    for (e = v; e != NULL; e = strchr(e, ',')) {
        e += *e == ',' ? 1 : 0;
        e += strspn(e, " \t");
        if (strncasecmp(e, w, wlen) == 0 && strchr(", \t", e[wlen]) != NULL) {
            return true;
        }
    }
    return false;
}

/* Whether the NUL-terminated `s` lies wholly inside [lo, hi). */
static bool
string_inside(const char *s, const char *lo, const char *hi)
{
    if (s == NULL || s < lo || s >= hi) {
        return false;
    }
    return memchr(s, '\0', (size_t) (hi - s)) != NULL;
}

/*
 * The length of the next read for split pattern `split` (see the top of
 * the file), at most `left`, never 0; *seed walks through `msg`.
 */
static size_t
next_read(unsigned split, const uint8_t *msg, size_t mlen, size_t *seed,
          size_t left)
{
    size_t n;

    if (split == 0) {
        n = left;
    } else if (split < 16) {
        n = split;
    } else {
        n = mlen > 0 ? (size_t) msg[(*seed)++ % mlen] % 37 + 1 : 1;
    }
    return n < left ? n : left;
}

/*
 * Decodes `in` (`len` bytes) with `limit`, handed to the decoder in reads
 * sized by `split`, as a server would: a read is offered again from where
 * the decoder stopped until it is used up.
 */
static void
decode_body(const char *in, size_t len, uint64_t limit, unsigned split,
            body_run_t *r)
{
    s2a_h1_chunked_t st;
    size_t pos = 0, rend, used, dlen, seed = 0;
    int rc = S2A_AGAIN;

    memset(r, 0, sizeof(*r));
    r->data = malloc(len + 1);
    CHECK(r->data != NULL);
    s2a_h1_chunked_init(&st, limit);
    while (pos < len && rc == S2A_AGAIN) {
        rend =
            pos + next_read(split, (const uint8_t *) in, len, &seed, len - pos);
        while (pos < rend) {
            rc = s2a_h1_chunked_parse(&st, in + pos, rend - pos, &used, &dlen);
            CHECK(used <= rend - pos);
            CHECK(dlen <= used);
            if (dlen > 0) {
                memcpy(r->data + r->dlen, in + pos + used - dlen, dlen);
                r->dlen += dlen;
            }
            pos += used;
            CHECK(r->dlen <= limit);
            CHECK(st.total <= limit);
            CHECK(r->dlen <= st.total);
            if (rc != S2A_AGAIN) {
                break;
            }
            /* Progress on every call, or a server loops forever. */
            CHECK(used > 0);
        }
    }
    r->rc = rc;
    r->end = pos;
    r->status = st.status;
    r->total = st.total;
    if (rc == S2A_OK) {
        /* A complete body delivered every byte its chunks announced. */
        CHECK(r->dlen == st.total);
        CHECK(pos >= 5); /* "0\r\n\r\n" at least */
        CHECK(memcmp(in + pos - 2, "\r\n", 2) == 0);
    } else if (rc == S2A_ERROR) {
        CHECK(st.status == 400 || st.status == 413);
        CHECK(st.code != NULL && st.message != NULL);
        CHECK(st.status != 413 || limit < UINT64_MAX);
        /* A failed decoder stays failed. */
        CHECK(s2a_h1_chunked_parse(&st, in, len, &used, &dlen) == S2A_ERROR);
        CHECK(used == 0 && dlen == 0);
    } else {
        CHECK(pos == len);
    }
}

/* Runs the decoder three ways over one body and compares the results. */
static void
check_body(const char *in, size_t len, uint64_t limit, unsigned split)
{
    body_run_t whole, bytes, chosen;
    const body_run_t *o;
    int i;

    decode_body(in, len, limit, 0, &whole);
    decode_body(in, len, limit, 1, &bytes);
    decode_body(in, len, limit, split, &chosen);
    for (i = 0; i < 2; i++) {
        o = i == 0 ? &bytes : &chosen;
        CHECK(o->rc == whole.rc);
        CHECK(o->end == whole.end);
        CHECK(o->dlen == whole.dlen);
        CHECK(memcmp(o->data, whole.data, whole.dlen) == 0);
        CHECK(o->status == whole.status);
        CHECK(o->total == whole.total);
    }
    free(whole.data);
    free(bytes.data);
    free(chosen.data);
}

/* Parses a private copy of the first `len` bytes of `msg`. */
static int
parse_copy(const uint8_t *msg, size_t len, s2a_h1_head_t *h, char **copy)
{
    *copy = malloc(len + 1);
    CHECK(*copy != NULL);
    if (len > 0) {
        memcpy(*copy, msg, len);
    }
    return s2a_h1_parse_head(*copy, len, h);
}

/* The promises of a head parsed into `buf` from the original `msg`. */
static void
check_head_ok(const s2a_h1_head_t *h, const char *buf, const uint8_t *msg,
              size_t len)
{
    const char *lo = buf, *hi = buf + h->head_len, *n, *v, *p;
    size_t i, k, nlen, vlen, lines = 0;
    int j, nte = 0, nhost = 0, ncl = 0;
    bool want_close = false, keep = false;

    CHECK(h->head_len <= len && h->head_len >= 4);
    CHECK(memcmp(msg + h->head_len - 4, "\r\n\r\n", 4) == 0);
    /* Bytes after the head are not looked at, let alone rewritten. */
    CHECK(memcmp(buf + h->head_len, msg + h->head_len, len - h->head_len) == 0);
    CHECK(string_inside(h->method, lo, hi) && h->method[0] != '\0');
    CHECK(string_inside(h->target, lo, hi) && h->target[0] != '\0');
    CHECK(h->method < h->target);
    for (p = h->method; *p != '\0'; p++) {
        CHECK(is_tchar((unsigned char) *p));
    }
    for (p = h->target; *p != '\0'; p++) {
        CHECK((unsigned char) *p > 0x20 && *p != 0x7f);
    }
    CHECK(h->version_minor >= 0 && h->version_minor <= 9);
    CHECK(h->nheaders >= 0 && h->nheaders <= S2A_H1_MAX_HEADERS);
    CHECK(h->status == 0 && h->code == NULL && h->message == NULL);
    /* Each CRLF between the request line and the blank line is a field. */
    for (i = (size_t) (h->method - buf); i + 4 < h->head_len; i++) {
        if (msg[i] == '\r') {
            CHECK(msg[i + 1] == '\n');
            lines++;
        }
    }
    CHECK(lines == (size_t) h->nheaders);
    for (j = 0; j < h->nheaders; j++) {
        n = h->headers[j].name;
        v = h->headers[j].value;
        CHECK(string_inside(n, lo, hi) && string_inside(v, lo, hi));
        CHECK(n > h->target && v > n);
        if (j > 0) {
            CHECK(n > h->headers[j - 1].value);
        }
        nlen = strlen(n);
        vlen = strlen(v);
        CHECK(nlen > 0);
        for (k = 0; k < nlen; k++) {
            CHECK(is_tchar((unsigned char) n[k]));
        }
        /* The name is the original bytes up to the colon. */
        CHECK(msg[n - buf + nlen] == ':');
        CHECK(memcmp(msg + (n - buf), n, nlen) == 0);
        CHECK(memcmp(msg + (v - buf), v, vlen) == 0);
        for (k = 0; k < vlen; k++) {
            CHECK(v[k] != '\r' && v[k] != '\n');
        }
        if (vlen > 0) {
            CHECK(v[0] != ' ' && v[0] != '\t');
            CHECK(v[vlen - 1] != ' ' && v[vlen - 1] != '\t');
        }
        CHECK(s2a_h1_header(h, n) != NULL);
        if (strcasecmp(n, "Transfer-Encoding") == 0) {
            nte++;
            CHECK(strcasecmp(v, "chunked") == 0);
        } else if (strcasecmp(n, "Host") == 0) {
            nhost++;
        } else if (strcasecmp(n, "Connection") == 0) {
            want_close = want_close || list_word(v, "close");
            keep = keep || list_word(v, "keep-alive");
        } else if (strcasecmp(n, "Content-Length") == 0) {
            ncl++;
            CHECK(strtoll(v, NULL, 10) == h->content_length);
            CHECK(strspn(v, "0123456789") == vlen);
        }
    }
    /* Framing: one reading only. */
    CHECK(h->content_length >= -1);
    CHECK((ncl > 0) == (h->content_length >= 0));
    CHECK(!(h->chunked && h->content_length >= 0));
    CHECK(h->chunked == (nte == 1));
    CHECK(nte <= 1 && nhost <= 1);
    CHECK(h->version_minor == 0 || nhost == 1);
    CHECK(!h->chunked || h->version_minor >= 1);
    /* Connection: close wins, HTTP/1.0 persists only when asked to. */
    CHECK(h->keep_alive == (!want_close && (h->version_minor >= 1 || keep)));
}

/*
 * Reads arrive in pieces: the first `cut` bytes are never complete where
 * the whole (`rc`, `h`, parsed into `buf`) is not, never an error where
 * the whole is fine, fail the same way the whole does, and, once they
 * hold the head, parse it exactly as the whole did.
 */
static void
check_prefix(const uint8_t *msg, size_t cut, int rc, const s2a_h1_head_t *h,
             const char *buf)
{
    s2a_h1_head_t h2;
    char *buf2;
    int rc2, j;

    rc2 = parse_copy(msg, cut, &h2, &buf2);
    if (rc == S2A_OK && cut < h->head_len) {
        CHECK(rc2 == S2A_AGAIN);
    } else if (rc == S2A_OK) {
        CHECK(rc2 == S2A_OK);
        CHECK(h2.head_len == h->head_len && h2.nheaders == h->nheaders);
        CHECK(h2.method - buf2 == h->method - buf);
        CHECK(h2.target - buf2 == h->target - buf);
        CHECK(h2.version_minor == h->version_minor);
        CHECK(h2.content_length == h->content_length);
        CHECK(h2.chunked == h->chunked && h2.keep_alive == h->keep_alive);
        for (j = 0; j < h->nheaders; j++) {
            CHECK(h2.headers[j].name - buf2 == h->headers[j].name - buf);
            CHECK(h2.headers[j].value - buf2 == h->headers[j].value - buf);
        }
    } else if (rc == S2A_AGAIN || rc2 != S2A_ERROR) {
        CHECK(rc2 == S2A_AGAIN);
    } else {
        CHECK(h2.status == h->status && strcmp(h2.message, h->message) == 0);
    }
    free(buf2);
}

/* Parses a head, checks it and, when it announces one, its body. */
static void
check_request(const uint8_t *msg, size_t len, unsigned ctl)
{
    s2a_h1_head_t h;
    char *buf;
    int rc;

    rc = parse_copy(msg, len, &h, &buf);
    CHECK(rc == S2A_OK || rc == S2A_AGAIN || rc == S2A_ERROR);
    if (rc == S2A_AGAIN) {
        /* Not complete yet: the buffer is as it came. */
        CHECK(len == 0 || memcmp(buf, msg, len) == 0);
    } else if (rc == S2A_ERROR) {
        CHECK(h.status == 400 || h.status == 431 || h.status == 505);
        CHECK(h.code != NULL && h.message != NULL);
    } else {
        check_head_ok(&h, buf, msg, len);
    }
    if (len > 0) {
        check_prefix(msg, (size_t) msg[len / 2] * 257 % len, rc, &h, buf);
    }
    if (rc == S2A_OK) {
        check_prefix(msg, h.head_len - 1, rc, &h, buf);
        check_prefix(msg, h.head_len, rc, &h, buf);
    }
    if (rc == S2A_OK && h.chunked) {
        check_body((const char *) msg + h.head_len, len - h.head_len,
                   limits[(ctl >> 5) & 3], ctl & 31);
    }
    free(buf);
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned ctl;

    if (size == 0) {
        return 0;
    }
    ctl = data[0];
    data++;
    size--;
    if (ctl & 0x80) {
        check_request(data, size, ctl);
    } else {
        check_body((const char *) data, size, limits[(ctl >> 5) & 3], ctl & 31);
    }
    return 0;
}
