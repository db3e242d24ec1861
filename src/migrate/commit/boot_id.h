/* The running kernel's boot id: two processes with the same id share CLOCK_MONOTONIC, so
 * their timestamps can be subtracted (exact downtime on one host or across namespaces). */
#ifndef VS_BOOT_ID_H
#define VS_BOOT_ID_H

#include <stdint.h>

/* TEST HOOK: the environment variable VMSHIFT_TEST_BOOT_ID (32 hex digits) replaces the
 * boot id, so that a test can play a peer on another host, whose clock is not ours. Never
 * set it in production. */
#define VS_BOOT_ID_TEST_ENV "VMSHIFT_TEST_BOOT_ID"

/* Fills id with the 16 bytes of /proc/sys/kernel/random/boot_id, or zeros if unknown. */
void vs_boot_id(uint8_t id[16]);

#endif
