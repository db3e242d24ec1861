/* Unit tests: the security choice (src/transport/security.c): exactly one of --insecure,
 * --tls-psk or the three certificate options, and messages that say what to pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "expect_error.h"
#include "transport/security.h"

static struct vs_security_opts opts(const char *n1, const char *v1, const char *n2,
                                    const char *v2)
{
    struct vs_security_opts o = { 0 };
    if (n1)
        assert_int_equal(vs_security_set(&o, n1, v1), 0);
    if (n2)
        assert_int_equal(vs_security_set(&o, n2, v2), 0);
    return o;
}

static void nothing_chosen_says_what_to_pass(void **state)
{
    (void)state;
    struct vs_security_opts o = { 0 };
    expect_msg(vs_security_finish(&o, true), "--tls-psk FILE", "--insecure");
    expect_msg(vs_security_finish(&o, true), "--tls-cert FILE --tls-key FILE --tls-ca FILE",
               "openssl rand -hex 32");
    expect_msg(vs_security_finish(&o, false), "x-tls-psk FILE", "x-insecure true");
    assert_int_equal(o.mode, VS_SEC_UNSET);
}

static void one_choice_sets_the_mode(void **state)
{
    (void)state;
    struct vs_security_opts o = opts("insecure", NULL, NULL, NULL);
    assert_int_equal(vs_security_finish(&o, true), 0);
    assert_int_equal(o.mode, VS_SEC_INSECURE);
    o = opts("tls_psk", "/k", NULL, NULL);          /* the control protocol's spelling */
    assert_int_equal(vs_security_finish(&o, false), 0);
    assert_int_equal(o.mode, VS_SEC_PSK);
    assert_string_equal(o.psk, "/k");
    o = opts("tls-cert", "/c", "tls-key", "/k");
    assert_int_equal(vs_security_set(&o, "tls-ca", "/ca"), 0);
    assert_int_equal(vs_security_set(&o, "tls-name", "host"), 0);
    assert_int_equal(vs_security_finish(&o, true), 0);
    assert_int_equal(o.mode, VS_SEC_CERT);
    assert_string_equal(vs_security_mode_name(o.mode), "tls-cert");
}

static void bad_combinations_are_named(void **state)
{
    (void)state;
    struct vs_security_opts o = opts("insecure", NULL, "tls-psk", "/k");
    expect_msg(vs_security_finish(&o, true), "choose one way", "not several");
    o = opts("tls-cert", "/c", "tls-ca", "/ca");
    expect_msg(vs_security_finish(&o, true), "need all three", "missing: --tls-key");
    o = opts("tls-psk", "/k", "tls-name", "host");
    expect_msg(vs_security_finish(&o, true), "--tls-name", "--tls-cert FILE");
    o = opts("insecure", NULL, "ktls", NULL);
    expect_msg(vs_security_finish(&o, true), "--ktls", "--insecure");
}

static void bad_values_are_refused(void **state)
{
    (void)state;
    struct vs_security_opts o = { 0 };
    assert_int_equal(vs_security_set(&o, "tls-verbose", "x"), -ENOENT);
    expect_msg(vs_security_set(&o, "tls-psk", ""), "needs a file name", NULL);
    char long_path[400];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    expect_msg(vs_security_set(&o, "tls-ca", long_path), "too long", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_chosen_says_what_to_pass),
        cmocka_unit_test(one_choice_sets_the_mode),
        cmocka_unit_test(bad_combinations_are_named),
        cmocka_unit_test(bad_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
