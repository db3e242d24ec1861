/* The NIC of a random device trial (plan device RD_NIC): the VM runs the guest's `net`
 * workload (it answers ARP, ICMP echo and UDP echo at its address) with a virtio-net NIC on
 * a TAP of a Linux bridge on each side, and a client pings it and sends it UDP echoes
 * (net_probe.c).
 *
 * The network, per trial: namespace H holds both "hosts" (the trial process enters it, so
 * the source, the receiver and the proxy all run there on H's loopback), with bridges brA
 * (the source's) and brB (the destination's) joined by a veth pair (the segment between
 * the hosts); namespace C is the client, on a veth into brA, at 198.18.200.100/24. The VM is
 * 198.18.200.10: on a TAP of brA at the source, on a TAP of brB at the destination (the
 * receiver's own --nic), so the client reaches it at B only through the segment, once the
 * bridges learned the move (the destination's announcements). Both namespaces go away with
 * the trial (the campaign deletes them too, should the trial die before its tear-down).
 *
 * Checks: before the migration the VM answers at the source (the trial waits for it); after
 * it, the VM answers ping and UDP echo where it runs (at least 3 of each within 30 s). */
#include "random_internal.h"
#include "net_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VM_IP "198.18.200.10"
#define CLIENT_IP "198.18.200.100"
#define VM_MAC "52:54:00:5e:c8:0a"

static void record_netns(const char *pid_file, const char *name)
{
    FILE *f = fopen(pid_file, "a");
    if (f) {
        fprintf(f, "netns %s\n", name);
        fclose(f);
    }
}

static void enter_netns(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
        fail_msg("cannot enter network namespace %s: %s", name, strerror(errno));
    close(fd);
}

void rt_nic_setup(struct rt_ctx *c, const char *pid_file)
{
    int id = (int)getpid();
    snprintf(c->nic_host_ns, sizeof(c->nic_host_ns), "vsf%d-h", id);
    snprintf(c->nic_client_ns, sizeof(c->nic_client_ns), "vsf%d-c", id);
    record_netns(pid_file, c->nic_host_ns);
    record_netns(pid_file, c->nic_client_ns);
    const char *h = c->nic_host_ns, *cl = c->nic_client_ns;
    harness_sh("ip netns add %s && ip netns add %s", h, cl);
    harness_sh("ip -n %s link set lo up && ip -n %s link set lo up", h, cl);
    harness_sh("ip -n %s link add brA type bridge && ip -n %s link set brA up", h, h);
    harness_sh("ip -n %s link add brB type bridge && ip -n %s link set brB up", h, h);
    harness_sh("ip -n %s link add segA type veth peer name segB && ip -n %s link set segA master brA up "
       "&& ip -n %s link set segB master brB up", h, h, h);
    harness_sh("ip link add vf%dc type veth peer name vf%ds && ip link set vf%dc netns %s && "
       "ip link set vf%ds netns %s", id, id, id, cl, id, h);
    harness_sh("ip -n %s addr add " CLIENT_IP "/24 dev vf%dc && ip -n %s link set vf%dc up && "
       "ip -n %s link set vf%ds master brA up", cl, id, cl, id, h, id);
    snprintf(c->nic_src_spec, sizeof(c->nic_src_spec), "tap=vfa%d,mac=" VM_MAC ",bridge=brA", id);
    snprintf(c->nic_dst_spec, sizeof(c->nic_dst_spec), "tap=vfb%d,mac=" VM_MAC ",bridge=brB", id);
    enter_netns(h);
}

const char *rt_nic_append(void)
{
    return "ip=" VM_IP;
}

/* Probe the VM from the client until it answered `want` pings and UDP echoes, for at most
 * timeout_s; the replies counted. */
static void probe_for(struct rt_ctx *c, unsigned want, double timeout_s, struct probe_result *out)
{
    struct probe p = { 0 };
    probe_start(&p, c->nic_client_ns, VM_IP, 20);
    double deadline = now_s() + timeout_s;
    while (probe_replies(&p) < 2 * want && now_s() < deadline)
        usleep(50000);
    usleep(200000);
    probe_stop(&p, out);
}

void rt_nic_wait_ready(struct rt_ctx *c)
{
    struct probe_result r;
    probe_for(c, 3, 60, &r);
    if (r.ping_replied < 3 || r.udp_replied < 3)
        fail_msg("the VM did not answer at the source within 60 s: %u of %u pings, %u of %u "
                 "UDP echoes", r.ping_replied, r.ping_sent, r.udp_replied, r.udp_sent);
}

bool rt_nic_judge(struct rt_ctx *c, char *why, size_t n)
{
    why[0] = '\0';
    if (c->p->device != RD_NIC)
        return true;
    struct probe_result r;
    probe_for(c, 3, 30, &r);
    print_message("the VM answered %u of %u pings and %u of %u UDP echoes where it runs\n",
                  r.ping_replied, r.ping_sent, r.udp_replied, r.udp_sent);
    if (r.ping_replied >= 3 && r.udp_replied >= 3)
        return true;
    snprintf(why, n, "the VM does not answer where it runs: %u of %u pings, %u of %u UDP "
             "echoes in 30 s", r.ping_replied, r.ping_sent, r.udp_replied, r.udp_sent);
    return false;
}

void rt_nic_teardown(struct rt_ctx *c)
{
    char cmd[160];
    if (!c->nic_host_ns[0])
        return;
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; true",
             c->nic_host_ns, c->nic_client_ns);
    if (system(cmd) != 0)
        print_message("could not remove the namespaces %s and %s\n", c->nic_host_ns,
                      c->nic_client_ns);
}
