/*
 * charadmin.h: the admin API's character routes (see charadmin.c). Route
 * handlers (the session is already checked); errors are {"detail"}.
 */
#ifndef S2A_CHARADMIN_H
#define S2A_CHARADMIN_H

#include "worker/http.h"

/* GET /api/characters */
void s2a_charadmin_list(s2a_req_t *req);
/* GET, PATCH, DELETE /api/characters/{id}, POST /api/characters/{id}/update */
void s2a_charadmin_item(s2a_req_t *req);
/* GET /api/tokens/{id}/characters */
void s2a_charadmin_token(s2a_req_t *req);

#endif /* S2A_CHARADMIN_H */
