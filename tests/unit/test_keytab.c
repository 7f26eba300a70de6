/*
 * test_keytab.c: the shared API key table (lookup by MAC with a thousand
 * keys, rpm windows, job admission against quota and concurrency, leases
 * and their end, periods, a dead owner's repair) and the key fields the
 * admin API accepts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/crypto.h"
#include "common/keyspec.h"
#include "common/keytab.h"
#include "common/models.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS 1000

static s2a_keytab_t *kt;

static int
setup(void **state)
{
    (void) state;
    kt = s2a_keytab_create(NKEYS + 8, 256);
    return kt == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
    (void) state;
    s2a_keytab_destroy(kt);
    return 0;
}

static void
mac_of(int64_t id, uint8_t mac[S2A_KEY_MAC_LEN])
{
    char key[32];

    snprintf(key, sizeof(key), "sk-test-%lld", (long long) id);
    s2a_sha256(key, strlen(key), mac);
}

static void
spec_of(int64_t id, s2a_keyspec_t *k)
{
    memset(k, 0, sizeof(*k));
    k->id = id;
    mac_of(id, k->mac);
    k->enabled = 1;
    k->rpm = S2A_KEY_UNLIMITED;
    k->concurrency = S2A_KEY_UNLIMITED;
    k->quota[S2A_KIND_IMAGE] = S2A_KEY_UNLIMITED;
    k->quota[S2A_KIND_VIDEO] = S2A_KEY_UNLIMITED;
}

static int
put(const s2a_keyspec_t *k)
{
    int slot;

    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    slot = s2a_keytab_put_locked(kt, k);
    s2a_keytab_reindex_locked(kt);
    s2a_keytab_unlock(kt);
    return slot;
}

static void
test_lookup_thousand(void **state)
{
    s2a_keyspec_t k;
    uint8_t mac[S2A_KEY_MAC_LEN];
    int64_t id;
    int slot;

    (void) state;
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    for (id = 1; id <= NKEYS; id++) {
        spec_of(id, &k);
        assert_true(s2a_keytab_put_locked(kt, &k) >= 0);
    }
    s2a_keytab_reindex_locked(kt);
    for (id = 1; id <= NKEYS; id++) {
        mac_of(id, mac);
        slot = s2a_keytab_find_locked(kt, mac);
        assert_true(slot >= 0);
        assert_int_equal(s2a_keytab_rows(kt)[slot].spec.id, id);
    }
    mac_of(NKEYS + 1, mac);
    assert_int_equal(s2a_keytab_find_locked(kt, mac), -1);
    /* Every other key removed: the rest still found, the others not. */
    for (id = 2; id <= NKEYS; id += 2) {
        assert_int_equal(s2a_keytab_remove_locked(kt, id), S2A_OK);
    }
    s2a_keytab_reindex_locked(kt);
    for (id = 1; id <= NKEYS; id++) {
        mac_of(id, mac);
        slot = s2a_keytab_find_locked(kt, mac);
        if (id % 2 == 0) {
            assert_int_equal(slot, -1);
        } else {
            assert_true(slot >= 0);
            assert_int_equal(s2a_keytab_rows(kt)[slot].spec.id, id);
        }
    }
    /* Freed slots are reused. */
    spec_of(NKEYS + 1, &k);
    slot = s2a_keytab_put_locked(kt, &k);
    assert_int_equal(slot, 1);
    s2a_keytab_unlock(kt);
}

static void
test_table_full(void **state)
{
    s2a_keytab_t *small = s2a_keytab_create(2, 16);
    s2a_keyspec_t k;

    (void) state;
    assert_non_null(small);
    assert_int_equal(s2a_keytab_lock(small), S2A_OK);
    spec_of(1, &k);
    assert_int_equal(s2a_keytab_put_locked(small, &k), 0);
    spec_of(2, &k);
    assert_int_equal(s2a_keytab_put_locked(small, &k), 1);
    spec_of(3, &k);
    assert_int_equal(s2a_keytab_put_locked(small, &k), -1);
    s2a_keytab_unlock(small);
    s2a_keytab_destroy(small);
    s2a_keytab = kt;
}

static void
test_rpm_window(void **state)
{
    s2a_keyspec_t k;
    s2a_rpm_info_t info;
    int slot, i;
    int64_t t0 = 5000000;

    (void) state;
    spec_of(1, &k);
    k.rpm = 10;
    slot = put(&k);
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    for (i = 0; i < 10; i++) {
        assert_int_equal(s2a_keytab_rpm_take(kt, slot, 10, t0 + i, &info),
                         S2A_OK);
        assert_int_equal(info.limit, 10);
        assert_int_equal(info.remaining, 9 - i);
        assert_int_equal(info.reset_ms, S2A_RPM_WINDOW_MS - i);
    }
    /* Full until the window that the first request opened ends. */
    assert_int_equal(s2a_keytab_rpm_take(kt, slot, 10, t0 + 59999, &info),
                     S2A_DECLINED);
    assert_int_equal(info.remaining, 0);
    assert_int_equal(info.reset_ms, 1);
    assert_int_equal(s2a_keytab_rpm_take(kt, slot, 10, t0 + 60000, &info),
                     S2A_OK);
    assert_int_equal(info.remaining, 9);
    assert_int_equal(info.reset_ms, S2A_RPM_WINDOW_MS);
    s2a_keytab_unlock(kt);

    /* Unlimited: always admitted, nothing to report. */
    spec_of(2, &k);
    slot = put(&k);
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(
            s2a_keytab_rpm_take(kt, slot, S2A_KEY_UNLIMITED, t0, &info),
            S2A_OK);
    }
    assert_int_equal(info.limit, S2A_KEY_UNLIMITED);
    s2a_keytab_unlock(kt);
}

/* Four processes at once against one window: exactly `rpm` pass. */
static void
test_rpm_exact_across_processes(void **state)
{
    s2a_keyspec_t k;
    s2a_rpm_info_t info;
    s2a_keyrow_t *row;
    pid_t pids[4];
    int slot, i, n, st;

    (void) state;
    spec_of(3, &k);
    k.rpm = 5000;
    slot = put(&k);
    row = &s2a_keytab_rows(kt)[slot];
    for (i = 0; i < 4; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            for (n = 0; n < 10000; n++) {
                if (s2a_keytab_rpm_take(kt, slot, 5000, 1000, &info) == S2A_OK)
                {
                    atomic_fetch_add(&row->jobs, 1);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
    }
    assert_int_equal(atomic_load(&row->jobs), 5000);
    assert_int_equal(s2a_keytab_rpm_take(kt, slot, 5000, 1000, &info),
                     S2A_DECLINED);
}

static void
test_admit_quota_and_concurrency(void **state)
{
    s2a_keyspec_t k;
    s2a_keylease_t l[8];
    s2a_keyrow_t *row;
    int64_t now = 1800000000;
    int slot;

    (void) state;
    spec_of(7, &k);
    k.concurrency = 3;
    k.quota[S2A_KIND_VIDEO] = 4;
    k.period = S2A_PERIOD_DAY;
    slot = put(&k);
    row = &s2a_keytab_rows(kt)[slot];
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    /* All or none: 4 would pass the concurrency of 3. */
    assert_int_equal(
        s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 4, now, getpid(), l),
        S2A_KEY_ADMIT_CONCURRENCY);
    assert_int_equal(row->inflight, 0);
    assert_int_equal(
        s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 3, now, getpid(), l),
        S2A_KEY_ADMIT_OK);
    assert_int_equal(row->inflight, 3);
    assert_int_equal(row->pending[S2A_KIND_VIDEO], 3);
    assert_int_equal(s2a_keytab_admit_locked(kt, slot, S2A_KIND_IMAGE, 1, now,
                                             getpid(), &l[3]),
                     S2A_KEY_ADMIT_CONCURRENCY);
    /* One completes (counted), one fails (not counted). */
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[0], true, now), S2A_OK);
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[1], false, now),
                     S2A_OK);
    /* Exactly once. */
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[0], true, now),
                     S2A_DECLINED);
    assert_int_equal(row->used[S2A_KIND_VIDEO], 1);
    assert_int_equal(row->inflight, 1);
    /* used 1 + running 1 + 2 = 4: the quota; one more is refused. */
    assert_int_equal(s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 2, now,
                                             getpid(), &l[3]),
                     S2A_KEY_ADMIT_OK);
    assert_int_equal(row->inflight, 3);
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[3], true, now), S2A_OK);
    assert_int_equal(s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 1, now,
                                             getpid(), &l[5]),
                     S2A_KEY_ADMIT_QUOTA);
    /* Images have no quota here. */
    assert_int_equal(s2a_keytab_admit_locked(kt, slot, S2A_KIND_IMAGE, 1, now,
                                             getpid(), &l[5]),
                     S2A_KEY_ADMIT_OK);
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[5], true, now), S2A_OK);
    assert_int_equal(s2a_keytab_used(row, S2A_KIND_VIDEO, now), 2);
    /* The next UTC day: the completed ones no longer count. */
    assert_int_equal(s2a_keytab_used(row, S2A_KIND_VIDEO, now + 86400), 0);
    assert_int_equal(s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 1,
                                             now + 86400, getpid(), &l[5]),
                     S2A_KEY_ADMIT_OK);
    assert_int_equal(row->used[S2A_KIND_VIDEO], 0);
    /* A dead worker's leases: released by the master. */
    assert_int_equal(s2a_keytab_release_owner_locked(kt, getpid()), 3);
    assert_int_equal(row->inflight, 0);
    assert_int_equal(row->pending[S2A_KIND_VIDEO], 0);
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l[2], true, now),
                     S2A_DECLINED);
    s2a_keytab_unlock(kt);
}

static void
test_deleted_key_keeps_slot_for_leases(void **state)
{
    s2a_keyspec_t k;
    s2a_keylease_t l;
    int slot;

    (void) state;
    spec_of(9, &k);
    slot = put(&k);
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    assert_int_equal(
        s2a_keytab_admit_locked(kt, slot, S2A_KIND_IMAGE, 1, 0, getpid(), &l),
        S2A_KEY_ADMIT_OK);
    assert_int_equal(s2a_keytab_remove_locked(kt, 9), S2A_OK);
    assert_int_equal(s2a_keytab_rows(kt)[slot].spec.id, -9);
    s2a_keytab_reindex_locked(kt);
    assert_int_equal(s2a_keytab_find_locked(kt, k.mac), -1);
    /* Another key cannot take the slot while the lease lives. */
    spec_of(10, &k);
    assert_int_not_equal(s2a_keytab_put_locked(kt, &k), slot);
    assert_int_equal(s2a_keytab_lease_end_locked(kt, &l, true, 0), S2A_OK);
    assert_int_equal(s2a_keytab_rows(kt)[slot].spec.id, 0);
    s2a_keytab_unlock(kt);
}

static void
test_repair_after_dead_owner(void **state)
{
    s2a_keyspec_t k;
    s2a_keylease_t l[2];
    s2a_keyrow_t *row;
    pid_t pid;
    int slot, st;

    (void) state;
    spec_of(11, &k);
    k.concurrency = 2;
    slot = put(&k);
    row = &s2a_keytab_rows(kt)[slot];
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Takes two leases and dies holding the lock. */
        s2a_keytab_lock(kt);
        s2a_keytab_admit_locked(kt, slot, S2A_KIND_VIDEO, 2, 0, getpid(), l);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_int_equal(row->inflight, 2);
    assert_int_equal(s2a_keytab_lock(kt), S2A_OK);
    assert_int_equal(row->inflight, 0);
    assert_int_equal(row->pending[S2A_KIND_VIDEO], 0);
    assert_int_equal(kt->repairs, 1);
    assert_true(s2a_keytab_find_locked(kt, k.mac) == slot);
    s2a_keytab_unlock(kt);
}

static void
test_periods(void **state)
{
    (void) state;
    /* 2026-12-31T13:00:00Z */
    assert_int_equal(s2a_key_period_start(S2A_PERIOD_DAY, 1798722000),
                     1798675200);
    assert_int_equal(s2a_key_period_end(S2A_PERIOD_DAY, 1798722000),
                     1798761600);
    assert_int_equal(s2a_key_period_start(S2A_PERIOD_MONTH, 1798722000),
                     1796083200); /* 2026-12-01 */
    assert_int_equal(s2a_key_period_end(S2A_PERIOD_MONTH, 1798722000),
                     1798761600); /* 2027-01-01 */
    assert_int_equal(s2a_key_period_start(S2A_PERIOD_TOTAL, 1798722000), 0);
    assert_int_equal(s2a_key_period_end(S2A_PERIOD_TOTAL, 1798722000), 0);
    assert_int_equal(s2a_keytab_group_hash(NULL), 0);
    assert_int_equal(s2a_keytab_group_hash(""), 0);
    assert_true(s2a_keytab_group_hash("gold") != 0);
    assert_true(s2a_keytab_group_hash("gold")
                != s2a_keytab_group_hash("silver"));
}

/* keyspec_check on the text `body`; returns the normalised fields. */
static json_t *
check(const char *body, bool create, int want)
{
    json_t *in = json_loads(body, 0, NULL), *out = json_object();
    char err[256] = "";
    int rc;

    assert_non_null(in);
    rc = s2a_keyspec_check(in, create, out, err, sizeof(err));
    json_decref(in);
    assert_int_equal(rc, want);
    if (rc != S2A_OK) {
        assert_true(err[0] != '\0');
        json_decref(out);
        return NULL;
    }
    return out;
}

static void
test_keyspec(void **state)
{
    json_t *out;
    char *text;

    (void) state;
    out = check("{\"name\":\"a\",\"rpm\":null,\"models\":[\"sora-video-10s\","
                "\"sora-image\",\"sora-image\"],\"token_group\":\"\","
                "\"quota_period\":\"day\",\"id\":3,\"usage\":{}}",
                true, S2A_OK);
    text = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text,
                        "{\"models\":[\"sora-image\",\"sora-video-10s\"],"
                        "\"name\":\"a\",\"quota_period\":\"day\","
                        "\"rpm\":null,\"token_group\":null}");
    free(text);
    json_decref(out);
    check("{}", true, S2A_ERROR);
    out = check("{}", false, S2A_OK);
    assert_int_equal(json_object_size(out), 0);
    json_decref(out);
    check("[]", false, S2A_ERROR);
    check("{\"name\":\"a\",\"rpm\":0}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"rpm\":10000001}", true, S2A_ERROR);
    json_decref(check("{\"name\":\"a\",\"image_quota\":0}", true, S2A_OK));
    check("{\"name\":\"a\",\"expires_at\":0}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"models\":[1]}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"models\":\"sora-image\"}", true, S2A_ERROR);
    check("{\"name\":\"a\\u0001\"}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"token_group\":\"a/b\"}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"enabled\":\"yes\"}", true, S2A_ERROR);
    check("{\"name\":\"a\",\"key\":\"sk-x\"}", true, S2A_ERROR);

    assert_true(s2a_keyspec_group_ok("a.b_c-9"));
    assert_false(s2a_keyspec_group_ok(""));
    assert_int_equal(s2a_keyspec_period(NULL), S2A_PERIOD_TOTAL);
    assert_int_equal(s2a_keyspec_period("month"), S2A_PERIOD_MONTH);
    assert_string_equal(s2a_keyspec_period_name(S2A_PERIOD_DAY), "day");
    assert_int_equal(s2a_keyspec_models_mask(NULL), 0);
    assert_int_equal(s2a_keyspec_models_mask("[\"sora-image\"]"), 1);
    assert_true(s2a_keyspec_model_allowed(1, 0));
    assert_false(s2a_keyspec_model_allowed(1, 3));
    assert_true(s2a_keyspec_model_allowed(0, 3));
    /* Only unknown ids: nothing allowed, not everything. */
    assert_false(
        s2a_keyspec_model_allowed(s2a_keyspec_models_mask("[\"old\"]"), 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_thousand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpm_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rpm_exact_across_processes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admit_quota_and_concurrency, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_key_keeps_slot_for_leases,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_repair_after_dead_owner, setup,
                                        teardown),
        cmocka_unit_test(test_periods),
        cmocka_unit_test(test_keyspec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
