/*
 * test_upstream.c: which peer addresses a client-supplied URL may reach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "worker/upstream.h"

static void
test_private_addresses(void **state)
{
    static const char *const refused[] = {
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fc12::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "not-an-address",
        "",
    };
    static const char *const allowed[] = {
        "8.8.8.8",     "172.32.0.1", "172.15.255.255",  "100.128.0.1",
        "192.169.0.1", "1.1.1.1",    "2606:4700::1111", "::ffff:8.8.8.8",
    };
    size_t i;

    (void) state;
    for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (!s2a_upstream_ip_private(refused[i])) {
            fail_msg("%s should count as private", refused[i]);
        }
    }
    for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (s2a_upstream_ip_private(allowed[i])) {
            fail_msg("%s should count as public", allowed[i]);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_private_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
