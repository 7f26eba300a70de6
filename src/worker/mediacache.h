/*
 * mediacache.h: downloading generation results into [paths] cache_dir,
 * served back at /tmp/<name> by media.c. Names are a hash of the source
 * URL plus the extension of the content type, so the same result is
 * fetched once while it is fresh. The download goes to a dot-file and is
 * renamed into place when complete: a reader never sees half a file.
 */
#ifndef S2A_MEDIACACHE_H
#define S2A_MEDIACACHE_H

#include "common/core.h"
#include "common/shm.h"

/* `name` is the cached file's name ("<hash>.mp4"), or NULL with `error`. */
typedef void (*s2a_cache_done_pt)(const char *name, const char *error,
                                  void *arg);

/*
 * Fetches `url` (a result of `kind`) into the cache. `done` runs later
 * from the event loop, never inside this call. Returns an id for
 * s2a_cache_cancel, 0 when out of memory (then `done` never runs).
 */
uint64_t s2a_cache_fetch(const char *url, s2a_kind_t kind,
                         s2a_cache_done_pt done, void *arg);
void s2a_cache_cancel(uint64_t id);

/*
 * The public URL of cached file `name`: the cache_base_url setting, or
 * http://<host> of the client's request. Caller frees.
 */
char *s2a_cache_public_url(const char *name, const char *host);

/* The global proxy when switched on, else NULL (downloads use it too). */
const char *s2a_cache_proxy(void);

#endif /* S2A_MEDIACACHE_H */
