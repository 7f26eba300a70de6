/*
 * keys.c: named API keys in the master (docs/api-keys.md). The admin
 * API's key operations are written to SQLite in the current batch; once
 * it committed, the touched keys' rows of the shared key table are
 * rebuilt (read from the database first, copied in under one short hold
 * of the lock, then the index is rebuilt). Also the per-key usage rows
 * (per key, model and UTC day) workers send as records, the listings
 * with usage, and at start the first key made from the api_key_sha256
 * setting and every key's completed jobs of its current period.
 *
 * The master never sees an API key: a worker generates it and sends
 * only its MAC (s2a_api_key_mac) and a masked hint.
 */
#include "master/keys.h"
#include "common/crypto.h"
#include "common/keyspec.h"
#include "common/keytab.h"
#include "common/log.h"
#include "common/models.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns a key object is built from, in this order. */
#define KEY_COLUMNS \
    "id, name, key_hint, rpm, concurrency, image_quota, video_quota, " \
    "quota_period, expires_at, models, token_group, enabled, created_at, " \
    "updated_at, key_mac"

enum {
    C_ID = 0,
    C_NAME,
    C_HINT,
    C_RPM,
    C_CONCURRENCY,
    C_IMAGE_QUOTA,
    C_VIDEO_QUOTA,
    C_PERIOD,
    C_EXPIRES,
    C_MODELS,
    C_GROUP,
    C_ENABLED,
    C_CREATED,
    C_UPDATED,
    C_MAC
};

/* The columns the admin API sets (keyspec.c checked the values). */
static const char *const settable[] = {
    "name",         "rpm",        "concurrency", "image_quota", "video_quota",
    "quota_period", "expires_at", "models",      "token_group", "enabled"
};

/* A key's shm row to put (or, remove_id > 0, a removal). */
typedef struct staged_s {
    s2a_keyspec_t spec;
    int64_t remove_id;
    bool period_changed; /* new, or its quota period changed: recount */
    int32_t used[S2A_KIND_COUNT];
    int64_t period_start;
} staged_t;

static struct {
    int64_t *touched; /* keys changed in the batch (negative: deleted) */
    size_t n_touched, cap_touched;
} K;

static sqlite3 *
conn(void)
{
    return s2a_db_sqlite(s2a_master.db);
}

static void
touch(int64_t id)
{
    int64_t *grown;
    size_t cap;

    if (K.n_touched == K.cap_touched) {
        cap = K.cap_touched == 0 ? 16 : K.cap_touched * 2;
        grown = realloc(K.touched, cap * sizeof(*grown));
        if (grown == NULL) {
            s2a_log(LOG_ERR, 0, "out of memory: key %lld not republished",
                    (long long) id);
            return;
        }
        K.touched = grown;
        K.cap_touched = cap;
    }
    K.touched[K.n_touched++] = id;
}

/* "hmac-sha256:<64 hex>" into 32 bytes. */
static int
mac_from_text(const char *text, uint8_t mac[S2A_KEY_MAC_LEN])
{
    size_t plen = strlen(S2A_APIKEY_PREFIX), i;
    unsigned v;

    if (text == NULL || strncmp(text, S2A_APIKEY_PREFIX, plen) != 0
        || !s2a_is_hex(text + plen, 2 * S2A_KEY_MAC_LEN))
    {
        return S2A_ERROR;
    }
    text += plen;
    for (i = 0; i < S2A_KEY_MAC_LEN; i++) {
        if (sscanf(text + 2 * i, "%2x", &v) != 1) {
            return S2A_ERROR;
        }
        mac[i] = (uint8_t) v;
    }
    return S2A_OK;
}

static int32_t
limit_col(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL
        ? S2A_KEY_UNLIMITED
        : sqlite3_column_int(st, col);
}

/* The shm view of a row of KEY_COLUMNS. S2A_ERROR: its MAC is corrupt. */
static int
spec_from_row(sqlite3_stmt *st, s2a_keyspec_t *k)
{
    memset(k, 0, sizeof(*k));
    k->id = sqlite3_column_int64(st, C_ID);
    if (mac_from_text((const char *) sqlite3_column_text(st, C_MAC), k->mac)
        != S2A_OK)
    {
        return S2A_ERROR;
    }
    k->enabled = (uint8_t) (sqlite3_column_int(st, C_ENABLED) != 0);
    k->period = (uint8_t) s2a_keyspec_period(
        (const char *) sqlite3_column_text(st, C_PERIOD));
    k->models = s2a_keyspec_models_mask(
        (const char *) sqlite3_column_text(st, C_MODELS));
    k->expires_at = sqlite3_column_int64(st, C_EXPIRES);
    k->rpm = limit_col(st, C_RPM);
    k->concurrency = limit_col(st, C_CONCURRENCY);
    k->quota[S2A_KIND_IMAGE] = limit_col(st, C_IMAGE_QUOTA);
    k->quota[S2A_KIND_VIDEO] = limit_col(st, C_VIDEO_QUOTA);
    k->group =
        s2a_keytab_group_hash((const char *) sqlite3_column_text(st, C_GROUP));
    return S2A_OK;
}

/* A row of KEY_COLUMNS as the admin API shows it (never the MAC). */
static json_t *
key_json(sqlite3_stmt *st)
{
    static const int ints[] = { C_RPM,         C_CONCURRENCY, C_IMAGE_QUOTA,
                                C_VIDEO_QUOTA, C_EXPIRES,     C_CREATED,
                                C_UPDATED };
    const char *models = (const char *) sqlite3_column_text(st, C_MODELS);
    json_t *o = json_object();
    size_t i;

    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, C_ID)));
    json_object_set_new(o, "object", json_string("api_key"));
    json_object_set_new(
        o, "name", json_string((const char *) sqlite3_column_text(st, C_NAME)));
    json_object_set_new(
        o, "key_hint",
        sqlite3_column_type(st, C_HINT) == SQLITE_NULL
            ? json_null()
            : json_string((const char *) sqlite3_column_text(st, C_HINT)));
    for (i = 0; i < S2A_NELEMS(ints); i++) {
        json_object_set_new(
            o, sqlite3_column_name(st, ints[i]),
            sqlite3_column_type(st, ints[i]) == SQLITE_NULL
                ? json_null()
                : json_integer(sqlite3_column_int64(st, ints[i])));
    }
    json_object_set_new(
        o, "quota_period",
        json_string((const char *) sqlite3_column_text(st, C_PERIOD)));
    json_object_set_new(o, "models",
                        models != NULL ? json_loads(models, 0, NULL)
                                       : json_null());
    if (json_object_get(o, "models") == NULL) {
        json_object_set_new(o, "models", json_null());
    }
    json_object_set_new(
        o, "token_group",
        sqlite3_column_type(st, C_GROUP) == SQLITE_NULL
            ? json_null()
            : json_string((const char *) sqlite3_column_text(st, C_GROUP)));
    json_object_set_new(o, "enabled",
                        json_boolean(sqlite3_column_int(st, C_ENABLED) != 0));
    return o;
}

/* Binds a checked field value (keyspec.c) at `idx`. */
static int
bind_field(sqlite3_stmt *st, int idx, json_t *v)
{
    char *text;

    if (json_is_null(v)) {
        return sqlite3_bind_null(st, idx);
    }
    if (json_is_boolean(v)) {
        return sqlite3_bind_int(st, idx, json_is_true(v));
    }
    if (json_is_integer(v)) {
        return sqlite3_bind_int64(st, idx, json_integer_value(v));
    }
    if (json_is_string(v)) {
        return sqlite3_bind_text(st, idx, json_string_value(v), -1,
                                 SQLITE_TRANSIENT);
    }
    text = json_dumps(v, JSON_COMPACT);
    if (text == NULL) {
        return SQLITE_NOMEM;
    }
    return sqlite3_bind_text(st, idx, text, -1, free);
}

static bool
is_settable(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(settable); i++) {
        if (strcmp(settable[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* The key object of `id` (deleted ones are not found), or NULL. */
static json_t *
key_get(int64_t id)
{
    sqlite3_stmt *st;
    json_t *o = NULL;

    if (sqlite3_prepare_v2(conn(),
                           "SELECT " KEY_COLUMNS " FROM api_keys WHERE id = ?1 "
                           "AND deleted_at IS NULL",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int64(st, 1, id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        o = key_json(st);
    }
    sqlite3_finalize(st);
    return o;
}

/*
 * Completed images and videos of key `id` in the period [start, end)
 * (UTC days; end 0: no end), from the usage rows.
 */
static void
used_from_db(int64_t id, int64_t start, int64_t end,
             int32_t used[S2A_KIND_COUNT])
{
    sqlite3_stmt *st;
    char day[11], last[11] = "9999-99-99";

    used[S2A_KIND_IMAGE] = used[S2A_KIND_VIDEO] = 0;
    s2a_utc_day(start, day);
    if (end != 0) {
        s2a_utc_day(end, last);
    }
    if (sqlite3_prepare_v2(conn(),
                           "SELECT COALESCE(SUM(images), 0), "
                           "COALESCE(SUM(videos), 0) FROM api_key_usage "
                           "WHERE key_id = ?1 AND day >= ?2 AND day < ?3",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, last, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        used[S2A_KIND_IMAGE] = sqlite3_column_int(st, 0);
        used[S2A_KIND_VIDEO] = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
}

/*
 * Reads key `id` (or every key when 0) into `*out` (grown; `*n` rows).
 * Keys whose period differs from what the table has (or that are new to
 * it) carry their period's completed jobs from the usage rows.
 */
static int
stage_keys(int64_t id, staged_t **out, size_t *n, size_t *cap)
{
    sqlite3_stmt *st;
    staged_t *s, *grown;
    int rc, slot, period;
    int64_t now = s2a_keytab_now(s2a_keytab);

    if (sqlite3_prepare_v2(conn(),
                           id != 0 ? "SELECT " KEY_COLUMNS " FROM api_keys "
                                     "WHERE id = ?1 AND deleted_at IS NULL"
                                   : "SELECT " KEY_COLUMNS " FROM api_keys "
                                     "WHERE deleted_at IS NULL",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    if (id != 0) {
        sqlite3_bind_int64(st, 1, id);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == *cap) {
            size_t c = *cap == 0 ? 64 : *cap * 2;
            grown = realloc(*out, c * sizeof(*grown));
            if (grown == NULL) {
                break;
            }
            *out = grown;
            *cap = c;
        }
        s = &(*out)[*n];
        memset(s, 0, sizeof(*s));
        if (spec_from_row(st, &s->spec) != S2A_OK) {
            s2a_log(LOG_ERR, 0, "API key %lld has a corrupt key_mac; skipped",
                    (long long) sqlite3_column_int64(st, C_ID));
            continue;
        }
        /* The period the table counts in now (no SQLite under the
         * lock: the recount below runs after it). */
        period = -1;
        if (s2a_keytab_lock(s2a_keytab) == S2A_OK) {
            slot = s2a_keytab_find_id_locked(s2a_keytab, s->spec.id);
            if (slot >= 0) {
                period = s2a_keytab_rows(s2a_keytab)[slot].spec.period;
            }
            s2a_keytab_unlock(s2a_keytab);
        }
        s->period_changed = period != (int) s->spec.period;
        if (s->period_changed) {
            s->period_start =
                s2a_key_period_start((s2a_key_period_t) s->spec.period, now);
            used_from_db(
                s->spec.id, s->period_start,
                s2a_key_period_end((s2a_key_period_t) s->spec.period, now),
                s->used);
        }
        (*n)++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

/* Copies the staged rows in under one hold of the lock. */
static void
publish(staged_t *staged, size_t n)
{
    size_t i, full = 0;

    if (n == 0 || s2a_keytab_lock(s2a_keytab) != S2A_OK) {
        return;
    }
    /* Workers look keys up without the lock: they see the table before
     * or after this batch, never half of it. */
    s2a_keytab_write_begin_locked(s2a_keytab);
    for (i = 0; i < n; i++) {
        if (staged[i].remove_id > 0) {
            s2a_keytab_remove_locked(s2a_keytab, staged[i].remove_id);
            continue;
        }
        if (s2a_keytab_put_locked(s2a_keytab, &staged[i].spec) < 0) {
            full++;
            continue;
        }
        if (staged[i].period_changed) {
            s2a_keytab_set_used_locked(s2a_keytab, staged[i].spec.id,
                                       staged[i].period_start, staged[i].used);
        }
    }
    s2a_keytab_reindex_locked(s2a_keytab);
    s2a_keytab_write_end_locked(s2a_keytab);
    s2a_keytab_unlock(s2a_keytab);
    if (full > 0) {
        s2a_log(LOG_ERR, 0,
                "shared key table full: %zu API keys not usable; raise "
                "[limits] max_api_keys",
                full);
    }
}

int
s2a_keys_load(void)
{
    staged_t *staged = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st;
    int64_t now = s2a_now();
    int rc = S2A_ERROR;

    if (s2a_db_begin(s2a_master.db) != S2A_OK) {
        return S2A_ERROR;
    }
    /* Once: the key the gateway has today becomes the first named key.
     * Deleting a key keeps its row, so this never runs again. */
    if (sqlite3_prepare_v2(conn(),
                           "INSERT INTO api_keys(id, name, key_mac, "
                           "created_at, updated_at) SELECT 1, 'default', "
                           "value, ?1, ?1 FROM settings WHERE key = "
                           "'api_key_sha256' AND NOT EXISTS (SELECT 1 FROM "
                           "api_keys)",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        goto failed;
    }
    sqlite3_bind_int64(st, 1, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rc = S2A_ERROR;
        goto failed;
    }
    if (sqlite3_changes(conn()) > 0) {
        s2a_log(LOG_NOTICE, 0, "the API key became named key 1 (\"default\")");
    }
    /* Key 1 follows the setting (it may have changed while this version
     * was not running). */
    if (sqlite3_prepare_v2(conn(),
                           "UPDATE api_keys SET key_mac = s.value, "
                           "updated_at = ?1 FROM settings s WHERE api_keys.id "
                           "= 1 AND api_keys.deleted_at IS NULL AND s.key = "
                           "'api_key_sha256' AND api_keys.key_mac <> s.value",
                           -1, &st, NULL)
        == SQLITE_OK)
    {
        sqlite3_bind_int64(st, 1, now);
        if (sqlite3_step(st) != SQLITE_DONE) {
            s2a_log(LOG_WARNING, 0,
                    "key 1 keeps its MAC: another key has the one of the "
                    "api_key_sha256 setting");
        }
        sqlite3_finalize(st);
    }
    if (s2a_db_commit(s2a_master.db) != S2A_OK) {
        rc = S2A_ERROR;
        goto failed;
    }
    rc = stage_keys(0, &staged, &n, &cap);
    publish(staged, n);
    free(staged);
    s2a_log(LOG_INFO, 0, "%zu API keys loaded", n);
    return rc;

failed:
    s2a_db_rollback(s2a_master.db);
    s2a_log(LOG_ERR, 0, "API keys cannot be loaded: %s",
            sqlite3_errmsg(conn()));
    return S2A_ERROR;
}

int
s2a_keys_primary_rekey(const char *value)
{
    sqlite3_stmt *st;
    uint8_t mac[S2A_KEY_MAC_LEN];
    int rc;

    if (mac_from_text(value, mac) != S2A_OK
        || sqlite3_prepare_v2(conn(),
                              "UPDATE api_keys SET key_mac = ?1, updated_at "
                              "= ?2 WHERE id = 1 AND deleted_at IS NULL",
                              -1, &st, NULL)
            != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, s2a_now());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_WARNING, 0, "API key not changed: %s",
                rc == SQLITE_CONSTRAINT ? "another named key is the same key"
                                        : sqlite3_errmsg(conn()));
        return S2A_ERROR;
    }
    touch(1);
    return S2A_OK;
}

void
s2a_keys_committed(bool ok)
{
    staged_t *staged = NULL;
    size_t i, n = 0, cap = 0;

    for (i = 0; ok && i < K.n_touched; i++) {
        if (K.touched[i] < 0) {
            if (n == cap) {
                staged_t *grown;
                cap = cap == 0 ? 16 : cap * 2;
                grown = realloc(staged, cap * sizeof(*grown));
                if (grown == NULL) {
                    break;
                }
                staged = grown;
            }
            memset(&staged[n], 0, sizeof(staged[0]));
            staged[n++].remove_id = -K.touched[i];
            continue;
        }
        stage_keys(K.touched[i], &staged, &n, &cap);
    }
    K.n_touched = 0;
    publish(staged, n);
    free(staged);
}

void
s2a_keys_worker_gone(pid_t pid)
{
    int n = 0;

    if (s2a_keytab != NULL && s2a_keytab_lock(s2a_keytab) == S2A_OK) {
        n = s2a_keytab_release_owner_locked(s2a_keytab, pid);
        s2a_keytab_unlock(s2a_keytab);
    }
    if (n > 0) {
        s2a_log(LOG_NOTICE, 0, "%d API key leases of pid %d released", n,
                (int) pid);
    }
}

void
s2a_keys_cleanup(void)
{
    free(K.touched);
    K.touched = NULL;
    K.n_touched = K.cap_touched = 0;
}

/* ---------------------------------------------------------------------
 * Operations
 */

/* "key_create": a new key from checked fields, its MAC and hint. */
void
s2a_op_key_create(void *from, json_t *msg)
{
    json_t *fields = json_object_get(msg, "fields");
    const char *mac = json_string_value(json_object_get(msg, "mac"));
    const char *hint = json_string_value(json_object_get(msg, "hint"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *v, *key;
    char sql[1024], vals[256];
    sqlite3_stmt *st;
    uint8_t raw[S2A_KEY_MAC_LEN];
    const char *name;
    int64_t now = s2a_now(), id;
    size_t n, m;
    int idx = 4, rc;

    if (mac_from_text(mac, raw) != S2A_OK) {
        s2a_ctlserver_fail(from, reply, "bad key MAC");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    n = (size_t) snprintf(sql, sizeof(sql),
                          "INSERT INTO api_keys(key_mac, key_hint, "
                          "created_at, updated_at");
    m = (size_t) snprintf(vals, sizeof(vals), "VALUES (?1, ?2, ?3, ?3");
    json_object_foreach (fields, name, v) {
        if (!is_settable(name)) {
            s2a_ctlserver_fail(from, reply, "unknown key field");
            return;
        }
        n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s", name);
        m += (size_t) snprintf(vals + m, sizeof(vals) - m, ", ?%d", idx++);
    }
    snprintf(sql + n, sizeof(sql) - n, ") %s)", vals);
    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    sqlite3_bind_text(st, 1, mac, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hint, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    idx = 4;
    json_object_foreach (fields, name, v) {
        bind_field(st, idx++, v);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        /* A MAC collision means the very same key: 2^-128 per pair. */
        s2a_ctlserver_fail(from, reply,
                           rc == SQLITE_CONSTRAINT ? "duplicate key"
                                                   : "database write failed");
        return;
    }
    id = sqlite3_last_insert_rowid(conn());
    key = key_get(id);
    if (key == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    touch(id);
    json_object_set_new(reply, "key", key);
    s2a_log(LOG_NOTICE, 0, "API key %lld (\"%s\") created", (long long) id,
            json_string_value(json_object_get(key, "name")));
    s2a_ctlserver_reply_later(from, reply);
}

/* "key_update": changes the fields given; `code` not_found. */
void
s2a_op_key_update(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "key_id"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = s2a_ctlserver_reply_for(msg), *v, *key;
    char sql[1024];
    sqlite3_stmt *st;
    const char *name;
    size_t n;
    int idx = 3, rc;

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    n = (size_t) snprintf(sql, sizeof(sql),
                          "UPDATE api_keys SET updated_at = ?2");
    json_object_foreach (fields, name, v) {
        if (!is_settable(name)) {
            s2a_ctlserver_fail(from, reply, "unknown key field");
            return;
        }
        n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s = ?%d", name,
                               idx++);
    }
    snprintf(sql + n, sizeof(sql) - n, " WHERE id = ?1 AND deleted_at IS NULL");
    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, s2a_now());
    idx = 3;
    json_object_foreach (fields, name, v) {
        bind_field(st, idx++, v);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    key = sqlite3_changes(conn()) > 0 ? key_get(id) : NULL;
    if (key == NULL) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply, "no such key");
        return;
    }
    touch(id);
    json_object_set_new(reply, "key", key);
    s2a_log(LOG_NOTICE, 0, "API key %lld updated", (long long) id);
    s2a_ctlserver_reply_later(from, reply);
}

/* "key_delete": revokes the key (its row stays for its usage). */
void
s2a_op_key_delete(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "key_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    sqlite3_stmt *st;
    int rc;

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    if (sqlite3_prepare_v2(conn(),
                           "UPDATE api_keys SET deleted_at = ?2, enabled = 0, "
                           "updated_at = ?2 WHERE id = ?1 AND deleted_at IS "
                           "NULL",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, s2a_now());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    if (sqlite3_changes(conn()) == 0) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply, "no such key");
        return;
    }
    touch(-id);
    s2a_log(LOG_NOTICE, 0, "API key %lld deleted", (long long) id);
    s2a_ctlserver_reply_later(from, reply);
}

/* What the shared table says about a key now. */
typedef struct live_s {
    int64_t id;
    int32_t running;
    int32_t used[S2A_KIND_COUNT];
    int64_t period_start;
    int64_t period_end;
    int32_t window_count;
    int64_t window_reset_ms;
    uint64_t requests, throttled, jobs;
} live_t;

/* Copies every key's live counters (lock held only for the copy). */
static live_t *
live_copy(size_t *n)
{
    s2a_keyrow_t *rows;
    live_t *out;
    int64_t now = s2a_keytab_now(s2a_keytab), mono = s2a_mono_ms();
    uint32_t i;

    *n = 0;
    out = calloc(s2a_keytab->max_keys, sizeof(*out));
    if (out == NULL || s2a_keytab_lock(s2a_keytab) != S2A_OK) {
        free(out);
        return NULL;
    }
    rows = s2a_keytab_rows(s2a_keytab);
    for (i = 0; i < s2a_keytab->key_high; i++) {
        s2a_keyrow_t *r = &rows[i];
        live_t *l;
        if (r->spec.id <= 0) {
            continue;
        }
        l = &out[(*n)++];
        l->id = r->spec.id;
        l->running = r->inflight;
        l->used[S2A_KIND_IMAGE] = s2a_keytab_used(r, S2A_KIND_IMAGE, now);
        l->used[S2A_KIND_VIDEO] = s2a_keytab_used(r, S2A_KIND_VIDEO, now);
        l->period_start =
            s2a_key_period_start((s2a_key_period_t) r->spec.period, now);
        l->period_end =
            s2a_key_period_end((s2a_key_period_t) r->spec.period, now);
        s2a_keytab_window(r, mono, &l->window_count, &l->window_reset_ms);
        l->requests = atomic_load_explicit(&r->requests, memory_order_relaxed);
        l->throttled =
            atomic_load_explicit(&r->throttled, memory_order_relaxed);
        l->jobs = atomic_load_explicit(&r->jobs, memory_order_relaxed);
    }
    s2a_keytab_unlock(s2a_keytab);
    return out;
}

static int
live_cmp(const void *a, const void *b)
{
    int64_t x = ((const live_t *) a)->id, y = ((const live_t *) b)->id;

    return x < y ? -1 : x > y;
}

static json_t *
live_json(const live_t *l)
{
    return json_pack("{s:i, s:i, s:i, s:I, s:o, s:i, s:I}", "running",
                     l->running, "images_used", l->used[S2A_KIND_IMAGE],
                     "videos_used", l->used[S2A_KIND_VIDEO], "period_start",
                     (json_int_t) l->period_start, "period_end",
                     l->period_end != 0 ? json_integer(l->period_end)
                                        : json_null(),
                     "window_requests", l->window_count, "window_reset_ms",
                     (json_int_t) l->window_reset_ms);
}

/* Usage totals of every key (or key `id`), by key id. */
static json_t *
usage_totals(int64_t id)
{
    sqlite3_stmt *st;
    json_t *out = json_object();
    char k[24];

    if (sqlite3_prepare_v2(conn(),
                           "SELECT key_id, SUM(requests), SUM(images), "
                           "SUM(videos), SUM(video_seconds), SUM(failures) "
                           "FROM api_key_usage WHERE ?1 = 0 OR key_id = ?1 "
                           "GROUP BY key_id",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return out;
    }
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(k, sizeof(k), "%lld", (long long) sqlite3_column_int64(st, 0));
        json_object_set_new(
            out, k,
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "requests",
                      (json_int_t) sqlite3_column_int64(st, 1), "images",
                      (json_int_t) sqlite3_column_int64(st, 2), "videos",
                      (json_int_t) sqlite3_column_int64(st, 3), "video_seconds",
                      (json_int_t) sqlite3_column_int64(st, 4), "failures",
                      (json_int_t) sqlite3_column_int64(st, 5)));
    }
    sqlite3_finalize(st);
    return out;
}

/* "keys_list": every key (or key `key_id`) with its usage and live
 * counters, oldest first. */
void
s2a_op_keys_list(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "key_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *keys, *totals, *o, *u;
    sqlite3_stmt *st;
    live_t *live;
    size_t nlive = 0, i;
    char k[24];
    int rc;

    s2a_ctlserver_flush();
    if (sqlite3_prepare_v2(conn(),
                           "SELECT " KEY_COLUMNS " FROM api_keys WHERE "
                           "deleted_at IS NULL AND (?1 = 0 OR id = ?1) "
                           "ORDER BY id",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    keys = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(keys, key_json(st));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(keys);
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    if (id != 0 && json_array_size(keys) == 0) {
        json_decref(keys);
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply, "no such key");
        return;
    }
    totals = usage_totals(id);
    live = live_copy(&nlive);
    if (live != NULL) {
        qsort(live, nlive, sizeof(*live), live_cmp);
    }
    json_array_foreach (keys, i, o) {
        json_int_t kid = json_integer_value(json_object_get(o, "id"));
        live_t probe = { .id = kid }, *l;
        snprintf(k, sizeof(k), "%lld", (long long) kid);
        u = json_object_get(totals, k);
        json_object_set_new(o, "usage",
                            u != NULL ? json_incref(u)
                                      : json_pack("{s:i, s:i, s:i, s:i, s:i}",
                                                  "requests", 0, "images", 0,
                                                  "videos", 0, "video_seconds",
                                                  0, "failures", 0));
        l = live != NULL ? bsearch(&probe, live, nlive, sizeof(*live), live_cmp)
                         : NULL;
        json_object_set_new(o, "live", l != NULL ? live_json(l) : json_null());
    }
    free(live);
    json_decref(totals);
    json_object_set_new(reply, "keys", keys);
    s2a_ctlserver_reply(from, reply);
}

/* "key_usage_get": the usage rows of a key, by day and model, between
 * `from` and `to` (UTC days, both included). */
void
s2a_op_key_usage_get(void *from, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "key_id"));
    const char *lo = json_string_value(json_object_get(msg, "from"));
    const char *hi = json_string_value(json_object_get(msg, "to"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows, *key;
    sqlite3_stmt *st;
    int rc;

    s2a_ctlserver_flush();
    key = key_get(id);
    if (key == NULL) {
        json_object_set_new(reply, "code", json_string("not_found"));
        s2a_ctlserver_fail(from, reply, "no such key");
        return;
    }
    json_decref(key);
    if (sqlite3_prepare_v2(conn(),
                           "SELECT day, model, requests, images, videos, "
                           "video_seconds, failures FROM api_key_usage WHERE "
                           "key_id = ?1 AND day >= ?2 AND day <= ?3 ORDER BY "
                           "day, model",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, lo != NULL ? lo : "0000-00-00", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hi != NULL ? hi : "9999-12-31", -1, SQLITE_STATIC);
    rows = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(
            rows,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "day",
                      (const char *) sqlite3_column_text(st, 0), "model",
                      (const char *) sqlite3_column_text(st, 1), "requests",
                      (json_int_t) sqlite3_column_int64(st, 2), "images",
                      (json_int_t) sqlite3_column_int64(st, 3), "videos",
                      (json_int_t) sqlite3_column_int64(st, 4), "video_seconds",
                      (json_int_t) sqlite3_column_int64(st, 5), "failures",
                      (json_int_t) sqlite3_column_int64(st, 6)));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(rows);
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    s2a_ctlserver_reply(from, reply);
}

/* "key_usage": rows [key_id, day, model, requests, images, videos,
 * video_seconds, failures] added to api_key_usage. */
void
s2a_op_key_usage(void *from, json_t *msg)
{
    json_t *rows = json_object_get(msg, "rows"), *row;
    sqlite3_stmt *st;
    size_t i;
    int c;

    S2A_UNUSED(from);
    if (!json_is_array(rows) || s2a_ctlserver_batch() != S2A_OK
        || sqlite3_prepare_v2(
               conn(),
               "INSERT INTO api_key_usage(key_id, day, model, requests, "
               "images, videos, video_seconds, failures) VALUES (?1, ?2, ?3, "
               "?4, ?5, ?6, ?7, ?8) ON CONFLICT(key_id, day, model) DO UPDATE "
               "SET requests = requests + excluded.requests, images = images "
               "+ excluded.images, videos = videos + excluded.videos, "
               "video_seconds = video_seconds + excluded.video_seconds, "
               "failures = failures + excluded.failures",
               -1, &st, NULL)
            != SQLITE_OK)
    {
        return;
    }
    json_array_foreach (rows, i, row) {
        const char *day = json_string_value(json_array_get(row, 1));
        const char *model = json_string_value(json_array_get(row, 2));
        if (json_array_size(row) != 8 || day == NULL || model == NULL
            || strlen(day) != 10)
        {
            s2a_log(LOG_WARNING, 0, "malformed key usage row ignored");
            continue;
        }
        sqlite3_bind_int64(st, 1, json_integer_value(json_array_get(row, 0)));
        sqlite3_bind_text(st, 2, day, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, model, -1, SQLITE_STATIC);
        for (c = 3; c < 8; c++) {
            sqlite3_bind_int64(
                st, c + 1, json_integer_value(json_array_get(row, (size_t) c)));
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            s2a_log(LOG_ERR, 0, "key usage row not written: %s",
                    sqlite3_errmsg(conn()));
        }
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}
