/* userfaultfd on guest RAM, for post-copy: register the RAM mapping in MISSING mode, read
 * the faults of threads (vCPUs in KVM, the monitor) touching a page that is not there,
 * and resolve them by copying a page in (UFFDIO_COPY), mapping zeros (UFFDIO_ZEROPAGE) or
 * waking the waiters of a page that arrived meanwhile (UFFDIO_WAKE). */
#ifndef VS_UFFD_H
#define VS_UFFD_H

#include <stdbool.h>
#include <stdint.h>

struct vs_uffd {
    int fd;
    uint8_t *base;       /* the registered range */
    uint64_t size;
};

/* Can this host do post-copy (userfaultfd with MISSING faults on shmem)? */
bool vs_uffd_available(void);
/* Register [base, base+size) (page-aligned); faults are read with vs_uffd_read_faults. */
int vs_uffd_open(struct vs_uffd *u, void *base, uint64_t size);
/* Up to max faulting offsets (relative to base, page-aligned) into off[]; waits up to
 * timeout_ms, or until wake_fd (an eventfd, -1: none) is readable. Returns how many. */
int vs_uffd_read_faults(struct vs_uffd *u, int wake_fd, int timeout_ms, uint64_t *off,
                        int max);
/* Copy len bytes from src into the missing range at off and wake its waiters.
 * -EEXIST: (part of) the range is present already. */
int vs_uffd_copy(struct vs_uffd *u, uint64_t off, const void *src, uint64_t len);
/* Map zeros at the missing range at off and wake its waiters (-EEXIST as above). */
int vs_uffd_zero(struct vs_uffd *u, uint64_t off, uint64_t len);
/* Wake the threads waiting on [off, off+len) (the page arrived meanwhile). */
int vs_uffd_wake(struct vs_uffd *u, uint64_t off, uint64_t len);
/* Unregister and close: faults on missing pages are then served by the kernel (zeros),
 * and waiters are released. Idempotent. */
void vs_uffd_close(struct vs_uffd *u);

#endif
