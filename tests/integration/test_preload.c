/* Integration: --preload puts a file's bytes into guest RAM before boot, where the guest
 * itself verifies them. */
#include "harness.h"
#include "vmm/fill.h"
#include "vmshift/page_format.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#define MiB (1ULL << 20)

/* A temporary file (its name in path) holding the words `--fill random --seed seed`
 * would put at [gpa, gpa+len); *digest is their XXH3. */
static void write_image(char path[28], uint64_t gpa, uint64_t len, uint64_t seed,
                        uint64_t *digest)
{
    strcpy(path, "/tmp/vmshift-preload-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    vs_fill_buffer(buf, len, gpa, VS_FILL_RANDOM, seed);
    *digest = XXH3_64bits(buf, len);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
}

static void preloaded_image_is_in_ram_and_verified_by_guest(void **state)
{
    (void)state;
    char path[28];
    uint64_t digest;
    write_image(path, 8 * MiB, 2 * MiB, 11, &digest);
    char preload[128];
    snprintf(preload, sizeof(preload), "%s@8M", path);

    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "32M", "--workload", "once", "--range", "8M:2M",
                           "--preload", preload, "--append", "fill=random seed=11"));
    struct json_object *st = wait_guest_at_least(&p, "passes", 2, 60);
    assert_int_equal(guest_u64(st, "range_pages"), 512);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);

    char want[17], *got = vm_digest(&p, 8 * MiB, 2 * MiB);
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)digest);
    assert_string_equal(got, want);
    free(got);
    vm_proc_stop(&p);
    unlink(path);
}

static void guest_rejects_an_image_that_is_not_what_it_expects(void **state)
{
    (void)state;
    char path[28];
    uint64_t digest;
    write_image(path, 8 * MiB, 1 * MiB, 12, &digest); /* seed 12, guest expects 11 */
    char preload[128];
    snprintf(preload, sizeof(preload), "%s@8M", path);
    struct vm_proc p;
    vm_proc_start(&p, ARGS("--mem", "32M", "--workload", "once", "--range", "8M:1M",
                           "--preload", preload, "--append", "fill=random seed=11"));
    struct json_object *st = wait_guest_at_least(&p, "passes", 1, 60);
    assert_int_equal(guest_u64(st, "errors") % 256, 0);
    assert_true(guest_u64(st, "errors") >= 256); /* every page of the first pass */
    assert_int_equal(guest_u64(st, "first_bad_addr"), 8 * MiB);
    json_object_put(st);
    vm_proc_stop(&p);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(preloaded_image_is_in_ram_and_verified_by_guest),
        cmocka_unit_test(guest_rejects_an_image_that_is_not_what_it_expects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
