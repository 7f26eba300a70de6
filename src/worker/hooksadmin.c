/*
 * hooksadmin.c: the admin API's webhook routes (docs/webhooks.md):
 * /api/webhooks (list, create), /api/webhooks/{id} (update, delete),
 * /api/webhooks/{id}/deliveries and /api/webhooks/{id}/test. Each is one
 * call to the master, which owns the tables, checks the fields and makes
 * the secrets; this file maps its answer to the HTTP one. Owns one
 * hook_call_t per request until it is answered or its client leaves.
 */
#include "worker/hooksadmin.h"
#include "worker/context.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    HOOK_LIST = 0,
    HOOK_CREATE,
    HOOK_UPDATE,
    HOOK_DELETE,
    HOOK_DELIVERIES,
    HOOK_TEST
} hook_kind_t;

typedef struct hook_call_s {
    s2a_req_t *req;
    uint64_t call;
    hook_kind_t kind;
    int64_t id;
} hook_call_t;

static void
call_gone(s2a_req_t *req, void *arg)
{
    hook_call_t *c = arg;

    S2A_UNUSED(req);
    if (c->call != 0) {
        s2a_worker_call_cancel(c->call);
    }
    free(c);
}

/* A refused call: the master's code gives the status. */
static void
reply_failure(s2a_req_t *req, json_t *reply)
{
    const char *code = json_string_value(json_object_get(reply, "code"));
    const char *error = json_string_value(json_object_get(reply, "error"));

    if (reply == NULL) {
        s2a_http_reply_detail(req, 503, "Master unavailable");
    } else if (code != NULL && strcmp(code, "invalid") == 0) {
        s2a_http_reply_detail(req, 400, "%s", error != NULL ? error : "");
    } else if (code != NULL && strcmp(code, "not_found") == 0) {
        s2a_http_reply_detail(req, 404, "Webhook not found");
    } else if (code != NULL && strcmp(code, "disabled") == 0) {
        s2a_http_reply_detail(req, 409, "Webhook is disabled");
    } else {
        s2a_http_reply_detail(req, s2a_worker_failure_status(reply, 500), "%s",
                              error != NULL ? error : "Webhooks unavailable");
    }
}

static void
call_done(json_t *reply, void *arg)
{
    hook_call_t *c = arg;
    s2a_req_t *req = c->req;
    hook_kind_t kind = c->kind;
    int64_t id = c->id;
    json_t *body = NULL, *secret;

    req->on_gone = NULL;
    free(c);
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        reply_failure(req, reply);
        return;
    }
    switch (kind) {
    case HOOK_LIST:
    case HOOK_DELIVERIES:
        body = json_incref(json_object_get(reply, "rows"));
        break;
    case HOOK_CREATE:
    case HOOK_UPDATE:
        body = json_deep_copy(json_object_get(reply, "webhook"));
        secret = json_object_get(reply, "secret");
        /* The one time the secret is shown. */
        if (body != NULL && json_is_string(secret)) {
            json_object_set(body, "secret", secret);
        }
        break;
    case HOOK_DELETE:
        body = json_pack("{s:I, s:b}", "id", (json_int_t) id, "deleted", 1);
        break;
    case HOOK_TEST:
        body = json_incref(json_object_get(reply, "delivery"));
        break;
    }
    if (body == NULL) {
        s2a_http_reply_detail(req, 500, "Webhooks unavailable");
        return;
    }
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* Sends `msg` (taken) for `req`; the answer goes to call_done. */
static void
ask(s2a_req_t *req, hook_kind_t kind, int64_t id, json_t *msg)
{
    hook_call_t *c = calloc(1, sizeof(*c));

    if (c == NULL || msg == NULL) {
        free(c);
        json_decref(msg);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    c->req = req;
    c->kind = kind;
    c->id = id;
    c->call = s2a_worker_call_master(msg, call_done, c);
    json_decref(msg);
    if (c->call == 0) {
        free(c);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = call_gone;
    req->gone_arg = c;
}

/* GET /api/webhooks: every endpoint (never a secret). */
void
s2a_hooksadmin_list(s2a_req_t *req)
{
    ask(req, HOOK_LIST, 0, json_pack("{s:s}", "op", "webhooks_list"));
}

/* POST /api/webhooks {url, event_types?, enabled?}: a new endpoint and
 * its secret, shown this once. */
void
s2a_hooksadmin_create(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true);

    if (in == NULL) {
        return;
    }
    ask(req, HOOK_CREATE, 0,
        json_pack("{s:s, s:o}", "op", "webhook_create", "fields", in));
}

/* PUT /api/webhooks/{id} {url?, event_types?, enabled?, rotate_secret?}. */
void
s2a_hooksadmin_update(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true);

    if (in == NULL) {
        return;
    }
    ask(req, HOOK_UPDATE, req->path_id,
        json_pack("{s:s, s:I, s:o}", "op", "webhook_update", "webhook_id",
                  (json_int_t) req->path_id, "fields", in));
}

/* DELETE /api/webhooks/{id}: the endpoint and its deliveries. */
void
s2a_hooksadmin_delete(s2a_req_t *req)
{
    ask(req, HOOK_DELETE, req->path_id,
        json_pack("{s:s, s:I}", "op", "webhook_delete", "webhook_id",
                  (json_int_t) req->path_id));
}

/* GET /api/webhooks/{id}/deliveries?limit=: newest first. */
void
s2a_hooksadmin_deliveries(s2a_req_t *req)
{
    char *limit = s2a_req_query_param(req, "limit"), *end = NULL;
    long n = 100;

    if (limit != NULL) {
        errno = 0;
        n = strtol(limit, &end, 10);
        if (limit[0] == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 1000)
        {
            free(limit);
            s2a_http_reply_detail(req, 400,
                                  "limit must be an integer from 1 to 1000");
            return;
        }
        free(limit);
    }
    ask(req, HOOK_DELIVERIES, req->path_id,
        json_pack("{s:s, s:I, s:i}", "op", "webhook_deliveries", "webhook_id",
                  (json_int_t) req->path_id, "limit", (int) n));
}

/* POST /api/webhooks/{id}/test: a webhook.test event for it. */
void
s2a_hooksadmin_test(s2a_req_t *req)
{
    ask(req, HOOK_TEST, req->path_id,
        json_pack("{s:s, s:I}", "op", "webhook_test", "webhook_id",
                  (json_int_t) req->path_id));
}
