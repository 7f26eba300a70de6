/*
 * hooksadmin.h: the admin API's webhook routes (see hooksadmin.c). Route
 * handlers (the session is already checked); errors are {"detail"}.
 */
#ifndef S2A_HOOKSADMIN_H
#define S2A_HOOKSADMIN_H

#include "worker/http.h"

void s2a_hooksadmin_list(s2a_req_t *req);
void s2a_hooksadmin_create(s2a_req_t *req);
void s2a_hooksadmin_update(s2a_req_t *req);
void s2a_hooksadmin_delete(s2a_req_t *req);
void s2a_hooksadmin_deliveries(s2a_req_t *req);
void s2a_hooksadmin_test(s2a_req_t *req);

#endif /* S2A_HOOKSADMIN_H */
