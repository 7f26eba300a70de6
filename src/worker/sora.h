/*
 * sora.h: calls to the Sora backend and its auth endpoints, on top of
 * upstream.c: the header set of the protocol, URL building from the
 * configured bases, JSON decoding and the upstream error fields.
 */
#ifndef S2A_SORA_H
#define S2A_SORA_H

#include "common/core.h"

#include "worker/upstream.h"

#include <jansson.h>

typedef struct s2a_sora_result_s {
    long status;               /* 0: no answer (transport error) */
    json_t *json;              /* decoded body or NULL (borrowed) */
    const char *body;          /* raw body (borrowed) */
    const char *error_code;    /* error.code or NULL */
    const char *error_message; /* error.message, transport error, or a
                                    description of the status */
} s2a_sora_result_t;

typedef void (*s2a_sora_done_pt)(const s2a_sora_result_t *r, void *arg);

typedef enum {
    S2A_SORA_BACKEND = 0, /* [upstream] base_url + path */
    S2A_SORA_SESSION,     /* [upstream] session_url (path ignored) */
    S2A_SORA_OAUTH,       /* [upstream] oauth_url (path ignored) */
    S2A_SORA_URL          /* `path` is a whole URL (parse servers) */
} s2a_sora_host_t;

typedef struct s2a_sora_call_s {
    s2a_sora_host_t host;
    const char *method;
    const char *path;                 /* "/me", ... for the backend */
    const char *at;                   /* bearer access token or NULL */
    const char *cookie;               /* Cookie header value or NULL */
    json_t *body;                     /* JSON body (borrowed) or NULL */
    const char *proxy;                /* proxy URL or NULL */
    long timeout_ms;                  /* 0: the configured default */
    bool sentinel;                    /* generation and publish calls */
    const s2a_upstream_part_t *parts; /* multipart body (uploads) */
    int nparts;
} s2a_sora_call_t;

/*
 * Starts `call`. Returns a call id (for s2a_sora_cancel), 0 when it
 * could not start (then `done` is not called).
 */
uint64_t s2a_sora_start(const s2a_sora_call_t *call, s2a_sora_done_pt done,
                        void *arg);

/*
 * The two token exchanges: a session token at the session endpoint (its
 * answer carries accessToken), a refresh token at the OAuth endpoint
 * (access_token, a rotated refresh_token, expires_in). 0 when they could
 * not start.
 */
uint64_t s2a_sora_session_exchange(const char *st, const char *proxy,
                                   s2a_sora_done_pt done, void *arg);
uint64_t s2a_sora_refresh_exchange(const char *rt, const char *client_id,
                                   const char *proxy, s2a_sora_done_pt done,
                                   void *arg);

/*
 * Token columns from a /nf/check answer (remaining videos, cooldown when
 * none is left) or NULL when it has no count; from a
 * /billing/subscriptions answer (plan type, title, end). New references.
 */
json_t *s2a_sora_quota_fields(json_t *check, int64_t now);
json_t *s2a_sora_plan_fields(json_t *subscriptions);

/* Stops a call; its callback will not run. */
void s2a_sora_cancel(uint64_t id);

/* Forgets calls still in flight (at exit, before s2a_upstream_cleanup). */
void s2a_sora_cleanup(void);

/* True when the result is an HTTP 2xx with a JSON body. */
bool s2a_sora_ok(const s2a_sora_result_t *r);

#endif /* S2A_SORA_H */
