/*
 * listen.c: socket creation and reuseport steering.
 */
#include "master/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_ATTACH_REUSEPORT_CBPF
#define SO_ATTACH_REUSEPORT_CBPF 51
#endif

int
s2a_listen_open(const s2a_listen_t *l, int port, int backlog, bool probe,
                const char **what)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    int fd, on = 1, flags;

    memset(&ss, 0, sizeof(ss));
    if (l->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) (void *) &ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        inet_pton(AF_INET6, l->host, &sin6->sin6_addr);
        sslen = sizeof(*sin6);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *) (void *) &ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        inet_pton(AF_INET, l->host, &sin->sin_addr);
        sslen = sizeof(*sin);
    }

    if (probe && port != 0) {
        /* Sockets with SO_REUSEPORT share a port with any other process of
         * the same user that set it too: a second daemon would silently
         * take half the connections. A plain bind finds such a holder. */
        fd = socket(l->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            *what = "socket()";
            return -1;
        }
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        if (l->family == AF_INET6) {
            (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        }
        if (bind(fd, (struct sockaddr *) &ss, sslen) == -1) {
            *what = "bind()";
            goto failed;
        }
        close(fd);
    }
    fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *what = "socket()";
        return -1;
    }
    /* Workers inherit the descriptor across fork (no exec), so CLOEXEC
     * only keeps it out of programs a worker might run. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
        *what = "setsockopt(SO_REUSEADDR)";
        goto failed;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1) {
        *what = "setsockopt(SO_REUSEPORT)";
        goto failed;
    }
    if (l->family == AF_INET6
        && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
    {
        *what = "setsockopt(IPV6_V6ONLY)";
        goto failed;
    }
    if (bind(fd, (struct sockaddr *) &ss, sslen) == -1) {
        *what = "bind()";
        goto failed;
    }
    if (listen(fd, backlog) == -1) {
        *what = "listen()";
        goto failed;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
        *what = "fcntl(O_NONBLOCK)";
        goto failed;
    }
    return fd;

failed : {
    int err = errno;
    close(fd);
    errno = err;
}
    return -1;
}

int
s2a_listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *) &ss, &len) == -1) {
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *) (void *) &ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *) (void *) &ss)->sin_port);
}

int
s2a_listen_steer(int fd, int n)
{
    /* A = random; A %= n; return A: an index into the group's sockets.
     * Selection happens once per SYN, so random spreading is exact. */
    struct sock_filter code[] = {
        { BPF_LD | BPF_W | BPF_ABS, 0, 0,
          (uint32_t) (SKF_AD_OFF + SKF_AD_RANDOM) },
        { BPF_ALU | BPF_MOD | BPF_K, 0, 0, (uint32_t) n },
        { BPF_RET | BPF_A, 0, 0, 0 },
    };
    struct sock_fprog prog = { .len = 3, .filter = code };

    if (n < 1) {
        errno = EINVAL;
        return S2A_ERROR;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
                   sizeof(prog))
        == -1)
    {
        return S2A_ERROR;
    }
    return S2A_OK;
}
