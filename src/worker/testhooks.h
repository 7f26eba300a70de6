/*
 * testhooks.h: /__test/ routes, present only when the daemon was started
 * with SORA2API_TEST_HOOKS=1. They let the black-box tests reach inside:
 * hold leases, die while holding the shm lock, change a runtime setting
 * through the master, keep a request in flight.
 */
#ifndef S2A_TESTHOOKS_H
#define S2A_TESTHOOKS_H

#include "worker/http.h"

void s2a_testhooks_dispatch(s2a_req_t *req);

/* Releases the leases the hooks hold (clean exit). */
void s2a_testhooks_cleanup(void);

#endif /* S2A_TESTHOOKS_H */
