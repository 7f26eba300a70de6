/*
 * upstream.c: libcurl multi interface on libevent (the multi-socket API):
 * curl tells us which sockets to watch and when to wake it; libevent
 * tells curl when they are ready. Completed transfers are collected after
 * curl returns, never from inside its callbacks.
 *
 * Owns: the CURLM handle, one call_t (easy handle, header list, buffers)
 * per request, one socket_t (event) per socket curl watches.
 *
 * Every call is bounded three ways: curl's connect timeout (TCP and TLS,
 * [upstream] connect_timeout), curl's total timeout (the caller's, or
 * [upstream] timeout) and our own stall timer: once connected, a call
 * during which no byte moves for [upstream] read_timeout is abandoned.
 * That last one is what ends a black-holed peer (the connection stands,
 * nothing ever comes back) long before the total timeout, and it suits
 * large downloads, which may take long as long as bytes keep coming.
 *
 * A streamed call (`on_data`: content relayed to a client, proxy.c)
 * keeps no body: its head and bytes go to the owner as they arrive, and
 * an owner that cannot take more answers S2A_AGAIN, which pauses the
 * transfer (CURL_WRITEFUNC_PAUSE) until s2a_upstream_resume(). A paused
 * call waits for its reader: the stall timer does not count it idle.
 *
 * URLs clients supply (`public_only`) are checked before any packet goes
 * out: the opensocket callback refuses a loopback, private or link-local
 * address for every connection curl opens, redirects included, and such
 * calls never share a pooled connection.
 *
 * At log level debug (the debug_enabled setting) every call is written to
 * the error log here, and only here: method, URL, headers, status, time
 * taken and both bodies up to DEBUG_BODY_MAX bytes, with every secret
 * masked (Authorization and Cookie headers, JSON fields and form or query
 * parameters whose names look secret, anything shaped like a JWT). One
 * integer comparison is all it costs otherwise.
 */
#include "worker/upstream.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/metrics.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>

#define DEFAULT_MAX_RESPONSE (8u * 1024 * 1024)
#define DEBUG_BODY_MAX       2048 /* bytes of a body the debug log shows */
#define DEBUG_LINE_MAX       1400 /* bytes of a body per log line */
#define DEFAULT_CONNECT_MS   10000L
#define DEFAULT_READ_MS      30000L

typedef struct call_s {
    uint64_t id;
    CURL *easy;
    struct curl_slist *headers;
    struct evbuffer *body;
    size_t max_response;
    bool truncated;
    char *req_body;
    curl_mime *mime;
    bool to_file;
    int out_fd;
    int64_t written;
    bool write_failed;
    bool private_refused;
    bool connected;      /* the connection stands (prereq ran) */
    bool stalled;        /* abandoned by the stall timer */
    struct event *stall; /* the stall timer */
    long read_ms;        /* [upstream] read_timeout when it started */
    int64_t active_ms;   /* when a byte last moved (or it connected) */
    curl_off_t moved;    /* bytes up plus down so far */
    bool public_only;    /* a client-supplied URL */
    bool debug;          /* log this call at debug level */
    int64_t start_ms;    /* when it started (debug) */
    int64_t start_us;    /* when it started, monotonic (metrics) */
    char *what;          /* "METHOD url" with secrets masked (debug) */
    char errbuf[CURL_ERROR_SIZE];
    s2a_upstream_done_pt done;
    void *arg;
    /* A streamed answer (on_data set): on_head ran, and refused the
     * body; on_data said S2A_AGAIN. */
    s2a_upstream_head_pt on_head;
    s2a_upstream_data_pt on_data;
    bool head_done, head_refused, paused;
    struct call_s *prev, *next;
} call_t;

typedef struct socket_s {
    curl_socket_t fd;
    struct event *ev;
} socket_t;

static struct {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    call_t *calls;
    uint64_t next_id;
    long default_timeout_ms;
    int inflight;
    bool collecting;
} U;

static void collect_done(void);

static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
    int running, action = 0;

    S2A_UNUSED(arg);
    if (what & EV_READ) {
        action |= CURL_CSELECT_IN;
    }
    if (what & EV_WRITE) {
        action |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(U.multi, fd, action, &running);
    collect_done();
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
    int running;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    curl_multi_socket_action(U.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done();
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms our timer. */
static int
multi_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct timeval tv;

    S2A_UNUSED(multi);
    S2A_UNUSED(arg);
    if (timeout_ms < 0) {
        evtimer_del(U.timer);
        return 0;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(U.timer, &tv);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in an event. */
static int
multi_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    socket_t *s = sockp;
    short kind;

    S2A_UNUSED(easy);
    S2A_UNUSED(arg);
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            free(s);
            curl_multi_assign(U.multi, fd, NULL);
        }
        return 0;
    }
    kind = (short) (EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0)
                    | ((what & CURL_POLL_OUT) ? EV_WRITE : 0));
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return -1;
        }
        s->fd = fd;
        curl_multi_assign(U.multi, fd, s);
    } else {
        event_free(s->ev);
    }
    s->ev = event_new(U.base, fd, kind, event_cb, NULL);
    if (s->ev == NULL) {
        return -1;
    }
    event_add(s->ev, NULL);
    return 0;
}

/* A header of the last answer of `c` (after redirects), or NULL. */
static const char *
header_value(call_t *c, const char *name)
{
    struct curl_header *h = NULL;

    if (curl_easy_header(c->easy, name, 0, CURLH_HEADER, -1, &h) != CURLHE_OK
        || h == NULL)
    {
        return NULL;
    }
    return h->value;
}

/* Hands the head of a streamed answer to its owner; false when the
 * owner does not want the body. */
static bool
stream_head(call_t *c)
{
    s2a_upstream_head_t h;
    curl_off_t len = -1;
    char *ctype = NULL;

    c->head_done = true;
    memset(&h, 0, sizeof(h));
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &h.status);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
    h.content_length = len >= 0 ? (int64_t) len : -1;
    h.content_type = ctype;
    h.content_range = header_value(c, "Content-Range");
    h.accept_ranges = header_value(c, "Accept-Ranges");
    h.content_encoding = header_value(c, "Content-Encoding");
    h.etag = header_value(c, "ETag");
    h.last_modified = header_value(c, "Last-Modified");
    if (c->on_head(&h, c->arg) != S2A_OK) {
        c->head_refused = true;
        return false;
    }
    return true;
}

/* Body bytes of a streamed answer: to the owner, or a pause. */
static size_t
stream_write(call_t *c, char *data, size_t n)
{
    int r;

    if (!c->head_done && !stream_head(c)) {
        return 0; /* aborts the transfer */
    }
    if (c->head_refused) {
        return 0;
    }
    r = c->on_data(data, n, c->arg);
    if (r == S2A_AGAIN) {
        /* libcurl keeps these bytes and hands them over again once the
         * call is resumed; it reads nothing from the socket meanwhile. */
        c->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    return r == S2A_OK ? n : 0;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    call_t *c = arg;
    size_t n = size * nmemb;
    long status = 0;
    ssize_t w;
    size_t off;

    if (c->on_data != NULL) {
        return stream_write(c, data, n);
    }
    if (c->to_file) {
        /* Only a success goes to the file; an error page stays in memory
         * for the message. */
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    if (c->to_file && status >= 200 && status <= 299) {
        if ((size_t) c->written + n > c->max_response) {
            c->truncated = true;
            return 0;
        }
        /* A regular file: the write lands in the page cache. */
        for (off = 0; off < n; off += (size_t) w) {
            w = write(c->out_fd, data + off, n - off);
            if (w < 0 && errno == EINTR) {
                w = 0;
                continue;
            }
            if (w <= 0) {
                c->write_failed = true;
                return 0;
            }
        }
        c->written += (int64_t) n;
        return n;
    }
    if (evbuffer_get_length(c->body) + n > c->max_response) {
        c->truncated = true;
        return 0; /* aborts the transfer */
    }
    evbuffer_add(c->body, data, n);
    return n;
}

bool
s2a_upstream_ip_private(const char *ip)
{
    unsigned char a[16];
    const unsigned char *v4 = NULL;
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0,    0,
                                              0, 0, 0, 0, 0xff, 0xff };

    if (inet_pton(AF_INET, ip, a) == 1) {
        v4 = a;
    } else if (inet_pton(AF_INET6, ip, a) == 1) {
        if (memcmp(a, mapped, 12) == 0) {
            v4 = a + 12;
        } else {
            static const unsigned char zero[16] = { 0 };
            return memcmp(a, zero, 15) == 0                /* :: and ::1 */
                || (a[0] & 0xfe) == 0xfc                   /* fc00::/7 */
                || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) /* fe80::/10 */
                || a[0] == 0xff;                           /* multicast */
        }
    } else {
        return true; /* not an address: refuse */
    }
    return v4[0] == 0 || v4[0] == 10 || v4[0] == 127
        || (v4[0] == 100 && (v4[1] & 0xc0) == 64) /* 100.64/10 */
        || (v4[0] == 169 && v4[1] == 254)         /* link-local */
        || (v4[0] == 172 && (v4[1] & 0xf0) == 16) /* 172.16/12 */
        || (v4[0] == 192 && v4[1] == 168) || v4[0] >= 224;
}

/* Whether a client-supplied URL may reach the numeric address `ip`. In
 * a test build, the blank-separated addresses of SORA2API_TEST_PUBLIC_ADDRS
 * count as public, so that the suite can play a public host on loopback. */
static bool
ip_refused(const char *ip)
{
#ifdef S2A_TEST_HOOKS
    const char *list = getenv("SORA2API_TEST_PUBLIC_ADDRS"), *p;
    size_t n = strlen(ip);

    for (p = list; p != NULL && n > 0 && (p = strstr(p, ip)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ')) {
            return false;
        }
    }
#endif
    return s2a_upstream_ip_private(ip);
}

/*
 * CURLOPT_OPENSOCKETFUNCTION of calls to client-supplied URLs: runs for
 * every address curl is about to connect to, redirects included, before
 * the socket exists. A refused address gets no socket, so not even a SYN
 * reaches it.
 */
static curl_socket_t
opensocket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    call_t *c = arg;
    char ip[INET6_ADDRSTRLEN];
    const void *a = NULL;

    if (purpose == CURLSOCKTYPE_IPCXN && addr->family == AF_INET) {
        a = &((const struct sockaddr_in *) (void *) &addr->addr)->sin_addr;
    } else if (purpose == CURLSOCKTYPE_IPCXN && addr->family == AF_INET6) {
        a = &((const struct sockaddr_in6 *) (void *) &addr->addr)->sin6_addr;
    }
    if (a == NULL || inet_ntop(addr->family, a, ip, sizeof(ip)) == NULL
        || ip_refused(ip))
    {
        c->private_refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

/* Runs once the connection stands (new or reused), for every request a
 * call makes (redirects too), before anything is sent: the stall clock
 * starts here, and a client-supplied URL is checked once more. */
static int
prereq_cb(void *arg, char *primary_ip, char *local_ip, int primary_port,
          int local_port)
{
    call_t *c = arg;

    S2A_UNUSED(local_ip);
    S2A_UNUSED(primary_port);
    S2A_UNUSED(local_port);
    c->connected = true;
    c->active_ms = s2a_mono_ms();
    if (c->public_only && ip_refused(primary_ip)) {
        c->private_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* CURLOPT_XFERINFOFUNCTION: notes when a byte last moved either way. */
static int
xferinfo_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
            curl_off_t ulnow)
{
    call_t *c = arg;

    S2A_UNUSED(dltotal);
    S2A_UNUSED(ultotal);
    if (dlnow + ulnow != c->moved) {
        c->moved = dlnow + ulnow;
        c->active_ms = s2a_mono_ms();
    }
    return 0;
}

/* CURLOPT_HEADERFUNCTION: a header line is a byte of the answer too. */
static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    call_t *c = arg;

    S2A_UNUSED(data);
    c->active_ms = s2a_mono_ms();
    return size * nmemb;
}

static void
call_unlink(call_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        U.calls = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    U.inflight--;
}

static void
call_free(call_t *c)
{
    if (c->stall != NULL) {
        event_free(c->stall);
    }
    curl_multi_remove_handle(U.multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    curl_mime_free(c->mime);
    evbuffer_free(c->body);
    free(c->req_body);
    free(c->what);
    free(c);
}

/* ---------------------------------------------------------------------
 * Debug log of upstream calls
 */

/* Whether a field, parameter or header name looks like it holds a
 * secret: tokens, passwords, cookies, keys, sessions, credentials, URL
 * signatures. */
static bool
secret_name(const char *name, size_t len)
{
    static const char *const words[] = {
        "token",   "secret",   "password", "passwd", "authorization",
        "cookie",  "session",  "api_key",  "apikey", "credential",
        "private", "sentinel", "auth",     NULL,
    };
    char low[64];
    size_t i;

    if (len == 0 || len >= sizeof(low)) {
        return len >= sizeof(low); /* an odd name: play safe */
    }
    for (i = 0; i < len; i++) {
        low[i] = (char) tolower((unsigned char) name[i]);
    }
    low[len] = '\0';
    /* URL signatures: Azure's sig, S3's X-Amz-Signature, CloudFront's. */
    if (strcmp(low, "sig") == 0 || strstr(low, "signature") != NULL) {
        return true;
    }
    for (i = 0; words[i] != NULL; i++) {
        if (strstr(low, words[i]) != NULL) {
            return true;
        }
    }
    return false;
}

/* Appends `s` (`len` bytes) masked to its first and last 4 characters. */
static void
add_masked(struct evbuffer *out, const char *s, size_t len)
{
    char tmp[9];

    if (len <= 12) {
        evbuffer_add(out, "[redacted]", 10);
        return;
    }
    memcpy(tmp, s, 4);
    memcpy(tmp + 4, s + len - 4, 4);
    evbuffer_add_printf(out, "%.4s...%.4s", tmp, tmp + 4);
}

/* Appends one byte so that the log line stays one line. */
static void
add_byte(struct evbuffer *out, unsigned char ch)
{
    if (ch == '\n') {
        evbuffer_add(out, "\\n", 2);
    } else if (ch == '\r') {
        evbuffer_add(out, "\\r", 2);
    } else if (ch == '\t') {
        evbuffer_add(out, "\\t", 2);
    } else if (ch < 0x20 || ch == 0x7f) {
        evbuffer_add_printf(out, "\\x%02x", ch);
    } else {
        evbuffer_add(out, &ch, 1);
    }
}

static bool
is_word(unsigned char ch)
{
    return isalnum(ch) || ch == '_' || ch == '-' || ch == '.';
}

/*
 * Appends `in` with name=value pairs whose name looks secret (forms,
 * query strings, cookies) and anything shaped like a JWT masked.
 */
static void
add_plain(struct evbuffer *out, const char *in, size_t n)
{
    size_t i = 0, j, k;

    while (i < n) {
        unsigned char ch = (unsigned char) in[i];

        if (!is_word(ch) || (i > 0 && is_word((unsigned char) in[i - 1]))) {
            add_byte(out, ch);
            i++;
            continue;
        }
        for (j = i; j < n && is_word((unsigned char) in[j]); j++) {
        }
        if (j - i >= 3 && memcmp(in + i, "eyJ", 3) == 0
            && (j - i >= 24 || j == n)) {
            add_masked(out, in + i, j - i);
            i = j;
            continue;
        }
        if (j < n && in[j] == '=' && secret_name(in + i, j - i)) {
            for (k = j + 1; k < n && strchr("&; \",}", in[k]) == NULL; k++) {
            }
            evbuffer_add(out, in + i, j + 1 - i);
            add_masked(out, in + j + 1, k - j - 1);
            i = k;
            continue;
        }
        for (; i < j; i++) {
            add_byte(out, (unsigned char) in[i]);
        }
    }
}

/* The index of the '"' closing the JSON string opened at `in[i]`, or `n`
 * when it is cut off. */
static size_t
string_end(const char *in, size_t n, size_t i)
{
    for (i++; i < n && in[i] != '"'; i++) {
        if (in[i] == '\\') {
            i++;
        }
    }
    return i < n ? i : n;
}

/*
 * Appends `in` with its secrets masked: the string value of a JSON field
 * whose name looks secret, and everything add_plain() masks, inside
 * strings or not. A value cut off at the end of `in` is masked whole.
 */
static void
add_redacted(struct evbuffer *out, const char *in, size_t n)
{
    size_t i = 0, start = 0, j, k;

    while (i < n) {
        if (in[i] != '"') {
            i++;
            continue;
        }
        add_plain(out, in + start, i - start);
        j = string_end(in, n, i);
        for (k = j + 1; k < n && (in[k] == ' ' || in[k] == '\t'); k++) {
        }
        if (j < n && k < n && in[k] == ':'
            && secret_name(in + i + 1, j - i - 1)) {
            add_plain(out, in + i, k + 1 - i);
            for (k++; k < n && (in[k] == ' ' || in[k] == '\t'); k++) {
            }
            i = k;
            if (k < n && in[k] == '"') {
                j = string_end(in, n, k);
                evbuffer_add(out, "\"", 1);
                add_masked(out, in + k + 1, (j < n ? j : n) - k - 1);
                evbuffer_add(out, "\"", 1);
                i = j < n ? j + 1 : n;
            }
        } else {
            add_plain(out, in + i, (j < n ? j + 1 : n) - i);
            i = j < n ? j + 1 : n;
        }
        start = i;
    }
    add_plain(out, in + start, n - start);
}

/* A NUL-terminated copy of `out`'s contents; `out` is emptied. */
static char *
drain_string(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    char *s = malloc(len + 1);

    if (s != NULL) {
        evbuffer_remove(out, s, len);
        s[len] = '\0';
    }
    evbuffer_drain(out, evbuffer_get_length(out));
    return s;
}

/* Logs a body (at most DEBUG_BODY_MAX bytes of it, masked) on as many
 * lines as it needs; `label` says whose. */
static void
debug_body(uint64_t id, const char *label, const char *body, size_t len)
{
    struct evbuffer *out = evbuffer_new();
    char *text;
    size_t tlen, off, part, parts;

    if (out == NULL) {
        return;
    }
    add_redacted(out, body, len < DEBUG_BODY_MAX ? len : DEBUG_BODY_MAX);
    if (len > DEBUG_BODY_MAX) {
        evbuffer_add_printf(out, "\xe2\x80\xa6 (%zu bytes)", len);
    }
    text = drain_string(out);
    evbuffer_free(out);
    if (text == NULL) {
        return;
    }
    tlen = strlen(text);
    parts = (tlen + DEBUG_LINE_MAX - 1) / DEBUG_LINE_MAX;
    for (off = 0, part = 1; off < tlen; off += DEBUG_LINE_MAX, part++) {
        s2a_log(
            LOG_DEBUG, 0, "upstream #%llu %s body [%zu/%zu]: %.*s",
            (unsigned long long) id, label, part, parts,
            (int) (tlen - off < DEBUG_LINE_MAX ? tlen - off : DEBUG_LINE_MAX),
            text + off);
    }
    free(text);
}

/* The request of call `c`, before it is sent. */
static void
debug_request(call_t *c, const s2a_upstream_req_t *req)
{
    struct evbuffer *out = evbuffer_new();
    char *headers;
    const char *colon;
    int i;

    if (out == NULL) {
        return;
    }
    evbuffer_add_printf(out, "%s ", req->method);
    add_redacted(out, req->url, strlen(req->url));
    c->what = drain_string(out);
    if (req->bearer != NULL) {
        evbuffer_add(out, "Authorization: Bearer ", 22);
        add_masked(out, req->bearer, strlen(req->bearer));
    }
    if (req->content_type != NULL) {
        evbuffer_add_printf(out, "%sContent-Type: %s",
                            evbuffer_get_length(out) > 0 ? "; " : "",
                            req->content_type);
    }
    for (i = 0; i < S2A_UPSTREAM_MAX_HEADERS && req->headers[i] != NULL; i++) {
        colon = strchr(req->headers[i], ':');
        if (evbuffer_get_length(out) > 0) {
            evbuffer_add(out, "; ", 2);
        }
        if (colon != NULL
            && secret_name(req->headers[i], (size_t) (colon - req->headers[i])))
        {
            evbuffer_add(out, req->headers[i],
                         (size_t) (colon - req->headers[i]) + 1);
            evbuffer_add(out, " [redacted]", 11);
        } else {
            add_redacted(out, req->headers[i], strlen(req->headers[i]));
        }
    }
    headers = drain_string(out);
    evbuffer_free(out);
    s2a_log(LOG_DEBUG, 0, "upstream #%llu > %s (%s)",
            (unsigned long long) c->id, c->what != NULL ? c->what : "?",
            headers != NULL ? headers : "");
    free(headers);
    if (req->nparts > 0) {
        for (i = 0; i < req->nparts; i++) {
            s2a_log(LOG_DEBUG, 0,
                    "upstream #%llu request part %d: name=%s%s%s type=%s, "
                    "%zu bytes",
                    (unsigned long long) c->id, i + 1, req->parts[i].name,
                    req->parts[i].filename != NULL ? " filename=" : "",
                    req->parts[i].filename != NULL ? req->parts[i].filename
                                                   : "",
                    req->parts[i].type != NULL ? req->parts[i].type : "-",
                    req->parts[i].len);
        }
    } else if (req->body != NULL) {
        debug_body(c->id, "request", req->body, req->body_len);
    }
}

/* The answer of call `c` (or its transport error). */
static void
debug_response(const call_t *c, const s2a_upstream_resp_t *resp)
{
    s2a_log(LOG_DEBUG, 0, "upstream #%llu < %ld %s in %lld ms%s%s",
            (unsigned long long) c->id, resp->status,
            c->what != NULL ? c->what : "?",
            (long long) (s2a_mono_ms() - c->start_ms),
            resp->curl_code != 0 ? ": " : "",
            resp->curl_code != 0 ? resp->error : "");
    if (c->to_file && resp->written > 0) {
        s2a_log(LOG_DEBUG, 0, "upstream #%llu response: %lld bytes to a file",
                (unsigned long long) c->id, (long long) resp->written);
    }
    if (resp->body_len > 0) {
        debug_body(c->id, "response", resp->body, resp->body_len);
    }
}

/* Hands call `c`, ended with `result`, to its callback and frees it. */
static void
call_finish(call_t *c, CURLcode result)
{
    s2a_upstream_resp_t resp;
    char *ctype = NULL, *url = NULL;
    char stalled[96];

    if (c->on_data != NULL && !c->head_done && result == CURLE_OK) {
        /* An empty body (or a HEAD): the head still goes first. */
        stream_head(c);
    }
    memset(&resp, 0, sizeof(resp));
    resp.curl_code = (int) result;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
    resp.content_type = ctype;
    resp.truncated = c->truncated;
    resp.written = c->written;
    if (resp.curl_code != CURLE_OK) {
        resp.error =
            c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(result);
        if (c->truncated) {
            resp.error = "response too large";
        } else if (c->write_failed) {
            resp.error = "writing the file failed";
        } else if (c->private_refused) {
            resp.error = "the URL points at a private address";
        } else if (c->stalled) {
            snprintf(stalled, sizeof(stalled),
                     "no data from the upstream for %ld seconds",
                     c->read_ms / 1000);
            resp.error = stalled;
        }
    } else {
        resp.error = "";
    }
    evbuffer_add(c->body, "", 1);
    resp.body_len = evbuffer_get_length(c->body) - 1;
    resp.body = (char *) evbuffer_pullup(c->body, -1);
    curl_easy_getinfo(c->easy, CURLINFO_EFFECTIVE_URL, &url);
    s2a_metrics_upstream(url, resp.status, s2a_mono_us() - c->start_us);
    call_unlink(c);
    if (c->debug) {
        debug_response(c, &resp);
    }
    c->done(&resp, c->arg);
    call_free(c);
}

static void
collect_done(void)
{
    CURLMsg *msg;
    int left;
    call_t *c;

    /* A callback may start a call, which may complete at once: no nested
     * collection. */
    if (U.collecting) {
        return;
    }
    U.collecting = true;
    while ((msg = curl_multi_info_read(U.multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        c = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
        if (c == NULL) {
            continue;
        }
        call_finish(c, msg->data.result);
    }
    U.collecting = false;
}

/*
 * The stall timer of one call. Until the connection stands, curl's
 * connect timeout rules; after that, read_ms without a byte moving either
 * way ends the call as a timeout. It runs from the event loop, never
 * inside curl, so the easy handle may be removed here.
 */
static void
stall_cb(evutil_socket_t fd, short what, void *arg)
{
    call_t *c = arg;
    int64_t idle = s2a_mono_ms() - c->active_ms;
    long wait = c->read_ms;
    struct timeval tv;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (c->paused) {
        /* Held back by its reader, not stalled by the upstream. */
        c->active_ms = s2a_mono_ms();
        idle = 0;
    }
    if (c->connected && idle >= c->read_ms) {
        c->stalled = true;
        call_finish(c, CURLE_OPERATION_TIMEDOUT);
        return;
    }
    if (c->connected) {
        wait = (long) (c->read_ms - idle);
    }
    tv.tv_sec = wait / 1000;
    tv.tv_usec = (wait % 1000) * 1000;
    evtimer_add(c->stall, &tv);
}

int
s2a_upstream_init(struct event_base *base, long default_timeout_ms)
{
    memset(&U, 0, sizeof(U));
    U.base = base;
    U.default_timeout_ms = default_timeout_ms;
    U.next_id = 1;
    U.multi = curl_multi_init();
    U.timer = evtimer_new(base, timer_cb, NULL);
    if (U.multi == NULL || U.timer == NULL) {
        s2a_log(LOG_ERR, 0, "curl_multi_init() failed");
        return S2A_ERROR;
    }
    curl_multi_setopt(U.multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
    curl_multi_setopt(U.multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    /* Reuse connections to the same host across calls and tasks. */
    curl_multi_setopt(U.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    curl_multi_setopt(U.multi, CURLMOPT_MAXCONNECTS, 256L);
#ifdef CURLPIPE_MULTIPLEX
    curl_multi_setopt(U.multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
#endif
    return S2A_OK;
}

void
s2a_upstream_cleanup(void)
{
    call_t *c;

    while ((c = U.calls) != NULL) {
        call_unlink(c);
        call_free(c);
    }
    if (U.multi != NULL) {
        curl_multi_cleanup(U.multi);
        U.multi = NULL;
    }
    if (U.timer != NULL) {
        event_free(U.timer);
        U.timer = NULL;
    }
}

static char *
dup_body(const char *body, size_t len)
{
    char *p = malloc(len + 1);

    if (p != NULL) {
        memcpy(p, body, len);
        p[len] = '\0';
    }
    return p;
}

uint64_t
s2a_upstream_start(const s2a_upstream_req_t *req, s2a_upstream_done_pt done,
                   void *arg)
{
    const s2a_conf_t *conf = s2a_worker.conf;
    long connect_ms = conf != NULL ? conf->upstream_connect_timeout * 1000L
                                   : DEFAULT_CONNECT_MS;
    long read_ms =
        conf != NULL ? conf->upstream_read_timeout * 1000L : DEFAULT_READ_MS;
    struct timeval tv;
    char line[8192];
    call_t *c;
    int i;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return 0;
    }
    c->easy = curl_easy_init();
    c->body = evbuffer_new();
    if (c->easy == NULL || c->body == NULL) {
        goto failed;
    }
    c->max_response =
        req->max_response != 0 ? req->max_response : DEFAULT_MAX_RESPONSE;
    c->done = done;
    c->arg = arg;
    curl_easy_setopt(c->easy, CURLOPT_URL, req->url);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms
                                         : U.default_timeout_ms);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    c->read_ms = read_ms;
    c->active_ms = s2a_mono_ms();
    curl_easy_setopt(c->easy, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(c->easy, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c->easy, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
    curl_easy_setopt(c->easy, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    c->on_head = req->on_head;
    c->on_data = req->on_data;
    if (c->on_data == NULL) {
        /* Every encoding libcurl was built with (gzip, br, zstd). A
         * streamed answer is relayed as it comes: identity only. */
        curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
    }
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);
#ifdef CURL_HTTP_VERSION_2TLS
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
#endif
    if (req->proxy != NULL && req->proxy[0] != '\0') {
        curl_easy_setopt(c->easy, CURLOPT_PROXY, req->proxy);
    }
    if (req->bearer != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", req->bearer);
        c->headers = curl_slist_append(c->headers, line);
    }
    if (req->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
        c->headers = curl_slist_append(c->headers, line);
    }
    for (i = 0; i < S2A_UPSTREAM_MAX_HEADERS && req->headers[i] != NULL; i++) {
        c->headers = curl_slist_append(c->headers, req->headers[i]);
    }
    /* No "Expect: 100-continue" round trip for JSON bodies. */
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    c->to_file = req->to_file;
    c->out_fd = req->out_fd;
    if (req->public_only && (req->proxy == NULL || req->proxy[0] == '\0')) {
        c->public_only = true;
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETFUNCTION, opensocket_cb);
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETDATA, c);
        /* A pooled connection (to the Sora fake on loopback, say) was
         * never checked: a client's URL always gets its own. */
        curl_easy_setopt(c->easy, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(c->easy, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->follow_redirects) {
        curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c->easy, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(c->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    }
    if (req->nparts > 0) {
        curl_mimepart *part;
        c->mime = curl_mime_init(c->easy);
        if (c->mime == NULL) {
            goto failed;
        }
        for (i = 0; i < req->nparts; i++) {
            const s2a_upstream_part_t *p = &req->parts[i];
            part = curl_mime_addpart(c->mime);
            if (part == NULL || curl_mime_name(part, p->name) != CURLE_OK
                || curl_mime_data(part, p->data, p->len) != CURLE_OK
                || (p->filename != NULL
                    && curl_mime_filename(part, p->filename) != CURLE_OK)
                || (p->type != NULL
                    && curl_mime_type(part, p->type) != CURLE_OK))
            {
                goto failed;
            }
        }
        curl_easy_setopt(c->easy, CURLOPT_MIMEPOST, c->mime);
    } else if (req->body != NULL) {
        c->req_body = dup_body(req->body, req->body_len);
        if (c->req_body == NULL) {
            goto failed;
        }
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req_body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) req->body_len);
    }
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c->easy, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "POST") == 0) {
        if (req->body == NULL && c->mime == NULL) {
            curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, "");
        }
    } else {
        curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    c->stall = evtimer_new(U.base, stall_cb, c);
    if (c->stall == NULL) {
        goto failed;
    }
    c->id = U.next_id++;
    c->start_us = s2a_mono_us();
    /* The one check every call pays when debug logging is off. */
    if (s2a_log_get_level() >= LOG_DEBUG) {
        c->debug = true;
        c->start_ms = s2a_mono_ms();
        debug_request(c, req);
    }
    if (curl_multi_add_handle(U.multi, c->easy) != CURLM_OK) {
        goto failed;
    }
    c->next = U.calls;
    if (c->next != NULL) {
        c->next->prev = c;
    }
    U.calls = c;
    U.inflight++;
    /* The first look comes when the connect timeout has run out. */
    tv.tv_sec = connect_ms / 1000;
    tv.tv_usec = (connect_ms % 1000) * 1000;
    evtimer_add(c->stall, &tv);
    return c->id;

failed:
    if (c->stall != NULL) {
        event_free(c->stall);
    }
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    if (c->body != NULL) {
        evbuffer_free(c->body);
    }
    curl_slist_free_all(c->headers);
    curl_mime_free(c->mime);
    free(c->req_body);
    free(c->what);
    free(c);
    return 0;
}

void
s2a_upstream_cancel(uint64_t id)
{
    call_t *c;

    for (c = U.calls; c != NULL; c = c->next) {
        if (c->id == id) {
            call_unlink(c);
            call_free(c);
            return;
        }
    }
}

void
s2a_upstream_resume(uint64_t id)
{
    call_t *c;

    for (c = U.calls; c != NULL; c = c->next) {
        if (c->id == id) {
            if (!c->paused) {
                return;
            }
            c->paused = false;
            c->active_ms = s2a_mono_ms();
            /* May hand the held bytes to on_data at once; libcurl then
             * asks for a timer of 0 to carry on from the event loop. */
            curl_easy_pause(c->easy, CURLPAUSE_CONT);
            return;
        }
    }
}

int
s2a_upstream_inflight(void)
{
    return U.inflight;
}
