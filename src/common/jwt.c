/*
 * jwt.c: JWT payload decoding (no signature check; see jwt.h).
 */
#include "common/jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

/* 2^63: every double strictly inside (-2^63, 2^63) converts to int64_t. */
#define S2A_JWT_EXP_LIMIT 9223372036854775808.0

char *
s2a_base64url_decode(const char *in, size_t len, size_t *outlen)
{
    size_t i, padded = (len + 3) / 4 * 4;
    unsigned char *std, *out;
    int n;

    if (len % 4 == 1 || len > 1 << 20) {
        return NULL;
    }
    std = malloc(padded + 1);
    out = malloc(padded / 4 * 3 + 1);
    if (std == NULL || out == NULL) {
        free(std);
        free(out);
        return NULL;
    }
    for (i = 0; i < len; i++) {
        char c = in[i];
        if (c == '-') {
            c = '+';
        } else if (c == '_') {
            c = '/';
        } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                     || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            if (c == '=' && i >= len - 2) {
                break; /* padding given */
            }
            goto bad;
        }
        std[i] = (unsigned char) c;
    }
    len = i;
    padded = (len + 3) / 4 * 4;
    for (; i < padded; i++) {
        std[i] = '=';
    }
    std[padded] = '\0';
    n = EVP_DecodeBlock(out, std, (int) padded);
    if (n < 0) {
        goto bad;
    }
    /* EVP_DecodeBlock counts padding as zero bytes. */
    n -= (int) (padded - len);
    out[n] = '\0';
    *outlen = (size_t) n;
    free(std);
    return (char *) out;

bad:
    free(std);
    free(out);
    return NULL;
}

int
s2a_jwt_decode(const char *token, s2a_jwt_claims_t *out)
{
    const char *dot1, *dot2, *email;
    json_t *payload, *profile, *exp, *cid;
    size_t len;
    char *raw;
    double d;

    memset(out, 0, sizeof(*out));
    dot1 = strchr(token, '.');
    dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL
        || dot1 == token || dot2 == dot1 + 1)
    {
        return S2A_ERROR;
    }
    raw = s2a_base64url_decode(dot1 + 1, (size_t) (dot2 - dot1 - 1), &len);
    if (raw == NULL) {
        return S2A_ERROR;
    }
    payload = json_loadb(raw, len, 0, NULL);
    free(raw);
    if (!json_is_object(payload)) {
        json_decref(payload);
        return S2A_ERROR;
    }
    exp = json_object_get(payload, "exp");
    if (json_is_integer(exp)) {
        out->exp = json_integer_value(exp);
    } else if (json_is_real(exp)) {
        /* Converting a double outside the int64_t range is undefined
         * behaviour; such an expiry is no time at all: not a token. */
        d = json_real_value(exp);
        if (!(d >= -S2A_JWT_EXP_LIMIT && d < S2A_JWT_EXP_LIMIT)) {
            json_decref(payload);
            return S2A_ERROR;
        }
        out->exp = (int64_t) d;
    }
    profile = json_object_get(payload, "https://api.openai.com/profile");
    email = json_string_value(json_object_get(profile, "email"));
    if (email == NULL) {
        email = json_string_value(json_object_get(payload, "email"));
    }
    if (email != NULL) {
        snprintf(out->email, sizeof(out->email), "%s", email);
    }
    cid = json_object_get(payload, "client_id");
    if (json_is_string(cid)) {
        snprintf(out->client_id, sizeof(out->client_id), "%s",
                 json_string_value(cid));
    }
    json_decref(payload);
    return S2A_OK;
}
