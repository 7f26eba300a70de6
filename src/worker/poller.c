/*
 * poller.c: one poll loop per account, shared by every task of that
 * account in this worker.
 *
 * Failed polls back off: after n failures in a row an account is next
 * polled after interval * 2^n, never later than [upstream]
 * poll_backoff_max, and at the interval again once a poll succeeds.
 */
#include "worker/poller.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/classify.h"
#include "worker/context.h"
#include "worker/sora.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS          1024
#define DRAFTS_PAGE      50
#define DRAFTS_MAX_PAGES 10
/* Drafts reads a finished draft may show without a URL before the task
 * counts as failed (the URL can lag the draft by a few seconds). */
#define NOURL_MAX_READS 8

typedef struct entry_s entry_t;

struct s2a_poll_watch_s {
    entry_t *entry;
    s2a_kind_t kind;
    char task_id[96];
    bool left_pending; /* a video no longer in the pending list */
    bool dead;         /* unwatched while its entry was dispatching */
    int progress;
    int nourl_reads;
    s2a_poll_pt cb;
    void *arg;
    s2a_poll_watch_t *next;
};

struct entry_s {
    int64_t token_id;
    s2a_poll_watch_t *watches;
    struct event *timer;
    uint64_t pending_call, drafts_call, recent_call;
    int drafts_page;
    uint64_t ticks;       /* poll intervals so far */
    uint64_t drafts_tick; /* interval of the last drafts round, +1 */
    int busy;             /* dispatch depth: watches are unlinked, not freed */
    int errors;           /* failed polls in a row */
    int64_t resume_ms;    /* backing off: no poll before this */
    entry_t *next;
};

static struct {
    struct event_base *base;
    int interval_ms;
    entry_t *buckets[BUCKETS];
    s2a_poller_stats_t stats;
} P;

static entry_t **
bucket_of(int64_t token_id)
{
    return &P.buckets[(uint64_t) token_id % BUCKETS];
}

static void
arm(entry_t *e)
{
    struct timeval tv = { P.interval_ms / 1000, (P.interval_ms % 1000) * 1000 };

    evtimer_add(e->timer, &tv);
}

static void
entry_free(entry_t *e)
{
    entry_t **pp;

    for (pp = bucket_of(e->token_id); *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    if (e->pending_call != 0) {
        s2a_sora_cancel(e->pending_call);
    }
    if (e->drafts_call != 0) {
        s2a_sora_cancel(e->drafts_call);
    }
    if (e->recent_call != 0) {
        s2a_sora_cancel(e->recent_call);
    }
    event_free(e->timer);
    P.stats.entries--;
    free(e);
}

/* Frees watches unwatched during a dispatch, and the entry once empty. */
static void
entry_settle(entry_t *e)
{
    s2a_poll_watch_t **pp = &e->watches, *w;

    if (e->busy > 0) {
        return;
    }
    while ((w = *pp) != NULL) {
        if (w->dead) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    if (e->watches == NULL) {
        entry_free(e);
    }
}

/* Ends watch `w` with a terminal update. */
static void
finish(s2a_poll_watch_t *w, s2a_poll_update_t *u)
{
    s2a_poll_pt cb = w->cb;
    void *arg = w->arg;

    w->dead = true; /* freed by entry_settle */
    P.stats.watches--;
    cb(u, arg);
}

static void
invalidate_all(entry_t *e, const char *message)
{
    s2a_poll_watch_t *w;
    s2a_poll_update_t u;

    memset(&u, 0, sizeof(u));
    u.event = S2A_POLL_TOKEN_INVALID;
    u.message = message;
    for (w = e->watches; w != NULL; w = w->next) {
        if (!w->dead) {
            finish(w, &u);
        }
    }
}

/* A poll answer: true when it can be read; a rejected token ends every
 * task of the entry. */
static bool
answer_usable(entry_t *e, const s2a_sora_result_t *r, const char *what)
{
    s2a_failure_t f;

    const s2a_conf_t *conf = s2a_worker.conf;
    int64_t pause, cap;

    if (s2a_sora_ok(r)) {
        e->errors = 0;
        e->resume_ms = 0;
        return true;
    }
    s2a_classify(r->status, r->json, r->body, r->error_message, &f);
    if (f.kind == S2A_FAIL_TOKEN_INVALID) {
        invalidate_all(e, f.message);
        return false;
    }
    cap = (conf != NULL ? conf->poll_backoff_max : 30) * (int64_t) 1000;
    if (e->errors < 30) {
        e->errors++;
    }
    pause = (int64_t) P.interval_ms << (e->errors < 20 ? e->errors : 20);
    if (pause > cap) {
        pause = cap;
    }
    e->resume_ms = s2a_mono_ms() + pause;
    s2a_log(LOG_INFO, 0, "token %lld: %s poll failed (retried in %lld ms): %s",
            (long long) e->token_id, what, (long long) pause, f.message);
    return false;
}

static int
count(entry_t *e, s2a_kind_t kind, int left)
{
    s2a_poll_watch_t *w;
    int n = 0;

    for (w = e->watches; w != NULL; w = w->next) {
        if (!w->dead && w->kind == kind
            && (left < 0 || w->left_pending == (left != 0))) {
            n++;
        }
    }
    return n;
}

static void start_drafts(entry_t *e, const char *cursor);

static uint64_t
poll_call(entry_t *e, const char *path, s2a_sora_done_pt done)
{
    char at[S2A_SHM_AT_MAX], proxy[256];
    s2a_sora_call_t c;

    if (!s2a_worker_token_secret(e->token_id, at, proxy)) {
        return 0; /* deleted meanwhile: the jobs' deadlines end them */
    }
    memset(&c, 0, sizeof(c));
    c.method = "GET";
    c.path = path;
    c.at = at;
    c.proxy = proxy[0] != '\0' ? proxy : NULL;
    return s2a_sora_start(&c, done, e);
}

static s2a_poll_watch_t *
find(entry_t *e, s2a_kind_t kind, const char *task_id, bool left)
{
    s2a_poll_watch_t *w;

    if (task_id == NULL) {
        return NULL;
    }
    for (w = e->watches; w != NULL; w = w->next) {
        if (!w->dead && w->kind == kind && w->left_pending == left
            && strcmp(w->task_id, task_id) == 0)
        {
            return w;
        }
    }
    return NULL;
}

static int
percent(json_t *pct)
{
    double v = json_is_number(pct) ? json_number_value(pct) : 0.0;

    if (!(v >= 0.0)) {
        v = 0.0;
    }
    if (v > 1.0) {
        v = 1.0;
    }
    return (int) (v * 100.0); /* v >= 0: truncation is the floor */
}

static void
pending_done(const s2a_sora_result_t *r, void *arg)
{
    entry_t *e = arg;
    s2a_poll_watch_t *w, *next;
    s2a_poll_update_t u;
    json_t *item;
    size_t i;
    int n;

    e->pending_call = 0;
    e->busy++;
    if (answer_usable(e, r, "pending")) {
        /* Anything but an array reads as "nothing pending". */
        for (w = e->watches; w != NULL; w = next) {
            next = w->next;
            if (w->dead || w->kind != S2A_KIND_VIDEO || w->left_pending) {
                continue;
            }
            item = NULL;
            for (i = 0; json_is_array(r->json) && i < json_array_size(r->json);
                 i++) {
                const char *id = json_string_value(
                    json_object_get(json_array_get(r->json, i), "id"));
                if (id != NULL && strcmp(id, w->task_id) == 0) {
                    item = json_array_get(r->json, i);
                    break;
                }
            }
            if (item == NULL) {
                w->left_pending = true;
                continue;
            }
            n = percent(json_object_get(item, "progress_pct"));
            if (n != w->progress) {
                w->progress = n;
                memset(&u, 0, sizeof(u));
                u.event = S2A_POLL_PROGRESS;
                u.progress = n;
                u.status = json_string_value(json_object_get(item, "status"));
                w->cb(&u, w->arg);
            }
        }
    }
    e->busy--;
    if (count(e, S2A_KIND_VIDEO, 1) > 0 && e->drafts_call == 0
        && e->drafts_tick != e->ticks + 1)
    {
        e->drafts_page = 0;
        e->drafts_tick = e->ticks + 1;
        start_drafts(e, NULL);
    }
    entry_settle(e);
}

static bool
nonempty(json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

/* One finished draft of a watched task. */
static void
draft_seen(s2a_poll_watch_t *w, json_t *item)
{
    const char *kind = json_string_value(json_object_get(item, "kind"));
    json_t *reason = json_object_get(item, "reason_str");
    json_t *url = json_object_get(item, "downloadable_url");
    s2a_poll_update_t u;
    json_t *urls;

    memset(&u, 0, sizeof(u));
    if (!nonempty(reason)) {
        reason = json_object_get(item, "markdown_reason_str");
    }
    if ((kind != NULL && strcmp(kind, "sora_content_violation") == 0)
        || nonempty(reason))
    {
        u.event = S2A_POLL_VIOLATION;
        u.message = nonempty(reason) ? json_string_value(reason)
                                     : "Content violates guardrails";
        finish(w, &u);
        return;
    }
    if (!nonempty(url)) {
        url = json_object_get(item, "url");
    }
    if (!nonempty(url)) {
        if (++w->nourl_reads > NOURL_MAX_READS) {
            u.event = S2A_POLL_FAILED;
            u.message = "Sora finished the task without a video";
            finish(w, &u);
        }
        return;
    }
    urls = json_pack("[O]", url);
    u.event = S2A_POLL_DONE;
    u.progress = 100;
    u.urls = urls;
    u.generation_id = json_string_value(json_object_get(item, "id"));
    u.thumbnail_url = json_string_value(json_object_get(
        json_object_get(json_object_get(item, "encodings"), "thumbnail"),
        "path"));
    finish(w, &u);
    json_decref(urls);
}

static void
drafts_done(const s2a_sora_result_t *r, void *arg)
{
    entry_t *e = arg;
    json_t *items, *item;
    const char *cursor;
    s2a_poll_watch_t *w;
    size_t i;
    char cur[256];

    e->drafts_call = 0;
    e->busy++;
    cur[0] = '\0';
    if (answer_usable(e, r, "drafts")) {
        items = json_object_get(r->json, "items");
        json_array_foreach (items, i, item) {
            w = find(e, S2A_KIND_VIDEO,
                     json_string_value(json_object_get(item, "task_id")), true);
            if (w != NULL) {
                draft_seen(w, item);
            }
        }
        cursor = json_string_value(json_object_get(r->json, "cursor"));
        if (cursor != NULL && strlen(cursor) < sizeof(cur)) {
            snprintf(cur, sizeof(cur), "%s", cursor);
        }
    }
    e->busy--;
    /* Tasks still missing may be further down: newest drafts come first,
     * and more may have finished since the last poll than a page holds. */
    if (cur[0] != '\0' && count(e, S2A_KIND_VIDEO, 1) > 0
        && ++e->drafts_page < DRAFTS_MAX_PAGES)
    {
        start_drafts(e, cur);
    }
    entry_settle(e);
}

static void
start_drafts(entry_t *e, const char *cursor)
{
    char path[512];
    char *esc = NULL;

    if (cursor != NULL) {
        esc = curl_easy_escape(NULL, cursor, 0);
        if (esc == NULL) {
            return;
        }
        snprintf(path, sizeof(path),
                 "/project_y/profile/drafts?limit=%d&cursor=%s", DRAFTS_PAGE,
                 esc);
        curl_free(esc);
    } else {
        snprintf(path, sizeof(path), "/project_y/profile/drafts?limit=%d",
                 DRAFTS_PAGE);
    }
    e->drafts_call = poll_call(e, path, drafts_done);
    if (e->drafts_call != 0) {
        P.stats.drafts++;
    }
}

static void
recent_done(const s2a_sora_result_t *r, void *arg)
{
    entry_t *e = arg;
    json_t *list, *item, *gens, *g, *urls;
    s2a_poll_watch_t *w;
    s2a_poll_update_t u;
    const char *status, *msg;
    size_t i, j;
    int n;

    e->recent_call = 0;
    e->busy++;
    if (answer_usable(e, r, "recent tasks")) {
        list = json_object_get(r->json, "task_responses");
        json_array_foreach (list, i, item) {
            w = find(e, S2A_KIND_IMAGE,
                     json_string_value(json_object_get(item, "id")), false);
            if (w == NULL) {
                continue;
            }
            status = json_string_value(json_object_get(item, "status"));
            memset(&u, 0, sizeof(u));
            if (status != NULL && strcmp(status, "failed") == 0) {
                msg = json_string_value(json_object_get(item, "error_message"));
                u.event = S2A_POLL_FAILED;
                u.message = msg != NULL && msg[0] != '\0'
                    ? msg
                    : "Sora failed the image task";
                finish(w, &u);
                continue;
            }
            if (status != NULL && strcmp(status, "succeeded") == 0) {
                urls = json_array();
                gens = json_object_get(item, "generations");
                json_array_foreach (gens, j, g) {
                    json_t *url = json_object_get(g, "url");
                    if (nonempty(url)) {
                        json_array_append(urls, url);
                    }
                }
                if (json_array_size(urls) > 0) {
                    u.event = S2A_POLL_DONE;
                    u.progress = 100;
                    u.urls = urls;
                } else {
                    u.event = S2A_POLL_FAILED;
                    u.message = "Sora finished the task without an image";
                }
                finish(w, &u);
                json_decref(urls);
                continue;
            }
            n = percent(json_object_get(item, "progress_pct"));
            if (n != w->progress) {
                w->progress = n;
                u.event = S2A_POLL_PROGRESS;
                u.progress = n;
                u.status = status;
                w->cb(&u, w->arg);
            }
        }
    }
    e->busy--;
    entry_settle(e);
}

static bool
token_present(int64_t token_id)
{
    bool present;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return true; /* cannot tell: keep polling */
    }
    present = s2a_shm_token_find_locked(s2a_worker.shm, token_id) >= 0;
    s2a_shm_unlock(s2a_worker.shm);
    return present;
}

static void
tick(evutil_socket_t fd, short what, void *arg)
{
    entry_t *e = arg;
    char path[64];
    int n;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    arm(e);
    if (e->resume_ms != 0 && s2a_mono_ms() < e->resume_ms) {
        return; /* backing off after failed polls */
    }
    e->ticks++;
    if (!token_present(e->token_id)) {
        /* Deleted from the pool: nobody can follow its tasks any more. */
        e->busy++;
        invalidate_all(e,
                       "the account was removed from the pool while "
                       "the task ran");
        e->busy--;
        entry_settle(e);
        return;
    }
    /* A request still unanswered from the last tick is not doubled. */
    if (count(e, S2A_KIND_VIDEO, 0) > 0) {
        if (e->pending_call == 0 && e->drafts_call == 0) {
            e->pending_call = poll_call(e, "/nf/pending", pending_done);
            if (e->pending_call != 0) {
                P.stats.pending++;
            }
        }
    } else if (count(e, S2A_KIND_VIDEO, 1) > 0 && e->drafts_call == 0
               && e->drafts_tick != e->ticks + 1)
    {
        /* At most one drafts round per interval, whoever starts it. */
        e->drafts_page = 0;
        e->drafts_tick = e->ticks + 1;
        start_drafts(e, NULL);
    }
    n = count(e, S2A_KIND_IMAGE, -1);
    if (n > 0 && e->recent_call == 0) {
        n = n + 10 < 20 ? 20 : n + 10 > 100 ? 100 : n + 10;
        snprintf(path, sizeof(path), "/v2/recent_tasks?limit=%d", n);
        e->recent_call = poll_call(e, path, recent_done);
        if (e->recent_call != 0) {
            P.stats.recent++;
        }
    }
}

int
s2a_poller_init(struct event_base *base, int interval_ms)
{
    memset(&P, 0, sizeof(P));
    P.base = base;
    P.interval_ms = interval_ms > 0 ? interval_ms : 2500;
    return S2A_OK;
}

void
s2a_poller_set_interval(int interval_ms)
{
    if (interval_ms > 0) {
        P.interval_ms = interval_ms;
    }
}

void
s2a_poller_cleanup(void)
{
    entry_t *e;
    s2a_poll_watch_t *w;
    size_t i;

    for (i = 0; i < BUCKETS; i++) {
        while ((e = P.buckets[i]) != NULL) {
            while ((w = e->watches) != NULL) {
                e->watches = w->next;
                free(w);
            }
            entry_free(e);
        }
    }
}

s2a_poll_watch_t *
s2a_poller_watch(int64_t token_id, s2a_kind_t kind, const char *task_id,
                 s2a_poll_pt cb, void *arg)
{
    entry_t *e;
    s2a_poll_watch_t *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    for (e = *bucket_of(token_id); e != NULL; e = e->next) {
        if (e->token_id == token_id) {
            break;
        }
    }
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL || (e->timer = evtimer_new(P.base, tick, e)) == NULL) {
            free(e);
            free(w);
            return NULL;
        }
        e->token_id = token_id;
        e->next = *bucket_of(token_id);
        *bucket_of(token_id) = e;
        P.stats.entries++;
        arm(e);
    }
    w->entry = e;
    w->kind = kind;
    snprintf(w->task_id, sizeof(w->task_id), "%s", task_id);
    w->cb = cb;
    w->arg = arg;
    w->next = e->watches;
    e->watches = w;
    P.stats.watches++;
    return w;
}

void
s2a_poller_unwatch(s2a_poll_watch_t *w)
{
    if (w == NULL || w->dead) {
        return;
    }
    w->dead = true;
    P.stats.watches--;
    entry_settle(w->entry);
}

void
s2a_poller_stats(s2a_poller_stats_t *out)
{
    *out = P.stats;
}
