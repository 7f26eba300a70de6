/*
 * proxy.h: relaying an upstream media file to a client as it downloads
 * (the content of a video that is not cached), with back-pressure: the
 * download pauses while the client is slow, so memory stays bounded per
 * download whatever the file's size.
 */
#ifndef S2A_PROXY_H
#define S2A_PROXY_H

#include "worker/http.h"

/* Bytes queued for a client above which the download pauses, and below
 * which it resumes. */
#define S2A_PROXY_HIGH_WATER (256u * 1024)
#define S2A_PROXY_LOW_WATER  (64u * 1024)

/*
 * Answers GET or HEAD `req` with the file at `url` (an upstream media
 * URL: no credentials, the result-download rules for proxies, redirects
 * and timeouts). The client's Range and If-Range go upstream; status
 * (200, 206), Content-Type (else `fallback_type`), Content-Length,
 * Content-Range, Accept-Ranges, ETag and Last-Modified come back. A
 * failure before the upstream's head is a 502 in the OpenAI envelope
 * (a 416 is relayed as 416); after it the connection is closed, short.
 * `what` names the file in messages ("video", "thumbnail").
 */
void s2a_proxy_serve(s2a_req_t *req, const char *url, const char *fallback_type,
                     const char *what);

/* Relays so far in this worker (tests and metrics). */
typedef struct s2a_proxy_stats_s {
    int active;          /* relays in progress */
    uint64_t started;    /* relays begun */
    uint64_t completed;  /* bodies sent whole */
    uint64_t short_ends; /* closed short: the upstream broke off */
    uint64_t failed;     /* answered with an error before any byte */
    uint64_t left;       /* the client went away */
    uint64_t pauses;     /* times a download waited for its client */
    size_t peak_queued;  /* most bytes queued for one client */
} s2a_proxy_stats_t;
void s2a_proxy_stats(s2a_proxy_stats_t *out);
/* Starts peak_queued again from 0. */
void s2a_proxy_stats_reset_peak(void);

#endif /* S2A_PROXY_H */
