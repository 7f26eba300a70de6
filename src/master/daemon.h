/*
 * daemon.h: process set-up of the daemon (see daemon.c).
 */
#ifndef S2A_MASTER_DAEMON_H
#define S2A_MASTER_DAEMON_H

#include "common/conf.h"

/*
 * Detaches from the terminal (fork, setsid, chdir /, /dev/null). The
 * parent exits 0 once a byte arrives on *status_fd (the daemon serves),
 * 1 if it closes first. Returns S2A_OK in the daemon.
 */
int s2a_daemon_detach(int *status_fd);

/* Creates the data, cache and pid-file directories. */
int s2a_daemon_make_dirs(const s2a_conf_t *conf);

#define S2A_DAEMON_LOCK_FILE "sora2apid.lock"

/*
 * Takes an exclusive flock(2) on `<data_dir>/sora2apid.lock` (holding our
 * pid), kept until the master exits, so a second daemon on the same
 * data_dir refuses to start instead of sharing the database. Returns
 * S2A_OK, or S2A_ERROR after logging who holds it.
 */
int s2a_daemon_lock_data_dir(const s2a_conf_t *conf);

/* The descriptor holding that lock (-1: none); workers close it. */
int s2a_daemon_lock_fd(void);

/* Refuses to start over a live pid in `path`, else writes ours. */
int s2a_daemon_pidfile_write(const char *path);

/* Removes (or empties) the pid file written by this process. */
void s2a_daemon_pidfile_remove(const char *path);

/* Switches to [server] user when started as root. */
int s2a_daemon_drop_privileges(const s2a_conf_t *conf);

/* SIGPIPE ignored: a write to a closed socket is an error, not a death. */
void s2a_daemon_ignore_signals(void);

/* Lifts the soft descriptor limit to the hard one. */
void s2a_daemon_raise_fd_limit(void);

#endif /* S2A_MASTER_DAEMON_H */
