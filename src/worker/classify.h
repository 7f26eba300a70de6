/*
 * classify.h: the one place that decides what an upstream failure means,
 * for the token (invalid, cooling, fine) and for the task (retry
 * elsewhere, fail with a reason).
 */
#ifndef S2A_CLASSIFY_H
#define S2A_CLASSIFY_H

#include "common/core.h"

#include <jansson.h>

typedef enum {
    S2A_FAIL_NONE = 0,       /* success */
    S2A_FAIL_TOKEN_INVALID,  /* 401 / token_invalidated: token unusable */
    S2A_FAIL_TOKEN_COOLING,  /* 429 concurrency or quota: retry later */
    S2A_FAIL_RETRYABLE,      /* heavy load, 5xx, transport: try again */
    S2A_FAIL_CONTENT_POLICY, /* the prompt or result was refused */
    S2A_FAIL_TASK            /* anything else: the task fails */
} s2a_fail_t;

typedef struct s2a_failure_s {
    s2a_fail_t kind;
    int64_t cooldown_s; /* S2A_FAIL_TOKEN_COOLING: seconds */
    char message[512];  /* for the client and the token's reason */
} s2a_failure_t;

/*
 * Classifies an upstream answer: HTTP `status` (0: no answer), its JSON
 * `body` (may be NULL), the raw body text and a transport error text.
 */
void s2a_classify(long status, json_t *body, const char *raw,
                  const char *transport_error, s2a_failure_t *out);

const char *s2a_fail_name(s2a_fail_t kind);

#endif /* S2A_CLASSIFY_H */
