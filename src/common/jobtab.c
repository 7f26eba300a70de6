/*
 * jobtab.c: the live job table (jobtab.h, docs/locking.md "The job
 * table"): the index, the slots, eviction of the first finished job,
 * the repair after a lock owner's death, and the two writers' views of
 * a job (a task record's fields, a task row).
 */
#include "common/jobtab.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

s2a_jobtab_t *s2a_jobs;

/* Two KiB a slot: the page arithmetic of the man page and the docs. */
_Static_assert(sizeof(s2a_jobtab_slot_t) == 2048, "a slot is 2 KiB");

#define SCAN_STRETCH 256 /* slots looked at per lock by _unfinished */
#define TRIES        4   /* optimistic writes before giving up */

/* Bytes of a job up to its text, and with `used` bytes of text. */
#define JOB_FIXED       offsetof(s2a_job_t, text)
#define JOB_BYTES(used) (JOB_FIXED + (size_t) (used))

/* A repair to report once the lock is released (process-local). */
static int repaired = -1;
/* When this process took the lock (each has one thread using it). */
static uint64_t held_since_ns;

static const char *const status_names[S2A_JOB_NSTATUS] = {
    "queued", "running", "succeeded", "failed", "cancelled", "submitting"
};

static size_t
align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

/* Index entries: a power of two, at least twice the slots, so that a
 * probe always meets an empty entry. */
static uint32_t
index_entries(uint32_t slots)
{
    uint32_t n = 2;

    while (n < 2 * (uint64_t) slots) {
        n <<= 1;
    }
    return n;
}

/* FNV-1a over the id bytes. */
static uint32_t
hash_id(const char *id)
{
    uint32_t h = 2166136261u;

    for (; *id != '\0'; id++) {
        h ^= (uint8_t) *id;
        h *= 16777619u;
    }
    return h;
}

static s2a_jobtab_entry_t *
entries(s2a_jobtab_t *jt)
{
    return (s2a_jobtab_entry_t *) (void *) ((char *) jt + jt->index_off);
}

static s2a_jobtab_slot_t *
slots(s2a_jobtab_t *jt)
{
    return (s2a_jobtab_slot_t *) (void *) ((char *) jt + jt->slots_off);
}

static bool
is_final(int status)
{
    return status == S2A_JOB_SUCCEEDED || status == S2A_JOB_FAILED
        || status == S2A_JOB_CANCELLED;
}

size_t
s2a_jobtab_size(uint32_t n)
{
    size_t size = align_up(sizeof(s2a_jobtab_t), 64);

    size +=
        align_up((size_t) index_entries(n) * sizeof(s2a_jobtab_entry_t), 64);
    size += align_up((size_t) n * sizeof(uint32_t), 64);
    return align_up(size, 4096) + (size_t) n * sizeof(s2a_jobtab_slot_t);
}

s2a_jobtab_t *
s2a_jobtab_init(void *mem, uint32_t n)
{
    pthread_mutexattr_t attr;
    s2a_jobtab_t *jt = mem;
    size_t off;
    int rc;

    off = align_up(sizeof(s2a_jobtab_t), 64);
    jt->index_off = off;
    off += align_up((size_t) index_entries(n) * sizeof(s2a_jobtab_entry_t), 64);
    jt->scratch_off = off;
    off += align_up((size_t) n * sizeof(uint32_t), 64);
    /* Slots start on a page: untouched ones stay out of memory. */
    jt->slots_off = align_up(off, 4096);
    jt->size = s2a_jobtab_size(n);
    jt->magic = S2A_JOBTAB_MAGIC;
    jt->version = S2A_JOBTAB_VERSION;
    jt->slots = n;
    jt->index_mask = index_entries(n) - 1;
    jt->free_head = -1;
    jt->old_head = -1;
    jt->old_tail = -1;
    if ((rc = pthread_mutexattr_init(&attr)) != 0) {
        errno = rc;
        return NULL;
    }
    if ((rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) != 0
        || (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) != 0
        || (rc = pthread_mutex_init(&jt->lock, &attr)) != 0)
    {
        pthread_mutexattr_destroy(&attr);
        errno = rc;
        return NULL;
    }
    pthread_mutexattr_destroy(&attr);
    return jt;
}

s2a_jobtab_t *
s2a_jobtab_create(uint32_t n)
{
    size_t size = s2a_jobtab_size(n);
    void *mem;
    int err;

    mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
    if (mem == MAP_FAILED) {
        return NULL;
    }
    /* Anonymous pages are zero: the layout writes the header only. */
    if (s2a_jobtab_init(mem, n) == NULL) {
        err = errno;
        munmap(mem, size);
        errno = err;
        return NULL;
    }
    return mem;
}

void
s2a_jobtab_destroy(s2a_jobtab_t *jt)
{
    if (jt != NULL) {
        munmap(jt, jt->size);
    }
}

/* ---------------------------------------------------------------------
 * Index and lists (lock held)
 */

/* The index position of `id` (hash `h`), or -1. */
static int64_t
index_find_locked(s2a_jobtab_t *jt, const char *id, uint32_t h)
{
    s2a_jobtab_entry_t *e = entries(jt);
    s2a_jobtab_slot_t *s = slots(jt);
    uint32_t i = h & jt->index_mask;

    while (e[i].slot != 0) {
        if (e[i].hash == h && e[i].slot <= jt->slots
            && strcmp(s[e[i].slot - 1].job.id, id) == 0)
        {
            return i;
        }
        i = (i + 1) & jt->index_mask;
    }
    return -1;
}

/* Enters slot `si` (hash `h`, not in the index yet). */
static void
index_add_locked(s2a_jobtab_t *jt, uint32_t si, uint32_t h)
{
    s2a_jobtab_entry_t *e = entries(jt);
    uint32_t i = h & jt->index_mask;

    while (e[i].slot != 0) {
        i = (i + 1) & jt->index_mask;
    }
    e[i].hash = h;
    e[i].slot = si + 1;
}

/*
 * Empties entry `i` and shifts the entries of its probe run back over
 * the hole, so that no tombstone is needed: an entry moves back to `i`
 * unless its home lies cyclically in (i, j].
 */
static void
index_del_locked(s2a_jobtab_t *jt, uint32_t i)
{
    s2a_jobtab_entry_t *e = entries(jt);
    uint32_t m = jt->index_mask, j = i, home;

    for (;;) {
        j = (j + 1) & m;
        if (e[j].slot == 0) {
            break;
        }
        home = e[j].hash & m;
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }
        e[i] = e[j];
        i = j;
    }
    e[i].hash = 0;
    e[i].slot = 0;
}

/* The index position holding slot `si`. */
static int64_t
index_of_slot_locked(s2a_jobtab_t *jt, uint32_t si)
{
    s2a_jobtab_entry_t *e = entries(jt);
    uint32_t i = slots(jt)[si].hash & jt->index_mask;

    while (e[i].slot != 0) {
        if (e[i].slot == si + 1) {
            return i;
        }
        i = (i + 1) & jt->index_mask;
    }
    return -1;
}

static void
old_unlink_locked(s2a_jobtab_t *jt, int32_t si)
{
    s2a_jobtab_slot_t *s = slots(jt);

    if (s[si].finished == 0) {
        return;
    }
    if (s[si].prev >= 0) {
        s[s[si].prev].next = s[si].next;
    } else {
        jt->old_head = s[si].next;
    }
    if (s[si].next >= 0) {
        s[s[si].next].prev = s[si].prev;
    } else {
        jt->old_tail = s[si].prev;
    }
    s[si].prev = s[si].next = -1;
    s[si].finished = 0;
}

/* Appends `si` to the finished list (it finished last). */
static void
old_append_locked(s2a_jobtab_t *jt, int32_t si)
{
    s2a_jobtab_slot_t *s = slots(jt);

    s[si].finished = ++jt->finish_serial;
    s[si].next = -1;
    s[si].prev = jt->old_tail;
    if (jt->old_tail >= 0) {
        s[jt->old_tail].next = si;
    } else {
        jt->old_head = si;
    }
    jt->old_tail = si;
}

/* Takes slot `si` out of the index and the finished list. */
static void
slot_clear_locked(s2a_jobtab_t *jt, int32_t si)
{
    s2a_jobtab_slot_t *s = &slots(jt)[si];
    int64_t pos = index_of_slot_locked(jt, (uint32_t) si);

    if (pos >= 0) {
        index_del_locked(jt, (uint32_t) pos);
    }
    old_unlink_locked(jt, si);
    s->used = 0;
    s->hash = 0;
    s->job.id[0] = '\0';
    atomic_store_explicit(&jt->used, atomic_load(&jt->used) - 1,
                          memory_order_relaxed);
}

/* A slot for a new job: a recycled one, a never used one, or the one of
 * the job that finished first. -1 when every slot runs a job. */
static int32_t
slot_alloc_locked(s2a_jobtab_t *jt)
{
    s2a_jobtab_slot_t *s = slots(jt);
    int32_t si;

    if (jt->free_head >= 0) {
        si = jt->free_head;
        jt->free_head = s[si].next;
        return si;
    }
    if (jt->high < jt->slots) {
        si = (int32_t) jt->high++;
        s[si].prev = s[si].next = -1;
        return si;
    }
    if (jt->old_head >= 0) {
        si = jt->old_head;
        slot_clear_locked(jt, si);
        return si;
    }
    return -1;
}

/* Copies `job` into slot `s`, marked so a death mid-copy is seen. */
static void
slot_write_locked(s2a_jobtab_t *jt, s2a_jobtab_slot_t *s, const s2a_job_t *job)
{
    size_t used = job->text_used <= S2A_JOB_TEXT ? job->text_used : 0;

    s->writing = 1;
    atomic_thread_fence(memory_order_release);
    memcpy(&s->job, job, JOB_BYTES(used));
    if (used != job->text_used) {
        /* Not a job a writer made: keep it, but never answer from it. */
        s->job.text_used = 0;
        s->job.flags |= S2A_JOB_F_INCOMPLETE;
    }
    atomic_thread_fence(memory_order_release);
    s->writing = 0;
    s->version = ++jt->write_serial;
}

/* ---------------------------------------------------------------------
 * The lock and its repair
 */

/* The slots cmp_finished compares (set by the repair, process-local). */
static const s2a_jobtab_slot_t *sorting;

static int
cmp_finished(const void *a, const void *b)
{
    uint64_t x = sorting[*(const uint32_t *) a].finished;
    uint64_t y = sorting[*(const uint32_t *) b].finished;

    return x < y ? -1 : x > y;
}

/* Whether slot `s` holds a whole job (a dead writer may have left it
 * torn, or its words may be anything after a crash mid-update). */
static bool
slot_sane(const s2a_jobtab_slot_t *s)
{
    return s->used && !s->writing && s->job.id[0] != '\0'
        && memchr(s->job.id, '\0', sizeof(s->job.id)) != NULL
        && s->job.status < S2A_JOB_NSTATUS && s->job.text_used <= S2A_JOB_TEXT;
}

/*
 * Rebuilds everything but the slots' jobs: the index, the free list, the
 * finished list (in the order the jobs finished) and the count, from the
 * slots that hold a whole job. A slot a dead writer left half-copied is
 * freed: its job is asked of the master until it is written again.
 */
static void
repair_locked(s2a_jobtab_t *jt)
{
    s2a_jobtab_slot_t *s = slots(jt);
    uint32_t *order = (uint32_t *) (void *) ((char *) jt + jt->scratch_off);
    uint32_t i, n = 0, used = 0;

    if (jt->high > jt->slots) {
        jt->high = jt->slots;
    }
    memset(entries(jt), 0,
           ((size_t) jt->index_mask + 1) * sizeof(s2a_jobtab_entry_t));
    jt->free_head = jt->old_head = jt->old_tail = -1;
    for (i = jt->high; i-- > 0;) {
        s[i].prev = s[i].next = -1;
        if (slot_sane(&s[i])) {
            s[i].hash = hash_id(s[i].job.id);
            if (index_find_locked(jt, s[i].job.id, s[i].hash) < 0) {
                index_add_locked(jt, i, s[i].hash);
                used++;
                if (is_final(s[i].job.status)) {
                    order[n++] = i;
                }
                continue;
            }
        }
        s[i].used = 0;
        s[i].writing = 0;
        s[i].hash = 0;
        s[i].finished = 0;
        s[i].job.id[0] = '\0';
        s[i].next = jt->free_head;
        jt->free_head = (int32_t) i;
    }
    sorting = s;
    qsort(order, n, sizeof(order[0]), cmp_finished);
    for (i = 0; i < n; i++) {
        old_append_locked(jt, (int32_t) order[i]);
    }
    atomic_store_explicit(&jt->used, used, memory_order_relaxed);
}

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
jt_lock(s2a_jobtab_t *jt)
{
    int rc = pthread_mutex_lock(&jt->lock);

    if (rc == 0 || rc == EOWNERDEAD) {
        held_since_ns = mono_ns();
    }
    if (rc == 0) {
        return S2A_OK;
    }
    if (rc == EOWNERDEAD) {
        repair_locked(jt);
        jt->repairs++;
        pthread_mutex_consistent(&jt->lock);
        repaired = (int) atomic_load(&jt->used);
        return S2A_OK;
    }
    s2a_log(LOG_CRIT, rc, "pthread_mutex_lock(jobtab) failed");
    return S2A_ERROR;
}

static void
jt_unlock(s2a_jobtab_t *jt)
{
    uint64_t ns = mono_ns() - held_since_ns;

    /* Still under the lock: one writer at a time; atomics for /metrics,
     * which reads them without it. */
    atomic_store_explicit(
        &jt->hold_count,
        atomic_load_explicit(&jt->hold_count, memory_order_relaxed) + 1,
        memory_order_relaxed);
    atomic_store_explicit(
        &jt->hold_total_ns,
        atomic_load_explicit(&jt->hold_total_ns, memory_order_relaxed) + ns,
        memory_order_relaxed);
    if (ns > atomic_load_explicit(&jt->hold_max_ns, memory_order_relaxed)) {
        atomic_store_explicit(&jt->hold_max_ns, ns, memory_order_relaxed);
    }
    pthread_mutex_unlock(&jt->lock);
    if (repaired >= 0) {
        s2a_log(LOG_WARNING, 0,
                "job table repaired after its lock owner died (%d jobs kept)",
                repaired);
        repaired = -1;
    }
}

/* ---------------------------------------------------------------------
 * Slots
 */

static bool
id_ok(const char *id)
{
    return id != NULL && id[0] != '\0' && strlen(id) < S2A_JOB_ID_MAX;
}

int
s2a_jobtab_get(s2a_jobtab_t *jt, const char *id, s2a_job_t *out,
               uint64_t *version)
{
    s2a_jobtab_slot_t *s;
    uint32_t h;
    int64_t pos;
    size_t used;

    if (jt == NULL || !id_ok(id)) {
        return S2A_DECLINED;
    }
    h = hash_id(id);
    if (jt_lock(jt) != S2A_OK) {
        return S2A_ERROR;
    }
    pos = index_find_locked(jt, id, h);
    if (pos < 0) {
        jt_unlock(jt);
        return S2A_DECLINED;
    }
    s = &slots(jt)[entries(jt)[pos].slot - 1];
    used = s->job.text_used <= S2A_JOB_TEXT ? s->job.text_used : 0;
    memcpy(out, &s->job, JOB_BYTES(used));
    out->text_used = (uint16_t) used;
    if (version != NULL) {
        *version = s->version;
    }
    jt_unlock(jt);
    return S2A_OK;
}

/* `_put` (conditional false) and `_replace`. */
static int
store(s2a_jobtab_t *jt, const s2a_job_t *job, bool conditional,
      uint64_t version)
{
    s2a_jobtab_slot_t *s;
    uint32_t h;
    int64_t pos;
    int32_t si;

    if (jt == NULL || memchr(job->id, '\0', sizeof(job->id)) == NULL
        || job->id[0] == '\0' || job->status >= S2A_JOB_NSTATUS)
    {
        return S2A_DECLINED;
    }
    h = hash_id(job->id);
    if (jt_lock(jt) != S2A_OK) {
        return S2A_ERROR;
    }
    pos = index_find_locked(jt, job->id, h);
    if (pos >= 0) {
        si = (int32_t) entries(jt)[pos].slot - 1;
        if (conditional && slots(jt)[si].version != version) {
            jt_unlock(jt);
            return S2A_AGAIN;
        }
    } else {
        if (conditional && version != 0) {
            jt_unlock(jt); /* it went meanwhile */
            return S2A_AGAIN;
        }
        si = slot_alloc_locked(jt);
        if (si < 0) {
            jt_unlock(jt);
            atomic_fetch_add_explicit(&jt->refused, 1, memory_order_relaxed);
            return S2A_DECLINED;
        }
        s = &slots(jt)[si];
        s->used = 1;
        s->hash = h;
        s->finished = 0;
        s->prev = s->next = -1;
        index_add_locked(jt, (uint32_t) si, h);
        atomic_store_explicit(&jt->used, atomic_load(&jt->used) + 1,
                              memory_order_relaxed);
    }
    s = &slots(jt)[si];
    slot_write_locked(jt, s, job);
    if (is_final(job->status) && s->finished == 0) {
        old_append_locked(jt, si);
    } else if (!is_final(job->status)) {
        old_unlink_locked(jt, si);
    }
    jt_unlock(jt);
    return S2A_OK;
}

int
s2a_jobtab_put(s2a_jobtab_t *jt, const s2a_job_t *job)
{
    return store(jt, job, false, 0);
}

int
s2a_jobtab_replace(s2a_jobtab_t *jt, const s2a_job_t *job, uint64_t version)
{
    return store(jt, job, true, version);
}

int
s2a_jobtab_drop(s2a_jobtab_t *jt, const char *id)
{
    s2a_jobtab_slot_t *s;
    int64_t pos;
    int32_t si;

    if (jt == NULL || !id_ok(id)) {
        return S2A_DECLINED;
    }
    if (jt_lock(jt) != S2A_OK) {
        return S2A_ERROR;
    }
    pos = index_find_locked(jt, id, hash_id(id));
    if (pos < 0) {
        jt_unlock(jt);
        return S2A_DECLINED;
    }
    si = (int32_t) entries(jt)[pos].slot - 1;
    s = slots(jt);
    slot_clear_locked(jt, si);
    s[si].next = jt->free_head;
    jt->free_head = si;
    jt_unlock(jt);
    return S2A_OK;
}

int
s2a_jobtab_unfinished(s2a_jobtab_t *jt, pid_t pid, char (*ids)[S2A_JOB_ID_MAX],
                      int max, uint32_t *cursor)
{
    s2a_jobtab_slot_t *s;
    uint32_t end;
    int n = 0;

    if (jt == NULL) {
        return 0;
    }
    while (n < max) {
        if (jt_lock(jt) != S2A_OK) {
            break;
        }
        s = slots(jt);
        end = *cursor + SCAN_STRETCH < jt->high ? *cursor + SCAN_STRETCH
                                                : jt->high;
        for (; *cursor < end && n < max; (*cursor)++) {
            if (s[*cursor].used && s[*cursor].job.worker_pid == (int32_t) pid
                && !is_final(s[*cursor].job.status))
            {
                memcpy(ids[n++], s[*cursor].job.id, S2A_JOB_ID_MAX);
            }
        }
        end = jt->high;
        jt_unlock(jt);
        if (*cursor >= end) {
            break;
        }
    }
    return n;
}

uint32_t
s2a_jobtab_used(const s2a_jobtab_t *jt)
{
    return jt != NULL ? atomic_load_explicit(&jt->used, memory_order_relaxed)
                      : 0;
}

uint32_t
s2a_jobtab_slots(const s2a_jobtab_t *jt)
{
    return jt != NULL ? jt->slots : 0;
}

void
s2a_jobtab_count(s2a_jobtab_t *jt, bool hit)
{
    if (jt != NULL) {
        atomic_fetch_add_explicit(hit ? &jt->hits : &jt->fallbacks, 1,
                                  memory_order_relaxed);
    }
}

/* ---------------------------------------------------------------------
 * Jobs: texts, and the writers' fields
 */

const char *
s2a_job_text(const s2a_job_t *job, s2a_job_text_t t)
{
    size_t off = job->text_off[t];

    if (!(job->flags & S2A_JOB_F_TEXT(t)) || job->text_used > S2A_JOB_TEXT
        || off >= job->text_used
        || memchr(job->text + off, '\0', job->text_used - off) == NULL)
    {
        return NULL;
    }
    return job->text + off;
}

const char *
s2a_job_status_name(int status)
{
    return status >= 0 && status < S2A_JOB_NSTATUS ? status_names[status]
                                                   : "failed";
}

static int
status_of(const char *name)
{
    int i;

    for (i = 0; name != NULL && i < S2A_JOB_NSTATUS; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/*
 * Packs texts `t` (NULL: absent; they may point into job->text) into
 * the job. One that does not fit is left out and the job marked
 * incomplete.
 */
static void
pack_texts(s2a_job_t *job, const char *const t[S2A_JOB_NTEXT])
{
    char buf[S2A_JOB_TEXT];
    size_t used = 0, len;
    int i;

    for (i = 0; i < S2A_JOB_NTEXT; i++) {
        job->flags &= (uint8_t) ~S2A_JOB_F_TEXT(i);
        job->text_off[i] = 0;
        if (t[i] == NULL) {
            continue;
        }
        len = strlen(t[i]);
        if (len + 1 > sizeof(buf) - used) {
            job->flags |= S2A_JOB_F_INCOMPLETE;
            continue;
        }
        memcpy(buf + used, t[i], len + 1);
        job->text_off[i] = (uint16_t) used;
        job->flags |= (uint8_t) S2A_JOB_F_TEXT(i);
        used += len + 1;
    }
    memcpy(job->text, buf, used);
    job->text_used = (uint16_t) used;
}

/*
 * A column value into fixed string `dst` (`cap` bytes). Null is "no
 * value" (""); an empty string or one too long cannot be told from it
 * or kept, and so makes the job incomplete, as does a value of another
 * type.
 */
static void
set_fixed(s2a_job_t *job, char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);

    dst[0] = '\0';
    if (json_is_null(v)) {
        return;
    }
    if (s == NULL || s[0] == '\0' || strlen(s) >= cap) {
        job->flags |= S2A_JOB_F_INCOMPLETE;
        return;
    }
    memcpy(dst, s, strlen(s) + 1);
}

/* A text column: its C string (the database keeps what precedes a NUL),
 * or NULL; another type makes the job incomplete. */
static const char *
text_of(s2a_job_t *job, json_t *v)
{
    if (!json_is_null(v) && !json_is_string(v)) {
        job->flags |= S2A_JOB_F_INCOMPLETE;
    }
    return json_string_value(v);
}

/*
 * Applies `fields` (task-row columns, as a record or a row carries them)
 * to `job`, as the database would to the row: each column present
 * replaces the value; `params` replaces every value read from it.
 * `creating`: the row is new (created_at is only written then).
 */
static void
apply_fields(s2a_job_t *job, json_t *fields, bool creating)
{
    const char *t[S2A_JOB_NTEXT];
    json_t *v, *params = NULL;
    int i, st;

    for (i = 0; i < S2A_JOB_NTEXT; i++) {
        t[i] = s2a_job_text(job, (s2a_job_text_t) i);
    }
    if ((v = json_object_get(fields, "status")) != NULL) {
        st = status_of(json_string_value(v));
        if (st < 0) {
            job->flags |= S2A_JOB_F_INCOMPLETE;
        } else {
            job->status = (uint8_t) st;
        }
    }
    if ((v = json_object_get(fields, "progress")) != NULL) {
        job->progress = json_number_value(v);
    }
    if ((v = json_object_get(fields, "model")) != NULL) {
        set_fixed(job, job->model, sizeof(job->model), v);
    }
    if ((v = json_object_get(fields, "error_code")) != NULL) {
        set_fixed(job, job->error_code, sizeof(job->error_code), v);
    }
    if ((v = json_object_get(fields, "prompt")) != NULL) {
        t[S2A_JOB_T_PROMPT] = text_of(job, v);
    }
    if ((v = json_object_get(fields, "error_message")) != NULL) {
        t[S2A_JOB_T_ERROR] = text_of(job, v);
    }
    if ((v = json_object_get(fields, "result_urls")) != NULL) {
        t[S2A_JOB_T_URL] = json_string_value(json_array_get(v, 0));
    }
    if (creating && json_is_integer(v = json_object_get(fields, "created_at")))
    {
        job->created = json_integer_value(v);
    }
    if ((v = json_object_get(fields, "completed_at")) != NULL) {
        job->completed = json_integer_value(v);
    }
    if (json_is_integer(v = json_object_get(fields, "owner"))) {
        job->owner = json_integer_value(v);
    }
    if ((v = json_object_get(fields, "params")) != NULL) {
        /* A row holds it as text, a record as an object. */
        params = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL)
                                   : json_incref(v);
        if (!json_is_null(v) && !json_is_object(params)) {
            job->flags |= S2A_JOB_F_INCOMPLETE;
        }
        job->api_model[0] = job->size[0] = job->remixed_from[0] = '\0';
        t[S2A_JOB_T_THUMBNAIL] = NULL;
        if (json_is_object(params)) {
            if ((v = json_object_get(params, "api_model")) != NULL) {
                set_fixed(job, job->api_model, sizeof(job->api_model), v);
            }
            if ((v = json_object_get(params, "size")) != NULL) {
                set_fixed(job, job->size, sizeof(job->size), v);
            }
            if ((v = json_object_get(params, "remixed_from_video_id")) != NULL)
            {
                set_fixed(job, job->remixed_from, sizeof(job->remixed_from), v);
            }
            t[S2A_JOB_T_THUMBNAIL] =
                json_string_value(json_object_get(params, "thumbnail_url"));
        }
    }
    pack_texts(job, t);
    json_decref(params); /* t[] may point into it until packed */
}

/* A fresh job `id`: queued, created now, the one API key's. */
static void
job_init(s2a_job_t *job, const char *id, s2a_kind_t kind)
{
    memset(job, 0, JOB_FIXED);
    memcpy(job->id, id, strlen(id) + 1);
    job->kind = (uint8_t) kind;
    job->status = S2A_JOB_QUEUED;
    job->owner = 1;
    job->created = s2a_now();
}

int
s2a_jobtab_record(s2a_jobtab_t *jt, const char *id, s2a_kind_t kind,
                  json_t *fields)
{
    s2a_job_t job;
    uint64_t version;
    int tries, rc;

    if (jt == NULL || kind != S2A_KIND_VIDEO || !id_ok(id)
        || !json_is_object(fields))
    {
        return S2A_DECLINED;
    }
    for (tries = 0; tries < TRIES; tries++) {
        rc = s2a_jobtab_get(jt, id, &job, &version);
        if (rc == S2A_ERROR) {
            return S2A_DECLINED;
        }
        if (rc == S2A_DECLINED) {
            /* Only the record that makes the row makes the slot: the
             * others would leave it without its model and prompt. */
            if (!json_is_string(json_object_get(fields, "model"))
                || !json_is_string(json_object_get(fields, "status")))
            {
                return S2A_DECLINED;
            }
            job_init(&job, id, kind);
            version = 0;
        }
        apply_fields(&job, fields, version == 0);
        job.worker_pid = (int32_t) getpid();
        rc = s2a_jobtab_replace(jt, &job, version);
        if (rc != S2A_AGAIN) {
            return rc == S2A_OK ? S2A_OK : S2A_DECLINED;
        }
    }
    return S2A_DECLINED;
}

int
s2a_jobtab_put_row(s2a_jobtab_t *jt, json_t *row, pid_t pid)
{
    const char *id = json_string_value(json_object_get(row, "job_id"));
    s2a_job_t job;

    if (jt == NULL || !id_ok(id)
        || !json_is_string(json_object_get(row, "status"))) {
        return S2A_DECLINED;
    }
    job_init(&job, id, S2A_KIND_VIDEO);
    job.created = json_integer_value(json_object_get(row, "created"));
    job.completed = json_integer_value(json_object_get(row, "completed"));
    apply_fields(&job, row, false);
    job.worker_pid = (int32_t) pid;
    return s2a_jobtab_put(jt, &job);
}
