/* What backs guest RAM (ram_backing.h): the choice, its page size, and the pages an
 * anonymous RAM holds. */
#include "vmm/ram_backing.h"
#include "common/error.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)
#define PM_BATCH 512          /* entries read at once: one 2 MiB block */

int vs_ram_backing_parse(const char *text, enum vs_ram_backing *out)
{
    static const char *const names[] = { "auto", "memfd", "anon" };
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(text, names[i])) {
            *out = (enum vs_ram_backing)i;
            return 0;
        }
    return vs_fail(EINVAL, "--ram-backing '%s' is not one of auto, memfd, anon", text);
}

const char *vs_ram_backing_name(enum vs_ram_backing b)
{
    return b == VS_RAM_BACKING_MEMFD ? "memfd" : b == VS_RAM_BACKING_ANON ? "anon" : "auto";
}

/* The bracketed choice of a transparent_hugepage control file, or "" if unreadable. */
static void thp_mode(const char *file, char *mode, size_t len)
{
    char path[128], line[160] = "";
    snprintf(path, sizeof(path), "/sys/kernel/mm/transparent_hugepage/%s", file);
    FILE *f = fopen(path, "re");
    mode[0] = '\0';
    if (!f)
        return;
    if (fgets(line, sizeof(line), f)) {
        char *a = strchr(line, '['), *b = a ? strchr(a, ']') : NULL;
        if (a && b)
            snprintf(mode, len, "%.*s", (int)(b - a - 1), a + 1);
    }
    fclose(f);
}

static bool shmem_huge(void)
{
    char m[32];
    thp_mode("shmem_enabled", m, sizeof(m));
    return !strcmp(m, "advise") || !strcmp(m, "always") || !strcmp(m, "within_size") ||
           !strcmp(m, "force");
}

static bool anon_huge(void)
{
    char m[32];
    thp_mode("enabled", m, sizeof(m));
    return !strcmp(m, "madvise") || !strcmp(m, "always");
}

enum vs_ram_backing vs_ram_backing_choose(enum vs_ram_backing requested)
{
    if (requested != VS_RAM_BACKING_AUTO)
        return requested;
    if (!shmem_huge() && anon_huge())
        return VS_RAM_BACKING_ANON;
    return VS_RAM_BACKING_MEMFD;
}

const char *vs_ram_backing_page_note(enum vs_ram_backing b)
{
    if (b == VS_RAM_BACKING_ANON)
        return anon_huge() ? "2 MiB where aligned (anonymous memory, MADV_HUGEPAGE)"
                           : "4 KiB (anonymous memory; transparent_hugepage/enabled is never)";
    char m[32];
    thp_mode("shmem_enabled", m, sizeof(m));
    if (!m[0])
        return "4 KiB (memfd; this kernel has no shmem huge pages)";
    if (!strcmp(m, "advise"))
        return "2 MiB where aligned (memfd, shmem_enabled=advise, MADV_HUGEPAGE)";
    if (shmem_huge())
        return "2 MiB where aligned (memfd, shmem_enabled allows them)";
    return "4 KiB (memfd; shmem_enabled is never or deny: set it to advise, or use "
           "--ram-backing anon, for 2 MiB pages)";
}

/* Reads the pagemap entries of pages [p, p+n) into e; false if it cannot. */
static bool read_entries(int fd, const uint8_t *base, uint64_t p, uint64_t n, uint64_t *e)
{
    off_t at = (off_t)(((uintptr_t)base / 4096 + p) * sizeof(uint64_t));
    ssize_t got = pread(fd, e, n * sizeof(uint64_t), at);
    return got == (ssize_t)(n * sizeof(uint64_t));
}

static bool held(uint64_t entry)
{
    return entry & (PM_PRESENT | PM_SWAPPED);
}

uint64_t vs_ram_anon_next_held(int pagemap_fd, const uint8_t *base, uint64_t first,
                               uint64_t end, uint64_t *run_end)
{
    uint64_t e[PM_BATCH], p = first, start = end;
    *run_end = end;
    while (p < end) {   /* the first held page */
        uint64_t n = end - p < PM_BATCH ? end - p : PM_BATCH;
        if (pagemap_fd < 0 || !read_entries(pagemap_fd, base, p, n, e))
            return p;   /* cannot tell: held */
        uint64_t i = 0;
        while (i < n && !held(e[i]))
            i++;
        if (i < n) {
            start = p + i;
            break;
        }
        p += n;
    }
    if (start == end)
        return end;
    for (p = start; p < end;) {   /* the end of its run */
        uint64_t n = end - p < PM_BATCH ? end - p : PM_BATCH;
        if (!read_entries(pagemap_fd, base, p, n, e))
            return start;   /* the run goes on, as far as anyone can tell */
        uint64_t i = 0;
        while (i < n && held(e[i]))
            i++;
        if (i < n) {
            *run_end = p + i;
            return start;
        }
        p += n;
    }
    return start;
}
