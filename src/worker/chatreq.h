/*
 * chatreq.h: reading a /v1/chat/completions request: the last message
 * (string or parts), the media inputs, the generation mode, and the
 * prompt rewriting some modes need (remix links removed, storyboard
 * shots laid out). Pure functions: no I/O.
 */
#ifndef S2A_CHATREQ_H
#define S2A_CHATREQ_H

#include "common/core.h"
#include "common/models.h"
#include "worker/charopts.h"
#include "worker/mediain.h"

#include <jansson.h>

typedef enum {
    S2A_MODE_TEXT_TO_IMAGE = 0,
    S2A_MODE_IMAGE_TO_IMAGE,
    S2A_MODE_TEXT_TO_VIDEO,
    S2A_MODE_IMAGE_TO_VIDEO,
    S2A_MODE_REMIX,
    S2A_MODE_STORYBOARD,
    S2A_MODE_CHARACTER,      /* video input, no prompt */
    S2A_MODE_CHARACTER_VIDEO /* video input and a prompt */
} s2a_mode_t;

/*
 * Request caps, each refused with a 400 naming it. Only the last message
 * is read, but a chat client sends the whole conversation; the prompt is
 * the last message's texts joined by newlines.
 */
#define S2A_CHATREQ_MAX_MESSAGES 4096
#define S2A_CHATREQ_MAX_PARTS    256
#define S2A_CHATREQ_MAX_PROMPT   65536 /* bytes */

typedef struct s2a_chatreq_s {
    const s2a_model_t *model;
    bool stream;
    char *prompt; /* owned; the texts of the last message, one per line */
    size_t prompt_len, prompt_cap;
    s2a_media_in_t image;
    s2a_media_in_t video;
    char remix_id[40]; /* s_<32 hex>, or "" */
    char style_id[64];
    json_t *character_options; /* borrowed object or NULL */
    s2a_charopts_t *charopts;  /* owned: the checked options (character
                                  modes), or NULL */
    s2a_mode_t mode;
    int64_t owner;  /* the caller's API key id (the route sets it) */
    char param[64]; /* the parameter a refusal names, when built */
} s2a_chatreq_t;

/*
 * Parses `body`. Returns S2A_OK, or S2A_ERROR with a client-facing
 * message in `err` and the offending parameter in `param` (both for a 400
 * in the OpenAI envelope). The request borrows from `body`: keep it alive
 * until s2a_chatreq_cleanup(), which is due after an error too.
 */
int s2a_chatreq_parse(json_t *body, s2a_chatreq_t *req, char *err,
                      size_t errlen, const char **param);
void s2a_chatreq_cleanup(s2a_chatreq_t *req);

const char *s2a_mode_name(s2a_mode_t mode);

/* Finds "s_" + 32 lower-case hex digits in `text`; copies it to `out`. */
bool s2a_find_remix_id(const char *text, char out[35]);

/*
 * The prompt without Sora share links or bare share ids, blanks
 * collapsed. Caller frees.
 */
char *s2a_remix_clean_prompt(const char *prompt);

/* True when `prompt` holds at least one "[5s]" or "[5.0s]" shot tag. */
bool s2a_is_storyboard(const char *prompt);

/*
 * Lays the shots out the way the storyboard endpoint expects:
 *   Shot 1:\nduration: 5.0sec\nScene: ...\n\nShot 2: ...
 * with any text before the first tag kept as "instructions:". Caller
 * frees. NULL when there is no shot.
 */
char *s2a_storyboard_format(const char *prompt);

#endif /* S2A_CHATREQ_H */
