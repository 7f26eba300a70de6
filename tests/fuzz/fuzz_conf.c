/*
 * fuzz_conf.c: libFuzzer target for the INI configuration loader
 * (s2a_conf_load): sections, keys, quoting, comments, sizes, durations
 * and listen addresses. The loader reads a file, so each input is
 * written to one temporary file first.
 */
#include "common/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static int fd = -1;

/* Called once by libFuzzer: the base directory and the temporary file. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (s2a_conf_init_base_dir() != S2A_OK) {
        abort();
    }
    snprintf(path, sizeof(path), "/tmp/s2a-fuzz-conf-XXXXXX");
    fd = mkstemp(path);
    if (fd == -1) {
        abort();
    }
    return 0;
}

/* The entry point libFuzzer calls with each input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static s2a_conf_t conf;
    char err[1024];
    int i;

    if (ftruncate(fd, 0) == -1 || pwrite(fd, data, size, 0) != (ssize_t) size) {
        abort();
    }
    err[0] = '\0';
    if (s2a_conf_load(&conf, path, err, sizeof(err)) == S2A_OK) {
        /* What a successful load promises the rest of the daemon. */
        if (conf.n_listen < 1 || conf.n_listen > S2A_CONF_MAX_LISTEN
            || conf.workers < 1 || conf.workers > S2A_CONF_MAX_WORKERS)
        {
            abort();
        }
        for (i = 0; i < conf.n_listen; i++) {
            if (conf.listen[i].port < 0 || conf.listen[i].port > 65535
                || memchr(conf.listen[i].host, '\0',
                          sizeof(conf.listen[i].host))
                    == NULL)
            {
                abort();
            }
        }
    } else if (err[0] == '\0') {
        abort(); /* an error always says why */
    }
    return 0;
}
