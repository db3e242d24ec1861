/* Intel MultiProcessor Specification 1.4 tables: the floating pointer and the
 * configuration table with its base entries. The monitor writes them for pc VMs
 * (src/vmm/mptable.c), the workload guest reads them (guest/mp.c).
 *
 * Shared by the freestanding guest and the monitor: no libc. All structures are packed
 * little-endian as the specification lays them out. */
#ifndef VMSHIFT_MPTABLE_H
#define VMSHIFT_MPTABLE_H

#include <stdint.h>

/* Where vmshift puts the floating pointer (the configuration table follows it): inside
 * the BIOS area 0xF0000-0xFFFFF that the e820 map leaves out of RAM. */
#define VS_MPTABLE_ADDR      0xF0000u
#define VS_MP_SCAN_START     0xF0000u  /* the guest scans this BIOS area for "_MP_" */
#define VS_MP_SCAN_END       0x100000u

#define VS_MP_SPEC_REV       4          /* 1.4 */
#define VS_MP_LAPIC_ADDR     0xFEE00000u
#define VS_MP_LAPIC_VERSION  0x14
#define VS_MP_IOAPIC_ADDR    0xFEC00000u
#define VS_MP_IOAPIC_VERSION 0x11
#define VS_MP_ISA_IRQS       16
/* On PCs ISA IRQ 0 (the PIT) reaches IOAPIC pin 2; pin 0 is the 8259's ExtINT output
 * and ISA IRQ 2 is the 8259 cascade, which has no pin of its own. */
#define VS_MP_PIT_PIN        2

struct vs_mp_floating {              /* 16 bytes, on a 16-byte boundary */
    char signature[4];               /* "_MP_" */
    uint32_t config_paddr;           /* the configuration table, 0 = default configuration */
    uint8_t length;                  /* in 16-byte units: 1 */
    uint8_t spec_rev;
    uint8_t checksum;                /* all 16 bytes sum to 0 */
    uint8_t feature[5];              /* feature[0] = 0: a configuration table is present */
} __attribute__((packed));

struct vs_mp_config {                /* 44 bytes, followed by the entries */
    char signature[4];               /* "PCMP" */
    uint16_t length;                 /* header + base entries, bytes */
    uint8_t spec_rev;
    uint8_t checksum;                /* header + base entries sum to 0 */
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table_paddr;
    uint16_t oem_table_size;
    uint16_t entry_count;
    uint32_t lapic_paddr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
} __attribute__((packed));

enum vs_mp_entry_type {
    VS_MP_ENTRY_PROCESSOR = 0,       /* 20 bytes */
    VS_MP_ENTRY_BUS = 1,             /* the others 8 bytes */
    VS_MP_ENTRY_IOAPIC = 2,
    VS_MP_ENTRY_IOINT = 3,
    VS_MP_ENTRY_LOCALINT = 4,
};

#define VS_MP_CPU_ENABLED 0x01
#define VS_MP_CPU_BSP     0x02

struct vs_mp_processor {
    uint8_t type;                    /* VS_MP_ENTRY_PROCESSOR */
    uint8_t lapic_id;
    uint8_t lapic_version;
    uint8_t flags;                   /* VS_MP_CPU_* */
    uint32_t signature;              /* CPUID 1 EAX: stepping, model, family */
    uint32_t features;               /* CPUID 1 EDX */
    uint32_t reserved[2];
} __attribute__((packed));

struct vs_mp_bus {
    uint8_t type;                    /* VS_MP_ENTRY_BUS */
    uint8_t bus_id;
    char bus_type[6];                /* "ISA   ", blank padded */
} __attribute__((packed));

#define VS_MP_IOAPIC_ENABLED 0x01

struct vs_mp_ioapic {
    uint8_t type;                    /* VS_MP_ENTRY_IOAPIC */
    uint8_t id;
    uint8_t version;
    uint8_t flags;                   /* VS_MP_IOAPIC_ENABLED */
    uint32_t paddr;
} __attribute__((packed));

enum vs_mp_irq_type { VS_MP_INT = 0, VS_MP_NMI = 1, VS_MP_SMI = 2, VS_MP_EXTINT = 3 };
#define VS_MP_ALL_LAPICS 0xFF

/* Both interrupt assignment entries (VS_MP_ENTRY_IOINT, VS_MP_ENTRY_LOCALINT). */
struct vs_mp_irq {
    uint8_t type;
    uint8_t irq_type;                /* enum vs_mp_irq_type */
    uint16_t flags;                  /* polarity (bits 0-1), trigger (2-3); 0 = as the bus */
    uint8_t src_bus;
    uint8_t src_irq;
    uint8_t dst_apic;                /* IOAPIC id, or LAPIC id / VS_MP_ALL_LAPICS */
    uint8_t dst_pin;                 /* IOAPIC INTIN#, or LINTIN# */
} __attribute__((packed));

_Static_assert(sizeof(struct vs_mp_floating) == 16, "MP floating pointer layout");
_Static_assert(sizeof(struct vs_mp_config) == 44, "MP configuration table header layout");
_Static_assert(sizeof(struct vs_mp_processor) == 20, "MP processor entry layout");
_Static_assert(sizeof(struct vs_mp_bus) == 8, "MP bus entry layout");
_Static_assert(sizeof(struct vs_mp_ioapic) == 8, "MP IOAPIC entry layout");
_Static_assert(sizeof(struct vs_mp_irq) == 8, "MP interrupt entry layout");

#endif
