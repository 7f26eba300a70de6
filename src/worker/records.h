/*
 * records.h: the admin API's read-only record views: GET /api/logs,
 * GET /api/tasks, GET /api/stats. Route handlers (the session is already
 * checked); errors are {"detail": "..."}.
 */
#ifndef S2A_RECORDS_H
#define S2A_RECORDS_H

#include "worker/http.h"

/* GET /api/logs?limit=: request-log rows, newest first. */
void s2a_records_logs(s2a_req_t *req);

/* GET /api/tasks?limit=&status=: generation task rows. */
void s2a_records_tasks(s2a_req_t *req);

/* GET /api/stats: totals, today's counts, tokens per state. */
void s2a_records_stats(s2a_req_t *req);

#endif /* S2A_RECORDS_H */
