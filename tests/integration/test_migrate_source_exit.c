/* Integration: what is left of the source once its VM runs at the destination. By default
 * the source process exits 0 a moment after the migration completed (after `vmshift
 * migrate` has read the final report), removing its control socket; with
 * --keep-after-migrate it stays, in state migrated, with its guest RAM given back to the
 * host. */
#include "harness.h"
#include "cli/monitor_loop.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1ULL << 20)

/* A line "Key:   N kB" of /proc/PID/status, in bytes (fails the test if absent). */
static uint64_t proc_status_bytes(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t klen = strlen(key);
    uint64_t kb = UINT64_MAX;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, klen) && line[klen] == ':')
            kb = strtoull(line + klen + 1, NULL, 10);
    fclose(f);
    if (kb == UINT64_MAX)
        fail_msg("no %s in %s", key, path);
    return kb * 1024;
}

/* A 128 MiB VM whose RAM is all written (random fill), its guest checking it. */
static void start_source_backed(struct vm_proc *src, const char *backing)
{
    vm_proc_start(src, ARGS("--mem", "128M", "--vcpus", "2", "--workload", "verify",
                            "--fill", "random", "--ram-backing", backing));
    json_object_put(wait_guest_at_least(src, "passes", 1, 60));
}

static void start_source(struct vm_proc *src)
{
    vm_proc_start(src, ARGS("--mem", "128M", "--vcpus", "2", "--workload", "verify",
                            "--fill", "random"));
    json_object_put(wait_guest_at_least(src, "passes", 1, 60));
}

static void file_contains(const char *path, const char *needle)
{
    static char text[65536];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    text[fread(text, 1, sizeof(text) - 1, f)] = '\0';
    fclose(f);
    if (!strstr(text, needle))
        fail_msg("%s does not say '%s': %s", path, needle, text);
}

/* `vmshift migrate` follows the migration to its end and gets the final report; then the
 * source exits 0 within seconds, its control socket gone, and the VM runs on at the
 * destination. */
static void the_source_exits_once_its_vm_left(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    harness_exit_after_migrate();
    start_source(&src);
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure"));
    char to[64], report[160], err[8192];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    snprintf(report, sizeof(report), "%s/report.json", dst.dir);
    int rc = run_vmshift(ARGS("migrate", src.sock, "--to", to, "--insecure", "--report", report,
                              "--quiet"), err, sizeof(err), 120);
    if (rc != 0)
        fail_msg("vmshift migrate exited %d: %s", rc, err);
    struct json_object *r = json_object_from_file(report);
    assert_non_null(r);
    assert_string_equal(json_str(r, "status"), "completed");
    json_object_put(r);
    double t0 = now_s();
    assert_int_equal(vm_proc_wait_exit(&src, 15), 0);
    print_message("the source exited %.1f s after vmshift migrate returned\n", now_s() - t0);
    assert_int_equal(access(src.sock, F_OK), -1);
    assert_int_equal(errno, ENOENT);
    file_contains(src.stderr_path, "the VM migrated to 127.0.0.1");
    file_contains(src.stderr_path, "released the");
    vm_proc_wait_ctl(&dst, 30);
    struct json_object *st = wait_guest_at_least(&dst, "passes", 2, 90);
    assert_string_equal(json_str(st, "state"), "running");
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

/* --keep-after-migrate: the source stays (past the linger of the default), says migrated,
 * and holds none of the guest's RAM any more, on either backing: its memfd is empty, or its
 * anonymous memory discarded, and the process's resident memory of that kind dropped by
 * the VM's size. RAM-reading commands say why they cannot. */
static void kept_source_gives_memory_back(const char *backing)
{
    struct vm_proc src, dst;
    start_source_backed(&src, backing);   /* the harness passes --keep-after-migrate */
    const char *kind = strcmp(backing, "anon") ? "RssShmem" : "RssAnon";
    uint64_t shmem_before = proc_status_bytes(src.pid, kind);
    uint64_t rss_before = proc_status_bytes(src.pid, "VmRSS");
    if (shmem_before < 100 * MiB)
        fail_msg("%s: %s is %.1f MiB with 128 MiB of guest RAM written", backing, kind,
                 shmem_before / (double)MiB);
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *r = vm_migrate(&src, to, NULL, 120);
    assert_string_equal(json_str(r, "status"), "completed");
    json_object_put(r);
    double deadline = now_s() + 10;
    uint64_t shmem = shmem_before;
    while ((shmem = proc_status_bytes(src.pid, kind)) + 100 * MiB > shmem_before &&
           now_s() < deadline)
        usleep(50000);
    uint64_t rss = proc_status_bytes(src.pid, "VmRSS");
    print_message("%s: source RSS %.1f -> %.1f MiB, %s %.1f -> %.1f MiB\n", backing,
                  rss_before / (double)MiB, rss / (double)MiB, kind, shmem_before / (double)MiB,
                  shmem / (double)MiB);
    assert_true(shmem + 100 * MiB <= shmem_before);
    assert_true(rss + 100 * MiB <= rss_before);
    usleep((MONITOR_LINGER_MS + 1000) * 1000);   /* longer than the default stays */
    struct json_object *st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "migrated");
    assert_true(json_num(st, "ram_allocated_bytes") <= 4 * MiB);
    json_object_put(st);
    struct json_object *refused = vm_cmd_any(&src, "digest", NULL);
    assert_non_null(strstr(json_str(refused, "error"), "given back"));
    json_object_put(refused);
    vm_proc_wait_ctl(&dst, 30);
    st = wait_guest_at_least(&dst, "passes", 2, 90);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);
    assert_int_equal(src.exit_status, 0);
    vm_proc_stop(&dst);
}

static void a_kept_memfd_source_gives_its_memory_back(void **state)
{
    (void)state;
    kept_source_gives_memory_back("memfd");
}

static void a_kept_anon_source_gives_its_memory_back(void **state)
{
    (void)state;
    kept_source_gives_memory_back("anon");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_source_exits_once_its_vm_left),
        cmocka_unit_test(a_kept_memfd_source_gives_its_memory_back),
        cmocka_unit_test(a_kept_anon_source_gives_its_memory_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
