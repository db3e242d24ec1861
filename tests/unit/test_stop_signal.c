/* Unit tests: the stop signal (src/common/stop_signal.c): the flag, the descriptor that
 * poll() sees, the hooks (run once, in their thread or at once when added late; never
 * after removal), and a listener that gives up its accept when the signal comes. One
 * sequence: a signal cannot be taken back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/error.h"
#include "common/stop_signal.h"
#include "transport/tcp.h"

static int runs[3], seen_sig[3];

static void count(void *ctx, int sig)
{
    int i = (int)(intptr_t)ctx;
    __atomic_add_fetch(&runs[i], 1, __ATOMIC_SEQ_CST);
    seen_sig[i] = sig;
}

static int runs_of(int i)
{
    return __atomic_load_n(&runs[i], __ATOMIC_SEQ_CST);
}

static void stop_signal_sequence(void **state)
{
    (void)state;
    assert_int_equal(vs_stop_signal_fd(), -1);
    vs_stop_signal_install();
    int fd = vs_stop_signal_fd();
    assert_true(fd >= 0);
    assert_int_equal(vs_stop_signal(), 0);
    struct vs_stop_hook *a, *removed, *late;
    assert_int_equal(vs_stop_hook_add(count, (void *)0, &a), 0);
    assert_int_equal(vs_stop_hook_add(count, (void *)1, &removed), 0);
    vs_stop_hook_remove(removed);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 0), 0);          /* nothing yet */
    assert_int_equal(runs_of(0), 0);

    assert_int_equal(raise(SIGTERM), 0);          /* the process lives on */
    assert_int_equal(vs_stop_signal(), SIGTERM);
    assert_string_equal(vs_stop_signal_name(vs_stop_signal()), "SIGTERM");
    assert_int_equal(poll(&p, 1, 1000), 1);
    for (int i = 0; i < 200 && runs_of(0) == 0; i++)
        usleep(10000);
    assert_int_equal(runs_of(0), 1);              /* in the watcher thread */
    assert_int_equal(seen_sig[0], SIGTERM);
    assert_int_equal(runs_of(1), 0);              /* removed before the signal */

    assert_int_equal(vs_stop_hook_add(count, (void *)2, &late), 0);
    assert_int_equal(runs_of(2), 1);              /* added after it: at once */
    raise(SIGINT);                                /* the first signal stays the one */
    assert_int_equal(vs_stop_signal(), SIGTERM);
    usleep(50000);
    assert_int_equal(runs_of(0), 1);              /* once only */
    vs_stop_hook_remove(a);
    vs_stop_hook_remove(late);

    struct vs_tcp_listener *l;
    struct vs_channel *ch;
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &l), 0);
    assert_int_equal(vs_tcp_accept(l, 50, &ch), -ETIMEDOUT);   /* not watching yet */
    vs_tcp_listener_stop_on(l, fd);
    assert_int_equal(vs_tcp_accept(l, 0, &ch), -EINTR);        /* 0: would wait forever */
    assert_non_null(strstr(vs_last_error(), "stopped while waiting"));
    vs_tcp_listener_close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_signal_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
