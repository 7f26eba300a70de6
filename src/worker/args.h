/*
 * args.h: what the master hands a worker it forks (s2a_worker_args_t).
 * The master fills it in; the worker keeps a pointer to it in its context
 * for its whole life.
 */
#ifndef S2A_ARGS_H
#define S2A_ARGS_H

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
    bool test_hooks; /* SORA2API_TEST_HOOKS=1: /__test/ routes */
} s2a_worker_args_t;

#endif /* S2A_ARGS_H */
