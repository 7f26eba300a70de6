/*
 * fuzz_data.c: libFuzzer target for the Sora data routes' readers of
 * untrusted input (src/worker/data.c): the first byte picks the route,
 * the bytes up to the next newline are the raw request path, up to the
 * one after the query string, and the rest is an upstream answer. A
 * parsed request must respect its bounds, its backend path must be
 * printable ASCII (every value escaped), and the answer built from any
 * JSON must serialise.
 */
#include "worker/data.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next newline-terminated piece of [*p, end), NUL-terminated and
 * malloc'd; *p moves past it. */
static char *
piece(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t) (end - *p));
    size_t len = nl != NULL ? (size_t) (nl - *p) : (size_t) (end - *p);
    char *s = malloc(len + 1);

    if (s != NULL) {
        memcpy(s, *p, len);
        s[len] = '\0';
    }
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data + 1, *end = data + size;
    s2a_data_query_t q;
    s2a_data_error_t err;
    s2a_data_kind_t kind;
    char *path = NULL, *query = NULL, *text, out[1024];
    json_t *up, *res;
    const char *code;
    s2a_req_t req;
    size_t i;

    if (size < 1) {
        return 0;
    }
    kind = (s2a_data_kind_t) (data[0] % S2A_DATA_NKINDS);
    path = piece(&p, end);
    query = piece(&p, end);
    if (path == NULL || query == NULL) {
        goto done;
    }
    memset(&req, 0, sizeof(req));
    req.method_name = "GET";
    req.raw_path = path;
    req.query = query[0] != '\0' ? query : NULL;
    req.path_id = data[0] & 0x80 ? 1 : 0;
    if (s2a_data_parse(kind, &req, &q, &err) != S2A_OK) {
        if (err.status != 400 && err.status != 404 && err.status != 503) {
            abort();
        }
        goto done;
    }
    if (strlen(q.subject) > S2A_DATA_SUBJECT_MAX
        || strlen(q.cursor) > S2A_DATA_CURSOR_MAX || q.limit < 0
        || q.limit > S2A_DATA_LIMIT_MAX || q.token_id < 0)
    {
        abort();
    }
    if (s2a_data_upstream_path(&q, out, sizeof(out)) == S2A_OK) {
        for (i = 0; out[i] != '\0'; i++) {
            if (out[i] <= ' ' || out[i] > '~' || out[i] == '#') {
                abort(); /* an unescaped value */
            }
        }
    }
    code = NULL;
    up =
        json_loadb((const char *) p, (size_t) (end - p), JSON_DECODE_ANY, NULL);
    if (up != NULL) {
        if (kind != S2A_DATA_INVITE) {
            res = s2a_data_render(&q, up, &err);
            if (res != NULL) {
                text = json_dumps(res, JSON_COMPACT);
                if (text == NULL) {
                    abort();
                }
                free(text);
                json_decref(res);
            }
        }
        if (s2a_data_invite_left(up, &code) > 0 && code == NULL) {
            abort();
        }
        json_decref(up);
    }

done:
    free(path);
    free(query);
    return 0;
}
