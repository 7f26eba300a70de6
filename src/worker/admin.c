/*
 * admin.c: admin sessions and settings.
 *
 * Passwords are checked and hashed on the KDF thread (kdf.c); sessions
 * are HMAC-signed tokens (session.c) checked against the settings
 * snapshot; every change goes to the master, which writes SQLite and
 * republishes the snapshot to all workers.
 */
#include "worker/admin.h"
#include "common/settings.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/models.h"
#include "common/session.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/kdf.h"
#include "worker/sora.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_MIN 8
#define FIELD_MAX    256

/* One pending admin operation: a request waiting on the KDF thread and/or
 * the master. */
typedef struct op_s {
    s2a_req_t *req;
    uint64_t kdf_job;
    uint64_t call;
    int kind;
    bool user_ok;
    uint8_t throttle_key[16]; /* the client address */
    uint8_t user_key[16];     /* the admin user name */
    char client[64];          /* the client address as text */
    char *new_password;
    char *username;
} op_t;

enum {
    OP_LOGIN = 0,
    OP_PASSWORD
};

static void
op_free(op_t *op)
{
    if (op->new_password != NULL) {
        explicit_bzero(op->new_password, strlen(op->new_password));
        free(op->new_password);
    }
    free(op->username);
    free(op);
}

static void
op_gone(s2a_req_t *req, void *arg)
{
    op_t *op = arg;

    S2A_UNUSED(req);
    if (op->kdf_job != 0) {
        s2a_kdf_cancel(op->kdf_job);
    }
    if (op->call != 0) {
        s2a_worker_call_cancel(op->call);
    }
    op_free(op);
}

static op_t *
op_new(s2a_req_t *req, int kind)
{
    op_t *op = calloc(1, sizeof(*op));

    if (op == NULL) {
        s2a_http_reply_detail(req, 503, "Out of memory");
        return NULL;
    }
    op->req = req;
    op->kind = kind;
    req->on_gone = op_gone;
    req->gone_arg = op;
    return op;
}

/* The request is answered by the caller right after this. */
static void
op_finish(op_t *op)
{
    op->req->on_gone = NULL;
    op_free(op);
}

static bool
is_address(const char *s)
{
    uint8_t buf[16];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/*
 * The client's address: the peer, unless the peer is one of the
 * trusted_proxies; then X-Forwarded-For is read from the right, skipping
 * trusted hops, and the first untrusted address is the client (the
 * leftmost one when every hop is trusted). A malformed entry ends the
 * walk at the last hop known good, so a client cannot pick its own key.
 */
static void
client_address(s2a_req_t *req, char *out, size_t len)
{
    const char *peer = req->peer != NULL ? req->peer : "-";
    const char *xff;
    char buf[1024], *comma, *tok, *end;

    snprintf(out, len, "%s", peer);
    if (!s2a_conf_is_trusted_proxy(s2a_worker.conf, peer)) {
        return;
    }
    xff = s2a_req_header(req, "X-Forwarded-For");
    if (xff == NULL
        || snprintf(buf, sizeof(buf), "%s", xff) >= (int) sizeof(buf)) {
        return;
    }
    for (;;) {
        comma = strrchr(buf, ',');
        tok = comma != NULL ? comma + 1 : buf;
        while (*tok == ' ' || *tok == '\t') {
            tok++;
        }
        end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t')) {
            *--end = '\0';
        }
        if (!is_address(tok)) {
            return;
        }
        snprintf(out, len, "%s", tok);
        if (!s2a_conf_is_trusted_proxy(s2a_worker.conf, tok) || comma == NULL) {
            return;
        }
        *comma = '\0';
    }
}

static void
throttle_key(const char *prefix, const char *name, uint8_t key[16])
{
    uint8_t h[S2A_SHA256_LEN];
    char buf[FIELD_MAX + 16];

    snprintf(buf, sizeof(buf), "%s:%s", prefix, name);
    s2a_sha256(buf, strlen(buf), h);
    memcpy(key, h, 16);
}

/* The rows of `keys` (up to two) as the master stores them; a key
 * without a row is sent with fails 0, which deletes it. */
static void
throttle_persist(const uint8_t *const keys[], int n)
{
    s2a_shm_throttle_t rows[2];
    bool have[2] = { false, false };
    char hex[33];
    json_t *arr, *msg;
    int i;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return;
    }
    for (i = 0; i < n; i++) {
        have[i] = s2a_shm_throttle_get_locked(s2a_worker.shm, keys[i], &rows[i])
            == S2A_OK;
    }
    s2a_shm_unlock(s2a_worker.shm);
    arr = json_array();
    for (i = 0; i < n; i++) {
        s2a_hex(keys[i], 16, hex);
        json_array_append_new(
            arr,
            json_pack("{s:s, s:i, s:i, s:I, s:I}", "key", hex, "kind",
                      have[i] ? rows[i].kind : 0, "fails",
                      have[i] ? rows[i].fails : 0, "window_start",
                      (json_int_t) (have[i] ? rows[i].window_start : 0),
                      "locked_until",
                      (json_int_t) (have[i] ? rows[i].locked_until : 0)));
    }
    msg = json_pack("{s:s, s:o}", "op", "throttle_save", "rows", arr);
    s2a_worker_notify_master(msg);
    json_decref(msg);
}

/*
 * Counts this attempt before its password is checked. Returns 0 (go on)
 * or the seconds the client must wait. A lock it starts is sent to the
 * master, which keeps it across restarts.
 */
static int64_t
throttle_reserve(op_t *op, bool by_user)
{
    const uint8_t *keys[2] = { op->throttle_key, op->user_key };
    bool locked = false;
    int64_t wait;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return 0;
    }
    wait = s2a_shm_throttle_reserve_locked(s2a_worker.shm, op->throttle_key,
                                           by_user ? op->user_key : NULL,
                                           s2a_now(), &locked);
    s2a_shm_unlock(s2a_worker.shm);
    if (locked) {
        throttle_persist(keys, by_user ? 2 : 1);
    }
    return wait;
}

/* After a correct password: the attempts are forgiven. */
static void
throttle_forgive(op_t *op, bool by_user)
{
    const uint8_t *keys[2] = { op->throttle_key, op->user_key };
    s2a_shm_throttle_t row;
    bool stored = false;
    int i, n = by_user ? 2 : 1;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return;
    }
    for (i = 0; i < n; i++) {
        if (s2a_shm_throttle_get_locked(s2a_worker.shm, keys[i], &row)
            == S2A_OK) {
            /* Only a row that ever locked can be in the database. */
            stored = stored || row.locked_until != 0;
            s2a_shm_throttle_reset_locked(s2a_worker.shm, keys[i]);
        }
    }
    s2a_shm_unlock(s2a_worker.shm);
    if (stored) {
        throttle_persist(keys, n);
    }
}

static bool
address_locked(op_t *op)
{
    int64_t wait = 0;

    if (s2a_shm_lock(s2a_worker.shm) == S2A_OK) {
        wait = s2a_shm_throttle_check_locked(s2a_worker.shm, op->throttle_key,
                                             s2a_now());
        s2a_shm_unlock(s2a_worker.shm);
    }
    return wait > 0;
}

static void
reply_throttled(s2a_req_t *req, int64_t wait)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%lld", (long long) wait);
    s2a_http_add_header(req, "Retry-After", buf);
    s2a_http_reply_detail(req, 429,
                          "Too many failed logins; try again in %lld "
                          "seconds",
                          (long long) wait);
}

/* A string field of at most FIELD_MAX bytes, or NULL. */
static const char *
field(json_t *obj, const char *name)
{
    const char *v = json_string_value(json_object_get(obj, name));

    return v != NULL && strlen(v) <= FIELD_MAX ? v : NULL;
}

/*
 * A 400 that names the request field it is about in "param" (next to the
 * usual "detail"), so a form can show the message by its field.
 */
static void reply_param(s2a_req_t *req, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_param(s2a_req_t *req, const char *param, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *body;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    body = json_pack("{s:s, s:s}", "detail", msg, "param", param);
    s2a_http_reply_json(req, 400, body);
    json_decref(body);
}

bool
s2a_admin_check(s2a_req_t *req)
{
    const char *h = s2a_req_header(req, "Authorization");
    char nonce[S2A_SESSION_NONCE];
    int64_t expires, now = s2a_now();
    bool revoked = false;
    int rc;

    if (h == NULL || h[0] == '\0') {
        s2a_http_reply_detail(req, 401, "Missing authorization header");
        return false;
    }
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
    }
    s2a_worker_refresh_settings();
    rc = s2a_session_verify(s2a_worker.settings.session_secret, h,
                            s2a_worker.settings.session_epoch, now, nonce,
                            &expires);
    if (rc == S2A_OK && s2a_shm_lock(s2a_worker.shm) == S2A_OK) {
        revoked = s2a_shm_revoked_has_locked(s2a_worker.shm, nonce, now);
        s2a_shm_unlock(s2a_worker.shm);
    }
    if (rc != S2A_OK || revoked) {
        s2a_http_reply_detail(req, 401, "Invalid or expired token");
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------
 * Login and logout
 */

static void
login_checked(bool ok, const char *hash, void *arg)
{
    op_t *op = arg;
    s2a_req_t *req = op->req;
    char token[S2A_SESSION_MAX];
    int64_t expires;
    json_t *body;

    S2A_UNUSED(hash);
    op->kdf_job = 0;
    if (!ok || !op->user_ok) {
        bool locked = address_locked(op);
        char client[64];

        snprintf(client, sizeof(client), "%s", op->client);
        op_finish(op);
        s2a_log(LOG_WARNING, 0, "admin login failed from %s%s", client,
                locked ? "; address locked" : "");
        body =
            json_pack("{s:b, s:n, s:s, s:s}", "success", 0, "token", "message",
                      "Invalid credentials", "detail", "Invalid credentials");
        s2a_http_reply_json(req, 401, body);
        json_decref(body);
        return;
    }
    throttle_forgive(op, true);
    op_finish(op);
    s2a_worker_refresh_settings();
    expires = s2a_now() + s2a_worker.settings.session_ttl;
    if (s2a_session_issue(s2a_worker.settings.session_secret, expires,
                          s2a_worker.settings.session_epoch, token,
                          sizeof(token))
        != S2A_OK)
    {
        s2a_http_reply_detail(req, 500, "Cannot issue a session");
        return;
    }
    body = json_pack("{s:b, s:s, s:I, s:s, s:b}", "success", 1, "token", token,
                     "expires_at", (json_int_t) expires, "message",
                     "Login successful", "default_password",
                     s2a_worker.settings.admin_password_is_default);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_login(s2a_req_t *req)
{
    uint8_t a[S2A_SHA256_LEN], b[S2A_SHA256_LEN];
    const char *user, *pass;
    json_t *in;
    int64_t wait;
    op_t *op;

    in = s2a_req_json_object(req, true);
    if (in == NULL) {
        return;
    }
    user = field(in, "username");
    pass = field(in, "password");
    if (user == NULL || pass == NULL) {
        json_decref(in);
        s2a_http_reply_detail(req, 400,
                              "username and password are required "
                              "strings of at most 256 bytes");
        return;
    }
    op = op_new(req, OP_LOGIN);
    if (op == NULL) {
        json_decref(in);
        return;
    }
    s2a_worker_refresh_settings();
    s2a_sha256(user, strlen(user), a);
    s2a_sha256(s2a_worker.settings.admin_username,
               strlen(s2a_worker.settings.admin_username), b);
    op->user_ok = s2a_ct_equal(a, b, sizeof(a));
    client_address(req, op->client, sizeof(op->client));
    throttle_key("addr", op->client, op->throttle_key);
    throttle_key("user", s2a_worker.settings.admin_username, op->user_key);
    /* Only the real user name has a row: names that cannot log in
     * anyway do not crowd the table. */
    wait = throttle_reserve(op, op->user_ok);
    if (wait > 0) {
        op_finish(op);
        json_decref(in);
        reply_throttled(req, wait);
        return;
    }
    /* The password is checked even for a wrong user name, so the answer
     * takes as long either way. */
    atomic_fetch_add(&s2a_worker.shm->login_checks, 1);
    op->kdf_job = s2a_kdf_verify(pass, s2a_worker.settings.admin_password_hash,
                                 login_checked, op);
    json_decref(in);
    if (op->kdf_job == 0) {
        op_finish(op);
        s2a_http_reply_detail(req, 503, "Too many logins at once; retry");
    }
}

static void
logout_done(json_t *reply, void *arg)
{
    op_t *op = arg;
    s2a_req_t *req = op->req;
    bool ok = reply != NULL && json_is_true(json_object_get(reply, "ok"));

    op->call = 0;
    op_finish(op);
    if (!ok) {
        s2a_http_reply_detail(req, 503, "Logout could not be recorded");
        return;
    }
    S2A_HTTP_REPLY_LIT(req, 200, "application/json",
                       "{\"success\":true,\"message\":\"Logged out "
                       "successfully\"}");
}

static void
handle_logout(s2a_req_t *req)
{
    const char *h = s2a_req_header(req, "Authorization");
    char nonce[S2A_SESSION_NONCE];
    int64_t expires;
    json_t *msg;
    op_t *op;

    if (strncasecmp(h, "Bearer ", 7) == 0) {
        h += 7;
    }
    if (s2a_session_verify(s2a_worker.settings.session_secret, h,
                           s2a_worker.settings.session_epoch, s2a_now(), nonce,
                           &expires)
        != S2A_OK)
    {
        s2a_http_reply_detail(req, 401, "Invalid or expired token");
        return;
    }
    op = op_new(req, OP_LOGIN);
    if (op == NULL) {
        return;
    }
    msg = json_pack("{s:s, s:s, s:I}", "op", "revoke_session", "nonce", nonce,
                    "expires", (json_int_t) expires);
    op->call = s2a_worker_call_master(msg, logout_done, op);
    json_decref(msg);
    if (op->call == 0) {
        op_finish(op);
        s2a_http_reply_detail(req, 503, "Master unavailable");
    }
}

static void
handle_session(s2a_req_t *req)
{
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack("{s:b, s:s, s:b}", "success", 1, "username",
                     s2a_worker.settings.admin_username, "default_password",
                     s2a_worker.settings.admin_password_is_default);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* ---------------------------------------------------------------------
 * Settings through the master
 */

typedef struct settings_op_s {
    s2a_req_t *req;
    uint64_t call;
    const char *message;
    json_t *extra; /* merged into the success answer */
} settings_op_t;

static void
settings_gone(s2a_req_t *req, void *arg)
{
    settings_op_t *so = arg;

    S2A_UNUSED(req);
    s2a_worker_call_cancel(so->call);
    json_decref(so->extra);
    free(so);
}

static void
settings_done(json_t *reply, void *arg)
{
    settings_op_t *so = arg;
    s2a_req_t *req = so->req;
    const char *err;
    json_t *body;

    req->on_gone = NULL;
    if (reply == NULL) {
        json_decref(so->extra);
        free(so);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    if (!json_is_true(json_object_get(reply, "ok"))) {
        err = json_string_value(json_object_get(reply, "error"));
        s2a_http_reply_detail(req, s2a_worker_failure_status(reply, 400), "%s",
                              err != NULL ? err : "rejected");
        json_decref(so->extra);
        free(so);
        return;
    }
    body = json_pack("{s:b, s:s}", "success", 1, "message", so->message);
    if (so->extra != NULL) {
        json_object_update(body, so->extra);
        json_decref(so->extra);
    }
    free(so);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* A request field and the setting it carries, where the names differ. */
typedef struct field_map_s {
    const char *field, *setting;
} field_map_t;

static const field_map_t setting_fields[] = {
    { "username", "admin_username" },
    { "enabled", "cache_enabled" },
    { "timeout", "cache_timeout" },
    { "base_url", "cache_base_url" },
    { "parse_method", "watermark_parse_method" },
    { "custom_parse_url", "watermark_custom_parse_url" },
    { "custom_parse_token", "watermark_custom_parse_token" },
    { "third_party_url", "watermark_third_party_url" },
};

/* The request field of `setting` on routes other than /api/admin/config. */
static const char *
field_of(const char *setting, bool by_name)
{
    size_t i;

    for (i = 0; !by_name && i < S2A_NELEMS(setting_fields); i++) {
        if (strcmp(setting_fields[i].setting, setting) == 0) {
            return setting_fields[i].field;
        }
    }
    return setting;
}

/*
 * Checks every value against its row here, before the master does the
 * same, so that a refusal can name its field (see reply_param). Answers
 * 400 and returns false on the first bad value.
 */
static bool
values_valid(s2a_req_t *req, json_t *values, bool by_name)
{
    const s2a_setting_t *row;
    const char *key;
    char err[256];
    json_t *v;

    json_object_foreach (values, key, v) {
        row = s2a_setting_find(key);
        if (row == NULL || row->type == S2A_SET_T_EPOCH || !json_is_string(v)) {
            continue;
        }
        if (s2a_setting_parse(row, json_string_value(v), NULL, err, sizeof(err))
            != S2A_OK)
        {
            reply_param(req, field_of(key, by_name), "%s", err);
            return false;
        }
    }
    return true;
}

/*
 * Sends `values` (taken over) to the master; answers `message` and the
 * fields of `extra` (taken over, may be NULL) when done. `by_name`: the
 * request named the settings themselves (/api/admin/config).
 */
static void
apply_settings_as(s2a_req_t *req, json_t *values, const char *message,
                  json_t *extra, bool by_name)
{
    settings_op_t *so;
    json_t *msg;

    if (!values_valid(req, values, by_name)) {
        json_decref(values);
        json_decref(extra);
        return;
    }
    so = calloc(1, sizeof(*so));
    if (so == NULL) {
        json_decref(values);
        json_decref(extra);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    so->req = req;
    so->message = message;
    so->extra = extra;
    msg = json_pack("{s:s, s:o}", "op", "set_settings", "values", values);
    so->call = s2a_worker_call_master(msg, settings_done, so);
    json_decref(msg);
    if (so->call == 0) {
        json_decref(so->extra);
        free(so);
        s2a_http_reply_detail(req, 503, "Master unavailable");
        return;
    }
    req->on_gone = settings_gone;
    req->gone_arg = so;
}

static void
apply_settings_extra(s2a_req_t *req, json_t *values, const char *message,
                     json_t *extra)
{
    apply_settings_as(req, values, message, extra, false);
}

static void
apply_settings(s2a_req_t *req, json_t *values, const char *message)
{
    apply_settings_as(req, values, message, NULL, false);
}

/* ---------------------------------------------------------------------
 * Media cache settings
 */

static void
handle_cache_config_get(s2a_req_t *req)
{
    const char *host = s2a_req_header(req, "Host");
    char effective[320];
    json_t *body;

    s2a_worker_refresh_settings();
    if (s2a_worker.settings.cache_base_url[0] != '\0') {
        snprintf(effective, sizeof(effective), "%s",
                 s2a_worker.settings.cache_base_url);
    } else {
        snprintf(effective, sizeof(effective), "http://%.256s",
                 host != NULL ? host : "localhost");
    }
    body = json_pack("{s:b, s:{s:b, s:i, s:s, s:s}}", "success", 1, "config",
                     "enabled", s2a_worker.settings.cache_enabled, "timeout",
                     s2a_worker.settings.cache_timeout, "base_url",
                     s2a_worker.settings.cache_base_url, "effective_base_url",
                     effective);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_cache_post(s2a_req_t *req, const char *what)
{
    json_t *in = s2a_req_json_object(req, true), *v;
    char buf[300], *end;
    const char *u;
    size_t len;

    if (in == NULL) {
        return;
    }
    if (strcmp(what, "config") == 0) {
        v = json_object_get(in, "timeout");
        if (!json_is_integer(v)) {
            reply_param(req, "timeout", "timeout must be an integer");
        } else {
            snprintf(buf, sizeof(buf), "%lld",
                     (long long) json_integer_value(v));
            apply_settings_extra(req, json_pack("{s:s}", "cache_timeout", buf),
                                 "Cache timeout updated",
                                 json_pack("{s:O}", "timeout", v));
        }
    } else if (strcmp(what, "enabled") == 0) {
        v = json_object_get(in, "enabled");
        if (!json_is_boolean(v)) {
            reply_param(req, "enabled", "enabled must be a boolean");
        } else {
            apply_settings_extra(req,
                                 json_pack("{s:s}", "cache_enabled",
                                           json_is_true(v) ? "1" : "0"),
                                 json_is_true(v) ? "Cache enabled"
                                                 : "Cache disabled",
                                 json_pack("{s:O}", "enabled", v));
        }
    } else {
        u = json_string_value(json_object_get(in, "base_url"));
        if (u == NULL) {
            reply_param(req, "base_url", "base_url must be a string");
        } else {
            /* Trimmed, and without a trailing slash so paths append. */
            while (*u == ' ' || *u == '\t') {
                u++;
            }
            len = strlen(u);
            if (len >= sizeof(buf)) {
                len = sizeof(buf) - 1;
            }
            memcpy(buf, u, len);
            buf[len] = '\0';
            end = buf + len;
            while (end > buf
                   && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '/')) {
                *--end = '\0';
            }
            apply_settings_extra(req, json_pack("{s:s}", "cache_base_url", buf),
                                 "Cache base URL updated",
                                 json_pack("{s:s}", "base_url", buf));
        }
    }
    json_decref(in);
}

static void
password_hashed(bool ok, const char *hash, void *arg)
{
    op_t *op = arg;
    s2a_req_t *req = op->req;
    json_t *values;

    op->kdf_job = 0;
    if (!ok || hash == NULL) {
        op_finish(op);
        s2a_http_reply_detail(req, 500, "Cannot hash the new password");
        return;
    }
    values =
        json_pack("{s:s, s:s, s:s}", "admin_password_hash", hash,
                  "admin_password_is_default", "0", "session_epoch", "bump");
    if (op->username != NULL) {
        json_object_set_new(values, "admin_username",
                            json_string(op->username));
    }
    op_finish(op);
    s2a_log(LOG_NOTICE, 0, "admin password changed; every session ends");
    apply_settings(req, values,
                   "Password updated successfully. Please login again.");
}

static void
old_password_checked(bool ok, const char *hash, void *arg)
{
    op_t *op = arg;
    s2a_req_t *req = op->req;

    S2A_UNUSED(hash);
    op->kdf_job = 0;
    if (!ok) {
        op_finish(op);
        reply_param(req, "old_password", "Old password is incorrect");
        return;
    }
    throttle_forgive(op, false);
    op->kdf_job = s2a_kdf_hash(op->new_password, password_hashed, op);
    if (op->kdf_job == 0) {
        op_finish(op);
        s2a_http_reply_detail(req, 503, "Busy; retry");
    }
}

static void
handle_password(s2a_req_t *req)
{
    const char *old_pw, *new_pw, *user;
    json_t *in;
    int64_t wait;
    op_t *op;

    in = s2a_req_json_object(req, true);
    if (in == NULL) {
        return;
    }
    old_pw = field(in, "old_password");
    new_pw = field(in, "new_password");
    user = field(in, "username");
    if (old_pw == NULL || new_pw == NULL) {
        json_decref(in);
        s2a_http_reply_detail(req, 400,
                              "old_password and new_password are "
                              "required strings of at most 256 bytes");
        return;
    }
    if (strlen(new_pw) < PASSWORD_MIN) {
        json_decref(in);
        reply_param(req, "new_password",
                    "The new password needs at least %d characters",
                    PASSWORD_MIN);
        return;
    }
    if (user != NULL && (user[0] == '\0' || strlen(user) > 63)) {
        json_decref(in);
        reply_param(req, "username", "username must be 1..63 characters");
        return;
    }
    op = op_new(req, OP_PASSWORD);
    if (op == NULL) {
        json_decref(in);
        return;
    }
    client_address(req, op->client, sizeof(op->client));
    throttle_key("addr", op->client, op->throttle_key);
    wait = throttle_reserve(op, false);
    if (wait > 0) {
        op_finish(op);
        json_decref(in);
        reply_throttled(req, wait);
        return;
    }
    op->new_password = strdup(new_pw);
    op->username = user != NULL ? strdup(user) : NULL;
    s2a_worker_refresh_settings();
    atomic_fetch_add(&s2a_worker.shm->login_checks, 1);
    op->kdf_job =
        s2a_kdf_verify(old_pw, s2a_worker.settings.admin_password_hash,
                       old_password_checked, op);
    json_decref(in);
    if (op->new_password == NULL || op->kdf_job == 0) {
        op_finish(op);
        s2a_http_reply_detail(req, 503, "Busy; retry");
    }
}

static void
handle_apikey(s2a_req_t *req)
{
    uint8_t hash[S2A_SHA256_LEN];
    char hex[2 * S2A_SHA256_LEN + 1], stored[sizeof(hex) + 16];
    const char *key, *p;
    json_t *in;

    in = s2a_req_json_object(req, true);
    if (in == NULL) {
        return;
    }
    key = field(in, "new_api_key");
    for (p = key; p != NULL && *p != '\0'; p++) {
        if ((unsigned char) *p <= 0x20 || *p == 0x7f) {
            break;
        }
    }
    if (key == NULL || strlen(key) < 8 || *p != '\0') {
        json_decref(in);
        reply_param(req, "new_api_key",
                    "new_api_key must be 8..256 printable characters "
                    "without spaces");
        return;
    }
    /* Only a keyed hash is stored (the key is derived from secret.key by
     * the master): the key cannot be shown again, and a copy of the
     * database alone does not allow guessing it offline. */
    s2a_worker_refresh_settings();
    s2a_api_key_mac(s2a_worker.settings.api_key_vkey, key, hash);
    s2a_hex(hash, sizeof(hash), hex);
    snprintf(stored, sizeof(stored), "%s%s", S2A_APIKEY_PREFIX, hex);
    json_decref(in);
    apply_settings(req, json_pack("{s:s}", "api_key_sha256", stored),
                   "API key updated");
}

/* Every setting of /api/admin/config, from the settings table. */
static void
handle_config_get(s2a_req_t *req)
{
    s2a_shm_settings_t *s = &s2a_worker.settings;
    const s2a_setting_t *row;
    json_t *body, *v;
    size_t i;

    s2a_worker_refresh_settings();
    body =
        json_pack("{s:s, s:b, s:b, s:b}", "admin_username", s->admin_username,
                  "debug_enabled", s->log_level == LOG_DEBUG, "api_key_set", 1,
                  "default_password", s->admin_password_is_default);
    for (i = 0; i < s2a_nsettings; i++) {
        row = &s2a_settings[i];
        if (row->api != NULL && strcmp(row->api, "/api/admin/config") == 0
            && (v = s2a_setting_to_json(row, s)) != NULL)
        {
            json_object_set_new(body, row->name, v);
        }
    }
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_refresh_config(s2a_req_t *req)
{
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack(
        "{s:b, s:{s:b, s:i, s:i}}", "success", 1, "config",
        "at_auto_refresh_enabled", s2a_worker.settings.at_refresh_enabled,
        "at_refresh_window", s2a_worker.settings.at_refresh_window,
        "quota_refresh_interval", s2a_worker.settings.quota_interval);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_refresh_enabled(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true), *v;

    if (in == NULL) {
        return;
    }
    v = json_object_get(in, "enabled");
    if (!json_is_boolean(v)) {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "enabled must be a boolean");
        return;
    }
    apply_settings(req,
                   json_pack("{s:s}", "at_auto_refresh_enabled",
                             json_is_true(v) ? "1" : "0"),
                   json_is_true(v) ? "AT auto-refresh enabled"
                                   : "AT auto-refresh disabled");
    json_decref(in);
}

/*
 * Any setting of /api/admin/config, typed by its table row; debug_enabled
 * is another way to say log_level "debug". The master validates the
 * values, all or none.
 */
static void
handle_config_post(s2a_req_t *req)
{
    const s2a_setting_t *row;
    json_t *in, *values, *v;
    const char *key;
    char buf[512], err[256];

    in = s2a_req_json_object(req, true);
    if (in == NULL) {
        return;
    }
    values = json_object();
    json_object_foreach (in, key, v) {
        if (strcmp(key, "debug_enabled") == 0) {
            if (!json_is_boolean(v)) {
                reply_param(req, key, "%s must be a boolean", key);
                goto done;
            }
            json_object_set_new(values, "log_level",
                                json_string(json_is_true(v) ? "debug" : ""));
            continue;
        }
        row = s2a_setting_find(key);
        if (row == NULL || row->api == NULL
            || strcmp(row->api, "/api/admin/config") != 0)
        {
            reply_param(req, key, "Unknown setting \"%.64s\"", key);
            goto done;
        }
        if (s2a_setting_from_json(row, v, buf, sizeof(buf), err, sizeof(err))
            != S2A_OK) {
            reply_param(req, key, "%s", err);
            goto done;
        }
        json_object_set_new(values, key, json_string(buf));
    }
    if (json_object_size(values) == 0) {
        s2a_http_reply_detail(req, 400, "No setting given");
        goto done;
    }
    json_decref(in);
    apply_settings_as(req, values, "Configuration updated", NULL, true);
    return;

done:
    json_decref(values);
    json_decref(in);
}

/* ---------------------------------------------------------------------
 * Proxy, watermark-free and generation timeout settings
 */

static void
handle_proxy_get(s2a_req_t *req)
{
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack("{s:b, s:s}", "proxy_enabled",
                     s2a_worker.settings.proxy_enabled, "proxy_url",
                     s2a_worker.settings.proxy_url);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_proxy_post(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true), *en, *url, *values;

    if (in == NULL) {
        return;
    }
    en = json_object_get(in, "proxy_enabled");
    url = json_object_get(in, "proxy_url");
    if (!json_is_boolean(en)
        || (url != NULL && !json_is_null(url) && !json_is_string(url)))
    {
        const char *param = json_is_boolean(en) ? "proxy_url" : "proxy_enabled";

        json_decref(in);
        reply_param(req, param,
                    "proxy_enabled must be a boolean and proxy_url a "
                    "string");
        return;
    }
    values = json_pack("{s:s}", "proxy_enabled", json_is_true(en) ? "1" : "0");
    if (json_is_string(url)) {
        json_object_set(values, "proxy_url", url);
    }
    json_decref(in);
    apply_settings(req, values, "Proxy configuration updated");
}

typedef struct probe_s {
    s2a_req_t *req;
    uint64_t call;
    int64_t started;
} probe_t;

static void
probe_gone(s2a_req_t *req, void *arg)
{
    probe_t *p = arg;

    S2A_UNUSED(req);
    s2a_sora_cancel(p->call);
    free(p);
}

static void
probe_done(const s2a_sora_result_t *r, void *arg)
{
    probe_t *p = arg;
    s2a_req_t *req = p->req;
    json_t *body;
    char msg[320];

    req->on_gone = NULL;
    if (r->status > 0) {
        snprintf(msg, sizeof(msg), "Sora answered HTTP %ld through the proxy",
                 r->status);
    } else {
        snprintf(msg, sizeof(msg), "No answer: %s",
                 r->error_message != NULL ? r->error_message : "unknown");
    }
    body = json_pack("{s:b, s:i, s:I, s:s}", "success", r->status > 0, "status",
                     (int) r->status, "elapsed_ms",
                     (json_int_t) (s2a_mono_ms() - p->started), "message", msg);
    free(p);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* POST /api/proxy/test {"proxy_url"?}: one call to the backend through the
 * given (or the configured) proxy, to see it works before enabling it. */
static void
handle_proxy_test(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true);
    const char *url;
    s2a_sora_call_t c;
    probe_t *p;

    if (in == NULL) {
        return;
    }
    s2a_worker_refresh_settings();
    url = json_string_value(json_object_get(in, "proxy_url"));
    if (url == NULL || url[0] == '\0') {
        url = s2a_worker.settings.proxy_url;
    }
    if (url[0] == '\0') {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "No proxy URL given or configured");
        return;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        json_decref(in);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.path = "/me";
    c.proxy = url;
    c.timeout_ms = 15000;
    p->req = req;
    p->started = s2a_mono_ms();
    p->call = s2a_sora_start(&c, probe_done, p);
    json_decref(in);
    if (p->call == 0) {
        free(p);
        s2a_http_reply_detail(req, 400, "The proxy URL was not accepted");
        return;
    }
    req->on_gone = probe_gone;
    req->gone_arg = p;
}

static void
handle_watermark_get(s2a_req_t *req)
{
    s2a_shm_settings_t *s = &s2a_worker.settings;
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack(
        "{s:b, s:s, s:s, s:s, s:s}", "watermark_free_enabled", s->wm_enabled,
        "parse_method", s->wm_custom ? "custom" : "third_party",
        "custom_parse_url", s->wm_custom_url, "custom_parse_token",
        s->wm_custom_token, "third_party_url", s->wm_third_party_url);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_watermark_post(s2a_req_t *req)
{
    static const struct {
        const char *field, *setting;
    } map[] = {
        { "parse_method", "watermark_parse_method" },
        { "custom_parse_url", "watermark_custom_parse_url" },
        { "custom_parse_token", "watermark_custom_parse_token" },
        { "third_party_url", "watermark_third_party_url" },
    };
    json_t *in = s2a_req_json_object(req, true), *en, *v, *values;
    size_t i;

    if (in == NULL) {
        return;
    }
    en = json_object_get(in, "watermark_free_enabled");
    if (!json_is_boolean(en)) {
        json_decref(in);
        reply_param(req, "watermark_free_enabled",
                    "watermark_free_enabled must be a boolean");
        return;
    }
    values = json_pack("{s:s}", "watermark_free_enabled",
                       json_is_true(en) ? "1" : "0");
    for (i = 0; i < S2A_NELEMS(map); i++) {
        v = json_object_get(in, map[i].field);
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        if (!json_is_string(v)) {
            json_decref(values);
            json_decref(in);
            reply_param(req, map[i].field, "%s must be a string", map[i].field);
            return;
        }
        json_object_set(values, map[i].setting, v);
    }
    json_decref(in);
    apply_settings(req, values, "Watermark-free mode configuration updated");
}

static void
handle_timeout_get(s2a_req_t *req)
{
    json_t *body;

    s2a_worker_refresh_settings();
    body = json_pack("{s:b, s:{s:i, s:i}}", "success", 1, "config",
                     "image_timeout", s2a_worker.settings.image_timeout,
                     "video_timeout", s2a_worker.settings.video_timeout);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_timeout_post(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true), *img, *vid, *values;
    char buf[24];

    if (in == NULL) {
        return;
    }
    img = json_object_get(in, "image_timeout");
    vid = json_object_get(in, "video_timeout");
    if ((img != NULL && !json_is_integer(img))
        || (vid != NULL && !json_is_integer(vid))
        || (img == NULL && vid == NULL))
    {
        const char *param = img != NULL && !json_is_integer(img)
            ? "image_timeout"
            : "video_timeout";

        json_decref(in);
        reply_param(req, param,
                    "image_timeout and/or video_timeout must be integers "
                    "(seconds)");
        return;
    }
    s2a_worker_refresh_settings();
    values = json_object();
    if (img != NULL) {
        snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(img));
        json_object_set_new(values, "image_timeout", json_string(buf));
    }
    if (vid != NULL) {
        snprintf(buf, sizeof(buf), "%lld", (long long) json_integer_value(vid));
        json_object_set_new(values, "video_timeout", json_string(buf));
    }
    apply_settings_extra(
        req, values, "Generation timeout updated",
        json_pack("{s:{s:I, s:I}}", "config", "image_timeout",
                  img != NULL ? json_integer_value(img)
                              : (json_int_t) s2a_worker.settings.image_timeout,
                  "video_timeout",
                  vid != NULL
                      ? json_integer_value(vid)
                      : (json_int_t) s2a_worker.settings.video_timeout));
    json_decref(in);
}

/* ---------------------------------------------------------------------
 * Route entry points: the route table (routes.c) has checked the method
 * and, for all but login, the session.
 */

/* POST /api/login: checks the credentials and issues a session. */
void
s2a_admin_login(s2a_req_t *req)
{
    handle_login(req);
}

/* POST /api/logout: ends the session. */
void
s2a_admin_logout(s2a_req_t *req)
{
    handle_logout(req);
}

/* GET /api/session: describes the session. */
void
s2a_admin_session(s2a_req_t *req)
{
    handle_session(req);
}

/* POST /api/admin/password: changes the admin password. */
void
s2a_admin_password(s2a_req_t *req)
{
    handle_password(req);
}

/* POST /api/admin/apikey: replaces the API key. */
void
s2a_admin_apikey(s2a_req_t *req)
{
    handle_apikey(req);
}

/* GET /api/admin/config: the runtime settings. */
void
s2a_admin_config_get(s2a_req_t *req)
{
    handle_config_get(req);
}

/* POST /api/admin/config: changes runtime settings. */
void
s2a_admin_config_post(s2a_req_t *req)
{
    handle_config_post(req);
}

/* GET /api/proxy/config: the upstream proxy. */
void
s2a_admin_proxy_get(s2a_req_t *req)
{
    handle_proxy_get(req);
}

/* POST /api/proxy/config: sets the upstream proxy. */
void
s2a_admin_proxy_post(s2a_req_t *req)
{
    handle_proxy_post(req);
}

/* POST /api/proxy/test: one call through a proxy. */
void
s2a_admin_proxy_test(s2a_req_t *req)
{
    handle_proxy_test(req);
}

/* GET /api/watermark-free/config. */
void
s2a_admin_watermark_get(s2a_req_t *req)
{
    handle_watermark_get(req);
}

/* POST /api/watermark-free/config. */
void
s2a_admin_watermark_post(s2a_req_t *req)
{
    handle_watermark_post(req);
}

/* GET /api/generation/timeout. */
void
s2a_admin_timeout_get(s2a_req_t *req)
{
    handle_timeout_get(req);
}

/* POST /api/generation/timeout. */
void
s2a_admin_timeout_post(s2a_req_t *req)
{
    handle_timeout_post(req);
}

/* GET /api/cache/config. */
void
s2a_admin_cache_get(s2a_req_t *req)
{
    handle_cache_config_get(req);
}

/* POST /api/cache/config. */
void
s2a_admin_cache_config(s2a_req_t *req)
{
    handle_cache_post(req, "config");
}

/* POST /api/cache/enabled. */
void
s2a_admin_cache_enabled(s2a_req_t *req)
{
    handle_cache_post(req, "enabled");
}

/* POST /api/cache/base-url. */
void
s2a_admin_cache_base_url(s2a_req_t *req)
{
    handle_cache_post(req, "base-url");
}

/* GET /api/token-refresh/config. */
void
s2a_admin_refresh_get(s2a_req_t *req)
{
    handle_refresh_config(req);
}

/* POST /api/token-refresh/enabled. */
void
s2a_admin_refresh_enabled(s2a_req_t *req)
{
    handle_refresh_enabled(req);
}

/*
 * GET /api/models: every model id of the fixed table (common/models.c)
 * with its kind and description, in table order: the ids an API key's
 * "models" allow-list takes. /v1/models needs an API key (and may list
 * only what that key may use); the admin UI needs them all.
 */
void
s2a_admin_models(s2a_req_t *req)
{
    json_t *data = json_array(), *body;
    size_t i;

    for (i = 0; i < s2a_nmodels; i++) {
        json_array_append_new(
            data,
            json_pack("{s:s, s:s, s:s}", "id", s2a_models[i].id, "kind",
                      s2a_models[i].kind == S2A_KIND_VIDEO ? "video" : "image",
                      "description", s2a_models[i].description));
    }
    body = json_pack("{s:s, s:o}", "object", "list", "data", data);
    if (body == NULL) {
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}
