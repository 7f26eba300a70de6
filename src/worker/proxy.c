/*
 * proxy.c: an upstream media file relayed to a client as it downloads
 * (proxy.h). One relay per request: an upstream call in streaming mode
 * (upstream.c) whose body bytes go straight to the client's output
 * buffer. When that buffer holds S2A_PROXY_HIGH_WATER bytes the next
 * ones are refused, which pauses the download (libcurl keeps the one
 * chunk it holds and stops reading the socket); when the client has
 * taken it down to S2A_PROXY_LOW_WATER, http.c says so and the download
 * resumes. So a relay holds at most the high mark plus one chunk, and
 * libcurl's buffers, whatever the file's size and the client's speed.
 *
 * The head goes to the client once the upstream's head is known (at its
 * first body byte): until then nothing is promised and any failure is a
 * clean 502. After it, a failure can only be told by closing the
 * connection before the announced length. A client that leaves cancels
 * the download at once.
 */
#include "worker/proxy.h"
#include "common/log.h"
#include "worker/mediacache.h"
#include "worker/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The longest Range or If-Range value passed upstream. */
#define PROXY_HEADER_MAX 200

typedef enum {
    P_HEAD = 0, /* waiting for the upstream's head */
    P_BODY,     /* relaying */
    P_REFUSED   /* the upstream answered with an error status */
} proxy_state_t;

typedef struct proxy_s {
    s2a_req_t *req;
    uint64_t call;
    proxy_state_t state;
    long status;            /* P_REFUSED: the upstream's status */
    char content_range[96]; /* P_REFUSED 416: the upstream's */
    int64_t length;         /* announced, or -1 */
    int64_t sent;
    const char *fallback_type;
    char what[16];
} proxy_t;

static s2a_proxy_stats_t P;

static void
proxy_free(proxy_t *p)
{
    P.active--;
    free(p);
}

/* The client left: the download stops with it. */
static void
proxy_gone(s2a_req_t *req, void *arg)
{
    proxy_t *p = arg;

    S2A_UNUSED(req);
    if (p->call != 0) {
        s2a_upstream_cancel(p->call);
    }
    P.left++;
    proxy_free(p);
}

/* The client took its queue down to the low mark. */
static void
proxy_drained(s2a_req_t *req, void *arg)
{
    proxy_t *p = arg;

    S2A_UNUSED(req);
    if (p->call != 0) {
        s2a_upstream_resume(p->call);
    }
}

/* Whether an upstream content type says nothing a client could use. */
static bool
type_unknown(const char *t)
{
    return t == NULL || t[0] == '\0'
        || strncasecmp(t, "application/octet-stream", 24) == 0
        || strncasecmp(t, "binary/octet-stream", 19) == 0;
}

/* Runs inside libcurl: only the client's buffers are touched here. */
static int
proxy_head(const s2a_upstream_head_t *h, void *arg)
{
    proxy_t *p = arg;
    s2a_req_t *req = p->req;

    if (h->status < 200 || h->status > 299) {
        p->state = P_REFUSED;
        p->status = h->status;
        snprintf(p->content_range, sizeof(p->content_range), "%s",
                 h->content_range != NULL ? h->content_range : "");
        return S2A_ERROR;
    }
    if (h->accept_ranges != NULL) {
        s2a_http_add_header(req, "Accept-Ranges", h->accept_ranges);
    }
    if (h->status == 206 && h->content_range != NULL) {
        s2a_http_add_header(req, "Content-Range", h->content_range);
    }
    if (h->content_encoding != NULL) {
        s2a_http_add_header(req, "Content-Encoding", h->content_encoding);
    }
    if (h->etag != NULL) {
        s2a_http_add_header(req, "ETag", h->etag);
    }
    if (h->last_modified != NULL) {
        s2a_http_add_header(req, "Last-Modified", h->last_modified);
    }
    /* The upstream URL is signed and expires: nobody should keep it. */
    s2a_http_add_header(req, "Cache-Control", "no-store");
    p->length = h->content_length;
    p->state = P_BODY;
    s2a_http_relay_start(req, h->status == 206 ? 206 : 200,
                         type_unknown(h->content_type) ? p->fallback_type
                                                       : h->content_type,
                         h->content_length);
    s2a_http_on_drain(req, S2A_PROXY_LOW_WATER, proxy_drained, p);
    return S2A_OK;
}

/* Runs inside libcurl (or inside s2a_upstream_resume). */
static int
proxy_data(const char *data, size_t len, void *arg)
{
    proxy_t *p = arg;
    size_t queued = s2a_http_pending(p->req);

    if (queued >= S2A_PROXY_HIGH_WATER) {
        P.pauses++;
        return S2A_AGAIN;
    }
    if (s2a_http_stream_write(p->req, data, len) != S2A_OK) {
        return S2A_ERROR;
    }
    p->sent += (int64_t) len;
    queued += len;
    if (queued > P.peak_queued) {
        P.peak_queued = queued;
    }
    return S2A_OK;
}

/* The download ended; from the event loop. Answers and frees `p`. */
static void
proxy_done(const s2a_upstream_resp_t *resp, void *arg)
{
    proxy_t *p = arg;
    s2a_req_t *req = p->req;
    bool whole;

    p->call = 0;
    req->on_gone = NULL;
    if (p->state == P_BODY) {
        whole = resp->curl_code == 0
            && (p->length < 0 || p->sent == p->length
                || req->method == S2A_M_HEAD);
        if (whole) {
            P.completed++;
            s2a_http_stream_end(req);
        } else {
            P.short_ends++;
            s2a_log(LOG_WARNING, 0,
                    "%s: relaying the %s ended after %lld of %lld bytes: %s",
                    req->rid, p->what, (long long) p->sent,
                    (long long) p->length,
                    resp->curl_code != 0 ? resp->error : "the body was short");
            s2a_http_stream_abort(req);
        }
    } else if (p->state == P_REFUSED && p->status == 416) {
        P.failed++;
        if (p->content_range[0] != '\0') {
            s2a_http_add_header(req, "Content-Range", p->content_range);
        }
        s2a_http_reply_error(req, 416, "invalid_request_error",
                             "range_not_satisfiable", NULL,
                             "The range is outside the %s", p->what);
    } else {
        P.failed++;
        if (p->state == P_REFUSED) {
            s2a_http_reply_error(req, 502, "upstream_error",
                                 "content_unavailable", NULL,
                                 "The upstream answered HTTP %ld for the %s",
                                 p->status, p->what);
        } else {
            s2a_http_reply_error(
                req, 502, "upstream_error", "content_unavailable", NULL,
                "The %s could not be fetched from the "
                "upstream: %s",
                p->what, resp->curl_code != 0 ? resp->error : "no answer");
        }
    }
    proxy_free(p);
}

/* A request header worth passing upstream: short, and there. */
static const char *
pass_header(s2a_req_t *req, const char *name)
{
    const char *v = s2a_req_header(req, name);

    return v != NULL && v[0] != '\0' && strlen(v) <= PROXY_HEADER_MAX ? v
                                                                      : NULL;
}

void
s2a_proxy_serve(s2a_req_t *req, const char *url, const char *fallback_type,
                const char *what)
{
    char range[PROXY_HEADER_MAX + 16], if_range[PROXY_HEADER_MAX + 16];
    const char *v;
    s2a_upstream_req_t u;
    proxy_t *p;
    int n = 0;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        return;
    }
    P.active++;
    P.started++;
    p->req = req;
    p->length = -1;
    p->fallback_type = fallback_type;
    snprintf(p->what, sizeof(p->what), "%s", what);
    memset(&u, 0, sizeof(u));
    u.method = req->method == S2A_M_HEAD ? "HEAD" : "GET";
    u.url = url;
    /* The same road as a result download: the global proxy, redirects,
     * the connect and read timeouts, the media download's whole-call
     * bound. */
    u.proxy = s2a_cache_proxy();
    u.timeout_ms = S2A_UPSTREAM_MEDIA_TIMEOUT_MS;
    u.follow_redirects = true;
    if ((v = pass_header(req, "Range")) != NULL) {
        snprintf(range, sizeof(range), "Range: %s", v);
        u.headers[n++] = range;
    }
    if ((v = pass_header(req, "If-Range")) != NULL) {
        snprintf(if_range, sizeof(if_range), "If-Range: %s", v);
        u.headers[n++] = if_range;
    }
    u.on_head = proxy_head;
    u.on_data = proxy_data;
    p->call = s2a_upstream_start(&u, proxy_done, p);
    if (p->call == 0) {
        P.failed++;
        proxy_free(p);
        s2a_http_reply_error(req, 502, "upstream_error", "content_unavailable",
                             NULL, "The %s download did not start", what);
        return;
    }
    req->on_gone = proxy_gone;
    req->gone_arg = p;
}

void
s2a_proxy_stats(s2a_proxy_stats_t *out)
{
    *out = P;
}

void
s2a_proxy_stats_reset_peak(void)
{
    P.peak_queued = 0;
}
