/*
 * sora.c: Sora protocol framing over the upstream client.
 */
#include "worker/sora.h"
#include "common/crypto.h"
#include "worker/context.h"
#include "worker/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SORA_ORIGIN "https://sora.chatgpt.com"
#define SORA_UA \
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 " \
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

typedef struct pending_s {
    uint64_t id;
    s2a_sora_done_pt done;
    void *arg;
    struct pending_s *next;
} pending_t;

static pending_t *pendings; /* calls in flight, for cancelling */

static void
pending_unlink(pending_t *p)
{
    pending_t **pp;

    for (pp = &pendings; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

static void
on_done(const s2a_upstream_resp_t *resp, void *arg)
{
    pending_t p = *(pending_t *) arg;
    s2a_sora_result_t r;
    json_t *err;
    char msg[256];

    pending_unlink(arg);
    free(arg);
    memset(&r, 0, sizeof(r));
    r.status = resp->curl_code == 0 ? resp->status : 0;
    r.body = resp->body;
    if (resp->body_len > 0) {
        r.json = json_loadb(resp->body, resp->body_len, 0, NULL);
    }
    err = json_object_get(r.json, "error");
    if (json_is_object(err)) {
        r.error_code = json_string_value(json_object_get(err, "code"));
        r.error_message = json_string_value(json_object_get(err, "message"));
    } else if (json_is_string(err)) {
        r.error_message = json_string_value(err);
    }
    if (r.status == 0) {
        r.error_message = resp->error;
    } else if (r.error_message == NULL && (r.status < 200 || r.status > 299)) {
        snprintf(msg, sizeof(msg), "upstream answered HTTP %ld", r.status);
        r.error_message = msg;
    }
    p.done(&r, p.arg);
    json_decref(r.json);
}

/*
 * The openai-sentinel-token header of generation and publish calls: 10 to
 * 20 random letters and digits (protocol 2.3, the form the backend
 * accepted when the contract was written).
 */
static void
sentinel_header(char *out, size_t outlen)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint8_t r[21];
    size_t n, i, len;

    s2a_random_bytes(r, sizeof(r));
    len = 10 + r[0] % 11;
    n = (size_t) snprintf(out, outlen, "openai-sentinel-token: ");
    for (i = 0; i < len && n + 1 < outlen; i++) {
        out[n++] = alnum[r[i + 1] % (sizeof(alnum) - 1)];
    }
    out[n] = '\0';
}

uint64_t
s2a_sora_start(const s2a_sora_call_t *call, s2a_sora_done_pt done, void *arg)
{
    const s2a_conf_t *conf = s2a_worker.conf;
    s2a_upstream_req_t req;
    char url[1024], cookie[4096], sentinel[64];
    char *body = NULL;
    pending_t *p;
    uint64_t id;
    int h = 0;

    switch (call->host) {
    case S2A_SORA_SESSION:
        snprintf(url, sizeof(url), "%s", conf->session_url);
        break;
    case S2A_SORA_OAUTH:
        snprintf(url, sizeof(url), "%s", conf->oauth_url);
        break;
    case S2A_SORA_URL: snprintf(url, sizeof(url), "%s", call->path); break;
    default:
        snprintf(url, sizeof(url), "%s%s", conf->base_url, call->path);
        break;
    }
    memset(&req, 0, sizeof(req));
    req.method = call->method;
    req.url = url;
    req.bearer = call->at;
    req.proxy = call->proxy;
    /* No per-token proxy: the global one, when it is switched on. */
    if (req.proxy == NULL) {
        s2a_worker_refresh_settings();
        if (s2a_worker.settings.proxy_enabled
            && s2a_worker.settings.proxy_url[0] != '\0')
        {
            req.proxy = s2a_worker.settings.proxy_url;
        }
    }
    req.timeout_ms = call->timeout_ms;
    req.headers[h++] = "Accept: application/json";
    req.headers[h++] = "User-Agent: " SORA_UA;
    req.headers[h++] = "Origin: " SORA_ORIGIN;
    req.headers[h++] = "Referer: " SORA_ORIGIN "/";
    if (call->cookie != NULL) {
        snprintf(cookie, sizeof(cookie), "Cookie: %s", call->cookie);
        req.headers[h++] = cookie;
    }
    if (call->sentinel) {
        sentinel_header(sentinel, sizeof(sentinel));
        req.headers[h++] = sentinel;
    }
    req.parts = call->parts;
    req.nparts = call->nparts;
    if (call->body != NULL) {
        body = json_dumps(call->body, JSON_COMPACT);
        if (body == NULL) {
            return 0;
        }
        req.body = body;
        req.body_len = strlen(body);
        req.content_type = "application/json";
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        free(body);
        return 0;
    }
    p->done = done;
    p->arg = arg;
    id = s2a_upstream_start(&req, on_done, p);
    free(body);
    if (id == 0) {
        free(p);
        return 0;
    }
    p->id = id;
    p->next = pendings;
    pendings = p;
    return id;
}

void
s2a_sora_cancel(uint64_t id)
{
    pending_t *p;

    for (p = pendings; p != NULL; p = p->next) {
        if (p->id == id) {
            pending_unlink(p);
            s2a_upstream_cancel(id);
            free(p);
            return;
        }
    }
}

bool
s2a_sora_ok(const s2a_sora_result_t *r)
{
    return r->status >= 200 && r->status <= 299 && r->json != NULL;
}

void
s2a_sora_cleanup(void)
{
    pending_t *p;

    while ((p = pendings) != NULL) {
        pendings = p->next;
        free(p);
    }
}

#define DEFAULT_CLIENT_ID "app_LlGpXReQgckcGGUo2JrYvtJK"
#define RT_REDIRECT \
    "com.openai.chat://auth0.openai.com/ios/com.openai.chat/callback"

uint64_t
s2a_sora_session_exchange(const char *st, const char *proxy,
                          s2a_sora_done_pt done, void *arg)
{
    char cookie[8192];
    s2a_sora_call_t c;
    uint64_t id;

    if (snprintf(cookie, sizeof(cookie), "__Secure-next-auth.session-token=%s",
                 st)
        >= (int) sizeof(cookie))
    {
        return 0;
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_SESSION;
    c.method = "GET";
    c.cookie = cookie;
    c.proxy = proxy;
    c.timeout_ms = 30000;
    id = s2a_sora_start(&c, done, arg);
    explicit_bzero(cookie, sizeof(cookie));
    return id;
}

uint64_t
s2a_sora_refresh_exchange(const char *rt, const char *client_id,
                          const char *proxy, s2a_sora_done_pt done, void *arg)
{
    s2a_sora_call_t c;
    json_t *body;
    uint64_t id;

    body =
        json_pack("{s:s, s:s, s:s, s:s}", "client_id",
                  client_id != NULL && client_id[0] != '\0' ? client_id
                                                            : DEFAULT_CLIENT_ID,
                  "grant_type", "refresh_token", "redirect_uri", RT_REDIRECT,
                  "refresh_token", rt);
    if (body == NULL) {
        return 0;
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_OAUTH;
    c.method = "POST";
    c.body = body;
    c.proxy = proxy;
    c.timeout_ms = 30000;
    id = s2a_sora_start(&c, done, arg);
    json_decref(body);
    return id;
}

json_t *
s2a_sora_quota_fields(json_t *check, int64_t now)
{
    json_t *rl = json_object_get(check, "rate_limit_and_credit_balance");
    json_t *v = json_object_get(rl, "estimated_num_videos_remaining");
    json_int_t resets;

    if (!json_is_integer(v)) {
        return NULL;
    }
    resets =
        json_integer_value(json_object_get(rl, "access_resets_in_seconds"));
    /* No videos left: the quota comes back when Sora says it resets. */
    return json_pack(
        "{s:O, s:o}", "sora2_remaining_count", v, "sora2_cooldown_until",
        json_integer_value(v) == 0 && resets > 0 ? json_integer(now + resets)
                                                 : json_null());
}

json_t *
s2a_sora_plan_fields(json_t *subscriptions)
{
    json_t *first = json_array_get(json_object_get(subscriptions, "data"), 0);
    json_t *plan = json_object_get(first, "plan"), *id, *title, *end;

    id = json_object_get(plan, "id");
    title = json_object_get(plan, "title");
    end = json_object_get(first, "end_ts");
    /* An empty list means no paid plan. */
    return json_pack(
        "{s:O, s:O, s:O}", "plan_type", json_is_string(id) ? id : json_null(),
        "plan_title", json_is_string(title) ? title : json_null(),
        "subscription_end", json_is_string(end) ? end : json_null());
}
