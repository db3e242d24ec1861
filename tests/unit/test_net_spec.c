/* Unit tests: `--nic SPEC` parsing (virtio_net_spec.c), with errors that name the field
 * and the value; the announcement schedule, frames and address learning (net_announce.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "vmm/virtio/net_announce.h"
#include "vmm/virtio/net_rate.h"
#include "vmm/virtio/net_vlan.h"
#include "vmm/virtio/virtio_net_spec.h"

static void good_specs(void **state)
{
    (void)state;
    struct vs_net_spec s;
    assert_int_equal(vs_net_spec_parse("tap=vm0,mac=52:54:00:AB:cd:01,bridge=br-a", &s), 0);
    assert_string_equal(s.tap, "vm0");
    assert_string_equal(s.bridge, "br-a");
    const uint8_t mac[6] = { 0x52, 0x54, 0, 0xab, 0xcd, 1 };
    assert_memory_equal(s.mac, mac, 6);
    assert_false(s.has_ip);
    assert_int_equal(s.announce.initial_ms, 50);
    assert_int_equal(s.announce.max_ms, 550);
    assert_int_equal(s.announce.rounds, 5);
    assert_int_equal(s.announce.step_ms, 100);
    assert_int_equal(s.vlan, 0);
    assert_int_equal(vs_net_spec_parse("tap=vm0,mac=52:54:00:AB:cd:01,bridge=br-a,vlan=4094", &s), 0);
    assert_int_equal(s.vlan, 4094);
    assert_int_equal(s.rate, 0);
    assert_int_equal(vs_net_spec_parse("tap=vm0,mac=52:54:00:AB:cd:01,rate=2gbit", &s), 0);
    assert_int_equal(s.rate, 250000000);   /* bytes per second */
    assert_int_equal(vs_net_spec_parse("tap=vm0,mac=52:54:00:AB:cd:01,rate=10M", &s), 0);
    assert_int_equal(s.rate, 10 << 20);
    assert_int_equal(vs_net_spec_parse("mac=02:00:00:00:00:01,tap=t,ip=198.18.1.20,"
                                       "announce-rounds=0,announce-initial=10", &s), 0);
    assert_string_equal(s.bridge, "");
    assert_true(s.has_ip);
    assert_int_equal(s.ip[0], 198);
    assert_int_equal(s.ip[3], 20);
    assert_int_equal(s.announce.rounds, 0);
    assert_int_equal(s.announce.initial_ms, 10);
}

static void bad_specs_name_the_field(void **state)
{
    (void)state;
    struct vs_net_spec s;
    expect_msg(vs_net_spec_parse("tap=t0,mac=zz", &s), "mac 'zz'", "MAC address");
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34", &s), "mac '52:54:00:12:34'", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=01:00:5e:00:00:01", &s), "multicast", "unicast");
    expect_msg(vs_net_spec_parse("tap=t0,mac=00:00:00:00:00:00", &s), "all zero", NULL);
    expect_msg(vs_net_spec_parse("mac=52:54:00:12:34:56", &s), "tap=NAME is missing", NULL);
    expect_msg(vs_net_spec_parse("tap=t0", &s), "mac=MAC is missing", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,colour=red", &s),
               "'colour' is not a NIC field", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,tap=t1,mac=52:54:00:12:34:56", &s), "tap is given twice",
               NULL);
    expect_msg(vs_net_spec_parse("tap=0123456789abcdef,mac=52:54:00:12:34:56", &s),
               "tap '0123456789abcdef'", "interface name");
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,ip=198.18.0.300", &s),
               "ip '198.18.0.300'", "IPv4");
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,ip=+1.2.3.4", &s), "ip '+1.2.3.4'",
               NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,announce-rounds=5000", &s),
               "announce-rounds '5000'", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,announce-step=-1", &s),
               "announce-step '-1'", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,", &s), "ends with ','", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,bridge", &s), "'bridge' is not "
               "KEY=VALUE", NULL);


    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,vlan=5000", &s), "vlan '5000'", NULL);
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,rate=fast", &s), "rate 'fast'",
               "2gbit");
    expect_msg(vs_net_spec_parse("tap=t0,mac=52:54:00:12:34:56,rate=100", &s), "rate '100'", NULL);
}

static void announce_schedule_as_qemu(void **state)
{
    (void)state;
    struct vs_net_announce_params p = { 50, 550, 5, 100 };
    assert_int_equal(vs_net_announce_delay_ms(&p, 1), 50);
    assert_int_equal(vs_net_announce_delay_ms(&p, 2), 150);
    assert_int_equal(vs_net_announce_delay_ms(&p, 4), 350);
    assert_int_equal(vs_net_announce_delay_ms(&p, 6), 550);   /* capped at max */
    assert_int_equal(vs_net_announce_delay_ms(&p, 60), 550);
}

static void announce_frames(void **state)
{
    (void)state;
    const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 }, ip[4] = { 198, 18, 0, 10 };
    uint8_t f[VS_ETH_MIN_FRAME];
    assert_int_equal(vs_net_rarp_frame(f, mac), 60);
    static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    assert_memory_equal(f, bcast, 6);
    assert_memory_equal(f + 6, mac, 6);
    assert_int_equal(f[12], 0x80);
    assert_int_equal(f[13], 0x35);
    assert_int_equal(f[14 + 7], 3);                /* reverse request */
    assert_memory_equal(f + 14 + 8, mac, 6);       /* sender hardware address */
    assert_memory_equal(f + 14 + 18, mac, 6);      /* target hardware address */
    assert_int_equal(vs_net_garp_frame(f, mac, ip), 60);
    assert_int_equal(f[13], 0x06);
    assert_int_equal(f[14 + 7], 1);                /* request */
    assert_memory_equal(f + 14 + 14, ip, 4);       /* sender IP */
    assert_memory_equal(f + 14 + 24, ip, 4);       /* target IP: the same */
    /* A gratuitous ARP the guest sends teaches its address. */
    uint8_t got[4] = { 0 };
    assert_true(vs_net_learn_ip(f, sizeof(f), mac, got));
    assert_memory_equal(got, ip, 4);
}

static void learning_takes_only_the_guests_own_addresses(void **state)
{
    (void)state;
    const uint8_t mac[6] = { 0x52, 0x54, 0, 1, 2, 3 }, other[6] = { 2, 0, 0, 0, 0, 1 };
    uint8_t f[VS_ETH_MIN_FRAME], ip[4] = { 0 };
    vs_net_garp_frame(f, other, (const uint8_t[4]){ 198, 18, 0, 99 });
    assert_false(vs_net_learn_ip(f, sizeof(f), mac, ip));      /* another MAC's */
    vs_net_garp_frame(f, mac, (const uint8_t[4]){ 0, 0, 0, 0 });
    assert_false(vs_net_learn_ip(f, sizeof(f), mac, ip));      /* no address */
    vs_net_garp_frame(f, mac, (const uint8_t[4]){ 198, 18, 0, 5 });
    assert_false(vs_net_learn_ip(f, 30, mac, ip));             /* cut short */
    /* An IPv4 packet from the guest: its source address. */
    memset(f, 0, sizeof(f));
    memcpy(f + 6, mac, 6);
    f[12] = 0x08;
    f[14] = 0x45;
    f[26] = 198, f[27] = 19, f[28] = 1, f[29] = 2;
    assert_true(vs_net_learn_ip(f, sizeof(f), mac, ip));
    assert_int_equal(ip[1], 19);
    f[26] = 224;   /* multicast source: never an address of the guest */
    assert_false(vs_net_learn_ip(f, sizeof(f), mac, ip));
    for (size_t len = 0; len < sizeof(f); len++)   /* any length is safe */
        vs_net_learn_ip(f, len, mac, ip);
}

static void vlan_tags(void **state)
{
    (void)state;
    uint8_t f[64] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x06, 0xaa, 0xbb };
    uint8_t orig[16];
    memcpy(orig, f, sizeof(orig));
    assert_int_equal(vs_net_vlan_tag(f, 16, 4094), 20);
    assert_memory_equal(f, orig, 12);
    assert_int_equal(f[12], 0x81);
    assert_int_equal(f[13], 0x00);
    assert_int_equal(f[14], 0x0f);
    assert_int_equal(f[15], 0xfe);
    assert_memory_equal(f + 16, orig + 12, 4);
    assert_int_equal(vs_net_vlan_untag(f, 20, 10), 0);      /* another VLAN: left alone */
    assert_int_equal(f[12], 0x81);
    f[14] |= 0xe0;                                           /* a priority does not matter */
    assert_int_equal(vs_net_vlan_untag(f, 20, 4094), 16);
    assert_memory_equal(f, orig, 16);
    assert_int_equal(vs_net_vlan_untag(f, 16, 4094), 0);    /* untagged */
    for (size_t len = 0; len < 18; len++)                    /* any length is safe */
        vs_net_vlan_untag(f, len, 4094);
}

static void token_bucket_holds_the_rate(void **state)
{
    (void)state;
    struct vs_token_bucket b;
    const uint64_t s = 1000000000ull;
    vs_tb_init(&b, 125000, 0);   /* 1 Mbit/s: a 10 ms bucket is less than two frames */
    assert_true(b.burst == VS_TB_MIN_BURST);
    /* Full-size frames as fast as allowed for 10 s: the bytes that went. */
    uint64_t now = 0, sent = 0;
    while (now < 10 * s) {
        uint64_t wait = vs_tb_wait(&b, now);
        if (wait) {
            now += wait;
            continue;
        }
        vs_tb_charge(&b, 1514);
        sent += 1514;
    }
    assert_true(sent >= 10 * 125000 && sent <= 10 * 125000 + VS_TB_MIN_BURST + 1514);
    /* A frame larger than the bucket still goes; the debt is paid in time. */
    vs_tb_init(&b, 1000, 0);
    assert_int_equal(vs_tb_wait(&b, 0), 0);
    vs_tb_charge(&b, 65000);
    uint64_t wait = vs_tb_wait(&b, 0);
    assert_true(wait > 61 * s && wait < 63 * s);   /* (65000 - 3072) / 1000 bytes/s */
    assert_int_equal(vs_tb_wait(&b, wait), 0);
    /* No limit: never a wait. */
    vs_tb_init(&b, 0, 0);
    vs_tb_charge(&b, 1u << 30);
    assert_int_equal(vs_tb_wait(&b, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_specs),
        cmocka_unit_test(bad_specs_name_the_field),
        cmocka_unit_test(announce_schedule_as_qemu),
        cmocka_unit_test(announce_frames),
        cmocka_unit_test(learning_takes_only_the_guests_own_addresses),
        cmocka_unit_test(vlan_tags),
        cmocka_unit_test(token_bucket_holds_the_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
