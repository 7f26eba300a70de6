/*
 * testhooks.h: /__test/ routes, compiled only into a test build
 * (configure --enable-test-hooks, which defines S2A_TEST_HOOKS; a release
 * binary has neither the routes nor this file's symbols). They let the
 * black-box tests reach inside:
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
