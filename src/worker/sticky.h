/*
 * sticky.h: sticky routing of generations that mention characters (see
 * sticky.c and docs/characters.md): the @mention scanner, and the one
 * master call (character_owners) that says which token made the
 * characters a prompt names, made only when the prompt holds an '@'.
 */
#ifndef S2A_STICKY_H
#define S2A_STICKY_H

#include "common/core.h"

#include <stddef.h>

/* Most distinct names one prompt is looked up with. */
#define S2A_STICKY_NAMES_MAX 16
/* A mentioned name: 3 to 30 of [a-z0-9._], plus its NUL. */
#define S2A_STICKY_NAME_LEN 31

/*
 * The distinct usernames `text` (`len` bytes, NUL not needed) mentions:
 * an '@' at the start or after a byte that cannot be part of a name,
 * followed by 3 to 30 of [A-Za-z0-9._] (a longer run is no mention;
 * trailing dots end a sentence and are dropped), lower-cased, in order
 * of first mention, at most `max` of them into `names`. Returns how many.
 * Linear in `len`; never reads past it.
 */
size_t s2a_sticky_mentions(const char *text, size_t len,
                           char names[][S2A_STICKY_NAME_LEN], size_t max);

typedef enum {
    S2A_STICKY_UNASKED = 0, /* not looked at yet */
    S2A_STICKY_ASKING,      /* the master call is in flight */
    S2A_STICKY_DONE         /* known (pin 0: no character token) */
} s2a_sticky_state_t;

/* A job's sticky routing state; zeroed with the job. */
typedef struct s2a_sticky_s {
    s2a_sticky_state_t state;
    uint64_t call;
    int64_t pin;   /* the token the job prefers or needs, 0: none */
    bool required; /* a private character's: no other token will do */
    char name[S2A_STICKY_NAME_LEN]; /* the character it is for */
    char error[160];    /* non-empty: the job cannot run (two private
                        characters of different tokens) */
    const char *prompt; /* the job's, while the call is in flight */
    void (*done)(void *arg);
    void *arg;
} s2a_sticky_t;

/*
 * Before a job's first token wait: when `prompt` (kept until `done`
 * runs) mentions names and the
 * state is UNASKED, asks the master which tokens made them and returns
 * true; `done(arg)` runs from the loop once the state is DONE. Otherwise
 * (a prompt without '@' costs one strchr) marks the state DONE and
 * returns false. A failed master call leaves no pin (logged).
 */
bool s2a_sticky_lookup(s2a_sticky_t *s, const char *prompt,
                       void (*done)(void *arg), void *arg);

/* Stops a lookup in flight; `done` will not run. */
void s2a_sticky_cancel(s2a_sticky_t *s);

/* Lookups this worker sent to the master, and jobs given a pin (tests). */
uint64_t s2a_sticky_lookups(void);
uint64_t s2a_sticky_pinned(void);

#endif /* S2A_STICKY_H */
