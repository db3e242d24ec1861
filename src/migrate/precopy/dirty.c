#include "migrate/precopy/dirty.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vmm/dirty_ring.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Memory slot i is RAM region i (vs_kvm_set_ram_slots); the bitmaps here are one bit per
 * page of RAM offsets, so a slot's bits start at its region's offset. Region offsets are
 * 0 and 3 GiB: multiples of 64 pages, so every slot starts on a bitmap word. */
static int set_logging(struct vs_vm *vm, bool on)
{
    return vs_kvm_set_ram_slots(&vm->kvm, &vm->mem.layout, vm->mem.base,
                                on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

static int get_dirty_logs(struct vs_dirty *d)
{
    const struct vs_ram_layout *l = &d->vm->mem.layout;
    for (unsigned i = 0; i < l->nr_regions; i++) {
        uint64_t first = l->regions[i].offset / 4096;
        struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = d->scratch + first / 64 };
        if (ioctl(d->vm->kvm.vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
            return vs_fail(errno, "KVM_GET_DIRTY_LOG of memory slot %u failed: %s", i,
                           strerror(errno));
    }
    return 0;
}

/* Re-protect the pages of [first, first+n) that lie in region `slot` (first a multiple
 * of 64 or the region's start). */
static int clear_slot(struct vs_dirty *d, unsigned slot, uint64_t first, uint64_t n)
{
    const struct vs_ram_region *r = &d->vm->mem.layout.regions[slot];
    uint64_t lo = r->offset / 4096, hi = lo + r->size / 4096;
    uint64_t from = first > lo ? first : lo, to = first + n < hi ? first + n : hi;
    if (from >= to)
        return 0;
    struct kvm_clear_dirty_log c = {
        .slot = slot,
        .num_pages = (uint32_t)(to - from),
        .first_page = from - lo,
        .dirty_bitmap = d->bitmap + from / 64,
    };
    if (ioctl(d->vm->kvm.vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0)
        return vs_fail(errno, "KVM_CLEAR_DIRTY_LOG slot %u pages %llu+%llu failed: %s", slot,
                       (unsigned long long)(from - lo), (unsigned long long)(to - from),
                       strerror(errno));
    return 0;
}

int vs_dirty_start(struct vs_dirty *d, struct vs_vm *vm)
{
    memset(d, 0, sizeof(*d));
    d->vm = vm;
    d->npages = vm->mem.size / 4096;
    d->bitmap = calloc((d->npages + 63) / 64, sizeof(uint64_t));
    d->scratch = calloc((d->npages + 63) / 64, sizeof(uint64_t));
    if (!d->bitmap || !d->scratch) {
        free(d->bitmap);
        free(d->scratch);
        d->bitmap = d->scratch = NULL;
        return vs_fail(ENOMEM, "out of memory for a dirty bitmap of %llu pages",
                       (unsigned long long)d->npages);
    }
    for (unsigned i = 0; i < vm->mem.layout.nr_regions; i++)
        if (vm->mem.layout.regions[i].offset % (64 * 4096)) {
            free(d->bitmap);
            free(d->scratch);
            d->bitmap = d->scratch = NULL;
            return vs_fail(EINVAL, "RAM region %u starts at offset 0x%llx, not on a dirty "
                           "bitmap word", i, (unsigned long long)vm->mem.layout.regions[i].offset);
        }
    uint64_t t0 = vs_clock_ns();
    d->ring = vm->ring != NULL;
    if (!d->ring && vm->kvm.caps.manual_dirty_log_protect) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET,
        };
        if (ioctl(vm->kvm.vm_fd, KVM_ENABLE_CAP, &cap) == 0)
            d->manual = true;
        else
            vs_warn("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 could not be enabled (%s); "
                    "falling back to get-and-clear dirty logs", strerror(errno));
    }
    int rc = d->ring ? vs_dirty_ring_reaper(vm->ring, true) : 0;
    if (!rc)
        rc = vs_memory_track_writes(&vm->mem, true);
    if (!rc && (rc = set_logging(vm, true))) {
        vs_memory_track_writes(&vm->mem, false);
        rc = vs_fail_context(rc, "cannot enable dirty page logging");
    }
    if (rc) {
        if (d->ring)
            vs_dirty_ring_reaper(vm->ring, false);
        free(d->bitmap);
        free(d->scratch);
        d->bitmap = d->scratch = NULL;
        return rc;
    }
    d->start_ns = vs_clock_ns() - t0;
    return 0;
}

static uint64_t popcount_bitmap(const uint64_t *b, uint64_t words)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < words; i++)
        n += (uint64_t)__builtin_popcountll(b[i]);
    return n;
}

int vs_dirty_sync(struct vs_dirty *d, uint64_t *count)
{
    uint64_t t0 = vs_clock_ns(), words = (d->npages + 63) / 64;
    if (d->ring) {
        int rc = vs_dirty_ring_collect(d->vm->ring, d->bitmap);
        if (rc)
            return rc;
    } else {
        int rc = get_dirty_logs(d);
        if (rc)
            return rc;
    }
    if (!d->first_sync_done && !d->manual) {
        /* Without the initially-set bitmap KVM only knows writes since logging began
         * (that first GET drained them): the first pass must still cover all of RAM. */
        memset(d->bitmap, 0xff, words * sizeof(uint64_t));
    } else if (!d->ring) {
        /* OR, never overwrite: pages still pending from an earlier sync (the switchover
         * can come between a sync and the pass that would have sent them) stay pending,
         * and without manual clearing KVM has already forgotten them. */
        for (uint64_t i = 0; i < words; i++)
            d->bitmap[i] |= d->scratch[i];
    }
    d->first_sync_done = true;
    vs_memory_collect_writes(&d->vm->mem, d->bitmap);
    if (d->npages % 64)
        d->bitmap[words - 1] &= (1ULL << (d->npages % 64)) - 1;
    *count = popcount_bitmap(d->bitmap, words);
    d->last_sync_ns = vs_clock_ns() - t0;
    return 0;
}

int vs_dirty_clear(struct vs_dirty *d, uint64_t first, uint64_t n)
{
    if (!d->manual)
        return 0; /* KVM_GET_DIRTY_LOG already cleared and re-protected */
    if (first % 64)
        return vs_fail(EINVAL, "dirty clear at page %llu is not 64-aligned",
                       (unsigned long long)first);
    if (first + n > d->npages)
        n = d->npages - first;
    for (unsigned i = 0; i < d->vm->mem.layout.nr_regions; i++) {
        int rc = clear_slot(d, i, first, n);
        if (rc)
            return rc;
    }
    return 0;
}

void vs_dirty_sent(struct vs_dirty *d, uint64_t first, uint64_t n)
{
    uint64_t end = first + n < d->npages ? first + n : d->npages;
    memset(d->bitmap + first / 64, 0, ((end + 63) / 64 - first / 64) * sizeof(uint64_t));
}

void vs_dirty_stop(struct vs_dirty *d)
{
    if (!d->bitmap)
        return;
    if (set_logging(d->vm, false))
        vs_warn("cannot disable dirty logging: %s", vs_last_error());
    /* Empty the rings, so that a later start does not find stale entries. */
    if (d->ring) {
        vs_dirty_ring_reaper(d->vm->ring, false);
        if (vs_dirty_ring_collect(d->vm->ring, d->scratch))
            vs_warn("%s", vs_last_error());
    }
    vs_memory_track_writes(&d->vm->mem, false);
    free(d->bitmap);
    free(d->scratch);
    d->bitmap = d->scratch = NULL;
}
