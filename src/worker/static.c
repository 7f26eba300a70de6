/*
 * static.c: admin UI files. Paths are walked one segment at a time with
 * openat(O_NOFOLLOW) from a descriptor of the root, so neither "..", nor
 * an encoded variant, nor a symlink can lead outside the tree.
 */
#include "worker/static.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int root_fd = -1;

int
s2a_static_init(const char *root)
{
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd == -1) {
        /* Not fatal: the API works without the UI. */
        s2a_log(LOG_WARNING, errno,
                "open(\"%s\") failed; the admin UI is "
                "not served",
                root);
    }
    return S2A_OK;
}

void
s2a_static_cleanup(void)
{
    if (root_fd >= 0) {
        close(root_fd);
        root_fd = -1;
    }
}

const char *
s2a_static_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        { "html", "text/html; charset=utf-8" },
        { "htm", "text/html; charset=utf-8" },
        { "css", "text/css; charset=utf-8" },
        { "js", "text/javascript; charset=utf-8" },
        { "mjs", "text/javascript; charset=utf-8" },
        { "json", "application/json" },
        { "map", "application/json" },
        { "svg", "image/svg+xml" },
        { "png", "image/png" },
        { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" },
        { "gif", "image/gif" },
        { "webp", "image/webp" },
        { "ico", "image/x-icon" },
        { "txt", "text/plain; charset=utf-8" },
        { "woff", "font/woff" },
        { "woff2", "font/woff2" },
        { "mp4", "video/mp4" },
        { "webm", "video/webm" },
    };
    const char *dot = strrchr(name, '.');
    size_t i;

    if (dot != NULL && strchr(dot, '/') == NULL) {
        for (i = 0; i < S2A_NELEMS(types); i++) {
            if (strcasecmp(dot + 1, types[i].ext) == 0) {
                return types[i].type;
            }
        }
    }
    return "application/octet-stream";
}

bool
s2a_static_path_ok(const char *path)
{
    const char *seg, *p;
    size_t len;

    if (path[0] != '/') {
        return false;
    }
    for (p = path; *p != '\0'; p++) {
        if ((unsigned char) *p < 0x20 || *p == 0x7f || *p == '\\') {
            return false;
        }
    }
    seg = path + 1;
    while (*seg != '\0') {
        p = strchr(seg, '/');
        len = p != NULL ? (size_t) (p - seg) : strlen(seg);
        if ((len == 0 && p != NULL) || (len == 1 && seg[0] == '.')
            || (len == 2 && seg[0] == '.' && seg[1] == '.'))
        {
            return false;
        }
        if (p == NULL) {
            break;
        }
        seg = p + 1;
    }
    return true;
}

/* Opens `path` beneath the root without following any symlink. */
static int
open_beneath(const char *path)
{
    char buf[PATH_MAX], *seg, *save = NULL, *next;
    int dir = root_fd, fd = -1;

    if (snprintf(buf, sizeof(buf), "%s", path + 1) >= (int) sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    seg = strtok_r(buf, "/", &save);
    if (seg == NULL) {
        return openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    while (seg != NULL) {
        next = strtok_r(NULL, "/", &save);
        fd = openat(dir, seg,
                    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
                        | (next != NULL ? O_DIRECTORY : 0));
        if (dir != root_fd) {
            close(dir);
        }
        if (fd == -1) {
            return -1;
        }
        dir = fd;
        seg = next;
    }
    return fd;
}

static void
not_found(s2a_req_t *req)
{
    s2a_http_reply_error(req, 404, "invalid_request_error", "not_found", NULL,
                         "Not found: %.200s", req->raw_path);
}

void
s2a_static_serve(s2a_req_t *req)
{
    const char *path = req->path, *type;
    struct stat st;
    int fd, idx;

    if (root_fd < 0 || !s2a_static_path_ok(path)) {
        not_found(req);
        return;
    }
    fd = open_beneath(path);
    if (fd == -1 || fstat(fd, &st) == -1) {
        if (fd != -1) {
            close(fd);
        }
        not_found(req);
        return;
    }
    type = s2a_static_content_type(path);
    if (S_ISDIR(st.st_mode)) {
        idx = openat(fd, "index.html",
                     O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        close(fd);
        fd = idx;
        if (fd == -1 || fstat(fd, &st) == -1) {
            if (fd != -1) {
                close(fd);
            }
            not_found(req);
            return;
        }
        type = "text/html; charset=utf-8";
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        not_found(req);
        return;
    }
    /* Every file is revalidated (a 304 while its ETag holds): the UI is
     * plain ES modules under fixed names, and a module cached from an
     * older version must never meet a newer page after an upgrade. */
    s2a_http_add_header(req, "Cache-Control", "no-cache");
    s2a_http_add_header(req, "X-Content-Type-Options", "nosniff");
    if (s2a_http_validators(req, (int64_t) st.st_size,
                            (int64_t) st.st_mtim.tv_sec)) {
        close(fd);
        S2A_HTTP_REPLY_LIT(req, 304, NULL, "");
        return;
    }
    s2a_http_reply_file(req, 200, type, fd, 0, (int64_t) st.st_size);
}
