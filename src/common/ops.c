/*
 * ops.c: the control-channel operations table and its field checker
 * (see ops.h and docs/control-channel.md). Adding an operation is one
 * row here plus its handler on the receiving end.
 */
#include "common/ops.h"

#include <stdio.h>
#include <string.h>

#define TO_MASTER S2A_OP_TO_MASTER
#define TO_WORKER S2A_OP_TO_WORKER

/* clang-format off */
const s2a_op_t s2a_ops[] = {
    /* worker -> master: supervision */
    { "ready", TO_MASTER, "", NULL, s2a_op_ready, 0 },
    { "usage", TO_MASTER, "rows:arr", NULL, s2a_op_usage, S2A_OP_QUEUED },
    { "ping", TO_MASTER, "id:int", "", s2a_op_ping, 0 },
    /* worker -> master: runtime settings and sessions */
    { "set_setting", TO_MASTER, "id:int key:str value:str", "", s2a_op_set_settings, 0 },
    { "set_settings", TO_MASTER, "id:int values:obj", "", s2a_op_set_settings, 0 },
    { "revoke_session", TO_MASTER, "id:int nonce:str expires:int", "", s2a_op_revoke_session, 0 },
    { "throttle_save", TO_MASTER, "rows:arr", NULL, s2a_op_throttle_save, S2A_OP_QUEUED },
    /* worker -> master: the account pool */
    { "token_exists", TO_MASTER, "id:int sha256:str? email:str?", "exists:bool token_id:int? email:str?", s2a_op_token_exists, 0 },
    { "token_add", TO_MASTER, "id:int sha256:str fields:obj state:str?", "token_id:int? code:str? email:str?", s2a_op_token_add, 0 },
    { "token_update", TO_MASTER, "id:int? token_id:int fields:obj sha256:str? state:str?", "code:str?", s2a_op_token_update, 0 },
    { "token_state", TO_MASTER, "id:int? token_id:int state:str reason:str? until:int?", "code:str?", s2a_op_token_state, 0 },
    { "token_delete", TO_MASTER, "id:int token_id:int", "code:str?", s2a_op_token_delete, 0 },
    { "tokens_list", TO_MASTER, "id:int token_id:int? reveal:bool? before:int? limit:int?", "tokens:arr", s2a_op_tokens_list, 0 },
    { "stats", TO_MASTER, "id:int", "stats:obj", s2a_op_stats, 0 },
    { "token_refreshed", TO_MASTER, "token_id:int token:str sha256:str expiry_time:any rt:str? via:str?", NULL, s2a_op_token_refreshed, S2A_OP_QUEUED },
    { "token_refresh_failed", TO_MASTER, "token_id:int reason:str?", NULL, s2a_op_token_refresh_failed, S2A_OP_QUEUED },
    { "token_outcome", TO_MASTER, "token_id:int kind:str outcome:str message:str? until:int?", NULL, s2a_op_token_outcome, S2A_OP_QUEUED },
    { "video_submitted", TO_MASTER, "token_id:int", NULL, s2a_op_video_submitted, S2A_OP_QUEUED },
    { "tokens_batch", TO_MASTER, "id:int action:str ids:arr", "results:arr done:int failed:int", s2a_op_tokens_batch, 0 },
    /* worker -> master: generation records */
    { "task_write", TO_MASTER, "id:int job_id:str fields:obj", "code:str?", s2a_op_task_write, 0 },
    { "task_record", TO_MASTER, "job_id:str fields:obj", NULL, s2a_op_task_record, S2A_OP_QUEUED },
    { "request_log", TO_MASTER, "fields:obj", NULL, s2a_op_request_log, S2A_OP_QUEUED },
    { "logs_list", TO_MASTER, "id:int limit:int? status:str? model:str? operation:str? token_id:int? since:int? until:int? before:int?", "rows:arr", s2a_op_logs_list, 0 },
    { "tasks_list", TO_MASTER, "id:int limit:int? status:str? model:str? job_id:str? token_id:int? since:int? until:int? before:int?", "rows:arr", s2a_op_tasks_list, 0 },
    { "video_get", TO_MASTER, "id:int job_id:str owner:int?", "row:obj?", s2a_op_video_get, 0 },
    { "videos_list", TO_MASTER, "id:int limit:int after:str? order:str? owner:int?", "rows:arr has_more:bool", s2a_op_videos_list, 0 },
    { "video_delete", TO_MASTER, "id:int job_id:str owner:int?", "row:obj? code:str?", s2a_op_video_delete, 0 },
    /* worker -> master: webhooks (src/master/webhooks.c) */
    { "webhooks_list", TO_MASTER, "id:int", "rows:arr", s2a_op_webhooks_list, 0 },
    { "webhook_create", TO_MASTER, "id:int fields:obj", "webhook:obj? secret:str? code:str?", s2a_op_webhook_create, 0 },
    { "webhook_update", TO_MASTER, "id:int webhook_id:int fields:obj", "webhook:obj? secret:str? code:str?", s2a_op_webhook_update, 0 },
    { "webhook_delete", TO_MASTER, "id:int webhook_id:int", "code:str?", s2a_op_webhook_delete, 0 },
    { "webhook_deliveries", TO_MASTER, "id:int webhook_id:int limit:int?", "rows:arr? code:str?", s2a_op_webhook_deliveries, 0 },
    { "webhook_test", TO_MASTER, "id:int webhook_id:int", "delivery:obj? code:str?", s2a_op_webhook_test, 0 },
    { "webhook_result", TO_MASTER, "delivery_id:int attempt:int status:int error:str?", NULL, s2a_op_webhook_result, S2A_OP_QUEUED },
    /* worker -> master: named API keys */
    { "key_create", TO_MASTER, "id:int fields:obj mac:str hint:str", "key:obj?", s2a_op_key_create, 0 },
    { "key_update", TO_MASTER, "id:int key_id:int fields:obj", "key:obj? code:str?", s2a_op_key_update, 0 },
    { "key_delete", TO_MASTER, "id:int key_id:int", "code:str?", s2a_op_key_delete, 0 },
    { "keys_list", TO_MASTER, "id:int key_id:int?", "keys:arr code:str?", s2a_op_keys_list, 0 },
    { "key_usage_get", TO_MASTER, "id:int key_id:int from:str? to:str?", "rows:arr code:str?", s2a_op_key_usage_get, 0 },
    { "key_usage", TO_MASTER, "rows:arr", NULL, s2a_op_key_usage, S2A_OP_QUEUED },
    /* worker -> master: characters (src/master/characters.c) */
    { "character_write", TO_MASTER, "id:int public_id:str fields:obj", "code:str? row:obj?", s2a_op_character_write, 0 },
    { "characters_list", TO_MASTER, "id:int token_id:int? owner:int? state:str? username:str? search:str? limit:int? offset:int?", "rows:arr total:int", s2a_op_characters_list, 0 },
    { "character_get", TO_MASTER, "id:int public_id:str? cameo_id:str? character_id:str? username:str? owner:int?", "row:obj?", s2a_op_character_get, 0 },
    { "character_delete", TO_MASTER, "id:int public_id:str", "code:str?", s2a_op_character_delete, 0 },
    { "character_owners", TO_MASTER, "id:int usernames:arr", "rows:arr", s2a_op_character_owners, 0 },
    { "character_delete_result", TO_MASTER, "public_id:str attempt:int ok:bool error:str?", NULL, s2a_op_character_delete_result, S2A_OP_QUEUED },
#ifdef S2A_TEST_HOOKS
    { "sweep_now", TO_MASTER, "", NULL, s2a_op_sweep_now, S2A_OP_TEST_ONLY },
#endif

    /* master -> worker */
    { "reply", TO_WORKER, "re:any ok:bool error:str?", NULL, s2a_op_reply, 0 },
    { "drain", TO_WORKER, "stop_accept_ms:int deadline_ms:int", NULL, s2a_op_drain, 0 },
    { "reopen_logs", TO_WORKER, "", NULL, s2a_op_reopen_logs, 0 },
    { "refresh_token", TO_WORKER, "token_id:int st:str? rt:str? client_id:str? proxy:str?", NULL, s2a_op_refresh_token, 0 },
    { "quota_check", TO_WORKER, "token_id:int proxy:str?", NULL, s2a_op_quota_check, 0 },
    { "job_resume", TO_WORKER, "job_id:str task_id:str? token_id:int? model:str mode:str? created_at:int params:obj? prompt:str? stages:arr?", NULL, s2a_op_job_resume, 0 },
    { "webhook_send", TO_WORKER, "delivery_id:int attempt:int url:str headers:obj body:str public_only:bool timeout_ms:int", NULL, s2a_op_webhook_send, 0 },
    { "character_purge", TO_WORKER, "public_id:str character_id:str token_id:int attempt:int", NULL, s2a_op_character_purge, 0 },
};
/* clang-format on */

const size_t s2a_nops = S2A_NELEMS(s2a_ops);

const s2a_op_t *
s2a_op_find(const char *name, s2a_op_dir_t dir)
{
    size_t i;

    for (i = 0; i < s2a_nops; i++) {
        if (s2a_ops[i].dir == dir && strcmp(s2a_ops[i].name, name) == 0) {
            return &s2a_ops[i];
        }
    }
    return NULL;
}

static bool
type_ok(const char *type, size_t tlen, const json_t *v)
{
#define IS(t) (tlen == sizeof(t) - 1 && memcmp(type, t, tlen) == 0)
    if (IS("any")) {
        return true;
    }
    if (IS("str")) {
        return json_is_string(v);
    }
    if (IS("int")) {
        return json_is_integer(v);
    }
    if (IS("bool")) {
        return json_is_boolean(v);
    }
    if (IS("obj")) {
        return json_is_object(v);
    }
    if (IS("arr")) {
        return json_is_array(v);
    }
#undef IS
    return false;
}

int
s2a_op_check(const s2a_op_t *op, json_t *msg, char *err, size_t errlen)
{
    const char *p = op->fields, *colon, *end;
    char name[64];
    size_t nlen, tlen;
    bool optional;
    json_t *v;

    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        end = strchr(p, ' ');
        if (end == NULL) {
            end = p + strlen(p);
        }
        colon = memchr(p, ':', (size_t) (end - p));
        if (colon == NULL) {
            snprintf(err, errlen, "%s: bad field list", op->name);
            return S2A_ERROR;
        }
        nlen = (size_t) (colon - p);
        optional = end[-1] == '?';
        tlen = (size_t) (end - colon - 1) - (optional ? 1 : 0);
        if (nlen >= sizeof(name)) {
            snprintf(err, errlen, "%s: bad field list", op->name);
            return S2A_ERROR;
        }
        memcpy(name, p, nlen);
        name[nlen] = '\0';
        v = json_object_get(msg, name);
        /* JSON null stands for an optional field left out. */
        if (v == NULL || (optional && json_is_null(v))) {
            if (!optional) {
                snprintf(err, errlen, "%s: field %s is missing", op->name,
                         name);
                return S2A_ERROR;
            }
        } else if (!type_ok(colon + 1, tlen, v)) {
            snprintf(err, errlen, "%s: field %s must be %.*s", op->name, name,
                     (int) tlen, colon + 1);
            return S2A_ERROR;
        }
        p = end;
    }
    return S2A_OK;
}
