/*
 * stages.c: a job's stage history (see stages.h). gen.c calls add() at
 * each progress event it reports and attach() on each record it sends;
 * the master stores what arrives as the task's `stages` column.
 */
#include "worker/stages.h"
#include "common/core.h"

#include <stdlib.h>
#include <string.h>

/* Every stage and status the job reports (docs/generation.md). */
static const char *const known[] = {
    "generation",
    "storyboard",
    "remix",
    "upload",
    "watermark_free",
    "cache",
    "error",
    "started",
    "processing",
    "completed",
    "character_creation",
};

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

/* The table's copy of `name`, or a new one (`*own` set); NULL when out
 * of memory. */
static const char *
intern(const char *name, bool *own)
{
    size_t i;

    *own = false;
    for (i = 0; i < S2A_NELEMS(known); i++) {
        if (strcmp(known[i], name) == 0) {
            return known[i];
        }
    }
    *own = true;
    return strdup(name);
}

static void
entry_clear(s2a_stage_t *e)
{
    if (e->own_stage) {
        free((char *) e->stage);
    }
    if (e->own_status) {
        free((char *) e->status);
    }
    free(e->message);
    memset(e, 0, sizeof(*e));
}

/* Fills `e` (cleared); false when out of memory (`e` left clear). */
static bool
entry_set(s2a_stage_t *e, const char *stage, const char *status, int progress,
          const char *message, int64_t now_ms)
{
    size_t len;

    if (message == NULL) {
        message = "";
    }
    len = cut_utf8(message, S2A_STAGES_MESSAGE_MAX);
    e->stage = intern(stage, &e->own_stage);
    e->status = intern(status, &e->own_status);
    e->message = malloc(len + 1);
    if (e->stage == NULL || e->status == NULL || e->message == NULL) {
        entry_clear(e);
        return false;
    }
    memcpy(e->message, message, len);
    e->message[len] = '\0';
    e->t = now_ms;
    e->progress = progress >= 0 ? progress : -1;
    return true;
}

static bool
is_processing(const char *stage, const char *status)
{
    return strcmp(stage, "generation") == 0
        && strcmp(status, "processing") == 0;
}

void
s2a_stages_add(s2a_stages_t *s, const char *stage, const char *status,
               int progress, const char *message, int64_t now_ms)
{
    s2a_stage_t e, *grown;
    size_t cap;

    if (stage == NULL || status == NULL) {
        return;
    }
    memset(&e, 0, sizeof(e));
    if (!entry_set(&e, stage, status, progress, message, now_ms)) {
        return; /* out of memory: the event is dropped */
    }
    /* A run of percentages is one entry, the latest. */
    if (s->n > 0 && is_processing(stage, status)
        && is_processing(s->v[s->n - 1].stage, s->v[s->n - 1].status))
    {
        entry_clear(&s->v[s->n - 1]);
        s->v[s->n - 1] = e;
        s->touched = true;
        return;
    }
    if (s->n >= S2A_STAGES_MAX) {
        entry_clear(&s->v[s->n - 1]);
        s->v[s->n - 1] = e;
        s->dirty = true;
        return;
    }
    if (s->n == s->cap) {
        cap = s->cap > 0 ? s->cap * 2 : 8;
        cap = cap < S2A_STAGES_MAX ? cap : S2A_STAGES_MAX;
        grown = realloc(s->v, cap * sizeof(*grown));
        if (grown == NULL) {
            entry_clear(&e);
            return;
        }
        s->v = grown;
        s->cap = cap;
    }
    s->v[s->n++] = e;
    s->dirty = true;
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

json_t *
s2a_stages_json(const s2a_stages_t *s)
{
    json_t *list, *o;
    size_t i;

    if (s->n == 0 || (list = json_array()) == NULL) {
        return NULL;
    }
    for (i = 0; i < s->n; i++) {
        const s2a_stage_t *e = &s->v[i];

        o = json_pack("{s:s, s:s, s:s, s:I}", "stage", e->stage, "status",
                      e->status, "message", e->message, "t", (json_int_t) e->t);
        if (o == NULL) {
            continue; /* a message that is no UTF-8: this entry only */
        }
        if (e->progress >= 0) {
            json_object_set_new(o, "progress", json_integer(e->progress));
        }
        if (json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

bool
s2a_stages_attach(s2a_stages_t *s, json_t *fields, bool final)
{
    json_t *list;

    if (s->n == 0 || fields == NULL || !(s->dirty || (final && s->touched))) {
        return false;
    }
    list = s2a_stages_json(s);
    if (list == NULL || json_object_set_new(fields, "stages", list) != 0) {
        return false;
    }
    s->dirty = false;
    s->touched = false;
    return true;
}

void
s2a_stages_cleanup(s2a_stages_t *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        entry_clear(&s->v[i]);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}
