/*
 * master.c: supervisor. Binds, opens the database and shared memory,
 * forks the workers and keeps them running; handles signals (HUP reload
 * with draining, TERM/INT graceful stop, QUIT fast stop, USR1 log reopen)
 * and is the single SQLite writer for mutations workers send over their
 * control channels.
 */
#include "master/master.h"
#include "common/chan.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/shm.h"
#include "common/util.h"
#include "master/db.h"
#include "master/listen.h"
#include "master/sdnotify.h"
#include "worker/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>

#define MAX_LISTENERS   32
#define QUICK_DEATH_MS  5000
#define MAX_BACKOFF_MS  30000
#define SHRINK_GRACE_MS 500
#define KILL_GRACE_MS   5000

typedef enum {
    PROC_STARTING = 0,
    PROC_READY,
    PROC_DRAINING
} proc_state_t;

typedef struct listener_s {
    bool used;
    bool active; /* part of the current configuration */
    s2a_listen_t addr;
    int port; /* resolved (port 0 picks one) */
    int fds[S2A_CONF_MAX_WORKERS];
} listener_t;

typedef struct proc_s {
    pid_t pid;
    int slot;
    int row;
    uint32_t generation;
    proc_state_t state;
    uint32_t listener_mask;
    s2a_chan_t *chan;
    int64_t started_ms;
    int64_t kill_at_ms; /* draining: SIGKILL after this */
    struct proc_s *next;
} proc_t;

typedef struct slot_s {
    int quick_deaths;
    struct event *respawn_ev;
} slot_t;

typedef struct pending_reply_s {
    proc_t *proc;
    json_t *msg;
    struct pending_reply_s *next;
} pending_reply_t;

static struct {
    s2a_conf_t *conf;
    s2a_master_opts_t opts;
    struct event_base *base;
    s2a_shm_t *shm;
    s2a_db_t *db;
    listener_t listeners[MAX_LISTENERS];
    proc_t *procs;
    slot_t slots[S2A_CONF_MAX_WORKERS];
    uint32_t generation;
    int stopping; /* 0 running, 1 graceful, 2 fast */
    int exit_status;
    int status_fd; /* daemonize: tells the parent we are up */
    bool ready_announced;
    bool pidfile_written;
    struct event *signals[8];
    int n_signals;
    struct event *flush_ev;
    struct event *tick_ev;
    pending_reply_t *replies;
    pending_reply_t **replies_tail;
    bool settings_dirty; /* a batch changed a runtime setting */
    uint8_t key[32];     /* seals secrets at rest (secret.key) */
    int64_t *touched;    /* tokens changed in the current batch */
    size_t n_touched, cap_touched;
    uint32_t sweep_rr;   /* round-robin over workers for upkeep */
    int sweep_countdown; /* ticks until the next upkeep sweep */
} M = { .status_fd = -1, .exit_status = S2A_EXIT_OK };

static void reap_children(void);
static void sweep_tokens(void);
static void sweep_cache(void);
static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void tokens_publish_touched(bool committed);
static void maybe_finish_stop(void);

/* ---------------------------------------------------------------------
 * Settings and database batching
 */

static void
apply_log_level(void)
{
    s2a_shm_settings_t s;

    s2a_shm_settings_read(M.shm, &s);
    s2a_log_set_level(s.log_level >= 0 ? s.log_level : M.conf->log_level);
}

/* Re-reads the runtime settings from the database into shm. */
static int
publish_settings(void)
{
    s2a_shm_settings_t s;

    if (s2a_db_load_settings(M.db, &s) != S2A_OK) {
        return S2A_ERROR;
    }
    s2a_shm_settings_write(M.shm, &s);
    apply_log_level();
    return S2A_OK;
}

/* Mutations from workers share one transaction per loop iteration. */
static int
db_batch(void)
{
    if (!s2a_db_in_transaction(M.db)) {
        if (s2a_db_begin(M.db) != S2A_OK) {
            return S2A_ERROR;
        }
        event_active(M.flush_ev, EV_TIMEOUT, 0);
    }
    return S2A_OK;
}

static void
queue_reply(proc_t *proc, json_t *msg)
{
    pending_reply_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        json_decref(msg);
        return;
    }
    r->proc = proc;
    r->msg = msg;
    *M.replies_tail = r;
    M.replies_tail = &r->next;
}

static void
send_replies(bool committed)
{
    pending_reply_t *r, *next;
    proc_t *p;

    for (r = M.replies; r != NULL; r = next) {
        next = r->next;
        if (!committed) {
            json_object_set_new(r->msg, "ok", json_false());
            json_object_set_new(r->msg, "error",
                                json_string("database commit failed"));
        }
        for (p = M.procs; p != NULL; p = p->next) {
            if (p == r->proc) {
                s2a_chan_send(p->chan, r->msg);
                break;
            }
        }
        json_decref(r->msg);
        free(r);
    }
    M.replies = NULL;
    M.replies_tail = &M.replies;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    bool ok = true;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    if (s2a_db_in_transaction(M.db)) {
        ok = s2a_db_commit(M.db) == S2A_OK;
    }
    /* Settings reach shm only once they are durable. */
    if (ok && M.settings_dirty) {
        publish_settings();
    }
    M.settings_dirty = false;
    tokens_publish_touched(ok);
    send_replies(ok);
}

/* ---------------------------------------------------------------------
 * Messages from workers
 */

static json_t *
reply_for(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");

    return json_pack("{s:s, s:O, s:b}", "op", "reply", "re",
                     id != NULL ? id : json_null(), "ok", 1);
}

static bool
is_hex(const char *s, size_t len)
{
    size_t i;

    if (strlen(s) != len) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool
is_int_in(const char *value, long lo, long hi)
{
    char *end;
    long v = strtol(value, &end, 10);

    return end != value && *end == '\0' && v >= lo && v <= hi;
}

/*
 * The runtime settings a worker may change, with their rules. Secrets
 * arrive already hashed: the master never sees a password or an API key.
 */
static int
validate_setting(const char *key, const char *value, char *err, size_t errlen)
{
    const char *p;
    size_t len;

    if (strcmp(key, "log_level") == 0) {
        if (value[0] == '\0' || s2a_log_level_parse(value) >= LOG_ERR) {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "log_level must be error, warn, notice, info, debug or "
                 "empty (follow the configuration file)");
        return S2A_ERROR;
    }
    if (strcmp(key, "selection_policy") == 0) {
        if (strcmp(value, "least_busy") == 0
            || strcmp(value, "round_robin") == 0
            || strcmp(value, "random") == 0)
        {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "selection_policy must be least_busy, round_robin or random");
        return S2A_ERROR;
    }
    if (strcmp(key, "error_ban_threshold") == 0) {
        if (is_int_in(value, 0, 1000)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "error_ban_threshold must be 0..1000");
        return S2A_ERROR;
    }
    if (strcmp(key, "session_ttl") == 0) {
        if (is_int_in(value, 300, 30L * 86400)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "session_ttl must be 300..2592000 seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "api_key_sha256") == 0) {
        if (is_hex(value, 64)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "api_key_sha256 must be 64 hex digits");
        return S2A_ERROR;
    }
    if (strcmp(key, "admin_username") == 0) {
        len = strlen(value);
        for (p = value; *p != '\0'; p++) {
            if ((unsigned char) *p < 0x20 || *p == 0x7f) {
                break;
            }
        }
        if (len >= 1 && len <= 63 && *p == '\0') {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "admin_username must be 1..63 printable characters");
        return S2A_ERROR;
    }
    if (strcmp(key, "admin_password_hash") == 0) {
        if (strncmp(value, "pbkdf2-sha256$", 14) == 0
            && strlen(value) < S2A_PASSWORD_HASH_LEN)
        {
            return S2A_OK;
        }
        snprintf(err, errlen, "admin_password_hash is not a password hash");
        return S2A_ERROR;
    }
    if (strcmp(key, "admin_password_is_default") == 0) {
        if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "admin_password_is_default must be 0 or 1");
        return S2A_ERROR;
    }
    if (strcmp(key, "proxy_enabled") == 0
        || strcmp(key, "watermark_free_enabled") == 0)
    {
        if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "%s must be 0 or 1", key);
        return S2A_ERROR;
    }
    if (strcmp(key, "proxy_url") == 0) {
        if (value[0] == '\0'
            || ((strncmp(value, "http://", 7) == 0
                 || strncmp(value, "https://", 8) == 0
                 || strncmp(value, "socks5://", 9) == 0
                 || strncmp(value, "socks5h://", 10) == 0)
                && strlen(value) < 256 && strpbrk(value, " \t\r\n") == NULL))
        {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "proxy_url must be an http, https, socks5 or "
                 "socks5h URL");
        return S2A_ERROR;
    }
    if (strcmp(key, "queue_timeout") == 0) {
        if (is_int_in(value, 0, 600)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "queue_timeout must be 0..600 seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "image_timeout") == 0) {
        if (is_int_in(value, 60, 3600)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "image_timeout must be 60..3600 seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "video_timeout") == 0) {
        if (is_int_in(value, 60, 7200)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "video_timeout must be 60..7200 seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "watermark_parse_method") == 0) {
        if (strcmp(value, "third_party") == 0 || strcmp(value, "custom") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "parse_method must be third_party or custom");
        return S2A_ERROR;
    }
    if (strcmp(key, "watermark_custom_parse_url") == 0) {
        if (value[0] == '\0'
            || ((strncmp(value, "http://", 7) == 0
                 || strncmp(value, "https://", 8) == 0)
                && strlen(value) < 256 && strpbrk(value, " \t\r\n") == NULL))
        {
            return S2A_OK;
        }
        snprintf(err, errlen, "custom_parse_url must be an http(s) URL");
        return S2A_ERROR;
    }
    if (strcmp(key, "watermark_custom_parse_token") == 0) {
        if (strlen(value) < 256 && strpbrk(value, "\r\n") == NULL) {
            return S2A_OK;
        }
        snprintf(err, errlen, "custom_parse_token is too long");
        return S2A_ERROR;
    }
    if (strcmp(key, "watermark_third_party_url") == 0) {
        if ((strncmp(value, "http://", 7) == 0
             || strncmp(value, "https://", 8) == 0)
            && strstr(value, "{post_id}") != NULL && strlen(value) < 256)
        {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "third_party_url must be an http(s) URL "
                 "containing {post_id}");
        return S2A_ERROR;
    }
    if (strcmp(key, "cache_enabled") == 0) {
        if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "cache_enabled must be 0 or 1");
        return S2A_ERROR;
    }
    if (strcmp(key, "cache_timeout") == 0) {
        if (is_int_in(value, 60, 86400)) {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "Cache timeout must be between 60 seconds and "
                 "24 hours (86400 seconds)");
        return S2A_ERROR;
    }
    if (strcmp(key, "cache_base_url") == 0) {
        if (value[0] == '\0'
            || ((strncmp(value, "http://", 7) == 0
                 || strncmp(value, "https://", 8) == 0)
                && strlen(value) < 256 && strpbrk(value, " \t\r\n") == NULL))
        {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "Base URL must start with http:// or https:// "
                 "(or be empty to use the request's host)");
        return S2A_ERROR;
    }
    if (strcmp(key, "at_auto_refresh_enabled") == 0) {
        if (strcmp(value, "0") == 0 || strcmp(value, "1") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "at_auto_refresh_enabled must be 0 or 1");
        return S2A_ERROR;
    }
    if (strcmp(key, "at_refresh_window") == 0) {
        if (is_int_in(value, 300, 30L * 86400)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "at_refresh_window must be 300..2592000 seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "quota_refresh_interval") == 0) {
        if (is_int_in(value, 0, 7L * 86400)) {
            return S2A_OK;
        }
        snprintf(err, errlen,
                 "quota_refresh_interval must be 0 (off) or up to 604800 "
                 "seconds");
        return S2A_ERROR;
    }
    if (strcmp(key, "session_epoch") == 0) {
        if (strcmp(value, "bump") == 0) {
            return S2A_OK;
        }
        snprintf(err, errlen, "session_epoch can only be bumped");
        return S2A_ERROR;
    }
    snprintf(err, errlen, "unknown setting \"%s\"", key);
    return S2A_ERROR;
}

static int
write_setting(const char *key, const char *value)
{
    char buf[32];
    unsigned long epoch = 0;

    if (strcmp(key, "session_epoch") == 0) {
        /* Every session signed under the old epoch stops being valid. */
        if (s2a_db_setting_get(M.db, "session_epoch", buf, sizeof(buf))
            == S2A_OK) {
            epoch = strtoul(buf, NULL, 10);
        }
        snprintf(buf, sizeof(buf), "%lu", epoch + 1);
        value = buf;
    }
    if (s2a_db_setting_set(M.db, key, value) != S2A_OK) {
        return S2A_ERROR;
    }
    M.settings_dirty = true;
    /* Secrets and their hashes never reach the log. */
    if (strstr(key, "hash") != NULL || strstr(key, "sha256") != NULL
        || strstr(key, "token") != NULL || strstr(key, "proxy_url") != NULL)
    {
        s2a_log(LOG_NOTICE, 0, "runtime setting %s changed", key);
    } else {
        s2a_log(LOG_NOTICE, 0, "runtime setting %s changed to \"%s\"", key,
                value);
    }
    return S2A_OK;
}

static void
fail_reply(proc_t *proc, json_t *reply, const char *err)
{
    json_object_set_new(reply, "ok", json_false());
    json_object_set_new(reply, "error", json_string(err));
    s2a_chan_send(proc->chan, reply);
    json_decref(reply);
}

/*
 * "set_setting" {key, value} or "set_settings" {values: {key: value}}:
 * all keys are validated first, then written in the current batch, so a
 * bad key changes nothing.
 */
static void
handle_set_settings(proc_t *proc, json_t *msg)
{
    json_t *values = json_object_get(msg, "values"), *v, *single = NULL;
    json_t *reply = reply_for(msg);
    const char *key;
    char err[256];

    if (values == NULL) {
        key = json_string_value(json_object_get(msg, "key"));
        v = json_object_get(msg, "value");
        if (key == NULL || !json_is_string(v)) {
            fail_reply(proc, reply, "set_setting needs string key and value");
            return;
        }
        single = json_object();
        json_object_set(single, key, v);
        values = single;
    }
    if (!json_is_object(values) || json_object_size(values) == 0) {
        json_decref(single);
        fail_reply(proc, reply, "set_settings needs an object of values");
        return;
    }
    json_object_foreach (values, key, v) {
        if (!json_is_string(v)) {
            snprintf(err, sizeof(err), "%s must be a string", key);
            goto failed;
        }
        if (validate_setting(key, json_string_value(v), err, sizeof(err))
            != S2A_OK) {
            goto failed;
        }
    }
    if (db_batch() != S2A_OK) {
        snprintf(err, sizeof(err), "database unavailable");
        goto failed;
    }
    json_object_foreach (values, key, v) {
        if (write_setting(key, json_string_value(v)) != S2A_OK) {
            snprintf(err, sizeof(err), "database write failed");
            goto failed;
        }
    }
    json_decref(single);
    queue_reply(proc, reply);
    return;

failed:
    json_decref(single);
    fail_reply(proc, reply, err);
}

static void
revoked_to_shm(const char *nonce, int64_t expires, void *arg)
{
    S2A_UNUSED(arg);
    if (s2a_shm_revoked_add_locked(M.shm, nonce, expires, s2a_now()) != S2A_OK)
    {
        /* Cannot remember every logout: end every session instead. */
        write_setting("session_epoch", "bump");
    }
}

static void
handle_revoke_session(proc_t *proc, json_t *msg)
{
    const char *nonce = json_string_value(json_object_get(msg, "nonce"));
    json_int_t expires = json_integer_value(json_object_get(msg, "expires"));
    json_t *reply = reply_for(msg);

    if (nonce == NULL || !is_hex(nonce, 32) || expires <= 0) {
        fail_reply(proc, reply, "revoke_session needs nonce and expires");
        return;
    }
    if (db_batch() != S2A_OK
        || s2a_db_revoked_add(M.db, nonce, expires) != S2A_OK) {
        fail_reply(proc, reply, "database write failed");
        return;
    }
    if (s2a_shm_lock(M.shm) == S2A_OK) {
        revoked_to_shm(nonce, expires, NULL);
        s2a_shm_unlock(M.shm);
    }
    queue_reply(proc, reply);
}

/* ---------------------------------------------------------------------
 * The account pool (the master writes SQLite, then refreshes shm)
 */

static void
token_to_shm(const s2a_shm_token_t *t, const char *at, const char *proxy,
             void *arg)
{
    int slot;

    S2A_UNUSED(arg);
    slot = s2a_shm_token_put_locked(M.shm, t, at);
    if (slot >= 0) {
        s2a_shm_token_set_proxy_locked(M.shm, slot, proxy);
    } else {
        s2a_log(LOG_ERR, 0,
                "shared table full: token %lld not schedulable; "
                "raise [limits] max_tokens",
                (long long) t->id);
    }
}

/* Tokens changed in this batch get their shm rows rebuilt after the
 * commit; a negative id means removed. */
static void
token_touched(int64_t id)
{
    int64_t *grown;

    if (M.n_touched == M.cap_touched) {
        size_t cap = M.cap_touched == 0 ? 16 : M.cap_touched * 2;
        grown = realloc(M.touched, cap * sizeof(*grown));
        if (grown == NULL) {
            return;
        }
        M.touched = grown;
        M.cap_touched = cap;
    }
    M.touched[M.n_touched++] = id;
}

static void
tokens_publish_touched(bool committed)
{
    size_t i;

    if (committed && M.n_touched > 0 && s2a_shm_lock(M.shm) == S2A_OK) {
        for (i = 0; i < M.n_touched; i++) {
            if (M.touched[i] < 0) {
                s2a_shm_token_remove_locked(M.shm, -M.touched[i]);
            } else {
                s2a_db_tokens_load(M.db, M.key, M.touched[i], token_to_shm,
                                   NULL);
            }
        }
        s2a_shm_unlock(M.shm);
    }
    M.n_touched = 0;
}

/* An import may ask for an operator state along with the fields. */
static void
apply_requested_state(json_t *msg, int64_t id)
{
    const char *state = json_string_value(json_object_get(msg, "state"));

    if (state != NULL
        && (strcmp(state, "active") == 0 || strcmp(state, "disabled") == 0))
    {
        s2a_db_token_set_state(M.db, id, state, "set by an import", 0,
                               s2a_now());
    }
}

static void
handle_token_exists(proc_t *proc, json_t *msg)
{
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    const char *by_email = json_string_value(json_object_get(msg, "email"));
    json_t *reply = reply_for(msg);
    char email[256] = "";
    int64_t id = 0;
    int rc;

    /* By the AT's hash, or (import) by the account's e-mail. */
    if ((sha == NULL || !is_hex(sha, 64)) && by_email == NULL) {
        fail_reply(proc, reply, "token_exists needs sha256 or email");
        return;
    }
    if (s2a_db_in_transaction(M.db)) {
        flush_cb(-1, 0, NULL);
    }
    rc = s2a_db_token_find(M.db, by_email == NULL ? sha : NULL, by_email, &id,
                           email, sizeof(email));
    json_object_set_new(reply, "exists", json_boolean(rc == S2A_OK));
    if (rc == S2A_OK) {
        json_object_set_new(reply, "token_id", json_integer(id));
        json_object_set_new(reply, "email", json_string(email));
    }
    s2a_chan_send(proc->chan, reply);
    json_decref(reply);
}

static void
handle_token_add(proc_t *proc, json_t *msg)
{
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = reply_for(msg);
    char err[256], email[256] = "";
    int64_t id = 0, existing = 0;
    int rc;

    if (sha == NULL || !is_hex(sha, 64) || !json_is_object(fields)
        || !json_is_string(json_object_get(fields, "token")))
    {
        fail_reply(proc, reply, "token_add needs sha256 and fields.token");
        return;
    }
    if (db_batch() != S2A_OK) {
        fail_reply(proc, reply, "database unavailable");
        return;
    }
    rc = s2a_db_token_insert(M.db, M.key, sha, fields, s2a_now(), &id, err,
                             sizeof(err));
    if (rc == S2A_DECLINED) {
        s2a_db_token_find(M.db, sha, NULL, &existing, email, sizeof(email));
        json_object_set_new(reply, "code", json_string("duplicate"));
        json_object_set_new(reply, "email", json_string(email));
        json_object_set_new(reply, "token_id", json_integer(existing));
        fail_reply(proc, reply, "token already exists");
        return;
    }
    if (rc != S2A_OK) {
        fail_reply(proc, reply, err);
        return;
    }
    apply_requested_state(msg, id);
    token_touched(id);
    s2a_log(LOG_NOTICE, 0, "token %lld added (%s)", (long long) id,
            json_string_value(json_object_get(fields, "email")) != NULL
                ? json_string_value(json_object_get(fields, "email"))
                : "-");
    json_object_set_new(reply, "token_id", json_integer(id));
    queue_reply(proc, reply);
}

static void
handle_token_update(proc_t *proc, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields = json_object_get(msg, "fields");
    json_t *reply = reply_for(msg);
    char err[256];
    int rc;

    if (id <= 0 || !json_is_object(fields) || (sha != NULL && !is_hex(sha, 64)))
    {
        fail_reply(proc, reply, "token_update needs id and fields");
        return;
    }
    if (db_batch() != S2A_OK) {
        fail_reply(proc, reply, "database unavailable");
        return;
    }
    rc = s2a_db_token_update(M.db, M.key, id, fields, sha, err, sizeof(err));
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code",
                            json_string(strcmp(err, "duplicate") == 0
                                            ? "duplicate"
                                            : rc == S2A_DECLINED ? "not_found"
                                                                 : "error"));
        fail_reply(proc, reply, err);
        return;
    }
    apply_requested_state(msg, id);
    token_touched(id);
    queue_reply(proc, reply);
}

static void
handle_token_state(proc_t *proc, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *state = json_string_value(json_object_get(msg, "state"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    json_int_t until = json_integer_value(json_object_get(msg, "until"));
    json_t *reply = reply_for(msg);
    int rc;

    if (id <= 0 || state == NULL
        || (strcmp(state, "active") != 0 && strcmp(state, "disabled") != 0
            && strcmp(state, "invalid") != 0 && strcmp(state, "expired") != 0
            && strcmp(state, "cooling") != 0))
    {
        fail_reply(proc, reply, "token_state needs id and a valid state");
        return;
    }
    if (db_batch() != S2A_OK) {
        fail_reply(proc, reply, "database unavailable");
        return;
    }
    rc = s2a_db_token_set_state(M.db, id, state, reason, until, s2a_now());
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        fail_reply(proc, reply,
                   rc == S2A_DECLINED ? "not found" : "database write failed");
        return;
    }
    token_touched(id);
    s2a_log(LOG_NOTICE, 0, "token %lld is now %s%s%s", (long long) id, state,
            reason != NULL ? ": " : "", reason != NULL ? reason : "");
    queue_reply(proc, reply);
}

static void
handle_token_delete(proc_t *proc, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    json_t *reply = reply_for(msg);
    int rc;

    if (id <= 0 || db_batch() != S2A_OK) {
        fail_reply(proc, reply, "token_delete needs id");
        return;
    }
    rc = s2a_db_token_delete(M.db, id);
    if (rc != S2A_OK) {
        json_object_set_new(reply, "code", json_string("not_found"));
        fail_reply(proc, reply,
                   rc == S2A_DECLINED ? "not found" : "database write failed");
        return;
    }
    token_touched(-id);
    s2a_log(LOG_NOTICE, 0, "token %lld deleted", (long long) id);
    queue_reply(proc, reply);
}

static void
handle_stats(proc_t *proc, json_t *msg)
{
    json_t *reply = reply_for(msg), *stats;

    if (s2a_db_in_transaction(M.db)) {
        flush_cb(-1, 0, NULL);
    }
    stats = s2a_db_stats(M.db, s2a_now());
    if (stats == NULL) {
        fail_reply(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "stats", stats);
    s2a_chan_send(proc->chan, reply);
    json_decref(reply);
}

static void
handle_tokens_list(proc_t *proc, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    bool reveal = json_is_true(json_object_get(msg, "reveal"));
    json_t *reply = reply_for(msg), *list;

    /* Reads see the batch's own uncommitted writes; commit first so a
     * list reflects only durable state. */
    if (s2a_db_in_transaction(M.db)) {
        flush_cb(-1, 0, NULL);
    }
    list = s2a_db_tokens_list(M.db, M.key, id, reveal);
    if (list == NULL) {
        fail_reply(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "tokens", list);
    s2a_chan_send(proc->chan, reply);
    json_decref(reply);
}

/* ---------------------------------------------------------------------
 * Background account upkeep: AT refresh and quota checks. The master
 * decides what is due; a worker (round-robin) makes the calls and sends
 * the outcome back as ordinary token mutations.
 */

#define SWEEP_EVERY_S 60
#define SWEEP_BATCH   64

static proc_t *
next_ready_worker(void)
{
    proc_t *p, *pick = NULL;
    int n = 0, want;

    for (p = M.procs; p != NULL; p = p->next) {
        if (p->state == PROC_READY) {
            n++;
        }
    }
    if (n == 0) {
        return NULL;
    }
    want = (int) (M.sweep_rr++ % (uint32_t) n);
    for (p = M.procs; p != NULL; p = p->next) {
        if (p->state == PROC_READY && want-- == 0) {
            pick = p;
            break;
        }
    }
    return pick;
}

static void
due_token(int64_t id, bool refresh, const char *st, const char *rt,
          const char *client_id, const char *proxy, void *arg)
{
    proc_t *w = next_ready_worker();
    s2a_shm_settings_t *s = arg;
    json_t *msg;

    if (w == NULL) {
        return;
    }
    if (refresh && s->at_refresh_enabled) {
        msg = json_pack("{s:s, s:I}", "op", "refresh_token", "token_id",
                        (json_int_t) id);
        if (st != NULL) {
            json_object_set_new(msg, "st", json_string(st));
        }
        if (rt != NULL) {
            json_object_set_new(msg, "rt", json_string(rt));
        }
        if (client_id != NULL) {
            json_object_set_new(msg, "client_id", json_string(client_id));
        }
        s2a_db_token_mark(M.db, id, "refresh_attempted_at", s2a_now());
    } else {
        msg = json_pack("{s:s, s:I}", "op", "quota_check", "token_id",
                        (json_int_t) id);
        s2a_db_token_mark(M.db, id, "quota_checked_at", s2a_now());
    }
    if (proxy != NULL) {
        json_object_set_new(msg, "proxy", json_string(proxy));
    }
    s2a_chan_send(w->chan, msg);
    /* The message carried secrets: wipe them from our copy. */
    json_decref(msg);
}

/*
 * Deletes cached media older than cache_timeout (and leftovers of
 * downloads that never finished, after a day). Runs in the master: a
 * directory scan must not stall a worker's requests.
 */
static void
sweep_cache(void)
{
    s2a_shm_settings_t set;
    struct dirent *de;
    struct stat st;
    int64_t now = s2a_now(), limit;
    int dfd, removed = 0;
    DIR *dir;

    s2a_shm_settings_read(M.shm, &set);
    dfd = open(M.conf->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1) {
        return;
    }
    dir = fdopendir(dfd);
    if (dir == NULL) {
        close(dfd);
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISREG(st.st_mode))
        {
            continue;
        }
        limit = de->d_name[0] == '.' ? 86400 : set.cache_timeout;
        if (st.st_mtim.tv_sec + limit <= now
            && unlinkat(dfd, de->d_name, 0) == 0) {
            removed++;
        }
    }
    closedir(dir);
    if (removed > 0) {
        s2a_log(LOG_INFO, 0, "cache: %d expired files removed", removed);
    }
}

static void
sweep_tokens(void)
{
    s2a_shm_settings_t s;
    int n;

    if (M.stopping || M.db == NULL || db_batch() != S2A_OK) {
        return;
    }
    n = s2a_db_tokens_end_cooldown(M.db, 0, s2a_now(), token_touched);
    if (n > 0) {
        s2a_log(LOG_INFO, 0, "upkeep: %d tokens cooled down", n);
    }
    s2a_shm_settings_read(M.shm, &s);
    if (!s.at_refresh_enabled && s.quota_interval <= 0) {
        return;
    }
    n = s2a_db_tokens_due(M.db, M.key, s2a_now(),
                          s.at_refresh_enabled ? s.at_refresh_window : 0,
                          s.quota_interval, SWEEP_BATCH, due_token, &s);
    if (n > 0) {
        s2a_log(LOG_INFO, 0, "upkeep: %d tokens handed to workers", n);
    }
}

/* "token_refreshed" {token_id, token, sha256, expiry_time, rt?} or
 * "token_refresh_failed" {token_id, reason}. */
static void
handle_refresh_result(proc_t *proc, json_t *msg, bool ok)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));
    const char *reason = json_string_value(json_object_get(msg, "reason"));
    const char *sha = json_string_value(json_object_get(msg, "sha256"));
    json_t *fields;
    char err[256];

    S2A_UNUSED(proc);
    if (id <= 0 || db_batch() != S2A_OK) {
        return;
    }
    if (!ok) {
        s2a_db_token_set_state(M.db, id, "expired",
                               reason != NULL ? reason : "refresh failed", 0,
                               s2a_now());
        s2a_log(LOG_WARNING, 0, "token %lld could not be refreshed: %s",
                (long long) id, reason != NULL ? reason : "?");
        token_touched(id);
        return;
    }
    if (sha == NULL || !is_hex(sha, 64)
        || !json_is_string(json_object_get(msg, "token")))
    {
        return;
    }
    fields = json_pack("{s:O, s:O}", "token", json_object_get(msg, "token"),
                       "expiry_time", json_object_get(msg, "expiry_time"));
    if (json_is_string(json_object_get(msg, "rt"))) {
        json_object_set(fields, "rt", json_object_get(msg, "rt"));
    }
    if (s2a_db_token_update(M.db, M.key, id, fields, sha, err, sizeof(err))
        == S2A_OK)
    {
        /* A fresh AT revives a token that had expired. */
        s2a_db_token_set_state(M.db, id, "active", "access token refreshed", 0,
                               s2a_now());
        s2a_log(LOG_NOTICE, 0, "token %lld refreshed (%s)", (long long) id,
                json_string_value(json_object_get(msg, "via")) != NULL
                    ? json_string_value(json_object_get(msg, "via"))
                    : "?");
        token_touched(id);
    } else {
        s2a_log(LOG_ERR, 0, "token %lld: storing the refreshed AT failed: %s",
                (long long) id, err);
    }
    json_decref(fields);
}

/* ---------------------------------------------------------------------
 * Generation records
 */

static void
handle_task_record(proc_t *proc, json_t *msg)
{
    const char *job = json_string_value(json_object_get(msg, "job_id"));
    json_t *fields = json_object_get(msg, "fields");
    char err[256];

    S2A_UNUSED(proc);
    if (job == NULL || !json_is_object(fields) || db_batch() != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "malformed task record ignored");
        return;
    }
    if (s2a_db_task_upsert(M.db, job, fields, s2a_now(), err, sizeof(err))
        != S2A_OK)
    {
        s2a_log(LOG_ERR, 0, "task %s not recorded: %s", job, err);
    }
}

/*
 * A generation ended on a token: counters, the run of errors (and the
 * auto-disable it may trigger), or a state the failure calls for.
 */
static void
handle_token_outcome(proc_t *proc, json_t *msg)
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

    S2A_UNUSED(proc);
    if (id <= 0 || outcome == NULL || db_batch() != S2A_OK) {
        s2a_log(LOG_WARNING, 0, "malformed token outcome ignored");
        return;
    }
    if (text == NULL) {
        text = "";
    }
    if (strcmp(outcome, "success") == 0 || strcmp(outcome, "error") == 0
        || strcmp(outcome, "invalid") == 0)
    {
        run = s2a_db_token_outcome(M.db, id, video,
                                   strcmp(outcome, "success") == 0, now);
        if (run < 0) {
            return; /* deleted meanwhile */
        }
        if (run == 0) {
            /* A success after the cooldown: the token is fine again. */
            s2a_db_tokens_end_cooldown(M.db, id, now, token_touched);
        }
    }
    if (strcmp(outcome, "invalid") == 0) {
        snprintf(reason, sizeof(reason), "Sora rejected the token: %.500s",
                 text);
        s2a_db_token_set_state(M.db, id, "invalid", reason, 0, now);
        s2a_log(LOG_WARNING, 0, "token %lld is now invalid: %s", (long long) id,
                reason);
    } else if (strcmp(outcome, "cooling") == 0 && until > now) {
        snprintf(reason, sizeof(reason), "Sora rate limit: %.500s", text);
        s2a_db_token_set_state(M.db, id, "cooling", reason, until, now);
        s2a_log(LOG_NOTICE, 0, "token %lld cools down for %llds: %s",
                (long long) id, (long long) (until - now), text);
    } else if (strcmp(outcome, "error") == 0) {
        threshold = M.shm->settings.error_ban_threshold;
        if (threshold > 0 && run >= threshold) {
            snprintf(reason, sizeof(reason),
                     "disabled after %d consecutive errors; last: %.500s", run,
                     text);
            s2a_db_token_set_state(M.db, id, "disabled", reason, 0, now);
            s2a_log(LOG_WARNING, 0, "token %lld %s", (long long) id, reason);
        }
    }
    token_touched(id);
}

/* "video_submitted" {token_id}: the token's known quota drops by one. */
static void
handle_video_submitted(proc_t *proc, json_t *msg)
{
    json_int_t id = json_integer_value(json_object_get(msg, "token_id"));

    S2A_UNUSED(proc);
    if (id <= 0 || db_batch() != S2A_OK) {
        return;
    }
    if (s2a_db_token_video_used(M.db, id, s2a_now()) == S2A_OK) {
        token_touched(id);
    }
}

static void
handle_request_log(proc_t *proc, json_t *msg)
{
    json_t *fields = json_object_get(msg, "fields");

    S2A_UNUSED(proc);
    if (!json_is_object(fields)
        || !json_is_string(json_object_get(fields, "operation"))
        || !json_is_integer(json_object_get(fields, "status_code"))
        || db_batch() != S2A_OK)
    {
        s2a_log(LOG_WARNING, 0, "malformed request log ignored");
        return;
    }
    if (s2a_db_request_log(M.db, fields, s2a_now()) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "request log row not written");
    }
}

static void
handle_records_list(proc_t *proc, json_t *msg, bool tasks)
{
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    const char *status = json_string_value(json_object_get(msg, "status"));
    json_t *reply = reply_for(msg), *rows;

    if (s2a_db_in_transaction(M.db)) {
        flush_cb(-1, 0, NULL);
    }
    if (limit <= 0 || limit > 1000) {
        limit = 100;
    }
    rows = tasks ? s2a_db_tasks_list(M.db, (int) limit, status)
                 : s2a_db_logs_list(M.db, (int) limit);
    if (rows == NULL) {
        fail_reply(proc, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    s2a_chan_send(proc->chan, reply);
    json_decref(reply);
}

static void
handle_usage(json_t *msg)
{
    json_t *rows = json_object_get(msg, "rows"), *row;
    size_t i;

    if (!json_is_array(rows) || db_batch() != S2A_OK) {
        return;
    }
    json_array_foreach (rows, i, row) {
        const char *day = json_string_value(json_array_get(row, 0));
        const char *route = json_string_value(json_array_get(row, 1));
        json_t *status = json_array_get(row, 2);
        json_t *count = json_array_get(row, 3);

        if (day == NULL || route == NULL || !json_is_integer(status)
            || !json_is_integer(count))
        {
            s2a_log(LOG_WARNING, 0, "malformed usage row ignored");
            continue;
        }
        s2a_db_usage_add(M.db, day, route, (int) json_integer_value(status),
                         json_integer_value(count));
    }
}

static void announce_ready_if_done(void);

/*
 * Tells worker `p` to finish what it has and exit. A stop grants
 * shutdown_timeout; a worker replaced by a reload may also finish the
 * generations it streams, up to the video timeout, since a reload is not
 * a reason to lose a client's video.
 */
static void
send_drain(proc_t *p, int stop_accept_ms, bool replaced)
{
    json_t *msg;
    int64_t deadline = (int64_t) M.conf->shutdown_timeout * 1000;
    int64_t jobs = ((int64_t) M.shm->settings.video_timeout + 60) * 1000;

    if (replaced && jobs > deadline) {
        deadline = jobs;
    }

    if (p->state == PROC_DRAINING) {
        return;
    }
    p->state = PROC_DRAINING;
    p->kill_at_ms = s2a_mono_ms() + stop_accept_ms + deadline + KILL_GRACE_MS;
    M.shm->workers[p->row].state = S2A_WORKER_DRAINING;
    msg = json_pack("{s:s, s:i, s:I}", "op", "drain", "stop_accept_ms",
                    stop_accept_ms, "deadline_ms", (json_int_t) deadline);
    if (msg != NULL) {
        s2a_chan_send(p->chan, msg);
        json_decref(msg);
    }
}

static void
handle_ready(proc_t *proc)
{
    proc_t *p;

    proc->state = PROC_READY;
    M.shm->workers[proc->row].state = S2A_WORKER_READY;
    M.slots[proc->slot].quick_deaths = 0;
    s2a_log(LOG_INFO, 0, "worker %d (pid %d, generation %u) ready", proc->slot,
            (int) proc->pid, proc->generation);
    /* The replacement serves the slot now: the older worker drains. */
    for (p = M.procs; p != NULL; p = p->next) {
        if (p != proc && p->slot == proc->slot
            && p->generation < proc->generation) {
            send_drain(p, 0, true);
        }
    }
    announce_ready_if_done();
}

static void
on_worker_msg(s2a_chan_t *chan, json_t *msg, void *arg)
{
    proc_t *proc = arg;
    const char *op = json_string_value(json_object_get(msg, "op"));
    json_t *reply;

    S2A_UNUSED(chan);
    if (strcmp(op, "ready") == 0) {
        handle_ready(proc);
    } else if (strcmp(op, "usage") == 0) {
        handle_usage(msg);
    } else if (strcmp(op, "set_setting") == 0
               || strcmp(op, "set_settings") == 0) {
        handle_set_settings(proc, msg);
    } else if (strcmp(op, "revoke_session") == 0) {
        handle_revoke_session(proc, msg);
    } else if (strcmp(op, "token_exists") == 0) {
        handle_token_exists(proc, msg);
    } else if (strcmp(op, "token_add") == 0) {
        handle_token_add(proc, msg);
    } else if (strcmp(op, "token_update") == 0) {
        handle_token_update(proc, msg);
    } else if (strcmp(op, "token_state") == 0) {
        handle_token_state(proc, msg);
    } else if (strcmp(op, "token_delete") == 0) {
        handle_token_delete(proc, msg);
    } else if (strcmp(op, "tokens_list") == 0) {
        handle_tokens_list(proc, msg);
    } else if (strcmp(op, "stats") == 0) {
        handle_stats(proc, msg);
    } else if (strcmp(op, "token_refreshed") == 0) {
        handle_refresh_result(proc, msg, true);
    } else if (strcmp(op, "token_refresh_failed") == 0) {
        handle_refresh_result(proc, msg, false);
    } else if (strcmp(op, "task_record") == 0) {
        handle_task_record(proc, msg);
    } else if (strcmp(op, "video_submitted") == 0) {
        handle_video_submitted(proc, msg);
    } else if (strcmp(op, "token_outcome") == 0) {
        handle_token_outcome(proc, msg);
    } else if (strcmp(op, "request_log") == 0) {
        handle_request_log(proc, msg);
    } else if (strcmp(op, "logs_list") == 0) {
        handle_records_list(proc, msg, false);
    } else if (strcmp(op, "tasks_list") == 0) {
        handle_records_list(proc, msg, true);
#ifdef S2A_TEST_HOOKS
    } else if (strcmp(op, "sweep_now") == 0) {
        sweep_tokens();
        sweep_cache();
#endif
    } else if (strcmp(op, "ping") == 0) {
        reply = reply_for(msg);
        if (s2a_db_ping(M.db) != S2A_OK) {
            json_object_set_new(reply, "ok", json_false());
            json_object_set_new(reply, "error",
                                json_string("database unavailable"));
        }
        s2a_chan_send(proc->chan, reply);
        json_decref(reply);
    } else {
        s2a_log(LOG_WARNING, 0, "worker %d sent unknown op \"%s\"", proc->slot,
                op);
    }
}

static void
on_worker_close(s2a_chan_t *chan, void *arg)
{
    S2A_UNUSED(chan);
    S2A_UNUSED(arg);
    /* The exit is handled when the child is reaped. */
}

/* ---------------------------------------------------------------------
 * Listening sockets
 */

static listener_t *
listener_find(const s2a_listen_t *addr)
{
    int i;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        if (l->used && l->active && l->addr.port == addr->port
            && strcmp(l->addr.host, addr->host) == 0)
        {
            return l;
        }
    }
    return NULL;
}

static listener_t *
listener_new(const s2a_listen_t *addr)
{
    int i, s;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        if (!l->used) {
            memset(l, 0, sizeof(*l));
            l->used = true;
            l->active = true;
            l->addr = *addr;
            l->port = addr->port;
            for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
                l->fds[s] = -1;
            }
            return l;
        }
    }
    return NULL;
}

/* Makes sure every active listener has a socket for each slot < n. */
static int
open_slot_sockets(int n)
{
    const char *what = "";
    char name[96];
    int i, s, fd;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        if (!l->used || !l->active) {
            continue;
        }
        for (s = 0; s < n; s++) {
            if (l->fds[s] >= 0) {
                continue;
            }
            /* Only a new address can be held by someone else. */
            fd = s2a_listen_open(&l->addr, l->port, M.conf->backlog, s == 0,
                                 &what);
            if (fd < 0) {
                s2a_log(LOG_ERR, errno, "%s for %s failed", what,
                        s2a_listen_str(&l->addr, name, sizeof(name)));
                return S2A_ERROR;
            }
            if (l->port == 0) {
                l->port = s2a_listen_port(fd);
                l->addr.port = l->port;
            }
            l->fds[s] = fd;
            if (s == 0) {
                s2a_log(LOG_NOTICE, 0, "listening on %s",
                        s2a_listen_str(&l->addr, name, sizeof(name)));
            }
        }
    }
    return S2A_OK;
}

/* listen(2) again applies a changed backlog to a listening socket. */
static void
relisten_all(int backlog)
{
    int i, s;

    for (i = 0; i < MAX_LISTENERS; i++) {
        for (s = 0; M.listeners[i].used && s < S2A_CONF_MAX_WORKERS; s++) {
            if (M.listeners[i].fds[s] >= 0
                && listen(M.listeners[i].fds[s], backlog) == -1) {
                s2a_log(LOG_WARNING, errno,
                        "listen() with the new backlog "
                        "failed");
            }
        }
    }
}

static void
steer_listeners(int n)
{
    int i;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        if (l->used && l->active && l->fds[0] >= 0
            && s2a_listen_steer(l->fds[0], n) != S2A_OK)
        {
            s2a_log(LOG_WARNING, errno,
                    "setsockopt(SO_ATTACH_REUSEPORT_CBPF) failed");
        }
    }
}

/* Closes the master's copy of sockets no present or future worker needs. */
static void
close_unused_sockets(void)
{
    int i, s, open;
    proc_t *p;
    bool needed;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        if (!l->used) {
            continue;
        }
        open = 0;
        for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
            if (l->fds[s] < 0) {
                continue;
            }
            needed = !M.stopping && l->active && s < M.conf->workers;
            for (p = M.procs; !needed && !M.stopping && p != NULL; p = p->next)
            {
                if (p->slot == s && (p->listener_mask & (1u << i))) {
                    needed = true;
                }
            }
            if (needed) {
                open++;
                continue;
            }
            close(l->fds[s]);
            l->fds[s] = -1;
        }
        if (open == 0 && !l->active) {
            l->used = false;
        }
    }
}

/* ---------------------------------------------------------------------
 * Workers
 */

static int
shm_row_alloc(void)
{
    int i;

    for (i = 0; i < S2A_SHM_WORKERS; i++) {
        if (M.shm->workers[i].state == S2A_WORKER_EMPTY
            && M.shm->workers[i].pid == 0) {
            return i;
        }
    }
    return -1;
}

static void child_after_fork(int slot, int row, int ctl_fd)
    __attribute__((noreturn));

static void
child_after_fork(int slot, int row, int ctl_fd)
{
    s2a_worker_args_t args;
    char role[32];
    proc_t *p;
    int i, rc;

#ifdef HAVE_PRCTL
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    if (getppid() != (pid_t) M.shm->master_pid) {
        _exit(S2A_EXIT_FAILURE); /* the master died before prctl */
    }
    snprintf(role, sizeof(role), "worker %d", slot);
    s2a_log_set_role(role);

    /* The master's event base shares its epoll instance with us: give it
     * a private one, then free it, so nothing we do touches the master's
     * registrations. */
    event_reinit(M.base);
    event_base_free(M.base);
    M.base = NULL;

    memset(&args, 0, sizeof(args));
    for (p = M.procs; p != NULL; p = p->next) {
        close(s2a_chan_fd(p->chan));
    }
    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        int s;
        if (!l->used) {
            continue;
        }
        for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
            if (l->fds[s] < 0) {
                continue;
            }
            if (s == slot && l->active && args.n_listen < S2A_CONF_MAX_LISTEN) {
                args.listen_fds[args.n_listen++] = l->fds[s];
            } else {
                close(l->fds[s]);
            }
        }
    }
    if (M.status_fd >= 0) {
        close(M.status_fd);
    }
    args.conf = M.conf;
    args.shm = M.shm;
    args.slot = slot;
    args.shm_row = row;
    args.generation = M.generation;
    args.ctl_fd = ctl_fd;
    args.test_hooks = M.opts.test_hooks;
    rc = s2a_worker_main(&args);
    exit(rc);
}

static int
spawn_worker(int slot)
{
    int sv[2], row, i;
    proc_t *proc;
    pid_t pid;

    row = shm_row_alloc();
    if (row < 0) {
        s2a_log(LOG_ERR, 0, "no free worker row in shared memory");
        return S2A_ERROR;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
        s2a_log(LOG_ERR, errno, "socketpair() failed");
        return S2A_ERROR;
    }
    proc = calloc(1, sizeof(*proc));
    if (proc == NULL) {
        close(sv[0]);
        close(sv[1]);
        return S2A_ERROR;
    }
    pid = fork();
    if (pid == -1) {
        s2a_log(LOG_ERR, errno, "fork() failed");
        close(sv[0]);
        close(sv[1]);
        free(proc);
        return S2A_ERROR;
    }
    if (pid == 0) {
        free(proc);
        close(sv[0]);
        child_after_fork(slot, row, sv[1]);
    }
    close(sv[1]);
    evutil_make_socket_nonblocking(sv[0]);
    proc->pid = pid;
    proc->slot = slot;
    proc->row = row;
    proc->generation = M.generation;
    proc->state = PROC_STARTING;
    proc->started_ms = s2a_mono_ms();
    for (i = 0; i < MAX_LISTENERS; i++) {
        if (M.listeners[i].used && M.listeners[i].active) {
            proc->listener_mask |= 1u << i;
        }
    }
    proc->chan =
        s2a_chan_create(M.base, sv[0], on_worker_msg, on_worker_close, proc);
    if (proc->chan == NULL) {
        /* Without a channel the worker cannot be managed: stop it. */
        kill(pid, SIGKILL);
        close(sv[0]);
    }
    M.shm->workers[row].pid = (int32_t) pid;
    M.shm->workers[row].slot = slot;
    M.shm->workers[row].generation = M.generation;
    M.shm->workers[row].state = S2A_WORKER_STARTING;
    M.shm->workers[row].started_ms = s2a_now_ms();
    M.shm->workers[row].requests = 0;
    proc->next = M.procs;
    M.procs = proc;
    s2a_log(LOG_INFO, 0, "worker %d started (pid %d, generation %u)", slot,
            (int) pid, M.generation);
    return S2A_OK;
}

static bool
slot_has_live_worker(int slot)
{
    proc_t *p;

    for (p = M.procs; p != NULL; p = p->next) {
        if (p->slot == slot && p->state != PROC_DRAINING) {
            return true;
        }
    }
    return false;
}

static void
respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    int slot = (int) (intptr_t) arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (M.stopping || slot >= M.conf->workers || slot_has_live_worker(slot)) {
        return;
    }
    if (spawn_worker(slot) != S2A_OK) {
        struct timeval tv = { 1, 0 };
        evtimer_add(M.slots[slot].respawn_ev, &tv);
    }
}

static void
schedule_respawn(int slot, int64_t lived_ms)
{
    slot_t *s = &M.slots[slot];
    int64_t delay = 0;
    struct timeval tv;

    if (lived_ms < QUICK_DEATH_MS) {
        s->quick_deaths++;
    } else {
        s->quick_deaths = 0;
    }
    /* First death: at once. A crash loop backs off up to 30 s. */
    if (s->quick_deaths > 1) {
        delay = 100LL << (s->quick_deaths - 2 > 10 ? 10 : s->quick_deaths - 2);
        if (delay > MAX_BACKOFF_MS) {
            delay = MAX_BACKOFF_MS;
        }
        s2a_log(LOG_CRIT, 0,
                "worker %d keeps dying (%d quick exits); next start in "
                "%lld ms",
                slot, s->quick_deaths, (long long) delay);
    }
    if (s->respawn_ev == NULL) {
        s->respawn_ev =
            evtimer_new(M.base, respawn_cb, (void *) (intptr_t) slot);
    }
    tv.tv_sec = (time_t) (delay / 1000);
    tv.tv_usec = (suseconds_t) ((delay % 1000) * 1000);
    evtimer_add(s->respawn_ev, &tv);
}

static void
proc_remove(proc_t *proc)
{
    proc_t **pp;
    pending_reply_t *r;

    for (pp = &M.procs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == proc) {
            *pp = proc->next;
            break;
        }
    }
    for (r = M.replies; r != NULL; r = r->next) {
        if (r->proc == proc) {
            r->proc = NULL;
        }
    }
    s2a_chan_destroy(proc->chan);
    free(proc);
}

static void
reap_children(void)
{
    int status, code, dropped;
    proc_t *proc;
    pid_t pid;
    bool was_draining;
    int64_t lived;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (proc = M.procs; proc != NULL; proc = proc->next) {
            if (proc->pid == pid) {
                break;
            }
        }
        if (proc == NULL) {
            continue;
        }
        /* Whatever the worker sent before exiting is still applied. */
        s2a_chan_drain_input(proc->chan);

        dropped = 0;
        if (s2a_shm_lock(M.shm) == S2A_OK) {
            dropped = s2a_shm_release_owner_locked(M.shm, pid);
            s2a_shm_unlock(M.shm);
        }
        memset(&M.shm->workers[proc->row], 0, sizeof(M.shm->workers[0]));

        was_draining = proc->state == PROC_DRAINING;
        code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        lived = s2a_mono_ms() - proc->started_ms;
        if (WIFSIGNALED(status)) {
            s2a_log(was_draining || M.stopping ? LOG_NOTICE : LOG_ERR, 0,
                    "worker %d (pid %d) killed by signal %d%s; %d leases "
                    "released",
                    proc->slot, (int) pid, WTERMSIG(status),
                    was_draining ? " while draining" : "", dropped);
        } else if (code != 0 || dropped > 0) {
            s2a_log(LOG_ERR, 0,
                    "worker %d (pid %d) exited with status %d; "
                    "%d leases released",
                    proc->slot, (int) pid, code, dropped);
        } else {
            s2a_log(LOG_INFO, 0, "worker %d (pid %d) exited", proc->slot,
                    (int) pid);
        }
        int slot = proc->slot;
        proc_remove(proc);

        if (M.stopping || was_draining) {
            continue;
        }
        if (code == S2A_EXIT_CONFIG) {
            s2a_log(LOG_CRIT, 0,
                    "worker %d hit a fatal configuration error; "
                    "not restarting it",
                    slot);
            if (M.procs == NULL) {
                M.exit_status = S2A_EXIT_FAILURE;
                M.stopping = 2;
            }
            continue;
        }
        if (slot < M.conf->workers && !slot_has_live_worker(slot)) {
            schedule_respawn(slot, lived);
        }
    }
    close_unused_sockets();
    maybe_finish_stop();
}

/* ---------------------------------------------------------------------
 * Readiness, pidfile, stopping
 */

static void
announce_ready_if_done(void)
{
    proc_t *p;
    int ready = 0;
    char c = 0;

    for (p = M.procs; p != NULL; p = p->next) {
        if (p->generation == M.generation && p->state == PROC_READY) {
            ready++;
        }
    }
    if (ready < M.conf->workers) {
        return;
    }
    if (!M.ready_announced) {
        M.ready_announced = true;
        s2a_log(LOG_NOTICE, 0, "sora2apid %s ready: %d workers", S2A_VERSION,
                M.conf->workers);
        if (M.status_fd >= 0) {
            if (write(M.status_fd, &c, 1) < 0) {
                /* the parent is gone; nothing to tell */
            }
            close(M.status_fd);
            M.status_fd = -1;
        }
    }
    s2a_sd_notify("READY=1");
}

static int
pidfile_check_and_write(const char *path)
{
    char buf[32], tmp[PATH_MAX + 8];
    int fd, n;
    long pid;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = (int) read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            pid = strtol(buf, NULL, 10);
            if (pid > 0 && pid != (long) getpid()
                && (kill((pid_t) pid, 0) == 0 || errno == EPERM))
            {
                s2a_log(LOG_ERR, 0, "already running: pid %ld in \"%s\"", pid,
                        path);
                return S2A_ERROR;
            }
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", tmp);
        return S2A_ERROR;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
    if (write(fd, buf, (size_t) n) != n || close(fd) != 0
        || rename(tmp, path) != 0) {
        s2a_log(LOG_ERR, errno, "writing pidfile \"%s\" failed", path);
        unlink(tmp);
        return S2A_ERROR;
    }
    M.pidfile_written = true;
    return S2A_OK;
}

static void
maybe_finish_stop(void)
{
    if (M.stopping && M.procs == NULL) {
        event_base_loopbreak(M.base);
    }
}

static void
begin_stop(int how)
{
    proc_t *p;

    if (M.stopping >= how) {
        return;
    }
    M.stopping = how;
    s2a_sd_notify("STOPPING=1");
    s2a_log(LOG_NOTICE, 0, "%s stop requested", how == 1 ? "graceful" : "fast");
    close_unused_sockets();
    for (p = M.procs; p != NULL; p = p->next) {
        if (how == 1) {
            send_drain(p, 0, false);
        } else {
            kill(p->pid, SIGTERM);
            p->kill_at_ms = s2a_mono_ms() + KILL_GRACE_MS;
        }
    }
    maybe_finish_stop();
}

/* ---------------------------------------------------------------------
 * Reload
 */

/* Restart-only keys keep their running values; say so. */
static void
keep_restart_only_keys(s2a_conf_t *next)
{
    size_t i, size;
    const s2a_conf_key_t *k;

    for (i = 0; i < s2a_conf_nkeys; i++) {
        k = &s2a_conf_keys[i];
        if (k->flags & (S2A_CONF_RELOAD | S2A_CONF_SEED)) {
            continue;
        }
        size = k->size != 0              ? k->size
            : k->type == S2A_CONF_T_SIZE ? sizeof(long)
                                         : sizeof(int);
        if (memcmp((char *) next + k->offset, (char *) M.conf + k->offset, size)
            != 0) {
            s2a_log(LOG_WARNING, 0,
                    "[%s] %s changed: it takes effect after a restart",
                    k->section, k->name);
            memcpy((char *) next + k->offset, (char *) M.conf + k->offset,
                   size);
        }
    }
}

static void
reload(void)
{
    char err[512];
    s2a_conf_t *next;
    int i, old_workers;
    proc_t *p;

    s2a_sd_notify("RELOADING=1");
    next = malloc(sizeof(*next));
    if (next == NULL) {
        return;
    }
    if (M.opts.conf_path != NULL) {
        if (s2a_conf_load(next, M.opts.conf_path, err, sizeof(err)) != S2A_OK) {
            s2a_log(LOG_ERR, 0,
                    "reload failed, keeping the running "
                    "configuration: %s",
                    err);
            free(next);
            s2a_sd_notify("READY=1");
            return;
        }
    } else if (s2a_conf_defaults(next, err, sizeof(err)) != S2A_OK) {
        free(next);
        return;
    }
    keep_restart_only_keys(next);
    /* A worker that cannot open its access log could not start: refuse
     * the file instead of losing the workers. */
    if (strcmp(next->access_log, "off") != 0
        && strcmp(next->access_log, "stderr") != 0)
    {
        int fd = open(next->access_log,
                      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd == -1) {
            s2a_log(LOG_ERR, errno,
                    "reload failed, keeping the running "
                    "configuration: open(\"%s\") failed",
                    next->access_log);
            free(next);
            s2a_sd_notify("READY=1");
            return;
        }
        close(fd);
    }
    if (strcmp(next->error_log, M.conf->error_log) != 0
        && s2a_log_open(next->error_log) != S2A_OK)
    {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed; keeping the old log",
                next->error_log);
        snprintf(next->error_log, sizeof(next->error_log), "%s",
                 M.conf->error_log);
    }

    old_workers = M.conf->workers;
    /* Addresses no longer configured stop taking part in new workers. */
    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &M.listeners[i];
        int j;
        bool keep = false;
        if (!l->used || !l->active) {
            continue;
        }
        for (j = 0; j < next->n_listen; j++) {
            if (next->listen[j].port == l->addr.port
                && strcmp(next->listen[j].host, l->addr.host) == 0)
            {
                keep = true;
            }
        }
        if (!keep) {
            l->active = false;
        }
    }
    for (i = 0; i < next->n_listen; i++) {
        if (listener_find(&next->listen[i]) == NULL
            && listener_new(&next->listen[i]) == NULL)
        {
            s2a_log(LOG_ERR, 0, "too many listening addresses");
        }
    }
    free(M.conf);
    M.conf = next;
    apply_log_level();
    if (publish_settings() != S2A_OK) {
        s2a_log(LOG_ERR, 0, "reload: runtime settings not re-read");
    }
    if (open_slot_sockets(M.conf->workers) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "reload: some sockets could not be opened");
    }
    relisten_all(M.conf->backlog);
    M.generation++;
    M.ready_announced = true;
    s2a_log(LOG_NOTICE, 0,
            "reloading: generation %u, %d workers "
            "(was %d)",
            M.generation, M.conf->workers, old_workers);
    for (i = 0; i < M.conf->workers; i++) {
        spawn_worker(i);
    }
    steer_listeners(M.conf->workers);
    /* Slots that no longer exist drain now; their sockets get no new
     * connections any more, and what is queued is accepted first. */
    for (p = M.procs; p != NULL; p = p->next) {
        if (p->slot >= M.conf->workers) {
            send_drain(p, SHRINK_GRACE_MS, true);
        }
    }
    close_unused_sockets();
}

/* ---------------------------------------------------------------------
 * Signals and timers
 */

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
    proc_t *p;

    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    switch (sig) {
    case SIGCHLD: reap_children(); break;
    case SIGHUP:
        if (!M.stopping) {
            s2a_log(LOG_NOTICE, 0, "SIGHUP: reloading configuration");
            reload();
        }
        break;
    case SIGTERM:
    case SIGINT: begin_stop(1); break;
    case SIGQUIT: begin_stop(2); break;
    case SIGUSR1:
        if (s2a_log_open(M.conf->error_log) != S2A_OK) {
            s2a_log(LOG_ERR, errno, "reopening \"%s\" failed",
                    M.conf->error_log);
        }
        s2a_log(LOG_NOTICE, 0, "SIGUSR1: log files reopened");
        for (p = M.procs; p != NULL; p = p->next) {
            json_t *msg = json_pack("{s:s}", "op", "reopen_logs");
            s2a_chan_send(p->chan, msg);
            json_decref(msg);
        }
        break;
    default: break;
    }
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = s2a_mono_ms();
    proc_t *p;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    for (p = M.procs; p != NULL; p = p->next) {
        if (p->kill_at_ms != 0 && now >= p->kill_at_ms) {
            s2a_log(LOG_WARNING, 0,
                    "worker %d (pid %d) did not stop in "
                    "time; killing it",
                    p->slot, (int) p->pid);
            kill(p->pid, SIGKILL);
            p->kill_at_ms = now + KILL_GRACE_MS;
        }
    }
    /* A missed SIGCHLD (coalesced signals) is caught here. */
    reap_children();
    if (--M.sweep_countdown <= 0) {
        M.sweep_countdown = SWEEP_EVERY_S;
        sweep_tokens();
        sweep_cache();
    }
}

static int
add_signal(int sig)
{
    struct event *ev = evsignal_new(M.base, sig, signal_cb, NULL);

    if (ev == NULL || evsignal_add(ev, NULL) != 0) {
        return S2A_ERROR;
    }
    M.signals[M.n_signals++] = ev;
    return S2A_OK;
}

/* ---------------------------------------------------------------------
 * Start-up
 */

static int
daemonize(void)
{
    int pipefd[2], fd;
    pid_t pid;
    char c;
    ssize_t n;

    if (pipe2(pipefd, O_CLOEXEC) == -1) {
        s2a_log(LOG_ERR, errno, "pipe() failed");
        return S2A_ERROR;
    }
    pid = fork();
    if (pid == -1) {
        s2a_log(LOG_ERR, errno, "fork() failed");
        return S2A_ERROR;
    }
    if (pid > 0) {
        /* Wait until the daemon says it serves, or dies trying. */
        close(pipefd[1]);
        do {
            n = read(pipefd[0], &c, 1);
        } while (n == -1 && errno == EINTR);
        _exit(n == 1 ? S2A_EXIT_OK : S2A_EXIT_FAILURE);
    }
    close(pipefd[0]);
    M.status_fd = pipefd[1];
    if (setsid() == -1) {
        s2a_log(LOG_ERR, errno, "setsid() failed");
        return S2A_ERROR;
    }
    if (chdir("/") == -1) {
        s2a_log(LOG_ERR, errno, "chdir(\"/\") failed");
        return S2A_ERROR;
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* stderr stays until the error log is known to be a file. */
        if (s2a_log_fd() != STDERR_FILENO) {
            dup2(fd, STDERR_FILENO);
        }
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    return S2A_OK;
}

static int
make_dirs(const s2a_conf_t *conf)
{
    const char *dirs[] = { conf->data_dir, conf->cache_dir };
    char buf[PATH_MAX];
    size_t i;

    for (i = 0; i < S2A_NELEMS(dirs); i++) {
        if (s2a_mkdirs(dirs[i], 0750) != S2A_OK) {
            s2a_log(LOG_ERR, errno, "mkdir(\"%s\") failed", dirs[i]);
            return S2A_ERROR;
        }
    }
    snprintf(buf, sizeof(buf), "%s", conf->pidfile);
    if (s2a_mkdirs(dirname(buf), 0755) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "mkdir for pidfile \"%s\" failed",
                conf->pidfile);
        return S2A_ERROR;
    }
    return S2A_OK;
}

static int
drop_privileges(const s2a_conf_t *conf)
{
    struct passwd *pw;

    if (geteuid() != 0 || conf->user[0] == '\0') {
        if (conf->user[0] != '\0') {
            s2a_log(LOG_WARNING, 0,
                    "not started as root: [server] user "
                    "\"%s\" ignored",
                    conf->user);
        }
        return S2A_OK;
    }
    pw = getpwnam(conf->user);
    if (pw == NULL) {
        s2a_log(LOG_ERR, 0, "unknown user \"%s\"", conf->user);
        return S2A_ERROR;
    }
    /* The daemon's own directories must stay writable after the switch. */
    if (chown(conf->data_dir, pw->pw_uid, pw->pw_gid) == -1
        || chown(conf->cache_dir, pw->pw_uid, pw->pw_gid) == -1)
    {
        s2a_log(LOG_ERR, errno, "chown() of data or cache dir failed");
        return S2A_ERROR;
    }
    if (strcmp(conf->error_log, "stderr") != 0) {
        (void) chown(conf->error_log, pw->pw_uid, pw->pw_gid);
    }
    /* Its directory may stay root's (/run): owning the file at least lets
     * the daemon empty it on the way out. */
    if (M.pidfile_written) {
        (void) chown(conf->pidfile, pw->pw_uid, pw->pw_gid);
    }
    if (strcmp(conf->access_log, "stderr") != 0
        && strcmp(conf->access_log, "off") != 0)
    {
        int fd = open(conf->access_log, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (fd >= 0) {
            (void) fchown(fd, pw->pw_uid, pw->pw_gid);
            close(fd);
        }
    }
    if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1
        || setuid(pw->pw_uid) == -1)
    {
        s2a_log(LOG_ERR, errno, "switching to user \"%s\" failed", conf->user);
        return S2A_ERROR;
    }
    s2a_log(LOG_NOTICE, 0, "running as user \"%s\"", conf->user);
    return S2A_OK;
}

static void
ignore_default_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Every stream is a client socket plus upstream connections: lift the
 * soft descriptor limit to the hard one, as the workers inherit it.
 */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            s2a_log(LOG_WARNING, errno, "raising the descriptor limit failed");
        }
    }
}

int
s2a_master_run(s2a_conf_t *conf, const s2a_master_opts_t *opts)
{
    static const int sigs[] = { SIGCHLD, SIGHUP,  SIGTERM,
                                SIGINT,  SIGQUIT, SIGUSR1 };
    char err[512];
    struct timeval tick = { 1, 0 };
    size_t i;
    int rc = S2A_EXIT_FAILURE;

    M.conf = conf;
    M.opts = *opts;
    M.replies_tail = &M.replies;
    s2a_log_set_role("master");
    s2a_log_set_level(conf->log_level);
    ignore_default_signals();

    if (s2a_log_open(conf->error_log) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", conf->error_log);
        return S2A_EXIT_FAILURE;
    }
    if (opts->daemonize && daemonize() != S2A_OK) {
        return S2A_EXIT_FAILURE;
    }
    raise_fd_limit();
    if (make_dirs(conf) != S2A_OK) {
        goto done;
    }
    if (pidfile_check_and_write(conf->pidfile) != S2A_OK) {
        goto done;
    }
    M.base = event_base_new();
    if (M.base == NULL) {
        s2a_log(LOG_ERR, 0, "event_base_new() failed");
        goto done;
    }
    for (i = 0; i < (size_t) conf->n_listen; i++) {
        if (listener_new(&conf->listen[i]) == NULL) {
            goto done;
        }
    }
    if (open_slot_sockets(conf->workers) != S2A_OK) {
        goto done;
    }
    steer_listeners(conf->workers);
    if (drop_privileges(conf) != S2A_OK) {
        goto done;
    }
    M.db = s2a_db_open(conf->data_dir, err, sizeof(err));
    if (M.db == NULL) {
        s2a_log(LOG_ERR, 0, "database: %s", err);
        goto done;
    }
    if (s2a_db_seed(M.db, conf) != S2A_OK) {
        goto done;
    }
    {
        char keypath[PATH_MAX + 16];
        snprintf(keypath, sizeof(keypath), "%s/secret.key", conf->data_dir);
        if (s2a_key_file_load(keypath, M.key) != S2A_OK) {
            s2a_log(LOG_ERR, errno, "cannot read or create \"%s\"", keypath);
            goto done;
        }
    }
    if (s2a_db_default_admin_password(M.db)) {
        s2a_log(LOG_WARNING, 0,
                "the admin password is still the default "
                "\"admin\": change it in the admin UI");
    }
    M.shm = s2a_shm_create((uint32_t) conf->max_tokens,
                           (uint32_t) conf->max_leases);
    if (M.shm == NULL) {
        s2a_log(LOG_ERR, errno, "mmap() of the shared table failed");
        goto done;
    }
    M.shm->master_pid = getpid();
    if (publish_settings() != S2A_OK) {
        goto done;
    }
    if (s2a_shm_lock(M.shm) == S2A_OK) {
        s2a_db_revoked_load(M.db, s2a_now(), revoked_to_shm, NULL);
        s2a_db_tokens_load(M.db, M.key, 0, token_to_shm, NULL);
        s2a_shm_unlock(M.shm);
    }
    for (i = 0; i < S2A_NELEMS(sigs); i++) {
        if (add_signal(sigs[i]) != S2A_OK) {
            s2a_log(LOG_ERR, 0, "cannot install signal handlers");
            goto done;
        }
    }
    M.flush_ev = event_new(M.base, -1, 0, flush_cb, NULL);
    M.tick_ev = event_new(M.base, -1, EV_PERSIST, tick_cb, NULL);
    if (M.flush_ev == NULL || M.tick_ev == NULL) {
        goto done;
    }
    evtimer_add(M.tick_ev, &tick);
    M.generation = 1;
    M.sweep_countdown = 5;
    for (i = 0; i < (size_t) conf->workers; i++) {
        if (spawn_worker((int) i) != S2A_OK) {
            goto done;
        }
    }

    event_base_dispatch(M.base);

    rc = M.exit_status;
    s2a_log(LOG_NOTICE, 0, "stopped");
done:
    if (M.procs != NULL) {
        proc_t *p;
        for (p = M.procs; p != NULL; p = p->next) {
            kill(p->pid, SIGKILL);
        }
        while (M.procs != NULL) {
            int st;
            pid_t pid = waitpid(-1, &st, 0);
            proc_t **pp;
            if (pid < 0) {
                break;
            }
            for (pp = &M.procs; *pp != NULL; pp = &(*pp)->next) {
                if ((*pp)->pid == pid) {
                    proc_t *dead = *pp;
                    *pp = dead->next;
                    s2a_chan_destroy(dead->chan);
                    free(dead);
                    break;
                }
            }
        }
    }
    if (M.db != NULL) {
        if (s2a_db_in_transaction(M.db)) {
            s2a_db_commit(M.db);
        }
        send_replies(true);
        s2a_db_close(M.db);
    }
    for (i = 0; i < (size_t) M.n_signals; i++) {
        event_free(M.signals[i]);
    }
    for (i = 0; i < S2A_CONF_MAX_WORKERS; i++) {
        if (M.slots[i].respawn_ev != NULL) {
            event_free(M.slots[i].respawn_ev);
        }
    }
    if (M.flush_ev != NULL) {
        event_free(M.flush_ev);
    }
    if (M.tick_ev != NULL) {
        event_free(M.tick_ev);
    }
    M.stopping = 2;
    close_unused_sockets();
    if (M.base != NULL) {
        event_base_free(M.base);
    }
    s2a_shm_destroy(M.shm);
    free(M.touched);
    OPENSSL_cleanse(M.key, sizeof(M.key));
    if (M.pidfile_written && unlink(M.conf->pidfile) == -1) {
        /* After a privilege drop the directory may not be ours; an empty
         * pidfile reads as "not running" to us and the init script. */
        int fd = open(M.conf->pidfile, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd >= 0) {
            close(fd);
        }
    }
    free(M.conf);
    return rc;
}
