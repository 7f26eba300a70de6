/*
 * sweep.c: periodic maintenance the master decides on: tokens whose
 * cooldown ended, access tokens due for a refresh and quotas due for a
 * check (handed to a ready worker, round-robin, which makes the calls and
 * sends the outcome back as ordinary token mutations), and expired files
 * of the media cache.
 */
#include "master/sweep.h"
#include "common/log.h"
#include "common/ops.h"
#include "common/util.h"
#include "master/ctlserver.h"
#include "master/orphans.h"
#include "master/pool.h"
#include "master/state.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SWEEP_EVERY_S 60
#define SWEEP_BATCH   64

static int countdown = 5; /* ticks until the next sweep */

static void
due_token(int64_t id, bool refresh, const char *st, const char *rt,
          const char *client_id, const char *proxy, void *arg)
{
    s2a_proc_t *w = s2a_master_next_ready();
    s2a_shm_settings_t *s = arg;
    json_t *msg;

    if (w == NULL) {
        return;
    }
    if (refresh && s->at_refresh_enabled) {
        msg = json_pack("{s:s, s:I}", "op", "refresh_token", "token_id",
                        (json_int_t) id);
        if (st != NULL) {
            json_object_set_new(msg, "st", json_string(st));
        }
        if (rt != NULL) {
            json_object_set_new(msg, "rt", json_string(rt));
        }
        if (client_id != NULL) {
            json_object_set_new(msg, "client_id", json_string(client_id));
        }
        s2a_db_token_mark(s2a_master.db, id, "refresh_attempted_at", s2a_now());
    } else {
        msg = json_pack("{s:s, s:I}", "op", "quota_check", "token_id",
                        (json_int_t) id);
        s2a_db_token_mark(s2a_master.db, id, "quota_checked_at", s2a_now());
    }
    if (proxy != NULL) {
        json_object_set_new(msg, "proxy", json_string(proxy));
    }
    /* The message carries secrets: no copy of them outlives it. */
    s2a_chan_send_secret(w->chan, msg);
}

/*
 * Deletes cached media older than cache_timeout (and leftovers of
 * downloads that never finished, after a day). Runs in the master: a
 * directory scan must not stall a worker's requests.
 */
static void
sweep_cache(void)
{
    s2a_shm_settings_t set;
    struct dirent *de;
    struct stat st;
    int64_t now = s2a_now(), limit, files = 0, bytes = 0;
    int dfd, removed = 0;
    DIR *dir;

    s2a_shm_settings_read(s2a_master.shm, &set);
    dfd = open(s2a_master.conf->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd == -1) {
        return;
    }
    dir = fdopendir(dfd);
    if (dir == NULL) {
        close(dfd);
        return;
    }
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0
            || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1
            || !S_ISREG(st.st_mode))
        {
            continue;
        }
        limit = de->d_name[0] == '.' ? 86400 : set.cache_timeout;
        if (st.st_mtim.tv_sec + limit <= now
            && unlinkat(dfd, de->d_name, 0) == 0) {
            removed++;
        } else {
            files++;
            bytes += (int64_t) st.st_size;
        }
    }
    closedir(dir);
    /* What is left, for /metrics (the scan is paid for already). */
    s2a_stats_set_cache(&s2a_master.shm->stats, files, bytes);
    if (removed > 0) {
        s2a_log(LOG_INFO, 0, "cache: %d expired files removed", removed);
    }
}

static void
sweep_tokens(void)
{
    s2a_shm_settings_t s;
    int n;

    if (s2a_master.stopping || s2a_master.db == NULL
        || s2a_ctlserver_batch() != S2A_OK)
    {
        return;
    }
    n = s2a_db_tokens_end_cooldown(s2a_master.db, 0, s2a_now(),
                                   s2a_pool_touched);
    if (n > 0) {
        s2a_log(LOG_INFO, 0, "upkeep: %d tokens cooled down", n);
    }
    s2a_shm_settings_read(s2a_master.shm, &s);
    if (!s.at_refresh_enabled && s.quota_interval <= 0) {
        return;
    }
    n = s2a_db_tokens_due(s2a_master.db, s2a_master.key, s2a_now(),
                          s.at_refresh_enabled ? s.at_refresh_window : 0,
                          s.quota_interval, SWEEP_BATCH, due_token, &s);
    if (n > 0) {
        s2a_log(LOG_INFO, 0, "upkeep: %d tokens handed to workers", n);
    }
}

void
s2a_sweep_tick(void)
{
    if (--countdown <= 0) {
        countdown = SWEEP_EVERY_S;
        sweep_tokens();
        sweep_cache();
    }
}

#ifdef S2A_TEST_HOOKS
/* "sweep_now" (test builds): run both sweeps at once. */
void
s2a_op_sweep_now(void *from, json_t *msg)
{
    S2A_UNUSED(from);
    S2A_UNUSED(msg);
    sweep_tokens();
    sweep_cache();
    s2a_orphans_wanted();
}
#endif
