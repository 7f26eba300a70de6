/*
 * conf.c: INI parser and the key table for sora2api.conf.
 *
 * Syntax: "[section]" lines, "key = value" lines, blank lines and comments
 * starting with '#' or ';'. A value may be double-quoted to keep leading or
 * trailing blanks or a '#'; otherwise " #" starts a trailing comment.
 * Unknown sections and keys, duplicates and bad values are errors.
 */
#include "common/conf.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define OFF(f) offsetof(s2a_conf_t, f)
#define SZ(f)  sizeof(((s2a_conf_t *) 0)->f)

const s2a_conf_key_t s2a_conf_keys[] = {
    { "server", "listen", S2A_CONF_T_LISTEN, OFF(listen), 0, 0, 0,
      S2A_CONF_RELOAD, "0.0.0.0:8000",
      "addresses to listen on (host:port, [v6]:port), blank-separated" },
    { "server", "workers", S2A_CONF_T_WORKERS, OFF(workers), 0, 1,
      S2A_CONF_MAX_WORKERS, S2A_CONF_RELOAD, "auto",
      "number of worker processes, or auto for one per CPU" },
    { "server", "user", S2A_CONF_T_STRING, OFF(user), SZ(user), 0, 0, 0, "",
      "user to switch to after binding when started as root" },
    { "server", "pidfile", S2A_CONF_T_PATH, OFF(pidfile), SZ(pidfile), 0, 0, 0,
      "var/sora2apid.pid", "pid file of the master" },
    { "server", "backlog", S2A_CONF_T_INT, OFF(backlog), 0, 16, 65535,
      S2A_CONF_RELOAD, "511", "listen(2) backlog of each socket" },
    { "server", "shutdown_timeout", S2A_CONF_T_SECONDS, OFF(shutdown_timeout),
      0, 0, 86400, S2A_CONF_RELOAD, "30",
      "seconds a graceful stop or reload waits for in-flight requests" },
    { "server", "client_timeout", S2A_CONF_T_SECONDS, OFF(client_timeout), 0, 1,
      3600, S2A_CONF_RELOAD, "30",
      "seconds a client may stay silent while sending or keep-alive idle" },
    { "server", "keepalive_interval", S2A_CONF_T_SECONDS,
      OFF(keepalive_interval), 0, 1, 3600, S2A_CONF_RELOAD, "15",
      "seconds a stream may stay silent before a keep-alive comment" },
    { "server", "max_body_size", S2A_CONF_T_SIZE, OFF(max_body_size), 0, 1024,
      1L << 30, S2A_CONF_RELOAD, "64m", "largest request body accepted" },
    { "server", "max_header_size", S2A_CONF_T_SIZE, OFF(max_header_size), 0,
      1024, 1L << 20, S2A_CONF_RELOAD, "16k",
      "largest request line plus headers accepted" },
    { "server", "max_inflight_body", S2A_CONF_T_SIZE, OFF(max_inflight_body), 0,
      1024, 1L << 40, S2A_CONF_RELOAD, "256m",
      "request body bytes one worker buffers at once; new bodies over it "
      "get 503" },
    { "server", "admin_cors_origins", S2A_CONF_T_STRING,
      OFF(admin_cors_origins), SZ(admin_cors_origins), 0, 0, S2A_CONF_RELOAD,
      "", "blank-separated exact origins allowed to call /api/* (CORS)" },
    { "server", "trusted_proxies", S2A_CONF_T_CIDRS, OFF(trusted_proxies), 0, 0,
      0, S2A_CONF_RELOAD, "",
      "proxies (addresses or a/n networks, blank-separated) whose "
      "X-Forwarded-For header names the client of an admin login" },

    { "paths", "data_dir", S2A_CONF_T_PATH, OFF(data_dir), SZ(data_dir), 0, 0,
      0, "var/data", "directory of the SQLite database and key files" },
    { "paths", "cache_dir", S2A_CONF_T_PATH, OFF(cache_dir), SZ(cache_dir), 0,
      0, 0, "var/cache", "directory of cached media served at /tmp/" },
    { "paths", "admin_ui_dir", S2A_CONF_T_PATH, OFF(admin_ui_dir),
      SZ(admin_ui_dir), 0, 0, S2A_CONF_RELOAD, "admin-ui",
      "directory of the admin web UI served at /" },

    { "log", "error_log", S2A_CONF_T_PATH, OFF(error_log), SZ(error_log), 0, 0,
      S2A_CONF_RELOAD, "stderr", "error log file, or stderr" },
    { "log", "access_log", S2A_CONF_T_PATH, OFF(access_log), SZ(access_log), 0,
      0, S2A_CONF_RELOAD, "stderr", "access log file, stderr, or off" },
    { "log", "level", S2A_CONF_T_LOGLEVEL, OFF(log_level), 0, 0, 0,
      S2A_CONF_RELOAD, "info",
      "error, warn, notice, info or debug; a log_level runtime setting "
      "overrides it" },

    { "upstream", "base_url", S2A_CONF_T_URL, OFF(base_url), SZ(base_url), 0, 0,
      S2A_CONF_RELOAD, "https://sora.chatgpt.com/backend",
      "Sora backend base URL" },
    { "upstream", "session_url", S2A_CONF_T_URL, OFF(session_url),
      SZ(session_url), 0, 0, S2A_CONF_RELOAD,
      "https://sora.chatgpt.com/api/auth/session",
      "session endpoint exchanging a session token for an access token" },
    { "upstream", "oauth_url", S2A_CONF_T_URL, OFF(oauth_url), SZ(oauth_url), 0,
      0, S2A_CONF_RELOAD, "https://auth.openai.com/oauth/token",
      "OAuth endpoint exchanging a refresh token for an access token" },
    { "upstream", "timeout", S2A_CONF_T_SECONDS, OFF(upstream_timeout), 0, 1,
      3600, S2A_CONF_RELOAD, "120", "seconds one upstream call may take" },
    { "upstream", "connect_timeout", S2A_CONF_T_SECONDS,
      OFF(upstream_connect_timeout), 0, 1, 600, S2A_CONF_RELOAD, "10",
      "seconds an upstream connection (TCP and TLS) may take to set up" },
    { "upstream", "read_timeout", S2A_CONF_T_SECONDS,
      OFF(upstream_read_timeout), 0, 1, 3600, S2A_CONF_RELOAD, "30",
      "seconds an upstream call may go without a byte sent or received, "
      "from the first byte of the answer to the last" },
    { "upstream", "submit_budget", S2A_CONF_T_SECONDS, OFF(submit_budget), 0, 1,
      3600, S2A_CONF_RELOAD, "60",
      "seconds all upload and submit attempts of one generation may take "
      "together" },
    { "upstream", "poll_backoff_max", S2A_CONF_T_SECONDS, OFF(poll_backoff_max),
      0, 1, 3600, S2A_CONF_RELOAD, "30",
      "longest pause, in seconds, between polls of an account whose polls "
      "keep failing" },
    { "upstream", "poll_interval_ms", S2A_CONF_T_INT, OFF(poll_interval_ms), 0,
      20, 60000, S2A_CONF_RELOAD, "2500",
      "milliseconds between two polls of one account's running tasks" },
    { "upstream", "submit_attempts", S2A_CONF_T_INT, OFF(submit_attempts), 0, 1,
      10, S2A_CONF_RELOAD, "3",
      "accounts one generation may be submitted to when Sora refuses it" },
    { "upstream", "fetch_private_urls", S2A_CONF_T_BOOL, OFF(fetch_private), 0,
      0, 0, S2A_CONF_RELOAD, "no",
      "whether image URLs from clients may point at private addresses" },
    { "upstream", "data_cache_ttl_ms", S2A_CONF_T_INT, OFF(data_cache_ttl_ms),
      0, 0, 60000, S2A_CONF_RELOAD, "3000",
      "milliseconds a worker keeps an answer of the Sora data endpoints "
      "(profiles, feeds, search, invite codes); 0 keeps none" },
    { "upstream", "data_cache_entries", S2A_CONF_T_INT, OFF(data_cache_entries),
      0, 0, 100000, S2A_CONF_RELOAD, "1024",
      "answers of the Sora data endpoints one worker keeps at most" },
    { "upstream", "data_cache_size", S2A_CONF_T_SIZE, OFF(data_cache_size), 0,
      0, 1L << 30, S2A_CONF_RELOAD, "16m",
      "bytes of answers of the Sora data endpoints one worker keeps at most" },

    { "webhooks", "allow_private", S2A_CONF_T_BOOL, OFF(webhooks_allow_private),
      0, 0, 0, S2A_CONF_RELOAD, "no",
      "whether webhook receivers may be at private addresses" },
    { "webhooks", "retry_base", S2A_CONF_T_SECONDS, OFF(webhooks_retry_base), 0,
      1, 3600, S2A_CONF_RELOAD, "5",
      "seconds before the first retry of a failed webhook delivery (it "
      "doubles per attempt, at most an hour)" },

    { "characters", "delete_attempts", S2A_CONF_T_INT,
      OFF(character_delete_attempts), 0, 1, 100, S2A_CONF_RELOAD, "10",
      "upstream delete attempts a character the gateway owes a delete gets "
      "before it is given up" },
    { "characters", "delete_retry_base", S2A_CONF_T_SECONDS,
      OFF(character_delete_retry_base), 0, 0, 3600, S2A_CONF_RELOAD, "60",
      "seconds before the second attempt of an upstream character delete "
      "(it doubles per attempt, at most an hour)" },

    { "limits", "max_tokens", S2A_CONF_T_INT, OFF(max_tokens), 0, 1, 1000000, 0,
      "4096", "size of the shared-memory account table" },
    { "limits", "max_leases", S2A_CONF_T_INT, OFF(max_leases), 0, 16, 10000000,
      0, "65536", "size of the shared-memory lease table" },
    { "limits", "job_slots", S2A_CONF_T_INT, OFF(job_slots), 0, 0, 1000000, 0,
      "4096",
      "slots of the shared-memory job table that answers video retrieves, "
      "0 for none" },
    { "limits", "max_api_keys", S2A_CONF_T_INT, OFF(max_api_keys), 0, 1,
      1000000, 0, "4096", "size of the shared-memory API key table" },

    { "metrics", "allow", S2A_CONF_T_CIDRS, OFF(metrics_allow), 0, 0, 0,
      S2A_CONF_RELOAD, "127.0.0.0/8 ::1",
      "clients (addresses or a/n networks) that read /metrics without a "
      "credential" },
    { "metrics", "metrics_token", S2A_CONF_T_STRING, OFF(metrics_token),
      SZ(metrics_token), 0, 0, S2A_CONF_RELOAD | S2A_CONF_SECRET, "",
      "bearer token that reads /metrics from anywhere, \"\" for none" },

    { "defaults", "api_key", S2A_CONF_T_STRING, OFF(api_key), SZ(api_key), 0, 0,
      S2A_CONF_SEED | S2A_CONF_SECRET, "han1234",
      "API key for /v1/* (first start only)" },
    { "defaults", "admin_username", S2A_CONF_T_STRING, OFF(admin_username),
      SZ(admin_username), 0, 0, S2A_CONF_SEED, "admin",
      "admin UI user name (first start only)" },
    { "defaults", "admin_password", S2A_CONF_T_STRING, OFF(admin_password),
      SZ(admin_password), 0, 0, S2A_CONF_SEED | S2A_CONF_SECRET, "admin",
      "admin UI password (first start only)" },
};

const size_t s2a_conf_nkeys = S2A_NELEMS(s2a_conf_keys);

/* A section is known when a key of the table lives in it. */
static bool
section_known(const char *section)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(s2a_conf_keys); i++) {
        if (strcmp(s2a_conf_keys[i].section, section) == 0) {
            return true;
        }
    }
    return false;
}

const s2a_conf_key_t *
s2a_conf_find(const char *section, const char *name)
{
    size_t i;

    for (i = 0; i < s2a_conf_nkeys; i++) {
        if (strcmp(s2a_conf_keys[i].section, section) == 0
            && strcmp(s2a_conf_keys[i].name, name) == 0)
        {
            return &s2a_conf_keys[i];
        }
    }
    return NULL;
}

static int
parse_long(const char *s, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return S2A_ERROR;
    }
    *out = v;
    return S2A_OK;
}

/* "64m", "16k", "1g" or plain bytes. */
static int
parse_size(const char *s, long *out)
{
    char buf[32];
    size_t len = strlen(s);
    long mult = 1, v;

    if (len == 0 || len >= sizeof(buf)) {
        return S2A_ERROR;
    }
    memcpy(buf, s, len + 1);
    switch (tolower((unsigned char) buf[len - 1])) {
    case 'k': mult = 1024L; break;
    case 'm': mult = 1024L * 1024; break;
    case 'g': mult = 1024L * 1024 * 1024; break;
    default: break;
    }
    if (mult != 1) {
        buf[len - 1] = '\0';
    }
    if (parse_long(buf, &v) != S2A_OK || v < 0 || v > (1L << 40) / mult) {
        return S2A_ERROR;
    }
    *out = v * mult;
    return S2A_OK;
}

/* "30", "30s", "5m", "1h". */
static int
parse_seconds(const char *s, long *out)
{
    char buf[32];
    size_t len = strlen(s);
    long mult = 1, v;

    if (len == 0 || len >= sizeof(buf)) {
        return S2A_ERROR;
    }
    memcpy(buf, s, len + 1);
    switch (buf[len - 1]) {
    case 's':
        mult = 1;
        buf[len - 1] = '\0';
        break;
    case 'm':
        mult = 60;
        buf[len - 1] = '\0';
        break;
    case 'h':
        mult = 3600;
        buf[len - 1] = '\0';
        break;
    default: break;
    }
    if (parse_long(buf, &v) != S2A_OK || v < 0 || v > 1000000) {
        return S2A_ERROR;
    }
    *out = v * mult;
    return S2A_OK;
}

static int
parse_listen_one(const char *tok, s2a_listen_t *l, char *err, size_t errlen)
{
    char host[64];
    const char *colon, *port_s;
    size_t hlen;
    long port;
    unsigned char addr[16];

    if (tok[0] == '[') {
        const char *close = strchr(tok, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "bad listen address \"%s\"", tok);
            return S2A_ERROR;
        }
        hlen = (size_t) (close - tok - 1);
        if (hlen >= sizeof(l->host)) {
            goto bad;
        }
        memcpy(host, tok + 1, hlen);
        host[hlen] = '\0';
        port_s = close + 2;
        l->family = AF_INET6;
    } else {
        colon = strrchr(tok, ':');
        if (colon == NULL) {
            /* A bare port listens on every IPv4 address. */
            snprintf(host, sizeof(host), "0.0.0.0");
            port_s = tok;
        } else {
            hlen = (size_t) (colon - tok);
            if (hlen >= sizeof(l->host)) {
                goto bad;
            }
            memcpy(host, tok, hlen);
            host[hlen] = '\0';
            port_s = colon + 1;
        }
        if (strcmp(host, "localhost") == 0) {
            snprintf(host, sizeof(host), "127.0.0.1");
        }
        if (host[0] == '*' && host[1] == '\0') {
            snprintf(host, sizeof(host), "0.0.0.0");
        }
        l->family = AF_INET;
    }
    if (inet_pton(l->family, host, addr) != 1) {
        snprintf(err, errlen,
                 "bad listen address \"%s\": host must be a numeric IPv4 "
                 "address or a bracketed IPv6 address",
                 tok);
        return S2A_ERROR;
    }
    if (parse_long(port_s, &port) != S2A_OK || port < 0 || port > 65535) {
        snprintf(err, errlen, "bad port in listen address \"%s\"", tok);
        return S2A_ERROR;
    }
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = (int) port;
    return S2A_OK;

bad:
    snprintf(err, errlen, "bad listen address \"%s\"", tok);
    return S2A_ERROR;
}

/* One address or network "a", "a/n" into `c`. */
static int
parse_cidr_one(const char *tok, s2a_cidr_t *c)
{
    char host[64], *slash, *end;
    long n;
    int max;

    if (snprintf(host, sizeof(host), "%s", tok) >= (int) sizeof(host)) {
        return S2A_ERROR;
    }
    memset(c, 0, sizeof(*c));
    slash = strchr(host, '/');
    if (slash != NULL) {
        *slash++ = '\0';
    }
    if (inet_pton(AF_INET, host, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        return S2A_ERROR;
    }
    c->prefix = max;
    if (slash != NULL) {
        if (*slash < '0' || *slash > '9') {
            return S2A_ERROR;
        }
        n = strtol(slash, &end, 10);
        if (*end != '\0' || n < 0 || n > max) {
            return S2A_ERROR;
        }
        c->prefix = (int) n;
    }
    return S2A_OK;
}

static int
parse_cidrs(const s2a_conf_key_t *key, s2a_cidrs_t *list, const char *value,
            char *err, size_t errlen)
{
    char buf[2048], *tok, *save = NULL;
    int n = 0;

    if (snprintf(buf, sizeof(buf), "%s", value) >= (int) sizeof(buf)) {
        snprintf(err, errlen, "%s value too long", key->name);
        return S2A_ERROR;
    }
    for (tok = strtok_r(buf, " \t,", &save); tok != NULL;
         tok = strtok_r(NULL, " \t,", &save))
    {
        if (n == S2A_CONF_MAX_PROXIES) {
            snprintf(err, errlen, "%s: more than %d addresses", key->name,
                     S2A_CONF_MAX_PROXIES);
            return S2A_ERROR;
        }
        if (parse_cidr_one(tok, &list->nets[n]) != S2A_OK) {
            snprintf(err, errlen,
                     "%s: bad address \"%s\": want a numeric address or "
                     "address/prefix",
                     key->name, tok);
            return S2A_ERROR;
        }
        n++;
    }
    list->n = n;
    return S2A_OK;
}

static bool
cidr_has(const s2a_cidr_t *c, const uint8_t *addr)
{
    int bytes = c->prefix / 8, bits = c->prefix % 8;
    uint8_t mask;

    if (memcmp(c->addr, addr, (size_t) bytes) != 0) {
        return false;
    }
    if (bits == 0) {
        return true;
    }
    mask = (uint8_t) (0xff << (8 - bits));
    return (c->addr[bytes] & mask) == (addr[bytes] & mask);
}

bool
s2a_conf_is_trusted_proxy(const s2a_conf_t *conf, const char *addr)
{
    return s2a_cidrs_has(&conf->trusted_proxies, addr);
}

/* See conf.h. */
bool
s2a_cidrs_has(const s2a_cidrs_t *list, const char *addr)
{
    static const uint8_t mapped[12] = {
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
    };
    uint8_t a6[16], a4[4];
    bool v4 = false, v6 = false;
    int i;

    if (addr == NULL || list->n == 0) {
        return false;
    }
    if (inet_pton(AF_INET, addr, a4) == 1) {
        v4 = true;
    } else if (inet_pton(AF_INET6, addr, a6) == 1) {
        v6 = true;
        if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
            memcpy(a4, a6 + 12, 4);
            v4 = true;
        }
    }
    for (i = 0; i < list->n; i++) {
        const s2a_cidr_t *c = &list->nets[i];
        if ((c->family == AF_INET && v4 && cidr_has(c, a4))
            || (c->family == AF_INET6 && v6 && cidr_has(c, a6)))
        {
            return true;
        }
    }
    return false;
}

static int
parse_listen(s2a_conf_t *conf, const char *value, char *err, size_t errlen)
{
    char buf[1024];
    char *save = NULL, *tok;
    int n = 0, i;

    if (strlen(value) >= sizeof(buf)) {
        snprintf(err, errlen, "listen value too long");
        return S2A_ERROR;
    }
    snprintf(buf, sizeof(buf), "%s", value);
    for (tok = strtok_r(buf, " \t,", &save); tok != NULL;
         tok = strtok_r(NULL, " \t,", &save))
    {
        if (n == S2A_CONF_MAX_LISTEN) {
            snprintf(err, errlen, "more than %d listen addresses",
                     S2A_CONF_MAX_LISTEN);
            return S2A_ERROR;
        }
        if (parse_listen_one(tok, &conf->listen[n], err, errlen) != S2A_OK) {
            return S2A_ERROR;
        }
        for (i = 0; i < n; i++) {
            if (conf->listen[i].port == conf->listen[n].port
                && strcmp(conf->listen[i].host, conf->listen[n].host) == 0)
            {
                snprintf(err, errlen, "listen address \"%s\" given twice", tok);
                return S2A_ERROR;
            }
        }
        n++;
    }
    if (n == 0) {
        snprintf(err, errlen, "listen needs at least one address");
        return S2A_ERROR;
    }
    conf->n_listen = n;
    return S2A_OK;
}

static int
cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    if (n < 1) {
        return 1;
    }
    return n > S2A_CONF_MAX_WORKERS ? S2A_CONF_MAX_WORKERS : (int) n;
}

/* The directory the daemon started in: relative paths (the -c file and
 * paths inside it) keep meaning the same after -d changes to "/". */
static char base_dir[PATH_MAX];

int
s2a_conf_init_base_dir(void)
{
    return getcwd(base_dir, sizeof(base_dir)) == NULL ? S2A_ERROR : S2A_OK;
}

static int
absolute_path(const char *value, char *out, size_t outlen)
{
    int n;

    if (base_dir[0] == '\0' && s2a_conf_init_base_dir() != S2A_OK) {
        return S2A_ERROR;
    }
    if (value[0] == '/' || strcmp(value, "stderr") == 0
        || strcmp(value, "off") == 0 || value[0] == '\0')
    {
        n = snprintf(out, outlen, "%s", value);
    } else {
        n = snprintf(out, outlen, "%s/%s", base_dir, value);
    }
    return (n < 0 || (size_t) n >= outlen) ? S2A_ERROR : S2A_OK;
}

int
s2a_conf_absolute(const char *path, char *out, size_t outlen)
{
    return absolute_path(path, out, outlen);
}

int
s2a_conf_set(s2a_conf_t *conf, const s2a_conf_key_t *key, const char *value,
             char *err, size_t errlen)
{
    char *field = (char *) conf + key->offset;
    long v;
    int lvl;

    switch (key->type) {
    case S2A_CONF_T_STRING:
        if (strlen(value) >= key->size) {
            snprintf(err, errlen, "%s is longer than %zu bytes", key->name,
                     key->size - 1);
            return S2A_ERROR;
        }
        snprintf(field, key->size, "%s", value);
        return S2A_OK;

    case S2A_CONF_T_PATH:
        if (value[0] == '\0') {
            snprintf(err, errlen, "%s must not be empty", key->name);
            return S2A_ERROR;
        }
        if (absolute_path(value, field, key->size) != S2A_OK) {
            snprintf(err, errlen, "%s: path too long", key->name);
            return S2A_ERROR;
        }
        return S2A_OK;

    case S2A_CONF_T_URL:
        if (strncmp(value, "http://", 7) != 0
            && strncmp(value, "https://", 8) != 0) {
            snprintf(err, errlen, "%s must be an http:// or https:// URL",
                     key->name);
            return S2A_ERROR;
        }
        if (strlen(value) >= key->size) {
            snprintf(err, errlen, "%s is too long", key->name);
            return S2A_ERROR;
        }
        snprintf(field, key->size, "%s", value);
        /* No trailing slash, so paths append cleanly. */
        v = (long) strlen(field);
        while (v > 8 && field[v - 1] == '/') {
            field[--v] = '\0';
        }
        return S2A_OK;

    case S2A_CONF_T_INT:
    case S2A_CONF_T_SIZE:
    case S2A_CONF_T_SECONDS:
        if ((key->type == S2A_CONF_T_INT && parse_long(value, &v) != S2A_OK)
            || (key->type == S2A_CONF_T_SIZE && parse_size(value, &v) != S2A_OK)
            || (key->type == S2A_CONF_T_SECONDS
                && parse_seconds(value, &v) != S2A_OK))
        {
            snprintf(err, errlen, "%s: \"%s\" is not a valid %s", key->name,
                     value,
                     key->type == S2A_CONF_T_SIZE          ? "size"
                         : key->type == S2A_CONF_T_SECONDS ? "duration"
                                                           : "number");
            return S2A_ERROR;
        }
        if (v < key->min || v > key->max) {
            snprintf(err, errlen, "%s must be between %ld and %ld", key->name,
                     key->min, key->max);
            return S2A_ERROR;
        }
        if (key->type == S2A_CONF_T_SIZE) {
            *(long *) (void *) field = v;
        } else {
            *(int *) (void *) field = (int) v;
        }
        return S2A_OK;

    case S2A_CONF_T_LOGLEVEL:
        lvl = s2a_log_level_parse(value);
        if (lvl < LOG_ERR) {
            snprintf(err, errlen,
                     "level must be error, warn, notice, info or debug");
            return S2A_ERROR;
        }
        *(int *) (void *) field = lvl;
        return S2A_OK;

    case S2A_CONF_T_LISTEN: return parse_listen(conf, value, err, errlen);

    case S2A_CONF_T_CIDRS:
        return parse_cidrs(key, (s2a_cidrs_t *) (void *) field, value, err,
                           errlen);

    case S2A_CONF_T_BOOL:
        if (strcmp(value, "yes") == 0 || strcmp(value, "on") == 0
            || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
        {
            *(int *) (void *) field = 1;
        } else if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0
                   || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
        {
            *(int *) (void *) field = 0;
        } else {
            snprintf(err, errlen, "%s must be yes or no", key->name);
            return S2A_ERROR;
        }
        return S2A_OK;

    case S2A_CONF_T_WORKERS:
        if (strcmp(value, "auto") == 0) {
            conf->workers_auto = 1;
            conf->workers = cpu_count();
            return S2A_OK;
        }
        if (parse_long(value, &v) != S2A_OK || v < key->min || v > key->max) {
            snprintf(err, errlen, "workers must be auto or 1..%d",
                     S2A_CONF_MAX_WORKERS);
            return S2A_ERROR;
        }
        conf->workers_auto = 0;
        conf->workers = (int) v;
        return S2A_OK;
    }
    snprintf(err, errlen, "internal error: unknown key type");
    return S2A_ERROR;
}

int
s2a_conf_defaults(s2a_conf_t *conf, char *err, size_t errlen)
{
    size_t i;

    memset(conf, 0, sizeof(*conf));
    for (i = 0; i < s2a_conf_nkeys; i++) {
        if (s2a_conf_set(conf, &s2a_conf_keys[i], s2a_conf_keys[i].def, err,
                         errlen)
            != S2A_OK)
        {
            return S2A_ERROR;
        }
    }
    return S2A_OK;
}

static char *
trim(char *s)
{
    char *end;

    while (isspace((unsigned char) *s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char) end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* Strips a trailing comment or the quotes of a quoted value. */
static int
unquote_value(char *v, char *err, size_t errlen)
{
    char *p;
    size_t len;

    if (v[0] == '"') {
        len = strlen(v);
        p = strchr(v + 1, '"');
        if (p == NULL) {
            snprintf(err, errlen, "unterminated quoted value");
            return S2A_ERROR;
        }
        *p = '\0';
        p = trim(p + 1);
        if (*p != '\0' && *p != '#' && *p != ';') {
            snprintf(err, errlen, "text after closing quote");
            return S2A_ERROR;
        }
        memmove(v, v + 1, len);
        return S2A_OK;
    }
    for (p = v; *p != '\0'; p++) {
        if ((*p == '#' || *p == ';') && p > v && isspace((unsigned char) p[-1]))
        {
            *p = '\0';
            break;
        }
    }
    p = trim(v);
    memmove(v, p, strlen(p) + 1);
    return S2A_OK;
}

int
s2a_conf_load(s2a_conf_t *conf, const char *path, char *err, size_t errlen)
{
    char line[4096], section[64] = "", msg[512];
    unsigned char seen[S2A_NELEMS(s2a_conf_keys)];
    const s2a_conf_key_t *key;
    FILE *fp;
    int lineno = 0, rc = S2A_ERROR;
    char *p, *eq, *name, *value;

    if (s2a_conf_defaults(conf, err, errlen) != S2A_OK) {
        return S2A_ERROR;
    }
    memset(seen, 0, sizeof(seen));
    if (absolute_path(path, conf->path, sizeof(conf->path)) != S2A_OK) {
        snprintf(err, errlen, "%s: path too long", path);
        return S2A_ERROR;
    }
    fp = fopen(conf->path, "r");
    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return S2A_ERROR;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(fp)) {
            snprintf(msg, sizeof(msg), "line too long");
            goto bad;
        }
        p = trim(line);
        if (*p == '\0' || *p == '#' || *p == ';') {
            continue;
        }
        if (*p == '[') {
            char *close = strchr(p, ']');
            if (close == NULL || trim(close + 1)[0] != '\0') {
                snprintf(msg, sizeof(msg), "bad section header");
                goto bad;
            }
            *close = '\0';
            snprintf(section, sizeof(section), "%s", trim(p + 1));
            if (!section_known(section)) {
                snprintf(msg, sizeof(msg), "unknown section [%.40s]", section);
                goto bad;
            }
            continue;
        }
        eq = strchr(p, '=');
        if (eq == NULL) {
            snprintf(msg, sizeof(msg), "expected key = value");
            goto bad;
        }
        *eq = '\0';
        name = trim(p);
        value = trim(eq + 1);
        if (section[0] == '\0') {
            snprintf(msg, sizeof(msg), "key \"%.40s\" outside a section", name);
            goto bad;
        }
        key = s2a_conf_find(section, name);
        if (key == NULL) {
            snprintf(msg, sizeof(msg), "unknown key \"%.40s\" in [%s]", name,
                     section);
            goto bad;
        }
        if (seen[key - s2a_conf_keys]) {
            snprintf(msg, sizeof(msg), "duplicate key \"%s\" in [%s]", name,
                     section);
            goto bad;
        }
        seen[key - s2a_conf_keys] = 1;
        if (unquote_value(value, msg, sizeof(msg)) != S2A_OK
            || s2a_conf_set(conf, key, value, msg, sizeof(msg)) != S2A_OK)
        {
            goto bad;
        }
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto done;
    }
    rc = S2A_OK;
    goto done;

bad:
    snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
done:
    fclose(fp);
    return rc;
}

void
s2a_conf_dump_keys(void *fp)
{
    size_t i;
    const s2a_conf_key_t *k;

    for (i = 0; i < s2a_conf_nkeys; i++) {
        k = &s2a_conf_keys[i];
        fprintf((FILE *) fp, "%s.%s = %s\t# %s%s\n", k->section, k->name,
                k->def,
                (k->flags & S2A_CONF_SEED)         ? "seed, first start only"
                    : (k->flags & S2A_CONF_RELOAD) ? "reloads on SIGHUP"
                                                   : "restart needed",
                "");
    }
}

const char *
s2a_listen_str(const s2a_listen_t *l, char *buf, size_t len)
{
    if (l->family == AF_INET6) {
        snprintf(buf, len, "[%s]:%d", l->host, l->port);
    } else {
        snprintf(buf, len, "%s:%d", l->host, l->port);
    }
    return buf;
}

bool
s2a_conf_listen_equal(const s2a_conf_t *a, const s2a_conf_t *b)
{
    int i;

    if (a->n_listen != b->n_listen) {
        return false;
    }
    for (i = 0; i < a->n_listen; i++) {
        if (a->listen[i].port != b->listen[i].port
            || strcmp(a->listen[i].host, b->listen[i].host) != 0)
        {
            return false;
        }
    }
    return true;
}
