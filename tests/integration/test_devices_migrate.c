/* Integration: a pc VM whose guest uses its devices while it migrates. The timer workload
 * on 2 vCPUs sleeps on PIT ticks, keeps its virtio-rng driver busy (every used entry
 * checked: no request completed twice, none too long, the used index never jumping) and
 * echoes COM1 input it takes on IRQ 4. It moves A -> B and back B -> A, over loopback and
 * between the two network-namespace test hosts; after each move the ticks go on with no
 * gap beyond the downtime and some slack, rng requests keep completing, console input
 * sent to the new host arrives exactly and is echoed in its serial log, the RAM digests
 * of both sides match, and the old host holds the VM as migrated. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* An emulating host stalls vCPUs for a while when it is busy: the slack over the
 * downtime allowed between two ticks. */
#define GAP_SLACK_US 2000000ull
#define WAIT_S 30

/* vCPU 0's counters in the timer workload (docs/guide.md). */
struct devcounts {
    uint64_t ticks;          /* passes */
    uint64_t max_gap_us;
    uint64_t errors;         /* all vCPUs */
    uint64_t rng_requests;   /* pages_written */
    uint64_t rng_bytes;
    uint64_t rx_bytes;       /* generation */
};

static uint64_t cpu0_u64(struct json_object *st, const char *key)
{
    struct json_object *per = json_member(json_member(st, "guest"), "per_vcpu");
    struct json_object *c = json_object_array_get_idx(per, 0), *v;
    assert_non_null(c);
    assert_true(json_object_object_get_ex(c, key, &v));
    return json_object_get_uint64(v);
}

static struct devcounts read_counts(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    struct devcounts c = {
        .ticks = cpu0_u64(st, "passes"),
        .max_gap_us = cpu0_u64(st, "max_gap_us"),
        .errors = guest_u64(st, "errors"),
        .rng_requests = cpu0_u64(st, "pages_written"),
        .rng_bytes = cpu0_u64(st, "rng_bytes"),
        .rx_bytes = cpu0_u64(st, "generation"),
    };
    assert_string_not_equal(guest_str(st, "state"), "failed");
    json_object_put(st);
    return c;
}

/* Poll until the ticks and rng requests passed the given counts and rx_bytes reached
 * rx; returns the counts then. */
static struct devcounts wait_counts(struct vm_proc *p, uint64_t ticks, uint64_t rng, uint64_t rx)
{
    double t0 = now_s();
    for (;;) {
        struct devcounts c = read_counts(p);
        if (c.ticks > ticks && c.rng_requests > rng && c.rx_bytes >= rx)
            return c;
        if (now_s() - t0 > WAIT_S)
            fail_msg("stalled: ticks %llu (want > %llu), rng requests %llu (want > %llu), "
                     "console bytes %llu (want %llu)\n%s", (unsigned long long)c.ticks,
                     (unsigned long long)ticks, (unsigned long long)c.rng_requests,
                     (unsigned long long)rng, (unsigned long long)c.rx_bytes,
                     (unsigned long long)rx, vm_serial_log(p));
        usleep(100000);
    }
}

/* Send data to the guest's COM1; the UART must take all of it. */
static void console_send(struct vm_proc *p, const char *data)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "data", json_object_new_string(data));
    json_object_object_add(a, "wait_ms", json_object_new_int(5000));
    struct json_object *r = vm_cmd(p, "console-input", a);
    json_object_put(a);
    assert_int_equal(json_num(r, "accepted"), strlen(data));
    json_object_put(r);
}

/* Send text + "\n" to the guest's COM1; it must count exactly those bytes and echo the
 * text in p's serial log. */
static void console_roundtrip(struct vm_proc *p, const char *text)
{
    struct devcounts before = read_counts(p);
    char data[64], echo[96];
    snprintf(data, sizeof(data), "%s\n", text);
    console_send(p, data);

    struct devcounts after = wait_counts(p, before.ticks, before.rng_requests,
                                         before.rx_bytes + strlen(data));
    assert_int_equal(after.rx_bytes, before.rx_bytes + strlen(data));
    snprintf(echo, sizeof(echo), "vmshift-guest: console: %s\n", text);
    double t0 = now_s();
    while (!strstr(vm_serial_log(p), echo)) {
        if (now_s() - t0 > WAIT_S)
            fail_msg("no echo '%s' in the serial log:\n%s", text, vm_serial_log(p));
        usleep(100000);
    }
    usleep(300000);   /* a byte too many would be counted by now */
    assert_int_equal(read_counts(p).rx_bytes, before.rx_bytes + strlen(data));
}

struct journey {
    double max_downtime_ms;
    unsigned moves;
};

/* Migrate src to the receiver dst (started already, listening on host); check the
 * report, the digests, the source's state and the guest's devices on the destination. */
static void move(struct journey *j, struct vm_proc *src, struct vm_proc *dst, const char *host)
{
    struct devcounts before = read_counts(src);
    char to[64], label[96], text[48];
    snprintf(to, sizeof(to), "%s:%d", host, dst->port);
    snprintf(label, sizeof(label), "move %u to %s", ++j->moves, to);
    /* Input the guest may still hold unread in the UART when it stops: it must all be
     * counted on the destination, once (its echo may be cut in two by the move). */
    const char *in_flight = "in-flight\n";
    console_send(src, in_flight);
    before.rx_bytes += strlen(in_flight);
    struct json_object *r = vm_migrate(src, to, NULL, 120);
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("%s: %s: %s", label, json_str(r, "status"), json_str(r, "error"));
    double downtime = json_num(r, "downtime");
    if (downtime > j->max_downtime_ms)
        j->max_downtime_ms = downtime;
    char digest[32];
    snprintf(digest, sizeof(digest), "%s", json_str(r, "ram-digest"));
    json_object_put(r);
    assert_int_equal(strlen(digest), 16);
    vm_proc_wait_ctl(dst, 30);

    struct json_object *st = vm_cmd(src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "migrated");
    json_object_put(st);
    st = vm_cmd(dst, "status", NULL);
    assert_string_equal(json_str(json_member(st, "incoming"), "ram-digest"), digest);
    json_object_put(st);

    /* Ticks and rng requests go on here; the guest's counters came along. */
    struct devcounts arrived = read_counts(dst);
    assert_true(arrived.ticks >= before.ticks);
    assert_true(arrived.rng_requests >= before.rng_requests);
    struct devcounts later = wait_counts(dst, arrived.ticks + 10, arrived.rng_requests,
                                         before.rx_bytes);
    assert_int_equal(later.rx_bytes, before.rx_bytes);
    snprintf(text, sizeof(text), "after-move-%u-%d", j->moves, dst->port);
    console_roundtrip(dst, text);
    later = read_counts(dst);
    print_message("%s: ticks %llu -> %llu, rng requests %llu -> %llu (%llu bytes), console "
                  "bytes %llu, longest tick gap %llu us, downtime %.1f ms\n", label,
                  (unsigned long long)before.ticks, (unsigned long long)later.ticks,
                  (unsigned long long)before.rng_requests,
                  (unsigned long long)later.rng_requests, (unsigned long long)later.rng_bytes,
                  (unsigned long long)later.rx_bytes, (unsigned long long)later.max_gap_us,
                  downtime);
    assert_int_equal(later.errors, 0);
    assert_true(later.rng_bytes > before.rng_bytes);
    st = vm_cmd(dst, "status", NULL);
    assert_string_equal(guest_str(st, "state"), "running");
    json_object_put(st);
    if (later.max_gap_us > (uint64_t)(j->max_downtime_ms * 1000) + GAP_SLACK_US)
        fail_msg("%s: a tick gap of %llu us; downtime was at most %.1f ms", label,
                 (unsigned long long)later.max_gap_us, j->max_downtime_ms);
    const char *log = vm_serial_log(dst);
    assert_null(strstr(log, "exception"));
    assert_null(strstr(log, "virtio-rng: error"));
}

static void start_vm(struct vm_proc *p, const char *netns)
{
    vm_proc_start_in(p, netns, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "timer",
                                    "--range", "4M:4M", "--append", "hz=25"));
    json_object_put(wait_guest_at_least(p, "doorbells", 1, 60));
    struct devcounts c = wait_counts(p, 20, 0, 0);
    assert_int_equal(c.errors, 0);
    const char *log = vm_serial_log(p);
    assert_non_null(strstr(log, "virtio-rng at 0xd0000000 irq 5: queue of 16"));
    assert_non_null(strstr(log, "console input on"));
    console_roundtrip(p, "before-the-move");
}

/* A -> B -> A, hosts given as (listen address, netns) pairs. */
static void round_trip(const char *host_a, const char *ns_a, const char *host_b,
                       const char *ns_b)
{
    double t0 = now_s();
    struct journey j = { 0 };
    struct vm_proc a, b, back;
    start_vm(&a, ns_a);
    vm_receiver_start(&b, host_b, ns_b, NULL);
    move(&j, &a, &b, host_b);
    vm_receiver_start(&back, host_a, ns_a, NULL);
    move(&j, &b, &back, host_a);
    vm_proc_stop(&a);
    vm_proc_stop(&b);
    vm_proc_stop(&back);
    assert_int_equal(back.exit_status, 0);
    print_message("round trip took %.1f s\n", now_s() - t0);
}

static void loopback_there_and_back(void **state)
{
    (void)state;
    round_trip("127.0.0.1", NULL, "127.0.0.1", NULL);
}

static void between_hosts_there_and_back(void **state)
{
    (void)state;
    round_trip("198.18.0.1", test_group_hosts.a, "198.18.0.2", test_group_hosts.b);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loopback_there_and_back),
        cmocka_unit_test(between_hosts_there_and_back),
    };
    return cmocka_run_group_tests(tests, test_hosts_group_setup, test_hosts_group_teardown);
}
