/*
 * apikeys.c: named API keys in a worker (see apikeys.h and
 * docs/api-keys.md).
 *
 * The hot path is one hold of the key table's lock per /v1 request: the
 * MAC of the bearer key is looked up in the table's index (O(1)), the
 * key's state and expiry read, its request counted and its
 * requests-per-minute window moved. Everything else (admission of jobs,
 * their end) takes the lock again only for generation requests.
 *
 * Usage rows (key, model, UTC day of the key clock) accumulate here and
 * go to the master once a second; the live counters that enforce the
 * limits are in the shared table and never wait for the database.
 */
#include "worker/apikeys.h"
#include "common/crypto.h"
#include "common/keyspec.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE_MAX     1024 /* accumulated rows before an early flush */
#define USAGE_BUCKETS 2048 /* a power of two, twice USAGE_MAX */

typedef struct usage_row_s {
    int64_t key_id;
    int model; /* index in s2a_models, -1: not a generation */
    char day[11];
    int64_t requests, images, videos, video_seconds, failures;
} usage_row_t;

/* The rows since the last flush, found through a small hash on (key,
 * model): every request of a key adds to one, and a thousand keys must
 * not make that a scan. All rows share one day: a new day flushes. */
static struct {
    usage_row_t rows[USAGE_MAX];
    int16_t index[USAGE_BUCKETS]; /* row + 1, 0: empty */
    int n;
    char day[11];
    int64_t day_of; /* the key-clock second `day` was computed for */
} U;

static s2a_keytab_t *
kt(void)
{
    return s2a_keytab;
}

static uint32_t
usage_bucket(int64_t key_id, int model)
{
    uint64_t h = (uint64_t) key_id * 0x9e3779b97f4a7c15ULL
        + (uint64_t) (model + 1) * 0xc2b2ae3d27d4eb4fULL;

    return (uint32_t) (h >> 40) & (USAGE_BUCKETS - 1);
}

/* The usage row of (key, model, today), made when missing. */
static usage_row_t *
usage_row(int64_t key_id, int model)
{
    int64_t now = s2a_keytab_now(kt());
    char day[11];
    usage_row_t *r;
    uint32_t b;

    if (now != U.day_of) {
        s2a_utc_day(now, day);
        if (U.n > 0 && memcmp(day, U.day, sizeof(day)) != 0) {
            s2a_apikeys_flush(); /* the rows of the day before go first */
        }
        memcpy(U.day, day, sizeof(day));
        U.day_of = now;
    }
    for (b = usage_bucket(key_id, model); U.index[b] != 0;
         b = (b + 1) & (USAGE_BUCKETS - 1))
    {
        r = &U.rows[U.index[b] - 1];
        if (r->key_id == key_id && r->model == model) {
            return r;
        }
    }
    if (U.n == USAGE_MAX) {
        s2a_apikeys_flush();
        for (b = usage_bucket(key_id, model); U.index[b] != 0;
             b = (b + 1) & (USAGE_BUCKETS - 1))
        {
        }
    }
    r = &U.rows[U.n++];
    U.index[b] = (int16_t) U.n;
    memset(r, 0, sizeof(*r));
    r->key_id = key_id;
    r->model = model;
    memcpy(r->day, U.day, sizeof(U.day));
    return r;
}

void
s2a_apikeys_flush(void)
{
    json_t *msg, *rows;
    usage_row_t *r;
    int i;

    if (U.n == 0) {
        return;
    }
    if (s2a_worker.chan == NULL) {
        s2a_apikeys_cleanup(); /* nobody to send them to */
        return;
    }
    rows = json_array();
    for (i = 0; i < U.n; i++) {
        r = &U.rows[i];
        json_array_append_new(
            rows,
            json_pack("[I, s, s, I, I, I, I, I]", (json_int_t) r->key_id,
                      r->day, r->model >= 0 ? s2a_models[r->model].id : "",
                      (json_int_t) r->requests, (json_int_t) r->images,
                      (json_int_t) r->videos, (json_int_t) r->video_seconds,
                      (json_int_t) r->failures));
    }
    msg = json_pack("{s:s, s:o}", "op", "key_usage", "rows", rows);
    if (msg != NULL) {
        s2a_worker_notify_master(msg);
        json_decref(msg);
    }
    U.n = 0;
    memset(U.index, 0, sizeof(U.index));
}

void
s2a_apikeys_cleanup(void)
{
    U.n = 0;
    memset(U.index, 0, sizeof(U.index));
}

/* ---------------------------------------------------------------------
 * The credential
 */

typedef enum {
    VERDICT_OK = 0,
    VERDICT_UNKNOWN,
    VERDICT_DISABLED,
    VERDICT_EXPIRED,
    VERDICT_THROTTLED
} verdict_t;

/* "59s", or "250ms" under a second (the OpenAI header format). */
static void
reset_text(int64_t ms, char *out, size_t outlen)
{
    if (ms < 1000) {
        snprintf(out, outlen, "%lldms", (long long) (ms > 0 ? ms : 0));
    } else {
        snprintf(out, outlen, "%llds", (long long) ((ms + 999) / 1000));
    }
}

static void
ratelimit_headers(s2a_req_t *req, const s2a_rpm_info_t *info)
{
    char v[32];

    snprintf(v, sizeof(v), "%d", info->limit);
    s2a_http_add_header(req, "x-ratelimit-limit-requests", v);
    snprintf(v, sizeof(v), "%d", info->remaining);
    s2a_http_add_header(req, "x-ratelimit-remaining-requests", v);
    reset_text(info->reset_ms, v, sizeof(v));
    s2a_http_add_header(req, "x-ratelimit-reset-requests", v);
}

static void
retry_after(s2a_req_t *req, int64_t seconds)
{
    char v[24];

    snprintf(v, sizeof(v), "%lld", (long long) (seconds > 0 ? seconds : 1));
    s2a_http_add_header(req, "Retry-After", v);
}

bool
s2a_apikeys_check(s2a_req_t *req, const char *key)
{
    uint8_t mac[S2A_KEY_MAC_LEN];
    s2a_rpm_info_t info = { S2A_KEY_UNLIMITED, 0, 0 };
    verdict_t verdict;
    s2a_keyspec_t spec;
    s2a_keyrow_t *row;
    int64_t now, expires, id;
    int slot;

    s2a_worker_refresh_settings();
    s2a_api_key_mac(s2a_worker.settings.api_key_vkey, key, mac);
    now = s2a_keytab_now(kt());
    /* No lock on this path (every /v1 request): the spec is read from
     * one consistent state of the table, the window moved by one
     * compare-and-swap, the counters are atomics. A worker preempted
     * here holds up nobody. */
    memset(&spec, 0, sizeof(spec));
    slot = s2a_keytab_lookup(kt(), mac, &spec);
    if (slot < 0) {
        verdict = VERDICT_UNKNOWN;
    } else if (!spec.enabled) {
        verdict = VERDICT_DISABLED;
    } else if (spec.expires_at != 0 && spec.expires_at <= now) {
        verdict = VERDICT_EXPIRED;
    } else {
        row = &s2a_keytab_rows(kt())[slot];
        atomic_fetch_add_explicit(&row->requests, 1, memory_order_relaxed);
        verdict =
            s2a_keytab_rpm_take(kt(), slot, spec.rpm, s2a_mono_ms(), &info)
                == S2A_OK
            ? VERDICT_OK
            : VERDICT_THROTTLED;
        if (verdict == VERDICT_THROTTLED) {
            atomic_fetch_add_explicit(&row->throttled, 1, memory_order_relaxed);
        }
    }
    id = spec.id;
    expires = spec.expires_at;
    switch (verdict) {
    case VERDICT_OK: break;
    case VERDICT_UNKNOWN:
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "Incorrect API key provided.");
        return false;
    case VERDICT_DISABLED:
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "This API key is disabled.");
        return false;
    case VERDICT_EXPIRED:
        s2a_http_reply_error(
            req, 401, "invalid_request_error", "invalid_api_key", NULL,
            "This API key expired at %lld (unix time).", (long long) expires);
        return false;
    case VERDICT_THROTTLED:
        req->key_id = id;
        req->key_slot = slot;
        ratelimit_headers(req, &info);
        retry_after(req, (info.reset_ms + 999) / 1000);
        s2a_http_reply_error(req, 429, "requests", "rate_limit_exceeded", NULL,
                             "Rate limit reached for requests per minute "
                             "(RPM) of this API key: limit %d. Please try "
                             "again in %llds.",
                             info.limit,
                             (long long) ((info.reset_ms + 999) / 1000));
        return false;
    }
    req->key_id = id;
    req->key_slot = slot;
    req->key_models = spec.models;
    if (info.limit >= 0) {
        ratelimit_headers(req, &info);
    }
    return true;
}

void
s2a_apikeys_request_done(s2a_req_t *req)
{
    if (req->key_id > 0) {
        usage_row(req->key_id, req->key_model - 1)->requests++;
    }
}

/* ---------------------------------------------------------------------
 * Jobs
 */

bool
s2a_apikeys_admit(s2a_req_t *req, const s2a_model_t *model, int n,
                  s2a_keyticket_t *t)
{
    size_t mi = (size_t) (model - s2a_models);
    s2a_key_admit_t rc = S2A_KEY_ADMIT_FULL;
    s2a_keyrow_t *row;
    int64_t now = s2a_keytab_now(kt()), end = 0;
    bool gone = true, allowed = true;
    s2a_key_period_t period = S2A_PERIOD_TOTAL;
    int32_t limit = 0;

    memset(t, 0, sizeof(*t));
    if (req->key_id <= 0) {
        return true;
    }
    req->key_model = (int32_t) mi + 1;
    if (n > S2A_APIKEYS_TICKET_MAX) {
        n = S2A_APIKEYS_TICKET_MAX;
    }
    if (s2a_keytab_lock(kt()) == S2A_OK) {
        row = &s2a_keytab_rows(kt())[req->key_slot];
        /* Deleted or disabled since the request came in: as then. */
        gone = row->spec.id != req->key_id || !row->spec.enabled;
        if (!gone) {
            allowed = s2a_keyspec_model_allowed(row->spec.models, mi);
        }
        if (!gone && allowed) {
            rc = s2a_keytab_admit_locked(kt(), req->key_slot, model->kind, n,
                                         now, getpid(), t->leases);
            limit = rc == S2A_KEY_ADMIT_QUOTA ? row->spec.quota[model->kind]
                                              : row->spec.concurrency;
            period = (s2a_key_period_t) row->spec.period;
            end = s2a_key_period_end(period, now);
            t->group = row->spec.group;
            if (rc != S2A_KEY_ADMIT_OK) {
                atomic_fetch_add_explicit(&row->throttled, 1,
                                          memory_order_relaxed);
            }
        }
        s2a_keytab_unlock(kt());
    }
    if (gone) {
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "This API key was revoked or disabled.");
        return false;
    }
    if (!allowed) {
        s2a_http_reply_error(req, 403, "invalid_request_error",
                             "model_not_found", "model",
                             "This API key does not have access to model "
                             "'%s'.",
                             model->id);
        return false;
    }
    switch (rc) {
    case S2A_KEY_ADMIT_OK:
        t->n = n;
        t->key_id = req->key_id;
        return true;
    case S2A_KEY_ADMIT_QUOTA:
        if (end != 0) {
            retry_after(req, end - now);
        }
        s2a_http_reply_error(
            req, 429, "insufficient_quota", "quota_exceeded", NULL,
            "This API key's %s quota is used up: %d %s.",
            model->kind == S2A_KIND_VIDEO ? "video" : "image", limit,
            period == S2A_PERIOD_DAY         ? "per day (UTC)"
                : period == S2A_PERIOD_MONTH ? "per month (UTC)"
                                             : "in all");
        return false;
    case S2A_KEY_ADMIT_CONCURRENCY:
        retry_after(req, 1);
        s2a_http_reply_error(req, 429, "requests", "concurrency_limit_exceeded",
                             NULL,
                             "This API key already runs %d generation "
                             "job%s, its limit.",
                             limit, limit == 1 ? "" : "s");
        return false;
    case S2A_KEY_ADMIT_FULL: break;
    }
    retry_after(req, 1);
    s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                         "Too many generation jobs are running.");
    return false;
}

void
s2a_apikeys_ticket_take(s2a_keyticket_t *t, s2a_keyjob_t *job)
{
    memset(job, 0, sizeof(*job));
    job->lease.row = -1;
    if (t == NULL || t->next >= t->n) {
        return;
    }
    job->key_id = t->key_id;
    job->group = t->group;
    job->lease = t->leases[t->next++];
    job->leased = true;
}

void
s2a_apikeys_ticket_release(s2a_keyticket_t *t)
{
    if (t == NULL || t->next >= t->n || s2a_keytab_lock(kt()) != S2A_OK) {
        return;
    }
    for (; t->next < t->n; t->next++) {
        s2a_keytab_lease_end_locked(kt(), &t->leases[t->next], false, 0);
    }
    s2a_keytab_unlock(kt());
}

void
s2a_apikeys_job_end(s2a_keyjob_t *job, const s2a_model_t *model,
                    const char *state, int seconds)
{
    bool ok = strcmp(state, "succeeded") == 0;
    usage_row_t *r;
    int64_t now = s2a_keytab_now(kt());

    if (job->key_id <= 0) {
        return;
    }
    if (job->leased && s2a_keytab_lock(kt()) == S2A_OK) {
        s2a_keytab_lease_end_locked(kt(), &job->lease, ok, now);
        s2a_keytab_unlock(kt());
    }
    job->leased = false;
    if (ok || strcmp(state, "failed") == 0) {
        r = usage_row(job->key_id, (int) (model - s2a_models));
        if (!ok) {
            r->failures++;
        } else if (model->kind == S2A_KIND_VIDEO) {
            r->videos++;
            r->video_seconds += seconds;
        } else {
            r->images++;
        }
    }
    /* Counted once: a second end of the same job does nothing. */
    job->key_id = 0;
}

void
s2a_apikeys_job_drop(s2a_keyjob_t *job)
{
    if (job->leased && s2a_keytab_lock(kt()) == S2A_OK) {
        s2a_keytab_lease_end_locked(kt(), &job->lease, false, 0);
        s2a_keytab_unlock(kt());
    }
    job->leased = false;
}

void
s2a_apikeys_job_resume(s2a_keyjob_t *job, int64_t key_id, s2a_kind_t kind)
{
    int slot;

    memset(job, 0, sizeof(*job));
    job->lease.row = -1;
    if (key_id <= 0) {
        return;
    }
    job->key_id = key_id;
    if (s2a_keytab_lock(kt()) != S2A_OK) {
        return;
    }
    slot = s2a_keytab_find_id_locked(kt(), key_id);
    if (slot >= 0
        && s2a_keytab_lease_force_locked(kt(), slot, kind, getpid(),
                                         &job->lease)
            == S2A_OK)
    {
        job->leased = true;
        job->group = s2a_keytab_rows(kt())[slot].spec.group;
    }
    s2a_keytab_unlock(kt());
}

/* ---------------------------------------------------------------------
 * /metrics
 */

typedef struct metric_copy_s {
    int64_t id;
    int32_t running;
    uint64_t requests, throttled, jobs;
} metric_copy_t;

void
s2a_apikeys_metrics(struct evbuffer *out)
{
    static const struct {
        const char *name, *type, *help;
    } families[] = {
        { "sora2api_api_key_requests_total", "counter",
          "Requests that presented the API key (label: key id)" },
        { "sora2api_api_key_throttled_total", "counter",
          "429 answers of the key's rpm, quota and concurrency limits" },
        { "sora2api_api_key_jobs_total", "counter",
          "Generation jobs admitted for the key" },
        { "sora2api_api_key_jobs_running", "gauge",
          "Generation jobs of the key running now" },
    };
    metric_copy_t *c;
    s2a_keyrow_t *rows;
    uint32_t i;
    size_t n = 0, f, j;
    unsigned long long v;

    c = calloc(kt()->max_keys, sizeof(*c));
    if (c == NULL || s2a_keytab_lock(kt()) != S2A_OK) {
        free(c);
        return;
    }
    rows = s2a_keytab_rows(kt());
    for (i = 0; i < kt()->key_high; i++) {
        if (rows[i].spec.id <= 0) {
            continue;
        }
        c[n].id = rows[i].spec.id;
        c[n].running = rows[i].inflight;
        c[n].requests =
            atomic_load_explicit(&rows[i].requests, memory_order_relaxed);
        c[n].throttled =
            atomic_load_explicit(&rows[i].throttled, memory_order_relaxed);
        c[n].jobs = atomic_load_explicit(&rows[i].jobs, memory_order_relaxed);
        n++;
    }
    s2a_keytab_unlock(kt());
    for (f = 0; f < S2A_NELEMS(families); f++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
                            families[f].name, families[f].help,
                            families[f].name, families[f].type);
        for (j = 0; j < n; j++) {
            v = f == 0   ? c[j].requests
                : f == 1 ? c[j].throttled
                : f == 2 ? c[j].jobs
                         : (unsigned long long) c[j].running;
            evbuffer_add_printf(out, "%s{key=\"%lld\"} %llu\n",
                                families[f].name, (long long) c[j].id, v);
        }
    }
    free(c);
}

/* ---------------------------------------------------------------------
 * The admin routes: /api/keys
 */

typedef enum {
    CALL_LIST = 0,
    CALL_GET,
    CALL_CREATE,
    CALL_UPDATE,
    CALL_DELETE,
    CALL_USAGE
} call_kind_t;

/* One admin call to the master in progress. */
typedef struct call_s {
    s2a_req_t *req;
    uint64_t call;
    call_kind_t kind;
    int64_t key_id;
    char key[64]; /* create: the new key, shown once */
    bool csv;
    char from[11], to[11];
} call_t;

static void
call_free(call_t *c)
{
    OPENSSL_cleanse(c->key, sizeof(c->key));
    free(c);
}

static void
call_gone(s2a_req_t *req, void *arg)
{
    call_t *c = arg;

    S2A_UNUSED(req);
    if (c->call != 0) {
        s2a_worker_call_cancel(c->call);
    }
    call_free(c);
}

/* The usage rows as CSV (a header line, then one line per row). */
static void
reply_csv(s2a_req_t *req, int64_t id, json_t *rows)
{
    static const char *const cols[] = { "requests", "images", "videos",
                                        "video_seconds", "failures" };
    struct evbuffer *b = evbuffer_new();
    char cd[96];
    json_t *row;
    size_t i, k;

    if (b == NULL) {
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    evbuffer_add_printf(b,
                        "day,model,requests,images,videos,video_seconds,"
                        "failures\n");
    json_array_foreach (rows, i, row) {
        /* Model ids and days hold no comma, quote or line break. */
        evbuffer_add_printf(b, "%s,%s",
                            json_string_value(json_object_get(row, "day")),
                            json_string_value(json_object_get(row, "model")));
        for (k = 0; k < S2A_NELEMS(cols); k++) {
            evbuffer_add_printf(
                b, ",%lld",
                (long long) json_integer_value(json_object_get(row, cols[k])));
        }
        evbuffer_add_printf(b, "\n");
    }
    snprintf(cd, sizeof(cd), "attachment; filename=\"api-key-%lld-usage.csv\"",
             (long long) id);
    s2a_http_add_header(req, "Content-Disposition", cd);
    s2a_http_reply(req, 200, "text/csv; charset=utf-8", evbuffer_pullup(b, -1),
                   evbuffer_get_length(b));
    evbuffer_free(b);
}

static void
reply_usage(call_t *c, s2a_req_t *req, json_t *rows)
{
    static const char *const cols[] = { "requests", "images", "videos",
                                        "video_seconds", "failures" };
    json_int_t sum[S2A_NELEMS(cols)] = { 0 };
    json_t *row, *body, *total;
    size_t i, k;

    if (c->csv) {
        reply_csv(req, c->key_id, rows);
        return;
    }
    json_array_foreach (rows, i, row) {
        for (k = 0; k < S2A_NELEMS(cols); k++) {
            sum[k] += json_integer_value(json_object_get(row, cols[k]));
        }
    }
    total = json_object();
    for (k = 0; k < S2A_NELEMS(cols); k++) {
        json_object_set_new(total, cols[k], json_integer(sum[k]));
    }
    body = json_pack("{s:s, s:I, s:s?, s:s?, s:O, s:o}", "object", "list",
                     "key_id", (json_int_t) c->key_id, "from",
                     c->from[0] ? c->from : NULL, "to", c->to[0] ? c->to : NULL,
                     "data", rows, "total", total);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
call_done(json_t *reply, void *arg)
{
    call_t *c = arg;
    s2a_req_t *req = c->req;
    bool ok = reply != NULL && json_is_true(json_object_get(reply, "ok"));
    const char *code = json_string_value(json_object_get(reply, "code"));
    json_t *key = json_object_get(reply, "key"), *body;

    c->call = 0;
    req->on_gone = NULL;
    if (!ok) {
        if (code != NULL && strcmp(code, "not_found") == 0) {
            s2a_http_reply_detail(req, 404, "API key not found");
        } else {
            s2a_http_reply_detail(
                req, s2a_worker_failure_status(reply, 400), "%s",
                reply != NULL && json_is_string(json_object_get(reply, "error"))
                    ? json_string_value(json_object_get(reply, "error"))
                    : "Master unavailable");
        }
        call_free(c);
        return;
    }
    switch (c->kind) {
    case CALL_LIST:
        body = json_pack("{s:s, s:O}", "object", "list", "data",
                         json_object_get(reply, "keys"));
        s2a_http_reply_json(req, 200, body);
        json_decref(body);
        break;
    case CALL_GET:
        s2a_http_reply_json(req, 200,
                            json_array_get(json_object_get(reply, "keys"), 0));
        break;
    case CALL_CREATE:
        /* The only time the key is ever shown. */
        body = json_deep_copy(key);
        json_object_set_new(body, "key", json_string(c->key));
        s2a_http_add_header(req, "Cache-Control", "no-store");
        s2a_http_reply_json(req, 201, body);
        json_decref(body);
        break;
    case CALL_UPDATE: s2a_http_reply_json(req, 200, key); break;
    case CALL_DELETE:
        body = json_pack("{s:I, s:s, s:b}", "id", (json_int_t) c->key_id,
                         "object", "api_key.deleted", "deleted", 1);
        s2a_http_reply_json(req, 200, body);
        json_decref(body);
        break;
    case CALL_USAGE: reply_usage(c, req, json_object_get(reply, "rows")); break;
    }
    call_free(c);
}

/* Sends `msg` (taken) for `c` (taken); answers on failure. */
static void
call_master(s2a_req_t *req, call_t *c, json_t *msg)
{
    if (c == NULL || msg == NULL) {
        if (c != NULL) {
            call_free(c);
        }
        json_decref(msg);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    c->req = req;
    c->call = s2a_worker_call_master(msg, call_done, c);
    json_decref(msg);
    if (c->call == 0) {
        call_free(c);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = call_gone;
    req->gone_arg = c;
}

static call_t *
call_new(call_kind_t kind, int64_t id)
{
    call_t *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->kind = kind;
        c->key_id = id;
    }
    return c;
}

/* GET /api/keys: every key with its usage and live counters. */
void
s2a_apikeys_list(s2a_req_t *req)
{
    call_master(req, call_new(CALL_LIST, 0),
                json_pack("{s:s}", "op", "keys_list"));
}

/* GET /api/keys/{id} */
void
s2a_apikeys_get(s2a_req_t *req)
{
    call_master(req, call_new(CALL_GET, req->path_id),
                json_pack("{s:s, s:I}", "op", "keys_list", "key_id",
                          (json_int_t) req->path_id));
}

/* Checks the body into normalised fields; answers 400 on failure. */
static json_t *
read_fields(s2a_req_t *req, bool create)
{
    json_t *in = s2a_req_json_object(req, true), *out;
    char err[256];

    if (in == NULL) {
        return NULL;
    }
    out = json_object();
    if (out == NULL
        || s2a_keyspec_check(in, create, out, err, sizeof(err)) != S2A_OK)
    {
        json_decref(out);
        json_decref(in);
        s2a_http_reply_detail(req, 400, "%s", err);
        return NULL;
    }
    json_decref(in);
    return out;
}

/*
 * POST /api/keys: a new key "sk-" + 48 hex digits (192 random bits). The
 * master stores only its MAC and a hint; the answer (201) is the only
 * place the key is ever shown.
 */
void
s2a_apikeys_create(s2a_req_t *req)
{
    uint8_t rnd[24], mac[S2A_KEY_MAC_LEN];
    char hex[2 * S2A_KEY_MAC_LEN + 1], stored[sizeof(hex) + 16], hint[24];
    json_t *fields = read_fields(req, true), *msg;
    call_t *c;

    if (fields == NULL) {
        return;
    }
    c = call_new(CALL_CREATE, 0);
    if (c == NULL || s2a_random_bytes(rnd, sizeof(rnd)) != S2A_OK) {
        json_decref(fields);
        call_master(req, c, NULL);
        return;
    }
    memcpy(c->key, "sk-", 3);
    s2a_hex(rnd, sizeof(rnd), c->key + 3);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    snprintf(hint, sizeof(hint), "sk-%.4s...%s", c->key + 3,
             c->key + strlen(c->key) - 4);
    s2a_worker_refresh_settings();
    s2a_api_key_mac(s2a_worker.settings.api_key_vkey, c->key, mac);
    s2a_hex(mac, sizeof(mac), hex);
    snprintf(stored, sizeof(stored), "%s%s", S2A_APIKEY_PREFIX, hex);
    msg = json_pack("{s:s, s:o, s:s, s:s}", "op", "key_create", "fields",
                    fields, "mac", stored, "hint", hint);
    call_master(req, c, msg);
}

/* PUT /api/keys/{id}: changes the fields given (null: unlimited). */
void
s2a_apikeys_update(s2a_req_t *req)
{
    json_t *fields = read_fields(req, false);

    if (fields == NULL) {
        return;
    }
    call_master(req, call_new(CALL_UPDATE, req->path_id),
                json_pack("{s:s, s:I, s:o}", "op", "key_update", "key_id",
                          (json_int_t) req->path_id, "fields", fields));
}

/* DELETE /api/keys/{id}: revoked on every worker once the reply comes. */
void
s2a_apikeys_delete(s2a_req_t *req)
{
    call_master(req, call_new(CALL_DELETE, req->path_id),
                json_pack("{s:s, s:I}", "op", "key_delete", "key_id",
                          (json_int_t) req->path_id));
}

/* Whether `s` is a UTC day "YYYY-MM-DD" (digits where digits go). */
static bool
is_day(const char *s)
{
    int i;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') {
        return false;
    }
    for (i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) {
            return false;
        }
    }
    return true;
}

/* GET /api/keys/{id}/usage?from=&to=&format=csv */
void
s2a_apikeys_usage(s2a_req_t *req)
{
    char *from = s2a_req_query_param(req, "from");
    char *to = s2a_req_query_param(req, "to");
    char *format = s2a_req_query_param(req, "format");
    call_t *c = NULL;
    json_t *msg = NULL;

    if ((from != NULL && !is_day(from)) || (to != NULL && !is_day(to))) {
        s2a_http_reply_detail(req, 400,
                              "from and to must be UTC days "
                              "(YYYY-MM-DD)");
        goto done;
    }
    if (format != NULL && strcmp(format, "csv") != 0
        && strcmp(format, "json") != 0) {
        s2a_http_reply_detail(req, 400, "format must be json or csv");
        goto done;
    }
    c = call_new(CALL_USAGE, req->path_id);
    msg = json_pack("{s:s, s:I}", "op", "key_usage_get", "key_id",
                    (json_int_t) req->path_id);
    if (c != NULL && msg != NULL) {
        c->csv = format != NULL && strcmp(format, "csv") == 0;
        if (from != NULL) {
            snprintf(c->from, sizeof(c->from), "%s", from);
            json_object_set_new(msg, "from", json_string(from));
        }
        if (to != NULL) {
            snprintf(c->to, sizeof(c->to), "%s", to);
            json_object_set_new(msg, "to", json_string(to));
        }
    }
    call_master(req, c, msg);
done:
    free(from);
    free(to);
    free(format);
}
