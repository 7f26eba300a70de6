/*
 * charopts.h: the options of a character creation (docs/characters.md):
 * `character_options` of a chat request, or the fields of POST
 * /v1/characters. Pure: a JSON object in, checked and copied values out.
 */
#ifndef S2A_CHAROPTS_H
#define S2A_CHAROPTS_H

#include "common/core.h"

#include <jansson.h>

#define S2A_CHAROPTS_SPAN_MAX   10   /* seconds between the two timestamps */
#define S2A_CHAROPTS_NAME_MAX   64   /* display name, in characters */
#define S2A_CHAROPTS_INSTR_MAX  4096 /* each instruction set, in bytes */
#define S2A_CHAROPTS_USER_MAX   30   /* Sora's username rule */
#define S2A_CHAROPTS_TS_DEFAULT "0,3"

typedef struct s2a_charopts_s {
    char timestamps[32]; /* "a,b" as given, or the default */
    char username[S2A_CHAROPTS_USER_MAX + 1];         /* "" when not given */
    char display_name[S2A_CHAROPTS_NAME_MAX * 4 + 1]; /* UTF-8, or "" */
    char instruction_set[S2A_CHAROPTS_INSTR_MAX + 1]; /* or "" */
    char safety_instruction_set[S2A_CHAROPTS_INSTR_MAX + 1]; /* or "" */
    bool keep; /* character+video: keep the character afterwards */
} s2a_charopts_t;

/*
 * Reads `obj` (a JSON object, or NULL for no options) into `out`.
 * Members: timestamps ("a,b", decimal seconds, 0 <= a < b, b - a at most
 * S2A_CHAROPTS_SPAN_MAX), username ([a-z0-9][a-z0-9._]{2,29}; upper
 * case is refused, not lowered), display_name (1..64 characters, no
 * control characters), instruction_set and safety_instruction_set (at
 * most 4096 bytes each), keep (a boolean); null is the same as absent,
 * any other member is refused. `prefix` ("character_options." or "")
 * starts the parameter name of a refusal.
 *
 * Returns S2A_OK, or S2A_ERROR with a client-facing message in `err` and
 * the offending parameter in `param` (written into `parambuf`).
 */
int s2a_charopts_parse(json_t *obj, const char *prefix, s2a_charopts_t *out,
                       char *err, size_t errlen, char *parambuf,
                       size_t paramlen);

/* True when `name` follows Sora's username rule. */
bool s2a_charopts_username_ok(const char *name);

/* The options as a JSON object for a task row's params (new reference). */
json_t *s2a_charopts_json(const s2a_charopts_t *o);

#endif /* S2A_CHAROPTS_H */
