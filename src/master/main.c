/*
 * main.c: sora2apid command line: parse options, load the configuration,
 * test it (-t) or hand it to the master.
 */
#include "common/conf.h"
#include "common/settings.h"
#include "common/log.h"
#include "master/master.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *fp)
{
    fprintf(fp,
            "usage: sora2apid [-fdtkVh] [-c file]\n"
            "  -c file  configuration file (default: embedded defaults)\n"
            "  -f       stay in the foreground (the default)\n"
            "  -d       detach and run as a daemon\n"
            "  -t       test the configuration and exit\n"
            "  -k       print every configuration key and runtime setting\n"
            "           with its default\n"
            "  -V       print the version and exit\n"
            "  -h       this help\n");
}

int
main(int argc, char **argv)
{
    s2a_master_opts_t opts = { NULL, false, false };
    static char conf_abs[PATH_MAX];
    char err[1024];
    s2a_conf_t *conf;
    bool test = false;
    int c, rc;

    while ((c = getopt(argc, argv, "c:fdtkVh")) != -1) {
        switch (c) {
        case 'c': opts.conf_path = optarg; break;
        case 'f': opts.daemonize = false; break;
        case 'd': opts.daemonize = true; break;
        case 't': test = true; break;
        case 'k':
            s2a_conf_dump_keys(stdout);
            s2a_settings_dump(stdout);
            return S2A_EXIT_OK;
        case 'V': printf("sora2apid %s\n", S2A_VERSION); return S2A_EXIT_OK;
        case 'h': usage(stdout); return S2A_EXIT_OK;
        default: usage(stderr); return S2A_EXIT_CONFIG;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return S2A_EXIT_CONFIG;
    }
    if (s2a_conf_init_base_dir() != S2A_OK) {
        fprintf(stderr, "sora2apid: getcwd() failed\n");
        return S2A_EXIT_FAILURE;
    }
    if (opts.conf_path != NULL
        && s2a_conf_absolute(opts.conf_path, conf_abs, sizeof(conf_abs))
            == S2A_OK)
    {
        /* Reloads after -d (which changes to "/") find the same file. */
        opts.conf_path = conf_abs;
    }
    conf = malloc(sizeof(*conf));
    if (conf == NULL) {
        fprintf(stderr, "sora2apid: out of memory\n");
        return S2A_EXIT_FAILURE;
    }
    if ((opts.conf_path != NULL
             ? s2a_conf_load(conf, opts.conf_path, err, sizeof(err))
             : s2a_conf_defaults(conf, err, sizeof(err)))
        != S2A_OK)
    {
        fprintf(stderr, "sora2apid: %s\n", err);
        free(conf);
        return S2A_EXIT_CONFIG;
    }
    if (test) {
        printf("sora2apid: configuration %s is valid\n",
               opts.conf_path != NULL ? opts.conf_path : "(defaults)");
        free(conf);
        return S2A_EXIT_OK;
    }
#ifdef S2A_TEST_HOOKS
    /* A build configured with --enable-test-hooks always serves them. */
    opts.test_hooks = true;
#endif
    /* Once, before the master forks or starts a thread: libcurl's global
     * state (its TLS library) is then inherited by every worker. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "sora2apid: curl_global_init() failed\n");
        free(conf);
        return S2A_EXIT_FAILURE;
    }
    rc = s2a_master_run(conf, &opts);
    curl_global_cleanup();
    return rc;
}
