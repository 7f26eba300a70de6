/*
 * settings.h: the table of runtime settings.
 *
 * Runtime settings live in the database (the `settings` table, one text
 * value per key) and are published to every worker through the shared
 * settings snapshot (s2a_shm_settings_t). One row per setting says how it
 * is stored, validated, seeded on the first start, published, shown by
 * `sora2apid -k` and which admin API changes it; the master's seeding,
 * loading and validation, the admin handlers and scripts/check-docs all
 * read this table.
 */
#ifndef S2A_SETTINGS_H
#define S2A_SETTINGS_H

#include "common/conf.h"
#include "common/shm.h"

#include <jansson.h>

typedef enum {
    S2A_SET_T_INT = 0,  /* decimal integer in [min, max] -> int32_t */
    S2A_SET_T_BOOL,     /* "0" or "1" -> int32_t */
    S2A_SET_T_ENUM,     /* one of `values` -> int32_t index */
    S2A_SET_T_LOGLEVEL, /* "" (-1: follow [log] level) or a level name */
    S2A_SET_T_TEXT,     /* printable text, min..max bytes -> char[] */
    S2A_SET_T_URL,      /* "" or a URL with a scheme of `values` -> char[] */
    S2A_SET_T_HEX256,   /* 64 lower-case hex digits -> uint8_t[32] */
    S2A_SET_T_PWHASH,   /* an s2a_password_hash() string -> char[] */
    S2A_SET_T_EPOCH,    /* a counter workers can only bump -> uint32_t */
    S2A_SET_T_APIKEY    /* S2A_APIKEY_PREFIX + 64 hex digits -> uint8_t[32] */
} s2a_setting_type_t;

/* Row flags. */
#define S2A_SET_SECRET   0x01 /* never logged, never printed by -k */
#define S2A_SET_REQUIRED 0x02 /* missing or corrupt: the daemon cannot run */
#define S2A_SET_INTERNAL 0x04 /* made by the daemon; workers cannot set it */
#define S2A_SET_NONEMPTY 0x08 /* a URL that cannot be left empty */
#define S2A_SET_SEALED   0x10 /* stored sealed under secret.key (s2a_seal) */

/* Fills `out` with the first-start value made from the configuration. */
typedef int (*s2a_setting_seed_pt)(const s2a_conf_t *conf, char *out,
                                   size_t len);

typedef struct s2a_setting_s {
    const char *name;
    s2a_setting_type_t type;
    long min, max;             /* INT: bounds; TEXT: length bounds */
    const char *const *values; /* ENUM names, URL schemes; NULL-ended */
    const char *def;           /* stored default; NULL: made by `seed` */
    s2a_setting_seed_pt seed;
    const char *must_contain; /* URL: a text the value must contain */
    size_t off, size;         /* its field in s2a_shm_settings_t */
    unsigned flags;
    const char *api;     /* admin route that shows and sets it */
    const char *applies; /* when a change takes effect */
    const char *unit;    /* "seconds" or NULL */
    const char *refusal; /* what a refused value is told; NULL: generic */
} s2a_setting_t;

extern const s2a_setting_t s2a_settings[];
extern const size_t s2a_nsettings;

/* The row named `name`, or NULL. */
const s2a_setting_t *s2a_setting_find(const char *name);

/*
 * Checks `value` (stored text) against the row's rules; when it passes
 * and `out` is not NULL, stores it into the row's field of `out`.
 * Returns S2A_OK, or S2A_ERROR with a message for the client in `err`.
 * An EPOCH row accepts a decimal counter here; "bump" is the master's
 * business (s2a_setting_is_bump).
 */
int s2a_setting_parse(const s2a_setting_t *s, const char *value,
                      s2a_shm_settings_t *out, char *err, size_t errlen);

/* True when `value` is the one thing a worker may send for an EPOCH. */
bool s2a_setting_is_bump(const s2a_setting_t *s, const char *value);

/*
 * The row's value in `set` as JSON, the way the admin API shows it
 * (integers, booleans, names). Secrets and hashes give NULL. New
 * reference.
 */
json_t *s2a_setting_to_json(const s2a_setting_t *s,
                            const s2a_shm_settings_t *set);

/*
 * Converts an admin API value `v` into stored text in `buf`: INT wants a
 * JSON integer, BOOL a boolean, the others a string. Returns S2A_OK, or
 * S2A_ERROR with "<name> must be ..." in `err`. The text still has to
 * pass s2a_setting_parse (the master does that).
 */
int s2a_setting_from_json(const s2a_setting_t *s, const json_t *v, char *buf,
                          size_t len, char *err, size_t errlen);

/*
 * Fills `out` with every row's default (rows made at the first start are
 * left zero).
 */
void s2a_settings_defaults(s2a_shm_settings_t *out);

/* Prints every runtime setting as "runtime.name = default  # ..." . */
void s2a_settings_dump(void *fp);

#endif /* S2A_SETTINGS_H */
