/*
 * fuzz_fields.c: libFuzzer target for the master's checks of the fields
 * a worker or the admin API sends it: a characters row write
 * (s2a_characters_check, as an insert and as an update) and a webhook
 * endpoint (s2a_webhooks_check, as a create and as an update, with
 * rotate_secret and secret_overlap). What a check passes must hold: the
 * character's visibility and state in their sets, the webhook's events
 * within the four known bits and its overlap within its bounds.
 */
#include "master/characters.h"
#include "master/webhooks.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_character(json_t *fields)
{
    const char *v = json_string_value(json_object_get(fields, "visibility"));
    const char *st = json_string_value(json_object_get(fields, "state"));

    if (v != NULL && strcmp(v, "public") != 0 && strcmp(v, "private") != 0) {
        abort();
    }
    if (st != NULL && strcmp(st, "processing") != 0 && strcmp(st, "ready") != 0
        && strcmp(st, "failed") != 0 && strcmp(st, "deleting") != 0
        && strcmp(st, "deleted") != 0)
    {
        abort();
    }
}

static void
check_webhook(json_t *fields, unsigned events)
{
    json_t *ov = json_object_get(fields, "secret_overlap");

    if (events > 0xfu) {
        abort();
    }
    if (ov != NULL
        && (!json_is_integer(ov) || json_integer_value(ov) < 0
            || json_integer_value(ov) > S2A_WEBHOOKS_OVERLAP_MAX_S))
    {
        abort();
    }
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    char err[256];
    unsigned events = 0;
    int i;

    if (in == NULL) {
        return 0;
    }
    for (i = 0; i < 2; i++) {
        if (s2a_characters_check(in, i == 0, err, sizeof(err)) == S2A_OK) {
            check_character(in);
        }
        if (json_is_object(in)
            && s2a_webhooks_check(in, i == 0, &events, err, sizeof(err))
                == S2A_OK)
        {
            check_webhook(in, events);
        }
    }
    json_decref(in);
    return 0;
}
