/*
 * poolbatch.c: "tokens_batch", the operator's enable, disable or delete
 * of many tokens at once (POST /api/tokens/batch/{action}). Every id is
 * applied in the current batch's transaction and answered on its own
 * (an unknown id fails alone); the shm rows of the changed tokens are
 * rebuilt once, after the commit, by pool.c as for a single change.
 */
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/pool.h"
#include "master/state.h"

#include <string.h>

typedef enum {
    BATCH_ENABLE = 0,
    BATCH_DISABLE,
    BATCH_DELETE
} batch_action_t;

static int
action_of(const char *name, batch_action_t *out)
{
    static const char *const names[] = { "enable", "disable", "delete" };
    size_t i;

    for (i = 0; name != NULL && i < S2A_NELEMS(names); i++) {
        if (strcmp(names[i], name) == 0) {
            *out = (batch_action_t) i;
            return S2A_OK;
        }
    }
    return S2A_ERROR;
}

/* One id: S2A_OK, S2A_DECLINED (no such token) or S2A_ERROR. */
static int
apply_one(batch_action_t action, json_int_t id, int64_t now)
{
    int rc;

    if (action == BATCH_DELETE) {
        rc = s2a_db_token_delete(s2a_master.db, id);
        if (rc == S2A_OK) {
            s2a_pool_touched(-id);
        }
        return rc;
    }
    rc = s2a_db_token_set_state(
        s2a_master.db, id, action == BATCH_ENABLE ? "active" : "disabled",
        action == BATCH_ENABLE ? "enabled by the operator"
                               : "disabled by the operator",
        0, now);
    if (rc == S2A_OK) {
        s2a_pool_touched(id);
    }
    return rc;
}

void
s2a_op_tokens_batch(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    const char *name = json_string_value(json_object_get(msg, "action"));
    json_t *ids = json_object_get(msg, "ids");
    json_t *reply = s2a_ctlserver_reply_for(msg), *results, *v, *r;
    batch_action_t action;
    json_int_t id, ok = 0, failed = 0;
    int64_t now = s2a_now();
    size_t i;
    int rc;

    if (action_of(name, &action) != S2A_OK
        || json_array_size(ids) > S2A_TOKENS_BATCH_MAX)
    {
        s2a_ctlserver_fail(proc, reply,
                           "tokens_batch needs an action (enable, disable, "
                           "delete) and at most S2A_TOKENS_BATCH_MAX ids");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    results = json_array();
    json_array_foreach (ids, i, v) {
        id = json_is_integer(v) ? json_integer_value(v) : 0;
        rc = id > 0 ? apply_one(action, id, now) : S2A_DECLINED;
        if (rc == S2A_OK) {
            r = json_pack("{s:I, s:b}", "id", id, "ok", 1);
            ok++;
        } else {
            r = json_pack("{s:O, s:b, s:s}", "id", v, "ok", 0, "detail",
                          rc == S2A_DECLINED ? "Token not found"
                                             : "database write failed");
            failed++;
        }
        json_array_append_new(results, r);
    }
    json_object_set_new(reply, "results", results);
    json_object_set_new(reply, "done", json_integer(ok));
    json_object_set_new(reply, "failed", json_integer(failed));
    if (ok > 0) {
        s2a_log(LOG_NOTICE, 0,
                "tokens: %s of %lld by the operator (%lld not "
                "found or failed)",
                name, (long long) ok, (long long) failed);
    }
    s2a_ctlserver_reply_later(proc, reply);
}
