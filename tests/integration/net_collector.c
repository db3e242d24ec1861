#include "net_collector.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define STREAM_MAGIC 0x5453564du        /* guest/net_stream.h */
#define STREAM_PAYLOAD 32
#define DRAIN_MS 300
#define READY_WAIT_S 10

/* The shared page: the counts, a ready flag, then the bitmap of numbers seen. */
struct shared {
    struct stream_stats s;
    volatile int ready;                 /* 1 bound, -1 could not */
    uint8_t seen[COLLECTOR_MAX_SEQ / 8];
};

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* When the kernel took the datagram (SO_TIMESTAMPNS), else now. */
static double arrival_ms(struct msghdr *m)
{
    for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h))
        if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(h), sizeof(ts));
            return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
        }
    return wall_ms();
}

/* Keep the gap if it is among the longest (the list stays longest first). */
static void note_gap(struct stream_stats *s, double at, double ms)
{
    int i = COLLECTOR_GAPS - 1;
    if (ms <= s->gaps[i].ms)
        return;
    for (; i > 0 && s->gaps[i - 1].ms < ms; i--)
        s->gaps[i] = s->gaps[i - 1];
    s->gaps[i] = (struct stream_gap){ .at_ms = at, .ms = ms };
}

static void take(struct shared *sh, const uint8_t *d, ssize_t len, double at)
{
    struct stream_stats *s = &sh->s;
    if (len < STREAM_PAYLOAD || get_le(d, 4) != STREAM_MAGIC) {
        s->malformed++;
        return;
    }
    uint64_t seed = get_le(d + 8, 8), seq = get_le(d + 16, 8);
    if (s->received + s->duplicated && seed != s->seed) {
        s->foreign++;
        return;
    }
    if (seq >= COLLECTOR_MAX_SEQ) {
        s->malformed++;
        return;
    }
    s->seed = seed;
    if (sh->seen[seq / 8] & (1u << (seq % 8))) {
        s->duplicated++;
        return;
    }
    sh->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    if (s->received == 0)
        s->first_ms = at;
    else
        note_gap(s, s->last_ms, at - s->last_ms);
    s->last_ms = at;
    s->received++;
    if (seq + 1 > s->highest) {
        s->lost += seq - s->highest;    /* the numbers skipped, lost until they come */
        s->highest = seq + 1;
    } else {
        s->reordered++;
        s->lost--;                      /* it was counted lost when it was skipped */
    }
}

static void receive_one(int fd, struct shared *sh)
{
    uint8_t buf[2048];
    char ctl[256];
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof(ctl) };
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
    if (n >= 0)
        take(sh, buf, n, arrival_ms(&m));
}

static void enter_netns(const char *netns)
{
    char path[128];
    snprintf(path, sizeof(path), "/var/run/netns/%s", netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
        fprintf(stderr, "collector: cannot enter network namespace %s: %s\n", netns,
                strerror(errno));
        _exit(2);
    }
    close(fd);
}

static int bind_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1, rcvbuf = 4 << 20;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) ||
        bind(fd, (struct sockaddr *)&a, sizeof(a))) {
        fprintf(stderr, "collector: cannot bind UDP port %u: %s\n", port, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    return fd;
}

static void child_run(struct shared *sh, const char *netns, uint16_t port)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGTERM, on_term);
    enter_netns(netns);
    int fd = bind_port(port);
    sh->ready = fd < 0 ? -1 : 1;
    if (fd < 0)
        _exit(2);
    double drain_until = 0;
    for (;;) {
        if (stopping && !drain_until)
            drain_until = wall_ms() + DRAIN_MS;
        if (drain_until && wall_ms() > drain_until)
            _exit(0);
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 50) > 0)
            receive_one(fd, sh);
    }
}

void collector_start(struct collector *c, const char *netns, uint16_t port)
{
    struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    c->live = &sh->s;
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0)
        child_run(sh, netns, port);
    double deadline = wall_ms() + READY_WAIT_S * 1e3;
    while (!sh->ready && wall_ms() < deadline)
        usleep(10000);
    if (sh->ready != 1)
        fail_msg("the collector could not listen on UDP port %u in %s (see above)", port, netns);
}

void collector_snapshot(const struct collector *c, struct stream_stats *out)
{
    memcpy(out, (const void *)c->live, sizeof(*out));
}

static void unmap(struct collector *c)
{
    if (c->live)
        munmap(c->live, sizeof(struct shared));
    c->live = NULL;
}

void collector_stop(struct collector *c, struct stream_stats *out)
{
    int st = 0;
    assert_true(c->pid > 0);
    kill(c->pid, SIGTERM);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
    collector_snapshot(c, out);
    unmap(c);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the collector failed (status 0x%x)", st);
}

void collector_kill(struct collector *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, NULL, 0);
    }
    c->pid = 0;
    unmap(c);
}
