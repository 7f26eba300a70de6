/*
 * test_jobtab.c: the live job table (common/jobtab.c) on a heap buffer:
 * insert, lookup, replace, delete, eviction of the first finished job,
 * probe runs that wrap around the index, the two writers' fields, and
 * (on a shared mapping) the repair after a lock owner's death.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/jobtab.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static s2a_jobtab_t *
table(uint32_t slots)
{
    void *mem = calloc(1, s2a_jobtab_size(slots));

    assert_non_null(mem);
    assert_non_null(s2a_jobtab_init(mem, slots));
    return mem;
}

static void
job(s2a_job_t *j, const char *id, int status)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->id, sizeof(j->id), "%.31s", id);
    snprintf(j->model, sizeof(j->model), "sora-video-10s");
    j->kind = S2A_KIND_VIDEO;
    j->status = (uint8_t) status;
    j->owner = 1;
}

static bool
has(s2a_jobtab_t *jt, const char *id)
{
    s2a_job_t out;

    return s2a_jobtab_get(jt, id, &out, NULL) == S2A_OK
        && strcmp(out.id, id) == 0;
}

/* The hash the table uses (FNV-1a), to place ids on purpose. */
static uint32_t
fnv(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++) {
        h ^= (uint8_t) *s;
        h *= 16777619u;
    }
    return h;
}

static s2a_jobtab_entry_t *
index_of(s2a_jobtab_t *jt)
{
    return (s2a_jobtab_entry_t *) (void *) ((char *) jt + jt->index_off);
}

static void
test_insert_lookup_delete(void **state)
{
    s2a_jobtab_t *jt = table(8);
    s2a_job_t j, out;
    uint64_t v1, v2;

    (void) state;
    assert_int_equal(s2a_jobtab_slots(jt), 8);
    assert_int_equal(s2a_jobtab_used(jt), 0);
    assert_int_equal(s2a_jobtab_get(jt, "job_a", &out, NULL), S2A_DECLINED);
    job(&j, "job_a", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_b", S2A_JOB_RUNNING);
    j.progress = 42;
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_int_equal(s2a_jobtab_used(jt), 2);
    assert_int_equal(s2a_jobtab_get(jt, "job_b", &out, &v1), S2A_OK);
    assert_string_equal(out.id, "job_b");
    assert_int_equal(out.status, S2A_JOB_RUNNING);
    assert_true(out.progress == 42);
    /* A put of a known id replaces its slot. */
    j.progress = 50;
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_int_equal(s2a_jobtab_used(jt), 2);
    assert_int_equal(s2a_jobtab_get(jt, "job_b", &out, &v2), S2A_OK);
    assert_true(out.progress == 50);
    assert_int_not_equal(v1, v2);
    /* A conditional write loses against one that came between. */
    j.progress = 60;
    assert_int_equal(s2a_jobtab_replace(jt, &j, v1), S2A_AGAIN);
    assert_int_equal(s2a_jobtab_replace(jt, &j, v2), S2A_OK);
    job(&j, "job_a", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_replace(jt, &j, 0), S2A_AGAIN); /* exists */
    job(&j, "job_c", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_replace(jt, &j, 7), S2A_AGAIN); /* gone */
    assert_int_equal(s2a_jobtab_replace(jt, &j, 0), S2A_OK);
    assert_int_equal(s2a_jobtab_drop(jt, "job_a"), S2A_OK);
    assert_int_equal(s2a_jobtab_drop(jt, "job_a"), S2A_DECLINED);
    assert_false(has(jt, "job_a"));
    assert_true(has(jt, "job_b"));
    assert_true(has(jt, "job_c"));
    assert_int_equal(s2a_jobtab_used(jt), 2);
    /* Bad ids are refused, not stored. */
    assert_int_equal(s2a_jobtab_get(jt, "", &out, NULL), S2A_DECLINED);
    assert_int_equal(
        s2a_jobtab_get(jt, "job_0123456789012345678901234567", &out, NULL),
        S2A_DECLINED);
    job(&j, "", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_DECLINED);
    /* No table: every call is a no-op. */
    assert_int_equal(s2a_jobtab_get(NULL, "job_b", &out, NULL), S2A_DECLINED);
    assert_int_equal(s2a_jobtab_used(NULL), 0);
    free(jt);
}

static void
test_many_and_reuse(void **state)
{
    s2a_jobtab_t *jt = table(100);
    s2a_job_t j;
    char id[32];
    int i, round;

    (void) state;
    /* Fill, empty every other, refill: the index keeps every id. */
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 100; i++) {
            snprintf(id, sizeof(id), "job_%d_%d", round, i);
            job(&j, id, S2A_JOB_RUNNING);
            assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
        }
        assert_int_equal(s2a_jobtab_used(jt), 100);
        job(&j, "job_one_too_many", S2A_JOB_QUEUED);
        assert_int_equal(s2a_jobtab_put(jt, &j), S2A_DECLINED);
        for (i = 0; i < 100; i++) {
            snprintf(id, sizeof(id), "job_%d_%d", round, i);
            assert_true(has(jt, id));
            if (i % 2 == 0 || round < 2) {
                assert_int_equal(s2a_jobtab_drop(jt, id), S2A_OK);
            }
        }
        for (i = 1; i < 100 && round == 2; i += 2) {
            snprintf(id, sizeof(id), "job_%d_%d", round, i);
            assert_true(has(jt, id));
        }
    }
    assert_int_equal(s2a_jobtab_used(jt), 50);
    assert_int_equal(atomic_load(&jt->refused), 3);
    free(jt);
}

static void
test_eviction_order(void **state)
{
    s2a_jobtab_t *jt = table(3);
    s2a_job_t j;

    (void) state;
    job(&j, "job_a", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_b", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_c", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    /* Full of running jobs: a new one finds no slot, nobody goes. */
    job(&j, "job_d", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_DECLINED);
    assert_true(has(jt, "job_a") && has(jt, "job_b") && has(jt, "job_c"));
    /* b finishes first, then a; a is written again later, which does not
     * make it newer. */
    job(&j, "job_b", S2A_JOB_FAILED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_a", S2A_JOB_SUCCEEDED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    j.progress = 100;
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_d", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_false(has(jt, "job_b")); /* the first finished went */
    assert_true(has(jt, "job_a") && has(jt, "job_c") && has(jt, "job_d"));
    job(&j, "job_e", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_false(has(jt, "job_a"));
    /* c, d, e run: none of them goes. */
    job(&j, "job_f", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_DECLINED);
    assert_true(has(jt, "job_c") && has(jt, "job_d") && has(jt, "job_e"));
    /* A finished job put back to running (a row resumed) leaves the
     * finished list; a dropped one too. */
    job(&j, "job_c", S2A_JOB_CANCELLED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_d", S2A_JOB_SUCCEEDED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_c", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_f", S2A_JOB_QUEUED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_false(has(jt, "job_d"));
    assert_true(has(jt, "job_c") && has(jt, "job_e") && has(jt, "job_f"));
    assert_int_equal(s2a_jobtab_used(jt), 3);
    free(jt);
}

/* Ids whose home is index entry `home` (of `mask`), `n` of them. */
static void
ids_at(char (*out)[32], int n, uint32_t home, uint32_t mask, int from)
{
    int i = from, k = 0;

    while (k < n) {
        snprintf(out[k], 32, "job_%08d", i++);
        if ((fnv(out[k]) & mask) == home) {
            k++;
        }
    }
}

static void
test_wraparound(void **state)
{
    s2a_jobtab_t *jt = table(4); /* 8 index entries */
    s2a_jobtab_entry_t *e = index_of(jt);
    uint32_t mask = jt->index_mask;
    char last[3][32], first[1][32];
    s2a_job_t j;
    int i;

    (void) state;
    assert_int_equal(mask, 7);
    ids_at(last, 3, mask, mask, 0);
    ids_at(first, 1, 0, mask, 0);
    for (i = 0; i < 3; i++) {
        job(&j, last[i], S2A_JOB_RUNNING);
        assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    }
    /* The run at the end wraps to the start: entries 7, 0, 1. */
    assert_int_not_equal(e[7].slot, 0);
    assert_int_not_equal(e[0].slot, 0);
    assert_int_not_equal(e[1].slot, 0);
    assert_int_equal(e[2].slot, 0);
    job(&j, first[0], S2A_JOB_RUNNING); /* home 0, lands on 2 */
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_int_not_equal(e[2].slot, 0);
    for (i = 0; i < 3; i++) {
        assert_true(has(jt, last[i]));
    }
    assert_true(has(jt, first[0]));
    /* Deleting the head shifts the run back across the end. */
    assert_int_equal(s2a_jobtab_drop(jt, last[0]), S2A_OK);
    assert_int_equal(e[2].slot, 0);
    assert_false(has(jt, last[0]));
    assert_true(has(jt, last[1]) && has(jt, last[2]) && has(jt, first[0]));
    assert_int_equal(e[7].hash & mask, 7);
    assert_int_equal(e[1].hash & mask, 0); /* moved back next to home */
    /* Deleting in the middle of the wrapped part keeps the rest. */
    assert_int_equal(s2a_jobtab_drop(jt, last[2]), S2A_OK);
    assert_true(has(jt, last[1]) && has(jt, first[0]));
    assert_int_equal(e[0].hash & mask, 0);
    assert_int_equal(e[1].slot, 0);
    assert_int_equal(s2a_jobtab_drop(jt, last[1]), S2A_OK);
    assert_int_equal(s2a_jobtab_drop(jt, first[0]), S2A_OK);
    for (i = 0; i <= (int) mask; i++) {
        assert_int_equal(e[i].slot, 0);
    }
    free(jt);
}

static void
test_record_fields(void **state)
{
    s2a_jobtab_t *jt = table(4);
    s2a_job_t out;
    json_t *f;
    char *big;

    (void) state;
    /* Images are not kept; an update of an unknown job makes nothing. */
    f = json_pack("{s:s, s:s}", "status", "queued", "model", "sora-image");
    assert_int_equal(s2a_jobtab_record(jt, "job_i", S2A_KIND_IMAGE, f),
                     S2A_DECLINED);
    json_decref(f);
    f = json_pack("{s:f}", "progress", 10.0);
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f),
                     S2A_DECLINED);
    json_decref(f);
    /* The queued record makes the slot. */
    f = json_pack("{s:s, s:s, s:s, s:s, s:I, s:{s:s, s:s, s:s, s:s}}", "status",
                  "queued", "model", "sora-video-portrait-10s", "mode",
                  "normal", "prompt", "a cat", "created_at",
                  (json_int_t) 1700000000, "params", "kind", "video", "host",
                  "h", "api_model", "sora-2", "size", "720x1280");
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    assert_int_equal(s2a_jobtab_get(jt, "job_v", &out, NULL), S2A_OK);
    assert_int_equal(out.status, S2A_JOB_QUEUED);
    assert_int_equal(out.created, 1700000000);
    assert_int_equal(out.owner, 1);
    assert_int_equal(out.worker_pid, getpid());
    assert_string_equal(out.model, "sora-video-portrait-10s");
    assert_string_equal(out.api_model, "sora-2");
    assert_string_equal(out.size, "720x1280");
    assert_string_equal(out.remixed_from, "");
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_PROMPT), "a cat");
    assert_null(s2a_job_text(&out, S2A_JOB_T_URL));
    assert_false(out.flags & S2A_JOB_F_INCOMPLETE);
    /* Updates change what they name; created_at stays. */
    f = json_pack("{s:s, s:s, s:I, s:I}", "status", "running",
                  "upstream_task_id", "task_1", "token_id", (json_int_t) 3,
                  "created_at", (json_int_t) 5);
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    f = json_pack("{s:f, s:I}", "progress", 37.5, "owner", (json_int_t) 9);
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    assert_int_equal(s2a_jobtab_get(jt, "job_v", &out, NULL), S2A_OK);
    assert_int_equal(out.status, S2A_JOB_RUNNING);
    assert_int_equal(out.created, 1700000000);
    assert_true(out.progress == 37.5);
    assert_int_equal(out.owner, 9);
    /* params replaces what was read from it. */
    f = json_pack("{s:{s:s, s:s}}", "params", "api_model", "sora-2",
                  "thumbnail_url", "http://x/t.jpg");
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    f = json_pack("{s:s, s:I, s:f, s:[s, s]}", "status", "succeeded",
                  "completed_at", (json_int_t) 1700000100, "progress", 100.0,
                  "result_urls", "http://x/v.mp4", "http://x/other.mp4");
    assert_int_equal(s2a_jobtab_record(jt, "job_v", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    assert_int_equal(s2a_jobtab_get(jt, "job_v", &out, NULL), S2A_OK);
    assert_int_equal(out.status, S2A_JOB_SUCCEEDED);
    assert_int_equal(out.completed, 1700000100);
    assert_string_equal(out.size, "");
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_URL), "http://x/v.mp4");
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_THUMBNAIL),
                        "http://x/t.jpg");
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_PROMPT), "a cat");
    assert_false(out.flags & S2A_JOB_F_INCOMPLETE);
    /* A failure: code and message. */
    f = json_pack("{s:s, s:s, s:s, s:s, s:s}", "status", "queued", "model",
                  "sora-video-10s", "prompt", "p", "error_message", "boom",
                  "error_code", "generation_failed");
    assert_int_equal(s2a_jobtab_record(jt, "job_f", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    assert_int_equal(s2a_jobtab_get(jt, "job_f", &out, NULL), S2A_OK);
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_ERROR), "boom");
    assert_string_equal(out.error_code, "generation_failed");
    /* A prompt the slot cannot hold: the slot says so. */
    big = malloc(S2A_JOB_TEXT + 10);
    assert_non_null(big);
    memset(big, 'p', S2A_JOB_TEXT + 9);
    big[S2A_JOB_TEXT + 9] = '\0';
    f = json_pack("{s:s, s:s, s:s}", "status", "queued", "model",
                  "sora-video-10s", "prompt", big);
    assert_int_equal(s2a_jobtab_record(jt, "job_big", S2A_KIND_VIDEO, f),
                     S2A_OK);
    json_decref(f);
    free(big);
    assert_int_equal(s2a_jobtab_get(jt, "job_big", &out, NULL), S2A_OK);
    assert_true(out.flags & S2A_JOB_F_INCOMPLETE);
    assert_null(s2a_job_text(&out, S2A_JOB_T_PROMPT));
    /* ... as does a value it cannot tell from none. */
    f = json_pack("{s:s}", "error_code", "");
    assert_int_equal(s2a_jobtab_record(jt, "job_f", S2A_KIND_VIDEO, f), S2A_OK);
    json_decref(f);
    assert_int_equal(s2a_jobtab_get(jt, "job_f", &out, NULL), S2A_OK);
    assert_true(out.flags & S2A_JOB_F_INCOMPLETE);
    free(jt);
}

static void
test_put_row(void **state)
{
    s2a_jobtab_t *jt = table(4);
    s2a_job_t out;
    json_t *row;

    (void) state;
    row = json_pack("{s:s, s:s, s:s, s:s, s:f, s:[s], s:n, s:s, s:s, s:I, "
                    "s:I}",
                    "job_id", "job_r", "model", "sora-video-15s", "prompt",
                    "row prompt", "status", "failed", "progress", 40.0,
                    "result_urls", "http://x/ignored.mp4", "error_message",
                    "error_code", "worker_died", "params",
                    "{\"api_model\":\"sora-2-pro\","
                    "\"remixed_from_video_id\":\"job_src\"}",
                    "created", (json_int_t) 1700000000, "completed",
                    (json_int_t) 1700000050);
    assert_int_equal(s2a_jobtab_put_row(jt, row, 1234), S2A_OK);
    json_decref(row);
    assert_int_equal(s2a_jobtab_get(jt, "job_r", &out, NULL), S2A_OK);
    assert_int_equal(out.status, S2A_JOB_FAILED);
    assert_int_equal(out.worker_pid, 1234);
    assert_int_equal(out.created, 1700000000);
    assert_int_equal(out.completed, 1700000050);
    assert_true(out.progress == 40);
    assert_string_equal(out.api_model, "sora-2-pro");
    assert_string_equal(out.remixed_from, "job_src");
    assert_string_equal(out.error_code, "worker_died");
    assert_null(s2a_job_text(&out, S2A_JOB_T_ERROR));
    assert_string_equal(s2a_job_text(&out, S2A_JOB_T_PROMPT), "row prompt");
    assert_false(out.flags & S2A_JOB_F_INCOMPLETE);
    row = json_pack("{s:s, s:s}", "job_id", "job_x", "params", "{}");
    assert_int_equal(s2a_jobtab_put_row(jt, row, 1), S2A_DECLINED);
    json_decref(row);
    free(jt);
}

static void
test_unfinished(void **state)
{
    s2a_jobtab_t *jt = table(600);
    char ids[7][S2A_JOB_ID_MAX], id[32];
    uint32_t cursor = 0;
    s2a_job_t j;
    int i, n, total = 0;

    (void) state;
    for (i = 0; i < 600; i++) {
        snprintf(id, sizeof(id), "job_%d", i);
        job(&j, id, i % 3 == 0 ? S2A_JOB_SUCCEEDED : S2A_JOB_RUNNING);
        j.worker_pid = i % 2 == 0 ? 77 : 78;
        assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    }
    /* pid 77, unfinished: even i not divisible by 3 = 200 jobs. */
    while ((n = s2a_jobtab_unfinished(jt, 77, ids, 7, &cursor)) > 0) {
        for (i = 0; i < n; i++) {
            assert_int_equal(s2a_jobtab_get(jt, ids[i], &j, NULL), S2A_OK);
            assert_int_equal(j.worker_pid, 77);
            assert_int_equal(j.status, S2A_JOB_RUNNING);
        }
        total += n;
    }
    assert_int_equal(total, 200);
    assert_int_equal(cursor, 600);
    free(jt);
}

static void
test_repair_after_owner_death(void **state)
{
    s2a_jobtab_t *jt = s2a_jobtab_create(8);
    s2a_jobtab_slot_t *slots;
    s2a_job_t j;
    pid_t child;
    int st;

    (void) state;
    assert_non_null(jt);
    slots = (s2a_jobtab_slot_t *) (void *) ((char *) jt + jt->slots_off);
    job(&j, "job_a", S2A_JOB_SUCCEEDED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_b", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_c", S2A_JOB_FAILED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    job(&j, "job_d", S2A_JOB_FAILED);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        /* Dies mid-write of b's slot, with the index and lists torn. */
        pthread_mutex_lock(&jt->lock);
        slots[1].writing = 1;
        memset((char *) jt + jt->index_off, 0xff, 64);
        jt->old_head = 77;
        jt->free_head = 3;
        raise(SIGKILL);
    }
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_false(has(jt, "job_b")); /* repaired inside: the torn slot went */
    assert_int_equal(jt->repairs, 1);
    assert_true(has(jt, "job_a") && has(jt, "job_c") && has(jt, "job_d"));
    assert_int_equal(s2a_jobtab_used(jt), 3);
    /* The finished order survives: a, then c, then d go first. */
    for (st = 0; st < 5; st++) {
        char id[32];
        snprintf(id, sizeof(id), "job_new%d", st);
        job(&j, id, S2A_JOB_RUNNING);
        assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    }
    assert_true(has(jt, "job_a") && has(jt, "job_c") && has(jt, "job_d"));
    job(&j, "job_new5", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_false(has(jt, "job_a"));
    assert_true(has(jt, "job_c"));
    job(&j, "job_new6", S2A_JOB_RUNNING);
    assert_int_equal(s2a_jobtab_put(jt, &j), S2A_OK);
    assert_false(has(jt, "job_c"));
    assert_true(has(jt, "job_d"));
    s2a_jobtab_destroy(jt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_lookup_delete),
        cmocka_unit_test(test_many_and_reuse),
        cmocka_unit_test(test_eviction_order),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_record_fields),
        cmocka_unit_test(test_put_row),
        cmocka_unit_test(test_unfinished),
        cmocka_unit_test(test_repair_after_owner_death),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
