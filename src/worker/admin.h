/*
 * admin.h: admin authentication and the admin settings API:
 * /api/login, /api/logout, /api/session, /api/admin/password,
 * /api/admin/apikey, /api/admin/config and the cache, proxy,
 * watermark-free, generation-timeout and token-refresh settings, and
 * /api/models (the model table). Route handlers (routes.c checks the
 * method and the session first). Errors are {"detail": "..."}.
 */
#ifndef S2A_ADMIN_H
#define S2A_ADMIN_H

#include "worker/http.h"

/*
 * Checks the admin session of `req` (Authorization: Bearer <token>, or the
 * bare token). Answers 401 and returns false when it is missing, forged,
 * expired, logged out or from before a password change.
 */
bool s2a_admin_check(s2a_req_t *req);

void s2a_admin_login(s2a_req_t *req);
void s2a_admin_logout(s2a_req_t *req);
void s2a_admin_session(s2a_req_t *req);
void s2a_admin_password(s2a_req_t *req);
void s2a_admin_apikey(s2a_req_t *req);
void s2a_admin_config_get(s2a_req_t *req);
void s2a_admin_config_post(s2a_req_t *req);
void s2a_admin_proxy_get(s2a_req_t *req);
void s2a_admin_proxy_post(s2a_req_t *req);
void s2a_admin_proxy_test(s2a_req_t *req);
void s2a_admin_watermark_get(s2a_req_t *req);
void s2a_admin_watermark_post(s2a_req_t *req);
void s2a_admin_timeout_get(s2a_req_t *req);
void s2a_admin_timeout_post(s2a_req_t *req);
void s2a_admin_cache_get(s2a_req_t *req);
void s2a_admin_cache_config(s2a_req_t *req);
void s2a_admin_cache_enabled(s2a_req_t *req);
void s2a_admin_cache_base_url(s2a_req_t *req);
void s2a_admin_refresh_get(s2a_req_t *req);
void s2a_admin_refresh_enabled(s2a_req_t *req);

/* GET /api/models: the model table (ids, kinds, descriptions). */
void s2a_admin_models(s2a_req_t *req);

#endif /* S2A_ADMIN_H */
