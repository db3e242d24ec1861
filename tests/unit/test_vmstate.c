/* Unit tests: the device-state registry (src/vmm/vmstate.c): sections saved and loaded
 * per instance, older versions loading with newer fields left at their defaults, and
 * every malformed blob refused before anything is applied, with a message naming the
 * device, the instance and the version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "common/blob.h"
#include "vmm/vmstate.h"

/* A device whose version 2 added `extra`. */
struct toy_rec {
    uint32_t a;
    uint8_t b[3];
    uint64_t c;
    uint32_t extra;       /* since version 2 */
};

struct toy {
    struct toy_rec live;  /* "the device" */
    struct toy_rec rec;   /* its record */
    unsigned saves, loads;
    uint32_t loaded_version;
    int fail_save;
};

static void *toy_record(void *opaque) { return &((struct toy *)opaque)->rec; }

static int toy_pre_save(void *opaque)
{
    struct toy *t = opaque;
    if (t->fail_save)
        return vs_fail(EIO, "toy cannot save");
    t->saves++;
    t->rec = t->live;
    return 0;
}

static int toy_post_load(void *opaque, uint32_t version)
{
    struct toy *t = opaque;
    t->loads++;
    t->loaded_version = version;
    t->live = t->rec;
    return 0;
}

static const struct vs_vmstate_field toy_fields[] = {
    VS_VMSTATE_FIELD(struct toy_rec, a, 1),
    VS_VMSTATE_FIELD(struct toy_rec, b, 1),
    VS_VMSTATE_FIELD(struct toy_rec, c, 1),
    VS_VMSTATE_FIELD(struct toy_rec, extra, 2),
};
static const struct vs_vmstate toy_v1 = {
    .name = "toy", .version = 1, .min_version = 1, .fields = toy_fields, .nr_fields = 3,
    .record = toy_record, .pre_save = toy_pre_save, .post_load = toy_post_load,
};
static const struct vs_vmstate toy_v2 = {
    .name = "toy", .version = 2, .min_version = 1, .fields = toy_fields, .nr_fields = 4,
    .record = toy_record, .pre_save = toy_pre_save, .post_load = toy_post_load,
};
static const struct vs_vmstate toy_v3_min2 = {
    .name = "toy", .version = 3, .min_version = 2, .fields = toy_fields, .nr_fields = 4,
    .record = toy_record, .pre_save = toy_pre_save, .post_load = toy_post_load,
};

/* A second kind of device, to have two names in one registry. */
struct tick { uint64_t count; uint64_t rec; };
static void *tick_record(void *opaque) { return &((struct tick *)opaque)->rec; }
static const struct vs_vmstate_field tick_fields[] = {
    { "count", 0, sizeof(uint64_t), 1 },
};
static const struct vs_vmstate tick_desc = {
    .name = "tick", .version = 1, .min_version = 1, .fields = tick_fields, .nr_fields = 1,
    .record = tick_record,
};

static struct toy toy_with(uint32_t a, uint64_t c, uint32_t extra)
{
    return (struct toy){ .live = { .a = a, .b = { 1, 2, 3 }, .c = c, .extra = extra } };
}

/* Registry: toy 0, toy 1 (same type), tick 0 — in that order. */
static void build(struct vs_vmstate_registry *r, const struct vs_vmstate *toy_desc,
                  struct toy *t0, struct toy *t1, struct tick *k)
{
    vs_vmstate_init(r);
    assert_int_equal(vs_vmstate_register(r, toy_desc, 0, t0), 0);
    assert_int_equal(vs_vmstate_register(r, toy_desc, 1, t1), 0);
    assert_int_equal(vs_vmstate_register(r, &tick_desc, 0, k), 0);
}

static void saved_blob(const struct vs_vmstate *toy_desc, struct vs_blob *out)
{
    struct vs_vmstate_registry r;
    struct toy t0 = toy_with(10, 100, 1000), t1 = toy_with(11, 101, 1001);
    struct tick k = { .rec = 77 };
    build(&r, toy_desc, &t0, &t1, &k);
    assert_int_equal(vs_vmstate_save_all(&r, out), 0);
}

static void registration_is_checked(void **state)
{
    (void)state;
    struct vs_vmstate_registry r;
    struct toy t = { 0 };
    vs_vmstate_init(&r);
    assert_int_equal(vs_vmstate_register(&r, &toy_v2, 0, &t), 0);
    expect_msg(vs_vmstate_register(&r, &toy_v2, 0, &t), "toy instance 0", "twice");
    struct vs_vmstate bad = toy_v1;   /* a field newer than the device */
    bad.nr_fields = 4;
    bad.name = "bad";
    expect_msg(vs_vmstate_register(&r, &bad, 0, &t), "bad", "extra");
    bad = toy_v1;
    bad.name = "a-name-far-too-long-for-a-section";
    expect_msg(vs_vmstate_register(&r, &bad, 0, &t), "a-name-far-too-long", "characters");
    bad = toy_v2;
    bad.name = "minmax";
    bad.min_version = 3;
    expect_msg(vs_vmstate_register(&r, &bad, 0, &t), "minmax", "versions 3 to 2");
    for (unsigned i = 1; i < VS_VMSTATE_MAX; i++)
        assert_int_equal(vs_vmstate_register(&r, &toy_v2, i, &t), 0);
    expect_msg(vs_vmstate_register(&r, &tick_desc, 0, &t), "tick", "at most");
}

static void two_instances_round_trip(void **state)
{
    (void)state;
    struct vs_blob b = { 0 };
    saved_blob(&toy_v2, &b);
    /* 3 sections: toy fields 4+3+8+4 = 19 -> 24, tick 8 */
    assert_int_equal(b.len, 40 + 24 + 40 + 24 + 40 + 8);
    assert_int_equal(vs_vmstate_section_size(&toy_v2), 40 + 24);
    assert_int_equal(vs_vmstate_section_size(&toy_v1), 40 + 16);
    struct vs_vmstate_registry r;
    struct toy t0 = toy_with(0, 0, 0), t1 = toy_with(0, 0, 0);
    struct tick k = { 0 };
    build(&r, &toy_v2, &t0, &t1, &k);
    assert_int_equal(vs_vmstate_load_all(&r, b.data, b.len), 0);
    assert_int_equal(t0.live.a, 10);
    assert_int_equal(t0.live.c, 100);
    assert_int_equal(t0.live.extra, 1000);
    assert_int_equal(t0.live.b[2], 3);
    assert_int_equal(t1.live.a, 11);
    assert_int_equal(t1.live.c, 101);
    assert_int_equal(t1.live.extra, 1001);
    assert_int_equal(k.rec, 77);
    assert_int_equal(t0.loads, 1);
    assert_int_equal(t0.loaded_version, 2);
    vs_blob_free(&b);
}

static void an_older_version_keeps_the_newer_fields(void **state)
{
    (void)state;
    struct vs_blob b = { 0 };
    saved_blob(&toy_v1, &b);
    struct vs_vmstate_registry r;
    struct toy t0 = toy_with(0, 0, 555), t1 = toy_with(0, 0, 666);
    t0.rec.extra = 555;   /* the default the device gave its record */
    t1.rec.extra = 666;
    struct tick k = { 0 };
    build(&r, &toy_v2, &t0, &t1, &k);
    assert_int_equal(vs_vmstate_load_all(&r, b.data, b.len), 0);
    assert_int_equal(t0.loaded_version, 1);
    assert_int_equal(t0.live.a, 10);
    assert_int_equal(t0.live.c, 100);
    assert_int_equal(t0.live.extra, 555);
    assert_int_equal(t1.live.a, 11);
    assert_int_equal(t1.live.extra, 666);
    /* a device that dropped version 1 refuses it */
    struct toy u0 = { 0 }, u1 = { 0 };
    build(&r, &toy_v3_min2, &u0, &u1, &k);
    expect_msg(vs_vmstate_load_all(&r, b.data, b.len), "\"toy\" instance 0 version 1",
               "versions 2 to 3");
    assert_int_equal(u0.loads + u1.loads, 0);
    vs_blob_free(&b);
    /* and a newer version than this build knows is refused too */
    saved_blob(&toy_v2, &b);
    build(&r, &toy_v1, &u0, &u1, &k);
    expect_msg(vs_vmstate_load_all(&r, b.data, b.len), "\"toy\" instance 0 version 2",
               "versions 1 to 1");
    vs_blob_free(&b);
}

static void unknown_devices_and_instances_are_refused(void **state)
{
    (void)state;
    struct vs_blob b = { 0 };
    saved_blob(&toy_v2, &b);
    struct vs_vmstate_registry r;
    struct toy t0 = { 0 };
    struct tick k = { 0 };
    vs_vmstate_init(&r);                     /* no toy instance 1 here */
    assert_int_equal(vs_vmstate_register(&r, &toy_v2, 0, &t0), 0);
    assert_int_equal(vs_vmstate_register(&r, &tick_desc, 0, &k), 0);
    expect_msg(vs_vmstate_load_all(&r, b.data, b.len), "\"toy\" instance 1 version 2",
               "no such instance");
    assert_int_equal(t0.loads, 0);           /* checked before anything is applied */
    b.data[0] = 'j';                         /* "joy" */
    expect_msg(vs_vmstate_validate(&r, b.data, b.len), "\"joy\" instance 0 version 2",
               "no such device");
    b.data[0] = 't';
    memset(b.data + 3, 'x', 21);             /* no NUL in the name */
    expect_msg(vs_vmstate_validate(&r, b.data, b.len), "offset 0", "NUL");
    vs_blob_free(&b);
}

static void duplicate_and_missing_sections_are_refused(void **state)
{
    (void)state;
    struct vs_blob b = { 0 };
    saved_blob(&toy_v2, &b);
    struct vs_vmstate_registry r;
    struct toy t0 = { 0 }, t1 = { 0 };
    struct tick k = { 0 };
    build(&r, &toy_v2, &t0, &t1, &k);
    struct vs_blob dup = { 0 };
    assert_int_equal(vs_blob_append(&dup, b.data, b.len), 0);
    assert_int_equal(vs_blob_append(&dup, b.data + 64, 64), 0);   /* toy 1 again */
    expect_msg(vs_vmstate_load_all(&r, dup.data, dup.len), "\"toy\" instance 1", "second time");
    /* without toy 1's section */
    struct vs_blob miss = { 0 };
    assert_int_equal(vs_blob_append(&miss, b.data, 64), 0);
    assert_int_equal(vs_blob_append(&miss, b.data + 128, b.len - 128), 0);
    expect_msg(vs_vmstate_load_all(&r, miss.data, miss.len), "toy instance 1 (version 2)",
               "missing");
    expect_msg(vs_vmstate_validate(&r, NULL, 0), "toy instance 0", "missing");
    assert_int_equal(t0.loads + t1.loads, 0);
    vs_blob_free(&dup);
    vs_blob_free(&miss);
    vs_blob_free(&b);
}

static void truncated_and_corrupt_blobs_are_refused(void **state)
{
    (void)state;
    struct vs_blob b = { 0 };
    saved_blob(&toy_v2, &b);
    struct vs_vmstate_registry r;
    struct toy t0 = { 0 }, t1 = { 0 };
    struct tick k = { 0 };
    build(&r, &toy_v2, &t0, &t1, &k);
    for (size_t len = 0; len < b.len; len++)
        assert_true(vs_vmstate_load_all(&r, b.data, len) < 0);
    assert_int_equal(t0.loads + t1.loads, 0);
    expect_msg(vs_vmstate_validate(&r, b.data, 20), "offset 0", "truncated in its header");
    expect_msg(vs_vmstate_validate(&r, b.data, 50), "\"toy\" instance 0", "truncated");
    uint32_t v;
    memcpy(&v, b.data + 32, 4);
    v++;                                     /* length */
    memcpy(b.data + 32, &v, 4);
    expect_msg(vs_vmstate_validate(&r, b.data, b.len), "length 20", "expected 19");
    v--;
    memcpy(b.data + 32, &v, 4);
    b.data[36] = 1;                          /* reserved */
    expect_msg(vs_vmstate_validate(&r, b.data, b.len), "reserved 0x1", "toy");
    b.data[36] = 0;
    b.data[40 + 23] = 9;                     /* padding after toy 0's 19 bytes */
    expect_msg(vs_vmstate_validate(&r, b.data, b.len), "\"toy\" instance 0", "padding");
    b.data[40 + 23] = 0;
    assert_int_equal(vs_vmstate_load_all(&r, b.data, b.len), 0);
    vs_blob_free(&b);
}

static void a_failed_save_leaves_the_blob_as_it_was(void **state)
{
    (void)state;
    struct vs_vmstate_registry r;
    struct toy t0 = toy_with(1, 2, 3), t1 = toy_with(4, 5, 6);
    struct tick k = { 0 };
    build(&r, &toy_v2, &t0, &t1, &k);
    t1.fail_save = 1;
    struct vs_blob b = { 0 };
    assert_int_equal(vs_blob_append(&b, "head", 4), 0);
    expect_msg(vs_vmstate_save_all(&r, &b), "saving device toy instance 1", "cannot save");
    assert_int_equal(b.len, 4);
    vs_blob_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registration_is_checked),
        cmocka_unit_test(two_instances_round_trip),
        cmocka_unit_test(an_older_version_keeps_the_newer_fields),
        cmocka_unit_test(unknown_devices_and_instances_are_refused),
        cmocka_unit_test(duplicate_and_missing_sections_are_refused),
        cmocka_unit_test(truncated_and_corrupt_blobs_are_refused),
        cmocka_unit_test(a_failed_save_leaves_the_blob_as_it_was),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
