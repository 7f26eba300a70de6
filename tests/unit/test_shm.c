/*
 * test_shm.c: shared table, leases, selection policies and repair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/shm.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOW_MS 1800000000000LL
#define NOW    (NOW_MS / 1000)

static s2a_shm_t *shm;

static int
setup(void **state)
{
    (void) state;
    shm = s2a_shm_create(64, 256);
    return shm == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    (void) state;
    s2a_shm_destroy(shm);
    return 0;
}

static int
put(int64_t id, uint8_t state, uint8_t flags, int image_limit, int video_limit)
{
    s2a_shm_token_t t;

    memset(&t, 0, sizeof(t));
    t.id = id;
    t.state = state;
    t.flags = flags;
    t.limit[S2A_KIND_IMAGE] = image_limit;
    t.limit[S2A_KIND_VIDEO] = video_limit;
    t.quota_left = -1;
    return s2a_shm_token_put_locked(shm, &t, "at-secret");
}

#define ALL (S2A_TOKEN_F_IMAGE | S2A_TOKEN_F_VIDEO | S2A_TOKEN_F_SORA2)

static void
test_skip_reasons(void **state)
{
    s2a_shm_token_t t;

    (void) state;
    memset(&t, 0, sizeof(t));
    t.id = 1;
    t.state = S2A_TOKEN_ACTIVE;
    t.flags = ALL;
    t.quota_left = -1;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_VIDEO, NOW),
                     S2A_SKIP_NONE);
    t.state = S2A_TOKEN_DISABLED;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_DISABLED);
    t.state = S2A_TOKEN_INVALID;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_INVALID);
    t.state = S2A_TOKEN_COOLING;
    t.cooldown_until = NOW + 10;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_COOLING);
    t.cooldown_until = NOW - 1; /* cooldown over */
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_NONE);
    t.state = S2A_TOKEN_ACTIVE;
    t.expires_at = NOW;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_EXPIRED);
    t.expires_at = 0;
    t.flags = S2A_TOKEN_F_IMAGE | S2A_TOKEN_F_VIDEO;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_VIDEO, NOW),
                     S2A_SKIP_NO_SORA2);
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_NONE);
    t.flags = ALL & ~S2A_TOKEN_F_IMAGE;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_KIND_DISABLED);
    t.flags = ALL;
    t.quota_left = 0;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_VIDEO, NOW),
                     S2A_SKIP_NO_QUOTA);
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_IMAGE, NOW),
                     S2A_SKIP_NONE);
    t.quota_left = 5;
    t.limit[S2A_KIND_VIDEO] = 2;
    t.inflight[S2A_KIND_VIDEO] = 2;
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_VIDEO, NOW),
                     S2A_SKIP_BUSY);
    t.limit[S2A_KIND_VIDEO] = -1; /* unlimited */
    assert_int_equal(s2a_shm_token_skip(&t, S2A_KIND_VIDEO, NOW),
                     S2A_SKIP_NONE);
    assert_string_equal(s2a_skip_name(S2A_SKIP_COOLING), "cooling");
}

static void
test_least_busy_and_limits(void **state)
{
    s2a_lease_t l[8];
    s2a_skip_report_t rep;
    int a, b;

    (void) state;
    a = put(10, S2A_TOKEN_ACTIVE, ALL, 0, 2);
    b = put(11, S2A_TOKEN_ACTIVE, ALL, 0, 2);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    /* Alternates between the two, never beyond two each. */
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 100,
                                           0, &l[0], NULL),
                     S2A_OK);
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 1,
                                           100, 0, &l[1], NULL),
                     S2A_OK);
    assert_int_not_equal(l[0].token_slot, l[1].token_slot);
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 2,
                                           100, 0, &l[2], NULL),
                     S2A_OK);
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 3,
                                           100, 0, &l[3], NULL),
                     S2A_OK);
    assert_int_equal(s2a_shm_tokens(shm)[a].inflight[S2A_KIND_VIDEO], 2);
    assert_int_equal(s2a_shm_tokens(shm)[b].inflight[S2A_KIND_VIDEO], 2);
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 4,
                                           100, 0, &l[4], &rep),
                     S2A_DECLINED);
    assert_int_equal(rep.n_tokens, 2);
    assert_int_equal(rep.counts[S2A_SKIP_BUSY], 2);
    /* Images have no limit here. */
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_IMAGE,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 5,
                                           100, 0, &l[4], NULL),
                     S2A_OK);
    /* Release exactly once. */
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l[0]), S2A_OK);
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l[0]), S2A_DECLINED);
    assert_int_equal(s2a_shm_lease_count_locked(shm, 100), 4);
    assert_int_equal(s2a_shm_release_owner_locked(shm, 100), 4);
    assert_int_equal(s2a_shm_tokens(shm)[a].inflight[S2A_KIND_VIDEO], 0);
    assert_int_equal(s2a_shm_tokens(shm)[b].inflight[S2A_KIND_VIDEO], 0);
    assert_int_equal(s2a_shm_tokens(shm)[a].inflight[S2A_KIND_IMAGE]
                         + s2a_shm_tokens(shm)[b].inflight[S2A_KIND_IMAGE],
                     0);
    /* A lease the master reclaimed cannot be released again. */
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l[1]), S2A_DECLINED);
}

static void
test_lru_tiebreak(void **state)
{
    s2a_lease_t l;

    (void) state;
    put(20, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    put(21, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    s2a_shm_tokens(shm)[0].last_used_ms = NOW_MS - 10;
    s2a_shm_tokens(shm)[1].last_used_ms = NOW_MS - 1000;
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_IMAGE,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 21);
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l), S2A_OK);
    /* Now 21 was used last: 20 is picked. */
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_IMAGE,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS + 1, 1,
                                           0, &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 20);
    s2a_shm_lease_release_locked(shm, &l);
}

static void
test_round_robin_and_random(void **state)
{
    s2a_lease_t l;
    int64_t seen[3];
    int i, counts[3] = { 0, 0, 0 };

    (void) state;
    put(1, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    put(2, S2A_TOKEN_DISABLED, ALL, 0, 0);
    put(3, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    put(4, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    for (i = 0; i < 3; i++) {
        assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_IMAGE,
                                               S2A_POLICY_ROUND_ROBIN, NOW_MS,
                                               1, 0, &l, NULL),
                         S2A_OK);
        seen[i] = l.token_id;
        s2a_shm_lease_release_locked(shm, &l);
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 3);
    assert_int_equal(seen[2], 4);
    for (i = 0; i < 300; i++) {
        assert_int_equal(s2a_shm_select_locked(
                             shm, S2A_KIND_IMAGE, S2A_POLICY_RANDOM, NOW_MS, 1,
                             (uint32_t) i * 2654435761u, &l, NULL),
                         S2A_OK);
        assert_int_not_equal(l.token_id, 2);
        counts[l.token_id == 1 ? 0 : l.token_id == 3 ? 1 : 2]++;
        s2a_shm_lease_release_locked(shm, &l);
    }
    assert_true(counts[0] > 30 && counts[1] > 30 && counts[2] > 30);
}

static void
test_avoid(void **state)
{
    s2a_lease_t l;
    s2a_skip_report_t rep;
    int64_t avoid[2] = { 30, 31 };

    (void) state;
    put(30, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    put(31, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    put(32, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    assert_int_equal(
        s2a_shm_select_avoid_locked(shm, S2A_KIND_VIDEO, S2A_POLICY_LEAST_BUSY,
                                    NOW_MS, 1, 0, avoid, 2, NULL, &l, NULL),
        S2A_OK);
    assert_int_equal(l.token_id, 32);
    s2a_shm_lease_release_locked(shm, &l);
    avoid[0] = 32;
    assert_int_equal(s2a_shm_select_avoid_locked(shm, S2A_KIND_VIDEO,
                                                 S2A_POLICY_RANDOM, NOW_MS, 1,
                                                 7, avoid, 2, NULL, &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 30);
    s2a_shm_lease_release_locked(shm, &l);
    {
        int64_t all[3] = { 30, 31, 32 };
        assert_int_equal(s2a_shm_select_avoid_locked(
                             shm, S2A_KIND_VIDEO, S2A_POLICY_LEAST_BUSY, NOW_MS,
                             1, 0, all, 3, NULL, &l, &rep),
                         S2A_DECLINED);
        assert_int_equal(rep.n_tokens, 0);
    }
}

static void
test_remove_keeps_slot_until_idle(void **state)
{
    s2a_lease_t l;
    int slot;

    (void) state;
    slot = put(50, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS, 7, &l),
        S2A_OK);
    assert_int_equal(s2a_shm_token_remove_locked(shm, 50), S2A_OK);
    assert_int_equal(s2a_shm_token_find_locked(shm, 50), -1);
    assert_string_equal(s2a_shm_secrets(shm)[slot].access_token, "");
    /* A new token cannot take the slot while the old one is in use. */
    assert_int_not_equal(put(51, S2A_TOKEN_ACTIVE, ALL, 0, 0), slot);
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l), S2A_OK);
    assert_int_equal(s2a_shm_tokens(shm)[slot].id, 0);
    assert_int_equal(put(52, S2A_TOKEN_ACTIVE, ALL, 0, 0), slot);
}

static void
test_update_keeps_inflight(void **state)
{
    s2a_lease_t l;
    int slot;

    (void) state;
    slot = put(60, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_IMAGE, NOW_MS, 7, &l);
    assert_int_equal(put(60, S2A_TOKEN_DISABLED, ALL, 5, 5), slot);
    assert_int_equal(s2a_shm_tokens(shm)[slot].inflight[S2A_KIND_IMAGE], 1);
    assert_int_equal(s2a_shm_tokens(shm)[slot].state, S2A_TOKEN_DISABLED);
    assert_int_equal(s2a_shm_tokens(shm)[slot].version, 2);
    assert_string_equal(s2a_shm_secrets(shm)[slot].access_token, "at-secret");
}

static void
test_repair_after_owner_death(void **state)
{
    s2a_lease_t l;
    pid_t child;
    int st, slot;

    (void) state;
    slot = put(70, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    /* A lease of a live process survives the repair. */
    s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS, getpid(),
                                 &l);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        s2a_lease_t mine;
        s2a_shm_lock(shm);
        s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS,
                                     getpid(), &mine);
        s2a_shm_tokens(shm)[slot].inflight[S2A_KIND_VIDEO] = 999;
        shm->lease_high = 100000; /* garbage, as a torn update */
        raise(SIGKILL);
    }
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(s2a_shm_lock(shm), S2A_OK); /* EOWNERDEAD inside */
    assert_int_equal(shm->repairs, 1);
    assert_int_equal(s2a_shm_tokens(shm)[slot].inflight[S2A_KIND_VIDEO], 1);
    assert_int_equal(s2a_shm_lease_count_locked(shm, 0), 1);
    assert_true(shm->lease_high <= shm->max_leases);
    s2a_shm_unlock(shm);
    /* The mutex is consistent again: plain lock/trylock work. */
    assert_int_equal(s2a_shm_trylock(shm), S2A_OK);
    s2a_shm_unlock(shm);
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l), S2A_OK);
}

static void
test_settings_seqlock(void **state)
{
    s2a_shm_settings_t s, out;
    uint32_t seq0, seq1;

    (void) state;
    seq0 = s2a_shm_settings_seq(shm);
    memset(&s, 0, sizeof(s));
    s.log_level = 7;
    s.api_key_hash[0] = 0xab;
    s2a_shm_settings_write(shm, &s);
    seq1 = s2a_shm_settings_read(shm, &out);
    assert_int_equal(seq1, seq0 + 2);
    assert_int_equal(seq1 % 2, 0);
    assert_int_equal(out.log_level, 7);
    assert_int_equal(out.api_key_hash[0], 0xab);
}

static void
test_full_tables(void **state)
{
    s2a_shm_t *small = s2a_shm_create(2, 16);
    s2a_shm_token_t t;
    s2a_lease_t l;
    int i;

    (void) state;
    assert_non_null(small);
    memset(&t, 0, sizeof(t));
    t.state = S2A_TOKEN_ACTIVE;
    t.flags = ALL;
    for (i = 1; i <= 2; i++) {
        t.id = i;
        assert_int_equal(s2a_shm_token_put_locked(small, &t, "x"), i - 1);
    }
    t.id = 3;
    assert_int_equal(s2a_shm_token_put_locked(small, &t, "x"), -1);
    for (i = 0; i < 16; i++) {
        assert_int_equal(s2a_shm_lease_acquire_locked(small, 0, S2A_KIND_IMAGE,
                                                      NOW_MS, 1, &l),
                         S2A_OK);
    }
    assert_int_equal(s2a_shm_select_locked(small, S2A_KIND_IMAGE,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, NULL),
                     S2A_AGAIN);
    s2a_shm_destroy(small);
}

/* Whether a retry elsewhere can ever get a token. */
static void
test_candidates(void **state)
{
    s2a_lease_t l;
    int64_t avoid[2] = { 1, 0 };

    (void) state;
    put(1, S2A_TOKEN_ACTIVE, ALL, -1, 1);
    put(2, S2A_TOKEN_DISABLED, ALL, -1, 1);
    put(3, S2A_TOKEN_ACTIVE, S2A_TOKEN_F_IMAGE, -1, 1);
    assert_int_equal(
        s2a_shm_candidates_locked(shm, S2A_KIND_VIDEO, 1000, NULL, 0), 1);
    assert_int_equal(
        s2a_shm_candidates_locked(shm, S2A_KIND_VIDEO, 1000, avoid, 1), 0);
    assert_int_equal(
        s2a_shm_candidates_locked(shm, S2A_KIND_IMAGE, 1000, avoid, 1), 1);
    /* A busy token still counts: its slot comes back. */
    put(4, S2A_TOKEN_ACTIVE, ALL, -1, 1);
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, s2a_shm_token_find_locked(shm, 4),
                                     S2A_KIND_VIDEO, 1, 99, &l),
        S2A_OK);
    assert_int_equal(
        s2a_shm_candidates_locked(shm, S2A_KIND_VIDEO, 1000, avoid, 1), 1);
    avoid[1] = 4;
    assert_int_equal(
        s2a_shm_candidates_locked(shm, S2A_KIND_VIDEO, 1000, avoid, 2), 0);
}

/* Between equally busy tokens, the one this worker already uses wins;
 * a less busy token still wins over it. */
static void
test_locality(void **state)
{
    uint16_t mine[8] = { 0 };
    s2a_lease_t l;
    int a = put(1, S2A_TOKEN_ACTIVE, ALL, -1, 3);
    int b = put(2, S2A_TOKEN_ACTIVE, ALL, -1, 3);

    (void) state;
    /* One lease each; token 1 is the least recently used. */
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, a, S2A_KIND_VIDEO, 100, 7, &l),
        S2A_OK);
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, b, S2A_KIND_VIDEO, 200, 8, &l),
        S2A_OK);
    assert_int_equal(s2a_shm_select_avoid_locked(shm, S2A_KIND_VIDEO,
                                                 S2A_POLICY_LEAST_BUSY, NOW_MS,
                                                 9, 0, NULL, 0, mine, &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 1);
    s2a_shm_lease_release_locked(shm, &l);
    mine[b] = 1;
    assert_int_equal(s2a_shm_select_avoid_locked(shm, S2A_KIND_VIDEO,
                                                 S2A_POLICY_LEAST_BUSY, NOW_MS,
                                                 8, 0, NULL, 0, mine, &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 2);
    /* Now token 2 has two: the idler token 1 is taken despite locality. */
    assert_int_equal(s2a_shm_select_avoid_locked(shm, S2A_KIND_VIDEO,
                                                 S2A_POLICY_LEAST_BUSY, NOW_MS,
                                                 8, 0, NULL, 0, mine, &l, NULL),
                     S2A_OK);
    assert_int_equal(l.token_id, 1);
}

/* A repaired table frees what it removed: tokens removed while a dead
 * worker still held their leases, and the dead worker's lease rows. */
static void
test_repair_frees_removed_slots(void **state)
{
    s2a_shm_t *small = s2a_shm_create(4, 8);
    s2a_shm_token_t t;
    s2a_lease_t l;
    pid_t child;
    int i, st;

    (void) state;
    assert_non_null(small);
    memset(&t, 0, sizeof(t));
    t.state = S2A_TOKEN_ACTIVE;
    t.flags = ALL;
    t.quota_left = -1;
    for (i = 0; i < 4; i++) {
        t.id = i + 1;
        assert_int_equal(s2a_shm_token_put_locked(small, &t, "x"), i);
    }
    /* A worker takes two leases on every token, then dies. */
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        for (i = 0; i < 8; i++) {
            s2a_shm_lease_acquire_locked(small, i % 4, S2A_KIND_VIDEO, NOW_MS,
                                         getpid(), &l);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(child, &st, 0), child);
    /* The operator deletes every token meanwhile: slots stay reserved
     * (negative ids) for the leases. */
    for (i = 0; i < 4; i++) {
        assert_int_equal(s2a_shm_token_remove_locked(small, i + 1), S2A_OK);
        assert_true(s2a_shm_tokens(small)[i].id < 0);
    }
    assert_int_equal(s2a_shm_repair_locked(small), 8);
    assert_int_equal(small->token_high, 0);
    assert_int_equal(small->lease_high, 0);
    /* Every slot and every lease row can be used again. */
    for (i = 0; i < 4; i++) {
        t.id = 100 + i;
        assert_int_equal(s2a_shm_token_put_locked(small, &t, "y"), i);
    }
    for (i = 0; i < 8; i++) {
        assert_int_equal(s2a_shm_lease_acquire_locked(small, i % 4,
                                                      S2A_KIND_VIDEO, NOW_MS,
                                                      getpid(), &l),
                         S2A_OK);
    }
    assert_int_equal(s2a_shm_tokens(small)[0].inflight[S2A_KIND_VIDEO], 2);
    s2a_shm_destroy(small);
}

/* The same through the lock: the dead process held the lock as well. */
static void
test_repair_on_lock_frees_slots(void **state)
{
    s2a_shm_t *small = s2a_shm_create(2, 4);
    s2a_shm_token_t t;
    s2a_lease_t l;
    pid_t child;
    int st;

    (void) state;
    assert_non_null(small);
    memset(&t, 0, sizeof(t));
    t.state = S2A_TOKEN_ACTIVE;
    t.flags = ALL;
    t.id = 1;
    assert_int_equal(s2a_shm_token_put_locked(small, &t, "x"), 0);
    t.id = 2;
    assert_int_equal(s2a_shm_token_put_locked(small, &t, "x"), 1);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        s2a_shm_lease_acquire_locked(small, 0, S2A_KIND_IMAGE, NOW_MS, getpid(),
                                     &l);
        s2a_shm_lease_acquire_locked(small, 1, S2A_KIND_IMAGE, NOW_MS, getpid(),
                                     &l);
        /* Removed mid-update, then killed holding the lock. */
        s2a_shm_lock(small);
        s2a_shm_token_remove_locked(small, 1);
        s2a_shm_token_remove_locked(small, 2);
        raise(SIGKILL);
    }
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_int_equal(s2a_shm_lock(small), S2A_OK);
    assert_int_equal(small->repairs, 1);
    t.id = 3;
    assert_true(s2a_shm_token_put_locked(small, &t, "x") >= 0);
    t.id = 4;
    assert_true(s2a_shm_token_put_locked(small, &t, "x") >= 0);
    s2a_shm_unlock(small);
    s2a_shm_destroy(small);
}

static int
throttle_row_of(uint8_t k)
{
    int i;

    for (i = 0; i < S2A_SHM_THROTTLE; i++) {
        if (shm->throttle[i].window_start != 0 && shm->throttle[i].key[0] == k
            && shm->throttle[i].key[1] == 0xee)
        {
            return i;
        }
    }
    return -1;
}

/* A full throttle table gives up its oldest row, not row 0. */
static void
test_throttle_evicts_oldest(void **state)
{
    uint8_t key[16] = { 0 };
    int i;

    (void) state;
    key[1] = 0xee;
    /* Row 0 is the newest, row 7 the oldest; all windows still open. */
    for (i = 0; i < S2A_SHM_THROTTLE; i++) {
        key[0] = (uint8_t) i;
        assert_int_equal(s2a_shm_throttle_fail_locked(shm, key,
                                                      i == 0 ? NOW
                                                          : i == 7
                                                          ? NOW - 600
                                                          : NOW - 300 + i),
                         0);
        assert_int_equal(throttle_row_of((uint8_t) i), i);
    }
    key[0] = 0; /* a new address: first byte 0, second byte 0xff */
    key[1] = 0xff;
    s2a_shm_throttle_fail_locked(shm, key, NOW);
    key[1] = 0xee;
    assert_int_equal(throttle_row_of(0), 0);
    assert_int_equal(throttle_row_of(7), -1);
    assert_int_equal(shm->throttle[7].key[1], 0xff);
    /* A row that locks an address out goes after every unlocked one. */
    key[0] = 8;
    for (i = 0; i < 5; i++) {
        s2a_shm_throttle_fail_locked(shm, key, NOW - 700);
    }
    assert_true(s2a_shm_throttle_check_locked(shm, key, NOW - 699) > 0);
    shm->throttle[8].locked_until = NOW + 60;
    key[0] = 1;
    key[1] = 0xfe;
    s2a_shm_throttle_fail_locked(shm, key, NOW);
    assert_true(throttle_row_of(8) == 8);
    /* An expired window goes before an older open one. */
    shm->throttle[9].window_start = NOW - 2000;
    shm->throttle[9].fails = 1;
    shm->throttle[10].window_start = NOW - 2100;
    shm->throttle[10].locked_until = NOW + 10; /* locked: kept */
    key[0] = 2;
    s2a_shm_throttle_fail_locked(shm, key, NOW);
    assert_int_equal(shm->throttle[9].key[0], 2);
    assert_int_equal(shm->throttle[9].key[1], 0xfe);
}

/* Attempts are counted before the check: only 5 of many get through, a
 * success clears the row, and a locked user name lets a clean address
 * try once while an address that already guessed waits. */
static void
test_throttle_reserve(void **state)
{
    uint8_t addr[16] = { 0x11 }, user[16] = { 0x22 }, other[16] = { 0x33 };
    s2a_shm_throttle_t row;
    bool locked;
    int i, passed = 0;

    (void) state;
    for (i = 0; i < 100; i++) {
        if (s2a_shm_throttle_reserve_locked(shm, addr, NULL, NOW, &locked) == 0)
        {
            passed++;
            assert_true(locked == (passed == 5));
        } else {
            assert_false(locked);
        }
    }
    assert_int_equal(passed, 5);
    assert_int_equal(s2a_shm_throttle_check_locked(shm, addr, NOW), 60);
    /* After the lock, the next attempt doubles it. */
    assert_int_equal(
        s2a_shm_throttle_reserve_locked(shm, addr, NULL, NOW + 61, &locked), 0);
    assert_true(locked);
    assert_int_equal(s2a_shm_throttle_check_locked(shm, addr, NOW + 61), 120);
    s2a_shm_throttle_reset_locked(shm, addr);
    assert_int_equal(s2a_shm_throttle_get_locked(shm, addr, &row),
                     S2A_DECLINED);

    /* 20 addresses, one guess each, lock the user name. */
    for (i = 0; i < 20; i++) {
        addr[1] = (uint8_t) i;
        assert_int_equal(
            s2a_shm_throttle_reserve_locked(shm, addr, user, NOW, &locked), 0);
        assert_true(locked == (i == 19));
    }
    assert_int_equal(s2a_shm_throttle_check_locked(shm, user, NOW), 60);
    addr[1] = 3;
    assert_int_equal(
        s2a_shm_throttle_reserve_locked(shm, addr, user, NOW, &locked), 60);
    assert_int_equal(
        s2a_shm_throttle_reserve_locked(shm, other, user, NOW, &locked), 0);
    /* ... and it had its one try. */
    assert_true(s2a_shm_throttle_reserve_locked(shm, other, user, NOW, &locked)
                > 0);
    /* A stored row comes back; an older copy does not shorten it. */
    assert_int_equal(s2a_shm_throttle_get_locked(shm, user, &row), S2A_OK);
    assert_int_equal(row.kind, S2A_THROTTLE_USER);
    s2a_shm_throttle_reset_locked(shm, user);
    row.locked_until = NOW + 500;
    s2a_shm_throttle_put_locked(shm, &row);
    row.locked_until = NOW + 5;
    s2a_shm_throttle_put_locked(shm, &row);
    assert_int_equal(s2a_shm_throttle_check_locked(shm, user, NOW), 500);
}

/* The generation moves on every change a waiting job cares about. */
static void
test_pool_gen(void **state)
{
    s2a_lease_t l;
    uint32_t g;
    int slot;

    (void) state;
    g = s2a_shm_pool_gen(shm);
    slot = put(1, S2A_TOKEN_ACTIVE, ALL, 0, 1);
    assert_true(s2a_shm_pool_gen(shm) != g);
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS, 5, &l),
        S2A_OK);
    g = s2a_shm_pool_gen(shm);
    assert_int_equal(s2a_shm_lease_release_locked(shm, &l), S2A_OK);
    assert_true(s2a_shm_pool_gen(shm) != g);
    g = s2a_shm_pool_gen(shm);
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS, 5, &l),
        S2A_OK);
    assert_int_equal(s2a_shm_pool_gen(shm), g); /* taking is no news */
    assert_int_equal(s2a_shm_release_owner_locked(shm, 5), 1);
    assert_true(s2a_shm_pool_gen(shm) != g);
    g = s2a_shm_pool_gen(shm);
    assert_int_equal(s2a_shm_token_remove_locked(shm, 1), S2A_OK);
    assert_true(s2a_shm_pool_gen(shm) != g);
    g = s2a_shm_pool_gen(shm);
    s2a_shm_repair_locked(shm);
    assert_true(s2a_shm_pool_gen(shm) != g);
}

/* When waiting for a token is pointless. */
static void
test_hopeless(void **state)
{
    s2a_skip_report_t rep;
    s2a_lease_t l;
    int slot;

    (void) state;
    /* Empty pool. */
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, &rep),
                     S2A_DECLINED);
    assert_true(s2a_skip_hopeless(&rep, NOW + 10));
    /* Disabled, invalid, expired, no video, no Sora 2, no quota. */
    put(1, S2A_TOKEN_DISABLED, ALL, 0, 0);
    put(2, S2A_TOKEN_INVALID, ALL, 0, 0);
    put(3, S2A_TOKEN_EXPIRED, ALL, 0, 0);
    put(4, S2A_TOKEN_ACTIVE, S2A_TOKEN_F_IMAGE | S2A_TOKEN_F_SORA2, 0, 0);
    put(5, S2A_TOKEN_ACTIVE, S2A_TOKEN_F_VIDEO, 0, 0);
    slot = put(6, S2A_TOKEN_ACTIVE, ALL, 0, 0);
    s2a_shm_tokens(shm)[slot].quota_left = 0;
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_ROUND_ROBIN, NOW_MS, 1, 0,
                                           &l, &rep),
                     S2A_DECLINED);
    assert_int_equal(rep.n_tokens, 6);
    assert_true(s2a_skip_hopeless(&rep, NOW + 10));
    /* Token 4 serves images. */
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_IMAGE,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, &rep),
                     S2A_OK);
    /* A token cooling until after the deadline is no hope; before it is. */
    slot = put(7, S2A_TOKEN_COOLING, ALL, 0, 1);
    s2a_shm_tokens(shm)[slot].cooldown_until = NOW + 30;
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, &rep),
                     S2A_DECLINED);
    assert_true(s2a_skip_hopeless(&rep, NOW + 10));
    assert_false(s2a_skip_hopeless(&rep, NOW + 60));
    /* A busy token is hope: its lease comes back. */
    s2a_shm_tokens(shm)[slot].state = S2A_TOKEN_ACTIVE;
    assert_int_equal(
        s2a_shm_lease_acquire_locked(shm, slot, S2A_KIND_VIDEO, NOW_MS, 9, &l),
        S2A_OK);
    assert_int_equal(s2a_shm_select_locked(shm, S2A_KIND_VIDEO,
                                           S2A_POLICY_LEAST_BUSY, NOW_MS, 1, 0,
                                           &l, &rep),
                     S2A_DECLINED);
    assert_false(s2a_skip_hopeless(&rep, NOW + 10));
}

/* The longest hold is recorded with the function that took the lock. */
static void
test_hold_stats(void **state)
{
    struct timespec ts = { 0, 3000000 };
    uint64_t count, total, max;
    int32_t pid;
    char site[64];

    (void) state;
    assert_int_equal(s2a_shm_lock(shm), S2A_OK);
    s2a_shm_unlock(shm);
    assert_int_equal(s2a_shm_lock(shm), S2A_OK);
    nanosleep(&ts, NULL);
    s2a_shm_unlock(shm);
    assert_int_equal(s2a_shm_trylock(shm), S2A_OK);
    s2a_shm_unlock(shm);
    assert_int_equal(
        s2a_shm_hold_stats(shm, &count, &total, &max, &pid, site, sizeof(site)),
        S2A_OK);
    assert_int_equal(count, 3);
    assert_true(max >= 3000000);
    assert_true(max < 1000000000);
    assert_true(total >= max);
    assert_int_equal(pid, getpid());
    assert_string_equal(site, "test_hold_stats");
    /* Per site: this function's three holds, the stats read's own. */
    assert_string_equal(shm->hold_sites[0].site, "test_hold_stats");
    assert_int_equal(shm->hold_sites[0].count, 3);
    assert_true(shm->hold_sites[0].max_ns >= 3000000);
    assert_string_equal(shm->hold_sites[1].site, "s2a_shm_hold_stats");
    assert_int_equal(shm->hold_sites[1].count, 1);
}

/* Only an acquisition that found the lock taken counts as a wait, with
 * how long it waited; an uncontended one leaves the figures alone. */
static void
test_wait_stats(void **state)
{
    struct timespec ts = { 0, 30000000 };
    int ready[2], st;
    pid_t child;
    char c;

    (void) state;
    assert_int_equal(s2a_shm_lock(shm), S2A_OK);
    s2a_shm_unlock(shm);
    assert_int_equal(shm->wait_count, 0);
    assert_int_equal(shm->wait_total_ns, 0);
    assert_int_equal(pipe(ready), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        s2a_shm_lock(shm);
        if (write(ready[1], "x", 1) != 1) {
            _exit(1);
        }
        nanosleep(&ts, NULL);
        s2a_shm_unlock(shm);
        _exit(0);
    }
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(s2a_shm_lock(shm), S2A_OK); /* waits for the child */
    assert_int_equal(shm->wait_count, 1);
    assert_true(shm->wait_max_ns > 0);
    assert_true(shm->wait_max_ns <= 30000000 + 1000000000ULL);
    assert_int_equal(shm->wait_total_ns, shm->wait_max_ns);
    s2a_shm_unlock(shm);
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(s2a_shm_trylock(shm), S2A_OK);
    s2a_shm_unlock(shm);
    assert_int_equal(shm->wait_count, 1);
    close(ready[0]);
    close(ready[1]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repair_frees_removed_slots),
        cmocka_unit_test(test_repair_on_lock_frees_slots),
        cmocka_unit_test_setup_teardown(test_throttle_evicts_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_throttle_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_gen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hopeless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_stats, setup, teardown),
        cmocka_unit_test(test_skip_reasons),
        cmocka_unit_test_setup_teardown(test_candidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locality, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_busy_and_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_lru_tiebreak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin_and_random, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_avoid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_keeps_slot_until_idle,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_keeps_inflight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repair_after_owner_death, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_settings_seqlock, setup, teardown),
        cmocka_unit_test(test_full_tables),
    };

    return cmocka_run_group_tests_name("shm", tests, NULL, NULL);
}
