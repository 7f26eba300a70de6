/*
 * chatreq.c: chat-completions request parsing and prompt rewriting.
 */
#include "worker/chatreq.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
s2a_mode_name(s2a_mode_t mode)
{
    static const char *const names[] = { "text_to_image", "image_to_image",
                                         "text_to_video", "image_to_video",
                                         "remix",         "storyboard",
                                         "character",     "character_video" };

    return (size_t) mode < S2A_NELEMS(names) ? names[mode] : "unknown";
}

static bool
is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Length of a share id starting at `p` ("s_" + 32 hex, not followed by
 * more hex), or 0. */
static size_t
share_id_at(const char *p)
{
    size_t i;

    if (p[0] != 's' || p[1] != '_') {
        return 0;
    }
    for (i = 0; i < 32; i++) {
        if (!is_lower_hex(p[2 + i])) {
            return 0;
        }
    }
    return is_lower_hex(p[34]) ? 0 : 34;
}

bool
s2a_find_remix_id(const char *text, char out[35])
{
    const char *p;

    for (p = text; *p != '\0'; p++) {
        /* A word boundary before: "s_" inside another token is not one. */
        if ((p == text || !isalnum((unsigned char) p[-1]))
            && share_id_at(p) == 34) {
            memcpy(out, p, 34);
            out[34] = '\0';
            return true;
        }
    }
    return false;
}

char *
s2a_remix_clean_prompt(const char *prompt)
{
    static const char link[] = "https://sora.chatgpt.com/p/";
    size_t len = strlen(prompt), o = 0, n;
    const char *p = prompt;
    char *out = malloc(len + 1);
    bool space = true; /* drops leading blanks */

    if (out == NULL) {
        return NULL;
    }
    while (*p != '\0') {
        if (strncmp(p, link, sizeof(link) - 1) == 0
            && share_id_at(p + sizeof(link) - 1) == 34)
        {
            p += sizeof(link) - 1 + 34;
            continue;
        }
        if ((p == prompt || !isalnum((unsigned char) p[-1]))
            && (n = share_id_at(p)) != 0)
        {
            p += n;
            continue;
        }
        if (isspace((unsigned char) *p)) {
            if (!space) {
                out[o++] = ' ';
                space = true;
            }
            p++;
            continue;
        }
        out[o++] = *p++;
        space = false;
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = '\0';
    return out;
}

/* A shot tag at `p`: "[" digits ["." digits] "s]". Returns its length and
 * the duration text (digits, dot) in `dur`, or 0. */
static size_t
shot_tag_at(const char *p, char dur[16])
{
    size_t i = 1, d = 0;
    bool dot = false;

    if (p[0] != '[' || !isdigit((unsigned char) p[1])) {
        return 0;
    }
    while (isdigit((unsigned char) p[i]) || (p[i] == '.' && !dot)) {
        if (p[i] == '.') {
            dot = true;
            if (!isdigit((unsigned char) p[i + 1])) {
                return 0;
            }
        }
        if (d < 15) {
            dur[d++] = p[i];
        }
        i++;
    }
    dur[d] = '\0';
    if (p[i] != 's' || p[i + 1] != ']') {
        return 0;
    }
    return i + 2;
}

bool
s2a_is_storyboard(const char *prompt)
{
    char dur[16];
    const char *p;

    for (p = strchr(prompt, '['); p != NULL; p = strchr(p + 1, '[')) {
        if (shot_tag_at(p, dur) != 0) {
            return true;
        }
    }
    return false;
}

static void
append_raw(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    char *grown;

    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        grown = realloc(*buf, *cap);
        if (grown == NULL) {
            return;
        }
        *buf = grown;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void
append_trimmed(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char) *s)) {
        s++;
        n--;
    }
    while (n > 0 && isspace((unsigned char) s[n - 1])) {
        n--;
    }
    append_raw(buf, len, cap, s, n);
}

#define APPEND(str) append_raw(&out, &len, &cap, (str), strlen(str))

char *
s2a_storyboard_format(const char *prompt)
{
    const char *p, *first = NULL, *scene, *next;
    char dur[16], head[64];
    char *out = NULL;
    size_t len = 0, cap = 0, tag;
    int shot = 0;

    for (p = strchr(prompt, '['); p != NULL; p = strchr(p + 1, '[')) {
        if (shot_tag_at(p, dur) != 0) {
            first = p;
            break;
        }
    }
    if (first == NULL) {
        return NULL;
    }
    cap = strlen(prompt) * 2 + 128;
    out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    out[0] = '\0';
    /* Text before the first tag is an instruction for the whole video. */
    {
        size_t n = (size_t) (first - prompt);
        const char *s = prompt;
        while (n > 0 && isspace((unsigned char) *s)) {
            s++;
            n--;
        }
        if (n > 0) {
            APPEND("current timeline:\n");
        }
    }
    for (p = first; p != NULL; p = next) {
        tag = shot_tag_at(p, dur);
        scene = p + tag;
        /* The scene runs to the next shot tag. */
        for (next = strchr(scene, '['); next != NULL;
             next = strchr(next + 1, '[')) {
            char d2[16];
            if (shot_tag_at(next, d2) != 0) {
                break;
            }
        }
        shot++;
        if (shot > 1) {
            APPEND("\n\n");
        }
        /* "5" reads as "5.0" so every duration has one decimal. */
        snprintf(head, sizeof(head),
                 "Shot %d:\nduration: %s%ssec\nScene: ", shot, dur,
                 strchr(dur, '.') != NULL ? "" : ".0");
        APPEND(head);
        append_trimmed(&out, &len, &cap, scene,
                       next != NULL ? (size_t) (next - scene) : strlen(scene));
    }
    {
        size_t n = (size_t) (first - prompt);
        const char *s = prompt;
        while (n > 0 && isspace((unsigned char) *s)) {
            s++;
            n--;
        }
        while (n > 0 && isspace((unsigned char) s[n - 1])) {
            n--;
        }
        if (n > 0) {
            APPEND("\n\ninstructions:\n");
            append_trimmed(&out, &len, &cap, s, n);
        }
    }
    return out;
}

/* ---------------------------------------------------------------------
 * Request parsing
 */

/*
 * A media value: "data:<mime>;base64,<b64>", an http(s) URL, or bare
 * base64 (mediain.c). `kind` ("image"/"video") checks the data URL's
 * type.
 */
static int
take_media(const char *v, const char *kind, s2a_media_in_t *out, char *err,
           size_t errlen)
{
    bool image = strcmp(kind, "image") == 0;

    switch (s2a_mediain_text(v, image ? S2A_MEDIAIN_IMAGE : S2A_MEDIAIN_VIDEO,
                             S2A_MEDIAIN_F_URL_LIMIT | S2A_MEDIAIN_F_TYPE, out))
    {
    case S2A_MEDIAIN_OK: return S2A_OK;
    case S2A_MEDIAIN_URL_TOO_LONG:
        snprintf(err, errlen, "the %s URL is too long", kind);
        break;
    case S2A_MEDIAIN_NOT_BASE64_URL:
        snprintf(err, errlen,
                 "the %s data URL must be base64 "
                 "(data:<type>;base64,...)",
                 kind);
        break;
    case S2A_MEDIAIN_WRONG_TYPE:
        snprintf(err, errlen, "a data URL of type %s is not %s %s", out->mime,
                 image ? "an" : "a", kind);
        break;
    case S2A_MEDIAIN_BAD_BASE64:
        snprintf(err, errlen,
                 "the %s is neither an http(s) URL nor valid "
                 "base64",
                 kind);
        break;
    }
    memset(out, 0, sizeof(*out));
    return S2A_ERROR;
}

/*
 * Appends `text` (n bytes) to the prompt on a line of its own. The prompt
 * keeps its length and capacity so that joining many parts is linear.
 * Returns S2A_ERROR when the prompt would pass S2A_CHATREQ_MAX_PROMPT.
 */
static int
add_text(s2a_chatreq_t *req, const char *text, size_t n)
{
    size_t need = req->prompt_len + (req->prompt_len > 0 ? 1 : 0) + n;
    char *p;

    if (need > S2A_CHATREQ_MAX_PROMPT) {
        return S2A_ERROR;
    }
    if (need + 1 > req->prompt_cap) {
        /* Doubling, capped at the largest prompt allowed. */
        size_t cap = req->prompt_cap > 0 ? req->prompt_cap * 2 : 256;
        while (cap < need + 1) {
            cap *= 2;
        }
        if (cap > S2A_CHATREQ_MAX_PROMPT + 1) {
            cap = S2A_CHATREQ_MAX_PROMPT + 1;
        }
        p = realloc(req->prompt, cap);
        if (p == NULL) {
            return S2A_OK; /* as before: the text is dropped */
        }
        req->prompt = p;
        req->prompt_cap = cap;
    }
    if (req->prompt_len > 0) {
        req->prompt[req->prompt_len++] = '\n';
    }
    memcpy(req->prompt + req->prompt_len, text, n);
    req->prompt_len += n;
    req->prompt[req->prompt_len] = '\0';
    return S2A_OK;
}

#define FAIL(prm, ...) \
    do { \
        snprintf(err, errlen, __VA_ARGS__); \
        *param = (prm); \
        return S2A_ERROR; \
    } while (0)

static int
parse_content(json_t *content, s2a_chatreq_t *req, char *err, size_t errlen,
              const char **param)
{
    json_t *part, *url, *v;
    const char *type, *text;
    size_t i;

    if (json_is_string(content)) {
        if (add_text(req, json_string_value(content),
                     json_string_length(content))
            != S2A_OK)
        {
            FAIL("messages", "the prompt is longer than %d bytes",
                 S2A_CHATREQ_MAX_PROMPT);
        }
        return S2A_OK;
    }
    if (!json_is_array(content)) {
        FAIL("messages",
             "the content of the last message must be a string "
             "or an array of parts");
    }
    if (json_array_size(content) > S2A_CHATREQ_MAX_PARTS) {
        FAIL("messages",
             "the last message has %zu content parts; at most %d are "
             "allowed",
             json_array_size(content), S2A_CHATREQ_MAX_PARTS);
    }
    json_array_foreach (content, i, part) {
        type = json_string_value(json_object_get(part, "type"));
        if (type == NULL) {
            FAIL("messages", "content part %zu has no type", i);
        }
        if (strcmp(type, "text") == 0) {
            v = json_object_get(part, "text");
            text = json_string_value(v);
            if (text == NULL) {
                FAIL("messages", "content part %zu: text must be a string", i);
            }
            if (add_text(req, text, json_string_length(v)) != S2A_OK) {
                FAIL("messages", "the prompt is longer than %d bytes",
                     S2A_CHATREQ_MAX_PROMPT);
            }
        } else if (strcmp(type, "image_url") == 0
                   || strcmp(type, "video_url") == 0) {
            bool image = type[0] == 'i';
            url = json_object_get(json_object_get(part, type), "url");
            if (url == NULL) {
                url = json_object_get(part, type); /* bare string form */
            }
            if (!json_is_string(url)) {
                FAIL("messages", "content part %zu: %s.url must be a string", i,
                     type);
            }
            if (take_media(json_string_value(url), image ? "image" : "video",
                           image ? &req->image : &req->video, err, errlen)
                != S2A_OK)
            {
                *param = "messages";
                return S2A_ERROR;
            }
        } else {
            FAIL("messages",
                 "content part %zu has an unsupported type "
                 "\"%.32s\"",
                 i, type);
        }
    }
    return S2A_OK;
}

int
s2a_chatreq_parse(json_t *body, s2a_chatreq_t *req, char *err, size_t errlen,
                  const char **param)
{
    json_t *v, *messages, *last;
    const char *model, *p;
    bool video_model, has_prompt;
    size_t i;

    memset(req, 0, sizeof(*req));
    model = json_string_value(json_object_get(body, "model"));
    if (model == NULL) {
        FAIL("model", "model is required");
    }
    req->model = s2a_model_find(model);
    if (req->model == NULL) {
        FAIL("model",
             "The model '%.100s' does not exist; GET /v1/models "
             "lists the models",
             model);
    }
    v = json_object_get(body, "stream");
    if (v != NULL && !json_is_boolean(v) && !json_is_null(v)) {
        FAIL("stream", "stream must be a boolean");
    }
    req->stream = json_is_true(v);
    messages = json_object_get(body, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        FAIL("messages", "messages must be a non-empty array");
    }
    if (json_array_size(messages) > S2A_CHATREQ_MAX_MESSAGES) {
        FAIL("messages", "messages has %zu items; at most %d are allowed",
             json_array_size(messages), S2A_CHATREQ_MAX_MESSAGES);
    }
    last = json_array_get(messages, json_array_size(messages) - 1);
    if (!json_is_object(last)) {
        FAIL("messages", "each message must be an object");
    }
    /* The top-level fields are defaults; the message's parts win. */
    v = json_object_get(body, "image");
    if (json_is_string(v) && json_string_length(v) > 0
        && take_media(json_string_value(v), "image", &req->image, err, errlen)
            != S2A_OK)
    {
        *param = "image";
        return S2A_ERROR;
    } else if (v != NULL && !json_is_string(v) && !json_is_null(v)) {
        FAIL("image", "image must be a string");
    }
    v = json_object_get(body, "video");
    if (json_is_string(v) && json_string_length(v) > 0
        && take_media(json_string_value(v), "video", &req->video, err, errlen)
            != S2A_OK)
    {
        *param = "video";
        return S2A_ERROR;
    } else if (v != NULL && !json_is_string(v) && !json_is_null(v)) {
        FAIL("video", "video must be a string");
    }
    if (parse_content(json_object_get(last, "content"), req, err, errlen, param)
        != S2A_OK)
    {
        return S2A_ERROR;
    }
    v = json_object_get(body, "remix_target_id");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || share_id_at(json_string_value(v)) != 34
            || json_string_length(v) != 34)
        {
            FAIL("remix_target_id",
                 "remix_target_id must be a Sora share id "
                 "(s_ followed by 32 hex digits)");
        }
        snprintf(req->remix_id, sizeof(req->remix_id), "%s",
                 json_string_value(v));
    }
    v = json_object_get(body, "style_id");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) >= sizeof(req->style_id))
        {
            FAIL("style_id",
                 "style_id must be a short string such as "
                 "\"anime\"");
        }
        for (p = json_string_value(v), i = 0; p[i] != '\0'; i++) {
            if (!isalnum((unsigned char) p[i]) && p[i] != '_' && p[i] != '-') {
                FAIL("style_id", "style_id may hold letters, digits, _ and -");
            }
            req->style_id[i] = (char) tolower((unsigned char) p[i]);
        }
    }
    v = json_object_get(body, "character_options");
    if (v != NULL && !json_is_null(v)) {
        if (!json_is_object(v)) {
            FAIL("character_options", "character_options must be an object");
        }
        req->character_options = v;
    }
    if (req->prompt == NULL) {
        req->prompt = strdup("");
    }
    has_prompt = req->prompt != NULL
        && req->prompt[strspn(req->prompt, " \t\r\n")] != '\0';
    video_model = req->model->kind == S2A_KIND_VIDEO;
    if (req->remix_id[0] == '\0' && video_model) {
        s2a_find_remix_id(req->prompt, req->remix_id);
    }
    /* The decision table of the API contract. */
    if (!video_model) {
        req->mode = req->image.base64 != NULL || req->image.url != NULL
            ? S2A_MODE_IMAGE_TO_IMAGE
            : S2A_MODE_TEXT_TO_IMAGE;
    } else if (req->remix_id[0] != '\0') {
        req->mode = S2A_MODE_REMIX;
    } else if (req->video.base64 != NULL || req->video.url != NULL) {
        req->mode = has_prompt ? S2A_MODE_CHARACTER_VIDEO : S2A_MODE_CHARACTER;
    } else if (s2a_is_storyboard(req->prompt)) {
        req->mode = S2A_MODE_STORYBOARD;
    } else if (req->image.base64 != NULL || req->image.url != NULL) {
        req->mode = S2A_MODE_IMAGE_TO_VIDEO;
    } else {
        req->mode = S2A_MODE_TEXT_TO_VIDEO;
    }
    if (!has_prompt && req->mode != S2A_MODE_CHARACTER
        && req->mode != S2A_MODE_REMIX)
    {
        s2a_chatreq_cleanup(req);
        FAIL("messages", "the last message has no text prompt");
    }
    if (req->mode == S2A_MODE_CHARACTER
        || req->mode == S2A_MODE_CHARACTER_VIDEO) {
        req->charopts = malloc(sizeof(*req->charopts));
        if (req->charopts == NULL) {
            s2a_chatreq_cleanup(req);
            FAIL("messages", "out of memory");
        }
        if (s2a_charopts_parse(req->character_options, "character_options.",
                               req->charopts, err, errlen, req->param,
                               sizeof(req->param))
            != S2A_OK)
        {
            *param = req->param;
            return S2A_ERROR; /* the caller cleans up */
        }
    }
    return S2A_OK;
}

void
s2a_chatreq_cleanup(s2a_chatreq_t *req)
{
    free(req->prompt);
    req->prompt = NULL;
    free(req->charopts);
    req->charopts = NULL;
    req->prompt_len = 0;
    req->prompt_cap = 0;
}
