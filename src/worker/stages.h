/*
 * stages.h: a job's stage history (docs/generation.md, "Records"): the
 * progress events its stream shows, kept bounded in the job and carried
 * to the master on the records the job sends anyway, only when a stage
 * changed (a run of generation/processing percentages is one entry, the
 * latest). Pure bookkeeping: no I/O, no lock.
 */
#ifndef S2A_STAGES_H
#define S2A_STAGES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* At most this many entries a job; the last one is overwritten past it. */
#define S2A_STAGES_MAX 64
/* A message is cut to at most this many bytes (on a UTF-8 boundary). */
#define S2A_STAGES_MESSAGE_MAX 256

/* One event. Its names point into a table of the known stages and
 * statuses, or at a copy the entry owns (a name this build does not
 * know, from a row). */
typedef struct s2a_stage_s {
    const char *stage, *status;
    char *message; /* owned, cut to S2A_STAGES_MESSAGE_MAX */
    int64_t t;     /* ms since the epoch */
    int progress;  /* -1: none */
    bool own_stage, own_status;
} s2a_stage_t;

/* Plain C entries, not JSON: a job keeps its history for its whole
 * life and a percentage replaces one in place, so a few hundred bytes
 * and no allocation per tick; JSON is built only for a record. */
typedef struct s2a_stages_s {
    s2a_stage_t *v;
    size_t n, cap;
    bool dirty;   /* an entry was added since a record last carried it */
    bool touched; /* an entry changed in place since then */
} s2a_stages_t;

/*
 * Appends one event (`progress` < 0: none; `now_ms` the time in ms since
 * the epoch). A generation/processing event after another one replaces
 * it in place (touched, not dirty). At S2A_STAGES_MAX entries the last
 * is replaced. Out of memory: the event is dropped.
 */
void s2a_stages_add(s2a_stages_t *s, const char *stage, const char *status,
                    int progress, const char *message, int64_t now_ms);

/*
 * Starts from the history a row kept (`list` borrowed; a resumed job):
 * well-formed entries only, bounded as above. Not dirty.
 */
void s2a_stages_load(s2a_stages_t *s, const json_t *list);

/*
 * Sets `fields["stages"]` to a copy of the history when it changed
 * since the last time: when an entry was added, or, with `final`, when
 * one changed in place too. Returns whether it was set.
 */
bool s2a_stages_attach(s2a_stages_t *s, json_t *fields, bool final);

/* The history as the JSON a record carries (a new array of {stage,
 * status, message, progress?, t}), or NULL when it is empty or out of
 * memory. */
json_t *s2a_stages_json(const s2a_stages_t *s);

/* Frees the history; `s` may be used again after. */
void s2a_stages_cleanup(s2a_stages_t *s);

#endif
