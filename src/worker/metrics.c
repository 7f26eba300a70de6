/*
 * metrics.c: GET /metrics in the Prometheus text exposition format
 * (0.0.4), its access rule, /readyz's upstream health, and the worker
 * hooks (requests, upstream calls, jobs) that feed the shared counters
 * of common/stats.h. Every worker renders the same numbers: counters
 * live in shm; only the token table and the lock statistics need the
 * table lock, taken once per scrape to copy them out.
 *
 * Access: a peer in [metrics] allow reads without a credential; anyone
 * else sends "Authorization: Bearer <metrics_token or admin session>".
 * No header is 401, a wrong one 403.
 */
#include "worker/metrics.h"
#include "common/crypto.h"
#include "common/jobtab.h"
#include "common/session.h"
#include "common/util.h"
#include "worker/apikeys.h"
#include "worker/context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

typedef struct tok_copy_s {
    int64_t id;
    uint8_t state;
    int32_t inflight[S2A_KIND_COUNT];
} tok_copy_t;

static const char *const kind_names[S2A_STATS_KINDS] = { "image", "video" };
static const char *const token_states[] = { "free",    "active",  "disabled",
                                            "invalid", "expired", "cooling" };
static const char *const worker_states[] = { "empty", "starting", "ready",
                                             "draining" };

#define LOAD(p) atomic_load_explicit((p), memory_order_relaxed)

static s2a_stats_t *
stats(void)
{
    return s2a_worker.shm != NULL ? &s2a_worker.shm->stats : NULL;
}

/* Counts one answered request. */
void
s2a_metrics_request(const char *route, int status, int64_t us)
{
    if (stats() != NULL) {
        s2a_stats_http(stats(), s2a_stats_route_class(route), status, us);
    }
}

/* Counts one upstream call by its endpoint class. */
void
s2a_metrics_upstream(const char *url, long status, int64_t us)
{
    if (stats() == NULL || s2a_worker.args == NULL) {
        return;
    }
    s2a_stats_upstream(stats(), s2a_worker.args->shm_row,
                       s2a_stats_endpoint(s2a_worker.conf->base_url, url),
                       status, us, s2a_now());
}

/* A job came to exist: the running gauge of this worker's row. */
void
s2a_metrics_job_begin(int kind)
{
    if (stats() != NULL && s2a_worker.args != NULL) {
        s2a_stats_job_running(stats(), s2a_worker.args->shm_row,
                              (int32_t) getpid(), kind, 1);
    }
}

/* A job went away. */
void
s2a_metrics_job_gone(int kind)
{
    if (stats() != NULL && s2a_worker.args != NULL) {
        s2a_stats_job_running(stats(), s2a_worker.args->shm_row,
                              (int32_t) getpid(), kind, -1);
    }
}

/* A job entered (+1) or left (-1) the token wait queue. */
void
s2a_metrics_job_queued(int kind, int delta)
{
    if (stats() != NULL && s2a_worker.args != NULL) {
        s2a_stats_job_queued(stats(), s2a_worker.args->shm_row,
                             (int32_t) getpid(), kind, delta);
    }
}

/* A media cache hit of `kind`. */
void
s2a_metrics_cache_hit(s2a_cache_hit_t kind)
{
    if (stats() != NULL) {
        s2a_stats_cache_hit(stats(), kind);
    }
}

/* A download into the media cache begun. */
void
s2a_metrics_cache_download(void)
{
    if (stats() != NULL) {
        s2a_stats_cache_download(stats());
    }
}

/* A job ended in `state` after `duration_ms`. */
void
s2a_metrics_job_end(int kind, const char *state, int64_t duration_ms)
{
    if (stats() != NULL) {
        s2a_stats_job_end(stats(), kind, s2a_stats_job_state(state),
                          duration_ms);
    }
}

/* Whether `token` is a valid, unrevoked admin session. */
static bool
session_ok(const char *token)
{
    char nonce[S2A_SESSION_NONCE];
    int64_t expires, now = s2a_now();
    bool revoked = true;

    s2a_worker_refresh_settings();
    if (s2a_session_verify(s2a_worker.settings.session_secret, token,
                           s2a_worker.settings.session_epoch, now, nonce,
                           &expires)
        != S2A_OK)
    {
        return false;
    }
    if (s2a_shm_lock(s2a_worker.shm) == S2A_OK) {
        revoked = s2a_shm_revoked_has_locked(s2a_worker.shm, nonce, now);
        s2a_shm_unlock(s2a_worker.shm);
    }
    return !revoked;
}

/* See metrics.h. */
int
s2a_metrics_access(const char *peer, const char *auth)
{
    const char *want = s2a_worker.conf->metrics_token;
    uint8_t a[S2A_SHA256_LEN], b[S2A_SHA256_LEN];

    if (s2a_cidrs_has(&s2a_worker.conf->metrics_allow, peer)) {
        return 0;
    }
    if (auth == NULL || auth[0] == '\0') {
        return 401;
    }
    if (strncasecmp(auth, "Bearer ", 7) != 0) {
        return 403;
    }
    auth += 7;
    while (*auth == ' ') {
        auth++;
    }
    if (want[0] != '\0') {
        /* Fixed-size hashes: the time does not depend on where a wrong
         * token differs, nor on its length. */
        s2a_sha256(auth, strlen(auth), a);
        s2a_sha256(want, strlen(want), b);
        if (s2a_ct_equal(a, b, sizeof(a))) {
            return 0;
        }
    }
    return session_ok(auth) ? 0 : 403;
}

static void
family(struct evbuffer *out, const char *name, const char *type,
       const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static void
hist_copy(const _Atomic uint64_t *src, int n, uint64_t *dst)
{
    int i;

    for (i = 0; i <= n; i++) {
        dst[i] = LOAD(&src[i]);
    }
}

static void
render_http(struct evbuffer *out, s2a_stats_t *st)
{
    uint64_t counts[S2A_STATS_LAT_BUCKETS + 1], v;
    char labels[64];
    int rc, si;

    family(out, "sora2api_http_requests_total", "counter",
           "HTTP requests answered, by route class and status code.");
    for (rc = 0; rc < S2A_RC_COUNT; rc++) {
        for (si = 0; si < S2A_STATS_STATUS_N; si++) {
            v = LOAD(&st->http[rc][si]);
            if (v == 0) {
                continue;
            }
            evbuffer_add_printf(
                out,
                "sora2api_http_requests_total{route=\"%s\",code=\"%d\"} "
                "%llu\n",
                s2a_stats_route_name((s2a_route_class_t) rc),
                si + S2A_STATS_STATUS_MIN, (unsigned long long) v);
        }
    }
    family(out, "sora2api_http_request_duration_seconds", "histogram",
           "Time from a request's first byte to its answer, by route class.");
    for (rc = 0; rc < S2A_RC_COUNT; rc++) {
        if (LOAD(&st->http_lat[rc].count) == 0) {
            continue;
        }
        hist_copy(st->http_lat[rc].buckets, S2A_STATS_LAT_BUCKETS, counts);
        snprintf(labels, sizeof(labels), "route=\"%s\"",
                 s2a_stats_route_name((s2a_route_class_t) rc));
        s2a_prom_histogram(out, "sora2api_http_request_duration_seconds",
                           labels, s2a_stats_lat_bounds, S2A_STATS_LAT_BUCKETS,
                           counts, LOAD(&st->http_lat[rc].sum), 1e-6);
    }
}

static void
render_jobs(struct evbuffer *out, s2a_stats_t *st)
{
    uint64_t counts[S2A_STATS_JOB_BUCKETS + 1];
    int64_t running[S2A_STATS_KINDS] = { 0, 0 };
    int64_t queued[S2A_STATS_KINDS] = { 0, 0 };
    char labels[64];
    int k, js, row;

    family(out, "sora2api_jobs_total", "counter",
           "Generation jobs ended, by kind and final state.");
    for (k = 0; k < S2A_STATS_KINDS; k++) {
        for (js = 0; js < S2A_JS_COUNT; js++) {
            evbuffer_add_printf(
                out, "sora2api_jobs_total{kind=\"%s\",state=\"%s\"} %llu\n",
                kind_names[k], s2a_stats_job_state_name((s2a_job_state_t) js),
                (unsigned long long) LOAD(&st->jobs[k][js]));
        }
    }
    /* A row counts only while its writer is the live worker of that row
     * (the master clears a reaped worker's row; this covers the moment
     * before, and a row a new worker has not claimed yet). */
    for (row = 0; row < S2A_STATS_ROWS; row++) {
        int32_t pid = LOAD(&st->rows[row].pid);
        if (pid == 0 || pid != s2a_worker.shm->workers[row].pid) {
            continue;
        }
        for (k = 0; k < S2A_STATS_KINDS; k++) {
            running[k] += LOAD(&st->rows[row].running[k]);
            queued[k] += LOAD(&st->rows[row].queued[k]);
        }
    }
    family(out, "sora2api_jobs_running", "gauge",
           "Generation jobs in progress (waiting or running), by kind.");
    for (k = 0; k < S2A_STATS_KINDS; k++) {
        evbuffer_add_printf(out, "sora2api_jobs_running{kind=\"%s\"} %lld\n",
                            kind_names[k], (long long) running[k]);
    }
    family(out, "sora2api_jobs_queued", "gauge",
           "Generation jobs waiting for a token in the wait queue (counted "
           "in sora2api_jobs_running too), by kind.");
    for (k = 0; k < S2A_STATS_KINDS; k++) {
        evbuffer_add_printf(out, "sora2api_jobs_queued{kind=\"%s\"} %lld\n",
                            kind_names[k], (long long) queued[k]);
    }
    family(out, "sora2api_job_duration_seconds", "histogram",
           "Duration of ended generation jobs, by kind.");
    for (k = 0; k < S2A_STATS_KINDS; k++) {
        hist_copy(st->job_dur[k].buckets, S2A_STATS_JOB_BUCKETS, counts);
        snprintf(labels, sizeof(labels), "kind=\"%s\"", kind_names[k]);
        s2a_prom_histogram(out, "sora2api_job_duration_seconds", labels,
                           s2a_stats_job_bounds, S2A_STATS_JOB_BUCKETS, counts,
                           LOAD(&st->job_dur[k].sum), 1e-3);
    }
}

static void
render_upstream(struct evbuffer *out, s2a_stats_t *st)
{
    uint64_t counts[S2A_STATS_LAT_BUCKETS + 1], v;
    s2a_stats_health_t h[S2A_EP_COUNT];
    int64_t now = s2a_now();
    char labels[64];
    int ep, sc;

    family(out, "sora2api_upstream_calls_total", "counter",
           "Calls to the Sora upstream, by endpoint class and status class "
           "(error: no answer).");
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        for (sc = 0; sc < S2A_STATS_SCLASSES; sc++) {
            v = LOAD(&st->upstream[ep][sc]);
            if (v == 0) {
                continue;
            }
            evbuffer_add_printf(out,
                                "sora2api_upstream_calls_total{endpoint=\"%s\","
                                "status=\"%s\"} %llu\n",
                                s2a_stats_endpoint_name((s2a_endpoint_t) ep),
                                s2a_stats_status_class_name(sc),
                                (unsigned long long) v);
        }
    }
    family(out, "sora2api_upstream_call_duration_seconds", "histogram",
           "Duration of upstream calls, by endpoint class.");
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        if (LOAD(&st->upstream_lat[ep].count) == 0) {
            continue;
        }
        hist_copy(st->upstream_lat[ep].buckets, S2A_STATS_LAT_BUCKETS, counts);
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"",
                 s2a_stats_endpoint_name((s2a_endpoint_t) ep));
        s2a_prom_histogram(out, "sora2api_upstream_call_duration_seconds",
                           labels, s2a_stats_lat_bounds, S2A_STATS_LAT_BUCKETS,
                           counts, LOAD(&st->upstream_lat[ep].sum), 1e-6);
    }
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        s2a_stats_window(st, (s2a_endpoint_t) ep, now, &h[ep]);
    }
    family(out, "sora2api_upstream_recent_calls", "gauge",
           "Upstream calls in the last five minutes, by endpoint class.");
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        evbuffer_add_printf(
            out, "sora2api_upstream_recent_calls{endpoint=\"%s\"} %llu\n",
            s2a_stats_endpoint_name((s2a_endpoint_t) ep),
            (unsigned long long) h[ep].calls);
    }
    family(out, "sora2api_upstream_recent_failures", "gauge",
           "Upstream calls in the last five minutes without an answer or "
           "answered 429 or 5xx, by endpoint class.");
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        evbuffer_add_printf(
            out, "sora2api_upstream_recent_failures{endpoint=\"%s\"} %llu\n",
            s2a_stats_endpoint_name((s2a_endpoint_t) ep),
            (unsigned long long) h[ep].failures);
    }
    family(out, "sora2api_upstream_recent_latency_seconds", "gauge",
           "Mean upstream call duration in the last five minutes, by "
           "endpoint class (0 without calls).");
    for (ep = 0; ep < S2A_EP_COUNT; ep++) {
        evbuffer_add_printf(
            out,
            "sora2api_upstream_recent_latency_seconds{endpoint=\"%s\"} %.6f\n",
            s2a_stats_endpoint_name((s2a_endpoint_t) ep),
            h[ep].calls > 0
                ? (double) h[ep].latency_ms / (double) h[ep].calls / 1e3
                : 0.0);
    }
}

static void
render_master(struct evbuffer *out, s2a_stats_t *st)
{
    int counts[S2A_NELEMS(worker_states)] = { 0 };
    uint64_t restarts;
    size_t i;
    int row;

    /* Acquire before the worker states: a respawn counted here has its
     * worker's ready state visible below. */
    restarts = atomic_load_explicit(&st->worker_restarts, memory_order_acquire);
    for (row = 0; row < S2A_SHM_WORKERS; row++) {
        const s2a_shm_worker_t *w = &s2a_worker.shm->workers[row];
        if (w->pid != 0 && w->state < S2A_NELEMS(worker_states)) {
            counts[w->state]++;
        }
    }
    family(out, "sora2api_workers", "gauge", "Worker processes, by state.");
    for (i = 1; i < S2A_NELEMS(worker_states); i++) {
        evbuffer_add_printf(out, "sora2api_workers{state=\"%s\"} %d\n",
                            worker_states[i], counts[i]);
    }
    family(out, "sora2api_worker_restarts_total", "counter",
           "Workers started again after an unplanned exit, counted once the "
           "new worker is ready.");
    evbuffer_add_printf(out, "sora2api_worker_restarts_total %llu\n",
                        (unsigned long long) restarts);
    family(out, "sora2api_reloads_total", "counter",
           "Configuration reloads (SIGHUP) carried out.");
    evbuffer_add_printf(out, "sora2api_reloads_total %llu\n",
                        (unsigned long long) LOAD(&st->reloads));
    family(out, "sora2api_record_queue_length", "gauge",
           "Records waiting in the master for the database.");
    evbuffer_add_printf(out, "sora2api_record_queue_length %lld\n",
                        (long long) LOAD(&st->record_queue));
    if (LOAD(&st->cache_files) >= 0) {
        family(out, "sora2api_cache_files", "gauge",
               "Files in the media cache at the last sweep.");
        evbuffer_add_printf(out, "sora2api_cache_files %lld\n",
                            (long long) LOAD(&st->cache_files));
        family(out, "sora2api_cache_bytes", "gauge",
               "Bytes in the media cache at the last sweep.");
        evbuffer_add_printf(out, "sora2api_cache_bytes %lld\n",
                            (long long) LOAD(&st->cache_bytes));
    }
    family(out, "sora2api_cache_hits_total", "counter",
           "Media cache hits: reuse (a result download avoided, the file "
           "being cached already), served (a cached file sent, /tmp/ or "
           "video content).");
    evbuffer_add_printf(
        out,
        "sora2api_cache_hits_total{kind=\"reuse\"} %llu\n"
        "sora2api_cache_hits_total{kind=\"served\"} %llu\n",
        (unsigned long long) LOAD(&st->cache_hits[S2A_CH_REUSE]),
        (unsigned long long) LOAD(&st->cache_hits[S2A_CH_SERVED]));
    family(out, "sora2api_cache_downloads_total", "counter",
           "Result downloads into the media cache begun.");
    evbuffer_add_printf(out, "sora2api_cache_downloads_total %llu\n",
                        (unsigned long long) LOAD(&st->cache_downloads));
}

/* The live job table (common/jobtab.h): relaxed loads, no lock. */
static void
render_jobtab(struct evbuffer *out)
{
    s2a_jobtab_t *jt = s2a_jobs;

    family(out, "sora2api_jobtab_slots", "gauge",
           "Slots of the live job table ([limits] job_slots).");
    evbuffer_add_printf(out, "sora2api_jobtab_slots %u\n",
                        s2a_jobtab_slots(jt));
    family(out, "sora2api_jobtab_slots_used", "gauge",
           "Slots of the live job table holding a job.");
    evbuffer_add_printf(out, "sora2api_jobtab_slots_used %u\n",
                        s2a_jobtab_used(jt));
    family(out, "sora2api_jobtab_hits_total", "counter",
           "Video retrieves answered from the live job table.");
    evbuffer_add_printf(out, "sora2api_jobtab_hits_total %llu\n",
                        jt != NULL ? (unsigned long long) LOAD(&jt->hits)
                                   : 0ULL);
    family(out, "sora2api_jobtab_fallbacks_total", "counter",
           "Video retrieves the live job table could not answer, asked of "
           "the master.");
    evbuffer_add_printf(out, "sora2api_jobtab_fallbacks_total %llu\n",
                        jt != NULL ? (unsigned long long) LOAD(&jt->fallbacks)
                                   : 0ULL);
    family(out, "sora2api_jobtab_refused_total", "counter",
           "Jobs that found every slot of the live job table running.");
    evbuffer_add_printf(out, "sora2api_jobtab_refused_total %llu\n",
                        jt != NULL ? (unsigned long long) LOAD(&jt->refused)
                                   : 0ULL);
    family(out, "sora2api_jobtab_lock_holds_total", "counter",
           "Times the live job table's lock was held.");
    evbuffer_add_printf(out, "sora2api_jobtab_lock_holds_total %llu\n",
                        jt != NULL ? (unsigned long long) LOAD(&jt->hold_count)
                                   : 0ULL);
    family(out, "sora2api_jobtab_lock_hold_seconds_total", "counter",
           "Total time the live job table's lock was held.");
    evbuffer_add_printf(out, "sora2api_jobtab_lock_hold_seconds_total %.9f\n",
                        jt != NULL ? (double) LOAD(&jt->hold_total_ns) / 1e9
                                   : 0.0);
    family(out, "sora2api_jobtab_lock_hold_max_seconds", "gauge",
           "Longest single hold of the live job table's lock.");
    evbuffer_add_printf(out, "sora2api_jobtab_lock_hold_max_seconds %.9f\n",
                        jt != NULL ? (double) LOAD(&jt->hold_max_ns) / 1e9
                                   : 0.0);
}

/* See metrics.h. */
int
s2a_metrics_render(struct evbuffer *out)
{
    s2a_shm_t *shm = s2a_worker.shm;
    s2a_shm_token_t *t;
    tok_copy_t *toks;
    uint64_t holds, hold_ns, hold_max_ns, waits, wait_ns, wait_max_ns;
    uint32_t cap, n, i, repairs;
    int states[S2A_NELEMS(token_states)] = { 0 };
    int64_t leases = 0;
    int k;

    /* Sized from an unlocked read; the copy below takes at most that. */
    cap = shm->token_high;
    toks = calloc(cap > 0 ? cap : 1, sizeof(*toks));
    if (toks == NULL) {
        return S2A_ERROR;
    }
    if (s2a_shm_lock(shm) != S2A_OK) {
        free(toks);
        return S2A_ERROR;
    }
    n = shm->token_high < cap ? shm->token_high : cap;
    t = s2a_shm_tokens(shm);
    for (i = 0; i < n; i++) {
        toks[i].id = t[i].id;
        toks[i].state = t[i].state;
        memcpy(toks[i].inflight, t[i].inflight, sizeof(toks[i].inflight));
    }
    holds = shm->hold_count;
    hold_ns = shm->hold_total_ns;
    hold_max_ns = shm->hold_max_ns;
    waits = shm->wait_count;
    wait_ns = shm->wait_total_ns;
    wait_max_ns = shm->wait_max_ns;
    repairs = shm->repairs;
    s2a_shm_unlock(shm);

    render_http(out, &shm->stats);
    render_jobs(out, &shm->stats);
    render_upstream(out, &shm->stats);

    for (i = 0; i < n; i++) {
        if (toks[i].id > 0 && toks[i].state < S2A_NELEMS(token_states)) {
            states[toks[i].state]++;
        }
        for (k = 0; k < S2A_KIND_COUNT; k++) {
            leases += toks[i].inflight[k];
        }
    }
    family(out, "sora2api_tokens", "gauge", "Sora accounts, by state.");
    for (i = 1; i < S2A_NELEMS(token_states); i++) {
        evbuffer_add_printf(out, "sora2api_tokens{state=\"%s\"} %d\n",
                            token_states[i], states[i]);
    }
    family(out, "sora2api_token_inflight", "gauge",
           "Leases in flight per account (by token id) and kind.");
    for (i = 0; i < n; i++) {
        if (toks[i].id <= 0) {
            continue;
        }
        for (k = 0; k < S2A_KIND_COUNT; k++) {
            evbuffer_add_printf(
                out,
                "sora2api_token_inflight{token_id=\"%lld\",kind=\"%s\"} "
                "%d\n",
                (long long) toks[i].id, kind_names[k], toks[i].inflight[k]);
        }
    }
    free(toks);
    family(out, "sora2api_leases_inflight", "gauge",
           "Leases in flight over every account.");
    evbuffer_add_printf(out, "sora2api_leases_inflight %lld\n",
                        (long long) leases);

    render_master(out, &shm->stats);
    render_jobtab(out);
    s2a_apikeys_metrics(out);

    family(out, "sora2api_shm_lock_holds_total", "counter",
           "Times the shared-memory table lock was held.");
    evbuffer_add_printf(out, "sora2api_shm_lock_holds_total %llu\n",
                        (unsigned long long) holds);
    family(out, "sora2api_shm_lock_hold_seconds_total", "counter",
           "Total time the shared-memory table lock was held.");
    evbuffer_add_printf(out, "sora2api_shm_lock_hold_seconds_total %.9f\n",
                        (double) hold_ns / 1e9);
    family(out, "sora2api_shm_lock_hold_max_seconds", "gauge",
           "Longest single hold of the shared-memory table lock.");
    evbuffer_add_printf(out, "sora2api_shm_lock_hold_max_seconds %.9f\n",
                        (double) hold_max_ns / 1e9);
    family(out, "sora2api_shm_lock_waits_total", "counter",
           "Acquisitions of the shared-memory table lock that found it "
           "taken and waited.");
    evbuffer_add_printf(out, "sora2api_shm_lock_waits_total %llu\n",
                        (unsigned long long) waits);
    family(out, "sora2api_shm_lock_wait_seconds_total", "counter",
           "Total time spent waiting for the shared-memory table lock.");
    evbuffer_add_printf(out, "sora2api_shm_lock_wait_seconds_total %.9f\n",
                        (double) wait_ns / 1e9);
    family(out, "sora2api_shm_lock_wait_max_seconds", "gauge",
           "Longest single wait for the shared-memory table lock.");
    evbuffer_add_printf(out, "sora2api_shm_lock_wait_max_seconds %.9f\n",
                        (double) wait_max_ns / 1e9);
    family(out, "sora2api_shm_lock_repairs_total", "counter",
           "Times a dead lock owner's table was repaired.");
    evbuffer_add_printf(out, "sora2api_shm_lock_repairs_total %u\n", repairs);
    return S2A_OK;
}

/* GET /metrics. */
void
s2a_metrics_serve(s2a_req_t *req)
{
    struct evbuffer *out;
    int status;

    status =
        s2a_metrics_access(req->peer, s2a_req_header(req, "Authorization"));
    if (status == 401) {
        s2a_http_add_header(req, "WWW-Authenticate", "Bearer");
        S2A_HTTP_REPLY_LIT(req, 401, "text/plain; charset=utf-8",
                           "authentication required\n");
        return;
    }
    if (status != 0) {
        S2A_HTTP_REPLY_LIT(req, 403, "text/plain; charset=utf-8",
                           "forbidden\n");
        return;
    }
    out = evbuffer_new();
    if (out == NULL || s2a_metrics_render(out) != S2A_OK) {
        if (out != NULL) {
            evbuffer_free(out);
        }
        S2A_HTTP_REPLY_LIT(req, 503, "text/plain; charset=utf-8",
                           "metrics unavailable\n");
        return;
    }
    s2a_http_add_header(req, "Cache-Control", "no-store");
    s2a_http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8",
                   (const char *) evbuffer_pullup(out, -1),
                   evbuffer_get_length(out));
    evbuffer_free(out);
}

/* See metrics.h. */
json_t *
s2a_metrics_health_json(void)
{
    s2a_stats_health_t h;
    json_t *obj = json_object();
    int64_t now = s2a_now();
    int ep;

    for (ep = 0; obj != NULL && ep < S2A_EP_COUNT; ep++) {
        s2a_stats_window(stats(), (s2a_endpoint_t) ep, now, &h);
        json_object_set_new(
            obj, s2a_stats_endpoint_name((s2a_endpoint_t) ep),
            json_pack(
                "{s:I, s:I, s:f, s:f}", "calls", (json_int_t) h.calls,
                "failures", (json_int_t) h.failures, "failure_rate",
                h.calls > 0 ? (double) h.failures / (double) h.calls : 0.0,
                "latency_ms",
                h.calls > 0 ? (double) h.latency_ms / (double) h.calls : 0.0));
    }
    return obj;
}
