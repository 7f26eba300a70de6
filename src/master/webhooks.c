/*
 * webhooks.c: webhooks in the master (docs/webhooks.md).
 *
 * Owns two tables: webhook_endpoints (url, subscribed event types as
 * bits, enabled, the secret sealed under secret.key) and the outbox
 * webhook_deliveries (one row per endpoint and event: state pending,
 * delivered or failed, attempts, the last outcome, when the next attempt
 * is due and, while a worker has it, a lease deadline).
 *
 * A job's end writes its delivery rows in the transaction that writes
 * the task row's final state, so an event exists exactly when the job
 * ended. A timer hands due rows to ready workers (op webhook_send) with
 * the body and its signature computed here: the secret never leaves the
 * master. The worker posts it and reports (webhook_result, a queued
 * record); the report schedules the next attempt with exponential
 * back-off and jitter, or ends the row. A row handed out and never
 * reported (the worker died, the master restarted) is due again when its
 * lease runs out; a start drops every old lease at once.
 */
#include "master/webhooks.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#define MAX_ENDPOINTS 100
#define URL_MAX       2048
#define TICK_BATCH    32     /* deliveries handed out per call */
#define MAX_INFLIGHT  256    /* leased at once */
#define LEASE_MS      30000  /* a report is this late at most */
#define KEEP_S        604800 /* ended rows are kept a week */
#define PRUNE_EVERY_S 60     /* between two prunes */
#define ERROR_MAX     240    /* bytes of an error kept in a row */
#define TEST_TYPE     "webhook.test"

static const struct {
    const char *name;
    unsigned bit;
} event_types[] = {
    { "video.completed", 0x1 },
    { "video.failed", 0x2 },
    { "image.completed", 0x4 },
    { "image.failed", 0x8 },
};
#define ALL_EVENTS 0xfu

static struct {
    struct event *kick; /* runs the tick soon after new rows */
    int64_t pruned_at;  /* when old rows were last removed */
} W;

static sqlite3 *
conn(void)
{
    return s2a_db_sqlite(s2a_master.db);
}

/* ---------------------------------------------------------------------
 * Pure parts
 */

int64_t
s2a_webhooks_backoff_ms(int attempt, int64_t base_ms, double r)
{
    return s2a_backoff_jitter(attempt, base_ms, S2A_WEBHOOKS_RETRY_CAP_MS, r);
}

bool
s2a_webhooks_give_up(int64_t created, int64_t now)
{
    return now - created >= S2A_WEBHOOKS_GIVE_UP_S;
}

char *
s2a_webhooks_sign(const char *secret, const char *id, int64_t timestamp,
                  const char *body, size_t body_len)
{
    unsigned char *key;
    uint8_t mac[S2A_SHA256_LEN];
    size_t key_len = 0, head_len, total;
    char head[160], *buf, *b64, *out = NULL;

    if (secret == NULL || strncmp(secret, "whsec_", 6) != 0) {
        return NULL;
    }
    key = s2a_base64_decode(secret + 6, strlen(secret + 6), &key_len);
    if (key == NULL || key_len == 0) {
        free(key);
        return NULL;
    }
    head_len = (size_t) snprintf(head, sizeof(head), "%s.%lld.", id,
                                 (long long) timestamp);
    total = head_len + body_len;
    buf = head_len < sizeof(head) ? malloc(total + 1) : NULL;
    if (buf != NULL) {
        memcpy(buf, head, head_len);
        memcpy(buf + head_len, body, body_len);
        s2a_hmac_sha256(key, key_len, buf, total, mac);
        free(buf);
        b64 = s2a_base64_encode(mac, sizeof(mac));
        if (b64 != NULL) {
            out = malloc(strlen(b64) + 4);
            if (out != NULL) {
                snprintf(out, strlen(b64) + 4, "v1,%s", b64);
            }
            free(b64);
        }
    }
    OPENSSL_cleanse(key, key_len);
    free(key);
    return out;
}

char *
s2a_webhooks_body(const char *event_id, const char *type, int64_t created_at,
                  const char *job_id)
{
    json_t *o;
    char *text;

    /* Jansson keeps insertion order: the body reads as documented. */
    o = json_pack("{s:s, s:s, s:s, s:I, s:{s:s?}}", "id", event_id, "object",
                  "event", "type", type, "created_at", (json_int_t) created_at,
                  "data", "id", job_id);
    if (o == NULL) {
        return NULL;
    }
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return text;
}

static unsigned
event_bit(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(event_types); i++) {
        if (strcmp(event_types[i].name, name) == 0) {
            return event_types[i].bit;
        }
    }
    return 0;
}

/* Whether `url` is an absolute http(s) URL with a host (libcurl's
 * parser, the one that will fetch it). */
static bool
url_ok(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = false;

    if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK
        && curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
    {
        ok = (strcasecmp(scheme, "http") == 0
              || strcasecmp(scheme, "https") == 0)
            && host[0] != '\0';
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

int
s2a_webhooks_check(json_t *fields, bool create, unsigned *events, char *err,
                   size_t errlen)
{
    const char *name, *url;
    json_t *v, *item;
    size_t i;
    unsigned bit;

    *events = create ? ALL_EVENTS : 0;
    json_object_foreach (fields, name, v) {
        if (strcmp(name, "url") != 0 && strcmp(name, "event_types") != 0
            && strcmp(name, "enabled") != 0
            && (create
                || (strcmp(name, "rotate_secret") != 0
                    && strcmp(name, "secret_overlap") != 0)))
        {
            snprintf(err, errlen, "unknown field \"%.40s\"", name);
            return S2A_ERROR;
        }
    }
    v = json_object_get(fields, "url");
    if (v == NULL && create) {
        snprintf(err, errlen, "url is required");
        return S2A_ERROR;
    }
    if (v != NULL) {
        url = json_string_value(v);
        if (url != NULL && strlen(url) > URL_MAX) {
            snprintf(err, errlen, "url must be at most %d bytes", URL_MAX);
            return S2A_ERROR;
        }
        if (url == NULL || !url_ok(url)) {
            snprintf(err, errlen, "url must be an http or https URL");
            return S2A_ERROR;
        }
    }
    v = json_object_get(fields, "event_types");
    if (v != NULL) {
        if (!json_is_array(v) || json_array_size(v) == 0) {
            snprintf(err, errlen,
                     "event_types must be a non-empty array of event types");
            return S2A_ERROR;
        }
        *events = 0;
        json_array_foreach (v, i, item) {
            if (!json_is_string(item)) {
                snprintf(err, errlen,
                         "event_types must be a non-empty array of event "
                         "types");
                return S2A_ERROR;
            }
            bit = event_bit(json_string_value(item));
            if (bit == 0) {
                snprintf(err, errlen,
                         "unknown event type \"%.40s\" (known: "
                         "video.completed, video.failed, image.completed, "
                         "image.failed)",
                         json_string_value(item));
                return S2A_ERROR;
            }
            *events |= bit;
        }
    }
    v = json_object_get(fields, "enabled");
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(err, errlen, "enabled must be a boolean");
        return S2A_ERROR;
    }
    v = json_object_get(fields, "rotate_secret");
    if (v != NULL && !json_is_boolean(v)) {
        snprintf(err, errlen, "rotate_secret must be a boolean");
        return S2A_ERROR;
    }
    item = json_object_get(fields, "secret_overlap");
    if (item != NULL
        && (!json_is_integer(item) || json_integer_value(item) < 0
            || json_integer_value(item) > S2A_WEBHOOKS_OVERLAP_MAX_S))
    {
        snprintf(err, errlen,
                 "secret_overlap must be an integer of seconds from 0 to %d",
                 S2A_WEBHOOKS_OVERLAP_MAX_S);
        return S2A_ERROR;
    }
    if (item != NULL && !json_is_true(v)) {
        snprintf(err, errlen, "secret_overlap needs rotate_secret: true");
        return S2A_ERROR;
    }
    if (!create && json_object_get(fields, "url") == NULL
        && json_object_get(fields, "event_types") == NULL
        && json_object_get(fields, "enabled") == NULL && !json_is_true(v))
    {
        snprintf(err, errlen, "Nothing to update");
        return S2A_ERROR;
    }
    return S2A_OK;
}

char *
s2a_webhooks_new_secret(void)
{
    unsigned char raw[S2A_WEBHOOKS_SECRET_BYTES];
    char *b64, *out = NULL;
    size_t n;

    if (s2a_random_bytes(raw, sizeof(raw)) != S2A_OK) {
        return NULL;
    }
    b64 = s2a_base64_encode(raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    if (b64 == NULL) {
        return NULL;
    }
    n = strlen(b64) + 7;
    out = malloc(n);
    if (out != NULL) {
        snprintf(out, n, "whsec_%s", b64);
    }
    OPENSSL_cleanse(b64, strlen(b64));
    free(b64);
    return out;
}

/* ---------------------------------------------------------------------
 * Rows as the admin API shows them
 */

#define ENDPOINT_COLUMNS \
    "id, url, events, enabled, created_at, updated_at, CASE WHEN " \
    "previous_until > CAST(strftime('%s','now') AS INTEGER) THEN " \
    "previous_until END"

/* An endpoint row (ENDPOINT_COLUMNS) as JSON; never the secret. */
static json_t *
endpoint_json(sqlite3_stmt *st)
{
    unsigned bits = (unsigned) sqlite3_column_int(st, 2);
    json_t *types = json_array();
    size_t i;

    for (i = 0; i < S2A_NELEMS(event_types); i++) {
        if (bits & event_types[i].bit) {
            json_array_append_new(types, json_string(event_types[i].name));
        }
    }
    return json_pack("{s:I, s:o, s:o, s:b, s:o, s:o, s:o}", "id",
                     (json_int_t) sqlite3_column_int64(st, 0), "url",
                     s2a_db_col_text(st, 1), "event_types", types, "enabled",
                     sqlite3_column_int(st, 3) != 0, "created_at",
                     s2a_db_col_time(st, 4), "updated_at",
                     s2a_db_col_time(st, 5), "previous_secret_expires_at",
                     s2a_db_col_time(st, 6));
}

#define DELIVERY_COLUMNS \
    "id, event_id, event_type, job_id, state, attempts, last_status, " \
    "last_error, last_attempt_at, next_attempt_ms, created_at, " \
    "delivered_at"

static json_t *
delivery_json(sqlite3_stmt *st)
{
    bool pending =
        strcmp((const char *) sqlite3_column_text(st, 4), "pending") == 0;
    json_t *next = pending && sqlite3_column_type(st, 9) != SQLITE_NULL
        ? s2a_db_iso_time(sqlite3_column_int64(st, 9) / 1000)
        : json_null();

    return json_pack(
        "{s:I, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, "
        "s:o, s:o}",
        "id", (json_int_t) sqlite3_column_int64(st, 0), "event_id",
        s2a_db_col_text(st, 1), "event_type", s2a_db_col_text(st, 2), "job_id",
        s2a_db_col_text(st, 3), "state", s2a_db_col_text(st, 4), "attempts",
        (json_int_t) sqlite3_column_int64(st, 5), "last_status",
        s2a_db_col_int(st, 6), "last_error", s2a_db_col_text(st, 7),
        "last_attempt_at", s2a_db_col_time(st, 8), "next_attempt_at", next,
        "created_at", s2a_db_col_time(st, 10), "delivered_at",
        s2a_db_col_time(st, 11));
}

/* Rows of `sql` with `id` bound to ?1 (and `limit` to ?2 when > 0), made
 * by `row`; NULL when the read failed. */
static json_t *
select_rows(const char *sql, int64_t id, int limit,
            json_t *(*row)(sqlite3_stmt *) )
{
    sqlite3_stmt *st;
    json_t *arr;
    int rc;

    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_log(LOG_ERR, 0, "webhooks query: %s", sqlite3_errmsg(conn()));
        return NULL;
    }
    sqlite3_bind_int64(st, 1, id);
    if (limit > 0) {
        sqlite3_bind_int(st, 2, limit);
    }
    arr = json_array();
    while (arr != NULL && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_array_append_new(arr, row(st));
    }
    if (arr != NULL && rc != SQLITE_DONE) {
        json_decref(arr);
        arr = NULL;
    }
    sqlite3_finalize(st);
    return arr;
}

/* One row or NULL (none, or the read failed). */
static json_t *
select_one(const char *sql, int64_t id, json_t *(*row)(sqlite3_stmt *) )
{
    json_t *rows = select_rows(sql, id, 0, row), *one;

    one = json_incref(json_array_get(rows, 0));
    json_decref(rows);
    return one;
}

static json_t *
endpoint_get(int64_t id)
{
    return select_one("SELECT " ENDPOINT_COLUMNS
                      " FROM webhook_endpoints WHERE id = ?1",
                      id, endpoint_json);
}

static json_t *
delivery_get(int64_t id)
{
    return select_one("SELECT " DELIVERY_COLUMNS
                      " FROM webhook_deliveries WHERE id = ?1",
                      id, delivery_json);
}

/* Runs `sql` with `n` int64 arguments bound to ?1, ?2, ... Returns the
 * rows changed, or -1. */
static int
exec_ints(const char *sql, int n, const int64_t *args)
{
    sqlite3_stmt *st;
    int i, rc;

    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        s2a_log(LOG_ERR, 0, "webhooks statement: %s", sqlite3_errmsg(conn()));
        return -1;
    }
    for (i = 0; i < n; i++) {
        sqlite3_bind_int64(st, i + 1, args[i]);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "webhooks write: %s", sqlite3_errmsg(conn()));
        return -1;
    }
    return sqlite3_changes(conn());
}

/* The integer `sql` selects (with `arg` bound to ?1 when it has one), or
 * -1 when it selects no row. */
static int64_t
count(const char *sql, int64_t arg)
{
    sqlite3_stmt *st;
    int64_t n = -1;

    if (sqlite3_prepare_v2(conn(), sql, -1, &st, NULL) != SQLITE_OK) {
        return -1;
    }
    sqlite3_bind_int64(st, 1, arg);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* A random event id "msg_<24 hex>" into `out` (29 bytes). */
static void
new_event_id(char out[29])
{
    uint8_t r[12];

    if (s2a_random_bytes(r, sizeof(r)) != S2A_OK) {
        /* Unique enough without the CSPRNG: time and a counter. */
        static uint32_t seq;
        int64_t t = s2a_now_ms();
        memcpy(r, &t, 8);
        seq++;
        memcpy(r + 8, &seq, 4);
    }
    memcpy(out, "msg_", 4);
    s2a_hex(r, sizeof(r), out + 4);
}

static void
kick(void)
{
    if (W.kick != NULL) {
        event_active(W.kick, EV_TIMEOUT, 0);
    }
}

/* ---------------------------------------------------------------------
 * Events
 */

static bool
any_enabled(void)
{
    return count("SELECT count(*) FROM webhook_endpoints WHERE enabled = 1", 0)
        > 0;
}

/* "image", "video" or NULL for a row of `model` and `params` (text). */
static const char *
job_kind(const char *model, const char *params)
{
    const char *kind = NULL;
    json_t *p;

    if (model != NULL && strncmp(model, "sora-image", 10) == 0) {
        return "image";
    }
    if (model != NULL && strncmp(model, "sora-video", 10) == 0) {
        return "video";
    }
    p = params != NULL ? json_loads(params, 0, NULL) : NULL;
    kind = json_string_value(json_object_get(p, "kind"));
    kind = kind == NULL              ? NULL
        : strcmp(kind, "image") == 0 ? "image"
        : strcmp(kind, "video") == 0 ? "video"
                                     : NULL;
    json_decref(p);
    return kind;
}

/*
 * Job `job` ended with `status`: one delivery row per enabled endpoint
 * subscribed to its event, all with one event id. A row that exists
 * already (a record applied twice) is left alone.
 */
static void
job_event(const char *job, const char *status, const char *model,
          const char *params)
{
    const char *kind = job_kind(model, params);
    char type[32], event_id[29];
    sqlite3_stmt *st;
    int64_t now_ms = s2a_now_ms();
    int rc;

    if (kind == NULL) {
        return;
    }
    snprintf(type, sizeof(type), "%s.%s", kind,
             strcmp(status, "succeeded") == 0 ? "completed" : "failed");
    new_event_id(event_id);
    if (sqlite3_prepare_v2(conn(),
                           "INSERT OR IGNORE INTO webhook_deliveries("
                           "endpoint_id, event_id, event_type, job_id, "
                           "created_at, next_attempt_ms) SELECT id, ?1, ?2, "
                           "?3, ?4, ?5 FROM webhook_endpoints WHERE "
                           "enabled = 1 AND (events & ?6) != 0",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_log(LOG_ERR, 0, "webhook event: %s", sqlite3_errmsg(conn()));
        return;
    }
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, job, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now_ms / 1000);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int(st, 6, (int) event_bit(type));
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "webhook event for %s not written: %s", job,
                sqlite3_errmsg(conn()));
        return;
    }
    if (sqlite3_changes(conn()) > 0) {
        s2a_log(LOG_DEBUG, 0, "webhook event %s (%s, job %s): %d deliveries",
                event_id, type, job, sqlite3_changes(conn()));
        kick();
    }
}

static bool
is_final(const char *status)
{
    return status != NULL
        && (strcmp(status, "succeeded") == 0 || strcmp(status, "failed") == 0
            || strcmp(status, "cancelled") == 0);
}

/* A character-only job makes no video: it has no video event. */
#define EVENT_ROWS "COALESCE(mode, '') <> 'character'"

/* Events of the rows `st` yields (job_id, status, model, params). */
static void
events_of(sqlite3_stmt *st)
{
    while (sqlite3_step(st) == SQLITE_ROW) {
        job_event((const char *) sqlite3_column_text(st, 0),
                  (const char *) sqlite3_column_text(st, 1),
                  (const char *) sqlite3_column_text(st, 2),
                  (const char *) sqlite3_column_text(st, 3));
    }
}

void
s2a_webhooks_task_recorded(const char *job_id, json_t *fields)
{
    sqlite3_stmt *st;

    if (!is_final(json_string_value(json_object_get(fields, "status")))
        || !any_enabled())
    {
        return;
    }
    /* The row as it now stands: the model came with an earlier record. */
    if (sqlite3_prepare_v2(conn(),
                           "SELECT job_id, status, model, params FROM tasks "
                           "WHERE job_id = ?1 AND " EVENT_ROWS,
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_STATIC);
    events_of(st);
    sqlite3_finalize(st);
}

void
s2a_webhooks_tasks_closed(int64_t worker_pid, const char *code, int64_t now)
{
    sqlite3_stmt *st;

    if (!any_enabled()) {
        return;
    }
    /* The rows that close just wrote: its code and its time. */
    if (sqlite3_prepare_v2(conn(),
                           "SELECT job_id, status, model, params FROM tasks "
                           "WHERE status = 'failed' AND error_code = ?2 AND "
                           "completed_at = ?3 AND (?1 = 0 OR worker_pid = ?1) "
                           "AND " EVENT_ROWS,
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_int64(st, 1, worker_pid);
    sqlite3_bind_text(st, 2, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    events_of(st);
    sqlite3_finalize(st);
}

/* ---------------------------------------------------------------------
 * Handing deliveries out
 */

static bool
any_ready(void)
{
    s2a_proc_t *p;

    for (p = s2a_master.procs; p != NULL; p = p->next) {
        if (p->state == S2A_PROC_READY) {
            return true;
        }
    }
    return false;
}

/* The signature of `body` by the sealed secret at column `col` of `st`
 * (caller frees), or NULL. */
static char *
sign_with(sqlite3_stmt *st, int col, const char *event_id, int64_t now,
          const char *body)
{
    const char *sealed = (const char *) sqlite3_column_text(st, col);
    char *secret = sealed != NULL ? s2a_open(s2a_master.key, sealed) : NULL;
    char *sig = NULL;

    if (secret != NULL) {
        sig = s2a_webhooks_sign(secret, event_id, now, body, strlen(body));
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    return sig;
}

/* The webhook_send message of one due row (id, event_id, event_type,
 * job_id, created_at, attempts, url, secret, previous_secret,
 * previous_until), or NULL. Within a rotation's overlap the header
 * carries both signatures, the new one first (Standard Webhooks lets a
 * receiver accept any of them). */
static json_t *
send_message(sqlite3_stmt *st, int64_t now)
{
    const char *event_id = (const char *) sqlite3_column_text(st, 1);
    char *body, *sig = NULL, *old = NULL, *both, ts[24];
    json_t *msg = NULL;
    size_t len;

    body = s2a_webhooks_body(
        event_id, (const char *) sqlite3_column_text(st, 2),
        sqlite3_column_int64(st, 4), (const char *) sqlite3_column_text(st, 3));
    if (body != NULL) {
        sig = sign_with(st, 7, event_id, now, body);
        if (sig != NULL && sqlite3_column_int64(st, 9) > now) {
            old = sign_with(st, 8, event_id, now, body);
        }
    }
    if (sig != NULL && old != NULL) {
        len = strlen(sig) + strlen(old) + 2;
        both = malloc(len);
        if (both != NULL) {
            snprintf(both, len, "%s %s", sig, old);
            free(sig);
            sig = both;
        }
    }
    free(old);
    if (sig == NULL) {
        s2a_log(LOG_ERR, 0, "webhook delivery %lld: cannot sign it",
                (long long) sqlite3_column_int64(st, 0));
        free(body);
        return NULL;
    }
    snprintf(ts, sizeof(ts), "%lld", (long long) now);
    msg = json_pack(
        "{s:s, s:I, s:I, s:s, s:{s:s, s:s, s:s}, s:s, s:b, s:i}", "op",
        "webhook_send", "delivery_id", (json_int_t) sqlite3_column_int64(st, 0),
        "attempt", (json_int_t) sqlite3_column_int64(st, 5) + 1, "url",
        (const char *) sqlite3_column_text(st, 6), "headers", "webhook-id",
        event_id, "webhook-timestamp", ts, "webhook-signature", sig, "body",
        body, "public_only", s2a_master.conf->webhooks_allow_private ? 0 : 1,
        "timeout_ms", S2A_WEBHOOKS_TIMEOUT_MS);
    free(sig);
    free(body);
    return msg;
}

/* Leases the due rows, their messages into `out` (to be sent once
 * committed). S2A_OK, or S2A_ERROR when the transaction must go. */
static int
lease_due(json_t *out, int64_t now_ms)
{
    int64_t leased, args[3];
    int room;
    sqlite3_stmt *st;
    json_t *msg, *ids = json_array(), *v;
    size_t i;

    leased = count("SELECT count(*) FROM webhook_deliveries WHERE state = "
                   "'pending' AND lease_until_ms > ?1",
                   now_ms);
    room = leased < 0                        ? 0
        : MAX_INFLIGHT - leased < TICK_BATCH ? (int) (MAX_INFLIGHT - leased)
                                             : TICK_BATCH;
    if (room <= 0 || ids == NULL
        || sqlite3_prepare_v2(
               conn(),
               "SELECT d.id, d.event_id, d.event_type, d.job_id, "
               "d.created_at, d.attempts, e.url, e.secret, "
               "e.previous_secret, e.previous_until FROM "
               "webhook_deliveries d JOIN webhook_endpoints e ON e.id = "
               "d.endpoint_id WHERE d.state = 'pending' AND e.enabled = 1 "
               "AND d.next_attempt_ms <= ?1 AND (d.lease_until_ms IS NULL "
               "OR d.lease_until_ms <= ?1) ORDER BY d.next_attempt_ms "
               "LIMIT ?2",
               -1, &st, NULL)
            != SQLITE_OK)
    {
        json_decref(ids);
        return room <= 0 ? S2A_OK : S2A_ERROR;
    }
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, room);
    while (sqlite3_step(st) == SQLITE_ROW) {
        msg = send_message(st, now_ms / 1000);
        if (msg != NULL) {
            json_array_append_new(out, msg);
            json_array_append_new(ids,
                                  json_integer(sqlite3_column_int64(st, 0)));
        }
    }
    sqlite3_finalize(st);
    /* The attempt counts from now: a report must name this number. */
    json_array_foreach (ids, i, v) {
        args[0] = json_integer_value(v);
        args[1] = now_ms + LEASE_MS;
        args[2] = now_ms / 1000;
        if (exec_ints("UPDATE webhook_deliveries SET attempts = attempts + "
                      "1, lease_until_ms = ?2, last_attempt_at = ?3 WHERE "
                      "id = ?1",
                      3, args)
            != 1)
        {
            json_decref(ids);
            return S2A_ERROR;
        }
    }
    json_decref(ids);
    return S2A_OK;
}

/*
 * Ended rows older than KEEP_S go (the outbox stays bounded), and the
 * pending rows of disabled endpoints are given up once they are past
 * the retry window (nothing else would end them).
 */
static void
prune(int64_t now)
{
    int64_t arg = now - KEEP_S, held = now - S2A_WEBHOOKS_GIVE_UP_S;
    int n = exec_ints("DELETE FROM webhook_deliveries WHERE state != "
                      "'pending' AND created_at < ?1",
                      1, &arg);

    if (n > 0) {
        s2a_log(LOG_INFO, 0, "webhooks: %d old deliveries removed", n);
    }
    n = exec_ints("UPDATE webhook_deliveries SET state = 'failed', "
                  "next_attempt_ms = NULL, lease_until_ms = NULL, "
                  "last_error = 'the endpoint is disabled' WHERE state = "
                  "'pending' AND created_at <= ?1 AND endpoint_id IN "
                  "(SELECT id FROM webhook_endpoints WHERE enabled = 0)",
                  1, &held);
    if (n > 0) {
        s2a_log(LOG_WARNING, 0,
                "webhooks: %d deliveries of disabled endpoints given up", n);
    }
}

void
s2a_webhooks_tick(void)
{
    json_t *out, *msg;
    int64_t now_ms;
    s2a_proc_t *w;
    bool prune_due;
    size_t i;

    if (s2a_master.stopping || s2a_master.db == NULL || !any_ready()) {
        return;
    }
    now_ms = s2a_now_ms();
    prune_due = now_ms / 1000 - W.pruned_at >= PRUNE_EVERY_S;
    /* Most seconds nothing is due: a read says so without a write
     * transaction (the batch's own rows are seen by it too). */
    if (!prune_due
        && count("SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries d "
                 "JOIN webhook_endpoints e ON e.id = d.endpoint_id WHERE "
                 "d.state = 'pending' AND e.enabled = 1 AND "
                 "d.next_attempt_ms <= ?1 AND (d.lease_until_ms IS NULL OR "
                 "d.lease_until_ms <= ?1) LIMIT 1)",
                 now_ms)
            == 0)
    {
        return;
    }
    /* Our own short transaction: the batch first, so that rows its
     * records made are seen and its replies are not held up. */
    if (s2a_db_in_transaction(s2a_master.db)) {
        s2a_ctlserver_commit();
    }
    if (s2a_db_in_transaction(s2a_master.db)
        || s2a_db_begin(s2a_master.db) != S2A_OK)
    {
        return; /* busy: the next tick tries again */
    }
    out = json_array();
    if (prune_due) {
        W.pruned_at = now_ms / 1000;
        prune(W.pruned_at);
    }
    if (out == NULL || lease_due(out, now_ms) != S2A_OK) {
        s2a_db_rollback(s2a_master.db);
        json_decref(out);
        return;
    }
    /* Sent only once the leases are durable: a lost commit must not
     * leave a delivery in flight that the table says is free. */
    if (s2a_db_commit(s2a_master.db) != S2A_OK) {
        json_decref(out);
        return;
    }
    json_array_foreach (out, i, msg) {
        w = s2a_master_next_ready();
        if (w == NULL || s2a_chan_send(w->chan, msg) != S2A_OK) {
            /* Its lease runs out and it is due again. */
            continue;
        }
    }
    if (json_array_size(out) == TICK_BATCH) {
        kick(); /* more may be due: after the loop's other work */
    }
    json_decref(out);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    s2a_webhooks_tick();
}

int
s2a_webhooks_init(void)
{
    int64_t none = 0;

    W.pruned_at = 0;
    /* Whoever held a lease is gone with the last run. */
    if (exec_ints("UPDATE webhook_deliveries SET lease_until_ms = NULL "
                  "WHERE lease_until_ms IS NOT NULL",
                  0, &none)
        < 0)
    {
        return S2A_ERROR;
    }
    W.kick = event_new(s2a_master.base, -1, 0, kick_cb, NULL);
    return W.kick != NULL ? S2A_OK : S2A_ERROR;
}

void
s2a_webhooks_cleanup(void)
{
    if (W.kick != NULL) {
        event_free(W.kick);
        W.kick = NULL;
    }
}

/* "webhook_result" (a record, in the batch): the outcome of an attempt. */
void
s2a_op_webhook_result(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "delivery_id"));
    int64_t attempt = json_integer_value(json_object_get(msg, "attempt"));
    int64_t status = json_integer_value(json_object_get(msg, "status"));
    const char *error = json_string_value(json_object_get(msg, "error"));
    int64_t now_ms = s2a_now_ms(), now = now_ms / 1000, created, next = 0;
    const char *state;
    char kept[ERROR_MAX + 1];
    sqlite3_stmt *st;
    uint32_t r = 0;
    bool delivered = error == NULL && status >= 200 && status <= 299;
    int rc;

    S2A_UNUSED(from);
    if (s2a_ctlserver_batch() != S2A_OK) {
        return;
    }
    if (sqlite3_prepare_v2(conn(),
                           "SELECT created_at, endpoint_id FROM "
                           "webhook_deliveries WHERE id = ?1 AND state = "
                           "'pending' AND attempts = ?2",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, attempt);
    rc = sqlite3_step(st);
    created = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        /* Handed out again since (its lease ran out), or deleted. */
        s2a_log(LOG_DEBUG, 0, "webhook delivery %lld: stale report ignored",
                (long long) id);
        return;
    }
    if (delivered) {
        state = "delivered";
    } else if (s2a_webhooks_give_up(created, now)) {
        state = "failed";
        s2a_log(LOG_WARNING, 0,
                "webhook delivery %lld given up after %lld attempts: %s",
                (long long) id, (long long) attempt,
                error != NULL ? error : "the receiver refused it");
    } else {
        state = "pending";
        s2a_random_bytes(&r, sizeof(r));
        next = now_ms
            + s2a_webhooks_backoff_ms(
                   (int) attempt,
                   (int64_t) s2a_master.conf->webhooks_retry_base * 1000,
                   (double) r / 4294967295.0);
        snprintf(kept, sizeof(kept), "status %lld", (long long) status);
        s2a_log(LOG_INFO, 0,
                "webhook delivery %lld: attempt %lld failed (%s); next in "
                "%lld ms",
                (long long) id, (long long) attempt,
                error != NULL ? error : kept, (long long) (next - now_ms));
    }
    if (error != NULL) {
        snprintf(kept, sizeof(kept), "%s", error);
    }
    if (sqlite3_prepare_v2(
            conn(),
            "UPDATE webhook_deliveries SET state = ?2, last_status = ?3, "
            "last_error = ?4, lease_until_ms = NULL, next_attempt_ms = ?5, "
            "delivered_at = ?6 WHERE id = ?1",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
    if (status > 0) {
        sqlite3_bind_int64(st, 3, status);
    }
    if (error != NULL) {
        sqlite3_bind_text(st, 4, kept, -1, SQLITE_STATIC);
    }
    if (next > 0) {
        sqlite3_bind_int64(st, 5, next);
    }
    if (delivered) {
        sqlite3_bind_int64(st, 6, now);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        s2a_log(LOG_ERR, 0, "webhook delivery %lld not updated: %s",
                (long long) id, sqlite3_errmsg(conn()));
    }
    sqlite3_finalize(st);
}

/* "webhooks_list": every endpoint, oldest first. */
void
s2a_op_webhooks_list(void *from, json_t *msg)
{
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;

    s2a_ctlserver_flush();
    rows = select_rows("SELECT " ENDPOINT_COLUMNS
                       " FROM webhook_endpoints ORDER BY id",
                       0, 0, endpoint_json);
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    s2a_ctlserver_reply(from, reply);
}

/* Writes a new sealed secret for endpoint `id` (0: the caller inserts)
 * and returns it in clear (caller cleanses and frees), or NULL. */
static char *
sealed_secret(char **sealed)
{
    char *secret = s2a_webhooks_new_secret();

    *sealed = secret != NULL ? s2a_seal(s2a_master.key, secret) : NULL;
    if (*sealed == NULL && secret != NULL) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
        secret = NULL;
    }
    return secret;
}

static void
forget_secret(char *secret, char *sealed)
{
    if (secret != NULL) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    free(sealed);
}

/* "webhook_create": a new endpoint; the reply carries its secret. */
void
s2a_op_webhook_create(void *from, json_t *msg)
{
    json_t *fields = json_object_get(msg, "fields"), *row;
    json_t *reply = s2a_ctlserver_reply_for(msg), *en;
    char err[256], *secret, *sealed;
    unsigned events;
    sqlite3_stmt *st;
    int64_t now = s2a_now();
    int rc;

    if (s2a_webhooks_check(fields, true, &events, err, sizeof(err)) != S2A_OK) {
        s2a_ctlserver_fail_code(from, reply, "invalid", err);
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    if (count("SELECT count(*) FROM webhook_endpoints", 0) >= MAX_ENDPOINTS) {
        snprintf(err, sizeof(err), "at most %d webhooks can exist",
                 MAX_ENDPOINTS);
        s2a_ctlserver_fail_code(from, reply, "invalid", err);
        return;
    }
    secret = sealed_secret(&sealed);
    if (secret == NULL
        || sqlite3_prepare_v2(conn(),
                              "INSERT INTO webhook_endpoints(url, events, "
                              "enabled, secret, created_at, updated_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                              -1, &st, NULL)
            != SQLITE_OK)
    {
        forget_secret(secret, sealed);
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    en = json_object_get(fields, "enabled");
    sqlite3_bind_text(st, 1, json_string_value(json_object_get(fields, "url")),
                      -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, (int) events);
    sqlite3_bind_int(st, 3, en == NULL || json_is_true(en));
    sqlite3_bind_text(st, 4, sealed, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    row = rc == SQLITE_DONE ? endpoint_get(sqlite3_last_insert_rowid(conn()))
                            : NULL;
    if (row == NULL) {
        forget_secret(secret, sealed);
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    json_object_set_new(reply, "webhook", row);
    json_object_set_new(reply, "secret", json_string(secret));
    forget_secret(secret, sealed);
    s2a_log(LOG_NOTICE, 0, "webhook %lld created",
            (long long) json_integer_value(json_object_get(row, "id")));
    s2a_ctlserver_reply_later(from, reply);
}

/* "webhook_update": url, event types, enabled; a new secret when asked. */
void
s2a_op_webhook_update(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "webhook_id"));
    json_t *fields = json_object_get(msg, "fields"), *row, *en, *ov;
    json_t *reply = s2a_ctlserver_reply_for(msg);
    char err[256], *secret = NULL, *sealed = NULL;
    unsigned events;
    sqlite3_stmt *st;
    int rc;

    if (s2a_webhooks_check(fields, false, &events, err, sizeof(err)) != S2A_OK)
    {
        s2a_ctlserver_fail_code(from, reply, "invalid", err);
        return;
    }
    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    if (json_is_true(json_object_get(fields, "rotate_secret"))
        && (secret = sealed_secret(&sealed)) == NULL)
    {
        s2a_ctlserver_fail(from, reply, "cannot make a secret");
        return;
    }
    if (sqlite3_prepare_v2(
            conn(),
            "UPDATE webhook_endpoints SET url = COALESCE(?2, url), events = "
            "CASE WHEN ?3 = 0 THEN events ELSE ?3 END, enabled = "
            "COALESCE(?4, enabled), previous_secret = CASE WHEN ?5 IS NULL "
            "THEN previous_secret WHEN ?7 > 0 THEN secret END, "
            "previous_until = CASE WHEN ?5 IS NULL THEN previous_until "
            "WHEN ?7 > 0 THEN ?6 + ?7 END, secret = COALESCE(?5, secret), "
            "updated_at = ?6 WHERE id = ?1",
            -1, &st, NULL)
        != SQLITE_OK)
    {
        forget_secret(secret, sealed);
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    en = json_object_get(fields, "enabled");
    sqlite3_bind_int64(st, 1, id);
    if (json_is_string(json_object_get(fields, "url"))) {
        sqlite3_bind_text(st, 2,
                          json_string_value(json_object_get(fields, "url")), -1,
                          SQLITE_STATIC);
    }
    sqlite3_bind_int(st, 3, (int) events);
    if (en != NULL) {
        sqlite3_bind_int(st, 4, json_is_true(en));
    }
    if (sealed != NULL) {
        sqlite3_bind_text(st, 5, sealed, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 6, s2a_now());
    ov = json_object_get(fields, "secret_overlap");
    sqlite3_bind_int64(st, 7,
                       ov != NULL ? (int64_t) json_integer_value(ov)
                                  : S2A_WEBHOOKS_OVERLAP_DEFAULT_S);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || sqlite3_changes(conn()) == 0
        || (row = endpoint_get(id)) == NULL)
    {
        forget_secret(secret, sealed);
        if (rc == SQLITE_DONE) {
            s2a_ctlserver_fail_code(from, reply, "not_found", "not found");
        } else {
            s2a_ctlserver_fail(from, reply, "database write failed");
        }
        return;
    }
    json_object_set_new(reply, "webhook", row);
    if (secret != NULL) {
        json_object_set_new(reply, "secret", json_string(secret));
    }
    forget_secret(secret, sealed);
    s2a_log(LOG_NOTICE, 0, "webhook %lld updated%s", (long long) id,
            json_object_get(reply, "secret") != NULL ? " (new secret)" : "");
    s2a_ctlserver_reply_later(from, reply);
}

/* "webhook_delete": the endpoint and every delivery of it. */
void
s2a_op_webhook_delete(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "webhook_id"));
    json_t *reply = s2a_ctlserver_reply_for(msg);
    int n;

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    if (exec_ints("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", 1,
                  &id)
            < 0
        || (n = exec_ints("DELETE FROM webhook_endpoints WHERE id = ?1", 1,
                          &id))
            < 0)
    {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    if (n == 0) {
        s2a_ctlserver_fail_code(from, reply, "not_found", "not found");
        return;
    }
    s2a_log(LOG_NOTICE, 0, "webhook %lld deleted", (long long) id);
    s2a_ctlserver_reply_later(from, reply);
}

/* "webhook_deliveries": an endpoint's deliveries, newest first. */
void
s2a_op_webhook_deliveries(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "webhook_id"));
    json_int_t limit = json_integer_value(json_object_get(msg, "limit"));
    json_t *reply = s2a_ctlserver_reply_for(msg), *rows;

    s2a_ctlserver_flush();
    if (count("SELECT count(*) FROM webhook_endpoints WHERE id = ?1", id) <= 0)
    {
        s2a_ctlserver_fail_code(from, reply, "not_found", "not found");
        return;
    }
    if (limit < 1 || limit > 1000) {
        limit = 100;
    }
    rows = select_rows("SELECT " DELIVERY_COLUMNS
                       " FROM webhook_deliveries WHERE endpoint_id = ?1 "
                       "ORDER BY id DESC LIMIT ?2",
                       id, (int) limit, delivery_json);
    if (rows == NULL) {
        s2a_ctlserver_fail(from, reply, "database read failed");
        return;
    }
    json_object_set_new(reply, "rows", rows);
    s2a_ctlserver_reply(from, reply);
}

/* "webhook_test": a webhook.test event for one enabled endpoint. */
void
s2a_op_webhook_test(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "webhook_id"));
    int64_t now_ms = s2a_now_ms();
    json_t *reply = s2a_ctlserver_reply_for(msg), *row;
    char event_id[29];
    sqlite3_stmt *st;
    int64_t enabled;
    int rc;

    if (s2a_ctlserver_batch() != S2A_OK) {
        s2a_ctlserver_fail_db(from, reply);
        return;
    }
    enabled = count("SELECT enabled FROM webhook_endpoints WHERE id = ?1", id);
    if (enabled <= 0) {
        s2a_ctlserver_fail_code(from, reply,
                                enabled < 0 ? "not_found" : "disabled",
                                enabled < 0 ? "not found" : "disabled");
        return;
    }
    new_event_id(event_id);
    if (sqlite3_prepare_v2(conn(),
                           "INSERT INTO webhook_deliveries(endpoint_id, "
                           "event_id, event_type, job_id, created_at, "
                           "next_attempt_ms) VALUES (?1, ?2, '" TEST_TYPE
                           "', NULL, ?3, ?4)",
                           -1, &st, NULL)
        != SQLITE_OK)
    {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms / 1000);
    sqlite3_bind_int64(st, 4, now_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    row = rc == SQLITE_DONE ? delivery_get(sqlite3_last_insert_rowid(conn()))
                            : NULL;
    if (row == NULL) {
        s2a_ctlserver_fail(from, reply, "database write failed");
        return;
    }
    json_object_set_new(reply, "delivery", row);
    s2a_ctlserver_reply_later(from, reply);
    kick();
}
