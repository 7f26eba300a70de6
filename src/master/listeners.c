/*
 * listeners.c: the master's table of listening addresses and their
 * sockets, one per (address, worker slot) (see listen.c for the socket
 * calls). Workers get their slot's sockets at fork; a reload adds and
 * retires addresses all or nothing.
 */
#include "master/listeners.h"
#include "common/log.h"
#include "master/listen.h"
#include "master/state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTENERS 32

typedef struct listener_s {
    bool used;
    bool active; /* part of the current configuration */
    s2a_listen_t addr;
    int port; /* resolved (port 0 picks one) */
    int fds[S2A_CONF_MAX_WORKERS];
} listener_t;

static listener_t listeners[MAX_LISTENERS];

static listener_t *
listener_find(const s2a_listen_t *addr)
{
    int i;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (l->used && l->active && l->addr.port == addr->port
            && strcmp(l->addr.host, addr->host) == 0)
        {
            return l;
        }
    }
    return NULL;
}

static listener_t *
listener_new(const s2a_listen_t *addr)
{
    int i, s;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (!l->used) {
            memset(l, 0, sizeof(*l));
            l->used = true;
            l->active = true;
            l->addr = *addr;
            l->port = addr->port;
            for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
                l->fds[s] = -1;
            }
            return l;
        }
    }
    return NULL;
}

/* Makes sure every active listener has a socket for each slot < n;
 * on failure the sockets opened so far stay (the caller rolls back). */
static int
open_slot_sockets(int n, int backlog)
{
    const char *what = "";
    char name[96];
    int i, s, fd;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (!l->used || !l->active) {
            continue;
        }
        for (s = 0; s < n; s++) {
            if (l->fds[s] >= 0) {
                continue;
            }
            /* Only a new address can be held by someone else. */
            fd = s2a_listen_open(&l->addr, l->port, backlog, s == 0, &what);
            if (fd < 0) {
                s2a_log(LOG_ERR, errno, "%s for %s failed", what,
                        s2a_listen_str(&l->addr, name, sizeof(name)));
                return S2A_ERROR;
            }
            if (l->port == 0) {
                l->port = s2a_listen_port(fd);
                l->addr.port = l->port;
            }
            l->fds[s] = fd;
            if (s == 0) {
                s2a_log(LOG_NOTICE, 0, "listening on %s",
                        s2a_listen_str(&l->addr, name, sizeof(name)));
            }
        }
    }
    return S2A_OK;
}

/* listen(2) again applies a changed backlog to a listening socket. */
void
s2a_listeners_relisten(int backlog)
{
    int i, s;

    for (i = 0; i < MAX_LISTENERS; i++) {
        for (s = 0; listeners[i].used && s < S2A_CONF_MAX_WORKERS; s++) {
            if (listeners[i].fds[s] >= 0
                && listen(listeners[i].fds[s], backlog) == -1) {
                s2a_log(LOG_WARNING, errno,
                        "listen() with the new backlog "
                        "failed");
            }
        }
    }
}

void
s2a_listeners_steer(int n)
{
    int i;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (l->used && l->active && l->fds[0] >= 0
            && s2a_listen_steer(l->fds[0], n) != S2A_OK)
        {
            s2a_log(LOG_WARNING, errno,
                    "setsockopt(SO_ATTACH_REUSEPORT_CBPF) failed");
        }
    }
}

/* Closes the master's copy of sockets no present or future worker needs. */
void
s2a_listeners_close_unused(void)
{
    int i, s, open;
    s2a_proc_t *p;
    bool needed;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (!l->used) {
            continue;
        }
        open = 0;
        for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
            if (l->fds[s] < 0) {
                continue;
            }
            needed = !s2a_master.stopping && l->active
                && s < s2a_master.conf->workers;
            for (p = s2a_master.procs;
                 !needed && !s2a_master.stopping && p != NULL; p = p->next)
            {
                if (p->slot == s && (p->listener_mask & (1u << i))) {
                    needed = true;
                }
            }
            if (needed) {
                open++;
                continue;
            }
            close(l->fds[s]);
            l->fds[s] = -1;
        }
        if (open == 0 && !l->active) {
            l->used = false;
        }
    }
}

int
s2a_listeners_start(const s2a_conf_t *conf)
{
    int i;

    for (i = 0; i < conf->n_listen; i++) {
        if (listener_find(&conf->listen[i]) == NULL
            && listener_new(&conf->listen[i]) == NULL)
        {
            s2a_log(LOG_ERR, 0, "too many listening addresses");
            return S2A_ERROR;
        }
    }
    if (open_slot_sockets(conf->workers, conf->backlog) != S2A_OK) {
        return S2A_ERROR;
    }
    s2a_listeners_steer(conf->workers);
    return S2A_OK;
}

/*
 * The addresses of `next` become the active set, with a socket for each
 * of its worker slots. Every new socket is opened before anything is
 * given up: if one fails (a port in use), the sockets opened here are
 * closed, the table is as it was, and S2A_ERROR is returned.
 */
int
s2a_listeners_reload(const s2a_conf_t *next)
{
    static listener_t saved[MAX_LISTENERS];
    int i, j, s;
    bool keep;

    memcpy(saved, listeners, sizeof(saved));
    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (!l->used || !l->active) {
            continue;
        }
        keep = false;
        for (j = 0; j < next->n_listen; j++) {
            if (next->listen[j].port == l->addr.port
                && strcmp(next->listen[j].host, l->addr.host) == 0)
            {
                keep = true;
            }
        }
        l->active = keep;
    }
    for (j = 0; j < next->n_listen; j++) {
        if (listener_find(&next->listen[j]) == NULL
            && listener_new(&next->listen[j]) == NULL)
        {
            s2a_log(LOG_ERR, 0, "too many listening addresses");
            goto rollback;
        }
    }
    if (open_slot_sockets(next->workers, next->backlog) != S2A_OK) {
        goto rollback;
    }
    return S2A_OK;

rollback:
    for (i = 0; i < MAX_LISTENERS; i++) {
        for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
            int fd = listeners[i].used ? listeners[i].fds[s] : -1;
            if (fd >= 0 && !(saved[i].used && saved[i].fds[s] == fd)) {
                close(fd);
            }
        }
    }
    memcpy(listeners, saved, sizeof(listeners));
    return S2A_ERROR;
}

uint32_t
s2a_listeners_active_mask(void)
{
    uint32_t mask = 0;
    int i;

    for (i = 0; i < MAX_LISTENERS; i++) {
        if (listeners[i].used && listeners[i].active) {
            mask |= 1u << i;
        }
    }
    return mask;
}

int
s2a_listeners_take_slot(int slot, int *fds, int max)
{
    int i, s, n = 0;

    for (i = 0; i < MAX_LISTENERS; i++) {
        listener_t *l = &listeners[i];
        if (!l->used) {
            continue;
        }
        for (s = 0; s < S2A_CONF_MAX_WORKERS; s++) {
            if (l->fds[s] < 0) {
                continue;
            }
            if (s == slot && l->active && n < max) {
                fds[n++] = l->fds[s];
            } else {
                close(l->fds[s]);
            }
            l->fds[s] = -1;
        }
    }
    return n;
}
