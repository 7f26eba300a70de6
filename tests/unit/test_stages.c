/*
 * test_stages.c: a job's stage history (worker/stages.c): the collapsed
 * run of percentages, the bound, messages cut on a UTF-8 boundary, when
 * a record carries the list, and a history loaded from a row.
 */
#include "worker/stages.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char *
field(const s2a_stages_t *s, size_t i, const char *name)
{
    const s2a_stage_t *e = &s->v[i];

    return strcmp(name, "stage") == 0 ? e->stage
        : strcmp(name, "status") == 0 ? e->status
                                      : e->message;
}

static void
test_collapse(void **state)
{
    s2a_stages_t s = { 0 };
    json_t *fields = json_object();

    (void) state;
    s2a_stages_add(&s, "generation", "started", -1, "Initializing", 1000);
    assert_true(s2a_stages_attach(&s, fields, false));
    assert_int_equal(json_array_size(json_object_get(fields, "stages")), 1);
    assert_false(s2a_stages_attach(&s, fields, false)); /* nothing new */
    s2a_stages_add(&s, "generation", "processing", 0, "0%", 1100);
    assert_true(s2a_stages_attach(&s, fields, false));
    s2a_stages_add(&s, "generation", "processing", 40, "40%", 1200);
    s2a_stages_add(&s, "generation", "processing", 80, "80%", 1300);
    assert_int_equal(s.n, 2);
    assert_string_equal(field(&s, 1, "message"), "80%");
    assert_int_equal(s.v[1].t, 1300);
    /* A percentage alone is no new stage; the end carries it anyway. */
    assert_false(s2a_stages_attach(&s, fields, false));
    assert_true(s2a_stages_attach(&s, fields, true));
    assert_null(json_object_get(
        json_array_get(json_object_get(fields, "stages"), 0), "progress"));
    assert_int_equal(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(fields, "stages"), 1), "progress")),
        80);
    s2a_stages_add(&s, "generation", "completed", 100, "done", 1400);
    s2a_stages_add(&s, "generation", "processing", 0, "again", 1500);
    assert_int_equal(s.n, 4); /* not collapsed */
    json_decref(fields);
    s2a_stages_cleanup(&s);
    assert_int_equal(s.n, 0);
    assert_null(s.v);
}

static void
test_bounds(void **state)
{
    s2a_stages_t s = { 0 };
    char msg[600];
    int i;

    (void) state;
    for (i = 0; i < 100; i++) {
        s2a_stages_add(&s, i % 2 ? "cache" : "upload", "started", -1, "x", i);
    }
    assert_int_equal(s.n, S2A_STAGES_MAX);
    assert_string_equal(field(&s, 0, "stage"), "upload");
    /* The last slot holds the latest. */
    assert_int_equal(s.v[S2A_STAGES_MAX - 1].t, 99);
    s2a_stages_cleanup(&s);

    /* 255 ASCII bytes, then a 3-byte character across the cut. */
    memset(msg, 'a', 255);
    memcpy(msg + 255, "\xe2\x82\xac tail", 9);
    s2a_stages_add(&s, "error", "error", -1, msg, 1);
    assert_int_equal(strlen(field(&s, 0, "message")), 255);
    s2a_stages_add(&s, "error", "error", -1, NULL, 2);
    assert_string_equal(field(&s, 1, "message"), "");
    s2a_stages_add(&s, NULL, "error", -1, "no stage", 3);
    assert_int_equal(s.n, 2);
    s2a_stages_cleanup(&s);
}

static void
test_load(void **state)
{
    s2a_stages_t s = { 0 };
    json_t *row = json_loads(
        "[{\"stage\":\"generation\",\"status\":\"started\",\"message\":\"a\","
        "\"t\":1},"
        "{\"stage\":7,\"status\":\"x\",\"t\":2},"
        "{\"stage\":\"generation\",\"status\":\"processing\",\"progress\":"
        "500,\"t\":3},"
        "\"junk\"]",
        0, NULL);
    json_t *fields = json_object();

    (void) state;
    s2a_stages_load(&s, row);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.v[1].progress, -1);
    assert_string_equal(field(&s, 1, "message"), "");
    assert_false(s2a_stages_attach(&s, fields, true)); /* as the row has it */
    s2a_stages_add(&s, "generation", "processing", 50, "50%", 4);
    assert_int_equal(s.n, 2); /* goes on collapsing */
    assert_true(s2a_stages_attach(&s, fields, true));
    s2a_stages_load(&s, NULL);
    assert_int_equal(s.n, 0);
    assert_null(s2a_stages_json(&s));
    json_decref(row);
    json_decref(fields);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collapse),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
