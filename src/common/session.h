/*
 * session.h: signed admin session tokens.
 *
 * A token is "s2a1.<expires>.<epoch>.<nonce>.<mac>": expiry in unix
 * seconds, the session epoch it was issued under (changing the password
 * bumps the epoch and so ends every session), 16 random bytes in hex, and
 * HMAC-SHA256 over everything before the last dot, keyed by the secret
 * kept in the database. Any worker can check one without state; logouts
 * are remembered by nonce until the token would have expired.
 */
#ifndef S2A_SESSION_H
#define S2A_SESSION_H

#include "common/core.h"

#define S2A_SESSION_MAX   160
#define S2A_SESSION_NONCE 33 /* 32 hex digits + NUL */

/* Issues a token. Returns S2A_OK or S2A_ERROR. */
int s2a_session_issue(const uint8_t secret[32], int64_t expires, uint32_t epoch,
                      char *out, size_t outlen);

/*
 * Checks `token` against `secret`, `epoch` and `now`. Returns S2A_OK and
 * fills `nonce` and `expires`; S2A_DECLINED when well-formed but expired
 * or of another epoch; S2A_ERROR when malformed or forged.
 */
int s2a_session_verify(const uint8_t secret[32], const char *token,
                       uint32_t epoch, int64_t now,
                       char nonce[S2A_SESSION_NONCE], int64_t *expires);

#endif /* S2A_SESSION_H */
