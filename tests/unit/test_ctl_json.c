/* Unit tests of the control plane's JSON helpers (arguments, sizes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/ctl.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- tests: JSON helpers -------------------------------------------------------- */

static void test_parse_args(void **state)
{
    (void)state;
    char *argv[] = { "a=1",   "b=-7",    "c=true", "d=false",
                     "e=4G",  "f=",      "g=x=y",  "h=0x10",
                     "i=18446744073709551615", "j=99999999999999999999", "k=1.5",
                     "l=007", "m=True", "n=-" };
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    struct json_object *o = NULL;
    assert_int_equal(ctl_json_parse_args(argc, argv, &o), 0);
    assert_int_equal(json_object_object_length(o), argc);
    struct json_object *v;
#define TYPE_OF(key) (json_object_object_get_ex(o, key, &v), json_object_get_type(v))
    assert_int_equal(TYPE_OF("a"), json_type_int);
    assert_int_equal(json_object_get_int64(v = json_object_object_get(o, "a")), 1);
    assert_int_equal(TYPE_OF("b"), json_type_int);
    assert_int_equal(json_object_get_int64(v), -7);
    assert_int_equal(TYPE_OF("c"), json_type_boolean);
    assert_true(json_object_get_boolean(v));
    assert_int_equal(TYPE_OF("d"), json_type_boolean);
    assert_false(json_object_get_boolean(v));
    assert_int_equal(TYPE_OF("e"), json_type_string);
    assert_string_equal(json_object_get_string(v), "4G");
    assert_int_equal(TYPE_OF("f"), json_type_string);
    assert_string_equal(json_object_get_string(v), "");
    assert_int_equal(TYPE_OF("g"), json_type_string);
    assert_string_equal(json_object_get_string(v), "x=y");
    assert_int_equal(TYPE_OF("h"), json_type_string);
    assert_int_equal(TYPE_OF("i"), json_type_int);
    assert_true(json_object_get_uint64(v) == UINT64_MAX);
    assert_int_equal(TYPE_OF("j"), json_type_string); /* out of range stays text */
    assert_int_equal(TYPE_OF("k"), json_type_string);
    assert_int_equal(TYPE_OF("l"), json_type_int);
    assert_int_equal(json_object_get_int64(v), 7);
    assert_int_equal(TYPE_OF("m"), json_type_string);
    assert_int_equal(TYPE_OF("n"), json_type_string);
#undef TYPE_OF
    uint64_t u;
    assert_int_equal(ctl_json_get_u64(o, "e", &u), 0);
    assert_true(u == 4ull << 30);
    assert_int_equal(ctl_json_get_u64(o, "h", &u), 0);
    assert_true(u == 16);
    json_object_put(o);

    /* No arguments: an empty object. */
    assert_int_equal(ctl_json_parse_args(0, NULL, &o), 0);
    assert_int_equal(json_object_object_length(o), 0);
    json_object_put(o);

    char *bad1[] = { "a=1", "novalue" };
    o = (struct json_object *)1;
    assert_int_equal(ctl_json_parse_args(2, bad1, &o), -EINVAL);
    assert_null(o);
    assert_string_equal(vs_last_error(), "argument 'novalue' is not of the form key=value");
    char *bad2[] = { "=x" };
    assert_int_equal(ctl_json_parse_args(1, bad2, &o), -EINVAL);
    assert_non_null(strstr(vs_last_error(), "'=x' has an empty key"));
    char *bad3[] = { "a=1", "a=2" };
    assert_int_equal(ctl_json_parse_args(2, bad3, &o), -EINVAL);
    assert_non_null(strstr(vs_last_error(), "'a=2' repeats the key 'a'"));
}

static void test_get_u64(void **state)
{
    (void)state;
    struct json_object *o = json_tokener_parse(
        "{\"mem\":\"4G\",\"n\":4096,\"zero\":0,\"neg\":-1,\"s\":\"lots\",\"d\":1.5,"
        "\"b\":true,\"hex\":\"0x1000\",\"kib\":\"8KiB\",\"max\":18446744073709551615,"
        "\"huge\":\"99999999999999999999\",\"name\":\"vm1\",\"flag\":false,\"nul\":null}");
    assert_non_null(o);
    uint64_t v = 123;
    assert_int_equal(ctl_json_get_u64(o, "mem", &v), 0);
    assert_true(v == 4ull << 30);
    assert_int_equal(ctl_json_get_u64(o, "n", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(ctl_json_get_u64(o, "zero", &v), 0);
    assert_true(v == 0);
    assert_int_equal(ctl_json_get_u64(o, "hex", &v), 0);
    assert_true(v == 4096);
    assert_int_equal(ctl_json_get_u64(o, "kib", &v), 0);
    assert_true(v == 8192);
    assert_int_equal(ctl_json_get_u64(o, "max", &v), 0);
    assert_true(v == UINT64_MAX);

    v = 77;
    assert_int_equal(ctl_json_get_u64(o, "neg", &v), -EINVAL);
    assert_string_equal(vs_last_error(), "field \"neg\" must not be negative (got -1)");
    assert_true(v == 77);
    assert_int_equal(ctl_json_get_u64(o, "s", &v), -EINVAL);
    assert_string_equal(vs_last_error(), "field \"s\": 'lots' is not a number");
    assert_int_equal(ctl_json_get_u64(o, "d", &v), -EINVAL);
    assert_non_null(strstr(vs_last_error(), "field \"d\" must be a non-negative integer"));
    assert_non_null(strstr(vs_last_error(), "(got 1.5)"));
    assert_int_equal(ctl_json_get_u64(o, "b", &v), -EINVAL);
    assert_non_null(strstr(vs_last_error(), "(got true)"));
    assert_int_equal(ctl_json_get_u64(o, "nul", &v), -EINVAL);
    assert_int_equal(ctl_json_get_u64(o, "huge", &v), -ERANGE);
    assert_non_null(strstr(vs_last_error(), "field \"huge\""));
    assert_int_equal(ctl_json_get_u64(o, "absent", &v), -ENOENT);
    assert_string_equal(vs_last_error(), "missing field \"absent\"");
    assert_true(v == 77);

    const char *s;
    assert_int_equal(ctl_json_get_string(o, "name", &s), 0);
    assert_string_equal(s, "vm1");
    assert_int_equal(ctl_json_get_string(o, "n", &s), -EINVAL);
    assert_string_equal(vs_last_error(), "field \"n\" must be a string (got 4096)");
    assert_int_equal(ctl_json_get_string(o, "absent", &s), -ENOENT);

    bool b;
    assert_int_equal(ctl_json_get_bool(o, "b", &b), 0);
    assert_true(b);
    assert_int_equal(ctl_json_get_bool(o, "flag", &b), 0);
    assert_false(b);
    assert_int_equal(ctl_json_get_bool(o, "name", &b), -EINVAL);
    assert_string_equal(vs_last_error(), "field \"name\" must be true or false (got \"vm1\")");
    json_object_put(o);

    struct json_object *arr = json_object_new_array();
    assert_int_equal(ctl_json_get_u64(arr, "x", &v), -EINVAL);
    assert_int_equal(ctl_json_get_u64(NULL, "x", &v), -EINVAL);
    json_object_put(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_args),
        cmocka_unit_test(test_get_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
