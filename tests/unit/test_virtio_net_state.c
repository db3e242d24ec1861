/* Unit tests: virtio-net's control queue (ANNOUNCE_ACK), its "virtio-net" section saved
 * and loaded into a fresh device (which discards what its backend queued before it runs,
 * then announces), hostile records refused, VLAN tagging and filtering, and the rate
 * limit (virtio_net_fixture.h drives the device as a guest driver would). */
#include "virtio_net_fixture.h"

static uint8_t control(struct fixture *f, uint16_t head, uint8_t class, uint8_t cmd)
{
    uint8_t *req = guest_ptr(&f->g, BUF(6) + 16u * head);
    req[0] = class, req[1] = cmd, req[8] = 0x77;
    desc(f, 2, head, BUF(6) + 16u * head, 2, VS_VQ_DESC_F_NEXT, (uint16_t)(head + 1));
    desc(f, 2, (uint16_t)(head + 1), BUF(6) + 16u * head + 8, 1, VS_VQ_DESC_F_WRITE, 0);
    offer(f, 2, head);
    notify(f, 2);
    return req[8];
}

static void control_queue(void **state)
{
    struct fixture *f = *state;
    struct vs_virtio_mmio *t = f->a.n->transport;
    /* GUEST_ANNOUNCE needs the control queue to be acknowledged on. */
    assert_false(negotiate(t, BASE_FEATURES | VS_VIRTIO_NET_F_GUEST_ANNOUNCE));
    wr(t, VS_VMMIO_STATUS, 0);
    start(f, BASE_FEATURES | ANNOUNCE_FEATURES);
    f->a.n->status |= VS_VIRTIO_NET_S_ANNOUNCE;
    assert_int_equal(control(f, 0, 0, 0), VS_VIRTIO_NET_ERR);   /* receive modes: not offered */
    assert_int_equal(f->a.n->status, VS_VIRTIO_NET_S_LINK_UP | VS_VIRTIO_NET_S_ANNOUNCE);
    assert_int_equal(control(f, 2, VS_VIRTIO_NET_CTRL_ANNOUNCE, VS_VIRTIO_NET_CTRL_ANNOUNCE_ACK),
                     VS_VIRTIO_NET_OK);
    assert_int_equal(f->a.n->status, VS_VIRTIO_NET_S_LINK_UP);
    assert_int_equal(f->a.n->n.announce_acks, 1);
    assert_int_equal(used_idx(f, 2), 2);
    /* Configuration space: the MAC, then the status. */
    struct vs_bus_io io = { .offset = VS_VIRTIO_MMIO_CONFIG, .size = 8 };
    uint8_t cfg[8];
    io.data = cfg;
    vs_virtio_mmio_io(t, &io);
    assert_memory_equal(cfg, mac, 6);
    assert_int_equal(cfg[6], VS_VIRTIO_NET_S_LINK_UP);
    /* A request with no byte for the status breaks the queue. */
    desc(f, 2, 4, BUF(7), 2, 0, 0);
    offer(f, 2, 4);
    notify(f, 2);
    assert_true(broken(f, 2));
}

static void save(struct nic *x, struct vs_blob *b)
{
    assert_int_equal(vs_vmstate_save_all(&x->reg, b), 0);
}

static void state_moves_and_the_arrival_is_announced(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | ANNOUNCE_FEATURES);
    post_rx(f, 0, 2048);
    notify(f, 0);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), mac);   /* the guest sends: its IP is learned */
    memcpy(guest_ptr(&f->g, BUF(5)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(4), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(5), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    vs_virtio_net_set_running(f->a.n, false);   /* the source pauses, then saves */
    struct vs_blob b = { 0 };
    save(&f->a, &b);

    struct nic d = { 0 };
    nic_make(f, &d);
    wire_send(&d, frame, sizeof(frame));   /* queued for the VM before it runs here */
    assert_int_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_memory_equal(d.n->mac, mac, 6);
    assert_true(d.n->ip_known);
    assert_int_equal(d.n->n.tx_frames, 1);
    assert_int_equal(d.n->transport->vq[0].last_avail_idx, 0);
    vs_virtio_net_set_running(d.n, true);
    assert_int_equal(d.n->n.rx_discarded, 1);
    uint64_t t0 = d.n->ann_start_ns;
    /* Round 1 at once: RARP and gratuitous ARP on the wire, the guest asked. */
    assert_int_equal(vs_virtio_net_timers(d.n, t0), 50 * 1000000LL);
    uint8_t got[128];
    assert_int_equal(wire_recv(&d, got, sizeof(got)), HDR + VS_ETH_MIN_FRAME);
    assert_int_equal(got[HDR + 12] << 8 | got[HDR + 13], VS_ETH_P_RARP);
    assert_memory_equal(got + HDR + 6, mac, 6);
    assert_int_equal(wire_recv(&d, got, sizeof(got)), HDR + VS_ETH_MIN_FRAME);
    assert_int_equal(got[HDR + 12] << 8 | got[HDR + 13], VS_ETH_P_ARP);
    assert_int_equal(got[HDR + 14 + 17], 10);   /* sender IP 198.18.0.10 */
    assert_true(d.n->status & VS_VIRTIO_NET_S_ANNOUNCE);
    assert_true(d.n->transport->interrupt_status & VS_VIRTIO_INT_CONFIG);
    /* The rest on QEMU's schedule: +50, +150, +250, +350 ms. */
    assert_int_equal(vs_virtio_net_timers(d.n, t0 + 49000000), 1000000);
    assert_int_equal(wire_recv(&d, got, sizeof(got)), -EAGAIN);
    uint64_t at = t0 + 50000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 150000000);
    at += 150000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 250000000);
    at += 250000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), 350000000);
    at += 350000000;
    assert_int_equal(vs_virtio_net_timers(d.n, at), -1);
    assert_int_equal(d.n->nr_events, 5);
    assert_int_equal(d.n->events[4].at_us, 800000);
    unsigned frames = 0;
    while (wire_recv(&d, got, sizeof(got)) > 0)
        frames++;
    assert_int_equal(frames, 8);   /* rounds 2..5, RARP and GARP each */
    vs_blob_free(&b);
    nic_free(&d);
}

static void load_refuses_bad_records(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    vs_virtio_net_set_running(f->a.n, false);
    struct vs_blob b = { 0 };
    save(&f->a, &b);
    struct nic d = { 0 };
    nic_make(f, &d);
    /* The section's fields come last in the blob: mac, status, ip, flags, counters. */
    uint8_t *rec = b.data + b.len - sizeof(struct vs_virtio_net_record);
    rec[0] |= 1;   /* a multicast MAC */
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "unicast"));
    rec[0] &= (uint8_t)~1;
    rec[6] = 0x80;   /* an unknown status bit */
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "status"));
    rec[6] = 1;
    rec[offsetof(struct vs_virtio_net_record, vlan)] = 0xff;   /* VLAN 4095 */
    rec[offsetof(struct vs_virtio_net_record, vlan) + 1] = 0x0f;
    assert_int_not_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_non_null(strstr(vs_last_error(), "VLAN"));
    /* A VLAN moves with the VM, whatever the destination's spec says. */
    rec[offsetof(struct vs_virtio_net_record, vlan) + 1] = 0;
    rec[offsetof(struct vs_virtio_net_record, vlan)] = 20;
    assert_int_equal(vs_vmstate_load_all(&d.reg, b.data, b.len), 0);
    assert_int_equal(d.n->vlan, 20);
    vs_blob_free(&b);
    nic_free(&d);
}

/* The frame with an 802.1Q tag for vid after its addresses. */
static size_t tagged(uint8_t *out, const uint8_t *frame, size_t len, uint16_t vid)
{
    memcpy(out, frame, 12);
    out[12] = 0x81, out[13] = 0x00, out[14] = (uint8_t)(vid >> 8), out[15] = (uint8_t)vid;
    memcpy(out + 16, frame + 12, len - 12);
    return len + 4;
}

static void vlan_tags_what_the_guest_sends_and_filters_what_it_gets(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    uint8_t frame[60], want[64], got[128];
    make_frame(frame, sizeof(frame), mac);
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(0), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(1), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), HDR + sizeof(frame) + 4);
    assert_memory_equal(got + HDR, want, tagged(want, frame, sizeof(frame), 10));
    assert_true(f->a.n->ip_known);   /* learned from the untagged frame */
    /* In: VLAN 10 untagged for the guest; VLAN 20 and untagged frames never reach it. */
    post_rx(f, 0, 2048);
    notify(f, 0);
    uint8_t other[60], in[64];
    make_frame(other, sizeof(other), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, in, tagged(in, other, sizeof(other), 20));
    wire_send(&f->a, other, sizeof(other));
    wire_send(&f->a, in, tagged(in, other, sizeof(other), 10));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(f->a.n->n.rx_filtered, 2);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(other));
    assert_memory_equal(guest_ptr(&f->g, BUF(0)) + HDR, other, sizeof(other));
}

/* Six frames of 1000 bytes to send at 8000 bytes/s with a bucket of 3072: four go at
 * once, the rest when the I/O thread's timer says; chains wait on the ring meanwhile. */
static void rate_holds_frames_back(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[1000];
    make_frame(frame, sizeof(frame), mac);
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    for (uint16_t i = 0; i < 6; i++) {
        desc(f, 1, i, BUF(1) - HDR, HDR + sizeof(frame), 0, 0);
        offer(f, 1, i);
    }
    notify(f, 1);
    assert_int_equal(used_idx(f, 1), 4);
    assert_int_equal(f->a.n->n.tx_throttled, 1);
    uint64_t retry = f->a.n->tx_retry_ns;
    assert_true(retry > 0);
    notify(f, 1);                                   /* the driver's notify changes nothing */
    assert_int_equal(used_idx(f, 1), 4);
    assert_true(vs_virtio_net_timers(f->a.n, retry) > 0);
    assert_int_equal(used_idx(f, 1), 5);            /* the debt of the 4th was paid */
    assert_int_equal(vs_virtio_net_timers(f->a.n, f->a.n->tx_retry_ns + 1000000000), -1);
    assert_int_equal(used_idx(f, 1), 6);
    uint8_t got[HDR + 1100];
    unsigned frames = 0;
    while (wire_recv(&f->a, got, sizeof(got)) == HDR + (ssize_t)sizeof(frame))
        frames++;
    assert_int_equal(frames, 6);
    /* Receiving: frames wait in the backend's queue while the bucket is in debt. */
    for (uint16_t i = 0; i < 6; i++)
        post_rx(f, i, 2048);
    notify(f, 0);
    for (int i = 0; i < 5; i++)
        wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 4);
    assert_int_equal(f->a.n->n.rx_throttled, 1);
    assert_true(f->a.n->rx_retry_ns > 0);
    f->a.n->rx_tb.tokens = 0;                       /* as if the time had passed */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 5);
    assert_int_equal(f->a.n->n.rx_dropped, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(control_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(state_moves_and_the_arrival_is_announced, setup, teardown),
        cmocka_unit_test_setup_teardown(load_refuses_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(vlan_tags_what_the_guest_sends_and_filters_what_it_gets,
                                        setup_vlan, teardown),
        cmocka_unit_test_setup_teardown(rate_holds_frames_back, setup_rate, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
