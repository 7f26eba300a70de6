/*
 * http.h: the worker's HTTP/1.1 server on libevent bufferevents.
 *
 * Route handlers see an s2a_req_t and answer through s2a_http_* helpers;
 * nothing outside http.c knows about connections. The server owns request
 * parsing and its limits (header size and deadline, body size, idle
 * time), keep-alive, request ids, the access log, in-flight accounting for
 * draining and the OpenAI-style error envelope, which every error it
 * produces itself uses too.
 */
#ifndef S2A_HTTP_H
#define S2A_HTTP_H

#include "common/conf.h"

#include <event2/event.h>
#include <jansson.h>

typedef struct s2a_http_s s2a_http_t;
typedef struct s2a_req_s s2a_req_t;

typedef enum {
    S2A_M_GET = 0,
    S2A_M_HEAD,
    S2A_M_POST,
    S2A_M_PUT,
    S2A_M_DELETE,
    S2A_M_PATCH,
    S2A_M_OPTIONS,
    S2A_M_OTHER
} s2a_method_t;

/* The single entry point the facade calls for every request. */
typedef void (*s2a_http_handler_pt)(s2a_req_t *req, void *arg);

/* Called when a request that was answered later loses its client. */
typedef void (*s2a_req_gone_pt)(s2a_req_t *req, void *arg);

struct s2a_req_s {
    s2a_method_t method;
    const char *method_name;
    const char *path;     /* percent-decoded, no query */
    const char *raw_path; /* as sent, without the query */
    const char *query;    /* raw query string or NULL */
    char rid[24];         /* request id, also sent as X-Request-Id */
    const char *route;    /* route class for usage counters */
    /* Path parameters of the matched route (routes.c): the {id} segment
     * (a positive integer; 0 when the route has none) and what follows
     * the prefix of a prefix route ("" when nothing or none). */
    int64_t path_id;
    const char *path_tail;
    const void *route_row; /* routes.c's row, chosen at admission */
    /* The id of the API key that authenticated the request (routes.c),
     * 0 without one: the owner of the jobs it starts and the only one
     * whose jobs it sees. */
    int64_t owner;
    /* The named API key that authenticated the request (apikeys.c):
     * its id (0: none; the job owner) and row in the shared key table,
     * the model a generation named (index + 1; 0: none), and the key's
     * model allow-list as the check read it (GET /v1/models). */
    int64_t key_id;
    int32_t key_slot;
    int32_t key_model;
    uint32_t key_models; /* its model mask then (keytab.h; 0: every one) */
    int status;
    bool answered;
    bool gone; /* the client went away before the answer */
    s2a_req_gone_pt on_gone;
    void *gone_arg;
    int version_minor; /* HTTP/1.x */
    const char *peer;  /* client address as text */
    /* private to http.c */
    void *conn;
    int64_t start_us;
    size_t bytes_out;
    bool streaming;
};

/*
 * Creates the HTTP server on `base` for the inherited listening `fds`,
 * with the limits of `conf`. Returns NULL on failure.
 */
s2a_http_t *s2a_http_create(struct event_base *base, const s2a_conf_t *conf,
                            const int *fds, int nfds, int slot,
                            s2a_http_handler_pt handler, void *arg);
void s2a_http_destroy(s2a_http_t *http);

/*
 * Called once a request's head is parsed, before any of its body is
 * read (the body is not available yet): it may answer the request itself
 * (a missing credential, an unknown route) and return S2A_DECLINED, and
 * the body is then never read and the connection closes; or it sets
 * *body_limit (preset to max_body_size) to the largest body this request
 * may send and returns S2A_OK. It must answer synchronously.
 */
typedef int (*s2a_http_admit_pt)(s2a_req_t *req, void *arg,
                                 int64_t *body_limit);
void s2a_http_set_admit_cb(s2a_http_t *http, s2a_http_admit_pt cb, void *arg);

/* Called after every answer (usage counters). */
typedef void (*s2a_http_done_pt)(s2a_req_t *req, void *arg);
void s2a_http_set_done_cb(s2a_http_t *http, s2a_http_done_pt cb, void *arg);

/* Stops accepting new connections (the sockets are closed in this process). */
void s2a_http_stop_accepting(s2a_http_t *http);

/* Marks the server draining: every answer carries "Connection: close". */
void s2a_http_set_draining(s2a_http_t *http);

/* Closes keep-alive connections idle for at least `min_idle_ms`;
 * returns how many. */
int s2a_http_close_idle(s2a_http_t *http, int64_t min_idle_ms);

/* Open client connections. */
int s2a_http_connections(const s2a_http_t *http);

/* Requests received and not yet answered. */
int s2a_http_inflight(const s2a_http_t *http);

/* Monotonic ms of the last request start or finish. */
int64_t s2a_http_last_activity(const s2a_http_t *http);

/* Opens or reopens the access log ("off" disables). */
int s2a_http_open_access_log(s2a_http_t *http, const char *path);
void s2a_http_flush_access_log(s2a_http_t *http);

/* Request input. */
const char *s2a_req_header(s2a_req_t *req, const char *name);
/* Body bytes (contiguous; owned by the request). */
const unsigned char *s2a_req_body(s2a_req_t *req, size_t *len);
/* One query parameter (decoded, caller frees) or NULL. */
char *s2a_req_query_param(s2a_req_t *req, const char *name);

/* Response. Every helper answers the request exactly once. */
void s2a_http_add_header(s2a_req_t *req, const char *name, const char *value);
void s2a_http_reply(s2a_req_t *req, int status, const char *content_type,
                    const void *body, size_t len);
/*
 * Streaming answer (SSE): sends the status line and headers with chunked
 * transfer encoding; then any number of _write calls and one _end. A
 * request whose client left has `gone` set and its on_gone called; after
 * that the request must not be touched.
 */
void s2a_http_stream_start(s2a_req_t *req, int status,
                           const char *content_type);
int s2a_http_stream_write(s2a_req_t *req, const void *data, size_t len);
void s2a_http_stream_end(s2a_req_t *req);

/*
 * Relayed answer (a body produced elsewhere, e.g. an upstream download):
 * with `length` >= 0 the head carries Content-Length and the body goes
 * through s2a_http_stream_write without chunk framing (for HEAD only the
 * head is sent and writes are dropped); with -1 it is a chunked stream
 * as above. Ended by s2a_http_stream_end or s2a_http_stream_abort.
 */
void s2a_http_relay_start(s2a_req_t *req, int status, const char *content_type,
                          int64_t length);

/* Bytes of the answer queued and not yet handed to the kernel. */
size_t s2a_http_pending(s2a_req_t *req);

/*
 * While a streaming answer is in progress, calls `cb` each time its
 * queued bytes fall to `low` or fewer (the producer's back-pressure);
 * NULL stops it. Cleared by _end and _abort.
 */
typedef void (*s2a_http_drain_pt)(s2a_req_t *req, void *arg);
void s2a_http_on_drain(s2a_req_t *req, size_t low, s2a_http_drain_pt cb,
                       void *arg);

/*
 * Ends a streaming answer that cannot be completed: the bytes queued are
 * sent, then the connection closes, so that the client sees the body
 * short (of its Content-Length, or of the last chunk). on_gone is not
 * called; the request must not be touched afterwards.
 */
void s2a_http_stream_abort(s2a_req_t *req);

/* s2a_http_reply with a string literal body (length from sizeof). */
#define S2A_HTTP_REPLY_LIT(req, status, ctype, lit) \
    s2a_http_reply((req), (status), (ctype), (lit), sizeof(lit) - 1)

/*
 * Adds ETag and Last-Modified for a file of `size` bytes modified at
 * `mtime`, and tells whether the request's If-None-Match (or, without it,
 * If-Modified-Since) says the client's copy is current (answer 304).
 */
bool s2a_http_validators(s2a_req_t *req, int64_t size, int64_t mtime);

/* Answers with a file range via sendfile; takes over `fd`. */
void s2a_http_reply_file(s2a_req_t *req, int status, const char *content_type,
                         int fd, int64_t offset, int64_t length);
/* Serialises `body` (a borrowed reference) as the JSON answer. */
void s2a_http_reply_json(s2a_req_t *req, int status, const json_t *body);
/*
 * OpenAI-style error: {"error":{"message","type","param","code"}}.
 * `param` and `code` may be NULL (sent as null).
 */
void s2a_http_reply_error(s2a_req_t *req, int status, const char *type,
                          const char *code, const char *param, const char *fmt,
                          ...) __attribute__((format(printf, 6, 7)));

/* Admin-API error: {"detail": "..."} (the shape of the reference). */
void s2a_http_reply_detail(s2a_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Parses the body as a JSON object. Returns a new reference, or NULL
 * after answering 400 (as `detail` when `detail_errors`, else in the
 * OpenAI envelope).
 */
json_t *s2a_req_json_object(s2a_req_t *req, bool detail_errors);

#endif /* S2A_HTTP_H */
