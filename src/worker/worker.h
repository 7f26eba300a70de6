/*
 * worker.h: entry point of a worker process (called in the child right
 * after fork by the master).
 */
#ifndef S2A_WORKER_H
#define S2A_WORKER_H

#include "common/conf.h"
#include "common/shm.h"

typedef struct s2a_worker_args_s {
    const s2a_conf_t *conf;
    s2a_shm_t *shm;
    int slot;    /* worker slot: which sockets it serves */
    int shm_row; /* its row in shm->workers */
    uint32_t generation;
    int ctl_fd; /* its end of the control socketpair */
    int listen_fds[S2A_CONF_MAX_LISTEN];
    int n_listen;
    bool test_hooks; /* a test build: /__test/ routes */
} s2a_worker_args_t;

/*
 * Runs the worker until it is told to stop; returns its exit status
 * (0 normal, 2 fatal configuration error: do not respawn).
 */
int s2a_worker_main(const s2a_worker_args_t *args);

#endif /* S2A_WORKER_H */
