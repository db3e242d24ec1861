/* Integration: a VM whose disk is an NBD export (the shared storage of the seeds' SAN).
 * Three network namespaces: the storage host, where Debian's qemu-nbd serves a raw file,
 * and hosts A and B (test_hosts: 198.18.0.1 and .2), each with its own link to the
 * storage host (198.18.10.0/24 and 198.18.11.0/24), so each reaches the export by its own
 * URI, as hosts that mount one SAN differently.
 *  - The VM runs the guest's disk workload on A, then migrates to B (and back to A) while
 *    it writes; the guest, which checks every block still holds the last pass before
 *    overwriting it, finds no error after the moves.
 *  - The export, read back through the server (qemu-img over NBD from host B) after the
 *    VM is paused, holds the guest's pattern block by block, and the same bytes as the
 *    file the server serves.
 *  - Never two writers: a sampler in the storage host lists the server's established NBD
 *    connections every 10 ms for the whole of each move: the first sample has the source
 *    only and the last the destination only; the destination's check of the export when
 *    it is built is a connection that is gone before the move. On the wire (tcpdump on
 *    each host, as packets leave it: one clock, in the sender's context), the source's
 *    connection ends (FIN, sent once every write it made was answered) before the
 *    destination's writing connection begins (SYN). The samples alone cannot show that:
 *    `ss` walks the server's sockets one by one, and on a loaded host a walk preempted
 *    halfway, or a FIN not yet processed by the server's host, shows both connections in
 *    one sample. And the source's disk is closed after the grant with its write count
 *    frozen.
 *  - The storage server killed and started again under a writing guest: the disk connects
 *    again (reconnect=) and the guest finds no error. */
#include "disk_probe.h"
#include "harness.h"
#include "nbd_storage.h"
#include "vmshift/disk_format.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEED 1
#define WAIT_S 180









/* ---- The server's connections ---- */

struct conns {
    unsigned a, b;   /* established NBD connections from host A, from host B */
};

static struct conns count_conns(const char *text)
{
    struct conns c = { 0, 0 };
    for (const char *p = text; (p = strstr(p, "198.18.1")); p++) {
        if (!strncmp(p, NBD_PEER_A ":", strlen(NBD_PEER_A) + 1))
            c.a++;
        else if (!strncmp(p, NBD_PEER_B ":", strlen(NBD_PEER_B) + 1))
            c.b++;
    }
    return c;
}

static struct conns server_conns(void)
{
    char cmd[200], out[4096];
    snprintf(cmd, sizeof(cmd), "ip netns exec %s ss -Htn state established 'sport = :%s'",
             nbd.ns, NBD_PORT);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    return count_conns(out);
}

struct sampler {
    pid_t pid;
    char path[128], stop[128];
};

/* Every 10 ms: a line "T" and then the server's established connections, until the
 * file `stop` exists (each sample complete). */
static void sampler_start(struct sampler *s)
{
    snprintf(s->path, sizeof(s->path), "%s/conns.log", nbd.dir);
    snprintf(s->stop, sizeof(s->stop), "%s/conns.stop", nbd.dir);
    unlink(s->stop);
    char script[400];
    snprintf(script, sizeof(script),
             "while [ ! -e %s ]; do echo T; ss -Htn state established 'sport = :%s'; "
             "sleep 0.01; done > %s", s->stop, NBD_PORT, s->path);
    char err[128];
    snprintf(err, sizeof(err), "%s/sampler.err", nbd.dir);
    s->pid = harness_spawn("/bin/sh", nbd.ns, ARGS("-c", script), err, NULL);
    usleep(100000);
}

/* The peer (ADDRESS:PORT) of the one connection from `peer` in a sample, "" if none. */
static void conn_of(const char *sample, const char *peer, char *out, size_t len)
{
    out[0] = '\0';
    char key[32];
    snprintf(key, sizeof(key), "%s:", peer);
    const char *p = strstr(sample, key);
    if (p)
        snprintf(out, len, "%.*s", (int)strcspn(p, " \n"), p);
}

/* Stop it and check its samples: the first has the source's connection only, the last
 * the destination's writing connection only (a sample may show another one of the
 * destination's, its check of the export in the NBD handshake, which cannot write, made
 * when it built the VM). Gives the two connections ("ADDRESS:PORT" of each client). */
static void sampler_check(struct sampler *s, char from, char to, char *src_conn,
                          char *writer, size_t len)
{
    int fd = open(s->stop, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    waitpid(s->pid, NULL, 0);
    FILE *f = fopen(s->path, "r");
    assert_non_null(f);
    static char text[1 << 22];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *src_peer = from == 'a' ? NBD_PEER_A : NBD_PEER_B;
    const char *dst_peer = to == 'a' ? NBD_PEER_A : NBD_PEER_B;
    char *samples[4096];
    unsigned count = 0;
    for (char *p = strtok(text, "T"); p && count < 4096; p = strtok(NULL, "T"))
        samples[count++] = p;
    assert_true(count >= 3);
    char c[64];
    conn_of(samples[count - 1], dst_peer, writer, len);
    conn_of(samples[count - 1], src_peer, c, sizeof(c));
    if (!writer[0] || c[0])
        fail_msg("the last sample: destination '%s', source '%s'", writer, c);
    conn_of(samples[0], src_peer, src_conn, len);
    if (!src_conn[0] || strstr(samples[0], writer))
        fail_msg("the first sample: source '%s'; the destination's connection %s", src_conn,
                 strstr(samples[0], writer) ? "there" : "not there");
    unsigned both = 0, none = 0, probe = 0;
    for (unsigned i = 0; i < count; i++) {
        char d[64];
        conn_of(samples[i], src_peer, c, sizeof(c));
        conn_of(samples[i], dst_peer, d, sizeof(d));
        bool has_writer = strstr(samples[i], writer) != NULL;
        both += c[0] && has_writer;
        none += !c[0] && !has_writer;
        probe += d[0] && !has_writer;
    }
    print_message("    %u samples of the server's connections during the move: %u with neither "
                  "host's (the hand-over), %u with the destination's handshake-only check, %u "
                  "with both (the order is checked on the wire)\n", count, none, probe, both);
}

/* ---- The connections' ends on the wire ---- */

struct capture {
    pid_t pid;
    char path[128], err[128];
};

/* tcpdump in host namespace `ns`: the SYNs and FINs its NBD client (`peer`) sends, with
 * the time each left the host. Returns once tcpdump listens. */
static void capture_start(struct capture *c, const char *ns, const char *peer)
{
    snprintf(c->path, sizeof(c->path), "%s/wire-%s.log", nbd.dir, peer);
    snprintf(c->err, sizeof(c->err), "%s/wire-%s.err", nbd.dir, peer);
    char script[400];
    snprintf(script, sizeof(script), "exec /usr/bin/tcpdump -i any -nn -tt -l -U "
             "--immediate-mode 'src host %s and tcp dst port %s and "
             "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0' > %s", peer, NBD_PORT, c->path);
    c->pid = harness_spawn("/bin/sh", ns, ARGS("-c", script), c->err, NULL);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(c->err, "r");
        char line[256];
        bool ready = false;
        while (f && !ready && fgets(line, sizeof(line), f))
            ready = strstr(line, "listening on") != NULL;
        if (f)
            fclose(f);
        if (ready)
            return;
        usleep(50000);
    }
    fail_msg("tcpdump does not listen in %s (install tcpdump); see %s", ns, c->err);
}

/* Stop it; the time (s) its client's connection `conn` ("ADDRESS:PORT") sent `flag`
 * ('S' or 'F'), 0 if it did not. */
static double capture_time(struct capture *c, const char *conn, char flag)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);   /* tcpdump writes what it holds and exits */
        waitpid(c->pid, NULL, 0);
        c->pid = 0;
    }
    char key[80];   /* tcpdump writes ADDRESS.PORT */
    snprintf(key, sizeof(key), "%s > ", conn);
    char *colon = strrchr(key, ':');
    assert_non_null(colon);
    *colon = '.';
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    char line[512];
    double t = 0;
    while (!t && fgets(line, sizeof(line), f)) {
        const char *flags = strstr(line, "Flags ["), *end = flags ? strchr(flags, ']') : NULL;
        if (strstr(line, key) && end && memchr(flags + 7, flag, (size_t)(end - flags - 7)))
            t = strtod(line, NULL);
    }
    fclose(f);
    return t;
}

/* The source's connection ended before the destination's writing one began. */
static void wire_order_check(struct capture *src, struct capture *dst, const char *src_conn,
                             const char *writer)
{
    double fin = capture_time(src, src_conn, 'F'), syn = capture_time(dst, writer, 'S');
    if (!fin || !syn)
        fail_msg("on the wire: no FIN from the source's %s (%.6f) or no SYN from the "
                 "destination's %s (%.6f); see %s and %s", src_conn, fin, writer, syn,
                 src->path, dst->path);
    if (fin >= syn)
        fail_msg("two writers: the destination's %s began (SYN at %.6f) before the source's "
                 "%s ended (FIN at %.6f)", writer, syn, src_conn, fin);
    print_message("    on the wire: the source's connection ended %.3f ms before the "
                  "destination's writing connection began\n", (syn - fin) * 1e3);
}

/* ---- The guest's disk workload ---- */


/* The image must hold the guest's passes gen then gen - 1, block by block, and nothing
 * past the workload's range. */
static void check_pattern(const uint8_t *img, uint64_t gen)
{
    bool older_seen = false;
    for (uint64_t b = 0; b < NBD_BLOCKS; b++) {
        uint64_t found;
        const uint64_t *w = (const uint64_t *)(img + b * VS_DISK_BLOCK_BYTES);
        int r = vs_disk_block_check(w, SEED, b, 0, &found);
        if (r != VS_DISK_OK)
            fail_msg("block %llu of the export: check result %d", (unsigned long long)b, r);
        if (found == gen && !older_seen)
            continue;
        if (found != gen - 1)
            fail_msg("block %llu holds pass %llu; the guest was writing pass %llu",
                     (unsigned long long)b, (unsigned long long)found, (unsigned long long)gen);
        older_seen = true;
    }
    for (size_t i = NBD_BLOCKS * VS_DISK_BLOCK_BYTES; i < NBD_DISK_BYTES; i++)
        if (img[i])
            fail_msg("byte %zu of the export, past the workload's range, is 0x%02x", i, img[i]);
}


/* Read the whole export through the server from host B; it must be the served file. */
static void check_export(uint64_t gen)
{
    char copy[128];
    snprintf(copy, sizeof(copy), "%s/export.raw", nbd.dir);
    unlink(copy);
    harness_sh("ip netns exec %s qemu-img convert -f raw -O raw '%s' %s", nbd.hosts.b, NBD_URI_B, copy);
    uint8_t *exported = nbd_read_image(copy), *served = nbd_read_image(nbd.disk);
    check_pattern(exported, gen);
    assert_memory_equal(exported, served, NBD_DISK_BYTES);
    free(exported);
    free(served);
    unlink(copy);
}

/* ---- The moves ---- */


/* Move the VM running in `src` (host `from`) to a receiver on the other host. */
static void move(struct vm_proc *src, struct vm_proc *dst, char from)
{
    char to_host = from == 'a' ? 'b' : 'a';
    const char *ns = to_host == 'a' ? nbd.hosts.a : nbd.hosts.b;
    const char *ip = to_host == 'a' ? "198.18.0.1" : "198.18.0.2";
    const char *spec = to_host == 'a' ? NBD_URI_A ",shared" : NBD_URI_B ",shared";
    disk_wait_passes(src, disk_read_counts(src).passes + 2, WAIT_S);
    uint64_t writes_before = disk_stat(src, "writes");   /* this host's, since it got the VM */
    assert_true(writes_before > 0);
    vm_receiver_start(dst, ip, ns, ARGS("--disk", spec));
    /* The destination checked the export when it was built, and hung up. */
    struct conns c = server_conns();
    if (c.a != (from == 'a') || c.b != (from == 'b'))
        fail_msg("before the move: %u connections from A, %u from B", c.a, c.b);

    struct capture wire_src, wire_dst;
    capture_start(&wire_src, from == 'a' ? nbd.hosts.a : nbd.hosts.b,
                  from == 'a' ? NBD_PEER_A : NBD_PEER_B);
    capture_start(&wire_dst, ns, to_host == 'a' ? NBD_PEER_A : NBD_PEER_B);
    struct sampler s;
    sampler_start(&s);
    char to[64];
    snprintf(to, sizeof(to), "%s:%d", ip, dst->port);
    struct json_object *rep = vm_migrate(src, to, NULL, WAIT_S);
    print_migration("NBD disk VM", rep);
    assert_string_equal(json_str(rep, "status"), "completed");
    json_object_put(rep);
    vm_proc_wait_ctl(dst, 30);
    disk_wait_passes(dst, disk_read_counts(dst).passes + 1, WAIT_S);   /* it writes there */
    char src_conn[64], writer[64];
    sampler_check(&s, from, to_host, src_conn, writer, sizeof(writer));
    wire_order_check(&wire_src, &wire_dst, src_conn, writer);

    /* The source hung up at the grant and wrote nothing after it. */
    assert_int_equal(disk_stat(src, "open"), 0);
    uint64_t src_writes = disk_stat(src, "writes");
    assert_true(src_writes >= writes_before);
    struct disk_counts after = disk_wait_passes(dst, disk_read_counts(dst).passes + 2, WAIT_S);
    assert_int_equal(after.errors, 0);
    assert_int_equal(disk_stat(src, "writes"), src_writes);
    assert_int_equal(disk_stat(dst, "writable"), 1);
    c = server_conns();
    if (c.a != (to_host == 'a') || c.b != (to_host == 'b'))
        fail_msg("after the move: %u connections from A, %u from B", c.a, c.b);
    print_message("    after the move to %c: pass %llu, longest request %llu us, 0 errors\n",
                  to_host, (unsigned long long)after.generation,
                  (unsigned long long)after.max_stall_us);
}

static void migrate_over_nbd_and_back(void **state)
{
    (void)state;
    struct vm_proc a, b, a2;
    vm_proc_start_in(&a, nbd.hosts.a, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk",
                                       "--disk", NBD_URI_A ",shared", "--append",
                                       nbd_append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    assert_int_equal(disk_stat(&a, "writable"), 1);
    assert_non_null(strstr(vm_serial_log(&a), "id 'vm'"));   /* GET_ID: the export's name */
    move(&a, &b, 'a');
    move(&b, &a2, 'b');

    json_object_put(vm_cmd(&a2, "stop", NULL));   /* completes and flushes every request */
    struct disk_counts end = disk_read_counts(&a2);
    assert_int_equal(end.errors, 0);
    check_export(end.generation);
    print_message("    the export read through the server holds pass %llu and the file's "
                  "bytes\n", (unsigned long long)end.generation);
    vm_proc_stop(&a2);
    vm_proc_stop(&b);
    vm_proc_stop(&a);
}

/* The storage server is killed under a VM whose guest writes, and started again 500 ms
 * later: the disk connects again by itself (reconnect=), the requests that waited land,
 * and the guest's workload, which checks every block before overwriting it, finds no
 * error and goes on; no request failed to the guest. */
static void server_restart_under_a_writing_guest(void **state)
{
    (void)state;
    struct vm_proc a;
    vm_proc_start_in(&a, nbd.hosts.a, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk",
                                       "--disk", NBD_URI_A ",shared,reconnect=30", "--append",
                                       nbd_append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    kill(nbd.server, SIGKILL);
    waitpid(nbd.server, NULL, 0);
    usleep(500000);
    nbd_server_start();
    struct disk_counts before = disk_read_counts(&a);
    struct disk_counts after = disk_wait_passes(&a, before.passes + 3, WAIT_S);
    assert_int_equal(after.errors, 0);
    assert_int_equal(disk_stat(&a, "io_errors"), 0);
    uint64_t reconnects = disk_stat(&a, "reconnects");
    if (reconnects < 1)
        fail_msg("the disk went on without connecting again (reconnects %llu)",
                 (unsigned long long)reconnects);
    print_message("    qemu-nbd killed and started again: %llu reconnection(s), the guest at pass "
                  "%llu with 0 errors\n", (unsigned long long)reconnects,
                  (unsigned long long)after.passes);
    vm_proc_stop(&a);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrate_over_nbd_and_back),
        cmocka_unit_test(server_restart_under_a_writing_guest),
    };
    return cmocka_run_group_tests(tests, nbd_group_setup, nbd_group_teardown);
}
