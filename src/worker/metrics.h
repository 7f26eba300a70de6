/*
 * metrics.h: GET /metrics (Prometheus text format 0.0.4) and the worker's
 * hooks that feed the shared counters of common/stats.h.
 */
#ifndef S2A_METRICS_H
#define S2A_METRICS_H

#include "common/stats.h"
#include "worker/http.h"

#include <jansson.h>

/* The route handler of GET /metrics: access check, then the document. */
void s2a_metrics_serve(s2a_req_t *req);

/*
 * Appends the whole exposition to `out`: copies what needs the table
 * lock (tokens, leases, lock statistics) out under one short hold, then
 * formats. Returns S2A_OK, or S2A_ERROR when the lock is unusable or
 * memory runs out (then `out` holds a partial document).
 */
int s2a_metrics_render(struct evbuffer *out);

/* Whether a request from `peer` with Authorization `auth` (may be NULL)
 * may read /metrics: 0 when it may, else the status to answer (401
 * without a credential, 403 with a wrong one). */
int s2a_metrics_access(const char *peer, const char *auth);

/* A request was answered (http.c): route class name, status, duration. */
void s2a_metrics_request(const char *route, int status, int64_t us);

/* An upstream call ended (upstream.c): its URL, HTTP status (0: no
 * answer) and duration. */
void s2a_metrics_upstream(const char *url, long status, int64_t us);

/* Generation jobs (gen.c): one came to exist / went away (the running
 * gauge), and its final state ("succeeded", "failed", "cancelled") with
 * its duration. `kind` is an s2a_kind_t. */
void s2a_metrics_job_begin(int kind);
void s2a_metrics_job_gone(int kind);
void s2a_metrics_job_end(int kind, const char *state, int64_t duration_ms);

/* The token wait queue (sched.c): a job of `kind` entered it (`delta`
 * +1) or left it (-1: granted, refused or cancelled). */
void s2a_metrics_job_queued(int kind, int delta);

/* The media cache: a hit (mediacache.c reuse, media.c served) and a
 * download into it begun. */
void s2a_metrics_cache_hit(s2a_cache_hit_t kind);
void s2a_metrics_cache_download(void);

/* The upstream health of the last five minutes per endpoint class, as
 * /readyz?verbose=1 and GET /api/stats show it: a new JSON object (the
 * caller owns it). */
json_t *s2a_metrics_health_json(void);

#endif /* S2A_METRICS_H */
