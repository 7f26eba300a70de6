/*
 * stats.h: the counters behind GET /metrics, kept in shared memory so that
 * every worker answers with the same numbers.
 *
 * The area (s2a_stats_t) is embedded in the shm region. Cumulative
 * counters and histogram buckets are relaxed atomic adds, written by any
 * process without the table lock; gauges that belong to one process
 * (jobs running, the upstream health window) live in per-worker-row slots
 * that only the process owning that row writes. The master writes its own
 * few fields (worker restarts, reloads, the record queue, the cache).
 *
 * Also here: the pure helpers of the text exposition format (histogram
 * bucket choice, label escaping, histogram rendering), unit-tested.
 */
#ifndef S2A_STATS_H
#define S2A_STATS_H

#include "common/core.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Route classes: the names of the route table (routes.c) plus the classes
 * http.c and routes.c give requests no row serves. */
typedef enum {
    S2A_RC_MODELS = 0,
    S2A_RC_CHAT,
    S2A_RC_IMAGES,
    S2A_RC_ADMIN,
    S2A_RC_TOKENS,
    S2A_RC_VIDEOS,     /* the Videos API */
    S2A_RC_DATA,       /* the Sora data routes (data.c) */
    S2A_RC_KEYS,       /* /api/keys */
    S2A_RC_WEBHOOKS,   /* /api/webhooks */
    S2A_RC_CHARACTERS, /* /api/characters */
    S2A_RC_HEALTH,
    S2A_RC_METRICS,
    S2A_RC_MEDIA,
    S2A_RC_STATIC,
    S2A_RC_UNKNOWN,
    S2A_RC_PREFLIGHT,
    S2A_RC_PROTOCOL,
    S2A_RC_TEST,
    S2A_RC_OTHER, /* anything else, including "other" */
    S2A_RC_COUNT
} s2a_route_class_t;

/* Upstream endpoint classes, by the path of the call. */
typedef enum {
    S2A_EP_NF_CREATE = 0,
    S2A_EP_NF_PENDING,
    S2A_EP_VIDEO_GEN, /* image generation submits */
    S2A_EP_DRAFTS,
    S2A_EP_UPLOAD,
    S2A_EP_RECENT_TASKS,
    S2A_EP_ME,
    S2A_EP_OTHER,
    S2A_EP_COUNT
} s2a_endpoint_t;

/* Media cache hits: a result download avoided because the file is
 * cached already (mediacache.c), a cached file sent (media.c). */
typedef enum {
    S2A_CH_REUSE = 0,
    S2A_CH_SERVED,
    S2A_CH_COUNT
} s2a_cache_hit_t;

/* Upstream status classes: no answer (transport error), 1xx .. 5xx. */
#define S2A_STATS_SCLASSES 6

/* Final job states. */
typedef enum {
    S2A_JS_SUCCEEDED = 0,
    S2A_JS_FAILED,
    S2A_JS_CANCELLED,
    S2A_JS_COUNT
} s2a_job_state_t;

#define S2A_STATS_KINDS       2   /* image, video */
#define S2A_STATS_STATUS_MIN  100 /* HTTP status codes counted exactly */
#define S2A_STATS_STATUS_N    500 /* 100..599; others count as 599 */
#define S2A_STATS_LAT_BUCKETS 14  /* request and upstream latency */
#define S2A_STATS_JOB_BUCKETS 10  /* job duration */
#define S2A_STATS_ROWS        128 /* = S2A_SHM_WORKERS */
#define S2A_STATS_WINDOW_MIN  5   /* the health window, in minutes */

/* Upper bounds (seconds) of the finite buckets; +Inf is implicit. */
extern const double s2a_stats_lat_bounds[S2A_STATS_LAT_BUCKETS];
extern const double s2a_stats_job_bounds[S2A_STATS_JOB_BUCKETS];

/* A histogram: per-bucket counts (not cumulative; the last is +Inf), the
 * sum in microseconds or milliseconds (see the user) and the count. */
typedef struct s2a_stats_hist_s {
    _Atomic uint64_t buckets[S2A_STATS_LAT_BUCKETS + 1];
    _Atomic uint64_t sum;
    _Atomic uint64_t count;
} s2a_stats_hist_t;

typedef struct s2a_stats_jhist_s {
    _Atomic uint64_t buckets[S2A_STATS_JOB_BUCKETS + 1];
    _Atomic uint64_t sum; /* milliseconds */
    _Atomic uint64_t count;
} s2a_stats_jhist_t;

/* One minute of upstream calls of one endpoint class, in one worker row. */
typedef struct s2a_stats_minute_s {
    _Atomic int64_t minute; /* unix minute this slot holds */
    _Atomic uint64_t calls;
    _Atomic uint64_t failures; /* no answer, 429 or 5xx */
    _Atomic uint64_t latency_ms;
} s2a_stats_minute_t;

/* What one worker row owns (written by the process in that row only,
 * and cleared by the master once that process is reaped). */
typedef struct s2a_stats_row_s {
    _Atomic int32_t pid; /* the writer; its gauges count for it only */
    int32_t _pad;
    _Atomic int64_t running[S2A_STATS_KINDS]; /* jobs, waiting ones too */
    _Atomic int64_t queued[S2A_STATS_KINDS];  /* jobs in the token wait */
    s2a_stats_minute_t window[S2A_EP_COUNT][S2A_STATS_WINDOW_MIN + 1];
} s2a_stats_row_t;

typedef struct s2a_stats_s {
    /* HTTP: requests by route class and status, latency (us). */
    _Atomic uint64_t http[S2A_RC_COUNT][S2A_STATS_STATUS_N];
    s2a_stats_hist_t http_lat[S2A_RC_COUNT];
    /* Jobs by kind and final state; duration (ms) by kind. */
    _Atomic uint64_t jobs[S2A_STATS_KINDS][S2A_JS_COUNT];
    s2a_stats_jhist_t job_dur[S2A_STATS_KINDS];
    /* Upstream calls by endpoint and status class; latency (us). */
    _Atomic uint64_t upstream[S2A_EP_COUNT][S2A_STATS_SCLASSES];
    s2a_stats_hist_t upstream_lat[S2A_EP_COUNT];
    /* Media cache hits by kind, and downloads into the cache begun. */
    _Atomic uint64_t cache_hits[S2A_CH_COUNT];
    _Atomic uint64_t cache_downloads;
    /* Written by the master. */
    _Atomic uint64_t worker_restarts; /* respawned workers that came up */
    _Atomic uint64_t reloads;         /* SIGHUP reloads done */
    _Atomic int64_t record_queue;     /* ctlserver's queued records */
    _Atomic int64_t cache_files;      /* -1 until the first sweep */
    _Atomic int64_t cache_bytes;
    s2a_stats_row_t rows[S2A_STATS_ROWS];
} s2a_stats_t;

/* Sets the gauges that start unknown; called once by s2a_shm_create. */
void s2a_stats_init(s2a_stats_t *st);

/* The class of a route-class name (S2A_RC_OTHER when unknown), and the
 * name of a class. */
s2a_route_class_t s2a_stats_route_class(const char *name);
const char *s2a_stats_route_name(s2a_route_class_t rc);

/* The endpoint class of an upstream URL (`base`: the Sora base URL; the
 * query is ignored), and the name of a class. */
s2a_endpoint_t s2a_stats_endpoint(const char *base, const char *url);
const char *s2a_stats_endpoint_name(s2a_endpoint_t ep);

/* Status class index of an HTTP status (0: no answer, 1..5: 1xx..5xx)
 * and its label ("error", "1xx", ...). */
int s2a_stats_status_class(long status);
const char *s2a_stats_status_class_name(int sc);

/* The bucket `value` (in the bounds' unit) falls in: the first bound
 * >= value, or n for +Inf. */
int s2a_stats_bucket(const double *bounds, int n, double value);

/* Records one answered request: route class, HTTP status, microseconds. */
void s2a_stats_http(s2a_stats_t *st, s2a_route_class_t rc, int status,
                    int64_t us);

/* Records one upstream call ended with `status` (0: no answer) after `us`
 * microseconds, by the process in worker row `row` (-1: no window) at
 * unix second `now`. */
void s2a_stats_upstream(s2a_stats_t *st, int row, s2a_endpoint_t ep,
                        long status, int64_t us, int64_t now);

/* A job of `kind` started / went away (running gauge of row `row`, owned
 * by `pid`); entered / left the token wait queue (queued gauge); a job's
 * final state and duration. */
void s2a_stats_job_running(s2a_stats_t *st, int row, int32_t pid, int kind,
                           int delta);
void s2a_stats_job_queued(s2a_stats_t *st, int row, int32_t pid, int kind,
                          int delta);
void s2a_stats_job_end(s2a_stats_t *st, int kind, s2a_job_state_t state,
                       int64_t duration_ms);

/* The job state of a task status string ("succeeded", "failed",
 * "cancelled"); S2A_JS_FAILED for anything else. */
s2a_job_state_t s2a_stats_job_state(const char *state);
const char *s2a_stats_job_state_name(s2a_job_state_t js);

/* Upstream health of one endpoint class over the last
 * S2A_STATS_WINDOW_MIN minutes before `now`, summed over every row. */
typedef struct s2a_stats_health_s {
    uint64_t calls;
    uint64_t failures;
    uint64_t latency_ms;
} s2a_stats_health_t;
void s2a_stats_window(s2a_stats_t *st, s2a_endpoint_t ep, int64_t now,
                      s2a_stats_health_t *out);

/* A media cache hit of `kind`; a download into the cache begun. */
void s2a_stats_cache_hit(s2a_stats_t *st, s2a_cache_hit_t kind);
void s2a_stats_cache_download(s2a_stats_t *st);

/*
 * Master side: counters and gauges it publishes. `_row_gone` clears the
 * gauges of row `row` once its process was reaped (its jobs are closed
 * or handed over by the master; they count no more); a respawned worker
 * is counted by `_worker_restarted` once it reported ready.
 */
void s2a_stats_row_gone(s2a_stats_t *st, int row);
void s2a_stats_worker_restarted(s2a_stats_t *st);
void s2a_stats_reloaded(s2a_stats_t *st);
void s2a_stats_set_queue(s2a_stats_t *st, int64_t queued);
void s2a_stats_set_cache(s2a_stats_t *st, int64_t files, int64_t bytes);

/*
 * Text exposition helpers. `_escape` writes `in` as a label value
 * (backslash, double quote and newline escaped) into `out` (`outlen`
 * bytes, NUL-terminated, truncated when short); returns the length it
 * needed. `_histogram` appends the _bucket/_sum/_count lines of one
 * histogram with labels `labels` (already escaped, "" for none): `counts`
 * holds `n` finite buckets plus +Inf, not cumulative; `sum` is in units
 * of `scale` (the sum printed is sum * scale seconds).
 */
size_t s2a_prom_escape(const char *in, char *out, size_t outlen);
void s2a_prom_histogram(struct evbuffer *out, const char *name,
                        const char *labels, const double *bounds, int n,
                        const uint64_t *counts, uint64_t sum, double scale);

#endif /* S2A_STATS_H */
