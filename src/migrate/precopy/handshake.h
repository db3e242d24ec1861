/* What each side checks in the handshake before anything is built: the destination's
 * reading and admission of HELLO, the source's reading of the answer. No VM, no KVM:
 * dest.c and source.c call these, and so does the fuzz harness. */
#ifndef VS_HANDSHAKE_H
#define VS_HANDSHAKE_H

#include <stdbool.h>
#include <stdint.h>
#include "wire/format.h"
#include "wire/reader.h"

/* Read the first record of stream 0: it must be HELLO. *hello is zeroed first (a 2.0
 * HELLO has no resolve_port). Errors here are not answered: the peer is not a source. */
int vs_handshake_read_hello(struct vs_wire_reader *r, struct vs_wire_hello *hello);

/* Whether this destination takes the VM HELLO describes: versions and fields, the length
 * that goes with the version, RAM within max_mem and vCPUs within max_vcpus (0: no
 * limit), codecs this build can decompress. On refusal returns -EPERM and
 * vs_last_error() is the reason for the source. */
int vs_handshake_admit(const struct vs_wire_hello *hello, uint32_t length, uint64_t max_mem,
                       unsigned max_vcpus);

/* Whether the CPU features the guest was given (HELLO 2.4 cpu_features) are all among
 * what this host offers (`host`, vs_cpu_host_features): -EPERM naming the missing ones
 * otherwise. Sources older than 2.4 send none: always 0. */
struct vs_cpu_features;
int vs_handshake_check_cpu(const struct vs_wire_hello *hello,
                           const struct vs_cpu_features *host);

/* After a HELLO with VS_FEATURE_DEVICES: read the VM_CONFIG record that must follow it
 * and decode the VM's device list into *out (device_list.h). */
struct vs_device_list;
int vs_handshake_read_vm_config(struct vs_wire_reader *r, struct vs_device_list *out);

/* The source's side: read the destination's answer to `sent` (HELLO_REPLY, or an ABORT)
 * on stream 0 and check it. to and compress are for messages. *same_boot says whether
 * both ends share a kernel boot (exact downtime); *features the features both offered
 * (VS_FEATURE_*). */
int vs_handshake_read_reply(struct vs_wire_reader *r, const struct vs_wire_hello *sent,
                            const char *to, const char *compress, bool *same_boot,
                            uint32_t *features);

#endif
