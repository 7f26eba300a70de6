/*
 * media.h: cached media served at /tmp/<name> from [paths] cache_dir:
 * strict names, sendfile, byte ranges (video seeking), validators.
 */
#ifndef S2A_MEDIA_H
#define S2A_MEDIA_H

#include "worker/http.h"

int s2a_media_init(const char *cache_dir);
void s2a_media_cleanup(void);

/* GET/HEAD /tmp/<name>. */
void s2a_media_serve(s2a_req_t *req, const char *name);

/*
 * True for names the cache writes: 1..128 of [A-Za-z0-9_-], one dot, and
 * a known media extension. Everything else is refused before any lookup.
 */
bool s2a_media_name_ok(const char *name);

/* Content type of a cached file name by extension, or NULL. */
const char *s2a_media_type(const char *name);

/*
 * Parses a Range header against a file of `size` bytes. Returns 1 with
 * [*start, *start + *len) for one satisfiable range, 0 to serve the whole
 * file (absent, multiple or malformed ranges), -1 when unsatisfiable.
 */
int s2a_media_range(const char *header, int64_t size, int64_t *start,
                    int64_t *len);

#endif /* S2A_MEDIA_H */
