#include "vmm/device_list.h"
#include "common/blob.h"
#include "common/error.h"
#include "wire/format.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

_Static_assert(VS_WIRE_MAX_VM_CONFIG ==
               8 + VS_MAX_DEVICES * (4 + VS_DEVICE_SPEC_MAX - 1), "VM_CONFIG bound");

struct wire_device {   /* one entry of the VM_CONFIG payload, before its SPEC bytes */
    uint16_t kind;
    uint16_t length;
};

struct wire_list {     /* the VM_CONFIG payload's header */
    uint32_t count;
    uint32_t reserved;
};

const char *vs_device_kind_name(enum vs_device_kind kind)
{
    switch (kind) {
    case VS_DEVICE_NIC: return "nic";
    case VS_DEVICE_DISK: return "disk";
    }
    return "?";
}

static int check_spec(const char *spec, size_t len, const char *what)
{
    if (len == 0)
        return vs_fail(EINVAL, "%s: the device description is empty", what);
    if (len >= VS_DEVICE_SPEC_MAX)
        return vs_fail(EINVAL, "%s: the device description is %zu bytes, more than %d",
                       what, len, VS_DEVICE_SPEC_MAX - 1);
    for (size_t i = 0; i < len; i++)
        if (spec[i] < 0x20 || spec[i] > 0x7e)
            return vs_fail(EINVAL, "%s: byte %zu of the device description (0x%02x) is not "
                           "printable ASCII", what, i, (unsigned char)spec[i]);
    return 0;
}

int vs_device_list_add(struct vs_device_list *l, enum vs_device_kind kind, const char *spec)
{
    if (kind < 1 || kind > VS_DEVICE_KIND_MAX)
        return vs_fail(EINVAL, "device kind %d is unknown (nic or disk)", (int)kind);
    char what[32];
    snprintf(what, sizeof(what), "--%s", vs_device_kind_name(kind));
    int rc = check_spec(spec, strlen(spec), what);
    if (rc)
        return rc;
    if (l->nr == VS_MAX_DEVICES)
        return vs_fail(ENOSPC, "%s %s: a VM takes at most %d NICs and disks together",
                       what, spec, VS_MAX_DEVICES);
    l->d[l->nr].kind = kind;
    snprintf(l->d[l->nr].spec, sizeof(l->d[l->nr].spec), "%s", spec);
    l->nr++;
    return 0;
}

int vs_device_list_join(struct vs_device_list *out, const struct vs_device_list *a,
                        const struct vs_device_list *b)
{
    struct vs_device_list l = { 0 };
    for (unsigned i = 0; i < a->nr; i++)
        l.d[l.nr++] = a->d[i];
    for (unsigned i = 0; i < b->nr; i++) {
        if (l.nr == VS_MAX_DEVICES)
            return vs_fail(ENOSPC, "%u NICs and %u disks: a VM takes at most %d together",
                           a->nr, b->nr, VS_MAX_DEVICES);
        l.d[l.nr++] = b->d[i];
    }
    *out = l;
    return 0;
}

unsigned vs_device_list_count(const struct vs_device_list *l, enum vs_device_kind kind)
{
    unsigned n = 0;
    for (unsigned i = 0; l && i < l->nr; i++)
        n += l->d[i].kind == kind;
    return n;
}

int vs_device_list_encode(const struct vs_device_list *l, struct vs_blob *out)
{
    struct wire_list head = { .count = l->nr };
    int rc = vs_blob_append(out, &head, sizeof(head));
    for (unsigned i = 0; !rc && i < l->nr; i++) {
        struct wire_device d = { .kind = (uint16_t)l->d[i].kind,
                                 .length = (uint16_t)strlen(l->d[i].spec) };
        rc = vs_blob_append(out, &d, sizeof(d));
        if (!rc)
            rc = vs_blob_append(out, l->d[i].spec, d.length);
    }
    return rc;
}

static int bad(const char *fmt, unsigned a, unsigned b)
{
    char msg[160];
    snprintf(msg, sizeof(msg), fmt, a, b);
    return vs_fail(EPROTO, "migration stream: VM_CONFIG: %s", msg);
}

int vs_device_list_decode(const void *buf, size_t len, struct vs_device_list *out)
{
    const uint8_t *p = buf, *end = p + len;
    struct wire_list head;
    memset(out, 0, sizeof(*out));
    if (len < sizeof(head))
        return bad("%u bytes is too short for its header (%u)", (unsigned)len, sizeof(head));
    memcpy(&head, p, sizeof(head));
    p += sizeof(head);
    if (head.count > VS_MAX_DEVICES || head.reserved)
        return bad("%u devices (at most %u) or a reserved field set", head.count,
                   VS_MAX_DEVICES);
    for (unsigned i = 0; i < head.count; i++) {
        struct wire_device d;
        if ((size_t)(end - p) < sizeof(d))
            return bad("device %u of %u is cut short", i, head.count);
        memcpy(&d, p, sizeof(d));
        p += sizeof(d);
        if (d.kind < 1 || d.kind > VS_DEVICE_KIND_MAX)
            return bad("device %u has unknown kind %u: upgrade the destination", i, d.kind);
        if (d.length > (size_t)(end - p))
            return bad("device %u's description (%u bytes) runs past the record", i, d.length);
        char what[48];
        snprintf(what, sizeof(what), "migration stream: VM_CONFIG device %u", i);
        if (check_spec((const char *)p, d.length, what))
            return vs_fail(EPROTO, "%s", vs_last_error());
        out->d[i].kind = d.kind;
        memcpy(out->d[i].spec, p, d.length);
        out->d[i].spec[d.length] = '\0';
        p += d.length;
    }
    if (p != end)
        return bad("%u bytes follow the last of %u devices", (unsigned)(end - p), head.count);
    out->nr = head.count;
    return 0;
}

static void describe(const struct vs_device_list *l, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < l->nr && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "",
                              vs_device_kind_name(l->d[i].kind));
    if (l->nr == 0)
        snprintf(buf, size, "none");
}

int vs_device_list_for_destination(const struct vs_device_list *source,
                                   const struct vs_device_list *local,
                                   struct vs_device_list *out)
{
    if (!local || local->nr == 0) {
        *out = *source;
        return 0;
    }
    bool same = local->nr == source->nr;
    for (unsigned i = 0; same && i < local->nr; i++)
        same = local->d[i].kind == source->d[i].kind;
    if (!same) {
        char a[96], b[96];
        describe(source, a, sizeof(a));
        describe(local, b, sizeof(b));
        return vs_fail(EPERM, "the incoming VM has devices (%s) but this destination was given "
                       "(%s): give `vmshift receive` the same --nic/--disk options in the same "
                       "order, or none to take the source's", a, b);
    }
    *out = *local;
    return 0;
}
