/*
 * listen.h: listening sockets, one per (address, worker slot).
 *
 * Every socket of one address shares the port through SO_REUSEPORT, so the
 * kernel queues each connection on exactly one worker's socket and no
 * worker wakes for another's connection. The master creates and keeps them
 * all; a respawned worker inherits its slot's queue. A classic BPF program
 * on the group sends new connections only to the sockets of the first N
 * slots, which lets a shrinking reload drain the others without resets.
 */
#ifndef S2A_LISTEN_H
#define S2A_LISTEN_H

#include "common/conf.h"

/*
 * Opens one listening socket for `l` (port `port`, which may be 0 for the
 * first socket of an address). With `probe`, first checks that no other
 * process holds the address (EADDRINUSE). Returns the descriptor, or -1
 * with errno set; `what` names the call that failed.
 */
int s2a_listen_open(const s2a_listen_t *l, int port, int backlog, bool probe,
                    const char **what);

/* The local port a socket is bound to, or -1. */
int s2a_listen_port(int fd);

/*
 * Steers new connections of the reuseport group `fd` belongs to across
 * the first `n` sockets of the group (in the order they started
 * listening). Returns S2A_OK or S2A_ERROR with errno set.
 */
int s2a_listen_steer(int fd, int n);

#endif /* S2A_LISTEN_H */
