/* The source's switchover payload: once the vCPUs are stopped and the final pass is out,
 * stream 0 carries every vCPU's state, the machine state and the DIGEST record (XXH3 of
 * all RAM, of the vCPU blobs and of the machine blob). */
#include "migrate/precopy/source_internal.h"
#include "migrate/postcopy/postcopy_source.h"
#include "migrate/state/vstate.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fault.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

/* Everything the destination needs once the vCPUs are stopped, then the digests. */
int vs_source_send_state(struct vs_migration *m, uint64_t pause_ns)
{
    struct vs_vm *vm = m->vm;
    XXH3_state_t *vh = XXH3_createState();
    if (!vh)
        return vs_fail(ENOMEM, "out of memory for a digest state");
    XXH3_64bits_reset(vh);
    struct vs_blob blob = { 0 };
    int rc = 0;
    for (unsigned i = 0; i < vm->nr_vcpus && !rc; i++) {
        blob.len = 0;
        if ((rc = vs_vstate_save_vcpu(&vm->vcpus[i], &blob)))
            break;
        XXH3_64bits_update(vh, blob.data, blob.len);
        size_t len = sizeof(struct vs_wire_vcpu_state) + blob.len;
        uint8_t *rec = malloc(len);
        if (!rec) {
            rc = vs_fail(ENOMEM, "out of memory for vCPU %u state", i);
            break;
        }
        struct vs_wire_vcpu_state vh_rec = { .index = i };
        memcpy(rec, &vh_rec, sizeof(vh_rec));
        memcpy(rec + sizeof(vh_rec), blob.data, blob.len);
        rc = vs_wire_send(m->w, VS_REC_VCPU_STATE, rec, (uint32_t)len);
        free(rec);
    }
    struct vs_wire_digest dg = { .vcpu_xxh3 = XXH3_64bits_digest(vh), .pause_ns = pause_ns };
    XXH3_freeState(vh);
    if (!rc) {
        blob.len = 0;
        uint64_t t0 = vs_clock_ns();
        rc = vs_vstate_save_machine(vm, &blob);
        pthread_mutex_lock(&m->lock);
        m->stats.device_state_save_ns = vs_clock_ns() - t0;
        m->stats.device_state_bytes = blob.len;
        pthread_mutex_unlock(&m->lock);
        if (!rc) {
            dg.machine_xxh3 = XXH3_64bits(blob.data, blob.len);
            rc = vs_wire_send(m->w, VS_REC_MACHINE_STATE, blob.data, (uint32_t)blob.len);
        }
    }
    vs_blob_free(&blob);
    if (rc)
        return rc;
    /* RAM is frozen: only blocks changed since the background thread hashed them are
     * hashed here. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    rc = vs_digest_tracker_finish(m->digest, cpus > 0 ? (unsigned)cpus : 1, &dg.ram_xxh3, NULL);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->lock);
    m->stats.ram_digest = dg.ram_xxh3;
    m->window.digest_sent = true;   /* from the first byte on, the destination may verify */
    pthread_mutex_unlock(&m->lock);
    vs_fault_point("src.digest_ready", 0, m->ch);
    rc = m->post.engine ? vs_postcopy_send_digests(m, &dg)   /* with the blocks still missing */
               : vs_wire_send(m->w, VS_REC_DIGEST, &dg, sizeof(dg));
    vs_fault_point("src.digest", 0, m->ch);
    return rc;
}
