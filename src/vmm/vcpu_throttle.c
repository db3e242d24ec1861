#include "vmm/vcpu_throttle.h"
#include "vmm/dirty_ring.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <string.h>
#include <time.h>

#define TICK_NS        10000000ULL   /* the ticker kicks throttled vCPUs this often */
#define BURST_NS       20000000ULL   /* dirty-limit credit a vCPU may save up */
#define MAX_SLEEP_NS 1000000000ULL   /* one sleep at most */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Dirty limit: how long until the pages this vCPU dirtied so far are paid for. */
static uint64_t dirty_limit_debt(struct vs_vcpu *v, uint64_t limit)
{
    struct vs_vcpu_throttle *t = &v->throttle;
    struct vs_dirty_ring *ring = v->vm->ring;
    if (!ring || vs_dirty_ring_harvest_vcpu(ring, v->index, false))
        return 0;
    uint64_t pages = vs_dirty_ring_vcpu_pages(ring, v->index), now = vs_clock_ns();
    if (t->paid_until_ns + BURST_NS < now)
        t->paid_until_ns = now - BURST_NS;
    t->paid_until_ns += (pages - t->pages_mark) * 1000000000ULL / limit;
    t->pages_mark = pages;
    return t->paid_until_ns > now ? t->paid_until_ns - now : 0;
}

void vs_vcpu_throttle_point(struct vs_vcpu *v)
{
    struct vs_vcpu_throttle *t = &v->throttle;
    if (!atomic_load_explicit(&v->vm->throttle.active, memory_order_relaxed)) {
        t->armed = false;
        return;
    }
    uint64_t cpu = thread_cpu_ns();
    struct vs_dirty_ring *ring = v->vm->ring;
    if (!t->armed) {    /* throttling just began: count from here */
        t->armed = true;
        t->cpu_mark_ns = cpu;
        t->pages_mark = ring ? vs_dirty_ring_vcpu_pages(ring, v->index) : 0;
        t->paid_until_ns = vs_clock_ns();
        return;
    }
    uint64_t sleep_ns = 0;
    uint32_t permille = atomic_load(&t->sleep_permille);
    if (permille) {
        if (permille > VS_THROTTLE_MAX_PERMILLE)
            permille = VS_THROTTLE_MAX_PERMILLE;
        sleep_ns = (cpu - t->cpu_mark_ns) * permille / (1000 - permille);
    }
    t->cpu_mark_ns = cpu;
    uint64_t limit = atomic_load(&t->dirty_limit);
    if (limit) {
        uint64_t debt = dirty_limit_debt(v, limit);
        sleep_ns = debt > sleep_ns ? debt : sleep_ns;
    } else if (ring) {
        t->pages_mark = vs_dirty_ring_vcpu_pages(ring, v->index);
    }
    if (!sleep_ns)
        return;
    if (sleep_ns > MAX_SLEEP_NS)
        sleep_ns = MAX_SLEEP_NS;
    uint64_t t0 = vs_clock_ns();
    vs_vcpu_stall_ns(v, sleep_ns, &v->vm->throttle.active);
    atomic_fetch_add(&t->slept_ns, vs_clock_ns() - t0);
}

static void *ticker_thread(void *arg)
{
    struct vs_vm *vm = arg;
    while (!atomic_load(&vm->throttle.ticker_stop)) {
        vs_sleep_ns(TICK_NS);
        pthread_mutex_lock(&vm->lock);
        if (!vm->pause_requested)
            for (unsigned i = 0; i < vm->nr_vcpus; i++) {
                struct vs_vcpu *v = &vm->vcpus[i];
                if (atomic_load(&v->throttle.sleep_permille) || atomic_load(&v->throttle.dirty_limit))
                    vs_vcpu_kick(v);
            }
        pthread_mutex_unlock(&vm->lock);
    }
    return NULL;
}

int vs_vm_throttle_set(struct vs_vm *vm, const uint32_t *sleep_permille,
                       const uint64_t *dirty_limit)
{
    if (dirty_limit && !vm->ring)
        for (unsigned i = 0; i < vm->nr_vcpus; i++)
            if (dirty_limit[i])
                return vs_fail(ENOTSUP, "per-vCPU dirty limits need the KVM dirty ring "
                               "(vmshift run --dirty-ring ENTRIES)");
    bool any = false;
    for (unsigned i = 0; i < vm->nr_vcpus; i++) {
        uint32_t p = sleep_permille ? sleep_permille[i] : 0;
        uint64_t l = dirty_limit ? dirty_limit[i] : 0;
        atomic_store(&vm->vcpus[i].throttle.sleep_permille,
                     p > VS_THROTTLE_MAX_PERMILLE ? VS_THROTTLE_MAX_PERMILLE : p);
        atomic_store(&vm->vcpus[i].throttle.dirty_limit, l);
        any |= p || l;
    }
    atomic_store(&vm->throttle.active, any);
    if (!any || vm->throttle.ticker_running)
        return 0;
    atomic_store(&vm->throttle.ticker_stop, false);
    int err = pthread_create(&vm->throttle.ticker, NULL, ticker_thread, vm);
    if (err) {
        vs_vm_throttle_release(vm);
        return vs_fail(err, "cannot start the vCPU throttle ticker: %s", strerror(err));
    }
    pthread_setname_np(vm->throttle.ticker, "throttle");
    vm->throttle.ticker_running = true;
    return 0;
}

void vs_vm_throttle_release(struct vs_vm *vm)
{
    for (unsigned i = 0; vm->vcpus && i < vm->nr_vcpus; i++) {
        atomic_store(&vm->vcpus[i].throttle.sleep_permille, 0);
        atomic_store(&vm->vcpus[i].throttle.dirty_limit, 0);
    }
    atomic_store(&vm->throttle.active, false);
    if (vm->throttle.ticker_running) {
        atomic_store(&vm->throttle.ticker_stop, true);
        pthread_join(vm->throttle.ticker, NULL);
        vm->throttle.ticker_running = false;
    }
    /* A vCPU asleep in its throttle point wakes up now. */
    pthread_mutex_lock(&vm->lock);
    pthread_cond_broadcast(&vm->cond);
    pthread_mutex_unlock(&vm->lock);
}

uint64_t vs_vm_throttle_slept_ns(struct vs_vm *vm)
{
    uint64_t ns = 0;
    for (unsigned i = 0; i < vm->nr_vcpus; i++)
        ns += atomic_load(&vm->vcpus[i].throttle.slept_ns);
    return ns;
}
