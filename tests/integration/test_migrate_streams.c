/* Integration: every sending path of issue 4 moves a busy VM intact. Streams 1..8, each
 * codec (none, lz4, zstd, auto) and zero-copy on and off (zero-copy over plain TCP, the
 * others over TLS with a key or with certificates), each time with the end-to-end
 * digest checked by the migration itself, both sides' reports agreeing, and the guest's
 * verify workload finding no bad page afterwards; and the bandwidth cap holds within 5%. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct path_case {
    int streams;
    const char *compress;
    bool zerocopy;
    enum test_security security;
};

static const char *const security_names[] = { "tls-psk", "tls-cert", "insecure" };

static struct json_object *sub(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static void migrate_path(const struct path_case *c)
{
    struct vm_proc src, dst;
    /* Pattern memory compresses, so the codecs really run; verify rewrites pages. */
    vm_proc_start(&src, ARGS("--mem", "48M", "--vcpus", "2", "--workload", "verify",
                             "--fill", "pattern"));
    struct json_object *st = wait_guest_at_least(&src, "passes", 1, 60);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    test_security_use(c->security);
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64], label[96];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    snprintf(label, sizeof(label), "streams=%d compress=%s zerocopy=%d %s", c->streams,
             c->compress, c->zerocopy, security_names[c->security]);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "streams", json_object_new_int(c->streams));
    json_object_object_add(a, "compress", json_object_new_string(c->compress));
    json_object_object_add(a, "zerocopy", json_object_new_boolean(c->zerocopy));
    struct json_object *r = vm_migrate(&src, to, a, 120);
    json_object_put(a);
    test_security_use(TEST_SEC_PSK);
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("%s: migration %s: %s", label, json_str(r, "status"), json_str(r, "error"));

    /* The report shows the path taken. */
    struct json_object *streams = sub(r, "streams"), *ram = sub(r, "ram");
    assert_int_equal((int)json_num(streams, "count"), c->streams);
    struct json_object *per = sub(streams, "bytes");
    assert_int_equal((int)json_object_array_length(per), c->streams);
    uint64_t sum = 0;
    for (int i = 0; i < c->streams; i++) {
        uint64_t b = json_object_get_uint64(json_object_array_get_idx(per, (size_t)i));
        assert_true(b > 0);        /* every stream carried something */
        sum += b;
    }
    assert_int_equal(sum, (uint64_t)json_num(ram, "transferred"));
    assert_string_equal(json_str(streams, "compress"), c->compress);
    if (!strcmp(c->compress, "lz4") || !strcmp(c->compress, "zstd")) {
        assert_true(json_num(ram, "compressed") > 0);
        assert_true(json_num(ram, "compression-ratio") > 1.5);
    } else if (!strcmp(c->compress, "none")) {
        assert_true(json_num(ram, "compressed") == 0);
    }
    if (c->zerocopy && json_num(ram, "raw") > 0)   /* compressed batches are copies */
        assert_true(json_num(streams, "zerocopy-sends") > 0);
    assert_true(json_num(sub(r, "cpu"), "seconds") > 0);
    struct json_object *sec = sub(r, "security");
    assert_string_equal(json_str(sec, "mode"), security_names[c->security]);
    assert_int_equal(strlen(json_str(sec, "cipher")) > 0, c->security != TEST_SEC_INSECURE);
    assert_true(json_num(sub(r, "bandwidth"), "interval-ms") == 100);

    /* Both sides computed the same RAM digest, and the guest finds every page intact. */
    vm_proc_wait_ctl(&dst, 30);
    struct json_object *dst_status = vm_cmd(&dst, "status", NULL);
    struct json_object *incoming = sub(dst_status, "incoming");
    assert_non_null(incoming);
    assert_string_equal(json_str(incoming, "ram-digest"), json_str(r, "ram-digest"));
    assert_int_equal((int)json_num(sub(incoming, "streams"), "count"), c->streams);
    assert_string_equal(json_str(sub(incoming, "security"), "cipher"), json_str(sec, "cipher"));
    json_object_put(dst_status);
    json_object_put(r);
    st = wait_guest_at_least(&dst, "passes", passes + 1, 120);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void every_path(void **state)
{
    (void)state;
    require_kvm();
    static const struct path_case cases[] = {
        { 1, "none", false, TEST_SEC_PSK }, { 2, "lz4", false, TEST_SEC_CERT },
        { 3, "zstd", false, TEST_SEC_PSK }, { 4, "auto", false, TEST_SEC_CERT },
        { 5, "none", true, TEST_SEC_INSECURE }, { 6, "lz4", true, TEST_SEC_INSECURE },
        { 7, "zstd", true, TEST_SEC_INSECURE }, { 8, "auto", true, TEST_SEC_INSECURE },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        migrate_path(&cases[i]);
}

/* --max-bandwidth over several streams: the first pass (all RAM, while the guest runs)
 * moves at the cap, within 5%. */
static void bandwidth_cap_holds(void **state)
{
    (void)state;
    require_kvm();
    const double cap = 40e6;   /* bytes/s */
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "128M", "--workload", "once", "--fill", "random"));
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "streams", json_object_new_int(3));
    json_object_object_add(a, "max_bandwidth", json_object_new_uint64((uint64_t)cap));
    struct json_object *r = vm_migrate(&src, to, a, 120);
    json_object_put(a);
    print_migration("capped", r);
    assert_string_equal(json_str(r, "status"), "completed");
    struct json_object *pass0 = json_object_array_get_idx(sub(r, "passes"), 0);
    double rate = json_num(pass0, "bytes-transferred") / (json_num(pass0, "time") / 1e3);
    print_message("pass 0: %.1f MB/s against a cap of %.1f MB/s (%+.1f%%)\n", rate / 1e6,
                  cap / 1e6, (rate / cap - 1) * 100);
    assert_true(rate <= cap * 1.05);
    assert_true(rate >= cap * 0.95);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_path),
        cmocka_unit_test(bandwidth_cap_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
