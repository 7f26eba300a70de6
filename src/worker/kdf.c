/*
 * kdf.c: one helper thread per worker for password hashing.
 *
 * Jobs go into a small queue under a mutex; the thread takes one at a
 * time and, when done, puts it on the finished list and writes a byte to
 * a pipe the event loop watches. Only the loop ever calls `done`.
 * Passwords are wiped from memory once used.
 */
#include "worker/kdf.h"
#include "common/crypto.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define QUEUE_MAX 64

typedef struct job_s {
    uint64_t id;
    char *password;
    char *stored; /* NULL: hash instead of verify */
    bool ok;
    bool cancelled;
    char hash[S2A_PASSWORD_HASH_LEN];
    s2a_kdf_done_pt done;
    void *arg;
    struct job_s *next;
} job_t;

static struct {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_t *queue, **queue_tail;
    job_t *finished;
    job_t *running;
    int queued;
    bool stop;
    int pipe_fds[2];
    struct event *ev;
    uint64_t next_id;
} K = { .pipe_fds = { -1, -1 } };

static void
job_free(job_t *j)
{
    if (j->password != NULL) {
        OPENSSL_cleanse(j->password, strlen(j->password));
        free(j->password);
    }
    free(j->stored);
    OPENSSL_cleanse(j->hash, sizeof(j->hash));
    free(j);
}

static void *
kdf_thread(void *arg)
{
    job_t *j;
    char c = 1;

    S2A_UNUSED(arg);
    pthread_mutex_lock(&K.mu);
    for (;;) {
        while (K.queue == NULL && !K.stop) {
            pthread_cond_wait(&K.cv, &K.mu);
        }
        if (K.stop) {
            break;
        }
        j = K.queue;
        K.queue = j->next;
        if (K.queue == NULL) {
            K.queue_tail = &K.queue;
        }
        K.running = j;
        pthread_mutex_unlock(&K.mu);

        if (j->stored != NULL) {
            j->ok = s2a_password_verify(j->password, j->stored);
        } else {
            j->ok = s2a_password_hash(j->password, j->hash, sizeof(j->hash))
                == S2A_OK;
        }

        pthread_mutex_lock(&K.mu);
        K.running = NULL;
        j->next = K.finished;
        K.finished = j;
        if (write(K.pipe_fds[1], &c, 1) < 0 && errno != EAGAIN) {
            /* The loop still sees the job on its next wakeup. */
        }
    }
    pthread_mutex_unlock(&K.mu);
    return NULL;
}

static void
finished_cb(evutil_socket_t fd, short what, void *arg)
{
    char buf[64];
    job_t *done, *j;

    S2A_UNUSED(what);
    S2A_UNUSED(arg);
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    pthread_mutex_lock(&K.mu);
    done = K.finished;
    K.finished = NULL;
    K.queued = 0;
    for (j = K.queue; j != NULL; j = j->next) {
        K.queued++;
    }
    pthread_mutex_unlock(&K.mu);
    while ((j = done) != NULL) {
        done = j->next;
        if (!j->cancelled) {
            j->done(j->ok, j->stored == NULL && j->ok ? j->hash : NULL, j->arg);
        }
        job_free(j);
    }
}

int
s2a_kdf_init(struct event_base *base)
{
    int i;

    K.queue = NULL;
    K.queue_tail = &K.queue;
    K.next_id = 1;
    if (pipe2(K.pipe_fds, O_CLOEXEC | O_NONBLOCK) == -1) {
        s2a_log(LOG_ERR, errno, "pipe2() failed");
        return S2A_ERROR;
    }
    K.ev =
        event_new(base, K.pipe_fds[0], EV_READ | EV_PERSIST, finished_cb, NULL);
    if (K.ev == NULL || event_add(K.ev, NULL) != 0) {
        return S2A_ERROR;
    }
    pthread_mutex_init(&K.mu, NULL);
    pthread_cond_init(&K.cv, NULL);
    i = pthread_create(&K.thread, NULL, kdf_thread, NULL);
    if (i != 0) {
        s2a_log(LOG_ERR, i, "pthread_create() failed");
        return S2A_ERROR;
    }
    K.started = true;
    return S2A_OK;
}

static job_t *
free_list(job_t *j)
{
    job_t *next;

    for (; j != NULL; j = next) {
        next = j->next;
        job_free(j);
    }
    return NULL;
}

void
s2a_kdf_cleanup(void)
{
    if (K.started) {
        pthread_mutex_lock(&K.mu);
        K.stop = true;
        pthread_cond_signal(&K.cv);
        pthread_mutex_unlock(&K.mu);
        pthread_join(K.thread, NULL);
        K.started = false;
        K.queue = free_list(K.queue);
        K.finished = free_list(K.finished);
        pthread_mutex_destroy(&K.mu);
        pthread_cond_destroy(&K.cv);
    }
    if (K.ev != NULL) {
        event_free(K.ev);
        K.ev = NULL;
    }
    if (K.pipe_fds[0] >= 0) {
        close(K.pipe_fds[0]);
        close(K.pipe_fds[1]);
        K.pipe_fds[0] = K.pipe_fds[1] = -1;
    }
}

static uint64_t
submit(const char *password, const char *stored, s2a_kdf_done_pt done,
       void *arg)
{
    job_t *j;
    uint64_t id;

    if (!K.started) {
        return 0;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return 0;
    }
    j->password = strdup(password);
    j->stored = stored != NULL ? strdup(stored) : NULL;
    if (j->password == NULL || (stored != NULL && j->stored == NULL)) {
        job_free(j);
        return 0;
    }
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&K.mu);
    if (K.queued >= QUEUE_MAX) {
        pthread_mutex_unlock(&K.mu);
        job_free(j);
        return 0;
    }
    id = j->id = K.next_id++;
    *K.queue_tail = j;
    K.queue_tail = &j->next;
    K.queued++;
    pthread_cond_signal(&K.cv);
    pthread_mutex_unlock(&K.mu);
    return id;
}

uint64_t
s2a_kdf_verify(const char *password, const char *stored, s2a_kdf_done_pt done,
               void *arg)
{
    return submit(password, stored, done, arg);
}

uint64_t
s2a_kdf_hash(const char *password, s2a_kdf_done_pt done, void *arg)
{
    return submit(password, NULL, done, arg);
}

void
s2a_kdf_cancel(uint64_t id)
{
    job_t *j;

    pthread_mutex_lock(&K.mu);
    for (j = K.queue; j != NULL; j = j->next) {
        if (j->id == id) {
            j->cancelled = true;
        }
    }
    if (K.running != NULL && K.running->id == id) {
        K.running->cancelled = true;
    }
    for (j = K.finished; j != NULL; j = j->next) {
        if (j->id == id) {
            j->cancelled = true;
        }
    }
    pthread_mutex_unlock(&K.mu);
}
