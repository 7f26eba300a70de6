/*
 * mediacache.c: result downloads into the cache directory.
 */
#include "worker/mediacache.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/util.h"
#include "worker/context.h"
#include "worker/metrics.h"
#include "worker/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAX_BYTES (1024L * 1024 * 1024) /* one result, 1 GiB */

typedef struct fetch_s {
    uint64_t id;      /* ours */
    uint64_t call;    /* upstream call, 0 when none */
    struct event *ev; /* immediate answers (cache hit, early failure) */
    int fd;
    char hash[33];
    char part[96];
    char name[48]; /* the answer of an immediate completion */
    char error[160];
    s2a_kind_t kind;
    s2a_cache_done_pt done;
    void *arg;
    struct fetch_s *next;
} fetch_t;

static struct {
    int dir_fd;
    bool opened;
    uint64_t next_id;
    unsigned seq;
    fetch_t *fetches;
} C;

static int
cache_dir_fd(void)
{
    if (!C.opened) {
        C.dir_fd = open(s2a_worker.conf->cache_dir,
                        O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        C.opened = C.dir_fd >= 0;
    }
    return C.opened ? C.dir_fd : -1;
}

static void
fetch_unlink(fetch_t *f)
{
    fetch_t **pp;

    for (pp = &C.fetches; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            return;
        }
    }
}

static void
fetch_free(fetch_t *f)
{
    if (f->fd >= 0) {
        close(f->fd);
        if (cache_dir_fd() >= 0) {
            unlinkat(cache_dir_fd(), f->part, 0);
        }
    }
    if (f->ev != NULL) {
        event_free(f->ev);
    }
    free(f);
}

/* Finishes `f`: unlinks it first, so `done` may start another fetch. */
static void
fetch_finish(fetch_t *f, const char *name, const char *error)
{
    s2a_cache_done_pt done = f->done;
    void *arg = f->arg;
    char n[48], e[160];

    snprintf(n, sizeof(n), "%s", name != NULL ? name : "");
    snprintf(e, sizeof(e), "%s", error != NULL ? error : "");
    fetch_unlink(f);
    fetch_free(f);
    done(name != NULL ? n : NULL, name != NULL ? NULL : e, arg);
}

static void
immediate_cb(evutil_socket_t fd, short what, void *arg)
{
    fetch_t *f = arg;

    S2A_UNUSED(fd);
    S2A_UNUSED(what);
    fetch_finish(f, f->name[0] != '\0' ? f->name : NULL, f->error);
}

/* The extension from the file's first bytes, then its content type. */
static const char *
extension_of(int fd, const char *ctype, s2a_kind_t kind)
{
    static const struct {
        const char *type, *ext;
    } types[] = {
        { "image/png", "png" },       { "image/jpeg", "jpg" },
        { "image/webp", "webp" },     { "image/gif", "gif" },
        { "video/mp4", "mp4" },       { "video/webm", "webm" },
        { "video/quicktime", "mov" },
    };
    unsigned char m[16];
    ssize_t n = pread(fd, m, sizeof(m), 0);
    size_t i, len;

    if (n >= 8 && memcmp(m, "\x89PNG\r\n\x1a\n", 8) == 0) {
        return "png";
    }
    if (n >= 3 && m[0] == 0xff && m[1] == 0xd8 && m[2] == 0xff) {
        return "jpg";
    }
    if (n >= 12 && memcmp(m, "RIFF", 4) == 0 && memcmp(m + 8, "WEBP", 4) == 0) {
        return "webp";
    }
    if (n >= 4 && memcmp(m, "GIF8", 4) == 0) {
        return "gif";
    }
    if (n >= 12 && memcmp(m + 4, "ftyp", 4) == 0) {
        return memcmp(m + 8, "qt  ", 4) == 0 ? "mov" : "mp4";
    }
    if (n >= 4 && memcmp(m, "\x1a\x45\xdf\xa3", 4) == 0) {
        return "webm";
    }
    for (i = 0; ctype != NULL && i < S2A_NELEMS(types); i++) {
        len = strlen(types[i].type);
        if (strncasecmp(ctype, types[i].type, len) == 0
            && (ctype[len] == '\0' || ctype[len] == ';'))
        {
            return types[i].ext;
        }
    }
    return kind == S2A_KIND_VIDEO ? "mp4" : "png";
}

static void
download_done(const s2a_upstream_resp_t *resp, void *arg)
{
    fetch_t *f = arg;
    char name[48], error[160];
    const char *ext;

    f->call = 0;
    if (resp->curl_code != 0 || resp->status < 200 || resp->status > 299) {
        if (resp->curl_code != 0) {
            snprintf(error, sizeof(error), "download failed: %s", resp->error);
        } else {
            snprintf(error, sizeof(error), "download answered HTTP %ld",
                     resp->status);
        }
        fetch_finish(f, NULL, error);
        return;
    }
    if (resp->written == 0) {
        fetch_finish(f, NULL, "download was empty");
        return;
    }
    ext = extension_of(f->fd, resp->content_type, f->kind);
    snprintf(name, sizeof(name), "%s.%s", f->hash, ext);
    /* No fsync: it would hold the worker's event loop for as long as the
     * disk takes to flush up to 1 GiB. Readers never see a partial file
     * either way: it is written under its .part name and renamed whole.
     * What is given up is power-loss durability only: after a crash a
     * file renamed just before may come back short. */
    if (close(f->fd) == -1) {
        f->fd = -1;
        unlinkat(cache_dir_fd(), f->part, 0);
        fetch_finish(f, NULL, "writing the cached file failed");
        return;
    }
    f->fd = -1;
    if (renameat(cache_dir_fd(), f->part, cache_dir_fd(), name) == -1) {
        snprintf(error, sizeof(error), "storing the cached file failed: %s",
                 strerror(errno));
        unlinkat(cache_dir_fd(), f->part, 0);
        fetch_finish(f, NULL, error);
        return;
    }
    fetch_finish(f, name, NULL);
}

/*
 * A fresh copy of the same source already in the cache. Its time is
 * renewed: the new answer promises the file for cache_timeout from now
 * (the Video object's expires_at), and the sweep goes by that time.
 */
static bool
cached_copy(const char *hash, char *name, size_t len)
{
    static const char *const exts[] = { "png", "jpg",  "webp", "gif",
                                        "mp4", "webm", "mov" };
    struct stat st;
    size_t i;

    s2a_worker_refresh_settings();
    for (i = 0; i < S2A_NELEMS(exts); i++) {
        snprintf(name, len, "%s.%s", hash, exts[i]);
        if (fstatat(cache_dir_fd(), name, &st, 0) == 0 && st.st_size > 0
            && st.st_mtime + s2a_worker.settings.cache_timeout > s2a_now()
            && utimensat(cache_dir_fd(), name, NULL, 0) == 0)
        {
            return true;
        }
    }
    return false;
}

const char *
s2a_cache_proxy(void)
{
    s2a_worker_refresh_settings();
    if (s2a_worker.settings.proxy_enabled
        && s2a_worker.settings.proxy_url[0] != '\0')
    {
        return s2a_worker.settings.proxy_url;
    }
    return NULL;
}

uint64_t
s2a_cache_fetch(const char *url, s2a_kind_t kind, s2a_cache_done_pt done,
                void *arg)
{
    fetch_t *f = calloc(1, sizeof(*f));
    s2a_upstream_req_t req;
    uint8_t digest[32];
    struct timeval now = { 0, 0 };

    if (f == NULL) {
        return 0;
    }
    f->fd = -1;
    f->id = ++C.next_id;
    f->kind = kind;
    f->done = done;
    f->arg = arg;
    s2a_sha256(url, strlen(url), digest);
    s2a_hex(digest, 16, f->hash);
    f->next = C.fetches;
    C.fetches = f;

    if (cache_dir_fd() < 0) {
        snprintf(f->error, sizeof(f->error), "the cache directory is unusable");
    } else if (cached_copy(f->hash, f->name, sizeof(f->name))) {
        s2a_metrics_cache_hit(S2A_CH_REUSE);
    } else {
        f->name[0] = '\0';
        snprintf(f->part, sizeof(f->part), ".%s.%d.%u.part", f->hash,
                 (int) getpid(), ++C.seq);
        f->fd = openat(cache_dir_fd(), f->part,
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (f->fd < 0) {
            snprintf(f->error, sizeof(f->error),
                     "creating the cached file failed: %s", strerror(errno));
        } else {
            memset(&req, 0, sizeof(req));
            req.method = "GET";
            req.url = url;
            req.proxy = s2a_cache_proxy();
            req.timeout_ms = S2A_UPSTREAM_MEDIA_TIMEOUT_MS;
            req.max_response = (size_t) CACHE_MAX_BYTES;
            req.to_file = true;
            req.out_fd = f->fd;
            req.follow_redirects = true;
            f->call = s2a_upstream_start(&req, download_done, f);
            if (f->call != 0) {
                s2a_metrics_cache_download();
                return f->id;
            }
            snprintf(f->error, sizeof(f->error), "the download did not start");
        }
    }
    /* Answered without a download: still from the loop, as promised. */
    f->ev = evtimer_new(s2a_worker.base, immediate_cb, f);
    if (f->ev == NULL) {
        fetch_unlink(f);
        fetch_free(f);
        return 0;
    }
    evtimer_add(f->ev, &now);
    return f->id;
}

void
s2a_cache_cancel(uint64_t id)
{
    fetch_t *f;

    for (f = C.fetches; f != NULL; f = f->next) {
        if (f->id == id) {
            if (f->call != 0) {
                s2a_upstream_cancel(f->call);
            }
            fetch_unlink(f);
            fetch_free(f);
            return;
        }
    }
}

char *
s2a_cache_public_url(const char *name, const char *host)
{
    const char *base;
    size_t blen, len;
    char *out;

    s2a_worker_refresh_settings();
    base = s2a_worker.settings.cache_base_url;
    blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    if (host == NULL) {
        host = "localhost";
    }
    len = blen + strlen(host) + strlen(name) + 16;
    out = malloc(len);
    if (out == NULL) {
        return NULL;
    }
    if (blen > 0) {
        snprintf(out, len, "%.*s/tmp/%s", (int) blen, base, name);
    } else {
        snprintf(out, len, "http://%s/tmp/%s", host, name);
    }
    return out;
}
