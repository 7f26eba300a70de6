/*
 * settings.c: the runtime settings table and the rules every value obeys
 * (see settings.h). Adding a setting is one row here plus its field in
 * s2a_shm_settings_t and its entry in sora2api.conf(5).
 */
#include "common/settings.h"
#include "common/crypto.h"
#include "common/log.h"

#include <openssl/crypto.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(f) offsetof(s2a_shm_settings_t, f)
#define SZ(f)  sizeof(((s2a_shm_settings_t *) 0)->f)

static const char *const policies[] = { "least_busy", "round_robin", "random",
                                        NULL };
static const char *const parse_methods[] = { "third_party", "custom", NULL };
static const char *const video_modes[] = { "sync", "async", NULL };
static const char *const http_schemes[] = { "http", "https", NULL };
static const char *const proxy_schemes[] = { "http", "https", "socks5",
                                             "socks5h", NULL };

/* A bare SHA-256, as older versions stored it: the database converts it
 * to the keyed form (S2A_SET_T_APIKEY) in the same transaction. */
static int
seed_api_key(const s2a_conf_t *conf, char *out, size_t len)
{
    uint8_t hash[S2A_SHA256_LEN];

    if (len < 2 * S2A_SHA256_LEN + 1) {
        return S2A_ERROR;
    }
    s2a_sha256(conf->api_key, strlen(conf->api_key), hash);
    s2a_hex(hash, sizeof(hash), out);
    return S2A_OK;
}

static int
seed_admin_username(const s2a_conf_t *conf, char *out, size_t len)
{
    return snprintf(out, len, "%s", conf->admin_username) < (int) len
        ? S2A_OK
        : S2A_ERROR;
}

/* Hashing is slow by design: it runs only when the row is missing. */
static int
seed_admin_password(const s2a_conf_t *conf, char *out, size_t len)
{
    return s2a_password_hash(conf->admin_password, out, len);
}

static int
seed_password_is_default(const s2a_conf_t *conf, char *out, size_t len)
{
    snprintf(out, len, "%d", strcmp(conf->admin_password, "admin") == 0);
    return S2A_OK;
}

/* Random, made once and kept, so sessions survive restarts. */
static int
seed_random_key(const s2a_conf_t *conf, char *out, size_t len)
{
    uint8_t key[32];

    S2A_UNUSED(conf);
    if (len < 2 * sizeof(key) + 1
        || s2a_random_bytes(key, sizeof(key)) != S2A_OK) {
        return S2A_ERROR;
    }
    s2a_hex(key, sizeof(key), out);
    return S2A_OK;
}

#define ADMIN_CONFIG "/api/admin/config"

/* clang-format off */
const s2a_setting_t s2a_settings[] = {
    /* Credentials */
    { "api_key_sha256", S2A_SET_T_APIKEY, 0, 0, NULL, NULL, seed_api_key,
      NULL, OFF(api_key_hash), SZ(api_key_hash),
      S2A_SET_SECRET | S2A_SET_REQUIRED, "/api/admin/apikey", "at once",
      NULL, NULL },
    { "admin_username", S2A_SET_T_TEXT, 1, 63, NULL, NULL,
      seed_admin_username, NULL, OFF(admin_username), SZ(admin_username),
      S2A_SET_REQUIRED, "/api/admin/password", "at the next login", NULL,
      NULL },
    { "admin_password_hash", S2A_SET_T_PWHASH, 0, 0, NULL, NULL,
      seed_admin_password, NULL, OFF(admin_password_hash),
      SZ(admin_password_hash), S2A_SET_SECRET | S2A_SET_REQUIRED,
      "/api/admin/password", "at the next login", NULL, NULL },
    { "admin_password_is_default", S2A_SET_T_BOOL, 0, 1, NULL, NULL,
      seed_password_is_default, NULL, OFF(admin_password_is_default),
      SZ(admin_password_is_default), 0, "/api/admin/password", "at once",
      NULL, NULL },
    { "session_secret", S2A_SET_T_HEX256, 0, 0, NULL, NULL, seed_random_key,
      NULL, OFF(session_secret), SZ(session_secret),
      S2A_SET_SECRET | S2A_SET_REQUIRED | S2A_SET_INTERNAL | S2A_SET_SEALED,
      NULL, "never changes", NULL, NULL },
    { "session_epoch", S2A_SET_T_EPOCH, 1, 0xffffffffL, NULL, "1", NULL, NULL,
      OFF(session_epoch), SZ(session_epoch), 0, "/api/admin/password",
      "at once: older sessions end", NULL, NULL },

    /* /api/admin/config */
    { "log_level", S2A_SET_T_LOGLEVEL, 0, 0, NULL, "", NULL, NULL,
      OFF(log_level), SZ(log_level), 0, ADMIN_CONFIG, "at once", NULL,
      "log_level must be error, warn, notice, info, debug or empty "
      "(follow the configuration file)" },
    { "selection_policy", S2A_SET_T_ENUM, 0, 0, policies, "least_busy", NULL,
      NULL, OFF(policy), SZ(policy), 0, ADMIN_CONFIG, "at once", NULL,
      NULL },
    { "error_ban_threshold", S2A_SET_T_INT, 0, 1000, NULL, "3", NULL, NULL,
      OFF(error_ban_threshold), SZ(error_ban_threshold), 0, ADMIN_CONFIG,
      "at the next error", NULL, NULL },
    { "session_ttl", S2A_SET_T_INT, 300, 30L * 86400, NULL, "86400", NULL,
      NULL, OFF(session_ttl), SZ(session_ttl), 0, ADMIN_CONFIG,
      "at the next login", "seconds", NULL },
    { "queue_timeout", S2A_SET_T_INT, 0, 600, NULL, "60", NULL, NULL,
      OFF(queue_timeout), SZ(queue_timeout), 0, ADMIN_CONFIG,
      "to jobs that start waiting", "seconds", NULL },
    { "at_auto_refresh_enabled", S2A_SET_T_BOOL, 0, 1, NULL, "1", NULL, NULL,
      OFF(at_refresh_enabled), SZ(at_refresh_enabled), 0, ADMIN_CONFIG,
      "at the next upkeep sweep", NULL, NULL },
    { "at_refresh_window", S2A_SET_T_INT, 300, 30L * 86400, NULL, "86400",
      NULL, NULL, OFF(at_refresh_window), SZ(at_refresh_window), 0,
      ADMIN_CONFIG, "at the next upkeep sweep", "seconds", NULL },
    { "quota_refresh_interval", S2A_SET_T_INT, 0, 7L * 86400, NULL, "3600",
      NULL, NULL, OFF(quota_interval), SZ(quota_interval), 0, ADMIN_CONFIG,
      "at the next upkeep sweep", "seconds",
      "quota_refresh_interval must be 0 (off) or up to 604800 seconds" },
    { "videos_default_mode", S2A_SET_T_ENUM, 0, 0, video_modes, "sync", NULL,
      NULL, OFF(videos_async), SZ(videos_async), 0, ADMIN_CONFIG,
      "to requests that start", NULL,
      "videos_default_mode must be sync or async" },

    /* /api/cache/config */
    { "cache_enabled", S2A_SET_T_BOOL, 0, 1, NULL, "0", NULL, NULL,
      OFF(cache_enabled), SZ(cache_enabled), 0, "/api/cache/config",
      "to jobs that finish", NULL, NULL },
    { "cache_timeout", S2A_SET_T_INT, 60, 86400, NULL, "600", NULL, NULL,
      OFF(cache_timeout), SZ(cache_timeout), 0, "/api/cache/config",
      "at the next cache sweep", "seconds",
      "Cache timeout must be between 60 seconds and 24 hours "
      "(86400 seconds)" },
    { "cache_base_url", S2A_SET_T_URL, 0, 0, http_schemes, "", NULL, NULL,
      OFF(cache_base_url), SZ(cache_base_url), 0, "/api/cache/config",
      "to jobs that finish", NULL,
      "Base URL must start with http:// or https:// (or be empty to use "
      "the request's host)" },

    /* /api/proxy/config: the URL may carry credentials */
    { "proxy_enabled", S2A_SET_T_BOOL, 0, 1, NULL, "0", NULL, NULL,
      OFF(proxy_enabled), SZ(proxy_enabled), 0, "/api/proxy/config",
      "to the next upstream call", NULL, NULL },
    { "proxy_url", S2A_SET_T_URL, 0, 0, proxy_schemes, "", NULL, NULL,
      OFF(proxy_url), SZ(proxy_url), S2A_SET_SECRET, "/api/proxy/config",
      "to the next upstream call", NULL,
      "proxy_url must be an http, https, socks5 or socks5h URL" },

    /* /api/generation/timeout */
    { "image_timeout", S2A_SET_T_INT, 60, 3600, NULL, "300", NULL, NULL,
      OFF(image_timeout), SZ(image_timeout), 0, "/api/generation/timeout",
      "to jobs that start", "seconds", NULL },
    { "video_timeout", S2A_SET_T_INT, 60, 7200, NULL, "1500", NULL, NULL,
      OFF(video_timeout), SZ(video_timeout), 0, "/api/generation/timeout",
      "to jobs that start", "seconds", NULL },

    /* /api/watermark-free/config */
    { "watermark_free_enabled", S2A_SET_T_BOOL, 0, 1, NULL, "0", NULL, NULL,
      OFF(wm_enabled), SZ(wm_enabled), 0, "/api/watermark-free/config",
      "to jobs that finish", NULL, NULL },
    { "watermark_parse_method", S2A_SET_T_ENUM, 0, 0, parse_methods,
      "third_party", NULL, NULL, OFF(wm_custom), SZ(wm_custom), 0,
      "/api/watermark-free/config", "to jobs that finish", NULL,
      "parse_method must be third_party or custom" },
    { "watermark_custom_parse_url", S2A_SET_T_URL, 0, 0, http_schemes, "",
      NULL, NULL, OFF(wm_custom_url), SZ(wm_custom_url), 0,
      "/api/watermark-free/config", "to jobs that finish", NULL,
      "custom_parse_url must be an http(s) URL" },
    { "watermark_custom_parse_token", S2A_SET_T_TEXT, 0, 255, NULL, "", NULL,
      NULL, OFF(wm_custom_token), SZ(wm_custom_token), S2A_SET_SECRET,
      "/api/watermark-free/config", "to jobs that finish", NULL,
      "custom_parse_token must be printable and at most 255 bytes" },
    { "watermark_third_party_url", S2A_SET_T_URL, 0, 0, http_schemes,
      "https://oscdn2.dyysy.com/MP4/{post_id}.mp4", NULL, "{post_id}",
      OFF(wm_third_party_url), SZ(wm_third_party_url), S2A_SET_NONEMPTY,
      "/api/watermark-free/config", "to jobs that finish", NULL,
      "third_party_url must be an http(s) URL containing {post_id}" },
};
/* clang-format on */

const size_t s2a_nsettings = S2A_NELEMS(s2a_settings);

const s2a_setting_t *
s2a_setting_find(const char *name)
{
    size_t i;

    for (i = 0; i < s2a_nsettings; i++) {
        if (strcmp(s2a_settings[i].name, name) == 0) {
            return &s2a_settings[i];
        }
    }
    return NULL;
}

static bool
parse_long(const char *value, long *out)
{
    char *end;
    long v;

    if (value[0] == '\0' || value[0] == ' ' || value[0] == '+') {
        return false;
    }
    v = strtol(value, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool
is_printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

static int
enum_index(const char *const *values, const char *value)
{
    int i;

    for (i = 0; values[i] != NULL; i++) {
        if (strcmp(values[i], value) == 0) {
            return i;
        }
    }
    return -1;
}

/* The name of index `i`, or the first name when out of range. */
static const char *
enum_name(const char *const *values, int32_t i)
{
    int32_t n;

    for (n = 0; values[n] != NULL; n++) {
        if (n == i) {
            return values[n];
        }
    }
    return values[0];
}

static bool
url_ok(const s2a_setting_t *s, const char *value)
{
    size_t i, n;

    if (value[0] == '\0') {
        return !(s->flags & S2A_SET_NONEMPTY);
    }
    if (strlen(value) >= s->size || strpbrk(value, " \t\r\n") != NULL
        || !is_printable(value)
        || (s->must_contain != NULL && strstr(value, s->must_contain) == NULL))
    {
        return false;
    }
    for (i = 0; s->values[i] != NULL; i++) {
        n = strlen(s->values[i]);
        if (strncmp(value, s->values[i], n) == 0
            && strncmp(value + n, "://", 3) == 0 && value[n + 3] != '\0')
        {
            return true;
        }
    }
    return false;
}

static bool
unhex256(const char *hex, uint8_t out[32])
{
    int i, hi, lo;

    if (strlen(hex) != 64) {
        return false;
    }
    for (i = 0; i < 32; i++) {
        hi = hex[2 * i];
        lo = hex[2 * i + 1];
        hi = hi >= '0' && hi <= '9'  ? hi - '0'
            : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10
                                     : -1;
        lo = lo >= '0' && lo <= '9'  ? lo - '0'
            : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10
                                     : -1;
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t) (hi << 4 | lo);
    }
    return true;
}

/* The generic words for a refused value of `s`. */
static void
refusal(const s2a_setting_t *s, char *err, size_t errlen)
{
    size_t i, n;

    if (s->refusal != NULL) {
        snprintf(err, errlen, "%s", s->refusal);
        return;
    }
    switch (s->type) {
    case S2A_SET_T_INT:
        snprintf(err, errlen, "%s must be %ld..%ld%s%s", s->name, s->min,
                 s->max, s->unit != NULL ? " " : "",
                 s->unit != NULL ? s->unit : "");
        break;
    case S2A_SET_T_BOOL:
        snprintf(err, errlen, "%s must be 0 or 1", s->name);
        break;
    case S2A_SET_T_ENUM:
        n = (size_t) snprintf(err, errlen, "%s must be", s->name);
        for (i = 0; s->values[i] != NULL && n < errlen; i++) {
            n += (size_t) snprintf(err + n, errlen - n, "%s %s",
                                   i == 0                         ? ""
                                       : s->values[i + 1] == NULL ? " or"
                                                                  : ",",
                                   s->values[i]);
        }
        break;
    case S2A_SET_T_TEXT:
        snprintf(err, errlen, "%s must be %ld..%ld printable characters",
                 s->name, s->min, s->max);
        break;
    case S2A_SET_T_URL:
        snprintf(err, errlen, "%s must be a URL", s->name);
        break;
    case S2A_SET_T_HEX256:
        snprintf(err, errlen, "%s must be 64 hex digits", s->name);
        break;
    case S2A_SET_T_LOGLEVEL:
        snprintf(err, errlen, "%s must be a log level or empty", s->name);
        break;
    case S2A_SET_T_PWHASH:
        snprintf(err, errlen, "%s is not a password hash", s->name);
        break;
    case S2A_SET_T_EPOCH:
        snprintf(err, errlen, "%s can only be bumped", s->name);
        break;
    case S2A_SET_T_APIKEY:
        snprintf(err, errlen, "%s must be %s and 64 hex digits", s->name,
                 S2A_APIKEY_PREFIX);
        break;
    }
}

int
s2a_setting_parse(const s2a_setting_t *s, const char *value,
                  s2a_shm_settings_t *out, char *err, size_t errlen)
{
    char *field = out != NULL ? (char *) out + s->off : NULL;
    int32_t i32 = 0;
    uint32_t u32;
    uint8_t key[32];
    size_t len = strlen(value);
    long v = 0;
    int idx;

    switch (s->type) {
    case S2A_SET_T_INT:
        if (!parse_long(value, &v) || v < s->min || v > s->max) {
            goto refused;
        }
        i32 = (int32_t) v;
        break;
    case S2A_SET_T_BOOL:
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
            goto refused;
        }
        i32 = value[0] == '1';
        break;
    case S2A_SET_T_ENUM:
        idx = enum_index(s->values, value);
        if (idx < 0) {
            goto refused;
        }
        i32 = idx;
        break;
    case S2A_SET_T_LOGLEVEL:
        i32 = value[0] == '\0' ? -1 : s2a_log_level_parse(value);
        if (value[0] != '\0' && i32 < LOG_ERR) {
            goto refused;
        }
        break;
    case S2A_SET_T_TEXT:
        if ((long) len < s->min || (long) len > s->max || len >= s->size
            || !is_printable(value))
        {
            goto refused;
        }
        break;
    case S2A_SET_T_URL:
        if (!url_ok(s, value)) {
            goto refused;
        }
        break;
    case S2A_SET_T_HEX256:
        if (!unhex256(value, key)) {
            goto refused;
        }
        break;
    case S2A_SET_T_APIKEY:
        if (strncmp(value, S2A_APIKEY_PREFIX, strlen(S2A_APIKEY_PREFIX)) != 0
            || !unhex256(value + strlen(S2A_APIKEY_PREFIX), key))
        {
            goto refused;
        }
        break;
    case S2A_SET_T_PWHASH:
        if (strncmp(value, "pbkdf2-sha256$", 14) != 0 || len >= s->size
            || !is_printable(value))
        {
            goto refused;
        }
        break;
    case S2A_SET_T_EPOCH:
        if (!parse_long(value, &v) || v < s->min || v > s->max) {
            goto refused;
        }
        break;
    }
    if (field == NULL) {
        return S2A_OK;
    }
    switch (s->type) {
    case S2A_SET_T_TEXT:
    case S2A_SET_T_URL:
    case S2A_SET_T_PWHASH:
        memset(field, 0, s->size);
        memcpy(field, value, len);
        break;
    case S2A_SET_T_HEX256:
    case S2A_SET_T_APIKEY:
        memcpy(field, key, sizeof(key));
        OPENSSL_cleanse(key, sizeof(key));
        break;
    case S2A_SET_T_EPOCH:
        u32 = (uint32_t) v;
        memcpy(field, &u32, sizeof(u32));
        break;
    default: memcpy(field, &i32, sizeof(i32)); break;
    }
    return S2A_OK;

refused:
    refusal(s, err, errlen);
    return S2A_ERROR;
}

bool
s2a_setting_is_bump(const s2a_setting_t *s, const char *value)
{
    return s->type == S2A_SET_T_EPOCH && strcmp(value, "bump") == 0;
}

json_t *
s2a_setting_to_json(const s2a_setting_t *s, const s2a_shm_settings_t *set)
{
    const char *field = (const char *) set + s->off;
    int32_t i32 = 0;

    if (s->flags & S2A_SET_SECRET) {
        return NULL;
    }
    if (s->size == sizeof(i32)) {
        memcpy(&i32, field, sizeof(i32));
    }
    switch (s->type) {
    case S2A_SET_T_INT: return json_integer(i32);
    case S2A_SET_T_BOOL: return json_boolean(i32 != 0);
    case S2A_SET_T_ENUM: return json_string(enum_name(s->values, i32));
    case S2A_SET_T_LOGLEVEL:
        return json_string(i32 >= 0 ? s2a_log_level_name(i32) : "");
    case S2A_SET_T_TEXT:
    case S2A_SET_T_URL: return json_stringn(field, strnlen(field, s->size));
    case S2A_SET_T_EPOCH: return json_integer((json_int_t) (uint32_t) i32);
    default: return NULL;
    }
}

int
s2a_setting_from_json(const s2a_setting_t *s, const json_t *v, char *buf,
                      size_t len, char *err, size_t errlen)
{
    switch (s->type) {
    case S2A_SET_T_INT:
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "%s must be an integer", s->name);
            return S2A_ERROR;
        }
        snprintf(buf, len, "%lld", (long long) json_integer_value(v));
        return S2A_OK;
    case S2A_SET_T_BOOL:
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "%s must be a boolean", s->name);
            return S2A_ERROR;
        }
        snprintf(buf, len, "%d", json_is_true(v) ? 1 : 0);
        return S2A_OK;
    default:
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s must be a string", s->name);
            return S2A_ERROR;
        }
        if (json_string_length(v) >= len) {
            refusal(s, err, errlen);
            return S2A_ERROR;
        }
        memcpy(buf, json_string_value(v), json_string_length(v) + 1);
        return S2A_OK;
    }
}

void
s2a_settings_defaults(s2a_shm_settings_t *out)
{
    char err[8];
    size_t i;

    memset(out, 0, sizeof(*out));
    for (i = 0; i < s2a_nsettings; i++) {
        if (s2a_settings[i].def != NULL) {
            (void) s2a_setting_parse(&s2a_settings[i], s2a_settings[i].def, out,
                                     err, sizeof(err));
        }
    }
}

void
s2a_settings_dump(void *fp)
{
    const s2a_setting_t *s;
    size_t i;

    for (i = 0; i < s2a_nsettings; i++) {
        s = &s2a_settings[i];
        fprintf(fp, "runtime.%s = %s\t# runtime setting, %s; %s\n", s->name,
                s->def != NULL        ? s->def
                    : s->seed != NULL ? "(made at the first start)"
                                      : "",
                s->api != NULL ? s->api : "not settable", s->applies);
    }
}
