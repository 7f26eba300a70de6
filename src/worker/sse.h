/*
 * sse.h: the chat-completion chunks of a streamed generation, rendered as
 * server-sent events ("data: <json>\n\n"), in the shape of the API
 * contract: a role chunk, progress chunks whose delta.reasoning_content is
 * {stage, status, progress?, message, details?, timestamp}, one final
 * chunk whose delta.content is the result JSON as a string, "[DONE]".
 */
#ifndef S2A_SSE_H
#define S2A_SSE_H

#include "common/core.h"

#include <jansson.h>

typedef struct s2a_sse_s {
    char id[48]; /* chatcmpl-... shared by every chunk */
    int64_t created;
    bool role_sent;
} s2a_sse_t;

/* Starts a stream: a fresh completion id and creation time. */
void s2a_sse_init(s2a_sse_t *sse, int64_t now);

/*
 * One progress event. `progress` < 0 omits it; `details` (borrowed) may be
 * NULL. Returns a new string (caller frees) or NULL.
 */
char *s2a_sse_progress(s2a_sse_t *sse, const char *stage, const char *status,
                       int progress, const char *message, json_t *details,
                       int64_t now);

/* The final event: `result` (borrowed) becomes delta.content as a string. */
char *s2a_sse_result(s2a_sse_t *sse, json_t *result);

/* An error after the stream began, in the OpenAI envelope. */
char *s2a_sse_error(const char *message, const char *type, const char *code);

/* A comment line that keeps idle proxies from closing the stream. */
#define S2A_SSE_HEARTBEAT ": keep-alive\n\n"
#define S2A_SSE_DONE      "data: [DONE]\n\n"

#endif /* S2A_SSE_H */
