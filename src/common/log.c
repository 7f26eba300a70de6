/*
 * log.c: error log with role/pid prefix, one write(2) per line.
 */
#include "common/log.h"
#include "common/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;
static int log_level = LOG_INFO;
static char log_role[32] = "master";

static const char *const level_names[] = { "emerg", "alert",  "crit", "error",
                                           "warn",  "notice", "info", "debug" };

int
s2a_log_level_parse(const char *name)
{
    size_t i;

    for (i = 0; i < S2A_NELEMS(level_names); i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            return (int) i;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        return LOG_WARNING;
    }
    if (strcasecmp(name, "err") == 0) {
        return LOG_ERR;
    }
    return -1;
}

const char *
s2a_log_level_name(int level)
{
    if (level < 0 || level >= (int) S2A_NELEMS(level_names)) {
        return "unknown";
    }
    return level_names[level];
}

int
s2a_log_open(const char *path)
{
    int fd;

    if (path == NULL || path[0] == '\0' || strcmp(path, "stderr") == 0) {
        if (log_fd != STDERR_FILENO) {
            close(log_fd);
        }
        log_fd = STDERR_FILENO;
        return S2A_OK;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd == -1) {
        return S2A_ERROR;
    }
    if (log_fd != STDERR_FILENO) {
        /* dup2 keeps the descriptor number stable across a reopen. */
        if (dup2(fd, log_fd) == -1) {
            int err = errno;
            close(fd);
            errno = err;
            return S2A_ERROR;
        }
        close(fd);
    } else {
        log_fd = fd;
    }
    return S2A_OK;
}

void
s2a_log_set_role(const char *role)
{
    snprintf(log_role, sizeof(log_role), "%s", role);
}

void
s2a_log_set_level(int level)
{
    log_level = level;
}

int
s2a_log_get_level(void)
{
    return log_level;
}

int
s2a_log_fd(void)
{
    return log_fd;
}

void
s2a_log_va(int level, int err, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    if (level > log_level) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03dZ [%s] [%s pid %d] ",
                 (int) (tv.tv_usec / 1000), s2a_log_level_name(level), log_role,
                 (int) getpid());
    if (r > 0) {
        n += (size_t) r;
    }
    if (n < sizeof(line)) {
        r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        if (r > 0) {
            n += (size_t) r;
        }
    }
    if (err != 0 && n < sizeof(line)) {
        r = snprintf(line + n, sizeof(line) - n, " (%d: %s)", err,
                     strerror(err));
        if (r > 0) {
            n += (size_t) r;
        }
    }
    if (n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';
    /* A failed log write has nowhere to be reported. */
    if (write(log_fd, line, n) < 0) {
        return;
    }
}

void
s2a_log(int level, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    s2a_log_va(level, err, fmt, ap);
    va_end(ap);
}

const char *
s2a_log_mask(const char *secret, char *out, size_t outlen)
{
    size_t len;

    if (secret == NULL) {
        snprintf(out, outlen, "(none)");
        return out;
    }
    len = strlen(secret);
    if (len <= 12) {
        snprintf(out, outlen, "****");
    } else {
        snprintf(out, outlen, "%.4s...%s", secret, secret + len - 4);
    }
    return out;
}
