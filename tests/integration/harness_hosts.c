/* Test hosts: network namespaces joined by a veth (198.18.0.0/24), and the shell helper
 * that builds them and the tests' other networks. */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void harness_sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

void test_hosts_create(struct test_hosts *h, const char *rate)
{
    snprintf(h->a, sizeof(h->a), "vs-a-%d", (int)getpid());
    snprintf(h->b, sizeof(h->b), "vs-b-%d", (int)getpid());
    harness_sh("ip netns add %s && ip netns add %s", h->a, h->b);
    harness_sh("ip link add vsa%d type veth peer name vsb%d", (int)getpid(), (int)getpid());
    harness_sh("ip link set vsa%d netns %s && ip link set vsb%d netns %s", (int)getpid(), h->a,
       (int)getpid(), h->b);
    harness_sh("ip -n %s addr add 198.18.0.1/24 dev vsa%d && ip -n %s link set vsa%d up && "
       "ip -n %s link set lo up", h->a, (int)getpid(), h->a, (int)getpid(), h->a);
    harness_sh("ip -n %s addr add 198.18.0.2/24 dev vsb%d && ip -n %s link set vsb%d up && "
       "ip -n %s link set lo up", h->b, (int)getpid(), h->b, (int)getpid(), h->b);
    if (rate)
        harness_sh("ip netns exec %s tc qdisc add dev vsa%d root tbf rate %s burst 1mb latency 50ms",
           h->a, (int)getpid(), rate);
}

void test_hosts_link(struct test_hosts *h, bool up)
{
    harness_sh("ip -n %s link set vsa%d %s", h->a, (int)getpid(), up ? "up" : "down");
}

void test_hosts_destroy(struct test_hosts *h)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
             h->a, h->b);
    if (system(cmd) != 0)
        print_message("could not remove namespaces %s %s\n", h->a, h->b);
}

struct test_hosts test_group_hosts;

int test_hosts_group_setup(void **state)
{
    (void)state;
    test_hosts_create(&test_group_hosts, NULL);
    return 0;
}

int test_hosts_group_teardown(void **state)
{
    (void)state;
    test_hosts_destroy(&test_group_hosts);
    return 0;
}

void harness_bridge_on_segment(const char *ns, const char *br, const char *veth,
                               const char *seg_ns, const char *seg_br)
{
    harness_sh("ip -n %s link add %s type bridge && ip -n %s link set %s up", ns, br, ns, br);
    harness_sh("ip link add %su type veth peer name %ss", veth, veth);
    harness_sh("ip link set %su netns %s && ip link set %ss netns %s", veth, ns, veth, seg_ns);
    harness_sh("ip -n %s link set %su master %s up && ip -n %s link set %ss master %s up", ns,
               veth, br, seg_ns, veth, seg_br);
}
