/*
 * chat.h: POST /v1/chat/completions, streamed (server-sent events) or
 * answered once, on top of one generation job (gen.c).
 */
#ifndef S2A_CHAT_H
#define S2A_CHAT_H

#include "worker/http.h"

void s2a_chat_completions(s2a_req_t *req, const char *tail);

#endif /* S2A_CHAT_H */
