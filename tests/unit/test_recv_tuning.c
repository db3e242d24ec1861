/* The receiver's tuning choices: --page-writes values and the prefault threads' default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "migrate/precopy/recv_tuning.h"

static void page_writes_parse(void **state)
{
    (void)state;
    enum vs_page_writes w = VS_PAGE_WRITES_MAPPING;
    assert_int_equal(vs_page_writes_parse("auto", &w), 0);
    assert_int_equal(w, VS_PAGE_WRITES_AUTO);
    assert_int_equal(vs_page_writes_parse("file", &w), 0);
    assert_int_equal(w, VS_PAGE_WRITES_FILE);
    assert_true(vs_page_writes_use_file(w, false));
    assert_true(vs_page_writes_use_file(w, true));
    assert_int_equal(vs_page_writes_parse("mapping", &w), 0);
    assert_int_equal(w, VS_PAGE_WRITES_MAPPING);
    assert_false(vs_page_writes_use_file(w, false));
    assert_false(vs_page_writes_use_file(w, true));
    assert_true(vs_page_writes_parse("mmap", &w) < 0);
    assert_int_equal(w, VS_PAGE_WRITES_MAPPING);    /* untouched on error */
    /* auto: the file with 4 KiB pages, the mapping with 2 MiB pages (measured faster) */
    assert_true(vs_page_writes_use_file(VS_PAGE_WRITES_AUTO, false));
    assert_false(vs_page_writes_use_file(VS_PAGE_WRITES_AUTO, true));
}

static void prefault_default(void **state)
{
    (void)state;
    assert_int_equal(vs_prefault_threads_default(1), 0);
    assert_int_equal(vs_prefault_threads_default(2), 0);
    assert_int_equal(vs_prefault_threads_default(3), 0);
    assert_int_equal(vs_prefault_threads_default(4), 1);
    assert_int_equal(vs_prefault_threads_default(8), 2);
    assert_int_equal(vs_prefault_threads_default(16), 4);
    assert_int_equal(vs_prefault_threads_default(128), 4);
    struct vs_recv_tuning t = { .prefault_threads = 3 };
    assert_int_equal(vs_recv_tuning_prefault_threads(&t), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(page_writes_parse),
        cmocka_unit_test(prefault_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
