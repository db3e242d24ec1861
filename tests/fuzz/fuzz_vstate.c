/* Fuzz target: the vCPU and machine state blobs, through the validation vstate.c applies
 * before loading anything into KVM (vs_vstate_validate_vcpu / _machine).
 * Input: byte 0 selects the blob kind (even: vCPU, odd: machine), the rest is the blob. */
#include "fuzz_common.h"
#include "migrate/vstate.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    uint8_t *blob = fuzz_copy(data + 1, size - 1);
    if (data[0] & 1)
        vs_vstate_validate_machine(64ull << 20, blob, size - 1);
    else
        vs_vstate_validate_vcpu(0, blob, size - 1);
    free(blob);
    return 0;
}
