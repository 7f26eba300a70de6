/*
 * sdnotify.h: the systemd readiness protocol (sd_notify(3)) in a few
 * lines, so the daemon needs no libsystemd.
 */
#ifndef S2A_SDNOTIFY_H
#define S2A_SDNOTIFY_H

/* Sends `state` (e.g. "READY=1") to $NOTIFY_SOCKET if set. */
void s2a_sd_notify(const char *state);

#endif /* S2A_SDNOTIFY_H */
