/*
 * tokens.h: the account-pool admin API (/api/tokens...): list, add with
 * onboarding, update, enable/disable, delete, test, ST/RT conversion,
 * import, export, Sora 2 activation. Route handlers: the session is
 * already checked and {id} is in req->path_id. Errors are {"detail"}.
 */
#ifndef S2A_TOKENS_H
#define S2A_TOKENS_H

#include "worker/http.h"

void s2a_tokens_list(s2a_req_t *req);       /* GET /api/tokens */
void s2a_tokens_add(s2a_req_t *req);        /* POST /api/tokens */
void s2a_tokens_update(s2a_req_t *req);     /* PUT /api/tokens/{id} */
void s2a_tokens_delete(s2a_req_t *req);     /* DELETE /api/tokens/{id} */
void s2a_tokens_enable(s2a_req_t *req);     /* POST .../{id}/enable */
void s2a_tokens_disable(s2a_req_t *req);    /* POST .../{id}/disable */
void s2a_tokens_status(s2a_req_t *req);     /* PUT .../{id}/status */
void s2a_tokens_test(s2a_req_t *req);       /* POST .../{id}/test */
void s2a_tokens_activate(s2a_req_t *req);   /* POST .../{id}/sora2/activate */
void s2a_tokens_st2at(s2a_req_t *req);      /* POST /api/tokens/st2at */
void s2a_tokens_rt2at(s2a_req_t *req);      /* POST /api/tokens/rt2at */
void s2a_tokens_import(s2a_req_t *req);     /* POST /api/tokens/import */
void s2a_tokens_batch(s2a_req_t *req);      /* POST /api/tokens/batch */
void s2a_tokens_export(s2a_req_t *req);     /* GET /api/tokens/export */
void s2a_tokens_batch_test(s2a_req_t *req); /* POST .../batch/test */

#endif /* S2A_TOKENS_H */
