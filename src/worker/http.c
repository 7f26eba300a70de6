/*
 * http.c: HTTP/1.1 server on bufferevents.
 *
 * One conn_t per accepted socket; it carries at most one request at a
 * time (pipelined requests wait in the input buffer), embedded in the
 * connection so a request costs no allocation. The request head is copied
 * into a per-connection buffer and parsed in place.
 *
 * Limits: the request head must arrive within client_timeout of its first
 * byte and fit max_header_size; bodies (Content-Length or chunked) may not
 * exceed max_body_size and may not pause longer than client_timeout; an
 * idle keep-alive connection is closed after client_timeout. Every error
 * answer the server makes itself is an OpenAI-style JSON envelope, sent
 * with "Connection: close" and a lingering close so the client reads it.
 */
#include "worker/http.h"
#include "worker/metrics.h"
#include "worker/h1.h"
#include "common/jsonlimit.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#define ACCESS_BUF_MAX (64 * 1024)
#define LINGER_MS      2000
/* Appends a string literal without its NUL. */
#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)
#define PIPELINE_MAX      (64 * 1024)

typedef enum {
    C_IDLE = 0,  /* waiting for a request (keep-alive) */
    C_HEAD,      /* part of a request head received */
    C_BODY,      /* reading the body */
    C_HANDLING,  /* the handler has the request */
    C_WRITING,   /* answer queued, waiting for it to drain */
    C_STREAMING, /* chunked answer in progress */
    C_LINGER     /* closing: discarding input */
} conn_state_t;

typedef struct conn_s {
    s2a_http_t *http;
    struct bufferevent *bev;
    conn_state_t state;
    char peer[INET6_ADDRSTRLEN];
    char *head; /* copy of the request head, parsed in place */
    size_t head_cap;
    size_t head_seen; /* input bytes already seen without a head end */
    s2a_h1_head_t h;  /* the parsed head; strings point into `head` */
    struct evbuffer *body;
    struct evbuffer *extra; /* response headers added by the handler */
    int64_t body_left;      /* Content-Length bytes still to read */
    int64_t body_counted;   /* bytes this body holds of http->body_bytes */
    bool body_unread;       /* a body was announced and not all read */
    bool chunked;
    s2a_h1_chunked_t ck;
    bool keep_alive;
    bool close_after;
    bool req_live; /* `req` is in use */
    /* A relayed body (no chunk framing), and who hears that a streaming
     * answer drained to its low mark. */
    bool stream_raw;
    s2a_http_drain_pt drain_cb;
    void *drain_arg;
    int64_t idle_since;
    struct event *timer; /* head deadline and lingering close */
    s2a_req_t req;
    struct conn_s *prev, *next;
} conn_t;

struct s2a_http_s {
    struct event_base *base;
    const s2a_conf_t *conf;
    struct evconnlistener *listeners[S2A_CONF_MAX_LISTEN];
    int nlisteners;
    s2a_http_handler_pt handler;
    void *arg;
    s2a_http_done_pt on_done;
    void *done_arg;
    s2a_http_admit_pt admit;
    void *admit_arg;
    int64_t body_bytes; /* request body bytes buffered or promised */
    int slot;
    uint64_t seq;
    int inflight;
    int nconns;
    int64_t last_activity;
    bool draining;
    conn_t *conns;
    struct timeval client_tv;
    int access_fd; /* -1: off */
    struct evbuffer *access_buf;
    struct event *access_timer;
    time_t date_time;
    char date[40];
};

static s2a_http_t *the_http; /* one server per worker process */

static void conn_close(conn_t *c);
static void conn_process(conn_t *c);
static void conn_error(conn_t *c, int status, const char *code,
                       const char *msg);
static void conn_error_retry(conn_t *c, int status, const char *code,
                             const char *msg, const char *retry_after);

/* ---------------------------------------------------------------------
 * Small helpers
 */

static int64_t
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *
reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    return "Status";
}

static const char *
http_date(s2a_http_t *http)
{
    time_t t = time(NULL);
    struct tm tm;

    if (t != http->date_time) {
        http->date_time = t;
        gmtime_r(&t, &tm);
        strftime(http->date, sizeof(http->date), "%a, %d %b %Y %H:%M:%S GMT",
                 &tm);
    }
    return http->date;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Percent-decodes `in` into `out` (same size is enough). Rejects %00. */
static int
percent_decode(const char *in, size_t len, char *out)
{
    size_t i, o = 0;
    int hi, lo;

    for (i = 0; i < len; i++) {
        if (in[i] == '%') {
            /* Both hex digits must lie inside `in`: in[i + 2] too. */
            if (i + 2 >= len) {
                return S2A_ERROR;
            }
            hi = hexval((unsigned char) in[i + 1]);
            lo = hi >= 0 ? hexval((unsigned char) in[i + 2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0)) {
                return S2A_ERROR;
            }
            out[o++] = (char) (hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return S2A_OK;
}

/* ---------------------------------------------------------------------
 * Access log
 */

static void
access_flush(s2a_http_t *http)
{
    if (http->access_fd < 0) {
        evbuffer_drain(http->access_buf, evbuffer_get_length(http->access_buf));
        return;
    }
    while (evbuffer_get_length(http->access_buf) > 0) {
        if (evbuffer_write(http->access_buf, http->access_fd) <= 0) {
            /* A full disk must not stop the worker: drop the lines. */
            evbuffer_drain(http->access_buf,
                           evbuffer_get_length(http->access_buf));
            return;
        }
    }
}

static void
access_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    access_flush(arg);
}

void
s2a_http_flush_access_log(s2a_http_t *http)
{
    access_flush(http);
}

int
s2a_http_open_access_log(s2a_http_t *http, const char *path)
{
    int fd;

    if (strcmp(path, "off") == 0) {
        fd = -1;
    } else if (strcmp(path, "stderr") == 0) {
        fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    } else {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    }
    if (fd < 0 && strcmp(path, "off") != 0) {
        return S2A_ERROR;
    }
    access_flush(http);
    if (http->access_fd >= 0) {
        close(http->access_fd);
    }
    http->access_fd = fd;
    return S2A_OK;
}

static void
access_log(s2a_http_t *http, conn_t *c, s2a_req_t *req)
{
    const char *ua;
    char date[32];
    struct tm tm;
    time_t t;

    if (http->access_fd < 0) {
        return;
    }
    ua = s2a_req_header(req, "User-Agent");
    t = time(NULL);
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* Only the path is logged: query strings may carry secrets. */
    evbuffer_add_printf(
        http->access_buf, "%s %s \"%s %.512s\" %d %zu %.6f %s \"%.200s\"\n",
        date, c->peer, req->method_name,
        req->raw_path != NULL ? req->raw_path : "-", req->status,
        req->bytes_out, (double) (now_us() - req->start_us) / 1e6, req->rid,
        ua != NULL ? ua : "-");
    if (evbuffer_get_length(http->access_buf) > ACCESS_BUF_MAX) {
        access_flush(http);
    }
}

/* ---------------------------------------------------------------------
 * Connections
 */

static void
set_read_timeout(conn_t *c, bool on)
{
    bufferevent_set_timeouts(c->bev, on ? &c->http->client_tv : NULL,
                             &c->http->client_tv);
}

/* The request left the handler's hands: count it done. */
static void
req_finish(conn_t *c)
{
    s2a_http_t *http = c->http;

    if (!c->req_live) {
        return;
    }
    c->req_live = false;
    http->inflight--;
    http->last_activity = s2a_mono_ms();
    access_log(http, c, &c->req);
    s2a_metrics_request(c->req.route, c->req.status,
                        now_us() - c->req.start_us);
    if (http->on_done != NULL && c->req.method_name != NULL) {
        http->on_done(&c->req, http->done_arg);
    }
}

static void
conn_free(conn_t *c)
{
    s2a_http_t *http = c->http;

    if (c->req_live) {
        s2a_req_t *req = &c->req;
        /* The handler still holds the request: tell it, then forget. */
        if (!req->answered || req->streaming) {
            req->gone = true;
            if (req->on_gone != NULL) {
                s2a_req_gone_pt cb = req->on_gone;
                req->on_gone = NULL;
                cb(req, req->gone_arg);
            }
            if (req->status == 0) {
                req->status = 499; /* client closed request */
            }
        }
        req_finish(c);
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        http->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    http->nconns--;
    http->body_bytes -= c->body_counted;
    c->body_counted = 0;
    if (c->timer != NULL) {
        event_free(c->timer);
    }
    bufferevent_free(c->bev);
    if (c->body != NULL) {
        evbuffer_free(c->body);
    }
    if (c->extra != NULL) {
        evbuffer_free(c->extra);
    }
    free(c->head);
    free(c);
}

static void
linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    conn_free(arg);
}

/* Stops writing and discards input for a while, so the peer reads our
 * last answer instead of a reset caused by its own unread bytes. */
static void
conn_linger(conn_t *c)
{
    struct timeval tv = { LINGER_MS / 1000, (LINGER_MS % 1000) * 1000 };

    c->state = C_LINGER;
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    bufferevent_enable(c->bev, EV_READ);
    bufferevent_set_timeouts(c->bev, &tv, NULL);
    if (c->timer != NULL) {
        event_del(c->timer);
        event_assign(c->timer, c->http->base, -1, 0, linger_timeout_cb, c);
        evtimer_add(c->timer, &tv);
    }
}

static void
conn_close(conn_t *c)
{
    conn_free(c);
}

static void
reset_for_next(conn_t *c)
{
    memset(&c->req, 0, sizeof(c->req));
    c->h.nheaders = 0;
    c->body_left = 0;
    c->http->body_bytes -= c->body_counted;
    c->body_counted = 0;
    c->body_unread = false;
    c->chunked = false;
    c->close_after = false;
    if (c->body != NULL) {
        evbuffer_drain(c->body, evbuffer_get_length(c->body));
    }
    if (c->extra != NULL) {
        evbuffer_drain(c->extra, evbuffer_get_length(c->extra));
    }
    c->stream_raw = false;
    c->drain_cb = NULL;
    c->state = C_IDLE;
    c->idle_since = s2a_mono_ms();
    if (c->timer != NULL) {
        event_del(c->timer);
    }
    set_read_timeout(c, true);
    bufferevent_setwatermark(c->bev, EV_READ | EV_WRITE, 0, 0);
    bufferevent_enable(c->bev, EV_READ);
}

/* The answer has been handed to the kernel. */
static void
answer_sent(conn_t *c)
{
    /* What the answer's head promised decides, not the state now: a
     * drain that began after it was written must not surprise the client. */
    bool keep = c->keep_alive && !c->close_after;

    req_finish(c);
    if (!keep) {
        /* Unread input, here or still in the kernel, would turn the
         * close into a reset that can destroy our answer. */
        if (c->close_after
            && (c->body_unread
                || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0))
        {
            conn_linger(c);
        } else {
            conn_close(c);
        }
        return;
    }
    reset_for_next(c);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
        conn_process(c);
    }
}

static void
head_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    conn_error(c, 408, "request_timeout",
               "The request was not received in time.");
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;

    S2A_UNUSED(bev);
    if (c->state == C_WRITING) {
        answer_sent(c);
    } else if (c->state == C_STREAMING && c->drain_cb != NULL) {
        /* Down to the low mark: the producer may go on. */
        c->drain_cb(&c->req, c->drain_arg);
    }
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn_t *c = arg;

    S2A_UNUSED(bev);
    if (c->state == C_LINGER) {
        conn_free(c);
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING)) {
        if (c->state == C_BODY) {
            conn_error(c, 408, "request_timeout",
                       "The request body was not received in time.");
        } else if (c->state == C_HEAD) {
            conn_error(c, 408, "request_timeout",
                       "The request was not received in time.");
        } else {
            conn_close(c); /* idle keep-alive, or silent client */
        }
        return;
    }
    if ((what & BEV_EVENT_EOF) && c->state == C_WRITING) {
        /* A half-closed client still gets the answer it asked for. */
        c->keep_alive = false;
        bufferevent_disable(c->bev, EV_READ);
        return;
    }
    conn_close(c);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    switch (c->state) {
    case C_IDLE:
    case C_HEAD:
    case C_BODY: conn_process(c); break;
    case C_LINGER: evbuffer_drain(in, evbuffer_get_length(in)); break;
    default:
        /* Pipelined input waits; past a limit, stop reading it. */
        if (evbuffer_get_length(in) > PIPELINE_MAX) {
            bufferevent_disable(bev, EV_READ);
        }
        break;
    }
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    s2a_http_t *http = arg;
    conn_t *c;

    S2A_UNUSED(lev);
    S2A_UNUSED(salen);
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->http = http;
    c->bev = bufferevent_socket_new(http->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->timer = evtimer_new(http->base, head_deadline_cb, c);
    if (c->bev == NULL || c->timer == NULL) {
        if (c->bev != NULL) {
            bufferevent_free(c->bev);
        } else {
            close(fd);
        }
        if (c->timer != NULL) {
            event_free(c->timer);
        }
        free(c);
        return;
    }
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *) (void *) sa)->sin_addr,
                  c->peer, sizeof(c->peer));
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *) (void *) sa)->sin6_addr,
                  c->peer, sizeof(c->peer));
    } else {
        snprintf(c->peer, sizeof(c->peer), "-");
    }
    c->next = http->conns;
    if (c->next != NULL) {
        c->next->prev = c;
    }
    http->conns = c;
    http->nconns++;
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    reset_for_next(c);
}

/* ---------------------------------------------------------------------
 * Parsing: the framing is h1.c's; here the request path, the admission
 * of the body (before any of it is read) and reading it.
 */

static const char *
find_header(conn_t *c, const char *name)
{
    return s2a_h1_header(&c->h, name);
}

static s2a_method_t
parse_method(const char *m)
{
    static const char *const names[] = { "GET",    "HEAD",  "POST",   "PUT",
                                         "DELETE", "PATCH", "OPTIONS" };
    size_t i;

    for (i = 0; i < S2A_NELEMS(names); i++) {
        if (strcmp(m, names[i]) == 0) {
            return (s2a_method_t) i;
        }
    }
    return S2A_M_OTHER;
}

/* The request starts to exist: request id, in-flight count. */
static void
req_begin(conn_t *c)
{
    s2a_http_t *http = c->http;
    s2a_req_t *req = &c->req;

    if (c->req_live) {
        return;
    }
    req->conn = c;
    req->peer = c->peer;
    if (req->start_us == 0) {
        req->start_us = now_us();
    }
    if (req->method_name == NULL) {
        req->method_name = "-";
    }
    req->route = "other";
    http->seq++;
    snprintf(req->rid, sizeof(req->rid), "%02x%06x%08llx", http->slot & 0xff,
             (unsigned) (getpid() & 0xffffff),
             (unsigned long long) (http->seq & 0xffffffffULL));
    c->req_live = true;
    http->inflight++;
    http->last_activity = s2a_mono_ms();
}

/*
 * Fills c->req from the parsed head: method, version, the path (an
 * absolute-form target reduced to its path), percent-decoded into
 * c->head after the head. Returns S2A_OK, or answers 400 and returns
 * S2A_ERROR.
 */
static int
head_to_req(conn_t *c)
{
    char *target = c->h.target, *q, *decoded;
    size_t tlen;

    c->req.version_minor = c->h.version_minor;
    c->req.method = parse_method(c->h.method);
    c->req.method_name = c->h.method;
    c->keep_alive = c->h.keep_alive;
    if (strncasecmp(target, "http://", 7) == 0
        || strncasecmp(target, "https://", 8) == 0)
    {
        q = strchr(strstr(target, "//") + 2, '/');
        target = q != NULL ? q : (char *) "/";
    }
    if (target[0] != '/'
        && !(strcmp(target, "*") == 0 && c->req.method == S2A_M_OPTIONS))
    {
        conn_error(c, 400, "bad_request", "Malformed request target.");
        return S2A_ERROR;
    }
    q = strchr(target, '?');
    tlen = q != NULL ? (size_t) (q - target) : strlen(target);
    if (q != NULL) {
        *q = '\0';
        c->req.query = q + 1;
    }
    c->req.raw_path = target;
    decoded = c->head + c->h.head_len + 1;
    if (percent_decode(target, tlen, decoded) != S2A_OK) {
        conn_error(c, 400, "bad_request", "Malformed percent-encoding.");
        return S2A_ERROR;
    }
    c->req.path = decoded;
    return S2A_OK;
}

/*
 * Decides, from the head alone, whether the body will be read: the
 * admission callback (routes.c) checks the credential and picks the
 * route's body limit, then the size limit and the worker's cap on
 * buffered body bytes apply. Returns S2A_OK to read the body, or
 * S2A_ERROR when the request was answered (the body is never read and
 * the connection closes after the answer).
 */
static int
admit_request(conn_t *c)
{
    s2a_http_t *http = c->http;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    int64_t limit = http->conf->max_body_size;
    const char *expect;
    bool has_body;

    req_begin(c);
    c->chunked = c->h.chunked;
    c->body_left = c->h.content_length > 0 ? c->h.content_length : 0;
    has_body = c->chunked || c->body_left > 0;
    c->body_unread = has_body;
    expect = find_header(c, "Expect");
    if (expect != NULL && has_body && strcasecmp(expect, "100-continue") != 0) {
        conn_error(c, 417, "expectation_failed", "Unsupported expectation.");
        return S2A_ERROR;
    }
    event_del(c->timer);
    c->state = C_HANDLING;
    /* An answer given before the body was read must close: what follows
     * on the connection is that body, not a next request. */
    c->close_after = has_body;
    if (http->admit != NULL
        && http->admit(&c->req, http->admit_arg, &limit) != S2A_OK)
    {
        return S2A_ERROR;
    }
    c->close_after = false;
    if (!has_body) {
        c->state = C_BODY;
        return S2A_OK;
    }
    if (c->body_left > limit) {
        conn_error(c, 413, "request_too_large",
                   "The request body is larger than the limit.");
        return S2A_ERROR;
    }
    /* Bodies already accepted keep going; only new ones are refused. */
    if (http->body_bytes + (c->chunked ? 1 : c->body_left)
        > http->conf->max_inflight_body)
    {
        conn_error_retry(c, 503, "server_busy",
                         "Too many request bodies in flight; retry later.",
                         "1");
        return S2A_ERROR;
    }
    c->body_counted = c->body_left;
    http->body_bytes += c->body_left;
    if (c->chunked) {
        s2a_h1_chunked_init(&c->ck, (uint64_t) limit);
    }
    if (expect != NULL && evbuffer_get_length(in) == 0) {
        ADD_LIT(bufferevent_get_output(c->bev),
                "HTTP/1.1 100 Continue\r\n\r\n");
    }
    c->state = C_BODY;
    return S2A_OK;
}

/* Moves chunked body data from `in` to c->body. S2A_OK when complete,
 * S2A_AGAIN for more, S2A_ERROR after answering an error. */
static int
read_chunked(conn_t *c, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    size_t used, dlen;
    int rc;

    while (evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        rc = s2a_h1_chunked_parse(&c->ck, v.iov_base, v.iov_len, &used, &dlen);
        if (rc == S2A_ERROR) {
            conn_error(c, c->ck.status, c->ck.code, c->ck.message);
            return S2A_ERROR;
        }
        evbuffer_drain(in, used - dlen);
        if (dlen > 0) {
            evbuffer_remove_buffer(in, c->body, dlen);
            c->body_counted += (int64_t) dlen;
            c->http->body_bytes += (int64_t) dlen;
        }
        if (rc == S2A_OK) {
            return S2A_OK;
        }
    }
    return S2A_AGAIN;
}

static void
dispatch(conn_t *c)
{
    s2a_http_t *http = c->http;

    c->state = C_HANDLING;
    event_del(c->timer);
    /* No read deadline while a handler works (long polls, streams); a
     * client that goes away is still noticed through EOF. */
    set_read_timeout(c, false);
    http->last_activity = s2a_mono_ms();
    http->handler(&c->req, http->arg);
}

/*
 * Reads a request head once a line end arrived: h1.c parses a copy of
 * what is there (at most max_header_size bytes). S2A_OK when the head was
 * parsed and consumed, S2A_AGAIN to wait, S2A_ERROR after an answer.
 */
static int
read_head(conn_t *c, struct evbuffer *in)
{
    size_t avail = evbuffer_get_length(in);
    size_t max = (size_t) c->http->conf->max_header_size;
    size_t n = avail < max ? avail : max;
    struct evbuffer_ptr pos;
    int rc;

    /* A head ends with a LF: nothing to parse until a new one arrives. */
    if (c->head_seen < n) {
        evbuffer_ptr_set(in, &pos, c->head_seen, EVBUFFER_PTR_SET);
        pos = evbuffer_search(in, "\n", 1, &pos);
        if (pos.pos >= 0 && (size_t) pos.pos < n) {
            c->head_seen = (size_t) pos.pos;
            rc = S2A_OK;
        } else {
            c->head_seen = n;
            rc = S2A_AGAIN;
        }
    } else {
        rc = S2A_AGAIN;
    }
    if (rc == S2A_OK) {
        /* Sized to this head (and its decoded path), not to the limit:
         * thousands of streams keep their heads for hours. */
        if (c->head == NULL || c->head_cap < 2 * n + 2) {
            free(c->head);
            c->head_cap = (2 * n + 2 + 511) & ~(size_t) 511;
            c->head = malloc(c->head_cap);
            if (c->head == NULL) {
                conn_close(c);
                return S2A_ERROR;
            }
        }
        evbuffer_copyout(in, c->head, n);
        rc = s2a_h1_parse_head(c->head, n, &c->h);
        if (rc == S2A_ERROR) {
            conn_error(c, c->h.status, c->h.code, c->h.message);
            return S2A_ERROR;
        }
        if (rc == S2A_OK) {
            evbuffer_drain(in, c->h.head_len);
            c->head_seen = 0;
            return S2A_OK;
        }
        c->head_seen = n;
    }
    if (n == max) {
        conn_error(c, 431, "request_header_fields_too_large",
                   "The request head is larger than the limit.");
        return S2A_ERROR;
    }
    return S2A_AGAIN;
}

static void
conn_process(conn_t *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct timeval tv;
    size_t len;
    int rc;

    if (c->state == C_IDLE || c->state == C_HEAD) {
        /* Empty lines before a request are allowed (RFC 9112 2.2). */
        while (c->state == C_IDLE && evbuffer_get_length(in) >= 2) {
            unsigned char two[2];
            evbuffer_copyout(in, two, 2);
            if (two[0] == '\r' && two[1] == '\n') {
                evbuffer_drain(in, 2);
            } else {
                break;
            }
        }
        if (evbuffer_get_length(in) == 0) {
            return;
        }
        if (c->state == C_IDLE) {
            c->state = C_HEAD;
            c->head_seen = 0;
            c->req.start_us = now_us();
            tv = c->http->client_tv;
            evtimer_add(c->timer, &tv);
        }
        if (read_head(c, in) != S2A_OK) {
            return;
        }
        if (c->body == NULL) {
            c->body = evbuffer_new();
            c->extra = evbuffer_new();
            if (c->body == NULL || c->extra == NULL) {
                conn_close(c);
                return;
            }
        }
        if (head_to_req(c) != S2A_OK || admit_request(c) != S2A_OK) {
            return;
        }
    }
    if (c->state == C_BODY) {
        if (c->chunked) {
            rc = read_chunked(c, in);
            if (rc != S2A_OK) {
                return;
            }
        } else if (c->body_left > 0) {
            len = evbuffer_get_length(in);
            if ((int64_t) len > c->body_left) {
                len = (size_t) c->body_left;
            }
            evbuffer_remove_buffer(in, c->body, len);
            c->body_left -= (int64_t) len;
            if (c->body_left > 0) {
                return;
            }
        }
        c->body_unread = false;
        dispatch(c);
    }
}

/* ---------------------------------------------------------------------
 * Answers
 */

static conn_t *
req_conn(s2a_req_t *req)
{
    return (conn_t *) req->conn;
}

const char *
s2a_req_header(s2a_req_t *req, const char *name)
{
    conn_t *c = req_conn(req);

    return c != NULL ? find_header(c, name) : NULL;
}

const unsigned char *
s2a_req_body(s2a_req_t *req, size_t *len)
{
    conn_t *c = req_conn(req);

    *len = 0;
    if (c == NULL || c->body == NULL) {
        return NULL;
    }
    *len = evbuffer_get_length(c->body);
    return evbuffer_pullup(c->body, -1);
}

char *
s2a_req_query_param(s2a_req_t *req, const char *name)
{
    const char *p = req->query, *amp, *eq;
    size_t nlen = strlen(name), vlen;
    char *raw, *out;
    size_t i;

    while (p != NULL && *p != '\0') {
        amp = strchr(p, '&');
        eq = strchr(p, '=');
        if (eq != NULL && (amp == NULL || eq < amp) && (size_t) (eq - p) == nlen
            && strncmp(p, name, nlen) == 0)
        {
            vlen = amp != NULL ? (size_t) (amp - eq - 1) : strlen(eq + 1);
            raw = strndup(eq + 1, vlen);
            out = malloc(vlen + 1);
            if (raw == NULL || out == NULL) {
                free(raw);
                free(out);
                return NULL;
            }
            for (i = 0; i < vlen; i++) {
                if (raw[i] == '+') {
                    raw[i] = ' ';
                }
            }
            if (percent_decode(raw, vlen, out) != S2A_OK) {
                free(out);
                out = NULL;
            }
            free(raw);
            return out;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

void
s2a_http_add_header(s2a_req_t *req, const char *name, const char *value)
{
    conn_t *c = req_conn(req);

    if (c == NULL || req->answered || strpbrk(value, "\r\n") != NULL) {
        return;
    }
    evbuffer_add_printf(c->extra, "%s: %s\r\n", name, value);
}

/* Status line and the headers every answer carries. */
static void
write_head(conn_t *c, int status, const char *content_type,
           int64_t content_length, bool chunked)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    s2a_http_t *http = c->http;
    bool keep = c->keep_alive && !c->close_after && !http->draining;

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nServer: sora2api\r\n"
                        "Date: %s\r\n",
                        status, reason_phrase(status), http_date(http));
    if (content_type != NULL) {
        evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
    }
    if (chunked) {
        ADD_LIT(out, "Transfer-Encoding: chunked\r\n");
    } else if (content_length >= 0 && status != 204 && status != 304) {
        evbuffer_add_printf(out, "Content-Length: %lld\r\n",
                            (long long) content_length);
    }
    if (!keep) {
        ADD_LIT(out, "Connection: close\r\n");
    } else if (c->req.version_minor == 0) {
        ADD_LIT(out, "Connection: keep-alive\r\n");
    }
    evbuffer_add_printf(out, "X-Request-Id: %s\r\n", c->req.rid);
    evbuffer_add_buffer(out, c->extra);
    ADD_LIT(out, "\r\n");
    if (!keep) {
        c->close_after = true;
    }
}

static void
start_writing(conn_t *c)
{
    c->state = C_WRITING;
    bufferevent_enable(c->bev, EV_WRITE);
    /* Already flushed (tiny answers can be): finish now. */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        answer_sent(c);
    }
}

void
s2a_http_reply(s2a_req_t *req, int status, const char *content_type,
               const void *body, size_t len)
{
    conn_t *c = req_conn(req);
    bool with_body;

    if (req->answered || c == NULL) {
        return;
    }
    req->answered = true;
    req->status = status;
    with_body = req->method != S2A_M_HEAD && status != 204 && status != 304;
    write_head(c, status, content_type, (int64_t) len, false);
    if (with_body && len > 0) {
        evbuffer_add(bufferevent_get_output(c->bev), body, len);
        req->bytes_out = len;
    }
    start_writing(c);
}

void
s2a_http_reply_file(s2a_req_t *req, int status, const char *content_type,
                    int fd, int64_t offset, int64_t length)
{
    conn_t *c = req_conn(req);

    if (req->answered || c == NULL) {
        close(fd);
        return;
    }
    req->answered = true;
    req->status = status;
    write_head(c, status, content_type, length, false);
    if (req->method == S2A_M_HEAD || length == 0) {
        close(fd);
    } else if (evbuffer_add_file(bufferevent_get_output(c->bev), fd, offset,
                                 length)
               != 0)
    {
        /* Headers are out already: the connection cannot be saved. */
        close(fd);
        c->keep_alive = false;
        req->status = 500;
    } else {
        req->bytes_out = (size_t) length;
    }
    start_writing(c);
}

bool
s2a_http_validators(s2a_req_t *req, int64_t size, int64_t mtime)
{
    char etag[64], lm[64];
    const char *inm, *ims;
    time_t t = (time_t) mtime;
    struct tm tm;

    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long) size,
             (unsigned long long) mtime);
    gmtime_r(&t, &tm);
    strftime(lm, sizeof(lm), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    s2a_http_add_header(req, "ETag", etag);
    s2a_http_add_header(req, "Last-Modified", lm);
    inm = s2a_req_header(req, "If-None-Match");
    ims = s2a_req_header(req, "If-Modified-Since");
    return (inm != NULL && strcmp(inm, etag) == 0)
        || (inm == NULL && ims != NULL && strcmp(ims, lm) == 0);
}

void
s2a_http_reply_json(s2a_req_t *req, int status, const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);

    if (text == NULL) {
        static const char fallback[] =
            "{\"error\":{\"message\":\"cannot encode response\","
            "\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        s2a_http_reply(req, 500, "application/json", fallback,
                       sizeof(fallback) - 1);
        return;
    }
    s2a_http_reply(req, status, "application/json", text, strlen(text));
    free(text);
}

/*
 * Replaces every byte of `s` that is not part of a well-formed UTF-8
 * sequence with '?': messages quote request paths, which may hold any
 * byte, and JSON text must be UTF-8.
 */
static void
utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *) s;
    size_t n, i;
    uint32_t cp;

    while (*p != '\0') {
        if (*p < 0x80) {
            p++;
            continue;
        }
        n = (*p & 0xe0) == 0xc0   ? 2
            : (*p & 0xf0) == 0xe0 ? 3
            : (*p & 0xf8) == 0xf0 ? 4
                                  : 0;
        cp = n == 2 ? (*p & 0x1fu) : n == 3 ? (*p & 0x0fu) : (*p & 0x07u);
        for (i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                break;
            }
            cp = cp << 6 | (p[i] & 0x3fu);
        }
        if (n == 0 || i < n || (n == 2 && cp < 0x80)
            || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

static json_t *
error_body(const char *type, const char *code, const char *param,
           const char *msg)
{
    return json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", msg,
                     "type", type, "param",
                     param != NULL ? json_string(param) : json_null(), "code",
                     code != NULL ? json_string(code) : json_null());
}

void
s2a_http_reply_error(s2a_req_t *req, int status, const char *type,
                     const char *code, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    utf8_sanitize(msg);
    body = error_body(type, code, param, msg);
    if (body == NULL) {
        S2A_HTTP_REPLY_LIT(req, status, "application/json", "{}");
        return;
    }
    s2a_http_reply_json(req, status, body);
    json_decref(body);
}

void
s2a_http_reply_detail(s2a_req_t *req, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    utf8_sanitize(msg);
    body = json_pack("{s:s}", "detail", msg);
    s2a_http_reply_json(req, status, body);
    json_decref(body);
}

json_t *
s2a_req_json_object(s2a_req_t *req, bool detail_errors)
{
    /* String values are bounded by max_body_size alone: base64 images
     * arrive as one long string. */
    static const s2a_json_limits_t lim = { S2A_JSON_MAX_VALUES,
                                           S2A_JSON_MAX_DEPTH, SIZE_MAX,
                                           S2A_JSON_MAX_KEY };
    const unsigned char *body;
    json_error_t jerr;
    json_t *obj;
    size_t len;
    char why[160];

    body = s2a_req_body(req, &len);
    /* Refused before Jansson builds a tree of it. */
    if (s2a_json_limits_check((const char *) body, len, &lim, why, sizeof(why))
        != S2A_OK)
    {
        if (detail_errors) {
            s2a_http_reply_detail(req, 400, "JSON body over a limit: %s", why);
        } else {
            s2a_http_reply_error(req, 400, "invalid_request_error",
                                 "json_too_complex", NULL,
                                 "The JSON body of your request is over a "
                                 "limit: %s",
                                 why);
        }
        return NULL;
    }
    obj = len > 0
        ? json_loadb((const char *) body, len, JSON_REJECT_DUPLICATES, &jerr)
        : NULL;
    if (obj != NULL && json_is_object(obj)) {
        return obj;
    }
    json_decref(obj);
    if (len == 0) {
        snprintf(jerr.text, sizeof(jerr.text), "the body is empty");
    } else if (obj != NULL) {
        snprintf(jerr.text, sizeof(jerr.text), "the body is not an object");
    }
    if (detail_errors) {
        s2a_http_reply_detail(req, 400, "Invalid JSON body: %s", jerr.text);
    } else {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_json",
                             NULL,
                             "We could not parse the JSON body of your "
                             "request: %s",
                             jerr.text);
    }
    return NULL;
}

/* An error the server itself detected while reading a request; with
 * `retry_after` (seconds as text, or NULL) a Retry-After field. */
static void
conn_error_retry(conn_t *c, int status, const char *code, const char *msg,
                 const char *retry_after)
{
    json_t *body;
    char *text;

    event_del(c->timer);
    if (!c->req_live) {
        req_begin(c);
        c->req.route = "protocol";
    }
    c->close_after = true;
    c->keep_alive = false;
    if (c->extra == NULL) {
        c->extra = evbuffer_new();
        if (c->extra == NULL) {
            conn_close(c);
            return;
        }
    }
    evbuffer_drain(c->extra, evbuffer_get_length(c->extra));
    if (retry_after != NULL) {
        evbuffer_add_printf(c->extra, "Retry-After: %s\r\n", retry_after);
    }
    /* The admin API answers in its own shape, {"detail"}. */
    if (c->req.path != NULL && strncmp(c->req.path, "/api/", 5) == 0) {
        body = json_pack("{s:s}", "detail", msg);
    } else {
        body =
            error_body(status >= 500 ? "server_error" : "invalid_request_error",
                       code, NULL, msg);
    }
    text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    c->req.answered = true;
    c->req.status = status;
    write_head(c, status, "application/json",
               text != NULL ? (int64_t) strlen(text) : 0, false);
    if (text != NULL) {
        evbuffer_add(bufferevent_get_output(c->bev), text, strlen(text));
        c->req.bytes_out = strlen(text);
        free(text);
    }
    bufferevent_disable(c->bev, EV_READ);
    start_writing(c);
}

static void
conn_error(conn_t *c, int status, const char *code, const char *msg)
{
    conn_error_retry(c, status, code, msg, NULL);
}

void
s2a_http_stream_start(s2a_req_t *req, int status, const char *content_type)
{
    conn_t *c = req_conn(req);

    if (req->answered || c == NULL) {
        return;
    }
    req->answered = true;
    req->streaming = true;
    req->status = status;
    if (c->req.version_minor == 0) {
        /* HTTP/1.0 has no chunks: the end of the stream is the close. */
        c->keep_alive = false;
        write_head(c, status, content_type, -1, false);
    } else {
        write_head(c, status, content_type, -1, true);
    }
    c->state = C_STREAMING;
    bufferevent_enable(c->bev, EV_WRITE);
}

int
s2a_http_stream_write(s2a_req_t *req, const void *data, size_t len)
{
    conn_t *c = req_conn(req);
    struct evbuffer *out;

    if (c == NULL || !req->streaming || req->gone || len == 0) {
        return req->gone ? S2A_ERROR : S2A_OK;
    }
    if (c->stream_raw && req->method == S2A_M_HEAD) {
        return S2A_OK; /* the head was the whole answer */
    }
    out = bufferevent_get_output(c->bev);
    if (c->req.version_minor == 0 || c->stream_raw) {
        evbuffer_add(out, data, len);
    } else {
        evbuffer_add_printf(out, "%zx\r\n", len);
        evbuffer_add(out, data, len);
        ADD_LIT(out, "\r\n");
    }
    req->bytes_out += len;
    return S2A_OK;
}

void
s2a_http_stream_end(s2a_req_t *req)
{
    conn_t *c = req_conn(req);

    if (c == NULL || !req->streaming || req->gone) {
        return;
    }
    req->streaming = false;
    if (c->req.version_minor != 0 && !c->stream_raw) {
        ADD_LIT(bufferevent_get_output(c->bev), "0\r\n\r\n");
    }
    /* answer_sent must wait for every byte, not for the low mark. */
    c->drain_cb = NULL;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    start_writing(c);
}

void
s2a_http_relay_start(s2a_req_t *req, int status, const char *content_type,
                     int64_t length)
{
    conn_t *c = req_conn(req);

    if (req->answered || c == NULL) {
        return;
    }
    if (length < 0 && req->method != S2A_M_HEAD) {
        s2a_http_stream_start(req, status, content_type);
        return;
    }
    req->answered = true;
    req->streaming = true;
    req->status = status;
    c->stream_raw = true;
    write_head(c, status, content_type, length, false);
    c->state = C_STREAMING;
    bufferevent_enable(c->bev, EV_WRITE);
}

size_t
s2a_http_pending(s2a_req_t *req)
{
    conn_t *c = req_conn(req);

    return c != NULL ? evbuffer_get_length(bufferevent_get_output(c->bev)) : 0;
}

void
s2a_http_on_drain(s2a_req_t *req, size_t low, s2a_http_drain_pt cb, void *arg)
{
    conn_t *c = req_conn(req);

    if (c == NULL || !req->streaming || req->gone) {
        return;
    }
    c->drain_cb = cb;
    c->drain_arg = arg;
    bufferevent_setwatermark(c->bev, EV_WRITE, cb != NULL ? low : 0, 0);
}

void
s2a_http_stream_abort(s2a_req_t *req)
{
    conn_t *c = req_conn(req);

    if (c == NULL || !req->streaming || req->gone) {
        return;
    }
    req->streaming = false;
    req->on_gone = NULL;
    /* What is queued still goes out; then the close tells the client
     * that the body is short (of its length, or of its last chunk). */
    c->keep_alive = false;
    c->close_after = true;
    c->drain_cb = NULL;
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    start_writing(c);
}

/* ---------------------------------------------------------------------
 * Server
 */

static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();

    S2A_UNUSED(lev);
    S2A_UNUSED(arg);
    /* EMFILE and friends: log; the listener keeps going. */
    s2a_log(LOG_ERR, err, "accept() failed");
}

s2a_http_t *
s2a_http_create(struct event_base *base, const s2a_conf_t *conf, const int *fds,
                int nfds, int slot, s2a_http_handler_pt handler, void *arg)
{
    s2a_http_t *http;
    struct timeval tv = { 1, 0 };
    int i;

    http = calloc(1, sizeof(*http));
    if (http == NULL) {
        return NULL;
    }
    http->base = base;
    http->conf = conf;
    http->handler = handler;
    http->arg = arg;
    http->slot = slot;
    http->access_fd = -1;
    http->client_tv.tv_sec = conf->client_timeout;
    http->last_activity = s2a_mono_ms();
    http->access_buf = evbuffer_new();
    if (http->access_buf == NULL) {
        goto failed;
    }
    for (i = 0; i < nfds; i++) {
        /* Backlog -1: the master already listens on these sockets. */
        http->listeners[i] = evconnlistener_new(
            base, accept_cb, http,
            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fds[i]);
        if (http->listeners[i] == NULL) {
            s2a_log(LOG_ERR, errno, "evconnlistener_new() failed");
            goto failed;
        }
        evconnlistener_set_error_cb(http->listeners[i], listener_error_cb);
        http->nlisteners++;
    }
    if (s2a_http_open_access_log(http, conf->access_log) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", conf->access_log);
        goto failed;
    }
    http->access_timer = event_new(base, -1, EV_PERSIST, access_timer_cb, http);
    if (http->access_timer == NULL) {
        goto failed;
    }
    evtimer_add(http->access_timer, &tv);
    the_http = http;
    return http;

failed:
    s2a_http_destroy(http);
    return NULL;
}

void
s2a_http_set_done_cb(s2a_http_t *http, s2a_http_done_pt cb, void *arg)
{
    http->on_done = cb;
    http->done_arg = arg;
}

void
s2a_http_set_admit_cb(s2a_http_t *http, s2a_http_admit_pt cb, void *arg)
{
    http->admit = cb;
    http->admit_arg = arg;
}

void
s2a_http_stop_accepting(s2a_http_t *http)
{
    int i;

    /* Closes this process's copy of each socket; the master and a
     * replacement worker keep theirs, so queued connections survive. */
    for (i = 0; i < http->nlisteners; i++) {
        evconnlistener_free(http->listeners[i]);
        http->listeners[i] = NULL;
    }
    http->nlisteners = 0;
}

void
s2a_http_set_draining(s2a_http_t *http)
{
    http->draining = true;
}

int
s2a_http_close_idle(s2a_http_t *http, int64_t min_idle_ms)
{
    int64_t now = s2a_mono_ms();
    conn_t *c, *next;
    int closed = 0;

    for (c = http->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == C_IDLE && now - c->idle_since >= min_idle_ms
            && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0)
        {
            conn_close(c);
            closed++;
        }
    }
    return closed;
}

int
s2a_http_connections(const s2a_http_t *http)
{
    return http->nconns;
}

int
s2a_http_inflight(const s2a_http_t *http)
{
    return http->inflight;
}

int64_t
s2a_http_last_activity(const s2a_http_t *http)
{
    return http->last_activity;
}

void
s2a_http_destroy(s2a_http_t *http)
{
    if (http == NULL) {
        return;
    }
    s2a_http_stop_accepting(http);
    while (http->conns != NULL) {
        conn_close(http->conns);
    }
    if (http->access_timer != NULL) {
        event_free(http->access_timer);
    }
    if (http->access_buf != NULL) {
        access_flush(http);
        evbuffer_free(http->access_buf);
    }
    if (http->access_fd >= 0) {
        close(http->access_fd);
    }
    if (the_http == http) {
        the_http = NULL;
    }
    free(http);
}
