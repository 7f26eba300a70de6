/*
 * session.c: HMAC-signed admin session tokens (see session.h).
 */
#include "common/session.h"
#include "common/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static int
mac_hex(const uint8_t secret[32], const char *data, size_t len, char out[65])
{
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;

    if (HMAC(EVP_sha256(), secret, 32, (const unsigned char *) data, len, mac,
             &maclen)
            == NULL
        || maclen != 32)
    {
        return S2A_ERROR;
    }
    s2a_hex(mac, 32, out);
    return S2A_OK;
}

int
s2a_session_issue(const uint8_t secret[32], int64_t expires, uint32_t epoch,
                  char *out, size_t outlen)
{
    uint8_t raw[16];
    char nonce[S2A_SESSION_NONCE], mac[65];
    int n;

    if (s2a_random_bytes(raw, sizeof(raw)) != S2A_OK) {
        return S2A_ERROR;
    }
    s2a_hex(raw, sizeof(raw), nonce);
    n = snprintf(out, outlen, "s2a1.%lld.%u.%s", (long long) expires,
                 (unsigned) epoch, nonce);
    if (n < 0 || (size_t) n + 66 > outlen
        || mac_hex(secret, out, (size_t) n, mac) != S2A_OK)
    {
        return S2A_ERROR;
    }
    snprintf(out + n, outlen - (size_t) n, ".%s", mac);
    return S2A_OK;
}

int
s2a_session_verify(const uint8_t secret[32], const char *token, uint32_t epoch,
                   int64_t now, char nonce[S2A_SESSION_NONCE], int64_t *expires)
{
    const char *dot, *p;
    char mac[65];
    char *end;
    long long exp;
    unsigned long ep;
    size_t len = strlen(token), signed_len;

    if (len > S2A_SESSION_MAX || strncmp(token, "s2a1.", 5) != 0) {
        return S2A_ERROR;
    }
    dot = strrchr(token, '.');
    if (dot == NULL || strlen(dot + 1) != 64) {
        return S2A_ERROR;
    }
    signed_len = (size_t) (dot - token);
    if (mac_hex(secret, token, signed_len, mac) != S2A_OK
        || !s2a_ct_equal(mac, dot + 1, 64))
    {
        return S2A_ERROR;
    }
    /* Signed by us: the fields are well-formed, but parse strictly. */
    p = token + 5;
    exp = strtoll(p, &end, 10);
    if (end == p || *end != '.') {
        return S2A_ERROR;
    }
    p = end + 1;
    ep = strtoul(p, &end, 10);
    if (end == p || *end != '.' || (size_t) (dot - (end + 1)) != 32) {
        return S2A_ERROR;
    }
    memcpy(nonce, end + 1, 32);
    nonce[32] = '\0';
    *expires = exp;
    if (exp <= now || ep != epoch) {
        return S2A_DECLINED;
    }
    return S2A_OK;
}
