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
 *    again (reconnect=) and the guest finds no error.

 *  - `--with-disks` and NBD: copying an NBD disk with the VM is not supported, in either
 *    direction. A VM whose (not shared) disk is an export is refused at `migrate
 *    --with-disks` with an error naming the URI and what to do; a destination given an
 *    export as its `receive --disk` fails the migration with an error naming it. Each
 *    time the VM runs on at the source with 0 errors and the other side's disk (a file,
 *    an export) is untouched. These use a second export (port 10810, file vm2.img). */
#include "disk_probe.h"
#include "harness.h"
#include "vmshift/disk_format.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DISK_BYTES (64u << 20)
#define BLOCKS 32             /* the workload's range: 128 KiB */
#define SEED 1
#define WAIT_S 180
#define NBD_PORT "10809"
#define PEER_A "198.18.10.2"
#define PEER_B "198.18.11.2"
#define URI_A "nbd://198.18.10.1:" NBD_PORT "/vm"
#define URI_B "nbd://198.18.11.1:" NBD_PORT "/vm"

static struct test_hosts hosts;
static char storage[32];
static char dir[64], disk[96];
static pid_t server;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
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

/* The storage host with a link to each of A and B. */
static void storage_create(void)
{
    int id = (int)getpid();
    snprintf(storage, sizeof(storage), "vs-s-%d", id);
    sh("ip netns add %s && ip -n %s link set lo up", storage, storage);
    const char *host[2] = { hosts.a, hosts.b };
    for (int i = 0; i < 2; i++) {
        sh("ip link add vss%c%d type veth peer name vsh%c%d", 'a' + i, id, 'a' + i, id);
        sh("ip link set vss%c%d netns %s && ip link set vsh%c%d netns %s", 'a' + i, id, storage,
           'a' + i, id, host[i]);
        sh("ip -n %s addr add 198.18.%d.1/24 dev vss%c%d && ip -n %s link set vss%c%d up",
           storage, 10 + i, 'a' + i, id, storage, 'a' + i, id);
        sh("ip -n %s addr add 198.18.%d.2/24 dev vsh%c%d && ip -n %s link set vsh%c%d up",
           host[i], 10 + i, 'a' + i, id, host[i], 'a' + i, id);
    }
}

static bool port_listening(const char *port)
{
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "ip netns exec %s ss -Hltn 'sport = :%s' | grep -q LISTEN",
             storage, port);
    return system(cmd) == 0;
}

static bool server_listening(void)
{
    return port_listening(NBD_PORT);
}

static void server_start(void)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/qemu-nbd.log", dir);
    server = harness_spawn("/usr/bin/qemu-nbd", storage,
                           ARGS("-f", "raw", "-x", "vm", "-t", "-e", "8", "-b", "0.0.0.0", "-p",
                                NBD_PORT, "--cache=writeback", disk), log, NULL);
    for (int i = 0; i < 100 && !server_listening(); i++)
        usleep(50000);
    if (!server_listening())
        fail_msg("qemu-nbd does not listen in %s (install qemu-utils); see %s", storage, log);
}

static int group_setup(void **state)
{
    (void)state;
    test_hosts_create(&hosts, NULL);
    storage_create();
    harness_temp_dir(dir, sizeof(dir));
    snprintf(disk, sizeof(disk), "%s/disk.img", dir);
    int fd = open(disk, O_CREAT | O_RDWR | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);
    close(fd);
    server_start();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; rm -rf %s", storage, dir);
    if (system(cmd) != 0)
        print_message("could not remove %s or %s\n", storage, dir);
    test_hosts_destroy(&hosts);
    return 0;
}

/* ---- The server's connections ---- */

struct conns {
    unsigned a, b;   /* established NBD connections from host A, from host B */
};

static struct conns count_conns(const char *text)
{
    struct conns c = { 0, 0 };
    for (const char *p = text; (p = strstr(p, "198.18.1")); p++) {
        if (!strncmp(p, PEER_A ":", strlen(PEER_A) + 1))
            c.a++;
        else if (!strncmp(p, PEER_B ":", strlen(PEER_B) + 1))
            c.b++;
    }
    return c;
}

static struct conns server_conns(void)
{
    char cmd[200], out[4096];
    snprintf(cmd, sizeof(cmd), "ip netns exec %s ss -Htn state established 'sport = :%s'",
             storage, NBD_PORT);
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
    snprintf(s->path, sizeof(s->path), "%s/conns.log", dir);
    snprintf(s->stop, sizeof(s->stop), "%s/conns.stop", dir);
    unlink(s->stop);
    char script[400];
    snprintf(script, sizeof(script),
             "while [ ! -e %s ]; do echo T; ss -Htn state established 'sport = :%s'; "
             "sleep 0.01; done > %s", s->stop, NBD_PORT, s->path);
    char err[128];
    snprintf(err, sizeof(err), "%s/sampler.err", dir);
    s->pid = harness_spawn("/bin/sh", storage, ARGS("-c", script), err, NULL);
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
    const char *src_peer = from == 'a' ? PEER_A : PEER_B, *dst_peer = to == 'a' ? PEER_A : PEER_B;
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
    snprintf(c->path, sizeof(c->path), "%s/wire-%s.log", dir, peer);
    snprintf(c->err, sizeof(c->err), "%s/wire-%s.err", dir, peer);
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

static uint64_t disk_stat(struct vm_proc *p, const char *key)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    struct json_object *d = json_object_array_get_idx(json_member(st, "disks"), 0);
    assert_non_null(d);
    uint64_t v = json_object_get_uint64(json_member(d, key));
    json_object_put(st);
    return v;
}

/* The image must hold the guest's passes gen then gen - 1, block by block, and nothing
 * past the workload's range. */
static void check_pattern(const uint8_t *img, uint64_t gen)
{
    bool older_seen = false;
    for (uint64_t b = 0; b < BLOCKS; b++) {
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
    for (size_t i = BLOCKS * VS_DISK_BLOCK_BYTES; i < DISK_BYTES; i++)
        if (img[i])
            fail_msg("byte %zu of the export, past the workload's range, is 0x%02x", i, img[i]);
}

static uint8_t *read_file(const char *path)
{
    uint8_t *buf = malloc(DISK_BYTES);
    int fd = open(path, O_RDONLY);
    assert_true(buf && fd >= 0);
    assert_int_equal(pread(fd, buf, DISK_BYTES, 0), (ssize_t)DISK_BYTES);
    close(fd);
    return buf;
}

/* Read the whole export through the server from host B; it must be the served file. */
static void check_export(uint64_t gen)
{
    char copy[128];
    snprintf(copy, sizeof(copy), "%s/export.raw", dir);
    unlink(copy);
    sh("ip netns exec %s qemu-img convert -f raw -O raw '%s' %s", hosts.b, URI_B, copy);
    uint8_t *exported = read_file(copy), *served = read_file(disk);
    check_pattern(exported, gen);
    assert_memory_equal(exported, served, DISK_BYTES);
    free(exported);
    free(served);
    unlink(copy);
}

/* ---- The moves ---- */

static const char *append_blocks(void)
{
    static char a[32];
    snprintf(a, sizeof(a), "disk_blocks=%d", BLOCKS);
    return a;
}

/* Move the VM running in `src` (host `from`) to a receiver on the other host. */
static void move(struct vm_proc *src, struct vm_proc *dst, char from)
{
    char to_host = from == 'a' ? 'b' : 'a';
    const char *ns = to_host == 'a' ? hosts.a : hosts.b;
    const char *ip = to_host == 'a' ? "198.18.0.1" : "198.18.0.2";
    const char *spec = to_host == 'a' ? URI_A ",shared" : URI_B ",shared";
    disk_wait_passes(src, disk_read_counts(src).passes + 2, WAIT_S);
    uint64_t writes_before = disk_stat(src, "writes");   /* this host's, since it got the VM */
    assert_true(writes_before > 0);
    vm_receiver_start(dst, ip, ns, ARGS("--disk", spec));
    /* The destination checked the export when it was built, and hung up. */
    struct conns c = server_conns();
    if (c.a != (from == 'a') || c.b != (from == 'b'))
        fail_msg("before the move: %u connections from A, %u from B", c.a, c.b);

    struct capture wire_src, wire_dst;
    capture_start(&wire_src, from == 'a' ? hosts.a : hosts.b, from == 'a' ? PEER_A : PEER_B);
    capture_start(&wire_dst, ns, to_host == 'a' ? PEER_A : PEER_B);
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
    vm_proc_start_in(&a, hosts.a, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk",
                                       "--disk", URI_A ",shared", "--append", append_blocks()));
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
    vm_proc_start_in(&a, hosts.a, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "disk",
                                       "--disk", URI_A ",shared,reconnect=30", "--append",
                                       append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    kill(server, SIGKILL);
    waitpid(server, NULL, 0);
    usleep(500000);
    server_start();
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
/* ---- --with-disks and NBD disks: refused, clearly, and harmless ---- */

#define NBD2_PORT "10810"
#define URI2_A "nbd://198.18.10.1:" NBD2_PORT "/vm2"
#define URI2_B "nbd://198.18.11.1:" NBD2_PORT "/vm2"
#define MARK_BYTES (1u << 20)   /* the untouched side's file starts with these 0x5a bytes */

/* A 64 MiB file whose first MiB is 0x5a, the rest a hole. */
static void make_marked_file(const char *path)
{
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);
    uint8_t *mark = malloc(MARK_BYTES);
    assert_non_null(mark);
    memset(mark, 0x5a, MARK_BYTES);
    assert_int_equal(pwrite(fd, mark, MARK_BYTES, 0), (ssize_t)MARK_BYTES);
    free(mark);
    close(fd);
}

static void check_marked_file(const char *path)
{
    uint8_t *img = read_file(path);
    for (size_t i = 0; i < DISK_BYTES; i++)
        if (img[i] != (i < MARK_BYTES ? 0x5a : 0))
            fail_msg("%s changed at byte %zu (0x%02x): the refused migration wrote it", path,
                     i, img[i]);
    free(img);
}

/* A second export of a fresh file (the first holds the other test's passes). */
static pid_t export2_start(char *file, size_t len, bool marked)
{
    snprintf(file, len, "%s/vm2.img", dir);
    if (marked) {
        make_marked_file(file);
    } else {
        int fd = open(file, O_CREAT | O_RDWR | O_TRUNC, 0600);
        assert_true(fd >= 0 && ftruncate(fd, DISK_BYTES) == 0);
        close(fd);
    }
    char log[128];
    snprintf(log, sizeof(log), "%s/qemu-nbd2.log", dir);
    pid_t pid = harness_spawn("/usr/bin/qemu-nbd", storage,
                              ARGS("-f", "raw", "-x", "vm2", "-t", "-e", "4", "-b", "0.0.0.0",
                                   "-p", NBD2_PORT, "--cache=writeback", file), log, NULL);
    for (int i = 0; i < 100 && !port_listening(NBD2_PORT); i++)
        usleep(50000);
    if (!port_listening(NBD2_PORT))
        fail_msg("the second qemu-nbd does not listen in %s; see %s", storage, log);
    return pid;
}

static void export2_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static struct json_object *with_disks_request(const char *to)
{
    struct json_object *req = json_object_new_object();
    json_object_object_add(req, "to", json_object_new_string(to));
    json_object_object_add(req, "with_disks", json_object_new_boolean(1));
    harness_add_migrate_security(req);
    return req;
}

/* The VM goes on at the source: two more passes, 0 errors, its disk writable. */
static void check_runs_on(struct vm_proc *src)
{
    struct disk_counts c = disk_wait_passes(src, disk_read_counts(src).passes + 2, WAIT_S);
    assert_int_equal(c.errors, 0);
    assert_int_equal(disk_stat(src, "writable"), 1);
    assert_int_equal(disk_stat(src, "io_errors"), 0);
}

static void with_disks_refuses_an_nbd_source_disk(void **state)
{
    (void)state;
    char file[96], local[96];
    pid_t srv = export2_start(file, sizeof(file), false);
    snprintf(local, sizeof(local), "%s/local-b.img", dir);
    make_marked_file(local);
    struct vm_proc a, b;
    vm_proc_start_in(&a, hosts.a, ARGS("--mem", "64M", "--vcpus", "1", "--workload", "disk",
                                       "--disk", URI2_A, "--append", append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    vm_receiver_start(&b, "198.18.0.2", hosts.b, ARGS("--disk", local));
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", b.port);
    struct json_object *req = with_disks_request(to), *ok;
    struct json_object *r = vm_cmd_any(&a, "migrate", req);
    json_object_put(req);
    assert_true(json_object_object_get_ex(r, "ok", &ok));
    assert_false(json_object_get_boolean(ok));
    const char *err = json_str(r, "error");
    print_message("    migrate --with-disks of %s: %s\n", URI2_A, err);
    assert_non_null(strstr(err, URI2_A));
    assert_non_null(strstr(err, "is an NBD export"));
    assert_non_null(strstr(err, "files or block devices"));
    assert_non_null(strstr(err, ",shared"));
    json_object_put(r);

    check_runs_on(&a);
    check_marked_file(local);             /* the destination received nothing */
    vm_proc_stop(&a);
    vm_proc_stop(&b);
    export2_stop(srv);
}

static void with_disks_refuses_an_nbd_destination_disk(void **state)
{
    (void)state;
    char file[96], local[96];
    pid_t srv = export2_start(file, sizeof(file), true);
    snprintf(local, sizeof(local), "%s/local-a.img", dir);
    int fd = open(local, O_CREAT | O_RDWR | O_TRUNC, 0600);
    assert_true(fd >= 0 && ftruncate(fd, DISK_BYTES) == 0);
    close(fd);
    struct vm_proc a, b;
    vm_proc_start_in(&a, hosts.a, ARGS("--mem", "64M", "--vcpus", "1", "--workload", "disk",
                                       "--disk", local, "--append", append_blocks()));
    disk_wait_passes(&a, 1, WAIT_S);
    vm_receiver_start(&b, "198.18.0.2", hosts.b, ARGS("--disk", URI2_B));
    char to[64];
    snprintf(to, sizeof(to), "198.18.0.2:%d", b.port);
    struct json_object *req = with_disks_request(to);
    json_object_put(vm_cmd(&a, "migrate", req));
    json_object_put(req);
    struct json_object *rep = vm_migration_wait(&a, WAIT_S);
    const char *err = json_str(rep, "error");
    print_message("    migrate --with-disks into %s: %s: %s\n", URI2_B, json_str(rep, "status"),
                  err);
    assert_string_equal(json_str(rep, "status"), "failed");
    assert_non_null(strstr(err, URI2_B " is an NBD export"));   /* the destination's reason */
    json_object_put(rep);
    /* The destination's reason is in its log, naming the export and what to do. */
    int st = vm_proc_wait_exit(&b, 30);
    assert_int_not_equal(st, 0);
    FILE *f = fopen(b.stderr_path, "r");
    assert_non_null(f);
    static char log[1 << 16];
    size_t n = fread(log, 1, sizeof(log) - 1, f);
    log[n] = '\0';
    fclose(f);
    if (!strstr(log, URI2_B " is an NBD export") || !strstr(log, "DEST_FILE"))
        fail_msg("the receiver's log does not say why: %s", log);

    check_runs_on(&a);
    export2_stop(srv);
    check_marked_file(file);              /* the export was never written */
    vm_proc_stop(&a);
    vm_proc_stop(&b);
}

int main(void)
{
    require_kvm();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(migrate_over_nbd_and_back),
        cmocka_unit_test(server_restart_under_a_writing_guest),
        cmocka_unit_test(with_disks_refuses_an_nbd_source_disk),
        cmocka_unit_test(with_disks_refuses_an_nbd_destination_disk),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
