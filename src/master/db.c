/*
 * db.c: SQLite storage owned by the master: open, migrate, settings,
 * usage counters. Prepared statements only.
 */
#include "master/db.h"
#include "common/crypto.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct s2a_db_s {
    sqlite3 *conn;
    sqlite3_stmt *get_setting;
    sqlite3_stmt *set_setting;
    sqlite3_stmt *usage_add;
};

/*
 * Numbered migrations: entry i moves the schema from version i to i + 1.
 * Never edit one that has shipped; append a new one.
 */
static const char *const migrations[] = {
    /* 1: settings and usage counters */
    "CREATE TABLE settings ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL DEFAULT (strftime('%s','now'))"
    ");"
    "CREATE TABLE usage_daily ("
    "  day TEXT NOT NULL,"
    "  route TEXT NOT NULL,"
    "  status INTEGER NOT NULL,"
    "  count INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (day, route, status)"
    ") WITHOUT ROWID;",

    /* 2: admin sessions ended by logout before they expire */
    "CREATE TABLE revoked_sessions ("
    "  nonce TEXT PRIMARY KEY,"
    "  expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;",
};

static int
exec_sql(s2a_db_t *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;

    if (sqlite3_exec(db->conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg != NULL ? msg : "sqlite3_exec failed");
        sqlite3_free(msg);
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_db_schema_version(s2a_db_t *db)
{
    sqlite3_stmt *st;
    int v = -1;

    if (sqlite3_prepare_v2(db->conn, "PRAGMA user_version", -1, &st, NULL)
        != SQLITE_OK)
    {
        return -1;
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int
migrate(s2a_db_t *db, char *err, size_t errlen)
{
    char sql[64], msg[256];
    int v = s2a_db_schema_version(db);
    int target = (int) S2A_NELEMS(migrations);

    if (v < 0) {
        snprintf(err, errlen, "cannot read schema version: %s",
                 sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    if (v > target) {
        snprintf(err, errlen,
                 "database schema version %d is newer than this program "
                 "(%d); refusing to touch it",
                 v, target);
        return S2A_ERROR;
    }
    for (; v < target; v++) {
        /* Each step and its version bump commit together. */
        if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof(msg)) != S2A_OK) {
            snprintf(err, errlen, "migration %d: %s", v + 1, msg);
            return S2A_ERROR;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (exec_sql(db, migrations[v], msg, sizeof(msg)) != S2A_OK
            || exec_sql(db, sql, msg, sizeof(msg)) != S2A_OK)
        {
            (void) exec_sql(db, "ROLLBACK", sql, sizeof(sql));
            snprintf(err, errlen, "migration %d failed: %s", v + 1, msg);
            return S2A_ERROR;
        }
        if (exec_sql(db, "COMMIT", msg, sizeof(msg)) != S2A_OK) {
            snprintf(err, errlen, "migration %d commit: %s", v + 1, msg);
            return S2A_ERROR;
        }
        s2a_log(LOG_NOTICE, 0, "database migrated to schema version %d", v + 1);
    }
    return S2A_OK;
}

s2a_db_t *
s2a_db_open(const char *data_dir, char *err, size_t errlen)
{
    char path[PATH_MAX], msg[256];
    s2a_db_t *db;
    int rc;

    if (snprintf(path, sizeof(path), "%s/%s", data_dir, S2A_DB_FILE)
        >= (int) sizeof(path))
    {
        snprintf(err, errlen, "database path too long");
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rc = sqlite3_open_v2(
        path, &db->conn,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "sqlite3_open(\"%s\") failed: %s", path,
                 db->conn != NULL ? sqlite3_errmsg(db->conn)
                                  : sqlite3_errstr(rc));
        goto failed;
    }
    sqlite3_busy_timeout(db->conn, 5000);
    /* WAL keeps readers (sqlite3 CLI, backups) from blocking the writer;
     * synchronous=NORMAL is durable across a process kill in WAL mode. */
    if (exec_sql(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 "PRAGMA foreign_keys=ON;",
                 msg, sizeof(msg))
        != S2A_OK)
    {
        snprintf(err, errlen, "\"%s\": %s", path, msg);
        goto failed;
    }
    if (migrate(db, err, errlen) != S2A_OK) {
        goto failed;
    }
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT value FROM settings WHERE key = ?1", -1,
                           &db->get_setting, NULL)
            != SQLITE_OK
        || sqlite3_prepare_v2(db->conn,
                              "INSERT INTO settings(key, value, updated_at) "
                              "VALUES (?1, ?2, strftime('%s','now')) "
                              "ON CONFLICT(key) DO UPDATE SET "
                              "value = excluded.value, "
                              "updated_at = excluded.updated_at",
                              -1, &db->set_setting, NULL)
            != SQLITE_OK
        || sqlite3_prepare_v2(db->conn,
                              "INSERT INTO usage_daily(day, route, status, "
                              "count) VALUES (?1, ?2, ?3, ?4) "
                              "ON CONFLICT(day, route, status) DO UPDATE "
                              "SET count = count + excluded.count",
                              -1, &db->usage_add, NULL)
            != SQLITE_OK)
    {
        snprintf(err, errlen, "prepare failed: %s", sqlite3_errmsg(db->conn));
        goto failed;
    }
    return db;

failed:
    s2a_db_close(db);
    return NULL;
}

void
s2a_db_close(s2a_db_t *db)
{
    if (db == NULL) {
        return;
    }
    sqlite3_finalize(db->get_setting);
    sqlite3_finalize(db->set_setting);
    sqlite3_finalize(db->usage_add);
    sqlite3_close(db->conn);
    free(db);
}

int
s2a_db_begin(s2a_db_t *db)
{
    char msg[256];

    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof(msg)) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "database BEGIN failed: %s", msg);
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_db_commit(s2a_db_t *db)
{
    char msg[256];

    if (exec_sql(db, "COMMIT", msg, sizeof(msg)) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "database COMMIT failed: %s", msg);
        s2a_db_rollback(db);
        return S2A_ERROR;
    }
    return S2A_OK;
}

void
s2a_db_rollback(s2a_db_t *db)
{
    char msg[256];

    if (!sqlite3_get_autocommit(db->conn)) {
        (void) exec_sql(db, "ROLLBACK", msg, sizeof(msg));
    }
}

bool
s2a_db_in_transaction(s2a_db_t *db)
{
    return !sqlite3_get_autocommit(db->conn);
}

int
s2a_db_setting_get(s2a_db_t *db, const char *key, char *buf, size_t len)
{
    sqlite3_stmt *st = db->get_setting;
    int rc, ret;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(buf, len, "%s", v != NULL ? (const char *) v : "");
        ret = S2A_OK;
    } else if (rc == SQLITE_DONE) {
        ret = S2A_DECLINED;
    } else {
        s2a_log(LOG_ERR, 0, "reading setting \"%s\" failed: %s", key,
                sqlite3_errmsg(db->conn));
        ret = S2A_ERROR;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return ret;
}

int
s2a_db_setting_set(s2a_db_t *db, const char *key, const char *value)
{
    sqlite3_stmt *st = db->set_setting;
    int rc;

    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "writing setting \"%s\" failed: %s", key,
                sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    return S2A_OK;
}

static int
seed_one(s2a_db_t *db, const char *key, const char *value)
{
    char buf[8];
    int rc = s2a_db_setting_get(db, key, buf, sizeof(buf));

    if (rc == S2A_DECLINED) {
        return s2a_db_setting_set(db, key, value);
    }
    return rc;
}

int
s2a_db_seed(s2a_db_t *db, const s2a_conf_t *conf)
{
    uint8_t hash[S2A_SHA256_LEN];
    char hex[2 * S2A_SHA256_LEN + 1], pw[S2A_PASSWORD_HASH_LEN], buf[8];
    int rc = S2A_ERROR;

    if (s2a_db_begin(db) != S2A_OK) {
        return S2A_ERROR;
    }
    s2a_sha256(conf->api_key, strlen(conf->api_key), hash);
    s2a_hex(hash, sizeof(hash), hex);
    if (seed_one(db, "api_key_sha256", hex) != S2A_OK
        || seed_one(db, "admin_username", conf->admin_username) != S2A_OK
        || seed_one(db, "log_level", "") != S2A_OK
        || seed_one(db, "selection_policy", "least_busy") != S2A_OK
        || seed_one(db, "error_ban_threshold", "3") != S2A_OK
        || seed_one(db, "session_epoch", "1") != S2A_OK
        || seed_one(db, "session_ttl", "86400") != S2A_OK)
    {
        goto done;
    }
    /* The key that signs admin sessions: random, made once, kept so that
     * sessions survive restarts. */
    if (s2a_db_setting_get(db, "session_secret", buf, sizeof(buf))
        == S2A_DECLINED) {
        if (s2a_random_bytes(hash, sizeof(hash)) != S2A_OK) {
            goto done;
        }
        s2a_hex(hash, sizeof(hash), hex);
        if (s2a_db_setting_set(db, "session_secret", hex) != S2A_OK) {
            goto done;
        }
    }
    if (s2a_db_setting_get(db, "admin_password_hash", buf, sizeof(buf))
        == S2A_DECLINED)
    {
        /* Hashing is slow by design: only on the first start. */
        if (s2a_password_hash(conf->admin_password, pw, sizeof(pw)) != S2A_OK
            || s2a_db_setting_set(db, "admin_password_hash", pw) != S2A_OK)
        {
            goto done;
        }
        if (s2a_db_setting_set(db, "admin_password_is_default",
                               strcmp(conf->admin_password, "admin") == 0 ? "1"
                                                                          : "0")
            != S2A_OK)
        {
            goto done;
        }
    }
    rc = S2A_OK;
done:
    if (rc == S2A_OK) {
        return s2a_db_commit(db);
    }
    s2a_db_rollback(db);
    return rc;
}

static int
unhex32(const char *hex, uint8_t out[32])
{
    unsigned v;
    int i;

    if (strlen(hex) != 64) {
        return S2A_ERROR;
    }
    for (i = 0; i < 32; i++) {
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return S2A_ERROR;
        }
        out[i] = (uint8_t) v;
    }
    return S2A_OK;
}

int
s2a_db_load_settings(s2a_db_t *db, s2a_shm_settings_t *out)
{
    char buf[128];

    memset(out, 0, sizeof(*out));
    out->log_level = -1;
    out->policy = S2A_POLICY_LEAST_BUSY;
    out->error_ban_threshold = 3;

    if (s2a_db_setting_get(db, "api_key_sha256", buf, sizeof(buf)) != S2A_OK
        || unhex32(buf, out->api_key_hash) != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "setting api_key_sha256 is missing or corrupt");
        return S2A_ERROR;
    }
    if (s2a_db_setting_get(db, "log_level", buf, sizeof(buf)) == S2A_OK
        && buf[0] != '\0')
    {
        out->log_level = s2a_log_level_parse(buf);
    }
    if (s2a_db_setting_get(db, "selection_policy", buf, sizeof(buf)) == S2A_OK)
    {
        if (strcmp(buf, "round_robin") == 0) {
            out->policy = S2A_POLICY_ROUND_ROBIN;
        } else if (strcmp(buf, "random") == 0) {
            out->policy = S2A_POLICY_RANDOM;
        }
    }
    if (s2a_db_setting_get(db, "error_ban_threshold", buf, sizeof(buf))
        == S2A_OK) {
        out->error_ban_threshold = atoi(buf);
    }
    out->session_ttl = 86400;
    if (s2a_db_setting_get(db, "session_ttl", buf, sizeof(buf)) == S2A_OK) {
        out->session_ttl = atoi(buf);
    }
    if (s2a_db_setting_get(db, "session_epoch", buf, sizeof(buf)) == S2A_OK) {
        out->session_epoch = (uint32_t) strtoul(buf, NULL, 10);
    }
    if (s2a_db_setting_get(db, "session_secret", buf, sizeof(buf)) != S2A_OK
        || unhex32(buf, out->session_secret) != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "setting session_secret is missing or corrupt");
        return S2A_ERROR;
    }
    if (s2a_db_setting_get(db, "admin_username", out->admin_username,
                           sizeof(out->admin_username))
            != S2A_OK
        || s2a_db_setting_get(db, "admin_password_hash",
                              out->admin_password_hash,
                              sizeof(out->admin_password_hash))
            != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "admin credentials missing from the database");
        return S2A_ERROR;
    }
    out->admin_password_is_default = s2a_db_default_admin_password(db);
    return S2A_OK;
}

bool
s2a_db_default_admin_password(s2a_db_t *db)
{
    char buf[8];

    return s2a_db_setting_get(db, "admin_password_is_default", buf, sizeof(buf))
        == S2A_OK
        && strcmp(buf, "1") == 0;
}

int
s2a_db_usage_add(s2a_db_t *db, const char *day, const char *route, int status,
                 int64_t count)
{
    sqlite3_stmt *st = db->usage_add;
    int rc;

    sqlite3_bind_text(st, 1, day, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, route, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, status);
    sqlite3_bind_int64(st, 4, count);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "usage update failed: %s",
                sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_db_ping(s2a_db_t *db)
{
    return s2a_db_schema_version(db) > 0 ? S2A_OK : S2A_ERROR;
}

int
s2a_db_revoked_add(s2a_db_t *db, const char *nonce, int64_t expires)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db->conn,
                           "INSERT OR REPLACE INTO revoked_sessions"
                           "(nonce, expires_at) VALUES (?1, ?2)",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, nonce, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, expires);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

int
s2a_db_revoked_load(s2a_db_t *db, int64_t now, s2a_db_revoked_pt cb, void *arg)
{
    sqlite3_stmt *st;
    int rc;

    /* Expired entries are useless: drop them on the way. */
    if (sqlite3_prepare_v2(
            db->conn, "DELETE FROM revoked_sessions WHERE expires_at <= ?1", -1,
            &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_step(st);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT nonce, expires_at FROM revoked_sessions", -1,
                           &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cb((const char *) sqlite3_column_text(st, 0),
           sqlite3_column_int64(st, 1), arg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}
