#include "net_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define UDP_PORT 7777
#define DRAIN_MS 300                    /* listening on after the stop, for late replies */

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* In the child: into netns (or _exit), SIGTERM sets `stopping`, dies with the test. */
static void child_enter(const char *netns)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, on_term);
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "probe: cannot enter network namespace %s: %s\n", netns, strerror(errno));
        _exit(2);
    }
    close(fd);
}

static pid_t fork_child(struct probe *p)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        close(fds[0]);
        p->fd = fds[1];
        return 0;
    }
    close(fds[1]);
    p->fd = fds[0];
    return p->pid;
}

static void child_finish(struct probe *p, const void *result, size_t len)
{
    if (write(p->fd, result, len) != (ssize_t)len)
        _exit(3);
    _exit(0);
}

/* ---- The prober ---- */

struct prober {
    int icmp, udp;
    struct sockaddr_in to;
    uint16_t id;
    uint8_t ping_seen[NET_PROBE_MAX], udp_seen[NET_PROBE_MAX];
    double reply_at[4 * NET_PROBE_MAX];
    uint32_t nr_replies;
    double start, last_reply;
    struct probe_result r;
    volatile uint32_t *live;
};

static uint16_t checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void send_probes(struct prober *pr, uint32_t n)
{
    uint8_t icmp[16] = { 8, 0, 0, 0, (uint8_t)(pr->id >> 8), (uint8_t)pr->id,
                         (uint8_t)(n >> 8), (uint8_t)n, 'v', 'm', 's', 'h', 'i', 'f', 't', 0 };
    uint16_t sum = checksum(icmp, sizeof(icmp));
    icmp[2] = (uint8_t)(sum >> 8), icmp[3] = (uint8_t)sum;
    if (sendto(pr->icmp, icmp, sizeof(icmp), 0, (struct sockaddr *)&pr->to, sizeof(pr->to)) > 0)
        pr->r.ping_sent++;
    uint32_t seq = htonl(n);
    if (send(pr->udp, &seq, sizeof(seq), 0) > 0)
        pr->r.udp_sent++;
}

static void note_reply(struct prober *pr, uint8_t *seen, uint32_t n, uint32_t *replied,
                       uint32_t *dups)
{
    if (n >= NET_PROBE_MAX)
        return;
    if (seen[n]++)
        (*dups)++;
    else
        (*replied)++;
    double now = mono_ms();
    if (pr->last_reply > 0 && now - pr->last_reply > pr->r.max_gap_ms) {
        pr->r.max_gap_ms = now - pr->last_reply;
        pr->r.max_gap_at_ms = pr->last_reply - pr->start;
    }
    pr->last_reply = now;
    if (pr->nr_replies < sizeof(pr->reply_at) / sizeof(pr->reply_at[0]))
        pr->reply_at[pr->nr_replies++] = now;
    (*pr->live)++;
}

static void take_replies(struct prober *pr)
{
    uint8_t buf[256];
    ssize_t len;
    while ((len = recv(pr->icmp, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
        size_t ihl = (size_t)(buf[0] & 15) * 4;   /* a raw ICMP socket gives the IP header */
        if ((size_t)len >= ihl + 8 && buf[ihl] == 0 &&
            (buf[ihl + 4] << 8 | buf[ihl + 5]) == pr->id)
            note_reply(pr, pr->ping_seen, (uint32_t)(buf[ihl + 6] << 8 | buf[ihl + 7]),
                       &pr->r.ping_replied, &pr->r.ping_dups);
    }
    uint32_t seq;
    while ((len = recv(pr->udp, &seq, sizeof(seq), MSG_DONTWAIT)) > 0)
        if (len == sizeof(seq))
            note_reply(pr, pr->udp_seen, ntohl(seq), &pr->r.udp_replied, &pr->r.udp_dups);
}

/* Numbers in [first answered, sent) without an answer. */
static uint32_t unanswered(const uint8_t *seen, uint32_t sent)
{
    uint32_t first = 0, lost = 0;
    while (first < sent && !seen[first])
        first++;
    for (uint32_t i = first; i < sent; i++)
        lost += !seen[i];
    return lost;
}

static void prober_run(struct prober *pr, unsigned interval_ms)
{
    double next = mono_ms(), stop_at = 0;
    pr->start = next;
    uint32_t n = 0;
    for (;;) {
        double now = mono_ms();
        if (stopping && !stop_at)
            stop_at = now;
        if (stop_at && now - stop_at > DRAIN_MS)
            break;
        if (!stop_at && now >= next && n < NET_PROBE_MAX) {
            send_probes(pr, n++);
            next += interval_ms;
        }
        struct pollfd fds[2] = { { .fd = pr->icmp, .events = POLLIN },
                                 { .fd = pr->udp, .events = POLLIN } };
        int wait = stop_at ? 10 : (int)(next - now > 0 ? next - now : 0) + 1;
        if (poll(fds, 2, wait) > 0)
            take_replies(pr);
    }
    for (uint32_t i = 0; i < pr->nr_replies; i++)
        pr->r.replies_last_second += pr->reply_at[i] >= stop_at - 1000 && pr->reply_at[i] <= stop_at;
    pr->r.ping_lost = unanswered(pr->ping_seen, n);
    pr->r.udp_lost = unanswered(pr->udp_seen, n);
}

void probe_start(struct probe *p, const char *netns, const char *target, unsigned interval_ms)
{
    volatile uint32_t *live = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                   -1, 0);
    assert_true(live != MAP_FAILED);
    *live = 0;
    if (fork_child(p)) {
        p->live = live;
        return;
    }
    child_enter(netns);
    struct prober *pr = calloc(1, sizeof(*pr));
    if (!pr)
        _exit(4);
    pr->live = live;
    pr->id = (uint16_t)getpid();
    pr->to.sin_family = AF_INET;
    inet_pton(AF_INET, target, &pr->to.sin_addr);
    pr->icmp = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    pr->udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in u = pr->to;
    u.sin_port = htons(UDP_PORT);
    if (pr->icmp < 0 || pr->udp < 0 || connect(pr->udp, (struct sockaddr *)&u, sizeof(u)) < 0) {
        fprintf(stderr, "probe: sockets: %s\n", strerror(errno));
        _exit(5);
    }
    prober_run(pr, interval_ms);
    child_finish(p, &pr->r, sizeof(pr->r));
}

uint32_t probe_replies(const struct probe *p)
{
    return p->live ? *p->live : 0;
}

static void stop_child(struct probe *p, void *out, size_t len)
{
    assert_true(p->pid > 0);
    kill(p->pid, SIGTERM);
    ssize_t got = read(p->fd, out, len);
    int st = 0;
    waitpid(p->pid, &st, 0);
    close(p->fd);
    p->pid = 0;
    if (got != (ssize_t)len || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("a network probe failed (status 0x%x, %zd bytes of result)", st, got);
}

void probe_stop(struct probe *p, struct probe_result *out)
{
    stop_child(p, out, sizeof(*out));
    if (p->live)
        munmap((void *)p->live, 4096);
    p->live = NULL;
}

void probe_kill(struct probe *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        close(p->fd);
    }
    p->pid = 0;
}

/* ---- The capture ---- */

static void capture_frame(struct capture_result *r, const uint8_t *f, size_t len,
                          const uint8_t mac[6])
{
    r->frames++;
    if (len < 42 || memcmp(f + 6, mac, 6) != 0)
        return;
    uint16_t type = (uint16_t)(f[12] << 8 | f[13]);
    if (type == ETHERTYPE_REVARP)
        r->rarp++;
    else if (type == ETHERTYPE_ARP && f[21] == 1 && memcmp(f + 28, f + 38, 4) == 0)
        r->garp++;   /* a request whose sender and target address are the same */
}

void capture_start(struct probe *p, const char *netns, const char *ifname, const uint8_t mac[6])
{
    p->live = NULL;
    if (fork_child(p))
        return;
    child_enter(netns);
    struct capture_result r = { 0 };
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                               .sll_ifindex = (int)if_nametoindex(ifname) };
    if (s < 0 || !sll.sll_ifindex || bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        fprintf(stderr, "capture: %s: %s\n", ifname, strerror(errno));
        _exit(5);
    }
    for (int last = 0; !last;) {
        last = stopping;   /* once stopped: what is queued still counts */
        struct pollfd pfd = { .fd = s, .events = POLLIN };
        if (!last && poll(&pfd, 1, 50) <= 0)
            continue;
        uint8_t f[2048];
        struct sockaddr_ll from;
        socklen_t fl = sizeof(from);
        ssize_t len;
        while ((len = recvfrom(s, f, sizeof(f), MSG_DONTWAIT, (struct sockaddr *)&from, &fl)) > 0) {
            if (from.sll_pkttype != PACKET_OUTGOING)   /* what arrives on it */
                capture_frame(&r, f, (size_t)len, mac);
            fl = sizeof(from);
        }
    }
    child_finish(p, &r, sizeof(r));
}

void capture_stop(struct probe *p, struct capture_result *out)
{
    stop_child(p, out, sizeof(*out));
}

/* ---- The tagged ping ---- */

struct tagged_result {
    uint32_t replies, wrong_vlan;
};

static size_t echo_frame(uint8_t *f, const struct tagged_ping *t, const uint8_t src_mac[6],
                         uint16_t seq)
{
    size_t n = 12;
    memcpy(f, t->dst_mac, 6);
    memcpy(f + 6, src_mac, 6);
    if (t->vid) {
        f[n++] = 0x81, f[n++] = 0x00, f[n++] = (uint8_t)(t->vid >> 8), f[n++] = (uint8_t)t->vid;
    }
    f[n++] = 0x08, f[n++] = 0x00;
    uint8_t *ip = f + n;
    memset(ip, 0, 20);
    ip[0] = 0x45, ip[3] = 20 + 16, ip[8] = 64, ip[9] = 1;
    inet_pton(AF_INET, t->src_ip, ip + 12);
    inet_pton(AF_INET, t->dst_ip, ip + 16);
    uint16_t sum = checksum(ip, 20);
    ip[10] = (uint8_t)(sum >> 8), ip[11] = (uint8_t)sum;
    uint8_t *icmp = ip + 20;
    memset(icmp, 0, 16);
    icmp[0] = 8, icmp[4] = 0x7a, icmp[5] = 0x9d, icmp[6] = (uint8_t)(seq >> 8), icmp[7] = (uint8_t)seq;
    sum = checksum(icmp, 16);
    icmp[2] = (uint8_t)(sum >> 8), icmp[3] = (uint8_t)sum;
    return n + 36 < 60 ? 60 : n + 36;
}

/* A frame the kernel gave us: an echo reply from dst_ip, and the VLAN it came in (from the
 * packet's auxiliary data, or a tag still in the data). */
static void tagged_reply(struct tagged_result *r, const struct tagged_ping *t, const uint8_t *f,
                         size_t len, int aux_vid)
{
    size_t n = 12;
    int vid = aux_vid;
    if (len >= 18 && f[12] == 0x81 && f[13] == 0x00) {
        vid = (f[14] << 8 | f[15]) & 0xfff;
        n = 16;
    }
    uint8_t want[4];
    inet_pton(AF_INET, t->dst_ip, want);
    if (len < n + 2 + 28 || f[n] != 0x08 || f[n + 1] != 0x00)
        return;
    const uint8_t *ip = f + n + 2, *icmp = ip + (ip[0] & 15) * 4;
    if (ip[9] != 1 || memcmp(ip + 12, want, 4) || icmp + 8 > f + len || icmp[0] != 0 ||
        icmp[4] != 0x7a || icmp[5] != 0x9d)
        return;
    if (vid == (int)t->vid)
        r->replies++;
    else
        r->wrong_vlan++;
}

static void tagged_receive(int s, struct tagged_result *r, const struct tagged_ping *t, int wait_ms)
{
    struct pollfd pfd = { .fd = s, .events = POLLIN };
    while (poll(&pfd, 1, wait_ms) > 0) {
        uint8_t f[2048];
        union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))]; } c;
        struct sockaddr_ll from;
        struct iovec iov = { f, sizeof(f) };
        struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
                            .msg_iovlen = 1, .msg_control = &c, .msg_controllen = sizeof(c) };
        ssize_t len = recvmsg(s, &m, MSG_DONTWAIT);
        if (len <= 0 || from.sll_pkttype == PACKET_OUTGOING)
            continue;
        int vid = 0;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h)) {
            struct tpacket_auxdata aux;
            if (h->cmsg_level != SOL_PACKET || h->cmsg_type != PACKET_AUXDATA)
                continue;
            memcpy(&aux, CMSG_DATA(h), sizeof(aux));
            if (aux.tp_status & TP_STATUS_VLAN_VALID)
                vid = aux.tp_vlan_tci & 0xfff;
        }
        tagged_reply(r, t, f, (size_t)len, vid);
        wait_ms = 0;
    }
}

uint32_t tagged_ping(const struct tagged_ping *t, unsigned count, unsigned interval_ms,
                     uint32_t *wrong_vlan)
{
    struct probe p = { 0 };
    if (!fork_child(&p)) {
        child_enter(t->netns);
        struct tagged_result r = { 0 };
        int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)), one = 1;
        struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                                   .sll_ifindex = (int)if_nametoindex(t->ifname) };
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->ifname);
        if (s < 0 || bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0 ||
            setsockopt(s, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0 ||
            ioctl(s, SIOCGIFHWADDR, &ifr) < 0)
            _exit(5);
        for (unsigned i = 0; i < count; i++) {
            uint8_t f[64];
            size_t len = echo_frame(f, t, (const uint8_t *)ifr.ifr_hwaddr.sa_data, (uint16_t)i);
            if (send(s, f, len, 0) < 0)
                _exit(6);
            tagged_receive(s, &r, t, (int)interval_ms);
        }
        tagged_receive(s, &r, t, 1000);
        child_finish(&p, &r, sizeof(r));
    }
    struct tagged_result r;
    ssize_t got = read(p.fd, &r, sizeof(r));
    int st = 0;
    waitpid(p.pid, &st, 0);
    close(p.fd);
    if (got != (ssize_t)sizeof(r) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the tagged ping in %s failed (status 0x%x)", t->netns, st);
    if (wrong_vlan)
        *wrong_vlan = r.wrong_vlan;
    return r.replies;
}

/* ---- The UDP blast ---- */

#define BLAST_WARMUP_MS 1000            /* the bucket's burst and the queues fill meanwhile */

/* When the kernel received a datagram (SO_TIMESTAMPNS, wall clock), in ms; -1 if unknown. */
static double arrival_ms(struct msghdr *m)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(h), sizeof(ts));
            return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
        }
    return -1;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Echoes, placed in the window by the kernel's arrival time: a blaster the host is slow to
 * schedule still counts each echo when it came. [start, end) are wall-clock ms. */
static void blast_receive(int s, struct blast_result *r, double start, double end_send,
                          int wait_ms)
{
    struct pollfd pfd = { .fd = s, .events = POLLIN };
    char buf[2048];
    union { struct cmsghdr h; char c[CMSG_SPACE(sizeof(struct timespec))]; } c;
    while (poll(&pfd, 1, wait_ms) > 0) {
        struct iovec iov = { buf, sizeof(buf) };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &c,
                            .msg_controllen = sizeof(c) };
        while (recvmsg(s, &m, MSG_DONTWAIT) > 0) {
            double at = arrival_ms(&m);
            r->echoed++;
            r->echoed_in_window += at >= start + BLAST_WARMUP_MS && at <= end_send;
            m.msg_controllen = sizeof(c);
        }
        wait_ms = 0;
    }
}

void udp_blast_start(struct probe *p, const char *netns, const char *target, unsigned size,
                     uint64_t bytes_per_s, double seconds)
{
    p->live = NULL;
    if (fork_child(p))
        return;
    child_enter(netns);
    struct blast_result r = { 0 };
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(UDP_PORT) };
    inet_pton(AF_INET, target, &to.sin_addr);
    int s = socket(AF_INET, SOCK_DGRAM, 0), one = 1, rcvbuf = 4 << 20;
    if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof(to)) < 0 || size > 1472 ||
        setsockopt(s, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
        _exit(5);
    setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));   /* root: no cap */
    char data[1472];
    memset(data, 0x5a, sizeof(data));
    double start = wall_ms(), end = start + seconds * 1000, interval = size * 1000.0 / bytes_per_s;
    for (double next = start; next < end; next += interval) {
        double now;
        while ((now = wall_ms()) < next)
            blast_receive(s, &r, start, end, (int)(next - now) + 1);
        if (send(s, data, size, MSG_DONTWAIT) > 0)
            r.sent++;
    }
    blast_receive(s, &r, start, end, DRAIN_MS);
    r.window_s = (end - start - BLAST_WARMUP_MS) / 1000;
    child_finish(p, &r, sizeof(r));
}

void udp_blast_wait(struct probe *p, struct blast_result *out)
{
    assert_true(p->pid > 0);
    ssize_t got = read(p->fd, out, sizeof(*out));
    int st = 0;
    waitpid(p->pid, &st, 0);
    close(p->fd);
    p->pid = 0;
    if (got != (ssize_t)sizeof(*out) || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("a UDP blast failed (status 0x%x)", st);
}
