/* Integration: virtio-blk on a real sparse file, with the guest's disk workload writing
 * sequenced, checksummed 4 KiB blocks and reading each back (guest/disk.c).
 *  - The file holds, block by block, what the guest wrote: after a pause (which completes
 *    and flushes every request) each block is good and carries the pass being written or
 *    the one before, in one run of each (the guest's sequence pattern).
 *  - The VM migrates over loopback to a receiver that opens the same file (shared
 *    storage) while the workload runs: the guest goes on with no error (it checks every
 *    block still holds the last pass before overwriting it, so a write lost or reordered
 *    across the switchover is found), the file has the pattern of the destination's pass,
 *    and the source has closed the disk at the grant and wrote nothing after it.
 *  - While the migration is in pre-copy the destination has the file open read-only (read
 *    from /proc); after the grant only the destination has it, for writing.
 *  - A disk without ",shared" is refused by `migrate`, and the VM runs on.
 *  - A read-only disk refuses the guest's write, and the file stays byte for byte what
 *    it was. */
#include "disk_probe.h"
#include "harness.h"
#include "vmshift/disk_format.h"

#include <dirent.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISK_BYTES (64u << 20)
#define BLOCKS 32             /* the workload's range: 128 KiB */
#define SEED 1                /* vmshift run's default --seed */
#define WAIT_S 120

struct disk_file {
    char dir[64];
    char path[96];
};

/* The directories this test made, removed after it even when it fails. */
static char made[4][64];

static void disk_create(struct disk_file *d)
{
    snprintf(d->dir, sizeof(d->dir), "/tmp/vs-blk-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    for (unsigned i = 0; i < 4; i++)
        if (!made[i][0]) {
            snprintf(made[i], sizeof(made[i]), "%s", d->dir);
            break;
        }
    snprintf(d->path, sizeof(d->path), "%s/disk.img", d->dir);
    int fd = open(d->path, O_CREAT | O_RDWR | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);   /* sparse */
    close(fd);
}

static int remove_disks(void **state)
{
    (void)state;
    char f[320];
    for (unsigned i = 0; i < 4; i++) {
        if (!made[i][0])
            continue;
        snprintf(f, sizeof(f), "%s/disk.img", made[i]);
        unlink(f);
        snprintf(f, sizeof(f), "%s/elsewhere.img", made[i]);
        unlink(f);
        rmdir(made[i]);
        made[i][0] = '\0';
    }
    return 0;
}

/* The file must hold what the guest wrote up to pass `gen`: every block of the range good,
 * first a run of pass gen then a run of pass gen - 1 (empty when gen is 1); past the range
 * nothing. Returns the blocks of pass gen. */
static unsigned check_pattern(const char *path, uint64_t gen)
{
    uint8_t *img = file_read_all(path, DISK_BYTES);
    unsigned newest = 0;
    bool older_seen = false;
    for (uint64_t b = 0; b < BLOCKS; b++) {
        uint64_t found;
        const uint64_t *w = (const uint64_t *)(img + b * VS_DISK_BLOCK_BYTES);
        int r = vs_disk_block_check(w, SEED, b, 0, &found);
        if (r == VS_DISK_EMPTY && gen == 1) {
            older_seen = true;
            continue;
        }
        if (r != VS_DISK_OK)
            fail_msg("block %llu of %s: check result %d", (unsigned long long)b, path, r);
        if (found == gen && !older_seen) {
            newest++;
        } else if (found == gen - 1) {
            older_seen = true;
        } else {
            fail_msg("block %llu holds pass %llu; the guest was writing pass %llu (%u blocks "
                     "of it before)", (unsigned long long)b, (unsigned long long)found,
                     (unsigned long long)gen, newest);
        }
    }
    for (size_t i = BLOCKS * VS_DISK_BLOCK_BYTES; i < DISK_BYTES; i++)
        if (img[i])
            fail_msg("byte %zu of %s, past the workload's range, is 0x%02x", i, path, img[i]);
    free(img);
    return newest;
}

/* How process pid has `path` open: O_RDWR if any of its descriptors may write it, else
 * O_RDONLY, or -1 when none is open (read from /proc/PID/fd and fdinfo). */
static int open_mode(pid_t pid, const char *path)
{
    char dir[32], link[320], target[256];
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int mode = -1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path))
            continue;
        char info[320], line[128];
        snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        FILE *f = fopen(info, "r");
        unsigned long flags = 0;
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "flags: %lo", &flags) == 1)
                break;
        if (f)
            fclose(f);
        int m = (int)(flags & O_ACCMODE);
        mode = m == O_RDONLY && mode != O_RDWR ? O_RDONLY : O_RDWR;
    }
    closedir(d);
    return mode;
}

static const char *append_blocks(void)
{
    static char a[32];
    snprintf(a, sizeof(a), "disk_blocks=%d", BLOCKS);
    return a;
}

static void start_disk_vm(struct vm_proc *p, const char *spec)
{
    vm_proc_start(p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk", "--disk", spec,
                          "--append", append_blocks()));
}

/* The same with a second disk, which the workload leaves alone. */
static void start_two_disk_vm(struct vm_proc *p, const char *spec, const char *spec2)
{
    vm_proc_start(p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk", "--disk", spec,
                          "--disk", spec2, "--append", append_blocks()));
}

/* Paused, the file holds the guest's pattern; the host counted the requests. */
static void pattern_after_pause(void **state)
{
    (void)state;
    struct disk_file d;
    disk_create(&d);
    struct vm_proc p;
    start_disk_vm(&p, d.path);
    struct disk_counts c = disk_wait_passes(&p, 3, WAIT_S);
    usleep(700000);   /* most likely in the middle of a pass: both passes on the disk */
    json_object_put(vm_cmd(&p, "stop", NULL));
    c = disk_read_counts(&p);
    unsigned newest = check_pattern(d.path, c.generation);
    print_message("    disk: %llu passes, %llu blocks written, %llu checked, %llu KiB/s, "
                  "longest request %llu us; pass %llu on %u of %d blocks at the pause\n",
                  (unsigned long long)c.passes, (unsigned long long)c.written,
                  (unsigned long long)c.checked, (unsigned long long)c.kib_s,
                  (unsigned long long)c.max_stall_us, (unsigned long long)c.generation, newest,
                  BLOCKS);
    assert_true(c.written >= 3 * BLOCKS);
    /* 8 blocks a request; the guest's counters are as of its last doorbell, which it rings
     * after each request's blocks are checked: at most one request behind. */
    uint64_t host_blocks = disk_stat(&p, "writes") * 8;
    if (host_blocks < c.written || host_blocks > c.written + 8)
        fail_msg("the host wrote %llu blocks, the guest counted %llu", (unsigned long long)host_blocks,
                 (unsigned long long)c.written);
    assert_int_equal(disk_stat(&p, "refused"), 0);
    assert_int_equal(disk_stat(&p, "io_errors"), 0);
    assert_true(disk_stat(&p, "flushes") >= 3);
    assert_int_equal(disk_stat(&p, "in_flight"), 0);
    json_object_put(vm_cmd(&p, "cont", NULL));
    disk_wait_passes(&p, c.passes + 1, WAIT_S);
    vm_proc_stop(&p);
}

/* Two disks (the second read-only and idle) move with the VM; the workload is on the
 * first. The destination is given its own SPECs, as a host that mounts the shared storage
 * elsewhere would be: the first disk by another path to the same file (a symlink). */
static void migrate_shared(void **state)
{
    (void)state;
    struct disk_file d, d2;
    disk_create(&d);
    disk_create(&d2);
    char spec[128], spec2[128];
    snprintf(spec, sizeof(spec), "%s,shared", d.path);
    snprintf(spec2, sizeof(spec2), "%s,shared,ro", d2.path);
    struct vm_proc src, dst;
    start_two_disk_vm(&src, spec, spec2);
    struct disk_counts before = disk_wait_passes(&src, 2, WAIT_S);
    char link[128], link_spec[160];
    snprintf(link, sizeof(link), "%s/elsewhere.img", d.dir);
    assert_int_equal(symlink(d.path, link), 0);
    snprintf(link_spec, sizeof(link_spec), "%s,shared", link);
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--disk", link_spec, "--disk", spec2));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *rep = vm_migrate(&src, to, NULL, WAIT_S);
    print_migration("disk VM", rep);
    assert_string_equal(json_str(rep, "status"), "completed");
    json_object_put(rep);
    vm_proc_wait_ctl(&dst, 30);

    /* The source handed the disk over: closed, and its write count frozen. */
    assert_int_equal(disk_stat(&src, "open"), 0);
    assert_int_equal(open_mode(src.pid, d.path), -1);
    assert_int_equal(open_mode(dst.pid, d.path), O_RDWR);
    assert_int_equal(open_mode(dst.pid, d2.path), O_RDONLY);
    uint64_t src_writes = disk_stat(&src, "writes");
    assert_true(src_writes * 8 >= before.written);

    /* The guest runs on at the destination, checking the source's blocks first. */
    struct disk_counts mid = disk_read_counts(&dst);
    struct disk_counts after = disk_wait_passes(&dst, mid.passes + 2, WAIT_S);
    assert_true(after.written > mid.written);
    assert_int_equal(disk_stat(&dst, "writable"), 1);
    assert_true(disk_stat(&dst, "writes") > 0);
    assert_int_equal(disk_stat_of(&dst, 1, "open"), 1);
    assert_int_equal(disk_stat_of(&dst, 1, "writable"), 0);
    assert_int_equal(disk_stat_of(&src, 1, "open"), 0);
    assert_int_equal(disk_stat(&src, "writes"), src_writes);
    assert_int_equal(disk_stat(&src, "open"), 0);

    json_object_put(vm_cmd(&dst, "stop", NULL));
    after = disk_read_counts(&dst);
    assert_int_equal(after.errors, 0);
    check_pattern(d.path, after.generation);
    print_message("    after the move: pass %llu, %llu blocks checked, longest request %llu us; "
                  "the source wrote %llu requests, none after the grant\n",
                  (unsigned long long)after.generation, (unsigned long long)after.checked,
                  (unsigned long long)after.max_stall_us, (unsigned long long)src_writes);
    assert_non_null(strstr(vm_serial_log(&src), "device 2 (block)"));
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

/* During pre-copy the destination has the disk open read-only, while the source writes
 * it; a cancelled migration leaves the source writing on, the destination gone. */
static void destination_read_only_until_granted(void **state)
{
    (void)state;
    struct disk_file d;
    disk_create(&d);
    char spec[128];
    snprintf(spec, sizeof(spec), "%s,shared", d.path);
    struct vm_proc src, dst;
    start_disk_vm(&src, spec);
    disk_wait_passes(&src, 1, WAIT_S);
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    json_object_object_add(a, "max_passes", json_object_new_int(1000));
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    vm_migrate_start(&src, to, a);
    json_object_put(a);
    vm_migration_wait_under_way(&src);
    assert_int_equal(open_mode(dst.pid, d.path), O_RDONLY);
    assert_int_equal(open_mode(src.pid, d.path), O_RDWR);
    uint64_t writes = disk_stat(&src, "writes");
    usleep(500000);
    assert_int_equal(open_mode(dst.pid, d.path), O_RDONLY);
    json_object_put(vm_cmd(&src, "cancel", NULL));
    struct json_object *m = vm_migration_wait(&src, 30);
    assert_string_equal(json_str(m, "status"), "cancelled");
    json_object_put(m);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    struct disk_counts c = disk_read_counts(&src);
    disk_wait_passes(&src, c.passes + 1, WAIT_S);
    assert_true(disk_stat(&src, "writes") > writes);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void unshared_disk_not_migrated(void **state)
{
    (void)state;
    struct disk_file d;
    disk_create(&d);
    struct vm_proc p;
    start_disk_vm(&p, d.path);
    disk_wait_passes(&p, 1, WAIT_S);
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "to", json_object_new_string("127.0.0.1:9"));
    harness_add_migrate_security(req);
    struct json_object *r = vm_cmd_any(&p, "migrate", req);
    const char *msg = json_object_to_json_string(r);
    if (!strstr(msg, "not on shared storage") || !strstr(msg, ",shared"))
        fail_msg("migrate of a VM with an unshared disk answered %s", msg);
    json_object_put(r);
    json_object_put(req);
    struct disk_counts c = disk_read_counts(&p);
    disk_wait_passes(&p, c.passes + 1, WAIT_S);   /* it runs on */
    vm_proc_stop(&p);
}

static void read_only_disk(void **state)
{
    (void)state;
    struct disk_file d;
    disk_create(&d);
    /* Blocks of pass 5, written by the host. */
    int fd = open(d.path, O_WRONLY);
    static uint64_t block[VS_DISK_BLOCK_WORDS];
    for (uint64_t b = 0; b < BLOCKS; b++) {
        vs_disk_block_fill(block, SEED, b, 5);
        assert_int_equal(pwrite(fd, block, sizeof(block), (off_t)(b * sizeof(block))),
                         (ssize_t)sizeof(block));
    }
    close(fd);
    uint8_t *before = file_read_all(d.path, DISK_BYTES);
    struct stat st0, st1;
    assert_int_equal(stat(d.path, &st0), 0);

    char spec[128];
    snprintf(spec, sizeof(spec), "%s,ro", d.path);
    struct vm_proc p;
    start_disk_vm(&p, spec);
    struct disk_counts c = disk_wait_passes(&p, 2, WAIT_S);
    assert_true(c.checked >= 2 * BLOCKS);
    assert_int_equal(c.written, 0);
    assert_non_null(strstr(vm_serial_log(&p), "read-only: a write was refused (status 1)"));
    assert_int_equal(disk_stat(&p, "refused"), 1);
    assert_int_equal(disk_stat(&p, "writes"), 0);
    assert_int_equal(disk_stat(&p, "writable"), 0);
    vm_proc_stop(&p);

    uint8_t *after = file_read_all(d.path, DISK_BYTES);
    assert_memory_equal(before, after, DISK_BYTES);
    assert_int_equal(stat(d.path, &st1), 0);
    assert_true(st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
                st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec);
    free(before);
    free(after);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(pattern_after_pause, remove_disks),
        cmocka_unit_test_teardown(migrate_shared, remove_disks),
        cmocka_unit_test_teardown(destination_read_only_until_granted, remove_disks),
        cmocka_unit_test_teardown(unshared_disk_not_migrated, remove_disks),
        cmocka_unit_test_teardown(read_only_disk, remove_disks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
