/*
 * conf.h: the INI configuration file (sora2api.conf(5)).
 *
 * One key table drives parsing, defaults, `sora2apid -t`, `sora2apid -k`
 * and the documentation check. A load builds a complete s2a_conf_t; the
 * caller swaps it in only when the whole file validated, so a bad reload
 * leaves the running configuration untouched.
 */
#ifndef S2A_CONF_H
#define S2A_CONF_H

#include "common/core.h"

#include <limits.h>
#include <sys/socket.h>

#define S2A_CONF_MAX_LISTEN  16
#define S2A_CONF_MAX_WORKERS 64
#define S2A_CONF_STR         256

/* Key flags. */
#define S2A_CONF_RELOAD 0x01 /* SIGHUP applies a changed value */
#define S2A_CONF_SEED   0x02 /* seeds a runtime setting on first start */
#define S2A_CONF_SECRET 0x04 /* a secret: never logged */

typedef struct s2a_listen_s {
    char host[64]; /* numeric address as written, no brackets */
    int port;
    int family; /* AF_INET or AF_INET6 */
} s2a_listen_t;

/* A network: `prefix` leading bits of `addr` (IPv4 in the first 4). */
#define S2A_CONF_MAX_PROXIES 32
typedef struct s2a_cidr_s {
    int family; /* AF_INET or AF_INET6 */
    int prefix;
    uint8_t addr[16];
} s2a_cidr_t;

/* A list of networks (a S2A_CONF_T_CIDRS value). */
typedef struct s2a_cidrs_s {
    s2a_cidr_t nets[S2A_CONF_MAX_PROXIES];
    int n;
} s2a_cidrs_t;

typedef struct s2a_conf_s {
    char path[PATH_MAX]; /* file loaded, "" for embedded defaults */

    /* [server] */
    s2a_listen_t listen[S2A_CONF_MAX_LISTEN];
    int n_listen;
    int workers; /* resolved: "auto" becomes the CPU count */
    int workers_auto;
    char user[64];
    char pidfile[PATH_MAX];
    int backlog;
    /* seconds of stream silence before an SSE keep-alive comment */
    int keepalive_interval;
    int shutdown_timeout;   /* seconds */
    int client_timeout;     /* seconds: read, write and keep-alive idle */
    long max_body_size;     /* bytes */
    long max_header_size;   /* bytes */
    long max_inflight_body; /* bytes of request bodies one worker holds */
    /* blank-separated origins allowed to call the admin API (CORS) */
    char admin_cors_origins[1024];
    /* peers whose X-Forwarded-For names the client (admin login) */
    s2a_cidrs_t trusted_proxies;

    /* [paths] */
    char data_dir[PATH_MAX];
    char cache_dir[PATH_MAX];
    char admin_ui_dir[PATH_MAX];

    /* [log] */
    char error_log[PATH_MAX];
    char access_log[PATH_MAX]; /* "off" disables */
    int log_level;

    /* [upstream] */
    char base_url[S2A_CONF_STR];
    char session_url[S2A_CONF_STR];
    char oauth_url[S2A_CONF_STR];
    int upstream_timeout;         /* seconds */
    int upstream_connect_timeout; /* seconds: TCP and TLS handshake */
    int upstream_read_timeout;    /* seconds without a byte moving */
    int submit_budget;            /* seconds for all submit attempts of a job */
    int poll_backoff_max;         /* seconds: longest pause after poll errors */
    int poll_interval_ms;         /* between two polls of one token's tasks */
    int submit_attempts;          /* tokens one generation may be tried on */
    int fetch_private; /* client URLs may point at private addresses */
    /* the answer cache of the Sora data endpoints (worker/data.c) */
    int data_cache_ttl_ms;  /* ms a Sora data answer is kept, 0: never */
    int data_cache_entries; /* data answers one worker keeps */
    long data_cache_size;   /* bytes of data answers one worker keeps */

    /* [webhooks] */
    int webhooks_allow_private; /* receivers may be at private addresses */
    int webhooks_retry_base;    /* seconds before the first retry */

    /* [characters] (master/orphans.c) */
    int character_delete_attempts;   /* upstream delete attempts at most */
    int character_delete_retry_base; /* seconds before the first retry */

    /* [limits] */
    int max_tokens;
    int max_leases;
    int job_slots; /* live job table slots, 0: no table */
    int max_api_keys;

    /* [metrics] */
    s2a_cidrs_t metrics_allow;        /* read /metrics without a credential */
    char metrics_token[S2A_CONF_STR]; /* "" for none */

    /* [defaults]: seeds for runtime settings, used on first start only */
    char api_key[S2A_CONF_STR];
    char admin_username[S2A_CONF_STR];
    char admin_password[S2A_CONF_STR];
} s2a_conf_t;

typedef enum {
    S2A_CONF_T_STRING = 0,
    S2A_CONF_T_PATH,
    S2A_CONF_T_URL,
    S2A_CONF_T_INT,
    S2A_CONF_T_SIZE,
    S2A_CONF_T_SECONDS,
    S2A_CONF_T_LOGLEVEL,
    S2A_CONF_T_LISTEN,
    S2A_CONF_T_WORKERS,
    S2A_CONF_T_BOOL, /* yes/no, on/off, true/false, 1/0 */
    S2A_CONF_T_CIDRS /* addresses or networks (a/n), blank-separated */
} s2a_conf_type_t;

typedef struct s2a_conf_key_s {
    const char *section;
    const char *name;
    s2a_conf_type_t type;
    size_t offset;
    size_t size;   /* buffer size for strings */
    long min, max; /* numeric bounds */
    unsigned flags;
    const char *def; /* default as it would be written */
    const char *help;
} s2a_conf_key_t;

extern const s2a_conf_key_t s2a_conf_keys[];
extern const size_t s2a_conf_nkeys;

/*
 * Fills `conf` with the embedded defaults (relative paths resolved against
 * the current directory). Returns S2A_OK or S2A_ERROR with `err` set.
 */
int s2a_conf_defaults(s2a_conf_t *conf, char *err, size_t errlen);

/*
 * Loads `path` over the defaults. On error returns S2A_ERROR and writes
 * "file:line: message" into `err`; `conf` is then unspecified.
 */
int s2a_conf_load(s2a_conf_t *conf, const char *path, char *err, size_t errlen);

/*
 * Remembers the current directory as the base of relative paths. Called
 * once at start-up, before anything can change the directory.
 */
int s2a_conf_init_base_dir(void);

/* `path` made absolute against the start-up directory. */
int s2a_conf_absolute(const char *path, char *out, size_t outlen);

/* Parses one value of `key` into `conf` (used by the loader and tests). */
int s2a_conf_set(s2a_conf_t *conf, const s2a_conf_key_t *key, const char *value,
                 char *err, size_t errlen);

const s2a_conf_key_t *s2a_conf_find(const char *section, const char *name);

/* Prints every key as "section.name = default  # flags" to `fp`. */
void s2a_conf_dump_keys(void *fp);

/*
 * True when the numeric address `addr` (IPv4, IPv6 or IPv4-mapped IPv6)
 * lies in one of the `trusted_proxies` networks of `conf`.
 */
bool s2a_conf_is_trusted_proxy(const s2a_conf_t *conf, const char *addr);

/* True when the numeric address `addr` lies in one of the networks of
 * `list` (an IPv4-mapped IPv6 address matches IPv4 networks too). */
bool s2a_cidrs_has(const s2a_cidrs_t *list, const char *addr);

/* Formats a listen address as host:port ([v6]:port). */
const char *s2a_listen_str(const s2a_listen_t *l, char *buf, size_t len);

/* True when two listen sets are equal (same addresses, same order). */
bool s2a_conf_listen_equal(const s2a_conf_t *a, const s2a_conf_t *b);

#endif /* S2A_CONF_H */
