/*
 * pool.h: the account pool in the master (see pool.c). Its control
 * operations are declared in ops.h.
 */
#ifndef S2A_MASTER_POOL_H
#define S2A_MASTER_POOL_H

#include "common/core.h"

/* Loads every token of the database into shm (start-up). */
int s2a_pool_load_all(void);

/* Token `id` changed in this batch (negative: removed); its shm row is
 * rebuilt after the commit. */
void s2a_pool_touched(int64_t id);

/* The batch ended (`ok`: committed): rebuild the touched rows. */
void s2a_pool_committed(bool ok);

/* Frees the pool's buffers (exit). */
void s2a_pool_cleanup(void);

#endif /* S2A_MASTER_POOL_H */
