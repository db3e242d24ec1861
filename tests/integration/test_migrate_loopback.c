/* Integration: live migration between two vmshift processes on loopback. Each workload
 * arrives with matching digests and zero guest-reported errors, keeps counting on the
 * destination, and the VM can be migrated back. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ULL << 20)

/* Migrate src to a fresh receiver on loopback; returns the receiver (VM arrived). */
static void migrate_to_new_receiver(struct vm_proc *src, struct vm_proc *dst, const char *label)
{
    vm_receiver_start(dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    struct json_object *r = vm_migrate(src, to, NULL, 120);
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("%s: migration %s: %s", label, json_str(r, "status"), json_str(r, "error"));
    assert_true(json_num(r, "downtime") > 0);
    json_object_put(r);
    vm_proc_wait_ctl(dst, 30);

    /* the source never runs the VM again */
    struct json_object *st = vm_cmd(src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "migrated");
    json_object_put(st);
    struct json_object *res = vm_cmd_any(src, "resume", NULL);
    assert_non_null(strstr(json_str(res, "error"), "migrated"));
    json_object_put(res);
    st = vm_cmd(dst, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
}

static void migrate_workload(const char *const *args, uint64_t wait_passes, bool read_only)
{
    struct vm_proc src, dst, back;
    vm_proc_start(&src, args);
    struct json_object *st = wait_guest_at_least(&src, "passes", wait_passes, 60);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    char *before = read_only ? vm_digest(&src, 4 * MiB, 60 * MiB) : NULL;

    migrate_to_new_receiver(&src, &dst, "there");
    if (read_only) {
        char *after = vm_digest(&dst, 4 * MiB, 60 * MiB);
        assert_string_equal(before, after);
        free(after);
    }
    /* the guest goes on counting where it stopped, and finds every page intact */
    st = wait_guest_at_least(&dst, "passes", passes + 2, 90);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);

    /* and back again */
    migrate_to_new_receiver(&dst, &back, "back");
    st = vm_cmd(&back, "status", NULL);
    passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(&back, "passes", passes + 1, 90);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    if (read_only) {
        char *after = vm_digest(&back, 4 * MiB, 60 * MiB);
        assert_string_equal(before, after);
        free(after);
    }
    free(before);
    vm_proc_stop(&dst);
    vm_proc_stop(&back);
    assert_int_equal(back.exit_status, 0);
}

/* An idle guest's RAM once it stopped writing: the same digest twice, 200 ms apart (on a
 * loaded host the guest can be between its first doorbell and its final halt for a while,
 * and a digest taken then differs from the one after the move). */
static char *quiet_digest(struct vm_proc *p)
{
    char *a = vm_digest(p, 0, 64 * MiB);
    for (int i = 0; i < 150; i++) {
        usleep(200000);
        char *b = vm_digest(p, 0, 64 * MiB);
        if (!strcmp(a, b)) {
            free(b);
            return a;
        }
        free(a);
        a = b;
    }
    fail_msg("the idle guest's RAM still changes after 30 s");
    return a;
}

static void idle_vm_migrates(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "64M", "--workload", "idle", "--fill", "pattern"));
    json_object_put(wait_guest_at_least(&src, "doorbells", 1, 30));
    char *before = quiet_digest(&src);
    migrate_to_new_receiver(&src, &dst, "idle");
    char *after = vm_digest(&dst, 0, 64 * MiB);
    assert_string_equal(before, after);
    free(before);
    free(after);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    assert_string_equal(guest_str(st, "state"), "idle");
    json_object_put(st);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void once_vm_migrates_there_and_back(void **state)
{
    (void)state;
    migrate_workload(ARGS("--mem", "64M", "--workload", "once", "--fill", "random"), 1, true);
}

static void verify_vm_migrates_there_and_back(void **state)
{
    (void)state;
    migrate_workload(ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"), 2, false);
}

/* A page the monitor writes (here: debug-poke) after pre-copy sent it must travel again:
 * the end-to-end check would fail the migration otherwise. */
static void monitor_writes_during_migration_arrive(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "64M", "--workload", "idle", "--fill", "pattern"));
    json_object_put(wait_guest_at_least(&src, "doorbells", 1, 30));
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    vm_migrate_start(&src, to, a);
    json_object_put(a);
    for (int i = 0;; i++) { /* until the first 16 MiB are across, pre-copy still going */
        struct json_object *st = vm_cmd(&src, "migrate-status", NULL), *m, *ram;
        assert_true(json_object_object_get_ex(st, "migration", &m));
        double sent = json_object_object_get_ex(m, "ram", &ram) ? json_num(ram, "transferred") : 0;
        bool active = !strcmp(json_str(m, "status"), "active");
        json_object_put(st);
        if (sent >= 16 << 20) {
            assert_true(active);
            break;
        }
        assert_true(i < 400);
        usleep(25000);
    }
    struct json_object *p = json_object_new_object();
    json_object_object_add(p, "addr", json_object_new_uint64(4 * MiB + 8));
    json_object_object_add(p, "value", json_object_new_uint64(0x1234567890abcdefULL));
    json_object_put(vm_cmd(&src, "debug-poke", p));
    json_object_put(p);
    char *before = vm_digest(&src, 0, 64 * MiB);
    struct json_object *r = vm_migration_wait(&src, 60);
    print_migration("poked", r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    struct json_object *passes, *p0;
    assert_true(json_object_object_get_ex(r, "passes", &passes));
    p0 = json_object_array_get_idx(passes, 0);
    assert_true(json_num(p0, "pages-dirtied") >= 1); /* the poked page, sent again */
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
    char *after = vm_digest(&dst, 0, 64 * MiB);
    for (uint64_t mb = 0; strcmp(before, after) && mb < 64; mb++) {
        char *a = vm_digest(&src, mb * MiB, MiB), *b = vm_digest(&dst, mb * MiB, MiB);
        if (strcmp(a, b))
            print_message("MiB %llu differs: source %s, destination %s\n",
                          (unsigned long long)mb, a, b);
        free(a);
        free(b);
    }
    assert_string_equal(before, after);
    free(before);
    free(after);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static uint64_t allocated(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    uint64_t a = (uint64_t)json_num(st, "ram_allocated_bytes");
    json_object_put(st);
    return a;
}

/* Memory the guest never wrote is neither sent nor read (which would allocate it) on
 * either side: an idle 512 MiB VM moves a few MiB and stays small on both hosts. */
static void untouched_memory_is_skipped(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "512M", "--workload", "idle"));
    json_object_put(wait_guest_at_least(&src, "doorbells", 1, 30));
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 60), *ram;
    print_migration("idle 512M", r);
    assert_string_equal(json_str(r, "status"), "completed");
    assert_true(json_object_object_get_ex(r, "ram", &ram));
    print_message("skipped %.0f pages, transferred %.0f bytes\n", json_num(ram, "skipped"),
                  json_num(ram, "transferred"));
    assert_true(json_num(ram, "skipped") >= 0.9 * (508.0 * 256));
    assert_true(json_num(ram, "transferred") < 16.0 * MiB);
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
    assert_true(allocated(&src) < 32 * MiB);
    assert_true(allocated(&dst) < 32 * MiB);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* `vmshift migrate --report FILE`: the whole report goes to the file, stdout gets one
 * summary line; the progress line at the end counts the passes the table shows. */
static void the_cli_prints_a_summary_with_a_report_file(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "32M", "--workload", "once"));
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure"));
    char cmd[1024], out[4096] = "", err_path[160], report[160];
    snprintf(report, sizeof(report), "%s/report.json", src.dir);
    snprintf(err_path, sizeof(err_path), "%s/migrate.err", src.dir);
    snprintf(cmd, sizeof(cmd), "%s migrate %s --to 127.0.0.1:%d --insecure --report %s 2>%s",
             VMSHIFT_BIN, src.sock, dst.port, report, err_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    const char *head = "migration completed: total ";
    if (strncmp(out, head, strlen(head)) || !strstr(out, report) ||
        strchr(out, '\n') != out + n - 1)
        fail_msg("stdout is not one summary line: '%s'", out);
    struct json_object *r = json_object_from_file(report), *passes;
    assert_non_null(r);
    assert_string_equal(json_str(r, "status"), "completed");
    assert_true(json_object_object_get_ex(r, "passes", &passes));
    char want[64];
    snprintf(want, sizeof(want), "completed  passes %2zu", json_object_array_length(passes));
    FILE *e = fopen(err_path, "r");
    assert_non_null(e);
    char errs[8192];
    errs[fread(errs, 1, sizeof(errs) - 1, e)] = '\0';
    fclose(e);
    if (!strstr(errs, want))
        fail_msg("the progress does not end with '%s': %s", want, errs);
    json_object_put(r);
    vm_proc_wait_ctl(&dst, 30);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

/* The destination's report (`vmshift receive --report`) has the real downtime and the
 * throughput of what it received. On one host (one clock) the downtime runs from the
 * source's pause to the resume here, exactly the source's; a destination that plays another
 * host (VMSHIFT_TEST_BOOT_ID) counts from the final pass's first record, which arrives after
 * the pause: more than 0, not more than the source's. */
static void destination_report(bool other_host)
{
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 60));
    char report[200];
    snprintf(report, sizeof(report), "%s/dst-report.json", src.dir);
    if (other_host)
        harness_child_env("VMSHIFT_TEST_BOOT_ID=00112233445566778899aabbccddeeff");
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--report", report));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 120);
    print_migration("source", r);
    assert_string_equal(json_str(r, "status"), "completed");
    vm_proc_wait_ctl(&dst, 30);
    struct json_object *d = json_object_from_file(report);
    assert_non_null(d);
    print_migration("destination", d);
    assert_string_equal(json_str(d, "status"), "completed");
    double src_down = json_num(r, "downtime"), dst_down = json_num(d, "downtime");
    assert_true(dst_down > 0);
    assert_int_equal(json_object_get_boolean(json_member(d, "downtime-exact")), !other_host);
    assert_int_equal(json_object_get_boolean(json_member(r, "downtime-exact")), !other_host);
    if (!other_host && (dst_down < src_down - 0.01 || dst_down > src_down + 0.01))
        fail_msg("the destination's downtime %.3f ms differs from the source's %.3f ms",
                 dst_down, src_down);
    if (other_host && dst_down > src_down + 5)   /* the source's is a round-trip estimate */
        fail_msg("the destination's downtime %.3f ms is more than the source's %.3f ms",
                 dst_down, src_down);
    double src_mbps = json_num(json_member(r, "ram"), "mbps");
    double dst_mbps = json_num(json_member(d, "ram"), "mbps");
    double src_bytes = json_num(json_member(r, "ram"), "transferred");
    double dst_bytes = json_num(json_member(d, "ram"), "transferred");
    print_message("mbps: source %.1f, destination %.1f; bytes: source %.0f, destination "
                  "%.0f\n", src_mbps, dst_mbps, src_bytes, dst_bytes);
    assert_true(dst_mbps > 0);
    assert_true(dst_mbps > src_mbps / 2 && dst_mbps < src_mbps * 2);
    assert_true(dst_bytes > src_bytes * 0.95 && dst_bytes < src_bytes * 1.05);
    json_object_put(d);
    json_object_put(r);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void the_destination_reports_downtime_and_throughput(void **state)
{
    (void)state;
    destination_report(false);
}

static void a_destination_on_another_clock_estimates_the_downtime(void **state)
{
    (void)state;
    destination_report(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_vm_migrates),
        cmocka_unit_test(once_vm_migrates_there_and_back),
        cmocka_unit_test(verify_vm_migrates_there_and_back),
        cmocka_unit_test(monitor_writes_during_migration_arrive),
        cmocka_unit_test(untouched_memory_is_skipped),
        cmocka_unit_test(the_cli_prints_a_summary_with_a_report_file),
        cmocka_unit_test(the_destination_reports_downtime_and_throughput),
        cmocka_unit_test(a_destination_on_another_clock_estimates_the_downtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
