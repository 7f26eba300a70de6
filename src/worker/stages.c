/*
 * stages.c: a job's stage history (see stages.h). gen.c calls add() at
 * each progress event it reports and attach() on each record it sends;
 * the master stores what arrives as the task's `stages` column.
 */
#include "worker/stages.h"

#include <string.h>

/* The length of `text` cut to at most `max` bytes, on a UTF-8 boundary. */
static size_t
cut_utf8(const char *text, size_t max)
{
    size_t n = strlen(text);

    if (n <= max) {
        return n;
    }
    n = max;
    /* Back over continuation bytes to the start of the cut character. */
    while (n > 0 && ((unsigned char) text[n] & 0xC0) == 0x80) {
        n--;
    }
    return n;
}

static json_t *
entry_new(const char *stage, const char *status, int progress,
          const char *message, int64_t now_ms)
{
    json_t *e;

    if (message == NULL) {
        message = "";
    }
    e = json_pack("{s:s, s:s, s:s%, s:I}", "stage", stage, "status", status,
                  "message", message, cut_utf8(message, S2A_STAGES_MESSAGE_MAX),
                  "t", (json_int_t) now_ms);
    if (e != NULL && progress >= 0) {
        json_object_set_new(e, "progress", json_integer(progress));
    }
    return e;
}

static bool
is_processing(const json_t *e, const char *stage, const char *status)
{
    return strcmp(stage, "generation") == 0 && strcmp(status, "processing") == 0
        && e != NULL && json_is_string(json_object_get(e, "stage"))
        && strcmp(json_string_value(json_object_get(e, "stage")), "generation")
        == 0
        && json_is_string(json_object_get(e, "status"))
        && strcmp(json_string_value(json_object_get(e, "status")), "processing")
        == 0;
}

void
s2a_stages_add(s2a_stages_t *s, const char *stage, const char *status,
               int progress, const char *message, int64_t now_ms)
{
    json_t *e;
    size_t n;

    if (stage == NULL || status == NULL) {
        return;
    }
    if (s->list == NULL && (s->list = json_array()) == NULL) {
        return;
    }
    e = entry_new(stage, status, progress, message, now_ms);
    if (e == NULL) {
        return;
    }
    n = json_array_size(s->list);
    if (n > 0 && is_processing(json_array_get(s->list, n - 1), stage, status)) {
        json_array_set_new(s->list, n - 1, e);
        s->touched = true;
    } else if (n >= S2A_STAGES_MAX) {
        json_array_set_new(s->list, n - 1, e);
        s->dirty = true;
    } else if (json_array_append_new(s->list, e) == 0) {
        s->dirty = true;
    }
}

void
s2a_stages_load(s2a_stages_t *s, const json_t *list)
{
    const json_t *e, *p;
    size_t i;

    s2a_stages_cleanup(s);
    if (!json_is_array(list)) {
        return;
    }
    json_array_foreach (list, i, e) {
        if (!json_is_string(json_object_get(e, "stage"))
            || !json_is_string(json_object_get(e, "status"))
            || !json_is_integer(json_object_get(e, "t")))
        {
            continue;
        }
        p = json_object_get(e, "progress");
        s2a_stages_add(s, json_string_value(json_object_get(e, "stage")),
                       json_string_value(json_object_get(e, "status")),
                       json_is_integer(p) && json_integer_value(p) >= 0
                               && json_integer_value(p) <= 100
                           ? (int) json_integer_value(p)
                           : -1,
                       json_string_value(json_object_get(e, "message")),
                       (int64_t) json_integer_value(json_object_get(e, "t")));
    }
    s->dirty = false;
    s->touched = false;
}

bool
s2a_stages_attach(s2a_stages_t *s, json_t *fields, bool final)
{
    json_t *copy;

    if (s->list == NULL || fields == NULL
        || !(s->dirty || (final && s->touched))) {
        return false;
    }
    copy = json_deep_copy(s->list);
    if (copy == NULL || json_object_set_new(fields, "stages", copy) != 0) {
        return false;
    }
    s->dirty = false;
    s->touched = false;
    return true;
}

void
s2a_stages_cleanup(s2a_stages_t *s)
{
    json_decref(s->list);
    s->list = NULL;
    s->dirty = false;
    s->touched = false;
}
