/*
 * fuzz_jobtab.c: libFuzzer target for the live job table
 * (common/jobtab.c). The input is, up to a zero byte, a program of
 * operations on a small table checked against a model of it (which ids
 * are in, which finished in what order, so which one an insert evicts);
 * after the zero byte, JSON applied as a task record's fields and as a
 * task row (s2a_jobtab_record, s2a_jobtab_put_row), whose slot must stay
 * well formed whatever the values.
 */
#include "common/jobtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define IDS 24 /* ids the program names: few, so that they collide */

static struct {
    bool in;
    bool final;
    uint64_t order; /* when it finished (0: not finished) */
} model[IDS];
static uint64_t order_serial;
static int model_count;

static void
id_of(int k, char *out)
{
    snprintf(out, S2A_JOB_ID_MAX, "job_%02d", k);
}

/* The model's victim: the id that finished first, or -1. */
static int
oldest(void)
{
    int k, best = -1;

    for (k = 0; k < IDS; k++) {
        if (model[k].in && model[k].final
            && (best < 0 || model[k].order < model[best].order))
        {
            best = k;
        }
    }
    return best;
}

static void
check_all(s2a_jobtab_t *jt)
{
    char id[S2A_JOB_ID_MAX];
    s2a_job_t out;
    int k, rc;

    for (k = 0; k < IDS; k++) {
        id_of(k, id);
        rc = s2a_jobtab_get(jt, id, &out, NULL);
        if ((rc == S2A_OK) != model[k].in
            || (rc == S2A_OK && strcmp(out.id, id) != 0)) {
            abort();
        }
    }
    if (s2a_jobtab_used(jt) != (uint32_t) model_count) {
        abort();
    }
}

/* A slot read back must be well formed, whatever was written to it. */
static void
check_job(s2a_jobtab_t *jt, const char *id)
{
    const char *t;
    s2a_job_t out;
    int i;

    if (s2a_jobtab_get(jt, id, &out, NULL) != S2A_OK) {
        return;
    }
    if (out.text_used > S2A_JOB_TEXT || out.status >= S2A_JOB_NSTATUS
        || memchr(out.model, '\0', sizeof(out.model)) == NULL
        || memchr(out.api_model, '\0', sizeof(out.api_model)) == NULL
        || memchr(out.size, '\0', sizeof(out.size)) == NULL
        || memchr(out.remixed_from, '\0', sizeof(out.remixed_from)) == NULL
        || memchr(out.error_code, '\0', sizeof(out.error_code)) == NULL)
    {
        abort();
    }
    for (i = 0; i < S2A_JOB_NTEXT; i++) {
        t = s2a_job_text(&out, (s2a_job_text_t) i);
        if (t != NULL && t + strlen(t) >= out.text + out.text_used) {
            abort();
        }
    }
}

static void
fields(s2a_jobtab_t *jt, const uint8_t *data, size_t size)
{
    json_t *v = json_loadb((const char *) data, size, 0, NULL);

    if (json_is_object(v)) {
        s2a_jobtab_record(jt, "job_fields", S2A_KIND_VIDEO, v);
        check_job(jt, "job_fields");
        s2a_jobtab_record(jt, "job_fields", S2A_KIND_VIDEO, v);
        check_job(jt, "job_fields");
        json_object_set_new(v, "job_id", json_string("job_row"));
        s2a_jobtab_put_row(jt, v, 1);
        check_job(jt, "job_row");
    }
    json_decref(v);
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t slots = size > 0 ? (uint32_t) (data[0] % 8) + 1 : 1;
    s2a_jobtab_t *jt = calloc(1, s2a_jobtab_size(slots));
    char id[S2A_JOB_ID_MAX];
    size_t i = 1;
    s2a_job_t j;
    int k, rc, want, victim;
    bool final;

    if (jt == NULL || s2a_jobtab_init(jt, slots) == NULL) {
        abort();
    }
    memset(model, 0, sizeof(model));
    order_serial = 0;
    model_count = 0;
    for (; i < size && data[i] != 0; i++) {
        k = (data[i] >> 3) % IDS;
        id_of(k, id);
        if ((data[i] & 7) == 7) {
            rc = s2a_jobtab_drop(jt, id);
            if ((rc == S2A_OK) != model[k].in) {
                abort();
            }
            if (model[k].in) {
                model[k].in = false;
                model_count--;
            }
            check_all(jt);
            continue;
        }
        memset(&j, 0, sizeof(j));
        memcpy(j.id, id, strlen(id) + 1);
        j.status = (uint8_t) ((data[i] & 7) % S2A_JOB_NSTATUS);
        final = j.status == S2A_JOB_SUCCEEDED || j.status == S2A_JOB_FAILED
            || j.status == S2A_JOB_CANCELLED;
        victim = -1;
        want = S2A_OK;
        if (!model[k].in && model_count == (int) slots) {
            victim = oldest();
            want = victim >= 0 ? S2A_OK : S2A_DECLINED;
        }
        rc = s2a_jobtab_put(jt, &j);
        if (rc != want) {
            abort();
        }
        if (rc == S2A_OK) {
            if (victim >= 0) {
                model[victim].in = false;
                model_count--;
            }
            if (!model[k].in) {
                model[k].in = true;
                model[k].final = false;
                model[k].order = 0;
                model_count++;
            }
            if (final && !model[k].final) {
                model[k].order = ++order_serial;
            }
            model[k].final = final;
        }
        check_all(jt);
    }
    if (i < size) {
        fields(jt, data + i + 1, size - i - 1);
    }
    pthread_mutex_destroy(&jt->lock);
    free(jt);
    return 0;
}
