/*
 * master.c: the supervisor. Starts the daemon (directories, pid file,
 * sockets, privileges, database, shared memory), forks the workers and
 * keeps them running: respawn with back-off, release of a dead worker's
 * leases, draining on reload and stop. Signals: HUP reload, TERM/INT
 * graceful stop (a second one: fast), QUIT fast stop, USR1 log reopen.
 *
 * Everything else the master does lives beside it: the control channel
 * (ctlserver.c), runtime settings (runtime.c), the account pool
 * (pool.c), generation records (journal.c), periodic sweeps (sweep.c),
 * the listening sockets (listeners.c) and the process set-up (daemon.c).
 */
#include "master/master.h"
#include "common/crypto.h"
#include "common/jobtab.h"
#include "common/keytab.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/daemon.h"
#include "master/journal.h"
#include "master/orphans.h"
#include "master/keys.h"
#include "master/listeners.h"
#include "master/pool.h"
#include "master/runtime.h"
#include "master/sdnotify.h"
#include "master/state.h"
#include "master/sweep.h"
#include "master/webhooks.h"
#include "worker/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#define QUICK_DEATH_MS  5000
#define MAX_BACKOFF_MS  30000
#define SHRINK_GRACE_MS 500
#define KILL_GRACE_MS   5000

/* What a child runs after the fork; its return is the exit status. */
typedef int (*child_main_pt)(int slot, int row, int ctl_fd);

typedef struct slot_s {
    int quick_deaths;
    struct event *respawn_ev;
} slot_t;

s2a_master_t s2a_master;

/* The supervisor's own state. */
static struct {
    slot_t slots[S2A_CONF_MAX_WORKERS];
    uint32_t generation;
    int exit_status;
    int status_fd; /* daemonize: tells the parent we are up */
    bool ready_announced;
    struct event *signals[8];
    int n_signals;
    struct event *tick_ev;
    uint32_t next_rr; /* round-robin over ready workers */
} S = { .status_fd = -1, .exit_status = S2A_EXIT_OK };

static void reap_children(void);
static void maybe_finish_stop(void);
static void announce_ready_if_done(void);

/* ---------------------------------------------------------------------
 * Workers
 */

s2a_proc_t *
s2a_master_next_ready(void)
{
    s2a_proc_t *p, *pick = NULL;
    int n = 0, want;

    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->state == S2A_PROC_READY) {
            n++;
        }
    }
    if (n == 0) {
        return NULL;
    }
    want = (int) (S.next_rr++ % (uint32_t) n);
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->state == S2A_PROC_READY && want-- == 0) {
            pick = p;
            break;
        }
    }
    return pick;
}

/*
 * Tells worker `p` to finish what it has and exit. A stop grants
 * shutdown_timeout; a worker replaced by a reload may also finish the
 * generations it streams, up to the video timeout, since a reload is not
 * a reason to lose a client's video.
 */
void
s2a_master_drain(s2a_proc_t *p, int stop_accept_ms, bool replaced)
{
    json_t *msg;
    int64_t deadline = (int64_t) s2a_master.conf->shutdown_timeout * 1000;
    int64_t jobs =
        ((int64_t) s2a_master.shm->settings.video_timeout + 60) * 1000;

    if (replaced && jobs > deadline) {
        deadline = jobs;
    }

    if (p->state == S2A_PROC_DRAINING) {
        return;
    }
    p->state = S2A_PROC_DRAINING;
    p->kill_at_ms = s2a_mono_ms() + stop_accept_ms + deadline + KILL_GRACE_MS;
    s2a_master.shm->workers[p->row].state = S2A_WORKER_DRAINING;
    msg = json_pack("{s:s, s:i, s:I}", "op", "drain", "stop_accept_ms",
                    stop_accept_ms, "deadline_ms", (json_int_t) deadline);
    if (msg != NULL) {
        s2a_chan_send(p->chan, msg);
        json_decref(msg);
    }
}

/* "ready": the worker serves; an older one of its slot drains. */
void
s2a_op_ready(void *from, json_t *msg)
{
    s2a_proc_t *proc = from, *p;

    S2A_UNUSED(msg);
    proc->state = S2A_PROC_READY;
    s2a_master.shm->workers[proc->row].state = S2A_WORKER_READY;
    /* A restart counts once the replacement serves, after its state. */
    if (proc->respawned) {
        proc->respawned = false;
        s2a_stats_worker_restarted(&s2a_master.shm->stats);
    }
    S.slots[proc->slot].quick_deaths = 0;
    s2a_log(LOG_INFO, 0, "worker %d (pid %d, generation %u) ready", proc->slot,
            (int) proc->pid, proc->generation);
    /* The replacement serves the slot now: the older worker drains. */
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p != proc && p->slot == proc->slot
            && p->generation < proc->generation) {
            s2a_master_drain(p, 0, true);
        }
    }
    announce_ready_if_done();
}

static int
shm_row_alloc(void)
{
    int i;

    for (i = 0; i < S2A_SHM_WORKERS; i++) {
        if (s2a_master.shm->workers[i].state == S2A_WORKER_EMPTY
            && s2a_master.shm->workers[i].pid == 0)
        {
            return i;
        }
    }
    return -1;
}

/*
 * The one place where a new child drops what belongs to the master: the
 * master's event registrations, the other workers' channels, the
 * listening sockets of other slots, the daemonize pipe and the key that
 * seals secrets at rest. Fills the worker's listening descriptors.
 */
static void
after_fork(int slot, s2a_worker_args_t *args)
{
    s2a_proc_t *p;
    char role[32];

#ifdef HAVE_PRCTL
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != (pid_t) s2a_master.shm->master_pid) {
        _exit(S2A_EXIT_FAILURE); /* the master died before prctl */
    }
    snprintf(role, sizeof(role), "worker %d", slot);
    s2a_log_set_role(role);

    /* The master's event base shares its epoll instance with us: give it
     * a private one, then free it, so nothing we do touches the master's
     * registrations. */
    event_reinit(s2a_master.base);
    event_base_free(s2a_master.base);
    s2a_master.base = NULL;
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        close(s2a_chan_fd(p->chan));
    }
    memset(args, 0, sizeof(*args));
    args->n_listen =
        s2a_listeners_take_slot(slot, args->listen_fds, S2A_CONF_MAX_LISTEN);
    if (S.status_fd >= 0) {
        close(S.status_fd);
        S.status_fd = -1;
    }
    OPENSSL_cleanse(s2a_master.key, sizeof(s2a_master.key));
    /* The database, its WAL and the key file are the master's alone: drop
     * their descriptors and mappings without touching SQLite (see db.h),
     * and forget the handle so nothing in the worker can reach it. */
    if (s2a_db_drop_after_fork(s2a_master.conf->data_dir) < 0) {
        _exit(S2A_EXIT_FAILURE);
    }
    /* The handle's memory is the master's copy: never freed here (that
     * would run SQLite code), but kept reachable for leak checkers. */
    s2a_master.db_inherited = s2a_master.db;
    s2a_master.db = NULL;
}

/* A worker process: after_fork, then the worker's own main. */
static int
worker_process(int slot, int row, int ctl_fd)
{
    s2a_worker_args_t args;

    after_fork(slot, &args);
    args.conf = s2a_master.conf;
    args.shm = s2a_master.shm;
    args.slot = slot;
    args.shm_row = row;
    args.generation = S.generation;
    args.ctl_fd = ctl_fd;
    args.test_hooks = s2a_master.opts.test_hooks;
    return s2a_worker_main(&args);
}

/* Forks a child for `slot` running `main`, with its control channel.
 * Returns the child's entry in s2a_master.procs, or NULL. */
static s2a_proc_t *
spawn(child_main_pt main, int slot)
{
    int sv[2], row;
    s2a_proc_t *proc;
    pid_t pid;

    row = shm_row_alloc();
    if (row < 0) {
        s2a_log(LOG_ERR, 0, "no free worker row in shared memory");
        return NULL;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
        s2a_log(LOG_ERR, errno, "socketpair() failed");
        return NULL;
    }
    proc = calloc(1, sizeof(*proc));
    if (proc == NULL) {
        close(sv[0]);
        close(sv[1]);
        return NULL;
    }
    pid = fork();
    if (pid == -1) {
        s2a_log(LOG_ERR, errno, "fork() failed");
        close(sv[0]);
        close(sv[1]);
        free(proc);
        return NULL;
    }
    if (pid == 0) {
        free(proc);
        close(sv[0]);
        exit(main(slot, row, sv[1]));
    }
    close(sv[1]);
    evutil_make_socket_nonblocking(sv[0]);
    proc->pid = pid;
    proc->slot = slot;
    proc->row = row;
    proc->generation = S.generation;
    proc->state = S2A_PROC_STARTING;
    proc->started_ms = s2a_mono_ms();
    proc->listener_mask = s2a_listeners_active_mask();
    proc->chan = s2a_chan_create(s2a_master.base, sv[0], s2a_ctlserver_on_msg,
                                 s2a_ctlserver_on_close, proc);
    if (proc->chan == NULL) {
        /* Without a channel the worker cannot be managed: stop it. */
        kill(pid, SIGKILL);
        close(sv[0]);
    }
    s2a_master.shm->workers[row].pid = (int32_t) pid;
    s2a_master.shm->workers[row].slot = slot;
    s2a_master.shm->workers[row].generation = S.generation;
    s2a_master.shm->workers[row].state = S2A_WORKER_STARTING;
    s2a_master.shm->workers[row].started_ms = s2a_now_ms();
    s2a_master.shm->workers[row].requests = 0;
    proc->next = s2a_master.procs;
    s2a_master.procs = proc;
    s2a_log(LOG_INFO, 0, "worker %d started (pid %d, generation %u)", slot,
            (int) pid, S.generation);
    return proc;
}

static s2a_proc_t *
spawn_worker(int slot)
{
    return spawn(worker_process, slot);
}

static bool
slot_has_live_worker(int slot)
{
    s2a_proc_t *p;

    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->slot == slot && p->state != S2A_PROC_DRAINING) {
            return true;
        }
    }
    return false;
}

static void
respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    int slot = (int) (intptr_t) arg;
    s2a_proc_t *proc;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (s2a_master.stopping || slot >= s2a_master.conf->workers
        || slot_has_live_worker(slot))
    {
        return;
    }
    proc = spawn_worker(slot);
    if (proc == NULL) {
        struct timeval tv = { 1, 0 };
        evtimer_add(S.slots[slot].respawn_ev, &tv);
        return;
    }
    proc->respawned = true;
}

static void
schedule_respawn(int slot, int64_t lived_ms)
{
    slot_t *s = &S.slots[slot];
    int64_t delay = 0;
    struct timeval tv;

    if (lived_ms < QUICK_DEATH_MS) {
        s->quick_deaths++;
    } else {
        s->quick_deaths = 0;
    }
    /* First death: at once. A crash loop backs off up to 30 s. */
    if (s->quick_deaths > 1) {
        delay = 100LL << (s->quick_deaths - 2 > 10 ? 10 : s->quick_deaths - 2);
        if (delay > MAX_BACKOFF_MS) {
            delay = MAX_BACKOFF_MS;
        }
        s2a_log(LOG_CRIT, 0,
                "worker %d keeps dying (%d quick exits); next start in "
                "%lld ms",
                slot, s->quick_deaths, (long long) delay);
    }
    if (s->respawn_ev == NULL) {
        s->respawn_ev =
            evtimer_new(s2a_master.base, respawn_cb, (void *) (intptr_t) slot);
    }
    tv.tv_sec = (time_t) (delay / 1000);
    tv.tv_usec = (suseconds_t) ((delay % 1000) * 1000);
    evtimer_add(s->respawn_ev, &tv);
}

static void
proc_remove(s2a_proc_t *proc)
{
    s2a_proc_t **pp;

    for (pp = &s2a_master.procs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == proc) {
            *pp = proc->next;
            break;
        }
    }
    s2a_ctlserver_forget(proc);
    s2a_chan_destroy(proc->chan);
    free(proc);
}

static void
reap_children(void)
{
    int status, code, dropped;
    s2a_proc_t *proc;
    pid_t pid;
    bool was_draining;
    int64_t lived;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (proc = s2a_master.procs; proc != NULL; proc = proc->next) {
            if (proc->pid == pid) {
                break;
            }
        }
        if (proc == NULL) {
            continue;
        }
        /* Whatever the worker sent before exiting is still applied;
         * then its unfinished tasks are closed. */
        s2a_chan_drain_input(proc->chan);
        s2a_journal_worker_gone(pid);
        s2a_orphans_worker_gone(pid);

        dropped = 0;
        if (s2a_shm_lock(s2a_master.shm) == S2A_OK) {
            dropped = s2a_shm_release_owner_locked(s2a_master.shm, pid);
            s2a_shm_unlock(s2a_master.shm);
        }
        s2a_keys_worker_gone(pid);
        /* Its jobs count no more: the master closes them (counted as
         * ended then) or hands them to a worker that counts them. */
        s2a_stats_row_gone(&s2a_master.shm->stats, proc->row);
        memset(&s2a_master.shm->workers[proc->row], 0,
               sizeof(s2a_master.shm->workers[0]));

        was_draining = proc->state == S2A_PROC_DRAINING;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        lived = s2a_mono_ms() - proc->started_ms;
        if (WIFSIGNALED(status)) {
            s2a_log(was_draining || s2a_master.stopping ? LOG_NOTICE : LOG_ERR,
                    0,
                    "worker %d (pid %d) killed by signal %d%s; %d leases "
                    "released",
                    proc->slot, (int) pid, WTERMSIG(status),
                    was_draining ? " while draining" : "", dropped);
        } else if (code != 0 || dropped > 0) {
            s2a_log(LOG_ERR, 0,
                    "worker %d (pid %d) exited with status %d; "
                    "%d leases released",
                    proc->slot, (int) pid, code, dropped);
        } else {
            s2a_log(LOG_INFO, 0, "worker %d (pid %d) exited", proc->slot,
                    (int) pid);
        }
        int slot = proc->slot;
        proc_remove(proc);

        if (s2a_master.stopping || was_draining) {
            continue;
        }
        if (code == S2A_EXIT_CONFIG) {
            s2a_log(LOG_CRIT, 0,
                    "worker %d hit a fatal configuration error; "
                    "not restarting it",
                    slot);
            if (s2a_master.procs == NULL) {
                S.exit_status = S2A_EXIT_FAILURE;
                s2a_master.stopping = 2;
            }
            continue;
        }
        if (slot < s2a_master.conf->workers && !slot_has_live_worker(slot)) {
            schedule_respawn(slot, lived);
        }
    }
    s2a_listeners_close_unused();
    maybe_finish_stop();
}

/* ---------------------------------------------------------------------
 * Readiness and stopping
 */

static void
announce_ready_if_done(void)
{
    s2a_proc_t *p;
    int ready = 0;
    char c = 0;

    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->generation == S.generation && p->state == S2A_PROC_READY) {
            ready++;
        }
    }
    if (ready < s2a_master.conf->workers) {
        return;
    }
    if (!S.ready_announced) {
        S.ready_announced = true;
        s2a_log(LOG_NOTICE, 0, "sora2apid %s ready: %d workers", S2A_VERSION,
                s2a_master.conf->workers);
        if (S.status_fd >= 0) {
            if (write(S.status_fd, &c, 1) < 0) {
                /* the parent is gone; nothing to tell */
            }
            close(S.status_fd);
            S.status_fd = -1;
        }
    }
    s2a_sd_notify("READY=1");
    /* Jobs the last run left with Sora go to the workers now. */
    s2a_journal_resume_tick();
}

static void
maybe_finish_stop(void)
{
    if (s2a_master.stopping && s2a_master.procs == NULL) {
        event_base_loopbreak(s2a_master.base);
    }
}

static void
begin_stop(int how)
{
    s2a_proc_t *p;

    if (s2a_master.stopping >= how) {
        return;
    }
    s2a_master.stopping = how;
    s2a_sd_notify("STOPPING=1");
    s2a_log(LOG_NOTICE, 0, "%s stop requested", how == 1 ? "graceful" : "fast");
    s2a_listeners_close_unused();
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (how == 1) {
            s2a_master_drain(p, 0, false);
        } else {
            kill(p->pid, SIGTERM);
            p->kill_at_ms = s2a_mono_ms() + KILL_GRACE_MS;
        }
    }
    maybe_finish_stop();
}

/* ---------------------------------------------------------------------
 * Reload
 */

/* Restart-only keys keep their running values; say so. */
static void
keep_restart_only_keys(s2a_conf_t *next)
{
    size_t i, size;
    const s2a_conf_key_t *k;

    for (i = 0; i < s2a_conf_nkeys; i++) {
        k = &s2a_conf_keys[i];
        if (k->flags & (S2A_CONF_RELOAD | S2A_CONF_SEED)) {
            continue;
        }
        size = k->size != 0              ? k->size
            : k->type == S2A_CONF_T_SIZE ? sizeof(long)
                                         : sizeof(int);
        if (memcmp((char *) next + k->offset,
                   (char *) s2a_master.conf + k->offset, size)
            != 0)
        {
            s2a_log(LOG_WARNING, 0,
                    "[%s] %s changed: it takes effect after a restart",
                    k->section, k->name);
            memcpy((char *) next + k->offset,
                   (char *) s2a_master.conf + k->offset, size);
        }
    }
}

static void
reload(void)
{
    char err[512];
    s2a_conf_t *next;
    int i, old_workers;
    s2a_proc_t *p;

    s2a_sd_notify("RELOADING=1");
    next = malloc(sizeof(*next));
    if (next == NULL) {
        return;
    }
    if (s2a_master.opts.conf_path != NULL) {
        if (s2a_conf_load(next, s2a_master.opts.conf_path, err, sizeof(err))
            != S2A_OK) {
            s2a_log(LOG_ERR, 0,
                    "reload failed, keeping the running "
                    "configuration: %s",
                    err);
            free(next);
            s2a_sd_notify("READY=1");
            return;
        }
    } else if (s2a_conf_defaults(next, err, sizeof(err)) != S2A_OK) {
        free(next);
        return;
    }
    keep_restart_only_keys(next);
    /* A worker that cannot open its access log could not start: refuse
     * the file instead of losing the workers. */
    if (strcmp(next->access_log, "off") != 0
        && strcmp(next->access_log, "stderr") != 0)
    {
        int fd = open(next->access_log,
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd == -1) {
            s2a_log(LOG_ERR, errno,
                    "reload failed, keeping the running "
                    "configuration: open(\"%s\") failed",
                    next->access_log);
            free(next);
            s2a_sd_notify("READY=1");
            return;
        }
        close(fd);
    }
    /* Every new socket before anything else changes: a port in use
     * leaves the running generation as it is. */
    if (s2a_listeners_reload(next) != S2A_OK) {
        s2a_log(LOG_ERR, 0,
                "reload failed, keeping the running configuration: a "
                "listening socket could not be opened");
        free(next);
        s2a_sd_notify("READY=1");
        return;
    }
    if (strcmp(next->error_log, s2a_master.conf->error_log) != 0
        && s2a_log_open(next->error_log) != S2A_OK)
    {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed; keeping the old log",
                next->error_log);
        snprintf(next->error_log, sizeof(next->error_log), "%s",
                 s2a_master.conf->error_log);
    }

    old_workers = s2a_master.conf->workers;
    free(s2a_master.conf);
    s2a_master.conf = next;
    if (s2a_runtime_publish(true) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "reload: runtime settings not re-read");
    }
    s2a_listeners_relisten(s2a_master.conf->backlog);
    S.generation++;
    s2a_stats_reloaded(&s2a_master.shm->stats);
    S.ready_announced = true;
    s2a_log(LOG_NOTICE, 0,
            "reloading: generation %u, %d workers "
            "(was %d)",
            S.generation, s2a_master.conf->workers, old_workers);
    for (i = 0; i < s2a_master.conf->workers; i++) {
        spawn_worker(i);
    }
    s2a_listeners_steer(s2a_master.conf->workers);
    /* Slots that no longer exist drain now; their sockets get no new
     * connections any more, and what is queued is accepted first. */
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->slot >= s2a_master.conf->workers) {
            s2a_master_drain(p, SHRINK_GRACE_MS, true);
        }
    }
    s2a_listeners_close_unused();
}

/* ---------------------------------------------------------------------
 * Signals and timers
 */

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    s2a_proc_t *p;

    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    switch (sig) {
    case SIGCHLD: reap_children(); break;
    case SIGHUP:
        if (!s2a_master.stopping) {
            s2a_log(LOG_NOTICE, 0, "SIGHUP: reloading configuration");
            reload();
        }
        break;
    case SIGTERM:
    case SIGINT:
        /* A second one while draining: the operator will not wait. */
        begin_stop(s2a_master.stopping == 1 ? 2 : 1);
        break;
    case SIGQUIT: begin_stop(2); break;
    case SIGUSR1:
        if (s2a_log_open(s2a_master.conf->error_log) != S2A_OK) {
            s2a_log(LOG_ERR, errno, "reopening \"%s\" failed",
                    s2a_master.conf->error_log);
        }
        s2a_log(LOG_NOTICE, 0, "SIGUSR1: log files reopened");
        for (p = s2a_master.procs; p != NULL; p = p->next) {
            json_t *msg = json_pack("{s:s}", "op", "reopen_logs");
            s2a_chan_send(p->chan, msg);
            json_decref(msg);
        }
        break;
    default: break;
    }
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = s2a_mono_ms();
    s2a_proc_t *p;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->kill_at_ms != 0 && now >= p->kill_at_ms) {
            s2a_log(LOG_WARNING, 0,
                    "worker %d (pid %d) did not stop in "
                    "time; killing it",
                    p->slot, (int) p->pid);
            kill(p->pid, SIGKILL);
            p->kill_at_ms = now + KILL_GRACE_MS;
        }
    }
    /* A missed SIGCHLD (coalesced signals) is caught here. */
    reap_children();
    s2a_ctlserver_tick();
    s2a_stats_set_queue(&s2a_master.shm->stats,
                        (int64_t) s2a_ctlserver_queued());
    s2a_sweep_tick();
    s2a_journal_resume_tick();
    s2a_orphans_tick();
    s2a_webhooks_tick();
}

static int
add_signal(int sig)
{
    struct event *ev = evsignal_new(s2a_master.base, sig, signal_cb, NULL);

    if (ev == NULL || evsignal_add(ev, NULL) != 0) {
        return S2A_ERROR;
    }
    S.signals[S.n_signals++] = ev;
    return S2A_OK;
}

/* Loads or creates the key that seals secrets at rest. */
static int
load_secret_key(const s2a_conf_t *conf)
{
    char keypath[PATH_MAX + 16];

    snprintf(keypath, sizeof(keypath), "%s/secret.key", conf->data_dir);
    if (s2a_key_file_load(keypath, s2a_master.key) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "cannot read or create \"%s\"", keypath);
        return S2A_ERROR;
    }
    return S2A_OK;
}

/* Kills and reaps every child left (start-up failed or the loop ended). */
static void
kill_children(void)
{
    s2a_proc_t *p, **pp, *dead;
    pid_t pid;
    int st;

    for (p = s2a_master.procs; p != NULL; p = p->next) {
        kill(p->pid, SIGKILL);
    }
    while (s2a_master.procs != NULL) {
        pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            break;
        }
        for (pp = &s2a_master.procs; *pp != NULL; pp = &(*pp)->next) {
            if ((*pp)->pid == pid) {
                dead = *pp;
                *pp = dead->next;
                s2a_chan_destroy(dead->chan);
                free(dead);
                break;
            }
        }
    }
}

int
s2a_master_run(s2a_conf_t *conf, const s2a_master_opts_t *opts)
{
    static const int sigs[] = { SIGCHLD, SIGHUP,  SIGTERM,
                                SIGINT,  SIGQUIT, SIGUSR1 };
    char err[512];
    struct timeval tick = { 1, 0 };
    size_t i;
    int rc = S2A_EXIT_FAILURE;

    s2a_master.conf = conf;
    s2a_master.opts = *opts;
    s2a_log_set_role("master");
    s2a_log_set_level(conf->log_level);
    s2a_daemon_ignore_signals();

    if (s2a_log_open(conf->error_log) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", conf->error_log);
        return S2A_EXIT_FAILURE;
    }
    if (opts->daemonize && s2a_daemon_detach(&S.status_fd) != S2A_OK) {
        return S2A_EXIT_FAILURE;
    }
    s2a_daemon_raise_fd_limit();
    /* The pid file first: the same configuration started twice is told
     * "already running"; another one on the same data_dir, the lock. */
    if (s2a_daemon_make_dirs(conf) != S2A_OK
        || s2a_daemon_pidfile_write(conf->pidfile) != S2A_OK
        || s2a_daemon_lock_data_dir(conf) != S2A_OK)
    {
        goto done;
    }
    s2a_master.base = event_base_new();
    if (s2a_master.base == NULL) {
        s2a_log(LOG_ERR, 0, "event_base_new() failed");
        goto done;
    }
    if (s2a_listeners_start(conf) != S2A_OK
        || s2a_daemon_drop_privileges(conf) != S2A_OK)
    {
        goto done;
    }
    s2a_master.db = s2a_db_open(conf->data_dir, err, sizeof(err));
    if (s2a_master.db == NULL) {
        s2a_log(LOG_ERR, 0, "database: %s", err);
        goto done;
    }
    /* The key first: seeding seals secrets and converts older ones. */
    if (load_secret_key(conf) != S2A_OK
        || s2a_db_seed(s2a_master.db, conf, s2a_master.key) != S2A_OK
        || s2a_journal_recover() != S2A_OK || s2a_orphans_recover() != S2A_OK
        || s2a_webhooks_init() != S2A_OK)
    {
        goto done;
    }
    s2a_master.shm = s2a_shm_create((uint32_t) conf->max_tokens,
                                    (uint32_t) conf->max_leases);
    if (s2a_master.shm == NULL) {
        s2a_log(LOG_ERR, errno, "mmap() of the shared table failed");
        goto done;
    }
    s2a_master.shm->master_pid = getpid();
    /* The live job table; workers inherit it (common/jobtab.h). */
    if (conf->job_slots > 0
        && (s2a_jobs = s2a_jobtab_create((uint32_t) conf->job_slots)) == NULL)
    {
        s2a_log(LOG_ERR, errno, "mmap() of the job table failed");
        goto done;
    }
    if (s2a_keytab_create((uint32_t) conf->max_api_keys,
                          (uint32_t) conf->max_leases)
        == NULL)
    {
        s2a_log(LOG_ERR, errno, "mmap() of the key table failed");
        goto done;
    }
    if (s2a_runtime_publish(true) != S2A_OK) {
        goto done;
    }
    s2a_runtime_warn_defaults();
    s2a_runtime_load_revoked();
    s2a_runtime_load_throttle();
    s2a_pool_load_all();
    if (s2a_keys_load() != S2A_OK) {
        goto done;
    }
    for (i = 0; i < S2A_NELEMS(sigs); i++) {
        if (add_signal(sigs[i]) != S2A_OK) {
            s2a_log(LOG_ERR, 0, "cannot install signal handlers");
            goto done;
        }
    }
    S.tick_ev = event_new(s2a_master.base, -1, EV_PERSIST, tick_cb, NULL);
    if (S.tick_ev == NULL || s2a_ctlserver_init() != S2A_OK) {
        goto done;
    }
    evtimer_add(S.tick_ev, &tick);
    S.generation = 1;
    for (i = 0; i < (size_t) conf->workers; i++) {
        if (spawn_worker((int) i) == NULL) {
            goto done;
        }
    }

    event_base_dispatch(s2a_master.base);

    rc = S.exit_status;
    s2a_log(LOG_NOTICE, 0, "stopped");
done:
    kill_children();
    s2a_ctlserver_cleanup();
    s2a_journal_resume_cleanup();
    s2a_webhooks_cleanup();
    if (s2a_master.db != NULL) {
        s2a_db_close(s2a_master.db);
    }
    for (i = 0; i < (size_t) S.n_signals; i++) {
        event_free(S.signals[i]);
    }
    for (i = 0; i < S2A_CONF_MAX_WORKERS; i++) {
        if (S.slots[i].respawn_ev != NULL) {
            event_free(S.slots[i].respawn_ev);
        }
    }
    if (S.tick_ev != NULL) {
        event_free(S.tick_ev);
    }
    s2a_master.stopping = 2;
    s2a_listeners_close_unused();
    if (s2a_master.base != NULL) {
        event_base_free(s2a_master.base);
    }
    s2a_shm_destroy(s2a_master.shm);
    s2a_jobtab_destroy(s2a_jobs);
    s2a_jobs = NULL;
    s2a_keytab_destroy(s2a_keytab);
    s2a_pool_cleanup();
    s2a_keys_cleanup();
    OPENSSL_cleanse(s2a_master.key, sizeof(s2a_master.key));
    s2a_daemon_pidfile_remove(s2a_master.conf->pidfile);
    free(s2a_master.conf);
    return rc;
}
