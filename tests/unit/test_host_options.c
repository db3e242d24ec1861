/* Unit tests: vmshiftd's options (src/host/host_options.c) for serving other hosts: --listen
 * needs a security choice, --ctl or --listen is needed, --state-dir without --ctl; the
 * migration address defaults to --listen's host; the daemon's security options become its
 * receivers' unless --receive-opt chooses other ones (src/host/host_spawn.c), --tls-name
 * staying the listener's own. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "expect_error.h"
#include "host/host_options.h"
#include "host/host_spawn.h"

#define ARGV(...) ((char *[]){ "vmshiftd", __VA_ARGS__, NULL })
#define ARGC(...) ((int)(sizeof((char *[]){ "vmshiftd", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(o, ...) host_options_parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), "/x/vmshiftd", (o))

static struct host_options o;

/* The `vmshift receive` command line, joined by spaces. */
static const char *receive_line(void)
{
    static char line[2048];
    struct host_argv a;
    assert_int_equal(host_receive_argv("/x/vmshift", &o.receive, "/d/vm", "/d/vm/ctl.sock",
                                       1 << 20, &a), 0);
    line[0] = '\0';
    for (int i = 0; i < a.n; i++)
        snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", i ? " " : "",
                 a.v[i]);
    host_argv_free(&a);
    return line;
}

static void unix_socket_only(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&o, "--ctl", "/run/h.sock", "--receive-opt", "--insecure"), 0);
    assert_null(o.listen);
    assert_string_equal(o.receive.listen_addr, "127.0.0.1");
    assert_int_equal(o.security.mode, VS_SEC_UNSET);
    assert_non_null(strstr(receive_line(), "--listen 127.0.0.1:0"));
    assert_non_null(strstr(receive_line(), " --insecure"));
}

static void listen_with_certificates(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&o, "--listen", "198.18.0.1:7000", "--state-dir", "/var/lib/v",
                           "--tls-cert", "h.pem", "--tls-key", "h.key", "--tls-ca", "ca.pem",
                           "--tls-name", "operator"), 0);
    assert_null(o.ctl);
    assert_string_equal(o.listen, "198.18.0.1:7000");
    assert_string_equal(o.name, "198.18.0.1:7000");
    assert_string_equal(o.receive.listen_addr, "198.18.0.1");
    assert_int_equal(o.security.mode, VS_SEC_CERT);
    const char *line = receive_line();
    assert_non_null(strstr(line, "--listen 198.18.0.1:0"));
    assert_non_null(strstr(line, " --tls-cert h.pem --tls-key h.key --tls-ca ca.pem"));
    assert_null(strstr(line, "--tls-name"));   /* the listener's own */
}

static void receive_opt_chooses_other_security(void **state)
{
    (void)state;
    assert_int_equal(PARSE(&o, "--ctl", "/run/h.sock", "--listen", "0.0.0.0:7000",
                           "--tls-psk", "k", "--receive-opt", "--tls-psk",
                           "--receive-opt", "other-k", "--migration-addr", "198.18.0.9"), 0);
    assert_string_equal(o.receive.listen_addr, "198.18.0.9");
    const char *line = receive_line();
    assert_non_null(strstr(line, "--tls-psk other-k"));
    assert_null(strstr(line, "--tls-psk k"));
    /* All addresses: which one other hosts reach is unknown, loopback it is. */
    assert_int_equal(PARSE(&o, "--ctl", "/run/h.sock", "--listen", "0.0.0.0:7000",
                           "--insecure"), 0);
    assert_string_equal(o.receive.listen_addr, "127.0.0.1");
    assert_non_null(strstr(receive_line(), " --insecure"));
    assert_int_equal(PARSE(&o, "--ctl", "/run/h.sock", "--listen", "[::1]:7000",
                           "--insecure"), 0);
    assert_string_equal(o.receive.listen_addr, "::1");
    assert_non_null(strstr(receive_line(), "--listen [::1]:0"));
}

static void mistakes_are_named(void **state)
{
    (void)state;
    expect_msg(PARSE(&o, "--listen", "198.18.0.1:7000", "--state-dir", "/v"),
               "choose how --listen", "--insecure");
    expect_msg(PARSE(&o, "--state-dir", "/v"), "--ctl SOCKET or --listen HOST:PORT", NULL);
    expect_msg(PARSE(&o, "--listen", "198.18.0.1:7000", "--insecure"), "--state-dir DIR",
               NULL);
    expect_msg(PARSE(&o, "--ctl", "/s", "--listen", "198.18.0.1", "--insecure"), "--listen",
               "no port");
    expect_msg(PARSE(&o, "--ctl", "/s", "--listen", "a:1", "--tls-cert", "c"),
               "missing: --tls-key --tls-ca", NULL);
    expect_msg(PARSE(&o, "--ctl", "/s", "--listen", "a:1", "--insecure", "--tls-psk", "k"),
               "not several", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unix_socket_only),
        cmocka_unit_test(listen_with_certificates),
        cmocka_unit_test(receive_opt_chooses_other_security),
        cmocka_unit_test(mistakes_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
