/*
 * runtime.c: the runtime settings in the master. Seeds and loads them
 * through the settings table (common/settings.c), checks every change a
 * worker asks for, writes it in the current batch and publishes the
 * snapshot to shared memory once the batch committed. Also the revoked
 * admin sessions, which the same snapshot-style publication serves.
 */
#include "master/runtime.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/settings.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/keys.h"
#include "master/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool settings_dirty; /* the batch changed a runtime setting */

static void
apply_log_level(void)
{
    s2a_shm_settings_t s;

    s2a_shm_settings_read(s2a_master.shm, &s);
    s2a_log_set_level(s.log_level >= 0 ? s.log_level
                                       : s2a_master.conf->log_level);
}

/* Re-reads the runtime settings from the database into shm; `warn`
 * names refused stored values (start and reload). */
int
s2a_runtime_publish(bool warn)
{
    s2a_shm_settings_t s;

    if (s2a_db_load_settings(s2a_master.db, &s, warn, s2a_master.key) != S2A_OK)
    {
        return S2A_ERROR;
    }
    /* Workers verify API keys with this derived key; secret.key itself
     * never leaves the master. */
    s2a_derive_key(s2a_master.key, S2A_APIKEY_LABEL, s.api_key_vkey);
    s2a_shm_settings_write(s2a_master.shm, &s);
    apply_log_level();
    return S2A_OK;
}

/* Said at every start until the operator changes them. */
void
s2a_runtime_warn_defaults(void)
{
    uint8_t hash[S2A_SHA256_LEN];

    if (s2a_master.shm->settings.admin_password_is_default) {
        s2a_log(LOG_WARNING, 0,
                "the admin password is still the default "
                "\"admin\": change it in the admin UI");
    }
    s2a_api_key_mac(s2a_master.shm->settings.api_key_vkey, "han1234", hash);
    if (memcmp(hash, s2a_master.shm->settings.api_key_hash, sizeof(hash)) == 0)
    {
        s2a_log(LOG_WARNING, 0,
                "the API key is still the shipped default: change it "
                "in the admin UI");
    }
}

/*
 * A value a worker wants for setting `key`, checked against its row of
 * the settings table. Secrets arrive already hashed (the API key as its
 * keyed MAC): the master never sees a password or an API key.
 */
static int
validate_setting(const char *key, const char *value, char *err, size_t errlen)
{
    const s2a_setting_t *s = s2a_setting_find(key);

    if (s == NULL || (s->flags & S2A_SET_INTERNAL)) {
        snprintf(err, errlen, "unknown setting \"%.64s\"", key);
        return S2A_ERROR;
    }
    if (s->type == S2A_SET_T_EPOCH) {
        if (s2a_setting_is_bump(s, value)) {
            return S2A_OK;
        }
        snprintf(err, errlen, "%s can only be bumped", key);
        return S2A_ERROR;
    }
    return s2a_setting_parse(s, value, NULL, err, errlen);
}

static int
write_setting(const char *key, const char *value)
{
    const s2a_setting_t *s = s2a_setting_find(key);
    char buf[32];
    unsigned long epoch = 0;

    if (s != NULL && s2a_setting_is_bump(s, value)) {
        /* Every session signed under the old epoch stops being valid. */
        if (s2a_db_setting_get(s2a_master.db, key, buf, sizeof(buf)) == S2A_OK)
        {
            epoch = strtoul(buf, NULL, 10);
        }
        snprintf(buf, sizeof(buf), "%lu", epoch + 1);
        value = buf;
    }
    if (s2a_db_setting_set(s2a_master.db, key, value) != S2A_OK) {
        return S2A_ERROR;
    }
    /* The API key of the setting is named key 1 (docs/api-keys.md). */
    if (strcmp(key, "api_key_sha256") == 0
        && s2a_keys_primary_rekey(value) != S2A_OK)
    {
        return S2A_ERROR;
    }
    settings_dirty = true;
    if (s == NULL || (s->flags & S2A_SET_SECRET)) {
        s2a_log(LOG_NOTICE, 0, "runtime setting %s changed", key);
    } else {
        s2a_log(LOG_NOTICE, 0, "runtime setting %s changed to \"%s\"", key,
                value);
    }
    return S2A_OK;
}

/*
 * "set_setting" {key, value} or "set_settings" {values: {key: value}}:
 * all keys are validated first, then written in the current batch, so a
 * bad key changes nothing.
 */
void
s2a_op_set_settings(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    json_t *values = json_object_get(msg, "values"), *v, *single = NULL;
    json_t *reply = s2a_ctlserver_reply_for(msg);
    const char *key;
    char err[256];

    if (values == NULL) {
        key = json_string_value(json_object_get(msg, "key"));
        v = json_object_get(msg, "value");
        if (key == NULL || !json_is_string(v)) {
            s2a_ctlserver_fail(proc, reply,
                               "set_setting needs string key and value");
            return;
        }
        single = json_object();
        json_object_set(single, key, v);
        values = single;
    }
    if (!json_is_object(values) || json_object_size(values) == 0) {
        json_decref(single);
        s2a_ctlserver_fail(proc, reply,
                           "set_settings needs an object of values");
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
    if (s2a_ctlserver_batch() != S2A_OK) {
        json_decref(single);
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    json_object_foreach (values, key, v) {
        if (write_setting(key, json_string_value(v)) != S2A_OK) {
            snprintf(err, sizeof(err), "database write failed");
            goto failed;
        }
    }
    json_decref(single);
    s2a_ctlserver_reply_later(proc, reply);
    return;

failed:
    json_decref(single);
    s2a_ctlserver_fail(proc, reply, err);
}

/*
 * Remembers a revoked session in shm; the lock is taken for the copy
 * alone. When the table is full of live entries, every session ends
 * instead (an epoch bump, written after the unlock).
 */
static void
revoked_to_shm(const char *nonce, int64_t expires)
{
    int rc = S2A_ERROR;

    if (s2a_shm_lock(s2a_master.shm) == S2A_OK) {
        rc = s2a_shm_revoked_add_locked(s2a_master.shm, nonce, expires,
                                        s2a_now());
        s2a_shm_unlock(s2a_master.shm);
    }
    if (rc != S2A_OK) {
        write_setting("session_epoch", "bump");
    }
}

typedef struct revoked_list_s {
    char (*nonce)[33];
    int64_t *expires;
    size_t n, cap;
} revoked_list_t;

static void
revoked_collect(const char *nonce, int64_t expires, void *arg)
{
    revoked_list_t *l = arg;
    size_t cap;
    void *a, *b;

    if (l->n == l->cap) {
        cap = l->cap == 0 ? 64 : l->cap * 2;
        a = realloc(l->nonce, cap * sizeof(*l->nonce));
        if (a == NULL) {
            return;
        }
        l->nonce = a;
        b = realloc(l->expires, cap * sizeof(*l->expires));
        if (b == NULL) {
            return;
        }
        l->expires = b;
        l->cap = cap;
    }
    snprintf(l->nonce[l->n], sizeof(l->nonce[0]), "%s", nonce);
    l->expires[l->n++] = expires;
}

int
s2a_runtime_load_revoked(void)
{
    revoked_list_t l = { NULL, NULL, 0, 0 };
    size_t i;
    int rc;

    /* Read first, then copy under the lock: no SQLite inside it. */
    rc = s2a_db_revoked_load(s2a_master.db, s2a_now(), revoked_collect, &l);
    for (i = 0; i < l.n; i++) {
        revoked_to_shm(l.nonce[i], l.expires[i]);
    }
    free(l.nonce);
    free(l.expires);
    return rc;
}

void
s2a_runtime_committed(bool ok)
{
    /* Settings reach shm only once they are durable. */
    if (ok && settings_dirty) {
        s2a_runtime_publish(false);
    }
    settings_dirty = false;
}

void
s2a_op_revoke_session(void *from, json_t *msg)
{
    s2a_proc_t *proc = from;
    const char *nonce = json_string_value(json_object_get(msg, "nonce"));
    json_int_t expires = json_integer_value(json_object_get(msg, "expires"));
    json_t *reply = s2a_ctlserver_reply_for(msg);

    if (nonce == NULL || !s2a_is_hex(nonce, 32) || expires <= 0) {
        s2a_ctlserver_fail(proc, reply,
                           "revoke_session needs nonce and expires");
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK
        || s2a_db_revoked_add(s2a_master.db, nonce, expires) != S2A_OK)
    {
        s2a_ctlserver_fail_db(proc, reply);
        return;
    }
    revoked_to_shm(nonce, expires);
    s2a_ctlserver_reply_later(proc, reply);
}

/* Unhexes the 32-digit key of a throttle row; false when malformed. */
static bool
throttle_key_parse(const char *hex, uint8_t key[16])
{
    int i, hi, lo;

    if (hex == NULL || strlen(hex) != 32 || !s2a_is_hex(hex, 32)) {
        return false;
    }
    for (i = 0; i < 16; i++) {
        hi = hex[2 * i] <= '9' ? hex[2 * i] - '0'
                               : (hex[2 * i] | 0x20) - 'a' + 10;
        lo = hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0'
                                   : (hex[2 * i + 1] | 0x20) - 'a' + 10;
        key[i] = (uint8_t) (hi << 4 | lo);
    }
    return true;
}

/*
 * "throttle_save" {rows: [{key, kind, fails, window_start, locked_until}]}:
 * a worker started a login lock (or a login cleared one); written in the
 * batch, read back at the next start. Only locks and their end reach the
 * database, never every attempt.
 */
void
s2a_op_throttle_save(void *from, json_t *msg)
{
    json_t *rows = json_object_get(msg, "rows"), *r;
    uint8_t key[16];
    const char *hex;
    size_t i;

    S2A_UNUSED(from);
    if (s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    json_array_foreach (rows, i, r) {
        hex = json_string_value(json_object_get(r, "key"));
        if (!throttle_key_parse(hex, key)) {
            s2a_log(LOG_WARNING, 0, "throttle_save: a row without a valid key");
            continue;
        }
        s2a_db_throttle_save(
            s2a_master.db, hex,
            (int) json_integer_value(json_object_get(r, "kind")),
            (int) json_integer_value(json_object_get(r, "fails")),
            json_integer_value(json_object_get(r, "window_start")),
            json_integer_value(json_object_get(r, "locked_until")));
    }
}

typedef struct throttle_list_s {
    s2a_shm_throttle_t *rows;
    size_t n, cap;
} throttle_list_t;

static void
throttle_collect(const char *hex, int kind, int fails, int64_t window_start,
                 int64_t locked_until, void *arg)
{
    throttle_list_t *l = arg;
    s2a_shm_throttle_t *grown;
    size_t cap;

    if (l->n == l->cap) {
        cap = l->cap == 0 ? 16 : l->cap * 2;
        grown = realloc(l->rows, cap * sizeof(*grown));
        if (grown == NULL) {
            return;
        }
        l->rows = grown;
        l->cap = cap;
    }
    memset(&l->rows[l->n], 0, sizeof(l->rows[0]));
    if (!throttle_key_parse(hex, l->rows[l->n].key)) {
        return;
    }
    l->rows[l->n].kind = kind;
    l->rows[l->n].fails = fails;
    l->rows[l->n].window_start = window_start;
    l->rows[l->n].locked_until = locked_until;
    l->n++;
}

int
s2a_runtime_load_throttle(void)
{
    throttle_list_t l = { NULL, 0, 0 };
    size_t i;
    int rc;

    /* Read first, then copy under the lock: no SQLite inside it. */
    rc = s2a_db_throttle_load(s2a_master.db, s2a_now(), throttle_collect, &l);
    if (l.n > 0 && s2a_shm_lock(s2a_master.shm) == S2A_OK) {
        for (i = 0; i < l.n; i++) {
            s2a_shm_throttle_put_locked(s2a_master.shm, &l.rows[i]);
        }
        s2a_shm_unlock(s2a_master.shm);
    }
    if (l.n > 0) {
        s2a_log(LOG_NOTICE, 0, "%zu admin login throttle rows restored", l.n);
    }
    free(l.rows);
    return rc;
}
