/*
 * upstream.h: the worker's HTTP client for every upstream call (Sora
 * backend, auth endpoints, media). One libcurl multi handle per worker,
 * driven by the worker's event base; nothing here blocks.
 */
#ifndef S2A_UPSTREAM_H
#define S2A_UPSTREAM_H

#include "common/core.h"

#include <event2/event.h>

#define S2A_UPSTREAM_MAX_HEADERS 16

typedef struct s2a_upstream_resp_s {
    long status;       /* HTTP status, 0 when no answer came */
    int curl_code;     /* CURLE_OK or the transport error */
    const char *error; /* transport error text, or "" */
    char *body;        /* NUL-terminated; owned by the client */
    size_t body_len;
    const char *content_type; /* may be NULL */
    bool truncated;           /* body exceeded the size limit */
    int64_t written;          /* bytes stored in `out_fd` (file calls) */
} s2a_upstream_resp_t;

/* Called once per request, from the event loop, unless cancelled. */
typedef void (*s2a_upstream_done_pt)(const s2a_upstream_resp_t *resp,
                                     void *arg);

/* The head of a streamed answer (the last one, after redirects). The
 * strings are borrowed for the duration of the callback; NULL when the
 * header is absent. */
typedef struct s2a_upstream_head_s {
    long status;
    int64_t content_length; /* -1 when not announced */
    const char *content_type;
    const char *content_range;
    const char *accept_ranges;
    const char *content_encoding;
    const char *etag;
    const char *last_modified;
} s2a_upstream_head_t;

/*
 * Streamed answers (`on_data` set). `on_head` runs once, before the first
 * body byte (or, for an empty body, before `done`): S2A_OK takes the
 * body, S2A_ERROR ends the transfer (then `done` reports an error).
 * `on_data` gets the body as it arrives: S2A_OK when it took the bytes,
 * S2A_AGAIN when it cannot take them now (the transfer pauses, and the
 * same bytes come again after s2a_upstream_resume()), S2A_ERROR to end
 * the transfer. Both run inside libcurl: they must not start, cancel or
 * resume upstream calls, nor answer a request in a way that could
 * start one. `done` still runs once at the end, as for every call.
 */
typedef int (*s2a_upstream_head_pt)(const s2a_upstream_head_t *head, void *arg);
typedef int (*s2a_upstream_data_pt)(const char *data, size_t len, void *arg);

/* One part of a multipart/form-data body; `filename` NULL for a plain
 * field. The data is copied when the call starts. */
typedef struct s2a_upstream_part_s {
    const char *name;
    const char *filename;
    const char *type;
    const void *data;
    size_t len;
} s2a_upstream_part_t;

typedef struct s2a_upstream_req_s {
    const char *method; /* "GET", "POST", "DELETE", ... */
    const char *url;
    const char *bearer; /* Authorization: Bearer <bearer>, or NULL */
    const char *body;   /* request body or NULL */
    size_t body_len;
    const char *content_type;                      /* of the body */
    const char *headers[S2A_UPSTREAM_MAX_HEADERS]; /* "Name: value" */
    const char *proxy;                             /* proxy URL or NULL */
    long timeout_ms;     /* whole call; 0: the [upstream] timeout. The
                            connect and read timeouts of [upstream]
                            apply to every call. */
    size_t max_response; /* 0: 8 MiB */
    const s2a_upstream_part_t *parts; /* multipart body instead of `body` */
    int nparts;
    bool to_file;                 /* write a 2xx body to `out_fd`, not memory */
    int out_fd;                   /* borrowed; the caller closes it */
    bool follow_redirects;        /* media downloads: up to 5 redirects */
    bool public_only;             /* refuse loopback, private and link-local
                              peers (URLs clients supply) before
                              connecting, redirects included, on a
                              connection of its own; not checked through
                              a proxy, which resolves for us */
    s2a_upstream_head_pt on_head; /* streamed answers: see above; */
    s2a_upstream_data_pt on_data; /* no body is kept, nor decoded */
} s2a_upstream_req_t;

/* True when the numeric address `ip` is loopback, private, link-local,
 * unspecified or multicast (IPv4, IPv6, IPv4-mapped IPv6). */
bool s2a_upstream_ip_private(const char *ip);

/* Creates the multi handle on `base`. Returns S2A_OK or S2A_ERROR. */
int s2a_upstream_init(struct event_base *base, long default_timeout_ms);

/* Cancels everything in flight (no callbacks) and frees the handle. */
void s2a_upstream_cleanup(void);

/*
 * Starts `req` (copied; the caller's strings may go away). Returns a call
 * id for s2a_upstream_cancel, or 0 when it could not start (then `done` is
 * not called).
 */
uint64_t s2a_upstream_start(const s2a_upstream_req_t *req,
                            s2a_upstream_done_pt done, void *arg);

/* Stops call `id`; its callback will not run. Unknown ids are ignored. */
void s2a_upstream_cancel(uint64_t id);

/*
 * Resumes streamed call `id` after its `on_data` answered S2A_AGAIN. The
 * held bytes may be handed to `on_data` before this returns. Must not be
 * called from inside an upstream callback. Unknown or running calls are
 * ignored.
 */
void s2a_upstream_resume(uint64_t id);

/* The whole-call timeout of result downloads (and of proxied media). */
#define S2A_UPSTREAM_MEDIA_TIMEOUT_MS 300000L

/* Calls in flight (tests and /readyz). */
int s2a_upstream_inflight(void);

#endif /* S2A_UPSTREAM_H */
