/*
 * cameo.h: the character step machine (docs/characters.md, "Creation"):
 * on one leased account, upload the source video (E21), poll the cameo
 * until Sora has extracted the character or failed it (E22), choose and
 * check a username (E7), carry the avatar over (E23, E24), finalize
 * (E25) and, for a character of its own, make it public (E26). Each
 * step's record goes to the master as a `characters` row
 * (character_write). A character a job no longer wants is deleted
 * upstream (E27) by s2a_cameo_delete, which outlives its job.
 *
 * gen.c owns the job around it: the task row, the lease, the deadline.
 */
#ifndef S2A_CAMEO_H
#define S2A_CAMEO_H

#include "common/core.h"
#include "worker/charopts.h"

#include <jansson.h>

typedef struct s2a_cameo_s s2a_cameo_t;

/* What the flow knows of its character so far. */
typedef struct s2a_cameo_info_s {
    char public_id[32]; /* char_<24 hex>: the characters row */
    char cameo_id[96];
    char character_id[96]; /* "" until finalized */
    char username[40];
    char display_name[S2A_CHAROPTS_NAME_MAX * 4 + 1];
} s2a_cameo_info_t;

typedef struct s2a_cameo_ops_s {
    /* A step (stage character_creation); `details` borrowed or NULL. */
    void (*progress)(void *arg, const char *status, const char *message,
                     json_t *details);
    /* Sora took the video: the cameo id is known (the job records it). */
    void (*uploaded)(void *arg, const s2a_cameo_info_t *info);
    /* The character exists upstream (character_id, username). */
    void (*finalized)(void *arg, const s2a_cameo_info_t *info);
    /*
     * The end: `code` NULL for a character made, else HTTP-like
     * `status`, OpenAI error `type`, `code` (character_failed,
     * username_taken, token_invalidated) and `message`. A character
     * the flow finalized and then could not finish (public) it has
     * deleted already. The flow is freed after this.
     */
    void (*done)(void *arg, const s2a_cameo_info_t *info, int status,
                 const char *type, const char *code, const char *message);
} s2a_cameo_ops_t;

typedef struct s2a_cameo_req_s {
    int64_t token_id;           /* the leased account */
    const char *job_id;         /* the task that makes it */
    const char *rid;            /* for the logs */
    int64_t owner;              /* API key id, 0: none */
    const s2a_charopts_t *opts; /* borrowed for the call */
    const unsigned char *video; /* copied; NULL when resuming */
    size_t video_len;
    const char *video_type; /* "video/mp4", ... */
    const char *video_ext;  /* "mp4", ... */
    bool set_public;        /* a character of its own (E26) */
    bool temporary;         /* made for one video, deleted after it */
    /* Resuming (no video): the cameo Sora has, and its row. */
    const char *cameo_id;
    const char *public_id;
} s2a_cameo_req_t;

/*
 * Starts the flow: at the upload, or (req->cameo_id set) at polling the
 * cameo. Callbacks run from the loop, never inside this call. NULL when
 * out of memory.
 */
s2a_cameo_t *s2a_cameo_start(const s2a_cameo_req_t *req,
                             const s2a_cameo_ops_t *ops, void *arg);

/*
 * Makes finalized character `info` public (E26) and ends like a flow:
 * for a job resumed after finalize. NULL when out of memory.
 */
s2a_cameo_t *s2a_cameo_publish(int64_t token_id, const s2a_cameo_info_t *info,
                               const s2a_cameo_ops_t *ops, void *arg);

/* Stops the flow; no callback runs afterwards. The row says `failed`
 * with `why` when the flow had one and nothing was finalized. */
void s2a_cameo_cancel(s2a_cameo_t *c, const char *why);

/*
 * Deletes character `character_id` of token `token_id` upstream (E27),
 * on its own (it outlives the caller). Its row `public_id` says
 * `deleting` first (`error` `why` for one that is not `temporary`); the
 * outcome goes to the master (character_delete_result), which writes
 * the row `deleted` (temporary) or `failed` with `why` and that it was
 * deleted, or tries again later (docs/characters.md, "No orphans").
 */
void s2a_cameo_delete(int64_t token_id, const char *character_id,
                      const char *public_id, bool temporary, const char *why);

/* Writes `fields` (taken) to characters row `public_id`. */
void s2a_cameo_row(const char *public_id, json_t *fields);

/* Upstream deletes in flight in this worker (a drain waits for them). */
int s2a_cameo_deleting(void);

/* Worker exit: deletes still out are given up here (their rows stay
 * `deleting`; the master hands them out again), logged. */
void s2a_cameo_cleanup(void);

#endif /* S2A_CAMEO_H */
