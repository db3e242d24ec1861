/* Unit tests: the destination's timing in the migration report: the switchover on its
 * clock, the downtime from it to the resume, and the throughput over the whole migration,
 * as the JSON report shows them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "migrate/report.h"

#define MS 1000000ULL

static double num(struct json_object *o, const char *key)
{
    struct json_object *v;
    assert_true(json_object_object_get_ex(o, key, &v));
    return json_object_get_double(v);
}

static void downtime_runs_from_the_switchover_to_the_resume(void **state)
{
    (void)state;
    static struct vs_migration_stats s;
    s.start_ns = 1000 * MS;
    vs_report_note_resume(&s, 1500 * MS);   /* no switchover known: no downtime */
    assert_int_equal(s.downtime_ns, 0);
    vs_report_note_switchover(&s, 900 * MS);   /* before the start: not believable */
    assert_int_equal(s.switchover_at_ns, 0);
    vs_report_note_switchover(&s, 1400 * MS);
    assert_int_equal(s.switchover_at_ns, 400 * MS);
    vs_report_note_resume(&s, 1300 * MS);   /* a resume before it: nothing */
    assert_int_equal(s.downtime_ns, 0);
    vs_report_note_resume(&s, 1425 * MS);
    assert_int_equal(s.downtime_ns, 25 * MS);
    struct json_object *j = vs_report_json(&s);
    assert_true(num(j, "downtime") == 25.0);
    assert_true(num(j, "switchover-at") == 400.0);
    json_object_put(j);
}

static void throughput_is_the_whole_migrations(void **state)
{
    (void)state;
    static struct vs_migration_stats s;
    vs_report_note_total(&s);   /* no time yet: no rate, no division by zero */
    assert_true(s.mbps == 0);
    s.transferred_bytes = 125000000;   /* 10^9 bits in 2 s: 500 Mbit/s */
    s.total_ns = 2000 * MS;
    vs_report_note_total(&s);
    assert_true(s.mbps > 499.999 && s.mbps < 500.001);
    struct json_object *j = vs_report_json(&s), *ram;
    assert_true(json_object_object_get_ex(j, "ram", &ram));
    assert_true(num(ram, "mbps") > 499.999 && num(ram, "mbps") < 500.001);
    json_object_put(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(downtime_runs_from_the_switchover_to_the_resume),
        cmocka_unit_test(throughput_is_the_whole_migrations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
