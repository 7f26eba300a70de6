/*
 * upkeep.c: AT refresh (ST first, then RT with rotation) and quota checks.
 * Each job holds its own copies of the secrets and wipes them when done.
 */
#include "worker/upkeep.h"
#include "common/ops.h"
#include "common/crypto.h"
#include "common/jwt.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/sora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job_s {
    int64_t id;
    char *st, *rt, *client_id, *proxy;
    char *at; /* quota checks: the token's AT */
    char st_error[256];
    uint64_t call;
    struct job_s *next;
} job_t;

static job_t *jobs;

static char *
dup_or_null(json_t *v)
{
    const char *s = json_string_value(v);

    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static void
wipe(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void
job_free(job_t *job)
{
    job_t **pp;

    for (pp = &jobs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    wipe(job->st);
    wipe(job->rt);
    wipe(job->at);
    free(job->client_id);
    free(job->proxy);
    free(job);
}

static job_t *
job_new(json_t *msg)
{
    job_t *job = calloc(1, sizeof(*job));

    if (job == NULL) {
        return NULL;
    }
    job->id = json_integer_value(json_object_get(msg, "token_id"));
    job->st = dup_or_null(json_object_get(msg, "st"));
    job->rt = dup_or_null(json_object_get(msg, "rt"));
    job->client_id = dup_or_null(json_object_get(msg, "client_id"));
    job->proxy = dup_or_null(json_object_get(msg, "proxy"));
    job->next = jobs;
    jobs = job;
    return job;
}

static void
report_failure(job_t *job, const char *reason)
{
    json_t *msg = json_pack("{s:s, s:I, s:s}", "op", "token_refresh_failed",
                            "token_id", (json_int_t) job->id, "reason", reason);

    s2a_worker_notify_master(msg);
    json_decref(msg);
    job_free(job);
}

/* A new AT arrived: check it and hand it to the master. */
static void
report_success(job_t *job, const char *at, const char *rt, const char *via)
{
    s2a_jwt_claims_t claims;
    uint8_t h[S2A_SHA256_LEN];
    char sha[65], reason[160];
    json_t *msg;

    if (s2a_jwt_decode(at, &claims) != S2A_OK) {
        report_failure(job, "the refreshed access token is not a JWT");
        return;
    }
    if (claims.exp != 0 && claims.exp <= s2a_now()) {
        snprintf(reason, sizeof(reason),
                 "the access token obtained from the %s has already "
                 "expired",
                 via);
        report_failure(job, reason);
        return;
    }
    s2a_sha256(at, strlen(at), h);
    s2a_hex(h, sizeof(h), sha);
    msg = json_pack(
        "{s:s, s:I, s:s, s:s, s:o, s:s}", "op", "token_refreshed", "token_id",
        (json_int_t) job->id, "token", at, "sha256", sha, "expiry_time",
        claims.exp != 0 ? json_integer(claims.exp) : json_null(), "via", via);
    if (rt != NULL) {
        json_object_set_new(msg, "rt", json_string(rt));
    }
    s2a_worker_notify_master(msg);
    json_decref(msg);
    job_free(job);
}

static void
rt_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    const char *at =
        json_string_value(json_object_get(r->json, "access_token"));
    char reason[600];

    job->call = 0;
    if (s2a_sora_ok(r) && at != NULL) {
        report_success(
            job, at,
            json_string_value(json_object_get(r->json, "refresh_token")),
            "refresh token");
        return;
    }
    snprintf(reason, sizeof(reason), "%s%srefresh token: %s", job->st_error,
             job->st_error[0] != '\0' ? "; " : "",
             r->status == 200 ? "no access token in the answer"
                              : r->error_message);
    report_failure(job, reason);
}

static void
try_rt(job_t *job)
{
    if (job->rt == NULL) {
        report_failure(job,
                       job->st_error[0] != '\0'
                           ? job->st_error
                           : "no session or refresh token stored");
        return;
    }
    job->call = s2a_sora_refresh_exchange(job->rt, job->client_id, job->proxy,
                                          rt_done, job);
    if (job->call == 0) {
        report_failure(job, "cannot start the refresh call");
    }
}

static void
st_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    const char *at = json_string_value(json_object_get(r->json, "accessToken"));

    job->call = 0;
    if (s2a_sora_ok(r) && at != NULL) {
        report_success(job, at, NULL, "session token");
        return;
    }
    snprintf(job->st_error, sizeof(job->st_error), "session token: %s",
             r->status == 200 ? "invalid or expired" : r->error_message);
    try_rt(job);
}

void
s2a_upkeep_refresh(json_t *msg)
{
    job_t *job = job_new(msg);

    if (job == NULL || job->id <= 0) {
        if (job != NULL) {
            job_free(job);
        }
        return;
    }
    if (job->st == NULL) {
        try_rt(job);
        return;
    }
    job->call = s2a_sora_session_exchange(job->st, job->proxy, st_done, job);
    if (job->call == 0) {
        try_rt(job);
    }
}

/* Sends `fields` (taken over, may be NULL) as an update of the token. */
static void
send_update(job_t *job, json_t *fields)
{
    json_t *msg;

    if (fields == NULL) {
        return;
    }
    msg = json_pack("{s:s, s:I, s:o}", "op", "token_update", "token_id",
                    (json_int_t) job->id, "fields", fields);
    s2a_worker_notify_master(msg);
    json_decref(msg);
}

static void
plan_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;

    job->call = 0;
    if (s2a_sora_ok(r)) {
        send_update(job, s2a_sora_plan_fields(r->json));
    }
    job_free(job);
}

static void
quota_done(const s2a_sora_result_t *r, void *arg)
{
    job_t *job = arg;
    s2a_sora_call_t c;
    json_t *msg;

    job->call = 0;
    if (s2a_sora_ok(r)) {
        send_update(job, s2a_sora_quota_fields(r->json, s2a_now()));
    } else if (r->status == 401) {
        msg = json_pack("{s:s, s:I, s:s, s:s}", "op", "token_state", "token_id",
                        (json_int_t) job->id, "state", "invalid", "reason",
                        r->error_message != NULL ? r->error_message
                                                 : "rejected by Sora");
        s2a_worker_notify_master(msg);
        json_decref(msg);
        job_free(job);
        return;
    }
    /* The plan can change too (renewal, downgrade): read it as well. */
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.path = "/billing/subscriptions";
    c.at = job->at;
    c.proxy = job->proxy;
    job->call = s2a_sora_start(&c, plan_done, job);
    if (job->call == 0) {
        job_free(job);
    }
}

void
s2a_upkeep_quota(json_t *msg)
{
    char at[S2A_SHM_AT_MAX];
    s2a_sora_call_t c;
    job_t *job = job_new(msg);

    if (job == NULL) {
        return;
    }
    if (!s2a_worker_token_at(job->id, at)) {
        job_free(job);
        return;
    }
    job->at = strdup(at);
    explicit_bzero(at, sizeof(at));
    if (job->at == NULL) {
        job_free(job);
        return;
    }
    memset(&c, 0, sizeof(c));
    c.host = S2A_SORA_BACKEND;
    c.method = "GET";
    c.path = "/nf/check";
    c.at = job->at;
    c.proxy = job->proxy;
    job->call = s2a_sora_start(&c, quota_done, job);
    if (job->call == 0) {
        job_free(job);
    }
}

void
s2a_upkeep_cleanup(void)
{
    while (jobs != NULL) {
        if (jobs->call != 0) {
            s2a_sora_cancel(jobs->call);
        }
        job_free(jobs);
    }
}

/* "refresh_token" from the master's sweep. */
void
s2a_op_refresh_token(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    s2a_upkeep_refresh(msg);
}

/* "quota_check" from the master's sweep. */
void
s2a_op_quota_check(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    s2a_upkeep_quota(msg);
}
