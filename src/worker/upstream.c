/*
 * upstream.c: libcurl multi interface on libevent (the multi-socket API):
 * curl tells us which sockets to watch and when to wake it; libevent
 * tells curl when they are ready. Completed transfers are collected after
 * curl returns, never from inside its callbacks.
 *
 * Owns: the CURLM handle, one call_t (easy handle, header list, buffers)
 * per request, one socket_t (event) per socket curl watches.
 */
#include "worker/upstream.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>

#define DEFAULT_MAX_RESPONSE (8u * 1024 * 1024)

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
    char errbuf[CURL_ERROR_SIZE];
    s2a_upstream_done_pt done;
    void *arg;
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

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    call_t *c = arg;
    size_t n = size * nmemb;
    long status = 0;
    ssize_t w;
    size_t off;

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

#if LIBCURL_VERSION_NUM >= 0x075000
/* Runs once the connection stands, for every request a call makes
 * (redirects too), before anything is sent. */
static int
prereq_cb(void *arg, char *primary_ip, char *local_ip, int primary_port,
          int local_port)
{
    call_t *c = arg;

    S2A_UNUSED(local_ip);
    S2A_UNUSED(primary_port);
    S2A_UNUSED(local_port);
    if (s2a_upstream_ip_private(primary_ip)) {
        c->private_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}
#endif

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
    curl_multi_remove_handle(U.multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    curl_mime_free(c->mime);
    evbuffer_free(c->body);
    free(c->req_body);
    free(c);
}

static void
collect_done(void)
{
    CURLMsg *msg;
    int left;
    call_t *c;
    s2a_upstream_resp_t resp;
    char *ctype;

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
        memset(&resp, 0, sizeof(resp));
        resp.curl_code = (int) msg->data.result;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        ctype = NULL;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ctype);
        resp.content_type = ctype;
        resp.truncated = c->truncated;
        resp.written = c->written;
        if (resp.curl_code != CURLE_OK) {
            resp.error = c->errbuf[0] != '\0'
                ? c->errbuf
                : curl_easy_strerror(msg->data.result);
            if (c->truncated) {
                resp.error = "response too large";
            } else if (c->write_failed) {
                resp.error = "writing the file failed";
            } else if (c->private_refused) {
                resp.error = "the URL points at a private address";
            }
        } else {
            resp.error = "";
        }
        evbuffer_add(c->body, "", 1);
        resp.body_len = evbuffer_get_length(c->body) - 1;
        resp.body = (char *) evbuffer_pullup(c->body, -1);
        call_unlink(c);
        c->done(&resp, c->arg);
        call_free(c);
    }
    U.collecting = false;
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
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
    /* Every encoding libcurl was built with (gzip, br, zstd). */
    curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, "");
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
#if LIBCURL_VERSION_NUM >= 0x075000
        curl_easy_setopt(c->easy, CURLOPT_PREREQFUNCTION, prereq_cb);
        curl_easy_setopt(c->easy, CURLOPT_PREREQDATA, c);
#else
        goto failed; /* cannot check: refuse rather than fetch blindly */
#endif
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
    } else if (strcmp(req->method, "POST") == 0) {
        if (req->body == NULL && c->mime == NULL) {
            curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, "");
        }
    } else {
        curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, req->method);
    }
    c->id = U.next_id++;
    if (curl_multi_add_handle(U.multi, c->easy) != CURLM_OK) {
        goto failed;
    }
    c->next = U.calls;
    if (c->next != NULL) {
        c->next->prev = c;
    }
    U.calls = c;
    U.inflight++;
    return c->id;

failed:
    if (c->easy != NULL) {
        curl_easy_cleanup(c->easy);
    }
    if (c->body != NULL) {
        evbuffer_free(c->body);
    }
    curl_slist_free_all(c->headers);
    curl_mime_free(c->mime);
    free(c->req_body);
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

int
s2a_upstream_inflight(void)
{
    return U.inflight;
}
