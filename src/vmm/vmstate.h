/* The device-state model: every device (and every piece of machine state: irqchip, PIT,
 * KVM clock) describes its migratable state once, in its own file, as a vs_vmstate: a
 * name, a version, and a list of fields (byte ranges of a state record the device keeps),
 * each with the version that introduced it, as QEMU's VMState does. The migration engine
 * saves and loads every registered instance through one registry and knows no device.
 *
 * A device keeps its migratable state in a record (a plain struct of fixed-size members);
 * `pre_save` fills that record from the live device (the VM is paused), `post_load`
 * applies a loaded record to the live device (and to KVM). Fields are copied to and from
 * the record verbatim, little-endian as in memory.
 *
 * Saved form (docs/device-state.md): a sequence of sections, in registration order,
 *   char name[24] (NUL-padded); u32 instance; u32 version; u32 length; u32 reserved;
 *   the fields present in `version`, in declaration order; zero padding to 8 bytes.
 * Loading checks every section before applying any: an unknown name or instance, a
 * version outside [min_version, version], a wrong length, a duplicate, or a registered
 * instance the blob lacks is refused, with a message naming device, instance and version.
 * Fields newer than a section's version keep the values `init` (or the device) gave them.
 * Sections are applied in the blob's order, which is registration order: a device that
 * needs another restored first registers after it. */
#ifndef VS_VMSTATE_H
#define VS_VMSTATE_H

#include <stddef.h>
#include <stdint.h>

struct vs_vmstate_field {
    const char *name;
    uint32_t offset;          /* in the device's state record */
    uint32_t size;            /* bytes */
    uint32_t since;           /* the version that added it (1 for the first) */
};

#define VS_VMSTATE_FIELD(record_type, member, since_version)                       \
    { #member, (uint32_t)offsetof(record_type, member),                             \
      (uint32_t)sizeof(((record_type *)0)->member), (since_version) }

struct vs_vmstate {
    const char *name;                 /* at most 23 characters */
    uint32_t version;                 /* what this build writes */
    uint32_t min_version;             /* the oldest it loads */
    const struct vs_vmstate_field *fields;
    unsigned nr_fields;
    /* Where the record is, given the registered opaque pointer. */
    void *(*record)(void *opaque);
    /* Fill the record from the live device (may be NULL). */
    int (*pre_save)(void *opaque);
    /* Apply the just-loaded record of `version` (may be NULL). */
    int (*post_load)(void *opaque, uint32_t version);
};

#define VS_VMSTATE_MAX 64

struct vs_vmstate_entry {
    const struct vs_vmstate *desc;
    uint32_t instance;
    void *opaque;
};

struct vs_vmstate_registry {
    struct vs_vmstate_entry e[VS_VMSTATE_MAX];
    unsigned count;
};

struct vs_blob;   /* common/blob.h: a growable byte buffer */

void vs_vmstate_init(struct vs_vmstate_registry *r);
/* Register one instance. Refused: a duplicate (name, instance), a full registry, or a
 * description that is inconsistent (fields outside the record's version range). */
int vs_vmstate_register(struct vs_vmstate_registry *r, const struct vs_vmstate *desc,
                        uint32_t instance, void *opaque);
/* Append every registered instance's section to out. */
int vs_vmstate_save_all(struct vs_vmstate_registry *r, struct vs_blob *out);
/* Check the whole blob first (see above), then load and apply each section in order. */
int vs_vmstate_load_all(struct vs_vmstate_registry *r, const uint8_t *blob, size_t len);
/* The checks of vs_vmstate_load_all() alone (fuzzing, tests). */
int vs_vmstate_validate(const struct vs_vmstate_registry *r, const uint8_t *blob, size_t len);
/* Append one section whose fields are already laid out (`len` bytes): converting state
 * saved in another form (a 2.0-2.2 source's machine blob). */
int vs_vmstate_append_section(struct vs_blob *out, const char *name, uint32_t instance,
                              uint32_t version, const void *fields, size_t len);
/* Bytes of one instance's section in this build's version (the report's state sizes). */
size_t vs_vmstate_section_size(const struct vs_vmstate *desc);

#endif
