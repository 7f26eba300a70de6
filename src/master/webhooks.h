/*
 * webhooks.h: webhooks in the master (see webhooks.c): the endpoints and
 * the delivery outbox, the events a job's end makes, Standard Webhooks
 * signing, and the timer that hands due deliveries to workers. Its
 * control operations are declared in ops.h.
 */
#ifndef S2A_MASTER_WEBHOOKS_H
#define S2A_MASTER_WEBHOOKS_H

#include "common/core.h"

#include <jansson.h>

/* One attempt may take this long (the worker's whole call). */
#define S2A_WEBHOOKS_TIMEOUT_MS 5000
/* Back-off between attempts doubles up to this. */
#define S2A_WEBHOOKS_RETRY_CAP_MS (3600 * 1000)
/* A delivery is given up once it failed this long after its event. */
#define S2A_WEBHOOKS_GIVE_UP_S (24 * 3600)
/* After a rotation the previous secret signs too, this long by default
 * (secret_overlap), a week at most. */
#define S2A_WEBHOOKS_OVERLAP_DEFAULT_S (24 * 3600)
#define S2A_WEBHOOKS_OVERLAP_MAX_S     (7 * 24 * 3600)
/* Bytes of secret behind "whsec_" (base64 of them). */
#define S2A_WEBHOOKS_SECRET_BYTES 32

/*
 * Start-up, once the database is open and before workers exist: leases
 * the last run left on deliveries are dropped (nobody will report them),
 * and the event that hands new deliveries out at once is made. Returns
 * S2A_OK or S2A_ERROR.
 */
int s2a_webhooks_init(void);

/* Frees the event (master exit). */
void s2a_webhooks_cleanup(void);

/*
 * Once a second (and right after new deliveries were written): hands
 * the due deliveries of enabled endpoints to ready workers, signed,
 * each leased in its row until its outcome arrives. Bounded per call and
 * in flight; nothing while the daemon stops or no worker is ready.
 */
void s2a_webhooks_tick(void);

/*
 * A task record was applied (inside the batch's transaction): when
 * `fields` moves the row of `job_id` to succeeded, failed or cancelled,
 * a delivery row is written for every enabled endpoint subscribed to
 * the event (video.completed, image.failed, ...), in the same
 * transaction.
 */
void s2a_webhooks_task_recorded(const char *job_id, json_t *fields);

/*
 * s2a_db_tasks_close(worker_pid, code, ..., now) just closed rows as
 * failed (in the caller's open transaction): their *.failed events are
 * written the same way.
 */
void s2a_webhooks_tasks_closed(int64_t worker_pid, const char *code,
                               int64_t now);

/* ---------------------------------------------------------------------
 * Pure parts (unit-tested)
 */

/*
 * The pause before attempt `attempt` + 1 after attempt `attempt` (1, 2,
 * ...) failed: `base_ms` doubled per earlier attempt, at most
 * S2A_WEBHOOKS_RETRY_CAP_MS, then jittered into [d/2, d] by `r` in
 * [0, 1].
 */
int64_t s2a_webhooks_backoff_ms(int attempt, int64_t base_ms, double r);

/* Whether a delivery of an event made at `created` (unix seconds) that
 * failed again at `now` is given up. */
bool s2a_webhooks_give_up(int64_t created, int64_t now);

/*
 * The webhook-signature value "v1,<base64 HMAC-SHA256>" of the message
 * "<id>.<timestamp>.<body>" under the decoded bytes of `secret`
 * ("whsec_<base64>"). A new string (caller frees), or NULL when the
 * secret is malformed or memory ran out.
 */
char *s2a_webhooks_sign(const char *secret, const char *id, int64_t timestamp,
                        const char *body, size_t body_len);

/*
 * The event body {id, object: "event", type, created_at, data: {id}} as
 * compact JSON (caller frees), `job_id` NULL giving a null data.id.
 */
char *s2a_webhooks_body(const char *event_id, const char *type,
                        int64_t created_at, const char *job_id);

/*
 * Checks the fields of a create (`create`) or an update against the
 * admin API's rules: url (http or https, at most 2048 bytes),
 * event_types (a non-empty array of the four types), enabled (a
 * boolean), rotate_secret (update only, a boolean); anything else is
 * refused. `*events` receives the event bits asked (all four on a create
 * that names none, 0 when an update leaves them). Returns S2A_OK, or
 * S2A_ERROR with the admin API's message in `err`.
 */
int s2a_webhooks_check(json_t *fields, bool create, unsigned *events, char *err,
                       size_t errlen);

/* A new secret "whsec_<base64 of S2A_WEBHOOKS_SECRET_BYTES random
 * bytes>" (caller cleanses and frees), or NULL. */
char *s2a_webhooks_new_secret(void);

#endif /* S2A_MASTER_WEBHOOKS_H */
