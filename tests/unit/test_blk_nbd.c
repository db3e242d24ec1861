/* The NBD backend (blk_nbd.c behind blk_backend.h) against a real NBD server, Debian's
 * qemu-nbd on a Unix socket serving a temporary raw file:
 *  - scattered writes and reads, a write larger than one NBD command, flush: the file
 *    holds the bytes; write-zeroes (with and without unmapping) and discard;
 *  - a destination's open connects only to check the export, then the disk is closed and
 *    refuses writes until opened for writing;
 *  - an export served read-only is refused for a writable disk, accepted for ",ro";
 *  - a missing server or export: the message names the URI and what to do;
 *  - the server killed and started again: the request in flight waits, is sent again on
 *    a new connection and succeeds (reconnect=); with reconnect=0 it fails at once, and
 *    when the server stays away it fails after reconnect= seconds, saying so. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "expect_error.h"
#include "vmm/virtio/blk_backend.h"

#define DISK_BYTES (16u << 20)

struct server {
    char dir[64], file[96], sock[96], uri[200];
    pid_t pid;
};

static bool connectable(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* qemu-nbd serving s->file as export "vm" (read-only when `ro`), `delay_ms` from now. */
static void server_spawn(struct server *s, bool ro, unsigned delay_ms)
{
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        usleep(delay_ms * 1000u);
        execlp("qemu-nbd", "qemu-nbd", "-f", "raw", "-x", "vm", "-t", "-e", "4", "-k", s->sock,
               ro ? "-r" : "--cache=writeback", s->file, (char *)NULL);
        fprintf(stderr, "cannot run qemu-nbd (apt-get install qemu-utils): %s\n",
                strerror(errno));
        _exit(127);
    }
}

static void server_wait(struct server *s)
{
    for (int i = 0; i < 200 && !connectable(s->sock); i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid)
            fail_msg("qemu-nbd exited at once (is qemu-utils installed?)");
        usleep(25000);
    }
    assert_true(connectable(s->sock));
}

/* qemu-nbd serving a new sparse file as export "vm" (read-only when `ro`). */
static void server_start(struct server *s, bool ro)
{
    snprintf(s->dir, sizeof(s->dir), "/tmp/vs-nbd-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->file, sizeof(s->file), "%s/disk.img", s->dir);
    snprintf(s->sock, sizeof(s->sock), "%s/nbd.sock", s->dir);
    snprintf(s->uri, sizeof(s->uri), "nbd+unix:///vm?socket=%s", s->sock);
    int fd = open(s->file, O_CREAT | O_RDWR | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, DISK_BYTES), 0);
    close(fd);
    server_spawn(s, ro, 0);
    server_wait(s);
}

static void server_kill(struct server *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
}

static void server_stop(struct server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    unlink(s->file);
    unlink(s->sock);
    rmdir(s->dir);
}

static int setup(void **state)
{
    struct server *s = calloc(1, sizeof(*s));
    server_start(s, false);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    server_stop(*state);
    free(*state);
    return 0;
}

static struct vs_blk_spec spec_of(const char *target, const char *opts)
{
    char text[VS_BLK_PATH_MAX + 32];
    snprintf(text, sizeof(text), "%s%s", target, opts);
    struct vs_blk_spec s;
    assert_int_equal(vs_blk_spec_parse(text, &s), 0);
    return s;
}

static void file_bytes(const struct server *s, uint64_t off, void *buf, size_t len)
{
    int fd = open(s->file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + seed);
}

static void scattered_io_reaches_the_file(void **state)
{
    struct server *s = *state;
    struct vs_blk_spec spec = spec_of(s->uri, ",shared");
    assert_true(vs_blk_nbd_is_uri(spec.path) && spec.shared);
    struct vs_blk_backend b;
    assert_int_equal(vs_blk_backend_open(&b, &spec, true), 0);
    assert_true(vs_blk_backend_is_open(&b) && b.writable);
    assert_int_equal(b.size, DISK_BYTES);

    static uint8_t out[5632], in[5632], disk[5632];
    fill(out, sizeof(out), 3);
    struct iovec w[3] = { { out, 512 }, { out + 512, 4096 }, { out + 4608, 1024 } };
    assert_int_equal(vs_blk_backend_write(&b, w, 3, 8192), 0);
    struct iovec r[2] = { { in, 1536 }, { in + 1536, 4096 } };
    assert_int_equal(vs_blk_backend_read(&b, r, 2, 8192), 0);
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(vs_blk_backend_flush(&b), 0);
    file_bytes(s, 8192, disk, sizeof(disk));
    assert_memory_equal(disk, out, sizeof(out));

    /* One segment of 9 MiB: three NBD commands. */
    size_t big = 9u << 20;
    uint8_t *p = malloc(big), *q = malloc(big);
    fill(p, big, 11);
    struct iovec one = { p, big };
    assert_int_equal(vs_blk_backend_write(&b, &one, 1, 1u << 20), 0);
    struct iovec back = { q, big };
    assert_int_equal(vs_blk_backend_read(&b, &back, 1, 1u << 20), 0);
    assert_memory_equal(p, q, big);
    assert_int_equal(vs_blk_backend_flush(&b), 0);
    file_bytes(s, 1u << 20, q, big);
    assert_memory_equal(p, q, big);

    /* Zeroed ranges read as zeros, unmapped or not; a discard is accepted. */
    assert_int_equal(vs_blk_backend_write_zeroes(&b, 1u << 20, 4096, true), 0);
    assert_int_equal(vs_blk_backend_write_zeroes(&b, (1u << 20) + 8192, 512, false), 0);
    assert_int_equal(vs_blk_backend_discard(&b, 2u << 20, 1u << 20), 0);
    assert_int_equal(vs_blk_backend_flush(&b), 0);
    file_bytes(s, 1u << 20, q, 8192 + 1024);
    for (size_t i = 0; i < 8192 + 1024; i++) {
        bool zero = i < 4096 || (i >= 8192 && i < 8192 + 512);
        if (zero ? q[i] != 0 : q[i] != p[i])
            fail_msg("byte %zu after write-zeroes: 0x%02x", i, q[i]);
    }
    free(p);
    free(q);
    vs_blk_backend_close(&b);
    assert_false(vs_blk_backend_is_open(&b));
}

/* A destination: checked and hung up on; no write until opened for writing. */
static void destination_connects_after_the_grant(void **state)
{
    struct server *s = *state;
    struct vs_blk_spec spec = spec_of(s->uri, ",shared");
    struct vs_blk_backend b;
    assert_int_equal(vs_blk_backend_open(&b, &spec, false), 0);
    assert_false(vs_blk_backend_is_open(&b));
    assert_false(b.writable);
    assert_int_equal(b.size, DISK_BYTES);
    uint8_t sector[512];
    memset(sector, 0xa5, sizeof(sector));
    struct iovec v = { sector, sizeof(sector) };
    assert_int_equal(vs_blk_backend_write(&b, &v, 1, 0), -EBADF);
    assert_int_equal(vs_blk_backend_read(&b, &v, 1, 0), -EBADF);
    assert_int_equal(vs_blk_backend_open_for_writing(&b), 0);
    assert_true(vs_blk_backend_is_open(&b) && b.writable);
    v = (struct iovec){ sector, sizeof(sector) };
    assert_int_equal(vs_blk_backend_write(&b, &v, 1, 0), 0);
    assert_int_equal(vs_blk_backend_flush(&b), 0);
    vs_blk_backend_close(&b);   /* handed over: hung up */
    assert_int_equal(vs_blk_backend_write(&b, &v, 1, 0), -EBADF);
    uint8_t disk[512];
    file_bytes(s, 0, disk, sizeof(disk));
    assert_memory_equal(disk, sector, sizeof(sector));
    assert_int_equal(vs_blk_backend_open_for_writing(&b), 0);   /* it comes back */
    assert_true(b.writable);
    vs_blk_backend_close(&b);
}

static void read_only_export(void **state)
{
    (void)state;
    struct server s;
    server_start(&s, true);
    struct vs_blk_spec spec = spec_of(s.uri, ",shared");
    struct vs_blk_backend b;
    expect_msg(vs_blk_backend_open(&b, &spec, true), s.uri, "read-only; give ro");
    expect_msg(vs_blk_backend_open(&b, &spec, false), s.uri, "read-only");
    spec = spec_of(s.uri, ",shared,ro");
    assert_int_equal(vs_blk_backend_open(&b, &spec, true), 0);
    assert_true(vs_blk_backend_is_open(&b));
    assert_false(b.writable);
    uint8_t sector[512];
    struct iovec v = { sector, sizeof(sector) };
    assert_int_equal(vs_blk_backend_read(&b, &v, 1, 4096), 0);
    assert_int_equal(vs_blk_backend_write(&b, &v, 1, 0), -EBADF);
    vs_blk_backend_close(&b);
    server_stop(&s);
}

static void unreachable_export(void **state)
{
    struct server *s = *state;
    struct vs_blk_backend b;
    struct vs_blk_spec spec = spec_of("nbd+unix:///vm?socket=/nonexistent/nbd.sock", "");
    expect_msg(vs_blk_backend_open(&b, &spec, true), "nbd+unix:///vm?socket=/nonexistent/nbd.sock",
               "start the NBD server");
    char uri[240];
    snprintf(uri, sizeof(uri), "nbd+unix:///other?socket=%s", s->sock);
    spec = spec_of(uri, "");
    expect_msg(vs_blk_backend_open(&b, &spec, true), uri, "no export named 'other'");
    assert_false(vs_blk_nbd_is_uri("/srv/nbd.img"));
    assert_true(vs_blk_nbd_is_uri("nbd://198.18.0.1:10809/vm"));
}

static uint64_t ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* The server dies under a connected disk and comes back 400 ms later: the next write
 * waits for it and lands; the read and flush after it need nothing more. */
static void server_restart_is_reconnected(void **state)
{
    struct server *s = *state;
    struct vs_blk_spec spec = spec_of(s->uri, ",shared,reconnect=20");
    struct vs_blk_backend b;
    assert_int_equal(vs_blk_backend_open(&b, &spec, true), 0);
    static uint8_t out[8192], in[8192], disk[8192];
    fill(out, sizeof(out), 5);
    struct iovec w = { out, 4096 };
    assert_int_equal(vs_blk_backend_write(&b, &w, 1, 0), 0);
    server_kill(s);
    server_spawn(s, false, 400);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w = (struct iovec){ out + 4096, 4096 };
    assert_int_equal(vs_blk_backend_write(&b, &w, 1, 4096), 0);
    uint64_t waited = ms_since(&t0);
    assert_int_equal(b.nbd_reconnects, 1);
    assert_true(waited >= 300);   /* it waited for the server, which slept 400 ms */
    struct iovec r = { in, sizeof(in) };
    assert_int_equal(vs_blk_backend_read(&b, &r, 1, 0), 0);
    assert_memory_equal(in, out, sizeof(out));
    assert_int_equal(vs_blk_backend_flush(&b), 0);
    file_bytes(s, 0, disk, sizeof(disk));
    assert_memory_equal(disk, out, sizeof(out));
    assert_int_equal(b.nbd_reconnects, 1);
    vs_blk_backend_close(&b);
}

/* reconnect=0: a lost connection fails the request at once; reconnect=1 with no server:
 * it fails after about a second, naming the disk and the time it tried. */
static void lost_connection_fails_when_not_made_again(void **state)
{
    struct server *s = *state;
    struct vs_blk_spec spec = spec_of(s->uri, ",shared,reconnect=0");
    struct vs_blk_backend b;
    assert_int_equal(vs_blk_backend_open(&b, &spec, true), 0);
    uint8_t sector[512] = { 1 };
    struct iovec v = { sector, sizeof(sector) };
    server_kill(s);
    assert_true(vs_blk_backend_write(&b, &v, 1, 0) < 0);
    assert_int_equal(b.nbd_reconnects, 0);
    vs_blk_backend_close(&b);

    server_spawn(s, false, 0);
    server_wait(s);
    spec = spec_of(s->uri, ",shared,reconnect=1");
    assert_int_equal(vs_blk_backend_open(&b, &spec, true), 0);
    server_kill(s);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    v = (struct iovec){ sector, sizeof(sector) };
    assert_true(vs_blk_backend_write(&b, &v, 1, 0) < 0);
    uint64_t waited = ms_since(&t0);
    assert_true(waited >= 500 && waited < 10000);
    expect_msg(-1, s->uri, "could not be made again in 1 s");
    vs_blk_backend_close(&b);
    server_spawn(s, false, 0);   /* for the teardown */
    server_wait(s);
}

int main(void)
{
    vs_log_set_level(VS_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(scattered_io_reaches_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(destination_connects_after_the_grant, setup, teardown),
        cmocka_unit_test(read_only_export),
        cmocka_unit_test_setup_teardown(unreachable_export, setup, teardown),
        cmocka_unit_test_setup_teardown(server_restart_is_reconnected, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_connection_fails_when_not_made_again, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
