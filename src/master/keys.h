/*
 * keys.h: named API keys in the master (see keys.c and docs/api-keys.md).
 * Their control operations are declared in ops.h.
 */
#ifndef S2A_MASTER_KEYS_H
#define S2A_MASTER_KEYS_H

#include "common/core.h"

#include <sys/types.h>

/*
 * Start-up, after the settings are seeded: makes the key of the
 * api_key_sha256 setting the first named key (id 1) once, loads every
 * key into the shared key table and rebuilds each key's completed jobs
 * of its current quota period from the usage rows. Returns S2A_OK or
 * S2A_ERROR (the database could not be read).
 */
int s2a_keys_load(void);

/*
 * The api_key_sha256 setting (POST /api/admin/apikey) is being written
 * in the current batch with `value` ("hmac-sha256:<hex>"): key 1 takes
 * the same MAC. Returns S2A_OK, or S2A_ERROR when another key has that
 * MAC already or the write failed.
 */
int s2a_keys_primary_rekey(const char *value);

/* The batch ended (`ok`: committed): publish the keys it changed. */
void s2a_keys_committed(bool ok);

/* A worker was reaped: the leases of its jobs end (nothing counted). */
void s2a_keys_worker_gone(pid_t pid);

/* Frees the buffers (exit). */
void s2a_keys_cleanup(void);

#endif /* S2A_MASTER_KEYS_H */
