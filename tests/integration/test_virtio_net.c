/* Integration: a networked VM moves and stays reachable. Four network namespaces: A and B
 * are the VM's hosts, each with a Linux bridge (brA, brB) and a veth uplink to the shared
 * segment (a bridge in namespace "seg"); C is a client on the segment (198.18.0.100). The
 * VM runs the net workload at 198.18.0.10 with a virtio-net NIC on a TAP of A's bridge; C
 * pings it and sends it UDP echoes every 10 ms (tests/integration/net_probe.c) while it
 * migrates A -> B over a veth of its own (198.19.0.1 -> 198.19.0.2). Afterwards C reaches
 * the VM through B; the replies lost and duplicated are counted (no duplicate allowed),
 * and the RARP and gratuitous ARPs B sends are captured where B's uplink enters the
 * segment. A second test moves the VM within A, where its TAP's name is taken. A third
 * puts two VMs on A in VLANs 10 and 20 (tagged by their NICs; C pings with hand-made
 * 802.1Q frames, as this kernel has no VLAN interfaces): each answers only in its own
 * VLAN, before and after VM 10 moves to B, whose --nic names no VLAN. Every namespace goes
 * away after the group, and every process with its test. */
#include "harness.h"
#include "net_probe.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VM_IP "198.18.0.10"
#define VM_MAC "52:54:00:5e:00:10"
static const uint8_t vm_mac[6] = { 0x52, 0x54, 0x00, 0x5e, 0x00, 0x10 };

struct topology {
    int id;
    char seg[32], a[32], b[32], c[32];
};
static struct topology top;

/* Per test: what its teardown stops, whatever happened. */
static struct vm_proc src, dst, other;
static struct probe prober, capture;
static double probe_started;

/* Host h ("A" or "B"): a bridge br<h>, and a veth from it to the segment bridge. */
static void make_host(const char *ns, const char *h)
{
    char br[16], veth[16];
    snprintf(br, sizeof(br), "br%s", h);
    snprintf(veth, sizeof(veth), "vn%d%s", top.id, h);
    harness_bridge_on_segment(ns, br, veth, top.seg, "brseg");
}

static int topology_up(void **state)
{
    (void)state;
    top.id = (int)getpid();
    snprintf(top.seg, sizeof(top.seg), "vsn%d-seg", top.id);
    snprintf(top.a, sizeof(top.a), "vsn%d-a", top.id);
    snprintf(top.b, sizeof(top.b), "vsn%d-b", top.id);
    snprintf(top.c, sizeof(top.c), "vsn%d-c", top.id);
    harness_sh("ip netns add %s && ip netns add %s && ip netns add %s && ip netns add %s", top.seg,
       top.a, top.b, top.c);
    harness_sh("for n in %s %s %s %s; do ip -n $n link set lo up; done", top.seg, top.a, top.b, top.c);
    harness_sh("ip -n %s link add brseg type bridge && ip -n %s link set brseg up", top.seg, top.seg);
    make_host(top.a, "A");
    make_host(top.b, "B");
    harness_sh("ip link add vn%dC type veth peer name vn%dCs && ip link set vn%dC netns %s && "
       "ip link set vn%dCs netns %s", top.id, top.id, top.id, top.c, top.id, top.seg);
    harness_sh("ip -n %s addr add 198.18.0.100/24 dev vn%dC && ip -n %s link set vn%dC up && "
       "ip -n %s link set vn%dCs master brseg up", top.c, top.id, top.c, top.id, top.seg, top.id);
    /* The migration's own link. */
    harness_sh("ip link add vn%dMa type veth peer name vn%dMb && ip link set vn%dMa netns %s && "
       "ip link set vn%dMb netns %s", top.id, top.id, top.id, top.a, top.id, top.b);
    harness_sh("ip -n %s addr add 198.19.0.1/24 dev vn%dMa && ip -n %s link set vn%dMa up", top.a,
       top.id, top.a, top.id);
    harness_sh("ip -n %s addr add 198.19.0.2/24 dev vn%dMb && ip -n %s link set vn%dMb up", top.b,
       top.id, top.b, top.id);
    return 0;
}

static int topology_down(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "for n in %s %s %s %s; do ip netns del $n 2>/dev/null; done; true",
             top.seg, top.a, top.b, top.c);
    if (system(cmd) != 0)
        print_message("could not remove the namespaces of %d\n", top.id);
    return 0;
}

static int stop_all(void **state)
{
    (void)state;
    probe_kill(&prober);
    probe_kill(&capture);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
    vm_proc_stop(&other);
    return 0;
}

static void start_vm_on_a(void)
{
    vm_proc_start_in(&src, top.a, ARGS("--mem", "64M", "--workload", "net", "--append",
                                       "ip=" VM_IP, "--nic", "tap=vm0,mac=" VM_MAC ",bridge=brA"));
    probe_start(&prober, top.c, VM_IP, 10);
    probe_started = now_s();
    double deadline = now_s() + 60;
    while (probe_replies(&prober) < 20 && now_s() < deadline)
        usleep(50000);
    if (probe_replies(&prober) < 20)
        fail_msg("the VM on A answered %u probes from C in 60 s; serial:\n%s",
                 probe_replies(&prober), vm_serial_log(&src));
}

/* The first NIC of a status reply (borrowed). */
static struct json_object *first_nic(struct json_object *status)
{
    struct json_object *nics = json_member(status, "nics");
    assert_true(json_object_array_length(nics) >= 1);
    return json_object_array_get_idx(nics, 0);
}

static void migrate_to(const char *host)
{
    print_message("migration starts %.0f ms after the first probe\n",
                  (now_s() - probe_started) * 1000);
    char to[64];
    snprintf(to, sizeof(to), "%s:%d", host, dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 120);
    print_migration("net", r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
}

/* After the move, C must be answered from the new host: probes keep coming back. */
static void expect_replies_after_the_move(void)
{
    uint32_t at_move = probe_replies(&prober);
    double deadline = now_s() + 30;
    while (probe_replies(&prober) < at_move + 100 && now_s() < deadline)
        usleep(50000);
    if (probe_replies(&prober) < at_move + 100)
        fail_msg("after the move C got %u replies in 30 s; destination serial:\n%s",
                 probe_replies(&prober) - at_move, vm_serial_log(&dst));
    sleep(1);   /* the announcement rounds end 0.8 s after the resume */
}

static void check_probes(const struct probe_result *p)
{
    print_message("C -> VM: ping %u sent, %u answered, %u lost once up, %u duplicated; UDP %u "
                  "sent, %u echoed, %u lost once up, %u duplicated; longest silence %.1f ms "
                  "(from +%.0f ms); %u replies in the last second\n", p->ping_sent,
                  p->ping_replied, p->ping_lost, p->ping_dups, p->udp_sent, p->udp_replied,
                  p->udp_lost, p->udp_dups, p->max_gap_ms, p->max_gap_at_ms,
                  p->replies_last_second);
    assert_int_equal(p->ping_dups, 0);
    assert_int_equal(p->udp_dups, 0);
    /* Reachability after the move was checked as it happened (100 replies through the new
     * host), and the VM still answers at the end. Losses are printed, not bounded: 200
     * probes/s to an emulated guest on a host loaded to 10 on 2 cores lost 53% (the guest
     * could not drain its TAP), so a bound measured the load. */
    assert_true(p->max_gap_ms < 10000);
    assert_true(p->replies_last_second > 0);
}

static void check_announced(struct json_object *nic)
{
    struct json_object *rounds = json_member(nic, "announces");
    assert_int_equal(json_object_array_length(rounds), 5);
    double last = -1;
    for (size_t i = 0; i < 5; i++) {
        struct json_object *e = json_object_array_get_idx(rounds, i);
        assert_true(json_object_get_boolean(json_member(e, "rarp")));
        assert_true(json_object_get_boolean(json_member(e, "garp")));
        assert_true(json_object_get_boolean(json_member(e, "guest")));
        double at = json_num(e, "at_ms");
        print_message("announce round %zu at +%.1f ms\n", i + 1, at);
        assert_true(at > last);
        last = at;
    }
    assert_true(last >= 800 - 1);   /* 0, 50, 200, 450, 800 ms: never earlier */
    /* The guest acknowledges each request it handles; a slow guest handles two rounds'
     * requests at once (the status bit was already set), so at least one, at most 5. */
    double acks = json_num(nic, "announce_acks");
    print_message("the guest acknowledged %.0f announcement requests\n", acks);
    assert_true(acks >= 1 && acks <= 5);
}

/* The destination's status once its NIC has made its 5 rounds and the guest acknowledged
 * the last request (caller puts it). */
static struct json_object *wait_announced(struct vm_proc *p)
{
    double deadline = now_s() + 20;
    for (;;) {
        struct json_object *st = vm_cmd(p, "status", NULL);
        struct json_object *nic = first_nic(st);
        if ((json_object_array_length(json_member(nic, "announces")) == 5 &&
             json_num(nic, "announce_acks") >= 1) || now_s() > deadline)
            return st;
        json_object_put(st);
        usleep(100000);
    }
}

static void ping_and_udp_follow_the_vm_to_b(void **state)
{
    (void)state;
    start_vm_on_a();
    char report[96];
    snprintf(report, sizeof(report), "/tmp/vmshift-net-report-%d.json", top.id);
    vm_receiver_start(&dst, "198.19.0.2", top.b, ARGS("--nic", "tap=vm0,mac=" VM_MAC ",bridge=brB",
                                                      "--report", report));
    char port_of_b[32];
    snprintf(port_of_b, sizeof(port_of_b), "vn%dBs", top.id);   /* B's uplink, segment side */
    capture_start(&capture, top.seg, port_of_b, vm_mac);
    migrate_to("198.19.0.2");
    expect_replies_after_the_move();
    struct json_object *st = wait_announced(&dst);   /* the 5 rounds went out */
    struct probe_result p;
    struct capture_result cap;
    probe_stop(&prober, &p);
    capture_stop(&capture, &cap);
    check_probes(&p);
    print_message("from B onto the segment: %u RARP, %u gratuitous ARP (of %u frames)\n",
                  cap.rarp, cap.garp, cap.frames);
    assert_int_equal(cap.rarp, 5);     /* one per round, sent by vmshift from B's TAP */
    assert_true(cap.garp >= 5);        /* vmshift's and the guest's */

    struct json_object *nic = first_nic(st);
    assert_string_equal(json_str(nic, "tap"), "vm0");
    assert_string_equal(json_str(nic, "bridge"), "brB");
    assert_string_equal(json_str(nic, "mac"), VM_MAC);
    assert_string_equal(json_str(nic, "ip"), VM_IP);
    check_announced(nic);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "migrated");
    json_object_put(st);
    /* The destination's migration report, written when it ends, lists the rounds too. */
    vm_proc_stop(&dst);
    struct json_object *rep = json_object_from_file(report);
    unlink(report);
    assert_non_null(rep);
    assert_int_equal(json_object_array_length(json_member(rep, "announces")), 5);
    json_object_put(rep);
}

static void a_taken_tap_name_gets_a_fresh_one(void **state)
{
    (void)state;
    start_vm_on_a();
    /* The same host: the source's TAP vm0 is taken; the NIC comes from the source's spec. */
    vm_receiver_start(&dst, "198.19.0.1", top.a, NULL);
    migrate_to("198.19.0.1");
    expect_replies_after_the_move();
    struct probe_result p;
    probe_stop(&prober, &p);
    check_probes(&p);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    struct json_object *nic = first_nic(st);
    print_message("the destination's TAP: %s\n", json_str(nic, "tap"));
    assert_non_null(strstr(json_str(nic, "tap"), "vstap"));
    assert_string_equal(json_str(nic, "bridge"), "brA");
    assert_string_equal(json_str(nic, "mac"), VM_MAC);
    assert_true(json_num(nic, "rx_frames") > 0);
    json_object_put(st);
    /* Both TAPs are ports of brA until the source ends; then only the new one. */
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip -n %s link show vm0 >/dev/null 2>&1", top.a);
    assert_int_equal(system(cmd), 0);
    vm_proc_stop(&src);
    assert_int_not_equal(system(cmd), 0);
}

/* Pings from C in VLAN vid (0: untagged) to a VM: the replies that came back in it. */
static uint32_t ping_in_vlan(const uint8_t mac[6], const char *ip, uint16_t vid, unsigned count)
{
    char ifname[32];
    snprintf(ifname, sizeof(ifname), "vn%dC", top.id);
    struct tagged_ping t = { .netns = top.c, .ifname = ifname, .src_ip = "198.18.1.100",
                             .dst_ip = ip, .vid = vid };
    memcpy(t.dst_mac, mac, 6);
    uint32_t wrong = 0, replies = tagged_ping(&t, count, 10, &wrong);
    assert_int_equal(wrong, 0);   /* nothing ever answers in another VLAN */
    return replies;
}

/* A VM answers in its VLAN: at least 5 replies, in rounds of 20 pings until then (a
 * loaded host loses some, and a guest starved of CPU answers late), for at most ~30 rounds. */
static void expect_answers_in_vlan(const uint8_t mac[6], const char *ip, uint16_t vid)
{
    uint32_t got = 0;
    for (int round = 0; round < 30 && got < 5; round++)
        got += ping_in_vlan(mac, ip, vid, 20);
    if (got < 5)
        fail_msg("%s answered %u pings in VLAN %u, expected at least 5", ip, got, vid);
}

/* The VLANs' reachability from C: VM 10 only in VLAN 10, VM 20 only in VLAN 20. */
static void expect_vlans_isolated(const uint8_t mac10[6], const uint8_t mac20[6])
{
    expect_answers_in_vlan(mac10, "198.18.1.10", 10);
    expect_answers_in_vlan(mac20, "198.18.1.20", 20);
    assert_int_equal(ping_in_vlan(mac20, "198.18.1.20", 10, 20), 0);
    assert_int_equal(ping_in_vlan(mac10, "198.18.1.10", 20, 20), 0);
    assert_int_equal(ping_in_vlan(mac10, "198.18.1.10", 0, 20), 0);
}

static void vlans_isolate_and_move_with_the_vm(void **state)
{
    (void)state;
    static const uint8_t mac10[6] = { 0x52, 0x54, 0, 0x5e, 0x10, 0x10 };
    static const uint8_t mac20[6] = { 0x52, 0x54, 0, 0x5e, 0x20, 0x20 };
    probe_started = now_s();
    vm_proc_start_in(&src, top.a, ARGS("--mem", "32M", "--workload", "net", "--append",
                                       "ip=198.18.1.10", "--nic",
                                       "tap=v10,mac=52:54:00:5e:10:10,bridge=brA,vlan=10"));
    vm_proc_start_in(&other, top.a, ARGS("--mem", "32M", "--workload", "net", "--append",
                                         "ip=198.18.1.20", "--nic",
                                         "tap=v20,mac=52:54:00:5e:20:20,bridge=brA,vlan=20"));
    double deadline = now_s() + 60;
    while (ping_in_vlan(mac10, "198.18.1.10", 10, 5) + ping_in_vlan(mac20, "198.18.1.20", 20, 5) < 10 &&
           now_s() < deadline)
        usleep(200000);
    expect_vlans_isolated(mac10, mac20);
    /* VM 10 moves to B; B's spec names no VLAN: the VM keeps its own. */
    vm_receiver_start(&dst, "198.19.0.2", top.b, ARGS("--nic", "tap=v10,mac=52:54:00:5e:10:10,bridge=brB"));
    migrate_to("198.19.0.2");
    deadline = now_s() + 30;
    while (ping_in_vlan(mac10, "198.18.1.10", 10, 5) < 4 && now_s() < deadline)
        usleep(200000);
    expect_vlans_isolated(mac10, mac20);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    struct json_object *nic = first_nic(st);
    assert_int_equal(json_num(nic, "vlan"), 10);
    assert_string_equal(json_str(nic, "bridge"), "brB");
    assert_true(json_num(nic, "rx_filtered") > 0);   /* VLAN 20's pings and the untagged */
    json_object_put(st);
}

#define BLAST_PAYLOAD 1400
#define BLAST_FRAME (BLAST_PAYLOAD + 42)   /* + UDP, IPv4, Ethernet headers */
/* C offers 1.5 times a NIC's limit: enough that a missing limit shows (+50%), little enough
 * that an emulated guest on a loaded host still echoes what the limit lets through (at 3x,
 * a guest starved by a load of 13 on 2 cores echoed 21% of its limit). */
#define OFFERED(limit) ((limit) * 3 / 2)

/* Wait until C gets answers from ip. */
static void wait_reachable(const char *ip)
{
    struct probe p = { 0 };
    struct probe_result r;
    probe_start(&p, top.c, ip, 20);
    double deadline = now_s() + 60;
    while (probe_replies(&p) < 10 && now_s() < deadline)
        usleep(50000);
    probe_stop(&p, &r);
    if (r.ping_replied + r.udp_replied < 10)
        fail_msg("%s did not answer C within 60 s", ip);
}

/* The rate (frame bytes/s) a blast's echoes came back at (by the kernel's arrival times),
 * checked against the limit: at most 5% above it, and at least a quarter of it (the limit
 * does not starve the NIC). Below the limit is the emulated guest's and the loaded host's
 * doing: a NIC I/O thread woken late loses what its 10 ms bucket cannot hold, a guest whose
 * 16 transmit buffers all wait drops its echo, a starved client drops what overflows its
 * socket (measured: -0% on a quiet host, down to -56% with other tests running);
 * unit_net_spec checks the bucket's own accuracy. */
static void expect_rate(const char *what, const struct blast_result *b, double limit,
                        struct vm_proc *vm)
{
    double rate = b->echoed_in_window * (double)BLAST_FRAME / b->window_s;
    print_message("%s: %u datagrams sent, %u echoed; %.0f bytes/s in the window (limit %.0f, "
                  "%+.1f%%)\n", what, b->sent, b->echoed, rate, limit, (rate / limit - 1) * 100);
    if (rate < limit * 0.90) {
        struct json_object *st = vm_cmd(vm, "status", NULL);
        print_message("its NIC: %s\nits guest: %s\n", json_object_to_json_string(
                      json_member(st, "nics")), json_object_to_json_string(json_member(st, "guest")));
        json_object_put(st);
    }
    assert_true(rate <= limit * 1.05);
    assert_true(rate >= limit * 0.25);
}

static void rates_hold_and_move_with_the_vm(void **state)
{
    (void)state;
    probe_started = now_s();
    /* 200 and 600 kbit/s: the ratio of the 2 and 6 Gbit/s of the issue, at what an emulated
     * guest can answer (52 echoes a second of 1442-byte frames). */
    vm_proc_start_in(&src, top.a, ARGS("--mem", "32M", "--workload", "net", "--append",
                                       "ip=198.18.0.12", "--nic",
                                       "tap=r2,mac=52:54:00:5e:00:12,bridge=brA,rate=600kbit"));
    vm_proc_start_in(&other, top.a, ARGS("--mem", "32M", "--workload", "net", "--append",
                                         "ip=198.18.0.11", "--nic",
                                         "tap=r1,mac=52:54:00:5e:00:11,bridge=brA,rate=200kbit"));
    wait_reachable("198.18.0.11");
    wait_reachable("198.18.0.12");
    struct probe b1 = { 0 }, b2 = { 0 };
    struct blast_result r1, r2;
    udp_blast_start(&b1, top.c, "198.18.0.11", BLAST_PAYLOAD, OFFERED(25000), 4);
    udp_blast_start(&b2, top.c, "198.18.0.12", BLAST_PAYLOAD, OFFERED(75000), 4);
    udp_blast_wait(&b1, &r1);
    udp_blast_wait(&b2, &r2);
    expect_rate("VM 1, 200 kbit/s, on A", &r1, 25000, &other);
    expect_rate("VM 2, 600 kbit/s, on A", &r2, 75000, &src);
    /* VM 2 moves to B, whose --nic names no rate: the VM keeps its own. */
    vm_receiver_start(&dst, "198.19.0.2", top.b, ARGS("--nic", "tap=r2,mac=52:54:00:5e:00:12,bridge=brB"));
    migrate_to("198.19.0.2");
    wait_reachable("198.18.0.12");
    udp_blast_start(&b2, top.c, "198.18.0.12", BLAST_PAYLOAD, OFFERED(75000), 4);
    udp_blast_wait(&b2, &r2);
    expect_rate("VM 2 on B", &r2, 75000, &dst);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    struct json_object *nic = first_nic(st);
    assert_int_equal(json_num(nic, "rate_bytes_per_second"), 75000);
    assert_true(json_num(nic, "rx_throttled") > 0);
    json_object_put(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(ping_and_udp_follow_the_vm_to_b, stop_all),
        cmocka_unit_test_teardown(a_taken_tap_name_gets_a_fresh_one, stop_all),
        cmocka_unit_test_teardown(vlans_isolate_and_move_with_the_vm, stop_all),
        cmocka_unit_test_teardown(rates_hold_and_move_with_the_vm, stop_all),
    };
    return cmocka_run_group_tests(tests, topology_up, topology_down);
}
