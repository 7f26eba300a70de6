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

/*
 * The final event: `result` (borrowed) becomes delta.content as a string,
 * with the finish_reason s2a_result_finish() gives. Returns a new string
 * (caller frees) or NULL.
 */
char *s2a_sse_result(s2a_sse_t *sse, json_t *result);

/*
 * The final event of a stream that failed after it began: the error
 * result of s2a_result_error() (the API contract's "错误结果", which both
 * of its parsing examples read), never a bare {"error":...} object.
 * Returns a new string (caller frees) or NULL.
 */
char *s2a_sse_error(s2a_sse_t *sse, const char *message, const char *code);

/* The code of a content-policy refusal in an error result. */
#define S2A_CODE_CONTENT_POLICY "content_policy_violation"

/*
 * The error result {"type":"error","error":m,"data":{"error":m,"code":c}}
 * (a new reference, NULL when out of memory). A NULL `code` becomes
 * "internal_error".
 */
json_t *s2a_result_error(const char *message, const char *code);

/*
 * The finish_reason of a final chunk for a result of `type` (and, for an
 * error result, `code`): "content_filter" for a content-policy refusal,
 * "STOP" for everything else, as the contract's stream example shows.
 */
const char *s2a_result_finish(const char *type, const char *code);

/* A comment line that keeps idle proxies from closing the stream. */
#define S2A_SSE_HEARTBEAT ": keep-alive\n\n"
#define S2A_SSE_DONE      "data: [DONE]\n\n"

#endif /* S2A_SSE_H */
