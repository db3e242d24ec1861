#include "disk_probe.h"
#include "harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

uint64_t disk_cpu0(struct json_object *st, const char *key)
{
    struct json_object *per, *v;
    if (!json_object_object_get_ex(json_member(st, "guest"), "per_vcpu", &per))
        return 0;
    struct json_object *c = json_object_array_get_idx(per, 0);
    if (!c || !json_object_object_get_ex(c, key, &v))
        return 0;
    return json_object_get_uint64(v);
}

struct disk_counts disk_read_counts(struct vm_proc *p)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    struct disk_counts c = {
        .passes = disk_cpu0(st, "passes"), .written = disk_cpu0(st, "pages_written"),
        .checked = disk_cpu0(st, "pages_checked"), .errors = guest_u64(st, "errors"),
        .generation = disk_cpu0(st, "generation"), .max_stall_us = disk_cpu0(st, "max_gap_us"),
        .kib_s = disk_cpu0(st, "rng_bytes"),
    };
    assert_string_not_equal(guest_str(st, "state"), "failed");
    json_object_put(st);
    return c;
}

struct disk_counts disk_wait_passes(struct vm_proc *p, uint64_t passes, double timeout_s)
{
    double t0 = now_s();
    for (;;) {
        struct disk_counts c = disk_read_counts(p);
        if (c.errors)
            fail_msg("the guest found %llu disk errors:\n%s", (unsigned long long)c.errors,
                     vm_serial_log(p));
        if (c.passes >= passes)
            return c;
        if (now_s() - t0 > timeout_s)
            fail_msg("stalled at %llu passes (want %llu):\n%s", (unsigned long long)c.passes,
                     (unsigned long long)passes, vm_serial_log(p));
        usleep(200000);
    }
}

uint64_t disk_stat_of(struct vm_proc *p, unsigned i, const char *key)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    struct json_object *d = json_object_array_get_idx(json_member(st, "disks"), i);
    assert_non_null(d);
    uint64_t v = json_object_get_uint64(json_member(d, key));
    json_object_put(st);
    return v;
}

uint64_t disk_stat(struct vm_proc *p, const char *key)
{
    return disk_stat_of(p, 0, key);
}

uint8_t *file_read_all(const char *path, size_t len)
{
    uint8_t *buf = malloc(len);
    int fd = open(path, O_RDONLY);
    assert_true(buf && fd >= 0);
    assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
    close(fd);
    return buf;
}
