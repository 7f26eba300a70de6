/*
 * log.h: the one logger. Every line is built in a stack buffer and written
 * with a single write(2) to an O_APPEND descriptor, so lines from the
 * master and all workers never interleave.
 */
#ifndef S2A_LOG_H
#define S2A_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>

/* Levels are syslog's (LOG_ERR .. LOG_DEBUG). */

int s2a_log_level_parse(const char *name);
const char *s2a_log_level_name(int level);

/*
 * Opens (or reopens, for SIGUSR1) the error log. An empty path or "stderr"
 * logs to standard error. Returns S2A_OK or S2A_ERROR with errno set.
 */
int s2a_log_open(const char *path);

/* The role prefix of every line: "master" or "worker 2". */
void s2a_log_set_role(const char *role);

/* Lines above this level are dropped. */
void s2a_log_set_level(int level);
int s2a_log_get_level(void);

/* Descriptor the error log writes to (kept across fork). */
int s2a_log_fd(void);

/*
 * Logs one line at `level`. A non-zero `err` appends "(errno: text)".
 */
void s2a_log(int level, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void s2a_log_va(int level, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Writes `secret` masked to its first and last 4 characters into `out`.
 * Secrets of 12 characters or less are fully masked.
 */
const char *s2a_log_mask(const char *secret, char *out, size_t outlen);

#endif /* S2A_LOG_H */
