/*
 * chan.h: one end of a master/worker control channel on a bufferevent.
 *
 * Frames are decoded with ctl.h and handed to the owner's callback one
 * message at a time; sending encodes and queues without blocking.
 */
#ifndef S2A_CHAN_H
#define S2A_CHAN_H

#include "common/core.h"

#include <event2/event.h>
#include <jansson.h>

typedef struct s2a_chan_s s2a_chan_t;

/* Called for each message; `msg` is borrowed for the call. */
typedef void (*s2a_chan_msg_pt)(s2a_chan_t *chan, json_t *msg, void *arg);
/* Called once when the peer closed the channel or sent garbage. */
typedef void (*s2a_chan_close_pt)(s2a_chan_t *chan, void *arg);

/*
 * Wraps `fd` (taken over: closed by s2a_chan_destroy). Returns NULL on
 * allocation failure.
 */
s2a_chan_t *s2a_chan_create(struct event_base *base, int fd,
                            s2a_chan_msg_pt on_msg, s2a_chan_close_pt on_close,
                            void *arg);
void s2a_chan_destroy(s2a_chan_t *chan);

/* Queues `msg` (borrowed). Returns S2A_OK or S2A_ERROR. */
int s2a_chan_send(s2a_chan_t *chan, const json_t *msg);
/*
 * The same for a message that carries secrets (an ST, an RT): the
 * encoded frame is handed to the channel by reference and wiped when it
 * has been written, and the strings of `msg` are wiped before it is
 * released (the caller's reference is consumed).
 */
int s2a_chan_send_secret(s2a_chan_t *chan, json_t *msg);

/*
 * Reads whatever the peer left in the socket and dispatches it; used when
 * the peer is known to have exited so no message is lost.
 */
void s2a_chan_drain_input(s2a_chan_t *chan);

/* The socket descriptor (for closing inherited copies after fork). */
int s2a_chan_fd(s2a_chan_t *chan);

/* Bytes queued but not yet written. */
size_t s2a_chan_pending(s2a_chan_t *chan);

/* Blocks up to `timeout_ms` until the output queue is written. */
void s2a_chan_flush_blocking(s2a_chan_t *chan, int timeout_ms);

#endif /* S2A_CHAN_H */
