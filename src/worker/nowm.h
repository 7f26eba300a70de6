/*
 * nowm.h: the watermark-free copy of a finished video. The draft is
 * published as a post; the post id then gives the clean file, through the
 * third-party URL template (whose first byte is fetched before it is
 * trusted) or the custom parse server of the settings. The post is
 * deleted again whenever nothing needs it: on every failure here, and
 * by the job once the file cache holds the video (clean or not).
 */
#ifndef S2A_NOWM_H
#define S2A_NOWM_H

#include "common/core.h"

/*
 * `url` is the watermark-free URL (with `post_id` and the parse method),
 * or NULL with `error`. A post that was created but gave no reachable
 * URL has been deleted again.
 */
typedef void (*s2a_nowm_done_pt)(const char *url, const char *post_id,
                                 const char *method, const char *error,
                                 void *arg);

/*
 * Publishes generation `generation_id` with the account of token
 * `token_id`. `done` runs later, from the event loop. Returns an id for
 * s2a_nowm_cancel, 0 when it could not start (`done` never runs).
 */
uint64_t s2a_nowm_start(int64_t token_id, const char *generation_id,
                        s2a_nowm_done_pt done, void *arg);

/* Stops job `id` (`done` never runs) and deletes a post it made. */
void s2a_nowm_cancel(uint64_t id);

/* Deletes post `post_id` in the background; a failure is only logged. */
void s2a_nowm_delete_post(int64_t token_id, const char *post_id);

#endif /* S2A_NOWM_H */
