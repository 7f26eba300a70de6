/*
 * routes.h: request dispatch for a worker: the one route table of /v1,
 * /api, health, media and the admin UI, with CORS, the credential checks
 * and the 404/405 answers it derives.
 */
#ifndef S2A_ROUTES_H
#define S2A_ROUTES_H

#include "worker/http.h"

/* Prepares pre-rendered bodies. Returns S2A_OK or S2A_ERROR. */
int s2a_routes_init(void);
void s2a_routes_cleanup(void);

/*
 * The server's admission callback (s2a_http_admit_pt): routes a request
 * from its head through the table, checks its credential and answers
 * 401/404/405 or a preflight itself (S2A_DECLINED), or keeps the row in
 * the request, sets the row's body limit and returns S2A_OK.
 */
int s2a_routes_admit(s2a_req_t *req, void *arg, int64_t *body_limit);

/*
 * The server's handler: runs the row s2a_routes_admit chose for the
 * request, its body read; the row answers it or hands it on.
 */
void s2a_routes_dispatch(s2a_req_t *req, void *arg);

/*
 * Checks "Authorization: Bearer <API key>". Answers 401 and returns false
 * when it is missing or wrong.
 */
bool s2a_routes_check_api_key(s2a_req_t *req);

#endif /* S2A_ROUTES_H */
