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

static void warn_if_no_shmem_hugepages(void)
{
    static bool warned;
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "re");
    if (!f)
        return;
    if (!fgets(mode, sizeof(mode), f))
        mode[0] = '\0';
    fclose(f);
    if (!warned && strstr(mode, "[never]")) {
        warned = true;
        vs_info("guest RAM gets 4 KiB pages: this host has shmem huge pages off; for faster "
                "migrations set /sys/kernel/mm/transparent_hugepage/shmem_enabled to advise");
    }
}

int vs_memory_create(struct vs_memory *m, uint64_t size)
{
    return vs_memory_create_layout(m, size, false);
}

int vs_memory_create_layout(struct vs_memory *m, uint64_t size, bool mmio_gap)
{
    char a[32], b[32];
    memset(m, 0, sizeof(*m));
    m->memfd = -1;
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
    m->memfd = memfd_create("vmshift-guest-ram", MFD_CLOEXEC);
    if (m->memfd < 0)
        return vs_fail(errno, "memfd_create for guest RAM failed: %s", strerror(errno));
    if (ftruncate(m->memfd, (off_t)size) < 0) {
        int err = errno;
        close(m->memfd);
        m->memfd = -1;
        return vs_fail(err, "cannot size guest RAM memfd to %s: %s",
                       vs_format_size(size, a, sizeof(a)), strerror(err));
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->memfd, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        close(m->memfd);
        m->memfd = -1;
        return vs_fail(err, "cannot map %s of guest RAM: %s",
                       vs_format_size(size, a, sizeof(a)), strerror(err));
    }
    m->data_blocks = calloc((size / TWO_MIB + 63) / 64, sizeof(uint64_t));
    if (!m->data_blocks) {
        munmap(p, size);
        close(m->memfd);
        m->memfd = -1;
        return vs_fail(ENOMEM, "out of memory for the data map of %s of guest RAM",
                       vs_format_size(size, a, sizeof(a)));
    }
    madvise(p, size, MADV_DONTDUMP);
    /* 2 MiB pages where the host allows them for shmem: first touch (filling, receiving a
     * migration) is several times faster, and so are guest TLB misses. */
    madvise(p, size, MADV_HUGEPAGE);
    warn_if_no_shmem_hugepages();
    m->base = p;
    m->size = size;
    vs_ram_layout_init(&m->layout, size, mmio_gap);
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
    m->base = NULL;
    m->memfd = -1;
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

uint64_t vs_memory_next_data(const struct vs_memory *m, uint64_t off, uint64_t end,
                             uint64_t *run_end)
{
    *run_end = end;
    if (off >= end)
        return end;
    if (m->memfd < 0)
        return off;
    if (!block_known_data(m, off)) {
        off_t d = lseek(m->memfd, (off_t)off, SEEK_DATA);
        if (d < 0)
            return errno == ENXIO ? end : off; /* cannot tell: call it data, still correct */
        if ((uint64_t)d >= end)
            return end;
        off = (uint64_t)d;
        if (!block_known_data(m, off)) {
            off_t h = lseek(m->memfd, (off_t)off, SEEK_HOLE);
            uint64_t hole = h < 0 ? end : (uint64_t)h;
            if (h >= 0)
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

int vs_memory_release(struct vs_memory *m)
{
    if (fallocate(m->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)m->size) < 0) {
        char size[32];
        return vs_fail(errno, "cannot release the %s of guest RAM (punching its memfd): %s",
                       vs_format_size(m->size, size, sizeof(size)), strerror(errno));
    }
    atomic_store(&m->released, true);
    return 0;
}

bool vs_memory_released(const struct vs_memory *m)
{
    return atomic_load(&m->released);
}

uint64_t vs_memory_allocated(const struct vs_memory *m)
{
    struct stat st;
    return fstat(m->memfd, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}
