/* The dialer the migration engine opens its connections through (transport/dialer.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "transport/dialer.h"
#include "transport/memory_channel.h"
#include "transport/tcp.h"

static const uint8_t greeting[] = "hello";

struct fake {
    unsigned connects, secures;
    int secure_err;
};

static int fake_connect(void *ctx, const char *addr, int timeout_ms, struct vs_channel **out)
{
    struct fake *f = ctx;
    (void)timeout_ms;
    f->connects++;
    if (strcmp(addr, "nowhere") == 0)
        return vs_fail(ECONNREFUSED, "nothing listens at %s", addr);
    return vs_channel_from_memory(greeting, sizeof(greeting), 0, out);
}

static void fake_secure(void *ctx, struct vs_channel **chs, unsigned n, int timeout_ms,
                        struct vs_tls_result *res)
{
    struct fake *f = ctx;
    (void)chs, (void)timeout_ms;
    for (unsigned i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof(res[i]));
        res[i].err = f->secure_err;
        if (f->secure_err)
            snprintf(res[i].error, sizeof(res[i].error), "peer's certificate refused");
    }
    f->secures++;
}

static void dial_one_goes_through_the_dialer(void **state)
{
    (void)state;
    struct fake f = { 0 };
    struct vs_dialer d = { fake_connect, fake_secure, &f, NULL, NULL };
    struct vs_channel *ch = NULL;
    assert_int_equal(vs_dial_one(&d, "peer:1", 1000, &ch, NULL), 0);
    assert_non_null(ch);
    assert_int_equal(f.connects, 1);
    assert_int_equal(f.secures, 1);
    char buf[8] = { 0 };
    assert_int_equal(vs_channel_read_exact(ch, buf, sizeof(greeting)), 0);
    assert_string_equal(buf, "hello");
    vs_channel_close(ch);
}

static void a_refused_security_step_closes_and_says_why(void **state)
{
    (void)state;
    struct fake f = { .secure_err = -EACCES };
    struct vs_dialer d = { fake_connect, fake_secure, &f, NULL, NULL };
    struct vs_channel *ch = NULL;
    struct vs_tls_result res;
    assert_int_equal(vs_dial_one(&d, "peer:1", 1000, &ch, &res), -EACCES);
    assert_null(ch);
    assert_non_null(strstr(vs_last_error(), "certificate refused"));
    assert_int_equal(vs_dial_one(&d, "nowhere", 1000, &ch, NULL), -ECONNREFUSED);
    assert_int_equal(f.secures, 1);   /* nothing to secure when the connect failed */
}

static void no_secure_step_means_plain(void **state)
{
    (void)state;
    struct fake f = { 0 };
    struct vs_dialer d = { fake_connect, NULL, &f, NULL, NULL };
    struct vs_channel *chs[2];
    struct vs_tls_result res[2];
    memset(res, 0xff, sizeof(res));
    assert_int_equal(vs_dialer_connect(&d, "a", 0, &chs[0]), 0);
    assert_int_equal(vs_dialer_connect(&d, "b", 0, &chs[1]), 0);
    vs_dialer_secure(&d, chs, 2, 0, res);
    assert_int_equal(res[0].err, 0);
    assert_int_equal(res[1].err, 0);
    vs_channel_close(chs[0]);
    vs_channel_close(chs[1]);
}

/* The default: TCP, and with tls NULL (--insecure) the channel stays plain. */
static void default_dialer_is_tcp(void **state)
{
    (void)state;
    struct vs_tcp_listener *l;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(l));
    struct vs_dialer d;
    vs_dialer_tcp_tls(&d, NULL, NULL);
    struct vs_channel *out, *in;
    assert_int_equal(vs_dial_one(&d, addr, 2000, &out, NULL), 0);
    assert_int_equal(vs_tcp_accept(l, 2000, &in), 0);
    assert_int_equal(vs_channel_write(out, "ping", 4), 0);
    char buf[5] = { 0 };
    assert_int_equal(vs_channel_read_exact(in, buf, 4), 0);
    assert_string_equal(buf, "ping");
    vs_channel_close(out);
    vs_channel_close(in);
    vs_tcp_listener_close(l);
}

static void insecure(struct vs_security_opts *o)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(vs_security_set(o, "insecure", NULL), 0);
    assert_int_equal(vs_security_finish(o, true), 0);
}

/* Dial the default way to a fresh listener; *in is the accepted side. */
static void dial_default(struct vs_dialer *d, struct vs_channel **out, struct vs_channel **in)
{
    struct vs_tcp_listener *l;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", vs_tcp_listener_port(l));
    assert_int_equal(vs_dial_one(d, addr, 2000, out, NULL), 0);
    assert_int_equal(vs_tcp_accept(l, 2000, in), 0);
    vs_tcp_listener_close(l);
}

/* The call-back endpoint (the source's RESOLVE endpoint) sits on the local address of the
 * dialled connection; the peer reaches it at that address and the port it is told. */
static void the_call_back_endpoint_is_beside_the_dialled_connection(void **state)
{
    (void)state;
    struct vs_security_opts sec;
    insecure(&sec);
    struct vs_dialer d;
    vs_dialer_tcp_tls(&d, NULL, &sec);
    struct vs_channel *out, *in, *call, *answered;
    dial_default(&d, &out, &in);
    struct vs_callback *cb;
    assert_int_equal(vs_dialer_open_callback(&d, out, &cb), 0);
    assert_true(cb->port > 0);
    /* Nobody called yet. */
    assert_int_equal(vs_callback_accept(cb, 50, &answered), -ETIMEDOUT);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", cb->port);
    assert_int_equal(vs_tcp_connect(addr, 2000, &call), 0);
    assert_int_equal(vs_callback_accept(cb, 2000, &answered), 0);
    assert_int_equal(vs_channel_write(call, "back", 4), 0);
    char buf[5] = { 0 };
    assert_int_equal(vs_channel_read_exact(answered, buf, 4), 0);
    assert_string_equal(buf, "back");
    vs_channel_close(call);
    vs_channel_close(answered);
    vs_callback_close(cb);
    vs_channel_close(out);
    vs_channel_close(in);
}

/* With a key, a caller that does not speak TLS is refused with an error that is not
 * "nobody called" (the endpoint keeps listening for the real destination). */
static void the_call_back_endpoint_refuses_an_unauthenticated_caller(void **state)
{
    (void)state;
    char dir[] = "/tmp/vmshift-dialer-XXXXXX", key[64];
    assert_non_null(mkdtemp(dir));
    snprintf(key, sizeof(key), "%s/psk", dir);
    FILE *f = fopen(key, "w");
    assert_non_null(f);
    for (int i = 0; i < 64; i++)
        fputc('c', f);
    fputc('\n', f);
    fclose(f);
    chmod(key, 0600);
    struct vs_security_opts sec = { 0 };
    assert_int_equal(vs_security_set(&sec, "tls-psk", key), 0);
    assert_int_equal(vs_security_finish(&sec, true), 0);
    struct vs_security_opts plain;
    insecure(&plain);
    struct vs_dialer d;
    vs_dialer_tcp_tls(&d, NULL, &plain);
    struct vs_channel *out, *in, *call, *answered = NULL;
    dial_default(&d, &out, &in);
    d.callback_ctx = &sec;      /* the endpoint wants the key */
    struct vs_callback *cb;
    assert_int_equal(vs_dialer_open_callback(&d, out, &cb), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", cb->port);
    assert_int_equal(vs_tcp_connect(addr, 2000, &call), 0);
    assert_int_equal(vs_channel_write(call, "not a TLS hello, not at all", 27), 0);
    int rc = vs_callback_accept(cb, 3000, &answered);
    assert_true(rc < 0 && rc != -ETIMEDOUT);
    assert_null(answered);
    vs_channel_close(call);
    vs_callback_close(cb);
    vs_channel_close(out);
    vs_channel_close(in);
    unlink(key);
    rmdir(dir);
}

/* A transport without call-backs says so (and the migration cannot start). */
static void a_dialer_without_call_backs_says_so(void **state)
{
    (void)state;
    struct fake f = { 0 };
    struct vs_dialer d = { fake_connect, fake_secure, &f, NULL, NULL };
    struct vs_channel *ch;
    assert_int_equal(vs_dial_one(&d, "peer:1", 1000, &ch, NULL), 0);
    struct vs_callback *cb = NULL;
    assert_int_equal(vs_dialer_open_callback(&d, ch, &cb), -ENOTSUP);
    assert_null(cb);
    assert_non_null(strstr(vs_last_error(), "no call-back endpoint"));
    vs_channel_close(ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dial_one_goes_through_the_dialer),
        cmocka_unit_test(a_refused_security_step_closes_and_says_why),
        cmocka_unit_test(the_call_back_endpoint_is_beside_the_dialled_connection),
        cmocka_unit_test(the_call_back_endpoint_refuses_an_unauthenticated_caller),
        cmocka_unit_test(a_dialer_without_call_backs_says_so),
        cmocka_unit_test(no_secure_step_means_plain),
        cmocka_unit_test(default_dialer_is_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
