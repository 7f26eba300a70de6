/*
 * mediain.c: media inputs given as text, and the magic of their bytes.
 */
#include "worker/mediain.h"
#include "common/crypto.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

s2a_mediain_rc_t
s2a_mediain_text(const char *s, s2a_mediain_kind_t kind, unsigned flags,
                 s2a_media_in_t *out)
{
    const char *comma, *semi;
    unsigned char *bytes;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0)
    {
        if ((flags & S2A_MEDIAIN_F_URL_LIMIT)
            && strlen(s) > S2A_MEDIAIN_URL_MAX) {
            return S2A_MEDIAIN_URL_TOO_LONG;
        }
        out->url = s;
        return S2A_MEDIAIN_OK;
    }
    if (strncasecmp(s, "data:", 5) == 0) {
        comma = strchr(s, ',');
        if (comma == NULL || comma - s < 12
            || strncasecmp(comma - 7, ";base64", 7) != 0)
        {
            return S2A_MEDIAIN_NOT_BASE64_URL;
        }
        /* The type runs to its first parameter (";base64" at the latest). */
        semi = strchr(s + 5, ';');
        n = (size_t) (semi - (s + 5));
        if (n >= sizeof(out->mime)) {
            n = sizeof(out->mime) - 1;
        }
        memcpy(out->mime, s + 5, n);
        out->mime[n] = '\0';
        if ((flags & S2A_MEDIAIN_F_TYPE)
            && (kind == S2A_MEDIAIN_IMAGE
                    ? strncasecmp(out->mime, "image/", 6) != 0
                    : (strncasecmp(out->mime, "video/", 6) != 0
                       && strncasecmp(out->mime, "application/", 12) != 0)))
        {
            return S2A_MEDIAIN_WRONG_TYPE;
        }
        s = comma + 1;
    }
    /* gen.c decodes it again; decoding here makes a bad one a 400 now. */
    bytes = s2a_base64_decode(s, strlen(s), &n);
    free(bytes);
    if (bytes == NULL || n == 0) {
        return S2A_MEDIAIN_BAD_BASE64;
    }
    out->base64 = s;
    return S2A_MEDIAIN_OK;
}

const char *
s2a_mediain_sniff(const unsigned char *p, size_t n, s2a_mediain_kind_t kind,
                  const char **ext)
{
    const char *type = NULL, *e = NULL;

    if (kind == S2A_MEDIAIN_VIDEO) {
        if (n >= 12 && memcmp(p + 4, "ftyp", 4) == 0) {
            /* QuickTime brands its files "qt  "; the rest are ISO BMFF. */
            if (memcmp(p + 8, "qt  ", 4) == 0) {
                type = "video/quicktime";
                e = "mov";
            } else {
                type = "video/mp4";
                e = "mp4";
            }
        } else if (n >= 8
                   && (memcmp(p + 4, "moov", 4) == 0
                       || memcmp(p + 4, "mdat", 4) == 0
                       || memcmp(p + 4, "wide", 4) == 0))
        {
            type = "video/quicktime"; /* an old QuickTime file */
            e = "mov";
        } else if (n >= 4 && memcmp(p, "\x1a\x45\xdf\xa3", 4) == 0) {
            type = "video/webm"; /* EBML: Matroska or WebM */
            e = "webm";
        }
    } else if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) {
        type = "image/png";
        e = "png";
    } else if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
        type = "image/jpeg";
        e = "jpg";
    } else if (n >= 12 && memcmp(p, "RIFF", 4) == 0
               && memcmp(p + 8, "WEBP", 4) == 0)
    {
        type = "image/webp";
        e = "webp";
    } else if (n >= 6
               && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
    {
        type = "image/gif";
        e = "gif";
    }
    if (ext != NULL) {
        *ext = e;
    }
    return type;
}
