#include "vmm/virtio/virtio_net_spec.h"
#include "common/error.h"
#include "common/rate.h"
#include "common/size.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_TOKEN 128

enum key { K_TAP, K_MAC, K_BRIDGE, K_IP, K_VLAN, K_RATE, K_INITIAL, K_MAX, K_ROUNDS, K_STEP,
           NR_KEYS };

static const char *const key_names[NR_KEYS] = {
    "tap", "mac", "bridge", "ip", "vlan", "rate", "announce-initial", "announce-max",
    "announce-rounds", "announce-step",
};

const char *vs_net_mac_string(const uint8_t mac[6], char *buf, unsigned len)
{
    snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
             mac[5]);
    return buf;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int parse_mac(const char *v, uint8_t mac[6])
{
    if (strlen(v) != 17)
        return -1;
    for (int i = 0; i < 6; i++) {
        int hi = hex_digit(v[3 * i]), lo = hex_digit(v[3 * i + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && v[3 * i + 2] != ':'))
            return -1;
        mac[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int parse_ipv4(const char *v, uint8_t ip[4])
{
    unsigned a[4];
    char tail;
    if (sscanf(v, "%3u.%3u.%3u.%3u%c", &a[0], &a[1], &a[2], &a[3], &tail) != 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (a[i] > 255)
            return -1;
        ip[i] = (uint8_t)a[i];
    }
    for (const char *p = v; *p; p++)   /* sscanf takes "+1" and " 1": digits and dots only */
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
    return 0;
}

static int parse_ms(const char *v, uint64_t max, uint32_t *out)
{
    uint64_t x;
    if (!v[0] || !isdigit((unsigned char)v[0]) || vs_parse_u64(v, &x) || x > max)
        return -1;
    *out = (uint32_t)x;
    return 0;
}

static int bad(const char *spec, const char *key, const char *value, const char *want)
{
    return vs_fail(EINVAL, "--nic %s: %s '%s' %s", spec, key, value, want);
}

static int set_name(char *dst, const char *spec, const char *key, const char *v)
{
    if (!v[0] || strlen(v) >= IFNAMSIZ || strchr(v, '/') || strchr(v, ' '))
        return bad(spec, key, v, "is not an interface name (1 to 15 characters, no '/')");
    snprintf(dst, IFNAMSIZ, "%s", v);
    return 0;
}

static int apply(struct vs_net_spec *s, const char *spec, enum key k, const char *v)
{
    double rate;
    uint32_t n;
    switch (k) {
    case K_TAP: return set_name(s->tap, spec, "tap", v);
    case K_BRIDGE: return set_name(s->bridge, spec, "bridge", v);
    case K_MAC:
        if (parse_mac(v, s->mac))
            return bad(spec, "mac", v, "is not a MAC address (six hex bytes, e.g. "
                       "52:54:00:12:34:56)");
        if (s->mac[0] & 1)
            return bad(spec, "mac", v, "is a multicast address: the NIC needs a unicast one "
                       "(first byte even, e.g. 52:54:00:...)");
        if (!(s->mac[0] | s->mac[1] | s->mac[2] | s->mac[3] | s->mac[4] | s->mac[5]))
            return bad(spec, "mac", v, "is all zero: give the NIC a real address");
        return 0;
    case K_IP:
        if (parse_ipv4(v, s->ip))
            return bad(spec, "ip", v, "is not an IPv4 address (e.g. 198.18.0.10)");
        s->has_ip = true;
        return 0;
    case K_VLAN:
        if (parse_ms(v, 4094, &n) || n == 0)
            return bad(spec, "vlan", v, "is not a VLAN id (1 to 4094)");
        s->vlan = (uint16_t)n;
        return 0;
    case K_RATE:
        if (vs_parse_rate(v, &rate) || rate < 1000 || rate > 1e12)
            return bad(spec, "rate", v, "is not a rate from 8kbit to 8tbit (e.g. 2gbit, "
                       "100mbit, 10M bytes/s)");
        s->rate = (uint64_t)rate;
        return 0;
    case K_INITIAL:
        return parse_ms(v, 100000, &s->announce.initial_ms)
                   ? bad(spec, "announce-initial", v, "is not 0 to 100000 (ms)") : 0;
    case K_MAX:
        return parse_ms(v, 100000, &s->announce.max_ms)
                   ? bad(spec, "announce-max", v, "is not 0 to 100000 (ms)") : 0;
    case K_ROUNDS:
        return parse_ms(v, 1000, &s->announce.rounds)
                   ? bad(spec, "announce-rounds", v, "is not 0 to 1000") : 0;
    case K_STEP:
        return parse_ms(v, 10000, &s->announce.step_ms)
                   ? bad(spec, "announce-step", v, "is not 0 to 10000 (ms)") : 0;
    case NR_KEYS: break;
    }
    return -EINVAL;
}

static int find_key(const char *spec, const char *tok, size_t klen, enum key *out)
{
    for (int k = 0; k < NR_KEYS; k++)
        if (strlen(key_names[k]) == klen && strncmp(tok, key_names[k], klen) == 0) {
            *out = (enum key)k;
            return 0;
        }
    return vs_fail(EINVAL, "--nic %s: '%.*s' is not a NIC field (tap, mac, bridge, ip, vlan, "
                   "rate, announce-initial, announce-max, announce-rounds, announce-step)",
                   spec, (int)klen, tok);
}

/* One KEY=VALUE token of length len at tok; seen[] catches a field given twice. */
static int parse_token(struct vs_net_spec *s, const char *spec, const char *tok, size_t len,
                       bool seen[NR_KEYS])
{
    const char *eq = memchr(tok, '=', len);
    if (!eq || eq == tok)
        return vs_fail(EINVAL, "--nic %s: '%.*s' is not KEY=VALUE", spec, (int)len, tok);
    enum key k = K_TAP;
    int rc = find_key(spec, tok, (size_t)(eq - tok), &k);
    if (rc)
        return rc;
    if (seen[k])
        return vs_fail(EINVAL, "--nic %s: %s is given twice", spec, key_names[k]);
    seen[k] = true;
    char v[MAX_TOKEN];
    size_t vlen = len - (size_t)(eq + 1 - tok);
    if (vlen >= sizeof(v))
        return bad(spec, key_names[k], "...", "is too long");
    memcpy(v, eq + 1, vlen);
    v[vlen] = '\0';
    return apply(s, spec, k, v);
}

int vs_net_spec_parse(const char *spec, struct vs_net_spec *out)
{
    struct vs_net_spec s = {
        .announce = { VS_NET_ANNOUNCE_INITIAL_MS, VS_NET_ANNOUNCE_MAX_MS,
                      VS_NET_ANNOUNCE_ROUNDS, VS_NET_ANNOUNCE_STEP_MS },
    };
    bool seen[NR_KEYS] = { false };
    for (const char *p = spec; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int rc = parse_token(&s, spec, p, len, seen);
        if (rc)
            return rc;
        p += len + (comma ? 1 : 0);
        if (comma && !*p)
            return vs_fail(EINVAL, "--nic %s: ends with ','", spec);
    }
    if (!seen[K_TAP])
        return vs_fail(EINVAL, "--nic %s: tap=NAME is missing (the TAP device the NIC uses)",
                       spec);
    if (!seen[K_MAC])
        return vs_fail(EINVAL, "--nic %s: mac=MAC is missing (the guest's address, e.g. "
                       "52:54:00:12:34:56; it stays the same when the VM moves)", spec);

    *out = s;
    return 0;
}
