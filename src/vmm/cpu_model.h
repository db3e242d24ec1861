/* CPU models: which CPUID feature bits a guest may see. `host` (the default) is the
 * host's KVM_GET_SUPPORTED_CPUID unchanged; a named model (the x86-64 psABI levels
 * x86-64-v1..v4) masks it to the model's features and refuses to start on a host that
 * lacks one the model requires. A migration compares the features the guest was given
 * with what the destination's KVM supports before anything moves (docs/guide.md). */
#ifndef VS_CPU_MODEL_H
#define VS_CPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_cpuid2;

/* The CPUID registers a model speaks about, in this order (also the order of HELLO
 * cpu_features, docs/stream-format.md). */
enum vs_cpuid_word {
    VS_CPUID_1_ECX,
    VS_CPUID_1_EDX,
    VS_CPUID_7_EBX,            /* leaf 7 sub-leaf 0 */
    VS_CPUID_7_ECX,
    VS_CPUID_X1_ECX,           /* leaf 0x80000001 */
    VS_CPUID_X1_EDX,
    VS_CPUID_WORDS,
};

struct vs_cpu_features {
    uint32_t w[VS_CPUID_WORDS];
};

struct vs_cpu_model {
    const char *name;
    struct vs_cpu_features allowed;    /* what the guest may see (host & allowed) */
    struct vs_cpu_features required;   /* what the host must have to run the model */
};

/* The model called name ("host" gives *out = NULL: no masking). EINVAL naming the known
 * models for any other name. */
int vs_cpu_model_find(const char *name, const struct vs_cpu_model **out);

/* "host, x86-64-v1, ..." for messages and usage. */
const char *vs_cpu_model_names(void);

/* The words of a CPUID table (missing leaves read as 0). */
void vs_cpu_features_of(const struct kvm_cpuid2 *c, struct vs_cpu_features *f);

/* Write the words w[VS_CPUID_WORDS] into the table's leaves that have them (the features
 * an incoming guest was given, as its source declared them). */
void vs_cpu_features_store(struct kvm_cpuid2 *c, const uint32_t *w);

/* The bits of want that have misses, leaving out the bits KVM computes at run time
 * (OSXSAVE, OSPKE) rather than offers. Returns whether any is missing. */
bool vs_cpu_features_missing(const struct vs_cpu_features *want,
                             const struct vs_cpu_features *have,
                             struct vs_cpu_features *missing);

/* "avx2, bmi2" (unnamed bits as "cpuid.7.ebx[12]") into buf; returns the count. */
unsigned vs_cpu_features_describe(const struct vs_cpu_features *f, char *buf, size_t len);

/* Parse "avx2,bmi2" (feature names) into *f. EINVAL naming an unknown name. */
int vs_cpu_features_parse(const char *list, struct vs_cpu_features *f);

/* Mask a host CPUID table to model m (NULL: host, unchanged). EPERM naming the missing
 * features if the host lacks one m requires. */
int vs_cpu_model_apply(const struct vs_cpu_model *m, struct kvm_cpuid2 *c);

/* TEST HOOK: the environment variable VMSHIFT_TEST_MASK_CPUID ("avx2,bmi2") removes
 * features from what this host claims to offer to incoming VMs, so that a test can play
 * an older destination. Never set it in production. */
#define VS_CPU_TEST_MASK_ENV "VMSHIFT_TEST_MASK_CPUID"

/* What this host's KVM (device) offers to a guest, less the test mask. */
int vs_cpu_host_features(const char *device, struct vs_cpu_features *f);

/* Whether a guest that was given `guest` can run on a host offering `host`: EPERM with a
 * message naming the missing features and what to do. */
int vs_cpu_check_destination(const struct vs_cpu_features *guest,
                             const struct vs_cpu_features *host);

#endif
