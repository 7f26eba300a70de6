/*
 * jwt.h: reading the claims of a Sora access token. The gateway never
 * verifies the signature (it has no key); it only needs the expiry and the
 * account e-mail, and to tell an access token from garbage.
 */
#ifndef S2A_JWT_H
#define S2A_JWT_H

#include "common/core.h"

typedef struct s2a_jwt_claims_s {
    int64_t exp;         /* 0 when absent */
    char email[256];     /* profile e-mail, "" when absent */
    char client_id[128]; /* "" when absent */
} s2a_jwt_claims_t;

/*
 * Decodes `token` (header.payload.signature, base64url). Returns S2A_OK,
 * or S2A_ERROR when it is not a JWT with a JSON object payload, or when
 * its `exp` is a number outside the int64_t range (1e300).
 */
int s2a_jwt_decode(const char *token, s2a_jwt_claims_t *out);

/* Decodes base64url (padding optional) into a new NUL-terminated buffer
 * (caller frees). Returns NULL on bad input. */
char *s2a_base64url_decode(const char *in, size_t len, size_t *outlen);

#endif /* S2A_JWT_H */
