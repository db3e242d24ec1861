/* Integration: a real `vmshift receive` fed a corrupted, truncated or reordered stream by
 * a fake source rejects it with an error naming the record and its offset, and runs
 * nothing; so are post-copy records it did not agree to or that come out of turn. The fake
 * source speaks the plain stream, so the receivers run --insecure. */
#include "harness.h"
#include "transport/channel.h"
#include "transport/tcp.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RAM (16u << 20)

struct captured {
    uint8_t buf[1 << 20];
    size_t len;
};

/* The bytes the writer produces for two PAGES records (seq 1 and 2, after HELLO = 0). */
static void capture_pages(struct captured *c, size_t *first_len)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int big = 4 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    struct vs_channel *ch;
    assert_int_equal(vs_channel_from_fd(sv[0], "capture", &ch), 0);
    struct vs_wire_writer w;
    assert_int_equal(vs_wire_writer_init(&w, ch), 0);
    w.seq = 1;
    uint8_t *ram = calloc(1, RAM);
    memset(ram + 0x400000, 0xab, 8192);
    uint64_t gpa1[] = { 0x400000 }, gpa2[] = { 0x401000 };
    assert_int_equal(vs_wire_send_pages(&w, ram, gpa1, 1, 0), 0);
    *first_len = (size_t)ch->bytes_sent;
    assert_int_equal(vs_wire_send_pages(&w, ram, gpa2, 1, 0), 0);
    size_t total = (size_t)ch->bytes_sent;
    c->len = 0;
    while (c->len < total) {
        ssize_t n = read(sv[1], c->buf + c->len, sizeof(c->buf) - c->len);
        assert_true(n > 0);
        c->len += (size_t)n;
    }
    free(ram);
    vs_wire_writer_destroy(&w);
    vs_channel_close(ch);
    close(sv[1]);
}

/* The bytes of a POSTCOPY_START record (seq 1, after HELLO) naming one missing page. */
static void capture_postcopy_start(struct captured *c)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct vs_channel *ch;
    assert_int_equal(vs_channel_from_fd(sv[0], "capture", &ch), 0);
    struct vs_wire_writer w;
    assert_int_equal(vs_wire_writer_init(&w, ch), 0);
    w.seq = 1;
    uint64_t map[RAM / VS_WIRE_PAGE_SIZE / 64] = { 0 };
    map[0x400000 / VS_WIRE_PAGE_SIZE / 64] = 1;
    struct vs_wire_postcopy_start ps = { .missing_pages = 1 };
    assert_int_equal(vs_wire_send_parts(&w, VS_REC_POSTCOPY_START, &ps, sizeof(ps), map,
                                        sizeof(map)), 0);
    c->len = (size_t)ch->bytes_sent;
    size_t got = 0;
    while (got < c->len) {
        ssize_t n = read(sv[1], c->buf + got, c->len - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    vs_wire_writer_destroy(&w);
    vs_channel_close(ch);
    close(sv[1]);
}

/* Connect to a fresh receiver, complete the handshake for a 16 MiB 1-vCPU VM (asking for
 * `features`), send raw bytes, close, and return the receiver's stderr. */
static void feed_features(const uint8_t *bytes, size_t len, uint32_t features, char *err,
                          size_t errlen)
{
    struct vm_proc dst;
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure", "--timeout", "5"));
    struct fake_source f;
    struct vs_wire_hello h = fake_hello(RAM);
    h.features = features;
    fake_source_hello(&f, dst.port, &h, sizeof(h));
    assert_int_equal(f.reply.accepted, 1);
    assert_int_equal(f.reply.features, features);   /* this host can do post-copy */
    vs_channel_write(f.ch, bytes, len);
    shutdown(f.ch->fd, SHUT_WR);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    FILE *log = fopen(dst.stderr_path, "r");
    size_t n = log ? fread(err, 1, errlen - 1, log) : 0;
    err[n] = '\0';
    if (log)
        fclose(log);
    fake_source_close(&f);
    vm_proc_stop(&dst);
    assert_non_null(strstr(err, "nothing runs here"));
}

static void feed(const uint8_t *bytes, size_t len, char *err, size_t errlen)
{
    feed_features(bytes, len, 0, err, errlen);
}

static void expect_in(const char *err, const char *a, const char *b)
{
    if (!strstr(err, a) || (b && !strstr(err, b)))
        fail_msg("receiver error does not mention '%s'%s%s:\n%s", a, b ? " and " : "",
                 b ? b : "", err);
}

static void corrupted_page_is_rejected(void **state)
{
    (void)state;
    static struct captured c;
    size_t first;
    capture_pages(&c, &first);
    c.buf[first - 100] ^= 0x01; /* a data byte of the first record's page */
    char err[8192];
    feed(c.buf, first, err, sizeof(err));
    expect_in(err, "record #1 (PAGES)", "checksum");
    expect_in(err, "offset", NULL);
}

static void truncated_stream_is_rejected(void **state)
{
    (void)state;
    static struct captured c;
    size_t first;
    capture_pages(&c, &first);
    char err[8192];
    feed(c.buf, first / 2, err, sizeof(err));
    expect_in(err, "closed", NULL);
}

static void reordered_records_are_rejected(void **state)
{
    (void)state;
    static struct captured c, swapped;
    size_t first;
    capture_pages(&c, &first);
    memcpy(swapped.buf, c.buf + first, c.len - first);
    memcpy(swapped.buf + (c.len - first), c.buf, first);
    char err[8192];
    feed(swapped.buf, c.len, err, sizeof(err));
    expect_in(err, "out of order", "#1");
}

static void garbage_is_rejected(void **state)
{
    (void)state;
    uint8_t junk[256];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    char err[8192];
    feed(junk, sizeof(junk), err, sizeof(err));
    expect_in(err, "magic", "offset");
}

/* A version 1 source (48-byte HELLO) is told to upgrade, not "bad length". */
static void old_version_is_told_to_upgrade(void **state)
{
    (void)state;
    struct vm_proc dst;
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure", "--timeout", "5"));
    struct fake_source f;
    uint8_t v1_hello[48] = { 1, 0, 0, 0 };      /* version 1.0, the rest as v1 had it */
    fake_source_hello(&f, dst.port, v1_hello, sizeof(v1_hello));
    assert_int_equal(f.reply.accepted, 0);
    if (!strstr(f.reply.reason, "version 1.0") || !strstr(f.reply.reason, "upgrade the source"))
        fail_msg("refusal does not ask to upgrade the source: %s", f.reply.reason);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    fake_source_close(&f);
    vm_proc_stop(&dst);
}

/* Post-copy records from a source that did not ask for post-copy in HELLO. */
static void unsolicited_postcopy_is_rejected(void **state)
{
    (void)state;
    static struct captured c;
    capture_postcopy_start(&c);
    char err[8192];
    feed(c.buf, c.len, err, sizeof(err));
    expect_in(err, "record #1 (POSTCOPY_START)", "not agreed in the handshake");
}

/* Agreed, but POSTCOPY_START in the middle of pre-copy (before the final PASS_END). */
static void postcopy_out_of_phase_is_rejected(void **state)
{
    (void)state;
    static struct captured c;
    capture_postcopy_start(&c);
    char err[8192];
    feed_features(c.buf, c.len, VS_FEATURE_POSTCOPY, err, sizeof(err));
    expect_in(err, "POSTCOPY_START", "not allowed during pre-copy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(corrupted_page_is_rejected),
        cmocka_unit_test(truncated_stream_is_rejected),
        cmocka_unit_test(reordered_records_are_rejected),
        cmocka_unit_test(garbage_is_rejected),
        cmocka_unit_test(old_version_is_told_to_upgrade),
        cmocka_unit_test(unsolicited_postcopy_is_rejected),
        cmocka_unit_test(postcopy_out_of_phase_is_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
