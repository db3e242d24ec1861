/* Guest RAM: one mapping, registered with KVM as one slot per region of its layout
 * (ram_layout.h: flat, or pc with the MMIO gap [3 GiB, 4 GiB)), backed by a memfd or by
 * anonymous memory (ram_backing.h, --ram-backing). Either way later stages can find
 * never-touched pages (the memfd's holes, SEEK_DATA; anonymous pages the process does not
 * hold, /proc/self/pagemap) and give the memory back.
 * Two address spaces (ram_layout.h): RAM offsets (the mapping; the migration engine, the
 * digests and the dirty bitmaps use these) and guest-physical addresses (the guest,
 * devices, boot, --preload). Functions say which one they take. */
#ifndef VS_MEMORY_H
#define VS_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vmm/ram_backing.h"
#include "vmm/ram_layout.h"

#define VS_MAX_RAM (64ULL << 30)   /* the guest's PVH page tables map 64 GiB */

struct vs_memory {
    enum vs_ram_backing backing;  /* MEMFD or ANON, never AUTO */
    int memfd;         /* MEMFD: the shmem file; -1 for ANON */
    int pagemap_fd;    /* ANON: /proc/self/pagemap (-1: unknown, every page counts as data) */
    uint8_t *base;     /* host address of RAM offset 0 (the whole RAM, mapped) */
    uint64_t size;     /* bytes, multiple of 2 MiB: RAM offsets are [0, size) */
    struct vs_ram_layout layout;  /* where the offsets lie in guest-physical space */
    uint64_t *written;            /* pages the monitor wrote while tracking is on */
    uint64_t *data_blocks;        /* 2 MiB blocks known to be data in every page (atomic
                                     bits; see vs_memory_next_data) */
    _Atomic bool tracking;        /* kept allocated once made: writers never race a free */
    _Atomic bool released;        /* vs_memory_release: the contents are gone for good */
};

/* Checks the size (VS_MIN_RAM..VS_MAX_RAM, 2 MiB multiple) and that the host has that much
 * memory available, then creates and maps the RAM, backed as `backing` says (AUTO: as
 * this host does best, vs_ram_backing_choose). mmio_gap: the pc layout (RAM above 3 GiB
 * moves to 4 GiB), else flat. */
int vs_memory_create_layout(struct vs_memory *m, uint64_t size, bool mmio_gap,
                            enum vs_ram_backing backing);
/* The flat layout: all RAM from guest-physical 0, backed as this host does best. */
int vs_memory_create(struct vs_memory *m, uint64_t size);
void vs_memory_destroy(struct vs_memory *m);

/* 0 if guest-physical [gpa, gpa+len) lies inside one RAM region; otherwise an error
 * naming `what` and the guest's RAM ranges. */
int vs_memory_check_range(const struct vs_memory *m, uint64_t gpa, uint64_t len, const char *what);

/* The host address of RAM offset `offset` (not a guest-physical address: translate those
 * with vs_memory_gpa_ptr). The caller has checked offset < size. */
static inline void *vs_memory_ptr(const struct vs_memory *m, uint64_t offset)
{
    return m->base + offset;
}

/* The host address of guest-physical [gpa, gpa+len) if all of it is guest RAM (one
 * contiguous RAM range: never across the MMIO gap), else NULL. Devices reach every guest
 * buffer through this: a guest-given address is never trusted. */
void *vs_memory_gpa_ptr(const struct vs_memory *m, uint64_t gpa, uint64_t len);

/* Tracking of writes the monitor itself makes to guest RAM (device emulation, debug
 * writes): migration needs them as dirty pages, and KVM's dirty log only sees the guest's.
 * Every monitor write goes through vs_memory_note_write(). */
int vs_memory_track_writes(struct vs_memory *m, bool on);
/* Guest-physical [gpa, gpa+len) was written (parts outside RAM are ignored). */
void vs_memory_note_write(struct vs_memory *m, uint64_t gpa, uint64_t len);
/* OR the pages written since the last call into bitmap (one bit per page of RAM offsets)
 * and forget them. */
void vs_memory_collect_writes(struct vs_memory *m, uint64_t *bitmap);

/* The next run of data (pages the memfd or the process holds) in RAM offsets [off, end): returns its start
 * (end if [off, end) is all hole) and sets *run_end (<= end). Page-aligned offsets.
 * SEEK_HOLE scans to the end of a data run, however far, so asking block by block would
 * cost O(n^2) on a fully written RAM; every 2 MiB block a scan has seen full of data is
 * remembered instead. That knowledge never goes stale: vmshift never punches holes into
 * guest RAM it may still send (vs_memory_release is the end of a VM that left), so a page
 * that holds data keeps holding it. */
uint64_t vs_memory_next_data(const struct vs_memory *m, uint64_t off, uint64_t end,
                             uint64_t *run_end);

/* Pages the guest and the monitor never wrote are holes: they read as zero
 * and reading them through the mapping would allocate them. Clear the bits of such pages
 * of [first, end) in bitmap (one bit per page); returns how many bits were cleared. */
uint64_t vs_memory_drop_holes(const struct vs_memory *m, uint64_t *bitmap, uint64_t first,
                              uint64_t end);
/* Give the memory of every page back to the host (the VM runs elsewhere now and never
 * here again): the pages are punched out of the memfd or discarded; the mapping stays,
 * reading zeros, so a late access cannot crash the monitor. Its contents are gone:
 * nothing may migrate or digest this RAM afterwards (vs_memory_released). */
int vs_memory_release(struct vs_memory *m);
bool vs_memory_released(const struct vs_memory *m);
/* Drop the pages of RAM offsets [off, off+len) (page-aligned): they read as zero, and a
 * userfaultfd registered on the RAM sees the next touch as missing (post-copy). */
int vs_memory_discard(struct vs_memory *m, uint64_t off, uint64_t len);
/* Bytes of guest RAM the host actually holds for it (allocated pages). */
uint64_t vs_memory_allocated(const struct vs_memory *m);

/* Copy a whole file into guest RAM at guest-physical gpa (--preload FILE@ADDR); the file
 * must fit one RAM region. */
int vs_memory_preload(struct vs_memory *m, const char *path, uint64_t gpa);

/* The page size this RAM gets, and why, for logs and reports (ram_backing.c). */
const char *vs_memory_page_size_note(const struct vs_memory *m);
/* Whether this RAM gets 2 MiB pages (the note starts with "2 MiB"). */
bool vs_memory_huge_pages(const struct vs_memory *m);
/* Let the kernel assemble 2 MiB pages in guest RAM again (allow), or never (post-copy:
 * khugepaged would fill a discarded page's hole with zeros while it waits for its data,
 * and the VM would read them as its memory; MADV_NOHUGEPAGE until every page arrived). */
int vs_memory_allow_huge_pages(struct vs_memory *m, bool allow);

/* Bytes of host memory available for new allocations (MemAvailable), or 0 if unknown. */
uint64_t vs_host_available_memory(void);

#endif
