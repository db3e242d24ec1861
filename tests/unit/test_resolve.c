/* Unit: the pieces of the handshake and of the commit window that need no VM — HELLO
 * admission, reading HELLO_REPLY, the RESOLVE records, the RESOLVE endpoint address,
 * settling calls secured by TLS,
 * the memory channel and the fault points. Records go through a socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "codec/codec.h"
#include "common/clock.h"
#include "common/fault.h"
#include "migrate/precopy/handshake.h"
#include "migrate/commit/resolve_wire.h"
#include "transport/memory_channel.h"
#include "transport/tcp.h"
#include "transport/tls.h"
#include "expect_error.h"
#include "wire_pair.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct pair {
    struct vs_channel *tx, *rx;
    struct vs_wire_writer w;
    struct vs_wire_reader r;
};

static int setup(void **state)
{
    struct pair *p = calloc(1, sizeof(*p));
    if (!p || wire_stream_open(&p->tx, &p->rx, &p->w, &p->r) < 0)
        return -1;
    *state = p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    wire_stream_close(p->tx, p->rx, &p->w, &p->r);
    free(p);
    return 0;
}

static const uint8_t session[VS_WIRE_SESSION_LEN] = "0123456789abcde";

static struct vs_wire_hello good_hello(void)
{
    return (struct vs_wire_hello){ .version_major = VS_WIRE_VERSION_MAJOR,
                                   .version_minor = VS_WIRE_VERSION_MINOR,
                                   .page_size = VS_WIRE_PAGE_SIZE, .ram_size = 64 << 20,
                                   .nr_vcpus = 2, .nr_streams = 1 };
}

static void admission(void **state)
{
    (void)state;
    struct vs_wire_hello h = good_hello();
    assert_int_equal(vs_handshake_admit(&h, sizeof(h), 0, 0), 0);
    expect_msg(vs_handshake_admit(&h, VS_WIRE_HELLO_OLD_SIZE, 0, 0), "is 64 bytes long",
               "expected 104");
    expect_msg(vs_handshake_admit(&h, VS_WIRE_HELLO_V22_SIZE, 0, 0), "is 72 bytes long",
               "expected 104");
    h.machine = 5;         /* 2.3: the machine must be one this vmshift builds */
    expect_msg(vs_handshake_admit(&h, sizeof(h), 0, 0), "machine 5", "upgrade");
    h.machine = VS_WIRE_MACHINE_FLAT;
    assert_int_equal(vs_handshake_admit(&h, sizeof(h), 0, 0), 0);
    h.version_minor = 3;   /* a 2.3 source: 72 bytes, no cpu_features */
    assert_int_equal(vs_handshake_admit(&h, VS_WIRE_HELLO_V22_SIZE, 0, 0), 0);
    expect_msg(vs_handshake_admit(&h, sizeof(h), 0, 0), "is 104 bytes long", "expected 72");
    h.version_minor = 2;   /* before 2.3 the field was reserved: not looked at */
    h.machine = 5;
    assert_int_equal(vs_handshake_admit(&h, VS_WIRE_HELLO_V22_SIZE, 0, 0), 0);
    h = good_hello();
    h.version_minor = 1;   /* a 2.1 source: 64 bytes */
    assert_int_equal(vs_handshake_admit(&h, VS_WIRE_HELLO_OLD_SIZE, 0, 0), 0);
    h = good_hello();
    expect_msg(vs_handshake_admit(&h, sizeof(h), 32 << 20, 0), "exceeds this host's --max-mem",
               "32.0 MiB");
    expect_msg(vs_handshake_admit(&h, sizeof(h), 0, 1), "2 vCPUs exceed this host's "
               "--max-vcpus 1", NULL);
    h.version_major = 1;
    expect_msg(vs_handshake_admit(&h, 48, 0, 0), "version 1.", "upgrade the source");
    h = good_hello();
    h.codecs = 1u << 7;
    expect_msg(vs_handshake_admit(&h, sizeof(h), 0, 0), "codec", NULL);
}

static void reading_the_reply(void **state)
{
    struct pair *p = *state;
    struct vs_wire_hello sent = good_hello();
    sent.codecs = vs_codec_supported_mask() & (1u << VS_CODEC_ZSTD);
    sent.boot_id[0] = 7;
    bool same = false;
    uint32_t features = 0;
    vs_wire_send(&p->w, VS_REC_ABORT, "no room", 8);
    expect_msg(vs_handshake_read_reply(&p->r, &sent, "dst:1", "zstd", &same, &features),
               "the destination aborted: no room", NULL);
    struct vs_wire_hello_reply reply = { .accepted = 0, .reason = "too big" };
    vs_wire_send(&p->w, VS_REC_HELLO_REPLY, &reply, sizeof(reply));
    expect_msg(vs_handshake_read_reply(&p->r, &sent, "dst:1", "zstd", &same, &features),
               "dst:1 refused the VM: too big", NULL);
    reply = (struct vs_wire_hello_reply){ .accepted = 1, .codecs = 0 };
    vs_wire_send(&p->w, VS_REC_HELLO_REPLY, &reply, sizeof(reply));
    if (sent.codecs)
        expect_msg(vs_handshake_read_reply(&p->r, &sent, "dst:1", "zstd", &same, &features),
                   "cannot decode --compress zstd", "--compress none");
    else
        assert_int_equal(vs_handshake_read_reply(&p->r, &sent, "dst:1", "zstd", &same, &features), 0);
    sent.features = VS_FEATURE_POSTCOPY;
    reply = (struct vs_wire_hello_reply){ .accepted = 1, .codecs = sent.codecs,
                                          .features = VS_FEATURE_POSTCOPY | 0x8000 };
    reply.boot_id[0] = 7;
    vs_wire_send(&p->w, VS_REC_HELLO_REPLY, &reply, sizeof(reply));
    assert_int_equal(vs_handshake_read_reply(&p->r, &sent, "dst:1", "zstd", &same, &features), 0);
    assert_true(same);
    assert_int_equal(features, VS_FEATURE_POSTCOPY);   /* only what was offered */
}

static void resolve_records(void **state)
{
    struct pair *p = *state;
    uint32_t st = 0;
    assert_int_equal(vs_resolve_send(&p->w, session, VS_OUTCOME_SRC_GRANTED), 0);
    assert_int_equal(vs_resolve_read(&p->r, session, &st), 0);
    assert_int_equal(st, VS_OUTCOME_SRC_GRANTED);
    uint8_t other[VS_WIRE_SESSION_LEN] = "another session";
    assert_int_equal(vs_resolve_send(&p->w, other, VS_OUTCOME_DST_IN_DOUBT), 0);
    assert_int_equal(vs_resolve_read(&p->r, session, &st), 0);
    assert_int_equal(st, VS_OUTCOME_UNKNOWN);   /* a question about another migration */
    struct vs_wire_resolve bad = { .state = VS_OUTCOME_MAX + 1 };
    vs_wire_send(&p->w, VS_REC_RESOLVE, &bad, sizeof(bad));
    expect_msg(vs_resolve_read(&p->r, session, &st), "RESOLVE: state 9", "1..8");
    vs_wire_send(&p->w, VS_REC_COMMIT, NULL, 0);
    expect_msg(vs_resolve_read(&p->r, session, &st), "expected RESOLVE", "COMMIT");
    assert_string_equal(vs_outcome_name(VS_OUTCOME_DST_IN_DOUBT), "in-doubt");
    assert_string_equal(vs_outcome_name(0), "invalid");
}

static void resolve_endpoint(void **state)
{
    (void)state;
    char buf[96];
    vs_resolve_endpoint("198.18.0.1:40000", 4321, buf, sizeof(buf));
    assert_string_equal(buf, "198.18.0.1:4321");
    vs_resolve_endpoint("[::1]:40000", 4321, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:4321");
}

static void a_refused_call_says_so(void **state)
{
    (void)state;
    struct vs_tcp_listener *l;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(l));
    vs_tcp_listener_close(l);   /* nothing listens there now */
    struct vs_resolve_conn c;
    uint32_t st;
    struct vs_dialer plain;
    vs_dialer_tcp_tls(&plain, NULL, NULL);
    assert_int_equal(vs_resolve_call(addr, &plain, 1000, session, VS_OUTCOME_DST_IN_DOUBT, &st,
                                     &c), -ECONNREFUSED);
}

/* An endpoint for one settling call: TLS server with key file `psk` (NULL: plain), and
 * whatever the caller says, it answers "aborted" (a forged answer when its key is not
 * the caller's). */
struct endpoint {
    struct vs_tcp_listener *l;
    const char *psk;
};

static struct vs_tls *tls_with(const char *psk, enum vs_tls_role role)
{
    struct vs_security_opts o = { 0 };
    assert_int_equal(vs_security_set(&o, psk ? "tls-psk" : "insecure", psk), 0);
    assert_int_equal(vs_security_finish(&o, true), 0);
    struct vs_tls *t;
    assert_int_equal(vs_tls_new(&o, role, &t), 0);
    return t;
}

static void *endpoint_thread(void *arg)
{
    struct endpoint *e = arg;
    struct vs_tls *t = tls_with(e->psk, VS_TLS_DESTINATION);
    struct vs_channel *ch;
    struct vs_tls_result res;
    struct vs_resolve_conn c;
    uint32_t said;
    if (vs_tcp_accept(e->l, 5000, &ch) == 0) {
        vs_tls_secure(t, &ch, 1, 2000, &res);
        if (res.err)
            vs_channel_close(ch);
        else if (vs_resolve_accept(ch, 2000, session, &said, &c) == 0) {   /* closes ch if not */
            vs_resolve_send(&c.w, session, VS_OUTCOME_SRC_ABORTED);
            vs_resolve_close(&c);
        }
    }
    vs_tls_free(t);
    return NULL;
}

static void write_psk(const char *path, char digit)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 64; i++)
        fputc(digit, f);
    fputc('\n', f);
    fclose(f);
    chmod(path, 0600);
}

/* Settling calls are secured like the migration: only a peer holding the key is heard;
 * a failed handshake is an error to retry, never "connection refused" (the proof that
 * the peer process is gone). */
static int call_endpoint(const char *server_psk, const char *client_psk, uint32_t *st)
{
    struct endpoint e = { .psk = server_psk };
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &e.l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(e.l));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, endpoint_thread, &e), 0);
    struct vs_tls *t = tls_with(client_psk, VS_TLS_SOURCE);
    struct vs_resolve_conn c;
    *st = 0;
    struct vs_dialer dialer;
    vs_dialer_tcp_tls(&dialer, t, NULL);
    int rc = vs_resolve_call(addr, &dialer, 2000, session, VS_OUTCOME_DST_IN_DOUBT, st, &c);
    if (rc == 0)
        vs_resolve_close(&c);
    pthread_join(th, NULL);
    vs_tls_free(t);
    vs_tcp_listener_close(e.l);
    return rc;
}

static void only_an_authenticated_peer_settles(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmshift-resolve-XXXXXX", key[64], other[64];
    assert_non_null(mkdtemp(dir));
    snprintf(key, sizeof(key), "%s/psk", dir);
    snprintf(other, sizeof(other), "%s/other", dir);
    write_psk(key, 'a');
    write_psk(other, 'b');
    uint32_t st;
    assert_int_equal(call_endpoint(key, key, &st), 0);
    assert_int_equal(st, VS_OUTCOME_SRC_ABORTED);
    int rc = call_endpoint(other, key, &st);   /* a peer with another key */
    assert_true(rc < 0 && rc != -ECONNREFUSED);
    assert_int_equal(st, 0);
    rc = call_endpoint(NULL, key, &st);         /* a plain peer answering in clear */
    assert_true(rc < 0 && rc != -ECONNREFUSED);
    assert_int_equal(st, 0);
    unlink(key);
    unlink(other);
    rmdir(dir);
}

static void memory_channel(void **state)
{
    (void)state;
    static const uint8_t data[] = "0123456789";
    struct vs_channel *ch;
    uint8_t buf[16];
    assert_int_equal(vs_channel_from_memory(data, 10, 3, &ch), 0);
    assert_int_equal(vs_channel_read_exact(ch, buf, 7), 0);   /* in reads of 3 bytes */
    assert_memory_equal(buf, "0123456", 7);
    assert_int_equal(vs_channel_write(ch, "dropped", 7), 0);
    expect_msg(vs_channel_read_exact(ch, buf, 4), "connection closed by memory", "3 of 4");
    vs_channel_close(ch);
}

static void fault_points(void **state)
{
    (void)state;
    static const uint8_t data[] = "abcdef";
    struct vs_channel *ch;
    assert_int_equal(vs_channel_from_memory(data, 6, 0, &ch), 0);
    uint64_t t0 = vs_clock_ns();
    vs_fault_point("unit.stall", 2, NULL);              /* not the occurrence asked for */
    assert_true(vs_clock_ns() - t0 < 50 * 1000000ull);
    vs_fault_point("unit.stall", 3, NULL);
    assert_true(vs_clock_ns() - t0 >= 100 * 1000000ull);
    t0 = vs_clock_ns();
    vs_fault_point("unit.stall", 3, NULL);              /* each rule fires once */
    assert_true(vs_clock_ns() - t0 < 50 * 1000000ull);
    vs_fault_point("unit.cut", 12345, ch);              /* any occurrence */
    uint8_t b;
    expect_msg(vs_channel_read_exact(ch, &b, 1), "was cut (fault injected)", "after 0 of 1 bytes");
    vs_channel_close(ch);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);   /* as in vmshift: a peer that went away is an error */
    /* Read once, at the first fault point. */
    setenv("VMSHIFT_FAULT", "unit.stall:3:stall=100,unit.cut:*:cut", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(admission),
        cmocka_unit_test_setup_teardown(reading_the_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(resolve_records, setup, teardown),
        cmocka_unit_test(resolve_endpoint),
        cmocka_unit_test(a_refused_call_says_so),
        cmocka_unit_test(only_an_authenticated_peer_settles),
        cmocka_unit_test(memory_channel),
        cmocka_unit_test(fault_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
