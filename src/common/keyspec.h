/*
 * keyspec.h: the fields of a named API key (docs/api-keys.md): what the
 * admin API accepts for one, normalised for the database, and the pieces
 * of a stored row the shared key table needs (period, model mask, token
 * group). Pure functions: no I/O, no shared state.
 */
#ifndef S2A_KEYSPEC_H
#define S2A_KEYSPEC_H

#include "common/core.h"
#include "common/keytab.h"

#include <jansson.h>

#define S2A_KEY_NAME_MAX   100
#define S2A_KEY_GROUP_MAX  64
#define S2A_KEY_RPM_MAX    10000000 /* within S2A_RPM_COUNT_MAX */
#define S2A_KEY_CONC_MAX   100000
#define S2A_KEY_QUOTA_MAX  1000000000
#define S2A_KEY_MODELS_MAX 64

/*
 * Checks the body of POST /api/keys (`create`) or PUT /api/keys/{id}
 * and writes each field it carries into `out` under its column name:
 * name (string), rpm, concurrency, image_quota, video_quota (integer or
 * null: unlimited), quota_period ("day", "month", "total"), expires_at
 * (unix seconds or null: never), models (array of model ids, or null:
 * every model), token_group (string or null: any token), enabled (bool).
 * A create needs `name`; a field left out is unlimited / never / every /
 * any / enabled. Read-only fields of a key object (id, key_hint,
 * created_at, updated_at, usage, live, object) are ignored; any other
 * field is refused. Returns S2A_OK, or S2A_ERROR with a client-facing
 * message in `err`.
 */
int s2a_keyspec_check(json_t *in, bool create, json_t *out, char *err,
                      size_t errlen);

/* Whether `name` is a token group: 1..64 of [A-Za-z0-9._-]. */
bool s2a_keyspec_group_ok(const char *name);

/* The period named `name` (unknown: total), and the name of `p`. */
s2a_key_period_t s2a_keyspec_period(const char *name);
const char *s2a_keyspec_period_name(s2a_key_period_t p);

/* The model mask (keytab.h) of a models column: JSON array text of
 * model ids, or NULL / "" for every model. Unknown ids are skipped; a
 * list of none but unknown ids allows nothing (mask bit 31 alone). */
uint32_t s2a_keyspec_models_mask(const char *json_text);

/* Whether the model at index `model` of s2a_models is in `mask`. */
bool s2a_keyspec_model_allowed(uint32_t mask, size_t model);

#endif /* S2A_KEYSPEC_H */
