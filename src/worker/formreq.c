/*
 * formreq.c: a JSON or multipart/form-data body read into one object
 * (formreq.h).
 */
#include "worker/formreq.h"
#include "common/core.h"
#include "worker/multipart.h"

#include <string.h>

static bool
named(const char *const *names, const char *name)
{
    for (; names != NULL && *names != NULL; names++) {
        if (strcmp(*names, name) == 0) {
            return true;
        }
    }
    return false;
}

static json_t *
refuse(s2a_req_t *req, json_t *obj, const char *code, const char *param,
       const char *message)
{
    json_decref(obj);
    s2a_http_reply_error(req, 400, "invalid_request_error", code, param, "%s",
                         message);
    return NULL;
}

static json_t *
read_form(s2a_req_t *req, const char *boundary, const s2a_formreq_spec_t *spec,
          const unsigned char **file, size_t *file_len)
{
    s2a_mpart_t parts[S2A_FORMREQ_MAX_PARTS];
    const unsigned char *body;
    size_t len, nparts, i;
    char err[256];
    json_t *obj, *v;

    body = s2a_req_body(req, &len);
    if (s2a_multipart_parse(body, len, boundary, parts, S2A_FORMREQ_MAX_PARTS,
                            &nparts, err, sizeof(err))
        != S2A_OK)
    {
        return refuse(req, NULL, "invalid_multipart", NULL, err);
    }
    obj = json_object();
    for (i = 0; obj != NULL && i < nparts; i++) {
        if (parts[i].has_filename) {
            if (named(spec->flag_names, parts[i].name)) {
                json_object_set_new(obj, parts[i].name, json_true());
                continue;
            }
            if (!named(spec->file_names, parts[i].name)) {
                continue; /* a file the API does not read */
            }
            if (*file != NULL) {
                return refuse(req, obj, spec->dup_code, spec->file_names[0],
                              spec->dup_message);
            }
            if (parts[i].len == 0) {
                return refuse(req, obj, spec->empty_code, spec->file_names[0],
                              spec->empty_message);
            }
            *file = parts[i].data;
            *file_len = parts[i].len;
            continue;
        }
        v = parts[i].len <= spec->field_max
            ? json_stringn((const char *) parts[i].data, parts[i].len)
            : NULL;
        if (v == NULL) {
            s2a_http_reply_error(req, 400, "invalid_request_error",
                                 "invalid_value", parts[i].name,
                                 "the form field %s is over %zu bytes or not "
                                 "UTF-8",
                                 parts[i].name, spec->field_max);
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, parts[i].name, v);
    }
    if (obj == NULL) {
        s2a_http_reply_error(req, 500, "server_error", "internal_error", NULL,
                             "out of memory");
    }
    return obj;
}

json_t *
s2a_formreq_read(s2a_req_t *req, const s2a_formreq_spec_t *spec,
                 const unsigned char **file, size_t *file_len)
{
    char boundary[S2A_MULTIPART_BOUNDARY_MAX + 1], err[256];
    int rc;

    *file = NULL;
    *file_len = 0;
    rc = s2a_multipart_boundary(s2a_req_header(req, "Content-Type"), boundary,
                                err, sizeof(err));
    if (rc == S2A_ERROR) {
        return refuse(req, NULL, "invalid_multipart", NULL, err);
    }
    return rc == S2A_OK ? read_form(req, boundary, spec, file, file_len)
                        : s2a_req_json_object(req, false);
}
