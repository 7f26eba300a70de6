/*
 * chan.c: control channel transport (length-prefixed JSON on a
 * socketpair), shared by the master and the workers.
 */
#include "common/chan.h"
#include "common/ctl.h"
#include "common/log.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

struct s2a_chan_s {
    struct bufferevent *bev;
    s2a_chan_msg_pt on_msg;
    s2a_chan_close_pt on_close;
    void *arg;
    int closed;
};

static void
chan_closed(s2a_chan_t *chan)
{
    if (chan->closed) {
        return;
    }
    chan->closed = 1;
    bufferevent_disable(chan->bev, EV_READ);
    if (chan->on_close != NULL) {
        chan->on_close(chan, chan->arg);
    }
}

static void
chan_dispatch(s2a_chan_t *chan)
{
    struct evbuffer *in = bufferevent_get_input(chan->bev);
    unsigned char hdr[4], *p;
    size_t len, n, consumed;
    char err[256];
    json_t *msg;
    int rc;

    while (!chan->closed) {
        len = evbuffer_get_length(in);
        if (len < 4) {
            return;
        }
        evbuffer_copyout(in, hdr, 4);
        n = ((size_t) hdr[0] << 24) | ((size_t) hdr[1] << 16)
            | ((size_t) hdr[2] << 8) | (size_t) hdr[3];
        if (n <= S2A_CTL_MAX_FRAME && len < n + 4) {
            return;
        }
        p = evbuffer_pullup(in,
                            (ev_ssize_t) (n <= S2A_CTL_MAX_FRAME ? n + 4 : 4));
        rc = s2a_ctl_decode(p, len, &consumed, &msg, err, sizeof(err));
        if (rc == S2A_AGAIN) {
            return;
        }
        if (rc != S2A_OK) {
            s2a_log(LOG_ERR, 0, "control channel: %s", err);
            chan_closed(chan);
            return;
        }
        evbuffer_drain(in, consumed);
        chan->on_msg(chan, msg, chan->arg);
        json_decref(msg);
    }
}

static void
chan_read_cb(struct bufferevent *bev, void *arg)
{
    S2A_UNUSED(bev);
    chan_dispatch(arg);
}

static void
chan_event_cb(struct bufferevent *bev, short what, void *arg)
{
    s2a_chan_t *chan = arg;

    S2A_UNUSED(bev);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        chan_dispatch(chan);
        chan_closed(chan);
    }
}

s2a_chan_t *
s2a_chan_create(struct event_base *base, int fd, s2a_chan_msg_pt on_msg,
                s2a_chan_close_pt on_close, void *arg)
{
    s2a_chan_t *chan = calloc(1, sizeof(*chan));

    if (chan == NULL) {
        return NULL;
    }
    chan->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (chan->bev == NULL) {
        free(chan);
        return NULL;
    }
    chan->on_msg = on_msg;
    chan->on_close = on_close;
    chan->arg = arg;
    bufferevent_setcb(chan->bev, chan_read_cb, NULL, chan_event_cb, chan);
    bufferevent_enable(chan->bev, EV_READ | EV_WRITE);
    return chan;
}

void
s2a_chan_destroy(s2a_chan_t *chan)
{
    if (chan == NULL) {
        return;
    }
    bufferevent_free(chan->bev);
    free(chan);
}

int
s2a_chan_send(s2a_chan_t *chan, const json_t *msg)
{
    char *buf;
    size_t len;
    int rc;

    if (chan->closed) {
        return S2A_ERROR;
    }
    if (s2a_ctl_encode(msg, &buf, &len) != S2A_OK) {
        s2a_log(LOG_ERR, 0, "control channel: cannot encode message");
        return S2A_ERROR;
    }
    rc = bufferevent_write(chan->bev, buf, len) == 0 ? S2A_OK : S2A_ERROR;
    free(buf);
    return rc;
}

/* Wipes the strings of a decoded message, then drops the reference. */
static void
wipe_json(json_t *v)
{
    const char *key;
    json_t *item;
    size_t i;

    if (json_is_string(v)) {
        /* Jansson's own copy: writable, and about to be freed. */
        OPENSSL_cleanse((char *) json_string_value(v), json_string_length(v));
    } else if (json_is_object(v)) {
        json_object_foreach (v, key, item) {
            wipe_json(item);
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, i, item) {
            wipe_json(item);
        }
    }
}

static void
frame_wipe(const void *data, size_t len, void *arg)
{
    (void) arg;
    OPENSSL_cleanse((void *) data, len);
    free((void *) data);
}

int
s2a_chan_send_secret(s2a_chan_t *chan, json_t *msg)
{
    char *buf = NULL;
    size_t len;
    int rc = S2A_ERROR;

    if (!chan->closed && s2a_ctl_encode(msg, &buf, &len) == S2A_OK) {
        /* By reference: libevent keeps no copy, and wipes this one via
         * frame_wipe once the bytes are written (or the channel freed). */
        if (evbuffer_add_reference(bufferevent_get_output(chan->bev), buf, len,
                                   frame_wipe, NULL)
            == 0)
        {
            rc = S2A_OK;
        } else {
            frame_wipe(buf, len, NULL);
        }
    } else if (!chan->closed) {
        s2a_log(LOG_ERR, 0, "control channel: cannot encode message");
    }
    wipe_json(msg);
    json_decref(msg);
    return rc;
}

void
s2a_chan_drain_input(s2a_chan_t *chan)
{
    struct evbuffer *in = bufferevent_get_input(chan->bev);
    int fd = bufferevent_getfd(chan->bev);
    int n;

    if (chan->closed || fd < 0) {
        return;
    }
    /* A socket bufferevent freezes the end of its input buffer so only it
     * adds data; we read by hand here, outside the loop. */
    evbuffer_unfreeze(in, 0);
    do {
        n = evbuffer_read(in, fd, -1);
    } while (n > 0);
    evbuffer_freeze(in, 0);
    chan_dispatch(chan);
}

int
s2a_chan_fd(s2a_chan_t *chan)
{
    return bufferevent_getfd(chan->bev);
}

size_t
s2a_chan_pending(s2a_chan_t *chan)
{
    return evbuffer_get_length(bufferevent_get_output(chan->bev));
}

void
s2a_chan_flush_blocking(s2a_chan_t *chan, int timeout_ms)
{
    struct evbuffer *out = bufferevent_get_output(chan->bev);
    int fd = bufferevent_getfd(chan->bev);
    struct pollfd pfd;

    /* Only used on the way out of a process, where nothing else runs.
     * The bufferevent freezes the front of its output buffer: thaw it to
     * write by hand. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0 && fd >= 0) {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        if (poll(&pfd, 1, timeout_ms) <= 0) {
            break;
        }
        if (evbuffer_write(out, fd) < 0 && errno != EAGAIN) {
            break;
        }
    }
    evbuffer_freeze(out, 1);
}
