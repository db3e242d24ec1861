#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 32

struct pump {
    struct test_proxy *p;
    int from, to;
    enum proxy_dir dir;
    bool faulty;              /* the first connection */
    unsigned conn;            /* its connection's number, from 0 */
    pthread_t thread;
};

struct test_proxy {
    int lfd, target_port;
    struct proxy_fault fault;
    atomic_bool stop, fired;
    pthread_t thread;
    struct pump pumps[2 * MAX_CONNS];
    int fds[2 * MAX_CONNS];
    unsigned nconns;
    pthread_mutex_t lock;           /* nconns and fds, against proxy_cut_all */
    atomic_llong stall_until_ns;    /* CLOCK_MONOTONIC: proxy_stall_all */
    atomic_int corrupt_slot;        /* 2 * conn + dir of proxy_corrupt_next, or -1 */
    atomic_uint corrupt_pos;
};

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* proxy_stall_all: read nothing until the stall is over. */
static void hold_while_stalled(struct test_proxy *p)
{
    while (!atomic_load(&p->stop) && mono_ns() < atomic_load(&p->stall_until_ns))
        usleep(10000);
}

/* proxy_corrupt_next: the first chunk of the chosen connection and direction. */
static void corrupt_if_chosen(struct pump *u, uint8_t *buf, size_t n)
{
    int slot = (int)(2 * u->conn + u->dir), want = atomic_load(&u->p->corrupt_slot);
    if (want == slot && atomic_compare_exchange_strong(&u->p->corrupt_slot, &want, -1)) {
        buf[atomic_load(&u->p->corrupt_pos) % n] ^= 0x5a;
        atomic_store(&u->p->fired, true);
    }
}

static void *pump_thread(void *arg)
{
    struct pump *u = arg;
    struct test_proxy *p = u->p;
    const struct proxy_fault *f = &p->fault;
    bool armed = u->faulty && f->action != PROXY_NONE && f->dir == u->dir;
    uint64_t off = 0;
    static __thread uint8_t buf[65536];
    while (!atomic_load(&p->stop)) {
        hold_while_stalled(p);
        struct pollfd pf = { .fd = u->from, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        size_t want = sizeof(buf);
        if (armed && f->offset > off && f->offset - off < want)
            want = f->offset - off;       /* stop exactly at the fault's offset */
        ssize_t n = recv(u->from, buf, want, 0);
        if (n <= 0)
            break;
        corrupt_if_chosen(u, buf, (size_t)n);
        if (armed && off == f->offset) {
            armed = false;
            atomic_store(&p->fired, true);
            if (f->action == PROXY_CUT) {
                shutdown(u->from, SHUT_RDWR);
                shutdown(u->to, SHUT_RDWR);
                return NULL;
            }
            if (f->action == PROXY_CORRUPT)
                buf[0] ^= 0xff;
            if (f->action == PROXY_STALL)
                usleep(f->stall_ms * 1000u);
        }
        for (ssize_t done = 0; done < n;) {
            ssize_t w = send(u->to, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
            if (w <= 0)
                goto out;
            done += w;
        }
        off += (uint64_t)n;
    }
out:
    if (f->hold_open && u->faulty) {
        /* The source's side stays open: no EOF towards it, and what it sends is read
         * and dropped. */
        if (u->dir == PROXY_TO_DST)
            while (!atomic_load(&p->stop)) {
                struct pollfd pf = { .fd = u->from, .events = POLLIN };
                if (poll(&pf, 1, 100) > 0 && recv(u->from, buf, sizeof(buf), 0) <= 0)
                    break;
            }
        return NULL;
    }
    shutdown(u->to, SHUT_WR);
    shutdown(u->from, SHUT_RD);
    return NULL;
}

static int connect_target(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *accept_thread(void *arg)
{
    struct test_proxy *p = arg;
    while (!atomic_load(&p->stop) && p->nconns < MAX_CONNS) {
        struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        int s = connect_target(p->target_port);
        if (s < 0) {
            /* The target is gone: so is the proxied address. Stop listening, so that the
             * next caller is refused as it would be without the proxy. */
            close(c);
            close(p->lfd);
            p->lfd = -1;
            break;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_mutex_lock(&p->lock);
        unsigned i = p->nconns;
        p->fds[2 * i] = c;
        p->fds[2 * i + 1] = s;
        struct pump *a = &p->pumps[2 * i], *b = &p->pumps[2 * i + 1];
        *a = (struct pump){ .p = p, .from = c, .to = s, .dir = PROXY_TO_DST, .faulty = i == 0,
                            .conn = i };
        *b = (struct pump){ .p = p, .from = s, .to = c, .dir = PROXY_TO_SRC, .faulty = i == 0,
                            .conn = i };
        pthread_create(&a->thread, NULL, pump_thread, a);
        pthread_create(&b->thread, NULL, pump_thread, b);
        p->nconns = i + 1;
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

struct test_proxy *proxy_start(int target_port, const struct proxy_fault *fault, int *port)
{
    struct test_proxy *p = calloc(1, sizeof(*p));
    p->target_port = target_port;
    if (fault)
        p->fault = *fault;
    pthread_mutex_init(&p->lock, NULL);
    atomic_store(&p->corrupt_slot, -1);
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(p->lfd, 64) < 0 || getsockname(p->lfd, (struct sockaddr *)&a, &len) < 0) {
        perror("proxy");
        abort();
    }
    *port = ntohs(a.sin_port);
    pthread_create(&p->thread, NULL, accept_thread, p);
    return p;
}

int proxy_fired(struct test_proxy *p)
{
    return atomic_load(&p->fired);
}

unsigned proxy_cut_all(struct test_proxy *p)
{
    pthread_mutex_lock(&p->lock);
    unsigned n = p->nconns;
    for (unsigned i = 0; i < 2 * n; i++)
        shutdown(p->fds[i], SHUT_RDWR);
    pthread_mutex_unlock(&p->lock);
    if (n)
        atomic_store(&p->fired, true);
    return n;
}

unsigned proxy_stall_all(struct test_proxy *p, unsigned ms)
{
    atomic_store(&p->stall_until_ns, mono_ns() + (long long)ms * 1000000LL);
    pthread_mutex_lock(&p->lock);
    unsigned n = p->nconns;
    pthread_mutex_unlock(&p->lock);
    if (n)
        atomic_store(&p->fired, true);
    return n;
}

unsigned proxy_corrupt_next(struct test_proxy *p, enum proxy_dir dir, unsigned conn, uint32_t pos)
{
    pthread_mutex_lock(&p->lock);
    unsigned n = p->nconns;
    pthread_mutex_unlock(&p->lock);
    if (!n)
        return 0;
    atomic_store(&p->corrupt_pos, pos);
    atomic_store(&p->corrupt_slot, (int)(2 * (conn % n) + dir));
    return n;
}

void proxy_stop(struct test_proxy *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    for (unsigned i = 0; i < 2 * p->nconns; i++)
        shutdown(p->fds[i], SHUT_RDWR);
    for (unsigned i = 0; i < 2 * p->nconns; i++)
        pthread_join(p->pumps[i].thread, NULL);
    for (unsigned i = 0; i < 2 * p->nconns; i++)
        close(p->fds[i]);
    if (p->lfd >= 0)
        close(p->lfd);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
