/*
 * characters.h: the characters table in the master (see characters.c
 * and docs/characters.md). Its control operations are declared in
 * ops.h; this header carries the pure checks, unit-tested.
 */
#ifndef S2A_MASTER_CHARACTERS_H
#define S2A_MASTER_CHARACTERS_H

#include "common/core.h"

#include <jansson.h>

/* Most names one "character_owners" request may carry. */
#define S2A_CHARACTERS_OWNERS_MAX 16
/* Longest instruction set, profile URL and other free text kept. */
#define S2A_CHARACTERS_TEXT_MAX 4096
/* Longest username. */
#define S2A_CHARACTERS_USERNAME_MAX 64

/* Whether `s` is a public id: "char_" and 24 lower-case hex digits. */
bool s2a_characters_public_id_ok(const char *s);

/*
 * Checks the members of a character_write's `fields` (`insert`: the row
 * does not exist yet, so `token_id` is required): every member names a
 * writable column and has its type and range; visibility and state are
 * in their sets. Returns S2A_OK, or S2A_ERROR with a message in `err`.
 */
int s2a_characters_check(json_t *fields, bool insert, char *err, size_t errlen);

#endif /* S2A_MASTER_CHARACTERS_H */
