/*
 * pool.c: the account pool in the master. Token mutations from workers
 * are written to SQLite in the current batch; once it committed, the
 * touched tokens' shm rows are rebuilt. Also the token policy: what an
 * outcome, a rate limit or a run of errors does to a token's state.
 *
 * Rows are read and unsealed before the shm lock is taken; the lock is
 * held only to copy them in.
 */
#include "master/pool.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* A shm row to put (unsealed AT and proxy copied out), or a removal. */
typedef struct staged_s {
    s2a_shm_token_t t;
    int64_t remove_id; /* > 0: remove this token instead */
    char *at;
    char *proxy;
} staged_t;

static int64_t *touched; /* tokens changed in the current batch */
static size_t n_touched, cap_touched;
static staged_t *staged;
static size_t n_staged, cap_staged;

static staged_t *
stage_slot(void)
{
    staged_t *grown;
    size_t cap;

    if (n_staged == cap_staged) {
        cap = cap_staged == 0 ? 16 : cap_staged * 2;
        grown = realloc(staged, cap * sizeof(*grown));
        if (grown == NULL) {
            return NULL;
        }
        staged = grown;
        cap_staged = cap;
    }
    memset(&staged[n_staged], 0, sizeof(staged[0]));
    return &staged[n_staged++];
}

static void
stage_token(const s2a_shm_token_t *t, const char *at, const char *proxy,
            void *arg)
{
    staged_t *s = stage_slot();

    S2A_UNUSED(arg);
    if (s == NULL) {
        return;
    }
    s->t = *t;
    s->at = strdup(at != NULL ? at : "");
    s->proxy = proxy != NULL ? strdup(proxy) : NULL;
    /* A token without its own proxy would go direct: drop it instead
     * (it is loaded again at its next change or the next reload). */
    if (s->at == NULL || (proxy != NULL && s->proxy == NULL)) {
        free(s->at);
        free(s->proxy);
        n_staged--;
        s2a_log(LOG_ERR, 0, "out of memory staging token %lld",
                (long long) t->id);
    }
}

/* Copies every staged row into shm under one short hold of the lock. */
static void
publish_staged(void)
{
    size_t i, full = 0;
    int64_t first_full = 0;
    int slot;

    if (n_staged > 0 && s2a_shm_lock(s2a_master.shm) == S2A_OK) {
        for (i = 0; i < n_staged; i++) {
            if (staged[i].remove_id > 0) {
                s2a_shm_token_remove_locked(s2a_master.shm,
                                            staged[i].remove_id);
                continue;
            }
            slot = s2a_shm_token_put_locked(s2a_master.shm, &staged[i].t,
                                            staged[i].at);
            if (slot >= 0) {
                s2a_shm_token_set_proxy_locked(s2a_master.shm, slot,
                                               staged[i].proxy);
            } else if (full++ == 0) {
                first_full = staged[i].t.id;
            }
        }
        s2a_shm_unlock(s2a_master.shm);
    }
    for (i = 0; i < n_staged; i++) {
        if (staged[i].at != NULL) {
            OPENSSL_cleanse(staged[i].at, strlen(staged[i].at));
            free(staged[i].at);
        }
        free(staged[i].proxy);
    }
    n_staged = 0;
    if (full > 0) {
        s2a_log(LOG_ERR, 0,
                "shared table full: %zu tokens (first %lld) not schedulable; "
                "raise [limits] max_tokens",
                full, (long long) first_full);
    }
}

int
s2a_pool_load_all(void)
{
    int rc =
        s2a_db_tokens_load(s2a_master.db, s2a_master.key, 0, stage_token, NULL);

    publish_staged();
    return rc;
}

void
s2a_pool_touched(int64_t id)
{
    int64_t *grown;

    if (n_touched == cap_touched) {
        size_t cap = cap_touched == 0 ? 16 : cap_touched * 2;
        grown = realloc(touched, cap * sizeof(*grown));
        if (grown == NULL) {
            return;
        }
        touched = grown;
        cap_touched = cap;
    }
    touched[n_touched++] = id;
}

void
s2a_pool_committed(bool ok)
{
    staged_t *s;
    size_t i;

    for (i = 0; ok && i < n_touched; i++) {
        if (touched[i] < 0) {
            s = stage_slot();
            if (s != NULL) {
                s->remove_id = -touched[i];
            }
        } else {
            s2a_db_tokens_load(s2a_master.db, s2a_master.key, touched[i],
                               stage_token, NULL);
        }
    }
    n_touched = 0;
    publish_staged();
}

void
s2a_pool_cleanup(void)
{
    free(touched);
    touched = NULL;
    n_touched = cap_touched = 0;
    free(staged);
    staged = NULL;
    n_staged = cap_staged = 0;
}

/* An import may ask for an operator state along with the fields. */
static void
apply_requested_state(json_t *msg, int64_t id)
{
    const char *state = json_string_value(json_object_get(msg, "state"));

    if (state != NULL
        && (strcmp(state, "active") == 0 || strcmp(state, "disabled") == 0))
    {
        s2a_db_token_set_state(s2a_master.db, id, state, "set by an import", 0,
                               s2a_now());
    }
}

void
s2a_op_token_exists(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    const char *by_email = json_string_value(json_object_get(msg, "email"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char email[256] = "";
    int64_t id = 0;
    int rc;

    /* By the AT's hash, or (import) by the account's e-mail. */
    if ((sha == NULL || !s2a_is_hex(sha, 64)) && by_email == NULL) {
        s2a_ctlserver_fail(proc, reply, "token_exists needs sha256 or email");
        return;
    }
    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    rc = s2a_db_token_find(s2a_master.db, by_email == NULL ? sha : NULL,
                           by_email, &id, email, sizeof(email));
    json_object_set_new(reply, "exists", json_boolean(rc == S2A_OK));
    if (rc == S2A_OK) {
        json_object_set_new(reply, "token_id", json_integer(id));
        json_object_set_new(reply, "email", json_string(email));
    }
    s2a_ctlserver_reply(proc, reply);
}

void
s2a_op_token_add(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char err[256], email[256] = "";
    int64_t id = 0, existing = 0;
    int rc;

    if (sha == NULL || !s2a_is_hex(sha, 64) || !json_is_object(fields)
        || !json_is_string(json_object_get(fields, "token")))
    {
        s2a_ctlserver_fail(proc, reply,
                           "token_add needs sha256 and fields.token");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    rc = s2a_db_token_insert(s2a_master.db, s2a_master.key, sha, fields,
                             s2a_now(), &id, err, sizeof(err));
    if (rc == S2A_DECLINED) {
        s2a_db_token_find(s2a_master.db, sha, NULL, &existing, email,
                          sizeof(email));
        json_object_set_new(reply, "code", json_string("duplicate"));
        json_object_set_new(reply, "email", json_string(email));
        json_object_set_new(reply, "token_id", json_integer(existing));
        s2a_ctlserver_fail(proc, reply, "token already exists");
        return;
    }
    if (rc != S2A_OK) {
        s2a_ctlserver_fail(proc, reply, err);
        return;
    }
    apply_requested_state(msg, id);
    s2a_pool_touched(id);
    s2a_log(LOG_NOTICE, 0, "token %lld added (%s)", (long long) id,
            json_string_value(json_object_get(fields, "email")) != NULL
                ? json_string_value(json_object_get(fields, "email"))
                : "-");
    json_object_set_new(reply, "token_id", json_integer(id));
    s2a_ctlserver_reply_later(proc, reply);
}

void
s2a_op_token_update(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char err[256];
    int rc;

    if (id <= 0 || !json_is_object(fields)
        || (sha != NULL && !s2a_is_hex(sha, 64))) {
        s2a_ctlserver_fail(proc, reply, "token_update needs id and fields");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    rc = s2a_db_token_update(s2a_master.db, s2a_master.key, id, fields, sha,
                             err, sizeof(err));
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code",
                            json_string(strcmp(err, "duplicate") == 0
                                            ? "duplicate"
                                            : rc == S2A_DECLINED ? "not_found"
                                                                 : "error"));
        s2a_ctlserver_fail(proc, reply, err);
        return;
    }
    apply_requested_state(msg, id);
    s2a_pool_touched(id);
    s2a_ctlserver_reply_later(proc, reply);
}

void
s2a_op_token_state(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *state = json_string_value(json_object_get(msg, "state"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    json_int_t until = json_integer_value(json_object_get(msg, "until"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    int rc;

    if (id <= 0 || state == NULL
        || (strcmp(state, "active") != 0 && strcmp(state, "disabled") != 0
            && strcmp(state, "invalid") != 0 && strcmp(state, "expired") != 0
            && strcmp(state, "cooling") != 0))
    {
        s2a_ctlserver_fail(proc, reply,
                           "token_state needs id and a valid state");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    rc = s2a_db_token_set_state(s2a_master.db, id, state, reason, until,
                                s2a_now());
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(proc, reply,
                           rc == S2A_DECLINED ? "not found"
                                              : "database write failed");
        return;
    }
    s2a_pool_touched(id);
    s2a_log(LOG_NOTICE, 0, "token %lld is now %s%s%s", (long long) id, state,
            reason != NULL ? ": " : "", reason != NULL ? reason : "");
    s2a_ctlserver_reply_later(proc, reply);
}

void
s2a_op_token_delete(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    int rc;

    if (id <= 0) {
        s2a_ctlserver_fail(proc, reply, "token_delete needs id");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    rc = s2a_db_token_delete(s2a_master.db, id);
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(proc, reply,
                           rc == S2A_DECLINED ? "not found"
                                              : "database write failed");
        return;
    }
    s2a_pool_touched(-id);
    s2a_log(LOG_NOTICE, 0, "token %lld deleted", (long long) id);
    s2a_ctlserver_reply_later(proc, reply);
}

void
s2a_op_tokens_list(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    bool reveal = json_is_true(json_object_get(msg, "reveal"));
    json_int_t before = json_integer_value(json_object_get(msg, "before"));
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *list;

    /* Reads see the batch's own uncommitted writes; commit first so a
     * list reflects only durable state. */
    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    /* A page at a time: a whole large pool, secrets shown, would not
     * fit in one frame of the channel. */
    if (limit <= 0 || limit > S2A_TOKENS_PAGE_MAX) {
        limit = S2A_TOKENS_PAGE_MAX;
    }
    list = s2a_db_tokens_list(s2a_master.db, s2a_master.key, id, before,
                              (int) limit, reveal);
    if (list == NULL) {
        s2a_ctlserver_fail(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "tokens", list);
    s2a_ctlserver_reply(proc, reply);
}

/* "token_refreshed" {token_id, token, sha256, expiry_time, rt?} or
 * "token_refresh_failed" {token_id, reason}. */
static void
refresh_result(json_t *msg, bool ok)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields;
    char err[256];

    if (id <= 0 || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    if (!ok) {
        s2a_db_token_set_state(s2a_master.db, id, "expired",
                               reason != NULL ? reason : "refresh failed", 0,
                               s2a_now());
        s2a_log(LOG_WARNING, 0, "token %lld could not be refreshed: %s",
                (long long) id, reason != NULL ? reason : "?");
        s2a_pool_touched(id);
        return;
    }
    if (sha == NULL || !s2a_is_hex(sha, 64)
        || !json_is_string(json_object_get(msg, "token")))
    {
        return;
    }
    fields = json_pack("{s:O, s:O}", "token", json_object_get(msg, "token"),
                       "expiry_time", json_object_get(msg, "expiry_time"));
    if (json_is_string(json_object_get(msg, "rt"))) {
        json_object_set(fields, "rt", json_object_get(msg, "rt"));
    }
    if (s2a_db_token_update(s2a_master.db, s2a_master.key, id, fields, sha, err,
                            sizeof(err))
        == S2A_OK)
    {
        /* A fresh AT revives a token that had expired. */
        s2a_db_token_set_state(s2a_master.db, id, "active",
                               "access token refreshed", 0, s2a_now());
        s2a_log(LOG_NOTICE, 0, "token %lld refreshed (%s)", (long long) id,
                json_string_value(json_object_get(msg, "via")) != NULL
                    ? json_string_value(json_object_get(msg, "via"))
                    : "?");
        s2a_pool_touched(id);
    } else {
        s2a_log(LOG_ERR, 0, "token %lld: storing the refreshed AT failed: %s",
                (long long) id, err);
    }
    json_decref(fields);
}

void
s2a_op_token_refreshed(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    refresh_result(msg, true);
}

void
s2a_op_token_refresh_failed(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    refresh_result(msg, false);
}

/*
 * A generation ended on a token: counters, the run of errors (and the
 * auto-disable it may trigger), or a state the failure calls for.
 */
void
s2a_op_token_outcome(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *kind = json_string_value(json_object_get(msg, "kind"));
    const char *outcome = json_string_value(json_object_get(msg, "outcome"));
    const char *text = json_string_value(json_object_get(msg, "message"));
    json_int_t until = json_integer_value(json_object_get(msg, "until"));
    bool video = kind != NULL && strcmp(kind, "video") == 0;
    int64_t now = s2a_now();
    int threshold, run = 0;
    char reason[640];

    S2A_UNUSED(from);
    if (id <= 0 || outcome == NULL || s2a_ctlserver_batch() != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "malformed token outcome ignored");
        return;
    }
    if (text == NULL) {
        text = "";
    }
    if (strcmp(outcome, "success") == 0 || strcmp(outcome, "error") == 0
        || strcmp(outcome, "invalid") == 0 || strcmp(outcome, "neutral") == 0)
    {
        run = s2a_db_token_outcome(s2a_master.db, id, video,
                                   strcmp(outcome, "success") == 0       ? 1
                                       : strcmp(outcome, "neutral") == 0 ? -1
                                                                         : 0,
                                   now);
        if (run < 0) {
            return; /* deleted meanwhile */
        }
        if (run == 0 && strcmp(outcome, "success") == 0) {
            /* A success after the cooldown: the token is fine again. */
            s2a_db_tokens_end_cooldown(s2a_master.db, id, now,
                                       s2a_pool_touched);
        }
    }
    if (strcmp(outcome, "invalid") == 0) {
        snprintf(reason, sizeof(reason), "Sora rejected the token: %.500s",
                 text);
        s2a_db_token_set_state(s2a_master.db, id, "invalid", reason, 0, now);
        s2a_log(LOG_WARNING, 0, "token %lld is now invalid: %s", (long long) id,
                reason);
    } else if (strcmp(outcome, "cooling") == 0 && until > now) {
        snprintf(reason, sizeof(reason), "Sora rate limit: %.500s", text);
        s2a_db_token_set_state(s2a_master.db, id, "cooling", reason, until,
                               now);
        s2a_log(LOG_NOTICE, 0, "token %lld cools down for %llds: %s",
                (long long) id, (long long) (until - now), text);
    } else if (strcmp(outcome, "error") == 0) {
        threshold = s2a_master.shm->settings.error_ban_threshold;
        if (threshold > 0 && run >= threshold) {
            snprintf(reason, sizeof(reason),
                     "disabled after %d consecutive errors; last: %.500s", run,
                     text);
            s2a_db_token_set_state(s2a_master.db, id, "disabled", reason, 0,
                                   now);
            s2a_log(LOG_WARNING, 0, "token %lld %s", (long long) id, reason);
        }
    }
    s2a_pool_touched(id);
}

/* "video_submitted" {token_id}: the token's known quota drops by one. */
void
s2a_op_video_submitted(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));

    S2A_UNUSED(from);
    if (id <= 0 || s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    if (s2a_db_token_video_used(s2a_master.db, id, s2a_now()) == S2A_OK) {
        s2a_pool_touched(id);
    }
}
