/*
 * sdnotify.c: datagram to $NOTIFY_SOCKET (path or @abstract name).
 */
#include "master/sdnotify.h"
#include "common/core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void
s2a_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun;
    socklen_t len;
    size_t plen;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@')) {
        return;
    }
    plen = strlen(path);
    if (plen >= sizeof(sun.sun_path)) {
        return;
    }
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, plen);
    if (sun.sun_path[0] == '@') {
        sun.sun_path[0] = '\0';
    }
    len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + plen);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return;
    }
    (void) sendto(fd, state, strlen(state), MSG_NOSIGNAL,
                  (struct sockaddr *) &sun, len);
    close(fd);
}
