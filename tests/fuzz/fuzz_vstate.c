/* Fuzz target: the vCPU and machine state blobs, through the validation vstate.c applies
 * before loading anything into KVM (vs_vstate_validate_vcpu / _machine).
 * Input: byte 0 selects the blob kind (even: vCPU, odd: machine), the rest is the blob. */
#include "migrate/vstate.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        vs_log_set_level(VS_LOG_ERROR);
        quiet = true;
    }
    if (size < 1)
        return 0;
    /* A copy of exactly the blob's size, so ASan sees any read past its end. */
    uint8_t *blob = malloc(size - 1 ? size - 1 : 1);
    if (!blob)
        return 0;
    memcpy(blob, data + 1, size - 1);
    if (data[0] & 1)
        vs_vstate_validate_machine(64ull << 20, blob, size - 1);
    else
        vs_vstate_validate_vcpu(0, blob, size - 1);
    free(blob);
    return 0;
}
