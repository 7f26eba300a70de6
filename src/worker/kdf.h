/*
 * kdf.h: password hashing off the event loop. PBKDF2 with a high
 * iteration count costs tens of milliseconds of CPU by design; one helper
 * thread per worker does it, and the result comes back to the loop.
 */
#ifndef S2A_KDF_H
#define S2A_KDF_H

#include "common/core.h"

#include <event2/event.h>

/*
 * `ok`: verification matched (verify) or hashing worked (hash); `hash` is
 * the new hash for s2a_kdf_hash, NULL otherwise. Both borrowed for the call.
 */
typedef void (*s2a_kdf_done_pt)(bool ok, const char *hash, void *arg);

int s2a_kdf_init(struct event_base *base);
void s2a_kdf_cleanup(void);

/*
 * Queues a check of `password` against `stored` (or, with stored NULL, a
 * new hash of `password`). Returns a job id for s2a_kdf_cancel, or 0 when
 * the queue is full (then `done` is not called).
 */
uint64_t s2a_kdf_verify(const char *password, const char *stored,
                        s2a_kdf_done_pt done, void *arg);
uint64_t s2a_kdf_hash(const char *password, s2a_kdf_done_pt done, void *arg);

/* The caller lost interest: the job finishes but `done` is not called. */
void s2a_kdf_cancel(uint64_t id);

#endif /* S2A_KDF_H */
