/*
 * stats.c: the shared-memory counters of /metrics (see stats.h) and the
 * pure helpers of the Prometheus text exposition format.
 *
 * Nothing here takes the table lock: counters are relaxed atomic adds,
 * a reader sums what it sees (a scrape racing an update may see a bucket
 * before its count, never a torn value).
 */
#include "common/stats.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#define RELAXED   memory_order_relaxed
#define ADD(p, v) atomic_fetch_add_explicit((p), (v), RELAXED)

const double s2a_stats_lat_bounds[S2A_STATS_LAT_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
};
const double s2a_stats_job_bounds[S2A_STATS_JOB_BUCKETS] = {
    1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600
};

static const char *const route_names[S2A_RC_COUNT] = {
    [S2A_RC_MODELS] = "models",     [S2A_RC_CHAT] = "chat",
    [S2A_RC_IMAGES] = "images",     [S2A_RC_ADMIN] = "admin",
    [S2A_RC_TOKENS] = "tokens",     [S2A_RC_VIDEOS] = "videos",
    [S2A_RC_DATA] = "data",         [S2A_RC_KEYS] = "keys",
    [S2A_RC_WEBHOOKS] = "webhooks", [S2A_RC_CHARACTERS] = "characters",
    [S2A_RC_HEALTH] = "health",     [S2A_RC_METRICS] = "metrics",
    [S2A_RC_MEDIA] = "media",       [S2A_RC_STATIC] = "static",
    [S2A_RC_UNKNOWN] = "unknown",   [S2A_RC_PREFLIGHT] = "preflight",
    [S2A_RC_PROTOCOL] = "protocol", [S2A_RC_TEST] = "test",
    [S2A_RC_OTHER] = "other",
};

/* Path prefixes of the endpoint classes, tried in order. */
static const struct {
    const char *prefix;
    s2a_endpoint_t ep;
} endpoint_paths[] = {
    { "/nf/create", S2A_EP_NF_CREATE },
    { "/nf/pending", S2A_EP_NF_PENDING },
    { "/video_gen", S2A_EP_VIDEO_GEN },
    { "/project_y/profile/drafts", S2A_EP_DRAFTS },
    { "/uploads", S2A_EP_UPLOAD },
    { "/v2/recent_tasks", S2A_EP_RECENT_TASKS },
    { "/me", S2A_EP_ME },
};

static const char *const endpoint_names[S2A_EP_COUNT] = {
    [S2A_EP_NF_CREATE] = "nf/create",
    [S2A_EP_NF_PENDING] = "nf/pending",
    [S2A_EP_VIDEO_GEN] = "video_gen",
    [S2A_EP_DRAFTS] = "drafts",
    [S2A_EP_UPLOAD] = "upload",
    [S2A_EP_RECENT_TASKS] = "recent_tasks",
    [S2A_EP_ME] = "me",
    [S2A_EP_OTHER] = "other",
};

static const char *const sclass_names[S2A_STATS_SCLASSES] = { "error", "1xx",
                                                              "2xx",   "3xx",
                                                              "4xx",   "5xx" };

static const char *const job_state_names[S2A_JS_COUNT] = {
    [S2A_JS_SUCCEEDED] = "succeeded",
    [S2A_JS_FAILED] = "failed",
    [S2A_JS_CANCELLED] = "cancelled",
};

/* Sets the gauges that start unknown. The region is zeroed already. */
void
s2a_stats_init(s2a_stats_t *st)
{
    atomic_store(&st->cache_files, -1);
    atomic_store(&st->cache_bytes, -1);
}

/* The class of route-class `name`; S2A_RC_OTHER for NULL or unknown. */
s2a_route_class_t
s2a_stats_route_class(const char *name)
{
    int i;

    if (name == NULL) {
        return S2A_RC_OTHER;
    }
    for (i = 0; i < S2A_RC_COUNT; i++) {
        if (strcmp(route_names[i], name) == 0) {
            return (s2a_route_class_t) i;
        }
    }
    return S2A_RC_OTHER;
}

/* The label of route class `rc`. */
const char *
s2a_stats_route_name(s2a_route_class_t rc)
{
    return rc < S2A_RC_COUNT ? route_names[rc] : "other";
}

/*
 * The endpoint class of `url`: the part after the Sora base URL `base`
 * matched against the prefixes above at a segment boundary; a URL
 * outside `base` (auth endpoints, media downloads) is "other".
 */
s2a_endpoint_t
s2a_stats_endpoint(const char *base, const char *url)
{
    const char *p;
    size_t i, n;

    if (url == NULL || base == NULL) {
        return S2A_EP_OTHER;
    }
    n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    if (n == 0 || strncmp(url, base, n) != 0) {
        return S2A_EP_OTHER;
    }
    p = url + n;
    for (i = 0; i < S2A_NELEMS(endpoint_paths); i++) {
        n = strlen(endpoint_paths[i].prefix);
        if (strncmp(p, endpoint_paths[i].prefix, n) == 0
            && (p[n] == '\0' || p[n] == '/' || p[n] == '?'))
        {
            return endpoint_paths[i].ep;
        }
    }
    return S2A_EP_OTHER;
}

/* The label of endpoint class `ep`. */
const char *
s2a_stats_endpoint_name(s2a_endpoint_t ep)
{
    return ep < S2A_EP_COUNT ? endpoint_names[ep] : "other";
}

/* 0 for no answer (or nonsense), else the hundreds digit. */
int
s2a_stats_status_class(long status)
{
    if (status < 100 || status > 599) {
        return 0;
    }
    return (int) (status / 100);
}

/* The label of status class `sc`. */
const char *
s2a_stats_status_class_name(int sc)
{
    return sc >= 0 && sc < S2A_STATS_SCLASSES ? sclass_names[sc] : "error";
}

/* See stats.h: the first bound not below `value`, or n (+Inf). */
int
s2a_stats_bucket(const double *bounds, int n, double value)
{
    int i;

    for (i = 0; i < n; i++) {
        if (value <= bounds[i]) {
            return i;
        }
    }
    return n;
}

static void
hist_add(s2a_stats_hist_t *h, int64_t us)
{
    uint64_t v = us > 0 ? (uint64_t) us : 0;

    ADD(&h->buckets[s2a_stats_bucket(s2a_stats_lat_bounds,
                                     S2A_STATS_LAT_BUCKETS, (double) v / 1e6)],
        1);
    ADD(&h->sum, v);
    ADD(&h->count, 1);
}

/* Counts one answered request; a status outside 100..599 counts as 599. */
void
s2a_stats_http(s2a_stats_t *st, s2a_route_class_t rc, int status, int64_t us)
{
    int si;

    if (rc >= S2A_RC_COUNT) {
        rc = S2A_RC_OTHER;
    }
    si = status - S2A_STATS_STATUS_MIN;
    if (si < 0 || si >= S2A_STATS_STATUS_N) {
        si = S2A_STATS_STATUS_N - 1;
    }
    ADD(&st->http[rc][si], 1);
    hist_add(&st->http_lat[rc], us);
}

/* Counts one upstream call, and in row `row`'s window its minute. */
void
s2a_stats_upstream(s2a_stats_t *st, int row, s2a_endpoint_t ep, long status,
                   int64_t us, int64_t now)
{
    s2a_stats_minute_t *m;
    int64_t minute = now / 60;
    int sc = s2a_stats_status_class(status);

    if (ep >= S2A_EP_COUNT) {
        ep = S2A_EP_OTHER;
    }
    ADD(&st->upstream[ep][sc], 1);
    hist_add(&st->upstream_lat[ep], us);
    if (row < 0 || row >= S2A_STATS_ROWS) {
        return;
    }
    /* Only this row's process writes it: resetting a stale slot cannot
     * race another writer. */
    m = &st->rows[row].window[ep][minute % (S2A_STATS_WINDOW_MIN + 1)];
    if (atomic_load_explicit(&m->minute, RELAXED) != minute) {
        atomic_store_explicit(&m->calls, 0, RELAXED);
        atomic_store_explicit(&m->failures, 0, RELAXED);
        atomic_store_explicit(&m->latency_ms, 0, RELAXED);
        atomic_store_explicit(&m->minute, minute, memory_order_release);
    }
    ADD(&m->calls, 1);
    if (sc == 0 || sc == 5 || status == 429) {
        ADD(&m->failures, 1);
    }
    ADD(&m->latency_ms, (uint64_t) (us > 0 ? us / 1000 : 0));
}

/* Row `row` of `pid` for a gauge of `kind`, claimed for `pid` first when
 * another (dead) process had it; NULL when out of range. */
static s2a_stats_row_t *
own_row(s2a_stats_t *st, int row, int32_t pid, int kind)
{
    s2a_stats_row_t *r;
    int k;

    if (row < 0 || row >= S2A_STATS_ROWS || kind < 0 || kind >= S2A_STATS_KINDS)
    {
        return NULL;
    }
    r = &st->rows[row];
    if (atomic_load_explicit(&r->pid, RELAXED) != pid) {
        for (k = 0; k < S2A_STATS_KINDS; k++) {
            atomic_store_explicit(&r->running[k], 0, RELAXED);
            atomic_store_explicit(&r->queued[k], 0, RELAXED);
        }
        atomic_store_explicit(&r->pid, pid, RELAXED);
    }
    return r;
}

/* Moves row `row`'s running count of `kind` by `delta`. */
void
s2a_stats_job_running(s2a_stats_t *st, int row, int32_t pid, int kind,
                      int delta)
{
    s2a_stats_row_t *r = own_row(st, row, pid, kind);

    if (r != NULL) {
        ADD(&r->running[kind], delta);
    }
}

/* Moves row `row`'s count of `kind` jobs waiting for a token by `delta`. */
void
s2a_stats_job_queued(s2a_stats_t *st, int row, int32_t pid, int kind, int delta)
{
    s2a_stats_row_t *r = own_row(st, row, pid, kind);

    if (r != NULL) {
        ADD(&r->queued[kind], delta);
    }
}

/* Counts a job's end in its final state with its duration. */
void
s2a_stats_job_end(s2a_stats_t *st, int kind, s2a_job_state_t state,
                  int64_t duration_ms)
{
    s2a_stats_jhist_t *h;
    uint64_t v = duration_ms > 0 ? (uint64_t) duration_ms : 0;

    if (kind < 0 || kind >= S2A_STATS_KINDS || state >= S2A_JS_COUNT) {
        return;
    }
    ADD(&st->jobs[kind][state], 1);
    h = &st->job_dur[kind];
    ADD(&h->buckets[s2a_stats_bucket(s2a_stats_job_bounds,
                                     S2A_STATS_JOB_BUCKETS, (double) v / 1e3)],
        1);
    ADD(&h->sum, v);
    ADD(&h->count, 1);
}

/* The job state of task status `state`. */
s2a_job_state_t
s2a_stats_job_state(const char *state)
{
    int i;

    for (i = 0; state != NULL && i < S2A_JS_COUNT; i++) {
        if (strcmp(job_state_names[i], state) == 0) {
            return (s2a_job_state_t) i;
        }
    }
    return S2A_JS_FAILED;
}

/* The label of job state `js`. */
const char *
s2a_stats_job_state_name(s2a_job_state_t js)
{
    return js < S2A_JS_COUNT ? job_state_names[js] : "failed";
}

/* Sums the slots of the last S2A_STATS_WINDOW_MIN minutes (the current
 * one included) of endpoint `ep` over every row. */
void
s2a_stats_window(s2a_stats_t *st, s2a_endpoint_t ep, int64_t now,
                 s2a_stats_health_t *out)
{
    int64_t minute = now / 60, m;
    int row, i;

    memset(out, 0, sizeof(*out));
    if (ep >= S2A_EP_COUNT) {
        return;
    }
    for (row = 0; row < S2A_STATS_ROWS; row++) {
        for (i = 0; i <= S2A_STATS_WINDOW_MIN; i++) {
            const s2a_stats_minute_t *s = &st->rows[row].window[ep][i];

            m = atomic_load_explicit(&s->minute, memory_order_acquire);
            if (m == 0 || m > minute || m <= minute - S2A_STATS_WINDOW_MIN) {
                continue;
            }
            out->calls += atomic_load_explicit(&s->calls, RELAXED);
            out->failures += atomic_load_explicit(&s->failures, RELAXED);
            out->latency_ms += atomic_load_explicit(&s->latency_ms, RELAXED);
        }
    }
}

/* Counts one media cache hit of `kind`. */
void
s2a_stats_cache_hit(s2a_stats_t *st, s2a_cache_hit_t kind)
{
    if (kind < S2A_CH_COUNT) {
        ADD(&st->cache_hits[kind], 1);
    }
}

/* Counts one download into the media cache begun. */
void
s2a_stats_cache_download(s2a_stats_t *st)
{
    ADD(&st->cache_downloads, 1);
}

/*
 * Clears row `row`'s gauges after its process was reaped. Nothing else
 * writes the row then: its writer is dead, and the master gives the row
 * to a new worker only after this (s2a_shm_t.workers is cleared after).
 */
void
s2a_stats_row_gone(s2a_stats_t *st, int row)
{
    s2a_stats_row_t *r;
    int k;

    if (row < 0 || row >= S2A_STATS_ROWS) {
        return;
    }
    r = &st->rows[row];
    for (k = 0; k < S2A_STATS_KINDS; k++) {
        atomic_store_explicit(&r->running[k], 0, RELAXED);
        atomic_store_explicit(&r->queued[k], 0, RELAXED);
    }
    atomic_store_explicit(&r->pid, 0, RELAXED);
}

/* A respawned worker (after an unplanned exit) reported ready. Release:
 * a reader that sees the count sees the worker's ready state too. */
void
s2a_stats_worker_restarted(s2a_stats_t *st)
{
    atomic_fetch_add_explicit(&st->worker_restarts, 1, memory_order_release);
}

/* A reload (SIGHUP) was carried out. */
void
s2a_stats_reloaded(s2a_stats_t *st)
{
    ADD(&st->reloads, 1);
}

/* The master's record queue length now. */
void
s2a_stats_set_queue(s2a_stats_t *st, int64_t queued)
{
    atomic_store_explicit(&st->record_queue, queued, RELAXED);
}

/* The media cache as the last sweep found it. */
void
s2a_stats_set_cache(s2a_stats_t *st, int64_t files, int64_t bytes)
{
    atomic_store_explicit(&st->cache_files, files, RELAXED);
    atomic_store_explicit(&st->cache_bytes, bytes, RELAXED);
}

/* See stats.h. */
size_t
s2a_prom_escape(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    const char *rep;
    char one[2];

    for (; *in != '\0'; in++) {
        switch (*in) {
        case '\\': rep = "\\\\"; break;
        case '"': rep = "\\\""; break;
        case '\n': rep = "\\n"; break;
        default:
            one[0] = *in;
            one[1] = '\0';
            rep = one;
        }
        for (; *rep != '\0'; rep++, n++) {
            if (outlen > 0 && n < outlen - 1) {
                out[n] = *rep;
            }
        }
    }
    if (outlen > 0) {
        out[n < outlen ? n : outlen - 1] = '\0';
    }
    return n;
}

/* A bucket bound as Prometheus clients print it ("0.005", "1", "+Inf"). */
static void
le_text(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%.15g", v);
}

/* See stats.h. */
void
s2a_prom_histogram(struct evbuffer *out, const char *name, const char *labels,
                   const double *bounds, int n, const uint64_t *counts,
                   uint64_t sum, double scale)
{
    const char *sep = labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    char le[32];
    int i;

    for (i = 0; i <= n; i++) {
        cum += counts[i];
        if (i < n) {
            le_text(bounds[i], le, sizeof(le));
        } else {
            snprintf(le, sizeof(le), "+Inf");
        }
        evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name,
                            labels, sep, le, (unsigned long long) cum);
    }
    if (labels[0] != '\0') {
        evbuffer_add_printf(out, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name,
                            labels, (double) sum * scale, name, labels,
                            (unsigned long long) cum);
    } else {
        evbuffer_add_printf(out, "%s_sum %.9g\n%s_count %llu\n", name,
                            (double) sum * scale, name,
                            (unsigned long long) cum);
    }
}
