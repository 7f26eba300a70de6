/*
 * testhooks.c: test-only routes, built only with configure
 * --enable-test-hooks (S2A_TEST_HOOKS). Never in a release binary; the
 * black-box tests use them to reach states that are otherwise only
 * reached by accident (a worker dying inside the shm lock).
 */
#ifndef S2A_TEST_HOOKS
#error \
    "testhooks.c belongs to a test build only (configure --enable-test-hooks)"
#endif
#include "worker/testhooks.h"
#include "common/settings.h"
#include "common/crypto.h"
#include "common/jobtab.h"
#include "common/keytab.h"
#include "common/log.h"
#include "common/session.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/proxy.h"
#include "worker/sched.h"
#include "worker/sse.h"
#include "worker/sticky.h"
#include "worker/videos.h"
#include "worker/upstream.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TEST_TOKEN_ID 999999

/* Leases this process holds on purpose; released only by its death. */
static s2a_lease_t held[1024];
static int nheld;

static int
query_int(s2a_req_t *req, const char *name, int def)
{
    char *v = s2a_req_query_param(req, name);
    int n = def;

    if (v != NULL) {
        n = atoi(v);
        free(v);
    }
    return n;
}

static int
test_token_slot_locked(void)
{
    s2a_shm_token_t t;
    int slot = s2a_shm_token_find_locked(s2a_worker.shm, TEST_TOKEN_ID);

    if (slot >= 0) {
        return slot;
    }
    memset(&t, 0, sizeof(t));
    t.id = TEST_TOKEN_ID;
    t.state = S2A_TOKEN_ACTIVE;
    t.flags = S2A_TOKEN_F_IMAGE | S2A_TOKEN_F_VIDEO | S2A_TOKEN_F_SORA2;
    t.quota_left = -1;
    return s2a_shm_token_put_locked(s2a_worker.shm, &t, "test-token");
}

static void
hook_lease(s2a_req_t *req)
{
    int n = query_int(req, "n", 1), i, slot, got = 0;
    s2a_kind_t kind = S2A_KIND_VIDEO;
    char *k = s2a_req_query_param(req, "kind");

    if (k != NULL && strcmp(k, "image") == 0) {
        kind = S2A_KIND_IMAGE;
    }
    free(k);
    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        s2a_http_reply_error(req, 500, "server_error", NULL, NULL, "lock");
        return;
    }
    slot = test_token_slot_locked();
    for (i = 0; i < n && nheld < (int) S2A_NELEMS(held) && slot >= 0; i++) {
        if (s2a_shm_lease_acquire_locked(s2a_worker.shm, slot, kind,
                                         s2a_now_ms(), getpid(), &held[nheld])
            == S2A_OK)
        {
            nheld++;
            got++;
        }
    }
    s2a_shm_unlock(s2a_worker.shm);
    {
        json_t *body = json_pack("{s:i, s:i, s:i}", "acquired", got, "pid",
                                 (int) getpid(), "held", nheld);
        s2a_http_reply_json(req, 200, body);
        json_decref(body);
    }
}

static void
hook_shm(s2a_req_t *req)
{
    s2a_shm_t *shm = s2a_worker.shm;
    json_t *body, *workers, *inflight;
    int i, slot, leases;

    if (s2a_shm_lock(shm) != S2A_OK) {
        s2a_http_reply_error(req, 500, "server_error", NULL, NULL, "lock");
        return;
    }
    leases = s2a_shm_lease_count_locked(shm, 0);
    slot = s2a_shm_token_find_locked(shm, TEST_TOKEN_ID);
    inflight = json_pack("[i, i]",
                         slot >= 0 ? s2a_shm_tokens(shm)[slot].inflight[0] : 0,
                         slot >= 0 ? s2a_shm_tokens(shm)[slot].inflight[1] : 0);
    workers = json_array();
    for (i = 0; i < S2A_SHM_WORKERS; i++) {
        s2a_shm_worker_t *w = &shm->workers[i];
        if (w->pid == 0) {
            continue;
        }
        json_array_append_new(
            workers,
            json_pack("{s:i, s:i, s:i, s:i, s:i}", "pid", w->pid, "slot",
                      w->slot, "generation", (int) w->generation, "state",
                      (int) w->state, "settings_seen", (int) w->settings_seen));
    }
    body = json_pack("{s:i, s:o, s:i, s:i, s:o, s:I}", "leases", leases,
                     "inflight", inflight, "repairs", (int) shm->repairs,
                     "settings_seq", (int) s2a_shm_settings_seq(shm), "workers",
                     workers, "login_checks",
                     (json_int_t) atomic_load(&shm->login_checks));
    s2a_shm_unlock(shm);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
hook_die_locked(s2a_req_t *req)
{
    int slot;

    S2A_UNUSED(req);
    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        _exit(1);
    }
    /* Leave the table half-updated, as a crash mid-update would. */
    slot = test_token_slot_locked();
    if (slot >= 0) {
        s2a_shm_tokens(s2a_worker.shm)[slot].inflight[S2A_KIND_VIDEO] = 12345;
    }
    s2a_worker.shm->lease_high = s2a_worker.shm->max_leases + 7;
    raise(SIGKILL);
}

/* GET /__test/hold-lock?ms=N: holds the shm table lock N ms (this
 * worker's loop stands still meanwhile), so that others wait for it. */
static void
hook_hold_lock(s2a_req_t *req)
{
    int ms = query_int(req, "ms", 200);
    struct timespec ts;
    char out[48];
    int n;

    if (ms < 0 || ms > 5000) {
        ms = 200;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000L;
    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        s2a_http_reply_error(req, 500, "server_error", NULL, NULL, "lock");
        return;
    }
    nanosleep(&ts, NULL);
    s2a_shm_unlock(s2a_worker.shm);
    n = snprintf(out, sizeof(out), "{\"held_ms\":%d}", ms);
    s2a_http_reply(req, 200, "application/json", out, (size_t) n);
}

/* GET /__test/lock-busy: whether the shm table lock is held now (a
 * trylock, which the wait statistics do not count). */
static void
hook_lock_busy(s2a_req_t *req)
{
    int rc = s2a_shm_trylock(s2a_worker.shm);

    if (rc == S2A_OK) {
        s2a_shm_unlock(s2a_worker.shm);
    }
    if (rc == S2A_ERROR) {
        s2a_http_reply_error(req, 500, "server_error", NULL, NULL, "lock");
        return;
    }
    if (rc == S2A_AGAIN) {
        S2A_HTTP_REPLY_LIT(req, 200, "application/json", "{\"busy\":true}");
    } else {
        S2A_HTTP_REPLY_LIT(req, 200, "application/json", "{\"busy\":false}");
    }
}

static void
hook_worker(s2a_req_t *req)
{
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack("{s:i, s:i, s:i, s:s, s:i}", "pid", (int) getpid(), "slot",
                     s2a_worker.args->slot, "generation",
                     (int) s2a_worker.args->generation, "log_level",
                     s2a_log_level_name(s2a_log_get_level()), "settings_seq",
                     (int) s2a_worker.settings_seq);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

typedef struct pending_s {
    s2a_req_t *req;
    uint64_t call;
    struct event *timer;
} pending_t;

static void
pending_gone(s2a_req_t *req, void *arg)
{
    pending_t *p = arg;

    S2A_UNUSED(req);
    if (p->call != 0) {
        s2a_worker_call_cancel(p->call);
    }
    if (p->timer != NULL) {
        event_free(p->timer);
    }
    free(p);
}

static void
setting_done(json_t *reply, void *arg)
{
    pending_t *p = arg;

    p->req->on_gone = NULL;
    if (reply == NULL) {
        s2a_http_reply_error(p->req, 503, "server_error", NULL, NULL,
                             "master unavailable");
    } else if (!json_is_true(json_object_get(reply, "ok"))) {
        s2a_http_reply_error(
            p->req, 400, "invalid_request_error", NULL, NULL, "%s",
            json_string_value(json_object_get(reply, "error")));
    } else {
        S2A_HTTP_REPLY_LIT(p->req, 200, "application/json", "{\"ok\":true}");
    }
    free(p);
}

static void
hook_setting(s2a_req_t *req)
{
    const unsigned char *body;
    json_t *in, *msg;
    pending_t *p;
    size_t len;

    body = s2a_req_body(req, &len);
    in = body != NULL ? json_loadb((const char *) body, len, 0, NULL) : NULL;
    if (!json_is_string(json_object_get(in, "key"))
        || !json_is_string(json_object_get(in, "value")))
    {
        json_decref(in);
        s2a_http_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                             "need {\"key\":..., \"value\":...}");
        return;
    }
    msg = json_pack("{s:s, s:O, s:O}", "op", "set_setting", "key",
                    json_object_get(in, "key"), "value",
                    json_object_get(in, "value"));
    json_decref(in);
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        json_decref(msg);
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    p->req = req;
    p->call = s2a_worker_call_master(msg, setting_done, p);
    json_decref(msg);
    req->on_gone = pending_gone;
    req->gone_arg = p;
}

/*
 * {"name": integer, ...}: writes integer settings straight into the
 * shared snapshot, past the table's bounds (a 2 s generation timeout the
 * API refuses). Lasts until the master next publishes the settings.
 */
static void
hook_shm_settings(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, false), *v;
    const s2a_setting_t *row;
    s2a_shm_settings_t set;
    const char *key;
    int32_t i32;

    if (in == NULL) {
        return;
    }
    s2a_shm_settings_read(s2a_worker.shm, &set);
    json_object_foreach (in, key, v) {
        row = s2a_setting_find(key);
        if (row == NULL || row->type != S2A_SET_T_INT || !json_is_integer(v)) {
            json_decref(in);
            s2a_http_reply_error(req, 400, "invalid_request_error", NULL, NULL,
                                 "integer settings only");
            return;
        }
        i32 = (int32_t) json_integer_value(v);
        memcpy((char *) &set + row->off, &i32, sizeof(i32));
    }
    json_decref(in);
    s2a_shm_settings_write(s2a_worker.shm, &set);
    S2A_HTTP_REPLY_LIT(req, 200, "application/json", "{\"ok\":true}");
}

static void
sleep_done(evutil_socket_t fd, short what, void *arg)
{
    pending_t *p = arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    p->req->on_gone = NULL;
    S2A_HTTP_REPLY_LIT(p->req, 200, "application/json", "{\"slept\":true}");
    event_free(p->timer);
    free(p);
}

static void
hook_sleep(s2a_req_t *req)
{
    int ms = query_int(req, "ms", 1000);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    pending_t *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    p->req = req;
    p->timer = evtimer_new(s2a_worker.base, sleep_done, p);
    evtimer_add(p->timer, &tv);
    req->on_gone = pending_gone;
    req->gone_arg = p;
}

static void
hook_echo(s2a_req_t *req)
{
    uint8_t hash[S2A_SHA256_LEN];
    char hex[2 * S2A_SHA256_LEN + 1];
    const unsigned char *body;
    json_t *out;
    size_t len;

    body = s2a_req_body(req, &len);
    s2a_sha256(body != NULL ? body : (const unsigned char *) "", len, hash);
    s2a_hex(hash, sizeof(hash), hex);
    out = json_pack("{s:I, s:s}", "length", (json_int_t) len, "sha256", hex);
    s2a_http_reply_json(req, 200, out);
    json_decref(out);
}

/* An admin session that lasts `ttl` seconds (expiry tests). */
static void
hook_session(s2a_req_t *req)
{
    char tok[S2A_SESSION_MAX];
    json_t *body;

    s2a_worker_refresh_settings();
    if (s2a_session_issue(s2a_worker.settings.session_secret,
                          s2a_now() + query_int(req, "ttl", 1),
                          s2a_worker.settings.session_epoch, tok, sizeof(tok))
        != S2A_OK)
    {
        s2a_http_reply_error(req, 500, "server_error", NULL, NULL, "issue");
        return;
    }
    body = json_pack("{s:s}", "token", tok);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* Takes a token through the scheduler (waiting if need be), holds it
 * for hold_ms, then gives it back: the queue seen from outside. */
typedef struct acq_s {
    s2a_req_t *req;
    uint64_t wait;
    s2a_lease_t lease;
    struct event *timer;
    int64_t started;
    int64_t waited;
    int hold_ms;
} acq_t;

static void
acq_free(acq_t *a)
{
    if (a->timer != NULL) {
        event_free(a->timer);
    }
    if (a->lease.row >= 0) {
        s2a_sched_release(&a->lease);
    }
    free(a);
}

static void
acq_gone(s2a_req_t *req, void *arg)
{
    acq_t *a = arg;

    S2A_UNUSED(req);
    if (a->wait != 0) {
        s2a_sched_cancel(a->wait);
    }
    acq_free(a);
}

static void
acq_held(evutil_socket_t fd, short what, void *arg)
{
    acq_t *a = arg;
    s2a_req_t *req = a->req;
    json_t *body;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    body = json_pack("{s:I, s:I}", "token_id", (json_int_t) a->lease.token_id,
                     "waited_ms", (json_int_t) a->waited);
    req->on_gone = NULL;
    acq_free(a);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
acq_granted(const s2a_lease_t *lease, const char *why, void *arg)
{
    acq_t *a = arg;
    struct timeval tv;

    a->wait = 0;
    if (lease == NULL) {
        s2a_req_t *req = a->req;
        req->on_gone = NULL;
        acq_free(a);
        s2a_http_reply_error(req, 503, "server_error", "no_token_available",
                             NULL, "%s", why);
        return;
    }
    a->lease = *lease;
    a->waited = s2a_mono_ms() - a->started;
    tv.tv_sec = a->hold_ms / 1000;
    tv.tv_usec = (a->hold_ms % 1000) * 1000;
    a->timer = evtimer_new(s2a_worker.base, acq_held, a);
    evtimer_add(a->timer, &tv);
}

static void
hook_acquire(s2a_req_t *req)
{
    char *k = s2a_req_query_param(req, "kind");
    acq_t *a = calloc(1, sizeof(*a));
    int64_t avoid = query_int(req, "avoid", 0);

    if (a == NULL) {
        free(k);
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    a->req = req;
    a->lease.row = -1;
    a->hold_ms = query_int(req, "hold_ms", 0);
    a->started = s2a_mono_ms();
    a->wait = s2a_sched_acquire(
        k != NULL && strcmp(k, "image") == 0 ? S2A_KIND_IMAGE : S2A_KIND_VIDEO,
        &avoid, avoid > 0 ? 1 : 0, acq_granted, a);
    free(k);
    req->on_gone = acq_gone;
    req->gone_arg = a;
}

/* A server-sent-event stream of n events, one every interval_ms: the
 * streaming layer seen from outside (disconnects, graceful stops). */
typedef struct stream_s {
    s2a_req_t *req;
    struct event *timer;
    int left, sent, interval_ms;
} stream_t;

static void
stream_gone(s2a_req_t *req, void *arg)
{
    stream_t *st = arg;

    S2A_UNUSED(req);
    s2a_log(LOG_INFO, 0, "test stream: client went away after %d events",
            st->sent);
    event_free(st->timer);
    free(st);
}

static void
stream_tick(evutil_socket_t fd, short what, void *arg)
{
    stream_t *st = arg;
    struct timeval tv = { st->interval_ms / 1000,
                          (st->interval_ms % 1000) * 1000 };
    char ev[64];
    int n;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (st->left-- > 0) {
        n = snprintf(ev, sizeof(ev), "data: {\"i\":%d}\n\n", st->sent++);
        s2a_http_stream_write(st->req, ev, (size_t) n);
        if (st->sent % 3 == 0) {
            s2a_http_stream_write(st->req, S2A_SSE_HEARTBEAT,
                                  sizeof(S2A_SSE_HEARTBEAT) - 1);
        }
        evtimer_add(st->timer, &tv);
        return;
    }
    s2a_http_stream_write(st->req, S2A_SSE_DONE, sizeof(S2A_SSE_DONE) - 1);
    st->req->on_gone = NULL;
    s2a_http_stream_end(st->req);
    event_free(st->timer);
    free(st);
}

static void
hook_stream(s2a_req_t *req)
{
    stream_t *st = calloc(1, sizeof(*st));
    struct timeval now = { 0, 0 };

    if (st == NULL) {
        s2a_http_reply_error(req, 503, "server_error", NULL, NULL,
                             "out of memory");
        return;
    }
    st->req = req;
    st->left = query_int(req, "n", 5);
    st->interval_ms = query_int(req, "interval_ms", 50);
    st->timer = evtimer_new(s2a_worker.base, stream_tick, st);
    s2a_http_add_header(req, "Cache-Control", "no-cache");
    s2a_http_add_header(req, "X-Accel-Buffering", "no");
    s2a_http_stream_start(req, 200, "text/event-stream");
    req->on_gone = stream_gone;
    req->gone_arg = st;
    evtimer_add(st->timer, &now);
}

/*
 * The live job table seen by this worker: where its last video retrieve
 * was answered from, the counters, and with ?id= that job's slot.
 * ?bypass=N sends this worker's next N retrieves to the master (the
 * same object, read from the row); ?id=&owner=K makes the slot another
 * API key's.
 */
static void
hook_jobtab(s2a_req_t *req)
{
    char *id = s2a_req_query_param(req, "id");
    int owner = query_int(req, "owner", 0);
    const char *last = s2a_videos_last_source();
    s2a_jobtab_t *jt = s2a_jobs;
    json_t *body, *slot = json_null();
    s2a_job_t job;

    s2a_videos_test_bypass(query_int(req, "bypass", 0));
    if (id != NULL && s2a_jobtab_get(jt, id, &job, NULL) == S2A_OK) {
        if (owner > 0) {
            job.owner = owner;
            s2a_jobtab_put(jt, &job);
        }
        slot = json_pack("{s:s, s:f, s:i, s:b, s:I, s:I, s:s?}", "status",
                         s2a_job_status_name(job.status), "progress",
                         job.progress, "worker_pid", (int) job.worker_pid,
                         "incomplete", (job.flags & S2A_JOB_F_INCOMPLETE) != 0,
                         "owner", (json_int_t) job.owner, "created",
                         (json_int_t) job.created, "url",
                         s2a_job_text(&job, S2A_JOB_T_URL));
    }
    free(id);
    body = json_pack(
        "{s:i, s:s?, s:i, s:i, s:I, s:I, s:i, s:i, s:o}", "pid", (int) getpid(),
        "last", last, "used", (int) s2a_jobtab_used(jt), "slots",
        (int) s2a_jobtab_slots(jt), "hits",
        (json_int_t) (jt != NULL ? atomic_load(&jt->hits) : 0), "fallbacks",
        (json_int_t) (jt != NULL ? atomic_load(&jt->fallbacks) : 0), "refused",
        (int) (jt != NULL ? atomic_load(&jt->refused) : 0), "repairs",
        (int) (jt != NULL ? jt->repairs : 0), "slot", slot);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* GET /__test/content-proxy[?reset=1]: the content relays' counters
 * (proxy.c); reset=1 starts the peak of queued bytes again. */
static void
hook_content_proxy(s2a_req_t *req)
{
    s2a_proxy_stats_t st;
    json_t *body;

    if (query_int(req, "reset", 0) != 0) {
        s2a_proxy_stats_reset_peak();
    }
    s2a_proxy_stats(&st);
    body = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "active", st.active, "started", (json_int_t) st.started,
                     "completed", (json_int_t) st.completed, "short_ends",
                     (json_int_t) st.short_ends, "failed",
                     (json_int_t) st.failed, "left", (json_int_t) st.left,
                     "pauses", (json_int_t) st.pauses, "peak_queued",
                     (json_int_t) st.peak_queued, "high_water",
                     (json_int_t) S2A_PROXY_HIGH_WATER, "upstream_inflight",
                     (json_int_t) s2a_upstream_inflight());
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* POST /__test/ctl {op, ...}: one worker-to-master call (only ops whose
 * name starts with "character"), answered with the master's reply as it
 * came: the characters table reached without Sora (seeding rows). */
typedef struct ctl_call_s {
    s2a_req_t *req;
    uint64_t call;
} ctl_call_t;

static void
ctl_gone(s2a_req_t *req, void *arg)
{
    ctl_call_t *c = arg;

    S2A_UNUSED(req);
    s2a_worker_call_cancel(c->call);
    free(c);
}

static void
ctl_done(json_t *reply, void *arg)
{
    ctl_call_t *c = arg;
    s2a_req_t *req = c->req;

    req->on_gone = NULL;
    free(c);
    if (reply == NULL) {
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    s2a_http_reply_json(req, 200, reply);
}

static void
hook_ctl(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true);
    const char *op = json_string_value(json_object_get(in, "op"));
    ctl_call_t *c;

    if (in == NULL) {
        return;
    }
    if (op == NULL || strncmp(op, "character", 9) != 0) {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "op must be a character operation");
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        json_decref(in);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    c->req = req;
    c->call = s2a_worker_call_master(in, ctl_done, c);
    json_decref(in);
    if (c->call == 0) {
        free(c);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = ctl_gone;
    req->gone_arg = c;
}

void
s2a_testhooks_dispatch(s2a_req_t *req)
{
    const char *p = req->path + 8;

    if (strcmp(p, "lease") == 0) {
        hook_lease(req);
    } else if (strcmp(p, "shm") == 0) {
        hook_shm(req);
    } else if (strcmp(p, "die-locked") == 0) {
        hook_die_locked(req);
    } else if (strcmp(p, "worker") == 0) {
        hook_worker(req);
    } else if (strcmp(p, "hold-lock") == 0) {
        hook_hold_lock(req);
    } else if (strcmp(p, "lock-busy") == 0) {
        hook_lock_busy(req);
    } else if (strcmp(p, "setting") == 0) {
        hook_setting(req);
    } else if (strcmp(p, "shm-settings") == 0) {
        hook_shm_settings(req);
    } else if (strcmp(p, "record") == 0) {
        /* One task row and one request-log row, as a generation writes. */
        json_t *in = s2a_req_json_object(req, false), *msg;
        if (in == NULL) {
            return;
        }
        msg = json_pack("{s:s, s:O, s:O}", "op", "task_record", "job_id",
                        json_object_get(in, "job_id"), "fields",
                        json_object_get(in, "task"));
        s2a_worker_notify_master(msg);
        json_decref(msg);
        if (json_object_get(in, "log") != NULL) {
            msg = json_pack("{s:s, s:O}", "op", "request_log", "fields",
                            json_object_get(in, "log"));
            s2a_worker_notify_master(msg);
            json_decref(msg);
        }
        json_decref(in);
        S2A_HTTP_REPLY_LIT(req, 202, "application/json", "{\"queued\":true}");
    } else if (strcmp(p, "stream") == 0) {
        hook_stream(req);
    } else if (strcmp(p, "acquire") == 0) {
        hook_acquire(req);
    } else if (strcmp(p, "session") == 0) {
        hook_session(req);
    } else if (strcmp(p, "sweep") == 0) {
        json_t *msg = json_pack("{s:s}", "op", "sweep_now");
        s2a_worker_notify_master(msg);
        json_decref(msg);
        S2A_HTTP_REPLY_LIT(req, 202, "application/json", "{\"queued\":true}");
    } else if (strcmp(p, "key-clock") == 0) {
        /* ?offset=<seconds> moves the API key clock (quota periods,
         * expiry, usage days) of every process; the answer is the new
         * key time. */
        char out[64];
        int n;
        s2a_keytab_set_clock_offset(s2a_keytab,
                                    (int64_t) query_int(req, "offset", 0));
        n = snprintf(out, sizeof(out), "{\"now\":%lld}",
                     (long long) s2a_keytab_now(s2a_keytab));
        s2a_http_reply(req, 200, "application/json", out, (size_t) n);
    } else if (strcmp(p, "echo") == 0) {
        hook_echo(req);
    } else if (strcmp(p, "sleep") == 0) {
        hook_sleep(req);
    } else if (strcmp(p, "jobtab") == 0) {
        hook_jobtab(req);
    } else if (strcmp(p, "content-proxy") == 0) {
        hook_content_proxy(req);
    } else if (strcmp(p, "ctl") == 0) {
        hook_ctl(req);
    } else if (strcmp(p, "sticky") == 0) {
        /* This worker's sticky routing counters (sticky.c). */
        char out[96];
        int n = snprintf(out, sizeof(out), "{\"lookups\":%llu,\"pinned\":%llu}",
                         (unsigned long long) s2a_sticky_lookups(),
                         (unsigned long long) s2a_sticky_pinned());
        s2a_http_reply(req, 200, "application/json", out, (size_t) n);
    } else {
        s2a_http_reply_error(req, 404, "invalid_request_error", NULL, NULL,
                             "unknown test hook");
    }
}

void
s2a_testhooks_cleanup(void)
{
    int i;

    if (nheld == 0 || s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return;
    }
    for (i = 0; i < nheld; i++) {
        s2a_shm_lease_release_locked(s2a_worker.shm, &held[i]);
    }
    s2a_shm_unlock(s2a_worker.shm);
    nheld = 0;
}
