/*
 * test_conf.c: the INI parser and key table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *
write_tmp(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/s2a-conf-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
    return path;
}

static int
load(const char *text, s2a_conf_t *conf, char *err, size_t errlen)
{
    char *path = write_tmp(text);
    int rc = s2a_conf_load(conf, path, err, errlen);

    unlink(path);
    return rc;
}

static void
test_defaults(void **state)
{
    s2a_conf_t conf;
    char err[256];

    (void) state;
    assert_int_equal(s2a_conf_defaults(&conf, err, sizeof(err)), S2A_OK);
    assert_int_equal(conf.n_listen, 1);
    assert_string_equal(conf.listen[0].host, "0.0.0.0");
    assert_int_equal(conf.listen[0].port, 8000);
    assert_true(conf.workers >= 1);
    assert_int_equal(conf.workers_auto, 1);
    assert_string_equal(conf.base_url, "https://sora.chatgpt.com/backend");
    assert_string_equal(conf.api_key, "han1234");
    assert_string_equal(conf.admin_username, "admin");
    assert_int_equal(conf.max_body_size, 64L * 1024 * 1024);
    assert_int_equal(conf.max_header_size, 16L * 1024);
    assert_true(conf.data_dir[0] == '/');
    assert_non_null(strstr(conf.data_dir, "/var/data"));
}

static void
test_full_file(void **state)
{
    s2a_conf_t conf;
    char err[256];

    (void) state;
    assert_int_equal(load("# top comment\n"
                          "[server]\n"
                          "listen = 127.0.0.1:8080, [::1]:8081 9000\n"
                          "workers = 3   # trailing comment\n"
                          "shutdown_timeout = 2m\n"
                          "max_body_size = 10m\n"
                          "\n"
                          "; other comment\n"
                          "[defaults]\n"
                          "api_key = \"  key # with hash \"\n"
                          "[upstream]\n"
                          "base_url = http://127.0.0.1:9/backend///\n"
                          "[log]\n"
                          "level = WARN\n",
                          &conf, err, sizeof(err)),
                     S2A_OK);
    assert_int_equal(conf.n_listen, 3);
    assert_string_equal(conf.listen[1].host, "::1");
    assert_int_equal(conf.listen[1].family, AF_INET6);
    assert_int_equal(conf.listen[1].port, 8081);
    assert_string_equal(conf.listen[2].host, "0.0.0.0");
    assert_int_equal(conf.listen[2].port, 9000);
    assert_int_equal(conf.workers, 3);
    assert_int_equal(conf.workers_auto, 0);
    assert_int_equal(conf.shutdown_timeout, 120);
    assert_int_equal(conf.max_body_size, 10L * 1024 * 1024);
    assert_string_equal(conf.api_key, "  key # with hash ");
    assert_string_equal(conf.base_url, "http://127.0.0.1:9/backend");
    assert_int_equal(conf.log_level, 4);
}

static void
expect_error(const char *text, const char *fragment, int line)
{
    s2a_conf_t conf;
    char err[512], want[32];

    assert_int_equal(load(text, &conf, err, sizeof(err)), S2A_ERROR);
    if (strstr(err, fragment) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, fragment);
    }
    snprintf(want, sizeof(want), ":%d: ", line);
    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" does not name line %d", err, line);
    }
}

static void
test_errors(void **state)
{
    (void) state;
    expect_error("[server]\nworkers = 0\n", "workers must be", 2);
    expect_error("[server]\nworkers = 65\n", "workers must be", 2);
    expect_error("[server]\nlisten = 300.1.1.1:80\n", "bad listen", 2);
    expect_error("[server]\nlisten = 127.0.0.1:70000\n", "bad port", 2);
    expect_error("[server]\nlisten = [::1]80\n", "bad listen", 2);
    expect_error("[server]\nlisten = example.com:80\n", "numeric", 2);
    expect_error("[server]\nlisten = 1.2.3.4:1 1.2.3.4:1\n", "twice", 2);
    expect_error("[server]\nlisten =\n", "at least one", 2);
    expect_error("\n\n[sever]\n", "unknown section", 3);
    expect_error("[server]\nwokers = 2\n", "unknown key \"wokers\"", 2);
    expect_error("[log]\nlevel = info\nlevel = info\n", "duplicate", 3);
    expect_error("[log]\nlevel = chatty\n", "level must be", 2);
    expect_error("[server]\nmax_body_size = -1\n", "not a valid size", 2);
    expect_error("[server]\nmax_body_size = 10\n", "between", 2);
    expect_error("[server]\nclient_timeout = 5x\n", "not a valid duration", 2);
    expect_error("[server]\nbacklog = 12abc\n", "not a valid number", 2);
    expect_error("[server]\nworkers\n", "expected key = value", 2);
    expect_error("workers = 1\n", "outside a section", 1);
    expect_error("[server\n", "bad section header", 1);
    expect_error("[defaults]\napi_key = \"open\n", "unterminated", 2);
    expect_error("[defaults]\napi_key = \"a\" b\n", "after closing quote", 2);
    expect_error("[upstream]\noauth_url = file:///etc\n", "http://", 2);
    expect_error("[paths]\ndata_dir =\n", "must not be empty", 2);
}

static void
test_key_table(void **state)
{
    size_t i, j;

    (void) state;
    /* Every key is unique, documented and findable. */
    for (i = 0; i < s2a_conf_nkeys; i++) {
        assert_non_null(s2a_conf_keys[i].help);
        assert_ptr_equal(
            s2a_conf_find(s2a_conf_keys[i].section, s2a_conf_keys[i].name),
            &s2a_conf_keys[i]);
        for (j = i + 1; j < s2a_conf_nkeys; j++) {
            assert_false(
                strcmp(s2a_conf_keys[i].section, s2a_conf_keys[j].section) == 0
                && strcmp(s2a_conf_keys[i].name, s2a_conf_keys[j].name) == 0);
        }
    }
    assert_null(s2a_conf_find("server", "nope"));
}

static void
test_listen_equal(void **state)
{
    s2a_conf_t a, b;
    char err[256];

    (void) state;
    assert_int_equal(s2a_conf_defaults(&a, err, sizeof(err)), S2A_OK);
    assert_int_equal(s2a_conf_defaults(&b, err, sizeof(err)), S2A_OK);
    assert_true(s2a_conf_listen_equal(&a, &b));
    b.listen[0].port = 8001;
    assert_false(s2a_conf_listen_equal(&a, &b));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_listen_equal),
    };

    return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
