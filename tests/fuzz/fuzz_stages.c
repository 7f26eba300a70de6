/*
 * fuzz_stages.c: libFuzzer target for what a worker takes from JSON it
 * did not build: a stage history from a task row (s2a_stages_load, a
 * resumed job) and the ids of a token batch body (s2a_tokbatch_ids).
 * What comes out must hold: at most S2A_STAGES_MAX well-formed entries,
 * messages within their bound, and ids all positive integers.
 */
#include "common/ops.h"
#include "worker/stages.h"
#include "worker/tokbatch.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_stages(const s2a_stages_t *s)
{
    json_t *list = s2a_stages_json(s);
    const json_t *e;
    size_t i;

    if (s->n > S2A_STAGES_MAX || json_array_size(list) > s->n) {
        abort();
    }
    json_array_foreach (list, i, e) {
        if (!json_is_string(json_object_get(e, "stage"))
            || !json_is_string(json_object_get(e, "status"))
            || !json_is_integer(json_object_get(e, "t"))
            || json_string_length(json_object_get(e, "message"))
                > S2A_STAGES_MESSAGE_MAX)
        {
            abort();
        }
    }
    json_decref(list);
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s2a_stages_t s = { 0 };
    json_t *in, *ids, *fields, *v;
    char err[128];
    size_t i;

    in = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (in == NULL) {
        return 0;
    }
    s2a_stages_load(&s, in);
    check_stages(&s);
    s2a_stages_add(&s, "generation", "processing", 50, "50%", 1);
    s2a_stages_add(&s, "cache", "started", -1, NULL, 2);
    check_stages(&s);
    fields = json_object();
    if (fields != NULL && s2a_stages_attach(&s, fields, true)
        && !json_is_array(json_object_get(fields, "stages")))
    {
        abort();
    }
    json_decref(fields);
    s2a_stages_cleanup(&s);
    ids = s2a_tokbatch_ids(in, err, sizeof(err));
    if (ids != NULL) {
        if (json_array_size(ids) == 0
            || json_array_size(ids) > S2A_TOKENS_BATCH_MAX) {
            abort();
        }
        json_array_foreach (ids, i, v) {
            if (!json_is_integer(v) || json_integer_value(v) <= 0) {
                abort();
            }
        }
        json_decref(ids);
    }
    json_decref(in);
    return 0;
}
