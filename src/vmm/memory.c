#include "vmm/memory.h"
#include "common/error.h"
#include "common/log.h"
#include "common/size.h"
#include "vmshift/guest_abi.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TWO_MIB (2ULL << 20)

uint64_t vs_host_available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

int vs_memory_create(struct vs_memory *m, uint64_t size)
{
    return vs_memory_create_layout(m, size, false, VS_RAM_BACKING_AUTO);
}

/* A shared mapping of a new memfd of `size` bytes. */
static int map_memfd(struct vs_memory *m, uint64_t size)
{
    char a[32];
    m->memfd = memfd_create("vmshift-guest-ram", MFD_CLOEXEC);
    if (m->memfd < 0)
        return vs_fail(errno, "memfd_create for guest RAM failed: %s", strerror(errno));
    if (ftruncate(m->memfd, (off_t)size) < 0)
        return vs_fail(errno, "cannot size guest RAM memfd to %s: %s",
                       vs_format_size(size, a, sizeof(a)), strerror(errno));
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd, 0);
    if (p == MAP_FAILED)
        return vs_fail(errno, "cannot map %s of guest RAM: %s",
                       vs_format_size(size, a, sizeof(a)), strerror(errno));
    m->base = p;
    return 0;
}

/* Private anonymous memory, 2 MiB-aligned so that every 2 MiB of it can be a huge page,
 * never inherited by a child (a fork would make every guest write a copy). */
static int map_anon(struct vs_memory *m, uint64_t size)
{
    char a[32];
    uint8_t *p = mmap(NULL, size + TWO_MIB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return vs_fail(errno, "cannot map %s of guest RAM: %s",
                       vs_format_size(size, a, sizeof(a)), strerror(errno));
    uint64_t lead = (TWO_MIB - (uintptr_t)p % TWO_MIB) % TWO_MIB;
    if (lead)
        munmap(p, lead);
    munmap(p + lead + size, TWO_MIB - lead);
    m->base = p + lead;
    madvise(m->base, size, MADV_DONTFORK);
    m->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return 0;
}

int vs_memory_create_layout(struct vs_memory *m, uint64_t size, bool mmio_gap,
                            enum vs_ram_backing backing)
{
    char a[32], b[32];
    memset(m, 0, sizeof(*m));
    m->memfd = m->pagemap_fd = -1;
    m->backing = vs_ram_backing_choose(backing);
    if (size < VS_MIN_RAM || size > VS_MAX_RAM)
        return vs_fail(EINVAL, "--mem %s is out of range; give between %s and %s",
                       vs_format_size(size, a, sizeof(a)), vs_format_size(VS_MIN_RAM, b, sizeof(b)),
                       "64.0 GiB");
    if (size % TWO_MIB)
        return vs_fail(EINVAL, "--mem %llu bytes is not a multiple of 2 MiB; round it (e.g. 512M, 4G)",
                       (unsigned long long)size);
    uint64_t avail = vs_host_available_memory();
    if (avail && size > avail)
        return vs_fail(ENOMEM, "--mem %s is more than this host can give (%s available); "
                       "use a smaller --mem or free memory",
                       vs_format_size(size, a, sizeof(a)), vs_format_size(avail, b, sizeof(b)));
    int rc = m->backing == VS_RAM_BACKING_ANON ? map_anon(m, size) : map_memfd(m, size);
    m->data_blocks = rc ? NULL : calloc((size / TWO_MIB + 63) / 64, sizeof(uint64_t));
    if (!rc && !m->data_blocks)
        rc = vs_fail(ENOMEM, "out of memory for the data map of %s of guest RAM",
                     vs_format_size(size, a, sizeof(a)));
    m->size = size;
    if (rc) {
        vs_memory_destroy(m);
        return rc;
    }
    madvise(m->base, size, MADV_DONTDUMP);
    /* 2 MiB pages where the host allows them: first touch (filling, receiving a migration)
     * is several times faster, and so are guest TLB misses. */
    (void)vs_memory_allow_huge_pages(m, true);   /* a host without THP: 4 KiB pages */
    static bool noted;
    if (!noted && !vs_memory_huge_pages(m)) {
        noted = true;
        vs_info("guest RAM gets %s", vs_memory_page_size_note(m));
    }
    vs_ram_layout_init(&m->layout, size, mmio_gap);
    return 0;
}

const char *vs_memory_page_size_note(const struct vs_memory *m)
{
    return vs_ram_backing_page_note(m->backing);
}

bool vs_memory_huge_pages(const struct vs_memory *m)
{
    return strncmp(vs_memory_page_size_note(m), "2 MiB", 5) == 0;
}

int vs_memory_allow_huge_pages(struct vs_memory *m, bool allow)
{
    if (madvise(m->base, m->size, allow ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) < 0)
        return vs_fail(errno, "cannot %s huge pages on guest RAM (%s, madvise %s): %s",
                       allow ? "allow" : "forbid", vs_ram_backing_name(m->backing),
                       allow ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE", strerror(errno));
    return 0;
}

void vs_memory_destroy(struct vs_memory *m)
{
    free(m->written);
    m->written = NULL;
    free(m->data_blocks);
    m->data_blocks = NULL;
    if (m->base)
        munmap(m->base, m->size);
    if (m->memfd >= 0)
        close(m->memfd);
    if (m->pagemap_fd >= 0)
        close(m->pagemap_fd);
    m->base = NULL;
    m->memfd = m->pagemap_fd = -1;
    m->size = 0;
    memset(&m->layout, 0, sizeof(m->layout));
}

int vs_memory_check_range(const struct vs_memory *m, uint64_t gpa, uint64_t len, const char *what)
{
    uint64_t off;
    if (vs_ram_gpa_to_offset(&m->layout, gpa, len, &off))
        return 0;
    const struct vs_ram_region *r = m->layout.regions;
    char ranges[96];
    int n = snprintf(ranges, sizeof(ranges), "[0x%llx, 0x%llx)", (unsigned long long)r[0].gpa,
                     (unsigned long long)(r[0].gpa + r[0].size));
    if (m->layout.nr_regions > 1 && n > 0 && (size_t)n < sizeof(ranges))
        snprintf(ranges + n, sizeof(ranges) - (size_t)n, " and [0x%llx, 0x%llx)",
                 (unsigned long long)r[1].gpa, (unsigned long long)(r[1].gpa + r[1].size));
    return vs_fail(ERANGE, "%s [0x%llx, 0x%llx) lies outside guest RAM %s (or across a gap "
                   "between its ranges)", what,
                   (unsigned long long)gpa, (unsigned long long)(gpa + len), ranges);
}

int vs_memory_preload(struct vs_memory *m, const char *path, uint64_t gpa)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vs_fail(errno, "--preload %s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = vs_fail(EINVAL, "--preload %s: not a regular file", path);
        goto out;
    }
    if (gpa < VS_WORK_DEFAULT_START) {
        rc = vs_fail(EINVAL, "--preload %s@0x%llx overlaps the boot area [0, 0x%llx); "
                     "load at 0x%llx or above", path, (unsigned long long)gpa,
                     (unsigned long long)VS_WORK_DEFAULT_START,
                     (unsigned long long)VS_WORK_DEFAULT_START);
        goto out;
    }
    rc = vs_memory_check_range(m, gpa, (uint64_t)st.st_size, "--preload");
    if (rc) {
        rc = vs_fail_context(rc, "--preload %s (%lld bytes) does not fit; use a larger --mem "
                             "or an address that keeps it inside one RAM range", path,
                             (long long)st.st_size);
        goto out;
    }
    uint8_t *dst = vs_memory_gpa_ptr(m, gpa, (uint64_t)st.st_size);
    uint64_t done = 0;
    while (done < (uint64_t)st.st_size) {
        ssize_t n = pread(fd, dst + done, (size_t)((uint64_t)st.st_size - done),
                          (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = vs_fail(n < 0 ? errno : EIO, "--preload %s: read failed at offset %llu", path,
                         (unsigned long long)done);
            goto out;
        }
        done += (uint64_t)n;
    }
out:
    close(fd);
    return rc;
}

int vs_memory_track_writes(struct vs_memory *m, bool on)
{
    if (on && !m->written) {
        m->written = calloc((m->size / 4096 + 63) / 64, sizeof(uint64_t));
        if (!m->written)
            return vs_fail(ENOMEM, "out of memory for the monitor's write bitmap");
    }
    atomic_store(&m->tracking, on);
    return 0;
}

void *vs_memory_gpa_ptr(const struct vs_memory *m, uint64_t gpa, uint64_t len)
{
    uint64_t off;
    if (!m->base || !vs_ram_gpa_to_offset(&m->layout, gpa, len, &off))
        return NULL;
    return m->base + off;
}

/* Mark RAM offsets [off, off+len) written. */
static void note_offsets(struct vs_memory *m, uint64_t off, uint64_t len)
{
    for (uint64_t p = off / 4096; p <= (off + len - 1) / 4096; p++)
        __atomic_fetch_or(&m->written[p / 64], 1ULL << (p % 64), __ATOMIC_RELAXED);
}

void vs_memory_note_write(struct vs_memory *m, uint64_t gpa, uint64_t len)
{
    if (!atomic_load(&m->tracking) || len == 0 || len > UINT64_MAX - gpa)
        return;
    for (unsigned i = 0; i < m->layout.nr_regions; i++) {
        const struct vs_ram_region *r = &m->layout.regions[i];
        uint64_t lo = gpa > r->gpa ? gpa : r->gpa;
        uint64_t hi = gpa + len < r->gpa + r->size ? gpa + len : r->gpa + r->size;
        if (lo < hi)
            note_offsets(m, r->offset + (lo - r->gpa), hi - lo);
    }
}

void vs_memory_collect_writes(struct vs_memory *m, uint64_t *bitmap)
{
    if (!m->written)
        return;
    for (uint64_t i = 0; i < (m->size / 4096 + 63) / 64; i++)
        if (__atomic_load_n(&m->written[i], __ATOMIC_RELAXED))
            bitmap[i] |= __atomic_exchange_n(&m->written[i], 0, __ATOMIC_RELAXED);
}

static bool block_known_data(const struct vs_memory *m, uint64_t off)
{
    uint64_t b = off / TWO_MIB;
    return m->data_blocks &&
           (__atomic_load_n(&m->data_blocks[b / 64], __ATOMIC_RELAXED) >> (b % 64)) & 1;
}

/* Remember the 2 MiB blocks that lie wholly inside the data run [lo, hi). */
static void mark_known_data(const struct vs_memory *m, uint64_t lo, uint64_t hi)
{
    if (!m->data_blocks)
        return;
    for (uint64_t b = (lo + TWO_MIB - 1) / TWO_MIB; (b + 1) * TWO_MIB <= hi; b++)
        __atomic_fetch_or(&m->data_blocks[b / 64], 1ULL << (b % 64), __ATOMIC_RELAXED);
}

/* The first data at or after off (>= end: none before end) and the hole that ends its
 * run (for the memfd: its end, however far; for anonymous RAM: at most end). False when
 * the host cannot tell. */
static bool find_data(const struct vs_memory *m, uint64_t off, uint64_t end, uint64_t *data,
                      uint64_t *hole)
{
    if (m->backing == VS_RAM_BACKING_ANON) {
        uint64_t run_end;
        *data = vs_ram_anon_next_held(m->pagemap_fd, m->base, off / 4096, end / 4096,
                                      &run_end) * 4096;
        *hole = run_end * 4096;
        return m->pagemap_fd >= 0;
    }
    off_t d = lseek(m->memfd, (off_t)off, SEEK_DATA);
    if (d < 0 && errno == ENXIO) {
        *data = *hole = end;
        return true;
    }
    if (d < 0)
        return false;
    *data = (uint64_t)d;
    off_t h = d < (off_t)end ? lseek(m->memfd, d, SEEK_HOLE) : d;
    *hole = h < 0 ? end : (uint64_t)h;
    return true;
}

uint64_t vs_memory_next_data(const struct vs_memory *m, uint64_t off, uint64_t end,
                             uint64_t *run_end)
{
    *run_end = end;
    if (off >= end)
        return end;
    if (!block_known_data(m, off)) {
        uint64_t data, hole;
        if (!find_data(m, off, end, &data, &hole))
            return off;   /* cannot tell: call it data, still correct */
        if (data >= end)
            return end;
        off = data;
        if (!block_known_data(m, off)) {
            mark_known_data(m, off, hole);
            *run_end = hole < end ? hole : end;
            return off;
        }
    }
    uint64_t hi = (off / TWO_MIB + 1) * TWO_MIB;
    while (hi < end && block_known_data(m, hi))
        hi += TWO_MIB;
    *run_end = hi < end ? hi : end;
    return off;
}

uint64_t vs_memory_drop_holes(const struct vs_memory *m, uint64_t *bitmap, uint64_t first,
                              uint64_t end)
{
    uint64_t dropped = 0, off = first * 4096, stop = end * 4096;
    while (off < stop) {
        uint64_t run_end, data = vs_memory_next_data(m, off, stop, &run_end);
        for (uint64_t p = off / 4096; p < data / 4096; p++) {
            uint64_t bit = 1ULL << (p % 64);
            if (bitmap[p / 64] & bit) {
                bitmap[p / 64] &= ~bit;
                dropped++;
            }
        }
        off = run_end;
    }
    return dropped;
}

int vs_memory_discard(struct vs_memory *m, uint64_t off, uint64_t len)
{
    int rc = m->backing == VS_RAM_BACKING_ANON
                 ? madvise(m->base + off, len, MADV_DONTNEED)
                 : fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                             (off_t)len);
    if (rc < 0)
        return vs_fail(errno, "cannot drop RAM offsets [0x%llx, 0x%llx) of guest RAM (%s): %s",
                       (unsigned long long)off, (unsigned long long)(off + len),
                       vs_ram_backing_name(m->backing), strerror(errno));
    return 0;
}

int vs_memory_release(struct vs_memory *m)
{
    int rc = vs_memory_discard(m, 0, m->size);
    if (rc)
        return vs_fail_context(rc, "releasing the guest RAM of a VM that left");
    atomic_store(&m->released, true);
    return 0;
}

bool vs_memory_released(const struct vs_memory *m)
{
    return atomic_load(&m->released);
}

uint64_t vs_memory_allocated(const struct vs_memory *m)
{
    if (m->backing != VS_RAM_BACKING_ANON) {
        struct stat st;
        return fstat(m->memfd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
    }
    unsigned char vec[4096];   /* resident pages, a chunk at a time */
    uint64_t pages = 0, npages = m->size / 4096;
    for (uint64_t p = 0; p < npages; p += sizeof(vec)) {
        uint64_t n = npages - p < sizeof(vec) ? npages - p : sizeof(vec);
        if (mincore(m->base + p * 4096, n * 4096, vec) < 0)
            return 0;
        for (uint64_t i = 0; i < n; i++)
            pages += vec[i] & 1;
    }
    return pages * 4096;
}
