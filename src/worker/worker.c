/*
 * worker.c: a worker process: start-up of its subsystems, its event loop,
 * the control messages of the master, draining and exit. The shared
 * context and the master-call helpers are in context.c.
 *
 * Start-up order (after fork, in the child): signals, event base, control
 * channel, routes, static files, HTTP server, timers; then "ready" to the
 * master.
 */
#include "worker/worker.h"
#include "common/ops.h"
#include "worker/cameo.h"
#include "worker/characters.h"
#include "worker/chat.h"
#include "worker/images.h"
#include "worker/videos.h"
#include "worker/poller.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/data.h"
#include "worker/gen.h"
#include "worker/hooksend.h"
#include "worker/kdf.h"
#include "worker/media.h"
#include "worker/sora.h"
#include "worker/upkeep.h"
#include "worker/upstream.h"
#include "worker/routes.h"
#include "worker/sched.h"
#include "worker/static.h"
#ifdef S2A_TEST_HOOKS
#include "worker/testhooks.h"
#endif
#include "worker/usage.h"
#include "worker/apikeys.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#define TICK_MS        200
#define DRAIN_QUIET_MS 1000

static struct event *tick_ev, *usage_ev, *stop_accept_ev, *term_ev;
static struct event *ready_ev; /* test builds: a held-back "ready" */
static int exit_status;

/* Tells the master this worker serves. */
static void
send_ready(void)
{
    json_t *msg = json_pack("{s:s}", "op", "ready");

    s2a_worker_notify_master(msg);
    json_decref(msg);
}

#ifdef S2A_TEST_HOOKS
static void
ready_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    send_ready();
}
#endif

/* Test builds: SORA2API_TEST_READY_DELAY_MS holds "ready" back that
 * long, so that a test sees a worker that serves but is not ready yet (a
 * respawn counted only once ready). Returns whether it is held back. */
static bool
ready_later(const s2a_worker_args_t *args)
{
#ifdef S2A_TEST_HOOKS
    const char *v = getenv("SORA2API_TEST_READY_DELAY_MS");
    int ms = v != NULL ? atoi(v) : 0;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (!args->test_hooks || ms <= 0
        || (ready_ev = evtimer_new(s2a_worker.base, ready_cb, NULL)) == NULL)
    {
        return false;
    }
    evtimer_add(ready_ev, &tv);
    return true;
#else
    S2A_UNUSED(args);
    return false;
#endif
}

static void
stop_accepting(void)
{
    if (stop_accept_ev != NULL) {
        event_free(stop_accept_ev);
        stop_accept_ev = NULL;
    }
    s2a_http_stop_accepting(s2a_worker.http);
}

static void
stop_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    stop_accepting();
}

static void
begin_drain(int stop_accept_ms, int64_t deadline_ms)
{
    s2a_worker_t *w = &s2a_worker;
    struct timeval tv;

    if (w->draining) {
        return;
    }
    w->draining = true;
    w->drain_deadline_ms = s2a_mono_ms() + stop_accept_ms + deadline_ms;
    s2a_http_set_draining(w->http);
    s2a_log(LOG_INFO, 0, "draining: %d requests in flight",
            s2a_http_inflight(w->http));
    if (stop_accept_ms <= 0) {
        stop_accepting();
        return;
    }
    stop_accept_ev = evtimer_new(w->base, stop_accept_cb, NULL);
    tv.tv_sec = stop_accept_ms / 1000;
    tv.tv_usec = (stop_accept_ms % 1000) * 1000;
    evtimer_add(stop_accept_ev, &tv);
}

/* "drain": stop accepting, finish what is in flight, exit. */
void
s2a_op_drain(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    begin_drain(
        (int) json_integer_value(json_object_get(msg, "stop_accept_ms")),
        json_integer_value(json_object_get(msg, "deadline_ms")));
}

/* "reopen_logs" (SIGUSR1 to the master): logrotate moved the files. */
void
s2a_op_reopen_logs(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    S2A_UNUSED(msg);
    if (s2a_log_open(s2a_worker.conf->error_log) != S2A_OK
        || s2a_http_open_access_log(s2a_worker.http,
                                    s2a_worker.conf->access_log)
            != S2A_OK)
    {
        s2a_log(LOG_ERR, errno, "reopening log files failed");
    }
}

/* A message from the master: its row of the operations table, a check
 * of its fields, then the handler. */
static void
on_master_msg(s2a_chan_t *chan, json_t *msg, void *arg)
{
    const char *name = json_string_value(json_object_get(msg, "op"));
    const s2a_op_t *op;
    char err[256];

    S2A_UNUSED(chan);
    S2A_UNUSED(arg);
    op = name != NULL ? s2a_op_find(name, S2A_OP_TO_WORKER) : NULL;
    if (op == NULL) {
        s2a_log(LOG_WARNING, 0, "unknown control op \"%.64s\"",
                name != NULL ? name : "");
        return;
    }
    if (s2a_op_check(op, msg, err, sizeof(err)) != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "malformed control message ignored: %s", err);
        return;
    }
    op->handler(NULL, msg);
}

static void
on_master_close(s2a_chan_t *chan, void *arg)
{
    S2A_UNUSED(chan);
    S2A_UNUSED(arg);
    /* Without the master nothing can be persisted: stop at once. */
    s2a_log(LOG_ERR, 0, "control channel to the master closed; exiting");
    exit_status = 1;
    event_base_loopbreak(s2a_worker.base);
}

#define SHUTDOWN_NOTICE_MS 1000

static bool shutdown_told;

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    s2a_worker_t *w = &s2a_worker;
    int64_t now = s2a_mono_ms();

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    s2a_worker_refresh_settings();
    if (!w->draining) {
        return;
    }
    if (now >= w->drain_deadline_ms && !shutdown_told) {
        /* Last words first: running generations end with an error event
         * the clients can read; the connections close a second later. */
        shutdown_told = true;
        if (s2a_chat_shutdown() + s2a_images_shutdown() + s2a_videos_shutdown()
                + s2a_characters_shutdown()
            > 0)
        {
            w->drain_deadline_ms = now + SHUTDOWN_NOTICE_MS;
            return;
        }
    }
    if (now >= w->drain_deadline_ms) {
        s2a_log(LOG_WARNING, 0,
                "drain deadline reached with %d requests "
                "in flight; closing them",
                s2a_http_inflight(w->http));
        event_base_loopbreak(w->base);
        return;
    }
    if (stop_accept_ev != NULL) {
        return; /* still accepting (shrinking reload) */
    }
    /* Busy connections close after their current answer ("Connection:
     * close"); idle keep-alive ones get a quiet second first, so a client
     * that is about to reuse one is not cut off mid-request. A job whose
     * call to Sora is under way (a detached one has no connection) gets
     * its answer first: its row is then running, not submitting. */
    s2a_http_close_idle(w->http, DRAIN_QUIET_MS);
    /* A webhook in flight ends within its 5 s: reported, not retried. */
    if (s2a_http_connections(w->http) == 0 && s2a_hooksend_inflight() == 0
        && s2a_gen_submitting() == 0 && s2a_cameo_deleting() == 0)
    {
        event_base_loopbreak(w->base);
    }
}

static void
usage_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    s2a_usage_flush();
    s2a_apikeys_flush();
}

static void
term_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    /* SIGTERM to a worker means "stop now" (fast stop, master gone). */
    event_base_loopbreak(s2a_worker.base);
}

static void
on_request_done(s2a_req_t *req, void *arg)
{
    S2A_UNUSED(arg);
    s2a_usage_count(req->route, req->status);
    s2a_apikeys_request_done(req);
}

static void
worker_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    /* Terminal signals reach the whole process group: the master alone
     * decides what they mean. */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int
s2a_worker_main(const s2a_worker_args_t *args)
{
    s2a_worker_t *w = &s2a_worker;
    struct timeval tick = { 0, TICK_MS * 1000 }, sec = { 1, 0 };

    s2a_worker_context_init(args);
    exit_status = 0;
    worker_signals();

    w->base = event_base_new();
    if (w->base == NULL) {
        s2a_log(LOG_ERR, 0, "event_base_new() failed");
        return 1;
    }
    w->chan = s2a_chan_create(w->base, args->ctl_fd, on_master_msg,
                              on_master_close, NULL);
    if (w->chan == NULL) {
        return 1;
    }
    s2a_worker_refresh_settings();
    if (s2a_routes_init() != S2A_OK) {
        return 1;
    }
    s2a_static_init(w->conf->admin_ui_dir);
    s2a_media_init(w->conf->cache_dir);
    if (s2a_kdf_init(w->base) != S2A_OK || s2a_sched_init(w->base) != S2A_OK
        || s2a_upstream_init(w->base, (long) w->conf->upstream_timeout * 1000)
            != S2A_OK
        || s2a_poller_init(w->base, w->conf->poll_interval_ms) != S2A_OK)
    {
        return 1;
    }
    w->http =
        s2a_http_create(w->base, w->conf, args->listen_fds, args->n_listen,
                        args->slot, s2a_routes_dispatch, NULL);
    if (w->http == NULL) {
        return 2;
    }
    s2a_http_set_done_cb(w->http, on_request_done, NULL);
    s2a_http_set_admit_cb(w->http, s2a_routes_admit, NULL);
    tick_ev = event_new(w->base, -1, EV_PERSIST, tick_cb, NULL);
    usage_ev = event_new(w->base, -1, EV_PERSIST, usage_cb, NULL);
    term_ev = evsignal_new(w->base, SIGTERM, term_cb, NULL);
    if (tick_ev == NULL || usage_ev == NULL || term_ev == NULL) {
        return 1;
    }
    evtimer_add(tick_ev, &tick);
    evtimer_add(usage_ev, &sec);
    evsignal_add(term_ev, NULL);

    if (!ready_later(args)) {
        send_ready();
    }

    event_base_dispatch(w->base);
    /* From here on a job whose connection closes ends because the worker
     * does, not because its client left (a fast stop, the master gone). */
    w->exiting = true;

    /* Counters and the access log go out before the process does. */
    s2a_usage_flush();
    s2a_apikeys_flush();
    s2a_chan_flush_blocking(w->chan, 1000);
    s2a_http_flush_access_log(w->http);
    s2a_worker_call_finish(NULL, 0);
    /* Jobs whose connections close here are left as they are (running,
     * queued or submitting) for the next start; see s2a_gen_cancel. */
    s2a_http_destroy(w->http);
    s2a_apikeys_flush(); /* what the jobs cancelled just now counted */
    s2a_chan_flush_blocking(w->chan, 1000);
    s2a_gen_cleanup();
    s2a_data_cleanup();
    s2a_poller_cleanup();
#ifdef S2A_TEST_HOOKS
    s2a_testhooks_cleanup();
#endif
    s2a_upkeep_cleanup();
    s2a_hooksend_cleanup();
    s2a_sched_cleanup();
    s2a_cameo_cleanup();
    s2a_sora_cleanup();
    s2a_upstream_cleanup();
    s2a_kdf_cleanup();
    s2a_routes_cleanup();
    s2a_static_cleanup();
    s2a_media_cleanup();
    s2a_videos_cleanup();
    s2a_usage_cleanup();
    s2a_apikeys_cleanup();
    event_free(tick_ev);
    event_free(usage_ev);
    event_free(term_ev);
    if (ready_ev != NULL) {
        event_free(ready_ev);
        ready_ev = NULL;
    }
    if (stop_accept_ev != NULL) {
        event_free(stop_accept_ev);
    }
    s2a_chan_destroy(w->chan);
    w->chan = NULL;
    event_base_free(w->base);
    return exit_status;
}
