/*
 * static.h: the admin UI files under [paths] admin_ui_dir, served at /.
 */
#ifndef S2A_STATIC_H
#define S2A_STATIC_H

#include "worker/http.h"

/* Opens the document root. Returns S2A_OK or S2A_ERROR (logged). */
int s2a_static_init(const char *root);
void s2a_static_cleanup(void);

/* Serves req->path from the root (GET/HEAD), or answers 404. */
void s2a_static_serve(s2a_req_t *req);

/* Content type for a file name, by extension. */
const char *s2a_static_content_type(const char *name);

/*
 * True when `path` (decoded, starting with '/') is a safe relative path:
 * no "..", no empty or "." segments, no backslash, no control bytes.
 */
bool s2a_static_path_ok(const char *path);

#endif /* S2A_STATIC_H */
