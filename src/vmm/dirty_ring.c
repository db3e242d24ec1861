#include "vmm/dirty_ring.h"
#include "vmm/kvm.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int vs_dirty_ring_check_entries(uint64_t entries)
{
    if (entries < VS_DIRTY_RING_MIN || entries > VS_DIRTY_RING_MAX || (entries & (entries - 1)))
        return vs_fail(EINVAL, "--dirty-ring %llu is not a power of two from %u to %u entries "
                       "per vCPU; try 65536", (unsigned long long)entries, VS_DIRTY_RING_MIN,
                       VS_DIRTY_RING_MAX);
    return 0;
}

int vs_dirty_ring_create(struct vs_dirty_ring **out, struct vs_kvm *kvm, uint32_t entries,
                         unsigned nr_vcpus, const struct vs_ram_layout *layout)
{
    uint64_t npages = 0;
    for (unsigned i = 0; i < layout->nr_regions; i++)
        npages += layout->regions[i].size / 4096;
    *out = NULL;
    int rc = vs_dirty_ring_check_entries(entries);
    if (rc)
        return rc;
    uint64_t bytes = (uint64_t)entries * sizeof(struct kvm_dirty_gfn);
    if (!kvm->caps.dirty_ring)
        return vs_fail(ENOTSUP, "this host's KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING); "
                       "run without --dirty-ring (the dirty-log bitmap is used then)");
    if (bytes > kvm->caps.dirty_ring_max)
        return vs_fail(EINVAL, "--dirty-ring %u entries is more than this host's KVM allows "
                       "(%u); use a smaller ring", entries,
                       (unsigned)(kvm->caps.dirty_ring_max / sizeof(struct kvm_dirty_gfn)));
    struct kvm_enable_cap cap = { .cap = KVM_CAP_DIRTY_LOG_RING, .args[0] = bytes };
    if (ioctl(kvm->vm_fd, KVM_ENABLE_CAP, &cap) < 0)
        return vs_fail(errno, "cannot enable the KVM dirty ring with %u entries per vCPU: %s",
                       entries, strerror(errno));
    struct vs_dirty_ring *r = calloc(1, sizeof(*r));
    uint64_t words = (npages + 63) / 64;
    if (r) {
        r->harvested = calloc(words, sizeof(*r->harvested));
        r->vcpu = calloc(nr_vcpus, sizeof(*r->vcpu));
    }
    if (!r || !r->harvested || !r->vcpu) {
        if (r) {
            free((void *)r->harvested);
            free(r->vcpu);
        }
        free(r);
        return vs_fail(ENOMEM, "out of memory for the dirty ring of %llu pages",
                       (unsigned long long)npages);
    }
    r->vm_fd = kvm->vm_fd;
    r->entries = entries;
    r->npages = npages;
    r->nr_slots = layout->nr_regions;
    for (unsigned i = 0; i < layout->nr_regions; i++) {
        r->slot_first[i] = layout->regions[i].offset / 4096;
        r->slot_pages[i] = layout->regions[i].size / 4096;
    }
    r->nr_vcpus = nr_vcpus;
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->reaper_stop, false);
    for (unsigned i = 0; i < nr_vcpus; i++) {
        atomic_init(&r->vcpu[i].pages, 0);
        atomic_init(&r->vcpu[i].full_exits, 0);
    }
    *out = r;
    return 0;
}

int vs_dirty_ring_map(struct vs_dirty_ring *r, unsigned index, int vcpu_fd)
{
    size_t len = (size_t)r->entries * sizeof(struct kvm_dirty_gfn);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
                   (off_t)KVM_DIRTY_LOG_PAGE_OFFSET * getpagesize());
    if (p == MAP_FAILED)
        return vs_fail(errno, "cannot map the dirty ring of vCPU %u: %s", index, strerror(errno));
    r->vcpu[index].gfns = p;
    return 0;
}

void vs_dirty_ring_destroy(struct vs_dirty_ring *r)
{
    if (!r)
        return;
    vs_dirty_ring_reaper(r, false);
    size_t len = (size_t)r->entries * sizeof(struct kvm_dirty_gfn);
    for (unsigned i = 0; i < r->nr_vcpus; i++)
        if (r->vcpu[i].gfns)
            munmap(r->vcpu[i].gfns, len);
    pthread_mutex_destroy(&r->lock);
    free((void *)r->harvested);
    free(r->vcpu);
    free(r);
}

/* Entries in order until the first that KVM has not published; each becomes "to reset".
 * Call with r->lock held. */
static void harvest_ring(struct vs_dirty_ring *r, unsigned index)
{
    struct vs_dirty_ring_vcpu *v = &r->vcpu[index];
    if (!v->gfns)
        return;
    uint64_t n = 0;
    for (;;) {
        struct kvm_dirty_gfn *g = &v->gfns[v->fetch & (r->entries - 1)];
        uint32_t flags = __atomic_load_n(&g->flags, __ATOMIC_ACQUIRE);
        if (!(flags & KVM_DIRTY_GFN_F_DIRTY))
            break;
        uint32_t slot = g->slot; /* address space (high 16 bits) 0: guest memory */
        if (slot < r->nr_slots && g->offset < r->slot_pages[slot]) {
            uint64_t p = r->slot_first[slot] + g->offset;
            atomic_fetch_or_explicit(&r->harvested[p / 64], 1ULL << (p % 64),
                                     memory_order_relaxed);
        }
        __atomic_store_n(&g->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        v->fetch++;
        n++;
    }
    if (n)
        atomic_fetch_add(&v->pages, n);
}

static int reset_rings(struct vs_dirty_ring *r)
{
    if (ioctl(r->vm_fd, KVM_RESET_DIRTY_RINGS, 0) < 0)
        return vs_fail(errno, "KVM_RESET_DIRTY_RINGS failed: %s", strerror(errno));
    return 0;
}

/* Is ring `index` at least 1/8 full? (Entries are published in order.) */
static bool filling(struct vs_dirty_ring *r, unsigned index)
{
    struct vs_dirty_ring_vcpu *v = &r->vcpu[index];
    if (!v->gfns)
        return false;
    struct kvm_dirty_gfn *g = &v->gfns[(v->fetch + r->entries / 8) & (r->entries - 1)];
    return __atomic_load_n(&g->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY;
}

static void *reaper_thread(void *arg)
{
    struct vs_dirty_ring *r = arg;
    while (!atomic_load(&r->reaper_stop)) {
        vs_sleep_ns(VS_DIRTY_RING_REAP_NS);
        pthread_mutex_lock(&r->lock);
        bool any = false;
        for (unsigned i = 0; i < r->nr_vcpus; i++)
            if (filling(r, i)) {
                harvest_ring(r, i);
                any = true;
            }
        if (any && reset_rings(r))
            vs_warn("dirty ring reaper: %s", vs_last_error());
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

int vs_dirty_ring_reaper(struct vs_dirty_ring *r, bool on)
{
    if (on == r->reaper_running)
        return 0;
    if (!on) {
        atomic_store(&r->reaper_stop, true);
        pthread_join(r->reaper, NULL);
        r->reaper_running = false;
        return 0;
    }
    atomic_store(&r->reaper_stop, false);
    int err = pthread_create(&r->reaper, NULL, reaper_thread, r);
    if (err)
        return vs_fail(err, "cannot start the dirty ring reaper thread: %s", strerror(err));
    pthread_setname_np(r->reaper, "ring-reaper");
    r->reaper_running = true;
    return 0;
}

int vs_dirty_ring_collect(struct vs_dirty_ring *r, uint64_t *bitmap)
{
    pthread_mutex_lock(&r->lock);
    for (unsigned i = 0; i < r->nr_vcpus; i++)
        harvest_ring(r, i);
    /* Reset before handing pages out: everything harvested so far, by anyone, is
     * write-protected again once this returns. */
    int rc = reset_rings(r);
    if (!rc) {
        uint64_t words = (r->npages + 63) / 64;
        for (uint64_t w = 0; w < words; w++)
            if (atomic_load_explicit(&r->harvested[w], memory_order_relaxed))
                bitmap[w] |= atomic_exchange(&r->harvested[w], 0);
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int vs_dirty_ring_harvest_vcpu(struct vs_dirty_ring *r, unsigned index, bool full)
{
    if (index >= r->nr_vcpus)
        return vs_fail(EINVAL, "no dirty ring for vCPU %u", index);
    pthread_mutex_lock(&r->lock);
    uint64_t before = atomic_load(&r->vcpu[index].pages);
    harvest_ring(r, index);
    int rc = full ? reset_rings(r) : 0;
    bool empty = atomic_load(&r->vcpu[index].pages) == before;
    pthread_mutex_unlock(&r->lock);
    if (!full)
        return 0;
    /* Full, yet nothing published where the next entry should be: KVM wrote past the end
     * of the ring and the two sides no longer agree where it starts (the guest dirtied
     * more between two checks than KVM's reserve). Pages may have been missed. */
    if (!rc && empty && atomic_fetch_add(&r->vcpu[index].full_exits, 1) > 0)
        return vs_fail(EOVERFLOW, "the KVM dirty ring of vCPU %u overflowed; dirty pages may "
                       "have been lost: restart the VM with a bigger --dirty-ring (e.g. 65536) "
                       "or without it", index);
    if (!empty)
        atomic_store(&r->vcpu[index].full_exits, 0);
    return rc;
}

uint64_t vs_dirty_ring_vcpu_pages(struct vs_dirty_ring *r, unsigned index)
{
    return index < r->nr_vcpus ? atomic_load(&r->vcpu[index].pages) : 0;
}
