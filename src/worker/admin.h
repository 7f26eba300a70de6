/*
 * admin.h: admin authentication and the admin settings API:
 * /api/login, /api/logout, /api/session, /api/admin/password,
 * /api/admin/apikey, /api/admin/config. Errors are {"detail": "..."}.
 */
#ifndef S2A_ADMIN_H
#define S2A_ADMIN_H

#include "worker/http.h"

/*
 * Dispatches an /api/ request: every route but /api/login needs a session;
 * unknown /api/ paths get 404 {"detail"}. Always answers; returns true.
 */
bool s2a_admin_dispatch(s2a_req_t *req);

/*
 * Checks the admin session of `req` (Authorization: Bearer <token>, or the
 * bare token). Answers 401 and returns false when it is missing, forged,
 * expired, logged out or from before a password change.
 */
bool s2a_admin_check(s2a_req_t *req);

#endif /* S2A_ADMIN_H */
