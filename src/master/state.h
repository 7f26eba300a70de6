/*
 * state.h: what the master's subsystems share. There is one master per
 * daemon, so this is one global, s2a_master, owned by master.c (the
 * supervisor); the other files under src/master/ read it and write only
 * what they own.
 */
#ifndef S2A_MASTER_STATE_H
#define S2A_MASTER_STATE_H

#include "common/chan.h"
#include "common/conf.h"
#include "common/shm.h"
#include "master/db.h"
#include "master/master.h"

#include <sys/types.h>

typedef enum {
    S2A_PROC_STARTING = 0,
    S2A_PROC_READY,
    S2A_PROC_DRAINING
} s2a_proc_state_t;

/* A worker process as the master knows it. */
typedef struct s2a_proc_s {
    pid_t pid;
    int slot;
    int row; /* its row in shm->workers */
    uint32_t generation;
    s2a_proc_state_t state;
    uint32_t listener_mask; /* listeners it was given */
    s2a_chan_t *chan;
    int64_t started_ms;
    int64_t kill_at_ms; /* draining: SIGKILL after this */
    bool respawned;     /* replaces a worker that died: counted when ready */
    struct s2a_proc_s *next;
} s2a_proc_t;

typedef struct s2a_master_s {
    s2a_conf_t *conf;
    s2a_master_opts_t opts;
    struct event_base *base;
    s2a_shm_t *shm;
    s2a_db_t *db;
    s2a_db_t *db_inherited; /* in a worker: the master's, never used */
    s2a_proc_t *procs;
    int stopping;    /* 0 running, 1 graceful, 2 fast */
    uint8_t key[32]; /* seals secrets at rest (secret.key) */
} s2a_master_t;

extern s2a_master_t s2a_master;

/*
 * A ready worker for background work, round-robin (supervisor). NULL
 * when none is ready.
 */
s2a_proc_t *s2a_master_next_ready(void);

/* Tells worker `p` to finish its work and exit (supervisor). */
void s2a_master_drain(s2a_proc_t *p, int stop_accept_ms, bool replaced);

#endif /* S2A_MASTER_STATE_H */
