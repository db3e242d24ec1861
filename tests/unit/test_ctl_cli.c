/* Unit tests of `vmshift ctl` against a test server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/ctl.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "ctl/ctl_json.h"
#include "ctl/ctl_server.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl_fixture.h"

/* ---- tests: the CLI --------------------------------------------------------------- */

struct captured {
    int status;
    char out[8192];
    char err[8192];
};

static void read_all(int fd, char *buf, size_t len)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
}

static void run_cli(struct captured *c, int argc, char **argv)
{
    fflush(stdout);
    fflush(stderr);
    char tmpl_o[] = "/tmp/vs-ctl-out-XXXXXX", tmpl_e[] = "/tmp/vs-ctl-err-XXXXXX";
    int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e);
    assert_true(fo >= 0 && fe >= 0);
    unlink(tmpl_o);
    unlink(tmpl_e);
    int so = dup(1), se = dup(2);
    dup2(fo, 1);
    dup2(fe, 2);
    c->status = cli_ctl_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    read_all(fo, c->out, sizeof(c->out));
    read_all(fe, c->err, sizeof(c->err));
    close(fo);
    close(fe);
}

static void test_cli(void **state)
{
    struct fixture *f = *state;
    struct captured c;

    char *ok_args[] = { "ctl", f->path, "echo", "n=3", "mem=4G", "on=true", "--raw" };
    run_cli(&c, 7, ok_args);
    assert_int_equal(c.status, 0);
    assert_string_equal(c.out, "{\"ok\":true,\"n\":3,\"mem\":\"4G\",\"on\":true}\n");
    assert_string_equal(c.err, "");

    char *pretty[] = { "ctl", "--timeout", "5000", f->path, "echo", "p=/x" };
    run_cli(&c, 6, pretty);
    assert_int_equal(c.status, 0);
    struct json_object *o = json_tokener_parse(c.out);
    assert_non_null(o);
    assert_string_equal(reply_str(o, "p"), "/x");
    json_object_put(o);
    assert_non_null(strstr(c.out, "\n  \"p\": \"/x\"\n")); /* pretty, "/" unescaped */
    assert_true(strchr(c.out, '\n') < c.out + strlen(c.out) - 1);

    char *fail[] = { "ctl", f->path, "fail", "--timeout=3000" };
    run_cli(&c, 4, fail);
    assert_int_equal(c.status, 1);
    assert_string_equal(c.err, "vmshift ctl: fail failed: boom 42\n");
    assert_non_null(strstr(c.out, "boom 42"));

    char missing[200];
    snprintf(missing, sizeof(missing), "%s/nope.sock", f->dir);
    char *conn[] = { "ctl", missing, "status" };
    run_cli(&c, 3, conn);
    assert_int_equal(c.status, 1);   /* a runtime failure, not a usage error */
    assert_non_null(strstr(c.err, "vmshift ctl: cannot connect to control socket"));
    assert_non_null(strstr(c.err, "is the VM running"));
    assert_string_equal(c.out, "");

    char *help[] = { "ctl", "--help" };
    run_cli(&c, 2, help);
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.out, "usage: vmshift ctl SOCKET|HOST:PORT COMMAND"));
    assert_non_null(strstr(c.out, "--tls-cert FILE"));
    /* It lists the commands a VM and a host agent take. */
    const char *commands[] = { "status", "pause", "resume", "quit", "set-rate", "dirty-rate",
                               "digest", "debug-poke", "migrate", "migrate-status", "cancel",
                               "start-postcopy", "resume-migration", "host-status", "vm-list",
                               "vm-start", "vm-receive", "vm-stop", "vm-ctl", "host-shutdown" };
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strstr(c.out, commands[i]))
            fail_msg("vmshift ctl --help does not list '%s'", commands[i]);

    char *noargs[] = { "ctl" };
    run_cli(&c, 1, noargs);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "missing SOCKET and COMMAND"));

    char *nocmd[] = { "ctl", f->path };
    run_cli(&c, 2, nocmd);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "missing COMMAND"));

    char *badkv[] = { "ctl", f->path, "echo", "oops" };
    run_cli(&c, 4, badkv);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "argument 'oops' is not of the form key=value"));

    char *badopt[] = { "ctl", f->path, "echo", "--bogus" };
    run_cli(&c, 4, badopt);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "unknown option '--bogus'"));

    char *badtimeout[] = { "ctl", f->path, "echo", "--timeout", "soon" };
    run_cli(&c, 5, badtimeout);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "--timeout 'soon'"));

    char *cmdkey[] = { "ctl", f->path, "echo", "cmd=x" };
    run_cli(&c, 4, cmdkey);
    assert_int_equal(c.status, 2);

    /* The security options are for a HOST:PORT, which needs them. */
    char *sec_on_socket[] = { "ctl", f->path, "echo", "--insecure" };
    run_cli(&c, 4, sec_on_socket);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "is a socket path: the security options"));
    char *tcp_without[] = { "ctl", "127.0.0.1:9", "host-status" };
    run_cli(&c, 3, tcp_without);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "127.0.0.1:9 is a TCP address"));
    assert_non_null(strstr(c.err, "--tls-cert FILE --tls-key FILE --tls-ca FILE"));
    char *half[] = { "ctl", "127.0.0.1:9", "host-status", "--tls-cert=/nonexistent.pem" };
    run_cli(&c, 4, half);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "missing: --tls-key --tls-ca"));
    char *novalue[] = { "ctl", "127.0.0.1:9", "host-status", "--tls-ca" };
    run_cli(&c, 4, novalue);
    assert_int_equal(c.status, 2);
    assert_non_null(strstr(c.err, "--tls-ca needs a value"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* belt and braces: the code under test uses MSG_NOSIGNAL */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cli, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
