#include "net_stream.h"
#include "guest.h"
#include "pvport.h"
#include "serial.h"
#include "telemetry.h"
#include "timing.h"
#include "virtio_net.h"

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);

#define ARP_EVERY_US     1000000u   /* until the collector answers */
#define IDLE_US          10000u     /* the longest sleep: ARP and ping wait at most this */
#define MAX_BEHIND_US    100000u    /* further behind than this: restart the schedule */
#define MAX_BURST        16         /* datagrams per wake-up, at most */
#define RATE_CHECK_US    100000u    /* how often the monitor's rate override is read */

struct stream {
    uint8_t peer_ip[4];
    uint16_t peer_port;
    uint8_t peer_mac[6];
    int resolved;
    uint64_t seed;
    uint64_t boot_rate, rate;       /* datagrams/s: rate= and the one in force */
    uint32_t rate_checked_us;
    uint32_t interval_us;           /* 0: as fast as the NIC takes them */
    uint32_t next_us;               /* when the next datagram is due */
    uint32_t last_arp_us, last_sent_us;
    int arped, sent_any;
    uint64_t seq, tx_errors, arps;
    uint64_t max_gap_us;
};

static struct stream st;

/* Any ARP from the collector says where it is (its reply, or its own request for us). */
static void on_frame(const uint8_t *frame, unsigned len)
{
    uint8_t mac[6];

    if (!vs_net_arp_sender(frame, len, st.peer_ip, mac))
        return;
    memcpy(st.peer_mac, mac, 6);
    if (!st.resolved)
        vs_puts("vmshift-guest: net-stream: the collector answered ARP, streaming");
    st.resolved = 1;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void ask_for_peer(uint32_t now)
{
    uint8_t frame[VS_NET_MIN_FRAME];

    if (st.arped && now - st.last_arp_us < ARP_EVERY_US)
        return;
    st.arped = 1;
    st.last_arp_us = now;
    if (vs_net_send(frame, vs_net_arp_request(vs_net_addr0(), st.peer_ip, frame)) == 0)
        st.arps++;
}

/* One datagram: 0 once the NIC has it, -1 when its queue was full. */
static int send_one(uint32_t now)
{
    uint8_t payload[VS_STREAM_PAYLOAD] = { 0 }, frame[VS_NET_MIN_FRAME + VS_STREAM_PAYLOAD];
    unsigned len;

    put_le(payload, VS_STREAM_MAGIC, 4);
    put_le(payload + 8, st.seed, 8);
    put_le(payload + 16, st.seq, 8);
    put_le(payload + 24, now, 4);
    len = vs_net_udp(vs_net_addr0(), st.peer_mac, st.peer_ip, VS_STREAM_SRC_PORT, st.peer_port,
                     payload, sizeof(payload), frame);
    if (vs_net_send(frame, len)) {
        st.tx_errors++;
        return -1;
    }
    if (st.sent_any && now - st.last_sent_us > st.max_gap_us)
        st.max_gap_us = now - st.last_sent_us;
    st.sent_any = 1;
    st.last_sent_us = now;
    st.seq++;
    return 0;
}

/* Send what is due by now; returns how long until the next one is (microseconds). */
static uint32_t send_due(uint32_t now)
{
    int32_t ahead = (int32_t)(st.next_us - now);

    if (!st.interval_us) {
        for (int i = 0; i < MAX_BURST && send_one(now) == 0; i++)
            ;
        return 0;
    }
    /* A stall left the schedule far behind, or the clock stepped back: start afresh. */
    if (ahead < -(int32_t)MAX_BEHIND_US || ahead > (int32_t)MAX_BEHIND_US + (int32_t)st.interval_us)
        st.next_us = now, ahead = 0;
    for (int i = 0; i < MAX_BURST && ahead <= 0; i++) {
        if (send_one(now))
            return st.interval_us;   /* the queue is full: try again later */
        st.next_us += st.interval_us;
        ahead = (int32_t)(st.next_us - now);
    }
    return ahead > 0 ? (uint32_t)ahead : 0;
}

/* The net-stream workload's meaning of vCPU 0's counters (docs/guide.md). */
static void publish(volatile struct vs_cpu_counters *c)
{
    struct vs_net_counts n;

    vs_net_counts(&n);
    c->passes = st.seq;
    c->pages_written = n.tx_frames;
    c->pages_checked = n.ping;
    c->generation = st.tx_errors;
    c->rng_bytes = (uint32_t)st.arps;
    c->max_gap_us = st.max_gap_us;
    c->errors = n.errors;
}

static void set_rate(uint64_t rate, uint32_t now)
{
    st.rate = rate;
    st.interval_us = !rate || !vs_timing_usable() ? 0
                     : rate >= 1000000 ? 1 : (uint32_t)(1000000 / rate);
    st.next_us = now;
}

/* The monitor's live override (vmshift ctl SOCK set-rate rate=N) wins over rate=. */
static void follow_rate(uint32_t now)
{
    uint64_t want = st.boot_rate;

    if (!vs_guest.pvport || now - st.rate_checked_us < RATE_CHECK_US)
        return;
    st.rate_checked_us = now;
    if (vs_pvport_rate() != VS_RATE_NO_OVERRIDE)
        want = vs_pvport_rate();
    if (want != st.rate)
        set_rate(want, now);
}

static void init(const struct vs_guest_params *p)
{
    memcpy(st.peer_ip, p->peer_ip, 4);
    st.peer_port = p->peer_port;
    st.seed = p->seed;
    st.boot_rate = p->rate;
    if (p->rate && !vs_timing_usable())
        vs_puts("vmshift-guest: net-stream: no clock, streaming as fast as the NIC takes it");
    set_rate(p->rate, vs_now_us());
    st.rate_checked_us = vs_now_us();
    vs_net_set_rx_hook(on_frame);
}

void vs_net_stream_run(unsigned cpu, const struct vs_guest_params *p)
{
    volatile struct vs_cpu_counters *c = vs_telemetry_cpu(cpu);
    uint32_t wait;

    init(p);
    vs_telemetry_set_state(cpu, VS_GUEST_RUNNING);
    vs_puts("vmshift-guest: net-stream: asking for the collector's MAC");
    for (;;) {
        uint32_t now;

        /* Let the NIC's pending interrupt in, then take what it brought. */
        __asm__ volatile("sti; nop; cli" : : : "memory");
        vs_net_poll();
        now = vs_now_us();
        if (!st.resolved) {
            ask_for_peer(now);
            wait = IDLE_US;
        } else {
            follow_rate(now);
            wait = send_due(now);
        }
        publish(c);
        vs_telemetry_doorbell(cpu);
        if (!vs_timing_usable()) {
            __asm__ volatile("sti; hlt; cli" : : : "memory");   /* a NIC interrupt wakes us */
            continue;
        }
        if (wait > IDLE_US)
            wait = IDLE_US;
        if (wait)
            vs_sleep_us(wait);
    }
}
