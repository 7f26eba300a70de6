/*
 * records.c: the read-only record views of the admin API: the request log
 * (GET /api/logs), generation tasks (GET /api/tasks) and the statistics
 * (GET /api/stats). The rows live in the master's database; each request
 * is one call to the master, owned here until it is answered or its
 * client leaves.
 */
#include "worker/records.h"
#include "worker/context.h"
#include "worker/metrics.h"

#include <stdlib.h>
#include <string.h>

typedef enum {
    RECORDS_LOGS = 0,
    RECORDS_TASKS,
    RECORDS_STATS
} records_kind_t;

/* One record request in progress; freed when answered or abandoned. */
typedef struct records_s {
    s2a_req_t *req;
    uint64_t call;
    records_kind_t kind;
} records_t;

static void
records_gone(s2a_req_t *req, void *arg)
{
    records_t *r = arg;

    S2A_UNUSED(req);
    if (r->call != 0) {
        s2a_worker_call_cancel(r->call);
    }
    free(r);
}

/* Detaches `r` from its request and frees it; the caller answers. */
static s2a_req_t *
records_end(records_t *r)
{
    s2a_req_t *req = r->req;

    req->on_gone = NULL;
    free(r);
    return req;
}

static void
records_done(json_t *reply, void *arg)
{
    records_t *r = arg;
    bool ok = reply != NULL && json_is_true(json_object_get(reply, "ok"));
    json_t *rows = json_object_get(reply, "rows"), *body;
    json_t *stats = json_object_get(reply, "stats");
    records_kind_t kind = r->kind;
    s2a_req_t *req;

    r->call = 0;
    req = records_end(r);
    if (kind == RECORDS_STATS) {
        if (!ok || !json_is_object(stats)) {
            s2a_http_reply_detail(req, 503, "Statistics unavailable");
            return;
        }
        /* The master's figures, and the upstream's recent health from
         * shared memory (as /readyz?verbose=1): Sora failing shows there,
         * bad accounts in the tokens' own figures. */
        json_object_set_new(stats, "upstream", s2a_metrics_health_json());
        s2a_http_reply_json(req, 200, stats);
        return;
    }
    if (!ok || !json_is_array(rows)) {
        s2a_http_reply_detail(req, 503, "Records unavailable");
        return;
    }
    /* Logs are a bare array, as the reference answers. */
    body = kind == RECORDS_TASKS
        ? json_pack("{s:b, s:O}", "success", 1, "tasks", rows)
        : json_incref(rows);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* Sends `msg` (taken) to the master; the answer goes to records_done. */
static void
records_ask(s2a_req_t *req, records_kind_t kind, json_t *msg)
{
    records_t *r = calloc(1, sizeof(*r));

    if (r == NULL || msg == NULL) {
        free(r);
        json_decref(msg);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    r->req = req;
    r->kind = kind;
    r->call = s2a_worker_call_master(msg, records_done, r);
    json_decref(msg);
    if (r->call == 0) {
        free(r);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = records_gone;
    req->gone_arg = r;
}

/*
 * Copies query parameter `name` into `msg` as a string of at most 64
 * bytes, or (`number`) as a positive integer. Answers 400 and returns
 * false when it is malformed; an absent or empty one is skipped.
 */
static bool
take_param(s2a_req_t *req, json_t *msg, const char *name, bool number)
{
    char *v = s2a_req_query_param(req, name), *end;
    long long n;
    bool ok = true;

    if (v == NULL || v[0] == '\0') {
        free(v);
        return true;
    }
    if (number) {
        n = strtoll(v, &end, 10);
        ok = *end == '\0' && n > 0 && v[0] >= '0' && v[0] <= '9';
        if (ok) {
            json_object_set_new(msg, name, json_integer(n));
        }
    } else {
        ok = strlen(v) <= 64;
        if (ok) {
            json_object_set_new(msg, name, json_string(v));
        }
    }
    free(v);
    if (!ok) {
        s2a_http_reply_detail(req, 400, "%s must be %s", name,
                              number ? "a positive integer"
                                     : "at most 64 bytes");
    }
    return ok;
}

static void
records_list(s2a_req_t *req, records_kind_t kind)
{
    static const struct {
        const char *name;
        bool number, tasks, logs;
    } params[] = {
        { "limit", true, true, true },       { "status", false, true, true },
        { "model", false, true, true },      { "token_id", true, true, true },
        { "since", true, true, true },       { "until", true, true, true },
        { "before", true, true, true },      { "job_id", false, true, false },
        { "operation", false, false, true },
    };
    json_t *msg;
    size_t i;

    msg = json_pack("{s:s}", "op",
                    kind == RECORDS_TASKS ? "tasks_list" : "logs_list");
    for (i = 0; msg != NULL && i < S2A_NELEMS(params); i++) {
        if ((kind == RECORDS_TASKS ? params[i].tasks : params[i].logs)
            && !take_param(req, msg, params[i].name, params[i].number))
        {
            json_decref(msg);
            return;
        }
    }
    records_ask(req, kind, msg);
}

/* GET /api/logs[?limit=&status=&model=&operation=&token_id=&since=&until=
 * &before=]: request-log rows, newest first (bare array). */
void
s2a_records_logs(s2a_req_t *req)
{
    records_list(req, RECORDS_LOGS);
}

/* GET /api/tasks[?limit=&status=&model=&job_id=&token_id=&since=&until=
 * &before=]: {"success":true,"tasks":[...]}. */
void
s2a_records_tasks(s2a_req_t *req)
{
    records_list(req, RECORDS_TASKS);
}

/* GET /api/stats: the master's totals and today's counts, plus the
 * upstream health per endpoint class ("upstream"). */
void
s2a_records_stats(s2a_req_t *req)
{
    records_ask(req, RECORDS_STATS, json_pack("{s:s}", "op", "stats"));
}
