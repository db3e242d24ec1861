/* The contract between the vmshift monitor and the workload guest.
 *
 * Shared by the freestanding guest (guest/) and the monitor (src/vmm/): it must stay
 * free of libc.  Everything here is part of the guest ABI; changing a value breaks
 * guests built before the change.
 */
#ifndef VMSHIFT_GUEST_ABI_H
#define VMSHIFT_GUEST_ABI_H

#include <stdint.h>

/* ---- Guest-physical memory layout (used by the monitor's long-mode boot) ---- */
#define VS_BOOT_INFO_ADDR     0x1000ULL   /* struct hvm_start_info */
#define VS_BOOT_MEMMAP_ADDR   0x2000ULL   /* struct hvm_memmap_table_entry[] */
#define VS_BOOT_CMDLINE_ADDR  0x3000ULL   /* NUL-terminated command line */
#define VS_BOOT_CMDLINE_MAX   4096
#define VS_BOOT_PT_ADDR       0x10000ULL  /* PML4, PDPT, PDs: up to VS_BOOT_PT_END */
#define VS_BOOT_PT_END        0xA0000ULL
#define VS_KERNEL_ADDR        0x100000ULL /* the guest ELF is linked here (1 MiB) */
#define VS_KERNEL_END         0x200000ULL
#define VS_BOOT_STACKS_ADDR   0x200000ULL /* VS_BOOT_STACK_SIZE per vCPU, vCPU 0 lowest */
#define VS_BOOT_STACK_SIZE    0x4000ULL
#define VS_WORK_DEFAULT_START 0x400000ULL /* default start of the workload range (4 MiB) */
#define VS_MIN_RAM            (8ULL << 20)
#define VS_MAX_VCPUS          32

/* ---- ELF note carrying the 64-bit entry point ----
 * Name "vmshift", type VS_ELFNOTE_ENTRY64, descriptor: uint64_t physical entry address.
 * The monitor enters it in long mode with paging on (identity map of all RAM),
 * RDI = RBX = guest-physical address of the struct hvm_start_info,
 * RSI = vCPU index, RSP = top of that vCPU's boot stack, interrupts off.
 * The PVH note (name "Xen", type 18, 32-bit entry) is used by QEMU -kernel and by
 * `vmshift run --boot pvh`: 32-bit protected mode, paging off, EBX = start_info. */
#define VS_ELFNOTE_NAME    "vmshift"
#define VS_ELFNOTE_ENTRY64 1
#define VS_XEN_ELFNOTE_PHYS32_ENTRY 18

/* ---- The paravirtual control/telemetry port (I/O ports, 32-bit accesses) ----
 * Absent under QEMU: reads of an unassigned port return all ones there. */
#define VS_PVPORT_BASE      0x5a0
#define VS_PVPORT_MAGIC     (VS_PVPORT_BASE + 0)  /* in:  VS_PVPORT_MAGIC_VALUE */
#define VS_PVPORT_REGISTER  (VS_PVPORT_BASE + 4)  /* out: guest-physical address of struct
                                                     vs_telemetry (4 KiB aligned, < 4 GiB) */
#define VS_PVPORT_DOORBELL  (VS_PVPORT_BASE + 8)  /* out: vCPU index whose counters changed */
#define VS_PVPORT_CLOCK_US  (VS_PVPORT_BASE + 12) /* in:  monotonic host clock, microseconds,
                                                     low 32 bits (wraps; use differences) */
#define VS_PVPORT_SLEEP_US  (VS_PVPORT_BASE + 16) /* out: stall this vCPU for N microseconds */
#define VS_PVPORT_RATE      (VS_PVPORT_BASE + 20) /* in:  live dirty-rate override in pages/s
                                                     set by `vmshift ctl SOCK set-rate`;
                                                     VS_RATE_NO_OVERRIDE = keep boot value,
                                                     0 = full speed */
#define VS_PVPORT_SIZE      24
#define VS_PVPORT_MAGIC_VALUE 0x48534d56u         /* "VMSH" */
#define VS_RATE_NO_OVERRIDE   0xffffffffu

/* ---- Telemetry the guest publishes (one 4 KiB page in guest RAM) ---- */
#define VS_TELEMETRY_MAGIC   0x59524d454c455456ULL /* "VTELEMRY" */
#define VS_TELEMETRY_VERSION 1

enum vs_workload {
    VS_WORKLOAD_IDLE = 0,
    VS_WORKLOAD_ONCE = 1,
    VS_WORKLOAD_CONTINUOUS = 2,
    VS_WORKLOAD_VERIFY = 3,
    VS_WORKLOAD_TIMER = 4,  /* vCPU 0 waits in sti; hlt for timer interrupts (pc machine) */
    VS_WORKLOAD_DISK = 5,   /* vCPU 0 writes and checks blocks on a virtio-blk disk (pc) */
    VS_WORKLOAD_NET = 6,    /* vCPU 0 answers ARP, ping and UDP echo on its virtio-net NIC
                               at ip= (pc machine) */
    VS_WORKLOAD_NET_STREAM = 7, /* the same, and sends numbered UDP datagrams at rate= per
                               second to peer= (pc machine) */
};

enum vs_guest_state {
    VS_GUEST_BOOTING = 0,
    VS_GUEST_RUNNING = 1,  /* workload loop active */
    VS_GUEST_IDLE = 2,     /* halted on purpose (idle workload) */
    VS_GUEST_FAILED = 3,   /* bad parameters; see serial output */
};

enum vs_fill {
    VS_FILL_NONE = 0,     /* nothing written by the loader: pages read as zero */
    VS_FILL_PATTERN = 1,  /* vs_fill_word(VS_FILL_PATTERN, ...) */
    VS_FILL_RANDOM = 2,   /* vs_fill_word(VS_FILL_RANDOM, ...): incompressible, seeded */
};

struct vs_cpu_counters {          /* 64 bytes, updated only by its own vCPU */
    uint64_t passes;              /* complete passes over this vCPU's slice; timer: ticks */
    uint64_t pages_written;       /* timer, vCPU 0: virtio-rng requests completed */
    uint64_t pages_checked;       /* timer: ticks whose time was checked */
    uint64_t errors;              /* pages found stale, torn or wrong; timer: time went
                                     backwards, a tick came with no timer programmed, a
                                     virtio-rng used entry failed a check (a buffer not in
                                     flight, too long, the used index jumping), or console
                                     input was lost */
    uint64_t generation;          /* verify: generation being written now; timer, vCPU 0:
                                     bytes read from COM1's receiver */
    uint64_t first_bad_addr;      /* guest-physical address of the first bad page, or 0 */
    uint32_t state;               /* enum vs_guest_state */
    uint32_t rng_bytes;           /* timer, vCPU 0: virtio-rng entropy bytes received,
                                     modulo 2^32; disk, vCPU 0: KiB/s read and written over
                                     the last second (0 elsewhere; was reserved0) */
    uint64_t max_gap_us;          /* timer: the longest time between two ticks, microseconds;
                                     disk: the longest request (0 in the other workloads) */
};

struct vs_telemetry {
    uint64_t magic;               /* VS_TELEMETRY_MAGIC */
    uint32_t version;             /* VS_TELEMETRY_VERSION */
    uint32_t workload;            /* enum vs_workload */
    uint32_t nr_cpus;             /* vCPUs running the workload */
    uint32_t fill;                /* enum vs_fill the guest checks against */
    uint64_t range_start;         /* workload range, guest-physical bytes */
    uint64_t range_pages;
    uint64_t rate;                /* boot rate in pages/s per VM, 0 = full speed */
    uint64_t seed;
    uint16_t virtio_slots;        /* virtio_mmio.device= slots on the command line */
    uint16_t virtio_devices;      /* of them, populated by a version 2 virtio-mmio device */
    uint32_t virtio_ids;          /* bit n: a device with virtio device id n (< 32) found */
    struct vs_cpu_counters cpu[VS_MAX_VCPUS];
};

_Static_assert(sizeof(struct vs_cpu_counters) == 64, "counters layout");
_Static_assert(sizeof(struct vs_telemetry) == 64 + 64 * VS_MAX_VCPUS, "telemetry layout");
_Static_assert(sizeof(struct vs_telemetry) <= 4096, "telemetry fits one page");

/* ---- PVH boot structures (Xen public ABI, arch-x86/hvm/start_info.h) ---- */
#define VS_HVM_START_MAGIC 0x336ec578u
struct hvm_start_info {
    uint32_t magic;
    uint32_t version;             /* 1: memmap fields valid */
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
};
struct hvm_memmap_table_entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;                /* 1 = RAM */
    uint32_t reserved;
};
#define VS_E820_RAM 1

#endif
