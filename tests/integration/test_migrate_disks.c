/* Integration: shared-nothing storage migration (`migrate --with-disks`). A VM whose disk is
 * a local 64 MiB file (half of it random data written by the host before boot, the rest
 * holes) runs the guest's disk workload (sequenced, checksummed 4 KiB blocks, each read
 * back and checked before it is overwritten: guest/disk.c) and migrates to a receiver that
 * was given its own pre-created file (`receive --disk DEST`), which starts out with garbage
 * the migration must clear.
 *  - Both ways: there and back again, the guest finds 0 errors; each time the
 *    destination's file equals the source's final file byte for byte outside the
 *    workload's range (which the guest writes on after the resume and checks itself), and
 *    the random half is the host's data; the report's disk section counts the blocks.
 *  - Killing the destination mid-way: the source's migration fails, the guest runs on with
 *    0 errors on its disk, whose random half is untouched; a later migration (to a new
 *    receiver) of the same VM completes. This VM also has a second disk, shared and
 *    read-only: it is not copied (the report counts one disk) and stays as it was.
 *  - Cancelled in pre-copy: the source's disk is as the guest left it, the VM runs on.
 *  - A block changed behind the device's back (the host writes the source's file after the
 *    bulk pass sent that block: a write the dirty tracking cannot see): with x-disk-verify
 *    blackout the disk digests differ, the commit is refused, the migration fails and the
 *    VM runs on here; with after (the default, which reads nothing in the blackout) the
 *    migration completes and the source's audit after the commit reports the block.
 *    Every other migration's report says the audit found the disk equal. */
#include "disk_probe.h"
#include "harness.h"
#include "vmshift/disk_format.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISK_BYTES (64u << 20)
#define BLOCKS 64                         /* the workload's range: 256 KiB */
#define RANGE_BYTES (BLOCKS * 4096u)
#define RANDOM_OFF (4u << 20)             /* the host's random half: [4 MiB, 36 MiB) */
#define RANDOM_BYTES (32u << 20)
#define GARBAGE_OFF (40u << 20)           /* in the destination's file before it receives */
#define SEED 1
#define WAIT_S 180

static char dir[64];
/* A second disk, shared and read-only, that a VM of the test may have beside its copied one
 * ("": none): migrations leave it where it is (HELLO disks_copied names disk 0 only). */
static char shared_spec[160];

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

/* The host's random data: a fixed xorshift stream, regenerated to check it. */
static void fill_random(uint8_t *buf, size_t len)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
}

static void create_file(const char *path, uint64_t off, const uint8_t *data, size_t len)
{
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);   /* sparse */
    if (len)
        assert_int_equal(pwrite(fd, data, len, (off_t)off), (ssize_t)len);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vs-mdisk-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[128];
    const char *names[] = { "src.img", "dst.img", "dst2.img", "shared.img" };
    shared_spec[0] = '\0';
    for (unsigned i = 0; i < 4; i++) {
        path_of(p, sizeof(p), names[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

/* The source disk, and a destination file full of garbage where the source has a hole. */
static void make_disks(const char *src, const char *dst)
{
    uint8_t *rnd = malloc(RANDOM_BYTES);
    assert_non_null(rnd);
    fill_random(rnd, RANDOM_BYTES);
    create_file(src, RANDOM_OFF, rnd, RANDOM_BYTES);
    memset(rnd, 0x5a, 1u << 20);
    create_file(dst, GARBAGE_OFF, rnd, 1u << 20);
    free(rnd);
}

static uint8_t *read_all(const char *path)
{
    uint8_t *buf = malloc(DISK_BYTES);
    int fd = open(path, O_RDONLY);
    assert_true(buf && fd >= 0);
    assert_int_equal(pread(fd, buf, DISK_BYTES, 0), (ssize_t)DISK_BYTES);
    close(fd);
    return buf;
}

/* Outside the workload's range the two files are the same, and hold the host's random
 * data where it put it and zeros elsewhere. */
static void check_copy(const char *a, const char *b)
{
    uint8_t *x = read_all(a), *y = b ? read_all(b) : NULL;
    uint8_t *rnd = malloc(RANDOM_BYTES);
    assert_non_null(rnd);
    fill_random(rnd, RANDOM_BYTES);
    if (y && memcmp(x + RANGE_BYTES, y + RANGE_BYTES, DISK_BYTES - RANGE_BYTES)) {
        size_t i = RANGE_BYTES;
        while (x[i] == y[i])
            i++;
        fail_msg("%s and %s differ at byte %zu (0x%02x, 0x%02x)", a, b, i, x[i], y[i]);
    }
    if (memcmp(x + RANDOM_OFF, rnd, RANDOM_BYTES))
        fail_msg("the host's random data in %s changed", a);
    for (size_t i = RANGE_BYTES; i < DISK_BYTES; i++)
        if ((i < RANDOM_OFF || i >= RANDOM_OFF + RANDOM_BYTES) && x[i])
            fail_msg("byte %zu of %s is 0x%02x, not 0", i, a, x[i]);
    free(rnd);
    free(x);
    free(y);
}

static void start_vm(struct vm_proc *p, const char *disk)
{
    char append[32];
    snprintf(append, sizeof(append), "disk_blocks=%d", BLOCKS);
    if (shared_spec[0])
        vm_proc_start(p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk", "--disk",
                              disk, "--disk", shared_spec, "--append", append));
    else
        vm_proc_start(p, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk", "--disk",
                              disk, "--append", append));
}

static struct json_object *with_disks_args(void)
{
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "with_disks", json_object_new_boolean(1));
    return a;
}

static void print_passes(struct json_object *rep)
{
    struct json_object *passes = json_member(rep, "passes");
    for (size_t i = 0; i < json_object_array_length(passes); i++) {
        struct json_object *p = json_object_array_get_idx(passes, i);
        print_message("    pass %zu: %.1f ms, %.1f MiB, %llu pages, %llu zero, %llu disk blocks, "
                      "%.1f MiB to send\n", i, json_num(p, "time"),
                      json_num(p, "bytes-transferred") / 1048576.0,
                      (unsigned long long)json_num(p, "pages-sent"),
                      (unsigned long long)json_num(p, "zero-pages"),
                      (unsigned long long)json_num(p, "disk-blocks"),
                      json_num(p, "bytes-to-send") / 1048576.0);
    }
}

/* Migrate src (disk from_img) to a new receiver on to_img; the copy is checked once the
 * source handed it over (its file is final then). Returns the running destination. */
static void move(struct vm_proc *src, struct vm_proc *dst, const char *from_img,
                 const char *to_img, const char *label)
{
    if (shared_spec[0])
        vm_receiver_start(dst, "127.0.0.1", NULL, ARGS("--disk", to_img, "--disk", shared_spec));
    else
        vm_receiver_start(dst, "127.0.0.1", NULL, ARGS("--disk", to_img));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    struct json_object *a = with_disks_args();
    struct json_object *rep = vm_migrate(src, to, a, WAIT_S);
    json_object_put(a);
    print_migration(label, rep);
    if (strcmp(json_str(rep, "status"), "completed"))
        fail_msg("%s: %s (%s)", label, json_str(rep, "status"), json_str(rep, "error"));
    struct json_object *disk = json_member(rep, "disk");
    uint64_t blocks = (uint64_t)json_num(disk, "blocks");
    uint64_t bytes = (uint64_t)json_num(disk, "bytes");
    print_message("    disk: %llu blocks, %llu zero, %.1f MiB in %u passes, %llu in the "
                  "blackout, digest %s\n", (unsigned long long)blocks,
                  (unsigned long long)json_num(disk, "zero-blocks"), (double)bytes / 1048576.0,
                  (unsigned)json_num(disk, "passes"), (unsigned long long)json_num(disk, "final-blocks"),
                  json_str(disk, "digest"));
    print_passes(rep);
    assert_string_equal(json_str(disk, "audit"), "equal");
    assert_int_equal((uint64_t)json_num(disk, "disks"), 1);
    assert_true(blocks >= RANDOM_BYTES / (64u << 10));   /* the random half at least */
    assert_true(bytes >= RANDOM_BYTES && bytes < 3 * (uint64_t)RANDOM_BYTES);
    assert_true(json_num(disk, "allocated") >= RANDOM_BYTES);
    json_object_put(rep);
    vm_proc_wait_ctl(dst, 30);
    check_copy(to_img, from_img);
}

static void both_ways(void **state)
{
    (void)state;
    char src_img[128], dst_img[128];
    path_of(src_img, sizeof(src_img), "src.img");
    path_of(dst_img, sizeof(dst_img), "dst.img");
    make_disks(src_img, dst_img);
    struct vm_proc a, b, c;
    start_vm(&a, src_img);
    disk_wait_passes(&a, 2, WAIT_S);
    move(&a, &b, src_img, dst_img, "there");
    vm_proc_stop(&a);
    struct disk_counts mid = disk_read_counts(&b);
    disk_wait_passes(&b, mid.passes + 2, WAIT_S);
    move(&b, &c, dst_img, src_img, "back");
    vm_proc_stop(&b);
    mid = disk_read_counts(&c);
    struct disk_counts end = disk_wait_passes(&c, mid.passes + 2, WAIT_S);
    json_object_put(vm_cmd(&c, "stop", NULL));
    end = disk_read_counts(&c);
    assert_int_equal(end.errors, 0);
    check_copy(src_img, NULL);
    print_message("    after two moves: %llu passes, 0 errors, longest I/O stall %llu us\n",
                  (unsigned long long)end.passes, (unsigned long long)end.max_stall_us);
    vm_proc_stop(&c);
}

/* The destination dies in pre-copy: the source keeps its disk and runs on; a new migration
 * of the same VM then completes. */
static void destination_killed(void **state)
{
    (void)state;
    char src_img[128], dst_img[128], dst2_img[128];
    path_of(src_img, sizeof(src_img), "src.img");
    path_of(dst_img, sizeof(dst_img), "dst.img");
    path_of(dst2_img, sizeof(dst2_img), "dst2.img");
    make_disks(src_img, dst_img);
    create_file(dst2_img, 0, NULL, 0);
    char shared_img[128];
    path_of(shared_img, sizeof(shared_img), "shared.img");
    uint8_t mark[4096];
    memset(mark, 0x77, sizeof(mark));
    create_file(shared_img, 8192, mark, sizeof(mark));
    snprintf(shared_spec, sizeof(shared_spec), "%s,shared,ro", shared_img);
    struct vm_proc src, dst, dst2;
    start_vm(&src, src_img);
    disk_wait_passes(&src, 1, WAIT_S);
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--disk", dst_img, "--disk", shared_spec));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *a = with_disks_args();   /* slow, and never converging */
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    json_object_object_add(a, "max_passes", json_object_new_int(1000));
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    vm_migrate_start(&src, to, a);
    json_object_put(a);
    vm_migration_wait_under_way(&src);   /* 8 MiB out: the disk's bulk pass is first */
    assert_int_equal(kill(dst.pid, SIGKILL), 0);
    struct json_object *m = vm_migration_wait(&src, 60);
    assert_string_equal(json_str(m, "status"), "failed");
    assert_true(json_num(json_member(m, "disk"), "bytes") > 0);
    json_object_put(m);
    vm_proc_wait_exit(&dst, 10);
    struct disk_counts c = disk_read_counts(&src);
    disk_wait_passes(&src, c.passes + 2, WAIT_S);

    move(&src, &dst2, src_img, dst2_img, "after the failed one");
    vm_proc_stop(&src);
    c = disk_read_counts(&dst2);
    c = disk_wait_passes(&dst2, c.passes + 1, WAIT_S);
    assert_int_equal(c.errors, 0);
    vm_proc_stop(&dst2);
    vm_proc_stop(&dst);
    uint8_t *sh = read_all(shared_img);   /* the shared disk was neither copied nor written */
    for (size_t i = 0; i < DISK_BYTES; i++)
        if (sh[i] != (i >= 8192 && i < 8192 + sizeof(mark) ? 0x77 : 0))
            fail_msg("byte %zu of the shared disk is 0x%02x", i, sh[i]);
    free(sh);
    shared_spec[0] = '\0';
}

/* Cancelled in pre-copy: the source's disk is as the guest left it (random half, holes),
 * the guest runs on with 0 errors, the destination is gone. */
static void cancelled(void **state)
{
    (void)state;
    char src_img[128], dst_img[128];
    path_of(src_img, sizeof(src_img), "src.img");
    path_of(dst_img, sizeof(dst_img), "dst.img");
    make_disks(src_img, dst_img);
    struct vm_proc src, dst;
    start_vm(&src, src_img);
    disk_wait_passes(&src, 1, WAIT_S);
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--disk", dst_img));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    struct json_object *a = with_disks_args();
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    json_object_object_add(a, "max_passes", json_object_new_int(1000));
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    vm_migrate_start(&src, to, a);
    json_object_put(a);
    vm_migration_wait_under_way(&src);
    json_object_put(vm_cmd(&src, "cancel", NULL));
    struct json_object *m = vm_migration_wait(&src, 60);
    assert_string_equal(json_str(m, "status"), "cancelled");
    json_object_put(m);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    struct disk_counts c = disk_read_counts(&src);
    c = disk_wait_passes(&src, c.passes + 2, WAIT_S);
    assert_int_equal(c.errors, 0);
    json_object_put(vm_cmd(&src, "stop", NULL));
    check_copy(src_img, NULL);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static double transferred(struct vm_proc *p, const char **status)
{
    static char st[32];
    struct json_object *r = vm_cmd(p, "migrate-status", NULL), *m, *ram;
    assert_true(json_object_object_get_ex(r, "migration", &m));
    snprintf(st, sizeof(st), "%s", json_str(m, "status"));
    double sent = json_object_object_get_ex(m, "ram", &ram) ? json_num(ram, "transferred") : 0;
    json_object_put(r);
    *status = st;
    return sent;
}

/* The host writes 64 KiB of the source's file at 5 MiB (block 80) once the bulk pass has
 * sent it; verify is x-disk-verify's value. Returns the final report. */
static struct json_object *behind_the_back(const char *verify, struct vm_proc *src,
                                           struct vm_proc *dst)
{
    char src_img[128], dst_img[128];
    path_of(src_img, sizeof(src_img), "src.img");
    path_of(dst_img, sizeof(dst_img), "dst.img");
    make_disks(src_img, dst_img);
    start_vm(src, src_img);
    disk_wait_passes(src, 1, WAIT_S);
    vm_receiver_start(dst, "127.0.0.1", NULL, ARGS("--disk", dst_img));
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    /* The bulk pass takes ~2 s, the pages of pass 0 ~2 s more; then it switches over (the
     * guest's ~30 MiB of dirty pages fit the limit at this rate). */
    struct json_object *a = with_disks_args();
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    json_object_object_add(a, "downtime_limit", json_object_new_int(5000));
    json_object_object_add(a, "disk_verify", json_object_new_string(verify));
    vm_migrate_start(src, to, a);
    json_object_put(a);
    const char *status = "";
    double t0 = now_s();
    while (transferred(src, &status) < (12 << 20)) {   /* the block at 5 MiB has gone */
        if (strcmp(status, "active") && strcmp(status, "setup"))
            fail_msg("the migration is %s before 12 MiB went out", status);
        if (now_s() - t0 > 60)
            fail_msg("the migration never got 12 MiB out");
        usleep(20000);
    }
    uint8_t junk[64 << 10];
    memset(junk, 0xee, sizeof(junk));
    int fd = open(src_img, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, sizeof(junk), 5 << 20), (ssize_t)sizeof(junk));
    assert_int_equal(fsync(fd), 0);
    close(fd);
    struct json_object *m = vm_migration_wait(src, WAIT_S);
    print_message("    x-disk-verify %s: %s: %s\n", verify, json_str(m, "status"),
                  json_str(m, "error"));
    print_passes(m);
    return m;
}

static void behind_the_back_refused_in_the_blackout(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    struct json_object *m = behind_the_back("blackout", &src, &dst);
    assert_string_equal(json_str(m, "status"), "failed");
    assert_non_null(strstr(json_str(m, "error"), "digest"));
    assert_non_null(strstr(json_str(m, "error"), "differs from the source's"));
    json_object_put(m);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    struct disk_counts c = disk_read_counts(&src);
    c = disk_wait_passes(&src, c.passes + 2, WAIT_S);   /* it runs on here */
    assert_int_equal(c.errors, 0);
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

static void behind_the_back_reported_by_the_audit(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    struct json_object *m = behind_the_back("after", &src, &dst);
    assert_string_equal(json_str(m, "status"), "completed");
    struct json_object *disk = json_member(m, "disk");
    assert_string_equal(json_str(disk, "audit"), "differs");
    assert_int_equal((uint64_t)json_num(disk, "audit-block"), 80);   /* 5 MiB / 64 KiB */
    assert_non_null(strstr(json_str(m, "error"), "block 80 (byte 5242880)"));
    assert_non_null(strstr(json_str(m, "error"), "changed behind the device's back"));
    json_object_put(m);
    vm_proc_wait_ctl(&dst, 30);   /* the destination runs the VM: the audit came after */
    vm_proc_stop(&dst);
    vm_proc_stop(&src);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(destination_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(behind_the_back_refused_in_the_blackout, setup, teardown),
        cmocka_unit_test_setup_teardown(behind_the_back_reported_by_the_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(cancelled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
