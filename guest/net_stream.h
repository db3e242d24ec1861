/* The net-stream workload: the net workload's answers (ARP, ping, UDP echo at ip=), and
 * numbered UDP datagrams at rate= per second to the collector at peer=IP:PORT, from port
 * VS_STREAM_SRC_PORT. The collector's MAC comes from ARP (a request every second until it
 * answers; any ARP from it refreshes it). The rate is kept by the guest's clock (timing.h):
 * the datagrams a stall (a paused VM, a migration's blackout) left out are not sent in a
 * burst afterwards, the schedule restarts; the sequence numbers go on without a gap.
 * The datagram's payload (VS_STREAM_PAYLOAD bytes, little-endian):
 *   0  u32 VS_STREAM_MAGIC      4  u32 0
 *   8  u64 seed= (tells VM instances apart)
 *  16  u64 sequence number, from 0, +1 per datagram handed to the NIC
 *  24  u32 the guest's clock, microseconds (vs_now_us)   28 u32 0 */
#ifndef VS_GUEST_NET_STREAM_H
#define VS_GUEST_NET_STREAM_H

#include "params.h"

#define VS_STREAM_MAGIC 0x5453564du     /* "MVST" read as a little-endian u32 */
#define VS_STREAM_PAYLOAD 32
#define VS_STREAM_SRC_PORT 9001

/* vCPU 0, forever, after vs_net_workload_start. */
void vs_net_stream_run(unsigned cpu, const struct vs_guest_params *p)
    __attribute__((noreturn));

#endif
