/* Integration: a VM streams to a client while it moves A -> B -> A. The harness's test
 * hosts A and B (namespaces joined by the migration's veth, 198.18.0.1 and .2) each get a
 * Linux bridge (brA, brB) with a veth uplink to a shared segment (a bridge in namespace
 * "seg"), as in test_virtio_net.c; C is a client on the segment (198.18.7.100) running the
 * collector (net_collector.c) on UDP port 9000. The VM runs the net-stream workload at
 * 198.18.7.10 with its NIC on a TAP of A's bridge, sending numbered datagrams at RATE per
 * second to C; it moves to B and back to A while streaming. Checked: no datagram
 * duplicated or reordered, the stream resumes after each move (from B, then from A
 * again), the loss stays within what the blackouts allow (RATE x (downtime + a generous
 * margin) per move), and the guest's own sent counter equals what C received plus what
 * it lost; then `set-rate` slows it. Meanwhile C pings the VM and sends it UDP echoes every 50 ms (net_probe.c):
 * the streaming guest keeps answering, from both hosts, never twice. The figures (lost,
 * longest gaps next to the downtimes) are printed. */
#include "harness.h"
#include "net_collector.h"
#include "net_probe.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VM_IP "198.18.7.10"
#define VM_MAC "52:54:00:5e:07:10"
#define PORT 9000
#define RATE 300                        /* datagrams per second */
#define MARGIN_S 2.0                    /* per move, beyond its downtime: the announce, a
                                           loaded host's late TAP and bridge */
#define MAX_BURST 16                    /* the guest's datagrams per wake-up (net_stream.c) */

struct segment {
    int id;
    char seg[32], c[32];
};

static struct test_hosts hosts;
static struct segment net;
static struct vm_proc on_a, on_b, back_on_a;
static struct collector coll;
static struct probe prober;

/* Wall-clock spans of the moves (CLOCK_REALTIME ms, as the collector's stamps). */
struct span {
    double from_ms, to_ms;
};
static struct span moves[2];

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Host namespace ns gets bridge br<h> and a veth from it to the segment bridge. */
static void bridge_host(const char *ns, const char *h)
{
    char br[16], veth[16];
    snprintf(br, sizeof(br), "br%s", h);
    snprintf(veth, sizeof(veth), "vt%d%s", net.id, h);
    harness_bridge_on_segment(ns, br, veth, net.seg, "brseg");
}

static int topology_up(void **state)
{
    (void)state;
    test_hosts_create(&hosts, NULL);
    net.id = (int)getpid();
    snprintf(net.seg, sizeof(net.seg), "vst%d-seg", net.id);
    snprintf(net.c, sizeof(net.c), "vst%d-c", net.id);
    harness_sh("ip netns add %s && ip netns add %s", net.seg, net.c);
    harness_sh("ip -n %s link set lo up && ip -n %s link set lo up", net.seg, net.c);
    harness_sh("ip -n %s link add brseg type bridge && ip -n %s link set brseg up", net.seg, net.seg);
    bridge_host(hosts.a, "A");
    bridge_host(hosts.b, "B");
    harness_sh("ip link add vt%dC type veth peer name vt%dCs && ip link set vt%dC netns %s && "
       "ip link set vt%dCs netns %s", net.id, net.id, net.id, net.c, net.id, net.seg);
    harness_sh("ip -n %s addr add 198.18.7.100/24 dev vt%dC && ip -n %s link set vt%dC up && "
       "ip -n %s link set vt%dCs master brseg up", net.c, net.id, net.c, net.id, net.seg, net.id);
    return 0;
}

static int topology_down(void **state)
{
    (void)state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; true",
             net.seg, net.c);
    if (system(cmd) != 0)
        print_message("could not remove the namespaces of %d\n", net.id);
    test_hosts_destroy(&hosts);
    return 0;
}

static int stop_all(void **state)
{
    (void)state;
    collector_kill(&coll);
    probe_kill(&prober);
    vm_proc_stop(&on_a);
    vm_proc_stop(&on_b);
    vm_proc_stop(&back_on_a);
    return 0;
}

static uint64_t received(void)
{
    struct stream_stats s;
    collector_snapshot(&coll, &s);
    return s.received;
}

/* The stream comes (again) from vm: `more` datagrams beyond what C had, within 60 s. */
static void expect_stream_grows(struct vm_proc *vm, uint64_t more, const char *where)
{
    uint64_t at = received();
    double deadline = now_s() + 60;
    while (received() < at + more && now_s() < deadline)
        usleep(50000);
    if (received() < at + more)
        fail_msg("the stream %s: C received %llu datagrams in 60 s, expected %llu; serial:\n%s",
                 where, (unsigned long long)(received() - at), (unsigned long long)more,
                 vm_serial_log(vm));
    print_message("the stream %s: C has %llu datagrams\n", where,
                  (unsigned long long)received());
}

/* Move the VM from `from` to a new receiver `to` in netns (its NIC on bridge br): the
 * migration's downtime, ms. */
static double move(struct vm_proc *from, struct vm_proc *to, const char *netns,
                   const char *addr, const char *br, const char *label, struct span *span)
{
    char nic[96], dest[64];
    snprintf(nic, sizeof(nic), "tap=st0,mac=" VM_MAC ",bridge=%s", br);
    vm_receiver_start(to, addr, netns, ARGS("--nic", nic));
    snprintf(dest, sizeof(dest), "%s:%d", addr, to->port);
    span->from_ms = wall_ms();
    struct json_object *r = vm_migrate(from, dest, NULL, 120);
    span->to_ms = wall_ms();
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s: %s", label, json_str(r, "status"), json_str(r, "error"));
    double downtime = json_num(r, "downtime");
    json_object_put(r);
    vm_proc_wait_ctl(to, 30);
    return downtime;
}

static void print_stats(const struct stream_stats *s)
{
    print_message("C: %llu received, %llu lost, %llu duplicated, %llu reordered, %llu foreign, "
                  "%llu malformed; numbers 0..%llu; seed %llu\n",
                  (unsigned long long)s->received, (unsigned long long)s->lost,
                  (unsigned long long)s->duplicated, (unsigned long long)s->reordered,
                  (unsigned long long)s->foreign, (unsigned long long)s->malformed,
                  (unsigned long long)s->highest, (unsigned long long)s->seed);
    for (int i = 0; i < 2; i++)
        print_message("  move %d: migration from +%.0f ms to +%.0f ms\n", i + 1,
                      moves[i].from_ms - s->first_ms, moves[i].to_ms - s->first_ms);
    for (int i = 0; i < COLLECTOR_GAPS && s->gaps[i].ms > 0; i++)
        print_message("  gap %d: %.1f ms, from +%.0f ms\n", i + 1, s->gaps[i].ms,
                      s->gaps[i].at_ms - s->first_ms);
}

/* vmshift ctl set-rate slows the stream: at 20/s, 3 s bring some datagrams, far fewer
 * than RATE would (a loaded host only makes the guest slower). */
static void set_rate_slows_the_stream(struct vm_proc *vm)
{
    struct json_object *args = json_object_new_object();
    json_object_object_add(args, "rate", json_object_new_int(20));
    json_object_put(vm_cmd(vm, "set-rate", args));
    json_object_put(args);
    usleep(500000);   /* the guest reads the override every 100 ms */
    uint64_t at = received();
    sleep(3);
    uint64_t got = received() - at;
    print_message("at set-rate 20/s: %llu datagrams in 3 s\n", (unsigned long long)got);
    assert_true(got > 0);
    assert_true(got < RATE);
}

/* The guest's counters, once it stopped sending (its VM paused): sent, tx errors. */
static void guest_counters(struct vm_proc *vm, uint64_t *sent, uint64_t *tx_errors,
                           uint64_t *guest_gap_us)
{
    json_object_put(vm_cmd(vm, "pause", NULL));
    usleep(500000);   /* the last datagrams reach C */
    struct json_object *st = vm_cmd(vm, "status", NULL);
    struct json_object *cpu0 = json_object_array_get_idx(
        json_member(json_member(st, "guest"), "per_vcpu"), 0);
    assert_string_equal(guest_str(st, "workload"), "net-stream");
    assert_int_equal(guest_u64(st, "errors"), 0);
    *sent = guest_u64(st, "passes");
    *tx_errors = (uint64_t)json_num(cpu0, "generation");
    *guest_gap_us = (uint64_t)json_num(cpu0, "max_gap_us");
    json_object_put(st);
}

static void stream_survives_a_round_trip(void **state)
{
    (void)state;
    char params[128];
    snprintf(params, sizeof(params), "ip=" VM_IP " peer=198.18.7.100:%d seed=%d", PORT, net.id);
    collector_start(&coll, net.c, PORT);
    vm_proc_start_in(&on_a, hosts.a, ARGS("--mem", "32M", "--workload", "net-stream", "--rate",
                                          "300", "--append", params, "--nic",
                                          "tap=st0,mac=" VM_MAC ",bridge=brA"));
    expect_stream_grows(&on_a, RATE, "from A");
    probe_start(&prober, net.c, VM_IP, 50);
    double down_ab = move(&on_a, &on_b, hosts.b, "198.18.0.2", "brB", "A->B", &moves[0]);
    expect_stream_grows(&on_b, RATE, "from B");
    vm_proc_stop(&on_a);   /* frees A's TAP name st0 for the way back */
    double down_ba = move(&on_b, &back_on_a, hosts.a, "198.18.0.1", "brA", "B->A", &moves[1]);
    expect_stream_grows(&back_on_a, RATE, "from A again");
    set_rate_slows_the_stream(&back_on_a);

    uint32_t answered_before_pause = probe_replies(&prober);
    uint64_t sent, tx_errors, guest_gap_us;
    guest_counters(&back_on_a, &sent, &tx_errors, &guest_gap_us);
    struct probe_result p;
    probe_stop(&prober, &p);
    print_message("C -> VM while streaming: ping %u sent, %u answered, %u duplicated; UDP %u "
                  "sent, %u echoed, %u duplicated\n", p.ping_sent, p.ping_replied, p.ping_dups,
                  p.udp_sent, p.udp_replied, p.udp_dups);
    assert_true(answered_before_pause >= 10);
    assert_true(p.ping_replied > 0 && p.udp_replied > 0);
    assert_int_equal(p.ping_dups, 0);
    assert_int_equal(p.udp_dups, 0);
    struct stream_stats s;
    collector_stop(&coll, &s);
    print_stats(&s);
    double bound = RATE * ((down_ab + down_ba) / 1000 + 2 * MARGIN_S);
    print_message("guest: %llu sent, %llu refused by a full queue, longest time between two "
                  "sends %.1f ms; downtimes %.1f ms (A->B) and %.1f ms (B->A); C lost %llu "
                  "(bound %.0f), longest gap %.1f ms\n", (unsigned long long)sent,
                  (unsigned long long)tx_errors, guest_gap_us / 1000.0, down_ab, down_ba,
                  (unsigned long long)s.lost, bound, s.gaps[0].ms);
    assert_int_equal(s.duplicated, 0);
    assert_int_equal(s.reordered, 0);
    assert_int_equal(s.foreign, 0);
    assert_int_equal(s.malformed, 0);
    assert_int_equal(s.seed, (uint64_t)net.id);
    assert_true(s.lost <= bound);
    /* Every number the guest handed its NIC came or was lost; the published count may lag
     * the last wake-up's datagrams (paused between sending and publishing). */
    if (s.highest + MAX_BURST < sent || sent + MAX_BURST < s.highest)
        fail_msg("the guest sent %llu datagrams; C saw numbers up to %llu (%llu received + "
                 "%llu lost)", (unsigned long long)sent, (unsigned long long)s.highest,
                 (unsigned long long)s.received, (unsigned long long)s.lost);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(stream_survives_a_round_trip, stop_all),
    };
    return cmocka_run_group_tests(tests, topology_up, topology_down);
}
