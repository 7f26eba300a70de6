/*
 * characters.h: the character creation routes (docs/characters.md):
 * POST /v1/characters (the API contract's shape: multipart, or JSON with
 * the video as base64, a data URL or a URL) and the official Videos API
 * shape, POST /v1/videos/characters and GET /v1/videos/characters/{id}.
 * A creation is a character-only generation job (gen.c, cameo.c) the
 * request waits for.
 */
#ifndef S2A_CHARACTERS_H
#define S2A_CHARACTERS_H

#include "worker/http.h"

void s2a_characters_create(s2a_req_t *req);
void s2a_videos_characters_create(s2a_req_t *req);
void s2a_videos_characters_get(s2a_req_t *req);

/* The server stops: waiting creations answer 503 server_shutdown.
 * Returns how many there were. */
int s2a_characters_shutdown(void);

#endif /* S2A_CHARACTERS_H */
