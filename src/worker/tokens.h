/*
 * tokens.h: the account-pool admin API (/api/tokens...): list, add with
 * onboarding, update, enable/disable, delete, test, ST/RT conversion.
 */
#ifndef S2A_TOKENS_H
#define S2A_TOKENS_H

#include "worker/http.h"

/*
 * Handles an /api/tokens request (the session is already checked).
 * Returns false when the path is not a tokens route.
 */
bool s2a_tokens_dispatch(s2a_req_t *req);

#endif /* S2A_TOKENS_H */
