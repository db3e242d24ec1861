/* Unit tests: the TCP transport (src/transport/tcp.c) on the loopback interface. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "expect_error.h"
#include "transport/tcp.h"

static void parse_good_addresses(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

    assert_int_equal(vs_tcp_parse_addr("198.18.0.1:4444", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(sin->sin_port), 4444);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0xc6120001u);

    assert_int_equal(vs_tcp_parse_addr("0.0.0.0:0", &ss, &len), 0);
    assert_int_equal(ntohs(sin->sin_port), 0);
    assert_int_equal(vs_tcp_parse_addr("127.0.0.1:65535", &ss, &len), 0);
    assert_int_equal(ntohs(sin->sin_port), 65535);

    assert_int_equal(vs_tcp_parse_addr("[::1]:4444", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(sin6->sin6_port), 4444);
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

    assert_int_equal(vs_tcp_parse_addr("localhost:5555", &ss, &len), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    assert_int_equal(ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port), 5555);
}

static void parse_bad_addresses(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    expect_msg(vs_tcp_parse_addr("", &ss, &len), "empty address", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1", &ss, &len), "'127.0.0.1' has no port", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1:", &ss, &len), "'127.0.0.1:' has no port", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1:65536", &ss, &len), "bad port '65536'", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1:44x", &ss, &len), "bad port '44x'", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1:-1", &ss, &len), "bad port '-1'", NULL);
    expect_msg(vs_tcp_parse_addr("127.0.0.1:99999999999999999999", &ss, &len), "bad port",
               NULL);
    expect_msg(vs_tcp_parse_addr(":4444", &ss, &len), "':4444' has an empty", NULL);
    expect_msg(vs_tcp_parse_addr("::1:4444", &ss, &len), "without brackets", NULL);
    expect_msg(vs_tcp_parse_addr("[::1:4444", &ss, &len), "no ']'", NULL);
    expect_msg(vs_tcp_parse_addr("[::1]", &ss, &len), "'[::1]' has no port", NULL);
    expect_msg(vs_tcp_parse_addr("[nonsense]:1", &ss, &len), "'nonsense'",
               "not an IPv6 address");
    expect_msg(vs_tcp_parse_addr("no-such-host.invalid:4444", &ss, &len),
               "unknown host 'no-such-host.invalid'", "no-such-host.invalid:4444");
}

struct echo {
    struct vs_tcp_listener *l;
    int rc;
};

/* Accept one connection, read 8 bytes, send them back doubled, then a 4 MiB block. */
static void *echo_server(void *arg)
{
    struct echo *e = arg;
    struct vs_channel *ch;
    uint64_t v;
    e->rc = vs_tcp_accept(e->l, 5000, &ch);
    if (e->rc < 0)
        return NULL;
    e->rc = vs_channel_read_exact(ch, &v, sizeof(v));
    v *= 2;
    if (e->rc == 0)
        e->rc = vs_channel_write(ch, &v, sizeof(v));
    uint8_t *big = malloc(4 << 20);
    for (size_t i = 0; big && i < (4 << 20); i++)
        big[i] = (uint8_t)(i * 13);
    if (e->rc == 0)
        e->rc = big ? vs_channel_write(ch, big, 4 << 20) : -1;
    free(big);
    vs_channel_close(ch);
    return NULL;
}

static void connect_and_exchange(void **state)
{
    (void)state;
    struct vs_tcp_listener *l;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    int port = vs_tcp_listener_port(l);
    assert_true(port > 0 && port < 65536);

    struct echo e = { l, -1 };
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, echo_server, &e), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct vs_channel *ch;
    assert_int_equal(vs_tcp_connect(addr, 2000, &ch), 0);
    assert_string_equal(ch->ops->name, "socket");
    assert_string_equal(ch->peer, addr);
    assert_int_equal(vs_channel_set_timeout(ch, 5000), 0);

    uint64_t v = 21;
    assert_int_equal(vs_channel_write(ch, &v, sizeof(v)), 0);
    assert_int_equal(vs_channel_read_exact(ch, &v, sizeof(v)), 0);
    assert_int_equal(v, 42);
    uint8_t *big = malloc(4 << 20);
    assert_non_null(big);
    assert_int_equal(vs_channel_read_exact(ch, big, 4 << 20), 0);
    for (size_t i = 0; i < (4 << 20); i++)
        if (big[i] != (uint8_t)(i * 13))
            fail_msg("byte %zu differs", i);
    free(big);
    assert_int_equal(ch->bytes_sent, 8);
    assert_int_equal(ch->bytes_received, 8 + (4 << 20));

    /* The server closed: the next read reports it, naming the peer. */
    expect_msg(vs_channel_read_exact(ch, &v, sizeof(v)), "connection closed by", addr);
    pthread_join(t, NULL);
    assert_int_equal(e.rc, 0);
    vs_channel_close(ch);
    vs_tcp_listener_close(l);
}

static void accept_times_out(void **state)
{
    (void)state;
    struct vs_tcp_listener *l;
    struct vs_channel *ch = (struct vs_channel *)1;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(l));
    int rc = vs_tcp_accept(l, 200, &ch);
    assert_int_equal(rc, -ETIMEDOUT);
    assert_null(ch);
    expect_msg(rc, "no migration arrived on", addr);
    expect_msg(rc, "within 0.2 s", NULL);
    vs_tcp_listener_close(l);
}

static void connect_refused(void **state)
{
    (void)state;
    struct vs_tcp_listener *l;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    int port = vs_tcp_listener_port(l);
    vs_tcp_listener_close(l);
    char addr[64], hint[128];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    snprintf(hint, sizeof(hint), "is `vmshift receive --listen %s` running there?", addr);
    struct vs_channel *ch;
    int rc = vs_tcp_connect(addr, 2000, &ch);
    assert_int_equal(rc, -ECONNREFUSED);
    expect_msg(rc, "cannot connect to 127.0.0.1:", hint);
    expect_msg(rc, "Connection refused", NULL);
}

static void connect_bad_address(void **state)
{
    (void)state;
    struct vs_channel *ch;
    expect_msg(vs_tcp_connect("127.0.0.1", 1000, &ch), "cannot connect", "has no port");
}

static void listen_address_in_use(void **state)
{
    (void)state;
    struct vs_tcp_listener *l, *l2;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(l));
    int rc = vs_tcp_listen(addr, &l2);
    assert_int_equal(rc, -EADDRINUSE);
    expect_msg(rc, addr, "address already in use");
    vs_tcp_listener_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_good_addresses),
        cmocka_unit_test(parse_bad_addresses),
        cmocka_unit_test(connect_and_exchange),
        cmocka_unit_test(accept_times_out),
        cmocka_unit_test(connect_refused),
        cmocka_unit_test(connect_bad_address),
        cmocka_unit_test(listen_address_in_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
