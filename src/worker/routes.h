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
 * The facade's handler: routes one request through the table (routes.c)
 * and answers it, or hands it to a handler that will.
 */
void s2a_routes_dispatch(s2a_req_t *req, void *arg);

/*
 * Checks "Authorization: Bearer <API key>". Answers 401 and returns false
 * when it is missing or wrong.
 */
bool s2a_routes_check_api_key(s2a_req_t *req);

#endif /* S2A_ROUTES_H */
