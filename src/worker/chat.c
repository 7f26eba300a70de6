/*
 * chat.c: the chat-completions route (docs/generation.md, "The stream").
 */
#include "worker/chat.h"
#include "worker/apikeys.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/chatreq.h"
#include "worker/context.h"
#include "worker/gen.h"
#include "worker/sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The quiet time before a keep-alive comment: [server]
 * keepalive_interval. */
static int64_t
heartbeat_ms(void)
{
    return (int64_t) s2a_worker.conf->keepalive_interval * 1000;
}

typedef struct chat_s {
    s2a_req_t *req;
    s2a_gen_t *gen;
    bool stream;
    bool finished; /* done ran */
    s2a_sse_t sse;
    struct event *heartbeat;
    int64_t last_write_ms;
    struct chat_s *prev, *next; /* running chats of this worker */
} chat_t;

static chat_t *chats;

static void
chat_free(chat_t *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (chats == c) {
        chats = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->heartbeat != NULL) {
        event_free(c->heartbeat);
    }
    free(c);
}

static void
write_event(chat_t *c, char *ev)
{
    if (ev != NULL) {
        s2a_http_stream_write(c->req, ev, strlen(ev));
        free(ev);
        c->last_write_ms = s2a_mono_ms();
    }
}

static void
arm_heartbeat(chat_t *c, int64_t ms)
{
    struct timeval tv = { (time_t) (ms / 1000),
                          (suseconds_t) (ms % 1000) * 1000 };

    evtimer_add(c->heartbeat, &tv);
}

/* An SSE comment when nothing was sent for a while: proxies that cut
 * idle connections leave the stream alone. One timer per stream, woken
 * once per quiet period. */
static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    chat_t *c = arg;
    int64_t idle = s2a_mono_ms() - c->last_write_ms, hb = heartbeat_ms();

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    if (idle >= hb) {
        s2a_http_stream_write(c->req, S2A_SSE_HEARTBEAT,
                              sizeof(S2A_SSE_HEARTBEAT) - 1);
        c->last_write_ms = s2a_mono_ms();
        idle = 0;
    }
    arm_heartbeat(c, hb - idle);
}

static void
on_progress(void *arg, const char *stage, const char *status, int progress,
            const char *message, json_t *details)
{
    chat_t *c = arg;

    if (c->stream) {
        write_event(c,
                    s2a_sse_progress(&c->sse, stage, status, progress, message,
                                     details, s2a_now()));
    }
}

static void
reply_completion(chat_t *c, json_t *result)
{
    const char *type = json_string_value(json_object_get(result, "type"));
    char *content = json_dumps(result, JSON_COMPACT), id[48];
    json_t *body;

    snprintf(id, sizeof(id), "chatcmpl-%s", c->req->rid);
    body = json_pack(
        "{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s}, s:s}],"
        " s:{s:i, s:i, s:i}}",
        "id", id, "object", "chat.completion", "created",
        (json_int_t) s2a_now(), "model", "sora", "choices", "index", 0,
        "message", "role", "assistant", "content",
        content != NULL ? content : "", "finish_reason",
        type != NULL && strcmp(type, "error") == 0 ? "content_filter" : "stop",
        "usage", "prompt_tokens", 0, "completion_tokens", 1, "total_tokens", 1);
    free(content);
    if (body == NULL) {
        s2a_http_reply_error(c->req, 500, "server_error", "internal_error",
                             NULL, "out of memory");
        return;
    }
    s2a_http_reply_json(c->req, 200, body);
    json_decref(body);
}

static void
on_done(void *arg, json_t *result, int status, const char *type,
        const char *code, const char *message)
{
    chat_t *c = arg;

    c->finished = true;
    c->gen = NULL;
    c->req->on_gone = NULL;
    if (c->stream) {
        /* A failure ends like a refusal: an error result the contract's
         * parsers read, never a chunk without choices. */
        if (result != NULL) {
            write_event(c, s2a_sse_result(&c->sse, result));
        } else {
            write_event(c, s2a_sse_error(&c->sse, message, code));
        }
        s2a_http_stream_write(c->req, S2A_SSE_DONE, sizeof(S2A_SSE_DONE) - 1);
        s2a_http_stream_end(c->req);
    } else if (result != NULL) {
        reply_completion(c, result);
    } else {
        s2a_http_reply_error(c->req, status, type, code, NULL, "%s", message);
    }
    chat_free(c);
}

static const s2a_gen_ops_t chat_ops = { on_progress, on_done, NULL };

static void
on_gone(s2a_req_t *req, void *arg)
{
    chat_t *c = arg;

    S2A_UNUSED(req);
    if (c->gen != NULL) {
        s2a_gen_cancel(c->gen, "the client went away", 499);
    }
    chat_free(c);
}

int
s2a_chat_shutdown(void)
{
    static const char why[] =
        "the server is shutting down; the generation was stopped";
    chat_t *c;
    int n = 0;

    while ((c = chats) != NULL) {
        if (c->gen != NULL) {
            s2a_gen_cancel(c->gen, why, 503);
            c->gen = NULL;
        }
        /* The same ending a failure gets, so clients handle it alike. */
        on_done(c, NULL, 503, "server_error", "server_shutdown", why);
        n++;
    }
    return n;
}

void
s2a_chat_completions(s2a_req_t *req)
{
    s2a_chatreq_t creq;
    s2a_keyticket_t ticket;
    const char *param = NULL;
    char err[512];
    json_t *body;
    chat_t *c;
    s2a_gen_t *gen;

    memset(&ticket, 0, sizeof(ticket));
    body = s2a_req_json_object(req, false);
    if (body == NULL) {
        return; /* answered */
    }
    if (s2a_chatreq_parse(body, &creq, err, sizeof(err), &param) != S2A_OK) {
        s2a_http_reply_error(req, 400, "invalid_request_error",
                             param != NULL && strcmp(param, "model") == 0
                                 ? "model_not_found"
                                 : "invalid_value",
                             param, "%s", err);
        goto done;
    }
    /* A character's video given inline is checked before any job: an
     * MP4, QuickTime or WebM file of at most 20 MiB. */
    if ((creq.mode == S2A_MODE_CHARACTER
         || creq.mode == S2A_MODE_CHARACTER_VIDEO)
        && s2a_gen_video_check(&creq.video, err, sizeof(err)) != S2A_OK)
    {
        s2a_http_reply_error(req, 400, "invalid_request_error", "invalid_video",
                             "video", "%s", err);
        goto done;
    }
    /* The key's model allow-list, quota and concurrency. */
    if (!s2a_apikeys_admit(req, creq.model, 1, &ticket)) {
        goto done;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
        goto done;
    }
    c->req = req;
    c->stream = creq.stream;
    c->next = chats;
    if (chats != NULL) {
        chats->prev = c;
    }
    chats = c;
    if (c->stream) {
        c->heartbeat = evtimer_new(s2a_worker.base, heartbeat_cb, c);
        if (c->heartbeat == NULL) {
            chat_free(c);
            s2a_http_reply_error(req, 500, "server_error", "internal_error",
                                 NULL, "out of memory");
            goto done;
        }
        s2a_sse_init(&c->sse, s2a_now());
        s2a_http_add_header(req, "Cache-Control", "no-cache");
        s2a_http_add_header(req, "X-Accel-Buffering", "no");
        s2a_http_stream_start(req, 200, "text/event-stream");
        c->last_write_ms = s2a_mono_ms();
        arm_heartbeat(c, heartbeat_ms());
    }
    req->on_gone = on_gone;
    req->gone_arg = c;
    creq.owner = req->owner;
    gen = s2a_gen_start(&creq, req->rid, s2a_req_header(req, "Host"), &chat_ops,
                        c);
    if (gen == NULL) {
        on_done(c, NULL, 500, "server_error", "internal_error",
                "out of memory");
    } else {
        s2a_gen_set_key(gen, &ticket);
        c->gen = gen;
    }
done:
    s2a_apikeys_ticket_release(&ticket);
    s2a_chatreq_cleanup(&creq);
    json_decref(body);
}
