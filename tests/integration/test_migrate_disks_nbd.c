/* Integration: `--with-disks` and NBD disks (nbd_storage.h: qemu-nbd in a storage host
 * that hosts A and B reach by their own links). Copying an NBD disk with the VM is not
 * supported, in either direction: a VM whose (not shared) disk is an export is refused at
 * `migrate --with-disks` with an error naming the URI and what to do; a destination given
 * an export as its `receive --disk` fails the migration with an error naming it. Each time
 * the VM runs on at the source with 0 errors and the other side's disk (a file, an
 * export) is untouched. These use a second export (port 10810, file vm2.img). */
#include "disk_probe.h"
#include "harness.h"
#include "nbd_storage.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_S 180
#define NBD2_PORT "10810"
#define URI2_A "nbd://198.18.10.1:" NBD2_PORT "/vm2"
#define URI2_B "nbd://198.18.11.1:" NBD2_PORT "/vm2"
#define MARK_BYTES (1u << 20)   /* the untouched side's file starts with these 0x5a bytes */

/* A 64 MiB file whose first MiB is 0x5a, the rest a hole. */
static void make_marked_file(const char *path)
{
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, NBD_DISK_BYTES), 0);
    uint8_t *mark = malloc(MARK_BYTES);
    assert_non_null(mark);
    memset(mark, 0x5a, MARK_BYTES);
    assert_int_equal(pwrite(fd, mark, MARK_BYTES, 0), (ssize_t)MARK_BYTES);
    free(mark);
    close(fd);
}

static void check_marked_file(const char *path)
{
    uint8_t *img = nbd_read_image(path);
    for (size_t i = 0; i < NBD_DISK_BYTES; i++)
        if (img[i] != (i < MARK_BYTES ? 0x5a : 0))
            fail_msg("%s changed at byte %zu (0x%02x): the refused migration wrote it", path,
                     i, img[i]);
    free(img);
}

/* A second export of a fresh file (the first holds the other test's passes). */
static pid_t export2_start(char *file, size_t len, bool marked)
{
    snprintf(file, len, "%s/vm2.img", nbd.dir);
    if (marked) {
        make_marked_file(file);
    } else {
        int fd = open(file, O_CREAT | O_RDWR | O_TRUNC, 0600);
        assert_true(fd >= 0 && ftruncate(fd, NBD_DISK_BYTES) == 0);
        close(fd);
    }
    char log[128];
    snprintf(log, sizeof(log), "%s/qemu-nbd2.log", nbd.dir);
    pid_t pid = harness_spawn("/usr/bin/qemu-nbd", nbd.ns,
                              ARGS("-f", "raw", "-x", "vm2", "-t", "-e", "4", "-b", "0.0.0.0",
                                   "-p", NBD2_PORT, "--cache=writeback", file), log, NULL);
    for (int i = 0; i < 100 && !nbd_port_listening(NBD2_PORT); i++)
        usleep(50000);
    if (!nbd_port_listening(NBD2_PORT))
        fail_msg("the second qemu-nbd does not listen in %s; see %s", nbd.ns, log);
    return pid;
}

static void export2_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static struct json_object *with_disks_request(const char *to)
{
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "to", json_object_new_string(to));
    json_object_object_add(req, "with_disks", json_object_new_boolean(1));
    harness_add_migrate_security(req);
    return req;
}

/* The VM goes on at the source: two more passes, 0 errors, its disk writable. */
static void check_runs_on(struct vm_proc *src)
{
    struct disk_counts c = disk_wait_passes(src, disk_read_counts(src).passes + 2, WAIT_S);
    assert_int_equal(c.errors, 0);
    assert_int_equal(disk_stat(src, "writable"), 1);
    assert_int_equal(disk_stat(src, "io_errors"), 0);
}

static void with_disks_refuses_an_nbd_source_disk(void **state)
{
    (void)state;
    char file[96], local[96];
    pid_t srv = export2_start(file, sizeof(file), false);
    snprintf(local, sizeof(local), "%s/local-b.img", nbd.dir);
    make_marked_file(local);
    struct vm_proc a, b;
    vm_proc_start_in(&a, nbd.hosts.a, ARGS("--mem", "64M", "--vcpus", "1", "--workload", "disk",
                                       "--disk", URI2_A, "--append", nbd_append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    vm_receiver_start(&b, "198.18.0.2", nbd.hosts.b, ARGS("--disk", local));
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", b.port);
    struct json_object *req = with_disks_request(to), *ok;
    struct json_object *r = vm_cmd_any(&a, "migrate", req);
    json_object_put(req);
    assert_true(json_object_object_get_ex(r, "ok", &ok));
    assert_false(json_object_get_boolean(ok));
    const char *err = json_str(r, "error");
    print_message("    migrate --with-disks of %s: %s\n", URI2_A, err);
    assert_non_null(strstr(err, URI2_A));
    assert_non_null(strstr(err, "is an NBD export"));
    assert_non_null(strstr(err, "files or block devices"));
    assert_non_null(strstr(err, ",shared"));
    json_object_put(r);

    check_runs_on(&a);
    check_marked_file(local);             /* the destination received nothing */
    vm_proc_stop(&a);
    vm_proc_stop(&b);
    export2_stop(srv);
}

static void with_disks_refuses_an_nbd_destination_disk(void **state)
{
    (void)state;
    char file[96], local[96];
    pid_t srv = export2_start(file, sizeof(file), true);
    snprintf(local, sizeof(local), "%s/local-a.img", nbd.dir);
    int fd = open(local, O_CREAT | O_RDWR | O_TRUNC, 0600);
    assert_true(fd >= 0 && ftruncate(fd, NBD_DISK_BYTES) == 0);
    close(fd);
    struct vm_proc a, b;
    vm_proc_start_in(&a, nbd.hosts.a, ARGS("--mem", "64M", "--vcpus", "1", "--workload", "disk",
                                       "--disk", local, "--append", nbd_append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    vm_receiver_start(&b, "198.18.0.2", nbd.hosts.b, ARGS("--disk", URI2_B));
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", b.port);
    struct json_object *req = with_disks_request(to);
    json_object_put(vm_cmd(&a, "migrate", req));
    json_object_put(req);
    struct json_object *rep = vm_migration_wait(&a, WAIT_S);
    const char *err = json_str(rep, "error");
    print_message("    migrate --with-disks into %s: %s: %s\n", URI2_B, json_str(rep, "status"),
                  err);
    assert_string_equal(json_str(rep, "status"), "failed");
    assert_non_null(strstr(err, URI2_B " is an NBD export"));   /* the destination's reason */
    json_object_put(rep);
    /* The destination's reason is in its log, naming the export and what to do. */
    int st = vm_proc_wait_exit(&b, 30);
    assert_int_not_equal(st, 0);
    FILE *f = fopen(b.stderr_path, "r");
    assert_non_null(f);
    static char log[1 << 16];
    size_t n = fread(log, 1, sizeof(log) - 1, f);
    log[n] = '\0';
    fclose(f);
    if (!strstr(log, URI2_B " is an NBD export") || !strstr(log, "DEST_FILE"))
        fail_msg("the receiver's log does not say why: %s", log);

    check_runs_on(&a);
    export2_stop(srv);
    check_marked_file(file);              /* the export was never written */
    vm_proc_stop(&a);
    vm_proc_stop(&b);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(with_disks_refuses_an_nbd_source_disk),
        cmocka_unit_test(with_disks_refuses_an_nbd_destination_disk),
    };
    return cmocka_run_group_tests(tests, nbd_group_setup, nbd_group_teardown);
}
