/*
 * master.h: the supervisor process. It owns the listening sockets, the
 * SQLite database, the shared-memory region and the worker processes.
 */
#ifndef S2A_MASTER_H
#define S2A_MASTER_H

#include "common/conf.h"

typedef struct s2a_master_opts_s {
    const char *conf_path; /* NULL: embedded defaults */
    bool daemonize;
    bool test_hooks; /* a test build (S2A_TEST_HOOKS): /__test/ routes */
} s2a_master_opts_t;

/* Exit statuses of sora2apid (documented in sora2apid(8)). */
#define S2A_EXIT_OK      0
#define S2A_EXIT_FAILURE 1
#define S2A_EXIT_CONFIG  2

/*
 * Runs the daemon with `conf` (taken over) until it is stopped. Returns
 * the process exit status.
 */
int s2a_master_run(s2a_conf_t *conf, const s2a_master_opts_t *opts);

#endif /* S2A_MASTER_H */
