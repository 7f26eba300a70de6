/*
 * formreq.h: the body of a route that takes JSON or multipart/form-data
 * (the Images, Videos and Characters APIs): one JSON object either way,
 * a form's text fields as its string members and the one file part the
 * route reads beside it. Errors are answered here, in the OpenAI
 * envelope, with the messages each route has always given.
 */
#ifndef S2A_FORMREQ_H
#define S2A_FORMREQ_H

#include "worker/http.h"

#include <jansson.h>
#include <stddef.h>

#define S2A_FORMREQ_MAX_PARTS 16

typedef struct s2a_formreq_spec_s {
    /* Names of the parts that carry the file (the first is named in
     * errors); file parts under other names are ignored. */
    const char *const *file_names;
    /* File parts under these names become `true` members (a mask the
     * route refuses by name); NULL: none. */
    const char *const *flag_names;
    const char *dup_code, *dup_message;     /* a second file part */
    const char *empty_code, *empty_message; /* an empty file part */
    size_t field_max;                       /* bytes of a text part */
} s2a_formreq_spec_t;

/*
 * The request's body as an object: parsed JSON, or the text fields of
 * a form with its file part in `*file` / `*file_len` (borrowed from the
 * body; NULL when none). NULL after answering 400 (or 500).
 */
json_t *s2a_formreq_read(s2a_req_t *req, const s2a_formreq_spec_t *spec,
                         const unsigned char **file, size_t *file_len);

#endif /* S2A_FORMREQ_H */
