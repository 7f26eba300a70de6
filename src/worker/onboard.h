/*
 * onboard.h: what the gateway learns about an account from Sora, as one
 * asynchronous sequence of calls: adding a token (me, subscriptions,
 * invite/mine with the bootstrap retry, nf/check, username setup) and
 * testing one (me, invite/mine, nf/check).
 */
#ifndef S2A_ONBOARD_H
#define S2A_ONBOARD_H

#include "common/core.h"

#include <jansson.h>

typedef struct s2a_onboard_s s2a_onboard_t;

typedef enum {
    S2A_ONBOARD_ADD = 0,
    S2A_ONBOARD_TEST
} s2a_onboard_mode_t;

typedef struct s2a_onboard_result_s {
    bool ok;
    int status;         /* HTTP status for the client on failure */
    const char *detail; /* why it failed */
    bool token_invalid; /* Sora rejected the token itself (401) */
    json_t *fields;     /* token columns learnt (borrowed) */
} s2a_onboard_result_t;

typedef void (*s2a_onboard_done_pt)(const s2a_onboard_result_t *r, void *arg);

/*
 * Starts the sequence for access token `at` (copied). `fields` (borrowed,
 * may be NULL) seeds what is already known. Returns NULL when it could not
 * start; otherwise `done` is called exactly once unless cancelled.
 */
s2a_onboard_t *s2a_onboard_start(s2a_onboard_mode_t mode, const char *at,
                                 const char *proxy, json_t *fields,
                                 s2a_onboard_done_pt done, void *arg);

/* Stops the sequence; `done` will not be called. */
void s2a_onboard_cancel(s2a_onboard_t *ob);

#endif /* S2A_ONBOARD_H */
