/* The guest's command line: space-separated key=value tokens (see vs_params_parse).
 * Pure and freestanding; the unit test builds it hosted. */
#ifndef VS_GUEST_PARAMS_H
#define VS_GUEST_PARAMS_H

#include <stdint.h>
#include "vmshift/guest_abi.h"

/* The workload range must stay above the monitor's boot stacks. */
#define VS_WORK_MIN_START (VS_BOOT_STACKS_ADDR + VS_MAX_VCPUS * VS_BOOT_STACK_SIZE)
/* Memory maps longer than this are taken as garbage. */
#define VS_MEMMAP_MAX 128
#define VS_PARAMS_MAX_WARNINGS 8
/* virtio_mmio.device= slots kept; more is an error. */
#define VS_VIRTIO_MMIO_MAX 8
/* Timer rates (hz=): the PIT's 16-bit divisor cannot go below 19 Hz. */
#define VS_HZ_DEFAULT 50
#define VS_HZ_MAX 1000
#define VS_HZ_PIT_MIN 19

enum vs_timer_source { VS_TIMER_PIT = 0, VS_TIMER_LAPIC = 1 };

/* One virtio_mmio.device=SIZE@BASE:IRQ[:ID] parameter, as Linux takes it. */
struct vs_virtio_mmio_slot {
    uint64_t base;
    uint64_t size;
    uint32_t irq;
};

/* The workload range may span this many separate pieces of RAM (e820 RAM runs: below and
 * above the PCI hole, around reserved areas). */
#define VS_RANGE_MAX_EXTENTS 8

/* A piece of the workload range: guest-physical [start, start + pages * 4 KiB). */
struct vs_range_extent {
    uint64_t start;
    uint64_t pages;
};

/* An ignored token, pointing into the command line (not NUL-terminated). */
struct vs_param_warning {
    const char *token;
    unsigned len;
};

struct vs_guest_params {
    uint32_t workload;      /* enum vs_workload */
    uint32_t fill;          /* enum vs_fill */
    uint64_t start;         /* workload range: from here, 4 KiB aligned, */
    uint64_t size;          /* this many bytes of RAM (0 until given or resolved from the
                               memory map), skipping what is not RAM */
    uint64_t mem;           /* RAM size for loaders without a memory map, 0 = not given */
    uint64_t rate;          /* pages/s for the whole VM, 0 = full speed */
    uint64_t seed;
    uint32_t cpus;          /* vCPUs the monitor started, 1..VS_MAX_VCPUS */
    uint32_t quiet;
    uint32_t hz;            /* timer workload: interrupts per second */
    uint32_t timer;         /* enum vs_timer_source */
    uint64_t disk_blocks;   /* disk workload: 4 KiB blocks of the disk it uses, 0 = default */
    uint32_t nr_virtio;
    struct vs_virtio_mmio_slot virtio[VS_VIRTIO_MMIO_MAX];
    uint8_t ip[4];          /* net workload: the guest's IPv4 address (ip=) */
    uint32_t has_ip;
    uint8_t ip2[4];         /* net workload: the second NIC's address (ip2=), if any */
    uint32_t has_ip2;
    uint8_t peer_ip[4];     /* net-stream workload: where the datagrams go (peer=IP:PORT) */
    uint16_t peer_port;
    uint32_t has_peer;
    uint32_t nr_warnings;   /* unknown tokens seen, including those not kept below */
    struct vs_param_warning warnings[VS_PARAMS_MAX_WARNINGS];
    uint32_t nr_extents;    /* the range as pieces of RAM, by vs_params_resolve_range */
    struct vs_range_extent extents[VS_RANGE_MAX_EXTENTS];
};

/* Parse a NUL-terminated command line (NULL = empty) into *out, defaults first.
 * Keys: workload=idle|once|continuous|verify|timer|disk|net|net-stream
 * fill=none|pattern|random start=
 * size= mem= (bytes, decimal or 0x-hex, K/M/G suffix) rate= seed= cpus= quiet= hz=
 * disk_blocks= (plain numbers) timer=pit|lapic, ip=A.B.C.D, ip2=A.B.C.D, peer=A.B.C.D:PORT
 * (net-stream: the collector; rate= is then datagrams per second), and
 * virtio_mmio.device=SIZE@BASE:IRQ[:ID] (repeatable).
 * Unknown keys and tokens without '=' are ignored and recorded as warnings.
 * Returns 0, or -1 with a message in err (errlen bytes, may be 0). */
int vs_params_parse(const char *cmdline, struct vs_guest_params *out, char *err,
                    unsigned errlen);

/* Lay the range out on RAM: size bytes of RAM from start on, in ascending address order,
 * skipping what is not RAM (the MMIO gap below 4 GiB, reserved areas); without size, all
 * RAM from start to the end. start must lie in RAM. RAM comes from the memory map, or is
 * [0, mem) when the map is empty (entries == 0). Fills size and the extents. Returns 0,
 * or -1 with a message in err. */
int vs_params_resolve_range(struct vs_guest_params *p, const struct hvm_memmap_table_entry *map,
                            uint32_t entries, char *err, unsigned errlen);

/* The guest-physical address of page `index` of the resolved range (0-based, below
 * size / 4 KiB); *run = pages from there to the end of its extent (0 beyond the range). */
uint64_t vs_params_page_addr(const struct vs_guest_params *p, uint64_t index, uint64_t *run);
/* The end of the range's last extent (its highest address + 1). */
uint64_t vs_params_range_end(const struct vs_guest_params *p);

const char *vs_params_workload_name(uint32_t workload);
const char *vs_params_fill_name(uint32_t fill);
const char *vs_params_timer_name(uint32_t timer);

#endif
