/*
 * routes.c: the one route table of a worker and the dispatch that reads
 * it: /v1 (OpenAI API), /api (admin API), health, media, test hooks and
 * the admin UI's static files. Each row names its methods, its path
 * pattern, the credential it needs, its usage-counter name and its
 * handler; 404, 405 with Allow and the order of checks (credential first,
 * then whether the method exists) all come from the table. Also here: the
 * API-key check, CORS, /healthz, /readyz and /v1/models.
 */
#include "worker/routes.h"
#include "worker/characters.h"
#include "worker/chat.h"
#include "worker/charadmin.h"
#include "common/crypto.h"
#include "common/keyspec.h"
#include "common/log.h"
#include "common/models.h"
#include "worker/admin.h"
#include "worker/apikeys.h"
#include "worker/context.h"
#include "worker/data.h"
#include "worker/hooksadmin.h"
#include "worker/images.h"
#include "worker/videos.h"
#include "worker/media.h"
#include "worker/metrics.h"
#include "worker/records.h"
#include "worker/static.h"
#ifdef S2A_TEST_HOOKS
#include "worker/testhooks.h"
#endif
#include "worker/tokbatch.h"
#include "worker/tokens.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A fixed date keeps /v1/models byte-identical across restarts. */
#define MODELS_CREATED 1735689600

typedef void (*route_handler_pt)(s2a_req_t *req);

/* The credential a route needs, checked before its method. */
typedef enum {
    AUTH_NONE = 0,
    AUTH_API_KEY, /* Authorization: Bearer <API key> */
    AUTH_SESSION  /* an admin session (s2a_admin_check) */
} route_auth_t;

/*
 * Paths fall in families by their first segment. A row serves only paths
 * of its own family; a path no row matches gets the family's credential
 * check, counter name and error envelope.
 */
typedef enum {
    FAMILY_OTHER = 0, /* health, media, static files */
    FAMILY_V1,        /* /v1, /v1/...: OpenAI error envelope, CORS */
    FAMILY_API        /* /api/...: {"detail"} errors, CORS */
} route_family_t;

/* How a family answers browsers from other origins. */
typedef enum {
    CORS_NONE = 0, /* no CORS headers; preflight answered permissively */
    CORS_ANY,      /* Access-Control-Allow-Origin: * (the OpenAI API) */
    CORS_ALLOWLIST /* only origins in admin_cors_origins, reflected */
} route_cors_t;

typedef struct route_family_info_s {
    route_auth_t auth;        /* for a path no row matches */
    const char *unknown_name; /* its counter name */
    bool detail;              /* {"detail"} rather than {"error"} */
    route_cors_t cors;
    bool admin; /* the admin's: security headers on every answer */
} route_family_info_t;

static const route_family_info_t families[] = {
    [FAMILY_OTHER] = { AUTH_NONE, "static", false, CORS_NONE, false },
    [FAMILY_V1] = { AUTH_API_KEY, "unknown", false, CORS_ANY, false },
    [FAMILY_API] = { AUTH_SESSION, "admin", true, CORS_ALLOWLIST, true },
};

/*
 * Body limits: the admin API takes small JSON documents, 1 MiB at most
 * (or max_body_size when lower); rows marked R_BIG_BODY take up to
 * max_body_size: generation (image data in the prompt), the token
 * import (a whole exported pool) and the batch add (a pasted list).
 */
#define ADMIN_BODY_MAX (1024 * 1024)

/* Row flags. */
#define R_BIG_BODY 0x01 /* body up to max_body_size */
#define R_ADMIN_UI 0x02 /* the admin UI's files: security headers */

/* Security headers of the admin UI and the admin API. */
#define CSP_UI \
    "default-src 'self'; img-src 'self' data: blob:; " \
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; " \
    "form-action 'self'; frame-ancestors 'none'"
#define CSP_API "default-src 'none'; frame-ancestors 'none'"

/*
 * One row. `pattern` is literal text plus "{id}" segments (a positive
 * decimal integer that fits int64_t, handed over in req->path_id); a
 * pattern ending in '/' is a prefix and what follows it is handed over in
 * req->path_tail. Rows are tried in order; the first whose pattern and
 * method match serves the request.
 */
typedef struct route_s {
    unsigned methods; /* bit per s2a_method_t */
    const char *pattern;
    route_auth_t auth;
    const char *name; /* route class for usage counters */
    route_handler_pt handler;
    unsigned flags; /* R_* */
} route_t;

#define BIT(m)   (1u << (m))
#define M_GET    (BIT(S2A_M_GET) | BIT(S2A_M_HEAD))
#define M_POST   BIT(S2A_M_POST)
#define M_PUT    BIT(S2A_M_PUT)
#define M_DELETE BIT(S2A_M_DELETE)
#define M_PATCH  BIT(S2A_M_PATCH)

static char *models_body;
static size_t models_len;
static json_t *models_by_id;

/*
 * The list as keys with a model allow-list see it: rendered once per
 * mask and kept, a few masks per worker (most keys share a handful of
 * lists), the oldest replaced first.
 */
#define MODELS_MASKS 16
static struct {
    uint32_t mask; /* 0: free */
    char *body;
    size_t len;
} models_masked[MODELS_MASKS];
static unsigned models_masked_next;

static void handle_models(s2a_req_t *req);
static void handle_healthz(s2a_req_t *req);
static void handle_readyz(s2a_req_t *req);
static void handle_media(s2a_req_t *req);

static const route_t routes[] = {
    /* OpenAI API */
    { M_GET, "/v1/models", AUTH_API_KEY, "models", handle_models, 0 },
    { M_GET, "/v1/models/", AUTH_API_KEY, "models", handle_models, 0 },
    { M_POST, "/v1/chat/completions", AUTH_API_KEY, "chat",
      s2a_chat_completions, R_BIG_BODY },
    { M_POST, "/v1/images/generations", AUTH_API_KEY, "images",
      s2a_images_generations, R_BIG_BODY },
    { M_POST, "/v1/images/edits", AUTH_API_KEY, "images", s2a_images_edits,
      R_BIG_BODY },
    { M_POST, "/v1/videos", AUTH_API_KEY, "videos", s2a_videos_create,
      R_BIG_BODY },
    { M_GET, "/v1/videos", AUTH_API_KEY, "videos", s2a_videos_list, 0 },
    /* Before the /v1/videos/ prefix rows, which would take them. */
    { M_POST, "/v1/videos/characters", AUTH_API_KEY, "characters",
      s2a_videos_characters_create, R_BIG_BODY },
    { M_GET, "/v1/videos/characters/", AUTH_API_KEY, "characters",
      s2a_videos_characters_get, 0 },
    { M_GET | M_DELETE, "/v1/videos/", AUTH_API_KEY, "videos", s2a_videos_item,
      0 },
    { M_POST, "/v1/videos/", AUTH_API_KEY, "videos", s2a_videos_remix, 0 },
    /* Sora data (data.c) */
    { M_GET, "/v1/stats", AUTH_API_KEY, "data", s2a_data_stats, 0 },
    { M_GET, "/v1/invite-codes", AUTH_API_KEY, "data", s2a_data_invite_codes,
      0 },
    { M_GET, "/v1/profiles/", AUTH_API_KEY, "data", s2a_data_profile, 0 },
    { M_GET, "/v1/users/", AUTH_API_KEY, "data", s2a_data_user_feed, 0 },
    { M_GET, "/v1/characters/search", AUTH_API_KEY, "data", s2a_data_search,
      0 },
    { M_GET, "/v1/feed", AUTH_API_KEY, "data", s2a_data_feed, 0 },
    { M_GET, "/v1/tokens/{id}/profile-feed", AUTH_API_KEY, "data",
      s2a_data_token_feed, 0 },
    /* Character creation (characters.c) */
    { M_POST, "/v1/characters", AUTH_API_KEY, "characters",
      s2a_characters_create, R_BIG_BODY },

    /* admin API: sessions and settings */
    { M_POST, "/api/login", AUTH_NONE, "admin", s2a_admin_login, 0 },
    { M_POST, "/api/logout", AUTH_SESSION, "admin", s2a_admin_logout, 0 },
    { M_GET, "/api/session", AUTH_SESSION, "admin", s2a_admin_session, 0 },
    { M_POST, "/api/admin/password", AUTH_SESSION, "admin", s2a_admin_password,
      0 },
    { M_POST, "/api/admin/apikey", AUTH_SESSION, "admin", s2a_admin_apikey, 0 },
    { M_GET, "/api/admin/config", AUTH_SESSION, "admin", s2a_admin_config_get,
      0 },
    { M_POST, "/api/admin/config", AUTH_SESSION, "admin", s2a_admin_config_post,
      0 },
    { M_GET, "/api/proxy/config", AUTH_SESSION, "admin", s2a_admin_proxy_get,
      0 },
    { M_POST, "/api/proxy/config", AUTH_SESSION, "admin", s2a_admin_proxy_post,
      0 },
    { M_POST, "/api/proxy/test", AUTH_SESSION, "admin", s2a_admin_proxy_test,
      0 },
    { M_GET, "/api/watermark-free/config", AUTH_SESSION, "admin",
      s2a_admin_watermark_get, 0 },
    { M_POST, "/api/watermark-free/config", AUTH_SESSION, "admin",
      s2a_admin_watermark_post, 0 },
    { M_GET, "/api/generation/timeout", AUTH_SESSION, "admin",
      s2a_admin_timeout_get, 0 },
    { M_POST, "/api/generation/timeout", AUTH_SESSION, "admin",
      s2a_admin_timeout_post, 0 },
    { M_GET, "/api/cache/config", AUTH_SESSION, "admin", s2a_admin_cache_get,
      0 },
    { M_POST, "/api/cache/config", AUTH_SESSION, "admin",
      s2a_admin_cache_config, 0 },
    { M_POST, "/api/cache/enabled", AUTH_SESSION, "admin",
      s2a_admin_cache_enabled, 0 },
    { M_POST, "/api/cache/base-url", AUTH_SESSION, "admin",
      s2a_admin_cache_base_url, 0 },
    { M_GET, "/api/token-refresh/config", AUTH_SESSION, "admin",
      s2a_admin_refresh_get, 0 },
    { M_POST, "/api/token-refresh/enabled", AUTH_SESSION, "admin",
      s2a_admin_refresh_enabled, 0 },
    { M_GET, "/api/models", AUTH_SESSION, "admin", s2a_admin_models, 0 },

    /* admin API: the account pool */
    { M_GET, "/api/tokens", AUTH_SESSION, "tokens", s2a_tokens_list, 0 },
    { M_POST, "/api/tokens", AUTH_SESSION, "tokens", s2a_tokens_add, 0 },
    { M_GET, "/api/tokens/export", AUTH_SESSION, "tokens", s2a_tokens_export,
      0 },
    { M_POST, "/api/tokens/import", AUTH_SESSION, "tokens", s2a_tokens_import,
      R_BIG_BODY },
    { M_POST, "/api/tokens/batch", AUTH_SESSION, "tokens", s2a_tokens_batch,
      R_BIG_BODY },
    { M_POST, "/api/tokens/st2at", AUTH_SESSION, "tokens", s2a_tokens_st2at,
      0 },
    { M_POST, "/api/tokens/rt2at", AUTH_SESSION, "tokens", s2a_tokens_rt2at,
      0 },
    { M_PUT, "/api/tokens/{id}", AUTH_SESSION, "tokens", s2a_tokens_update, 0 },
    { M_DELETE, "/api/tokens/{id}", AUTH_SESSION, "tokens", s2a_tokens_delete,
      0 },
    { M_POST, "/api/tokens/{id}/enable", AUTH_SESSION, "tokens",
      s2a_tokens_enable, 0 },
    { M_POST, "/api/tokens/{id}/disable", AUTH_SESSION, "tokens",
      s2a_tokens_disable, 0 },
    { M_PUT, "/api/tokens/{id}/status", AUTH_SESSION, "tokens",
      s2a_tokens_status, 0 },
    { M_POST, "/api/tokens/{id}/test", AUTH_SESSION, "tokens", s2a_tokens_test,
      0 },
    { M_POST, "/api/tokens/{id}/sora2/activate", AUTH_SESSION, "tokens",
      s2a_tokens_activate, 0 },
    { M_POST, "/api/tokens/batch/enable", AUTH_SESSION, "tokens",
      s2a_tokbatch_enable, 0 },
    { M_POST, "/api/tokens/batch/disable", AUTH_SESSION, "tokens",
      s2a_tokbatch_disable, 0 },
    { M_POST, "/api/tokens/batch/delete", AUTH_SESSION, "tokens",
      s2a_tokbatch_delete, 0 },
    { M_POST, "/api/tokens/batch/test", AUTH_SESSION, "tokens",
      s2a_tokens_batch_test, 0 },

    /* admin API: webhooks */
    { M_GET, "/api/webhooks", AUTH_SESSION, "webhooks", s2a_hooksadmin_list,
      0 },
    { M_POST, "/api/webhooks", AUTH_SESSION, "webhooks", s2a_hooksadmin_create,
      0 },
    { M_PUT, "/api/webhooks/{id}", AUTH_SESSION, "webhooks",
      s2a_hooksadmin_update, 0 },
    { M_DELETE, "/api/webhooks/{id}", AUTH_SESSION, "webhooks",
      s2a_hooksadmin_delete, 0 },
    { M_GET, "/api/webhooks/{id}/deliveries", AUTH_SESSION, "webhooks",
      s2a_hooksadmin_deliveries, 0 },
    { M_POST, "/api/webhooks/{id}/test", AUTH_SESSION, "webhooks",
      s2a_hooksadmin_test, 0 },
    /* admin API: named API keys */
    { M_GET, "/api/keys", AUTH_SESSION, "keys", s2a_apikeys_list, 0 },
    { M_POST, "/api/keys", AUTH_SESSION, "keys", s2a_apikeys_create, 0 },
    { M_GET, "/api/keys/{id}", AUTH_SESSION, "keys", s2a_apikeys_get, 0 },
    { M_PUT, "/api/keys/{id}", AUTH_SESSION, "keys", s2a_apikeys_update, 0 },
    { M_DELETE, "/api/keys/{id}", AUTH_SESSION, "keys", s2a_apikeys_delete, 0 },
    { M_GET, "/api/keys/{id}/usage", AUTH_SESSION, "keys", s2a_apikeys_usage,
      0 },
    /* admin API: characters (charadmin.c) */
    { M_GET, "/api/characters", AUTH_SESSION, "characters", s2a_charadmin_list,
      0 },
    { M_GET | M_POST | M_PATCH | M_DELETE, "/api/characters/", AUTH_SESSION,
      "characters", s2a_charadmin_item, 0 },
    { M_GET, "/api/tokens/{id}/characters", AUTH_SESSION, "characters",
      s2a_charadmin_token, 0 },

    /* admin API: records */
    { M_GET, "/api/logs", AUTH_SESSION, "tokens", s2a_records_logs, 0 },
    { M_GET, "/api/tasks", AUTH_SESSION, "tokens", s2a_records_tasks, 0 },
    { M_GET, "/api/stats", AUTH_SESSION, "tokens", s2a_records_stats, 0 },

    /* public */
    { M_GET, "/healthz", AUTH_NONE, "health", handle_healthz, 0 },
    { M_GET, "/readyz", AUTH_NONE, "health", handle_readyz, 0 },
    { M_GET, "/metrics", AUTH_NONE, "metrics", s2a_metrics_serve, 0 },
    { M_GET, "/tmp/", AUTH_NONE, "media", handle_media, 0 },
    /* the admin UI: every other path outside /v1 and /api */
    { M_GET, "/", AUTH_NONE, "static", s2a_static_serve, R_ADMIN_UI },
};

/* Renders the /v1/models bodies once per worker; see routes.h. */
int
s2a_routes_init(void)
{
    json_t *list, *data, *m;
    size_t i;

    /* Every route class is one /metrics knows (common/stats.c): a name
     * it does not know would be counted as "other". */
    for (i = 0; i < S2A_NELEMS(routes); i++) {
        if (s2a_stats_route_class(routes[i].name) == S2A_RC_OTHER) {
            s2a_log(LOG_CRIT, 0, "route %s: class \"%s\" unknown to /metrics",
                    routes[i].pattern, routes[i].name);
            return S2A_ERROR;
        }
    }
    for (i = 0; i < S2A_NELEMS(families); i++) {
        if (s2a_stats_route_class(families[i].unknown_name) == S2A_RC_OTHER) {
            s2a_log(LOG_CRIT, 0, "route class \"%s\" unknown to /metrics",
                    families[i].unknown_name);
            return S2A_ERROR;
        }
    }
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

/* Frees what s2a_routes_init made. */
void
s2a_routes_cleanup(void)
{
    size_t i;

    for (i = 0; i < MODELS_MASKS; i++) {
        free(models_masked[i].body);
        models_masked[i].body = NULL;
        models_masked[i].mask = 0;
    }
    free(models_body);
    models_body = NULL;
    json_decref(models_by_id);
    models_by_id = NULL;
}

/*
 * Checks the Bearer token against the named API keys (apikeys.c);
 * answers 401 or 429 (OpenAI envelope) and returns false when it fails.
 * On success the key's id becomes the request's owner.
 */
bool
s2a_routes_check_api_key(s2a_req_t *req)
{
    const char *h = s2a_req_header(req, "Authorization");

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
    /* The named keys' table (apikeys.c): the key's MAC is looked up, so
     * the time does not depend on where a wrong key differs; it sets
     * req->key_id and the rate-limit headers. */
    if (!s2a_apikeys_check(req, h)) {
        return false;
    }
    req->owner = req->key_id;
    return true;
}

/* The /v1/models body of model mask `mask` (non-zero), from the cache
 * or rendered into it; NULL when out of memory. */
static const char *
models_for_mask(uint32_t mask, size_t *len)
{
    json_t *data, *list;
    unsigned slot;
    size_t i;
    char *body;

    for (i = 0; i < MODELS_MASKS; i++) {
        if (models_masked[i].mask == mask && models_masked[i].body != NULL) {
            *len = models_masked[i].len;
            return models_masked[i].body;
        }
    }
    data = json_array();
    for (i = 0; data != NULL && i < s2a_nmodels; i++) {
        if (s2a_keyspec_model_allowed(mask, i)) {
            json_array_append(data,
                              json_object_get(models_by_id, s2a_models[i].id));
        }
    }
    list = json_pack("{s:s, s:o}", "object", "list", "data", data);
    body = list != NULL ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (body == NULL) {
        return NULL;
    }
    slot = models_masked_next++ % MODELS_MASKS;
    free(models_masked[slot].body);
    models_masked[slot].mask = mask;
    models_masked[slot].body = body;
    models_masked[slot].len = strlen(body);
    *len = models_masked[slot].len;
    return body;
}

/*
 * GET /v1/models and /v1/models/{id}: every model, or for a key with a
 * model allow-list the models it may use (another one is 404, as for an
 * unknown id: the OpenAI API answers a model a project cannot use so).
 */
static void
handle_models(s2a_req_t *req)
{
    const char *tail = req->path_tail, *body;
    const s2a_model_t *model;
    json_t *m;
    size_t len;

    if (tail == NULL || tail[0] == '\0') {
        if (req->key_models == 0) {
            s2a_http_reply(req, 200, "application/json", models_body,
                           models_len);
            return;
        }
        body = models_for_mask(req->key_models, &len);
        if (body == NULL) {
            s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                                 "out of memory");
            return;
        }
        s2a_http_reply(req, 200, "application/json", body, len);
        return;
    }
    m = strchr(tail, '/') == NULL ? json_object_get(models_by_id, tail) : NULL;
    model = m != NULL ? s2a_model_find(tail) : NULL;
    if (model != NULL && req->key_models != 0
        && !s2a_keyspec_model_allowed(req->key_models,
                                      (size_t) (model - s2a_models)))
    {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "model_not_found", "model",
                             "The model '%s' does not exist or you do not "
                             "have access to it.",
                             model->id);
        return;
    }
    if (m == NULL) {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "model_not_found", "model",
                             "The model '%.100s' does not exist.", tail);
        return;
    }
    s2a_http_reply_json(req, 200, m);
}

static void
handle_healthz(s2a_req_t *req)
{
    S2A_HTTP_REPLY_LIT(req, 200, "application/json", "{\"status\":\"ok\"}");
}

typedef struct readyz_s {
    s2a_req_t *req;
    uint64_t call;
    bool verbose; /* ?verbose=1: the upstream health too */
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
    if (body != NULL && r->verbose) {
        json_object_set_new(body, "upstream", s2a_metrics_health_json());
    }
    r->req->on_gone = NULL;
    s2a_http_reply_json(r->req, db_ok ? 200 : 503, body);
    json_decref(body);
    free(r);
}

static void
handle_readyz(s2a_req_t *req)
{
    readyz_t *r;
    json_t *msg;
    char *v;

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
    v = s2a_req_query_param(req, "verbose");
    r->verbose = v != NULL && strcmp(v, "1") == 0;
    free(v);
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

/* Whether `origin` is one of the blank-separated admin_cors_origins. */
static bool
admin_origin_allowed(const char *origin)
{
    const char *p = s2a_worker.conf->admin_cors_origins;
    size_t olen = strlen(origin), n;

    while (*p != '\0') {
        p += strspn(p, " \t");
        n = strcspn(p, " \t");
        if (n > 0 && n == olen && memcmp(p, origin, n) == 0) {
            return true;
        }
        p += n;
    }
    return false;
}

/*
 * The CORS headers of an answer in a family with `cors`; returns whether
 * the request's origin may call it (for the preflight).
 */
static bool
cors_headers(s2a_req_t *req, route_cors_t cors)
{
    const char *origin;

    switch (cors) {
    case CORS_ANY:
        s2a_http_add_header(req, "Access-Control-Allow-Origin", "*");
        return true;
    case CORS_ALLOWLIST:
        /* Caches must not hand one origin's answer to another. */
        s2a_http_add_header(req, "Vary", "Origin");
        origin = s2a_req_header(req, "Origin");
        if (origin == NULL || !admin_origin_allowed(origin)) {
            return false;
        }
        s2a_http_add_header(req, "Access-Control-Allow-Origin", origin);
        return true;
    case CORS_NONE: break;
    }
    return false;
}

/* Framing, sniffing, referrer and content policy of the admin's pages;
 * the UI's files get nosniff from static.c. */
static void
security_headers(s2a_req_t *req, const char *csp)
{
    s2a_http_add_header(req, "X-Frame-Options", "DENY");
    if (csp != NULL && strcmp(csp, CSP_UI) != 0) {
        s2a_http_add_header(req, "X-Content-Type-Options", "nosniff");
    }
    s2a_http_add_header(req, "Referrer-Policy", "no-referrer");
    s2a_http_add_header(req, "Content-Security-Policy", csp);
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

static void
handle_media(s2a_req_t *req)
{
    s2a_media_serve(req, req->path_tail);
}

static route_family_t
family_of(const char *path)
{
    if (strncmp(path, "/v1/", 4) == 0 || strcmp(path, "/v1") == 0) {
        return FAMILY_V1;
    }
    if (strncmp(path, "/api/", 5) == 0) {
        return FAMILY_API;
    }
    return FAMILY_OTHER;
}

/*
 * Parses the {id} segment [s, end): a decimal integer from 1 to INT64_MAX
 * without sign or leading zeros. Returns false for anything else.
 */
static bool
parse_id(const char *s, const char *end, int64_t *id)
{
    int64_t v = 0;
    int d;

    if (s == end || *s < '1' || *s > '9') {
        return false;
    }
    for (; s < end; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        d = *s - '0';
        if (v > (INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *id = v;
    return true;
}

/*
 * Matches `path` against `pattern` (see route_t), filling `id` and `tail`
 * for the parameters the pattern has.
 */
static bool
route_match(const char *pattern, const char *path, int64_t *id,
            const char **tail)
{
    const char *p = pattern, *end;

    while (*p != '\0') {
        if (*p == '{') {
            end = path + strcspn(path, "/");
            if (!parse_id(path, end, id)) {
                return false;
            }
            path = end;
            p = strchr(p, '}');
            p = p != NULL ? p + 1 : "";
            continue;
        }
        if (*p != *path) {
            return false;
        }
        p++;
        path++;
        if (*p == '\0' && p[-1] == '/') {
            *tail = path;
            return true;
        }
    }
    return *path == '\0';
}

static bool
check_auth(s2a_req_t *req, route_auth_t auth)
{
    switch (auth) {
    case AUTH_API_KEY: return s2a_routes_check_api_key(req);
    case AUTH_SESSION: return s2a_admin_check(req);
    case AUTH_NONE: break;
    }
    return true;
}

static void
reply_not_found(s2a_req_t *req, const route_family_info_t *f)
{
    if (f->detail) {
        s2a_http_reply_detail(req, 404, "Not found");
        return;
    }
    s2a_http_reply_error(req, 404, "invalid_request_error", "unknown_url", NULL,
                         "Unknown request URL: %s %.200s", req->method_name,
                         req->raw_path);
}

static void
reply_bad_method(s2a_req_t *req, const route_family_info_t *f, unsigned allowed)
{
    allow_header(req, allowed);
    if (f->detail) {
        s2a_http_reply_detail(req, 405, "Method not allowed");
        return;
    }
    s2a_http_reply_error(
        req, 405, "invalid_request_error", "method_not_allowed", NULL,
        "Method %s is not allowed for %.200s", req->method_name, req->raw_path);
}

/*
 * Admits one request from its head, before its body is read: CORS and
 * preflight, the test hooks, then the table. The credential (of the row
 * that will serve it, else of the first row matching the path, else of
 * the path's family) is checked before anything else is revealed, and
 * before any body is buffered; a path no row serves gets 405 (Allow:
 * every method of the rows matching the path) or 404 in the family's
 * envelope. Then the row's body limit is set and the row is kept in the
 * request for s2a_routes_dispatch. See s2a_http_admit_pt.
 */
int
s2a_routes_admit(s2a_req_t *req, void *arg, int64_t *body_limit)
{
    const route_t *r, *first = NULL, *match = NULL;
    const route_family_info_t *f;
    const char *tail, *match_tail = "";
    int64_t id, match_id = 0, max = s2a_worker.conf->max_body_size;
    route_family_t fam;
    unsigned allowed = 0;
    bool origin_ok;
    size_t i;

    S2A_UNUSED(arg);
    if (s2a_worker.shm->workers[s2a_worker.args->shm_row].pid != 0) {
        s2a_worker.shm->workers[s2a_worker.args->shm_row].requests++;
    }
    *body_limit = max < ADMIN_BODY_MAX ? max : ADMIN_BODY_MAX;
    fam = family_of(req->path);
    f = &families[fam];
    if (f->admin) {
        security_headers(req, CSP_API);
    }
    origin_ok = cors_headers(req, f->cors);
    /* A preflight from an origin the admin did not allow is an ordinary
     * OPTIONS request: it needs the credential and finds no route. */
    if (req->method == S2A_M_OPTIONS
        && (f->cors != CORS_ALLOWLIST || origin_ok)) {
        req->route = "preflight";
        if (f->cors == CORS_NONE) {
            cors_headers(req, CORS_ANY);
        }
        preflight(req);
        return S2A_DECLINED;
    }
#ifdef S2A_TEST_HOOKS
    /* Test hooks (test builds only): outside the table, no auth. */
    if (s2a_worker.test_hooks && strncmp(req->path, "/__test/", 8) == 0) {
        req->route = "test";
        req->route_row = NULL;
        *body_limit = max;
        return S2A_OK;
    }
#endif

    for (i = 0; i < S2A_NELEMS(routes); i++) {
        r = &routes[i];
        id = 0;
        tail = "";
        if (family_of(r->pattern) != fam
            || !route_match(r->pattern, req->path, &id, &tail))
        {
            continue;
        }
        if (first == NULL) {
            first = r;
        }
        allowed |= r->methods;
        if (match == NULL && (r->methods & BIT(req->method))) {
            match = r;
            match_id = id;
            match_tail = tail;
        }
    }
    r = match != NULL ? match : first;
    req->route = r != NULL ? r->name : f->unknown_name;
    if (fam == FAMILY_OTHER && (r == NULL || (r->flags & R_ADMIN_UI))) {
        security_headers(req, CSP_UI);
    }
    /* The credential comes first: without it, nobody learns which paths
     * or methods exist, and no body is read. */
    if (!check_auth(req, r != NULL ? r->auth : f->auth)) {
        return S2A_DECLINED;
    }
    if (match == NULL) {
        if (first != NULL) {
            reply_bad_method(req, f, allowed);
        } else {
            reply_not_found(req, f);
        }
        return S2A_DECLINED;
    }
    req->path_id = match_id;
    req->path_tail = match_tail;
    req->route_row = match;
    if (match->flags & R_BIG_BODY) {
        *body_limit = max;
    }
    return S2A_OK;
}

/*
 * Serves a request s2a_routes_admit accepted, its body now read: runs the
 * row it chose (or the test hooks).
 */
void
s2a_routes_dispatch(s2a_req_t *req, void *arg)
{
    const route_t *r = req->route_row;

    S2A_UNUSED(arg);
    if (r != NULL) {
        r->handler(req);
        return;
    }
#ifdef S2A_TEST_HOOKS
    if (s2a_worker.test_hooks && strncmp(req->path, "/__test/", 8) == 0) {
        s2a_testhooks_dispatch(req);
        return;
    }
#endif
    /* Not admitted (no admission callback): nothing serves it. */
    s2a_http_reply_error(req, 500, "server_error", NULL, NULL,
                         "The request was not routed.");
}
