/*
 * signedurl.h: when a signed media URL stops working. Sora's result URLs
 * are Azure-blob style shared-access signatures: the query carries the
 * expiry as `se=<ISO-8601>` (URL-encoded) next to `sig=`. Pure
 * functions on untrusted text; nothing here allocates.
 */
#ifndef S2A_SIGNEDURL_H
#define S2A_SIGNEDURL_H

#include "common/core.h"

#include <stddef.h>

/*
 * The expiry of `url` from its `se` query parameter, as unix seconds in
 * *expires. Returns S2A_OK, or S2A_DECLINED when the URL has no such
 * parameter or its value is not a valid time (nothing is known then).
 */
int s2a_signed_url_expiry(const char *url, int64_t *expires);

/*
 * Parses an ISO-8601 time of `len` bytes: YYYY-MM-DD, optionally
 * followed by T (or a blank) and HH:MM[:SS[.fraction]], optionally
 * followed by Z, +HH:MM, -HH:MM, +HHMM or -HHMM (no zone is UTC). Years
 * 1970..9999. Returns S2A_OK with unix seconds in *out, else
 * S2A_DECLINED.
 */
int s2a_iso8601_parse(const char *s, size_t len, int64_t *out);

#endif /* S2A_SIGNEDURL_H */
