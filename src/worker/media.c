/*
 * media.c: /tmp/<name> file serving from the media cache (also the
 * content of a cached video, videos.c); every answer with a file counts
 * as a cache hit (`sora2api_cache_hits_total{kind="served"}`).
 */
#include "worker/media.h"
#include "common/log.h"
#include "worker/metrics.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int cache_fd = -1;

static const struct {
    const char *ext, *type;
} media_types[] = {
    { "png", "image/png" },   { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" }, { "webp", "image/webp" },
    { "gif", "image/gif" },   { "mp4", "video/mp4" },
    { "webm", "video/webm" }, { "mov", "video/quicktime" },
};

int
s2a_media_init(const char *cache_dir)
{
    cache_fd = open(cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cache_fd == -1) {
        s2a_log(LOG_WARNING, errno,
                "open(\"%s\") failed; cached media is "
                "not served",
                cache_dir);
    }
    return S2A_OK;
}

void
s2a_media_cleanup(void)
{
    if (cache_fd >= 0) {
        close(cache_fd);
        cache_fd = -1;
    }
}

const char *
s2a_media_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t i;

    if (dot == NULL) {
        return NULL;
    }
    for (i = 0; i < S2A_NELEMS(media_types); i++) {
        if (strcmp(dot + 1, media_types[i].ext) == 0) {
            return media_types[i].type;
        }
    }
    return NULL;
}

bool
s2a_media_name_ok(const char *name)
{
    const char *dot = strchr(name, '.'), *p;

    if (dot == NULL || dot == name || dot - name > 128
        || strchr(dot + 1, '.') != NULL)
    {
        return false;
    }
    for (p = name; p < dot; p++) {
        if (!isalnum((unsigned char) *p) && *p != '_' && *p != '-') {
            return false;
        }
    }
    return s2a_media_type(name) != NULL;
}

int
s2a_media_range(const char *header, int64_t size, int64_t *start, int64_t *len)
{
    const char *p;
    char *end;
    long long a, b;

    if (header == NULL || strncasecmp(header, "bytes=", 6) != 0) {
        return 0;
    }
    p = header + 6;
    while (*p == ' ') {
        p++;
    }
    if (strchr(p, ',') != NULL) {
        return 0; /* several ranges: the whole file */
    }
    if (*p == '-') { /* the last n bytes */
        b = strtoll(p + 1, &end, 10);
        if (end == p + 1 || *end != '\0' || b < 0) {
            return 0;
        }
        if (b == 0 || size == 0) {
            return -1;
        }
        if (b > size) {
            b = size;
        }
        *start = size - b;
        *len = b;
        return 1;
    }
    if (!isdigit((unsigned char) *p)) {
        return 0;
    }
    a = strtoll(p, &end, 10);
    if (*end != '-') {
        return 0;
    }
    p = end + 1;
    if (*p == '\0') {
        b = size - 1;
    } else {
        b = strtoll(p, &end, 10);
        if (end == p || *end != '\0' || b < a) {
            return 0;
        }
        if (b >= size) {
            b = size - 1;
        }
    }
    if (a >= size) {
        return -1;
    }
    *start = a;
    *len = b - a + 1;
    return 1;
}

static void
not_found(s2a_req_t *req)
{
    s2a_http_reply_error(req, 404, "invalid_request_error", "not_found", NULL,
                         "File not found or expired");
}

void
s2a_media_serve(s2a_req_t *req, const char *name)
{
    char cr[96];
    const char *type;
    int64_t start = 0, len;
    struct stat st;
    int fd, r;

    if (req->method != S2A_M_GET && req->method != S2A_M_HEAD) {
        s2a_http_add_header(req, "Allow", "GET, HEAD");
        s2a_http_reply_error(req, 405, "invalid_request_error",
                             "method_not_allowed", NULL,
                             "Method %s is not allowed for %.200s",
                             req->method_name, req->raw_path);
        return;
    }
    if (cache_fd < 0 || !s2a_media_name_ok(name)) {
        not_found(req);
        return;
    }
    fd = openat(cache_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        if (fd != -1) {
            close(fd);
        }
        not_found(req);
        return;
    }
    type = s2a_media_type(name);
    s2a_http_add_header(req, "Accept-Ranges", "bytes");
    /* Names are content hashes: a name never changes meaning. */
    s2a_http_add_header(req, "Cache-Control", "public, max-age=86400");
    s2a_http_add_header(req, "Access-Control-Allow-Origin", "*");
    if (s2a_http_validators(req, (int64_t) st.st_size,
                            (int64_t) st.st_mtim.tv_sec)) {
        close(fd);
        S2A_HTTP_REPLY_LIT(req, 304, NULL, "");
        return;
    }
    len = (int64_t) st.st_size;
    r = s2a_media_range(s2a_req_header(req, "Range"), len, &start, &len);
    if (r < 0) {
        close(fd);
        snprintf(cr, sizeof(cr), "bytes */%lld", (long long) st.st_size);
        s2a_http_add_header(req, "Content-Range", cr);
        s2a_http_reply_error(req, 416, "invalid_request_error",
                             "range_not_satisfiable", NULL,
                             "The range is outside the file");
        return;
    }
    if (r > 0) {
        snprintf(cr, sizeof(cr), "bytes %lld-%lld/%lld", (long long) start,
                 (long long) (start + len - 1), (long long) st.st_size);
        s2a_http_add_header(req, "Content-Range", cr);
        s2a_metrics_cache_hit(S2A_CH_SERVED);
        s2a_http_reply_file(req, 206, type, fd, start, len);
        return;
    }
    /* A hit is an answer with the file (each range request counts); a
     * 304 or 416 sends none of it. */
    s2a_metrics_cache_hit(S2A_CH_SERVED);
    s2a_http_reply_file(req, 200, type, fd, 0, len);
}
