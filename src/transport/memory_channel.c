#include "transport/memory_channel.h"
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct memory_channel {
    struct vs_channel ch;         /* first: the engine sees only this */
    const uint8_t *data;
    size_t len, pos, max_read;
    bool shut;
};

static ssize_t mem_writev(struct vs_channel *ch, const struct iovec *iov, int iovcnt, int flags)
{
    (void)flags;
    struct memory_channel *m = (struct memory_channel *)ch;
    if (m->shut) {
        errno = EPIPE;
        return -1;
    }
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return (ssize_t)n;
}

static ssize_t mem_read(struct vs_channel *ch, void *buf, size_t len)
{
    struct memory_channel *m = (struct memory_channel *)ch;
    if (m->shut)
        return 0;
    size_t n = m->len - m->pos;
    if (n > len)
        n = len;
    if (m->max_read && n > m->max_read)
        n = m->max_read;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (ssize_t)n;
}

static void mem_shutdown(struct vs_channel *ch)
{
    ((struct memory_channel *)ch)->shut = true;
}

static void mem_close(struct vs_channel *ch)
{
    free(ch);
}

static const struct vs_channel_ops memory_ops = {
    .name = "memory",
    .writev = mem_writev,
    .read = mem_read,
    .shutdown = mem_shutdown,
    .close = mem_close,
};

int vs_channel_from_memory(const uint8_t *data, size_t len, size_t max_read,
                           struct vs_channel **out)
{
    struct memory_channel *m = calloc(1, sizeof(*m));
    if (!m)
        return vs_fail(ENOMEM, "out of memory for a memory channel");
    m->ch.ops = &memory_ops;
    m->ch.fd = -1;
    snprintf(m->ch.peer, sizeof(m->ch.peer), "memory");
    m->data = data;
    m->len = len;
    m->max_read = max_read;
    *out = &m->ch;
    return 0;
}
