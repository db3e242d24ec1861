/* What backs guest RAM on this host (`--ram-backing`), which page size it gets, and how
 * the pages an anonymous RAM holds are found.
 *   memfd: shared shmem. Never-touched pages are holes (SEEK_DATA), received pages can be
 *          pwritten into it; 2 MiB pages only where shmem_enabled allows them (Debian's
 *          default is never).
 *   anon:  private anonymous memory with MADV_HUGEPAGE, as QEMU's default RAM: 2 MiB
 *          pages under Debian's default transparent_hugepage/enabled=madvise, so a fresh
 *          destination zeroes and maps 2 MiB per fault instead of 4 KiB. Pages it holds
 *          are read from /proc/self/pagemap.
 *   auto:  memfd where shmem gets huge pages, else anon where anonymous memory does,
 *          else memfd (4 KiB either way; the memfd skips holes more cheaply). */
#ifndef VS_RAM_BACKING_H
#define VS_RAM_BACKING_H

#include <stdbool.h>
#include <stdint.h>

enum vs_ram_backing { VS_RAM_BACKING_AUTO = 0, VS_RAM_BACKING_MEMFD, VS_RAM_BACKING_ANON };

/* "auto", "memfd" or "anon"; an error naming the value otherwise. */
int vs_ram_backing_parse(const char *text, enum vs_ram_backing *out);
const char *vs_ram_backing_name(enum vs_ram_backing b);
/* AUTO resolved for this host (the others as given). */
enum vs_ram_backing vs_ram_backing_choose(enum vs_ram_backing requested);
/* The page size a RAM of that (resolved) backing gets here, and why: starts with "2 MiB"
 * or "4 KiB". */
const char *vs_ram_backing_page_note(enum vs_ram_backing b);

/* Pages of an anonymous mapping the process holds (present or swapped), read from
 * /proc/self/pagemap (pagemap_fd). The first page at or after page index `first`
 * (relative to base) that is held, searching up to `end`; end if none. Sets *run_end to
 * the end of the run of held pages from there (<= end). A pagemap that cannot be read
 * says "held" (copying a page that holds nothing is only slower). */
uint64_t vs_ram_anon_next_held(int pagemap_fd, const uint8_t *base, uint64_t first,
                               uint64_t end, uint64_t *run_end);

#endif
