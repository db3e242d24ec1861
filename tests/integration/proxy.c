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
#include <unistd.h>

#define MAX_CONNS 32

struct pump {
    struct test_proxy *p;
    int from, to;
    enum proxy_dir dir;
    bool faulty;              /* the first connection */
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
};

static void *pump_thread(void *arg)
{
    struct pump *u = arg;
    struct test_proxy *p = u->p;
    const struct proxy_fault *f = &p->fault;
    bool armed = u->faulty && f->action != PROXY_NONE && f->dir == u->dir;
    uint64_t off = 0;
    static __thread uint8_t buf[65536];
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = { .fd = u->from, .events = POLLIN };
        if (poll(&pf, 1, 100) <= 0)
            continue;
        size_t want = sizeof(buf);
        if (armed && f->offset > off && f->offset - off < want)
            want = f->offset - off;       /* stop exactly at the fault's offset */
        ssize_t n = recv(u->from, buf, want, 0);
        if (n <= 0)
            break;
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
        unsigned i = p->nconns++;
        p->fds[2 * i] = c;
        p->fds[2 * i + 1] = s;
        struct pump *a = &p->pumps[2 * i], *b = &p->pumps[2 * i + 1];
        *a = (struct pump){ .p = p, .from = c, .to = s, .dir = PROXY_TO_DST, .faulty = i == 0 };
        *b = (struct pump){ .p = p, .from = s, .to = c, .dir = PROXY_TO_SRC, .faulty = i == 0 };
        pthread_create(&a->thread, NULL, pump_thread, a);
        pthread_create(&b->thread, NULL, pump_thread, b);
    }
    return NULL;
}

struct test_proxy *proxy_start(int target_port, const struct proxy_fault *fault, int *port)
{
    struct test_proxy *p = calloc(1, sizeof(*p));
    p->target_port = target_port;
    if (fault)
        p->fault = *fault;
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
    free(p);
}
