/*
 * hooksend.h: webhook deliveries in a worker (see hooksend.c). The
 * operation that starts one, webhook_send, is declared in ops.h.
 */
#ifndef S2A_HOOKSEND_H
#define S2A_HOOKSEND_H

#include "common/core.h"

/* Cancels the deliveries in flight without reporting them (worker
 * exit): the master retries them when their leases run out. */
void s2a_hooksend_cleanup(void);

/* Deliveries in flight (a draining worker waits for them). */
int s2a_hooksend_inflight(void);

#endif /* S2A_HOOKSEND_H */
