/*
 * mediain.h: reading a media input a client sends as text (an http(s)
 * URL, a data URL or bare base64) and telling what its bytes are. One
 * reader for the image inputs of chat, images and videos and for the
 * video of a character creation; each caller words its own refusals.
 * Pure: no I/O.
 */
#ifndef S2A_MEDIAIN_H
#define S2A_MEDIAIN_H

#include "common/core.h"

#include <stddef.h>

/* The largest video a character creation takes (decoded, or fetched). */
#define S2A_MEDIAIN_VIDEO_MAX (20u * 1024 * 1024)
/* The longest URL a client may give for a media input. */
#define S2A_MEDIAIN_URL_MAX 4096

/* A media input: inline bytes (base64, data URL prefix removed) or a URL
 * the gateway downloads. */
typedef struct s2a_media_in_s {
    const char *base64; /* borrowed from the request */
    const char *url;    /* http(s) URL, borrowed */
    char mime[64];      /* from a data URL, or "" */
} s2a_media_in_t;

typedef enum {
    S2A_MEDIAIN_IMAGE = 0,
    S2A_MEDIAIN_VIDEO
} s2a_mediain_kind_t;

typedef enum {
    S2A_MEDIAIN_OK = 0,
    S2A_MEDIAIN_URL_TOO_LONG,   /* over S2A_MEDIAIN_URL_MAX */
    S2A_MEDIAIN_NOT_BASE64_URL, /* a data URL without ";base64," */
    S2A_MEDIAIN_WRONG_TYPE,     /* a data URL of another kind (flag) */
    S2A_MEDIAIN_BAD_BASE64      /* neither a URL nor base64 */
} s2a_mediain_rc_t;

/* Flags of s2a_mediain_text. */
#define S2A_MEDIAIN_F_URL_LIMIT 0x1 /* refuse URLs over S2A_MEDIAIN_URL_MAX */
#define S2A_MEDIAIN_F_TYPE \
    0x2 /* a data URL's type must fit the kind
                                       (video: video/ or application/) */

/*
 * Reads `s` into `out` (pointers into `s`): an http or https URL (the
 * scheme in any case), a data URL "data:<type>[;...];base64,<b64>"
 * (its type kept in out->mime), or bare base64 (standard or URL-safe,
 * line breaks allowed), which is decoded once to be sure.
 */
s2a_mediain_rc_t s2a_mediain_text(const char *s, s2a_mediain_kind_t kind,
                                  unsigned flags, s2a_media_in_t *out);

/*
 * What `n` bytes at `p` are, from their magic: "video/mp4",
 * "video/quicktime", "video/webm" for S2A_MEDIAIN_VIDEO, "image/png",
 * "image/jpeg", "image/webp", "image/gif" for S2A_MEDIAIN_IMAGE; NULL
 * when they are none of those. `ext` (may be NULL) gets the file
 * extension ("mp4", "mov", ...).
 */
const char *s2a_mediain_sniff(const unsigned char *p, size_t n,
                              s2a_mediain_kind_t kind, const char **ext);

#endif /* S2A_MEDIAIN_H */
