/*
 * sticky.c: sticky routing (docs/characters.md, docs/generation.md step
 * 3). A prompt that mentions a character (@username) runs on the account
 * that made it when it can: Sora resolves a mention against the caller's
 * own characters and the public ones, so a private character works only
 * from its own account, a public one best there.
 *
 * Before a job's first token wait the prompt is scanned; when it names
 * anyone, one character_owners call asks the master which ready
 * characters those are and whose. The first private one pins the job to
 * its token (required); else the first public one's token is preferred.
 * The wait queue (sched.c) does the rest. A prompt without '@' costs a
 * strchr and no call.
 */
#include "worker/sticky.h"
#include "common/log.h"
#include "worker/context.h"

#include <stdio.h>
#include <string.h>

#define MENTION_MIN 3
#define MENTION_MAX 30

static uint64_t lookups, pinned;

static bool
name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || c == '.' || c == '_';
}

size_t
s2a_sticky_mentions(const char *text, size_t len,
                    char names[][S2A_STICKY_NAME_LEN], size_t max)
{
    size_t i = 0, start, end, n = 0, k, j;
    char name[S2A_STICKY_NAME_LEN];

    while (i < len && n < max) {
        if (text[i] != '@' || (i > 0 && name_byte((unsigned char) text[i - 1])))
        {
            i++;
            continue;
        }
        start = ++i;
        while (i < len && name_byte((unsigned char) text[i])) {
            i++;
        }
        end = i;
        /* "@alice." at the end of a sentence names alice. */
        while (end > start && text[end - 1] == '.') {
            end--;
        }
        if (end - start < MENTION_MIN || end - start > MENTION_MAX) {
            continue;
        }
        for (j = 0; j < end - start; j++) {
            unsigned char c = (unsigned char) text[start + j];
            name[j] = (char) (c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        name[end - start] = '\0';
        for (k = 0; k < n && strcmp(names[k], name) != 0; k++) {
        }
        if (k == n) {
            memcpy(names[n++], name, end - start + 1);
        }
    }
    return n;
}

/* The row of `rows` for `name` (case-insensitive), or NULL. */
static json_t *
row_for(json_t *rows, const char *name)
{
    const char *u;
    json_t *row;
    size_t i, j;

    json_array_foreach (rows, i, row) {
        u = json_string_value(json_object_get(row, "username"));
        if (u == NULL || strlen(u) != strlen(name)) {
            continue;
        }
        for (j = 0; name[j] != '\0'; j++) {
            char c =
                u[j] >= 'A' && u[j] <= 'Z' ? (char) (u[j] - 'A' + 'a') : u[j];
            if (c != name[j]) {
                break;
            }
        }
        if (name[j] == '\0') {
            return row;
        }
    }
    return NULL;
}

static void
owners_done(json_t *reply, void *arg)
{
    s2a_sticky_t *s = arg;
    char names[S2A_STICKY_NAMES_MAX][S2A_STICKY_NAME_LEN];
    json_t *rows = json_object_get(reply, "rows"), *row;
    int64_t public_pin = 0, token;
    const char *public_name = NULL, *vis;
    size_t i, n = 0;

    s->call = 0;
    s->state = S2A_STICKY_DONE;
    if (reply == NULL || !json_is_true(json_object_get(reply, "ok"))) {
        s2a_log(LOG_WARNING, 0,
                "sticky routing: the master did not say who owns the "
                "characters mentioned: %s",
                reply != NULL
                    ? json_string_value(json_object_get(reply, "error"))
                    : "no answer");
        s->done(s->arg);
        return;
    }
    /* The names again, in the order the prompt mentions them. */
    n = s2a_sticky_mentions(s->prompt, strlen(s->prompt), names,
                            S2A_STICKY_NAMES_MAX);
    for (i = 0; i < n; i++) {
        row = row_for(rows, names[i]);
        if (row == NULL) {
            continue;
        }
        token = json_integer_value(json_object_get(row, "token_id"));
        vis = json_string_value(json_object_get(row, "visibility"));
        if (vis != NULL && strcmp(vis, "private") == 0) {
            if (s->pin == 0) {
                s->pin = token;
                s->required = true;
                snprintf(s->name, sizeof(s->name), "%.30s", names[i]);
            } else if (token != s->pin) {
                snprintf(s->error, sizeof(s->error),
                         "the private characters @%.30s and @%.30s belong "
                         "to different tokens: no token can use both",
                         s->name, names[i]);
            }
        } else if (public_pin == 0) {
            public_pin = token;
            public_name = names[i];
        }
    }
    if (s->pin == 0 && public_pin != 0) {
        s->pin = public_pin;
        snprintf(s->name, sizeof(s->name), "%.30s", public_name);
    }
    if (s->pin != 0) {
        pinned++;
        s2a_log(LOG_DEBUG, 0, "sticky routing: @%s %s token %lld", s->name,
                s->required ? "needs" : "prefers", (long long) s->pin);
    }
    s->done(s->arg);
}

bool
s2a_sticky_lookup(s2a_sticky_t *s, const char *prompt, void (*done)(void *arg),
                  void *arg)
{
    char names[S2A_STICKY_NAMES_MAX][S2A_STICKY_NAME_LEN];
    json_t *msg, *list;
    size_t n, i;

    if (s->state != S2A_STICKY_UNASKED) {
        return false;
    }
    s->state = S2A_STICKY_DONE;
    if (prompt == NULL || strchr(prompt, '@') == NULL) {
        return false;
    }
    n = s2a_sticky_mentions(prompt, strlen(prompt), names,
                            S2A_STICKY_NAMES_MAX);
    if (n == 0) {
        return false;
    }
    list = json_array();
    for (i = 0; i < n; i++) {
        json_array_append_new(list, json_string(names[i]));
    }
    msg = json_pack("{s:s, s:o}", "op", "character_owners", "usernames", list);
    if (msg == NULL) {
        return false;
    }
    s->done = done;
    s->arg = arg;
    s->prompt = prompt;
    s->call = s2a_worker_call_master(msg, owners_done, s);
    json_decref(msg);
    if (s->call == 0) {
        s2a_log(LOG_WARNING, 0,
                "sticky routing: the master is unavailable; any token");
        return false;
    }
    lookups++;
    s->state = S2A_STICKY_ASKING;
    return true;
}

void
s2a_sticky_cancel(s2a_sticky_t *s)
{
    if (s->state == S2A_STICKY_ASKING && s->call != 0) {
        s2a_worker_call_cancel(s->call);
    }
    s->call = 0;
    s->state = S2A_STICKY_DONE;
}

uint64_t
s2a_sticky_lookups(void)
{
    return lookups;
}

uint64_t
s2a_sticky_pinned(void)
{
    return pinned;
}
