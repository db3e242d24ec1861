/* Fuzz target: the vCPU and machine state blobs, through the validation applied before
 * anything is loaded into KVM (vs_vstate_validate_vcpu / _machine, and with it the
 * device-state registry's vs_vmstate_validate).
 * Input: byte 0 selects the blob kind: bit 0 clear: a vCPU blob; bit 0 set: a machine
 * blob, tagged as from a 2.0-2.2 source (bit 1 clear) or device-state sections of 2.3
 * (bit 1 set), checked against the flat (bit 2 clear) or pc (bit 2 set) machine's
 * devices. The rest is the blob. */
#include "fuzz_common.h"
#include "migrate/state/vstate.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    uint8_t *blob = fuzz_copy(data + 1, size - 1);
    if (data[0] & 1)
        vs_vstate_validate_machine(fuzz_machine_registry(data[0] & 4), !(data[0] & 2), blob,
                                   size - 1);
    else
        vs_vstate_validate_vcpu(0, blob, size - 1);
    free(blob);
    return 0;
}
