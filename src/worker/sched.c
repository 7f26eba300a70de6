/*
 * sched.c: the per-worker wait queue in front of shm token selection.
 *
 * Waiters are retried when the pool can have changed, not on a clock:
 * every lease release and token change bumps the pool generation in the
 * shm header; the queue's timer looks at it every POLL_MS without the
 * lock and rescans (under the lock) only when it moved, when this worker
 * released a lease or queued a job, when a waiter's deadline or a cooling
 * token's end comes, and every RESCAN_MS regardless (time alone can end
 * a cooldown or an expiry; the safety scan needs no bump to be right).
 * A job no token could ever serve fails at once (see docs/locking.md).
 */
#include "worker/sched.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_MAX 10000
#define POLL_MS   50   /* lock-free look at the pool generation */
#define RESCAN_MS 1000 /* scan under the lock even if nothing moved */

typedef struct waiter_s {
    uint64_t id;
    s2a_kind_t kind;
    uint64_t group; /* token group of the job's API key, 0: any */
    int64_t avoid[S2A_SCHED_AVOID_MAX];
    int navoid;
    int64_t deadline_ms;
    s2a_sched_done_pt done;
    void *arg;
    struct waiter_s *next;
    /* Sticky routing (sticky.c): the token of the character the prompt
     * mentions, 0: none; `pin_required` for a private character. */
    int64_t pin;
    bool pin_required;
    char pin_name[32];
} waiter_t;

static void grant(waiter_t *w, const s2a_lease_t *lease);

/* What a pinned waiter's token says (try_pinned). */
typedef enum {
    PIN_GRANTED = 0,
    PIN_WAIT,    /* busy, or back before the deadline: wait for it */
    PIN_HOPELESS /* it cannot take the job before the deadline */
} pin_t;

static struct {
    struct event *pump; /* runs the queue (timer and kick) */
    waiter_t *head, **tail;
    int n;
    uint64_t next_id;
    uint16_t *mine;       /* per token slot: leases this worker holds */
    uint32_t seen_gen;    /* pool generation when the last scan began */
    int64_t next_scan_ms; /* monotonic: scan by then even if nothing moved */
    bool kicked;          /* this worker queued a job or released: scan */
    uint64_t scans;       /* scans under the lock (for the tests) */
} S;

static void
pump_later(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (S.pump != NULL && S.head != NULL) {
        evtimer_add(S.pump, &tv);
    }
}

static void
unlink_waiter(waiter_t *w)
{
    waiter_t **pp;

    for (pp = &S.head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            if (S.tail == &w->next) {
                S.tail = pp;
            }
            S.n--;
            s2a_metrics_job_queued((int) w->kind, -1);
            return;
        }
    }
}

/* "3 tokens: 1 busy, 1 cooling until ..., 1 disabled" */
static void
explain(const s2a_skip_report_t *rep, s2a_kind_t kind, char *out, size_t outlen)
{
    size_t n;
    int i, first = 1;
    char until[32];

    if (rep->n_tokens == 0) {
        snprintf(out, outlen,
                 "no %s token is available: the pool has no "
                 "usable token",
                 kind == S2A_KIND_VIDEO ? "video" : "image");
        return;
    }
    n = (size_t) snprintf(out, outlen,
                          "no %s token is available: %d "
                          "token%s — ",
                          kind == S2A_KIND_VIDEO ? "video" : "image",
                          rep->n_tokens, rep->n_tokens == 1 ? "" : "s");
    for (i = 1; i < (int) S2A_NELEMS(rep->counts) && n < outlen; i++) {
        if (rep->counts[i] == 0) {
            continue;
        }
        n +=
            (size_t) snprintf(out + n, outlen - n, "%s%d %s", first ? "" : ", ",
                              rep->counts[i], s2a_skip_name((s2a_skip_t) i));
        first = 0;
        if (i == S2A_SKIP_COOLING && rep->earliest_cooldown > 0 && n < outlen) {
            time_t t = (time_t) rep->earliest_cooldown;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
            n += (size_t) snprintf(out + n, outlen - n, " (first free at %s)",
                                   until);
        }
    }
    if (first && n < outlen) {
        snprintf(out + n, outlen - n, "all already tried by this job");
    }
}

/* One attempt for `w`: S2A_OK (granted), S2A_DECLINED (none; `rep` says
 * why), S2A_ERROR (the table cannot be locked; `rep` says nothing). */
static int
try_waiter(waiter_t *w, s2a_lease_t *lease, s2a_skip_report_t *rep)
{
    uint32_t rnd;
    int rc;

    memset(rep, 0, sizeof(*rep));
    s2a_worker_refresh_settings();
    s2a_random_bytes(&rnd, sizeof(rnd));
    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return S2A_ERROR;
    }
    rc = s2a_shm_select_group_locked(s2a_worker.shm, w->kind,
                                     (s2a_policy_t) s2a_worker.settings.policy,
                                     s2a_now_ms(), getpid(), rnd, w->group,
                                     w->avoid, w->navoid, S.mine, lease, rep);
    s2a_shm_unlock(s2a_worker.shm);
    if (rc == S2A_OK && S.mine != NULL) {
        S.mine[lease->token_slot]++;
    }
    if (rc == S2A_AGAIN) {
        /* The lease table is full: an eligible token exists. */
        rep->counts[S2A_SKIP_NONE] += rep->counts[S2A_SKIP_NONE] == 0;
    }
    return rc == S2A_OK ? S2A_OK : S2A_DECLINED;
}

/*
 * One attempt for pinned `w` on its own token: a lease on it when it is
 * eligible for the kind, PIN_WAIT when it is only busy (or cooling until
 * before the deadline), else PIN_HOPELESS with the reason in `why`.
 */
static pin_t
try_pinned(waiter_t *w, s2a_lease_t *lease, char *why, size_t whylen,
           int64_t now_mono)
{
    s2a_shm_t *shm = s2a_worker.shm;
    int64_t now_ms = s2a_now_ms(), back;
    s2a_shm_token_t *t;
    s2a_skip_t skip = S2A_SKIP_NONE;
    const char *gone = NULL;
    pin_t rc = PIN_HOPELESS;
    int slot, a;

    for (a = 0; a < w->navoid && w->avoid[a] != w->pin; a++) {
    }
    if (s2a_shm_lock(shm) != S2A_OK) {
        return PIN_WAIT;
    }
    slot = s2a_shm_token_find_locked(shm, w->pin);
    if (slot < 0) {
        gone = "no longer in the pool";
    } else if (a < w->navoid) {
        gone = "already failed this job";
    } else if (w->group != 0 && s2a_shm_tokens(shm)[slot].group != w->group) {
        gone = "outside the API key's token group";
    } else {
        t = &s2a_shm_tokens(shm)[slot];
        skip = s2a_shm_token_skip(t, w->kind, now_ms / 1000);
        back = (t->cooldown_until - now_ms / 1000) * 1000;
        if (skip == S2A_SKIP_NONE) {
            rc = s2a_shm_lease_acquire_locked(shm, slot, w->kind, now_ms,
                                              getpid(), lease)
                    == S2A_OK
                ? PIN_GRANTED
                : PIN_WAIT; /* the lease table is full */
        } else if (skip == S2A_SKIP_BUSY
                   || (skip == S2A_SKIP_COOLING
                       && now_mono + back < w->deadline_ms))
        {
            rc = PIN_WAIT;
            if (skip == S2A_SKIP_COOLING && now_mono + back < S.next_scan_ms) {
                S.next_scan_ms = now_mono + back;
            }
        }
    }
    s2a_shm_unlock(shm);
    if (rc == PIN_GRANTED && S.mine != NULL) {
        S.mine[lease->token_slot]++;
    }
    if (rc == PIN_HOPELESS) {
        snprintf(why, whylen,
                 "the character @%s is %s to token %lld, which cannot take "
                 "it: %s",
                 w->pin_name, w->pin_required ? "private" : "bound",
                 (long long) w->pin, gone != NULL ? gone : s2a_skip_name(skip));
    }
    return rc;
}

/* Fails `w` at once with `why`. */
static void
refuse_text(waiter_t *w, const char *why)
{
    unlink_waiter(w);
    w->done(NULL, why, w->arg);
    free(w);
}

/*
 * A pinned waiter's turn: true when it was granted or refused (gone
 * from the queue), false when it goes on as an unpinned one (a public
 * character's token cannot serve it) or waits (`*waiting`).
 */
static bool
pinned_turn(waiter_t *w, int64_t now, bool *waiting)
{
    s2a_lease_t lease;
    char why[256];
    pin_t rc = try_pinned(w, &lease, why, sizeof(why), now);

    *waiting = false;
    if (rc == PIN_GRANTED) {
        grant(w, &lease);
        return true;
    }
    if (rc == PIN_WAIT && now < w->deadline_ms) {
        *waiting = true;
        return false;
    }
    if (rc == PIN_WAIT) {
        snprintf(why, sizeof(why),
                 "the character @%s is %s to token %lld, which cannot take "
                 "it: busy for the whole queue timeout",
                 w->pin_name, w->pin_required ? "private" : "bound",
                 (long long) w->pin);
    }
    if (w->pin_required) {
        refuse_text(w, why);
        return true;
    }
    /* A public character: any token may run it. */
    s2a_log(LOG_DEBUG, 0, "sticky routing: %s; any token", why);
    w->pin = 0;
    return false;
}

static void
grant(waiter_t *w, const s2a_lease_t *lease)
{
    unlink_waiter(w);
    w->done(lease, NULL, w->arg);
    free(w);
}

/* Unix seconds when monotonic time `mono_ms` comes (rounded up). */
static int64_t
wall_at(int64_t mono_ms, int64_t now_mono)
{
    return s2a_now() + (mono_ms - now_mono + 999) / 1000;
}

/* Fails `w` at once with the reasons of `rep`. */
static void
refuse(waiter_t *w, const s2a_skip_report_t *rep)
{
    char why[512];

    explain(rep, w->kind, why, sizeof(why));
    unlink_waiter(w);
    w->done(NULL, why, w->arg);
    free(w);
}

/* A cooling token of `rep` comes back before the next planned scan:
 * scan then (nothing bumps the generation when a cooldown runs out). */
static void
plan_cooldown(const s2a_skip_report_t *rep, int64_t now_mono)
{
    int64_t at;

    if (rep->counts[S2A_SKIP_COOLING] == 0 || rep->earliest_cooldown == 0) {
        return;
    }
    at = now_mono + (rep->earliest_cooldown - s2a_now()) * 1000;
    if (at < S.next_scan_ms) {
        S.next_scan_ms = at < now_mono ? now_mono : at;
    }
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
    waiter_t *w, *next;
    s2a_lease_t lease;
    s2a_skip_report_t rep, krep[S2A_KIND_COUNT];
    bool blocked[S2A_KIND_COUNT] = { false, false }, tried, known, waiting;
    bool kknown[S2A_KIND_COUNT] = { false, false };
    int rc;
    int64_t now = s2a_mono_ms(), first_deadline = INT64_MAX;
    uint32_t gen = s2a_shm_pool_gen(s2a_worker.shm);

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    /* next_scan_ms is no later than the first deadline of the last scan,
     * and a newly queued job kicks: no need to walk the queue here. */
    if (!S.kicked && gen == S.seen_gen && now < S.next_scan_ms) {
        pump_later(POLL_MS);
        return;
    }
    /* Read before scanning: a change made during the scan shows next time. */
    S.kicked = false;
    S.seen_gen = gen;
    S.next_scan_ms = now + RESCAN_MS;
    S.scans++;
    for (w = S.head; w != NULL; w = next) {
        next = w->next;
        tried = false;
        known = true;
        if (w->pin != 0) {
            if (pinned_turn(w, now, &waiting)) {
                continue;
            }
            if (waiting) {
                if (w->deadline_ms < first_deadline) {
                    first_deadline = w->deadline_ms;
                }
                continue;
            }
        }
        /* FIFO per kind: once one job of a kind found nothing, later ones
         * of that kind wait their turn (unless they avoid tokens or are
         * bound to a token group, which makes their answer different). */
        if (!blocked[w->kind] || w->navoid > 0 || w->group != 0) {
            tried = true;
            rc = try_waiter(w, &lease, &rep);
            if (rc == S2A_OK) {
                grant(w, &lease);
                continue;
            }
            known = rc == S2A_DECLINED;
            plan_cooldown(&rep, now);
            if (w->navoid == 0 && w->group == 0) {
                blocked[w->kind] = true;
                krep[w->kind] = rep;
                kknown[w->kind] = known;
            }
        } else {
            /* Same kind, nothing avoided: the first one's answer holds. */
            rep = krep[w->kind];
            known = kknown[w->kind];
        }
        /* No token could ever serve it: waiting out the queue timeout
         * would only delay the same refusal. */
        if (known && s2a_skip_hopeless(&rep, wall_at(w->deadline_ms, now))) {
            refuse(w, &rep);
            continue;
        }
        if (now < w->deadline_ms) {
            if (w->deadline_ms < first_deadline) {
                first_deadline = w->deadline_ms;
            }
            continue;
        }
        /* Out of time: one last look, which also explains the refusal. */
        if (!tried && try_waiter(w, &lease, &rep) == S2A_OK) {
            grant(w, &lease);
            continue;
        }
        refuse(w, &rep);
    }
    if (first_deadline < S.next_scan_ms) {
        S.next_scan_ms = first_deadline;
    }
    pump_later(POLL_MS);
}

/* Runs the queue from the loop as soon as possible, with a scan. */
static void
kick(void)
{
    S.kicked = true;
    if (S.head != NULL) {
        evtimer_del(S.pump);
        pump_later(0);
    }
}

int
s2a_sched_init(struct event_base *base)
{
    memset(&S, 0, sizeof(S));
    S.tail = &S.head;
    S.next_id = 1;
    S.pump = evtimer_new(base, pump_cb, NULL);
    S.mine = calloc(s2a_worker.shm->max_tokens, sizeof(S.mine[0]));
    S.seen_gen = s2a_shm_pool_gen(s2a_worker.shm);
    return S.pump != NULL && S.mine != NULL ? S2A_OK : S2A_ERROR;
}

void
s2a_sched_cleanup(void)
{
    waiter_t *w;

    while ((w = S.head) != NULL) {
        S.head = w->next;
        s2a_metrics_job_queued((int) w->kind, -1);
        free(w);
    }
    S.n = 0;
    if (S.pump != NULL) {
        event_free(S.pump);
        S.pump = NULL;
    }
    free(S.mine);
    S.mine = NULL;
}

uint64_t
s2a_sched_acquire(s2a_kind_t kind, const int64_t *avoid, int navoid,
                  s2a_sched_done_pt done, void *arg)
{
    return s2a_sched_acquire_group(kind, 0, avoid, navoid, done, arg);
}

uint64_t
s2a_sched_acquire_group(s2a_kind_t kind, uint64_t group, const int64_t *avoid,
                        int navoid, s2a_sched_done_pt done, void *arg)
{
    return s2a_sched_acquire_pinned(kind, group, avoid, navoid, 0, false, NULL,
                                    done, arg);
}

uint64_t
s2a_sched_acquire_pinned(s2a_kind_t kind, uint64_t group, const int64_t *avoid,
                         int navoid, int64_t pin, bool required,
                         const char *name, s2a_sched_done_pt done, void *arg)
{
    waiter_t *w;

    if (S.n >= QUEUE_MAX || S.pump == NULL) {
        return 0;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return 0;
    }
    w->id = S.next_id++;
    w->kind = kind;
    w->group = group;
    if (navoid > S2A_SCHED_AVOID_MAX) {
        navoid = S2A_SCHED_AVOID_MAX;
    }
    if (navoid > 0) {
        memcpy(w->avoid, avoid, (size_t) navoid * sizeof(*avoid));
    }
    w->navoid = navoid;
    s2a_worker_refresh_settings();
    w->deadline_ms =
        s2a_mono_ms() + (int64_t) s2a_worker.settings.queue_timeout * 1000;
    w->done = done;
    w->arg = arg;
    w->pin = pin;
    w->pin_required = pin != 0 && required;
    snprintf(w->pin_name, sizeof(w->pin_name), "%s", name != NULL ? name : "");
    *S.tail = w;
    S.tail = &w->next;
    S.n++;
    s2a_metrics_job_queued((int) kind, 1);
    /* Even a free token is handed out from the loop, never re-entrantly. */
    kick();
    return w->id;
}

void
s2a_sched_cancel(uint64_t id)
{
    waiter_t *w;

    for (w = S.head; w != NULL; w = w->next) {
        if (w->id == id) {
            unlink_waiter(w);
            free(w);
            return;
        }
    }
}

void
s2a_sched_release(s2a_lease_t *lease)
{
    if (lease->row < 0) {
        return;
    }
    if (s2a_shm_lock(s2a_worker.shm) == S2A_OK) {
        if (s2a_shm_lease_release_locked(s2a_worker.shm, lease) == S2A_OK
            && S.mine != NULL && lease->token_slot >= 0
            && S.mine[lease->token_slot] > 0)
        {
            S.mine[lease->token_slot]--;
        }
        s2a_shm_unlock(s2a_worker.shm);
    }
    /* Our own release wakes our own queue at once; other workers see the
     * generation move within POLL_MS. */
    kick();
}

int
s2a_sched_waiting(void)
{
    return S.n;
}

uint64_t
s2a_sched_scans(void)
{
    return S.scans;
}

int
s2a_sched_candidates(s2a_kind_t kind, const int64_t *avoid, int navoid)
{
    return s2a_sched_candidates_group(kind, 0, avoid, navoid);
}

int
s2a_sched_candidates_group(s2a_kind_t kind, uint64_t group,
                           const int64_t *avoid, int navoid)
{
    int n;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return 0;
    }
    n = s2a_shm_candidates_group_locked(s2a_worker.shm, kind, s2a_now(), group,
                                        avoid, navoid);
    s2a_shm_unlock(s2a_worker.shm);
    return n;
}
