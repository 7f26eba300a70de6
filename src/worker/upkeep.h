/*
 * upkeep.h: account upkeep the master hands to a worker: refreshing an
 * access token from its session or refresh token, and re-reading a
 * token's video quota. Results go back to the master.
 */
#ifndef S2A_UPKEEP_H
#define S2A_UPKEEP_H

#include <jansson.h>

/* "refresh_token" {token_id, st?, rt?, client_id?, proxy?} */
void s2a_upkeep_refresh(json_t *msg);

/* "quota_check" {token_id, proxy?} */
void s2a_upkeep_quota(json_t *msg);

/* Drops jobs still running (worker exit). */
void s2a_upkeep_cleanup(void);

#endif /* S2A_UPKEEP_H */
