/*
 * keyspec.c: checking the fields of a named API key and reading the
 * stored ones back for the shared key table (see keyspec.h).
 */
#include "common/keyspec.h"
#include "common/models.h"

#include <stdio.h>
#include <string.h>

/* The bit a non-empty list of unknown ids leaves: no model has it. */
#define MASK_NONE 0x80000000u

static const char *const periods[] = {
    [S2A_PERIOD_TOTAL] = "total",
    [S2A_PERIOD_DAY] = "day",
    [S2A_PERIOD_MONTH] = "month",
};

/* Fields a client may echo back from a key object; they are ignored. */
static const char *const read_only[] = { "id",         "key_hint", "created_at",
                                         "updated_at", "usage",    "live",
                                         "object" };

typedef enum {
    F_NAME = 0,
    F_LIMIT, /* integer 1..max or null */
    F_QUOTA, /* integer 0..max or null */
    F_PERIOD,
    F_EXPIRES,
    F_MODELS,
    F_GROUP,
    F_ENABLED
} field_kind_t;

static const struct {
    const char *name;
    field_kind_t kind;
    json_int_t max;
} fields[] = {
    { "name", F_NAME, 0 },
    { "rpm", F_LIMIT, S2A_KEY_RPM_MAX },
    { "concurrency", F_LIMIT, S2A_KEY_CONC_MAX },
    { "image_quota", F_QUOTA, S2A_KEY_QUOTA_MAX },
    { "video_quota", F_QUOTA, S2A_KEY_QUOTA_MAX },
    { "quota_period", F_PERIOD, 0 },
    { "expires_at", F_EXPIRES, 0 },
    { "models", F_MODELS, 0 },
    { "token_group", F_GROUP, 0 },
    { "enabled", F_ENABLED, 0 },
};

/* Year 9999: later times do not fit the day arithmetic of usage rows. */
#define EXPIRES_MAX 253402300799LL

bool
s2a_keyspec_group_ok(const char *name)
{
    size_t n = strspn(name,
                      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-");

    return n >= 1 && n <= S2A_KEY_GROUP_MAX && name[n] == '\0';
}

static bool
name_ok(const char *s)
{
    const unsigned char *p;
    size_t n = strlen(s);

    if (n < 1 || n > S2A_KEY_NAME_MAX) {
        return false;
    }
    for (p = (const unsigned char *) s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Checks one field; S2A_OK after setting it in `out`. */
static int
check_field(size_t f, json_t *v, json_t *out, char *err, size_t errlen)
{
    const char *name = fields[f].name;
    json_t *list, *m;
    json_int_t n;
    size_t i;

    switch (fields[f].kind) {
    case F_NAME:
        if (!json_is_string(v) || !name_ok(json_string_value(v))) {
            snprintf(err, errlen,
                     "name must be 1..%d characters without control "
                     "characters",
                     S2A_KEY_NAME_MAX);
            return S2A_ERROR;
        }
        break;
    case F_LIMIT:
    case F_QUOTA:
        if (json_is_null(v)) {
            break;
        }
        n = json_integer_value(v);
        if (!json_is_integer(v) || n < (fields[f].kind == F_LIMIT ? 1 : 0)
            || n > fields[f].max)
        {
            snprintf(err, errlen,
                     "%s must be an integer from %d to %lld, or null "
                     "(unlimited)",
                     name, fields[f].kind == F_LIMIT ? 1 : 0,
                     (long long) fields[f].max);
            return S2A_ERROR;
        }
        break;
    case F_PERIOD:
        if (!json_is_string(v)
            || (strcmp(json_string_value(v), "day") != 0
                && strcmp(json_string_value(v), "month") != 0
                && strcmp(json_string_value(v), "total") != 0))
        {
            snprintf(err, errlen,
                     "quota_period must be \"day\", \"month\" or \"total\"");
            return S2A_ERROR;
        }
        break;
    case F_EXPIRES:
        if (json_is_null(v)) {
            break;
        }
        n = json_integer_value(v);
        if (!json_is_integer(v) || n < 1 || n > EXPIRES_MAX) {
            snprintf(err, errlen,
                     "expires_at must be a unix time in seconds, or null "
                     "(never)");
            return S2A_ERROR;
        }
        break;
    case F_MODELS:
        if (json_is_null(v)) {
            break;
        }
        if (!json_is_array(v) || json_array_size(v) == 0
            || json_array_size(v) > S2A_KEY_MODELS_MAX)
        {
            snprintf(err, errlen,
                     "models must be a non-empty array of model ids (GET "
                     "/v1/models), or null (every model)");
            return S2A_ERROR;
        }
        /* Normalised: known ids only, each once, in table order. */
        list = json_array();
        for (i = 0; i < s2a_nmodels; i++) {
            size_t j;
            bool want = false;
            json_array_foreach (v, j, m) {
                if (!json_is_string(m)) {
                    json_decref(list);
                    snprintf(err, errlen, "models must hold strings");
                    return S2A_ERROR;
                }
                want |= strcmp(json_string_value(m), s2a_models[i].id) == 0;
            }
            if (want) {
                json_array_append_new(list, json_string(s2a_models[i].id));
            }
        }
        json_array_foreach (v, i, m) {
            if (s2a_model_find(json_string_value(m)) == NULL) {
                json_decref(list);
                snprintf(err, errlen, "unknown model \"%.100s\" in models",
                         json_string_value(m));
                return S2A_ERROR;
            }
        }
        json_object_set_new(out, name, list);
        return S2A_OK;
    case F_GROUP:
        if (json_is_null(v)
            || (json_is_string(v) && json_string_length(v) == 0)) {
            json_object_set_new(out, name, json_null());
            return S2A_OK;
        }
        if (!json_is_string(v) || !s2a_keyspec_group_ok(json_string_value(v))) {
            snprintf(err, errlen,
                     "token_group must be 1..%d characters of "
                     "A-Z a-z 0-9 . _ -, or null (any token)",
                     S2A_KEY_GROUP_MAX);
            return S2A_ERROR;
        }
        break;
    case F_ENABLED:
        if (!json_is_boolean(v)) {
            snprintf(err, errlen, "enabled must be a boolean");
            return S2A_ERROR;
        }
        break;
    }
    json_object_set(out, name, v);
    return S2A_OK;
}

int
s2a_keyspec_check(json_t *in, bool create, json_t *out, char *err,
                  size_t errlen)
{
    const char *key;
    json_t *v;
    size_t f, r;

    if (!json_is_object(in)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return S2A_ERROR;
    }
    json_object_foreach (in, key, v) {
        for (f = 0; f < S2A_NELEMS(fields); f++) {
            if (strcmp(fields[f].name, key) == 0) {
                break;
            }
        }
        if (f < S2A_NELEMS(fields)) {
            if (check_field(f, v, out, err, errlen) != S2A_OK) {
                return S2A_ERROR;
            }
            continue;
        }
        for (r = 0; r < S2A_NELEMS(read_only); r++) {
            if (strcmp(read_only[r], key) == 0) {
                break;
            }
        }
        if (r == S2A_NELEMS(read_only)) {
            snprintf(err, errlen, "unknown field \"%.64s\"", key);
            return S2A_ERROR;
        }
    }
    if (create && json_object_get(out, "name") == NULL) {
        snprintf(err, errlen, "name is required");
        return S2A_ERROR;
    }
    return S2A_OK;
}

s2a_key_period_t
s2a_keyspec_period(const char *name)
{
    size_t i;

    for (i = 0; name != NULL && i < S2A_NELEMS(periods); i++) {
        if (strcmp(periods[i], name) == 0) {
            return (s2a_key_period_t) i;
        }
    }
    return S2A_PERIOD_TOTAL;
}

const char *
s2a_keyspec_period_name(s2a_key_period_t p)
{
    return (size_t) p < S2A_NELEMS(periods) ? periods[p] : "total";
}

uint32_t
s2a_keyspec_models_mask(const char *json_text)
{
    json_t *list, *m;
    const s2a_model_t *model;
    uint32_t mask = 0;
    size_t i;

    if (json_text == NULL || json_text[0] == '\0') {
        return 0;
    }
    list = json_loads(json_text, 0, NULL);
    if (!json_is_array(list)) {
        json_decref(list);
        return 0;
    }
    json_array_foreach (list, i, m) {
        model = json_is_string(m) ? s2a_model_find(json_string_value(m)) : NULL;
        if (model != NULL && model - s2a_models < 31) {
            mask |= 1u << (model - s2a_models);
        }
    }
    if (mask == 0 && json_array_size(list) > 0) {
        mask = MASK_NONE;
    }
    json_decref(list);
    return mask;
}

bool
s2a_keyspec_model_allowed(uint32_t mask, size_t model)
{
    return mask == 0 || (model < 31 && (mask & (1u << model)) != 0);
}
