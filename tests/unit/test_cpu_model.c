/* Unit: the CPU model tables (the psABI levels' exact CPUID bits), masking a host CPUID
 * table to a model, the names of features, and the destination's comparison of what the
 * guest was given with what its host offers (HELLO 2.4 cpu_features). No KVM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "migrate/precopy/handshake.h"
#include "vmm/cpu_model.h"
#include "expect_error.h"

#include <linux/kvm.h>
#include <stdlib.h>

#define BIT(n) (1u << (n))

static const struct vs_cpu_model *model(const char *name)
{
    const struct vs_cpu_model *m = NULL;
    assert_int_equal(vs_cpu_model_find(name, &m), 0);
    assert_non_null(m);
    return m;
}

static void test_find(void **state)
{
    (void)state;
    const struct vs_cpu_model *m = (void *)1;
    assert_int_equal(vs_cpu_model_find("host", &m), 0);
    assert_null(m);
    assert_string_equal(model("x86-64-v3")->name, "x86-64-v3");
    expect_msg(vs_cpu_model_find("skylake", &m), "--cpu 'skylake' is unknown", "x86-64-v4");
}

/* The psABI's lists, bit by bit (Intel SDM / AMD APM CPUID positions). */
static void test_level_bits(void **state)
{
    (void)state;
    const uint32_t *v1 = model("x86-64-v1")->required.w;
    assert_int_equal(v1[VS_CPUID_1_EDX], BIT(0) | BIT(8) | BIT(15) | BIT(23) | BIT(24) |
                                         BIT(25) | BIT(26));   /* fpu cx8 cmov mmx fxsr sse sse2 */
    assert_int_equal(v1[VS_CPUID_X1_EDX], BIT(11) | BIT(29));  /* syscall lm */
    assert_int_equal(v1[VS_CPUID_1_ECX] | v1[VS_CPUID_7_EBX] | v1[VS_CPUID_X1_ECX], 0);

    const uint32_t *v2 = model("x86-64-v2")->required.w;
    /* sse3 ssse3 cx16 sse4_1 sse4_2 popcnt; lahf */
    assert_int_equal(v2[VS_CPUID_1_ECX], BIT(0) | BIT(9) | BIT(13) | BIT(19) | BIT(20) | BIT(23));
    assert_int_equal(v2[VS_CPUID_X1_ECX], BIT(0));
    assert_int_equal(v2[VS_CPUID_7_EBX], 0);

    const uint32_t *v3 = model("x86-64-v3")->required.w;
    /* + fma movbe xsave(for osxsave) avx f16c; bmi1 avx2 bmi2; lzcnt */
    assert_int_equal(v3[VS_CPUID_1_ECX], v2[VS_CPUID_1_ECX] | BIT(12) | BIT(22) | BIT(26) |
                                         BIT(28) | BIT(29));
    assert_int_equal(v3[VS_CPUID_7_EBX], BIT(3) | BIT(5) | BIT(8));
    assert_int_equal(v3[VS_CPUID_X1_ECX], BIT(0) | BIT(5));
    assert_true(model("x86-64-v3")->allowed.w[VS_CPUID_1_ECX] & BIT(27));   /* osxsave */
    assert_false(model("x86-64-v2")->allowed.w[VS_CPUID_1_ECX] & BIT(27));

    const uint32_t *v4 = model("x86-64-v4")->required.w;
    /* + avx512f dq cd bw vl */
    assert_int_equal(v4[VS_CPUID_7_EBX], v3[VS_CPUID_7_EBX] | BIT(16) | BIT(17) | BIT(28) |
                                         BIT(30) | BIT(31));
    assert_int_equal(v4[VS_CPUID_1_ECX], v3[VS_CPUID_1_ECX]);
    /* Every level allows what it requires, and the platform a kernel needs. */
    const char *levels[] = { "x86-64-v1", "x86-64-v2", "x86-64-v3", "x86-64-v4" };
    for (int i = 0; i < 4; i++) {
        const struct vs_cpu_model *m = model(levels[i]);
        for (int w = 0; w < VS_CPUID_WORDS; w++)
            assert_int_equal(m->required.w[w] & ~m->allowed.w[w], 0);
        assert_true(m->allowed.w[VS_CPUID_1_EDX] & BIT(9));    /* apic */
        assert_true(m->allowed.w[VS_CPUID_1_EDX] & BIT(6));    /* pae */
        assert_true(m->allowed.w[VS_CPUID_X1_EDX] & BIT(20));  /* nx */
    }
}

static void test_names(void **state)
{
    (void)state;
    struct vs_cpu_features f;
    char buf[256];
    assert_int_equal(vs_cpu_features_parse("avx2,bmi2 avx512f", &f), 0);
    assert_int_equal(f.w[VS_CPUID_7_EBX], BIT(5) | BIT(8) | BIT(16));
    assert_int_equal(vs_cpu_features_describe(&f, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "avx2, bmi2, avx512f");
    expect_msg(vs_cpu_features_parse("avx2,avx9", &f), "'avx9' is unknown", NULL);
    memset(&f, 0, sizeof(f));
    f.w[VS_CPUID_7_ECX] = BIT(31);                        /* no name here */
    assert_int_equal(vs_cpu_features_describe(&f, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "cpuid.7.ecx[31]");
}

/* A host table: leaves 1, 7, 0xD (0 and 2, 5) and 0x80000001 with every bit set. */
static struct kvm_cpuid2 *full_host(void)
{
    struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 6 * sizeof(struct kvm_cpuid_entry2));
    assert_non_null(c);
    uint32_t fns[6][2] = { { 1, 0 }, { 7, 0 }, { 0xd, 0 }, { 0xd, 2 }, { 0xd, 5 },
                           { 0x80000001, 0 } };
    for (int i = 0; i < 6; i++)
        c->entries[i] = (struct kvm_cpuid_entry2){ .function = fns[i][0], .index = fns[i][1],
                                                   .eax = ~0u, .ebx = ~0u, .ecx = ~0u,
                                                   .edx = ~0u };
    c->nent = 6;
    return c;
}

static void test_apply(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = full_host();
    assert_int_equal(vs_cpu_model_apply(NULL, c), 0);             /* host: unchanged */
    assert_int_equal(c->entries[1].ebx, ~0u);
    const struct vs_cpu_model *v3 = model("x86-64-v3");
    assert_int_equal(vs_cpu_model_apply(v3, c), 0);
    struct vs_cpu_features got;
    vs_cpu_features_of(c, &got);
    for (int w = 0; w < VS_CPUID_WORDS; w++)
        assert_int_equal(got.w[w], v3->allowed.w[w]);
    assert_false(got.w[VS_CPUID_7_EBX] & BIT(16));                /* no avx512f */
    assert_int_equal(c->entries[2].eax, 0x7);                     /* XCR0: x87 SSE AVX */
    assert_int_equal(c->entries[3].eax, ~0u);                     /* AVX state kept */
    assert_int_equal(c->entries[4].eax, 0);                       /* ZMM state gone */
    free(c);

    /* A host without avx2 and bmi2 cannot run v3 (nor v4); it can run v2. */
    c = full_host();
    c->entries[1].ebx &= ~(BIT(5) | BIT(8));
    expect_msg(vs_cpu_model_apply(v3, c), "--cpu x86-64-v3 needs", "avx2, bmi2");
    assert_int_equal(vs_cpu_model_apply(model("x86-64-v2"), c), 0);
    free(c);
}

static void hello_with(struct vs_wire_hello *h, const struct vs_cpu_features *guest)
{
    memset(h, 0, sizeof(*h));
    h->version_major = VS_WIRE_VERSION_MAJOR;
    h->version_minor = VS_WIRE_VERSION_MINOR;
    memcpy(h->cpu_features, guest->w, sizeof(guest->w));
}

/* The destination's check: what a `host` guest was given against a host that lacks some
 * of it, with the model to fall back to named; a v2 guest fits; OSXSAVE (set by KVM at
 * run time, never offered) is not asked of the destination; a 2.3 HELLO is not looked at. */
static void test_destination(void **state)
{
    (void)state;
    struct kvm_cpuid2 *c = full_host();
    struct vs_cpu_features guest, host, hidden;
    vs_cpu_features_of(c, &guest);
    host = guest;
    host.w[VS_CPUID_1_ECX] &= ~BIT(27);                           /* KVM never offers osxsave */
    assert_int_equal(vs_cpu_features_parse("avx2,bmi2", &hidden), 0);
    host.w[VS_CPUID_7_EBX] &= ~hidden.w[VS_CPUID_7_EBX];
    struct vs_wire_hello h;
    hello_with(&h, &guest);
    expect_msg(vs_handshake_check_cpu(&h, &host), "the destination's CPU lacks avx2, bmi2:",
               "--cpu x86-64-v2 or migrate to a host that has them");

    struct kvm_cpuid2 *v2 = full_host();
    assert_int_equal(vs_cpu_model_apply(model("x86-64-v2"), v2), 0);
    vs_cpu_features_of(v2, &guest);
    hello_with(&h, &guest);
    assert_int_equal(vs_handshake_check_cpu(&h, &host), 0);

    /* Only avx512 missing: v3 is what to run. */
    vs_cpu_features_of(c, &guest);
    host = guest;
    host.w[VS_CPUID_7_EBX] &= ~(BIT(16) | BIT(30));
    hello_with(&h, &guest);
    expect_msg(vs_handshake_check_cpu(&h, &host), "lacks avx512f, avx512bw:", "--cpu x86-64-v3");

    h.version_minor = 3;                                          /* older source: no field */
    assert_int_equal(vs_handshake_check_cpu(&h, &host), 0);
    free(c);
    free(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_level_bits),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_destination),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
