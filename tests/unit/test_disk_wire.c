/* The disk records of the migration stream (--with-disks) against hostile input: every
 * field of DISK_BLOCKS and DISK_DIGEST out of bounds, lengths that disagree, block numbers
 * past the disk or near 2^64, a block twice; and the digest both sides compute (a short
 * last block hashes over its own length, a hole as zeros). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/error.h"
#include "migrate/disk/disk_wire.h"
#include "vmm/virtio/blk_dirty.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <xxhash.h>

#define B VS_WIRE_DISK_BLOCK
static const uint64_t sizes[3] = { 0, 10 * (uint64_t)B + 512, 4 * (uint64_t)B };

/* A DISK_BLOCKS payload of `ndata` data blocks then `nzero` zero blocks; *len its size. */
static uint8_t *payload(uint32_t disk, const uint64_t *list, uint32_t ndata, uint32_t nzero,
                        size_t *len)
{
    uint32_t count = ndata + nzero;
    *len = 16 + 8 * (size_t)count + (size_t)ndata * B;
    uint8_t *p = calloc(1, *len + 16);
    struct vs_wire_disk_blocks h = { .disk = disk, .pass = 3, .count = count, .zero = nzero };
    memcpy(p, &h, sizeof(h));
    memcpy(p + 16, list, 8 * (size_t)count);
    for (uint32_t i = 0; i < ndata; i++)
        memset(p + 16 + 8 * count + (size_t)i * B, 0x40 + (int)i, B);
    return p;
}

static void refused(const uint8_t *p, size_t len, const char *needle)
{
    struct vs_disk_blocks_view v;
    assert_int_equal(vs_disk_blocks_parse(p, len, sizes, 3, &v), -EPROTO);
    if (!strstr(vs_last_error(), needle))
        fail_msg("error '%s' does not say '%s'", vs_last_error(), needle);
}

static void good_record(void **state)
{
    (void)state;
    uint64_t list[3] = { 7, 0, 10 };   /* any order; the last is the short block */
    size_t len;
    uint8_t *p = payload(1, list, 2, 1, &len);
    struct vs_disk_blocks_view v;
    assert_int_equal(vs_disk_blocks_parse(p, len, sizes, 3, &v), 0);
    assert_int_equal(v.head.count, 3);
    assert_int_equal(v.head.zero, 1);
    assert_int_equal(v.block[2], 10);
    assert_ptr_equal(v.data, p + 16 + 24);
    assert_int_equal(v.data[B], 0x41);
    free(p);
}

static void lengths(void **state)
{
    (void)state;
    uint64_t list[2] = { 1, 2 };
    size_t len;
    uint8_t *p = payload(1, list, 2, 0, &len);
    refused(p, len - 1, "need a payload of");
    refused(p, len + 1, "need a payload of");
    refused(p, 23, "shorter than");
    refused(p, 0, "shorter than");
    struct vs_wire_disk_blocks h;
    memcpy(&h, p, sizeof(h));
    h.zero = 1;   /* says one block has no data: the length no longer agrees */
    memcpy(p, &h, sizeof(h));
    refused(p, len, "need a payload of");
    h.zero = 3;
    memcpy(p, &h, sizeof(h));
    refused(p, len, "zero blocks of 2");
    h.zero = 0, h.count = 0;
    memcpy(p, &h, sizeof(h));
    refused(p, len, "block count 0");
    h.count = VS_WIRE_MAX_DISK_BLOCKS + 1;
    memcpy(p, &h, sizeof(h));
    refused(p, len, "block count 65");
    h.count = 0xffffffffu, h.zero = 0xffffffffu;   /* count - zero = 0: no overflow either */
    memcpy(p, &h, sizeof(h));
    refused(p, len, "block count");
    free(p);
}

static void disks(void **state)
{
    (void)state;
    uint64_t list[1] = { 0 };
    size_t len;
    uint8_t *p = payload(0, list, 0, 1, &len);   /* disk 0 is not copied */
    refused(p, len, "disk 0 is not one of");
    free(p);
    p = payload(3, list, 0, 1, &len);            /* the VM has 3 */
    refused(p, len, "disk 3 is not one of");
    free(p);
    p = payload(0xffffffffu, list, 0, 1, &len);
    refused(p, len, "is not one of");
    free(p);
}

static void blocks_outside(void **state)
{
    (void)state;
    uint64_t past[1] = { 11 };                 /* disk 1 has blocks 0..10 */
    uint64_t huge[1] = { UINT64_MAX };         /* * 64 KiB would wrap */
    uint64_t wrap[1] = { (UINT64_MAX / B) + 1 };
    uint64_t small[1] = { 4 };                 /* disk 2 has blocks 0..3 */
    size_t len;
    uint8_t *p = payload(1, past, 1, 0, &len);
    refused(p, len, "block 11 is outside disk 1 of 11 blocks");
    free(p);
    p = payload(1, huge, 0, 1, &len);
    refused(p, len, "is outside disk 1");
    free(p);
    p = payload(1, wrap, 0, 1, &len);
    refused(p, len, "is outside disk 1");
    free(p);
    p = payload(2, small, 0, 1, &len);
    refused(p, len, "block 4 is outside disk 2 of 4 blocks");
    free(p);
}

static void block_twice(void **state)
{
    (void)state;
    uint64_t list[3] = { 5, 6, 5 };   /* data 5 and 6, then 5 again as zero */
    size_t len;
    uint8_t *p = payload(1, list, 2, 1, &len);
    refused(p, len, "block 5 is listed twice");
    free(p);
}

static void digest_checks(void **state)
{
    (void)state;
    struct vs_wire_disk_digest d = { .disk = 1, .size = sizes[1] };
    assert_int_equal(vs_disk_digest_check(&d, sizes, 3), 0);
    d.size++;
    assert_int_equal(vs_disk_digest_check(&d, sizes, 3), -EPROTO);
    assert_non_null(strstr(vs_last_error(), "create it with the source's size"));
    d.size = sizes[1], d.reserved = 1;
    assert_int_equal(vs_disk_digest_check(&d, sizes, 3), -EPROTO);
    d.reserved = 0, d.disk = 0;
    assert_int_equal(vs_disk_digest_check(&d, sizes, 3), -EPROTO);
    d.disk = 7;
    assert_int_equal(vs_disk_digest_check(&d, sizes, 3), -EPROTO);
}

static void digest_of_blocks(void **state)
{
    (void)state;
    assert_int_equal(vs_disk_nblocks(sizes[1]), 11);
    assert_int_equal(vs_disk_block_len(sizes[1], 10), 512);
    assert_int_equal(vs_disk_block_len(sizes[1], 9), B);
    assert_int_equal(vs_disk_block_len(sizes[1], 11), 0);
    static uint8_t zeros[B];
    assert_true(vs_disk_zero_hash(512) == XXH3_64bits(zeros, 512));
    assert_true(vs_disk_zero_hash(B) == XXH3_64bits(zeros, B));
    uint64_t h[2] = { 1, 2 }, g[2] = { 2, 1 };
    assert_true(vs_disk_digest(h, 2) == XXH3_64bits(h, sizeof(h)));
    assert_true(vs_disk_digest(h, 2) != vs_disk_digest(g, 2));   /* order counts */
}

/* The device's dirty map: every block a write touches, clipped to the disk; taken once. */
static void dirty_map(void **state)
{
    (void)state;
    struct vs_blk_dirty d;
    assert_int_equal(vs_blk_dirty_init(&d, 130 * (uint64_t)B + 1), 0);   /* 131 blocks */
    assert_int_equal(d.nblocks, 131);
    assert_int_equal(d.nwords, 3);
    vs_blk_dirty_mark(&d, B - 512, 1024);                 /* blocks 0 and 1 */
    vs_blk_dirty_mark(&d, 130 * (uint64_t)B, 1ull << 40); /* the last, clipped */
    vs_blk_dirty_mark(&d, UINT64_MAX - 10, 100);          /* wraps: clipped, nothing past */
    vs_blk_dirty_mark(&d, 5 * (uint64_t)B, 0);            /* nothing */
    assert_int_equal(vs_blk_dirty_take_word(&d, 0), 3);
    assert_int_equal(vs_blk_dirty_take_word(&d, 0), 0);
    assert_int_equal(vs_blk_dirty_take_word(&d, 1), 0);
    assert_int_equal(vs_blk_dirty_take_word(&d, 2), 1ull << (130 - 128));
    assert_int_equal(vs_blk_dirty_take_word(&d, 3), 0);   /* past the map */
    vs_blk_dirty_destroy(&d);
}

/* The reader lets disk records through only once the handshake agreed them, and bounds
 * DISK_BLOCKS' length before reading it. */
static void reader_gate(void **state)
{
    (void)state;
    for (int agreed = 0; agreed < 2; agreed++) {
        int sv[2];
        struct vs_channel *tx, *rx;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(vs_channel_from_fd(sv[0], "the-destination", &tx), 0);
        assert_int_equal(vs_channel_from_fd(sv[1], "the-source", &rx), 0);
        struct vs_wire_writer w;
        assert_int_equal(vs_wire_writer_init(&w, tx), 0);
        struct vs_wire_disk_digest d = { .disk = 1, .size = sizes[1] };
        assert_int_equal(vs_wire_send(&w, VS_REC_DISK_DIGEST, &d, sizeof(d)), 0);
        struct vs_wire_reader r;
        vs_wire_reader_init(&r, rx);
        r.disks = agreed;
        struct vs_wire_header h;
        int rc = vs_wire_read_header(&r, &h);
        if (agreed) {
            assert_int_equal(rc, 0);
            struct vs_wire_disk_digest got;
            assert_int_equal(vs_wire_read_fixed(&r, &h, VS_REC_DISK_DIGEST, &got, sizeof(got)), 0);
            assert_int_equal(got.size, sizes[1]);
        } else {
            assert_int_equal(rc, -EPROTO);
            assert_non_null(strstr(vs_last_error(), "not agreed"));
        }
        vs_wire_reader_destroy(&r);
        vs_wire_writer_destroy(&w);
        vs_channel_close(tx);
        vs_channel_close(rx);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_record),    cmocka_unit_test(lengths),
        cmocka_unit_test(disks),          cmocka_unit_test(blocks_outside),
        cmocka_unit_test(block_twice),    cmocka_unit_test(digest_checks),
        cmocka_unit_test(digest_of_blocks), cmocka_unit_test(dirty_map),
        cmocka_unit_test(reader_gate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
