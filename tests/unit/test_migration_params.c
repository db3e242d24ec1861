/* Unit tests: the migration parameter schema (src/ctl/migration_params.c): checks,
 * defaults, the options of a migration, and the table in docs/control-protocol.md.
 * `test_migration_params --print-table` prints the table the docs must carry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "common/error.h"
#include "ctl/migration_params.h"
#include "migrate/precopy/source.h"

#define BEGIN_MARK "<!-- migration-parameters:begin (generated: test_migration_params --print-table) -->\n"
#define END_MARK "<!-- migration-parameters:end -->"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void docs_table_matches_the_schema(void **state)
{
    (void)state;
    char *doc = read_file(VMSHIFT_SOURCE_DIR "/docs/control-protocol.md");
    char *begin = strstr(doc, BEGIN_MARK), *end = begin ? strstr(begin, END_MARK) : NULL;
    if (!begin || !end)
        fail_msg("docs/control-protocol.md lacks the markers %s ... %s", BEGIN_MARK, END_MARK);
    begin += strlen(BEGIN_MARK);
    *end = '\0';
    char *table = mp_docs_table();
    if (strcmp(begin, table) != 0)
        fail_msg("the parameter table in docs/control-protocol.md differs from the schema; "
                 "replace it with the output of build/tests/test_migration_params "
                 "--print-table:\n%s", table);
    free(table);
    free(doc);
}

static void names_are_unique_and_dashed(void **state)
{
    (void)state;
    for (size_t i = 0; i < mp_count; i++) {
        assert_null(strchr(mp_defs[i].name, '_'));
        assert_null(strchr(mp_defs[i].cli, '_'));
        assert_non_null(mp_defs[i].help);
        assert_non_null(mp_defs[i].apply);
        for (size_t j = i + 1; j < mp_count; j++) {
            assert_string_not_equal(mp_defs[i].name, mp_defs[j].name);
            assert_string_not_equal(mp_defs[i].cli, mp_defs[j].cli);
        }
    }
    /* The old control protocol's keys find their parameter. */
    assert_string_equal(mp_find_cli("downtime_limit")->name, "downtime-limit");
    assert_string_equal(mp_find_cli("streams")->name, "multifd-channels");
    assert_string_equal(mp_find_cli("tls_psk")->name, "x-tls-psk");
    assert_null(mp_find("downtime_limit"));
}

static void expect_set_fails(struct json_object *set, const char *name, const char *json,
                             const char *needle)
{
    struct json_object *v = json_tokener_parse(json);
    int rc = mp_set(set, mp_find(name), v);
    json_object_put(v);
    if (rc == 0)
        fail_msg("%s = %s was accepted", name, json);
    if (!strstr(vs_last_error(), needle))
        fail_msg("%s = %s: '%s' does not mention '%s'", name, json, vs_last_error(), needle);
}

static void values_are_checked(void **state)
{
    (void)state;
    struct json_object *set = mp_defaults();
    expect_set_fails(set, "x-max-passes", "1001", "0 to 1000");
    expect_set_fails(set, "downtime-limit", "-5", "whole number");
    expect_set_fails(set, "downtime-limit", "\"abc\"", "whole number");
    expect_set_fails(set, "multifd-compression", "\"gzip\"", "none,lz4,zstd,auto");
    expect_set_fails(set, "x-converge", "3", "none,throttle,postcopy,auto");
    expect_set_fails(set, "zero-copy-send", "1", "true or false");
    expect_set_fails(set, "x-downtime-schedule", "[1000, 500]", "increase");
    expect_set_fails(set, "x-downtime-schedule", "[1,2,3,4,5,6,7,8,9]", "at most 8");
    expect_set_fails(set, "multifd-channels", "17", "0 to 16");
    /* Sizes may be strings with suffixes; schedules strings or lists. */
    struct json_object *v = json_object_new_string("100M"), *got;
    assert_int_equal(mp_set(set, mp_find("max-bandwidth"), v), 0);
    json_object_put(v);
    assert_true(json_object_object_get_ex(set, "max-bandwidth", &got));
    assert_int_equal(json_object_get_int64(got), 100 << 20);
    v = json_object_new_string("500,1000");
    assert_int_equal(mp_set(set, mp_find("x-downtime-schedule"), v), 0);
    json_object_put(v);
    assert_true(json_object_object_get_ex(set, "x-downtime-schedule", &got));
    assert_string_equal(json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN), "[500,1000]");
    json_object_put(set);
}

static void a_set_becomes_migration_options(void **state)
{
    (void)state;
    struct json_object *set = mp_defaults();
    struct vs_migration_opts o;
    vs_migration_default_opts(&o);
    /* Without a security choice a migration does not start. */
    assert_int_not_equal(mp_to_opts(set, &o), 0);
    assert_non_null(strstr(vs_last_error(), "choose how the migration is secured"));

    const char *given = "{\"downtime-limit\": 120, \"x-max-passes\": 7, \"x-converge\": "
                        "\"auto\", \"multifd-channels\": 3, \"multifd-compression\": \"zstd\", "
                        "\"zero-copy-send\": true, \"x-insecure\": true, \"max-bandwidth\": "
                        "5000, \"x-downtime-schedule\": [400, 800], \"x-peer-timeout\": 1234, "
                        "\"x-with-disks\": true}";
    struct json_object *g = json_tokener_parse(given);
    json_object_object_foreach(g, key, val) {
        assert_int_equal(mp_set(set, mp_find(key), val), 0);
    }
    json_object_put(g);
    vs_migration_default_opts(&o);
    assert_int_equal(mp_to_opts(set, &o), 0);
    assert_int_equal(o.downtime_limit_ms, 120);
    assert_int_equal(o.max_passes, 7);
    assert_int_equal(o.converge, VS_CONVERGE_AUTO);
    assert_int_equal(o.streams, 3);
    assert_int_equal(o.compress, 2); /* VS_CODEC_ZSTD */
    assert_true(o.zerocopy);
    assert_true(o.with_disks);
    assert_int_equal(o.security.mode, VS_SEC_INSECURE);
    assert_int_equal(o.max_bandwidth, 5000);
    assert_int_equal(o.nr_downtime_steps, 2);
    assert_int_equal(o.downtime_schedule_ms[1], 800);
    assert_int_equal(o.timeout_ms, 1234);
    json_object_put(set);

    /* Defaults are those of a migration started without parameters. */
    struct vs_migration_opts d;
    vs_migration_default_opts(&d);
    set = mp_defaults();
    vs_migration_default_opts(&o);
    assert_int_equal(mp_apply(set, &o, false), 0);
    assert_int_equal(o.downtime_limit_ms, d.downtime_limit_ms);
    assert_int_equal(o.max_passes, d.max_passes);
    assert_int_equal(o.timeout_ms, d.timeout_ms);
    assert_int_equal(o.streams, d.streams);
    json_object_put(set);
}

static void cli_text_is_parsed_by_type(void **state)
{
    (void)state;
    struct json_object *v;
    assert_int_equal(mp_parse_text(mp_find("max-bandwidth"), "2K", &v), 0);
    assert_int_equal(json_object_get_int64(v), 2048);
    json_object_put(v);
    assert_int_equal(mp_parse_text(mp_find("zero-copy-send"), NULL, &v), 0);
    assert_true(json_object_get_boolean(v));
    json_object_put(v);
    assert_int_equal(mp_parse_text(mp_find("x-tls-psk"), "/", &v), 0);
    assert_string_equal(json_object_get_string(v), "/");
    json_object_put(v);
    assert_int_not_equal(mp_parse_text(mp_find("downtime-limit"), "abc", &v), 0);
    assert_non_null(strstr(vs_last_error(), "--downtime-limit 'abc' is not a whole number"));
    assert_int_not_equal(mp_parse_text(mp_find("x-tls-ca"), "/nonexistent/ca.pem", &v), 0);
    assert_non_null(strstr(vs_last_error(), "--tls-ca /nonexistent/ca.pem"));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-table") == 0) {
        char *t = mp_docs_table();
        fputs(t, stdout);
        free(t);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(docs_table_matches_the_schema),
        cmocka_unit_test(names_are_unique_and_dashed),
        cmocka_unit_test(values_are_checked),
        cmocka_unit_test(a_set_becomes_migration_options),
        cmocka_unit_test(cli_text_is_parsed_by_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
