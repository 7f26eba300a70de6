/*
 * data.c: the Sora data endpoints (docs/data-endpoints.md).
 *
 * /v1/stats is one call to the master. Every other route is one read of
 * the Sora backend (E3, E28-E32) through an account picked from the
 * shared token table without a lease (round-robin over the usable ones,
 * Sora 2 accounts first), or through the account `token_id` names.
 *
 * In front of the backend sits a small per-worker answer cache, keyed on
 * the route, the account asked for and the normalised query (the
 * backend path itself, defaults applied and values escaped): an answer
 * is kept for data_cache_ttl_ms, and a request identical to one in
 * flight waits for that one's answer instead of calling Sora again.
 * Kept answers are bounded in number and bytes and leave oldest first
 * (the TTL is the same for all, so the oldest also expires first).
 * Failures are shared with the requests already waiting, never kept.
 *
 * Owns: the cache entries, their fetches and their waiting requests.
 */
#include "worker/data.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/sora.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INVITE_TRIES 8    /* Sora 2 accounts one invite request may ask */
#define URL_MAX      1024 /* sora.c's URL buffer: base URL plus path */

/* What each route reads besides its path value. */
#define P_TOKEN  0x01 /* ?token_id= */
#define P_LIMIT  0x02 /* ?limit= */
#define P_CURSOR 0x04 /* ?cursor= */
#define P_SEARCH 0x08 /* ?username= and ?intent= */
#define P_CUT    0x10 /* ?cut= */

typedef struct kind_info_s {
    const char *name;   /* in cache keys and logs */
    const char *prefix; /* raw path before the path value, or NULL */
    const char *suffix; /* raw path after it */
    const char *what;   /* the path value's name, as a `param` */
    int limit;          /* default limit */
    unsigned params;    /* P_* */
} kind_info_t;

static const kind_info_t kinds[S2A_DATA_NKINDS] = {
    [S2A_DATA_PROFILE] = { "profile", "/v1/profiles/", "", "username", 0,
                           P_TOKEN },
    [S2A_DATA_USER_FEED] = { "user_feed", "/v1/users/", "/feed", "user_id", 8,
                             P_TOKEN | P_LIMIT | P_CURSOR },
    [S2A_DATA_SEARCH] = { "search", NULL, NULL, NULL, 10,
                          P_TOKEN | P_LIMIT | P_SEARCH },
    [S2A_DATA_FEED] = { "feed", NULL, NULL, NULL, 8,
                        P_TOKEN | P_LIMIT | P_CURSOR | P_CUT },
    [S2A_DATA_TOKEN_FEED] = { "token_feed", NULL, NULL, NULL, 8,
                              P_LIMIT | P_CURSOR },
    [S2A_DATA_INVITE] = { "invite", NULL, NULL, NULL, 0, P_TOKEN },
};

static const char *const cuts[] = { "nf2_latest", "nf2_top", "nf2" };
static const char *const intents[] = { "users", "cameo" };

/* ---------------------------------------------------------------------
 * Parsing (pure)
 */

static int fail(s2a_data_error_t *err, int status, const char *code,
                const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
fail(s2a_data_error_t *err, int status, const char *code, const char *param,
     const char *fmt, ...)
{
    va_list ap;

    err->status = status;
    err->type = status == 502 ? "upstream_error"
        : status >= 500       ? "server_error"
                              : "invalid_request_error";
    err->code = code;
    err->param = param;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return S2A_ERROR;
}

static int
not_found(s2a_req_t *req, s2a_data_error_t *err)
{
    return fail(err, 404, "unknown_url", NULL, "Unknown request URL: %s %.200s",
                req->method_name != NULL ? req->method_name : "GET",
                req->raw_path != NULL ? req->raw_path : "");
}

/*
 * Query value `name`, decoded: S2A_OK with *out (the caller frees it),
 * S2A_DECLINED when the query has none, S2A_ERROR when it does not
 * decode (s2a_req_query_param answers NULL for both).
 */
static int
query_value(s2a_req_t *req, const char *name, char **out)
{
    const char *p = req->query;
    size_t n = strlen(name), seg;

    *out = s2a_req_query_param(req, name);
    if (*out != NULL) {
        return S2A_OK;
    }
    while (p != NULL && *p != '\0') {
        seg = strcspn(p, "&");
        if (seg > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            return S2A_ERROR;
        }
        p += seg;
        if (*p == '&') {
            p++;
        }
    }
    return S2A_DECLINED;
}

/* A decimal integer from 0 to `max`, digits only. */
static bool
parse_decimal(const char *s, int64_t max, int64_t *out)
{
    int64_t v = 0;
    int d;

    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        d = *s - '0';
        if (v > (max - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Copies `v` into `out` (max bytes plus the NUL) or refuses it. */
static int
copy_value(s2a_data_error_t *err, const char *param, const char *v, char *out,
           size_t max)
{
    size_t len = strlen(v);

    if (len > max) {
        return fail(err, 400, "invalid_value", param,
                    "%s is longer than %zu bytes", param, max);
    }
    memcpy(out, v, len + 1);
    return S2A_OK;
}

/* The table entry equal to `v`, or NULL. */
static const char *
one_of(const char *v, const char *const *set, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(v, set[i]) == 0) {
            return set[i];
        }
    }
    return NULL;
}

/*
 * The path value of a prefix route, from the raw path so that an encoded
 * '/' stays inside its segment: exactly one non-empty segment between
 * the prefix and the suffix, percent-decoded.
 */
static int
path_value(const kind_info_t *k, s2a_req_t *req, s2a_data_query_t *q,
           s2a_data_error_t *err)
{
    const char *raw = req->raw_path, *seg, *end;
    size_t plen = strlen(k->prefix);
    char *dec;
    int len;

    if (raw == NULL || strncmp(raw, k->prefix, plen) != 0) {
        return not_found(req, err);
    }
    seg = raw + plen;
    end = seg + strcspn(seg, "/");
    if (end == seg || strcmp(end, k->suffix) != 0) {
        return not_found(req, err);
    }
    if (end - seg > 3 * S2A_DATA_SUBJECT_MAX) {
        return fail(err, 400, "invalid_value", k->what,
                    "%s is longer than %d bytes", k->what,
                    S2A_DATA_SUBJECT_MAX);
    }
    dec = curl_easy_unescape(NULL, seg, (int) (end - seg), &len);
    if (dec == NULL) {
        return fail(err, 503, "server_error", NULL, "out of memory");
    }
    if (len <= 0 || len > S2A_DATA_SUBJECT_MAX
        || memchr(dec, '\0', (size_t) len) != NULL)
    {
        curl_free(dec);
        return fail(err, 400, "invalid_value", k->what,
                    "%s must be 1 to %d bytes", k->what, S2A_DATA_SUBJECT_MAX);
    }
    memcpy(q->subject, dec, (size_t) len);
    q->subject[len] = '\0';
    curl_free(dec);
    return S2A_OK;
}

/* Parses the query values of `k` into `q`; see s2a_data_parse. */
static int
query_values(const kind_info_t *k, s2a_req_t *req, s2a_data_query_t *q,
             s2a_data_error_t *err)
{
    char *v = NULL;
    int64_t n;
    int rc = S2A_OK;

    if ((k->params & P_TOKEN)
        && (rc = query_value(req, "token_id", &v)) != S2A_DECLINED)
    {
        if (rc != S2A_OK || !parse_decimal(v, INT64_MAX, &n) || n == 0) {
            rc = fail(err, 400, "invalid_value", "token_id",
                      "token_id must be a positive integer");
            goto done;
        }
        q->token_id = n;
        free(v);
        v = NULL;
    }
    if ((k->params & P_LIMIT)
        && (rc = query_value(req, "limit", &v)) != S2A_DECLINED)
    {
        if (rc != S2A_OK || !parse_decimal(v, S2A_DATA_LIMIT_MAX, &n) || n < 1)
        {
            rc = fail(err, 400, "invalid_value", "limit",
                      "limit must be an integer from 1 to %d",
                      S2A_DATA_LIMIT_MAX);
            goto done;
        }
        q->limit = (int) n;
        free(v);
        v = NULL;
    }
    if ((k->params & P_CURSOR)
        && (rc = query_value(req, "cursor", &v)) != S2A_DECLINED)
    {
        if (rc != S2A_OK) {
            rc = fail(err, 400, "invalid_value", "cursor",
                      "cursor is not correctly encoded");
            goto done;
        }
        if ((rc = copy_value(err, "cursor", v, q->cursor, S2A_DATA_CURSOR_MAX))
            != S2A_OK)
        {
            goto done;
        }
        free(v);
        v = NULL;
    }
    if (k->params & P_SEARCH) {
        if ((rc = query_value(req, "username", &v)) != S2A_DECLINED) {
            if (rc != S2A_OK) {
                rc = fail(err, 400, "invalid_value", "username",
                          "username is not correctly encoded");
                goto done;
            }
            if ((rc = copy_value(err, "username", v, q->subject,
                                 S2A_DATA_SUBJECT_MAX))
                != S2A_OK)
            {
                goto done;
            }
            free(v);
            v = NULL;
        }
        q->intent = intents[0];
        if ((rc = query_value(req, "intent", &v)) != S2A_DECLINED) {
            q->intent =
                rc == S2A_OK ? one_of(v, intents, S2A_NELEMS(intents)) : NULL;
            if (q->intent == NULL) {
                rc = fail(err, 400, "invalid_value", "intent",
                          "intent must be users or cameo");
                goto done;
            }
            free(v);
            v = NULL;
        }
    }
    if (k->params & P_CUT) {
        q->cut = cuts[0];
        if ((rc = query_value(req, "cut", &v)) != S2A_DECLINED) {
            q->cut = rc == S2A_OK ? one_of(v, cuts, S2A_NELEMS(cuts)) : NULL;
            if (q->cut == NULL) {
                rc = fail(err, 400, "invalid_value", "cut",
                          "cut must be nf2_latest, nf2_top or nf2");
                goto done;
            }
        }
    }
    rc = S2A_OK;

done:
    free(v);
    return rc;
}

/* See data.h. */
int
s2a_data_parse(s2a_data_kind_t kind, s2a_req_t *req, s2a_data_query_t *q,
               s2a_data_error_t *err)
{
    const kind_info_t *k;

    memset(q, 0, sizeof(*q));
    memset(err, 0, sizeof(*err));
    if ((unsigned) kind >= S2A_DATA_NKINDS) {
        return not_found(req, err);
    }
    k = &kinds[kind];
    q->kind = kind;
    q->limit = k->limit;
    if (k->prefix != NULL && path_value(k, req, q, err) != S2A_OK) {
        return S2A_ERROR;
    }
    if (kind == S2A_DATA_TOKEN_FEED) {
        q->token_id = req->path_id;
        if (q->token_id <= 0) {
            return not_found(req, err);
        }
    }
    return query_values(k, req, q, err);
}

/* See data.h. */
int
s2a_data_upstream_path(const s2a_data_query_t *q, char *out, size_t outlen)
{
    char *subj = NULL, *cur = NULL;
    const char *c1 = "", *c2 = "", *c3 = "";
    int n = -1;

    subj = curl_easy_escape(NULL, q->subject, 0);
    if (q->cursor[0] != '\0') {
        cur = curl_easy_escape(NULL, q->cursor, 0);
        c1 = "cursor=";
        c2 = cur;
        c3 = "&";
    }
    if (subj == NULL || (q->cursor[0] != '\0' && cur == NULL)) {
        goto done;
    }
    /* E29, E30 and E32 put the cursor first, as the app does. */
    switch (q->kind) {
    case S2A_DATA_PROFILE:
        n = snprintf(out, outlen, "/project_y/profile/username/%s", subj);
        break;
    case S2A_DATA_USER_FEED:
        n = snprintf(out, outlen,
                     "/project_y/profile_feed/%s?%s%s%slimit=%d&cut=nf2", subj,
                     c1, c2, c3, q->limit);
        break;
    case S2A_DATA_TOKEN_FEED:
        n = snprintf(out, outlen,
                     "/project_y/profile_feed/me?%s%s%slimit=%d&cut=nf2", c1,
                     c2, c3, q->limit);
        break;
    case S2A_DATA_SEARCH:
        n = snprintf(out, outlen,
                     "/project_y/profile/search_mentions?username=%s"
                     "&intent=%s&limit=%d",
                     subj, q->intent != NULL ? q->intent : intents[0],
                     q->limit);
        break;
    case S2A_DATA_FEED:
        n = snprintf(out, outlen, "/project_y/feed?%s%s%slimit=%d&cut=%s", c1,
                     c2, c3, q->limit, q->cut != NULL ? q->cut : cuts[0]);
        break;
    case S2A_DATA_INVITE:
        n = snprintf(out, outlen, "/project_y/invite/mine");
        break;
    case S2A_DATA_NKINDS: break;
    }

done:
    curl_free(subj);
    curl_free(cur);
    return n >= 0 && (size_t) n < outlen ? S2A_OK : S2A_ERROR;
}

/* ---------------------------------------------------------------------
 * Rendering (pure)
 */

/* E31: the profile fields of a search result, then its owner's. */
static const char *const search_fields[] = {
    "user_id",   "username",  "display_name", "profile_picture_url",
    "permalink", "can_cameo", "verified",     "follower_count",
    NULL
};
static const char *const owner_fields[] = { "user_id", "username",
                                            "display_name", NULL };
/* E32: what a feed item keeps of its post, attachment and author. */
static const char *const post_fields[] = { "id",         "text",
                                           "permalink",  "preview_image_url",
                                           "posted_at",  "like_count",
                                           "view_count", "remix_count",
                                           NULL };
static const char *const attachment_fields[] = {
    "kind", "url", "downloadable_url", "width", "height", "n_frames", NULL
};
static const char *const author_fields[] = {
    "user_id",   "username", "display_name",   "profile_picture_url",
    "permalink", "verified", "follower_count", NULL
};

/* Copies each named field of `from` into `to`, null when it is absent. */
static void
copy_fields(json_t *to, json_t *from, const char *const *names)
{
    json_t *v;

    for (; *names != NULL; names++) {
        v = json_object_get(from, *names);
        json_object_set(to, *names, v != NULL ? v : json_null());
    }
}

/* An object of the named fields of `from`, or null when it is none. */
static json_t *
fields_or_null(json_t *from, const char *const *names)
{
    json_t *o;

    if (!json_is_object(from)) {
        return json_null();
    }
    o = json_object();
    if (o != NULL) {
        copy_fields(o, from, names);
    }
    return o;
}

static json_t *
render_attachment(json_t *att)
{
    json_t *o, *frames, *thumb;

    if (!json_is_object(att)) {
        return json_null();
    }
    o = json_object();
    if (o == NULL) {
        return NULL;
    }
    copy_fields(o, att, attachment_fields);
    /* The app's clips run at 30 frames a second. */
    frames = json_object_get(att, "n_frames");
    json_object_set_new(o, "duration_seconds",
                        json_is_number(frames)
                            ? json_real(json_number_value(frames) / 30.0)
                            : json_null());
    thumb = json_object_get(
        json_object_get(json_object_get(att, "encodings"), "thumbnail"),
        "path");
    json_object_set(o, "thumbnail_url",
                    json_is_string(thumb) ? thumb : json_null());
    return o;
}

static json_t *
render_feed(const s2a_data_query_t *q, json_t *items, json_t *cursor)
{
    json_t *list = json_array(), *it, *post, *o;
    size_t i;

    json_array_foreach (items, i, it) {
        post = json_object_get(it, "post");
        if (!json_is_object(post) || (o = json_object()) == NULL) {
            continue;
        }
        copy_fields(o, post, post_fields);
        json_object_set_new(o, "attachment",
                            render_attachment(json_array_get(
                                json_object_get(post, "attachments"), 0)));
        json_object_set_new(
            o, "author",
            fields_or_null(json_object_get(it, "profile"), author_fields));
        json_array_append_new(list, o);
    }
    return json_pack("{s:b, s:s, s:I, s:O, s:o}", "success", 1, "cut",
                     q->cut != NULL ? q->cut : cuts[0], "count",
                     (json_int_t) json_array_size(list), "cursor",
                     json_is_string(cursor) ? cursor : json_null(), "items",
                     list);
}

static json_t *
render_search(const s2a_data_query_t *q, json_t *items)
{
    json_t *list = json_array(), *it, *prof, *tok, *o;
    size_t i;

    json_array_foreach (items, i, it) {
        prof = json_object_get(it, "profile");
        if (!json_is_object(prof) || (o = json_object()) == NULL) {
            continue;
        }
        copy_fields(o, prof, search_fields);
        tok = json_object_get(it, "token");
        json_object_set(o, "token", json_is_string(tok) ? tok : json_null());
        json_object_set_new(
            o, "owner",
            fields_or_null(json_object_get(prof, "owner_profile"),
                           owner_fields));
        json_array_append_new(list, o);
    }
    return json_pack("{s:b, s:s, s:I, s:o}", "success", 1, "query", q->subject,
                     "count", (json_int_t) json_array_size(list), "results",
                     list);
}

/* See data.h. */
json_t *
s2a_data_render(const s2a_data_query_t *q, json_t *up, s2a_data_error_t *err)
{
    json_t *items = json_object_get(up, "items"), *out = NULL;

    memset(err, 0, sizeof(*err));
    if (!json_is_object(up)) {
        fail(err, 502, "upstream_error", NULL,
             "Sora answered with something other than a JSON object");
        return NULL;
    }
    if ((q->kind == S2A_DATA_FEED || q->kind == S2A_DATA_SEARCH)
        && !json_is_array(items))
    {
        fail(err, 502, "upstream_error", NULL,
             "Sora's answer has no items list");
        return NULL;
    }
    switch (q->kind) {
    case S2A_DATA_PROFILE:
        out = json_pack("{s:b, s:O}", "success", 1, "profile", up);
        break;
    case S2A_DATA_USER_FEED:
        out = json_pack("{s:b, s:s, s:O}", "success", 1, "user_id", q->subject,
                        "feed", up);
        break;
    case S2A_DATA_TOKEN_FEED:
        out = json_pack("{s:b, s:I, s:O}", "success", 1, "token_id",
                        (json_int_t) q->token_id, "feed", up);
        break;
    case S2A_DATA_SEARCH: out = render_search(q, items); break;
    case S2A_DATA_FEED:
        out = render_feed(q, items, json_object_get(up, "cursor"));
        break;
    case S2A_DATA_INVITE:
    case S2A_DATA_NKINDS: break;
    }
    if (out == NULL) {
        fail(err, 502, "upstream_error", NULL,
             "Sora's answer could not be read");
    }
    return out;
}

/* See data.h. */
json_int_t
s2a_data_invite_left(json_t *mine, const char **code)
{
    json_t *c = json_object_get(mine, "invite_code");
    json_t *total = json_object_get(mine, "total_count");
    json_t *used = json_object_get(mine, "redeemed_count");
    json_int_t t, u;

    if (!json_is_string(c) || json_string_length(c) == 0
        || !json_is_integer(total) || !json_is_integer(used))
    {
        return -1;
    }
    t = json_integer_value(total);
    u = json_integer_value(used);
    if (t < 0 || u < 0) {
        return -1;
    }
    *code = json_string_value(c);
    return t > u ? t - u : 0;
}

/* ---------------------------------------------------------------------
 * The answer cache
 */

typedef struct entry_s entry_t;

/* A request waiting for the answer of an entry in flight. */
typedef struct waiter_s {
    s2a_req_t *req;
    entry_t *e;
    struct waiter_s *prev, *next;
} waiter_t;

/* The upstream read of an entry in flight. */
typedef struct fetch_s {
    s2a_data_query_t q;
    char path[URL_MAX];
    int64_t cand[INVITE_TRIES]; /* accounts to ask, in order */
    int ncand, next;
    int64_t token; /* the account of the call in flight */
    uint64_t call;
    uint64_t master_call;
    json_t *invite; /* the answer once an invite code was found */
    bool answered;  /* invite: an account answered (without uses left) */
    s2a_data_error_t err;
} fetch_t;

struct entry_s {
    char *key;
    bool kept;          /* an answer kept; otherwise in flight */
    int64_t expires_ms; /* monotonic; kept answers */
    char *body;         /* kept answer */
    size_t len;
    entry_t *older, *newer; /* kept answers, oldest first */
    waiter_t *waiters;
    fetch_t *fetch; /* while in flight */
};

static struct {
    json_t *index; /* key -> entry address (Jansson's seeded hash table) */
    entry_t *oldest, *newest;
    int kept;
    size_t bytes;
    uint32_t rr; /* where the next account search starts */
} C;

static entry_t *
entry_find(const char *key)
{
    json_t *v = C.index != NULL ? json_object_get(C.index, key) : NULL;

    return v != NULL ? (entry_t *) (intptr_t) json_integer_value(v) : NULL;
}

/* A new entry in flight for `key`, in the index; NULL when out of
 * memory. */
static entry_t *
entry_new(const char *key)
{
    entry_t *e;

    if (C.index == NULL && (C.index = json_object()) == NULL) {
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL || (e->key = strdup(key)) == NULL
        || (e->fetch = calloc(1, sizeof(*e->fetch))) == NULL
        || json_object_set_new_nocheck(C.index, key,
                                       json_integer((json_int_t) (intptr_t) e))
            != 0)
    {
        if (e != NULL) {
            free(e->fetch);
            free(e->key);
        }
        free(e);
        return NULL;
    }
    return e;
}

static void
fetch_free(fetch_t *f)
{
    if (f == NULL) {
        return;
    }
    if (f->call != 0) {
        s2a_sora_cancel(f->call);
    }
    if (f->master_call != 0) {
        s2a_worker_call_cancel(f->master_call);
    }
    json_decref(f->invite);
    free(f);
}

/* Removes `e` from the index and the kept list and frees it; its
 * waiters (none outside the worker's exit) are forgotten. */
static void
entry_free(entry_t *e)
{
    waiter_t *w;

    json_object_del(C.index, e->key);
    if (e->kept) {
        if (e->older != NULL) {
            e->older->newer = e->newer;
        } else {
            C.oldest = e->newer;
        }
        if (e->newer != NULL) {
            e->newer->older = e->older;
        } else {
            C.newest = e->older;
        }
        C.kept--;
        C.bytes -= e->len;
    }
    while ((w = e->waiters) != NULL) {
        e->waiters = w->next;
        w->req->on_gone = NULL;
        free(w);
    }
    fetch_free(e->fetch);
    free(e->body);
    free(e->key);
    free(e);
}

/* Drops kept answers past their time, then the oldest while over the
 * bounds. */
static void
cache_trim(int64_t now_ms)
{
    const s2a_conf_t *conf = s2a_worker.conf;

    while (C.oldest != NULL
           && (C.oldest->expires_ms <= now_ms
               || C.kept > conf->data_cache_entries
               || C.bytes > (size_t) conf->data_cache_size))
    {
        entry_free(C.oldest);
    }
}

/* Whether an answer of `len` bytes may be kept. */
static bool
cacheable(size_t len)
{
    const s2a_conf_t *conf = s2a_worker.conf;

    return conf->data_cache_ttl_ms > 0 && conf->data_cache_entries > 0
        && len <= (size_t) conf->data_cache_size;
}

/* Makes `e`, whose fetch is done, the newest kept answer with `body`
 * (taken). The bounds are applied by the caller (cache_trim). */
static void
cache_keep(entry_t *e, char *body, size_t len)
{
    fetch_free(e->fetch);
    e->fetch = NULL;
    e->kept = true;
    e->body = body;
    e->len = len;
    e->expires_ms = s2a_mono_ms() + s2a_worker.conf->data_cache_ttl_ms;
    e->older = C.newest;
    if (C.newest != NULL) {
        C.newest->newer = e;
    } else {
        C.oldest = e;
    }
    C.newest = e;
    C.kept++;
    C.bytes += len;
}

static void
reply_error(s2a_req_t *req, const s2a_data_error_t *err)
{
    s2a_http_reply_error(req, err->status, err->type, err->code, err->param,
                         "%s", err->message);
}

/* Answers the waiters of `list` with `body`, or with `err` when `body`
 * is NULL, and frees them. */
static void
answer_waiters(waiter_t *list, const char *body, size_t len,
               const s2a_data_error_t *err)
{
    waiter_t *w, *next;

    for (w = list; w != NULL; w = next) {
        next = w->next;
        w->req->on_gone = NULL;
        if (body != NULL) {
            s2a_http_reply(w->req, 200, "application/json", body, len);
        } else {
            reply_error(w->req, err);
        }
        free(w);
    }
}

/*
 * The fetch of `e` ended with `out` (taken; NULL: with fetch->err). The
 * entry is settled (kept, or gone) before anyone is answered, so nothing
 * an answer sets off can find it half done.
 */
static void
entry_done(entry_t *e, json_t *out)
{
    waiter_t *list = e->waiters;
    s2a_data_error_t err = e->fetch->err;
    char *body = NULL;
    size_t len = 0;
    bool keep;

    e->waiters = NULL;
    if (out != NULL) {
        body = json_dumps(out, JSON_COMPACT);
        json_decref(out);
        if (body == NULL) {
            fail(&err, 503, "server_error", NULL, "out of memory");
        }
    }
    if (body == NULL) {
        entry_free(e);
        answer_waiters(list, NULL, 0, &err);
        return;
    }
    len = strlen(body);
    keep = cacheable(len);
    if (keep) {
        cache_keep(e, body, len);
    } else {
        entry_free(e);
    }
    answer_waiters(list, body, len, NULL);
    if (keep) {
        cache_trim(s2a_mono_ms());
    } else {
        free(body);
    }
}

static void
waiter_gone(s2a_req_t *req, void *arg)
{
    waiter_t *w = arg;

    S2A_UNUSED(req);
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        w->e->waiters = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    /* The fetch goes on: its answer is kept for the next request. */
    free(w);
}

/* ---------------------------------------------------------------------
 * Accounts and upstream calls
 */

/* A token a data read may use without a lease: not disabled, invalid or
 * expired (a cooling token's quota is about generations, not reads). */
static bool
token_usable(const s2a_shm_token_t *t, int64_t now)
{
    if (t->id == 0) {
        return false;
    }
    if (t->state != S2A_TOKEN_ACTIVE && t->state != S2A_TOKEN_COOLING) {
        return false;
    }
    return t->expires_at == 0 || t->expires_at > now;
}

/*
 * Up to `max` usable accounts into `ids`, round-robin from where the
 * last search stopped: Sora 2 accounts only when `sora2_only`, else Sora
 * 2 accounts first and any other usable one after them. Read-only: no
 * lease, no generation slot. Returns how many.
 */
static int
pick_tokens(bool sora2_only, int64_t *ids, int max)
{
    s2a_shm_t *shm = s2a_worker.shm;
    s2a_shm_token_t *tokens;
    int64_t now = s2a_now(), other = 0;
    uint32_t i, n, idx, first = 0, other_idx = 0;
    int got = 0;

    if (s2a_shm_lock(shm) != S2A_OK) {
        return 0;
    }
    tokens = s2a_shm_tokens(shm);
    n = shm->token_high;
    for (i = 0; i < n && got < max; i++) {
        idx = (C.rr + i) % n;
        if (!token_usable(&tokens[idx], now)) {
            continue;
        }
        if (tokens[idx].flags & S2A_TOKEN_F_SORA2) {
            if (got == 0) {
                first = idx;
            }
            ids[got++] = tokens[idx].id;
        } else if (other == 0) {
            other = tokens[idx].id;
            other_idx = idx;
        }
    }
    s2a_shm_unlock(shm);
    if (got == 0 && !sora2_only && other != 0) {
        ids[got++] = other;
        first = other_idx;
    }
    if (got > 0) {
        C.rr = first + 1;
    }
    return got;
}

/* Whether token `id` is in the shared table; *flags gets its
 * S2A_TOKEN_F_* flags. */
static bool
token_known(int64_t id, uint8_t *flags)
{
    s2a_shm_t *shm = s2a_worker.shm;
    int slot;

    *flags = 0;
    if (s2a_shm_lock(shm) != S2A_OK) {
        return false;
    }
    slot = s2a_shm_token_find_locked(shm, id);
    if (slot >= 0) {
        *flags = s2a_shm_tokens(shm)[slot].flags;
    }
    s2a_shm_unlock(shm);
    return slot >= 0;
}

static void fetched(const s2a_sora_result_t *r, void *arg);

/* Starts the read of `e` through account `id`; S2A_ERROR (with the
 * fetch's err) when it could not start. */
static int
call_start(entry_t *e, int64_t id)
{
    fetch_t *f = e->fetch;
    char at[S2A_SHM_AT_MAX], proxy[256];
    s2a_sora_call_t c;

    if (!s2a_worker_token_secret(id, at, proxy)) {
        return fail(&f->err, 503, "no_available_token", NULL,
                    "Token %lld has no access token", (long long) id);
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.path = f->path;
    c.at = at;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    f->token = id;
    f->call = s2a_sora_start(&c, fetched, e);
    explicit_bzero(at, sizeof(at));
    if (f->call == 0) {
        return fail(&f->err, 502, "upstream_error", NULL,
                    "The call to Sora could not be started");
    }
    return S2A_OK;
}

/* Asks the next invite candidate; answers when none is left. */
static void
invite_next(entry_t *e)
{
    fetch_t *f = e->fetch;

    while (f->next < f->ncand) {
        if (call_start(e, f->cand[f->next++]) == S2A_OK) {
            return;
        }
    }
    if (f->answered) {
        fail(&f->err, 404, "no_invite_code", NULL,
             "No Sora 2 account has an invite code with uses left");
    }
    entry_done(e, NULL);
}

/* The email of the invite's account arrived (or not: null). */
static void
invite_email(json_t *reply, void *arg)
{
    entry_t *e = arg;
    fetch_t *f = e->fetch;
    json_t *row = json_array_get(json_object_get(reply, "tokens"), 0);
    json_t *email = json_object_get(row, "email");

    f->master_call = 0;
    json_object_set(f->invite, "email",
                    json_is_string(email) ? email : json_null());
    entry_done(e, json_incref(f->invite));
}

/* An invite/mine answer through f->token. */
static void
invite_read(entry_t *e, const s2a_sora_result_t *r)
{
    fetch_t *f = e->fetch;
    const char *code = NULL;
    json_int_t left = s2a_data_invite_left(r->json, &code);
    json_t *msg;

    if (left < 0) {
        fail(&f->err, 502, "upstream_error", NULL,
             "Sora's invite answer has no code or counts");
        invite_next(e);
        return;
    }
    f->answered = true;
    if (left == 0) {
        invite_next(e);
        return;
    }
    f->invite =
        json_pack("{s:b, s:s, s:I, s:O, s:n}", "success", 1, "invite_code",
                  code, "remaining_count", left, "total_count",
                  json_object_get(r->json, "total_count"), "email");
    msg = json_pack("{s:s, s:I}", "op", "tokens_list", "token_id",
                    (json_int_t) f->token);
    if (f->invite == NULL || msg == NULL) {
        json_decref(msg);
        fail(&f->err, 503, "server_error", NULL, "out of memory");
        entry_done(e, NULL);
        return;
    }
    f->master_call = s2a_worker_call_master(msg, invite_email, e);
    json_decref(msg);
    if (f->master_call == 0) {
        invite_email(NULL, e);
    }
}

/*
 * What an upstream failure answers: a 404 (the user or feed does not
 * exist) stays a 404; anything else, a 401 included, is a 502 with
 * Sora's message. Nothing is marked on the token: a read's failure is
 * not a generation's (docs/data-endpoints.md).
 */
static void
upstream_failed(entry_t *e, const s2a_sora_result_t *r)
{
    fetch_t *f = e->fetch;
    const char *msg = r->error_message != NULL ? r->error_message : "?";

    s2a_log(LOG_INFO, 0, "data %s via token %lld: HTTP %ld: %.300s",
            kinds[f->q.kind].name, (long long) f->token, r->status, msg);
    if (r->status == 404) {
        fail(&f->err, 404, "not_found", NULL, "%.400s", msg);
    } else if (r->status == 0) {
        fail(&f->err, 502, "upstream_error", NULL, "Sora unreachable: %.400s",
             msg);
    } else if (r->status >= 200 && r->status <= 299) {
        fail(&f->err, 502, "upstream_error", NULL,
             "Sora answered HTTP %ld without JSON", r->status);
    } else {
        fail(&f->err, 502, "upstream_error", NULL, "%.450s", msg);
    }
}

static void
fetched(const s2a_sora_result_t *r, void *arg)
{
    entry_t *e = arg;
    fetch_t *f = e->fetch;
    json_t *out;

    f->call = 0;
    if (!s2a_sora_ok(r)) {
        upstream_failed(e, r);
        if (f->q.kind == S2A_DATA_INVITE) {
            invite_next(e);
        } else {
            entry_done(e, NULL);
        }
        return;
    }
    if (f->q.kind == S2A_DATA_INVITE) {
        invite_read(e, r);
        return;
    }
    out = s2a_data_render(&f->q, r->json, &f->err);
    entry_done(e, out);
}

/* Starts the fetch of a new entry; S2A_ERROR with its err when nothing
 * could start (then nobody waits yet). */
static int
fetch_start(entry_t *e)
{
    fetch_t *f = e->fetch;
    bool invite = f->q.kind == S2A_DATA_INVITE;

    if (f->q.token_id != 0) {
        f->cand[0] = f->q.token_id;
        f->ncand = 1;
    } else {
        f->ncand = pick_tokens(invite, f->cand, invite ? INVITE_TRIES : 1);
    }
    if (f->ncand == 0) {
        return invite ? fail(&f->err, 404, "no_invite_code", NULL,
                             "No active Sora 2 account is available")
                      : fail(&f->err, 503, "no_available_token", NULL,
                             "No active account is available");
    }
    while (f->next < f->ncand) {
        if (call_start(e, f->cand[f->next++]) == S2A_OK) {
            return S2A_OK;
        }
    }
    return S2A_ERROR;
}

/* Answers `req` for `q`: from the cache, by joining the same request in
 * flight, or by a new fetch. */
static void
serve(s2a_req_t *req, const s2a_data_query_t *q)
{
    const s2a_conf_t *conf = s2a_worker.conf;
    char path[URL_MAX], key[URL_MAX + 64];
    size_t room = URL_MAX - strlen(conf->base_url);
    s2a_data_error_t err;
    uint8_t flags;
    entry_t *e;
    waiter_t *w;

    if (q->token_id != 0 && !token_known(q->token_id, &flags)) {
        s2a_http_reply_error(req, 404, "invalid_request_error",
                             "token_not_found",
                             q->kind == S2A_DATA_TOKEN_FEED ? NULL : "token_id",
                             "Token %lld not found", (long long) q->token_id);
        return;
    }
    /* Only a Sora 2 account has an invite code to give. */
    if (q->token_id != 0 && q->kind == S2A_DATA_INVITE
        && !(flags & S2A_TOKEN_F_SORA2))
    {
        s2a_http_reply_error(
            req, 404, "invalid_request_error", "no_invite_code", NULL,
            "Token %lld is not a Sora 2 account", (long long) q->token_id);
        return;
    }
    if (s2a_data_upstream_path(q, path, room) != S2A_OK) {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_value",
                             q->cursor[0] != '\0' ? "cursor" : NULL,
                             "The request's values are too long to send to "
                             "Sora");
        return;
    }
    snprintf(key, sizeof(key), "%s|%lld|%s", kinds[q->kind].name,
             (long long) q->token_id, path);
    cache_trim(s2a_mono_ms());
    e = entry_find(key);
    if (e != NULL && e->kept) {
        s2a_http_reply(req, 200, "application/json", e->body, e->len);
        return;
    }
    if (e == NULL) {
        e = entry_new(key);
        if (e == NULL) {
            s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                                 "out of memory");
            return;
        }
        e->fetch->q = *q;
        memcpy(e->fetch->path, path, sizeof(path));
        if (fetch_start(e) != S2A_OK) {
            err = e->fetch->err;
            entry_free(e);
            reply_error(req, &err);
            return;
        }
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    w->req = req;
    w->e = e;
    w->next = e->waiters;
    if (w->next != NULL) {
        w->next->prev = w;
    }
    e->waiters = w;
    req->on_gone = waiter_gone;
    req->gone_arg = w;
}

static void
handle(s2a_req_t *req, s2a_data_kind_t kind)
{
    s2a_data_query_t q;
    s2a_data_error_t err;

    if (s2a_data_parse(kind, req, &q, &err) != S2A_OK) {
        reply_error(req, &err);
        return;
    }
    serve(req, &q);
}

/* GET /v1/profiles/{username}: {"success", "profile"} (E28). */
void
s2a_data_profile(s2a_req_t *req)
{
    handle(req, S2A_DATA_PROFILE);
}

/* GET /v1/users/{user_id}/feed: {"success", "user_id", "feed"} (E29). */
void
s2a_data_user_feed(s2a_req_t *req)
{
    handle(req, S2A_DATA_USER_FEED);
}

/* GET /v1/characters/search: {"success", "query", "count", "results"}
 * (E31). */
void
s2a_data_search(s2a_req_t *req)
{
    handle(req, S2A_DATA_SEARCH);
}

/* GET /v1/feed: {"success", "cut", "count", "cursor", "items"} (E32). */
void
s2a_data_feed(s2a_req_t *req)
{
    handle(req, S2A_DATA_FEED);
}

/* GET /v1/tokens/{id}/profile-feed: {"success", "token_id", "feed"}
 * (E30). */
void
s2a_data_token_feed(s2a_req_t *req)
{
    handle(req, S2A_DATA_TOKEN_FEED);
}

/* GET /v1/invite-codes: {"success", "invite_code", "remaining_count",
 * "total_count", "email"} (E3). */
void
s2a_data_invite_codes(s2a_req_t *req)
{
    handle(req, S2A_DATA_INVITE);
}

/* ---------------------------------------------------------------------
 * /v1/stats
 */

typedef struct stats_call_s {
    s2a_req_t *req;
    uint64_t call;
} stats_call_t;

static void
stats_gone(s2a_req_t *req, void *arg)
{
    stats_call_t *s = arg;

    S2A_UNUSED(req);
    s2a_worker_call_cancel(s->call);
    free(s);
}

static void
stats_done(json_t *reply, void *arg)
{
    static const char *const fields[] = {
        "total_tokens", "active_tokens", "today_images",
        "total_images", "today_videos",  "total_videos",
        "today_errors", "total_errors",  NULL
    };
    stats_call_t *s = arg;
    s2a_req_t *req = s->req;
    json_t *stats = json_object_get(reply, "stats"), *o, *body;

    req->on_gone = NULL;
    free(s);
    if (!json_is_true(json_object_get(reply, "ok")) || !json_is_object(stats)
        || (o = json_object()) == NULL)
    {
        s2a_http_reply_error(req, 503, "server_error", "stats_unavailable",
                             NULL, "The statistics are unavailable");
        return;
    }
    copy_fields(o, stats, fields);
    json_object_set(o, "tokens_by_state",
                    json_object_get(stats, "states") != NULL
                        ? json_object_get(stats, "states")
                        : json_null());
    body = json_pack("{s:b, s:o}", "success", 1, "stats", o);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* GET /v1/stats: the master's token and generation counts. */
void
s2a_data_stats(s2a_req_t *req)
{
    stats_call_t *s = calloc(1, sizeof(*s));
    json_t *msg = json_pack("{s:s}", "op", "stats");

    if (s == NULL || msg == NULL) {
        free(s);
        json_decref(msg);
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    s->req = req;
    s->call = s2a_worker_call_master(msg, stats_done, s);
    json_decref(msg);
    if (s->call == 0) {
        free(s);
        s2a_http_reply_error(req, 503, "server_error", "stats_unavailable",
                             NULL, "The master is unavailable");
        return;
    }
    req->on_gone = stats_gone;
    req->gone_arg = s;
}

/* See data.h. */
void
s2a_data_cleanup(void)
{
    const char *key;
    json_t *v, *tmp;

    if (C.index == NULL) {
        return;
    }
    json_object_foreach_safe (C.index, tmp, key, v) {
        entry_free((entry_t *) (intptr_t) json_integer_value(v));
    }
    json_decref(C.index);
    memset(&C, 0, sizeof(C));
}
