/* Unit tests: a VM's NIC and disk list (src/vmm/device_list.c): the options that fill it,
 * the VM_CONFIG payload that carries it to the destination (a peer's bytes: every field
 * checked), and the destination's choice between the source's list and its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "common/blob.h"
#include "vmm/device_list.h"
#include "wire/format.h"

static struct vs_device_list two(void)
{
    struct vs_device_list l = { 0 };
    assert_int_equal(vs_device_list_add(&l, VS_DEVICE_NIC, "tap=t0,mac=52:54:00:00:00:01"), 0);
    assert_int_equal(vs_device_list_add(&l, VS_DEVICE_DISK, "/srv/d.img,shared"), 0);
    return l;
}

static void test_add_checks_the_spec(void **state)
{
    (void)state;
    struct vs_device_list l = { 0 };
    expect_msg(vs_device_list_add(&l, VS_DEVICE_NIC, ""), "--nic", "empty");
    expect_msg(vs_device_list_add(&l, VS_DEVICE_DISK, "a\tb"), "--disk", "printable");
    char big[VS_DEVICE_SPEC_MAX + 1];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_msg(vs_device_list_add(&l, VS_DEVICE_DISK, big), "--disk", "256 bytes");
    expect_msg(vs_device_list_add(&l, (enum vs_device_kind)9, "x"), "kind 9", NULL);
    for (int i = 0; i < VS_MAX_DEVICES; i++)
        assert_int_equal(vs_device_list_add(&l, VS_DEVICE_NIC, "tap=t"), 0);
    expect_msg(vs_device_list_add(&l, VS_DEVICE_NIC, "tap=t"), "at most 7", NULL);
    assert_int_equal(vs_device_list_count(&l, VS_DEVICE_NIC), VS_MAX_DEVICES);
    assert_int_equal(vs_device_list_count(&l, VS_DEVICE_DISK), 0);
}

static void test_join_puts_nics_first(void **state)
{
    (void)state;
    struct vs_device_list nics = { 0 }, disks = { 0 }, out;
    vs_device_list_add(&disks, VS_DEVICE_DISK, "d0");
    vs_device_list_add(&nics, VS_DEVICE_NIC, "n0");
    vs_device_list_add(&nics, VS_DEVICE_NIC, "n1");
    assert_int_equal(vs_device_list_join(&out, &nics, &disks), 0);
    assert_int_equal(out.nr, 3);
    assert_string_equal(out.d[0].spec, "n0");
    assert_string_equal(out.d[2].spec, "d0");
    assert_int_equal(out.d[2].kind, VS_DEVICE_DISK);
    for (int i = 0; i < 5; i++)
        vs_device_list_add(&disks, VS_DEVICE_DISK, "d");
    expect_msg(vs_device_list_join(&out, &nics, &disks), "2 NICs and 6 disks", NULL);
}

static void test_encode_decode_round_trip(void **state)
{
    (void)state;
    struct vs_device_list l = two(), back;
    struct vs_blob b = { 0 };
    assert_int_equal(vs_device_list_encode(&l, &b), 0);
    assert_true(b.len <= VS_WIRE_MAX_VM_CONFIG);
    assert_int_equal(vs_device_list_decode(b.data, b.len, &back), 0);
    assert_int_equal(back.nr, 2);
    assert_int_equal(back.d[0].kind, VS_DEVICE_NIC);
    assert_string_equal(back.d[0].spec, l.d[0].spec);
    assert_string_equal(back.d[1].spec, "/srv/d.img,shared");
    vs_blob_free(&b);

    struct vs_device_list full = { 0 };   /* the largest list fits the record's bound */
    char spec[VS_DEVICE_SPEC_MAX];
    memset(spec, 'y', sizeof(spec) - 1);
    spec[sizeof(spec) - 1] = '\0';
    for (int i = 0; i < VS_MAX_DEVICES; i++)
        assert_int_equal(vs_device_list_add(&full, VS_DEVICE_DISK, spec), 0);
    assert_int_equal(vs_device_list_encode(&full, &b), 0);
    assert_int_equal(b.len, VS_WIRE_MAX_VM_CONFIG);
    assert_int_equal(vs_device_list_decode(b.data, b.len, &back), 0);
    assert_int_equal(back.nr, VS_MAX_DEVICES);
    vs_blob_free(&b);
}

/* A peer's payload, altered one way at a time: each is refused, naming what is wrong. */
static void test_decode_refuses_hostile_payloads(void **state)
{
    (void)state;
    struct vs_device_list l = two(), out;
    struct vs_blob b = { 0 };
    assert_int_equal(vs_device_list_encode(&l, &b), 0);
    uint8_t p[600];
    assert_true(b.len + 8 <= sizeof(p));
    size_t n = b.len;

    expect_msg(vs_device_list_decode(b.data, 7, &out), "VM_CONFIG", "too short");
    memcpy(p, b.data, n);
    p[0] = 8;                                    /* count beyond the limit */
    expect_msg(vs_device_list_decode(p, n, &out), "VM_CONFIG", "8 devices");
    memcpy(p, b.data, n);
    p[4] = 1;                                    /* reserved */
    expect_msg(vs_device_list_decode(p, n, &out), "reserved", NULL);
    memcpy(p, b.data, n);
    p[8] = 3;                                    /* kind of device 0 */
    expect_msg(vs_device_list_decode(p, n, &out), "unknown kind 3", NULL);
    memcpy(p, b.data, n);
    p[10] = 0xff;                                /* device 0's length past the end */
    expect_msg(vs_device_list_decode(p, n, &out), "runs past", NULL);
    memcpy(p, b.data, n);
    p[10] = 0;                                   /* empty description */
    p[11] = 0;
    expect_msg(vs_device_list_decode(p, n, &out), "VM_CONFIG device 0", "empty");
    memcpy(p, b.data, n);
    p[12] = '\n';                                /* a control character */
    expect_msg(vs_device_list_decode(p, n, &out), "VM_CONFIG device 0", "printable");
    memcpy(p, b.data, n);
    expect_msg(vs_device_list_decode(p, n - 1, &out), "runs past", NULL);
    memcpy(p, b.data, n);
    p[n] = 'z';                                  /* trailing byte */
    expect_msg(vs_device_list_decode(p, n + 1, &out), "1 bytes follow", NULL);
    p[0] = 3;                                    /* a device the payload lacks */
    expect_msg(vs_device_list_decode(p, n, &out), "device 2 of 3", "cut short");
    assert_int_equal(out.nr, 0);                 /* nothing half-decoded is handed on */
    vs_blob_free(&b);
}

static void test_destination_takes_source_or_matching_local(void **state)
{
    (void)state;
    struct vs_device_list src = two(), out, none = { 0 };
    assert_int_equal(vs_device_list_for_destination(&src, NULL, &out), 0);
    assert_string_equal(out.d[1].spec, src.d[1].spec);
    assert_int_equal(vs_device_list_for_destination(&src, &none, &out), 0);
    assert_int_equal(out.nr, 2);

    struct vs_device_list local = { 0 };
    vs_device_list_add(&local, VS_DEVICE_NIC, "tap=other,mac=52:54:00:00:00:01");
    vs_device_list_add(&local, VS_DEVICE_DISK, "/mnt/d.img,shared");
    assert_int_equal(vs_device_list_for_destination(&src, &local, &out), 0);
    assert_string_equal(out.d[0].spec, "tap=other,mac=52:54:00:00:00:01");

    struct vs_device_list wrong = { 0 };
    vs_device_list_add(&wrong, VS_DEVICE_DISK, "/mnt/d.img");
    expect_msg(vs_device_list_for_destination(&src, &wrong, &out), "(nic, disk)", "(disk)");
    expect_msg(vs_device_list_for_destination(&none, &wrong, &out), "(none)", "(disk)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_checks_the_spec),
        cmocka_unit_test(test_join_puts_nics_first),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_decode_refuses_hostile_payloads),
        cmocka_unit_test(test_destination_takes_source_or_matching_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
