/*
 * test_ops.c: the control-operations table and its field checker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/ops.h"

#include <string.h>

static void
test_table_is_consistent(void **state)
{
    char err[256];
    json_t *empty = json_object();
    size_t i, j;

    (void) state;
    assert_true(s2a_nops >= 26);
    for (i = 0; i < s2a_nops; i++) {
        const s2a_op_t *op = &s2a_ops[i];
        assert_non_null(op->handler);
        assert_non_null(op->fields);
        assert_ptr_equal(s2a_op_find(op->name, op->dir), op);
        for (j = i + 1; j < s2a_nops; j++) {
            assert_false(op->dir == s2a_ops[j].dir
                         && strcmp(op->name, s2a_ops[j].name) == 0);
        }
        /* Every field list parses (an empty message fails only on a
         * missing field, never on the list itself). */
        if (s2a_op_check(op, empty, err, sizeof(err)) != S2A_OK) {
            assert_non_null(strstr(err, "is missing"));
        }
        /* A request that wants an answer carries its id. */
        if (op->dir == S2A_OP_TO_MASTER && op->reply != NULL) {
            assert_non_null(strstr(op->fields, "id:int"));
            /* (optional where it is also sent as a notification) */
        }
    }
    assert_null(s2a_op_find("reply", S2A_OP_TO_MASTER));
    assert_null(s2a_op_find("nope", S2A_OP_TO_WORKER));
    json_decref(empty);
}

static int
check(const char *name, const char *json, char *err, size_t errlen)
{
    json_t *msg = json_loads(json, 0, NULL);
    int rc;

    assert_non_null(msg);
    rc = s2a_op_check(s2a_op_find(name, S2A_OP_TO_MASTER), msg, err, errlen);
    json_decref(msg);
    return rc;
}

static void
test_fields_are_checked(void **state)
{
    char err[256];

    (void) state;
    assert_int_equal(check("token_state",
                           "{\"id\":1,\"token_id\":5,\"state\":\"active\"}",
                           err, sizeof(err)),
                     S2A_OK);
    assert_int_equal(check("token_state",
                           "{\"id\":1,\"token_id\":5,\"state\":\"active\","
                           "\"reason\":null,\"until\":9}",
                           err, sizeof(err)),
                     S2A_OK);
    assert_int_equal(check("token_state", "{\"id\":1,\"state\":\"active\"}",
                           err, sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err, "token_state: field token_id is missing");
    assert_int_equal(check("token_state",
                           "{\"id\":1,\"token_id\":\"5\",\"state\":\"x\"}", err,
                           sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err, "token_state: field token_id must be int");
    assert_int_equal(check("token_state",
                           "{\"id\":1,\"token_id\":5,\"state\":\"x\","
                           "\"until\":\"soon\"}",
                           err, sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err, "token_state: field until must be int");
    assert_int_equal(check("usage", "{\"rows\":{}}", err, sizeof(err)),
                     S2A_ERROR);
    assert_int_equal(check("ready", "{}", err, sizeof(err)), S2A_OK);
}

/* A task row that must be durable is a request (answered after the
 * commit); a row handed over may carry a task id (follow it) or a
 * prompt (submit it). */
static void
test_job_rows(void **state)
{
    const s2a_op_t *resume = s2a_op_find("job_resume", S2A_OP_TO_WORKER);
    char err[256];
    json_t *msg;

    (void) state;
    assert_non_null(s2a_op_find("task_write", S2A_OP_TO_MASTER)->reply);
    assert_int_equal(check("task_write",
                           "{\"id\":3,\"job_id\":\"job_1\",\"fields\":{}}", err,
                           sizeof(err)),
                     S2A_OK);
    assert_int_equal(check("task_write", "{\"job_id\":\"job_1\",\"fields\":{}}",
                           err, sizeof(err)),
                     S2A_ERROR);
    assert_string_equal(err, "task_write: field id is missing");
    msg = json_loads("{\"job_id\":\"job_1\",\"model\":\"sora-image\","
                     "\"created_at\":1,\"task_id\":\"task_1\","
                     "\"token_id\":2}",
                     0, NULL);
    assert_int_equal(s2a_op_check(resume, msg, err, sizeof(err)), S2A_OK);
    json_decref(msg);
    msg = json_loads("{\"job_id\":\"job_1\",\"model\":\"sora-image\","
                     "\"created_at\":1,\"prompt\":\"a cat\"}",
                     0, NULL);
    assert_int_equal(s2a_op_check(resume, msg, err, sizeof(err)), S2A_OK);
    json_decref(msg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_fields_are_checked),
        cmocka_unit_test(test_job_rows),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
