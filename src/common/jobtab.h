/*
 * jobtab.h: the live job table, a shared-memory region of fixed-size job
 * slots that lets any worker answer GET /v1/videos/{id} without asking
 * the master (docs/locking.md, "The job table").
 *
 * The master maps it before forking (s2a_jobtab_create, `[limits]
 * job_slots`); workers inherit the mapping through s2a_jobs. A job's
 * worker writes its slot from the same fields it records in the task row
 * (s2a_jobtab_record); the master writes the slots of the rows it hands
 * to a worker or closes for a dead one (s2a_jobtab_put_row) and drops
 * the slot of a deleted row (s2a_jobtab_drop).
 *
 * Layout: a header with magic, sizes, its own robust process-shared mutex
 * (never the token table's) and the counters; an open-addressing index
 * (linear probing over a hash of the id, backward-shift deletion) of
 * twice the slot count rounded up to a power of two; the slots. Nothing
 * in it is a pointer. Critical sections copy one slot in or out, or link
 * a slot into or out of the index and the finished list, nothing else.
 *
 * When every slot is taken, a new job takes the slot of the job that
 * finished first (the head of the finished list); a job that has not
 * finished is never evicted, and a job that finds no slot is simply not
 * in the table: readers then ask the master, as they do for a slot
 * marked S2A_JOB_F_INCOMPLETE (something it should hold did not fit).
 */
#ifndef S2A_JOBTAB_H
#define S2A_JOBTAB_H

#include "common/core.h"
#include "common/shm.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#define S2A_JOBTAB_MAGIC   0x5332414a4f425431ULL /* "S2AJOBT1" */
#define S2A_JOBTAB_VERSION 1
#define S2A_JOB_ID_MAX     32   /* job_ + 24 hex digits, NUL included */
#define S2A_JOB_TEXT       1752 /* the prompt, URLs and error message */

/* The task row's status. */
typedef enum {
    S2A_JOB_QUEUED = 0,
    S2A_JOB_RUNNING,
    S2A_JOB_SUCCEEDED,
    S2A_JOB_FAILED,
    S2A_JOB_CANCELLED,
    S2A_JOB_SUBMITTING, /* a call to Sora may be out (a Video says queued) */
    S2A_JOB_NSTATUS
} s2a_job_status_t;

/* The variable-length texts of a slot, packed into `text`. */
typedef enum {
    S2A_JOB_T_PROMPT = 0,
    S2A_JOB_T_URL,       /* result_urls[0] */
    S2A_JOB_T_THUMBNAIL, /* params.thumbnail_url */
    S2A_JOB_T_ERROR,     /* error_message */
    S2A_JOB_NTEXT
} s2a_job_text_t;

#define S2A_JOB_F_INCOMPLETE 0x01 /* something did not fit: ask the master */
#define S2A_JOB_F_TEXT(t)    (0x02 << (t)) /* text `t` is present */

/*
 * A job as its slot holds it: the columns a Video object is built from.
 * Fixed strings are "" when the row has no value.
 */
typedef struct s2a_job_s {
    char id[S2A_JOB_ID_MAX];
    char model[40];        /* the row's model (upstream id) */
    char api_model[40];    /* params.api_model: the model as reported */
    char size[16];         /* params.size */
    char remixed_from[32]; /* params.remixed_from_video_id */
    char error_code[40];
    int64_t created;   /* unix seconds */
    int64_t completed; /* unix seconds, 0 while unknown */
    int64_t owner;     /* API key id (fields "owner", else 1) */
    double progress;   /* percent, as recorded */
    int32_t worker_pid;
    uint8_t kind;   /* s2a_kind_t */
    uint8_t status; /* s2a_job_status_t */
    uint8_t flags;  /* S2A_JOB_F_* */
    uint8_t _pad;
    uint16_t text_off[S2A_JOB_NTEXT];
    uint16_t text_used; /* bytes of `text` in use */
    uint16_t _pad2[3];
    char text[S2A_JOB_TEXT]; /* NUL-terminated strings at text_off[] */
} s2a_job_t;

/* Private to jobtab.c; exposed for the size of the region only. */
typedef struct s2a_jobtab_slot_s {
    uint64_t version;  /* the table's write serial at the last write */
    uint64_t finished; /* finished-list serial, 0 while unfinished */
    uint32_t writing;  /* 1 while a copy is under way (repair drops it) */
    uint32_t hash;     /* of job.id; 0 with `used` 0 when free */
    uint32_t used;
    int32_t prev, next; /* finished list, or free list (`next`) */
    uint32_t _pad;
    s2a_job_t job;
} s2a_jobtab_slot_t;

typedef struct s2a_jobtab_entry_s {
    uint32_t hash;
    uint32_t slot; /* slot index + 1; 0: the entry is empty */
} s2a_jobtab_entry_t;

typedef struct s2a_jobtab_s {
    uint64_t magic;
    uint32_t version;
    uint32_t slots;      /* capacity */
    uint32_t index_mask; /* index entries - 1 (a power of two - 1) */
    uint32_t high;       /* slots [0, high) have been used */
    int32_t free_head;   /* recycled slots */
    int32_t old_head;    /* finished list: the first finished job */
    int32_t old_tail;
    uint32_t repairs; /* times a dead lock owner was repaired */
    uint64_t finish_serial;
    uint64_t write_serial; /* versions: (id, version) names one content */
    pthread_mutex_t lock;
    _Atomic uint32_t used;      /* slots holding a job (written locked) */
    _Atomic uint32_t refused;   /* jobs that found no slot */
    _Atomic uint64_t hits;      /* retrieves answered from the table */
    _Atomic uint64_t fallbacks; /* retrieves that asked the master */
    /* Lock holds: count, total and longest (written under the lock). */
    _Atomic uint64_t hold_count;
    _Atomic uint64_t hold_total_ns;
    _Atomic uint64_t hold_max_ns;
    size_t index_off;
    size_t slots_off;
    size_t scratch_off; /* uint32 per slot, for the repair */
    size_t size;
} s2a_jobtab_t;

/* The daemon's table: set by the master before it forks, NULL when
 * job_slots is 0. Every function below accepts NULL as "no table". */
extern s2a_jobtab_t *s2a_jobs;

/* Bytes a table of `slots` slots takes. */
size_t s2a_jobtab_size(uint32_t slots);

/*
 * Lays a table of `slots` (>= 1) out in `mem` (s2a_jobtab_size bytes,
 * zeroed, any memory the users share: the unit tests use the heap).
 * Returns it, or NULL with errno set when the mutex cannot be set up.
 */
s2a_jobtab_t *s2a_jobtab_init(void *mem, uint32_t slots);

/*
 * Maps a shared anonymous region for `slots` slots and lays it out.
 * Returns NULL with errno set. Untouched slot pages cost no memory.
 * `_destroy` unmaps a table made so.
 */
s2a_jobtab_t *s2a_jobtab_create(uint32_t slots);
void s2a_jobtab_destroy(s2a_jobtab_t *jt);

/*
 * Copies the slot of `id` into `out` and its version into `version` (may
 * be NULL): versions are never reused, so an id and a version name one
 * content for good (a reader may cache what it built from it). Returns S2A_OK, S2A_DECLINED when the id has no slot, or
 * S2A_ERROR when the lock is unrecoverable.
 */
int s2a_jobtab_get(s2a_jobtab_t *jt, const char *id, s2a_job_t *out,
                   uint64_t *version);

/*
 * Stores `job` (borrowed) in the slot of `job->id`: `_put` always (a new
 * slot when it has none), `_replace` only when the slot is still at
 * `version` (0: only when the id has no slot yet), else S2A_AGAIN.
 * Returns S2A_OK, S2A_DECLINED when no slot can be had (every slot holds
 * an unfinished job), S2A_ERROR when the lock is unrecoverable.
 */
int s2a_jobtab_put(s2a_jobtab_t *jt, const s2a_job_t *job);
int s2a_jobtab_replace(s2a_jobtab_t *jt, const s2a_job_t *job,
                       uint64_t version);

/* Frees the slot of `id`. S2A_OK, S2A_DECLINED when it had none. */
int s2a_jobtab_drop(s2a_jobtab_t *jt, const char *id);

/*
 * Ids of unfinished jobs (queued, running) whose slot says `pid` runs
 * them, for the master when that worker died: fills up to `max` into
 * `ids`, scanning from slot *cursor on, and moves *cursor past what it
 * scanned (call again until it returns 0 with *cursor at the end). The
 * lock is taken per stretch of slots, not for the whole scan.
 */
int s2a_jobtab_unfinished(s2a_jobtab_t *jt, pid_t pid,
                          char (*ids)[S2A_JOB_ID_MAX], int max,
                          uint32_t *cursor);

/*
 * The worker's hook: applies the task-record `fields` (borrowed; the
 * object gen.c sends the master with op task_record) to the slot of job
 * `id` of `kind`, as this process's job. A record that names a model and
 * a status starts a slot; others update one. Only video jobs are kept
 * (images have no retrieve route). Returns S2A_OK, S2A_DECLINED when
 * nothing was stored.
 */
int s2a_jobtab_record(s2a_jobtab_t *jt, const char *id, s2a_kind_t kind,
                      json_t *fields);

/*
 * The master's: stores a video task row (`row`, borrowed, as
 * s2a_db_video_get returns it: params as JSON text, created/completed)
 * as run by `pid`, replacing whatever the slot held.
 */
int s2a_jobtab_put_row(s2a_jobtab_t *jt, json_t *row, pid_t pid);

/* Text `t` of `job`, or NULL when it has none. */
const char *s2a_job_text(const s2a_job_t *job, s2a_job_text_t t);

/* The task row's name of a status ("queued", "running", ...). */
const char *s2a_job_status_name(int status);

/* Slots in use, and the capacity (0 without a table). */
uint32_t s2a_jobtab_used(const s2a_jobtab_t *jt);
uint32_t s2a_jobtab_slots(const s2a_jobtab_t *jt);

/* Retrieve counters for /metrics: answered from the table, or not. */
void s2a_jobtab_count(s2a_jobtab_t *jt, bool hit);

#endif /* S2A_JOBTAB_H */
