/* Unit tests: the control protocol over TCP with TLS (vmshiftd --listen; src/ctl/ctl_tcp.c,
 * the TCP listener of src/ctl/ctl_server.c, src/transport/tls_stream.c), on 127.0.0.1 in
 * one process, the server polled by a thread: a client with a certificate from the CA runs
 * commands, one session after the other and with replies of many TLS records; a client
 * with another CA's certificate, one without a certificate, and a plain TCP client are
 * refused before any command runs, while a silent client never holds up the others; at
 * most 16 clients authenticate at once; a caller's session with a host is kept between
 * requests and opened again once after the host restarted; an --insecure listener serves
 * plain clients and a TLS client is told so. Credentials from
 * scripts/make-test-certs.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"
#include "ctl/ctl_tcp.h"
#include "host/host_client.h"
#include "transport/security.h"
#include "transport/tls.h"

static char creds[64];
static struct ctl_server *srv;
static struct vs_tls *srv_tls;
static pthread_t thread;
static atomic_bool stop;
static atomic_int handled;
static char addr[64];

static const char *cred(const char *file)
{
    static char paths[8][128];
    static unsigned next;
    char *p = paths[next++ % 8];
    snprintf(p, 128, "%s/%s", creds, file);
    return p;
}

static int h_echo(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx;
    atomic_fetch_add(&handled, 1);
    json_object_object_foreach(args, key, val) {
        json_object_object_add(*ret, key, json_object_get(val));
    }
    return 0;
}

/* big bytes=N: a reply of N bytes, many TLS records */
static int h_big(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx;
    atomic_fetch_add(&handled, 1);
    uint64_t n;
    int rc = ctl_json_get_u64(args, "bytes", &n);
    if (rc)
        return rc;
    char *text = malloc(n + 1);
    for (uint64_t i = 0; i < n; i++)
        text[i] = (char)('a' + i % 26);
    text[n] = '\0';
    json_object_object_add(*ret, "text", json_object_new_string(text));
    free(text);
    return 0;
}

static const struct ctl_command table[] = {
    { "echo", h_echo, { { NULL } }, true, "echo the arguments" },
    { "big", h_big, { { "bytes", CTL_ARG_SIZE, true } }, false, "a long reply" },
    { NULL },
};

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        ctl_server_poll(srv, 20);
    return NULL;
}

/* A second server, plain TCP (--insecure), polled by its own thread. */
static struct ctl_server *plain_srv;
static atomic_bool plain_stop;

static void *serve_plain(void *arg)
{
    (void)arg;
    while (!atomic_load(&plain_stop))
        ctl_server_poll(plain_srv, 20);
    return NULL;
}

static struct vs_security_opts cert_opts(const char *cert, const char *key)
{
    struct vs_security_opts o = { 0 };
    assert_int_equal(vs_security_set(&o, "tls-cert", cred(cert)), 0);
    assert_int_equal(vs_security_set(&o, "tls-key", cred(key)), 0);
    assert_int_equal(vs_security_set(&o, "tls-ca", cred("ca.pem")), 0);
    return o;
}

/* The server on addr ("127.0.0.1:0" the first time), served by a thread. */
static int server_start(const char *where)
{
    atomic_store(&stop, false);
    if (ctl_server_create(&srv, table, NULL) || ctl_server_listen_tcp(srv, where, srv_tls))
        return -1;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ctl_server_tcp_port(srv));
    return pthread_create(&thread, NULL, serve, NULL) == 0 ? 0 : -1;
}

static void server_stop(void)
{
    atomic_store(&stop, true);
    pthread_join(thread, NULL);
    ctl_server_close(srv);
    srv = NULL;
}

static int setup(void **state)
{
    (void)state;
    strcpy(creds, "/tmp/vmshift-unit-creds-XXXXXX");
    if (!mkdtemp(creds))
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s/scripts/make-test-certs.sh %s >/dev/null", VMSHIFT_SOURCE_DIR,
             creds);
    if (system(cmd) != 0)
        return -1;
    struct vs_security_opts o = cert_opts("dest.pem", "dest.key");
    if (vs_security_finish(&o, true) ||
        vs_tls_new_for(&o, VS_TLS_DESTINATION, VS_TLS_FOR_CONTROL, &srv_tls))
        return -1;
    return server_start("127.0.0.1:0");
}

static int teardown(void **state)
{
    (void)state;
    server_stop();
    vs_tls_free(srv_tls);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", creds);
    return system(cmd) == 0 ? 0 : -1;
}

static struct ctl_remote client(const char *cert, const char *key)
{
    struct vs_security_opts o = cert_opts(cert, key);
    struct ctl_remote r;
    assert_int_equal(ctl_remote_init(&r, &o, "the test's connections"), 0);
    return r;
}

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(ctl_server_tcp_port(srv)) };
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void addresses(void **state)
{
    (void)state;
    assert_true(ctl_is_tcp_address("198.18.0.1:7000"));
    assert_true(ctl_is_tcp_address("[::1]:7000"));
    assert_true(ctl_is_tcp_address("host-b:7000"));
    assert_false(ctl_is_tcp_address("/run/vmshift/vmshiftd.sock"));
    assert_false(ctl_is_tcp_address("host.sock"));
    assert_false(ctl_is_tcp_address("./a:1"));
    assert_false(ctl_is_tcp_address("a:"));
    assert_false(ctl_is_tcp_address(":7000"));
    assert_false(ctl_is_tcp_address("a:70x"));
}

static void authenticated_client_runs_commands(void **state)
{
    (void)state;
    struct ctl_remote r = client("source.pem", "source.key");
    int before = atomic_load(&handled);
    struct json_object *args = json_object_new_object(), *reply = NULL;
    json_object_object_add(args, "word", json_object_new_string("hello"));
    assert_int_equal(ctl_command_to(addr, &r, "echo", args, &reply, 5000), 0);
    assert_true(json_object_get_boolean(json_object_object_get(reply, "ok")));
    assert_string_equal(json_object_get_string(json_object_object_get(reply, "word")), "hello");
    json_object_put(reply);
    json_object_put(args);

    /* One session, several commands, a reply of ~40 TLS records. */
    struct ctl_qmp *q;
    assert_int_equal(ctl_qmp_connect_to(addr, &r, 5000, &q), 0);
    for (int i = 0; i < 3; i++) {
        args = json_object_new_object();
        json_object_object_add(args, "bytes", json_object_new_int(600000 + i));
        assert_int_equal(ctl_qmp_execute(q, "big", args, &reply), 0);
        struct json_object *ret = json_object_object_get(reply, "return");
        const char *text = json_object_get_string(json_object_object_get(ret, "text"));
        assert_non_null(text);
        assert_int_equal(strlen(text), 600000 + i);
        assert_int_equal(text[599999], 'a' + 599999 % 26);
        json_object_put(reply);
        json_object_put(args);
    }
    ctl_qmp_close(q);
    assert_int_equal(atomic_load(&handled), before + 4);
    ctl_remote_free(&r);
}

static void other_ca_is_refused(void **state)
{
    (void)state;
    struct ctl_remote r = client("other.pem", "other.key");
    int before = atomic_load(&handled);
    struct json_object *reply = NULL;
    assert_true(ctl_command_to(addr, &r, "echo", NULL, &reply, 5000) < 0);
    assert_null(reply);
    assert_non_null(strstr(vs_last_error(), "rejected this client's certificate"));
    assert_non_null(strstr(vs_last_error(), "unknown CA"));
    assert_int_equal(atomic_load(&handled), before);
    ctl_remote_free(&r);
}

/* A TLS client that presents no certificate gets no greeting: the server ends the
 * handshake with an alert. */
static void no_certificate_is_refused(void **state)
{
    (void)state;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, cred("ca.pem"), NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int fd = raw_connect();
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    int before = atomic_load(&handled);
    int hs = SSL_connect(ssl);   /* TLS 1.3: the client finishes before the server checks */
    char buf[256];
    int n = hs == 1 ? SSL_read(ssl, buf, sizeof(buf) - 1) : -1;
    assert_true(n <= 0);         /* no greeting, only an alert */
    assert_int_equal(atomic_load(&handled), before);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
}

/* A plain client gets nothing (the server waits for TLS); it does not hold up others. */
static void plain_client_is_refused_and_blocks_nobody(void **state)
{
    (void)state;
    int silent = raw_connect();
    struct ctl_remote plain = { .tls = NULL, .insecure = true };
    struct json_object *reply = NULL;
    assert_true(ctl_command_to(addr, &plain, "echo", NULL, &reply, 1000) < 0);
    assert_non_null(strstr(vs_last_error(), "waits for a TLS client"));
    struct ctl_remote r = client("source.pem", "source.key");
    assert_int_equal(ctl_command_to(addr, &r, "echo", NULL, &reply, 5000), 0);
    json_object_put(reply);
    close(silent);
    ctl_remote_free(&r);
}

static void handshakes_are_limited(void **state)
{
    (void)state;
    int silent[16];
    for (int i = 0; i < 16; i++)
        silent[i] = raw_connect();
    usleep(300000);   /* the server accepts them all */
    struct ctl_remote r = client("source.pem", "source.key");
    struct json_object *reply = NULL;
    assert_true(ctl_command_to(addr, &r, "echo", NULL, &reply, 5000) < 0);
    assert_non_null(strstr(vs_last_error(), "it refused this client"));
    for (int i = 0; i < 16; i++)
        close(silent[i]);
    usleep(300000);   /* the server notices */
    assert_int_equal(ctl_command_to(addr, &r, "echo", NULL, &reply, 5000), 0);
    json_object_put(reply);
    ctl_remote_free(&r);
}

/* host_call keeps one session per host; after the host restarted, the request goes out
 * once more on a new session, and runs once. */
static void sessions_are_kept_and_renewed(void **state)
{
    (void)state;
    struct ctl_remote r = client("client.pem", "client.key");
    struct host_links l;
    host_links_init(&l, &r);
    int before = atomic_load(&handled);
    assert_int_equal(host_call(&l, addr, "echo", NULL, NULL), 0);
    struct ctl_qmp *first = l.link[0].q;
    assert_non_null(first);
    assert_int_equal(host_call(&l, addr, "echo", NULL, NULL), 0);
    assert_ptr_equal(l.link[0].q, first);
    assert_int_equal(l.n, 1);
    char again[64];
    snprintf(again, sizeof(again), "%s", addr);
    server_stop();                       /* a restarted daemon, on the same port */
    assert_int_equal(server_start(again), 0);
    assert_int_equal(host_call(&l, addr, "echo", NULL, NULL), 0);
    assert_int_equal(atomic_load(&handled), before + 3);
    /* An unknown command fails as a command, the session stays. */
    assert_true(host_call(&l, addr, "nope", NULL, NULL) < 0);
    assert_non_null(strstr(vs_last_error(), "nope"));
    assert_non_null(l.link[0].q);
    host_links_close(&l);
    ctl_remote_free(&r);
}

/* --insecure: plain TCP serves a plain client; a TLS client is told the server has no TLS. */
static void insecure_listener(void **state)
{
    (void)state;
    assert_int_equal(ctl_server_create(&plain_srv, table, NULL), 0);
    assert_int_equal(ctl_server_listen_tcp(plain_srv, "127.0.0.1:0", NULL), 0);
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%d", ctl_server_tcp_port(plain_srv));
    pthread_t t;
    atomic_store(&plain_stop, false);
    assert_int_equal(pthread_create(&t, NULL, serve_plain, NULL), 0);
    struct ctl_remote plain = { .tls = NULL, .insecure = true };
    struct json_object *args = json_object_new_object(), *reply = NULL;
    json_object_object_add(args, "word", json_object_new_string("plain"));
    assert_int_equal(ctl_command_to(where, &plain, "echo", args, &reply, 5000), 0);
    assert_string_equal(json_object_get_string(json_object_object_get(reply, "word")), "plain");
    json_object_put(reply);
    json_object_put(args);
    struct ctl_remote r = client("client.pem", "client.key");
    assert_true(ctl_command_to(where, &r, "echo", NULL, &reply, 5000) < 0);
    assert_non_null(strstr(vs_last_error(), "answered without TLS"));
    ctl_remote_free(&r);
    atomic_store(&plain_stop, true);
    pthread_join(t, NULL);
    ctl_server_close(plain_srv);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses),
        cmocka_unit_test(authenticated_client_runs_commands),
        cmocka_unit_test(other_ca_is_refused),
        cmocka_unit_test(no_certificate_is_refused),
        cmocka_unit_test(plain_client_is_refused_and_blocks_nobody),
        cmocka_unit_test(handshakes_are_limited),
        cmocka_unit_test(sessions_are_kept_and_renewed),
        cmocka_unit_test(insecure_listener),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
