/* Integration: the receiver's ways of putting pages into guest RAM (vmshift receive
 * --page-writes file|mapping) with prefault threads (--prefault-threads 2), between the two
 * backings of guest RAM (--ram-backing: an anonymous source to a memfd destination, and
 * back), move a busy VM intact: each side's RAM is backed as asked, the migration's
 * end-to-end digest agrees on both sides, the receiver's log says the threads ran and
 * faulted RAM in, the report names the page size guest RAM got, and the guest's verify
 * workload finds no bad page in a further pass after the move. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first line of the file at path that contains key, copied into line; false if none. */
static bool log_line(const char *path, const char *key, char *line, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool found = false;
    while (!found && fgets(line, (int)len, f))
        found = strstr(line, key) != NULL;
    fclose(f);
    return found;
}

static void assert_backing(struct vm_proc *p, const char *backing)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    if (strcmp(json_str(st, "ram_backing"), backing))
        fail_msg("guest RAM is backed by %s, not %s as asked", json_str(st, "ram_backing"),
                 backing);
    json_object_put(st);
}

static void migrate_with(const char *src_backing, const char *dst_backing,
                         const char *page_writes, int streams)
{
    struct vm_proc src, dst;
    vm_proc_start(&src, ARGS("--mem", "256M", "--vcpus", "2", "--workload", "verify",
                             "--fill", "random", "--ram-backing", src_backing));
    assert_backing(&src, src_backing);
    struct json_object *st = wait_guest_at_least(&src, "passes", 1, 60);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    vm_receiver_start(&dst, "127.0.0.1", NULL,
                      ARGS("--page-writes", page_writes, "--prefault-threads", "2",
                           "--ram-backing", dst_backing));
    char to[64], label[96];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    snprintf(label, sizeof(label), "%s -> %s, page-writes=%s streams=%d prefault=2",
             src_backing, dst_backing, page_writes, streams);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "streams", json_object_new_int(streams));
    struct json_object *r = vm_migrate(&src, to, a, 120);
    json_object_put(a);
    print_migration(label, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("%s: migration %s: %s", label, json_str(r, "status"), json_str(r, "error"));

    vm_proc_wait_ctl(&dst, 30);
    assert_backing(&dst, dst_backing);
    struct json_object *dst_status = vm_cmd(&dst, "status", NULL);
    struct json_object *incoming = json_member(dst_status, "incoming");
    assert_non_null(incoming);
    assert_string_equal(json_str(incoming, "ram-digest"), json_str(r, "ram-digest"));
    /* The report says which page size guest RAM got; through the file never 2 MiB. */
    const char *pages = json_str(json_member(incoming, "ram"), "page-size");
    print_message("%s: guest RAM pages: %s\n", label, pages);
    assert_true(!strncmp(pages, "4 KiB", 5) || !strncmp(pages, "2 MiB", 5));
    if (!strcmp(page_writes, "file"))
        assert_true(!strncmp(pages, "4 KiB", 5));
    json_object_put(dst_status);
    json_object_put(r);

    char line[512], want[64];
    snprintf(want, sizeof(want), "through its %s", strcmp(page_writes, "file") ? "mapping"
                                                                                : "memfd");
    if (!log_line(dst.stderr_path, want, line, sizeof(line)))
        fail_msg("%s: the receiver's log does not say pages went %s", label, want);
    assert_non_null(strstr(line, "2 prefault thread(s)"));
    if (!log_line(dst.stderr_path, "prefault thread(s) faulted in", line, sizeof(line)))
        fail_msg("%s: the receiver's log does not report the prefault threads' work", label);
    unsigned mib = 0;
    const char *p = strstr(line, "faulted in ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "faulted in %u MiB", &mib), 1);
    print_message("%s: the prefault threads faulted in %u MiB\n", label, mib);
    assert_true(mib > 0 && mib <= 256);

    st = wait_guest_at_least(&dst, "passes", passes + 1, 120);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void file_writes_with_prefault(void **state)
{
    (void)state;
    require_kvm();
    migrate_with("anon", "memfd", "file", 2);
}

static void mapping_writes_with_prefault(void **state)
{
    (void)state;
    require_kvm();
    migrate_with("memfd", "anon", "mapping", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(file_writes_with_prefault),
        cmocka_unit_test(mapping_writes_with_prefault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
