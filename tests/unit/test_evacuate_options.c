/* Unit tests: `vmshift evacuate` option parsing (src/evacuate/evacuate_options.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "evacuate/evacuate_options.h"
#include "expect_error.h"

#define ARGV(...) ((char *[]){ "evacuate", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "evacuate", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, ...) evacuate_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o))

static void defaults(void **state)
{
    (void)state;
    struct evacuate_options o;
    assert_int_equal(PARSE(&o, "--from", "/run/a.sock", "--to", "/run/b.sock"), 0);
    assert_string_equal(o.from, "/run/a.sock");
    assert_int_equal(o.nto, 1);
    assert_string_equal(o.to[0], "/run/b.sock");
    assert_true(o.parallel_auto);
    assert_int_equal(o.max_parallel, EVAC_DEFAULT_MAX_PARALLEL);
    assert_int_equal(o.nvms, 0);
    assert_int_equal(json_object_object_length(o.migrate), 0);
    evacuate_options_free(&o);
}

static void everything(void **state)
{
    (void)state;
    struct evacuate_options o;
    assert_int_equal(PARSE(&o, "--from", "a", "--to", "b,c,d", "--parallel", "4", "--vms",
                           "v1,v2", "--streams", "2", "--compress", "lz4", "--downtime-limit",
                           "100", "--max-passes", "5", "--timeout-ms", "9000", "--max-bandwidth",
                           "100M", "--zerocopy", "--migrate-opt", "tls=psk",
                           "--migrate-opt", "insecure=true", "--report", "r.json",
                           "--poll-ms", "50", "--quiet"), 0);
    assert_int_equal(o.nto, 3);
    assert_string_equal(o.to[2], "d");
    assert_false(o.parallel_auto);
    assert_int_equal(o.parallel, 4);
    assert_int_equal(o.max_parallel, 4);
    assert_int_equal(o.nvms, 2);
    assert_string_equal(o.vms[1], "v2");
    const char *line = json_object_to_json_string_ext(o.migrate, JSON_C_TO_STRING_PLAIN);
    /* Parameters under their QMP names (migration_params.h), checked and typed. */
    assert_string_equal(line, "{\"multifd-channels\":2,\"multifd-compression\":\"lz4\","
                              "\"downtime-limit\":100,\"x-max-passes\":5,\"x-peer-timeout\":9000,"
                              "\"max-bandwidth\":104857600,\"zero-copy-send\":true,"
                              "\"tls\":\"psk\",\"x-insecure\":true}");
    assert_string_equal(o.report, "r.json");
    assert_true(o.poll_s > 0.049 && o.poll_s < 0.051);
    assert_true(o.quiet);
    evacuate_options_free(&o);
}

static void auto_with_a_ceiling(void **state)
{
    (void)state;
    struct evacuate_options o;
    assert_int_equal(PARSE(&o, "--from", "a", "--to", "b", "--parallel", "auto",
                           "--max-parallel", "16"), 0);
    assert_true(o.parallel_auto);
    assert_int_equal(o.max_parallel, 16);
    evacuate_options_free(&o);
}

static void mistakes_are_named(void **state)
{
    (void)state;
    struct evacuate_options o;
    expect_msg(PARSE(&o, "--to", "b"), "--from", NULL);
    expect_msg(PARSE(&o, "--from", "a"), "--to", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b,,c"), "empty item", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b,"), "empty item", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b,b"), "twice", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b,a"), "into itself", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--parallel", "0"), "--parallel", "'0'");
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--parallel", "many"), "--parallel", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--parallel", "65"), "1 to 64", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--migrate-opt", "novalue"), "KEY=VALUE",
               NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--migrate-opt", "to=x:1"), "itself",
               NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--streams", "2", "--migrate-opt",
                     "streams=3"), "repeats", "streams");
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--poll-ms", "1"), "--poll-ms", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--max-passes", "5000"), "--max-passes",
               "0 to 1000");
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--compress", "gzip"), "--compress",
               "none,lz4,zstd,auto");
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "--bogus"), "--bogus", NULL);
    expect_msg(PARSE(&o, "--from", "a", "--to", "b", "extra"), "'extra'", NULL);
}

/* Hosts given as HOST:PORT (vmshiftd --listen) are reached with the security options,
 * which are no longer the migrations' (those go in --migrate-opt). */
static void remote_hosts(void **state)
{
    (void)state;
    struct evacuate_options o;
    assert_int_equal(PARSE(&o, "--from", "198.18.0.1:7000", "--to", "198.18.0.2:7000,/run/c",
                           "--tls-cert", "c.pem", "--tls-key", "c.key", "--tls-ca", "ca.pem",
                           "--migrate-opt", "x-tls-psk=/etc/k"), 0);
    assert_true(o.remote);
    assert_int_equal(o.security.mode, VS_SEC_CERT);
    assert_string_equal(o.security.cert, "c.pem");
    assert_string_equal(o.to[1], "/run/c");
    assert_string_equal(json_object_to_json_string_ext(o.migrate, JSON_C_TO_STRING_PLAIN),
                        "{\"x-tls-psk\":\"\\/etc\\/k\"}");
    evacuate_options_free(&o);
    assert_int_equal(PARSE(&o, "--from", "/run/a", "--to", "[::1]:7000", "--insecure"), 0);
    assert_true(o.remote);
    assert_int_equal(o.security.mode, VS_SEC_INSECURE);
    evacuate_options_free(&o);
    assert_int_equal(PARSE(&o, "--from", "/run/a", "--to", "./b:7"), 0);
    assert_false(o.remote);   /* a path with a colon */
    evacuate_options_free(&o);
    expect_msg(PARSE(&o, "--from", "198.18.0.1:7000", "--to", "/run/b"),
               "choose how the connections to the hosts", "--insecure");
    expect_msg(PARSE(&o, "--from", "a:1", "--to", "b:1", "--tls-cert", "c.pem"),
               "missing: --tls-key --tls-ca", NULL);
    expect_msg(PARSE(&o, "--from", "a:1", "--to", "b:1", "--insecure", "--tls-psk", "k"),
               "not several", NULL);
    expect_msg(PARSE(&o, "--from", "/run/a", "--to", "/run/b", "--tls-psk", "k"),
               "every host here is a socket", "--migrate-opt");
}

static void help(void **state)
{
    (void)state;
    struct evacuate_options o;
    assert_int_equal(PARSE(&o, "--help"), 0);
    assert_true(o.help);
    evacuate_options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(everything),
        cmocka_unit_test(auto_with_a_ceiling),
        cmocka_unit_test(mistakes_are_named),
        cmocka_unit_test(remote_hosts),
        cmocka_unit_test(help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
