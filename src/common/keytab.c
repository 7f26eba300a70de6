/*
 * keytab.c: the shared-memory API key table: its region and robust lock,
 * the O(1) index by MAC, the requests-per-minute windows, the leases that
 * count a key's running jobs and reserve its quota, and the repair after
 * a dead lock owner. See keytab.h and docs/locking.md.
 */
#include "common/keytab.h"
#include "common/crypto.h"
#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

s2a_keytab_t *s2a_keytab;

/* A repair to report once the lock is released (-1: none). */
static int repaired = -1;

static size_t
align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static int32_t *
keytab_index(s2a_keytab_t *kt)
{
    return (int32_t *) (void *) ((char *) kt + kt->index_off);
}

static s2a_keylease_row_t *
keytab_leases(s2a_keytab_t *kt)
{
    return (s2a_keylease_row_t *) (void *) ((char *) kt + kt->leases_off);
}

s2a_keyrow_t *
s2a_keytab_rows(s2a_keytab_t *kt)
{
    return (s2a_keyrow_t *) (void *) ((char *) kt + kt->rows_off);
}

s2a_keytab_t *
s2a_keytab_create(uint32_t max_keys, uint32_t max_leases)
{
    pthread_mutexattr_t attr;
    s2a_keytab_t *kt;
    uint32_t nbuckets = 16;
    size_t off, rows, index, leases, size;
    int rc;

    while (nbuckets < 2 * max_keys) {
        nbuckets *= 2;
    }
    off = align_up(sizeof(s2a_keytab_t), 4096);
    rows = align_up((size_t) max_keys * sizeof(s2a_keyrow_t), 4096);
    index = align_up((size_t) nbuckets * sizeof(int32_t), 4096);
    leases = align_up((size_t) max_leases * sizeof(s2a_keylease_row_t), 4096);
    size = off + rows + index + leases;
    kt = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
              -1, 0);
    if (kt == MAP_FAILED) {
        return NULL;
    }
    /* Zero pages are an empty table: free rows (id 0), empty buckets,
     * free leases (owner 0). Only the header is written. */
    kt->magic = S2A_KEYTAB_MAGIC;
    kt->version = S2A_KEYTAB_VERSION;
    kt->max_keys = max_keys;
    kt->max_leases = max_leases;
    kt->nbuckets = nbuckets;
    kt->size = size;
    kt->rows_off = off;
    kt->index_off = off + rows;
    kt->leases_off = off + rows + index;
    if ((rc = pthread_mutexattr_init(&attr)) != 0
        || (rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED))
            != 0
        || (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) != 0
        || (rc = pthread_mutex_init(&kt->lock, &attr)) != 0)
    {
        munmap(kt, size);
        errno = rc;
        return NULL;
    }
    pthread_mutexattr_destroy(&attr);
    s2a_keytab = kt;
    return kt;
}

void
s2a_keytab_destroy(s2a_keytab_t *kt)
{
    if (kt == NULL) {
        return;
    }
    if (s2a_keytab == kt) {
        s2a_keytab = NULL;
    }
    munmap(kt, kt->size);
}

int
s2a_keytab_lock(s2a_keytab_t *kt)
{
    int rc = pthread_mutex_lock(&kt->lock);

    if (rc == 0) {
        return S2A_OK;
    }
    if (rc == EOWNERDEAD) {
        /* Whatever the dead owner left half done is derived data. */
        repaired = s2a_keytab_repair_locked(kt);
        kt->repairs++;
        pthread_mutex_consistent(&kt->lock);
        return S2A_OK;
    }
    s2a_log(LOG_CRIT, rc, "pthread_mutex_lock(keytab) failed");
    return S2A_ERROR;
}

void
s2a_keytab_unlock(s2a_keytab_t *kt)
{
    pthread_mutex_unlock(&kt->lock);
    if (repaired >= 0) {
        s2a_log(LOG_WARNING, 0,
                "key table lock owner died holding the lock; table "
                "repaired (%d stale leases dropped)",
                repaired);
        repaired = -1;
    }
}

int64_t
s2a_keytab_now(const s2a_keytab_t *kt)
{
#ifdef S2A_TEST_HOOKS
    return (int64_t) time(NULL)
        + atomic_load_explicit(&kt->clock_offset, memory_order_relaxed);
#else
    S2A_UNUSED(kt);
    return (int64_t) time(NULL);
#endif
}

#ifdef S2A_TEST_HOOKS
void
s2a_keytab_set_clock_offset(s2a_keytab_t *kt, int64_t seconds)
{
    atomic_store_explicit(&kt->clock_offset, seconds, memory_order_relaxed);
}
#endif

int64_t
s2a_key_period_start(s2a_key_period_t p, int64_t now)
{
    struct tm tm;
    time_t t = (time_t) now;

    switch (p) {
    case S2A_PERIOD_DAY: return now - now % 86400;
    case S2A_PERIOD_MONTH:
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        return (int64_t) timegm(&tm);
    case S2A_PERIOD_TOTAL: break;
    }
    return 0;
}

int64_t
s2a_key_period_end(s2a_key_period_t p, int64_t now)
{
    struct tm tm;
    time_t t = (time_t) now;

    switch (p) {
    case S2A_PERIOD_DAY: return now - now % 86400 + 86400;
    case S2A_PERIOD_MONTH:
        gmtime_r(&t, &tm);
        tm.tm_mday = 1;
        tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        tm.tm_mon++; /* timegm normalises December + 1 */
        return (int64_t) timegm(&tm);
    case S2A_PERIOD_TOTAL: break;
    }
    return 0;
}

uint64_t
s2a_keytab_group_hash(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const unsigned char *p;

    if (name == NULL || name[0] == '\0') {
        return 0;
    }
    for (p = (const unsigned char *) name; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h != 0 ? h : 1;
}

/* The bucket a MAC starts probing at: the MAC is an HMAC output, so its
 * first bytes are uniformly distributed already. */
static uint32_t
bucket_of(const s2a_keytab_t *kt, const uint8_t *mac)
{
    uint32_t h;

    memcpy(&h, mac, sizeof(h));
    return h & (kt->nbuckets - 1);
}

void
s2a_keytab_reindex_locked(s2a_keytab_t *kt)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    int32_t *index = keytab_index(kt);
    uint32_t i, b;

    memset(index, 0, (size_t) kt->nbuckets * sizeof(*index));
    for (i = 0; i < kt->key_high; i++) {
        if (rows[i].spec.id <= 0) {
            continue;
        }
        /* At most max_keys of 2 * max_keys buckets are used: the probe
         * always finds a free one. */
        for (b = bucket_of(kt, rows[i].spec.mac); index[b] != 0;
             b = (b + 1) & (kt->nbuckets - 1))
        {
        }
        index[b] = (int32_t) i + 1;
    }
}

int
s2a_keytab_find_locked(s2a_keytab_t *kt, const uint8_t *mac)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    int32_t *index = keytab_index(kt);
    uint32_t b, n;
    int32_t slot;

    for (b = bucket_of(kt, mac), n = 0; n < kt->nbuckets;
         b = (b + 1) & (kt->nbuckets - 1), n++)
    {
        if (index[b] == 0) {
            return -1;
        }
        slot = index[b] - 1;
        if ((uint32_t) slot < kt->key_high && rows[slot].spec.id > 0
            && s2a_ct_equal(rows[slot].spec.mac, mac, S2A_KEY_MAC_LEN))
        {
            return slot;
        }
    }
    return -1;
}

int
s2a_keytab_find_id_locked(s2a_keytab_t *kt, int64_t id)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    uint32_t i;

    for (i = 0; i < kt->key_high; i++) {
        if (rows[i].spec.id == id) {
            return (int) i;
        }
    }
    return -1;
}

int
s2a_keytab_put_locked(s2a_keytab_t *kt, const s2a_keyspec_t *spec)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    int slot = s2a_keytab_find_id_locked(kt, spec->id);
    uint32_t i;

    if (slot < 0) {
        for (i = 0; i < kt->max_keys; i++) {
            if (i >= kt->key_high || rows[i].spec.id == 0) {
                break;
            }
        }
        if (i == kt->max_keys) {
            return -1;
        }
        slot = (int) i;
        /* A new key in this slot: counters start from nothing. */
        memset(&rows[slot], 0, sizeof(rows[slot]));
        if ((uint32_t) slot >= kt->key_high) {
            kt->key_high = (uint32_t) slot + 1;
        }
    }
    rows[slot].spec = *spec;
    rows[slot].version++;
    return slot;
}

int
s2a_keytab_remove_locked(s2a_keytab_t *kt, int64_t id)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    int slot = s2a_keytab_find_id_locked(kt, id);

    if (slot < 0) {
        return S2A_DECLINED;
    }
    /* Leases point at the slot: it stays reserved (negative id, out of
     * the index) until the last one ends. */
    rows[slot].spec.id = rows[slot].inflight > 0 ? -id : 0;
    rows[slot].spec.enabled = 0;
    memset(rows[slot].spec.mac, 0, sizeof(rows[slot].spec.mac));
    rows[slot].version++;
    return S2A_OK;
}

/* Moves the row's used counts into the period holding `now`. */
static void
roll_period(s2a_keyrow_t *row, int64_t now)
{
    int64_t start =
        s2a_key_period_start((s2a_key_period_t) row->spec.period, now);

    if (row->period_start != start) {
        row->period_start = start;
        row->used[S2A_KIND_IMAGE] = 0;
        row->used[S2A_KIND_VIDEO] = 0;
    }
}

int32_t
s2a_keytab_used(const s2a_keyrow_t *row, s2a_kind_t kind, int64_t now)
{
    if (row->period_start
        != s2a_key_period_start((s2a_key_period_t) row->spec.period, now))
    {
        return 0;
    }
    return row->used[kind];
}

void
s2a_keytab_set_used_locked(s2a_keytab_t *kt, int64_t id, int64_t period_start,
                           const int32_t *used)
{
    int slot = s2a_keytab_find_id_locked(kt, id);
    s2a_keyrow_t *row;

    if (slot < 0) {
        return;
    }
    row = &s2a_keytab_rows(kt)[slot];
    row->period_start = period_start;
    row->used[S2A_KIND_IMAGE] = used[S2A_KIND_IMAGE];
    row->used[S2A_KIND_VIDEO] = used[S2A_KIND_VIDEO];
}

#define WINDOW_COUNT_BITS 24

int
s2a_keytab_rpm_take(s2a_keytab_t *kt, int slot, int32_t rpm, int64_t now_ms,
                    s2a_rpm_info_t *info)
{
    s2a_keyrow_t *row = &s2a_keytab_rows(kt)[slot];
    uint64_t w, next, count;
    int64_t start;

    info->limit = rpm;
    info->remaining = 0;
    info->reset_ms = 0;
    if (rpm < 0) {
        return S2A_OK;
    }
    if (rpm > S2A_RPM_COUNT_MAX) {
        rpm = S2A_RPM_COUNT_MAX;
    }
    w = atomic_load_explicit(&row->window, memory_order_relaxed);
    for (;;) {
        start = (int64_t) (w >> WINDOW_COUNT_BITS);
        count = w & S2A_RPM_COUNT_MAX;
        if (w == 0 || now_ms - start >= S2A_RPM_WINDOW_MS) {
            /* The window ended: this request opens the next one. */
            start = now_ms;
            count = 0;
        }
        info->reset_ms = start + S2A_RPM_WINDOW_MS - now_ms;
        if (count >= (uint64_t) rpm) {
            return S2A_DECLINED;
        }
        next = ((uint64_t) start << WINDOW_COUNT_BITS) | (count + 1);
        /* Another worker counted first: decide again on what it left. */
        if (atomic_compare_exchange_weak_explicit(&row->window, &w, next,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        {
            info->remaining = rpm - (int32_t) (count + 1);
            return S2A_OK;
        }
    }
}

void
s2a_keytab_window(const s2a_keyrow_t *row, int64_t now_ms, int32_t *count,
                  int64_t *left_ms)
{
    uint64_t w = atomic_load_explicit(&row->window, memory_order_relaxed);
    int64_t start = (int64_t) (w >> WINDOW_COUNT_BITS);

    *count = 0;
    *left_ms = 0;
    if (w != 0 && now_ms - start < S2A_RPM_WINDOW_MS) {
        *count = (int32_t) (w & S2A_RPM_COUNT_MAX);
        *left_ms = start + S2A_RPM_WINDOW_MS - now_ms;
    }
}

void
s2a_keytab_write_begin_locked(s2a_keytab_t *kt)
{
    atomic_fetch_add_explicit(&kt->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void
s2a_keytab_write_end_locked(s2a_keytab_t *kt)
{
    atomic_fetch_add_explicit(&kt->seq, 1, memory_order_release);
}

int
s2a_keytab_lookup(s2a_keytab_t *kt, const uint8_t *mac, s2a_keyspec_t *out)
{
    uint32_t before;
    int slot;

    for (;;) {
        before = atomic_load_explicit(&kt->seq, memory_order_acquire);
        if (before & 1) {
            continue; /* a writer is at work: a few microseconds */
        }
        slot = s2a_keytab_find_locked(kt, mac);
        if (slot >= 0) {
            memcpy(out, &s2a_keytab_rows(kt)[slot].spec, sizeof(*out));
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&kt->seq, memory_order_relaxed) == before) {
            return slot;
        }
    }
}

static int
lease_row_alloc(s2a_keytab_t *kt)
{
    s2a_keylease_row_t *leases = keytab_leases(kt);
    uint32_t i, n = kt->max_leases, row;

    for (i = 0; i < n; i++) {
        row = (kt->lease_hint + i) % n;
        if (row >= kt->lease_high || leases[row].owner_pid == 0) {
            kt->lease_hint = (row + 1) % n;
            if (row >= kt->lease_high) {
                kt->lease_high = row + 1;
            }
            return (int) row;
        }
    }
    return -1;
}

static void
lease_take(s2a_keytab_t *kt, int row, int slot, s2a_kind_t kind, pid_t pid,
           s2a_keylease_t *lease)
{
    s2a_keylease_row_t *l = &keytab_leases(kt)[row];
    s2a_keyrow_t *k = &s2a_keytab_rows(kt)[slot];

    l->slot = slot;
    l->kind = (uint8_t) kind;
    l->owner_pid = (int32_t) pid;
    l->serial = ++kt->lease_serial;
    k->inflight++;
    k->pending[kind]++;
    lease->row = row;
    lease->serial = l->serial;
    lease->slot = slot;
    lease->key_id = k->spec.id;
    lease->kind = kind;
}

/* Frees lease row `l` and the counts it held. */
static void
lease_drop(s2a_keytab_t *kt, s2a_keylease_row_t *l)
{
    s2a_keyrow_t *k;

    if (l->slot >= 0 && (uint32_t) l->slot < kt->max_keys
        && l->kind < S2A_KIND_COUNT)
    {
        k = &s2a_keytab_rows(kt)[l->slot];
        if (k->inflight > 0) {
            k->inflight--;
        }
        if (k->pending[l->kind] > 0) {
            k->pending[l->kind]--;
        }
        if (k->spec.id < 0 && k->inflight == 0) {
            k->spec.id = 0;
        }
    }
    l->owner_pid = 0;
    l->serial++;
}

s2a_key_admit_t
s2a_keytab_admit_locked(s2a_keytab_t *kt, int slot, s2a_kind_t kind, int n,
                        int64_t now, pid_t pid, s2a_keylease_t *leases)
{
    s2a_keyrow_t *k = &s2a_keytab_rows(kt)[slot];
    int rows[64], i;

    if (n < 1 || n > (int) S2A_NELEMS(rows)) {
        return S2A_KEY_ADMIT_FULL;
    }
    roll_period(k, now);
    /* Running jobs reserve their unit: completed plus running plus
     * these can never pass the quota, however many start at once. */
    if (k->spec.quota[kind] >= 0
        && (int64_t) k->used[kind] + k->pending[kind] + n > k->spec.quota[kind])
    {
        return S2A_KEY_ADMIT_QUOTA;
    }
    if (k->spec.concurrency >= 0
        && (int64_t) k->inflight + n > k->spec.concurrency) {
        return S2A_KEY_ADMIT_CONCURRENCY;
    }
    for (i = 0; i < n; i++) {
        rows[i] = lease_row_alloc(kt);
        if (rows[i] < 0) {
            while (i-- > 0) {
                keytab_leases(kt)[rows[i]].owner_pid = 0;
            }
            return S2A_KEY_ADMIT_FULL;
        }
        /* Claimed at once so the next search skips it. */
        keytab_leases(kt)[rows[i]].owner_pid = (int32_t) pid;
    }
    for (i = 0; i < n; i++) {
        lease_take(kt, rows[i], slot, kind, pid, &leases[i]);
    }
    atomic_fetch_add_explicit(&k->jobs, (uint64_t) n, memory_order_relaxed);
    return S2A_KEY_ADMIT_OK;
}

int
s2a_keytab_lease_force_locked(s2a_keytab_t *kt, int slot, s2a_kind_t kind,
                              pid_t pid, s2a_keylease_t *lease)
{
    int row = lease_row_alloc(kt);

    if (row < 0) {
        lease->row = -1;
        return S2A_AGAIN;
    }
    lease_take(kt, row, slot, kind, pid, lease);
    return S2A_OK;
}

int
s2a_keytab_lease_end_locked(s2a_keytab_t *kt, s2a_keylease_t *lease,
                            bool counted, int64_t now)
{
    s2a_keylease_row_t *l;
    s2a_keyrow_t *k;

    if (lease->row < 0 || (uint32_t) lease->row >= kt->max_leases) {
        lease->row = -1;
        return S2A_DECLINED;
    }
    l = &keytab_leases(kt)[lease->row];
    lease->row = -1;
    if (l->owner_pid == 0 || l->serial != lease->serial) {
        return S2A_DECLINED;
    }
    k = &s2a_keytab_rows(kt)[l->slot];
    if (counted && k->spec.id == lease->key_id) {
        roll_period(k, now);
        k->used[l->kind]++;
    }
    lease_drop(kt, l);
    return S2A_OK;
}

int
s2a_keytab_release_owner_locked(s2a_keytab_t *kt, pid_t pid)
{
    s2a_keylease_row_t *leases = keytab_leases(kt);
    uint32_t i;
    int n = 0;

    for (i = 0; i < kt->lease_high; i++) {
        if (leases[i].owner_pid == (int32_t) pid) {
            lease_drop(kt, &leases[i]);
            n++;
        }
    }
    return n;
}

static bool
pid_alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int
s2a_keytab_repair_locked(s2a_keytab_t *kt)
{
    s2a_keyrow_t *rows = s2a_keytab_rows(kt);
    s2a_keylease_row_t *leases = keytab_leases(kt);
    uint32_t i, high = 0;
    int dropped = 0;

    if (kt->key_high > kt->max_keys) {
        kt->key_high = kt->max_keys;
    }
    if (kt->lease_high > kt->max_leases) {
        kt->lease_high = kt->max_leases;
    }
    for (i = 0; i < kt->key_high; i++) {
        rows[i].inflight = 0;
        rows[i].pending[S2A_KIND_IMAGE] = 0;
        rows[i].pending[S2A_KIND_VIDEO] = 0;
    }
    for (i = 0; i < kt->lease_high; i++) {
        s2a_keylease_row_t *l = &leases[i];

        if (l->owner_pid == 0) {
            continue;
        }
        if (!pid_alive(l->owner_pid) || l->slot < 0
            || (uint32_t) l->slot >= kt->key_high || l->kind >= S2A_KIND_COUNT)
        {
            l->owner_pid = 0;
            l->serial++;
            dropped++;
            continue;
        }
        rows[l->slot].inflight++;
        rows[l->slot].pending[l->kind]++;
        high = i + 1;
    }
    kt->lease_high = high;
    if (kt->lease_hint >= kt->max_leases) {
        kt->lease_hint = 0;
    }
    /* The dead owner may have been a writer: the sequence is made even
     * again, around a rebuilt index. */
    if (atomic_load_explicit(&kt->seq, memory_order_relaxed) & 1) {
        atomic_fetch_add_explicit(&kt->seq, 1, memory_order_relaxed);
    }
    s2a_keytab_write_begin_locked(kt);
    for (i = 0; i < kt->key_high; i++) {
        if (rows[i].spec.id < 0 && rows[i].inflight == 0) {
            rows[i].spec.id = 0;
        }
    }
    s2a_keytab_reindex_locked(kt);
    s2a_keytab_write_end_locked(kt);
    return dropped;
}
