/* What a virtio-blk disk stores its sectors in: a raw image file or a block device, given
 * as `--disk FILE[,shared][,ro]`, or an NBD export (FILE an nbd:// URI: blk_nbd.h).
 * Synchronous I/O (preadv, pwritev, fdatasync, fallocate; NBD commands); the device calls
 * it from its I/O thread (virtio_blk.c).
 *
 * Opening is in two steps, for migration on shared storage: a destination opens the file
 * read-only when it builds the VM (the source still writes it), and for writing only once
 * the VM is its own (vs_blk_backend_open_for_writing, after the commit). A source that
 * handed the VM over closes it (vs_blk_backend_close): it can write no more. */
#ifndef VS_BLK_BACKEND_H
#define VS_BLK_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vmm/virtio/blk_nbd.h"

#define VS_BLK_PATH_MAX 240

#define VS_BLK_RECONNECT_DEFAULT_S 10

/* `--disk FILE[,shared][,ro][,reconnect=SECONDS]`; FILE may be an NBD URI (blk_nbd.h). */
struct vs_blk_spec {
    char path[VS_BLK_PATH_MAX];   /* a file, a block device or an NBD URI */
    bool shared;     /* both hosts of a migration reach this same file */
    bool ro;         /* the guest gets a read-only disk (VIRTIO_BLK_F_RO) */
    unsigned reconnect_s;   /* NBD: how long a request waits for a lost connection to be
                               made again before it fails (0: it fails at once) */
};

/* Parse a SPEC. Refused with a message naming the option: an empty or too long path, an
 * unknown option. */
int vs_blk_spec_parse(const char *spec, struct vs_blk_spec *out);

struct vs_blk_backend {
    struct vs_blk_spec spec;
    int fd;                 /* -1: closed */
    bool writable;          /* fd is open for writing */
    bool block_device;
    dev_t dev;              /* the file opened first: reopening must find the same one */
    ino_t ino;
    uint64_t size;          /* bytes, fixed when first opened */
    bool is_nbd;            /* path is an NBD URI: the fields below, not fd */
    struct nbd_handle *nbd; /* NULL: not connected */
    struct vs_blk_nbd_caps nbd_caps;
    uint64_t nbd_reconnects;   /* lost connections made again */
};

/* Open spec->path: for writing when `writable` and the disk is not read-only, else
 * read-only (then checking that it could be written later). Measures its size; a file of
 * less than one sector is refused. An NBD export opened for reading (and not ro: a
 * destination) is only asked about in the NBD handshake, never connected to for commands:
 * that connection cannot write (blk_nbd.h). */
int vs_blk_backend_open(struct vs_blk_backend *b, const struct vs_blk_spec *spec, bool writable);
/* (Re)open for writing, or for reading when the disk is read-only (no-op when it is open
 * so already): after the commit, or when a VM handed over comes back. The file must be the
 * one first opened, with the same size. */
int vs_blk_backend_open_for_writing(struct vs_blk_backend *b);
void vs_blk_backend_close(struct vs_blk_backend *b);
/* Whether the disk is open (a file) or connected (an NBD export). */
bool vs_blk_backend_is_open(const struct vs_blk_backend *b);

/* Whole transfers at byte offset `off`: 0, or -errno (a read past the end of a file reads
 * zeros; the device never asks for one). The I/O vector is used up (changed).
 * NBD: a request whose connection is lost (the server restarted, the path failed) waits
 * while the backend connects again, every 50 ms to 1 s for up to spec.reconnect_s, and is
 * sent again whole on the new connection (reads, writes, flushes, trims and zeroes may be
 * repeated); it fails only when no connection could be made in that time. Only the
 * device's I/O thread calls these, so a reconnection never races another request. */
int vs_blk_backend_read(struct vs_blk_backend *b, struct iovec *iov, unsigned n, uint64_t off);
int vs_blk_backend_write(struct vs_blk_backend *b, struct iovec *iov, unsigned n, uint64_t off);
int vs_blk_backend_flush(struct vs_blk_backend *b);
/* Deallocate [off, off+len) if the file system can (a hint: 0 when it cannot). */
int vs_blk_backend_discard(struct vs_blk_backend *b, uint64_t off, uint64_t len);
/* Make [off, off+len) read as zeros: a hole when `unmap` and the file system can punch
 * one, else a zeroed range, else written zeros. */
int vs_blk_backend_write_zeroes(struct vs_blk_backend *b, uint64_t off, uint64_t len, bool unmap);

#endif
