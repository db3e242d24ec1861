/* Page data into guest RAM, two ways. Through the mapping, the socket's data is copied
 * straight into RAM; but a page the destination never had is first faulted in and zeroed
 * by the kernel (clear_page), one 4 KiB page at a time. Through the RAM's memfd (pwrite
 * at the page's offset), the data goes through a small cache-resident buffer and the
 * kernel allocates the page without zeroing it (the write covers it all) and without a
 * fault: ~25% less receiver CPU per GB on a fresh destination (docs/perf-notes.md). */
#include "wire/reader_internal.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 256 KiB: stays in L2 while it is hashed and written out. */
#define BOUNCE_BYTES (256u << 10)

void vs_wire_reader_set_ram_file(struct vs_wire_reader *r, int fd)
{
    r->ram_fd = fd;
    r->ram_fd_set = fd >= 0;
}

static int pwrite_all(struct vs_wire_reader *r, const struct vs_wire_header *h,
                      const uint8_t *buf, size_t len, uint64_t off)
{
    while (len) {
        ssize_t n = pwrite(r->ram_fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        int err = n < 0 ? errno : EIO;
        if (n <= 0)
            return vs_fail(err, "migration stream: record #%llu (%s): "
                           "writing %zu bytes of page data at RAM offset 0x%llx into the "
                           "guest RAM file failed: %s", (unsigned long long)h->seq,
                           vs_wire_type_name(h->type), len, (unsigned long long)off,
                           n < 0 ? strerror(err) : "nothing written");
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int bounce_buffer(struct vs_wire_reader *r)
{
    if (!r->bounce)
        r->bounce = aligned_alloc(4096, BOUNCE_BYTES);
    return r->bounce ? 0 : vs_fail(ENOMEM, "out of memory for a %u KiB page buffer",
                                   BOUNCE_BYTES >> 10);
}

int vs_wire_read_run(struct vs_wire_reader *r, const struct vs_wire_header *h, uint8_t *ram,
                     uint64_t off, size_t len, XXH3_state_t *st)
{
    if (!r->ram_fd_set) {
        int rc = vs_wire_read_part(r, h, ram + off, len, "page data");
        if (!rc && st)
            XXH3_64bits_update(st, ram + off, len);
        return rc;
    }
    int rc = bounce_buffer(r);
    while (!rc && len) {
        size_t n = len < BOUNCE_BYTES ? len : BOUNCE_BYTES;
        rc = vs_wire_read_part(r, h, r->bounce, n, "page data");
        if (!rc && st)
            XXH3_64bits_update(st, r->bounce, n);
        if (!rc)
            rc = pwrite_all(r, h, r->bounce, n, off);
        off += n;
        len -= n;
    }
    return rc;
}

int vs_wire_put_pages(struct vs_wire_reader *r, const struct vs_wire_header *h, uint8_t *ram,
                      const uint64_t *gpa, uint32_t count, const uint8_t *data)
{
    /* Pages listed at consecutive addresses go in as one run: one copy or one pwrite. */
    for (uint32_t i = 0, run; i < count; i += run) {
        for (run = 1; i + run < count &&
                      gpa[i + run] == gpa[i] + (uint64_t)run * VS_WIRE_PAGE_SIZE; run++)
            ;
        const uint8_t *pages = data + (size_t)i * VS_WIRE_PAGE_SIZE;
        size_t len = (size_t)run * VS_WIRE_PAGE_SIZE;
        int rc = 0;
        if (!r->ram_fd_set)
            memcpy(ram + gpa[i], pages, len);
        else
            rc = pwrite_all(r, h, pages, len, gpa[i]);
        if (rc)
            return rc;
    }
    return 0;
}
