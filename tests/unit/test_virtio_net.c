/* Unit tests: virtio-net (src/vmm/virtio/virtio_net.c) driven through its transport as a
 * guest driver would (virtio_net_fixture.h), the I/O thread's work done by calling
 * vs_virtio_net_rx_pump() directly: frames both ways, merged receive buffers, waiting for
 * buffers without losing the frame, nothing written while paused; descriptors a hostile
 * guest writes (too short, outside RAM, looping, read-only receive buffers) break a queue
 * and never the host. The control queue, the state and VLAN/rate: test_virtio_net_state.c. */
#include "virtio_net_fixture.h"

static void transmit_zeroes_header_and_learns_ip(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), mac);
    memset(guest_ptr(&f->g, BUF(0)), 0x5a, HDR);   /* GSO and checksum fields set: ignored */
    memcpy(guest_ptr(&f->g, BUF(1)), frame, sizeof(frame));
    desc(f, 1, 0, BUF(0), HDR, VS_VQ_DESC_F_NEXT, 1);
    desc(f, 1, 1, BUF(1), sizeof(frame), 0, 0);
    offer(f, 1, 0);
    notify(f, 1);
    uint8_t got[256];
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), HDR + sizeof(frame));
    static const uint8_t zero[HDR];
    assert_memory_equal(got, zero, HDR);
    assert_memory_equal(got + HDR, frame, sizeof(frame));
    assert_int_equal(used_idx(f, 1), 1);
    assert_int_equal(used_len(f, 1, 0), 0);
    assert_true(f->a.line.level);
    assert_int_equal(f->a.n->n.tx_frames, 1);
    assert_true(f->a.n->ip_known && f->a.n->ip_learned);
    assert_int_equal(f->a.n->ip[0], 198);
    assert_int_equal(f->a.n->ip[3], 10);
}

static void transmit_hostile_chains(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    desc(f, 1, 0, BUF(0), HDR + 4, 0, 0);   /* too short to be a frame: dropped, returned */
    offer(f, 1, 0);
    notify(f, 1);
    uint8_t got[64];
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), -EAGAIN);
    assert_int_equal(used_idx(f, 1), 1);
    assert_int_equal(f->a.n->n.tx_dropped, 1);
    desc(f, 1, 1, GUEST_RAM - 16, 64, 0, 0);   /* runs past the end of RAM */
    offer(f, 1, 1);
    notify(f, 1);
    assert_true(broken(f, 1));
    assert_int_equal(used_idx(f, 1), 1);
    /* A reset makes the device usable again; then a loop of descriptors breaks it. */
    wr(f->a.n->transport, VS_VMMIO_STATUS, 0);
    f->avail[1] = 0;
    guest_put16(&f->g, QBASE(1) + 0x1000 + 2, 0);
    memset(guest_ptr(&f->g, QBASE(1) + 0x2000), 0, 8);
    start(f, BASE_FEATURES);
    assert_false(f->a.n->transport->vq[1].broken);
    desc(f, 1, 2, BUF(2), 64, VS_VQ_DESC_F_NEXT, 3);
    desc(f, 1, 3, BUF(3), 64, VS_VQ_DESC_F_NEXT, 2);
    offer(f, 1, 2);
    notify(f, 1);
    assert_true(broken(f, 1));
    assert_int_equal(wire_recv(&f->a, got, sizeof(got)), -EAGAIN);
}

static void receive_frame(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 2048);
    post_rx(f, 1, 2048);
    notify(f, 0);
    uint8_t frame[100];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_id(f, 0, 0), 0);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(frame));
    const uint8_t *b = guest_ptr(&f->g, BUF(0));
    static const uint8_t hdr[HDR] = { [10] = 1 };   /* zero but num_buffers = 1 */
    assert_memory_equal(b, hdr, HDR);
    assert_memory_equal(b + HDR, frame, sizeof(frame));
    assert_int_equal(b[HDR + sizeof(frame)], 0xcc);   /* nothing beyond */
    assert_int_equal(f->a.n->n.rx_frames, 1);
    assert_true(f->a.line.level);
}

static void receive_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[80];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);   /* until a notify */
    post_rx(f, 3, 1600);
    notify(f, 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_id(f, 0, 0), 3);
    assert_memory_equal(guest_ptr(&f->g, BUF(3)) + HDR, frame, sizeof(frame));
    assert_int_equal(f->a.n->n.rx_dropped, 0);
}

static void receive_merged_buffers(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    post_rx(f, 0, 64);
    notify(f, 0);
    uint8_t frame[150];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    /* One buffer of 64 bytes is not enough: nothing is taken for good, the frame waits. */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(f->a.n->transport->vq[0].last_avail_idx, 0);
    post_rx(f, 1, 64);
    post_rx(f, 2, 64);
    notify(f, 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 3);
    assert_int_equal(used_len(f, 0, 0), 64);
    assert_int_equal(used_len(f, 0, 1), 64);
    assert_int_equal(used_len(f, 0, 2), HDR + sizeof(frame) - 128);
    assert_int_equal(guest_get16(&f->g, BUF(0) + 10), 3);   /* num_buffers */
    uint8_t back[sizeof(frame)];
    memcpy(back, guest_ptr(&f->g, BUF(0)) + HDR, 64 - HDR);
    memcpy(back + 64 - HDR, guest_ptr(&f->g, BUF(1)), 64);
    memcpy(back + 128 - HDR, guest_ptr(&f->g, BUF(2)), sizeof(frame) - (128 - HDR));
    assert_memory_equal(back, frame, sizeof(frame));
}

static void receive_small_buffer_without_merging(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 100);
    notify(f, 0);
    uint8_t big[150], small[60];
    make_frame(big, sizeof(big), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    make_frame(small, sizeof(small), (const uint8_t[6]){ 2, 0, 0, 0, 0, 8 });
    wire_send(&f->a, big, sizeof(big));
    wire_send(&f->a, small, sizeof(small));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    /* The big frame is dropped; the buffer it did not fit holds the next one. */
    assert_int_equal(f->a.n->n.rx_dropped, 1);
    assert_int_equal(used_idx(f, 0), 1);
    assert_int_equal(used_len(f, 0, 0), HDR + sizeof(small));
    assert_memory_equal(guest_ptr(&f->g, BUF(0)) + HDR, small, sizeof(small));
}

static void receive_hostile_chains(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    uint8_t frame[60];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    desc(f, 0, 0, BUF(0), 1500, 0, 0);   /* device-readable: nothing to write into */
    offer(f, 0, 0);
    notify(f, 0);
    wire_send(&f->a, frame, sizeof(frame));
    vs_virtio_net_rx_pump(f->a.n);
    assert_true(broken(f, 0));
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);   /* stays stopped */
    /* After a reset: a writable buffer smaller than the header breaks the queue too. */
    wr(f->a.n->transport, VS_VMMIO_STATUS, 0);
    f->avail[0] = 0;
    guest_put16(&f->g, QBASE(0) + 0x1000 + 2, 0);
    start(f, BASE_FEATURES | VS_VIRTIO_NET_F_MRG_RXBUF);
    post_rx(f, 1, 8);
    notify(f, 0);
    wire_send(&f->a, frame, sizeof(frame));
    vs_virtio_net_rx_pump(f->a.n);
    assert_true(broken(f, 0));
    assert_int_equal(guest_ptr(&f->g, BUF(1))[0], 0xcc);
}

static void nothing_enters_the_guest_while_paused(void **state)
{
    struct fixture *f = *state;
    start(f, BASE_FEATURES);
    post_rx(f, 0, 2048);
    notify(f, 0);
    vs_virtio_net_set_running(f->a.n, false);
    uint8_t frame[64];
    make_frame(frame, sizeof(frame), (const uint8_t[6]){ 2, 0, 0, 0, 0, 9 });
    wire_send(&f->a, frame, sizeof(frame));
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_WAIT);
    assert_int_equal(used_idx(f, 0), 0);
    assert_int_equal(guest_ptr(&f->g, BUF(0))[0], 0xcc);
    vs_virtio_net_set_running(f->a.n, true);   /* resumed here: the frame is delivered */
    assert_int_equal(vs_virtio_net_rx_pump(f->a.n), VS_NET_RX_IDLE);
    assert_int_equal(used_idx(f, 0), 1);
}

/* A control request: class, command, then the device-writable status byte. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(transmit_zeroes_header_and_learns_ip, setup, teardown),
        cmocka_unit_test_setup_teardown(transmit_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_waits_for_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_merged_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_small_buffer_without_merging, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_hostile_chains, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_enters_the_guest_while_paused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
