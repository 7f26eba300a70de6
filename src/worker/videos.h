/*
 * videos.h: the OpenAI Videos API (docs/videos.md): POST /v1/videos
 * (JSON or multipart; answered when the video is ready, or at once with
 * a queued job that runs on without its client), GET /v1/videos,
 * GET and DELETE /v1/videos/{id}, GET /v1/videos/{id}/content.
 */
#ifndef S2A_VIDEOS_H
#define S2A_VIDEOS_H

#include "worker/http.h"

/* POST /v1/videos (the route table has checked the API key). */
void s2a_videos_create(s2a_req_t *req);

/* GET /v1/videos?after=&limit=&order=: a page of Video objects. */
void s2a_videos_list(s2a_req_t *req);

/*
 * /v1/videos/<id>: GET (the Video object), DELETE (a finished one), and
 * GET <id>/content (the file).
 */
void s2a_videos_item(s2a_req_t *req);

/*
 * POST /v1/videos/<id>/remix {prompt}: a new video remixing finished
 * video <id> through a post of its draft; answered as a create is.
 */
void s2a_videos_remix(s2a_req_t *req);

/*
 * Where this worker answered its last GET /v1/videos/<id> from: "table"
 * (the live job table), "master" (the task row), or NULL before the
 * first. For the test hooks.
 */
const char *s2a_videos_last_source(void);

#ifdef S2A_TEST_HOOKS
/* Test builds: the next `n` retrieves of this worker ask the master. */
void s2a_videos_test_bypass(int n);
#endif

/* Frees the worker's cache of rendered Video objects (at exit). */
void s2a_videos_cleanup(void);

/*
 * The worker is about to close every connection: each synchronous
 * create's job is cancelled and its client answered 503
 * server_shutdown. Returns how many were answered.
 */
int s2a_videos_shutdown(void);

#endif /* S2A_VIDEOS_H */
