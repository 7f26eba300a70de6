/*
 * worker.h: entry point of a worker process (called in the child right
 * after fork by the master).
 */
#ifndef S2A_WORKER_H
#define S2A_WORKER_H

#include "worker/args.h"

/*
 * Runs the worker until it is told to stop; returns its exit status
 * (0 normal, 2 fatal configuration error: do not respawn).
 */
int s2a_worker_main(const s2a_worker_args_t *args);

#endif /* S2A_WORKER_H */
