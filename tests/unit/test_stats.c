/*
 * test_stats.c: the exposition helpers of common/stats.c: histogram
 * bucket choice and rendering, label escaping, endpoint and route classes.
 */
#include "common/stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

static void
test_bucket(void **state)
{
    const double b[] = { 0.005, 0.01, 1 };

    (void) state;
    assert_int_equal(s2a_stats_bucket(b, 3, 0), 0);
    assert_int_equal(s2a_stats_bucket(b, 3, 0.005), 0); /* le is inclusive */
    assert_int_equal(s2a_stats_bucket(b, 3, 0.0051), 1);
    assert_int_equal(s2a_stats_bucket(b, 3, 1), 2);
    assert_int_equal(s2a_stats_bucket(b, 3, 1.5), 3); /* +Inf */
}

static void
test_histogram(void **state)
{
    const double b[] = { 0.5, 1 };
    const uint64_t counts[] = { 2, 0, 3 };
    struct evbuffer *out = evbuffer_new();
    char *text;

    (void) state;
    s2a_prom_histogram(out, "x", "route=\"a\"", b, 2, counts, 2500000, 1e-6);
    evbuffer_add(out, "", 1);
    text = (char *) evbuffer_pullup(out, -1);
    assert_string_equal(text,
                        "x_bucket{route=\"a\",le=\"0.5\"} 2\n"
                        "x_bucket{route=\"a\",le=\"1\"} 2\n"
                        "x_bucket{route=\"a\",le=\"+Inf\"} 5\n"
                        "x_sum{route=\"a\"} 2.5\n"
                        "x_count{route=\"a\"} 5\n");
    evbuffer_free(out);
    out = evbuffer_new();
    s2a_prom_histogram(out, "y", "", b, 2, counts, 7, 1);
    evbuffer_add(out, "", 1);
    text = (char *) evbuffer_pullup(out, -1);
    assert_non_null(
        strstr(text, "y_bucket{le=\"+Inf\"} 5\ny_sum 7\ny_count 5\n"));
    evbuffer_free(out);
}

static void
test_escape(void **state)
{
    char out[64], small[4];

    (void) state;
    assert_int_equal(s2a_prom_escape("a\"b\\c\nd", out, sizeof(out)), 10);
    assert_string_equal(out, "a\\\"b\\\\c\\nd");
    assert_int_equal(s2a_prom_escape("\"\"\"", small, sizeof(small)), 6);
    assert_string_equal(small, "\\\"\\");
}

static void
test_classes(void **state)
{
    const char *base = "http://h:1/backend";

    (void) state;
    assert_int_equal(s2a_stats_endpoint(base, "http://h:1/backend/nf/create"),
                     S2A_EP_NF_CREATE);
    assert_int_equal(
        s2a_stats_endpoint(base, "http://h:1/backend/nf/create/storyboard"),
        S2A_EP_NF_CREATE);
    assert_int_equal(s2a_stats_endpoint(base, "http://h:1/backend/nf/createx"),
                     S2A_EP_OTHER);
    assert_int_equal(
        s2a_stats_endpoint(base, "http://h:1/backend/v2/recent_tasks?limit=2"),
        S2A_EP_RECENT_TASKS);
    assert_int_equal(s2a_stats_endpoint(base, "http://h:1/backend/me"),
                     S2A_EP_ME);
    assert_int_equal(s2a_stats_endpoint(base, "http://other/backend/me"),
                     S2A_EP_OTHER);
    assert_int_equal(s2a_stats_route_class("models"), S2A_RC_MODELS);
    assert_int_equal(s2a_stats_route_class("nonsense"), S2A_RC_OTHER);
    assert_int_equal(s2a_stats_route_class(NULL), S2A_RC_OTHER);
    assert_int_equal(s2a_stats_route_class("videos"), S2A_RC_VIDEOS);
    assert_int_equal(s2a_stats_route_class("data"), S2A_RC_DATA);
    assert_int_equal(s2a_stats_route_class("keys"), S2A_RC_KEYS);
    assert_int_equal(s2a_stats_route_class("webhooks"), S2A_RC_WEBHOOKS);
    /* Every class's name is its own (the route table names classes). */
    for (int rc = 0; rc < S2A_RC_COUNT; rc++) {
        assert_int_equal(
            s2a_stats_route_class(s2a_stats_route_name((s2a_route_class_t) rc)),
            rc);
    }
    assert_int_equal(s2a_stats_status_class(0), 0);
    assert_int_equal(s2a_stats_status_class(503), 5);
}

static void
test_counters(void **state)
{
    s2a_stats_t *st = calloc(1, sizeof(*st));
    s2a_stats_health_t h;

    (void) state;
    s2a_stats_http(st, S2A_RC_MODELS, 200, 3000);
    s2a_stats_http(st, S2A_RC_MODELS, 200, 2000000);
    s2a_stats_http(st, S2A_RC_MODELS, 999, 1);
    assert_int_equal(st->http[S2A_RC_MODELS][100], 2);
    assert_int_equal(st->http[S2A_RC_MODELS][S2A_STATS_STATUS_N - 1], 1);
    assert_int_equal(st->http_lat[S2A_RC_MODELS].buckets[0], 2);
    assert_int_equal(st->http_lat[S2A_RC_MODELS].buckets[8], 1); /* 2.5 s */
    s2a_stats_upstream(st, 3, S2A_EP_ME, 200, 1000, 600);
    s2a_stats_upstream(st, 4, S2A_EP_ME, 502, 3000, 610);
    s2a_stats_upstream(st, 4, S2A_EP_ME, 0, 3000, 300); /* too old */
    s2a_stats_window(st, S2A_EP_ME, 620, &h);
    assert_int_equal(h.calls, 2);
    assert_int_equal(h.failures, 1);
    assert_int_equal(h.latency_ms, 4);
    s2a_stats_job_end(st, 0, s2a_stats_job_state("succeeded"), 4000);
    assert_int_equal(st->jobs[0][S2A_JS_SUCCEEDED], 1);
    assert_int_equal(st->job_dur[0].buckets[1], 1); /* le 5 s */
    s2a_stats_cache_hit(st, S2A_CH_REUSE);
    s2a_stats_cache_hit(st, S2A_CH_SERVED);
    s2a_stats_cache_hit(st, S2A_CH_SERVED);
    s2a_stats_cache_hit(st, S2A_CH_COUNT); /* ignored */
    s2a_stats_cache_download(st);
    assert_int_equal(st->cache_hits[S2A_CH_REUSE], 1);
    assert_int_equal(st->cache_hits[S2A_CH_SERVED], 2);
    assert_int_equal(st->cache_downloads, 1);
    free(st);
}

/* Row gauges: owned by one pid, claimed afresh by another, cleared by the
 * master when the owner is reaped. */
static void
test_rows(void **state)
{
    s2a_stats_t *st = calloc(1, sizeof(*st));

    (void) state;
    s2a_stats_job_running(st, 2, 100, 1, 1);
    s2a_stats_job_running(st, 2, 100, 1, 1);
    s2a_stats_job_queued(st, 2, 100, 1, 1);
    assert_int_equal(st->rows[2].running[1], 2);
    assert_int_equal(st->rows[2].queued[1], 1);
    s2a_stats_job_queued(st, 2, 100, 1, -1);
    assert_int_equal(st->rows[2].queued[1], 0);
    s2a_stats_job_queued(st, 2, 100, 0, 1);
    /* A new process in the row starts from zero. */
    s2a_stats_job_running(st, 2, 101, 0, 1);
    assert_int_equal(st->rows[2].pid, 101);
    assert_int_equal(st->rows[2].running[0], 1);
    assert_int_equal(st->rows[2].running[1], 0);
    assert_int_equal(st->rows[2].queued[0], 0);
    s2a_stats_job_queued(st, 2, 101, 1, 1);
    s2a_stats_row_gone(st, 2);
    assert_int_equal(st->rows[2].pid, 0);
    assert_int_equal(st->rows[2].running[0], 0);
    assert_int_equal(st->rows[2].queued[1], 0);
    /* Out of range: nothing moves, nothing breaks. */
    s2a_stats_job_queued(st, S2A_STATS_ROWS, 1, 0, 1);
    s2a_stats_job_queued(st, 0, 1, S2A_STATS_KINDS, 1);
    s2a_stats_row_gone(st, -1);
    assert_int_equal(st->rows[0].pid, 0);
    s2a_stats_worker_restarted(st);
    assert_int_equal(st->worker_restarts, 1);
    free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),   cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escape),   cmocka_unit_test(test_classes),
        cmocka_unit_test(test_counters), cmocka_unit_test(test_rows),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
