/*
 * chat.h: POST /v1/chat/completions, streamed (server-sent events) or
 * answered once, on top of one generation job (gen.c).
 */
#ifndef S2A_CHAT_H
#define S2A_CHAT_H

#include "worker/http.h"

/* POST /v1/chat/completions (the route table has checked the API key). */
void s2a_chat_completions(s2a_req_t *req);

/*
 * The worker is about to close every connection (its drain deadline):
 * each running generation is cancelled and its client told so, with an
 * error event or a 503, while the connection can still carry it.
 * Returns how many were told.
 */
int s2a_chat_shutdown(void);

#endif /* S2A_CHAT_H */
