/*
 * ctl.c: length-prefixed JSON frames for the master/worker channel.
 */
#include "common/ctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
s2a_ctl_encode(const json_t *msg, char **out, size_t *outlen)
{
    size_t n;
    char *buf;

    n = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    if (n == 0 || n > S2A_CTL_MAX_FRAME) {
        return S2A_ERROR;
    }
    buf = malloc(n + 4);
    if (buf == NULL) {
        return S2A_ERROR;
    }
    if (json_dumpb(msg, buf + 4, n, JSON_COMPACT) != n) {
        free(buf);
        return S2A_ERROR;
    }
    buf[0] = (char) ((n >> 24) & 0xff);
    buf[1] = (char) ((n >> 16) & 0xff);
    buf[2] = (char) ((n >> 8) & 0xff);
    buf[3] = (char) (n & 0xff);
    *out = buf;
    *outlen = n + 4;
    return S2A_OK;
}

int
s2a_ctl_decode(const unsigned char *buf, size_t len, size_t *consumed,
               json_t **msg, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *m;
    size_t n;

    *msg = NULL;
    if (len < 4) {
        return S2A_AGAIN;
    }
    n = ((size_t) buf[0] << 24) | ((size_t) buf[1] << 16)
        | ((size_t) buf[2] << 8) | (size_t) buf[3];
    if (n == 0 || n > S2A_CTL_MAX_FRAME) {
        snprintf(err, errlen, "bad control frame length %zu", n);
        return S2A_ERROR;
    }
    if (len - 4 < n) {
        return S2A_AGAIN;
    }
    m = json_loadb((const char *) buf + 4, n, JSON_REJECT_DUPLICATES, &jerr);
    if (m == NULL) {
        snprintf(err, errlen, "control frame is not JSON: %s", jerr.text);
        return S2A_ERROR;
    }
    if (!json_is_object(m) || !json_is_string(json_object_get(m, "op"))) {
        json_decref(m);
        snprintf(err, errlen, "control frame lacks a string \"op\"");
        return S2A_ERROR;
    }
    *msg = m;
    *consumed = n + 4;
    return S2A_OK;
}
