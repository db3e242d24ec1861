/* Boot flow: vCPU 0 reads the parameters, checks the range against RAM, sets up the
 * telemetry and timing, then releases the other vCPUs; all run their workload slice. */
#include "boot.h"
#include "disk.h"
#include "guest.h"
#include "io.h"
#include "irq.h"
#include "net_workload.h"
#include "platform.h"
#include "pvport.h"
#include "serial.h"
#include "telemetry.h"
#include "timer.h"
#include "timing.h"
#include "virtio_mmio.h"
#include "workloads.h"

/* entry.S and linker.ld cannot include guest_abi.h; they mirror these values. */
_Static_assert(VS_NOTE_XEN_PHYS32_ENTRY == VS_XEN_ELFNOTE_PHYS32_ENTRY, "entry.S note type");
_Static_assert(VS_NOTE_VMSHIFT_ENTRY64 == VS_ELFNOTE_ENTRY64, "entry.S note type");
_Static_assert(VS_KERNEL_ADDR == 0x100000 && VS_KERNEL_END == 0x200000, "linker.ld layout");
_Static_assert(VS_PVH_STACK_SIZE == VS_BOOT_STACK_SIZE, "PVH stack size");

struct vs_guest vs_guest;

static __attribute__((noreturn)) void fail(const char *why)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: error: ");
    vs_line_str(&l, why);
    vs_line_end(&l);
    vs_telemetry_set_state(0, VS_GUEST_FAILED);
    __atomic_store_n(&vs_init_state, VS_INIT_FAILED, __ATOMIC_RELEASE);
    halt_forever();
}

static void print_warnings(const struct vs_guest_params *p)
{
    unsigned kept = p->nr_warnings < VS_PARAMS_MAX_WARNINGS ? p->nr_warnings
                                                              : VS_PARAMS_MAX_WARNINGS;
    struct vs_line l;

    for (unsigned i = 0; i < kept; i++) {
        vs_line_start(&l);
        vs_line_str(&l, "vmshift-guest: warning: ignoring '");
        vs_buf_putn(&l.b, p->warnings[i].token, p->warnings[i].len);
        vs_line_str(&l, "'");
        vs_line_end(&l);
    }
    if (p->nr_warnings > kept) {
        vs_line_start(&l);
        vs_line_str(&l, "vmshift-guest: warning: ignoring ");
        vs_line_dec(&l, p->nr_warnings - kept);
        vs_line_str(&l, " more");
        vs_line_end(&l);
    }
}

static void print_banner(const struct vs_guest_params *p)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: workload=");
    vs_line_str(&l, vs_params_workload_name(p->workload));
    vs_line_str(&l, " cpus=");
    vs_line_dec(&l, p->cpus);
    vs_line_str(&l, " range=");
    vs_line_hex(&l, p->start);
    vs_line_str(&l, "+");
    vs_line_hex(&l, p->size);
    if (p->nr_extents > 1) {
        vs_line_str(&l, " in ");
        vs_line_dec(&l, p->nr_extents);
        vs_line_str(&l, " pieces (to ");
        vs_line_hex(&l, vs_params_range_end(p));
        vs_line_str(&l, ")");
    }
    vs_line_str(&l, " rate=");
    vs_line_dec(&l, p->rate);
    vs_line_str(&l, " fill=");
    vs_line_str(&l, vs_params_fill_name(p->fill));
    vs_line_str(&l, " seed=");
    vs_line_dec(&l, p->seed);
    vs_line_str(&l, " pvport=");
    vs_line_str(&l, vs_guest.pvport ? "yes" : "no");
    if (p->workload == VS_WORKLOAD_NET) {
        vs_line_str(&l, " ip=");
        for (int i = 0; i < 4; i++) {
            vs_line_dec(&l, p->ip[i]);
            if (i < 3)
                vs_line_str(&l, ".");
        }
        if (p->has_ip2) {
            vs_line_str(&l, " ip2=");
            for (int i = 0; i < 4; i++) {
                vs_line_dec(&l, p->ip2[i]);
                if (i < 3)
                    vs_line_str(&l, ".");
            }
        }
    }
    if (p->workload == VS_WORKLOAD_TIMER) {
        vs_line_str(&l, " timer=");
        vs_line_str(&l, vs_params_timer_name(p->timer));
        vs_line_str(&l, " hz=");
        vs_line_dec(&l, p->hz);
    }
    vs_line_end(&l);
}

static __attribute__((noreturn)) void boot_cpu(const struct hvm_start_info *si)
{
    struct vs_guest_params *p = &vs_guest.params;
    const struct hvm_memmap_table_entry *map;
    uint32_t entries;
    char err[128];

    vs_idt_init();
    vs_idt_load(0);
    vs_guest.pvport = vs_pvport_detect();
    /* Registered before anything can fail, so the monitor sees VS_GUEST_FAILED. */
    vs_telemetry_boot();
    if (si->magic != VS_HVM_START_MAGIC)
        fail("bad hvm_start_info magic");
    if (vs_params_parse((const char *)(uintptr_t)si->cmdline_paddr, p, err, sizeof(err)))
        fail(err);
    print_warnings(p);

    /* The memory map fields exist from start_info version 1 on. */
    entries = si->version >= 1 && si->memmap_paddr ? si->memmap_entries : 0;
    map = (const struct hvm_memmap_table_entry *)(uintptr_t)si->memmap_paddr;
    if (vs_params_resolve_range(p, map, entries, err, sizeof(err)))
        fail(err);
    if (vs_booted_pvh && vs_params_range_end(p) > ((uint64_t)VS_PVH_MAP_GIB << 30))
        fail("the range goes beyond the 64 GiB the PVH page tables map");

    if (vs_timing_init(vs_guest.pvport) && p->rate)
        vs_puts("vmshift-guest: warning: no clock (PIT calibration failed), running at full speed");
    vs_telemetry_describe(p);
    print_banner(p);
    if (p->nr_virtio)
        vs_virtio_mmio_probe(p);
    if (p->workload == VS_WORKLOAD_TIMER &&
        (vs_platform_setup(err, sizeof(err)) || vs_timer_start(p, err, sizeof(err))))
        fail(err);
    if (p->workload == VS_WORKLOAD_DISK && vs_disk_start(p, err, sizeof(err)))
        fail(err);
    if ((p->workload == VS_WORKLOAD_NET || p->workload == VS_WORKLOAD_NET_STREAM) &&
        (vs_platform_setup(err, sizeof(err)) || vs_net_workload_start(p, err, sizeof(err))))
        fail(err);

    __atomic_store_n(&vs_init_state, VS_INIT_DONE, __ATOMIC_RELEASE);
    vs_workload_run(0);
}

static __attribute__((noreturn)) void secondary_cpu(unsigned cpu)
{
    uint32_t state;

    /* No counters record, and no stack from the monitor's layout, beyond this. */
    if (cpu >= VS_MAX_VCPUS)
        halt_forever();
    while ((state = __atomic_load_n(&vs_init_state, __ATOMIC_ACQUIRE)) == VS_INIT_WAIT)
        cpu_relax();
    vs_idt_load(cpu);
    if (state == VS_INIT_FAILED) {
        vs_telemetry_set_state(cpu, VS_GUEST_FAILED);
        halt_forever();
    }
    /* Started but not counted in cpus=: stay out of the range. */
    if (cpu >= vs_guest.params.cpus) {
        vs_telemetry_set_state(cpu, VS_GUEST_IDLE);
        halt_forever();
    }
    vs_workload_run(cpu);
}

void guest_main(const struct hvm_start_info *si, unsigned cpu)
{
    if (cpu != 0)
        secondary_cpu(cpu);
    boot_cpu(si);
}
