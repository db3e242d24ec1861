/* The fixture of the migration stream's unit tests (test_wire.c, test_wire_hostile.c): a
 * writer and a reader over a socketpair, and raw records for hostile input. */
#ifndef VS_TEST_WIRE_FIXTURE_H
#define VS_TEST_WIRE_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/error.h"
#include "expect_error.h"
#include "transport/channel.h"
#include "wire/format.h"
#include "wire/reader.h"
#include "wire/writer.h"

#define PG VS_WIRE_PAGE_SIZE

struct fixture {
    struct vs_channel *tx, *rx;   /* tx: the sending end, rx: the reading end */
    struct vs_wire_writer w;
    struct vs_wire_reader r;
};

static inline int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int sv[2];
    if (!f || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -1;
    if (vs_channel_from_fd(sv[0], "the-destination", &f->tx) < 0 ||
        vs_channel_from_fd(sv[1], "the-source", &f->rx) < 0)
        return -1;
    if (vs_wire_writer_init(&f->w, f->tx) < 0)
        return -1;
    vs_wire_reader_init(&f->r, f->rx);
    vs_clear_error();
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fixture *f = *state;
    vs_wire_writer_destroy(&f->w);
    vs_channel_close(f->tx);
    vs_channel_close(f->rx);
    free(f);
    return 0;
}

static inline void seal(struct vs_wire_header *h)
{
    h->header_sum = 0;
    h->header_sum = XXH32(h, sizeof(*h), 0);
}

static inline struct vs_wire_header raw_header(unsigned type, uint32_t length, uint64_t seq,
                                        const void *payload)
{
    struct vs_wire_header h = { .magic = VS_WIRE_MAGIC, .type = (uint16_t)type,
                                .length = length, .seq = seq };
    h.payload_sum = length && payload ? XXH3_64bits(payload, length) : 0;
    seal(&h);
    return h;
}

static inline void raw_write(struct fixture *f, const void *buf, size_t len)
{
    assert_int_equal(send(f->tx->fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static inline void raw_record(struct fixture *f, const struct vs_wire_header *h, const void *payload,
                       size_t len)
{
    raw_write(f, h, sizeof(*h));
    if (len)
        raw_write(f, payload, len);
}

/* One valid DIGEST record (#0, 64 bytes on the wire) so later errors have offset 64. */
static inline void send_one_digest(struct fixture *f)
{
    struct vs_wire_digest d = { .ram_xxh3 = 1, .vcpu_xxh3 = 2, .machine_xxh3 = 3, .pause_ns = 4 };
    assert_int_equal(vs_wire_send(&f->w, VS_REC_DIGEST, &d, sizeof(d)), 0);
    struct vs_wire_header h;
    struct vs_wire_digest got;
    assert_int_equal(vs_wire_read_header(&f->r, &h), 0);
    assert_int_equal(vs_wire_read_fixed(&f->r, &h, VS_REC_DIGEST, &got, sizeof(got)), 0);
    assert_memory_equal(&d, &got, sizeof(d));
}

#endif
