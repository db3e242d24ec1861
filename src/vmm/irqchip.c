/* The in-kernel irqchip and PIT (irqchip.h). */
#include "vmm/irqchip.h"
#include "vmm/gsi_routing.h"
#include "vmm/kvm.h"
#include "vmm/vmstate.h"
#include "common/error.h"
#include "common/log.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int vm_ioctl(int fd, unsigned long req, const char *name, const char *what, void *arg)
{
    if (ioctl(fd, req, arg) == 0)
        return 0;
    int err = errno;
    return vs_fail(err, "%s (%s): %s%s", name, what, strerror(err),
                   strncmp(name, "KVM_SET", 7) == 0
                       ? "; the destination KVM refused the source's state" : "");
}

/* ---- the PICs: one section per chip ---- */

static void *pic_record(void *opaque)
{
    return &((struct vs_pic_unit *)opaque)->rec;
}

static int pic_pre_save(void *opaque)
{
    struct vs_pic_unit *u = opaque;
    struct kvm_irqchip chip;
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = u->chip_id;
    int rc = vm_ioctl(u->vm_fd, KVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", "PIC", &chip);
    if (!rc)
        u->rec = chip.chip.pic;
    return rc;
}

static int pic_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_pic_unit *u = opaque;
    struct kvm_irqchip chip;
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = u->chip_id;
    chip.chip.pic = u->rec;
    return vm_ioctl(u->vm_fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", "PIC", &chip);
}

static const struct vs_vmstate_field pic_fields[] = {
    { "state", 0, sizeof(struct kvm_pic_state), 1 },
};

const struct vs_vmstate vs_pic_vmstate = {
    .name = "pic", .version = 1, .min_version = 1, .fields = pic_fields, .nr_fields = 1,
    .record = pic_record, .pre_save = pic_pre_save, .post_load = pic_post_load,
};

/* ---- the IOAPIC ---- */

static void *ioapic_record(void *opaque)
{
    return &((struct vs_irqchip *)opaque)->ioapic;
}

static int ioapic_pre_save(void *opaque)
{
    struct vs_irqchip *c = opaque;
    struct kvm_irqchip chip;
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = KVM_IRQCHIP_IOAPIC;
    int rc = vm_ioctl(c->vm_fd, KVM_GET_IRQCHIP, "KVM_GET_IRQCHIP", "IOAPIC", &chip);
    if (!rc)
        c->ioapic = chip.chip.ioapic;
    return rc;
}

static int ioapic_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_irqchip *c = opaque;
    struct kvm_irqchip chip;
    memset(&chip, 0, sizeof(chip));
    chip.chip_id = KVM_IRQCHIP_IOAPIC;
    chip.chip.ioapic = c->ioapic;
    return vm_ioctl(c->vm_fd, KVM_SET_IRQCHIP, "KVM_SET_IRQCHIP", "IOAPIC", &chip);
}

static const struct vs_vmstate_field ioapic_fields[] = {
    { "state", 0, sizeof(struct kvm_ioapic_state), 1 },
};

const struct vs_vmstate vs_ioapic_vmstate = {
    .name = "ioapic", .version = 1, .min_version = 1, .fields = ioapic_fields, .nr_fields = 1,
    .record = ioapic_record, .pre_save = ioapic_pre_save, .post_load = ioapic_post_load,
};

/* ---- the PIT ---- */

static void *pit_record(void *opaque)
{
    return &((struct vs_irqchip *)opaque)->pit;
}

static int pit_pre_save(void *opaque)
{
    struct vs_irqchip *c = opaque;
    memset(&c->pit, 0, sizeof(c->pit));
    return vm_ioctl(c->vm_fd, KVM_GET_PIT2, "KVM_GET_PIT2", "PIT", &c->pit);
}

static int pit_post_load(void *opaque, uint32_t version)
{
    (void)version;
    struct vs_irqchip *c = opaque;
    return vm_ioctl(c->vm_fd, KVM_SET_PIT2, "KVM_SET_PIT2", "PIT", &c->pit);
}

static const struct vs_vmstate_field pit_fields[] = {
    { "state", 0, sizeof(struct kvm_pit_state2), 1 },
};

const struct vs_vmstate vs_pit_vmstate = {
    .name = "pit", .version = 1, .min_version = 1, .fields = pit_fields, .nr_fields = 1,
    .record = pit_record, .pre_save = pit_pre_save, .post_load = pit_post_load,
};

/* ---- creation ---- */

int vs_irqchip_create(struct vs_irqchip *c, const struct vs_kvm *kvm,
                      struct vs_vmstate_registry *r)
{
    memset(c, 0, sizeof(*c));
    c->vm_fd = -1;
    if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
        return vs_fail(errno, "KVM_CREATE_IRQCHIP: %s; this host's KVM cannot give the pc "
                       "machine its interrupt controllers (use --machine flat)",
                       strerror(errno));
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
        return vs_fail(errno, "KVM_CREATE_PIT2: %s; this host's KVM cannot give the pc "
                       "machine its timer (use --machine flat)", strerror(errno));
    int rc = vs_pc_gsi_routing_set(kvm->vm_fd);
    if (rc)
        return rc;
    c->vm_fd = kvm->vm_fd;
    for (unsigned i = 0; i < 2; i++)
        c->pic[i] = (struct vs_pic_unit){
            .vm_fd = kvm->vm_fd,
            .chip_id = i == 0 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
        };
    rc = vs_vmstate_register(r, &vs_pic_vmstate, 0, &c->pic[0]);
    if (!rc)
        rc = vs_vmstate_register(r, &vs_pic_vmstate, 1, &c->pic[1]);
    if (!rc)
        rc = vs_vmstate_register(r, &vs_ioapic_vmstate, 0, c);
    if (!rc)
        rc = vs_vmstate_register(r, &vs_pit_vmstate, 0, c);
    return rc;
}

/* ---- lines and irqfds ---- */

static void set_line(void *ctx, uint32_t gsi, bool level)
{
    static atomic_bool warned;
    struct vs_irqchip *c = ctx;
    struct kvm_irq_level l = { .irq = gsi, .level = level ? 1 : 0 };
    if (ioctl(c->vm_fd, KVM_IRQ_LINE, &l) < 0 && !atomic_exchange(&warned, true))
        vs_warn("KVM_IRQ_LINE gsi %u level %d: %s (further failures are not logged)", gsi,
                (int)level, strerror(errno));
}

static int check_gsi(const struct vs_irqchip *c, uint32_t gsi, const char *what)
{
    if (c->vm_fd < 0)
        return vs_fail(ENODEV, "%s for GSI %u: this machine has no interrupt controller "
                       "(flat machine); use --machine pc", what, gsi);
    if (gsi > VS_IRQCHIP_MAX_GSI)
        return vs_fail(EINVAL, "%s: GSI %u is beyond the IOAPIC's pins 0-%u", what, gsi,
                       VS_IRQCHIP_MAX_GSI);
    return 0;
}

int vs_irqchip_line(struct vs_irqchip *c, uint32_t gsi, struct vs_irq_line *out)
{
    int rc = check_gsi(c, gsi, "an interrupt line");
    if (rc)
        return rc;
    *out = (struct vs_irq_line){ .set = set_line, .ctx = c, .gsi = gsi };
    return 0;
}

int vs_irqchip_irqfd(struct vs_irqchip *c, uint32_t gsi, int *fd)
{
    int rc = check_gsi(c, gsi, "an irqfd");
    if (rc)
        return rc;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return vs_fail(errno, "eventfd for the irqfd of GSI %u: %s", gsi, strerror(errno));
    struct kvm_irqfd irqfd = { .fd = (uint32_t)efd, .gsi = gsi };
    if (ioctl(c->vm_fd, KVM_IRQFD, &irqfd) < 0) {
        int err = errno;
        close(efd);
        return vs_fail(err, "KVM_IRQFD for GSI %u: %s", gsi, strerror(err));
    }
    *fd = efd;
    return 0;
}

int vs_irqchip_irqfd_release(struct vs_irqchip *c, uint32_t gsi, int fd)
{
    struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi, .flags = KVM_IRQFD_FLAG_DEASSIGN };
    int rc = 0;
    if (ioctl(c->vm_fd, KVM_IRQFD, &irqfd) < 0)
        rc = vs_fail(errno, "KVM_IRQFD deassign of GSI %u: %s", gsi, strerror(errno));
    close(fd);
    return rc;
}
