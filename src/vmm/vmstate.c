/* The device-state registry (vmstate.h; saved form in docs/device-state.md). */
#include "vmm/vmstate.h"
#include "common/blob.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define NAME_LEN 24

struct section_header {          /* 40 bytes, little-endian */
    char name[NAME_LEN];         /* NUL-padded */
    uint32_t instance;
    uint32_t version;
    uint32_t length;             /* bytes of the fields, without the padding */
    uint32_t reserved;           /* 0 */
};
_Static_assert(sizeof(struct section_header) == 40, "section header layout");

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Bytes of the fields a section of `version` holds. */
static size_t fields_len(const struct vs_vmstate *d, uint32_t version)
{
    size_t n = 0;
    for (unsigned i = 0; i < d->nr_fields; i++)
        if (d->fields[i].since <= version)
            n += d->fields[i].size;
    return n;
}

size_t vs_vmstate_section_size(const struct vs_vmstate *desc)
{
    return sizeof(struct section_header) + pad8(fields_len(desc, desc->version));
}

void vs_vmstate_init(struct vs_vmstate_registry *r)
{
    memset(r, 0, sizeof(*r));
}

static int check_desc(const struct vs_vmstate *d)
{
    if (!d->name || !d->name[0] || strlen(d->name) >= NAME_LEN)
        return vs_fail(EINVAL, "device state \"%s\": the name must be 1 to %d characters",
                       d->name ? d->name : "(null)", NAME_LEN - 1);
    if (d->min_version < 1 || d->min_version > d->version || !d->record)
        return vs_fail(EINVAL, "device state %s: versions %u to %u (need 1 <= min <= version) "
                       "or no record", d->name, d->min_version, d->version);
    for (unsigned i = 0; i < d->nr_fields; i++) {
        const struct vs_vmstate_field *f = &d->fields[i];
        if (f->since < 1 || f->since > d->version || f->size == 0)
            return vs_fail(EINVAL, "device state %s: field %s has version %u (the device "
                           "is at version %u) and size %u", d->name, f->name, f->since,
                           d->version, f->size);
    }
    return 0;
}

static int find(const struct vs_vmstate_registry *r, const char *name, uint32_t instance,
                bool *name_known)
{
    *name_known = false;
    for (unsigned i = 0; i < r->count; i++) {
        if (strcmp(r->e[i].desc->name, name) != 0)
            continue;
        *name_known = true;
        if (r->e[i].instance == instance)
            return (int)i;
    }
    return -1;
}

int vs_vmstate_register(struct vs_vmstate_registry *r, const struct vs_vmstate *desc,
                        uint32_t instance, void *opaque)
{
    int rc = check_desc(desc);
    if (rc)
        return rc;
    bool known;
    if (find(r, desc->name, instance, &known) >= 0)
        return vs_fail(EEXIST, "device state %s instance %u is registered twice", desc->name,
                       instance);
    if (r->count >= VS_VMSTATE_MAX)
        return vs_fail(ENOSPC, "device state %s instance %u: the registry holds at most %d "
                       "instances", desc->name, instance, VS_VMSTATE_MAX);
    r->e[r->count++] = (struct vs_vmstate_entry){ .desc = desc, .instance = instance,
                                                  .opaque = opaque };
    return 0;
}

static int save_one(const struct vs_vmstate_entry *e, struct vs_blob *out)
{
    const struct vs_vmstate *d = e->desc;
    if (d->pre_save) {
        int rc = d->pre_save(e->opaque);
        if (rc)
            return vs_fail_context(rc, "saving device %s instance %u", d->name, e->instance);
    }
    size_t len = fields_len(d, d->version);
    struct section_header h = { .instance = e->instance, .version = d->version,
                                .length = (uint32_t)len };
    memcpy(h.name, d->name, strlen(d->name));
    int rc = vs_blob_reserve(out, sizeof(h) + pad8(len));
    if (rc)
        return rc;
    vs_blob_append(out, &h, sizeof(h));
    const uint8_t *rec = d->record(e->opaque);
    for (unsigned i = 0; i < d->nr_fields; i++)
        vs_blob_append(out, rec + d->fields[i].offset, d->fields[i].size);
    return vs_blob_append(out, NULL, pad8(len) - len);
}

int vs_vmstate_save_all(struct vs_vmstate_registry *r, struct vs_blob *out)
{
    size_t start = out->len;
    for (unsigned i = 0; i < r->count; i++) {
        int rc = save_one(&r->e[i], out);
        if (rc) {
            out->len = start;   /* never half a machine */
            return rc;
        }
    }
    return 0;
}

static int bad(size_t off, const struct section_header *h, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(size_t off, const struct section_header *h, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return vs_fail(EINVAL, "device state: section at offset %zu (device \"%.*s\" instance %u "
                   "version %u): %s; the stream is corrupt or from an incompatible vmshift",
                   off, NAME_LEN, h->name, h->instance, h->version, why);
}

/* The name field: NUL-terminated inside its 24 bytes, zeros after the NUL. */
static bool name_well_formed(const struct section_header *h)
{
    const char *nul = memchr(h->name, 0, sizeof(h->name));
    if (!nul || nul == h->name)
        return false;
    for (const char *p = nul; p < h->name + sizeof(h->name); p++)
        if (*p)
            return false;
    return true;
}

/* Check one section at off; on success *entry is its registry index and *next the offset
 * after it. */
static int check_section(const struct vs_vmstate_registry *r, const uint8_t *blob, size_t len,
                         size_t off, const bool *seen, int *entry, size_t *next)
{
    struct section_header h;
    memset(&h, 0, sizeof(h));
    size_t left = len - off;
    memcpy(&h, blob + off, left < sizeof(h) ? left : sizeof(h));
    if (left < sizeof(h))
        return bad(off, &h, "truncated in its header (%zu of %zu bytes)", left, sizeof(h));
    memcpy(&h, blob + off, sizeof(h));
    if (!name_well_formed(&h))
        return bad(off, &h, "the name is not a NUL-padded string");
    bool known;
    int i = find(r, h.name, h.instance, &known);
    if (i < 0)
        return bad(off, &h, known ? "this machine has no such instance of the device"
                                  : "this machine has no such device");
    const struct vs_vmstate *d = r->e[i].desc;
    if (h.version < d->min_version || h.version > d->version)
        return bad(off, &h, "this build loads versions %u to %u", d->min_version, d->version);
    size_t want = fields_len(d, h.version);
    if (h.length != want || h.reserved)
        return bad(off, &h, "length %u (expected %zu), reserved 0x%x", h.length, want,
                   h.reserved);
    if (pad8(want) > left - sizeof(h))
        return bad(off, &h, "truncated: %zu bytes of fields, %zu left", pad8(want),
                   left - sizeof(h));
    const uint8_t *pad = blob + off + sizeof(h) + want;
    for (size_t k = 0; k < pad8(want) - want; k++)
        if (pad[k])
            return bad(off, &h, "non-zero padding");
    if (seen[i])
        return bad(off, &h, "appears a second time");
    *entry = i;
    *next = off + sizeof(h) + pad8(want);
    return 0;
}

int vs_vmstate_validate(const struct vs_vmstate_registry *r, const uint8_t *blob, size_t len)
{
    bool seen[VS_VMSTATE_MAX] = { false };
    size_t off = 0;
    while (off < len) {
        int i;
        int rc = check_section(r, blob, len, off, seen, &i, &off);
        if (rc)
            return rc;
        seen[i] = true;
    }
    for (unsigned i = 0; i < r->count; i++)
        if (!seen[i])
            return vs_fail(EINVAL, "device state: device %s instance %u (version %u) is "
                           "missing; the source's machine differs from this one or the stream "
                           "is incomplete", r->e[i].desc->name, r->e[i].instance,
                           r->e[i].desc->version);
    return 0;
}

static int load_one(const struct vs_vmstate_entry *e, const uint8_t *fields, uint32_t version)
{
    const struct vs_vmstate *d = e->desc;
    uint8_t *rec = d->record(e->opaque);
    for (unsigned i = 0; i < d->nr_fields; i++) {
        if (d->fields[i].since > version)
            continue;   /* newer than the section: keeps the device's value */
        memcpy(rec + d->fields[i].offset, fields, d->fields[i].size);
        fields += d->fields[i].size;
    }
    if (!d->post_load)
        return 0;
    int rc = d->post_load(e->opaque, version);
    return rc ? vs_fail_context(rc, "loading device %s instance %u version %u", d->name,
                                e->instance, version)
              : 0;
}

int vs_vmstate_load_all(struct vs_vmstate_registry *r, const uint8_t *blob, size_t len)
{
    int rc = vs_vmstate_validate(r, blob, len);
    bool seen[VS_VMSTATE_MAX] = { false };
    for (size_t off = 0; !rc && off < len;) {
        struct section_header h;
        memcpy(&h, blob + off, sizeof(h));
        int i;
        size_t next;
        check_section(r, blob, len, off, seen, &i, &next);   /* passed above */
        seen[i] = true;
        rc = load_one(&r->e[i], blob + off + sizeof(h), h.version);
        off = next;
    }
    return rc;
}

int vs_vmstate_append_section(struct vs_blob *out, const char *name, uint32_t instance,
                              uint32_t version, const void *fields, size_t len)
{
    if (strlen(name) >= NAME_LEN || len > UINT32_MAX)
        return vs_fail(EINVAL, "device state %s: name or %zu bytes too long", name, len);
    struct section_header h = { .instance = instance, .version = version,
                                .length = (uint32_t)len };
    memcpy(h.name, name, strlen(name));
    int rc = vs_blob_reserve(out, sizeof(h) + pad8(len));
    if (rc)
        return rc;
    vs_blob_append(out, &h, sizeof(h));
    vs_blob_append(out, fields, len);
    return vs_blob_append(out, NULL, pad8(len) - len);
}
