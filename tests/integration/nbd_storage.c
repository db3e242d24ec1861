#include "nbd_storage.h"
#include "disk_probe.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct nbd_storage nbd;

/* The storage host with a link to each of A and B. */
static void storage_create(void)
{
    int id = (int)getpid();
    snprintf(nbd.ns, sizeof(nbd.ns), "vs-s-%d", id);
    harness_sh("ip netns add %s && ip -n %s link set lo up", nbd.ns, nbd.ns);
    const char *host[2] = { nbd.hosts.a, nbd.hosts.b };
    for (int i = 0; i < 2; i++) {
        harness_sh("ip link add vss%c%d type veth peer name vsh%c%d", 'a' + i, id, 'a' + i, id);
        harness_sh("ip link set vss%c%d netns %s && ip link set vsh%c%d netns %s", 'a' + i, id,
               nbd.ns, 'a' + i, id, host[i]);
        harness_sh("ip -n %s addr add 198.18.%d.1/24 dev vss%c%d && ip -n %s link set vss%c%d up",
               nbd.ns, 10 + i, 'a' + i, id, nbd.ns, 'a' + i, id);
        harness_sh("ip -n %s addr add 198.18.%d.2/24 dev vsh%c%d && ip -n %s link set vsh%c%d up",
               host[i], 10 + i, 'a' + i, id, host[i], 'a' + i, id);
    }
}

bool nbd_port_listening(const char *port)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip netns exec %s ss -Hltn 'sport = :%s' | grep -q LISTEN",
             nbd.ns, port);
    return system(cmd) == 0;
}

static bool server_listening(void)
{
    return nbd_port_listening(NBD_PORT);
}

void nbd_server_start(void)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/qemu-nbd.log", nbd.dir);
    nbd.server = harness_spawn("/usr/bin/qemu-nbd", nbd.ns,
                           ARGS("-f", "raw", "-x", "vm", "-t", "-e", "8", "-b", "0.0.0.0", "-p",
                                NBD_PORT, "--cache=writeback", nbd.disk), log, NULL);
    for (int i = 0; i < 100 && !server_listening(); i++)
        usleep(50000);
    if (!server_listening())
        fail_msg("qemu-nbd does not listen in %s (install qemu-utils); see %s", nbd.ns, log);
}

int nbd_group_setup(void **state)
{
    (void)state;
    test_hosts_create(&nbd.hosts, NULL);
    storage_create();
    harness_temp_dir(nbd.dir, sizeof(nbd.dir));
    snprintf(nbd.disk, sizeof(nbd.disk), "%s/disk.img", nbd.dir);
    int fd = open(nbd.disk, O_CREAT | O_RDWR | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, NBD_DISK_BYTES), 0);
    close(fd);
    nbd_server_start();
    return 0;
}

int nbd_group_teardown(void **state)
{
    (void)state;
    if (nbd.server > 0) {
        kill(nbd.server, SIGTERM);
        waitpid(nbd.server, NULL, 0);
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; rm -rf %s", nbd.ns, nbd.dir);
    if (system(cmd) != 0)
        print_message("could not remove %s or %s\n", nbd.ns, nbd.dir);
    test_hosts_destroy(&nbd.hosts);
    return 0;
}

uint8_t *nbd_read_image(const char *path)
{
    return file_read_all(path, NBD_DISK_BYTES);
}

const char *nbd_append_blocks(void)
{
    static char a[32];
    snprintf(a, sizeof(a), "disk_blocks=%d", NBD_BLOCKS);
    return a;
}