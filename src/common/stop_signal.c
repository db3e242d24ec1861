#include "common/stop_signal.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static int stop_pipe[2] = { -1, -1 };

struct vs_stop_hook {
    void (*fn)(void *ctx, int sig);
    void *ctx;
    bool ran;
    struct vs_stop_hook *next;
};

/* The hooks, and the thread that runs them once the pipe becomes readable. */
static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vs_stop_hook *hooks;
static bool watcher_started;

static void on_stop_signal(int sig)
{
    int saved = errno;
    if (!stop_signal)
        stop_signal = sig;
    if (stop_pipe[1] >= 0) {
        char b = 1;
        ssize_t n = write(stop_pipe[1], &b, 1);   /* a full pipe is readable anyway */
        (void)n;
    }
    errno = saved;
}

void vs_stop_signal_install(void)
{
    if (stop_pipe[0] < 0 && pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        stop_pipe[0] = stop_pipe[1] = -1;   /* the flag alone still works */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int vs_stop_signal(void)
{
    return stop_signal;
}

int vs_stop_signal_fd(void)
{
    return stop_pipe[0];
}

const char *vs_stop_signal_name(int sig)
{
    static __thread char other[24];
    if (sig == SIGTERM)
        return "SIGTERM";
    if (sig == SIGINT)
        return "SIGINT";
    snprintf(other, sizeof(other), "signal %d", sig);
    return other;
}

/* Run every hook that has not run yet. Called with hooks_lock held. */
static void run_hooks(int sig)
{
    for (struct vs_stop_hook *h = hooks; h; h = h->next)
        if (!h->ran) {
            h->ran = true;
            h->fn(h->ctx, sig);
        }
}

static void *watcher(void *arg)
{
    (void)arg;
    struct pollfd p = { .fd = stop_pipe[0], .events = POLLIN };
    while (!stop_signal)
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return NULL;
    pthread_mutex_lock(&hooks_lock);
    run_hooks(stop_signal);
    pthread_mutex_unlock(&hooks_lock);
    return NULL;
}

int vs_stop_hook_add(void (*fn)(void *ctx, int sig), void *ctx, struct vs_stop_hook **out)
{
    *out = NULL;
    struct vs_stop_hook *h = calloc(1, sizeof(*h));
    if (!h)
        return vs_fail(ENOMEM, "out of memory for a stop-signal hook");
    h->fn = fn;
    h->ctx = ctx;
    pthread_mutex_lock(&hooks_lock);
    h->next = hooks;
    hooks = h;
    int err = 0;
    if (!watcher_started && stop_pipe[0] >= 0) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        err = pthread_create(&t, &attr, watcher, NULL);
        pthread_attr_destroy(&attr);
        watcher_started = err == 0;
    }
    if (err) {
        hooks = h->next;
        pthread_mutex_unlock(&hooks_lock);
        free(h);
        return vs_fail(err, "cannot start the stop-signal thread: %s", strerror(err));
    }
    if (stop_signal)
        run_hooks(stop_signal);   /* the watcher may have run before this hook existed */
    pthread_mutex_unlock(&hooks_lock);
    *out = h;
    return 0;
}

void vs_stop_hook_remove(struct vs_stop_hook *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&hooks_lock);
    for (struct vs_stop_hook **p = &hooks; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    pthread_mutex_unlock(&hooks_lock);
    free(h);
}
