/* Unit tests: TLS channels (src/transport/tls_*.c) over socket pairs, in one process:
 * handshakes with a key and with certificates, data both ways through gathered and large
 * writes, a forged record refused, who is told what when authentication fails, silent and
 * non-TLS peers; the channel deadline against a trickling peer; loading errors. The test
 * credentials come from scripts/make-test-certs.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "expect_error.h"
#include "transport/tls.h"
#include "wire/reader.h"

static char creds[64];

static const char *cred(const char *file)
{
    static char paths[8][128];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, 128, "%s/%s", creds, file);
    return p;
}

static int make_creds(void **state)
{
    (void)state;
    strcpy(creds, "/tmp/vmshift-unit-creds-XXXXXX");
    assert_non_null(mkdtemp(creds));
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s/scripts/make-test-certs.sh %s >/dev/null", VMSHIFT_SOURCE_DIR,
             creds);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_creds(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", creds);
    return system(cmd) == 0 ? 0 : -1;
}

static struct vs_security_opts psk_opts(const char *file)
{
    struct vs_security_opts o = { 0 };
    assert_int_equal(vs_security_set(&o, "tls-psk", cred(file)), 0);
    assert_int_equal(vs_security_finish(&o, true), 0);
    return o;
}

static struct vs_security_opts cert_opts(const char *name, const char *ca, const char *peer_name)
{
    struct vs_security_opts o = { 0 };
    char file[64];
    snprintf(file, sizeof(file), "%s.pem", name);
    assert_int_equal(vs_security_set(&o, "tls-cert", cred(file)), 0);
    snprintf(file, sizeof(file), "%s.key", name);
    assert_int_equal(vs_security_set(&o, "tls-key", cred(file)), 0);
    assert_int_equal(vs_security_set(&o, "tls-ca", cred(ca)), 0);
    if (peer_name)
        assert_int_equal(vs_security_set(&o, "tls-name", peer_name), 0);
    assert_int_equal(vs_security_finish(&o, true), 0);
    return o;
}

/* Two plain channels joined by a socket pair: [0] the source's end, [1] the destination's. */
static void channel_pair(struct vs_channel *ch[2])
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(vs_channel_from_fd(sv[0], "dst-addr", &ch[0]), 0);   /* its peer */
    assert_int_equal(vs_channel_from_fd(sv[1], "src-addr", &ch[1]), 0);
}

struct side {
    struct vs_tls *tls;
    struct vs_channel *ch;
    struct vs_tls_result res;
    unsigned secured;
};

static void *secure_side(void *arg)
{
    struct side *s = arg;
    s->secured = vs_tls_secure(s->tls, &s->ch, 1, 5000, &s->res);
    return NULL;
}

/* Handshake both ends at once; returns how many ends were secured. */
static unsigned handshake(const struct vs_security_opts *src, const struct vs_security_opts *dst,
                          struct side sides[2])
{
    struct vs_channel *ch[2];
    channel_pair(ch);
    memset(sides, 0, 2 * sizeof(*sides));
    assert_int_equal(vs_tls_new(src, VS_TLS_SOURCE, &sides[0].tls), 0);
    assert_int_equal(vs_tls_new(dst, VS_TLS_DESTINATION, &sides[1].tls), 0);
    sides[0].ch = ch[0];
    sides[1].ch = ch[1];
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, secure_side, &sides[1]), 0);
    secure_side(&sides[0]);
    pthread_join(t, NULL);
    if (getenv("VS_TEST_SHOW_ERRORS"))
        fprintf(stderr, "    source: %s\n    destination: %s\n", sides[0].res.error,
                sides[1].res.error);
    return sides[0].secured + sides[1].secured;
}

static void close_sides(struct side sides[2])
{
    for (int i = 0; i < 2; i++) {
        vs_channel_close(sides[i].ch);
        vs_tls_free(sides[i].tls);
    }
}

struct transfer {
    struct vs_channel *ch;
    uint8_t *buf;
    size_t len;
    int rc;
};

static void *receive_all(void *arg)
{
    struct transfer *t = arg;
    t->rc = vs_channel_read_exact(t->ch, t->buf, t->len);
    return NULL;
}

/* Send 3 MiB + a few bytes from a to b as a record would go: a small header, a list,
 * a large run, another small piece; check every byte. */
static void send_and_check(struct vs_channel *a, struct vs_channel *b)
{
    size_t big = 3u << 20, len = 32 + 8192 + big + 5;
    uint8_t *out = malloc(len), *in = calloc(1, len);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(i * 2654435761u >> 24);
    struct transfer t = { b, in, len, -1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, receive_all, &t), 0);
    struct iovec iov[4] = { { out, 32 }, { out + 32, 8192 }, { out + 32 + 8192, big },
                            { out + 32 + 8192 + big, 5 } };
    assert_int_equal(vs_channel_write_all_flags(a, iov, 4, VS_CH_ZEROCOPY), 0);
    pthread_join(th, NULL);
    assert_int_equal(t.rc, 0);
    assert_memory_equal(in, out, len);
    assert_int_equal(vs_channel_sent(a), len);
    assert_int_equal(vs_channel_received(b), len);
    free(out);
    free(in);
}

static void key_secures_both_ways(void **state)
{
    (void)state;
    struct vs_security_opts o = psk_opts("psk");
    struct side s[2];
    assert_int_equal(handshake(&o, &o, s), 2);
    bool kernel;
    assert_memory_equal(vs_channel_cipher(s[0].ch, &kernel), "TLS_", 4);
    assert_string_equal(vs_channel_cipher(s[0].ch, &kernel), vs_channel_cipher(s[1].ch, &kernel));
    assert_string_equal(s[0].ch->ops->name, "tls");
    send_and_check(s[0].ch, s[1].ch);
    send_and_check(s[1].ch, s[0].ch);
    /* Zero-copy cannot apply to data that is encrypted on its way: accepted, not used. */
    assert_int_equal(vs_channel_enable_zerocopy(s[0].ch), 0);
    assert_false(s[0].ch->zerocopy);
    close_sides(s);
}

/* What b has queued for a when a is cut is lost (a fault-injected cut, as on a cut
 * link), while a plain shutdown leaves it readable; plain and over TLS. */
static void expect_cut_loses_queued_bytes(struct vs_channel *a, struct vs_channel *b)
{
    uint8_t in[64] = { 0 }, out[64];
    memset(out, 0x5a, sizeof(out));
    assert_int_equal(vs_channel_write(b, out, sizeof(out)), 0);
    assert_int_equal(vs_channel_read_exact(a, in, 16), 0);       /* it is there */
    vs_channel_cut(a);
    assert_int_not_equal(vs_channel_read_exact(a, in + 16, 16), 0);
    assert_true(strstr(vs_last_error(), "was cut") != NULL);
}

static void cut_loses_what_was_not_read(void **state)
{
    (void)state;
    struct vs_channel *ch[2];
    channel_pair(ch);
    uint8_t out[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, in[8];
    assert_int_equal(vs_channel_write(ch[1], out, sizeof(out)), 0);
    vs_channel_shutdown_read(ch[0]);                 /* queued bytes survive a shutdown */
    assert_int_equal(vs_channel_read_exact(ch[0], in, sizeof(in)), 0);
    assert_memory_equal(in, out, sizeof(in));
    vs_channel_close(ch[0]);
    vs_channel_close(ch[1]);
    channel_pair(ch);
    expect_cut_loses_queued_bytes(ch[0], ch[1]);
    vs_channel_close(ch[0]);
    vs_channel_close(ch[1]);
    struct vs_security_opts o = psk_opts("psk");
    struct side s[2];
    assert_int_equal(handshake(&o, &o, s), 2);
    expect_cut_loses_queued_bytes(s[0].ch, s[1].ch);
    close_sides(s);
}

static void certificates_with_names_secure(void **state)
{
    (void)state;
    struct vs_security_opts src = cert_opts("source", "ca.pem", "vmshift-destination");
    struct vs_security_opts dst = cert_opts("dest", "ca.pem", "vmshift-source");
    struct side s[2];
    assert_int_equal(handshake(&src, &dst, s), 2);
    send_and_check(s[0].ch, s[1].ch);
    close_sides(s);
}

/* Bytes that did not come through the TLS session (a forged record) are refused. */
static void forged_record_is_refused(void **state)
{
    (void)state;
    struct vs_security_opts o = psk_opts("psk");
    struct side s[2];
    assert_int_equal(handshake(&o, &o, s), 2);
    uint8_t forged[5 + 64] = { 0x17, 0x03, 0x03, 0x00, 0x40 };   /* application data */
    memset(forged + 5, 0x5a, 64);
    assert_int_equal(write(s[0].ch->fd, forged, sizeof(forged)), (ssize_t)sizeof(forged));
    uint8_t buf[16];
    expect_msg(vs_channel_read_exact(s[1].ch, buf, sizeof(buf)), "TLS:", "altered in transit");
    close_sides(s);
}

static void other_key_refused_on_both_sides(void **state)
{
    (void)state;
    struct vs_security_opts src = psk_opts("other-psk"), dst = psk_opts("psk");
    struct side s[2];
    assert_int_equal(handshake(&src, &dst, s), 0);
    assert_non_null(strstr(s[0].res.error, "does not hold this source's pre-shared key"));
    assert_non_null(strstr(s[1].res.error, "holds a different pre-shared key"));
    assert_non_null(strstr(s[0].res.error, "the destination dst-addr"));  /* names the peer */
    assert_non_null(strstr(s[1].res.error, "the source src-addr"));
    assert_string_equal(s[0].ch->ops->name, "socket");        /* left plain for the caller */
    close_sides(s);
}

static void certificate_checks_refuse(void **state)
{
    (void)state;
    struct vs_security_opts dst = cert_opts("dest", "ca.pem", NULL);
    struct {
        struct vs_security_opts src;
        const char *src_says, *dst_says;
    } cases[] = {
        { cert_opts("other", "ca.pem", NULL), "unknown CA", "did not sign" },
        { cert_opts("expired", "ca.pem", NULL), "as expired", "expired on" },
        { cert_opts("source", "other-ca.pem", NULL), "did not sign", "rejected this destination's" },
        { cert_opts("source", "ca.pem", "somebody-else"), "is not issued to 'somebody-else'",
          "rejected this destination's" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct side s[2];
        assert_int_equal(handshake(&cases[i].src, &dst, s), 0);
        if (!strstr(s[0].res.error, cases[i].src_says) ||
            !strstr(s[1].res.error, cases[i].dst_says))
            fail_msg("case %zu: source says '%s', destination says '%s'", i, s[0].res.error,
                     s[1].res.error);
        close_sides(s);
    }
}

/* One side alone on its end: the other end says nothing, or the wrong thing (already
 * there when the handshake starts). */
static struct vs_tls_result lone(enum vs_tls_role role, const void *bytes, size_t len,
                                 int timeout_ms)
{
    struct vs_security_opts o = psk_opts("psk");
    struct vs_tls *t;
    assert_int_equal(vs_tls_new(&o, role, &t), 0);
    struct vs_channel *ch[2];
    channel_pair(ch);
    int me = role == VS_TLS_DESTINATION;
    if (len)
        assert_int_equal(write(ch[!me]->fd, bytes, len), (ssize_t)len);
    struct vs_tls_result res;
    assert_int_equal(vs_tls_secure(t, &ch[me], 1, timeout_ms, &res), 0);
    vs_channel_close(ch[0]);
    vs_channel_close(ch[1]);
    vs_tls_free(t);
    return res;
}

static void silent_and_foreign_peers(void **state)
{
    (void)state;
    struct vs_tls_result r = lone(VS_TLS_DESTINATION, NULL, 0, 200);
    assert_int_equal(r.err, -ETIMEDOUT);
    assert_non_null(strstr(r.error, "did not complete the TLS handshake within 0.2 s"));
    r = lone(VS_TLS_DESTINATION, "VSR1\x01\x00", 6, 2000);
    assert_true(r.plain_peer);
    assert_non_null(strstr(r.error, "speaks vmshift without TLS"));
    /* A plain destination's answer (an ABORT record) there before OpenSSL looks. */
    r = lone(VS_TLS_SOURCE, "VSR1\x0c\x00\x00\x00", 8, 2000);
    assert_non_null(strstr(r.error, "answered without TLS"));
    r = lone(VS_TLS_SOURCE, NULL, 0, 200);
    assert_non_null(strstr(r.error, "the destination dst-addr did not complete the TLS handshake"));
    r = lone(VS_TLS_DESTINATION, "GET / HTTP/1.1\r\n", 16, 2000);
    assert_false(r.plain_peer);
    assert_non_null(strstr(r.error, "does not speak TLS (its first byte is 0x47)"));
}

/* With --insecure the record reader names a TLS peer for what it is. */
static void plain_reader_names_a_tls_peer(void **state)
{
    (void)state;
    struct vs_channel *ch[2];
    channel_pair(ch);
    uint8_t client_hello[64] = { 0x16, 0x03, 0x01, 0x00, 0x3b, 0x01 };
    assert_int_equal(write(ch[0]->fd, client_hello, sizeof(client_hello)), 64);
    struct vs_wire_reader r;
    struct vs_wire_header h;
    vs_wire_reader_init(&r, ch[1]);
    expect_msg(vs_wire_read_header(&r, &h), "the peer speaks TLS", "--insecure");
    vs_channel_close(ch[0]);
    vs_channel_close(ch[1]);
}

static void *trickle(void *arg)
{
    int fd = *(int *)arg;
    for (int i = 0; i < 20 && write(fd, "x", 1) == 1; i++)
        usleep(50000);
    return NULL;
}

/* A peer that keeps sending, one byte at a time, still fails at the deadline. */
static void deadline_stops_a_trickling_peer(void **state)
{
    (void)state;
    struct vs_channel *ch[2];
    channel_pair(ch);
    assert_int_equal(vs_channel_set_timeout(ch[1], 5000), 0);
    assert_int_equal(vs_channel_set_deadline(ch[1], 300, "its test record"), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, trickle, &ch[0]->fd), 0);
    uint8_t buf[32];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    expect_msg(vs_channel_read_exact(ch[1], buf, sizeof(buf)), "did not complete its test "
               "record in time", "trickling");
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_true(s >= 0.25 && s < 2.0);
    /* Cleared, the silence timeout alone applies again. */
    assert_int_equal(vs_channel_set_deadline(ch[1], 0, NULL), 0);
    pthread_join(t, NULL);
    vs_channel_close(ch[0]);
    vs_channel_close(ch[1]);
}

static void bad_files_are_named(void **state)
{
    (void)state;
    struct vs_tls *t = NULL;
    struct vs_security_opts o = { 0 };
    vs_security_set(&o, "tls-psk", "/nonexistent/psk");
    vs_security_finish(&o, true);
    expect_msg(vs_tls_new(&o, VS_TLS_SOURCE, &t), "--tls-psk /nonexistent/psk",
               "openssl rand -hex 32");
    FILE *f = fopen(cred("short-psk"), "w");
    fputs("abcd\n", f);
    fclose(f);
    o = psk_opts("short-psk");
    expect_msg(vs_tls_new(&o, VS_TLS_SOURCE, &t), "holds 4 hex digits", "32 to 128");
    f = fopen(cred("bad-psk"), "w");
    fputs("0123456789abcdef0123456789abcdefzz\n", f);
    fclose(f);
    o = psk_opts("bad-psk");
    expect_msg(vs_tls_new(&o, VS_TLS_SOURCE, &t), "'z'", "not a hex digit");
    o = cert_opts("source", "ca.pem", NULL);
    snprintf(o.key, sizeof(o.key), "%s", cred("dest.key"));
    expect_msg(vs_tls_new(&o, VS_TLS_DESTINATION, &t), "is not the key of the certificate",
               "source.pem");
    o = cert_opts("source", "ca.pem", NULL);
    snprintf(o.ca, sizeof(o.ca), "%s", cred("psk"));
    expect_msg(vs_tls_new(&o, VS_TLS_DESTINATION, &t), "--tls-ca", "cannot load");
    assert_null(t);
    o = (struct vs_security_opts){ .mode = VS_SEC_INSECURE };
    assert_int_equal(vs_tls_new(&o, VS_TLS_SOURCE, &t), 0);
    assert_null(t);                     /* --insecure: no TLS at all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_secures_both_ways),
        cmocka_unit_test(cut_loses_what_was_not_read),
        cmocka_unit_test(certificates_with_names_secure),
        cmocka_unit_test(forged_record_is_refused),
        cmocka_unit_test(other_key_refused_on_both_sides),
        cmocka_unit_test(certificate_checks_refuse),
        cmocka_unit_test(silent_and_foreign_peers),
        cmocka_unit_test(plain_reader_names_a_tls_peer),
        cmocka_unit_test(deadline_stops_a_trickling_peer),
        cmocka_unit_test(bad_files_are_named),
    };
    return cmocka_run_group_tests(tests, make_creds, remove_creds);
}
