/* Unit tests: where `vmshift run` finds the workload guest without --kernel
 * (src/cli/guest_path.c): VMSHIFT_GUEST, then the install layout next to the binary, then
 * the build tree; and errors that name every place looked at. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "cli/guest_path.h"
#include "cli/run_options.h"
#include "common/error.h"

/* A fake install tree: ROOT/bin/vmshift and ROOT/lib/vmshift/vmshift-guest.elf. */
struct tree {
    char root[64], bin[128], guest_dir[128], guest[192], exe[192];
};

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void make_tree(struct tree *t, int with_guest)
{
    snprintf(t->root, sizeof(t->root), "/tmp/vs_guest_path_XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->bin, sizeof(t->bin), "%s/bin", t->root);
    snprintf(t->guest_dir, sizeof(t->guest_dir), "%s/lib", t->root);
    assert_int_equal(mkdir(t->bin, 0755), 0);
    assert_int_equal(mkdir(t->guest_dir, 0755), 0);
    snprintf(t->guest_dir, sizeof(t->guest_dir), "%s/lib/vmshift", t->root);
    assert_int_equal(mkdir(t->guest_dir, 0755), 0);
    snprintf(t->exe, sizeof(t->exe), "%s/vmshift", t->bin);
    snprintf(t->guest, sizeof(t->guest), "%s/%s", t->guest_dir, VS_GUEST_FILE);
    touch(t->exe);
    if (with_guest)
        touch(t->guest);
}

static void remove_tree(struct tree *t)
{
    unlink(t->guest);
    unlink(t->exe);
    rmdir(t->guest_dir);
    snprintf(t->guest_dir, sizeof(t->guest_dir), "%s/lib", t->root);
    rmdir(t->guest_dir);
    rmdir(t->bin);
    assert_int_equal(rmdir(t->root), 0);
}

static void expect_error(int rc, const char *needle)
{
    assert_true(rc < 0);
    if (!strstr(vs_last_error(), needle))
        fail_msg("error '%s' does not mention '%s'", vs_last_error(), needle);
}

static void environment_comes_first(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t, 1);
    char other[192], out[4096];
    snprintf(other, sizeof(other), "%s/other.elf", t.root);
    touch(other);
    struct guest_search s = { .env = other, .self_exe = t.exe, .build_path = VMSHIFT_GUEST };
    assert_int_equal(guest_path_find(&s, out, sizeof(out)), 0);
    assert_string_equal(out, other);
    unlink(other);
    remove_tree(&t);
}

/* A set VMSHIFT_GUEST that is wrong is an error, not silently replaced by another guest. */
static void wrong_environment_is_an_error(void **state)
{
    (void)state;
    char out[4096];
    struct guest_search s = { .env = "/nonexistent/guest.elf", .build_path = VMSHIFT_GUEST };
    int rc = guest_path_find(&s, out, sizeof(out));
    expect_error(rc, "VMSHIFT_GUEST=/nonexistent/guest.elf");
    expect_error(rc, "unset it");
}

static void install_layout_before_build_tree(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t, 1);
    char out[4096];
    struct guest_search s = { .self_exe = t.exe, .build_path = VMSHIFT_GUEST };
    assert_int_equal(guest_path_find(&s, out, sizeof(out)), 0);
    assert_string_equal(out, t.guest); /* clean: no bin/.. in it */
    remove_tree(&t);
}

static void build_tree_when_not_installed(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t, 0);
    char out[4096];
    struct guest_search s = { .self_exe = t.exe, .build_path = VMSHIFT_GUEST };
    assert_int_equal(guest_path_find(&s, out, sizeof(out)), 0);
    assert_string_equal(out, VMSHIFT_GUEST);
    remove_tree(&t);
}

static void nothing_found_names_every_place(void **state)
{
    (void)state;
    struct tree t;
    make_tree(&t, 0);
    char out[4096];
    struct guest_search s = { .self_exe = t.exe, .build_path = "/nonexistent/build/g.elf" };
    int rc = guest_path_find(&s, out, sizeof(out));
    assert_int_equal(rc, -ENOENT);
    expect_error(rc, "VMSHIFT_GUEST (not set)");
    expect_error(rc, "/bin/../lib/vmshift/vmshift-guest.elf (No such file");
    expect_error(rc, t.root);
    expect_error(rc, "/nonexistent/build/g.elf (No such file");
    expect_error(rc, "--kernel");
    expect_error(rc, "cmake --install");
    remove_tree(&t);
}

static void too_small_buffer_is_an_error(void **state)
{
    (void)state;
    char out[8];
    struct guest_search s = { .build_path = VMSHIFT_GUEST };
    expect_error(guest_path_find(&s, out, sizeof(out)), "too long");
}

/* `vmshift run` without --kernel takes VMSHIFT_GUEST; --kernel wins over it. */
static void run_options_use_the_search(void **state)
{
    (void)state;
    struct run_options o;
    char *plain[] = { "run", NULL };
    char *given[] = { "run", "--kernel", "/k.elf", NULL };
    assert_int_equal(setenv("VMSHIFT_GUEST", VMSHIFT_GUEST, 1), 0);
    assert_int_equal(run_options_parse(1, plain, &o), 0);
    assert_string_equal(o.vm.kernel, VMSHIFT_GUEST);
    assert_int_equal(setenv("VMSHIFT_GUEST", "/nonexistent/g.elf", 1), 0);
    expect_error(run_options_parse(1, plain, &o), "VMSHIFT_GUEST=/nonexistent/g.elf");
    assert_int_equal(run_options_parse(3, given, &o), 0);
    assert_string_equal(o.vm.kernel, "/k.elf");
    assert_int_equal(unsetenv("VMSHIFT_GUEST"), 0);
    assert_int_equal(run_options_parse(1, plain, &o), 0);
    assert_string_equal(o.vm.kernel, VMSHIFT_GUEST); /* the build tree's, this test's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(environment_comes_first),
        cmocka_unit_test(wrong_environment_is_an_error),
        cmocka_unit_test(install_layout_before_build_tree),
        cmocka_unit_test(build_tree_when_not_installed),
        cmocka_unit_test(nothing_found_names_every_place),
        cmocka_unit_test(too_small_buffer_is_an_error),
        cmocka_unit_test(run_options_use_the_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
