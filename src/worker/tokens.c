/*
 * tokens.c: /api/tokens routes: add, batch add, update, state, test,
 * import, export, conversions. Reads and writes go to the master (the
 * single SQLite writer, which also republishes the shm table); calls to
 * Sora run on the worker's upstream client.
 */
#include "worker/tokens.h"
#include "common/crypto.h"
#include "common/keyspec.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/onboard.h"
#include "worker/sora.h"
#include "worker/tokbatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One token request in progress; freed when answered or abandoned. */
typedef struct job_s {
    s2a_req_t *req;
    uint64_t call; /* master call in flight */
    uint64_t sora; /* upstream call in flight */
    s2a_onboard_t *ob;
    int64_t id;
    char sha256[65];
    json_t *fields; /* token columns to store */
    json_t *extra;  /* request-specific data */
} job_t;

static void
job_free(job_t *job)
{
    json_decref(job->fields);
    json_decref(job->extra);
    free(job);
}

static void
job_gone(s2a_req_t *req, void *arg)
{
    job_t *job = arg;

    S2A_UNUSED(req);
    if (job->call != 0) {
        s2a_worker_call_cancel(job->call);
    }
    if (job->sora != 0) {
        s2a_sora_cancel(job->sora);
    }
    if (job->ob != NULL) {
        s2a_onboard_cancel(job->ob);
    }
    job_free(job);
}

static job_t *
job_new(s2a_req_t *req)
{
    job_t *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        s2a_http_reply_detail(req, 503, "Out of memory");
        return NULL;
    }
    job->req = req;
    req->on_gone = job_gone;
    req->gone_arg = job;
    return job;
}

/* Detaches the job from its request; the caller answers right after. */
static s2a_req_t *
job_end(job_t *job)
{
    s2a_req_t *req = job->req;

    req->on_gone = NULL;
    job_free(job);
    return req;
}

static void fail(job_t *job, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fail(job_t *job, int status, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    s2a_req_t *req;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    req = job_end(job);
    s2a_http_reply_detail(req, status, "%s", msg);
}

static bool
ask_master(job_t *job, json_t *msg, s2a_call_done_pt done)
{
    job->call = s2a_worker_call_master(msg, done, job);
    json_decref(msg);
    if (job->call == 0) {
        fail(job, 503, "Master unavailable");
        return false;
    }
    return true;
}

static bool
reply_ok(json_t *reply)
{
    return reply != NULL && json_is_true(json_object_get(reply, "ok"));
}

static const char *
reply_code(json_t *reply)
{
    const char *c = json_string_value(json_object_get(reply, "code"));

    return c != NULL ? c : "";
}

static void
sha256_hex(const char *s, char out[65])
{
    uint8_t h[S2A_SHA256_LEN];

    s2a_sha256(s, strlen(s), h);
    s2a_hex(h, sizeof(h), out);
}

/* ---------------------------------------------------------------------
 * Request validation: the fields a client may set
 */

typedef struct field_rule_s {
    const char *name;
    char type; /* s string, b boolean, i integer */
} field_rule_t;

static const field_rule_t settable[] = {
    { "st", 's' },
    { "rt", 's' },
    { "client_id", 's' },
    { "remark", 's' },
    { "proxy_url", 's' },
    { "image_enabled", 'b' },
    { "video_enabled", 'b' },
    { "image_concurrency", 'i' },
    { "video_concurrency", 'i' },
};

/*
 * Copies the settable fields of `in` into `out`, checking types. Unknown
 * fields are ignored (clients send UI state along); null means unchanged
 * for updates. Returns false after answering 400.
 */
static bool
take_fields(job_t *job, json_t *in, json_t *out)
{
    size_t i;
    json_t *v;
    const char *s;

    for (i = 0; i < S2A_NELEMS(settable); i++) {
        v = json_object_get(in, settable[i].name);
        if (v == NULL || json_is_null(v)) {
            continue;
        }
        switch (settable[i].type) {
        case 's':
            if (!json_is_string(v) || strlen(json_string_value(v)) > 8192) {
                fail(job, 400, "%s must be a string", settable[i].name);
                return false;
            }
            s = json_string_value(v);
            if (strcmp(settable[i].name, "proxy_url") == 0 && s[0] != '\0'
                && strncmp(s, "http://", 7) != 0
                && strncmp(s, "https://", 8) != 0
                && strncmp(s, "socks5://", 9) != 0
                && strncmp(s, "socks5h://", 10) != 0)
            {
                fail(job, 400,
                     "proxy_url must be an http, https, socks5 or "
                     "socks5h URL");
                return false;
            }
            /* An empty string clears the field. */
            json_object_set_new(out, settable[i].name,
                                s[0] == '\0' ? json_null() : json_string(s));
            break;
        case 'b':
            if (!json_is_boolean(v)) {
                fail(job, 400, "%s must be a boolean", settable[i].name);
                return false;
            }
            json_object_set(out, settable[i].name, v);
            break;
        default:
            if (!json_is_integer(v) || json_integer_value(v) < -1
                || json_integer_value(v) > 10000)
            {
                fail(job, 400,
                     "%s must be an integer from -1 to 10000 (-1 "
                     "or 0: unlimited)",
                     settable[i].name);
                return false;
            }
            json_object_set(out, settable[i].name, v);
            break;
        }
    }
    /* The token group API keys bound to it route to (docs/api-keys.md);
     * "" clears it. Stored as token_group. */
    v = json_object_get(in, "group");
    if (v != NULL && !json_is_null(v)) {
        s = json_is_string(v) ? json_string_value(v) : NULL;
        if (s == NULL || (s[0] != '\0' && !s2a_keyspec_group_ok(s))) {
            fail(job, 400,
                 "group must be 1..%d characters of A-Z a-z 0-9 . _ -, or "
                 "\"\" for none",
                 S2A_KEY_GROUP_MAX);
            return false;
        }
        json_object_set_new(out, "token_group",
                            s[0] == '\0' ? json_null() : json_string(s));
    }
    return true;
}

/* Why `at` is not a usable access token (NULL when it is); its claims
 * go to `claims`. */
static const char *
access_token_problem(const char *at, s2a_jwt_claims_t *claims)
{
    const char *p;

    for (p = at; *p != '\0'; p++) {
        if ((unsigned char) *p <= 0x20 || *p == 0x7f) {
            return "The access token contains blanks or control characters";
        }
    }
    if (strlen(at) >= S2A_SHM_AT_MAX || s2a_jwt_decode(at, claims) != S2A_OK) {
        return "Invalid token: not a JWT access token";
    }
    if (claims->exp != 0 && claims->exp <= s2a_now()) {
        return "Token expired: the access token's exp has passed";
    }
    return NULL;
}

/* The columns an access token gives: itself, its expiry, its e-mail and
 * (unless `out` has one) its client id. */
static void
access_token_fields(const char *at, const s2a_jwt_claims_t *claims, json_t *out)
{
    json_object_set_new(out, "token", json_string(at));
    json_object_set_new(out, "expiry_time",
                        claims->exp != 0 ? json_integer(claims->exp)
                                         : json_null());
    if (claims->email[0] != '\0') {
        json_object_set_new(out, "email", json_string(claims->email));
    }
    if (claims->client_id[0] != '\0'
        && json_object_get(out, "client_id") == NULL) {
        json_object_set_new(out, "client_id", json_string(claims->client_id));
    }
}

/* Decodes an AT into fields; answers 400 and returns false if it is not
 * a usable access token. */
static bool
take_access_token(job_t *job, const char *at, json_t *out)
{
    s2a_jwt_claims_t claims;
    const char *why = access_token_problem(at, &claims);

    if (why != NULL) {
        fail(job, 400, "%s", why);
        return false;
    }
    access_token_fields(at, &claims, out);
    sha256_hex(at, job->sha256);
    return true;
}

/* ---------------------------------------------------------------------
 * GET /api/tokens
 */

/* A token with jobs in flight, as copied out of the shared table. */
typedef struct busy_s {
    int64_t id;
    int32_t inflight[S2A_KIND_COUNT];
} busy_t;

static int
busy_cmp(const void *a, const void *b)
{
    int64_t x = ((const busy_t *) a)->id, y = ((const busy_t *) b)->id;

    return x < y ? -1 : x > y;
}

/*
 * Adds image_inflight and video_inflight (the jobs each token runs now,
 * from the shared table) to every row of `tokens`. Only the tokens that
 * have some are copied, under the lock; the rows are matched outside it.
 */
static void
add_inflight(json_t *tokens)
{
    s2a_shm_token_t *t = s2a_shm_tokens(s2a_worker.shm);
    busy_t *busy, key, *hit;
    size_t n = 0, i;
    uint32_t slot;
    json_t *row;

    busy = malloc((size_t) s2a_worker.shm->max_tokens * sizeof(*busy) + 1);
    if (busy != NULL && s2a_shm_lock(s2a_worker.shm) == S2A_OK) {
        for (slot = 0; slot < s2a_worker.shm->token_high; slot++) {
            if (t[slot].id != 0
                && (t[slot].inflight[S2A_KIND_IMAGE] > 0
                    || t[slot].inflight[S2A_KIND_VIDEO] > 0))
            {
                busy[n].id = t[slot].id;
                memcpy(busy[n].inflight, t[slot].inflight,
                       sizeof(busy[n].inflight));
                n++;
            }
        }
        s2a_shm_unlock(s2a_worker.shm);
    }
    if (n > 1) {
        qsort(busy, n, sizeof(*busy), busy_cmp);
    }
    json_array_foreach (tokens, i, row) {
        key.id = json_integer_value(json_object_get(row, "id"));
        hit = n > 0 ? bsearch(&key, busy, n, sizeof(*busy), busy_cmp) : NULL;
        json_object_set_new(
            row, "image_inflight",
            json_integer(hit != NULL ? hit->inflight[S2A_KIND_IMAGE] : 0));
        json_object_set_new(
            row, "video_inflight",
            json_integer(hit != NULL ? hit->inflight[S2A_KIND_VIDEO] : 0));
    }
    free(busy);
}

/*
 * The whole pool, a page at a time (S2A_TOKENS_PAGE_MAX rows per call to
 * the master), gathered in job->extra {rows, reveal}; `done` gets the
 * job once the last page is in.
 */
static void list_page(job_t *job, int64_t before);
static void export_rows(job_t *job, json_t *tokens);

static void
list_paged(json_t *reply, void *arg)
{
    job_t *job = arg;
    json_t *page = json_object_get(reply, "tokens");
    json_t *rows = json_object_get(job->extra, "rows");
    s2a_req_t *req;
    size_t n;

    job->call = 0;
    if (!reply_ok(reply) || !json_is_array(page)) {
        fail(job, 503, "Token list unavailable");
        return;
    }
    n = json_array_size(page);
    json_array_extend(rows, page);
    if (n == S2A_TOKENS_PAGE_MAX) {
        list_page(job,
                  json_integer_value(
                      json_object_get(json_array_get(page, n - 1), "id")));
        return;
    }
    if (json_is_true(json_object_get(job->extra, "export"))) {
        export_rows(job, rows);
        return;
    }
    add_inflight(rows);
    json_incref(rows);
    req = job_end(job);
    s2a_http_reply_json(req, 200, rows);
    json_decref(rows);
}

static void
list_page(job_t *job, int64_t before)
{
    ask_master(job,
               json_pack("{s:s, s:O, s:I, s:i}", "op", "tokens_list", "reveal",
                         json_object_get(job->extra, "reveal"), "before",
                         (json_int_t) before, "limit", S2A_TOKENS_PAGE_MAX),
               list_paged);
}

static void
list_start(s2a_req_t *req, bool reveal, bool export)
{
    job_t *job = job_new(req);

    if (job == NULL) {
        return;
    }
    job->extra = json_pack("{s:[], s:b, s:b}", "rows", "reveal", reveal,
                           "export", export);
    list_page(job, 0);
}

static void
handle_list(s2a_req_t *req)
{
    char *reveal = s2a_req_query_param(req, "reveal");
    bool rev = reveal != NULL
        && (strcmp(reveal, "1") == 0 || strcmp(reveal, "true") == 0);

    free(reveal);
    list_start(req, rev, false);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens
 */

static void
add_stored(json_t *reply, void *arg)
{
    job_t *job = arg;
    s2a_req_t *req;
    json_t *body;

    job->call = 0;
    if (!reply_ok(reply)) {
        if (strcmp(reply_code(reply), "duplicate") == 0) {
            fail(job, 409, "Token already exists (email: %s, id %lld)",
                 json_string_value(json_object_get(reply, "email")),
                 (long long) json_integer_value(
                     json_object_get(reply, "token_id")));
        } else {
            fail(job, s2a_worker_failure_status(reply, 500),
                 "Cannot store the token: %s",
                 json_string_value(json_object_get(reply, "error")));
        }
        return;
    }
    body = json_pack("{s:b, s:s, s:I}", "success", 1, "message", "Token added",
                     "token_id",
                     json_integer_value(json_object_get(reply, "token_id")));
    req = job_end(job);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
add_onboarded(const s2a_onboard_result_t *r, void *arg)
{
    job_t *job = arg;
    json_t *msg;
    const char *email;

    job->ob = NULL;
    if (!r->ok) {
        fail(job, r->status, "Adding the token failed: %s", r->detail);
        return;
    }
    json_object_update(job->fields, r->fields);
    email = json_string_value(json_object_get(job->fields, "email"));
    if (json_object_get(job->fields, "name") == NULL && email != NULL) {
        /* The local part stands in for a name Sora did not give. */
        json_object_set_new(job->fields, "name",
                            json_stringn(email, strcspn(email, "@")));
    }
    msg = json_pack("{s:s, s:s, s:O}", "op", "token_add", "sha256", job->sha256,
                    "fields", job->fields);
    ask_master(job, msg, add_stored);
}

static void
add_checked_duplicate(json_t *reply, void *arg)
{
    job_t *job = arg;
    const char *at;

    job->call = 0;
    if (reply == NULL) {
        fail(job, 503, "Master unavailable");
        return;
    }
    if (json_is_true(json_object_get(reply, "exists"))) {
        fail(
            job, 409, "Token already exists (email: %s, id %lld)",
            json_string_value(json_object_get(reply, "email")),
            (long long) json_integer_value(json_object_get(reply, "token_id")));
        return;
    }
    at = json_string_value(json_object_get(job->fields, "token"));
    job->ob = s2a_onboard_start(
        S2A_ONBOARD_ADD, at,
        json_string_value(json_object_get(job->fields, "proxy_url")), NULL,
        add_onboarded, job);
    if (job->ob == NULL) {
        fail(job, 503, "Cannot reach Sora");
    }
}

static void
handle_add(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true);
    const char *at;
    job_t *job;

    if (in == NULL) {
        return;
    }
    job = job_new(req);
    if (job == NULL) {
        json_decref(in);
        return;
    }
    job->fields = json_object();
    at = json_string_value(json_object_get(in, "token"));
    if (at == NULL || at[0] == '\0') {
        json_decref(in);
        fail(job, 400, "token (the access token) is required");
        return;
    }
    if (!take_fields(job, in, job->fields)
        || !take_access_token(job, at, job->fields))
    {
        json_decref(in);
        return;
    }
    json_decref(in);
    ask_master(
        job,
        json_pack("{s:s, s:s}", "op", "token_exists", "sha256", job->sha256),
        add_checked_duplicate);
}

/* ---------------------------------------------------------------------
 * Updates, state changes, deletion
 */

static void
simple_done(json_t *reply, void *arg)
{
    job_t *job = arg;
    const char *message =
        json_string_value(json_object_get(job->extra, "message"));
    json_t *body = json_object_get(job->extra, "body");
    s2a_req_t *req;

    job->call = 0;
    if (!reply_ok(reply)) {
        if (strcmp(reply_code(reply), "not_found") == 0) {
            fail(job, 404, "Token not found");
        } else if (strcmp(reply_code(reply), "duplicate") == 0) {
            fail(job, 409, "Another token already uses this access token");
        } else {
            fail(job, s2a_worker_failure_status(reply, 400), "%s",
                 reply == NULL
                     ? "Master unavailable"
                     : json_string_value(json_object_get(reply, "error")));
        }
        return;
    }
    body = body != NULL
        ? json_incref(body)
        : json_pack("{s:b, s:s}", "success", 1, "message", message);
    req = job_end(job);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
set_state(s2a_req_t *req, int64_t id, bool active, json_t *body,
          const char *message)
{
    job_t *job = job_new(req);

    if (job == NULL) {
        json_decref(body);
        return;
    }
    job->extra = json_pack("{s:s}", "message", message);
    if (body != NULL) {
        json_object_set_new(job->extra, "body", body);
    }
    ask_master(job,
               json_pack("{s:s, s:I, s:s, s:s}", "op", "token_state",
                         "token_id", (json_int_t) id, "state",
                         active ? "active" : "disabled", "reason",
                         active ? "enabled by the operator"
                                : "disabled by the operator"),
               simple_done);
}

static void
handle_status(s2a_req_t *req, int64_t id)
{
    json_t *in = s2a_req_json_object(req, true);
    json_t *v;

    if (in == NULL) {
        return;
    }
    v = json_object_get(in, "is_active");
    if (!json_is_boolean(v)) {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "is_active must be a boolean");
        return;
    }
    set_state(req, id, json_is_true(v), NULL, "Token status updated");
    json_decref(in);
}

static void
handle_update(s2a_req_t *req, int64_t id)
{
    json_t *in = s2a_req_json_object(req, true), *msg;
    const char *at;
    job_t *job;

    if (in == NULL) {
        return;
    }
    job = job_new(req);
    if (job == NULL) {
        json_decref(in);
        return;
    }
    job->fields = json_object();
    job->extra = json_pack("{s:s}", "message", "Token updated");
    if (!take_fields(job, in, job->fields)) {
        json_decref(in);
        return;
    }
    at = json_string_value(json_object_get(in, "token"));
    if (at != NULL && at[0] != '\0' && !take_access_token(job, at, job->fields))
    {
        json_decref(in);
        return;
    }
    json_decref(in);
    if (json_object_size(job->fields) == 0) {
        fail(job, 400, "Nothing to update");
        return;
    }
    msg = json_pack("{s:s, s:I, s:O}", "op", "token_update", "token_id",
                    (json_int_t) id, "fields", job->fields);
    if (job->sha256[0] != '\0') {
        json_object_set_new(msg, "sha256", json_string(job->sha256));
    }
    ask_master(job, msg, simple_done);
}

static void
handle_delete(s2a_req_t *req, int64_t id)
{
    job_t *job = job_new(req);

    if (job == NULL) {
        return;
    }
    job->extra = json_pack("{s:s}", "message", "Token deleted");
    ask_master(job,
               json_pack("{s:s, s:I}", "op", "token_delete", "token_id",
                         (json_int_t) id),
               simple_done);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens/{id}/test
 */

static void
test_stored(json_t *reply, void *arg)
{
    job_t *job = arg;
    json_t *body = json_incref(json_object_get(job->extra, "body"));
    s2a_req_t *req;

    S2A_UNUSED(reply);
    job->call = 0;
    req = job_end(job);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

/* Whether token `id` is `invalid` in the shared table. */
static bool
token_is_invalid(int64_t id)
{
    bool invalid = false;
    int slot;

    if (s2a_shm_lock(s2a_worker.shm) != S2A_OK) {
        return false;
    }
    slot = s2a_shm_token_find_locked(s2a_worker.shm, id);
    invalid = slot >= 0
        && s2a_shm_tokens(s2a_worker.shm)[slot].state == S2A_TOKEN_INVALID;
    s2a_shm_unlock(s2a_worker.shm);
    return invalid;
}

/*
 * What a test of token `id` found: the answer's body (new, into *body)
 * and the master call that stores it (new; NULL when nothing is to be
 * stored). A token Sora accepts again after a rejection is made active
 * here (an operator's disable is left alone).
 */
static json_t *
test_outcome(const s2a_onboard_result_t *r, int64_t id, json_t **body)
{
    const char *keys[] = { "sora2_supported", "sora2_invite_code",
                           "sora2_redeemed_count", "sora2_total_count",
                           "sora2_remaining_count" };
    json_t *b, *fields, *st;
    size_t i;

    b = json_pack("{s:b, s:s, s:s}", "success", 1, "status",
                  r->ok ? "success" : "failed", "message",
                  r->ok ? "Token is valid" : r->detail);
    json_object_set(b, "email", json_object_get(r->fields, "email"));
    json_object_set(b, "username", json_object_get(r->fields, "username"));
    if (r->ok) {
        for (i = 0; i < S2A_NELEMS(keys); i++) {
            json_t *v = json_object_get(r->fields, keys[i]);
            json_object_set(b, keys[i], v != NULL ? v : json_null());
        }
    }
    *body = b;
    if (r->ok) {
        /* What Sora said about quota and entitlement is kept. */
        fields = json_object();
        for (i = 0; i < S2A_NELEMS(keys); i++) {
            json_t *v = json_object_get(r->fields, keys[i]);
            if (v != NULL) {
                json_object_set(fields, keys[i], v);
            }
        }
        if (json_object_get(r->fields, "sora2_cooldown_until") != NULL) {
            json_object_set(fields, "sora2_cooldown_until",
                            json_object_get(r->fields, "sora2_cooldown_until"));
        }
        if (token_is_invalid(id)) {
            st = json_pack("{s:s, s:I, s:s, s:s}", "op", "token_state",
                           "token_id", (json_int_t) id, "state", "active",
                           "reason", "a token test found it valid");
            s2a_worker_notify_master(st);
            json_decref(st);
        }
        return json_pack("{s:s, s:I, s:o}", "op", "token_update", "token_id",
                         (json_int_t) id, "fields", fields);
    }
    if (r->token_invalid) {
        return json_pack("{s:s, s:I, s:s, s:s}", "op", "token_state",
                         "token_id", (json_int_t) id, "state", "invalid",
                         "reason", r->detail);
    }
    return NULL;
}

static void
test_onboarded(const s2a_onboard_result_t *r, void *arg)
{
    job_t *job = arg;
    json_t *body, *msg;

    job->ob = NULL;
    msg = test_outcome(r, job->id, &body);
    job->extra = json_pack("{s:o}", "body", body);
    if (msg == NULL) {
        test_stored(NULL, job);
        return;
    }
    ask_master(job, msg, test_stored);
}

static void
handle_test(s2a_req_t *req, int64_t id)
{
    char at[S2A_SHM_AT_MAX];
    job_t *job;

    if (!s2a_worker_token_at(id, at)) {
        json_t *body = json_pack("{s:b, s:s, s:s}", "success", 1, "status",
                                 "failed", "message", "Token not found");
        s2a_http_reply_json(req, 404, body);
        json_decref(body);
        return;
    }
    job = job_new(req);
    if (job == NULL) {
        return;
    }
    job->id = id;
    job->ob = s2a_onboard_start(S2A_ONBOARD_TEST, at, NULL, NULL,
                                test_onboarded, job);
    explicit_bzero(at, sizeof(at));
    if (job->ob == NULL) {
        fail(job, 503, "Cannot reach Sora");
    }
}

/* ---------------------------------------------------------------------
 * ST -> AT, RT -> AT
 */

static void
st_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    const char *at = json_string_value(json_object_get(r->json, "accessToken"));
    json_t *body;
    s2a_req_t *req;

    job->sora = 0;
    if (!s2a_sora_ok(r) || at == NULL) {
        fail(job, 400, "Failed to convert ST to AT: %s",
             r->status == 200 ? "the session token is invalid or expired"
                              : r->error_message);
        return;
    }
    body = json_pack(
        "{s:b, s:s, s:s, s:O, s:O}", "success", 1, "message",
        "ST converted to AT successfully", "access_token", at, "email",
        json_object_get(json_object_get(r->json, "user"), "email") != NULL
            ? json_object_get(json_object_get(r->json, "user"), "email")
            : json_null(),
        "expires",
        json_object_get(r->json, "expires") != NULL
            ? json_object_get(r->json, "expires")
            : json_null());
    req = job_end(job);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
rt_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    const char *at =
        json_string_value(json_object_get(r->json, "access_token"));
    json_t *rt = json_object_get(r->json, "refresh_token");
    json_t *body;
    s2a_req_t *req;

    job->sora = 0;
    if (!s2a_sora_ok(r) || at == NULL) {
        fail(job, 400, "Failed to convert RT to AT: %s",
             r->status == 200 ? "the refresh token is invalid or expired"
                              : r->error_message);
        return;
    }
    body =
        json_pack("{s:b, s:s, s:s, s:O, s:O}", "success", 1, "message",
                  "RT converted to AT successfully", "access_token", at,
                  "refresh_token", rt != NULL ? rt : json_null(), "expires_in",
                  json_object_get(r->json, "expires_in") != NULL
                      ? json_object_get(r->json, "expires_in")
                      : json_null());
    req = job_end(job);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
handle_convert(s2a_req_t *req, bool session)
{
    json_t *in = s2a_req_json_object(req, true);
    const char *secret;
    job_t *job;

    if (in == NULL) {
        return;
    }
    secret = json_string_value(json_object_get(in, session ? "st" : "rt"));
    if (secret == NULL || secret[0] == '\0' || strlen(secret) > 8000) {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "%s is required",
                              session ? "st" : "rt");
        return;
    }
    job = job_new(req);
    if (job == NULL) {
        json_decref(in);
        return;
    }
    job->sora = session
        ? s2a_sora_session_exchange(secret, NULL, st_done, job)
        : s2a_sora_refresh_exchange(
            secret, json_string_value(json_object_get(in, "client_id")), NULL,
            rt_done, job);
    json_decref(in);
    if (job->sora == 0) {
        fail(job, 503, "Cannot reach the auth service");
    }
}

/* ---------------------------------------------------------------------
 * GET /api/tokens/export
 */

/* Answers the download of `tokens` (borrowed from the job). */
static void
export_rows(job_t *job, json_t *tokens)
{
    json_t *t, *out;
    char cd[96], day[11];
    s2a_req_t *req;
    size_t i;

    /* The file format of the reference's export, so either side imports
     * the other's files, plus the token's group (null: none), which the
     * import takes back. */
    out = json_array();
    json_array_foreach (tokens, i, t) {
        json_array_append_new(
            out,
            json_pack("{s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O*}",
                      "email", json_object_get(t, "email"), "access_token",
                      json_object_get(t, "token"), "session_token",
                      json_object_get(t, "st"), "refresh_token",
                      json_object_get(t, "rt"), "is_active",
                      json_object_get(t, "is_active"), "image_enabled",
                      json_object_get(t, "image_enabled"), "video_enabled",
                      json_object_get(t, "video_enabled"), "image_concurrency",
                      json_object_get(t, "image_concurrency"),
                      "video_concurrency",
                      json_object_get(t, "video_concurrency"), "group",
                      json_object_get(t, "group")));
    }
    s2a_utc_day(s2a_now(), day);
    snprintf(cd, sizeof(cd), "attachment; filename=\"tokens_%s.json\"", day);
    req = job_end(job);
    s2a_http_add_header(req, "Content-Disposition", cd);
    s2a_http_add_header(req, "Cache-Control", "no-store");
    s2a_http_reply_json(req, 200, out);
    json_decref(out);
}

static void
handle_export(s2a_req_t *req)
{
    list_start(req, true, true);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens/import
 *
 * Items are matched to stored tokens by e-mail: a match gets the new
 * secrets, flags and limits; anything else goes through the full add
 * sequence. A few items run at once; each item's outcome is reported.
 */

#define IMPORT_MAX      10000
#define IMPORT_PARALLEL 16

typedef struct import_s import_t;

typedef struct item_s {
    import_t *imp;
    size_t index;
    uint64_t call;
    s2a_onboard_t *ob;
    json_t *fields;
    char sha256[65];
    bool active;
    int64_t id;
    struct item_s *next;
} item_t;

struct import_s {
    s2a_req_t *req;
    json_t *items;
    size_t next_index;
    bool pumping; /* import_pump is on the stack */
    int running;
    int added, updated, failed;
    json_t *errors;
    item_t *live;
};

static void import_pump(import_t *imp);

static void
item_free(item_t *it)
{
    item_t **pp;

    for (pp = &it->imp->live; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    }
    json_decref(it->fields);
    free(it);
}

static void
import_gone(s2a_req_t *req, void *arg)
{
    import_t *imp = arg;
    item_t *it;

    S2A_UNUSED(req);
    while ((it = imp->live) != NULL) {
        if (it->call != 0) {
            s2a_worker_call_cancel(it->call);
        }
        if (it->ob != NULL) {
            s2a_onboard_cancel(it->ob);
        }
        item_free(it);
    }
    json_decref(imp->items);
    json_decref(imp->errors);
    free(imp);
}

static void
item_done(item_t *it, const char *error, bool added)
{
    import_t *imp = it->imp;
    json_t *email = json_object_get(it->fields, "email");

    if (error != NULL) {
        imp->failed++;
        json_array_append_new(imp->errors,
                              json_pack("{s:I, s:O, s:s}", "index",
                                        (json_int_t) it->index, "email",
                                        email != NULL ? email : json_null(),
                                        "detail", error));
    } else if (added) {
        imp->added++;
    } else {
        imp->updated++;
    }
    imp->running--;
    item_free(it);
    import_pump(imp);
}

static void
item_stored(json_t *reply, void *arg)
{
    item_t *it = arg;
    const char *err = json_string_value(json_object_get(reply, "error"));
    bool added = it->id == 0;

    it->call = 0;
    if (!reply_ok(reply)) {
        item_done(it,
                  strcmp(reply_code(reply), "duplicate") == 0
                      ? "the access token belongs to another stored token"
                      : err != NULL ? err
                                    : "not stored",
                  false);
        return;
    }
    item_done(it, NULL, added);
}

static void
item_onboarded(const s2a_onboard_result_t *r, void *arg)
{
    item_t *it = arg;
    json_t *msg;
    char detail[600];

    it->ob = NULL;
    if (!r->ok) {
        snprintf(detail, sizeof(detail), "%s", r->detail);
        item_done(it, detail, false);
        return;
    }
    json_object_update(r->fields, it->fields);
    json_decref(it->fields);
    it->fields = json_incref(r->fields);
    msg = json_pack("{s:s, s:s, s:O}", "op", "token_add", "sha256", it->sha256,
                    "fields", it->fields);
    if (!it->active) {
        json_object_set_new(msg, "state", json_string("disabled"));
    }
    it->call = s2a_worker_call_master(msg, item_stored, it);
    json_decref(msg);
    if (it->call == 0) {
        item_done(it, "master unavailable", false);
    }
}

static void
item_found(json_t *reply, void *arg)
{
    item_t *it = arg;
    json_t *msg;

    it->call = 0;
    if (reply == NULL) {
        item_done(it, "master unavailable", false);
        return;
    }
    if (json_is_true(json_object_get(reply, "exists"))) {
        it->id = json_integer_value(json_object_get(reply, "token_id"));
        msg = json_pack("{s:s, s:I, s:O, s:s, s:s}", "op", "token_update",
                        "token_id", (json_int_t) it->id, "fields", it->fields,
                        "sha256", it->sha256, "state",
                        it->active ? "active" : "disabled");
        it->call = s2a_worker_call_master(msg, item_stored, it);
        json_decref(msg);
        if (it->call == 0) {
            item_done(it, "master unavailable", false);
        }
        return;
    }
    it->ob = s2a_onboard_start(
        S2A_ONBOARD_ADD,
        json_string_value(json_object_get(it->fields, "token")), NULL, NULL,
        item_onboarded, it);
    if (it->ob == NULL) {
        item_done(it, "cannot reach Sora", false);
    }
}

/* Validates item `index`; returns NULL after recording why it is bad. */
static item_t *
item_new(import_t *imp, size_t index)
{
    json_t *in = json_array_get(imp->items, index), *v;
    s2a_jwt_claims_t claims;
    const char *email, *at;
    item_t *it = calloc(1, sizeof(*it));
    const char *why = NULL;

    if (it == NULL) {
        imp->failed++;
        json_array_append_new(imp->errors,
                              json_pack("{s:I, s:n, s:s}", "index",
                                        (json_int_t) index, "email", "detail",
                                        "out of memory"));
        return NULL;
    }
    it->imp = imp;
    it->index = index;
    it->fields = json_object();
    it->active = true;
    it->next = imp->live;
    imp->live = it;
    imp->running++;
    email = json_string_value(json_object_get(in, "email"));
    at = json_string_value(json_object_get(in, "access_token"));
    if (!json_is_object(in)) {
        why = "not an object";
    } else if (email == NULL || email[0] == '\0') {
        why = "email is required";
    } else if (at == NULL || s2a_jwt_decode(at, &claims) != S2A_OK
               || strlen(at) >= S2A_SHM_AT_MAX)
    {
        why = "access_token is not a JWT access token";
    } else if (claims.exp != 0 && claims.exp <= s2a_now()) {
        why = "access_token has expired";
    } else if ((v = json_object_get(in, "group")) != NULL && !json_is_null(v)
               && (!json_is_string(v)
                   || (json_string_length(v) > 0
                       && !s2a_keyspec_group_ok(json_string_value(v)))))
    {
        why = "group must be 1..64 characters of A-Z a-z 0-9 . _ -, \"\" "
              "or null for none";
    }
    if (email != NULL) {
        json_object_set_new(it->fields, "email", json_string(email));
    }
    if (why != NULL) {
        item_done(it, why, false);
        return NULL;
    }
    json_object_set_new(it->fields, "token", json_string(at));
    json_object_set_new(it->fields, "expiry_time",
                        claims.exp != 0 ? json_integer(claims.exp)
                                        : json_null());
    v = json_object_get(in, "session_token");
    if (json_is_string(v) && json_string_length(v) > 0) {
        json_object_set(it->fields, "st", v);
    }
    v = json_object_get(in, "refresh_token");
    if (json_is_string(v) && json_string_length(v) > 0) {
        json_object_set(it->fields, "rt", v);
    }
    v = json_object_get(in, "image_enabled");
    if (json_is_boolean(v)) {
        json_object_set(it->fields, "image_enabled", v);
    }
    v = json_object_get(in, "video_enabled");
    if (json_is_boolean(v)) {
        json_object_set(it->fields, "video_enabled", v);
    }
    v = json_object_get(in, "image_concurrency");
    if (json_is_integer(v)) {
        json_object_set(it->fields, "image_concurrency", v);
    }
    v = json_object_get(in, "video_concurrency");
    if (json_is_integer(v)) {
        json_object_set(it->fields, "video_concurrency", v);
    }
    /* The group as the export writes it: a name, or null (or "") for
     * none; an item without the field leaves a stored token's group. */
    v = json_object_get(in, "group");
    if (v != NULL) {
        json_object_set_new(it->fields, "token_group",
                            json_is_string(v) && json_string_length(v) > 0
                                ? json_string(json_string_value(v))
                                : json_null());
    }
    it->active = !json_is_false(json_object_get(in, "is_active"));
    sha256_hex(at, it->sha256);
    return it;
}

static void
import_finish(import_t *imp)
{
    s2a_req_t *req = imp->req;
    json_t *body;
    char msg[128];

    snprintf(msg, sizeof(msg),
             "Import completed: %d added, %d updated, %d "
             "failed",
             imp->added, imp->updated, imp->failed);
    body =
        json_pack("{s:b, s:s, s:i, s:i, s:i, s:O}", "success", imp->failed == 0,
                  "message", msg, "added", imp->added, "updated", imp->updated,
                  "failed", imp->failed, "errors", imp->errors);
    req->on_gone = NULL;
    json_decref(imp->items);
    json_decref(imp->errors);
    free(imp);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
import_pump(import_t *imp)
{
    item_t *it;
    json_t *msg;

    /* Items that fail at once end inside this loop: they must not start
     * a nested pump (or finish the import under it). */
    if (imp->pumping) {
        return;
    }
    imp->pumping = true;
    while (imp->running < IMPORT_PARALLEL
           && imp->next_index < json_array_size(imp->items))
    {
        it = item_new(imp, imp->next_index++);
        if (it == NULL) {
            continue;
        }
        msg = json_pack("{s:s, s:O}", "op", "token_exists", "email",
                        json_object_get(it->fields, "email"));
        it->call = s2a_worker_call_master(msg, item_found, it);
        json_decref(msg);
        if (it->call == 0) {
            item_done(it, "master unavailable", false);
        }
    }
    imp->pumping = false;
    if (imp->running == 0 && imp->next_index >= json_array_size(imp->items)) {
        import_finish(imp);
    }
}

static void
handle_import(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true), *items;
    import_t *imp;

    if (in == NULL) {
        return;
    }
    items = json_object_get(in, "tokens");
    if (!json_is_array(items) || json_array_size(items) == 0
        || json_array_size(items) > IMPORT_MAX)
    {
        json_decref(in);
        s2a_http_reply_detail(req, 400,
                              "tokens must be an array of 1 to %d "
                              "items",
                              IMPORT_MAX);
        return;
    }
    imp = calloc(1, sizeof(*imp));
    if (imp == NULL) {
        json_decref(in);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    imp->req = req;
    imp->items = json_incref(items);
    imp->errors = json_array();
    json_decref(in);
    req->on_gone = import_gone;
    req->gone_arg = imp;
    import_pump(imp);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens/batch
 *
 * A pasted list of access, session or refresh tokens, one per line: each
 * line is converted to an access token (ST and RT lines), checked, then
 * added through the same sequence as POST /api/tokens, a few at once.
 * The answer has one result per line, in order; a line's secret is never
 * repeated in it.
 */

#define BATCH_MAX      1000
#define BATCH_PARALLEL 8

typedef enum {
    BATCH_AT = 0,
    BATCH_ST,
    BATCH_RT
} batch_kind_t;

typedef struct batch_s batch_t;

typedef struct line_s {
    batch_t *b;
    size_t index;
    uint64_t call; /* master call in flight */
    uint64_t sora; /* token exchange in flight */
    s2a_onboard_t *ob;
    json_t *fields;
    char sha256[65];
    struct line_s *next;
} line_t;

struct batch_s {
    s2a_req_t *req;
    batch_kind_t kind;
    json_t *lines;   /* the request's strings */
    json_t *common;  /* fields every line gets */
    json_t *results; /* one slot per line */
    json_t *seen;    /* SHA-256 of each line's text: its line number */
    size_t next_index;
    bool pumping; /* batch_pump is on the stack */
    int running;
    int added, duplicates, failed;
    line_t *live;
};

static void batch_pump(batch_t *b);

static void
line_free(line_t *ln)
{
    line_t **pp;

    for (pp = &ln->b->live; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == ln) {
            *pp = ln->next;
            break;
        }
    }
    json_decref(ln->fields);
    free(ln);
}

static void
batch_free(batch_t *b)
{
    line_t *ln;

    while ((ln = b->live) != NULL) {
        if (ln->call != 0) {
            s2a_worker_call_cancel(ln->call);
        }
        if (ln->sora != 0) {
            s2a_sora_cancel(ln->sora);
        }
        if (ln->ob != NULL) {
            s2a_onboard_cancel(ln->ob);
        }
        line_free(ln);
    }
    json_decref(b->lines);
    json_decref(b->common);
    json_decref(b->results);
    json_decref(b->seen);
    free(b);
}

static void
batch_gone(s2a_req_t *req, void *arg)
{
    S2A_UNUSED(req);
    batch_free(arg);
}

/*
 * Records the outcome of line `ln` ("added", "duplicate" or "failed",
 * with `detail` for the last two) and frees it; the next lines start.
 */
static void
line_done(line_t *ln, const char *status, const char *detail, int64_t id)
{
    batch_t *b = ln->b;
    json_t *email = json_object_get(ln->fields, "email"), *r;

    r = json_pack("{s:I, s:s}", "line", (json_int_t) ln->index + 1, "status",
                  status);
    if (id > 0) {
        json_object_set_new(r, "token_id", json_integer(id));
    }
    if (json_is_string(email)) {
        json_object_set(r, "email", email);
    }
    if (detail != NULL) {
        json_object_set_new(r, "detail", json_string(detail));
    }
    json_array_set_new(b->results, ln->index, r);
    if (strcmp(status, "added") == 0) {
        b->added++;
    } else if (strcmp(status, "duplicate") == 0) {
        b->duplicates++;
    } else {
        b->failed++;
    }
    b->running--;
    line_free(ln);
    batch_pump(b);
}

static void
line_stored(json_t *reply, void *arg)
{
    line_t *ln = arg;
    const char *err = json_string_value(json_object_get(reply, "error"));

    ln->call = 0;
    if (!reply_ok(reply)) {
        if (strcmp(reply_code(reply), "duplicate") == 0) {
            line_done(ln, "duplicate", "Token already exists",
                      json_integer_value(json_object_get(reply, "token_id")));
        } else {
            line_done(ln, "failed", err != NULL ? err : "not stored", 0);
        }
        return;
    }
    line_done(ln, "added", NULL,
              json_integer_value(json_object_get(reply, "token_id")));
}

static void
line_onboarded(const s2a_onboard_result_t *r, void *arg)
{
    line_t *ln = arg;
    const char *email;
    json_t *msg;

    ln->ob = NULL;
    if (!r->ok) {
        line_done(ln, "failed", r->detail, 0);
        return;
    }
    json_object_update(ln->fields, r->fields);
    email = json_string_value(json_object_get(ln->fields, "email"));
    if (json_object_get(ln->fields, "name") == NULL && email != NULL) {
        json_object_set_new(ln->fields, "name",
                            json_stringn(email, strcspn(email, "@")));
    }
    msg = json_pack("{s:s, s:s, s:O}", "op", "token_add", "sha256", ln->sha256,
                    "fields", ln->fields);
    ln->call = s2a_worker_call_master(msg, line_stored, ln);
    json_decref(msg);
    if (ln->call == 0) {
        line_done(ln, "failed", "master unavailable", 0);
    }
}

static void
line_checked(json_t *reply, void *arg)
{
    line_t *ln = arg;

    ln->call = 0;
    if (reply == NULL) {
        line_done(ln, "failed", "master unavailable", 0);
        return;
    }
    if (json_is_true(json_object_get(reply, "exists"))) {
        line_done(ln, "duplicate", "Token already exists",
                  json_integer_value(json_object_get(reply, "token_id")));
        return;
    }
    ln->ob = s2a_onboard_start(
        S2A_ONBOARD_ADD,
        json_string_value(json_object_get(ln->fields, "token")),
        json_string_value(json_object_get(ln->fields, "proxy_url")), NULL,
        line_onboarded, ln);
    if (ln->ob == NULL) {
        line_done(ln, "failed", "cannot reach Sora", 0);
    }
}

/* The line has its access token: checked, then looked up. */
static void
line_have_at(line_t *ln, const char *at)
{
    s2a_jwt_claims_t claims;
    const char *why = access_token_problem(at, &claims);
    json_t *msg;

    if (why != NULL) {
        line_done(ln, "failed", why, 0);
        return;
    }
    access_token_fields(at, &claims, ln->fields);
    sha256_hex(at, ln->sha256);
    msg = json_pack("{s:s, s:s}", "op", "token_exists", "sha256", ln->sha256);
    ln->call = s2a_worker_call_master(msg, line_checked, ln);
    json_decref(msg);
    if (ln->call == 0) {
        line_done(ln, "failed", "master unavailable", 0);
    }
}

static void
line_exchanged(const s2a_sora_result_t *r, void *arg)
{
    line_t *ln = arg;
    bool st = ln->b->kind == BATCH_ST;
    const char *at = json_string_value(
        json_object_get(r->json, st ? "accessToken" : "access_token"));
    json_t *rt = json_object_get(r->json, "refresh_token");
    char why[320];

    ln->sora = 0;
    if (!s2a_sora_ok(r) || at == NULL) {
        snprintf(why, sizeof(why), "Failed to convert %s to AT: %s",
                 st ? "ST" : "RT",
                 r->status == 200 || r->error_message == NULL
                     ? (st ? "the session token is invalid or expired"
                           : "the refresh token is invalid or expired")
                     : r->error_message);
        line_done(ln, "failed", why, 0);
        return;
    }
    if (!st && json_is_string(rt) && json_string_length(rt) > 0) {
        /* The old refresh token stops working once rotated. */
        json_object_set(ln->fields, "rt", rt);
    }
    line_have_at(ln, at);
}

/* Starts line `index`; its outcome comes through line_done. */
static void
line_start(batch_t *b, size_t index)
{
    const char *text = json_string_value(json_array_get(b->lines, index));
    const char *proxy, *client;
    line_t *ln = calloc(1, sizeof(*ln));
    json_t *first;
    char sha[65], why[64];

    if (ln == NULL) {
        b->failed++;
        json_array_set_new(b->results, index,
                           json_pack("{s:I, s:s, s:s}", "line",
                                     (json_int_t) index + 1, "status", "failed",
                                     "detail", "out of memory"));
        return;
    }
    ln->b = b;
    ln->index = index;
    ln->fields = json_deep_copy(b->common);
    ln->next = b->live;
    b->live = ln;
    b->running++;
    if (text == NULL || text[0] == '\0') {
        line_done(ln, "failed", "empty line", 0);
        return;
    }
    /* A line repeated in the batch is a duplicate of its first copy,
     * whatever order the lines' calls end in. */
    sha256_hex(text, sha);
    first = json_object_get(b->seen, sha);
    if (first != NULL) {
        snprintf(why, sizeof(why), "Same token as line %lld",
                 (long long) json_integer_value(first));
        line_done(ln, "duplicate", why, 0);
        return;
    }
    json_object_set_new(b->seen, sha, json_integer((json_int_t) index + 1));
    proxy = json_string_value(json_object_get(b->common, "proxy_url"));
    client = json_string_value(json_object_get(b->common, "client_id"));
    switch (b->kind) {
    case BATCH_AT: line_have_at(ln, text); return;
    case BATCH_ST:
        json_object_set_new(ln->fields, "st", json_string(text));
        ln->sora = s2a_sora_session_exchange(text, proxy, line_exchanged, ln);
        break;
    case BATCH_RT:
        json_object_set_new(ln->fields, "rt", json_string(text));
        ln->sora =
            s2a_sora_refresh_exchange(text, client, proxy, line_exchanged, ln);
        break;
    }
    if (ln->sora == 0) {
        line_done(ln, "failed", "cannot reach the auth service", 0);
    }
}

static void
batch_finish(batch_t *b)
{
    s2a_req_t *req = b->req;
    json_t *body;
    char msg[128];

    snprintf(msg, sizeof(msg),
             "Batch completed: %d added, %d duplicates, %d failed", b->added,
             b->duplicates, b->failed);
    body =
        json_pack("{s:b, s:s, s:i, s:i, s:i, s:O}", "success", b->failed == 0,
                  "message", msg, "added", b->added, "duplicates",
                  b->duplicates, "failed", b->failed, "results", b->results);
    req->on_gone = NULL;
    batch_free(b);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
batch_pump(batch_t *b)
{
    /* Lines that end at once end inside this loop: they must not start
     * a nested pump (or finish the batch under it). */
    if (b->pumping) {
        return;
    }
    b->pumping = true;
    while (b->running < BATCH_PARALLEL
           && b->next_index < json_array_size(b->lines)) {
        line_start(b, b->next_index++);
    }
    b->pumping = false;
    if (b->running == 0 && b->next_index >= json_array_size(b->lines)) {
        batch_finish(b);
    }
}

static void
handle_batch(s2a_req_t *req)
{
    static const char *const kinds[] = { "at", "st", "rt" };
    json_t *in = s2a_req_json_object(req, true), *lines, *v, *common;
    const char *kind;
    batch_t *b;
    job_t *job;
    size_t i;
    int k = -1;

    if (in == NULL) {
        return;
    }
    kind = json_string_value(json_object_get(in, "kind"));
    for (i = 0; kind != NULL && i < S2A_NELEMS(kinds); i++) {
        if (strcmp(kind, kinds[i]) == 0) {
            k = (int) i;
        }
    }
    lines = json_object_get(in, "tokens");
    if (k < 0) {
        json_decref(in);
        s2a_http_reply_detail(req, 400, "kind must be at, st or rt");
        return;
    }
    if (!json_is_array(lines) || json_array_size(lines) == 0
        || json_array_size(lines) > BATCH_MAX)
    {
        json_decref(in);
        s2a_http_reply_detail(
            req, 400, "tokens must be an array of 1 to %d strings", BATCH_MAX);
        return;
    }
    json_array_foreach (lines, i, v) {
        if (!json_is_string(v) || json_string_length(v) > 8000) {
            json_decref(in);
            s2a_http_reply_detail(req, 400,
                                  "tokens[%zu] must be a string of at most "
                                  "8000 bytes",
                                  i);
            return;
        }
    }
    /* The fields every line gets, checked as POST /api/tokens does. */
    job = job_new(req);
    if (job == NULL) {
        json_decref(in);
        return;
    }
    common = json_object();
    if (!take_fields(job, in, common)) {
        json_decref(common);
        json_decref(in);
        return;
    }
    job_end(job);
    /* A session or refresh token belongs to one line. */
    json_object_del(common, "st");
    json_object_del(common, "rt");
    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        json_decref(common);
        json_decref(in);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    b->req = req;
    b->kind = (batch_kind_t) k;
    b->lines = json_incref(lines);
    b->common = common;
    b->results = json_array();
    b->seen = json_object();
    for (i = 0; i < json_array_size(lines); i++) {
        json_array_append_new(b->results, json_null());
    }
    json_decref(in);
    req->on_gone = batch_gone;
    req->gone_arg = b;
    batch_pump(b);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens/{id}/sora2/activate?invite_code=...
 */

static void
activate_refreshed(const s2a_onboard_result_t *r, void *arg)
{
    job_t *job = arg;
    json_t *fields, *body, *msg;
    const char *keys[] = { "sora2_supported",       "sora2_invite_code",
                           "sora2_redeemed_count",  "sora2_total_count",
                           "sora2_remaining_count", "sora2_cooldown_until" };
    size_t i;

    job->ob = NULL;
    fields = json_object();
    for (i = 0; i < S2A_NELEMS(keys); i++) {
        json_t *v = json_object_get(r->fields, keys[i]);
        if (v != NULL) {
            json_object_set(fields, keys[i], v);
        }
    }
    body = json_pack(
        "{s:b, s:s, s:O, s:O, s:O, s:O, s:O}", "success", 1, "message",
        "Sora2 activated successfully", "already_accepted",
        json_object_get(job->extra, "already_accepted"), "invite_code",
        json_object_get(fields, "sora2_invite_code") != NULL
            ? json_object_get(fields, "sora2_invite_code")
            : json_null(),
        "redeemed_count",
        json_object_get(fields, "sora2_redeemed_count") != NULL
            ? json_object_get(fields, "sora2_redeemed_count")
            : json_null(),
        "total_count",
        json_object_get(fields, "sora2_total_count") != NULL
            ? json_object_get(fields, "sora2_total_count")
            : json_null(),
        "sora2_remaining_count",
        json_object_get(fields, "sora2_remaining_count") != NULL
            ? json_object_get(fields, "sora2_remaining_count")
            : json_null());
    json_object_set_new(job->extra, "body", body);
    msg = json_pack("{s:s, s:I, s:o}", "op", "token_update", "token_id",
                    (json_int_t) job->id, "fields", fields);
    ask_master(job, msg, test_stored);
}

static void
activate_accepted(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    const char *at = json_string_value(json_object_get(job->extra, "at"));

    job->sora = 0;
    if (!s2a_sora_ok(r) || !json_is_true(json_object_get(r->json, "success"))) {
        fail(job, 400, "Failed to activate Sora2: %s",
             r->error_message != NULL ? r->error_message
                                      : "the invite code was not accepted");
        return;
    }
    json_object_set_new(job->extra, "already_accepted",
                        json_boolean(json_is_true(
                            json_object_get(r->json, "already_accepted"))));
    job->ob = s2a_onboard_start(S2A_ONBOARD_TEST, at, NULL, NULL,
                                activate_refreshed, job);
    json_object_del(job->extra, "at");
    if (job->ob == NULL) {
        fail(job, 503, "Cannot reach Sora");
    }
}

static void
handle_activate(s2a_req_t *req, int64_t id)
{
    char *code = s2a_req_query_param(req, "invite_code");
    char at[S2A_SHM_AT_MAX], cookie[80];
    uint8_t r[16];
    s2a_sora_call_t c;
    json_t *body;
    job_t *job;

    if (code == NULL || code[0] == '\0' || strlen(code) > 64) {
        free(code);
        s2a_http_reply_detail(req, 400, "invite_code is required");
        return;
    }
    s2a_worker_token_at(id, at);
    job = at[0] != '\0' ? job_new(req) : NULL;
    if (job == NULL) {
        free(code);
        if (at[0] == '\0') {
            s2a_http_reply_detail(req, 404, "Token not found");
        }
        return;
    }
    job->id = id;
    job->extra = json_pack("{s:s}", "at", at);
    /* A fresh device id per call, as the apps send. */
    s2a_random_bytes(r, sizeof(r));
    r[6] = (uint8_t) ((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t) ((r[8] & 0x3f) | 0x80);
    snprintf(cookie, sizeof(cookie),
             "oai-did=%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
             r[11], r[12], r[13], r[14], r[15]);
    body = json_pack("{s:s}", "invite_code", code);
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "POST";
    c.path = "/project_y/invite/accept";
    c.at = at;
    c.cookie = cookie;
    c.body = body;
    job->sora = s2a_sora_start(&c, activate_accepted, job);
    json_decref(body);
    free(code);
    explicit_bzero(at, sizeof(at));
    if (job->sora == 0) {
        fail(job, 503, "Cannot reach Sora");
    }
}

/* ---------------------------------------------------------------------
 * Route entry points (the route table is in routes.c; {id} arrives in
 * req->path_id, already checked to be a positive integer).
 */

/* GET /api/tokens[?reveal=1]: the account pool. */
void
s2a_tokens_list(s2a_req_t *req)
{
    handle_list(req);
}

/* POST /api/tokens: adds a token after onboarding it. */
void
s2a_tokens_add(s2a_req_t *req)
{
    handle_add(req);
}

/* ---------------------------------------------------------------------
 * POST /api/tokens/batch/test
 *
 * The selected tokens tested as POST /api/tokens/{id}/test does, a few at
 * once, each outcome stored before its result counts; one result per id,
 * in order: {"id","ok":true,"email"} for a token Sora accepts,
 * {"id","ok":false,"detail"} otherwise.
 */

#define TEST_BATCH_MAX      1000
#define TEST_BATCH_PARALLEL 8

typedef struct tbatch_s tbatch_t;

typedef struct titem_s {
    tbatch_t *b;
    size_t index;
    int64_t id;
    uint64_t call;
    s2a_onboard_t *ob;
    json_t *result;
    struct titem_s *next;
} titem_t;

struct tbatch_s {
    s2a_req_t *req;
    json_t *ids;
    json_t *results;
    size_t next_index;
    bool pumping;
    int running, ok, failed;
    titem_t *live;
};

static void tbatch_pump(tbatch_t *b);

static void
titem_free(titem_t *it)
{
    titem_t **pp;

    for (pp = &it->b->live; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    }
    json_decref(it->result);
    free(it);
}

static void
tbatch_free(tbatch_t *b)
{
    titem_t *it;

    while ((it = b->live) != NULL) {
        if (it->call != 0) {
            s2a_worker_call_cancel(it->call);
        }
        if (it->ob != NULL) {
            s2a_onboard_cancel(it->ob);
        }
        titem_free(it);
    }
    json_decref(b->ids);
    json_decref(b->results);
    free(b);
}

static void
tbatch_gone(s2a_req_t *req, void *arg)
{
    S2A_UNUSED(req);
    tbatch_free(arg);
}

/* Item `it` is over with `result` (taken); the next ones start. */
static void
titem_done(titem_t *it, json_t *result)
{
    tbatch_t *b = it->b;

    if (json_is_true(json_object_get(result, "ok"))) {
        b->ok++;
    } else {
        b->failed++;
    }
    json_array_set_new(b->results, it->index, result);
    b->running--;
    titem_free(it);
    tbatch_pump(b);
}

static json_t *
titem_failure(int64_t id, const char *detail)
{
    return json_pack("{s:I, s:b, s:s}", "id", (json_int_t) id, "ok", 0,
                     "detail", detail);
}

static void
titem_stored(json_t *reply, void *arg)
{
    titem_t *it = arg;
    json_t *result = it->result;

    it->call = 0;
    it->result = NULL;
    if (!reply_ok(reply) && json_is_true(json_object_get(result, "ok"))) {
        /* Sora said yes, but the token went meanwhile (or the write
         * failed): the id's outcome is that. */
        json_decref(result);
        result = titem_failure(it->id,
                               strcmp(reply_code(reply), "not_found") == 0
                                   ? "Token not found"
                                   : "the result could not be stored");
    }
    titem_done(it, result);
}

static void
titem_tested(const s2a_onboard_result_t *r, void *arg)
{
    titem_t *it = arg;
    json_t *body, *msg;

    it->ob = NULL;
    msg = test_outcome(r, it->id, &body);
    it->result = r->ok
        ? json_pack("{s:I, s:b}", "id", (json_int_t) it->id, "ok", 1)
        : titem_failure(it->id,
                        r->detail != NULL ? r->detail : "the test failed");
    if (r->ok && json_is_string(json_object_get(body, "email"))) {
        json_object_set(it->result, "email", json_object_get(body, "email"));
    }
    json_decref(body);
    if (msg == NULL) {
        titem_stored(NULL, it);
        return;
    }
    it->call = s2a_worker_call_master(msg, titem_stored, it);
    json_decref(msg);
    if (it->call == 0) {
        titem_stored(NULL, it);
    }
}

static void
titem_start(tbatch_t *b, size_t index)
{
    char at[S2A_SHM_AT_MAX];
    int64_t id = json_integer_value(json_array_get(b->ids, index));
    titem_t *it;

    if (!s2a_worker_token_at(id, at)) {
        json_array_set_new(b->results, index,
                           titem_failure(id, "Token not found"));
        b->failed++;
        return;
    }
    it = calloc(1, sizeof(*it));
    if (it == NULL) {
        explicit_bzero(at, sizeof(at));
        json_array_set_new(b->results, index,
                           titem_failure(id, "Out of memory"));
        b->failed++;
        return;
    }
    it->b = b;
    it->index = index;
    it->id = id;
    it->next = b->live;
    b->live = it;
    b->running++;
    it->ob =
        s2a_onboard_start(S2A_ONBOARD_TEST, at, NULL, NULL, titem_tested, it);
    explicit_bzero(at, sizeof(at));
    if (it->ob == NULL) {
        titem_done(it, titem_failure(id, "Cannot reach Sora"));
    }
}

static void
tbatch_finish(tbatch_t *b)
{
    s2a_req_t *req = b->req;
    json_t *body = json_pack("{s:O, s:i, s:i}", "results", b->results, "ok",
                             b->ok, "failed", b->failed);

    req->on_gone = NULL;
    tbatch_free(b);
    s2a_http_reply_json(req, 200, body);
    json_decref(body);
}

static void
tbatch_pump(tbatch_t *b)
{
    /* Items that end at once end inside this loop: no nested pump. */
    if (b->pumping) {
        return;
    }
    b->pumping = true;
    while (b->running < TEST_BATCH_PARALLEL
           && b->next_index < json_array_size(b->ids))
    {
        titem_start(b, b->next_index++);
    }
    b->pumping = false;
    if (b->running == 0 && b->next_index >= json_array_size(b->ids)) {
        tbatch_finish(b);
    }
}

static void
handle_batch_test(s2a_req_t *req)
{
    json_t *in = s2a_req_json_object(req, true), *ids;
    char err[128];
    tbatch_t *b;
    size_t i;

    if (in == NULL) {
        return;
    }
    ids = s2a_tokbatch_ids(in, err, sizeof(err));
    json_decref(in);
    if (ids != NULL && json_array_size(ids) > TEST_BATCH_MAX) {
        json_decref(ids);
        ids = NULL;
        snprintf(err, sizeof(err),
                 "ids must be an array of 1 to %d token ids to test",
                 TEST_BATCH_MAX);
    }
    if (ids == NULL) {
        s2a_http_reply_detail(req, 400, "%s", err);
        return;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL || (b->results = json_array()) == NULL) {
        free(b);
        json_decref(ids);
        s2a_http_reply_detail(req, 503, "Out of memory");
        return;
    }
    b->req = req;
    b->ids = ids;
    for (i = 0; i < json_array_size(ids); i++) {
        json_array_append_new(b->results, json_null());
    }
    req->on_gone = tbatch_gone;
    req->gone_arg = b;
    tbatch_pump(b);
}

/* POST /api/tokens/batch/test: tests the selected tokens. */
void
s2a_tokens_batch_test(s2a_req_t *req)
{
    handle_batch_test(req);
}

/* PUT /api/tokens/{id}: changes its fields. */
void
s2a_tokens_update(s2a_req_t *req)
{
    handle_update(req, req->path_id);
}

/* DELETE /api/tokens/{id}: removes it. */
void
s2a_tokens_delete(s2a_req_t *req)
{
    handle_delete(req, req->path_id);
}

/* POST /api/tokens/{id}/enable: operator state active. */
void
s2a_tokens_enable(s2a_req_t *req)
{
    set_state(req, req->path_id, true,
              json_pack("{s:b, s:s, s:i, s:i}", "success", 1, "message",
                        "Token enabled", "is_active", 1, "error_count", 0),
              "Token enabled");
}

/* POST /api/tokens/{id}/disable: operator state disabled. */
void
s2a_tokens_disable(s2a_req_t *req)
{
    set_state(req, req->path_id, false,
              json_pack("{s:b, s:s, s:i}", "success", 1, "message",
                        "Token disabled", "is_active", 0),
              "Token disabled");
}

/* PUT /api/tokens/{id}/status: {"is_active": bool}. */
void
s2a_tokens_status(s2a_req_t *req)
{
    handle_status(req, req->path_id);
}

/* POST /api/tokens/{id}/test: asks Sora about the token again. */
void
s2a_tokens_test(s2a_req_t *req)
{
    handle_test(req, req->path_id);
}

/* POST /api/tokens/{id}/sora2/activate?invite_code=: redeems a code. */
void
s2a_tokens_activate(s2a_req_t *req)
{
    handle_activate(req, req->path_id);
}

/* POST /api/tokens/st2at: session token to access token. */
void
s2a_tokens_st2at(s2a_req_t *req)
{
    handle_convert(req, true);
}

/* POST /api/tokens/rt2at: refresh token to access token. */
void
s2a_tokens_rt2at(s2a_req_t *req)
{
    handle_convert(req, false);
}

/* POST /api/tokens/import: bulk add or update by e-mail. */
void
s2a_tokens_import(s2a_req_t *req)
{
    handle_import(req);
}

/* POST /api/tokens/batch: adds a pasted list of ATs, STs or RTs. */
void
s2a_tokens_batch(s2a_req_t *req)
{
    handle_batch(req);
}

/* GET /api/tokens/export: the pool as a download. */
void
s2a_tokens_export(s2a_req_t *req)
{
    handle_export(req);
}
