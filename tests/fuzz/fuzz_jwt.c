/*
 * fuzz_jwt.c: libFuzzer target for token decoding: JWT claims
 * (s2a_jwt_decode), base64url and base64 (s2a_base64url_decode,
 * s2a_base64_decode) and admin session tokens (s2a_session_verify). A
 * session token is checked twice: as given (a forgery) and with a valid
 * MAC appended to its signed part, which reaches the field parser.
 */
#include "common/crypto.h"
#include "common/jwt.h"
#include "common/session.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[32] = "fuzz-secret-fuzz-secret-fuzz-sec";

/* The session checks on `text`. */
static void
session(const char *text, size_t len)
{
    char signed_tok[S2A_SESSION_MAX + 80], nonce[S2A_SESSION_NONCE];
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int64_t expires = 0;
    int rc;

    rc = s2a_session_verify(secret, text, 1, 1000, nonce, &expires);
    if (rc == S2A_OK || (rc == S2A_DECLINED && len < 5)) {
        abort(); /* a forgery never passes */
    }
    if (len > S2A_SESSION_MAX - 65) {
        return;
    }
    memcpy(signed_tok, text, len);
    if (HMAC(EVP_sha256(), secret, 32, (const unsigned char *) text, len, mac,
             &maclen)
            == NULL
        || maclen != 32)
    {
        abort();
    }
    signed_tok[len] = '.';
    s2a_hex(mac, 32, signed_tok + len + 1);
    rc = s2a_session_verify(secret, signed_tok, 1, 1000, nonce, &expires);
    if (rc != S2A_ERROR && strlen(nonce) != 32) {
        abort();
    }
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s2a_jwt_claims_t claims;
    unsigned char *raw;
    char *text, *dec;
    size_t len;

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (s2a_jwt_decode(text, &claims) == S2A_OK
        && (memchr(claims.email, '\0', sizeof(claims.email)) == NULL
            || memchr(claims.client_id, '\0', sizeof(claims.client_id))
                == NULL))
    {
        abort();
    }
    dec = s2a_base64url_decode(text, size, &len);
    if (dec != NULL && len > size) {
        abort();
    }
    free(dec);
    raw = s2a_base64_decode(text, size, &len);
    if (raw != NULL && len > size) {
        abort();
    }
    free(raw);
    session(text, strlen(text));
    free(text);
    return 0;
}
