/*
 * shm.c: shared-memory region, robust lock, token table, leases and the
 * token selection primitive. See shm.h for the layout and docs/locking.md
 * for the rules.
 */
#include "common/shm.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * The holder's side of the lock-hold statistics. Process-local: only the
 * process that took the lock releases it, and each process has one
 * thread touching the table.
 */
static struct {
    uint64_t since_ns;
    const char *site;
    /* Which row of hold_sites each site string went to (pointers are the
     * same in every process: workers are forked, not exec'ed). */
    const char *cached[S2A_SHM_HOLD_SITES];
    int ncached;
    int repaired; /* >= 0: a repair to report after the unlock */
} held = { .repaired = -1 };

/* The statistics row of `site`, claimed on first use. Lock held. */
static s2a_shm_hold_t *
hold_site_locked(s2a_shm_t *shm, const char *site)
{
    s2a_shm_hold_t *h;
    int i;

    for (i = 0; i < held.ncached; i++) {
        if (held.cached[i] == site) {
            break;
        }
    }
    if (i < held.ncached
        && strncmp(shm->hold_sites[i].site, site,
                   sizeof(shm->hold_sites[i].site) - 1)
            == 0)
    {
        return &shm->hold_sites[i];
    }
    for (i = 0; i < S2A_SHM_HOLD_SITES - 1; i++) {
        h = &shm->hold_sites[i];
        if (h->site[0] == '\0') {
            snprintf(h->site, sizeof(h->site), "%s", site);
        }
        if (strncmp(h->site, site, sizeof(h->site) - 1) == 0) {
            break;
        }
    }
    h = &shm->hold_sites[i];
    if (i == S2A_SHM_HOLD_SITES - 1) {
        snprintf(h->site, sizeof(h->site), "%s", "(other)");
    }
    /* Cache by row index: entry i of the cache is row i. */
    while (held.ncached <= i) {
        held.cached[held.ncached++] = NULL;
    }
    held.cached[i] = site;
    return h;
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static size_t
align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

s2a_shm_t *
s2a_shm_create(uint32_t max_tokens, uint32_t max_leases)
{
    pthread_mutexattr_t attr;
    s2a_shm_t *shm;
    size_t off, size;
    int rc;

    off = align_up(sizeof(s2a_shm_t), 4096);
    size = off + align_up((size_t) max_tokens * sizeof(s2a_shm_token_t), 4096);
    size += align_up((size_t) max_tokens * sizeof(s2a_shm_secret_t), 4096);
    size += align_up((size_t) max_leases * sizeof(s2a_shm_lease_t), 4096);

    shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
    if (shm == MAP_FAILED) {
        return NULL;
    }
    /* Anonymous pages are zero: only the header is written here, so an
     * idle daemon keeps untouched table pages out of memory. */
    shm->magic = S2A_SHM_MAGIC;
    shm->version = S2A_SHM_VERSION;
    shm->max_tokens = max_tokens;
    shm->max_leases = max_leases;
    shm->size = size;
    shm->tokens_off = off;
    off += align_up((size_t) max_tokens * sizeof(s2a_shm_token_t), 4096);
    shm->secrets_off = off;
    off += align_up((size_t) max_tokens * sizeof(s2a_shm_secret_t), 4096);
    shm->leases_off = off;
    shm->settings.log_level = -1;
    s2a_stats_init(&shm->stats);

    /* Lease rows need no initialisation: a row whose owner_pid is 0 is
     * free, and fresh anonymous pages are zero. */
    if ((rc = pthread_mutexattr_init(&attr)) != 0
        || (rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED))
            != 0
        || (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) != 0
        || (rc = pthread_mutex_init(&shm->lock, &attr)) != 0)
    {
        munmap(shm, size);
        errno = rc;
        return NULL;
    }
    pthread_mutexattr_destroy(&attr);
    return shm;
}

void
s2a_shm_destroy(s2a_shm_t *shm)
{
    static s2a_shm_hold_t sites[S2A_SHM_HOLD_SITES];
    uint64_t count, total, max, waits[3] = { 0, 0, 0 };
    int32_t pid;
    char site[sizeof(shm->hold_max_site)];
    int i;

    if (shm == NULL) {
        return;
    }
    /* The master's last word on the lock, read by bench/gen-load.js. */
    if (shm->master_pid == (int64_t) getpid()
        && s2a_shm_hold_stats(shm, &count, &total, &max, &pid, site,
                              sizeof(site))
            == S2A_OK)
    {
        if (s2a_shm_lock(shm) == S2A_OK) {
            memcpy(sites, shm->hold_sites, sizeof(sites));
            waits[0] = shm->wait_count;
            waits[1] = shm->wait_total_ns;
            waits[2] = shm->wait_max_ns;
            s2a_shm_unlock(shm);
        }
        for (i = 0; i < S2A_SHM_HOLD_SITES; i++) {
            if (sites[i].count == 0) {
                continue;
            }
            s2a_log(LOG_NOTICE, 0,
                    "shm lock site %s: %llu holds, %llu us in all, "
                    "longest %llu us (pid %d)",
                    sites[i].site, (unsigned long long) sites[i].count,
                    (unsigned long long) (sites[i].total_ns / 1000),
                    (unsigned long long) (sites[i].max_ns / 1000),
                    (int) sites[i].max_pid);
        }
        s2a_log(LOG_NOTICE, 0,
                "shm lock: %llu holds, %llu us in all, longest %llu us "
                "in %s (pid %d); %llu waits, %llu us waiting, longest "
                "%llu us",
                (unsigned long long) count, (unsigned long long) (total / 1000),
                (unsigned long long) (max / 1000), site[0] ? site : "-",
                (int) pid, (unsigned long long) waits[0],
                (unsigned long long) (waits[1] / 1000),
                (unsigned long long) (waits[2] / 1000));
    }
    munmap(shm, shm->size);
}

s2a_shm_token_t *
s2a_shm_tokens(s2a_shm_t *shm)
{
    return (s2a_shm_token_t *) (void *) ((char *) shm + shm->tokens_off);
}

s2a_shm_secret_t *
s2a_shm_secrets(s2a_shm_t *shm)
{
    return (s2a_shm_secret_t *) (void *) ((char *) shm + shm->secrets_off);
}

s2a_shm_lease_t *
s2a_shm_leases(s2a_shm_t *shm)
{
    return (s2a_shm_lease_t *) (void *) ((char *) shm + shm->leases_off);
}

static int
after_lock(s2a_shm_t *shm, int rc, const char *site)
{
    int dropped;

    if (rc == 0 || rc == EOWNERDEAD) {
        held.since_ns = mono_ns();
        held.site = site;
    }
    if (rc == 0) {
        return S2A_OK;
    }
    if (rc == EOWNERDEAD) {
        /* The owner died inside a critical section: the table may be half
         * updated. Rebuild what can be derived, then mark it usable. */
        dropped = s2a_shm_repair_locked(shm);
        shm->repairs++;
        pthread_mutex_consistent(&shm->lock);
        /* Logged by s2a_shm_unlock, once the lock is released. */
        held.repaired = dropped;
        return S2A_OK;
    }
    if (rc == EBUSY) {
        return S2A_AGAIN;
    }
    s2a_log(LOG_CRIT, rc, "pthread_mutex_lock(shm) failed");
    return S2A_ERROR;
}

/*
 * A trylock first: the uncontended path costs what a lock costs, and
 * only an acquisition that finds the lock taken reads the clock around
 * its wait. The wait is added once the lock is held (plain writes, as
 * the hold statistics); a repair after EOWNERDEAD counts as part of the
 * hold, not of the wait.
 */
int
s2a_shm_lock_at(s2a_shm_t *shm, const char *site)
{
    uint64_t t0, ns;
    int rc;

    rc = pthread_mutex_trylock(&shm->lock);
    if (rc != EBUSY) {
        return after_lock(shm, rc, site);
    }
    t0 = mono_ns();
    rc = pthread_mutex_lock(&shm->lock);
    ns = mono_ns() - t0;
    if (rc == 0 || rc == EOWNERDEAD) {
        shm->wait_count++;
        shm->wait_total_ns += ns;
        if (ns > shm->wait_max_ns) {
            shm->wait_max_ns = ns;
        }
    }
    return after_lock(shm, rc, site);
}

int
s2a_shm_trylock_at(s2a_shm_t *shm, const char *site)
{
    return after_lock(shm, pthread_mutex_trylock(&shm->lock), site);
}

void
s2a_shm_unlock(s2a_shm_t *shm)
{
    uint64_t ns = mono_ns() - held.since_ns;
    s2a_shm_hold_t *h =
        hold_site_locked(shm, held.site != NULL ? held.site : "?");

    /* Still under the lock: plain writes are safe. */
    h->count++;
    h->total_ns += ns;
    if (ns > h->max_ns) {
        h->max_ns = ns;
        h->max_pid = (int32_t) getpid();
    }
    shm->hold_count++;
    shm->hold_total_ns += ns;
    if (ns > shm->hold_max_ns) {
        shm->hold_max_ns = ns;
        shm->hold_max_pid = (int32_t) getpid();
        snprintf(shm->hold_max_site, sizeof(shm->hold_max_site), "%s",
                 held.site != NULL ? held.site : "?");
    }
    pthread_mutex_unlock(&shm->lock);
    if (held.repaired >= 0) {
        s2a_log(LOG_WARNING, 0,
                "shm lock owner died holding the lock; table repaired "
                "(%d stale leases dropped)",
                held.repaired);
        held.repaired = -1;
    }
}

int
s2a_shm_hold_stats(s2a_shm_t *shm, uint64_t *count, uint64_t *total_ns,
                   uint64_t *max_ns, int32_t *max_pid, char *site,
                   size_t sitelen)
{
    if (s2a_shm_lock(shm) != S2A_OK) {
        return S2A_ERROR;
    }
    if (count != NULL) {
        *count = shm->hold_count;
    }
    if (total_ns != NULL) {
        *total_ns = shm->hold_total_ns;
    }
    if (max_ns != NULL) {
        *max_ns = shm->hold_max_ns;
    }
    if (max_pid != NULL) {
        *max_pid = shm->hold_max_pid;
    }
    if (site != NULL && sitelen > 0) {
        snprintf(site, sitelen, "%s", shm->hold_max_site);
    }
    s2a_shm_unlock(shm);
    return S2A_OK;
}

uint32_t
s2a_shm_pool_gen(const s2a_shm_t *shm)
{
    return atomic_load_explicit(&shm->pool_gen, memory_order_acquire);
}

void
s2a_shm_pool_bump_locked(s2a_shm_t *shm)
{
    atomic_fetch_add_explicit(&shm->pool_gen, 1, memory_order_release);
}

static bool
pid_alive(int32_t pid)
{
    if (pid <= 0) {
        return false;
    }
    return kill(pid, 0) == 0 || errno == EPERM;
}

int
s2a_shm_repair_locked(s2a_shm_t *shm)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    s2a_shm_lease_t *leases = s2a_shm_leases(shm);
    uint32_t i, high = 0, thigh;
    int dropped = 0;

    if (shm->token_high > shm->max_tokens) {
        shm->token_high = shm->max_tokens;
    }
    if (shm->lease_high > shm->max_leases) {
        shm->lease_high = shm->max_leases;
    }
    for (i = 0; i < shm->token_high; i++) {
        tokens[i].inflight[S2A_KIND_IMAGE] = 0;
        tokens[i].inflight[S2A_KIND_VIDEO] = 0;
    }
    for (i = 0; i < shm->lease_high; i++) {
        s2a_shm_lease_t *l = &leases[i];

        if (l->owner_pid == 0) {
            continue;
        }
        if (!pid_alive(l->owner_pid) || l->token_slot < 0
            || (uint32_t) l->token_slot >= shm->token_high
            || l->kind >= S2A_KIND_COUNT)
        {
            l->owner_pid = 0;
            l->serial++;
            dropped++;
            continue;
        }
        tokens[l->token_slot].inflight[l->kind]++;
        high = i + 1;
    }
    /* A removed token (negative id) held its slot only for its leases;
     * with the dead owners' leases gone it may be free now. */
    thigh = 0;
    for (i = 0; i < shm->token_high; i++) {
        if (tokens[i].id < 0
            && tokens[i].inflight[S2A_KIND_IMAGE]
                    + tokens[i].inflight[S2A_KIND_VIDEO]
                == 0)
        {
            tokens[i].id = 0;
            tokens[i].state = S2A_TOKEN_FREE;
        }
        if (tokens[i].id != 0) {
            thigh = i + 1;
        }
    }
    shm->lease_high = high;
    shm->token_high = thigh;
    if (shm->lease_hint >= shm->max_leases) {
        shm->lease_hint = 0;
    }
    if (shm->rr_cursor >= shm->max_tokens) {
        shm->rr_cursor = 0;
    }
    s2a_shm_pool_bump_locked(shm);
    return dropped;
}

void
s2a_shm_settings_write(s2a_shm_t *shm, const s2a_shm_settings_t *s)
{
    atomic_thread_fence(memory_order_seq_cst);
    shm->settings_seq++; /* odd: write in progress */
    atomic_thread_fence(memory_order_seq_cst);
    memcpy(&shm->settings, s, sizeof(*s));
    atomic_thread_fence(memory_order_seq_cst);
    shm->settings_seq++; /* even: stable */
    atomic_thread_fence(memory_order_seq_cst);
}

uint32_t
s2a_shm_settings_read(s2a_shm_t *shm, s2a_shm_settings_t *out)
{
    uint32_t before, after;

    for (;;) {
        before = shm->settings_seq;
        atomic_thread_fence(memory_order_seq_cst);
        if (before & 1) {
            continue;
        }
        memcpy(out, &shm->settings, sizeof(*out));
        atomic_thread_fence(memory_order_seq_cst);
        after = shm->settings_seq;
        if (before == after) {
            return after;
        }
    }
}

uint32_t
s2a_shm_settings_seq(const s2a_shm_t *shm)
{
    return shm->settings_seq;
}

int
s2a_shm_token_find_locked(s2a_shm_t *shm, int64_t id)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    uint32_t i;

    for (i = 0; i < shm->token_high; i++) {
        if (tokens[i].id == id) {
            return (int) i;
        }
    }
    return -1;
}

void
s2a_shm_token_set_proxy_locked(s2a_shm_t *shm, int slot, const char *proxy)
{
    s2a_shm_secret_t *secret = &s2a_shm_secrets(shm)[slot];

    snprintf(secret->proxy, sizeof(secret->proxy), "%s",
             proxy != NULL ? proxy : "");
}

int
s2a_shm_token_put_locked(s2a_shm_t *shm, const s2a_shm_token_t *t,
                         const char *access_token)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    s2a_shm_secret_t *secret;
    int32_t inflight[S2A_KIND_COUNT] = { 0, 0 };
    int64_t last_used = 0;
    uint32_t version = 0;
    int slot;
    uint32_t i;

    slot = s2a_shm_token_find_locked(shm, t->id);
    if (slot >= 0) {
        memcpy(inflight, tokens[slot].inflight, sizeof(inflight));
        version = tokens[slot].version;
        last_used = tokens[slot].last_used_ms;
    } else {
        for (i = 0; i < shm->max_tokens; i++) {
            if (i >= shm->token_high || tokens[i].id == 0) {
                break;
            }
        }
        if (i == shm->max_tokens) {
            return -1;
        }
        slot = (int) i;
    }
    tokens[slot] = *t;
    memcpy(tokens[slot].inflight, inflight, sizeof(inflight));
    if (tokens[slot].last_used_ms == 0) {
        tokens[slot].last_used_ms = last_used;
    }
    tokens[slot].version = version + 1;
    if ((uint32_t) slot >= shm->token_high) {
        shm->token_high = (uint32_t) slot + 1;
    }
    secret = &s2a_shm_secrets(shm)[slot];
    if (access_token != NULL) {
        size_t len = strlen(access_token);
        if (len >= S2A_SHM_AT_MAX) {
            len = S2A_SHM_AT_MAX - 1;
        }
        memcpy(secret->access_token, access_token, len);
        secret->access_token[len] = '\0';
        secret->len = (uint32_t) len;
    }
    secret->version = tokens[slot].version;
    s2a_shm_pool_bump_locked(shm);
    return slot;
}

int
s2a_shm_token_remove_locked(s2a_shm_t *shm, int64_t id)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    s2a_shm_secret_t *secret;
    int slot = s2a_shm_token_find_locked(shm, id);

    if (slot < 0) {
        return S2A_DECLINED;
    }
    /* Leases on the slot keep their counts until released; a new token
     * put into the slot starts from zero only once they are gone, so the
     * slot stays reserved while in-flight is non-zero. */
    tokens[slot].state = S2A_TOKEN_FREE;
    tokens[slot].id =
        tokens[slot].inflight[0] + tokens[slot].inflight[1] > 0 ? -id : 0;
    tokens[slot].version++;
    secret = &s2a_shm_secrets(shm)[slot];
    explicit_bzero(secret->access_token, secret->len);
    secret->len = 0;
    s2a_shm_pool_bump_locked(shm);
    return S2A_OK;
}

s2a_skip_t
s2a_shm_token_skip(const s2a_shm_token_t *t, s2a_kind_t kind, int64_t now)
{
    uint8_t need =
        kind == S2A_KIND_IMAGE ? S2A_TOKEN_F_IMAGE : S2A_TOKEN_F_VIDEO;

    switch ((s2a_token_state_t) t->state) {
    case S2A_TOKEN_ACTIVE: break;
    case S2A_TOKEN_COOLING:
        if (t->cooldown_until > now) {
            return S2A_SKIP_COOLING;
        }
        break; /* cooldown over: usable again */
    case S2A_TOKEN_DISABLED:
    case S2A_TOKEN_FREE: return S2A_SKIP_DISABLED;
    case S2A_TOKEN_INVALID: return S2A_SKIP_INVALID;
    case S2A_TOKEN_EXPIRED: return S2A_SKIP_EXPIRED;
    }
    if (t->expires_at != 0 && t->expires_at <= now) {
        return S2A_SKIP_EXPIRED;
    }
    if (!(t->flags & need)) {
        return S2A_SKIP_KIND_DISABLED;
    }
    if (kind == S2A_KIND_VIDEO) {
        if (!(t->flags & S2A_TOKEN_F_SORA2)) {
            return S2A_SKIP_NO_SORA2;
        }
        if (t->quota_left == 0) {
            return S2A_SKIP_NO_QUOTA;
        }
    }
    if (t->limit[kind] > 0 && t->inflight[kind] >= t->limit[kind]) {
        return S2A_SKIP_BUSY;
    }
    return S2A_SKIP_NONE;
}

const char *
s2a_skip_name(s2a_skip_t why)
{
    static const char *const names[] = { "eligible", "disabled",
                                         "invalid",  "expired",
                                         "cooling",  "generation kind disabled",
                                         "no Sora2", "no quota left",
                                         "busy" };

    if ((size_t) why >= S2A_NELEMS(names)) {
        return "unknown";
    }
    return names[why];
}

bool
s2a_skip_hopeless(const s2a_skip_report_t *report, int64_t deadline)
{
    if (report->counts[S2A_SKIP_NONE] > 0 || report->counts[S2A_SKIP_BUSY] > 0)
    {
        return false;
    }
    return report->counts[S2A_SKIP_COOLING] == 0
        || report->earliest_cooldown >= deadline;
}

static int
lease_row_alloc(s2a_shm_t *shm)
{
    s2a_shm_lease_t *leases = s2a_shm_leases(shm);
    uint32_t i, n = shm->max_leases, row;

    for (i = 0; i < n; i++) {
        row = (shm->lease_hint + i) % n;
        if (row >= shm->lease_high || leases[row].owner_pid == 0) {
            shm->lease_hint = (row + 1) % n;
            if (row >= shm->lease_high) {
                shm->lease_high = row + 1;
            }
            return (int) row;
        }
    }
    return -1;
}

int
s2a_shm_lease_acquire_locked(s2a_shm_t *shm, int slot, s2a_kind_t kind,
                             int64_t now_ms, pid_t owner_pid,
                             s2a_lease_t *lease)
{
    s2a_shm_token_t *t = &s2a_shm_tokens(shm)[slot];
    s2a_shm_lease_t *l;
    int row = lease_row_alloc(shm);

    if (row < 0) {
        return S2A_AGAIN;
    }
    l = &s2a_shm_leases(shm)[row];
    l->token_slot = slot;
    l->kind = (uint8_t) kind;
    l->owner_pid = (int32_t) owner_pid;
    l->acquired_ms = now_ms;
    l->serial = ++shm->lease_serial;
    t->inflight[kind]++;
    t->last_used_ms = now_ms;
    lease->row = row;
    lease->serial = l->serial;
    lease->token_slot = slot;
    lease->token_id = t->id;
    lease->kind = kind;
    return S2A_OK;
}

int
s2a_shm_candidates_locked(s2a_shm_t *shm, s2a_kind_t kind, int64_t now,
                          const int64_t *avoid, int navoid)
{
    return s2a_shm_candidates_group_locked(shm, kind, now, 0, avoid, navoid);
}

int
s2a_shm_candidates_group_locked(s2a_shm_t *shm, s2a_kind_t kind, int64_t now,
                                uint64_t group, const int64_t *avoid,
                                int navoid)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    s2a_skip_t why;
    uint32_t i;
    int a, n = 0;

    for (i = 0; i < shm->token_high; i++) {
        if (tokens[i].id <= 0 || (group != 0 && tokens[i].group != group)) {
            continue;
        }
        for (a = 0; a < navoid && avoid[a] != tokens[i].id; a++) {
        }
        why = s2a_shm_token_skip(&tokens[i], kind, now);
        if (a == navoid && (why == S2A_SKIP_NONE || why == S2A_SKIP_BUSY)) {
            n++;
        }
    }
    return n;
}

int
s2a_shm_select_avoid_locked(s2a_shm_t *shm, s2a_kind_t kind,
                            s2a_policy_t policy, int64_t now_ms,
                            pid_t owner_pid, uint32_t rnd, const int64_t *avoid,
                            int navoid, const uint16_t *mine,
                            s2a_lease_t *lease, s2a_skip_report_t *report)
{
    return s2a_shm_select_group_locked(shm, kind, policy, now_ms, owner_pid,
                                       rnd, 0, avoid, navoid, mine, lease,
                                       report);
}

int
s2a_shm_select_group_locked(s2a_shm_t *shm, s2a_kind_t kind,
                            s2a_policy_t policy, int64_t now_ms,
                            pid_t owner_pid, uint32_t rnd, uint64_t group,
                            const int64_t *avoid, int navoid,
                            const uint16_t *mine, s2a_lease_t *lease,
                            s2a_skip_report_t *report)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    uint32_t i, n = shm->token_high, start, idx;
    int64_t now = now_ms / 1000;
    int best = -1;
    s2a_skip_t why;
    int a;

    if (report != NULL) {
        memset(report, 0, sizeof(*report));
    }
    if (n == 0) {
        return S2A_DECLINED;
    }
    start = 0;
    if (policy == S2A_POLICY_ROUND_ROBIN) {
        start = shm->rr_cursor % n;
    } else if (policy == S2A_POLICY_RANDOM) {
        start = rnd % n;
    }
    for (i = 0; i < n; i++) {
        idx = (start + i) % n;
        /* Another group's tokens do not exist for this job. */
        if (tokens[idx].id <= 0 || (group != 0 && tokens[idx].group != group)) {
            continue;
        }
        /* Tokens this job already failed on are not offered again. */
        for (a = 0; a < navoid && avoid[a] != tokens[idx].id; a++) {
        }
        if (a < navoid) {
            continue;
        }
        why = s2a_shm_token_skip(&tokens[idx], kind, now);
        if (report != NULL) {
            report->n_tokens++;
            report->counts[why]++;
            if (why == S2A_SKIP_COOLING
                && (report->earliest_cooldown == 0
                    || tokens[idx].cooldown_until < report->earliest_cooldown))
            {
                report->earliest_cooldown = tokens[idx].cooldown_until;
            }
        }
        if (why != S2A_SKIP_NONE) {
            continue;
        }
        if (policy != S2A_POLICY_LEAST_BUSY) {
            /* Round-robin and random take the first eligible from start. */
            if (best < 0) {
                best = (int) idx;
                if (report == NULL) {
                    break;
                }
            }
            continue;
        }
        if (best < 0
            || tokens[idx].inflight[kind] < tokens[best].inflight[kind]) {
            best = (int) idx;
            continue;
        }
        if (tokens[idx].inflight[kind] > tokens[best].inflight[kind]) {
            continue;
        }
        if (mine != NULL && (mine[idx] > 0) != (mine[best] > 0)) {
            if (mine[idx] > 0) {
                best = (int) idx;
            }
            continue;
        }
        if (tokens[idx].last_used_ms < tokens[best].last_used_ms) {
            best = (int) idx;
        }
    }
    if (best < 0) {
        return S2A_DECLINED;
    }
    if (policy == S2A_POLICY_ROUND_ROBIN) {
        shm->rr_cursor = (uint32_t) best + 1;
    }
    /* A cooldown that has run out turns the token active again. */
    if (tokens[best].state == S2A_TOKEN_COOLING) {
        tokens[best].state = S2A_TOKEN_ACTIVE;
    }
    return s2a_shm_lease_acquire_locked(shm, best, kind, now_ms, owner_pid,
                                        lease);
}

static void
lease_drop_locked(s2a_shm_t *shm, s2a_shm_lease_t *l)
{
    s2a_shm_token_t *tokens = s2a_shm_tokens(shm);
    s2a_shm_token_t *t;

    if (l->token_slot >= 0 && (uint32_t) l->token_slot < shm->max_tokens
        && l->kind < S2A_KIND_COUNT)
    {
        t = &tokens[l->token_slot];
        if (t->inflight[l->kind] > 0) {
            t->inflight[l->kind]--;
        }
        /* A removed token keeps its slot (negative id) until idle. */
        if (t->id < 0 && t->inflight[0] + t->inflight[1] == 0) {
            t->id = 0;
        }
    }
    l->owner_pid = 0;
    l->serial++;
    s2a_shm_pool_bump_locked(shm);
}

int
s2a_shm_lease_release_locked(s2a_shm_t *shm, s2a_lease_t *lease)
{
    s2a_shm_lease_t *l;

    if (lease->row < 0 || (uint32_t) lease->row >= shm->max_leases) {
        return S2A_DECLINED;
    }
    l = &s2a_shm_leases(shm)[lease->row];
    if (l->owner_pid == 0 || l->serial != lease->serial) {
        lease->row = -1;
        return S2A_DECLINED;
    }
    lease_drop_locked(shm, l);
    lease->row = -1;
    return S2A_OK;
}

int
s2a_shm_release_owner_locked(s2a_shm_t *shm, pid_t pid)
{
    s2a_shm_lease_t *leases = s2a_shm_leases(shm);
    uint32_t i;
    int n = 0;

    for (i = 0; i < shm->lease_high; i++) {
        if (leases[i].owner_pid == (int32_t) pid) {
            lease_drop_locked(shm, &leases[i]);
            n++;
        }
    }
    return n;
}

int
s2a_shm_lease_count_locked(s2a_shm_t *shm, pid_t pid)
{
    s2a_shm_lease_t *leases = s2a_shm_leases(shm);
    uint32_t i;
    int n = 0;

    for (i = 0; i < shm->lease_high; i++) {
        if (leases[i].owner_pid != 0
            && (pid == 0 || leases[i].owner_pid == (int32_t) pid))
        {
            n++;
        }
    }
    return n;
}

#define THROTTLE_WINDOW (15 * 60)

/* What each kind of row allows (see shm.h for the policy in words). */
static const struct {
    int32_t budget; /* attempts before a lock */
    int64_t first;  /* seconds of the first lock */
    int64_t max;    /* longest lock */
} throttle_policy[] = {
    [S2A_THROTTLE_ADDR] = { 5, 60, 3600 },
    [S2A_THROTTLE_USER] = { 20, 60, 900 },
};

/*
 * How willing we are to give up row `t` for a new key, lowest first:
 * a free row, then one whose window ran out, then one still counting,
 * then one that is locking a key out (evicting it would lift the
 * lock early, so those go last).
 */
static int
throttle_class(const s2a_shm_throttle_t *t, int64_t now)
{
    if (t->window_start == 0) {
        return 0;
    }
    if (t->locked_until > now) {
        return 3;
    }
    return t->window_start + THROTTLE_WINDOW < now ? 1 : 2;
}

static s2a_shm_throttle_t *
throttle_find(s2a_shm_t *shm, const uint8_t key[16], int32_t kind, bool create,
              int64_t now)
{
    s2a_shm_throttle_t *t, *victim = NULL;
    int i, c, vc = 0;

    for (i = 0; i < S2A_SHM_THROTTLE; i++) {
        t = &shm->throttle[i];
        if (memcmp(t->key, key, 16) == 0 && t->kind == kind
            && t->window_start != 0) {
            return t;
        }
        /* Reuse the stalest row: a free one, else an expired window, else
         * the oldest (locked rows last, the one unlocking first). */
        c = throttle_class(t, now);
        if (victim == NULL || c < vc
            || (c == vc && c < 3 && t->window_start < victim->window_start)
            || (c == vc && c == 3 && t->locked_until < victim->locked_until))
        {
            victim = t;
            vc = c;
        }
    }
    if (!create) {
        return NULL;
    }
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, 16);
    victim->kind = kind;
    victim->window_start = now;
    return victim;
}

/* Counts one attempt on `t`; `free` attempts pass before a lock. Returns
 * the lock it starts (0: none). */
static int64_t
throttle_count(s2a_shm_throttle_t *t, int32_t budget, int64_t now)
{
    int64_t lock;
    int over;

    if (t->window_start + THROTTLE_WINDOW < now && t->locked_until <= now) {
        t->fails = 0;
        t->window_start = now;
    }
    t->fails++;
    if (t->fails < budget) {
        return 0;
    }
    over = t->fails - budget;
    lock = throttle_policy[t->kind].first << (over > 6 ? 6 : over);
    if (lock > throttle_policy[t->kind].max) {
        lock = throttle_policy[t->kind].max;
    }
    t->locked_until = now + lock;
    /* The window follows the lock so a locked key stays counted. */
    t->window_start = now;
    return lock;
}

int64_t
s2a_shm_throttle_reserve_locked(s2a_shm_t *shm, const uint8_t addr[16],
                                const uint8_t *user, int64_t now, bool *locked)
{
    s2a_shm_throttle_t *a, *u = NULL;
    int32_t budget = throttle_policy[S2A_THROTTLE_ADDR].budget;
    int64_t la, lu = 0;

    *locked = false;
    a = throttle_find(shm, addr, S2A_THROTTLE_ADDR, false, now);
    if (a != NULL && a->locked_until > now) {
        return a->locked_until - now;
    }
    if (user != NULL) {
        u = throttle_find(shm, user, S2A_THROTTLE_USER, false, now);
    }
    if (u != NULL && u->locked_until > now) {
        /* A locked name: only an address with a clean window may try, and
         * once. */
        if (a != NULL && a->fails > 0
            && a->window_start + THROTTLE_WINDOW >= now) {
            return u->locked_until - now;
        }
        budget = 1;
    }
    a = throttle_find(shm, addr, S2A_THROTTLE_ADDR, true, now);
    la = throttle_count(a, budget, now);
    if (user != NULL) {
        u = throttle_find(shm, user, S2A_THROTTLE_USER, true, now);
        lu = throttle_count(u, throttle_policy[S2A_THROTTLE_USER].budget, now);
    }
    *locked = la > 0 || lu > 0;
    return 0;
}

int64_t
s2a_shm_throttle_check_locked(s2a_shm_t *shm, const uint8_t key[16],
                              int64_t now)
{
    s2a_shm_throttle_t *t;

    t = throttle_find(shm, key, S2A_THROTTLE_ADDR, false, now);
    if (t == NULL) {
        t = throttle_find(shm, key, S2A_THROTTLE_USER, false, now);
    }
    if (t == NULL || t->locked_until <= now) {
        return 0;
    }
    return t->locked_until - now;
}

int64_t
s2a_shm_throttle_fail_locked(s2a_shm_t *shm, const uint8_t key[16], int64_t now)
{
    s2a_shm_throttle_t *t =
        throttle_find(shm, key, S2A_THROTTLE_ADDR, true, now);

    return throttle_count(t, throttle_policy[S2A_THROTTLE_ADDR].budget, now);
}

void
s2a_shm_throttle_reset_locked(s2a_shm_t *shm, const uint8_t key[16])
{
    s2a_shm_throttle_t *t;
    int32_t kind;

    for (kind = S2A_THROTTLE_ADDR; kind <= S2A_THROTTLE_USER; kind++) {
        t = throttle_find(shm, key, kind, false, 0);
        if (t != NULL) {
            memset(t, 0, sizeof(*t));
        }
    }
}

int
s2a_shm_throttle_get_locked(s2a_shm_t *shm, const uint8_t key[16],
                            s2a_shm_throttle_t *out)
{
    s2a_shm_throttle_t *t;
    int32_t kind;

    for (kind = S2A_THROTTLE_ADDR; kind <= S2A_THROTTLE_USER; kind++) {
        t = throttle_find(shm, key, kind, false, 0);
        if (t != NULL) {
            *out = *t;
            return S2A_OK;
        }
    }
    return S2A_DECLINED;
}

void
s2a_shm_throttle_put_locked(s2a_shm_t *shm, const s2a_shm_throttle_t *row)
{
    s2a_shm_throttle_t *t;

    if (row->kind != S2A_THROTTLE_ADDR && row->kind != S2A_THROTTLE_USER) {
        return;
    }
    t = throttle_find(shm, row->key, row->kind, true, row->window_start);
    if (row->locked_until >= t->locked_until) {
        *t = *row;
    }
}

bool
s2a_shm_revoked_has_locked(s2a_shm_t *shm, const char *nonce, int64_t now)
{
    int i;

    for (i = 0; i < S2A_SHM_REVOKED; i++) {
        if (shm->revoked[i].nonce[0] != '\0' && shm->revoked[i].expires > now
            && strcmp(shm->revoked[i].nonce, nonce) == 0)
        {
            return true;
        }
    }
    return false;
}

int
s2a_shm_revoked_add_locked(s2a_shm_t *shm, const char *nonce, int64_t expires,
                           int64_t now)
{
    int i;

    for (i = 0; i < S2A_SHM_REVOKED; i++) {
        s2a_shm_revoked_t *r = &shm->revoked[i];
        if (r->nonce[0] == '\0' || r->expires <= now) {
            snprintf(r->nonce, sizeof(r->nonce), "%s", nonce);
            r->expires = expires;
            return S2A_OK;
        }
    }
    return S2A_DECLINED;
}

int
s2a_shm_select_locked(s2a_shm_t *shm, s2a_kind_t kind, s2a_policy_t policy,
                      int64_t now_ms, pid_t owner_pid, uint32_t rnd,
                      s2a_lease_t *lease, s2a_skip_report_t *report)
{
    return s2a_shm_select_avoid_locked(shm, kind, policy, now_ms, owner_pid,
                                       rnd, NULL, 0, NULL, lease, report);
}
