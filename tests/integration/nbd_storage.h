/* The storage host of the NBD integration tests (test_virtio_blk_nbd.c,
 * test_migrate_disks_nbd.c): three network namespaces, the storage host, where Debian's
 * qemu-nbd serves a raw file, and hosts A and B (test_hosts: 198.18.0.1 and .2), each with
 * its own link to the storage host (198.18.10.0/24 and 198.18.11.0/24), so each reaches
 * the export by its own URI, as hosts that mount one SAN differently. */
#ifndef VS_TEST_NBD_STORAGE_H
#define VS_TEST_NBD_STORAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"

#define NBD_DISK_BYTES (64u << 20)
#define NBD_BLOCKS 32             /* the guest's disk workload range: 128 KiB */
#define NBD_PORT "10809"
#define NBD_PEER_A "198.18.10.2"  /* host A's address on its link to the storage host */
#define NBD_PEER_B "198.18.11.2"
#define NBD_URI_A "nbd://198.18.10.1:" NBD_PORT "/vm"   /* export "vm" as A reaches it */
#define NBD_URI_B "nbd://198.18.11.1:" NBD_PORT "/vm"

struct nbd_storage {
    struct test_hosts hosts;
    char ns[32];       /* the storage host's namespace */
    char dir[64];      /* the test's files */
    char disk[96];     /* the file export "vm" serves */
    pid_t server;      /* its qemu-nbd */
};
extern struct nbd_storage nbd;

/* cmocka group setup/teardown: the namespaces, links, a sparse NBD_DISK_BYTES disk file and
 * its server; all removed at the end. */
int nbd_group_setup(void **state);
int nbd_group_teardown(void **state);
/* Start qemu-nbd on nbd.disk (export "vm", NBD_PORT) in the storage host; returns once it
 * listens. */
void nbd_server_start(void);
/* Whether something listens on TCP `port` in the storage host. */
bool nbd_port_listening(const char *port);
/* The first NBD_DISK_BYTES of a file. */
uint8_t *nbd_read_image(const char *path);
/* The guest's kernel parameter that sets the disk workload's range (NBD_BLOCKS). */
const char *nbd_append_blocks(void);

#endif
