/*
 * tokbatch.c: POST /api/tokens/batch/{enable,disable,delete}. The ids
 * are checked here, then the whole batch is one "tokens_batch" call to
 * the master (one transaction, the shm rows rebuilt once after it);
 * the answer has one result per id, in order:
 * {"results":[{"id":N,"ok":true}|{"id":N,"ok":false,"detail":"..."}],
 *  "ok":n,"failed":m}. The call is owned here until it is answered or
 * the client leaves.
 */
#include "worker/tokbatch.h"
#include "common/ops.h"
#include "worker/context.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct batch_s {
    s2a_req_t *req;
    uint64_t call;
} batch_t;

static void
batch_gone(s2a_req_t *req, void *arg)
{
    batch_t *b = arg;

    S2A_UNUSED(req);
    if (b->call != 0) {
        s2a_worker_call_cancel(b->call);
    }
    free(b);
}

static void
batch_done(json_t *reply, void *arg)
{
    batch_t *b = arg;
    s2a_req_t *req = b->req;
    json_t *results = json_object_get(reply, "results"), *body;

    req->on_gone = NULL;
    free(b);
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))
        || !json_is_array(results))
    {
        s2a_http_reply_detail(
            req, s2a_worker_failure_status(reply, 500), "%s",
            reply == NULL ? "Master unavailable"
                : json_string_value(json_object_get(reply, "error")) != NULL
                ? json_string_value(json_object_get(reply, "error"))
                : "the batch failed");
        return;
    }
    body = json_pack("{s:O, s:O, s:O}", "results", results, "ok",
                     json_object_get(reply, "done"), "failed",
                     json_object_get(reply, "failed"));
    if (body == NULL) {
        s2a_http_reply_detail(req, 500, "Out of memory");
        return;
    }
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

json_t *
s2a_tokbatch_ids(json_t *in, char *err, size_t errlen)
{
    json_t *ids = json_object_get(in, "ids"), *v;
    size_t i;

    if (!json_is_array(ids) || json_array_size(ids) == 0
        || json_array_size(ids) > S2A_TOKENS_BATCH_MAX)
    {
        snprintf(err, errlen, "ids must be an array of 1 to %d token ids",
                 S2A_TOKENS_BATCH_MAX);
        return NULL;
    }
    json_array_foreach (ids, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            snprintf(err, errlen,
                     "ids must hold positive integers (item %zu is not)", i);
            return NULL;
        }
    }
    return json_incref(ids);
}

static void
batch(s2a_req_t *req, const char *action)
{
    json_t *in = s2a_req_json_object(req, true), *ids, *msg;
    char err[128];
    batch_t *b;

    if (in == NULL) {
        return;
    }
    ids = s2a_tokbatch_ids(in, err, sizeof(err));
    json_decref(in);
    if (ids == NULL) {
        s2a_http_reply_detail(req, 400, "%s", err);
        return;
    }
    b = calloc(1, sizeof(*b));
    msg = json_pack("{s:s, s:s, s:o}", "op", "tokens_batch", "action", action,
                    "ids", ids);
    if (b == NULL || msg == NULL) {
        free(b);
        json_decref(msg);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    b->req = req;
    b->call = s2a_worker_call_master(msg, batch_done, b);
    json_decref(msg);
    if (b->call == 0) {
        free(b);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = batch_gone;
    req->gone_arg = b;
}

void
s2a_tokbatch_enable(s2a_req_t *req)
{
    batch(req, "enable");
}

void
s2a_tokbatch_disable(s2a_req_t *req)
{
    batch(req, "disable");
}

void
s2a_tokbatch_delete(s2a_req_t *req)
{
    batch(req, "delete");
}
