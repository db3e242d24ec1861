#include "virtio_net.h"
#include "fmt.h"
#include "io.h"
#include "irq.h"
#include "net_proto.h"
#include "platform.h"
#include "serial.h"
#include "virtio_mmio.h"
#include "virtq.h"

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#define VIRTIO_ID_NET       1
#define F_VERSION_1_HIGH    1u      /* VIRTIO_F_VERSION_1 is bit 32: bit 0 of word 1 */
#define F_MAC               (1u << 5)
#define F_STATUS            (1u << 16)
#define F_CTRL_VQ           (1u << 17)
#define F_GUEST_ANNOUNCE    (1u << 21)
#define S_ANNOUNCE          2u
#define CFG_MAC             0x100
#define CFG_STATUS          0x106
#define RXQ                 0
#define TXQ                 1
#define CTRLQ               2
#define NET_HDR             12      /* struct virtio_net_hdr_v1 */
#define BUF_BYTES           2048    /* a header and the largest frame */
#define CTRL_ANNOUNCE       3
#define CTRL_ANNOUNCE_ACK   0
#define CTRL_WAIT           100000  /* polls of the control queue's used index */
#define MAX_ERROR_REPORTS   4
#define MAX_ACK_ROUNDS      16      /* InterruptStatus reads per interrupt, at most */

struct net {
    uint64_t base;                  /* 0: no device running */
    struct vs_vq rx, tx, ctrl;
    uint32_t features;              /* word 0 of what was taken */
    uint8_t vector;
    struct vs_net_addr me;
    uint32_t isr;                   /* InterruptStatus bits seen by the handler */
    int broken;
    struct vs_net_counts n;
    struct vs_vq_rings rx_rings, tx_rings, ctrl_rings;
    uint8_t rx_bufs[VS_VQ_MAX][BUF_BYTES] __attribute__((aligned(64)));
    uint8_t tx_bufs[VS_VQ_MAX][BUF_BYTES] __attribute__((aligned(64)));
    uint8_t ctrl_buf[32] __attribute__((aligned(16)));
};

static struct net nets[VS_NET_MAX_NICS];
static unsigned nr_nets;
static uint8_t reply[VS_NET_MAX_FRAME];

static uint32_t reg_read(const struct net *net, uint32_t off)
{
    return mmio_read32(net->base + off);
}

static void reg_write(const struct net *net, uint32_t off, uint32_t v)
{
    mmio_write32(net->base + off, v);
}

static uint8_t cfg_read8(const struct net *net, uint32_t off)
{
    return *(const volatile uint8_t *)(uintptr_t)(net->base + off);
}

static uint64_t addr_of(const void *p) { return (uint64_t)(uintptr_t)p; }

static void report_error(struct net *net, const char *why)
{
    struct vs_line l;

    if (net->n.errors++ >= MAX_ERROR_REPORTS)
        return;
    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: virtio-net: error: ");
    vs_line_str(&l, why);
    vs_line_end(&l);
}

/* The line is routed edge-triggered and is high while InterruptStatus is not 0: acknowledge
 * until it reads 0, so the line goes low and the device's next event is a new edge. (A bit
 * the device sets between our read and our acknowledgement would otherwise keep the line
 * high with no edge to come: two bits, used buffers and configuration, make that likely.) */
static void on_interrupt(const struct vs_irq_frame *f)
{
    for (unsigned k = 0; k < nr_nets; k++) {
        struct net *net = &nets[k];
        uint32_t isr;

        if (net->vector != f->vector)
            continue;
        net->n.interrupts++;
        if (!net->base)
            continue;
        for (int i = 0; i < MAX_ACK_ROUNDS && (isr = reg_read(net, VS_VMMIO_INTERRUPT_STATUS));
             i++) {
            reg_write(net, VS_VMMIO_INTERRUPT_ACK, isr);
            net->isr |= isr;
        }
    }
}

static int fail(struct net *net, char *err, unsigned errlen, const char *what)
{
    struct vs_buf e;

    if (net->base)
        reg_write(net, VS_VMMIO_STATUS, reg_read(net, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FAILED);
    net->base = 0;
    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, "virtio-net: ");
    vs_buf_puts(&e, what);
    return -1;
}

/* Reset, acknowledge, and take VERSION_1 and what of MAC, STATUS, CTRL_VQ and
 * GUEST_ANNOUNCE the device offers (virtio 1.2, 3.1.1). */
static int negotiate(struct net *net, char *err, unsigned errlen)
{
    uint32_t offered;

    reg_write(net, VS_VMMIO_STATUS, 0);
    if (reg_read(net, VS_VMMIO_STATUS) != 0)
        return fail(net, err, errlen, "the device does not reset (status stays non-zero)");
    reg_write(net, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(net, VS_VMMIO_STATUS, VS_VIRTIO_STATUS_ACKNOWLEDGE | VS_VIRTIO_STATUS_DRIVER);
    reg_write(net, VS_VMMIO_DEVICE_FEATURES_SEL, 1);
    if (!(reg_read(net, VS_VMMIO_DEVICE_FEATURES) & F_VERSION_1_HIGH))
        return fail(net, err, errlen, "the device does not offer VIRTIO_F_VERSION_1");
    reg_write(net, VS_VMMIO_DEVICE_FEATURES_SEL, 0);
    offered = reg_read(net, VS_VMMIO_DEVICE_FEATURES);
    if (!(offered & F_MAC))
        return fail(net, err, errlen, "the device has no MAC address (VIRTIO_NET_F_MAC)");
    net->features = offered & (F_MAC | F_STATUS | F_CTRL_VQ | F_GUEST_ANNOUNCE);
    if (!(net->features & F_CTRL_VQ) || !(net->features & F_STATUS))
        net->features &= ~F_GUEST_ANNOUNCE;
    reg_write(net, VS_VMMIO_DRIVER_FEATURES_SEL, 0);
    reg_write(net, VS_VMMIO_DRIVER_FEATURES, net->features);
    reg_write(net, VS_VMMIO_DRIVER_FEATURES_SEL, 1);
    reg_write(net, VS_VMMIO_DRIVER_FEATURES, F_VERSION_1_HIGH);
    reg_write(net, VS_VMMIO_STATUS, reg_read(net, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_FEATURES_OK);
    if (!(reg_read(net, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_FEATURES_OK))
        return fail(net, err, errlen, "the device refused FEATURES_OK");
    return 0;
}

static void write_addr(struct net *net, uint32_t low, uint32_t high, uint64_t addr)
{
    reg_write(net, low, (uint32_t)addr);
    reg_write(net, high, (uint32_t)(addr >> 32));
}

static int setup_queue(struct net *net, uint32_t index, struct vs_vq *q,
                       struct vs_vq_rings *r, char *err, unsigned errlen)
{
    uint32_t max;
    uint16_t size = VS_VQ_MAX;

    reg_write(net, VS_VMMIO_QUEUE_SEL, index);
    if (reg_read(net, VS_VMMIO_QUEUE_READY))
        return fail(net, err, errlen, "a queue is ready before the driver set it up");
    max = reg_read(net, VS_VMMIO_QUEUE_NUM_MAX);
    if (max == 0)
        return fail(net, err, errlen, "the device lacks one of its queues");
    while (size > max)
        size /= 2;
    vs_vq_init(q, r, size);
    reg_write(net, VS_VMMIO_QUEUE_NUM, size);
    write_addr(net, VS_VMMIO_QUEUE_DESC_LOW, VS_VMMIO_QUEUE_DESC_HIGH, addr_of(r->desc));
    write_addr(net, VS_VMMIO_QUEUE_DRIVER_LOW, VS_VMMIO_QUEUE_DRIVER_HIGH, addr_of(&r->avail));
    write_addr(net, VS_VMMIO_QUEUE_DEVICE_LOW, VS_VMMIO_QUEUE_DEVICE_HIGH, addr_of(&r->used));
    reg_write(net, VS_VMMIO_QUEUE_READY, 1);
    return 0;
}

static void post_rx(struct net *net, uint16_t id)
{
    vs_vq_post(&net->rx, id, addr_of(net->rx_bufs[id]), BUF_BYTES);
}

/* Return what the device sent, so the transmit buffers can be used again. */
static void collect_tx(struct net *net)
{
    const char *why = "";
    int n = vs_vq_used_new(&net->tx, &why);

    if (n < 0) {
        report_error(net, why);
        net->broken = 1;
        return;
    }
    while (n-- > 0) {
        uint16_t id;
        uint32_t len;

        if (vs_vq_take_used(&net->tx, &id, &len, &why))
            report_error(net, why);
    }
}

static int free_tx(const struct net *net)
{
    for (uint16_t id = 0; id < net->tx.size; id++)
        if (!net->tx.in_flight[id])
            return id;
    return -1;
}

static vs_net_rx_hook rx_hook;

/* 0 once the device has the frame, -1 if it was dropped. */
static int transmit(struct net *net, const uint8_t *frame, unsigned len)
{
    int id = free_tx(net);

    if (id < 0) {
        collect_tx(net);
        id = free_tx(net);
    }
    if (id < 0 || net->broken)
        return -1;   /* all buffers in flight: dropped, as a full queue drops */
    memset(net->tx_bufs[id], 0, NET_HDR);
    memcpy(net->tx_bufs[id] + NET_HDR, frame, len);
    vs_vq_set_desc(&net->tx, (uint16_t)id, addr_of(net->tx_bufs[id]), NET_HDR + len, 0, 0);
    vs_vq_publish(&net->tx, (uint16_t)id, 0);
    reg_write(net, VS_VMMIO_QUEUE_NOTIFY, TXQ);
    net->n.tx_frames++;
    return 0;
}

static void count_answer(struct net *net, enum vs_net_answer kind)
{
    if (kind == VS_NET_ARP)
        net->n.arp++;
    else if (kind == VS_NET_PING)
        net->n.ping++;
    else if (kind == VS_NET_UDP)
        net->n.udp++;
}

static void receive(struct net *net)
{
    const char *why = "";
    int n = vs_vq_used_new(&net->rx, &why), reposted = 0;

    if (n < 0) {
        report_error(net, why);
        net->broken = 1;
        return;
    }
    while (n-- > 0) {
        uint16_t id;
        uint32_t len;
        enum vs_net_answer kind;

        if (vs_vq_take_used(&net->rx, &id, &len, &why)) {
            report_error(net, why);
        } else if (len > NET_HDR) {
            unsigned r = vs_net_answer(&net->me, net->rx_bufs[id] + NET_HDR, len - NET_HDR,
                                       reply, &kind);

            net->n.rx_frames++;
            if (rx_hook)
                rx_hook(net->rx_bufs[id] + NET_HDR, len - NET_HDR);
            if (r) {
                transmit(net, reply, r);
                count_answer(net, kind);
            }
        }
        if (id != VS_VQ_NO_ID) {
            post_rx(net, id);
            reposted = 1;
        }
    }
    if (reposted)
        reg_write(net, VS_VMMIO_QUEUE_NOTIFY, RXQ);
}

/* Tell the device the announcement was made (VIRTIO_NET_CTRL_ANNOUNCE_ACK) and wait for
 * its answer: the device handles the control queue when notified. */
static void acknowledge_announce(struct net *net)
{
    const char *why = "";
    uint16_t id;
    uint32_t len;

    if (net->ctrl.in_flight[0]) {
        report_error(net, "the previous control request is still in flight");
        return;
    }
    net->ctrl_buf[0] = CTRL_ANNOUNCE;
    net->ctrl_buf[1] = CTRL_ANNOUNCE_ACK;
    net->ctrl_buf[16] = 0xff;
    vs_vq_set_desc(&net->ctrl, 0, addr_of(net->ctrl_buf), 2, VS_VQ_DESC_F_NEXT, 1);
    vs_vq_set_desc(&net->ctrl, 1, addr_of(net->ctrl_buf + 16), 1, VS_VQ_DESC_F_WRITE, 0);
    vs_vq_publish(&net->ctrl, 0, 1);
    reg_write(net, VS_VMMIO_QUEUE_NOTIFY, CTRLQ);
    for (unsigned i = 0; i < CTRL_WAIT; i++) {
        int n = vs_vq_used_new(&net->ctrl, &why);

        if (n != 0) {
            if (n < 0 || vs_vq_take_used(&net->ctrl, &id, &len, &why))
                report_error(net, why);
            else if (*(volatile uint8_t *)&net->ctrl_buf[16] != 0)
                report_error(net, "the device refused the announcement acknowledgement");
            return;
        }
        cpu_relax();
    }
    report_error(net, "the device did not answer the announcement acknowledgement");
}

static void print_announce(const struct net *net, const char *why)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: virtio-net: gratuitous ARP for ");
    for (int i = 0; i < 4; i++) {
        vs_line_dec(&l, net->me.ip[i]);
        if (i < 3)
            vs_line_str(&l, ".");
    }
    vs_line_str(&l, why);
    vs_line_end(&l);
}

static void announce(struct net *net)
{
    uint8_t frame[VS_NET_MIN_FRAME];

    transmit(net, frame, vs_net_garp(&net->me, frame));
}

/* A configuration change: the device needing a reset, or asking to be announced. */
static void config_changed(struct net *net)
{
    if (reg_read(net, VS_VMMIO_STATUS) & VS_VIRTIO_STATUS_NEEDS_RESET) {
        report_error(net, "the device needs a reset (it found a queue unusable)");
        net->broken = 1;
        return;
    }
    if (!(net->features & F_GUEST_ANNOUNCE) ||
        !(*(const volatile uint16_t *)(uintptr_t)(net->base + CFG_STATUS) & S_ANNOUNCE))
        return;
    announce(net);
    net->n.announces++;
    print_announce(net, " (the device asked)");
    acknowledge_announce(net);
}

static void poll_one(struct net *net)
{
    uint32_t isr = net->isr;

    net->isr = 0;
    if (!net->base || net->broken)
        return;
    if (isr & VS_VIRTIO_INT_CONFIG)
        config_changed(net);
    collect_tx(net);
    receive(net);
}

void vs_net_poll(void)
{
    for (unsigned k = 0; k < nr_nets; k++)
        poll_one(&nets[k]);
}

static void print_started(const struct net *net, const struct vs_virtio_mmio_slot *s)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: virtio-net at ");
    vs_line_hex(&l, s->base);
    vs_line_str(&l, " irq ");
    vs_line_dec(&l, s->irq);
    vs_line_str(&l, ": mac ");
    for (int i = 0; i < 6; i++) {
        static const char hex[] = "0123456789abcdef";
        char b[4] = { hex[net->me.mac[i] >> 4], hex[net->me.mac[i] & 15], i < 5 ? ':' : 0, 0 };

        vs_line_str(&l, b);
    }
    vs_line_str(&l, (net->features & F_GUEST_ANNOUNCE) ? ", guest announce"
                                                        : ", no guest announce");
    vs_line_end(&l);
}

static int start_device(struct net *net, char *err, unsigned errlen)
{
    if (negotiate(net, err, errlen) ||
        setup_queue(net, RXQ, &net->rx, &net->rx_rings, err, errlen) ||
        setup_queue(net, TXQ, &net->tx, &net->tx_rings, err, errlen) ||
        ((net->features & F_CTRL_VQ) &&
         setup_queue(net, CTRLQ, &net->ctrl, &net->ctrl_rings, err, errlen)))
        return -1;
    for (int i = 0; i < 6; i++)
        net->me.mac[i] = cfg_read8(net, CFG_MAC + (uint32_t)i);
    for (uint16_t id = 0; id < net->rx.size; id++)
        post_rx(net, id);
    reg_write(net, VS_VMMIO_STATUS, reg_read(net, VS_VMMIO_STATUS) | VS_VIRTIO_STATUS_DRIVER_OK);
    reg_write(net, VS_VMMIO_QUEUE_NOTIFY, RXQ);
    return 0;
}

static int start_one(struct net *net, const struct vs_virtio_mmio_slot *s, const uint8_t ip[4],
                     char *err, unsigned errlen)
{
    if (s->irq >= 0x100 - VS_VEC_ISA_BASE - 0x20)
        return fail(net, err, errlen, "its interrupt number is too high for this guest's vectors");
    net->vector = (uint8_t)(VS_VEC_ISA_BASE + s->irq);
    vs_irq_set_handler(net->vector, on_interrupt);
    if (vs_platform_route_gsi(s->irq, net->vector, err, errlen))
        return -1;
    for (int i = 0; i < 4; i++)
        net->me.ip[i] = ip[i];
    net->base = s->base;
    if (start_device(net, err, errlen))
        return -1;
    print_started(net, s);
    announce(net);
    print_announce(net, " (start)");
    return 0;
}

int vs_net_start(const uint8_t (*ips)[4], unsigned nr_ips, char *err, unsigned errlen)
{
    const struct vs_virtio_mmio_slot *s = vs_virtio_mmio_find_nth(VIRTIO_ID_NET, 0);

    if (!s)
        return 1;
    for (unsigned k = 0; s && k < nr_ips && k < VS_NET_MAX_NICS;
         k++, s = vs_virtio_mmio_find_nth(VIRTIO_ID_NET, k)) {
        nr_nets = k + 1;
        if (start_one(&nets[k], s, ips[k], err, errlen))
            return -1;
    }
    return 0;
}

void vs_net_set_rx_hook(vs_net_rx_hook hook)
{
    rx_hook = hook;
}

int vs_net_send(const uint8_t *frame, unsigned len)
{
    if (!nr_nets || !nets[0].base || len > VS_NET_MAX_FRAME)
        return -1;
    return transmit(&nets[0], frame, len);
}

const struct vs_net_addr *vs_net_addr0(void)
{
    return nr_nets ? &nets[0].me : 0;
}

void vs_net_counts(struct vs_net_counts *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned k = 0; k < nr_nets; k++) {
        const struct vs_net_counts *n = &nets[k].n;

        out->rx_frames += n->rx_frames;
        out->tx_frames += n->tx_frames;
        out->arp += n->arp;
        out->ping += n->ping;
        out->udp += n->udp;
        out->announces += n->announces;
        out->errors += n->errors;
        out->interrupts += n->interrupts;
    }
}
