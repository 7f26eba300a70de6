/*
 * charadmin.c: the admin API's character routes (docs/characters.md):
 * GET /api/characters (filters, paging), GET /api/characters/{id},
 * POST /api/characters/{id}/update (and PATCH /api/characters/{id}),
 * DELETE /api/characters/{id} and GET /api/tokens/{id}/characters.
 *
 * The rows live in the master (src/master/characters.c); this file asks
 * it, and for an update or a delete first asks Sora with the account that
 * made the character (update_v2 of its cameo, the delete of its
 * character): a row changes only after Sora took the change, so a refused
 * one leaves it as it was. One ch_req_t per request, freed when it is
 * answered or its client leaves (the call in flight is cancelled).
 */
#include "worker/charadmin.h"
#include "common/log.h"
#include "common/shm.h"
#include "worker/context.h"
#include "worker/sora.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_MAX           128  /* bytes of an id in a path */
#define TEXT_MAX         4096 /* an instruction set */
#define NAME_MAX_BYTES   256  /* a display name */
#define USERNAME_MAX     64
#define SEARCH_MAX       64
#define LIST_MAX         1000
#define OFFSET_MAX       1000000
#define TOKEN_LIST_LIMIT 1000

typedef enum {
    OP_LIST = 0, /* a listing answered as is */
    OP_TOKEN,    /* a token's characters */
    OP_GET,
    OP_UPDATE,
    OP_DELETE
} ch_op_t;

typedef enum {
    STEP_LOOKUP = 0, /* character_get (or the listing) in flight */
    STEP_UPSTREAM,   /* the call to Sora in flight */
    STEP_WRITE       /* character_write or character_delete in flight */
} ch_step_t;

typedef struct ch_req_s {
    s2a_req_t *req;
    ch_op_t op;
    ch_step_t step;
    uint64_t call; /* the master call in flight, 0: none */
    uint64_t sora; /* the Sora call in flight, 0: none */
    int64_t token_id;
    bool local_only;
    json_t *fields; /* OP_UPDATE: the checked body */
    json_t *row;    /* the row looked up */
    json_t *result; /* Sora's answer to the update */
} ch_req_t;

static void master_done(json_t *reply, void *arg);

static void
ch_free(ch_req_t *c)
{
    json_decref(c->fields);
    json_decref(c->row);
    json_decref(c->result);
    free(c);
}

static void
ch_gone(s2a_req_t *req, void *arg)
{
    ch_req_t *c = arg;

    S2A_UNUSED(req);
    if (c->call != 0) {
        s2a_worker_call_cancel(c->call);
    }
    if (c->sora != 0) {
        s2a_sora_cancel(c->sora);
    }
    ch_free(c);
}

/* Answers `c`'s request with `body` (borrowed) and frees `c`. */
static void
finish_json(ch_req_t *c, int status, json_t *body)
{
    s2a_req_t *req = c->req;

    req->on_gone = NULL;
    ch_free(c);
    if (body == NULL) {
        s2a_http_reply_detail(req, 500, "Out of memory");
        return;
    }
    s2a_http_reply_json(req, status, body);
}

/* Answers with {"detail": text} and frees `c`. */
static void
finish_detail(ch_req_t *c, int status, const char *text)
{
    s2a_req_t *req = c->req;

    req->on_gone = NULL;
    ch_free(c);
    s2a_http_reply_detail(req, status, "%s", text);
}

/* Sends `msg` (taken) to the master for `c`; false after answering. */
static bool
ask(ch_req_t *c, json_t *msg)
{
    if (msg == NULL) {
        finish_detail(c, 503, "Out of memory");
        return false;
    }
    c->call = s2a_worker_call_master(msg, master_done, c);
    json_decref(msg);
    if (c->call == 0) {
        finish_detail(c, 503, "Master unavailable");
        return false;
    }
    return true;
}

/* A new ch_req_t for `req`, watching its client, or NULL after
 * answering. */
static ch_req_t *
ch_new(s2a_req_t *req, ch_op_t op)
{
    ch_req_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        s2a_http_reply_detail(req, 503, "Out of memory");
        return NULL;
    }
    c->req = req;
    c->op = op;
    req->on_gone = ch_gone;
    req->gone_arg = c;
    return c;
}

/* ---------------------------------------------------------------------
 * Input
 */

/*
 * Query parameter `name` as an integer in [min, max] into `*out`.
 * Returns 0 when it is absent, 1 when it was read, -1 after answering
 * 400.
 */
static int
query_int(s2a_req_t *req, const char *name, long long min, long long max,
          long long *out)
{
    char *v = s2a_req_query_param(req, name), *end = NULL;
    long long n;

    if (v == NULL) {
        return 0;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
        free(v);
        s2a_http_reply_detail(req, 400,
                              "%s must be an integer from %lld to %lld", name,
                              min, max);
        return -1;
    }
    free(v);
    *out = n;
    return 1;
}

static bool
state_ok(const char *s)
{
    static const char *const states[] = { "processing", "ready", "failed",
                                          "deleting", "deleted" };
    size_t i;

    for (i = 0; i < S2A_NELEMS(states); i++) {
        if (strcmp(s, states[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether `s` is a plausible id: 1..ID_MAX bytes of [A-Za-z0-9_-]. */
static bool
id_ok(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > ID_MAX) {
        return false;
    }
    for (i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
        {
            return false;
        }
    }
    return true;
}

/* Whether the account `id` is in the pool now. */
static bool
token_known(int64_t id)
{
    s2a_shm_t *shm = s2a_worker.shm;
    int slot;

    if (s2a_shm_lock(shm) != S2A_OK) {
        return false;
    }
    slot = s2a_shm_token_find_locked(shm, id);
    s2a_shm_unlock(shm);
    return slot >= 0;
}

/*
 * Checks an update's body: any of display_name (a non-blank string),
 * instruction_set and safety_instruction_set (a string or null),
 * visibility (public or private), nothing else, at least one. Returns
 * NULL with the message in `err`, or the body (borrowed).
 */
static json_t *
update_fields(json_t *in, char *err, size_t errlen)
{
    const char *name, *s;
    json_t *v;

    if (json_object_size(in) == 0) {
        snprintf(err, errlen,
                 "Nothing to update: give display_name, instruction_set, "
                 "safety_instruction_set or visibility");
        return NULL;
    }
    json_object_foreach (in, name, v) {
        if (strcmp(name, "display_name") == 0) {
            s = json_string_value(v);
            if (s == NULL || s[strspn(s, " \t\r\n")] == '\0'
                || json_string_length(v) > NAME_MAX_BYTES)
            {
                snprintf(err, errlen,
                         "display_name must be a non-empty string of at most "
                         "%d bytes",
                         NAME_MAX_BYTES);
                return NULL;
            }
        } else if (strcmp(name, "instruction_set") == 0
                   || strcmp(name, "safety_instruction_set") == 0)
        {
            if (!json_is_null(v)
                && (!json_is_string(v) || json_string_length(v) > TEXT_MAX))
            {
                snprintf(err, errlen,
                         "%s must be a string of at most %d bytes or null",
                         name, TEXT_MAX);
                return NULL;
            }
        } else if (strcmp(name, "visibility") == 0) {
            s = json_string_value(v);
            if (s == NULL
                || (strcmp(s, "public") != 0 && strcmp(s, "private") != 0)) {
                snprintf(err, errlen,
                         "visibility must be \"public\" or \"private\"");
                return NULL;
            }
        } else {
            snprintf(err, errlen,
                     "Unknown field \"%.40s\" (display_name, instruction_set, "
                     "safety_instruction_set and visibility can be changed)",
                     name);
            return NULL;
        }
    }
    return in;
}

/* An instruction set as Sora takes it: {"value":[{"type":"text",
 * "value":text}]}, or null. New reference. */
static json_t *
wrapped(json_t *text)
{
    if (!json_is_string(text)) {
        return json_null();
    }
    return json_pack("{s:[{s:s, s:O}]}", "value", "type", "text", "value",
                     text);
}

/* ---------------------------------------------------------------------
 * Sora
 */

static void
sora_done(const s2a_sora_result_t *r, void *arg)
{
    ch_req_t *c = arg;
    const char *public_id = json_string_value(json_object_get(c->row, "id"));
    char text[600];

    c->sora = 0;
    if (c->op == OP_UPDATE) {
        if (!s2a_sora_ok(r)) {
            if (r->status == 0) {
                snprintf(text, sizeof(text),
                         "Sora did not answer the update: %.400s",
                         r->error_message != NULL ? r->error_message
                                                  : "no answer");
            } else {
                snprintf(
                    text, sizeof(text),
                    "Sora refused the update (status %ld): %.400s", r->status,
                    r->error_message != NULL ? r->error_message : "no answer");
            }
            s2a_log(LOG_WARNING, 0, "character %s: %s", public_id, text);
            finish_detail(c, 502, text);
            return;
        }
        c->result = json_incref(r->json);
        c->step = STEP_WRITE;
        ask(c,
            json_pack("{s:s, s:s, s:O}", "op", "character_write", "public_id",
                      public_id, "fields", c->fields));
        return;
    }
    /* OP_DELETE: a character Sora no longer has is gone as well. */
    if (r->status != 200 && r->status != 204 && r->status != 404) {
        char why[48];

        if (r->status == 0) {
            snprintf(why, sizeof(why), "no answer");
        } else {
            snprintf(why, sizeof(why), "status %ld", r->status);
        }
        snprintf(text, sizeof(text),
                 "Sora did not delete the character (%s): %.400s; "
                 "the record is kept (local_only=true removes only it)",
                 why,
                 r->error_message != NULL ? r->error_message : "no answer");
        s2a_log(LOG_WARNING, 0, "character %s: %s", public_id, text);
        finish_detail(c, 502, text);
        return;
    }
    c->step = STEP_WRITE;
    ask(c,
        json_pack("{s:s, s:s}", "op", "character_delete", "public_id",
                  public_id));
}

/* Starts the Sora call of an update or a delete with the row's token;
 * answers 409 when that token or the needed id is missing. */
static void
upstream_start(ch_req_t *c)
{
    const char *cameo = json_string_value(json_object_get(c->row, "cameo_id"));
    const char *chid =
        json_string_value(json_object_get(c->row, "character_id"));
    int64_t token = json_integer_value(json_object_get(c->row, "token_id"));
    char at[S2A_SHM_AT_MAX], proxy[256], path[256], text[256];
    json_t *body = NULL, *v;
    s2a_sora_call_t call;

    if (c->op == OP_UPDATE && (cameo == NULL || !id_ok(cameo, strlen(cameo)))) {
        finish_detail(c, 409, "Character has no Sora cameo id to update");
        return;
    }
    if (c->op == OP_DELETE && (chid == NULL || !id_ok(chid, strlen(chid)))) {
        finish_detail(c, 409,
                      "Character has no Sora character id to delete; "
                      "local_only=true removes the record");
        return;
    }
    if (!s2a_worker_token_secret(token, at, proxy)) {
        snprintf(text, sizeof(text),
                 "The token that created this character (id %lld) is no "
                 "longer in the pool%s",
                 (long long) token,
                 c->op == OP_DELETE ? "; local_only=true removes the record"
                                    : "");
        finish_detail(c, 409, text);
        return;
    }
    memset(&call, 0, sizeof(call));
    call.host = S2A_SORA_BACKEND;
    call.at = at;
    call.proxy = proxy[0] != '\0' ? proxy : NULL;
    if (c->op == OP_UPDATE) {
        body = json_object();
        v = json_object_get(c->fields, "display_name");
        if (v != NULL) {
            json_object_set(body, "display_name", v);
        }
        v = json_object_get(c->fields, "visibility");
        if (v != NULL) {
            json_object_set(body, "visibility", v);
        }
        v = json_object_get(c->fields, "instruction_set");
        if (v != NULL) {
            json_object_set_new(body, "instruction_set", wrapped(v));
        }
        v = json_object_get(c->fields, "safety_instruction_set");
        if (v != NULL) {
            json_object_set_new(body, "safety_instruction_set", wrapped(v));
        }
        snprintf(path, sizeof(path), "/project_y/cameos/by_id/%s/update_v2",
                 cameo);
        call.method = "POST";
        call.body = body;
    } else {
        snprintf(path, sizeof(path), "/project_y/characters/%s", chid);
        call.method = "DELETE";
    }
    call.path = path;
    c->token_id = token;
    c->step = STEP_UPSTREAM;
    c->sora = s2a_sora_start(&call, sora_done, c);
    explicit_bzero(at, sizeof(at));
    json_decref(body);
    if (c->sora == 0) {
        finish_detail(c, 502, "The call to Sora could not be started");
    }
}

/* ---------------------------------------------------------------------
 * The master's answers
 */

static void
master_failed(ch_req_t *c, json_t *reply)
{
    const char *code = json_string_value(json_object_get(reply, "code"));
    const char *error = json_string_value(json_object_get(reply, "error"));

    if (reply == NULL) {
        finish_detail(c, 503, "Master unavailable");
    } else if (code != NULL && strcmp(code, "not_found") == 0) {
        finish_detail(c, 404, "Character not found");
    } else if (code != NULL && strcmp(code, "invalid") == 0) {
        finish_detail(c, 400, error != NULL ? error : "Invalid request");
    } else if (code != NULL && strcmp(code, "conflict") == 0) {
        finish_detail(c, 409, error != NULL ? error : "Conflict");
    } else {
        finish_detail(c, s2a_worker_failure_status(reply, 500),
                      error != NULL ? error : "Characters unavailable");
    }
}

static void
master_done(json_t *reply, void *arg)
{
    ch_req_t *c = arg;
    const char *state;
    json_t *body, *row;
    char text[160];

    c->call = 0;
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        master_failed(c, reply);
        return;
    }
    switch (c->op) {
    case OP_LIST:
        body = json_pack("{s:b, s:O, s:O}", "success", 1, "characters",
                         json_object_get(reply, "rows"), "total",
                         json_object_get(reply, "total"));
        finish_json(c, 200, body);
        json_decref(body);
        return;
    case OP_TOKEN:
        body = json_pack("{s:b, s:I, s:O}", "success", 1, "token_id",
                         (json_int_t) c->token_id, "characters",
                         json_object_get(reply, "rows"));
        finish_json(c, 200, body);
        json_decref(body);
        return;
    default: break;
    }
    if (c->step == STEP_LOOKUP) {
        row = json_object_get(reply, "row");
        if (!json_is_object(row)) {
            finish_detail(c, 404, "Character not found");
            return;
        }
        c->row = json_incref(row);
        if (c->op == OP_GET) {
            body = json_pack("{s:b, s:O}", "success", 1, "character", row);
            finish_json(c, 200, body);
            json_decref(body);
            return;
        }
        state = json_string_value(json_object_get(row, "state"));
        if (c->op == OP_UPDATE
            && (state == NULL || strcmp(state, "ready") != 0)) {
            snprintf(text, sizeof(text),
                     "Character is %.20s, not ready: only a ready character "
                     "can be updated",
                     state != NULL ? state : "unknown");
            finish_detail(c, 409, text);
            return;
        }
        if (c->op == OP_DELETE
            && (c->local_only
                || json_is_null(json_object_get(row, "character_id"))))
        {
            /* Nothing of it on Sora (not finalized), or not asked to. */
            c->step = STEP_WRITE;
            ask(c,
                json_pack("{s:s, s:O}", "op", "character_delete", "public_id",
                          json_object_get(row, "id")));
            return;
        }
        upstream_start(c);
        return;
    }
    /* STEP_WRITE */
    if (c->op == OP_UPDATE) {
        s2a_log(LOG_NOTICE, 0, "character %s updated on Sora and here",
                json_string_value(json_object_get(c->row, "id")));
        body = json_pack("{s:b, s:O, s:O}", "success", 1, "character",
                         json_object_get(reply, "row"), "result",
                         c->result != NULL ? c->result : json_null());
    } else {
        s2a_log(LOG_NOTICE, 0, "character %s deleted%s",
                json_string_value(json_object_get(c->row, "id")),
                c->local_only ? " (here only)" : "");
        body = json_pack("{s:b, s:s}", "success", 1, "message",
                         "Character deleted");
    }
    finish_json(c, 200, body);
    json_decref(body);
}

/* ---------------------------------------------------------------------
 * Routes
 */

void
s2a_charadmin_list(s2a_req_t *req)
{
    long long token = 0, limit = 100, offset = 0;
    char *state = s2a_req_query_param(req, "state");
    char *username = s2a_req_query_param(req, "username");
    char *search = s2a_req_query_param(req, "search");
    const char *bad = NULL;
    json_t *msg;
    ch_req_t *c;
    int t;

    if ((t = query_int(req, "token_id", 1, INT64_MAX, &token)) < 0
        || query_int(req, "limit", 1, LIST_MAX, &limit) < 0
        || query_int(req, "offset", 0, OFFSET_MAX, &offset) < 0)
    {
        goto done;
    }
    if (state != NULL && !state_ok(state)) {
        bad = "state must be processing, ready, failed, deleting or deleted";
    } else if (username != NULL
               && (username[0] == '\0' || strlen(username) > USERNAME_MAX))
    {
        bad = "username must be 1 to 64 bytes";
    } else if (search != NULL && strlen(search) > SEARCH_MAX) {
        bad = "search must be at most 64 bytes";
    }
    if (bad != NULL) {
        s2a_http_reply_detail(req, 400, "%s", bad);
        goto done;
    }
    msg = json_pack("{s:s, s:I, s:I}", "op", "characters_list", "limit",
                    (json_int_t) limit, "offset", (json_int_t) offset);
    if (msg != NULL && t > 0) {
        json_object_set_new(msg, "token_id", json_integer(token));
    }
    if (msg != NULL && state != NULL) {
        json_object_set_new(msg, "state", json_string(state));
    }
    if (msg != NULL && username != NULL) {
        json_object_set_new(msg, "username", json_string(username));
    }
    if (msg != NULL && search != NULL && search[0] != '\0') {
        json_object_set_new(msg, "search", json_string(search));
    }
    if ((c = ch_new(req, OP_LIST)) != NULL) {
        ask(c, msg);
    } else {
        json_decref(msg);
    }
done:
    free(state);
    free(username);
    free(search);
}

void
s2a_charadmin_token(s2a_req_t *req)
{
    ch_req_t *c;

    if (!token_known(req->path_id)) {
        s2a_http_reply_detail(req, 404, "Token not found");
        return;
    }
    if ((c = ch_new(req, OP_TOKEN)) == NULL) {
        return;
    }
    c->token_id = req->path_id;
    ask(c,
        json_pack("{s:s, s:I, s:i}", "op", "characters_list", "token_id",
                  (json_int_t) req->path_id, "limit", TOKEN_LIST_LIMIT));
}

void
s2a_charadmin_item(s2a_req_t *req)
{
    const char *tail = req->path_tail, *slash = strchr(tail, '/');
    size_t len = slash != NULL ? (size_t) (slash - tail) : strlen(tail);
    const char *key;
    char id[ID_MAX + 1], err[256], *lo;
    json_t *in = NULL;
    ch_op_t op;
    ch_req_t *c;

    if (slash != NULL && strcmp(slash, "/update") != 0) {
        s2a_http_reply_detail(req, 404, "Not Found");
        return;
    }
    if (slash != NULL) {
        if (req->method != S2A_M_POST) {
            s2a_http_add_header(req, "Allow", "POST");
            s2a_http_reply_detail(req, 405, "Method Not Allowed");
            return;
        }
        op = OP_UPDATE;
    } else if (req->method == S2A_M_GET || req->method == S2A_M_HEAD) {
        op = OP_GET;
    } else if (req->method == S2A_M_PATCH) {
        op = OP_UPDATE;
    } else if (req->method == S2A_M_DELETE) {
        op = OP_DELETE;
    } else {
        s2a_http_add_header(req, "Allow", "GET, HEAD, PATCH, DELETE");
        s2a_http_reply_detail(req, 405, "Method Not Allowed");
        return;
    }
    if (!id_ok(tail, len)) {
        s2a_http_reply_detail(req, 404, "Character not found");
        return;
    }
    memcpy(id, tail, len);
    id[len] = '\0';
    key = strncmp(id, "char_", 5) == 0 ? "public_id"
        : strncmp(id, "ch_", 3) == 0   ? "character_id"
                                       : "cameo_id";
    if (op == OP_UPDATE) {
        if ((in = s2a_req_json_object(req, true)) == NULL) {
            return;
        }
        if (update_fields(in, err, sizeof(err)) == NULL) {
            json_decref(in);
            s2a_http_reply_detail(req, 400, "%s", err);
            return;
        }
    }
    if ((c = ch_new(req, op)) == NULL) {
        json_decref(in);
        return;
    }
    c->fields = in;
    if (op == OP_DELETE) {
        lo = s2a_req_query_param(req, "local_only");
        c->local_only =
            lo != NULL && (strcmp(lo, "true") == 0 || strcmp(lo, "1") == 0);
        free(lo);
    }
    ask(c, json_pack("{s:s, s:s}", "op", "character_get", key, id));
}
