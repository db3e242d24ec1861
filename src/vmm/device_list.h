/* A VM's devices beyond the machine's fixed set (virtio-rng, UART, ...): the NICs and disks
 * the operator asked for (`vmshift run --nic SPEC --disk SPEC`), in virtio-slot order.
 *
 * Each device is kept as its option string (SPEC, as given on the command line): the
 * device's own file parses it when the device is built. The list travels to the
 * destination in the VM_CONFIG record (docs/stream-format.md), so the destination builds
 * the same devices in the same slots; a destination can be given its own SPECs for its
 * host-local backends (TAP, file), and vs_device_list_for_destination() merges them. */
#ifndef VS_DEVICE_LIST_H
#define VS_DEVICE_LIST_H

#include <stddef.h>
#include <stdint.h>

struct vs_blob;

enum vs_device_kind { VS_DEVICE_NIC = 1, VS_DEVICE_DISK = 2 };

#define VS_DEVICE_KIND_MAX 2
#define VS_DEVICE_SPEC_MAX 256   /* bytes of one SPEC, NUL included */
#define VS_MAX_DEVICES 7         /* the pc machine's virtio slots after virtio-rng */

struct vs_device_spec {
    enum vs_device_kind kind;
    char spec[VS_DEVICE_SPEC_MAX];
};

struct vs_device_list {
    unsigned nr;
    struct vs_device_spec d[VS_MAX_DEVICES];
};

/* "nic", "disk" ("?" for anything else). */
const char *vs_device_kind_name(enum vs_device_kind kind);

/* Append a device. Refused with a message naming the option: an unknown kind, an empty or
 * too long SPEC, characters outside printable ASCII, or a full list. */
int vs_device_list_add(struct vs_device_list *l, enum vs_device_kind kind, const char *spec);

/* out = a's devices, then b's (-ENOSPC with a message if they are too many together). */
int vs_device_list_join(struct vs_device_list *out, const struct vs_device_list *a,
                        const struct vs_device_list *b);

/* How many devices of one kind the list holds. */
unsigned vs_device_list_count(const struct vs_device_list *l, enum vs_device_kind kind);

/* The VM_CONFIG payload: u32 count, u32 reserved (0), then per device u16 kind, u16 length
 * and `length` bytes of SPEC (no NUL). */
int vs_device_list_encode(const struct vs_device_list *l, struct vs_blob *out);
/* Parse a VM_CONFIG payload from a peer: every field checked (count, kinds, lengths,
 * characters, no trailing bytes); -EPROTO with a message on anything else. */
int vs_device_list_decode(const void *buf, size_t len, struct vs_device_list *out);

/* The devices a destination builds: the source's list, or, when the destination was given
 * its own (`local` non-empty), the local SPECs, which must name the same kinds in the same
 * order (-EPERM naming both lists otherwise). */
int vs_device_list_for_destination(const struct vs_device_list *source,
                                   const struct vs_device_list *local,
                                   struct vs_device_list *out);

#endif
