/*
 * nowm.c: watermark-free retrieval (protocol 5.7). The third-party URL
 * is only a template, so before it is handed on it is asked for its
 * first byte: a host that cannot serve the clean file means the
 * watermarked one is used, and the post, which nothing needs then, is
 * deleted again.
 */
#include "worker/nowm.h"
#include "common/log.h"
#include "common/shm.h"
#include "worker/context.h"
#include "worker/mediacache.h"
#include "worker/sora.h"
#include "worker/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARSE_TIMEOUT_MS 30000L
#define PROBE_TIMEOUT_MS 30000L
#define PROBE_MAX_BYTES  (64u * 1024)

typedef struct nowm_s {
    uint64_t id;
    uint64_t call;  /* sora call in flight */
    uint64_t probe; /* upstream call asking the clean URL, in flight */
    char *link;     /* the clean URL being probed */
    int64_t token_id;
    char post_id[64];
    s2a_nowm_done_pt done;
    void *arg;
    struct nowm_s *next;
} nowm_t;

static struct {
    nowm_t *list;
    uint64_t next_id;
} N;

static void
nowm_unlink(nowm_t *n)
{
    nowm_t **pp;

    for (pp = &N.list; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            return;
        }
    }
}

static void
nowm_finish(nowm_t *n, const char *url, const char *method, const char *error)
{
    if (url == NULL && n->post_id[0] != '\0') {
        s2a_nowm_delete_post(n->token_id, n->post_id);
    }
    nowm_unlink(n);
    n->done(url, n->post_id, method, error, n->arg);
    free(n->link);
    free(n);
}

/* The clean URL answered (or not): a 2xx with a first byte is enough. */
static void
probed(const s2a_upstream_resp_t *resp, void *arg)
{
    nowm_t *n = arg;
    char error[320];

    n->probe = 0;
    /* A host that ignores Range overruns the small limit: still served. */
    if (resp->status >= 200 && resp->status <= 299
        && (resp->curl_code == 0 || resp->truncated))
    {
        nowm_finish(n, n->link, "third_party", NULL);
        return;
    }
    if (resp->status != 0) {
        snprintf(error, sizeof(error),
                 "the watermark-free video could not be fetched: HTTP %ld",
                 resp->status);
    } else {
        snprintf(error, sizeof(error),
                 "the watermark-free video could not be fetched: %.200s",
                 resp->error);
    }
    nowm_finish(n, NULL, "third_party", error);
}

/* Asks the third-party host for the first byte of the clean file. */
static void
probe_start(nowm_t *n)
{
    s2a_upstream_req_t req;

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.url = n->link;
    req.headers[0] = "Range: bytes=0-0";
    req.proxy = s2a_cache_proxy();
    req.timeout_ms = PROBE_TIMEOUT_MS;
    req.max_response = PROBE_MAX_BYTES;
    req.follow_redirects = true;
    n->probe = s2a_upstream_start(&req, probed, n);
    if (n->probe == 0) {
        nowm_finish(n, NULL, "third_party",
                    "the watermark-free video request did not start");
    }
}

static void
parsed(const s2a_sora_result_t *r, void *arg)
{
    nowm_t *n = arg;
    const char *link =
        json_string_value(json_object_get(r->json, "download_link"));
    char error[320];

    n->call = 0;
    if (r->status != 200 || json_object_get(r->json, "error") != NULL
        || link == NULL
        || (strncmp(link, "http://", 7) != 0
            && strncmp(link, "https://", 8) != 0))
    {
        snprintf(error, sizeof(error), "the parse server failed: %.200s",
                 r->error_message != NULL ? r->error_message
                                          : "no download_link in its answer");
        nowm_finish(n, NULL, "custom", error);
        return;
    }
    nowm_finish(n, link, "custom", NULL);
}

/* The template with every {post_id} replaced. */
static char *
third_party_url(const char *tmpl, const char *post_id)
{
    size_t cap = strlen(tmpl) * 2 + strlen(post_id) * 4 + 1, n = 0;
    char *out = malloc(cap);
    const char *p;

    if (out == NULL) {
        return NULL;
    }
    for (p = tmpl; *p != '\0' && n + 1 < cap;) {
        if (strncmp(p, "{post_id}", 9) == 0 && n + strlen(post_id) + 1 < cap) {
            memcpy(out + n, post_id, strlen(post_id));
            n += strlen(post_id);
            p += 9;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

static void
published(const s2a_sora_result_t *r, void *arg)
{
    nowm_t *n = arg;
    const char *post = json_string_value(
        json_object_get(json_object_get(r->json, "post"), "id"));
    s2a_shm_settings_t *s = &s2a_worker.settings;
    char error[320], url[512], *link;
    json_t *body;
    s2a_sora_call_t c;
    size_t len;

    n->call = 0;
    if (!s2a_sora_ok(r) || post == NULL || post[0] == '\0') {
        snprintf(error, sizeof(error), "publishing failed: %.200s",
                 r->error_message != NULL ? r->error_message
                                          : "Sora returned no post id");
        nowm_finish(n, NULL, NULL, error);
        return;
    }
    snprintf(n->post_id, sizeof(n->post_id), "%s", post);
    s2a_worker_refresh_settings();
    if (!s->wm_custom) {
        link = third_party_url(s->wm_third_party_url, n->post_id);
        if (link == NULL) {
            nowm_finish(n, NULL, "third_party", "out of memory");
            return;
        }
        n->link = link;
        probe_start(n);
        return;
    }
    if (s->wm_custom_url[0] == '\0' || s->wm_custom_token[0] == '\0') {
        nowm_finish(n, NULL, "custom",
                    "the custom parse server URL or token is not set");
        return;
    }
    len = strlen(s->wm_custom_url);
    while (len > 0 && s->wm_custom_url[len - 1] == '/') {
        len--;
    }
    snprintf(url, sizeof(url), "%.*s/get-sora-link", (int) len,
             s->wm_custom_url);
    body = json_pack("{s:s+, s:s}", "url", "https://sora.chatgpt.com/p/",
                     n->post_id, "token", s->wm_custom_token);
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_URL;
    c.method = "POST";
    c.path = url;
    c.body = body;
    c.timeout_ms = PARSE_TIMEOUT_MS;
    n->call = body != NULL ? s2a_sora_start(&c, parsed, n) : 0;
    json_decref(body);
    if (n->call == 0) {
        nowm_finish(n, NULL, "custom", "the parse request did not start");
    }
}

uint64_t
s2a_nowm_start(int64_t token_id, const char *generation_id,
               s2a_nowm_done_pt done, void *arg)
{
    char at[S2A_SHM_AT_MAX], proxy[256];
    nowm_t *n;
    json_t *body;
    s2a_sora_call_t c;

    if (!s2a_worker_token_secret(token_id, at, proxy)
        || (n = calloc(1, sizeof(*n))) == NULL)
    {
        return 0;
    }
    n->id = ++N.next_id;
    n->token_id = token_id;
    n->done = done;
    n->arg = arg;
    body = json_pack("{s:[{s:s, s:s}], s:s}", "attachments_to_create",
                     "generation_id", generation_id, "kind", "sora",
                     "post_text", "");
    memset(&c, 0, sizeof(c));
    c.method = "POST";
    c.path = "/project_y/post";
    c.at = at;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    c.body = body;
    c.sentinel = true;
    n->call = body != NULL ? s2a_sora_start(&c, published, n) : 0;
    json_decref(body);
    if (n->call == 0) {
        free(n);
        return 0;
    }
    n->next = N.list;
    N.list = n;
    return n->id;
}

void
s2a_nowm_cancel(uint64_t id)
{
    nowm_t *n;

    for (n = N.list; n != NULL; n = n->next) {
        if (n->id == id) {
            if (n->call != 0) {
                s2a_sora_cancel(n->call);
            }
            if (n->probe != 0) {
                s2a_upstream_cancel(n->probe);
            }
            /* The job goes away: nothing will use the post. */
            if (n->post_id[0] != '\0') {
                s2a_nowm_delete_post(n->token_id, n->post_id);
            }
            nowm_unlink(n);
            free(n->link);
            free(n);
            return;
        }
    }
}

static void
deleted(const s2a_sora_result_t *r, void *arg)
{
    S2A_UNUSED(arg);
    if (r->status != 200 && r->status != 204) {
        s2a_log(LOG_WARNING, 0, "deleting a watermark-free post failed: %s",
                r->error_message != NULL ? r->error_message : "?");
    }
}

void
s2a_nowm_delete_post(int64_t token_id, const char *post_id)
{
    char at[S2A_SHM_AT_MAX], proxy[256], path[128];
    s2a_sora_call_t c;

    if (!s2a_worker_token_secret(token_id, at, proxy)) {
        return;
    }
    snprintf(path, sizeof(path), "/project_y/post/%.64s", post_id);
    memset(&c, 0, sizeof(c));
    c.method = "DELETE";
    c.path = path;
    c.at = at;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    s2a_sora_start(&c, deleted, NULL);
}
