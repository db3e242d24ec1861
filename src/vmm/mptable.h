/* The MP table of pc VMs (Intel MP specification 1.4, include/vmshift/mptable.h): one
 * processor per vCPU (LAPIC id = vCPU index, vCPU 0 the BSP), an ISA bus, one IOAPIC
 * (id = number of vCPUs) and the PC's interrupt wiring: ISA IRQ 0 -> IOAPIC pin 2, the
 * other ISA IRQs 1:1 (IRQ 2, the 8259 cascade, has no pin), ExtINT -> LINT0 and NMI -> LINT1
 * of every LAPIC. The in-kernel irqchip must route the PIT's GSI 0 to pin 2 to match. */
#ifndef VS_MPTABLE_H
#define VS_MPTABLE_H

#include <stddef.h>
#include <stdint.h>
#include "vmm/memory.h"

/* Bytes of the floating pointer and the configuration table for nr_vcpus processors. */
size_t vs_mptable_size(unsigned nr_vcpus);

/* Build both into buf (len bytes) as they are to lie at guest-physical gpa (the floating
 * pointer first, 16-byte aligned). Returns 0, or an error if nr_vcpus is out of range,
 * gpa is misaligned or len is too small. */
int vs_mptable_build(void *buf, size_t len, uint32_t gpa, unsigned nr_vcpus);

/* Write the table into guest RAM at VS_MPTABLE_ADDR. */
int vs_mptable_write(struct vs_memory *m, unsigned nr_vcpus);

#endif
