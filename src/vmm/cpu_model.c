#include "vmm/cpu_model.h"
#include "common/error.h"
#include "vmm/kvm.h"

#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIT(n) (1u << (n))

struct feature_name {
    const char *name;
    enum vs_cpuid_word word;
    unsigned bit;
};

/* Names as Linux's /proc/cpuinfo spells them (lzcnt is its "abm"). */
static const struct feature_name names[] = {
    { "sse3", VS_CPUID_1_ECX, 0 },      { "pclmulqdq", VS_CPUID_1_ECX, 1 },
    { "ssse3", VS_CPUID_1_ECX, 9 },     { "fma", VS_CPUID_1_ECX, 12 },
    { "cx16", VS_CPUID_1_ECX, 13 },     { "sse4_1", VS_CPUID_1_ECX, 19 },
    { "sse4_2", VS_CPUID_1_ECX, 20 },   { "x2apic", VS_CPUID_1_ECX, 21 },
    { "movbe", VS_CPUID_1_ECX, 22 },    { "popcnt", VS_CPUID_1_ECX, 23 },
    { "tsc_deadline_timer", VS_CPUID_1_ECX, 24 }, { "aes", VS_CPUID_1_ECX, 25 },
    { "xsave", VS_CPUID_1_ECX, 26 },    { "osxsave", VS_CPUID_1_ECX, 27 },
    { "avx", VS_CPUID_1_ECX, 28 },      { "f16c", VS_CPUID_1_ECX, 29 },
    { "rdrand", VS_CPUID_1_ECX, 30 },   { "hypervisor", VS_CPUID_1_ECX, 31 },
    { "fpu", VS_CPUID_1_EDX, 0 },       { "vme", VS_CPUID_1_EDX, 1 },
    { "de", VS_CPUID_1_EDX, 2 },        { "pse", VS_CPUID_1_EDX, 3 },
    { "tsc", VS_CPUID_1_EDX, 4 },       { "msr", VS_CPUID_1_EDX, 5 },
    { "pae", VS_CPUID_1_EDX, 6 },       { "mce", VS_CPUID_1_EDX, 7 },
    { "cx8", VS_CPUID_1_EDX, 8 },       { "apic", VS_CPUID_1_EDX, 9 },
    { "sep", VS_CPUID_1_EDX, 11 },      { "mtrr", VS_CPUID_1_EDX, 12 },
    { "pge", VS_CPUID_1_EDX, 13 },      { "mca", VS_CPUID_1_EDX, 14 },
    { "cmov", VS_CPUID_1_EDX, 15 },     { "pat", VS_CPUID_1_EDX, 16 },
    { "pse36", VS_CPUID_1_EDX, 17 },    { "clflush", VS_CPUID_1_EDX, 19 },
    { "mmx", VS_CPUID_1_EDX, 23 },      { "fxsr", VS_CPUID_1_EDX, 24 },
    { "sse", VS_CPUID_1_EDX, 25 },      { "sse2", VS_CPUID_1_EDX, 26 },
    { "ss", VS_CPUID_1_EDX, 27 },       { "ht", VS_CPUID_1_EDX, 28 },
    { "fsgsbase", VS_CPUID_7_EBX, 0 },  { "bmi1", VS_CPUID_7_EBX, 3 },
    { "hle", VS_CPUID_7_EBX, 4 },       { "avx2", VS_CPUID_7_EBX, 5 },
    { "smep", VS_CPUID_7_EBX, 7 },      { "bmi2", VS_CPUID_7_EBX, 8 },
    { "erms", VS_CPUID_7_EBX, 9 },      { "invpcid", VS_CPUID_7_EBX, 10 },
    { "rtm", VS_CPUID_7_EBX, 11 },      { "avx512f", VS_CPUID_7_EBX, 16 },
    { "avx512dq", VS_CPUID_7_EBX, 17 }, { "rdseed", VS_CPUID_7_EBX, 18 },
    { "adx", VS_CPUID_7_EBX, 19 },      { "smap", VS_CPUID_7_EBX, 20 },
    { "avx512ifma", VS_CPUID_7_EBX, 21 }, { "clflushopt", VS_CPUID_7_EBX, 23 },
    { "clwb", VS_CPUID_7_EBX, 24 },     { "avx512cd", VS_CPUID_7_EBX, 28 },
    { "sha_ni", VS_CPUID_7_EBX, 29 },   { "avx512bw", VS_CPUID_7_EBX, 30 },
    { "avx512vl", VS_CPUID_7_EBX, 31 },
    { "avx512vbmi", VS_CPUID_7_ECX, 1 }, { "umip", VS_CPUID_7_ECX, 2 },
    { "pku", VS_CPUID_7_ECX, 3 },       { "ospke", VS_CPUID_7_ECX, 4 },
    { "avx512_vbmi2", VS_CPUID_7_ECX, 6 }, { "gfni", VS_CPUID_7_ECX, 8 },
    { "vaes", VS_CPUID_7_ECX, 9 },      { "vpclmulqdq", VS_CPUID_7_ECX, 10 },
    { "avx512_vnni", VS_CPUID_7_ECX, 11 }, { "avx512_bitalg", VS_CPUID_7_ECX, 12 },
    { "avx512_vpopcntdq", VS_CPUID_7_ECX, 14 }, { "la57", VS_CPUID_7_ECX, 16 },
    { "rdpid", VS_CPUID_7_ECX, 22 },
    { "lahf_lm", VS_CPUID_X1_ECX, 0 },  { "abm", VS_CPUID_X1_ECX, 5 },
    { "sse4a", VS_CPUID_X1_ECX, 6 },    { "3dnowprefetch", VS_CPUID_X1_ECX, 8 },
    { "syscall", VS_CPUID_X1_EDX, 11 }, { "nx", VS_CPUID_X1_EDX, 20 },
    { "pdpe1gb", VS_CPUID_X1_EDX, 26 }, { "rdtscp", VS_CPUID_X1_EDX, 27 },
    { "lm", VS_CPUID_X1_EDX, 29 },
};

/* Bits KVM computes from guest state (CR4.OSXSAVE, CR4.PKE) instead of offering them. */
static const struct vs_cpu_features runtime_bits = {
    .w = { [VS_CPUID_1_ECX] = BIT(27), [VS_CPUID_7_ECX] = BIT(4) },
};

/* What every named model lets the guest see besides its ISA: the platform (APIC, timers,
 * paging, MSRs) a kernel needs, none of it required of the host. */
#define PLATFORM_1_ECX (BIT(21) | BIT(24) | BIT(31))
#define PLATFORM_1_EDX (BIT(1) | BIT(2) | BIT(3) | BIT(4) | BIT(5) | BIT(6) | BIT(7) | \
                        BIT(9) | BIT(11) | BIT(12) | BIT(13) | BIT(14) | BIT(16) | \
                        BIT(17) | BIT(19))
#define PLATFORM_X1_EDX (BIT(20) | BIT(27))

/* The psABI levels, cumulative. v3's OSXSAVE is required of the host as XSAVE (KVM
 * sets OSXSAVE when the guest enables it) and allowed as itself. */
#define V1_1_EDX  (BIT(0) | BIT(8) | BIT(15) | BIT(23) | BIT(24) | BIT(25) | BIT(26))
#define V1_X1_EDX (BIT(11) | BIT(29))
#define V2_1_ECX  (BIT(0) | BIT(9) | BIT(13) | BIT(19) | BIT(20) | BIT(23))
#define V2_X1_ECX BIT(0)
#define V3_1_ECX  (V2_1_ECX | BIT(12) | BIT(22) | BIT(26) | BIT(28) | BIT(29))
#define V3_7_EBX  (BIT(3) | BIT(5) | BIT(8))
#define V3_X1_ECX (V2_X1_ECX | BIT(5))
#define V4_7_EBX  (V3_7_EBX | BIT(16) | BIT(17) | BIT(28) | BIT(30) | BIT(31))

#define LEVEL(n, ecx1, ebx7, ecxx1) { \
    .name = n, \
    .required = { .w = { ecx1, V1_1_EDX, ebx7, 0, ecxx1, V1_X1_EDX } }, \
    .allowed = { .w = { (ecx1) | PLATFORM_1_ECX | ((ecx1) & BIT(26) ? BIT(27) : 0), \
                        V1_1_EDX | PLATFORM_1_EDX, ebx7, 0, ecxx1, \
                        V1_X1_EDX | PLATFORM_X1_EDX } } }

static const struct vs_cpu_model models[] = {
    LEVEL("x86-64-v1", 0, 0, 0),
    LEVEL("x86-64-v2", V2_1_ECX, 0, V2_X1_ECX),
    LEVEL("x86-64-v3", V3_1_ECX, V3_7_EBX, V3_X1_ECX),
    LEVEL("x86-64-v4", V3_1_ECX, V4_7_EBX, V3_X1_ECX),
};

const char *vs_cpu_model_names(void)
{
    return "host, x86-64-v1, x86-64-v2, x86-64-v3, x86-64-v4";
}

int vs_cpu_model_find(const char *name, const struct vs_cpu_model **out)
{
    *out = NULL;
    if (strcmp(name, "host") == 0)
        return 0;
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        if (strcmp(name, models[i].name) == 0) {
            *out = &models[i];
            return 0;
        }
    return vs_fail(EINVAL, "--cpu '%s' is unknown; use one of %s", name, vs_cpu_model_names());
}

static struct kvm_cpuid_entry2 *find_leaf(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
    for (uint32_t i = 0; i < c->nent; i++)
        if (c->entries[i].function == fn && c->entries[i].index == idx)
            return (struct kvm_cpuid_entry2 *)&c->entries[i];
    return NULL;
}

void vs_cpu_features_of(const struct kvm_cpuid2 *c, struct vs_cpu_features *f)
{
    memset(f, 0, sizeof(*f));
    const struct kvm_cpuid_entry2 *e;
    if ((e = find_leaf(c, 1, 0))) {
        f->w[VS_CPUID_1_ECX] = e->ecx;
        f->w[VS_CPUID_1_EDX] = e->edx;
    }
    if ((e = find_leaf(c, 7, 0))) {
        f->w[VS_CPUID_7_EBX] = e->ebx;
        f->w[VS_CPUID_7_ECX] = e->ecx;
    }
    if ((e = find_leaf(c, 0x80000001, 0))) {
        f->w[VS_CPUID_X1_ECX] = e->ecx;
        f->w[VS_CPUID_X1_EDX] = e->edx;
    }
}

void vs_cpu_features_store(struct kvm_cpuid2 *c, const uint32_t *w)
{
    struct kvm_cpuid_entry2 *e;
    if ((e = find_leaf(c, 1, 0))) {
        e->ecx = w[VS_CPUID_1_ECX];
        e->edx = w[VS_CPUID_1_EDX];
    }
    if ((e = find_leaf(c, 7, 0))) {
        e->ebx = w[VS_CPUID_7_EBX];
        e->ecx = w[VS_CPUID_7_ECX];
    }
    if ((e = find_leaf(c, 0x80000001, 0))) {
        e->ecx = w[VS_CPUID_X1_ECX];
        e->edx = w[VS_CPUID_X1_EDX];
    }
}

bool vs_cpu_features_missing(const struct vs_cpu_features *want,
                             const struct vs_cpu_features *have,
                             struct vs_cpu_features *missing)
{
    bool any = false;
    for (int i = 0; i < VS_CPUID_WORDS; i++) {
        missing->w[i] = want->w[i] & ~have->w[i] & ~runtime_bits.w[i];
        any |= missing->w[i] != 0;
    }
    return any;
}

static const char *const word_names[VS_CPUID_WORDS] = {
    "1.ecx", "1.edx", "7.ebx", "7.ecx", "0x80000001.ecx", "0x80000001.edx",
};

static const char *name_of(int word, unsigned bit)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((int)names[i].word == word && names[i].bit == bit)
            return names[i].name;
    return NULL;
}

unsigned vs_cpu_features_describe(const struct vs_cpu_features *f, char *buf, size_t len)
{
    unsigned count = 0;
    size_t at = 0;
    buf[0] = '\0';
    for (int w = 0; w < VS_CPUID_WORDS; w++)
        for (unsigned b = 0; b < 32; b++) {
            if (!(f->w[w] & BIT(b)))
                continue;
            const char *n = name_of(w, b);
            int k = n ? snprintf(buf + at, len - at, "%s%s", count ? ", " : "", n)
                      : snprintf(buf + at, len - at, "%scpuid.%s[%u]", count ? ", " : "",
                                 word_names[w], b);
            count++;
            if (k > 0 && (size_t)k < len - at)
                at += (size_t)k;
            else
                at = len - 1;
        }
    return count;
}

int vs_cpu_features_parse(const char *list, struct vs_cpu_features *f)
{
    memset(f, 0, sizeof(*f));
    char copy[512];
    if (snprintf(copy, sizeof(copy), "%s", list) >= (int)sizeof(copy))
        return vs_fail(EINVAL, "CPU feature list '%.40s...' is too long", list);
    char *save = NULL;
    for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        size_t i = 0;
        while (i < sizeof(names) / sizeof(names[0]) && strcmp(names[i].name, t) != 0)
            i++;
        if (i == sizeof(names) / sizeof(names[0]))
            return vs_fail(EINVAL, "CPU feature '%s' is unknown; use names as "
                           "/proc/cpuinfo spells them (avx2, bmi2, avx512f, ...)", t);
        f->w[names[i].word] |= BIT(names[i].bit);
    }
    return 0;
}

/* The XSAVE state components (XCR0 bits) that go with the model's features. */
static uint32_t model_xcr0(const struct vs_cpu_model *m)
{
    uint32_t x = 0x3;                                  /* x87, SSE */
    if (m->allowed.w[VS_CPUID_1_ECX] & BIT(28))
        x |= 0x4;                                      /* AVX */
    if (m->allowed.w[VS_CPUID_7_EBX] & BIT(16))
        x |= 0xe0;                                     /* opmask, ZMM_Hi256, Hi16_ZMM */
    return x;
}

static void mask_entry(const struct vs_cpu_model *m, struct kvm_cpuid_entry2 *e)
{
    const uint32_t *a = m->allowed.w;
    if (e->function == 1) {
        e->ecx &= a[VS_CPUID_1_ECX];
        e->edx &= a[VS_CPUID_1_EDX];
    } else if (e->function == 7 && e->index == 0) {
        e->ebx &= a[VS_CPUID_7_EBX];
        e->ecx &= a[VS_CPUID_7_ECX];
        e->edx = 0;
    } else if (e->function == 7) {
        e->eax = e->ebx = e->ecx = e->edx = 0;
    } else if (e->function == 0x80000001) {
        e->ecx &= a[VS_CPUID_X1_ECX];
        e->edx &= a[VS_CPUID_X1_EDX];
    } else if (e->function == 0xd && e->index == 0) {
        e->eax &= model_xcr0(m);
        e->edx = 0;
    } else if (e->function == 0xd && e->index >= 2 && e->index < 32 &&
               !(model_xcr0(m) & BIT(e->index))) {
        e->eax = e->ebx = e->ecx = e->edx = 0;
    }
}

int vs_cpu_model_apply(const struct vs_cpu_model *m, struct kvm_cpuid2 *c)
{
    if (!m)
        return 0;
    struct vs_cpu_features host, missing;
    vs_cpu_features_of(c, &host);
    if (vs_cpu_features_missing(&m->required, &host, &missing)) {
        char list[512];
        vs_cpu_features_describe(&missing, list, sizeof(list));
        return vs_fail(EPERM, "--cpu %s needs CPU features this host's KVM does not offer: "
                       "%s; use an older model (--cpu x86-64-v1 .. v4) or --cpu host",
                       m->name, list);
    }
    for (uint32_t i = 0; i < c->nent; i++)
        mask_entry(m, &c->entries[i]);
    return 0;
}

int vs_cpu_host_features(const char *device, struct vs_cpu_features *f)
{
    struct kvm_cpuid2 *c;
    int rc = vs_kvm_supported_cpuid(device, &c);
    if (rc)
        return rc;
    vs_cpu_features_of(c, f);
    free(c);
    const char *mask = getenv(VS_CPU_TEST_MASK_ENV);
    struct vs_cpu_features hidden;
    if (mask && *mask) {
        if ((rc = vs_cpu_features_parse(mask, &hidden)))
            return vs_fail_context(rc, "the test hook %s", VS_CPU_TEST_MASK_ENV);
        for (int i = 0; i < VS_CPUID_WORDS; i++)
            f->w[i] &= ~hidden.w[i];
    }
    return 0;
}

/* The newest model a host offering `host` can run, or NULL. */
static const struct vs_cpu_model *newest_model_for(const struct vs_cpu_features *host)
{
    struct vs_cpu_features missing;
    for (size_t i = sizeof(models) / sizeof(models[0]); i-- > 0;)
        if (!vs_cpu_features_missing(&models[i].required, host, &missing))
            return &models[i];
    return NULL;
}

int vs_cpu_check_destination(const struct vs_cpu_features *guest,
                             const struct vs_cpu_features *host)
{
    struct vs_cpu_features missing;
    if (!vs_cpu_features_missing(guest, host, &missing))
        return 0;
    char list[160];
    vs_cpu_features_describe(&missing, list, sizeof(list));
    const struct vs_cpu_model *fit = newest_model_for(host);
    if (!fit)
        return vs_fail(EPERM, "the destination's CPU lacks %s: migrate to a host that has "
                       "them", list);
    return vs_fail(EPERM, "the destination's CPU lacks %s: run the VM with --cpu %s or "
                   "migrate to a host that has them", list, fit->name);
}
