/*
 * db.c: SQLite storage owned by the master: open, migrate, settings,
 * usage counters. Prepared statements only.
 */
#include "master/db.h"
#include "common/settings.h"
#include "common/util.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/keytab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

#include <openssl/crypto.h>
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

    /* 3: the account pool; token, st and rt are sealed (AES-256-GCM) */
    "CREATE TABLE tokens ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  token_sha256 TEXT NOT NULL UNIQUE,"
    "  token TEXT NOT NULL,"
    "  st TEXT,"
    "  rt TEXT,"
    "  client_id TEXT,"
    "  email TEXT NOT NULL DEFAULT '',"
    "  name TEXT,"
    "  username TEXT,"
    "  remark TEXT,"
    "  proxy_url TEXT,"
    "  expiry_time INTEGER,"
    "  state TEXT NOT NULL DEFAULT 'active',"
    "  state_reason TEXT,"
    "  state_changed_at INTEGER,"
    "  cooled_until INTEGER,"
    "  plan_type TEXT,"
    "  plan_title TEXT,"
    "  subscription_end TEXT,"
    "  sora2_supported INTEGER,"
    "  sora2_invite_code TEXT,"
    "  sora2_redeemed_count INTEGER,"
    "  sora2_total_count INTEGER,"
    "  sora2_remaining_count INTEGER,"
    "  sora2_cooldown_until INTEGER,"
    "  image_enabled INTEGER NOT NULL DEFAULT 1,"
    "  video_enabled INTEGER NOT NULL DEFAULT 1,"
    "  image_concurrency INTEGER NOT NULL DEFAULT -1,"
    "  video_concurrency INTEGER NOT NULL DEFAULT -1,"
    "  created_at INTEGER NOT NULL,"
    "  last_used_at INTEGER,"
    "  use_count INTEGER NOT NULL DEFAULT 0,"
    "  image_count INTEGER NOT NULL DEFAULT 0,"
    "  video_count INTEGER NOT NULL DEFAULT 0,"
    "  error_count INTEGER NOT NULL DEFAULT 0,"
    "  consecutive_errors INTEGER NOT NULL DEFAULT 0,"
    "  today_date TEXT,"
    "  today_image_count INTEGER NOT NULL DEFAULT 0,"
    "  today_video_count INTEGER NOT NULL DEFAULT 0,"
    "  today_error_count INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX tokens_email ON tokens(email);",

    /* 4: when the master last had a token refreshed / its quota checked */
    "ALTER TABLE tokens ADD COLUMN refresh_attempted_at INTEGER;"
    "ALTER TABLE tokens ADD COLUMN quota_checked_at INTEGER;",

    /* 5: generation records */
    "CREATE TABLE tasks ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id TEXT NOT NULL UNIQUE,"
    "  upstream_task_id TEXT,"
    "  token_id INTEGER,"
    "  model TEXT,"
    "  mode TEXT,"
    "  prompt TEXT,"
    "  status TEXT NOT NULL DEFAULT 'queued',"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  result_urls TEXT,"
    "  error_message TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  completed_at INTEGER,"
    "  duration_ms INTEGER"
    ");"
    "CREATE INDEX tasks_status ON tasks(status);"
    "CREATE INDEX tasks_created ON tasks(created_at);"
    "CREATE TABLE request_logs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  request_id TEXT,"
    "  token_id INTEGER,"
    "  operation TEXT NOT NULL,"
    "  model TEXT,"
    "  status_code INTEGER NOT NULL,"
    "  duration_ms INTEGER,"
    "  error TEXT,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX request_logs_created ON request_logs(created_at);",

    /* 6: who ran a task (a dead worker's tasks are closed) and why it
     * failed, as a code */
    "ALTER TABLE tasks ADD COLUMN worker_pid INTEGER;"
    "ALTER TABLE tasks ADD COLUMN error_code TEXT;",

    /* 7: admin login throttle rows that started a lock */
    "CREATE TABLE login_throttle ("
    "  key TEXT PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  fails INTEGER NOT NULL,"
    "  window_start INTEGER NOT NULL,"
    "  locked_until INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 8: what a job needs to be finished without its request (resume):
     * a JSON object, see docs/generation.md */
    "ALTER TABLE tasks ADD COLUMN params TEXT;",

    /* 9: webhook endpoints (secret sealed) and the delivery outbox, see
     * src/master/webhooks.c and docs/webhooks.md */
    "CREATE TABLE webhook_endpoints ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  url TEXT NOT NULL,"
    "  events INTEGER NOT NULL,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  secret TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE webhook_deliveries ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  endpoint_id INTEGER NOT NULL"
    "    REFERENCES webhook_endpoints(id) ON DELETE CASCADE,"
    "  event_id TEXT NOT NULL,"
    "  event_type TEXT NOT NULL,"
    "  job_id TEXT,"
    "  state TEXT NOT NULL DEFAULT 'pending',"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  last_status INTEGER,"
    "  last_error TEXT,"
    "  last_attempt_at INTEGER,"
    "  next_attempt_ms INTEGER,"
    "  lease_until_ms INTEGER,"
    "  created_at INTEGER NOT NULL,"
    "  delivered_at INTEGER,"
    "  UNIQUE (endpoint_id, job_id, event_type)"
    ");"
    "CREATE INDEX webhook_deliveries_due ON webhook_deliveries"
    "(next_attempt_ms) WHERE state = 'pending';"
    "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries"
    "(endpoint_id, id);",

    /* 10: whose a task is (the API key that started it; the one key of
     * the schema before this is 1) */
    "ALTER TABLE tasks ADD COLUMN owner INTEGER;"
    "UPDATE tasks SET owner = 1;",

    /* 11: named API keys (docs/api-keys.md): limits, the key only as its
     * keyed MAC; usage per key, model and UTC day; token groups */
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL,"
    "  key_mac TEXT NOT NULL UNIQUE,"
    "  key_hint TEXT,"
    "  rpm INTEGER,"
    "  concurrency INTEGER,"
    "  image_quota INTEGER,"
    "  video_quota INTEGER,"
    "  quota_period TEXT NOT NULL DEFAULT 'total',"
    "  expires_at INTEGER,"
    "  models TEXT,"
    "  token_group TEXT,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  deleted_at INTEGER"
    ");"
    "CREATE TABLE api_key_usage ("
    "  key_id INTEGER NOT NULL,"
    "  day TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  requests INTEGER NOT NULL DEFAULT 0,"
    "  images INTEGER NOT NULL DEFAULT 0,"
    "  videos INTEGER NOT NULL DEFAULT 0,"
    "  video_seconds INTEGER NOT NULL DEFAULT 0,"
    "  failures INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (key_id, day, model)"
    ") WITHOUT ROWID;"
    "ALTER TABLE tokens ADD COLUMN token_group TEXT;",

    /* 12: Sora characters the pool's accounts made (docs/characters.md,
     * src/master/characters.c) */
    "CREATE TABLE characters ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  public_id TEXT NOT NULL UNIQUE,"
    "  token_id INTEGER NOT NULL,"
    "  cameo_id TEXT UNIQUE,"
    "  character_id TEXT UNIQUE,"
    "  username TEXT,"
    "  display_name TEXT,"
    "  profile_url TEXT,"
    "  instruction_set TEXT,"
    "  safety_instruction_set TEXT,"
    "  visibility TEXT NOT NULL DEFAULT 'private',"
    "  state TEXT NOT NULL,"
    "  temporary INTEGER NOT NULL DEFAULT 0,"
    "  owner INTEGER NOT NULL DEFAULT 0,"
    "  job_id TEXT,"
    "  error TEXT,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX characters_token ON characters(token_id);"
    "CREATE INDEX characters_username ON characters(username COLLATE NOCASE);"
    "CREATE INDEX characters_owner ON characters(owner);",

    /* 13: a job's stage history, as its worker last sent it
     * (docs/generation.md, "Records") */
    "ALTER TABLE tasks ADD COLUMN stages TEXT;",

    /* 14: a webhook's previous secret keeps signing for a while after a
     * rotation (sealed like the secret), and until when */
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;"
    "ALTER TABLE webhook_endpoints ADD COLUMN previous_until INTEGER;",

    /* 15: the upstream deletes the gateway owes (state 'deleting',
     * docs/characters.md "No orphans", src/master/orphans.c): why the
     * character goes, since when, attempts made, no attempt before
     * delete_next_at, and the worker whose attempt is in flight */
    "ALTER TABLE characters ADD COLUMN delete_reason TEXT;"
    "ALTER TABLE characters ADD COLUMN delete_since INTEGER;"
    "ALTER TABLE characters ADD COLUMN delete_attempts INTEGER NOT NULL "
    "DEFAULT 0;"
    "ALTER TABLE characters ADD COLUMN delete_next_at INTEGER;"
    "ALTER TABLE characters ADD COLUMN delete_pid INTEGER;"
    "CREATE INDEX characters_state ON characters(state);",
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

/*
 * The database file exists with mode 0600 before SQLite opens it: SQLite
 * gives the WAL and its index the mode of the database, so all three
 * stay private. Files left looser by an older version are tightened.
 */
static int
private_files(const char *path, char *err, size_t errlen)
{
    static const char *const suffixes[] = { "-wal", "-shm", "-journal" };
    char other[PATH_MAX + 16];
    size_t i;
    int fd;

    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0) {
        snprintf(err, errlen, "open(\"%s\") failed: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return S2A_ERROR;
    }
    close(fd);
    for (i = 0; i < S2A_NELEMS(suffixes); i++) {
        snprintf(other, sizeof(other), "%s%s", path, suffixes[i]);
        if (chmod(other, 0600) != 0 && errno != ENOENT) {
            s2a_log(LOG_WARNING, errno, "chmod(\"%s\") failed", other);
        }
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
    if (private_files(path, err, errlen) != S2A_OK) {
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
    /* A locked database must not stall the master's loop: a write that
     * cannot start fails at once and the caller retries later. */
    sqlite3_busy_timeout(db->conn, 0);
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

/* True when `target` is one of the master-only files under `dir`. */
static bool
is_master_file(const char *dir, const char *target)
{
    static const char *const names[] = { S2A_DB_FILE,
                                         S2A_DB_FILE "-wal",
                                         S2A_DB_FILE "-shm",
                                         S2A_DB_FILE "-journal",
                                         "secret.key",
                                         "sora2apid.lock",
                                         NULL };
    size_t n = strlen(dir);
    int i;

    if (strncmp(target, dir, n) != 0 || target[n] != '/') {
        return false;
    }
    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(target + n + 1, names[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Unmaps every mapping of a master-only file (SQLite maps the -shm WAL
 * index). */
static void
unmap_master_files(const char *dir)
{
    char line[PATH_MAX + 128], *path;
    unsigned long lo, hi;
    FILE *fp = fopen("/proc/self/maps", "re");

    if (fp == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        path = strchr(line, '/');
        if (path != NULL && is_master_file(dir, path)
            && sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi > lo)
        {
            munmap((void *) lo, hi - lo);
        }
    }
    fclose(fp);
}

int
s2a_db_drop_after_fork(const char *data_dir)
{
    char dir[PATH_MAX], link[64], target[PATH_MAX];
    struct dirent *de;
    DIR *d;
    ssize_t n;
    int fd, null_fd, dropped = 0;

    if (realpath(data_dir, dir) == NULL) {
        return -1;
    }
    unmap_master_files(dir);
    null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    d = opendir("/proc/self/fd");
    if (d == NULL || null_fd < 0) {
        if (d != NULL) {
            closedir(d);
        }
        if (null_fd >= 0) {
            close(null_fd);
        }
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') {
            continue;
        }
        fd = atoi(de->d_name);
        if (fd == dirfd(d) || fd == null_fd) {
            continue;
        }
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0) {
            continue;
        }
        target[n] = '\0';
        if (!is_master_file(dir, target)) {
            continue;
        }
        /* Keep the number taken (by /dev/null), so nothing else ever
         * lands on a descriptor the inherited SQLite handle names. */
        if (dup3(null_fd, fd, O_CLOEXEC) == fd) {
            dropped++;
        }
    }
    closedir(d);
    close(null_fd);
    return dropped;
}

int
s2a_db_begin(s2a_db_t *db)
{
    char msg[256];

    /* A busy database is the caller's to report (it retries); this
     * would repeat every second while another process holds the lock. */
    if (exec_sql(db, "BEGIN IMMEDIATE", msg, sizeof(msg)) != S2A_OK) {
        s2a_log(LOG_DEBUG, 0, "database BEGIN failed: %s", msg);
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

struct sqlite3 *
s2a_db_sqlite(s2a_db_t *db)
{
    return db->conn;
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
        size_t n = (size_t) sqlite3_column_bytes(st, 0);
        if (n >= len) {
            /* A cut value would be read as another one: refuse it, so
             * the caller's default stands, and say so. */
            s2a_log(LOG_WARNING, 0,
                    "setting \"%s\": the stored value (%zu bytes) is longer "
                    "than %zu bytes and is ignored",
                    key, n, len - 1);
            ret = S2A_DECLINED;
        } else {
            snprintf(buf, len, "%s", v != NULL ? (const char *) v : "");
            ret = S2A_OK;
        }
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

/*
 * Every runtime setting that has no row yet gets its default, or the
 * value its seed makes from the configuration (first start).
 */
/*
 * Brings a stored secret of row `s` to its current form, in place:
 * a SEALED row in clear (older versions) is sealed, a bare SHA-256 API
 * key becomes the keyed MAC. Returns 1 when `value` changed, 0 when it
 * was current, -1 on error.
 */
static int
upgrade_secret(const s2a_setting_t *s, const uint8_t key[32], char *value,
               size_t len)
{
    uint8_t h[S2A_SHA256_LEN], vkey[32], mac[S2A_SHA256_LEN];
    char *sealed;
    size_t i;

    if ((s->flags & S2A_SET_SEALED) && strncmp(value, "v1:", 3) != 0) {
        sealed = s2a_seal(key, value);
        if (sealed == NULL || strlen(sealed) >= len) {
            free(sealed);
            return -1;
        }
        snprintf(value, len, "%s", sealed);
        free(sealed);
        return 1;
    }
    if (s->type == S2A_SET_T_APIKEY && strlen(value) == 64
        && s2a_is_hex(value, 64)) {
        for (i = 0; i < sizeof(h); i++) {
            sscanf(value + 2 * i, "%2hhx", &h[i]);
        }
        s2a_derive_key(key, S2A_APIKEY_LABEL, vkey);
        s2a_hmac_sha256(vkey, sizeof(vkey), h, sizeof(h), mac);
        memcpy(value, S2A_APIKEY_PREFIX, strlen(S2A_APIKEY_PREFIX));
        s2a_hex(mac, sizeof(mac), value + strlen(S2A_APIKEY_PREFIX));
        OPENSSL_cleanse(vkey, sizeof(vkey));
        return 1;
    }
    return 0;
}

int
s2a_db_seed(s2a_db_t *db, const s2a_conf_t *conf, const uint8_t key[32])
{
    const s2a_setting_t *s;
    char value[S2A_PASSWORD_HASH_LEN + 64];
    size_t i;
    int rc = S2A_ERROR, got, up;

    if (s2a_db_begin(db) != S2A_OK) {
        return S2A_ERROR;
    }
    for (i = 0; i < s2a_nsettings; i++) {
        s = &s2a_settings[i];
        got = s2a_db_setting_get(db, s->name, value, sizeof(value));
        if (got == S2A_OK) {
            /* Secrets an older version stored weaker are converted once. */
            up = upgrade_secret(s, key, value, sizeof(value));
            if (up < 0
                || (up > 0 && s2a_db_setting_set(db, s->name, value) != S2A_OK))
            {
                goto done;
            }
            if (up > 0) {
                s2a_log(LOG_NOTICE, 0, "runtime setting %s: %s", s->name,
                        s->type == S2A_SET_T_APIKEY
                            ? "stored as a keyed HMAC instead of SHA-256"
                            : "sealed under secret.key");
            }
            continue;
        }
        if (got != S2A_DECLINED) {
            goto done;
        }
        if (s->def != NULL) {
            snprintf(value, sizeof(value), "%s", s->def);
        } else if (s->seed == NULL
                   || s->seed(conf, value, sizeof(value)) != S2A_OK) {
            s2a_log(LOG_ERR, 0, "cannot make the first value of %s", s->name);
            goto done;
        }
        if (upgrade_secret(s, key, value, sizeof(value)) < 0
            || s2a_db_setting_set(db, s->name, value) != S2A_OK)
        {
            goto done;
        }
    }
    rc = S2A_OK;
done:
    OPENSSL_cleanse(value, sizeof(value));
    if (rc == S2A_OK) {
        return s2a_db_commit(db);
    }
    s2a_db_rollback(db);
    return rc;
}

int
s2a_db_load_settings(s2a_db_t *db, s2a_shm_settings_t *out, bool warn,
                     const uint8_t key[32])
{
    const s2a_setting_t *s;
    char buf[1024], err[256], *plain;
    size_t i;
    int rc;

    s2a_settings_defaults(out);
    for (i = 0; i < s2a_nsettings; i++) {
        s = &s2a_settings[i];
        rc = s2a_db_setting_get(db, s->name, buf, sizeof(buf));
        if (rc == S2A_ERROR) {
            return S2A_ERROR;
        }
        if (rc == S2A_OK && (s->flags & S2A_SET_SEALED)) {
            plain = s2a_open(key, buf);
            snprintf(buf, sizeof(buf), "%s", plain != NULL ? plain : "");
            if (plain != NULL) {
                OPENSSL_cleanse(plain, strlen(plain));
                free(plain);
            }
        }
        if (rc == S2A_OK
            && s2a_setting_parse(s, buf, out, err, sizeof(err)) == S2A_OK) {
            continue;
        }
        if (s->flags & S2A_SET_REQUIRED) {
            s2a_log(LOG_ERR, 0, "setting %s is %s", s->name,
                    rc == S2A_OK ? "corrupt" : "missing");
            return S2A_ERROR;
        }
        /* An out-of-range value written behind the daemon's back is not
         * used: the default stands in, and the log names the key. */
        if (rc == S2A_OK && warn) {
            s2a_log(LOG_WARNING, 0,
                    "runtime setting %s: the stored value is refused (%s); "
                    "using the default \"%s\"",
                    s->name, err, s->def != NULL ? s->def : "");
        }
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return S2A_OK;
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

int
s2a_db_throttle_save(s2a_db_t *db, const char *key, int kind, int fails,
                     int64_t window_start, int64_t locked_until)
{
    sqlite3_stmt *st;
    int rc;

    rc = fails <= 0
        ? sqlite3_prepare_v2(db->conn,
                             "DELETE FROM login_throttle WHERE key = ?1", -1,
                             &st, NULL)
        : sqlite3_prepare_v2(db->conn,
                             "INSERT OR REPLACE INTO login_throttle(key, kind, "
                             "fails, window_start, locked_until) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)",
                             -1, &st, NULL);
    if (rc != SQLITE_OK) {
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (fails > 0) {
        sqlite3_bind_int(st, 2, kind);
        sqlite3_bind_int(st, 3, fails);
        sqlite3_bind_int64(st, 4, window_start);
        sqlite3_bind_int64(st, 5, locked_until);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

int
s2a_db_throttle_load(s2a_db_t *db, int64_t now, s2a_db_throttle_pt cb,
                     void *arg)
{
    sqlite3_stmt *st;
    int rc;

    /* A row whose lock ended and whose window closed counts for nothing. */
    if (sqlite3_prepare_v2(
            db->conn,
            "DELETE FROM login_throttle WHERE locked_until <= ?1 "
            "AND window_start + 900 < ?1",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_step(st);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT key, kind, fails, window_start, "
                           "locked_until FROM login_throttle",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cb((const char *) sqlite3_column_text(st, 0), sqlite3_column_int(st, 1),
           sqlite3_column_int(st, 2), sqlite3_column_int64(st, 3),
           sqlite3_column_int64(st, 4), arg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

/* ---------------------------------------------------------------------
 * The account pool
 */

/* Columns a worker may set when adding or updating a token. */
static const struct {
    const char *name;
    char type; /* s string, i integer, b boolean, x sealed */
} token_columns[] = {
    { "token", 'x' },
    { "st", 'x' },
    { "rt", 'x' },
    { "client_id", 's' },
    { "email", 's' },
    { "name", 's' },
    { "username", 's' },
    { "remark", 's' },
    { "proxy_url", 's' },
    { "expiry_time", 'i' },
    { "plan_type", 's' },
    { "plan_title", 's' },
    { "subscription_end", 's' },
    { "sora2_supported", 'b' },
    { "sora2_invite_code", 's' },
    { "sora2_redeemed_count", 'i' },
    { "sora2_total_count", 'i' },
    { "sora2_remaining_count", 'i' },
    { "sora2_cooldown_until", 'i' },
    { "image_enabled", 'b' },
    { "video_enabled", 'b' },
    { "image_concurrency", 'i' },
    { "video_concurrency", 'i' },
    { "cooled_until", 'i' },
    { "token_group", 's' },
};

static int
token_column(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(token_columns); i++) {
        if (strcmp(token_columns[i].name, name) == 0) {
            return (int) i;
        }
    }
    return -1;
}

/* Binds `v` as the value of column `col` (sealing secrets). */
static int
bind_value(sqlite3_stmt *st, int idx, int col, json_t *v, const uint8_t *key)
{
    char *sealed;

    if (json_is_null(v)) {
        return sqlite3_bind_null(st, idx);
    }
    switch (token_columns[col].type) {
    case 'x':
        if (!json_is_string(v)) {
            return SQLITE_MISMATCH;
        }
        sealed = s2a_seal(key, json_string_value(v));
        if (sealed == NULL) {
            return SQLITE_ERROR;
        }
        return sqlite3_bind_text(st, idx, sealed, -1, free);
    case 's':
        if (!json_is_string(v)) {
            return SQLITE_MISMATCH;
        }
        return sqlite3_bind_text(st, idx, json_string_value(v), -1,
                                 SQLITE_TRANSIENT);
    case 'b':
        if (!json_is_boolean(v) && !json_is_integer(v)) {
            return SQLITE_MISMATCH;
        }
        return sqlite3_bind_int(st, idx,
                                json_is_true(v) || json_integer_value(v) != 0);
    default:
        if (!json_is_integer(v)) {
            return SQLITE_MISMATCH;
        }
        return sqlite3_bind_int64(st, idx, json_integer_value(v));
    }
}

/*
 * Binds `fields` from parameter `idx` on, runs `st` and finalizes it.
 * S2A_DECLINED for a duplicate token (unique constraint).
 */
static int
bind_fields_and_step(s2a_db_t *db, sqlite3_stmt *st, int idx, json_t *fields,
                     const uint8_t *key, const char *what, char *err,
                     size_t errlen)
{
    const char *name;
    json_t *v;
    int rc;

    json_object_foreach (fields, name, v) {
        if (bind_value(st, idx++, token_column(name), v, key) != SQLITE_OK) {
            snprintf(err, errlen, "bad value for %s", name);
            sqlite3_finalize(st);
            return S2A_ERROR;
        }
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_CONSTRAINT) {
        snprintf(err, errlen, "duplicate");
        return S2A_DECLINED;
    }
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_db_token_insert(s2a_db_t *db, const uint8_t *key, const char *sha256,
                    json_t *fields, int64_t now, int64_t *id, char *err,
                    size_t errlen)
{
    char sql[4096], vals[1024];
    size_t n, m;
    const char *name;
    sqlite3_stmt *st = NULL;
    json_t *v;
    int idx = 3, rc;

    n = (size_t) snprintf(sql, sizeof(sql),
                          "INSERT INTO tokens(token_sha256, created_at");
    m = (size_t) snprintf(vals, sizeof(vals), "VALUES (?1, ?2");
    json_object_foreach (fields, name, v) {
        if (token_column(name) < 0) {
            snprintf(err, errlen, "unknown token field \"%.40s\"", name);
            return S2A_ERROR;
        }
        n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s", name);
        m += (size_t) snprintf(vals + m, sizeof(vals) - m, ", ?%d", idx++);
    }
    snprintf(sql + n, sizeof(sql) - n, ") %s)", vals);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    rc = bind_fields_and_step(db, st, 3, fields, key, "insert", err, errlen);
    if (rc != S2A_OK) {
        return rc;
    }
    *id = sqlite3_last_insert_rowid(db->conn);
    return S2A_OK;
}

int
s2a_db_token_update(s2a_db_t *db, const uint8_t *key, int64_t id,
                    json_t *fields, const char *new_sha256, char *err,
                    size_t errlen)
{
    char sql[4096];
    size_t n;
    const char *name;
    sqlite3_stmt *st = NULL;
    json_t *v;
    int idx = 2, rc;

    n = (size_t) snprintf(sql, sizeof(sql), "UPDATE tokens SET id = id");
    if (new_sha256 != NULL) {
        n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", token_sha256 = ?%d",
                               idx++);
    }
    json_object_foreach (fields, name, v) {
        if (token_column(name) < 0) {
            snprintf(err, errlen, "unknown token field \"%.40s\"", name);
            return S2A_ERROR;
        }
        n += (size_t) snprintf(sql + n, sizeof(sql) - n, ", %s = ?%d", name,
                               idx++);
    }
    snprintf(sql + n, sizeof(sql) - n, " WHERE id = ?1");
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    idx = 2;
    if (new_sha256 != NULL) {
        sqlite3_bind_text(st, idx++, new_sha256, -1, SQLITE_STATIC);
    }
    rc = bind_fields_and_step(db, st, idx, fields, key, "update", err, errlen);
    if (rc != S2A_OK) {
        return rc;
    }
    if (sqlite3_changes(db->conn) == 0) {
        snprintf(err, errlen, "not found");
        return S2A_DECLINED;
    }
    return S2A_OK;
}

/* Runs a write statement and finalizes it: S2A_OK when a row changed,
 * S2A_DECLINED when none matched, S2A_ERROR on failure. */
static int
step_changed(s2a_db_t *db, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return S2A_ERROR;
    }
    return sqlite3_changes(db->conn) > 0 ? S2A_OK : S2A_DECLINED;
}

int
s2a_db_token_set_state(s2a_db_t *db, int64_t id, const char *state,
                       const char *reason, int64_t cooled_until, int64_t now)
{
    sqlite3_stmt *st;

    /* Enabling forgets the run of errors that may have disabled it. */
    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE tokens SET state = ?2, state_reason = ?3, "
                           "state_changed_at = ?4, cooled_until = ?5, "
                           "consecutive_errors = CASE WHEN ?2 = 'active' "
                           "THEN 0 ELSE consecutive_errors END "
                           "WHERE id = ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (reason != NULL) {
        sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 4, now);
    if (cooled_until > 0) {
        sqlite3_bind_int64(st, 5, cooled_until);
    }
    return step_changed(db, st);
}

int
s2a_db_token_delete(s2a_db_t *db, int64_t id)
{
    sqlite3_stmt *st;

    if (sqlite3_prepare_v2(db->conn, "DELETE FROM tokens WHERE id = ?1", -1,
                           &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    return step_changed(db, st);
}

static bool
is_time_column(const char *name)
{
    size_t len = strlen(name);

    return (len > 3 && strcmp(name + len - 3, "_at") == 0)
        || (len > 6 && strcmp(name + len - 6, "_until") == 0)
        || strcmp(name, "expiry_time") == 0;
}

static bool
is_bool_column(const char *name)
{
    size_t len = strlen(name);

    return (len > 8 && strcmp(name + len - 8, "_enabled") == 0)
        || strcmp(name, "sora2_supported") == 0;
}

json_t *
s2a_db_iso_time(int64_t t)
{
    char buf[32];
    time_t tt = (time_t) t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

json_t *
s2a_db_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return s != NULL ? json_string((const char *) s) : json_null();
}

json_t *
s2a_db_col_int(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
        ? json_null()
        : json_integer(sqlite3_column_int64(st, i));
}

json_t *
s2a_db_col_time(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL
        ? json_null()
        : s2a_db_iso_time(sqlite3_column_int64(st, i));
}

static void
mask_secret(const char *s, char *out, size_t outlen)
{
    size_t len = strlen(s);

    if (len <= 12) {
        snprintf(out, outlen, "****");
    } else {
        snprintf(out, outlen, "%.6s...%s", s, s + len - 6);
    }
}

/* One row as JSON: times in ISO-8601 UTC, flags as booleans, secrets
 * opened and, unless `reveal`, masked. */
static json_t *
token_row_json(sqlite3_stmt *st, const uint8_t *key, bool reveal)
{
    json_t *o = json_object();
    int i, ncol = sqlite3_column_count(st);
    const char *name, *state = "active";
    char masked[64], *plain;

    for (i = 0; i < ncol; i++) {
        name = sqlite3_column_name(st, i);
        if (strcmp(name, "token_sha256") == 0) {
            continue;
        }
        /* The token API calls the column by its short name. */
        if (strcmp(name, "token_group") == 0) {
            name = "group";
        }
        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
            json_object_set_new(o, name, json_null());
            continue;
        }
        if (strcmp(name, "token") == 0 || strcmp(name, "st") == 0
            || strcmp(name, "rt") == 0)
        {
            plain = s2a_open(key, (const char *) sqlite3_column_text(st, i));
            if (plain == NULL) {
                json_object_set_new(o, name, json_null());
                continue;
            }
            if (reveal) {
                json_object_set_new(o, name, json_string(plain));
            } else {
                mask_secret(plain, masked, sizeof(masked));
                json_object_set_new(o, name, json_string(masked));
            }
            OPENSSL_cleanse(plain, strlen(plain));
            free(plain);
        } else if (is_time_column(name)) {
            json_object_set_new(o, name,
                                s2a_db_iso_time(sqlite3_column_int64(st, i)));
        } else if (is_bool_column(name)) {
            json_object_set_new(o, name,
                                json_boolean(sqlite3_column_int(st, i) != 0));
        } else if (sqlite3_column_type(st, i) == SQLITE_INTEGER) {
            json_object_set_new(o, name,
                                json_integer(sqlite3_column_int64(st, i)));
        } else {
            json_object_set_new(
                o, name,
                json_string((const char *) sqlite3_column_text(st, i)));
        }
        if (strcmp(name, "state") == 0) {
            state = (const char *) sqlite3_column_text(st, i);
            json_object_set_new(o, "is_active",
                                json_boolean(strcmp(state, "active") == 0));
        }
    }
    return o;
}

json_t *
s2a_db_tokens_list(s2a_db_t *db, const uint8_t *key, int64_t id, int64_t before,
                   int limit, bool reveal)
{
    sqlite3_stmt *st;
    json_t *arr;
    int rc;

    if (sqlite3_prepare_v2(db->conn,
                           id > 0 ? "SELECT * FROM tokens WHERE id = ?1"
                                  : "SELECT * FROM tokens WHERE id < ?2 "
                                    "ORDER BY id DESC LIMIT ?3",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    if (id > 0) {
        sqlite3_bind_int64(st, 1, id);
    } else {
        sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
        sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    }
    arr = json_array();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(arr, token_row_json(st, key, reveal));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int
s2a_db_token_find(s2a_db_t *db, const char *sha256, const char *email,
                  int64_t *id, char *found_email, size_t emlen)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db->conn,
                           sha256 != NULL
                               ? "SELECT id, email FROM tokens WHERE "
                                 "token_sha256 = ?1"
                               : "SELECT id, email FROM tokens WHERE "
                                 "email = ?1 ORDER BY id LIMIT 1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, sha256 != NULL ? sha256 : email, -1,
                      SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        if (found_email != NULL) {
            snprintf(found_email, emlen, "%s",
                     (const char *) sqlite3_column_text(st, 1));
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? S2A_OK
        : rc == SQLITE_DONE ? S2A_DECLINED
                            : S2A_ERROR;
}

#define TOKEN_LOAD_COLUMNS \
    "id, token, state, image_enabled, video_enabled, sora2_supported, " \
    "image_concurrency, video_concurrency, cooled_until, expiry_time, " \
    "sora2_remaining_count, consecutive_errors, last_used_at, proxy_url, " \
    "token_group"

int
s2a_db_tokens_load(s2a_db_t *db, const uint8_t *key, int64_t id,
                   s2a_db_token_pt cb, void *arg)
{
    sqlite3_stmt *st;
    s2a_shm_token_t t;
    const char *state;
    char *at;
    int rc;

    /* Two statements: one row by rowid must not become a table scan
     * (every finished generation reloads its token). */
    if (sqlite3_prepare_v2(
            db->conn,
            id != 0 ? "SELECT " TOKEN_LOAD_COLUMNS " FROM tokens WHERE id = ?1"
                    : "SELECT " TOKEN_LOAD_COLUMNS " FROM tokens",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    if (id != 0) {
        sqlite3_bind_int64(st, 1, id);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&t, 0, sizeof(t));
        t.id = sqlite3_column_int64(st, 0);
        state = (const char *) sqlite3_column_text(st, 2);
        t.state = strcmp(state, "active") == 0 ? S2A_TOKEN_ACTIVE
            : strcmp(state, "disabled") == 0   ? S2A_TOKEN_DISABLED
            : strcmp(state, "invalid") == 0    ? S2A_TOKEN_INVALID
            : strcmp(state, "expired") == 0    ? S2A_TOKEN_EXPIRED
                                               : S2A_TOKEN_COOLING;
        t.flags =
            (uint8_t) ((sqlite3_column_int(st, 3) ? S2A_TOKEN_F_IMAGE : 0)
                       | (sqlite3_column_int(st, 4) ? S2A_TOKEN_F_VIDEO : 0)
                       | (sqlite3_column_int(st, 5) ? S2A_TOKEN_F_SORA2 : 0));
        t.limit[S2A_KIND_IMAGE] = sqlite3_column_int(st, 6);
        t.limit[S2A_KIND_VIDEO] = sqlite3_column_int(st, 7);
        t.cooldown_until = sqlite3_column_int64(st, 8);
        t.expires_at = sqlite3_column_int64(st, 9);
        t.quota_left = sqlite3_column_type(st, 10) == SQLITE_NULL
            ? -1
            : sqlite3_column_int(st, 10);
        t.consecutive_errors = sqlite3_column_int(st, 11);
        t.last_used_ms = sqlite3_column_int64(st, 12) * 1000;
        t.group =
            s2a_keytab_group_hash((const char *) sqlite3_column_text(st, 14));
        at = s2a_open(key, (const char *) sqlite3_column_text(st, 1));
        if (at == NULL) {
            s2a_log(LOG_ERR, 0,
                    "token %lld cannot be decrypted (wrong "
                    "secret.key?); skipped",
                    (long long) t.id);
            continue;
        }
        cb(&t, at, (const char *) sqlite3_column_text(st, 13), arg);
        OPENSSL_cleanse(at, strlen(at));
        free(at);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

int
s2a_db_token_video_used(s2a_db_t *db, int64_t id, int64_t now)
{
    sqlite3_stmt *st;

    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE tokens SET "
                           " sora2_remaining_count = sora2_remaining_count - 1,"
                           " sora2_cooldown_until = CASE"
                           "  WHEN sora2_remaining_count = 1 THEN ?2 + 60"
                           "  ELSE sora2_cooldown_until END "
                           "WHERE id = ?1 AND sora2_remaining_count > 0",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return step_changed(db, st);
}

int
s2a_db_tokens_end_cooldown(s2a_db_t *db, int64_t id, int64_t now,
                           void (*cb)(int64_t id))
{
    sqlite3_stmt *st;
    int rc, n = 0;

#define END_COOLDOWN \
    "UPDATE tokens SET state = 'active', " \
    "state_reason = 'cooldown over', state_changed_at = ?2, " \
    "cooled_until = NULL WHERE state = 'cooling' AND cooled_until <= ?2 "

    /* By rowid when one token is meant: this runs after every success. */
    if (sqlite3_prepare_v2(db->conn,
                           id != 0 ? END_COOLDOWN "AND id = ?1 RETURNING id"
                                   : END_COOLDOWN "RETURNING id",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return -1;
    }
    if (id != 0) {
        sqlite3_bind_int64(st, 1, id);
    }
    sqlite3_bind_int64(st, 2, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cb(sqlite3_column_int64(st, 0));
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int
s2a_db_token_outcome(s2a_db_t *db, int64_t id, bool video, int result,
                     int64_t now)
{
    sqlite3_stmt *st;
    char today[11];
    int rc, run = -1;

    s2a_utc_day(now, today);
    /* A new day starts today's counters from zero. */
    if (sqlite3_prepare_v2(
            db->conn,
            "UPDATE tokens SET "
            " today_image_count = CASE WHEN today_date = ?2 "
            "   THEN today_image_count ELSE 0 END + (?3 = 1 AND NOT ?4),"
            " today_video_count = CASE WHEN today_date = ?2 "
            "   THEN today_video_count ELSE 0 END + (?3 = 1 AND ?4),"
            " today_error_count = CASE WHEN today_date = ?2 "
            "   THEN today_error_count ELSE 0 END + (?3 = 0),"
            " today_date = ?2,"
            " image_count = image_count + (?3 = 1 AND NOT ?4),"
            " video_count = video_count + (?3 = 1 AND ?4),"
            " error_count = error_count + (?3 = 0),"
            " use_count = use_count + 1,"
            " consecutive_errors = CASE WHEN ?3 = 1 THEN 0 "
            "   WHEN ?3 = 0 THEN consecutive_errors + 1 "
            "   ELSE consecutive_errors END,"
            " last_used_at = ?5 "
            "WHERE id = ?1 RETURNING consecutive_errors",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, today, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 3, result);
    sqlite3_bind_int(st, 4, video);
    sqlite3_bind_int64(st, 5, now);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        run = sqlite3_column_int(st, 0);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? run : -1;
}

json_t *
s2a_db_stats(s2a_db_t *db, int64_t now)
{
    sqlite3_stmt *st;
    char today[11];
    json_t *out = NULL, *states;
    int rc;

    s2a_utc_day(now, today);
    /* "Today" counters count only when their day is today, so an idle
     * token's yesterday never leaks into today's totals. */
    if (sqlite3_prepare_v2(
            db->conn,
            "SELECT COUNT(*),"
            " SUM(state = 'active' AND (expiry_time IS NULL OR expiry_time > "
            "?1)"
            "     AND (cooled_until IS NULL OR cooled_until <= ?1)),"
            " COALESCE(SUM(image_count), 0), COALESCE(SUM(video_count), 0),"
            " COALESCE(SUM(error_count), 0),"
            " COALESCE(SUM(CASE WHEN today_date = ?2 THEN today_image_count "
            "END), 0),"
            " COALESCE(SUM(CASE WHEN today_date = ?2 THEN today_video_count "
            "END), 0),"
            " COALESCE(SUM(CASE WHEN today_date = ?2 THEN today_error_count "
            "END), 0),"
            " SUM(state = 'active'), SUM(state = 'disabled'),"
            " SUM(state = 'invalid'), SUM(state = 'expired'),"
            " SUM(state = 'cooling')"
            " FROM tokens",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_text(st, 2, today, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        states = json_pack("{s:I, s:I, s:I, s:I, s:I}", "active",
                           (json_int_t) sqlite3_column_int64(st, 8), "disabled",
                           (json_int_t) sqlite3_column_int64(st, 9), "invalid",
                           (json_int_t) sqlite3_column_int64(st, 10), "expired",
                           (json_int_t) sqlite3_column_int64(st, 11), "cooling",
                           (json_int_t) sqlite3_column_int64(st, 12));
        out =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:o}",
                      "total_tokens", (json_int_t) sqlite3_column_int64(st, 0),
                      "active_tokens", (json_int_t) sqlite3_column_int64(st, 1),
                      "total_images", (json_int_t) sqlite3_column_int64(st, 2),
                      "total_videos", (json_int_t) sqlite3_column_int64(st, 3),
                      "total_errors", (json_int_t) sqlite3_column_int64(st, 4),
                      "today_images", (json_int_t) sqlite3_column_int64(st, 5),
                      "today_videos", (json_int_t) sqlite3_column_int64(st, 6),
                      "today_errors", (json_int_t) sqlite3_column_int64(st, 7),
                      "today", today, "states", states);
    }
    sqlite3_finalize(st);
    return out;
}

int
s2a_db_tokens_due(s2a_db_t *db, const uint8_t *key, int64_t now,
                  int64_t refresh_window, int64_t quota_interval, int limit,
                  s2a_db_due_pt cb, void *arg)
{
    sqlite3_stmt *st;
    char *sec[2];
    int rc, n = 0, i;

    /* Due for a refresh: active or expired, with an ST or RT, expiring
     * within the window, not tried in the last 10 minutes. Due for a
     * quota check: active Sora 2 tokens not checked for an interval. */
    if (sqlite3_prepare_v2(
            db->conn,
            "SELECT id, st, rt, client_id, proxy_url,"
            " (expiry_time IS NOT NULL AND expiry_time < ?1 + ?2"
            "  AND (st IS NOT NULL OR rt IS NOT NULL)"
            "  AND state IN ('active', 'cooling', 'expired')"
            "  AND (refresh_attempted_at IS NULL"
            "       OR refresh_attempted_at < ?1 - 600)) AS refresh"
            " FROM tokens WHERE"
            " (?2 > 0 AND expiry_time IS NOT NULL AND expiry_time < ?1 + ?2"
            "  AND (st IS NOT NULL OR rt IS NOT NULL)"
            "  AND state IN ('active', 'cooling', 'expired')"
            "  AND (refresh_attempted_at IS NULL"
            "       OR refresh_attempted_at < ?1 - 600))"
            " OR (?3 > 0 AND state = 'active' AND sora2_supported = 1"
            "  AND (quota_checked_at IS NULL OR quota_checked_at < ?1 - ?3))"
            /* A quota that has just reset is worth reading at once. */
            " OR (state = 'active' AND sora2_cooldown_until IS NOT NULL"
            "  AND sora2_cooldown_until <= ?1"
            "  AND (quota_checked_at IS NULL"
            "       OR quota_checked_at < sora2_cooldown_until))"
            " ORDER BY expiry_time LIMIT ?4",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_log(LOG_ERR, 0, "due tokens query: %s", sqlite3_errmsg(db->conn));
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int64(st, 2, refresh_window);
    sqlite3_bind_int64(st, 3, quota_interval);
    sqlite3_bind_int(st, 4, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (i = 0; i < 2; i++) {
            sec[i] = sqlite3_column_type(st, 1 + i) == SQLITE_NULL
                ? NULL
                : s2a_open(key, (const char *) sqlite3_column_text(st, 1 + i));
        }
        cb(sqlite3_column_int64(st, 0), sqlite3_column_int(st, 5) != 0, sec[0],
           sec[1], (const char *) sqlite3_column_text(st, 3),
           (const char *) sqlite3_column_text(st, 4), arg);
        for (i = 0; i < 2; i++) {
            if (sec[i] != NULL) {
                OPENSSL_cleanse(sec[i], strlen(sec[i]));
                free(sec[i]);
            }
        }
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int
s2a_db_token_mark(s2a_db_t *db, int64_t id, const char *column, int64_t now)
{
    sqlite3_stmt *st;
    char sql[128];
    int rc;

    if (strcmp(column, "refresh_attempted_at") != 0
        && strcmp(column, "quota_checked_at") != 0)
    {
        return S2A_ERROR;
    }
    snprintf(sql, sizeof(sql), "UPDATE tokens SET %s = ?2 WHERE id = ?1",
             column);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
        return S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

/* ---------------------------------------------------------------------
 * Generation records
 */

static const char *const task_columns[] = {
    "upstream_task_id", "token_id",     "model",       "mode",
    "prompt",           "status",       "progress",    "result_urls",
    "error_message",    "completed_at", "duration_ms", "worker_pid",
    "error_code",       "params",       "owner",       "stages",
};

static bool
is_task_column(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(task_columns); i++) {
        if (strcmp(task_columns[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static int
bind_json(sqlite3_stmt *st, int idx, json_t *v)
{
    char *text;
    int rc;

    if (json_is_null(v)) {
        return sqlite3_bind_null(st, idx);
    }
    if (json_is_string(v)) {
        return sqlite3_bind_text(st, idx, json_string_value(v), -1,
                                 SQLITE_TRANSIENT);
    }
    if (json_is_integer(v)) {
        return sqlite3_bind_int64(st, idx, json_integer_value(v));
    }
    if (json_is_real(v)) {
        return sqlite3_bind_double(st, idx, json_real_value(v));
    }
    if (json_is_boolean(v)) {
        return sqlite3_bind_int(st, idx, json_is_true(v));
    }
    /* Arrays and objects (result URLs) are stored as JSON text. */
    text = json_dumps(v, JSON_COMPACT);
    if (text == NULL) {
        return SQLITE_NOMEM;
    }
    rc = sqlite3_bind_text(st, idx, text, -1, SQLITE_TRANSIENT);
    free(text);
    return rc;
}

int
s2a_db_task_upsert(s2a_db_t *db, const char *job_id, json_t *fields,
                   int64_t now, char *err, size_t errlen)
{
    char sql[4096], cols[1024] = "", vals[512] = "", upd[2048] = "";
    size_t nc = 0, nv = 0, nu = 0;
    const char *name;
    sqlite3_stmt *st;
    json_t *v;
    int idx = 4, rc;

    json_object_foreach (fields, name, v) {
        if (strcmp(name, "created_at") == 0) {
            continue; /* bound below, for a new row only */
        }
        if (!is_task_column(name)) {
            snprintf(err, errlen, "unknown task field \"%.40s\"", name);
            return S2A_ERROR;
        }
        nc += (size_t) snprintf(cols + nc, sizeof(cols) - nc, ", %s", name);
        nv += (size_t) snprintf(vals + nv, sizeof(vals) - nv, ", ?%d", idx);
        nu += (size_t) snprintf(upd + nu, sizeof(upd) - nu, ", %s = ?%d", name,
                                idx);
        idx++;
    }
    /* ?3: when the job was accepted, as its worker says (the Video
     * object its live slot shows has the same created_at), else now. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO tasks(job_id, created_at, updated_at%s) "
             "VALUES (?1, ?3, ?2%s) ON CONFLICT(job_id) DO UPDATE SET "
             "updated_at = ?2%s",
             cols, vals, upd);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "prepare: %s", sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    v = json_object_get(fields, "created_at");
    sqlite3_bind_int64(st, 3, json_is_integer(v) ? json_integer_value(v) : now);
    idx = 4;
    json_object_foreach (fields, name, v) {
        if (strcmp(name, "created_at") != 0) {
            bind_json(st, idx++, v);
        }
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "task write: %s", sqlite3_errmsg(db->conn));
        return S2A_ERROR;
    }
    return S2A_OK;
}

/* An unfinished row Sora has the task of: a worker can finish it. */
#define RESUMABLE \
    "(status IN ('queued', 'running') AND upstream_task_id IS NOT NULL " \
    "AND token_id IS NOT NULL AND model IS NOT NULL)"

/* params.image ('true', 'false', or NULL for a row from before it). */
#define PARAMS_IMAGE \
    "(CASE WHEN json_valid(params) THEN json_type(params, '$.image') END)"

/* A row nothing was sent for yet, with all a submission needs (its
 * params say whether an input image was given; older rows do not): a
 * worker can submit it. */
#define RESUBMITTABLE \
    "(status = 'queued' AND upstream_task_id IS NULL AND model IS NOT " \
    "NULL AND prompt IS NOT NULL AND " PARAMS_IMAGE " = 'false')"

/* A row nothing was sent for whose input image died with its job. */
#define UNKEPT_IMAGE \
    "(status = 'queued' AND upstream_task_id IS NULL AND " PARAMS_IMAGE \
    " = 'true')"

#define IMAGE_NOT_KEPT \
    "the job had not reached Sora and its input image was not kept; " \
    "send the request again"

/* Closes the unfinished rows of `worker_pid` (0: all) matching `which`. */
static int
tasks_fail(s2a_db_t *db, const char *which, int64_t worker_pid,
           const char *code, const char *message, int64_t now)
{
    char sql[1024];
    sqlite3_stmt *st;
    int rc;

    snprintf(sql, sizeof(sql),
             "UPDATE tasks SET status = 'failed', error_code = ?2, "
             " error_message = ?3, completed_at = ?4, updated_at = ?4 "
             "WHERE status IN ('queued', 'submitting', 'running') "
             " AND (?1 = 0 OR worker_pid = ?1) AND %s",
             which);
    if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, worker_pid);
    sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, message, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db->conn) : -1;
}

int
s2a_db_tasks_close(s2a_db_t *db, int64_t worker_pid, const char *code,
                   const char *message, int64_t now)
{
    return tasks_fail(
        db, "NOT " RESUMABLE " AND NOT " RESUBMITTABLE " AND NOT " UNKEPT_IMAGE,
        worker_pid, code, message, now);
}

int
s2a_db_tasks_close_unkept(s2a_db_t *db, int64_t worker_pid, int64_t now)
{
    return tasks_fail(db, UNKEPT_IMAGE, worker_pid, "interrupted",
                      IMAGE_NOT_KEPT, now);
}

int
s2a_db_tasks_closed_each(s2a_db_t *db, int64_t worker_pid, int64_t now,
                         s2a_db_closed_pt each, void *arg)
{
    sqlite3_stmt *st;
    int n = 0, rc;

    /* The rows the two closes above just wrote: their codes, their time. */
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT model, created_at FROM tasks "
                           "WHERE status = 'failed' AND worker_pid = ?1 "
                           " AND completed_at = ?2 "
                           " AND error_code IN ('worker_died', 'interrupted')",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return -1;
    }
    sqlite3_bind_int64(st, 1, worker_pid);
    sqlite3_bind_int64(st, 2, now);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        each((const char *) sqlite3_column_text(st, 0),
             sqlite3_column_int64(st, 1), arg);
        n++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? n : -1;
}

int
s2a_db_tasks_unassign(s2a_db_t *db, int64_t now)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db->conn,
                           "UPDATE tasks SET worker_pid = NULL, "
                           "updated_at = ?1 WHERE " RESUMABLE
                           " OR " RESUBMITTABLE,
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return -1;
    }
    sqlite3_bind_int64(st, 1, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? sqlite3_changes(db->conn) : -1;
}

json_t *
s2a_db_tasks_resumable(s2a_db_t *db, int64_t after, int limit)
{
    sqlite3_stmt *st;
    json_t *arr, *row, *params, *stages;
    const char *text;

    if (sqlite3_prepare_v2(db->conn,
                           "SELECT job_id, upstream_task_id, token_id, model, "
                           "COALESCE(mode, 'normal'), created_at, "
                           "COALESCE(worker_pid, 0), params, prompt, id, "
                           "stages "
                           "FROM tasks WHERE id > ?2 AND (" RESUMABLE
                           " OR " RESUBMITTABLE ") ORDER BY id LIMIT ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int64(st, 2, after);
    arr = json_array();
    while (arr != NULL && sqlite3_step(st) == SQLITE_ROW) {
        text = (const char *) sqlite3_column_text(st, 7);
        params = text != NULL ? json_loads(text, 0, NULL) : NULL;
        if (!json_is_object(params)) {
            json_decref(params);
            params = json_object();
        }
        row = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:o}", "id",
                        (json_int_t) sqlite3_column_int64(st, 9), "job_id",
                        (const char *) sqlite3_column_text(st, 0), "model",
                        (const char *) sqlite3_column_text(st, 3), "mode",
                        (const char *) sqlite3_column_text(st, 4), "created_at",
                        (json_int_t) sqlite3_column_int64(st, 5), "worker_pid",
                        (json_int_t) sqlite3_column_int64(st, 6), "params",
                        params);
        if (row == NULL) {
            continue;
        }
        text = (const char *) sqlite3_column_text(st, 10);
        stages = text != NULL ? json_loads(text, 0, NULL) : NULL;
        if (json_is_array(stages)) {
            json_object_set_new(row, "stages", stages);
        } else {
            json_decref(stages);
        }
        /* With a task id: to follow; without: to submit (its prompt). */
        if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
            json_object_set_new(
                row, "task_id",
                json_string((const char *) sqlite3_column_text(st, 1)));
            json_object_set_new(row, "token_id",
                                json_integer(sqlite3_column_int64(st, 2)));
        } else {
            json_object_set_new(
                row, "prompt",
                json_string((const char *) sqlite3_column_text(st, 8)));
        }
        json_array_append_new(arr, row);
    }
    sqlite3_finalize(st);
    return arr;
}

int
s2a_db_request_log(s2a_db_t *db, json_t *f, int64_t now)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(db->conn,
                           "INSERT INTO request_logs(request_id, token_id, "
                           "operation, model, status_code, duration_ms, "
                           "error, created_at) VALUES (?1, ?2, ?3, ?4, ?5, "
                           "?6, ?7, ?8)",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    bind_json(st, 1, json_object_get(f, "request_id"));
    bind_json(st, 2, json_object_get(f, "token_id"));
    bind_json(st, 3, json_object_get(f, "operation"));
    bind_json(st, 4, json_object_get(f, "model"));
    bind_json(st, 5, json_object_get(f, "status_code"));
    bind_json(st, 6, json_object_get(f, "duration_ms"));
    bind_json(st, 7, json_object_get(f, "error"));
    sqlite3_bind_int64(st, 8, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? S2A_OK : S2A_ERROR;
}

/* Rows of `st` as JSON objects; *_at columns as ISO-8601 UTC. */
static json_t *
rows_json(sqlite3_stmt *st)
{
    json_t *arr = json_array(), *o, *parsed;
    int i, ncol = sqlite3_column_count(st);
    const char *name;

    while (sqlite3_step(st) == SQLITE_ROW) {
        o = json_object();
        for (i = 0; i < ncol; i++) {
            name = sqlite3_column_name(st, i);
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_NULL: json_object_set_new(o, name, json_null()); break;
            case SQLITE_INTEGER:
                json_object_set_new(
                    o, name,
                    is_time_column(name)
                        ? s2a_db_iso_time(sqlite3_column_int64(st, i))
                        : json_integer(sqlite3_column_int64(st, i)));
                break;
            case SQLITE_FLOAT:
                json_object_set_new(o, name,
                                    json_real(sqlite3_column_double(st, i)));
                break;
            default:
                if (strcmp(name, "result_urls") == 0
                    || strcmp(name, "stages") == 0) {
                    parsed = json_loads(
                        (const char *) sqlite3_column_text(st, i), 0, NULL);
                    json_object_set_new(o, name,
                                        parsed != NULL ? parsed : json_null());
                } else {
                    json_object_set_new(
                        o, name,
                        json_string((const char *) sqlite3_column_text(st, i)));
                }
                break;
            }
        }
        json_array_append_new(arr, o);
    }
    return arr;
}

/*
 * The id range [*lo, *hi] a listing of `table` (tasks or request_logs)
 * looks at: the rows of the time range, before `before`, and at most
 * S2A_DB_LIST_SCAN of them, found through the created_at index and the
 * primary key. Rows are inserted in time order, so ids follow created_at;
 * the listing still checks created_at itself. Returns false when there
 * is nothing to look at or the read failed (*failed set).
 */
static bool
list_window(s2a_db_t *db, const char *table, const s2a_db_filter_t *f,
            int64_t *lo, int64_t *hi, bool *failed)
{
    char sql[160];
    sqlite3_stmt *st;
    int rc;
    int i;

    *lo = 1;
    *hi = 0;
    for (i = 0; i < 2; i++) {
        if (i == 0) {
            snprintf(sql, sizeof(sql),
                     f->until > 0 ? "SELECT id FROM %s WHERE created_at < ?1 "
                                    "ORDER BY created_at DESC, id DESC LIMIT 1"
                                  : "SELECT MAX(id) FROM %s",
                     table);
        } else if (f->since > 0) {
            snprintf(sql, sizeof(sql),
                     "SELECT id FROM %s WHERE created_at >= ?1 ORDER BY "
                     "created_at, id LIMIT 1",
                     table);
        } else {
            break;
        }
        if (sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL) != SQLITE_OK) {
            *failed = true;
            return false;
        }
        sqlite3_bind_int64(st, 1, i == 0 ? f->until : f->since);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            if (i == 0) {
                *hi = sqlite3_column_int64(st, 0);
            } else {
                *lo = sqlite3_column_int64(st, 0);
            }
        } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            *failed = true;
        } else if (i == 1) {
            *lo = INT64_MAX; /* nothing that recent */
        }
        sqlite3_finalize(st);
        if (*failed) {
            return false;
        }
    }
    if (f->before > 0 && f->before - 1 < *hi) {
        *hi = f->before - 1;
    }
    if (*hi - S2A_DB_LIST_SCAN + 1 > *lo) {
        *lo = *hi - S2A_DB_LIST_SCAN + 1;
    }
    return *lo <= *hi;
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL && v[0] != '\0') {
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    }
}

static void
bind_int_or_null(sqlite3_stmt *st, int i, int64_t v)
{
    if (v > 0) {
        sqlite3_bind_int64(st, i, v);
    }
}

json_t *
s2a_db_logs_list(s2a_db_t *db, const s2a_db_filter_t *f)
{
    sqlite3_stmt *st;
    int64_t lo, hi;
    bool failed = false;
    json_t *arr;

    if (!list_window(db, "request_logs", f, &lo, &hi, &failed)) {
        return failed ? NULL : json_array();
    }
    /* status: "ok" (below 400), "error" (400 and above) or one code. */
    if (sqlite3_prepare_v2(
            db->conn,
            "SELECT l.id, l.request_id, l.token_id, t.email AS token_email, "
            "l.operation, l.model, l.status_code, l.duration_ms, l.error, "
            "l.created_at FROM request_logs l LEFT JOIN tokens t ON t.id = "
            "l.token_id WHERE l.id BETWEEN ?2 AND ?3"
            " AND (?4 IS NULL OR (?4 = 'ok' AND l.status_code < 400)"
            "      OR (?4 = 'error' AND l.status_code >= 400)"
            "      OR l.status_code = CAST(?4 AS INTEGER))"
            " AND (?5 IS NULL OR l.model = ?5)"
            " AND (?6 IS NULL OR l.token_id = ?6)"
            " AND (?7 IS NULL OR l.created_at >= ?7)"
            " AND (?8 IS NULL OR l.created_at < ?8)"
            " AND (?9 IS NULL OR l.operation = ?9)"
            " ORDER BY l.id DESC LIMIT ?1",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int(st, 1, f->limit);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    bind_text_or_null(st, 4, f->status);
    bind_text_or_null(st, 5, f->model);
    bind_int_or_null(st, 6, f->token_id);
    bind_int_or_null(st, 7, f->since);
    bind_int_or_null(st, 8, f->until);
    bind_text_or_null(st, 9, f->operation);
    arr = rows_json(st);
    sqlite3_finalize(st);
    return arr;
}

#define TASK_LIST_COLUMNS \
    "id, job_id, upstream_task_id, token_id, model, mode, prompt, status, " \
    "progress, result_urls, error_message, error_code, created_at, " \
    "updated_at, completed_at, duration_ms, owner"

json_t *
s2a_db_tasks_list(s2a_db_t *db, const s2a_db_filter_t *f)
{
    sqlite3_stmt *st;
    int64_t lo = 0, hi = 0;
    bool failed = false;
    json_t *arr;
    int rc;

    if (f->job_id != NULL) {
        rc = sqlite3_prepare_v2(db->conn,
                                "SELECT " TASK_LIST_COLUMNS
                                ", stages FROM tasks WHERE job_id = ?1",
                                -1, &st, NULL);
        if (rc != SQLITE_OK) {
            return NULL;
        }
        sqlite3_bind_text(st, 1, f->job_id, -1, SQLITE_STATIC);
        arr = rows_json(st);
        sqlite3_finalize(st);
        return arr;
    }
    if (!list_window(db, "tasks", f, &lo, &hi, &failed)) {
        return failed ? NULL : json_array();
    }
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT " TASK_LIST_COLUMNS " FROM tasks "
                           "WHERE id BETWEEN ?2 AND ?3"
                           " AND (?4 IS NULL OR status = ?4)"
                           " AND (?5 IS NULL OR model = ?5)"
                           " AND (?6 IS NULL OR token_id = ?6)"
                           " AND (?7 IS NULL OR created_at >= ?7)"
                           " AND (?8 IS NULL OR created_at < ?8)"
                           " ORDER BY id DESC LIMIT ?1",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int(st, 1, f->limit);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    bind_text_or_null(st, 4, f->status);
    bind_text_or_null(st, 5, f->model);
    bind_int_or_null(st, 6, f->token_id);
    bind_int_or_null(st, 7, f->since);
    bind_int_or_null(st, 8, f->until);
    arr = rows_json(st);
    sqlite3_finalize(st);
    return arr;
}

json_t *
s2a_db_jobs_counts(s2a_db_t *db)
{
    sqlite3_stmt *st;
    json_int_t queued = 0, running = 0;
    const char *status;
    int rc;

    /* Through the status index: costs the unfinished rows only. */
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT status, COUNT(*) FROM tasks WHERE status "
                           "IN ('queued', 'submitting', 'running') "
                           "GROUP BY status",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        status = (const char *) sqlite3_column_text(st, 0);
        /* A row submitting is not Sora's yet: it counts as queued. */
        if (strcmp(status, "running") != 0) {
            queued += sqlite3_column_int64(st, 1);
        } else {
            running = sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return NULL;
    }
    return json_pack("{s:I, s:I}", "queued", queued, "running", running);
}

/* ---------------------------------------------------------------------
 * Video task rows for /v1/videos (docs/videos.md)
 */

/* Columns a Video object is built from; times as unix seconds. */
#define VIDEO_COLUMNS \
    "job_id, model, prompt, status, progress, result_urls, " \
    "error_message, error_code, params, upstream_task_id, " \
    "created_at AS created, completed_at AS completed"
/* A character-only job runs on a video model but makes no video. */
#define VIDEO_ROWS \
    "model LIKE 'sora-video-%' AND COALESCE(mode, '') <> 'character'"
/* The rows of owner ?n (an API key's id), every row for 0 (admin). */
#define OWNED_BY(n) "(?" #n " = 0 OR owner = ?" #n ")"

json_t *
s2a_db_video_get(s2a_db_t *db, const char *job_id, int64_t owner)
{
    sqlite3_stmt *st;
    json_t *arr;

    if (sqlite3_prepare_v2(db->conn,
                           "SELECT " VIDEO_COLUMNS " FROM tasks WHERE "
                           "job_id = ?1 AND " VIDEO_ROWS " AND " OWNED_BY(2),
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, owner);
    arr = rows_json(st);
    sqlite3_finalize(st);
    return arr;
}

json_t *
s2a_db_videos_page(s2a_db_t *db, int limit, const char *after, bool asc,
                   int64_t owner)
{
    sqlite3_stmt *st;
    json_t *arr;

    /* `after` names a row: the page starts past it in the order asked. */
    if (sqlite3_prepare_v2(
            db->conn,
            asc ? "SELECT " VIDEO_COLUMNS " FROM tasks WHERE " VIDEO_ROWS
                  " AND " OWNED_BY(
                      3) " AND (?2 IS NULL OR id > (SELECT id FROM tasks WHERE "
                         "job_id = ?2)) ORDER BY id ASC LIMIT ?1"
                : "SELECT " VIDEO_COLUMNS " FROM tasks WHERE " VIDEO_ROWS
                  " AND " OWNED_BY(
                      3) " AND (?2 IS NULL OR id < (SELECT id FROM tasks WHERE "
                         "job_id = ?2)) ORDER BY id DESC LIMIT ?1",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return NULL;
    }
    sqlite3_bind_int(st, 1, limit);
    if (after != NULL) {
        sqlite3_bind_text(st, 2, after, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 3, owner);
    arr = rows_json(st);
    sqlite3_finalize(st);
    return arr;
}

int
s2a_db_video_delete(s2a_db_t *db, const char *job_id, int64_t owner)
{
    sqlite3_stmt *st;
    int rc;

    if (sqlite3_prepare_v2(
            db->conn,
            "DELETE FROM tasks WHERE job_id = ?1 AND " VIDEO_ROWS
            " AND " OWNED_BY(2) " AND status NOT IN ('queued', 'submitting', "
                                "'running')",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return S2A_ERROR;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, owner);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return S2A_ERROR;
    }
    return sqlite3_changes(db->conn) > 0 ? S2A_OK : S2A_DECLINED;
}
