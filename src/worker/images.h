/*
 * images.h: the OpenAI Images API (docs/images.md): POST
 * /v1/images/generations and /v1/images/edits, JSON or multipart bodies,
 * n generation jobs (gen.c) per request, answered once with URLs or the
 * image bytes in base64.
 */
#ifndef S2A_IMAGES_H
#define S2A_IMAGES_H

#include "worker/http.h"

/* POST /v1/images/generations (the route table has checked the API key). */
void s2a_images_generations(s2a_req_t *req);

/* POST /v1/images/edits: the same with a required input image. */
void s2a_images_edits(s2a_req_t *req);

/*
 * The worker is about to close every connection: each running request's
 * jobs are cancelled and its client answered 503 server_shutdown.
 * Returns how many were answered.
 */
int s2a_images_shutdown(void);

#endif /* S2A_IMAGES_H */
