/*
 * daemon.c: the process set-up of a traditional Unix daemon: detaching
 * (the parent waits until the daemon serves), its directories, the pid
 * file, the switch to an unprivileged user, signal and descriptor
 * limits. Used by the supervisor at start-up only.
 */
#include "master/daemon.h"
#include "master/master.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static bool pidfile_written;
static int data_lock_fd = -1;

int
s2a_daemon_detach(int *status_fd)
{
    int pipefd[2], fd;
    pid_t pid;
    char c;
    ssize_t n;

    if (pipe2(pipefd, O_CLOEXEC) == -1) {
        s2a_log(LOG_ERR, errno, "pipe() failed");
        return S2A_ERROR;
    }
    pid = fork();
    if (pid == -1) {
        s2a_log(LOG_ERR, errno, "fork() failed");
        return S2A_ERROR;
    }
    if (pid > 0) {
        /* Wait until the daemon says it serves, or dies trying. */
        close(pipefd[1]);
        do {
            n = read(pipefd[0], &c, 1);
        } while (n == -1 && errno == EINTR);
        _exit(n == 1 ? S2A_EXIT_OK : S2A_EXIT_FAILURE);
    }
    close(pipefd[0]);
    *status_fd = pipefd[1];
    if (setsid() == -1) {
        s2a_log(LOG_ERR, errno, "setsid() failed");
        return S2A_ERROR;
    }
    if (chdir("/") == -1) {
        s2a_log(LOG_ERR, errno, "chdir(\"/\") failed");
        return S2A_ERROR;
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        /* stderr stays until the error log is known to be a file. */
        if (s2a_log_fd() != STDERR_FILENO) {
            dup2(fd, STDERR_FILENO);
        }
        if (fd > STDERR_FILENO) {
            close(fd);
        }
    }
    return S2A_OK;
}

int
s2a_daemon_make_dirs(const s2a_conf_t *conf)
{
    const char *dirs[] = { conf->data_dir, conf->cache_dir };
    char buf[PATH_MAX];
    size_t i;

    for (i = 0; i < S2A_NELEMS(dirs); i++) {
        if (s2a_mkdirs(dirs[i], 0750) != S2A_OK) {
            s2a_log(LOG_ERR, errno, "mkdir(\"%s\") failed", dirs[i]);
            return S2A_ERROR;
        }
    }
    snprintf(buf, sizeof(buf), "%s", conf->pidfile);
    if (s2a_mkdirs(dirname(buf), 0755) != S2A_OK) {
        s2a_log(LOG_ERR, errno, "mkdir for pidfile \"%s\" failed",
                conf->pidfile);
        return S2A_ERROR;
    }
    return S2A_OK;
}

int
s2a_daemon_lock_data_dir(const s2a_conf_t *conf)
{
    char path[PATH_MAX + 32], buf[32];
    long pid;
    ssize_t n;
    int fd, len;

    snprintf(path, sizeof(path), "%s/%s", conf->data_dir, S2A_DAEMON_LOCK_FILE);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", path);
        return S2A_ERROR;
    }
    (void) fchmod(fd, 0600);
    /* Held for the master's life; the kernel drops it when the master
     * dies, so a stale file never blocks a start (unlike a pid check). */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) {
            n = pread(fd, buf, sizeof(buf) - 1, 0);
            buf[n > 0 ? n : 0] = '\0';
            pid = strtol(buf, NULL, 10);
            s2a_log(LOG_ERR, 0,
                    "data_dir \"%s\" is in use by another sora2apid "
                    "(pid %ld): refusing to share its database",
                    conf->data_dir, pid);
        } else {
            s2a_log(LOG_ERR, errno, "flock(\"%s\") failed", path);
        }
        close(fd);
        return S2A_ERROR;
    }
    len = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t) len, 0) != len) {
        s2a_log(LOG_WARNING, errno, "writing \"%s\" failed", path);
    }
    data_lock_fd = fd;
    return S2A_OK;
}

int
s2a_daemon_lock_fd(void)
{
    return data_lock_fd;
}

int
s2a_daemon_pidfile_write(const char *path)
{
    char buf[32], tmp[PATH_MAX + 8];
    int fd, n;
    long pid;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = (int) read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            pid = strtol(buf, NULL, 10);
            if (pid > 0 && pid != (long) getpid()
                && (kill((pid_t) pid, 0) == 0 || errno == EPERM))
            {
                s2a_log(LOG_ERR, 0, "already running: pid %ld in \"%s\"", pid,
                        path);
                return S2A_ERROR;
            }
        }
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s2a_log(LOG_ERR, errno, "open(\"%s\") failed", tmp);
        return S2A_ERROR;
    }
    n = snprintf(buf, sizeof(buf), "%d\n", (int) getpid());
    if (write(fd, buf, (size_t) n) != n || close(fd) != 0
        || rename(tmp, path) != 0) {
        s2a_log(LOG_ERR, errno, "writing pidfile \"%s\" failed", path);
        unlink(tmp);
        return S2A_ERROR;
    }
    pidfile_written = true;
    return S2A_OK;
}

int
s2a_daemon_drop_privileges(const s2a_conf_t *conf)
{
    struct passwd *pw;

    if (geteuid() != 0 || conf->user[0] == '\0') {
        if (conf->user[0] != '\0') {
            s2a_log(LOG_WARNING, 0,
                    "not started as root: [server] user "
                    "\"%s\" ignored",
                    conf->user);
        }
        return S2A_OK;
    }
    pw = getpwnam(conf->user);
    if (pw == NULL) {
        s2a_log(LOG_ERR, 0, "unknown user \"%s\"", conf->user);
        return S2A_ERROR;
    }
    /* The daemon's own directories must stay writable after the switch. */
    if (chown(conf->data_dir, pw->pw_uid, pw->pw_gid) == -1
        || chown(conf->cache_dir, pw->pw_uid, pw->pw_gid) == -1)
    {
        s2a_log(LOG_ERR, errno, "chown() of data or cache dir failed");
        return S2A_ERROR;
    }
    if (strcmp(conf->error_log, "stderr") != 0) {
        (void) chown(conf->error_log, pw->pw_uid, pw->pw_gid);
    }
    /* Its directory may stay root's (/run): owning the file at least lets
     * the daemon empty it on the way out. */
    if (pidfile_written) {
        (void) chown(conf->pidfile, pw->pw_uid, pw->pw_gid);
    }
    if (strcmp(conf->access_log, "stderr") != 0
        && strcmp(conf->access_log, "off") != 0)
    {
        int fd = open(conf->access_log, O_WRONLY | O_CREAT | O_APPEND, 0640);
        if (fd >= 0) {
            (void) fchown(fd, pw->pw_uid, pw->pw_gid);
            close(fd);
        }
    }
    if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1
        || setuid(pw->pw_uid) == -1)
    {
        s2a_log(LOG_ERR, errno, "switching to user \"%s\" failed", conf->user);
        return S2A_ERROR;
    }
    s2a_log(LOG_NOTICE, 0, "running as user \"%s\"", conf->user);
    return S2A_OK;
}

void
s2a_daemon_ignore_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Every stream is a client socket plus upstream connections: lift the
 * soft descriptor limit to the hard one, as the workers inherit it.
 */
void
s2a_daemon_raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            s2a_log(LOG_WARNING, errno, "raising the descriptor limit failed");
        }
    }
}

void
s2a_daemon_pidfile_remove(const char *path)
{
    int fd;

    if (!pidfile_written || unlink(path) == 0) {
        return;
    }
    /* After a privilege drop the directory may not be ours; an empty
     * pidfile reads as "not running" to us and the init script. */
    fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
    }
}
