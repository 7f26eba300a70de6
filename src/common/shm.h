/*
 * shm.h: the shared-memory region every process maps.
 *
 * The master creates it (mmap MAP_SHARED|MAP_ANONYMOUS) before forking, so
 * workers inherit the mapping at the same address; still, nothing in it is
 * a pointer: tables are arrays addressed by index.
 *
 * Contents (see docs/locking.md for who writes what):
 *   - header: magic, version, sizes, the robust process-shared mutex
 *   - settings snapshot: written by the master only, read lock-free by
 *     workers through a sequence counter (odd while a write is in progress)
 *   - worker table: one row per worker slot, for supervision and /readyz
 *   - token table: scheduling fields of each account, compact so a
 *     selection scan touches few cache lines
 *   - token secrets: the access token of each account, touched only when a
 *     request is actually sent upstream
 *   - lease table: one row per in-flight use of a token; leases are what
 *     the master reclaims when a worker dies
 *   - the /metrics counters (stats.h), updated with atomics
 */
#ifndef S2A_SHM_H
#define S2A_SHM_H

#include "common/core.h"
#include "common/stats.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define S2A_SHM_MAGIC   0x5332414153484d31ULL /* "S2AASHM1" */
#define S2A_SHM_VERSION 5
#define S2A_SHM_AT_MAX  4096 /* longest access token kept */
#define S2A_SHM_WORKERS 128  /* worker rows (slots x generations) */

typedef enum {
    S2A_TOKEN_FREE = 0, /* slot unused */
    S2A_TOKEN_ACTIVE,
    S2A_TOKEN_DISABLED, /* by the operator */
    S2A_TOKEN_INVALID,  /* upstream said invalidated / 401 */
    S2A_TOKEN_EXPIRED,
    S2A_TOKEN_COOLING /* quota or 429 until cooldown_until */
} s2a_token_state_t;

typedef enum {
    S2A_KIND_IMAGE = 0,
    S2A_KIND_VIDEO,
    S2A_KIND_COUNT
} s2a_kind_t;

typedef enum {
    S2A_POLICY_LEAST_BUSY = 0, /* least in-flight, then least recently used */
    S2A_POLICY_ROUND_ROBIN,
    S2A_POLICY_RANDOM
} s2a_policy_t;

/* Why a token was not chosen. */
typedef enum {
    S2A_SKIP_NONE = 0,
    S2A_SKIP_DISABLED,
    S2A_SKIP_INVALID,
    S2A_SKIP_EXPIRED,
    S2A_SKIP_COOLING,
    S2A_SKIP_KIND_DISABLED,
    S2A_SKIP_NO_SORA2,
    S2A_SKIP_NO_QUOTA,
    S2A_SKIP_BUSY
} s2a_skip_t;

#define S2A_TOKEN_F_IMAGE 0x01 /* image generation enabled */
#define S2A_TOKEN_F_VIDEO 0x02 /* video generation enabled */
#define S2A_TOKEN_F_SORA2 0x04 /* account supports Sora 2 video */

typedef struct s2a_shm_token_s {
    int64_t id;       /* database id; 0 when the slot is free */
    uint32_t version; /* bumped on every change by the master */
    uint8_t state;    /* s2a_token_state_t */
    uint8_t flags;    /* S2A_TOKEN_F_* */
    uint16_t _pad;
    int32_t limit[S2A_KIND_COUNT];    /* <= 0: unlimited */
    int32_t inflight[S2A_KIND_COUNT]; /* derived from the lease table */
    int32_t consecutive_errors;
    int32_t quota_left;     /* videos left, -1 when unknown */
    int64_t cooldown_until; /* unix seconds */
    int64_t expires_at;     /* unix seconds, 0 when unknown */
    int64_t last_used_ms;   /* unix milliseconds */
    uint64_t group; /* s2a_keytab_group_hash of its token_group, 0: none */
} s2a_shm_token_t;

typedef struct s2a_shm_secret_s {
    uint32_t version; /* equals the token's version when current */
    uint32_t len;
    char access_token[S2A_SHM_AT_MAX];
    char proxy[256]; /* the token's own proxy URL, "" for the global one */
} s2a_shm_secret_t;

typedef struct s2a_shm_lease_s {
    int32_t token_slot; /* -1 when the row is free */
    uint8_t kind;
    uint8_t _pad[3];
    int32_t owner_pid;
    uint32_t serial; /* guards against releasing a reused row */
    int64_t acquired_ms;
} s2a_shm_lease_t;

/* A lease as held by its owner: row index plus the serial it had. */
typedef struct s2a_lease_s {
    int32_t row;
    uint32_t serial;
    int32_t token_slot;
    int64_t token_id;
    s2a_kind_t kind;
} s2a_lease_t;

typedef enum {
    S2A_WORKER_EMPTY = 0,
    S2A_WORKER_STARTING,
    S2A_WORKER_READY,
    S2A_WORKER_DRAINING
} s2a_worker_state_t;

typedef struct s2a_shm_worker_s {
    int32_t pid;
    int32_t slot;
    uint32_t generation;
    uint8_t state; /* s2a_worker_state_t */
    uint8_t _pad[3];
    int64_t started_ms;
    uint64_t requests;      /* written by the worker only */
    uint32_t settings_seen; /* settings sequence the worker applied */
    uint32_t _pad2;
} s2a_shm_worker_t;

/* Runtime settings every worker needs on the hot path. */
typedef struct s2a_shm_settings_s {
    uint8_t api_key_hash[32]; /* s2a_api_key_mac() of the API key */
    uint8_t api_key_vkey[32]; /* derived from secret.key by the master */
    int32_t log_level;        /* -1: follow the configuration file */
    int32_t policy;           /* s2a_policy_t */
    int32_t error_ban_threshold;
    int32_t session_ttl;    /* seconds an admin session lasts */
    uint32_t session_epoch; /* sessions of older epochs are invalid */
    int32_t admin_password_is_default;
    int32_t at_refresh_enabled; /* master refreshes expiring ATs */
    int32_t at_refresh_window;  /* seconds before expiry */
    int32_t quota_interval;     /* seconds between quota checks, 0 off */
    int32_t cache_enabled;      /* results are downloaded and served */
    int32_t cache_timeout;      /* seconds a cached file is kept */
    char cache_base_url[256];   /* public base of /tmp/ URLs, "" = Host */
    int32_t proxy_enabled;      /* route upstream calls through proxy_url */
    int32_t queue_timeout;      /* seconds a job waits for a free token */
    int32_t image_timeout;      /* seconds an image generation may take */
    int32_t video_timeout;      /* seconds a video generation may take */
    int32_t wm_enabled;         /* watermark-free results */
    int32_t wm_custom;          /* 1: custom parse server, 0: third party */
    int32_t videos_async; /* /v1/videos answers at once (1) or when done */
    char proxy_url[256];
    char wm_custom_url[256];      /* custom parse server base URL */
    char wm_custom_token[256];    /* its token (sent in the request body) */
    char wm_third_party_url[256]; /* template with {post_id} */
    uint8_t session_secret[32];   /* HMAC key of admin session tokens */
    char admin_username[64];
    char admin_password_hash[160];
} s2a_shm_settings_t;

/*
 * Admin login attempts per client address and per user name (see
 * s2a_shm_throttle_*). An attempt is counted before its password check.
 */
#define S2A_SHM_THROTTLE 256
typedef enum {
    S2A_THROTTLE_ADDR = 0, /* key: hash of the client address */
    S2A_THROTTLE_USER      /* key: hash of the admin user name */
} s2a_throttle_kind_t;

typedef struct s2a_shm_throttle_s {
    uint8_t key[16];      /* truncated hash of the address or user name */
    int32_t fails;        /* attempts in the window not ended by a success */
    int32_t kind;         /* s2a_throttle_kind_t */
    int64_t window_start; /* unix seconds */
    int64_t locked_until; /* unix seconds */
} s2a_shm_throttle_t;

/* Admin sessions ended by logout before their expiry. */
#define S2A_SHM_REVOKED 1024
typedef struct s2a_shm_revoked_s {
    char nonce[33];  /* hex; "" when free */
    int64_t expires; /* unix seconds */
} s2a_shm_revoked_t;

/* Lock-hold statistics of one call site (the function taking the lock). */
#define S2A_SHM_HOLD_SITES 24 /* the last row also takes any overflow */
typedef struct s2a_shm_hold_s {
    char site[44]; /* function name; "" when the row is free */
    int32_t max_pid;
    uint64_t count;
    uint64_t total_ns;
    uint64_t max_ns;
} s2a_shm_hold_t;

typedef struct s2a_shm_s {
    uint64_t magic;
    uint32_t version;
    uint32_t max_tokens;
    uint32_t max_leases;
    uint32_t token_high; /* slots [0, token_high) may be in use */
    uint32_t lease_high; /* rows [0, lease_high) may be in use */
    uint32_t lease_hint; /* where the next free-row search starts */
    uint32_t rr_cursor;  /* round-robin position */
    uint32_t repairs;    /* times a dead lock owner was repaired */
    uint32_t lease_serial;
    uint32_t _pad;
    int64_t master_pid;

    pthread_mutex_t lock;

    /*
     * Pool generation: bumped (under the lock) by every lease release and
     * every token put, removal or repair; read without the lock by the
     * schedulers' wait queues, which rescan only when it moved.
     */
    _Atomic uint32_t pool_gen;
    uint32_t _pad3;

    /* Lock-hold statistics, written by the holder just before unlocking. */
    uint64_t hold_count;
    uint64_t hold_total_ns;
    uint64_t hold_max_ns;
    int32_t hold_max_pid;   /* process that held it longest */
    char hold_max_site[44]; /* function that took it then */
    s2a_shm_hold_t hold_sites[S2A_SHM_HOLD_SITES]; /* the same per site */
    /* Lock-wait statistics: acquisitions that found the lock taken (a
     * trylock failed first) and how long they waited; written by the
     * waiter once it holds the lock. */
    uint64_t wait_count;
    uint64_t wait_total_ns;
    uint64_t wait_max_ns;

    /* Seqlock: odd while the master writes `settings`. */
    volatile uint32_t settings_seq;
    uint32_t _pad2;
    s2a_shm_settings_t settings;

    s2a_shm_worker_t workers[S2A_SHM_WORKERS];

    s2a_shm_throttle_t throttle[S2A_SHM_THROTTLE];
    /* Admin password checks started (any worker; tests read it). */
    _Atomic uint64_t login_checks;
    s2a_shm_revoked_t revoked[S2A_SHM_REVOKED];

    /* The /metrics counters (common/stats.h): atomics, no lock. */
    s2a_stats_t stats;

    /* Offsets from the start of the region. */
    size_t tokens_off;
    size_t secrets_off;
    size_t leases_off;
    size_t size;
} s2a_shm_t;

/*
 * Maps and initialises a region for `max_tokens` tokens and `max_leases`
 * leases. Returns NULL with errno set. Pages are only touched when used.
 */
s2a_shm_t *s2a_shm_create(uint32_t max_tokens, uint32_t max_leases);
void s2a_shm_destroy(s2a_shm_t *shm);

/*
 * Takes the table lock. A previous owner that died holding it is repaired
 * here (s2a_shm_repair_locked) before the lock is marked consistent.
 * Returns S2A_OK, or S2A_ERROR when the mutex is unrecoverable. `site`
 * names the caller for the lock-hold statistics (the macros below pass
 * __func__; it must be a string that outlives the hold).
 */
int s2a_shm_lock_at(s2a_shm_t *shm, const char *site);
/* The same without waiting: S2A_OK, S2A_AGAIN or S2A_ERROR. */
int s2a_shm_trylock_at(s2a_shm_t *shm, const char *site);
#define s2a_shm_lock(shm)    s2a_shm_lock_at((shm), __func__)
#define s2a_shm_trylock(shm) s2a_shm_trylock_at((shm), __func__)

/*
 * Releases the lock after adding the time it was held to the statistics
 * (hold_count, hold_total_ns, hold_max_ns and where the longest was).
 */
void s2a_shm_unlock(s2a_shm_t *shm);

/*
 * Reads the lock-hold statistics into the out-parameters (any may be
 * NULL; `site` gets at least `sitelen` bytes, NUL-terminated). Takes the
 * lock itself; the caller must not hold it. Returns S2A_OK or S2A_ERROR.
 */
int s2a_shm_hold_stats(s2a_shm_t *shm, uint64_t *count, uint64_t *total_ns,
                       uint64_t *max_ns, int32_t *max_pid, char *site,
                       size_t sitelen);

/*
 * The pool generation (see s2a_shm_t.pool_gen), read without the lock.
 * `_bump_locked` moves it; shm.c calls it on every change that can let a
 * waiting job through or end its hope (release, token put/remove, repair),
 * and a caller that edits token rows directly should call it too.
 */
uint32_t s2a_shm_pool_gen(const s2a_shm_t *shm);
void s2a_shm_pool_bump_locked(s2a_shm_t *shm);

/*
 * Rebuilds every derived field from the lease table: drops leases of dead
 * processes, recounts in-flight per token, recomputes high-water marks.
 * Caller holds the lock. Returns the number of leases dropped.
 */
int s2a_shm_repair_locked(s2a_shm_t *shm);

s2a_shm_token_t *s2a_shm_tokens(s2a_shm_t *shm);
s2a_shm_secret_t *s2a_shm_secrets(s2a_shm_t *shm);
s2a_shm_lease_t *s2a_shm_leases(s2a_shm_t *shm);

/* Settings: the master writes, workers copy out when the sequence moved. */
void s2a_shm_settings_write(s2a_shm_t *shm, const s2a_shm_settings_t *s);
uint32_t s2a_shm_settings_read(s2a_shm_t *shm, s2a_shm_settings_t *out);
uint32_t s2a_shm_settings_seq(const s2a_shm_t *shm);

/*
 * Token slots (master only, lock held). `_put` inserts or updates the slot
 * of token `t->id`, keeping in-flight counts; returns the slot or -1 when
 * the table is full. `_remove` frees the slot of `id` (its leases stay
 * valid until released). `_find` returns the slot of `id` or -1.
 */
int s2a_shm_token_put_locked(s2a_shm_t *shm, const s2a_shm_token_t *t,
                             const char *access_token);
int s2a_shm_token_remove_locked(s2a_shm_t *shm, int64_t id);
/* Sets the proxy of the token in `slot` (NULL or "" for none). */
void s2a_shm_token_set_proxy_locked(s2a_shm_t *shm, int slot,
                                    const char *proxy);
int s2a_shm_token_find_locked(s2a_shm_t *shm, int64_t id);

/* Why token `t` cannot serve `kind` now (S2A_SKIP_NONE when it can). */
s2a_skip_t s2a_shm_token_skip(const s2a_shm_token_t *t, s2a_kind_t kind,
                              int64_t now);
const char *s2a_skip_name(s2a_skip_t why);

typedef struct s2a_skip_report_s {
    int counts[9]; /* per s2a_skip_t */
    int n_tokens;
    int64_t earliest_cooldown; /* 0 when no token is cooling */
} s2a_skip_report_t;

/*
 * True when the tokens of `report` (a declined selection) leave nothing
 * to wait for: none eligible or busy, and none cooling until before
 * `deadline` (unix seconds). Time alone cannot make a disabled, invalid,
 * expired, incapable or exhausted token usable; only a pool change can,
 * and that bumps the pool generation.
 */
bool s2a_skip_hopeless(const s2a_skip_report_t *report, int64_t deadline);

/*
 * Chooses a token for `kind` under `policy` and records a lease for
 * `owner_pid`. Returns S2A_OK and fills `lease`; S2A_DECLINED when no token
 * is eligible (then `report`, if not NULL, says why); S2A_AGAIN when the
 * lease table is full. Caller holds the lock. `rnd` seeds the random
 * policy.
 */
int s2a_shm_select_locked(s2a_shm_t *shm, s2a_kind_t kind, s2a_policy_t policy,
                          int64_t now_ms, pid_t owner_pid, uint32_t rnd,
                          s2a_lease_t *lease, s2a_skip_report_t *report);

/*
 * The same, never choosing a token whose id is in `avoid[0..navoid)`.
 * `mine` (per token slot, or NULL) counts the caller's own leases: under
 * the least-busy policy, between equally busy tokens one the caller
 * already uses wins, so one worker follows all of a token's tasks and a
 * single poll serves them.
 */
int s2a_shm_select_avoid_locked(s2a_shm_t *shm, s2a_kind_t kind,
                                s2a_policy_t policy, int64_t now_ms,
                                pid_t owner_pid, uint32_t rnd,
                                const int64_t *avoid, int navoid,
                                const uint16_t *mine, s2a_lease_t *lease,
                                s2a_skip_report_t *report);

/*
 * The same for a job of an API key bound to a token group: only tokens
 * whose `group` is `group` are looked at (and reported); 0 means any.
 */
int s2a_shm_select_group_locked(s2a_shm_t *shm, s2a_kind_t kind,
                                s2a_policy_t policy, int64_t now_ms,
                                pid_t owner_pid, uint32_t rnd, uint64_t group,
                                const int64_t *avoid, int navoid,
                                const uint16_t *mine, s2a_lease_t *lease,
                                s2a_skip_report_t *report);

/*
 * Tokens outside `avoid` that could serve `kind` now or once a slot frees
 * up (eligible or busy). Zero means waiting cannot help. Lock held.
 * (The wait queue uses s2a_skip_hopeless on its selection report instead,
 * which also counts cooling tokens that come back before its deadline.)
 */
int s2a_shm_candidates_locked(s2a_shm_t *shm, s2a_kind_t kind, int64_t now,
                              const int64_t *avoid, int navoid);
/* The same within token group `group` (0: any). */
int s2a_shm_candidates_group_locked(s2a_shm_t *shm, s2a_kind_t kind,
                                    int64_t now, uint64_t group,
                                    const int64_t *avoid, int navoid);

/*
 * Records a lease on a specific slot without checking eligibility (used
 * for calls that must go through a given account). Caller holds the lock.
 */
int s2a_shm_lease_acquire_locked(s2a_shm_t *shm, int slot, s2a_kind_t kind,
                                 int64_t now_ms, pid_t owner_pid,
                                 s2a_lease_t *lease);

/*
 * Releases `lease` exactly once: a second call, or a call after the master
 * reclaimed it, finds the serial changed and does nothing. Returns S2A_OK
 * when it released, S2A_DECLINED when it was already gone.
 */
int s2a_shm_lease_release_locked(s2a_shm_t *shm, s2a_lease_t *lease);

/* Releases every lease of `pid` (a dead worker). Returns how many. */
int s2a_shm_release_owner_locked(s2a_shm_t *shm, pid_t pid);

/* Leases currently held (by `pid`, or by anyone when pid is 0). */
int s2a_shm_lease_count_locked(s2a_shm_t *shm, pid_t pid);

/*
 * Login throttling (lock held). Policy, per address: 5 attempts within
 * 15 minutes lock the address for 1 minute, doubling with every further
 * attempt up to 1 hour. Per user name (gentler, since anyone can send
 * it): 20 attempts within 15 minutes from any addresses lock the name
 * for 1 minute, doubling up to 15 minutes; while it is locked an address
 * with no attempt of its own in its window still gets one, so a flood
 * from elsewhere cannot keep the real admin out.
 *
 * `_reserve` counts an attempt for `addr` (and `user`, unless NULL)
 * before the password is checked, so parallel attempts cannot outrun the
 * count. It returns 0 when the attempt may go ahead (then `locked` says
 * whether it started a lock: persist the rows), or the seconds to wait
 * (nothing counted). `_check` returns the wait of one row without
 * counting; `_fail` counts one attempt for an address row and returns the
 * wait it imposes; `_reset` forgets a row after a successful login.
 */
int64_t s2a_shm_throttle_reserve_locked(s2a_shm_t *shm, const uint8_t addr[16],
                                        const uint8_t *user, int64_t now,
                                        bool *locked);
int64_t s2a_shm_throttle_check_locked(s2a_shm_t *shm, const uint8_t key[16],
                                      int64_t now);
int64_t s2a_shm_throttle_fail_locked(s2a_shm_t *shm, const uint8_t key[16],
                                     int64_t now);
void s2a_shm_throttle_reset_locked(s2a_shm_t *shm, const uint8_t key[16]);

/*
 * Copies row `key` into `out` (S2A_OK) or S2A_DECLINED when it has none
 * (persistence of the rows a lock started). `_put` stores a row read back
 * from the database at start, keeping the later lock of the two.
 */
int s2a_shm_throttle_get_locked(s2a_shm_t *shm, const uint8_t key[16],
                                s2a_shm_throttle_t *out);
void s2a_shm_throttle_put_locked(s2a_shm_t *shm, const s2a_shm_throttle_t *row);

/*
 * Revoked admin sessions (lock held). `_add` returns S2A_OK, or
 * S2A_DECLINED when the table is full of unexpired entries.
 */
bool s2a_shm_revoked_has_locked(s2a_shm_t *shm, const char *nonce, int64_t now);
int s2a_shm_revoked_add_locked(s2a_shm_t *shm, const char *nonce,
                               int64_t expires, int64_t now);

#endif /* S2A_SHM_H */
