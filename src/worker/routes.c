/*
 * routes.c: dispatch table and the routes of the foundation: /healthz,
 * /readyz, /v1/models, CORS preflight, errors for unknown routes and
 * methods. Later subsystems add their rows to `routes`.
 */
#include "worker/routes.h"
#include "worker/chat.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/models.h"
#include "worker/admin.h"
#include "worker/context.h"
#include "worker/media.h"
#include "worker/static.h"
#ifdef S2A_TEST_HOOKS
#include "worker/testhooks.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A fixed date keeps /v1/models byte-identical across restarts. */
#define MODELS_CREATED 1735689600

typedef void (*route_handler_pt)(s2a_req_t *req, const char *tail);

typedef struct route_s {
    const char *prefix; /* path, or prefix when it ends in '/' */
    unsigned methods;   /* bit per s2a_method_t */
    bool api_key;       /* needs the API key */
    const char *name;   /* route class for usage counters */
    route_handler_pt handler;
} route_t;

#define BIT(m) (1u << (m))

static char *models_body;
static size_t models_len;
static json_t *models_by_id;

static void handle_models(s2a_req_t *req, const char *tail);
static void handle_healthz(s2a_req_t *req, const char *tail);
static void handle_readyz(s2a_req_t *req, const char *tail);

static const route_t routes[] = {
    { "/v1/models", BIT(S2A_M_GET) | BIT(S2A_M_HEAD), true, "models",
      handle_models },
    { "/v1/models/", BIT(S2A_M_GET) | BIT(S2A_M_HEAD), true, "models",
      handle_models },
    { "/v1/chat/completions", BIT(S2A_M_POST), true, "chat",
      s2a_chat_completions },
    { "/healthz", BIT(S2A_M_GET) | BIT(S2A_M_HEAD), false, "health",
      handle_healthz },
    { "/readyz", BIT(S2A_M_GET) | BIT(S2A_M_HEAD), false, "health",
      handle_readyz },
};

int
s2a_routes_init(void)
{
    json_t *list, *data, *m;
    size_t i;

    data = json_array();
    models_by_id = json_object();
    for (i = 0; i < s2a_nmodels; i++) {
        m = json_pack("{s:s, s:s, s:i, s:s}", "id", s2a_models[i].id, "object",
                      "model", "created", MODELS_CREATED, "owned_by", "openai");
        json_array_append(data, m);
        json_object_set_new(models_by_id, s2a_models[i].id, m);
    }
    list = json_pack("{s:s, s:o}", "object", "list", "data", data);
    models_body = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    if (models_body == NULL) {
        return S2A_ERROR;
    }
    models_len = strlen(models_body);
    return S2A_OK;
}

void
s2a_routes_cleanup(void)
{
    free(models_body);
    models_body = NULL;
    json_decref(models_by_id);
    models_by_id = NULL;
}

bool
s2a_routes_check_api_key(s2a_req_t *req)
{
    const char *h = s2a_req_header(req, "Authorization");
    uint8_t hash[S2A_SHA256_LEN];

    if (h == NULL || h[0] == '\0') {
        s2a_http_add_header(req, "WWW-Authenticate", "Bearer");
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "You didn't provide an API key. Send it as "
                             "\"Authorization: Bearer YOUR_API_KEY\".");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        s2a_http_add_header(req, "WWW-Authenticate", "Bearer");
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "The Authorization header must use the Bearer "
                             "scheme.");
        return false;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    s2a_worker_refresh_settings();
    /* Comparing fixed-size hashes keeps the time independent of where a
     * wrong key differs and of its length. */
    s2a_sha256(h, strlen(h), hash);
    if (!s2a_ct_equal(hash, s2a_worker.settings.api_key_hash, sizeof(hash))) {
        s2a_http_reply_error(req, 401, "invalid_request_error",
                             "invalid_api_key", NULL,
                             "Incorrect API key provided.");
        return false;
    }
    return true;
}

static void
handle_models(s2a_req_t *req, const char *tail)
{
    json_t *m;

    if (tail == NULL || tail[0] == '\0') {
        s2a_http_reply(req, 200, "application/json", models_body, models_len);
        return;
    }
    m = strchr(tail, '/') == NULL ? json_object_get(models_by_id, tail) : NULL;
    if (m == NULL) {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "model_not_found", "model",
                             "The model '%.100s' does not exist.", tail);
        return;
    }
    s2a_http_reply_json(req, 200, m);
}

static void
handle_healthz(s2a_req_t *req, const char *tail)
{
    S2A_UNUSED(tail);
    S2A_HTTP_REPLY_LIT(req, 200, "application/json", "{\"status\":\"ok\"}");
}

typedef struct readyz_s {
    s2a_req_t *req;
    uint64_t call;
} readyz_t;

static void
readyz_gone(s2a_req_t *req, void *arg)
{
    readyz_t *r = arg;

    S2A_UNUSED(req);
    s2a_worker_call_cancel(r->call);
    free(r);
}

static void
readyz_done(json_t *reply, void *arg)
{
    readyz_t *r = arg;
    bool db_ok = reply != NULL && json_is_true(json_object_get(reply, "ok"));
    json_t *body;

    body = json_pack("{s:s, s:s, s:s, s:i}", "status",
                     db_ok ? "ready" : "not_ready", "database",
                     db_ok ? "ok" : "unavailable", "shm", "ok", "worker",
                     s2a_worker.args->slot);
    r->req->on_gone = NULL;
    s2a_http_reply_json(r->req, db_ok ? 200 : 503, body);
    json_decref(body);
    free(r);
}

static void
handle_readyz(s2a_req_t *req, const char *tail)
{
    readyz_t *r;
    json_t *msg;

    S2A_UNUSED(tail);
    /* The table must be lockable: a broken robust mutex means not ready. */
    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        S2A_HTTP_REPLY_LIT(req, 503, "application/json",
                           "{\"status\":\"not_ready\",\"shm\":\"unusable\"}");
        return;
    }
    s2a_shm_unlock(s2a_worker.shm);
    r = calloc(1, sizeof(*r));
    msg = json_pack("{s:s}", "op", "ping");
    if (r == NULL || msg == NULL) {
        free(r);
        json_decref(msg);
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    r->req = req;
    r->call = s2a_worker_call_master(msg, readyz_done, r);
    json_decref(msg);
    if (r->call == 0) {
        free(r);
        S2A_HTTP_REPLY_LIT(req, 503, "application/json",
                           "{\"status\":\"not_ready\",\"database\":"
                           "\"unavailable\"}");
        return;
    }
    req->on_gone = readyz_gone;
    req->gone_arg = r;
}

static void
cors_headers(s2a_req_t *req)
{
    s2a_http_add_header(req, "Access-Control-Allow-Origin", "*");
}

static void
preflight(s2a_req_t *req)
{
    const char *want = s2a_req_header(req, "Access-Control-Request-Headers");

    s2a_http_add_header(req, "Access-Control-Allow-Methods",
                        "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    s2a_http_add_header(req, "Access-Control-Allow-Headers",
                        want != NULL && strlen(want) < 1024
                            ? want
                            : "Authorization, Content-Type");
    s2a_http_add_header(req, "Access-Control-Max-Age", "86400");
    s2a_http_add_header(req, "Vary", "Origin");
    S2A_HTTP_REPLY_LIT(req, 204, NULL, "");
}

static void
allow_header(s2a_req_t *req, unsigned methods)
{
    static const char *const names[] = { "GET",    "HEAD",  "POST",   "PUT",
                                         "DELETE", "PATCH", "OPTIONS" };
    char buf[128] = "";
    size_t i, n = 0;

    for (i = 0; i < S2A_NELEMS(names); i++) {
        if ((methods & (1u << i)) && n < sizeof(buf)) {
            n += (size_t) snprintf(buf + n, sizeof(buf) - n, "%s%s",
                                   n > 0 ? ", " : "", names[i]);
        }
    }
    s2a_http_add_header(req, "Allow", buf);
}

void
s2a_routes_dispatch(s2a_req_t *req, void *arg)
{
    const route_t *r, *match = NULL;
    const char *tail = NULL;
    size_t i, plen;
    bool is_api;

    S2A_UNUSED(arg);
    if (s2a_worker.shm->workers[s2a_worker.args->shm_row].pid != 0) {
        s2a_worker.shm->workers[s2a_worker.args->shm_row].requests++;
    }
    is_api = strncmp(req->path, "/v1/", 4) == 0 || strcmp(req->path, "/v1") == 0
        || strncmp(req->path, "/api/", 5) == 0;
    if (is_api) {
        cors_headers(req);
    }
    if (req->method == S2A_M_OPTIONS) {
        req->route = "preflight";
        if (!is_api) {
            cors_headers(req);
        }
        preflight(req);
        return;
    }
#ifdef S2A_TEST_HOOKS
    if (s2a_worker.test_hooks && strncmp(req->path, "/__test/", 8) == 0) {
        req->route = "test";
        s2a_testhooks_dispatch(req);
        return;
    }
#endif
    if (strncmp(req->path, "/tmp/", 5) == 0) {
        req->route = "media";
        s2a_media_serve(req, req->path + 5);
        return;
    }
    if (strncmp(req->path, "/api/", 5) == 0 && s2a_admin_dispatch(req)) {
        return;
    }
    for (i = 0; i < S2A_NELEMS(routes); i++) {
        r = &routes[i];
        plen = strlen(r->prefix);
        if (r->prefix[plen - 1] == '/') {
            if (strncmp(req->path, r->prefix, plen) == 0) {
                match = r;
                tail = req->path + plen;
                break;
            }
        } else if (strcmp(req->path, r->prefix) == 0) {
            match = r;
            tail = "";
            break;
        }
    }
    if (match == NULL) {
        if (is_api) {
            req->route = "unknown";
            if (strncmp(req->path, "/v1", 3) == 0
                && !s2a_routes_check_api_key(req)) {
                return;
            }
            s2a_http_reply_error(req, 404, "invalid_request_error",
                                 "unknown_url", NULL,
                                 "Unknown request URL: %s %.200s",
                                 req->method_name, req->raw_path);
            return;
        }
        req->route = "static";
        if (req->method != S2A_M_GET && req->method != S2A_M_HEAD) {
            allow_header(req, BIT(S2A_M_GET) | BIT(S2A_M_HEAD));
            s2a_http_reply_error(req, 405, "invalid_request_error",
                                 "method_not_allowed", NULL,
                                 "Method %s is not allowed for %.200s",
                                 req->method_name, req->raw_path);
            return;
        }
        s2a_static_serve(req);
        return;
    }
    req->route = match->name;
    if (match->api_key && !s2a_routes_check_api_key(req)) {
        return;
    }
    if (!(match->methods & BIT(req->method))) {
        allow_header(req, match->methods);
        s2a_http_reply_error(req, 405, "invalid_request_error",
                             "method_not_allowed", NULL,
                             "Method %s is not allowed for %.200s",
                             req->method_name, req->raw_path);
        return;
    }
    match->handler(req, tail);
}
