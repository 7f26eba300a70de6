/*
 * keytab.h: the shared-memory table of API keys (docs/api-keys.md).
 *
 * Its own region and its own robust lock, apart from the token table.
 * The request path (every /v1 request: the key lookup and its
 * requests-per-minute window) takes no lock at all: specs and the index
 * are read through a sequence counter the writers move, the window is one
 * word changed by compare-and-swap, the metrics are atomics. The lock
 * serialises the writers (the master's publish, job admission and lease
 * ends). The master creates the table before forking (s2a_keytab_create)
 * and is the only writer of the key rows' specs.
 *
 * Contents (docs/locking.md says who writes what):
 *   - header: magic, version, sizes, the mutex, high-water marks
 *   - key rows: what the master published (s2a_keyspec_t) plus the live
 *     counters: the rpm window (atomic), leases by kind, the period's
 *     completed jobs, and relaxed-atomic metrics
 *   - index: open addressing on the key's MAC, slot + 1 per bucket, so a
 *     lookup by key is O(1); rebuilt by the master after each change
 *   - lease table: one row per generation job of a key (its concurrency
 *     and the quota it reserves); what the master releases when a worker
 *     dies
 *
 * Nothing in it is a pointer. A key's secret is never here, only its MAC
 * (s2a_api_key_mac).
 */
#ifndef S2A_KEYTAB_H
#define S2A_KEYTAB_H

#include "common/core.h"
#include "common/shm.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define S2A_KEYTAB_MAGIC   0x5332414b45595431ULL /* "S2AKEYT1" */
#define S2A_KEYTAB_VERSION 1
#define S2A_KEY_UNLIMITED  (-1)
#define S2A_KEY_MAC_LEN    32
#define S2A_RPM_WINDOW_MS  60000

/* The period a key's image and video quotas count over (UTC). */
typedef enum {
    S2A_PERIOD_TOTAL = 0,
    S2A_PERIOD_DAY,
    S2A_PERIOD_MONTH
} s2a_key_period_t;

/* A key as the master publishes it: identity and limits. */
typedef struct s2a_keyspec_s {
    int64_t id;
    uint8_t mac[S2A_KEY_MAC_LEN]; /* s2a_api_key_mac() of the key */
    uint8_t enabled;
    uint8_t period; /* s2a_key_period_t */
    uint16_t _pad;
    uint32_t models;    /* bit i: s2a_models[i] allowed; 0: every model */
    int64_t expires_at; /* unix seconds, 0: never */
    int32_t rpm;        /* requests per minute, S2A_KEY_UNLIMITED */
    int32_t concurrency;
    int32_t quota[S2A_KIND_COUNT]; /* per period, S2A_KEY_UNLIMITED */
    uint64_t group; /* s2a_keytab_group_hash of token_group, 0: any */
} s2a_keyspec_t;

typedef struct s2a_keyrow_s {
    s2a_keyspec_t spec; /* spec.id 0: free; negative: deleted, leases left */
    uint32_t version;   /* bumped by every put */
    int32_t inflight;   /* leases of any kind (derived) */
    int32_t pending[S2A_KIND_COUNT]; /* leases by kind (derived) */
    int32_t used[S2A_KIND_COUNT];    /* jobs completed in the period */
    int64_t period_start;            /* unix seconds the used counts start */
    /* The rpm window, one word changed by compare-and-swap (no lock):
     * monotonic ms of its start << 24 | requests admitted in it. */
    _Atomic uint64_t window;
    /* /metrics, relaxed atomics (no lock) */
    _Atomic uint64_t requests;  /* answered requests */
    _Atomic uint64_t throttled; /* 429 answers of this table's limits */
    _Atomic uint64_t jobs;      /* generation jobs admitted */
} s2a_keyrow_t;

typedef struct s2a_keylease_row_s {
    int32_t slot; /* key row; -1 never used */
    int32_t owner_pid;
    uint32_t serial;
    uint8_t kind;
    uint8_t _pad[3];
} s2a_keylease_row_t;

/* A lease as its owner holds it (row -1: none). */
typedef struct s2a_keylease_s {
    int32_t row;
    uint32_t serial;
    int32_t slot;
    int64_t key_id;
    s2a_kind_t kind;
} s2a_keylease_t;

typedef struct s2a_keytab_s {
    uint64_t magic;
    uint32_t version;
    uint32_t max_keys;
    uint32_t max_leases;
    uint32_t nbuckets; /* power of two, at least 2 * max_keys */
    uint32_t key_high; /* rows [0, key_high) may be in use */
    uint32_t lease_high;
    uint32_t lease_hint;
    uint32_t lease_serial;
    uint32_t repairs;
    /* Odd while the master (or a repair) rewrites key specs or the index,
     * under the lock: the request path reads them without the lock and
     * retries when it moved (s2a_keytab_lookup). */
    _Atomic uint32_t seq;
    pthread_mutex_t lock;
    /* Test builds only (the /__test/key-clock hook): seconds added to
     * the key clock. A release binary never reads or writes it. */
    _Atomic int64_t clock_offset;
    size_t rows_off;
    size_t index_off;
    size_t leases_off;
    size_t size;
} s2a_keytab_t;

/* The table every process uses, set by s2a_keytab_create in the master
 * and inherited by the workers it forks. */
extern s2a_keytab_t *s2a_keytab;

/*
 * Maps and initialises a table of `max_keys` keys and `max_leases`
 * leases and makes it s2a_keytab. Returns NULL with errno set. Pages are
 * only touched when used.
 */
s2a_keytab_t *s2a_keytab_create(uint32_t max_keys, uint32_t max_leases);
void s2a_keytab_destroy(s2a_keytab_t *kt);

/*
 * The lock. A previous owner that died holding it is repaired
 * (s2a_keytab_repair_locked) before the mutex is marked consistent.
 * Returns S2A_OK or S2A_ERROR when the mutex is unrecoverable.
 */
int s2a_keytab_lock(s2a_keytab_t *kt);
void s2a_keytab_unlock(s2a_keytab_t *kt);

/*
 * Rebuilds the derived data from the lease rows: drops leases of dead
 * processes, recounts in-flight and pending per key, frees deleted rows
 * without leases, rebuilds the index. Returns the leases dropped.
 */
int s2a_keytab_repair_locked(s2a_keytab_t *kt);

s2a_keyrow_t *s2a_keytab_rows(s2a_keytab_t *kt);

/* The key clock: unix seconds (plus the test offset in test builds). */
int64_t s2a_keytab_now(const s2a_keytab_t *kt);
#ifdef S2A_TEST_HOOKS
void s2a_keytab_set_clock_offset(s2a_keytab_t *kt, int64_t seconds);
#endif

/* The start and the end (exclusive) of the period holding `now`; TOTAL
 * starts at 0 and never ends (end 0). */
int64_t s2a_key_period_start(s2a_key_period_t p, int64_t now);
int64_t s2a_key_period_end(s2a_key_period_t p, int64_t now);

/* A token group name as the 64-bit tag token and key rows carry (FNV-1a;
 * "" and NULL give 0, no group; never 0 otherwise). */
uint64_t s2a_keytab_group_hash(const char *name);

/*
 * Master only. `_put` inserts or updates the row of `spec->id`, keeping
 * its live counters; returns the slot or -1 when the table is full.
 * `_remove` takes the key out (a row with leases keeps -id until they
 * end). Both leave the index stale: call `_reindex` after a batch.
 * `_set_used` sets a key's completed jobs for the period starting at
 * `period_start` (rebuilt from the database at start).
 */
int s2a_keytab_put_locked(s2a_keytab_t *kt, const s2a_keyspec_t *spec);
int s2a_keytab_remove_locked(s2a_keytab_t *kt, int64_t id);
void s2a_keytab_reindex_locked(s2a_keytab_t *kt);
void s2a_keytab_set_used_locked(s2a_keytab_t *kt, int64_t id,
                                int64_t period_start, const int32_t *used);

/* The slot of the key whose MAC is `mac`, or -1. O(1). */
int s2a_keytab_find_locked(s2a_keytab_t *kt, const uint8_t *mac);

/*
 * Writers of specs and the index (master publish, repair) bracket their
 * changes, lock held, so that lock-free readers see either the old or the
 * new table, never a mix.
 */
void s2a_keytab_write_begin_locked(s2a_keytab_t *kt);
void s2a_keytab_write_end_locked(s2a_keytab_t *kt);

/*
 * The request path, without the lock: finds the key whose MAC is `mac`
 * and copies its spec into `out` from one consistent state of the table
 * (a sequence counter, retried while a writer is at work). Returns the
 * slot or -1.
 */
int s2a_keytab_lookup(s2a_keytab_t *kt, const uint8_t *mac, s2a_keyspec_t *out);

/* The slot of key `id`, or -1 (a scan: admin and metrics paths only). */
int s2a_keytab_find_id_locked(s2a_keytab_t *kt, int64_t id);

/* The requests-per-minute window of a key after a request. */
typedef struct s2a_rpm_info_s {
    int32_t limit;     /* S2A_KEY_UNLIMITED: no window */
    int32_t remaining; /* requests left in the window */
    int64_t reset_ms;  /* until the window ends */
} s2a_rpm_info_t;

/*
 * Counts one request of the key in `slot`, whose limit is `rpm`, against
 * its window at monotonic time `now_ms`: S2A_OK, or S2A_DECLINED when the
 * window is full (nothing counted). A window opens with the first request
 * after the previous one ended and lasts S2A_RPM_WINDOW_MS. No lock: one
 * compare-and-swap on the row's window word, so every worker counts in
 * the same window exactly. `rpm` at most S2A_RPM_COUNT_MAX.
 */
#define S2A_RPM_COUNT_MAX 0xffffff
int s2a_keytab_rpm_take(s2a_keytab_t *kt, int slot, int32_t rpm, int64_t now_ms,
                        s2a_rpm_info_t *info);

/* The window of `row` at `now_ms`: requests counted and ms left (both 0
 * when no window is open). */
void s2a_keytab_window(const s2a_keyrow_t *row, int64_t now_ms, int32_t *count,
                       int64_t *left_ms);

/* Why a key's jobs were refused. */
typedef enum {
    S2A_KEY_ADMIT_OK = 0,
    S2A_KEY_ADMIT_QUOTA,       /* the period's quota is used or reserved */
    S2A_KEY_ADMIT_CONCURRENCY, /* as many jobs running as allowed */
    S2A_KEY_ADMIT_FULL         /* the lease table is full */
} s2a_key_admit_t;

/*
 * Admits `n` jobs of `kind` for the key in `slot`, all or none: the
 * quota (completed + running + n within the period's quota) and the
 * concurrency (running + n), then a lease per job for `pid` in
 * leases[0..n). `now` is the key clock (s2a_keytab_now).
 */
s2a_key_admit_t s2a_keytab_admit_locked(s2a_keytab_t *kt, int slot,
                                        s2a_kind_t kind, int n, int64_t now,
                                        pid_t pid, s2a_keylease_t *leases);

/* A lease past every limit: a resumed job that already runs. */
int s2a_keytab_lease_force_locked(s2a_keytab_t *kt, int slot, s2a_kind_t kind,
                                  pid_t pid, s2a_keylease_t *lease);

/*
 * Ends `lease` exactly once (a second call, or one after the master
 * reclaimed it, does nothing and returns S2A_DECLINED). With `counted`
 * the job completed: it joins the period's used count at `now`.
 */
int s2a_keytab_lease_end_locked(s2a_keytab_t *kt, s2a_keylease_t *lease,
                                bool counted, int64_t now);

/* Ends every lease of `pid` (a dead worker). Returns how many. */
int s2a_keytab_release_owner_locked(s2a_keytab_t *kt, pid_t pid);

/* The used counts of `row` in the period holding `now` (0 after a
 * boundary the row has not seen yet). */
int32_t s2a_keytab_used(const s2a_keyrow_t *row, s2a_kind_t kind, int64_t now);

#endif /* S2A_KEYTAB_H */
