/*
 * tokbatch.h: the operator's batch actions on selected tokens:
 * POST /api/tokens/batch/enable, /disable, /delete ({"ids":[...]}),
 * one call to the master each ("tokens_batch"), answered per id.
 * Route handlers (the session is already checked); errors are
 * {"detail": "..."}.
 */
#ifndef S2A_TOKBATCH_H
#define S2A_TOKBATCH_H

#include "worker/http.h"

#include <jansson.h>

/* POST /api/tokens/batch/enable: operator state active for every id. */
void s2a_tokbatch_enable(s2a_req_t *req);

/* POST /api/tokens/batch/disable: operator state disabled. */
void s2a_tokbatch_disable(s2a_req_t *req);

/* POST /api/tokens/batch/delete: removes them. */
void s2a_tokbatch_delete(s2a_req_t *req);

/*
 * The ids of a batch body `in` (borrowed): a new array of 1 to
 * S2A_TOKENS_BATCH_MAX positive integers, or NULL with the reason in
 * `err`.
 */
json_t *s2a_tokbatch_ids(json_t *in, char *err, size_t errlen);

#endif /* S2A_TOKBATCH_H */
