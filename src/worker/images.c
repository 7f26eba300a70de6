/*
 * images.c: /v1/images/generations and /v1/images/edits (docs/images.md).
 *
 * A request is read (JSON or multipart/form-data) into one chat-style job
 * description, started `n` times as independent generation jobs (each
 * takes its own token under the pool's limits), and answered once all of
 * them ended: the URLs, or with response_format b64_json the bytes, read
 * from the media cache when the URL is the cache's, else downloaded
 * through the upstream client one after another. A request owns its jobs
 * and its download; a client that leaves cancels them all.
 */
#include "worker/images.h"
#include "worker/apikeys.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/models.h"
#include "common/util.h"
#include "worker/chatreq.h"
#include "worker/context.h"
#include "worker/gen.h"
#include "worker/media.h"
#include "worker/mediacache.h"
#include "worker/formreq.h"
#include "worker/upstream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGES_MAX_N      4
#define IMAGES_FIELD_MAX  S2A_CHATREQ_MAX_PROMPT /* a text part, bytes */
#define IMAGES_RESULT_MAX (20u * 1024 * 1024)    /* b64_json source */
#define IMAGES_FETCH_MS   60000L

/* OpenAI sizes and the orientation each maps to. */
static const struct {
    const char *size;
    s2a_orientation_t orientation;
} image_sizes[] = {
    { "auto", S2A_ORIENT_SQUARE },
    { "1024x1024", S2A_ORIENT_SQUARE },
    { "1792x1024", S2A_ORIENT_LANDSCAPE },
    { "1536x1024", S2A_ORIENT_LANDSCAPE },
    { "1024x1792", S2A_ORIENT_PORTRAIT },
    { "1024x1536", S2A_ORIENT_PORTRAIT },
};

/* OpenAI model ids taken as "an image, orientation from size". */
static const char *const image_aliases[] = { "gpt-image-1", "dall-e-3",
                                             "dall-e-2" };

typedef struct images_s images_t;

typedef struct images_slot_s {
    images_t *im;
    s2a_gen_t *gen; /* while the job runs */
    char *url;      /* its result */
} images_slot_t;

struct images_s {
    s2a_req_t *req;
    images_slot_t slots[IMAGES_MAX_N];
    int n, pending;
    bool b64;
    char *prompt;
    char host[128];
    /* the first failure, answered once every job ended */
    bool failed;
    int err_status;
    char err_type[32], err_code[48], err_msg[640];
    /* b64_json: the result being read */
    int fetching;
    uint64_t fetch_id;
    json_t *data;
    images_t *prev, *next; /* running requests of this worker */
};

static images_t *running;

/* What a request asks for, borrowed from its body. */
typedef struct images_params_s {
    const s2a_model_t *model;
    const char *prompt;
    int n;
    bool b64;
    s2a_media_in_t image;
    const unsigned char *file; /* an uploaded image part */
    size_t file_len;
} images_params_t;

static void
images_free(images_t *im)
{
    int i;

    if (im->prev != NULL) {
        im->prev->next = im->next;
    } else if (running == im) {
        running = im->next;
    }
    if (im->next != NULL) {
        im->next->prev = im->prev;
    }
    for (i = 0; i < im->n; i++) {
        free(im->slots[i].url);
    }
    free(im->prompt);
    json_decref(im->data);
    free(im);
}

/* Cancels what still runs: the jobs and the download. */
static void
images_stop(images_t *im, const char *why, int status)
{
    int i;

    for (i = 0; i < im->n; i++) {
        if (im->slots[i].gen != NULL) {
            s2a_gen_cancel(im->slots[i].gen, why, status);
            im->slots[i].gen = NULL;
        }
    }
    if (im->fetch_id != 0) {
        s2a_upstream_cancel(im->fetch_id);
        im->fetch_id = 0;
    }
}

static void
reply_failure(images_t *im)
{
    s2a_http_reply_error(im->req, im->err_status, im->err_type,
                         im->err_code[0] != '\0' ? im->err_code : NULL, NULL,
                         "%s", im->err_msg);
}

/* Keeps the first failure only. */
static void
set_failure(images_t *im, int status, const char *type, const char *code,
            const char *message)
{
    if (im->failed) {
        return;
    }
    im->failed = true;
    im->err_status = status;
    snprintf(im->err_type, sizeof(im->err_type), "%s",
             type != NULL ? type : "server_error");
    snprintf(im->err_code, sizeof(im->err_code), "%s",
             code != NULL ? code : "");
    snprintf(im->err_msg, sizeof(im->err_msg), "%s",
             message != NULL ? message : "the generation failed");
}

/* The answer: {created, data:[...]}; `data` is consumed. */
static void
reply_data(images_t *im, json_t *data)
{
    json_t *body = json_pack("{s:I, s:o}", "created", (json_int_t) s2a_now(),
                             "data", data);

    if (body == NULL) {
        s2a_http_reply_error(im->req, 500, "server_error", "internal_error",
                             NULL, "out of memory");
        return;
    }
    s2a_http_reply_json(im->req, 200, body);
    json_decref(body);
}

/* Ends the request: answered, unlinked, freed. */
static void
images_end(images_t *im)
{
    im->req->on_gone = NULL;
    images_free(im);
}

static void fetch_next(images_t *im);

/* Adds result `im->fetching` as base64 of `bytes`. */
static bool
add_b64(images_t *im, const unsigned char *bytes, size_t len)
{
    char *b64 = s2a_base64_encode(bytes, len);
    json_t *item;

    if (b64 == NULL) {
        return false;
    }
    item =
        json_pack("{s:s, s:s}", "b64_json", b64, "revised_prompt", im->prompt);
    free(b64);
    return item != NULL && json_array_append_new(im->data, item) == 0;
}

/*
 * Reads a result from the media cache when `url` is the cache's own URL
 * for a file there. Returns S2A_OK (added), S2A_DECLINED (not cached) or
 * S2A_ERROR (out of memory).
 */
static int
from_cache(images_t *im, const char *url)
{
    const char *slash = strrchr(url, '/');
    char path[PATH_MAX + 200], *own;
    unsigned char *buf;
    struct stat st;
    ssize_t got;
    size_t off = 0;
    int fd, rc;

    if (slash == NULL || !s2a_media_name_ok(slash + 1)) {
        return S2A_DECLINED;
    }
    own = s2a_cache_public_url(slash + 1, im->host);
    rc = own != NULL && strcmp(own, url) == 0;
    free(own);
    if (!rc) {
        return S2A_DECLINED;
    }
    snprintf(path, sizeof(path), "%s/%s", s2a_worker.conf->cache_dir,
             slash + 1);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return S2A_DECLINED;
    }
    if (fstat(fd, &st) == -1 || st.st_size <= 0
        || (uint64_t) st.st_size > IMAGES_RESULT_MAX)
    {
        close(fd);
        return S2A_DECLINED;
    }
    buf = malloc((size_t) st.st_size);
    if (buf == NULL) {
        close(fd);
        return S2A_ERROR;
    }
    /* A local file of at most 20 MiB: read at once, like a page cache hit. */
    while (off < (size_t) st.st_size) {
        got = read(fd, buf + off, (size_t) st.st_size - off);
        if (got <= 0) {
            if (got == -1 && errno == EINTR) {
                continue;
            }
            break;
        }
        off += (size_t) got;
    }
    close(fd);
    rc = off == (size_t) st.st_size
        ? (add_b64(im, buf, off) ? S2A_OK : S2A_ERROR)
        : S2A_DECLINED;
    free(buf);
    return rc;
}

static void
fetched(const s2a_upstream_resp_t *resp, void *arg)
{
    images_t *im = arg;
    char msg[320];

    im->fetch_id = 0;
    if (resp->curl_code != 0 || resp->status < 200 || resp->status > 299
        || resp->body_len == 0 || resp->truncated)
    {
        if (resp->curl_code != 0) {
            snprintf(msg, sizeof(msg),
                     "the generated image could not be downloaded: %s",
                     resp->error);
        } else {
            snprintf(msg, sizeof(msg),
                     "the generated image could not be downloaded: HTTP %ld "
                     "with %zu bytes%s",
                     resp->status, resp->body_len,
                     resp->truncated ? " (over the size limit)" : "");
        }
        s2a_http_reply_error(im->req, 502, "upstream_error", "download_failed",
                             NULL, "%s", msg);
        images_end(im);
        return;
    }
    if (!add_b64(im, (const unsigned char *) resp->body, resp->body_len)) {
        s2a_http_reply_error(im->req, 500, "server_error", "internal_error",
                             NULL, "out of memory");
        images_end(im);
        return;
    }
    im->fetching++;
    fetch_next(im);
}

/* The bytes of each result in turn, then the answer. */
static void
fetch_next(images_t *im)
{
    s2a_upstream_req_t r;
    const char *url;
    json_t *data;
    int rc;

    while (im->fetching < im->n) {
        url = im->slots[im->fetching].url;
        rc = from_cache(im, url);
        if (rc == S2A_ERROR) {
            s2a_http_reply_error(im->req, 500, "server_error", "internal_error",
                                 NULL, "out of memory");
            images_end(im);
            return;
        }
        if (rc == S2A_DECLINED) {
            break;
        }
        im->fetching++;
    }
    if (im->fetching == im->n) {
        data = im->data;
        im->data = NULL;
        reply_data(im, data);
        images_end(im);
        return;
    }
    memset(&r, 0, sizeof(r));
    r.method = "GET";
    r.url = im->slots[im->fetching].url;
    r.proxy = s2a_cache_proxy();
    r.timeout_ms = IMAGES_FETCH_MS;
    r.max_response = IMAGES_RESULT_MAX;
    r.follow_redirects = true;
    /* A URL Sora returned, as for the media cache: no address rule. */
    im->fetch_id = s2a_upstream_start(&r, fetched, im);
    if (im->fetch_id == 0) {
        s2a_http_reply_error(im->req, 500, "server_error", "internal_error",
                             NULL, "the image download could not start");
        images_end(im);
    }
}

/* Every job ended. */
static void
all_done(images_t *im)
{
    json_t *data;
    int i;

    if (im->failed) {
        reply_failure(im);
        images_end(im);
        return;
    }
    if (im->b64) {
        im->data = json_array();
        im->fetching = 0;
        if (im->data == NULL) {
            set_failure(im, 500, "server_error", "internal_error",
                        "out of memory");
            reply_failure(im);
            images_end(im);
            return;
        }
        fetch_next(im);
        return;
    }
    data = json_array();
    for (i = 0; data != NULL && i < im->n; i++) {
        json_array_append_new(data,
                              json_pack("{s:s, s:s}", "url", im->slots[i].url,
                                        "revised_prompt", im->prompt));
    }
    if (data == NULL) {
        set_failure(im, 500, "server_error", "internal_error", "out of memory");
        reply_failure(im);
    } else {
        reply_data(im, data);
    }
    images_end(im);
}

static void
on_done(void *arg, json_t *result, int status, const char *type,
        const char *code, const char *message)
{
    images_slot_t *s = arg;
    images_t *im = s->im;
    const char *rtype, *url;

    s->gen = NULL;
    im->pending--;
    if (result != NULL) {
        rtype = json_string_value(json_object_get(result, "type"));
        url = json_string_value(
            json_array_get(json_object_get(result, "urls"), 0));
        if (rtype != NULL && strcmp(rtype, "image") == 0 && url != NULL) {
            s->url = strdup(url);
            if (s->url == NULL) {
                set_failure(im, 500, "server_error", "internal_error",
                            "out of memory");
            }
        } else if (rtype != NULL && strcmp(rtype, "error") == 0) {
            /* A content-policy refusal: the request's fault. */
            set_failure(im, 400, "invalid_request_error",
                        json_string_value(json_object_get(
                            json_object_get(result, "data"), "code")),
                        json_string_value(json_object_get(result, "error")));
        } else {
            set_failure(im, 502, "upstream_error", "generation_failed",
                        "Sora returned no image");
        }
    } else {
        set_failure(im, status, type, code, message);
    }
    if (im->pending == 0) {
        all_done(im);
    }
}

static const s2a_gen_ops_t images_ops = { s2a_gen_progress_ignored, on_done,
                                          NULL };

static void
on_gone(s2a_req_t *req, void *arg)
{
    images_t *im = arg;

    S2A_UNUSED(req);
    images_stop(im, "the client went away", 499);
    images_free(im);
}

int
s2a_images_shutdown(void)
{
    static const char why[] =
        "the server is shutting down; the generation was stopped";
    images_t *im;
    int n = 0;

    while ((im = running) != NULL) {
        images_stop(im, why, 503);
        s2a_http_reply_error(im->req, 503, "server_error", "server_shutdown",
                             NULL, "%s", why);
        images_end(im);
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------------
 * Reading the request
 */

#define BAD(p, c, ...) \
    do { \
        s2a_http_reply_error(req, 400, "invalid_request_error", (c), (p), \
                             __VA_ARGS__); \
        return S2A_ERROR; \
    } while (0)

static const s2a_model_t *
image_model(s2a_orientation_t o)
{
    size_t i;

    for (i = 0; i < s2a_nmodels; i++) {
        if (s2a_models[i].kind == S2A_KIND_IMAGE
            && s2a_models[i].orientation == o) {
            return &s2a_models[i];
        }
    }
    return NULL;
}

/* `model` and `size` into a model: an explicit sora-image* model wins,
 * else the size's orientation (square without one). */
static int
read_model(s2a_req_t *req, json_t *body, images_params_t *p)
{
    json_t *jm = json_object_get(body, "model"),
           *js = json_object_get(body, "size");
    const char *m = json_string_value(jm), *sz = json_string_value(js);
    s2a_orientation_t o = S2A_ORIENT_SQUARE;
    size_t i;
    bool alias = false;

    p->model = NULL;
    if (jm != NULL && !json_is_null(jm)) {
        if (m == NULL) {
            BAD("model", "invalid_value", "model must be a string");
        }
        for (i = 0; i < S2A_NELEMS(image_aliases); i++) {
            alias = alias || strcmp(m, image_aliases[i]) == 0;
        }
        if (!alias) {
            p->model = s2a_model_find(m);
            if (p->model == NULL) {
                BAD("model", "model_not_found",
                    "Invalid model: %.100s (image models: sora-image, "
                    "sora-image-landscape, sora-image-portrait)",
                    m);
            }
            if (p->model->kind != S2A_KIND_IMAGE) {
                BAD("model", "invalid_value",
                    "Model %.100s is not an image model", m);
            }
        }
    }
    if (js != NULL && !json_is_null(js)) {
        for (i = 0; sz != NULL && i < S2A_NELEMS(image_sizes); i++) {
            if (strcmp(sz, image_sizes[i].size) == 0) {
                break;
            }
        }
        if (sz == NULL || i == S2A_NELEMS(image_sizes)) {
            BAD("size", "invalid_value",
                "Invalid size: %.40s (one of auto, 1024x1024, 1792x1024, "
                "1536x1024, 1024x1792, 1024x1536)",
                sz != NULL ? sz : "(not a string)");
        }
        o = image_sizes[i].orientation;
    }
    if (p->model == NULL) {
        p->model = image_model(o);
    }
    return S2A_OK;
}

/* An image given as text: http(s) URL, data URL or bare base64. */
static int
read_image_text(s2a_req_t *req, const char *s, images_params_t *p)
{
    switch (s2a_mediain_text(s, S2A_MEDIAIN_IMAGE, 0, &p->image)) {
    case S2A_MEDIAIN_OK: return S2A_OK;
    case S2A_MEDIAIN_NOT_BASE64_URL:
        BAD("image", "invalid_image",
            "the image data URL is not base64 (data:<type>;base64,...)");
    default:
        BAD("image", "invalid_image",
            "the image is not an http(s) URL, a data URL or base64");
    }
}

/* Every field but the model; the body is JSON or built from form parts. */
static int
read_params(s2a_req_t *req, json_t *body, bool edit, images_params_t *p)
{
    json_t *jp = json_object_get(body, "prompt"),
           *jn = json_object_get(body, "n"),
           *jr = json_object_get(body, "response_format"),
           *ji = json_object_get(body, "image");
    const char *rf, *ns;
    char *end;
    long n = 1;

    if (json_object_get(body, "mask") != NULL) {
        BAD("mask", "unsupported_parameter",
            "mask is not supported: Sora redraws the whole image from the "
            "prompt");
    }
    if (ji == NULL || json_is_null(ji)) {
        ji = json_object_get(body, "input_image"); /* the reference's name */
    }
    if (!json_is_string(jp) || json_string_length(jp) == 0) {
        BAD("prompt", "invalid_value", "prompt is required");
    }
    if (json_string_length(jp) > S2A_CHATREQ_MAX_PROMPT
        || strlen(json_string_value(jp)) != json_string_length(jp))
    {
        BAD("prompt", "invalid_value",
            "prompt is over %d bytes or holds a NUL byte",
            S2A_CHATREQ_MAX_PROMPT);
    }
    p->prompt = json_string_value(jp);
    if (jn != NULL && !json_is_null(jn)) {
        if (json_is_integer(jn)) {
            n = json_integer_value(jn) > IMAGES_MAX_N
                ? IMAGES_MAX_N + 1
                : (long) json_integer_value(jn);
        } else if ((ns = json_string_value(jn)) != NULL && ns[0] >= '0'
                   && ns[0] <= '9') {
            errno = 0;
            n = strtol(ns, &end, 10);
            if (*end != '\0' || errno != 0) {
                n = 0;
            }
        } else {
            n = 0;
        }
        if (n < 1 || n > IMAGES_MAX_N) {
            BAD("n", "invalid_value", "n must be an integer from 1 to %d",
                IMAGES_MAX_N);
        }
    }
    p->n = (int) n;
    p->b64 = false;
    if (jr != NULL && !json_is_null(jr)) {
        rf = json_string_value(jr);
        if (rf == NULL
            || (strcmp(rf, "url") != 0 && strcmp(rf, "b64_json") != 0)) {
            BAD("response_format", "invalid_value",
                "response_format must be url or b64_json");
        }
        p->b64 = strcmp(rf, "b64_json") == 0;
    }
    if (p->file == NULL && ji != NULL && !json_is_null(ji)) {
        if (!json_is_string(ji) || json_string_length(ji) == 0) {
            BAD("image", "invalid_image",
                "image must be a string: an http(s) URL, a data URL or "
                "base64");
        }
        if (read_image_text(req, json_string_value(ji), p) != S2A_OK) {
            return S2A_ERROR;
        }
    }
    if (edit && p->file == NULL && p->image.url == NULL
        && p->image.base64 == NULL) {
        BAD("image", "invalid_value", "image is required for an edit");
    }
    return read_model(req, body, p);
}

/* Starts the request's jobs; answers on failure. */
static void
start_jobs(s2a_req_t *req, const images_params_t *p)
{
    s2a_chatreq_t creq;
    s2a_keyticket_t ticket;
    char *file_b64 = NULL;
    const char *host = s2a_req_header(req, "Host");
    images_t *im;
    int i;

    /* The key's model allow-list, quota and concurrency, for all n. */
    if (!s2a_apikeys_admit(req, p->model, p->n, &ticket)) {
        return;
    }
    memset(&creq, 0, sizeof(creq));
    creq.model = p->model;
    creq.image = p->image;
    creq.mode = S2A_MODE_TEXT_TO_IMAGE;
    creq.owner = req->owner;
    if (p->file != NULL) {
        file_b64 = s2a_base64_encode(p->file, p->file_len);
        if (file_b64 == NULL) {
            goto oom;
        }
        creq.image.base64 = file_b64;
        creq.image.url = NULL;
    }
    if (creq.image.base64 != NULL || creq.image.url != NULL) {
        creq.mode = S2A_MODE_IMAGE_TO_IMAGE;
    }
    im = calloc(1, sizeof(*im));
    if (im == NULL) {
        goto oom;
    }
    im->req = req;
    im->b64 = p->b64;
    im->prompt = strdup(p->prompt);
    snprintf(im->host, sizeof(im->host), "%s", host != NULL ? host : "");
    creq.prompt = im->prompt;
    if (im->prompt == NULL) {
        free(im);
        goto oom;
    }
    im->next = running;
    if (running != NULL) {
        running->prev = im;
    }
    running = im;
    for (i = 0; i < p->n; i++) {
        im->slots[i].im = im;
        im->n = i + 1;
        im->slots[i].gen =
            s2a_gen_start(&creq, req->rid, host, &images_ops, &im->slots[i]);
        if (im->slots[i].gen == NULL) {
            images_stop(im, "out of memory", 500);
            images_free(im);
            goto oom;
        }
        s2a_gen_set_key(im->slots[i].gen, &ticket);
        im->pending++;
    }
    req->on_gone = on_gone;
    req->gone_arg = im;
    free(file_b64);
    return;
oom:
    s2a_apikeys_ticket_release(&ticket);
    free(file_b64);
    s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                         "out of memory");
}

static void
images_handle(s2a_req_t *req, bool edit)
{
    static const char *const files[] = { "image", "image[]", "input_reference",
                                         NULL };
    static const char *const flags[] = { "mask", NULL };
    static const s2a_formreq_spec_t form = {
        files,           flags,
        "invalid_value", "only one image can be edited at a time",
        "invalid_image", "the uploaded image is empty",
        IMAGES_FIELD_MAX
    };
    images_params_t p;
    json_t *body;

    memset(&p, 0, sizeof(p));
    body = s2a_formreq_read(req, &form, &p.file, &p.file_len);
    if (body == NULL) {
        return; /* answered */
    }
    if (read_params(req, body, edit, &p) == S2A_OK) {
        start_jobs(req, &p);
    }
    json_decref(body);
}

void
s2a_images_generations(s2a_req_t *req)
{
    images_handle(req, false);
}

void
s2a_images_edits(s2a_req_t *req)
{
    images_handle(req, true);
}
