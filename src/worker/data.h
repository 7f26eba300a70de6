/*
 * data.h: the Sora data endpoints of the OpenAI API (API-key auth):
 * GET /v1/stats, /v1/invite-codes, /v1/profiles/{username},
 * /v1/users/{user_id}/feed, /v1/characters/search, /v1/feed and
 * /v1/tokens/{id}/profile-feed (docs/data-endpoints.md).
 *
 * Each upstream route is one read through an account picked without a
 * lease (or the one `token_id` names), behind a short per-worker answer
 * cache that also coalesces identical requests in flight. The parts that
 * read untrusted input (query and path values, upstream answers) are
 * pure functions, declared here for the unit tests and the fuzz target.
 */
#ifndef S2A_DATA_H
#define S2A_DATA_H

#include "worker/http.h"

#include <jansson.h>

/* Longest decoded value of a username, user id or search text, and of a
 * cursor; longer ones are refused with 400. */
#define S2A_DATA_SUBJECT_MAX 128
#define S2A_DATA_CURSOR_MAX  512
#define S2A_DATA_LIMIT_MAX   100

typedef enum {
    S2A_DATA_PROFILE = 0, /* /v1/profiles/{username}: E28 */
    S2A_DATA_USER_FEED,   /* /v1/users/{user_id}/feed: E29 */
    S2A_DATA_SEARCH,      /* /v1/characters/search: E31 */
    S2A_DATA_FEED,        /* /v1/feed: E32 */
    S2A_DATA_TOKEN_FEED,  /* /v1/tokens/{id}/profile-feed: E30 */
    S2A_DATA_INVITE,      /* /v1/invite-codes: E3 */
    S2A_DATA_NKINDS
} s2a_data_kind_t;

/* One request, parsed and with its defaults applied. */
typedef struct s2a_data_query_s {
    s2a_data_kind_t kind;
    int64_t token_id; /* the account asked for; 0: any */
    int limit;
    char subject[S2A_DATA_SUBJECT_MAX + 1]; /* username, user id, text */
    char cursor[S2A_DATA_CURSOR_MAX + 1];   /* "" for the first page */
    const char *cut;                        /* feed: a static string */
    const char *intent;                     /* search: a static string */
} s2a_data_query_t;

/* Why a request or an upstream answer was refused. */
typedef struct s2a_data_error_s {
    int status;
    const char *type;  /* OpenAI error type */
    const char *code;  /* static */
    const char *param; /* static or NULL */
    char message[512];
} s2a_data_error_t;

/*
 * Parses the request of a `kind` route: the query values (req->query,
 * raw) and the path values (from req->raw_path, so an encoded '/' stays
 * inside its segment; for the token feed, req->path_id). Returns S2A_OK
 * with `q` filled, or S2A_ERROR with `err` saying what to answer (400
 * for a bad value, 404 for a path no route serves). Reads nothing but
 * req->query, req->raw_path, req->path_id and req->method_name.
 */
int s2a_data_parse(s2a_data_kind_t kind, s2a_req_t *req, s2a_data_query_t *q,
                   s2a_data_error_t *err);

/*
 * Writes the backend path (with its query, every value escaped by
 * libcurl) of `q` into `out`. Returns S2A_ERROR when it does not fit in
 * `outlen` bytes.
 */
int s2a_data_upstream_path(const s2a_data_query_t *q, char *out, size_t outlen);

/*
 * The client's answer to `q` from a 2xx upstream JSON answer `up`
 * (borrowed): a new reference, or NULL with `err` filled when the
 * answer has not the shape the route needs. Not for S2A_DATA_INVITE
 * (see s2a_data_invite_render).
 */
json_t *s2a_data_render(const s2a_data_query_t *q, json_t *up,
                        s2a_data_error_t *err);

/*
 * Reads an E3 invite/mine answer: returns the uses left (total_count -
 * redeemed_count, at least 0) and sets *code to its invite_code
 * (borrowed), or returns -1 when the answer has no code or counts.
 */
json_int_t s2a_data_invite_left(json_t *mine, const char **code);

/* Route handlers (the API key is already checked). */
void s2a_data_stats(s2a_req_t *req);
void s2a_data_invite_codes(s2a_req_t *req);
void s2a_data_profile(s2a_req_t *req);
void s2a_data_user_feed(s2a_req_t *req);
void s2a_data_search(s2a_req_t *req);
void s2a_data_feed(s2a_req_t *req);
void s2a_data_token_feed(s2a_req_t *req);

/* Cancels the calls in flight and frees the cache (worker exit, after
 * the HTTP server is gone and before s2a_sora_cleanup). */
void s2a_data_cleanup(void);

#endif /* S2A_DATA_H */
