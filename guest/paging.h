/* Device registers outside RAM: the boot page tables map only RAM (the monitor's) or the
 * low 64 GiB as RAM (the PVH path's own), so before the guest touches the LAPIC, the
 * IOAPIC or a virtio-mmio device it maps their 2 MiB page identity, uncached. */
#ifndef VS_GUEST_PAGING_H
#define VS_GUEST_PAGING_H

#include <stdint.h>

/* Identity-map the 2 MiB page that holds [addr, addr + len) (which must not cross a 2 MiB
 * boundary) with caching off, in the page tables of CR3. vCPU 0 only, before the other
 * vCPUs run (they share the tables). Returns 0, or -1 if the guest's few spare page
 * table pages are used up or the range crosses 2 MiB. */
int vs_map_mmio(uint64_t addr, uint64_t len);

#endif
