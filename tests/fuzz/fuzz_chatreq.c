/*
 * fuzz_chatreq.c: libFuzzer target for a /v1/chat/completions body: the
 * JSON limits pre-scan, the request parser and the prompt rewriting
 * (remix ids, share links, storyboard shots), in the order a worker runs
 * them. The raw input also goes to the prompt functions as text.
 */
#include "common/jsonlimit.h"
#include "worker/chatreq.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The prompt functions on one NUL-terminated text. */
static void
rewrite(const char *text)
{
    char id[35], *s;

    (void) s2a_find_remix_id(text, id);
    s = s2a_remix_clean_prompt(text);
    free(s);
    if (s2a_is_storyboard(text)) {
        s = s2a_storyboard_format(text);
        if (s == NULL) {
            abort(); /* a storyboard always has a first shot */
        }
        free(s);
    }
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const s2a_json_limits_t lim = { S2A_JSON_MAX_VALUES,
                                           S2A_JSON_MAX_DEPTH, SIZE_MAX,
                                           S2A_JSON_MAX_KEY };
    s2a_chatreq_t req;
    const char *param = NULL;
    char err[256], why[160], *text;
    json_t *body;

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    rewrite(text);
    free(text);
    if (s2a_json_limits_check((const char *) data, size, &lim, why, sizeof(why))
        != S2A_OK)
    {
        return 0;
    }
    body = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    if (s2a_chatreq_parse(body, &req, err, sizeof(err), &param) == S2A_OK) {
        if (req.prompt == NULL || strlen(req.prompt) > S2A_CHATREQ_MAX_PROMPT) {
            abort();
        }
        rewrite(req.prompt);
    } else if (param == NULL || err[0] == '\0') {
        abort(); /* every refusal names a parameter and says why */
    }
    s2a_chatreq_cleanup(&req);
    json_decref(body);
    return 0;
}
