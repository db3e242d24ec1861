/* What `--nic SPEC` asks for (vmshift run, vmshift receive):
 *     tap=NAME,mac=MAC[,bridge=BR][,ip=A.B.C.D][,vlan=N][,rate=RATE]
 *     [,announce-initial=MS][,announce-max=MS][,announce-rounds=N][,announce-step=MS]
 * tap: the TAP device (created if missing); mac: the guest's MAC (unicast, not zero), which
 * the NIC keeps across migrations; bridge: the Linux bridge the TAP joins; ip: the guest's
 * IPv4 address, for the gratuitous ARPs after a migration (else learned from its traffic);
 * announce-*: the schedule of announcements after a migration, as QEMU's parameters of
 * those names (defaults 50 ms, 550 ms, 5 rounds, 100 ms); vlan: the NIC is in this 802.1Q
 * VLAN (the device tags what the guest sends and takes only frames of that VLAN, untagged
 * for the guest); rate: at most this each way, as tc writes rates ("2gbit", "100mbit") or
 * bytes per second ("10M"). Pure: no device is touched. */
#ifndef VS_VIRTIO_NET_SPEC_H
#define VS_VIRTIO_NET_SPEC_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#define VS_NET_ANNOUNCE_INITIAL_MS 50
#define VS_NET_ANNOUNCE_MAX_MS 550
#define VS_NET_ANNOUNCE_ROUNDS 5
#define VS_NET_ANNOUNCE_STEP_MS 100

/* When the announcements go out after a move (QEMU's announce-*). */
struct vs_net_announce_params {
    uint32_t initial_ms;   /* delay before the second round (the first goes at once) */
    uint32_t max_ms;       /* no delay longer than this */
    uint32_t rounds;       /* 0: no announcements */
    uint32_t step_ms;      /* each delay this much longer than the one before */
};

struct vs_net_spec {
    char tap[IFNAMSIZ];
    char bridge[IFNAMSIZ];     /* "" none */
    uint8_t mac[6];
    uint8_t ip[4];             /* network order */
    bool has_ip;
    uint16_t vlan;             /* 802.1Q VLAN id, 1..4094 (0: untagged, no VLAN) */
    uint64_t rate;             /* bytes per second each way (0: no limit) */
    struct vs_net_announce_params announce;
};

/* Parse SPEC into *out. Errors (-EINVAL, -ENOTSUP) name the field and the bad value:
 * "--nic tap=t0,mac=zz: mac 'zz' is not a MAC address (six hex bytes, e.g. ...)". */
int vs_net_spec_parse(const char *spec, struct vs_net_spec *out);

/* "52:54:00:12:34:56" (buf of at least 18 bytes). */
const char *vs_net_mac_string(const uint8_t mac[6], char *buf, unsigned len);

#endif
