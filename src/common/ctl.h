/*
 * ctl.h: the control channel codec between the master and a worker.
 *
 * Each worker has a socketpair to the master. Messages are JSON objects
 * framed by a 4-byte big-endian length. Requests that want an answer carry
 * an "id"; the answer carries the same value in "re". Every message has an
 * "op" naming what it is (see docs/control-channel.md).
 */
#ifndef S2A_CTL_H
#define S2A_CTL_H

#include "common/core.h"

#include <jansson.h>

#define S2A_CTL_MAX_FRAME (16u * 1024 * 1024)

/*
 * Encodes `msg` as one frame into a newly allocated buffer (caller frees).
 * Returns S2A_OK, or S2A_ERROR when it cannot be serialised or is larger
 * than S2A_CTL_MAX_FRAME.
 */
int s2a_ctl_encode(const json_t *msg, char **out, size_t *outlen);

/*
 * Decodes one frame from the start of `buf`. Returns S2A_OK with `*msg` (a
 * new reference, caller decrefs) and `*consumed` set; S2A_AGAIN when `buf`
 * holds no complete frame yet; S2A_ERROR for a frame that is too large,
 * not JSON, or not an object with a string "op" (the stream is then
 * unusable and the caller closes it). `err` receives a message.
 */
int s2a_ctl_decode(const unsigned char *buf, size_t len, size_t *consumed,
                   json_t **msg, char *err, size_t errlen);

#endif /* S2A_CTL_H */
