/*
 * fuzz_keyspec.c: libFuzzer target for the fields of a named API key:
 * the admin API's checks (s2a_keyspec_check, as a create and as an
 * update) on whatever JSON the input holds, and the model mask of a
 * stored models column (s2a_keyspec_models_mask). What the check passes
 * must be normalised: every field known, limits within their bounds.
 */
#include "common/keyspec.h"
#include "common/models.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What s2a_keyspec_check let through must hold. */
static void
check_out(json_t *out)
{
    const char *key;
    json_t *v, *m;
    size_t i;

    json_object_foreach (out, key, v) {
        if (strcmp(key, "rpm") == 0 || strcmp(key, "concurrency") == 0) {
            if (!json_is_null(v) && json_integer_value(v) < 1) {
                abort();
            }
        } else if (strcmp(key, "image_quota") == 0
                   || strcmp(key, "video_quota") == 0) {
            if (!json_is_null(v) && json_integer_value(v) < 0) {
                abort();
            }
        } else if (strcmp(key, "models") == 0) {
            json_array_foreach (v, i, m) {
                if (s2a_model_find(json_string_value(m)) == NULL) {
                    abort();
                }
            }
        } else if (strcmp(key, "token_group") == 0) {
            if (!json_is_null(v) && !s2a_keyspec_group_ok(json_string_value(v)))
            {
                abort();
            }
        } else if (strcmp(key, "name") != 0 && strcmp(key, "quota_period") != 0
                   && strcmp(key, "expires_at") != 0
                   && strcmp(key, "enabled") != 0)
        {
            abort(); /* a field the database has no column for */
        }
    }
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in, *out;
    char err[256], *text;
    int create;

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    (void) s2a_keyspec_models_mask(text);
    free(text);
    in = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (in == NULL) {
        return 0;
    }
    for (create = 0; create < 2; create++) {
        out = json_object();
        if (out != NULL
            && s2a_keyspec_check(in, create != 0, out, err, sizeof(err))
                == S2A_OK)
        {
            check_out(out);
        }
        json_decref(out);
    }
    json_decref(in);
    return 0;
}
