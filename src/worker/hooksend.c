/*
 * hooksend.c: webhook deliveries the master hands this worker
 * (webhook_send): one POST each on the upstream client, with the body,
 * URL and signed headers exactly as given, no redirect followed, the
 * master's timeout for the whole call, and (unless the operator allows
 * private receivers) the upstream client's private-address check before
 * any connection. The outcome goes back as webhook_result. The worker
 * never sees a webhook secret, only the signature made with it.
 *
 * Owns: one send_t per delivery in flight.
 */
#include "worker/hooksend.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/upstream.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#define MAX_HEADERS   8     /* besides Content-Type */
#define HEADER_MAX    512   /* bytes of one "Name: value" line */
#define BODY_MAX      65536 /* bytes of a body the master sends */
#define ANSWER_MAX    16384 /* bytes of an answer read, then dropped */
#define TIMEOUT_MAX   60000 /* ms a call may be given at most */
#define MAX_IN_FLIGHT 512   /* sends at once in this worker */

typedef struct send_s {
    int64_t id;
    int64_t attempt;
    uint64_t call;
    long timeout_ms;
    struct send_s *prev, *next;
} send_t;

static send_t *sends;
static int nsends;

static void
send_unlink(send_t *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        sends = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    nsends--;
}

/* The outcome of attempt `attempt` of delivery `id` to the master;
 * `error` NULL when the receiver took it. */
static void
report(int64_t id, int64_t attempt, long status, const char *error)
{
    json_t *msg =
        json_pack("{s:s, s:I, s:I, s:I}", "op", "webhook_result", "delivery_id",
                  (json_int_t) id, "attempt", (json_int_t) attempt, "status",
                  (json_int_t) status);

    if (msg == NULL) {
        return;
    }
    if (error != NULL) {
        json_object_set_new(msg, "error", json_string(error));
    }
    s2a_worker_notify_master(msg);
    json_decref(msg);
}

static void
sent(const s2a_upstream_resp_t *resp, void *arg)
{
    send_t *s = arg;
    char why[96];
    const char *error = NULL;
    bool answered = resp->status >= 200 && resp->status <= 299;

    send_unlink(s);
    /* An answer longer than we read is still an answer. */
    if (resp->curl_code != CURLE_OK && !(answered && resp->truncated)) {
        if (resp->curl_code == CURLE_OPERATION_TIMEDOUT) {
            snprintf(why, sizeof(why), "no answer within %ld ms",
                     s->timeout_ms);
            error = why;
        } else {
            error = resp->error != NULL && resp->error[0] != '\0'
                ? resp->error
                : curl_easy_strerror((CURLcode) resp->curl_code);
        }
    } else if (!answered) {
        snprintf(why, sizeof(why), "the receiver answered %ld", resp->status);
        error = why;
    }
    s2a_log(LOG_DEBUG, 0, "webhook delivery %lld attempt %lld: %s",
            (long long) s->id, (long long) s->attempt,
            error != NULL ? error : "delivered");
    report(s->id, s->attempt, resp->status, error);
    free(s);
}

/* Whether `name: value` is a header line we may send as given. */
static bool
header_ok(const char *name, const char *value)
{
    const char *p;

    if (name[0] == '\0') {
        return false;
    }
    for (p = name; *p != '\0'; p++) {
        if (!isalnum((unsigned char) *p) && *p != '-') {
            return false;
        }
    }
    for (p = value; *p != '\0'; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return strlen(name) + strlen(value) + 3 <= HEADER_MAX;
}

/* "webhook_send" from the master: posts one delivery. */
void
s2a_op_webhook_send(void *from, json_t *msg)
{
    int64_t id = json_integer_value(json_object_get(msg, "delivery_id"));
    int64_t attempt = json_integer_value(json_object_get(msg, "attempt"));
    json_int_t timeout = json_integer_value(json_object_get(msg, "timeout_ms"));
    json_t *headers = json_object_get(msg, "headers"), *v;
    char lines[MAX_HEADERS + 1][HEADER_MAX];
    s2a_upstream_req_t req;
    const char *name, *body;
    send_t *s;
    int n = 0;

    S2A_UNUSED(from);
    memset(&req, 0, sizeof(req));
    body = json_string_value(json_object_get(msg, "body"));
    if (timeout <= 0 || timeout > TIMEOUT_MAX || strlen(body) > BODY_MAX
        || json_object_size(headers) > MAX_HEADERS)
    {
        report(id, attempt, 0, "the delivery is malformed");
        return;
    }
    json_object_foreach (headers, name, v) {
        if (!json_is_string(v) || !header_ok(name, json_string_value(v))) {
            report(id, attempt, 0, "the delivery is malformed");
            return;
        }
        snprintf(lines[n], HEADER_MAX, "%s: %s", name, json_string_value(v));
        req.headers[n] = lines[n];
        n++;
    }
    snprintf(lines[n], HEADER_MAX, "User-Agent: sora2api-webhooks/%s",
             S2A_VERSION);
    req.headers[n] = lines[n];
    if (nsends >= MAX_IN_FLIGHT || (s = calloc(1, sizeof(*s))) == NULL) {
        report(id, attempt, 0, "the worker is too busy to send it");
        return;
    }
    s->id = id;
    s->attempt = attempt;
    s->timeout_ms = (long) timeout;
    req.method = "POST";
    req.url = json_string_value(json_object_get(msg, "url"));
    req.body = body;
    req.body_len = strlen(body);
    req.content_type = "application/json";
    req.timeout_ms = (long) timeout;
    req.max_response = ANSWER_MAX;
    req.follow_redirects = false;
    req.public_only = json_is_true(json_object_get(msg, "public_only"));
    s->next = sends;
    if (sends != NULL) {
        sends->prev = s;
    }
    sends = s;
    nsends++;
    s->call = s2a_upstream_start(&req, sent, s);
    if (s->call == 0) {
        send_unlink(s);
        free(s);
        report(id, attempt, 0, "the call could not be started");
    }
}

int
s2a_hooksend_inflight(void)
{
    return nsends;
}

void
s2a_hooksend_cleanup(void)
{
    send_t *s;

    /* Unreported: the master hands them out again once their lease
     * runs out. */
    while ((s = sends) != NULL) {
        send_unlink(s);
        s2a_upstream_cancel(s->call);
        free(s);
    }
}
