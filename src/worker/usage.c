/*
 * usage.c: request counters keyed by (day, route, status).
 *
 * The set of routes and statuses is small, so a short array with linear
 * search beats a hash table here.
 */
#include "worker/usage.h"
#include "common/util.h"
#include "worker/context.h"

#include <stdlib.h>
#include <string.h>

#define USAGE_MAX 256

typedef struct usage_row_s {
    char day[11];
    const char *route; /* static strings from the route table */
    int status;
    int64_t count;
} usage_row_t;

static usage_row_t rows[USAGE_MAX];
static int nrows;

void
s2a_usage_count(const char *route, int status)
{
    char day[11];
    int i;

    s2a_utc_day(s2a_now(), day);
    for (i = 0; i < nrows; i++) {
        if (rows[i].status == status && rows[i].route == route
            && memcmp(rows[i].day, day, 11) == 0)
        {
            rows[i].count++;
            return;
        }
    }
    if (nrows == USAGE_MAX) {
        s2a_usage_flush();
    }
    memcpy(rows[nrows].day, day, 11);
    rows[nrows].route = route;
    rows[nrows].status = status;
    rows[nrows].count = 1;
    nrows++;
}

void
s2a_usage_flush(void)
{
    json_t *msg, *arr;
    int i;

    if (nrows == 0 || s2a_worker.chan == NULL) {
        return;
    }
    arr = json_array();
    for (i = 0; i < nrows; i++) {
        json_array_append_new(arr,
                              json_pack("[s, s, i, I]", rows[i].day,
                                        rows[i].route, rows[i].status,
                                        (json_int_t) rows[i].count));
    }
    msg = json_pack("{s:s, s:o}", "op", "usage", "rows", arr);
    if (msg != NULL) {
        s2a_worker_notify_master(msg);
        json_decref(msg);
    }
    nrows = 0;
}

void
s2a_usage_cleanup(void)
{
    nrows = 0;
}
